//! The web console over real HTTP: desk pages check the session, the event
//! socket refuses unauthenticated upgrades, screen-pops are filtered by
//! team scope and role, and the wallboard's chart endpoint answers.

use crate::harness::{Session, TestApp, spawn_sqlite};
use crm::auth::NewTeam;
use crm::{Actor, PhoneNumber};
use hyper::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends a WebSocket upgrade request by hand and returns the status code.
async fn upgrade_status(app: &TestApp, s: &Session) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.expect("connect");
    let cookie = s.cookie.as_deref().map(|c| format!("Cookie: {c}\r\n")).unwrap_or_default();
    let req = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{cookie}\r\n",
        app.addr
    );
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 512];
    let n = stream.read(&mut buf).await.expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

#[tokio::test]
async fn websocket_needs_a_session() {
    let app = spawn_sqlite().await;
    assert_eq!(upgrade_status(&app, &Session::default()).await, 401);
    let forged = Session { cookie: Some("centralino_session=not-a-session".into()), ..Default::default() };
    assert_eq!(upgrade_status(&app, &forged).await, 401);
    app.user("rep", "support", None).await;
    let rep = app.login("rep").await;
    assert_eq!(upgrade_status(&app, &rep).await, 101);
}

#[tokio::test]
async fn desk_pages_redirect_to_login_without_a_session() {
    let app = spawn_sqlite().await;
    let r = app.get(&Session::default(), "/console/support").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text);
    assert_eq!(r.headers.get("location").and_then(|v| v.to_str().ok()), Some("/console/login?next=support"));
    let r = app.get(&Session::default(), "/console/login").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.text.contains("data-page=\"login\""), "{}", r.text);
    app.user("boss", "supervisor", None).await;
    let boss = app.login("boss").await;
    for desk in web::console::DESKS {
        let r = app.get(&boss, &format!("/console/{desk}")).await;
        assert_eq!(r.status, StatusCode::OK, "{desk}");
        assert!(r.headers.get("content-security-policy").is_some());
    }
    assert_eq!(app.get(&boss, "/console/nope").await.status, StatusCode::NOT_FOUND);
    let r = app.get(&boss, "/console/assets/console.js").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.get(&boss, "/api/console/calls-per-hour").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body.as_array().map(|a| a.len()), Some(24));
    assert_eq!(app.get(&Session::default(), "/api/console/calls-per-hour").await.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn language_follows_accept_language() {
    let h = |v: &str| {
        let mut m = hyper::HeaderMap::new();
        m.insert("accept-language", v.parse().expect("header"));
        m
    };
    assert_eq!(web::console::language(&h("it-IT,it;q=0.9,en;q=0.8")), "it");
    assert_eq!(web::console::language(&h("de-DE,en;q=0.5,it;q=0.3")), "en");
    assert_eq!(web::console::language(&hyper::HeaderMap::new()), "en");
}

#[tokio::test]
async fn screen_pops_are_cut_to_the_reps_team() {
    let app = spawn_sqlite().await;
    let sys = Actor::system();
    let ta = app.store.create_team(&sys, NewTeam { name: "A".into(), parent_id: None, lead_user_id: None }).await.expect("team").id;
    let tb = app.store.create_team(&sys, NewTeam { name: "B".into(), parent_id: None, lead_user_id: None }).await.expect("team").id;
    let a = app.user("rep_a", "support", Some(ta)).await;
    let b = app.user("rep_b", "support", Some(tb)).await;
    app.user("mkt", "marketer", None).await;
    for (owner, name) in [(a, "Owned by A"), (b, "Owned by B")] {
        let p = crm::parties::PartyInput { kind: "person".into(), name: Some(name.into()), owner_id: Some(owner), phones: vec![crm::parties::PhoneInput { number: "+39 347 555 0199".into(), kind: None }], ..Default::default() };
        app.store.create_party(&sys, p).await.expect("party");
    }
    let number = PhoneNumber::parse("+393475550199", app.store.default_region()).expect("number");
    let parties = app.store.lookup_by_phone(&number).await.expect("lookup");
    assert_eq!(parties.len(), 2);
    let pop = web::telephony::ScreenPop { call_id: "c1".into(), caller: "+393475550199".into(), caller_e164: Some(number), callee: "100".into(), parties, at: 0 };
    let rep_a = app.store.authenticate("rep_a", "rep_a-password").await.expect("auth");
    let seen = web::ws::pop_for(&rep_a, &pop).expect("support takes calls");
    assert_eq!(seen.parties.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["Owned by A"]);
    let mkt = app.store.authenticate("mkt", "mkt-password").await.expect("auth");
    assert!(web::ws::pop_for(&mkt, &pop).is_none(), "marketers take no calls");
    assert_eq!(web::ws::pop_for(&sys, &pop).map(|p| p.parties.len()), Some(2));
}
