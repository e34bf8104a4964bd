//! The message monitor and the campaign's compliance guard.
//!
//! [`Store::message_report`] turns a message's outbox states and events into
//! what a marketer reads: sent, suppressed, bounced by reason, opens (unique
//! and total, human and machine apart), clicks per link, unsubscribes and
//! complaints. [`Store::recipient_timeline`] is one recipient's history;
//! [`Store::list_from_results`] freezes a selection of recipients ("clicked
//! link 2 but did not open the follow-up") into a static list; and
//! [`Store::campaign_roi`] sets the budget against the won deals of the
//! campaign's recipients.
//!
//! Compliance: Gmail and Yahoo require bulk senders to stay under a 0.3%
//! complaint rate and recommend under 0.1%. [`Store::check_compliance`]
//! raises an alarm above 0.1% and pauses the campaign at 0.3% (a paused
//! campaign's rows are not claimed); it runs on every complaint.

use crate::campaigns::{CampaignId, MessageId};
use crate::lists::{List, ListKind, NewList};
use crate::{Actor, Error, Millis, PartyId, Result, Store};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// Complaint rate above which an alarm is raised (Gmail's target).
pub const ALARM_RATE: f64 = 0.001;
/// Complaint rate at which sending pauses (Gmail's and Yahoo's limit).
pub const PAUSE_RATE: f64 = 0.003;

#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Opens {
    pub unique_human: i64,
    pub total_human: i64,
    pub unique_machine: i64,
    pub total_machine: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LinkClicks {
    pub index: i64,
    pub url: String,
    pub unique_human: i64,
    pub total_human: i64,
    pub machine: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct BounceCount {
    pub reason: String,
    pub hard: bool,
    pub count: i64,
}

/// The message monitor's figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageReport {
    pub message_id: MessageId,
    pub recipients: i64,
    pub queued: i64,
    pub sent: i64,
    pub failed: i64,
    pub suppressed: i64,
    pub bounced: Vec<BounceCount>,
    pub opens: Opens,
    pub clicks: Vec<LinkClicks>,
    pub unsubscribed: i64,
    pub complained: i64,
    /// Delivery receipts (SMS) and provider statuses (fax): recipients
    /// whose message was delivered, or finally failed.
    pub delivered: i64,
    pub delivery_failed: i64,
}

/// One entry of a recipient's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub message_id: MessageId,
    pub kind: String,
    pub detail: String,
    pub machine: bool,
    pub at: Millis,
}

/// Which recipients of a message a list from results takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Selector {
    /// Opened (by a person: machine opens do not count).
    Opened,
    /// Sent but not opened by a person.
    NotOpened,
    /// Clicked (any link, or link `link`, 1-based) as a person.
    Clicked { link: Option<i64> },
    /// Sent but did not click (that link).
    NotClicked { link: Option<i64> },
    Bounced,
    Unsubscribed,
}

