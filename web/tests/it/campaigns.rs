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

/// The mail peers' addresses, or `None` (with a note) when they are not
/// running and not required (`CENTRALINO_REQUIRE_PEERS=1`).
fn mail_peers() -> Option<(String, String, String, String)> {
    let (Ok(imap), Ok(smtp)) = (std::env::var("CENTRALINO_TEST_IMAP"), std::env::var("CENTRALINO_TEST_SMTP")) else {
        if std::env::var("CENTRALINO_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("CENTRALINO_REQUIRE_PEERS=1 but CENTRALINO_TEST_IMAP/CENTRALINO_TEST_SMTP are not set");
        }
        eprintln!("note: skipping the end-to-end campaign test: no Dovecot/Postfix (scripts/peers.sh start DIR)");
        return None;
    };
    let domain = std::env::var("CENTRALINO_TEST_MAIL_DOMAIN").unwrap_or_else(|_| "gw.test".into());
    let password = std::env::var("CENTRALINO_TEST_MAIL_PASSWORD").unwrap_or_else(|_| "testpw".into());
    Some((imap, smtp, domain, password))
}

fn imap_box(imap: &str, domain: &str, password: &str, user: &str, folder: &str) -> mailgate::MailboxConfig {
    let (h, p) = imap.rsplit_once(':').expect("HOST:PORT");
    let mut cfg = mailgate::MailboxConfig::new(h, p.parse().expect("port"), mailgate::Security::Plain, format!("{user}@{domain}"), mailgate::Secret::new(password), crm::tickets::ServiceCentreId(0)).folder(folder);
    cfg.timeout = std::time::Duration::from_secs(10);
    cfg
}

