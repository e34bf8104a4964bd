//! `loadtest http`: the HTTP API under load. Builds `web::Application`
//! in-process on 127.0.0.1:0 over a populated database, issues an API bearer
//! token through the store, and drives each route in turn with C keep-alive
//! connections (one hyper HTTP/1 connection per task, wrk-style: each
//! connection sends its next request when the previous answer is in) for a
//! bounded time:
//!
//! 1. baseline: a bare axum handler returning `ok` (no middleware, no
//!    database) served by the same server runtime: the HTTP ceiling;
//! 2. baseline: `GET /healthz` (the real router and middleware, one
//!    `SELECT 1`);
//! 3. `GET /api/lookup/phone/{n}` (bearer token lookup, parse, "who is
//!    calling?", JSON), 90 % existing numbers and 10 % unknown ones;
//! 4. `GET /api/parties/{id}` (bearer token lookup, the whole party: six
//!    queries, JSON).
//!
//! In-process, but apart: the server runs on its own multi-threaded tokio
//! runtime (as many workers as the `centralino` binary would start) and the
//! load generator on another runtime on its own thread, so they share the
//! CPUs as two processes would, but neither's tasks run on the other's
//! workers. The CPU each side used is read per thread from /proc.

use crate::Common;
use crate::bench::lookup::{backend_name, round};
use anyhow::Context;
use crm::Backend;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use loadtest::data::PartyGen;
use loadtest::db::{self, Location, MARKER_USER};
use loadtest::progress;
use loadtest::report::{Latency, Report, Row, Unit};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "sqlite")]
    backend: Backend,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Measured seconds per route (after `--warmup`).
    #[arg(long, default_value_t = 15)]
    duration: u64,
    /// Unmeasured seconds at the start of each route.
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Parties in the database (created once, then reused).
    #[arg(long, default_value_t = 100_000)]
    parties: u64,
    /// Server runtime workers (default: one per CPU, like `centralino serve`).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Load-generator runtime workers.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Database connections of the server's store (its default is 8).
    #[arg(long, default_value_t = 8)]
    db_connections: u32,
}

/// What a response must look like to count as correct.
#[derive(Clone, Copy)]
enum Expect {
    Ok,
    /// A JSON array with at least one card.
    Found,
    /// `[]`.
    Empty,
}

struct Route {
    name: &'static str,
    addr: SocketAddr,
    auth: bool,
    paths: Arc<Vec<(String, Expect)>>,
}

const BARE: &str = "baseline: bare axum handler";
const HEALTH: &str = "baseline: GET /healthz";
const LOOKUP: &str = "GET /api/lookup/phone/{n}";
const PARTY: &str = "GET /api/parties/{id}";

