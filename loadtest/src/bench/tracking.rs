//! `loadtest tracking`: the open pixel and the click redirect over real
//! HTTP, driven by `wrk -t2 -c64 --latency`, beside a bare axum handler
//! returning the same bytes in the same run; then a `kill -9` under load.
//!
//! The servers are child processes (this binary re-run with a hidden
//! `--serve`): the real one is the whole `centralino` application
//! (`web::Application`: router, middleware, metrics, the tracking endpoints
//! with their fsync'd write-ahead event log) over a SQLite store; the bare
//! one is axum with two handlers answering what the real ones answer (the
//! 43-byte GIF with the same headers; a 302 with the same `Location`) and
//! nothing else. Both get the same runtime (one worker per CPU).
//!
//! After each real run the server is stopped gracefully and the events in
//! the store are counted against wrk's completed requests (a request wrk
//! was still waiting for when its time ran out may be stored too, so the
//! store may hold up to one per connection more).
//!
//! **Kill -9 check**: the real server is started again, our own load
//! generator (C keep-alive hyper connections, alternating pixel and click)
//! counts every 200/302 it receives, the server is killed with SIGKILL
//! mid-load, restarted (which replays the write-ahead log), stopped, and
//! the store must hold every acknowledged hit: `acknowledged ≤ stored ≤
//! acknowledged + C` (the upper slack: hits written whose answer the kill
//! cut off). Lost events are `acknowledged − stored` when positive.

use crate::Common;
use anyhow::{Context, bail};
use crm::lists::{ListKind, NewList};
use crm::parties::{EmailInput, PartyInput};
use crm::{Actor, Channel, StoreOptions};
use loadtest::report::{Report, Row, Unit};
use mailgate::tracking::{Kind, Signer, Token};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Keep-alive connections (wrk -c, and the kill test's generator).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// wrk threads (-t).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Seconds of load before the kill -9.
    #[arg(long, default_value_t = 3)]
    kill_after: u64,
    /// Internal: run a server child (`bare` or a SQLite path) and write its port to `--port-file`.
    #[arg(long, hide = true)]
    serve: Option<String>,
    #[arg(long, hide = true)]
    port_file: Option<PathBuf>,
    /// Also measure the real server with the event log's fdatasync off
    /// (answered hits survive kill -9, not a power cut): splits the cost of
    /// the sync from the rest.
    #[arg(long)]
    no_fsync_too: bool,
    #[arg(long, hide = true)]
    no_fsync: bool,
}

const TARGET: &str = "https://shop.example/offerte";

