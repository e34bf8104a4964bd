//! Authentication, roles, team visibility and bad input across the API.

use crate::harness::{Session, each_app};
use hyper::{Method, StatusCode};
use serde_json::json;

fn person(phone: &str) -> serde_json::Value {
    json!({"kind": "person", "first_name": "Mario", "last_name": "Rossi", "city": "Milano",
           "phones": [{"number": phone, "kind": "mobile"}], "emails": [{"address": "Mario.Rossi@Example.com"}]})
}

#[tokio::test]
async fn no_credentials_is_401_and_login_works() {
    each_app(|app| async move {
        let anon = Session::default();
        for path in ["/api/parties", "/api/users", "/api/me", "/api/teams", "/api/parties/1"] {
            app.get(&anon, path).await.problem(401);
        }
        app.user("alice", "agent", None).await;
        let r = app.post(&anon, "/api/auth/login", json!({"username": "alice", "password": "wrong"})).await;
        r.problem(401);
        let r = app.post(&anon, "/api/auth/login", json!({"username": "nobody", "password": "x"})).await;
        r.problem(401);
        let s = app.login("alice").await;
        let me = app.get(&s, "/api/me").await;
        assert_eq!(me.status, StatusCode::OK, "{}", app.backend);
        assert_eq!(me.body["username"], "alice");
        // The session cookie is HttpOnly and SameSite.
        let r = app.post(&anon, "/api/auth/login", json!({"username": "alice", "password": "alice-password"})).await;
        let cookies: Vec<String> = r.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap_or("").to_string()).collect();
        assert!(cookies.iter().any(|c| c.starts_with("centralino_session=") && c.contains("HttpOnly") && c.contains("SameSite=Strict")), "{cookies:?}");
        // Logout ends the session.
        let r = app.call(&s, Method::POST, "/api/auth/logout", None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        app.get(&s, "/api/me").await.problem(401);
    })
    .await;
}

