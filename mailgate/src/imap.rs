//! The thin async IMAP driver: the only module that touches IMAP sockets.
//! It performs the [`Step`]s the [`SyncCore`] asks for with `async-imap`,
//! and hands each fetched batch to [`crate::ingest`]. Plain TCP (loopback
//! tests), implicit TLS (IMAPS) and STARTTLS are supported, with `rustls`
//! trusting the WebPKI roots plus the mailbox's own CA file if it has one.

use crate::config::{AfterIngest, MailboxConfig, Security};
use crate::error::{Error, Result};
use crate::ingest::{self, Ingested};
use crate::parse::ParseOptions;
use crate::sync::{Selected, Step, SyncCore};
use async_imap::Session;
use futures::TryStreamExt;
use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// A byte stream IMAP can run over: plain TCP or TLS.
pub trait ImapStream: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> ImapStream for T {}

/// A logged-in IMAP session over either kind of stream.
pub type ImapSession = Session<Box<dyn ImapStream>>;

async fn within<T>(d: Duration, what: &'static str, f: impl Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(d, f).await.map_err(|_| Error::Timeout(what))?
}

/// Connects, reads the greeting and logs in.
pub async fn connect(cfg: &MailboxConfig) -> Result<ImapSession> {
    let addr = format!("{}:{}", cfg.host, cfg.port);
    let tcp = within(cfg.timeout, "IMAP connect", async {
        TcpStream::connect(&addr).await.map_err(|source| Error::Connect { what: "IMAP", addr: addr.clone(), source })
    })
    .await?;
    let _ = tcp.set_nodelay(true);
    let client = match cfg.security {
        Security::Plain => {
            let mut c = async_imap::Client::new(Box::new(tcp) as Box<dyn ImapStream>);
            read_greeting(&mut c, cfg.timeout).await?;
            c
        }
        Security::Tls => {
            let mut c = async_imap::Client::new(Box::new(tls(cfg, tcp).await?) as Box<dyn ImapStream>);
            read_greeting(&mut c, cfg.timeout).await?;
            c
        }
        Security::StartTls => {
            // RFC 3501 §6.2.1: greeting and STARTTLS in the clear, then the
            // handshake; the server sends no second greeting, and nothing
            // said before the handshake (capabilities) is trusted after it.
            let mut c = async_imap::Client::new(tcp);
            read_greeting(&mut c, cfg.timeout).await?;
            within(cfg.timeout, "STARTTLS", async { c.run_command_and_check_ok("STARTTLS", None).await.map_err(Error::Imap) }).await?;
            let tcp = c.into_inner();
            async_imap::Client::new(Box::new(tls(cfg, tcp).await?) as Box<dyn ImapStream>)
        }
    };
    let session = within(cfg.timeout, "IMAP login", async {
        client.login(&cfg.user, cfg.password.expose()).await.map_err(|(e, _)| Error::Imap(e))
    })
    .await?;
    Ok(session)
}

async fn read_greeting<T: AsyncRead + AsyncWrite + Unpin + Send + Debug>(client: &mut async_imap::Client<T>, timeout: Duration) -> Result<()> {
    within(timeout, "IMAP greeting", async {
        client.read_response().await.map_err(|e| Error::Imap(e.into()))?.ok_or(Error::Protocol("send a greeting"))
    })
    .await?;
    Ok(())
}

/// The TLS client side: the WebPKI roots, plus the mailbox's own CA file
/// when it names one (a private CA, or a test's throwaway one).
async fn tls(cfg: &MailboxConfig, tcp: TcpStream) -> Result<tokio_rustls::client::TlsStream<TcpStream>> {
    use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    use tokio_rustls::rustls::{self};
    let host = &cfg.host;
    let bad = |reason: String| Error::Tls { host: host.to_string(), reason };
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = &cfg.ca_file {
        let pem = std::fs::read(path).map_err(|e| bad(format!("reading the CA file {}: {e}", path.display())))?;
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| bad(format!("the CA file {}: {e}", path.display())))?;
            roots.add(cert).map_err(|e| bad(format!("the CA file {}: {e}", path.display())))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad(format!("the CA file {} holds no certificate", path.display())));
        }
    }
    // The provider is named explicitly: with more than one rustls provider
    // in the build, the process default would be ambiguous.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| bad(e.to_string()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    tokio::time::timeout(cfg.timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| Error::Timeout("TLS handshake"))?
        .map_err(|e| bad(e.to_string()))
}

