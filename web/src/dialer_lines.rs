//! The dialer's line source in production: [`dialer::runtime::Lines`] over
//! the B2BUA, and the starter that [`crate::api::dialer::Dialers`] uses to
//! run campaign tasks on this node.
//!
//! The B2BUA's call events are broadcast once by the telephony task
//! ([`crate::telephony::Telephony::line_events`]); each campaign task gets
//! a forwarder that turns answers and ends into [`LineEvent`]s. A task
//! ignores calls it did not place, so no routing table is needed.

use crate::api::dialer::{Dialers, Starter};
use crm::Store;
use crm::dialer_store::DialerCampaignId;
use dialer::runtime::{self, LineEnd, LineEvent, Lines, RuntimeOptions};
use sip::b2bua::B2bua;
use sip::msg::CallId;
use sip::{Dial, Outcome};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// Lines through the B2BUA.
pub struct B2buaLines {
    pub b2bua: B2bua,
    /// Told `(agent leg, call)` after each bridge (the console pops the card).
    pub bridges: Option<broadcast::Sender<(String, String)>>,
}

fn call_id(s: &str) -> Result<CallId, String> {
    CallId::parse(s).ok_or_else(|| format!("bad call id {s:?}"))
}

impl Lines for B2buaLines {
    async fn dial(&self, number: &str, caller: &str, trunk: SocketAddr, ring: Duration) -> Result<String, String> {
        let d = Dial {
            trunk,
            number: number.to_string(),
            caller: caller.to_string(),
            // The B2BUA replaces this with the leg it allocates.
            rtp: SocketAddr::from(([0, 0, 0, 0], 0)),
            auth: None,
            ring_timeout: Some(ring),
        };
        self.b2bua.dial(d).await.map(|c| c.to_string()).map_err(|e| e.to_string())
    }

    async fn bridge(&self, agent_leg: &str, call: &str) -> Result<(), String> {
        self.b2bua.bridge(&call_id(agent_leg)?, &call_id(call)?).await.map_err(|e| e.to_string())?;
        if let Some(b) = &self.bridges {
            let _ = b.send((agent_leg.to_string(), call.to_string()));
        }
        Ok(())
    }

    async fn abandon(&self, call: &str, prompt: &str) -> Result<(), String> {
        let c = call_id(call)?;
        let loaded = if prompt.is_empty() { None } else { sip::wav::Prompt::load(std::path::Path::new(prompt), sip::g711::Codec::Pcmu).ok() };
        match loaded {
            Some(p) => {
                let ms = p.duration_ms();
                self.b2bua.play(&c, p).await.map_err(|e| e.to_string())?;
                // Hang up once the message has played, without holding the
                // campaign task for its length.
                let b = self.b2bua.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(ms + 200)).await;
                    let _ = b.hangup(&c).await;
                });
                Ok(())
            }
            None => self.b2bua.hangup(&c).await.map_err(|e| e.to_string()),
        }
    }

    async fn hangup(&self, call: &str) -> Result<(), String> {
        self.b2bua.hangup(&call_id(call)?).await.map_err(|e| e.to_string())
    }

    async fn record(&self, call: &str, path: &std::path::Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        self.b2bua.record(&call_id(call)?, Some(path)).await.map_err(|e| e.to_string())
    }

    async fn listen(&self, call: &str, max: Duration) -> Result<mpsc::Receiver<[i16; 160]>, String> {
        // 64 frames (1.28 s) of slack before the media thread drops any.
        self.b2bua.tap(&call_id(call)?, max, 64).await.map_err(|e| e.to_string())
    }

    async fn dialog(&self, call: &str) -> Option<String> {
        self.b2bua.dialog(&CallId::parse(call)?).await
    }

    async fn leg_alive(&self, leg: &str) -> bool {
        match CallId::parse(leg) {
            Some(c) => self.b2bua.leg(&c).await.is_some(),
            None => false,
        }
    }
}

/// Maps a SIP event to what the dialer needs to hear.
pub fn line_event(ev: &sip::Event) -> Option<LineEvent> {
    use sip::Event;
    match ev {
        Event::Answered { call, .. } => Some(LineEvent::Answered { call: call.to_string() }),
        Event::Ended { call, outcome, .. } => {
            let how = match outcome {
                Outcome::Completed { .. } => LineEnd::Completed,
                Outcome::Busy => LineEnd::Busy,
                Outcome::NoAnswer | Outcome::Cancelled => LineEnd::NoAnswer,
                _ => LineEnd::Failed,
            };
            Some(LineEvent::Ended { call: call.to_string(), how })
        }
        _ => None,
    }
}

