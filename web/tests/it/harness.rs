//! `spawn_app()` and a tiny HTTP client for the tests.

use crm::auth::NewUser;
use crm::{Actor, Store, StoreOptions};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::net::SocketAddr;


pub struct TestApp {
    pub addr: SocketAddr,
    pub store: Store,
    pub backend: &'static str,
    /// Where the app's SIP endpoint listens.
    pub sip: Option<SocketAddr>,
    /// Screen-pops raised by inbound calls.
    pub pops: std::sync::Mutex<Option<tokio::sync::broadcast::Receiver<web::telephony::ScreenPop>>>,
    client: Client<HttpConnector, Full<Bytes>>,
    _dir: Option<tempfile::TempDir>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Drop for TestApp {
    fn drop(&mut self) {}
}

/// A logged-in (or bearer-token) HTTP session against a [`TestApp`].
#[derive(Clone, Default)]
pub struct Session {
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub bearer: Option<String>,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Value,
    pub text: String,
}

async fn pg_url() -> Option<String> {
    let base = std::env::var("CENTRALINO_TEST_PG").ok()?;
    let base = base.trim_end_matches('/').to_string();
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let db = format!("w_{}_{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let admin = Store::connect(StoreOptions::new(format!("{base}/postgres"))).await.expect("pg admin");
    admin.exec_admin(&format!("CREATE DATABASE {db}")).await.expect("create db");
    admin.close().await;
    Some(format!("{base}/{db}"))
}

async fn spawn_with(url: String, dir: Option<tempfile::TempDir>, backend: &'static str) -> TestApp {
    spawn_configured(url, dir, backend, None).await
}

async fn spawn_configured(url: String, dir: Option<tempfile::TempDir>, backend: &'static str, campaigns: Option<web::config::RawCampaigns>) -> TestApp {
    let settings = web::RawConfig { http: Some("127.0.0.1:0".into()), sip: Some("127.0.0.1:0".into()), inbound_ring_secs: Some(1), trunks: vec!["127.0.0.1".into()], database_url: Some(url), campaigns, ..Default::default() }.resolve().expect("settings");
    let app = web::Application::build(&settings).await.expect("build app");
    let addr = app.local_addr();
    let store = app.store().clone();
    let sip = app.sip_addr();
    let pops = std::sync::Mutex::new(app.screen_pops());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    let client = Client::builder(TokioExecutor::new()).build_http();
    TestApp { addr, store, backend, sip, pops, client, _dir: dir, _shutdown: tx }
}

/// The app on SQLite.
pub async fn spawn_sqlite() -> TestApp {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = dir.path().join("web.db").to_string_lossy().to_string();
    spawn_with(url, Some(dir), "sqlite").await
}

/// Runs a test body against every backend available.
pub async fn each_app<F, Fut>(f: F)
where
    F: Fn(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f(spawn_sqlite().await).await;
    if let Some(url) = pg_url().await {
        f(spawn_with(url, None, "postgres").await).await;
    } else if std::env::var("CENTRALINO_REQUIRE_PG").as_deref() == Ok("1") {
        panic!("CENTRALINO_REQUIRE_PG=1 but CENTRALINO_TEST_PG is not set");
    }
}

/// [`each_app`] with a `[campaigns]` section (relay, bounce mailbox,
/// SMSC…) made per backend by `campaigns`.
pub async fn each_app_with<C, F, Fut>(campaigns: C, f: F)
where
    C: Fn(&'static str) -> web::config::RawCampaigns,
    F: Fn(TestApp) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let url = dir.path().join("web.db").to_string_lossy().to_string();
    f(spawn_configured(url, Some(dir), "sqlite", Some(campaigns("sqlite"))).await).await;
    if let Some(url) = pg_url().await {
        f(spawn_configured(url, None, "postgres", Some(campaigns("postgres"))).await).await;
    } else if std::env::var("CENTRALINO_REQUIRE_PG").as_deref() == Ok("1") {
        panic!("CENTRALINO_REQUIRE_PG=1 but CENTRALINO_TEST_PG is not set");
    }
}

impl TestApp {
    /// Creates a user directly in the store and returns its id.
    pub async fn user(&self, username: &str, role: &str, team: Option<crm::TeamId>) -> crm::UserId {
        self.store
            .create_user(&Actor::system(), NewUser { username: username.into(), display_name: None, password: format!("{username}-password"), role: role.into(), team_id: team })
            .await
            .expect("create user")
            .id
    }

    pub async fn login(&self, username: &str) -> Session {
        let r = self.call(&Session::default(), Method::POST, "/api/auth/login", Some(serde_json::json!({"username": username, "password": format!("{username}-password")}))).await;
        assert_eq!(r.status, StatusCode::OK, "login {username}: {}", r.text);
        let mut cookie = Vec::new();
        for v in r.headers.get_all("set-cookie") {
            let s = v.to_str().expect("cookie");
            cookie.push(s.split(';').next().expect("kv").to_string());
        }
        Session { cookie: Some(cookie.join("; ")), csrf: r.body["csrf_token"].as_str().map(String::from), bearer: None }
    }

    pub async fn call(&self, s: &Session, method: Method, path: &str, body: Option<Value>) -> Resp {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(s, method, path, "application/json", bytes.into_bytes()).await
    }

    pub async fn raw(&self, s: &Session, method: Method, path: &str, content_type: &str, body: Vec<u8>) -> Resp {
        let mut req = Request::builder().method(method).uri(format!("http://{}{}", self.addr, path));
        if !body.is_empty() {
            req = req.header("content-type", content_type);
        }
        if let Some(c) = &s.cookie {
            req = req.header("cookie", c);
        }
        if let Some(c) = &s.csrf {
            req = req.header("x-csrf-token", c);
        }
        if let Some(t) = &s.bearer {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let res = self.client.request(req.body(Full::new(Bytes::from(body))).expect("request")).await.expect("http");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&bytes).to_string();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp { status, headers, body, text }
    }

    pub async fn get(&self, s: &Session, path: &str) -> Resp {
        self.call(s, Method::GET, path, None).await
    }
    pub async fn post(&self, s: &Session, path: &str, body: Value) -> Resp {
        self.call(s, Method::POST, path, Some(body)).await
    }
    pub async fn patch(&self, s: &Session, path: &str, body: Value) -> Resp {
        self.call(s, Method::PATCH, path, Some(body)).await
    }
}

impl Resp {
    /// Asserts a problem+json response with this status; returns the field names.
    pub fn problem(&self, status: u16) -> Vec<String> {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"), "{}", self.text);
        assert_eq!(self.body["status"].as_u64(), Some(status as u64));
        self.body["errors"].as_array().map(|a| a.iter().filter_map(|e| e["field"].as_str().map(String::from)).collect()).unwrap_or_default()
    }
}
