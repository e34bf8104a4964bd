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
//! Commands (agent login/ready/pause/logout, dispositions, stats, stop)
//! arrive on a channel through [`CampaignHandle`], so the task owns all of
//! its state and needs no locks.
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
use crate::pacing::{self, AgentId, CallId, Event, Pacer, PacingMode, Time};
use crm::dialer_store::{AttemptResult, DialerCampaignId, DialerConfig};
use crm::{Millis, Store, UserId};
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
}

#[derive(Debug)]
pub enum Command {
    Login { agent: UserId, leg: String, reply: oneshot::Sender<Result<(), String>> },
    Pause { agent: UserId, reason: String, reply: oneshot::Sender<Result<(), String>> },
    Resume { agent: UserId, reply: oneshot::Sender<Result<(), String>> },
    Logout { agent: UserId, reply: oneshot::Sender<Result<(), String>> },
    Dispose { agent: UserId, disposition: Disposition, reply: oneshot::Sender<Result<String, String>> },
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
        ask!(self, Dispose { agent: agent, disposition: disposition })
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
    pub async fn stop(&self) {
        let _ = self.tx.send(Command::Stop).await;
    }
}

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
    /// Already booked (abandoned): a later `Ended` only cleans up.
    booked: bool,
}

struct AgentSlot {
    sm: Agent,
    leg: String,
    /// The attempt awaiting this agent's disposition.
    pending: Option<(String, i64, CallId)>,
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
    latencies: Vec<u64>,
    exhausted_until: Option<Instant>,
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
    let task = Task {
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
    };
    // The span is attached to the future, not entered across awaits, so it
    // never leaks into other tasks sharing the thread.
    use tracing::Instrument;
    let span = tracing::info_span!("dialer", campaign_id = id.0);
    let join = tokio::spawn(task.run(rx, events).instrument(span));
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

