//! One fetched message into the store, in the order that makes a crash at
//! any point harmless: the raw bytes first ([`crm::Store::store_raw_mail`],
//! idempotent on mailbox + UIDVALIDITY + UID), then the parsed message
//! ([`crm::Store::ingest_mail`], idempotent on the raw row). Only after both
//! does the driver flag the message on the server.
//!
//! A fetched batch goes through [`handle_batch`]: every message of the batch
//! is stored and ingested in one store transaction (the same order per
//! message, one commit for all); if that fails, the batch is handled one
//! message at a time so that a poison message is kept and skipped alone.

use crate::config::MailboxConfig;
use crate::error::Result;
use crate::parse::{self, ParseOptions, flag};
use crm::tickets::{IngestOutcome, RawMail, RawMailId};
use tracing::{info, warn};

/// A message that is now part of a ticket.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub raw: RawMailId,
    /// The message's UID in its mailbox.
    pub uid: i64,
    pub outcome: IngestOutcome,
}

/// Stores and ingests one message of `cfg`'s mailbox. `Ok(None)`: the
/// message is stored but the store refused to ingest it for a reason other
/// than its database being unreachable (a poison message); it stays listed
/// by `uningested_raw_mail` for a person to look at, and the mailbox moves
/// on instead of retrying it forever.
pub async fn handle(
    store: &crm::Store,
    cfg: &MailboxConfig,
    opts: &ParseOptions,
    uid_validity: u32,
    uid: u32,
    raw: Vec<u8>,
    truncated: bool,
) -> Result<Option<Ingested>> {
    let mut inbound = parse::parse(&raw, opts);
    if truncated {
        inbound.mail.flags.push(flag::TRUNCATED.into());
    }
    let now = crm::now_ms();
    let raw_id = store
        .store_raw_mail(RawMail {
            mailbox: cfg.name.clone(),
            uidvalidity: i64::from(uid_validity),
            uid: i64::from(uid),
            message_id: inbound.mail.message_id.clone(),
            raw,
            received_at: now,
        })
        .await?;
    let outcome = match store.ingest_mail(raw_id, inbound.mail, cfg.centre, now).await {
        Ok(o) => o,
        Err(e) if is_transient(&e) => return Err(e.into()),
        Err(e) => {
            warn!(uid, raw = %raw_id, error = %e, "mail stored but not ingested; left for a person");
            return Ok(None);
        }
    };
    info!(uid, ticket_no = %outcome.ticket, created = outcome.created, duplicate = outcome.duplicate, verdict = ?inbound.verdict.kind, "mail handled");
    Ok(Some(Ingested { raw: raw_id, uid: i64::from(uid), outcome }))
}

/// One fetched message: its UID, raw bytes, and whether only its header
/// was fetched (over the size limit).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub uid: u32,
    pub raw: Vec<u8>,
    pub truncated: bool,
}

/// Stores and ingests a fetched batch, in UID order, in one store
/// transaction; returns, per UID, what [`handle`] would have returned.
/// When the batch transaction fails (a message the store refuses, or the
/// database), every message is handled on its own with [`handle`], which
/// keeps a poison message stored and moves on, and reports a database
/// outage as an error.
pub async fn handle_batch(store: &crm::Store, cfg: &MailboxConfig, opts: &ParseOptions, uid_validity: u32, batch: Vec<Fetched>) -> Result<Vec<(u32, Option<Ingested>)>> {
    let now = crm::now_ms();
    let mut items = Vec::with_capacity(batch.len());
    for f in &batch {
        let mut inbound = parse::parse(&f.raw, opts);
        if f.truncated {
            inbound.mail.flags.push(flag::TRUNCATED.into());
        }
        let raw = RawMail {
            mailbox: cfg.name.clone(),
            uidvalidity: i64::from(uid_validity),
            uid: i64::from(f.uid),
            message_id: inbound.mail.message_id.clone(),
            raw: f.raw.clone(),
            received_at: now,
        };
        items.push((raw, inbound.mail));
    }
    match store.ingest_mail_batch(items, cfg.centre, now).await {
        Ok(done) => Ok(batch
            .iter()
            .zip(done)
            .map(|(f, (raw, outcome))| {
                info!(uid = f.uid, ticket_no = %outcome.ticket, created = outcome.created, duplicate = outcome.duplicate, "mail handled");
                (f.uid, Some(Ingested { raw, uid: i64::from(f.uid), outcome }))
            })
            .collect()),
        Err(e) => {
            warn!(error = %e, messages = batch.len(), "batch ingest failed; handling the messages one at a time");
            let mut out = Vec::with_capacity(batch.len());
            for f in batch {
                let uid = f.uid;
                out.push((uid, handle(store, cfg, opts, uid_validity, uid, f.raw, f.truncated).await?));
            }
            Ok(out)
        }
    }
}

/// A database outage may pass (retry later); an error about the message's
/// data (the store refuses it) or anything else will not, so the mail stays
/// stored, is left for a person, and the mailbox moves on.
fn is_transient(e: &crm::Error) -> bool {
    e.is_transient()
}

/// Ingests this mailbox's raw messages that were stored but never ingested
/// (the process died between the two steps).
pub async fn replay_uningested(store: &crm::Store, cfg: &MailboxConfig, opts: &ParseOptions) -> Result<Vec<Ingested>> {
    let mut done = Vec::new();
    for id in store.uningested_raw_mail(1000).await? {
        let stored = store.raw_mail(id).await?;
        if stored.mail.mailbox != cfg.name {
            continue;
        }
        let inbound = parse::parse(&stored.mail.raw, opts);
        let outcome = match store.ingest_mail(id, inbound.mail, cfg.centre, crm::now_ms()).await {
            Ok(o) => o,
            Err(e) if is_transient(&e) => return Err(e.into()),
            // A poison message must not block the mailbox: it stays listed.
            Err(e) => {
                warn!(raw = %id, error = %e, "stored mail still cannot be ingested");
                continue;
            }
        };
        info!(raw = %id, ticket_no = %outcome.ticket, "replayed a stored but uningested mail");
        done.push(Ingested { raw: id, uid: stored.mail.uid, outcome });
    }
    Ok(done)
}

/// The header of an oversized message plus a note, as what is stored for
/// it: the desk gets a ticket, the server keeps the original.
pub fn truncated_raw(mut header: Vec<u8>, size: u32) -> Vec<u8> {
    // The fetched header ends with its blank line; the note is the body.
    if !header.ends_with(b"\r\n\r\n") && !header.ends_with(b"\n\n") {
        header.extend_from_slice(b"\r\n");
    }
    header.extend_from_slice(
        format!("[centralino: this message was {size} bytes, over the size limit; only its header was kept. The original is still on the mail server.]\r\n")
            .as_bytes(),
    );
    header
}
