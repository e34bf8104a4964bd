//! The SIP and RTP benchmarks of issue 3: `sip-cps` and `rtp-relay`.
//!
//! `sip-cps` steps sipp's built-in `uac` (`-r` rising, `-buff_size
//! 4194304`, bounded by `-m` and `-timeout`) against two answerers in the
//! same run: our inbound side (an in-process `sip::driver` on its own
//! current-thread runtime with an auto-answer loop: 100, then 200 with an
//! SDP answer, retransmitted until the ACK) and Kamailio from Debian
//! answering statefully (`t_newtran` + `t_reply`, the config checked in
//! `limits.md`). A step passes with 0 failed calls, every call completed,
//! retransmissions under 1 % of calls (no storm) and p99 INVITE→200 under
//! 50 ms (from sipp's `-trace_rtt`, every call). The stepping stops at the
//! first failed step, because sipp collapses rather than degrades.
//!
//! `rtp-relay` calls `sip::bench::relay` for our media thread and the bare
//! `recvmmsg` relay at rising call counts and reports the highest count of
//! each before loss or p99 > 5 ms, their ratio and memory per call.

use loadtest::report::{self, Latency, Report, Row, Unit};
use anyhow::{Context, bail};
use sip::driver;
use sip::{Config, Endpoint, Event};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct CpsArgs {
    /// Call rates (calls/s) to step through, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "250,500,1000,1500,2000,3000,4000,5000,6000")]
    pub rates: Vec<u32>,
    /// Seconds of load per step (`-m` = rate × secs).
    #[arg(long, default_value_t = 5)]
    pub secs: u32,
    /// Skip Kamailio (when it is not installed).
    #[arg(long)]
    pub no_kamailio: bool,
}

#[derive(clap::Args, Debug)]
pub struct RelayArgs {
    /// Bridged call counts to step through, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "100,200,300,400,500,600,700,800")]
    pub calls: Vec<usize>,
    /// Seconds per step.
    #[arg(long, default_value_t = 5.0)]
    pub secs: f64,
}

/// A free UDP port on loopback (bound and released; good enough for a
/// benchmark that starts its peer right after).
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Stops and reaps a child on drop, so no peer outlives the run. SIGTERM
/// first: Kamailio's main process stops its children on it, while SIGKILL
/// would leave them running; SIGKILL only if it has not exited in 3 s.
struct Reaped(Child);
impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        for _ in 0..30 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Our answerer: a driver on a dedicated thread with a current-thread
/// runtime (one thread: no cross-CPU hand-offs, see limits.md pitfall 1).
struct Ours {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ours {
    fn start() -> anyhow::Result<Ours> {
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let thread = std::thread::Builder::new().name("sip-answerer".into()).spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(anyhow::anyhow!(e)));
                    return;
                }
            };
            rt.block_on(async move {
                let started = (|| {
                    let sock = driver::bind_udp("127.0.0.1:0".parse()?)?;
                    let local = sock.local_addr()?;
                    let mut cfg = Config::new(local);
                    cfg.trusted_trunks = vec!["127.0.0.1".parse()?];
                    let (h, ev, task) = driver::spawn(sock, Endpoint::new(cfg, None), stop_rx)?;
                    anyhow::Ok((local, h, ev, task))
                })();
                let (local, h, mut ev, task) = match started {
                    Ok(x) => x,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let _ = tx.send(Ok(local));
                let rtp: SocketAddr = SocketAddr::new(local.ip(), 40_000);
                while let Some(e) = ev.recv().await {
                    if let Event::Incoming(inc) = e {
                        let sdp = sip::sdp::answer(&inc.sdp, rtp, 1).unwrap_or_default();
                        // Commands go through the driver's queue; a full
                        // queue or a stopped driver just ends the loop.
                        if h.answer(inc.call, sdp.into_bytes()).await.is_err() {
                            break;
                        }
                    }
                }
                let _ = task.await;
            });
        })?;
        let addr = rx.recv().context("answerer thread died")??;
        Ok(Ours { addr, stop, thread: Some(thread) })
    }
}

