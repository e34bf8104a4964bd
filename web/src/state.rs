//! The state every handler receives: the store and the process metrics.

use crate::metrics::Metrics;
use crm::Store;
use std::sync::Arc;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Mark cookies `Secure` (when served behind TLS).
    pub secure_cookies: bool,
    /// Resolved actors by token hash, for a few seconds (see `auth`).
    pub actors: Arc<crate::auth::ActorCache>,
    /// Screen-pops from the telephony side (none when SIP is off).
    pub pops: Option<tokio::sync::broadcast::Sender<crate::telephony::ScreenPop>>,
    /// Outbound dialer campaign tasks running in this process.
    pub dialers: crate::api::dialer::Dialers,
    /// The console's agent desks: browser softphone legs and desk events.
    pub desk: crate::console::desk::Desk,
}
