//! The bounce and notification mailbox reader: the campaign worker's IMAP
//! client. Every message in the configured mailbox is handed, once per UID,
//! to [`handle`]: a fax-gateway status mail ([`crate::fax`]) updates its fax
//! job; anything else goes to [`crate::campaign::process_bounce`] (VERP →
//! outbox row → bounce or complaint event, suppression).
//!
//! It reuses the support desk's machinery — [`crate::sync::SyncCore`]
//! decides what to select, search, fetch, flag and when to wait, and
//! [`crate::imap::connect`] logs in — but not its ingest step: bounces are
//! not tickets. The position lives in the store (`campaign_inbox`, keyed by
//! mailbox, UIDVALIDITY and UID), so a restart resumes after the last
//! handled UID. Each UID is looked up before it is handled and marked right
//! after; the only window for a repeat is a crash between the two, and then
//! the repeat adds one more bounce event on the same row (suppression is
//! idempotent), never a lost one.

use crate::campaign::{BounceOutcome, process_bounce};
use crate::config::MailboxConfig;
use crate::error::{Error, Result};
use crate::fax::{self, FaxStatusMail};
use crate::imap::{ImapSession, connect, uid_set};
use crate::sync::{Step, SyncCore};
use crate::tracking::Signer;
use futures::TryStreamExt;
use std::future::Future;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info, warn};

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

async fn within<T>(d: Duration, what: &'static str, f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(d, f).await.map_err(|_| Error::Timeout(what))?
}

/// The reader of one bounce mailbox; see the module docs.
pub struct BounceReader {
    store: crm::Store,
    cfg: MailboxConfig,
    signer: Signer,
    fax_secret: Option<Vec<u8>>,
    core: SyncCore,
    session: Option<ImapSession>,
    uid_validity: u32,
    /// What each handled UID was, in order (for tests and logs).
    pub handled: Vec<(u32, Handled)>,
}

impl std::fmt::Debug for BounceReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BounceReader").field("mailbox", &self.cfg.name).finish_non_exhaustive()
    }
}

impl BounceReader {
    pub fn new(store: crm::Store, cfg: MailboxConfig, signer: Signer, fax_secret: Option<Vec<u8>>) -> BounceReader {
        let core = SyncCore::new(cfg.sync);
        BounceReader { store, cfg, signer, fax_secret, core, session: None, uid_validity: 0, handled: vec![] }
    }

