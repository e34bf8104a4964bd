//! Campaign messaging beyond the first mail: the bounce mailbox reader
//! (Postfix's real DSN → Dovecot → our IMAP reader → suppression), SMS over
//! SMPP against a real SMSC process (the PyPI `smpp34`-based fake SMSC of
//! `mailgate/tests/smsc/fake_smsc.py`, with throttling and receipts), and
//! fax status callbacks (signed, idempotent, order-proof) arriving as mail.

use crate::harness::*;
use crm::campaigns_sms::FaxState;
use crm::lists::{ListKind, NewList};
use crm::parties::{EmailInput, PartyInput, PhoneInput};
use crm::{Actor, Channel};
use mailgate::bounces_in::{BounceReader, Handled};
use mailgate::campaign::{BounceOutcome, CampaignConfig, CampaignSender};
use mailgate::fax::{self, FaxStatusMail};
use mailgate::smpp::{SmppClient, SmppConfig, SmsSender, run_receipts};
use mailgate::tracking::Signer;
use std::time::Duration;

async fn party(store: &crm::Store, first: &str, email: Option<&str>, phone: Option<&str>, consent: &[Channel]) -> crm::PartyId {
    let input = PartyInput {
        kind: "person".into(),
        name: Some(format!("{first} Bianchi")),
        first_name: Some(first.into()),
        emails: email.map(|e| vec![EmailInput { address: e.into(), kind: None }]).unwrap_or_default(),
        phones: phone.map(|p| vec![PhoneInput { number: p.into(), kind: Some("mobile".into()) }]).unwrap_or_default(),
        ..Default::default()
    };
    let id = store.create_party(&Actor::system(), input).await.expect("party").id;
    for c in consent {
        store.set_consent(&Actor::system(), id, *c, true, "test").await.expect("consent");
    }
    id
}

async fn list(store: &crm::Store, ids: Vec<crm::PartyId>) -> crm::ListId {
    store
        .create_list(&Actor::system(), NewList { name: format!("l{}", unique_suffix()), description: None, kind: ListKind::Static, filter: None, party_ids: ids })
        .await
        .expect("list")
        .id
}

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

#[tokio::test]
async fn the_bounce_reader_picks_up_postfixs_dsn_and_suppresses() {
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let ghost = format!("ghost{}@{}", unique_suffix().replace('_', ""), p.domain);
            let g = party(&store, "Gino", Some(&ghost), None, &[Channel::Email]).await;
            let l = list(&store, vec![g]).await;
            let camp = store.create_campaign("Bounces", "", 0, None, crm::now_ms()).await.expect("campaign");
            let msg = store.add_campaign_message(camp.id, Channel::Email, "Ciao", "Ciao {{ first_name }}", "", l, crm::now_ms()).await.expect("msg");
            store.launch_message(msg, &p.domain, crm::now_ms()).await.expect("launch");
            let signer = Signer::new(&store.campaign_secret().await.expect("secret"));
            let mut cfg = CampaignConfig::new(p.smtp(), &p.domain, "https://track.example");
            cfg.from = crm::EmailAddress::parse(&format!("news@{}", p.domain)).expect("from");
            let sender = CampaignSender::new(cfg, signer.clone(), None).expect("sender");
            assert_eq!(sender.drain(&store, crm::now_ms()).await.expect("drain").sent, 1);
            // Postfix's DSN goes to bounces+TOKEN@, which the test Dovecot
            // files into the folder TOKEN of `bounces`: that folder is the
            // reader's mailbox here.
            let row = row_of(&store, msg, &ghost).await;
            let verp = signer.verp(row);
            p.wait_for("bounces", &verp, 1).await;
            let centre = centre(&store, "bounces").await;
            let mb = p.mailbox("bounces", &verp, centre);
            let got = BounceReader::new(store.clone(), mb.clone(), signer.clone(), None).sync_once().await.expect("sync");
            assert_eq!(got.len(), 1, "{}: {got:?}", ts.name);
            match &got[0].1 {
                Handled::Bounce(BounceOutcome::Bounced { outbox_id, reason, hard, suppressed }) => {
                    assert_eq!((*outbox_id, reason.as_str(), *hard, *suppressed), (row, "userunknown", true, true), "{}", ts.name)
                }
                other => panic!("{other:?}"),
            }
            // Exactly once by UID: a second pass handles nothing.
            let again = BounceReader::new(store.clone(), mb, signer.clone(), None).sync_once().await.expect("sync");
            assert!(again.is_empty(), "{again:?}");
            let events = store.outbox_events(row).await.expect("events");
            assert_eq!(events.iter().filter(|(k, _)| k == "bounced_hard").count(), 1, "{events:?}");
            // Suppressed for the next message.
            let msg2 = store.add_campaign_message(camp.id, Channel::Email, "Again", "x", "", l, crm::now_ms()).await.expect("msg2");
            store.launch_message(msg2, &p.domain, crm::now_ms() + 1).await.expect("launch");
            assert!(store.claim_outbox(msg2, 10, 1000, crm::now_ms()).await.expect("claim").is_empty());
        }
    })
    .await;
}

