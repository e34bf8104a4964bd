//! Storage of the outbound dialer: campaign configurations, imported
//! do-not-call numbers, and **the hopper** — a durable queue of leads per
//! campaign, ordered by priority and due time, from which dialer nodes
//! claim work atomically.
//!
//! The hopper's life cycle of a lead: `ready` (waiting for its due time) →
//! `in_flight` (claimed by one node, being dialed or talked to) → back to
//! `ready` with a later due time (retry rules, callbacks), or to a final
//! state: `done` (a disposition closed it), `exhausted` (attempts used up),
//! `dnc` (found on a do-not-call list or without phone consent at claim
//! time), `invalid` (a number that does not parse — reported, never dialed).
//!
//! Claims are atomic: on PostgreSQL the candidate rows are locked with
//! `FOR UPDATE SKIP LOCKED`, so two processes skip each other's rows; on
//! SQLite the store's single writer serialises the whole claim, and every
//! row is flipped with a conditional `UPDATE … WHERE state = 'ready'`
//! whose affected-row count is checked, so a lead can never be in flight
//! twice even if two writers did interleave. A node that crashes leaves
//! its leads `in_flight` under its `node_id`; [`Store::dialer_recover`] at
//! start-up puts them back in the queue and closes their open attempts.
//!
//! Call windows are in the **callee's** local time. The zone comes from the
//! number's region through a small region → zone table ([`region_tz`]).
//! Caveat: countries spanning several zones (US, CA, RU, AU, BR, MX, …)
//! get one representative zone here; a window of 08:00–21:00 can then be
//! off by the country's spread at its edges. Narrow windows for such
//! countries until per-area-code zones land.
//!
//! Architecture invariant: nothing here reads the clock; every method that
//! depends on time takes `now`.

use crate::error::{Error, Problems, Result};
use crate::store::Backend;
use crate::types::{Millis, PartyId, PhoneNumber, UserId};
use crate::{Actor, ListId};
use chrono::{NaiveDate, NaiveTime, TimeZone};
use serde::{Deserialize, Serialize};
use sqlx::Row;

/// A dialer campaign's id (distinct from mail campaigns).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct DialerCampaignId(pub i64);

/// A lead in the hopper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct LeadId(pub i64);

/// One retry rule: dial again after `after_minutes`, at most `max` times
/// for this result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetryRule {
    pub after_minutes: i64,
    pub max: i64,
}

/// Retry and recycle rules per call result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RetryRules {
    pub busy: RetryRule,
    pub no_answer: RetryRule,
    pub machine: RetryRule,
    /// Attempts per lead over all results.
    pub max_attempts: i64,
}

impl Default for RetryRules {
    fn default() -> Self {
        RetryRules {
            busy: RetryRule { after_minutes: 10, max: 3 },
            no_answer: RetryRule { after_minutes: 120, max: 3 },
            machine: RetryRule { after_minutes: 240, max: 2 },
            max_attempts: 5,
        }
    }
}

/// A daily call window in the callee's local time, `HH:MM`–`HH:MM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallWindow {
    pub start: String,
    pub end: String,
}

impl Default for CallWindow {
    fn default() -> Self {
        CallWindow { start: "08:00".into(), end: "21:00".into() }
    }
}

/// A campaign's configuration as it arrives from outside and as it is
/// stored (JSON). [`Store::create_dialer_campaign`] validates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DialerConfig {
    pub name: String,
    #[serde(default)]
    pub list_ids: Vec<ListId>,
    /// `preview`, `progressive`, `power`, `predictive` or `vicidial`.
    #[serde(default = "default_mode")]
    pub pacing: String,
    /// Lines per ready agent for `power` (≥ 1).
    #[serde(default = "default_ratio")]
    pub ratio: f64,
    /// Abandon target as a fraction (0.03 = 3%).
    #[serde(default = "default_abandon")]
    pub abandon_target: f64,
    #[serde(default = "default_ring")]
    pub ring_timeout_s: i64,
    #[serde(default)]
    pub caller_id: String,
    /// Where calls go: the carrier's `host:port`.
    #[serde(default)]
    pub trunk: String,
    #[serde(default)]
    pub window: CallWindow,
    /// Dates (`YYYY-MM-DD`, the callee's local date) with no calls.
    #[serde(default)]
    pub holidays: Vec<String>,
    #[serde(default)]
    pub retry: RetryRules,
    /// The UK rule: no repeat call within 72 h after an abandoned call.
    #[serde(default)]
    pub uk_72h_after_abandon: bool,
    /// Require recorded phone consent (not just the absence of DNC).
    #[serde(default)]
    pub require_consent: bool,
    /// The safe-harbour prompt played on an abandon (a media file name).
    #[serde(default)]
    pub safe_harbour_prompt: String,
    /// Questionnaire shown to the agent; answers are stored per attempt.
    #[serde(default)]
    pub script: Vec<Question>,
    /// The assumed share of machine-classified answers that were really
    /// people (AMD false positives), for the UK (Ofcom) abandon form:
    /// abandons + machines × this rate, over live answers + the same
    /// estimate. 0 when AMD is off.
    #[serde(default)]
    pub amd_fp_rate: f64,
    /// Where answered calls are recorded (a directory on the node; one
    /// 2-channel WAV per bridged call, its path on the attempt). Empty:
    /// no recording.
    #[serde(default)]
    pub recordings_dir: String,
    /// Answering-machine detection on answered calls; off by default
    /// (every answer goes straight to an agent, as without it).
    #[serde(default)]
    pub amd: AmdSettings,
}

/// A campaign's answering-machine detection: `mode` is `off`, `hangup`
/// (a machine is hung up on and retried by `retry.machine`), `message`
/// (`prompt` is played once the greeting has ended, then the call is hung
/// up) or `agent` (machines are passed to an agent anyway). The detector's
/// own parameters are the dialer's tuned defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmdSettings {
    #[serde(default = "default_amd_mode")]
    pub mode: String,
    /// The message left on a machine (a media file), for `message`.
    #[serde(default)]
    pub prompt: String,
}

fn default_amd_mode() -> String {
    "off".into()
}

impl Default for AmdSettings {
    fn default() -> Self {
        AmdSettings { mode: default_amd_mode(), prompt: String::new() }
    }
}

impl AmdSettings {
    pub fn enabled(&self) -> bool {
        self.mode != "off"
    }
}

fn default_mode() -> String {
    "progressive".into()
}
fn default_ratio() -> f64 {
    1.0
}
fn default_abandon() -> f64 {
    0.03
}
fn default_ring() -> i64 {
    25
}

/// A question of a campaign script with its answer type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Question {
    pub key: String,
    pub text: String,
    /// `text`, `number`, `yesno` or `choice`.
    pub kind: String,
    #[serde(default)]
    pub choices: Vec<String>,
}

