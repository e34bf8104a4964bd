//! Mail out through Postfix into Dovecot: the auto-acknowledgement of a new
//! ticket is sent, lands in the customer's mailbox with the right headers,
//! is sent once, threads the customer's answer, and is recognised as our
//! own if it ever loops back in.

use crate::harness::*;
use crm::tickets::{Direction, OutboxKind, parse_ticket_message_id};
use mail_parser::MessageParser;
use mailgate::imap::sync_once;
use mailgate::smtp::{Mailer, drain_outbox};

#[tokio::test]
async fn auto_ack_goes_out_through_postfix_with_threading_headers() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Support").await;
            let inbox = folder("out");
            let customer_box = folder("cust");
            let customer = format!("customer+{customer_box}@{}", p.domain);
            let their_id = format!("ask-{}@customer.test", unique_suffix());
            p.append("support", &inbox, &simple_mail(&format!("Ada <{customer}>"), &their_id, "Cannot log in", "", "Help please.")).await;
            let r = sync_once(store.clone(), p.mailbox("support", &inbox, centre), opts(), false).await.expect("sync");
            let t = r.tickets[0].1;

            let mailer = Mailer::new(&p.smtp(), LOOP_TOKEN).expect("mailer");
            let sent = drain_outbox(&store, &mailer, 5, crm::now_ms()).await.expect("drain");
            assert_eq!(sent.sent, 1, "{}: {sent:?}", ts.name);
            // Sent once: a second drain finds nothing.
            let again = drain_outbox(&store, &mailer, 5, crm::now_ms()).await.expect("drain");
            assert_eq!(again.sent, 0);

            let got = p.wait_for("customer", &customer_box, 1).await;
            assert_eq!(got.len(), 1, "delivered exactly once");
            let raw = &got[0];
            let msg = MessageParser::default().parse(raw).expect("parse delivered");
            let header = |n: &str| msg.headers_raw().find(|(k, _)| k.eq_ignore_ascii_case(n)).map(|(_, v)| v.trim().to_string());

            let secret = store.support_secret().await.expect("secret");
            let mid = msg.message_id().expect("Message-ID").to_string();
            assert_eq!(parse_ticket_message_id(&mid, &secret), Some(t), "our signed Message-ID names the ticket");
            assert_eq!(header("In-Reply-To").as_deref(), Some(format!("<{their_id}>").as_str()));
            assert!(header("References").unwrap_or_default().contains(&their_id));
            assert_eq!(header("Auto-Submitted").as_deref(), Some("auto-replied"));
            assert_eq!(header("X-Centralino-Loop").as_deref(), Some(LOOP_TOKEN));
            assert!(msg.subject().unwrap_or("").contains(&t.subject_tag()));
            // RFC 3834: automatic mail goes out with a null envelope sender.
            assert_eq!(header("Return-Path").as_deref(), Some("<>"));
            let body = msg.body_text(0).unwrap_or_default().to_string();
            assert!(body.contains(&format!("-- Ticket {t}")), "history summary at the foot: {body}");
            assert!(body.contains("Help please."), "the foot lists the customer's message: {body}");

            // The history records the sent copy.
            let d = detail(&store, t).await;
            let out: Vec<_> = d.messages.iter().filter(|m| m.direction == Direction::Out).collect();
            assert_eq!(out.len(), 1);
            assert_eq!(out[0].send_status.as_deref(), Some("sent"));
            assert!(d.events.iter().any(|e| e.action == "mail_sent"));

            // The customer answers our mail: it threads by our Message-ID.
            p.append(
                "support",
                &inbox,
                &simple_mail(&format!("Ada <{customer}>"), &format!("re-{}@customer.test", unique_suffix()), "Re: thanks", &format!("In-Reply-To: <{mid}>\r\n"), "Solved, thanks"),
            )
            .await;
            // Our own acknowledgement loops back into the support mailbox
            // (a forwarding rule gone wrong): recognised, not acknowledged.
            p.append("support", &inbox, raw).await;
            let r = sync_once(store.clone(), p.mailbox("support", &inbox, centre), opts(), false).await.expect("sync");
            assert_eq!(r.handled, 2);
            assert_eq!(r.tickets[0].1, t, "the answer joins the ticket");
            let d = detail(&store, t).await;
            let acks = store.ticket_outbox(t).await.expect("outbox").iter().filter(|m| m.kind == OutboxKind::AutoAck).count();
            assert_eq!(acks, 1, "no acknowledgement of an answer or of our own mail");
            assert!(d.messages.iter().filter(|m| m.direction == Direction::In).count() >= 2);
            let looped = r.tickets[1].1;
            let ld = detail(&store, looped).await;
            let lm = ld.messages.iter().rev().find(|m| m.direction == Direction::In).expect("looped message");
            assert!(lm.is_auto, "our own mail coming back is automatic");
        }
    })
    .await;
}

