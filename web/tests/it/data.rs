//! Lists, duplicates/merge and CSV import through the API.

use crate::harness::each_app;
use hyper::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn csv_import_rejects_bad_rows_and_is_idempotent() {
    each_app(|app| async move {
        app.user("mk", "marketer", None).await;
        app.user("ag", "agent", None).await;
        let mk = app.login("mk").await;
        let ag = app.login("ag").await;
        let csv = "first_name;last_name;mobile;email;city\n\
                   Mario;Rossi;347 123 4567;mario@x.it;Milano\n\
                   Anna;Bianchi;12;anna@x.it;Roma\n\
                   Luca;Verdi;+39 338 765 4321;luca@x.it;Napoli\n";
        app.raw(&ag, Method::POST, "/api/import/parties", "text/csv", csv.as_bytes().to_vec()).await.problem(403);
        app.raw(&mk, Method::POST, "/api/import/parties", "application/json", csv.as_bytes().to_vec()).await.problem(415);
        let r = app.raw(&mk, Method::POST, "/api/import/parties", "text/csv", csv.as_bytes().to_vec()).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.body["inserted"], 2, "{}", r.text);
        assert_eq!(r.body["rejected"][0]["line"], 3, "{}", r.text);
        let again = app.raw(&mk, Method::POST, "/api/import/parties", "text/csv", csv.as_bytes().to_vec()).await;
        assert_eq!(again.body["inserted"], 0, "{}", again.text);
        assert_eq!(app.get(&mk, "/api/parties").await.body["total"], 2, "{}", app.backend);
        // A dynamic list over the imported parties, its live count, and a frozen copy.
        let count = app.post(&mk, "/api/lists/preview", json!({"cities": ["milano"]})).await;
        assert_eq!(count.body["count"], 1, "{}", count.text);
        app.post(&mk, "/api/lists/preview", json!({"stages": ["vip"]})).await.problem(422);
        let l = app.post(&mk, "/api/lists", json!({"name": "Milan", "kind": "dynamic", "filter": {"cities": ["Milano"]}})).await;
        assert_eq!(l.status, StatusCode::CREATED, "{}", l.text);
        let lid = l.body["id"].as_i64().expect("list");
        app.post(&ag, "/api/lists", json!({"name": "x", "kind": "static"})).await.problem(403);
        let m = app.get(&mk, &format!("/api/lists/{lid}/members")).await;
        assert_eq!(m.body["items"][0]["name"], "Mario Rossi", "{}", m.text);
        let f = app.post(&mk, &format!("/api/lists/{lid}/freeze"), json!({})).await;
        assert_eq!(f.status, StatusCode::CREATED, "{}", f.text);
    })
    .await;
}

#[tokio::test]
async fn duplicates_are_found_and_merged() {
    each_app(|app| async move {
        app.user("sv", "supervisor", None).await;
        app.user("ag", "agent", None).await;
        let sv = app.login("sv").await;
        let ag = app.login("ag").await;
        let a = app.post(&sv, "/api/parties", json!({"kind": "person", "name": "Giulia Conti", "city": "Bari", "phones": [{"number": "3401112233"}]})).await;
        let b = app.post(&sv, "/api/parties", json!({"kind": "person", "name": "Conti Giulia", "city": "Bari", "emails": [{"address": "giulia@conti.it"}], "phones": [{"number": "+39 340 111 2233"}]})).await;
        let (a, b) = (a.body["id"].as_i64().expect("a"), b.body["id"].as_i64().expect("b"));
        let d = app.get(&sv, &format!("/api/parties/{a}/duplicates")).await;
        assert_eq!(d.body[0]["party"]["id"], b, "{}", d.text);
        app.post(&ag, "/api/parties/merge", json!({"survivor": a, "victims": [b]})).await.problem(403);
        let m = app.post(&sv, "/api/parties/merge", json!({"survivor": a, "victims": [b]})).await;
        assert_eq!(m.status, StatusCode::OK, "{}", m.text);
        assert_eq!(m.body["emails"][0]["address"], "giulia@conti.it");
        assert_eq!(app.get(&sv, "/api/parties").await.body["total"], 1);
    })
    .await;
}
