//! The support desk through the API: threading of mail and replies, rules
//! (assignment, scheduled, notification), SLA on a business calendar,
//! one-click feedback, the knowledge base, and 403 for wrong role or team.

use crate::harness::{Session, TestApp, each_app};
use crm::tickets::*;
use crm::{Actor, EmailAddress};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

async fn centre(app: &TestApp, admin: &Session, extra: Value) -> i64 {
    let mut body = json!({"name": "Help desk", "mailboxes": ["help@example.com"]});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = app.post(admin, "/api/service-centres", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    r.body["id"].as_i64().expect("centre id")
}

async fn inbound(app: &TestApp, centre: i64, uid: i64, m: ParsedMail) -> IngestOutcome {
    let raw = app
        .store
        .store_raw_mail(RawMail { mailbox: "INBOX".into(), uidvalidity: 1, uid, message_id: m.message_id.clone(), raw: b"raw".to_vec(), received_at: crm::now_ms() })
        .await
        .expect("raw");
    app.store.ingest_mail(raw, m, ServiceCentreId(centre), crm::now_ms()).await.expect("ingest")
}

fn mail(id: &str, subject: &str, from: &str) -> ParsedMail {
    ParsedMail {
        message_id: Some(id.into()),
        subject: subject.into(),
        from: Some(EmailAddress::parse(from).expect("from")),
        text: format!("{subject}: please help"),
        ..Default::default()
    }
}

#[tokio::test]
async fn mail_threads_into_tickets_and_replies_go_out() {
    each_app(|app| async move {
        app.user("boss", "admin", None).await;
        app.user("rep", "support", None).await;
        let admin = app.login("boss").await;
        let rep = app.login("rep").await;
        let c = centre(&app, &admin, json!({})).await;
        let first = inbound(&app, c, 1, mail("m1@cust.example", "Printer broken", "anna@cust.example")).await;
        assert!(first.created);
        let path = format!("/api/tickets/{}", first.ticket);
        // The rep sees it in the unassigned queue and replies.
        let q = app.get(&rep, "/api/tickets?queue=unassigned").await;
        assert_eq!(q.body["total"], 1, "{}", q.text);
        assert_eq!(q.body["items"][0]["no"], first.ticket.to_string());
        let r = app.post(&rep, &format!("{path}/reply"), json!({"text": "Have you tried turning it off and on?", "state": "pending"})).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        let out = app.get(&rep, &format!("{path}/outbox")).await;
        let reply = out.body.as_array().and_then(|a| a.iter().find(|m| m["kind"] == "reply")).cloned().expect("reply queued");
        assert_eq!(reply["to"], json!(["anna@cust.example"]));
        assert_eq!(reply["in_reply_to"], "m1@cust.example");
        assert_eq!(reply["auto_submitted"], false);
        assert!(reply["subject"].as_str().unwrap_or("").contains(&first.ticket.subject_tag()), "{reply}");
        // The customer answers our reply (In-Reply-To only): same ticket, reopened.
        let mut m2 = mail("m2@cust.example", "Re: Printer broken", "anna@cust.example");
        m2.in_reply_to = vec![format!("<{}>", reply["message_id"].as_str().unwrap_or(""))];
        let second = inbound(&app, c, 2, m2).await;
        assert_eq!((second.ticket, second.created), (first.ticket, false));
        // A mail threaded only by References through the customer's first Message-ID.
        let mut m3 = mail("m3@cust.example", "one more thing", "carlo@cust.example");
        m3.references = vec!["<m1@cust.example>".into(), "<unknown@x>".into()];
        assert_eq!(inbound(&app, c, 3, m3).await.ticket, first.ticket);
        // Only the subject tag.
        assert_eq!(inbound(&app, c, 4, mail("m4@cust.example", &format!("about {}", first.ticket.subject_tag()), "anna@cust.example")).await.ticket, first.ticket);
        let d = app.get(&rep, &path).await;
        assert_eq!(d.status, StatusCode::OK, "{}", d.text);
        assert_eq!(d.body["ticket"]["state"], "open", "a customer answer reopens a pending ticket");
        let dirs: Vec<&str> = d.body["messages"].as_array().expect("messages").iter().filter_map(|m| m["direction"].as_str()).collect();
        assert_eq!(dirs, vec!["in", "out", "out", "in", "in", "in"], "{}", d.text);
        let actions: Vec<&str> = d.body["events"].as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"created") && actions.contains(&"reply") && actions.contains(&"state"), "{actions:?}");
        // An internal note is never queued.
        let before = app.get(&rep, &format!("{path}/outbox")).await.body.as_array().map(Vec::len);
        let n = app.post(&rep, &format!("{path}/reply"), json!({"text": "customer sounds angry", "internal": true})).await;
        assert_eq!(n.status, StatusCode::CREATED, "{}", n.text);
        assert_eq!(app.get(&rep, &format!("{path}/outbox")).await.body.as_array().map(Vec::len), before);
        // Bad input is problem+json naming the field; unknown numbers are 404.
        assert!(app.post(&rep, &format!("{path}/reply"), json!({"text": ""})).await.problem(422).contains(&"text".to_string()));
        assert!(app.post(&rep, &format!("{path}/reply"), json!({"text": "x", "cc": ["not-an-address"]})).await.problem(422).contains(&"cc[0]".to_string()));
        app.get(&rep, "/api/tickets/T-999999").await.problem(404);
        app.get(&rep, "/api/tickets/garbage").await.problem(404);
        // Split the third message into its own ticket.
        let msg3 = d.body["messages"][4]["id"].as_i64().expect("message id");
        let s = app.post(&rep, &format!("{path}/split"), json!({"message_id": msg3, "subject": "Carlo's question"})).await;
        assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
        assert_eq!(s.body["parent"], first.ticket.to_string());
        assert_eq!(app.get(&rep, &path).await.body["ticket"]["children"], json!([s.body["no"]]));
    })
    .await;
}

