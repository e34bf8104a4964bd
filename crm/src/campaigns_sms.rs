//! The store side of campaign messages that are not email, and of the
//! bounce/notification mailbox: SMS and fax outbox rows keyed by phone
//! number, the SMSC's message ids (so a delivery receipt finds its row),
//! fax jobs with a monotone status, and the mailbox position that makes
//! the bounce reader handle each UID once.
//!
//! SMS and fax rows live in the same `campaign_outbox` as email, with the
//! E.164 number as the address, so [`Store::claim_outbox`]'s consent
//! (`sms`/`fax`) and suppression checks apply unchanged; receipts and fax
//! statuses land in `campaign_events` (the recipient's timeline) under an
//! idempotent key, so a duplicated receipt or callback is stored once.

use crate::{Error, Millis, Result, Store};
use sqlx::Row;

/// Where a fax job stands; the rank orders them so an out-of-order callback
/// (a late `sending` after `delivered`) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum FaxState {
    Queued,
    Sending,
    Delivered,
    /// Failed, with the provider's reason.
    Failed(String),
}

impl FaxState {
    pub fn as_str(&self) -> &'static str {
        match self {
            FaxState::Queued => "queued",
            FaxState::Sending => "sending",
            FaxState::Delivered => "delivered",
            FaxState::Failed(_) => "failed",
        }
    }
    fn rank(&self) -> i64 {
        match self {
            FaxState::Queued => 0,
            FaxState::Sending => 1,
            FaxState::Delivered | FaxState::Failed(_) => 2,
        }
    }
}