/// A list from results: recipients matching `include` and not `exclude`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultsQuery {
    pub name: String,
    pub include: Selector,
    #[serde(default)]
    pub exclude: Option<Selector>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Roi {
    pub budget_cents: i64,
    pub won_deals: i64,
    pub won_value_cents: i64,
    /// (won value − budget) / budget; absent for a zero budget.
    pub roi: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Compliance {
    pub sent: i64,
    pub complaints: i64,
    pub rate: f64,
    pub alarm: bool,
    pub paused: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Alarm {
    pub kind: String,
    pub detail: String,
    pub at: Millis,
}

impl Store {
    pub async fn message_report(&self, message: MessageId) -> Result<MessageReport> {
        self.campaign_message(message).await?;
        let m = self.message_monitor(message).await?;
        let mut r = MessageReport { message_id: message, queued: m.queued, sent: m.sent, failed: m.failed, suppressed: m.suppressed, ..Default::default() };
        r.recipients = r.queued + r.sent + r.failed + r.suppressed;
        for (kind, detail, n) in &m.events {
            match kind.as_str() {
                "bounced_hard" | "bounced_soft" => r.bounced.push(BounceCount { reason: detail.clone(), hard: kind == "bounced_hard", count: *n }),
                "unsubscribed" => r.unsubscribed += n,
                "complained" => r.complained += n,
                "sms_delivered" | "fax_delivered" => r.delivered += n,
                "sms_failed" | "fax_failed" => r.delivery_failed += n,
                _ => {}
            }
        }
        let opens = sqlx::query("SELECT machine, COUNT(*), COUNT(DISTINCT outbox_id) FROM campaign_events WHERE message_id = $1 AND kind = 'opened' GROUP BY machine")
            .bind(message)
            .fetch_all(&self.read)
            .await?;
        for o in opens {
            let (machine, total, unique): (i64, i64, i64) = (o.try_get(0)?, o.try_get(1)?, o.try_get(2)?);
            if machine != 0 {
                (r.opens.total_machine, r.opens.unique_machine) = (total, unique);
            } else {
                (r.opens.total_human, r.opens.unique_human) = (total, unique);
            }
        }
        let clicks = sqlx::query(
            "SELECT detail, machine, COUNT(*), COUNT(DISTINCT outbox_id) FROM campaign_events WHERE message_id = $1 AND kind = 'clicked' GROUP BY detail, machine ORDER BY detail",
        )
        .bind(message)
        .fetch_all(&self.read)
        .await?;
        for c in clicks {
            let (detail, machine, total, unique): (String, i64, i64, i64) = (c.try_get(0)?, c.try_get(1)?, c.try_get(2)?, c.try_get(3)?);
            let (index, url) = detail.split_once(' ').unwrap_or((detail.as_str(), ""));
            let index: i64 = index.parse().unwrap_or(0);
            let entry = match r.clicks.iter_mut().position(|l| l.index == index) {
                Some(i) => &mut r.clicks[i],
                None => {
                    r.clicks.push(LinkClicks { index, url: url.to_string(), unique_human: 0, total_human: 0, machine: 0 });
                    let last = r.clicks.len() - 1;
                    &mut r.clicks[last]
                }
            };
            if machine != 0 {
                entry.machine += total;
            } else {
                entry.total_human += total;
                entry.unique_human += unique;
            }
        }
        r.clicks.sort_by_key(|l| l.index);
        Ok(r)
    }

    /// Everything that happened to one party across campaign messages,
    /// oldest first.
    pub async fn recipient_timeline(&self, actor: &Actor, party: PartyId) -> Result<Vec<TimelineEntry>> {
        crate::campaigns::require_marketing(actor)?;
        let rows = sqlx::query("SELECT message_id, kind, detail, machine, at FROM campaign_events WHERE party_id = $1 ORDER BY at, id")
            .bind(party.0)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TimelineEntry { message_id: r.try_get(0)?, kind: r.try_get(1)?, detail: r.try_get(2)?, machine: r.try_get::<i64, _>(3)? != 0, at: r.try_get(4)? })
            })
            .collect()
    }

    async fn select_recipients(&self, message: MessageId, s: Selector) -> Result<Vec<i64>> {
        // Every branch binds exactly the message id, and for a link filter
        // the detail prefix, so the SQL is fixed text per selector.
        let sent = "SELECT party_id FROM campaign_outbox WHERE message_id = $1 AND state = 'sent'";
        let (sql, link) = match s {
            Selector::Opened => ("SELECT DISTINCT party_id FROM campaign_events WHERE message_id = $1 AND kind = 'opened' AND machine = 0".to_string(), None),
            Selector::NotOpened => (format!("{sent} AND party_id NOT IN (SELECT party_id FROM campaign_events WHERE message_id = $1 AND kind = 'opened' AND machine = 0)"), None),
            Selector::Clicked { link: None } => ("SELECT DISTINCT party_id FROM campaign_events WHERE message_id = $1 AND kind = 'clicked' AND machine = 0".to_string(), None),
            Selector::Clicked { link: Some(l) } => (
                "SELECT DISTINCT party_id FROM campaign_events WHERE message_id = $1 AND kind = 'clicked' AND machine = 0 AND detail LIKE $2".to_string(),
                Some(format!("{l} %")),
            ),
            Selector::NotClicked { link: None } => {
                (format!("{sent} AND party_id NOT IN (SELECT party_id FROM campaign_events WHERE message_id = $1 AND kind = 'clicked' AND machine = 0)"), None)
            }
            Selector::NotClicked { link: Some(l) } => (
                format!("{sent} AND party_id NOT IN (SELECT party_id FROM campaign_events WHERE message_id = $1 AND kind = 'clicked' AND machine = 0 AND detail LIKE $2)"),
                Some(format!("{l} %")),
            ),
            Selector::Bounced => ("SELECT DISTINCT party_id FROM campaign_events WHERE message_id = $1 AND kind IN ('bounced_hard', 'bounced_soft')".to_string(), None),
            Selector::Unsubscribed => ("SELECT DISTINCT party_id FROM campaign_events WHERE message_id = $1 AND kind IN ('unsubscribed', 'complained')".to_string(), None),
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(message);
        if let Some(l) = link {
            q = q.bind(l);
        }
        let rows = q.fetch_all(&self.read).await?;
        let mut ids: Vec<i64> = rows.iter().map(|r| r.try_get::<i64, _>(0)).collect::<std::result::Result<_, _>>()?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Freezes the recipients of a message that match a query into a new
    /// static list.
    pub async fn list_from_results(&self, actor: &Actor, message: MessageId, q: ResultsQuery) -> Result<List> {
        crate::campaigns::require_marketing(actor)?;
        self.campaign_message(message).await?;
        let mut ids = self.select_recipients(message, q.include).await?;
        if let Some(ex) = q.exclude {
            let out = self.select_recipients(message, ex).await?;
            ids.retain(|i| out.binary_search(i).is_err());
        }
        let description = Some(format!("from the results of message {message}"));
        self.create_list(actor, NewList { name: q.name, description, kind: ListKind::Static, filter: None, party_ids: ids.into_iter().map(PartyId).collect() }).await
    }

    /// Budget against the value of deals won by the campaign's recipients
    /// after the message that reached them was sent.
    pub async fn campaign_roi(&self, campaign: CampaignId) -> Result<Roi> {
        let (c, _) = self.campaign(campaign).await?;
        let r = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(d.value_cents), 0) AS BIGINT) FROM deals d WHERE d.status = 'won' AND EXISTS (\
             SELECT 1 FROM campaign_outbox o JOIN campaign_messages m ON m.id = o.message_id \
             WHERE m.campaign_id = $1 AND o.party_id = d.party_id AND o.state = 'sent' AND COALESCE(d.closed_at, d.updated_at) >= COALESCE(o.sent_at, 0))",
        )
        .bind(campaign)
        .fetch_one(&self.read)
        .await?;
        let (won_deals, won_value_cents): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
        let roi = (c.budget_cents > 0).then(|| (won_value_cents - c.budget_cents) as f64 / c.budget_cents as f64);
        Ok(Roi { budget_cents: c.budget_cents, won_deals, won_value_cents, roi })
    }

    /// Applies the complaint-rate guard to a campaign: an alarm above
    /// [`ALARM_RATE`], a pause at [`PAUSE_RATE`]. Each alarm is raised once.
    pub async fn check_compliance(&self, campaign: CampaignId, now: Millis) -> Result<Compliance> {
        let r = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM campaign_outbox o JOIN campaign_messages m ON m.id = o.message_id WHERE m.campaign_id = $1 AND o.state = 'sent'), \
             (SELECT COUNT(DISTINCT e.outbox_id) FROM campaign_events e JOIN campaign_messages m ON m.id = e.message_id WHERE m.campaign_id = $1 AND e.kind = 'complained')",
        )
        .bind(campaign)
        .fetch_one(&self.read)
        .await?;
        let (sent, complaints): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
        let rate = if sent > 0 { complaints as f64 / sent as f64 } else { 0.0 };
        let alarm = rate > ALARM_RATE;
        let paused = rate >= PAUSE_RATE && complaints > 0;
        if alarm || paused {
            let mut tx = self.begin().await?;
            let detail = format!("complaint rate {:.3}% ({complaints} of {sent})", rate * 100.0);
            if alarm {
                sqlx::query("INSERT INTO campaign_alarms (campaign_id, kind, detail, at) VALUES ($1, 'complaint_rate', $2, $3) ON CONFLICT (campaign_id, kind) DO NOTHING")
                    .bind(campaign)
                    .bind(&detail)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            if paused {
                sqlx::query("INSERT INTO campaign_alarms (campaign_id, kind, detail, at) VALUES ($1, 'paused', $2, $3) ON CONFLICT (campaign_id, kind) DO NOTHING")
                    .bind(campaign)
                    .bind(&detail)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE campaigns SET state = 'paused' WHERE id = $1").bind(campaign).execute(&mut *tx).await?;
                tracing::warn!(campaign_id = campaign, %detail, "campaign paused by the complaint-rate guard");
            }
            tx.commit().await?;
        }
        Ok(Compliance { sent, complaints, rate, alarm, paused })
    }

    pub async fn campaign_alarms(&self, campaign: CampaignId) -> Result<Vec<Alarm>> {
        let rows = sqlx::query("SELECT kind, detail, at FROM campaign_alarms WHERE campaign_id = $1 ORDER BY at, kind").bind(campaign).fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok(Alarm { kind: r.try_get(0)?, detail: r.try_get(1)?, at: r.try_get(2)? })).collect::<Result<_>>()
    }

    /// Resumes a paused campaign (an operator's decision after review).
    pub async fn resume_campaign(&self, actor: &Actor, campaign: CampaignId) -> Result<()> {
        crate::campaigns::require_marketing(actor)?;
        let mut tx = self.begin().await?;
        let r = sqlx::query("UPDATE campaigns SET state = 'active' WHERE id = $1").bind(campaign).execute(&mut *tx).await?;
        tx.commit().await?;
        if r.rows_affected() == 0 { Err(Error::NotFound("campaign")) } else { Ok(()) }
    }
}
