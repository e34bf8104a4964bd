//! Rules as data, edited through the API and evaluated here:
//! - **assignment** rules pick the operator of a new ticket (the first
//!   matching rule by position wins): a fixed user, or round-robin or
//!   least-loaded within a group;
//! - **scheduled** rules act on tickets that stayed in a state longer than
//!   a period ([`Store::run_scheduled_rules`]): remind the customer, close;
//!   each fires once per ticket and state period;
//! - **notification** rules turn ticket events (created, solved, closed,
//!   SLA warning or breach) into mails for staff, queued in the outbox.
//!
//! A rule is a [`RuleConditions`] (all set fields must hold) and a
//! [`RuleAction`].

use super::*;
use crate::auth::Actor;
use crate::error::Problems;
use crate::store::{Store, b};
use crate::types::{EmailAddress, TeamId, UserId};
use sqlx::Row;

/// What happened to a ticket, for notification rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Created,
    Solved,
    Closed,
    SlaWarning,
    SlaBreach,
}

str_enum!(/// The three families of rules.
    RuleKind { Assignment => "assignment", Scheduled => "scheduled", Notification => "notification" });

/// Conditions on a ticket; unset fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConditions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centre_id: Option<ServiceCentreId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Matches the category and everything below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// Scheduled rules: the state the ticket must be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TicketState>,
    /// Scheduled rules: for at least this long (real time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_state_for_ms: Option<Millis>,
    /// Notification rules: the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The requester (or their company) is blocked: characteristic
    /// `blocked` = yes/true/1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester_blocked: Option<bool>,
}

/// How an assignment rule spreads tickets over a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    RoundRobin,
    LeastLoaded,
}

/// Who a notification goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NotifyTarget {
    /// The owner of the requester (or of the requester's company).
    AccountOwner,
    /// The head of the ticket's centre.
    CentreHead,
    /// The assigned operator.
    Assignee,
    /// The lead of the ticket's group.
    GroupLead,
    /// A fixed address (`address`).
    Address,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleAction {
    /// Assignment: a member of the group, by strategy.
    AssignGroup { team_id: TeamId, strategy: Strategy },
    /// Assignment: one operator.
    AssignUser { user_id: UserId },
    /// Scheduled: move the ticket to a state (e.g. solved → closed).
    SetState { state: TicketState },
    /// Scheduled: mail the requester (e.g. a reminder while pending).
    MailCustomer { subject: String, text: String },
    /// Notification (or scheduled): mail staff.
    Notify {
        target: NotifyTarget,
        #[serde(default)]
        address: Option<String>,
        subject: String,
        text: String,
    },
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rule {
    pub id: RuleId,
    pub kind: RuleKind,
    pub name: String,
    pub position: i64,
    pub active: bool,
    pub conditions: RuleConditions,
    pub action: RuleAction,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub kind: String,
    pub name: String,
    #[serde(default)]
    pub position: i64,
    #[serde(default = "yes")]
    pub active: bool,
    #[serde(default)]
    pub conditions: RuleConditions,
    pub action: RuleAction,
}

fn yes() -> bool {
    true
}

/// What a scheduled rule did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RuleFiring {
    pub rule: RuleId,
    pub ticket: TicketNo,
}

fn validate(input: &RuleInput) -> Result<RuleKind> {
    let mut p = Problems::default();
    let kind = p.check("kind", RuleKind::parse(&input.kind));
    if input.name.trim().is_empty() || input.name.len() > 200 {
        p.push("name", "1–200 characters");
    }
    if let Some(c) = &input.conditions.category {
        p.check("conditions.category", CategoryPath::parse(c));
    }
    match (kind, &input.action) {
        (Some(RuleKind::Assignment), RuleAction::AssignGroup { .. } | RuleAction::AssignUser { .. }) => {}
        (Some(RuleKind::Assignment), _) => p.push("action", "an assignment rule assigns (assign_group or assign_user)"),
        (Some(RuleKind::Scheduled), RuleAction::SetState { .. } | RuleAction::MailCustomer { .. } | RuleAction::Notify { .. }) => {
            if input.conditions.state.is_none() || input.conditions.in_state_for_ms.is_none_or(|ms| ms <= 0) {
                p.push("conditions", "a scheduled rule needs state and a positive in_state_for_ms");
            }
        }
        (Some(RuleKind::Scheduled), _) => p.push("action", "a scheduled rule sets a state, mails the customer or notifies"),
        (Some(RuleKind::Notification), RuleAction::Notify { .. }) => {
            if input.conditions.trigger.is_none() {
                p.push("conditions.trigger", "a notification rule needs a trigger");
            }
        }
        (Some(RuleKind::Notification), _) => p.push("action", "a notification rule notifies"),
        (None, _) => {}
    }
    if let RuleAction::Notify { target: NotifyTarget::Address, address, .. } = &input.action {
        match address {
            Some(a) => {
                p.check("action.address", EmailAddress::parse(a));
            }
            None => p.push("action.address", "required for target address"),
        }
    }
    p.finish()?;
    kind.ok_or_else(|| Error::invalid("kind", "unknown"))
}