#[tokio::test]
async fn bearer_tokens_and_csrf() {
    each_app(|app| async move {
        app.user("bob", "agent", None).await;
        let s = app.login("bob").await;
        // A cookie session without the CSRF header may not change state.
        let no_csrf = Session { csrf: None, ..s.clone() };
        app.post(&no_csrf, "/api/parties", person("3471234567")).await.problem(403);
        assert_eq!(app.get(&s, "/api/parties").await.body["total"], 0);
        let r = app.post(&s, "/api/tokens", json!({"name": "script"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let token = r.body["token"].as_str().expect("token").to_string();
        let api = Session { bearer: Some(token), ..Default::default() };
        let r = app.post(&api, "/api/parties", person("3471234567")).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let forged = Session { bearer: Some("ctl_0000".into()), ..Default::default() };
        app.get(&forged, "/api/parties").await.problem(401);
    })
    .await;
}

#[tokio::test]
async fn bad_input_is_a_problem_and_writes_nothing() {
    each_app(|app| async move {
        app.user("carla", "agent", None).await;
        let s = app.login("carla").await;
        let fields = app.post(&s, "/api/parties", person("12")).await.problem(422);
        assert_eq!(fields, vec!["phones[0].number"]);
        let mut bad = person("3471234567");
        bad["kind"] = json!("alien");
        bad["emails"] = json!([{"address": "nope"}]);
        let fields = app.post(&s, "/api/parties", bad).await.problem(422);
        assert!(fields.contains(&"kind".to_string()) && fields.contains(&"emails[0].address".to_string()), "{fields:?}");
        let mut unknown = person("3471234567");
        unknown["shoe_size"] = json!(42);
        let fields = app.post(&s, "/api/parties", unknown).await.problem(422);
        assert_eq!(fields.len(), 1, "{fields:?}");
        let mut wrong_type = person("3471234567");
        wrong_type["do_not_call"] = json!("yes");
        let fields = app.post(&s, "/api/parties", wrong_type).await.problem(422);
        assert_eq!(fields, vec!["do_not_call"]);
        app.raw(&s, Method::POST, "/api/parties", "application/json", b"{\"kind\": ".to_vec()).await.problem(400);
        app.raw(&s, Method::POST, "/api/parties", "text/plain", b"hello".to_vec()).await.problem(415);
        let huge = format!("{{\"kind\":\"person\",\"name\":\"{}\"}}", "x".repeat(9 * 1024 * 1024));
        app.raw(&s, Method::POST, "/api/parties", "application/json", huge.into_bytes()).await.problem(413);
        app.get(&s, "/api/parties?limit=100000").await.problem(422);
        app.get(&s, "/api/parties?stage=vip").await.problem(422);
        app.get(&s, "/api/parties?limit=abc").await.problem(422);
        app.get(&s, "/api/lookup/phone/xyz").await.problem(422);
        assert_eq!(app.get(&s, "/api/parties").await.body["total"], 0, "{}", app.backend);
        app.get(&s, "/api/parties/999999").await.problem(404);
        app.get(&s, "/api/parties/abc").await.problem(404);
        app.get(&s, "/api/nope").await.problem(404);
    })
    .await;
}

#[tokio::test]
async fn stale_update_is_409_and_history_shows_fields() {
    each_app(|app| async move {
        app.user("dario", "agent", None).await;
        let s = app.login("dario").await;
        let p = app.post(&s, "/api/parties", person("+39 347 1234567")).await;
        let id = p.body["id"].as_i64().expect("id");
        let v = p.body["version"].as_i64().expect("version");
        let r = app.patch(&s, &format!("/api/parties/{id}"), json!({"version": v, "city": "Roma"})).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        app.patch(&s, &format!("/api/parties/{id}"), json!({"version": v, "city": "Bari"})).await.problem(409);
        let h = app.get(&s, &format!("/api/parties/{id}/history")).await;
        assert_eq!(h.body[0]["changes"]["city"], json!(["Milano", "Roma"]));
        let found = app.get(&s, "/api/lookup/phone/3471234567").await;
        assert_eq!(found.body[0]["id"], id);
        let found = app.get(&s, "/api/parties?q=mario.rossi@example.com").await;
        assert_eq!(found.body["total"], 1);
    })
    .await;
}

/// Team visibility: a lead sees their people's records; nobody else does.
#[tokio::test]
async fn roles_and_team_visibility_are_enforced() {
    each_app(|app| async move {
        let sys = crm::Actor::system();
        let lead = app.user("lead", "supervisor", None).await;
        let team_a = app.store.create_team(&sys, crm::auth::NewTeam { name: "A".into(), parent_id: None, lead_user_id: Some(lead) }).await.expect("team");
        let team_b = app.store.create_team(&sys, crm::auth::NewTeam { name: "B".into(), parent_id: None, lead_user_id: None }).await.expect("team");
        app.user("ann", "agent", Some(team_a.id)).await;
        app.user("ben", "agent", Some(team_b.id)).await;
        app.user("root", "admin", None).await;
        let ann = app.login("ann").await;
        let ben = app.login("ben").await;
        let lead_s = app.login("lead").await;
        let root = app.login("root").await;
        let ann_id = app.get(&ann, "/api/me").await.body["id"].as_i64().expect("id");
        let mut body = person("3479876543");
        body["owner_id"] = json!(ann_id);
        let p = app.post(&ann, "/api/parties", body).await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
        let id = p.body["id"].as_i64().expect("id");
        let path = format!("/api/parties/{id}");
        // Ben (another team) sees nothing of it.
        app.get(&ben, &path).await.problem(403);
        app.patch(&ben, &path, json!({"version": 1, "city": "Roma"})).await.problem(403);
        app.call(&ben, Method::DELETE, &path, None).await.problem(403);
        app.get(&ben, &format!("{path}/history")).await.problem(403);
        assert_eq!(app.get(&ben, "/api/parties").await.body["total"], 0);
        assert_eq!(app.get(&ben, "/api/lookup/phone/3479876543").await.body, json!([]));
        // Ann's lead and the admin do.
        assert_eq!(app.get(&lead_s, &path).await.status, StatusCode::OK);
        assert_eq!(app.get(&root, &path).await.status, StatusCode::OK);
        assert_eq!(app.get(&lead_s, "/api/parties").await.body["total"], 1);
        // Ann cannot give her record to Ben (not in her scope).
        let ben_id = app.get(&ben, "/api/me").await.body["id"].as_i64().expect("id");
        let fields = app.patch(&ann, &path, json!({"version": 1, "owner_id": ben_id})).await.problem(422);
        assert_eq!(fields, vec!["owner_id"]);
        // Users and teams: agents may not list or create users; supervisors read only.
        app.get(&ann, "/api/users").await.problem(403);
        app.get(&ann, &format!("/api/users/{ben_id}")).await.problem(403);
        assert_eq!(app.get(&ann, &format!("/api/users/{ann_id}")).await.status, StatusCode::OK);
        let nu = json!({"username": "eve", "password": "long-enough", "role": "admin"});
        app.post(&ann, "/api/users", nu.clone()).await.problem(403);
        app.post(&lead_s, "/api/users", nu.clone()).await.problem(403);
        app.post(&ann, "/api/teams", json!({"name": "C"})).await.problem(403);
        assert_eq!(app.get(&lead_s, "/api/users").await.status, StatusCode::OK);
        assert_eq!(app.post(&root, "/api/users", nu).await.status, StatusCode::CREATED);
        let fields = app.post(&root, "/api/users", json!({"username": "x y", "password": "short", "role": "boss"})).await.problem(422);
        assert_eq!(fields.len(), 3, "{fields:?}");
    })
    .await;
}

#[tokio::test]
async fn health_metrics_and_openapi() {
    each_app(|app| async move {
        let anon = Session::default();
        let h = app.get(&anon, "/healthz").await;
        assert_eq!((h.status, h.text.as_str()), (StatusCode::OK, "ok"));
        app.get(&anon, "/api/parties").await;
        let m = app.get(&anon, "/metrics").await;
        assert!(m.text.contains("centralino_http_requests_total{method=\"GET\",route=\"/api/parties\",status=\"4xx\"} 1"), "{}", m.text);
        let doc = app.get(&anon, "/api/openapi.json").await;
        assert_eq!(doc.status, StatusCode::OK);
        assert!(doc.body["openapi"].as_str().unwrap_or("").starts_with("3."));
        for p in ["/api/parties", "/api/parties/{id}", "/api/auth/login", "/api/lookup/phone/{number}"] {
            assert!(doc.body["paths"].get(p).is_some(), "missing {p}");
        }
        assert!(doc.body["components"]["schemas"].get("PartyInput").is_some());
    })
    .await;
}