/// A fake SMSC of our own for this test (own port, own log), from the
/// venv `scripts/peers.sh` made. `None` (with a note) when there is none.
/// The SMSC process, killed when the test ends (also on a panic).
struct Smsc(std::process::Child);

impl Drop for Smsc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn smsc() -> Option<(Smsc, u16, std::path::PathBuf)> {
    let Ok(python) = std::env::var("CENTRALINO_TEST_SMSC_PYTHON") else {
        if std::env::var("CENTRALINO_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("CENTRALINO_REQUIRE_PEERS=1 but CENTRALINO_TEST_SMSC_PYTHON is not set");
        }
        eprintln!("note: skipping an SMPP test: no fake SMSC (scripts/peers.sh start DIR)");
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let dir = tempfile::tempdir().expect("dir").keep();
    let log = dir.join("smsc.log");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smsc/fake_smsc.py");
    let child = Smsc(std::process::Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .env("DLR_DELAY", "0.05")
        .env("FAIL_PREFIX", "39339")
        .env("THROTTLE_PREFIX", "39338")
        .env("REJECT_PREFIX", "39337")
        .stdout(std::fs::File::create(&log).expect("log"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the fake SMSC"));
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some((child, port, log));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the fake SMSC did not listen");
}

#[tokio::test]
async fn an_sms_campaign_goes_through_a_real_smsc_with_throttling_and_receipts() {
    let Some((_smsc, port, log)) = smsc() else { return };
    each_store(|ts| {
        let log = log.clone();
        async move {
            let store = ts.store.clone();
            let ok = party(&store, "Ada", None, Some("+393331000001"), &[Channel::Sms]).await;
            let zoe = party(&store, "Zoë", None, Some("+393331000002"), &[Channel::Sms]).await;
            let slow = party(&store, "Teo", None, Some("+393381000003"), &[Channel::Sms]).await;
            let lost = party(&store, "Ugo", None, Some("+393391000004"), &[Channel::Sms]).await;
            let bad = party(&store, "Rea", None, Some("+393371000005"), &[Channel::Sms]).await;
            let no_consent = party(&store, "Noa", None, Some("+393331000006"), &[]).await;
            let stopped = party(&store, "Sto", None, Some("+393331000007"), &[Channel::Sms]).await;
            store.suppress_address("+393331000007", "replied STOP", crm::now_ms()).await.expect("suppress");
            let l = list(&store, vec![ok, zoe, slow, lost, bad, no_consent, stopped]).await;
            let camp = store.create_campaign("SMS", "", 0, None, crm::now_ms()).await.expect("campaign");
            // Long enough for two GSM-7 parts (and three UCS-2 parts for Zoë).
            let body = format!("Ciao {{{{ first_name }}}}, {}", "la vendemmia è arrivata: offerte in cantina fino a domenica. ".repeat(3));
            let msg = store.add_campaign_message(camp.id, Channel::Sms, "Vendemmia", &body, "", l, crm::now_ms()).await.expect("msg");
            assert_eq!(store.launch_message(msg, "gw.test", crm::now_ms()).await.expect("launch"), 7);

            let mut cfg = SmppConfig::new(format!("127.0.0.1:{port}"), "centralino", "secret");
            cfg.throttle_backoff = Duration::from_millis(20);
            let (client, receipts) = SmppClient::connect(cfg).await.expect("bind");
            let dlr = tokio::spawn(run_receipts(store.clone(), receipts));
            let sender = SmsSender::new(client.clone());
            let r = sender.drain(&store, crm::now_ms()).await.expect("drain");
            assert_eq!((r.sent, r.failed, r.deferred), (4, 1, 0), "{}: {r:?}", ts.name);
            assert!(client.throttled_count() >= 1, "the SMSC throttled once");
            let m = store.message_monitor(msg).await.expect("monitor");
            assert_eq!((m.sent, m.failed, m.suppressed), (4, 1, 2), "{m:?}");

            // Receipts: delivered for three, UNDELIV for Ugo.
            let ev = |p: &'static str| {
                let store = store.clone();
                async move {
                    let row = row_of(&store, msg, p).await;
                    store.outbox_events(row).await.expect("events")
                }
            };
            let mut waited = 0;
            loop {
                let got = [ev("+393331000001").await, ev("+393331000002").await, ev("+393381000003").await, ev("+393391000004").await];
                let done = got[..3].iter().all(|e| e.iter().any(|(k, _)| k == "sms_delivered")) && got[3].iter().any(|(k, _)| k == "sms_failed");
                if done {
                    // Parts collapse: one receipt event per recipient.
                    assert_eq!(got[0].iter().filter(|(k, _)| k == "sms_delivered").count(), 1, "{:?}", got[0]);
                    assert!(got[3].iter().any(|(k, d)| k == "sms_failed" && d.contains("UNDELIV")), "{:?}", got[3]);
                    break;
                }
                waited += 1;
                assert!(waited < 100, "{}: receipts did not arrive: {got:?}", ts.name);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            client.unbind().await;
            drop(sender);
            drop(client);
            let _ = tokio::time::timeout(Duration::from_secs(3), dlr).await;

            // What the SMSC saw: GSM-7 concatenated parts, UCS-2 for Zoë.
            let text = std::fs::read_to_string(&log).expect("smsc log");
            let submits: Vec<serde_json::Value> =
                text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).filter(|v| v["event"] == "submit").collect();
            let to = |d: &str| submits.iter().filter(|v| v["dest"] == d).cloned().collect::<Vec<_>>();
            let ada = to("393331000001");
            assert!(ada.len() >= 2 && ada.iter().all(|v| v["data_coding"] == 0 && v["esm_class"] == 0x40), "{ada:?}");
            let z = to("393331000002");
            assert!(z.len() >= 3 && z.iter().all(|v| v["data_coding"] == 8), "{z:?}");
            assert!(to("393331000006").is_empty() && to("393331000007").is_empty(), "no consent / suppressed never reach the SMSC");
            assert!(text.contains("submit_throttled"), "{text}");
        }
    })
    .await;
}

#[tokio::test]
async fn fax_statuses_are_signed_idempotent_and_order_proof() {
    each_store(|ts| async move {
        let store = ts.store.clone();
        let f = party(&store, "Fax", None, Some("+390212345678"), &[Channel::Fax]).await;
        let l = list(&store, vec![f]).await;
        let camp = store.create_campaign("Fax", "", 0, None, crm::now_ms()).await.expect("campaign");
        let msg = store.add_campaign_message(camp.id, Channel::Fax, "Listino", "Listino {{ first_name }}", "", l, crm::now_ms()).await.expect("msg");
        assert_eq!(store.launch_message(msg, "gw.test", crm::now_ms()).await.expect("launch"), 1);
        let row = row_of(&store, msg, "+390212345678").await;
        store.record_fax_job(fax::EMAIL_GATEWAY, "job-1", row, crm::now_ms()).await.expect("job");
        let key = b"fax-callback-key-0123456789";
        let mail = |state: &FaxState, sig: &str| {
            let reason = match state {
                FaxState::Failed(r) => format!("X-Fax-Reason: {r}\r\n"),
                _ => String::new(),
            };
            format!("From: gateway@fax.example\r\nSubject: status\r\nX-Fax-Job: job-1\r\nX-Fax-Status: {}\r\n{reason}X-Fax-Signature: {sig}\r\n\r\nok\r\n", state.as_str())
        };
        let signer = Signer::new(&store.campaign_secret().await.expect("secret"));
        let send = |state: FaxState, forged: bool| {
            let store = store.clone();
            let signer = signer.clone();
            let sig = if forged { fax::sign(b"wrong key", "job-1", &state) } else { fax::sign(key, "job-1", &state) };
            let raw = mail(&state, &sig);
            async move { mailgate::bounces_in::handle(&store, &signer, Some(key), raw.as_bytes(), crm::now_ms()).await.expect("handle") }
        };
        assert!(matches!(send(FaxState::Sending, false).await, Handled::Fax { moved: true, .. }));
        // A forged delivered is refused (ignored), nothing moves.
        assert!(matches!(send(FaxState::Delivered, true).await, Handled::Bounce(BounceOutcome::Ignored)));
        assert_eq!(store.fax_job_state(fax::EMAIL_GATEWAY, "job-1").await.expect("state").0, "sending");
        assert!(matches!(send(FaxState::Delivered, false).await, Handled::Fax { moved: true, .. }));
        // Duplicated and late, out-of-order callbacks change nothing.
        assert!(matches!(send(FaxState::Delivered, false).await, Handled::Fax { moved: false, .. }));
        assert!(matches!(send(FaxState::Queued, false).await, Handled::Fax { moved: false, .. }));
        assert!(matches!(send(FaxState::Failed("no answer".into()), false).await, Handled::Fax { moved: false, .. }));
        assert_eq!(store.fax_job_state(fax::EMAIL_GATEWAY, "job-1").await.expect("state").0, "delivered");
        let kinds: Vec<String> = store.outbox_events(row).await.expect("events").into_iter().map(|(k, _)| k).collect();
        assert_eq!(kinds, ["fax_sending", "fax_delivered"], "{}", ts.name);
        // The status mail format parses; a normal mail is not a fax status.
        assert!(FaxStatusMail::parse(b"From: a@b\r\nSubject: hi\r\n\r\nbody").is_none());
    })
    .await;
}

/// A fax campaign end to end through the real peers: the fax worker drains
/// the outbox's fax rows (consent checked: one recipient has none), renders
/// each text as a PDF and mails it through Postfix to the email-to-fax
/// gateway's address (here a Dovecot folder standing in for the gateway);
/// the gateway's signed status mails come back through Postfix into the
/// notification mailbox, are read over IMAP and applied in whatever order
/// they arrive, duplicates and all; the monitor counts what was driven.
#[tokio::test]
async fn a_fax_campaign_goes_out_as_pdf_mail_and_status_mails_come_back() {
    use mailgate::campaign::relay::Relay;
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let tag = folder("fx");
            let nums = ["+390211110001", "+390211110002", "+390211110003"];
            let fax_party = |first: &'static str, n: &'static str, consent: bool| {
                let store = store.clone();
                async move {
                    let input = PartyInput { kind: "person".into(), name: Some(format!("{first} Verdi")), first_name: Some(first.into()), phones: vec![PhoneInput { number: n.into(), kind: Some("fax".into()) }], ..Default::default() };
                    let id = store.create_party(&Actor::system(), input).await.expect("party").id;
                    store.set_consent(&Actor::system(), id, Channel::Fax, consent, "test").await.expect("consent");
                    id
                }
            };
            let ids = vec![fax_party("Ada", nums[0], true).await, fax_party("Bruno", nums[1], true).await, fax_party("Carla", nums[2], false).await];
            let l = list(&store, ids).await;
            let camp = store.create_campaign("Listino fax", "", 0, None, crm::now_ms()).await.expect("campaign");
            let msg = store
                .add_campaign_message(camp.id, Channel::Fax, "Listino per {{ first_name }}", "Gentile {{ first_name }}, prezzi più bassi (fino al 30%) \\ da lunedì.", "", l, crm::now_ms())
                .await
                .expect("msg");
            assert_eq!(store.launch_message(msg, &p.domain, crm::now_ms()).await.expect("launch"), 3);
            let relay = std::sync::Arc::new(Relay::new(p.smtp(), 2));
            let gateway = fax::EmailFaxGateway { relay: relay.clone(), from: format!("fax@{}", p.domain).parse().expect("from"), address: format!("customer+{tag}n{{number}}@{}", p.domain) };
            let sender = fax::FaxSender::new(gateway);
            let r = sender.drain(&store, crm::now_ms()).await.expect("drain");
            assert_eq!((r.sent, r.failed), (2, 0), "{}: {r:?}", ts.name);
            assert_eq!(sender.drain(&store, crm::now_ms()).await.expect("again").sent, 0, "sent once");

            // What the gateway received: one mail per number with the PDF.
            let key = b"fax-gateway-key-0123456789abcdef";
            let mut statuses = vec![];
            for (n, first) in [(nums[0], "Ada"), (nums[1], "Bruno")] {
                let digits: String = n.chars().filter(char::is_ascii_digit).collect();
                let got = p.wait_for("customer", &format!("{tag}n{digits}"), 1).await;
                let m = mail_parser::MessageParser::default().parse(&got[0]).expect("parse");
                let job = m.header_raw("X-Fax-Job").expect("X-Fax-Job").trim().to_string();
                assert_eq!(job, format!("fax-{}", row_of(&store, msg, n).await));
                let pdf = m.attachment(0).expect("attachment");
                assert!(mail_parser::MimeHeaders::is_content_type(pdf, "application", "pdf"), "the attachment is a PDF");
                let pdf = pdf.contents();
                assert!(pdf.starts_with(b"%PDF-1.4\n") && pdf.ends_with(b"%%EOF\n"), "{}", String::from_utf8_lossy(pdf));
                let text = String::from_utf8_lossy(pdf);
                assert!(text.contains(&format!("(Listino per {first}) Tj")), "{text}");
                // Escaped parentheses and backslash; Latin-1 accents kept as bytes.
                assert!(pdf.windows(4).any(|w| w == b"pi\xf9 "), "WinAnsi 'ù'");
                assert!(text.contains(r"\(fino al 30%\) \\ da luned"), "{text}");
                // The xref table points at each object.
                let sx = text.rfind("startxref\n").expect("startxref") + 10;
                let xref: usize = text[sx..].lines().next().expect("offset").parse().expect("number");
                assert!(pdf[xref..].starts_with(b"xref\n"));
                for (i, line) in text[xref..].lines().skip(3).take_while(|l| l.ends_with(" n ")).enumerate() {
                    let off: usize = line[..10].parse().expect("offset");
                    assert!(pdf[off..].starts_with(format!("{} 0 obj", i + 1).as_bytes()), "object {}", i + 1);
                }
                statuses.push(job);
            }
            // The gateway reports: Ada sending, delivered, delivered again
            // (a duplicate); Bruno failed. Plus a forged "delivered" for Bruno.
            let notify = folder("fxs");
            let status = |job: &str, state: FaxState, signing_key: &[u8]| {
                let reason = match &state {
                    FaxState::Failed(r) => format!("X-Fax-Reason: {r}\r\n"),
                    _ => String::new(),
                };
                format!(
                    "From: gateway@{d}\r\nTo: bounces@{d}\r\nSubject: fax status\r\nMessage-ID: <{}@{d}>\r\nX-Fax-Job: {job}\r\nX-Fax-Status: {}\r\n{reason}X-Fax-Signature: {}\r\n\r\nstatus\r\n",
                    unique_suffix(),
                    state.as_str(),
                    fax::sign(signing_key, job, &state),
                    d = p.domain
                )
            };
            let mails = [
                status(&statuses[0], FaxState::Sending, key),
                status(&statuses[0], FaxState::Delivered, key),
                status(&statuses[0], FaxState::Delivered, key),
                status(&statuses[1], FaxState::Failed("no answer".into()), key),
                status(&statuses[1], FaxState::Delivered, b"forged"),
            ];
            for m in &mails {
                let env = lettre::address::Envelope::new(Some(format!("gateway@{}", p.domain).parse().expect("from")), vec![format!("bounces+{notify}@{}", p.domain).parse().expect("to")]).expect("envelope");
                relay.send(&env, m.as_bytes()).await.expect("status mail accepted");
            }
            let signer = Signer::new(&store.campaign_secret().await.expect("secret"));
            for raw in p.wait_for("bounces", &notify, mails.len()).await {
                mailgate::bounces_in::handle(&store, &signer, Some(key), &raw, crm::now_ms()).await.expect("handle");
            }
            assert_eq!(store.fax_job_state(fax::EMAIL_GATEWAY, &statuses[0]).await.expect("state").0, "delivered", "{}", ts.name);
            assert_eq!(store.fax_job_state(fax::EMAIL_GATEWAY, &statuses[1]).await.expect("state"), ("failed".to_string(), "no answer".to_string()));
            let rep = store.message_report(msg).await.expect("report");
            assert_eq!((rep.sent, rep.suppressed, rep.delivered, rep.delivery_failed), (2, 1, 1, 1), "{}: {rep:?}", ts.name);
            let a_events: Vec<String> = store.outbox_events(row_of(&store, msg, nums[0]).await).await.expect("events").into_iter().map(|(k, _)| k).collect();
            assert_eq!(a_events.iter().filter(|k| *k == "fax_delivered").count(), 1, "{a_events:?}");
            relay.close().await;
        }
    })
    .await;
}

