//! The bounce and notification mailbox reader: the campaign worker's IMAP
//! client. Every message in the configured mailbox is handed, once per UID,
//! to [`handle`]: a fax-gateway status mail ([`crate::fax`]) updates its fax
//! job; anything else goes to [`crate::campaign::process_bounce`] (VERP →
//! outbox row → bounce or complaint event, suppression).
//!
//! It is the support desk's IMAP driver ([`crate::imap::Driver`]: select,
//! search, fetch, flag, wait, reconnect) with another sink: bounces are not
//! tickets. It polls (bounces are not urgent enough to hold an IDLE
//! connection); a message over the mailbox's size limit is handled from its
//! header, as the support desk does. The position lives in the store (`campaign_inbox`, keyed by
//! mailbox, UIDVALIDITY and UID), so a restart resumes after the last
//! handled UID. Each UID is looked up before it is handled and marked right
//! after; the only window for a repeat is a crash between the two, and then
//! the repeat adds one more bounce event on the same row (suppression is
//! idempotent), never a lost one.

use crate::campaign::{BounceOutcome, process_bounce};
use crate::config::MailboxConfig;
use crate::error::{Error, Result};
use crate::fax::{self, FaxStatusMail};
use crate::imap::{Driver, Sink};
use crate::ingest::Fetched;
use crate::tracking::Signer;
use tokio::sync::watch;
use tracing::{info, warn};

/// What one message of the mailbox turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Handled {
    Bounce(BounceOutcome),
    /// A fax status for `job_ref`; `moved` if the job changed state.
    Fax { job_ref: String, moved: bool },
}

impl Handled {
    fn label(&self) -> &'static str {
        match self {
            Handled::Bounce(BounceOutcome::Bounced { .. }) => "bounce",
            Handled::Bounce(BounceOutcome::Complained { .. }) => "complaint",
            Handled::Bounce(BounceOutcome::Ignored) => "ignored",
            Handled::Fax { .. } => "fax",
        }
    }
}

/// Handles one raw message (pure of IMAP; the tests call it directly).
/// A malformed message is `Ignored`, never an error; errors are the
/// store's (transient) ones.
pub async fn handle(store: &crm::Store, signer: &Signer, fax_secret: Option<&[u8]>, raw: &[u8], now: crm::Millis) -> Result<Handled> {
    if let Some(key) = fax_secret
        && let Some(status) = FaxStatusMail::parse(raw)
    {
        return match fax::apply_status_mail(store, key, &status, now).await {
            Ok(moved) => Ok(Handled::Fax { job_ref: status.job_ref.clone(), moved }),
            Err(Error::Store(e)) => Err(Error::Store(e)),
            Err(e) => {
                warn!(error = %e, job = %status.job_ref, "fax status mail refused");
                Ok(Handled::Bounce(BounceOutcome::Ignored))
            }
        };
    }
    Ok(Handled::Bounce(process_bounce(store, signer, raw, now).await?))
}

/// The reader of one bounce mailbox; see the module docs.
pub struct BounceReader {
    name: String,
    driver: Driver<Bounces>,
}

struct Bounces {
    store: crm::Store,
    signer: Signer,
    fax_secret: Option<Vec<u8>>,
    /// What each handled UID was, in order (for tests and logs).
    handled: Vec<(u32, Handled)>,
}

impl std::fmt::Debug for BounceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BounceReader").field("mailbox", &self.name).finish_non_exhaustive()
    }
}

impl BounceReader {
    pub fn new(store: crm::Store, cfg: MailboxConfig, signer: Signer, fax_secret: Option<Vec<u8>>) -> BounceReader {
        BounceReader { name: cfg.name.clone(), driver: Driver::new(cfg, Bounces { store, signer, fax_secret, handled: vec![] }) }
    }

    /// Reads until `shutdown` turns true, polling and reconnecting with
    /// back-off.
    pub async fn run(mut self, shutdown: watch::Receiver<bool>) {
        let span = tracing::info_span!("bounce_mailbox", name = %self.name);
        let _enter = span.enter();
        self.driver.run(shutdown).await;
        info!("bounce mailbox reader stopped");
    }

    /// One pass until there is nothing new; returns what was handled.
    pub async fn sync_once(self) -> Result<Vec<(u32, Handled)>> {
        Ok(self.driver.sync_once().await?.handled)
    }
}

impl Sink for Bounces {
    fn idle(&self) -> bool {
        false
    }

    async fn resume(&mut self, cfg: &MailboxConfig, uid_validity: u32) -> Result<Option<u32>> {
        Ok(self.store.inbox_max_uid(&cfg.name, i64::from(uid_validity)).await?.and_then(|u| u32::try_from(u).ok()))
    }

    async fn take(&mut self, cfg: &MailboxConfig, uid_validity: u32, batch: Vec<Fetched>) -> Result<()> {
        let validity = i64::from(uid_validity);
        for Fetched { uid, raw, .. } in batch {
            if self.store.inbox_seen(&cfg.name, validity, i64::from(uid)).await? {
                continue;
            }
            let now = crm::now_ms();
            let h = handle(&self.store, &self.signer, self.fax_secret.as_deref(), &raw, now).await?;
            self.store.inbox_mark(&cfg.name, validity, i64::from(uid), h.label(), now).await?;
            info!(uid, outcome = ?h, "bounce mailbox message handled");
            self.handled.push((uid, h));
        }
        // Keep only a short tail: the list is for tests, not for memory.
        if self.handled.len() > 1000 {
            self.handled.drain(..500);
        }
        Ok(())
    }
}
