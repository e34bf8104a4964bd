//! The live runtime against a scripted fake carrier (no sockets): leads are
//! claimed, dialed once at a time, answered calls bridged to agents'
//! legs or dropped to the safe-harbour prompt after the grace time, and
//! every attempt booked in the store by the retry rules.
use crm::dialer_store::DialerConfig;
use crm::{Actor, Store, StoreOptions};
use dialer::runtime::{self, Disposition, LineEnd, LineEvent, Lines, RuntimeOptions};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Tuesday 10 March 2026, 10:00 in Rome.
const NOW: i64 = 1_773_133_200_000;

#[derive(Default)]
struct Log {
    in_flight: HashSet<String>,
    twice: Vec<String>,
    dialed: Vec<String>,
    abandoned: HashSet<String>,
    bridged: Vec<(String, String)>,
    number_of: HashMap<String, String>,
}

/// Numbers ending 0–1 are busy, 2–3 never answer, the rest answer after
/// 100 ms and talk until the agent hangs up.
struct Fake {
    tx: mpsc::Sender<LineEvent>,
    log: Mutex<Log>,
    seq: Mutex<u64>,
}

impl Fake {
    fn end(&self, call: &str) {
        if let Ok(mut l) = self.log.lock() {
            if let Some(n) = l.number_of.get(call).cloned() {
                l.in_flight.remove(&n);
            }
        }
    }
}

