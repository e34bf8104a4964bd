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
    /// Agent legs that are gone without an end event (a closed softphone).
    dead: Mutex<HashSet<String>>,
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
    async fn leg_alive(&self, leg: &str) -> bool {
        self.dead.lock().is_ok_and(|d| !d.contains(leg))
    }
    async fn dialog(&self, call: &str) -> Option<String> {
        Some(format!("call={call}\n"))
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
    let fake = Arc::new(Fake { tx, log: Mutex::new(Log::default()), seq: Mutex::new(0), dead: Mutex::new(HashSet::new()) });
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
    let mut kept_answered = false;
    loop {
        for ag in agents {
            if h.agent_state(ag).await.unwrap().as_deref() == Some("on_call") {
                // The call up at the carrier has its answered dialog kept.
                kept_answered |= store.dialer_dialogs_open("node-1").await.unwrap().iter().any(|(_, answered, _)| *answered);
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
    // Every call has ended: no dialog is kept any more.
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut left = store.dialer_dialogs_open("node-1").await.unwrap();
    while !left.is_empty() && tokio::time::Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        left = store.dialer_dialogs_open("node-1").await.unwrap();
    }
    assert!(kept_answered, "an answered call's dialog was kept while it was up");
    assert!(left.is_empty(), "dialogs of ended calls still kept: {left:?}");
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

async fn setup(pacing: &str, numbers: &[&str]) -> (tempfile::TempDir, Store, crm::dialer_store::DialerCampaignId, Vec<crm::UserId>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("d.db").to_string_lossy().to_string())).await.unwrap();
    let a = Actor::system();
    let cfg: DialerConfig = serde_json::from_value(serde_json::json!({"name": "c", "trunk": "127.0.0.1:5070", "pacing": pacing})).unwrap();
    let camp = store.create_dialer_campaign(&a, cfg, NOW).await.unwrap();
    let leads: Vec<_> = numbers.iter().map(|n| (None, n.to_string(), 0)).collect();
    store.dialer_add_leads(&a, camp.id, &leads, NOW).await.unwrap();
    let mut users = Vec::new();
    for n in ["ann", "bob"] {
        let u = crm::auth::NewUser { username: n.into(), display_name: None, password: format!("{n}-password-long"), role: "agent".into(), team_id: None };
        users.push(store.create_user(&a, u).await.unwrap().id);
    }
    (dir, store, camp.id, users)
}

fn start_opts() -> RuntimeOptions {
    let mut opts = RuntimeOptions::new("node-1");
    opts.start_ms = NOW;
    opts.grace = Duration::from_millis(300);
    opts.wrap_up = Duration::from_secs(60);
    opts
}

/// Polls `f` every 20 ms until it holds (bounded: the test fails after 10 s).
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut f: impl FnMut() -> F) {
    for _ in 0..500 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("never happened: {what}");
}

