//! `loadtest webrtc-agents`: agents on browser softphone legs, end to end.
//!
//! For each step of K agents: `web::Application` in-process (SIP on
//! loopback, SQLite), a progressive campaign whose trunk is a sipp carrier
//! that answers every call and echoes its RTP (`-rtp_echo`), and K WebRTC
//! clients built with the `webrtc` crate (PCMU only, as a browser would
//! negotiate), each opening its softphone leg over HTTP, logging in on the
//! campaign and sending 50 packets/s. An agent who is connected talks for
//! `--talk-ms`, hangs up and dispositions; the dialer then connects the next
//! answered call. Measured:
//!
//! - **answer → bridge** (the dialer runtime's own figure, from the 200 OK to
//!   the media switch onto the agent's WebRTC leg), p50/p99 over every call;
//! - **audio at the agents**: inter-arrival gaps of the echoed RTP the
//!   clients receive during calls (20 ms when healthy), p50/p99 and the
//!   share of gaps over 60 ms (two or more packets late or lost). A step is
//!   **degraded** when that share exceeds 1 % or the p99 gap exceeds 60 ms.
//!
//! Baseline in the same step: the same gaps measured on the packets the
//! clients *send* (their own 20 ms ticker), i.e. what the box's scheduling
//! alone does to a 20 ms timer. Both ends of every leg run on these two
//! cores (the clients' DTLS-SRTP as much as the server's), so read the
//! agent count as a floor for the server alone.

use crate::Common;
use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use loadtest::report::{Latency, Report, Row, Unit};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ::rtc::media_stream::MediaStreamTrack;
use ::rtc::peer_connection::configuration::media_engine::{MIME_TYPE_PCMU, MediaEngine};
use ::rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
use ::webrtc::media_stream::track_local::TrackLocal;
use ::webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use ::webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use ::webrtc::peer_connection::{PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState, RTCSessionDescription};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Agent counts to step through.
    #[arg(long, value_delimiter = ',', default_value = "10,25,50")]
    agents: Vec<usize>,
    /// Seconds each step runs once the agents are logged in.
    #[arg(long, default_value_t = 20)]
    secs: u64,
    /// How long an agent talks before hanging up.
    #[arg(long, default_value_t = 4000)]
    talk_ms: u64,
}

type Client = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn call(c: &Client, addr: SocketAddr, token: &str, method: hyper::Method, path: &str, body: Option<serde_json::Value>) -> anyhow::Result<(u16, serde_json::Value)> {
    let req = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.map(|b| b.to_string()).unwrap_or_default())))?;
    let res = c.request(req).await?;
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await?.to_bytes();
    Ok((status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null)))
}

struct Handler {
    gathered: tokio::sync::mpsc::Sender<()>,
    gaps: Arc<std::sync::Mutex<Latency>>,
    received: Arc<AtomicU64>,
    late: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
        if s == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let (gaps, received, late) = (self.gaps.clone(), self.received.clone(), self.late.clone());
        tokio::spawn(async move {
            let mut last: Option<Instant> = None;
            while let Some(ev) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(_) = ev else { continue };
                let now = Instant::now();
                received.fetch_add(1, Ordering::Relaxed);
                if let Some(l) = last {
                    let g = now - l;
                    // Longer gaps are the pauses between calls, not audio.
                    if g < Duration::from_secs(1) {
                        if g > Duration::from_millis(60) {
                            late.fetch_add(1, Ordering::Relaxed);
                        }
                        if let Ok(mut h) = gaps.lock() {
                            h.record(g);
                        }
                    }
                }
                last = Some(now);
            }
        });
    }
}

fn pcmu() -> RTCRtpCodec {
    RTCRtpCodec { mime_type: MIME_TYPE_PCMU.to_owned(), clock_rate: 8000, channels: 1, sdp_fmtp_line: String::new(), rtcp_feedback: vec![] }
}