/// What one pass over a mailbox did (for tests and logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Messages handed to the store in this pass.
    pub handled: usize,
    /// Tickets opened.
    pub created: usize,
    /// Messages the store had already ingested (replays).
    pub duplicates: usize,
    /// Messages stored but refused by the store (left for a person).
    pub quarantined: usize,
    /// The ticket of every handled message, by UID, in handling order.
    pub tickets: Vec<(u32, crm::tickets::TicketNo)>,
}

impl SyncReport {
    fn add(&mut self, uid: u32, i: &Ingested) {
        self.tickets.push((uid, i.outcome.ticket));
        self.handled += 1;
        self.created += usize::from(i.outcome.created);
        self.duplicates += usize::from(i.outcome.duplicate);
    }
}

/// Reads one mailbox forever (until `shutdown` turns true): IDLE where the
/// server offers it, polling otherwise, reconnecting with back-off.
pub async fn run_mailbox(store: crm::Store, cfg: MailboxConfig, opts: Arc<ParseOptions>, shutdown: watch::Receiver<bool>) {
    let span = tracing::info_span!("mailbox", name = %cfg.name);
    let _enter = span.enter();
    Driver::new(cfg, Tickets::new(store, opts, false)).run(shutdown).await;
    info!("mailbox reader stopped");
}

/// Reads a mailbox until there is nothing new (no waiting): one pass, as
/// the tests and a one-shot "fetch now" use it. Returns what it did.
/// `from_start` ignores the stored position and re-reads every UID (a
/// replay: the store must de-duplicate all of them).
pub async fn sync_once(store: crm::Store, cfg: MailboxConfig, opts: Arc<ParseOptions>, from_start: bool) -> Result<SyncReport> {
    Ok(Driver::new(cfg, Tickets::new(store, opts, from_start)).sync_once().await?.report)
}

/// What a mailbox reader does with the messages it fetches: the support
/// desk's ingest ([`Tickets`]) or the campaigns' bounce handling
/// ([`crate::bounces_in`]). The [`Driver`] owns the IMAP side (select,
/// search, fetch, flag, wait, reconnect) for both.
pub(crate) trait Sink: Send {
    /// Whether to hold an IDLE connection where the server offers it.
    fn idle(&self) -> bool {
        true
    }
    /// After SELECT: finishes what a crash left half done and returns the
    /// last handled UID under this UIDVALIDITY (`None`: from the start).
    fn resume(&mut self, cfg: &MailboxConfig, uid_validity: u32) -> impl Future<Output = Result<Option<u32>>> + Send;
    /// Handles a fetched batch (UID order) before any of it is flagged;
    /// `Ok` means every message of it is handled.
    fn take(&mut self, cfg: &MailboxConfig, uid_validity: u32, batch: Vec<ingest::Fetched>) -> impl Future<Output = Result<()>> + Send;
}

/// The support desk's sink: raw mail stored, then tickets, in one store
/// transaction per batch.
pub(crate) struct Tickets {
    store: crm::Store,
    opts: Arc<ParseOptions>,
    from_start: bool,
    report: SyncReport,
}

impl Tickets {
    fn new(store: crm::Store, opts: Arc<ParseOptions>, from_start: bool) -> Tickets {
        Tickets { store, opts, from_start, report: SyncReport::default() }
    }
}

impl Sink for Tickets {
    async fn resume(&mut self, cfg: &MailboxConfig, uid_validity: u32) -> Result<Option<u32>> {
        // Anything stored but not ingested (a crash between the two) is
        // finished first, so the position really is "all handled".
        for done in ingest::replay_uningested(&self.store, cfg, &self.opts).await? {
            let uid = u32::try_from(done.uid).unwrap_or(0);
            self.report.add(uid, &done);
        }
        if self.from_start {
            return Ok(None);
        }
        Ok(self.store.max_mail_uid(&cfg.name, i64::from(uid_validity)).await?.and_then(|u| u32::try_from(u).ok()))
    }

    async fn take(&mut self, cfg: &MailboxConfig, uid_validity: u32, batch: Vec<ingest::Fetched>) -> Result<()> {
        // The whole batch is stored and ingested (one transaction) before
        // any of it is reported handled, so before any of it is flagged.
        for (uid, done) in ingest::handle_batch(&self.store, cfg, &self.opts, uid_validity, batch).await? {
            match done {
                Some(done) => self.report.add(uid, &done),
                None => self.report.quarantined += 1,
            }
        }
        Ok(())
    }
}

