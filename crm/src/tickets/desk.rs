//! Tickets and their history: creation, the message thread (in, out,
//! internal notes), the event log of every action, queues, replies, reason
//! codes ("causali") and split tickets.
//!
//! Visibility follows the assigned operator (`assignee_id`) as the owner:
//! unassigned tickets are the shared pool every desk worker sees.

use super::*;
use crate::auth::Actor;
use crate::error::Problems;
use crate::store::{Store, b};
use crate::types::{EmailAddress, PartyId, TeamId, UserId};
use sqlx::Row;

/// A ticket as the API and the console see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Ticket {
    pub no: TicketNo,
    pub centre_id: ServiceCentreId,
    pub subject: String,
    pub requester_id: Option<PartyId>,
    pub requester_email: Option<EmailAddress>,
    pub state: TicketState,
    pub priority: Priority,
    pub product: Option<String>,
    pub topic: Option<String>,
    pub category: Option<String>,
    pub assignee_id: Option<UserId>,
    pub team_id: Option<TeamId>,
    pub parent: Option<TicketNo>,
    pub children: Vec<TicketNo>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub first_response_at: Option<Millis>,
    pub last_customer_at: Option<Millis>,
    pub last_agent_at: Option<Millis>,
    pub state_changed_at: Millis,
    pub solved_at: Option<Millis>,
    pub closed_at: Option<Millis>,
    pub first_response_due: Option<Millis>,
    pub next_update_due: Option<Millis>,
    pub resolution_due: Option<Millis>,
    pub version: i64,
}

/// One message of a ticket's thread.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketMessage {
    pub id: MessageRowId,
    pub direction: Direction,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub from: Option<String>,
    pub from_name: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub is_auto: bool,
    pub flags: Vec<String>,
    pub author_id: Option<UserId>,
    pub party_id: Option<PartyId>,
    pub outbox_id: Option<OutboxId>,
    /// For outgoing mail: queued, sent or failed.
    pub send_status: Option<String>,
    pub attachments: Vec<AttachmentInfo>,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AttachmentInfo {
    pub id: i64,
    pub filename: Option<String>,
    pub content_type: String,
    pub size: i64,
}

/// One action in a ticket's history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketEvent {
    pub id: i64,
    pub at: Millis,
    pub actor_id: Option<UserId>,
    pub action: String,
    pub reason_code_id: Option<ReasonCodeId>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A ticket with its full history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TicketDetail {
    pub ticket: Ticket,
    pub messages: Vec<TicketMessage>,
    pub events: Vec<TicketEvent>,
}

/// A ticket opened by hand (phone, counter) rather than by mail.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketInput {
    pub centre_id: ServiceCentreId,
    pub subject: String,
    #[serde(default)]
    pub requester_id: Option<PartyId>,
    #[serde(default)]
    pub requester_email: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    /// The first message (the customer's request as taken down).
    #[serde(default)]
    pub text: Option<String>,
}

/// A change of ticket fields; absent fields are left alone.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TicketPatch {
    pub version: i64,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default)]
    pub product: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
}

/// A queue view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Queue {
    /// Assigned to me.
    Mine,
    /// Assigned to a team I belong to or lead (and not to me).
    MyGroups,
    /// Nobody's yet.
    Unassigned,
    /// Everything I can see.
    All,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct QueueQuery {
    /// `mine`, `my_groups`, `unassigned` or `all` (default `mine`).
    pub queue: Option<String>,
    /// Include solved and closed tickets.
    pub include_done: Option<bool>,
    pub centre_id: Option<i64>,
    /// Only tickets requested by this party (a person), or by any person
    /// of this company.
    pub party: Option<i64>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

/// A reply to the customer (queued for the mail side) or an internal note.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyInput {
    pub text: String,
    #[serde(default)]
    pub html: Option<String>,
    /// Extra recipients on copy.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Write to someone else than the requester (a consultant).
    #[serde(default)]
    pub to: Vec<String>,
    /// An internal note: recorded, never sent.
    #[serde(default)]
    pub internal: bool,
    /// The state after replying (e.g. `pending` to wait for the customer).
    #[serde(default)]
    pub state: Option<String>,
}

pub(crate) struct NewTicket {
    pub centre: ServiceCentreId,
    pub subject: String,
    pub requester: Option<PartyId>,
    pub requester_email: Option<EmailAddress>,
    pub priority: Priority,
    pub product: Option<String>,
    pub topic: Option<String>,
    pub category: Option<CategoryPath>,
    pub assignee: Option<UserId>,
    pub team: Option<TeamId>,
    pub parent: Option<TicketNo>,
    pub split_from_message: Option<MessageRowId>,
}

pub(crate) struct NewMessage {
    pub ticket: TicketNo,
    pub direction: Direction,
    pub message_id: Option<String>,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub from: Option<EmailAddress>,
    pub from_name: Option<String>,
    pub to: Vec<EmailAddress>,
    pub cc: Vec<EmailAddress>,
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
    pub raw_id: Option<RawMailId>,
    pub outbox_id: Option<OutboxId>,
    pub is_auto: bool,
    pub flags: Vec<String>,
    pub author: Option<UserId>,
    pub party: Option<PartyId>,
}

pub(crate) async fn insert_ticket(tx: &mut Tx, actor: &Actor, t: &NewTicket, now: Millis) -> Result<TicketNo> {
    insert_ticket_at(tx, actor, t, None, now).await
}

