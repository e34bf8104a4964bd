//! `loadtest import`: CSV import end to end. Writes a realistic
//! `;`-separated file (Italian and US names, numbers written as people
//! write them, ~2 % bad rows, ~5 % duplicates of earlier rows written
//! differently), then times `crm::import::import_parties` on an empty
//! database, and a second time on the same file, which must create nothing.
//!
//! Baselines in the same run, to say where the time goes:
//! - reading and splitting the CSV alone (csv crate, no parsing);
//! - `PhoneNumber::parse` of every phone cell (libphonenumber metadata);
//! - `Store::insert_parties_bulk` of as many pre-validated generated
//!   parties into another empty database: the write path without parsing
//!   or de-duplication.

use crate::Common;
use crate::bench::lookup::{backend_name, round};
use anyhow::Context;
use crm::import::{ImportOptions, ImportReport};
use crm::{Actor, Backend, PhoneNumber, Region};
use loadtest::data::{self, PartyGen};
use loadtest::db::Location;
use loadtest::progress;
use loadtest::report::{Latency, Report, Row, Unit};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "sqlite")]
    backend: Backend,
    /// Data rows in the generated file.
    #[arg(long, default_value_t = 100_000)]
    rows: u64,
    /// Rows per write transaction (the import's own default is 5,000).
    #[arg(long)]
    chunk_rows: Option<usize>,
}

const RUN1: &str = "import_parties, 1st run (per chunk)";
const RUN2: &str = "import_parties, 2nd run, same file (per chunk)";
const CSV_ONLY: &str = "baseline: read + split CSV only (per 1,000 rows)";
const PHONE: &str = "baseline: PhoneNumber::parse (per number)";
const BULK: &str = "baseline: insert_parties_bulk (per 10k slice)";