/// An agent's leg ends mid-call: the agent is logged out, the customer
/// call is hung up and booked `agent_gone` (the lead retried later), and
/// nothing is bridged to the dead leg afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_agent_leg_logs_the_agent_out() {
    let (_d, store, id, users) = setup("progressive", &["+39 02 1234 5005", "+39 02 1234 5006", "+39 02 1234 5007"]).await;
    let (tx, rx) = mpsc::channel(256);
    let fake = Arc::new(Fake { tx: tx.clone(), log: Mutex::new(Log::default()), seq: Mutex::new(0), dead: Mutex::new(HashSet::new()) });
    let (h, join) = runtime::spawn(store.clone(), fake.clone(), id, rx, start_opts()).await.unwrap();
    let ann = users[0];
    h.login(ann, "leg-ann".into()).await.unwrap();
    until("ann on a call", || async { h.agent_state(ann).await.unwrap().as_deref() == Some("on_call") }).await;
    let call = h.agent_view(ann).await.unwrap().unwrap().call.expect("the call ann is on");
    tx.send(LineEvent::Ended { call: "leg-ann".into(), how: LineEnd::Completed }).await.unwrap();
    until("ann logged out", || async { h.agent_state(ann).await.unwrap().as_deref() == Some("logged_out") }).await;
    // Bob's leg vanishes without an end event (a closed browser tab): the
    // once-a-second check logs him out too.
    let bob = users[1];
    h.login(bob, "leg-bob".into()).await.unwrap();
    fake.dead.lock().unwrap().insert("leg-bob".into());
    until("bob logged out", || async { h.agent_state(bob).await.unwrap().as_deref() == Some("logged_out") }).await;
    let bridged_then = fake.log.lock().unwrap().bridged.len();
    // The other leads are answered with nobody left: abandons, never a bridge.
    tokio::time::sleep(Duration::from_millis(800)).await;
    h.stop().await;
    join.await.unwrap();
    assert_eq!(fake.log.lock().unwrap().bridged.len(), bridged_then, "bridged to a dead leg");
    let attempts = store.dialer_attempts(id).await.unwrap();
    let mine = attempts.iter().find(|a| a.call_id.as_deref() == Some(call.as_str())).unwrap();
    assert_eq!(mine.result.as_deref(), Some("agent_gone"));
    assert_eq!(mine.agent_id, Some(ann));
    let lead = store.dialer_leads(id).await.unwrap().into_iter().find(|l| l.id == mine.lead_id).unwrap();
    assert_eq!((lead.state.as_str(), lead.last_result.as_deref()), ("ready", Some("agent_gone")));
    assert!(attempts.iter().all(|a| a.ended_at.is_some()), "every attempt closed");
}

/// Preview: a ready agent is reserved with the next lead's card; skipping
/// it puts the lead back (not counted as an attempt) and brings the next
/// card; dialing it calls that lead only and bridges the answer to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_reserves_a_card_then_dials_or_skips() {
    let (_d, store, id, users) = setup("preview", &["+39 02 1234 5005", "+39 02 1234 5006"]).await;
    let (tx, rx) = mpsc::channel(256);
    let fake = Arc::new(Fake { tx, log: Mutex::new(Log::default()), seq: Mutex::new(0), dead: Mutex::new(HashSet::new()) });
    let (h, join) = runtime::spawn(store.clone(), fake.clone(), id, rx, start_opts()).await.unwrap();
    let ann = users[0];
    assert!(h.preview_dial(ann).await.is_err(), "not logged in");
    h.login(ann, "leg-ann".into()).await.unwrap();
    until("a card", || async { h.agent_view(ann).await.unwrap().is_some_and(|v| v.state == "reserved" && v.card.is_some()) }).await;
    let first = h.agent_view(ann).await.unwrap().unwrap().card.unwrap();
    assert!(fake.log.lock().unwrap().dialed.is_empty(), "nothing is dialed before the agent says so");
    h.preview_skip(ann).await.unwrap();
    until("the next card", || async { h.agent_view(ann).await.unwrap().and_then(|v| v.card).is_some_and(|c| c.lead_id != first.lead_id) }).await;
    let skipped = store.dialer_leads(id).await.unwrap().into_iter().find(|l| l.id == first.lead_id).unwrap();
    assert_eq!((skipped.state.as_str(), skipped.attempts, skipped.last_result.as_deref()), ("ready", 0, Some("skipped")));
    assert!(skipped.due_at > NOW, "a skipped card comes back later");
    let second = h.agent_view(ann).await.unwrap().unwrap().card.unwrap();
    let call = h.preview_dial(ann).await.unwrap();
    assert!(h.preview_dial(ann).await.is_err(), "one dial per card");
    until("ann on the call", || async { h.agent_state(ann).await.unwrap().as_deref() == Some("on_call") }).await;
    {
        let log = fake.log.lock().unwrap();
        assert_eq!(log.dialed, vec![second.number.as_str().to_string()]);
        assert_eq!(log.bridged, vec![("leg-ann".to_string(), call.clone())]);
    }
    let d = Disposition { final_: true, callback_at: None, callback_agent_only: false, answers: vec![], outcome: None };
    assert_eq!(h.dispose(ann, d).await.unwrap(), "done");
    h.stop().await;
    join.await.unwrap();
    let rows = store.dialer_leads(id).await.unwrap();
    assert!(rows.iter().all(|l| l.state != "in_flight"), "a reserved card is released at stop");
}

