//! Parties — companies and persons — with their phones, emails, sites,
//! characteristics (custom key/values), consent per channel, lifecycle stage,
//! commercial state and owner; and the hot lookups "who is calling?" (by
//! E.164 number) and "who wrote?" (by email).
//!
//! A party and its children are written in one transaction with an
//! operation-log entry; updates carry the version they were read at, and a
//! stale version is a [`Error::Conflict`].

use crate::auth::{Actor, Permission};
use crate::error::{Error, Problems, Result};
use crate::store::{Store, b};
use crate::types::*;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Phone {
    pub number: PhoneNumber,
    pub kind: PhoneKind,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Email {
    pub address: EmailAddress,
    pub kind: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Site {
    pub label: String,
    pub street: Option<String>,
    pub city: Option<String>,
    pub province: Option<String>,
    pub postcode: Option<String>,
    pub country: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Consent {
    pub channel: Channel,
    pub granted: bool,
    pub at: Millis,
    pub source: String,
}

/// A party as the API and the console see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Party {
    pub id: PartyId,
    pub kind: PartyKind,
    pub name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_id: Option<PartyId>,
    pub stage: Stage,
    pub commercial_state_id: Option<CommercialStateId>,
    pub owner_id: Option<UserId>,
    pub city: Option<String>,
    pub zone: Option<String>,
    pub do_not_call: bool,
    pub notes: Option<String>,
    pub merged_into: Option<PartyId>,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub phones: Vec<Phone>,
    pub emails: Vec<Email>,
    pub sites: Vec<Site>,
    pub characteristics: BTreeMap<String, String>,
    pub consents: Vec<Consent>,
}

/// The short card for screen-pops and search results.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct PartyCard {
    pub id: PartyId,
    pub kind: PartyKind,
    pub name: String,
    pub stage: Stage,
    pub owner_id: Option<UserId>,
    pub city: Option<String>,
    pub do_not_call: bool,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct PhoneInput {
    pub number: String,
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct EmailInput {
    pub address: String,
    #[serde(default)]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ConsentInput {
    pub channel: String,
    pub granted: bool,
    pub source: String,
}

/// A new party as it arrives from outside: raw strings, validated by
/// [`Store::create_party`] into a [`ValidParty`].
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyInput {
    pub kind: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub company_id: Option<PartyId>,
    #[serde(default)]
    pub stage: Option<String>,
    #[serde(default)]
    pub commercial_state_id: Option<CommercialStateId>,
    #[serde(default)]
    pub owner_id: Option<UserId>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub do_not_call: Option<bool>,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(default)]
    pub phones: Vec<PhoneInput>,
    #[serde(default)]
    pub emails: Vec<EmailInput>,
    #[serde(default)]
    pub sites: Vec<Site>,
    #[serde(default)]
    pub characteristics: BTreeMap<String, String>,
    #[serde(default)]
    pub consents: Vec<ConsentInput>,
}

/// A change to a party. Absent fields are left alone; `phones`, `emails`,
/// `sites` and `characteristics` replace the whole set when present.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyPatch {
    /// The version the client read; a different current version is a conflict.
    pub version: i64,
    pub name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_id: Option<PartyId>,
    pub stage: Option<String>,
    pub commercial_state_id: Option<CommercialStateId>,
    pub owner_id: Option<UserId>,
    pub city: Option<String>,
    pub zone: Option<String>,
    pub do_not_call: Option<bool>,
    pub notes: Option<String>,
    pub phones: Option<Vec<PhoneInput>>,
    pub emails: Option<Vec<EmailInput>>,
    pub sites: Option<Vec<Site>>,
    pub characteristics: Option<BTreeMap<String, String>>,
}

/// A validated party, ready to store.
#[derive(Debug, Clone)]
pub struct ValidParty {
    pub kind: PartyKind,
    pub name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_id: Option<PartyId>,
    pub stage: Stage,
    pub commercial_state_id: Option<CommercialStateId>,
    pub owner_id: Option<UserId>,
    pub city: Option<String>,
    pub zone: Option<String>,
    pub do_not_call: bool,
    pub notes: Option<String>,
    pub phones: Vec<Phone>,
    pub emails: Vec<Email>,
    pub sites: Vec<Site>,
    pub characteristics: BTreeMap<String, String>,
    pub consents: Vec<(Channel, bool, String)>,
}

const MAX_TEXT: usize = 500;
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

pub(crate) fn parse_phones(inputs: &[PhoneInput], region: Region, p: &mut Problems) -> Vec<Phone> {
    let mut out: Vec<Phone> = Vec::new();
    for (i, ph) in inputs.iter().enumerate() {
        let number = p.check(&format!("phones[{i}].number"), PhoneNumber::parse(&ph.number, region));
        let kind = match &ph.kind {
            None => Some(PhoneKind::Other),
            Some(k) => p.check(&format!("phones[{i}].kind"), PhoneKind::parse(k)),
        };
        if let (Some(number), Some(kind)) = (number, kind) {
            if !out.iter().any(|o| o.number == number) {
                out.push(Phone { number, kind });
            }
        }
    }
    if inputs.len() > 20 {
        p.push("phones", "at most 20 phone numbers");
    }
    out
}

pub(crate) fn parse_emails(inputs: &[EmailInput], p: &mut Problems) -> Vec<Email> {
    let mut out: Vec<Email> = Vec::new();
    for (i, e) in inputs.iter().enumerate() {
        if let Some(address) = p.check(&format!("emails[{i}].address"), EmailAddress::parse(&e.address)) {
            let kind = e.kind.clone().unwrap_or_else(|| "other".into());
            if kind.len() > 30 {
                p.push(format!("emails[{i}].kind"), "at most 30 characters");
            } else if !out.iter().any(|o| o.address == address) {
                out.push(Email { address, kind });
            }
        }
    }
    if inputs.len() > 20 {
        p.push("emails", "at most 20 email addresses");
    }
    out
}

fn check_chars(chars: &BTreeMap<String, String>, p: &mut Problems) {
    if chars.len() > 100 {
        p.push("characteristics", "at most 100 characteristics");
    }
    for (k, v) in chars {
        if k.is_empty() || k.len() > 64 || !k.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
            p.push(format!("characteristics.{k}"), "keys are 1–64 letters, digits, _ or -");
        }
        if v.chars().count() > MAX_TEXT {
            p.push(format!("characteristics.{k}"), format!("at most {MAX_TEXT} characters"));
        }
    }
}