impl Store {
    /// Remembers the SMSC's message id of each part of an SMS (in order),
    /// so delivery receipts map back to the row.
    pub async fn record_sms_parts(&self, outbox_id: i64, smsc_ids: &[String], now: Millis) -> Result<()> {
        let mut tx = self.begin().await?;
        for (i, id) in smsc_ids.iter().enumerate() {
            sqlx::query("INSERT INTO campaign_sms_parts (smsc_id, outbox_id, part, parts, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (smsc_id) DO NOTHING")
                .bind(id)
                .bind(outbox_id)
                .bind(i as i64 + 1)
                .bind(smsc_ids.len() as i64)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A delivery receipt for SMSC message `smsc_id`: records
    /// `sms_delivered` or `sms_failed` (detail: the SMSC's `stat`/`err`) on
    /// the recipient's timeline, once per row and outcome — the parts of a
    /// long SMS and a repeated receipt collapse into one event. Returns the
    /// row, or `None` for an id we never sent (a stray receipt).
    pub async fn record_sms_receipt(&self, smsc_id: &str, delivered: bool, detail: &str, now: Millis) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT o.id, o.message_id, o.party_id FROM campaign_sms_parts s JOIN campaign_outbox o ON o.id = s.outbox_id WHERE s.smsc_id = $1")
            .bind(smsc_id)
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let (outbox, message, party): (i64, i64, i64) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let kind = if delivered { "sms_delivered" } else { "sms_failed" };
        self.timeline_event(&format!("{kind}:{outbox}"), (outbox, message, party), kind, detail, now).await?;
        Ok(Some(outbox))
    }

    /// `row` is (outbox id, message id, party id).
    async fn timeline_event(&self, key: &str, row: (i64, i64, i64), kind: &str, detail: &str, now: Millis) -> Result<bool> {
        let (outbox, message, party) = row;
        let r = sqlx::query(
            "INSERT INTO campaign_events (event_key, outbox_id, message_id, party_id, kind, detail, machine, at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7) ON CONFLICT (event_key) DO NOTHING",
        )
        .bind(key)
        .bind(outbox)
        .bind(message)
        .bind(party)
        .bind(kind)
        .bind(detail)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Registers a fax job handed to `provider` under its reference.
    pub async fn record_fax_job(&self, provider: &str, job_ref: &str, outbox_id: i64, now: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO campaign_fax_jobs (provider, job_ref, outbox_id, state, rank, updated_at) VALUES ($1, $2, $3, 'queued', 0, $4) ON CONFLICT (provider, job_ref) DO NOTHING",
        )
        .bind(provider)
        .bind(job_ref)
        .bind(outbox_id)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Applies a fax status: the job moves only forward (queued → sending →
    /// delivered | failed), and a final state is never replaced, so
    /// duplicated and out-of-order callbacks are harmless. Each state
    /// reached is a `fax_<state>` event on the timeline. Returns whether
    /// the job moved; an unknown job is `NotFound`.
    pub async fn record_fax_status(&self, provider: &str, job_ref: &str, state: &FaxState, now: Millis) -> Result<bool> {
        let reason = match state {
            FaxState::Failed(r) => r.as_str(),
            _ => "",
        };
        let mut tx = self.begin().await?;
        let r = sqlx::query("UPDATE campaign_fax_jobs SET state = $1, rank = $2, reason = $3, updated_at = $4 WHERE provider = $5 AND job_ref = $6 AND rank < $2")
            .bind(state.as_str())
            .bind(state.rank())
            .bind(reason)
            .bind(now)
            .bind(provider)
            .bind(job_ref)
            .execute(&mut *tx)
            .await?;
        let job = sqlx::query("SELECT o.id, o.message_id, o.party_id FROM campaign_fax_jobs f JOIN campaign_outbox o ON o.id = f.outbox_id WHERE f.provider = $1 AND f.job_ref = $2")
            .bind(provider)
            .bind(job_ref)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(job) = job else { return Err(Error::NotFound("fax job")) };
        let moved = r.rows_affected() == 1;
        if moved {
            let (outbox, message, party): (i64, i64, i64) = (job.try_get(0)?, job.try_get(1)?, job.try_get(2)?);
            let kind = format!("fax_{}", state.as_str());
            sqlx::query(
                "INSERT INTO campaign_events (event_key, outbox_id, message_id, party_id, kind, detail, machine, at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7) ON CONFLICT (event_key) DO NOTHING",
            )
            .bind(format!("{kind}:{outbox}"))
            .bind(outbox)
            .bind(message)
            .bind(party)
            .bind(&kind)
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// The fax job's current state name and reason.
    pub async fn fax_job_state(&self, provider: &str, job_ref: &str) -> Result<(String, String)> {
        let r = sqlx::query("SELECT state, reason FROM campaign_fax_jobs WHERE provider = $1 AND job_ref = $2")
            .bind(provider)
            .bind(job_ref)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("fax job"))?;
        Ok((r.try_get(0)?, r.try_get(1)?))
    }

    /// The highest UID of `mailbox` (at this UIDVALIDITY) the bounce reader
    /// has handled.
    pub async fn inbox_max_uid(&self, mailbox: &str, uidvalidity: i64) -> Result<Option<i64>> {
        let r = sqlx::query("SELECT MAX(uid) FROM campaign_inbox WHERE mailbox = $1 AND uidvalidity = $2").bind(mailbox).bind(uidvalidity).fetch_one(&self.read).await?;
        Ok(r.try_get::<Option<i64>, _>(0)?)
    }

    /// Whether this UID was handled already.
    pub async fn inbox_seen(&self, mailbox: &str, uidvalidity: i64, uid: i64) -> Result<bool> {
        let r = sqlx::query("SELECT 1 FROM campaign_inbox WHERE mailbox = $1 AND uidvalidity = $2 AND uid = $3")
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(uid)
            .fetch_optional(&self.read)
            .await?;
        Ok(r.is_some())
    }

    /// Marks a UID handled, with what it turned out to be.
    pub async fn inbox_mark(&self, mailbox: &str, uidvalidity: i64, uid: i64, outcome: &str, now: Millis) -> Result<()> {
        sqlx::query("INSERT INTO campaign_inbox (mailbox, uidvalidity, uid, outcome, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mailbox, uidvalidity, uid) DO NOTHING")
            .bind(mailbox)
            .bind(uidvalidity)
            .bind(uid)
            .bind(outcome)
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Suppresses an address (email or E.164 number) by hand, e.g. a
    /// number that replied STOP; every later claim skips it.
    pub async fn suppress_address(&self, address: &str, reason: &str, now: Millis) -> Result<()> {
        sqlx::query("INSERT INTO suppressions (address, reason, created_at) VALUES ($1, $2, $3) ON CONFLICT (address) DO NOTHING")
            .bind(address)
            .bind(reason)
            .bind(now)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// The timeline events (kind, detail) of one outbox row, in order.
    pub async fn outbox_events(&self, outbox_id: i64) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT kind, detail FROM campaign_events WHERE outbox_id = $1 ORDER BY id").bind(outbox_id).fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }
}
