//! Service centres: public (anyone may write) or reserved (known customers
//! only), each fed by one or more mailbox addresses, with a default group,
//! a head (who hears about blocked customers) and a business calendar.

use super::*;
use crate::auth::{Actor, Role};
use crate::error::Problems;
use crate::store::{Store, b};
use crate::types::{EmailAddress, TeamId, UserId, now_ms};
use sqlx::Row;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ServiceCentre {
    pub id: ServiceCentreId,
    pub name: String,
    pub public: bool,
    pub team_id: Option<TeamId>,
    pub head_user_id: Option<UserId>,
    pub calendar_id: Option<CalendarId>,
    /// Acknowledge new tickets by mail.
    pub auto_ack: bool,
    /// Addresses that feed the centre; the first is the reply address.
    pub mailboxes: Vec<EmailAddress>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CentreInput {
    pub name: String,
    #[serde(default = "yes")]
    pub public: bool,
    #[serde(default)]
    pub team_id: Option<TeamId>,
    #[serde(default)]
    pub head_user_id: Option<UserId>,
    #[serde(default)]
    pub calendar_id: Option<CalendarId>,
    #[serde(default = "yes")]
    pub auto_ack: bool,
    #[serde(default)]
    pub mailboxes: Vec<String>,
}

fn yes() -> bool {
    true
}

/// Who may work tickets: support reps, supervisors and admins.
pub fn require_desk(actor: &Actor) -> Result<()> {
    if matches!(actor.role, Role::Support | Role::Supervisor | Role::Admin) { Ok(()) } else { Err(Error::Forbidden) }
}

/// Who may configure the desk (centres, rules, reason codes, SLA).
pub fn require_desk_admin(actor: &Actor) -> Result<()> {
    if matches!(actor.role, Role::Supervisor | Role::Admin) { Ok(()) } else { Err(Error::Forbidden) }
}

impl Store {
    pub async fn create_centre(&self, actor: &Actor, input: CentreInput) -> Result<ServiceCentre> {
        require_desk_admin(actor)?;
        let mut p = Problems::default();
        let name = input.name.trim().to_string();
        if name.is_empty() || name.len() > 200 {
            p.push("name", "1–200 characters");
        }
        let mut boxes = Vec::new();
        for (i, m) in input.mailboxes.iter().enumerate() {
            if let Some(a) = p.check(&format!("mailboxes[{i}]"), EmailAddress::parse(m)) {
                boxes.push(a);
            }
        }
        p.finish()?;
        let mut tx = self.begin().await?;
        if sqlx::query("SELECT 1 FROM service_centres WHERE name = $1").bind(&name).fetch_optional(&mut *tx).await?.is_some() {
            return Err(Error::Duplicate(format!("a centre named {name:?} exists")));
        }
        for a in &boxes {
            if sqlx::query("SELECT 1 FROM centre_mailboxes WHERE address = $1").bind(a.as_str()).fetch_optional(&mut *tx).await?.is_some() {
                return Err(Error::Duplicate(format!("{a} already feeds a centre")));
            }
        }
        let row = sqlx::query(
            "INSERT INTO service_centres (name, public, team_id, head_user_id, calendar_id, auto_ack, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&name)
        .bind(i64::from(input.public))
        .bind(input.team_id.map(|t| t.0))
        .bind(input.head_user_id.map(|u| u.0))
        .bind(input.calendar_id.map(|c| c.0))
        .bind(i64::from(input.auto_ack))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        for (i, a) in boxes.iter().enumerate() {
            sqlx::query("INSERT INTO centre_mailboxes (address, centre_id, position) VALUES ($1, $2, $3)")
                .bind(a.as_str())
                .bind(id)
                .bind(i as i64)
                .execute(&mut *tx)
                .await?;
        }
        crate::oplog::record(&mut tx, actor, "service_centre", id, "create", &serde_json::json!({"name": name})).await?;
        tx.commit().await?;
        self.get_centre(ServiceCentreId(id)).await
    }

    /// A centre by id (no actor: the mail gateway and jobs use it).
    pub async fn get_centre(&self, id: ServiceCentreId) -> Result<ServiceCentre> {
        let mut conn = self.read.acquire().await?;
        load_centre(&mut conn, id).await
    }

    pub async fn list_centres(&self) -> Result<Vec<ServiceCentre>> {
        let rows = sqlx::query("SELECT id FROM service_centres ORDER BY id").fetch_all(&self.read).await?;
        let mut out = Vec::new();
        for r in rows {
            out.push(self.get_centre(ServiceCentreId(r.try_get("id")?)).await?);
        }
        Ok(out)
    }

    /// The centre a mailbox address feeds.
    pub async fn centre_for_address(&self, address: &EmailAddress) -> Result<Option<ServiceCentreId>> {
        let r = sqlx::query("SELECT centre_id FROM centre_mailboxes WHERE address = $1").bind(address.as_str()).fetch_optional(&self.read).await?;
        Ok(match r {
            Some(r) => Some(ServiceCentreId(r.try_get("centre_id")?)),
            None => None,
        })
    }
}

pub(crate) async fn load_centre(conn: &mut sqlx::AnyConnection, id: ServiceCentreId) -> Result<ServiceCentre> {
    let r = sqlx::query("SELECT id, name, public, team_id, head_user_id, calendar_id, auto_ack FROM service_centres WHERE id = $1")
        .bind(id.0)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(Error::NotFound("service centre"))?;
    let boxes = sqlx::query("SELECT address FROM centre_mailboxes WHERE centre_id = $1 ORDER BY position, address")
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?;
    Ok(ServiceCentre {
        id,
        name: r.try_get("name")?,
        public: b(r.try_get("public")?),
        team_id: r.try_get::<Option<i64>, _>("team_id")?.map(TeamId),
        head_user_id: r.try_get::<Option<i64>, _>("head_user_id")?.map(UserId),
        calendar_id: r.try_get::<Option<i64>, _>("calendar_id")?.map(CalendarId),
        auto_ack: b(r.try_get("auto_ack")?),
        mailboxes: boxes.iter().filter_map(|r| r.try_get::<String, _>("address").ok()).filter_map(|a| EmailAddress::parse(&a).ok()).collect(),
    })
}