pub fn run(args: &Args, common: &Common) -> anyhow::Result<Report> {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let server_threads = args.server_threads.unwrap_or(cpus);
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name("server")
        .enable_all()
        .build()
        .context("server runtime")?;
    let generator = PartyGen::new(common.seed);
    generator.self_check(2_000).context("generator self-check")?;
    let name = format!("http-{}-s{}", args.parties, common.seed);
    let loc = Location::new(args.backend, &name, &common.data_dir, common.pg_url.as_deref())?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let (app_addr, bare_addr, token, reused, populate_s) = server_rt.block_on(start_server(loc.clone(), args, &generator, shutdown_rx))?;

    let mut report = Report::new(
        "http",
        backend_name(args.backend),
        serde_json::json!({
            "connections": args.connections, "duration_s": args.duration, "warmup_s": args.warmup, "parties": args.parties,
            "server_threads": server_threads, "client_threads": args.client_threads, "db_connections": args.db_connections, "seed": common.seed,
        }),
    );
    report.fact("database", loc.describe());
    report.fact("database reused", reused);
    if !reused {
        report.fact("fill time (s)", round(populate_s, 2));
    }
    report.fact(
        "set-up",
        format!("in-process: server on its own tokio runtime ({server_threads} workers), load generator on another ({} worker(s)) on its own thread; one HTTP/1.1 keep-alive connection per client task", args.client_threads),
    );

    // Requests are prepared before the clock starts, so the generator spends
    // its time sending, not formatting.
    let mut rng = StdRng::seed_from_u64(common.seed ^ 0x4077);
    let lookups: Vec<(String, Expect)> = (0..50_000)
        .map(|_| {
            if rng.random_bool(0.1) {
                let n = PartyGen::miss_number(&mut rng);
                (format!("/api/lookup/phone/%2B{}", &n[1..]), Expect::Empty)
            } else {
                let n = generator.main_number(rng.random_range(0..args.parties));
                (format!("/api/lookup/phone/%2B{}", &n[1..]), Expect::Found)
            }
        })
        .collect();
    let parties: Vec<(String, Expect)> = (0..50_000).map(|_| (format!("/api/parties/{}", rng.random_range(1..=args.parties)), Expect::Ok)).collect();
    let routes = vec![
        Route { name: BARE, addr: bare_addr, auth: false, paths: Arc::new(vec![("/bare".to_string(), Expect::Ok)]) },
        Route { name: HEALTH, addr: app_addr, auth: false, paths: Arc::new(vec![("/healthz".to_string(), Expect::Ok)]) },
        Route { name: LOOKUP, addr: app_addr, auth: true, paths: Arc::new(lookups) },
        Route { name: PARTY, addr: app_addr, auth: true, paths: Arc::new(parties) },
    ];

    let bearer: Arc<str> = Arc::from(format!("Bearer {token}"));
    let client_threads = args.client_threads.max(1);
    let connections = args.connections.max(1);
    let (warmup, duration) = (Duration::from_secs(args.warmup), Duration::from_secs(args.duration.max(1)));
    let seed = common.seed;
    let results = std::thread::Builder::new()
        .name("client".into())
        .spawn(move || -> anyhow::Result<Vec<Phase>> {
            let rt = if client_threads == 1 {
                tokio::runtime::Builder::new_current_thread().enable_all().build()
            } else {
                tokio::runtime::Builder::new_multi_thread().worker_threads(client_threads).thread_name("client").enable_all().build()
            }
            .context("client runtime")?;
            rt.block_on(async move {
                let mut out = Vec::new();
                for route in &routes {
                    out.push(drive(route, connections, warmup, duration, bearer.clone(), seed).await?);
                }
                Ok(out)
            })
        })
        .context("client thread")?
        .join()
        .map_err(|_| anyhow::anyhow!("the client thread panicked"))??;

    let _ = shutdown_tx.send(true);
    server_rt.shutdown_timeout(Duration::from_secs(5));

    for p in &results {
        report.row(Row::new(p.name, &p.lat, p.elapsed, p.errors, Unit::Micros));
        report.fact(
            &format!("CPU during {}", p.name),
            format!("server {:.0} %, load generator {:.0} % of one CPU (softirq not included)", p.server_cpu * 100.0, p.client_cpu * 100.0),
        );
        if p.transport_errors > 0 {
            report.fact(&format!("connection errors during {}", p.name), p.transport_errors);
        }
    }
    report.ratio(LOOKUP, BARE);
    report.ratio(LOOKUP, HEALTH);
    report.ratio(PARTY, BARE);
    report.ratio(PARTY, HEALTH);
    report.ratio(HEALTH, BARE);
    report.fact("errors column", "non-200 answers, and lookups whose body did not match (found vs [])");
    report.fact("latency", "closed loop (each connection waits for its answer): no coordinated-omission correction");
    Ok(report)
}

type ServerInfo = (SocketAddr, SocketAddr, String, bool, f64);

/// Fills (or reuses) the database, issues a token and starts the app and
/// the bare baseline server on the current (server) runtime.
async fn start_server(loc: Location, args: &Args, generator: &PartyGen, shutdown: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<ServerInfo> {
    let pop = db::populated(loc.clone(), args.parties, generator, args.db_connections).await?;
    let store = pop.store;
    let user = store.find_user_by_username(MARKER_USER).await?.context("the marker user is missing")?;
    let actor = store.actor_for(&user).await?;
    let token = store.create_api_token(&actor, "loadtest").await.context("creating an API token")?;

    let settings = web::RawConfig { http: Some("127.0.0.1:0".into()), sip: Some("off".into()), database_url: Some(loc.url()), db_connections: Some(args.db_connections), ..Default::default() }
        .resolve()
        .context("settings")?;
    let app = web::Application::with_store(&settings, store).await.context("building the application")?;
    let app_addr = app.local_addr();
    let mut rx = shutdown.clone();
    tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = app.run_until_stopped(stop).await {
            eprintln!("server: {e:#}");
        }
    });

    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the baseline server")?;
    let bare_addr = bare.local_addr()?;
    let router = axum::Router::new().route("/bare", axum::routing::get(|| async { "ok" }));
    let mut rx = shutdown;
    tokio::spawn(async move {
        let stop = async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(bare, router).with_graceful_shutdown(stop).await {
            eprintln!("baseline server: {e}");
        }
    });
    Ok((app_addr, bare_addr, token, pop.reused, pop.populate_s))
}

