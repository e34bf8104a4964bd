//! Campaign email out: the worker that drains the campaign outbox through
//! the relay, and the bounce handler that maps reports back to it.
//!
//! For each claimed row ([`crm::Store::claim_outbox`], which has already
//! dropped recipients without consent or with a suppressed address) the
//! [`CampaignSender`] merges the template with the party, rewrites links to
//! signed tracking URLs and adds the open pixel ([`crate::tracking`]), adds
//! the per-recipient Message-ID fixed at launch, `List-Unsubscribe` with
//! `List-Unsubscribe-Post: List-Unsubscribe=One-Click` (RFC 8058), and a VERP
//! envelope sender `bounces+TOKEN@domain` whose token names the row, signs
//! with DKIM ([`crate::dkim`]) and hands the mail to a pooled `lettre`
//! transport. Send windows and throttles ([`crate::pacing`]) decide when:
//! outside the window nothing is claimed, and a row a throttle refuses goes
//! back to the queue with a not-before time.
//!
//! Delivery is at least once with a stable Message-ID, as for the support
//! desk: the row is marked sent after the relay's 250.
//!
//! ## Throughput: batched reads, a group commit, a fast relay pool
//! A round claims up to `batch` rows in one statement (consent and
//! suppression checked per batch, [`crm::Store::claim_outbox`]), loads every
//! recipient's merge context in a few statements
//! ([`crm::Store::merge_contexts`]), and sends `concurrency` mails at once
//! through [`relay::Relay`] (its own pool, `TCP_NODELAY`, no `NOOP` before
//! each reuse). Completions are **group-committed**: they are collected
//! and written in one transaction ([`crm::Store::complete_outbox_many`])
//! every `commit_rows` mails or `commit_every`, whichever comes first, while
//! the next mails are already on the wire.
//!
//! **The at-most-once window, stated plainly.** A row stays `sending`
//! (under its lease) from the claim until its completion is committed. If
//! the process dies after the relay's 250 and before that commit — at most
//! `commit_rows` mails, accepted within the last `commit_every` — those rows
//! are claimed again when their lease expires and re-sent **with the same
//! Message-ID** (fixed at launch, stored on the row). So a crash can
//! duplicate at most one commit group's worth of mails, and each duplicate
//! is recognisable as one (same Message-ID: MTAs, mailbox stores and mail
//! clients that de-duplicate on it show it once). No mail whose row is
//! committed `sent` is ever sent again; no row is lost.

pub mod relay;

use crate::dkim::Dkim;
use crate::error::{Error, Result};
use crate::pacing::{Limits, SendWindow, Throttle};
use crate::tracking::{self, Ids, Signer};
use crate::SmtpConfig;
use crm::campaigns::{Claimed, Completion, MessageId, Outcome, SendInfo};
use crm::campaigns_template::{self, Rendered};
use crm::{Channel, EmailAddress, Millis};
use futures::StreamExt;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use relay::{Relay, RelayError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{Instrument, info, warn};

/// After this many attempts a transient failure becomes final.
const MAX_ATTEMPTS: i64 = 8;

/// Everything the campaign sender needs.
#[derive(Debug, Clone)]
pub struct CampaignConfig {
    pub smtp: SmtpConfig,
    pub from: EmailAddress,
    pub from_name: Option<String>,
    /// The domain of the VERP return path `bounces+TOKEN@domain`.
    pub bounce_domain: String,
    /// The public base URL of the tracking and unsubscribe endpoints.
    pub tracking_base: String,
    pub window: Option<SendWindow>,
    pub limits: Limits,
    /// Mails in flight at once (the relay pool's size).
    pub concurrency: usize,
    /// Rows claimed per round.
    pub batch: i64,
    pub lease: Duration,
    pub poll: Duration,
    /// Group commit: completions written together every this many mails …
    pub commit_rows: usize,
    /// … or this long after the first one waiting, whichever comes first.
    pub commit_every: Duration,
}

impl CampaignConfig {
    pub fn new(smtp: SmtpConfig, bounce_domain: &str, tracking_base: &str) -> CampaignConfig {
        CampaignConfig {
            from: smtp.default_from.clone(),
            smtp,
            from_name: None,
            bounce_domain: bounce_domain.to_string(),
            tracking_base: tracking_base.trim_end_matches('/').to_string(),
            window: None,
            limits: Limits::default(),
            concurrency: 8,
            batch: 200,
            lease: Duration::from_secs(300),
            poll: Duration::from_secs(1),
            commit_rows: 256,
            commit_every: Duration::from_millis(20),
        }
    }
}

/// What one round of [`CampaignSender::drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Report {
    pub sent: usize,
    pub failed: usize,
    /// Put back for later (throttle, transient failure).
    pub deferred: usize,
    /// The send window was closed: nothing was claimed.
    pub window_closed: bool,
}

