//! Latency histograms and the two forms every benchmark reports in: a human
//! table on stdout and, with `--json FILE`, the same figures as JSON.
//!
//! A benchmark fills [`Latency`] histograms (nanosecond resolution, three
//! significant figures), turns each into a [`Row`], and puts its rows, its
//! ratios to the baselines measured in the same run, and a few facts into a
//! [`Report`]. The table and the JSON are both rendered from that one value,
//! so they cannot disagree.

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// A latency histogram in nanoseconds, from 1 ns to one hour.
#[derive(Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

impl Latency {
    pub fn new() -> Latency {
        // 1 ns .. 1 h at 3 significant figures: fixed bounds, so recording
        // never allocates and never fails.
        let hist = Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("constant histogram bounds are valid");
        Latency { hist }
    }

    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(ns);
    }

    pub fn merge(&mut self, other: &Latency) {
        // Same bounds on both sides, so `add` cannot fail; if it ever did the
        // figures would be short, not wrong, and we would rather keep going.
        let _ = self.hist.add(&other.hist);
    }

    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }
}

/// The unit a row's latency figures are expressed in.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub enum Unit {
    #[serde(rename = "us")]
    Micros,
    #[serde(rename = "ms")]
    Millis,
}

impl Unit {
    fn per_ns(self) -> f64 {
        match self {
            Unit::Micros => 1e3,
            Unit::Millis => 1e6,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Unit::Micros => "µs",
            Unit::Millis => "ms",
        }
    }
}

/// One measured operation: how many, how fast, and its latency percentiles.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub count: u64,
    pub errors: u64,
    pub elapsed_s: f64,
    /// Operations per second over `elapsed_s`, unless [`Row::with_rate`]
    /// set a rate of something else (rows, numbers).
    pub rate_per_s: f64,
    /// What `rate_per_s` counts per second ("op" unless told).
    pub rate_of: String,
    pub unit: Unit,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl Row {
    pub fn new(name: impl Into<String>, lat: &Latency, elapsed: Duration, errors: u64, unit: Unit) -> Row {
        let h = &lat.hist;
        let k = unit.per_ns();
        let q = |p: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(p) as f64 / k };
        let secs = elapsed.as_secs_f64();
        Row {
            name: name.into(),
            count: h.len(),
            errors,
            elapsed_s: secs,
            rate_per_s: if secs > 0.0 { h.len() as f64 / secs } else { 0.0 },
            rate_of: "op".into(),
            unit,
            mean: if h.is_empty() { 0.0 } else { h.mean() / k },
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p99_9: q(0.999),
            max: if h.is_empty() { 0.0 } else { h.max() as f64 / k },
        }
    }

    /// Reports a rate of `of` (e.g. "rows") instead of operations.
    pub fn with_rate(mut self, per_s: f64, of: &str) -> Row {
        self.rate_per_s = per_s;
        self.rate_of = of.into();
        self
    }
}

/// How a measured row compares with a baseline row of the same run.
/// Latency ratios are `row / baseline` (how many times slower); the rate
/// ratio is `row / baseline` too (below 1 means fewer operations per second).
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    pub row: String,
    pub baseline: String,
    /// Absent when the two rows time different units of work.
    pub p50: Option<f64>,
    pub p99: Option<f64>,
    pub rate: f64,
}

/// A pass/fail check against a target the issue set.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub what: String,
    pub target: String,
    pub measured: String,
    pub pass: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub kernel: String,
    pub note: &'static str,
    /// `/proc/loadavg` when the report was started: other work on the box.
    pub loadavg_at_start: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let cpu_model = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split_once(':')).map(|(_, v)| v.trim().to_string()))
            .unwrap_or_else(|| "unknown".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_else(|_| "unknown".into());
        Machine {
            cpus,
            cpu_model,
            kernel,
            note: "load generator and system under test share these CPUs; figures are all-in-one-box figures",
            loadavg_at_start: loadavg(),
        }
    }
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub benchmark: String,
    pub backend: String,
    /// The command line, as run.
    pub command: String,
    pub started_at_unix_ms: u64,
    pub machine: Machine,
    pub params: serde_json::Value,
    pub rows: Vec<Row>,
    pub ratios: Vec<Ratio>,
    pub checks: Vec<Check>,
    /// Other figures worth keeping (set-up time, counts), in order.
    pub facts: Vec<(String, serde_json::Value)>,
}

