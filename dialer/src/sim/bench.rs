//! The dialer benchmark: every (scenario, mode, agents, p_live) cell run over
//! a number of seeds, aggregated into serialisable [`Record`]s, and printed as
//! a table by [`write_table`].
//!
//! Seeds are read as consecutive days of one campaign with the shift at the
//! same hour each day. That gives the abandon figures an honest meaning:
//! `abandon_rate_30d` is the campaign's rate over all its days (TSR counts per
//! campaign when it runs under 30 days), and `abandon_worst_24h` is the worst
//! rate over any 24 hours of that campaign (Ofcom's window), which in this
//! layout always spans the end of one shift and the start of the next.
//! `abandon_worst_1h` is stricter than any regulation: the worst 60 minutes
//! inside any single shift.
//!
//! Runs are independent, so they are spread over threads with
//! `std::thread::scope`; results are collected by index, so the output does
//! not depend on scheduling.

use std::io::{self, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use super::{RunMetrics, Scenario, SimError, run_days};
use crate::pacing::{PacingMode, PredictiveConfig, VicidialConfig};

/// What to sweep. Empty lists mean "the default set".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchOptions {
    pub seeds: u32,
    pub agents: Vec<u32>,
    pub p_live: Vec<f64>,
    pub scenarios: Vec<String>,
    /// Only the modes whose label starts with one of these (`predictive`
    /// matches `predictive3%` and `predictive1%`); empty means all.
    #[serde(default)]
    pub modes: Vec<String>,
    /// Worker threads; 0 means the machine's available parallelism.
    pub threads: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            seeds: 10,
            agents: vec![10, 20, 50],
            p_live: vec![0.20, 0.35],
            scenarios: scenario_names().iter().map(|s| s.to_string()).collect(),
            modes: Vec::new(),
            threads: 0,
        }
    }
}

/// The benchmark's scenarios: the stationary floor and its drifts.
pub fn scenario_names() -> &'static [&'static str] {
    &[
        "stationary",
        "answer_rate_falls",
        "staffing",
        "talk_doubles",
        "outage",
        "amd",
    ]
}

/// The modes run in a scenario: all of them on the stationary floor; under
/// drift, the ones whose robustness is in question plus progressive as the
/// baseline.
fn modes_for(scenario: &Scenario) -> Vec<PacingMode> {
    let fp = scenario.amd.map_or(0.0, |a| a.false_positive);
    let predictive = |target: f64| {
        PacingMode::Predictive(PredictiveConfig {
            grace_s: scenario.grace_s,
            amd_false_positive_rate: fp,
            ..PredictiveConfig::with_target(target)
        })
    };
    let mut modes = Vec::new();
    if scenario.name == "stationary" {
        modes.push(PacingMode::Preview { preview_s: 10.0 });
    }
    modes.push(PacingMode::Progressive);
    if scenario.name == "stationary" {
        for ratio in [1.5, 2.0, 3.0] {
            modes.push(PacingMode::Power { ratio });
        }
    }
    modes.push(predictive(0.03));
    modes.push(predictive(0.01));
    modes.push(PacingMode::Vicidial(VicidialConfig::default()));
    modes
}

/// One row of the benchmark, averaged over seeds unless the name says
/// otherwise. Rates and occupancies are fractions (0–1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub scenario: String,
    pub mode: String,
    pub agents: u32,
    pub p_live: f64,
    pub seeds: u32,
    /// Talk time over logged-in time.
    pub talk_occupancy: f64,
    /// Talk, wrap-up and machine handling over logged-in time.
    pub busy_occupancy: f64,
    /// TSR form, pooled over all seeds (days) of the campaign.
    pub abandon_rate_30d: f64,
    /// UK form (adds AMD false positives), pooled over all seeds.
    pub abandon_rate_uk: f64,
    /// The worst single seed's TSR rate.
    pub abandon_max_seed: f64,
    /// Worst rolling 24 h, UK form, with seeds as consecutive days.
    pub abandon_worst_24h: f64,
    /// Worst rolling 60 minutes inside one shift, TSR form, over all seeds.
    pub abandon_worst_1h: f64,
    pub idle_s_per_connect: f64,
    pub connects_per_agent_hour: f64,
    pub dials_per_agent_hour: f64,
}

