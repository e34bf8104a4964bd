//! Log in and out, who am I, and API tokens.

use crate::auth::{Auth, CSRF_COOKIE, SESSION_COOKIE};
use crate::error::{ApiResult, Problem};
use crate::extract::Json;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use crm::auth::SESSION_TTL_MS;
use rand::RngCore;
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    pub username: String,
    pub password: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Me {
    pub id: crm::UserId,
    pub username: String,
    pub role: crm::Role,
    /// The value to send back as `X-CSRF-Token` on state-changing requests
    /// (only present right after login).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
}

fn me(a: &crm::Actor, csrf: Option<String>) -> Me {
    Me { id: a.user, username: a.username.clone(), role: a.role, csrf_token: csrf }
}

/// Logs in; sets the session cookie (HttpOnly, SameSite=Strict) and the CSRF cookie.
#[utoipa::path(post, path = "/api/auth/login", request_body = Login, tag = "session",
    responses((status = 200, body = Me), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn login(State(st): State<AppState>, Json(body): Json<Login>) -> ApiResult<impl IntoResponse> {
    if body.username.len() > 200 || body.password.len() > 1024 {
        return Err(crate::error::ApiError::field("username", "too long"));
    }
    let actor = st.store.authenticate(&body.username, &body.password).await?;
    let token = st.store.create_session(&actor).await?;
    let mut csrf = [0u8; 16];
    rand::rng().fill_bytes(&mut csrf);
    let csrf = hex::encode(csrf);
    let secure = if st.secure_cookies { "; Secure" } else { "" };
    let max_age = SESSION_TTL_MS / 1000;
    let mut headers = HeaderMap::new();
    let c1 = format!("{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    let c2 = format!("{CSRF_COOKIE}={csrf}; Path=/; SameSite=Strict; Max-Age={max_age}{secure}");
    for c in [c1, c2] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            headers.append(header::SET_COOKIE, v);
        }
    }
    tracing::info!(user = %actor, "login");
    Ok((headers, axum::Json(me(&actor, Some(csrf)))))
}

/// Ends the console session.
#[utoipa::path(post, path = "/api/auth/logout", tag = "session", responses((status = 204)))]
pub async fn logout(State(st): State<AppState>, Auth(_a): Auth, req_headers: HeaderMap) -> ApiResult<impl IntoResponse> {
    if let Some(t) = crate::auth::cookie_in(&req_headers, SESSION_COOKIE) {
        // End it in the store first, then evict it: a request racing the
        // logout can then no longer re-cache a live session.
        st.store.end_session(t).await?;
        st.actors.forget_session(t);
    }
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")) {
        headers.append(header::SET_COOKIE, v);
    }
    Ok((StatusCode::NO_CONTENT, headers))
}

/// The authenticated user.
#[utoipa::path(get, path = "/api/me", tag = "session", responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub async fn whoami(Auth(a): Auth) -> axum::Json<Me> {
    axum::Json(me(&a, None))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenCreated {
    /// Shown once: store it; the server keeps only its hash.
    pub token: String,
}

/// Issues a bearer token for the authenticated user.
#[utoipa::path(post, path = "/api/tokens", request_body = NewToken, tag = "session",
    responses((status = 201, body = TokenCreated), (status = 401, body = Problem)))]
pub async fn create_token(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<NewToken>) -> ApiResult<impl IntoResponse> {
    let token = st.store.create_api_token(&a, &body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(TokenCreated { token })))
}
