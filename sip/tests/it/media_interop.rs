//! Media interop against real peers over loopback, through the B2BUA:
//! sipp (`-rtp_echo`) on a call leg bridged to a plain UDP far end, and
//! two headless baresip softphones (an agent that registers with digest
//! and auto-answers our call, a caller that calls in with a WAV), bridged,
//! with what each heard checked by Goertzel.
//!
//! A missing peer binary skips the test with a note, unless
//! `CENTRALINO_REQUIRE_PEERS=1`. Every child is bounded (`-m 1`,
//! `-timeout`, `-t`) and killed on drop; every wait has a deadline.

use super::media::{collect, goertzel, tone};
use sip::b2bua::{B2bua, CallEvent, CallRecord, CallRecordSink, Direction};
use sip::driver;
use sip::g711::Codec;
use sip::media::{Media, MediaConfig};
use sip::rtp;
use sip::wav::{self, WavWriter};
use sip::{CallId, Config, Credentials, Dial, Endpoint, Event, Outcome};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

fn peer_available(bin: &str) -> bool {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()));
    if !found {
        if std::env::var("CENTRALINO_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("{bin} is not on PATH but CENTRALINO_REQUIRE_PEERS=1");
        }
        eprintln!("note: {bin} not on PATH, skipping (set CENTRALINO_REQUIRE_PEERS=1 to fail instead)");
    }
    found
}

/// A child process killed on drop, with its output in a log file.
struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    fn spawn(bin: &str, args: &[&str], log: PathBuf) -> Peer {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new("timeout").args(["-k", "2", "40", bin]).args(args).stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap();
        Peer { child, log }
    }
    async fn wait(&mut self, within: Duration) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Records(Mutex<Vec<CallRecord>>);
impl CallRecordSink for Records {
    fn call_ended(&self, record: CallRecord) {
        self.0.lock().unwrap().push(record);
    }
}

struct Agents;
impl Credentials for Agents {
    fn password(&self, username: &str) -> Option<String> {
        (username == "agent").then(|| "s3cret".to_owned())
    }
}

struct Harness {
    b2b: B2bua,
    events: mpsc::Receiver<CallEvent>,
    records: Arc<Records>,
    _stop: watch::Sender<bool>,
}

async fn harness() -> Harness {
    let sock = driver::bind_udp("127.0.0.1:0".parse().unwrap()).unwrap();
    let mut cfg = Config::new(sock.local_addr().unwrap());
    cfg.trusted_trunks = vec!["127.0.0.1".parse().unwrap()];
    let ep = Endpoint::new(cfg, Some(Arc::new(Agents)));
    let (stop, stop_rx) = watch::channel(false);
    let (handle, sip_events, _task) = driver::spawn(sock, ep, stop_rx).unwrap();
    let (media, media_events, _thread) = Media::start(MediaConfig::new([127, 0, 0, 1].into())).unwrap();
    let records = Arc::new(Records::default());
    let (b2b, events, _pump) = B2bua::spawn(handle, sip_events, media, media_events, records.clone());
    Harness { b2b, events, records, _stop: stop }
}

impl Harness {
    /// The next event that `pick` accepts, within `within`.
    async fn until<T>(&mut self, within: Duration, mut pick: impl FnMut(CallEvent) -> Option<T>) -> T {
        let f = async {
            loop {
                let ev = self.events.recv().await.expect("pump alive");
                if let Some(t) = pick(ev) {
                    return t;
                }
            }
        };
        tokio::time::timeout(within, f).await.expect("event in time")
    }
}

fn ended(call: &CallId) -> impl FnMut(CallEvent) -> Option<(Outcome, Option<u16>)> + '_ {
    move |e| match e {
        CallEvent::Sip(Event::Ended { call: c, outcome, status }) if &c == call => Some((outcome, status)),
        _ => None,
    }
}

