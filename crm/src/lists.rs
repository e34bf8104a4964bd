//! Marketing and calling lists (seed 001): static lists, whose members are
//! frozen in `list_members` when built, and dynamic lists, whose typed
//! [`ListFilter`] is stored as JSON and evaluated every time the list is used.
//!
//! A filter is compiled to SQL conditions with bound parameters by
//! [`ListFilter::compile`]; values from the filter are never spliced into SQL
//! text. Lists have an owner and are visible by the same rule as parties;
//! whoever reads a list sees only the members in their own scope
//! ([`Actor::owner_filter`]), so a supervisor's list shows an agent only the
//! agent's share. Creating and changing lists needs
//! [`Permission::ManageLists`].

use crate::auth::{Actor, Permission};
use crate::error::{Error, Problems, Result};
use crate::import::{in_list, placeholders, values_sql};
use crate::parties::{CARD_COLS, Page, PartyCard, card_from_row};
use crate::store::Store;
use crate::types::*;
use serde::{Deserialize, Serialize};
use sqlx::Row;

str_enum!(/// Frozen membership, or a filter evaluated when used.
    ListKind { Static => "static", Dynamic => "dynamic" });

/// A characteristic that must have exactly this value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CharacteristicCond {
    pub key: String,
    pub value: String,
}

/// Consent on a channel: `granted: true` keeps parties who granted it;
/// `false` keeps those who did not (refused, or never asked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentCond {
    pub channel: Channel,
    pub granted: bool,
}

/// The filter of a dynamic list. Every field is optional; a list field
/// matches any of its values; fields combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<PartyKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<Stage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commercial_state_ids: Vec<CommercialStateId>,
    /// All of these must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub characteristics: Vec<CharacteristicCond>,
    /// All of these must hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub consents: Vec<ConsentCond>,
    /// The outcome of the party's most recently completed activity that had
    /// one is one of these names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_outcomes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_ids: Vec<UserId>,
    /// Compared case-blind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub zones: Vec<String>,
    /// Compared case-blind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub do_not_call: Option<bool>,
}

/// A value bound to a compiled filter's placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlArg {
    Int(i64),
    Text(String),
}

/// A filter as SQL: conditions on the party alias `p`, with `$N`
/// placeholders numbered after the ones the caller already uses, and the
/// values to bind to them in order.
#[derive(Debug, Clone, Default)]
pub struct CompiledFilter {
    pub conditions: Vec<String>,
    pub args: Vec<SqlArg>,
}

impl CompiledFilter {
    fn arg(&mut self, a: SqlArg, start: usize) -> String {
        self.args.push(a);
        format!("${}", start + self.args.len())
    }
    fn any_of(&mut self, expr: &str, vals: Vec<SqlArg>, start: usize) {
        if vals.is_empty() {
            return;
        }
        let ph: Vec<String> = vals.into_iter().map(|v| self.arg(v, start)).collect();
        self.conditions.push(format!("{expr} IN ({})", ph.join(",")));
    }
    /// The conditions joined with AND (`1=1` when there are none).
    pub fn where_sql(&self) -> String {
        if self.conditions.is_empty() { "1=1".into() } else { self.conditions.join(" AND ") }
    }
}

const MAX_VALUES: usize = 200;