/// The campaign mail sender; see the module docs.
#[derive(Clone)]
pub struct CampaignSender {
    relay: Arc<Relay>,
    cfg: Arc<CampaignConfig>,
    signer: Signer,
    dkim: Option<Arc<Dkim>>,
    throttle: Arc<Mutex<Throttle>>,
    timings: Option<Arc<Mutex<Vec<Duration>>>>,
}

impl std::fmt::Debug for CampaignSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignSender").field("from", &self.cfg.from).field("dkim", &self.dkim.is_some()).finish_non_exhaustive()
    }
}

enum One {
    Done(Completion),
    Deferred,
}

impl CampaignSender {
    pub fn new(cfg: CampaignConfig, signer: Signer, dkim: Option<Dkim>) -> Result<CampaignSender> {
        let relay = Arc::new(Relay::new(cfg.smtp.clone(), cfg.concurrency));
        let throttle = Arc::new(Mutex::new(Throttle::new(cfg.limits)));
        Ok(CampaignSender { relay, cfg: Arc::new(cfg), signer, dkim: dkim.map(Arc::new), throttle, timings: None })
    }

    /// Keeps each mail's time from render to the relay's 250 (benchmarks).
    pub fn record_timings(&mut self) -> Arc<Mutex<Vec<Duration>>> {
        let t = Arc::new(Mutex::new(Vec::new()));
        self.timings = Some(t.clone());
        t
    }

    pub fn signer(&self) -> &Signer {
        &self.signer
    }

    /// Builds the mail of one claimed row (pure apart from the inputs).
    pub fn build(&self, message: MessageId, info: &SendInfo, row: &Claimed, ctx: &serde_json::Value, now: Millis) -> Result<Message> {
        let ids = Ids { outbox_id: row.outbox_id, message_id: message, party_id: row.party_id.0, sent_at: now };
        let unsub = tracking::unsubscribe_url(&self.signer, &self.cfg.tracking_base, ids);
        let mut ctx = ctx.clone();
        ctx["unsubscribe_url"] = serde_json::Value::String(unsub.clone());
        let Rendered { subject, mut text, mut html } = campaigns_template::render(&info.template, &ctx).map_err(Error::Build)?;
        if !campaigns_template::uses_unsubscribe(&info.template) {
            text.push_str(&format!("\n\n--\nUnsubscribe: {unsub}\n"));
            if let Some(h) = &mut html {
                let foot = format!("<p style=\"font-size:small\"><a href=\"{unsub}\">Unsubscribe</a></p>");
                match h.to_ascii_lowercase().rfind("</body>") {
                    Some(i) => h.insert_str(i, &foot),
                    None => h.push_str(&foot),
                }
            }
        }
        let tracked = tracking::rewrite(&self.signer, &self.cfg.tracking_base, ids, &text, html.as_deref());
        let to: Address = row.address.parse().map_err(|e: lettre::address::AddressError| Error::Build(e.to_string()))?;
        let from: Address = self.cfg.from.as_str().parse().map_err(|e: lettre::address::AddressError| Error::Build(e.to_string()))?;
        let verp: Address = format!("bounces+{}@{}", self.signer.verp(row.outbox_id), self.cfg.bounce_domain)
            .parse()
            .map_err(|e: lettre::address::AddressError| Error::Build(e.to_string()))?;
        let envelope = lettre::address::Envelope::new(Some(verp), vec![to.clone()]).map_err(|e| Error::Build(e.to_string()))?;
        let b = Message::builder()
            .from(Mailbox::new(self.cfg.from_name.clone(), from))
            .to(Mailbox::new(None, to))
            .subject(subject)
            .message_id(Some(format!("<{}>", row.message_key)))
            .envelope(envelope);
        let text_part = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(tracked.text);
        let mut m = match tracked.html {
            Some(h) => b.multipart(MultiPart::alternative().singlepart(text_part).singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(h))),
            None => b.singlepart(text_part),
        }
        .map_err(|e| Error::Build(e.to_string()))?;
        let raw = |m: &mut Message, name: &'static str, value: String| m.headers_mut().insert_raw(HeaderValue::new(HeaderName::new_from_ascii_str(name), value));
        raw(&mut m, "List-Unsubscribe", format!("<{unsub}>"));
        raw(&mut m, "List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into());
        raw(&mut m, "Precedence", "bulk".into());
        raw(&mut m, "Feedback-ID", format!("m{message}:c{}:centralino", info.campaign_id));
        if let Some(d) = &self.dkim {
            d.sign(&mut m);
        }
        Ok(m)
    }