#[tokio::test]
async fn rules_assign_close_and_notify() {
    each_app(|app| async move {
        let sys = Actor::system();
        let team = app.store.create_team(&sys, crm::auth::NewTeam { name: "Printers".into(), parent_id: None, lead_user_id: None }).await.expect("team").id;
        app.user("boss", "admin", None).await;
        let r1 = app.user("r1", "support", Some(team)).await;
        let r2 = app.user("r2", "support", Some(team)).await;
        let owner = app.user("owner@example.com", "agent", None).await;
        app.user("rep", "support", None).await;
        let admin = app.login("boss").await;
        let rep = app.login("rep").await;
        let c = centre(&app, &admin, json!({})).await;
        // Rules are admin data: a support rep may not write them.
        let rr = json!({"kind": "assignment", "name": "printers round-robin", "conditions": {"category": "Hardware/Printer"},
                        "action": {"type": "assign_group", "team_id": team.0, "strategy": "round_robin"}});
        app.post(&rep, "/api/ticket-rules", rr.clone()).await.problem(403);
        assert_eq!(app.post(&admin, "/api/ticket-rules", rr).await.status, StatusCode::CREATED);
        let bad = app.post(&admin, "/api/ticket-rules", json!({"kind": "scheduled", "name": "x", "action": {"type": "set_state", "state": "closed"}})).await;
        assert!(bad.problem(422).contains(&"conditions".to_string()));
        let week = 7 * 24 * 3_600_000i64;
        let close = json!({"kind": "scheduled", "name": "close solved after 7 days", "conditions": {"state": "solved", "in_state_for_ms": week},
                           "action": {"type": "set_state", "state": "closed"}});
        assert_eq!(app.post(&admin, "/api/ticket-rules", close).await.status, StatusCode::CREATED);
        let notify = json!({"kind": "notification", "name": "high priority closed", "conditions": {"trigger": "closed", "priority": "high"},
                            "action": {"type": "notify", "target": "account_owner", "subject": "{ticket} closed", "text": "{subject} was closed"}});
        assert_eq!(app.post(&admin, "/api/ticket-rules", notify).await.status, StatusCode::CREATED);
        assert_eq!(app.get(&rep, "/api/ticket-rules").await.body.as_array().map(Vec::len), Some(3));
        // A customer owned by an account manager.
        let p = app.store.create_party(&sys, crm::parties::PartyInput { kind: "person".into(), name: Some("Anna".into()), owner_id: Some(owner), ..Default::default() }).await.expect("party");
        let mk = |subject: &str| json!({"centre_id": c, "subject": subject, "category": "Hardware/Printer/Laser", "priority": "high",
                                        "requester_id": p.id.0, "requester_email": "anna@cust.example"});
        let t1 = app.post(&admin, "/api/tickets", mk("jam")).await;
        let t2 = app.post(&admin, "/api/tickets", mk("toner")).await;
        let t3 = app.post(&admin, "/api/tickets", mk("noise")).await;
        let assignees: Vec<i64> = [&t1, &t2, &t3].iter().map(|t| t.body["assignee_id"].as_i64().unwrap_or(0)).collect();
        assert_eq!(assignees, vec![r1.0, r2.0, r1.0], "round-robin within the group: {}", t1.text);
        // Solve t1 through a reason code, then let a week pass.
        let rc = app.post(&admin, "/api/reason-codes", json!({"code": "FIXED", "name": "Fixed", "action": "set_state", "params": {"state": "solved"}, "roles": ["supervisor", "admin"]})).await;
        assert_eq!(rc.status, StatusCode::CREATED, "{}", rc.text);
        let no = t1.body["no"].as_str().expect("no").to_string();
        let s = app.post(&admin, &format!("/api/tickets/{no}/reason"), json!({"code": "FIXED", "note": "replaced the roller"})).await;
        assert_eq!(s.body["state"], "solved", "{}", s.text);
        let r1s = app.login("r1").await;
        app.post(&r1s, &format!("/api/tickets/{}/reason", t3.body["no"].as_str().unwrap_or("")), json!({"code": "FIXED"})).await.problem(403);
        let solved_at = s.body["solved_at"].as_i64().expect("solved_at");
        let early = app.post(&admin, "/api/support/jobs", json!({"now": solved_at + week - 1000})).await;
        assert_eq!(early.body["rules_fired"], json!([]), "{}", early.text);
        let late = app.post(&admin, "/api/support/jobs", json!({"now": solved_at + week + 1000})).await;
        assert_eq!(late.body["rules_fired"].as_array().map(Vec::len), Some(1), "{}", late.text);
        assert_eq!(app.post(&admin, "/api/support/jobs", json!({"now": solved_at + week + 5000})).await.body["rules_fired"], json!([]), "fires once");
        let d = app.get(&admin, &format!("/api/tickets/{no}")).await;
        assert_eq!(d.body["ticket"]["state"], "closed");
        let out = app.get(&admin, &format!("/api/tickets/{no}/outbox")).await;
        let note = out.body.as_array().and_then(|a| a.iter().find(|m| m["kind"] == "notification")).cloned().expect("notification queued");
        assert_eq!(note["to"], json!(["owner@example.com"]));
        assert_eq!(note["subject"], format!("{no} closed"));
        // Jobs are for supervisors and admins.
        app.post(&rep, "/api/support/jobs", json!({})).await.problem(403);
    })
    .await;
}

