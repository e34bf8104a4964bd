//! Bounce classification on synthetic fixtures we wrote (no third-party
//! corpus is committed): one `check(raw, expected)` helper per case.

use mailgate::bounce::{Kind, Reason, classify};

struct Want<'a> {
    kind: Kind,
    recipient: Option<&'a str>,
    reason: Option<Reason>,
    hard: bool,
    status: Option<&'a str>,
}

fn check(raw: &str, want: Want<'_>) {
    for eol in ["\n", "\r\n"] {
        let raw = raw.replace('\n', eol);
        let r = classify(raw.as_bytes());
        assert_eq!(r.kind, want.kind, "kind for {raw}");
        let Some(reason) = want.reason else {
            return;
        };
        let f = r.failures.first().unwrap_or_else(|| panic!("no failure in {r:?}"));
        assert_eq!(f.recipient.as_deref(), want.recipient, "recipient");
        assert_eq!(f.reason, reason, "reason: {f:?}");
        assert_eq!(f.hard, want.hard, "hard: {f:?}");
        assert_eq!(f.status.as_deref(), want.status, "status");
    }
}

fn dsn(status: &str, diag: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.net\nTo: bounces+m7r42.sig@news.example.org\nSubject: Undelivered Mail Returned to Sender\n\
MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n\
--B\nContent-Type: text/plain\n\nThis is the mail system at host mx.example.net.\n\n\
<anna@example.com>: host in.example.com said: {diag} (in reply to RCPT TO command)\n\n\
--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\n\
Final-Recipient: rfc822; anna@example.com\nAction: failed\nStatus: {status}\nDiagnostic-Code: smtp; {diag}\n\n\
--B\nContent-Type: text/rfc822-headers\n\nFrom: news@example.org\nTo: anna@example.com\nMessage-ID: <c1.r9@example.org>\nSubject: News\n\n--B--\n"
    )
}

#[test]
fn dsn_user_unknown_is_hard_and_maps_back_by_verp() {
    let raw = dsn("5.1.1", "550 5.1.1 <anna@example.com>: Recipient address rejected: User unknown in local recipient table");
    check(&raw, Want { kind: Kind::Bounce, recipient: Some("anna@example.com"), reason: Some(Reason::UserUnknown), hard: true, status: Some("5.1.1") });
    let r = classify(raw.as_bytes());
    assert_eq!(r.verp_token.as_deref(), Some("m7r42.sig"));
    assert_eq!(r.original_message_id.as_deref(), Some("c1.r9@example.org"));
}

#[test]
fn mailbox_full_is_soft_even_with_a_5xx() {
    let raw = dsn("5.2.2", "552 5.2.2 Mailbox full");
    check(&raw, Want { kind: Kind::Bounce, recipient: Some("anna@example.com"), reason: Some(Reason::MailboxFull), hard: false, status: Some("5.2.2") });
}

#[test]
fn blocked_by_a_blocklist_is_soft() {
    let raw = dsn("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.9] blocked using zen.spamhaus.org");
    check(&raw, Want { kind: Kind::Bounce, recipient: Some("anna@example.com"), reason: Some(Reason::Blocked), hard: false, status: Some("5.7.1") });
}

#[test]
fn unknown_host_is_hard() {
    let raw = dsn("5.1.2", "Host or domain name not found. Name service error for name=example.invalid type=A: Host not found");
    check(&raw, Want { kind: Kind::Bounce, recipient: Some("anna@example.com"), reason: Some(Reason::HostUnknown), hard: true, status: Some("5.1.2") });
}

#[test]
fn exim_text_bounce_without_dsn() {
    let raw = "From: Mail Delivery System <Mailer-Daemon@mx.example.net>\nTo: news@example.org\nSubject: Mail delivery failed: returning message to sender\nX-Failed-Recipients: bob@example.com\n\n\
This message was created automatically by mail delivery software.\n\n\
A message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n\
  bob@example.com\n    host in.example.com [192.0.2.7]\n    SMTP error from remote mail server after RCPT TO:<bob@example.com>:\n    550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown\n\n\
------ This is a copy of the message, including all the headers. ------\n\nFrom: news@example.org\nTo: bob@example.com\nSubject: News\n\nHello\n";
    check(raw, Want { kind: Kind::Bounce, recipient: Some("bob@example.com"), reason: Some(Reason::UserUnknown), hard: true, status: Some("5.1.1") });
}

#[test]
fn qmail_quota_is_mailbox_full() {
    let raw = "From: MAILER-DAEMON@mx.example.net\nTo: news@example.org\nSubject: failure notice\n\n\
Hi. This is the qmail-send program at mx.example.net.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n\
<carla@example.com>:\nuser is over quota\n\n--- Below this line is a copy of the message.\n\nFrom: news@example.org\nTo: carla@example.com\n\nHi\n";
    check(raw, Want { kind: Kind::Bounce, recipient: Some("carla@example.com"), reason: Some(Reason::MailboxFull), hard: false, status: None });
}

#[test]
fn arf_complaint() {
    let raw = "From: feedback@fbl.example.com\nTo: fbl@example.org\nSubject: complaint\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"F\"\n\n\
--F\nContent-Type: text/plain\n\nThis is an email abuse report.\n\n--F\nContent-Type: message/feedback-report\n\n\
Feedback-Type: abuse\nUser-Agent: SomeFBL/1.0\nVersion: 1\nOriginal-Rcpt-To: <dora@example.com>\n\n\
--F\nContent-Type: message/rfc822\n\nFrom: news@example.org\nTo: dora@example.com\nSubject: News\n\nHi\n--F--\n";
    check(raw, Want { kind: Kind::Complaint, recipient: Some("dora@example.com"), reason: Some(Reason::Feedback), hard: false, status: None });
}

#[test]
fn out_of_office_is_not_a_bounce() {
    let raw = "From: Erin <erin@example.com>\nTo: news@example.org\nSubject: Out of Office: News\nAuto-Submitted: auto-replied\n\nI am out of the office until Monday.\n";
    check(raw, Want { kind: Kind::AutoReply, recipient: Some("erin@example.com"), reason: Some(Reason::Vacation), hard: false, status: None });
    assert!(!classify(raw.as_bytes()).is_bounce());
}

#[test]
fn ordinary_mail_and_garbage_are_not_bounces() {
    let raw = "From: Fred <fred@example.com>\nTo: news@example.org\nSubject: Re: News\n\nThanks, see you on the 5th.\n";
    check(raw, Want { kind: Kind::NotBounce, recipient: None, reason: None, hard: false, status: None });
    let r = classify(b"\xff\xfe\x00 not mail at all");
    assert!(!r.is_bounce());
}

#[test]
fn truncated_dsn_does_not_panic() {
    let raw = dsn("5.1.1", "550 5.1.1 unknown");
    for cut in (0..raw.len()).step_by(37) {
        let _ = classify(&raw.as_bytes()[..cut]);
    }
}
