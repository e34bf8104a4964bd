//! De-duplication of parties (seed 003): finding candidates and merging them.
//!
//! Two parties are candidate duplicates when they share a phone number
//! (E.164), share an email address, or have similar names in the same city.
//! Names are compared after [`normalise_name`] (case, accents, punctuation,
//! and for persons word order; for companies legal forms such as "S.r.l."),
//! with Jaro-Winkler similarity from `strsim` at or above
//! [`NAME_SIMILARITY`]. Pairs a person dismissed as "not the same" are not
//! proposed again.
//!
//! [`Store::merge_parties`] folds victims into a survivor in one transaction:
//! every child row and every record that points at a victim moves to the
//! survivor, the victims keep their row with `merged_into` set (so old links
//! resolve), and the operation log records it. Tables of other modules that
//! refer to parties are listed in [`PARTY_REF_TABLES`]; the merge moves the
//! rows of those that exist in the schema, so it works before and after
//! their migrations land.

use crate::auth::{Actor, Permission};
use crate::error::{Error, Result};
use crate::parties::{CARD_COLS, Party, PartyCard, card_from_row};
use crate::store::{Backend, Store};
use crate::types::*;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};

/// Jaro-Winkler similarity of normalised names at or above which two parties
/// in the same city are candidates.
pub const NAME_SIMILARITY: f64 = 0.9;

/// Tables, other than the party's own children, whose `party_id` column
/// points at a party and must follow a merge. Add new ones here (tickets,
/// call records…); a table or column not (yet) in the schema is skipped.
pub const PARTY_REF_TABLES: &[&str] = &["deals", "activities", "tickets", "call_records", "messages", "campaign_leads"];

/// Why two parties look like the same one.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum MatchReason {
    SamePhone { number: PhoneNumber },
    SameEmail { address: EmailAddress },
    SimilarName { score: f64 },
}

/// A party that may be the same as the one asked about.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DuplicateCandidate {
    pub party: PartyCard,
    pub reasons: Vec<MatchReason>,
}

/// A pair found by the scan; `a.id < b.id`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DuplicatePair {
    pub a: PartyCard,
    pub b: PartyCard,
    pub reasons: Vec<MatchReason>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanOptions {
    /// At most this many pairs (default 500, at most 10,000).
    #[serde(default)]
    pub limit: Option<usize>,
    /// Compare names within cities (slower than phones and emails); default true.
    #[serde(default)]
    pub names: Option<bool>,
}

/// Company legal forms that say nothing about which company it is.
const LEGAL_FORMS: &[&str] = &[
    "srl", "srls", "spa", "snc", "sas", "sapa", "scarl", "scrl", "soc", "coop", "ltd", "llc", "inc", "corp", "co", "gmbh", "ag", "sa", "sl", "bv",
    "nv", "plc", "sarl", "eurl",
];

/// Folds the accented Latin letters of European names to ASCII; other
/// characters pass through.
fn fold_char(c: char) -> &'static str {
    match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'č' => "c",
        'ď' | 'đ' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => "e",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' | 'ı' => "i",
        'ñ' | 'ń' | 'ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => "o",
        'œ' => "oe",
        'ř' => "r",
        'ś' | 'š' | 'ş' => "s",
        'ß' => "ss",
        'ť' | 'ţ' => "t",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ų' => "u",
        'ý' | 'ÿ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        'ł' => "l",
        _ => "",
    }
}

/// The comparable form of a name: lower case, accents folded, apostrophes
/// and dots dropped (`D'Amico` = `damico`, `S.p.A.` = `spa`), other
/// punctuation a word break. Persons' words are sorted, so "Rossi Mario" =
/// "Mario Rossi"; companies lose their legal form.
pub fn normalise_name(kind: PartyKind, name: &str) -> String {
    let mut s = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        let folded = fold_char(c);
        if !folded.is_empty() {
            s.push_str(folded);
        } else if c.is_alphanumeric() {
            s.push(c);
        } else if matches!(c, '\'' | '’' | '.' | '`' | '´') {
            // Dropped, joining the letters around it.
        } else {
            s.push(' ');
        }
    }
    let mut words: Vec<&str> = s.split_whitespace().collect();
    match kind {
        PartyKind::Person => words.sort_unstable(),
        PartyKind::Company => {
            if words.len() > 1 {
                words.retain(|w| !LEGAL_FORMS.contains(w));
            }
        }
    }
    words.join(" ")
}

/// Similarity of two normalised names, 0 to 1.
pub fn name_similarity(a: &str, b: &str) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    strsim::jaro_winkler(a, b)
}

