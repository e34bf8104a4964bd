//! The predictive pacer: dial as many calls as keeps the *marginal* call's
//! chance of being abandoned under a budget, and steer that budget so the
//! campaign's abandon rate lands on its target.
//!
//! Each time it is asked, it forecasts, for a grid of horizons τ (1–25 s):
//! - **supply** — agents free to take a call by τ + grace: those ready now,
//!   plus, for every agent on a call or in wrap-up, the probability that they
//!   finish by then given how long they have been at it. That residual-life
//!   estimate comes from talk, machine-handling and wrap-up durations learned
//!   online (decaying histograms), conditioned on each agent's elapsed time.
//! - **demand** — answered calls needing an agent by τ: those waiting now,
//!   plus, for every call still ringing, the probability that it is answered
//!   within τ given its age (from the learned answer-age distribution).
//!
//! Supply and demand are sums of independent Bernoulli variables, treated
//! as normal. A new call answered in (τ_{j−1}, τ_j] is abandoned if the
//! answers ahead of it (waiting, ringing, and the new calls placed before it)
//! already take every agent free by τ_j + grace; summing that over the fresh
//! call's answer-time distribution gives P(abandon | answered) for the
//! marginal call. The pacer places the k-th call only while that probability
//! stays under the budget β. (A first version compared the worst τ of
//! E[(demand − supply)⁺] instead; it under-priced calls that rely on agents
//! who are still talking and did no better than a fixed power ratio of 3.)
//!
//! β is the feedback term, steered on a rolling window (`window_h`, 24 h
//! as Ofcom counts) of per-minute counts kept across shifts and days. The
//! pacer counts its own abandons against an allowance per live answer of
//! `min(aim × target, window_limit − window_z · sqrt(window_limit / L))`,
//! L being the live answers in the window: the second term is a margin for
//! the window's own noise, wider for a small team. With AMD off the dialer
//! cannot tell a dropped person from a dropped machine, so each drop counts
//! as the posterior probability that a call answered at its ring age was a
//! person, from the answer ages of connected people and machines. Slack in
//! the window raises β exponentially, spending it over about
//! `feedback_horizon_s`; overspend lowers it. That makes the rate track the
//! aim whatever bias the forecast has, and an abandon late in one shift
//! still weighs on the start of the next.
//!
//! Two guards keep it safe when the world shifts faster than it learns: the
//! answer probability used is the higher of a fast and a slow estimate (a
//! falling answer rate errs towards dialling less), and failures are not
//! learned while the fast estimate collapses (a carrier outage must not teach
//! the pacer that nobody answers, or it floods agents when the carrier comes
//! back). Until it has seen enough calls it behaves progressively.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{AgentId, AgentPhase, Event, Floor, Pacer, Time};

/// Tunables of [`Predictive`]. The defaults are those tuned with the
/// simulator; only `target` is normally set per campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PredictiveConfig {
    /// Abandon target as a fraction of live answers (0.03 = 3 %).
    pub target: f64,
    /// The fraction of `target` the feedback aims at; the margin absorbs the
    /// noise of the last minutes of a window.
    pub aim: f64,
    /// How long an answered call may wait for an agent before it is dropped.
    pub grace_s: f64,
    /// Estimated share of live answers that AMD hangs up on as machines; added
    /// to the counted rate (the UK "reasoned estimate"). Zero with AMD off.
    pub amd_false_positive_rate: f64,
    /// Hard cap on calls ringing per logged-in agent.
    pub max_lines_per_agent: f64,
    /// Time over which slack (or overspend) is worked off.
    pub feedback_horizon_s: f64,
    /// Initial marginal budget, as a multiple of `target`.
    pub budget_start: f64,
    /// Half-life, in dial outcomes, of the answer statistics.
    pub memory_calls: f64,
    /// Half-life, in samples, of the talk, wrap and machine-handling
    /// statistics.
    pub memory_agent: f64,
    /// Samples needed of each kind before leaving progressive cold start.
    pub min_samples: u32,
    /// The rolling window the feedback steers, in hours (Ofcom: 24). The
    /// pacer keeps per-minute counts of live answers and abandons over it,
    /// across shifts and days, so abandons at the end of one shift still
    /// weigh on the start of the next.
    pub window_h: f64,
    /// The fast answer-rate estimate only overrides the slow one when it is
    /// this many standard errors above it (0: whenever it is higher).
    pub fast_guard_sigmas: f64,
    /// How the calls of one decision share the budget: 0 holds each call's
    /// own (marginal) abandon probability to β; 1 holds their average to β,
    /// so calls that are nearly safe (agents idle now) pay for a riskier
    /// last one. Values between blend the two.
    pub batch_weight: f64,
    /// Margin for the noise of the window: the feedback aims at
    /// `window_limit − window_z · sqrt(window_limit / L)` (L: live answers
    /// in the window), or `aim × target` if lower. Few answers per window (a
    /// small team) means a wider margin, since one extra drop moves the rate
    /// more.
    pub window_z: f64,
    /// The rate no rolling window may exceed (Ofcom: 3 % per 24 h). With a
    /// target below it (say 1 %), the target binds and the margin does not.
    pub window_limit: f64,
}