/// What one route measured.
struct Phase {
    name: &'static str,
    lat: Latency,
    elapsed: Duration,
    errors: u64,
    transport_errors: u64,
    server_cpu: f64,
    client_cpu: f64,
}

/// Drives one route with `conns` connections for `warmup + duration`.
async fn drive(route: &Route, conns: usize, warmup: Duration, duration: Duration, bearer: Arc<str>, seed: u64) -> anyhow::Result<Phase> {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let mut tasks = Vec::with_capacity(conns);
    for c in 0..conns {
        let paths = route.paths.clone();
        let bearer = route.auth.then(|| bearer.clone());
        let addr = route.addr;
        let offset = StdRng::seed_from_u64(seed ^ (c as u64 + 1)).random_range(0..paths.len());
        tasks.push(tokio::spawn(async move { connection(addr, paths, offset, bearer, measure_from, end).await }));
    }
    let bar = progress::timed(warmup + duration, route.name);
    tokio::time::sleep_until(measure_from).await;
    let cpu0 = CpuSnapshot::take();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(250).min(end.saturating_duration_since(Instant::now()))).await;
        bar.set_position(start.elapsed().as_millis() as u64);
    }
    let cpu1 = CpuSnapshot::take();
    bar.finish_and_clear();
    let mut lat = Latency::new();
    let (mut errors, mut transport_errors) = (0, 0);
    for t in tasks {
        let r = t.await.context("client task")?;
        lat.merge(&r.lat);
        errors += r.errors;
        transport_errors += r.transport_errors;
    }
    let secs = duration.as_secs_f64();
    Ok(Phase {
        name: route.name,
        lat,
        elapsed: duration,
        errors,
        transport_errors,
        server_cpu: (cpu1.server - cpu0.server) / secs,
        client_cpu: (cpu1.client - cpu0.client) / secs,
    })
}

struct ConnResult {
    lat: Latency,
    errors: u64,
    transport_errors: u64,
}

/// One keep-alive connection sending requests back to back until `end`;
/// it reconnects if the connection fails.
async fn connection(addr: SocketAddr, paths: Arc<Vec<(String, Expect)>>, mut next: usize, bearer: Option<Arc<str>>, measure_from: Instant, end: Instant) -> ConnResult {
    let mut out = ConnResult { lat: Latency::new(), errors: 0, transport_errors: 0 };
    let host = addr.to_string();
    while Instant::now() < end {
        let mut sender = match open(addr).await {
            Ok(s) => s,
            Err(_) => {
                out.transport_errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while Instant::now() < end {
            let (path, expect) = &paths[next % paths.len()];
            next += 1;
            let mut req = Request::get(path.as_str()).header(hyper::header::HOST, host.as_str());
            if let Some(b) = &bearer {
                req = req.header(hyper::header::AUTHORIZATION, &**b);
            }
            let Ok(req) = req.body(Empty::<Bytes>::new()) else {
                out.errors += 1;
                continue;
            };
            if sender.ready().await.is_err() {
                out.transport_errors += 1;
                break;
            }
            let t0 = std::time::Instant::now();
            let res = match sender.send_request(req).await {
                Ok(r) => r,
                Err(_) => {
                    out.transport_errors += 1;
                    break;
                }
            };
            let status = res.status();
            let body = match res.into_body().collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => {
                    out.transport_errors += 1;
                    break;
                }
            };
            let d = t0.elapsed();
            if Instant::now() >= measure_from {
                let ok = status == hyper::StatusCode::OK
                    && match expect {
                        Expect::Ok => true,
                        Expect::Found => body.starts_with(b"[{"),
                        Expect::Empty => &body[..] == b"[]",
                    };
                if !ok {
                    out.errors += 1;
                }
                out.lat.record(d);
            }
        }
    }
    out
}

async fn open(addr: SocketAddr) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// CPU seconds used so far by this process's threads, split into the load
/// generator (threads named `client`) and everything else (server workers,
/// sqlx's SQLite threads, tokio's blocking pool).
struct CpuSnapshot {
    server: f64,
    client: f64,
}

impl CpuSnapshot {
    fn take() -> CpuSnapshot {
        let mut snap = CpuSnapshot { server: 0.0, client: 0.0 };
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return snap };
        for entry in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // `pid (comm) state ...`: comm may hold spaces, so split at the last ')'.
            let Some((head, rest)) = stat.rsplit_once(')') else { continue };
            let comm = head.split_once('(').map(|(_, c)| c).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            // After the comm: state is field 0, utime 11, stime 12 (in clock ticks).
            let ticks = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let secs = ticks / 100.0;
            if comm.starts_with("client") {
                snap.client += secs;
            } else {
                snap.server += secs;
            }
        }
        snap
    }
}
