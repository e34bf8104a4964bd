//! Bulk import of parties from CSV, and the bulk insert path it shares with
//! the benchmark and the demo-data generator ([`Store::insert_parties_bulk`]).
//!
//! An import reads the file once, a chunk of rows at a time. Every row is
//! parsed through the same validation as a party typed into the console
//! ([`PartyInput::validate`]), so phones become E.164 in the store's default
//! region and emails are lower-cased. A bad row never stops the import: it
//! goes to the reject list with its line number and the reason, and the CLI
//! writes that list out as a reject file ([`ImportReport::write_rejects`]).
//!
//! De-duplication happens against the database and within the file: a row
//! whose phone or email (or, when it has neither, whose exact name and city)
//! is already known refers to that party, and is skipped or used to update it
//! ([`OnExisting`]), never inserted again. So re-running the same file
//! inserts nothing.
//!
//! Speed comes from batching: one write transaction per chunk, one query per
//! chunk to find existing phones, emails and names, multi-row INSERTs of a
//! few hundred rows per statement, and party ids reserved up front so that
//! phones, emails and operation-log entries of a whole chunk can be written
//! with the same multi-row statements.

use crate::auth::{Actor, Permission};
use crate::error::{Error, FieldError, Result};
use crate::parties::{ConsentInput, EmailInput, PartyInput, PhoneInput, ValidParty};
use crate::store::{Backend, Store};
use crate::types::*;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, BufReader, Read};

pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Any>;

/// Which CSV column feeds which party field: header → field. Field names are
/// `name`, `first_name`, `last_name`, `kind`, `company`, `city`, `zone`,
/// `stage`, `notes`, `do_not_call`, `phone` (also `phone2`, `phone3`…),
/// `mobile`, `office`, `home`, `fax` (also numbered), `phone:KIND`, `email`
/// (also `email2`…, `email:KIND`), `characteristic:KEY`, `consent:CHANNEL`,
/// and `ignore`. With no columns at all, every header that is itself a field
/// name is mapped to that field ([`ImportMapping::auto`]).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportMapping {
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
}

impl ImportMapping {
    /// Maps every header that names a field (case-insensitive) to it and
    /// ignores the others.
    /// Common Italian and English headers (`Cognome`, `Cellulare`,
    /// `E-mail`, `Ragione sociale`…) are recognised too.
    pub fn auto<S: AsRef<str>>(headers: &[S]) -> ImportMapping {
        let columns = headers
            .iter()
            .map(|h| h.as_ref().trim())
            .filter_map(|h| {
                let lower = h.to_lowercase();
                let field = SYNONYMS.iter().find(|(alias, _)| *alias == lower).map(|(_, f)| f.to_string()).unwrap_or(lower);
                Target::parse(&field).ok().filter(|t| *t != Target::Ignore).map(|_| (h.to_string(), field))
            })
            .collect();
        ImportMapping { columns }
    }
}

/// Header spellings that [`ImportMapping::auto`] maps to a field.
const SYNONYMS: &[(&str, &str)] = &[
    ("nome", "first_name"),
    ("first name", "first_name"),
    ("firstname", "first_name"),
    ("cognome", "last_name"),
    ("last name", "last_name"),
    ("lastname", "last_name"),
    ("surname", "last_name"),
    ("ragione sociale", "company"),
    ("azienda", "company"),
    ("società", "company"),
    ("societa", "company"),
    ("telefono", "phone"),
    ("tel", "phone"),
    ("telephone", "phone"),
    ("cellulare", "mobile"),
    ("cell", "mobile"),
    ("e-mail", "email"),
    ("mail", "email"),
    ("città", "city"),
    ("citta", "city"),
    ("comune", "city"),
    ("zona", "zone"),
    ("note", "notes"),
];

/// What to do with a row that refers to a party already in the store (or
/// earlier in the same file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnExisting {
    /// Leave the existing party as it is.
    #[default]
    Skip,
    /// Overwrite the fields the row fills in, add phones and emails the
    /// party lacks, and set its characteristics and consents.
    Update,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportOptions {
    /// The field separator; guessed from the header line (`;`, `,`, tab or
    /// `|`) when absent.
    #[serde(default)]
    pub delimiter: Option<char>,
    #[serde(default)]
    pub on_existing: OnExisting,
    /// `person` unless told; a row may override it in a `kind` column.
    #[serde(default)]
    pub default_kind: Option<String>,
    /// `lead` unless told; a row may override it in a `stage` column.
    #[serde(default)]
    pub default_stage: Option<String>,
    /// The owner of the parties this import creates (none: the shared pool).
    #[serde(default)]
    pub owner_id: Option<UserId>,
    /// Recorded as the source of consents read from the file.
    #[serde(default)]
    pub consent_source: Option<String>,
    /// Rows per write transaction (default 5,000).
    #[serde(default)]
    pub chunk_rows: Option<usize>,
}

/// A row that was not imported, with its line number in the file (1 is the
/// header line) and why.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RejectedRow {
    pub line: u64,
    pub reason: String,
    /// The row as read (lossily decoded), for the reject file.
    pub fields: Vec<String>,
}

/// Counts so far, reported after every chunk.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportProgress {
    pub rows: u64,
    pub inserted: u64,
    pub updated: u64,
    pub skipped: u64,
    pub rejected: u64,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub headers: Vec<String>,
    /// Data rows read (the header line not counted).
    pub rows: u64,
    pub inserted: u64,
    /// Existing parties (or earlier rows) that the row changed.
    pub updated: u64,
    /// Rows that referred to an existing party and changed nothing.
    pub skipped: u64,
    /// Companies created because a person row named an unknown company.
    pub companies_created: u64,
    pub rejected: Vec<RejectedRow>,
    pub elapsed_ms: u64,
}

impl ImportReport {
    /// Writes the reject file: the original header plus `line` and `reason`
    /// columns, then every rejected row as it was read.
    pub fn write_rejects<W: std::io::Write>(&self, w: W) -> std::result::Result<(), csv::Error> {
        let mut out = csv::WriterBuilder::new().flexible(true).from_writer(w);
        let mut head = vec!["line".to_string(), "reason".to_string()];
        head.extend(self.headers.iter().cloned());
        out.write_record(&head)?;
        for r in &self.rejected {
            let mut rec = vec![r.line.to_string(), r.reason.clone()];
            rec.extend(r.fields.iter().cloned());
            out.write_record(&rec)?;
        }
        out.flush()?;
        Ok(())
    }
}

