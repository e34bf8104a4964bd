//! Interop against real sipp (Debian package `sip-tester`) over loopback,
//! through the tokio driver: sipp as a carrier that answers or is busy,
//! sipp calling in, sipp registering with digest. Scenario XML lives in
//! `sip/scenarios/`. Each sipp run is bounded by `-m 1` and `-timeout`.

use sip::driver::{self, Handle};
use sip::{Config, Credentials, Dial, Endpoint, Event, Outcome};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Whether sipp can be used; skips (with a note) unless peers are required.
pub fn sipp_available() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sipp").is_file()));
    if !found {
        if std::env::var("CENTRALINO_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("sipp is not on PATH but CENTRALINO_REQUIRE_PEERS=1");
        }
        eprintln!("note: sipp not on PATH, skipping (set CENTRALINO_REQUIRE_PEERS=1 to fail instead)");
    }
    found
}

pub fn scenario(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(name).display().to_string()
}

/// Spawns sipp in the foreground (no `-bg`: its daemon child would keep
/// our pipes open) with output to a temp log; killed on drop.
pub struct Sipp {
    child: Child,
    pub log: PathBuf,
}

impl Sipp {
    fn spawn(args: &[&str], log_name: &str) -> Sipp {
        let log = std::env::temp_dir().join(format!("centralino-sipp-{}-{log_name}.log", std::process::id()));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new("sipp")
            .args(args)
            .args(["-nostdin", "-m", "1", "-timeout", "20s", "-timeout_error", "-i", "127.0.0.1", "-mi", "127.0.0.1"])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn sipp");
        Sipp { child, log }
    }
    /// Spawns sipp with exactly `args` (plus `-nostdin`) in `dir`, where its
    /// `-trace_stat`/`-trace_counts` files land; the caller bounds the run
    /// with `-m` and `-timeout`.
    pub fn spawn_in(dir: &std::path::Path, args: &[&str], log_name: &str) -> Sipp {
        let log = dir.join(format!("{log_name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new("sipp").args(args).arg("-nostdin").current_dir(dir).stdin(Stdio::null()).stdout(out).stderr(err).spawn().expect("spawn sipp");
        Sipp { child, log }
    }
    /// Waits for exit (bounded) and returns the exit code.
    pub async fn wait(self) -> i32 {
        self.wait_for(Duration::from_secs(25)).await
    }
    pub async fn wait_for(mut self, within: Duration) -> i32 {
        let start = std::time::Instant::now();
        while start.elapsed() < within {
            if let Some(s) = self.child.try_wait().unwrap() {
                let code = s.code().unwrap_or(-1);
                if code != 0 {
                    eprintln!("sipp log:\n{}", std::fs::read_to_string(&self.log).unwrap_or_default());
                }
                return code;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        -1
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until sipp has bound its UDP port.
pub async fn wait_bound(port: u16) {
    for _ in 0..50 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sipp did not bind {port}");
}

pub struct Agents;
impl Credentials for Agents {
    fn password(&self, username: &str) -> Option<String> {
        (username == "agent7").then(|| "s3cret".to_owned())
    }
}

async fn start(creds: Option<Arc<dyn Credentials>>) -> (Handle, mpsc::Receiver<Event>, watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let sock = crate::interop::bind_udp_clear();
    let local = sock.local_addr().unwrap();
    let mut cfg = Config::new(local);
    cfg.trusted_trunks = vec!["127.0.0.1".parse().unwrap()];
    let ep = Endpoint::new(cfg, creds);
    let (stop_tx, stop_rx) = watch::channel(false);
    let (h, ev, task) = driver::spawn(sock, ep, stop_rx).unwrap();
    (h, ev, stop_tx, task)
}

pub async fn next(ev: &mut mpsc::Receiver<Event>) -> Event {
    tokio::time::timeout(Duration::from_secs(15), ev.recv()).await.expect("event in time").expect("driver alive")
}

fn dial_to(port: u16) -> Dial {
    Dial { trunk: SocketAddr::from(([127, 0, 0, 1], port)), number: "5551234".into(), caller: "100".into(), rtp: "127.0.0.1:40000".parse().unwrap(), auth: None, ring_timeout: None }
}

#[tokio::test]
async fn carrier_answers_then_we_hang_up() {
    if !sipp_available() {
        return;
    }
    let port = 35071;
    let sipp = Sipp::spawn(&["-sf", &scenario("carrier_answer.xml"), "-p", &port.to_string(), "-mp", "36070"], "answer");
    wait_bound(port).await;
    let (h, mut ev, stop, task) = start(None).await;
    let call = h.dial(dial_to(port)).await.unwrap();
    assert!(matches!(next(&mut ev).await, Event::Progress { status: 183, sdp: Some(_), .. }));
    let Event::Answered { call: answered, sdp } = next(&mut ev).await else { panic!("expected Answered") };
    assert_eq!(answered, call);
    assert!(String::from_utf8_lossy(&sdp).contains("PCMU"));
    h.hangup(call.clone()).await.unwrap();
    assert_eq!(next(&mut ev).await, Event::Ended { call, outcome: Outcome::Completed { by_remote: false }, status: None });
    assert_eq!(sipp.wait().await, 0, "sipp counted a failed call");
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn carrier_busy() {
    if !sipp_available() {
        return;
    }
    let port = 35072;
    let sipp = Sipp::spawn(&["-sf", &scenario("carrier_busy.xml"), "-p", &port.to_string(), "-mp", "36080"], "busy");
    wait_bound(port).await;
    let (h, mut ev, stop, task) = start(None).await;
    let call = h.dial(dial_to(port)).await.unwrap();
    assert!(matches!(next(&mut ev).await, Event::Progress { status: 180, .. }));
    assert_eq!(next(&mut ev).await, Event::Ended { call, outcome: Outcome::Busy, status: Some(486) });
    assert_eq!(sipp.wait().await, 0);
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn sipp_calls_in_and_hangs_up() {
    if !sipp_available() {
        return;
    }
    let (h, mut ev, stop, task) = start(None).await;
    let target = h.local_addr().to_string();
    let sipp = Sipp::spawn(&["-sn", "uac", &target, "-p", "35073", "-mp", "36090", "-d", "200", "-s", "+3912345"], "uac");
    let Event::Incoming(inc) = next(&mut ev).await else { panic!("expected Incoming") };
    assert_eq!(inc.callee, "+3912345");
    assert_eq!(inc.caller, "sipp");
    h.ring(inc.call.clone()).await.unwrap();
    let sdp = sip::sdp::answer(&inc.sdp, "127.0.0.1:40002".parse().unwrap(), 1).expect("shared codec");
    h.answer(inc.call.clone(), sdp.into_bytes()).await.unwrap();
    assert_eq!(next(&mut ev).await, Event::Ended { call: inc.call, outcome: Outcome::Completed { by_remote: true }, status: None });
    assert_eq!(sipp.wait().await, 0);
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn sipp_registers_with_digest() {
    if !sipp_available() {
        return;
    }
    let (h, mut ev, stop, task) = start(Some(Arc::new(Agents))).await;
    let target = h.local_addr().to_string();
    let sipp = Sipp::spawn(&["-sf", &scenario("agent_register.xml"), &target, "-p", "35074", "-mp", "36100"], "register");
    let Event::Registered { user, expires, contact, .. } = next(&mut ev).await else { panic!("expected Registered") };
    assert_eq!((user.as_str(), expires, contact.as_str()), ("agent7", 120, "sip:agent7@127.0.0.1:35074"));
    assert_eq!(sipp.wait().await, 0);
    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn options_always_200_and_shutdown_cancels_calls() {
    let (h, mut ev, stop, task) = start(None).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let opt = format!(
        "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/UDP {1};branch=z9hG4bKopt\r\nf: <sip:probe@127.0.0.1>;tag=p\r\nt: <sip:{0}>\r\ni: opt1\r\nCSeq: 1 OPTIONS\r\nl: 0\r\n\r\n",
        h.local_addr(),
        sock.local_addr().unwrap()
    );
    sock.send_to(opt.as_bytes(), h.local_addr()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"SIP/2.0 200 "));
    // Garbage does not disturb the listener.
    sock.send_to(b"\x00\x01\x02 not sip", h.local_addr()).await.unwrap();
    // A call to a peer that only sends 180: shutdown must CANCEL it.
    let trunk = sock.local_addr().unwrap();
    let call = h.dial(Dial { trunk, ..dial_to(0) }).await.unwrap();
    let (n, _) = sock.recv_from(&mut buf).await.unwrap();
    let invite = sip::msg::parse(&buf[..n]).unwrap();
    let ringing = format!(
        "SIP/2.0 180 Ringing\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=z\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        invite.header("Via").unwrap(),
        invite.header("From").unwrap(),
        invite.header("To").unwrap(),
        invite.call_id,
        invite.header("CSeq").unwrap()
    );
    sock.send_to(ringing.as_bytes(), h.local_addr()).await.unwrap();
    assert!(matches!(next(&mut ev).await, Event::Progress { status: 180, .. }));
    stop.send(true).unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf)).await.unwrap().unwrap();
    assert!(buf[..n].starts_with(b"CANCEL "), "{}", String::from_utf8_lossy(&buf[..n]));
    // Nobody answers the CANCEL: the grace period ends the driver anyway.
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("driver stops within the grace period").unwrap();
    let _ = call;
}

#[test]
fn receive_buffer_is_raised() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let sock = driver::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
        let got = driver::recv_buffer_size(&sock).unwrap();
        eprintln!("SO_RCVBUF granted: {got} bytes");
        assert!(got >= 200_000, "{got}");
    });
}
