//! Who is calling the API: a console session cookie (HttpOnly, SameSite) or
//! an `Authorization: Bearer` token for API clients. Both resolve to a
//! [`crm::Actor`], which carries the role and team visibility that the store
//! enforces on every operation.
//!
//! Cookie-authenticated requests that change state must also send the
//! double-submit CSRF header (`X-CSRF-Token` equal to the `centralino_csrf`
//! cookie set at login); bearer tokens are not sent by browsers on their own,
//! so they need none.
//!
//! Resolving a token is one or two database round trips, which was half of
//! the database work of a screen-pop lookup. So resolved actors are kept in a
//! small in-process cache ([`ActorCache`]) for [`CACHE_TTL`], keyed by the
//! SHA-256 of the token (the secret itself is not kept). Staleness is
//! bounded by the TTL: a session that expires, a user deactivated, a token
//! deleted or a team change by another process or handler takes effect
//! within at most 5 s. Logout is immediate: the logout handler evicts its
//! token before ending the session, so the next request with the old cookie
//! goes to the store and is refused. The cache belongs to one application
//! (it lives in [`AppState`]), never to the process.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use crm::Actor;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const SESSION_COOKIE: &str = "centralino_session";
pub const CSRF_COOKIE: &str = "centralino_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated actor of a request.
pub struct Auth(pub Actor);

pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    cookie_in(&parts.headers, name)
}

/// The value of cookie `name` in these request headers.
pub fn cookie_in<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// How long a resolved actor is reused without asking the store.
pub const CACHE_TTL: Duration = Duration::from_secs(5);
/// At most this many tokens are cached; past it, expired entries are swept,
/// and if none had expired the whole cache is dropped (cheap, and only a
/// burst of more than this many distinct live tokens within the TTL does it).
const CACHE_MAX: usize = 4096;

/// Which kind of credential a cache entry resolved: a session cookie and an
/// API token never share an entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Bearer,
    Session,
}

/// Token hash → actor, for [`CACHE_TTL`]; see the module docs.
#[derive(Default)]
pub struct ActorCache {
    map: Mutex<HashMap<(Kind, [u8; 32]), (Instant, Actor)>>,
}

impl ActorCache {
    /// Drops a session token's entry (at logout).
    pub fn forget_session(&self, token: &str) {
        self.forget(&Self::key(Kind::Session, token));
    }

    fn key(kind: Kind, token: &str) -> (Kind, [u8; 32]) {
        (kind, Sha256::digest(token.as_bytes()).into())
    }

    fn get(&self, key: &(Kind, [u8; 32]), now: Instant) -> Option<Actor> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).filter(|(at, _)| now.duration_since(*at) < CACHE_TTL).map(|(_, a)| a.clone())
    }

    fn put(&self, key: (Kind, [u8; 32]), actor: &Actor, now: Instant) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CACHE_MAX && !map.contains_key(&key) {
            map.retain(|_, (at, _)| now.duration_since(*at) < CACHE_TTL);
            if map.len() >= CACHE_MAX {
                map.clear();
            }
        }
        map.insert(key, (now, actor.clone()));
    }

    fn forget(&self, key: &(Kind, [u8; 32])) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

/// Resolves a token through the cache, or the store on a miss.
async fn resolve<F>(cache: &ActorCache, kind: Kind, token: &str, lookup: F) -> Result<Actor, ApiError>
where
    F: std::future::Future<Output = crm::Result<Actor>>,
{
    let key = ActorCache::key(kind, token);
    let now = Instant::now();
    if let Some(a) = cache.get(&key, now) {
        return Ok(a);
    }
    match lookup.await {
        Ok(a) => {
            cache.put(key, &a, now);
            Ok(a)
        }
        Err(crm::Error::Unauthenticated) => Err(ApiError::unauthenticated()),
        Err(e) => Err(e.into()),
    }
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(h) = parts.headers.get(header::AUTHORIZATION) {
            let v = h.to_str().map_err(|_| ApiError::unauthenticated())?;
            let token = v.strip_prefix("Bearer ").ok_or_else(ApiError::unauthenticated)?.trim();
            return resolve(&state.actors, Kind::Bearer, token, state.store.token_actor(token)).await.map(Auth);
        }
        let Some(token) = cookie(parts, SESSION_COOKIE) else {
            return Err(ApiError::unauthenticated());
        };
        let unsafe_method = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if unsafe_method {
            let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
            let expected = cookie(parts, CSRF_COOKIE);
            if sent.is_none() || sent != expected {
                return Err(ApiError::new(axum::http::StatusCode::FORBIDDEN, "csrf", "missing or wrong X-CSRF-Token header"));
            }
        }
        resolve(&state.actors, Kind::Session, token, state.store.session_actor(token)).await.map(Auth)
    }
}
