//! A seeded, discrete-event simulator of an outbound floor that drives a
//! [`Pacer`] exactly as the live dialer does: it reports [`Event`]s, asks
//! [`Pacer::calls_to_place`] after every event and on a 250 ms tick, and
//! places what it is told.
//!
//! The simulator owns the ground truth the dialer cannot see: whether an
//! answer was a person or a machine, whether AMD got it wrong, who was
//! dropped. Metrics are computed from that truth over the measured window
//! (after warm-up), not from what the pacer believes, so a pacer cannot flatter
//! itself.
//!
//! Everything random comes from three seeded streams (callees, agent
//! durations, staffing/AMD) and events at the same millisecond are ordered by
//! insertion, so a (scenario, pacer, seed) triple always yields the same
//! [`RunMetrics`]. The benchmark that sweeps scenarios, modes and seeds lives
//! in [`bench`] and is re-exported here.

mod bench;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};
use serde::{Deserialize, Serialize};

use crate::pacing::{AgentId, CallId, Event, Pacer, Time};

pub use bench::{
    BenchOptions, Record, print_table, run_benchmark, run_cell, scenario_names, write_json,
    write_table,
};

/// A distribution given by its mean and standard deviation (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
}

impl MeanSd {
    pub const fn new(mean: f64, sd: f64) -> Self {
        MeanSd { mean, sd }
    }

    fn lognormal(self) -> Result<LogNormal<f64>, SimError> {
        let s2 = (1.0 + (self.sd / self.mean).powi(2)).ln();
        LogNormal::new(self.mean.ln() - s2 / 2.0, s2.sqrt())
            .map_err(|e| SimError(format!("lognormal({}, {}): {e}", self.mean, self.sd)))
    }
}

/// Answering-machine detection: how long it listens and how often it errs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Amd {
    pub min_s: f64,
    pub max_s: f64,
    /// Share of people hung up on as machines (abandons in the UK form).
    pub false_positive: f64,
    /// Share of machines passed to an agent.
    pub false_negative: f64,
}

/// How conditions change during the shift. Times are seconds after warm-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Drift {
    None,
    /// The live-answer probability falls linearly to `to_fraction` of its
    /// start value by the end of the shift.
    AnswerRateFalls {
        to_fraction: f64,
    },
    /// Half the agents start at once, the rest log in over 90 minutes; each
    /// takes two 15-minute breaks; a quarter leave during the last 1.5 hours.
    Staffing,
    /// Talk time (mean and sd) doubles at `at_s`.
    TalkDoubles {
        at_s: f64,
    },
    /// Calls placed in [`at_s`, `at_s + minutes`) ring unanswered to the
    /// timeout.
    Outage {
        at_s: f64,
        minutes: f64,
    },
}

/// The synthetic floor: callees, agents and the shift.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub name: String,
    pub agents: u32,
    pub p_live: f64,
    pub p_machine: f64,
    pub p_busy: f64,
    pub live_ring: MeanSd,
    pub machine_ring: MeanSd,
    pub busy_mean_s: f64,
    pub ring_timeout_s: f64,
    pub talk: MeanSd,
    pub wrap: MeanSd,
    /// Agent time spent on a machine that reached them (AMD off, or missed).
    pub machine_handling_s: f64,
    pub grace_s: f64,
    pub warmup_s: f64,
    pub shift_s: f64,
    pub tick_ms: u64,
    pub amd: Option<Amd>,
    pub drift: Drift,
}

impl Scenario {
    /// The default benchmark floor (see `docs/dialer-simulation.md`).
    pub fn stationary(agents: u32, p_live: f64) -> Self {
        Scenario {
            name: "stationary".into(),
            agents,
            p_live,
            p_machine: 0.15,
            p_busy: 0.15,
            live_ring: MeanSd::new(10.0, 5.0),
            machine_ring: MeanSd::new(15.0, 5.0),
            busy_mean_s: 4.0,
            ring_timeout_s: 25.0,
            talk: MeanSd::new(120.0, 96.0),
            wrap: MeanSd::new(15.0, 10.0),
            machine_handling_s: 8.0,
            grace_s: 2.0,
            warmup_s: 1800.0,
            shift_s: 8.0 * 3600.0,
            tick_ms: 250,
            amd: None,
            drift: Drift::None,
        }
    }

