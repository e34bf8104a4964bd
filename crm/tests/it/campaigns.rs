//! Campaign outbox: launch, lease-based claims that survive a crashed
//! sender without a second Message-ID, consent and suppression at send time,
//! hard and soft bounce suppression.
use crate::harness::{each_store, system};
use crm::campaigns::Outcome;
use crm::lists::{ListKind, NewList};
use crm::parties::{EmailInput, PartyInput};
use crm::{Channel, PartyId, Store};

async fn person(s: &Store, name: &str, email: &str, consent: bool) -> PartyId {
    let input = PartyInput {
        kind: "person".into(),
        name: Some(name.into()),
        emails: vec![EmailInput { address: email.into(), kind: None }],
        ..Default::default()
    };
    let id = s.create_party(&system(), input).await.unwrap().id;
    s.set_consent(&system(), id, Channel::Email, consent, "test").await.unwrap();
    id
}

#[tokio::test]
async fn outbox_claims_leases_and_suppression() {
    each_store(|t| async move {
        let s = &t.store;
        let a = person(s, "Anna", "anna@example.com", true).await;
        let b = person(s, "Bruno", "bruno@example.com", true).await;
        let c = person(s, "Carla", "carla@example.com", false).await;
        let list = s
            .create_list(&system(), NewList { name: "news".into(), description: None, kind: ListKind::Static, filter: None, party_ids: vec![a, b, c] })
            .await
            .unwrap();
        let camp = s.create_campaign("Spring", "leads", 50_000, None, 1_000).await.unwrap();
        let msg = s.add_campaign_message(camp.id, Channel::Email, "Hi", "Hello", "<p>Hello</p>", list.id, 1_000).await.unwrap();
        assert_eq!(s.launch_message(msg, "news.example.org", 2_000).await.unwrap(), 3, "{}", t.name);
        assert_eq!(s.launch_message(msg, "news.example.org", 2_001).await.unwrap(), 0, "launch is idempotent");

        // Carla has no consent: closed as suppressed at claim time.
        let first = s.claim_outbox(msg, 10, 60_000, 3_000).await.unwrap();
        assert_eq!(first.iter().map(|c| c.address.as_str()).collect::<Vec<_>>(), ["anna@example.com", "bruno@example.com"]);
        // Nothing else is claimable while the leases hold.
        assert!(s.claim_outbox(msg, 10, 60_000, 4_000).await.unwrap().is_empty());
        assert!(s.complete_outbox(first[0].outbox_id, Outcome::Sent, "250 ok", 5_000).await.unwrap());
        // The sender "crashes" before completing Bruno: after the lease the
        // row comes back with the same Message-ID.
        let again = s.claim_outbox(msg, 10, 60_000, 70_000).await.unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].message_key, first[1].message_key);
        assert_eq!(again[0].attempts, 2);
        // A late completion by the crashed sender after the re-claim wins
        // once only; a sent row never moves again.
        assert!(s.complete_outbox(again[0].outbox_id, Outcome::Sent, "250 ok", 71_000).await.unwrap());
        assert!(!s.complete_outbox(again[0].outbox_id, Outcome::Failed, "late", 72_000).await.unwrap());

        // A hard bounce suppresses Anna for every later send.
        assert!(s.record_bounce(first[0].outbox_id, "userunknown", true, 80_000).await.unwrap());
        let msg2 = s.add_campaign_message(camp.id, Channel::Email, "Again", "Hello", "", list.id, 90_000).await.unwrap();
        s.launch_message(msg2, "news.example.org", 90_000).await.unwrap();
        let second = s.claim_outbox(msg2, 10, 60_000, 91_000).await.unwrap();
        assert_eq!(second.iter().map(|c| c.address.as_str()).collect::<Vec<_>>(), ["bruno@example.com"]);
        let m = s.message_monitor(msg2).await.unwrap();
        assert_eq!((m.queued, m.suppressed), (1, 2));
        let m1 = s.message_monitor(msg).await.unwrap();
        assert_eq!((m1.sent, m1.suppressed), (2, 1));
        assert!(m1.events.contains(&("bounced_hard".into(), "userunknown".into(), 1)));
    })
    .await;
}

