//! The outcome graph (seed 004 "Relazioni"): action types ("Tipi/Azioni"),
//! outcomes ("Esiti"), and the relations that allow an outcome for an action
//! type and say what recording it does — set the party's commercial state,
//! schedule a follow-up activity, award points to the operator, close the
//! parent activity. Also the points ledger and its leaderboard.
//!
//! The graph is data: supervisors configure it ([`Permission::ConfigureOutcomes`])
//! and [`Store::install_default_graph`] ships a telemarketing one. The one
//! place that interprets it is [`Store::complete_activity`], which applies a
//! relation in a single transaction: the activity, the party's state, the
//! follow-up, the ledger and the parent commit or vanish together, each with
//! its operation-log entry.
//!
//! Time is injected: completion takes `now`, and the follow-up's due time is
//! the pure [`follow_up_due`].

use crate::activities::{Activity, ActivityKind, NewActivity, insert_activity, load_activity};
use crate::auth::{Actor, Permission};
use crate::error::{Error, Problems, Result};
use crate::store::{Store, b};
use crate::types::*;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::fmt;
use std::str::FromStr;


/// Declares an i64 id newtype like those in [`crate::types`].
macro_rules! graph_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(transparent)]
        pub struct $name(pub i64);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { self.0.fmt(f) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> std::result::Result<Self, String> {
                s.parse::<i64>().map($name).map_err(|_| format!("not a valid id: {s:?}"))
            }
        }
    };
}

graph_id!(/// An action type ("tipo di appuntamento/azione"): Call, Meeting, Guest Pass…
    ActionTypeId);
graph_id!(/// An outcome ("esito"): Interested, No answer, Sale…
    OutcomeId);

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ActionType {
    pub id: ActionTypeId,
    pub name: String,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Outcome {
    pub id: OutcomeId,
    pub name: String,
    pub active: bool,
}

/// A new action type or outcome.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamedInput {
    pub name: String,
    /// Defaults to true.
    #[serde(default)]
    pub active: Option<bool>,
}

/// Who receives a scheduled follow-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Recipient {
    /// The operator who recorded the outcome ("Me stesso").
    Me,
    /// The party's owner ("Venditore anagrafica").
    Owner,
    /// Whoever held the completed activity ("Contatto anagrafica").
    Contact,
    /// A fixed operator ("Operatore fisso").
    Operator(UserId),
    /// Nobody in particular: the follow-up goes to the shared pool, which
    /// everyone sees ("Tutti").
    All,
}

/// When a follow-up falls due, counted from the completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delay {
    /// N days later, at a fixed hour of that day (UTC), the seed's
    /// "orario standard per gli appuntamenti successivi".
    Days { days: i64, at_hour: i64 },
    /// N hours later, to the millisecond.
    Hours { hours: i64 },
}

/// The hour (UTC) a day-based follow-up lands at when none is configured.
pub const DEFAULT_FOLLOW_UP_HOUR: i64 = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FollowUp {
    pub action_type_id: ActionTypeId,
    pub kind: ActivityKind,
    pub recipient: Recipient,
    pub delay: Delay,
}

/// One allowed (action type, outcome) pair and its consequences.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Relation {
    pub action_type_id: ActionTypeId,
    pub outcome_id: OutcomeId,
    /// The commercial state the party takes ("stato commerciale").
    pub commercial_state_id: Option<CommercialStateId>,
    /// The next appointment ("appuntamento successivo").
    pub follow_up: Option<FollowUp>,
    /// Points for the operator ("punti").
    pub points: i64,
    /// Conclusive: completing with this outcome closes the parent activity.
    pub closes_parent: bool,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FollowUpInput {
    pub action_type_id: ActionTypeId,
    /// `appointment` (default), `todo`, `call` or `note`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `me`, `owner`, `contact`, `operator` (with `user_id`) or `all`.
    pub recipient: String,
    #[serde(default)]
    pub user_id: Option<UserId>,
    /// Exactly one of `days` and `hours`.
    #[serde(default)]
    pub days: Option<i64>,
    #[serde(default)]
    pub hours: Option<i64>,
    /// For `days`: the hour of day (UTC, 0–23); defaults to 9.
    #[serde(default)]
    pub at_hour: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelationInput {
    pub action_type_id: ActionTypeId,
    pub outcome_id: OutcomeId,
    #[serde(default)]
    pub commercial_state_id: Option<CommercialStateId>,
    #[serde(default)]
    pub follow_up: Option<FollowUpInput>,
    #[serde(default)]
    pub points: i64,
    #[serde(default)]
    pub closes_parent: bool,
}

/// What completing an activity did.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Completion {
    pub activity: Activity,
    /// The follow-up the relation scheduled.
    pub follow_up: Option<Activity>,
    /// The party's new commercial state, when the relation changed it.
    pub commercial_state_id: Option<CommercialStateId>,
    pub points: i64,
    /// Who received the points (none when nobody could).
    pub points_to: Option<UserId>,
    /// The parent activity a conclusive outcome closed.
    pub closed_parent: Option<ActivityId>,
}