#[tokio::test]
async fn sla_runs_on_the_business_calendar() {
    each_app(|app| async move {
        app.user("boss", "admin", None).await;
        let admin = app.login("boss").await;
        let weekly: Vec<Value> = (0..5).map(|d| json!({"weekday": d, "start_min": 540, "end_min": 1080})).collect();
        let bad = app.post(&admin, "/api/business-calendars", json!({"name": "x", "tz": "Nowhere/City", "weekly": weekly})).await;
        assert!(bad.problem(422).contains(&"weekly".to_string()));
        let cal = app.post(&admin, "/api/business-calendars", json!({"name": "Rome office", "tz": "Europe/Rome", "weekly": weekly, "holidays": ["2026-12-25"]})).await;
        assert_eq!(cal.status, StatusCode::CREATED, "{}", cal.text);
        let c = centre(&app, &admin, json!({"calendar_id": cal.body["id"]})).await;
        let h = 3_600_000i64;
        let pol = json!({"centre_id": c, "priority": "normal", "first_response_ms": 2 * h, "resolution_ms": 16 * h, "warn_before_ms": h / 2});
        assert_eq!(app.call(&admin, Method::PUT, "/api/sla-policies", Some(pol)).await.status, StatusCode::NO_CONTENT);
        let t = app.post(&admin, "/api/tickets", json!({"centre_id": c, "subject": "down", "requester_email": "x@cust.example"})).await;
        assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
        let created = t.body["created_at"].as_i64().expect("created");
        let calendar = BusinessCalendar::weekdays("Europe/Rome", &[(540, 1080)], &["2026-12-25".into()]).expect("cal");
        let due = add_business_ms(&calendar, created, 2 * h);
        assert_eq!(t.body["first_response_due"], due);
        assert_eq!(t.body["resolution_due"], add_business_ms(&calendar, created, 16 * h));
        // Half an hour of business time before the due instant: a warning.
        let warn_at = add_business_ms(&calendar, created, 2 * h - h / 4).max(created);
        let w = app.post(&admin, "/api/support/jobs", json!({"now": warn_at})).await;
        assert_eq!(w.body["sla_events"][0]["kind"], "warning", "{}", w.text);
        assert_eq!(w.body["sla_events"][0]["metric"], "first_response");
        let b = app.post(&admin, "/api/support/jobs", json!({"now": due + 1})).await;
        assert_eq!(b.body["sla_events"][0]["kind"], "breach", "{}", b.text);
        assert_eq!(app.post(&admin, "/api/support/jobs", json!({"now": due + 2})).await.body["sla_events"], json!([]), "once");
        let no = t.body["no"].as_str().expect("no").to_string();
        let d = app.get(&admin, &format!("/api/tickets/{no}")).await;
        let actions: Vec<&str> = d.body["events"].as_array().expect("events").iter().filter_map(|e| e["action"].as_str()).collect();
        assert!(actions.contains(&"sla_warning") && actions.contains(&"sla_breach"), "{actions:?}");
        // The reply is measured in business time.
        app.post(&admin, &format!("/api/tickets/{no}/reply"), json!({"text": "on it"})).await;
        let rep = app.get(&admin, &format!("/api/sla/report?centre_id={c}")).await;
        let row = rep.body.as_array().and_then(|a| a.iter().find(|r| r["metric"] == "first_response")).cloned().expect("row");
        assert_eq!(row["met"].as_i64().unwrap_or(0) + row["breached"].as_i64().unwrap_or(0), 1, "{}", rep.text);
    })
    .await;
}

