//! The knowledge base: articles written by hand or from a ticket, internal
//! or public, with full-text search — an FTS5 virtual table on SQLite, a
//! GIN index over `to_tsvector('simple', …)` on PostgreSQL.

use super::*;
use crate::auth::Actor;
use crate::error::Problems;
use crate::store::{Backend, Store};
use crate::types::{UserId, now_ms};
use sqlx::Row;

str_enum!(/// Who may read an article.
    Visibility { Internal => "internal", Public => "public" });

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Article {
    pub id: ArticleId,
    pub title: String,
    pub body: String,
    pub visibility: Visibility,
    pub ticket: Option<TicketNo>,
    pub author_id: Option<UserId>,
    pub version: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ArticleInput {
    pub title: String,
    /// Empty with `ticket`: the ticket's messages are the draft.
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub ticket: Option<TicketNo>,
    /// Updates: the version read.
    #[serde(default)]
    pub version: Option<i64>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct KbQuery {
    pub q: String,
    pub limit: Option<i64>,
}

const COLS: &str = "a.id, a.title, a.body, a.visibility, a.ticket_id, a.author_id, a.version, a.created_at, a.updated_at";

fn article_from_row(r: &sqlx::any::AnyRow) -> Result<Article> {
    Ok(Article {
        id: ArticleId(r.try_get("id")?),
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        visibility: Visibility::parse(&r.try_get::<String, _>("visibility")?).map_err(|_| bad_row("visibility"))?,
        ticket: r.try_get::<Option<i64>, _>("ticket_id")?.and_then(TicketNo::new),
        author_id: r.try_get::<Option<i64>, _>("author_id")?.map(UserId),
        version: r.try_get("version")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Words of a query as an FTS5 expression of quoted terms (all must
/// occur), so user input can never be FTS5 syntax.
fn fts5_query(q: &str) -> String {
    q.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(20)
        .map(|w| format!("\"{}\"", w.to_lowercase()))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Store {
    pub async fn create_article(&self, actor: &Actor, input: ArticleInput) -> Result<Article> {
        require_desk(actor)?;
        let mut p = Problems::default();
        let title = input.title.trim().to_string();
        if title.is_empty() || title.len() > 300 {
            p.push("title", "1–300 characters");
        }
        let vis = p.check("visibility", Visibility::parse(input.visibility.as_deref().unwrap_or("internal")));
        p.finish()?;
        let mut body = input.body.unwrap_or_default();
        if let Some(no) = input.ticket {
            let d = self.ticket_detail(actor, no).await?;
            if body.trim().is_empty() {
                body = d.messages.iter().filter(|m| m.direction != Direction::Note).map(|m| m.text.trim().to_string()).collect::<Vec<_>>().join("\n\n---\n\n");
            }
        }
        if body.trim().is_empty() {
            return Err(Error::invalid("body", "required"));
        }
        let now = now_ms();
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "INSERT INTO kb_articles (title, body, visibility, ticket_id, author_id, version, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 1, $6, $6) RETURNING id",
        )
        .bind(&title)
        .bind(&body)
        .bind(vis.unwrap_or(Visibility::Internal).as_str())
        .bind(input.ticket.map(TicketNo::get))
        .bind(actor.log_id())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = r.try_get("id")?;
        crate::oplog::record(&mut tx, actor, "kb_article", id, "create", &serde_json::json!({"title": title})).await?;
        if let Some(no) = input.ticket {
            desk::add_event(&mut tx, no, actor.log_id(), "kb_article", None, &serde_json::json!({"article": id}), now).await?;
        }
        tx.commit().await?;
        self.get_article(Some(actor), ArticleId(id)).await
    }

    /// An article; without an actor only public ones.
    pub async fn get_article(&self, actor: Option<&Actor>, id: ArticleId) -> Result<Article> {
        if let Some(a) = actor {
            require_desk(a)?;
        }
        let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {COLS} FROM kb_articles a WHERE a.id = $1")))
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("article"))?;
        let art = article_from_row(&r)?;
        if actor.is_none() && art.visibility != Visibility::Public {
            return Err(Error::NotFound("article"));
        }
        Ok(art)
    }

    pub async fn update_article(&self, actor: &Actor, id: ArticleId, input: ArticleInput) -> Result<Article> {
        require_desk(actor)?;
        let mut p = Problems::default();
        let title = input.title.trim().to_string();
        if title.is_empty() || title.len() > 300 {
            p.push("title", "1–300 characters");
        }
        let vis = match &input.visibility {
            Some(v) => p.check("visibility", Visibility::parse(v)),
            None => None,
        };
        let Some(version) = input.version else { return Err(Error::invalid("version", "required")) };
        p.finish()?;
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE kb_articles SET title = $1, body = COALESCE($2, body), visibility = COALESCE($3, visibility), version = version + 1, updated_at = $4 \
             WHERE id = $5 AND version = $6",
        )
        .bind(&title)
        .bind(input.body.as_deref().filter(|b| !b.trim().is_empty()))
        .bind(vis.map(Visibility::as_str))
        .bind(now_ms())
        .bind(id.0)
        .bind(version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            let exists = sqlx::query("SELECT 1 FROM kb_articles WHERE id = $1").bind(id.0).fetch_optional(&mut *tx).await?.is_some();
            return Err(if exists { Error::Conflict } else { Error::NotFound("article") });
        }
        crate::oplog::record(&mut tx, actor, "kb_article", id.0, "update", &serde_json::json!({"title": title})).await?;
        tx.commit().await?;
        self.get_article(Some(actor), id).await
    }

    pub async fn delete_article(&self, actor: &Actor, id: ArticleId) -> Result<()> {
        require_desk(actor)?;
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM kb_articles WHERE id = $1").bind(id.0).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Err(Error::NotFound("article"));
        }
        crate::oplog::record(&mut tx, actor, "kb_article", id.0, "delete", &serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Full-text search, best matches first. Without an actor (the public
    /// endpoint) only public articles are returned.
    pub async fn search_articles(&self, actor: Option<&Actor>, q: &KbQuery) -> Result<Vec<Article>> {
        if let Some(a) = actor {
            require_desk(a)?;
        }
        let limit = q.limit.unwrap_or(20).clamp(1, 100);
        let public_only = if actor.is_none() { "AND a.visibility = 'public'" } else { "" };
        let rows = match self.backend {
            Backend::Sqlite => {
                let expr = fts5_query(&q.q);
                if expr.is_empty() {
                    return Ok(Vec::new());
                }
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLS} FROM kb_fts JOIN kb_articles a ON a.id = kb_fts.rowid WHERE kb_fts MATCH $1 {public_only} ORDER BY kb_fts.rank LIMIT {limit}"
                )))
                .bind(expr)
                .fetch_all(&self.read)
                .await?
            }
            Backend::Postgres => {
                if q.q.trim().is_empty() {
                    return Ok(Vec::new());
                }
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLS} FROM kb_articles a WHERE to_tsvector('simple', a.title || ' ' || a.body) @@ plainto_tsquery('simple', $1) {public_only} \
                     ORDER BY ts_rank(to_tsvector('simple', a.title || ' ' || a.body), plainto_tsquery('simple', $1)) DESC, a.id LIMIT {limit}"
                )))
                .bind(q.q.trim())
                .fetch_all(&self.read)
                .await?
            }
        };
        rows.iter().map(article_from_row).collect()
    }
}