impl Default for PredictiveConfig {
    fn default() -> Self {
        PredictiveConfig {
            target: 0.03,
            aim: 0.9,
            grace_s: 2.0,
            amd_false_positive_rate: 0.0,
            max_lines_per_agent: 3.0,
            feedback_horizon_s: 1800.0,
            budget_start: 2.0,
            memory_calls: 1500.0,
            memory_agent: 250.0,
            min_samples: 30,
            window_h: 24.0,
            fast_guard_sigmas: 0.0,
            batch_weight: 0.0,
            window_z: 2.2,
            window_limit: 0.03,
        }
    }
}

impl PredictiveConfig {
    pub fn with_target(target: f64) -> Self {
        PredictiveConfig {
            target,
            ..Self::default()
        }
    }
}

/// Horizons (seconds) at which supply and demand are compared.
const TAUS: [f64; 10] = [1.0, 2.0, 3.0, 5.0, 7.0, 9.0, 12.0, 15.0, 19.0, 25.0];
const K: usize = TAUS.len();
/// Rebuild the distribution tables at most this often.
const REBUILD_MS: u64 = 5_000;

/// A decaying histogram of durations with a piecewise-linear CDF. Old samples
/// fade geometrically: each new sample weighs `growth` times the previous one,
/// which is the same as shrinking all others, without touching every bin.
#[derive(Debug, Clone)]
struct Hist {
    bin_ms: f64,
    mass: Vec<f64>,
    total: f64,
    weight: f64,
    growth: f64,
    n: u64,
    /// Normalised CDF at bin edges (len = bins + 1).
    edges: Vec<f64>,
    mean_ms: f64,
}

impl Hist {
    fn new(bin_ms: u64, bins: usize, half_life: f64) -> Self {
        Hist {
            bin_ms: bin_ms as f64,
            mass: vec![0.0; bins],
            total: 0.0,
            weight: 1.0,
            growth: 2f64.powf(1.0 / half_life.max(1.0)),
            n: 0,
            edges: vec![0.0; bins + 1],
            mean_ms: 0.0,
        }
    }

    fn add(&mut self, d: Duration) {
        let i = ((d.as_millis() as f64 / self.bin_ms) as usize).min(self.mass.len() - 1);
        self.mass[i] += self.weight;
        self.total += self.weight;
        self.weight *= self.growth;
        self.n += 1;
        if self.weight > 1e150 {
            let s = 1.0 / self.weight;
            self.mass.iter_mut().for_each(|m| *m *= s);
            self.total *= s;
            self.weight = 1.0;
        }
    }

    fn rebuild(&mut self) {
        if self.total <= 0.0 {
            return;
        }
        let mut acc = 0.0;
        let mut mean = 0.0;
        for (i, m) in self.mass.iter().enumerate() {
            acc += m;
            mean += m * (i as f64 + 0.5);
            self.edges[i + 1] = acc / self.total;
        }
        self.mean_ms = mean / self.total * self.bin_ms;
    }

    fn cdf(&self, ms: f64) -> f64 {
        let x = ms / self.bin_ms;
        if x <= 0.0 {
            return 0.0;
        }
        let i = x as usize;
        if i >= self.mass.len() {
            return 1.0;
        }
        let lo = self.edges[i];
        lo + (self.edges[i + 1] - lo) * (x - i as f64)
    }

    fn survival(&self, ms: f64) -> f64 {
        (1.0 - self.cdf(ms)).max(0.0)
    }

