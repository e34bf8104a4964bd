//! The live dialer: one tokio task per running campaign.
//!
//! Every 250 ms the task asks the campaign's [`Pacer`] how many calls to
//! place, claims that many leads from the CRM hopper
//! ([`crm::Store::dialer_claim`]), and dials them through a [`Lines`]
//! implementation (the B2BUA in production, a scripted fake in tests). A
//! live answer is bridged at once to the longest-idle ready agent's
//! **nailed-up leg** — a call that stays up for the agent's whole session,
//! so bridging needs no signalling toward the agent — and the
//! answer→bridge latency is measured. An answered call that finds no agent
//! within the grace time (2 s) gets the campaign's safe-harbour prompt,
//! is hung up and counted as an **abandon**. Everything that happens is fed
//! back to the pacer as [`pacing::Event`]s, exactly as the simulator does.
//!
//! Commands (agent login/ready/pause/logout, dispositions, preview
//! dial/skip, stats, stop) arrive on a channel through [`CampaignHandle`],
//! so the task owns all of its state and needs no locks.
//!
//! Reservations: in preview mode each ready agent is **reserved** with the
//! next lead's card (the lead is claimed, its attempt open) until they dial
//! or skip it. In every mode a due callback meant for one agent only is
//! claimed only while that agent is ready here; the agent is reserved for
//! it, and the answer goes to them alone. While the agent is away such a
//! callback stays due in the queue and waits for them (shown as
//! `callbacks_waiting` in the store's stats) — it is never given to
//! someone else. One exception: if the reserved agent's leg fails between
//! the dial and the answer, the callee who answered goes to the next free
//! agent rather than being dropped.
//!
//! Agent legs die (a softphone closes, a network drops): the task hears the
//! leg's end like any call's (or finds the leg gone when it checks, once a
//! second, or when a bridge to it fails), logs the agent out and never bridges to that
//! leg again; a call the agent was on is hung up and booked `agent_gone`
//! (retried later), an undisposed wrap-up is booked as a callback for
//! anyone.
//!
//! Answering-machine detection (a campaign's `amd.mode` other than `off`):
//! an answered call that is not reserved for an agent is first listened
//! to ([`Lines::listen`]: the callee's audio as 20 ms PCM frames) by an
//! [`Amd`] detector on its own task, for at most its analysis time
//! (2.5 s by default). Human (or not sure) → the call goes to an agent as
//! without AMD, the grace time counting from the decision (Ofcom's 2 s
//! run from the end of the callee's greeting); machine → the campaign's
//! action: hang up, leave the campaign's message once the greeting has
//! ended ([`GreetingEndDetector`]) then hang up, or pass it to an agent
//! anyway. The verdict is booked on the attempt, a machine that is not
//! passed on is booked `machine` (retried by the machine rule, and
//! counted in the UK abandon form), and the pacer hears only the human
//! answers as answers. With AMD off nothing of this runs.
//!
//! Durability: every claim opens an attempt record in the store before
//! dialing, answers and bridges are written as they happen, and every end
//! is booked through [`crm::Store::dialer_finish`]. A crashed node's leads
//! are recycled by [`crm::Store::dialer_recover`] when it starts again
//! ([`recover`]).
//!
//! Architecture invariant: the runtime is the only part of the dialer that
//! reads a clock, sleeps or does I/O; pacing and agent states stay pure.

use crate::agents::{Agent, AgentState};
use crate::amd::{Amd, AmdPolicy, CallAction, Decision, GreetingEndDetector, MachineAction, Reason, Verdict};
use crate::pacing::{self, AgentId, CallId, Event, Pacer, PacingMode, Time};
use crm::dialer_store::{AttemptResult, CallOutcome, ClaimedLead, DialerCampaignId, DialerConfig, DisposeReport};
use crm::{Actor, Millis, Store, UserId};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// How a line (an outbound call) ended before reaching an agent, or after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEnd {
    Busy,
    NoAnswer,
    /// Carrier or network trouble, bad number.
    Failed,
    /// It was answered and has now been hung up (by either side).
    Completed,
}

/// What the telephony layer reports about the calls the runtime placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    Answered { call: String },
    Ended { call: String, how: LineEnd },
}

/// The call control the runtime needs. Implemented over
/// `sip::b2bua::B2bua` by the composition root and by fakes in tests.
pub trait Lines: Send + Sync + 'static {
    /// Places a call; returns its SIP Call-ID.
    fn dial(&self, number: &str, caller: &str, trunk: SocketAddr, ring: Duration) -> impl Future<Output = Result<String, String>> + Send;
    /// Joins the agent's nailed-up leg to an answered call.
    fn bridge(&self, agent_leg: &str, call: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Plays the safe-harbour prompt, then hangs up.
    fn abandon(&self, call: &str, prompt: &str) -> impl Future<Output = Result<(), String>> + Send;
    fn hangup(&self, call: &str) -> impl Future<Output = Result<(), String>> + Send;
    /// Whether an agent's leg is still up (checked when a bridge fails, to
    /// tell a dead agent leg from a callee who just left).
    fn leg_alive(&self, _leg: &str) -> impl Future<Output = bool> + Send {
        async { true }
    }
    /// The call's SIP dialog, opaque, kept in the store while the call is
    /// up so that after a crash the restarted node can end it at the
    /// carrier before any lead is redialed. `None`: not kept.
    fn dialog(&self, _call: &str) -> impl Future<Output = Option<String>> + Send {
        async { None }
    }
    /// Starts recording an answered call into `path` (until it ends).
    fn record(&self, _call: &str, _path: &std::path::Path) -> impl Future<Output = Result<(), String>> + Send {
        async { Err("recording is not supported by these lines".to_string()) }
    }
    /// Listens to an answered call: the callee's inbound audio as 20 ms
    /// frames of 8 kHz 16-bit PCM for the next `max` of audio (the channel
    /// closes after that, or when the call ends). Frames may be dropped
    /// if the listener lags; the sender never waits. Used by AMD; lines
    /// without it make AMD treat every answer as a person.
    fn listen(&self, _call: &str, _max: Duration) -> impl Future<Output = Result<mpsc::Receiver<[i16; 160]>, String>> + Send {
        async { Err("listening is not supported by these lines".to_string()) }
    }
}

