//! Load generators and benchmarks for centralino. The `loadtest` binary
//! (`src/main.rs`) has one subcommand per benchmark (`src/bench/`); this
//! library holds what they share:
//!
//! - [`report`]: hdrhistogram latencies, the human table, `--json FILE`;
//! - [`progress`]: indicatif bars on stderr;
//! - [`data`]: deterministic, realistic parties and CSV files;
//! - [`db`]: benchmark databases, filled through `crm`'s bulk insert and
//!   reused when already complete.
//!
//! Every benchmark measures a baseline in the same run and reports ratios to
//! it, because on a small shared machine absolute figures drift by 10–20 %
//! between runs while ratios taken minutes apart hold much better.
//!
//! Architecture invariant: load is bounded in count and time, and every
//! server this crate starts binds 127.0.0.1 only. Apart from the baselines
//! (plain sqlx pools measuring what the database alone costs), the database
//! is reached only through [`crm::Store`].

pub mod data;
pub mod db;
pub mod progress;
pub mod report;
