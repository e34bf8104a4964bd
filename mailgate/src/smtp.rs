//! Mail out: the only module that speaks SMTP. It renders the store's
//! outbox rows ([`OutboundMail`]) into RFC 5322 messages with `lettre` —
//! our signed Message-ID, In-Reply-To and References, the ticket's history
//! summary at the foot, `Auto-Submitted: auto-replied` on automatic mail —
//! and drains the outbox through the relay.
//!
//! Delivery guarantee: **at least once, with a stable Message-ID**. A row is
//! marked sent only after the relay accepted it; a crash between the
//! relay's `250` and that mark sends the same message again on restart,
//! byte for byte the same Message-ID, so the recipient's server and client
//! can recognise the copy (Gmail and most MUAs collapse equal Message-IDs)
//! and the desk threads both onto the same ticket. The alternative,
//! at most once (mark before sending), would silently lose a reply on a
//! crash, which a help desk must not do. One sender per store drains the
//! outbox (the composition root starts exactly one); rows are never sent
//! concurrently by it.

use crate::classify::LOOP_HEADER;
use crate::config::{Security, SmtpConfig};
use crate::error::{Error, Result, SmtpFailure};
use crm::tickets::{Direction, OutboundMail, TicketDetail};
use crm::{Actor, EmailAddress};
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// After this many failed attempts a transient failure becomes final.
const MAX_ATTEMPTS: i64 = 10;

/// An SMTP relay connection pool plus what every message needs.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    default_from: EmailAddress,
    loop_token: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("default_from", &self.default_from).finish_non_exhaustive()
    }
}

