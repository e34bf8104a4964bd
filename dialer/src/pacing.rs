//! Pacing: how many calls to place *now*, and nothing else.
//!
//! Every pacing mode implements [`Pacer`]: it is told what happened on the
//! floor through [`Pacer::on_event`] and asked for a number through
//! [`Pacer::calls_to_place`]. Both take `now` as an argument; no pacer reads a
//! clock, spawns a task or touches a socket. That is what lets the live dialer
//! and the discrete-event simulator in [`crate::sim`] run exactly the same code,
//! and what makes a simulated shift reproducible from its seed.
//!
//! The driver's contract is small: report every [`Event`] in time order, ask
//! `calls_to_place` at least every 250 ms (and after events, if it likes), and
//! report a [`Event::CallPlaced`] for each call it actually places before it
//! asks again. A pacer may return more calls than the driver can place (no
//! leads, no trunks); the difference is simply not reported as placed.
//!
//! The modes:
//! - [`Preview`]: the agent reads the card for a fixed time, then dials; one
//!   call per agent, never an abandon.
//! - [`Progressive`]: one call per ready agent, as soon as the agent is ready.
//! - [`Power`]: a fixed number of lines per ready agent.
//! - [`Predictive`]: the adaptive pacer (see its module docs).
//! - [`Vicidial`]: an emulation of VICIdial's `ADAPT_HARD_LIMIT`, kept as the
//!   reference peer in benchmarks; it is not meant for production.
//!
//! Each pacer keeps its own [`Floor`], the dialer's view of agents and calls
//! rebuilt from events, so a pacer can be swapped without the driver keeping
//! state on its behalf.

mod predictive;
mod vicidial;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use predictive::{Predictive, PredictiveConfig};
pub use vicidial::{Vicidial, VicidialConfig};

/// A point in time on the driver's timeline, in milliseconds since an
/// arbitrary origin. Live drivers map a monotonic clock onto it; the simulator
/// starts at zero. Pacers only ever compare and subtract these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Time(u64);

impl Time {
    pub const ZERO: Time = Time(0);

    pub const fn from_millis(ms: u64) -> Self {
        Time(ms)
    }

    pub const fn from_secs(s: u64) -> Self {
        Time(s * 1000)
    }

