//! The telephony wiring of the composition root: binds the SIP endpoint,
//! starts the media thread and the B2BUA, implements the two traits the
//! `sip` crate asks for ([`sip::Credentials`] against the agents' SIP
//! secrets in the CRM, [`sip::b2bua::CallRecordSink`] against call records),
//! and turns an inbound INVITE into a screen-pop the moment it arrives.
//!
//! Inbound calls have no queue to land in until the dialer and the console
//! take them: they ring, the caller's card is broadcast to subscribed
//! consoles, and an unanswered call is released with 480 after
//! the configured ring limit.

use crm::{PhoneNumber, Store};
use serde::Serialize;
use sip::b2bua::{B2bua, CallEvent, CallRecord, CallRecordSink, Direction};
use sip::media::{Media, MediaConfig};
use sip::{Config, Credentials, Endpoint, Event, Outcome};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;

/// How often the registrar's credential cache is refreshed from the store.
const CREDENTIAL_REFRESH: Duration = Duration::from_secs(5);

/// Raised the moment an INVITE arrives, before any answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScreenPop {
    pub call_id: String,
    /// The caller in E.164 when it parsed, else as signalled.
    pub caller: String,
    pub caller_e164: Option<PhoneNumber>,
    pub callee: String,
    pub parties: Vec<crm::parties::PartyCard>,
    /// Unix millis when the INVITE arrived.
    pub at: i64,
}

/// The running telephony side.
pub struct Telephony {
    pub b2bua: B2bua,
    pub local: SocketAddr,
    pub pops: broadcast::Sender<ScreenPop>,
    /// Answers and ends of calls, for the dialer's campaign tasks.
    pub line_events: broadcast::Sender<dialer::runtime::LineEvent>,
    /// `(agent leg, customer call)` each time the dialer bridges a call to
    /// an agent (for the console's card pop).
    pub bridges: broadcast::Sender<(String, String)>,
    tasks: JoinSet<()>,
    shutdown: watch::Sender<bool>,
}