#[tokio::test]
async fn feedback_by_one_click() {
    each_app(|app| async move {
        app.user("boss", "admin", None).await;
        let admin = app.login("boss").await;
        let c = centre(&app, &admin, json!({})).await;
        let t = app.post(&admin, "/api/tickets", json!({"centre_id": c, "subject": "wifi", "requester_email": "x@cust.example"})).await;
        let no = t.body["no"].as_str().expect("no").to_string();
        app.post(&admin, "/api/reason-codes", json!({"code": "SOLVE", "name": "Solved", "action": "set_state", "params": {"state": "solved"}})).await;
        app.post(&admin, &format!("/api/tickets/{no}/reason"), json!({"code": "SOLVE"})).await;
        let out = app.get(&admin, &format!("/api/tickets/{no}/outbox")).await;
        let req = out.body.as_array().and_then(|a| a.iter().find(|m| m["kind"] == "feedback_request")).cloned().expect("feedback request");
        assert_eq!(req["auto_submitted"], true);
        let text = req["text"].as_str().expect("text");
        let link = |r: usize| text.lines().nth(2 + r).and_then(|l| l.split("/feedback/").nth(1)).map(str::trim).map(String::from).expect("link");
        let anon = Session::default();
        let r4 = app.get(&anon, &format!("/api/feedback/{}", link(4))).await;
        assert_eq!(r4.status, StatusCode::OK, "{}", r4.text);
        assert_eq!(r4.body["rating"], 4);
        assert_eq!(app.get(&anon, &format!("/api/feedback/{}", link(4))).await.status, StatusCode::OK, "idempotent");
        let r2 = app.post(&anon, &format!("/api/feedback/{}", link(2)), json!({"comment": "slow"})).await;
        assert_eq!(r2.body["rating"], 2, "{}", r2.text);
        let forged = link(5).replacen(".5.", ".4.", 1);
        app.get(&anon, &format!("/api/feedback/{forged}")).await.problem(403);
        let rep = app.get(&admin, "/api/feedback-report").await;
        assert_eq!(rep.body[0]["rated"], 1, "{}", rep.text);
        assert_eq!(rep.body[0]["distribution"], json!([0, 1, 0, 0, 0]), "the last click wins");
    })
    .await;
}