/// A callback for one agent only waits while that agent is away (another
/// ready agent does not get it) and is dialed for them, and bridged to
/// them, once they are ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_only_callback_waits_for_its_agent() {
    let (_d, store, id, users) = setup("progressive", &["+39 02 1234 5005"]).await;
    let (ann, bob) = (users[0], users[1]);
    let c = store.dialer_claim(id, 1, NOW, "node-1").await.unwrap();
    let cb = crm::dialer_store::AttemptResult::Disposed { final_: false, callback_at: Some(NOW), callback_agent: Some(ann) };
    store.dialer_finish(c.leads[0].attempt_id, cb, NOW).await.unwrap();
    let (tx, rx) = mpsc::channel(256);
    let fake = Arc::new(Fake { tx, log: Mutex::new(Log::default()), seq: Mutex::new(0), dead: Mutex::new(HashSet::new()) });
    let (h, join) = runtime::spawn(store.clone(), fake.clone(), id, rx, start_opts()).await.unwrap();
    h.login(bob, "leg-bob".into()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(fake.log.lock().unwrap().dialed.is_empty(), "ann's callback went to someone else");
    assert_eq!(store.dialer_abandon_stats(id, NOW + 2_000).await.unwrap().callbacks_waiting, 1);
    h.login(ann, "leg-ann".into()).await.unwrap();
    until("ann on the callback", || async { h.agent_state(ann).await.unwrap().as_deref() == Some("on_call") }).await;
    assert_eq!(h.agent_state(bob).await.unwrap().as_deref(), Some("ready"));
    let bridged = fake.log.lock().unwrap().bridged.clone();
    assert_eq!(bridged.len(), 1);
    assert_eq!(bridged[0].0, "leg-ann");
    h.stop().await;
    join.await.unwrap();
}

/// Synthetic callee audio (8 kHz PCM): voiced "words" and faint noise.
struct Voice(Vec<i16>, u64);
impl Voice {
    fn new() -> Self {
        Voice(Vec::new(), 0x2545_F491_4F6C_DD1D)
    }
    fn hiss(&mut self, amp: f32) -> f32 {
        self.1 ^= self.1 << 13;
        self.1 ^= self.1 >> 7;
        self.1 ^= self.1 << 17;
        ((self.1 >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * amp
    }
    fn silence(mut self, ms: u32) -> Self {
        for _ in 0..ms * 8 {
            let v = self.hiss(20.0);
            self.0.push(v as i16);
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
            self.0.push(s.clamp(-32767.0, 32767.0) as i16);
        }
        self
    }
    fn talk(mut self, ms: u32) -> Self {
        let mut done = 0;
        while done < ms {
            self = self.word(400).silence(30);
            done += 430;
        }
        self
    }
}

#[derive(Default)]
struct AmdLog {
    listened: usize,
    bridged: Vec<String>,
    /// (call, prompt, frames the callee had sent by then)
    messages: Vec<(String, String, usize)>,
    hung_up: Vec<String>,
    number_of: HashMap<String, String>,
    frames_sent: HashMap<String, Arc<std::sync::atomic::AtomicUsize>>,
}

/// Every call answers after 50 ms. What the callee says depends on the
/// number's last digit: 5 a "hello" then silence (a person), 6 a 3 s
/// greeting then silence (a machine), 7 nothing at all (no RTP).
struct Talking {
    tx: mpsc::Sender<LineEvent>,
    log: Mutex<AmdLog>,
    seq: Mutex<u64>,
}

impl Lines for Talking {
    async fn dial(&self, number: &str, _caller: &str, _trunk: SocketAddr, _ring: Duration) -> Result<String, String> {
        let call = {
            let mut s = self.seq.lock().map_err(|_| "poisoned")?;
            *s += 1;
            format!("amd-call-{s}")
        };
        self.log.lock().map_err(|_| "poisoned")?.number_of.insert(call.clone(), number.to_string());
        let (tx, c) = (self.tx.clone(), call.clone());
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx.send(LineEvent::Answered { call: c }).await;
        });
        Ok(call)
    }
    async fn bridge(&self, _agent_leg: &str, call: &str) -> Result<(), String> {
        self.log.lock().map_err(|_| "poisoned")?.bridged.push(call.to_string());
        Ok(())
    }
    async fn abandon(&self, call: &str, prompt: &str) -> Result<(), String> {
        {
            let mut l = self.log.lock().map_err(|_| "poisoned")?;
            let sent = l.frames_sent.get(call).map_or(0, |n| n.load(std::sync::atomic::Ordering::SeqCst));
            l.messages.push((call.to_string(), prompt.to_string(), sent));
        }
        let _ = self.tx.send(LineEvent::Ended { call: call.to_string(), how: LineEnd::Completed }).await;
        Ok(())
    }
    async fn hangup(&self, call: &str) -> Result<(), String> {
        self.log.lock().map_err(|_| "poisoned")?.hung_up.push(call.to_string());
        let _ = self.tx.send(LineEvent::Ended { call: call.to_string(), how: LineEnd::Completed }).await;
        Ok(())
    }
    async fn listen(&self, call: &str, max: Duration) -> Result<mpsc::Receiver<[i16; 160]>, String> {
        let (tx, rx) = mpsc::channel(64);
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let number = {
            let mut l = self.log.lock().map_err(|_| "poisoned")?;
            l.listened += 1;
            l.frames_sent.insert(call.to_string(), sent.clone());
            l.number_of.get(call).cloned().unwrap_or_default()
        };
        let pcm = match number.bytes().last() {
            Some(b'5') => Voice::new().silence(300).word(400).silence(6000).0,
            Some(b'6') => Voice::new().silence(300).talk(3000).silence(4000).0,
            _ => return Ok(rx), // no RTP: the sender is dropped, nothing comes
        };
        let frames = usize::try_from(max.as_millis() / 20).unwrap_or(usize::MAX);
        tokio::spawn(async move {
            // Faster than real time: the detector counts samples, not clock.
            for f in pcm.chunks_exact(160).take(frames) {
                let mut fr = [0i16; 160];
                fr.copy_from_slice(f);
                if tx.send(fr).await.is_err() {
                    return;
                }
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(4)).await;
            }
        });
        Ok(rx)
    }
}

