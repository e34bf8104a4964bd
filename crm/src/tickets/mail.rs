//! The store side of support mail: the contract with the mail gateway.
//!
//! Inbound, in this order, so that a crash at any point neither loses nor
//! duplicates a mail:
//! 1. [`Store::mail_seen`] / [`Store::store_raw_mail`]: the raw RFC 822
//!    bytes are stored, idempotently on (mailbox, UIDVALIDITY, UID), before
//!    anything else happens and before the mail is flagged on the server;
//! 2. [`Store::ingest_mail`]: the parsed message joins its thread or opens a
//!    ticket, in one transaction that also marks the raw row ingested; a
//!    second call for the same raw row creates nothing;
//! 3. [`Store::uningested_raw_mail`] lists rows stored but not yet ingested
//!    (a crash between 1 and 2), for replay.
//!
//! Threading: In-Reply-To and References are matched against the
//! Message-IDs we stored (theirs) and sent (ours; ours carry the ticket
//! number in an HMAC-signed token, [`ticket_message_id`]), then a subject
//! tag `[#T-12345]`; otherwise the mail opens a new ticket.
//!
//! Outbound: replies, auto-acknowledgements (never to auto-generated mail,
//! at most [`AUTO_ACK_LIMIT`] per sender per [`AUTO_ACK_WINDOW_MS`]),
//! reminders, feedback requests and notifications are rows of an outbox;
//! the gateway claims due rows under a lease ([`Store::claim_outbound`], so
//! two senders never send one row at once) and reports back with
//! [`Store::mark_outbound_sent`] or [`Store::mark_outbound_failed`], which
//! end the lease.
//!
//! A fetched IMAP batch may go through [`Store::ingest_mail_batch`]: the
//! same order per message (raw row, then ticket) in one transaction.

use super::*;
use crate::auth::Actor;
use crate::parties::PartyInput;
use crate::store::{Store, b};
use crate::types::{EmailAddress, PartyId, UserId};
use rand::RngCore;
use sqlx::Row;

/// At most this many auto-acknowledgements per sender…
pub const AUTO_ACK_LIMIT: i64 = 10;
/// …in this window.
pub const AUTO_ACK_WINDOW_MS: Millis = 3 * HOUR_MS;
/// Attachments larger than this are not stored (the raw message keeps them).
pub const MAX_ATTACHMENT_BYTES: usize = 25 * 1024 * 1024;

/// A raw inbound message as fetched from IMAP.
#[derive(Debug, Clone)]
pub struct RawMail {
    /// The mailbox it came from (account and folder, as the gateway names it).
    pub mailbox: String,
    pub uidvalidity: i64,
    pub uid: i64,
    /// The Message-ID header if the gateway could read it (without `<>`).
    pub message_id: Option<String>,
    pub raw: Vec<u8>,
    pub received_at: Millis,
}

/// A stored raw message and whether it became part of a ticket.
#[derive(Debug, Clone)]
pub struct StoredRawMail {
    pub id: RawMailId,
    pub mail: RawMail,
    pub ticket: Option<TicketNo>,
    pub ingested_at: Option<Millis>,
}

/// An attachment of an inbound message.
#[derive(Debug, Clone, Default)]
pub struct MailAttachment {
    /// Decoded file name (RFC 2231/2047 already undone by the parser).
    pub filename: Option<String>,
    pub content_type: String,
    pub data: Vec<u8>,
}

/// An inbound message as the mail gateway parsed it. Message-IDs are given
/// without angle brackets (they are stripped here too if present).
#[derive(Debug, Clone, Default)]
pub struct ParsedMail {
    pub message_id: Option<String>,
    /// All ids of In-Reply-To (usually one).
    pub in_reply_to: Vec<String>,
    /// References, oldest first as in the header.
    pub references: Vec<String>,
    pub subject: String,
    /// `None` when the message had no usable From (it still becomes a ticket).
    pub from: Option<EmailAddress>,
    pub from_name: Option<String>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    /// Text for display and search (quoted history may be trimmed).
    pub text: String,
    /// HTML already sanitised for display.
    pub html_sanitized: Option<String>,
    pub attachments: Vec<MailAttachment>,
    /// Auto-generated (auto-reply, DSN, bulk, list…): never auto-acknowledged.
    pub is_auto: bool,
    /// Notes from the parser, e.g. `unparsable`, `tnef`, `charset-fallback`.
    pub flags: Vec<String>,
    /// The Date header, if any.
    pub date: Option<Millis>,
}

/// What [`Store::ingest_mail`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestOutcome {
    pub ticket: TicketNo,
    /// A new ticket was opened (false: joined a thread, or already ingested).
    pub created: bool,
    /// The history row of the message.
    pub message: MessageRowId,
    /// The raw row had been ingested before: nothing new was written.
    pub duplicate: bool,
    /// An auto-acknowledgement was queued.
    pub auto_ack: Option<OutboxId>,
}

/// A mail to send, as the gateway receives it from the outbox.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct OutboundMail {
    pub id: OutboxId,
    pub ticket: Option<TicketNo>,
    pub kind: OutboxKind,
    /// The centre mailbox to send from (`None`: the gateway's default).
    pub from: Option<EmailAddress>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    /// Without angle brackets.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// Send with `Auto-Submitted: auto-replied` (auto-acks, reminders,
    /// notifications, feedback requests).
    pub auto_submitted: bool,
    pub attempts: i64,
    pub created_at: Millis,
}

/// A message that was sent outside the outbox (e.g. a mail to a consultant
/// written from inside the ticket), recorded for the history.
#[derive(Debug, Clone, Default)]
pub struct OutboundRecord {
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub from: Option<EmailAddress>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub sent_at: Millis,
}

/// Strips angle brackets and blanks from a Message-ID.
pub fn normalise_message_id(id: &str) -> String {
    id.trim().trim_start_matches('<').trim_end_matches('>').trim().to_string()
}