    /// A named scenario of the benchmark, or `None` for an unknown name.
    pub fn named(name: &str, agents: u32, p_live: f64) -> Option<Self> {
        let base = Scenario::stationary(agents, p_live);
        let drift = match name {
            "stationary" => Drift::None,
            "answer_rate_falls" => Drift::AnswerRateFalls { to_fraction: 0.5 },
            "staffing" => Drift::Staffing,
            "talk_doubles" => Drift::TalkDoubles { at_s: 4.0 * 3600.0 },
            "outage" => Drift::Outage {
                at_s: 3.0 * 3600.0,
                minutes: 10.0,
            },
            "amd" => {
                return Some(Scenario {
                    name: name.into(),
                    amd: Some(Amd {
                        min_s: 2.0,
                        max_s: 3.5,
                        false_positive: 0.02,
                        false_negative: 0.10,
                    }),
                    ..base
                });
            }
            _ => return None,
        };
        Some(Scenario {
            name: name.into(),
            drift,
            ..base
        })
    }
}

/// What went wrong setting up a run (only bad scenario parameters can).
#[derive(Debug, Clone, PartialEq)]
pub struct SimError(pub String);

impl fmt::Display for SimError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "simulation: {}", self.0)
    }
}

impl std::error::Error for SimError {}

/// Ground-truth results of one run over the measured window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct RunMetrics {
    pub logged_in_s: f64,
    pub talk_s: f64,
    pub wrap_s: f64,
    pub machine_s: f64,
    pub dials: u64,
    pub live_answers: u64,
    pub live_connects: u64,
    /// People answered and dropped after the grace period (TSR abandons).
    pub live_drops: u64,
    /// People hung up on by AMD (added in the UK form).
    pub amd_false_positives: u64,
    /// Per minute of the measured window: live answers, TSR abandons, AMD
    /// false positives (by answer time).
    pub minutes: Vec<[u32; 3]>,
    /// Most calls ringing at once.
    pub max_ringing: u32,
    /// Most calls ringing or waiting at once, over ready agents at that time
    /// (progressive's invariant is that this never exceeds zero).
    pub max_excess_calls: i64,
}