/// One line of a leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Standing {
    pub user_id: UserId,
    pub username: String,
    pub display_name: String,
    pub points: i64,
    /// How many ledger entries (scored completions) made the points.
    pub entries: i64,
}

const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;

/// When a follow-up scheduled at `now` falls due.
pub fn follow_up_due(delay: Delay, now: Millis) -> Millis {
    match delay {
        Delay::Hours { hours } => now + hours * MS_PER_HOUR,
        Delay::Days { days, at_hour } => {
            let day_start = now.div_euclid(MS_PER_DAY) * MS_PER_DAY;
            day_start + days * MS_PER_DAY + at_hour * MS_PER_HOUR
        }
    }
}

impl FollowUpInput {
    fn validate(&self, p: &mut Problems) -> Option<FollowUp> {
        let kind = match &self.kind {
            None => Some(ActivityKind::Appointment),
            Some(k) => p.check("follow_up.kind", ActivityKind::parse(k)),
        };
        let recipient = match (self.recipient.as_str(), self.user_id) {
            ("me", None) => Some(Recipient::Me),
            ("owner", None) => Some(Recipient::Owner),
            ("contact", None) => Some(Recipient::Contact),
            ("all", None) => Some(Recipient::All),
            ("operator", Some(u)) => Some(Recipient::Operator(u)),
            ("operator", None) => {
                p.push("follow_up.user_id", "required for the recipient operator");
                None
            }
            ("me" | "owner" | "contact" | "all", Some(_)) => {
                p.push("follow_up.user_id", "only for the recipient operator");
                None
            }
            (other, _) => {
                p.push("follow_up.recipient", format!("unknown value {other:?}; expected one of: me, owner, contact, operator, all"));
                None
            }
        };
        let delay = match (self.days, self.hours) {
            (Some(days), None) => {
                let at_hour = self.at_hour.unwrap_or(DEFAULT_FOLLOW_UP_HOUR);
                if !(0..=3660).contains(&days) {
                    p.push("follow_up.days", "between 0 and 3660");
                }
                if !(0..=23).contains(&at_hour) {
                    p.push("follow_up.at_hour", "between 0 and 23");
                }
                Some(Delay::Days { days, at_hour })
            }
            (None, Some(hours)) => {
                if !(0..=24 * 3660).contains(&hours) {
                    p.push("follow_up.hours", "between 0 and 87840");
                }
                if self.at_hour.is_some() {
                    p.push("follow_up.at_hour", "only with days");
                }
                Some(Delay::Hours { hours })
            }
            _ => {
                p.push("follow_up.days", "give exactly one of days and hours");
                None
            }
        };
        Some(FollowUp { action_type_id: self.action_type_id, kind: kind?, recipient: recipient?, delay: delay? })
    }
}

const REL_COLS: &str = "action_type_id, outcome_id, commercial_state_id, followup_action_type_id, followup_kind, followup_recipient, \
                        followup_user_id, followup_days, followup_hours, followup_at_hour, points, closes_parent";