fn check_sites(sites: &[Site], p: &mut Problems) {
    for (i, s) in sites.iter().enumerate() {
        if s.label.trim().is_empty() || s.label.len() > 100 {
            p.push(format!("sites[{i}].label"), "1–100 characters");
        }
        for (f, v) in [("street", &s.street), ("city", &s.city), ("province", &s.province), ("postcode", &s.postcode), ("country", &s.country)] {
            if v.as_ref().is_some_and(|v| v.chars().count() > 200) {
                p.push(format!("sites[{i}].{f}"), "at most 200 characters");
            }
        }
    }
}

impl PartyInput {
    /// Parses every field, collecting all problems at once.
    pub fn validate(self, region: Region) -> Result<ValidParty> {
        let mut p = Problems::default();
        let kind = p.check("kind", PartyKind::parse(&self.kind));
        let stage = match &self.stage {
            None => Some(Stage::Lead),
            Some(s) => p.check("stage", Stage::parse(s)),
        };
        let first_name = clean("first_name", self.first_name, 100, &mut p);
        let last_name = clean("last_name", self.last_name, 100, &mut p);
        let mut name = clean("name", self.name, 200, &mut p);
        if name.is_none() && kind == Some(PartyKind::Person) {
            let joined = [first_name.as_deref(), last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
            if !joined.is_empty() {
                name = Some(joined);
            }
        }
        if name.is_none() {
            p.push("name", "required (or first_name/last_name for a person)");
        }
        if kind == Some(PartyKind::Company) && self.company_id.is_some() {
            p.push("company_id", "only a person can be the referent of a company");
        }
        let city = clean("city", self.city, 100, &mut p);
        let zone = clean("zone", self.zone, 100, &mut p);
        let notes = clean("notes", self.notes, MAX_NOTES, &mut p);
        let phones = parse_phones(&self.phones, region, &mut p);
        let emails = parse_emails(&self.emails, &mut p);
        check_sites(&self.sites, &mut p);
        check_chars(&self.characteristics, &mut p);
        let mut consents = Vec::new();
        for (i, c) in self.consents.iter().enumerate() {
            let ch = p.check(&format!("consents[{i}].channel"), Channel::parse(&c.channel));
            if c.source.trim().is_empty() || c.source.len() > 200 {
                p.push(format!("consents[{i}].source"), "1–200 characters");
            }
            if let Some(ch) = ch {
                consents.push((ch, c.granted, c.source.trim().to_string()));
            }
        }
        p.finish()?;
        Ok(ValidParty {
            kind: kind.unwrap_or(PartyKind::Person),
            name: name.unwrap_or_default(),
            first_name,
            last_name,
            company_id: self.company_id,
            stage: stage.unwrap_or(Stage::Lead),
            commercial_state_id: self.commercial_state_id,
            owner_id: self.owner_id,
            city,
            zone,
            do_not_call: self.do_not_call.unwrap_or(false),
            notes,
            phones,
            emails,
            sites: self.sites,
            characteristics: self.characteristics,
            consents,
        })
    }
}

/// Filters for listing parties. All optional; combined with AND.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct PartyQuery {
    /// Text in the name (case-insensitive), or a phone number, or an email.
    pub q: Option<String>,
    pub kind: Option<String>,
    pub stage: Option<String>,
    pub owner_id: Option<i64>,
    pub city: Option<String>,
    pub zone: Option<String>,
    pub commercial_state_id: Option<i64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
}

