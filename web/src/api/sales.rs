//! Deals and assignment rules, activities (the agenda), the outcome graph
//! (action types, outcomes, relations, commercial states) and the points
//! leaderboard.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Id, Json, Query};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use crm::activities::{Activity, ActivityInput, ActivityPatch, ActivityQuery};
use crm::deals::{AssignmentRule, AssignmentRuleInput, Deal, DealInput, DealPatch, DealQuery};
use crm::outcomes::{ActionType, ActionTypeId, Completion, NamedInput, Outcome, OutcomeId, Relation, RelationInput, Standing};
use crm::parties::Page;
use crm::{ActivityId, DealId, now_ms};
use serde::{Deserialize, Serialize};

// ---- deals -------------------------------------------------------------

#[utoipa::path(get, path = "/api/deals", tag = "deals", params(DealQuery), responses((status = 200, body = Page<Deal>), (status = 422, body = Problem)))]
pub async fn list_deals(State(st): State<AppState>, Auth(a): Auth, Query(q): Query<DealQuery>) -> ApiResult<axum::Json<Page<Deal>>> {
    Ok(axum::Json(st.store.list_deals(&a, &q).await?))
}

#[utoipa::path(post, path = "/api/deals", tag = "deals", request_body = DealInput, responses((status = 201, body = Deal), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_deal(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<DealInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_deal(&a, body).await?)))
}

#[utoipa::path(get, path = "/api/deals/{id}", tag = "deals", params(("id" = i64, Path)), responses((status = 200, body = Deal), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_deal(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Deal>> {
    Ok(axum::Json(st.store.get_deal(&a, DealId(id)).await?))
}

#[utoipa::path(patch, path = "/api/deals/{id}", tag = "deals", params(("id" = i64, Path)), request_body = DealPatch,
    responses((status = 200, body = Deal), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_deal(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<DealPatch>) -> ApiResult<axum::Json<Deal>> {
    Ok(axum::Json(st.store.update_deal(&a, DealId(id), body).await?))
}

#[utoipa::path(delete, path = "/api/deals/{id}", tag = "deals", params(("id" = i64, Path)), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_deal(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    st.store.delete_deal(&a, DealId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/deals/{id}/history", tag = "deals", params(("id" = i64, Path)), responses((status = 200, body = [crm::oplog::LogEntry]), (status = 403, body = Problem)))]
pub async fn deal_history(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Vec<crm::oplog::LogEntry>>> {
    st.store.get_deal(&a, DealId(id)).await?;
    Ok(axum::Json(st.store.history("deal", id, 200).await?))
}

#[utoipa::path(get, path = "/api/assignment-rules", tag = "deals", responses((status = 200, body = [AssignmentRule]), (status = 403, body = Problem)))]
pub async fn list_rules(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<axum::Json<Vec<AssignmentRule>>> {
    Ok(axum::Json(st.store.list_assignment_rules(&a).await?))
}

#[utoipa::path(post, path = "/api/assignment-rules", tag = "deals", request_body = AssignmentRuleInput,
    responses((status = 201, body = AssignmentRule), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_rule(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<AssignmentRuleInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_assignment_rule(&a, body).await?)))
}

// ---- activities ----------------------------------------------------------

#[utoipa::path(get, path = "/api/activities", tag = "activities", params(ActivityQuery), responses((status = 200, body = Page<Activity>), (status = 422, body = Problem)))]
pub async fn list_activities(State(st): State<AppState>, Auth(a): Auth, Query(q): Query<ActivityQuery>) -> ApiResult<axum::Json<Page<Activity>>> {
    Ok(axum::Json(st.store.list_activities(&a, &q, now_ms()).await?))
}

#[utoipa::path(post, path = "/api/activities", tag = "activities", request_body = ActivityInput,
    responses((status = 201, body = Activity), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_activity(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<ActivityInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_activity(&a, body).await?)))
}

#[utoipa::path(get, path = "/api/activities/{id}", tag = "activities", params(("id" = i64, Path)), responses((status = 200, body = Activity), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get_activity(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Activity>> {
    Ok(axum::Json(st.store.get_activity(&a, ActivityId(id)).await?))
}

