//! Activities (seed 003): appointments, to-dos, calls and notes about one
//! party (`activities.party_id`), optionally within a deal, each of an action
//! type from the outcome graph and assigned to a user (`owner_id`). An
//! activity is open until it is done (`done_at`); completing it with an
//! outcome (`outcome_id`) is [`Store::complete_activity`] in
//! [`crate::outcomes`], because the outcome graph decides what follows.
//!
//! Activities may group under a parent activity (seed 004 "Attività": the
//! "renewal" activity gathers the calls and meetings that lead to it); a
//! conclusive outcome closes the parent.
//!
//! The agenda views (mine/all × today/week/month) take `now` and a UTC
//! offset from the caller: [`period_bounds`] is pure and never reads the
//! clock. Every write appends to the operation log in the same transaction.

use crate::auth::{Actor, Permission};
use crate::error::{Error, Problems, Result};
use crate::outcomes::{ActionTypeId, OutcomeId};
use crate::parties::Page;
use crate::store::Store;
use crate::types::*;
use chrono::{DateTime, Datelike, Months, NaiveDate};
use serde::{Deserialize, Serialize};
use sqlx::Row;

type Tx = sqlx::Transaction<'static, sqlx::Any>;

str_enum!(/// What kind of thing an activity is.
    ActivityKind { Appointment => "appointment", Todo => "todo", Call => "call", Note => "note" });
str_enum!(/// Whose activities an agenda view shows: the actor's own, or all they can see.
    ViewScope { Mine => "mine", All => "all" });
str_enum!(/// The calendar period of an agenda view, in the viewer's local time.
    Period { Today => "today", Week => "week", Month => "month" });

/// An activity as the API and the console see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Activity {
    pub id: ActivityId,
    pub kind: ActivityKind,
    pub party_id: PartyId,
    pub deal_id: Option<DealId>,
    pub action_type_id: ActionTypeId,
    /// The outcome it was completed with, if any.
    pub outcome_id: Option<OutcomeId>,
    /// The user the activity is assigned to.
    pub owner_id: Option<UserId>,
    pub subject: String,
    pub notes: Option<String>,
    pub due_at: Option<Millis>,
    pub done_at: Option<Millis>,
    pub done_by: Option<UserId>,
    pub parent_activity_id: Option<ActivityId>,
    /// The activity whose outcome scheduled this one.
    pub follow_up_of: Option<ActivityId>,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A new activity as it arrives from outside.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityInput {
    /// `appointment`, `todo`, `call` or `note`.
    pub kind: String,
    pub party_id: PartyId,
    pub action_type_id: ActionTypeId,
    #[serde(default)]
    pub deal_id: Option<DealId>,
    /// Defaults to the creator.
    #[serde(default)]
    pub owner_id: Option<UserId>,
    /// Defaults to the action type's name.
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub due_at: Option<Millis>,
    #[serde(default)]
    pub parent_activity_id: Option<ActivityId>,
}

/// A change to an open activity; absent fields are left alone.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivityPatch {
    /// The version the client read; a different current version is a conflict.
    pub version: i64,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub due_at: Option<Millis>,
    #[serde(default)]
    pub owner_id: Option<UserId>,
    #[serde(default)]
    pub action_type_id: Option<ActionTypeId>,
}