    /// P(done within `h_ms` | not done after `e_ms`).
    fn done_within(&self, e_ms: f64, h_ms: f64) -> f64 {
        let s = self.survival(e_ms);
        if s < 1e-6 {
            // Older than anything seen lately: fall back to a memoryless guess.
            return 1.0 - (-h_ms / self.mean_ms.max(1000.0)).exp();
        }
        ((s - self.survival(e_ms + h_ms)) / s).clamp(0.0, 1.0)
    }
}

/// How dials end by age: answered (needing an agent) or otherwise, with the
/// same geometric fading as [`Hist`].
#[derive(Debug, Clone)]
struct AnswerStats {
    bin_ms: f64,
    ans: Vec<f64>,
    all: Vec<f64>,
    total_ans: f64,
    total_all: f64,
    weight: f64,
    growth: f64,
    n_ans: u64,
    /// Unnormalised cumulative mass at bin edges.
    cum_ans: Vec<f64>,
    cum_all: Vec<f64>,
    /// Fast estimate of the answer probability (EWMA over ~100 dials).
    fast: f64,
}

impl AnswerStats {
    fn new(half_life: f64) -> Self {
        let bins = 120; // 0.5 s bins up to a minute
        AnswerStats {
            bin_ms: 500.0,
            ans: vec![0.0; bins],
            all: vec![0.0; bins],
            total_ans: 0.0,
            total_all: 0.0,
            weight: 1.0,
            growth: 2f64.powf(1.0 / half_life.max(1.0)),
            n_ans: 0,
            cum_ans: vec![0.0; bins + 1],
            cum_all: vec![0.0; bins + 1],
            fast: 0.0,
        }
    }

    fn slow(&self) -> f64 {
        if self.total_all > 0.0 {
            self.total_ans / self.total_all
        } else {
            0.0
        }
    }

    fn add(&mut self, age: Duration, answered: bool) {
        let a = if answered { 1.0 } else { 0.0 };
        self.fast += (a - self.fast) / 100.0;
        // A collapse of the fast estimate is an outage, not a new normal:
        // keep learning answers but not the failures.
        if !answered && self.n_ans > 0 && self.fast < 0.3 * self.slow() {
            return;
        }
        let i = ((age.as_millis() as f64 / self.bin_ms) as usize).min(self.all.len() - 1);
        self.all[i] += self.weight;
        self.total_all += self.weight;
        if answered {
            self.ans[i] += self.weight;
            self.total_ans += self.weight;
            self.n_ans += 1;
        }
        self.weight *= self.growth;
        if self.weight > 1e150 {
            let s = 1.0 / self.weight;
            self.ans
                .iter_mut()
                .chain(self.all.iter_mut())
                .for_each(|m| *m *= s);
            self.total_ans *= s;
            self.total_all *= s;
            self.weight = 1.0;
        }
    }

    fn rebuild(&mut self) {
        let (mut a, mut b) = (0.0, 0.0);
        for i in 0..self.all.len() {
            a += self.ans[i];
            b += self.all[i];
            self.cum_ans[i + 1] = a;
            self.cum_all[i + 1] = b;
        }
    }

    fn interp(cum: &[f64], x: f64) -> f64 {
        if x <= 0.0 {
            return 0.0;
        }
        let i = x as usize;
        if i + 1 >= cum.len() {
            return cum[cum.len() - 1];
        }
        cum[i] + (cum[i + 1] - cum[i]) * (x - i as f64)
    }

    /// P(answered within (age, age + τ] | still ringing at age).
    fn answer_within(&self, age_ms: f64, tau_ms: f64) -> f64 {
        let x0 = age_ms / self.bin_ms;
        let x1 = (age_ms + tau_ms) / self.bin_ms;
        let alive = self.total_all - Self::interp(&self.cum_all, x0);
        if alive <= 1e-9 * self.total_all.max(1e-300) {
            return 0.0;
        }
        ((Self::interp(&self.cum_ans, x1) - Self::interp(&self.cum_ans, x0)) / alive)
            .clamp(0.0, 1.0)
    }
}

/// Lazily computed per-horizon rows, invalidated by bumping a generation.
#[derive(Debug, Clone)]
struct RowCache {
    rows: Vec<(u32, [(f64, f64); K])>,
}

impl RowCache {
    fn new(len: usize) -> Self {
        RowCache {
            rows: vec![(0, [(0.0, 0.0); K]); len],
        }
    }