struct AgentOut {
    rx_gaps: Latency,
    tx_gaps: Latency,
    received: u64,
    late: u64,
    calls: u64,
    errors: u64,
}

#[allow(clippy::too_many_arguments)]
async fn agent(http: SocketAddr, token: String, campaign: i64, outcome: i64, talk: Duration, until: Instant, client: Client, seed: u32) -> anyhow::Result<AgentOut> {
    let mut engine = MediaEngine::default();
    engine.register_codec(RTCRtpCodecParameters { rtp_codec: pcmu(), payload_type: 0 }, RtpCodecKind::Audio)?;
    let (tx, mut gathered) = tokio::sync::mpsc::channel(1);
    let gaps = Arc::new(std::sync::Mutex::new(Latency::new()));
    let received = Arc::new(AtomicU64::new(0));
    let late = Arc::new(AtomicU64::new(0));
    let settings = ::rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder::new().with_include_loopback_candidate(true).build();
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(engine)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Handler { gathered: tx, gaps: gaps.clone(), received: received.clone(), late: late.clone() }))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await?;
    let ssrc = 0x1000_0000 + seed;
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("agent{seed}"),
        "mic".into(),
        "mic".into(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters { rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(ssrc), ..Default::default() }, codec: pcmu(), ..Default::default() }],
    )));
    pc.add_track(track.clone() as Arc<dyn TrackLocal>).await?;
    let offer = pc.create_offer(None).await?;
    pc.set_local_description(offer).await?;
    let _ = tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await;
    let offer = pc.local_description().await.context("offer")?.sdp;
    let (st, ans) = call(&client, http, &token, hyper::Method::POST, "/api/console/softphone", Some(serde_json::json!({"sdp": offer}))).await?;
    anyhow::ensure!(st == 200, "softphone: {st} {ans}");
    pc.set_remote_description(RTCSessionDescription::answer(ans["sdp"].as_str().context("sdp")?.to_string())?).await?;
    for _ in 0..100 {
        let (_, now) = call(&client, http, &token, hyper::Method::GET, "/api/console/softphone", None).await?;
        if now["state"] == "connected" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (st, r) = call(&client, http, &token, hyper::Method::POST, &format!("/api/console/campaigns/{campaign}/agent"), Some(serde_json::json!({"action": "login"}))).await?;
    anyhow::ensure!(st == 200, "login: {st} {r}");

    // The microphone: 50 packets/s on a ticker whose own gaps are the baseline.
    let sender = {
        let track = track.clone();
        tokio::spawn(async move {
            let mut tx_gaps = Latency::new();
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            let mut last: Option<Instant> = None;
            let mut seq = 0u16;
            while Instant::now() < until {
                tick.tick().await;
                let now = Instant::now();
                if let Some(l) = last {
                    tx_gaps.record(now - l);
                }
                last = Some(now);
                seq = seq.wrapping_add(1);
                let header = ::rtc::rtp::Header { version: 2, payload_type: 0, sequence_number: seq, timestamp: u32::from(seq).wrapping_mul(160), ssrc, ..Default::default() };
                let _ = track.write_rtp(::rtc::rtp::Packet { header, payload: vec![0x7fu8; 160].into() }).await;
            }
            tx_gaps
        })
    };
    let (mut calls, mut errors) = (0u64, 0u64);
    let mut on: Option<(String, Instant)> = None;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let Ok((_, now)) = call(&client, http, &token, hyper::Method::GET, "/api/console/softphone", None).await else {
            errors += 1;
            continue;
        };
        match (now["call"].as_str(), &on) {
            (Some(c), None) => on = Some((c.to_string(), Instant::now())),
            (Some(_), Some((_, since))) if since.elapsed() >= talk => {
                let _ = call(&client, http, &token, hyper::Method::POST, "/api/console/hangup", None).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let (st, _) = call(&client, http, &token, hyper::Method::POST, &format!("/api/console/campaigns/{campaign}/disposition"), Some(serde_json::json!({"outcome_id": outcome})))
                    .await
                    .unwrap_or((0, serde_json::Value::Null));
                if st == 200 {
                    calls += 1;
                } else {
                    errors += 1;
                }
                on = None;
            }
            (None, Some(_)) => {
                // The carrier or the dialer ended it first: disposition anyway.
                let _ = call(&client, http, &token, hyper::Method::POST, &format!("/api/console/campaigns/{campaign}/disposition"), Some(serde_json::json!({"outcome_id": outcome}))).await;
                calls += 1;
                on = None;
            }
            _ => {}
        }
    }
    let tx_gaps = sender.await.unwrap_or_default();
    let _ = pc.close().await;
    let rx_gaps = gaps.lock().map(|g| g.clone()).unwrap_or_default();
    Ok(AgentOut { rx_gaps, tx_gaps, received: received.load(Ordering::Relaxed), late: late.load(Ordering::Relaxed), calls, errors })
}

