//! The JSON REST API. Each submodule holds the handlers of one resource;
//! [`router`] wires them, and [`ApiDoc`] is the OpenAPI document generated
//! from the handlers' annotations (served at `/api/openapi.json`).

pub mod parties;
pub mod session;
pub mod users;

use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post, put};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(title = "centralino API", description = "CRM, dialer, support desk and campaign messaging."),
    paths(
        session::login, session::logout, session::whoami, session::create_token,
        users::list, users::create, users::get, users::list_teams, users::create_team,
        parties::search, parties::create, parties::get, parties::update, parties::delete,
        parties::history, parties::set_consent, parties::by_phone, parties::by_email,
    ),
    components(schemas(crate::error::Problem)),
    tags((name = "session"), (name = "users"), (name = "parties"))
)]
pub struct ApiDoc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(session::login))
        .route("/api/auth/logout", post(session::logout))
        .route("/api/me", get(session::whoami))
        .route("/api/tokens", post(session::create_token))
        .route("/api/users", get(users::list).post(users::create))
        .route("/api/users/{id}", get(users::get))
        .route("/api/teams", get(users::list_teams).post(users::create_team))
        .route("/api/parties", get(parties::search).post(parties::create))
        .route("/api/parties/{id}", get(parties::get).patch(parties::update).delete(parties::delete))
        .route("/api/parties/{id}/history", get(parties::history))
        .route("/api/parties/{id}/consents/{channel}", put(parties::set_consent))
        .route("/api/lookup/phone/{number}", get(parties::by_phone))
        .route("/api/lookup/email/{email}", get(parties::by_email))
}