    fn row(&mut self, i: usize, generation: u32, p: impl Fn(usize) -> f64) -> &[(f64, f64); K] {
        let i = i.min(self.rows.len() - 1);
        let slot = &mut self.rows[i];
        if slot.0 != generation {
            for k in 0..K {
                let x = p(k);
                slot.1[k] = (x, x * (1.0 - x));
            }
            slot.0 = generation;
        }
        &slot.1
    }
}

/// The adaptive pacer described in the module docs.
#[derive(Debug, Clone)]
pub struct Predictive {
    cfg: PredictiveConfig,
    floor: Floor,
    answers: AnswerStats,
    talk: Hist,
    machine: Hist,
    wrap: Hist,
    /// Decayed counts of connected answers by kind (person, machine).
    kind_live: f64,
    kind_all: f64,
    kind_decay: f64,
    /// Agents whose wrap-up follows a person (so its length is a sample).
    wrapping_live: std::collections::BTreeSet<AgentId>,
    last_rebuild: Option<Time>,
    /// Wrap-up CDF averaged over [0, τ + grace], per horizon.
    wrap_avg: [f64; K],
    /// Per-horizon (p, p(1−p)) rows by whole elapsed second (agents) or
    /// half-second of age (calls), valid while their generation is current.
    /// Elapsed times are quantised so that a decision costs a few additions
    /// per agent and call rather than a dozen CDF look-ups.
    in_call_rows: RowCache,
    wrap_rows: RowCache,
    ring_rows: RowCache,
    generation: u32,
    /// When the last decision was computed, and whether something happened
    /// since that may call for more calls before the next 250 ms tick.
    last_decision: Option<Time>,
    triggered: bool,
    // Own record for the feedback term.
    started: Option<Time>,
    /// Ring age of answered calls, until we learn whether each was a person:
    /// waiting calls by id, bridged calls by agent.
    answer_age_waiting: std::collections::BTreeMap<super::CallId, Duration>,
    answer_age_bridged: std::collections::BTreeMap<AgentId, Duration>,
    /// Answer ages of connected people and machines (for the drop estimate).
    live_ages: Hist,
    machine_ages: Hist,
    /// Estimated people among the drops: each drop weighs the posterior
    /// probability that a call answered at its ring age was a person.
    drops_live: f64,
    drops: u64,
    live_connects: u64,
    budget: f64,
    /// Per-minute (minute index, live answers, estimated live abandons,
    /// agents were logged in) over the last `window_h`, oldest first.
    minutes: std::collections::VecDeque<Minute>,
}

#[derive(Debug, Clone, Copy)]
struct Minute {
    index: u64,
    live: f64,
    drops: f64,
    active: bool,
}

impl Predictive {
    pub fn new(cfg: PredictiveConfig) -> Self {
        let ha = cfg.memory_agent;
        Predictive {
            answers: AnswerStats::new(cfg.memory_calls),
            talk: Hist::new(1000, 3600, ha),
            machine: Hist::new(1000, 300, ha),
            wrap: Hist::new(1000, 600, ha),
            kind_live: 0.0,
            kind_all: 0.0,
            kind_decay: 2f64.powf(-1.0 / ha.max(1.0)),
            wrapping_live: Default::default(),
            last_rebuild: None,
            wrap_avg: [0.0; K],
            in_call_rows: RowCache::new(60 + 3600 / 5),
            wrap_rows: RowCache::new(601),
            ring_rows: RowCache::new(121),
            generation: 1,
            last_decision: None,
            triggered: true,
            started: None,
            answer_age_waiting: Default::default(),
            answer_age_bridged: Default::default(),
            live_ages: Hist::new(500, 120, cfg.memory_calls),
            machine_ages: Hist::new(500, 120, cfg.memory_calls),
            drops_live: 0.0,
            drops: 0,
            live_connects: 0,
            budget: cfg.budget_start * cfg.target,
            minutes: Default::default(),
            floor: Floor::default(),
            cfg,
        }
    }

    /// The marginal abandon budget used at the last decision (for tests and
    /// diagnostics).
    pub fn budget(&self) -> f64 {
        self.budget
    }