/// The disposition an agent posts for the call they just had.
#[derive(Debug, Clone, PartialEq)]
pub struct Disposition {
    /// `true` closes the lead; `false` schedules a callback.
    pub final_: bool,
    pub callback_at: Option<Millis>,
    /// A callback for this agent only (else for anyone).
    pub callback_agent_only: bool,
    pub answers: Vec<(String, String)>,
    /// The outcome in the CRM outcome graph (a `Call` activity on the
    /// lead's party is completed with it).
    pub outcome: Option<CallOutcome>,
}

/// Why a disposition was not booked: the agent's state (nothing to
/// dispose of, not logged in) or the store (bad input is
/// `crm::Error::Invalid` with its fields; nothing changed).
#[derive(Debug, thiserror::Error)]
pub enum DisposeError {
    #[error("{0}")]
    Agent(String),
    #[error(transparent)]
    Store(#[from] crm::Error),
}

/// An agent as the API shows them: state, pause reason, and the card of
/// the lead they are reserved for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct AgentView {
    pub state: String,
    pub reason: Option<String>,
    /// The reserved lead (preview card or a callback for this agent).
    pub card: Option<ClaimedLead>,
    /// The Call-ID of the customer call this agent is on or wrapping up.
    pub call: Option<String>,
}

/// Live numbers of a campaign.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Stats {
    pub placed: u64,
    pub ringing: u64,
    pub live_answers: u64,
    pub abandons: u64,
    /// TSR form: abandons / live answers.
    pub abandon_rate: f64,
    /// Lines per logged-in, non-paused agent right now.
    pub dial_level: f64,
    pub agents: BTreeMap<String, u64>,
    /// Answer→bridge latencies in ms, p50 and p99 (0 before any bridge).
    pub bridge_p50_ms: u64,
    pub bridge_p99_ms: u64,
    /// The same in microseconds (answer event seen → media switched).
    pub bridge_p50_us: u64,
    pub bridge_p99_us: u64,
    /// AMD verdicts on answered calls (all 0 with AMD off). Machines are
    /// not live answers unless passed to an agent.
    pub amd_humans: u64,
    pub amd_machines: u64,
    pub amd_not_sure: u64,
}

#[derive(Debug)]
pub enum Command {
    Login { agent: UserId, leg: String, reply: oneshot::Sender<Result<(), String>> },
    Pause { agent: UserId, reason: String, reply: oneshot::Sender<Result<(), String>> },
    Resume { agent: UserId, reply: oneshot::Sender<Result<(), String>> },
    Logout { agent: UserId, reply: oneshot::Sender<Result<(), String>> },
    Dispose { actor: Actor, agent: UserId, disposition: Disposition, reply: oneshot::Sender<Result<DisposeReport, DisposeError>> },
    PreviewDial { agent: UserId, reply: oneshot::Sender<Result<String, String>> },
    PreviewSkip { agent: UserId, reply: oneshot::Sender<Result<(), String>> },
    AgentView { agent: UserId, reply: oneshot::Sender<Option<AgentView>> },
    Stats { reply: oneshot::Sender<Stats> },
    AgentState { agent: UserId, reply: oneshot::Sender<Option<String>> },
    Stop,
}

/// Talks to one campaign's task.
#[derive(Debug, Clone)]
pub struct CampaignHandle {
    tx: mpsc::Sender<Command>,
}

macro_rules! ask {
    ($self:ident, $variant:ident { $($f:ident : $v:expr),* }) => {{
        let (reply, rx) = oneshot::channel();
        $self.tx.send(Command::$variant { $($f: $v,)* reply }).await.map_err(|_| "campaign stopped".to_string())?;
        rx.await.map_err(|_| "campaign stopped".to_string())?
    }};
}

impl CampaignHandle {
    pub async fn login(&self, agent: UserId, leg: String) -> Result<(), String> {
        ask!(self, Login { agent: agent, leg: leg })
    }
    pub async fn pause(&self, agent: UserId, reason: String) -> Result<(), String> {
        ask!(self, Pause { agent: agent, reason: reason })
    }
    pub async fn resume(&self, agent: UserId) -> Result<(), String> {
        ask!(self, Resume { agent: agent })
    }
    pub async fn logout(&self, agent: UserId) -> Result<(), String> {
        ask!(self, Logout { agent: agent })
    }
    /// Books the agent's current (or just ended) call; returns the lead's new state.
    pub async fn dispose(&self, agent: UserId, disposition: Disposition) -> Result<String, String> {
        self.dispose_as(Actor::system(), agent, disposition).await.map(|r| r.lead_state).map_err(|e| e.to_string())
    }
    /// [`Self::dispose`] acting as `actor` (whose operation-log entries
    /// and, for their own calls, points the CRM records).
    pub async fn dispose_as(&self, actor: Actor, agent: UserId, disposition: Disposition) -> Result<DisposeReport, DisposeError> {
        let stopped = || DisposeError::Agent("campaign stopped".to_string());
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Dispose { actor, agent, disposition, reply }).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
    /// Preview: dials the card the agent is reserved with; returns the Call-ID.
    pub async fn preview_dial(&self, agent: UserId) -> Result<String, String> {
        ask!(self, PreviewDial { agent: agent })
    }
    /// Preview: skips the card; the agent is ready for the next one.
    pub async fn preview_skip(&self, agent: UserId) -> Result<(), String> {
        ask!(self, PreviewSkip { agent: agent })
    }
    pub async fn agent_view(&self, agent: UserId) -> Result<Option<AgentView>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::AgentView { agent, reply }).await.map_err(|_| "campaign stopped".to_string())?;
        rx.await.map_err(|_| "campaign stopped".to_string())
    }
    pub async fn stats(&self) -> Result<Stats, String> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::Stats { reply }).await.map_err(|_| "campaign stopped".to_string())?;
        rx.await.map_err(|_| "campaign stopped".to_string())
    }
    pub async fn agent_state(&self, agent: UserId) -> Result<Option<String>, String> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Command::AgentState { agent, reply }).await.map_err(|_| "campaign stopped".to_string())?;
        rx.await.map_err(|_| "campaign stopped".to_string())
    }
    /// Stops the task and waits until it has hung up its calls and booked
    /// what was open (its command channel closes when it is done).
    pub async fn stop(&self) {
        let _ = self.tx.send(Command::Stop).await;
        self.tx.closed().await;
    }
}