/// The node id under which this process claims leads: stable across
/// restarts so that [`runtime::recover`] finds what a crash left behind.
pub fn node_id() -> String {
    std::env::var("CENTRALINO_NODE_ID").unwrap_or_else(|_| "local".into())
}

/// Recovers this node's leads, gives `dialers` a starter over the B2BUA,
/// and restarts campaigns that were running when the process stopped.
/// How long recovery waits for the calls a crash left up to end: a BYE
/// or CANCEL that gets no answer ends the call after 64·T1 = 32 s.
const END_LEFT_CALLS: Duration = Duration::from_secs(40);

/// Ends at the carrier the calls this node left up when it died (their
/// dialogs were kept in the store): BYE for answered ones, CANCEL for
/// ringing ones. Returns once each has ended (answered, refused or timed
/// out) — only then may their leads be recycled and dialed again.
/// Returns how many were ended.
pub async fn end_left_calls(store: &Store, b2bua: &B2bua, events: &broadcast::Sender<LineEvent>, node: &str) -> usize {
    let open = match store.dialer_dialogs_open(node).await {
        Ok(o) => o,
        Err(e) => {
            tracing::error!(error = %e, "dialer: reading dialogs left up failed");
            return 0;
        }
    };
    if open.is_empty() {
        return 0;
    }
    // Subscribed before the first BYE goes out, so no end is missed.
    let mut sub = events.subscribe();
    let mut pending = std::collections::HashSet::new();
    for (call, answered, dialog) in &open {
        match b2bua.adopt(dialog).await {
            Ok(c) => {
                tracing::warn!(call = %c, answered, "dialer: ending a call left up by the previous process");
                pending.insert(c.to_string());
            }
            Err(e) => {
                tracing::warn!(call = %call, error = %e, "dialer: a kept dialog cannot be ended; forgotten");
                let _ = store.dialer_dialog_end(call).await;
            }
        }
    }
    let n = pending.len();
    let deadline = tokio::time::Instant::now() + END_LEFT_CALLS;
    while !pending.is_empty() {
        match tokio::time::timeout_at(deadline, sub.recv()).await {
            Ok(Ok(LineEvent::Ended { call, .. })) => {
                if pending.remove(&call) {
                    let _ = store.dialer_dialog_end(&call).await;
                }
            }
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => break,
        }
    }
    if !pending.is_empty() {
        // Not reachable with the endpoint's own timers (every BYE/CANCEL
        // ends by 64·T1); kept, to be tried again at the next start.
        tracing::error!(left = pending.len(), "dialer: calls left up did not end in time");
    }
    n
}

pub async fn wire(dialers: &Dialers, store: Store, b2bua: B2bua, events: broadcast::Sender<LineEvent>, bridges: Option<broadcast::Sender<(String, String)>>) {
    let node = node_id();
    // Before any lead is recycled: a lead whose call is still up at the
    // carrier must not be dialed again until that call has ended.
    let ended = end_left_calls(&store, &b2bua, &events, &node).await;
    if ended > 0 {
        tracing::warn!(ended, node = %node, "dialer: ended calls left up by the previous process");
    }
    match runtime::recover(&store, &node).await {
        Ok(n) if n > 0 => tracing::warn!(recycled = n, node = %node, "dialer: recovered leads left in flight"),
        Ok(_) => {}
        Err(e) => tracing::error!(error = %e, "dialer: recovery failed"),
    }
    let lines = Arc::new(B2buaLines { b2bua: b2bua.clone(), bridges });
    let st = store.clone();
    let starter: Starter = Arc::new(move |id: DialerCampaignId| {
        let (store, lines, events, node) = (st.clone(), lines.clone(), events.clone(), node.clone());
        Box::pin(async move {
            let (tx, rx) = mpsc::channel(1024);
            let mut sub = events.subscribe();
            tokio::spawn(async move {
                loop {
                    match sub.recv().await {
                        Ok(ev) => {
                            if tx.send(ev).await.is_err() {
                                break;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(n)) => tracing::warn!(missed = n, "dialer: line events lagged"),
                        Err(broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
            let (h, _join) = runtime::spawn(store, lines, id, rx, RuntimeOptions::new(node)).await?;
            Ok(h)
        })
    });
    dialers.set_starter(starter, b2bua);
    if let Err(e) = dialers.resume_running(&store).await {
        tracing::error!(error = %e, "dialer: restarting running campaigns failed");
    }
}