pub(crate) const CARD_COLS: &str = "p.id, p.kind, p.name, p.stage, p.owner_id, p.city, p.do_not_call";

pub(crate) fn card_from_row(r: &sqlx::any::AnyRow) -> Result<PartyCard> {
    Ok(PartyCard {
        id: PartyId(r.try_get("id")?),
        kind: PartyKind::parse(&r.try_get::<String, _>("kind")?).unwrap_or(PartyKind::Person),
        name: r.try_get("name")?,
        stage: Stage::parse(&r.try_get::<String, _>("stage")?).unwrap_or(Stage::Lead),
        owner_id: r.try_get::<Option<i64>, _>("owner_id")?.map(UserId),
        city: r.try_get("city")?,
        do_not_call: b(r.try_get("do_not_call")?),
    })
}

type Tx = sqlx::Transaction<'static, sqlx::Any>;

impl Store {
    /// Validates references that need the database (company, owner, state).
    async fn check_refs(&self, tx: &mut Tx, actor: &Actor, company: Option<PartyId>, owner: Option<UserId>, state: Option<CommercialStateId>) -> Result<()> {
        let mut p = Problems::default();
        if let Some(c) = company {
            let row = sqlx::query("SELECT kind FROM parties WHERE id = $1 AND merged_into IS NULL").bind(c.0).fetch_optional(&mut **tx).await?;
            match row {
                None => p.push("company_id", "no such party"),
                Some(r) if r.try_get::<String, _>("kind")? != "company" => p.push("company_id", "not a company"),
                _ => {}
            }
        }
        if let Some(o) = owner {
            if sqlx::query("SELECT 1 FROM users WHERE id = $1").bind(o.0).fetch_optional(&mut **tx).await?.is_none() {
                p.push("owner_id", "no such user");
            } else if o != actor.user && !actor.can(Permission::EditPartiesOfOthers) && !actor.sees(Some(o)) {
                p.push("owner_id", "you may not assign records to this user");
            }
        }
        if let Some(s) = state {
            if sqlx::query("SELECT 1 FROM commercial_states WHERE id = $1").bind(s.0).fetch_optional(&mut **tx).await?.is_none() {
                p.push("commercial_state_id", "no such commercial state");
            }
        }
        p.finish()
    }

    /// Creates a party with everything it holds.
    pub async fn create_party(&self, actor: &Actor, input: PartyInput) -> Result<Party> {
        let v = input.validate(self.region)?;
        let mut tx = self.begin().await?;
        self.check_refs(&mut tx, actor, v.company_id, v.owner_id, v.commercial_state_id).await?;
        let id = insert_party(&mut tx, actor, &v, now_ms()).await?;
        tx.commit().await?;
        self.get_party(actor, id).await
    }

