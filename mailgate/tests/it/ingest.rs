//! End to end through Dovecot: fixtures are APPENDed to a fresh IMAP
//! folder, read by the gateway's IMAP driver into a fresh store, and the
//! resulting tickets and threads are checked.

use crate::harness::*;
use crm::tickets::{Direction, OutboxKind, TicketNo};
use mailgate::imap::sync_once;

const FIXTURES: &[&str] = &[
    "latin1.eml",
    "cp1252.eml",
    "iso2022jp.eml",
    "gb18030.eml",
    "broken_charset.eml",
    "unknown_charset.eml",
    "alternative.eml",
    "html_only.eml",
    "attachments.eml",
    "autoreply.eml",
    "bulk.eml",
    "dsn.eml",
    "injection.eml",
    "mime_entity_only.eml",
    "sender_fallback.eml",
    "return_path_only.eml",
    "null_return_path.eml",
];

#[tokio::test]
async fn fixtures_become_tickets() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Support").await;
            let f = folder("fx");
            for name in FIXTURES {
                p.append("support", &f, &fixture(name)).await;
            }
            let r = sync_once(store.clone(), p.mailbox("support", &f, centre), opts(), false).await.expect("sync");
            assert_eq!(r.handled, FIXTURES.len(), "{}", ts.name);
            assert_eq!(r.created, FIXTURES.len(), "{}: every fixture is its own ticket", ts.name);
            let ticket_of = |name: &str| -> TicketNo {
                let i = FIXTURES.iter().position(|n| *n == name).expect("fixture");
                r.tickets[i].1
            };

            let d = detail(&store, ticket_of("latin1.eml")).await;
            assert_eq!(d.ticket.subject, "Caffè rotto");
            assert_eq!(d.ticket.requester_email.as_ref().map(|a| a.as_str()), Some("ada@customer.test"));
            assert!(d.messages[0].text.contains("perché"));
            let outbox = store.ticket_outbox(d.ticket.no).await.expect("outbox");
            assert!(outbox.iter().any(|m| m.kind == OutboxKind::AutoAck && m.auto_submitted), "a person gets an acknowledgement");

            // No usable From: the author comes from Sender or Return-Path.
            let d = detail(&store, ticket_of("sender_fallback.eml")).await;
            assert_eq!(d.ticket.requester_email.as_ref().map(|a| a.as_str()), Some("assistant@customer.test"));
            assert!(d.messages[0].flags.iter().any(|f| f == "sender-fallback"), "{:?}", d.messages[0].flags);
            let d = detail(&store, ticket_of("return_path_only.eml")).await;
            assert_eq!(d.ticket.requester_email.as_ref().map(|a| a.as_str()), Some("envelope@customer.test"));
            // Only MIME headers: the body and the attachment, not "unparsable".
            let d = detail(&store, ticket_of("mime_entity_only.eml")).await;
            assert!(d.messages[0].text.contains("Only MIME headers"));
            assert!(!d.messages[0].flags.iter().any(|f| f == "unparsable"), "{:?}", d.messages[0].flags);
            assert_eq!(d.messages[0].attachments.len(), 1);

            let d = detail(&store, ticket_of("iso2022jp.eml")).await;
            assert_eq!(d.ticket.subject, "プリンターの故障");
            let d = detail(&store, ticket_of("gb18030.eml")).await;
            assert!(d.messages[0].text.contains("我的发票有错误"));
            let d = detail(&store, ticket_of("cp1252.eml")).await;
            assert!(d.messages[0].text.contains("“100 €”"));

            let d = detail(&store, ticket_of("alternative.eml")).await;
            let m = &d.messages[0];
            assert!(m.text.starts_with("It still fails") && !m.text.contains("wrote:"), "{:?}", m.text);
            let html = m.html.clone().unwrap_or_default();
            assert!(html.contains("<b>fails</b>") && !html.contains("script") && !html.contains("onclick"), "{html}");

            let d = detail(&store, ticket_of("attachments.eml")).await;
            let names: Vec<String> = d.messages[0].attachments.iter().filter_map(|a| a.filename.clone()).collect();
            assert_eq!(names, ["résumé final.pdf", "schermata è.png", "winmail.dat"]);
            assert!(d.messages[0].flags.iter().any(|f| f == "tnef"));

            for machine in ["autoreply.eml", "bulk.eml", "dsn.eml"] {
                let d = detail(&store, ticket_of(machine)).await;
                assert!(d.messages[0].is_auto, "{machine} is automatic");
                let outbox = store.ticket_outbox(d.ticket.no).await.expect("outbox");
                assert!(outbox.iter().all(|m| m.kind != OutboxKind::AutoAck), "{machine} must not be acknowledged");
            }

            let d = detail(&store, ticket_of("injection.eml")).await;
            assert!(!d.ticket.subject.contains('\r') && !d.ticket.subject.contains('\n'), "{:?}", d.ticket.subject);
        }
    })
    .await;
}