/// The rating link in the mail opens a page with a comment form. Opening it
/// records nothing (mail scanners open every link); posting the form
/// records the rating and the comment, shown back escaped; a forged link is
/// refused. Results come per centre and operator.
#[tokio::test]
async fn feedback_comment_page() {
    each_app(|app| async move {
        app.user("boss", "admin", None).await;
        let op = app.user("op", "support", None).await;
        let admin = app.login("boss").await;
        let c = centre(&app, &admin, json!({})).await;
        app.post(&admin, "/api/reason-codes", json!({"code": "TAKE", "name": "Assign", "action": "assign"})).await;
        app.post(&admin, "/api/reason-codes", json!({"code": "SOLVE", "name": "Solved", "action": "set_state", "params": {"state": "solved"}})).await;
        let t = app.post(&admin, "/api/tickets", json!({"centre_id": c, "subject": "vpn down", "requester_email": "y@cust.example"})).await;
        let no = t.body["no"].as_str().expect("no").to_string();
        let a = app.post(&admin, &format!("/api/tickets/{no}/reason"), json!({"code": "TAKE", "assignee_id": op.0})).await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        app.post(&admin, &format!("/api/tickets/{no}/reason"), json!({"code": "SOLVE"})).await;
        let out = app.get(&admin, &format!("/api/tickets/{no}/outbox")).await;
        let req = out.body.as_array().and_then(|a| a.iter().find(|m| m["kind"] == "feedback_request")).cloned().expect("feedback request");
        let text = req["text"].as_str().expect("text").to_string();
        let link3 = text.lines().find(|l| l.trim_start().starts_with("3 ")).and_then(|l| l.split_once("http://")).map(|(_, u)| u.trim().to_string()).expect("link");
        let path = format!("/{}", link3.split_once('/').map(|(_, p)| p).expect("path"));
        assert!(path.starts_with("/feedback/"), "{path}");
        let anon = Session::default();

        let page = app.get(&anon, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        assert!(page.text.contains("<form method=\"post\">") && page.text.contains("name=\"comment\""), "{}", page.text);
        assert!(page.text.contains("3 of 5"));
        assert!(page.headers.get("content-security-policy").is_some());
        assert_eq!(page.headers.get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"));
        let rep = app.get(&admin, "/api/feedback-report").await;
        assert_eq!(rep.body[0]["rated"], 0, "opening the page records nothing: {}", rep.text);

        let done = app.raw(&anon, Method::POST, &path, "application/x-www-form-urlencoded", b"comment=%3Cscript%3Ealert(1)%3C%2Fscript%3E+quick+%26+kind".to_vec()).await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.text);
        assert!(done.text.contains("&lt;script&gt;alert(1)&lt;/script&gt; quick &amp; kind"), "{}", done.text);
        assert!(!done.text.contains("<script>"));
        let rep = app.get(&admin, "/api/feedback-report").await;
        assert_eq!(rep.body[0]["rated"], 1, "{}", rep.text);
        assert_eq!(rep.body[0]["operator_id"], op.0, "per operator: {}", rep.text);
        assert_eq!(rep.body[0]["centre_id"], c, "per centre");
        assert_eq!(rep.body[0]["distribution"], json!([0, 0, 1, 0, 0]));
        let d = app.get(&admin, &format!("/api/tickets/{no}")).await;
        let ev = d.body["events"].as_array().and_then(|e| e.iter().find(|e| e["action"] == "feedback")).cloned().expect("feedback event");
        assert!(ev["details"].to_string().contains("<script>alert(1)</script> quick & kind"), "the comment is stored as written: {ev}");

        let forged = path.replacen(".3.", ".5.", 1);
        let bad = app.get(&anon, &forged).await;
        assert_eq!(bad.status, StatusCode::FORBIDDEN);
        assert!(bad.text.contains("not valid"));
        let bad = app.raw(&anon, Method::POST, &forged, "application/x-www-form-urlencoded", b"comment=x".to_vec()).await;
        assert_eq!(bad.status, StatusCode::FORBIDDEN);
        let rep = app.get(&admin, "/api/feedback-report").await;
        assert_eq!(rep.body[0]["distribution"], json!([0, 0, 1, 0, 0]), "a forged post changes nothing");
    })
    .await;
}

/// Attachments download only for actors who may see the ticket; the
/// tickets list filters by requester party.
#[tokio::test]
async fn attachments_and_party_filter() {
    each_app(|app| async move {
        app.user("boss", "admin", None).await;
        app.user("other", "support", None).await;
        let lead = app.user("lead", "supervisor", None).await;
        let team = app.store.create_team(&Actor::system(), crm::auth::NewTeam { name: "T".into(), parent_id: None, lead_user_id: Some(lead) }).await.expect("team").id;
        let mine = app.user("mine", "support", Some(team)).await;
        let admin = app.login("boss").await;
        let c = centre(&app, &admin, json!({})).await;
        let mut m = mail("att1@cust.example", "Invoice attached", "carla@cust.example");
        m.attachments = vec![MailAttachment { filename: Some("fattura è.pdf".into()), content_type: "text/html".into(), data: b"<script>alert(1)</script>".to_vec() }];
        let first = inbound(&app, c, 1, m).await;
        inbound(&app, c, 2, mail("other1@else.example", "Unrelated", "dino@else.example")).await;
        let no = first.ticket.to_string();
        app.post(&admin, "/api/reason-codes", json!({"code": "TAKE", "name": "Assign", "action": "assign"})).await;
        app.post(&admin, &format!("/api/tickets/{no}/reason"), json!({"code": "TAKE", "assignee_id": mine.0, "team_id": team.0})).await;

        let d = app.get(&admin, &format!("/api/tickets/{no}")).await;
        let att = d.body["messages"][0]["attachments"][0].clone();
        let id = att["id"].as_i64().expect("attachment id");
        let url = format!("/api/tickets/{no}/attachments/{id}");
        let me = app.login("mine").await;
        let got = app.get(&me, &url).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.text);
        assert_eq!(got.text, "<script>alert(1)</script>");
        assert_eq!(got.headers.get("content-type").and_then(|v| v.to_str().ok()), Some("application/octet-stream"), "never rendered as HTML");
        let cd = got.headers.get("content-disposition").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(cd.starts_with("attachment;") && cd.contains("UTF-8''fattura%20%C3%A8.pdf"), "{cd}");
        let other = app.login("other").await;
        app.get(&other, &url).await.problem(403);
        app.get(&Session::default(), &url).await.problem(401);
        app.get(&admin, &format!("/api/tickets/{no}/attachments/{}", id + 1000)).await.problem(404);

        // Party filter: the requester (a company id also matches its people).
        let requester = app.get(&admin, &format!("/api/tickets/{no}")).await.body["ticket"]["requester_id"].as_i64().expect("requester");
        let q = app.get(&admin, &format!("/api/tickets?queue=all&party={requester}")).await;
        assert_eq!(q.body["total"], 1, "{}", q.text);
        assert_eq!(q.body["items"][0]["no"], no);
        let all = app.get(&admin, "/api/tickets?queue=all").await;
        assert_eq!(all.body["total"], 2);
        assert_eq!(app.get(&admin, "/api/tickets?queue=all&party=999999").await.body["total"], 0);
        app.get(&admin, "/api/tickets?queue=all&party=abc").await.problem(422);
    })
    .await;
}

