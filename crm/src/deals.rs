//! Deals (trattative, seed 001): an opportunity to sell to one party, moving
//! through the phases lead → potential → opportunity and ending won or lost;
//! and the assignment rules that give a new deal its owner.
//!
//! A deal belongs to a party (`deals.party_id`) for its whole life: winning it
//! turns the party's stage into `customer` but the deal stays, so the new
//! customer keeps the history of how it was won. Visibility follows the
//! deal's `owner_id` exactly as for parties ([`Actor::check_sees`]). Every
//! write appends to the operation log in the same transaction, and updates
//! carry the version they were read at (stale → [`Error::Conflict`]).
//!
//! Assignment rules are data, not code: the first active rule by
//! `(priority, id)` whose criteria all match (product of interest, zone,
//! value range) decides the owner of a deal created without one. Matching is
//! the pure function [`pick_rule`].

use crate::auth::{Actor, Permission};
use crate::error::{Error, Problems, Result};
use crate::parties::Page;
use crate::store::{Store, b};
use crate::types::*;
use serde::{Deserialize, Serialize};
use sqlx::Row;

type Tx = sqlx::Transaction<'static, sqlx::Any>;

str_enum!(/// How far a deal has come (seed 001).
    DealPhase { Lead => "lead", Potential => "potential", Opportunity => "opportunity" });
str_enum!(/// Whether a deal is still being worked, or how it ended.
    DealStatus { Open => "open", Won => "won", Lost => "lost" });

/// A deal as the API and the console see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Deal {
    pub id: DealId,
    pub party_id: PartyId,
    pub title: String,
    pub phase: DealPhase,
    pub status: DealStatus,
    /// Expected value in cents.
    pub value_cents: i64,
    /// Probability of winning, 0–100.
    pub probability: i64,
    pub expected_close_at: Option<Millis>,
    /// The product of interest (free text; assignment rules match it).
    pub product: Option<String>,
    pub zone: Option<String>,
    pub owner_id: Option<UserId>,
    /// The team the deal was routed to, when a rule assigned it to a team.
    pub team_id: Option<TeamId>,
    /// The rule that chose the owner, if one did.
    pub assignment_rule_id: Option<i64>,
    pub notes: Option<String>,
    /// When the deal was won or lost.
    pub closed_at: Option<Millis>,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A new deal as it arrives from outside.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealInput {
    pub party_id: PartyId,
    pub title: String,
    /// `lead` (default), `potential` or `opportunity`.
    #[serde(default)]
    pub phase: Option<String>,
    #[serde(default)]
    pub value_cents: Option<i64>,
    #[serde(default)]
    pub probability: Option<i64>,
    #[serde(default)]
    pub expected_close_at: Option<Millis>,
    #[serde(default)]
    pub product: Option<String>,
    /// Defaults to the party's zone.
    #[serde(default)]
    pub zone: Option<String>,
    /// When absent, the assignment rules decide; when no rule matches, the
    /// creator owns the deal.
    #[serde(default)]
    pub owner_id: Option<UserId>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// A change to a deal; absent fields are left alone.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DealPatch {
    /// The version the client read; a different current version is a conflict.
    pub version: i64,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub phase: Option<String>,
    /// `open`, `won` or `lost`. Winning makes the party a customer.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub value_cents: Option<i64>,
    #[serde(default)]
    pub probability: Option<i64>,
    #[serde(default)]
    pub expected_close_at: Option<Millis>,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub owner_id: Option<UserId>,
    #[serde(default)]
    pub notes: Option<String>,
}

/// Filters for listing deals; all optional, combined with AND.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct DealQuery {
    pub party_id: Option<i64>,
    pub owner_id: Option<i64>,
    pub phase: Option<String>,
    pub status: Option<String>,
    pub product: Option<String>,
    pub zone: Option<String>,
    /// Text in the title (case-insensitive).
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// Where an assignment rule sends a deal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AssignTo {
    User(UserId),
    /// The team's lead becomes the owner (and hands the deal out); a team
    /// without a lead leaves the deal in the shared pool.
    Team(TeamId),
}

/// An assignment rule (data in `assignment_rules`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AssignmentRule {
    pub id: i64,
    pub name: String,
    /// Lower runs first.
    pub priority: i64,
    /// Matches the product of interest case-insensitively; `None` matches any.
    pub product: Option<String>,
    /// Matches the zone case-insensitively; `None` matches any.
    pub zone: Option<String>,
    /// Inclusive lower bound on the value in cents.
    pub min_value_cents: Option<i64>,
    /// Inclusive upper bound on the value in cents.
    pub max_value_cents: Option<i64>,
    pub assign_to: AssignTo,
    pub active: bool,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentRuleInput {
    pub name: String,
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub min_value_cents: Option<i64>,
    #[serde(default)]
    pub max_value_cents: Option<i64>,
    pub assign_to: AssignTo,
}