fn cpu_ticks() -> u64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

pub async fn run(args: &Args, common: &Common) -> anyhow::Result<Report> {
    let mut report = Report::new("webrtc-agents", "sqlite", serde_json::json!({"agents": args.agents, "secs": args.secs, "talk_ms": args.talk_ms}));
    std::fs::create_dir_all(&common.data_dir).ok();
    let carrier_xml = concat!(env!("CARGO_MANIFEST_DIR"), "/../sip/scenarios/carrier_answer.xml");
    let mut worst_ok = 0usize;
    for (step, &k) in args.agents.iter().enumerate() {
        let dir = tempfile::tempdir_in(&common.data_dir)?;
        let port = 31000 + (step as u16) * 20;
        let mut sipp = std::process::Command::new("sipp")
            .args(["-sf", carrier_xml, "-i", "127.0.0.1", "-p", &port.to_string(), "-mi", "127.0.0.1", "-mp", &(port + 2).to_string(), "-rtp_echo"])
            .args(["-cp", &(port + 1).to_string(), "-m", "1000000", "-buff_size", "4194304", "-nostdin"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting sipp (apt-get install sip-tester)")?;
        let settings = web::RawConfig {
            http: Some("127.0.0.1:0".into()),
            sip: Some("127.0.0.1:0".into()),
            database_url: Some(dir.path().join("agents.db").to_string_lossy().to_string()),
            ..Default::default()
        }
        .resolve()?;
        let store = web::app::open_store(&settings).await?;
        let sys = crm::Actor::system();
        store.install_default_graph(&sys).await?;
        let outcome = store.list_outcomes().await?.into_iter().find(|o| o.name == "Interested").context("outcome")?.id.0;
        let config: crm::dialer_store::DialerConfig = serde_json::from_value(serde_json::json!({
            "name": "webrtc agents", "trunk": format!("127.0.0.1:{port}"), "pacing": "progressive", "ring_timeout_s": 15,
            "window": {"start": "00:00", "end": "23:59"}
        }))?;
        let camp = store.create_dialer_campaign(&sys, config, crm::now_ms()).await?;
        let leads: Vec<_> = (0..k * 40).map(|i| (None, format!("+39 02 7{:07}", i), 0)).collect();
        store.dialer_add_leads(&sys, camp.id, &leads, crm::now_ms()).await?;
        store.set_dialer_running(&sys, camp.id, true, crm::now_ms()).await?;
        let admin_tok = {
            let u = store.create_user(&sys, crm::auth::NewUser { username: "boss".into(), display_name: None, password: "webrtc-agents-bench".into(), role: "admin".into(), team_id: None }).await?;
            store.create_api_token(&store.actor_for(&u).await?, "bench").await?
        };
        let mut tokens = Vec::new();
        for i in 0..k {
            let u = store
                .create_user(&sys, crm::auth::NewUser { username: format!("ag{i}"), display_name: None, password: "webrtc-agents-bench".into(), role: "agent".into(), team_id: None })
                .await?;
            tokens.push(store.create_api_token(&store.actor_for(&u).await?, "bench").await?);
        }
        let app = web::Application::with_store(&settings, store).await?;
        let http = app.local_addr();
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(async move {
            let stop = async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            };
            let _ = app.run_until_stopped(stop).await;
        });
        let client: Client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let ticks0 = cpu_ticks();
        let started = Instant::now();
        let until = started + Duration::from_secs(args.secs) + Duration::from_millis(200 * k as u64);
        let mut tasks = Vec::new();
        for (i, token) in tokens.into_iter().enumerate() {
            let client = client.clone();
            let talk = Duration::from_millis(args.talk_ms);
            tasks.push(tokio::spawn(agent(http, token, camp.id.0, outcome, talk, until, client, i as u32)));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (mut rx, mut txg) = (Latency::new(), Latency::new());
        let (mut received, mut late, mut calls, mut errors, mut failed) = (0u64, 0u64, 0u64, 0u64, 0u64);
        for t in tasks {
            match t.await {
                Ok(Ok(o)) => {
                    rx.merge(&o.rx_gaps);
                    txg.merge(&o.tx_gaps);
                    received += o.received;
                    late += o.late;
                    calls += o.calls;
                    errors += o.errors;
                }
                Ok(Err(e)) => {
                    eprintln!("agent failed: {e:#}");
                    failed += 1;
                }
                Err(_) => failed += 1,
            }
        }
        let elapsed = started.elapsed();
        let cpu = (cpu_ticks().saturating_sub(ticks0)) as f64 / 100.0 / elapsed.as_secs_f64();
        // The dialer's own answer→bridge figures for this campaign.
        let stats = call(&client, http, &admin_tok, hyper::Method::GET, &format!("/api/dialer/campaigns/{}/stats", camp.id.0), None).await.map(|(_, v)| v).unwrap_or_default();
        let _ = stop_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        let _ = sipp.kill();
        let _ = sipp.wait();

        let rx_row = Row::new(format!("{k} agents: echoed RTP inter-arrival at the agents"), &rx, elapsed, failed + errors, Unit::Millis).with_rate(received as f64 / elapsed.as_secs_f64(), "packets received");
        let tx_row = Row::new(format!("{k} agents: baseline, the clients' own 20 ms send ticker"), &txg, elapsed, 0, Unit::Millis);
        let over = if rx.is_empty() { 1.0 } else { late as f64 / rx.len() as f64 };
        let degraded = failed > 0 || rx_row.p99 > 60.0 || over > 0.01 || received == 0;
        if !degraded {
            worst_ok = worst_ok.max(k);
        }
        let live = &stats["live"];
        report.fact(&format!("{k} agents: answer→bridge p50/p99 ms (dialer runtime)"), format!("{} / {}", live["bridge_p50_ms"], live["bridge_p99_ms"]));
        report.fact(&format!("{k} agents: calls bridged / disposed / live answers / abandons"), format!("{} / {} / {} / {}", live["live_answers"].as_u64().unwrap_or(0) - live["abandons"].as_u64().unwrap_or(0), calls, live["live_answers"], live["abandons"]));
        report.fact(&format!("{k} agents: process CPU (server + clients), cores"), format!("{cpu:.2}"));
        report.fact(&format!("{k} agents: share of gaps > 60 ms"), format!("{:.4}", over));
        report.fact(&format!("{k} agents: agents that failed to set up"), failed);
        report.fact(&format!("{k} agents: degraded"), degraded);
        let (rn, tn) = (rx_row.name.clone(), tx_row.name.clone());
        report.row(rx_row);
        report.row(tx_row);
        report.ratio(&rn, &tn);
        let p99 = live["bridge_p99_ms"].as_u64().unwrap_or(u64::MAX);
        report.check(&format!("{k} agents: answer→bridge p99"), "< 300 ms", format!("{p99} ms"), p99 < 300);
    }
    report.fact("most agents with undegraded audio", worst_ok as u64);
    Ok(report)
}