    /// The pacer's own estimate of its abandon rate so far, in the form it
    /// is steering (TSR, plus the AMD false-positive estimate if set).
    pub fn estimated_abandon_rate(&self) -> f64 {
        let (ab, live) = self.estimated_counts();
        if live > 0.0 {
            ab / live + self.cfg.amd_false_positive_rate
        } else {
            0.0
        }
    }

    fn estimated_counts(&self) -> (f64, f64) {
        let ab = self.drops_live;
        (ab, self.live_connects as f64 + ab)
    }

    /// P(person | answered after ringing `age`), from the answer ages of
    /// connected calls whose nature the agent reported.
    fn live_posterior(&self, age: Duration) -> f64 {
        let ql = self.live_share();
        let x = age.as_millis() as f64;
        let density = |h: &Hist| {
            if h.n == 0 {
                0.0
            } else {
                h.cdf(x + 1000.0) - h.cdf((x - 1000.0).max(0.0))
            }
        };
        let (fl, fm) = (density(&self.live_ages), density(&self.machine_ages));
        let (wl, wm) = (ql * fl, (1.0 - ql) * fm);
        if wl + wm > 1e-12 { wl / (wl + wm) } else { ql }
    }

    fn live_share(&self) -> f64 {
        (self.kind_live + 1.0) / (self.kind_all + 2.0)
    }

    fn cold(&self) -> bool {
        let m = u64::from(self.cfg.min_samples);
        self.talk.n < m || self.wrap.n < m || self.answers.n_ans < m
    }

    fn rebuild(&mut self, now: Time) {
        if self
            .last_rebuild
            .is_some_and(|t| now.since(t).as_millis() < u128::from(REBUILD_MS))
        {
            return;
        }
        self.last_rebuild = Some(now);
        self.generation = self.generation.wrapping_add(1);
        self.answers.rebuild();
        self.talk.rebuild();
        self.machine.rebuild();
        self.wrap.rebuild();
        let g = self.cfg.grace_s * 1000.0;
        for (k, tau) in TAUS.iter().enumerate() {
            let h = tau * 1000.0 + g;
            let steps = 16;
            let sum: f64 = (0..steps)
                .map(|j| self.wrap.cdf(h * (j as f64 + 0.5) / steps as f64))
                .sum();
            self.wrap_avg[k] = sum / steps as f64;
        }
    }

    /// The bucket of the minute holding `now`, dropping those that left the
    /// window.
    fn minute(&mut self, now: Time) -> &mut Minute {
        let index = now.as_millis() / 60_000;
        let keep = (self.cfg.window_h.max(1.0 / 60.0) * 60.0).ceil() as u64;
        while self
            .minutes
            .front()
            .is_some_and(|m| m.index + keep <= index)
        {
            self.minutes.pop_front();
        }
        if self.minutes.back().is_none_or(|m| m.index != index) {
            self.minutes.push_back(Minute {
                index,
                live: 0.0,
                drops: 0.0,
                active: false,
            });
        }
        let len = self.minutes.len();
        &mut self.minutes[len - 1]
    }

    /// Live answers and estimated live abandons in the rolling window.
    pub fn window_counts(&self) -> (f64, f64) {
        self.minutes
            .iter()
            .fold((0.0, 0.0), |(l, d), m| (l + m.live + m.drops, d + m.drops))
    }

    /// Steer β on the rolling window: slack (abandons still allowed in the
    /// window at the aim) raises it, overspend lowers it, each worked off
    /// over `feedback_horizon_s` of live answers at the recent rate.
    fn update_budget(&mut self, now: Time) {
        let target = self.cfg.target;
        self.minute(now).active = true;
        let (live, ab) = self.window_counts();
        let limit = self.cfg.window_limit.max(target);
        let noise = self.cfg.window_z * (limit / live.max(1.0)).sqrt();
        let aim = (self.cfg.aim * target).min(limit - noise).max(0.3 * target);
        let allowed = (aim - self.cfg.amd_false_positive_rate).max(0.0);
        let slack = allowed * live - ab;
        let active_s = 60.0 * self.minutes.iter().filter(|m| m.active).count() as f64;
        let rate = live / active_s.max(60.0);
        let scale = (allowed * rate * self.cfg.feedback_horizon_s).max(2.0);
        let b = self.cfg.budget_start * target * (slack / scale).clamp(-30.0, 30.0).exp();
        self.budget = b.clamp(0.05 * target, 0.4);
    }