    async fn run(mut self, mut rx: mpsc::Receiver<Command>, mut events: mpsc::Receiver<LineEvent>) {
        let mut tick = tokio::time::interval(self.opts.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.on_tick().await,
                Some(e) = events.recv() => self.on_line(e).await,
                cmd = rx.recv() => match cmd {
                    None | Some(Command::Stop) => break,
                    Some(c) => self.on_command(c).await,
                },
            }
        }
        // Stopping leaves nothing in flight: hang up what is ringing or
        // waiting; its `Ended` is not awaited, so book it here as failed.
        let open: Vec<String> = self.calls.keys().cloned().collect();
        for call in open {
            let _ = self.lines.hangup(&call).await;
            if let Some(l) = self.calls.remove(&call) {
                if !l.booked && l.agent.is_none() {
                    let _ = self.store.dialer_finish(l.attempt_id, AttemptResult::Failed, self.now_ms()).await;
                }
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
            let r = AttemptResult::Disposed { final_: false, callback_at: None, callback_agent: None };
            let _ = self.store.dialer_finish(attempt, r, self.now_ms()).await;
        }
        self.serve_waiting().await;
        self.drop_overdue().await;
        let want = self.pacer.calls_to_place(now);
        if want == 0 || self.exhausted_until.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let claim = match self.store.dialer_claim(self.id, want as usize, self.now_ms(), &self.opts.node_id).await {
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
        let trunk: SocketAddr = match self.cfg.trunk.parse() {
            Ok(t) => t,
            Err(_) => return,
        };
        let ring = Duration::from_secs(u64::try_from(self.cfg.ring_timeout_s).unwrap_or(25));
        // An empty caller id is sent as "anonymous": From needs a user part.
        let caller = if self.cfg.caller_id.trim().is_empty() { "anonymous".to_string() } else { self.cfg.caller_id.clone() };
        for lead in claim.leads {
            match self.lines.dial(lead.number.as_str(), &caller, trunk, ring).await {
                Ok(call) => {
                    let pid = CallId::new(self.next_call);
                    self.next_call += 1;
                    let _ = self.store.dialer_attempt_progress(lead.attempt_id, Some(&call), None, None, None).await;
                    self.calls.insert(
                        call,
                        Line { attempt_id: lead.attempt_id, pacer_id: pid, answered: None, agent: None, booked: false },
                    );
                    self.stats.placed += 1;
                    self.feed(vec![Event::CallPlaced(pid)]);
                }
                Err(e) => {
                    tracing::warn!(error = %e, lead = lead.lead_id.0, "dial failed");
                    let _ = self.store.dialer_finish(lead.attempt_id, AttemptResult::Failed, self.now_ms()).await;
                }
            }
        }
    }

    async fn on_line(&mut self, e: LineEvent) {
        match e {
            LineEvent::Answered { call } => {
                let Some(line) = self.calls.get_mut(&call) else { return };
                line.answered = Some(Instant::now());
                let (attempt, pid) = (line.attempt_id, line.pacer_id);
                self.stats.live_answers += 1;
                let now_ms = self.now_ms();
                let _ = self.store.dialer_attempt_progress(attempt, None, Some(now_ms), None, None).await;
                self.feed(vec![Event::CallAnswered(pid)]);
                self.waiting.push_back(call);
                self.serve_waiting().await;
            }
            LineEvent::Ended { call, how } => {
                let Some(line) = self.calls.remove(&call) else { return };
                self.waiting.retain(|c| c != &call);
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

    /// Bridges waiting answered calls to ready agents, longest idle first.
    async fn serve_waiting(&mut self) {
        while let Some(call) = self.waiting.front().cloned() {
            let now = self.now();
            let Some(agent) = self.agents.iter().filter(|(_, a)| a.sm.is_ready()).min_by_key(|(_, a)| a.sm.since()).map(|(id, _)| *id) else {
                return;
            };
            self.waiting.pop_front();
            let Some(line) = self.calls.get_mut(&call) else { continue };
            let Some(slot) = self.agents.get_mut(&agent) else { continue };
            if let Err(e) = self.lines.bridge(&slot.leg, &call).await {
                tracing::warn!(error = %e, "bridge failed");
                self.waiting.push_front(call);
                return;
            }
            line.agent = Some(agent);
            let latency = line.answered.map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(0)).unwrap_or(0);
            self.latencies.push(latency);
            let evs = slot.sm.connect(now, line.pacer_id).unwrap_or_default();
            slot.pending = Some((call.clone(), line.attempt_id, line.pacer_id));
            let attempt = line.attempt_id;
            let now_ms = self.now_ms();
            let _ = self.store.dialer_attempt_progress(attempt, None, None, Some(now_ms), Some(agent)).await;
            self.feed(evs);
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
                let r = self.with_agent(agent, |a| a.pause(now, &reason));
                let _ = reply.send(r);
            }
            Command::Resume { agent, reply } => {
                let r = self.with_agent(agent, |a| a.resume(now));
                let _ = reply.send(r);
                self.serve_waiting().await;
            }
            Command::Logout { agent, reply } => {
                let r = self.with_agent(agent, |a| a.logout(now));
                let _ = reply.send(r);
            }
            Command::Dispose { agent, disposition, reply } => {
                let r = self.dispose(agent, disposition).await;
                let _ = reply.send(r);
                self.serve_waiting().await;
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Command::AgentState { agent, reply } => {
                let _ = reply.send(self.agents.get(&agent).map(|a| a.sm.state().label().to_string()));
            }
            Command::Stop => {}
        }
    }

    fn with_agent(&mut self, agent: UserId, f: impl FnOnce(&mut Agent) -> Result<Vec<Event>, crate::agents::BadTransition>) -> Result<(), String> {
        let slot = self.agents.get_mut(&agent).ok_or_else(|| "agent not logged in".to_string())?;
        let evs = f(&mut slot.sm).map_err(|e| e.to_string())?;
        self.feed(evs);
        Ok(())
    }

    async fn dispose(&mut self, agent: UserId, d: Disposition) -> Result<String, String> {
        let now = self.now();
        let slot = self.agents.get_mut(&agent).ok_or_else(|| "agent not logged in".to_string())?;
        let (call, attempt, pid) = slot.pending.clone().ok_or_else(|| "no call to dispose of".to_string())?;
        let evs = slot.sm.dispose(now, pid).map_err(|e| e.to_string())?;
        slot.pending = None;
        self.feed(evs);
        if let Some(l) = self.calls.get_mut(&call) {
            // Disposed while the callee is still there: the agent hangs up.
            l.booked = true;
            let _ = self.lines.hangup(&call).await;
        }
        if !d.answers.is_empty() {
            self.store.dialer_save_answers(attempt, &d.answers).await.map_err(|e| e.to_string())?;
        }
        let result = AttemptResult::Disposed {
            final_: d.final_,
            callback_at: d.callback_at,
            callback_agent: if d.callback_agent_only { Some(agent) } else { None },
        };
        self.store.dialer_finish(attempt, result, self.now_ms()).await.map_err(|e| e.to_string())
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
        s.bridge_p50_ms = pct(0.5);
        s.bridge_p99_ms = pct(0.99);
        s
    }
}
