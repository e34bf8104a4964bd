//! Lists (static and dynamic), duplicate detection and merge, and CSV
//! import over HTTP.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Id, Json, Query};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use crm::dedup::{DuplicateCandidate, DuplicatePair, ScanOptions};
use crm::import::{ImportMapping, ImportOptions, ImportReport, OnExisting};
use crm::lists::{List, ListFilter, ListPage, ListPatch, NewList};
use crm::parties::{Page, Party, PartyCard};
use crm::{ListId, PartyId};
use serde::{Deserialize, Serialize};

#[utoipa::path(get, path = "/api/lists", tag = "lists", responses((status = 200, body = [List])))]
pub async fn lists(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<axum::Json<Vec<List>>> {
    Ok(axum::Json(st.store.lists(&a).await?))
}

#[utoipa::path(post, path = "/api/lists", tag = "lists", request_body = NewList, responses((status = 201, body = List), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_list(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<NewList>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_list(&a, body).await?)))
}

#[utoipa::path(get, path = "/api/lists/{id}", tag = "lists", params(("id" = i64, Path)), responses((status = 200, body = List), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_list(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<List>> {
    Ok(axum::Json(st.store.get_list(&a, ListId(id)).await?))
}

#[utoipa::path(patch, path = "/api/lists/{id}", tag = "lists", params(("id" = i64, Path)), request_body = ListPatch,
    responses((status = 200, body = List), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_list(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<ListPatch>) -> ApiResult<axum::Json<List>> {
    Ok(axum::Json(st.store.update_list(&a, ListId(id), body).await?))
}

#[utoipa::path(delete, path = "/api/lists/{id}", tag = "lists", params(("id" = i64, Path)), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_list(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    st.store.delete_list(&a, ListId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The members of a list, evaluated now for a dynamic list (visible parties only).
#[utoipa::path(get, path = "/api/lists/{id}/members", tag = "lists", params(("id" = i64, Path), ListPage),
    responses((status = 200, body = Page<PartyCard>), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn members(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Query(p): Query<ListPage>) -> ApiResult<axum::Json<Page<PartyCard>>> {
    Ok(axum::Json(st.store.list_members(&a, ListId(id), &p).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Members {
    pub party_ids: Vec<PartyId>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Changed {
    pub changed: u64,
}

#[utoipa::path(post, path = "/api/lists/{id}/members", tag = "lists", params(("id" = i64, Path)), request_body = Members,
    responses((status = 200, body = Changed), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn add_members(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<Members>) -> ApiResult<axum::Json<Changed>> {
    Ok(axum::Json(Changed { changed: st.store.add_list_members(&a, ListId(id), &body.party_ids).await? }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    #[serde(default)]
    pub name: Option<String>,
}

/// Freezes a dynamic list's current members into a new static list.
#[utoipa::path(post, path = "/api/lists/{id}/freeze", tag = "lists", params(("id" = i64, Path)), request_body = Freeze,
    responses((status = 201, body = List), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn freeze(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<Freeze>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.freeze_list(&a, ListId(id), body.name).await?)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Count {
    pub count: i64,
}

/// How many visible parties a filter selects now (the list builder's live count).
#[utoipa::path(post, path = "/api/lists/preview", tag = "lists", request_body = ListFilter, responses((status = 200, body = Count), (status = 422, body = Problem)))]
pub async fn preview(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<ListFilter>) -> ApiResult<axum::Json<Count>> {
    Ok(axum::Json(Count { count: st.store.count_filter(&a, &body).await? }))
}

// ---- duplicates -------------------------------------------------------------

#[utoipa::path(get, path = "/api/parties/{id}/duplicates", tag = "parties", params(("id" = i64, Path)),
    responses((status = 200, body = [DuplicateCandidate]), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn duplicates(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Vec<DuplicateCandidate>>> {
    Ok(axum::Json(st.store.duplicate_candidates(&a, PartyId(id)).await?))
}

#[utoipa::path(post, path = "/api/duplicates/scan", tag = "parties", request_body = ScanOptions, responses((status = 200, body = [DuplicatePair]), (status = 403, body = Problem)))]
pub async fn scan(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<ScanOptions>) -> ApiResult<axum::Json<Vec<DuplicatePair>>> {
    Ok(axum::Json(st.store.scan_duplicates(&a, &body).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Merge {
    pub survivor: PartyId,
    pub victims: Vec<PartyId>,
}

#[utoipa::path(post, path = "/api/parties/merge", tag = "parties", request_body = Merge,
    responses((status = 200, body = Party), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn merge(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<Merge>) -> ApiResult<axum::Json<Party>> {
    Ok(axum::Json(st.store.merge_parties(&a, body.survivor, &body.victims).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    pub a: PartyId,
    pub b: PartyId,
}

#[utoipa::path(post, path = "/api/duplicates/dismiss", tag = "parties", request_body = Pair, responses((status = 204), (status = 403, body = Problem)))]
pub async fn dismiss(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<Pair>) -> ApiResult<StatusCode> {
    st.store.dismiss_duplicate(&a, body.a, body.b).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- import -----------------------------------------------------------------

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ImportParams {
    /// `skip` (default) or `update` for rows matching an existing party.
    pub on_existing: Option<String>,
    pub default_kind: Option<String>,
    pub default_stage: Option<String>,
    /// Owner of the created parties (default: the importing user).
    pub owner_id: Option<i64>,
}

/// Imports a CSV (the request body, `text/csv`) with automatic column
/// mapping; bad rows come back in `rejected` with their line numbers.
#[utoipa::path(post, path = "/api/import/parties", tag = "parties", params(ImportParams), request_body(content = String, content_type = "text/csv"),
    responses((status = 200, body = ImportReport), (status = 403, body = Problem), (status = 415, body = Problem), (status = 422, body = Problem)))]
pub async fn import(State(st): State<AppState>, Auth(a): Auth, Query(q): Query<ImportParams>, headers: HeaderMap, body: Bytes) -> ApiResult<axum::Json<ImportReport>> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("text/csv") {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "send Content-Type: text/csv"));
    }
    let on_existing = match q.on_existing.as_deref() {
        None | Some("skip") => OnExisting::Skip,
        Some("update") => OnExisting::Update,
        Some(_) => return Err(ApiError::field("on_existing", "skip or update")),
    };
    let options = ImportOptions {
        on_existing,
        default_kind: q.default_kind,
        default_stage: q.default_stage,
        owner_id: Some(q.owner_id.map(crm::UserId).unwrap_or(a.user)),
        consent_source: Some(format!("import by {}", a.username)),
        ..Default::default()
    };
    let mapping = ImportMapping::default();
    let report = st.store.import_parties(&a, std::io::Cursor::new(body.to_vec()), &mapping, &options, |_| {}).await?;
    Ok(axum::Json(report))
}