    /// Reads until `shutdown` turns true, polling (bounces are not urgent
    /// enough to hold an IDLE connection) and reconnecting with back-off.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let span = tracing::info_span!("bounce_mailbox", name = %self.cfg.name);
        let _enter = span.enter();
        while !*shutdown.borrow() {
            if let Err(e) = self.step(&mut shutdown, false).await {
                warn!(error = %e, "bounce mailbox step failed");
            }
            // Keep only a short tail: the list is for tests, not for memory.
            if self.handled.len() > 1000 {
                self.handled.drain(..500);
            }
        }
        self.logout().await;
        info!("bounce mailbox reader stopped");
    }

    /// One pass until there is nothing new; returns what was handled.
    pub async fn sync_once(mut self) -> Result<Vec<(u32, Handled)>> {
        let (_tx, mut rx) = watch::channel(false);
        loop {
            match self.step(&mut rx, true).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    self.logout().await;
                    return Err(e);
                }
            }
        }
        self.logout().await;
        Ok(self.handled)
    }

    async fn logout(&mut self) {
        if let Some(mut s) = self.session.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.logout()).await;
        }
    }

    async fn step(&mut self, shutdown: &mut watch::Receiver<bool>, stop_at_wait: bool) -> Result<bool> {
        let step = self.core.poll_step();
        debug!(?step, "bounce mailbox step");
        let r = match step {
            Step::Select => self.select().await,
            Step::Search { from } => self.search(from).await,
            Step::Fetch(uids) => self.fetch(uids).await,
            Step::Mark(uids) => {
                self.mark(&uids).await;
                self.core.on_marked();
                Ok(())
            }
            Step::Wait { poll, .. } => {
                if stop_at_wait {
                    return Ok(true);
                }
                tokio::select! {
                    _ = tokio::time::sleep(poll) => {}
                    _ = shutdown.changed() => {}
                }
                self.core.on_wake();
                Ok(())
            }
            Step::Reconnect { after } => {
                if stop_at_wait {
                    return Err(Error::Protocol("stay connected (gave up after an error in a one-shot sync)"));
                }
                self.logout().await;
                tokio::select! {
                    _ = tokio::time::sleep(after) => {}
                    _ = shutdown.changed() => {}
                }
                self.core.on_reconnected();
                Ok(())
            }
        };
        if let Err(e) = r {
            self.core.on_failed();
            self.session = None;
            return Err(e);
        }
        Ok(false)
    }

    fn session(&mut self) -> Result<&mut ImapSession> {
        self.session.as_mut().ok_or(Error::Protocol("keep the session"))
    }

    async fn select(&mut self) -> Result<()> {
        if self.session.is_none() {
            self.session = Some(connect(&self.cfg).await?);
            // Polling only: see `run`.
            self.core.on_capabilities(false);
        }
        let folder = self.cfg.folder.clone();
        let timeout = self.cfg.timeout;
        let session = self.session()?;
        let mailbox = within(timeout, "SELECT", async { Ok(session.select(&folder).await?) }).await?;
        let validity = mailbox.uid_validity.ok_or(Error::Protocol("report UIDVALIDITY"))?;
        self.uid_validity = validity;
        let stored = self.store.inbox_max_uid(&self.cfg.name, i64::from(validity)).await?.and_then(|u| u32::try_from(u).ok());
        self.core.on_selected(validity, stored);
        Ok(())
    }

    async fn search(&mut self, from: u32) -> Result<()> {
        let timeout = self.cfg.timeout;
        let session = self.session()?;
        let uids = within(timeout, "UID SEARCH", async { Ok(session.uid_search(format!("UID {from}:*")).await?) }).await?;
        self.core.on_search(uids);
        Ok(())
    }

    async fn fetch(&mut self, uids: Vec<u32>) -> Result<()> {
        let timeout = self.cfg.timeout.saturating_mul(4);
        let set = uid_set(&uids);
        let session = self.session()?;
        let fetches: Vec<_> = within(timeout, "UID FETCH", async { Ok(session.uid_fetch(&set, "(UID BODY.PEEK[])").await?.try_collect().await?) }).await?;
        while session.unsolicited_responses.try_recv().is_ok() {}
        let mut bodies: std::collections::HashMap<u32, Vec<u8>> = fetches.iter().filter_map(|f| Some((f.uid?, f.body()?.to_vec()))).collect();
        let validity = i64::from(self.uid_validity);
        for uid in uids {
            let Some(raw) = bodies.remove(&uid) else {
                self.core.on_vanished(uid);
                continue;
            };
            if !self.store.inbox_seen(&self.cfg.name, validity, i64::from(uid)).await? {
                let now = crm::now_ms();
                let h = handle(&self.store, &self.signer, self.fax_secret.as_deref(), &raw, now).await?;
                self.store.inbox_mark(&self.cfg.name, validity, i64::from(uid), h.label(), now).await?;
                info!(uid, outcome = ?h, "bounce mailbox message handled");
                self.handled.push((uid, h));
            }
            self.core.on_handled(uid);
        }
        self.core.on_batch_done();
        Ok(())
    }

    /// Flags handled messages `\Seen`; a failure only costs a re-flag.
    async fn mark(&mut self, uids: &[u32]) {
        let set = uid_set(uids);
        let timeout = self.cfg.timeout;
        let Ok(session) = self.session() else { return };
        let r = within(timeout, "UID STORE", async {
            let _: Vec<_> = session.uid_store(&set, "+FLAGS.SILENT (\\Seen)").await?.try_collect().await?;
            Ok(())
        })
        .await;
        if let Err(e) = r {
            warn!(error = %e, "could not flag handled bounces");
        }
    }
}