fn rule_from_row(r: &sqlx::any::AnyRow) -> Result<Rule> {
    Ok(Rule {
        id: RuleId(r.try_get("id")?),
        kind: RuleKind::parse(&r.try_get::<String, _>("kind")?).map_err(|_| bad_row("rule kind"))?,
        name: r.try_get("name")?,
        position: r.try_get("position")?,
        active: b(r.try_get("active")?),
        conditions: serde_json::from_str(&r.try_get::<String, _>("conditions")?).map_err(|_| bad_row("rule conditions"))?,
        action: serde_json::from_str(&r.try_get::<String, _>("action")?).map_err(|_| bad_row("rule action"))?,
    })
}

const RULE_COLS: &str = "id, kind, name, position, active, conditions, action";

async fn rules_of(conn: &mut sqlx::AnyConnection, kind: RuleKind) -> Result<Vec<Rule>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RULE_COLS} FROM ticket_rules WHERE kind = $1 AND active = 1 ORDER BY position, id")))
        .bind(kind.as_str())
        .fetch_all(&mut *conn)
        .await?;
    // A rule that no longer decodes is skipped, not fatal for the ticket.
    Ok(rows.iter().filter_map(|r| rule_from_row(r).ok()).collect())
}

async fn requester_blocked(conn: &mut sqlx::AnyConnection, t: &Ticket) -> Result<bool> {
    let Some(p) = t.requester_id else { return Ok(false) };
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM party_chars c WHERE LOWER(c.key) = 'blocked' AND LOWER(c.value) IN ('yes','true','1','si','sì') \
         AND (c.party_id = $1 OR c.party_id = (SELECT company_id FROM parties WHERE id = $1))",
    )
    .bind(p.0)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get::<i64, _>("n")? > 0)
}

async fn matches(conn: &mut sqlx::AnyConnection, c: &RuleConditions, t: &Ticket, trigger: Option<Trigger>) -> Result<bool> {
    let eq = |want: &Option<String>, have: &Option<String>| want.as_ref().is_none_or(|w| have.as_ref().is_some_and(|h| h.eq_ignore_ascii_case(w)));
    let ok = c.centre_id.is_none_or(|x| x == t.centre_id)
        && eq(&c.product, &t.product)
        && eq(&c.topic, &t.topic)
        && c.category.as_ref().is_none_or(|want| {
            t.category.as_deref().and_then(|h| CategoryPath::parse(h).ok()).is_some_and(|h| CategoryPath::parse(want).is_ok_and(|w| h.is_under(w.as_str())))
        })
        && c.priority.is_none_or(|p| p == t.priority)
        && c.state.is_none_or(|s| s == t.state)
        && (c.trigger.is_none() || c.trigger == trigger);
    if !ok {
        return Ok(false);
    }
    match c.requester_blocked {
        Some(want) => Ok(requester_blocked(conn, t).await? == want),
        None => Ok(true),
    }
}

