//! The dialer API: campaign validation with field errors, CRUD, leads from
//! lists, DNC import, start/stop and stats, agent commands refused when the
//! campaign runs on no node here, and the OpenAPI entries.

use crate::harness::each_app;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn dialer_campaigns_over_http() {
    each_app(|app| async move {
        app.user("boss", "admin", None).await;
        let s = app.login("boss").await;
        let bad = app
            .post(&s, "/api/dialer/campaigns", json!({"name": "x", "trunk": "", "ratio": 0.5, "abandon_target": 2.0, "window": {"start": "10:00", "end": "09:00"}}))
            .await;
        let fields = bad.problem(422);
        for f in ["trunk", "ratio", "abandon_target", "window"] {
            assert!(fields.iter().any(|x| x == f), "{f} missing: {}", bad.text);
        }
        let p = app.post(&s, "/api/parties", json!({"kind": "person", "name": "Ada", "phones": [{"number": "+39 02 1234 5678"}]})).await;
        assert_eq!(p.status, StatusCode::CREATED, "{}", p.text);
        let pid = p.body["id"].as_i64().unwrap();
        let l = app.post(&s, "/api/lists", json!({"name": "L", "kind": "static", "party_ids": [pid]})).await;
        assert_eq!(l.status, StatusCode::CREATED, "{}", l.text);
        let c = app
            .post(&s, "/api/dialer/campaigns", json!({"name": "Spring", "trunk": "127.0.0.1:5070", "pacing": "predictive", "list_ids": [l.body["id"]]}))
            .await;
        assert_eq!(c.status, StatusCode::CREATED, "{}", c.text);
        assert_eq!(c.body["config"]["abandon_target"], 0.03);
        let id = c.body["id"].as_i64().unwrap();
        let load = app.post(&s, &format!("/api/dialer/campaigns/{id}/load"), json!({})).await;
        assert_eq!(load.body["added"], 1, "{}", load.text);
        let dnc = app.post(&s, "/api/dialer/dnc", json!({"numbers": ["+39 02 1234 9999"]})).await;
        assert_eq!(dnc.body["added"], 1, "{}", dnc.text);
        app.post(&s, "/api/dialer/dnc", json!({"numbers": ["nope"]})).await.problem(422);
        let leads = app.get(&s, &format!("/api/dialer/campaigns/{id}/leads")).await;
        assert_eq!(leads.body[0]["e164"], "+390212345678", "{}", leads.text);
        let st = app.post(&s, &format!("/api/dialer/campaigns/{id}/start"), json!({})).await;
        assert_eq!(st.body["running"], true, "{}", st.text);
        // No line source in this app: the agent commands have no task to reach.
        if st.body["live"] == false {
            app.post(&s, &format!("/api/dialer/campaigns/{id}/agent"), json!({"action": "login", "leg": "x"})).await.problem(409);
        }
        let stats = app.get(&s, &format!("/api/dialer/campaigns/{id}/stats")).await;
        assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
        assert_eq!(stats.body["store"]["abandons"], 0);
        app.post(&s, &format!("/api/dialer/campaigns/{id}/stop"), json!({})).await;
        let got = app.get(&s, &format!("/api/dialer/campaigns/{id}")).await;
        assert_eq!(got.body["running"], false, "{}", got.text);
        let doc = app.get(&s, "/api/openapi.json").await;
        assert!(doc.text.contains("/api/dialer/campaigns/{id}/disposition"));
    })
    .await;
}
