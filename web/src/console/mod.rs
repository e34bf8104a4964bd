//! The web console: a small static front end embedded in the binary
//! (`web/assets/`, via `include_str!`/`include_bytes!`), so `centralino`
//! needs no separate front-end server. Each desk is a page under
//! `/console/…` rendered from one HTML shell; the browser script
//! (`assets/console.js`) fills it from the JSON API and the event socket
//! ([`crate::ws`]).
//!
//! Every desk page checks the session on the server and redirects to the
//! login page without one; the API calls behind it check again (roles and
//! team visibility are the store's business). The shell's language comes
//! from `Accept-Language` (English or Italian); the page's toggle overrides
//! it in the browser.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Serialize;

pub mod desk;

const SHELL: &str = include_str!("../../assets/console.html");
const SCRIPT: &str = include_str!("../../assets/console.js");
const STYLE: &str = include_str!("../../assets/console.css");
const UPLOT_JS: &str = include_str!("../../assets/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../../assets/vendor/uPlot.min.css");
const FAVICON: &[u8] = include_bytes!("../../assets/favicon.svg");

/// The desks, by URL segment.
pub const DESKS: &[&str] = &["support", "agent", "wallboard", "marketer"];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/console") }))
        .route("/console", get(home))
        .route("/console/login", get(login_page))
        .route("/console/assets/{file}", get(asset))
        .route("/console/{desk}", get(desk))
        .route("/api/console/calls-per-hour", get(calls_per_hour))
        .route("/ws", get(crate::ws::upgrade))
        .merge(desk::routes())
}

/// `en` or `it` from `Accept-Language`: the first Italian or English tag
/// in the order given (quality values are rarely out of order in practice).
pub fn language(headers: &HeaderMap) -> &'static str {
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    for tag in accept.split(',') {
        let tag = tag.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if tag.starts_with("it") {
            return "it";
        }
        if tag.starts_with("en") {
            return "en";
        }
    }
    "en"
}

/// The desk a role lands on after login.
pub fn home_desk(role: crm::Role) -> &'static str {
    match role {
        crm::Role::Agent => "agent",
        crm::Role::Support => "support",
        crm::Role::Marketer => "marketer",
        crm::Role::Supervisor | crm::Role::Admin => "wallboard",
    }
}

fn shell(page: &str, lang: &str) -> Response {
    // `page` and `lang` come from fixed lists, never from the request text.
    let html = SHELL.replace("{{page}}", page).replace("{{lang}}", lang);
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Only our own scripts run: an injected `<script>` could not execute
    // even if escaping were ever missed.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    (h, html).into_response()
}

async fn home(auth: Result<Auth, ApiError>) -> Redirect {
    match auth {
        Ok(Auth(a)) => Redirect::to(&format!("/console/{}", home_desk(a.role))),
        Err(_) => Redirect::to("/console/login"),
    }
}

async fn login_page(headers: HeaderMap) -> Response {
    shell("login", language(&headers))
}

async fn desk(Path(name): Path<String>, auth: Result<Auth, ApiError>, headers: HeaderMap) -> Response {
    let Some(page) = DESKS.iter().find(|d| **d == name) else {
        return ApiError::not_found("desk").into_response();
    };
    if auth.is_err() {
        return Redirect::to(&format!("/console/login?next={page}")).into_response();
    }
    shell(page, language(&headers))
}

async fn asset(Path(file): Path<String>) -> Response {
    let (ctype, body): (&str, &[u8]) = match file.as_str() {
        "console.js" => ("text/javascript; charset=utf-8", SCRIPT.as_bytes()),
        "console.css" => ("text/css; charset=utf-8", STYLE.as_bytes()),
        "uPlot.iife.min.js" => ("text/javascript; charset=utf-8", UPLOT_JS.as_bytes()),
        "uPlot.min.css" => ("text/css; charset=utf-8", UPLOT_CSS.as_bytes()),
        "favicon.svg" => ("image/svg+xml", FAVICON),
        _ => return ApiError::not_found("asset").into_response(),
    };
    // No fingerprinted names yet, so keep caching short: a new binary's
    // script reaches the tabs within minutes.
    ([(header::CONTENT_TYPE, ctype), (header::CACHE_CONTROL, "public, max-age=300")], body).into_response()
}

/// One hour of the wallboard's calls chart.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct HourBucket {
    /// Unix millis of the hour's start.
    pub at: i64,
    pub inbound: i64,
    pub outbound: i64,
    pub answered: i64,
}

/// How many recent calls the chart reads; the store caps it at 1000.
const CHART_CALLS: i64 = 1000;

/// Groups call records into the 24 hours ending with the current one.
pub fn bucket_calls(calls: &[crm::calls::CallRecord], now: i64) -> Vec<HourBucket> {
    const HOUR: i64 = 3_600_000;
    let last = now - now.rem_euclid(HOUR);
    let first = last - 23 * HOUR;
    let mut out: Vec<HourBucket> = (0..24).map(|i| HourBucket { at: first + i * HOUR, inbound: 0, outbound: 0, answered: 0 }).collect();
    for c in calls {
        if c.started_at < first || c.started_at >= last + HOUR {
            continue;
        }
        let Some(b) = out.get_mut(((c.started_at - first) / HOUR) as usize) else { continue };
        if c.direction == "inbound" {
            b.inbound += 1;
        } else {
            b.outbound += 1;
        }
        if c.answered_at.is_some() {
            b.answered += 1;
        }
    }
    out
}

/// Calls per hour over the last 24 hours, as the actor may see them
/// (the wallboard's chart).
async fn calls_per_hour(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<impl IntoResponse> {
    let calls = st.store.recent_calls(&a, CHART_CALLS).await?;
    Ok((StatusCode::OK, axum::Json(bucket_calls(&calls, crm::now_ms()))))
}