/// Waits (30 s at most) until `folder` holds `n` messages; returns them raw.
async fn imap_wait(cfg: &mailgate::MailboxConfig, folder: &str, n: usize) -> Vec<Vec<u8>> {
    use futures::TryStreamExt;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut s = mailgate::imap::connect(cfg).await.expect("imap connect");
        if s.select(folder).await.is_ok() {
            let mut uids: Vec<u32> = s.uid_search("ALL").await.expect("search").into_iter().collect();
            if uids.len() >= n {
                uids.sort_unstable();
                let fetches: Vec<_> = s.uid_fetch(mailgate::imap::uid_set(&uids), "(UID BODY.PEEK[])").await.expect("fetch").try_collect().await.expect("fetch");
                let mut out: Vec<(u32, Vec<u8>)> = fetches.iter().filter_map(|f| Some((f.uid?, f.body()?.to_vec()))).collect();
                out.sort_by_key(|(u, _)| *u);
                let _ = s.logout().await;
                return out.into_iter().map(|(_, b)| b).collect();
            }
        }
        let _ = s.logout().await;
        assert!(tokio::time::Instant::now() < deadline, "{}/{folder} did not get {n} messages in time", cfg.user);
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The `/t/o/…`, `/t/c/…` (in link order) and `/u/…` paths of a delivered mail.
fn tracking_paths(raw: &[u8], base: &str) -> (String, Vec<String>, String) {
    let text = String::from_utf8_lossy(raw).replace("=\r\n", "").replace("=3D", "=");
    let path_at = |i: usize| -> String { text[i + base.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/' | '.')).collect() };
    let all: Vec<String> = text.match_indices(base).map(|(i, _)| path_at(i)).collect();
    let open = all.iter().find(|p| p.starts_with("/t/o/")).cloned().unwrap_or_else(|| panic!("no pixel in {text}"));
    let mut clicks: Vec<String> = vec![];
    for p in all.iter().filter(|p| p.starts_with("/t/c/")) {
        if !clicks.contains(p) {
            clicks.push(p.clone());
        }
    }
    // The List-Unsubscribe header's URL.
    let header = text.lines().find(|l| l.to_ascii_lowercase().starts_with("list-unsubscribe:")).unwrap_or_else(|| panic!("no List-Unsubscribe in {text}"));
    let i = header.find(base).expect("https unsubscribe URL");
    let unsub: String = header[i + base.len()..].chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '/')).collect();
    (open, clicks, unsub)
}

/// "Done when", end to end through the product: the app configured with
/// Postfix as relay, Dovecot's `bounces` as bounce mailbox and the fake
/// SMSC; parties, lists, campaign and messages made over the HTTP API and
/// launched; the app's sender delivers through Postfix into Dovecot; the
/// pixel, links and List-Unsubscribe URL read from the delivered mails are
/// hit over real HTTP; Postfix's real DSN for an unknown user is read by
/// the app's bounce reader; the SMSC's receipt comes back; the monitor API
/// shows exactly what was driven.
///
/// Postfix returns the DSN to `bounces+TOKEN@`, which the test Dovecot
/// files into the folder TOKEN of `bounces`; the test copies it (as is)
/// into the folder the app reads, as a production mailbox would hold it.
#[tokio::test]
async fn a_campaign_over_the_real_peers_and_http_matches_the_monitor() {
    let Some((imap, smtp, domain, password)) = mail_peers() else { return };
    let smsc = std::env::var("CENTRALINO_TEST_SMSC").ok();
    if smsc.is_none() && std::env::var("CENTRALINO_REQUIRE_PEERS").as_deref() == Ok("1") {
        panic!("CENTRALINO_REQUIRE_PEERS=1 but CENTRALINO_TEST_SMSC is not set");
    }
    let base = "https://track.example";
    let run = format!("{}x{}", std::process::id(), crm::now_ms() % 1_000_000);
    let bounce_folder = |backend: &str| format!("e2e{run}{backend}");
    for b in ["sqlite", "postgres"] {
        let f = bounce_folder(b);
        let mut s = mailgate::imap::connect(&imap_box(&imap, &domain, &password, "bounces", &f)).await.expect("imap");
        s.create(&f).await.expect("create the bounce folder");
        let _ = s.logout().await;
    }
    let cfg = |backend: &'static str| web::config::RawCampaigns {
        smtp: Some(smtp.clone()),
        smtp_security: Some("plain".into()),
        from: Some(format!("news@{domain}")),
        mail_domain: Some(domain.clone()),
        tracking_base_url: Some(base.into()),
        bounce_mailbox: Some(imap.clone()),
        bounce_security: Some("plain".into()),
        bounce_user: Some(format!("bounces@{domain}")),
        bounce_password: Some(password.clone()),
        bounce_folder: Some(bounce_folder(backend)),
        smpp: smsc.clone(),
        ..Default::default()
    };
    each_app_with(cfg, |app| {
        let (imap, domain, password, bounce_folder, smsc) = (imap.clone(), domain.clone(), password.clone(), bounce_folder(app.backend), smsc.clone());
        async move {
            let be = app.backend;
            app.user("mara", "marketer", None).await;
            let m = app.login("mara").await;
            let tag = format!("{}{}", be, crm::now_ms() % 1_000_000);
            let folders = [format!("e2ea{tag}"), format!("e2eb{tag}"), format!("e2ec{tag}")];
            let ghost = format!("nobody{tag}@{domain}");
            let mut emails = vec![];
            for (name, address) in [("Ada", format!("customer+{}@{domain}", folders[0])), ("Bruno", format!("customer+{}@{domain}", folders[1])), ("Carla", format!("customer+{}@{domain}", folders[2])), ("Gino", ghost.clone())] {
                let p = app
                    .post(&m, "/api/parties", json!({"kind": "person", "name": format!("{name} Rossi"), "first_name": name, "city": "Lecce",
                        "emails": [{"address": address}], "consents": [{"channel": "email", "granted": true, "source": "form"}]}))
                    .await;
                assert_eq!(p.status, 201, "{}", p.text);
                emails.push(p.body["id"].as_i64().expect("id"));
            }
            let l = app.post(&m, "/api/lists", json!({"name": "e2e", "kind": "static", "party_ids": emails})).await;
            assert_eq!(l.status, 201, "{}", l.text);
            let c = app.post(&m, "/api/campaigns", json!({"name": "Estate", "budget_cents": 5000})).await;
            assert_eq!(c.status, 201, "{}", c.text);
            let camp = c.body["id"].as_i64().expect("campaign");
            let (la, lb) = ("https://shop.example/a", "https://shop.example/b");
            let msg = app
                .post(&m, &format!("/api/campaigns/{camp}/messages"), json!({"channel": "email", "list_id": l.body["id"], "subject": "Ciao {{ first_name }}",
                    "text": format!("Da {{{{ city }}}}: {la} e {lb}"), "html": format!("<p>Ciao {{{{ first_name }}}}: <a href=\"{la}\">a</a> <a href=\"{lb}\">b</a></p>")}))
                .await;
            assert_eq!(msg.status, 201, "{}", msg.text);
            let msg = msg.body["id"].as_i64().expect("message");
            let sms = match &smsc {
                Some(_) => {
                    let p = app
                        .post(&m, "/api/parties", json!({"kind": "person", "name": "Dario Rossi", "first_name": "Dario",
                            "phones": [{"number": "+393331234567", "kind": "mobile"}], "consents": [{"channel": "sms", "granted": true, "source": "form"}]}))
                        .await;
                    assert_eq!(p.status, 201, "{}", p.text);
                    let l = app.post(&m, "/api/lists", json!({"name": "e2e-sms", "kind": "static", "party_ids": [p.body["id"]]})).await;
                    assert_eq!(l.status, 201, "{}", l.text);
                    let s = app.post(&m, &format!("/api/campaigns/{camp}/messages"), json!({"channel": "sms", "list_id": l.body["id"], "subject": "Saldi", "text": "Ciao {{ first_name }}, saldi!", "html": ""})).await;
                    assert_eq!(s.status, 201, "{}", s.text);
                    Some(s.body["id"].as_i64().expect("sms message"))
                }
                None => None,
            };
            let launched = app.post(&m, &format!("/api/campaign-messages/{msg}/launch"), json!({})).await;
            assert_eq!(launched.body["recipients"], 4, "{}", launched.text);
            if let Some(s) = sms {
                // The same launch route as email: SMS recipients are the
                // list members' mobile numbers.
                let launched = app.post(&m, &format!("/api/campaign-messages/{s}/launch"), json!({})).await;
                assert_eq!(launched.status, 200, "{}", launched.text);
                assert_eq!(launched.body["recipients"], 1, "{be}: {}", launched.text);
            }

            // The delivered mails, as Dovecot holds them.
            let customer = |f: &str| imap_box(&imap, &domain, &password, "customer", f);
            let mut paths = vec![];
            for f in &folders {
                let raw = imap_wait(&customer(f), f, 1).await.remove(0);
                let (open, clicks, unsub) = tracking_paths(&raw, base);
                assert_eq!(clicks.len(), 2, "{be}: both links rewritten");
                paths.push((open, clicks, unsub));
            }
            let delivered_at = tokio::time::Instant::now();
            let anon = Session::default();
            let thunderbird = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.0";
            let (ada, bruno, carla) = (&paths[0], &paths[1], &paths[2]);
            // Opens: Ada twice, Bruno once (a mail client), Carla through
            // Apple's privacy proxy (a machine).
            for (p, ua) in [(&ada.0, thunderbird), (&ada.0, thunderbird), (&bruno.0, thunderbird), (&carla.0, "Mozilla/5.0")] {
                let (status, headers, body) = browser_get(&app, p, ua).await;
                assert_eq!((status, headers.get("content-type").and_then(|v| v.to_str().ok())), (200, Some("image/gif")), "{be}: {p}");
                assert!(body.starts_with(b"GIF89a"));
            }
            // A link scanner clicks Carla's first link within seconds of sending.
            let (status, headers, _) = browser_get(&app, &carla.1[0], thunderbird).await;
            assert_eq!((status, headers.get("location").and_then(|v| v.to_str().ok())), (302, Some(la)));
            // Postfix's DSN for Gino, into the app's bounce mailbox (while the
            // scanner window passes; the mailbox is polled every 10 s).
            let bounces = |f: &str| imap_box(&imap, &domain, &password, "bounces", f);
            let signer = mailgate::tracking::Signer::new(&app.store.campaign_secret().await.expect("secret"));
            let dsn_folder = signer.verp(row_of(&app.store, msg, &ghost).await);
            let dsn = imap_wait(&bounces(&dsn_folder), &dsn_folder, 1).await.remove(0);
            assert!(String::from_utf8_lossy(&dsn).to_ascii_lowercase().contains("multipart/report"), "a DSN");
            {
                let mut s = mailgate::imap::connect(&bounces(&bounce_folder)).await.expect("imap");
                s.append(&bounce_folder, None, None, &dsn).await.expect("append");
                let _ = s.logout().await;
            }

            // People click after the scanner window.
            let wait = std::time::Duration::from_millis(mailgate::tracking::SCANNER_WINDOW_MS as u64 + 500);
            tokio::time::sleep_until(delivered_at + wait).await;
            for (p, url) in [(&ada.1[0], la), (&bruno.1[1], lb), (&bruno.1[1], lb)] {
                let (status, headers, _) = browser_get(&app, p, thunderbird).await;
                assert_eq!((status, headers.get("location").and_then(|v| v.to_str().ok())), (302, Some(url)), "{be}: {p}");
            }
            // Ada unsubscribes with one click (RFC 8058).
            assert!(app.store.has_consent(crm::PartyId(emails[0]), crm::Channel::Email).await.expect("consent"));
            let one = app.raw(&anon, Method::POST, &ada.2, "application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click".to_vec()).await;
            assert_eq!(one.status, 200, "{be}: {}", one.text);

            // The monitor: exactly what was driven (events arrive in batches,
            // the bounce mailbox is polled every 10 s).
            let opens = json!({"unique_human": 2, "total_human": 3, "unique_machine": 1, "total_machine": 1});
            let clicks = json!([{"index": 1, "url": la, "unique_human": 1, "total_human": 1, "machine": 1}, {"index": 2, "url": lb, "unique_human": 1, "total_human": 2, "machine": 0}]);
            let bounced = json!([{"reason": "userunknown", "hard": true, "count": 1}]);
            let path = format!("/api/campaign-messages/{msg}/monitor");
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(25);
            let mon = loop {
                let r = app.get(&m, &path).await;
                let done = r.body["bounced"] == bounced && r.body["opens"] == opens && r.body["clicks"] == clicks && r.body["unsubscribed"] == 1;
                if done || tokio::time::Instant::now() > deadline {
                    break r;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            };
            let b = &mon.body;
            assert_eq!((b["recipients"].as_i64(), b["sent"].as_i64(), b["failed"].as_i64()), (Some(4), Some(4), Some(0)), "{be}: {}", mon.text);
            assert_eq!(b["opens"], opens, "{be}: {}", mon.text);
            assert_eq!(b["clicks"], clicks, "{be}: {}", mon.text);
            assert_eq!(b["unsubscribed"], 1, "{be}: {}", mon.text);
            assert_eq!(b["bounced"], bounced, "{be}: Postfix's DSN classified: {}", mon.text);
            assert_eq!(b["complained"], 0);
            assert!(!app.store.has_consent(crm::PartyId(emails[0]), crm::Channel::Email).await.expect("consent"), "{be}: Ada's consent is withdrawn");
            for p in &emails[1..] {
                assert!(app.store.has_consent(crm::PartyId(*p), crm::Channel::Email).await.expect("consent"), "{be}: only Ada unsubscribed");
            }

            if let Some(s) = sms {
                let path = format!("/api/campaign-messages/{s}/monitor");
                let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
                let mon = loop {
                    let r = app.get(&m, &path).await;
                    if r.body["delivered"] == 1 || tokio::time::Instant::now() > deadline {
                        break r;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                };
                assert_eq!((mon.body["sent"].as_i64(), mon.body["delivered"].as_i64(), mon.body["delivery_failed"].as_i64()), (Some(1), Some(1), Some(0)), "{be}: {}", mon.text);
            }
        }
    })
    .await;
}

/// The outbox row of `address` for `msg` (its VERP token names the folder
/// the test Dovecot files the DSN into).
async fn row_of(store: &crm::Store, msg: i64, address: &str) -> i64 {
    for id in 1..1000 {
        if let Ok(r) = store.outbox_row(id).await
            && r.message_id == msg
            && r.address == address
        {
            return id;
        }
    }
    panic!("no outbox row for {address}");
}