#[tokio::test]
async fn sipp_echo_leg_bridged_to_udp_far_end() {
    if !peer_available("sipp") {
        return;
    }
    let mut h = harness().await;
    let target = h.b2b.sip().local_addr().to_string();
    let log = std::env::temp_dir().join(format!("centralino-sipp-echo-{}.log", std::process::id()));
    let args = [
        "-sn", "uac", &target, "-s", "agent", "-i", "127.0.0.1", "-p", "35181", "-mi", "127.0.0.1", "-mp", "36180", "-ci", "127.0.0.1", "-cp", "28890", "-rtp_echo", "-d", "3000", "-m", "1", "-nostdin", "-timeout", "20s",
        "-timeout_error",
    ];
    let mut sipp = Peer::spawn("sipp", &args, log);
    let inc = h.until(Duration::from_secs(10), |e| if let CallEvent::Sip(Event::Incoming(i)) = e { Some(i) } else { None }).await;
    h.b2b.ring(&inc.call).await.unwrap();
    let sipp_leg = h.b2b.answer(&inc.call).await.unwrap();
    // The other side is a plain UDP socket on a leg of its own.
    let media = h.b2b.media().clone();
    let far = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let (agent_leg, agent_leg_addr) = media.open_leg(Codec::Pcmu).unwrap();
    media.set_remote(agent_leg, Some(far.local_addr().unwrap()), Codec::Pcmu, None).unwrap();
    media.bridge(agent_leg, sipp_leg).unwrap();
    // 40 packets of 20 ms toward sipp, which echoes them; we read them back.
    let far2 = far.clone();
    let recv = tokio::spawn(async move { collect(&far2, 40, Duration::from_secs(5)).await });
    // The far end sends from the socket it receives on (we latch to it).
    let sender = far.clone();
    for i in 0..40u16 {
        let mut hdr = [0u8; 12];
        rtp::write_header(&mut hdr, false, 0, 9000 + i, 1000 + u32::from(i) * 160, 0xfeed);
        let pkt = [&hdr[..], &[(i % 200) as u8; 160][..]].concat();
        sender.send_to(&pkt, agent_leg_addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let got = recv.await.unwrap();
    assert!(got.len() >= 38, "echoed back through the relay: {} of 40\n{}", got.len(), sipp.log());
    let ssrc = got[0].0.ssrc;
    assert_ne!(ssrc, 0xfeed, "SSRC rewritten toward the far end");
    for w in got.windows(2) {
        assert_eq!(w[1].0.ssrc, ssrc);
        assert_eq!(w[1].0.seq, w[0].0.seq.wrapping_add(1), "continuous sequence");
        assert_eq!(w[1].0.timestamp.wrapping_sub(w[0].0.timestamp), 160);
        assert_eq!(w[1].1[0], w[0].1[0].wrapping_add(1) % 200, "payload order kept");
    }
    assert!(got.iter().all(|p| p.2 == agent_leg_addr));
    let st = media.stats(sipp_leg).await.unwrap().unwrap();
    assert!(st.sent >= 38 && st.received >= 38, "{st:?}");
    // sipp hangs up after its pause.
    let (outcome, _) = h.until(Duration::from_secs(10), ended(&inc.call)).await;
    assert_eq!(outcome, Outcome::Completed { by_remote: true });
    assert_eq!(sipp.wait(Duration::from_secs(15)).await, Some(0), "{}", sipp.log());
    let recs = h.records.0.lock().unwrap().clone();
    let r = recs.iter().find(|r| r.call == inc.call).expect("call record");
    assert_eq!((r.direction, r.leg, r.outcome, r.from.as_str(), r.to.as_str()), (Direction::Inbound, Some(sipp_leg), outcome, "sipp", "agent"));
    assert!(r.started <= r.ringing.unwrap() && r.ringing.unwrap() <= r.answered.unwrap() && r.answered.unwrap() <= r.ended);
    // The leg was closed with the call.
    assert_eq!(media.stats(sipp_leg).await.unwrap(), None);
    media.close_leg(agent_leg).unwrap();
}

fn write_wav(path: &Path, samples: &[i16]) {
    let mut w = WavWriter::create(path, 1, 8000).unwrap();
    w.write(samples).unwrap();
    w.finish().unwrap();
}

fn baresip_profile(dir: &Path, name: &str, sip_port: u16, ctrl_port: u16, rtp: (u16, u16), wav: &Path, account: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.join("rec")).unwrap();
    let config = format!(
        "poll_method epoll\nnet_interface 127.0.0.1\nsip_listen 127.0.0.1:{sip_port}\ncall_local_timeout 120\ncall_max_calls 4\n\
audio_path /usr/share/baresip\naudio_source aufile,{wav}\naudio_player aubridge,nil\naudio_alert aubridge,nil\n\
ausrc_format s16\nauplay_format s16\nauenc_format s16\naudec_format s16\nrtp_ports {}-{}\nrtcp_mux no\njitter_buffer_delay 5-10\n\
module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule aubridge.so\nmodule sndfile.so\n\
module_tmp account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\nctrl_tcp_listen 127.0.0.1:{ctrl_port}\nsnd_path {}\n",
        rtp.0,
        rtp.1,
        p.join("rec").display(),
        wav = wav.display(),
    );
    std::fs::write(p.join("config"), config).unwrap();
    std::fs::write(p.join("accounts"), format!("{account}\n")).unwrap();
    std::fs::write(p.join("contacts"), "").unwrap();
    p
}

/// Sends a ctrl_tcp command (netstring-framed JSON); best effort.
fn baresip_ctrl(port: u16, command: &str, params: &str) {
    use std::io::Write;
    if let Ok(mut s) = std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)) {
        let j = format!(r#"{{"command":"{command}","params":"{params}","token":"t"}}"#);
        let _ = s.write_all(format!("{}:{j},", j.len()).as_bytes());
    }
}