#[utoipa::path(patch, path = "/api/activities/{id}", tag = "activities", params(("id" = i64, Path)), request_body = ActivityPatch,
    responses((status = 200, body = Activity), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn update_activity(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<ActivityPatch>) -> ApiResult<axum::Json<Activity>> {
    Ok(axum::Json(st.store.update_activity(&a, ActivityId(id), body).await?))
}

#[utoipa::path(delete, path = "/api/activities/{id}", tag = "activities", params(("id" = i64, Path)), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn delete_activity(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    st.store.delete_activity(&a, ActivityId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteBody {
    pub outcome_id: Option<OutcomeId>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// Records the outcome of an activity; the outcome graph does the rest
/// (commercial state, follow-up, points, closing the parent).
#[utoipa::path(post, path = "/api/activities/{id}/complete", tag = "activities", params(("id" = i64, Path)), request_body = CompleteBody,
    responses((status = 200, body = Completion), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn complete_activity(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<CompleteBody>) -> ApiResult<axum::Json<Completion>> {
    Ok(axum::Json(st.store.complete_activity(&a, ActivityId(id), body.outcome_id, body.notes, now_ms()).await?))
}

// ---- the outcome graph -----------------------------------------------------

#[derive(Serialize, utoipa::ToSchema)]
pub struct Graph {
    pub action_types: Vec<ActionType>,
    pub outcomes: Vec<Outcome>,
    pub relations: Vec<Relation>,
    pub commercial_states: Vec<CommercialState>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CommercialState {
    pub id: crm::CommercialStateId,
    pub name: String,
}

/// The whole outcome graph, for the disposition form and the settings page.
#[utoipa::path(get, path = "/api/outcome-graph", tag = "outcomes", responses((status = 200, body = Graph)))]
pub async fn graph(State(st): State<AppState>, Auth(_a): Auth) -> ApiResult<axum::Json<Graph>> {
    Ok(axum::Json(Graph {
        action_types: st.store.list_action_types().await?,
        outcomes: st.store.list_outcomes().await?,
        relations: st.store.relations(None).await?,
        commercial_states: st.store.commercial_states().await?.into_iter().map(|(id, name)| CommercialState { id, name }).collect(),
    }))
}

#[utoipa::path(post, path = "/api/action-types", tag = "outcomes", request_body = NamedInput, responses((status = 201, body = ActionType), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_action_type(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<NamedInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_action_type(&a, body).await?)))
}

#[utoipa::path(post, path = "/api/outcomes", tag = "outcomes", request_body = NamedInput, responses((status = 201, body = Outcome), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_outcome(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<NamedInput>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_outcome(&a, body).await?)))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    pub name: String,
}

#[utoipa::path(post, path = "/api/commercial-states", tag = "outcomes", request_body = StateBody, responses((status = 201, body = CommercialState), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create_state(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<StateBody>) -> ApiResult<impl IntoResponse> {
    let id = st.store.ensure_commercial_state(&a, &body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(CommercialState { id, name: body.name.trim().to_string() })))
}

#[utoipa::path(put, path = "/api/relations", tag = "outcomes", request_body = RelationInput, responses((status = 200, body = Relation), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn set_relation(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<RelationInput>) -> ApiResult<axum::Json<Relation>> {
    Ok(axum::Json(st.store.set_relation(&a, body).await?))
}

#[utoipa::path(delete, path = "/api/relations/{action_type_id}/{outcome_id}", tag = "outcomes",
    params(("action_type_id" = i64, Path), ("outcome_id" = i64, Path)), responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn remove_relation(State(st): State<AppState>, Auth(a): Auth, Path((at, oc)): Path<(String, String)>) -> ApiResult<StatusCode> {
    let at: i64 = at.parse().map_err(|_| ApiError::not_found("relation"))?;
    let oc: i64 = oc.parse().map_err(|_| ApiError::not_found("relation"))?;
    st.store.remove_relation(&a, ActionTypeId(at), OutcomeId(oc)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct Period {
    /// Start, unix millis (inclusive). Default: 30 days ago.
    pub from: Option<i64>,
    /// End, unix millis (exclusive). Default: now.
    pub to: Option<i64>,
}

/// Points per operator over a period (visible operators only).
#[utoipa::path(get, path = "/api/leaderboard", tag = "outcomes", params(Period), responses((status = 200, body = [Standing]), (status = 422, body = Problem)))]
pub async fn leaderboard(State(st): State<AppState>, Auth(a): Auth, Query(p): Query<Period>) -> ApiResult<axum::Json<Vec<Standing>>> {
    let to = p.to.unwrap_or_else(now_ms);
    let from = p.from.unwrap_or(to - 30 * 24 * 3600 * 1000);
    if from >= to {
        return Err(ApiError::field("from", "must be before to"));
    }
    Ok(axum::Json(st.store.leaderboard(&a, from, to).await?))
}
