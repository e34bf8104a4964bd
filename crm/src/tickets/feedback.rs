//! Customer feedback: when a ticket is solved the customer receives a mail
//! with one-click ratings 1–5. Each link carries a token — ticket, rating,
//! expiry and a truncated HMAC-SHA256 over them — so the rating endpoint
//! needs no login and nobody can rate a ticket that is not theirs. The last
//! click wins; a comment may follow.

use super::*;
use crate::auth::Actor;
use crate::store::Store;
use crate::types::UserId;
use sqlx::Row;

/// How long a feedback link stays valid.
pub const FEEDBACK_TTL_MS: Millis = 30 * DAY_MS;

/// The signed token of one rating link: `<ticket>.<rating>.<expiry>.<tag>`.
pub fn feedback_token(ticket: TicketNo, rating: u8, expires_at: Millis, secret: &[u8]) -> String {
    let body = format!("{}.{}.{}", ticket.get(), rating, expires_at);
    let tag = hex::encode(hmac_tag(secret, format!("feedback:{body}").as_bytes(), 16));
    format!("{body}.{tag}")
}

/// Checks a token: the ticket and rating it carries, if the signature holds
/// and it has not expired.
pub fn parse_feedback_token(token: &str, secret: &[u8], now: Millis) -> Option<(TicketNo, u8)> {
    let mut it = token.trim().split('.');
    let (t, r, e, tag) = (it.next()?, it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let ticket = TicketNo::new(t.parse().ok()?)?;
    let rating: u8 = r.parse().ok()?;
    let expires: Millis = e.parse().ok()?;
    if !(1..=5).contains(&rating) || now > expires {
        return None;
    }
    let tag = hex::decode(tag).ok()?;
    hmac_verify(secret, format!("feedback:{t}.{r}.{e}").as_bytes(), &tag).then_some((ticket, rating))
}

/// A recorded rating.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeedbackRecorded {
    pub ticket: TicketNo,
    pub rating: u8,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct FeedbackQuery {
    pub centre_id: Option<i64>,
    pub from: Option<Millis>,
    pub to: Option<Millis>,
}

/// Ratings per centre and operator.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FeedbackRow {
    pub centre_id: ServiceCentreId,
    pub operator_id: Option<UserId>,
    pub requested: i64,
    pub rated: i64,
    pub average: f64,
    /// Counts of ratings 1 to 5.
    pub distribution: [i64; 5],
}

async fn base_url(tx: &mut Tx) -> Result<String> {
    let r = sqlx::query("SELECT value FROM support_secrets WHERE name = 'feedback_base_url'").fetch_optional(&mut **tx).await?;
    Ok(r.and_then(|r| r.try_get::<Vec<u8>, _>("value").ok()).and_then(|v| String::from_utf8(v).ok()).unwrap_or_else(|| "http://localhost:8080".into()))
}

/// On solve: record the request and queue the mail with the five links.
pub(crate) async fn request_feedback(tx: &mut Tx, no: TicketNo, now: Millis) -> Result<()> {
    let t = desk::load_ticket(tx, no).await?;
    let Some(to) = t.requester_email.clone() else { return Ok(()) };
    let already = sqlx::query("SELECT 1 FROM ticket_feedback WHERE ticket_id = $1").bind(no.get()).fetch_optional(&mut **tx).await?.is_some();
    if already {
        sqlx::query("UPDATE ticket_feedback SET operator_id = $1, requested_at = $2 WHERE ticket_id = $3")
            .bind(t.assignee_id.map(|u| u.0))
            .bind(now)
            .bind(no.get())
            .execute(&mut **tx)
            .await?;
    } else {
        sqlx::query("INSERT INTO ticket_feedback (ticket_id, centre_id, operator_id, requested_at) VALUES ($1, $2, $3, $4)")
            .bind(no.get())
            .bind(t.centre_id.0)
            .bind(t.assignee_id.map(|u| u.0))
            .bind(now)
            .execute(&mut **tx)
            .await?;
    }
    let secret = rules::secret_tx(tx).await?;
    let base = base_url(tx).await?;
    let expires = now + FEEDBACK_TTL_MS;
    let mut text = format!("Your request {no} \"{}\" has been solved.\nHow did we do? One click is enough:\n\n", t.subject);
    for r in 1..=5u8 {
        text.push_str(&format!("  {r} {}: {base}/feedback/{}\n", "★".repeat(r as usize), feedback_token(no, r, expires, &secret)));
    }
    text.push_str("\nIf the problem is not solved, just reply to this mail.\n");
    let centre = centres::load_centre(tx, t.centre_id).await?;
    let refs = desk::last_message_ids(tx, no).await?;
    let m = mail::OutboxInsert {
        ticket: Some(no),
        kind: OutboxKind::FeedbackRequest,
        to: vec![to],
        cc: vec![],
        subject: format!("How did we do? {}", no.subject_tag()),
        text,
        html: None,
        in_reply_to: refs.last().cloned(),
        references: refs,
        auto_submitted: true,
        author: None,
    };
    mail::queue_outbox(tx, &m, &centre, &secret, now).await?;
    Ok(())
}