impl ListFilter {
    /// Checks sizes and characteristic keys, naming every bad field.
    pub fn validate(&self) -> Result<()> {
        let mut p = Problems::default();
        let lens = [
            ("stages", self.stages.len()),
            ("commercial_state_ids", self.commercial_state_ids.len()),
            ("characteristics", self.characteristics.len()),
            ("consents", self.consents.len()),
            ("last_outcomes", self.last_outcomes.len()),
            ("owner_ids", self.owner_ids.len()),
            ("zones", self.zones.len()),
            ("cities", self.cities.len()),
        ];
        for (f, n) in lens {
            if n > MAX_VALUES {
                p.push(format!("filter.{f}"), format!("at most {MAX_VALUES} values"));
            }
        }
        for (i, c) in self.characteristics.iter().enumerate() {
            if c.key.is_empty() || c.key.len() > 64 || !c.key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
                p.push(format!("filter.characteristics[{i}].key"), "1–64 letters, digits, _ or -");
            }
            if c.value.chars().count() > 500 {
                p.push(format!("filter.characteristics[{i}].value"), "at most 500 characters");
            }
        }
        for (f, vals) in [("last_outcomes", &self.last_outcomes), ("zones", &self.zones), ("cities", &self.cities)] {
            for (i, v) in vals.iter().enumerate() {
                if v.trim().is_empty() || v.chars().count() > 200 {
                    p.push(format!("filter.{f}[{i}]"), "1–200 characters");
                }
            }
        }
        p.finish()
    }

    /// Compiles to conditions on `parties p`, placeholders starting at
    /// `$start+1`. The last-outcome condition reads `activities` and
    /// `outcomes`.
    pub fn compile(&self, start: usize) -> CompiledFilter {
        let mut c = CompiledFilter::default();
        if let Some(k) = self.kind {
            let ph = c.arg(SqlArg::Text(k.as_str().into()), start);
            c.conditions.push(format!("p.kind = {ph}"));
        }
        c.any_of("p.stage", self.stages.iter().map(|s| SqlArg::Text(s.as_str().into())).collect(), start);
        c.any_of("p.commercial_state_id", self.commercial_state_ids.iter().map(|s| SqlArg::Int(s.0)).collect(), start);
        c.any_of("p.owner_id", self.owner_ids.iter().map(|s| SqlArg::Int(s.0)).collect(), start);
        c.any_of("LOWER(p.zone)", self.zones.iter().map(|s| SqlArg::Text(s.trim().to_lowercase())).collect(), start);
        c.any_of("LOWER(p.city)", self.cities.iter().map(|s| SqlArg::Text(s.trim().to_lowercase())).collect(), start);
        if let Some(d) = self.do_not_call {
            let ph = c.arg(SqlArg::Int(d as i64), start);
            c.conditions.push(format!("p.do_not_call = {ph}"));
        }
        for ch in &self.characteristics {
            let k = c.arg(SqlArg::Text(ch.key.clone()), start);
            let v = c.arg(SqlArg::Text(ch.value.clone()), start);
            c.conditions.push(format!("EXISTS (SELECT 1 FROM party_chars pc WHERE pc.party_id = p.id AND pc.key = {k} AND pc.value = {v})"));
        }
        for cons in &self.consents {
            let ch = c.arg(SqlArg::Text(cons.channel.as_str().into()), start);
            let not = if cons.granted { "" } else { "NOT " };
            c.conditions.push(format!(
                "{not}EXISTS (SELECT 1 FROM party_consents pk WHERE pk.party_id = p.id AND pk.channel = {ch} AND pk.granted = 1)"
            ));
        }
        if !self.last_outcomes.is_empty() {
            c.any_of(
                "(SELECT o.name FROM activities a JOIN outcomes o ON o.id = a.outcome_id \
                 WHERE a.party_id = p.id AND a.done_at IS NOT NULL ORDER BY a.done_at DESC, a.id DESC LIMIT 1)",
                self.last_outcomes.iter().map(|s| SqlArg::Text(s.trim().to_string())).collect(),
                start,
            );
        }
        c
    }
}

/// A list as the API sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct List {
    pub id: ListId,
    pub name: String,
    pub description: Option<String>,
    pub kind: ListKind,
    /// The filter of a dynamic list.
    pub filter: Option<ListFilter>,
    pub owner_id: Option<UserId>,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A new list. A dynamic list needs a `filter`. A static list is built from
/// `party_ids`, or from `filter` evaluated once, now (or both).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewList {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub kind: ListKind,
    #[serde(default)]
    pub filter: Option<ListFilter>,
    #[serde(default)]
    pub party_ids: Vec<PartyId>,
}

/// A change to a list; absent fields are left alone. Only a dynamic list
/// takes a new filter.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPatch {
    pub version: i64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub filter: Option<ListFilter>,
}

