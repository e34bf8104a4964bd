//! `loadtest`: one subcommand per benchmark. Each prints a table of
//! hdrhistogram percentiles with the baselines measured in the same run and
//! the ratios to them, and with `--json FILE` writes the same figures as
//! JSON. See `docs/benchmarks.md` for the commands and the results.

mod amd;
mod bench;
mod bounces;
mod sipbench;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "loadtest", about = "Benchmarks for centralino; load is bounded in count and time, servers bind 127.0.0.1 only.")]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    cmd: Cmd,
}

/// Options every benchmark takes.
#[derive(clap::Args, Debug)]
pub struct Common {
    /// Also write the figures as JSON to this file.
    #[arg(long, global = true)]
    pub json: Option<PathBuf>,
    /// Seed of the generated data (same seed, same data).
    #[arg(long, global = true, default_value_t = 42)]
    pub seed: u64,
    /// Where SQLite databases and scratch files go.
    #[arg(long, global = true, default_value = "target/loadtest")]
    pub data_dir: PathBuf,
    /// PostgreSQL server URL without a database (postgres://user@127.0.0.1:port);
    /// benchmark databases are created on it.
    #[arg(long, global = true, env = "CENTRALINO_TEST_PG")]
    pub pg_url: Option<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Bounce classification against a labelled corpus: recipient, reason and hard/soft agreement.
    Bounces(bounces::Args),
    /// Answering-machine detection on espeak-ng speech with noise: confusion matrix, false positives, decision time.
    Amd(amd::Args),
    /// "Who is calling?": Store::lookup_by_phone on N parties, beside a bare indexed lookup.
    Lookup(bench::lookup::Args),
    /// CSV import end to end (twice: the second run must create nothing), beside CSV, phone-parse and bulk-insert baselines.
    Import(bench::import::Args),
    /// The HTTP API in-process under C keep-alive connections, beside a bare axum handler and /healthz.
    Http(bench::http::Args),
    /// Campaign sending: mails rendered, DKIM-signed (Ed25519) and handed to the local Postfix per second; SMPP submits/s to the fake SMSC with a window of 10.
    Send(bench::send::Args),
    /// Tracking pixel and click redirect with wrk beside a bare axum handler, and a kill -9 under load (no answered hit lost).
    Tracking(bench::tracking::Args),
    /// Support desk inbound mail: parse-only mails/s and parse → store → ticket mails/s on a synthetic ~50 KB corpus; optional corpus evaluation.
    MailIngest(bench::mail::Args),
    /// Support desk: time from an IMAP APPEND into Dovecot (gateway in IDLE) to the ticket existing.
    ImapLatency(bench::mail::ImapArgs),
    /// Dialer pacing in the discrete-event simulator: occupancy and abandon rates per scenario, mode, agents and answer rate.
    Dialer {
        /// Seeds per cell, read as consecutive days of one campaign.
        #[arg(long, default_value_t = 10)]
        seeds: u32,
        /// Only these agent counts (comma-separated; default 10,20,50).
        #[arg(long, value_delimiter = ',')]
        only_n: Vec<u32>,
        /// Only these live-answer probabilities (comma-separated; default 0.20,0.35).
        #[arg(long, value_delimiter = ',')]
        only_p: Vec<f64>,
        /// Only modes whose label starts with one of these (e.g. predictive,progressive).
        #[arg(long, value_delimiter = ',')]
        modes: Vec<String>,
        /// Only these scenarios (comma-separated; default all).
        #[arg(long, value_delimiter = ',')]
        scenarios: Vec<String>,
    },
    /// CTI screen-pop: INVITE sent → the caller's card on N agents' event sockets, beside a WebSocket ping round trip.
    ScreenPop(bench::screenpop::Args),
    /// Agents on WebRTC softphone legs (webrtc-crate clients) taking dialer calls from a sipp carrier: answer→bridge and audio gaps per agent count.
    WebrtcAgents(bench::webrtc_agents::Args),
    /// SIP calls per second through our inbound side with sipp, beside Kamailio (tm) answering in the same run.
    SipCps(sipbench::CpsArgs),
    /// Bridged calls through our RTP relay before loss or p99 > 5 ms, beside a bare recvmmsg relay, and memory per call.
    RtpRelay(sipbench::RelayArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Cmd::Amd(a) = &cli.cmd {
        return amd::run(a, cli.common.json.as_deref(), cli.common.seed);
    }
    if let Cmd::Bounces(a) = &cli.cmd {
        return bounces::run(a, cli.common.json.as_deref());
    }
    let report = match &cli.cmd {
        Cmd::Bounces(_) | Cmd::Amd(_) => return Ok(()),
        Cmd::Lookup(a) => runtime()?.block_on(bench::lookup::run(a, &cli.common))?,
        Cmd::Import(a) => runtime()?.block_on(bench::import::run(a, &cli.common))?,
        Cmd::Http(a) => bench::http::run(a, &cli.common)?,
        Cmd::ScreenPop(a) => runtime()?.block_on(bench::screenpop::run(a, &cli.common))?,
        Cmd::WebrtcAgents(a) => runtime()?.block_on(bench::webrtc_agents::run(a, &cli.common))?,
        Cmd::SipCps(a) => sipbench::run_cps(a, &cli.common.data_dir)?,
        Cmd::RtpRelay(a) => sipbench::run_relay(a)?,
        Cmd::Send(a) => runtime()?.block_on(bench::send::run(a, &cli.common))?,
        Cmd::Tracking(a) => runtime()?.block_on(bench::tracking::run(a, &cli.common))?,
        Cmd::MailIngest(a) => runtime()?.block_on(bench::mail::run(a, &cli.common))?,
        Cmd::ImapLatency(a) => runtime()?.block_on(bench::mail::imap_latency(a, &cli.common))?,
        Cmd::Dialer { seeds, only_n, only_p, modes, scenarios } => {
            let mut opts = dialer::sim::BenchOptions { seeds: *seeds, modes: modes.clone(), ..Default::default() };
            if !only_n.is_empty() {
                opts.agents = only_n.clone();
            }
            if !only_p.is_empty() {
                opts.p_live = only_p.clone();
            }
            if !scenarios.is_empty() {
                opts.scenarios = scenarios.clone();
            }
            let records = dialer::sim::run_benchmark(&opts)?;
            dialer::sim::print_table(&records);
            if let Some(path) = &cli.common.json {
                dialer::sim::write_json(path, &records).with_context(|| format!("writing {}", path.display()))?;
            }
            return Ok(());
        }
    };
    report.print();
    if let Some(path) = &cli.common.json {
        report.write_json(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// The runtime the server would use: multi-threaded, one worker per CPU.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("building the tokio runtime")
}
