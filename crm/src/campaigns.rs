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
//!
//! Templates live in [`crate::campaigns_template`]; engagement events
//! (opens, clicks, unsubscribes, complaints) arrive in batches through
//! [`Store::record_events`], idempotent on each event's key so a
//! write-ahead file can be replayed after a crash; the monitor, timelines,
//! lists from results, ROI and the complaint-rate guard are in
//! [`crate::campaigns_monitor`].

use crate::campaigns_template::{self, Rendered, Template};
use crate::{Actor, Channel, Error, ListId, Millis, PartyId, Result, Role, Store, UserId};
use sqlx::Row;
use std::collections::HashMap;

/// Campaigns are the marketers' business: marketers, supervisors and admins
/// may manage them; agents and support reps may not.
pub fn require_marketing(actor: &Actor) -> Result<()> {
    if matches!(actor.role, Role::Marketer | Role::Supervisor | Role::Admin) { Ok(()) } else { Err(Error::Forbidden) }
}

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

/// A claimed row's end, for [`Store::complete_outbox_many`].
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub outbox_id: i64,
    pub message_id: MessageId,
    pub party_id: PartyId,
    pub outcome: Outcome,
    pub detail: String,
    pub at: Millis,
}

/// Values per IN list or multi-row statement.
const IN_CHUNK: usize = 500;

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
        let t = Template { subject: subject.into(), text: body_text.into(), html: body_html.into() };
        campaigns_template::validate(&t, &self.characteristic_keys().await?)?;
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
        let row = sqlx::query("SELECT list_id, channel FROM campaign_messages WHERE id = $1").bind(message).fetch_optional(&self.read).await?;
        let Some(row) = row else { return Err(Error::NotFound("message")) };
        let list: Option<i64> = row.try_get(0)?;
        let channel: String = row.try_get(1)?;
        let Some(list) = list else { return Err(Error::invalid("list_id", "the message has no list")) };
        // Each member's address on the message's channel: the first email;
        // for SMS and fax the first phone, the channel's kind (mobile, fax)
        // sorting first.
        let phone_kind = match Channel::parse(&channel) {
            Ok(Channel::Sms) => Some("mobile"),
            Ok(Channel::Fax) => Some("fax"),
            _ => None,
        };
        let address_sql = match phone_kind {
            Some(_) => "SELECT e164 FROM party_phones WHERE party_id = $1 ORDER BY CASE WHEN kind = $2 THEN 0 ELSE 1 END, position, id LIMIT 1",
            None => "SELECT email FROM party_emails WHERE party_id = $1 ORDER BY position, id LIMIT 1",
        };
        let members = self.list_member_ids(&crate::Actor::system(), ListId(list)).await?;
        let mut tx = self.begin().await?;
        let mut created = 0;
        for p in members {
            let mut q = sqlx::query(address_sql).bind(p.0);
            if let Some(kind) = phone_kind {
                q = q.bind(kind);
            }
            let Some(found) = q.fetch_optional(&mut *tx).await? else { continue };
            let address: String = found.try_get(0)?;
            let address = if phone_kind.is_some() { address } else { address.to_lowercase() };
            let key = format!("c{message}.p{}.{}@{mail_domain}", p.0, now);
            let r = sqlx::query(
                "INSERT INTO campaign_outbox (message_id, party_id, address, message_key, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id, party_id) DO NOTHING",
            )
            .bind(message)
            .bind(p.0)
            .bind(address)
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
        if !self.campaign_active_for(message).await? {
            return Ok(vec![]);
        }
        let mut tx = self.begin().await?;
        // The state test is repeated outside the sub-select so that on
        // PostgreSQL a racing claimer re-checks it on the locked row version
        // and skips rows another worker just took.
        let rows = sqlx::query(
            "UPDATE campaign_outbox SET state = 'sending', lease_until = $1, attempts = attempts + 1, updated_at = $2 \
             WHERE id IN (SELECT id FROM campaign_outbox WHERE message_id = $3 AND ((state = 'queued' AND not_before <= $2) OR (state = 'sending' AND lease_until < $2)) ORDER BY id LIMIT $4) \
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
        let mut claimed = Vec::with_capacity(rows.len());
        for r in rows {
            claimed.push(Claimed {
                outbox_id: r.try_get(0)?,
                party_id: PartyId(r.try_get(1)?),
                address: r.try_get(2)?,
                message_key: r.try_get(3)?,
                attempts: r.try_get(4)?,
            });
        }
        // Consent and suppression at send time, a few statements per batch
        // (not per row); the rows that fail are closed in one transaction.
        let mut suppressed: HashMap<String, String> = HashMap::new();
        let mut consent: HashMap<i64, bool> = HashMap::new();
        for chunk in claimed.chunks(IN_CHUNK) {
            let sql = format!("SELECT address, reason FROM suppressions WHERE address IN ({})", crate::import::in_list(self.backend, chunk.len()));
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for c in chunk {
                q = q.bind(&c.address);
            }
            for r in q.fetch_all(&self.read).await? {
                suppressed.insert(r.try_get(0)?, r.try_get(1)?);
            }
            let sql = format!(
                "SELECT party_id, granted FROM party_consents WHERE channel = $1 AND party_id IN ({})",
                crate::import::placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(channel.as_str());
            for c in chunk {
                q = q.bind(c.party_id.0);
            }
            for r in q.fetch_all(&self.read).await? {
                consent.insert(r.try_get(0)?, r.try_get::<i64, _>(1)? != 0);
            }
        }
        let mut out = Vec::with_capacity(claimed.len());
        let mut closed = Vec::new();
        for c in claimed {
            let why = match suppressed.get(&c.address) {
                Some(why) => Some(format!("suppressed: {why}")),
                None if !consent.get(&c.party_id.0).copied().unwrap_or(false) => Some("no consent".to_string()),
                None => None,
            };
            match why {
                Some(detail) => closed.push(Completion { outbox_id: c.outbox_id, message_id: message, party_id: c.party_id, outcome: Outcome::Suppressed, detail, at: now }),
                None => out.push(c),
            }
        }
        self.complete_outbox_many(&closed).await?;
        out.sort_by_key(|c| c.outbox_id);
        Ok(out)
    }

    /// Closes many claimed rows in one transaction (the sender's group
    /// commit). As with [`Store::complete_outbox`], only rows still in
    /// `sending` move; returns how many did.
    pub async fn complete_outbox_many(&self, done: &[Completion]) -> Result<u64> {
        if done.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut moved = 0;
        let mut sent = Vec::with_capacity(done.len());
        for d in done {
            let sent_at = (d.outcome == Outcome::Sent).then_some(d.at);
            let r = sqlx::query("UPDATE campaign_outbox SET state = $1, detail = $2, updated_at = $3, sent_at = $4 WHERE id = $5 AND state = 'sending'")
                .bind(d.outcome.as_str())
                .bind(&d.detail)
                .bind(d.at)
                .bind(sent_at)
                .bind(d.outbox_id)
                .execute(&mut *tx)
                .await?;
            moved += r.rows_affected();
            if r.rows_affected() == 1 && d.outcome == Outcome::Sent {
                sent.push(d);
            }
        }
        for chunk in sent.chunks(IN_CHUNK) {
            let sql = crate::import::values_sql(self.backend, "INSERT INTO campaign_events (message_id, outbox_id, party_id, kind, at)", 5, chunk.len(), "");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for d in chunk {
                q = q.bind(d.message_id).bind(d.outbox_id).bind(d.party_id.0).bind("sent").bind(d.at);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Closes a claimed row. Only a row in `sending` moves, so a late
    /// completion after another worker finished it changes nothing.
    pub async fn complete_outbox(&self, outbox_id: i64, outcome: Outcome, detail: &str, now: Millis) -> Result<bool> {
        let mut tx = self.begin().await?;
        let sent_at = (outcome == Outcome::Sent).then_some(now);
        let r = sqlx::query("UPDATE campaign_outbox SET state = $1, detail = $2, updated_at = $3, sent_at = $4 WHERE id = $5 AND state = 'sending'")
            .bind(outcome.as_str())
            .bind(detail)
            .bind(now)
            .bind(sent_at)
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

/// A message as the API shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct CampaignMessage {
    pub id: MessageId,
    pub campaign_id: CampaignId,
    pub channel: Channel,
    pub template: Template,
    pub list_id: Option<ListId>,
    pub state: String,
    pub launched_at: Option<Millis>,
}

/// An engagement event as the tracking endpoints produce it. The ids come
/// from a verified token, so no lookup is needed to store it; `key` makes
/// the insert idempotent (a replayed write-ahead entry is stored once).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrackEvent {
    pub key: String,
    pub outbox_id: i64,
    pub message_id: MessageId,
    pub party_id: i64,
    /// `opened`, `clicked`.
    pub kind: String,
    /// For a click, `INDEX URL`.
    pub detail: String,
    pub machine: bool,
    pub at: Millis,
}

/// What the sender needs to know about a message.
#[derive(Debug, Clone, PartialEq)]
pub struct SendInfo {
    pub campaign_id: CampaignId,
    pub channel: Channel,
    pub template: Template,
}

/// One outbox row, looked up by id (bounce processing).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OutboxRow {
    pub id: i64,
    pub message_id: MessageId,
    pub party_id: PartyId,
    pub address: String,
    pub message_key: String,
    pub state: String,
    pub sent_at: Option<Millis>,
}

const EVENT_COLS: usize = 8;

impl Store {
    /// Every characteristic key some party has: the merge fields
    /// `characteristics.KEY` a template may use.
    pub async fn characteristic_keys(&self) -> Result<Vec<String>> {
        let rows = sqlx::query("SELECT DISTINCT key FROM party_chars ORDER BY key").fetch_all(&self.read).await?;
        rows.iter().map(|r| r.try_get::<String, _>(0).map_err(Error::from)).collect()
    }

    /// Replaces a message's template after checking it (unknown fields and
    /// unsafe HTML are rejected, naming the part). Only a draft may change:
    /// recipients of a launched message must all get the same text.
    pub async fn save_template(&self, actor: &Actor, message: MessageId, t: &Template) -> Result<CampaignMessage> {
        require_marketing(actor)?;
        let m = self.campaign_message(message).await?;
        if m.state != "draft" {
            return Err(Error::Duplicate("the message was launched; its template can no longer change".into()));
        }
        campaigns_template::validate(t, &self.characteristic_keys().await?)?;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE campaign_messages SET subject = $1, body_text = $2, body_html = $3 WHERE id = $4")
            .bind(&t.subject)
            .bind(&t.text)
            .bind(&t.html)
            .bind(message)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.campaign_message(message).await
    }

    pub async fn campaign(&self, id: CampaignId) -> Result<(Campaign, String)> {
        let r = sqlx::query("SELECT id, name, objectives, budget_cents, owner_id, state FROM campaigns WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("campaign"))?;
        let c = Campaign {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            objectives: r.try_get(2)?,
            budget_cents: r.try_get(3)?,
            owner_id: r.try_get::<Option<i64>, _>(4)?.map(UserId),
        };
        Ok((c, r.try_get(5)?))
    }

    /// The messages of a campaign, oldest first.
    pub async fn campaign_messages(&self, campaign: CampaignId) -> Result<Vec<CampaignMessage>> {
        let rows = sqlx::query("SELECT id FROM campaign_messages WHERE campaign_id = $1 ORDER BY id").bind(campaign).fetch_all(&self.read).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(self.campaign_message(r.try_get(0)?).await?);
        }
        Ok(out)
    }

    pub async fn campaign_message(&self, id: MessageId) -> Result<CampaignMessage> {
        let r = sqlx::query("SELECT id, campaign_id, channel, subject, body_text, body_html, list_id, state, launched_at FROM campaign_messages WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("message"))?;
        let channel: String = r.try_get(2)?;
        Ok(CampaignMessage {
            id: r.try_get(0)?,
            campaign_id: r.try_get(1)?,
            channel: Channel::parse(&channel).map_err(|_| Error::NotFound("channel"))?,
            template: Template { subject: r.try_get(3)?, text: r.try_get(4)?, html: r.try_get(5)? },
            list_id: r.try_get::<Option<i64>, _>(6)?.map(ListId),
            state: r.try_get(7)?,
            launched_at: r.try_get(8)?,
        })
    }

    /// The template merged for one party, as that recipient would get it
    /// (tracking links are added by the sender, not here).
    pub async fn preview(&self, actor: &Actor, message: MessageId, party: PartyId) -> Result<Rendered> {
        require_marketing(actor)?;
        let m = self.campaign_message(message).await?;
        let p = self.get_party(actor, party).await?;
        let mut ctx = campaigns_template::party_context(&p);
        ctx["unsubscribe_url"] = "#unsubscribe".into();
        campaigns_template::render(&m.template, &ctx).map_err(|e| Error::invalid("template", e))
    }

    /// The merge context of a recipient (for the sender).
    pub async fn merge_context(&self, party: PartyId) -> Result<serde_json::Value> {
        Ok(campaigns_template::party_context(&self.get_party(&Actor::system(), party).await?))
    }

    /// The merge contexts of many recipients in four statements per 500
    /// (the sender's batch), equal to [`Store::merge_context`] for each;
    /// parties that no longer exist are absent from the map.
    pub async fn merge_contexts(&self, parties: &[PartyId]) -> Result<HashMap<i64, serde_json::Value>> {
        let mut out = HashMap::with_capacity(parties.len());
        for chunk in parties.chunks(IN_CHUNK) {
            let list = crate::import::in_list(self.backend, chunk.len());
            let q = |sql: String| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for p in chunk {
                    q = q.bind(p.0);
                }
                q
            };
            let mut conn = self.read.acquire().await?;
            let mut firsts: [HashMap<i64, String>; 2] = [HashMap::new(), HashMap::new()];
            for (i, table, col) in [(0, "party_emails", "email"), (1, "party_phones", "e164")] {
                for r in q(format!("SELECT party_id, {col} FROM {table} WHERE party_id IN ({list}) ORDER BY party_id, position, id")).fetch_all(&mut *conn).await? {
                    firsts[i].entry(r.try_get(0)?).or_insert(r.try_get(1)?);
                }
            }
            let mut chars: HashMap<i64, std::collections::BTreeMap<String, String>> = HashMap::new();
            for r in q(format!("SELECT party_id, key, value FROM party_chars WHERE party_id IN ({list})")).fetch_all(&mut *conn).await? {
                chars.entry(r.try_get(0)?).or_default().insert(r.try_get(1)?, r.try_get(2)?);
            }
            for r in q(format!("SELECT id, name, first_name, last_name, kind, stage, city, zone FROM parties WHERE id IN ({list})")).fetch_all(&mut *conn).await? {
                let id: i64 = r.try_get(0)?;
                let opt = |i: usize| r.try_get::<Option<String>, _>(i).map(Option::unwrap_or_default);
                let ctx = serde_json::json!({
                    "party_id": id,
                    "name": r.try_get::<String, _>(1)?,
                    "first_name": opt(2)?,
                    "last_name": opt(3)?,
                    "kind": r.try_get::<String, _>(4)?,
                    "stage": r.try_get::<String, _>(5)?,
                    "city": opt(6)?,
                    "zone": opt(7)?,
                    "email": firsts[0].remove(&id).unwrap_or_default(),
                    "phone": firsts[1].remove(&id).unwrap_or_default(),
                    "characteristics": chars.remove(&id).unwrap_or_default(),
                });
                out.insert(id, ctx);
            }
        }
        Ok(out)
    }

    pub async fn send_info(&self, message: MessageId) -> Result<SendInfo> {
        let m = self.campaign_message(message).await?;
        Ok(SendInfo { campaign_id: m.campaign_id, channel: m.channel, template: m.template })
    }

    /// Whether the message's campaign may send (not paused by the
    /// complaint-rate guard).
    pub async fn campaign_active_for(&self, message: MessageId) -> Result<bool> {
        let r = sqlx::query("SELECT c.state FROM campaigns c JOIN campaign_messages m ON m.campaign_id = c.id WHERE m.id = $1")
            .bind(message)
            .fetch_optional(&self.read)
            .await?;
        Ok(match r {
            Some(r) => r.try_get::<String, _>(0)? == "active",
            None => false,
        })
    }

    /// Launched messages of active campaigns that have rows to send now.
    pub async fn sendable_messages(&self, channel: Channel, now: Millis) -> Result<Vec<MessageId>> {
        let rows = sqlx::query(
            "SELECT m.id FROM campaign_messages m JOIN campaigns c ON c.id = m.campaign_id \
             WHERE m.state = 'launched' AND c.state = 'active' AND m.channel = $1 AND EXISTS (SELECT 1 FROM campaign_outbox o WHERE o.message_id = m.id \
             AND ((o.state = 'queued' AND o.not_before <= $2) OR (o.state = 'sending' AND o.lease_until < $2))) ORDER BY m.id",
        )
        .bind(channel.as_str())
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| r.try_get::<i64, _>(0).map_err(Error::from)).collect()
    }

    /// Puts a claimed row back in the queue until `not_before` (a throttle
    /// or a send window said "not now"); the claim does not count as an
    /// attempt.
    pub async fn defer_outbox(&self, outbox_id: i64, not_before: Millis, now: Millis) -> Result<bool> {
        let mut tx = self.begin().await?;
        let r = sqlx::query("UPDATE campaign_outbox SET state = 'queued', not_before = $1, attempts = attempts - 1, updated_at = $2 WHERE id = $3 AND state = 'sending'")
            .bind(not_before)
            .bind(now)
            .bind(outbox_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn outbox_row(&self, outbox_id: i64) -> Result<OutboxRow> {
        let r = sqlx::query("SELECT id, message_id, party_id, address, message_key, state, sent_at FROM campaign_outbox WHERE id = $1")
            .bind(outbox_id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("outbox row"))?;
        Ok(OutboxRow {
            id: r.try_get(0)?,
            message_id: r.try_get(1)?,
            party_id: PartyId(r.try_get(2)?),
            address: r.try_get(3)?,
            message_key: r.try_get(4)?,
            state: r.try_get(5)?,
            sent_at: r.try_get(6)?,
        })
    }

    /// The secret that signs tracking, unsubscribe and VERP tokens, made on
    /// first use and kept in the store so every process of an installation
    /// signs alike (a configured secret takes precedence in the app).
    pub async fn campaign_secret(&self) -> Result<Vec<u8>> {
        if let Some(r) = sqlx::query("SELECT value FROM campaign_settings WHERE name = 'tracking_secret'").fetch_optional(&self.read).await? {
            let v: String = r.try_get(0)?;
            if let Ok(b) = hex::decode(v) {
                return Ok(b);
            }
        }
        let mut bytes = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO campaign_settings (name, value) VALUES ('tracking_secret', $1) ON CONFLICT (name) DO NOTHING")
            .bind(hex::encode(bytes))
            .execute(&mut *tx)
            .await?;
        let v: String = sqlx::query("SELECT value FROM campaign_settings WHERE name = 'tracking_secret'").fetch_one(&mut *tx).await?.try_get(0)?;
        tx.commit().await?;
        hex::decode(v).map_err(|_| Error::NotFound("tracking secret"))
    }

    /// Stores a batch of engagement events in one multi-row INSERT per
    /// 1,000 events; events whose key is already stored are skipped, so a
    /// replay is harmless. Returns how many were new.
    pub async fn record_events(&self, events: &[TrackEvent]) -> Result<u64> {
        let mut new = 0;
        let mut tx = self.begin().await?;
        for chunk in events.chunks(1000) {
            let sql = crate::import::values_sql(
                self.backend,
                "INSERT INTO campaign_events (event_key, outbox_id, message_id, party_id, kind, detail, machine, at)",
                EVENT_COLS,
                chunk.len(),
                "ON CONFLICT (event_key) DO NOTHING",
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                q = q.bind(&e.key).bind(e.outbox_id).bind(e.message_id).bind(e.party_id).bind(&e.kind).bind(&e.detail).bind(e.machine as i64).bind(e.at);
            }
            new += q.execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(new)
    }

    /// One-click unsubscribe from a verified token: withdraws the party's
    /// email consent (recorded with time and source) and records the event.
    /// Every later claim checks consent, so it takes effect for the next
    /// send. Idempotent; returns whether consent changed.
    pub async fn unsubscribe(&self, outbox_id: i64, source: &str, now: Millis) -> Result<bool> {
        self.withdraw(outbox_id, "unsubscribed", source, now).await
    }

    /// A complaint (ARF report) about an outbox row: unsubscribes the party,
    /// records the event and applies the campaign's complaint-rate guard.
    pub async fn record_complaint(&self, outbox_id: i64, now: Millis) -> Result<crate::campaigns_monitor::Compliance> {
        self.withdraw(outbox_id, "complained", "complaint (ARF report)", now).await?;
        let row = self.outbox_row(outbox_id).await?;
        let campaign = self.campaign_message(row.message_id).await?.campaign_id;
        self.check_compliance(campaign, now).await
    }

    async fn withdraw(&self, outbox_id: i64, kind: &str, source: &str, now: Millis) -> Result<bool> {
        let row = self.outbox_row(outbox_id).await?;
        let channel = self.campaign_message(row.message_id).await?.channel;
        let mut tx = self.begin().await?;
        let granted = sqlx::query("SELECT granted FROM party_consents WHERE party_id = $1 AND channel = $2")
            .bind(row.party_id.0)
            .bind(channel.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<i64, _>(0))
            .transpose()?
            .unwrap_or(0);
        crate::parties::upsert_consent(&mut tx, row.party_id, channel, false, now, source).await?;
        if granted != 0 {
            crate::oplog::record(&mut tx, &Actor::system(), "party", row.party_id.0, "consent", &serde_json::json!({ channel.as_str(): [true, false], "source": source })).await?;
        }
        sqlx::query(
            "INSERT INTO campaign_events (event_key, outbox_id, message_id, party_id, kind, detail, machine, at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7) ON CONFLICT (event_key) DO NOTHING",
        )
        .bind(format!("{kind}:{outbox_id}"))
        .bind(outbox_id)
        .bind(row.message_id)
        .bind(row.party_id.0)
        .bind(kind)
        .bind(source)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(granted != 0)
    }
}

impl Store {
    /// A campaign setting (e.g. `mail_domain`, the domain of Message-IDs).
    pub async fn campaign_setting(&self, name: &str) -> Result<Option<String>> {
        let r = sqlx::query("SELECT value FROM campaign_settings WHERE name = $1").bind(name).fetch_optional(&self.read).await?;
        Ok(r.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    pub async fn set_campaign_setting(&self, name: &str, value: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM campaign_settings WHERE name = $1").bind(name).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO campaign_settings (name, value) VALUES ($1, $2)").bind(name).bind(value).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