/// Which page of members.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ListPage {
    /// 1 to 1000; 50 when absent.
    #[serde(default)]
    pub limit: Option<i64>,
    #[serde(default)]
    pub offset: Option<i64>,
}

const LIST_COLS: &str = "id, name, description, kind, filter, owner_id, version, created_at, updated_at";

fn list_from_row(r: &sqlx::any::AnyRow) -> Result<List> {
    let filter: Option<String> = r.try_get("filter")?;
    Ok(List {
        id: ListId(r.try_get("id")?),
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        kind: ListKind::parse(&r.try_get::<String, _>("kind")?).unwrap_or(ListKind::Static),
        // A filter that no longer parses (an older shape) is shown as none
        // rather than making the list unreadable.
        filter: filter.and_then(|f| serde_json::from_str(&f).ok()),
        owner_id: r.try_get::<Option<i64>, _>("owner_id")?.map(UserId),
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn clean_name(name: &str, p: &mut Problems) -> String {
    let n = name.trim().to_string();
    if n.is_empty() || n.chars().count() > 200 || n.chars().any(char::is_control) {
        p.push("name", "1–200 characters, no control characters");
    }
    n
}

fn clean_description(d: Option<String>, p: &mut Problems) -> Option<String> {
    let d = d.map(|d| d.trim().to_string()).filter(|d| !d.is_empty())?;
    if d.chars().count() > 2000 {
        p.push("description", "at most 2000 characters");
    }
    Some(d)
}

fn bind_args<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    args: &'q [SqlArg],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for a in args {
        q = match a {
            SqlArg::Int(i) => q.bind(*i),
            SqlArg::Text(s) => q.bind(s.as_str()),
        };
    }
    q
}

type Tx = crate::import::Tx;

impl Store {
    /// The `FROM … WHERE …` selecting a list's members in the actor's scope,
    /// with its arguments; placeholders start after `start`.
    fn members_sql(&self, actor: &Actor, list: &List, start: usize) -> (String, Vec<SqlArg>) {
        let scope = actor.owner_filter("p.owner_id");
        match (list.kind, &list.filter) {
            (ListKind::Dynamic, Some(f)) => {
                let c = f.compile(start);
                (format!("FROM parties p WHERE p.merged_into IS NULL AND {scope} AND {}", c.where_sql()), c.args)
            }
            (ListKind::Dynamic, None) => ("FROM parties p WHERE 1=0".into(), Vec::new()),
            (ListKind::Static, _) => (
                format!(
                    "FROM list_members m JOIN parties p ON p.id = m.party_id WHERE m.list_id = ${} AND p.merged_into IS NULL AND {scope}",
                    start + 1
                ),
                vec![SqlArg::Int(list.id.0)],
            ),
        }
    }

    /// A list the actor may see.
    pub async fn get_list(&self, actor: &Actor, id: ListId) -> Result<List> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {LIST_COLS} FROM lists WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("list"))?;
        let list = list_from_row(&row)?;
        actor.check_sees(list.owner_id)?;
        Ok(list)
    }

    /// The lists the actor may see, by name.
    pub async fn lists(&self, actor: &Actor) -> Result<Vec<List>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {LIST_COLS} FROM lists WHERE {} ORDER BY name, id",
            actor.owner_filter("owner_id")
        )))
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(list_from_row).collect()
    }

    async fn editable_list(&self, actor: &Actor, id: ListId) -> Result<List> {
        actor.require(Permission::ManageLists)?;
        self.get_list(actor, id).await
    }

    /// Creates a list; a static one is filled now.
    pub async fn create_list(&self, actor: &Actor, input: NewList) -> Result<List> {
        actor.require(Permission::ManageLists)?;
        let mut p = Problems::default();
        let name = clean_name(&input.name, &mut p);
        let description = clean_description(input.description, &mut p);
        if let Some(f) = &input.filter
            && let Err(Error::Invalid(errs)) = f.validate()
        {
            p.0.extend(errs);
        }
        match input.kind {
            ListKind::Dynamic if input.filter.is_none() => p.push("filter", "a dynamic list needs a filter"),
            ListKind::Dynamic if !input.party_ids.is_empty() => p.push("party_ids", "a dynamic list has no hand-picked members"),
            _ => {}
        }
        if input.party_ids.len() > 100_000 {
            p.push("party_ids", "at most 100000 parties at once");
        }
        p.finish()?;
        let now = now_ms();
        let filter_json = match input.kind {
            ListKind::Dynamic => input.filter.as_ref().map(serde_json::to_string).transpose().map_err(|_| Error::invalid("filter", "cannot store"))?,
            ListKind::Static => None,
        };
        let mut tx = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO lists (name, description, kind, filter, owner_id, version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6, $6) RETURNING {LIST_COLS}"
        )))
        .bind(&name)
        .bind(&description)
        .bind(input.kind.as_str())
        .bind(&filter_json)
        .bind(actor.log_id())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let list = list_from_row(&row)?;
        let mut added = 0;
        if input.kind == ListKind::Static {
            if let Some(f) = &input.filter {
                added += self.fill_from_filter(&mut tx, actor, list.id, f, now).await?;
            }
            added += self.add_members_tx(&mut tx, actor, list.id, &input.party_ids, now).await?;
        }
        crate::oplog::record(&mut tx, actor, "list", list.id.0, "create", &serde_json::json!({"name": name, "kind": list.kind, "members": added}))
            .await?;
        tx.commit().await?;
        Ok(list)
    }

    /// Freezes the current result of `filter` (in the actor's scope) into a
    /// static list.
    async fn fill_from_filter(&self, tx: &mut Tx, actor: &Actor, list: ListId, f: &ListFilter, now: Millis) -> Result<u64> {
        let c = f.compile(2);
        let sql = format!(
            "INSERT INTO list_members (list_id, party_id, added_at) SELECT $1, p.id, $2 FROM parties p \
             WHERE p.merged_into IS NULL AND {} AND {} ON CONFLICT (list_id, party_id) DO NOTHING",
            actor.owner_filter("p.owner_id"),
            c.where_sql()
        );
        let q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(list.0).bind(now);
        Ok(bind_args(q, &c.args).execute(&mut **tx).await?.rows_affected())
    }

    /// Adds hand-picked parties; each must exist, be unmerged and visible.
    async fn add_members_tx(&self, tx: &mut Tx, actor: &Actor, list: ListId, ids: &[PartyId], now: Millis) -> Result<u64> {
        let mut wanted: Vec<i64> = ids.iter().map(|i| i.0).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut found = std::collections::HashSet::new();
        for part in wanted.chunks(5_000) {
            let sql = format!(
                "SELECT p.id FROM parties p WHERE p.merged_into IS NULL AND {} AND p.id IN ({})",
                actor.owner_filter("p.owner_id"),
                in_list(self.backend, part.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in part {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&mut **tx).await? {
                found.insert(r.try_get::<i64, _>("id")?);
            }
        }
        let missing: Vec<String> = wanted.iter().filter(|i| !found.contains(i)).take(20).map(|i| i.to_string()).collect();
        if !missing.is_empty() {
            return Err(Error::invalid("party_ids", format!("no such party: {}", missing.join(", "))));
        }
        let mut added = 0;
        for part in wanted.chunks(1_000) {
            let sql = values_sql(self.backend, "INSERT INTO list_members (list_id, party_id, added_at)", 3, part.len(), "ON CONFLICT (list_id, party_id) DO NOTHING");
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in part {
                q = q.bind(list.0).bind(*id).bind(now);
            }
            added += q.execute(&mut **tx).await?.rows_affected();
        }
        Ok(added)
    }

    /// Renames, re-describes or re-filters a list (optimistic version check).
    pub async fn update_list(&self, actor: &Actor, id: ListId, patch: ListPatch) -> Result<List> {
        let cur = self.editable_list(actor, id).await?;
        if cur.version != patch.version {
            return Err(Error::Conflict);
        }
        let mut p = Problems::default();
        let name = patch.name.as_deref().map(|n| clean_name(n, &mut p)).unwrap_or(cur.name.clone());
        let description = if patch.description.is_some() { clean_description(patch.description, &mut p) } else { cur.description.clone() };
        if let Some(f) = &patch.filter {
            if cur.kind == ListKind::Static {
                p.push("filter", "a static list has no filter; freeze a dynamic list instead");
            } else if let Err(Error::Invalid(errs)) = f.validate() {
                p.0.extend(errs);
            }
        }
        p.finish()?;
        let filter = patch.filter.clone().or(cur.filter.clone());
        let filter_json = match cur.kind {
            ListKind::Dynamic => filter.as_ref().map(serde_json::to_string).transpose().map_err(|_| Error::invalid("filter", "cannot store"))?,
            ListKind::Static => None,
        };
        let mut ch = serde_json::Map::new();
        crate::oplog::diff(&mut ch, "name", &cur.name, &name);
        crate::oplog::diff(&mut ch, "description", &cur.description, &description);
        crate::oplog::diff(&mut ch, "filter", &cur.filter, &filter);
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE lists SET name = $1, description = $2, filter = $3, version = version + 1, updated_at = $4 WHERE id = $5 AND version = $6",
        )
        .bind(&name)
        .bind(&description)
        .bind(&filter_json)
        .bind(now_ms())
        .bind(id.0)
        .bind(patch.version)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Err(Error::Conflict);
        }
        crate::oplog::record(&mut tx, actor, "list", id.0, "update", &serde_json::Value::Object(ch)).await?;
        tx.commit().await?;
        self.get_list(actor, id).await
    }

    pub async fn delete_list(&self, actor: &Actor, id: ListId) -> Result<()> {
        let cur = self.editable_list(actor, id).await?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM list_members WHERE list_id = $1").bind(id.0).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM lists WHERE id = $1").bind(id.0).execute(&mut *tx).await?;
        crate::oplog::record(&mut tx, actor, "list", id.0, "delete", &serde_json::json!({"name": cur.name})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds parties to a static list; returns how many were new to it.
    pub async fn add_list_members(&self, actor: &Actor, id: ListId, parties: &[PartyId]) -> Result<u64> {
        let list = self.editable_list(actor, id).await?;
        if list.kind != ListKind::Static {
            return Err(Error::invalid("kind", "members of a dynamic list come from its filter"));
        }
        if parties.len() > 100_000 {
            return Err(Error::invalid("party_ids", "at most 100000 parties at once"));
        }
        let mut tx = self.begin().await?;
        let n = self.add_members_tx(&mut tx, actor, id, parties, now_ms()).await?;
        sqlx::query("UPDATE lists SET version = version + 1, updated_at = $1 WHERE id = $2").bind(now_ms()).bind(id.0).execute(&mut *tx).await?;
        crate::oplog::record(&mut tx, actor, "list", id.0, "add-members", &serde_json::json!({"requested": parties.len(), "added": n})).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Removes parties from a static list; returns how many were members.
    pub async fn remove_list_members(&self, actor: &Actor, id: ListId, parties: &[PartyId]) -> Result<u64> {
        let list = self.editable_list(actor, id).await?;
        if list.kind != ListKind::Static {
            return Err(Error::invalid("kind", "members of a dynamic list come from its filter"));
        }
        let mut tx = self.begin().await?;
        let mut n = 0;
        for part in parties.chunks(500) {
            let sql = format!("DELETE FROM list_members WHERE list_id = $1 AND party_id IN ({})", placeholders(1, part.len()));
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id.0);
            for p in part {
                q = q.bind(p.0);
            }
            n += q.execute(&mut *tx).await?.rows_affected();
        }
        sqlx::query("UPDATE lists SET version = version + 1, updated_at = $1 WHERE id = $2").bind(now_ms()).bind(id.0).execute(&mut *tx).await?;
        crate::oplog::record(&mut tx, actor, "list", id.0, "remove-members", &serde_json::json!({"removed": n})).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// One page of a list's members in the actor's scope, by name.
    pub async fn list_members(&self, actor: &Actor, id: ListId, page: &ListPage) -> Result<Page<PartyCard>> {
        let mut p = Problems::default();
        let limit = page.limit.unwrap_or(50);
        let offset = page.offset.unwrap_or(0);
        if !(1..=1000).contains(&limit) {
            p.push("limit", "between 1 and 1000");
        }
        if offset < 0 {
            p.push("offset", "not negative");
        }
        p.finish()?;
        let list = self.get_list(actor, id).await?;
        let (from, args) = self.members_sql(actor, &list, 0);
        let total: i64 = bind_args(sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n {from}"))), &args)
            .fetch_one(&self.read)
            .await?
            .try_get("n")?;
        let sql = format!("SELECT {CARD_COLS} {from} ORDER BY p.name, p.id LIMIT {limit} OFFSET {offset}");
        let items = bind_args(sqlx::query(sqlx::AssertSqlSafe(sql)), &args)
            .fetch_all(&self.read)
            .await?
            .iter()
            .map(card_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total, limit, offset })
    }

    /// How many members the actor sees in the list.
    pub async fn count_list(&self, actor: &Actor, id: ListId) -> Result<i64> {
        let list = self.get_list(actor, id).await?;
        let (from, args) = self.members_sql(actor, &list, 0);
        Ok(bind_args(sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n {from}"))), &args).fetch_one(&self.read).await?.try_get("n")?)
    }

    /// The ids of all members the actor sees, in id order (for campaigns
    /// that load a list into the dialer's hopper or a mailing).
    pub async fn list_member_ids(&self, actor: &Actor, id: ListId) -> Result<Vec<PartyId>> {
        let list = self.get_list(actor, id).await?;
        let (from, args) = self.members_sql(actor, &list, 0);
        let rows = bind_args(sqlx::query(sqlx::AssertSqlSafe(format!("SELECT p.id {from} ORDER BY p.id"))), &args).fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok(PartyId(r.try_get("id")?))).collect()
    }

    /// How many parties in the actor's scope a filter selects now (a
    /// preview while a marketer edits a dynamic list).
    pub async fn count_filter(&self, actor: &Actor, filter: &ListFilter) -> Result<i64> {
        filter.validate()?;
        let c = filter.compile(0);
        let sql = format!("SELECT COUNT(*) AS n FROM parties p WHERE p.merged_into IS NULL AND {} AND {}", actor.owner_filter("p.owner_id"), c.where_sql());
        Ok(bind_args(sqlx::query(sqlx::AssertSqlSafe(sql)), &c.args).fetch_one(&self.read).await?.try_get("n")?)
    }

    /// Freezes a list's current members (as the actor sees them) into a new
    /// static list; the original stays as it is. The name defaults to the
    /// original's with the date.
    pub async fn freeze_list(&self, actor: &Actor, id: ListId, name: Option<String>) -> Result<List> {
        actor.require(Permission::ManageLists)?;
        let src = self.get_list(actor, id).await?;
        let now = now_ms();
        let name = match name {
            Some(n) => n,
            None => {
                let when = chrono::DateTime::from_timestamp_millis(now).map(|d| d.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default();
                let base: String = src.name.chars().take(170).collect();
                format!("{base} (frozen {when})")
            }
        };
        let mut p = Problems::default();
        let name = clean_name(&name, &mut p);
        p.finish()?;
        let mut tx = self.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO lists (name, description, kind, filter, owner_id, version, created_at, updated_at) \
             VALUES ($1, $2, 'static', NULL, $3, 1, $4, $4) RETURNING {LIST_COLS}"
        )))
        .bind(&name)
        .bind(&src.description)
        .bind(actor.log_id())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let list = list_from_row(&row)?;
        let (from, args) = self.members_sql(actor, &src, 2);
        let sql = format!("INSERT INTO list_members (list_id, party_id, added_at) SELECT $1, p.id, $2 {from} ON CONFLICT (list_id, party_id) DO NOTHING");
        let n = bind_args(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(list.id.0).bind(now), &args).execute(&mut *tx).await?.rows_affected();
        crate::oplog::record(&mut tx, actor, "list", list.id.0, "freeze", &serde_json::json!({"from": src.id, "members": n})).await?;
        tx.commit().await?;
        Ok(list)
    }
}
