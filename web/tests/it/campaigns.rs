//! Campaigns over real HTTP: roles, template errors at save, preview,
//! launch, and the tracking endpoints — forged tokens are 404 and record
//! nothing (the pixel still returns its image), real hits are recorded in
//! batches and show in the monitor, a click only redirects to the URL signed
//! into the message, one-click unsubscribe withdraws consent.

use crate::harness::*;
use hyper::Method;
use mailgate::tracking::{Kind, Signer, Token};
use serde_json::json;

async fn eventually<F, Fut>(mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..100 {
        if f().await {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn campaign_api_and_tracking_over_http() {
    each_app(|app| async move {
        app.user("mara", "marketer", None).await;
        app.user("aldo", "agent", None).await;
        app.user("sara", "support", None).await;
        let m = app.login("mara").await;
        for who in ["aldo", "sara"] {
            let s = app.login(who).await;
            app.post(&s, "/api/campaigns", json!({"name": "x"})).await.problem(403);
        }

        let p = app
            .post(&m, "/api/parties", json!({"kind": "person", "name": "Ada Neri", "first_name": "Ada", "city": "Lecce",
                "emails": [{"address": "ada@example.com"}], "consents": [{"channel": "email", "granted": true, "source": "form"}]}))
            .await;
        assert_eq!(p.status, 201, "{}", p.text);
        let party = p.body["id"].as_i64().expect("id");
        let l = app.post(&m, "/api/lists", json!({"name": "news", "kind": "static", "party_ids": [party]})).await;
        assert_eq!(l.status, 201, "{}", l.text);
        let list = l.body["id"].as_i64().expect("list");
        let c = app.post(&m, "/api/campaigns", json!({"name": "Primavera", "budget_cents": 1000})).await;
        assert_eq!(c.status, 201, "{}", c.text);
        let camp = c.body["id"].as_i64().expect("campaign");
        let aldo = app.login("aldo").await;
        app.get(&aldo, &format!("/api/campaigns/{camp}")).await.problem(403);

        // Unknown merge field and unsafe HTML: 422 naming the part.
        let bad = app.post(&m, &format!("/api/campaigns/{camp}/messages"), json!({"channel": "email", "list_id": list, "subject": "Ciao {{ nome }}", "text": "x", "html": "<img src=x onerror=alert(1)>"})).await;
        assert_eq!(bad.problem(422), ["subject", "html"], "{}: {}", app.backend, bad.text);
        assert!(bad.text.contains("unknown merge field \\\"nome\\\""), "{}", bad.text);
        let msg = app
            .post(&m, &format!("/api/campaigns/{camp}/messages"), json!({"channel": "email", "list_id": list, "subject": "Ciao {{ first_name }}", "text": "Da {{ city }}", "html": ""}))
            .await;
        assert_eq!(msg.status, 201, "{}", msg.text);
        let msg = msg.body["id"].as_i64().expect("message");
        let t = app.call(&m, Method::PUT, &format!("/api/campaign-messages/{msg}/template"), Some(json!({"subject": "Ciao {{ first_name }}!", "text": "Da {{ city }}: https://shop.example/a", "html": ""}))).await;
        assert_eq!(t.status, 200, "{}", t.text);
        let pv = app.get(&m, &format!("/api/campaign-messages/{msg}/preview?party_id={party}")).await;
        assert_eq!((pv.body["subject"].as_str(), pv.body["text"].as_str()), (Some("Ciao Ada!"), Some("Da Lecce: https://shop.example/a")), "{}", pv.text);
        let launched = app.post(&m, &format!("/api/campaign-messages/{msg}/launch"), json!({})).await;
        assert_eq!(launched.body["recipients"], 1, "{}", launched.text);
        let row = app.store.claim_outbox(msg, 1, 60_000, crm::now_ms()).await.expect("claim").remove(0);
        app.store.complete_outbox(row.outbox_id, crm::campaigns::Outcome::Sent, "250", crm::now_ms()).await.expect("sent");

        // Tokens as the sender would have put them in the mail.
        let signer = Signer::new(&app.store.campaign_secret().await.expect("secret"));
        let tok = |kind| signer.sign(&Token { outbox_id: row.outbox_id, message_id: msg, party_id: party, sent_at: crm::now_ms() - 3_600_000, kind });
        let open = tok(Kind::Open);
        let click = tok(Kind::Click { index: 1, url: "https://shop.example/a".into() });
        let unsub = tok(Kind::Unsubscribe);
        let anon = Session::default();

        // Forged, truncated and foreign tokens: 404, nothing recorded.
        let forged = Signer::new(b"not the secret").sign(&Token { outbox_id: row.outbox_id, message_id: msg, party_id: party, sent_at: crm::now_ms(), kind: Kind::Open });
        // A replayed token from a mail older than the tokens' lifetime.
        let stale = signer.sign(&Token { outbox_id: row.outbox_id, message_id: msg, party_id: party, sent_at: crm::now_ms() - mailgate::tracking::MAX_AGE_MS - 60_000, kind: Kind::Open });
        for bad in [forged.as_str(), &open[..open.len() - 3], "AAAA", stale.as_str()] {
            let r = app.get(&anon, &format!("/t/o/{bad}.gif")).await;
            assert_eq!(r.status, 404);
            assert_eq!(r.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("image/gif"));
            assert!(r.text.starts_with("GIF89a"), "the pixel still returns an image");
        }
        // A click token whose URL was changed (an open-redirect attempt).
        let mut raw = base64_decode(&click);
        let n = raw.len();
        raw[n - 17] ^= 1;
        let r = app.get(&anon, &format!("/t/c/{}", base64_encode(&raw))).await;
        assert_eq!(r.status, 404);
        assert!(r.headers.get("location").is_none());
        assert_eq!(app.get(&anon, &format!("/t/c/{open}")).await.status, 404, "an open token is not a click token");

        // Real hits from a mail client (a request without a user agent is
        // a machine's, and counted apart).
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0";
        let (status, headers, body) = browser_get(&app, &format!("/t/o/{open}.gif"), firefox).await;
        assert_eq!(status, 200);
        assert!(body.starts_with(b"GIF89a"));
        let (status, headers2, _) = browser_get(&app, &format!("/t/c/{click}"), firefox).await;
        assert_eq!(status, 302);
        assert_eq!(headers2.get("location").and_then(|v| v.to_str().ok()), Some("https://shop.example/a"));
        assert!(headers.get("cache-control").is_some());
        // Apple Mail Privacy Protection's proxy: a machine open.
        assert_eq!(browser_get(&app, &format!("/t/o/{open}.gif"), "Mozilla/5.0").await.0, 200);
        // X-Forwarded-For naming Apple's network, from a peer that is not a
        // configured trusted proxy (none is): ignored, a human open.
        assert_eq!(browser_get_with(&app, &format!("/t/o/{open}.gif"), firefox, &[("x-forwarded-for", "17.1.2.3")]).await.0, 200);

        let page = app.get(&anon, &format!("/u/{unsub}")).await;
        assert_eq!(page.status, 200);
        assert!(page.text.contains("<form method=\"post\""));
        assert!(app.store.has_consent(crm::PartyId(party), crm::Channel::Email).await.expect("consent"), "GET changes nothing");
        let one = app.raw(&anon, Method::POST, &format!("/u/{unsub}"), "application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click".to_vec()).await;
        assert_eq!(one.status, 200, "{}", one.text);
        assert!(!app.store.has_consent(crm::PartyId(party), crm::Channel::Email).await.expect("consent"));
        assert_eq!(app.raw(&anon, Method::POST, "/u/AAAA", "application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click".to_vec()).await.status, 404);

        // The monitor shows exactly what was driven (events arrive in batches).
        let path = format!("/api/campaign-messages/{msg}/monitor");
        let ok = eventually(|| {
            let (app, m, path) = (&app, &m, &path);
            async move {
                let r = app.get(m, path).await;
                r.body["opens"]["total_human"] == 2 && r.body["opens"]["total_machine"] == 1 && r.body["clicks"][0]["total_human"] == 1
            }
        })
        .await;
        let mon = app.get(&m, &path).await;
        assert!(ok, "{}", mon.text);
        assert_eq!(mon.body["sent"], 1);
        assert_eq!(mon.body["unsubscribed"], 1);
        assert_eq!(mon.body["opens"]["total_machine"], 1);
        assert_eq!(mon.body["clicks"][0]["url"], "https://shop.example/a");

        let tl = app.get(&m, &format!("/api/parties/{party}/campaign-timeline")).await;
        let mut kinds: Vec<&str> = tl.body.as_array().expect("timeline").iter().filter_map(|e| e["kind"].as_str()).collect();
        // Hits within the same millisecond may be stored in either order.
        kinds.sort_unstable();
        assert_eq!(kinds, ["clicked", "opened", "opened", "opened", "sent", "unsubscribed"], "{}", tl.text);
        let l = app.post(&m, &format!("/api/campaign-messages/{msg}/lists"), json!({"name": "clickers", "include": {"kind": "clicked", "link": 1}})).await;
        assert_eq!(l.status, 201, "{}", l.text);
        let members = app.get(&m, &format!("/api/lists/{}/members", l.body["id"])).await;
        assert_eq!(members.body["items"][0]["id"].as_i64(), Some(party), "{}", members.text);
        let detail = app.get(&m, &format!("/api/campaigns/{camp}")).await;
        assert_eq!(detail.body["roi"]["budget_cents"], 1000, "{}", detail.text);
    })
    .await;
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s).expect("base64")
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// A GET with a user agent (the harness's client sends none).
async fn browser_get(app: &TestApp, path: &str, ua: &str) -> (u16, hyper::HeaderMap, Vec<u8>) {
    browser_get_with(app, path, ua, &[]).await
}

async fn browser_get_with(app: &TestApp, path: &str, ua: &str, extra: &[(&str, &str)]) -> (u16, hyper::HeaderMap, Vec<u8>) {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let mut req = hyper::Request::get(format!("http://{}{}", app.addr, path)).header("user-agent", ua);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let req = req.body(http_body_util::Empty::new()).expect("request");
    let res = client.request(req).await.expect("http");
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    let body = res.into_body().collect().await.expect("body").to_bytes().to_vec();
    (status, headers, body)
}