impl Lines for Fake {
    async fn dial(&self, number: &str, _caller: &str, _trunk: SocketAddr, _ring: Duration) -> Result<String, String> {
        let call = {
            let mut s = self.seq.lock().map_err(|_| "poisoned")?;
            *s += 1;
            format!("call-{s}")
        };
        {
            let mut l = self.log.lock().map_err(|_| "poisoned")?;
            if !l.in_flight.insert(number.to_string()) {
                l.twice.push(number.to_string());
            }
            l.dialed.push(number.to_string());
            l.number_of.insert(call.clone(), number.to_string());
        }
        let last = number.bytes().last().unwrap_or(b'9') - b'0';
        let tx = self.tx.clone();
        let c = call.clone();
        let (ev, delay) = match last {
            0 | 1 => (LineEvent::Ended { call: c, how: LineEnd::Busy }, 50),
            2 | 3 => (LineEvent::Ended { call: c, how: LineEnd::NoAnswer }, 150),
            _ => (LineEvent::Answered { call: c }, 100),
        };
        if matches!(ev, LineEvent::Ended { .. }) {
            // Busy and no-answer end the line at the carrier.
            self.end(&call);
        }
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let _ = tx.send(ev).await;
        });
        Ok(call)
    }
    async fn bridge(&self, agent_leg: &str, call: &str) -> Result<(), String> {
        self.log.lock().map_err(|_| "poisoned")?.bridged.push((agent_leg.to_string(), call.to_string()));
        Ok(())
    }
    async fn abandon(&self, call: &str, _prompt: &str) -> Result<(), String> {
        self.log.lock().map_err(|_| "poisoned")?.abandoned.insert(call.to_string());
        self.end(call);
        let _ = self.tx.send(LineEvent::Ended { call: call.to_string(), how: LineEnd::Completed }).await;
        Ok(())
    }
    async fn hangup(&self, call: &str) -> Result<(), String> {
        self.end(call);
        let _ = self.tx.send(LineEvent::Ended { call: call.to_string(), how: LineEnd::Completed }).await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_campaign_books_every_lead_and_counts_abandons() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("d.db").to_string_lossy().to_string())).await.unwrap();
    let a = Actor::system();
    let cfg: DialerConfig = serde_json::from_value(serde_json::json!({
        "name": "power", "trunk": "127.0.0.1:5070", "pacing": "power", "ratio": 3.0,
        "safe_harbour_prompt": "safe-harbour.wav"
    }))
    .unwrap();
    let camp = store.create_dialer_campaign(&a, cfg, NOW).await.unwrap();
    let leads: Vec<_> = (0..40).map(|i| (None, format!("+39 02 1234 {:04}", 5000 + i), 0)).collect();
    store.dialer_add_leads(&a, camp.id, &leads, NOW).await.unwrap();
    store.add_dnc_numbers(&a, &["+39 02 1234 5009".into()], "test", NOW).await.unwrap();

    let (tx, rx) = mpsc::channel(256);
    let fake = Arc::new(Fake { tx, log: Mutex::new(Log::default()), seq: Mutex::new(0) });
    let mut opts = RuntimeOptions::new("node-1");
    opts.start_ms = NOW;
    opts.grace = Duration::from_millis(300);
    opts.wrap_up = Duration::from_secs(60);
    let (h, join) = runtime::spawn(store.clone(), fake.clone(), camp.id, rx, opts).await.unwrap();
    let agents = [crm::UserId(1), crm::UserId(2)];
    for (i, ag) in agents.iter().enumerate() {
        h.login(*ag, format!("agent-leg-{i}")).await.unwrap();
    }
    // Agents talk ~200 ms, then post a final disposition.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        for ag in agents {
            if h.agent_state(ag).await.unwrap().as_deref() == Some("on_call") {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let d = Disposition { final_: true, callback_at: None, callback_agent_only: false, answers: vec![], outcome: None };
                h.dispose(ag, d).await.unwrap();
            }
        }
        let rows = store.dialer_leads(camp.id).await.unwrap();
        let open = rows.iter().filter(|l| l.state == "in_flight" || (l.state == "ready" && l.attempts == 0)).count();
        if open == 0 || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = h.stats().await.unwrap();
    h.stop().await;
    join.await.unwrap();

    let log = fake.log.lock().unwrap();
    assert!(log.twice.is_empty(), "dialed while in flight: {:?}", log.twice);
    assert!(!log.dialed.iter().any(|n| n == "+390212345009"), "DNC number dialed");
    let rows = store.dialer_leads(camp.id).await.unwrap();
    let counts = store.dialer_counts(camp.id).await.unwrap();
    assert_eq!(counts.abandons as usize, log.abandoned.len(), "abandons booked == calls that got the prompt");
    assert_eq!(stats.abandons as usize, log.abandoned.len());
    assert!(stats.placed >= 39);
    assert!(!log.abandoned.is_empty(), "power 3 with two agents must overflow");
    assert!(!log.bridged.is_empty());
    assert!(log.bridged.iter().all(|(leg, _)| leg.starts_with("agent-leg-")), "answers go to nailed-up legs");
    for l in &rows {
        let e = l.e164.as_deref().unwrap();
        let last = e.bytes().last().unwrap() - b'0';
        let want: &[(&str, &str)] = match last {
            _ if e.ends_with("5009") => &[("dnc", "")],
            0 | 1 => &[("ready", "busy")],
            2 | 3 => &[("ready", "no_answer")],
            _ => &[("done", "disposed"), ("ready", "abandoned")],
        };
        let got = (l.state.as_str(), l.last_result.as_deref().unwrap_or(""));
        assert!(want.iter().any(|w| *w == got), "{e}: {got:?}, want one of {want:?}");
        assert!(l.attempts <= 1, "{e} dialed {} times", l.attempts);
    }
    eprintln!("stats: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_after_a_crash_recycles_in_flight_leads() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("d.db").to_string_lossy().to_string())).await.unwrap();
    let a = Actor::system();
    let cfg: DialerConfig = serde_json::from_value(serde_json::json!({"name": "c", "trunk": "127.0.0.1:5070"})).unwrap();
    let camp = store.create_dialer_campaign(&a, cfg, NOW).await.unwrap();
    store.dialer_add_leads(&a, camp.id, &[(None, "+39 02 1234 5678".into(), 0)], NOW).await.unwrap();
    let c = store.dialer_claim(camp.id, 1, NOW, "node-x").await.unwrap();
    assert_eq!(c.leads.len(), 1);
    // The node dies here; on restart it recovers before dialing.
    assert_eq!(runtime::recover(&store, "node-x").await.unwrap(), 1);
    let rows = store.dialer_leads(camp.id).await.unwrap();
    assert_eq!(rows[0].state, "ready");
}