async fn amd_campaign(amd: serde_json::Value, numbers: &[&str]) -> (tempfile::TempDir, Store, crm::dialer_store::DialerCampaignId) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path().join("d.db").to_string_lossy().to_string())).await.unwrap();
    let a = Actor::system();
    let cfg: DialerConfig = serde_json::from_value(serde_json::json!({"name": "amd", "trunk": "127.0.0.1:5070", "pacing": "progressive", "amd": amd})).unwrap();
    let camp = store.create_dialer_campaign(&a, cfg, NOW).await.unwrap();
    let leads: Vec<_> = numbers.iter().map(|n| (None, n.to_string(), 0)).collect();
    store.dialer_add_leads(&a, camp.id, &leads, NOW).await.unwrap();
    // The agents (user ids 1 and 2) exist: attempts name them.
    for n in ["ann", "bob"] {
        let u = crm::auth::NewUser { username: n.into(), display_name: None, password: format!("{n}-password-long"), role: "agent".into(), team_id: None };
        store.create_user(&a, u).await.unwrap();
    }
    (dir, store, camp.id)
}

/// Runs a campaign with two agents until every lead has its first
/// attempt booked, disposing the agents' calls; returns the stats.
async fn run_amd(store: &Store, id: crm::dialer_store::DialerCampaignId, lines: Arc<Talking>, rx: mpsc::Receiver<LineEvent>) -> runtime::Stats {
    let (h, join) = runtime::spawn(store.clone(), lines, id, rx, start_opts()).await.unwrap();
    let agents: Vec<crm::UserId> = store.list_users(&Actor::system()).await.unwrap().into_iter().map(|u| u.id).collect();
    assert_eq!(agents.len(), 2);
    for (i, ag) in agents.iter().enumerate() {
        h.login(*ag, format!("leg-{i}")).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        for &ag in &agents {
            if h.agent_state(ag).await.unwrap().as_deref() == Some("on_call") {
                let d = Disposition { final_: true, callback_at: None, callback_agent_only: false, answers: vec![], outcome: None };
                h.dispose(ag, d).await.unwrap();
            }
        }
        let rows = store.dialer_leads(id).await.unwrap();
        if rows.iter().all(|l| l.attempts >= 1 && l.state != "in_flight") || tokio::time::Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stats = h.stats().await.unwrap();
    h.stop().await;
    join.await.unwrap();
    stats
}

/// AMD `message`: the person is bridged and booked `human`; the machine
/// gets the campaign's message only once its greeting has ended (after
/// the 3 s greeting and the end-of-greeting silence), is never bridged
/// and is booked `machine`; a silent line (no audio at all) is not sure,
/// so it goes to an agent. Machines are no live answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amd_message_after_the_greeting_and_people_to_agents() {
    let (_d, store, id) = amd_campaign(serde_json::json!({"mode": "message", "prompt": "leave.wav"}), &["+39 02 1234 5005", "+39 02 1234 5006", "+39 02 1234 5007"]).await;
    let (tx, rx) = mpsc::channel(256);
    let lines = Arc::new(Talking { tx, log: Mutex::new(AmdLog::default()), seq: Mutex::new(0) });
    let stats = run_amd(&store, id, lines.clone(), rx).await;
    let by_number: HashMap<String, crm::dialer_store::AttemptRow> = store
        .dialer_attempts(id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (lines.log.lock().unwrap().number_of[a.call_id.as_deref().unwrap()].clone(), a))
        .collect();
    let (person, machine, silent) = (&by_number["+390212345005"], &by_number["+390212345006"], &by_number["+390212345007"]);
    assert_eq!((person.amd.as_deref(), person.result.as_deref()), (Some("human"), Some("disposed")), "{person:?}");
    assert!(person.bridged_at.is_some() && person.agent_id.is_some(), "{person:?}");
    assert_eq!((machine.amd.as_deref(), machine.result.as_deref()), (Some("machine"), Some("machine")), "{machine:?}");
    assert!(machine.bridged_at.is_none() && machine.agent_id.is_none(), "{machine:?}");
    assert_eq!((silent.amd.as_deref(), silent.result.as_deref()), (Some("not_sure"), Some("disposed")), "{silent:?}");
    let log = lines.log.lock().unwrap();
    assert_eq!(log.listened, 3);
    assert!(!log.bridged.contains(machine.call_id.as_ref().unwrap()));
    assert_eq!(log.messages.len(), 1, "{:?}", log.messages);
    let (call, prompt, frames) = &log.messages[0];
    assert_eq!((call, prompt.as_str()), (machine.call_id.as_ref().unwrap(), "leave.wav"));
    // Greeting 300 ms + ~3 s of talk, then 2 s of silence end it: the
    // message is not left before 5 s of the callee's audio.
    assert!(*frames >= 250, "message left after {frames} frames (20 ms each): before the greeting ended");
    assert_eq!((stats.amd_humans, stats.amd_machines, stats.amd_not_sure), (1, 1, 1), "{stats:?}");
    assert_eq!(stats.live_answers, 2, "the machine is no live answer: {stats:?}");
    assert_eq!(stats.abandons, 0, "{stats:?}");
}

/// AMD off (the default): nothing listens, every answer goes to an agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amd_off_never_listens() {
    let (_d, store, id) = amd_campaign(serde_json::json!({"mode": "off"}), &["+39 02 1234 5005", "+39 02 1234 5006"]).await;
    let (tx, rx) = mpsc::channel(256);
    let lines = Arc::new(Talking { tx, log: Mutex::new(AmdLog::default()), seq: Mutex::new(0) });
    let stats = run_amd(&store, id, lines.clone(), rx).await;
    assert_eq!(lines.log.lock().unwrap().listened, 0);
    assert_eq!(lines.log.lock().unwrap().bridged.len(), 2);
    let rows = store.dialer_attempts(id).await.unwrap();
    assert!(rows.iter().all(|a| a.amd.is_none() && a.result.as_deref() == Some("disposed")), "{rows:?}");
    assert_eq!((stats.live_answers, stats.amd_humans + stats.amd_machines + stats.amd_not_sure), (2, 0));
}