pub async fn run(args: &Args, common: &Common) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&common.data_dir).with_context(|| format!("creating {}", common.data_dir.display()))?;
    let scratch = tempfile::Builder::new().prefix("import-").tempdir_in(&common.data_dir).context("scratch directory")?;
    let csv_path = scratch.path().join("parties.csv");
    let t0 = Instant::now();
    let stats = data::write_import_csv(&csv_path, args.rows, common.seed)?;
    let write_s = t0.elapsed().as_secs_f64();

    let mut report = Report::new(
        "import",
        backend_name(args.backend),
        serde_json::json!({"rows": args.rows, "seed": common.seed, "chunk_rows": args.chunk_rows}),
    );
    report.fact("file", format!("{} rows, {:.1} MB, {} bad rows, {} duplicate rows (written in {:.2} s)", stats.rows, stats.bytes as f64 / 1e6, stats.bad, stats.duplicates, write_s));

    // Baseline 1: the CSV reader alone, timed per block of 1,000 rows (a
    // single row is too quick to time without timing the clock instead).
    let mut csv_lat = Latency::new();
    let mut csv_rows = 0u64;
    let mut phones: Vec<String> = Vec::new();
    let t0 = Instant::now();
    {
        let mut rdr = csv::ReaderBuilder::new().delimiter(b';').flexible(true).from_path(&csv_path).context("reading the CSV")?;
        let mut rec = csv::StringRecord::new();
        let mut block = Instant::now();
        while rdr.read_record(&mut rec).context("reading the CSV")? {
            csv_rows += 1;
            for i in [4, 5] {
                if let Some(v) = rec.get(i).filter(|v| !v.is_empty()) {
                    phones.push(v.to_string());
                }
            }
            if csv_rows.is_multiple_of(1_000) {
                csv_lat.record(block.elapsed());
                block = Instant::now();
            }
        }
    }
    let csv_s = t0.elapsed();
    report.row(Row::new(CSV_ONLY, &csv_lat, csv_s, 0, Unit::Micros).with_rate(csv_rows as f64 / csv_s.as_secs_f64(), "rows"));

    // Baseline 2: phone parsing, timed number by number.
    let region = Region::default();
    let mut ph_lat = Latency::new();
    let mut ph_bad = 0;
    // The first parse loads libphonenumber's metadata; keep that out.
    for p in phones.iter().take(200) {
        let _ = PhoneNumber::parse(p, region);
    }
    let t0 = Instant::now();
    for p in &phones {
        let s = Instant::now();
        let ok = PhoneNumber::parse(p, region).is_ok();
        ph_lat.record(s.elapsed());
        if !ok {
            ph_bad += 1;
        }
    }
    let ph_s = t0.elapsed();
    report.row(Row::new(PHONE, &ph_lat, ph_s, ph_bad, Unit::Micros).with_rate(phones.len() as f64 / ph_s.as_secs_f64(), "numbers"));

    // Baseline 3: the bulk insert of as many generated parties.
    let bulk_loc = location(args.backend, common, &format!("import-bulk-{}", std::process::id()))?;
    bulk_loc.drop_db().await?;
    let (bulk_lat, bulk_s) = {
        let store = bulk_loc.open(8).await?;
        let generator = PartyGen::new(common.seed);
        let mut lat = Latency::new();
        let mut spent = Duration::ZERO;
        let bar = progress::bar(args.rows, "bulk insert baseline");
        let mut start = 0;
        while start < args.rows {
            let end = (start + 10_000).min(args.rows);
            let slice: Vec<_> = (start..end).map(|i| generator.party(i)).collect::<anyhow::Result<_>>()?;
            let t = Instant::now();
            store.insert_parties_bulk(&Actor::system(), &slice).await.context("bulk insert baseline")?;
            let d = t.elapsed();
            lat.record(d);
            spent += d;
            bar.inc(slice.len() as u64);
            start = end;
        }
        bar.finish_and_clear();
        store.close().await;
        (lat, spent)
    };
    bulk_loc.drop_db().await?;
    report.row(Row::new(BULK, &bulk_lat, bulk_s, 0, Unit::Millis).with_rate(args.rows as f64 / bulk_s.as_secs_f64(), "parties"));

    // The import itself, twice on one empty database.
    let loc = location(args.backend, common, &format!("import-{}", std::process::id()))?;
    loc.drop_db().await?;
    let store = loc.open(8).await?;
    let options = ImportOptions { chunk_rows: args.chunk_rows, ..Default::default() };
    let mapping = data::csv_mapping();
    let mut runs: Vec<(ImportReport, f64)> = Vec::new();
    for (run, name) in [RUN1, RUN2].into_iter().enumerate() {
        let file = std::fs::File::open(&csv_path).with_context(|| format!("opening {}", csv_path.display()))?;
        let bar = progress::bar(args.rows, &format!("import run {}", run + 1));
        let mut chunks = Latency::new();
        let mut last = Instant::now();
        let mut last_rows = 0;
        let t0 = Instant::now();
        let rep = store
            .import_parties(&Actor::system(), file, &mapping, &options, |p| {
                // The final call repeats the last chunk's counts when the
                // file ends on a chunk boundary; it is not a chunk.
                if p.rows > last_rows {
                    chunks.record(last.elapsed());
                    last_rows = p.rows;
                }
                last = Instant::now();
                bar.set_position(p.rows);
            })
            .await
            .with_context(|| format!("import run {}", run + 1))?;
        let secs = t0.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let rate = rep.rows as f64 / secs;
        report.row(Row::new(name, &chunks, Duration::from_secs_f64(secs), rep.rejected.len() as u64, Unit::Millis).with_rate(rate, "rows"));
        report.fact(
            &format!("run {}", run + 1),
            format!(
                "{} rows in {:.2} s = {:.0} rows/s: {} created (+{} companies), {} updated, {} skipped, {} rejected",
                rep.rows,
                secs,
                rate,
                rep.inserted,
                rep.companies_created,
                rep.updated,
                rep.skipped,
                rep.rejected.len()
            ),
        );
        runs.push((rep, secs));
    }
    store.close().await;
    loc.drop_db().await?;

    let (r1, s1) = &runs[0];
    let (r2, _) = &runs[1];
    let rate1 = r1.rows as f64 / s1;
    let rate_of = |r: &Report, n: &str| r.rows.iter().find(|x| x.name == n).map(|x| x.rate_per_s).unwrap_or(f64::NAN);
    let (csv_rate, bulk_rate) = (rate_of(&report, CSV_ONLY), rate_of(&report, BULK));
    report.ratio_of(RUN1, CSV_ONLY, None, None, rate1 / csv_rate);
    report.ratio_of(RUN1, BULK, None, None, rate1 / bulk_rate);
    let phone_mean_s = report.rows.iter().find(|x| x.name == PHONE).map(|x| x.mean / 1e6).unwrap_or(0.0);
    report.fact(
        "PhoneNumber::parse share of run 1 (estimate)",
        format!("{} numbers × {:.1} µs = {:.2} s of {:.2} s ({:.0} %)", phones.len(), phone_mean_s * 1e6, phones.len() as f64 * phone_mean_s, s1, 100.0 * phones.len() as f64 * phone_mean_s / s1),
    );
    report.fact("errors column", "import: rejected rows; phone baseline: cells that do not parse (the bad rows' numbers)");
    report.fact("ratios", "rates only: the rows time different units of work (chunk, 1,000 rows, slice)");
    if args.backend == Backend::Sqlite {
        report.check("1st run throughput on SQLite", "≥ 50,000 rows/s", format!("{:.0} rows/s", round(rate1, 0)), rate1 >= 50_000.0);
    }
    report.check("2nd run creates nothing", "0 created", format!("{} created, {} skipped, {} updated", r2.inserted + r2.companies_created, r2.skipped, r2.updated), r2.inserted == 0 && r2.companies_created == 0);
    report.check("rejected rows", &format!("{} (generated bad rows)", stats.bad), r1.rejected.len().to_string(), r1.rejected.len() as u64 == stats.bad);
    drop(scratch);
    Ok(report)
}

fn location(backend: Backend, common: &Common, name: &str) -> anyhow::Result<Location> {
    Location::new(backend, name, &common.data_dir, common.pg_url.as_deref())
}
