//! An emulation of VICIdial's `ADAPT_HARD_LIMIT` dial method, kept only as
//! the reference peer for benchmarks (see `docs/dialer-simulation.md`).
//!
//! It follows our reading of `AST_VDauto_dial.pl` and `AST_VDadapt.pl`
//! (`calculate_dial_level`):
//! - every second, sample ready agents, answered calls waiting for an agent,
//!   and logged-in agents; keep the last 15 samples;
//! - every 15 s, `level × (1 + (avg ready − avg waiting + diff_target) /
//!   avg agents)` (adjusted by `intensity`), clamped to [1, max level];
//!   halved if more than half of the last minute's answers were dropped (with
//!   over 20 dials in that minute); forced to 1.0 while today's drop rate
//!   exceeds the limit (after 50 dials);
//! - every 2.5 s (the dial loop), place `round(level × (ready + in-call
//!   agents)) − (calls ringing + waiting + bridged)`. Agents in wrap-up are
//!   paused in VICIdial and count for neither side.
//!
//! Its drop rate is VICIdial's: drops over (agent-confirmed human answers +
//! drops), since the start of the day. Nothing here models ring, talk or
//! wrap-up times: that absence is the point of the comparison.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Event, Floor, Pacer, Time};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VicidialConfig {
    /// `adaptive_dropped_percentage`, as a fraction.
    pub drop_limit: f64,
    /// `adaptive_maximum_level`.
    pub max_level: f64,
    /// `adaptive_intensity` (−40…40 in VICIdial's UI).
    pub intensity: f64,
    /// `adaptive_dl_diff_target`.
    pub diff_target: f64,
    /// The dial loop period (`$loop_delay`).
    pub dial_loop_s: f64,
    /// Seconds between dial-level recalculations.
    pub level_update_s: f64,
    /// One-second samples averaged per recalculation.
    pub samples: usize,
}

impl Default for VicidialConfig {
    fn default() -> Self {
        VicidialConfig {
            drop_limit: 0.03,
            max_level: 3.0,
            intensity: 0.0,
            diff_target: 0.0,
            dial_loop_s: 2.5,
            level_update_s: 15.0,
            samples: 15,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Vicidial {
    cfg: VicidialConfig,
    floor: Floor,
    level: f64,
    samples: VecDeque<(f64, f64, f64)>,
    next_sample: Option<Time>,
    next_update: Option<Time>,
    next_loop: Option<Time>,
    dials_today: u64,
    drops_today: u64,
    human_today: u64,
    /// (time, event kind) for the last minute: 0 dial, 1 drop, 2 human answer.
    recent: VecDeque<(Time, u8)>,
}

impl Vicidial {
    pub fn new(cfg: VicidialConfig) -> Self {
        Vicidial {
            cfg,
            floor: Floor::default(),
            level: 1.0,
            samples: VecDeque::new(),
            next_sample: None,
            next_update: None,
            next_loop: None,
            dials_today: 0,
            drops_today: 0,
            human_today: 0,
            recent: VecDeque::new(),
        }
    }

    /// The current dial level.
    pub fn level(&self) -> f64 {
        self.level
    }

    fn update_level(&mut self, now: Time) {
        let n = self.samples.len().max(1) as f64;
        let (r, w, t) = self
            .samples
            .iter()
            .fold((0.0, 0.0, 0.0), |a, s| (a.0 + s.0, a.1 + s.1, a.2 + s.2));
        let (ready, waiting, agents) = (r / n, w / n, t / n);
        let mut level = self.level;
        if agents > 0.0 {
            let diff_pct = (ready - waiting + self.cfg.diff_target) / agents * 100.0;
            let i = self.cfg.intensity / 100.0;
            let adj = if diff_pct >= 0.0 {
                diff_pct * (i + 1.0)
            } else {
                diff_pct * (i - 1.0).abs()
            };
            level *= 1.0 + adj / 100.0;
        }
        level = level.clamp(1.0, self.cfg.max_level);

        let minute_ago = now.saturating_sub(Duration::from_secs(60));
        while self.recent.front().is_some_and(|(t, _)| *t < minute_ago) {
            self.recent.pop_front();
        }
        let count = |k: u8| self.recent.iter().filter(|(_, x)| *x == k).count() as f64;
        let (dials, drops, humans) = (count(0), count(1), count(2));
        if dials > 20.0 && drops + humans > 0.0 && drops / (drops + humans) > 0.5 {
            level = (level / 2.0).max(1.0);
        }
        let answered = self.drops_today + self.human_today;
        if self.dials_today > 50
            && answered > 0
            && self.drops_today as f64 / answered as f64 > self.cfg.drop_limit
        {
            level = 1.0;
        }
        self.level = level;
    }
}

impl Pacer for Vicidial {
    fn on_event(&mut self, now: Time, event: &Event) {
        match event {
            Event::CallPlaced(_) => {
                self.dials_today += 1;
                self.recent.push_back((now, 0));
            }
            Event::CallDropped(_) => {
                self.drops_today += 1;
                self.recent.push_back((now, 1));
            }
            Event::CallEnded { live: true, .. } => {
                self.human_today += 1;
                self.recent.push_back((now, 2));
            }
            _ => {}
        }
        self.floor.apply(now, event);
    }

    fn calls_to_place(&mut self, now: Time) -> u32 {
        let second = Duration::from_secs(1);
        let next = self.next_sample.get_or_insert(now);
        while *next <= now {
            *next = *next + second;
            let f = &self.floor;
            self.samples.push_back((
                f64::from(f.ready()),
                f64::from(f.waiting()),
                f64::from(f.logged_in()),
            ));
            if self.samples.len() > self.cfg.samples {
                self.samples.pop_front();
            }
        }
        let upd = Duration::from_secs_f64(self.cfg.level_update_s.max(0.1));
        let next_update = *self.next_update.get_or_insert(now + upd);
        if now >= next_update {
            self.next_update = Some(next_update + upd);
            self.update_level(now);
        }
        let next_loop = *self.next_loop.get_or_insert(now);
        if now < next_loop {
            return 0;
        }
        self.next_loop = Some(next_loop + Duration::from_secs_f64(self.cfg.dial_loop_s.max(0.05)));
        let f = &self.floor;
        let goal = (self.level * f64::from(f.ready() + f.in_call())).round() as u32;
        goal.saturating_sub(f.ringing() + f.waiting() + f.in_call())
    }
}
