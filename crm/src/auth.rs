//! Users, teams, roles and visibility; password hashing (argon2id), console
//! sessions and API bearer tokens.
//!
//! Visibility rule: an admin sees everything. Everyone else sees what they
//! own, what is owned by the people in the teams they lead (and those teams'
//! sub-teams, recursively), and records that nobody owns yet (the shared
//! pool). Nobody else's records are visible. [`Actor`] carries the resolved
//! scope so every store method can check it without another query.

use crate::error::{Error, Problems, Result};
use crate::store::{Store, b};
use crate::types::{Millis, TeamId, UserId, now_ms, str_enum};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use std::fmt;
use std::str::FromStr;

str_enum!(/// What a user does all day; decides what they may do.
    Role { Agent => "agent", Support => "support", Marketer => "marketer", Supervisor => "supervisor", Admin => "admin" });

/// Which owners' records an actor may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    All,
    /// Self and subordinates; unowned records are visible too.
    Owners(Vec<UserId>),
}

/// Who is acting: resolved once per request from a session or token.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: UserId,
    pub username: String,
    pub role: Role,
    pub scope: Scope,
}

/// Actions gated by role (visibility of single records is separate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    ManageUsers,
    ViewUsers,
    EditPartiesOfOthers,
    ImportParties,
    MergeParties,
    ManageLists,
    ConfigureOutcomes,
    ManageAssignmentRules,
    ViewLeaderboard,
}

impl Actor {
    /// The built-in system actor for jobs, imports run by the operator, and
    /// tests: sees and may do everything.
    pub fn system() -> Actor {
        Actor { user: UserId(0), username: "system".into(), role: Role::Admin, scope: Scope::All }
    }

    /// The user id to write in the operation log (`None` for the system).
    pub fn log_id(&self) -> Option<i64> {
        if self.user.0 == 0 { None } else { Some(self.user.0) }
    }

    pub fn can(&self, p: Permission) -> bool {
        use Permission::*;
        use Role::*;
        match p {
            ManageUsers => self.role == Admin,
            ViewUsers | ConfigureOutcomes | ManageAssignmentRules => matches!(self.role, Supervisor | Admin),
            EditPartiesOfOthers => matches!(self.role, Supervisor | Admin),
            ImportParties | MergeParties | ManageLists => matches!(self.role, Marketer | Supervisor | Admin),
            ViewLeaderboard => true,
        }
    }

    pub fn require(&self, p: Permission) -> Result<()> {
        if self.can(p) { Ok(()) } else { Err(Error::Forbidden) }
    }

    /// May this actor see a record with this owner?
    pub fn sees(&self, owner: Option<UserId>) -> bool {
        match (&self.scope, owner) {
            (Scope::All, _) | (_, None) => true,
            (Scope::Owners(ids), Some(o)) => ids.contains(&o),
        }
    }

    /// Fails with `Forbidden` unless the actor sees the owner.
    pub fn check_sees(&self, owner: Option<UserId>) -> Result<()> {
        if self.sees(owner) { Ok(()) } else { Err(Error::Forbidden) }
    }