    /// Loads a whole party, checking visibility.
    pub async fn get_party(&self, actor: &Actor, id: PartyId) -> Result<Party> {
        let mut conn = self.read.acquire().await?;
        let row = sqlx::query(
            "SELECT id, kind, name, first_name, last_name, company_id, stage, commercial_state_id, owner_id, city, zone, \
             do_not_call, notes, merged_into, version, created_at, updated_at FROM parties WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound("party"))?;
        let owner_id = row.try_get::<Option<i64>, _>("owner_id")?.map(UserId);
        actor.check_sees(owner_id)?;
        let phones = sqlx::query("SELECT e164, kind FROM party_phones WHERE party_id = $1 ORDER BY position, id")
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .filter_map(|r| {
                Some(Phone {
                    number: PhoneNumber::from_e164(&r.try_get::<String, _>("e164").ok()?).ok()?,
                    kind: PhoneKind::parse(&r.try_get::<String, _>("kind").ok()?).unwrap_or(PhoneKind::Other),
                })
            })
            .collect();
        let emails = sqlx::query("SELECT email, kind FROM party_emails WHERE party_id = $1 ORDER BY position, id")
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .filter_map(|r| {
                Some(Email { address: EmailAddress::parse(&r.try_get::<String, _>("email").ok()?).ok()?, kind: r.try_get("kind").ok()? })
            })
            .collect();
        let sites = sqlx::query("SELECT label, street, city, province, postcode, country FROM party_sites WHERE party_id = $1 ORDER BY id")
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                Ok(Site {
                    label: r.try_get("label")?,
                    street: r.try_get("street")?,
                    city: r.try_get("city")?,
                    province: r.try_get("province")?,
                    postcode: r.try_get("postcode")?,
                    country: r.try_get("country")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let characteristics = sqlx::query("SELECT key, value FROM party_chars WHERE party_id = $1")
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("key")?, r.try_get("value")?)))
            .collect::<Result<BTreeMap<String, String>>>()?;
        let consents = sqlx::query("SELECT channel, granted, at, source FROM party_consents WHERE party_id = $1 ORDER BY channel")
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .filter_map(|r| {
                Some(Consent {
                    channel: Channel::parse(&r.try_get::<String, _>("channel").ok()?).ok()?,
                    granted: b(r.try_get("granted").ok()?),
                    at: r.try_get("at").ok()?,
                    source: r.try_get("source").ok()?,
                })
            })
            .collect();
        Ok(Party {
            id,
            kind: PartyKind::parse(&row.try_get::<String, _>("kind")?).unwrap_or(PartyKind::Person),
            name: row.try_get("name")?,
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            company_id: row.try_get::<Option<i64>, _>("company_id")?.map(PartyId),
            stage: Stage::parse(&row.try_get::<String, _>("stage")?).unwrap_or(Stage::Lead),
            commercial_state_id: row.try_get::<Option<i64>, _>("commercial_state_id")?.map(CommercialStateId),
            owner_id,
            city: row.try_get("city")?,
            zone: row.try_get("zone")?,
            do_not_call: b(row.try_get("do_not_call")?),
            notes: row.try_get("notes")?,
            merged_into: row.try_get::<Option<i64>, _>("merged_into")?.map(PartyId),
            version: row.try_get("version")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            phones,
            emails,
            sites,
            characteristics,
            consents,
        })
    }

