//! The agent desk's server side: the browser softphone's routes, agent
//! commands on a dialer campaign (which also announce the agent's state on
//! the event socket), and the card pop when the dialer connects a customer
//! to an agent's softphone leg.
//!
//! [`Desk`] keeps the softphones ([`crate::webrtc::Softphones`]) and a
//! broadcast of [`DeskEvent`]s that [`crate::ws`] cuts per connection:
//! an agent sees their own events, supervisors and admins everyone's.
//! [`Desk::watch`] turns the dialer's bridges (reported by
//! [`crate::dialer_lines`]) and the calls' ends into `connected` (with the
//! customer's party cards) and `call_ended` events.

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Id, Json};
use crate::state::AppState;
use crate::webrtc::Softphones;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use crm::{PhoneNumber, Store};
use dialer::runtime::LineEvent;
use serde::{Deserialize, Serialize};
use sip::b2bua::B2bua;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::broadcast;

/// What the agent desk and the wallboard hear on the event socket.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DeskEvent {
    /// An agent's state on a campaign changed (`ready`, `paused`, …).
    Agent { user: i64, username: String, campaign: i64, state: Option<String>, reason: Option<String>, at: i64 },
    /// The dialer connected a customer to the agent's leg.
    Connected { user: i64, campaign: Option<i64>, call: String, number: String, parties: Vec<crm::parties::PartyCard>, at: i64 },
    /// The customer's call ended (wrap-up starts).
    CallEnded { user: i64, call: String, at: i64 },
}

impl DeskEvent {
    pub fn user(&self) -> i64 {
        match self {
            DeskEvent::Agent { user, .. } | DeskEvent::Connected { user, .. } | DeskEvent::CallEnded { user, .. } => *user,
        }
    }
}

/// A pop's Call-ID and its socket text.
type RenderedPop = (String, Arc<str>);

/// The agent desks of this process. Cheap to clone.
#[derive(Clone)]
pub struct Desk {
    pub softphones: Softphones,
    events: broadcast::Sender<DeskEvent>,
    b2bua: Arc<OnceLock<B2bua>>,
    /// The customer call each agent is on, and the campaign they last joined.
    calls: Arc<Mutex<HashMap<i64, String>>>,
    campaigns: Arc<Mutex<HashMap<i64, i64>>>,
    /// The last screen-pop rendered for the sockets that see all of it.
    last_pop: Arc<Mutex<Option<RenderedPop>>>,
    /// The calls' line events (resubscribed by each click-to-call).
    lines: Arc<OnceLock<Mutex<broadcast::Receiver<LineEvent>>>>,
}

impl Default for Desk {
    fn default() -> Self {
        Desk {
            softphones: Softphones::default(),
            events: broadcast::channel(1024).0,
            b2bua: Default::default(),
            calls: Default::default(),
            campaigns: Default::default(),
            last_pop: Default::default(),
            lines: Default::default(),
        }
    }
}

impl Desk {
    pub fn subscribe(&self) -> broadcast::Receiver<DeskEvent> {
        self.events.subscribe()
    }

    pub fn emit(&self, ev: DeskEvent) {
        let _ = self.events.send(ev);
    }

    /// The pop's socket text, rendered once per call for every socket that
    /// sees all of its parties.
    pub fn pop_text(&self, pop: &crate::telephony::ScreenPop) -> Option<Arc<str>> {
        let mut last = self.last_pop.lock().ok()?;
        if let Some((call, text)) = last.as_ref()
            && *call == pop.call_id
        {
            return Some(text.clone());
        }
        let text: Arc<str> = Arc::from(crate::ws::pop_text(pop)?);
        *last = Some((pop.call_id.clone(), text.clone()));
        Some(text)
    }

    /// The call the agent is on now, if any.
    pub fn call_of(&self, user: i64) -> Option<String> {
        self.calls.lock().ok()?.get(&user).cloned()
    }