/// How long a stopping campaign task waits for the calls it hung up to
/// end (to forget their dialogs).
const STOP_DRAIN: Duration = Duration::from_secs(2);

/// Recycles what `node_id` left in flight before a crash. Call once at
/// start-up, before any campaign task of this node runs.
pub async fn recover(store: &Store, node_id: &str) -> crm::Result<u64> {
    store.dialer_recover(node_id, crm::now_ms()).await
}

/// Settings of a task that are not campaign configuration.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub node_id: String,
    /// Wall-clock millis at task start; the task adds elapsed monotonic
    /// time (so tests with paused tokio time get a consistent calendar).
    pub start_ms: Millis,
    pub tick: Duration,
    /// How long an answered call may wait for an agent.
    pub grace: Duration,
    pub wrap_up: Duration,
}

impl RuntimeOptions {
    pub fn new(node_id: impl Into<String>) -> Self {
        RuntimeOptions {
            node_id: node_id.into(),
            start_ms: crm::now_ms(),
            tick: Duration::from_millis(250),
            grace: Duration::from_secs(2),
            wrap_up: Duration::from_secs(30),
        }
    }
}

/// The pacing mode a stored configuration names.
pub fn pacing_mode(cfg: &DialerConfig) -> PacingMode {
    match cfg.pacing.as_str() {
        "preview" => PacingMode::Preview { preview_s: 10.0 },
        "power" => PacingMode::Power { ratio: cfg.ratio },
        "predictive" => PacingMode::Predictive(pacing::PredictiveConfig { target: cfg.abandon_target, ..Default::default() }),
        "vicidial" => PacingMode::Vicidial(pacing::VicidialConfig { drop_limit: cfg.abandon_target, ..Default::default() }),
        _ => PacingMode::Progressive,
    }
}

struct Line {
    attempt_id: i64,
    pacer_id: CallId,
    answered: Option<Instant>,
    agent: Option<UserId>,
    /// Reserved for this agent (preview, or a callback for them only).
    for_agent: Option<UserId>,
    /// Already booked (abandoned): a later `Ended` only cleans up.
    booked: bool,
    /// Its SIP dialog is kept in the store (removed when it ends).
    dialog: bool,
    /// Answered, AMD listening: neither waiting for an agent nor booked.
    analysing: bool,
}

/// What the AMD task concluded about an answered call.
#[derive(Debug)]
struct AmdReport {
    call: String,
    decision: Decision,
    action: CallAction,
}

/// The runtime's AMD policy for a campaign's settings (`None`: off).
pub fn amd_policy(cfg: &DialerConfig) -> Option<AmdPolicy> {
    let on_machine = match cfg.amd.mode.as_str() {
        "hangup" => MachineAction::HangUp,
        "message" => MachineAction::LeaveMessage { prompt: cfg.amd.prompt.clone() },
        "agent" => MachineAction::PassToAgent,
        _ => return None,
    };
    Some(AmdPolicy { enabled: true, on_machine, ..AmdPolicy::default() })
}

