//! The support desk store: business-hours arithmetic (weekends, holidays,
//! DST), the mail contract (raw store, idempotent ingest, threading by
//! signed Message-ID, stored Message-ID and subject tag, auto-ack limits),
//! split tickets and scheduled rules.

use crate::harness::{each_store, system};
use chrono::TimeZone;
use crm::tickets::*;
use crm::{EmailAddress, Store};

fn rome(y: i32, m: u32, d: u32, h: u32, min: u32) -> i64 {
    chrono_tz::Europe::Rome.with_ymd_and_hms(y, m, d, h, min, 0).single().expect("local time").timestamp_millis()
}

fn office() -> BusinessCalendar {
    // Mon–Fri 9–13 and 14–18 in Rome; 25 Dec 2026 (a Friday) is a holiday.
    BusinessCalendar::weekdays("Europe/Rome", &[(540, 780), (840, 1080)], &["2026-12-25".into()]).expect("calendar")
}

const H: i64 = 3_600_000;

#[test]
fn business_time_skips_nights_lunch_and_weekends() {
    let c = office();
    // Monday 9 March 2026, 10:00 → 16:00 is 5 business hours (lunch skipped).
    assert_eq!(business_ms_between(&c, rome(2026, 3, 9, 10, 0), rome(2026, 3, 9, 16, 0)), 5 * H);
    // Friday 17:00 → Monday 10:00: one hour on Friday, one on Monday.
    assert_eq!(business_ms_between(&c, rome(2026, 3, 13, 17, 0), rome(2026, 3, 16, 10, 0)), 2 * H);
    // Reversed or empty intervals are zero; a Saturday is zero.
    assert_eq!(business_ms_between(&c, rome(2026, 3, 9, 16, 0), rome(2026, 3, 9, 10, 0)), 0);
    assert_eq!(business_ms_between(&c, rome(2026, 3, 14, 0, 0), rome(2026, 3, 15, 23, 0)), 0);
    // add: 4 business hours from Friday 16:00 → Monday 11:00.
    assert_eq!(add_business_ms(&c, rome(2026, 3, 13, 16, 0), 4 * H), rome(2026, 3, 16, 11, 0));
    // Starting outside hours counts from the next opening.
    assert_eq!(add_business_ms(&c, rome(2026, 3, 9, 7, 0), H), rome(2026, 3, 9, 10, 0));
    assert_eq!(add_business_ms(&c, rome(2026, 3, 9, 12, 30), H), rome(2026, 3, 9, 14, 30));
}

#[test]
fn holidays_are_closed() {
    let c = office();
    // Thursday 24 Dec 17:00 + 2h → Monday 28 Dec 10:00 (Friday 25 is a holiday).
    assert_eq!(add_business_ms(&c, rome(2026, 12, 24, 17, 0), 2 * H), rome(2026, 12, 28, 10, 0));
    assert_eq!(business_ms_between(&c, rome(2026, 12, 25, 0, 0), rome(2026, 12, 26, 0, 0)), 0);
}

#[test]
fn dst_changes_keep_wall_clock_hours() {
    let c = office();
    // Rome moves to CEST on Sunday 29 March 2026 and back on Sunday 25 October.
    // Friday 27 March 17:00 → Monday 30 March 10:00 is still 2 business hours,
    // although the real interval is one hour shorter than a normal weekend.
    assert_eq!(business_ms_between(&c, rome(2026, 3, 27, 17, 0), rome(2026, 3, 30, 10, 0)), 2 * H);
    assert_eq!(add_business_ms(&c, rome(2026, 3, 27, 17, 0), 2 * H), rome(2026, 3, 30, 10, 0));
    assert_eq!(business_ms_between(&c, rome(2026, 10, 23, 17, 0), rome(2026, 10, 26, 10, 0)), 2 * H);
    // A round-the-clock calendar in Rome: the spring Sunday has 23 hours.
    let all = BusinessCalendar::new("Europe/Rome", &(0..7).map(|d| calendar::WeeklySpan { weekday: d, start_min: 0, end_min: 1440 }).collect::<Vec<_>>(), &[]).expect("cal");
    assert_eq!(business_ms_between(&all, rome(2026, 3, 29, 0, 0), rome(2026, 3, 30, 0, 0)), 23 * H);
    assert_eq!(business_ms_between(&all, rome(2026, 10, 25, 0, 0), rome(2026, 10, 26, 0, 0)), 25 * H);
}

#[test]
fn add_and_between_agree() {
    let c = office();
    let start = rome(2026, 3, 6, 15, 17);
    for hours in [0i64, 1, 3, 7, 8, 9, 20, 41, 100] {
        let end = add_business_ms(&c, start, hours * H + 123);
        assert_eq!(business_ms_between(&c, start, end), hours * H + 123, "{hours}h");
    }
}

