//! Who is calling the API: a console session cookie (HttpOnly, SameSite) or
//! an `Authorization: Bearer` token for API clients. Both resolve to a
//! [`crm::Actor`], which carries the role and team visibility that the store
//! enforces on every operation.
//!
//! Cookie-authenticated requests that change state must also send the
//! double-submit CSRF header (`X-CSRF-Token` equal to the `centralino_csrf`
//! cookie set at login); bearer tokens are not sent by browsers on their own,
//! so they need none.

use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, header};
use crm::Actor;

pub const SESSION_COOKIE: &str = "centralino_session";
pub const CSRF_COOKIE: &str = "centralino_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The authenticated actor of a request.
pub struct Auth(pub Actor);

pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(h) = parts.headers.get(header::AUTHORIZATION) {
            let v = h.to_str().map_err(|_| ApiError::unauthenticated())?;
            let token = v.strip_prefix("Bearer ").ok_or_else(ApiError::unauthenticated)?.trim();
            return match state.store.token_actor(token).await {
                Ok(a) => Ok(Auth(a)),
                Err(crm::Error::Unauthenticated) => Err(ApiError::unauthenticated()),
                Err(e) => Err(e.into()),
            };
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
        match state.store.session_actor(token).await {
            Ok(a) => Ok(Auth(a)),
            Err(crm::Error::Unauthenticated) => Err(ApiError::unauthenticated()),
            Err(e) => Err(e.into()),
        }
    }
}