impl RunMetrics {
    pub fn talk_occupancy(&self) -> f64 {
        ratio(self.talk_s, self.logged_in_s)
    }
    pub fn busy_occupancy(&self) -> f64 {
        ratio(self.talk_s + self.wrap_s + self.machine_s, self.logged_in_s)
    }
    /// TSR form: abandoned people over people who answered.
    pub fn abandon_rate(&self) -> f64 {
        ratio(self.live_drops as f64, self.live_answers as f64)
    }
    /// UK form: adds people hung up on by AMD.
    pub fn abandon_rate_uk(&self) -> f64 {
        ratio(
            (self.live_drops + self.amd_false_positives) as f64,
            self.live_answers as f64,
        )
    }
    pub fn idle_s_per_connect(&self) -> f64 {
        let idle = self.logged_in_s - self.talk_s - self.wrap_s - self.machine_s;
        ratio(idle.max(0.0), self.live_connects as f64)
    }
    pub fn connects_per_agent_hour(&self) -> f64 {
        ratio(self.live_connects as f64 * 3600.0, self.logged_in_s)
    }
    pub fn dials_per_agent_hour(&self) -> f64 {
        ratio(self.dials as f64 * 3600.0, self.logged_in_s)
    }
    /// The worst TSR rate over any `window` consecutive minutes.
    pub fn worst_window(&self, window: usize) -> f64 {
        let w = window.min(self.minutes.len()).max(1);
        let (mut live, mut ab) = (0u64, 0u64);
        let mut worst = 0.0f64;
        for (i, m) in self.minutes.iter().enumerate() {
            live += u64::from(m[0]);
            ab += u64::from(m[1]);
            if i >= w {
                live -= u64::from(self.minutes[i - w][0]);
                ab -= u64::from(self.minutes[i - w][1]);
            }
            if i + 1 >= w && live > 0 {
                worst = worst.max(ab as f64 / live as f64);
            }
        }
        worst
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Tick,
    Resolve(usize),
    AmdDone(usize),
    Grace(usize),
    AgentDone(usize),
    Login(usize),
    Logout(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Truth {
    Live,
    Machine,
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    Ringing,
    Analysing,
    Waiting,
    Done,
}

#[derive(Debug, Clone, Copy)]
struct Call {
    truth: Truth,
    state: CallState,
    answered_at: Time,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AState {
    Offline,
    Ready,
    Talk(usize),
    Machine(usize),
    Wrap,
}

#[derive(Debug, Clone, Copy)]
struct Agent {
    state: AState,
    since: Time,
    login_at: Time,
    leaving: bool,
    rejoin: bool,
}

struct Samplers {
    live_ring: LogNormal<f64>,
    machine_ring: LogNormal<f64>,
    busy: Exp<f64>,
    talk: LogNormal<f64>,
    talk_doubled: LogNormal<f64>,
    wrap: LogNormal<f64>,
}

/// Run one shift of `scenario` under `pacer` with `seed`.
pub fn run(scenario: &Scenario, pacer: &mut dyn Pacer, seed: u64) -> Result<RunMetrics, SimError> {
    let mut days = run_days(scenario, pacer, &[seed])?;
    days.pop().ok_or_else(|| SimError("no day was run".into()))
}

/// Run consecutive days of one campaign with the same pacer, the way a
/// deployment runs: day `i` (seed `seeds[i]`) starts 24 h after day `i − 1`
/// on the pacer's clock, so whatever the pacer learned (answer rates,
/// durations, abandons in its rolling windows) carries over the night. At
/// the end of each shift the dialer stops placing calls, cancels those still
/// ringing and lets the agents finish their calls and log out.
pub fn run_days(
    scenario: &Scenario,
    pacer: &mut dyn Pacer,
    seeds: &[u64],
) -> Result<Vec<RunMetrics>, SimError> {
    let mut out = Vec::with_capacity(seeds.len());
    for (day, &seed) in seeds.iter().enumerate() {
        let origin = Time::ZERO + Duration::from_secs(86_400 * day as u64);
        out.push(run_day(scenario, &mut *pacer, seed, origin)?);
    }
    Ok(out)
}

fn run_day(
    scenario: &Scenario,
    pacer: &mut dyn Pacer,
    seed: u64,
    origin: Time,
) -> Result<RunMetrics, SimError> {
    if scenario.warmup_s + scenario.shift_s >= 86_400.0 {
        return Err(SimError(
            "warm-up plus shift must be shorter than a day".into(),
        ));
    }
    let samplers = Samplers {
        live_ring: scenario.live_ring.lognormal()?,
        machine_ring: scenario.machine_ring.lognormal()?,
        busy: Exp::new(1.0 / scenario.busy_mean_s.max(1e-3))
            .map_err(|e| SimError(format!("busy time: {e}")))?,
        talk: scenario.talk.lognormal()?,
        talk_doubled: MeanSd::new(scenario.talk.mean * 2.0, scenario.talk.sd * 2.0).lognormal()?,
        wrap: scenario.wrap.lognormal()?,
    };
    let mut sim = Sim::new(scenario, samplers, pacer, seed, origin);
    sim.run();
    Ok(sim.finish())
}

struct Sim<'a> {
    sc: &'a Scenario,
    d: Samplers,
    pacer: &'a mut dyn Pacer,
    now: Time,
    origin: Time,
    warm: Time,
    end: Time,
    /// The shift is over: no new calls, agents leave after their call.
    closing: bool,
    seq: u64,
    queue: BinaryHeap<Reverse<(Time, u64, Ev)>>,
    rng_calls: StdRng,
    rng_agents: StdRng,
    rng_misc: StdRng,
    agents: Vec<Agent>,
    ready: VecDeque<usize>,
    waiting: VecDeque<usize>,
    calls: Vec<Call>,
    ringing: u32,
    m: RunMetrics,
}

/// SplitMix64, to derive independent stream seeds from one seed.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl<'a> Sim<'a> {
    fn new(
        sc: &'a Scenario,
        d: Samplers,
        pacer: &'a mut dyn Pacer,
        seed: u64,
        origin: Time,
    ) -> Self {
        let warm = origin + secs(sc.warmup_s);
        let end = warm + secs(sc.shift_s);
        let minutes = (sc.shift_s / 60.0).ceil() as usize;
        Sim {
            sc,
            d,
            pacer,
            now: origin,
            origin,
            warm,
            end,
            closing: false,
            seq: 0,
            queue: BinaryHeap::new(),
            rng_calls: StdRng::seed_from_u64(mix(seed.wrapping_mul(3))),
            rng_agents: StdRng::seed_from_u64(mix(seed.wrapping_mul(3) + 1)),
            rng_misc: StdRng::seed_from_u64(mix(seed.wrapping_mul(3) + 2)),
            agents: vec![
                Agent {
                    state: AState::Offline,
                    since: Time::ZERO,
                    login_at: Time::ZERO,
                    leaving: false,
                    rejoin: false
                };
                sc.agents as usize
            ],
            ready: VecDeque::new(),
            waiting: VecDeque::new(),
            calls: Vec::new(),
            ringing: 0,
            m: RunMetrics {
                minutes: vec![[0; 3]; minutes],
                ..RunMetrics::default()
            },
        }
    }

    fn at(&mut self, t: Time, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((t, self.seq, ev)));
    }

    fn tell(&mut self, e: Event) {
        self.pacer.on_event(self.now, &e);
    }

    fn schedule_staff(&mut self) {
        let n = self.agents.len();
        let h = 3600.0;
        for i in 0..n {
            match self.sc.drift {
                Drift::Staffing => {
                    let login = if i < n.div_ceil(2) {
                        0.0
                    } else {
                        self.rng_misc.random_range(0.0..1.5 * h)
                    };
                    self.at(self.origin + secs(login), Ev::Login(i));
                    for (lo, hi) in [(2.0 * h, 3.0 * h), (5.0 * h, 6.0 * h)] {
                        let b = self.rng_misc.random_range(lo..hi);
                        self.at(self.origin + secs(b), Ev::Logout(i));
                        self.at(self.origin + secs(b + 900.0), Ev::Login(i));
                    }
                    if i % 4 == 3 {
                        let t = self.rng_misc.random_range(7.0 * h..8.5 * h);
                        self.at(self.origin + secs(t), Ev::Logout(i));
                    }
                }
                _ => self.at(self.origin, Ev::Login(i)),
            }
        }
    }

    fn run(&mut self) {
        self.schedule_staff();
        self.at(self.origin, Ev::Tick);
        while let Some(Reverse((t, _, ev))) = self.queue.pop() {
            if t > self.end && !self.closing {
                self.close();
            }
            self.now = t;
            match ev {
                Ev::Tick => {
                    let next = t + Duration::from_millis(self.sc.tick_ms.max(1));
                    if !self.closing {
                        self.at(next, Ev::Tick);
                    }
                }
                Ev::Resolve(c) => self.resolve(c),
                Ev::AmdDone(c) => self.amd_done(c),
                Ev::Grace(c) => self.grace(c),
                Ev::AgentDone(a) => self.agent_done(a),
                Ev::Login(a) => self.login(a),
                Ev::Logout(a) => self.logout(a),
            }
            if !self.closing {
                self.dial();
            }
        }
    }

    /// End of shift: cancel the calls still ringing and log every agent out
    /// (those on a call finish it first). Events keep being processed, with
    /// no new calls, until the floor is empty.
    fn close(&mut self) {
        self.now = self.end;
        self.closing = true;
        for c in 0..self.calls.len() {
            if self.calls[c].state == CallState::Ringing {
                self.calls[c].state = CallState::Done;
                self.ringing = self.ringing.saturating_sub(1);
                self.tell(Event::CallFailed(CallId::new(c as u64)));
            }
        }
        for a in 0..self.agents.len() {
            self.agents[a].rejoin = false;
            self.logout(a);
        }
    }

    fn in_window(&self, t: Time) -> bool {
        t >= self.warm && t < self.end
    }

    fn minute(&self, t: Time) -> Option<usize> {
        if !self.in_window(t) {
            return None;
        }
        let i = (t.since(self.warm).as_secs() / 60) as usize;
        (i < self.m.minutes.len()).then_some(i)
    }

    fn clip(&self, from: Time, to: Time) -> f64 {
        let a = from.max(self.warm);
        let b = to.min(self.end);
        if b > a { b.since(a).as_secs_f64() } else { 0.0 }
    }

    fn after_warm_s(&self, t: Time) -> f64 {
        t.as_secs_f64() - self.origin.as_secs_f64() - self.sc.warmup_s
    }

    fn p_live(&self) -> f64 {
        match self.sc.drift {
            Drift::AnswerRateFalls { to_fraction } => {
                let frac = (self.after_warm_s(self.now) / self.sc.shift_s).clamp(0.0, 1.0);
                self.sc.p_live * (1.0 - (1.0 - to_fraction) * frac)
            }
            _ => self.sc.p_live,
        }
    }

    fn outage(&self) -> bool {
        match self.sc.drift {
            Drift::Outage { at_s, minutes } => {
                let t = self.after_warm_s(self.now);
                t >= at_s && t < at_s + minutes * 60.0
            }
            _ => false,
        }
    }

    fn dial(&mut self) {
        let n = self.pacer.calls_to_place(self.now);
        for _ in 0..n {
            self.place();
        }
        self.m.max_ringing = self.m.max_ringing.max(self.ringing);
        let excess = i64::from(self.ringing) + self.waiting.len() as i64 - self.ready.len() as i64;
        self.m.max_excess_calls = self.m.max_excess_calls.max(excess);
    }

    fn place(&mut self) {
        let id = self.calls.len();
        let timeout = self.sc.ring_timeout_s;
        let (pl, pm, pb) = (self.p_live(), self.sc.p_machine, self.sc.p_busy);
        let u: f64 = self.rng_calls.random();
        // Draw every variate on every dial so that the streams stay aligned
        // across modes and drift settings (common random numbers).
        let live_t = self.d.live_ring.sample(&mut self.rng_calls);
        let machine_t = self.d.machine_ring.sample(&mut self.rng_calls);
        let busy_t = self.d.busy.sample(&mut self.rng_calls);
        let (truth, after) = if self.outage() {
            (Truth::Fail, timeout)
        } else if u < pl && live_t < timeout {
            (Truth::Live, live_t)
        } else if u >= pl && u < pl + pm && machine_t < timeout {
            (Truth::Machine, machine_t)
        } else if u >= pl + pm && u < pl + pm + pb {
            (Truth::Fail, busy_t.min(timeout))
        } else {
            (Truth::Fail, timeout)
        };
        self.calls.push(Call {
            truth,
            state: CallState::Ringing,
            answered_at: Time::ZERO,
        });
        self.ringing += 1;
        if self.in_window(self.now) {
            self.m.dials += 1;
        }
        let t = self.now + secs(after);
        self.at(t, Ev::Resolve(id));
        self.tell(Event::CallPlaced(CallId::new(id as u64)));
    }

    fn resolve(&mut self, c: usize) {
        if self.calls[c].state != CallState::Ringing {
            return; // cancelled at the end of the shift
        }
        self.ringing = self.ringing.saturating_sub(1);
        let truth = self.calls[c].truth;
        if truth == Truth::Fail {
            self.calls[c].state = CallState::Done;
            self.tell(Event::CallFailed(CallId::new(c as u64)));
            return;
        }
        self.calls[c].answered_at = self.now;
        if truth == Truth::Live
            && let Some(i) = self.minute(self.now)
        {
            self.m.live_answers += 1;
            self.m.minutes[i][0] += 1;
        }
        match self.sc.amd {
            Some(amd) => {
                self.calls[c].state = CallState::Analysing;
                let lo = amd.min_s.min(amd.max_s);
                let d = if amd.max_s > lo {
                    self.rng_misc.random_range(lo..amd.max_s)
                } else {
                    lo
                };
                let t = self.now + secs(d);
                self.at(t, Ev::AmdDone(c));
            }
            None => self.answered(c),
        }
    }

    fn amd_done(&mut self, c: usize) {
        let Some(amd) = self.sc.amd else { return };
        let u: f64 = self.rng_misc.random();
        let hang_up = match self.calls[c].truth {
            Truth::Live => u < amd.false_positive,
            Truth::Machine => u >= amd.false_negative,
            Truth::Fail => true,
        };
        if hang_up {
            self.calls[c].state = CallState::Done;
            if self.calls[c].truth == Truth::Live
                && let Some(i) = self.minute(self.calls[c].answered_at)
            {
                self.m.amd_false_positives += 1;
                self.m.minutes[i][2] += 1;
            }
            self.tell(Event::CallFailed(CallId::new(c as u64)));
        } else {
            self.answered(c);
        }
    }

    fn answered(&mut self, c: usize) {
        self.tell(Event::CallAnswered(CallId::new(c as u64)));
        if let Some(a) = self.ready.pop_front() {
            self.connect(c, a);
        } else {
            self.calls[c].state = CallState::Waiting;
            self.waiting.push_back(c);
            let t = self.now + secs(self.sc.grace_s);
            self.at(t, Ev::Grace(c));
        }
    }

    fn grace(&mut self, c: usize) {
        if self.calls[c].state != CallState::Waiting {
            return;
        }
        self.calls[c].state = CallState::Done;
        self.waiting.retain(|x| *x != c);
        if self.calls[c].truth == Truth::Live
            && let Some(i) = self.minute(self.calls[c].answered_at)
        {
            self.m.live_drops += 1;
            self.m.minutes[i][1] += 1;
        }
        self.tell(Event::CallDropped(CallId::new(c as u64)));
    }

    fn connect(&mut self, c: usize, a: usize) {
        self.calls[c].state = CallState::Done;
        let live = self.calls[c].truth == Truth::Live;
        let dur = if live {
            let doubled = matches!(self.sc.drift, Drift::TalkDoubles { at_s } if self.after_warm_s(self.now) >= at_s);
            let s = if doubled {
                &self.d.talk_doubled
            } else {
                &self.d.talk
            };
            s.sample(&mut self.rng_agents)
        } else {
            self.sc.machine_handling_s
        };
        if live && self.in_window(self.now) {
            self.m.live_connects += 1;
        }
        self.set_state(
            a,
            if live {
                AState::Talk(c)
            } else {
                AState::Machine(c)
            },
        );
        let t = self.now + secs(dur);
        self.at(t, Ev::AgentDone(a));
        self.tell(Event::CallConnected {
            call: CallId::new(c as u64),
            agent: AgentId::new(a as u32),
        });
    }

    /// Close the agent's current phase into the metrics and start another.
    fn set_state(&mut self, a: usize, state: AState) {
        let ag = self.agents[a];
        let d = self.clip(ag.since, self.now);
        match ag.state {
            AState::Talk(_) => self.m.talk_s += d,
            AState::Machine(_) => self.m.machine_s += d,
            AState::Wrap => self.m.wrap_s += d,
            AState::Ready | AState::Offline => {}
        }
        if state == AState::Offline && ag.state != AState::Offline {
            self.m.logged_in_s += self.clip(ag.login_at, self.now);
        }
        if ag.state == AState::Offline && state != AState::Offline {
            self.agents[a].login_at = self.now;
        }
        self.agents[a].state = state;
        self.agents[a].since = self.now;
    }

    fn agent_done(&mut self, a: usize) {
        let id = AgentId::new(a as u32);
        match self.agents[a].state {
            AState::Talk(c) => {
                self.set_state(a, AState::Wrap);
                let w = self.d.wrap.sample(&mut self.rng_agents);
                let t = self.now + secs(w);
                self.at(t, Ev::AgentDone(a));
                self.tell(Event::CallEnded {
                    call: CallId::new(c as u64),
                    agent: id,
                    live: true,
                });
            }
            AState::Machine(c) => {
                self.set_state(a, AState::Wrap);
                self.tell(Event::CallEnded {
                    call: CallId::new(c as u64),
                    agent: id,
                    live: false,
                });
                self.become_ready(a);
            }
            AState::Wrap => self.become_ready(a),
            AState::Ready | AState::Offline => {}
        }
    }

    fn become_ready(&mut self, a: usize) {
        let id = AgentId::new(a as u32);
        self.tell(Event::AgentReady(id));
        if self.agents[a].leaving {
            self.agents[a].leaving = false;
            self.set_state(a, AState::Offline);
            if std::mem::take(&mut self.agents[a].rejoin) {
                self.login(a);
            }
            return;
        }
        self.set_state(a, AState::Ready);
        self.take_or_wait(a);
    }

    fn take_or_wait(&mut self, a: usize) {
        if let Some(c) = self.waiting.pop_front() {
            self.connect(c, a);
        } else {
            self.ready.push_back(a);
        }
    }

    fn login(&mut self, a: usize) {
        if self.closing {
            return;
        }
        if self.agents[a].state != AState::Offline {
            // Back from a break before the last call ended: rejoin after it.
            if self.agents[a].leaving {
                self.agents[a].rejoin = true;
            }
            return;
        }
        self.set_state(a, AState::Ready);
        self.tell(Event::AgentLoggedIn(AgentId::new(a as u32)));
        self.take_or_wait(a);
    }

    fn logout(&mut self, a: usize) {
        match self.agents[a].state {
            AState::Offline => {}
            AState::Ready => {
                self.ready.retain(|x| *x != a);
                self.set_state(a, AState::Offline);
                self.tell(Event::AgentLoggedOut(AgentId::new(a as u32)));
            }
            _ => {
                self.agents[a].leaving = true;
                self.agents[a].rejoin = false;
                self.tell(Event::AgentLoggedOut(AgentId::new(a as u32)));
            }
        }
    }

    fn finish(mut self) -> RunMetrics {
        self.now = self.now.max(self.end);
        for a in 0..self.agents.len() {
            if self.agents[a].state != AState::Offline {
                self.set_state(a, AState::Offline);
            }
        }
        self.m
    }
}