/// [`insert_ticket`] with the customer's first message time set in the
/// same INSERT (mail ingest: saves the follow-up UPDATE).
pub(crate) async fn insert_ticket_at(tx: &mut Tx, actor: &Actor, t: &NewTicket, last_customer_at: Option<Millis>, now: Millis) -> Result<TicketNo> {
    let row = sqlx::query(
        "INSERT INTO tickets (centre_id, subject, requester_id, requester_email, state, priority, product, topic, category, assignee_id, \
         team_id, parent_id, split_from_message, created_at, updated_at, state_changed_at, last_customer_at) \
         VALUES ($1, $2, $3, $4, 'new', $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $13, $14) RETURNING id",
    )
    .bind(t.centre.0)
    .bind(&t.subject)
    .bind(t.requester.map(|p| p.0))
    .bind(t.requester_email.as_ref().map(|e| e.as_str().to_string()))
    .bind(t.priority.as_str())
    .bind(t.product.as_deref())
    .bind(t.topic.as_deref())
    .bind(t.category.as_ref().map(|c| c.as_str().to_string()))
    .bind(t.assignee.map(|u| u.0))
    .bind(t.team.map(|u| u.0))
    .bind(t.parent.map(TicketNo::get))
    .bind(t.split_from_message.map(|m| m.0))
    .bind(now)
    .bind(last_customer_at)
    .fetch_one(&mut **tx)
    .await?;
    let no = TicketNo::new(row.try_get("id")?).ok_or(bad_row("ticket"))?;
    let details = serde_json::json!({"subject": t.subject, "centre_id": t.centre.0, "priority": t.priority, "parent": t.parent});
    add_event(tx, no, actor.log_id(), "created", None, &details, now).await?;
    crate::oplog::record(tx, actor, "ticket", no.get(), "create", &details).await?;
    Ok(no)
}

pub(crate) async fn insert_message(tx: &mut Tx, m: &NewMessage, now: Millis) -> Result<MessageRowId> {
    let id = insert_message_row(tx, m, now).await?;
    sqlx::query("UPDATE tickets SET updated_at = $1 WHERE id = $2").bind(now).bind(m.ticket.get()).execute(&mut **tx).await?;
    Ok(id)
}

/// The message row alone; the caller sets the ticket's `updated_at`
/// (mail ingest: in the ticket's INSERT, or with `last_customer_at`).
pub(crate) async fn insert_message_row(tx: &mut Tx, m: &NewMessage, now: Millis) -> Result<MessageRowId> {
    let row = sqlx::query(
        "INSERT INTO ticket_messages (ticket_id, direction, message_id, in_reply_to, refs, from_addr, from_name, to_addrs, cc_addrs, \
         subject, body_text, body_html, raw_id, outbox_id, is_auto, flags, author_id, party_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) RETURNING id",
    )
    .bind(m.ticket.get())
    .bind(m.direction.as_str())
    .bind(m.message_id.as_deref())
    .bind(m.in_reply_to.as_deref())
    .bind(to_json(&m.references))
    .bind(m.from.as_ref().map(|e| e.as_str().to_string()))
    .bind(m.from_name.as_deref())
    .bind(to_json(&m.to))
    .bind(to_json(&m.cc))
    .bind(&m.subject)
    .bind(&m.text)
    .bind(m.html.as_deref())
    .bind(m.raw_id.map(|r| r.0))
    .bind(m.outbox_id.map(|r| r.0))
    .bind(i64::from(m.is_auto))
    .bind(to_json(&m.flags))
    .bind(m.author.map(|u| u.0))
    .bind(m.party.map(|p| p.0))
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    Ok(MessageRowId(row.try_get("id")?))
}

