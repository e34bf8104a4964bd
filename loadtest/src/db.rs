//! Benchmark databases: where they live, how they are created and filled
//! with generated parties, and when an earlier one is reused.
//!
//! A populated database is named after what is in it (`lookup-1000000-s42`)
//! and is complete only once it holds the marker user [`MARKER_USER`],
//! created after the last party. A database with that name but no marker (an
//! interrupted run) is dropped and rebuilt. On a fresh database the bulk
//! insert is the only writer, so party `i` of the generator has id `i + 1`;
//! this is checked when filling, and relied on when reusing.
//!
//! The loadtest crate reaches the database through [`crm::Store`] for
//! everything except the baselines, which are plain sqlx pools opened by the
//! benchmarks themselves.

use crate::data::PartyGen;
use crate::progress;
use anyhow::{Context, bail};
use crm::auth::NewUser;
use crm::{Actor, Backend, Store, StoreOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The admin user whose existence says "this database is complete"; its
/// token drives the HTTP benchmark.
pub const MARKER_USER: &str = "loadtest";

/// Where a benchmark's database lives.
#[derive(Debug, Clone)]
pub enum Location {
    Sqlite { path: PathBuf },
    Postgres { base: String, db: String },
}

impl Location {
    /// `name` must be lower-case letters, digits and `_`/`-`.
    pub fn new(backend: Backend, name: &str, data_dir: &Path, pg_url: Option<&str>) -> anyhow::Result<Location> {
        Ok(match backend {
            Backend::Sqlite => {
                std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
                Location::Sqlite { path: data_dir.join(format!("{name}.db")) }
            }
            Backend::Postgres => {
                let base = pg_url.context("--backend postgres needs --pg-url or CENTRALINO_TEST_PG (postgres://user@host:port, no database)")?;
                Location::Postgres { base: base.trim_end_matches('/').to_string(), db: format!("lt_{}", name.replace('-', "_")) }
            }
        })
    }

    pub fn url(&self) -> String {
        match self {
            Location::Sqlite { path } => path.to_string_lossy().into_owned(),
            Location::Postgres { base, db } => format!("{base}/{db}"),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite { path } => format!("SQLite file {}", path.display()),
            Location::Postgres { db, .. } => format!("PostgreSQL database {db}"),
        }
    }

    /// Removes the database if it exists.
    pub async fn drop_db(&self) -> anyhow::Result<()> {
        match self {
            Location::Sqlite { path } => {
                for suffix in ["", "-wal", "-shm"] {
                    let p = PathBuf::from(format!("{}{suffix}", path.display()));
                    if p.exists() {
                        std::fs::remove_file(&p).with_context(|| format!("removing {}", p.display()))?;
                    }
                }
            }
            Location::Postgres { base, db } => {
                let admin = pg_admin(base).await?;
                admin.exec_admin(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)")).await.with_context(|| format!("dropping {db}"))?;
                admin.close().await;
            }
        }
        Ok(())
    }

    /// Creates the (empty) database if it does not exist yet.
    async fn ensure_exists(&self) -> anyhow::Result<()> {
        if let Location::Postgres { base, db } = self
            && Store::connect(StoreOptions::new(self.url())).await.is_err()
        {
            let admin = pg_admin(base).await?;
            admin.exec_admin(&format!("CREATE DATABASE {db}")).await.with_context(|| format!("creating database {db}"))?;
            admin.close().await;
        }
        Ok(())
    }

    /// Opens (and migrates) the store here.
    pub async fn open(&self, max_connections: u32) -> anyhow::Result<Store> {
        self.ensure_exists().await?;
        let mut opts = StoreOptions::new(self.url());
        opts.max_connections = max_connections;
        Store::open(opts).await.with_context(|| format!("opening {}", self.describe()))
    }
}

async fn pg_admin(base: &str) -> anyhow::Result<Store> {
    Store::connect(StoreOptions::new(format!("{base}/postgres"))).await.with_context(|| format!("connecting to {base}/postgres"))
}

/// A database holding `parties` generated parties, ready to measure.
pub struct Populated {
    pub store: Store,
    pub location: Location,
    pub reused: bool,
    /// Seconds spent generating and inserting (0 when reused).
    pub populate_s: f64,
}

/// Opens the database at `location` if it is complete, else (re)builds it
/// with parties `0..parties` of `generator`.
pub async fn populated(location: Location, parties: u64, generator: &PartyGen, max_connections: u32) -> anyhow::Result<Populated> {
    let store = location.open(max_connections).await?;
    if store.find_user_by_username(MARKER_USER).await?.is_some() {
        eprintln!("reusing {} ({parties} parties)", location.describe());
        return Ok(Populated { store, location, reused: true, populate_s: 0.0 });
    }
    store.close().await;
    location.drop_db().await?;
    let store = location.open(max_connections).await?;
    eprintln!("filling {} with {parties} parties", location.describe());
    let started = Instant::now();
    fill(&store, parties, generator).await?;
    if store.backend() == Backend::Postgres {
        // Fresh statistics, as autovacuum would gather soon after a load.
        store.exec_admin("ANALYZE").await.context("ANALYZE")?;
    }
    let populate_s = started.elapsed().as_secs_f64();
    let password = format!("lt-{}", std::process::id()) + "-not-a-secret";
    store
        .create_user(&Actor::system(), NewUser { username: MARKER_USER.into(), display_name: Some("loadtest".into()), password, role: "admin".into(), team_id: None })
        .await
        .context("creating the marker user")?;
    Ok(Populated { store, location, reused: false, populate_s })
}

/// Inserts parties `0..n` with the bulk path, generating the next slice on
/// another thread while the current one is written.
async fn fill(store: &Store, n: u64, generator: &PartyGen) -> anyhow::Result<()> {
    const SLICE: u64 = 10_000;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<anyhow::Result<(u64, Vec<crm::parties::ValidParty>)>>(2);
    let g = *generator;
    let producer = std::thread::spawn(move || {
        let mut start = 0;
        while start < n {
            let end = (start + SLICE).min(n);
            let slice: anyhow::Result<Vec<_>> = (start..end).map(|i| g.party(i)).collect();
            if tx.blocking_send(slice.map(|s| (start, s))).is_err() {
                return;
            }
            start = end;
        }
    });
    let bar = progress::bar(n, "inserting parties");
    let sys = Actor::system();
    while let Some(slice) = rx.recv().await {
        let (start, parties) = slice?;
        let ids = store.insert_parties_bulk(&sys, &parties).await.context("bulk insert")?;
        if let (Some(first), Some(last)) = (ids.first(), ids.last()) {
            let want_last = start + parties.len() as u64;
            if first.0 != start as i64 + 1 || last.0 != want_last as i64 {
                bail!("party ids {first}..{last} are not {}..{want_last}: the database was not empty", start + 1);
            }
        }
        bar.inc(parties.len() as u64);
    }
    bar.finish_and_clear();
    producer.join().map_err(|_| anyhow::anyhow!("the generator thread panicked"))?;
    Ok(())
}