    /// Applies a patch under optimistic concurrency.
    pub async fn update_party(&self, actor: &Actor, id: PartyId, patch: PartyPatch) -> Result<Party> {
        let cur = self.get_party(actor, id).await?;
        if cur.owner_id.is_some() && cur.owner_id != Some(actor.user) && !actor.sees(cur.owner_id) {
            return Err(Error::Forbidden);
        }
        if cur.version != patch.version {
            return Err(Error::Conflict);
        }
        let mut p = Problems::default();
        let name = match patch.name {
            Some(n) => {
                let n = clean("name", Some(n), 200, &mut p);
                if n.is_none() && p.0.is_empty() {
                    p.push("name", "may not be empty");
                }
                n.unwrap_or(cur.name.clone())
            }
            None => cur.name.clone(),
        };
        let first_name = if patch.first_name.is_some() { clean("first_name", patch.first_name, 100, &mut p) } else { cur.first_name.clone() };
        let last_name = if patch.last_name.is_some() { clean("last_name", patch.last_name, 100, &mut p) } else { cur.last_name.clone() };
        let stage = match patch.stage {
            Some(s) => p.check("stage", Stage::parse(&s)).unwrap_or(cur.stage),
            None => cur.stage,
        };
        let city = if patch.city.is_some() { clean("city", patch.city, 100, &mut p) } else { cur.city.clone() };
        let zone = if patch.zone.is_some() { clean("zone", patch.zone, 100, &mut p) } else { cur.zone.clone() };
        let notes = if patch.notes.is_some() { clean("notes", patch.notes, MAX_NOTES, &mut p) } else { cur.notes.clone() };
        let phones = patch.phones.as_ref().map(|ph| parse_phones(ph, self.region, &mut p));
        let emails = patch.emails.as_ref().map(|e| parse_emails(e, &mut p));
        if let Some(s) = &patch.sites {
            check_sites(s, &mut p);
        }
        if let Some(c) = &patch.characteristics {
            check_chars(c, &mut p);
        }
        if cur.kind == PartyKind::Company && patch.company_id.is_some() {
            p.push("company_id", "only a person can be the referent of a company");
        }
        if patch.company_id == Some(id) {
            p.push("company_id", "a party cannot be its own company");
        }
        p.finish()?;
        let company_id = patch.company_id.or(cur.company_id);
        let owner_id = patch.owner_id.or(cur.owner_id);
        let state = patch.commercial_state_id.or(cur.commercial_state_id);
        let do_not_call = patch.do_not_call.unwrap_or(cur.do_not_call);

        let mut tx = self.begin().await?;
        self.check_refs(
            &mut tx,
            actor,
            patch.company_id,
            patch.owner_id.filter(|o| Some(*o) != cur.owner_id),
            patch.commercial_state_id,
        )
        .await?;
        let now = now_ms();
        let n = sqlx::query(
            "UPDATE parties SET name = $1, first_name = $2, last_name = $3, company_id = $4, stage = $5, commercial_state_id = $6, \
             owner_id = $7, city = $8, zone = $9, do_not_call = $10, notes = $11, version = version + 1, updated_at = $12 \
             WHERE id = $13 AND version = $14",
        )
        .bind(&name)
        .bind(&first_name)
        .bind(&last_name)
        .bind(company_id.map(|c| c.0))
        .bind(stage.as_str())
        .bind(state.map(|s| s.0))
        .bind(owner_id.map(|o| o.0))
        .bind(&city)
        .bind(&zone)
        .bind(do_not_call as i64)
        .bind(&notes)
        .bind(now)
        .bind(id.0)
        .bind(patch.version)
        .execute(&mut *tx)
        .await?;
        if n.rows_affected() == 0 {
            return Err(Error::Conflict);
        }
        let mut ch = serde_json::Map::new();
        crate::oplog::diff(&mut ch, "name", &cur.name, &name);
        crate::oplog::diff(&mut ch, "first_name", &cur.first_name, &first_name);
        crate::oplog::diff(&mut ch, "last_name", &cur.last_name, &last_name);
        crate::oplog::diff(&mut ch, "company_id", &cur.company_id, &company_id);
        crate::oplog::diff(&mut ch, "stage", &cur.stage, &stage);
        crate::oplog::diff(&mut ch, "commercial_state_id", &cur.commercial_state_id, &state);
        crate::oplog::diff(&mut ch, "owner_id", &cur.owner_id, &owner_id);
        crate::oplog::diff(&mut ch, "city", &cur.city, &city);
        crate::oplog::diff(&mut ch, "zone", &cur.zone, &zone);
        crate::oplog::diff(&mut ch, "do_not_call", &cur.do_not_call, &do_not_call);
        crate::oplog::diff(&mut ch, "notes", &cur.notes, &notes);
        if let Some(phones) = phones {
            crate::oplog::diff(&mut ch, "phones", &cur.phones, &phones);
            sqlx::query("DELETE FROM party_phones WHERE party_id = $1").bind(id.0).execute(&mut *tx).await?;
            insert_phones(&mut tx, id, &phones).await?;
        }
        if let Some(emails) = emails {
            crate::oplog::diff(&mut ch, "emails", &cur.emails, &emails);
            sqlx::query("DELETE FROM party_emails WHERE party_id = $1").bind(id.0).execute(&mut *tx).await?;
            insert_emails(&mut tx, id, &emails).await?;
        }
        if let Some(sites) = patch.sites {
            crate::oplog::diff(&mut ch, "sites", &cur.sites, &sites);
            sqlx::query("DELETE FROM party_sites WHERE party_id = $1").bind(id.0).execute(&mut *tx).await?;
            insert_sites(&mut tx, id, &sites).await?;
        }
        if let Some(chars) = patch.characteristics {
            crate::oplog::diff(&mut ch, "characteristics", &cur.characteristics, &chars);
            sqlx::query("DELETE FROM party_chars WHERE party_id = $1").bind(id.0).execute(&mut *tx).await?;
            insert_chars(&mut tx, id, &chars).await?;
        }
        crate::oplog::record(&mut tx, actor, "party", id.0, "update", &serde_json::Value::Object(ch)).await?;
        tx.commit().await?;
        self.get_party(actor, id).await
    }

