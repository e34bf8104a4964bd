//! The database handle. SQLite (one file, WAL, foreign keys on) is the
//! embedded default; a `postgres://` URL selects PostgreSQL. Both are reached
//! through sqlx's `Any` driver so every query is written once, with `$N`
//! placeholders that both engines accept; the few places where the dialects
//! differ branch on [`Backend`].
//!
//! SQLite allows one writer at a time. Rather than let concurrent writers
//! collide on `SQLITE_BUSY`, the store keeps a separate single-connection
//! write pool for SQLite, so writes queue in-process and reads never wait for
//! them (WAL). On PostgreSQL both pools are the same pool.

use crate::error::Result;
use crate::types::Region;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// How to open the store. `url` is a `postgres://` URL, a `sqlite:` URL, or
/// a plain file path (SQLite).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub url: String,
    /// The region assumed for phone numbers written without a country code.
    pub default_region: Region,
    /// Connections in the (read) pool.
    pub max_connections: u32,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), default_region: Region::default(), max_connections: 8 }
    }
}

/// A cheap-to-clone handle on the database; see the crate docs.
#[derive(Clone)]
pub struct Store {
    pub(crate) read: AnyPool,
    pub(crate) write: AnyPool,
    pub(crate) backend: Backend,
    pub(crate) region: Region,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

type BoxFut<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<(), sqlx::Error>> + Send + 'a>>;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    /// Opens (creating an SQLite file if needed) and migrates the database.
    pub async fn open(opts: StoreOptions) -> Result<Store> {
        let store = Self::connect(opts).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens without migrating.
    pub async fn connect(opts: StoreOptions) -> Result<Store> {
        install_default_drivers();
        let (backend, url) = normalise_url(&opts.url);
        match backend {
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(opts.max_connections.max(2))
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(&url)
                    .await?;
                Ok(Store { read: pool.clone(), write: pool, backend, region: opts.default_region })
            }
            Backend::Sqlite => {
                let pragmas = sqlite_pragmas;
                // The writer first: it creates the file and switches it to WAL.
                let write = AnyPoolOptions::new()
                    .max_connections(1)
                    .acquire_timeout(Duration::from_secs(60))
                    .after_connect(pragmas)
                    .connect(&url)
                    .await?;
                let read = AnyPoolOptions::new()
                    .max_connections(opts.max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(30))
                    .after_connect(pragmas)
                    .connect(&url)
                    .await?;
                Ok(Store { read, write, backend, region: opts.default_region })
            }
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.write).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.write).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn default_region(&self) -> Region {
        self.region
    }

    /// Closes both pools, waiting for checked-out connections to return.
    pub async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// Begins a write transaction (serialised in-process on SQLite).
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(self.write.begin().await?)
    }

    /// A quick liveness probe for `/healthz`.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }
}

/// Every SQLite connection: WAL (readers never wait for the writer),
/// foreign keys enforced, `synchronous = NORMAL` (durable across a process
/// crash, which is what WAL + NORMAL guarantees), and a busy timeout.
fn sqlite_pragmas(c: &mut sqlx::AnyConnection, _meta: sqlx::pool::PoolConnectionMetadata) -> BoxFut<'_> {
    Box::pin(async move {
        c.execute(
            "PRAGMA journal_mode = WAL; PRAGMA foreign_keys = ON; \
             PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000; \
             PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;",
        )
        .await?;
        Ok(())
    })
}

/// Accepts `postgres://…`, `postgresql://…`, `sqlite:…` or a bare path.
fn normalise_url(url: &str) -> (Backend, String) {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        (Backend::Postgres, url.to_string())
    } else if url.starts_with("sqlite:") {
        let u = if url.contains('?') { url.to_string() } else { format!("{url}?mode=rwc") };
        (Backend::Sqlite, u)
    } else {
        (Backend::Sqlite, format!("sqlite://{url}?mode=rwc"))
    }
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" => Ok(Backend::Postgres),
            _ => Err(format!("unknown backend {s:?}")),
        }
    }
}

/// Decodes a 0/1 integer column as a bool (booleans are integers in both
/// schemas so one decoding path serves both engines).
pub(crate) fn b(v: i64) -> bool {
    v != 0
}

impl Store {
    /// Runs one administrative statement (e.g. `CREATE DATABASE` for test
    /// set-up). Never called with user input.
    pub async fn exec_admin(&self, sql: &str) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_string())).execute(&self.write).await?;
        Ok(())
    }
}
