//! The operation log ("prima nota", seed 001): an append-only record of who
//! did what, when, to which record, with field-level changes. Writers call
//! [`record`] inside the same transaction as the change, so a change and its
//! log entry commit or vanish together.

use crate::auth::Actor;
use crate::error::Result;
use crate::store::Store;
use crate::types::{Millis, now_ms};
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LogEntry {
    pub id: i64,
    pub at: Millis,
    pub actor_id: Option<i64>,
    pub entity: String,
    pub entity_id: i64,
    pub action: String,
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
}

/// Appends one entry. `changes` is typically `{"field": [old, new], …}`.
pub async fn record(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    actor: &Actor,
    entity: &str,
    entity_id: i64,
    action: &str,
    changes: &serde_json::Value,
) -> Result<()> {
    sqlx::query("INSERT INTO oplog (at, actor_id, entity, entity_id, action, changes) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(now_ms())
        .bind(actor.log_id())
        .bind(entity)
        .bind(entity_id)
        .bind(action)
        .bind(changes.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Builds a field-level diff entry when `old != new`.
pub fn diff<T: Serialize + PartialEq>(changes: &mut serde_json::Map<String, serde_json::Value>, field: &str, old: &T, new: &T) {
    if old != new {
        changes.insert(field.to_string(), serde_json::json!([old, new]));
    }
}

impl Store {
    /// The history of one record, newest first. Visibility of the record
    /// itself is the caller's check.
    pub async fn history(&self, entity: &str, entity_id: i64, limit: i64) -> Result<Vec<LogEntry>> {
        let rows = sqlx::query(
            "SELECT id, at, actor_id, entity, entity_id, action, changes FROM oplog \
             WHERE entity = $1 AND entity_id = $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(entity)
        .bind(entity_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let changes: String = r.try_get("changes")?;
                Ok(LogEntry {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor_id: r.try_get("actor_id")?,
                    entity: r.try_get("entity")?,
                    entity_id: r.try_get("entity_id")?,
                    action: r.try_get("action")?,
                    changes: serde_json::from_str(&changes).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}