/// The field a column feeds.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Name,
    FirstName,
    LastName,
    Kind,
    Company,
    City,
    Zone,
    Stage,
    Notes,
    DoNotCall,
    Phone(PhoneKind),
    Email(String),
    Char(String),
    Consent(Channel),
    Ignore,
}

impl Target {
    fn parse(spec: &str) -> std::result::Result<Target, String> {
        let s = spec.trim().to_lowercase();
        if let Some((head, arg)) = s.split_once(':') {
            let arg = arg.trim();
            return match head.trim() {
                "characteristic" | "char" => {
                    if arg.is_empty() || arg.len() > 64 || !arg.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
                        Err(format!("{spec:?}: characteristic keys are 1–64 letters, digits, _ or -"))
                    } else {
                        Ok(Target::Char(arg.to_string()))
                    }
                }
                "consent" => Channel::parse(arg).map(Target::Consent),
                "phone" => PhoneKind::parse(arg).map(Target::Phone),
                "email" if !arg.is_empty() && arg.len() <= 30 => Ok(Target::Email(arg.to_string())),
                _ => Err(format!("unknown field {spec:?}")),
            };
        }
        // `phone2`, `email3`, `mobile2`: numbered repeats of a field.
        let base = s.trim_end_matches(|c: char| c.is_ascii_digit());
        Ok(match (s.as_str(), base) {
            ("name", _) => Target::Name,
            ("first_name", _) => Target::FirstName,
            ("last_name", _) => Target::LastName,
            ("kind", _) => Target::Kind,
            ("company", _) => Target::Company,
            ("city", _) => Target::City,
            ("zone", _) => Target::Zone,
            ("stage", _) => Target::Stage,
            ("notes", _) => Target::Notes,
            ("do_not_call", _) => Target::DoNotCall,
            ("ignore", _) | ("", _) => Target::Ignore,
            (_, "phone") => Target::Phone(PhoneKind::Other),
            (_, "mobile") => Target::Phone(PhoneKind::Mobile),
            (_, "office") => Target::Phone(PhoneKind::Office),
            (_, "home") => Target::Phone(PhoneKind::Home),
            (_, "fax") => Target::Phone(PhoneKind::Fax),
            (_, "email") => Target::Email("other".into()),
            _ => return Err(format!("unknown field {spec:?}")),
        })
    }
}

/// Reads a yes/no cell the way people write it in Italian and English files.
fn parse_flag(s: &str) -> std::result::Result<bool, String> {
    match s.trim().to_lowercase().as_str() {
        "1" | "y" | "yes" | "true" | "s" | "si" | "sì" | "x" => Ok(true),
        "0" | "n" | "no" | "false" => Ok(false),
        other => Err(format!("{other:?} is not yes/no")),
    }
}

/// One parsed, valid row.
struct CsvRow {
    line: u64,
    party: ValidParty,
    company: Option<String>,
    /// Whether the row itself set these (rather than the defaults), so that
    /// an update does not overwrite them with defaults.
    stage_given: bool,
    dnc_given: bool,
}

/// Columns resolved against the header line.
struct Plan {
    cols: Vec<(usize, String, Target)>,
    default_kind: PartyKind,
    default_stage: Stage,
    owner_id: Option<UserId>,
    consent_source: String,
    region: Region,
}