    pub const fn as_millis(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// Time elapsed since `earlier`; zero if `earlier` is in the future.
    pub fn since(self, earlier: Time) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    pub fn saturating_sub(self, d: Duration) -> Time {
        Time(self.0.saturating_sub(millis(d)))
    }
}

impl std::ops::Add<Duration> for Time {
    type Output = Time;
    fn add(self, d: Duration) -> Time {
        Time(self.0.saturating_add(millis(d)))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// An agent, as the dialer knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AgentId(u32);

impl AgentId {
    pub const fn new(id: u32) -> Self {
        AgentId(id)
    }
    pub const fn get(self) -> u32 {
        self.0
    }
}

/// One outbound call attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(u64);

impl CallId {
    pub const fn new(id: u64) -> Self {
        CallId(id)
    }
    pub const fn get(self) -> u64 {
        self.0
    }
}

/// What a pacer is told. The vocabulary is what a real dialer can observe:
/// with answering-machine detection off, an answered call is just "answered"
/// until an agent hears who is there, and a dropped call's nature is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The agent joined the campaign and is ready.
    AgentLoggedIn(AgentId),
    /// The agent takes no further calls; if on a call, they finish it first.
    AgentLoggedOut(AgentId),
    /// The agent finished wrap-up (or machine handling) and is ready again.
    AgentReady(AgentId),
    /// The driver placed this call.
    CallPlaced(CallId),
    /// The far end answered and the call now needs an agent (with AMD on:
    /// the detector said "human").
    CallAnswered(CallId),
    /// The call ended without needing an agent: busy, SIT, no answer, or a
    /// machine that AMD hung up on.
    CallFailed(CallId),
    /// The answered call was bridged to this agent.
    CallConnected { call: CallId, agent: AgentId },
    /// The answered call found no agent within the grace period and got the
    /// drop message.
    CallDropped(CallId),
    /// The agent's part of the call is over. `live` says whether it was a
    /// person (wrap-up follows) or a machine (the agent is ready right after).
    CallEnded {
        call: CallId,
        agent: AgentId,
        live: bool,
    },
}

/// The clock-free pacing interface shared by live dialing and simulation.
pub trait Pacer {
    /// Learn from something that happened at `now`.
    fn on_event(&mut self, now: Time, event: &Event);
    /// How many new calls to place at `now`.
    fn calls_to_place(&mut self, now: Time) -> u32;
}

/// An agent as the pacer sees them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentPhase {
    Ready,
    /// Bridged to a call, person or machine.
    InCall,
    /// After a call: wrap-up, or the instant between a machine call and ready.
    Wrap,
}

#[derive(Debug, Clone, Copy)]
pub struct AgentView {
    pub phase: AgentPhase,
    /// When the current phase began.
    pub since: Time,
    /// Logged out mid-call: will not come back as ready.
    pub leaving: bool,
}

/// The dialer's picture of the floor, rebuilt from [`Event`]s. Ordered maps
/// keep iteration, and so every floating-point sum over agents or calls,
/// deterministic.
#[derive(Debug, Default, Clone)]
pub struct Floor {
    agents: BTreeMap<AgentId, AgentView>,
    /// Calls placed and not yet answered or failed, with their placing time.
    ringing: BTreeMap<CallId, Time>,
    /// Answered calls waiting for an agent, with their answer time.
    waiting: BTreeMap<CallId, Time>,
    ready: u32,
    in_call: u32,
}

impl Floor {
    pub fn apply(&mut self, now: Time, event: &Event) {
        match *event {
            Event::AgentLoggedIn(a) => self.set_phase(a, AgentPhase::Ready, now, false),
            Event::AgentLoggedOut(a) => match self.agents.get_mut(&a) {
                Some(v) if v.phase == AgentPhase::Ready => self.remove_agent(a),
                Some(v) => v.leaving = true,
                None => {}
            },
            Event::AgentReady(a) => {
                if self.agents.get(&a).is_some_and(|v| v.leaving) {
                    self.remove_agent(a);
                } else {
                    self.set_phase(a, AgentPhase::Ready, now, false);
                }
            }
            Event::CallPlaced(c) => {
                self.ringing.insert(c, now);
            }
            Event::CallAnswered(c) => {
                self.ringing.remove(&c);
                self.waiting.insert(c, now);
            }
            Event::CallFailed(c) => {
                self.ringing.remove(&c);
                self.waiting.remove(&c);
            }
            Event::CallConnected { call, agent } => {
                self.ringing.remove(&call);
                self.waiting.remove(&call);
                let leaving = self.agents.get(&agent).is_some_and(|v| v.leaving);
                self.set_phase(agent, AgentPhase::InCall, now, leaving);
            }
            Event::CallDropped(c) => {
                self.waiting.remove(&c);
            }
            Event::CallEnded { agent, .. } => {
                let leaving = self.agents.get(&agent).is_some_and(|v| v.leaving);
                self.set_phase(agent, AgentPhase::Wrap, now, leaving);
            }
        }
    }

    fn set_phase(&mut self, a: AgentId, phase: AgentPhase, now: Time, leaving: bool) {
        self.remove_agent(a);
        match phase {
            AgentPhase::Ready => self.ready += 1,
            AgentPhase::InCall => self.in_call += 1,
            AgentPhase::Wrap => {}
        }
        self.agents.insert(
            a,
            AgentView {
                phase,
                since: now,
                leaving,
            },
        );
    }

    fn remove_agent(&mut self, a: AgentId) {
        if let Some(v) = self.agents.remove(&a) {
            match v.phase {
                AgentPhase::Ready => self.ready -= 1,
                AgentPhase::InCall => self.in_call -= 1,
                AgentPhase::Wrap => {}
            }
        }
    }

    /// Agents ready and not yet holding a call.
    pub fn ready(&self) -> u32 {
        self.ready
    }
    /// Agents bridged to a call.
    pub fn in_call(&self) -> u32 {
        self.in_call
    }
    /// Agents logged in, including those finishing a call before leaving.
    pub fn logged_in(&self) -> u32 {
        self.agents.len() as u32
    }
    /// Agents logged in who will still take calls.
    pub fn staying(&self) -> u32 {
        self.agents.values().filter(|v| !v.leaving).count() as u32
    }
    pub fn ringing(&self) -> u32 {
        self.ringing.len() as u32
    }
    pub fn waiting(&self) -> u32 {
        self.waiting.len() as u32
    }
    pub fn agents(&self) -> impl Iterator<Item = (AgentId, &AgentView)> {
        self.agents.iter().map(|(a, v)| (*a, v))
    }
    /// Placing times of the calls still ringing.
    pub fn ringing_since(&self) -> impl Iterator<Item = Time> + '_ {
        self.ringing.values().copied()
    }
    pub fn ringing_placed_at(&self, call: CallId) -> Option<Time> {
        self.ringing.get(&call).copied()
    }
    pub fn agent(&self, a: AgentId) -> Option<&AgentView> {
        self.agents.get(&a)
    }
}

