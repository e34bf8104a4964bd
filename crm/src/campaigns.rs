//! Campaigns, their messages and the durable outbox that sends them.
//!
//! A [`Campaign`] holds objectives, a budget and an owner; a message of a
//! campaign targets a list on one channel. [`Store::launch_message`] writes
//! one outbox row per (message, recipient) with a fixed `message_key` (the
//! per-recipient Message-ID). Senders take work with
//! [`Store::claim_outbox`], which moves rows `queued → sending` under a
//! lease in one statement, and then check consent and suppression **at send
//! time**; rows end `sent`, `failed` or `suppressed`.
//!
//! Guarantee: a row is handed to at most one live sender at a time (the
//! claim re-checks the state in the UPDATE itself, so two workers racing on
//! PostgreSQL cannot both win). A sender that crashes after the MTA accepted
//! the mail but before [`Store::complete_outbox`] leaves the row `sending`;
//! when its lease expires the row is claimed again and re-sent **with the
//! same Message-ID**, so the delivery is at-least-once at the SMTP level and
//! exactly-once for any MTA or mailbox that de-duplicates on Message-ID. No
//! row is ever sent again once it is marked `sent`.
//!
//! Bounces: a hard bounce suppresses the address at once; soft bounces on 3
//! of the address's last 5 messages suppress it too (Keila's rule).

use crate::{Channel, Error, ListId, Millis, PartyId, Result, Store, UserId};
use sqlx::Row;

/// A campaign id.
pub type CampaignId = i64;
/// A campaign message id.
pub type MessageId = i64;

/// A marketing campaign.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub objectives: String,
    pub budget_cents: i64,
    pub owner_id: Option<UserId>,
}

/// A row claimed for sending.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Claimed {
    pub outbox_id: i64,
    pub party_id: PartyId,
    pub address: String,
    /// The per-recipient Message-ID, identical on every retry.
    pub message_key: String,
    pub attempts: i64,
}

/// Final state of an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Failed,
    Suppressed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Sent => "sent",
            Outcome::Failed => "failed",
            Outcome::Suppressed => "suppressed",
        }
    }
}

/// Counts per outbox state and event kind for one message.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Monitor {
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    pub suppressed: i64,
    /// (event kind, detail, count), e.g. ("bounced", "userunknown", 3).
    pub events: Vec<(String, String, i64)>,
}