    async fn send_one(&self, store: &crm::Store, message: MessageId, info: &SendInfo, row: Claimed, ctx: Option<&serde_json::Value>) -> Result<One> {
        let t0 = Instant::now();
        let now = crm::now_ms();
        let done = |outcome, detail: String, at| Completion { outbox_id: row.outbox_id, message_id: message, party_id: row.party_id, outcome, detail, at };
        let built = match ctx {
            Some(ctx) => self.build(message, info, &row, ctx, now),
            None => Err(Error::Build("the party no longer exists".into())),
        };
        let m = match built {
            Ok(m) => m,
            Err(e) => return Ok(One::Done(done(Outcome::Failed, e.to_string(), now))),
        };
        let raw = m.formatted();
        match self.relay.send(m.envelope(), &raw).await {
            Ok(r) => {
                if let Some(t) = &self.timings
                    && let Ok(mut v) = t.lock()
                {
                    v.push(t0.elapsed());
                }
                let detail = r.message().next().unwrap_or("").to_string();
                Ok(One::Done(done(Outcome::Sent, format!("{} {detail}", r.code()), crm::now_ms())))
            }
            Err(e) => {
                let permanent = matches!(e, RelayError::Permanent(_));
                warn!(error = %e, permanent, "campaign mail not accepted");
                if permanent || row.attempts >= MAX_ATTEMPTS {
                    Ok(One::Done(done(Outcome::Failed, e.to_string(), crm::now_ms())))
                } else {
                    let backoff = 30_000i64 << row.attempts.clamp(0, 7);
                    store.defer_outbox(row.outbox_id, crm::now_ms() + backoff.min(3_600_000), crm::now_ms()).await?;
                    Ok(One::Deferred)
                }
            }
        }
    }

    /// One round: for every launched email message with rows due, claim a
    /// batch, pass each row through the throttles and send the admitted
    /// ones, `concurrency` at a time, group-committing their completions.
    pub async fn drain(&self, store: &crm::Store, now: Millis) -> Result<Report> {
        let mut report = Report::default();
        if let Some(w) = &self.cfg.window
            && !w.is_open(now)
        {
            report.window_closed = true;
            return Ok(report);
        }
        for message in store.sendable_messages(Channel::Email, now).await? {
            let info = store.send_info(message).await?;
            let rows = store.claim_outbox(message, self.cfg.batch, self.cfg.lease.as_millis() as i64, now).await?;
            let mut admitted = Vec::with_capacity(rows.len());
            for row in rows {
                let domain = row.address.rsplit_once('@').map(|(_, d)| d.to_string()).unwrap_or_default();
                let verdict = self.throttle.lock().map(|mut t| t.admit(&domain, crm::now_ms())).unwrap_or(Err(now + 1_000));
                match verdict {
                    Ok(()) => admitted.push(row),
                    Err(at) => {
                        store.defer_outbox(row.outbox_id, at, now).await?;
                        report.deferred += 1;
                    }
                }
            }
            let parties: Vec<crm::PartyId> = admitted.iter().map(|r| r.party_id).collect();
            let ctxs = store.merge_contexts(&parties).await?;
            let (info, ctxs) = (&info, &ctxs);
            let mut results = futures::stream::iter(admitted)
                .map(|row| {
                    let span = tracing::info_span!("campaign_mail", campaign_id = info.campaign_id, message_id = message, outbox_id = row.outbox_id);
                    let ctx = ctxs.get(&row.party_id.0);
                    self.send_one(store, message, info, row, ctx).instrument(span)
                })
                .buffer_unordered(self.cfg.concurrency.max(1));
            let mut group = GroupCommit::new(store.clone(), self.cfg.commit_rows.max(1), self.cfg.commit_every);
            let mut failure = None;
            loop {
                let next = tokio::select! {
                    r = results.next() => r,
                    _ = group.due() => { group.flush(); continue; }
                };
                let Some(r) = next else { break };
                match r {
                    Ok(One::Done(c)) => {
                        match c.outcome {
                            Outcome::Sent => report.sent += 1,
                            _ => report.failed += 1,
                        }
                        group.push(c);
                    }
                    Ok(One::Deferred) => report.deferred += 1,
                    // A store error on one row: the others still go out and
                    // are committed; the round reports the error after.
                    Err(e) => failure = failure.or(Some(e)),
                }
            }
            drop(results);
            group.finish().await?;
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Ok(report)
    }

    /// Drains every `poll` until `shutdown` turns true; a round in progress
    /// is finished (each send recorded) before the loop ends.
    pub async fn run(self, store: crm::Store, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.drain(&store, crm::now_ms()).await {
                Ok(r) if r.sent + r.failed > 0 => info!(?r, "campaign mail sent"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "campaign drain failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.cfg.poll) => {}
                _ = shutdown.changed() => {}
            }
        }
        info!("campaign sender stopped");
    }
}

/// The sender's group commit: completions are written in one transaction
/// per `rows` or per `every`; each write runs as its own task so the mails
/// behind it keep going out. See the module docs for the crash window.
struct GroupCommit {
    store: crm::Store,
    rows: usize,
    every: Duration,
    pending: Vec<Completion>,
    since: Option<tokio::time::Instant>,
    writes: tokio::task::JoinSet<Result<u64>>,
}

impl GroupCommit {
    fn new(store: crm::Store, rows: usize, every: Duration) -> GroupCommit {
        GroupCommit { store, rows, every, pending: Vec::new(), since: None, writes: tokio::task::JoinSet::new() }
    }