    /// Deletes a party and its children. Parties referenced by deals,
    /// activities or other records cannot be deleted (merge them instead).
    pub async fn delete_party(&self, actor: &Actor, id: PartyId) -> Result<()> {
        let cur = self.get_party(actor, id).await?;
        if cur.owner_id != Some(actor.user) && !actor.can(Permission::EditPartiesOfOthers) && cur.owner_id.is_some() {
            return Err(Error::Forbidden);
        }
        let mut tx = self.begin().await?;
        let r = sqlx::query("DELETE FROM parties WHERE id = $1").bind(id.0).execute(&mut *tx).await;
        match r {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(Error::Duplicate("the party is referenced by other records; merge it instead".into()));
            }
            Err(e) => return Err(e.into()),
        }
        crate::oplog::record(&mut tx, actor, "party", id.0, "delete", &serde_json::json!({"name": cur.name})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// "Who is calling?": the parties that own this number, most recently
    /// updated first. No actor: the caller (the screen-pop router) decides
    /// which consoles may receive the card.
    pub async fn lookup_by_phone(&self, number: &PhoneNumber) -> Result<Vec<PartyCard>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CARD_COLS} FROM party_phones ph JOIN parties p ON p.id = ph.party_id \
             WHERE ph.e164 = $1 AND p.merged_into IS NULL ORDER BY p.updated_at DESC LIMIT 10"
        )))
        .bind(number.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(card_from_row).collect()
    }

    /// "Who wrote?": the parties with this email address.
    pub async fn lookup_by_email(&self, email: &EmailAddress) -> Result<Vec<PartyCard>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CARD_COLS} FROM party_emails em JOIN parties p ON p.id = em.party_id \
             WHERE em.email = $1 AND p.merged_into IS NULL ORDER BY p.updated_at DESC LIMIT 10"
        )))
        .bind(email.as_str())
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(card_from_row).collect()
    }

    /// Lists parties visible to the actor, filtered and paginated.
    pub async fn search_parties(&self, actor: &Actor, q: &PartyQuery) -> Result<Page<PartyCard>> {
        let mut p = Problems::default();
        let limit = q.limit.unwrap_or(50);
        let offset = q.offset.unwrap_or(0);
        if !(1..=500).contains(&limit) {
            p.push("limit", "between 1 and 500");
        }
        if offset < 0 {
            p.push("offset", "not negative");
        }
        let kind = q.kind.as_deref().map(|k| p.check("kind", PartyKind::parse(k)));
        let stage = q.stage.as_deref().map(|s| p.check("stage", Stage::parse(s)));
        p.finish()?;
        let mut conds = vec!["p.merged_into IS NULL".to_string(), actor.owner_filter("p.owner_id")];
        let mut binds: Vec<String> = Vec::new();
        let mut ibinds: Vec<i64> = Vec::new();
        let push = |conds: &mut Vec<String>, binds: &mut Vec<String>, sql: &str, v: String| {
            binds.push(v);
            conds.push(sql.replace("?", &format!("${}", binds.len())));
        };
        if let Some(text) = q.q.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            if let Ok(ph) = PhoneNumber::parse(text, self.region) {
                push(&mut conds, &mut binds, "p.id IN (SELECT party_id FROM party_phones WHERE e164 = ?)", ph.as_str().to_string());
            } else if let Ok(em) = EmailAddress::parse(text) {
                push(&mut conds, &mut binds, "p.id IN (SELECT party_id FROM party_emails WHERE email = ?)", em.as_str().to_string());
            } else {
                let pat = format!("%{}%", text.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_"));
                push(&mut conds, &mut binds, "LOWER(p.name) LIKE ? ESCAPE '\\'", pat);
            }
        }
        if let Some(Some(k)) = kind {
            push(&mut conds, &mut binds, "p.kind = ?", k.as_str().into());
        }
        if let Some(Some(s)) = stage {
            push(&mut conds, &mut binds, "p.stage = ?", s.as_str().into());
        }
        if let Some(c) = &q.city {
            push(&mut conds, &mut binds, "LOWER(p.city) = ?", c.trim().to_lowercase());
        }
        if let Some(z) = &q.zone {
            push(&mut conds, &mut binds, "p.zone = ?", z.trim().to_string());
        }
        let n = binds.len();
        if let Some(o) = q.owner_id {
            ibinds.push(o);
            conds.push(format!("p.owner_id = ${}", n + ibinds.len()));
        }
        if let Some(s) = q.commercial_state_id {
            ibinds.push(s);
            conds.push(format!("p.commercial_state_id = ${}", n + ibinds.len()));
        }
        let where_ = conds.join(" AND ");
        let count_sql = format!("SELECT COUNT(*) AS n FROM parties p WHERE {where_}");
        let list_sql = format!(
            "SELECT {CARD_COLS} FROM parties p WHERE {where_} ORDER BY p.name, p.id LIMIT {limit} OFFSET {offset}"
        );
        let mut cq = sqlx::query(sqlx::AssertSqlSafe(count_sql.clone()));
        let mut lq = sqlx::query(sqlx::AssertSqlSafe(list_sql.clone()));
        for v in &binds {
            cq = cq.bind(v.clone());
            lq = lq.bind(v.clone());
        }
        for v in &ibinds {
            cq = cq.bind(*v);
            lq = lq.bind(*v);
        }
        let total: i64 = cq.fetch_one(&self.read).await?.try_get("n")?;
        let items = lq.fetch_all(&self.read).await?.iter().map(card_from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page { items, total, limit, offset })
    }

    /// Records a consent decision for one channel, with its time and source.
    pub async fn set_consent(&self, actor: &Actor, id: PartyId, channel: Channel, granted: bool, source: &str) -> Result<()> {
        let cur = self.get_party(actor, id).await?;
        if source.trim().is_empty() || source.len() > 200 {
            return Err(Error::invalid("source", "1–200 characters"));
        }
        let mut tx = self.begin().await?;
        upsert_consent(&mut tx, id, channel, granted, now_ms(), source.trim()).await?;
        sqlx::query("UPDATE parties SET version = version + 1, updated_at = $1 WHERE id = $2").bind(now_ms()).bind(id.0).execute(&mut *tx).await?;
        let old = cur.consents.iter().find(|c| c.channel == channel).map(|c| c.granted);
        crate::oplog::record(&mut tx, actor, "party", id.0, "consent", &serde_json::json!({ channel.as_str(): [old, granted], "source": source.trim() })).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether a party has granted consent on a channel (absent = no).
    pub async fn has_consent(&self, id: PartyId, channel: Channel) -> Result<bool> {
        let row = sqlx::query("SELECT granted FROM party_consents WHERE party_id = $1 AND channel = $2")
            .bind(id.0)
            .bind(channel.as_str())
            .fetch_optional(&self.read)
            .await?;
        Ok(match row {
            Some(r) => b(r.try_get("granted")?),
            None => false,
        })
    }

    /// Lists commercial states (configurable; seed 004).
    pub async fn commercial_states(&self) -> Result<Vec<(CommercialStateId, String)>> {
        let rows = sqlx::query("SELECT id, name FROM commercial_states ORDER BY position, id").fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok((CommercialStateId(r.try_get("id")?), r.try_get("name")?))).collect()
    }

    /// Creates a commercial state, or returns the existing one of that name.
    pub async fn ensure_commercial_state(&self, actor: &Actor, name: &str) -> Result<CommercialStateId> {
        actor.require(Permission::ConfigureOutcomes)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::invalid("name", "1–100 characters"));
        }
        let mut tx = self.begin().await?;
        if let Some(r) = sqlx::query("SELECT id FROM commercial_states WHERE name = $1").bind(name).fetch_optional(&mut *tx).await? {
            return Ok(CommercialStateId(r.try_get("id")?));
        }
        let pos: i64 = sqlx::query("SELECT COUNT(*) AS n FROM commercial_states").fetch_one(&mut *tx).await?.try_get("n")?;
        let r = sqlx::query("INSERT INTO commercial_states (name, position) VALUES ($1, $2) RETURNING id").bind(name).bind(pos).fetch_one(&mut *tx).await?;
        tx.commit().await?;
        Ok(CommercialStateId(r.try_get("id")?))
    }
}