/// Appends one action to a ticket's history.
pub(crate) async fn add_event(
    tx: &mut Tx,
    ticket: TicketNo,
    actor_id: Option<i64>,
    action: &str,
    reason: Option<ReasonCodeId>,
    details: &serde_json::Value,
    now: Millis,
) -> Result<()> {
    sqlx::query("INSERT INTO ticket_events (ticket_id, at, actor_id, action, reason_code_id, details) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(ticket.get())
        .bind(now)
        .bind(actor_id)
        .bind(action)
        .bind(reason.map(|r| r.0))
        .bind(details.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A customer's mail joined an existing ticket: `updated_at` and
/// `last_customer_at` in one UPDATE that returns the state; the ticket is
/// loaded only when it has to be reopened.
pub(crate) async fn on_customer_reply(tx: &mut Tx, ticket: TicketNo, now: Millis) -> Result<()> {
    let r = sqlx::query("UPDATE tickets SET updated_at = $1, last_customer_at = $1 WHERE id = $2 RETURNING state")
        .bind(now)
        .bind(ticket.get())
        .fetch_optional(&mut **tx)
        .await?;
    let state = match r {
        Some(r) => TicketState::parse(&r.try_get::<String, _>("state")?).ok(),
        None => None,
    };
    if matches!(state, Some(TicketState::Pending | TicketState::Solved)) {
        let t = load_ticket(tx, ticket).await?;
        set_state_tx(tx, &t, TicketState::Open, None, None, now).await?;
    }
    Ok(())
}

/// A customer wrote: note when, and reopen a pending or solved ticket.
pub(crate) async fn on_customer_message(tx: &mut Tx, ticket: TicketNo, created: bool, now: Millis) -> Result<()> {
    sqlx::query("UPDATE tickets SET last_customer_at = $1 WHERE id = $2").bind(now).bind(ticket.get()).execute(&mut **tx).await?;
    if !created {
        let t = load_ticket(tx, ticket).await?;
        if matches!(t.state, TicketState::Pending | TicketState::Solved) {
            set_state_tx(tx, &t, TicketState::Open, None, None, now).await?;
        }
    }
    Ok(())
}

pub(crate) const TICKET_COLS: &str = "id, centre_id, subject, requester_id, requester_email, state, priority, product, topic, category, \
    assignee_id, team_id, parent_id, created_at, updated_at, first_response_at, last_customer_at, last_agent_at, state_changed_at, \
    solved_at, closed_at, first_response_due, next_update_due, resolution_due, version";

pub(crate) fn ticket_from_row(r: &sqlx::any::AnyRow) -> Result<Ticket> {
    Ok(Ticket {
        no: TicketNo::new(r.try_get("id")?).ok_or(bad_row("ticket"))?,
        centre_id: ServiceCentreId(r.try_get("centre_id")?),
        subject: r.try_get("subject")?,
        requester_id: r.try_get::<Option<i64>, _>("requester_id")?.map(PartyId),
        requester_email: r.try_get::<Option<String>, _>("requester_email")?.and_then(|e| EmailAddress::parse(&e).ok()),
        state: TicketState::parse(&r.try_get::<String, _>("state")?).map_err(|_| bad_row("ticket state"))?,
        priority: Priority::parse(&r.try_get::<String, _>("priority")?).map_err(|_| bad_row("ticket priority"))?,
        product: r.try_get("product")?,
        topic: r.try_get("topic")?,
        category: r.try_get("category")?,
        assignee_id: r.try_get::<Option<i64>, _>("assignee_id")?.map(UserId),
        team_id: r.try_get::<Option<i64>, _>("team_id")?.map(TeamId),
        parent: r.try_get::<Option<i64>, _>("parent_id")?.and_then(TicketNo::new),
        children: Vec::new(),
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        first_response_at: r.try_get("first_response_at")?,
        last_customer_at: r.try_get("last_customer_at")?,
        last_agent_at: r.try_get("last_agent_at")?,
        state_changed_at: r.try_get("state_changed_at")?,
        solved_at: r.try_get("solved_at")?,
        closed_at: r.try_get("closed_at")?,
        first_response_due: r.try_get("first_response_due")?,
        next_update_due: r.try_get("next_update_due")?,
        resolution_due: r.try_get("resolution_due")?,
        version: r.try_get("version")?,
    })
}

pub(crate) async fn load_ticket(conn: &mut sqlx::AnyConnection, no: TicketNo) -> Result<Ticket> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {TICKET_COLS} FROM tickets WHERE id = $1")))
        .bind(no.get())
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound("ticket"))?;
    let mut t = ticket_from_row(&r)?;
    let kids = sqlx::query("SELECT id FROM tickets WHERE parent_id = $1 ORDER BY id").bind(no.get()).fetch_all(&mut *conn).await?;
    t.children = kids.iter().filter_map(|r| r.try_get::<i64, _>("id").ok()).filter_map(TicketNo::new).collect();
    Ok(t)
}

/// Changes the state, stamping the times that depend on it, with an event,
/// and runs the notification rules.
pub(crate) async fn set_state_tx(
    tx: &mut Tx,
    t: &Ticket,
    to: TicketState,
    actor_id: Option<i64>,
    reason: Option<ReasonCodeId>,
    now: Millis,
) -> Result<()> {
    if t.state == to {
        return Ok(());
    }
    set_state_quiet(tx, t, to, actor_id, reason, now).await?;
    match to {
        TicketState::Closed => rules::notify(tx, t.no, rules::Trigger::Closed, now).await?,
        TicketState::Solved => rules::notify(tx, t.no, rules::Trigger::Solved, now).await?,
        _ => {}
    }
    Ok(())
}

/// [`set_state_tx`] without the notification rules.
pub(crate) async fn set_state_quiet(
    tx: &mut Tx,
    t: &Ticket,
    to: TicketState,
    actor_id: Option<i64>,
    reason: Option<ReasonCodeId>,
    now: Millis,
) -> Result<()> {
    if t.state == to {
        return Ok(());
    }
    let solved = if to == TicketState::Solved { Some(now) } else if to.is_done() { t.solved_at.or(Some(now)) } else { None };
    let closed = if to == TicketState::Closed { Some(now) } else { None };
    sqlx::query(
        "UPDATE tickets SET state = $1, state_changed_at = $2, solved_at = $3, closed_at = $4, updated_at = $2, version = version + 1 WHERE id = $5",
    )
    .bind(to.as_str())
    .bind(now)
    .bind(solved)
    .bind(closed)
    .bind(t.no.get())
    .execute(&mut **tx)
    .await?;
    add_event(tx, t.no, actor_id, "state", reason, &serde_json::json!({"from": t.state, "to": to}), now).await?;
    if to == TicketState::Solved {
        sla::record_resolution(tx, t, now).await?;
        feedback::request_feedback(tx, t.no, now).await?;
    }
    Ok(())
}

impl Store {
    /// Loads a ticket the actor may see.
    pub async fn get_ticket(&self, actor: &Actor, no: TicketNo) -> Result<Ticket> {
        require_desk(actor)?;
        let mut conn = self.read.acquire().await?;
        let t = load_ticket(&mut conn, no).await?;
        actor.check_sees(t.assignee_id)?;
        Ok(t)
    }

    /// A ticket with every message and every action, oldest first.
    pub async fn ticket_detail(&self, actor: &Actor, no: TicketNo) -> Result<TicketDetail> {
        let ticket = self.get_ticket(actor, no).await?;
        let rows = sqlx::query(
            "SELECT m.id, m.direction, m.message_id, m.in_reply_to, m.from_addr, m.from_name, m.to_addrs, m.cc_addrs, m.subject, m.body_text, \
             m.body_html, m.is_auto, m.flags, m.author_id, m.party_id, m.outbox_id, o.status AS send_status, m.created_at \
             FROM ticket_messages m LEFT JOIN mail_outbox o ON o.id = m.outbox_id WHERE m.ticket_id = $1 ORDER BY m.id",
        )
        .bind(no.get())
        .fetch_all(&self.read)
        .await?;
        let atts = sqlx::query(
            "SELECT a.id, a.message_row_id, a.filename, a.content_type, a.size FROM ticket_attachments a \
             JOIN ticket_messages m ON m.id = a.message_row_id WHERE m.ticket_id = $1 ORDER BY a.id",
        )
        .bind(no.get())
        .fetch_all(&self.read)
        .await?;
        let mut messages = Vec::new();
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let mut attachments = Vec::new();
            for a in &atts {
                if a.try_get::<i64, _>("message_row_id")? == id {
                    attachments.push(AttachmentInfo {
                        id: a.try_get("id")?,
                        filename: a.try_get("filename")?,
                        content_type: a.try_get("content_type")?,
                        size: a.try_get("size")?,
                    });
                }
            }
            messages.push(TicketMessage {
                id: MessageRowId(id),
                direction: Direction::parse(&r.try_get::<String, _>("direction")?).map_err(|_| bad_row("direction"))?,
                message_id: r.try_get("message_id")?,
                in_reply_to: r.try_get("in_reply_to")?,
                from: r.try_get("from_addr")?,
                from_name: r.try_get("from_name")?,
                to: json_list(&r.try_get::<String, _>("to_addrs")?),
                cc: json_list(&r.try_get::<String, _>("cc_addrs")?),
                subject: r.try_get("subject")?,
                text: r.try_get("body_text")?,
                html: r.try_get("body_html")?,
                is_auto: b(r.try_get("is_auto")?),
                flags: json_list(&r.try_get::<String, _>("flags")?),
                author_id: r.try_get::<Option<i64>, _>("author_id")?.map(UserId),
                party_id: r.try_get::<Option<i64>, _>("party_id")?.map(PartyId),
                outbox_id: r.try_get::<Option<i64>, _>("outbox_id")?.map(OutboxId),
                send_status: r.try_get("send_status")?,
                attachments,
                created_at: r.try_get("created_at")?,
            });
        }
        let evs = sqlx::query("SELECT id, at, actor_id, action, reason_code_id, details FROM ticket_events WHERE ticket_id = $1 ORDER BY id")
            .bind(no.get())
            .fetch_all(&self.read)
            .await?;
        let events = evs
            .iter()
            .map(|r| {
                Ok(TicketEvent {
                    id: r.try_get("id")?,
                    at: r.try_get("at")?,
                    actor_id: r.try_get::<Option<i64>, _>("actor_id")?.map(UserId),
                    action: r.try_get("action")?,
                    reason_code_id: r.try_get::<Option<i64>, _>("reason_code_id")?.map(ReasonCodeId),
                    details: serde_json::from_str(&r.try_get::<String, _>("details")?).unwrap_or(serde_json::Value::Null),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TicketDetail { ticket, messages, events })
    }

    /// The content of one attachment of a ticket the actor may see.
    pub async fn ticket_attachment(&self, actor: &Actor, no: TicketNo, id: i64) -> Result<(AttachmentInfo, Vec<u8>)> {
        self.get_ticket(actor, no).await?;
        let r = sqlx::query(
            "SELECT a.id, a.filename, a.content_type, a.size, a.data FROM ticket_attachments a \
             JOIN ticket_messages m ON m.id = a.message_row_id WHERE a.id = $1 AND m.ticket_id = $2",
        )
        .bind(id)
        .bind(no.get())
        .fetch_optional(&self.read)
        .await?
        .ok_or(Error::NotFound("attachment"))?;
        Ok((
            AttachmentInfo { id, filename: r.try_get("filename")?, content_type: r.try_get("content_type")?, size: r.try_get("size")? },
            r.try_get("data")?,
        ))
    }

    /// Opens a ticket by hand.
    pub async fn create_ticket(&self, actor: &Actor, input: TicketInput, now: Millis) -> Result<Ticket> {
        require_desk(actor)?;
        let mut p = Problems::default();
        let subject = input.subject.trim().to_string();
        if subject.is_empty() || subject.len() > 500 {
            p.push("subject", "1–500 characters");
        }
        let priority = match &input.priority {
            Some(s) => p.check("priority", Priority::parse(s)),
            None => Some(Priority::Normal),
        };
        let category = match &input.category {
            Some(s) => p.check("category", CategoryPath::parse(s)),
            None => None,
        };
        let email = match &input.requester_email {
            Some(s) => p.check("requester_email", EmailAddress::parse(s)),
            None => None,
        };
        let centre = match self.get_centre(input.centre_id).await {
            Ok(c) => Some(c),
            Err(Error::NotFound(_)) => {
                p.push("centre_id", "no such centre");
                None
            }
            Err(e) => return Err(e),
        };
        if let Some(r) = input.requester_id {
            if sqlx::query("SELECT 1 FROM parties WHERE id = $1").bind(r.0).fetch_optional(&self.read).await?.is_none() {
                p.push("requester_id", "no such party");
            }
        }
        p.finish()?;
        let Some(centre) = centre else { return Err(Error::invalid("centre_id", "no such centre")) };
        let mut tx = self.begin().await?;
        let new = NewTicket {
            centre: centre.id,
            subject: subject.clone(),
            requester: input.requester_id,
            requester_email: email.clone(),
            priority: priority.unwrap_or(Priority::Normal),
            product: input.product.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            topic: input.topic.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            category,
            assignee: None,
            team: centre.team_id,
            parent: None,
            split_from_message: None,
        };
        let no = insert_ticket(&mut tx, actor, &new, now).await?;
        if let Some(text) = input.text.filter(|t| !t.trim().is_empty()) {
            let m = NewMessage {
                ticket: no,
                direction: Direction::In,
                message_id: None,
                in_reply_to: None,
                references: vec![],
                from: email,
                from_name: None,
                to: vec![],
                cc: vec![],
                subject,
                text,
                html: None,
                raw_id: None,
                outbox_id: None,
                is_auto: false,
                flags: vec!["manual".into()],
                author: actor.log_id().map(UserId),
                party: input.requester_id,
            };
            insert_message(&mut tx, &m, now).await?;
            on_customer_message(&mut tx, no, true, now).await?;
        }
        rules::on_ticket_created(&mut tx, no, now).await?;
        sla::refresh_dues(&mut tx, no, now).await?;
        rules::notify(&mut tx, no, rules::Trigger::Created, now).await?;
        tx.commit().await?;
        let mut conn = self.read.acquire().await?;
        load_ticket(&mut conn, no).await
    }
}

/// The Message-IDs of a ticket's thread, oldest first (the last ten), for
/// In-Reply-To and References of a mail we send.
pub(crate) async fn last_message_ids(tx: &mut Tx, no: TicketNo) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT message_id FROM ticket_messages WHERE ticket_id = $1 AND message_id IS NOT NULL AND direction <> 'note' ORDER BY id DESC LIMIT 10")
        .bind(no.get())
        .fetch_all(&mut **tx)
        .await?;
    let mut ids: Vec<String> = rows.iter().filter_map(|r| r.try_get::<String, _>("message_id").ok()).collect();
    ids.reverse();
    Ok(ids)
}

/// The last inbound Message-ID (what a reply answers).
async fn last_inbound_id(tx: &mut Tx, no: TicketNo) -> Result<Option<String>> {
    let r = sqlx::query("SELECT message_id FROM ticket_messages WHERE ticket_id = $1 AND direction = 'in' AND message_id IS NOT NULL ORDER BY id DESC LIMIT 1")
        .bind(no.get())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(r.and_then(|r| r.try_get("message_id").ok()))
}

str_enum!(/// What a reason code does.
    ReasonAction { SetState => "set_state", Assign => "assign", Schedule => "schedule", Note => "note" });

/// Parameters of a reason code's action.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonParams {
    /// `set_state`: the target state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TicketState>,
    /// `schedule`: the activity kind (appointment, todo, call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity_kind: Option<String>,
    /// `schedule`: the action type of the activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_type_id: Option<i64>,
    /// `schedule`: due this many minutes after applying, unless given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_in_minutes: Option<i64>,
}

/// A reason code ("causale").
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReasonCode {
    pub id: ReasonCodeId,
    pub code: String,
    pub name: String,
    pub action: ReasonAction,
    pub params: ReasonParams,
    pub default_channel: crate::types::Channel,
    /// Roles that may apply it (empty: every desk role).
    pub roles: Vec<String>,
    /// Operators that may apply it besides the roles.
    pub users: Vec<UserId>,
    pub active: bool,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonCodeInput {
    pub code: String,
    pub name: String,
    pub action: String,
    #[serde(default)]
    pub params: ReasonParams,
    #[serde(default)]
    pub default_channel: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub users: Vec<UserId>,
}

/// Applying a reason code to a ticket.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyReason {
    /// The reason code's `code`.
    pub code: String,
    /// `assign`: the new operator (none: unassign).
    #[serde(default)]
    pub assignee_id: Option<UserId>,
    /// `assign`: the new group.
    #[serde(default)]
    pub team_id: Option<TeamId>,
    /// `schedule`: when; otherwise the code's default offset.
    #[serde(default)]
    pub due_at: Option<Millis>,
    /// A comment, kept in the history (and the note text for `note`).
    #[serde(default)]
    pub note: Option<String>,
}

/// Deriving a child ticket from one message of a parent.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SplitInput {
    pub message_id: MessageRowId,
    #[serde(default)]
    pub subject: Option<String>,
}

