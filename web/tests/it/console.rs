//! The web console over real HTTP: desk pages check the session, the event
//! socket refuses unauthenticated upgrades, screen-pops are filtered by
//! team scope and role, and the wallboard's chart endpoint answers.

use crate::harness::{Session, TestApp, spawn_sqlite};
use crm::auth::NewTeam;
use crm::{Actor, PhoneNumber};
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a WebSocket upgrade request by hand and returns the status code.
async fn upgrade_status(app: &TestApp, s: &Session) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    let cookie = s.cookie.as_deref().map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{cookie}\r\n",
        app.addr
    );
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 512];
    let n = stream.read(&mut buf).await.expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn websocket_needs_a_session() {
    let app = spawn_sqlite().await;
    assert_eq!(upgrade_status(&app, &Session::default()).await, 401);
    let forged = Session { cookie: Some("centralino_session=not-a-session".into()), ..Default::default() };
    assert_eq!(upgrade_status(&app, &forged).await, 401);
    app.user("rep", "support", None).await;
    let rep = app.login("rep").await;
    assert_eq!(upgrade_status(&app, &rep).await, 101);
}

#[tokio::test]
async fn desk_pages_redirect_to_login_without_a_session() {
    let app = spawn_sqlite().await;
    let r = app.get(&Session::default(), "/console/support").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers.get("location").and_then(|v| v.to_str().ok()), Some("/console/login?next=support"));
    let r = app.get(&Session::default(), "/console/login").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("data-page=\"login\""), "{}", r.text);
    app.user("boss", "supervisor", None).await;
    let boss = app.login("boss").await;
    for desk in web::console::DESKS {
        let r = app.get(&boss, &format!("/console/{desk}")).await;
        assert_eq!(r.status, StatusCode::OK, "{desk}");
        assert!(r.headers.get("content-security-policy").is_some());
    }
    assert_eq!(app.get(&boss, "/console/nope").await.status, StatusCode::NOT_FOUND);
    let r = app.get(&boss, "/console/assets/console.js").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.get(&boss, "/api/console/calls-per-hour").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body.as_array().map(|a| a.len()), Some(24));
    assert_eq!(app.get(&Session::default(), "/api/console/calls-per-hour").await.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn language_follows_accept_language() {
    let h = |v: &str| {
        let mut m = hyper::HeaderMap::new();
        m.insert("accept-language", v.parse().expect("header"));
        m
    };
    assert_eq!(web::console::language(&h("it-IT,it;q=0.9,en;q=0.8")), "it");
    assert_eq!(web::console::language(&h("de-DE,en;q=0.5,it;q=0.3")), "en");
    assert_eq!(web::console::language(&hyper::HeaderMap::new()), "en");
}

#[tokio::test]
async fn screen_pops_are_cut_to_the_reps_team() {
    let app = spawn_sqlite().await;
    let sys = Actor::system();
    let ta = app.store.create_team(&sys, NewTeam { name: "A".into(), parent_id: None, lead_user_id: None }).await.expect("team").id;
    let tb = app.store.create_team(&sys, NewTeam { name: "B".into(), parent_id: None, lead_user_id: None }).await.expect("team").id;
    let a = app.user("rep_a", "support", Some(ta)).await;
    let b = app.user("rep_b", "support", Some(tb)).await;
    app.user("mkt", "marketer", None).await;
    for (owner, name) in [(a, "Owned by A"), (b, "Owned by B")] {
        let p = crm::parties::PartyInput { kind: "person".into(), name: Some(name.into()), owner_id: Some(owner), phones: vec![crm::parties::PhoneInput { number: "+39 347 555 0199".into(), kind: None }], ..Default::default() };
        app.store.create_party(&sys, p).await.expect("party");
    }
    let number = PhoneNumber::parse("+393475550199", app.store.default_region()).expect("number");
    let parties = app.store.lookup_by_phone(&number).await.expect("lookup");
    assert_eq!(parties.len(), 2);
    let pop = web::telephony::ScreenPop { call_id: "c1".into(), caller: "+393475550199".into(), caller_e164: Some(number), callee: "100".into(), parties, at: 0 };
    let rep_a = app.store.authenticate("rep_a", "rep_a-password").await.expect("auth");
    let seen = web::ws::pop_for(&rep_a, &pop).expect("support takes calls");
    assert_eq!(seen.parties.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Owned by A"]);
    let mkt = app.store.authenticate("mkt", "mkt-password").await.expect("auth");
    assert!(web::ws::pop_for(&mkt, &pop).is_none(), "marketers take no calls");
    assert_eq!(web::ws::pop_for(&sys, &pop).map(|p| p.parties.len()), Some(2));
    // The socket's text: one JSON object, the pop's fields after its type.
    let v: serde_json::Value = serde_json::from_str(&web::ws::pop_text(&pop).expect("text")).expect("json");
    assert_eq!((v["type"].as_str(), v["call_id"].as_str(), v["parties"].as_array().map(Vec::len)), (Some("pop"), Some("c1"), Some(2)));
}

/// Desk events reach the agent they concern and supervisors, never another
/// agent; party cards in a card pop are cut to the viewer's team scope.
#[tokio::test]
async fn desk_events_are_cut_per_actor() {
    use web::console::desk::{DeskEvent, event_for};
    let app = spawn_sqlite().await;
    let sys = Actor::system();
    let ta = app.store.create_team(&sys, NewTeam { name: "A".into(), parent_id: None, lead_user_id: None }).await.expect("team").id;
    let tb = app.store.create_team(&sys, NewTeam { name: "B".into(), parent_id: None, lead_user_id: None }).await.expect("team").id;
    let a = app.user("ag_a", "agent", Some(ta)).await;
    let b = app.user("ag_b", "agent", Some(tb)).await;
    app.user("sup", "supervisor", None).await;
    let p = crm::parties::PartyInput { kind: "person".into(), name: Some("Lead of B".into()), owner_id: Some(b), phones: vec![crm::parties::PhoneInput { number: "+39 02 5555 0101".into(), kind: None }], ..Default::default() };
    app.store.create_party(&sys, p).await.expect("party");
    let number = PhoneNumber::parse("+390255550101", app.store.default_region()).expect("number");
    let parties = app.store.lookup_by_phone(&number).await.expect("lookup");
    let to_b = DeskEvent::Connected { user: b.0, campaign: Some(1), call: "c1".into(), number: "+390255550101".into(), parties, at: 0 };
    let state_a = DeskEvent::Agent { user: a.0, username: "ag_a".into(), campaign: 1, state: Some("ready".into()), reason: None, at: 0 };
    let ag_a = app.store.authenticate("ag_a", "ag_a-password").await.expect("auth");
    let ag_b = app.store.authenticate("ag_b", "ag_b-password").await.expect("auth");
    let sup = app.store.authenticate("sup", "sup-password").await.expect("auth");
    assert!(event_for(&ag_a, &to_b).is_none(), "another agent's card pop");
    assert!(event_for(&ag_a, &state_a).is_some(), "one's own state");
    assert!(event_for(&ag_b, &state_a).is_none(), "another agent's state");
    match event_for(&ag_b, &to_b) {
        Some(DeskEvent::Connected { parties, .. }) => assert_eq!(parties.len(), 1),
        other => panic!("agent B gets its pop: {other:?}"),
    }
    assert!(event_for(&sup, &state_a).is_some() && event_for(&sup, &to_b).is_some(), "supervisors see every agent");
    let json = serde_json::to_value(&to_b).expect("json");
    assert_eq!(json["type"], "connected");
}

/// The softphone over HTTP: session required, a bad offer is a field error
/// and opens nothing, and a real WebRTC client (the `webrtc` crate, PCMU
/// only) gets an answer, connects over ICE/DTLS-SRTP on loopback, and its
/// RTP is counted by the server's relay.
/// A webrtc-crate client leg as a browser would open it (PCMU only,
/// loopback host candidates, a microphone track): offers to
/// `/api/console/softphone` as `s`, applies the answer when it is a 200,
/// and returns the connection, its microphone and the console's response.
async fn softphone_client(app: &TestApp, s: &Session) -> (impl ::webrtc::peer_connection::PeerConnection, std::sync::Arc<::webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP>, crate::harness::Resp) {
    use ::rtc::media_stream::MediaStreamTrack;
    use ::rtc::peer_connection::configuration::media_engine::{MIME_TYPE_PCMU, MediaEngine};
    use ::rtc::rtp_transceiver::rtp_sender::{RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind};
    use ::webrtc::media_stream::track_local::TrackLocal;
    use ::webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
    use ::webrtc::peer_connection::{PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState, RTCSessionDescription};
    use std::sync::Arc;
    use std::time::Duration;

    struct Gathered(tokio::sync::mpsc::Sender<()>);
    #[async_trait::async_trait]
    impl PeerConnectionEventHandler for Gathered {
        async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
            if s == RTCIceGatheringState::Complete {
                let _ = self.0.try_send(());
            }
        }
    }

    let pcmu = RTCRtpCodec { mime_type: MIME_TYPE_PCMU.to_owned(), clock_rate: 8000, channels: 1, sdp_fmtp_line: String::new(), rtcp_feedback: vec![] };
    let mut engine = MediaEngine::default();
    engine.register_codec(RTCRtpCodecParameters { rtp_codec: pcmu.clone(), payload_type: 0 }, RtpCodecKind::Audio).expect("codec");
    let (tx, mut gathered) = tokio::sync::mpsc::channel(1);
    let settings = ::rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder::new().with_include_loopback_candidate(true).build();
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(engine)
        .with_setting_engine(settings)
        .with_handler(Arc::new(Gathered(tx)))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .expect("client pc");
    let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "client".into(),
        "mic".into(),
        "mic".into(),
        RtpCodecKind::Audio,
        vec![RTCRtpEncodingParameters { rtp_coding_parameters: RTCRtpCodingParameters { ssrc: Some(0x1234_5678), ..Default::default() }, codec: pcmu, ..Default::default() }],
    )));
    pc.add_track(track.clone() as Arc<dyn TrackLocal>).await.expect("track");
    let offer = pc.create_offer(None).await.expect("offer");
    pc.set_local_description(offer).await.expect("local");
    let _ = tokio::time::timeout(Duration::from_secs(5), gathered.recv()).await;
    let offer = pc.local_description().await.expect("offer sdp").sdp;
    let r = app.post(s, "/api/console/softphone", serde_json::json!({"sdp": offer})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    pc.set_remote_description(RTCSessionDescription::answer(r.body["sdp"].as_str().expect("sdp").to_string()).expect("answer")).await.expect("remote");
    (pc, track, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softphone_leg_from_a_webrtc_client() {
    use ::webrtc::media_stream::track_local::TrackLocal;
    use ::webrtc::peer_connection::PeerConnection;
    use std::time::Duration;

    let app = spawn_sqlite().await;
    assert!(app.sip.is_some(), "the harness runs SIP");
    app.user("ag", "agent", None).await;
    let s = app.login("ag").await;
    assert_eq!(app.post(&Session::default(), "/api/console/softphone", serde_json::json!({"sdp": "v=0"})).await.status, StatusCode::UNAUTHORIZED);
    let bad = app.post(&s, "/api/console/softphone", serde_json::json!({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"})).await;
    assert_eq!(bad.problem(422), ["sdp"]);
    assert_eq!(app.get(&s, "/api/console/softphone").await.status, StatusCode::NOT_FOUND, "a bad offer opens nothing");
    app.user("mk", "marketer", None).await;
    let mk = app.login("mk").await;
    assert_eq!(app.post(&mk, "/api/console/softphone", serde_json::json!({"sdp": "v=0"})).await.status, StatusCode::FORBIDDEN, "marketers take no calls");
    assert_eq!(app.post(&s, "/api/console/dtmf", serde_json::json!({"digits": "1x"})).await.problem(422), ["digits"]);
    assert_eq!(app.post(&s, "/api/console/dtmf", serde_json::json!({"digits": "1"})).await.status, StatusCode::CONFLICT, "no call");
    assert_eq!(app.post(&s, "/api/console/hold", serde_json::json!({"hold": true})).await.status, StatusCode::CONFLICT, "no call");
    let no_phone = app.post(&s, "/api/console/campaigns/1/agent", serde_json::json!({"action": "login"})).await;
    assert_eq!(no_phone.status, StatusCode::CONFLICT, "{}", no_phone.text);

    let (pc, track, r) = softphone_client(&app, &s).await;
    let answer = r.body["sdp"].as_str().expect("answer").to_string();
    assert!(answer.contains("PCMU/8000") && !answer.to_lowercase().contains("telephone-event"), "{answer}");
    let leg = r.body["leg"].as_str().expect("leg").to_string();

    let mut seq = 0u16;
    let mut now = serde_json::Value::Null;
    for _ in 0..250 {
        seq = seq.wrapping_add(1);
        let header = ::rtc::rtp::Header { version: 2, payload_type: 0, sequence_number: seq, timestamp: u32::from(seq) * 160, ssrc: 0x1234_5678, ..Default::default() };
        let _ = track.write_rtp(::rtc::rtp::Packet { header, payload: vec![0xffu8; 160].into() }).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if seq.is_multiple_of(10) {
            now = app.get(&s, "/api/console/softphone").await.body;
            if now["from_browser"].as_u64().unwrap_or(0) >= 10 {
                break;
            }
        }
    }
    assert_eq!(now["leg"], leg);
    assert_eq!(now["state"], "connected", "{now}");
    assert!(now["from_browser"].as_u64().unwrap_or(0) >= 10, "the relay counts the client's RTP: {now}");
    // An idle leg (no calls, no audio) stays up on ICE keepalives alone,
    // longer than the disconnect + fail timeouts (4 + 8 s).
    tokio::time::sleep(Duration::from_secs(14)).await;
    let idle = app.get(&s, "/api/console/softphone").await;
    assert_eq!(idle.body["state"], "connected", "{}", idle.text);
    // The browser leaving (ICE consent stops) ends the leg: the dialer must not
    // bridge customers to a dead leg.
    let _ = pc.close().await;
    let mut gone = false;
    for _ in 0..250 {
        if app.get(&s, "/api/console/softphone").await.status == StatusCode::NOT_FOUND {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the leg ends when the client closes its peer connection");
    assert_eq!(app.call(&s, hyper::Method::DELETE, "/api/console/softphone", None).await.status, StatusCode::NO_CONTENT, "closing twice is harmless");
}

#[test]
fn dtmf_keys_become_tones() {
    use web::console::desk::dtmf_tones;
    assert_eq!(dtmf_tones("12#").map(|s| s.len()), Some(3 * 1440), "120 ms tone + 60 ms gap per key at 8 kHz");
    assert!(dtmf_tones("1x").is_none() && dtmf_tones("").is_none());
    let five = dtmf_tones("5").expect("5");
    // 770 Hz + 1336 Hz: energy, then silence.
    assert!(five[..960].iter().any(|s| s.unsigned_abs() > 8000));
    assert!(five[960..].iter().all(|s| *s == 0));
}

/// A sipp process killed when dropped.
struct Sipp(std::process::Child);
impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Click-to-call: an agent logged in to a campaign with a WebRTC softphone
/// leg dials a number; the carrier (sipp) gets the INVITE for that number,
/// answers, and the call is bridged to the agent's leg (the softphone
/// reports the call and its SIP-side RTP; the agent is paused on the dialer
/// meanwhile). A bad number is a 422 on `number` and dials nothing; a second
/// click while on the call is a 409.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_bridges_the_agent_leg() {
    use ::webrtc::media_stream::track_local::TrackLocal;
    use ::webrtc::peer_connection::PeerConnection;
    use std::time::Duration;
    let has_sipp = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sipp").is_file()));
    if !has_sipp {
        assert!(std::env::var("CENTRALINO_REQUIRE_PEERS").as_deref() != Ok("1"), "sipp is not on PATH but CENTRALINO_REQUIRE_PEERS=1");
        eprintln!("note: sipp not on PATH, skipping click-to-call");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let carrier_xml = concat!(env!("CARGO_MANIFEST_DIR"), "/../sip/scenarios/carrier_answer.xml");
    let _carrier = Sipp(
        std::process::Command::new("sipp")
            .args(["-sf", carrier_xml, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", "36820", "-ci", "127.0.0.1", "-cp", "38821", "-p", "35821", "-m", "1", "-rtp_echo", "-trace_msg", "-nostdin"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn sipp"),
    );

    let app = spawn_sqlite().await;
    assert!(app.sip.is_some(), "the harness runs SIP");
    app.user("boss", "admin", None).await;
    let boss = app.login("boss").await;
    let c = app
        .post(&boss, "/api/dialer/campaigns", serde_json::json!({"name": "Manual", "trunk": "127.0.0.1:35821", "caller_id": "+390200000001", "pacing": "progressive", "window": {"start": "00:00", "end": "23:59"}}))
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let id = c.body["id"].as_i64().expect("id");
    assert_eq!(app.post(&boss, &format!("/api/dialer/campaigns/{id}/start"), serde_json::json!({})).await.body["live"], true);
    app.user("ag", "agent", None).await;
    let s = app.login("ag").await;
    assert_eq!(app.post(&s, "/api/console/dial", serde_json::json!({"number": "+39 011 555 0123"})).await.status, StatusCode::CONFLICT, "no softphone yet");

    let (pc, track, _) = softphone_client(&app, &s).await;
    // The client keeps talking for the rest of the test.
    let talker = tokio::spawn(async move {
        let mut seq = 0u16;
        loop {
            seq = seq.wrapping_add(1);
            let header = ::rtc::rtp::Header { version: 2, payload_type: 0, sequence_number: seq, timestamp: u32::from(seq) * 160, ssrc: 0x1234_5678, ..Default::default() };
            let _ = track.write_rtp(::rtc::rtp::Packet { header, payload: vec![0xffu8; 160].into() }).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let login = app.post(&s, &format!("/api/console/campaigns/{id}/agent"), serde_json::json!({"action": "login"})).await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.text);

    for bad in ["12ab", "", "+39"] {
        assert_eq!(app.post(&s, "/api/console/dial", serde_json::json!({"number": bad})).await.problem(422), ["number"], "{bad:?}");
    }
    let r = app.post(&s, "/api/console/dial", serde_json::json!({"number": "+39 011 555 0123"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["number"], "+390115550123");
    let call = r.body["call"].as_str().expect("call").to_string();
    let state = app.post(&s, &format!("/api/console/campaigns/{id}/agent"), serde_json::json!({"action": "state"})).await;
    assert_eq!(state.body["state"], "paused", "the dialer sends no customer meanwhile: {}", state.text);
    let mut now = serde_json::Value::Null;
    for _ in 0..100 {
        now = app.get(&s, "/api/console/softphone").await.body;
        if now["call_rtp"]["received"].as_u64().unwrap_or(0) >= 10 && now["call_rtp"]["sent"].as_u64().unwrap_or(0) >= 10 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(now["call"], call.as_str(), "the agent's leg is bridged to the call: {now}");
    assert!(now["call_rtp"]["sent"].as_u64().unwrap_or(0) >= 10 && now["call_rtp"]["received"].as_u64().unwrap_or(0) >= 10, "audio flows on the carrier leg: {now}");
    assert_eq!(app.post(&s, "/api/console/dial", serde_json::json!({"number": "+39 011 555 0124"})).await.status, StatusCode::CONFLICT, "already on a call");
    assert_eq!(app.post(&s, "/api/console/hangup", serde_json::json!({})).await.status, StatusCode::NO_CONTENT);
    talker.abort();
    let _ = pc.close().await;
    // The carrier saw one INVITE, for that number.
    let mut log = String::new();
    for _ in 0..50 {
        if let Some(f) = std::fs::read_dir(dir.path()).expect("dir").flatten().find(|e| e.file_name().to_string_lossy().ends_with("_messages.log")) {
            log = std::fs::read_to_string(f.path()).unwrap_or_default();
            if log.contains("BYE sip:") {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let invites: Vec<&str> = log.lines().filter(|l| l.starts_with("INVITE sip:")).collect();
    assert_eq!(invites.len(), 1, "{log}");
    assert!(invites[0].starts_with("INVITE sip:+390115550123@"), "{}", invites[0]);
}
