//! The support outbox under two senders and a crash: a row is claimed
//! under a lease before it is sent, so two senders draining at once send
//! every mail once, and a row held by a sender that died goes out after
//! the lease with the same Message-ID.

use crate::harness::*;
use mail_parser::MessageParser;
use mailgate::imap::sync_once;
use mailgate::smtp::{Mailer, OUTBOX_LEASE_MS, drain_outbox};

#[tokio::test]
async fn two_senders_send_each_mail_once_and_a_dead_senders_lease_expires() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Support").await;
            let inbox = folder("lease");
            let customer_box = folder("custl");
            // Six new tickets, each with an auto-acknowledgement queued.
            for i in 0..6 {
                let from = format!("Ada <customer+{customer_box}@{}>", p.domain);
                p.append("support", &inbox, &simple_mail(&from, &format!("l{i}-{}@customer.test", unique_suffix()), &format!("Question {i}"), "", "?")).await;
            }
            let r = sync_once(store.clone(), p.mailbox("support", &inbox, centre), opts(), false).await.expect("sync");
            assert_eq!(r.created, 6, "{}", ts.name);

            // Two senders drain the same outbox at the same time.
            let a = Mailer::new(&p.smtp(), LOOP_TOKEN).expect("mailer");
            let b = Mailer::new(&p.smtp(), LOOP_TOKEN).expect("mailer");
            let now = crm::now_ms();
            let (ra, rb) = tokio::join!(drain_outbox(&store, &a, 0, now), drain_outbox(&store, &b, 0, now));
            let (ra, rb) = (ra.expect("drain a"), rb.expect("drain b"));
            assert_eq!(ra.sent + rb.sent, 6, "{}: {ra:?} {rb:?}", ts.name);
            let got = p.wait_for("customer", &customer_box, 6).await;
            // Give a duplicate the time to arrive, then count again.
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let got2 = p.wait_for("customer", &customer_box, 6).await;
            assert_eq!(got.len(), 6);
            assert_eq!(got2.len(), 6, "no mail was delivered twice");

            // A sender claims the next mail and dies before sending it.
            let t = r.tickets[0].1;
            let input = crm::tickets::ReplyInput { text: "Here is the answer.".into(), html: None, cc: vec![], to: vec![], internal: false, state: None };
            store.reply_ticket(&crm::Actor::system(), t, input, crm::now_ms()).await.expect("reply");
            let queued = store.pending_outbound(crm::now_ms(), 10).await.expect("pending");
            assert_eq!(queued.len(), 1);
            let now = crm::now_ms();
            let held = store.claim_outbound("dead-sender", now, OUTBOX_LEASE_MS, 10).await.expect("claim");
            assert_eq!(held.len(), 1);
            // While the lease runs, nobody else sends it.
            let rep = drain_outbox(&store, &a, 0, now + 1_000).await.expect("drain");
            assert_eq!(rep.sent, 0, "{rep:?}");
            assert!(store.claim_outbound("other", now + 1_000, OUTBOX_LEASE_MS, 10).await.expect("claim").is_empty());
            // After the lease, it goes out once, with the Message-ID it had.
            let rep = drain_outbox(&store, &a, 0, now + OUTBOX_LEASE_MS + 1).await.expect("drain");
            assert_eq!(rep.sent, 1, "{rep:?}");
            let got = p.wait_for("customer", &customer_box, 7).await;
            let ids: Vec<String> = got.iter().filter_map(|m| MessageParser::default().parse(m).and_then(|m| m.message_id().map(str::to_string))).collect();
            assert!(ids.contains(&held[0].message_id), "sent with the claimed row's Message-ID");
            let rep = drain_outbox(&store, &a, 0, now + 2 * OUTBOX_LEASE_MS).await.expect("drain");
            assert_eq!(rep.sent, 0, "sent rows are never claimed again");
        }
    })
    .await;
}
