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

use crate::dkim::Dkim;
use crate::error::{Error, Result, SmtpFailure};
use crate::pacing::{Limits, SendWindow, Throttle};
use crate::tracking::{self, Ids, Signer};
use crate::{Security, SmtpConfig};
use crm::campaigns::{Claimed, MessageId, Outcome, SendInfo};
use crm::campaigns_template::{self, Rendered};
use crm::{Channel, EmailAddress, Millis};
use futures::StreamExt;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
    transport: AsyncSmtpTransport<Tokio1Executor>,
    cfg: Arc<CampaignConfig>,
    signer: Signer,
    dkim: Option<Arc<Dkim>>,
    throttle: Arc<Mutex<Throttle>>,
}

impl std::fmt::Debug for CampaignSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignSender").field("from", &self.cfg.from).field("dkim", &self.dkim.is_some()).finish_non_exhaustive()
    }
}

enum One {
    Sent,
    Failed,
    Deferred,
}

impl CampaignSender {
    pub fn new(cfg: CampaignConfig, signer: Signer, dkim: Option<Dkim>) -> Result<CampaignSender> {
        let s = &cfg.smtp;
        let tls_params = || TlsParameters::new(s.host.clone()).map_err(|e| Error::Tls { host: s.host.clone(), reason: e.to_string() });
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .timeout(Some(s.timeout))
            .pool_config(PoolConfig::new().max_size(cfg.concurrency.max(1) as u32));
        b = match s.security {
            Security::Plain => b.tls(Tls::None),
            Security::StartTls => b.tls(Tls::Required(tls_params()?)),
            Security::Tls => b.tls(Tls::Wrapper(tls_params()?)),
        };
        if let Some((user, pass)) = &s.credentials {
            b = b.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
        }
        let throttle = Arc::new(Mutex::new(Throttle::new(cfg.limits)));
        Ok(CampaignSender { transport: b.build(), cfg: Arc::new(cfg), signer, dkim: dkim.map(Arc::new), throttle })
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

    async fn send_one(&self, store: &crm::Store, message: MessageId, info: &SendInfo, row: Claimed) -> Result<One> {
        let now = crm::now_ms();
        let built = match store.merge_context(row.party_id).await {
            Ok(ctx) => self.build(message, info, &row, &ctx, now),
            Err(crm::Error::NotFound(_)) => Err(Error::Build("the party no longer exists".into())),
            Err(e) => return Err(e.into()),
        };
        let m = match built {
            Ok(m) => m,
            Err(e) => {
                store.complete_outbox(row.outbox_id, Outcome::Failed, &e.to_string(), now).await?;
                return Ok(One::Failed);
            }
        };
        match self.transport.send(m).await {
            Ok(r) => {
                let detail = r.message().next().unwrap_or("").to_string();
                store.complete_outbox(row.outbox_id, Outcome::Sent, &format!("{} {detail}", r.code()), crm::now_ms()).await?;
                Ok(One::Sent)
            }
            Err(e) => {
                let permanent = e.is_permanent();
                warn!(error = %e, permanent, "campaign mail not accepted");
                let kind = if permanent { SmtpFailure::Permanent } else { SmtpFailure::Transient };
                if permanent || row.attempts >= MAX_ATTEMPTS {
                    store.complete_outbox(row.outbox_id, Outcome::Failed, &format!("SMTP ({kind}): {e}"), crm::now_ms()).await?;
                    Ok(One::Failed)
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
    /// ones, `concurrency` at a time.
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
            let info = &info;
            let results: Vec<Result<One>> = futures::stream::iter(admitted)
                .map(|row| {
                    let span = tracing::info_span!("campaign_mail", campaign_id = info.campaign_id, message_id = message, outbox_id = row.outbox_id);
                    self.send_one(store, message, info, row).instrument(span)
                })
                .buffer_unordered(self.cfg.concurrency.max(1))
                .collect()
                .await;
            for r in results {
                match r? {
                    One::Sent => report.sent += 1,
                    One::Failed => report.failed += 1,
                    One::Deferred => report.deferred += 1,
                }
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
