//! `loadtest screen-pop`: CTI screen-pop latency. Starts `web::Application`
//! in-process with SIP on loopback (trunk 127.0.0.1, so calls need no
//! digest) and a SQLite database of generated parties, connects N agents'
//! event sockets (`/ws`, one support user and bearer token each), then
//! places calls to a DID from a plain UDP SIP client: each INVITE's caller
//! is a party's number. For every call and every socket we measure from the
//! moment the INVITE is sent (on loopback: its arrival) to the moment the
//! socket has the `pop` message with that Call-ID and its party card — the
//! whole path: SIP parse, E.164 normalisation, the CRM lookup, the
//! broadcast, the per-socket scope filter, JSON and the WebSocket frame.
//!
//! Baseline, in the same run and on the same sockets: a WebSocket
//! ping→pong round trip (what the socket alone costs), interleaved with
//! the calls. Calls are released by the server after its ring limit (1 s);
//! the client ACKs the 480.

use crate::Common;
use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use loadtest::report::{Latency, Report, Row, Unit};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Agents' sockets connected during the run.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// Calls placed (each pops on every socket).
    #[arg(long, default_value_t = 300)]
    calls: usize,
    /// Calls per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Parties in the database (each with one number).
    #[arg(long, default_value_t = 5_000)]
    parties: usize,
}

type Sent = Arc<Mutex<HashMap<String, Instant>>>;

fn number(i: usize) -> String {
    format!("+39025{:07}", i)
}