#[tokio::test]
async fn knowledge_base_search_and_public_view() {
    each_app(|app| async move {
        app.user("rep", "support", None).await;
        let rep = app.login("rep").await;
        let a = app.post(&rep, "/api/kb/articles", json!({"title": "Printer paper jam", "body": "Open the rear tray and pull the sheet.", "visibility": "public"})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let i = app.post(&rep, "/api/kb/articles", json!({"title": "Printer firmware", "body": "Internal: flash with the service tool."})).await;
        assert_eq!(i.body["visibility"], "internal");
        let all = app.get(&rep, "/api/kb/search?q=printer").await;
        assert_eq!(all.body.as_array().map(Vec::len), Some(2), "{}", all.text);
        let anon = Session::default();
        let public = app.get(&anon, "/api/public/kb/search?q=printer").await;
        assert_eq!(public.body.as_array().map(Vec::len), Some(1), "{}", public.text);
        assert_eq!(public.body[0]["title"], "Printer paper jam");
        assert_eq!(app.get(&anon, "/api/public/kb/search?q=rear%20tray").await.body.as_array().map(Vec::len), Some(1));
        assert_eq!(app.get(&anon, "/api/public/kb/search?q=%22%20OR%20*").await.status, StatusCode::OK, "query syntax is never interpreted");
        app.get(&anon, &format!("/api/public/kb/articles/{}", i.body["id"])).await.problem(404);
        app.get(&anon, "/api/kb/search?q=printer").await.problem(401);
    })
    .await;
}

#[tokio::test]
async fn wrong_role_or_team_is_forbidden() {
    each_app(|app| async move {
        let sys = Actor::system();
        app.user("boss", "admin", None).await;
        let lead = app.user("lead", "supervisor", None).await;
        let team = app.store.create_team(&sys, crm::auth::NewTeam { name: "A".into(), parent_id: None, lead_user_id: Some(lead) }).await.expect("team").id;
        let mine = app.user("mine", "support", Some(team)).await;
        app.user("other", "support", None).await;
        app.user("ag", "agent", None).await;
        app.user("mk", "marketer", None).await;
        let admin = app.login("boss").await;
        let c = centre(&app, &admin, json!({})).await;
        app.post(&admin, "/api/reason-codes", json!({"code": "TAKE", "name": "Assign", "action": "assign"})).await;
        let t = app.post(&admin, "/api/tickets", json!({"centre_id": c, "subject": "vpn"})).await;
        let no = t.body["no"].as_str().expect("no").to_string();
        let a = app.post(&admin, &format!("/api/tickets/{no}/reason"), json!({"code": "TAKE", "assignee_id": mine.0, "team_id": team.0})).await;
        assert_eq!(a.body["assignee_id"], mine.0, "{}", a.text);
        for who in ["ag", "mk"] {
            let s = app.login(who).await;
            app.get(&s, "/api/tickets").await.problem(403);
            app.get(&s, &format!("/api/tickets/{no}")).await.problem(403);
            app.post(&s, "/api/kb/articles", json!({"title": "x", "body": "y"})).await.problem(403);
        }
        let other = app.login("other").await;
        app.get(&other, &format!("/api/tickets/{no}")).await.problem(403);
        app.post(&other, &format!("/api/tickets/{no}/reply"), json!({"text": "hi", "to": ["a@b.example"]})).await.problem(403);
        assert_eq!(app.get(&other, "/api/tickets?queue=all").await.body["total"], 0);
        let me = app.login("mine").await;
        assert_eq!(app.get(&me, "/api/tickets?queue=mine").await.body["total"], 1);
        let leader = app.login("lead").await;
        assert_eq!(app.get(&leader, &format!("/api/tickets/{no}")).await.status, StatusCode::OK);
        assert_eq!(app.get(&leader, "/api/tickets?queue=my_groups").await.body["total"], 1);
        app.get(&me, "/api/tickets?queue=everything").await.problem(422);
        app.post(&me, "/api/service-centres", json!({"name": "x"})).await.problem(403);
    })
    .await;
}