    /// A SQL condition restricting `col` (an owner column) to this scope.
    /// Only integers from the store are formatted in, never user input.
    pub fn owner_filter(&self, col: &str) -> String {
        match &self.scope {
            Scope::All => "1=1".to_string(),
            Scope::Owners(ids) => {
                let list: Vec<String> = ids.iter().map(|i| i.0.to_string()).collect();
                format!("({col} IS NULL OR {col} IN ({}))", list.join(","))
            }
        }
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub team_id: Option<TeamId>,
    pub active: bool,
    pub created_at: Millis,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    pub password: String,
    pub role: String,
    pub team_id: Option<TeamId>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub parent_id: Option<TeamId>,
    pub lead_user_id: Option<UserId>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct NewTeam {
    pub name: String,
    pub parent_id: Option<TeamId>,
    pub lead_user_id: Option<UserId>,
}

/// Hashes a password with argon2id and a random salt (PHC string).
pub fn hash_password(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| Error::invalid("password", "cannot hash"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| Error::invalid("password", "cannot hash"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
        .unwrap_or(false)
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn user_from_row(r: &sqlx::any::AnyRow) -> Result<User> {
    Ok(User {
        id: UserId(r.try_get("id")?),
        username: r.try_get("username")?,
        display_name: r.try_get("display_name")?,
        role: Role::parse(&r.try_get::<String, _>("role")?).map_err(|_| Error::NotFound("role"))?,
        team_id: r.try_get::<Option<i64>, _>("team_id")?.map(TeamId),
        active: b(r.try_get("active")?),
        created_at: r.try_get("created_at")?,
    })
}

const USER_COLS: &str = "id, username, display_name, role, team_id, active, created_at";

/// How long a console session lives without being used.
pub const SESSION_TTL_MS: Millis = 12 * 3600 * 1000;

impl Store {
    pub async fn create_user(&self, actor: &Actor, input: NewUser) -> Result<User> {
        actor.require(Permission::ManageUsers)?;
        let mut p = Problems::default();
        let username = input.username.trim().to_lowercase();
        if username.is_empty() || username.len() > 64 || !username.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-@".contains(&c)) {
            p.push("username", "1–64 characters: letters, digits, . _ - @");
        }
        if input.password.chars().count() < 8 {
            p.push("password", "at least 8 characters");
        }
        let role = p.check("role", Role::parse(&input.role));
        p.finish()?;
        let hash = hash_password(&input.password)?;
        let display = input.display_name.unwrap_or_else(|| username.clone());
        let mut tx = self.begin().await?;
        if let Some(t) = input.team_id {
            let exists = sqlx::query("SELECT 1 FROM teams WHERE id = $1").bind(t.0).fetch_optional(&mut *tx).await?;
            if exists.is_none() {
                return Err(Error::invalid("team_id", "no such team"));
            }
        }
        let taken = sqlx::query("SELECT 1 FROM users WHERE username = $1").bind(&username).fetch_optional(&mut *tx).await?;
        if taken.is_some() {
            return Err(Error::invalid("username", "already taken"));
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (username, display_name, password_hash, role, team_id, active, created_at) \
             VALUES ($1, $2, $3, $4, $5, 1, $6) RETURNING {USER_COLS}"
        )))
        .bind(&username)
        .bind(&display)
        .bind(&hash)
        .bind(role.map(|r| r.as_str()).unwrap_or("agent"))
        .bind(input.team_id.map(|t| t.0))
        .bind(now_ms())
        .fetch_one(&mut *tx)
        .await?;
        let user = user_from_row(&row)?;
        crate::oplog::record(&mut tx, actor, "user", user.id.0, "create", &serde_json::json!({"username": username, "role": user.role})).await?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn list_users(&self, actor: &Actor) -> Result<Vec<User>> {
        actor.require(Permission::ViewUsers)?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users ORDER BY id"))).fetch_all(&self.read).await?;
        rows.iter().map(user_from_row).collect()
    }

    pub async fn get_user(&self, actor: &Actor, id: UserId) -> Result<User> {
        if actor.user != id {
            actor.require(Permission::ViewUsers)?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE id = $1")))
            .bind(id.0)
            .fetch_optional(&self.read)
            .await?
            .ok_or(Error::NotFound("user"))?;
        user_from_row(&row)
    }

    pub async fn find_user_by_username(&self, username: &str) -> Result<Option<User>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS} FROM users WHERE username = $1")))
            .bind(username.trim().to_lowercase())
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(user_from_row).transpose()
    }

    pub async fn set_password(&self, actor: &Actor, id: UserId, password: &str) -> Result<()> {
        if actor.user != id {
            actor.require(Permission::ManageUsers)?;
        }
        if password.chars().count() < 8 {
            return Err(Error::invalid("password", "at least 8 characters"));
        }
        let hash = hash_password(password)?;
        let n = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2").bind(hash).bind(id.0).execute(&self.write).await?;
        if n.rows_affected() == 0 { Err(Error::NotFound("user")) } else { Ok(()) }
    }

    pub async fn create_team(&self, actor: &Actor, input: NewTeam) -> Result<Team> {
        actor.require(Permission::ManageUsers)?;
        let name = input.name.trim().to_string();
        if name.is_empty() || name.len() > 100 {
            return Err(Error::invalid("name", "1–100 characters"));
        }
        let mut tx = self.begin().await?;
        if let Some(p) = input.parent_id {
            if sqlx::query("SELECT 1 FROM teams WHERE id = $1").bind(p.0).fetch_optional(&mut *tx).await?.is_none() {
                return Err(Error::invalid("parent_id", "no such team"));
            }
        }
        if let Some(u) = input.lead_user_id {
            if sqlx::query("SELECT 1 FROM users WHERE id = $1").bind(u.0).fetch_optional(&mut *tx).await?.is_none() {
                return Err(Error::invalid("lead_user_id", "no such user"));
            }
        }
        if sqlx::query("SELECT 1 FROM teams WHERE name = $1").bind(&name).fetch_optional(&mut *tx).await?.is_some() {
            return Err(Error::invalid("name", "already taken"));
        }
        let row = sqlx::query("INSERT INTO teams (name, parent_id, lead_user_id, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
            .bind(&name)
            .bind(input.parent_id.map(|t| t.0))
            .bind(input.lead_user_id.map(|u| u.0))
            .bind(now_ms())
            .fetch_one(&mut *tx)
            .await?;
        let id = TeamId(row.try_get("id")?);
        crate::oplog::record(&mut tx, actor, "team", id.0, "create", &serde_json::json!({"name": name})).await?;
        tx.commit().await?;
        Ok(Team { id, name, parent_id: input.parent_id, lead_user_id: input.lead_user_id })
    }

    pub async fn list_teams(&self, _actor: &Actor) -> Result<Vec<Team>> {
        let rows = sqlx::query("SELECT id, name, parent_id, lead_user_id FROM teams ORDER BY id").fetch_all(&self.read).await?;
        rows.iter()
            .map(|r| {
                Ok(Team {
                    id: TeamId(r.try_get("id")?),
                    name: r.try_get("name")?,
                    parent_id: r.try_get::<Option<i64>, _>("parent_id")?.map(TeamId),
                    lead_user_id: r.try_get::<Option<i64>, _>("lead_user_id")?.map(UserId),
                })
            })
            .collect()
    }

    /// Moves a user into a team (admin only).
    pub async fn set_user_team(&self, actor: &Actor, user: UserId, team: Option<TeamId>) -> Result<()> {
        actor.require(Permission::ManageUsers)?;
        let n = sqlx::query("UPDATE users SET team_id = $1 WHERE id = $2").bind(team.map(|t| t.0)).bind(user.0).execute(&self.write).await?;
        if n.rows_affected() == 0 { Err(Error::NotFound("user")) } else { Ok(()) }
    }

    /// Resolves a user into an [`Actor`] with its visibility scope.
    pub async fn actor_for(&self, user: &User) -> Result<Actor> {
        let scope = if user.role == Role::Admin {
            Scope::All
        } else {
            // Teams led by the user, and all their descendants; then every
            // member of those teams.
            let rows = sqlx::query(
                "WITH RECURSIVE led(id) AS ( \
                     SELECT id FROM teams WHERE lead_user_id = $1 \
                     UNION SELECT t.id FROM teams t JOIN led ON t.parent_id = led.id) \
                 SELECT u.id FROM users u WHERE u.team_id IN (SELECT id FROM led)",
            )
            .bind(user.id.0)
            .fetch_all(&self.read)
            .await?;
            let mut ids = vec![user.id];
            for r in rows {
                let id = UserId(r.try_get("id")?);
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
            Scope::Owners(ids)
        };
        Ok(Actor { user: user.id, username: user.username.clone(), role: user.role, scope })
    }

    /// Checks a username and password; returns the actor on success. The
    /// error does not say which of the two was wrong.
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Actor> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {USER_COLS}, password_hash FROM users WHERE username = $1")))
            .bind(username.trim().to_lowercase())
            .fetch_optional(&self.read)
            .await?;
        let Some(row) = row else {
            // Spend the same time as a real check so usernames cannot be probed by timing.
            let _ = verify_password(password, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$W5Ww5Gj2sUYlKu4bZPcrk9c7m2IeYn2X8Ks7YcXwC4c");
            return Err(Error::Unauthenticated);
        };
        let user = user_from_row(&row)?;
        let hash: String = row.try_get("password_hash")?;
        if !user.active || !verify_password(password, &hash) {
            return Err(Error::Unauthenticated);
        }
        self.actor_for(&user).await
    }

    /// Opens a console session; returns the secret token for the cookie.
    pub async fn create_session(&self, actor: &Actor) -> Result<String> {
        let token = random_token();
        let now = now_ms();
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash(&token))
            .bind(actor.user.0)
            .bind(now)
            .bind(now + SESSION_TTL_MS)
            .execute(&self.write)
            .await?;
        Ok(token)
    }

    pub async fn end_session(&self, token: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash(token)).execute(&self.write).await?;
        Ok(())
    }

    /// Resolves a session cookie to an actor, if the session is live.
    pub async fn session_actor(&self, token: &str) -> Result<Actor> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.active = 1",
            USER_COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
        )))
        .bind(token_hash(token))
        .bind(now_ms())
        .fetch_optional(&self.read)
        .await?
        .ok_or(Error::Unauthenticated)?;
        let user = user_from_row(&row)?;
        self.actor_for(&user).await
    }

    /// Issues an API bearer token for the actor; the secret is shown once.
    pub async fn create_api_token(&self, actor: &Actor, name: &str) -> Result<String> {
        if name.trim().is_empty() || name.len() > 100 {
            return Err(Error::invalid("name", "1–100 characters"));
        }
        let token = format!("ctl_{}", random_token());
        sqlx::query("INSERT INTO api_tokens (user_id, name, token_hash, created_at, revoked) VALUES ($1, $2, $3, $4, 0)")
            .bind(actor.user.0)
            .bind(name.trim())
            .bind(token_hash(&token))
            .bind(now_ms())
            .execute(&self.write)
            .await?;
        Ok(token)
    }

    pub async fn token_actor(&self, token: &str) -> Result<Actor> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1 AND t.revoked = 0 AND u.active = 1",
            USER_COLS.split(", ").map(|c| format!("u.{c}")).collect::<Vec<_>>().join(", ")
        )))
        .bind(token_hash(token))
        .fetch_optional(&self.read)
        .await?
        .ok_or(Error::Unauthenticated)?;
        let user = user_from_row(&row)?;
        self.actor_for(&user).await
    }
}

impl FromStr for Scope {
    type Err = String;
    fn from_str(_: &str) -> std::result::Result<Self, String> {
        Err("scopes are resolved, not parsed".into())
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{} ({})", self.username, self.user, self.role)
    }
}
