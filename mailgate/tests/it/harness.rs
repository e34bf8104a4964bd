//! Fresh stores (SQLite always, PostgreSQL when `CENTRALINO_TEST_PG` is
//! set — the crm harness pattern) and the real mail peers started by
//! `scripts/peers.sh`: Dovecot (IMAP) and Postfix (SMTP → LMTP → Dovecot).

#![allow(dead_code)]

use crm::tickets::{CentreInput, ServiceCentreId, TicketDetail, TicketNo};
use crm::{Actor, Store, StoreOptions};
use futures::TryStreamExt;
use mailgate::parse::ParseOptions;
use mailgate::sync::SyncParams;
use mailgate::{MailboxConfig, Secret, Security};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub const LOOP_TOKEN: &str = "test-desk";

pub struct TestStore {
    pub name: &'static str,
    pub store: Store,
    /// The URL another process can open the same database with.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> TestStore {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crm.db");
    let url = path.to_string_lossy().to_string();
    let store = Store::open(StoreOptions::new(url.clone())).await.expect("open sqlite");
    TestStore { name: "sqlite", store, url, _dir: Some(dir) }
}

async fn postgres() -> Option<TestStore> {
    let Ok(base) = std::env::var("CENTRALINO_TEST_PG") else {
        if std::env::var("CENTRALINO_REQUIRE_PG").as_deref() == Ok("1") {
            panic!("CENTRALINO_REQUIRE_PG=1 but CENTRALINO_TEST_PG is not set");
        }
        return None;
    };
    let base = base.trim_end_matches('/').to_string();
    let db = format!("mg_{}_{}", std::process::id(), unique_suffix());
    let admin = Store::connect(StoreOptions::new(format!("{base}/postgres"))).await.expect("connect postgres");
    admin.exec_admin(&format!("CREATE DATABASE {db}")).await.expect("create database");
    admin.close().await;
    let url = format!("{base}/{db}");
    let store = Store::open(StoreOptions::new(url.clone())).await.expect("open postgres");
    Some(TestStore { name: "postgres", store, url, _dir: None })
}

pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}_{}", N.fetch_add(1, Ordering::Relaxed), t)
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

impl Drop for TestStore {
    fn drop(&mut self) {}
}

/// Where the mail peers listen.
#[derive(Debug, Clone)]
pub struct Peers {
    pub imap: (String, u16),
    pub smtp: (String, u16),
    pub password: String,
    pub domain: String,
}

fn host_port(s: &str) -> (String, u16) {
    let (h, p) = s.rsplit_once(':').expect("HOST:PORT");
    (h.to_string(), p.parse().expect("port"))
}

/// The peers, or `None` (with a note) when they are not running and not
/// required. `CENTRALINO_REQUIRE_PEERS=1` (set by `scripts/test.sh`) turns
/// their absence into a failure.
pub fn peers() -> Option<Peers> {
    let (Ok(imap), Ok(smtp)) = (std::env::var("CENTRALINO_TEST_IMAP"), std::env::var("CENTRALINO_TEST_SMTP")) else {
        if std::env::var("CENTRALINO_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("CENTRALINO_REQUIRE_PEERS=1 but CENTRALINO_TEST_IMAP/CENTRALINO_TEST_SMTP are not set");
        }
        eprintln!("note: skipping a mail test: no Dovecot/Postfix (start them with scripts/peers.sh start DIR)");
        return None;
    };
    Some(Peers {
        imap: host_port(&imap),
        smtp: host_port(&smtp),
        password: std::env::var("CENTRALINO_TEST_MAIL_PASSWORD").unwrap_or_else(|_| "testpw".into()),
        domain: std::env::var("CENTRALINO_TEST_MAIL_DOMAIN").unwrap_or_else(|_| "gw.test".into()),
    })
}

impl Peers {
    /// A mailbox config for `user`'s `folder`, with test-sized timings.
    pub fn mailbox(&self, user: &str, folder: &str, centre: ServiceCentreId) -> MailboxConfig {
        let mut cfg = MailboxConfig::new(
            self.imap.0.clone(),
            self.imap.1,
            Security::Plain,
            format!("{user}@{}", self.domain),
            Secret::new(self.password.clone()),
            centre,
        )
        .folder(folder);
        cfg.timeout = Duration::from_secs(10);
        cfg.idle_timeout = Duration::from_secs(5);
        cfg.sync = SyncParams { batch: 4, poll: Duration::from_millis(200), backoff: Duration::from_millis(50), max_backoff: Duration::from_millis(500) };
        cfg
    }

