//! Campaigns and their messages over HTTP: create, template save (unknown
//! merge fields and unsafe HTML come back as 422 naming the part), preview
//! per recipient, launch, the message monitor, a recipient's timeline,
//! lists from results, ROI and the compliance alarms. Marketers,
//! supervisors and admins only: agents and support reps get 403.

use crate::auth::Auth;
use crate::error::{ApiResult, Problem};
use crate::extract::{Id, Json, Query};
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use crm::campaigns::{Campaign, CampaignMessage, require_marketing};
use crm::campaigns_monitor::{Alarm, MessageReport, ResultsQuery, Roi, TimelineEntry};
use crm::campaigns_template::{Rendered, Template};
use crm::lists::List;
use crm::{Channel, ListId, PartyId, now_ms};
use serde::{Deserialize, Serialize};

/// The Message-ID domain when none is configured.
pub const DEFAULT_MAIL_DOMAIN: &str = "centralino.invalid";

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    #[serde(default)]
    pub objectives: String,
    #[serde(default)]
    pub budget_cents: i64,
}

#[utoipa::path(post, path = "/api/campaigns", tag = "campaigns", request_body = NewCampaign,
    responses((status = 201, body = Object), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(State(st): State<AppState>, Auth(a): Auth, Json(b): Json<NewCampaign>) -> ApiResult<impl IntoResponse> {
    require_marketing(&a)?;
    let owner = a.log_id().map(crm::UserId);
    let c: Campaign = st.store.create_campaign(&b.name, &b.objectives, b.budget_cents, owner, now_ms()).await?;
    Ok((StatusCode::CREATED, axum::Json(c)))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CampaignDetail {
    #[schema(value_type = Object)]
    pub campaign: Campaign,
    /// `active` or `paused` (by the complaint-rate guard).
    pub state: String,
    pub messages: Vec<CampaignMessage>,
    pub roi: Roi,
    pub alarms: Vec<Alarm>,
}

#[utoipa::path(get, path = "/api/campaigns/{id}", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 200, body = CampaignDetail), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn get(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<CampaignDetail>> {
    require_marketing(&a)?;
    let (campaign, state) = st.store.campaign(id).await?;
    Ok(axum::Json(CampaignDetail {
        campaign,
        state,
        messages: st.store.campaign_messages(id).await?,
        roi: st.store.campaign_roi(id).await?,
        alarms: st.store.campaign_alarms(id).await?,
    }))
}

#[utoipa::path(post, path = "/api/campaigns/{id}/resume", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn resume(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    st.store.resume_campaign(&a, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// `email` (SMS and fax: later).
    pub channel: String,
    pub list_id: ListId,
    pub subject: String,
    pub text: String,
    #[serde(default)]
    pub html: String,
}

#[utoipa::path(post, path = "/api/campaigns/{id}/messages", tag = "campaigns", params(("id" = i64, Path)), request_body = NewMessage,
    responses((status = 201, body = CampaignMessage), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn add_message(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(b): Json<NewMessage>) -> ApiResult<impl IntoResponse> {
    require_marketing(&a)?;
    st.store.campaign(id).await?;
    let channel = Channel::parse(&b.channel).map_err(|e| crate::error::ApiError::field("channel", e))?;
    st.store.get_list(&a, b.list_id).await?;
    let m = st.store.add_campaign_message(id, channel, &b.subject, &b.text, &b.html, b.list_id, now_ms()).await?;
    Ok((StatusCode::CREATED, axum::Json(st.store.campaign_message(m).await?)))
}

#[utoipa::path(put, path = "/api/campaign-messages/{id}/template", tag = "campaigns", params(("id" = i64, Path)), request_body = Template,
    responses((status = 200, body = CampaignMessage), (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn save_template(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(t): Json<Template>) -> ApiResult<axum::Json<CampaignMessage>> {
    Ok(axum::Json(st.store.save_template(&a, id, &t).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct PreviewQuery {
    pub party_id: i64,
}

#[utoipa::path(get, path = "/api/campaign-messages/{id}/preview", tag = "campaigns", params(("id" = i64, Path), PreviewQuery),
    responses((status = 200, body = Rendered), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn preview(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Query(q): Query<PreviewQuery>) -> ApiResult<axum::Json<Rendered>> {
    Ok(axum::Json(st.store.preview(&a, id, PartyId(q.party_id)).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Launched {
    /// Outbox rows created (recipients with an address).
    pub recipients: u64,
}

#[utoipa::path(post, path = "/api/campaign-messages/{id}/launch", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 200, body = Launched), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn launch(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Launched>> {
    require_marketing(&a)?;
    let domain = st.store.campaign_setting("mail_domain").await?.unwrap_or_else(|| DEFAULT_MAIL_DOMAIN.into());
    Ok(axum::Json(Launched { recipients: st.store.launch_message(id, &domain, now_ms()).await? }))
}

#[utoipa::path(get, path = "/api/campaign-messages/{id}/monitor", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 200, body = MessageReport), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub async fn monitor(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<MessageReport>> {
    require_marketing(&a)?;
    Ok(axum::Json(st.store.message_report(id).await?))
}

#[utoipa::path(post, path = "/api/campaign-messages/{id}/lists", tag = "campaigns", params(("id" = i64, Path)), request_body = ResultsQuery,
    responses((status = 201, body = List), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn list_from_results(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(q): Json<ResultsQuery>) -> ApiResult<impl IntoResponse> {
    Ok((StatusCode::CREATED, axum::Json(st.store.list_from_results(&a, id, q).await?)))
}

#[utoipa::path(get, path = "/api/parties/{id}/campaign-timeline", tag = "campaigns", params(("id" = i64, Path)),
    responses((status = 200, body = [TimelineEntry]), (status = 403, body = Problem)))]
pub async fn timeline(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Vec<TimelineEntry>>> {
    st.store.get_party(&a, PartyId(id)).await?;
    Ok(axum::Json(st.store.recipient_timeline(&a, PartyId(id)).await?))
}