pub async fn run(args: &Args, common: &Common) -> anyhow::Result<Report> {
    std::fs::create_dir_all(&common.data_dir).ok();
    let dir = tempfile::tempdir_in(&common.data_dir).context("scratch dir")?;
    let db = dir.path().join("screenpop.db");
    let settings = web::RawConfig {
        http: Some("127.0.0.1:0".into()),
        sip: Some("127.0.0.1:0".into()),
        database_url: Some(db.to_string_lossy().to_string()),
        inbound_ring_secs: Some(1),
        trunks: vec!["127.0.0.1".into()],
        ..Default::default()
    }
    .resolve()
    .context("settings")?;
    let store = web::app::open_store(&settings).await?;
    let sys = crm::Actor::system();
    let t_fill = Instant::now();
    for i in 0..args.parties {
        let p = crm::parties::PartyInput {
            kind: "person".into(),
            name: Some(format!("Party {i}")),
            phones: vec![crm::parties::PhoneInput { number: number(i), kind: None }],
            ..Default::default()
        };
        store.create_party(&sys, p).await.context("party")?;
    }
    let mut tokens = Vec::with_capacity(args.agents);
    for i in 0..args.agents {
        let u = store
            .create_user(&sys, crm::auth::NewUser { username: format!("rep{i}"), display_name: None, password: "screen-pop-bench-pw".into(), role: "support".into(), team_id: None })
            .await
            .context("user")?;
        let actor = store.actor_for(&u).await?;
        tokens.push(store.create_api_token(&actor, "screen-pop").await?);
    }
    let fill_s = t_fill.elapsed().as_secs_f64();
    let app = web::Application::with_store(&settings, store).await.context("application")?;
    let http = app.local_addr();
    let sip = app.sip_addr().context("SIP is on")?;
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        let stop = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        if let Err(e) = app.run_until_stopped(stop).await {
            eprintln!("server: {e:#}");
        }
    });

    // The agents' sockets: each records pop latencies and ping round trips.
    let sent: Sent = Arc::default();
    let mut sockets = Vec::with_capacity(args.agents);
    for token in &tokens {
        let mut req = format!("ws://{http}/ws").into_client_request()?;
        req.headers_mut().insert("authorization", format!("Bearer {token}").parse()?);
        let (ws, _) = tokio_tungstenite::connect_async(req).await.context("websocket")?;
        sockets.push(ws);
    }
    let (done_tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut agents = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let sent = sent.clone();
        let mut done = done_tx.subscribe();
        // A quarter of the sockets also measure the ping baseline, spread out.
        let pings = i % 4 == 0;
        agents.push(tokio::spawn(async move {
            let (mut tx, mut rx) = ws.split();
            let mut pops = Latency::new();
            let mut rtt = Latency::new();
            let mut bad = 0u64;
            let mut ping_at: Option<Instant> = None;
            let mut tick = tokio::time::interval(Duration::from_millis(97 + i as u64));
            loop {
                tokio::select! {
                    m = rx.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            let at = Instant::now();
                            let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) else { bad += 1; continue };
                            if v["type"] != "pop" { continue }
                            let t0 = v["call_id"].as_str().and_then(|c| sent.lock().ok()?.get(c).copied());
                            match (t0, v["parties"].as_array().map(|a| a.len())) {
                                (Some(t0), Some(1)) => pops.record(at - t0),
                                _ => bad += 1,
                            }
                        }
                        Some(Ok(Message::Pong(_))) => {
                            if let Some(t) = ping_at.take() { rtt.record(t.elapsed()); }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    _ = tick.tick(), if pings && ping_at.is_none() => {
                        ping_at = Some(Instant::now());
                        if tx.send(Message::Ping(Vec::new().into())).await.is_err() { break }
                    }
                    _ = done.recv() => break,
                }
            }
            (pops, rtt, bad)
        }));
    }

    // The SIP client: INVITEs at `rate`, ACKs for the final responses.
    let udp = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
    let local = udp.local_addr()?;
    let acker = {
        let udp = udp.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut finals = 0usize;
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf).await else { break };
                let text = String::from_utf8_lossy(&buf[..n]).to_string();
                let code: u16 = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
                if code >= 300 {
                    finals += 1;
                    if let Some(ack) = ack_for(&text, local, from) {
                        let _ = udp.send_to(ack.as_bytes(), from).await;
                    }
                }
            }
            finals
        })
    };
    let gap = Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1)));
    // Let every socket finish its handshake before the first call.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    for c in 0..args.calls {
        let call_id = format!("sp{c}-{:08x}@loadtest", rand::random::<u32>());
        let inv = invite(&call_id, c, &number(c * 7919 % args.parties), local, sip);
        if let Ok(mut m) = sent.lock() {
            m.insert(call_id.clone(), Instant::now());
        }
        udp.send_to(inv.as_bytes(), sip).await?;
        let next = start + gap * (c as u32 + 1);
        tokio::time::sleep_until(next.into()).await;
    }
    let elapsed = start.elapsed();
    // The last pops, then the releases (ring limit 1 s) and their ACKs.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = done_tx.send(());
    let (mut pops, mut rtt, mut bad) = (Latency::new(), Latency::new(), 0u64);
    for a in agents {
        let (p, r, b) = a.await?;
        pops.merge(&p);
        rtt.merge(&r);
        bad += b;
    }
    acker.abort();
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;

    let expected = (args.calls * args.agents) as u64;
    let missing = expected.saturating_sub(pops.len());
    let mut report = Report::new("screen-pop", "sqlite", serde_json::json!({"agents": args.agents, "calls": args.calls, "rate": args.rate, "parties": args.parties}));
    let pop_name = format!("INVITE sent → pop with the card on the socket ({} sockets)", args.agents);
    report.row(Row::new(&pop_name, &pops, elapsed, missing + bad, Unit::Millis).with_rate(pops.len() as f64 / elapsed.as_secs_f64(), "pops delivered"));
    report.row(Row::new("baseline: WebSocket ping → pong", &rtt, elapsed, 0, Unit::Millis));
    report.ratio(&pop_name, "baseline: WebSocket ping → pong");
    let p99 = if pops.is_empty() { f64::NAN } else { report.rows[0].p99 };
    report.check("screen-pop p99", "< 100 ms", format!("{p99:.1} ms"), p99 < 100.0 && missing == 0);
    report.fact("pops expected", expected);
    report.fact("pops missing or wrong", missing + bad);
    report.fact("set-up (parties, users, tokens) s", fill_s);
    Ok(report)
}

fn invite(call_id: &str, c: usize, caller: &str, local: SocketAddr, sip: SocketAddr) -> String {
    let sdp = format!("v=0\r\no=caller 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", ip = local.ip(), port = 40000 + (c % 10000) * 2);
    format!(
        "INVITE sip:0612345678@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-sp{c}\r\nFrom: \"Customer\" <sip:{caller}@{ip}>;tag=sp{c}\r\nTo: <sip:0612345678@{sip}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:caller@{local}>\r\nMax-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len}\r\n\r\n{sdp}",
        ip = local.ip(),
        len = sdp.len()
    )
}

/// The ACK for a non-2xx final response (same branch as the INVITE).
fn ack_for(resp: &str, local: SocketAddr, to: SocketAddr) -> Option<String> {
    let header = |name: &str| resp.lines().find(|l| l.to_ascii_lowercase().starts_with(&format!("{}:", name.to_ascii_lowercase()))).map(str::to_string);
    let via = header("Via")?;
    let branch = via.split("branch=").nth(1)?.split(';').next()?.trim().to_string();
    let (from, to_h, cid) = (header("From")?, header("To")?, header("Call-ID")?);
    Some(format!(
        "ACK sip:0612345678@{to} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch={branch}\r\n{from}\r\n{to_h}\r\n{cid}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    ))
}