    pub fn smtp(&self) -> mailgate::SmtpConfig {
        mailgate::SmtpConfig {
            host: self.smtp.0.clone(),
            port: self.smtp.1,
            security: Security::Plain,
            credentials: None,
            default_from: crm::EmailAddress::parse(&format!("support@{}", self.domain)).expect("address"),
            timeout: Duration::from_secs(10),
        }
    }

    /// `APPEND`s a message to `user`'s `folder` (created if needed).
    pub async fn append(&self, user: &str, folder: &str, raw: &[u8]) {
        let cfg = self.mailbox(user, folder, ServiceCentreId(0));
        let mut s = mailgate::imap::connect(&cfg).await.expect("imap connect");
        let _ = s.create(folder).await;
        s.append(folder, None, None, raw).await.expect("append");
        let _ = s.logout().await;
    }

    /// Waits until `user`'s `folder` holds at least `n` messages and
    /// returns them all (raw), oldest first.
    pub async fn wait_for(&self, user: &str, folder: &str, n: usize) -> Vec<Vec<u8>> {
        let cfg = self.mailbox(user, folder, ServiceCentreId(0));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut s = mailgate::imap::connect(&cfg).await.expect("imap connect");
            if s.select(folder).await.is_ok() {
                let uids = s.uid_search("ALL").await.expect("search");
                if uids.len() >= n {
                    let mut uids: Vec<u32> = uids.into_iter().collect();
                    uids.sort_unstable();
                    let set = mailgate::imap::uid_set(&uids);
                    let fetches: Vec<_> = s.uid_fetch(set, "(UID BODY.PEEK[])").await.expect("fetch").try_collect().await.expect("fetch");
                    let mut out: Vec<(u32, Vec<u8>)> = fetches.iter().filter_map(|f| Some((f.uid?, f.body()?.to_vec()))).collect();
                    out.sort_by_key(|(u, _)| *u);
                    let _ = s.logout().await;
                    return out.into_iter().map(|(_, b)| b).collect();
                }
            }
            let _ = s.logout().await;
            assert!(tokio::time::Instant::now() < deadline, "{user}/{folder} did not get {n} messages in time");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A fresh IMAP folder name, unique per call.
pub fn folder(prefix: &str) -> String {
    format!("{prefix}{}", unique_suffix().replace('_', "x"))
}

pub fn opts() -> Arc<ParseOptions> {
    Arc::new(ParseOptions { loop_token: LOOP_TOKEN.into(), ..ParseOptions::default() })
}

pub async fn centre(store: &Store, name: &str) -> ServiceCentreId {
    store
        .create_centre(
            &Actor::system(),
            CentreInput {
                name: name.into(),
                public: true,
                team_id: None,
                head_user_id: None,
                calendar_id: None,
                auto_ack: true,
                mailboxes: vec!["support@gw.test".into()],
            },
        )
        .await
        .expect("centre")
        .id
}

pub async fn detail(store: &Store, t: TicketNo) -> TicketDetail {
    store.ticket_detail(&Actor::system(), t).await.expect("ticket detail")
}

/// How many tickets exist among the first 200 numbers (a fresh store
/// numbers from 1; a rolled-back ticket may leave a gap).
pub async fn ticket_count(store: &Store) -> usize {
    let mut n = 0;
    for i in 1..=200 {
        let Some(t) = TicketNo::new(i) else { continue };
        if store.get_ticket(&Actor::system(), t).await.is_ok() {
            n += 1;
        }
    }
    n
}

pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixture template with `{KEY}` placeholders filled in.
pub fn template(name: &str, vars: &[(&str, &str)]) -> Vec<u8> {
    let mut s = String::from_utf8(fixture(name)).expect("templates are ASCII");
    for (k, v) in vars {
        s = s.replace(&format!("{{{k}}}"), v);
    }
    s.into_bytes()
}

/// A plain mail from `from` with the given Message-ID and subject.
pub fn simple_mail(from: &str, message_id: &str, subject: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: support@gw.test\r\nSubject: {subject}\r\nDate: Mon, 2 Mar 2026 10:00:00 +0100\r\n\
         Message-ID: <{message_id}>\r\n{extra_headers}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}
