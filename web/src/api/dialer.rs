//! The outbound dialer over HTTP: campaign configuration (CRUD, leads from
//! lists, imported DNC numbers), start/stop, agents on a campaign (login on
//! a nailed-up leg, pause with a reason, resume, logout), preview cards,
//! dispositions through the CRM outcome graph, call records, and stats.
//!
//! Routes (stable; the console calls them):
//! - `GET|POST /api/dialer/campaigns`, `GET|PUT|DELETE /api/dialer/campaigns/{id}`
//! - `POST …/{id}/load` (lists → hopper), `GET …/{id}/leads`, `POST /api/dialer/dnc`
//! - `POST …/{id}/start`, `POST …/{id}/stop`
//! - `GET …/{id}/stats`: `store` (lead states, counts), `window` (abandon
//!   rate over 30 rolling days and the worst 24 h, TSR and UK forms;
//!   answer→bridge p50/p99; callbacks waiting for their agent), `live`
//!   (the running task: ringing, dial level, agents by state)
//! - `POST …/{id}/agent` `{action: login|pause|resume|logout|state, leg?,
//!   reason?, agent_id?}` → `{state, reason, card, call}`; in preview mode a
//!   ready agent is `reserved` with the next lead's `card`
//! - `POST …/{id}/preview/dial` and `…/preview/skip` `{agent_id?}`
//! - `POST …/{id}/disposition` `{final, callback_at?, callback_agent_only?,
//!   answers?, outcome_id?, notes?, agent_id?}` → lead state, CRM activity,
//!   follow-up, points
//! - `GET …/{id}/attempts`: the call records (times, result, agent,
//!   outcome, activity, recording)
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
use crm::dialer_store::{AbandonStats, AttemptRow, CallOutcome, ClaimedLead, DialerCampaign, DialerCampaignId, DialerConfig, DialerCounts, LeadRow, LoadReport};
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
    /// Abandon rates over the measurement windows (all nodes, from the store).
    pub window: AbandonStats,
    /// The running task's numbers (none when not running here).
    pub live: Option<Stats>,
}

#[utoipa::path(get, path = "/api/dialer/campaigns/{id}/stats", tag = "dialer", params(("id" = i64, Path)), responses((status = 200, body = LiveStats)))]
pub async fn stats(State(st): State<AppState>, Auth(_a): Auth, Id(id): Id) -> ApiResult<axum::Json<LiveStats>> {
    let store = st.store.dialer_counts(DialerCampaignId(id)).await?;
    let window = st.store.dialer_abandon_stats(DialerCampaignId(id), crm::now_ms()).await?;
    let live = match st.dialers.handle(id).await {
        Ok(h) => h.stats().await.ok(),
        Err(_) => None,
    };
    Ok(axum::Json(LiveStats { store, window, live }))
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
    /// `logged_out`, `ready`, `reserved`, `on_call`, `wrap_up` or `paused`
    /// (none: never logged in to this campaign).
    pub state: Option<String>,
    /// The pause reason code.
    pub reason: Option<String>,
    /// The lead the agent is reserved for (preview card, own callback).
    pub card: Option<ClaimedLead>,
    /// The customer call the agent is on or wrapping up.
    pub call: Option<String>,
}

async fn agent_now(h: &CampaignHandle, who: UserId) -> ApiResult<AgentNow> {
    let v = h.agent_view(who).await.map_err(conflict)?;
    Ok(match v {
        Some(v) => AgentNow { state: Some(v.state), reason: v.reason, card: v.card, call: v.call },
        None => AgentNow { state: None, reason: None, card: None, call: None },
    })
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
        "state" => {}
        _ => return Err(ApiError::field("action", "must be login, pause, resume, logout or state")),
    }
    Ok(axum::Json(agent_now(&h, who).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewInput {
    /// Acting for another agent (supervisors; defaults to the caller).
    #[serde(default)]
    pub agent_id: Option<UserId>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct PreviewDialed {
    /// The SIP Call-ID of the call placed for the card.
    pub call: String,
}

/// Preview: dials the card the agent is reserved with; the answer is
/// bridged to that agent only.
#[utoipa::path(post, path = "/api/dialer/campaigns/{id}/preview/dial", tag = "dialer", params(("id" = i64, Path)), request_body = PreviewInput,
    responses((status = 200, body = PreviewDialed), (status = 409, body = Problem)))]
pub async fn preview_dial(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<PreviewInput>) -> ApiResult<axum::Json<PreviewDialed>> {
    let h = st.dialers.handle(id).await?;
    let call = h.preview_dial(body.agent_id.unwrap_or(a.user)).await.map_err(conflict)?;
    Ok(axum::Json(PreviewDialed { call }))
}

/// Preview: skips the card (the lead goes back to the queue, the attempt
/// does not count); the agent gets the next card.
#[utoipa::path(post, path = "/api/dialer/campaigns/{id}/preview/skip", tag = "dialer", params(("id" = i64, Path)), request_body = PreviewInput,
    responses((status = 200, body = AgentNow), (status = 409, body = Problem)))]
