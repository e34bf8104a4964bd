//! The issue's interop scenarios against real sipp, each bounded by `-m`
//! and `-timeout`: a carrier with random outcomes over 200 calls (asserted
//! on sipp's `-trace_stat`/`-trace_counts` and on our call records), digest
//! carriers (401, 407), a carrier that never answers, a dead port (timer B
//! with a short T1), 50 calls in with E.164 callers, agents registering
//! with right and wrong passwords, and toll-fraud protection seen from an
//! untrusted address (127.0.0.2). Ports 352xx/382xx are this module's.

use crate::sipp::{Agents, Sipp, next, scenario, sipp_available, wait_bound};
use sip::b2bua::{B2bua, CallEvent, CallRecord, CallRecordSink};
use sip::driver::{self, Handle};
use sip::media::{Media, MediaConfig};
use sip::{Config, Credentials, Dial, DigestAuth, Endpoint, Event, Outcome};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

#[derive(Default)]
struct Records(Mutex<Vec<CallRecord>>);
impl CallRecordSink for Records {
    fn call_ended(&self, r: CallRecord) {
        self.0.lock().unwrap().push(r);
    }
}

fn config(local: SocketAddr) -> Config {
    let mut cfg = Config::new(local);
    cfg.trusted_trunks = vec!["127.0.0.1".parse().unwrap()];
    cfg
}

/// A UDP socket on an ephemeral port outside the fixed ports the sipp
/// peers of these tests use (35000-38999), so that a sipp cannot find its
/// port taken by one of our endpoints.
pub fn bind_udp_clear() -> tokio::net::UdpSocket {
    loop {
        let s = driver::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        if !(35000..39000).contains(&s.local_addr().unwrap().port()) {
            return s;
        }
    }
}

async fn start_with(cfg: Config, creds: Option<Arc<dyn Credentials>>) -> (Handle, mpsc::Receiver<Event>, watch::Sender<bool>) {
    let sock = bind_udp_clear();
    let mut cfg = cfg;
    cfg.local = sock.local_addr().unwrap();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (h, ev, _task) = driver::spawn(sock, Endpoint::new(cfg, creds), stop_rx).unwrap();
    (h, ev, stop_tx)
}

fn dial(port: u16) -> Dial {
    Dial { trunk: SocketAddr::from(([127, 0, 0, 1], port)), number: "+390211111".into(), caller: "+390299999".into(), rtp: "127.0.0.1:40000".parse().unwrap(), auth: None, ring_timeout: None }
}

/// The last row of a `;`-separated sipp CSV (stat or counts) by column name.
fn csv_last(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let head: Vec<&str> = lines.next().unwrap().split(';').collect();
    let last: Vec<&str> = lines.next_back().unwrap().split(';').collect();
    head.iter().zip(last).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn find(dir: &Path, suffix: &str) -> std::path::PathBuf {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.to_string_lossy().ends_with(suffix)).unwrap_or_else(|| panic!("no *{suffix} in {}", dir.display()))
}