impl Plan {
    /// Turns one record into a valid row or a reason to reject it.
    fn row(&self, line: u64, rec: &csv::StringRecord) -> std::result::Result<CsvRow, String> {
        let mut input = PartyInput { kind: self.default_kind.as_str().to_string(), owner_id: self.owner_id, ..Default::default() };
        let mut phone_cols = Vec::new();
        let mut email_cols = Vec::new();
        let mut consent_cols = Vec::new();
        let mut problems: Vec<String> = Vec::new();
        let mut company = None;
        let (mut stage_given, mut dnc_given) = (false, false);
        for (i, header, target) in &self.cols {
            let v = rec.get(*i).unwrap_or("").trim();
            if v.is_empty() {
                continue;
            }
            let v = v.to_string();
            match target {
                Target::Name => input.name = Some(v),
                Target::FirstName => input.first_name = Some(v),
                Target::LastName => input.last_name = Some(v),
                Target::Kind => input.kind = v.to_lowercase(),
                Target::Company => company = Some(v),
                Target::City => input.city = Some(v),
                Target::Zone => input.zone = Some(v),
                Target::Stage => {
                    input.stage = Some(v.to_lowercase());
                    stage_given = true;
                }
                Target::Notes => input.notes = Some(v),
                Target::DoNotCall => match parse_flag(&v) {
                    Ok(f) => {
                        input.do_not_call = Some(f);
                        dnc_given = true;
                    }
                    Err(e) => problems.push(format!("{header}: {e}")),
                },
                Target::Phone(kind) => {
                    phone_cols.push(header.as_str());
                    input.phones.push(PhoneInput { number: v, kind: Some(kind.as_str().to_string()) });
                }
                Target::Email(kind) => {
                    email_cols.push(header.as_str());
                    input.emails.push(EmailInput { address: v, kind: Some(kind.clone()) });
                }
                Target::Char(key) => {
                    input.characteristics.insert(key.clone(), v);
                }
                Target::Consent(ch) => match parse_flag(&v) {
                    Ok(granted) => {
                        consent_cols.push(header.as_str());
                        input.consents.push(ConsentInput { channel: ch.as_str().to_string(), granted, source: self.consent_source.clone() });
                    }
                    Err(e) => problems.push(format!("{header}: {e}")),
                },
                Target::Ignore => {}
            }
        }
        // A row that names only a company is that company.
        if input.name.is_none() && input.first_name.is_none() && input.last_name.is_none()
            && let Some(c) = company.take()
        {
            input.name = Some(c);
            if !self.cols.iter().any(|(i, _, t)| *t == Target::Kind && rec.get(*i).is_some_and(|v| !v.trim().is_empty())) {
                input.kind = PartyKind::Company.as_str().to_string();
            }
        }
        if input.kind == PartyKind::Company.as_str() {
            company = None;
        }
        if let Some(c) = &company
            && (c.chars().count() > 200 || c.chars().any(char::is_control))
        {
            problems.push("company: at most 200 characters, no control characters".into());
        }
        match input.validate(self.region) {
            Ok(party) if problems.is_empty() => Ok(CsvRow { line, party, company, stage_given, dnc_given }),
            Ok(_) => Err(problems.join("; ")),
            Err(Error::Invalid(errs)) => {
                problems.extend(errs.iter().map(|e| describe(e, &phone_cols, &email_cols, &consent_cols)));
                Err(problems.join("; "))
            }
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Names the CSV column behind a validation error (`phones[1].number` is
/// the second non-empty phone column of the row).
fn describe(e: &FieldError, phones: &[&str], emails: &[&str], consents: &[&str]) -> String {
    let indexed = |prefix: &str, cols: &[&str]| -> Option<String> {
        let rest = e.field.strip_prefix(prefix)?;
        let idx: usize = rest.split(']').next()?.parse().ok()?;
        cols.get(idx).map(|c| c.to_string())
    };
    let col = indexed("phones[", phones)
        .or_else(|| indexed("emails[", emails))
        .or_else(|| indexed("consents[", consents))
        .unwrap_or_else(|| e.field.clone());
    format!("{col}: {}", e.reason)
}

/// A key that identifies a party for de-duplication.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Phone(String),
    Email(String),
    /// Kind, exact name and lower-cased city: only for rows with neither a
    /// phone nor an email.
    NameCity(&'static str, String, String),
}

/// What a key refers to.
#[derive(Debug, Clone, Copy)]
enum Seen {
    Party(PartyId, Option<UserId>),
    /// A row of the current chunk, not yet inserted.
    Pending(usize),
}

fn keys_of(v: &ValidParty) -> Vec<Key> {
    let mut keys: Vec<Key> = v.phones.iter().map(|p| Key::Phone(p.number.as_str().to_string())).collect();
    keys.extend(v.emails.iter().map(|e| Key::Email(e.address.as_str().to_string())));
    if keys.is_empty() {
        keys.push(Key::NameCity(v.kind.as_str(), v.name.clone(), v.city.as_deref().unwrap_or("").to_lowercase()));
    }
    keys
}

/// Guesses the delimiter from the header line.
fn sniff_delimiter(head: &[u8]) -> u8 {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(head);
    [b';', b',', b'\t', b'|'].into_iter().max_by_key(|d| line.iter().filter(|&&b| b == *d).count()).unwrap_or(b',')
}

/// SQLite caps bound parameters at 32766 per statement; PostgreSQL at 65535.
/// Batches stay well under both.
const ROWS_PER_STATEMENT: usize = 500;
const IN_LIST_MAX: usize = 5_000;

/// SQLite looks up a numbered parameter (`$7`) by walking the list of every
/// parameter name in the statement, and sqlx does that once per bound value,
/// so a statement with thousands of `$N` binds costs quadratic time (it made
/// the import twenty times slower). Anonymous `?` parameters have no name to
/// look up. On SQLite the wide statements below therefore use `?`, bound
/// strictly in textual order; PostgreSQL needs `$N`.
fn placeholder(backend: Backend, n: usize, sql: &mut String) {
    match backend {
        Backend::Sqlite => sql.push('?'),
        Backend::Postgres => {
            sql.push('$');
            sql.push_str(&n.to_string());
        }
    }
}

/// `INSERT INTO … (cols) VALUES (…),(…) tail` for `rows` rows of `ncols`;
/// the statement must have no other parameters.
pub(crate) fn values_sql(backend: Backend, head: &str, ncols: usize, rows: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + rows * ncols * 6 + tail.len() + 16);
    sql.push_str(head);
    sql.push_str(" VALUES ");
    let mut n = 0;
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..ncols {
            if c > 0 {
                sql.push(',');
            }
            n += 1;
            placeholder(backend, n, &mut sql);
        }
        sql.push(')');
    }
    sql.push(' ');
    sql.push_str(tail);
    sql
}

/// The placeholders of an IN list of `n` values in a statement that has no
/// other parameters (see [`values_sql`] for why SQLite gets `?`).
pub(crate) fn in_list(backend: Backend, n: usize) -> String {
    let mut sql = String::with_capacity(n * 6);
    for i in 1..=n {
        if i > 1 {
            sql.push(',');
        }
        placeholder(backend, i, &mut sql);
    }
    sql
}

/// `$a,$b,…` for an IN list after `start` other numbered parameters; only
/// for short lists (a few hundred values), see [`values_sql`].
pub(crate) fn placeholders(start: usize, n: usize) -> String {
    (start + 1..=start + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(",")
}

/// Reserves `n` party ids for explicit use in multi-row INSERTs, so that the
/// children of every party can be inserted in bulk too. On SQLite the write
/// transaction is the only writer, so the ids after the current maximum are
/// free; on PostgreSQL the identity sequence hands them out.
async fn reserve_party_ids(tx: &mut Tx, backend: Backend, n: usize) -> Result<Vec<PartyId>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    match backend {
        Backend::Sqlite => {
            let max: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) AS m FROM parties").fetch_one(&mut **tx).await?.try_get("m")?;
            Ok((1..=n as i64).map(|i| PartyId(max + i)).collect())
        }
        Backend::Postgres => {
            let rows = sqlx::query("SELECT nextval(pg_get_serial_sequence('parties', 'id')) AS id FROM generate_series(1, $1)")
                .bind(n as i64)
                .fetch_all(&mut **tx)
                .await?;
            rows.iter().map(|r| Ok(PartyId(r.try_get("id")?))).collect()
        }
    }
}

/// Inserts validated parties and all they hold inside `tx`, with multi-row
/// statements, and logs one `create` entry per party. References (company,
/// owner, commercial state) are trusted: a bad one fails the statement.
pub(crate) async fn insert_bulk_tx(tx: &mut Tx, backend: Backend, actor: &Actor, parties: &[&ValidParty], now: Millis, source: &str) -> Result<Vec<PartyId>> {
    let ids = reserve_party_ids(tx, backend, parties.len()).await?;
    let rows: Vec<(PartyId, &ValidParty)> = ids.iter().copied().zip(parties.iter().copied()).collect();
    for batch in rows.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(
            backend,
            "INSERT INTO parties (id, kind, name, first_name, last_name, company_id, stage, commercial_state_id, owner_id, city, zone, \
             do_not_call, notes, version, created_at, updated_at)",
            16,
            batch.len(),
            "",
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, v) in batch {
            q = q
                .bind(id.0)
                .bind(v.kind.as_str())
                .bind(v.name.as_str())
                .bind(v.first_name.as_deref())
                .bind(v.last_name.as_deref())
                .bind(v.company_id.map(|c| c.0))
                .bind(v.stage.as_str())
                .bind(v.commercial_state_id.map(|c| c.0))
                .bind(v.owner_id.map(|o| o.0))
                .bind(v.city.as_deref())
                .bind(v.zone.as_deref())
                .bind(v.do_not_call as i64)
                .bind(v.notes.as_deref())
                .bind(1_i64)
                .bind(now)
                .bind(now);
        }
        q.execute(&mut **tx).await?;
    }
    let phones: Vec<(i64, &str, &str, i64)> = rows
        .iter()
        .flat_map(|(id, v)| v.phones.iter().enumerate().map(move |(i, p)| (id.0, p.number.as_str(), p.kind.as_str(), i as i64)))
        .collect();
    for batch in phones.chunks(ROWS_PER_STATEMENT * 2) {
        let sql = values_sql(backend, "INSERT INTO party_phones (party_id, e164, kind, position)", 4, batch.len(), "");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, n, k, pos) in batch {
            q = q.bind(*id).bind(*n).bind(*k).bind(*pos);
        }
        q.execute(&mut **tx).await?;
    }
    let emails: Vec<(i64, &str, &str, i64)> = rows
        .iter()
        .flat_map(|(id, v)| v.emails.iter().enumerate().map(move |(i, e)| (id.0, e.address.as_str(), e.kind.as_str(), i as i64)))
        .collect();
    for batch in emails.chunks(ROWS_PER_STATEMENT * 2) {
        let sql = values_sql(backend, "INSERT INTO party_emails (party_id, email, kind, position)", 4, batch.len(), "");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, e, k, pos) in batch {
            q = q.bind(*id).bind(*e).bind(*k).bind(*pos);
        }
        q.execute(&mut **tx).await?;
    }
    let sites: Vec<(i64, &crate::parties::Site)> = rows.iter().flat_map(|(id, v)| v.sites.iter().map(move |s| (id.0, s))).collect();
    for batch in sites.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(backend, "INSERT INTO party_sites (party_id, label, street, city, province, postcode, country)", 7, batch.len(), "");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, s) in batch {
            q = q
                .bind(*id)
                .bind(s.label.trim())
                .bind(s.street.as_deref())
                .bind(s.city.as_deref())
                .bind(s.province.as_deref())
                .bind(s.postcode.as_deref())
                .bind(s.country.as_deref());
        }
        q.execute(&mut **tx).await?;
    }
    let chars: Vec<(i64, &str, &str)> =
        rows.iter().flat_map(|(id, v)| v.characteristics.iter().map(move |(k, val)| (id.0, k.as_str(), val.as_str()))).collect();
    for batch in chars.chunks(ROWS_PER_STATEMENT * 2) {
        let sql = values_sql(backend, "INSERT INTO party_chars (party_id, key, value)", 3, batch.len(), "");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, k, v) in batch {
            q = q.bind(*id).bind(*k).bind(*v);
        }
        q.execute(&mut **tx).await?;
    }
    // One consent per channel and party (the primary key): the last one in
    // the input wins, as it would with one upsert after another.
    let mut consents: Vec<(i64, &str, i64, &str)> = Vec::new();
    for (id, v) in &rows {
        let mut by_channel: BTreeMap<&str, (bool, &str)> = BTreeMap::new();
        for (ch, granted, src) in &v.consents {
            by_channel.insert(ch.as_str(), (*granted, src.as_str()));
        }
        consents.extend(by_channel.into_iter().map(|(ch, (g, s))| (id.0, ch, g as i64, s)));
    }
    for batch in consents.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(backend, "INSERT INTO party_consents (party_id, channel, granted, at, source)", 5, batch.len(), "");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, ch, g, s) in batch {
            q = q.bind(*id).bind(*ch).bind(*g).bind(now).bind(*s);
        }
        q.execute(&mut **tx).await?;
    }
    let log: Vec<(i64, String)> = rows
        .iter()
        .map(|(id, v)| (id.0, serde_json::json!({"name": v.name, "kind": v.kind, "source": source}).to_string()))
        .collect();
    for batch in log.chunks(ROWS_PER_STATEMENT) {
        let sql = values_sql(backend, "INSERT INTO oplog (at, actor_id, entity, entity_id, action, changes)", 6, batch.len(), "");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (id, changes) in batch {
            q = q.bind(now).bind(actor.log_id()).bind("party").bind(*id).bind("create").bind(changes.as_str());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(ids)
}

/// Reads up to `n` records with their line numbers; says whether the file
/// goes on. A malformed record (e.g. an unterminated quote) is rejected; an
/// I/O error ends the import there, and the report says what was done.
fn read_raw<R: Read>(csv: &mut csv::Reader<R>, n: usize, report: &mut ImportReport) -> (Vec<(u64, csv::ByteRecord)>, bool) {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let mut record = csv::ByteRecord::new();
        match csv.read_byte_record(&mut record) {
            Ok(false) => return (out, false),
            Ok(true) => {}
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                report.rows += 1;
                let io = matches!(e.kind(), csv::ErrorKind::Io(_));
                let reason = if io { format!("cannot read the file: {e}") } else { format!("malformed CSV: {e}") };
                report.rejected.push(RejectedRow { line, reason, fields: Vec::new() });
                if io {
                    return (out, false);
                }
                continue;
            }
        }
        if record.is_empty() || (record.len() == 1 && record.get(0).is_some_and(|f| f.iter().all(u8::is_ascii_whitespace))) {
            continue;
        }
        report.rows += 1;
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        out.push((line, record));
    }
    (out, true)
}