impl AssignmentRule {
    /// Whether the rule's criteria all hold for a deal.
    pub fn matches(&self, product: Option<&str>, zone: Option<&str>, value_cents: i64) -> bool {
        let text_ok = |want: &Option<String>, have: Option<&str>| match want {
            None => true,
            Some(w) => have.is_some_and(|h| h.trim().to_lowercase() == w.trim().to_lowercase()),
        };
        self.active
            && text_ok(&self.product, product)
            && text_ok(&self.zone, zone)
            && self.min_value_cents.is_none_or(|m| value_cents >= m)
            && self.max_value_cents.is_none_or(|m| value_cents <= m)
    }
}

/// The first rule, by `(priority, id)`, that matches; `rules` may be in any
/// order.
pub fn pick_rule<'a>(rules: &'a [AssignmentRule], product: Option<&str>, zone: Option<&str>, value_cents: i64) -> Option<&'a AssignmentRule> {
    rules.iter().filter(|r| r.matches(product, zone, value_cents)).min_by_key(|r| (r.priority, r.id))
}

const MAX_TEXT: usize = 200;
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

fn check_value(v: Option<i64>, p: &mut Problems) {
    if v.is_some_and(|v| v < 0) {
        p.push("value_cents", "not negative");
    }
}

fn check_probability(v: Option<i64>, p: &mut Problems) {
    if v.is_some_and(|v| !(0..=100).contains(&v)) {
        p.push("probability", "between 0 and 100");
    }
}

const DEAL_COLS: &str = "id, party_id, title, phase, status, value_cents, probability, expected_close_at, product, zone, owner_id, \
                         team_id, assignment_rule_id, notes, closed_at, version, created_at, updated_at";