#[tokio::test]
async fn replies_thread_into_their_ticket() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Support").await;
            let f = folder("thr");
            let sync = || sync_once(store.clone(), p.mailbox("support", &f, centre), opts(), false);

            let first_id = format!("first-{}@customer.test", unique_suffix());
            p.append("support", &f, &simple_mail("Ada <ada@customer.test>", &first_id, "Printer broken", "", "It jams.")).await;
            let r = sync().await.expect("sync");
            let t = r.tickets[0].1;

            // Only References (no In-Reply-To), the parent among unrelated ids.
            let n = unique_suffix();
            p.append("support", &f, &template("reply_references_only.eml.tmpl", &[("PARENT", &first_id), ("N", &n)])).await;
            // Only the subject tag.
            p.append("support", &f, &template("reply_subject_tag.eml.tmpl", &[("TAG", &t.subject_tag()), ("N", &n)])).await;
            // In-Reply-To our own signed Message-ID (the auto-acknowledgement's),
            // even with a subject that says nothing.
            let ack = store.ticket_outbox(t).await.expect("outbox").into_iter().find(|m| m.kind == OutboxKind::AutoAck).expect("auto-ack");
            p.append(
                "support",
                &f,
                &simple_mail("Ada <ada@customer.test>", &format!("signed-{n}@customer.test"), "thanks", &format!("In-Reply-To: <{}>\r\n", ack.message_id), "ok"),
            )
            .await;
            // A forged signed id must not thread (and opens its own ticket).
            let forged = ack.message_id.replacen(&format!("t{}.", t.get()), "t999.", 1);
            p.append(
                "support",
                &f,
                &simple_mail("Eve <eve@customer.test>", &format!("forged-{n}@customer.test"), "hello", &format!("In-Reply-To: <{forged}>\r\n"), "x"),
            )
            .await;
            // Unrelated: a new ticket.
            p.append("support", &f, &simple_mail("Bob <bob@customer.test>", &format!("new-{n}@customer.test"), "Other thing", "", "hi")).await;

            let r = sync().await.expect("sync");
            assert_eq!(r.handled, 5, "{}", ts.name);
            assert_eq!(r.tickets[0].1, t, "References only");
            assert_eq!(r.tickets[1].1, t, "subject tag only");
            assert_eq!(r.tickets[2].1, t, "our signed Message-ID");
            assert_ne!(r.tickets[3].1, t, "a forged id does not thread");
            assert_ne!(r.tickets[4].1, t, "unrelated mail opens a ticket");
            assert_eq!(r.created, 2);

            let d = detail(&store, t).await;
            let inbound = d.messages.iter().filter(|m| m.direction == Direction::In).count();
            assert_eq!(inbound, 4, "the first mail and three replies");
            // Nothing new to read: a second pass is empty.
            let again = sync().await.expect("sync");
            assert_eq!(again.handled, 0);
        }
    })
    .await;
}