/// An agenda query. `scope` defaults to `mine`; without `period` there is
/// no time window. `utc_offset_minutes` places day boundaries in the
/// viewer's local time (e.g. 60 for CET, 120 for CEST).
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct ActivityQuery {
    pub scope: Option<String>,
    pub period: Option<String>,
    pub utc_offset_minutes: Option<i64>,
    pub kind: Option<String>,
    pub party_id: Option<i64>,
    pub deal_id: Option<i64>,
    /// Only activities not yet done.
    pub open_only: Option<bool>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

const MAX_OFFSET_MINUTES: i64 = 14 * 60;
const MS_PER_MINUTE: i64 = 60_000;

/// The `[from, to)` window, in UTC millis, of the period containing `now`
/// as seen at `utc_offset_minutes`: the local day; the local week from
/// Monday 00:00; the local calendar month.
pub fn period_bounds(period: Period, now: Millis, utc_offset_minutes: i64) -> Result<(Millis, Millis)> {
    if !(-MAX_OFFSET_MINUTES..=MAX_OFFSET_MINUTES).contains(&utc_offset_minutes) {
        return Err(Error::invalid("utc_offset_minutes", "between -840 and 840"));
    }
    let shift = utc_offset_minutes * MS_PER_MINUTE;
    let out_of_range = || Error::invalid("now", "out of the calendar's range");
    let local = DateTime::from_timestamp_millis(now + shift).ok_or_else(out_of_range)?.date_naive();
    let (start, end): (NaiveDate, NaiveDate) = match period {
        Period::Today => (local, local.succ_opt().ok_or_else(out_of_range)?),
        Period::Week => {
            let monday = local - chrono::Days::new(u64::from(local.weekday().num_days_from_monday()));
            (monday, monday + chrono::Days::new(7))
        }
        Period::Month => {
            let first = local.with_day(1).ok_or_else(out_of_range)?;
            (first, first.checked_add_months(Months::new(1)).ok_or_else(out_of_range)?)
        }
    };
    let ms = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis() - shift).ok_or_else(out_of_range);
    Ok((ms(start)?, ms(end)?))
}

pub(crate) const ACTIVITY_COLS: &str = "id, kind, party_id, deal_id, action_type_id, outcome_id, owner_id, subject, notes, due_at, done_at, \
                                        done_by, parent_activity_id, follow_up_of, version, created_at, updated_at";

pub(crate) fn activity_from_row(r: &sqlx::any::AnyRow) -> Result<Activity> {
    let id = |c: &str| -> Result<Option<i64>> { Ok(r.try_get::<Option<i64>, _>(c)?) };
    Ok(Activity {
        id: ActivityId(r.try_get("id")?),
        kind: ActivityKind::parse(&r.try_get::<String, _>("kind")?).unwrap_or(ActivityKind::Todo),
        party_id: PartyId(r.try_get("party_id")?),
        deal_id: id("deal_id")?.map(DealId),
        action_type_id: ActionTypeId(r.try_get("action_type_id")?),
        outcome_id: id("outcome_id")?.map(OutcomeId),
        owner_id: id("owner_id")?.map(UserId),
        subject: r.try_get("subject")?,
        notes: r.try_get("notes")?,
        due_at: r.try_get("due_at")?,
        done_at: r.try_get("done_at")?,
        done_by: id("done_by")?.map(UserId),
        parent_activity_id: id("parent_activity_id")?.map(ActivityId),
        follow_up_of: id("follow_up_of")?.map(ActivityId),
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Loads one activity inside a transaction (no visibility check).
pub(crate) async fn load_activity(tx: &mut Tx, id: ActivityId) -> Result<Activity> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ACTIVITY_COLS} FROM activities WHERE id = $1")))
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(Error::NotFound("activity"))?;
    activity_from_row(&row)
}

/// What [`insert_activity`] writes; references are already checked.
pub(crate) struct NewActivity {
    pub kind: ActivityKind,
    pub party_id: PartyId,
    pub deal_id: Option<DealId>,
    pub action_type_id: ActionTypeId,
    pub owner_id: Option<UserId>,
    pub subject: String,
    pub notes: Option<String>,
    pub due_at: Option<Millis>,
    pub parent_activity_id: Option<ActivityId>,
    pub follow_up_of: Option<ActivityId>,
}

/// Inserts an activity and logs its creation, inside `tx`.
pub(crate) async fn insert_activity(tx: &mut Tx, actor: &Actor, a: &NewActivity, now: Millis) -> Result<Activity> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO activities (kind, party_id, deal_id, action_type_id, owner_id, subject, notes, due_at, parent_activity_id, \
         follow_up_of, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1, $11, $11) \
         RETURNING {ACTIVITY_COLS}"
    )))
    .bind(a.kind.as_str())
    .bind(a.party_id.0)
    .bind(a.deal_id.map(|d| d.0))
    .bind(a.action_type_id.0)
    .bind(a.owner_id.map(|o| o.0))
    .bind(&a.subject)
    .bind(&a.notes)
    .bind(a.due_at)
    .bind(a.parent_activity_id.map(|p| p.0))
    .bind(a.follow_up_of.map(|p| p.0))
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let act = activity_from_row(&row)?;
    crate::oplog::record(
        tx,
        actor,
        "activity",
        act.id.0,
        "create",
        &serde_json::json!({"kind": act.kind, "party_id": act.party_id, "deal_id": act.deal_id, "action_type_id": act.action_type_id,
                            "owner_id": act.owner_id, "due_at": act.due_at, "follow_up_of": act.follow_up_of}),
    )
    .await?;
    Ok(act)
}