impl Store {
    /// Where the rating links point (the public base URL of the server).
    pub async fn set_feedback_base_url(&self, url: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM support_secrets WHERE name = 'feedback_base_url'").execute(&mut *tx).await?;
        sqlx::query("INSERT INTO support_secrets (name, value) VALUES ('feedback_base_url', $1)")
            .bind(url.trim_end_matches('/').as_bytes().to_vec())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records a rating from a signed link (no login); the last one wins.
    /// A bad or expired token is `Forbidden`.
    pub async fn record_feedback(&self, token: &str, comment: Option<String>, now: Millis) -> Result<FeedbackRecorded> {
        let secret = self.support_secret().await?;
        let (ticket, rating) = parse_feedback_token(token, &secret, now).ok_or(Error::Forbidden)?;
        let comment = comment.map(|c| c.trim().chars().take(4000).collect::<String>()).filter(|c| !c.is_empty());
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE ticket_feedback SET rating = $1, comment = COALESCE($2, comment), rated_at = $3 WHERE ticket_id = $4")
            .bind(i64::from(rating))
            .bind(comment.as_deref())
            .bind(now)
            .bind(ticket.get())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound("feedback request"));
        }
        desk::add_event(&mut tx, ticket, None, "feedback", None, &serde_json::json!({"rating": rating, "comment": comment}), now).await?;
        tx.commit().await?;
        Ok(FeedbackRecorded { ticket, rating })
    }

    /// Feedback results per centre and operator.
    pub async fn feedback_report(&self, actor: &Actor, q: &FeedbackQuery) -> Result<Vec<FeedbackRow>> {
        require_desk(actor)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT centre_id, operator_id, rating FROM ticket_feedback WHERE requested_at >= $1 AND requested_at < $2 AND {} AND {} ORDER BY centre_id, operator_id",
            q.centre_id.map(|c| format!("centre_id = {c}")).unwrap_or_else(|| "1=1".into()),
            actor.owner_filter("operator_id"),
        )))
        .bind(q.from.unwrap_or(0))
        .bind(q.to.unwrap_or(i64::MAX))
        .fetch_all(&self.read)
        .await?;
        let mut groups: std::collections::BTreeMap<(i64, Option<i64>), (i64, [i64; 5])> = Default::default();
        for r in &rows {
            let g = groups.entry((r.try_get("centre_id")?, r.try_get("operator_id")?)).or_default();
            g.0 += 1;
            if let Some(v) = r.try_get::<Option<i64>, _>("rating")? {
                if (1..=5).contains(&v) {
                    g.1[(v - 1) as usize] += 1;
                }
            }
        }
        Ok(groups
            .into_iter()
            .map(|((c, o), (requested, d))| {
                let rated: i64 = d.iter().sum();
                let sum: i64 = d.iter().enumerate().map(|(i, n)| (i as i64 + 1) * n).sum();
                FeedbackRow {
                    centre_id: ServiceCentreId(c),
                    operator_id: o.map(UserId),
                    requested,
                    rated,
                    average: if rated > 0 { sum as f64 / rated as f64 } else { 0.0 },
                    distribution: d,
                }
            })
            .collect())
    }
}