/// "Done when", email side, through the real peers: a campaign to a list
/// goes through Postfix into Dovecot; the tokens in the delivered mail (not
/// ones the test makes up) drive an open, a click and a one-click
/// unsubscribe through the same calls the HTTP endpoints make (the event
/// log, the store); a feedback-loop complaint (ARF) about the other
/// recipient's mail comes back through Postfix to its VERP address and is
/// read by the bounce reader over IMAP; the monitor shows exactly that.
#[tokio::test]
async fn delivered_tokens_and_a_real_arf_complaint_reach_the_monitor() {
    use mailgate::campaign::relay::Relay;
    use mailgate::eventlog::{EventLog, LogOptions};
    use mailgate::tracking::Kind;
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        async move {
            let store = ts.store.clone();
            let (fa, fb) = (folder("dwa"), folder("dwb"));
            let (ada, bruno) = (format!("customer+{fa}@{}", p.domain), format!("customer+{fb}@{}", p.domain));
            let a = party(&store, "Ada", Some(&ada), None, &[Channel::Email]).await;
            let b = party(&store, "Bruno", Some(&bruno), None, &[Channel::Email]).await;
            let l = list(&store, vec![a, b]).await;
            let camp = store.create_campaign("Done", "", 0, None, crm::now_ms()).await.expect("campaign");
            let msg = store
                .add_campaign_message(camp.id, Channel::Email, "Ciao {{ first_name }}", "Offerte: https://shop.example/offerte", "<p><a href=\"https://shop.example/offerte\">offerte</a></p>", l, crm::now_ms())
                .await
                .expect("msg");
            store.launch_message(msg, &p.domain, crm::now_ms()).await.expect("launch");
            let signer = Signer::new(&store.campaign_secret().await.expect("secret"));
            let mut cfg = CampaignConfig::new(p.smtp(), &p.domain, "https://track.example");
            cfg.from = crm::EmailAddress::parse(&format!("news@{}", p.domain)).expect("from");
            let r = CampaignSender::new(cfg, signer.clone(), None).expect("sender").drain(&store, crm::now_ms()).await.expect("drain");
            assert_eq!(r.sent, 2, "{}", ts.name);

            // Ada's delivered mail: its pixel, link and unsubscribe tokens.
            let raw = p.wait_for("customer", &fa, 1).await.remove(0);
            let text = String::from_utf8_lossy(&raw).replace("=\r\n", "").replace("=3D", "=");
            let token_after = |prefix: &str| -> String {
                let i = text.find(prefix).unwrap_or_else(|| panic!("no {prefix} in {text}")) + prefix.len();
                text[i..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
            };
            let now = crm::now_ms();
            let open = signer.verify(&token_after("https://track.example/t/o/"), now).expect("pixel token");
            let click = signer.verify(&token_after("https://track.example/t/c/"), now).expect("click token");
            let unsub = signer.verify(&token_after("https://track.example/u/"), now).expect("unsubscribe token");
            assert_eq!((open.kind.clone(), unsub.kind.clone()), (Kind::Open, Kind::Unsubscribe));
            assert!(matches!(&click.kind, Kind::Click { index: 1, url } if url == "https://shop.example/offerte"), "{:?}", click.kind);
            let dir = tempfile::tempdir().expect("wal");
            let (log, writer) = EventLog::open(dir.path(), store.clone(), LogOptions::default()).await.expect("log");
            let ev = |t: &mailgate::tracking::Token, kind: &str, detail: String| crm::campaigns::TrackEvent {
                key: format!("{kind}-{}", unique_suffix()),
                outbox_id: t.outbox_id,
                message_id: t.message_id,
                party_id: t.party_id,
                kind: kind.into(),
                detail,
                machine: false,
                at: now,
            };
            log.record(ev(&open, "opened", String::new())).await.expect("open");
            log.record(ev(&click, "clicked", "1 https://shop.example/offerte".into())).await.expect("click");
            drop(log);
            writer.await.expect("writer");
            assert!(store.unsubscribe(unsub.outbox_id, "one-click unsubscribe (List-Unsubscribe-Post)", now).await.expect("unsubscribe"));

            // Bruno's mailbox provider reports a complaint (ARF, RFC 5965)
            // to the VERP return path of his mail.
            let orig = String::from_utf8_lossy(&p.wait_for("customer", &fb, 1).await.remove(0)).to_string();
            let verp = signer.verp(row_of(&store, msg, &bruno).await);
            let arf = format!(
                "From: fbl@isp.example\r\nTo: bounces+{verp}@{d}\r\nSubject: abuse report\r\nMessage-ID: <arf{}@isp.example>\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\r\n\r\n--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\r\n\
                 --F\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: ISP-FBL/1.0\r\nVersion: 1\r\nOriginal-Rcpt-To: <{bruno}>\r\n\r\n\
                 --F\r\nContent-Type: message/rfc822\r\n\r\n{orig}\r\n--F--\r\n",
                unique_suffix(),
                d = p.domain
            );
            let relay = Relay::new(p.smtp(), 1);
            let env = lettre::address::Envelope::new(Some(format!("fbl@{}", p.domain).parse().expect("from")), vec![format!("bounces+{verp}@{}", p.domain).parse().expect("to")]).expect("envelope");
            relay.send(&env, arf.as_bytes()).await.expect("ARF accepted");
            relay.close().await;
            p.wait_for("bounces", &verp, 1).await;
            let mb = p.mailbox("bounces", &verp, centre(&store, "fbl").await);
            let got = BounceReader::new(store.clone(), mb, signer.clone(), None).sync_once().await.expect("sync");
            assert!(matches!(&got[..], [(_, Handled::Bounce(BounceOutcome::Complained { .. }))]), "{}: {got:?}", ts.name);
            assert!(!store.has_consent(b, Channel::Email).await.expect("consent"), "a complaint unsubscribes");

            let rep = store.message_report(msg).await.expect("report");
            assert_eq!((rep.sent, rep.opens.total_human, rep.opens.unique_human, rep.unsubscribed, rep.complained), (2, 1, 1, 1, 1), "{}: {rep:?}", ts.name);
            assert_eq!(rep.clicks.iter().map(|c| (c.index, c.url.as_str(), c.total_human)).collect::<Vec<_>>(), [(1, "https://shop.example/offerte", 1)], "{rep:?}");
            assert!(rep.bounced.is_empty());
        }
    })
    .await;
}