#[tokio::test]
async fn three_soft_bounces_in_five_messages_suppress() {
    each_store(|t| async move {
        let s = &t.store;
        let d = person(s, "Dora", "dora@example.com", true).await;
        let list = s.create_list(&system(), NewList { name: "d".into(), description: None, kind: ListKind::Static, filter: None, party_ids: vec![d] }).await.unwrap();
        let camp = s.create_campaign("Soft", "", 0, None, 1).await.unwrap();
        let mut suppressed = vec![];
        for i in 0..3 {
            let now = 1_000 * (i + 1);
            let m = s.add_campaign_message(camp.id, Channel::Email, "x", "x", "", list.id, now).await.unwrap();
            s.launch_message(m, "e.org", now).await.unwrap();
            let c = s.claim_outbox(m, 1, 10, now).await.unwrap();
            assert_eq!(c.len(), 1, "{}", t.name);
            s.complete_outbox(c[0].outbox_id, Outcome::Sent, "", now).await.unwrap();
            suppressed.push(s.record_bounce(c[0].outbox_id, "mailboxfull", false, now + 1).await.unwrap());
        }
        assert_eq!(suppressed, [false, false, true]);
    })
    .await;
}

fn ev(key: &str, o: &crm::campaigns::Claimed, msg: i64, kind: &str, detail: &str, machine: bool, at: i64) -> crm::campaigns::TrackEvent {
    crm::campaigns::TrackEvent { key: key.into(), outbox_id: o.outbox_id, message_id: msg, party_id: o.party_id.0, kind: kind.into(), detail: detail.into(), machine, at }
}

#[tokio::test]
async fn templates_are_checked_at_save_and_previewed_per_recipient() {
    use crm::campaigns_template::Template;
    each_store(|t| async move {
        let s = &t.store;
        let input = PartyInput {
            kind: "person".into(),
            name: Some("Anna Verdi".into()),
            first_name: Some("Anna".into()),
            city: Some("Torino".into()),
            emails: vec![EmailInput { address: "anna@example.com".into(), kind: None }],
            characteristics: [("settore".to_string(), "vini".to_string())].into(),
            ..Default::default()
        };
        let anna = s.create_party(&system(), input).await.unwrap().id;
        let list = s.create_list(&system(), NewList { name: "l".into(), description: None, kind: ListKind::Static, filter: None, party_ids: vec![anna] }).await.unwrap();
        let camp = s.create_campaign("T", "", 0, None, 1).await.unwrap();
        let bad = s.add_campaign_message(camp.id, Channel::Email, "Ciao {{ nome }}", "x", "", list.id, 1).await;
        match bad {
            Err(crm::Error::Invalid(f)) => assert_eq!((f[0].field.as_str(), f[0].reason.as_str()), ("subject", "unknown merge field \"nome\""), "{}", t.name),
            other => panic!("{other:?}"),
        }
        let msg = s.add_campaign_message(camp.id, Channel::Email, "Ciao {{ first_name }}", "Per {{ characteristics.settore }} a {{ city }}", "<p>{{ name }}</p>", list.id, 1).await.unwrap();
        let unsafe_html = Template { subject: "x".into(), text: "x".into(), html: "<a href=\"javascript:alert(1)\">x</a>".into() };
        assert!(matches!(s.save_template(&system(), msg, &unsafe_html).await, Err(crm::Error::Invalid(_))));
        let p = s.preview(&system(), msg, anna).await.unwrap();
        assert_eq!(p.subject, "Ciao Anna");
        assert_eq!(p.text, "Per vini a Torino");
        assert_eq!(p.html.as_deref(), Some("<p>Anna Verdi</p>"));
        s.launch_message(msg, "e.org", 2).await.unwrap();
        let ok = Template { subject: "x".into(), text: "y".into(), html: String::new() };
        assert!(matches!(s.save_template(&system(), msg, &ok).await, Err(crm::Error::Duplicate(_))), "a launched template is frozen");
    })
    .await;
}