fn add_reason(map: &mut BTreeMap<i64, Vec<MatchReason>>, id: i64, r: MatchReason) {
    let v = map.entry(id).or_default();
    if !v.contains(&r) {
        v.push(r);
    }
}

fn ordered(a: i64, b: i64) -> (i64, i64) {
    if a < b { (a, b) } else { (b, a) }
}

type Tx = crate::import::Tx;

/// Whether `table` has a `party_id` column in the current schema.
async fn has_party_ref(tx: &mut Tx, backend: Backend, table: &str) -> Result<bool> {
    let row = match backend {
        Backend::Sqlite => sqlx::query("SELECT 1 AS x FROM pragma_table_info($1) WHERE name = 'party_id'").bind(table).fetch_optional(&mut **tx).await?,
        Backend::Postgres => {
            sqlx::query(
                "SELECT 1 AS x FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND column_name = 'party_id'",
            )
            .bind(table)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    Ok(row.is_some())
}

impl Store {
    async fn cards(&self, actor: &Actor, ids: &[i64]) -> Result<HashMap<i64, PartyCard>> {
        let mut out = HashMap::new();
        for part in ids.chunks(5_000) {
            let sql = format!(
                "SELECT {CARD_COLS} FROM parties p WHERE p.merged_into IS NULL AND {} AND p.id IN ({})",
                actor.owner_filter("p.owner_id"),
                crate::import::in_list(self.backend, part.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in part {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.read).await? {
                let c = card_from_row(&r)?;
                out.insert(c.id.0, c);
            }
        }
        Ok(out)
    }

    async fn dismissed(&self) -> Result<std::collections::HashSet<(i64, i64)>> {
        let rows = sqlx::query("SELECT party_a, party_b FROM dedup_dismissals").fetch_all(&self.read).await?;
        rows.iter().map(|r| Ok((r.try_get("party_a")?, r.try_get("party_b")?))).collect()
    }

    /// Parties that may be the same as `id`, visible to the actor, best
    /// first (more reasons, then higher name similarity).
    pub async fn duplicate_candidates(&self, actor: &Actor, id: PartyId) -> Result<Vec<DuplicateCandidate>> {
        let me = self.get_party(actor, id).await?;
        if me.merged_into.is_some() {
            return Err(Error::NotFound("party"));
        }
        let mut found: BTreeMap<i64, Vec<MatchReason>> = BTreeMap::new();
        let rows = sqlx::query(
            "SELECT DISTINCT b.party_id AS id, b.e164 AS v FROM party_phones a JOIN party_phones b ON b.e164 = a.e164 AND b.party_id <> a.party_id \
             WHERE a.party_id = $1",
        )
        .bind(id.0)
        .fetch_all(&self.read)
        .await?;
        for r in rows {
            if let Ok(n) = PhoneNumber::from_e164(&r.try_get::<String, _>("v")?) {
                add_reason(&mut found, r.try_get("id")?, MatchReason::SamePhone { number: n });
            }
        }
        let rows = sqlx::query(
            "SELECT DISTINCT b.party_id AS id, b.email AS v FROM party_emails a JOIN party_emails b ON b.email = a.email AND b.party_id <> a.party_id \
             WHERE a.party_id = $1",
        )
        .bind(id.0)
        .fetch_all(&self.read)
        .await?;
        for r in rows {
            if let Ok(e) = EmailAddress::parse(&r.try_get::<String, _>("v")?) {
                add_reason(&mut found, r.try_get("id")?, MatchReason::SameEmail { address: e });
            }
        }
        if let Some(city) = me.city.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
            let mine = normalise_name(me.kind, &me.name);
            let rows = sqlx::query("SELECT id, name FROM parties WHERE LOWER(city) = $1 AND kind = $2 AND id <> $3 AND merged_into IS NULL")
                .bind(city.to_lowercase())
                .bind(me.kind.as_str())
                .bind(id.0)
                .fetch_all(&self.read)
                .await?;
            for r in rows {
                let score = name_similarity(&mine, &normalise_name(me.kind, &r.try_get::<String, _>("name")?));
                if score >= NAME_SIMILARITY {
                    add_reason(&mut found, r.try_get("id")?, MatchReason::SimilarName { score });
                }
            }
        }
        let dismissed = self.dismissed().await?;
        found.retain(|other, _| !dismissed.contains(&ordered(id.0, *other)));
        let ids: Vec<i64> = found.keys().copied().collect();
        let cards = self.cards(actor, &ids).await?;
        let mut out: Vec<DuplicateCandidate> =
            found.into_iter().filter_map(|(other, reasons)| cards.get(&other).map(|c| DuplicateCandidate { party: c.clone(), reasons })).collect();
        out.sort_by(|x, y| y.reasons.len().cmp(&x.reasons.len()).then(best_score(&y.reasons).total_cmp(&best_score(&x.reasons))).then(x.party.id.cmp(&y.party.id)));
        Ok(out)
    }

    /// Scans the parties visible to the actor for candidate pairs: shared
    /// phones and emails by join, similar names city by city. Names are
    /// compared only within a block of the same city, kind and first letter
    /// of the normalised name, which keeps the scan near-linear on large
    /// cities at the price of missing typos in the first letter.
    pub async fn scan_duplicates(&self, actor: &Actor, opts: &ScanOptions) -> Result<Vec<DuplicatePair>> {
        actor.require(Permission::MergeParties)?;
        let limit = opts.limit.unwrap_or(500);
        if !(1..=10_000).contains(&limit) {
            return Err(Error::invalid("limit", "between 1 and 10000"));
        }
        let dismissed = self.dismissed().await?;
        let mut pairs: BTreeMap<(i64, i64), Vec<MatchReason>> = BTreeMap::new();
        let vis = format!("{} AND {}", actor.owner_filter("pa.owner_id"), actor.owner_filter("pb.owner_id"));
        for (table, col) in [("party_phones", "e164"), ("party_emails", "email")] {
            let sql = format!(
                "SELECT DISTINCT x.party_id AS a, y.party_id AS b, x.{col} AS v FROM {table} x \
                 JOIN {table} y ON y.{col} = x.{col} AND y.party_id > x.party_id \
                 JOIN parties pa ON pa.id = x.party_id JOIN parties pb ON pb.id = y.party_id \
                 WHERE pa.merged_into IS NULL AND pb.merged_into IS NULL AND {vis} ORDER BY a, b LIMIT $1"
            );
            let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind((limit * 4) as i64).fetch_all(&self.read).await?;
            for r in rows {
                let key: (i64, i64) = (r.try_get("a")?, r.try_get("b")?);
                let v: String = r.try_get("v")?;
                let reason = if table == "party_phones" {
                    PhoneNumber::from_e164(&v).ok().map(|number| MatchReason::SamePhone { number })
                } else {
                    EmailAddress::parse(&v).ok().map(|address| MatchReason::SameEmail { address })
                };
                if let Some(reason) = reason {
                    pairs.entry(key).or_default().push(reason);
                }
            }
        }
        if opts.names.unwrap_or(true) {
            let sql = format!(
                "SELECT LOWER(p.city) AS c FROM parties p WHERE p.merged_into IS NULL AND p.city IS NOT NULL AND {} \
                 GROUP BY LOWER(p.city) HAVING COUNT(*) > 1 ORDER BY c",
                actor.owner_filter("p.owner_id")
            );
            let cities = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_all(&self.read).await?;
            'cities: for c in cities {
                let city: String = c.try_get("c")?;
                let sql = format!(
                    "SELECT p.id, p.kind, p.name FROM parties p WHERE LOWER(p.city) = $1 AND p.merged_into IS NULL AND {} ORDER BY p.id",
                    actor.owner_filter("p.owner_id")
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&city).fetch_all(&self.read).await?;
                let mut blocks: HashMap<(String, char), Vec<(i64, String)>> = HashMap::new();
                for r in rows {
                    let kind = PartyKind::parse(&r.try_get::<String, _>("kind")?).unwrap_or(PartyKind::Person);
                    let norm = normalise_name(kind, &r.try_get::<String, _>("name")?);
                    let Some(first) = norm.chars().next() else { continue };
                    blocks.entry((kind.as_str().to_string(), first)).or_default().push((r.try_get("id")?, norm));
                }
                for block in blocks.values() {
                    for (i, (a, na)) in block.iter().enumerate() {
                        for (b, nb) in &block[i + 1..] {
                            let score = name_similarity(na, nb);
                            if score >= NAME_SIMILARITY {
                                pairs.entry(ordered(*a, *b)).or_default().push(MatchReason::SimilarName { score });
                                if pairs.len() >= limit * 4 {
                                    break 'cities;
                                }
                            }
                        }
                    }
                }
            }
        }
        pairs.retain(|k, _| !dismissed.contains(k));
        let mut ids: Vec<i64> = pairs.keys().flat_map(|(a, b)| [*a, *b]).collect();
        ids.sort_unstable();
        ids.dedup();
        let cards = self.cards(actor, &ids).await?;
        let mut out: Vec<DuplicatePair> = pairs
            .into_iter()
            .filter_map(|((a, b), reasons)| Some(DuplicatePair { a: cards.get(&a)?.clone(), b: cards.get(&b)?.clone(), reasons }))
            .collect();
        out.sort_by(|x, y| y.reasons.len().cmp(&x.reasons.len()).then(x.a.id.cmp(&y.a.id)).then(x.b.id.cmp(&y.b.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// Records that two parties are not the same, so neither the candidates
    /// nor the scan propose the pair again.
    pub async fn dismiss_duplicate(&self, actor: &Actor, a: PartyId, b: PartyId) -> Result<()> {
        actor.require(Permission::MergeParties)?;
        if a == b {
            return Err(Error::invalid("b", "a party is always the same as itself"));
        }
        self.get_party(actor, a).await?;
        self.get_party(actor, b).await?;
        let (x, y) = ordered(a.0, b.0);
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO dedup_dismissals (party_a, party_b, actor_id, at) VALUES ($1, $2, $3, $4) ON CONFLICT (party_a, party_b) DO NOTHING")
            .bind(x)
            .bind(y)
            .bind(actor.log_id())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        crate::oplog::record(&mut tx, actor, "party", x, "not-duplicate", &serde_json::json!({"other": y})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Merges `victims` into `survivor`, all in one transaction:
    /// - phones and emails move unless the survivor already has them;
    /// - sites move; characteristics move, the survivor's value winning on
    ///   the same key; consents move, the most recent decision per channel
    ///   winning;
    /// - empty fields of the survivor are filled from the victims, in the
    ///   order given; the stage becomes the most advanced of all; the party
    ///   becomes do-not-call if any of them was;
    /// - deals, activities and the other [`PARTY_REF_TABLES`], list
    ///   memberships, referents of a merged company and parties merged into
    ///   a victim earlier all point at the survivor;
    /// - each victim keeps its row, with `merged_into` set.
    pub async fn merge_parties(&self, actor: &Actor, survivor: PartyId, victims: &[PartyId]) -> Result<Party> {
        actor.require(Permission::MergeParties)?;
        let mut unique: Vec<PartyId> = Vec::new();
        for v in victims {
            if *v == survivor {
                return Err(Error::invalid("victims", "the survivor cannot be merged into itself"));
            }
            if !unique.contains(v) {
                unique.push(*v);
            }
        }
        if unique.is_empty() {
            return Err(Error::invalid("victims", "name at least one party to merge"));
        }
        let surv = self.get_party(actor, survivor).await?;
        if surv.merged_into.is_some() {
            return Err(Error::invalid("survivor", "already merged into another party"));
        }
        let mut vics = Vec::new();
        for v in &unique {
            let p = self.get_party(actor, *v).await?;
            if p.merged_into.is_some() {
                return Err(Error::invalid("victims", format!("party {v} is already merged into another party")));
            }
            if p.kind != surv.kind {
                return Err(Error::invalid("victims", format!("party {v} is a {} and the survivor a {}", p.kind, surv.kind)));
            }
            vics.push(p);
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        // Optimistic check: nobody merged or changed these while we read them.
        for p in std::iter::once(&surv).chain(vics.iter()) {
            let r = sqlx::query("SELECT version, merged_into FROM parties WHERE id = $1").bind(p.id.0).fetch_one(&mut *tx).await?;
            if r.try_get::<i64, _>("version")? != p.version || r.try_get::<Option<i64>, _>("merged_into")?.is_some() {
                return Err(Error::Conflict);
            }
        }
        let mut refs = Vec::new();
        for t in PARTY_REF_TABLES {
            if has_party_ref(&mut tx, self.backend, t).await? {
                refs.push(*t);
            }
        }
        let s = survivor.0;
        for v in &vics {
            let vid = v.id.0;
            for (table, col) in [("party_phones", "e164"), ("party_emails", "email")] {
                let sql = format!(
                    "UPDATE {table} SET party_id = $1, position = position + (SELECT COALESCE(MAX(position) + 1, 0) FROM {table} WHERE party_id = $1) \
                     WHERE party_id = $2 AND {col} NOT IN (SELECT {col} FROM {table} WHERE party_id = $1)"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(s).bind(vid).execute(&mut *tx).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE party_id = $1"))).bind(vid).execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE party_sites SET party_id = $1 WHERE party_id = $2").bind(s).bind(vid).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO party_chars (party_id, key, value) SELECT $1, key, value FROM party_chars WHERE party_id = $2 \
                 ON CONFLICT (party_id, key) DO NOTHING",
            )
            .bind(s)
            .bind(vid)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM party_chars WHERE party_id = $1").bind(vid).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO party_consents (party_id, channel, granted, at, source) SELECT $1, channel, granted, at, source FROM party_consents \
                 WHERE party_id = $2 ON CONFLICT (party_id, channel) DO UPDATE SET granted = excluded.granted, at = excluded.at, source = excluded.source \
                 WHERE excluded.at > party_consents.at",
            )
            .bind(s)
            .bind(vid)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM party_consents WHERE party_id = $1").bind(vid).execute(&mut *tx).await?;
            for t in &refs {
                sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {t} SET party_id = $1 WHERE party_id = $2"))).bind(s).bind(vid).execute(&mut *tx).await?;
            }
            sqlx::query(
                "INSERT INTO list_members (list_id, party_id, added_at) SELECT list_id, $1, added_at FROM list_members WHERE party_id = $2 \
                 ON CONFLICT (list_id, party_id) DO NOTHING",
            )
            .bind(s)
            .bind(vid)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM list_members WHERE party_id = $1").bind(vid).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM dedup_dismissals WHERE party_a = $1 OR party_b = $1").bind(vid).execute(&mut *tx).await?;
            sqlx::query("UPDATE parties SET company_id = $1 WHERE company_id = $2").bind(s).bind(vid).execute(&mut *tx).await?;
            sqlx::query("UPDATE parties SET merged_into = $1 WHERE merged_into = $2").bind(s).bind(vid).execute(&mut *tx).await?;
            sqlx::query("UPDATE parties SET merged_into = $1, version = version + 1, updated_at = $2 WHERE id = $3")
                .bind(s)
                .bind(now)
                .bind(vid)
                .execute(&mut *tx)
                .await?;
            crate::oplog::record(&mut tx, actor, "party", vid, "merged", &serde_json::json!({"into": s})).await?;
        }
        // The survivor's own fields: gaps filled from the victims in order.
        let pick = |f: fn(&Party) -> &Option<String>| -> Option<String> { std::iter::once(&surv).chain(vics.iter()).find_map(|p| f(p).clone()) };
        let first_name = pick(|p| &p.first_name);
        let last_name = pick(|p| &p.last_name);
        let city = pick(|p| &p.city);
        let zone = pick(|p| &p.zone);
        let notes = pick(|p| &p.notes);
        let owner = surv.owner_id.or_else(|| vics.iter().find_map(|p| p.owner_id));
        let state = surv.commercial_state_id.or_else(|| vics.iter().find_map(|p| p.commercial_state_id));
        let company = if surv.kind == PartyKind::Person {
            surv.company_id.or_else(|| vics.iter().filter(|p| p.kind == PartyKind::Person).find_map(|p| p.company_id)).filter(|c| *c != survivor)
        } else {
            None
        };
        let rank = |s: Stage| Stage::ALL.iter().position(|x| *x == s).unwrap_or(0);
        let stage = std::iter::once(&surv).chain(vics.iter()).map(|p| p.stage).max_by_key(|s| rank(*s)).unwrap_or(surv.stage);
        let dnc = std::iter::once(&surv).chain(vics.iter()).any(|p| p.do_not_call);
        sqlx::query(
            "UPDATE parties SET first_name = $1, last_name = $2, city = $3, zone = $4, notes = $5, owner_id = $6, commercial_state_id = $7, \
             company_id = $8, stage = $9, do_not_call = $10, version = version + 1, updated_at = $11 WHERE id = $12",
        )
        .bind(&first_name)
        .bind(&last_name)
        .bind(&city)
        .bind(&zone)
        .bind(&notes)
        .bind(owner.map(|o| o.0))
        .bind(state.map(|c| c.0))
        .bind(company.map(|c| c.0))
        .bind(stage.as_str())
        .bind(dnc as i64)
        .bind(now)
        .bind(s)
        .execute(&mut *tx)
        .await?;
        let victim_ids: Vec<i64> = vics.iter().map(|p| p.id.0).collect();
        let victim_names: Vec<&str> = vics.iter().map(|p| p.name.as_str()).collect();
        crate::oplog::record(&mut tx, actor, "party", s, "merge", &serde_json::json!({"victims": victim_ids, "names": victim_names, "moved": refs}))
            .await?;
        tx.commit().await?;
        self.get_party(actor, survivor).await
    }
}

fn best_score(r: &[MatchReason]) -> f64 {
    r.iter()
        .map(|x| match x {
            MatchReason::SimilarName { score } => *score,
            _ => 1.0,
        })
        .fold(0.0, f64::max)
}