const MAX_SUBJECT: usize = 200;
const MAX_NOTES: usize = 20_000;

fn clean(field: &str, v: Option<String>, max: usize, p: &mut Problems) -> Option<String> {
    let v = v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())?;
    if v.chars().count() > max {
        p.push(field, format!("at most {max} characters"));
        return None;
    }
    if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        p.push(field, "control characters are not allowed");
        return None;
    }
    Some(v)
}

/// Cleans free-text notes (shared with completion in `outcomes`).
pub(crate) fn clean_notes(v: Option<String>) -> Result<Option<String>> {
    let mut p = Problems::default();
    let v = clean("notes", v, MAX_NOTES, &mut p);
    p.finish()?;
    Ok(v)
}

/// The name of an active action type, or a field error.
async fn active_action_type(tx: &mut Tx, id: ActionTypeId, p: &mut Problems) -> Result<Option<String>> {
    let row = sqlx::query("SELECT name, active FROM action_types WHERE id = $1").bind(id.0).fetch_optional(&mut **tx).await?;
    match row {
        None => {
            p.push("action_type_id", "no such action type");
            Ok(None)
        }
        Some(r) if r.try_get::<i64, _>("active")? == 0 => {
            p.push("action_type_id", "the action type is not active");
            Ok(None)
        }
        Some(r) => Ok(Some(r.try_get("name")?)),
    }
}

impl Store {
    /// Creates an activity about a party the actor can see.
    pub async fn create_activity(&self, actor: &Actor, input: ActivityInput) -> Result<Activity> {
        let mut p = Problems::default();
        let kind = p.check("kind", ActivityKind::parse(&input.kind));
        let subject = clean("subject", input.subject, MAX_SUBJECT, &mut p);
        let notes = clean("notes", input.notes, MAX_NOTES, &mut p);
        p.finish()?;
        let party = match self.get_party(actor, input.party_id).await {
            Err(Error::NotFound(_)) => return Err(Error::invalid("party_id", "no such party")),
            r => r?,
        };
        let mut tx = self.begin().await?;
        let mut p = Problems::default();
        if party.merged_into.is_some() {
            p.push("party_id", "the party was merged into another");
        }
        let type_name = active_action_type(&mut tx, input.action_type_id, &mut p).await?;
        if let Some(d) = input.deal_id {
            match crate::deals::load_deal(&mut tx, d).await {
                Ok(deal) if deal.party_id != party.id => p.push("deal_id", "the deal belongs to another party"),
                Ok(deal) if !actor.sees(deal.owner_id) => p.push("deal_id", "no such deal"),
                Ok(_) => {}
                Err(Error::NotFound(_)) => p.push("deal_id", "no such deal"),
                Err(e) => return Err(e),
            }
        }
        if let Some(parent) = input.parent_activity_id {
            match load_activity(&mut tx, parent).await {
                Ok(a) if a.party_id != party.id => p.push("parent_activity_id", "the parent is about another party"),
                Ok(_) => {}
                Err(Error::NotFound(_)) => p.push("parent_activity_id", "no such activity"),
                Err(e) => return Err(e),
            }
        }
        let owner = input.owner_id.or(actor.log_id().map(UserId));
        if let Some(o) = input.owner_id {
            crate::deals::check_owner(&mut tx, actor, o, &mut p).await?;
        }
        p.finish()?;
        let new = NewActivity {
            kind: kind.unwrap_or(ActivityKind::Todo),
            party_id: party.id,
            deal_id: input.deal_id,
            action_type_id: input.action_type_id,
            owner_id: owner,
            subject: subject.or(type_name).unwrap_or_default(),
            notes,
            due_at: input.due_at,
            parent_activity_id: input.parent_activity_id,
            follow_up_of: None,
        };
        let act = insert_activity(&mut tx, actor, &new, now_ms()).await?;
        tx.commit().await?;
        Ok(act)
    }