#[tokio::test]
async fn events_monitor_lists_from_results_roi_and_complaint_guard() {
    each_store(|t| async move {
        let s = &t.store;
        let mut people = vec![];
        for i in 0..4 {
            people.push(person(s, &format!("P{i}"), &format!("p{i}@example.com"), true).await);
        }
        let list = s.create_list(&system(), NewList { name: "all".into(), description: None, kind: ListKind::Static, filter: None, party_ids: people.clone() }).await.unwrap();
        let camp = s.create_campaign("Autumn", "", 10_000, None, 1).await.unwrap();
        let msg = s.add_campaign_message(camp.id, Channel::Email, "Hi", "Hello", "", list.id, 1).await.unwrap();
        s.launch_message(msg, "e.org", 2).await.unwrap();
        let rows = s.claim_outbox(msg, 10, 60_000, 3).await.unwrap();
        for r in &rows {
            s.complete_outbox(r.outbox_id, Outcome::Sent, "250", 4).await.unwrap();
        }
        let (p0, p1, p2) = (&rows[0], &rows[1], &rows[2]);
        let events = vec![
            ev("a", p0, msg, "opened", "", false, 10),
            ev("b", p0, msg, "opened", "", false, 11),
            ev("c", p1, msg, "opened", "", true, 12),
            ev("d", p0, msg, "clicked", "2 https://shop.example/b", false, 13),
            ev("e", p1, msg, "clicked", "1 https://shop.example/a", true, 14),
            ev("f", p2, msg, "clicked", "1 https://shop.example/a", false, 15),
        ];
        assert_eq!(s.record_events(&events).await.unwrap(), 6, "{}", t.name);
        // A replay of the same events (the write-ahead file after a crash) adds nothing.
        assert_eq!(s.record_events(&events).await.unwrap(), 0);
        assert!(s.unsubscribe(p2.outbox_id, "one-click", 20).await.unwrap());
        assert!(!s.unsubscribe(p2.outbox_id, "one-click", 21).await.unwrap(), "idempotent");
        assert!(!s.has_consent(p2.party_id, Channel::Email).await.unwrap());

        let r = s.message_report(msg).await.unwrap();
        assert_eq!((r.sent, r.recipients), (4, 4));
        assert_eq!(r.opens, crm::campaigns_monitor::Opens { unique_human: 1, total_human: 2, unique_machine: 1, total_machine: 1 });
        assert_eq!(r.clicks.len(), 2);
        assert_eq!((r.clicks[0].index, r.clicks[0].unique_human, r.clicks[0].machine), (1, 1, 1));
        assert_eq!((r.clicks[1].index, r.clicks[1].url.as_str(), r.clicks[1].unique_human), (2, "https://shop.example/b", 1));
        assert_eq!(r.unsubscribed, 1);

        let tl = s.recipient_timeline(&system(), p0.party_id).await.unwrap();
        assert_eq!(tl.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(), ["sent", "opened", "opened", "clicked"]);

        use crm::campaigns_monitor::{ResultsQuery, Selector};
        let l = s.list_from_results(&system(), msg, ResultsQuery { name: "clicked 1 not opened".into(), include: Selector::Clicked { link: Some(1) }, exclude: Some(Selector::Opened) }).await.unwrap();
        assert_eq!(s.list_member_ids(&system(), l.id).await.unwrap(), vec![p2.party_id]);
        let l = s.list_from_results(&system(), msg, ResultsQuery { name: "not opened".into(), include: Selector::NotOpened, exclude: None }).await.unwrap();
        assert_eq!(s.list_member_ids(&system(), l.id).await.unwrap().len(), 3, "machine opens are not opens");

        // ROI: a deal won by a recipient after the send.
        let deal = s
            .create_deal(&system(), serde_json::from_value(serde_json::json!({"party_id": p0.party_id, "title": "Order", "value_cents": 25_000})).unwrap())
            .await
            .unwrap();
        s.update_deal(&system(), deal.id, serde_json::from_value(serde_json::json!({"version": deal.version, "status": "won"})).unwrap()).await.unwrap();
        let roi = s.campaign_roi(camp.id).await.unwrap();
        assert_eq!((roi.won_deals, roi.won_value_cents, roi.roi), (1, 25_000, Some(1.5)));

        // One complaint in four sent is far above 0.3%: alarm and pause.
        let c = s.record_complaint(p1.outbox_id, 30).await.unwrap();
        assert!(c.alarm && c.paused, "{c:?}");
        let alarms = s.campaign_alarms(camp.id).await.unwrap();
        assert_eq!(alarms.iter().map(|a| a.kind.as_str()).collect::<Vec<_>>(), ["complaint_rate", "paused"]);
        let msg2 = s.add_campaign_message(camp.id, Channel::Email, "Again", "x", "", list.id, 40).await.unwrap();
        s.launch_message(msg2, "e.org", 41).await.unwrap();
        assert!(s.claim_outbox(msg2, 10, 1000, 42).await.unwrap().is_empty(), "a paused campaign sends nothing");
        s.resume_campaign(&system(), camp.id).await.unwrap();
        // Unsubscribed and complained parties are suppressed at send time.
        let claimed = s.claim_outbox(msg2, 10, 1000, 43).await.unwrap();
        assert_eq!(claimed.len(), 2);
    })
    .await;
}