/// Which mode to run, with its parameters. Serialisable so that benchmark
/// records and campaign settings can name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum PacingMode {
    Preview { preview_s: f64 },
    Progressive,
    Power { ratio: f64 },
    Predictive(PredictiveConfig),
    Vicidial(VicidialConfig),
}

impl PacingMode {
    /// A short label for tables: `preview`, `power2.0`, `predictive3%`, …
    pub fn label(&self) -> String {
        match self {
            PacingMode::Preview { .. } => "preview".into(),
            PacingMode::Progressive => "progressive".into(),
            PacingMode::Power { ratio } => format!("power{ratio:.1}"),
            PacingMode::Predictive(c) => format!("predictive{}%", fmt_pct(c.target)),
            PacingMode::Vicidial(c) => format!("vicidial{}%", fmt_pct(c.drop_limit)),
        }
    }

    pub fn build(&self) -> Box<dyn Pacer + Send> {
        match self {
            PacingMode::Preview { preview_s } => {
                Box::new(Preview::new(Duration::from_secs_f64(preview_s.max(0.0))))
            }
            PacingMode::Progressive => Box::new(Progressive::default()),
            PacingMode::Power { ratio } => Box::new(Power::new(*ratio)),
            PacingMode::Predictive(c) => Box::new(Predictive::new(c.clone())),
            PacingMode::Vicidial(c) => Box::new(Vicidial::new(c.clone())),
        }
    }
}

fn fmt_pct(x: f64) -> String {
    let p = x * 100.0;
    if (p - p.round()).abs() < 1e-9 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// One call per ready agent: never more calls ringing or waiting than agents
/// ready to take them, so a live answer always finds an agent.
#[derive(Debug, Default)]
pub struct Progressive {
    floor: Floor,
}

impl Pacer for Progressive {
    fn on_event(&mut self, now: Time, event: &Event) {
        self.floor.apply(now, event);
    }
    fn calls_to_place(&mut self, _now: Time) -> u32 {
        self.floor
            .ready()
            .saturating_sub(self.floor.ringing() + self.floor.waiting())
    }
}

/// Preview: each agent without a call reads the next card for `preview`, then
/// dials it. Modelled as progressive with a per-agent delay: a queue holds,
/// for each agent not yet holding a call, when they started reading.
#[derive(Debug)]
pub struct Preview {
    floor: Floor,
    preview: Duration,
    reading_since: VecDeque<Time>,
}

impl Preview {
    pub fn new(preview: Duration) -> Self {
        Preview {
            floor: Floor::default(),
            preview,
            reading_since: VecDeque::new(),
        }
    }
}

impl Pacer for Preview {
    fn on_event(&mut self, now: Time, event: &Event) {
        match event {
            // An agent (or the agent whose call just failed) starts reading
            // the next card.
            Event::AgentLoggedIn(_) | Event::AgentReady(_) | Event::CallFailed(_) => {
                self.reading_since.push_back(now)
            }
            Event::CallDropped(_) => self.reading_since.push_back(now),
            Event::CallPlaced(_) => {
                self.reading_since.pop_front();
            }
            Event::AgentLoggedOut(a)
                if self
                    .floor
                    .agent(*a)
                    .is_some_and(|v| v.phase == AgentPhase::Ready) =>
            {
                self.reading_since.pop_back();
            }
            _ => {}
        }
        self.floor.apply(now, event);
    }

    fn calls_to_place(&mut self, now: Time) -> u32 {
        let free = self
            .floor
            .ready()
            .saturating_sub(self.floor.ringing() + self.floor.waiting());
        // Keep the queue no longer than the agents it stands for, so that a
        // missed event cannot make preview overdial.
        while self.reading_since.len() > free as usize {
            self.reading_since.pop_back();
        }
        let due = self
            .reading_since
            .iter()
            .take_while(|t| now.since(**t) >= self.preview)
            .count() as u32;
        due.min(free)
    }
}

/// Power dialing: `ratio` lines per ready agent, counting calls already
/// ringing, with answered calls waiting for an agent taking their agent first.
#[derive(Debug)]
pub struct Power {
    floor: Floor,
    ratio: f64,
}

impl Power {
    pub fn new(ratio: f64) -> Self {
        Power {
            floor: Floor::default(),
            ratio: ratio.max(0.0),
        }
    }
}

impl Pacer for Power {
    fn on_event(&mut self, now: Time, event: &Event) {
        self.floor.apply(now, event);
    }
    fn calls_to_place(&mut self, _now: Time) -> u32 {
        let free = self.floor.ready().saturating_sub(self.floor.waiting());
        let goal = (self.ratio * f64::from(free)).floor() as u32;
        goal.saturating_sub(self.floor.ringing())
    }
}