/// One mailbox's IMAP side around a [`Sink`].
pub(crate) struct Driver<S> {
    cfg: MailboxConfig,
    core: SyncCore,
    session: Option<ImapSession>,
    uid_validity: u32,
    pub(crate) sink: S,
}

impl<S: Sink> Driver<S> {
    pub(crate) fn new(cfg: MailboxConfig, sink: S) -> Self {
        let core = SyncCore::new(cfg.sync);
        Driver { cfg, core, session: None, uid_validity: 0, sink }
    }

    /// Reads until `shutdown` turns true (errors are logged and retried
    /// with back-off by the core).
    pub(crate) async fn run(&mut self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if let Err(e) = self.step(&mut shutdown, false).await {
                warn!(error = %e, "mailbox step failed");
            }
        }
        self.logout().await;
    }

    /// One pass until there is nothing new; an error ends it.
    pub(crate) async fn sync_once(mut self) -> Result<S> {
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
        Ok(self.sink)
    }

    async fn logout(&mut self) {
        if let Some(mut s) = self.session.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), s.logout()).await;
        }
    }

    /// Performs one step. Returns `Ok(true)` when the core wants to wait and
    /// `stop_at_wait` is set. Errors have already been reported to the core.
    async fn step(&mut self, shutdown: &mut watch::Receiver<bool>, stop_at_wait: bool) -> Result<bool> {
        let step = self.core.poll_step();
        debug!(?step, "imap step");
        let r = match step {
            Step::Select => self.select().await,
            Step::Search { from } => self.search(from).await,
            Step::Fetch(uids) => self.fetch(uids).await,
            Step::Mark(uids) => {
                self.mark(&uids).await;
                self.core.on_marked();
                Ok(())
            }
            Step::Wait { idle, poll } => {
                if stop_at_wait {
                    return Ok(true);
                }
                self.wait(idle, poll, shutdown).await
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
        self.note_news();
        Ok(false)
    }

    /// Passes news the server sent with the last command's response on to
    /// the core.
    fn note_news(&mut self) {
        if let Some(s) = &self.session
            && any_news(|| s.unsolicited_responses.try_recv().ok())
        {
            self.core.on_news();
        }
    }

    fn session(&mut self) -> Result<&mut ImapSession> {
        self.session.as_mut().ok_or(Error::Protocol("keep the session"))
    }

    async fn select(&mut self) -> Result<()> {
        if self.session.is_none() {
            let mut s = connect(&self.cfg).await?;
            let idle = self.sink.idle() && within(self.cfg.timeout, "CAPABILITY", async { Ok(s.capabilities().await?) }).await?.has_str("IDLE");
            self.core.on_capabilities(idle);
            self.session = Some(s);
        }
        let folder = self.cfg.folder.clone();
        let timeout = self.cfg.timeout;
        let session = self.session()?;
        let mailbox = within(timeout, "SELECT", async { Ok(session.select(&folder).await?) }).await?;
        let validity = mailbox.uid_validity.ok_or(Error::Protocol("report UIDVALIDITY"))?;
        self.uid_validity = validity;
        let stored = self.sink.resume(&self.cfg, validity).await?;
        if let Selected::ValidityChanged { old, new } = self.core.on_selected(validity, stored) {
            warn!(old, new, "UIDVALIDITY changed: re-reading the mailbox (duplicates are dropped by Message-ID)");
        }
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
        let set = uid_set(&uids);
        let timeout = self.cfg.timeout;
        let max = self.cfg.max_message_bytes;
        let session = self.session()?;
        // Sizes first, so an oversized message is fetched as its header only.
        let sizes: HashMap<u32, u32> = within(timeout, "UID FETCH sizes", async {
            let fetches: Vec<_> = session.uid_fetch(&set, "(UID RFC822.SIZE)").await?.try_collect().await?;
            Ok(fetches.iter().filter_map(|f| Some((f.uid?, f.size.unwrap_or(0)))).collect())
        })
        .await?;
        let (small, large): (Vec<u32>, Vec<u32>) = uids.iter().copied().filter(|u| sizes.contains_key(u)).partition(|u| sizes[u] <= max);
        let mut bodies: HashMap<u32, (Vec<u8>, bool)> = HashMap::new();
        // A generous timeout: a batch of large messages takes a while.
        let fetch_timeout = timeout.saturating_mul(4);
        if !small.is_empty() {
            let fetches: Vec<_> = within(fetch_timeout, "UID FETCH bodies", async {
                Ok(session.uid_fetch(uid_set(&small), "(UID BODY.PEEK[])").await?.try_collect().await?)
            })
            .await?;
            for f in &fetches {
                if let (Some(uid), Some(body)) = (f.uid, f.body()) {
                    bodies.insert(uid, (body.to_vec(), false));
                }
            }
        }
        if !large.is_empty() {
            let fetches: Vec<_> = within(fetch_timeout, "UID FETCH headers", async {
                Ok(session.uid_fetch(uid_set(&large), "(UID BODY.PEEK[HEADER])").await?.try_collect().await?)
            })
            .await?;
            for f in &fetches {
                if let (Some(uid), Some(h)) = (f.uid, f.header()) {
                    bodies.insert(uid, (h.to_vec(), true));
                }
            }
        }
        let mut batch = Vec::with_capacity(uids.len());
        let mut vanished = Vec::new();
        for &uid in &uids {
            match bodies.remove(&uid) {
                Some((raw, truncated)) => {
                    let size = sizes.get(&uid).copied().unwrap_or(0);
                    let raw = if truncated { ingest::truncated_raw(raw, size) } else { raw };
                    batch.push(ingest::Fetched { uid, raw, truncated });
                }
                None => {
                    debug!(uid, "message vanished before it was fetched");
                    vanished.push(uid);
                }
            }
        }
        let handled: Vec<u32> = batch.iter().map(|f| f.uid).collect();
        self.sink.take(&self.cfg, self.uid_validity, batch).await?;
        for uid in handled {
            self.core.on_handled(uid);
        }
        // Only now: a vanished UID moves the position past the UIDs below
        // it, which must be handled first.
        for uid in vanished {
            self.core.on_vanished(uid);
        }
        self.core.on_batch_done();
        Ok(())
    }

    /// Flags (and moves) handled messages. A failure is only logged: the
    /// store already has them, and the next session resumes after them.
    async fn mark(&mut self, uids: &[u32]) {
        let set = uid_set(uids);
        let timeout = self.cfg.timeout;
        let after = self.cfg.after.clone();
        let Ok(session) = self.session() else { return };
        let r = within(timeout, "UID STORE", async {
            let _: Vec<_> = session.uid_store(&set, "+FLAGS.SILENT (\\Seen)").await?.try_collect().await?;
            if let AfterIngest::Move(folder) = &after {
                session.uid_mv(&set, folder).await?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = r {
            warn!(error = %e, "could not flag handled messages on the server");
        }
    }

    async fn wait(&mut self, idle: bool, poll: Duration, shutdown: &mut watch::Receiver<bool>) -> Result<()> {
        if !idle {
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
            self.core.on_wake();
            return Ok(());
        }
        let session = self.session.take().ok_or(Error::Protocol("keep the session"))?;
        let unsolicited = session.unsolicited_responses.clone();
        let mut handle = session.idle();
        within(self.cfg.timeout, "IDLE", async { Ok(handle.init().await?) }).await?;
        // `async-imap` routes what came before `+ idling` to the unsolicited
        // channel, where `wait` never looks: a mail that arrived between
        // the last search and here must end the IDLE at once.
        let news_before = any_news(|| unsolicited.try_recv().ok());
        if !news_before {
            // An IDLE lasts at most the renewal interval (servers log idle
            // clients out after 30 minutes) and at most the fallback poll.
            let bound = self.cfg.idle_timeout.min(poll);
            let (news, stop) = handle.wait_with_timeout(bound);
            tokio::select! {
                r = news => { r?; }
                _ = tokio::time::sleep(bound) => { drop(stop); }
                _ = shutdown.changed() => { drop(stop); }
            }
        }
        let session = within(self.cfg.timeout, "IDLE DONE", async { Ok(handle.done().await?) }).await?;
        self.session = Some(session);
        self.note_news();
        self.core.on_wake();
        Ok(())
    }
}

/// Empties a channel of unsolicited responses (it is bounded, and what
/// does not fit is dropped) and says whether any announced new messages:
/// `EXISTS` or `RECENT` may come with the response to any command, and the
/// core must search again rather than idle past them.
fn any_news(mut next: impl FnMut() -> Option<async_imap::types::UnsolicitedResponse>) -> bool {
    use async_imap::types::UnsolicitedResponse as U;
    let mut news = false;
    while let Some(r) = next() {
        news |= matches!(r, U::Exists(_) | U::Recent(_));
    }
    news
}

/// `1,2,3,7` → `1:3,7`.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn uid_sets() {
        assert_eq!(super::uid_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(super::uid_set(&[5]), "5");
        assert_eq!(super::uid_set(&[3, 1, 2, 2]), "1:3");
    }
}
