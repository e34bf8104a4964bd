//! Users and teams (admins manage them; supervisors may read).

use crate::auth::Auth;
use crate::error::{ApiResult, Problem};
use crate::extract::{Id, Json};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use crm::auth::{NewTeam, NewUser, Team, User};

#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = [User]), (status = 403, body = Problem)))]
pub async fn list(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<axum::Json<Vec<User>>> {
    Ok(axum::Json(st.store.list_users(&a).await?))
}

#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<NewUser>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_user(&a, body).await?)))
}

#[utoipa::path(get, path = "/api/users/{id}", tag = "users", params(("id" = i64, Path)),
    responses((status = 200, body = User), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<User>> {
    Ok(axum::Json(st.store.get_user(&a, crm::UserId(id)).await?))
}

#[utoipa::path(get, path = "/api/teams", tag = "users", responses((status = 200, body = [Team])))]
pub async fn list_teams(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<axum::Json<Vec<Team>>> {
    Ok(axum::Json(st.store.list_teams(&a).await?))
}

#[utoipa::path(post, path = "/api/teams", tag = "users", request_body = NewTeam,
    responses((status = 201, body = Team), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_team(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<NewTeam>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_team(&a, body).await?)))
}