    fn decide(&mut self, now: Time) -> u32 {
        let floor = &self.floor;
        let free_now = floor
            .ready()
            .saturating_sub(floor.ringing() + floor.waiting());
        if self.cold() {
            return free_now;
        }
        let staying = floor.staying();
        let cap = (self.cfg.max_lines_per_agent * f64::from(staying)).floor() as u32;
        let room = cap.saturating_sub(floor.ringing());
        if room == 0 || staying == 0 {
            return 0;
        }
        let g = self.cfg.grace_s * 1000.0;
        let ql = self.live_share();
        let q_slow = self.answers.slow();
        let boost = if q_slow > 0.0 {
            // The fast estimate is an EWMA over ~100 dials: its standard
            // error is about sqrt(q(1 − q)/199).
            let se = (q_slow * (1.0 - q_slow) / 199.0).sqrt();
            ((self.answers.fast - self.cfg.fast_guard_sigmas * se) / q_slow).max(1.0)
        } else {
            1.0
        };

        // Supply: ready now, plus agents finishing by τ + grace.
        let mut mu = [0.0f64; K];
        let mut var = [0.0f64; K];
        let ready = f64::from(floor.ready());
        let gen_ = self.generation;
        for (_, v) in floor.agents() {
            if v.leaving || v.phase == AgentPhase::Ready {
                continue;
            }
            let sec = (now.since(v.since).as_millis() / 1000) as usize;
            let row = match v.phase {
                AgentPhase::Wrap => {
                    let wrap = &self.wrap;
                    let e = sec as f64 * 1000.0 + 500.0;
                    self.wrap_rows
                        .row(sec, gen_, |k| wrap.done_within(e, TAUS[k] * 1000.0 + g))
                }
                _ => {
                    // Talk hazards change slowly after the first minute:
                    // 5 s steps there are plenty.
                    let (i, e) = if sec < 60 {
                        (sec, sec as f64 * 1000.0 + 500.0)
                    } else {
                        let j = (sec - 60) / 5;
                        (60 + j, (60 + j * 5) as f64 * 1000.0 + 2500.0)
                    };
                    let (talk, machine, wrap_avg) = (&self.talk, &self.machine, &self.wrap_avg);
                    self.in_call_rows.row(i, gen_, |k| {
                        let h = TAUS[k] * 1000.0 + g;
                        let wl = ql * talk.survival(e);
                        let wm = (1.0 - ql) * machine.survival(e);
                        let pt = talk.done_within(e, h) * wrap_avg[k];
                        if wl + wm <= 1e-12 {
                            pt
                        } else {
                            (wl * pt + wm * machine.done_within(e, h)) / (wl + wm)
                        }
                    })
                }
            };
            for k in 0..K {
                mu[k] -= row[k].0;
                var[k] += row[k].1;
            }
        }
        // Demand: waiting now, plus ringing calls answering by τ.
        let waiting = f64::from(floor.waiting());
        for placed in floor.ringing_since() {
            let half = (now.since(placed).as_millis() / 500) as usize;
            let age = half as f64 * 500.0 + 250.0;
            let answers = &self.answers;
            let row = self.ring_rows.row(half, gen_, |k| {
                (answers.answer_within(age, TAUS[k] * 1000.0) * boost).min(1.0)
            });
            for k in 0..K {
                mu[k] += row[k].0;
                var[k] += row[k].1;
            }
        }
        let mut a0 = [0.0f64; K];
        for k in 0..K {
            mu[k] += waiting - ready;
            a0[k] = (self.answers.answer_within(0.0, TAUS[k] * 1000.0) * boost).min(1.0);
        }
        let q_new = a0[K - 1].max(1e-6);

        self.update_budget(now);
        let beta = self.budget;
        // P(the n-th new call is abandoned | it is answered): answered in
        // (τ_{j−1}, τ_j], it finds no agent if the answers ahead of it (other
        // calls, the n − 1 new ones before it) already take every agent free
        // by τ_j + grace.
        let abandon = |n: f64| -> f64 {
            let mut p = 0.0;
            let mut prev_a = 0.0;
            for k in 0..K {
                let da = a0[k] - prev_a;
                prev_a = a0[k];
                if da <= 0.0 {
                    continue;
                }
                let m = mu[k] + n * a0[k];
                let s2 = var[k] + n * a0[k] * (1.0 - a0[k]);
                p += da
                    * if s2 <= 1e-12 {
                        if m > -0.5 { 1.0 } else { 0.0 }
                    } else {
                        normal_cdf((m + 0.5) / s2.sqrt())
                    };
            }
            p / q_new
        };
        let w = self.cfg.batch_weight.clamp(0.0, 1.0);
        let mut placed = 0u32;
        let mut sum = 0.0;
        while placed < room {
            let p = abandon(f64::from(placed));
            sum += p;
            let mean = sum / f64::from(placed + 1);
            if (1.0 - w) * p + w * mean > beta {
                break;
            }
            placed += 1;
        }
        placed
    }
}