/// Turns raw records into valid rows and rejects.
fn parse_batch(plan: &Plan, ncols: usize, raw: Vec<(u64, csv::ByteRecord)>) -> (Vec<CsvRow>, Vec<RejectedRow>) {
    let mut rows = Vec::with_capacity(raw.len());
    let mut rejects = Vec::new();
    for (line, record) in raw {
        let lossy = |r: &csv::ByteRecord| r.iter().map(|f| String::from_utf8_lossy(f).into_owned()).collect::<Vec<_>>();
        if record.len() != ncols {
            rejects.push(RejectedRow { line, reason: format!("expected {ncols} fields, found {}", record.len()), fields: lossy(&record) });
            continue;
        }
        let rec = match csv::StringRecord::from_byte_record(record) {
            Ok(r) => r,
            Err(e) => {
                let fields = lossy(&e.into_byte_record());
                rejects.push(RejectedRow { line, reason: "not valid UTF-8 text".into(), fields });
                continue;
            }
        };
        match plan.row(line, &rec) {
            Ok(row) => rows.push(row),
            Err(reason) => rejects.push(RejectedRow { line, reason, fields: rec.iter().map(str::to_string).collect() }),
        }
    }
    (rows, rejects)
}

/// [`parse_batch`] on up to [`PARSE_THREADS`] scoped threads, each taking a
/// contiguous slice of the chunk, so the results keep the file's order.
/// Phone parsing is most of the CPU of an import; with the writer on one
/// core and the parsers on the others, the import can approach the speed of
/// the bulk insert alone.
fn parse_parallel(plan: &Plan, ncols: usize, mut raw: Vec<(u64, csv::ByteRecord)>) -> (Vec<CsvRow>, Vec<RejectedRow>) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, PARSE_THREADS);
    // Below a few hundred rows a thread costs more than it saves.
    if threads == 1 || raw.len() < 512 {
        return parse_batch(plan, ncols, raw);
    }
    let per = raw.len().div_ceil(threads);
    let mut parts = Vec::with_capacity(threads);
    while raw.len() > per {
        parts.push(raw.split_off(raw.len() - per));
    }
    parts.push(raw);
    parts.reverse();
    let results: Vec<(Vec<CsvRow>, Vec<RejectedRow>)> = std::thread::scope(|s| {
        let mut parts = parts.into_iter();
        // The first slice is parsed on this thread, the rest on new ones.
        let first = parts.next().unwrap_or_default();
        let handles: Vec<_> = parts.map(|p| s.spawn(move || parse_batch(plan, ncols, p))).collect();
        let mut out = vec![parse_batch(plan, ncols, first)];
        // A panicking parser is a bug: it ends the import (the awaiting
        // task reports it) rather than silently losing its rows.
        out.extend(handles.into_iter().map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))));
        out
    });
    let mut rows = Vec::with_capacity(results.iter().map(|r| r.0.len()).sum());
    let mut rejects = Vec::new();
    for (r, j) in results {
        rows.extend(r);
        rejects.extend(j);
    }
    (rows, rejects)
}