struct Cell {
    scenario: Scenario,
    mode: PacingMode,
}

/// The days of one cell, or why they could not be run.
type DaysResult = Result<Vec<RunMetrics>, SimError>;

/// Run the benchmark. Fails only if a scenario's parameters are invalid.
pub fn run_benchmark(opts: &BenchOptions) -> Result<Vec<Record>, SimError> {
    let mut cells = Vec::new();
    for name in &opts.scenarios {
        for &agents in &opts.agents {
            for &p in &opts.p_live {
                let scenario = Scenario::named(name, agents, p)
                    .ok_or_else(|| SimError(format!("unknown scenario {name:?}")))?;
                for mode in modes_for(&scenario) {
                    let label = mode.label();
                    if !opts.modes.is_empty()
                        && !opts.modes.iter().any(|m| label.starts_with(m.as_str()))
                    {
                        continue;
                    }
                    cells.push(Cell {
                        scenario: scenario.clone(),
                        mode,
                    });
                }
            }
        }
    }
    let seeds: Vec<u64> = (0..u64::from(opts.seeds.max(1))).collect();
    // One job per cell: its seeds are consecutive days of one campaign, run
    // with one pacer that keeps what it learned from day to day.
    let jobs = cells.len();
    let results: Mutex<Vec<Option<DaysResult>>> = Mutex::new(vec![None; jobs]);
    let next = AtomicUsize::new(0);
    let threads = match opts.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .min(jobs.max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let j = next.fetch_add(1, Ordering::Relaxed);
                    if j >= jobs {
                        break;
                    }
                    let cell = &cells[j];
                    let mut pacer = cell.mode.build();
                    let r = run_days(&cell.scenario, pacer.as_mut(), &seeds);
                    if let Ok(mut all) = results.lock() {
                        all[j] = Some(r);
                    }
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| SimError("a worker panicked".into()))?;
    let mut records = Vec::with_capacity(jobs);
    for (cell, r) in cells.iter().zip(results) {
        let runs = r.ok_or_else(|| SimError("a run did not finish".into()))??;
        records.push(aggregate(cell, &runs));
    }
    Ok(records)
}

/// One cell of the benchmark on the calling thread: `seeds` consecutive days
/// of `scenario` under one pacer built from `mode`.
pub fn run_cell(scenario: &Scenario, mode: &PacingMode, seeds: u32) -> Result<Record, SimError> {
    let seeds: Vec<u64> = (0..u64::from(seeds.max(1))).collect();
    let mut pacer = mode.build();
    let runs = run_days(scenario, pacer.as_mut(), &seeds)?;
    let cell = Cell {
        scenario: scenario.clone(),
        mode: mode.clone(),
    };
    Ok(aggregate(&cell, &runs))
}

fn aggregate(cell: &Cell, runs: &[RunMetrics]) -> Record {
    let n = runs.len().max(1) as f64;
    let mean = |f: &dyn Fn(&RunMetrics) -> f64| runs.iter().map(f).sum::<f64>() / n;
    let live: u64 = runs.iter().map(|r| r.live_answers).sum();
    let drops: u64 = runs.iter().map(|r| r.live_drops).sum();
    let fps: u64 = runs.iter().map(|r| r.amd_false_positives).sum();
    let pooled = |x: u64| {
        if live > 0 {
            x as f64 / live as f64
        } else {
            0.0
        }
    };
    Record {
        scenario: cell.scenario.name.clone(),
        mode: cell.mode.label(),
        agents: cell.scenario.agents,
        p_live: cell.scenario.p_live,
        seeds: runs.len() as u32,
        talk_occupancy: mean(&|r| r.talk_occupancy()),
        busy_occupancy: mean(&|r| r.busy_occupancy()),
        abandon_rate_30d: pooled(drops),
        abandon_rate_uk: pooled(drops + fps),
        abandon_max_seed: runs.iter().map(|r| r.abandon_rate()).fold(0.0, f64::max),
        abandon_worst_24h: worst_day(runs),
        abandon_worst_1h: runs.iter().map(|r| r.worst_window(60)).fold(0.0, f64::max),
        idle_s_per_connect: mean(&|r| r.idle_s_per_connect()),
        connects_per_agent_hour: mean(&|r| r.connects_per_agent_hour()),
        dials_per_agent_hour: mean(&|r| r.dials_per_agent_hour()),
    }
}