impl Mailer {
    /// Builds the transport (no connection is made until the first send).
    pub fn new(cfg: &SmtpConfig, loop_token: &str) -> Result<Mailer> {
        let tls_params = || {
            TlsParameters::new(cfg.host.clone()).map_err(|e| Error::Tls { host: cfg.host.clone(), reason: e.to_string() })
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(cfg.port)
            .timeout(Some(cfg.timeout));
        b = match cfg.security {
            Security::Plain => b.tls(Tls::None),
            Security::StartTls => b.tls(Tls::Required(tls_params()?)),
            Security::Tls => b.tls(Tls::Wrapper(tls_params()?)),
        };
        if let Some((user, pass)) = &cfg.credentials {
            b = b.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
        }
        Ok(Mailer { transport: b.build(), default_from: cfg.default_from.clone(), loop_token: loop_token.to_string() })
    }

    /// Renders one outbox row; `foot` is the history summary to append.
    pub fn render(&self, mail: &OutboundMail, foot: Option<&str>) -> Result<Message> {
        render(mail, foot, &self.default_from, &self.loop_token)
    }

    /// Hands one message to the relay.
    pub async fn send(&self, message: Message) -> Result<()> {
        self.transport.send(message).await.map(|_| ()).map_err(|source| {
            let kind = if source.is_permanent() { SmtpFailure::Permanent } else { SmtpFailure::Transient };
            Error::Smtp { kind, source }
        })
    }
}

fn mailbox(a: &EmailAddress, name: Option<&str>) -> Result<Mailbox> {
    let addr: Address = a.as_str().parse().map_err(|e: lettre::address::AddressError| Error::Build(e.to_string()))?;
    Ok(Mailbox::new(name.map(str::to_string), addr))
}

fn bracket(id: &str) -> String {
    format!("<{}>", crm::tickets::normalise_message_id(id))
}

fn raw_header(m: &mut Message, name: &'static str, value: &str) {
    m.headers_mut().insert_raw(HeaderValue::new(HeaderName::new_from_ascii_str(name), value.to_string()));
}

/// Renders an outbox row into a message (pure; see [`Mailer::render`]).
pub fn render(mail: &OutboundMail, foot: Option<&str>, default_from: &EmailAddress, loop_token: &str) -> Result<Message> {
    let from = mail.from.as_ref().unwrap_or(default_from);
    let mut b = Message::builder()
        .from(mailbox(from, None)?)
        .subject(crate::parse::clean_line(&mail.subject))
        .message_id(Some(bracket(&mail.message_id)));
    if mail.to.is_empty() {
        return Err(Error::Build("no recipient".into()));
    }
    for to in &mail.to {
        b = b.to(mailbox(to, None)?);
    }
    for cc in &mail.cc {
        b = b.cc(mailbox(cc, None)?);
    }
    if let Some(parent) = &mail.in_reply_to {
        b = b.in_reply_to(bracket(parent));
    }
    // References: the thread so far, then the parent if it is not there yet
    // (RFC 5322 §3.6.4).
    let mut refs: Vec<String> = mail.references.iter().map(|r| bracket(r)).collect();
    if let Some(parent) = &mail.in_reply_to {
        let p = bracket(parent);
        if !refs.contains(&p) {
            refs.push(p);
        }
    }
    if !refs.is_empty() {
        b = b.references(refs.join(" "));
    }
    // RFC 3834: the recipient's responder must not answer an automatic
    // mail, and a bounce of it must not come back to a person: a null
    // envelope sender.
    if mail.auto_submitted {
        let rcpts = mail.to.iter().chain(&mail.cc).map(|a| a.as_str().parse::<Address>()).collect::<std::result::Result<Vec<_>, _>>();
        let rcpts = rcpts.map_err(|e| Error::Build(e.to_string()))?;
        let env = lettre::address::Envelope::new(None, rcpts).map_err(|e| Error::Build(e.to_string()))?;
        b = b.envelope(env);
    }
    let mut text = mail.text.clone();
    if let Some(f) = foot.filter(|f| !f.is_empty()) {
        text.push_str("\n\n");
        text.push_str(f);
    }
    let text_part = SinglePart::builder().header(ContentType::TEXT_PLAIN).body(text);
    let mut m = match &mail.html {
        Some(html) => {
            let mut html = html.clone();
            if let Some(f) = foot.filter(|f| !f.is_empty()) {
                html.push_str("<hr><pre>");
                html.push_str(&escape_html(f));
                html.push_str("</pre>");
            }
            let html_part = SinglePart::builder().header(ContentType::TEXT_HTML).body(html);
            b.multipart(MultiPart::alternative().singlepart(text_part).singlepart(html_part))
        }
        None => b.singlepart(text_part),
    }
    .map_err(|e| Error::Build(e.to_string()))?;
    if mail.auto_submitted {
        raw_header(&mut m, "Auto-Submitted", "auto-replied");
        raw_header(&mut m, "X-Auto-Response-Suppress", "All");
        raw_header(&mut m, "Precedence", "auto_reply");
    }
    if !loop_token.is_empty() {
        raw_header(&mut m, LOOP_HEADER, loop_token);
    }
    Ok(m)
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The ticket's recent history as text for the foot of a mail: the last
/// `n` messages other than this one, newest first, one line each.
pub fn history_foot(detail: &TicketDetail, this: &OutboundMail, n: usize) -> String {
    if n == 0 {
        return String::new();
    }
    let mut lines: Vec<String> = Vec::new();
    for m in detail.messages.iter().rev() {
        if m.direction == Direction::Note || m.outbox_id == Some(this.id) || m.message_id.as_deref() == Some(this.message_id.as_str()) {
            continue;
        }
        if lines.len() >= n {
            break;
        }
        let when = chrono::DateTime::from_timestamp_millis(m.created_at).map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
        let who = m.from_name.clone().or_else(|| m.from.clone()).unwrap_or_else(|| "?".into());
        let arrow = if m.direction == Direction::In { "<-" } else { "->" };
        let first = m.text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        let first: String = first.chars().take(100).collect();
        lines.push(format!("{when} {arrow} {who}: {first}"));
    }
    if lines.is_empty() {
        return String::new();
    }
    format!("-- Ticket {} {} --\n{}", detail.ticket.no, detail.ticket.no.subject_tag(), lines.join("\n"))
}

/// What one drain of the outbox did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainReport {
    pub sent: usize,
    /// Failed for good (5xx, unrenderable, or too many attempts).
    pub failed: usize,
    /// Failed for now; will be retried.
    pub retrying: usize,
}

/// Sends every outbox row due at `now` once. Store errors end the drain
/// (the rows stay queued); a bad row fails alone.
pub async fn drain_outbox(store: &crm::Store, mailer: &Mailer, history: usize, now: crm::Millis) -> Result<DrainReport> {
    let mut report = DrainReport::default();
    // Rows are claimed a few at a time under a lease, so a second sender
    // (or this one restarted) never sends a row that is being sent.
    let mut pending = Vec::new();
    let mut claimed = 0;
    loop {
        if pending.is_empty() {
            if claimed >= DRAIN_MAX {
                break;
            }
            pending = store.claim_outbound(sender_id(), now, OUTBOX_LEASE_MS, CLAIM_BATCH).await?;
            pending.reverse();
            claimed += pending.len();
        }
        let Some(mail) = pending.pop() else { break };
        let span = tracing::info_span!("outbound", outbox_id = %mail.id, ticket_no = ?mail.ticket.map(|t| t.to_string()));
        let _enter = span.enter();
        let foot = match mail.ticket {
            Some(t) if history > 0 => match store.ticket_detail(&Actor::system(), t).await {
                Ok(d) => Some(history_foot(&d, &mail, history)),
                Err(e) => {
                    warn!(error = %e, "no history for the foot");
                    None
                }
            },
            _ => None,
        };
        let message = match mailer.render(&mail, foot.as_deref()) {
            Ok(m) => m,
            Err(e) => {
                store.mark_outbound_failed(mail.id, &e.to_string(), None).await?;
                report.failed += 1;
                continue;
            }
        };
        match mailer.send(message).await {
            Ok(()) => {
                store.mark_outbound_sent(mail.id, crm::now_ms()).await?;
                info!("sent");
                report.sent += 1;
            }
            Err(e) => {
                let permanent = matches!(e, Error::Smtp { kind: SmtpFailure::Permanent, .. });
                let retry_at = (!permanent && mail.attempts + 1 < MAX_ATTEMPTS).then(|| crm::now_ms() + retry_delay_ms(mail.attempts));
                warn!(error = %e, permanent, "send failed");
                store.mark_outbound_failed(mail.id, &e.to_string(), retry_at).await?;
                if retry_at.is_some() {
                    report.retrying += 1;
                } else {
                    report.failed += 1;
                }
            }
        }
    }
    Ok(report)
}

/// Rows claimed per store round trip, and at most this many per drain.
const CLAIM_BATCH: i64 = 10;
const DRAIN_MAX: usize = 100;
/// How long a claimed row is this sender's: far longer than rendering and
/// one SMTP transaction take, short enough that a crashed sender's rows go
/// out again soon.
pub const OUTBOX_LEASE_MS: i64 = 5 * 60 * 1000;

/// This process's name as an outbox lease owner (for the logs and rows).
fn sender_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| format!("pid{}-{:x}", std::process::id(), crm::now_ms()))
}

/// 30 s, 1 min, 2 min … capped at one hour.
fn retry_delay_ms(attempts: i64) -> i64 {
    let exp = attempts.clamp(0, 7) as u32;
    (30_000i64 << exp).min(3_600_000)
}

/// Drains the outbox every `poll` until `shutdown` turns true. A send in
/// progress is finished (and recorded) before the loop ends.
pub async fn run_sender(store: crm::Store, mailer: Mailer, poll: Duration, history: usize, mut shutdown: watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        match drain_outbox(&store, &mailer, history, crm::now_ms()).await {
            Ok(r) if r.sent + r.failed + r.retrying > 0 => info!(?r, "outbox drained"),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "outbox drain failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(poll) => {}
            _ = shutdown.changed() => {}
        }
    }
    info!("sender stopped");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_grow_and_cap() {
        assert_eq!(retry_delay_ms(0), 30_000);
        assert_eq!(retry_delay_ms(1), 60_000);
        assert_eq!(retry_delay_ms(20), 3_600_000);
    }
}