/// The whole gateway as the composition root starts it: a reader in IDLE
/// picks a new mail up within moments, the sender answers it through
/// Postfix, and the shutdown signal stops both.
#[tokio::test]
async fn gateway_idles_ingests_sends_and_shuts_down() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Support").await;
            let inbox = folder("gw");
            let customer_box = folder("gwc");
            // The folder must exist before the reader selects it.
            p.append("support", &inbox, &simple_mail("Old <old@customer.test>", &format!("old-{}@customer.test", unique_suffix()), "old", "", "x")).await;
            let mut cfg = mailgate::GatewayConfig::new(LOOP_TOKEN);
            let mut mb = p.mailbox("support", &inbox, centre);
            mb.idle_timeout = std::time::Duration::from_secs(60);
            cfg.mailboxes.push(mb);
            cfg.smtp = Some(p.smtp());
            cfg.outbox_poll = std::time::Duration::from_millis(200);
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            let handle = mailgate::Gateway::new(store.clone(), cfg).spawn(shutdown).expect("spawn");

            // Let the reader reach IDLE, then deliver a new mail.
            while ticket_count(&store).await < 1 {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let customer = format!("customer+{customer_box}@{}", p.domain);
            let t0 = std::time::Instant::now();
            p.append("support", &inbox, &simple_mail(&customer, &format!("idle-{}@customer.test", unique_suffix()), "via idle", "", "hello")).await;
            while ticket_count(&store).await < 2 {
                assert!(t0.elapsed() < std::time::Duration::from_secs(10), "{}: IDLE did not report the new mail", ts.name);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            eprintln!("{}: mail to ticket through IDLE in {:?}", ts.name, t0.elapsed());
            // The acknowledgement reaches the customer through Postfix.
            let got = p.wait_for("customer", &customer_box, 1).await;
            assert_eq!(got.len(), 1);

            let _ = stop.send(true);
            tokio::time::timeout(std::time::Duration::from_secs(10), handle.join()).await.expect("the gateway stops on shutdown");
        }
    })
    .await;
}

/// Noise instead of a mail still becomes a ticket, flagged, with the raw
/// source attached; and one sender gets at most ten acknowledgements in
/// three hours however many tickets they open.
#[tokio::test]
async fn garbage_is_a_flagged_ticket_and_acks_are_rate_limited() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Support").await;
            let f = folder("rl");
            let garbage: Vec<u8> = (0..3000u32).map(|i| b"\x00\x01\xfe\xff<>@:;\r\n"[(i as usize * 7) % 11]).collect();
            p.append("support", &f, &garbage).await;
            let n = unique_suffix();
            for i in 0..12 {
                p.append("support", &f, &simple_mail("Busy <busy@customer.test>", &format!("rl-{n}-{i}@customer.test"), &format!("Issue {i}"), "", "x")).await;
            }
            let r = sync_once(store.clone(), p.mailbox("support", &f, centre), opts(), false).await.expect("sync");
            assert_eq!(r.handled, 13, "{}", ts.name);
            let d = detail(&store, r.tickets[0].1).await;
            let m = &d.messages[0];
            assert!(m.flags.iter().any(|x| x == "unparsable"), "{:?}", m.flags);
            assert_eq!(m.attachments.len(), 1, "the raw source is attached");
            let mut acks = 0;
            for (_, t) in &r.tickets[1..] {
                acks += store.ticket_outbox(*t).await.expect("outbox").iter().filter(|m| m.kind == OutboxKind::AutoAck).count();
            }
            assert_eq!(acks, crm::tickets::AUTO_ACK_LIMIT as usize, "{}: at most ten acknowledgements per sender", ts.name);
        }
    })
    .await;
}

/// Two mailboxes, each bound to its own service centre: a mail's ticket
/// belongs to the centre of the mailbox it arrived in.
#[tokio::test]
async fn each_mailbox_feeds_its_centre() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let support = centre(&store, "Support").await;
            let sales = store
                .create_centre(
                    &crm::Actor::system(),
                    crm::tickets::CentreInput {
                        name: "Sales".into(),
                        public: true,
                        team_id: None,
                        head_user_id: None,
                        calendar_id: None,
                        auto_ack: false,
                        mailboxes: vec!["sales@gw.test".into()],
                    },
                )
                .await
                .expect("centre")
                .id;
            let (fs, fb) = (folder("cs"), folder("cb"));
            let n = unique_suffix();
            p.append("support", &fs, &simple_mail("a@customer.test", &format!("s-{n}@customer.test"), "support question", "", "x")).await;
            p.append("sales", &fb, &simple_mail("a@customer.test", &format!("b-{n}@customer.test"), "sales question", "", "x")).await;
            let rs = sync_once(store.clone(), p.mailbox("support", &fs, support), opts(), false).await.expect("sync");
            let rb = sync_once(store.clone(), p.mailbox("sales", &fb, sales), opts(), false).await.expect("sync");
            assert_eq!(detail(&store, rs.tickets[0].1).await.ticket.centre_id, support, "{}", ts.name);
            let sales_ticket = rb.tickets[0].1;
            assert_eq!(detail(&store, sales_ticket).await.ticket.centre_id, sales);
            let acks = store.ticket_outbox(sales_ticket).await.expect("outbox").len();
            assert_eq!(acks, 0, "the sales centre does not acknowledge");
        }
    })
    .await;
}