pub async fn run(args: &Args, common: &Common) -> anyhow::Result<Report> {
    if let Some(what) = &args.serve {
        serve(what, args.port_file.as_deref().context("--port-file")?, args.no_fsync).await?;
        std::process::exit(0);
    }
    let mut report = Report::new("tracking", "sqlite", serde_json::json!({"duration_s": args.duration, "connections": args.connections, "wrk_threads": args.threads}));
    let dir = common.data_dir.join(format!("tracking-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("crm.db").to_string_lossy().to_string();
    let (msg, open, click) = prepare(&db).await?;

    let mut figures = vec![];
    let mut servers = vec![("bare axum", "bare".to_string(), false), ("centralino", db.clone(), false)];
    if args.no_fsync_too {
        servers.push(("centralino, no fdatasync", db.clone(), true));
    }
    for (who, serve_as, no_fsync) in servers {
        let start = |serve_as: String, dir: PathBuf| async move { Child::start_with(&serve_as, &dir, no_fsync).await };
        let mut child = start(serve_as.clone(), dir.clone()).await?;
        for (route, path) in [("pixel", format!("/t/o/{open}.gif")), ("click", format!("/t/c/{click}"))] {
            let before = if who != "bare axum" { Some(count(&db, msg).await?) } else { None };
            let w = wrk(args, child.port, &path).await.with_context(|| format!("wrk on {who} {route}"))?;
            if w.bad > 0 {
                bail!("{who} {route}: {} answers were not 2xx/3xx", w.bad);
            }
            let name = format!("{route}: {who}");
            report.row(w.row(&name));
            figures.push((route, who, w.rps, w.p99_us));
            if let Some(before) = before {
                // Stop, count, restart: every completed request is stored.
                child.stop().await?;
                let stored = count(&db, msg).await? - before;
                let slack = args.connections as u64;
                report.fact(&format!("{route}, {who}: stored / wrk's completed"), format!("{stored} / {}", w.requests));
                report.check(&format!("{route}, {who}: every answered hit stored"), "completed ≤ stored ≤ completed + C", format!("{stored} stored, {} completed", w.requests), stored >= w.requests && stored <= w.requests + slack);
                child = start(serve_as.clone(), dir.clone()).await?;
            }
        }
        child.stop().await?;
    }
    for route in ["pixel", "click"] {
        let f = |who: &str| figures.iter().find(|(r, w, _, _)| *r == route && *w == who).map(|(_, _, rps, p99)| (*rps, *p99)).unwrap_or((0.0, 0.0));
        let (bare, ours) = (f("bare axum"), f("centralino"));
        let rate = ours.0 / bare.0.max(1.0);
        let p99 = ours.1 / bare.1.max(1.0);
        report.ratio_of(&format!("{route}: centralino"), &format!("{route}: bare axum"), None, Some(p99), rate);
        report.check(&format!("{route} throughput"), "≥ 50 % of bare axum", format!("{:.0} vs {:.0} req/s ({:.0} %)", ours.0, bare.0, rate * 100.0), rate >= 0.5);
        report.check(&format!("{route} p99"), "≤ 2 × bare axum", format!("{:.2} ms vs {:.2} ms ({p99:.2}×)", ours.1 / 1e3, bare.1 / 1e3), p99 <= 2.0);
        let nosync = f("centralino, no fdatasync");
        if nosync.0 > 0.0 {
            report.ratio_of(&format!("{route}: centralino, no fdatasync"), &format!("{route}: bare axum"), None, Some(nosync.1 / bare.1.max(1.0)), nosync.0 / bare.0.max(1.0));
        }
    }

    // kill -9 under load.
    let before = count(&db, msg).await?;
    let mut child = Child::start(&db, &dir).await?;
    let paths = [format!("/t/o/{open}.gif"), format!("/t/c/{click}")];
    let (acked, killed_at) = load_then_kill(&mut child, &paths, args.connections, Duration::from_secs(args.kill_after)).await?;
    let child = Child::start(&db, &dir).await?; // replays the write-ahead log
    child.stop().await?;
    let stored = count(&db, msg).await? - before;
    let lost = acked.saturating_sub(stored);
    report.fact("kill -9: hits answered 200/302 before the kill", acked);
    report.fact("kill -9: events in the store after restart", stored);
    report.fact("kill -9: load before the kill (s)", format!("{killed_at:.2}"));
    report.check("kill -9 under load", "no answered hit lost", format!("{lost} lost ({acked} answered, {stored} stored)"), lost == 0 && stored <= acked + args.connections as u64);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(report)
}

/// A campaign with one sent mail; returns its message and an open and a
/// click token for it.
async fn prepare(db: &str) -> anyhow::Result<(i64, String, String)> {
    let store = crm::Store::open(StoreOptions::new(db.to_string())).await.context("opening the store")?;
    let input = PartyInput { kind: "person".into(), name: Some("Ada Neri".into()), emails: vec![EmailInput { address: "ada@example.com".into(), kind: None }], ..Default::default() };
    let p = store.create_party(&Actor::system(), input).await?.id;
    store.set_consent(&Actor::system(), p, Channel::Email, true, "loadtest").await?;
    let list = store.create_list(&Actor::system(), NewList { name: "t".into(), description: None, kind: ListKind::Static, filter: None, party_ids: vec![p] }).await?;
    let camp = store.create_campaign("tracking", "", 0, None, crm::now_ms()).await?;
    let msg = store.add_campaign_message(camp.id, Channel::Email, "s", &format!("x {TARGET}"), "", list.id, crm::now_ms()).await?;
    store.launch_message(msg, "gw.test", crm::now_ms()).await?;
    let row = store.claim_outbox(msg, 1, 60_000, crm::now_ms()).await?.pop().context("no outbox row")?;
    store.complete_outbox(row.outbox_id, crm::campaigns::Outcome::Sent, "250", crm::now_ms()).await?;
    let signer = Signer::new(&store.campaign_secret().await?);
    // Sent a day ago: a click now is not a link scanner's.
    let tok = |kind| signer.sign(&Token { outbox_id: row.outbox_id, message_id: msg, party_id: p.0, sent_at: crm::now_ms() - 86_400_000, kind });
    let out = (msg, tok(Kind::Open), tok(Kind::Click { index: 1, url: TARGET.into() }));
    store.close().await;
    Ok(out)
}

/// Opens and clicks stored for the message.
async fn count(db: &str, msg: i64) -> anyhow::Result<u64> {
    let store = crm::Store::open(StoreOptions::new(db.to_string())).await?;
    let m = store.message_monitor(msg).await?;
    store.close().await;
    Ok(m.events.iter().filter(|(k, _, _)| k == "opened" || k == "clicked").map(|(_, _, n)| *n as u64).sum())
}

/// A server child process.
struct Child {
    proc: tokio::process::Child,
    port: u16,
}

impl Child {
    async fn start(what: &str, dir: &Path) -> anyhow::Result<Child> {
        Child::start_with(what, dir, false).await
    }

    async fn start_with(what: &str, dir: &Path, no_fsync: bool) -> anyhow::Result<Child> {
        let port_file = dir.join(format!("port-{}", unique()));
        let exe = std::env::current_exe()?;
        let proc = tokio::process::Command::new(exe)
            .args(["tracking", "--serve", what, "--port-file"])
            .arg(&port_file)
            .args(if no_fsync { &["--no-fsync"][..] } else { &[][..] })
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting the server child")?;
        let t0 = Instant::now();
        loop {
            if let Ok(s) = std::fs::read_to_string(&port_file)
                && let Ok(port) = s.trim().parse()
            {
                let _ = std::fs::remove_file(&port_file);
                return Ok(Child { proc, port });
            }
            if t0.elapsed() > Duration::from_secs(60) {
                bail!("the server child did not start");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then wait: the server drains its event log into the store.
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.proc.id() {
            tokio::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().await.context("kill -TERM")?;
        }
        let st = tokio::time::timeout(Duration::from_secs(60), self.proc.wait()).await.context("the server did not stop")??;
        if !st.success() {
            bail!("the server exited with {st}");
        }
        Ok(())
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The child: the real application over `db`, or the bare handlers.
async fn serve(what: &str, port_file: &Path, no_fsync: bool) -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        term.recv().await;
    };
    if what == "bare" {
        use axum::http::{HeaderValue, StatusCode, header};
        use axum::response::{IntoResponse, Response};
        async fn pixel() -> Response {
            let mut r = (StatusCode::OK, mailgate::tracking::PIXEL_GIF).into_response();
            r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache, must-revalidate, private"));
            r
        }
        async fn click() -> Response {
            let mut r = StatusCode::FOUND.into_response();
            r.headers_mut().insert(header::LOCATION, HeaderValue::from_static(TARGET));
            r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        let router = axum::Router::new().route("/t/o/{file}", axum::routing::get(pixel)).route("/t/c/{token}", axum::routing::get(click));
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        std::fs::write(port_file, l.local_addr()?.port().to_string())?;
        axum::serve(l, router).with_graceful_shutdown(stop).await?;
        return Ok(());
    }
    let raw = web::RawConfig {
        http: Some("127.0.0.1:0".into()),
        sip: Some("off".into()),
        database_url: Some(what.to_string()),
        campaigns: Some(web::config::RawCampaigns { event_log_dir: Some(format!("{what}.tracking-wal")), event_log_fsync: Some(!no_fsync), ..Default::default() }),
        ..Default::default()
    };
    let settings = raw.resolve().context("settings")?;
    let app = web::Application::build(&settings).await?;
    std::fs::write(port_file, app.port().to_string())?;
    app.run_until_stopped(stop).await
}

/// What wrk reported.
struct Wrk {
    requests: u64,
    bad: u64,
    rps: f64,
    secs: f64,
    p50_us: f64,
    p90_us: f64,
    p99_us: f64,
    avg_us: f64,
    max_us: f64,
}

impl Wrk {
    fn row(&self, name: &str) -> Row {
        Row {
            name: name.into(),
            count: self.requests,
            errors: self.bad,
            elapsed_s: self.secs,
            rate_per_s: self.rps,
            rate_of: "requests".into(),
            unit: Unit::Micros,
            mean: self.avg_us,
            p50: self.p50_us,
            p90: self.p90_us,
            p99: self.p99_us,
            // wrk --latency prints 50/75/90/99 only.
            p99_9: self.max_us,
            max: self.max_us,
        }
    }
}

fn to_us(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mult) = if let Some(v) = s.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e6)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|v| v * mult)
}

/// Parses `wrk --latency` output.
fn parse_wrk(out: &str, secs: f64) -> anyhow::Result<Wrk> {
    let mut w = Wrk { requests: 0, bad: 0, rps: 0.0, secs, p50_us: 0.0, p90_us: 0.0, p99_us: 0.0, avg_us: 0.0, max_us: 0.0 };
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            ["Latency", avg, _stdev, max, ..] => {
                w.avg_us = to_us(avg).unwrap_or(0.0);
                w.max_us = to_us(max).unwrap_or(0.0);
            }
            ["50%", v] => w.p50_us = to_us(v).unwrap_or(0.0),
            ["90%", v] => w.p90_us = to_us(v).unwrap_or(0.0),
            ["99%", v] => w.p99_us = to_us(v).unwrap_or(0.0),
            [n, "requests", "in", ..] => w.requests = n.parse().unwrap_or(0),
            ["Non-2xx", "or", "3xx", "responses:", n] => w.bad = n.parse().unwrap_or(0),
            ["Requests/sec:", v] => w.rps = v.parse().unwrap_or(0.0),
            _ => {}
        }
    }
    if w.requests == 0 || w.p99_us == 0.0 {
        bail!("cannot read wrk's output:\n{out}");
    }
    Ok(w)
}

