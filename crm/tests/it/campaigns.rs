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