/// The received-audio (`dec`) recording baresip's sndfile wrote in `dir`.
fn dec_recording(dir: &Path) -> Vec<i16> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.to_string_lossy().ends_with("-dec.wav")).collect();
    files.sort();
    let f = files.last().unwrap_or_else(|| panic!("no dec recording in {}", dir.display()));
    let pcm = wav::read(f).unwrap();
    pcm.samples
}

#[tokio::test]
async fn baresip_agent_and_caller_bridged_hear_each_other() {
    if !peer_available("baresip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness().await;
    let port = h.b2b.sip().local_addr().port();
    // The caller says 1 kHz for 10 s; the agent says 600 Hz (long, so its WAV's end does not hang up).
    let caller_wav = dir.path().join("caller.wav");
    let agent_wav = dir.path().join("agent.wav");
    write_wav(&caller_wav, &tone(1000.0, 10_000, 8000.0));
    write_wav(&agent_wav, &tone(600.0, 30_000, 8000.0));
    let agent_dir = baresip_profile(dir.path(), "agent", 35182, 35190, (35200, 35219), &agent_wav, &format!("<sip:agent@127.0.0.1:{port}>;auth_pass=s3cret;regint=60;answermode=auto;audio_codecs=pcmu"));
    let caller_dir = baresip_profile(dir.path(), "caller", 35186, 35191, (35220, 35239), &caller_wav, "<sip:caller@127.0.0.1>;regint=0;audio_codecs=pcmu;answermode=manual");
    let mut agent = Peer::spawn("baresip", &["-f", &agent_dir.display().to_string(), "-t", "35"], dir.path().join("agent.log"));
    // 1. The agent registers with digest.
    let (user, source) = h
        .until(Duration::from_secs(10), |e| match e {
            CallEvent::Sip(Event::Registered { user, source, expires, .. }) if expires > 0 => Some((user, source)),
            _ => None,
        })
        .await;
    assert_eq!(user, "agent");
    // 2. We call the agent (the nailed-up leg); it auto-answers.
    let agent_call = h.b2b.dial(Dial { trunk: source, number: "agent".into(), caller: "centralino".into(), rtp: "127.0.0.1:9".parse().unwrap(), auth: None, ring_timeout: Some(Duration::from_secs(10)) }).await.unwrap();
    h.until(Duration::from_secs(10), |e| matches!(&e, CallEvent::Sip(Event::Answered { call, .. }) if *call == agent_call).then_some(())).await;
    // 3. A customer calls in; we answer, bridge it to the agent and record it.
    let mut caller = Peer::spawn("baresip", &["-f", &caller_dir.display().to_string(), "-e", &format!("/dial sip:1000@127.0.0.1:{port}"), "-t", "35"], dir.path().join("caller.log"));
    let inc = h.until(Duration::from_secs(10), |e| if let CallEvent::Sip(Event::Incoming(i)) = e { Some(i) } else { None }).await;
    assert_eq!((inc.caller.as_str(), inc.callee.as_str()), ("caller", "1000"));
    h.b2b.ring(&inc.call).await.unwrap();
    h.b2b.answer(&inc.call).await.unwrap();
    h.b2b.bridge(&agent_call, &inc.call).await.unwrap();
    let ours = dir.path().join("call.wav");
    h.b2b.record(&inc.call, Some(&ours)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // 4. Hang up both; records come out.
    h.b2b.hangup(&inc.call).await.unwrap();
    h.b2b.hangup(&agent_call).await.unwrap();
    let mut outcomes = Vec::new();
    for _ in 0..2 {
        outcomes.push(h.until(Duration::from_secs(10), |e| if let CallEvent::Sip(Event::Ended { outcome, .. }) = e { Some(outcome) } else { None }).await);
    }
    assert_eq!(outcomes, vec![Outcome::Completed { by_remote: false }; 2]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    baresip_ctrl(35191, "quit", "");
    baresip_ctrl(35190, "quit", "");
    let _ = caller.wait(Duration::from_secs(5)).await;
    let _ = agent.wait(Duration::from_secs(5)).await;
    let (alog, clog) = (agent.log(), caller.log());
    // What each softphone heard is the other's tone, through our relay.
    let agent_heard = dec_recording(&agent_dir.join("rec"));
    let caller_heard = dec_recording(&caller_dir.join("rec"));
    let (a1k, a600) = (goertzel(&agent_heard, 1000.0, 8000.0), goertzel(&agent_heard, 600.0, 8000.0));
    let (c1k, c600) = (goertzel(&caller_heard, 1000.0, 8000.0), goertzel(&caller_heard, 600.0, 8000.0));
    eprintln!("agent heard: 1k={a1k:.3} 600={a600:.3} ({} s); caller heard: 1k={c1k:.3} 600={c600:.3} ({} s)", agent_heard.len() / 8000, caller_heard.len() / 8000);
    assert!(a1k > 0.3 && a1k > 10.0 * a600, "agent should hear the caller's 1 kHz\n{alog}");
    assert!(c600 > 0.3 && c600 > 10.0 * c1k, "caller should hear the agent's 600 Hz\n{clog}");
    // Our recording: left what the caller sent, right what it heard.
    let pcm = wav::read(&ours).unwrap();
    let left: Vec<i16> = pcm.samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = pcm.samples.iter().skip(1).step_by(2).copied().collect();
    assert!(goertzel(&left, 1000.0, 8000.0) > 0.3, "left {}", goertzel(&left, 1000.0, 8000.0));
    assert!(goertzel(&right, 600.0, 8000.0) > 0.3, "right {}", goertzel(&right, 600.0, 8000.0));
    let recs = h.records.0.lock().unwrap().clone();
    let rc = recs.iter().find(|r| r.call == inc.call).expect("caller's record");
    let ra = recs.iter().find(|r| r.call == agent_call).expect("agent's record");
    assert_eq!((rc.direction, ra.direction), (Direction::Inbound, Direction::Outbound));
    assert_eq!(rc.recording.as_deref(), Some(ours.as_path()));
    assert_eq!(rc.bridged_with, vec![agent_call.clone()]);
    assert_eq!(ra.bridged_with, vec![inc.call.clone()]);
    assert!(ra.answered.is_some() && ra.ringing.is_some());
}