/// At most this many threads parse one chunk.
const PARSE_THREADS: usize = 4;

/// Rows per transaction in [`Store::insert_parties_bulk`].
const BULK_CHUNK: usize = 5_000;
const DEFAULT_IMPORT_CHUNK: usize = 5_000;

/// Existing parties known by phone, email or name, for one chunk.
#[derive(Default)]
struct Existing {
    by_key: HashMap<Key, (PartyId, Option<UserId>)>,
}

impl Store {
    /// Inserts many validated parties quickly: a few thousand per write
    /// transaction, a few hundred per statement, one `create` oplog entry
    /// each. There is no de-duplication and references are not re-checked
    /// (a bad company, owner or commercial state fails the chunk), so this is
    /// for trusted, generated data: the benchmark and the demo-data
    /// generator. Chunks already committed stay committed if a later one
    /// fails.
    pub async fn insert_parties_bulk(&self, actor: &Actor, parties: &[ValidParty]) -> Result<Vec<PartyId>> {
        actor.require(Permission::ImportParties)?;
        let mut ids = Vec::with_capacity(parties.len());
        for chunk in parties.chunks(BULK_CHUNK) {
            let refs: Vec<&ValidParty> = chunk.iter().collect();
            let mut tx = self.begin().await?;
            ids.extend(insert_bulk_tx(&mut tx, self.backend, actor, &refs, now_ms(), "bulk").await?);
            tx.commit().await?;
        }
        Ok(ids)
    }