impl Telephony {
    /// Hangs up live calls and stops every task.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The registrar's view of agents' SIP secrets, refreshed from the store in
/// the background (the sans-IO core asks synchronously).
#[derive(Default, Clone)]
struct SecretCache(Arc<RwLock<HashMap<String, String>>>);

impl Credentials for SecretCache {
    fn password(&self, username: &str) -> Option<String> {
        self.0.read().ok()?.get(&username.to_lowercase()).cloned()
    }
}

impl SecretCache {
    async fn refresh(&self, store: &Store) {
        match store.sip_secrets().await {
            Ok(list) => {
                if let Ok(mut m) = self.0.write() {
                    *m = list.into_iter().collect();
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot refresh SIP credentials"),
        }
    }
}

/// Writes each finished call to the store, linked to the customer's party.
struct StoreSink {
    store: Store,
    region: crm::Region,
    rt: tokio::runtime::Handle,
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Completed { .. } => "completed",
        Outcome::Busy => "busy",
        Outcome::NoAnswer => "no_answer",
        Outcome::BadNumber => "bad_number",
        Outcome::CarrierTrouble { .. } => "carrier_trouble",
        Outcome::Rejected => "rejected",
        Outcome::Cancelled => "cancelled",
        #[allow(unreachable_patterns)]
        _ => "other",
    }
}

impl CallRecordSink for StoreSink {
    fn call_ended(&self, r: CallRecord) {
        let inbound = r.direction == Direction::Inbound;
        let customer_raw = if inbound { &r.from } else { &r.to };
        let rec = crm::calls::NewCallRecord {
            call_id: r.call.to_string(),
            inbound,
            from_user: r.from.clone(),
            to_user: r.to.clone(),
            customer: PhoneNumber::parse(customer_raw, self.region).ok(),
            agent_id: None,
            started_at: millis(r.started),
            ringing_at: r.ringing.map(millis),
            answered_at: r.answered.map(millis),
            ended_at: millis(r.ended),
            outcome: outcome_name(&r.outcome).to_string(),
            sip_status: r.sip_status.map(i64::from),
            recording: r.recording.map(|p| p.to_string_lossy().to_string()),
            bridged_with: r.bridged_with.iter().map(|c| c.to_string()).collect(),
        };
        let store = self.store.clone();
        self.rt.spawn(async move {
            if let Err(e) = store.record_call(rec).await {
                tracing::error!(error = %e, "cannot write a call record");
            }
        });
    }
}

/// Binds SIP on `addr` and starts everything; see the module docs.
pub async fn start(addr: SocketAddr, trunks: Vec<sip::guard::TrunkAddr>, store: Store, ring_limit: Duration) -> anyhow::Result<Telephony> {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let socket = sip::driver::bind_udp(addr)?;
    let local = socket.local_addr()?;
    let creds = SecretCache::default();
    creds.refresh(&store).await;
    let mut config = Config::new(local);
    config.trusted_trunks = trunks;
    let endpoint = Endpoint::new(config, Some(Arc::new(creds.clone())));
    // TCP on the same address and port as UDP (RFC 3261 §18: a server
    // listens on both). A taken TCP port is not fatal: UDP still serves.
    let tcp = match sip::driver::bind_tcp(local) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::warn!(%local, error = %e, "SIP over TCP unavailable; UDP only");
            None
        }
    };
    let tcp_on = tcp.is_some();
    let (handle, sip_events, sip_task) = sip::driver::spawn_with_tcp(socket, tcp, endpoint, shutdown_rx.clone())?;
    let (media, media_events, _media_thread) = Media::start(MediaConfig::new(local.ip()))?;
    let sink = Arc::new(StoreSink { store: store.clone(), region: store.default_region(), rt: tokio::runtime::Handle::current() });
    let (b2bua, mut events, pump) = B2bua::spawn(handle, sip_events, media, media_events, sink);
    let (pops, _) = broadcast::channel(1024);
    let (line_events, _) = broadcast::channel(4096);
    let (bridges, _) = broadcast::channel(1024);
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let _ = sip_task.await;
    });
    tasks.spawn(async move {
        let _ = pump.await;
    });
    {
        let (store, mut stop) = (store.clone(), shutdown_rx.clone());
        tasks.spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CREDENTIAL_REFRESH) => creds.refresh(&store).await,
                    _ = stop.changed() => break,
                }
            }
        });
    }
    {
        let (store, pops, b2b, mut stop, lines) = (store.clone(), pops.clone(), b2bua.clone(), shutdown_rx, line_events.clone());
        tasks.spawn(async move {
            loop {
                let ev = tokio::select! {
                    ev = events.recv() => match ev { Some(ev) => ev, None => break },
                    _ = stop.changed() => break,
                };
                if let CallEvent::Sip(e) = &ev {
                    if let Some(le) = crate::dialer_lines::line_event(e) {
                        let _ = lines.send(le);
                    }
                }
                if let CallEvent::Sip(Event::Incoming(inc)) = ev {
                    let at = millis(SystemTime::now());
                    let e164 = PhoneNumber::parse(&inc.caller, store.default_region()).ok();
                    let parties = match &e164 {
                        Some(n) => store.lookup_by_phone(n).await.unwrap_or_default(),
                        None => Vec::new(),
                    };
                    tracing::info!(call_id = %inc.call, caller = %inc.caller, found = parties.len(), "inbound call");
                    let _ = pops.send(ScreenPop { call_id: inc.call.to_string(), caller: inc.caller.clone(), caller_e164: e164, callee: inc.callee.clone(), parties, at });
                    let b2b = b2b.clone();
                    tokio::spawn(async move {
                        if b2b.ring(&inc.call).await.is_ok() {
                            tokio::time::sleep(ring_limit).await;
                            // Nobody took it: release it (a no-op if it already ended).
                            let _ = b2b.reject(&inc.call, 480).await;
                        }
                    });
                }
            }
        });
    }
    tracing::info!(%local, tcp = tcp_on, "SIP listening (UDP and TCP)");
    Ok(Telephony { b2bua, local, pops, line_events, bridges, tasks, shutdown })
}