impl Store {
    /// Creates a campaign.
    pub async fn create_campaign(&self, name: &str, objectives: &str, budget_cents: i64, owner: Option<UserId>, now: Millis) -> Result<Campaign> {
        if name.trim().is_empty() {
            return Err(Error::invalid("name", "required"));
        }
        if budget_cents < 0 {
            return Err(Error::invalid("budget_cents", "must not be negative"));
        }
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query("INSERT INTO campaigns (name, objectives, budget_cents, owner_id, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(name.trim())
            .bind(objectives)
            .bind(budget_cents)
            .bind(owner.map(|u| u.0))
            .bind(now)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        tx.commit().await?;
        Ok(Campaign { id, name: name.trim().into(), objectives: objectives.into(), budget_cents, owner_id: owner })
    }

    /// Adds a draft message to a campaign.
    pub async fn add_campaign_message(&self, campaign: CampaignId, channel: Channel, subject: &str, body_text: &str, body_html: &str, list: ListId, now: Millis) -> Result<MessageId> {
        let mut tx = self.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO campaign_messages (campaign_id, channel, subject, body_text, body_html, list_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(campaign)
        .bind(channel.as_str())
        .bind(subject)
        .bind(body_text)
        .bind(body_html)
        .bind(list.0)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        Ok(id)
    }

    /// Launches a message: one outbox row per list member that has an
    /// address, each with its own fixed Message-ID. Launching twice adds
    /// nobody twice. Returns the number of rows created.
    pub async fn launch_message(&self, message: MessageId, mail_domain: &str, now: Millis) -> Result<u64> {
        let row = sqlx::query("SELECT list_id FROM campaign_messages WHERE id = $1").bind(message).fetch_optional(&self.read).await?;
        let Some(row) = row else { return Err(Error::NotFound("message")) };
        let list: Option<i64> = row.try_get(0)?;
        let Some(list) = list else { return Err(Error::invalid("list_id", "the message has no list")) };
        let members = self.list_member_ids(&crate::Actor::system(), ListId(list)).await?;
        let mut tx = self.begin().await?;
        let mut created = 0;
        for p in members {
            let email = sqlx::query("SELECT email FROM party_emails WHERE party_id = $1 ORDER BY position, id LIMIT 1")
                .bind(p.0)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(email) = email else { continue };
            let address: String = email.try_get(0)?;
            let key = format!("c{message}.p{}.{}@{mail_domain}", p.0, now);
            let r = sqlx::query(
                "INSERT INTO campaign_outbox (message_id, party_id, address, message_key, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id, party_id) DO NOTHING",
            )
            .bind(message)
            .bind(p.0)
            .bind(address.to_lowercase())
            .bind(key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            created += r.rows_affected();
        }
        sqlx::query("UPDATE campaign_messages SET state = 'launched', launched_at = $1 WHERE id = $2").bind(now).bind(message).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Claims up to `limit` rows of a message for sending under a lease of
    /// `lease_ms`. Rows whose lease expired (a crashed sender) are claimed
    /// again. Rows whose recipient has no consent for the channel or whose
    /// address is suppressed are closed as `suppressed` here, at send time,
    /// and not returned.
    pub async fn claim_outbox(&self, message: MessageId, limit: i64, lease_ms: i64, now: Millis) -> Result<Vec<Claimed>> {
        let channel: String = sqlx::query("SELECT channel FROM campaign_messages WHERE id = $1")
            .bind(message)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("message"))?
            .try_get(0)?;
        let channel = Channel::parse(&channel).unwrap_or(Channel::Email);
        let mut tx = self.begin().await?;
        // The state test is repeated outside the sub-select so that on
        // PostgreSQL a racing claimer re-checks it on the locked row version
        // and skips rows another worker just took.
        let rows = sqlx::query(
            "UPDATE campaign_outbox SET state = 'sending', lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id IN (SELECT id FROM campaign_outbox WHERE message_id = $3 AND (state = 'queued' OR (state = 'sending' AND lease_until < $2)) ORDER BY id LIMIT $4) \
             AND (state = 'queued' OR (state = 'sending' AND lease_until < $2)) \
             RETURNING id, party_id, address, message_key, attempts",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(message)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let c = Claimed {
                outbox_id: r.try_get(0)?,
                party_id: PartyId(r.try_get(1)?),
                address: r.try_get(2)?,
                message_key: r.try_get(3)?,
                attempts: r.try_get(4)?,
            };
            let suppressed = sqlx::query("SELECT reason FROM suppressions WHERE address = $1").bind(&c.address).fetch_optional(&self.read).await?;
            if let Some(s) = suppressed {
                let why: String = s.try_get(0)?;
                self.complete_outbox(c.outbox_id, Outcome::Suppressed, &format!("suppressed: {why}"), now).await?;
            } else if !self.has_consent(c.party_id, channel).await? {
                self.complete_outbox(c.outbox_id, Outcome::Suppressed, "no consent", now).await?;
            } else {
                out.push(c);
            }
        }
        out.sort_by_key(|c| c.outbox_id);
        Ok(out)
    }

    /// Closes a claimed row. Only a row in `sending` moves, so a late
    /// completion after another worker finished it changes nothing.
    pub async fn complete_outbox(&self, outbox_id: i64, outcome: Outcome, detail: &str, now: Millis) -> Result<bool> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("UPDATE campaign_outbox SET state = $1, detail = $2, updated_at = $3 WHERE id = $4 AND state = 'sending'")
            .bind(outcome.as_str())
            .bind(detail)
            .bind(now)
            .bind(outbox_id)
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() == 1 && outcome == Outcome::Sent {
            sqlx::query("INSERT INTO campaign_events (message_id, outbox_id, party_id, kind, at) SELECT message_id, id, party_id, 'sent', $1 FROM campaign_outbox WHERE id = $2")
                .bind(now)
                .bind(outbox_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records a bounce for an outbox row (found through the VERP token)
    /// and applies the suppression rules. Returns whether the address is
    /// now suppressed.
    pub async fn record_bounce(&self, outbox_id: i64, reason: &str, hard: bool, now: Millis) -> Result<bool> {
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT message_id, party_id, address FROM campaign_outbox WHERE id = $1").bind(outbox_id).fetch_optional(&mut *tx).await?;
        let Some(row) = row else { return Err(Error::NotFound("outbox row")) };
        let (message, party, address): (i64, i64, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        sqlx::query("INSERT INTO campaign_events (message_id, outbox_id, party_id, kind, detail, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(message)
            .bind(outbox_id)
            .bind(party)
            .bind(if hard { "bounced_hard" } else { "bounced_soft" })
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let suppress = if hard {
            Some(format!("hard bounce ({reason})"))
        } else {
            // Soft bounces on 3 of the address's last 5 messages.
            let last = sqlx::query("SELECT id FROM campaign_outbox WHERE address = $1 AND state IN ('sent', 'sending') ORDER BY id DESC LIMIT 5")
                .bind(&address)
                .fetch_all(&mut *tx)
                .await?;
            let mut soft = 0;
            for r in last {
                let id: i64 = r.try_get(0)?;
                let n: i64 = sqlx::query("SELECT COUNT(*) FROM campaign_events WHERE outbox_id = $1 AND kind = 'bounced_soft'").bind(id).fetch_one(&mut *tx).await?.try_get(0)?;
                if n > 0 {
                    soft += 1;
                }
            }
            (soft >= 3).then(|| "3 soft bounces in the last 5 messages".to_string())
        };
        if let Some(why) = &suppress {
            sqlx::query("INSERT INTO suppressions (address, reason, created_at) VALUES ($1, $2, $3) ON CONFLICT (address) DO NOTHING")
                .bind(&address)
                .bind(why)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(suppress.is_some())
    }

    /// Outbox states and event counts of one message (the message monitor's
    /// raw figures).
    pub async fn message_monitor(&self, message: MessageId) -> Result<Monitor> {
        let mut m = Monitor::default();
        for r in sqlx::query("SELECT state, COUNT(*) FROM campaign_outbox WHERE message_id = $1 GROUP BY state").bind(message).fetch_all(&self.read).await? {
            let (s, n): (String, i64) = (r.try_get(0)?, r.try_get(1)?);
            match s.as_str() {
                "queued" | "sending" => m.queued += n,
                "sent" => m.sent = n,
                "failed" => m.failed = n,
                "suppressed" => m.suppressed = n,
                _ => {}
            }
        }
        for r in sqlx::query("SELECT kind, detail, COUNT(*) FROM campaign_events WHERE message_id = $1 GROUP BY kind, detail ORDER BY kind, detail")
            .bind(message)
            .fetch_all(&self.read)
            .await?
        {
            m.events.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
        }
        Ok(m)
    }
}
