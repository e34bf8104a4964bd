//! The dialer API: campaign validation with field errors, CRUD, leads from
//! lists, DNC import, start/stop and stats, agent commands refused when the
//! campaign runs on no node here, and the OpenAPI entries; preview cards
//! over HTTP; a live campaign through sipp with outcomes through the CRM
//! graph; kill -9 of `centralino serve` mid-campaign and restart; two
//! `centralino` processes claiming from one PostgreSQL hopper.

use crate::harness::each_app;
use hyper::StatusCode;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn dialer_campaigns_over_http() {
    each_app(|app| async move {
        app.user("boss", "admin", None).await;
        let s = app.login("boss").await;
        let bad = app
            .post(&s, "/api/dialer/campaigns", json!({"name": "x", "trunk": "", "ratio": 0.5, "abandon_target": 2.0, "window": {"start": "10:00", "end": "09:00"}}))
            .await;
        let fields = bad.problem(422);
        for f in ["trunk", "ratio", "abandon_target", "window"] {
            assert!(fields.iter().any(|x| x == f), "{f} missing: {}", bad.text);
        }
        let p = app.post(&s, "/api/parties", json!({"kind": "person", "name": "Ada", "phones": [{"number": "+39 02 1234 5678"}]})).await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
        let pid = p.body["id"].as_i64().unwrap();
        let l = app.post(&s, "/api/lists", json!({"name": "L", "kind": "static", "party_ids": [pid]})).await;
        assert_eq!(l.status, StatusCode::CREATED, "{}", l.text);
        let c = app
            .post(&s, "/api/dialer/campaigns", json!({"name": "Spring", "trunk": "127.0.0.1:5070", "pacing": "predictive", "list_ids": [l.body["id"]]}))
            .await;
        assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
        assert_eq!(c.body["config"]["abandon_target"], 0.03);
        let id = c.body["id"].as_i64().unwrap();
        let load = app.post(&s, &format!("/api/dialer/campaigns/{id}/load"), json!({})).await;
        assert_eq!(load.body["added"], 1, "{}", load.text);
        let dnc = app.post(&s, "/api/dialer/dnc", json!({"numbers": ["+39 02 1234 9999"]})).await;
        assert_eq!(dnc.body["added"], 1, "{}", dnc.text);
        app.post(&s, "/api/dialer/dnc", json!({"numbers": ["nope"]})).await.problem(422);
        let leads = app.get(&s, &format!("/api/dialer/campaigns/{id}/leads")).await;
        assert_eq!(leads.body[0]["e164"], "+390212345678", "{}", leads.text);
        let st = app.post(&s, &format!("/api/dialer/campaigns/{id}/start"), json!({})).await;
        assert_eq!(st.body["running"], true, "{}", st.text);
        // No line source in this app: the agent commands have no task to reach.
        if st.body["live"] == false {
            app.post(&s, &format!("/api/dialer/campaigns/{id}/agent"), json!({"action": "login", "leg": "x"})).await.problem(409);
        }
        let stats = app.get(&s, &format!("/api/dialer/campaigns/{id}/stats")).await;
        assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
        assert_eq!(stats.body["store"]["abandons"], 0);
        app.post(&s, &format!("/api/dialer/campaigns/{id}/stop"), json!({})).await;
        let got = app.get(&s, &format!("/api/dialer/campaigns/{id}")).await;
        assert_eq!(got.body["running"], false, "{}", got.text);
        let doc = app.get(&s, "/api/openapi.json").await;
        assert!(doc.text.contains("/api/dialer/campaigns/{id}/disposition"));
    })
    .await;
}

struct Proc(std::process::Child);
impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sipp(args: &[&str], dir: &std::path::Path) -> Proc {
    use std::process::{Command, Stdio};
    let child = Command::new("sipp").args(args).arg("-nostdin").current_dir(dir).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn sipp");
    Proc(child)
}

fn sipp_available() -> bool {
    let found = std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("sipp").is_file()));
    if !found {
        assert!(std::env::var("CENTRALINO_REQUIRE_PEERS").as_deref() != Ok("1"), "sipp is not on PATH but CENTRALINO_REQUIRE_PEERS=1");
        eprintln!("note: sipp not on PATH, skipping the live dialer test");
    }
    found
}

