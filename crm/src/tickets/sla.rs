//! SLA targets per centre and priority — first response, next update,
//! resolution — counted in business time on the centre's calendar.
//!
//! The due instants are kept on the ticket (recomputed by
//! [`refresh_dues`] whenever something that moves them happens); measured
//! outcomes land in `sla_measures` when the response or resolution happens;
//! [`Store::sla_scan`] emits warnings before a due instant and breaches after
//! it, each once, and hands them to the notification rules.

use super::*;
use crate::auth::Actor;
use crate::error::Problems;
use crate::store::Store;
use crate::types::{UserId, now_ms};
use sqlx::Row;

str_enum!(/// What an SLA target measures.
    SlaMetric { FirstResponse => "first_response", NextUpdate => "next_update", Resolution => "resolution" });
str_enum!(/// A warning before the due instant, or the breach after it.
    SlaEventKind { Warning => "warning", Breach => "breach" });

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarInput {
    pub name: String,
    /// IANA time zone, e.g. `Europe/Rome`.
    pub tz: String,
    pub weekly: Vec<calendar::WeeklySpan>,
    #[serde(default)]
    pub holidays: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicyInput {
    pub centre_id: ServiceCentreId,
    pub priority: String,
    #[serde(default)]
    pub first_response_ms: Option<Millis>,
    #[serde(default)]
    pub next_update_ms: Option<Millis>,
    #[serde(default)]
    pub resolution_ms: Option<Millis>,
    /// Warn this many business milliseconds before a due instant.
    #[serde(default)]
    pub warn_before_ms: Option<Millis>,
}

/// An SLA warning or breach emitted by [`Store::sla_scan`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SlaEvent {
    pub ticket: TicketNo,
    pub metric: SlaMetric,
    pub kind: SlaEventKind,
    pub due_at: Millis,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct SlaReportQuery {
    pub centre_id: Option<i64>,
    pub operator_id: Option<i64>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
}

/// Met and breached counts and business-time statistics for one centre,
/// operator and metric over a period.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SlaReportRow {
    pub centre_id: ServiceCentreId,
    pub operator_id: Option<UserId>,
    pub metric: SlaMetric,
    pub met: i64,
    pub breached: i64,
    pub median_ms: Millis,
    pub p90_ms: Millis,
}

struct Policy {
    first_response_ms: Option<Millis>,
    next_update_ms: Option<Millis>,
    resolution_ms: Option<Millis>,
    warn_before_ms: Millis,
}

async fn policy(conn: &mut sqlx::AnyConnection, centre: ServiceCentreId, priority: Priority) -> Result<Option<Policy>> {
    let r = sqlx::query("SELECT first_response_ms, next_update_ms, resolution_ms, warn_before_ms FROM sla_policies WHERE centre_id = $1 AND priority = $2")
        .bind(centre.0)
        .bind(priority.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match r {
        Some(r) => Some(Policy {
            first_response_ms: r.try_get("first_response_ms")?,
            next_update_ms: r.try_get("next_update_ms")?,
            resolution_ms: r.try_get("resolution_ms")?,
            warn_before_ms: r.try_get("warn_before_ms")?,
        }),
        None => None,
    })
}

/// The calendar of a centre (round the clock when it has none).
pub(crate) async fn centre_calendar(conn: &mut sqlx::AnyConnection, centre: ServiceCentreId) -> Result<BusinessCalendar> {
    let r = sqlx::query("SELECT c.tz, c.weekly, c.holidays FROM service_centres s JOIN business_calendars c ON c.id = s.calendar_id WHERE s.id = $1")
        .bind(centre.0)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(r) = r else { return Ok(BusinessCalendar::always()) };
    let weekly: Vec<calendar::WeeklySpan> = serde_json::from_str(&r.try_get::<String, _>("weekly")?).unwrap_or_default();
    let holidays = json_list(&r.try_get::<String, _>("holidays")?);
    Ok(BusinessCalendar::new(&r.try_get::<String, _>("tz")?, &weekly, &holidays).unwrap_or_else(|_| BusinessCalendar::always()))
}

