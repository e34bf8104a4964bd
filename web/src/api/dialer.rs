//! The outbound dialer over HTTP: campaign configuration (CRUD, leads from
//! lists, imported DNC numbers), start/stop, agents on a campaign (login on
//! a nailed-up leg, pause with a reason, resume, logout), dispositions, and
//! live stats (TSR abandon rate, dial level, agents by state).
//!
//! Campaign tasks ([`dialer::runtime`]) run in this process and are kept in
//! [`Dialers`]; a campaign can only take agent commands on the node that
//! runs it. Tasks are started only when the composition root has given
//! [`Dialers`] a line source (the B2BUA); without one, start/stop only
//! record the intent in the store.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, Problem};
use crate::extract::{Id, Json};
use crate::state::AppState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use crm::UserId;
use crm::dialer_store::{DialerCampaign, DialerCampaignId, DialerConfig, DialerCounts, LeadRow, LoadReport};
use dialer::runtime::{CampaignHandle, Disposition, Stats};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// A function that starts a campaign task on this node (wired by the
/// composition root to the B2BUA).
pub type Starter = Arc<
    dyn Fn(DialerCampaignId) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<CampaignHandle>> + Send>> + Send + Sync,
>;

/// The campaign tasks running in this process.
#[derive(Clone, Default)]
pub struct Dialers {
    running: Arc<tokio::sync::Mutex<HashMap<i64, CampaignHandle>>>,
    starter: Arc<std::sync::OnceLock<Starter>>,
    /// Answers an agent's inbound leg at login (the leg then stays up).
    b2bua: Arc<std::sync::OnceLock<sip::b2bua::B2bua>>,
}

impl Dialers {
    /// Gives the registry a way to start tasks (once, at start-up).
    pub fn set_starter(&self, s: Starter, b2bua: sip::b2bua::B2bua) {
        let _ = self.starter.set(s);
        let _ = self.b2bua.set(b2bua);
    }

    /// Starts a task for every campaign marked running (after a restart).
    pub async fn resume_running(&self, store: &crm::Store) -> anyhow::Result<()> {
        let Some(starter) = self.starter.get().cloned() else { return Ok(()) };
        for c in store.dialer_campaigns().await? {
            if c.running {
                let h = starter(c.id).await?;
                self.running.lock().await.insert(c.id.0, h);
            }
        }
        Ok(())
    }

    async fn handle(&self, id: i64) -> ApiResult<CampaignHandle> {
        self.running
            .lock()
            .await
            .get(&id)
            .cloned()
            .ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "not-running", "the campaign is not running on this node"))
    }
}

fn conflict(e: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "agent-state", e)
}

#[utoipa::path(get, path = "/api/dialer/campaigns", tag = "dialer", responses((status = 200, body = [DialerCampaign])))]
pub async fn list(State(st): State<AppState>, Auth(_a): Auth) -> ApiResult<axum::Json<Vec<DialerCampaign>>> {
    Ok(axum::Json(st.store.dialer_campaigns().await?))
}

#[utoipa::path(post, path = "/api/dialer/campaigns", tag = "dialer", request_body = DialerConfig,
    responses((status = 201, body = DialerCampaign), (status = 403, body = Problem), (status = 422, body = Problem)))]
pub async fn create(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<DialerConfig>) -> ApiResult<(StatusCode, axum::Json<DialerCampaign>)> {
    Ok((StatusCode::CREATED, axum::Json(st.store.create_dialer_campaign(&a, body, crm::now_ms()).await?)))
}

#[utoipa::path(get, path = "/api/dialer/campaigns/{id}", tag = "dialer", params(("id" = i64, Path)), responses((status = 200, body = DialerCampaign), (status = 404, body = Problem)))]
pub async fn get_one(State(st): State<AppState>, Auth(_a): Auth, Id(id): Id) -> ApiResult<axum::Json<DialerCampaign>> {
    Ok(axum::Json(st.store.get_dialer_campaign(DialerCampaignId(id)).await?))
}