impl Pacer for Predictive {
    fn on_event(&mut self, now: Time, event: &Event) {
        if self.started.is_none() {
            self.started = Some(now);
        }
        match *event {
            Event::CallAnswered(c) | Event::CallFailed(c) => {
                if let Some(placed) = self.floor.ringing_placed_at(c) {
                    let answered = matches!(event, Event::CallAnswered(_));
                    self.answers.add(now.since(placed), answered);
                    if answered {
                        self.answer_age_waiting.insert(c, now.since(placed));
                    }
                }
            }
            Event::CallConnected { call, agent } => {
                if let Some(age) = self.answer_age_waiting.remove(&call) {
                    self.answer_age_bridged.insert(agent, age);
                }
            }
            Event::CallDropped(c) => {
                self.drops += 1;
                let age = self.answer_age_waiting.remove(&c);
                self.live_ages.rebuild();
                self.machine_ages.rebuild();
                let live = age.map_or(self.live_share(), |a| self.live_posterior(a));
                self.drops_live += live;
                self.minute(now).drops += live;
            }
            Event::CallEnded { agent, live, .. } => {
                if let Some(age) = self.answer_age_bridged.remove(&agent) {
                    if live {
                        self.live_ages.add(age)
                    } else {
                        self.machine_ages.add(age)
                    }
                }
                if let Some(v) = self.floor.agent(agent) {
                    let d = now.since(v.since);
                    if live {
                        self.talk.add(d)
                    } else {
                        self.machine.add(d)
                    }
                }
                self.kind_live = self.kind_live * self.kind_decay + if live { 1.0 } else { 0.0 };
                self.kind_all = self.kind_all * self.kind_decay + 1.0;
                if live {
                    self.live_connects += 1;
                    self.minute(now).live += 1.0;
                    self.wrapping_live.insert(agent);
                }
            }
            Event::AgentReady(agent) if self.wrapping_live.remove(&agent) => {
                if let Some(v) = self
                    .floor
                    .agent(agent)
                    .filter(|v| v.phase == AgentPhase::Wrap)
                {
                    self.wrap.add(now.since(v.since));
                }
            }
            _ => {}
        }
        // Events that free capacity warrant a decision before the next tick.
        if matches!(
            event,
            Event::AgentReady(_)
                | Event::AgentLoggedIn(_)
                | Event::CallFailed(_)
                | Event::CallDropped(_)
        ) {
            self.triggered = true;
        }
        self.floor.apply(now, event);
    }

    fn calls_to_place(&mut self, now: Time) -> u32 {
        let due = self
            .last_decision
            .is_none_or(|t| now.since(t).as_millis() >= 250);
        if !(due || self.triggered) {
            return 0;
        }
        self.last_decision = Some(now);
        self.triggered = false;
        self.rebuild(now);
        self.decide(now)
    }
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z * std::f64::consts::FRAC_1_SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit; relative
/// error below 1.2e-7, ample for a pacing decision).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_cdf_matches_known_values() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.96) - 0.975).abs() < 1e-4);
        assert!((normal_cdf(-1.96) - 0.025).abs() < 1e-4);
    }

    #[test]
    fn hist_residual_life() {
        let mut h = Hist::new(1000, 100, 1e9);
        for s in [10u64, 20, 30, 40] {
            h.add(Duration::from_secs(s));
        }
        h.rebuild();
        // Having lasted 35 s, only the 40 s sample remains: done within 10 s.
        assert!((h.done_within(35_500.0, 10_000.0) - 1.0).abs() < 1e-9);
        // From zero, half are done within 25 s.
        assert!((h.done_within(0.0, 25_000.0) - 0.5).abs() < 0.05);
    }
}