#[test]
fn calendars_reject_nonsense() {
    assert!(BusinessCalendar::new("Mars/Olympus", &[calendar::WeeklySpan { weekday: 0, start_min: 0, end_min: 60 }], &[]).is_err());
    assert!(BusinessCalendar::new("UTC", &[calendar::WeeklySpan { weekday: 7, start_min: 0, end_min: 60 }], &[]).is_err());
    assert!(BusinessCalendar::new("UTC", &[calendar::WeeklySpan { weekday: 0, start_min: 60, end_min: 60 }], &[]).is_err());
    assert!(BusinessCalendar::new("UTC", &[], &[]).is_err());
    assert!(BusinessCalendar::weekdays("UTC", &[(540, 1080)], &["25/12/2026".into()]).is_err());
}

#[test]
fn ticket_numbers_and_signed_ids() {
    let t = TicketNo::parse("T-12345").expect("no");
    assert_eq!(t.to_string(), "T-12345");
    assert_eq!(TicketNo::parse("#T-7").expect("no").get(), 7);
    assert_eq!(TicketNo::parse("42").expect("no").get(), 42);
    for bad in ["", "T-", "T-0", "T-12a", "X-12", "-3"] {
        assert!(TicketNo::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(subject_ticket_tag("Re: printer broken [#T-12345]"), Some(t));
    assert_eq!(subject_ticket_tag("[#42] no prefix"), None);
    let id = ticket_message_id(t, b"secret", "help.example.com");
    assert!(id.ends_with("@help.example.com"), "{id}");
    assert_eq!(parse_ticket_message_id(&format!("<{id}>"), b"secret"), Some(t));
    assert_eq!(parse_ticket_message_id(&id, b"other"), None);
    let forged = id.replacen("t12345.", "t12346.", 1);
    assert_eq!(parse_ticket_message_id(&forged, b"secret"), None);
    let tok = feedback_token(t, 4, 1_000, b"k");
    assert_eq!(parse_feedback_token(&tok, b"k", 999), Some((t, 4)));
    assert_eq!(parse_feedback_token(&tok, b"k", 1_001), None);
    assert_eq!(parse_feedback_token(&tok.replacen(".4.", ".5.", 1), b"k", 0), None);
}

async fn centre(store: &Store) -> ServiceCentre {
    store
        .create_centre(&system(), CentreInput { name: "Help".into(), public: true, team_id: None, head_user_id: None, calendar_id: None, auto_ack: true, mailboxes: vec!["help@example.com".into()] })
        .await
        .expect("centre")
}

fn raw(uid: i64) -> RawMail {
    RawMail { mailbox: "INBOX".into(), uidvalidity: 7, uid, message_id: None, raw: format!("Subject: {uid}\r\n\r\nbody").into_bytes(), received_at: 1 }
}

fn mail(id: &str, subject: &str, from: &str) -> ParsedMail {
    ParsedMail {
        message_id: Some(format!("<{id}>")),
        subject: subject.into(),
        from: Some(EmailAddress::parse(from).expect("email")),
        from_name: Some("Anna Bianchi".into()),
        to: vec![EmailAddress::parse("help@example.com").expect("email")],
        text: "The printer is broken".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn ingest_is_idempotent_and_threads() {
    each_store(|ts| async move {
        let s = &ts.store;
        let c = centre(s).await;
        assert!(!s.mail_seen("INBOX", 7, 1).await.expect("seen"));
        let r1 = s.store_raw_mail(raw(1)).await.expect("raw");
        assert_eq!(s.store_raw_mail(raw(1)).await.expect("raw again"), r1);
        assert!(s.mail_seen("INBOX", 7, 1).await.expect("seen"));
        assert_eq!(s.uningested_raw_mail(10).await.expect("pending"), vec![r1]);
        let mut m1 = mail("a1@customer.example", "Printer broken", "anna@customer.example");
        m1.cc = vec![EmailAddress::parse("boss@customer.example").expect("cc")];
        m1.attachments = vec![MailAttachment { filename: Some("error.png".into()), content_type: "image/png".into(), data: vec![1, 2, 3] }];
        let o1 = s.ingest_mail(r1, m1.clone(), c.id, 1_000).await.expect("ingest");
        assert!(o1.created && !o1.duplicate);
        assert!(o1.auto_ack.is_some());
        // Twice: nothing new.
        let again = s.ingest_mail(r1, m1, c.id, 2_000).await.expect("ingest again");
        assert_eq!(again.ticket, o1.ticket);
        assert!(again.duplicate && !again.created);
        assert!(s.uningested_raw_mail(10).await.expect("pending").is_empty());
        // The sender became a person in the CRM.
        let who = s.lookup_by_email(&EmailAddress::parse("anna@customer.example").expect("e")).await.expect("lookup");
        assert_eq!(who.len(), 1);
        assert_eq!(who[0].name, "Anna Bianchi");
        let d = s.ticket_detail(&system(), o1.ticket).await.expect("detail");
        assert_eq!(d.messages[0].cc, vec!["boss@customer.example".to_string()]);
        assert_eq!(d.messages[0].attachments.len(), 1);
        // Reply by References to their own Message-ID.
        let r2 = s.store_raw_mail(raw(2)).await.expect("raw");
        let mut m2 = mail("a2@customer.example", "More info", "anna@customer.example");
        m2.references = vec!["<a1@customer.example>".into()];
        let o2 = s.ingest_mail(r2, m2, c.id, 3_000).await.expect("ingest");
        assert_eq!((o2.ticket, o2.created), (o1.ticket, false));
        // Reply to our auto-ack's signed Message-ID (only In-Reply-To).
        let ack = s.pending_outbound(10_000, 10).await.expect("outbox");
        assert_eq!(ack.len(), 1);
        assert!(ack[0].auto_submitted);
        assert_eq!(ack[0].kind, OutboxKind::AutoAck);
        let r3 = s.store_raw_mail(raw(3)).await.expect("raw");
        let mut m3 = mail("a3@customer.example", "Thanks", "anna@customer.example");
        m3.in_reply_to = vec![ack[0].message_id.clone()];
        assert_eq!(s.ingest_mail(r3, m3, c.id, 4_000).await.expect("ingest").ticket, o1.ticket);
        // Subject tag only.
        let r4 = s.store_raw_mail(raw(4)).await.expect("raw");
        let m4 = mail("a4@customer.example", &format!("Re: {}", o1.ticket.subject_tag()), "other@customer.example");
        assert_eq!(s.ingest_mail(r4, m4, c.id, 5_000).await.expect("ingest").ticket, o1.ticket);
        // Unrelated: a new ticket.
        let r5 = s.store_raw_mail(raw(5)).await.expect("raw");
        let o5 = s.ingest_mail(r5, mail("b1@x.example", "Other", "anna@customer.example"), c.id, 6_000).await.expect("ingest");
        assert!(o5.created && o5.ticket != o1.ticket);
        s.mark_outbound_sent(ack[0].id, 7_000).await.expect("sent");
        assert_eq!(s.pending_outbound(10_000, 10).await.expect("outbox").len(), 1, "the second ticket's ack");
        assert_eq!(s.max_mail_uid("INBOX", 7).await.expect("max"), Some(5));
    })
    .await;
}

#[tokio::test]
async fn auto_replies_are_never_acknowledged_and_acks_are_rate_limited() {
    each_store(|ts| async move {
        let s = &ts.store;
        let c = centre(s).await;
        let r = s.store_raw_mail(raw(1)).await.expect("raw");
        let mut m = mail("auto@x.example", "Out of office", "anna@customer.example");
        m.is_auto = true;
        let o = s.ingest_mail(r, m, c.id, 1_000).await.expect("ingest");
        assert!(o.created && o.auto_ack.is_none());
        let mut acks = 0;
        for uid in 2..15 {
            let r = s.store_raw_mail(raw(uid)).await.expect("raw");
            let o = s.ingest_mail(r, mail(&format!("m{uid}@x.example"), &format!("Q {uid}"), "flood@customer.example"), c.id, 10_000 + uid).await.expect("ingest");
            acks += i64::from(o.auto_ack.is_some());
        }
        assert_eq!(acks, AUTO_ACK_LIMIT);
        let sender = EmailAddress::parse("flood@customer.example").expect("e");
        assert!(!s.auto_ack_allowed(&sender, 10_100).await.expect("allowed"));
        assert!(s.auto_ack_allowed(&sender, 10_100 + AUTO_ACK_WINDOW_MS).await.expect("allowed"));
    })
    .await;
}

#[tokio::test]
async fn split_children_drive_the_parent() {
    each_store(|ts| async move {
        let s = &ts.store;
        let c = centre(s).await;
        let r = s.store_raw_mail(raw(1)).await.expect("raw");
        let o = s.ingest_mail(r, mail("p@x.example", "Two problems", "anna@customer.example"), c.id, 1_000).await.expect("ingest");
        let child = s.split_ticket(&system(), o.ticket, SplitInput { message_id: o.message, subject: Some("Second problem".into()) }, 2_000).await.expect("split");
        assert_eq!(child.parent, Some(o.ticket));
        let parent = s.get_ticket(&system(), o.ticket).await.expect("parent");
        assert_eq!(parent.children, vec![child.no]);
        s.set_ticket_state(&system(), child.no, TicketState::Solved, 3_000).await.expect("solve");
        assert_eq!(s.propagate_split_states(4_000).await.expect("propagate"), vec![o.ticket]);
        assert_eq!(s.get_ticket(&system(), o.ticket).await.expect("parent").state, TicketState::Solved);
        assert!(s.propagate_split_states(5_000).await.expect("propagate").is_empty());
    })
    .await;
}

fn raw_in(mailbox: &str, uid: i64) -> RawMail {
    RawMail { mailbox: mailbox.into(), uidvalidity: 7, uid, message_id: None, raw: format!("Subject: {uid}\r\n\r\nbody").into_bytes(), received_at: 1 }
}

/// The batch reads its context once (known senders, ack counts, stored
/// Message-IDs) and keeps it current as it goes: a sender created by the
/// batch's first mail is found by the next, a Message-ID repeated inside
/// the batch joins the first copy, and the ack limit holds within a batch.
#[tokio::test]
async fn a_batch_keeps_its_context_current() {
    each_store(|ts| async move {
        let s = &ts.store;
        let c = centre(s).await;
        let mut batch = Vec::new();
        for uid in 1..=12 {
            batch.push((raw(uid), mail(&format!("f{uid}@x.example"), &format!("Q {uid}"), "new@customer.example")));
        }
        batch.push((raw(13), mail("f1@x.example", "Q 1 again", "new@customer.example")));
        let out = s.ingest_mail_batch(batch, c.id, 1_000).await.expect("batch");
        assert_eq!(out.len(), 13);
        assert_eq!(out.iter().filter(|(_, o)| o.created).count(), 12);
        assert_eq!(out.iter().filter(|(_, o)| o.auto_ack.is_some()).count() as i64, AUTO_ACK_LIMIT);
        let last = &out[12].1;
        assert!(last.duplicate && !last.created);
        assert_eq!(last.ticket, out[0].1.ticket);
        let who = s.lookup_by_email(&EmailAddress::parse("new@customer.example").expect("e")).await.expect("lookup");
        assert_eq!(who.len(), 1, "one person for the sender, not one per mail");
        let d = s.ticket_detail(&system(), out[5].1.ticket).await.expect("detail");
        assert_eq!(d.ticket.requester_id, Some(who[0].id));
        assert_eq!(d.ticket.last_customer_at, Some(1_000));
        // A reply in a later batch: sets the customer's time, finds the person.
        let mut reply = mail("g1@x.example", "More", "new@customer.example");
        reply.references = vec!["<f2@x.example>".into()];
        let out2 = s.ingest_mail_batch(vec![(raw(20), reply)], c.id, 2_000).await.expect("batch");
        assert_eq!((out2[0].1.ticket, out2[0].1.created), (out[1].1.ticket, false));
        let d = s.ticket_detail(&system(), out[1].1.ticket).await.expect("detail");
        assert_eq!((d.ticket.last_customer_at, d.ticket.updated_at), (Some(2_000), 2_000));
        assert_eq!(s.lookup_by_email(&EmailAddress::parse("new@customer.example").expect("e")).await.expect("lookup").len(), 1);
    })
    .await;
}

/// Two mailboxes ingesting at once, each with mail from the same new
/// sender, create one person for that address, not two (PostgreSQL: an
/// advisory lock per new address; SQLite: the single writer).
#[tokio::test]
async fn concurrent_mailboxes_create_one_person_per_new_sender() {
    each_store(|ts| async move {
        let s = &ts.store;
        let c = centre(s).await;
        for round in 0..5 {
            let from = format!("racer{round}@customer.example");
            let batch = |mb: &str| -> Vec<(RawMail, ParsedMail)> {
                (0..5).map(|i| (raw_in(mb, round * 10 + i), mail(&format!("{mb}-{round}-{i}@x.example"), "Hello", &from))).collect()
            };
            let (a, b) = tokio::join!(s.ingest_mail_batch(batch("A"), c.id, 1_000), s.ingest_mail_batch(batch("B"), c.id, 1_000));
            assert_eq!(a.expect("A").len() + b.expect("B").len(), 10);
            let who = s.lookup_by_email(&EmailAddress::parse(&from).expect("e")).await.expect("lookup");
            assert_eq!(who.len(), 1, "round {round}: one person for {from}");
        }
    })
    .await;
}