    /// Imports parties from CSV; see the module docs. Fails as a whole only
    /// for a bad mapping or options (`Invalid`), missing permission, an
    /// unreadable header, or a database error; bad rows are rejected one by
    /// one. `progress` hears the counts after every chunk.
    ///
    /// The reader is read synchronously between database calls; the CLI
    /// hands it a file, which does not block for long.
    pub async fn import_parties<R, F>(&self, actor: &Actor, reader: R, mapping: &ImportMapping, options: &ImportOptions, mut progress: F) -> Result<ImportReport>
    where
        R: Read + Send,
        F: FnMut(&ImportProgress) + Send,
    {
        actor.require(Permission::ImportParties)?;
        let started = std::time::Instant::now();
        let mut problems = crate::error::Problems::default();
        let default_kind = match &options.default_kind {
            Some(k) => problems.check("default_kind", PartyKind::parse(k)),
            None => Some(PartyKind::Person),
        };
        let default_stage = match &options.default_stage {
            Some(s) => problems.check("default_stage", Stage::parse(s)),
            None => Some(Stage::Lead),
        };
        let consent_source = options.consent_source.clone().unwrap_or_else(|| "import".into()).trim().to_string();
        if consent_source.is_empty() || consent_source.len() > 200 {
            problems.push("consent_source", "1–200 characters");
        }
        let chunk_rows = options.chunk_rows.unwrap_or(DEFAULT_IMPORT_CHUNK);
        if !(1..=50_000).contains(&chunk_rows) {
            problems.push("chunk_rows", "between 1 and 50000");
        }
        if let Some(d) = options.delimiter
            && (!d.is_ascii() || d == '"' || d == '\n' || d == '\r')
        {
            problems.push("delimiter", "a single ASCII character other than a quote or newline");
        }
        if let Some(o) = options.owner_id {
            if sqlx::query("SELECT 1 FROM users WHERE id = $1").bind(o.0).fetch_optional(&self.read).await?.is_none() {
                problems.push("owner_id", "no such user");
            } else if !actor.sees(Some(o)) && !actor.can(Permission::EditPartiesOfOthers) {
                problems.push("owner_id", "you may not assign records to this user");
            }
        }

        let mut buf = BufReader::with_capacity(1 << 16, reader);
        let delimiter = match options.delimiter {
            Some(d) => d as u8,
            None => sniff_delimiter(buf.fill_buf().map_err(|e| Error::invalid("file", format!("cannot read: {e}")))?),
        };
        let mut csv = csv::ReaderBuilder::new().delimiter(delimiter).flexible(true).has_headers(true).from_reader(buf);
        let headers: Vec<String> = csv
            .headers()
            .map_err(|e| Error::invalid("file", format!("cannot read the header line: {e}")))?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let mapping = if mapping.columns.is_empty() { ImportMapping::auto(&headers) } else { mapping.clone() };
        let mut cols = Vec::new();
        for (header, spec) in &mapping.columns {
            let Some(i) = headers.iter().position(|h| h.eq_ignore_ascii_case(header.trim())) else {
                problems.push(format!("columns.{header}"), "no such column in the file");
                continue;
            };
            if let Some(t) = problems.check(&format!("columns.{header}"), Target::parse(spec)) {
                cols.push((i, headers[i].clone(), t));
            }
        }
        // Keep the file's column order so that `phones[0]` is the leftmost phone.
        cols.sort_by_key(|c| c.0);
        if !cols.iter().any(|c| matches!(c.2, Target::Name | Target::FirstName | Target::LastName | Target::Company)) {
            problems.push("columns", "map at least one of name, first_name, last_name or company");
        }
        problems.finish()?;
        let plan = Plan {
            cols,
            default_kind: default_kind.unwrap_or(PartyKind::Person),
            default_stage: default_stage.unwrap_or(Stage::Lead),
            owner_id: options.owner_id,
            consent_source,
            region: self.region,
        };
        let mut report = ImportReport { headers: headers.clone(), ..Default::default() };
        let mut state = ImportState {
            seen: HashMap::new(),
            companies: HashMap::new(),
            on_existing: options.on_existing,
            default_stage: plan.default_stage,
            owner_id: options.owner_id,
        };
        // Parsing (phone numbers above all) costs about as much as writing,
        // so the next chunk is parsed on a blocking thread while this one is
        // written.
        let plan = std::sync::Arc::new(plan);
        let ncols = headers.len();
        let spawn = |raw: Vec<(u64, csv::ByteRecord)>| {
            let plan = plan.clone();
            tokio::task::spawn_blocking(move || parse_parallel(&plan, ncols, raw))
        };
        let (raw, mut more) = read_raw(&mut csv, chunk_rows, &mut report);
        let mut next = Some(spawn(raw));
        while let Some(parsing) = next.take() {
            let (rows, rejects) = parsing.await.map_err(|_| Error::invalid("file", "parsing stopped unexpectedly"))?;
            report.rejected.extend(rejects);
            if more {
                let (raw, m) = read_raw(&mut csv, chunk_rows, &mut report);
                more = m;
                next = Some(spawn(raw));
            }
            if !rows.is_empty() {
                self.import_chunk(actor, &mut state, rows, &mut report).await?;
            }
            progress(&report.progress());
        }
        report.rejected.sort_by_key(|r| r.line);
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Finds which keys of a chunk already belong to parties in the store.
    /// Emails are looked up only for rows that no phone identified (on a
    /// re-run that is none), names only for rows with neither.
    async fn existing_keys(&self, tx: &mut Tx, row_keys: &[Vec<Key>], seen: &HashMap<Key, Seen>) -> Result<Existing> {
        let mut ex = Existing::default();
        let phones: Vec<&str> = row_keys
            .iter()
            .flatten()
            .filter(|k| !seen.contains_key(*k))
            .filter_map(|k| if let Key::Phone(p) = k { Some(p.as_str()) } else { None })
            .collect();
        self.lookup_phones(tx, &phones, &mut ex).await?;
        let unresolved = || row_keys.iter().filter(|keys| !keys.iter().any(|k| seen.contains_key(k) || ex.by_key.contains_key(k))).flatten();
        let emails: Vec<&str> = unresolved().filter_map(|k| if let Key::Email(e) = k { Some(e.as_str()) } else { None }).collect();
        let names: Vec<&str> = unresolved()
            .filter_map(|k| if let Key::NameCity(_, n, _) = k { Some(n.as_str()) } else { None })
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        self.lookup_emails_and_names(tx, &emails, &names, &mut ex).await?;
        Ok(ex)
    }

    async fn lookup_phones(&self, tx: &mut Tx, phones: &[&str], ex: &mut Existing) -> Result<()> {
        // The oldest party wins when several share a key, so that repeated
        // imports keep pointing at the same record.
        for part in phones.chunks(IN_LIST_MAX) {
            let sql = format!(
                "SELECT ph.e164 AS k, p.id, p.owner_id FROM party_phones ph JOIN parties p ON p.id = ph.party_id \
                 WHERE p.merged_into IS NULL AND ph.e164 IN ({}) ORDER BY p.id DESC",
                in_list(self.backend, part.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for p in part {
                q = q.bind(*p);
            }
            for r in q.fetch_all(&mut **tx).await? {
                ex.by_key.insert(Key::Phone(r.try_get("k")?), (PartyId(r.try_get("id")?), r.try_get::<Option<i64>, _>("owner_id")?.map(UserId)));
            }
        }
        Ok(())
    }

    async fn lookup_emails_and_names(&self, tx: &mut Tx, emails: &[&str], names: &[&str], ex: &mut Existing) -> Result<()> {
        for part in emails.chunks(IN_LIST_MAX) {
            let sql = format!(
                "SELECT em.email AS k, p.id, p.owner_id FROM party_emails em JOIN parties p ON p.id = em.party_id \
                 WHERE p.merged_into IS NULL AND em.email IN ({}) ORDER BY p.id DESC",
                in_list(self.backend, part.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in part {
                q = q.bind(*e);
            }
            for r in q.fetch_all(&mut **tx).await? {
                ex.by_key.insert(Key::Email(r.try_get("k")?), (PartyId(r.try_get("id")?), r.try_get::<Option<i64>, _>("owner_id")?.map(UserId)));
            }
        }
        for part in names.chunks(IN_LIST_MAX) {
            let sql = format!(
                "SELECT p.kind, p.name, p.city, p.id, p.owner_id FROM parties p WHERE p.merged_into IS NULL AND p.name IN ({}) ORDER BY p.id DESC",
                in_list(self.backend, part.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for n in part {
                q = q.bind(*n);
            }
            for r in q.fetch_all(&mut **tx).await? {
                let kind = PartyKind::parse(&r.try_get::<String, _>("kind")?).unwrap_or(PartyKind::Person).as_str();
                let city = r.try_get::<Option<String>, _>("city")?.unwrap_or_default().to_lowercase();
                ex.by_key.insert(Key::NameCity(kind, r.try_get("name")?, city), (PartyId(r.try_get("id")?), r.try_get::<Option<i64>, _>("owner_id")?.map(UserId)));
            }
        }
        Ok(())
    }

    /// Writes one chunk in one transaction.
    async fn import_chunk(&self, actor: &Actor, st: &mut ImportState, mut rows: Vec<CsvRow>, report: &mut ImportReport) -> Result<()> {
        let now = now_ms();
        for r in rows.iter_mut() {
            if !r.stage_given {
                r.party.stage = st.default_stage;
            }
        }
        let mut tx = self.begin().await?;
        let row_keys: Vec<Vec<Key>> = rows.iter().map(|r| keys_of(&r.party)).collect();
        let existing = self.existing_keys(&mut tx, &row_keys, &st.seen).await?;

        // Decide, row by row in file order, what each row is.
        let mut inserts: Vec<usize> = Vec::new();
        let mut updates: Vec<(PartyId, usize)> = Vec::new();
        let mut pending_keys: Vec<Key> = Vec::new();
        for (i, keys) in row_keys.into_iter().enumerate() {
            let hit = keys.iter().find_map(|k| st.seen.get(k).copied().or_else(|| existing.by_key.get(k).map(|&(id, o)| Seen::Party(id, o))));
            match hit {
                None => {
                    inserts.push(i);
                    for k in keys {
                        st.seen.insert(k.clone(), Seen::Pending(i));
                        pending_keys.push(k);
                    }
                }
                Some(Seen::Pending(j)) => {
                    if st.on_existing == OnExisting::Update {
                        let (a, b) = rows.split_at_mut(i);
                        merge_into_pending(&mut a[j], &b[0]);
                        for k in keys {
                            if !st.seen.contains_key(&k) {
                                st.seen.insert(k.clone(), Seen::Pending(j));
                                pending_keys.push(k);
                            }
                        }
                        report.updated += 1;
                    } else {
                        report.skipped += 1;
                    }
                }
                Some(Seen::Party(id, owner)) => {
                    for k in keys {
                        st.seen.entry(k).or_insert(Seen::Party(id, owner));
                    }
                    if st.on_existing == OnExisting::Update && actor.sees(owner) {
                        updates.push((id, i));
                    } else {
                        report.skipped += 1;
                    }
                }
            }
        }

        // Companies first: rows that are companies, then companies named by
        // person rows that nobody has created yet.
        let (company_rows, person_rows): (Vec<usize>, Vec<usize>) = inserts.iter().partition(|&&i| rows[i].party.kind == PartyKind::Company);
        let refs: Vec<&ValidParty> = company_rows.iter().map(|&i| &rows[i].party).collect();
        let company_ids = insert_bulk_tx(&mut tx, self.backend, actor, &refs, now, "import").await?;
        for (&i, id) in company_rows.iter().zip(&company_ids) {
            st.companies.entry(rows[i].party.name.clone()).or_insert(*id);
        }
        let named: Vec<&str> = person_rows
            .iter()
            .chain(updates.iter().map(|(_, i)| i))
            .filter_map(|&i| rows[i].company.as_deref())
            .filter(|c| !st.companies.contains_key(*c))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        for part in named.chunks(IN_LIST_MAX) {
            let sql = format!(
                "SELECT id, name FROM parties WHERE kind = 'company' AND merged_into IS NULL AND name IN ({}) ORDER BY id DESC",
                in_list(self.backend, part.len())
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for n in part {
                q = q.bind(*n);
            }
            for r in q.fetch_all(&mut *tx).await? {
                st.companies.insert(r.try_get("name")?, PartyId(r.try_get("id")?));
            }
        }
        let missing: Vec<ValidParty> = named
            .iter()
            .filter(|n| !st.companies.contains_key(**n))
            .map(|n| ValidParty {
                kind: PartyKind::Company,
                name: n.to_string(),
                first_name: None,
                last_name: None,
                company_id: None,
                stage: st.default_stage,
                commercial_state_id: None,
                owner_id: st.owner_id,
                city: None,
                zone: None,
                do_not_call: false,
                notes: None,
                phones: Vec::new(),
                emails: Vec::new(),
                sites: Vec::new(),
                characteristics: BTreeMap::new(),
                consents: Vec::new(),
            })
            .collect();
        let refs: Vec<&ValidParty> = missing.iter().collect();
        let new_ids = insert_bulk_tx(&mut tx, self.backend, actor, &refs, now, "import").await?;
        report.companies_created += new_ids.len() as u64;
        for (c, id) in missing.iter().zip(new_ids) {
            st.companies.insert(c.name.clone(), id);
        }
        for &i in person_rows.iter().chain(updates.iter().map(|(_, i)| i)) {
            if let Some(c) = &rows[i].company {
                rows[i].party.company_id = st.companies.get(c).copied();
            }
        }

        let refs: Vec<&ValidParty> = person_rows.iter().map(|&i| &rows[i].party).collect();
        let person_ids = insert_bulk_tx(&mut tx, self.backend, actor, &refs, now, "import").await?;
        let mut inserted: HashMap<usize, PartyId> = HashMap::new();
        inserted.extend(company_rows.iter().copied().zip(company_ids));
        inserted.extend(person_rows.iter().copied().zip(person_ids));
        report.inserted += inserted.len() as u64;
        for k in pending_keys {
            if let Some(Seen::Pending(i)) = st.seen.get(&k).copied()
                && let Some(id) = inserted.get(&i)
            {
                st.seen.insert(k, Seen::Party(*id, rows[i].party.owner_id));
            }
        }

        for (id, i) in updates {
            if update_from_row(&mut tx, actor, id, &rows[i], now).await? {
                report.updated += 1;
            } else {
                report.skipped += 1;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

struct ImportState {
    /// Every key seen in the file so far, and the party it refers to.
    seen: HashMap<Key, Seen>,
    /// Company names resolved to parties during this import.
    companies: HashMap<String, PartyId>,
    on_existing: OnExisting,
    /// Validation defaults a missing stage to lead; rows that leave it empty
    /// get the import's default instead.
    default_stage: Stage,
    owner_id: Option<UserId>,
}

impl ImportReport {
    fn progress(&self) -> ImportProgress {
        ImportProgress { rows: self.rows, inserted: self.inserted, updated: self.updated, skipped: self.skipped, rejected: self.rejected.len() as u64 }
    }
}

/// A later row of the same file that refers to a row not yet written: its
/// values are folded into the pending party, later values winning.
fn merge_into_pending(into: &mut CsvRow, from: &CsvRow) {
    let (a, b) = (&mut into.party, &from.party);
    a.name = b.name.clone();
    for (dst, src) in [(&mut a.first_name, &b.first_name), (&mut a.last_name, &b.last_name), (&mut a.city, &b.city), (&mut a.zone, &b.zone), (&mut a.notes, &b.notes)] {
        if src.is_some() {
            dst.clone_from(src);
        }
    }
    if from.stage_given {
        a.stage = b.stage;
        into.stage_given = true;
    }
    if from.dnc_given {
        a.do_not_call = b.do_not_call;
        into.dnc_given = true;
    }
    if from.company.is_some() {
        into.company.clone_from(&from.company);
    }
    for p in &b.phones {
        if !a.phones.iter().any(|q| q.number == p.number) {
            a.phones.push(p.clone());
        }
    }
    for e in &b.emails {
        if !a.emails.iter().any(|q| q.address == e.address) {
            a.emails.push(e.clone());
        }
    }
    a.characteristics.extend(b.characteristics.iter().map(|(k, v)| (k.clone(), v.clone())));
    a.consents.extend(b.consents.iter().cloned());
}

/// Applies a row to an existing party: the fields the row fills in, new
/// phones and emails, characteristics and consents. Returns whether anything
/// changed; the version moves and the oplog hears of it only then, so a
/// re-run of the same file is a no-op.
async fn update_from_row(tx: &mut Tx, actor: &Actor, id: PartyId, row: &CsvRow, now: Millis) -> Result<bool> {
    let v = &row.party;
    let stage = row.stage_given.then_some(v.stage.as_str());
    let dnc = row.dnc_given.then_some(v.do_not_call as i64);
    let changed_main = sqlx::query(
        "UPDATE parties SET name = $2, first_name = COALESCE($3, first_name), last_name = COALESCE($4, last_name), \
         stage = COALESCE($5, stage), city = COALESCE($6, city), zone = COALESCE($7, zone), notes = COALESCE($8, notes), \
         do_not_call = COALESCE($9, do_not_call), company_id = COALESCE($10, company_id), version = version + 1, updated_at = $11 \
         WHERE id = $1 AND (name <> $2 OR ($3 IS NOT NULL AND first_name IS DISTINCT FROM $3) OR ($4 IS NOT NULL AND last_name IS DISTINCT FROM $4) \
         OR ($5 IS NOT NULL AND stage <> $5) OR ($6 IS NOT NULL AND city IS DISTINCT FROM $6) OR ($7 IS NOT NULL AND zone IS DISTINCT FROM $7) \
         OR ($8 IS NOT NULL AND notes IS DISTINCT FROM $8) OR ($9 IS NOT NULL AND do_not_call <> $9) \
         OR ($10 IS NOT NULL AND company_id IS DISTINCT FROM $10))",
    )
    .bind(id.0)
    .bind(v.name.as_str())
    .bind(v.first_name.as_deref())
    .bind(v.last_name.as_deref())
    .bind(stage)
    .bind(v.city.as_deref())
    .bind(v.zone.as_deref())
    .bind(v.notes.as_deref())
    .bind(dnc)
    .bind(v.company_id.map(|c| c.0))
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected()
        > 0;
    let mut changed_children = 0;
    for p in &v.phones {
        changed_children += sqlx::query(
            "INSERT INTO party_phones (party_id, e164, kind, position) \
             SELECT $1, $2, $3, (SELECT COALESCE(MAX(position) + 1, 0) FROM party_phones WHERE party_id = $1) \
             WHERE NOT EXISTS (SELECT 1 FROM party_phones WHERE party_id = $1 AND e164 = $2)",
        )
        .bind(id.0)
        .bind(p.number.as_str())
        .bind(p.kind.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    for e in &v.emails {
        changed_children += sqlx::query(
            "INSERT INTO party_emails (party_id, email, kind, position) \
             SELECT $1, $2, $3, (SELECT COALESCE(MAX(position) + 1, 0) FROM party_emails WHERE party_id = $1) \
             WHERE NOT EXISTS (SELECT 1 FROM party_emails WHERE party_id = $1 AND email = $2)",
        )
        .bind(id.0)
        .bind(e.address.as_str())
        .bind(e.kind.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    for (k, val) in &v.characteristics {
        changed_children += sqlx::query(
            "INSERT INTO party_chars (party_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (party_id, key) DO UPDATE SET value = excluded.value WHERE party_chars.value <> excluded.value",
        )
        .bind(id.0)
        .bind(k.as_str())
        .bind(val.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    for (ch, granted, source) in &v.consents {
        changed_children += sqlx::query(
            "INSERT INTO party_consents (party_id, channel, granted, at, source) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (party_id, channel) DO UPDATE SET granted = excluded.granted, at = excluded.at, source = excluded.source \
             WHERE party_consents.granted <> excluded.granted",
        )
        .bind(id.0)
        .bind(ch.as_str())
        .bind(*granted as i64)
        .bind(now)
        .bind(source.as_str())
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    if !changed_main && changed_children == 0 {
        return Ok(false);
    }
    if !changed_main {
        sqlx::query("UPDATE parties SET version = version + 1, updated_at = $1 WHERE id = $2").bind(now).bind(id.0).execute(&mut **tx).await?;
    }
    crate::oplog::record(tx, actor, "party", id.0, "import-update", &serde_json::json!({"line": row.line, "name": v.name})).await?;
    Ok(true)
}
