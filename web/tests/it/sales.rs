//! Deals, activities and the outcome graph through the API: the
//! disposition flow, and roles/visibility for each resource type.

use crate::harness::each_app;
use hyper::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn disposition_flows_through_the_outcome_graph() {
    each_app(|app| async move {
        let sys = crm::Actor::system();
        app.store.install_default_graph(&sys).await.expect("graph");
        app.user("sup", "supervisor", None).await;
        app.user("ag", "agent", None).await;
        let sup = app.login("sup").await;
        let ag = app.login("ag").await;
        // The supervisor configures: Call + Interested → state "Interested", a meeting in 2 days, 3 points.
        let st = app.post(&sup, "/api/commercial-states", json!({"name": "Hot"})).await;
        assert_eq!(st.status, StatusCode::CREATED, "{}", st.text);
        let g = app.get(&ag, "/api/outcome-graph").await.body;
        let id_of = |list: &str, name: &str| g[list].as_array().and_then(|a| a.iter().find(|x| x["name"] == name)).map(|x| x["id"].as_i64().unwrap_or(0)).unwrap_or(0);
        let call = id_of("action_types", "Call");
        let meeting = id_of("action_types", "Meeting");
        let interested = id_of("outcomes", "Interested");
        assert!(call > 0 && meeting > 0 && interested > 0, "{g}");
        let rel = json!({"action_type_id": call, "outcome_id": interested, "commercial_state_id": st.body["id"], "points": 3,
                         "follow_up": {"action_type_id": meeting, "recipient": "me", "days": 2}});
        app.call(&ag, Method::PUT, "/api/relations", Some(rel.clone())).await.problem(403);
        let r = app.call(&sup, Method::PUT, "/api/relations", Some(rel)).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        // The agent calls a party and records "Interested".
        let p = app.post(&ag, "/api/parties", json!({"kind": "person", "name": "Lia Verdi", "phones": [{"number": "3351234567"}]})).await;
        let pid = p.body["id"].as_i64().expect("party");
        let a = app.post(&ag, "/api/activities", json!({"kind": "call", "party_id": pid, "action_type_id": call})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let aid = a.body["id"].as_i64().expect("activity");
        let wrong = id_of("outcomes", "Sale");
        let bogus = app.post(&ag, &format!("/api/activities/{aid}/complete"), json!({"outcome_id": wrong + 1000})).await;
        assert_eq!(bogus.status.as_u16(), 422, "{}", bogus.text);
        let c = app.post(&ag, &format!("/api/activities/{aid}/complete"), json!({"outcome_id": interested, "notes": "call back Tuesday"})).await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.text);
        assert_eq!(c.body["points"], 3);
        assert_eq!(c.body["follow_up"]["action_type_id"], meeting);
        app.post(&ag, &format!("/api/activities/{aid}/complete"), json!({"outcome_id": interested})).await.problem(409);
        let party = app.get(&ag, &format!("/api/parties/{pid}")).await;
        assert_eq!(party.body["commercial_state_id"], st.body["id"]);
        let lb = app.get(&sup, "/api/leaderboard").await;
        assert_eq!(lb.body[0]["username"], "ag", "{}", lb.text);
        assert_eq!(lb.body[0]["points"], 3);
        // A won deal makes the party a customer.
        let d = app.post(&ag, "/api/deals", json!({"party_id": pid, "title": "Annual plan", "value_cents": 120000})).await;
        assert_eq!(d.status, StatusCode::CREATED, "{}", d.text);
        let did = d.body["id"].as_i64().expect("deal");
        let w = app.patch(&ag, &format!("/api/deals/{did}"), json!({"version": d.body["version"], "status": "won"})).await;
        assert_eq!(w.status, StatusCode::OK, "{}", w.text);
        app.patch(&ag, &format!("/api/deals/{did}"), json!({"version": d.body["version"], "status": "lost"})).await.problem(409);
        assert_eq!(app.get(&ag, &format!("/api/parties/{pid}")).await.body["stage"], "customer");
    })
    .await;
}

/// 403 for every resource type when the record belongs to another team.
#[tokio::test]
async fn other_teams_deals_and_activities_are_forbidden() {
    each_app(|app| async move {
        let sys = crm::Actor::system();
        app.store.install_default_graph(&sys).await.expect("graph");
        let ta = app.store.create_team(&sys, crm::auth::NewTeam { name: "A".into(), parent_id: None, lead_user_id: None }).await.expect("t");
        let tb = app.store.create_team(&sys, crm::auth::NewTeam { name: "B".into(), parent_id: None, lead_user_id: None }).await.expect("t");
        let ann_id = app.user("ann", "agent", Some(ta.id)).await;
        app.user("ben", "agent", Some(tb.id)).await;
        let ann = app.login("ann").await;
        let ben = app.login("ben").await;
        let p = app.post(&ann, "/api/parties", json!({"kind": "company", "name": "Ann Co", "owner_id": ann_id.0})).await;
        let pid = p.body["id"].as_i64().expect("party");
        let d = app.post(&ann, "/api/deals", json!({"party_id": pid, "title": "Deal"})).await;
        assert_eq!(d.status, StatusCode::CREATED, "{}", d.text);
        let did = d.body["id"].as_i64().expect("deal");
        let call = app.get(&ann, "/api/outcome-graph").await.body["action_types"][0]["id"].as_i64().expect("type");
        let a = app.post(&ann, "/api/activities", json!({"kind": "todo", "party_id": pid, "action_type_id": call})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let aid = a.body["id"].as_i64().expect("activity");
        for path in [format!("/api/deals/{did}"), format!("/api/deals/{did}/history"), format!("/api/activities/{aid}")] {
            app.get(&ben, &path).await.problem(403);
        }
        app.patch(&ben, &format!("/api/deals/{did}"), json!({"version": 1, "title": "mine"})).await.problem(403);
        app.patch(&ben, &format!("/api/activities/{aid}"), json!({"version": 1, "notes": "x"})).await.problem(403);
        app.post(&ben, &format!("/api/activities/{aid}/complete"), json!({"outcome_id": null})).await.problem(403);
        app.call(&ben, Method::DELETE, &format!("/api/deals/{did}"), None).await.problem(403);
        app.post(&ben, "/api/deals", json!({"party_id": pid, "title": "steal"})).await.problem(403);
        assert_eq!(app.get(&ben, "/api/deals").await.body["total"], 0);
        assert_eq!(app.get(&ben, "/api/activities?scope=all").await.body["total"], 0);
        app.get(&ben, "/api/assignment-rules").await.problem(403);
        app.post(&ben, "/api/action-types", json!({"name": "Hack"})).await.problem(403);
        app.get(&ben, "/api/deals/424242").await.problem(404);
        app.get(&ann, "/api/activities?period=year").await.problem(422);
    })
    .await;
}