async fn wrk(args: &Args, port: u16, path: &str) -> anyhow::Result<Wrk> {
    let out = tokio::process::Command::new("wrk")
        .args(["-t", &args.threads.to_string(), "-c", &args.connections.to_string(), "-d", &format!("{}s", args.duration), "--latency"])
        .arg(format!("http://127.0.0.1:{port}{path}"))
        .output()
        .await
        .context("running wrk (apt-get install wrk; scripts/peers.sh installs it)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout), args.duration as f64)
}

/// C keep-alive connections alternate pixel and click requests against the
/// child; after `after`, the child is killed with SIGKILL. Returns how many
/// requests were answered 200/302 and when the kill came.
async fn load_then_kill(child: &mut Child, paths: &[String; 2], c: usize, after: Duration) -> anyhow::Result<(u64, f64)> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    let port = child.port;
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..c {
        let (acked, paths) = (acked.clone(), paths.clone());
        tasks.spawn(async move {
            let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else { return };
            let _ = tcp.set_nodelay(true);
            let Ok((mut send, conn)) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(tcp)).await else { return };
            tokio::spawn(conn);
            let mut n = i;
            loop {
                let Ok(req) = hyper::Request::get(paths[n % 2].as_str()).header("host", "127.0.0.1").body(Empty::new()) else { return };
                n += 1;
                let Ok(res) = send.send_request(req).await else { return };
                let ok = matches!(res.status().as_u16(), 200 | 302);
                if res.into_body().collect().await.is_err() {
                    return;
                }
                if ok {
                    acked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
    let t0 = Instant::now();
    tokio::time::sleep(after).await;
    child.proc.start_kill().context("kill -9")?;
    let killed_at = t0.elapsed().as_secs_f64();
    let _ = child.proc.wait().await;
    while tasks.join_next().await.is_some() {}
    Ok((acked.load(std::sync::atomic::Ordering::Relaxed), killed_at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrk_latency_output() {
        let out = "Running 10s test @ http://127.0.0.1:1/t\n  2 threads and 64 connections\n  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency     1.20ms  612.00us  15.30ms   80.00%\n    Req/Sec    26.10k     1.20k   30.00k    70.00%\n  Latency Distribution\n     50%    1.05ms\n     75%    1.40ms\n     90%    1.90ms\n     99%    3.71ms\n  520000 requests in 10.00s, 60.00MB read\n  Non-2xx or 3xx responses: 3\nRequests/sec:  51990.12\nTransfer/sec:      6.00MB\n";
        let w = parse_wrk(out, 10.0).expect("parse");
        assert_eq!((w.requests, w.bad), (520_000, 3));
        assert_eq!((w.p50_us, w.p90_us, w.p99_us, w.max_us), (1050.0, 1900.0, 3710.0, 15300.0));
        assert!((w.rps - 51990.12).abs() < 1e-6 && (w.avg_us - 1200.0).abs() < 1e-9);
        assert!(parse_wrk("garbage", 1.0).is_err());
    }
}