fn relation_from_row(r: &sqlx::any::AnyRow) -> Result<Relation> {
    let opt = |c: &str| -> Result<Option<i64>> { Ok(r.try_get::<Option<i64>, _>(c)?) };
    // The writer ([`Store::set_relation`]) only stores complete follow-ups;
    // a row that is not one reads as "no follow-up".
    let follow_up = (|| -> Result<Option<FollowUp>> {
        let Some(t) = opt("followup_action_type_id")? else { return Ok(None) };
        let kind = r.try_get::<Option<String>, _>("followup_kind")?.and_then(|k| ActivityKind::parse(&k).ok());
        let recipient = match (r.try_get::<Option<String>, _>("followup_recipient")?.as_deref(), opt("followup_user_id")?) {
            (Some("me"), _) => Some(Recipient::Me),
            (Some("owner"), _) => Some(Recipient::Owner),
            (Some("contact"), _) => Some(Recipient::Contact),
            (Some("all"), _) => Some(Recipient::All),
            (Some("operator"), Some(u)) => Some(Recipient::Operator(UserId(u))),
            _ => None,
        };
        let delay = match (opt("followup_days")?, opt("followup_hours")?) {
            (Some(days), _) => Some(Delay::Days { days, at_hour: opt("followup_at_hour")?.unwrap_or(DEFAULT_FOLLOW_UP_HOUR) }),
            (None, Some(hours)) => Some(Delay::Hours { hours }),
            _ => None,
        };
        Ok(match (kind, recipient, delay) {
            (Some(kind), Some(recipient), Some(delay)) => Some(FollowUp { action_type_id: ActionTypeId(t), kind, recipient, delay }),
            _ => None,
        })
    })()?;
    Ok(Relation {
        action_type_id: ActionTypeId(r.try_get("action_type_id")?),
        outcome_id: OutcomeId(r.try_get("outcome_id")?),
        commercial_state_id: opt("commercial_state_id")?.map(CommercialStateId),
        follow_up,
        points: r.try_get("points")?,
        closes_parent: b(r.try_get("closes_parent")?),
    })
}

fn clean_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "1–100 characters, no control characters"));
    }
    Ok(name.to_string())
}

/// The two named vocabularies share their code; the table name is one of
/// these two literals, never input.
#[derive(Clone, Copy)]
enum Vocab {
    ActionTypes,
    Outcomes,
}

impl Vocab {
    fn table(self) -> &'static str {
        match self {
            Vocab::ActionTypes => "action_types",
            Vocab::Outcomes => "outcomes",
        }
    }
    fn entity(self) -> &'static str {
        match self {
            Vocab::ActionTypes => "action_type",
            Vocab::Outcomes => "outcome",
        }
    }
}

impl Vocab {
    /// The column naming this vocabulary in `activities` and
    /// `outcome_relations`, and the relation's other key column.
    fn columns(self) -> (&'static str, &'static str) {
        match self {
            Vocab::ActionTypes => ("action_type_id", "outcome_id"),
            Vocab::Outcomes => ("outcome_id", "action_type_id"),
        }
    }
}