/// The validated window in minutes after local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl DialerConfig {
    /// Checks every field, reporting all problems at once.
    pub fn validate(&self) -> Result<()> {
        let mut p = Problems::default();
        if self.name.trim().is_empty() {
            p.push("name", "must not be empty");
        }
        if !["preview", "progressive", "power", "predictive", "vicidial"].contains(&self.pacing.as_str()) {
            p.push("pacing", "must be preview, progressive, power, predictive or vicidial");
        }
        if !(self.ratio >= 1.0 && self.ratio <= 10.0) {
            p.push("ratio", "must be between 1 and 10");
        }
        if !(self.abandon_target > 0.0 && self.abandon_target <= 1.0) {
            p.push("abandon_target", "must be a fraction above 0 and at most 1 (100%)");
        }
        if self.ring_timeout_s < 15 || self.ring_timeout_s > 120 {
            p.push("ring_timeout_s", "must be between 15 and 120 seconds (15 s is the legal minimum)");
        }
        if self.trunk.trim().is_empty() {
            p.push("trunk", "a trunk address is required");
        } else if self.trunk.parse::<std::net::SocketAddr>().is_err() {
            p.push("trunk", "must be host:port with a numeric address");
        }
        match self.window() {
            Ok(w) if w.start >= w.end => p.push("window", "the window is empty (start must be before end)"),
            Ok(_) => {}
            Err(e) => p.push("window", e),
        }
        for h in &self.holidays {
            if NaiveDate::parse_from_str(h, "%Y-%m-%d").is_err() {
                p.push("holidays", format!("{h:?} is not a YYYY-MM-DD date"));
            }
        }
        let r = &self.retry;
        for (f, rule) in [("retry.busy", r.busy), ("retry.no_answer", r.no_answer), ("retry.machine", r.machine)] {
            if rule.after_minutes < 1 || rule.max < 0 {
                p.push(f, "after_minutes must be ≥ 1 and max ≥ 0");
            }
        }
        if !(self.amd_fp_rate >= 0.0 && self.amd_fp_rate <= 1.0) {
            p.push("amd_fp_rate", "must be a fraction between 0 and 1");
        }
        match self.amd.mode.as_str() {
            "off" | "hangup" | "agent" => {}
            "message" if self.amd.prompt.trim().is_empty() => p.push("amd.prompt", "mode message needs the prompt to leave"),
            "message" => {}
            m => p.push("amd.mode", format!("{m:?} is not off, hangup, message or agent")),
        }
        if r.max_attempts < 1 {
            p.push("retry.max_attempts", "must be at least 1");
        }
        let mut keys = std::collections::HashSet::new();
        for q in &self.script {
            if q.key.trim().is_empty() || !keys.insert(q.key.clone()) {
                p.push("script", format!("question keys must be unique and non-empty ({:?})", q.key));
            }
            if !["text", "number", "yesno", "choice"].contains(&q.kind.as_str()) {
                p.push("script", format!("question {:?}: kind must be text, number, yesno or choice", q.key));
            }
        }
        if p.0.is_empty() { Ok(()) } else { Err(Error::Invalid(p.0)) }
    }

    pub fn window(&self) -> std::result::Result<Window, String> {
        let t = |s: &str| NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("{s:?} is not HH:MM"));
        Ok(Window { start: t(&self.window.start)?, end: t(&self.window.end)? })
    }

    fn holiday_dates(&self) -> Vec<NaiveDate> {
        self.holidays.iter().filter_map(|h| NaiveDate::parse_from_str(h, "%Y-%m-%d").ok()).collect()
    }

    /// Checks a script answer against its question's type.
    pub fn check_answer(&self, key: &str, value: &str) -> std::result::Result<(), String> {
        let q = self.script.iter().find(|q| q.key == key).ok_or_else(|| format!("no question {key:?}"))?;
        let ok = match q.kind.as_str() {
            "number" => value.trim().parse::<f64>().is_ok(),
            "yesno" => value == "yes" || value == "no",
            "choice" => q.choices.iter().any(|c| c == value),
            _ => value.len() <= 2000,
        };
        if ok { Ok(()) } else { Err(format!("{value:?} is not a valid {} answer", q.kind)) }
    }
}

/// The time zone used for a number's region. Multi-zone countries get one
/// representative zone (see the module docs for the caveat).
pub fn region_tz(region: &str) -> chrono_tz::Tz {
    use chrono_tz::Tz::*;
    match region {
        "IT" | "SM" | "VA" => Europe__Rome,
        "GB" | "IE" | "IM" | "JE" | "GG" => Europe__London,
        "FR" | "MC" => Europe__Paris,
        "DE" | "AT" | "CH" | "LI" => Europe__Berlin,
        "ES" => Europe__Madrid,
        "PT" => Europe__Lisbon,
        "NL" | "BE" | "LU" => Europe__Amsterdam,
        "SE" | "NO" | "DK" | "PL" | "CZ" | "SK" | "HU" | "SI" | "HR" | "MT" => Europe__Stockholm,
        "GR" | "CY" | "RO" | "BG" | "FI" | "EE" | "LV" | "LT" => Europe__Athens,
        "US" | "CA" => America__New_York,
        "MX" => America__Mexico_City,
        "BR" => America__Sao_Paulo,
        "AR" => America__Argentina__Buenos_Aires,
        "AU" => Australia__Sydney,
        "NZ" => Pacific__Auckland,
        "JP" => Asia__Tokyo,
        "CN" | "HK" | "SG" | "TW" => Asia__Shanghai,
        "IN" => Asia__Kolkata,
        "RU" => Europe__Moscow,
        "ZA" => Africa__Johannesburg,
        _ => UTC,
    }
}

/// When a callee in `tz` may next be called at or after `now`: `now`
/// itself when inside the window on a non-holiday, else the next window
/// opening; `None` if no opening exists within two weeks (all holidays).
pub fn next_open(now: Millis, tz: chrono_tz::Tz, w: Window, holidays: &[NaiveDate]) -> Option<Millis> {
    let utc = chrono::DateTime::from_timestamp_millis(now)?;
    let local = utc.with_timezone(&tz);
    let today = local.date_naive();
    for d in 0..15 {
        let day = today.checked_add_days(chrono::Days::new(d))?;
        if holidays.contains(&day) {
            continue;
        }
        let open = tz.from_local_datetime(&day.and_time(w.start)).earliest()?.timestamp_millis();
        let close = tz.from_local_datetime(&day.and_time(w.end)).earliest()?.timestamp_millis();
        if now < open {
            return Some(open);
        }
        if now < close {
            return Some(now);
        }
    }
    None
}

/// A stored dialer campaign.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DialerCampaign {
    pub id: DialerCampaignId,
    pub config: DialerConfig,
    pub running: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A lead handed to a dialer node by [`Store::dialer_claim`].
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ClaimedLead {
    pub lead_id: LeadId,
    /// The attempt this claim opened; its record is closed by
    /// [`Store::dialer_finish`] (or by recovery after a crash).
    pub attempt_id: i64,
    pub party_id: Option<PartyId>,
    pub number: PhoneNumber,
    pub attempts: i64,
    /// A callback reserved for one agent.
    pub callback_agent: Option<UserId>,
}

/// What one claim did besides handing out leads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ClaimReport {
    pub leads: Vec<ClaimedLead>,
    /// Leads found on a DNC list or without consent, closed as `dnc`.
    pub dnc: Vec<LeadId>,
    /// Leads outside their window, moved to their next opening.
    pub deferred: Vec<LeadId>,
}

/// How a dial attempt ended, from the dialer's point of view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AttemptResult {
    Busy,
    NoAnswer,
    Machine,
    /// Network or carrier failure (not the callee's doing): retried like
    /// no-answer but without counting against the no-answer rule.
    Failed,
    /// Answered live, no agent within the grace time: safe-harbour message.
    Abandoned,
    /// Talked to an agent; the disposition decides.
    Disposed { final_: bool, callback_at: Option<Millis>, callback_agent: Option<UserId> },
    /// Preview: the agent skipped the card. The lead goes back to the queue
    /// (after the busy interval) and the attempt does not count.
    Skipped,
    /// The agent's leg died while the call was theirs: retried like a
    /// carrier failure.
    AgentGone,
}