    /// Wires the desks to telephony: softphones get the B2BUA, and a task
    /// turns bridges to softphone legs and call ends into desk events.
    pub fn watch(
        &self,
        store: Store,
        b2bua: B2bua,
        media_ip: std::net::IpAddr,
        mut bridges: broadcast::Receiver<(String, String)>,
        mut lines: broadcast::Receiver<LineEvent>,
    ) -> tokio::task::JoinHandle<()> {
        self.softphones.set_b2bua(b2bua.clone(), media_ip);
        let _ = self.b2bua.set(b2bua.clone());
        let _ = self.lines.set(Mutex::new(lines.resubscribe()));
        let desk = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    b = bridges.recv() => match b {
                        Ok((leg, call)) => desk.on_bridge(&store, &b2bua, &leg, &call).await,
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    l = lines.recv() => match l {
                        Ok(LineEvent::Ended { call, .. }) => desk.on_end(&call),
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                }
            }
        })
    }

    async fn on_bridge(&self, store: &Store, b2bua: &B2bua, leg: &str, call: &str) {
        let Some(user) = self.softphones.user_of_leg(leg) else { return };
        let number = match sip::msg::CallId::parse(call) {
            Some(c) => b2bua.parties(&c).await.map(|(_, to)| to).unwrap_or_default(),
            None => String::new(),
        };
        let parties = match PhoneNumber::parse(&number, store.default_region()) {
            Ok(n) => store.lookup_by_phone(&n).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        if let Ok(mut m) = self.calls.lock() {
            m.insert(user, call.to_string());
        }
        let campaign = self.campaigns.lock().ok().and_then(|m| m.get(&user).copied());
        self.emit(DeskEvent::Connected { user, campaign, call: call.to_string(), number, parties, at: crm::now_ms() });
    }

    fn on_end(&self, call: &str) {
        let user = {
            let Ok(mut m) = self.calls.lock() else { return };
            let Some(u) = m.iter().find(|(_, c)| c.as_str() == call).map(|(u, _)| *u) else { return };
            m.remove(&u);
            u
        };
        self.emit(DeskEvent::CallEnded { user, call: call.to_string(), at: crm::now_ms() });
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// The browser's SDP offer (non-trickle: gathered candidates included).
    pub sdp: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Answer {
    pub sdp: String,
    /// The leg's Call-ID (what the dialer's `login` takes).
    pub leg: String,
}

/// `POST /api/console/softphone`: opens the caller's softphone leg.
async fn open_softphone(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<Offer>) -> ApiResult<axum::Json<Answer>> {
    use crate::webrtc::SoftphoneError as E;
    if !crate::ws::receives_calls(a.role) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this role takes no calls"));
    }
    match st.desk.softphones.open(a.user.0, &a.username, body.sdp).await {
        Ok(o) => Ok(axum::Json(Answer { sdp: o.sdp, leg: o.leg.to_string() })),
        Err(E::NoTelephony) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no-telephony", "telephony is off on this server")),
        Err(e @ (E::BadOffer(_) | E::NoPcmu)) => Err(ApiError::field("sdp", e.to_string())),
        Err(e) => {
            tracing::warn!(error = %e, "softphone leg failed");
            Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "softphone", "the softphone leg could not be set up"))
        }
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct SoftphoneNow {
    pub leg: String,
    /// The peer connection's state (`connected` once DTLS-SRTP is up).
    pub state: String,
    /// RTP packets from the browser relayed toward the call.
    pub from_browser: u64,
    /// RTP packets from the call written to the browser.
    pub to_browser: u64,
    /// The customer call the leg is bridged to now.
    pub call: Option<String>,
    /// RTP counted on that call's SIP-side media leg.
    pub call_rtp: Option<CallRtp>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CallRtp {
    /// Packets received from the carrier.
    pub received: u64,
    /// Packets sent to the carrier.
    pub sent: u64,
}

/// `GET /api/console/softphone`: the caller's leg and its counters.
async fn softphone_now(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<axum::Json<SoftphoneNow>> {
    let p = st.desk.softphones.of(a.user.0).ok_or_else(|| ApiError::not_found("softphone"))?;
    let call = st.desk.call_of(a.user.0);
    let mut call_rtp = None;
    if let (Some(c), Some(b)) = (call.as_deref().and_then(sip::msg::CallId::parse), st.desk.b2bua.get())
        && let Some(leg) = b.leg(&c).await
        && let Ok(Some(s)) = b.media().stats(leg).await
    {
        call_rtp = Some(CallRtp { received: s.received, sent: s.sent });
    }
    Ok(axum::Json(SoftphoneNow {
        leg: p.leg.to_string(),
        state: p.state.lock().map(|s| s.clone()).unwrap_or_default(),
        from_browser: p.counters.from_browser.load(Ordering::Relaxed),
        to_browser: p.counters.to_browser.load(Ordering::Relaxed),
        call,
        call_rtp,
    }))
}

async fn close_softphone(State(st): State<AppState>, Auth(a): Auth) -> StatusCode {
    st.desk.softphones.close(a.user.0).await;
    StatusCode::NO_CONTENT
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeskAction {
    /// `login` (with the caller's softphone leg), `pause`, `resume`, `logout`
    /// or `state` (read only: not announced).
    pub action: String,
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /api/console/campaigns/{id}/agent`: the dialer's agent command for
/// the caller (login takes their softphone leg), announced on the socket.
async fn agent_action(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<DeskAction>) -> ApiResult<axum::Json<crate::api::dialer::AgentNow>> {
    let leg = if body.action == "login" {
        let p = st.desk.softphones.of(a.user.0).ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "no-softphone", "open the softphone first"))?;
        Some(p.leg.to_string())
    } else {
        None
    };
    let cmd = crate::api::dialer::AgentAction { action: body.action.clone(), leg, reason: body.reason.clone(), agent_id: None };
    let now = crate::api::dialer::agent(State(st.clone()), Auth(a.clone()), Id(id), Json(cmd)).await?;
    if body.action == "login"
        && let Ok(mut m) = st.desk.campaigns.lock()
    {
        m.insert(a.user.0, id);
    }
    if body.action == "state" {
        return Ok(now);
    }
    st.desk.emit(DeskEvent::Agent { user: a.user.0, username: a.username.clone(), campaign: id, state: now.0.state.clone(), reason: body.reason, at: crm::now_ms() });
    Ok(now)
}

/// `POST /api/console/hangup`: hangs up the customer the caller talks to.
async fn hangup(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<StatusCode> {
    let call = st.desk.call_of(a.user.0).ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "no-call", "no call to hang up"))?;
    let b = st.desk.b2bua.get().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no-telephony", "telephony is off"))?;
    let c = sip::msg::CallId::parse(&call).ok_or_else(|| ApiError::not_found("call"))?;
    b.hangup(&c).await.map_err(|e| ApiError::new(StatusCode::CONFLICT, "hangup", e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ManualDial {
    /// The number to call (E.164, or national in the store's region).
    pub number: String,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Dialed {
    /// The customer call, bridged to the caller's softphone leg.
    pub call: String,
    /// The number dialled, E.164.
    pub number: String,
}

/// `POST /api/console/dial`: click-to-call. The caller (logged in to a
/// campaign with their softphone, ready or paused, not on a call) is paused
/// on the dialer (so it connects no customer to them meanwhile), the number
/// is dialled through the campaign's trunk with its caller id, and on answer
/// the call is bridged to the agent's leg and the card pops as for a dialer
/// call. Answers once bridged; an unanswered call is a 409 with how it ended.
async fn manual_dial(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<ManualDial>) -> ApiResult<axum::Json<Dialed>> {
    let number = PhoneNumber::parse(&body.number, st.store.default_region()).map_err(|e| ApiError::field("number", e))?;
    let user = a.user.0;
    let p = st.desk.softphones.of(user).ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "no-softphone", "open the softphone first"))?;
    if st.desk.call_of(user).is_some() {
        return Err(ApiError::new(StatusCode::CONFLICT, "on-call", "already on a call"));
    }
    let campaign = st.desk.campaigns.lock().ok().and_then(|m| m.get(&user).copied()).ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "not-logged-in", "log in to a campaign first"))?;
    let b = st.desk.b2bua.get().cloned().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no-telephony", "telephony is off"))?;
    let cfg = st.store.get_dialer_campaign(crm::dialer_store::DialerCampaignId(campaign)).await?.config;
    let trunk: std::net::SocketAddr = cfg.trunk.parse().map_err(|_| ApiError::new(StatusCode::CONFLICT, "bad-trunk", format!("the campaign's trunk {:?} is not an address", cfg.trunk)))?;
    let state = |a: &str| crate::api::dialer::AgentAction { action: a.to_string(), leg: None, reason: Some("manual".to_string()), agent_id: None };
    let now = crate::api::dialer::agent(State(st.clone()), Auth(a.clone()), Id(campaign), Json(state("state"))).await?;
    match now.0.state.as_deref() {
        Some("ready") => {
            let now = crate::api::dialer::agent(State(st.clone()), Auth(a.clone()), Id(campaign), Json(state("pause"))).await?;
            st.desk.emit(DeskEvent::Agent { user, username: a.username.clone(), campaign, state: now.0.state.clone(), reason: Some("manual".into()), at: crm::now_ms() });
        }
        Some("paused") => {}
        other => return Err(ApiError::new(StatusCode::CONFLICT, "busy", format!("the agent is {} on the dialer", other.unwrap_or("logged out")))),
    }
    let mut rx = st.desk.lines.get().and_then(|m| m.lock().ok().map(|r| r.resubscribe())).ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no-telephony", "telephony is off"))?;
    let ring = std::time::Duration::from_secs(u64::try_from(cfg.ring_timeout_s).unwrap_or(25));
    let caller = if cfg.caller_id.trim().is_empty() { "anonymous".to_string() } else { cfg.caller_id.clone() };
    let dial = sip::endpoint::Dial { trunk, number: number.as_str().to_string(), caller, rtp: std::net::SocketAddr::from(([0, 0, 0, 0], 0)), auth: None, ring_timeout: Some(ring) };
    let call = b.dial(dial).await.map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, "dial", e.to_string()))?;
    let id = call.to_string();
    let waited = tokio::time::timeout(ring + std::time::Duration::from_secs(10), async {
        loop {
            match rx.recv().await {
                Ok(LineEvent::Answered { call }) if call == id => return Ok(()),
                Ok(LineEvent::Ended { call, how }) if call == id => return Err(format!("{how:?}")),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Err("telephony stopped".to_string()),
            }
        }
    })
    .await;
    match waited {
        Ok(Ok(())) => {}
        Ok(Err(how)) => return Err(ApiError::new(StatusCode::CONFLICT, "not-answered", format!("the call was not answered: {how}"))),
        Err(_) => {
            let _ = b.hangup(&call).await;
            return Err(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "not-answered", "no answer"));
        }
    }
    let leg = p.leg.to_string();
    let leg_id = sip::msg::CallId::parse(&leg).ok_or_else(|| ApiError::not_found("leg"))?;
    if let Err(e) = b.bridge(&leg_id, &call).await {
        let _ = b.hangup(&call).await;
        return Err(ApiError::new(StatusCode::CONFLICT, "bridge", e.to_string()));
    }
    st.desk.on_bridge(&st.store, &b, &leg, &id).await;
    Ok(axum::Json(Dialed { call: id, number: number.as_str().to_string() }))
}

/// The agent's current call and the B2BUA, or the error to answer with.
fn current(st: &AppState, user: i64) -> ApiResult<(B2bua, sip::msg::CallId)> {
    let call = st.desk.call_of(user).ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "no-call", "no call now"))?;
    let b = st.desk.b2bua.get().ok_or_else(|| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no-telephony", "telephony is off"))?;
    let c = sip::msg::CallId::parse(&call).ok_or_else(|| ApiError::not_found("call"))?;
    Ok((b.clone(), c))
}

/// In-band DTMF (the agent's keypad toward an IVR): 120 ms of the digit's
/// two tones and 60 ms of silence per key, 8 kHz. In-band because the
/// browser leg negotiates no telephone-event (see `webrtc`).
pub fn dtmf_tones(digits: &str) -> Option<Vec<i16>> {
    const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
    const COLS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
    const KEYS: [&str; 4] = ["123A", "456B", "789C", "*0#D"];
    let mut out = Vec::new();
    for d in digits.chars() {
        let (r, c) = KEYS.iter().enumerate().find_map(|(r, row)| row.find(d.to_ascii_uppercase()).map(|c| (r, c)))?;
        for i in 0..960 {
            let t = f64::from(i) / 8000.0;
            let s = (2.0 * std::f64::consts::PI * ROWS[r] * t).sin() + (2.0 * std::f64::consts::PI * COLS[c] * t).sin();
            out.push((s * 7000.0) as i16);
        }
        out.extend(std::iter::repeat_n(0i16, 480));
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dtmf {
    /// Keys to send: 0–9, *, #, A–D (up to 32).
    pub digits: String,
}

/// `POST /api/console/dtmf`: plays the keys into the agent's call.
async fn dtmf(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<Dtmf>) -> ApiResult<StatusCode> {
    let samples = match dtmf_tones(&body.digits) {
        Some(s) if body.digits.len() <= 32 => s,
        _ => return Err(ApiError::field("digits", "1 to 32 of 0-9 * # A-D")),
    };
    let (b, c) = current(&st, a.user.0)?;
    b.play(&c, sip::wav::Prompt::from_samples(&samples, sip::g711::Codec::Pcmu)).await.map_err(|e| ApiError::new(StatusCode::CONFLICT, "dtmf", e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Hold {
    pub hold: bool,
}

/// `POST /api/console/hold`: takes the customer off the agent's leg (they
/// hear a soft tone every 3 s) or puts them back.
async fn hold(State(st): State<AppState>, Auth(a): Auth, Json(body): Json<Hold>) -> ApiResult<StatusCode> {
    let (b, c) = current(&st, a.user.0)?;
    let err = |e: sip::b2bua::B2buaError| ApiError::new(StatusCode::CONFLICT, "hold", e.to_string());
    if body.hold {
        b.unbridge(&c).await.map_err(err)?;
        let mut tone = Vec::with_capacity(8000 * 60);
        for n in 0..20 {
            for i in 0..1600 {
                let t = f64::from(i) / 8000.0;
                let v = (2.0 * std::f64::consts::PI * if n % 2 == 0 { 440.0 } else { 554.0 } * t).sin() * 3000.0 * (t * 5.0 * std::f64::consts::PI).sin();
                tone.push(v as i16);
            }
            tone.extend(std::iter::repeat_n(0i16, 22400));
        }
        b.play(&c, sip::wav::Prompt::from_samples(&tone, sip::g711::Codec::Pcmu)).await.map_err(err)?;
    } else {
        let p = st.desk.softphones.of(a.user.0).ok_or_else(|| ApiError::new(StatusCode::CONFLICT, "no-softphone", "no softphone leg"))?;
        if let Some(leg) = b.leg(&c).await {
            let _ = b.media().stop_play(leg);
        }
        b.bridge(&p.leg, &c).await.map_err(err)?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeskDisposition {
    /// An outcome the graph allows for a `Call`.
    pub outcome_id: i64,
    #[serde(default)]
    pub notes: Option<String>,
    /// For a callback: when (unix millis).
    #[serde(default)]
    pub callback_at: Option<i64>,
    /// The campaign script's answers by question key.
    #[serde(default)]
    pub answers: HashMap<String, String>,
}

/// `POST /api/console/campaigns/{id}/disposition`: the agent's outcome,
/// booked by the dialer in one go (questionnaire answers, a `Call` activity
/// on the lead's party completed with the outcome — state, follow-up and
/// points from the outcome graph — the lead's retry rules and the attempt's
/// record). Final unless a callback time is given; a callback waits for
/// this agent.
async fn dispose(State(st): State<AppState>, Auth(a): Auth, Id(id): Id, Json(body): Json<DeskDisposition>) -> ApiResult<axum::Json<crate::api::dialer::Disposed>> {
    let d = crate::api::dialer::DispositionBody {
        final_: body.callback_at.is_none(),
        callback_at: body.callback_at,
        callback_agent_only: true,
        answers: body.answers,
        outcome_id: Some(crm::outcomes::OutcomeId(body.outcome_id)),
        notes: body.notes,
        agent_id: None,
    };
    crate::api::dialer::dispose_http(State(st), Auth(a), Id(id), Json(d)).await
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/console/softphone", post(open_softphone).get(softphone_now).delete(close_softphone))
        .route("/api/console/campaigns/{id}/agent", post(agent_action))
        .route("/api/console/campaigns/{id}/disposition", post(dispose))
        .route("/api/console/hangup", post(hangup))
        .route("/api/console/dtmf", post(dtmf))
        .route("/api/console/hold", post(hold))
        .route("/api/console/dial", post(manual_dial))
}

/// Whether `actor` may see this desk event: their own, or anyone's for
/// supervisors and admins (party cards cut to the actor's scope).
pub fn event_for(actor: &crm::Actor, ev: &DeskEvent) -> Option<DeskEvent> {
    let own = ev.user() == actor.user.0;
    if !own && !matches!(actor.role, crm::Role::Supervisor | crm::Role::Admin) {
        return None;
    }
    let mut ev = ev.clone();
    if let DeskEvent::Connected { parties, .. } = &mut ev {
        parties.retain(|c| actor.sees(c.owner_id));
    }
    Some(ev)
}