/// The desk users of a group, by id.
async fn members(conn: &mut sqlx::AnyConnection, team: TeamId) -> Result<Vec<i64>> {
    let rows = sqlx::query("SELECT id FROM users WHERE team_id = $1 AND active = 1 AND role IN ('support','supervisor','admin') ORDER BY id")
        .bind(team.0)
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Runs the assignment rules on a new ticket.
pub(crate) async fn on_ticket_created(tx: &mut Tx, no: TicketNo, now: Millis) -> Result<()> {
    // The rules first: with none (the common case on a small desk) the
    // ticket need not be loaded at all.
    let rules = rules_of(tx, RuleKind::Assignment).await?;
    if rules.is_empty() {
        return Ok(());
    }
    let t = desk::load_ticket(tx, no).await?;
    if t.assignee_id.is_some() {
        return Ok(());
    }
    for rule in rules {
        if !matches(tx, &rule.conditions, &t, None).await? {
            continue;
        }
        let (user, team) = match &rule.action {
            RuleAction::AssignUser { user_id } => (Some(user_id.0), t.team_id.map(|x| x.0)),
            RuleAction::AssignGroup { team_id, strategy } => {
                let ms = members(tx, *team_id).await?;
                let pick = match strategy {
                    Strategy::RoundRobin => {
                        let last: Option<i64> = sqlx::query("SELECT rr_last_user_id FROM ticket_rules WHERE id = $1")
                            .bind(rule.id.0)
                            .fetch_one(&mut **tx)
                            .await?
                            .try_get("rr_last_user_id")?;
                        let next = last.and_then(|l| ms.iter().copied().find(|&m| m > l)).or(ms.first().copied());
                        sqlx::query("UPDATE ticket_rules SET rr_last_user_id = $1 WHERE id = $2").bind(next).bind(rule.id.0).execute(&mut **tx).await?;
                        next
                    }
                    Strategy::LeastLoaded => {
                        let mut best: Option<(i64, i64)> = None;
                        for m in &ms {
                            let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tickets WHERE assignee_id = $1 AND state NOT IN ('solved','closed')")
                                .bind(m)
                                .fetch_one(&mut **tx)
                                .await?
                                .try_get("n")?;
                            if best.is_none_or(|(_, bn)| n < bn) {
                                best = Some((*m, n));
                            }
                        }
                        best.map(|(m, _)| m)
                    }
                };
                (pick, Some(team_id.0))
            }
            _ => continue,
        };
        sqlx::query("UPDATE tickets SET assignee_id = $1, team_id = $2 WHERE id = $3").bind(user).bind(team).bind(no.get()).execute(&mut **tx).await?;
        desk::add_event(tx, no, None, "assigned", None, &serde_json::json!({"rule": rule.id.0, "assignee_id": user, "team_id": team}), now).await?;
        return Ok(());
    }
    Ok(())
}

/// The installation secret, read inside a write transaction.
pub(crate) async fn secret_tx(tx: &mut Tx) -> Result<Vec<u8>> {
    if let Some(r) = sqlx::query("SELECT value FROM support_secrets WHERE name = 'hmac'").fetch_optional(&mut **tx).await? {
        return Ok(r.try_get("value")?);
    }
    let mut key = vec![0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
    sqlx::query("INSERT INTO support_secrets (name, value) VALUES ('hmac', $1)").bind(key.clone()).execute(&mut **tx).await?;
    Ok(key)
}

async fn user_email(conn: &mut sqlx::AnyConnection, user: Option<i64>) -> Result<Option<EmailAddress>> {
    let Some(u) = user else { return Ok(None) };
    let r = sqlx::query("SELECT username FROM users WHERE id = $1").bind(u).fetch_optional(&mut *conn).await?;
    Ok(r.and_then(|r| r.try_get::<String, _>("username").ok()).and_then(|n| EmailAddress::parse(&n).ok()))
}

/// Fills `{ticket}`, `{subject}`, `{state}`, `{priority}` in a template.
fn fill(template: &str, t: &Ticket) -> String {
    template
        .replace("{ticket}", &t.no.to_string())
        .replace("{subject}", &t.subject)
        .replace("{state}", t.state.as_str())
        .replace("{priority}", t.priority.as_str())
}

async fn notify_target(tx: &mut Tx, t: &Ticket, target: NotifyTarget, address: &Option<String>) -> Result<Option<EmailAddress>> {
    Ok(match target {
        NotifyTarget::Address => address.as_deref().and_then(|a| EmailAddress::parse(a).ok()),
        NotifyTarget::Assignee => user_email(tx, t.assignee_id.map(|u| u.0)).await?,
        NotifyTarget::CentreHead => {
            let h: Option<i64> = sqlx::query("SELECT head_user_id FROM service_centres WHERE id = $1").bind(t.centre_id.0).fetch_one(&mut **tx).await?.try_get("head_user_id")?;
            user_email(tx, h).await?
        }
        NotifyTarget::GroupLead => {
            let Some(team) = t.team_id else { return Ok(None) };
            let h: Option<i64> = match sqlx::query("SELECT lead_user_id FROM teams WHERE id = $1").bind(team.0).fetch_optional(&mut **tx).await? {
                Some(r) => r.try_get("lead_user_id")?,
                None => None,
            };
            user_email(tx, h).await?
        }
        NotifyTarget::AccountOwner => {
            let Some(p) = t.requester_id else { return Ok(None) };
            let r = sqlx::query("SELECT p.owner_id AS o, c.owner_id AS co FROM parties p LEFT JOIN parties c ON c.id = p.company_id WHERE p.id = $1")
                .bind(p.0)
                .fetch_optional(&mut **tx)
                .await?;
            let owner = match r {
                Some(r) => r.try_get::<Option<i64>, _>("o")?.or(r.try_get::<Option<i64>, _>("co")?),
                None => None,
            };
            user_email(tx, owner).await?
        }
    })
}

/// Runs one action of a scheduled or notification rule on a ticket.
async fn apply(tx: &mut Tx, rule: &Rule, t: &Ticket, now: Millis) -> Result<()> {
    let centre = centres::load_centre(tx, t.centre_id).await?;
    match &rule.action {
        // Without notifications here (they would recurse into the rules);
        // run_scheduled_rules notifies after the action.
        RuleAction::SetState { state } => desk::set_state_quiet(tx, t, *state, None, None, now).await?,
        RuleAction::MailCustomer { subject, text } => {
            let Some(to) = t.requester_email.clone() else { return Ok(()) };
            let secret = secret_tx(tx).await?;
            let last = desk::last_message_ids(tx, t.no).await?;
            let m = mail::OutboxInsert {
                ticket: Some(t.no),
                kind: OutboxKind::Reminder,
                to: vec![to],
                cc: vec![],
                subject: format!("{} {}", fill(subject, t), t.no.subject_tag()),
                text: fill(text, t),
                html: None,
                in_reply_to: last.last().cloned(),
                references: last,
                auto_submitted: true,
                author: None,
            };
            mail::queue_outbox(tx, &m, &centre, &secret, now).await?;
        }
        RuleAction::Notify { target, address, subject, text } => {
            let Some(to) = notify_target(tx, t, *target, address).await? else {
                desk::add_event(tx, t.no, None, "notification_skipped", None, &serde_json::json!({"rule": rule.id.0, "reason": "no recipient address"}), now).await?;
                return Ok(());
            };
            let secret = secret_tx(tx).await?;
            let m = mail::OutboxInsert {
                ticket: Some(t.no),
                kind: OutboxKind::Notification,
                to: vec![to],
                cc: vec![],
                subject: fill(subject, t),
                text: fill(text, t),
                html: None,
                in_reply_to: None,
                references: vec![],
                auto_submitted: true,
                author: None,
            };
            mail::queue_outbox(tx, &m, &centre, &secret, now).await?;
        }
        RuleAction::AssignGroup { .. } | RuleAction::AssignUser { .. } => {}
    }
    Ok(())
}

/// Runs the notification rules for an event on a ticket.
pub(crate) async fn notify(tx: &mut Tx, no: TicketNo, trigger: Trigger, now: Millis) -> Result<()> {
    let rules = rules_of(tx, RuleKind::Notification).await?;
    if rules.is_empty() {
        return Ok(());
    }
    let t = desk::load_ticket(tx, no).await?;
    for rule in rules {
        if rule.conditions.trigger == Some(trigger) && matches(tx, &rule.conditions, &t, Some(trigger)).await? {
            apply(tx, &rule, &t, now).await?;
        }
    }
    Ok(())
}

impl Store {
    pub async fn create_rule(&self, actor: &Actor, input: RuleInput) -> Result<Rule> {
        require_desk_admin(actor)?;
        let kind = validate(&input)?;
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "INSERT INTO ticket_rules (kind, name, position, active, conditions, action, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(kind.as_str())
        .bind(input.name.trim())
        .bind(input.position)
        .bind(i64::from(input.active))
        .bind(to_json(&input.conditions))
        .bind(to_json(&input.action))
        .bind(crate::types::now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = r.try_get("id")?;
        crate::oplog::record(&mut tx, actor, "ticket_rule", id, "create", &serde_json::json!({"name": input.name, "kind": kind})).await?;
        tx.commit().await?;
        self.get_rule(actor, RuleId(id)).await
    }

    pub async fn update_rule(&self, actor: &Actor, id: RuleId, input: RuleInput) -> Result<Rule> {
        require_desk_admin(actor)?;
        let kind = validate(&input)?;
        let mut tx = self.begin().await?;
        let n = sqlx::query("UPDATE ticket_rules SET kind = $1, name = $2, position = $3, active = $4, conditions = $5, action = $6, updated_at = $7 WHERE id = $8")
            .bind(kind.as_str())
            .bind(input.name.trim())
            .bind(input.position)
            .bind(i64::from(input.active))
            .bind(to_json(&input.conditions))
            .bind(to_json(&input.action))
            .bind(crate::types::now_ms())
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound("rule"));
        }
        crate::oplog::record(&mut tx, actor, "ticket_rule", id.0, "update", &serde_json::json!({"name": input.name})).await?;
        tx.commit().await?;
        self.get_rule(actor, id).await
    }

    pub async fn delete_rule(&self, actor: &Actor, id: RuleId) -> Result<()> {
        require_desk_admin(actor)?;
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM rule_firings WHERE rule_id = $1").bind(id.0).execute(&mut *tx).await?;
        let n = sqlx::query("DELETE FROM ticket_rules WHERE id = $1").bind(id.0).execute(&mut *tx).await?.rows_affected();
        if n == 0 {
            return Err(Error::NotFound("rule"));
        }
        crate::oplog::record(&mut tx, actor, "ticket_rule", id.0, "delete", &serde_json::json!({})).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_rule(&self, actor: &Actor, id: RuleId) -> Result<Rule> {
        require_desk(actor)?;
        let r = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RULE_COLS} FROM ticket_rules WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("rule"))?;
        rule_from_row(&r)
    }

    pub async fn list_rules(&self, actor: &Actor) -> Result<Vec<Rule>> {
        require_desk(actor)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {RULE_COLS} FROM ticket_rules ORDER BY kind, position, id"))).fetch_all(&self.read).await?;
        rows.iter().map(rule_from_row).collect()
    }

    /// Runs the scheduled rules: each fires at most once per ticket and
    /// period in the state (keyed by when the ticket entered it).
    pub async fn run_scheduled_rules(&self, now: Millis) -> Result<Vec<RuleFiring>> {
        let mut conn = self.read.acquire().await?;
        let rules = rules_of(&mut conn, RuleKind::Scheduled).await?;
        drop(conn);
        let mut out = Vec::new();
        for rule in rules {
            let (Some(state), Some(age)) = (rule.conditions.state, rule.conditions.in_state_for_ms) else { continue };
            let rows = sqlx::query("SELECT id FROM tickets WHERE state = $1 AND state_changed_at <= $2 ORDER BY id LIMIT 1000")
                .bind(state.as_str())
                .bind(now - age)
                .fetch_all(&self.read)
                .await?;
            for r in rows {
                let Some(no) = TicketNo::new(r.try_get("id")?) else { continue };
                let mut tx = self.begin().await?;
                let t = desk::load_ticket(&mut tx, no).await?;
                if t.state != state || t.state_changed_at > now - age || !matches(&mut tx, &rule.conditions, &t, None).await? {
                    continue;
                }
                let fired = sqlx::query(
                    "INSERT INTO rule_firings (rule_id, ticket_id, fire_key, at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (rule_id, ticket_id, fire_key) DO NOTHING RETURNING rule_id",
                )
                .bind(rule.id.0)
                .bind(no.get())
                .bind(t.state_changed_at.to_string())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                if fired.is_none() {
                    continue;
                }
                desk::add_event(&mut tx, no, None, "rule", None, &serde_json::json!({"rule": rule.id.0, "name": rule.name}), now).await?;
                apply(&mut tx, &rule, &t, now).await?;
                match rule.action {
                    RuleAction::SetState { state: TicketState::Closed } => notify(&mut tx, no, Trigger::Closed, now).await?,
                    RuleAction::SetState { state: TicketState::Solved } => notify(&mut tx, no, Trigger::Solved, now).await?,
                    _ => {}
                }
                sla::refresh_dues(&mut tx, no, now).await?;
                tx.commit().await?;
                out.push(RuleFiring { rule: rule.id, ticket: no });
            }
        }
        Ok(out)
    }
}
