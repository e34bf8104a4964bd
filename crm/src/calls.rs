//! Call detail records and agents' SIP secrets.
//!
//! The SIP layer knows nothing about the CRM: the composition root turns
//! its call records into [`NewCallRecord`]s and the store links them to the
//! party whose number called or was called. A record is written once per
//! SIP Call-ID; writing it again changes nothing, so a retried write after a
//! crash cannot double a call.
//!
//! SIP digest needs the password itself (or a hash tied to realm and
//! algorithm), so agents have a separate random SIP secret rather than
//! their argon2-hashed login password.

use crate::auth::{Actor, Permission};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::types::{Millis, PartyId, PhoneNumber, UserId, now_ms};
use rand::RngCore;
use serde::Serialize;
use sqlx::Row;

/// A finished call as the SIP layer reports it.
#[derive(Debug, Clone)]
pub struct NewCallRecord {
    pub call_id: String,
    pub inbound: bool,
    pub from_user: String,
    pub to_user: String,
    /// The customer's number (the caller inbound, the callee outbound), if it parsed.
    pub customer: Option<PhoneNumber>,
    pub agent_id: Option<UserId>,
    pub started_at: Millis,
    pub ringing_at: Option<Millis>,
    pub answered_at: Option<Millis>,
    pub ended_at: Millis,
    pub outcome: String,
    pub sip_status: Option<i64>,
    pub recording: Option<String>,
    pub bridged_with: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CallRecord {
    pub id: i64,
    pub call_id: String,
    pub direction: String,
    pub from_user: String,
    pub to_user: String,
    pub caller_e164: Option<String>,
    pub party_id: Option<PartyId>,
    pub agent_id: Option<UserId>,
    pub started_at: Millis,
    pub ringing_at: Option<Millis>,
    pub answered_at: Option<Millis>,
    pub ended_at: Millis,
    pub outcome: String,
    pub sip_status: Option<i64>,
    pub recording: Option<String>,
}

const COLS: &str = "id, call_id, direction, from_user, to_user, caller_e164, party_id, agent_id, started_at, ringing_at, answered_at, ended_at, outcome, sip_status, recording";

fn from_row(r: &sqlx::any::AnyRow) -> Result<CallRecord> {
    Ok(CallRecord {
        id: r.try_get("id")?,
        call_id: r.try_get("call_id")?,
        direction: r.try_get("direction")?,
        from_user: r.try_get("from_user")?,
        to_user: r.try_get("to_user")?,
        caller_e164: r.try_get("caller_e164")?,
        party_id: r.try_get::<Option<i64>, _>("party_id")?.map(PartyId),
        agent_id: r.try_get::<Option<i64>, _>("agent_id")?.map(UserId),
        started_at: r.try_get("started_at")?,
        ringing_at: r.try_get("ringing_at")?,
        answered_at: r.try_get("answered_at")?,
        ended_at: r.try_get("ended_at")?,
        outcome: r.try_get("outcome")?,
        sip_status: r.try_get("sip_status")?,
        recording: r.try_get("recording")?,
    })
}

impl Store {
    /// Writes a call record (once per Call-ID), linked to the party that
    /// owns the customer's number. Returns whether it was new.
    pub async fn record_call(&self, rec: NewCallRecord) -> Result<bool> {
        let party = match &rec.customer {
            Some(n) => self.lookup_by_phone(n).await?.first().map(|c| c.id),
            None => None,
        };
        let r = sqlx::query(
            "INSERT INTO call_records (call_id, direction, from_user, to_user, caller_e164, party_id, agent_id, started_at, ringing_at, \
             answered_at, ended_at, outcome, sip_status, recording, bridged_with, created_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15,$16) ON CONFLICT (call_id) DO NOTHING",
        )
        .bind(&rec.call_id)
        .bind(if rec.inbound { "inbound" } else { "outbound" })
        .bind(&rec.from_user)
        .bind(&rec.to_user)
        .bind(rec.customer.as_ref().map(|n| n.as_str().to_string()))
        .bind(party.map(|p| p.0))
        .bind(rec.agent_id.map(|u| u.0))
        .bind(rec.started_at)
        .bind(rec.ringing_at)
        .bind(rec.answered_at)
        .bind(rec.ended_at)
        .bind(&rec.outcome)
        .bind(rec.sip_status)
        .bind(&rec.recording)
        .bind(rec.bridged_with.join(","))
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// The calls of a party, newest first (visibility of the party checked).
    pub async fn calls_for_party(&self, actor: &Actor, party: PartyId, limit: i64) -> Result<Vec<CallRecord>> {
        self.get_party(actor, party).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM call_records WHERE party_id = $1 ORDER BY started_at DESC LIMIT $2")))
            .bind(party.0)
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Recent calls (supervisors and admins see all; others their own).
    pub async fn recent_calls(&self, actor: &Actor, limit: i64) -> Result<Vec<CallRecord>> {
        let filter = if actor.can(Permission::ViewUsers) { actor.owner_filter("agent_id") } else { format!("agent_id = {}", actor.user.0) };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM call_records WHERE {filter} ORDER BY started_at DESC LIMIT $1")))
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Gives a user a new random SIP secret and returns it (shown once).
    pub async fn rotate_sip_secret(&self, actor: &Actor, user: UserId) -> Result<String> {
        if actor.user != user {
            actor.require(Permission::ManageUsers)?;
        }
        let mut b = [0u8; 12];
        rand::rng().fill_bytes(&mut b);
        let secret = hex::encode(b);
        let exists = sqlx::query("SELECT 1 FROM users WHERE id = $1").bind(user.0).fetch_optional(&self.read).await?;
        if exists.is_none() {
            return Err(Error::NotFound("user"));
        }
        sqlx::query(
            "INSERT INTO sip_secrets (user_id, secret, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, updated_at = excluded.updated_at",
        )
        .bind(user.0)
        .bind(&secret)
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(secret)
    }

    /// Every active user's SIP secret, for the registrar's credential cache.
    pub async fn sip_secrets(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT u.username, s.secret FROM sip_secrets s JOIN users u ON u.id = s.user_id WHERE u.active = 1")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| Ok((r.try_get("username")?, r.try_get("secret")?))).collect()
    }
}
