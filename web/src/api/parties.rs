//! Parties: CRUD, search, history, consent, and the "who is calling?" /
//! "who wrote?" lookups (filtered to what the caller may see).

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Id, Json, Query};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use crm::oplog::LogEntry;
use crm::parties::{Page, Party, PartyCard, PartyInput, PartyPatch, PartyQuery};
use crm::{Channel, EmailAddress, PartyId, PhoneNumber};
use serde::Deserialize;

#[utoipa::path(get, path = "/api/parties", tag = "parties", params(PartyQuery),
    responses((status = 200, body = Page<PartyCard>), (status = 422, body = Problem)))]
pub async fn search(State(st): State<AppState>, Auth(a): Auth, Query(q): Query<PartyQuery>) -> ApiResult<axum::Json<Page<PartyCard>>> {
    Ok(axum::Json(st.store.search_parties(&a, &q).await?))
}

#[utoipa::path(post, path = "/api/parties", tag = "parties", request_body = PartyInput,
    responses((status = 201, body = Party), (status = 422, body = Problem)))]
pub async fn create(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<PartyInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_party(&a, body).await?)))
}

#[utoipa::path(get, path = "/api/parties/{id}", tag = "parties", params(("id" = i64, Path)),
    responses((status = 200, body = Party), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Party>> {
    Ok(axum::Json(st.store.get_party(&a, PartyId(id)).await?))
}

#[utoipa::path(patch, path = "/api/parties/{id}", tag = "parties", params(("id" = i64, Path)), request_body = PartyPatch,
    responses((status = 200, body = Party), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<PartyPatch>) -> ApiResult<axum::Json<Party>> {
    Ok(axum::Json(st.store.update_party(&a, PartyId(id), body).await?))
}

#[utoipa::path(delete, path = "/api/parties/{id}", tag = "parties", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    st.store.delete_party(&a, PartyId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/parties/{id}/history", tag = "parties", params(("id" = i64, Path)),
    responses((status = 200, body = [LogEntry]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn history(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Vec<LogEntry>>> {
    st.store.get_party(&a, PartyId(id)).await?;
    Ok(axum::Json(st.store.history("party", id, 200).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    pub granted: bool,
    pub source: String,
}

#[utoipa::path(put, path = "/api/parties/{id}/consents/{channel}", tag = "parties",
    params(("id" = i64, Path), ("channel" = String, Path, description = "email, sms, phone or fax")), request_body = ConsentBody,
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn set_consent(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path((id, channel)): Path<(String, String)>,
    Json(body): Json<ConsentBody>,
) -> ApiResult<StatusCode> {
    let id: i64 = id.parse().map_err(|_| ApiError::not_found("party"))?;
    let ch = Channel::parse(&channel).map_err(|r| ApiError::field("channel", r))?;
    st.store.set_consent(&a, PartyId(id), ch, body.granted, &body.source).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// "Who is calling?": the visible parties owning a phone number.
#[utoipa::path(get, path = "/api/lookup/phone/{number}", tag = "parties", params(("number" = String, Path)),
    responses((status = 200, body = [PartyCard]), (status = 422, body = Problem)))]
pub async fn by_phone(State(st): State<AppState>, Auth(a): Auth, Path(number): Path<String>) -> ApiResult<axum::Json<Vec<PartyCard>>> {
    let n = PhoneNumber::parse(&number, st.store.default_region()).map_err(|r| ApiError::field("number", r))?;
    let cards = st.store.lookup_by_phone(&n).await?;
    Ok(axum::Json(cards.into_iter().filter(|c| a.sees(c.owner_id)).collect()))
}

/// "Who wrote?": the visible parties with an email address.
#[utoipa::path(get, path = "/api/lookup/email/{email}", tag = "parties", params(("email" = String, Path)),
    responses((status = 200, body = [PartyCard]), (status = 422, body = Problem)))]
pub async fn by_email(State(st): State<AppState>, Auth(a): Auth, Path(email): Path<String>) -> ApiResult<axum::Json<Vec<PartyCard>>> {
    let e = EmailAddress::parse(&email).map_err(|r| ApiError::field("email", r))?;
    let cards = st.store.lookup_by_email(&e).await?;
    Ok(axum::Json(cards.into_iter().filter(|c| a.sees(c.owner_id)).collect()))
}

/// The calls of a party, newest first.
#[utoipa::path(get, path = "/api/parties/{id}/calls", tag = "parties", params(("id" = i64, Path)),
    responses((status = 200, body = [crm::calls::CallRecord]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn calls(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Vec<crm::calls::CallRecord>>> {
    Ok(axum::Json(st.store.calls_for_party(&a, PartyId(id), 200).await?))
}