/// Our Message-ID for a mail about `ticket`: `t12345.<nonce>.<tag>@domain`
/// (without angle brackets), where the tag is a truncated HMAC-SHA256 over
/// the ticket and the nonce, so a reply threads even if our own copy of the
/// message is gone, and nobody can forge a reference into another ticket.
pub fn ticket_message_id(ticket: TicketNo, secret: &[u8], domain: &str) -> String {
    let mut nonce = [0u8; 6];
    rand::rng().fill_bytes(&mut nonce);
    let body = format!("t{}.{}", ticket.get(), hex::encode(nonce));
    let tag = hex::encode(hmac_tag(secret, body.as_bytes(), 10));
    let domain = if domain.is_empty() { "centralino.invalid" } else { domain };
    format!("{body}.{tag}@{domain}")
}

/// The ticket an id made by [`ticket_message_id`] names, if the signature
/// holds. Accepts the id with or without angle brackets.
pub fn parse_ticket_message_id(id: &str, secret: &[u8]) -> Option<TicketNo> {
    let id = normalise_message_id(id);
    let (local, _domain) = id.rsplit_once('@')?;
    let mut parts = local.split('.');
    let (t, nonce, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || nonce.len() != 12 {
        return None;
    }
    let n: i64 = t.strip_prefix('t')?.parse().ok()?;
    let tag = hex::decode(tag).ok()?;
    let body = format!("{t}.{nonce}");
    hmac_verify(secret, body.as_bytes(), &tag).then(|| TicketNo::new(n)).flatten()
}

fn person_name(mail: &ParsedMail, from: &EmailAddress) -> (String, Option<String>, Option<String>) {
    let name = mail.from_name.as_deref().map(str::trim).filter(|s| !s.is_empty() && s.len() <= 200);
    match name {
        Some(n) => {
            let mut it = n.rsplitn(2, ' ');
            let last = it.next().map(str::to_string);
            let first = it.next().map(str::to_string);
            (n.to_string(), first, last)
        }
        None => (from.as_str().to_string(), None, None),
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// Removes control characters (header injection) from a subject.
pub(crate) fn clean_subject(s: &str) -> String {
    let s: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let s = clip(s.trim(), 500);
    if s.is_empty() { "(no subject)".to_string() } else { s }
}

impl Store {
    /// Has this (mailbox, UIDVALIDITY, UID) been stored already?
    pub async fn mail_seen(&self, mailbox: &str, uidvalidity: i64, uid: i64) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM raw_mail WHERE mailbox = $1 AND uidvalidity = $2 AND uid = $3")
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(uid)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.is_some())
    }

    /// The highest UID stored for a mailbox under one UIDVALIDITY (where an
    /// incremental fetch resumes).
    pub async fn max_mail_uid(&self, mailbox: &str, uidvalidity: i64) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MAX(uid) AS m FROM raw_mail WHERE mailbox = $1 AND uidvalidity = $2")
            .bind(mailbox)
            .bind(uidvalidity)
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("m")?)
    }

    /// Stores a raw message durably; idempotent on (mailbox, UIDVALIDITY,
    /// UID): storing the same one again returns the first row's id.
    pub async fn store_raw_mail(&self, mail: RawMail) -> Result<RawMailId> {
        let mut tx = self.begin().await?;
        let (id, _) = insert_raw(&mut tx, &mail).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// One stored raw message.
    pub async fn raw_mail(&self, id: RawMailId) -> Result<StoredRawMail> {
        let r = sqlx::query(
            "SELECT id, mailbox, uidvalidity, uid, message_id, raw, received_at, ticket_id, ingested_at FROM raw_mail WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.read)
        .await?
        .ok_or(Error::NotFound("raw mail"))?;
        Ok(StoredRawMail {
            id,
            mail: RawMail {
                mailbox: r.try_get("mailbox")?,
                uidvalidity: r.try_get("uidvalidity")?,
                uid: r.try_get("uid")?,
                message_id: r.try_get("message_id")?,
                raw: r.try_get("raw")?,
                received_at: r.try_get("received_at")?,
            },
            ticket: r.try_get::<Option<i64>, _>("ticket_id")?.and_then(TicketNo::new),
            ingested_at: r.try_get("ingested_at")?,
        })
    }

    /// Raw messages stored but not yet ingested, oldest first (replay after
    /// a crash between storing and ingesting).
    pub async fn uningested_raw_mail(&self, limit: i64) -> Result<Vec<RawMailId>> {
        let rows = sqlx::query("SELECT id FROM raw_mail WHERE ingested_at IS NULL ORDER BY id LIMIT $1")
            .bind(limit.clamp(1, 10_000))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok(RawMailId(r.try_get("id")?))).collect()
    }

    /// The per-installation secret that signs our Message-IDs and feedback
    /// links, created on first use.
    pub async fn support_secret(&self) -> Result<Vec<u8>> {
        if let Some(r) = sqlx::query("SELECT value FROM support_secrets WHERE name = 'hmac'").fetch_optional(&self.read).await? {
            return Ok(r.try_get("value")?);
        }
        let mut key = vec![0u8; 32];
        rand::rng().fill_bytes(&mut key);
        let mut tx = self.begin().await?;
        // Two racing first users: the first insert wins, both read it back.
        let exists = sqlx::query("SELECT value FROM support_secrets WHERE name = 'hmac'").fetch_optional(&mut *tx).await?;
        let value = match exists {
            Some(r) => r.try_get("value")?,
            None => {
                sqlx::query("INSERT INTO support_secrets (name, value) VALUES ('hmac', $1)").bind(key.clone()).execute(&mut *tx).await?;
                key
            }
        };
        tx.commit().await?;
        Ok(value)
    }

    /// Turns a parsed inbound message into a ticket message: joins the
    /// thread it belongs to or opens a new ticket in `centre`; the sender
    /// becomes (or is found as) a person in the CRM. Idempotent on `raw`.
    pub async fn ingest_mail(&self, raw: RawMailId, mail: ParsedMail, centre: ServiceCentreId, now: Millis) -> Result<IngestOutcome> {
        if let Some(done) = self.ingested(raw).await? {
            return Ok(done);
        }
        let (secret, centre) = (self.support_secret().await?, self.get_centre(centre).await?);
        let mut tx = self.begin().await?;
        // Re-check inside the write transaction: a concurrent ingest of the
        // same raw row may have won.
        if let Some(done) = ingested_tx(&mut tx, raw).await? {
            return Ok(done);
        }
        let mut ctx = IngestCtx::load(&mut tx, self.backend, secret, centre, &[&mail], now).await?;
        let out = self.ingest_tx(&mut tx, raw, &mail, &mut ctx, now).await?;
        mark_ingested(&mut tx, raw, out.ticket.get(), now).await?;
        tx.commit().await?;
        tracing::info!(ticket_no = %out.ticket, created = out.created, "mail ingested");
        Ok(out)
    }

    /// Stores and ingests a batch of fetched messages in one transaction,
    /// in the given (UID) order: for each, the raw row first, then its
    /// ticket message. All of the batch commits or none of it, so a crash
    /// leaves every message of the batch either stored and ingested or not
    /// stored at all (and still unflagged on the server, so fetched again):
    /// never stored-but-lost, never twice. One commit for the batch instead
    /// of two per message, and the secret and centre are read once.
    ///
    /// Any error rolls the whole batch back; the caller then handles the
    /// messages one at a time ([`Store::store_raw_mail`] then
    /// [`Store::ingest_mail`]) to find and keep the one that fails.
    pub async fn ingest_mail_batch(&self, mails: Vec<(RawMail, ParsedMail)>, centre: ServiceCentreId, now: Millis) -> Result<Vec<(RawMailId, IngestOutcome)>> {
        if mails.is_empty() {
            return Ok(Vec::new());
        }
        let (secret, centre) = (self.support_secret().await?, self.get_centre(centre).await?);
        let mut tx = self.begin().await?;
        let raws: Vec<&RawMail> = mails.iter().map(|(r, _)| r).collect();
        let ids = insert_raws(&mut tx, &raws).await?;
        let parsed: Vec<&ParsedMail> = mails.iter().map(|(_, m)| m).collect();
        let mut ctx = IngestCtx::load(&mut tx, self.backend, secret, centre, &parsed, now).await?;
        let mut out = Vec::with_capacity(mails.len());
        let mut fresh_done: Vec<(RawMailId, i64)> = Vec::with_capacity(mails.len());
        for ((_, mail), (id, fresh)) in mails.iter().zip(ids) {
            if !fresh && let Some(done) = ingested_tx(&mut tx, id).await? {
                out.push((id, done));
                continue;
            }
            let o = self.ingest_tx(&mut tx, id, mail, &mut ctx, now).await?;
            fresh_done.push((id, o.ticket.get()));
            out.push((id, o));
        }
        mark_all_ingested(&mut tx, &fresh_done, now).await?;
        tx.commit().await?;
        for (_, o) in &out {
            tracing::info!(ticket_no = %o.ticket, created = o.created, duplicate = o.duplicate, "mail ingested");
        }
        Ok(out)
    }

    /// The ingest of one stored raw row inside the caller's transaction;
    /// the caller has checked that it is not ingested yet, and marks the
    /// raw row ingested (with the outcome's ticket) in the same transaction.
    async fn ingest_tx(&self, tx: &mut Tx, raw: RawMailId, mail: &ParsedMail, ctx: &mut IngestCtx, now: Millis) -> Result<IngestOutcome> {
        let centre = ctx.centre.id;
        let system = Actor::system();
        let message_id = mail.message_id.as_deref().map(normalise_message_id).filter(|s| !s.is_empty());

        // The same message delivered twice (two mailboxes, a resend): join
        // the ticket that has it and write nothing new.
        if let Some(&(t, id)) = message_id.as_ref().and_then(|mid| ctx.seen.get(mid)) {
            return Ok(IngestOutcome {
                ticket: TicketNo::new(t).ok_or(bad_row("ticket"))?,
                created: false,
                message: MessageRowId(id),
                duplicate: true,
                auto_ack: None,
            });
        }

        let thread = find_thread(tx, mail, &ctx.secret).await?;
        // Who wrote: a known person, or a new one (not in reserved centres,
        // which only serve known customers).
        let mut flags = mail.flags.clone();
        let requester = match &mail.from {
            Some(from) => {
                match ctx.requesters.get(from.as_str()).copied() {
                    Some(p) => Some(p),
                    None if ctx.centre.public && !mail.is_auto => {
                        let (name, first, last) = person_name(mail, from);
                        let input = PartyInput {
                            kind: "person".into(),
                            name: Some(name),
                            first_name: first,
                            last_name: last,
                            emails: vec![crate::parties::EmailInput { address: from.as_str().to_string(), kind: Some("support".into()) }],
                            notes: Some("Created from a support mail".into()),
                            ..Default::default()
                        };
                        match input.validate(self.region) {
                            Ok(v) => {
                                let p = crate::parties::insert_party(tx, &system, &v, now).await?;
                                ctx.requesters.insert(from.as_str().to_string(), p);
                                Some(p)
                            }
                            Err(_) => {
                                flags.push("requester-not-created".into());
                                None
                            }
                        }
                    }
                    None => {
                        flags.push("unknown-sender".into());
                        None
                    }
                }
            }
            None => {
                flags.push("no-sender".into());
                None
            }
        };

        let subject = clean_subject(&mail.subject);
        let (ticket, created) = match thread {
            Some(t) => (t, false),
            None => {
                let new = desk::NewTicket {
                    centre,
                    subject: subject.clone(),
                    requester,
                    requester_email: mail.from.clone(),
                    priority: Priority::Normal,
                    product: None,
                    topic: None,
                    category: None,
                    assignee: None,
                    team: ctx.centre.team_id,
                    parent: None,
                    split_from_message: None,
                };
                // The customer's time and `updated_at` go in the INSERT.
                (desk::insert_ticket_at(tx, &system, &new, Some(now), now).await?, true)
            }
        };

        let msg = desk::NewMessage {
            ticket,
            direction: Direction::In,
            message_id: message_id.clone(),
            in_reply_to: mail.in_reply_to.first().map(|s| normalise_message_id(s)),
            references: mail.references.iter().map(|s| normalise_message_id(s)).collect(),
            from: mail.from.clone(),
            from_name: mail.from_name.clone(),
            to: mail.to.clone(),
            cc: mail.cc.clone(),
            subject: subject.clone(),
            text: mail.text.clone(),
            html: mail.html_sanitized.clone(),
            raw_id: Some(raw),
            outbox_id: None,
            is_auto: mail.is_auto,
            flags: flags.clone(),
            author: None,
            party: requester,
        };
        let message = desk::insert_message_row(tx, &msg, now).await?;
        if let Some(mid) = &message_id {
            ctx.seen.entry(mid.clone()).or_insert((ticket.get(), message.0));
        }
        for a in &mail.attachments {
            if a.data.len() > MAX_ATTACHMENT_BYTES {
                desk::add_event(tx, ticket, None, "attachment_skipped", None, &serde_json::json!({"filename": a.filename, "size": a.data.len()}), now).await?;
                continue;
            }
            sqlx::query("INSERT INTO ticket_attachments (message_row_id, filename, content_type, size, data) VALUES ($1, $2, $3, $4, $5)")
                .bind(message.0)
                .bind(a.filename.as_deref().map(|f| clip(f, 255)))
                .bind(clip(&a.content_type, 200))
                .bind(a.data.len() as i64)
                .bind(a.data.clone())
                .execute(&mut **tx)
                .await?;
        }
        if !created {
            desk::on_customer_reply(tx, ticket, now).await?;
        }
        if created && ctx.has_assignment_rules {
            rules::on_ticket_created(tx, ticket, now).await?;
        }
        // A new ticket has no dues yet: compute them only when its centre
        // has a policy for its priority (or a rule may have changed it).
        if !created || ctx.has_assignment_rules || ctx.policies.contains(&(centre.0, Priority::Normal.as_str().to_string())) {
            sla::refresh_dues(tx, ticket, now).await?;
        }
        if created && ctx.has_notification_rules {
            rules::notify(tx, ticket, rules::Trigger::Created, now).await?;
        }

        let auto_ack = match (&mail.from, created) {
            (Some(from), true) if !mail.is_auto && ctx.centre.auto_ack && requester.is_some() && !ctx.our_addresses.contains(from.as_str()) => {
                let sent = ctx.acks_sent.get(from.as_str()).copied().unwrap_or(0);
                let id = queue_auto_ack(tx, ticket, from, &subject, message_id.as_deref(), sent, &ctx.centre, &ctx.secret, now).await?;
                if id.is_some() {
                    *ctx.acks_sent.entry(from.as_str().to_string()).or_insert(0) += 1;
                }
                id
            }
            _ => None,
        };
        Ok(IngestOutcome { ticket, created, message, duplicate: false, auto_ack })
    }

    async fn ingested(&self, raw: RawMailId) -> Result<Option<IngestOutcome>> {
        let mut conn = self.read.acquire().await?;
        ingested_conn(&mut conn, raw).await
    }

    /// May one more auto-acknowledgement go to this sender now?
    pub async fn auto_ack_allowed(&self, sender: &EmailAddress, now: Millis) -> Result<bool> {
        let mut conn = self.read.acquire().await?;
        Ok(auto_acks_sent(&mut conn, sender, now).await? < AUTO_ACK_LIMIT)
    }

    /// Mails due to be sent, oldest first.
    pub async fn pending_outbound(&self, now: Millis, limit: i64) -> Result<Vec<OutboundMail>> {
        let rows = sqlx::query(
            "SELECT id, ticket_id, kind, from_addr, to_addrs, cc_addrs, subject, body_text, body_html, message_id, in_reply_to, refs, \
             auto_submitted, attempts, created_at FROM mail_outbox WHERE status = 'queued' AND next_attempt_at <= $1 ORDER BY id LIMIT $2",
        )
        .bind(now)
        .bind(limit.clamp(1, 1000))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(outbound_from_row).collect()
    }

    /// Claims up to `limit` due rows for `owner` for `lease_ms`: a claimed
    /// row is not handed to another sender until the lease expires or the
    /// row is marked sent or failed. Atomic: `FOR UPDATE SKIP LOCKED` on
    /// PostgreSQL, the single writer on SQLite. A sender that crashed after
    /// the SMTP accept but before marking the row sent has its row sent
    /// again after the lease, with the same Message-ID (a receiver can drop
    /// the duplicate); one that crashed before the accept loses nothing.
    pub async fn claim_outbound(&self, owner: &str, now: Millis, lease_ms: Millis, limit: i64) -> Result<Vec<OutboundMail>> {
        let lock = match self.backend() {
            crate::Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let sql = format!(
            "UPDATE mail_outbox SET lease_until = $1, lease_owner = $2 WHERE id IN (\
               SELECT id FROM mail_outbox WHERE status = 'queued' AND next_attempt_at <= $3 \
               AND (lease_until IS NULL OR lease_until <= $3) ORDER BY id LIMIT $4{lock}) \
             RETURNING id, ticket_id, kind, from_addr, to_addrs, cc_addrs, subject, body_text, body_html, message_id, in_reply_to, refs, \
             auto_submitted, attempts, created_at"
        );
        let mut tx = self.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now.saturating_add(lease_ms.max(1)))
            .bind(clip(owner, 200))
            .bind(now)
            .bind(limit.clamp(1, 1000))
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut out: Vec<OutboundMail> = rows.iter().map(outbound_from_row).collect::<Result<_>>()?;
        out.sort_by_key(|m| m.id.0);
        Ok(out)
    }

    /// Every outbox row of a ticket (for tests and the console).
    pub async fn ticket_outbox(&self, ticket: TicketNo) -> Result<Vec<OutboundMail>> {
        let rows = sqlx::query(
            "SELECT id, ticket_id, kind, from_addr, to_addrs, cc_addrs, subject, body_text, body_html, message_id, in_reply_to, refs, \
             auto_submitted, attempts, created_at FROM mail_outbox WHERE ticket_id = $1 ORDER BY id",
        )
        .bind(ticket.get())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(outbound_from_row).collect()
    }

    /// The gateway sent an outbox row.
    pub async fn mark_outbound_sent(&self, id: OutboxId, now: Millis) -> Result<()> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("UPDATE mail_outbox SET status = 'sent', sent_at = $1, attempts = attempts + 1, lease_until = NULL, lease_owner = NULL WHERE id = $2 AND status <> 'sent' RETURNING ticket_id, kind")
            .bind(now)
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(r) = r {
            if let Some(t) = r.try_get::<Option<i64>, _>("ticket_id")?.and_then(TicketNo::new) {
                let kind: String = r.try_get("kind")?;
                desk::add_event(&mut tx, t, None, "mail_sent", None, &serde_json::json!({"outbox_id": id.0, "kind": kind}), now).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// The gateway could not send an outbox row: retry at `retry_at`, or
    /// give up (`None`).
    pub async fn mark_outbound_failed(&self, id: OutboxId, error: &str, retry_at: Option<Millis>) -> Result<()> {
        let mut tx = self.begin().await?;
        let status = if retry_at.is_some() { "queued" } else { "failed" };
        let r = sqlx::query(
            "UPDATE mail_outbox SET status = $1, attempts = attempts + 1, last_error = $2, next_attempt_at = COALESCE($3, next_attempt_at), \
             lease_until = NULL, lease_owner = NULL WHERE id = $4 AND status = 'queued' RETURNING ticket_id",
        )
        .bind(status)
        .bind(clip(error, 1000))
        .bind(retry_at)
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        if let (Some(r), None) = (r, retry_at) {
            if let Some(t) = r.try_get::<Option<i64>, _>("ticket_id")?.and_then(TicketNo::new) {
                desk::add_event(&mut tx, t, None, "mail_failed", None, &serde_json::json!({"outbox_id": id.0, "error": clip(error, 200)}), crate::types::now_ms()).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records in the ticket's history a message sent outside the outbox.
    pub async fn record_outbound_message(&self, actor: &Actor, ticket: TicketNo, rec: OutboundRecord) -> Result<MessageRowId> {
        let t = self.get_ticket(actor, ticket).await?;
        let _ = t;
        let mut tx = self.begin().await?;
        let msg = desk::NewMessage {
            ticket,
            direction: Direction::Out,
            message_id: Some(normalise_message_id(&rec.message_id)),
            in_reply_to: rec.in_reply_to.as_deref().map(normalise_message_id),
            references: rec.references.iter().map(|s| normalise_message_id(s)).collect(),
            from: rec.from,
            from_name: None,
            to: rec.to,
            cc: rec.cc,
            subject: clean_subject(&rec.subject),
            text: rec.text,
            html: rec.html,
            raw_id: None,
            outbox_id: None,
            is_auto: false,
            flags: vec![],
            author: actor.log_id().map(UserId),
            party: None,
        };
        let id = desk::insert_message(&mut tx, &msg, rec.sent_at).await?;
        desk::add_event(&mut tx, ticket, actor.log_id(), "message_recorded", None, &serde_json::json!({"message": id.0}), rec.sent_at).await?;
        tx.commit().await?;
        Ok(id)
    }
}

/// What every message of an ingest needs, read once per batch.
struct IngestCtx {
    secret: Vec<u8>,
    centre: ServiceCentre,
    /// Read once per batch, inside the batch transaction (not per mail):
    has_assignment_rules: bool,
    has_notification_rules: bool,
    /// (centre, priority) pairs with an SLA policy.
    policies: std::collections::HashSet<(i64, String)>,
    /// The centres' own mailbox addresses (never auto-acknowledged).
    our_addresses: std::collections::HashSet<String>,
    /// Inbound Message-ID → (ticket, message row) of the first stored
    /// copy: the batch's Message-IDs found stored, plus the batch's own.
    seen: std::collections::HashMap<String, (i64, i64)>,
    /// Sender address → the person it belongs to: the batch's senders
    /// found in one query, plus the persons the batch creates.
    requesters: std::collections::HashMap<String, PartyId>,
    /// Sender address → auto-acknowledgements in the rate window,
    /// counted once and then kept up to date as the batch queues more.
    acks_sent: std::collections::HashMap<String, i64>,
}

impl IngestCtx {
    /// Reads, in the transaction, what every mail of the batch needs: six
    /// statements for the batch instead of about ten per mail.
    async fn load(tx: &mut Tx, backend: crate::Backend, secret: Vec<u8>, centre: ServiceCentre, mails: &[&ParsedMail], now: Millis) -> Result<IngestCtx> {
        use std::collections::{HashMap, HashSet};
        let mut has_assignment_rules = false;
        let mut has_notification_rules = false;
        for r in sqlx::query("SELECT DISTINCT kind FROM ticket_rules WHERE active = 1").fetch_all(&mut **tx).await? {
            match r.try_get::<String, _>("kind")?.as_str() {
                "assignment" => has_assignment_rules = true,
                "notification" => has_notification_rules = true,
                _ => {}
            }
        }
        let mut policies = HashSet::new();
        for r in sqlx::query("SELECT centre_id, priority FROM sla_policies").fetch_all(&mut **tx).await? {
            policies.insert((r.try_get::<i64, _>("centre_id")?, r.try_get::<String, _>("priority")?));
        }
        let mut our_addresses = HashSet::new();
        for r in sqlx::query("SELECT address FROM centre_mailboxes").fetch_all(&mut **tx).await? {
            our_addresses.insert(r.try_get::<String, _>("address")?);
        }

        let mut mids: Vec<String> = mails.iter().filter_map(|m| m.message_id.as_deref().map(normalise_message_id)).filter(|s| !s.is_empty()).collect();
        mids.sort();
        mids.dedup();
        let mut seen = HashMap::new();
        if !mids.is_empty() {
            let sql = format!(
                "SELECT id, ticket_id, message_id FROM ticket_messages WHERE direction = 'in' AND message_id IN ({}) ORDER BY id",
                placeholders(1, mids.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for m in &mids {
                q = q.bind(m.clone());
            }
            for r in q.fetch_all(&mut **tx).await? {
                seen.entry(r.try_get::<String, _>("message_id")?).or_insert((r.try_get::<i64, _>("ticket_id")?, r.try_get::<i64, _>("id")?));
            }
        }

        let mut senders: Vec<String> = mails.iter().filter_map(|m| m.from.as_ref().map(|f| f.as_str().to_string())).collect();
        senders.sort();
        senders.dedup();
        let mut requesters = HashMap::new();
        let mut acks_sent = HashMap::new();
        if !senders.is_empty() {
            let sql = format!(
                "SELECT em.email, p.id FROM party_emails em JOIN parties p ON p.id = em.party_id \
                 WHERE em.email IN ({}) AND p.merged_into IS NULL ORDER BY p.updated_at DESC",
                placeholders(1, senders.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for s in &senders {
                q = q.bind(s.clone());
            }
            for r in q.fetch_all(&mut **tx).await? {
                requesters.entry(r.try_get::<String, _>("email")?).or_insert(PartyId(r.try_get("id")?));
            }
            // Senders this batch may create a person for. Two mailboxes
            // ingesting at once on PostgreSQL could each create one for
            // the same new address: lock each such address (transaction
            // advisory lock, in hash order so two batches never deadlock),
            // then read them again — the other batch's person is visible
            // once it committed. SQLite's single writer serialises already.
            let missing: Vec<&String> = senders.iter().filter(|s| !requesters.contains_key(*s)).collect();
            if backend == crate::Backend::Postgres && !missing.is_empty() {
                let values = (1..=missing.len()).map(|i| format!("(${i})")).collect::<Vec<_>>().join(", ");
                let sql = format!(
                    "SELECT COUNT(pg_advisory_xact_lock(h)) AS n FROM \
                     (SELECT DISTINCT hashtext('party-email:' || x) AS h FROM (VALUES {values}) AS v(x) ORDER BY h) AS s"
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for m in &missing {
                    q = q.bind((*m).clone());
                }
                q.fetch_one(&mut **tx).await?;
                let sql = format!(
                    "SELECT em.email, p.id FROM party_emails em JOIN parties p ON p.id = em.party_id \
                     WHERE em.email IN ({}) AND p.merged_into IS NULL ORDER BY p.updated_at DESC",
                    placeholders(1, missing.len())
                );
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for m in &missing {
                    q = q.bind((*m).clone());
                }
                for r in q.fetch_all(&mut **tx).await? {
                    requesters.entry(r.try_get::<String, _>("email")?).or_insert(PartyId(r.try_get("id")?));
                }
            }
            let sql = format!(
                "SELECT recipient, COUNT(*) AS n FROM mail_outbox WHERE kind = 'auto_ack' AND created_at > $1 AND recipient IN ({}) GROUP BY recipient",
                placeholders(2, senders.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now - AUTO_ACK_WINDOW_MS);
            for s in &senders {
                q = q.bind(s.clone());
            }
            for r in q.fetch_all(&mut **tx).await? {
                acks_sent.insert(r.try_get::<String, _>("recipient")?, r.try_get::<i64, _>("n")?);
            }
        }
        Ok(IngestCtx { secret, centre, has_assignment_rules, has_notification_rules, policies, our_addresses, seen, requesters, acks_sent })
    }
}

/// `$first, $first+1, …` (n of them) for an IN list.
fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// Inserts a raw row unless (mailbox, UIDVALIDITY, UID) is stored already;
/// the row's id and whether it is new. One round trip for a new message.
async fn insert_raw(tx: &mut Tx, mail: &RawMail) -> Result<(RawMailId, bool)> {
    let row = sqlx::query(
        "INSERT INTO raw_mail (mailbox, uidvalidity, uid, message_id, raw, received_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (mailbox, uidvalidity, uid) DO NOTHING RETURNING id",
    )
    .bind(&mail.mailbox)
    .bind(mail.uidvalidity)
    .bind(mail.uid)
    .bind(mail.message_id.as_deref().map(normalise_message_id))
    .bind(&mail.raw)
    .bind(mail.received_at)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(r) = row {
        return Ok((RawMailId(r.try_get("id")?), true));
    }
    let r = sqlx::query("SELECT id FROM raw_mail WHERE mailbox = $1 AND uidvalidity = $2 AND uid = $3")
        .bind(&mail.mailbox)
        .bind(mail.uidvalidity)
        .bind(mail.uid)
        .fetch_one(&mut **tx)
        .await?;
    Ok((RawMailId(r.try_get("id")?), false))
}

/// [`insert_raw`] for a whole batch: one multi-row INSERT for the rows not
/// stored yet (the usual case), then a lookup only for those that were.
/// Returns, in input order, each row's id and whether it is new.
async fn insert_raws(tx: &mut Tx, mails: &[&RawMail]) -> Result<Vec<(RawMailId, bool)>> {
    if mails.is_empty() {
        return Ok(Vec::new());
    }
    // 6 parameters a row; both dialects allow far more than 6 × a batch.
    let mut sql = String::from("INSERT INTO raw_mail (mailbox, uidvalidity, uid, message_id, raw, received_at) VALUES ");
    for i in 0..mails.len() {
        let b = i * 6;
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4, b + 5, b + 6));
    }
    sql.push_str(" ON CONFLICT (mailbox, uidvalidity, uid) DO NOTHING RETURNING id, mailbox, uidvalidity, uid");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for m in mails {
        q = q.bind(&m.mailbox).bind(m.uidvalidity).bind(m.uid).bind(m.message_id.as_deref().map(normalise_message_id)).bind(&m.raw).bind(m.received_at);
    }
    let rows = q.fetch_all(&mut **tx).await?;
    let mut new: std::collections::HashMap<(String, i64, i64), i64> = std::collections::HashMap::with_capacity(rows.len());
    for r in &rows {
        new.insert((r.try_get("mailbox")?, r.try_get("uidvalidity")?, r.try_get("uid")?), r.try_get("id")?);
    }
    let mut out = Vec::with_capacity(mails.len());
    for m in mails {
        match new.remove(&(m.mailbox.clone(), m.uidvalidity, m.uid)) {
            Some(id) => out.push((RawMailId(id), true)),
            None => out.push(insert_raw(tx, m).await?),
        }
    }
    Ok(out)
}

/// [`mark_ingested`] for many rows in one statement. Ids and ticket
/// numbers are integers from the store, so they are spliced.
async fn mark_all_ingested(tx: &mut Tx, done: &[(RawMailId, i64)], now: Millis) -> Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    let mut case = String::from("CASE id");
    let mut ids = String::new();
    for (i, (raw, ticket)) in done.iter().enumerate() {
        case.push_str(&format!(" WHEN {} THEN {}", raw.0, ticket));
        if i > 0 {
            ids.push(',');
        }
        ids.push_str(&raw.0.to_string());
    }
    case.push_str(" END");
    sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE raw_mail SET ticket_id = {case}, ingested_at = $1 WHERE id IN ({ids})")))
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn ingested_conn(conn: &mut sqlx::AnyConnection, raw: RawMailId) -> Result<Option<IngestOutcome>> {
    let r = sqlx::query("SELECT ticket_id, ingested_at FROM raw_mail WHERE id = $1").bind(raw.0).fetch_optional(&mut *conn).await?;
    let Some(r) = r else { return Err(Error::NotFound("raw mail")) };
    if r.try_get::<Option<i64>, _>("ingested_at")?.is_none() {
        return Ok(None);
    }
    let t: Option<i64> = r.try_get("ticket_id")?;
    let ticket = t.and_then(TicketNo::new).ok_or(bad_row("ticket"))?;
    let m = sqlx::query("SELECT id FROM ticket_messages WHERE raw_id = $1").bind(raw.0).fetch_optional(&mut *conn).await?;
    let message = match m {
        Some(m) => MessageRowId(m.try_get("id")?),
        // Ingested as a duplicate of another delivery: point at that copy.
        None => {
            let m = sqlx::query("SELECT MIN(id) AS id FROM ticket_messages WHERE ticket_id = $1 AND direction = 'in'")
                .bind(ticket.get())
                .fetch_one(&mut *conn)
                .await?;
            MessageRowId(m.try_get::<Option<i64>, _>("id")?.unwrap_or(0))
        }
    };
    Ok(Some(IngestOutcome { ticket, created: false, message, duplicate: true, auto_ack: None }))
}

async fn ingested_tx(tx: &mut Tx, raw: RawMailId) -> Result<Option<IngestOutcome>> {
    ingested_conn(&mut *tx, raw).await
}

async fn mark_ingested(tx: &mut Tx, raw: RawMailId, ticket: i64, now: Millis) -> Result<()> {
    sqlx::query("UPDATE raw_mail SET ticket_id = $1, ingested_at = $2 WHERE id = $3")
        .bind(ticket)
        .bind(now)
        .bind(raw.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// In-Reply-To first, then References newest first; each as our signed
/// token or as a stored Message-ID; then the subject tag. A thread that
/// ends in a closed ticket opens a new one.
async fn find_thread(tx: &mut Tx, mail: &ParsedMail, secret: &[u8]) -> Result<Option<TicketNo>> {
    let mut ids: Vec<String> = mail.in_reply_to.iter().map(|s| normalise_message_id(s)).collect();
    ids.extend(mail.references.iter().rev().map(|s| normalise_message_id(s)));
    ids.retain(|s| !s.is_empty());
    let mut found = None;
    for id in ids.iter().take(50) {
        if let Some(t) = parse_ticket_message_id(id, secret) {
            if ticket_state(tx, t).await?.is_some() {
                found = Some(t);
                break;
            }
        }
        let r = sqlx::query("SELECT ticket_id FROM ticket_messages WHERE message_id = $1 ORDER BY id DESC LIMIT 1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(r) = r {
            found = TicketNo::new(r.try_get("ticket_id")?);
            break;
        }
    }
    if found.is_none() {
        if let Some(t) = subject_ticket_tag(&mail.subject) {
            if ticket_state(tx, t).await?.is_some() {
                found = Some(t);
            }
        }
    }
    match found {
        Some(t) if ticket_state(tx, t).await? == Some(TicketState::Closed) => Ok(None),
        other => Ok(other),
    }
}

async fn ticket_state(tx: &mut Tx, t: TicketNo) -> Result<Option<TicketState>> {
    let r = sqlx::query("SELECT state FROM tickets WHERE id = $1").bind(t.get()).fetch_optional(&mut **tx).await?;
    match r {
        Some(r) => Ok(TicketState::parse(&r.try_get::<String, _>("state")?).ok()),
        None => Ok(None),
    }
}

async fn auto_acks_sent(conn: &mut sqlx::AnyConnection, sender: &EmailAddress, now: Millis) -> Result<i64> {
    let r = sqlx::query("SELECT COUNT(*) AS n FROM mail_outbox WHERE kind = 'auto_ack' AND recipient = $1 AND created_at > $2")
        .bind(sender.as_str())
        .bind(now - AUTO_ACK_WINDOW_MS)
        .fetch_one(&mut *conn)
        .await?;
    Ok(r.try_get("n")?)
}

#[allow(clippy::too_many_arguments)]
async fn queue_auto_ack(
    tx: &mut Tx,
    ticket: TicketNo,
    to: &EmailAddress,
    subject: &str,
    their_id: Option<&str>,
    already_sent: i64,
    centre: &ServiceCentre,
    secret: &[u8],
    now: Millis,
) -> Result<Option<OutboxId>> {
    if already_sent >= AUTO_ACK_LIMIT {
        desk::add_event(tx, ticket, None, "auto_ack_suppressed", None, &serde_json::json!({"reason": "rate limit", "to": to}), now).await?;
        return Ok(None);
    }
    let body = format!(
        "We have received your message and opened ticket {ticket}.\n\
         Please keep {tag} in the subject when you write about it.\n\n-- {name}\n",
        tag = ticket.subject_tag(),
        name = centre.name
    );
    let mail = OutboxInsert {
        ticket: Some(ticket),
        kind: OutboxKind::AutoAck,
        to: vec![to.clone()],
        cc: vec![],
        subject: format!("{} {}", ticket.subject_tag(), subject),
        text: body,
        html: None,
        in_reply_to: their_id.map(str::to_string),
        references: their_id.map(|s| vec![s.to_string()]).unwrap_or_default(),
        auto_submitted: true,
        author: None,
    };
    Ok(Some(queue_outbox(tx, &mail, centre, secret, now).await?))
}

/// A mail to queue; the Message-ID, sender and timing are filled in by
/// [`queue_outbox`].
#[derive(Debug, Clone)]
pub(crate) struct OutboxInsert {
    pub ticket: Option<TicketNo>,
    pub kind: OutboxKind,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub auto_submitted: bool,
    /// The operator who wrote it (replies).
    pub author: Option<UserId>,
}

/// Queues a mail from the centre's first mailbox, with a signed Message-ID
/// when it concerns a ticket, and records outgoing ticket mail in the
/// ticket's history.
pub(crate) async fn queue_outbox(tx: &mut Tx, m: &OutboxInsert, centre: &ServiceCentre, secret: &[u8], now: Millis) -> Result<OutboxId> {
    let from = centre.mailboxes.first().cloned();
    let domain = from.as_ref().map(|a| a.domain().to_string()).unwrap_or_default();
    let message_id = match m.ticket {
        Some(t) => ticket_message_id(t, secret, &domain),
        None => {
            let mut n = [0u8; 12];
            rand::rng().fill_bytes(&mut n);
            format!("n.{}@{}", hex::encode(n), if domain.is_empty() { "centralino.invalid" } else { &domain })
        }
    };
    let recipient = m.to.first().map(|a| a.as_str().to_string()).unwrap_or_default();
    let row = sqlx::query(
        "INSERT INTO mail_outbox (ticket_id, kind, from_addr, recipient, to_addrs, cc_addrs, subject, body_text, body_html, message_id, \
         in_reply_to, refs, auto_submitted, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, 'queued', 0, $14, $15) RETURNING id",
    )
    .bind(m.ticket.map(TicketNo::get))
    .bind(m.kind.as_str())
    .bind(from.as_ref().map(|a| a.as_str().to_string()))
    .bind(recipient)
    .bind(to_json(&m.to))
    .bind(to_json(&m.cc))
    .bind(clean_subject(&m.subject))
    .bind(&m.text)
    .bind(m.html.as_deref())
    .bind(&message_id)
    .bind(m.in_reply_to.as_deref())
    .bind(to_json(&m.references))
    .bind(i64::from(m.auto_submitted))
    .bind(now)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let id = OutboxId(row.try_get("id")?);
    if let Some(t) = m.ticket {
        // Notifications go to staff, not the customer: they stay out of
        // the ticket's message thread but appear as events.
        if m.kind == OutboxKind::Notification {
            desk::add_event(tx, t, None, "notification_queued", None, &serde_json::json!({"outbox_id": id.0, "to": m.to}), now).await?;
        } else {
            let msg = desk::NewMessage {
                ticket: t,
                direction: Direction::Out,
                message_id: Some(message_id),
                in_reply_to: m.in_reply_to.clone(),
                references: m.references.clone(),
                from,
                from_name: Some(centre.name.clone()),
                to: m.to.clone(),
                cc: m.cc.clone(),
                subject: clean_subject(&m.subject),
                text: m.text.clone(),
                html: m.html.clone(),
                raw_id: None,
                outbox_id: Some(id),
                is_auto: m.auto_submitted,
                flags: vec![m.kind.as_str().to_string()],
                author: m.author,
                party: None,
            };
            desk::insert_message(tx, &msg, now).await?;
        }
    }
    Ok(id)
}

fn outbound_from_row(r: &sqlx::any::AnyRow) -> Result<OutboundMail> {
    let emails = |s: String| -> Vec<EmailAddress> { json_list(&s).iter().filter_map(|a| EmailAddress::parse(a).ok()).collect() };
    Ok(OutboundMail {
        id: OutboxId(r.try_get("id")?),
        ticket: r.try_get::<Option<i64>, _>("ticket_id")?.and_then(TicketNo::new),
        kind: OutboxKind::parse(&r.try_get::<String, _>("kind")?).map_err(|_| bad_row("outbox kind"))?,
        from: r.try_get::<Option<String>, _>("from_addr")?.and_then(|a| EmailAddress::parse(&a).ok()),
        to: emails(r.try_get("to_addrs")?),
        cc: emails(r.try_get("cc_addrs")?),
        subject: r.try_get("subject")?,
        text: r.try_get("body_text")?,
        html: r.try_get("body_html")?,
        message_id: r.try_get("message_id")?,
        in_reply_to: r.try_get("in_reply_to")?,
        references: json_list(&r.try_get::<String, _>("refs")?),
        auto_submitted: b(r.try_get("auto_submitted")?),
        attempts: r.try_get("attempts")?,
        created_at: r.try_get("created_at")?,
    })
}