    fn push(&mut self, c: Completion) {
        self.since.get_or_insert_with(tokio::time::Instant::now);
        self.pending.push(c);
        if self.pending.len() >= self.rows {
            self.flush();
        }
    }

    /// Resolves when the oldest waiting completion has waited `every`
    /// (never while nothing waits).
    async fn due(&self) {
        match self.since {
            Some(t) => tokio::time::sleep_until(t + self.every).await,
            None => std::future::pending().await,
        }
    }

    fn flush(&mut self) {
        self.since = None;
        if self.pending.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.pending);
        let store = self.store.clone();
        self.writes.spawn(async move { Ok(store.complete_outbox_many(&batch).await?) });
    }

    /// Writes what is left and waits for every write; the first error.
    async fn finish(mut self) -> Result<()> {
        self.flush();
        let mut first = None;
        while let Some(r) = self.writes.join_next().await {
            let r = r.map_err(|e| Error::Build(format!("completion writer: {e}"))).and_then(|r| r);
            if let Err(e) = r {
                warn!(error = %e, "campaign completions not committed; the rows are re-sent after their lease");
                first = first.or(Some(e));
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// What a message from the bounce mailbox meant for the campaign outbox.
#[derive(Debug, Clone, PartialEq)]
pub enum BounceOutcome {
    /// A bounce for row `outbox_id`; `suppressed` if the address now is.
    Bounced { outbox_id: i64, reason: String, hard: bool, suppressed: bool },
    /// A complaint about row `outbox_id`; `paused` if the guard paused the campaign.
    Complained { outbox_id: i64, paused: bool },
    /// Not ours (no valid VERP token) or not a bounce (auto-reply, mail).
    Ignored,
}

/// Classifies one raw message from the bounce mailbox and applies it: a
/// bounce is recorded on the row its VERP token names (suppressing hard
/// bounces and repeated soft ones), a complaint unsubscribes the recipient
/// and feeds the complaint-rate guard. Malformed mail is ignored, never
/// fatal.
pub async fn process_bounce(store: &crm::Store, signer: &Signer, raw: &[u8], now: Millis) -> Result<BounceOutcome> {
    let report = crate::bounce::classify(raw);
    let Some(outbox_id) = report.verp_token.as_deref().and_then(|t| signer.parse_verp(t)) else { return Ok(BounceOutcome::Ignored) };
    match report.kind {
        crate::bounce::Kind::Complaint => {
            let c = store.record_complaint(outbox_id, now).await?;
            Ok(BounceOutcome::Complained { outbox_id, paused: c.paused })
        }
        crate::bounce::Kind::Bounce => {
            let Some(f) = report.failures.first() else { return Ok(BounceOutcome::Ignored) };
            let reason = f.reason.as_str().to_string();
            let suppressed = store.record_bounce(outbox_id, &reason, f.hard, now).await?;
            Ok(BounceOutcome::Bounced { outbox_id, reason, hard: f.hard, suppressed })
        }
        _ => Ok(BounceOutcome::Ignored),
    }
}