impl AttemptResult {
    fn label(&self) -> &'static str {
        match self {
            AttemptResult::Busy => "busy",
            AttemptResult::NoAnswer => "no_answer",
            AttemptResult::Machine => "machine",
            AttemptResult::Failed => "failed",
            AttemptResult::Abandoned => "abandoned",
            AttemptResult::Disposed { final_: true, .. } => "disposed",
            AttemptResult::Disposed { .. } => "callback",
            AttemptResult::Skipped => "skipped",
            AttemptResult::AgentGone => "agent_gone",
        }
    }
}

/// A lead's row as tests and the API see it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LeadRow {
    pub id: LeadId,
    pub party_id: Option<PartyId>,
    pub raw_number: String,
    pub e164: Option<String>,
    pub state: String,
    pub priority: i64,
    pub due_at: Millis,
    pub attempts: i64,
    pub last_result: Option<String>,
    pub node_id: Option<String>,
    pub problem: Option<String>,
}

/// What loading leads into the hopper did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LoadReport {
    pub added: i64,
    /// Already in the campaign's hopper.
    pub skipped: i64,
    /// Numbers that did not parse: stored as `invalid`, never dialed.
    pub invalid: Vec<(String, String)>,
}

/// Counters of a campaign for live stats.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DialerCounts {
    pub leads_by_state: Vec<(String, i64)>,
    pub attempts: i64,
    pub live_answers: i64,
    pub abandons: i64,
    /// TSR form: abandons / live answers (0 with no answers).
    pub abandon_rate: f64,
}

