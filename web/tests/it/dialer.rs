//! The dialer API: campaign validation with field errors, CRUD, leads from
//! lists, DNC import, start/stop and stats, agent commands refused when the
//! campaign runs on no node here, and the OpenAPI entries.

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
    let c = app
        .post(&s, "/api/dialer/campaigns", json!({"name": "Live", "trunk": "127.0.0.1:35401", "pacing": "power", "ratio": 2.0, "ring_timeout_s": 15,
            "window": {"start": "00:00", "end": "23:59"}}))
        .await;
    assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
    let id = c.body["id"].as_i64().unwrap();
    let mut leads = Vec::new();
    for i in 0..101 {
        leads.push((None, format!("+39 02 1234 {:04}", 6000 + i), 0));
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
        agents.push(sipp(&["-sf", leg_xml, &target, "-i", "127.0.0.1", "-mi", "127.0.0.1", "-mp", &mport, "-ci", "127.0.0.1", "-cp", &cport, "-p", &port, "-s", "agent", "-m", "1"], dir.path()));
        let pop = tokio::time::timeout(Duration::from_secs(10), pops.recv()).await.expect("agent leg arrives").unwrap();
        let name = format!("ag{i}");
        let uid = app.user(&name, "admin", None).await;
        let r = app.post(&s, &format!("/api/dialer/campaigns/{id}/agent"), json!({"action": "login", "leg": pop.call_id, "agent_id": uid})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        ids.push(uid);
    }
    let started = std::time::Instant::now();
    let mut disposed = 0;
    loop {
        for uid in &ids {
            let r = app.post(&s, &format!("/api/dialer/campaigns/{id}/disposition"), json!({"final": true, "agent_id": uid})).await;
            if r.status == StatusCode::OK {
                disposed += 1;
            }
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
    app.post(&s, &format!("/api/dialer/campaigns/{id}/stop"), json!({})).await;
}