/// Inserts a validated party and its children inside `tx`; logs it.
pub(crate) async fn insert_party(tx: &mut Tx, actor: &Actor, v: &ValidParty, now: Millis) -> Result<PartyId> {
    let row = sqlx::query(
        "INSERT INTO parties (kind, name, first_name, last_name, company_id, stage, commercial_state_id, owner_id, city, zone, \
         do_not_call, notes, version, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,1,$13,$13) RETURNING id",
    )
    .bind(v.kind.as_str())
    .bind(&v.name)
    .bind(&v.first_name)
    .bind(&v.last_name)
    .bind(v.company_id.map(|c| c.0))
    .bind(v.stage.as_str())
    .bind(v.commercial_state_id.map(|c| c.0))
    .bind(v.owner_id.map(|o| o.0))
    .bind(&v.city)
    .bind(&v.zone)
    .bind(v.do_not_call as i64)
    .bind(&v.notes)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let id = PartyId(row.try_get("id")?);
    insert_phones(tx, id, &v.phones).await?;
    insert_emails(tx, id, &v.emails).await?;
    insert_sites(tx, id, &v.sites).await?;
    insert_chars(tx, id, &v.characteristics).await?;
    for (ch, granted, source) in &v.consents {
        upsert_consent(tx, id, *ch, *granted, now, source).await?;
    }
    crate::oplog::record(tx, actor, "party", id.0, "create", &serde_json::json!({"name": v.name, "kind": v.kind})).await?;
    Ok(id)
}

