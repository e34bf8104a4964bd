//! Fresh stores for tests: one SQLite file per test, one PostgreSQL database
//! per test.

use crm::{Actor, Store, StoreOptions};
use std::future::Future;

pub struct TestStore {
    pub name: &'static str,
    pub store: Store,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crm.db");
    let store = Store::open(StoreOptions::new(path.to_string_lossy().to_string())).await.expect("open sqlite");
    TestStore { name: "sqlite", store, _dir: Some(dir) }
}

/// A new, empty PostgreSQL database on the server named by
/// `CENTRALINO_TEST_PG` (e.g. `postgres://postgres@127.0.0.1:15432`).
pub async fn postgres_url() -> Option<String> {
    let Ok(base) = std::env::var("CENTRALINO_TEST_PG") else {
        if std::env::var("CENTRALINO_REQUIRE_PG").as_deref() == Ok("1") {
            panic!("CENTRALINO_REQUIRE_PG=1 but CENTRALINO_TEST_PG is not set");
        }
        return None;
    };
    let base = base.trim_end_matches('/').to_string();
    let db = format!("t_{}_{}", std::process::id(), rand_suffix());
    let admin = Store::connect(StoreOptions::new(format!("{base}/postgres"))).await.expect("connect postgres");
    admin.exec_admin(&format!("CREATE DATABASE {db}")).await.expect("create database");
    admin.close().await;
    Some(format!("{base}/{db}"))
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}_{}", N.fetch_add(1, Ordering::Relaxed), t)
}

async fn postgres() -> Option<TestStore> {
    let url = postgres_url().await?;
    let store = Store::open(StoreOptions::new(url)).await.expect("open postgres");
    Some(TestStore { name: "postgres", store, _dir: None })
}

/// Runs `f` once per available backend with a fresh store.
pub async fn each_store<F, Fut>(f: F)
where
    F: Fn(TestStore) -> Fut,
    Fut: Future<Output = ()>,
{
    f(sqlite().await).await;
    if let Some(pg) = postgres().await {
        f(pg).await;
    }
}

pub fn system() -> Actor {
    Actor::system()
}

/// A `Drop` impl keeps closures from capturing `TestStore`'s fields one by
/// one (which would drop the temp dir while the test still runs).
impl Drop for TestStore {
    fn drop(&mut self) {}
}
