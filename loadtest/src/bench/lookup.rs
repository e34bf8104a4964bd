//! `loadtest lookup`: "who is calling?" in-process. Times
//! `Store::lookup_by_phone` for random existing numbers (and some misses) on
//! a database of N generated parties, beside two baselines measured in the
//! same loop on the same database:
//!
//! - a bare indexed point lookup (`SELECT party_id FROM party_phones WHERE
//!   e164 = ?`) on a plain, native sqlx pool: what the database alone costs;
//! - `Store::ping` (`SELECT 1` through the store's pool): one round trip
//!   through the same driver stack, without the query.
//!
//! The three are interleaved operation by operation (rotating which goes
//! first), so drift on a shared machine hits all three alike. Each uses its
//! own random number, so none warms the pages for another.

use crate::Common;
use anyhow::Context;
use crm::{Backend, PhoneNumber};
use loadtest::data::PartyGen;
use loadtest::db::{self, Location};
use loadtest::progress;
use loadtest::report::{Latency, Report, Row, Unit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "sqlite")]
    backend: Backend,
    /// Parties in the database (created once, then reused).
    #[arg(long, default_value_t = 1_000_000)]
    parties: u64,
    /// Measured lookups (each of the baselines is measured as often).
    #[arg(long, default_value_t = 100_000)]
    lookups: u64,
    /// Share of lookups for numbers nobody has.
    #[arg(long, default_value_t = 0.1)]
    miss_ratio: f64,
    /// Unmeasured operations of each kind first.
    #[arg(long, default_value_t = 2_000)]
    warmup: u64,
}

/// The baseline: a plain sqlx pool of one connection, no `Any` driver, no
/// join, no row decoding beyond one integer.
enum Bare {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

const BARE_SQL: &str = "SELECT party_id FROM party_phones WHERE e164 = $1";

impl Bare {
    async fn open(loc: &Location) -> anyhow::Result<Bare> {
        Ok(match loc {
            Location::Sqlite { path } => {
                // The same cache size as the store's connections.
                let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true).pragma("cache_size", "-65536");
                Bare::Sqlite(sqlx::sqlite::SqlitePoolOptions::new().max_connections(1).connect_with(opts).await.context("baseline SQLite pool")?)
            }
            Location::Postgres { .. } => {
                Bare::Postgres(sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&loc.url()).await.context("baseline PostgreSQL pool")?)
            }
        })
    }

    async fn lookup(&self, e164: &str) -> anyhow::Result<usize> {
        Ok(match self {
            Bare::Sqlite(p) => sqlx::query(BARE_SQL).bind(e164).fetch_all(p).await?.len(),
            Bare::Postgres(p) => sqlx::query(BARE_SQL).bind(e164).fetch_all(p).await?.len(),
        })
    }

    async fn close(&self) {
        match self {
            Bare::Sqlite(p) => p.close().await,
            Bare::Postgres(p) => p.close().await,
        }
    }
}

const HIT: &str = "Store::lookup_by_phone, existing number";
const MISS: &str = "Store::lookup_by_phone, unknown number";
const ALL: &str = "Store::lookup_by_phone, all";
const BARE: &str = "baseline: bare indexed lookup (native sqlx)";
const PING: &str = "baseline: Store::ping (SELECT 1)";