    /// Loads an activity, checking visibility.
    pub async fn get_activity(&self, actor: &Actor, id: ActivityId) -> Result<Activity> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ACTIVITY_COLS} FROM activities WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("activity"))?;
        let act = activity_from_row(&row)?;
        actor.check_sees(act.owner_id)?;
        Ok(act)
    }

    /// Changes an open activity under optimistic concurrency. A done
    /// activity is history: only its notes may still change.
    pub async fn update_activity(&self, actor: &Actor, id: ActivityId, patch: ActivityPatch) -> Result<Activity> {
        let mut p = Problems::default();
        let kind = patch.kind.as_deref().and_then(|k| p.check("kind", ActivityKind::parse(k)));
        let subject_set = patch.subject.is_some();
        let subject = match patch.subject {
            Some(s) => {
                let s = clean("subject", Some(s), MAX_SUBJECT, &mut p);
                if s.is_none() && p.0.is_empty() {
                    p.push("subject", "may not be empty");
                }
                s
            }
            None => None,
        };
        let notes = if patch.notes.is_some() { Some(clean("notes", patch.notes, MAX_NOTES, &mut p)) } else { None };
        p.finish()?;
        let mut tx = self.begin().await?;
        let cur = load_activity(&mut tx, id).await?;
        actor.check_sees(cur.owner_id)?;
        if cur.version != patch.version {
            return Err(Error::Conflict);
        }
        let mut p = Problems::default();
        if cur.done_at.is_some() {
            for (field, set) in [
                ("kind", patch.kind.is_some()),
                ("subject", subject_set),
                ("due_at", patch.due_at.is_some()),
                ("owner_id", patch.owner_id.is_some()),
                ("action_type_id", patch.action_type_id.is_some()),
            ] {
                if set {
                    p.push(field, "the activity is done; only its notes may change");
                }
            }
        }
        if let Some(o) = patch.owner_id.filter(|o| Some(*o) != cur.owner_id) {
            crate::deals::check_owner(&mut tx, actor, o, &mut p).await?;
        }
        if let Some(t) = patch.action_type_id.filter(|t| *t != cur.action_type_id) {
            active_action_type(&mut tx, t, &mut p).await?;
        }
        p.finish()?;
        let mut new = cur.clone();
        new.kind = kind.unwrap_or(cur.kind);
        new.subject = subject.unwrap_or(cur.subject.clone());
        new.notes = notes.unwrap_or(cur.notes.clone());
        new.due_at = patch.due_at.or(cur.due_at);
        new.owner_id = patch.owner_id.or(cur.owner_id);
        new.action_type_id = patch.action_type_id.unwrap_or(cur.action_type_id);
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE activities SET kind = $1, subject = $2, notes = $3, due_at = $4, owner_id = $5, action_type_id = $6, \
             version = version + 1, updated_at = $7 WHERE id = $8 AND version = $9",
        )
        .bind(new.kind.as_str())
        .bind(&new.subject)
        .bind(&new.notes)
        .bind(new.due_at)
        .bind(new.owner_id.map(|o| o.0))
        .bind(new.action_type_id.0)
        .bind(now)
        .bind(id.0)
        .bind(patch.version)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Err(Error::Conflict);
        }
        let mut ch = serde_json::Map::new();
        crate::oplog::diff(&mut ch, "kind", &cur.kind, &new.kind);
        crate::oplog::diff(&mut ch, "subject", &cur.subject, &new.subject);
        crate::oplog::diff(&mut ch, "notes", &cur.notes, &new.notes);
        crate::oplog::diff(&mut ch, "due_at", &cur.due_at, &new.due_at);
        crate::oplog::diff(&mut ch, "owner_id", &cur.owner_id, &new.owner_id);
        crate::oplog::diff(&mut ch, "action_type_id", &cur.action_type_id, &new.action_type_id);
        crate::oplog::record(&mut tx, actor, "activity", id.0, "update", &serde_json::Value::Object(ch)).await?;
        let act = load_activity(&mut tx, id).await?;
        tx.commit().await?;
        Ok(act)
    }

    /// Deletes an open activity that nothing else refers to ("Elimina").
    /// Done activities are history and stay.
    pub async fn delete_activity(&self, actor: &Actor, id: ActivityId) -> Result<()> {
        let mut tx = self.begin().await?;
        let cur = load_activity(&mut tx, id).await?;
        actor.check_sees(cur.owner_id)?;
        if cur.owner_id.is_some() && cur.owner_id != Some(actor.user) && !actor.can(Permission::EditPartiesOfOthers) {
            return Err(Error::Forbidden);
        }
        if cur.done_at.is_some() {
            return Err(Error::invalid("id", "the activity is done and stays in the history"));
        }
        let refs = sqlx::query("SELECT 1 FROM activities WHERE parent_activity_id = $1 OR follow_up_of = $1 LIMIT 1")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        if refs.is_some() {
            return Err(Error::invalid("id", "other activities belong to this one"));
        }
        sqlx::query("DELETE FROM activities WHERE id = $1").bind(id.0).execute(&mut *tx).await?;
        crate::oplog::record(&mut tx, actor, "activity", id.0, "delete", &serde_json::json!({"party_id": cur.party_id, "subject": cur.subject}))
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The agenda: activities in a scope and period, earliest due first
    /// (undated ones last).
    pub async fn list_activities(&self, actor: &Actor, q: &ActivityQuery, now: Millis) -> Result<Page<Activity>> {
        let mut p = Problems::default();
        let limit = q.limit.unwrap_or(100);
        let offset = q.offset.unwrap_or(0);
        if !(1..=500).contains(&limit) {
            p.push("limit", "between 1 and 500");
        }
        if offset < 0 {
            p.push("offset", "not negative");
        }
        let scope = match &q.scope {
            None => Some(ViewScope::Mine),
            Some(s) => p.check("scope", ViewScope::parse(s)),
        };
        let period = q.period.as_deref().and_then(|s| p.check("period", Period::parse(s)));
        let kind = q.kind.as_deref().and_then(|s| p.check("kind", ActivityKind::parse(s)));
        p.finish()?;
        let window = period.map(|per| period_bounds(per, now, q.utc_offset_minutes.unwrap_or(0))).transpose()?;

        let mut conds = vec![actor.owner_filter("owner_id")];
        let mut ints: Vec<i64> = Vec::new();
        let mut push = |sql: &str, v: i64| {
            ints.push(v);
            conds.push(sql.replace('?', &format!("${}", ints.len())));
        };
        if scope == Some(ViewScope::Mine) {
            push("owner_id = ?", actor.user.0);
        }
        if let Some((from, to)) = window {
            push("due_at >= ?", from);
            push("due_at < ?", to);
        }
        if let Some(id) = q.party_id {
            push("party_id = ?", id);
        }
        if let Some(id) = q.deal_id {
            push("deal_id = ?", id);
        }
        if let Some(k) = kind {
            // The kind is one of a closed set of literals, safe to inline.
            conds.push(format!("kind = '{}'", k.as_str()));
        }
        if q.open_only == Some(true) {
            conds.push("done_at IS NULL".into());
        }
        let where_ = conds.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) AS n FROM activities WHERE {where_}");
        let list_sql = format!(
            "SELECT {ACTIVITY_COLS} FROM activities WHERE {where_} ORDER BY (due_at IS NULL), due_at, id LIMIT {limit} OFFSET {offset}"
        );
        let mut cq = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        let mut lq = sqlx::query(sqlx::AssertSqlSafe(list_sql));
        for v in &ints {
            cq = cq.bind(*v);
            lq = lq.bind(*v);
        }
        let total: i64 = cq.fetch_one(&self.read).await?.try_get("n")?;
        let items = lq.fetch_all(&self.read).await?.iter().map(activity_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total, limit, offset })
    }
}