/// A batch the store refuses (here: the mailbox's centre does not exist)
/// is handled one message at a time: each raw message is kept, listed for a
/// person, and the mailbox moves on instead of retrying it forever.
#[tokio::test]
async fn a_refused_batch_keeps_every_raw_message_and_moves_on() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let f = folder("poison");
            for i in 0..3 {
                p.append("support", &f, &simple_mail("ada@customer.test", &format!("p{i}-{}@customer.test", unique_suffix()), "Poison", "", "x")).await;
            }
            let cfg = p.mailbox("support", &f, crm::tickets::ServiceCentreId(999_999));
            let r = sync_once(store.clone(), cfg.clone(), opts(), false).await.expect("sync");
            assert_eq!((r.handled, r.quarantined), (0, 3), "{}: {r:?}", ts.name);
            let left = store.uningested_raw_mail(10).await.expect("uningested");
            assert_eq!(left.len(), 3, "every raw message is kept");
            let raw = store.raw_mail(left[0]).await.expect("raw");
            assert!(String::from_utf8_lossy(&raw.mail.raw).contains("Poison"));
            let again = sync_once(store.clone(), cfg, opts(), false).await.expect("sync again");
            assert_eq!(again.quarantined, 0, "the mailbox moved on: {again:?}");
            assert_eq!(ticket_count(&store).await, 0);
        }
    })
    .await;
}

/// Mails appended back to back, each as soon as the previous one is stored
/// (so the next `EXISTS` often arrives with the response to flagging the
/// previous one, not during IDLE), are each picked up at once: with the
/// fallback poll at a minute, a notification the reader missed would show
/// as a mail that takes a minute instead of Dovecot's half second.
#[tokio::test]
async fn no_new_mail_notification_is_missed_between_commands() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Support").await;
            let inbox = folder("race");
            let mut mb = p.mailbox("support", &inbox, centre);
            mb.idle_timeout = std::time::Duration::from_secs(60);
            mb.sync.poll = std::time::Duration::from_secs(60);
            let mut client = mailgate::imap::connect(&mb).await.expect("connect");
            client.create(&inbox).await.expect("create");
            let validity = i64::from(client.select(&inbox).await.expect("select").uid_validity.expect("uidvalidity"));
            let mut cfg = mailgate::GatewayConfig::new(LOOP_TOKEN);
            cfg.mailboxes.push(mb.clone());
            let (stop, shutdown) = tokio::sync::watch::channel(false);
            let handle = mailgate::Gateway::new(store.clone(), cfg).spawn(shutdown).expect("spawn");
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let mut slowest = std::time::Duration::ZERO;
            for i in 1..=50i64 {
                let raw = simple_mail("Ada <ada@customer.test>", &format!("race{i}-{}@customer.test", unique_suffix()), &format!("Race {i}"), "", "x");
                let t0 = std::time::Instant::now();
                client.append(&inbox, None, None, &raw).await.expect("append");
                while store.max_mail_uid(&mb.name, validity).await.expect("uid").unwrap_or(0) < i {
                    assert!(t0.elapsed() < std::time::Duration::from_secs(20), "{}: mail {i} was not picked up (a missed EXISTS)", ts.name);
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
                slowest = slowest.max(t0.elapsed());
            }
            eprintln!("{}: slowest of 50 back-to-back mails: {slowest:?}", ts.name);
            let _ = client.logout().await;
            let _ = stop.send(true);
            tokio::time::timeout(std::time::Duration::from_secs(10), handle.join()).await.expect("the gateway stops on shutdown");
        }
    })
    .await;
}