/// Worst UK-form rate over any 24 h when run `i` is day `i` of the campaign:
/// a window starting at minute `m` of shift `i` covers the rest of that shift
/// and the first `m` minutes of the next.
fn worst_day(runs: &[RunMetrics]) -> f64 {
    let rate = |live: u64, ab: u64| {
        if live > 0 {
            ab as f64 / live as f64
        } else {
            0.0
        }
    };
    // Prefix sums of (live answers, UK abandons) per minute.
    let prefix: Vec<Vec<(u64, u64)>> = runs
        .iter()
        .map(|r| {
            let mut acc = (0u64, 0u64);
            let mut v = vec![acc];
            for m in &r.minutes {
                acc.0 += u64::from(m[0]);
                acc.1 += u64::from(m[1]) + u64::from(m[2]);
                v.push(acc);
            }
            v
        })
        .collect();
    let mut worst = 0.0f64;
    for (i, day) in prefix.iter().enumerate() {
        let len = day.len() - 1;
        worst = worst.max(rate(day[len].0, day[len].1));
        if let Some(next) = prefix.get(i + 1) {
            for m in 1..len.min(next.len() - 1) {
                let l = day[len].0 - day[m].0 + next[m].0;
                let a = day[len].1 - day[m].1 + next[m].1;
                worst = worst.max(rate(l, a));
            }
        }
    }
    worst
}

/// Write the records as pretty-printed JSON.
pub fn write_json(path: &std::path::Path, records: &[Record]) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(records).map_err(io::Error::other)?;
    std::fs::write(path, json)
}

/// Print the table to standard output.
pub fn print_table(records: &[Record]) {
    let mut out = io::stdout().lock();
    // A closed pipe (`| head`) is not worth a panic.
    let _ = write_table(&mut out, records);
}

/// Write the records as a Markdown table, one row per cell.
pub fn write_table(w: &mut dyn Write, records: &[Record]) -> io::Result<()> {
    writeln!(
        w,
        "| scenario | mode | N | p | talk occ | busy occ | abandon TSR (campaign) | abandon UK (campaign) | worst seed | worst 24h (UK) | worst 1h | idle s/connect | connects/agent-h | dials/agent-h |"
    )?;
    writeln!(
        w,
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    )?;
    for r in records {
        writeln!(
            w,
            "| {} | {} | {} | {:.2} | {:.1}% | {:.1}% | {:.2}% | {:.2}% | {:.2}% | {:.2}% | {:.2}% | {:.0} | {:.1} | {:.0} |",
            r.scenario,
            r.mode,
            r.agents,
            r.p_live,
            r.talk_occupancy * 100.0,
            r.busy_occupancy * 100.0,
            r.abandon_rate_30d * 100.0,
            r.abandon_rate_uk * 100.0,
            r.abandon_max_seed * 100.0,
            r.abandon_worst_24h * 100.0,
            r.abandon_worst_1h * 100.0,
            r.idle_s_per_connect,
            r.connects_per_agent_hour,
            r.dials_per_agent_hour,
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(minutes: Vec<[u32; 3]>) -> RunMetrics {
        RunMetrics {
            minutes,
            ..RunMetrics::default()
        }
    }

    #[test]
    fn worst_day_spans_the_end_of_one_shift_and_the_start_of_the_next() {
        // Day 0 is clean until its last minute; day 1 opens badly. Each day
        // alone is at 5 %, but the 24 h from day 0's last minute to day 1's
        // first minute holds 20 abandons in 200 answers.
        let d0 = day(vec![[100, 0, 0], [100, 10, 0]]);
        let d1 = day(vec![[100, 10, 0], [100, 0, 0]]);
        let worst = worst_day(&[d0.clone(), d1.clone()]);
        assert!((worst - 0.10).abs() < 1e-12, "{worst}");
        // AMD false positives count in this (UK) form.
        let d2 = day(vec![[100, 0, 3], [100, 0, 0]]);
        assert!((worst_day(&[d2]) - 0.015).abs() < 1e-12);
        // The worst hour inside a shift is plain TSR.
        assert!((d0.worst_window(1) - 0.10).abs() < 1e-12);
    }
}