fn reason_from_row(r: &sqlx::any::AnyRow) -> Result<ReasonCode> {
    Ok(ReasonCode {
        id: ReasonCodeId(r.try_get("id")?),
        code: r.try_get("code")?,
        name: r.try_get("name")?,
        action: ReasonAction::parse(&r.try_get::<String, _>("action")?).map_err(|_| bad_row("reason action"))?,
        params: serde_json::from_str(&r.try_get::<String, _>("params")?).unwrap_or_default(),
        default_channel: crate::types::Channel::parse(&r.try_get::<String, _>("default_channel")?).unwrap_or(crate::types::Channel::Email),
        roles: json_list(&r.try_get::<String, _>("roles")?),
        users: serde_json::from_str(&r.try_get::<String, _>("users")?).unwrap_or_default(),
        active: b(r.try_get("active")?),
    })
}

impl ReasonCode {
    /// May this actor apply the code?
    pub fn allows(&self, actor: &Actor) -> bool {
        (self.roles.is_empty() && self.users.is_empty()) || self.roles.iter().any(|r| r == actor.role.as_str()) || self.users.contains(&actor.user)
    }
}

impl Store {
    /// Queues: mine, my groups, unassigned, or all I can see.
    pub async fn list_tickets(&self, actor: &Actor, q: &QueueQuery) -> Result<crate::parties::Page<Ticket>> {
        require_desk(actor)?;
        let queue = match q.queue.as_deref() {
            None | Some("mine") => Queue::Mine,
            Some("my_groups") => Queue::MyGroups,
            Some("unassigned") => Queue::Unassigned,
            Some("all") => Queue::All,
            Some(other) => return Err(Error::invalid("queue", format!("unknown queue {other:?}; expected mine, my_groups, unassigned or all"))),
        };
        let me = actor.user.0;
        let mut conds = vec![actor.owner_filter("assignee_id")];
        match queue {
            Queue::Mine => conds.push(format!("assignee_id = {me}")),
            Queue::Unassigned => conds.push("assignee_id IS NULL".into()),
            Queue::MyGroups => conds.push(format!(
                "team_id IN (SELECT team_id FROM users WHERE id = {me} AND team_id IS NOT NULL UNION SELECT id FROM teams WHERE lead_user_id = {me}) \
                 AND (assignee_id IS NULL OR assignee_id <> {me})"
            )),
            Queue::All => {}
        }
        if !q.include_done.unwrap_or(false) {
            conds.push("state NOT IN ('solved','closed')".into());
        }
        if let Some(c) = q.centre_id {
            conds.push(format!("centre_id = {c}"));
        }
        if let Some(p) = q.party {
            // An integer from the query, not text: safe to splice.
            conds.push(format!("(requester_id = {p} OR requester_id IN (SELECT id FROM parties WHERE company_id = {p}))"));
        }
        let where_ = conds.join(" AND ");
        let limit = q.limit.unwrap_or(50).clamp(1, 500);
        let offset = q.offset.unwrap_or(0).max(0);
        let total: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) AS n FROM tickets WHERE {where_}")))
            .fetch_one(&self.read)
            .await?
            .try_get("n")?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TICKET_COLS} FROM tickets WHERE {where_} ORDER BY CASE priority WHEN 'urgent' THEN 0 WHEN 'high' THEN 1 WHEN 'normal' THEN 2 ELSE 3 END, \
             created_at, id LIMIT {limit} OFFSET {offset}"
        )))
        .fetch_all(&self.read)
        .await?;
        let items = rows.iter().map(ticket_from_row).collect::<Result<Vec<_>>>()?;
        Ok(crate::parties::Page { items, total, limit, offset })
    }

    /// Changes subject, priority, product, topic or category.
    pub async fn update_ticket(&self, actor: &Actor, no: TicketNo, patch: TicketPatch, now: Millis) -> Result<Ticket> {
        let t = self.get_ticket(actor, no).await?;
        let mut p = Problems::default();
        let prio = patch.priority.as_deref().and_then(|s| p.check("priority", Priority::parse(s)));
        let cat = patch.category.as_deref().and_then(|s| p.check("category", CategoryPath::parse(s)));
        if patch.subject.as_deref().is_some_and(|s| s.trim().is_empty() || s.len() > 500) {
            p.push("subject", "1–500 characters");
        }
        p.finish()?;
        let mut tx = self.begin().await?;
        let n = sqlx::query(
            "UPDATE tickets SET subject = COALESCE($1, subject), priority = COALESCE($2, priority), product = COALESCE($3, product), \
             topic = COALESCE($4, topic), category = COALESCE($5, category), updated_at = $6, version = version + 1 WHERE id = $7 AND version = $8",
        )
        .bind(patch.subject.as_deref().map(str::trim))
        .bind(prio.map(Priority::as_str))
        .bind(patch.product.as_deref())
        .bind(patch.topic.as_deref())
        .bind(cat.as_ref().map(|c| c.as_str().to_string()))
        .bind(now)
        .bind(no.get())
        .bind(patch.version)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Error::Conflict);
        }
        let mut changes = serde_json::Map::new();
        if let Some(pr) = prio {
            crate::oplog::diff(&mut changes, "priority", &t.priority, &pr);
        }
        if let Some(c) = &cat {
            crate::oplog::diff(&mut changes, "category", &t.category, &Some(c.as_str().to_string()));
        }
        if let Some(s) = &patch.subject {
            crate::oplog::diff(&mut changes, "subject", &t.subject, &s.trim().to_string());
        }
        let changes = serde_json::Value::Object(changes);
        add_event(&mut tx, no, actor.log_id(), "updated", None, &changes, now).await?;
        crate::oplog::record(&mut tx, actor, "ticket", no.get(), "update", &changes).await?;
        sla::refresh_dues(&mut tx, no, now).await?;
        tx.commit().await?;
        self.get_ticket(actor, no).await
    }

    /// Answers the customer (queued in the outbox for the mail side) or
    /// adds an internal note. Returns the history row.
    pub async fn reply_ticket(&self, actor: &Actor, no: TicketNo, input: ReplyInput, now: Millis) -> Result<MessageRowId> {
        let t = self.get_ticket(actor, no).await?;
        let mut p = Problems::default();
        if input.text.trim().is_empty() {
            p.push("text", "required");
        }
        let mut cc = Vec::new();
        for (i, a) in input.cc.iter().enumerate() {
            if let Some(a) = p.check(&format!("cc[{i}]"), EmailAddress::parse(a)) {
                cc.push(a);
            }
        }
        let mut to = Vec::new();
        for (i, a) in input.to.iter().enumerate() {
            if let Some(a) = p.check(&format!("to[{i}]"), EmailAddress::parse(a)) {
                to.push(a);
            }
        }
        let state = input.state.as_deref().and_then(|s| p.check("state", TicketState::parse(s)));
        if !input.internal && to.is_empty() {
            match &t.requester_email {
                Some(e) => to.push(e.clone()),
                None => p.push("to", "the ticket has no requester address; give one"),
            }
        }
        p.finish()?;
        let centre = self.get_centre(t.centre_id).await?;
        let secret = self.support_secret().await?;
        let mut tx = self.begin().await?;
        let id = if input.internal {
            let m = NewMessage {
                ticket: no,
                direction: Direction::Note,
                message_id: None,
                in_reply_to: None,
                references: vec![],
                from: None,
                from_name: Some(actor.username.clone()),
                to: vec![],
                cc: vec![],
                subject: t.subject.clone(),
                text: input.text,
                html: input.html,
                raw_id: None,
                outbox_id: None,
                is_auto: false,
                flags: vec![],
                author: actor.log_id().map(UserId),
                party: None,
            };
            insert_message(&mut tx, &m, now).await?
        } else {
            let refs = last_message_ids(&mut tx, no).await?;
            let consultant = !input.to.is_empty();
            let m = mail::OutboxInsert {
                ticket: Some(no),
                kind: OutboxKind::Reply,
                to,
                cc,
                subject: format!("Re: {} {}", t.subject.trim_start_matches("Re: "), no.subject_tag()),
                text: input.text,
                html: input.html,
                in_reply_to: last_inbound_id(&mut tx, no).await?.or(refs.last().cloned()),
                references: refs,
                auto_submitted: false,
                author: actor.log_id().map(UserId),
            };
            let ob = mail::queue_outbox(&mut tx, &m, &centre, &secret, now).await?;
            if !consultant {
                sla::record_agent_reply(&mut tx, &t, now).await?;
            }
            let r = sqlx::query("SELECT id FROM ticket_messages WHERE outbox_id = $1").bind(ob.0).fetch_one(&mut *tx).await?;
            MessageRowId(r.try_get("id")?)
        };
        add_event(&mut tx, no, actor.log_id(), if input.internal { "note" } else { "reply" }, None, &serde_json::json!({"message": id.0}), now).await?;
        let t2 = load_ticket(&mut tx, no).await?;
        let target = state.or(if t2.state == TicketState::New && !input.internal { Some(TicketState::Open) } else { None });
        if let Some(s) = target {
            set_state_tx(&mut tx, &t2, s, actor.log_id(), None, now).await?;
        }
        sla::refresh_dues(&mut tx, no, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn create_reason_code(&self, actor: &Actor, input: ReasonCodeInput) -> Result<ReasonCode> {
        require_desk_admin(actor)?;
        let mut p = Problems::default();
        let code = input.code.trim().to_string();
        if code.is_empty() || code.len() > 64 {
            p.push("code", "1–64 characters");
        }
        if input.name.trim().is_empty() {
            p.push("name", "required");
        }
        let action = p.check("action", ReasonAction::parse(&input.action));
        let channel = match &input.default_channel {
            Some(c) => p.check("default_channel", crate::types::Channel::parse(c)),
            None => Some(crate::types::Channel::Email),
        };
        for (i, r) in input.roles.iter().enumerate() {
            p.check(&format!("roles[{i}]"), crate::auth::Role::parse(r));
        }
        match action {
            Some(ReasonAction::SetState) if input.params.state.is_none() => p.push("params.state", "required for set_state"),
            Some(ReasonAction::Schedule) => {
                if let Some(k) = &input.params.activity_kind {
                    p.check("params.activity_kind", crate::activities::ActivityKind::parse(k));
                }
            }
            _ => {}
        }
        p.finish()?;
        let mut tx = self.begin().await?;
        if sqlx::query("SELECT 1 FROM reason_codes WHERE code = $1").bind(&code).fetch_optional(&mut *tx).await?.is_some() {
            return Err(Error::Duplicate(format!("reason code {code:?} exists")));
        }
        let r = sqlx::query(
            "INSERT INTO reason_codes (code, name, action, params, default_channel, roles, users, active, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8) RETURNING id",
        )
        .bind(&code)
        .bind(input.name.trim())
        .bind(action.map(ReasonAction::as_str).unwrap_or("note"))
        .bind(to_json(&input.params))
        .bind(channel.map(|c| c.as_str()).unwrap_or("email"))
        .bind(to_json(&input.roles))
        .bind(to_json(&input.users))
        .bind(crate::types::now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = r.try_get("id")?;
        crate::oplog::record(&mut tx, actor, "reason_code", id, "create", &serde_json::json!({"code": code})).await?;
        tx.commit().await?;
        let r = sqlx::query("SELECT * FROM reason_codes WHERE id = $1").bind(id).fetch_one(&self.read).await?;
        reason_from_row(&r)
    }

    pub async fn list_reason_codes(&self, actor: &Actor) -> Result<Vec<ReasonCode>> {
        require_desk(actor)?;
        let rows = sqlx::query("SELECT * FROM reason_codes WHERE active = 1 ORDER BY code").fetch_all(&self.read).await?;
        rows.iter().map(reason_from_row).collect()
    }

    /// Applies a reason code: the code decides the action (change state,
    /// change operator, schedule an agenda item, add a note) and who may.
    pub async fn apply_reason(&self, actor: &Actor, no: TicketNo, input: ApplyReason, now: Millis) -> Result<Ticket> {
        let t = self.get_ticket(actor, no).await?;
        let r = sqlx::query("SELECT * FROM reason_codes WHERE code = $1 AND active = 1")
            .bind(input.code.trim())
            .fetch_optional(&self.read)
            .await?
            .ok_or_else(|| Error::invalid("code", "no such reason code"))?;
        let rc = reason_from_row(&r)?;
        if !rc.allows(actor) {
            return Err(Error::Forbidden);
        }
        // Scheduling goes through the activities API (its own transaction)
        // before the ticket's event is written.
        let mut details = serde_json::json!({"code": rc.code, "note": input.note, "channel": rc.default_channel});
        if rc.action == ReasonAction::Schedule {
            let party = t.requester_id.ok_or_else(|| Error::invalid("code", "the ticket has no requester to schedule with"))?;
            let action_type = match rc.params.action_type_id {
                Some(a) => a,
                None => sqlx::query("SELECT MIN(id) AS id FROM action_types").fetch_one(&self.read).await?.try_get::<Option<i64>, _>("id")?.ok_or_else(|| Error::invalid("code", "no action types are configured"))?,
            };
            let due = input.due_at.or(rc.params.due_in_minutes.map(|m| now + m * 60_000));
            let act = self
                .create_activity(
                    actor,
                    crate::activities::ActivityInput {
                        kind: rc.params.activity_kind.clone().unwrap_or_else(|| "todo".into()),
                        party_id: party,
                        action_type_id: crate::outcomes::ActionTypeId(action_type),
                        deal_id: None,
                        owner_id: None,
                        subject: Some(format!("{no}: {}", t.subject)),
                        notes: input.note.clone(),
                        due_at: due,
                        parent_activity_id: None,
                    },
                )
                .await?;
            details["activity_id"] = serde_json::json!(act.id.0);
        }
        let mut tx = self.begin().await?;
        match rc.action {
            ReasonAction::SetState => {
                if let Some(s) = rc.params.state {
                    set_state_tx(&mut tx, &t, s, actor.log_id(), Some(rc.id), now).await?;
                }
            }
            ReasonAction::Assign => {
                if let Some(u) = input.assignee_id {
                    let ok = sqlx::query("SELECT 1 FROM users WHERE id = $1 AND active = 1 AND role IN ('support','supervisor','admin')")
                        .bind(u.0)
                        .fetch_optional(&mut *tx)
                        .await?
                        .is_some();
                    if !ok {
                        return Err(Error::invalid("assignee_id", "no such desk operator"));
                    }
                    actor.check_sees(Some(u))?;
                }
                let team = input.team_id.or(t.team_id);
                sqlx::query("UPDATE tickets SET assignee_id = $1, team_id = $2, updated_at = $3, version = version + 1 WHERE id = $4")
                    .bind(input.assignee_id.map(|u| u.0))
                    .bind(team.map(|x| x.0))
                    .bind(now)
                    .bind(no.get())
                    .execute(&mut *tx)
                    .await?;
                details["assignee"] = serde_json::json!([t.assignee_id, input.assignee_id]);
                details["team"] = serde_json::json!([t.team_id, team]);
                if t.state == TicketState::New {
                    set_state_tx(&mut tx, &t, TicketState::Open, actor.log_id(), Some(rc.id), now).await?;
                }
            }
            ReasonAction::Note => {
                let m = NewMessage {
                    ticket: no,
                    direction: Direction::Note,
                    message_id: None,
                    in_reply_to: None,
                    references: vec![],
                    from: None,
                    from_name: Some(actor.username.clone()),
                    to: vec![],
                    cc: vec![],
                    subject: rc.name.clone(),
                    text: input.note.clone().unwrap_or_default(),
                    html: None,
                    raw_id: None,
                    outbox_id: None,
                    is_auto: false,
                    flags: vec![rc.code.clone()],
                    author: actor.log_id().map(UserId),
                    party: None,
                };
                insert_message(&mut tx, &m, now).await?;
            }
            ReasonAction::Schedule => {}
        }
        add_event(&mut tx, no, actor.log_id(), &format!("reason:{}", rc.action.as_str()), Some(rc.id), &details, now).await?;
        crate::oplog::record(&mut tx, actor, "ticket", no.get(), "reason", &details).await?;
        sla::refresh_dues(&mut tx, no, now).await?;
        tx.commit().await?;
        let mut conn = self.read.acquire().await?;
        load_ticket(&mut conn, no).await
    }

    /// Derives a child ticket from one message of a parent; each refers to
    /// the other, and the message is copied into the child.
    pub async fn split_ticket(&self, actor: &Actor, parent: TicketNo, input: SplitInput, now: Millis) -> Result<Ticket> {
        let t = self.get_ticket(actor, parent).await?;
        let mut tx = self.begin().await?;
        let r = sqlx::query("SELECT * FROM ticket_messages WHERE id = $1 AND ticket_id = $2")
            .bind(input.message_id.0)
            .bind(parent.get())
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| Error::invalid("message_id", "no such message in this ticket"))?;
        let subject = input.subject.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).unwrap_or_else(|| r.try_get::<String, _>("subject").unwrap_or_default());
        let new = NewTicket {
            centre: t.centre_id,
            subject: mail::clean_subject(&subject),
            requester: t.requester_id,
            requester_email: t.requester_email.clone(),
            priority: t.priority,
            product: t.product.clone(),
            topic: t.topic.clone(),
            category: t.category.as_deref().and_then(|c| CategoryPath::parse(c).ok()),
            assignee: t.assignee_id,
            team: t.team_id,
            parent: Some(parent),
            split_from_message: Some(input.message_id),
        };
        let child = insert_ticket(&mut tx, actor, &new, now).await?;
        // The copy keeps the Message-ID: later replies to that message
        // thread into the child, where the conversation continues.
        sqlx::query(
            "INSERT INTO ticket_messages (ticket_id, direction, message_id, in_reply_to, refs, from_addr, from_name, to_addrs, cc_addrs, subject, \
             body_text, body_html, raw_id, outbox_id, is_auto, flags, author_id, party_id, created_at) \
             SELECT $1, direction, message_id, in_reply_to, refs, from_addr, from_name, to_addrs, cc_addrs, subject, body_text, body_html, NULL, NULL, \
             is_auto, flags, author_id, party_id, $2 FROM ticket_messages WHERE id = $3",
        )
        .bind(child.get())
        .bind(now)
        .bind(input.message_id.0)
        .execute(&mut *tx)
        .await?;
        add_event(&mut tx, parent, actor.log_id(), "split", None, &serde_json::json!({"child": child, "message": input.message_id.0}), now).await?;
        add_event(&mut tx, child, actor.log_id(), "split_from", None, &serde_json::json!({"parent": parent, "message": input.message_id.0}), now).await?;
        sla::refresh_dues(&mut tx, child, now).await?;
        tx.commit().await?;
        let mut conn = self.read.acquire().await?;
        load_ticket(&mut conn, child).await
    }

    /// Sets each split parent's state from its children: open while any
    /// child is new or open, pending while any waits, solved when all are
    /// done (closed when all are closed). Returns the parents changed.
    pub async fn propagate_split_states(&self, now: Millis) -> Result<Vec<TicketNo>> {
        let rows = sqlx::query(
            "SELECT p.id AS parent, c.state AS state FROM tickets p JOIN tickets c ON c.parent_id = p.id WHERE p.state <> 'closed' ORDER BY p.id",
        )
        .fetch_all(&self.read)
        .await?;
        let mut by_parent: std::collections::BTreeMap<i64, Vec<TicketState>> = Default::default();
        for r in &rows {
            let s = TicketState::parse(&r.try_get::<String, _>("state")?).map_err(|_| bad_row("ticket state"))?;
            by_parent.entry(r.try_get("parent")?).or_default().push(s);
        }
        let mut changed = Vec::new();
        for (p, states) in by_parent {
            let target = if states.iter().any(|s| matches!(s, TicketState::New | TicketState::Open)) {
                TicketState::Open
            } else if states.contains(&TicketState::Pending) {
                TicketState::Pending
            } else if states.iter().all(|s| *s == TicketState::Closed) {
                TicketState::Closed
            } else {
                TicketState::Solved
            };
            let Some(no) = TicketNo::new(p) else { continue };
            let mut tx = self.begin().await?;
            let t = load_ticket(&mut tx, no).await?;
            if t.state != target {
                set_state_tx(&mut tx, &t, target, None, None, now).await?;
                add_event(&mut tx, no, None, "split_propagated", None, &serde_json::json!({"children": states}), now).await?;
                sla::refresh_dues(&mut tx, no, now).await?;
                changed.push(no);
            }
            tx.commit().await?;
        }
        Ok(changed)
    }

    /// Sets a ticket's state directly (no reason code: used by jobs and
    /// tests; people go through [`Store::apply_reason`]).
    pub async fn set_ticket_state(&self, actor: &Actor, no: TicketNo, state: TicketState, now: Millis) -> Result<Ticket> {
        let t = self.get_ticket(actor, no).await?;
        let mut tx = self.begin().await?;
        set_state_tx(&mut tx, &t, state, actor.log_id(), None, now).await?;
        sla::refresh_dues(&mut tx, no, now).await?;
        tx.commit().await?;
        let mut conn = self.read.acquire().await?;
        load_ticket(&mut conn, no).await
    }
}