fn campaign_row(r: &sqlx::any::AnyRow) -> Result<DialerCampaign> {
    let cfg: String = r.try_get("config")?;
    let config: DialerConfig = serde_json::from_str(&cfg).map_err(|_| Error::invalid("config", "stored config is corrupt"))?;
    Ok(DialerCampaign {
        id: DialerCampaignId(r.try_get("id")?),
        config,
        running: crate::store::b(r.try_get("running")?),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

const LEAD_COLS: &str = "id, party_id, raw_number, e164, state, priority, due_at, attempts, last_result, node_id, problem";

fn lead_row(r: &sqlx::any::AnyRow) -> Result<LeadRow> {
    Ok(LeadRow {
        id: LeadId(r.try_get("id")?),
        party_id: r.try_get::<Option<i64>, _>("party_id")?.map(PartyId),
        raw_number: r.try_get("raw_number")?,
        e164: r.try_get("e164")?,
        state: r.try_get("state")?,
        priority: r.try_get("priority")?,
        due_at: r.try_get("due_at")?,
        attempts: r.try_get("attempts")?,
        last_result: r.try_get("last_result")?,
        node_id: r.try_get("node_id")?,
        problem: r.try_get("problem")?,
    })
}

impl crate::Store {
    /// Creates a campaign after validating its configuration.
    pub async fn create_dialer_campaign(&self, actor: &Actor, config: DialerConfig, now: Millis) -> Result<DialerCampaign> {
        actor.require(crate::auth::Permission::ManageLists)?;
        config.validate()?;
        let json = serde_json::to_string(&config).map_err(|_| Error::invalid("config", "not serialisable"))?;
        let mut tx = self.begin().await?;
        let dup = sqlx::query("SELECT id FROM dialer_campaigns WHERE name = $1").bind(&config.name).fetch_optional(&mut *tx).await?;
        if dup.is_some() {
            return Err(Error::Duplicate(format!("a dialer campaign named {:?} exists", config.name)));
        }
        let row = sqlx::query(
            "INSERT INTO dialer_campaigns (name, config, running, created_at, updated_at) VALUES ($1, $2, 0, $3, $3) \
             RETURNING id, config, running, created_at, updated_at",
        )
        .bind(&config.name)
        .bind(&json)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        campaign_row(&row)
    }

    /// Replaces a campaign's configuration.
    pub async fn update_dialer_campaign(&self, actor: &Actor, id: DialerCampaignId, config: DialerConfig, now: Millis) -> Result<DialerCampaign> {
        actor.require(crate::auth::Permission::ManageLists)?;
        config.validate()?;
        let json = serde_json::to_string(&config).map_err(|_| Error::invalid("config", "not serialisable"))?;
        let row = sqlx::query(
            "UPDATE dialer_campaigns SET name = $1, config = $2, updated_at = $3 WHERE id = $4 \
             RETURNING id, config, running, created_at, updated_at",
        )
        .bind(&config.name)
        .bind(&json)
        .bind(now)
        .bind(id.0)
        .fetch_optional(&self.write)
        .await?
        .ok_or(Error::NotFound("dialer campaign"))?;
        campaign_row(&row)
    }

    pub async fn get_dialer_campaign(&self, id: DialerCampaignId) -> Result<DialerCampaign> {
        let row = sqlx::query("SELECT id, config, running, created_at, updated_at FROM dialer_campaigns WHERE id = $1")
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("dialer campaign"))?;
        campaign_row(&row)
    }

    pub async fn dialer_campaigns(&self) -> Result<Vec<DialerCampaign>> {
        let rows = sqlx::query("SELECT id, config, running, created_at, updated_at FROM dialer_campaigns ORDER BY id")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(campaign_row).collect()
    }

    pub async fn delete_dialer_campaign(&self, actor: &Actor, id: DialerCampaignId) -> Result<()> {
        actor.require(crate::auth::Permission::ManageLists)?;
        let n = sqlx::query("DELETE FROM dialer_campaigns WHERE id = $1").bind(id.0).execute(&self.write).await?.rows_affected();
        if n == 0 { Err(Error::NotFound("dialer campaign")) } else { Ok(()) }
    }

    /// Marks a campaign running or stopped (the runtime starts running ones).
    pub async fn set_dialer_running(&self, actor: &Actor, id: DialerCampaignId, running: bool, now: Millis) -> Result<()> {
        actor.require(crate::auth::Permission::ManageLists)?;
        let n = sqlx::query("UPDATE dialer_campaigns SET running = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(running))
            .bind(now)
            .bind(id.0)
            .execute(&self.write)
            .await?
            .rows_affected();
        if n == 0 { Err(Error::NotFound("dialer campaign")) } else { Ok(()) }
    }

    /// Adds numbers to the imported do-not-call list; returns how many were
    /// new. Numbers that do not parse are reported as field errors.
    pub async fn add_dnc_numbers(&self, actor: &Actor, numbers: &[String], source: &str, now: Millis) -> Result<u64> {
        actor.require(crate::auth::Permission::ManageLists)?;
        let mut p = Problems::default();
        let parsed: Vec<PhoneNumber> = numbers
            .iter()
            .enumerate()
            .filter_map(|(i, n)| p.check(&format!("numbers[{i}]"), PhoneNumber::parse(n, self.region)))
            .collect();
        if !p.0.is_empty() {
            return Err(Error::Invalid(p.0));
        }
        let mut tx = self.begin().await?;
        let mut added = 0;
        for n in parsed {
            added += sqlx::query("INSERT INTO dialer_dnc (e164, source, added_at) VALUES ($1, $2, $3) ON CONFLICT (e164) DO NOTHING")
                .bind(n.as_str())
                .bind(source)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Loads the members of the campaign's lists (first phone of each
    /// party) into its hopper. Idempotent: a party already in the hopper is
    /// skipped.
    pub async fn dialer_load_lists(&self, actor: &Actor, id: DialerCampaignId, now: Millis) -> Result<LoadReport> {
        let camp = self.get_dialer_campaign(id).await?;
        let mut leads = Vec::new();
        for list in &camp.config.list_ids {
            for party in self.list_member_ids(actor, *list).await? {
                let phone: Option<String> =
                    sqlx::query_scalar("SELECT e164 FROM party_phones WHERE party_id = $1 ORDER BY position, id LIMIT 1")
                        .bind(party.0)
                        .fetch_optional(&self.read)
                        .await?;
                leads.push((Some(party), phone.unwrap_or_default(), 0));
            }
        }
        self.dialer_add_leads(actor, id, &leads, now).await
    }

    /// Adds leads given as (party, number as written, priority). A number
    /// that does not parse is stored `invalid` with the reason and reported.
    pub async fn dialer_add_leads(
        &self,
        actor: &Actor,
        id: DialerCampaignId,
        leads: &[(Option<PartyId>, String, i64)],
        now: Millis,
    ) -> Result<LoadReport> {
        actor.require(crate::auth::Permission::ManageLists)?;
        let mut report = LoadReport::default();
        let mut tx = self.begin().await?;
        for (party, raw, priority) in leads {
            if let Some(p) = party {
                let exists = sqlx::query("SELECT id FROM dialer_leads WHERE campaign_id = $1 AND party_id = $2")
                    .bind(id.0)
                    .bind(p.0)
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_some() {
                    report.skipped += 1;
                    continue;
                }
            }
            let parsed = PhoneNumber::parse(raw, self.region);
            let (state, e164, tz, problem) = match &parsed {
                Ok(n) => {
                    let tz = n.region_code().map(|r| region_tz(&r)).unwrap_or(chrono_tz::UTC);
                    ("ready", Some(n.as_str().to_string()), Some(tz.name().to_string()), None)
                }
                Err(e) => {
                    report.invalid.push((raw.clone(), e.clone()));
                    ("invalid", None, None, Some(e.clone()))
                }
            };
            sqlx::query(
                "INSERT INTO dialer_leads (campaign_id, party_id, raw_number, e164, tz, state, priority, due_at, problem, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8)",
            )
            .bind(id.0)
            .bind(party.map(|p| p.0))
            .bind(raw)
            .bind(e164)
            .bind(tz)
            .bind(state)
            .bind(*priority)
            .bind(now)
            .bind(problem)
            .execute(&mut *tx)
            .await?;
            if state == "ready" {
                report.added += 1;
            }
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Claims up to `n` due leads of a campaign for `node_id`, atomically
    /// (see the module docs). On the way, leads found on a DNC list or
    /// lacking required consent are closed as `dnc`, and leads outside their
    /// call window are moved to their next opening — neither is dialed.
    pub async fn dialer_claim(&self, id: DialerCampaignId, n: usize, now: Millis, node_id: &str) -> Result<ClaimReport> {
        self.dialer_claim_for(id, n, now, node_id, None).await
    }

    /// [`Store::dialer_claim`] restricted to callbacks that can be served
    /// now: with `Some(agents)`, a callback reserved for one agent is
    /// claimed only when that agent is among `agents` (the agents ready on
    /// the claiming node); otherwise it keeps waiting in the queue, due,
    /// for its agent to come back. `None` claims every due lead.
    pub async fn dialer_claim_for(&self, id: DialerCampaignId, n: usize, now: Millis, node_id: &str, agents: Option<&[UserId]>) -> Result<ClaimReport> {
        let camp = self.get_dialer_campaign(id).await?;
        let window = camp.config.window().map_err(|e| Error::invalid("window", e))?;
        let holidays = camp.config.holiday_dates();
        let mut report = ClaimReport::default();
        if n == 0 {
            return Ok(report);
        }
        let lock = match self.backend {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        // Over-fetch: some candidates may be deferred or DNC.
        let limit = (n * 3 + 8) as i64;
        // Placeholders only ($4, $5, …): the agent ids are bound.
        let only = match agents {
            None => String::new(),
            Some([]) => " AND l.callback_agent IS NULL".to_string(),
            Some(list) => {
                let ph: Vec<String> = (0..list.len()).map(|i| format!("${}", i + 4)).collect();
                format!(" AND (l.callback_agent IS NULL OR l.callback_agent IN ({}))", ph.join(", "))
            }
        };
        let mut tx = self.begin().await?;
        if self.backend == Backend::Sqlite {
            // Take SQLite's write lock first: a read-then-write transaction
            // that meets another process's writer cannot upgrade and fails
            // at once, while a transaction that starts by writing waits
            // under the busy timeout like any writer.
            sqlx::query("UPDATE dialer_campaigns SET running = running WHERE id = $1").bind(id.0).execute(&mut *tx).await?;
        }
        let q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT l.id, l.party_id, l.e164, l.tz, l.attempts, l.callback_agent, l.last_abandon_at, \
             COALESCE((SELECT p.do_not_call FROM parties p WHERE p.id = l.party_id), 0) AS party_dnc, \
             (SELECT COUNT(*) FROM dialer_dnc d WHERE d.e164 = l.e164) AS listed, \
             (SELECT COUNT(*) FROM party_consents c WHERE c.party_id = l.party_id AND c.channel = 'phone' AND c.granted = 1) AS consent, \
             (SELECT COUNT(*) FROM party_consents c WHERE c.party_id = l.party_id AND c.channel = 'phone' AND c.granted = 0) AS refused \
             FROM dialer_leads l WHERE l.campaign_id = $1 AND l.state = 'ready' AND l.due_at <= $2{only} \
             AND NOT EXISTS (SELECT 1 FROM dialer_dialogs g JOIN dialer_attempts a ON a.id = g.attempt_id WHERE a.lead_id = l.id AND g.answered = 1) \
             ORDER BY l.priority DESC, l.due_at, l.id LIMIT $3{lock}"
        )));
        let mut q = q.bind(id.0).bind(now).bind(limit);
        for a in agents.unwrap_or(&[]) {
            q = q.bind(a.0);
        }
        let rows = q.fetch_all(&mut *tx).await?;
        for r in rows {
            if report.leads.len() >= n {
                break;
            }
            let lead = LeadId(r.try_get("id")?);
            let e164: Option<String> = r.try_get("e164")?;
            let Some(number) = e164.as_deref().and_then(|s| PhoneNumber::from_e164(s).ok()) else {
                mark(&mut tx, lead, "invalid", Some("no usable number"), now).await?;
                continue;
            };
            let party_dnc: i64 = r.try_get("party_dnc")?;
            let listed: i64 = r.try_get("listed")?;
            let consent: i64 = r.try_get("consent")?;
            let refused: i64 = r.try_get("refused")?;
            if party_dnc != 0 || listed > 0 || refused > 0 || (camp.config.require_consent && consent == 0) {
                mark(&mut tx, lead, "dnc", Some("do-not-call or no phone consent"), now).await?;
                report.dnc.push(lead);
                continue;
            }
            let tz: chrono_tz::Tz = r.try_get::<Option<String>, _>("tz")?.and_then(|t| t.parse().ok()).unwrap_or(chrono_tz::UTC);
            let mut earliest = next_open(now, tz, window, &holidays);
            if camp.config.uk_72h_after_abandon {
                if let Some(ab) = r.try_get::<Option<i64>, _>("last_abandon_at")? {
                    let until = ab + 72 * 3_600_000;
                    if until > now {
                        earliest = next_open(until, tz, window, &holidays);
                    }
                }
            }
            match earliest {
                Some(t) if t <= now => {}
                Some(t) => {
                    sqlx::query("UPDATE dialer_leads SET due_at = $1, updated_at = $2 WHERE id = $3")
                        .bind(t)
                        .bind(now)
                        .bind(lead.0)
                        .execute(&mut *tx)
                        .await?;
                    report.deferred.push(lead);
                    continue;
                }
                None => {
                    mark(&mut tx, lead, "exhausted", Some("no call window open in the next two weeks"), now).await?;
                    continue;
                }
            }
            // The guard: only a row still `ready` flips, whatever else runs.
            let flipped = sqlx::query(
                "UPDATE dialer_leads SET state = 'in_flight', node_id = $1, claimed_at = $2, attempts = attempts + 1, updated_at = $2 \
                 WHERE id = $3 AND state = 'ready'",
            )
            .bind(node_id)
            .bind(now)
            .bind(lead.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if flipped != 1 {
                continue;
            }
            let attempt_id: i64 = sqlx::query_scalar(
                "INSERT INTO dialer_attempts (campaign_id, lead_id, node_id, started_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(id.0)
            .bind(lead.0)
            .bind(node_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            report.leads.push(ClaimedLead {
                lead_id: lead,
                attempt_id,
                party_id: r.try_get::<Option<i64>, _>("party_id")?.map(PartyId),
                number,
                attempts: r.try_get::<i64, _>("attempts")? + 1,
                callback_agent: r.try_get::<Option<i64>, _>("callback_agent")?.map(UserId),
            });
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Records the SIP call id, answer and bridge times of an attempt as
    /// they happen, so a crash leaves a record to close.
    pub async fn dialer_attempt_progress(
        &self,
        attempt_id: i64,
        call_id: Option<&str>,
        answered_at: Option<Millis>,
        bridged_at: Option<Millis>,
        agent: Option<UserId>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE dialer_attempts SET call_id = COALESCE($1, call_id), answered_at = COALESCE($2, answered_at), \
             bridged_at = COALESCE($3, bridged_at), agent_id = COALESCE($4, agent_id) WHERE id = $5",
        )
        .bind(call_id)
        .bind(answered_at)
        .bind(bridged_at)
        .bind(agent.map(|a| a.0))
        .bind(attempt_id)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Closes an attempt and moves its lead on by the campaign's retry
    /// rules. Returns the lead's new state. Idempotent per attempt: a
    /// second finish of the same attempt is a `Conflict`.
    pub async fn dialer_finish(&self, attempt_id: i64, result: AttemptResult, now: Millis) -> Result<String> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Sqlite {
            // Write first, for the lock-upgrade reason given in `dialer_claim`.
            sqlx::query("UPDATE dialer_attempts SET id = id WHERE id = $1").bind(attempt_id).execute(&mut *tx).await?;
        }
        let row = sqlx::query(
            "SELECT a.lead_id, a.campaign_id, a.ended_at, l.attempts, l.busy_count, l.no_answer_count, l.machine_count, l.state \
             FROM dialer_attempts a JOIN dialer_leads l ON l.id = a.lead_id WHERE a.id = $1",
        )
        .bind(attempt_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("dial attempt"))?;
        if row.try_get::<Option<i64>, _>("ended_at")?.is_some() {
            return Err(Error::Conflict);
        }
        let lead: i64 = row.try_get("lead_id")?;
        let camp: i64 = row.try_get("campaign_id")?;
        let attempts: i64 = row.try_get("attempts")?;
        let busy: i64 = row.try_get("busy_count")?;
        let na: i64 = row.try_get("no_answer_count")?;
        let mach: i64 = row.try_get("machine_count")?;
        let cfg_json: String = sqlx::query_scalar("SELECT config FROM dialer_campaigns WHERE id = $1").bind(camp).fetch_one(&mut *tx).await?;
        let cfg: DialerConfig = serde_json::from_str(&cfg_json).map_err(|_| Error::invalid("config", "stored config is corrupt"))?;
        let rules = cfg.retry;
        let min = 60_000;
        let out_of_attempts = attempts >= rules.max_attempts;
        let retry = |count: i64, rule: RetryRule| -> (&'static str, Millis) {
            if count + 1 > rule.max || out_of_attempts { ("exhausted", now) } else { ("ready", now + rule.after_minutes * min) }
        };
        let (state, due, callback_agent, abandon_at) = match &result {
            AttemptResult::Busy => {
                let (s, d) = retry(busy, rules.busy);
                (s, d, None, None)
            }
            AttemptResult::NoAnswer => {
                let (s, d) = retry(na, rules.no_answer);
                (s, d, None, None)
            }
            AttemptResult::Machine => {
                let (s, d) = retry(mach, rules.machine);
                (s, d, None, None)
            }
            AttemptResult::Skipped => ("ready", now + rules.busy.after_minutes * min, None, None),
            AttemptResult::Failed | AttemptResult::AgentGone => {
                if out_of_attempts { ("exhausted", now, None, None) } else { ("ready", now + rules.busy.after_minutes * min, None, None) }
            }
            AttemptResult::Abandoned => {
                // An abandoned callee is owed a call back with an agent; the
                // UK rule's 72 h embargo is applied at claim time.
                if out_of_attempts { ("exhausted", now, None, Some(now)) } else { ("ready", now + rules.no_answer.after_minutes * min, None, Some(now)) }
            }
            AttemptResult::Disposed { final_: true, .. } => ("done", now, None, None),
            AttemptResult::Disposed { callback_at, callback_agent, .. } => {
                ("ready", callback_at.unwrap_or(now + rules.no_answer.after_minutes * min), callback_agent.map(|a| a.0), None)
            }
        };
        let (db, dn, dm) = match result {
            AttemptResult::Busy => (1, 0, 0),
            AttemptResult::NoAnswer => (0, 1, 0),
            AttemptResult::Machine => (0, 0, 1),
            _ => (0, 0, 0),
        };
        let is_callback = matches!(result, AttemptResult::Disposed { final_: false, .. });
        // A skipped preview card was never dialed: it does not count.
        let uncount = i64::from(result == AttemptResult::Skipped);
        sqlx::query(
            "UPDATE dialer_leads SET state = $1, due_at = $2, busy_count = busy_count + $3, no_answer_count = no_answer_count + $4, \
             machine_count = machine_count + $5, last_result = $6, last_abandon_at = COALESCE($7, last_abandon_at), \
             callback_agent = $8, priority = CASE WHEN $9 = 1 THEN priority + 100 ELSE priority END, node_id = NULL, updated_at = $10, \
             attempts = attempts - $12 WHERE id = $11",
        )
        .bind(state)
        .bind(due)
        .bind(db)
        .bind(dn)
        .bind(dm)
        .bind(result.label())
        .bind(abandon_at)
        .bind(callback_agent)
        .bind(i64::from(is_callback))
        .bind(now)
        .bind(lead)
        .bind(uncount)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE dialer_attempts SET ended_at = $1, result = $2, abandoned = $3 WHERE id = $4")
            .bind(now)
            .bind(result.label())
            .bind(i64::from(result == AttemptResult::Abandoned))
            .bind(attempt_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(state.to_string())
    }

    /// At start-up of `node_id`: every lead it left in flight (a crash) goes
    /// back to `ready`, due now, and its open attempts are closed as
    /// `crashed`. Returns how many leads were recycled.
    pub async fn dialer_recover(&self, node_id: &str, now: Millis) -> Result<u64> {
        // A disposition the agent posted whose CRM steps or booking did not
        // finish before the crash is finished as posted — not recycled, so
        // the callee is not called again for a conversation already had.
        let posted = sqlx::query("SELECT id, disposition FROM dialer_attempts WHERE node_id = $1 AND ended_at IS NULL AND disposition IS NOT NULL ORDER BY id")
            .bind(node_id)
            .fetch_all(&self.write)
            .await?;
        for r in posted {
            let id: i64 = r.try_get("id")?;
            let json: String = r.try_get("disposition")?;
            let Ok(result) = serde_json::from_str::<AttemptResult>(&json) else { continue };
            self.dialer_dispose_steps(&Actor::system(), id, result, now).await?;
        }
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE dialer_attempts SET ended_at = $1, result = 'crashed' WHERE node_id = $2 AND ended_at IS NULL")
            .bind(now)
            .bind(node_id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "UPDATE dialer_leads SET state = 'ready', due_at = $1, node_id = NULL, last_result = 'crashed', updated_at = $1 \
             WHERE node_id = $2 AND state = 'in_flight'",
        )
        .bind(now)
        .bind(node_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n)
    }

    /// Keeps the SIP dialog of an outbound call this node placed (upsert:
    /// written at dial, again at answer), so that after a crash the
    /// restarted node can end it at the carrier ([`Store::dialer_dialogs_open`]).
    pub async fn dialer_dialog_save(&self, node_id: &str, attempt_id: Option<i64>, call_id: &str, answered: bool, dialog: &str, now: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO dialer_dialogs (call_id, node_id, attempt_id, answered, dialog, updated_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (call_id) DO UPDATE SET answered = excluded.answered, dialog = excluded.dialog, updated_at = excluded.updated_at",
        )
        .bind(call_id)
        .bind(node_id)
        .bind(attempt_id)
        .bind(i64::from(answered))
        .bind(dialog)
        .bind(now)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The call ended (or was confirmed gone): forget its dialog.
    pub async fn dialer_dialog_end(&self, call_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM dialer_dialogs WHERE call_id = $1").bind(call_id).execute(&self.write).await?;
        Ok(())
    }

    /// Dialogs this node left up (a crash): `(call_id, answered, dialog)`,
    /// oldest first.
    pub async fn dialer_dialogs_open(&self, node_id: &str) -> Result<Vec<(String, bool, String)>> {
        let rows = sqlx::query("SELECT call_id, answered, dialog FROM dialer_dialogs WHERE node_id = $1 ORDER BY updated_at, call_id")
            .bind(node_id)
            .fetch_all(&self.write)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("call_id")?, r.try_get::<i64, _>("answered")? != 0, r.try_get("dialog")?))).collect()
    }

    /// Stores questionnaire answers of an attempt (validated by type).
    pub async fn dialer_save_answers(&self, attempt_id: i64, answers: &[(String, String)]) -> Result<()> {
        let camp: i64 = sqlx::query_scalar("SELECT campaign_id FROM dialer_attempts WHERE id = $1")
            .bind(attempt_id)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("dial attempt"))?;
        let cfg = self.get_dialer_campaign(DialerCampaignId(camp)).await?.config;
        let mut p = Problems::default();
        for (k, v) in answers {
            if let Err(e) = cfg.check_answer(k, v) {
                p.push(format!("answers.{k}"), e);
            }
        }
        if !p.0.is_empty() {
            return Err(Error::Invalid(p.0));
        }
        let mut tx = self.begin().await?;
        for (k, v) in answers {
            sqlx::query(
                "INSERT INTO dialer_answers (attempt_id, question, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (attempt_id, question) DO UPDATE SET value = excluded.value",
            )
            .bind(attempt_id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Parties whose stored answer to `question` equals `value` (for
    /// dynamic lists built from questionnaire answers).
    pub async fn dialer_parties_answering(&self, id: DialerCampaignId, question: &str, value: &str) -> Result<Vec<PartyId>> {
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT l.party_id FROM dialer_answers x JOIN dialer_attempts a ON a.id = x.attempt_id \
             JOIN dialer_leads l ON l.id = a.lead_id WHERE a.campaign_id = $1 AND x.question = $2 AND x.value = $3 \
             AND l.party_id IS NOT NULL ORDER BY l.party_id",
        )
        .bind(id.0)
        .bind(question)
        .bind(value)
        .fetch_all(&self.read)
        .await?;
        Ok(ids.into_iter().map(PartyId).collect())
    }

    pub async fn dialer_leads(&self, id: DialerCampaignId) -> Result<Vec<LeadRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {LEAD_COLS} FROM dialer_leads WHERE campaign_id = $1 ORDER BY id")))
            .bind(id.0)
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(lead_row).collect()
    }

    /// Lead states, attempts, live answers and abandons of a campaign.
    pub async fn dialer_counts(&self, id: DialerCampaignId) -> Result<DialerCounts> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM dialer_leads WHERE campaign_id = $1 GROUP BY state ORDER BY state")
            .bind(id.0)
            .fetch_all(&self.read)
            .await?;
        let mut c = DialerCounts::default();
        for r in rows {
            c.leads_by_state.push((r.try_get("state")?, r.try_get("n")?));
        }
        let r = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(CASE WHEN result IN ('abandoned','disposed','callback') THEN 1 ELSE 0 END), 0) AS BIGINT) AS live, \
             CAST(COALESCE(SUM(abandoned), 0) AS BIGINT) AS ab FROM dialer_attempts WHERE campaign_id = $1",
        )
        .bind(id.0)
        .fetch_one(&self.read)
        .await?;
        c.attempts = r.try_get("n")?;
        c.live_answers = r.try_get("live")?;
        c.abandons = r.try_get("ab")?;
        c.abandon_rate = if c.live_answers > 0 { c.abandons as f64 / c.live_answers as f64 } else { 0.0 };
        Ok(c)
    }
}

async fn mark(tx: &mut sqlx::Transaction<'static, sqlx::Any>, lead: LeadId, state: &str, problem: Option<&str>, now: Millis) -> Result<()> {
    sqlx::query("UPDATE dialer_leads SET state = $1, problem = $2, updated_at = $3 WHERE id = $4")
        .bind(state)
        .bind(problem)
        .bind(now)
        .bind(lead.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The CRM side of a disposition: an outcome of the `Call` action type in
/// the outcome graph (seed 004), with the agent's notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CallOutcome {
    pub outcome_id: crate::outcomes::OutcomeId,
    #[serde(default)]
    pub notes: Option<String>,
}

/// What a disposition did, in the hopper and in the CRM.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DisposeReport {
    /// The lead's state after the retry rules.
    pub lead_state: String,
    /// The `Call` activity completed with the outcome (when the lead has a party).
    pub activity_id: Option<crate::ActivityId>,
    /// The follow-up the outcome graph scheduled.
    pub follow_up_id: Option<crate::ActivityId>,
    pub commercial_state_id: Option<crate::CommercialStateId>,
    pub points: i64,
}

/// One dial attempt: the dialer's call record.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AttemptRow {
    pub id: i64,
    pub lead_id: LeadId,
    pub node_id: String,
    pub call_id: Option<String>,
    pub agent_id: Option<UserId>,
    pub started_at: Millis,
    pub answered_at: Option<Millis>,
    pub bridged_at: Option<Millis>,
    pub ended_at: Option<Millis>,
    /// `busy`, `no_answer`, `machine`, `failed`, `abandoned`, `disposed`,
    /// `callback`, `skipped`, `agent_gone` or `crashed`; none while open.
    pub result: Option<String>,
    pub outcome_id: Option<crate::outcomes::OutcomeId>,
    pub activity_id: Option<crate::ActivityId>,
    pub notes: Option<String>,
    pub recording: Option<String>,
    /// The answering-machine detector's verdict (`human`, `machine`,
    /// `not_sure`); none when AMD was off or the call was not answered.
    pub amd: Option<String>,
}

/// Abandon rates of a campaign over its measurement windows, from the
/// stored attempts (so they survive restarts and span nodes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AbandonStats {
    /// Live answers (talked to an agent, or abandoned) in the last 30 days.
    pub live_30d: i64,
    pub abandons_30d: i64,
    /// Answers classified as machines in the last 30 days.
    pub machine_30d: i64,
    /// TSR form: abandons / live answers, last 30 days.
    pub tsr_30d: f64,
    /// UK form: (abandons + machines × AMD FP rate) / (live + the same estimate).
    pub uk_30d: f64,
    /// The worst rolling 24 h window within the 30 days, TSR form.
    pub worst_24h_tsr: f64,
    /// End of that window (unix millis; none without live answers).
    pub worst_24h_tsr_end: Option<Millis>,
    pub worst_24h_uk: f64,
    pub worst_24h_uk_end: Option<Millis>,
    /// Answer → bridge latency over the 30 days, in ms.
    pub bridged_30d: i64,
    pub bridge_p50_ms: i64,
    pub bridge_p99_ms: i64,
    /// Due callbacks reserved for one agent, waiting for that agent.
    pub callbacks_waiting: i64,
}

const DAY: Millis = 24 * 3_600_000;

/// TSR and UK rates of counts; 0 with nothing answered.
fn rates(live: f64, ab: f64, mach: f64, fp: f64) -> (f64, f64) {
    let tsr = if live > 0.0 { ab / live } else { 0.0 };
    let est = mach * fp;
    let uk = if live + est > 0.0 { (ab + est) / (live + est) } else { 0.0 };
    (tsr, uk)
}

/// The worst rolling-24 h abandon rates over events `(ended_at, live,
/// abandoned, machine)` sorted by time: every window ending at an event.
pub fn worst_24h(events: &[(Millis, bool, bool, bool)], fp: f64) -> ((f64, Option<Millis>), (f64, Option<Millis>)) {
    let (mut lo, mut live, mut ab, mut mach) = (0usize, 0f64, 0f64, 0f64);
    let (mut tsr, mut uk) = ((0.0, None), (0.0, None));
    for (hi, &(t, l, a, m)) in events.iter().enumerate() {
        live += f64::from(u8::from(l));
        ab += f64::from(u8::from(a));
        mach += f64::from(u8::from(m));
        while lo < hi && events[lo].0 <= t - DAY {
            let (_, l, a, m) = events[lo];
            live -= f64::from(u8::from(l));
            ab -= f64::from(u8::from(a));
            mach -= f64::from(u8::from(m));
            lo += 1;
        }
        let (x, y) = rates(live, ab, mach, fp);
        if x > tsr.0 {
            tsr = (x, Some(t));
        }
        if y > uk.0 {
            uk = (y, Some(t));
        }
    }
    (tsr, uk)
}

const ATTEMPT_COLS: &str = "id, lead_id, node_id, call_id, agent_id, started_at, answered_at, bridged_at, ended_at, result, outcome_id, activity_id, notes, recording, amd";

impl crate::Store {
    /// Books an agent's disposition of an attempt: the CRM outcome (a
    /// `Call` activity on the lead's party completed through the outcome
    /// graph — commercial state, follow-up, points), then the hopper (retry
    /// rules, callbacks) and the attempt record. A callback without a time
    /// is due when the follow-up call the outcome scheduled is.
    ///
    /// Exactly once across a crash: the disposition and the activity are
    /// written on the attempt first, in one transaction; the completion and
    /// the booking follow, and [`Store::dialer_recover`] finishes whatever
    /// a crash interrupted, as posted. An outcome the graph does not allow
    /// for a call is `Invalid` and changes nothing; a closed attempt is a
    /// `Conflict`.
    pub async fn dialer_dispose(&self, actor: &Actor, attempt_id: i64, result: AttemptResult, outcome: Option<CallOutcome>, now: Millis) -> Result<DisposeReport> {
        let call_type = match &outcome {
            Some(o) => {
                let t = self.ensure_action_type(&Actor::system(), "Call").await?;
                if !self.allowed_outcomes(t).await?.iter().any(|x| x.id == o.outcome_id) {
                    return Err(Error::invalid("outcome_id", "not an allowed outcome of a call in the outcome graph"));
                }
                Some(t)
            }
            None => None,
        };
        let notes = crate::activities::clean_notes(outcome.as_ref().and_then(|o| o.notes.clone()))?;
        let json = serde_json::to_string(&result).map_err(|_| Error::invalid("disposition", "not serialisable"))?;
        let mut tx = self.begin().await?;
        if self.backend == Backend::Sqlite {
            sqlx::query("UPDATE dialer_attempts SET id = id WHERE id = $1").bind(attempt_id).execute(&mut *tx).await?;
        }
        let row = sqlx::query(
            "SELECT a.ended_at, a.agent_id, a.activity_id, a.disposition, l.party_id FROM dialer_attempts a \
             JOIN dialer_leads l ON l.id = a.lead_id WHERE a.id = $1",
        )
        .bind(attempt_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound("dial attempt"))?;
        if row.try_get::<Option<i64>, _>("ended_at")?.is_some() || row.try_get::<Option<String>, _>("disposition")?.is_some() {
            return Err(Error::Conflict);
        }
        let agent = row.try_get::<Option<i64>, _>("agent_id")?.map(UserId);
        let party = row.try_get::<Option<i64>, _>("party_id")?.map(PartyId);
        let mut activity = row.try_get::<Option<i64>, _>("activity_id")?.map(crate::ActivityId);
        if let (Some(t), Some(party), None) = (call_type, party, activity) {
            let new = crate::activities::NewActivity {
                kind: crate::activities::ActivityKind::Call,
                party_id: party,
                deal_id: None,
                action_type_id: t,
                owner_id: agent.or(actor.log_id().map(UserId)),
                subject: "Dialer call".into(),
                notes: None,
                due_at: Some(now),
                parent_activity_id: None,
                follow_up_of: None,
            };
            activity = Some(crate::activities::insert_activity(&mut tx, actor, &new, now).await?.id);
        }
        sqlx::query("UPDATE dialer_attempts SET disposition = $1, outcome_id = $2, notes = $3, activity_id = $4 WHERE id = $5")
            .bind(&json)
            .bind(outcome.as_ref().map(|o| o.outcome_id.0))
            .bind(&notes)
            .bind(activity.map(|a| a.0))
            .bind(attempt_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        // Points go to the agent who had the call: when someone else posts
        // for them, the completion runs as the system (points to the owner).
        let by = if agent.is_none() || agent == Some(actor.user) { actor.clone() } else { Actor::system() };
        self.dialer_dispose_steps(&by, attempt_id, result, now).await
    }

    /// The steps after the intent is stored: complete the activity (a
    /// completed one is left alone), then book the attempt (a booked one
    /// is left alone). Safe to repeat.
    async fn dialer_dispose_steps(&self, actor: &Actor, attempt_id: i64, result: AttemptResult, now: Millis) -> Result<DisposeReport> {
        let row = sqlx::query("SELECT activity_id, outcome_id, notes, ended_at, result FROM dialer_attempts WHERE id = $1")
            .bind(attempt_id)
            .fetch_optional(&self.write)
            .await?
            .ok_or(Error::NotFound("dial attempt"))?;
        let mut rep = DisposeReport::default();
        let activity = row.try_get::<Option<i64>, _>("activity_id")?.map(crate::ActivityId);
        let outcome = row.try_get::<Option<i64>, _>("outcome_id")?.map(crate::outcomes::OutcomeId);
        if let (Some(a), Some(o)) = (activity, outcome) {
            rep.activity_id = Some(a);
            let notes: Option<String> = row.try_get("notes")?;
            match self.complete_activity(actor, a, Some(o), notes, now).await {
                Ok(done) => {
                    rep.follow_up_id = done.follow_up.map(|f| f.id);
                    rep.commercial_state_id = done.commercial_state_id;
                    rep.points = done.points;
                }
                Err(Error::Conflict) => {}
                Err(e) => return Err(e),
            }
        }
        // A callback without a time takes the follow-up call the outcome
        // graph scheduled (e.g. Callback → a call tomorrow), so the hopper
        // and the agenda agree.
        let result = match (result, activity) {
            (AttemptResult::Disposed { final_: false, callback_at: None, callback_agent }, Some(a)) => {
                let due: Option<Option<Millis>> = sqlx::query_scalar("SELECT due_at FROM activities WHERE follow_up_of = $1 AND kind = 'call' ORDER BY id LIMIT 1")
                    .bind(a.0)
                    .fetch_optional(&self.write)
                    .await?;
                AttemptResult::Disposed { final_: false, callback_at: due.flatten(), callback_agent }
            }
            (r, _) => r,
        };
        rep.lead_state = match self.dialer_finish(attempt_id, result, now).await {
            Ok(s) => s,
            Err(Error::Conflict) => {
                sqlx::query_scalar("SELECT l.state FROM dialer_leads l JOIN dialer_attempts a ON a.lead_id = l.id WHERE a.id = $1")
                    .bind(attempt_id)
                    .fetch_one(&self.write)
                    .await?
            }
            Err(e) => return Err(e),
        };
        Ok(rep)
    }

    /// Records the answering-machine detector's verdict on an attempt
    /// (`human`, `machine` or `not_sure`; anything else is refused).
    pub async fn dialer_attempt_amd(&self, attempt_id: i64, verdict: &str) -> Result<()> {
        if !["human", "machine", "not_sure"].contains(&verdict) {
            return Err(Error::invalid("amd", format!("{verdict:?} is not human, machine or not_sure")));
        }
        sqlx::query("UPDATE dialer_attempts SET amd = $1 WHERE id = $2").bind(verdict).bind(attempt_id).execute(&self.write).await?;
        Ok(())
    }

    /// Records where an attempt's call was recorded.
    pub async fn dialer_attempt_recording(&self, attempt_id: i64, path: &str) -> Result<()> {
        sqlx::query("UPDATE dialer_attempts SET recording = $1 WHERE id = $2").bind(path).bind(attempt_id).execute(&self.write).await?;
        Ok(())
    }

    /// A campaign's attempts (call records), oldest first.
    pub async fn dialer_attempts(&self, id: DialerCampaignId) -> Result<Vec<AttemptRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {ATTEMPT_COLS} FROM dialer_attempts WHERE campaign_id = $1 ORDER BY id")))
            .bind(id.0)
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptRow {
                    id: r.try_get("id")?,
                    lead_id: LeadId(r.try_get("lead_id")?),
                    node_id: r.try_get("node_id")?,
                    call_id: r.try_get("call_id")?,
                    agent_id: r.try_get::<Option<i64>, _>("agent_id")?.map(UserId),
                    started_at: r.try_get("started_at")?,
                    answered_at: r.try_get("answered_at")?,
                    bridged_at: r.try_get("bridged_at")?,
                    ended_at: r.try_get("ended_at")?,
                    result: r.try_get("result")?,
                    outcome_id: r.try_get::<Option<i64>, _>("outcome_id")?.map(crate::outcomes::OutcomeId),
                    activity_id: r.try_get::<Option<i64>, _>("activity_id")?.map(crate::ActivityId),
                    notes: r.try_get("notes")?,
                    recording: r.try_get("recording")?,
                    amd: r.try_get("amd")?,
                })
            })
            .collect()
    }

    /// Abandon rates over the last 30 days and the worst 24 h window
    /// within them (TSR and UK forms), answer→bridge percentiles, and the
    /// callbacks waiting for their agent.
    pub async fn dialer_abandon_stats(&self, id: DialerCampaignId, now: Millis) -> Result<AbandonStats> {
        let fp = self.get_dialer_campaign(id).await?.config.amd_fp_rate;
        let from = now - 30 * DAY;
        let rows = sqlx::query(
            "SELECT ended_at, result, answered_at, bridged_at FROM dialer_attempts WHERE campaign_id = $1 AND ended_at IS NOT NULL \
             AND ended_at > $2 AND ended_at <= $3 AND result IN ('abandoned','disposed','callback','machine','agent_gone') ORDER BY ended_at, id",
        )
        .bind(id.0)
        .bind(from)
        .bind(now)
        .fetch_all(&self.read)
        .await?;
        let mut st = AbandonStats::default();
        let mut events = Vec::with_capacity(rows.len());
        let mut lat = Vec::new();
        for r in rows {
            let t: Millis = r.try_get("ended_at")?;
            let res: String = r.try_get("result")?;
            let (live, ab, mach) = (res != "machine", res == "abandoned", res == "machine");
            st.live_30d += i64::from(live);
            st.abandons_30d += i64::from(ab);
            st.machine_30d += i64::from(mach);
            events.push((t, live, ab, mach));
            if let (Some(a), Some(b)) = (r.try_get::<Option<i64>, _>("answered_at")?, r.try_get::<Option<i64>, _>("bridged_at")?) {
                lat.push((b - a).max(0));
            }
        }
        (st.tsr_30d, st.uk_30d) = rates(st.live_30d as f64, st.abandons_30d as f64, st.machine_30d as f64, fp);
        let (tsr, uk) = worst_24h(&events, fp);
        (st.worst_24h_tsr, st.worst_24h_tsr_end, st.worst_24h_uk, st.worst_24h_uk_end) = (tsr.0, tsr.1, uk.0, uk.1);
        lat.sort_unstable();
        st.bridged_30d = lat.len() as i64;
        let pct = |p: f64| if lat.is_empty() { 0 } else { lat[((lat.len() - 1) as f64 * p).round() as usize] };
        (st.bridge_p50_ms, st.bridge_p99_ms) = (pct(0.5), pct(0.99));
        st.callbacks_waiting = sqlx::query_scalar(
            "SELECT COUNT(*) FROM dialer_leads WHERE campaign_id = $1 AND state = 'ready' AND callback_agent IS NOT NULL AND due_at <= $2",
        )
        .bind(id.0)
        .bind(now)
        .fetch_one(&self.read)
        .await?;
        Ok(st)
    }
}