#[tokio::test]
async fn a_failing_relay_keeps_the_mail_queued_with_the_same_message_id() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Support").await;
            let inbox = folder("retry");
            let customer_box = folder("custr");
            let customer = format!("customer+{customer_box}@{}", p.domain);
            p.append("support", &inbox, &simple_mail(&customer, &format!("r-{}@customer.test", unique_suffix()), "Question", "", "?")).await;
            let r = sync_once(store.clone(), p.mailbox("support", &inbox, centre), opts(), false).await.expect("sync");
            let t = r.tickets[0].1;
            let before = store.ticket_outbox(t).await.expect("outbox");
            assert_eq!(before.len(), 1);

            // A relay that is down: the row stays queued for a retry.
            let mut dead = p.smtp();
            dead.port = 1;
            dead.timeout = std::time::Duration::from_secs(2);
            let down = Mailer::new(&dead, LOOP_TOKEN).expect("mailer");
            let rep = drain_outbox(&store, &down, 5, crm::now_ms()).await.expect("drain");
            assert_eq!(rep.retrying, 1, "{}: {rep:?}", ts.name);
            let after = store.ticket_outbox(t).await.expect("outbox");
            assert_eq!(after[0].attempts, 1);
            assert_eq!(after[0].message_id, before[0].message_id);

            // Later, with the relay back: sent once, with the same Message-ID.
            let up = Mailer::new(&p.smtp(), LOOP_TOKEN).expect("mailer");
            let later = crm::now_ms() + 2 * 3_600_000;
            let rep = drain_outbox(&store, &up, 5, later).await.expect("drain");
            assert_eq!(rep.sent, 1, "{rep:?}");
            let got = p.wait_for("customer", &customer_box, 1).await;
            let msg = MessageParser::default().parse(&got[0]).expect("parse");
            assert_eq!(msg.message_id(), Some(before[0].message_id.as_str()));
        }
    })
    .await;
}

/// A rep answers the customer (HTML and text) and writes to an outside
/// consultant from inside the ticket; both go out through Postfix with our
/// threading headers, and the consultant's answer joins the ticket.
#[tokio::test]
async fn replies_to_the_customer_and_a_consultant_thread_back() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Support").await;
            let inbox = folder("rep");
            let customer_box = folder("repc");
            let consultant_box = folder("repx");
            let customer = format!("customer+{customer_box}@{}", p.domain);
            let consultant = format!("consultant+{consultant_box}@{}", p.domain);
            let their_id = format!("q-{}@customer.test", unique_suffix());
            p.append("support", &inbox, &simple_mail(&format!("Ada <{customer}>"), &their_id, "Printer jams", "", "Paper jams on page 2.")).await;
            let r = sync_once(store.clone(), p.mailbox("support", &inbox, centre), opts(), false).await.expect("sync");
            let t = r.tickets[0].1;
            let mailer = Mailer::new(&p.smtp(), LOOP_TOKEN).expect("mailer");

            let now = crm::now_ms();
            let reply = |to: Vec<String>, text: &str, html: Option<&str>| crm::tickets::ReplyInput {
                text: text.into(),
                html: html.map(str::to_string),
                cc: vec![],
                to,
                internal: false,
                state: None,
            };
            store.reply_ticket(&crm::Actor::system(), t, reply(vec![], "Please try the rear tray.", Some("<p>Please try the <b>rear</b> tray.</p>")), now).await.expect("reply");
            store.reply_ticket(&crm::Actor::system(), t, reply(vec![consultant.clone()], "Could you check this model?", None), now).await.expect("consultant");
            let sent = drain_outbox(&store, &mailer, 5, crm::now_ms()).await.expect("drain");
            assert_eq!(sent.sent, 3, "{}: auto-ack, reply, consultant: {sent:?}", ts.name);

            let secret = store.support_secret().await.expect("secret");
            // The customer gets the acknowledgement and the reply.
            let got = p.wait_for("customer", &customer_box, 2).await;
            let replies: Vec<_> = got.iter().filter_map(|raw| MessageParser::default().parse(raw)).filter(|m| m.header_raw("Auto-Submitted").is_none()).collect();
            assert_eq!(replies.len(), 1);
            let m = &replies[0];
            assert_eq!(parse_ticket_message_id(m.message_id().unwrap_or(""), &secret), Some(t));
            assert_eq!(m.header_raw("In-Reply-To").map(str::trim), Some(format!("<{their_id}>").as_str()));
            assert!(m.subject().unwrap_or("").contains(&t.subject_tag()));
            assert!(m.body_html(0).unwrap_or_default().contains("<b>rear</b>"), "multipart/alternative with HTML");
            assert!(m.body_text(0).unwrap_or_default().contains("Please try the rear tray."));

            // The consultant gets the question with the thread's references.
            let got = p.wait_for("consultant", &consultant_box, 1).await;
            let c = MessageParser::default().parse(&got[0]).expect("parse");
            let cid = c.message_id().expect("id").to_string();
            assert_eq!(parse_ticket_message_id(&cid, &secret), Some(t));
            assert!(c.header_raw("References").unwrap_or("").contains(&their_id), "references the customer's mail");
            let body = c.body_text(0).unwrap_or_default().to_string();
            assert!(body.contains("Could you check this model?") && body.contains("Paper jams on page 2."), "question and history: {body}");

            // The consultant answers with a plain "Re:" subject: threads by In-Reply-To.
            p.append(
                "support",
                &inbox,
                &simple_mail(&consultant, &format!("c-{}@gw.test", unique_suffix()), "Re: a question", &format!("In-Reply-To: <{cid}>\r\nReferences: <{cid}>\r\n"), "Known issue; replace the roller."),
            )
            .await;
            let r = sync_once(store.clone(), p.mailbox("support", &inbox, centre), opts(), false).await.expect("sync");
            assert_eq!(r.tickets[0].1, t, "{}: the consultant's answer joins the ticket", ts.name);
            let d = detail(&store, t).await;
            let out_sent = d.messages.iter().filter(|m| m.direction == Direction::Out && m.send_status.as_deref() == Some("sent")).count();
            assert_eq!(out_sent, 3, "every sent copy is in the history");
        }
    })
    .await;
}