pub(crate) async fn insert_phones(tx: &mut Tx, id: PartyId, phones: &[Phone]) -> Result<()> {
    for (i, ph) in phones.iter().enumerate() {
        sqlx::query("INSERT INTO party_phones (party_id, e164, kind, position) VALUES ($1, $2, $3, $4)")
            .bind(id.0)
            .bind(ph.number.as_str())
            .bind(ph.kind.as_str())
            .bind(i as i64)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn insert_emails(tx: &mut Tx, id: PartyId, emails: &[Email]) -> Result<()> {
    for (i, e) in emails.iter().enumerate() {
        sqlx::query("INSERT INTO party_emails (party_id, email, kind, position) VALUES ($1, $2, $3, $4)")
            .bind(id.0)
            .bind(e.address.as_str())
            .bind(&e.kind)
            .bind(i as i64)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn insert_sites(tx: &mut Tx, id: PartyId, sites: &[Site]) -> Result<()> {
    for s in sites {
        sqlx::query("INSERT INTO party_sites (party_id, label, street, city, province, postcode, country) VALUES ($1,$2,$3,$4,$5,$6,$7)")
            .bind(id.0)
            .bind(s.label.trim())
            .bind(&s.street)
            .bind(&s.city)
            .bind(&s.province)
            .bind(&s.postcode)
            .bind(&s.country)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn insert_chars(tx: &mut Tx, id: PartyId, chars: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in chars {
        sqlx::query("INSERT INTO party_chars (party_id, key, value) VALUES ($1, $2, $3)").bind(id.0).bind(k).bind(v).execute(&mut **tx).await?;
    }
    Ok(())
}

pub(crate) async fn upsert_consent(tx: &mut Tx, id: PartyId, ch: Channel, granted: bool, at: Millis, source: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO party_consents (party_id, channel, granted, at, source) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (party_id, channel) DO UPDATE SET granted = excluded.granted, at = excluded.at, source = excluded.source",
    )
    .bind(id.0)
    .bind(ch.as_str())
    .bind(granted as i64)
    .bind(at)
    .bind(source)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