/// A live campaign: 100 leads dialed through sipp as a carrier (random
/// answer/busy/no answer), three agents on nailed-up legs (sipp calling
/// in, answered at login), dispositions posted through the API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_campaign_through_sipp() {
    if !sipp_available() {
        return;
    }
    let app = crate::harness::spawn_sqlite().await;
    let sip = app.sip.expect("sip on");
    let dir = tempfile::tempdir().unwrap();
    let scenarios = concat!(env!("CARGO_MANIFEST_DIR"), "/../sip/scenarios/carrier_random.xml");
    let _carrier = sipp(&["-sf", scenarios, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", "36400", "-ci", "127.0.0.1", "-cp", "38401", "-p", "35401", "-m", "1000", "-buff_size", "4194304"], dir.path());
    app.user("boss", "admin", None).await;
    let s = app.login("boss").await;
    let recordings = dir.path().join("rec");
    let c = app
        .post(&s, "/api/dialer/campaigns", json!({"name": "Live", "trunk": "127.0.0.1:35401", "pacing": "power", "ratio": 2.0, "ring_timeout_s": 15,
            "window": {"start": "00:00", "end": "23:59"}, "recordings_dir": recordings.to_string_lossy()}))
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let id = c.body["id"].as_i64().unwrap();
    // Every lead is a party, so dispositions reach the CRM outcome graph.
    let sys = crm::Actor::system();
    app.store.install_default_graph(&sys).await.unwrap();
    let sale = app.store.ensure_outcome(&sys, "Sale").await.unwrap();
    let bogus = app.store.ensure_outcome(&sys, "Not for calls").await.unwrap();
    let customer = app.store.ensure_commercial_state(&sys, "Customer").await.unwrap();
    let mut leads = Vec::new();
    for i in 0..101 {
        let number = format!("+39 02 1234 {:04}", 6000 + i);
        let input = crm::parties::PartyInput {
            kind: "person".into(),
            name: Some(format!("Lead {i}")),
            phones: vec![crm::parties::PhoneInput { number: number.clone(), kind: None }],
            ..Default::default()
        };
        let p = app.store.create_party(&sys, input).await.unwrap().id;
        leads.push((Some(p), number, 0));
    }
    app.store.dialer_add_leads(&crm::Actor::system(), crm::dialer_store::DialerCampaignId(id), &leads, crm::now_ms()).await.unwrap();
    app.post(&s, "/api/dialer/dnc", json!({"numbers": ["+39 02 1234 6100"]})).await;
    let st = app.post(&s, &format!("/api/dialer/campaigns/{id}/start"), json!({})).await;
    assert_eq!(st.body["live"], true, "{}", st.text);

    // Three agents call in; each leg is answered at login and stays up.
    let mut pops = app.pops.lock().unwrap().take().expect("pops");
    let target = sip.to_string();
    let mut agents = Vec::new();
    let mut ids = Vec::new();
    for i in 0..3u16 {
        let port = (35410 + i).to_string();
        let cport = (38410 + i).to_string();
        let mport = (36410 + 10 * i).to_string();
        let leg_xml = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/agent_leg.xml");
        agents.push(sipp(&["-sf", leg_xml, &target, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", &mport, "-ci", "127.0.0.1", "-cp", &cport, "-p", &port, "-s", "agent", "-m", "1", "-cid_str", &format!("live-leg-{i}")], dir.path()));
        let pop = tokio::time::timeout(Duration::from_secs(10), pops.recv()).await.expect("agent leg arrives").unwrap();
        let name = format!("ag{i}");
        let uid = app.user(&name, "admin", None).await;
        let r = app.post(&s, &format!("/api/dialer/campaigns/{id}/agent"), json!({"action": "login", "leg": pop.call_id, "agent_id": uid})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        ids.push(uid);
    }
    let started = std::time::Instant::now();
    let mut disposed = 0;
    let mut refused = 0;
    loop {
        for uid in &ids {
            let url = format!("/api/dialer/campaigns/{id}/disposition");
            // An outcome the graph does not allow for a call: refused, nothing changes.
            let bad = app.post(&s, &url, json!({"final": true, "agent_id": uid, "outcome_id": bogus})).await;
            if bad.status == StatusCode::CONFLICT {
                continue;
            }
            assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
            refused += 1;
            let r = app.post(&s, &url, json!({"final": true, "agent_id": uid, "outcome_id": sale, "notes": "bought"})).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text);
            assert_eq!(r.body["points"], 10, "{}", r.text);
            assert_eq!(r.body["commercial_state_id"], customer.0, "{}", r.text);
            disposed += 1;
        }
        let rows = app.store.dialer_leads(crm::dialer_store::DialerCampaignId(id)).await.unwrap();
        let open = rows.iter().filter(|l| l.state == "in_flight" || (l.state == "ready" && l.attempts == 0)).count();
        if open == 0 || started.elapsed() > Duration::from_secs(100) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stats = app.get(&s, &format!("/api/dialer/campaigns/{id}/stats")).await;
    eprintln!("live dialer: {disposed} dispositions in {:?}; {}", started.elapsed(), stats.text);
    let rows = app.store.dialer_leads(crm::dialer_store::DialerCampaignId(id)).await.unwrap();
    for l in &rows {
        let got = (l.state.as_str(), l.last_result.as_deref().unwrap_or(""));
        if l.e164.as_deref() == Some("+390212346100") {
            assert_eq!(got, ("dnc", ""), "DNC never dialed");
            assert_eq!(l.attempts, 0);
            continue;
        }
        let ok = matches!(got, ("done", "disposed") | ("ready", "busy") | ("ready", "no_answer") | ("ready", "abandoned"));
        assert!(ok, "{:?}: {got:?}", l.e164);
        assert_eq!(l.attempts, 1, "{:?} dialed {} times (retries are minutes away)", l.e164, l.attempts);
    }
    let store_ab = stats.body["store"]["abandons"].as_i64().unwrap();
    assert_eq!(Some(store_ab), stats.body["live"]["abandons"].as_i64(), "booked abandons == calls that had no agent");
    assert_eq!(disposed as i64, rows.iter().filter(|l| l.state == "done").count() as i64);
    assert_eq!(refused, disposed, "each refused outcome left the call to be disposed");
    // Each disposed call: its party is a customer, its attempt (the call
    // record) names the agent, the outcome, the completed activity and a
    // recording of the conversation.
    let attempts = app.get(&s, &format!("/api/dialer/campaigns/{id}/attempts")).await;
    let attempts = attempts.body.as_array().unwrap().clone();
    let done: Vec<_> = attempts.iter().filter(|a| a["result"] == "disposed").collect();
    assert_eq!(done.len(), disposed);
    let mut with_audio = 0;
    for a in &done {
        assert_eq!(a["outcome_id"], sale.0);
        assert!(a["agent_id"].is_i64() && a["activity_id"].is_i64() && a["bridged_at"].is_i64(), "{a}");
        let rec = a["recording"].as_str().expect("recorded");
        assert!(std::path::Path::new(rec).starts_with(&recordings), "{rec}");
        let len = std::fs::metadata(rec).map(|m| m.len()).unwrap_or_else(|e| panic!("{rec}: {e}"));
        // A callee who hangs up as the bridge is made leaves a header only.
        with_audio += usize::from(len > 44);
    }
    assert!(with_audio * 2 >= done.len(), "{with_audio} of {} recordings hold audio", done.len());
    for l in rows.iter().filter(|l| l.state == "done") {
        let p = app.store.get_party(&sys, l.party_id.unwrap()).await.unwrap();
        assert_eq!(p.commercial_state_id, Some(customer));
    }
    let board = app.store.leaderboard(&sys, 0, crm::now_ms() + 1).await.unwrap();
    let points: i64 = board.iter().map(|b| b.points).sum();
    assert_eq!(points, 10 * disposed as i64, "Sale is worth 10 points to the agent");
    // The rolling-window stats agree with the records.
    let w = &stats.body["window"];
    assert_eq!(w["abandons_30d"].as_i64(), Some(store_ab), "{}", stats.text);
    assert!(w["bridged_30d"].as_i64().unwrap() >= disposed as i64, "{}", stats.text);
    assert!(w["bridge_p99_ms"].as_i64().unwrap() >= w["bridge_p50_ms"].as_i64().unwrap());
    assert!(w["worst_24h_tsr"].as_f64().unwrap() >= w["tsr_30d"].as_f64().unwrap());
    app.post(&s, &format!("/api/dialer/campaigns/{id}/stop"), json!({})).await;
    assert_attempts_sound(&app.store, crm::dialer_store::DialerCampaignId(id)).await;
}

/// A tiny HTTP client with a console session, for a server in a child process.
struct Http {
    addr: String,
    cookie: String,
    csrf: String,
    client: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, http_body_util::Full<hyper::body::Bytes>>,
}

impl Http {
    async fn req(&self, method: hyper::Method, path: &str, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
        use http_body_util::BodyExt;
        let req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path))
            .header("content-type", "application/json")
            .header("cookie", &self.cookie)
            .header("x-csrf-token", &self.csrf)
            .body(http_body_util::Full::new(hyper::body::Bytes::from(body.to_string())))
            .unwrap();
        match self.client.request(req).await {
            Ok(res) => {
                let status = res.status();
                let cookies: Vec<String> = res.headers().get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).map(|s| s.split(';').next().unwrap_or("").to_string()).collect();
                let bytes = res.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
                let v = if cookies.is_empty() { v } else { json!({"body": v, "cookie": cookies.join("; ")}) };
                (status, v)
            }
            Err(_) => (StatusCode::SERVICE_UNAVAILABLE, serde_json::Value::Null),
        }
    }

    async fn connect(addr: &str) -> Http {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        let mut h = Http { addr: addr.to_string(), cookie: String::new(), csrf: String::new(), client };
        let until = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let (st, v) = h.req(hyper::Method::POST, "/api/auth/login", json!({"username": "boss", "password": "boss-password"})).await;
            if st == StatusCode::OK {
                h.cookie = v["cookie"].as_str().unwrap_or("").to_string();
                h.csrf = v["body"]["csrf_token"].as_str().unwrap_or("").to_string();
                return h;
            }
            assert!(std::time::Instant::now() < until, "server did not come up");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Agents on legs into a server in a child process; dispositions for `run`.
async fn agents_work(h: &Http, id: i64, sip: &str, dir: &std::path::Path, round: u16, ids: &[crm::UserId], run: Duration, stop_when_done: Option<&crm::Store>) -> (Vec<Proc>, usize) {
    let leg_xml = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/agent_leg.xml");
    let mut legs = Vec::new();
    for (i, uid) in ids.iter().enumerate() {
        let n = round * 10 + i as u16;
        let (port, cport, mport) = ((35460 + n).to_string(), (38460 + n).to_string(), (36500 + 10 * n).to_string());
        let leg = format!("crash-leg-{round}-{i}");
        legs.push(sipp(&["-sf", leg_xml, sip, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", &mport, "-ci", "127.0.0.1", "-cp", &cport, "-p", &port, "-s", "agent", "-m", "1", "-cid_str", &leg], dir));
        // Generous: on a loaded CI box the restarted node may still be
        // ending the calls the kill left up before its campaigns run.
        let until = std::time::Instant::now() + Duration::from_secs(40);
        loop {
            let (st, _) = h.req(hyper::Method::POST, &format!("/api/dialer/campaigns/{id}/agent"), json!({"action": "login", "leg": leg, "agent_id": uid})).await;
            if st == StatusCode::OK {
                break;
            }
            assert!(std::time::Instant::now() < until, "agent login failed: {st}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let started = std::time::Instant::now();
    let mut disposed = 0;
    while started.elapsed() < run {
        for uid in ids {
            let (st, _) = h.req(hyper::Method::POST, &format!("/api/dialer/campaigns/{id}/disposition"), json!({"final": true, "agent_id": uid})).await;
            if st == StatusCode::OK {
                disposed += 1;
            }
        }
        if let Some(store) = stop_when_done {
            let rows = store.dialer_leads(crm::dialer_store::DialerCampaignId(id)).await.unwrap();
            // Done when every lead was dialed and what the crash recycled was dialed again.
            if !rows.iter().any(|l| l.state == "in_flight" || (l.state == "ready" && (l.attempts == 0 || l.last_result.as_deref() == Some("crashed")))) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (legs, disposed)
}

/// kill -9 of `centralino serve` mid-campaign, restart, finish: nothing is
/// lost (no lead stays in flight, every attempt is closed) or repeated
/// (no lead is disposed twice, none dialed more than once plus its
/// crash-recycled retry).
///
/// (The agents' sipp legs use sipp's own Call-ID, `-cid_str`: with a
/// Call-ID of the scenario's making sipp cannot match our 200 OK to its
/// call, never ACKs, and our UAS ends the unacknowledged dialog after
/// 64·T1 = 32 s — which is what ended the legs after the restart.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_restart_loses_nothing() {
    if !sipp_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let store = crm::Store::open(crm::StoreOptions::new(db.to_string_lossy().to_string())).await.unwrap();
    let sys = crm::Actor::system();
    let mk = |name: &str| crm::auth::NewUser { username: name.into(), display_name: None, password: format!("{name}-password"), role: "admin".into(), team_id: None };
    store.create_user(&sys, mk("boss")).await.unwrap();
    let mut ids = Vec::new();
    for n in ["c0", "c1", "c2"] {
        ids.push(store.create_user(&sys, mk(n)).await.unwrap().id);
    }
    let cfg: crm::dialer_store::DialerConfig = serde_json::from_value(json!({"name": "Crash", "trunk": "127.0.0.1:35441", "pacing": "power", "ratio": 2.0,
        "ring_timeout_s": 15, "window": {"start": "00:00", "end": "23:59"}})).unwrap();
    let camp = store.create_dialer_campaign(&sys, cfg, crm::now_ms()).await.unwrap();
    let leads: Vec<_> = (0..100).map(|i| (None, format!("+39 02 1234 {:04}", 7000 + i), 0)).collect();
    store.dialer_add_leads(&sys, camp.id, &leads, crm::now_ms()).await.unwrap();
    store.set_dialer_running(&sys, camp.id, true, crm::now_ms()).await.unwrap();
    let id = camp.id.0;
    let conf = dir.path().join("centralino.toml");
    std::fs::write(&conf, format!("http = \"127.0.0.1:35451\"\nsip = \"127.0.0.1:35452\"\ndatabase_url = \"{}\"\ninbound_ring_secs = 120\ntrunks = [\"127.0.0.1\"]\n", db.display())).unwrap();
    // A carrier that takes CANCEL while ringing, like a real one.
    let carrier_xml = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/carrier_crash.xml");
    // -trace_msg: every message the carrier saw or sent, to tell when
    // each call was up at the carrier.
    let _carrier = sipp(&["-sf", carrier_xml, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", "36440", "-ci", "127.0.0.1", "-cp", "38441", "-p", "35441", "-m", "1000", "-buff_size", "4194304", "-trace_msg"], dir.path());
    let serve = || {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(std::env::temp_dir().join("centralino-dialer-crash-serve.log")).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_centralino"))
            .args(["--config", &conf.to_string_lossy(), "serve"])
            .env("CENTRALINO_NODE_ID", "crash-node")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn centralino")
    };
    // In a Proc so a failed assertion never leaves it holding the ports.
    let mut child = Proc(serve());
    let h = Http::connect("127.0.0.1:35451").await;
    let (legs, before) = agents_work(&h, id, "127.0.0.1:35452", dir.path(), 0, &ids, Duration::from_secs(8), None).await;
    // The agents stop posting dispositions, so the calls they are bridged
    // to stay up (the carrier waits for our BYE): kill while one is.
    let until = std::time::Instant::now() + Duration::from_secs(15);
    while !store.dialer_dialogs_open("crash-node").await.unwrap().iter().any(|(_, answered, _)| *answered) && std::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // kill -9 mid-campaign.
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    drop(legs);
    let mid = store.dialer_leads(camp.id).await.unwrap();
    let in_flight = mid.iter().filter(|l| l.state == "in_flight").count();
    // The calls the kill left up at the carrier, as the dead node kept them.
    let left = store.dialer_dialogs_open("crash-node").await.unwrap();
    let mut child = Proc(serve());
    let h = Http::connect("127.0.0.1:35451").await;
    let (_legs, after) = agents_work(&h, id, "127.0.0.1:35452", dir.path(), 1, &ids, Duration::from_secs(150), Some(&store)).await;
    let rows = store.dialer_leads(camp.id).await.unwrap();
    eprintln!("crash test: {before} dispositions before the kill, {in_flight} leads in flight at the kill, {after} after");
    assert!(before > 0 && after > 0, "agents talked before and after the crash");
    assert!(rows.iter().all(|l| l.state != "in_flight"), "a lead was left in flight");
    assert_eq!(rows.iter().filter(|l| l.state == "done").count(), before + after, "every disposition kept, none repeated");
    for l in &rows {
        assert!(l.attempts >= 1, "{:?} never dialed", l.e164);
        assert!(l.attempts <= 2, "{:?} dialed {} times", l.e164, l.attempts);
        let got = (l.state.as_str(), l.last_result.as_deref().unwrap_or(""));
        assert!(matches!(got, ("done", "disposed") | ("ready", "busy") | ("ready", "no_answer") | ("ready", "abandoned")), "{:?}: {got:?}", l.e164);
    }
    let counts = store.dialer_counts(camp.id).await.unwrap();
    assert!(counts.attempts >= 100);
    let _ = child.0.kill();
    let _ = child.0.wait();
    assert_attempts_sound(&store, camp.id).await;
    // Each lead in flight at the kill had one open attempt, closed by recovery.
    let crashed = store.dialer_attempts(camp.id).await.unwrap().iter().filter(|a| a.result.as_deref() == Some("crashed")).count();
    assert_eq!(crashed, in_flight, "recovery closed exactly the attempts the kill left open");
    // At the carrier: never two live calls to one lead, and every call the
    // kill left up was ended by the restarted node (BYE if answered,
    // CANCEL if ringing) — not left to run beside the redial.
    let carrier = carrier_calls(dir.path());
    let answered_left = left.iter().filter(|(_, a, _)| *a).count();
    eprintln!("crash test: {} calls up at the kill ({answered_left} answered), {} calls seen by the carrier", left.len(), carrier.len());
    assert!(answered_left > 0, "the kill left answered calls up (else this proves nothing)");
    for (call, answered, _) in &left {
        let c = carrier.get(call.as_str()).unwrap_or_else(|| panic!("carrier never saw {call}"));
        if *answered {
            assert!(c.bye_in, "answered call {call} left up at the kill got no BYE from the restarted node");
        }
        assert!(c.end.is_some(), "call {call} left up at the kill is still up at the carrier");
    }
    assert!(store.dialer_dialogs_open("crash-node").await.unwrap().iter().all(|(c, _, _)| !left.iter().any(|(l, _, _)| l == c)), "ended dialogs are forgotten");
    let attempts = store.dialer_attempts(camp.id).await.unwrap();
    let mut by_lead: std::collections::BTreeMap<i64, Vec<(String, String)>> = Default::default();
    for a in &attempts {
        let Some(call) = a.call_id.as_deref() else { continue };
        let Some(c) = carrier.get(call) else { continue };
        // A call still up at the end of the test is up "forever".
        by_lead.entry(a.lead_id.0).or_default().push((c.start.clone(), c.end.clone().unwrap_or_else(|| "9999".into())));
    }
    for (lead, mut spans) in by_lead {
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "lead {lead}: two live calls at the carrier at once: {:?} and {:?}", w[0], w[1]);
        }
    }
}

/// One call as the carrier (sipp, `-trace_msg`) saw it: when the INVITE
/// came, when it ended there (BYE either way, CANCEL received, or a final
/// failure sent; `None`: never), and whether we sent a BYE. Times are
/// sipp's `YYYY-MM-DD HH:MM:SS.micros` stamps, ordered as strings.
#[derive(Debug, Default)]
struct CarrierCall {
    start: String,
    end: Option<String>,
    bye_in: bool,
}

fn carrier_calls(dir: &std::path::Path) -> std::collections::HashMap<String, CarrierCall> {
    let mut calls: std::collections::HashMap<String, CarrierCall> = Default::default();
    let log = std::fs::read_dir(dir).unwrap().flatten().find(|e| e.file_name().to_string_lossy().ends_with("_messages.log")).expect("sipp -trace_msg log");
    let text = std::fs::read_to_string(log.path()).unwrap();
    for entry in text.split("----------------------------------------------- ").skip(1) {
        let mut lines = entry.lines();
        let stamp = lines.next().unwrap_or_default().trim().to_string();
        let received = lines.next().unwrap_or_default().contains("received");
        let first = lines.by_ref().find(|l| !l.trim().is_empty()).unwrap_or_default().to_string();
        let rest: Vec<&str> = lines.collect();
        let header = |name: &str| rest.iter().find_map(|l| l.split_once(':').filter(|(n, _)| n.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim().to_string()));
        let Some(call) = header("Call-ID") else { continue };
        let cseq = header("CSeq").unwrap_or_default();
        let c = calls.entry(call).or_default();
        if c.start.is_empty() {
            c.start = stamp.clone();
        }
        let ends = if let Some(status) = first.strip_prefix("SIP/2.0 ") {
            !received && cseq.ends_with("INVITE") && status.get(..3).and_then(|s| s.parse::<u16>().ok()).is_some_and(|s| s >= 300)
        } else {
            let bye = first.starts_with("BYE ");
            c.bye_in |= bye && received;
            bye || (received && first.starts_with("CANCEL "))
        };
        if ends && c.end.is_none() {
            c.end = Some(stamp);
        }
    }
    calls
}

/// Nothing lost, nothing twice, from the attempt records: every attempt
/// closed, no lead left in flight, no lead disposed twice, and a lead's
/// attempts never overlap in time (never two calls to one lead at once).
async fn assert_attempts_sound(store: &crm::Store, id: crm::dialer_store::DialerCampaignId) {
    let leads = store.dialer_leads(id).await.unwrap();
    assert!(leads.iter().all(|l| l.state != "in_flight"), "a lead was left in flight");
    let attempts = store.dialer_attempts(id).await.unwrap();
    let mut by_lead: std::collections::BTreeMap<i64, Vec<&crm::dialer_store::AttemptRow>> = Default::default();
    for a in &attempts {
        assert!(a.ended_at.is_some() && a.result.is_some(), "attempt {} left open", a.id);
        by_lead.entry(a.lead_id.0).or_default().push(a);
    }
    for (lead, list) in &by_lead {
        let disposed = list.iter().filter(|a| matches!(a.result.as_deref(), Some("disposed"))).count();
        assert!(disposed <= 1, "lead {lead} disposed {disposed} times");
        for w in list.windows(2) {
            assert!(w[0].ended_at.unwrap() <= w[1].started_at, "lead {lead}: attempts {} and {} overlap", w[0].id, w[1].id);
        }
    }
    let lead_attempts: i64 = leads.iter().map(|l| l.attempts).sum();
    let counted = attempts.iter().filter(|a| a.result.as_deref() != Some("skipped")).count() as i64;
    assert_eq!(lead_attempts, counted, "the leads' attempt counters match the records");
}

/// Two `centralino` processes drain one campaign's hopper on the same
/// PostgreSQL database at once (`centralino dialer claim-bench`): every
/// lead is claimed by exactly one of them, both get work, and the store's
/// records agree (one attempt per lead, no lead left in flight).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_never_claim_the_same_lead() {
    let Ok(base) = std::env::var("CENTRALINO_TEST_PG") else {
        assert!(std::env::var("CENTRALINO_REQUIRE_PG").as_deref() != Ok("1"), "CENTRALINO_REQUIRE_PG=1 but CENTRALINO_TEST_PG is not set");
        eprintln!("note: no CENTRALINO_TEST_PG, skipping the two-process hopper test");
        return;
    };
    let base = base.trim_end_matches('/').to_string();
    let db = format!("two_proc_{}_{}", std::process::id(), std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos());
    let admin = crm::Store::connect(crm::StoreOptions::new(format!("{base}/postgres"))).await.unwrap();
    admin.exec_admin(&format!("CREATE DATABASE {db}")).await.unwrap();
    admin.close().await;
    let url = format!("{base}/{db}");
    let store = crm::Store::open(crm::StoreOptions::new(url.clone())).await.unwrap();
    let sys = crm::Actor::system();
    let cfg: crm::dialer_store::DialerConfig = serde_json::from_value(json!({"name": "Two", "trunk": "127.0.0.1:5070", "window": {"start": "00:00", "end": "23:59"}})).unwrap();
    let camp = store.create_dialer_campaign(&sys, cfg, crm::now_ms()).await.unwrap();
    let n = 300;
    let leads: Vec<_> = (0..n).map(|i| (None, format!("+39 02 1234 {:04}", 3000 + i), 0)).collect();
    store.dialer_add_leads(&sys, camp.id, &leads, crm::now_ms() - 60_000).await.unwrap();
    let spawn = |node: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_centralino"))
            .args(["--db", &url, "dialer", "claim-bench", "--campaign", &camp.id.0.to_string(), "--node", node, "--batch", "5", "--hold-ms", "4"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn centralino")
    };
    let (a, b) = (spawn("node-a"), spawn("node-b"));
    let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
    let mut claims: Vec<(i64, String, u64, u64)> = Vec::new();
    for o in &outs {
        assert!(o.status.success(), "claim-bench failed: {:?}", o.status);
        for line in String::from_utf8_lossy(&o.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            claims.push((v["lead"].as_i64().unwrap(), v["node"].as_str().unwrap().to_string(), v["claimed_us"].as_u64().unwrap(), v["finished_us"].as_u64().unwrap()));
        }
    }
    let per_node = |n: &str| claims.iter().filter(|c| c.1 == n).count();
    eprintln!("two processes: node-a {} leads, node-b {} leads", per_node("node-a"), per_node("node-b"));
    assert!(per_node("node-a") > 0 && per_node("node-b") > 0, "both processes claimed work");
    let distinct: std::collections::HashSet<i64> = claims.iter().map(|c| c.0).collect();
    assert_eq!(claims.len(), n, "every lead claimed once in all");
    assert_eq!(distinct.len(), n, "a lead was claimed by both processes");
    let rows = store.dialer_leads(camp.id).await.unwrap();
    assert!(rows.iter().all(|l| l.state == "done" && l.attempts == 1), "one attempt per lead, all booked");
    let attempts = store.dialer_attempts(camp.id).await.unwrap();
    assert_eq!(attempts.len(), n);
    let nodes: std::collections::HashSet<&str> = attempts.iter().map(|a| a.node_id.as_str()).collect();
    assert_eq!(nodes.len(), 2);
    assert_attempts_sound(&store, camp.id).await;
    store.close().await;
}

/// Preview over HTTP: an agent on a nailed-up leg is `reserved` with the
/// next lead's card; skip brings another card, dial places the call for
/// that card only; bad input to the routes is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_cards_over_http() {
    if !sipp_available() {
        return;
    }
    let app = crate::harness::spawn_sqlite().await;
    let sip = app.sip.expect("sip on");
    let dir = tempfile::tempdir().unwrap();
    app.user("boss", "admin", None).await;
    let s = app.login("boss").await;
    // Nothing listens on the trunk: a dialed card just rings.
    let c = app
        .post(&s, "/api/dialer/campaigns", json!({"name": "Prev", "trunk": "127.0.0.1:35499", "pacing": "preview", "window": {"start": "00:00", "end": "23:59"}}))
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let id = c.body["id"].as_i64().unwrap();
    let leads: Vec<_> = (0..3).map(|i| (None, format!("+39 02 1234 {:04}", 8000 + i), 0)).collect();
    app.store.dialer_add_leads(&crm::Actor::system(), crm::dialer_store::DialerCampaignId(id), &leads, crm::now_ms() - 1000).await.unwrap();
    assert_eq!(app.post(&s, &format!("/api/dialer/campaigns/{id}/start"), json!({})).await.body["live"], true);
    let uid = app.user("ann", "agent", None).await;
    let leg_xml = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/agent_leg.xml");
    let _leg = sipp(&["-sf", leg_xml, &sip.to_string(), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", "36700", "-ci", "127.0.0.1", "-cp", "38700", "-p", "35700", "-s", "agent", "-m", "1", "-cid_str", "prev-leg-0"], dir.path());
    let agent_url = format!("/api/dialer/campaigns/{id}/agent");
    let mut logged = false;
    for _ in 0..100 {
        if app.post(&s, &agent_url, json!({"action": "login", "leg": "prev-leg-0", "agent_id": uid})).await.status == StatusCode::OK {
            logged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(logged, "agent login");
    let mut card = serde_json::Value::Null;
    for _ in 0..100 {
        let r = app.post(&s, &agent_url, json!({"action": "state", "agent_id": uid})).await;
        if r.body["state"] == "reserved" {
            card = r.body["card"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(card["lead_id"].is_i64(), "a card: {card}");
    app.post(&s, &format!("/api/dialer/campaigns/{id}/preview/skip"), json!({"agent_id": uid, "x": 1})).await.problem(422);
    let skipped = app.post(&s, &format!("/api/dialer/campaigns/{id}/preview/skip"), json!({"agent_id": uid})).await;
    assert_eq!(skipped.status, StatusCode::OK, "{}", skipped.text);
    let mut next = serde_json::Value::Null;
    for _ in 0..100 {
        let r = app.post(&s, &agent_url, json!({"action": "state", "agent_id": uid})).await;
        if r.body["state"] == "reserved" && r.body["card"]["lead_id"] != card["lead_id"] {
            next = r.body["card"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(next["lead_id"].is_i64(), "the next card");
    let dialed = app.post(&s, &format!("/api/dialer/campaigns/{id}/preview/dial"), json!({"agent_id": uid})).await;
    assert_eq!(dialed.status, StatusCode::OK, "{}", dialed.text);
    let call = dialed.body["call"].as_str().unwrap().to_string();
    app.post(&s, &format!("/api/dialer/campaigns/{id}/preview/dial"), json!({"agent_id": uid})).await.problem(409);
    let attempts = app.get(&s, &format!("/api/dialer/campaigns/{id}/attempts")).await;
    let list = attempts.body.as_array().unwrap();
    assert!(list.iter().any(|a| a["call_id"] == call.as_str() && a["lead_id"] == next["lead_id"]), "{}", attempts.text);
    assert!(list.iter().any(|a| a["lead_id"] == card["lead_id"] && a["result"] == "skipped"), "{}", attempts.text);
    assert_eq!(list.iter().filter(|a| a["call_id"].is_string()).count(), 1, "only the card dialed was called: {}", attempts.text);
    let doc = app.get(&s, "/api/openapi.json").await;
    for p in ["/api/dialer/campaigns/{id}/preview/dial", "/api/dialer/campaigns/{id}/preview/skip", "/api/dialer/campaigns/{id}/attempts"] {
        assert!(doc.text.contains(p), "{p} not in the OpenAPI document");
    }
    app.post(&s, &format!("/api/dialer/campaigns/{id}/stop"), json!({})).await;
    let rows = app.store.dialer_leads(crm::dialer_store::DialerCampaignId(id)).await.unwrap();
    assert!(rows.iter().all(|l| l.state != "in_flight"), "stop leaves nothing in flight");
}

/// Synthetic callee audio for AMD, 8 kHz linear PCM: "words" are bursts
/// of a 150 Hz voice with harmonics under a rounded envelope, silence is
/// faint line noise (the shapes `dialer/tests/it/amd.rs` classifies).
struct Voice {
    pcm: Vec<i16>,
    noise: u64,
}

impl Voice {
    fn new() -> Self {
        Voice { pcm: Vec::new(), noise: 0x2545_F491_4F6C_DD1D }
    }
    fn hiss(&mut self, amp: f32) -> f32 {
        self.noise ^= self.noise << 13;
        self.noise ^= self.noise >> 7;
        self.noise ^= self.noise << 17;
        ((self.noise >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * amp
    }
    fn silence(mut self, ms: u32) -> Self {
        for _ in 0..ms * 8 {
            let v = self.hiss(20.0);
            self.pcm.push(v as i16);
        }
        self
    }
    fn word(mut self, ms: u32) -> Self {
        let n = ms * 8;
        for i in 0..n {
            let t = i as f32 / 8000.0;
            let env = (std::f32::consts::PI * i as f32 / n as f32).sin().powf(0.3);
            let v: f32 = (1..6).map(|h| (2.0 * std::f32::consts::PI * 150.0 * h as f32 * t).sin() / h as f32).sum();
            let s = env * 5000.0 * v + self.hiss(320.0);
            self.pcm.push(s.clamp(-32767.0, 32767.0) as i16);
        }
        self
    }
    /// A machine greeting: words with gaps too short to separate them.
    fn talk(mut self, ms: u32) -> Self {
        let mut done = 0;
        while done < ms {
            self = self.word(400).silence(30);
            done += 430;
        }
        self
    }
    /// The audio as a pcap of PCMU RTP packets, 20 ms apart (Ethernet,
    /// IPv4, UDP), for sipp's `play_pcap_audio`.
    fn pcap(&self, path: &std::path::Path) {
        let mut out = Vec::new();
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
            if v == 0x0004_0002 {
                out.extend_from_slice(&2u16.to_le_bytes());
                out.extend_from_slice(&4u16.to_le_bytes());
            } else {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        for (i, chunk) in self.pcm.chunks(160).enumerate() {
            let mut rtp = vec![0x80u8, 0];
            rtp.extend_from_slice(&(i as u16).to_be_bytes());
            rtp.extend_from_slice(&((i * 160) as u32).to_be_bytes());
            rtp.extend_from_slice(&0x1234_5678u32.to_be_bytes());
            rtp.extend(chunk.iter().map(|&s| sip::g711::ulaw_encode(s)));
            let udp_len = 8 + rtp.len();
            let ip_len = 20 + udp_len;
            let mut frame = vec![0u8; 12];
            frame.extend_from_slice(&[0x08, 0x00]);
            let mut ip = vec![0x45, 0];
            ip.extend_from_slice(&(ip_len as u16).to_be_bytes());
            ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1]);
            let sum = ip.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum::<u32>();
            let sum = !(((sum & 0xffff) + (sum >> 16)) as u16);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
            frame.extend_from_slice(&ip);
            frame.extend_from_slice(&6000u16.to_be_bytes());
            frame.extend_from_slice(&6002u16.to_be_bytes());
            frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
            frame.extend_from_slice(&[0, 0]);
            frame.extend_from_slice(&rtp);
            let us = i as u32 * 20_000;
            out.extend_from_slice(&(us / 1_000_000).to_le_bytes());
            out.extend_from_slice(&(us % 1_000_000).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&frame);
        }
        std::fs::write(path, out).unwrap();
    }
}

/// A carrier (sipp) that answers at once and plays `pcap` as the callee's
/// voice, then waits for our BYE.
fn carrier_playing(dir: &std::path::Path, name: &str, pcap: &std::path::Path) -> std::path::PathBuf {
    let xml = format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="carrier {name}">
  <recv request="INVITE" crlf="true"/>
  <send retrans="500">
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=carrier 1 2 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
    ]]>
  </send>
  <recv request="ACK" crlf="true">
    <action>
      <exec play_pcap_audio="{pcap}"/>
    </action>
  </recv>
  <recv request="BYE"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"#,
        pcap = pcap.display()
    );
    let p = dir.join(format!("{name}.xml"));
    std::fs::write(&p, xml).unwrap();
    p
}

/// Answering-machine detection live: two campaigns with AMD `hangup`, each
/// dialing one lead through a sipp carrier that answers with synthetic
/// audio played as RTP — a short "hello" then silence (a person), and a
/// long continuous greeting (a machine). An agent is ready on a
/// nailed-up leg for each. The person is bridged to the agent and booked
/// `human`; the machine is hung up, never bridged, booked `machine` (the
/// result the retry rules and the UK abandon form count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amd_tells_a_person_from_a_machine_live() {
    if !sipp_available() {
        return;
    }
    let app = crate::harness::spawn_sqlite().await;
    let sip = app.sip.expect("sip on");
    let dir = tempfile::tempdir().unwrap();
    let human = dir.path().join("human.pcap");
    Voice::new().silence(400).word(400).silence(4000).pcap(&human);
    let machine = dir.path().join("machine.pcap");
    Voice::new().silence(300).talk(6000).silence(500).pcap(&machine);
    app.user("boss", "admin", None).await;
    let s = app.login("boss").await;
    let mut pops = app.pops.lock().unwrap().take().expect("pops");
    let target = sip.to_string();
    let leg_xml = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/scenarios/agent_leg.xml");
    let mut procs = Vec::new();
    let mut camps = Vec::new();
    for (i, (name, pcap)) in [("human", &human), ("machine", &machine)].into_iter().enumerate() {
        let i = i as u16;
        let xml = carrier_playing(dir.path(), name, pcap);
        let trunk = format!("127.0.0.1:{}", 35801 + i);
        procs.push(sipp(
            &["-sf", &xml.to_string_lossy(), "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", &(36800 + 10 * i).to_string(), "-ci", "127.0.0.1", "-cp", &(38801 + i).to_string(), "-p", &(35801 + i).to_string(), "-m", "10"],
            dir.path(),
        ));
        let c = app
            .post(&s, "/api/dialer/campaigns", json!({"name": format!("AMD {name}"), "trunk": trunk, "pacing": "progressive", "ring_timeout_s": 15,
                "window": {"start": "00:00", "end": "23:59"}, "amd": {"mode": "hangup"}, "amd_fp_rate": 0.05}))
            .await;
        assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
        let id = c.body["id"].as_i64().unwrap();
        let leads = vec![(None, format!("+39 02 5555 {:04}", 100 + i), 0)];
        app.store.dialer_add_leads(&crm::Actor::system(), crm::dialer_store::DialerCampaignId(id), &leads, crm::now_ms()).await.unwrap();
        // The agent's leg first, then start: the one call finds them ready.
        procs.push(sipp(
            &["-sf", leg_xml, &target, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", &(36840 + 10 * i).to_string(), "-ci", "127.0.0.1", "-cp", &(38811 + i).to_string(), "-p", &(35811 + i).to_string(), "-s", "agent", "-m", "1", "-cid_str", &format!("amd-leg-{i}")],
            dir.path(),
        ));
        let pop = tokio::time::timeout(Duration::from_secs(10), pops.recv()).await.expect("agent leg arrives").unwrap();
        let st = app.post(&s, &format!("/api/dialer/campaigns/{id}/start"), json!({})).await;
        assert_eq!(st.body["live"], true, "{}", st.text);
        let uid = app.user(&format!("amd{i}"), "admin", None).await;
        let r = app.post(&s, &format!("/api/dialer/campaigns/{id}/agent"), json!({"action": "login", "leg": pop.call_id, "agent_id": uid})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        camps.push((name, crm::dialer_store::DialerCampaignId(id)));
    }
    // Each attempt gets its verdict within the 2.5 s cap (plus ringing and
    // slack); the machine's is also closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut settled = 0;
        for (name, id) in &camps {
            let a = app.store.dialer_attempts(*id).await.unwrap();
            settled += usize::from(a.first().is_some_and(|a| a.amd.is_some() && (if *name == "human" { a.bridged_at.is_some() } else { a.ended_at.is_some() })));
        }
        if settled == camps.len() || std::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, hid) = camps[0];
    let (_, mid) = camps[1];
    let h = app.store.dialer_attempts(hid).await.unwrap();
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].amd.as_deref(), Some("human"), "{h:?}");
    assert!(h[0].bridged_at.is_some() && h[0].agent_id.is_some(), "the person is bridged to the agent: {h:?}");
    let m = app.store.dialer_attempts(mid).await.unwrap();
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!(m[0].amd.as_deref(), Some("machine"), "{m:?}");
    assert_eq!(m[0].result.as_deref(), Some("machine"), "{m:?}");
    assert!(m[0].bridged_at.is_none() && m[0].agent_id.is_none(), "the machine is never bridged: {m:?}");
    let (h_ms, m_ms) = (h[0].bridged_at.unwrap() - h[0].answered_at.unwrap(), m[0].ended_at.unwrap() - m[0].answered_at.unwrap());
    eprintln!("amd live: person answered->bridged {h_ms} ms, machine answered->hung up {m_ms} ms");
    // Decided within the 2.5 s analysis cap (plus slack for the load).
    assert!(m_ms <= 4000 && h_ms <= 4000, "person {h_ms} ms, machine {m_ms} ms");
    let ms = app.get(&s, &format!("/api/dialer/campaigns/{}/stats", mid.0)).await;
    assert_eq!(ms.body["live"]["amd_machines"], 1, "{}", ms.text);
    assert_eq!(ms.body["live"]["live_answers"], 0, "a machine is no live answer: {}", ms.text);
    assert_eq!(ms.body["window"]["machine_30d"], 1, "{}", ms.text);
    let hs = app.get(&s, &format!("/api/dialer/campaigns/{}/stats", hid.0)).await;
    assert_eq!(hs.body["live"]["amd_humans"], 1, "{}", hs.text);
    assert_eq!(hs.body["live"]["abandons"], 0, "{}", hs.text);
    // The lead of the machine waits for the machine retry rule.
    let leads = app.store.dialer_leads(mid).await.unwrap();
    assert_eq!((leads[0].state.as_str(), leads[0].last_result.as_deref()), ("ready", Some("machine")));
    for (_, id) in &camps {
        app.post(&s, &format!("/api/dialer/campaigns/{}/stop", id.0), json!({})).await;
    }
    drop(procs);
}