impl Drop for Ours {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const KAMAILIO_CFG: &str = r#"#!KAMAILIO
debug=0
log_stderror=yes
children=2
auto_aliases=no
listen=udp:127.0.0.1:PORT
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
request_route {
    if (method=="ACK") { t_check_trans(); exit; }
    if (method=="INVITE") { t_newtran(); t_reply("180", "Ringing"); t_reply("200", "OK"); exit; }
    sl_send_reply("200", "OK");
    exit;
}
"#;

fn start_kamailio(dir: &Path) -> anyhow::Result<(Reaped, SocketAddr)> {
    let port = free_port()?;
    let cfg = dir.join("kamailio.cfg");
    std::fs::write(&cfg, KAMAILIO_CFG.replace("PORT", &port.to_string()))?;
    let run = dir.join("kamrun");
    std::fs::create_dir_all(&run)?;
    let log = std::fs::File::create(dir.join("kamailio.log"))?;
    let child = Command::new("kamailio")
        .arg("-f")
        .arg(&cfg)
        .arg("-P")
        .arg(run.join("kamailio.pid"))
        .arg("-Y")
        .arg(&run)
        .args(["-m", "1024", "-M", "8", "-DD", "-E"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting kamailio (apt install kamailio)")?;
    let child = Reaped(child);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // Ready when it answers an OPTIONS.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0")?;
    probe.set_read_timeout(Some(Duration::from_millis(200)))?;
    let me = probe.local_addr()?;
    let opt = format!("OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe\r\nFrom: <sip:p@{me}>;tag=p\r\nTo: <sip:{addr}>\r\nCall-ID: probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    let mut buf = [0u8; 2048];
    for _ in 0..50 {
        probe.send_to(opt.as_bytes(), addr)?;
        if probe.recv_from(&mut buf).is_ok() {
            return Ok((child, addr));
        }
    }
    bail!("kamailio did not answer OPTIONS; see {}", dir.join("kamailio.log").display())
}

/// One sipp step's outcome.
struct Step {
    rate: u32,
    calls: u64,
    ok: u64,
    failed: u64,
    retrans: u64,
    lat: Latency,
    elapsed: Duration,
    pass: bool,
}

fn csv_last(path: &Path) -> anyhow::Result<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let head: Vec<&str> = lines.next().context("empty stat file")?.split(';').collect();
    let last: Vec<&str> = lines.next_back().context("no stat rows")?.split(';').collect();
    Ok(head.iter().zip(last).map(|(k, v)| (k.to_string(), v.trim().to_string())).collect())
}

fn sipp_step(dir: &Path, target: SocketAddr, rate: u32, secs: u32) -> anyhow::Result<Step> {
    let step_dir = dir.join(format!("{}-{rate}", target.port()));
    std::fs::create_dir_all(&step_dir)?;
    let m = u64::from(rate) * u64::from(secs);
    let (p, cp) = (free_port()?, free_port()?);
    let t = target.to_string();
    let (ps, cps, rs, ms, limit) = (p.to_string(), cp.to_string(), rate.to_string(), m.to_string(), (rate * 2).max(100).to_string());
    let timeout = format!("{}s", secs + 20);
    let args = [
        "-sn", "uac", &t, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-ci", "127.0.0.1", "-p", &ps, "-cp", &cps, "-r", &rs, "-m", &ms, "-l", &limit, "-d", "0", "-buff_size", "4194304", "-timeout", &timeout, "-timeout_error", "-nostdin",
        "-trace_stat", "-stf", "stat.csv", "-fd", "1", "-trace_rtt", "-rtt_freq", "1",
    ];
    let started = Instant::now();
    let out = Command::new("timeout")
        .arg(format!("{}", secs + 30))
        .arg("sipp")
        .args(args)
        .current_dir(&step_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running sipp (apt install sip-tester)")?;
    let elapsed = started.elapsed();
    let stat = csv_last(&step_dir.join("stat.csv"))?;
    let n = |k: &str| stat.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let (calls, ok, failed, retrans) = (n("TotalCallCreated"), n("SuccessfulCall(C)"), n("FailedCall(C)"), n("Retransmissions(C)"));
    // Every call's INVITE→200 time (ms, fractional) from the rtt file.
    let mut lat = Latency::new();
    if let Some(rtt) = std::fs::read_dir(&step_dir)?.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.to_string_lossy().ends_with("_rtt.csv")) {
        for line in std::fs::read_to_string(rtt)?.lines().skip(1) {
            if let Some(ms) = line.split(';').nth(1).and_then(|v| v.trim().parse::<f64>().ok()) {
                lat.record(Duration::from_secs_f64(ms / 1000.0));
            }
        }
    }
    let p99_ms = Row::new("", &lat, elapsed, 0, Unit::Millis).p99;
    let pass = out.success() && failed == 0 && ok == m && calls == m && (retrans as f64) < 0.01 * m as f64 && p99_ms < 50.0;
    Ok(Step { rate, calls, ok, failed, retrans, lat, elapsed, pass })
}

fn step_through(report: &mut Report, name: &str, dir: &Path, target: SocketAddr, args: &CpsArgs) -> anyhow::Result<u32> {
    let mut best = 0;
    for &rate in &args.rates {
        let s = sipp_step(dir, target, rate, args.secs)?;
        eprintln!(
            "{name} {rate} cps: created {} ok {} failed {} retrans {} → {}  (load {})",
            s.calls,
            s.ok,
            s.failed,
            s.retrans,
            if s.pass { "pass" } else { "FAIL" },
            report::loadavg()
        );
        let row = Row::new(format!("{name} @{rate} cps INVITE→200"), &s.lat, s.elapsed, s.failed + s.calls.saturating_sub(s.ok), Unit::Millis).with_rate(s.ok as f64 / s.elapsed.as_secs_f64(), "completed calls");
        report.row(row);
        report.fact(&format!("{name} @{rate} cps"), format!("created {}, ok {}, failed {}, retransmissions {}, {}", s.calls, s.ok, s.failed, s.retrans, if s.pass { "pass" } else { "fail" }));
        if !s.pass {
            break;
        }
        best = s.rate;
        // Let the previous step's transactions (timer K/J) drain.
        std::thread::sleep(Duration::from_secs(2));
    }
    Ok(best)
}

pub fn run_cps(args: &CpsArgs, data_dir: &Path) -> anyhow::Result<Report> {
    let dir: PathBuf = data_dir.join("sip-cps");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let mut report = Report::new("sip-cps", "sipp uac → our inbound side, beside Kamailio (tm) in the same run", serde_json::json!({ "rates": args.rates, "secs": args.secs, "sipp": "-sn uac -d 0 -buff_size 4194304" }));
    let ours_best = {
        let ours = Ours::start()?;
        step_through(&mut report, "centralino", &dir, ours.addr, args)?
    };
    report.fact("centralino highest clean rate (cps)", ours_best);
    let mut checks = vec![("centralino ≥ 1000 cps", ours_best >= 1000, ours_best)];
    if !args.no_kamailio {
        let (kam, addr) = start_kamailio(&dir)?;
        let kam_best = step_through(&mut report, "kamailio", &dir, addr, args)?;
        drop(kam);
        report.fact("kamailio highest clean rate (cps)", kam_best);
        let ratio = if kam_best > 0 { f64::from(ours_best) / f64::from(kam_best) } else { f64::NAN };
        report.ratio_of("centralino highest clean cps", "kamailio highest clean cps", None, None, ratio);
        checks.push(("kamailio found a clean rate", kam_best > 0, kam_best));
    }
    for (what, pass, v) in checks {
        report.check(what, "see issue 3", format!("{v} cps"), pass);
    }
    report.fact("pass rule", "0 failed, every call completed, retransmissions < 1 % of calls, p99 INVITE→200 < 50 ms; stepping stops at the first failure");
    Ok(report)
}

pub fn run_relay(args: &RelayArgs) -> anyhow::Result<Report> {
    use sip::bench::{Relay, relay};
    let mut report = Report::new("rtp-relay", "our media thread beside a bare recvmmsg/sendmmsg relay, same generator and sink", serde_json::json!({ "calls": args.calls, "secs": args.secs, "per_call": "200 relayed packets/s (2 far ends × 50 pps in and out)" }));
    let mut best = [(Relay::Centralino, 0usize, 0i64), (Relay::Mmsg, 0usize, 0i64)];
    for entry in best.iter_mut() {
        for &calls in &args.calls {
            let r = relay(entry.0, calls, args.secs)?;
            eprintln!("{r}  (load {})", report::loadavg());
            let [p50, p90, p99, p999, max] = r.delay_us.map(|v| v as f64);
            report.row(Row {
                name: format!("{:?} {calls} calls delay", entry.0),
                count: r.received,
                errors: r.sent.saturating_sub(r.received),
                elapsed_s: r.secs,
                rate_per_s: r.pps(),
                rate_of: "packets in".into(),
                unit: Unit::Micros,
                mean: p50,
                p50,
                p90,
                p99,
                p99_9: p999,
                max,
            });
            report.fact(&format!("{:?} {calls} calls", entry.0), format!("loss {:.3} %, cpu {:.0} %, rss/call {} B, {}", r.loss() * 100.0, r.cpu_percent, r.rss_per_call_bytes, if r.ok() { "ok" } else { "over" }));
            if !r.ok() {
                break;
            }
            entry.1 = calls;
            entry.2 = r.rss_per_call_bytes;
        }
    }
    let [(_, ours, ours_mem), (_, bare, bare_mem)] = best;
    report.fact("centralino highest call count (loss < 0.1 %, p99 ≤ 5 ms)", ours);
    report.fact("bare mmsg highest call count", bare);
    report.fact("centralino memory per call (B, at its highest count)", ours_mem);
    report.fact("bare mmsg memory per call (B)", bare_mem);
    let ratio = if bare > 0 { ours as f64 / bare as f64 } else { f64::NAN };
    report.ratio_of("centralino calls", "bare mmsg calls", None, None, ratio);
    report.check("centralino ≥ 70 % of the bare relay", "≥ 0.70", format!("{ratio:.2}"), ratio >= 0.7);
    report.fact("note", "the mean column shows p50 (the relay bench reports percentiles only)");
    Ok(report)
}