impl Store {
    /// "Sostituisci" (seed 004): every activity and relation that names
    /// `old` names `new` instead, and `old` is switched off. Where `new`
    /// already has a relation for the same counterpart, `new`'s is kept.
    /// Returns how many activities changed; each is logged.
    async fn vocab_replace(&self, actor: &Actor, v: Vocab, old: i64, new: i64) -> Result<u64> {
        actor.require(Permission::ConfigureOutcomes)?;
        if old == new {
            return Err(Error::invalid("new", "must differ from the one replaced"));
        }
        let (col, other) = v.columns();
        let table = v.table();
        let mut tx = self.begin().await?;
        for (field, id) in [("old", old), ("new", new)] {
            let found = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 FROM {table} WHERE id = $1"))).bind(id).fetch_optional(&mut *tx).await?;
            if found.is_none() {
                return Err(Error::invalid(field, format!("no such {}", v.entity().replace('_', " "))));
            }
        }
        let ids: Vec<i64> = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id FROM activities WHERE {col} = $1 ORDER BY id")))
            .bind(old)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| r.try_get("id"))
            .collect::<std::result::Result<_, _>>()?;
        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE activities SET {col} = $1, version = version + 1, updated_at = $2 WHERE {col} = $3")))
            .bind(new)
            .bind(now_ms())
            .bind(old)
            .execute(&mut *tx)
            .await?;
        for id in &ids {
            crate::oplog::record(&mut tx, actor, "activity", *id, "update", &serde_json::json!({ col: [old, new] })).await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE outcome_relations SET {col} = $1 WHERE {col} = $2 \
             AND {other} NOT IN (SELECT {other} FROM outcome_relations WHERE {col} = $1)"
        )))
        .bind(new)
        .bind(old)
        .execute(&mut *tx)
        .await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM outcome_relations WHERE {col} = $1"))).bind(old).execute(&mut *tx).await?;
        if let Vocab::ActionTypes = v {
            sqlx::query("UPDATE outcome_relations SET followup_action_type_id = $1 WHERE followup_action_type_id = $2")
                .bind(new)
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET active = 0 WHERE id = $1"))).bind(old).execute(&mut *tx).await?;
        crate::oplog::record(&mut tx, actor, v.entity(), old, "replace", &serde_json::json!({"replaced_by": new, "activities": ids.len(), "active": [true, false]}))
            .await?;
        tx.commit().await?;
        Ok(ids.len() as u64)
    }

    /// Replaces action type `old` by `new` everywhere ("Sostituisci").
    pub async fn replace_action_type(&self, actor: &Actor, old: ActionTypeId, new: ActionTypeId) -> Result<u64> {
        self.vocab_replace(actor, Vocab::ActionTypes, old.0, new.0).await
    }

    /// Replaces outcome `old` by `new` everywhere ("Sostituisci").
    pub async fn replace_outcome(&self, actor: &Actor, old: OutcomeId, new: OutcomeId) -> Result<u64> {
        self.vocab_replace(actor, Vocab::Outcomes, old.0, new.0).await
    }

    async fn vocab_create(&self, actor: &Actor, v: Vocab, input: NamedInput, existing_ok: bool) -> Result<(i64, String, bool)> {
        actor.require(Permission::ConfigureOutcomes)?;
        let name = clean_name(&input.name)?;
        let active = input.active.unwrap_or(true);
        let mut tx = self.begin().await?;
        let found = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id, active FROM {} WHERE name = $1", v.table())))
            .bind(&name)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(r) = found {
            if existing_ok {
                return Ok((r.try_get("id")?, name, b(r.try_get("active")?)));
            }
            return Err(Error::invalid("name", "already exists"));
        }
        let r = sqlx::query(sqlx::AssertSqlSafe(format!("INSERT INTO {} (name, active) VALUES ($1, $2) RETURNING id", v.table())))
            .bind(&name)
            .bind(active as i64)
            .fetch_one(&mut *tx)
            .await?;
        let id: i64 = r.try_get("id")?;
        crate::oplog::record(&mut tx, actor, v.entity(), id, "create", &serde_json::json!({"name": name, "active": active})).await?;
        tx.commit().await?;
        Ok((id, name, active))
    }

    async fn vocab_set_active(&self, actor: &Actor, v: Vocab, id: i64, active: bool) -> Result<()> {
        actor.require(Permission::ConfigureOutcomes)?;
        let mut tx = self.begin().await?;
        let n = sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {} SET active = $1 WHERE id = $2", v.table())))
            .bind(active as i64)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if n.rows_affected() == 0 {
            return Err(Error::NotFound(v.entity()));
        }
        crate::oplog::record(&mut tx, actor, v.entity(), id, "update", &serde_json::json!({"active": active})).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn vocab_list(&self, v: Vocab) -> Result<Vec<(i64, String, bool)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT id, name, active FROM {} ORDER BY name, id", v.table())))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("id")?, r.try_get("name")?, b(r.try_get("active")?)))).collect()
    }

    /// Adds an action type; the name must be new.
    pub async fn create_action_type(&self, actor: &Actor, input: NamedInput) -> Result<ActionType> {
        let (id, name, active) = self.vocab_create(actor, Vocab::ActionTypes, input, false).await?;
        Ok(ActionType { id: ActionTypeId(id), name, active })
    }

    /// The action type of that name, created (active) if missing.
    pub async fn ensure_action_type(&self, actor: &Actor, name: &str) -> Result<ActionTypeId> {
        let input = NamedInput { name: name.into(), active: None };
        Ok(ActionTypeId(self.vocab_create(actor, Vocab::ActionTypes, input, true).await?.0))
    }

    /// Switches an action type on or off; inactive types take no new activities.
    pub async fn set_action_type_active(&self, actor: &Actor, id: ActionTypeId, active: bool) -> Result<()> {
        self.vocab_set_active(actor, Vocab::ActionTypes, id.0, active).await
    }

    pub async fn list_action_types(&self) -> Result<Vec<ActionType>> {
        Ok(self.vocab_list(Vocab::ActionTypes).await?.into_iter().map(|(id, name, active)| ActionType { id: ActionTypeId(id), name, active }).collect())
    }

    /// Adds an outcome; the name must be new.
    pub async fn create_outcome(&self, actor: &Actor, input: NamedInput) -> Result<Outcome> {
        let (id, name, active) = self.vocab_create(actor, Vocab::Outcomes, input, false).await?;
        Ok(Outcome { id: OutcomeId(id), name, active })
    }

    /// The outcome of that name, created (active) if missing.
    pub async fn ensure_outcome(&self, actor: &Actor, name: &str) -> Result<OutcomeId> {
        let input = NamedInput { name: name.into(), active: None };
        Ok(OutcomeId(self.vocab_create(actor, Vocab::Outcomes, input, true).await?.0))
    }

    /// Switches an outcome on or off; inactive outcomes cannot be recorded.
    pub async fn set_outcome_active(&self, actor: &Actor, id: OutcomeId, active: bool) -> Result<()> {
        self.vocab_set_active(actor, Vocab::Outcomes, id.0, active).await
    }

    pub async fn list_outcomes(&self) -> Result<Vec<Outcome>> {
        Ok(self.vocab_list(Vocab::Outcomes).await?.into_iter().map(|(id, name, active)| Outcome { id: OutcomeId(id), name, active }).collect())
    }

    /// Allows an outcome for an action type with its consequences, replacing
    /// any previous relation for the pair.
    pub async fn set_relation(&self, actor: &Actor, input: RelationInput) -> Result<Relation> {
        actor.require(Permission::ConfigureOutcomes)?;
        let mut p = Problems::default();
        let follow_up = input.follow_up.as_ref().and_then(|f| f.validate(&mut p));
        if !(-10_000..=10_000).contains(&input.points) {
            p.push("points", "between -10000 and 10000");
        }
        let mut tx = self.begin().await?;
        let exists = |table: &'static str, id: i64| {
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT 1 FROM {table} WHERE id = $1"))).bind(id)
        };
        if exists("action_types", input.action_type_id.0).fetch_optional(&mut *tx).await?.is_none() {
            p.push("action_type_id", "no such action type");
        }
        if exists("outcomes", input.outcome_id.0).fetch_optional(&mut *tx).await?.is_none() {
            p.push("outcome_id", "no such outcome");
        }
        if let Some(s) = input.commercial_state_id
            && exists("commercial_states", s.0).fetch_optional(&mut *tx).await?.is_none()
        {
            p.push("commercial_state_id", "no such commercial state");
        }
        if let Some(f) = &follow_up {
            if exists("action_types", f.action_type_id.0).fetch_optional(&mut *tx).await?.is_none() {
                p.push("follow_up.action_type_id", "no such action type");
            }
            if let Recipient::Operator(u) = f.recipient
                && exists("users", u.0).fetch_optional(&mut *tx).await?.is_none()
            {
                p.push("follow_up.user_id", "no such user");
            }
        }
        p.finish()?;
        let rel = Relation {
            action_type_id: input.action_type_id,
            outcome_id: input.outcome_id,
            commercial_state_id: input.commercial_state_id,
            follow_up,
            points: input.points,
            closes_parent: input.closes_parent,
        };
        let (rkind, ruser) = match follow_up.map(|f| f.recipient) {
            None => (None, None),
            Some(Recipient::Me) => (Some("me"), None),
            Some(Recipient::Owner) => (Some("owner"), None),
            Some(Recipient::Contact) => (Some("contact"), None),
            Some(Recipient::All) => (Some("all"), None),
            Some(Recipient::Operator(u)) => (Some("operator"), Some(u.0)),
        };
        let (days, hours, at_hour) = match follow_up.map(|f| f.delay) {
            None => (None, None, None),
            Some(Delay::Days { days, at_hour }) => (Some(days), None, Some(at_hour)),
            Some(Delay::Hours { hours }) => (None, Some(hours), None),
        };
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO outcome_relations ({REL_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (action_type_id, outcome_id) DO UPDATE SET commercial_state_id = excluded.commercial_state_id, \
             followup_action_type_id = excluded.followup_action_type_id, followup_kind = excluded.followup_kind, \
             followup_recipient = excluded.followup_recipient, followup_user_id = excluded.followup_user_id, \
             followup_days = excluded.followup_days, followup_hours = excluded.followup_hours, \
             followup_at_hour = excluded.followup_at_hour, points = excluded.points, closes_parent = excluded.closes_parent"
        )))
        .bind(rel.action_type_id.0)
        .bind(rel.outcome_id.0)
        .bind(rel.commercial_state_id.map(|s| s.0))
        .bind(follow_up.map(|f| f.action_type_id.0))
        .bind(follow_up.map(|f| f.kind.as_str()))
        .bind(rkind)
        .bind(ruser)
        .bind(days)
        .bind(hours)
        .bind(at_hour)
        .bind(rel.points)
        .bind(rel.closes_parent as i64)
        .execute(&mut *tx)
        .await?;
        let log = serde_json::to_value(&rel).unwrap_or(serde_json::Value::Null);
        crate::oplog::record(&mut tx, actor, "outcome_relation", rel.action_type_id.0, "set", &log).await?;
        tx.commit().await?;
        Ok(rel)
    }

    /// Disallows an outcome for an action type. Activities already completed
    /// with it keep their outcome.
    pub async fn remove_relation(&self, actor: &Actor, action_type: ActionTypeId, outcome: OutcomeId) -> Result<()> {
        actor.require(Permission::ConfigureOutcomes)?;
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM outcome_relations WHERE action_type_id = $1 AND outcome_id = $2")
            .bind(action_type.0)
            .bind(outcome.0)
            .execute(&mut *tx)
            .await?;
        if n.rows_affected() == 0 {
            return Err(Error::NotFound("relation"));
        }
        crate::oplog::record(&mut tx, actor, "outcome_relation", action_type.0, "remove", &serde_json::json!({"outcome_id": outcome})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The relations of one action type, or of the whole graph.
    pub async fn relations(&self, action_type: Option<ActionTypeId>) -> Result<Vec<Relation>> {
        let rows = match action_type {
            Some(t) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {REL_COLS} FROM outcome_relations WHERE action_type_id = $1 ORDER BY action_type_id, outcome_id"
                )))
                .bind(t.0)
                .fetch_all(&self.read)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {REL_COLS} FROM outcome_relations ORDER BY action_type_id, outcome_id")))
                    .fetch_all(&self.read)
                    .await?
            }
        };
        rows.iter().map(relation_from_row).collect()
    }

    /// The active outcomes an agent may record for an action type (what
    /// the console offers when an activity is completed).
    pub async fn allowed_outcomes(&self, action_type: ActionTypeId) -> Result<Vec<Outcome>> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.active FROM outcome_relations r JOIN outcomes o ON o.id = r.outcome_id \
             WHERE r.action_type_id = $1 AND o.active = 1 ORDER BY o.name, o.id",
        )
        .bind(action_type.0)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(|r| Ok(Outcome { id: OutcomeId(r.try_get("id")?), name: r.try_get("name")?, active: b(r.try_get("active")?) })).collect()
    }

    /// Installs (idempotently) a telemarketing graph: a call either sells,
    /// books a meeting, or schedules another try. Existing names are reused
    /// and relations for the same pairs are replaced.
    pub async fn install_default_graph(&self, actor: &Actor) -> Result<()> {
        actor.require(Permission::ConfigureOutcomes)?;
        let call = self.ensure_action_type(actor, "Call").await?;
        let callback = self.ensure_action_type(actor, "Callback").await?;
        let meeting = self.ensure_action_type(actor, "Meeting").await?;
        let interested = self.ensure_outcome(actor, "Interested").await?;
        let not_interested = self.ensure_outcome(actor, "Not interested").await?;
        let call_back = self.ensure_outcome(actor, "Callback").await?;
        let no_answer = self.ensure_outcome(actor, "No answer").await?;
        let wrong_number = self.ensure_outcome(actor, "Wrong number").await?;
        let sale = self.ensure_outcome(actor, "Sale").await?;
        let s_interested = self.ensure_commercial_state(actor, "Interested").await?;
        let s_not_interested = self.ensure_commercial_state(actor, "Not interested").await?;
        let s_unreachable = self.ensure_commercial_state(actor, "Unreachable").await?;
        let s_customer = self.ensure_commercial_state(actor, "Customer").await?;

        let follow = |t: ActionTypeId, kind: &str, recipient: &str, days: Option<i64>, hours: Option<i64>| FollowUpInput {
            action_type_id: t,
            kind: Some(kind.into()),
            recipient: recipient.into(),
            user_id: None,
            days,
            hours,
            at_hour: None,
        };
        let rel = |t, o, state, follow_up, points, closes_parent| RelationInput {
            action_type_id: t,
            outcome_id: o,
            commercial_state_id: state,
            follow_up,
            points,
            closes_parent,
        };
        let mut rels = Vec::new();
        for t in [call, callback] {
            rels.push(rel(t, interested, Some(s_interested), Some(follow(meeting, "appointment", "owner", Some(2), None)), 1, false));
            rels.push(rel(t, not_interested, Some(s_not_interested), None, 0, true));
            rels.push(rel(t, call_back, None, Some(follow(callback, "call", "me", Some(1), None)), 0, false));
            rels.push(rel(t, no_answer, None, Some(follow(callback, "call", "me", None, Some(4))), 0, false));
            rels.push(rel(t, wrong_number, Some(s_unreachable), None, 0, true));
            rels.push(rel(t, sale, Some(s_customer), None, 10, true));
        }
        rels.push(rel(meeting, sale, Some(s_customer), None, 10, true));
        rels.push(rel(meeting, interested, Some(s_interested), Some(follow(call, "call", "owner", Some(7), None)), 1, false));
        rels.push(rel(meeting, not_interested, Some(s_not_interested), None, 0, true));
        rels.push(rel(meeting, no_answer, None, Some(follow(callback, "call", "me", Some(1), None)), 0, false));
        for r in rels {
            self.set_relation(actor, r).await?;
        }
        Ok(())
    }

    /// Records the outcome of an open activity and applies its relation, in
    /// one transaction: the activity is marked done (notes appended), the
    /// party takes the relation's commercial state, the follow-up is
    /// scheduled, the points go to the ledger, and a conclusive outcome
    /// closes the parent activity. Each change is logged.
    ///
    /// `outcome` may be `None` only for an action type with no allowed
    /// outcomes (a plain to-do). An outcome the graph does not allow for the
    /// activity's action type, or an inactive one, is `Invalid`; an activity
    /// already done is a `Conflict`.
    ///
    /// Points go to the acting operator (for the system actor: to the
    /// activity's owner).
    pub async fn complete_activity(
        &self,
        actor: &Actor,
        id: ActivityId,
        outcome: Option<OutcomeId>,
        notes: Option<String>,
        now: Millis,
    ) -> Result<Completion> {
        let extra = crate::activities::clean_notes(notes)?;
        let mut tx = self.begin().await?;
        let act = load_activity(&mut tx, id).await?;
        actor.check_sees(act.owner_id)?;
        if act.done_at.is_some() {
            return Err(Error::Conflict);
        }
        let relation = match outcome {
            Some(o) => {
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {} FROM outcome_relations r JOIN outcomes o ON o.id = r.outcome_id \
                     WHERE r.action_type_id = $1 AND r.outcome_id = $2 AND o.active = 1",
                    REL_COLS.split(", ").map(|c| format!("r.{c}")).collect::<Vec<_>>().join(", ")
                )))
                .bind(act.action_type_id.0)
                .bind(o.0)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or_else(|| Error::invalid("outcome_id", "not an allowed outcome for this action type"))?;
                Some(relation_from_row(&row)?)
            }
            None => {
                let any = sqlx::query("SELECT 1 FROM outcome_relations WHERE action_type_id = $1 LIMIT 1")
                    .bind(act.action_type_id.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                if any.is_some() {
                    return Err(Error::invalid("outcome_id", "required for this action type"));
                }
                None
            }
        };
        let notes = match (&act.notes, extra) {
            (Some(old), Some(new)) => Some(format!("{old}\n\n{new}")),
            (old, new) => new.or(old.clone()),
        };
        let done_by = actor.log_id();
        let n = sqlx::query(
            "UPDATE activities SET done_at = $1, done_by = $2, outcome_id = $3, notes = $4, version = version + 1, updated_at = $1 \
             WHERE id = $5 AND done_at IS NULL",
        )
        .bind(now)
        .bind(done_by)
        .bind(outcome.map(|o| o.0))
        .bind(&notes)
        .bind(id.0)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Err(Error::Conflict);
        }
        let mut ch = serde_json::Map::new();
        crate::oplog::diff(&mut ch, "done_at", &act.done_at, &Some(now));
        crate::oplog::diff(&mut ch, "outcome_id", &act.outcome_id, &outcome);
        crate::oplog::diff(&mut ch, "notes", &act.notes, &notes);
        crate::oplog::record(&mut tx, actor, "activity", id.0, "complete", &serde_json::Value::Object(ch)).await?;

        let mut done = Completion {
            activity: load_activity(&mut tx, id).await?,
            follow_up: None,
            commercial_state_id: None,
            points: 0,
            points_to: None,
            closed_parent: None,
        };
        let Some(rel) = relation else {
            tx.commit().await?;
            return Ok(done);
        };

        let party = sqlx::query("SELECT commercial_state_id, owner_id FROM parties WHERE id = $1")
            .bind(act.party_id.0)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(Error::NotFound("party"))?;
        let party_owner = party.try_get::<Option<i64>, _>("owner_id")?.map(UserId);
        let old_state = party.try_get::<Option<i64>, _>("commercial_state_id")?.map(CommercialStateId);
        if let Some(state) = rel.commercial_state_id.filter(|s| Some(*s) != old_state) {
            sqlx::query("UPDATE parties SET commercial_state_id = $1, version = version + 1, updated_at = $2 WHERE id = $3")
                .bind(state.0)
                .bind(now)
                .bind(act.party_id.0)
                .execute(&mut *tx)
                .await?;
            crate::oplog::record(
                &mut tx,
                actor,
                "party",
                act.party_id.0,
                "update",
                &serde_json::json!({"commercial_state_id": [old_state, state], "activity_id": id}),
            )
            .await?;
            done.commercial_state_id = Some(state);
        }

        if let Some(f) = rel.follow_up {
            let owner = match f.recipient {
                Recipient::Me => done_by.map(UserId).or(act.owner_id),
                Recipient::Owner => party_owner,
                Recipient::Contact => act.owner_id,
                Recipient::Operator(u) => Some(u),
                Recipient::All => None,
            };
            let subject: String = sqlx::query("SELECT name FROM action_types WHERE id = $1")
                .bind(f.action_type_id.0)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(Error::NotFound("action type"))?
                .try_get("name")?;
            let new = NewActivity {
                kind: f.kind,
                party_id: act.party_id,
                deal_id: act.deal_id,
                action_type_id: f.action_type_id,
                owner_id: owner,
                subject,
                notes: None,
                due_at: Some(follow_up_due(f.delay, now)),
                // The follow-up is a sibling: it belongs to the same parent
                // activity, so a later conclusive outcome can close it.
                parent_activity_id: act.parent_activity_id,
                follow_up_of: Some(id),
            };
            done.follow_up = Some(insert_activity(&mut tx, actor, &new, now).await?);
        }

        if rel.points != 0
            && let Some(user) = done_by.map(UserId).or(act.owner_id)
        {
            sqlx::query("INSERT INTO points_ledger (user_id, points, activity_id, at) VALUES ($1, $2, $3, $4)")
                .bind(user.0)
                .bind(rel.points)
                .bind(id.0)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            done.points = rel.points;
            done.points_to = Some(user);
        }

        if rel.closes_parent
            && let Some(parent) = act.parent_activity_id
        {
            let n = sqlx::query(
                "UPDATE activities SET done_at = $1, done_by = $2, version = version + 1, updated_at = $1 WHERE id = $3 AND done_at IS NULL",
            )
            .bind(now)
            .bind(done_by)
            .bind(parent.0)
            .execute(&mut *tx)
            .await?;
            if n.rows_affected() > 0 {
                crate::oplog::record(&mut tx, actor, "activity", parent.0, "close", &serde_json::json!({"done_at": [None::<Millis>, now], "closed_by": id}))
                    .await?;
                done.closed_parent = Some(parent);
            }
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Points per user earned in `[from, to)`, highest first.
    pub async fn leaderboard(&self, actor: &Actor, from: Millis, to: Millis) -> Result<Vec<Standing>> {
        actor.require(Permission::ViewLeaderboard)?;
        if to < from {
            return Err(Error::invalid("to", "not before from"));
        }
        // SUM of a BIGINT is NUMERIC on PostgreSQL; the cast keeps one
        // decoding path for both engines.
        let rows = sqlx::query(
            "SELECT l.user_id, u.username, u.display_name, CAST(SUM(l.points) AS BIGINT) AS points, COUNT(*) AS entries \
             FROM points_ledger l JOIN users u ON u.id = l.user_id WHERE l.at >= $1 AND l.at < $2 \
             GROUP BY l.user_id, u.username, u.display_name ORDER BY points DESC, l.user_id",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Standing {
                    user_id: UserId(r.try_get("user_id")?),
                    username: r.try_get("username")?,
                    display_name: r.try_get("display_name")?,
                    points: r.try_get("points")?,
                    entries: r.try_get("entries")?,
                })
            })
            .collect()
    }
}