/// Recomputes a ticket's due instants from its policy and calendar.
pub(crate) async fn refresh_dues(tx: &mut Tx, no: TicketNo, _now: Millis) -> Result<()> {
    // Without a policy for the ticket's centre and priority (a desk without
    // SLAs: the common case) there is nothing to compute, and the ticket
    // need not be loaded: clear any dues in one statement.
    let has_policy = sqlx::query("SELECT 1 FROM sla_policies p JOIN tickets t ON t.centre_id = p.centre_id AND t.priority = p.priority WHERE t.id = $1")
        .bind(no.get())
        .fetch_optional(&mut **tx)
        .await?
        .is_some();
    if !has_policy {
        sqlx::query(
            "UPDATE tickets SET first_response_due = NULL, next_update_due = NULL, resolution_due = NULL \
             WHERE id = $1 AND (first_response_due IS NOT NULL OR next_update_due IS NOT NULL OR resolution_due IS NOT NULL)",
        )
        .bind(no.get())
        .execute(&mut **tx)
        .await?;
        return Ok(());
    }
    let t = desk::load_ticket(tx, no).await?;
    let Some(p) = policy(tx, t.centre_id, t.priority).await? else { return Ok(()) };
    let cal = centre_calendar(tx, t.centre_id).await?;
    let done = t.state.is_done();
    let fr = match (p.first_response_ms, t.first_response_at, done) {
        (Some(ms), None, false) => Some(add_business_ms(&cal, t.created_at, ms)),
        _ => None,
    };
    let waiting = match (t.last_customer_at, t.last_agent_at) {
        (Some(c), Some(a)) => c > a,
        _ => false,
    };
    let nu = match (p.next_update_ms, t.first_response_at, t.last_customer_at, waiting && !done) {
        (Some(ms), Some(_), Some(c), true) if t.state != TicketState::Pending => Some(add_business_ms(&cal, c, ms)),
        _ => None,
    };
    let res = match (p.resolution_ms, done) {
        (Some(ms), false) => Some(add_business_ms(&cal, t.created_at, ms)),
        _ => None,
    };
    sqlx::query("UPDATE tickets SET first_response_due = $1, next_update_due = $2, resolution_due = $3 WHERE id = $4")
        .bind(fr)
        .bind(nu)
        .bind(res)
        .bind(no.get())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn measure(tx: &mut Tx, t: &Ticket, metric: SlaMetric, from: Millis, now: Millis) -> Result<()> {
    let Some(p) = policy(tx, t.centre_id, t.priority).await? else { return Ok(()) };
    let target = match metric {
        SlaMetric::FirstResponse => p.first_response_ms,
        SlaMetric::NextUpdate => p.next_update_ms,
        SlaMetric::Resolution => p.resolution_ms,
    };
    let Some(target) = target else { return Ok(()) };
    let cal = centre_calendar(tx, t.centre_id).await?;
    let took = business_ms_between(&cal, from, now);
    sqlx::query("INSERT INTO sla_measures (ticket_id, metric, centre_id, operator_id, at, business_ms, met) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(t.no.get())
        .bind(metric.as_str())
        .bind(t.centre_id.0)
        .bind(t.assignee_id.map(|u| u.0))
        .bind(now)
        .bind(took)
        .bind(i64::from(took <= target))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// An agent answered the customer: first response or next update.
pub(crate) async fn record_agent_reply(tx: &mut Tx, t: &Ticket, now: Millis) -> Result<()> {
    match t.first_response_at {
        None => {
            measure(tx, t, SlaMetric::FirstResponse, t.created_at, now).await?;
            sqlx::query("UPDATE tickets SET first_response_at = $1 WHERE id = $2").bind(now).bind(t.no.get()).execute(&mut **tx).await?;
        }
        Some(_) => {
            if let (Some(c), a) = (t.last_customer_at, t.last_agent_at) {
                if a.is_none_or(|a| c > a) {
                    measure(tx, t, SlaMetric::NextUpdate, c, now).await?;
                }
            }
        }
    }
    sqlx::query("UPDATE tickets SET last_agent_at = $1 WHERE id = $2").bind(now).bind(t.no.get()).execute(&mut **tx).await?;
    Ok(())
}

pub(crate) async fn record_resolution(tx: &mut Tx, t: &Ticket, now: Millis) -> Result<()> {
    if t.solved_at.is_none() {
        measure(tx, t, SlaMetric::Resolution, t.created_at, now).await?;
    }
    Ok(())
}

fn percentile(sorted: &[Millis], p: f64) -> Millis {
    if sorted.is_empty() {
        return 0;
    }
    // Nearest rank.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl Store {
    pub async fn create_calendar(&self, actor: &Actor, input: CalendarInput) -> Result<CalendarId> {
        require_desk_admin(actor)?;
        let mut p = Problems::default();
        if input.name.trim().is_empty() {
            p.push("name", "required");
        }
        p.check("weekly", BusinessCalendar::new(&input.tz, &input.weekly, &input.holidays));
        p.finish()?;
        let mut tx = self.begin().await?;
        let r = sqlx::query("INSERT INTO business_calendars (name, tz, weekly, holidays, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id")
            .bind(input.name.trim())
            .bind(&input.tz)
            .bind(to_json(&input.weekly))
            .bind(to_json(&input.holidays))
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(d) if d.is_unique_violation() => Error::Duplicate("a calendar with this name exists".into()),
                e => Error::Db(e),
            })?;
        let id: i64 = r.try_get("id")?;
        crate::oplog::record(&mut tx, actor, "business_calendar", id, "create", &serde_json::json!({"name": input.name})).await?;
        tx.commit().await?;
        Ok(CalendarId(id))
    }

    /// Sets (replaces) the SLA targets of a centre for one priority.
    pub async fn set_sla_policy(&self, actor: &Actor, input: SlaPolicyInput) -> Result<()> {
        require_desk_admin(actor)?;
        let mut p = Problems::default();
        let prio = p.check("priority", Priority::parse(&input.priority));
        for (f, v) in [("first_response_ms", input.first_response_ms), ("next_update_ms", input.next_update_ms), ("resolution_ms", input.resolution_ms), ("warn_before_ms", input.warn_before_ms)] {
            if v.is_some_and(|v| v < 0) {
                p.push(f, "must not be negative");
            }
        }
        if let Err(Error::NotFound(_)) = self.get_centre(input.centre_id).await {
            p.push("centre_id", "no such centre");
        }
        p.finish()?;
        let prio = prio.unwrap_or(Priority::Normal);
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM sla_policies WHERE centre_id = $1 AND priority = $2").bind(input.centre_id.0).bind(prio.as_str()).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO sla_policies (centre_id, priority, first_response_ms, next_update_ms, resolution_ms, warn_before_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(input.centre_id.0)
        .bind(prio.as_str())
        .bind(input.first_response_ms)
        .bind(input.next_update_ms)
        .bind(input.resolution_ms)
        .bind(input.warn_before_ms.unwrap_or(0))
        .execute(&mut *tx)
        .await?;
        crate::oplog::record(&mut tx, actor, "sla_policy", input.centre_id.0, "set", &serde_json::to_value(&input).unwrap_or_default()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Emits SLA warnings (within the warning window before a due instant,
    /// measured in business time) and breaches (past it), once each, and
    /// runs the notification rules on them. Returns what it emitted.
    pub async fn sla_scan(&self, now: Millis) -> Result<Vec<SlaEvent>> {
        let rows = sqlx::query(
            "SELECT id, centre_id, priority, first_response_due, next_update_due, resolution_due FROM tickets \
             WHERE state NOT IN ('solved','closed') AND (first_response_due IS NOT NULL OR next_update_due IS NOT NULL OR resolution_due IS NOT NULL)",
        )
        .fetch_all(&self.read)
        .await?;
        let mut out = Vec::new();
        let mut tx = self.begin().await?;
        for r in &rows {
            let Some(no) = TicketNo::new(r.try_get("id")?) else { continue };
            let centre = ServiceCentreId(r.try_get("centre_id")?);
            let prio = Priority::parse(&r.try_get::<String, _>("priority")?).unwrap_or(Priority::Normal);
            let warn = policy(&mut tx, centre, prio).await?.map(|p| p.warn_before_ms).unwrap_or(0);
            let cal = centre_calendar(&mut tx, centre).await?;
            for (metric, col) in [(SlaMetric::FirstResponse, "first_response_due"), (SlaMetric::NextUpdate, "next_update_due"), (SlaMetric::Resolution, "resolution_due")] {
                let Some(due) = r.try_get::<Option<i64>, _>(col)? else { continue };
                let kind = if now >= due {
                    SlaEventKind::Breach
                } else if warn > 0 && business_ms_between(&cal, now, due) <= warn {
                    SlaEventKind::Warning
                } else {
                    continue;
                };
                let ins = sqlx::query(
                    "INSERT INTO sla_events (ticket_id, metric, event, due_at, at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (ticket_id, metric, event, due_at) DO NOTHING RETURNING id",
                )
                .bind(no.get())
                .bind(metric.as_str())
                .bind(kind.as_str())
                .bind(due)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if ins.is_none() {
                    continue;
                }
                desk::add_event(&mut tx, no, None, &format!("sla_{}", kind.as_str()), None, &serde_json::json!({"metric": metric, "due_at": due}), now).await?;
                let trigger = if kind == SlaEventKind::Breach { rules::Trigger::SlaBreach } else { rules::Trigger::SlaWarning };
                rules::notify(&mut tx, no, trigger, now).await?;
                out.push(SlaEvent { ticket: no, metric, kind, due_at: due });
            }
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Met/breached counts and median and p90 business times per centre,
    /// operator and metric, over measures taken in `[from, to)`.
    pub async fn sla_report(&self, actor: &Actor, q: &SlaReportQuery) -> Result<Vec<SlaReportRow>> {
        require_desk(actor)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT centre_id, operator_id, metric, business_ms, met FROM sla_measures \
             WHERE at >= $1 AND at < $2 AND {} AND {} AND {} \
             ORDER BY centre_id, operator_id, metric",
            q.centre_id.map(|c| format!("centre_id = {c}")).unwrap_or_else(|| "1=1".into()),
            q.operator_id.map(|o| format!("operator_id = {o}")).unwrap_or_else(|| "1=1".into()),
            actor.owner_filter("operator_id")
        )))
        .bind(q.from.unwrap_or(0))
        .bind(q.to.unwrap_or(i64::MAX))
        .fetch_all(&self.read)
        .await?;
        let mut groups: std::collections::BTreeMap<(i64, Option<i64>, String), (i64, i64, Vec<Millis>)> = Default::default();
        for r in &rows {
            let key = (r.try_get::<i64, _>("centre_id")?, r.try_get::<Option<i64>, _>("operator_id")?, r.try_get::<String, _>("metric")?);
            let g = groups.entry(key).or_default();
            if crate::store::b(r.try_get("met")?) {
                g.0 += 1;
            } else {
                g.1 += 1;
            }
            g.2.push(r.try_get("business_ms")?);
        }
        let mut out = Vec::new();
        for ((c, o, m), (met, breached, mut times)) in groups {
            times.sort_unstable();
            out.push(SlaReportRow {
                centre_id: ServiceCentreId(c),
                operator_id: o.map(UserId),
                metric: SlaMetric::parse(&m).map_err(|_| bad_row("sla metric"))?,
                met,
                breached,
                median_ms: percentile(&times, 0.5),
                p90_ms: percentile(&times, 0.9),
            });
        }
        Ok(out)
    }
}