impl Report {
    pub fn new(benchmark: &str, backend: &str, params: serde_json::Value) -> Report {
        let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Report {
            benchmark: benchmark.into(),
            backend: backend.into(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            started_at_unix_ms: started,
            machine: Machine::probe(),
            params,
            rows: Vec::new(),
            ratios: Vec::new(),
            checks: Vec::new(),
            facts: Vec::new(),
        }
    }

    pub fn fact(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        self.facts.push((key.to_string(), value.into()));
    }

    pub fn row(&mut self, row: Row) {
        self.rows.push(row);
    }

    /// Adds the ratio of row `name` to row `baseline` (both already added).
    pub fn ratio(&mut self, name: &str, baseline: &str) {
        let find = |n: &str| self.rows.iter().find(|r| r.name == n);
        if let (Some(r), Some(b)) = (find(name), find(baseline)) {
            // Compare in one unit whatever the rows are displayed in.
            let ns = |row: &Row, v: f64| v * row.unit.per_ns();
            let div = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
            let ratio = Ratio {
                row: name.into(),
                baseline: baseline.into(),
                p50: Some(div(ns(r, r.p50), ns(b, b.p50))),
                p99: Some(div(ns(r, r.p99), ns(b, b.p99))),
                rate: div(r.rate_per_s, b.rate_per_s),
            };
            self.ratios.push(ratio);
        }
    }

    /// Adds a ratio computed by the benchmark itself.
    pub fn ratio_of(&mut self, row: &str, baseline: &str, p50: Option<f64>, p99: Option<f64>, rate: f64) {
        self.ratios.push(Ratio { row: row.into(), baseline: baseline.into(), p50, p99, rate });
    }

    pub fn check(&mut self, what: &str, target: &str, measured: String, pass: bool) {
        self.checks.push(Check { what: what.into(), target: target.into(), measured, pass });
    }

    /// The human table.
    pub fn print(&self) {
        println!();
        println!("== {} ({}) ==", self.benchmark, self.backend);
        println!("machine: {} CPUs ({}), kernel {}; {}", self.machine.cpus, self.machine.cpu_model, self.machine.kernel, self.machine.note);
        println!("load average at start: {}, at end: {}", self.machine.loadavg_at_start, loadavg());
        let w = self.rows.iter().map(|r| r.name.chars().count()).max().unwrap_or(4).max(4);
        println!(
            "{:<w$}  {:>9}  {:>6}  {:>10}  {:>4}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
            "what", "count", "errors", "rate/s", "unit", "mean", "p50", "p90", "p99", "p99.9", "max"
        );
        let mut rate_notes = Vec::new();
        for r in &self.rows {
            println!(
                "{:<w$}  {:>9}  {:>6}  {:>10.0}  {:>4}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}  {:>9}",
                r.name,
                r.count,
                r.errors,
                r.rate_per_s,
                r.unit.label(),
                fmt(r.mean),
                fmt(r.p50),
                fmt(r.p90),
                fmt(r.p99),
                fmt(r.p99_9),
                fmt(r.max)
            );
            if r.rate_of != "op" {
                rate_notes.push(format!("{}: rate/s counts {}", r.name, r.rate_of));
            }
        }
        for n in rate_notes {
            println!("  ({n})");
        }
        if !self.ratios.is_empty() {
            println!("ratios (row / baseline; latency: times slower, rate: fraction of baseline throughput):");
            for r in &self.ratios {
                match (r.p50, r.p99) {
                    (Some(p50), Some(p99)) => println!("  {} / {}: p50 ×{p50:.2}, p99 ×{p99:.2}, rate ×{:.3}", r.row, r.baseline, r.rate),
                    _ => println!("  {} / {}: rate ×{:.3}", r.row, r.baseline, r.rate),
                }
            }
        }
        for (k, v) in &self.facts {
            println!("{k}: {}", match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        for c in &self.checks {
            println!("check {}: target {}, measured {} → {}", c.what, c.target, c.measured, if c.pass { "PASS" } else { "FAIL" });
        }
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self).context("serialising the report")?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }
}

/// The 1, 5 and 15 minute load averages.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// Three significant figures, without scientific notation.
fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