fn num(m: &HashMap<String, String>, k: &str) -> u64 {
    m.get(k).unwrap_or_else(|| panic!("no column {k}: {:?}", m.keys())).trim().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_random_outcomes_over_200_calls() {
    if !sipp_available() {
        return;
    }
    const CALLS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let port = 35201;
    let args = ["-sf", &scenario("carrier_random.xml"), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", "36200", "-ci", "127.0.0.1", "-cp", "38201", "-p", "35201", "-m", "200", "-timeout", "60s", "-timeout_error", "-buff_size", "4194304", "-trace_stat", "-stf", "stat.csv", "-fd", "1", "-trace_counts"];
    let sipp = Sipp::spawn_in(dir.path(), &args, "carrier");
    wait_bound(port).await;
    let (h, sip_events, _stop) = start_with(config("127.0.0.1:0".parse().unwrap()), None).await;
    let (media, media_events, _thread) = Media::start(MediaConfig::new([127, 0, 0, 1].into())).unwrap();
    let records = Arc::new(Records::default());
    let (b2b, mut events, _pump) = B2bua::spawn(h, sip_events, media, media_events, records.clone());
    // 50 calls a second, as a dialer would place them.
    let placer = {
        let b2b = b2b.clone();
        tokio::spawn(async move {
            for _ in 0..CALLS {
                b2b.dial(Dial { ring_timeout: Some(Duration::from_secs(15)), ..dial(port) }).await.unwrap();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let mut ended = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while ended < CALLS {
        let ev = tokio::time::timeout_at(deadline, events.recv()).await.expect("all calls end in time").unwrap();
        match ev {
            // An answered call is hung up at once: the dialer found no agent.
            CallEvent::Sip(Event::Answered { call, .. }) => b2b.hangup(&call).await.unwrap(),
            CallEvent::Sip(Event::Ended { .. }) => ended += 1,
            _ => {}
        }
    }
    placer.await.unwrap();
    assert_eq!(sipp.wait_for(Duration::from_secs(20)).await, 0, "sipp counted failed calls");
    // The record sink runs right after the Ended event; give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let recs = records.0.lock().unwrap().clone();
    assert_eq!(recs.len(), CALLS);
    let count = |f: &dyn Fn(&CallRecord) -> bool| recs.iter().filter(|r| f(r)).count() as u64;
    let answered = count(&|r| r.outcome == Outcome::Completed { by_remote: false } && r.answered.is_some());
    let busy = count(&|r| r.outcome == Outcome::Busy && r.sip_status == Some(486));
    let noanswer = count(&|r| r.outcome == Outcome::NoAnswer && r.sip_status == Some(480));
    assert!(recs.iter().all(|r| r.ringing.is_some()), "every call rang");
    let counts = csv_last(&find(dir.path(), "_counts.csv"));
    let stat = csv_last(&dir.path().join("stat.csv"));
    eprintln!("ours: answered {answered} busy {busy} noanswer {noanswer}; sipp: 200 {} 486 {} 480 {}; retransmissions {}", num(&counts, "6_200_Sent"), num(&counts, "10_486_Sent"), num(&counts, "12_480_Sent"), num(&stat, "Retransmissions(C)"));
    assert_eq!(answered + busy + noanswer, CALLS as u64, "every call has one of the three outcomes");
    assert_eq!(answered, num(&counts, "6_200_Sent"));
    assert_eq!(busy, num(&counts, "10_486_Sent"));
    assert_eq!(noanswer, num(&counts, "12_480_Sent"));
    assert!(answered > 0 && busy > 0 && noanswer > 0);
    assert_eq!(num(&stat, "SuccessfulCall(C)"), CALLS as u64);
    assert_eq!(num(&stat, "FailedCall(C)"), 0);
    // No retransmission storm: on a quiet box both are 0; a loaded shared
    // box may delay the odd ACK past 500 ms, never hundreds.
    let retrans = num(&stat, "Retransmissions(C)") + num(&counts, "0_INVITE_Retrans") + num(&counts, "7_ACK_Retrans") + num(&counts, "8_BYE_Retrans");
    assert!(retrans <= 10, "retransmissions {retrans}");
    assert_eq!(num(&counts, "0_INVITE_Recv"), CALLS as u64);
    assert_eq!(num(&stat, "DeadCallMsgs(C)"), 0);
}

async fn digest_carrier(file: &str, port: u16, cp: &str) {
    let dir = tempfile::tempdir().unwrap();
    let p = port.to_string();
    let sipp = Sipp::spawn_in(dir.path(), &["-sf", &scenario(file), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-ci", "127.0.0.1", "-cp", cp, "-p", &p, "-m", "1", "-timeout", "20s", "-timeout_error"], "auth");
    wait_bound(port).await;
    let (h, mut ev, _stop) = start_with(config("127.0.0.1:0".parse().unwrap()), None).await;
    let auth = Some(DigestAuth { username: "trunkuser".into(), password: "trunkpw".into() });
    let call = h.dial(Dial { auth, ..dial(port) }).await.unwrap();
    loop {
        match next(&mut ev).await {
            Event::Answered { call: c, .. } if c == call => break,
            Event::Ended { outcome, status, .. } => panic!("{file}: ended {outcome:?} {status:?}"),
            _ => {}
        }
    }
    h.hangup(call.clone()).await.unwrap();
    assert_eq!(next(&mut ev).await, Event::Ended { call, outcome: Outcome::Completed { by_remote: false }, status: None });
    assert_eq!(sipp.wait().await, 0, "{file}: sipp refused our digest");
}

#[tokio::test]
async fn carriers_challenging_with_401_and_407() {
    if !sipp_available() {
        return;
    }
    digest_carrier("carrier_auth401.xml", 35202, "38202").await;
    digest_carrier("carrier_auth407.xml", 35203, "38203").await;
}

#[tokio::test]
async fn carrier_never_answers_we_cancel_and_get_487() {
    if !sipp_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = 35204;
    let sipp = Sipp::spawn_in(dir.path(), &["-sf", &scenario("carrier_noanswer.xml"), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-ci", "127.0.0.1", "-cp", "38204", "-p", "35204", "-m", "1", "-timeout", "20s", "-timeout_error"], "noanswer");
    wait_bound(port).await;
    let (h, mut ev, _stop) = start_with(config("127.0.0.1:0".parse().unwrap()), None).await;
    let started = std::time::Instant::now();
    let call = h.dial(Dial { ring_timeout: Some(Duration::from_secs(1)), ..dial(port) }).await.unwrap();
    assert!(matches!(next(&mut ev).await, Event::Progress { status: 180, .. }));
    assert_eq!(next(&mut ev).await, Event::Ended { call, outcome: Outcome::NoAnswer, status: Some(487) });
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(sipp.wait().await, 0);
}

#[tokio::test]
async fn dead_port_is_timer_b_408_no_answer() {
    // T1 = 50 ms makes timer B 3.2 s instead of 32 s; nothing listens on
    // the port (bound and dropped just before).
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let mut cfg = config("127.0.0.1:0".parse().unwrap());
    cfg.timers.t1 = Duration::from_millis(50);
    let (h, mut ev, _stop) = start_with(cfg, None).await;
    let started = std::time::Instant::now();
    let call = h.dial(Dial { trunk: dead, ..dial(0) }).await.unwrap();
    assert_eq!(next(&mut ev).await, Event::Ended { call, outcome: Outcome::NoAnswer, status: Some(408) });
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(3200) && took < Duration::from_secs(6), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_calls_in_each_raises_incoming_with_the_e164_caller() {
    if !sipp_available() {
        return;
    }
    const CALLS: u32 = 50;
    let (h, mut ev, _stop) = start_with(config("127.0.0.1:0".parse().unwrap()), None).await;
    let dir = tempfile::tempdir().unwrap();
    let target = h.local_addr().to_string();
    let args = ["-sf", &scenario("caller_e164.xml"), &target, "-s", "+390212345", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-ci", "127.0.0.1", "-cp", "38205", "-p", "35205", "-m", "50", "-r", "25", "-timeout", "30s", "-timeout_error", "-trace_stat", "-stf", "stat.csv", "-fd", "1"];
    let sipp = Sipp::spawn_in(dir.path(), &args, "callers");
    let mut callers = HashSet::new();
    let mut ended = 0;
    while ended < CALLS {
        match next(&mut ev).await {
            Event::Incoming(inc) => {
                assert_eq!(inc.callee, "+390212345");
                assert!(inc.caller.starts_with("+390255500"), "{}", inc.caller);
                assert!(inc.caller_display.as_deref().is_some_and(|d| d.starts_with("Caller ")));
                callers.insert(inc.caller.clone());
                let sdp = sip::sdp::answer(&inc.sdp, "127.0.0.1:40002".parse().unwrap(), 1).expect("shared codec");
                h.answer(inc.call, sdp.into_bytes()).await.unwrap();
            }
            Event::Ended { outcome, .. } => {
                assert_eq!(outcome, Outcome::Completed { by_remote: true });
                ended += 1;
            }
            _ => {}
        }
    }
    let expected: HashSet<String> = (1..=CALLS).map(|n| format!("+390255500{n}")).collect();
    assert_eq!(callers, expected, "one Incoming per call, each with its own E.164 caller");
    assert_eq!(sipp.wait().await, 0);
    let stat = csv_last(&dir.path().join("stat.csv"));
    assert_eq!(num(&stat, "SuccessfulCall(C)"), CALLS as u64);
}

#[tokio::test]
async fn agents_register_with_right_and_wrong_passwords() {
    if !sipp_available() {
        return;
    }
    let (h, mut ev, _stop) = start_with(config("127.0.0.1:0".parse().unwrap()), Some(Arc::new(Agents))).await;
    let dir = tempfile::tempdir().unwrap();
    let target = h.local_addr().to_string();
    let common = ["-i", "127.0.0.1", "-ci", "127.0.0.1", "-m", "1", "-timeout", "15s", "-timeout_error"];
    let wrong = Sipp::spawn_in(dir.path(), &[&["-sf", &scenario("agent_register_wrong.xml"), &target, "-p", "35206", "-cp", "38206"], &common[..]].concat(), "wrong");
    // The scenario itself expects the 403; exit 0 means it got it.
    assert_eq!(wrong.wait().await, 0);
    let right = Sipp::spawn_in(dir.path(), &[&["-sf", &scenario("agent_register.xml"), &target, "-p", "35207", "-cp", "38207"], &common[..]].concat(), "right");
    let Event::Registered { user, expires, .. } = next(&mut ev).await else { panic!("expected Registered") };
    assert_eq!((user.as_str(), expires), ("agent7", 120));
    assert_eq!(right.wait().await, 0);
    // The wrong password left no binding behind it: the only event was the right one.
    assert!(ev.try_recv().is_err());
}

#[tokio::test]
async fn untrusted_source_gets_403_and_an_agent_gets_through_with_digest() {
    if !sipp_available() {
        return;
    }
    let (h, mut ev, _stop) = start_with(config("127.0.0.1:0".parse().unwrap()), Some(Arc::new(Agents))).await;
    let dir = tempfile::tempdir().unwrap();
    let target = h.local_addr().to_string();
    // 127.0.0.2 is loopback too, but not in trusted_trunks.
    let common = ["-i", "127.0.0.2", "-mi", "127.0.0.2", "-ci", "127.0.0.2", "-s", "+390200000", "-m", "1", "-timeout", "15s", "-timeout_error"];
    let stranger = Sipp::spawn_in(dir.path(), &[&["-sf", &scenario("stranger_invite.xml"), &target, "-p", "35208", "-cp", "38208", "-au", "mallory", "-ap", "x"], &common[..]].concat(), "stranger");
    assert_eq!(stranger.wait().await, 0, "the stranger got its 403");
    let wrong = Sipp::spawn_in(dir.path(), &[&["-sf", &scenario("agent_call.xml"), &target, "-p", "35209", "-cp", "38209", "-au", "agent7", "-ap", "guess"], &common[..]].concat(), "agent-wrong");
    // A wrong password ends in 403, which the scenario (expecting 200) fails on.
    assert_ne!(wrong.wait().await, 0);
    let agent = Sipp::spawn_in(dir.path(), &[&["-sf", &scenario("agent_call.xml"), &target, "-p", "35210", "-cp", "38210", "-au", "agent7", "-ap", "s3cret"], &common[..]].concat(), "agent");
    let Event::Incoming(inc) = next(&mut ev).await else { panic!("expected Incoming") };
    assert_eq!(inc.caller, "agent7");
    let sdp = sip::sdp::answer(&inc.sdp, "127.0.0.1:40002".parse().unwrap(), 1).unwrap();
    h.answer(inc.call.clone(), sdp.into_bytes()).await.unwrap();
    assert_eq!(next(&mut ev).await, Event::Ended { call: inc.call, outcome: Outcome::Completed { by_remote: true }, status: None });
    assert_eq!(agent.wait().await, 0);
}

/// UDP and TCP on the same port, as `centralino serve` listens.
async fn start_tcp(cfg: Config) -> (Handle, mpsc::Receiver<Event>, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    for _ in 0..20 {
        let sock = bind_udp_clear();
        let local = sock.local_addr().unwrap();
        let Ok(tcp) = driver::bind_tcp(local) else { continue };
        let mut cfg = cfg.clone();
        cfg.local = local;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (h, ev, task) = driver::spawn_with_tcp(sock, Some(tcp), Endpoint::new(cfg, None), stop_rx).unwrap();
        return (h, ev, stop_tx, task);
    }
    panic!("no port free for both UDP and TCP");
}

#[tokio::test]
async fn sipp_over_tcp_calls_in() {
    if !sipp_available() {
        return;
    }
    const CALLS: usize = 10;
    let (h, mut ev, stop, task) = start_tcp(config("127.0.0.1:0".parse().unwrap())).await;
    let dir = tempfile::tempdir().unwrap();
    let target = h.local_addr().to_string();
    let args = ["-sn", "uac", &target, "-t", "t1", "-s", "+390212345", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-ci", "127.0.0.1", "-cp", "38211", "-p", "35211", "-m", "10", "-r", "10", "-d", "100", "-timeout", "20s", "-timeout_error", "-trace_stat", "-stf", "stat.csv", "-fd", "1"];
    let sipp = Sipp::spawn_in(dir.path(), &args, "tcp-uac");
    let mut ended = 0;
    while ended < CALLS {
        match next(&mut ev).await {
            Event::Incoming(inc) => {
                assert_eq!(inc.callee, "+390212345");
                h.ring(inc.call.clone()).await.unwrap();
                let sdp = sip::sdp::answer(&inc.sdp, "127.0.0.1:40002".parse().unwrap(), 1).expect("shared codec");
                h.answer(inc.call, sdp.into_bytes()).await.unwrap();
            }
            Event::Ended { outcome, .. } => {
                assert_eq!(outcome, Outcome::Completed { by_remote: true });
                ended += 1;
            }
            _ => {}
        }
    }
    assert_eq!(sipp.wait().await, 0);
    let stat = csv_last(&dir.path().join("stat.csv"));
    assert_eq!(num(&stat, "SuccessfulCall(C)"), CALLS as u64);
    // Reliable transport: nobody retransmits.
    assert_eq!(num(&stat, "Retransmissions(C)"), 0);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("driver stops").unwrap();
}

#[tokio::test]
async fn we_call_a_carrier_over_tcp() {
    if !sipp_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = 35212;
    let sipp = Sipp::spawn_in(dir.path(), &["-sf", &scenario("carrier_answer.xml"), "-t", "t1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", "36212", "-ci", "127.0.0.1", "-cp", "38212", "-p", "35212", "-m", "1", "-timeout", "20s", "-timeout_error"], "tcp-carrier");
    // sipp listens on TCP here; wait until it accepts.
    for _ in 0..50 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let trunk = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cfg = config("127.0.0.1:0".parse().unwrap());
    cfg.tcp_trunks = vec![trunk];
    let (h, mut ev, stop, task) = start_tcp(cfg).await;
    let call = h.dial(dial(port)).await.unwrap();
    assert!(matches!(next(&mut ev).await, Event::Progress { status: 183, .. }));
    assert!(matches!(next(&mut ev).await, Event::Answered { .. }));
    h.hangup(call.clone()).await.unwrap();
    assert_eq!(next(&mut ev).await, Event::Ended { call, outcome: Outcome::Completed { by_remote: false }, status: None });
    assert_eq!(sipp.wait().await, 0);
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("driver stops").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_event_queue_does_not_deadlock_answering() {
    // The application answers each Incoming before reading the next event,
    // as the auto-answer of `loadtest sip-cps` does. With 3 000 INVITEs in
    // a burst the event queue (1 024) fills; the driver must keep applying
    // the answers rather than wait on the queue (found by sip-cps at
    // 1 500 calls/s, where the driver and the answerer waited on each other).
    const N: usize = 3000;
    let (h, mut ev, _stop) = start_with(config("127.0.0.1:0".parse().unwrap()), None).await;
    let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = peer.local_addr().unwrap();
    let target = h.local_addr();
    let sender = tokio::spawn(async move {
        for i in 0..N {
            let inv = format!("INVITE sip:+39021@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKburst{i}\r\nFrom: <sip:+1555{i}@{me}>;tag=b{i}\r\nTo: <sip:+39021@{target}>\r\nCall-ID: burst{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:b@{me}>\r\nContent-Length: 0\r\n\r\n");
            peer.send_to(inv.as_bytes(), target).await.unwrap();
            if i % 200 == 199 {
                // Stay inside the socket buffer; the point is the event queue.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        peer
    });
    let answering = async {
        let mut answered = 0;
        while answered < N {
            match ev.recv().await.unwrap() {
                Event::Incoming(inc) => {
                    h.answer(inc.call, b"v=0\r\n".to_vec()).await.unwrap();
                    answered += 1;
                }
                other => panic!("{other:?}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), answering).await.expect("no deadlock between the driver and the answerer");
    let _ = sender.await.unwrap();
}