pub async fn preview_skip(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<PreviewInput>) -> ApiResult<axum::Json<AgentNow>> {
    let who = body.agent_id.unwrap_or(a.user);
    let h = st.dialers.handle(id).await?;
    h.preview_skip(who).await.map_err(conflict)?;
    Ok(axum::Json(agent_now(&h, who).await?))
}

/// The campaign's call records: one per dial attempt.
#[utoipa::path(get, path = "/api/dialer/campaigns/{id}/attempts", tag = "dialer", params(("id" = i64, Path)), responses((status = 200, body = [AttemptRow])))]
pub async fn attempts(State(st): State<AppState>, Auth(_a): Auth, Id(id): Id) -> ApiResult<axum::Json<Vec<AttemptRow>>> {
    Ok(axum::Json(st.store.dialer_attempts(DialerCampaignId(id)).await?))
}

/// A disposition with its CRM outcome, as posted over HTTP.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DispositionBody {
    /// `true` closes the lead; `false` asks for a callback.
    #[serde(rename = "final")]
    pub final_: bool,
    /// For a callback: when (unix millis). Default: when the follow-up
    /// call the outcome schedules falls due, else after the no-answer
    /// interval.
    #[serde(default)]
    pub callback_at: Option<i64>,
    /// The callback is for this agent only: it waits for them.
    #[serde(default)]
    pub callback_agent_only: bool,
    /// Questionnaire answers by question key.
    #[serde(default)]
    pub answers: HashMap<String, String>,
    /// An outcome the CRM outcome graph allows for a `Call`: a `Call`
    /// activity on the lead's party is completed with it (state change,
    /// follow-up, points).
    #[serde(default)]
    pub outcome_id: Option<crm::outcomes::OutcomeId>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub agent_id: Option<UserId>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Disposed {
    /// The lead's state after the retry rules.
    pub lead_state: String,
    /// The completed `Call` activity (when an outcome was given and the lead has a party).
    pub activity_id: Option<crm::ActivityId>,
    pub follow_up_id: Option<crm::ActivityId>,
    pub commercial_state_id: Option<crm::CommercialStateId>,
    pub points: i64,
}

/// Books the agent's call: questionnaire answers, the CRM outcome, the
/// lead's retry rules and callbacks, and the attempt's record.
#[utoipa::path(post, path = "/api/dialer/campaigns/{id}/disposition", tag = "dialer", params(("id" = i64, Path)), request_body = DispositionBody,
    responses((status = 200, body = Disposed), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn dispose_http(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<DispositionBody>) -> ApiResult<axum::Json<Disposed>> {
    let who = body.agent_id.unwrap_or(a.user);
    let h = st.dialers.handle(id).await?;
    let mut answers: Vec<(String, String)> = body.answers.into_iter().collect();
    answers.sort();
    let outcome = body.outcome_id.map(|o| CallOutcome { outcome_id: o, notes: body.notes.clone() });
    let d = Disposition { final_: body.final_, callback_at: body.callback_at, callback_agent_only: body.callback_agent_only, answers, outcome };
    let r = h.dispose_as(a, who, d).await.map_err(|e| match e {
        // Bad input is a field error (422); a stale state a conflict.
        dialer::runtime::DisposeError::Store(e) => ApiError::from(e),
        dialer::runtime::DisposeError::Agent(e) => conflict(e),
    })?;
    Ok(axum::Json(Disposed { lead_state: r.lead_state, activity_id: r.activity_id, follow_up_id: r.follow_up_id, commercial_state_id: r.commercial_state_id, points: r.points }))
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
        .route("/api/dialer/campaigns/{id}/disposition", post(dispose_http))
        .route("/api/dialer/campaigns/{id}/preview/dial", post(preview_dial))
        .route("/api/dialer/campaigns/{id}/preview/skip", post(preview_skip))
        .route("/api/dialer/campaigns/{id}/attempts", get(attempts))
        .route("/api/dialer/dnc", post(add_dnc))
}