/// Runs the detector on a call's audio until it decides (or its analysis
/// time, plus a second of slack for late or missing packets, has passed:
/// then `NotSure`); for a machine whose message is to be left, then waits
/// for the end of its greeting. Reports once.
async fn analyse(call: String, mut rx: mpsc::Receiver<[i16; 160]>, policy: AmdPolicy, out: mpsc::Sender<AmdReport>) {
    let mut amd = Amd::new(policy.detector.clone());
    let cap = Duration::from_millis(u64::from(policy.detector.total_analysis_ms) + 1000);
    let decided = tokio::time::timeout(cap, async {
        while let Some(f) = rx.recv().await {
            if let Some(d) = amd.push_pcm(&f) {
                return Some(d);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    // No decision: the audio stopped (no RTP, or the call ended) before
    // the detector could tell.
    let decision = decided.unwrap_or(Decision {
        verdict: Verdict::NotSure,
        reason: Reason::TooLong,
        at_ms: amd.elapsed_ms(),
        words: 0,
        voice_ms: 0,
        initial_silence_ms: amd.elapsed_ms(),
    });
    let action = policy.action_for(&decision);
    if matches!(action, CallAction::LeaveMessageAfterGreeting { .. }) {
        let mut g = GreetingEndDetector::new(policy.greeting_end.clone());
        let cap = Duration::from_millis(u64::from(policy.greeting_end.max_wait_ms) + 1000);
        let _ = tokio::time::timeout(cap, async {
            while let Some(f) = rx.recv().await {
                if g.push_pcm(&f).is_some() {
                    return;
                }
            }
        })
        .await;
    }
    let _ = out.send(AmdReport { call, decision, action }).await;
}

struct AgentSlot {
    sm: Agent,
    leg: String,
    /// The attempt awaiting this agent's disposition.
    pending: Option<(String, i64, CallId)>,
    /// The lead this agent is reserved for, and its call once dialed.
    reserved: Option<(ClaimedLead, Option<String>)>,
}

struct Task<L: Lines> {
    store: Store,
    lines: Arc<L>,
    id: DialerCampaignId,
    cfg: DialerConfig,
    opts: RuntimeOptions,
    pacer: Box<dyn Pacer + Send>,
    started: Instant,
    calls: HashMap<String, Line>,
    waiting: VecDeque<String>,
    agents: BTreeMap<UserId, AgentSlot>,
    next_call: u64,
    stats: Stats,
    /// Answer→bridge latencies, µs.
    latencies: Vec<u64>,
    exhausted_until: Option<Instant>,
    /// When agents' legs were last checked for life.
    legs_checked: Instant,
    amd: Option<AmdPolicy>,
    amd_tx: mpsc::Sender<AmdReport>,
}

/// Books an attempt; a failure is logged (recovery closes what is left).
async fn book(store: &Store, attempt: i64, r: AttemptResult, now: Millis) {
    if let Err(e) = store.dialer_finish(attempt, r, now).await {
        tracing::warn!(error = %e, attempt, "booking an attempt failed");
    }
}

/// Starts a campaign's task. `events` carries the [`LineEvent`]s of the
/// calls this task places (the composition root routes them by Call-ID).
pub async fn spawn<L: Lines>(
    store: Store,
    lines: Arc<L>,
    id: DialerCampaignId,
    events: mpsc::Receiver<LineEvent>,
    opts: RuntimeOptions,
) -> crm::Result<(CampaignHandle, tokio::task::JoinHandle<()>)> {
    let camp = store.get_dialer_campaign(id).await?;
    let pacer = pacing_mode(&camp.config).build();
    let (tx, rx) = mpsc::channel(256);
    let (amd_tx, amd_rx) = mpsc::channel(256);
    let task = Task {
        amd: amd_policy(&camp.config),
        amd_tx,
        store,
        lines,
        id,
        cfg: camp.config,
        opts,
        pacer,
        started: Instant::now(),
        calls: HashMap::new(),
        waiting: VecDeque::new(),
        agents: BTreeMap::new(),
        next_call: 1,
        stats: Stats::default(),
        latencies: Vec::new(),
        exhausted_until: None,
        legs_checked: Instant::now(),
    };
    // The span is attached to the future, not entered across awaits, so it
    // never leaks into other tasks sharing the thread.
    use tracing::Instrument;
    let span = tracing::info_span!("dialer", campaign_id = id.0);
    let join = tokio::spawn(task.run(rx, events, amd_rx).instrument(span));
    Ok((CampaignHandle { tx }, join))
}

impl<L: Lines> Task<L> {
    fn now(&self) -> Time {
        Time::from_millis(u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn now_ms(&self) -> Millis {
        self.opts.start_ms + i64::try_from(self.started.elapsed().as_millis()).unwrap_or(0)
    }

    fn feed(&mut self, evs: Vec<Event>) {
        let now = self.now();
        for e in evs {
            self.pacer.on_event(now, &e);
        }
    }

    fn preview(&self) -> bool {
        self.cfg.pacing == "preview"
    }


    async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut events: mpsc::Receiver<LineEvent>, mut amd_rx: mpsc::Receiver<AmdReport>) {
        let mut tick = tokio::time::interval(self.opts.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.on_tick().await,
                Some(e) = events.recv() => self.on_line(e).await,
                Some(r) = amd_rx.recv() => self.on_amd(r).await,
                cmd = rx.recv() => match cmd {
                    None | Some(Command::Stop) => break,
                    Some(c) => self.on_command(c).await,
                },
            }
        }
        // Stopping leaves nothing in flight: hang up what is ringing or
        // waiting; its `Ended` is not awaited, so book it here as failed.
        // Calls with agents and undisposed wrap-ups are booked as callbacks
        // for anyone; reserved cards that were never dialed as skipped.
        let open: Vec<String> = self.calls.keys().cloned().collect();
        let mut kept = std::collections::HashSet::new();
        for call in open {
            let _ = self.lines.hangup(&call).await;
            if let Some(l) = self.calls.remove(&call) {
                if l.dialog {
                    kept.insert(call.clone());
                }
                if !l.booked && l.agent.is_none() {
                    book(&self.store, l.attempt_id, AttemptResult::Failed, self.now_ms()).await;
                }
            }
        }
        // A kept dialog is forgotten once its call has ended (BYE or CANCEL
        // answered); briefly awaited here. One still up stays kept: its
        // lead is not redialed until the call is seen to end (or the next
        // start ends it).
        let until = tokio::time::Instant::now() + STOP_DRAIN;
        while !kept.is_empty() {
            match tokio::time::timeout_at(until, events.recv()).await {
                Ok(Some(LineEvent::Ended { call, .. })) => {
                    if kept.remove(&call) {
                        let _ = self.store.dialer_dialog_end(&call).await;
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let slots: Vec<UserId> = self.agents.keys().copied().collect();
        for a in slots {
            let Some(slot) = self.agents.get_mut(&a) else { continue };
            let (pending, reserved) = (slot.pending.take(), slot.reserved.take());
            if let Some((_, attempt, _)) = pending {
                book(&self.store, attempt, AttemptResult::Disposed { final_: false, callback_at: None, callback_agent: None }, self.now_ms()).await;
            }
            if let Some((lead, None)) = reserved {
                book(&self.store, lead.attempt_id, AttemptResult::Skipped, self.now_ms()).await;
            }
        }
    }

    async fn on_tick(&mut self) {
        let now = self.now();
        let mut evs = Vec::new();
        let mut undisposed = Vec::new();
        for a in self.agents.values_mut() {
            let e = a.sm.tick(now);
            if !e.is_empty() {
                // Wrap-up ran out without a disposition: the lead must not
                // stay in flight, so it goes back for a retry.
                if let Some((_, attempt, _)) = a.pending.take() {
                    undisposed.push(attempt);
                }
            }
            evs.extend(e);
        }
        self.feed(evs);
        for attempt in undisposed {
            book(&self.store, attempt, AttemptResult::Disposed { final_: false, callback_at: None, callback_agent: None }, self.now_ms()).await;
        }
        self.check_legs().await;
        self.serve_waiting().await;
        self.drop_overdue().await;
        if self.exhausted_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        if self.preview() {
            self.reserve_cards().await;
            return;
        }
        let want = self.pacer.calls_to_place(now);
        if want == 0 {
            return;
        }
        let ready = self.ready_agents();
        let claim = match self.store.dialer_claim_for(self.id, want as usize, self.now_ms(), &self.opts.node_id, Some(&ready)).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "hopper claim failed");
                return;
            }
        };
        if claim.leads.is_empty() {
            // Nothing due: look again in a second rather than every tick.
            self.exhausted_until = Some(Instant::now() + Duration::from_secs(1));
            return;
        }
        for lead in claim.leads {
            match lead.callback_agent {
                // A callback for one agent: reserve them, then dial for them.
                Some(a) => {
                    if self.reserve(a, lead.clone()) {
                        let _ = self.dial_lead(lead, Some(a)).await;
                    } else {
                        book(&self.store, lead.attempt_id, AttemptResult::Skipped, self.now_ms()).await;
                    }
                }
                None => {
                    let _ = self.dial_lead(lead, None).await;
                }
            }
        }
    }

    /// Once a second: an agent whose leg is gone without a SIP end (a
    /// browser softphone closed) is handled like one whose leg ended.
    async fn check_legs(&mut self) {
        if self.legs_checked.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.legs_checked = Instant::now();
        let present: Vec<(UserId, String)> =
            self.agents.iter().filter(|(_, a)| a.sm.state() != &AgentState::LoggedOut).map(|(id, a)| (*id, a.leg.clone())).collect();
        for (agent, leg) in present {
            if !self.lines.leg_alive(&leg).await {
                self.agent_gone(agent).await;
            }
        }
    }

    fn ready_agents(&self) -> Vec<UserId> {
        self.agents.iter().filter(|(_, a)| a.sm.is_ready() && a.reserved.is_none()).map(|(id, _)| *id).collect()
    }

    /// Reserves a ready agent for a lead (its card).
    fn reserve(&mut self, agent: UserId, lead: ClaimedLead) -> bool {
        let now = self.now();
        let Some(slot) = self.agents.get_mut(&agent) else { return false };
        if slot.reserved.is_some() || slot.sm.reserve(now, lead.lead_id.0).is_err() {
            return false;
        }
        slot.reserved = Some((lead, None));
        true
    }

    /// Preview: every ready agent without a card gets the next lead's.
    async fn reserve_cards(&mut self) {
        for agent in self.ready_agents() {
            let claim = match self.store.dialer_claim_for(self.id, 1, self.now_ms(), &self.opts.node_id, Some(&[agent])).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "hopper claim failed");
                    return;
                }
            };
            let Some(lead) = claim.leads.into_iter().next() else {
                self.exhausted_until = Some(Instant::now() + Duration::from_secs(1));
                return;
            };
            if !self.reserve(agent, lead.clone()) {
                book(&self.store, lead.attempt_id, AttemptResult::Skipped, self.now_ms()).await;
            }
        }
    }

    /// Dials a claimed lead; a failure to place the call books it.
    async fn dial_lead(&mut self, lead: ClaimedLead, for_agent: Option<UserId>) -> Result<String, String> {
        let placed = match self.cfg.trunk.parse::<SocketAddr>() {
            Ok(trunk) => {
                let ring = Duration::from_secs(u64::try_from(self.cfg.ring_timeout_s).unwrap_or(25));
                // An empty caller id is sent as "anonymous": From needs a user part.
                let caller = if self.cfg.caller_id.trim().is_empty() { "anonymous".to_string() } else { self.cfg.caller_id.clone() };
                self.lines.dial(lead.number.as_str(), &caller, trunk, ring).await
            }
            Err(_) => Err(format!("bad trunk {:?}", self.cfg.trunk)),
        };
        match placed {
            Ok(call) => {
                let pid = CallId::new(self.next_call);
                self.next_call += 1;
                // The dialog first: until it is stored, a crash would leave
                // this call up at the carrier with nothing to end it.
                let dialog = self.keep_dialog(lead.attempt_id, &call, false).await;
                let _ = self.store.dialer_attempt_progress(lead.attempt_id, Some(&call), None, None, None).await;
                self.calls.insert(call.clone(), Line { attempt_id: lead.attempt_id, pacer_id: pid, answered: None, agent: None, for_agent, booked: false, dialog, analysing: false });
                if let Some(slot) = for_agent.and_then(|a| self.agents.get_mut(&a))
                    && let Some((_, c)) = slot.reserved.as_mut()
                {
                    *c = Some(call.clone());
                }
                self.stats.placed += 1;
                self.feed(vec![Event::CallPlaced(pid)]);
                Ok(call)
            }
            Err(e) => {
                tracing::warn!(error = %e, lead = lead.lead_id.0, "dial failed");
                book(&self.store, lead.attempt_id, AttemptResult::Failed, self.now_ms()).await;
                if let Some(a) = for_agent {
                    self.unreserve(a);
                }
                Err(e)
            }
        }
    }

    /// Stores the call's dialog if the lines give one; whether it is kept.
    async fn keep_dialog(&mut self, attempt: i64, call: &str, answered: bool) -> bool {
        let Some(d) = self.lines.dialog(call).await else { return false };
        let now = self.now_ms();
        match self.store.dialer_dialog_save(&self.opts.node_id, Some(attempt), call, answered, &d, now).await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, call = %call, "keeping a dialog failed");
                false
            }
        }
    }

    /// The agent's reservation ended without a call: ready again.
    fn unreserve(&mut self, agent: UserId) {
        let now = self.now();
        if let Some(slot) = self.agents.get_mut(&agent) {
            slot.reserved = None;
            let _ = slot.sm.skip(now);
        }
    }

    async fn on_line(&mut self, e: LineEvent) {
        match e {
            LineEvent::Answered { call } => {
                let Some(line) = self.calls.get_mut(&call) else { return };
                line.answered = Some(Instant::now());
                let (attempt, pid, for_agent) = (line.attempt_id, line.pacer_id, line.for_agent);
                let now_ms = self.now_ms();
                // The answered dialog (remote tag, target, route set)
                // replaces the early one: what a BYE after a crash needs.
                if self.keep_dialog(attempt, &call, true).await
                    && let Some(l) = self.calls.get_mut(&call)
                {
                    l.dialog = true;
                }
                let _ = self.store.dialer_attempt_progress(attempt, None, Some(now_ms), None, None).await;
                // AMD first (not for a call an agent is already reserved
                // for: they are waiting for it and hear it themselves).
                if for_agent.is_none() && self.start_amd(&call).await {
                    return;
                }
                self.stats.live_answers += 1;
                self.feed(vec![Event::CallAnswered(pid)]);
                if let Some(agent) = for_agent {
                    if self.agents.get(&agent).is_some_and(|s| s.reserved.is_some()) && self.connect(agent, &call).await {
                        return;
                    }
                    // The reserved agent cannot take it (their leg failed):
                    // release them, and rather than drop a live callee the
                    // call goes to the next free agent like any answer.
                    if let Some(l) = self.calls.get_mut(&call) {
                        l.for_agent = None;
                    }
                    if self.agents.get(&agent).is_some_and(|s| s.reserved.as_ref().is_some_and(|(_, c)| c.as_deref() == Some(call.as_str()))) {
                        self.unreserve(agent);
                    }
                }
                self.waiting.push_back(call);
                self.serve_waiting().await;
            }
            LineEvent::Ended { call, how } => {
                let Some(line) = self.calls.remove(&call) else {
                    // Not one of our calls: perhaps an agent's leg.
                    if let Some(agent) = self.agents.iter().find(|(_, a)| a.leg == call && a.sm.state() != &AgentState::LoggedOut).map(|(id, _)| *id) {
                        self.agent_gone(agent).await;
                    }
                    return;
                };
                self.waiting.retain(|c| c != &call);
                if line.dialog
                    && let Err(e) = self.store.dialer_dialog_end(&call).await
                {
                    tracing::warn!(error = %e, call = %call, "forgetting an ended dialog failed");
                }
                if let Some(a) = line.for_agent
                    && line.agent.is_none()
                    && self.agents.get(&a).is_some_and(|s| s.reserved.as_ref().is_some_and(|(_, c)| c.as_deref() == Some(call.as_str())))
                {
                    self.unreserve(a);
                }
                if line.booked {
                    return;
                }
                let now_ms = self.now_ms();
                if let Some(agent) = line.agent {
                    // The agent's call ended: wrap-up; the disposition books it.
                    let now = self.now();
                    let evs = match self.agents.get_mut(&agent) {
                        Some(a) => a.sm.call_ended(now, true).unwrap_or_default(),
                        None => vec![],
                    };
                    self.feed(evs);
                    return;
                }
                if line.analysing {
                    // Gone while AMD listened: counted as an answer that
                    // found no agent (the conservative reading).
                    self.stats.live_answers += 1;
                    self.feed(vec![Event::CallAnswered(line.pacer_id)]);
                }
                let result = match (line.answered, how) {
                    // Answered and gone before any agent: an abandon.
                    (Some(_), _) => {
                        self.stats.abandons += 1;
                        self.feed(vec![Event::CallDropped(line.pacer_id)]);
                        AttemptResult::Abandoned
                    }
                    (None, LineEnd::Busy) => AttemptResult::Busy,
                    (None, LineEnd::NoAnswer) => AttemptResult::NoAnswer,
                    (None, _) => AttemptResult::Failed,
                };
                if line.answered.is_none() {
                    self.feed(vec![Event::CallFailed(line.pacer_id)]);
                }
                if let Err(e) = self.store.dialer_finish(line.attempt_id, result, now_ms).await {
                    tracing::warn!(error = %e, "booking an attempt failed");
                }
            }
        }
    }

    /// Starts AMD on an answered call if the campaign has it on; whether
    /// it did (else the call goes to an agent at once).
    async fn start_amd(&mut self, call: &str) -> bool {
        let Some(policy) = self.amd.clone() else { return false };
        let mut max = u64::from(policy.detector.total_analysis_ms);
        if matches!(policy.on_machine, MachineAction::LeaveMessage { .. }) {
            max += u64::from(policy.greeting_end.max_wait_ms);
        }
        let rx = match self.lines.listen(call, Duration::from_millis(max)).await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::warn!(error = %e, call = %call, "AMD cannot listen; the call goes to an agent");
                return false;
            }
        };
        let Some(line) = self.calls.get_mut(call) else { return false };
        line.analysing = true;
        tokio::spawn(analyse(call.to_string(), rx, policy, self.amd_tx.clone()));
        true
    }

    /// Acts on AMD's decision about a call still up.
    async fn on_amd(&mut self, r: AmdReport) {
        let Some(line) = self.calls.get_mut(&r.call) else { return };
        if !line.analysing || line.booked {
            return;
        }
        line.analysing = false;
        let (attempt, pid) = (line.attempt_id, line.pacer_id);
        let label = match r.decision.verdict {
            Verdict::Human => {
                self.stats.amd_humans += 1;
                "human"
            }
            Verdict::Machine => {
                self.stats.amd_machines += 1;
                "machine"
            }
            Verdict::NotSure => {
                self.stats.amd_not_sure += 1;
                "not_sure"
            }
        };
        tracing::debug!(call = %r.call, verdict = label, at_ms = r.decision.at_ms, reason = ?r.decision.reason, "AMD decided");
        if let Err(e) = self.store.dialer_attempt_amd(attempt, label).await {
            tracing::warn!(error = %e, attempt, "booking the AMD verdict failed");
        }
        match r.action {
            CallAction::ToAgent => {
                // The grace time runs from here, the end of the greeting.
                line.answered = Some(Instant::now());
                self.stats.live_answers += 1;
                self.feed(vec![Event::CallAnswered(pid)]);
                self.waiting.push_back(r.call);
                self.serve_waiting().await;
            }
            CallAction::HangUp | CallAction::LeaveMessageAfterGreeting { .. } => {
                line.booked = true;
                let done = match &r.action {
                    CallAction::LeaveMessageAfterGreeting { prompt } => self.lines.abandon(&r.call, prompt).await,
                    _ => self.lines.hangup(&r.call).await,
                };
                if let Err(e) = done {
                    tracing::warn!(error = %e, call = %r.call, "ending a machine call failed");
                }
                self.feed(vec![Event::CallFailed(pid)]);
                book(&self.store, attempt, AttemptResult::Machine, self.now_ms()).await;
            }
        }
    }

    /// An agent's leg ended: they are logged out and never bridged to
    /// again; their call (if any) is hung up and booked, an undisposed
    /// wrap-up booked as a callback for anyone, a reservation released.
    async fn agent_gone(&mut self, agent: UserId) {
        let now = self.now();
        let Some(slot) = self.agents.get_mut(&agent) else { return };
        tracing::warn!(agent = agent.0, leg = %slot.leg, "agent leg ended: agent logged out");
        let mut evs = slot.sm.logout(now).unwrap_or_default();
        let pending = slot.pending.take();
        let reserved = slot.reserved.take();
        match slot.sm.state().clone() {
            AgentState::OnCall { call } => {
                evs.extend(slot.sm.call_ended(now, true).unwrap_or_default());
                evs.extend(slot.sm.dispose(now, call).unwrap_or_default());
            }
            AgentState::WrapUp { call, .. } => evs.extend(slot.sm.dispose(now, call).unwrap_or_default()),
            AgentState::Reserved { .. } => {
                let _ = slot.sm.skip(now);
                evs.extend(slot.sm.logout(now).unwrap_or_default());
            }
            _ => {}
        }
        self.feed(evs);
        if let Some((call, attempt, _)) = pending {
            let talking = self.calls.get_mut(&call).map(|l| {
                l.booked = true;
            });
            if talking.is_some() {
                let _ = self.lines.hangup(&call).await;
                book(&self.store, attempt, AttemptResult::AgentGone, self.now_ms()).await;
            } else {
                book(&self.store, attempt, AttemptResult::Disposed { final_: false, callback_at: None, callback_agent: None }, self.now_ms()).await;
            }
        }
        if let Some((lead, call)) = reserved {
            match call {
                // Dialed for them: the call goes to the common queue if it
                // is answered (its line forgets the reservation).
                Some(c) => {
                    if let Some(l) = self.calls.get_mut(&c) {
                        l.for_agent = None;
                    }
                }
                None => book(&self.store, lead.attempt_id, AttemptResult::Skipped, self.now_ms()).await,
            }
        }
    }

    /// Bridges an answered call to `agent`; on success the agent is on the
    /// call. A dead agent leg logs the agent out.
    async fn connect(&mut self, agent: UserId, call: &str) -> bool {
        let Some(leg) = self.agents.get(&agent).map(|s| s.leg.clone()) else { return false };
        if let Err(e) = self.lines.bridge(&leg, call).await {
            tracing::warn!(error = %e, agent = agent.0, "bridge failed");
            if !self.lines.leg_alive(&leg).await {
                self.agent_gone(agent).await;
            }
            return false;
        }
        let now = self.now();
        let now_ms = self.now_ms();
        let Some(line) = self.calls.get_mut(call) else { return false };
        let Some(slot) = self.agents.get_mut(&agent) else { return false };
        line.agent = Some(agent);
        line.for_agent = None;
        slot.reserved = None;
        let latency = line.answered.map(|t| u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)).unwrap_or(0);
        self.latencies.push(latency);
        let evs = slot.sm.connect(now, line.pacer_id).unwrap_or_default();
        slot.pending = Some((call.to_string(), line.attempt_id, line.pacer_id));
        let attempt = line.attempt_id;
        let _ = self.store.dialer_attempt_progress(attempt, None, None, Some(now_ms), Some(agent)).await;
        self.feed(evs);
        if !self.cfg.recordings_dir.is_empty() {
            let path = std::path::Path::new(&self.cfg.recordings_dir).join(format!("dialer-{}-{attempt}.wav", self.id.0));
            match self.lines.record(call, &path).await {
                Ok(()) => {
                    let _ = self.store.dialer_attempt_recording(attempt, &path.to_string_lossy()).await;
                }
                Err(e) => tracing::warn!(error = %e, "recording failed"),
            }
        }
        true
    }

    /// Bridges waiting answered calls to ready agents, longest idle first.
    async fn serve_waiting(&mut self) {
        while let Some(call) = self.waiting.front().cloned() {
            if !self.calls.contains_key(&call) {
                self.waiting.pop_front();
                continue;
            }
            let Some(agent) =
                self.agents.iter().filter(|(_, a)| a.sm.is_ready() && a.reserved.is_none()).min_by_key(|(_, a)| a.sm.since()).map(|(id, _)| *id)
            else {
                return;
            };
            if self.connect(agent, &call).await {
                self.waiting.pop_front();
            } else if self.agents.get(&agent).is_some_and(|a| a.sm.is_ready()) {
                // The agent is fine, the call is not (or the switch failed):
                // leave it to the grace timer or its `Ended`.
                return;
            }
        }
    }

    /// Answered calls past the grace time: safe-harbour prompt, hang up,
    /// book an abandon.
    async fn drop_overdue(&mut self) {
        let grace = self.opts.grace;
        let overdue: Vec<String> = self
            .waiting
            .iter()
            .filter(|c| self.calls.get(*c).and_then(|l| l.answered).is_some_and(|t| t.elapsed() >= grace))
            .cloned()
            .collect();
        for call in overdue {
            self.waiting.retain(|c| c != &call);
            let Some(line) = self.calls.get_mut(&call) else { continue };
            line.booked = true;
            let (attempt, pid) = (line.attempt_id, line.pacer_id);
            self.stats.abandons += 1;
            self.feed(vec![Event::CallDropped(pid)]);
            if let Err(e) = self.lines.abandon(&call, &self.cfg.safe_harbour_prompt).await {
                tracing::warn!(error = %e, "safe-harbour prompt failed");
            }
            let now_ms = self.now_ms();
            if let Err(e) = self.store.dialer_finish(attempt, AttemptResult::Abandoned, now_ms).await {
                tracing::warn!(error = %e, "booking an abandon failed");
            }
        }
    }

    async fn on_command(&mut self, c: Command) {
        let now = self.now();
        let wrap = self.opts.wrap_up;
        match c {
            Command::Login { agent, leg, reply } => {
                let slot = self.agents.entry(agent).or_insert_with(|| AgentSlot {
                    sm: Agent::new(AgentId::new(u32::try_from(agent.0).unwrap_or(u32::MAX)), wrap),
                    leg: leg.clone(),
                    pending: None,
                    reserved: None,
                });
                slot.leg = leg;
                let r = slot.sm.login(now).map_err(|e| e.to_string());
                if let Ok(evs) = &r {
                    self.feed(evs.clone());
                }
                let _ = reply.send(r.map(|_| ()));
                self.serve_waiting().await;
            }
            Command::Pause { agent, reason, reply } => {
                let r = self.release_card(agent).await;
                let r = match r {
                    Ok(()) => self.with_agent(agent, |a| a.pause(now, &reason)),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            Command::Resume { agent, reply } => {
                let r = self.with_agent(agent, |a| a.resume(now));
                let _ = reply.send(r);
                self.serve_waiting().await;
            }
            Command::Logout { agent, reply } => {
                let r = match self.release_card(agent).await {
                    Ok(()) => self.with_agent(agent, |a| a.logout(now)),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            Command::Dispose { actor, agent, disposition, reply } => {
                let r = self.dispose(actor, agent, disposition).await;
                let _ = reply.send(r);
                self.serve_waiting().await;
            }
            Command::PreviewDial { agent, reply } => {
                let r = self.preview_dial(agent).await;
                let _ = reply.send(r);
            }
            Command::PreviewSkip { agent, reply } => {
                let r = match self.agents.get(&agent).map(|s| s.reserved.clone()) {
                    None => Err("agent not logged in".to_string()),
                    Some(None) => Err("no card to skip".to_string()),
                    Some(Some((_, Some(_)))) => Err("the card is already dialed".to_string()),
                    Some(Some((lead, None))) => {
                        self.unreserve(agent);
                        match self.store.dialer_finish(lead.attempt_id, AttemptResult::Skipped, self.now_ms()).await {
                            Ok(_) => Ok(()),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                };
                let _ = reply.send(r);
                // The next card right away rather than on the next tick.
                self.exhausted_until = None;
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Command::AgentState { agent, reply } => {
                let _ = reply.send(self.agents.get(&agent).map(|a| a.sm.state().label().to_string()));
            }
            Command::AgentView { agent, reply } => {
                let v = self.agents.get(&agent).map(|a| AgentView {
                    state: a.sm.state().label().to_string(),
                    reason: match a.sm.state() {
                        AgentState::Paused { reason } => Some(reason.clone()),
                        _ => None,
                    },
                    card: a.reserved.as_ref().map(|(l, _)| l.clone()),
                    call: a.pending.as_ref().map(|(c, _, _)| c.clone()),
                });
                let _ = reply.send(v);
            }
            Command::Stop => {}
        }
    }

    /// Pausing or leaving with an undialed card puts the lead back.
    async fn release_card(&mut self, agent: UserId) -> Result<(), String> {
        let Some(slot) = self.agents.get(&agent) else { return Err("agent not logged in".to_string()) };
        match slot.reserved.clone() {
            Some((lead, None)) => {
                self.unreserve(agent);
                self.store.dialer_finish(lead.attempt_id, AttemptResult::Skipped, self.now_ms()).await.map(|_| ()).map_err(|e| e.to_string())
            }
            Some((_, Some(_))) => Err("agent is dialing a reserved lead".to_string()),
            None => Ok(()),
        }
    }

    async fn preview_dial(&mut self, agent: UserId) -> Result<String, String> {
        let slot = self.agents.get(&agent).ok_or_else(|| "agent not logged in".to_string())?;
        match slot.reserved.clone() {
            None => Err("no card to dial".to_string()),
            Some((_, Some(c))) => Err(format!("already dialing {c}")),
            Some((lead, None)) => self.dial_lead(lead, Some(agent)).await,
        }
    }

    fn with_agent(&mut self, agent: UserId, f: impl FnOnce(&mut Agent) -> Result<Vec<Event>, crate::agents::BadTransition>) -> Result<(), String> {
        let slot = self.agents.get_mut(&agent).ok_or_else(|| "agent not logged in".to_string())?;
        let evs = f(&mut slot.sm).map_err(|e| e.to_string())?;
        self.feed(evs);
        Ok(())
    }

    async fn dispose(&mut self, actor: Actor, agent: UserId, d: Disposition) -> Result<DisposeReport, DisposeError> {
        let now = self.now();
        let slot = self.agents.get_mut(&agent).ok_or_else(|| DisposeError::Agent("agent not logged in".to_string()))?;
        let (call, attempt, pid) = slot.pending.clone().ok_or_else(|| DisposeError::Agent("no call to dispose of".to_string()))?;
        // Answers are checked before anything changes: bad input leaves the
        // call as it was.
        if !d.answers.is_empty() {
            self.store.dialer_save_answers(attempt, &d.answers).await?;
        }
        let result = AttemptResult::Disposed {
            final_: d.final_,
            callback_at: d.callback_at,
            callback_agent: if d.callback_agent_only { Some(agent) } else { None },
        };
        let report = self.store.dialer_dispose(&actor, attempt, result, d.outcome, self.now_ms()).await?;
        let Some(slot) = self.agents.get_mut(&agent) else { return Ok(report) };
        let evs = slot.sm.dispose(now, pid).unwrap_or_default();
        slot.pending = None;
        self.feed(evs);
        if let Some(l) = self.calls.get_mut(&call) {
            // Disposed while the callee is still there: the agent hangs up.
            l.booked = true;
            let _ = self.lines.hangup(&call).await;
        }
        Ok(report)
    }

    fn snapshot(&self) -> Stats {
        let mut s = self.stats.clone();
        s.ringing = self.calls.values().filter(|l| l.answered.is_none()).count() as u64;
        s.abandon_rate = if s.live_answers > 0 { s.abandons as f64 / s.live_answers as f64 } else { 0.0 };
        let mut agents = BTreeMap::new();
        let mut active = 0u64;
        for a in self.agents.values() {
            *agents.entry(a.sm.state().label().to_string()).or_insert(0) += 1;
            if !matches!(a.sm.state(), AgentState::LoggedOut | AgentState::Paused { .. }) {
                active += 1;
            }
        }
        s.agents = agents;
        s.dial_level = if active > 0 { s.ringing as f64 / active as f64 } else { 0.0 };
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let pct = |p: f64| -> u64 {
            if l.is_empty() {
                0
            } else {
                l[((l.len() - 1) as f64 * p).round() as usize]
            }
        };
        s.bridge_p50_us = pct(0.5);
        s.bridge_p99_us = pct(0.99);
        s.bridge_p50_ms = s.bridge_p50_us / 1000;
        s.bridge_p99_ms = s.bridge_p99_us / 1000;
        s
    }
}