#[utoipa::path(put, path = "/api/dialer/campaigns/{id}", tag = "dialer", params(("id" = i64, Path)), request_body = DialerConfig,
    responses((status = 200, body = DialerCampaign), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn update(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<DialerConfig>) -> ApiResult<axum::Json<DialerCampaign>> {
    Ok(axum::Json(st.store.update_dialer_campaign(&a, DialerCampaignId(id), body, crm::now_ms()).await?))
}

#[utoipa::path(delete, path = "/api/dialer/campaigns/{id}", tag = "dialer", params(("id" = i64, Path)), responses((status = 204), (status = 404, body = Problem)))]
pub async fn delete(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<StatusCode> {
    if let Some(h) = st.dialers.running.lock().await.remove(&id) {
        h.stop().await;
    }
    st.store.delete_dialer_campaign(&a, DialerCampaignId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Loads the members of the campaign's lists into its hopper.
#[utoipa::path(post, path = "/api/dialer/campaigns/{id}/load", tag = "dialer", params(("id" = i64, Path)), responses((status = 200, body = LoadReport)))]
pub async fn load(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<LoadReport>> {
    Ok(axum::Json(st.store.dialer_load_lists(&a, DialerCampaignId(id), crm::now_ms()).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Numbers {
    pub numbers: Vec<String>,
    #[serde(default)]
    pub source: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Added {
    pub added: u64,
}

/// Imports numbers into the do-not-call list.
#[utoipa::path(post, path = "/api/dialer/dnc", tag = "dialer", request_body = Numbers, responses((status = 200, body = Added), (status = 422, body = Problem)))]
pub async fn add_dnc(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<Numbers>) -> ApiResult<axum::Json<Added>> {
    let source = body.source.unwrap_or_else(|| "api".into());
    Ok(axum::Json(Added { added: st.store.add_dnc_numbers(&a, &body.numbers, &source, crm::now_ms()).await? }))
}

#[utoipa::path(get, path = "/api/dialer/campaigns/{id}/leads", tag = "dialer", params(("id" = i64, Path)), responses((status = 200, body = [LeadRow])))]
pub async fn leads(State(st): State<AppState>, Auth(_a): Auth, Id(id): Id) -> ApiResult<axum::Json<Vec<LeadRow>>> {
    Ok(axum::Json(st.store.dialer_leads(DialerCampaignId(id)).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Started {
    pub running: bool,
    /// Whether a task runs on this node (false when telephony is off).
    pub live: bool,
}

#[utoipa::path(post, path = "/api/dialer/campaigns/{id}/start", tag = "dialer", params(("id" = i64, Path)), responses((status = 200, body = Started), (status = 404, body = Problem)))]
pub async fn start(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Started>> {
    let cid = DialerCampaignId(id);
    st.store.set_dialer_running(&a, cid, true, crm::now_ms()).await?;
    let mut running = st.dialers.running.lock().await;
    if running.contains_key(&id) {
        return Ok(axum::Json(Started { running: true, live: true }));
    }
    let Some(starter) = st.dialers.starter.get().cloned() else {
        return Ok(axum::Json(Started { running: true, live: false }));
    };
    let h = starter(cid).await.map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "dialer", e.to_string()))?;
    running.insert(id, h);
    Ok(axum::Json(Started { running: true, live: true }))
}

#[utoipa::path(post, path = "/api/dialer/campaigns/{id}/stop", tag = "dialer", params(("id" = i64, Path)), responses((status = 200, body = Started), (status = 404, body = Problem)))]
pub async fn stop(State(st): State<AppState>, Auth(a): Auth, Id(id): Id) -> ApiResult<axum::Json<Started>> {
    st.store.set_dialer_running(&a, DialerCampaignId(id), false, crm::now_ms()).await?;
    if let Some(h) = st.dialers.running.lock().await.remove(&id) {
        h.stop().await;
    }
    Ok(axum::Json(Started { running: false, live: false }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LiveStats {
    pub store: DialerCounts,
    /// The running task's numbers (none when not running here).
    pub live: Option<Stats>,
}

#[utoipa::path(get, path = "/api/dialer/campaigns/{id}/stats", tag = "dialer", params(("id" = i64, Path)), responses((status = 200, body = LiveStats)))]
pub async fn stats(State(st): State<AppState>, Auth(_a): Auth, Id(id): Id) -> ApiResult<axum::Json<LiveStats>> {
    let store = st.store.dialer_counts(DialerCampaignId(id)).await?;
    let live = match st.dialers.handle(id).await {
        Ok(h) => h.stats().await.ok(),
        Err(_) => None,
    };
    Ok(axum::Json(LiveStats { store, live }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentAction {
    /// `login`, `pause`, `resume` or `logout`.
    pub action: String,
    /// The SIP Call-ID of the agent's nailed-up leg (for `login`).
    #[serde(default)]
    pub leg: Option<String>,
    /// Pause reason code (for `pause`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Acting for another agent (supervisors; defaults to the caller).
    #[serde(default)]
    pub agent_id: Option<UserId>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct AgentNow {
    pub state: Option<String>,
}

#[utoipa::path(post, path = "/api/dialer/campaigns/{id}/agent", tag = "dialer", params(("id" = i64, Path)), request_body = AgentAction,
    responses((status = 200, body = AgentNow), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn agent(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<AgentAction>) -> ApiResult<axum::Json<AgentNow>> {
    let who = body.agent_id.unwrap_or(a.user);
    let h = st.dialers.handle(id).await?;
    match body.action.as_str() {
        "login" => {
            let leg = body.leg.ok_or_else(|| ApiError::field("leg", "the nailed-up leg's Call-ID is required"))?;
            // An agent calling in is answered here; a leg already up (or
            // one we dialed out) makes this a harmless error. A leg that
            // has not arrived yet is refused so the agent's client retries.
            if let Some(b) = st.dialers.b2bua.get() {
                let c = sip::msg::CallId::parse(&leg).ok_or_else(|| ApiError::field("leg", "not a SIP Call-ID"))?;
                let _ = b.answer(&c).await;
                if b.leg(&c).await.is_none() {
                    return Err(ApiError::new(StatusCode::CONFLICT, "leg-not-up", "the agent's leg is not up (yet)"));
                }
            }
            h.login(who, leg).await.map_err(conflict)?
        }
        "pause" => h.pause(who, body.reason.unwrap_or_else(|| "break".into())).await.map_err(conflict)?,
        "resume" => h.resume(who).await.map_err(conflict)?,
        "logout" => h.logout(who).await.map_err(conflict)?,
        _ => return Err(ApiError::field("action", "must be login, pause, resume or logout")),
    }
    Ok(axum::Json(AgentNow { state: h.agent_state(who).await.map_err(conflict)? }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispositionInput {
    /// `true` closes the lead; `false` asks for a callback.
    #[serde(rename = "final")]
    pub final_: bool,
    #[serde(default)]
    pub callback_at: Option<i64>,
    #[serde(default)]
    pub callback_agent_only: bool,
    /// Questionnaire answers by question key.
    #[serde(default)]
    pub answers: HashMap<String, String>,
    #[serde(default)]
    pub agent_id: Option<UserId>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Disposed {
    /// The lead's state after the retry rules.
    pub lead_state: String,
}

#[utoipa::path(post, path = "/api/dialer/campaigns/{id}/disposition", tag = "dialer", params(("id" = i64, Path)), request_body = DispositionInput,
    responses((status = 200, body = Disposed), (status = 409, body = Problem)))]
pub async fn dispose(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<DispositionInput>) -> ApiResult<axum::Json<Disposed>> {
    let who = body.agent_id.unwrap_or(a.user);
    let h = st.dialers.handle(id).await?;
    let mut answers: Vec<(String, String)> = body.answers.into_iter().collect();
    answers.sort();
    let d = Disposition { final_: body.final_, callback_at: body.callback_at, callback_agent_only: body.callback_agent_only, answers };
    Ok(axum::Json(Disposed { lead_state: h.dispose(who, d).await.map_err(conflict)? }))
}

/// The dialer's routes, merged into the API router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/dialer/campaigns", get(list).post(create))
        .route("/api/dialer/campaigns/{id}", get(get_one).put(update).delete(delete))
        .route("/api/dialer/campaigns/{id}/load", post(load))
        .route("/api/dialer/campaigns/{id}/leads", get(leads))
        .route("/api/dialer/campaigns/{id}/start", post(start))
        .route("/api/dialer/campaigns/{id}/stop", post(stop))
        .route("/api/dialer/campaigns/{id}/stats", get(stats))
        .route("/api/dialer/campaigns/{id}/agent", post(agent))
        .route("/api/dialer/campaigns/{id}/disposition", post(dispose))
        .route("/api/dialer/dnc", post(add_dnc))
}