pub async fn run(args: &Args, common: &Common) -> anyhow::Result<Report> {
    let generator = PartyGen::new(common.seed);
    generator.self_check(2_000).context("generator self-check")?;
    let name = format!("lookup-{}-s{}", args.parties, common.seed);
    let loc = Location::new(args.backend, &name, &common.data_dir, common.pg_url.as_deref())?;
    let pop = db::populated(loc, args.parties, &generator, 8).await?;
    let store = pop.store.clone();
    let bare = Bare::open(&pop.location).await?;

    let mut report = Report::new(
        "lookup",
        backend_name(args.backend),
        serde_json::json!({"parties": args.parties, "lookups": args.lookups, "miss_ratio": args.miss_ratio, "warmup": args.warmup, "seed": common.seed}),
    );
    report.fact("database", pop.location.describe());
    report.fact("database reused", pop.reused);
    if !pop.reused {
        report.fact("fill time (s)", round(pop.populate_s, 2));
        report.fact("fill rate (parties/s)", round(args.parties as f64 / pop.populate_s.max(1e-9), 0));
    }
    if let Location::Sqlite { path } = &pop.location {
        report.fact("SQLite file size (MB)", round(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6, 1));
    }
    report.fact("runtime", "tokio multi_thread (default workers), one lookup at a time");

    let mut rng = StdRng::seed_from_u64(common.seed ^ 0x5eed);
    let (mut hit, mut miss, mut bare_h, mut ping) = (Latency::new(), Latency::new(), Latency::new(), Latency::new());
    let (mut hit_t, mut miss_t, mut bare_t, mut ping_t) = (Duration::ZERO, Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let (mut wrong, mut bare_wrong) = (0u64, 0u64);
    let total = args.warmup + args.lookups;
    let bar = progress::bar(total, "lookups");
    for k in 0..total {
        let measured = k >= args.warmup;
        for slot in 0..3 {
            match (k + slot) % 3 {
                0 => {
                    let is_miss = rng.random_bool(args.miss_ratio);
                    let e164 = if is_miss { PartyGen::miss_number(&mut rng) } else { generator.main_number(rng.random_range(0..args.parties)) };
                    let n = PhoneNumber::from_e164(&e164).map_err(anyhow::Error::msg)?;
                    let t0 = Instant::now();
                    let cards = store.lookup_by_phone(&n).await.context("lookup_by_phone")?;
                    let d = t0.elapsed();
                    if measured {
                        if cards.is_empty() != is_miss {
                            wrong += 1;
                        }
                        if is_miss {
                            miss.record(d);
                            miss_t += d;
                        } else {
                            hit.record(d);
                            hit_t += d;
                        }
                    }
                }
                1 => {
                    let is_miss = rng.random_bool(args.miss_ratio);
                    let e164 = if is_miss { PartyGen::miss_number(&mut rng) } else { generator.main_number(rng.random_range(0..args.parties)) };
                    let t0 = Instant::now();
                    let found = bare.lookup(&e164).await.context("baseline lookup")?;
                    let d = t0.elapsed();
                    if measured {
                        if (found == 0) != is_miss {
                            bare_wrong += 1;
                        }
                        bare_h.record(d);
                        bare_t += d;
                    }
                }
                _ => {
                    let t0 = Instant::now();
                    store.ping().await.context("ping")?;
                    let d = t0.elapsed();
                    if measured {
                        ping.record(d);
                        ping_t += d;
                    }
                }
            }
        }
        if k.is_multiple_of(1000) {
            bar.set_position(k);
        }
    }
    bar.finish_and_clear();
    bare.close().await;
    store.close().await;

    let mut all = hit.clone();
    all.merge(&miss);
    report.row(Row::new(HIT, &hit, hit_t, 0, Unit::Micros));
    report.row(Row::new(MISS, &miss, miss_t, 0, Unit::Micros));
    report.row(Row::new(ALL, &all, hit_t + miss_t, wrong, Unit::Micros));
    report.row(Row::new(BARE, &bare_h, bare_t, bare_wrong, Unit::Micros));
    report.row(Row::new(PING, &ping, ping_t, 0, Unit::Micros));
    report.ratio(ALL, BARE);
    report.ratio(ALL, PING);
    report.ratio(BARE, PING);
    report.fact("rate/s", "sequential: lookups per second of time spent in that operation (1 / mean)");
    report.fact("errors", "a hit that found nobody or a miss that found someone");
    if args.backend == Backend::Sqlite
        && let Some(p99) = report.rows.iter().find(|r| r.name == ALL).map(|r| r.p99)
    {
        report.check("lookup_by_phone p99 on SQLite", "≤ 250 µs", format!("{p99:.1} µs"), p99 <= 250.0);
    }
    Ok(report)
}

pub fn backend_name(b: Backend) -> &'static str {
    match b {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

pub fn round(v: f64, places: i32) -> f64 {
    let k = 10f64.powi(places);
    (v * k).round() / k
}