fn deal_from_row(r: &sqlx::any::AnyRow) -> Result<Deal> {
    Ok(Deal {
        id: DealId(r.try_get("id")?),
        party_id: PartyId(r.try_get("party_id")?),
        title: r.try_get("title")?,
        phase: DealPhase::parse(&r.try_get::<String, _>("phase")?).unwrap_or(DealPhase::Lead),
        status: DealStatus::parse(&r.try_get::<String, _>("status")?).unwrap_or(DealStatus::Open),
        value_cents: r.try_get("value_cents")?,
        probability: r.try_get("probability")?,
        expected_close_at: r.try_get("expected_close_at")?,
        product: r.try_get("product")?,
        zone: r.try_get("zone")?,
        owner_id: r.try_get::<Option<i64>, _>("owner_id")?.map(UserId),
        team_id: r.try_get::<Option<i64>, _>("team_id")?.map(TeamId),
        assignment_rule_id: r.try_get("assignment_rule_id")?,
        notes: r.try_get("notes")?,
        closed_at: r.try_get("closed_at")?,
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const RULE_COLS: &str = "id, name, priority, product, zone, min_value_cents, max_value_cents, assign_user_id, assign_team_id, active";

fn rule_from_row(r: &sqlx::any::AnyRow) -> Result<AssignmentRule> {
    let user = r.try_get::<Option<i64>, _>("assign_user_id")?;
    let team = r.try_get::<Option<i64>, _>("assign_team_id")?;
    // The table's CHECK guarantees exactly one of the two is set.
    let assign_to = match (user, team) {
        (Some(u), _) => AssignTo::User(UserId(u)),
        (None, Some(t)) => AssignTo::Team(TeamId(t)),
        (None, None) => return Err(Error::NotFound("assignment target")),
    };
    Ok(AssignmentRule {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        priority: r.try_get("priority")?,
        product: r.try_get("product")?,
        zone: r.try_get("zone")?,
        min_value_cents: r.try_get("min_value_cents")?,
        max_value_cents: r.try_get("max_value_cents")?,
        assign_to,
        active: b(r.try_get("active")?),
    })
}

/// Loads one deal inside a transaction (no visibility check).
pub(crate) async fn load_deal(tx: &mut Tx, id: DealId) -> Result<Deal> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {DEAL_COLS} FROM deals WHERE id = $1")))
        .bind(id.0)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(Error::NotFound("deal"))?;
    deal_from_row(&row)
}

/// Checks that `owner` exists and that the actor may hand records to them
/// (the same rule parties follow).
pub(crate) async fn check_owner(tx: &mut Tx, actor: &Actor, owner: UserId, p: &mut Problems) -> Result<()> {
    if sqlx::query("SELECT 1 FROM users WHERE id = $1").bind(owner.0).fetch_optional(&mut **tx).await?.is_none() {
        p.push("owner_id", "no such user");
    } else if owner != actor.user && !actor.can(Permission::EditPartiesOfOthers) && !actor.sees(Some(owner)) {
        p.push("owner_id", "you may not assign records to this user");
    }
    Ok(())
}

impl Store {
    /// Creates a deal for a party the actor can see. Without an owner, the
    /// assignment rules choose one (see the module docs).
    pub async fn create_deal(&self, actor: &Actor, input: DealInput) -> Result<Deal> {
        let mut p = Problems::default();
        let title = clean("title", Some(input.title), MAX_TEXT, &mut p);
        if title.is_none() && p.0.is_empty() {
            p.push("title", "required");
        }
        let phase = match &input.phase {
            None => Some(DealPhase::Lead),
            Some(s) => p.check("phase", DealPhase::parse(s)),
        };
        check_value(input.value_cents, &mut p);
        check_probability(input.probability, &mut p);
        let product = clean("product", input.product, MAX_TEXT, &mut p);
        let zone = clean("zone", input.zone, 100, &mut p);
        let notes = clean("notes", input.notes, MAX_NOTES, &mut p);
        p.finish()?;
        // Visibility of the party is checked before anything is written.
        let party = match self.get_party(actor, input.party_id).await {
            Err(Error::NotFound(_)) => return Err(Error::invalid("party_id", "no such party")),
            r => r?,
        };
        if party.merged_into.is_some() {
            return Err(Error::invalid("party_id", "the party was merged into another"));
        }
        let zone = zone.or(party.zone.clone());
        let value = input.value_cents.unwrap_or(0);

        let mut tx = self.begin().await?;
        let mut p = Problems::default();
        let (owner, team, rule_id) = match input.owner_id {
            Some(o) => {
                check_owner(&mut tx, actor, o, &mut p).await?;
                (Some(o), None, None)
            }
            None => {
                let rules = load_rules(&mut tx).await?;
                match pick_rule(&rules, product.as_deref(), zone.as_deref(), value) {
                    Some(r) => match r.assign_to {
                        AssignTo::User(u) => (Some(u), None, Some(r.id)),
                        AssignTo::Team(t) => {
                            let lead = sqlx::query("SELECT lead_user_id FROM teams WHERE id = $1")
                                .bind(t.0)
                                .fetch_optional(&mut *tx)
                                .await?
                                .map(|r| r.try_get::<Option<i64>, _>("lead_user_id"))
                                .transpose()?
                                .flatten()
                                .map(UserId);
                            (lead, Some(t), Some(r.id))
                        }
                    },
                    None => (actor.log_id().map(UserId), None, None),
                }
            }
        };
        p.finish()?;
        let now = now_ms();
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO deals (party_id, title, phase, status, value_cents, probability, expected_close_at, product, zone, owner_id, \
             team_id, assignment_rule_id, notes, version, created_at, updated_at) \
             VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13, $13) RETURNING {DEAL_COLS}"
        )))
        .bind(party.id.0)
        .bind(title.unwrap_or_default())
        .bind(phase.unwrap_or(DealPhase::Lead).as_str())
        .bind(value)
        .bind(input.probability.unwrap_or(0))
        .bind(input.expected_close_at)
        .bind(&product)
        .bind(&zone)
        .bind(owner.map(|o| o.0))
        .bind(team.map(|t| t.0))
        .bind(rule_id)
        .bind(&notes)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let deal = deal_from_row(&row)?;
        crate::oplog::record(
            &mut tx,
            actor,
            "deal",
            deal.id.0,
            "create",
            &serde_json::json!({"party_id": deal.party_id, "title": deal.title, "value_cents": deal.value_cents,
                                "owner_id": deal.owner_id, "assignment_rule_id": deal.assignment_rule_id}),
        )
        .await?;
        tx.commit().await?;
        Ok(deal)
    }

    /// Loads a deal, checking visibility.
    pub async fn get_deal(&self, actor: &Actor, id: DealId) -> Result<Deal> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {DEAL_COLS} FROM deals WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("deal"))?;
        let deal = deal_from_row(&row)?;
        actor.check_sees(deal.owner_id)?;
        Ok(deal)
    }

    /// Applies a patch under optimistic concurrency. Moving to `won` makes
    /// the party a customer (logged on the party too) and sets the
    /// probability to 100; `lost` sets it to 0; both stamp `closed_at`.
    /// Reopening clears `closed_at` but leaves the party's stage alone.
    pub async fn update_deal(&self, actor: &Actor, id: DealId, patch: DealPatch) -> Result<Deal> {
        let mut p = Problems::default();
        let title = match patch.title {
            Some(t) => {
                let t = clean("title", Some(t), MAX_TEXT, &mut p);
                if t.is_none() && p.0.is_empty() {
                    p.push("title", "may not be empty");
                }
                t
            }
            None => None,
        };
        let phase = patch.phase.as_deref().and_then(|s| p.check("phase", DealPhase::parse(s)));
        let status = patch.status.as_deref().and_then(|s| p.check("status", DealStatus::parse(s)));
        check_value(patch.value_cents, &mut p);
        check_probability(patch.probability, &mut p);
        let product = if patch.product.is_some() { Some(clean("product", patch.product, MAX_TEXT, &mut p)) } else { None };
        let zone = if patch.zone.is_some() { Some(clean("zone", patch.zone, 100, &mut p)) } else { None };
        let notes = if patch.notes.is_some() { Some(clean("notes", patch.notes, MAX_NOTES, &mut p)) } else { None };
        p.finish()?;

        let mut tx = self.begin().await?;
        let cur = load_deal(&mut tx, id).await?;
        actor.check_sees(cur.owner_id)?;
        if cur.version != patch.version {
            return Err(Error::Conflict);
        }
        let mut p = Problems::default();
        if let Some(o) = patch.owner_id.filter(|o| Some(*o) != cur.owner_id) {
            check_owner(&mut tx, actor, o, &mut p).await?;
        }
        p.finish()?;
        let now = now_ms();
        let mut new = cur.clone();
        new.title = title.unwrap_or(cur.title.clone());
        new.phase = phase.unwrap_or(cur.phase);
        new.status = status.unwrap_or(cur.status);
        new.value_cents = patch.value_cents.unwrap_or(cur.value_cents);
        new.probability = patch.probability.unwrap_or(cur.probability);
        new.expected_close_at = patch.expected_close_at.or(cur.expected_close_at);
        new.product = product.unwrap_or(cur.product.clone());
        new.zone = zone.unwrap_or(cur.zone.clone());
        new.owner_id = patch.owner_id.or(cur.owner_id);
        new.notes = notes.unwrap_or(cur.notes.clone());
        if new.status != cur.status {
            match new.status {
                DealStatus::Won => {
                    new.probability = 100;
                    new.closed_at = Some(now);
                }
                DealStatus::Lost => {
                    new.probability = 0;
                    new.closed_at = Some(now);
                }
                DealStatus::Open => new.closed_at = None,
            }
        }
        let n = sqlx::query(
            "UPDATE deals SET title = $1, phase = $2, status = $3, value_cents = $4, probability = $5, expected_close_at = $6, \
             product = $7, zone = $8, owner_id = $9, notes = $10, closed_at = $11, version = version + 1, updated_at = $12 \
             WHERE id = $13 AND version = $14",
        )
        .bind(&new.title)
        .bind(new.phase.as_str())
        .bind(new.status.as_str())
        .bind(new.value_cents)
        .bind(new.probability)
        .bind(new.expected_close_at)
        .bind(&new.product)
        .bind(&new.zone)
        .bind(new.owner_id.map(|o| o.0))
        .bind(&new.notes)
        .bind(new.closed_at)
        .bind(now)
        .bind(id.0)
        .bind(patch.version)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Err(Error::Conflict);
        }
        let mut ch = serde_json::Map::new();
        crate::oplog::diff(&mut ch, "title", &cur.title, &new.title);
        crate::oplog::diff(&mut ch, "phase", &cur.phase, &new.phase);
        crate::oplog::diff(&mut ch, "status", &cur.status, &new.status);
        crate::oplog::diff(&mut ch, "value_cents", &cur.value_cents, &new.value_cents);
        crate::oplog::diff(&mut ch, "probability", &cur.probability, &new.probability);
        crate::oplog::diff(&mut ch, "expected_close_at", &cur.expected_close_at, &new.expected_close_at);
        crate::oplog::diff(&mut ch, "product", &cur.product, &new.product);
        crate::oplog::diff(&mut ch, "zone", &cur.zone, &new.zone);
        crate::oplog::diff(&mut ch, "owner_id", &cur.owner_id, &new.owner_id);
        crate::oplog::diff(&mut ch, "notes", &cur.notes, &new.notes);
        crate::oplog::diff(&mut ch, "closed_at", &cur.closed_at, &new.closed_at);
        crate::oplog::record(&mut tx, actor, "deal", id.0, "update", &serde_json::Value::Object(ch)).await?;
        if new.status == DealStatus::Won && cur.status != DealStatus::Won {
            make_customer(&mut tx, actor, cur.party_id, id, now).await?;
        }
        tx.commit().await?;
        self.get_deal(&Actor::system(), id).await
    }

    /// Deletes a deal that has no activities (a deal with history is closed
    /// as lost instead, so the history stays).
    pub async fn delete_deal(&self, actor: &Actor, id: DealId) -> Result<()> {
        let mut tx = self.begin().await?;
        let cur = load_deal(&mut tx, id).await?;
        actor.check_sees(cur.owner_id)?;
        if cur.owner_id.is_some() && cur.owner_id != Some(actor.user) && !actor.can(Permission::EditPartiesOfOthers) {
            return Err(Error::Forbidden);
        }
        if sqlx::query("SELECT 1 FROM activities WHERE deal_id = $1 LIMIT 1").bind(id.0).fetch_optional(&mut *tx).await?.is_some() {
            return Err(Error::invalid("id", "the deal has activities; close it as lost instead"));
        }
        sqlx::query("DELETE FROM deals WHERE id = $1").bind(id.0).execute(&mut *tx).await?;
        crate::oplog::record(&mut tx, actor, "deal", id.0, "delete", &serde_json::json!({"party_id": cur.party_id, "title": cur.title})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Lists deals visible to the actor, filtered and paginated (newest first).
    pub async fn list_deals(&self, actor: &Actor, q: &DealQuery) -> Result<Page<Deal>> {
        let mut p = Problems::default();
        let limit = q.limit.unwrap_or(50);
        let offset = q.offset.unwrap_or(0);
        if !(1..=500).contains(&limit) {
            p.push("limit", "between 1 and 500");
        }
        if offset < 0 {
            p.push("offset", "not negative");
        }
        let phase = q.phase.as_deref().and_then(|s| p.check("phase", DealPhase::parse(s)));
        let status = q.status.as_deref().and_then(|s| p.check("status", DealStatus::parse(s)));
        p.finish()?;
        // Conditions carry `?` for their one bound value; numbering happens
        // as they are pushed so strings and integers can be mixed.
        enum V {
            S(String),
            I(i64),
        }
        let mut conds = vec![actor.owner_filter("owner_id")];
        let mut vals: Vec<V> = Vec::new();
        let mut push = |sql: &str, v: V| {
            vals.push(v);
            conds.push(sql.replace('?', &format!("${}", vals.len())));
        };
        if let Some(id) = q.party_id {
            push("party_id = ?", V::I(id));
        }
        if let Some(id) = q.owner_id {
            push("owner_id = ?", V::I(id));
        }
        if let Some(ph) = phase {
            push("phase = ?", V::S(ph.as_str().into()));
        }
        if let Some(st) = status {
            push("status = ?", V::S(st.as_str().into()));
        }
        if let Some(pr) = q.product.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            push("LOWER(product) = ?", V::S(pr.to_lowercase()));
        }
        if let Some(z) = q.zone.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            push("LOWER(zone) = ?", V::S(z.to_lowercase()));
        }
        if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            let pat = format!("%{}%", text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
            push("LOWER(title) LIKE ? ESCAPE '\\'", V::S(pat));
        }
        let where_ = conds.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) AS n FROM deals WHERE {where_}");
        let list_sql = format!("SELECT {DEAL_COLS} FROM deals WHERE {where_} ORDER BY created_at DESC, id DESC LIMIT {limit} OFFSET {offset}");
        let mut cq = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        let mut lq = sqlx::query(sqlx::AssertSqlSafe(list_sql));
        for v in &vals {
            match v {
                V::S(s) => {
                    cq = cq.bind(s.clone());
                    lq = lq.bind(s.clone());
                }
                V::I(i) => {
                    cq = cq.bind(*i);
                    lq = lq.bind(*i);
                }
            }
        }
        let total: i64 = cq.fetch_one(&self.read).await?.try_get("n")?;
        let items = lq.fetch_all(&self.read).await?.iter().map(deal_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total, limit, offset })
    }

    /// Adds an assignment rule.
    pub async fn create_assignment_rule(&self, actor: &Actor, input: AssignmentRuleInput) -> Result<AssignmentRule> {
        actor.require(Permission::ManageAssignmentRules)?;
        let mut p = Problems::default();
        let name = clean("name", Some(input.name), 100, &mut p);
        if name.is_none() && p.0.is_empty() {
            p.push("name", "required");
        }
        let product = clean("product", input.product, MAX_TEXT, &mut p);
        let zone = clean("zone", input.zone, 100, &mut p);
        if input.min_value_cents.is_some_and(|v| v < 0) {
            p.push("min_value_cents", "not negative");
        }
        if let (Some(lo), Some(hi)) = (input.min_value_cents, input.max_value_cents)
            && hi < lo
        {
            p.push("max_value_cents", "not below min_value_cents");
        }
        let mut tx = self.begin().await?;
        let (user, team) = match input.assign_to {
            AssignTo::User(u) => {
                if sqlx::query("SELECT 1 FROM users WHERE id = $1").bind(u.0).fetch_optional(&mut *tx).await?.is_none() {
                    p.push("assign_to", "no such user");
                }
                (Some(u.0), None)
            }
            AssignTo::Team(t) => {
                if sqlx::query("SELECT 1 FROM teams WHERE id = $1").bind(t.0).fetch_optional(&mut *tx).await?.is_none() {
                    p.push("assign_to", "no such team");
                }
                (None, Some(t.0))
            }
        };
        p.finish()?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO assignment_rules (name, priority, product, zone, min_value_cents, max_value_cents, assign_user_id, assign_team_id, \
             active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9) RETURNING {RULE_COLS}"
        )))
        .bind(name.unwrap_or_default())
        .bind(input.priority)
        .bind(&product)
        .bind(&zone)
        .bind(input.min_value_cents)
        .bind(input.max_value_cents)
        .bind(user)
        .bind(team)
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let rule = rule_from_row(&row)?;
        crate::oplog::record(&mut tx, actor, "assignment_rule", rule.id, "create", &serde_json::json!({"name": rule.name, "priority": rule.priority})).await?;
        tx.commit().await?;
        Ok(rule)
    }

    /// All assignment rules in the order they are tried.
    pub async fn list_assignment_rules(&self, actor: &Actor) -> Result<Vec<AssignmentRule>> {
        actor.require(Permission::ManageAssignmentRules)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RULE_COLS} FROM assignment_rules ORDER BY priority, id")))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(rule_from_row).collect()
    }

    /// Switches a rule on or off (rules are kept, so deals can still name
    /// the rule that assigned them).
    pub async fn set_assignment_rule_active(&self, actor: &Actor, id: i64, active: bool) -> Result<()> {
        actor.require(Permission::ManageAssignmentRules)?;
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE assignment_rules SET active = $1 WHERE id = $2").bind(active as i64).bind(id).execute(&mut *tx).await?;
        if n.rows_affected() == 0 {
            return Err(Error::NotFound("assignment rule"));
        }
        crate::oplog::record(&mut tx, actor, "assignment_rule", id, "update", &serde_json::json!({"active": active})).await?;
        tx.commit().await?;
        Ok(())
    }
}

async fn load_rules(tx: &mut Tx) -> Result<Vec<AssignmentRule>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RULE_COLS} FROM assignment_rules WHERE active = 1 ORDER BY priority, id")))
        .fetch_all(&mut **tx)
        .await?;
    rows.iter().map(rule_from_row).collect()
}

/// Turns the party of a won deal into a customer, logging it on the party.
async fn make_customer(tx: &mut Tx, actor: &Actor, party: PartyId, deal: DealId, now: Millis) -> Result<()> {
    let row = sqlx::query("SELECT stage FROM parties WHERE id = $1").bind(party.0).fetch_optional(&mut **tx).await?.ok_or(Error::NotFound("party"))?;
    let old: String = row.try_get("stage")?;
    if old == Stage::Customer.as_str() {
        return Ok(());
    }
    sqlx::query("UPDATE parties SET stage = $1, version = version + 1, updated_at = $2 WHERE id = $3")
        .bind(Stage::Customer.as_str())
        .bind(now)
        .bind(party.0)
        .execute(&mut **tx)
        .await?;
    crate::oplog::record(tx, actor, "party", party.0, "update", &serde_json::json!({"stage": [old, Stage::Customer], "won_deal_id": deal})).await?;
    Ok(())
}
