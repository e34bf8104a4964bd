//! The parser on our fixtures, without peers: one `check(fixture,
//! expected)` per case. Bad input (empty, garbage, deep nesting, huge
//! headers) must still give a message and never panic.

use crate::harness::fixture;
use mailgate::classify::Kind;
use mailgate::parse::{ParseOptions, flag, parse};

/// What a parse must show; `None` fields are not checked.
#[derive(Default)]
struct Expect<'a> {
    subject: Option<&'a str>,
    text_contains: &'a [&'a str],
    text_lacks: &'a [&'a str],
    html_contains: &'a [&'a str],
    html_lacks: &'a [&'a str],
    attachments: Option<&'a [(&'a str, &'a str)]>,
    flags: &'a [&'a str],
    kind: Option<Kind>,
    is_auto: Option<bool>,
    from: Option<&'a str>,
}

fn check(name: &str, e: Expect<'_>) {
    let raw = fixture(name);
    let got = parse(&raw, &ParseOptions { loop_token: "test-desk".into(), ..ParseOptions::default() });
    let m = &got.mail;
    if let Some(s) = e.subject {
        assert_eq!(m.subject, s, "{name}: subject");
    }
    for t in e.text_contains {
        assert!(m.text.contains(t), "{name}: text lacks {t:?}: {:?}", m.text);
    }
    for t in e.text_lacks {
        assert!(!m.text.contains(t), "{name}: text has {t:?}: {:?}", m.text);
    }
    let html = m.html_sanitized.clone().unwrap_or_default();
    for t in e.html_contains {
        assert!(html.contains(t), "{name}: html lacks {t:?}: {html}");
    }
    for t in e.html_lacks {
        assert!(!html.contains(t), "{name}: html has {t:?}: {html}");
    }
    if let Some(atts) = e.attachments {
        let got: Vec<(String, String)> =
            m.attachments.iter().map(|a| (a.filename.clone().unwrap_or_default(), a.content_type.clone())).collect();
        let want: Vec<(String, String)> = atts.iter().map(|(n, c)| (n.to_string(), c.to_string())).collect();
        assert_eq!(got, want, "{name}: attachments");
    }
    for f in e.flags {
        assert!(m.flags.iter().any(|x| x == f), "{name}: flag {f:?} missing in {:?}", m.flags);
    }
    if let Some(k) = e.kind {
        assert_eq!(got.verdict.kind, k, "{name}: verdict");
    }
    if let Some(a) = e.is_auto {
        assert_eq!(m.is_auto, a, "{name}: is_auto");
    }
    if let Some(f) = e.from {
        assert_eq!(m.from.as_ref().map(|a| a.as_str()), Some(f), "{name}: from");
    }
}

#[test]
fn charsets() {
    check("latin1.eml", Expect { subject: Some("Caffè rotto"), text_contains: &["più, perché?"], from: Some("ada@customer.test"), kind: Some(Kind::Human), is_auto: Some(false), ..Default::default() });
    check("cp1252.eml", Expect { text_contains: &["“100 €”"], ..Default::default() });
    check("iso2022jp.eml", Expect { subject: Some("プリンターの故障"), text_contains: &["プリンターが動きません"], ..Default::default() });
    check("gb18030.eml", Expect { subject: Some("发票问题"), text_contains: &["我的发票有错误"], ..Default::default() });
    // Declared UTF-8, really Latin-1: the ASCII survives and nothing panics.
    check("broken_charset.eml", Expect { text_contains: &["vu: la fen"], ..Default::default() });
    check("unknown_charset.eml", Expect { text_contains: &["plain ascii survives"], ..Default::default() });
}

#[test]
fn bodies() {
    check(
        "alternative.eml",
        Expect {
            text_contains: &["It still fails after the reset."],
            text_lacks: &["Please reset your password", "wrote:"],
            html_contains: &["<b>fails</b>"],
            html_lacks: &["<script", "onclick", "tracker.example"],
            ..Default::default()
        },
    );
    check(
        "html_only.eml",
        Expect { text_contains: &["Where is my order & when will it arrive?"], text_lacks: &["Old ticket text"], flags: &[flag::HTML_ONLY], ..Default::default() },
    );
}

#[test]
fn attachments() {
    check(
        "attachments.eml",
        Expect {
            text_contains: &["See the attached files."],
            attachments: Some(&[
                ("résumé final.pdf", "application/pdf"),
                ("schermata è.png", "image/png"),
                ("winmail.dat", "application/ms-tnef"),
            ]),
            flags: &[flag::TNEF],
            ..Default::default()
        },
    );
    let raw = fixture("attachments.eml");
    let small = parse(&raw, &ParseOptions { max_attachment_bytes: 10, ..ParseOptions::default() });
    assert!(small.mail.flags.iter().any(|f| f == flag::ATTACHMENT_TOO_LARGE));
    assert!(small.mail.attachments.iter().all(|a| a.data.len() <= 10));
}

#[test]
fn machines() {
    check("autoreply.eml", Expect { kind: Some(Kind::AutoReply), is_auto: Some(true), flags: &["auto:auto-submitted"], ..Default::default() });
    check("bulk.eml", Expect { kind: Some(Kind::Bulk), is_auto: Some(true), ..Default::default() });
    check("dsn.eml", Expect { kind: Some(Kind::Bounce), is_auto: Some(true), flags: &["auto:delivery status notification"], ..Default::default() });
}

#[test]
fn hostile_and_broken_input() {
    check("injection.eml", Expect { subject: Some("hello Bcc: victim@x.test"), flags: &[flag::NO_MESSAGE_ID], ..Default::default() });
    let opts = ParseOptions::default();
    // Empty input: still a message, flagged, with the raw attached.
    let empty = parse(b"", &opts);
    assert!(empty.mail.flags.iter().any(|f| f == flag::UNPARSABLE || f == flag::NO_SENDER), "{:?}", empty.mail.flags);
    // Binary garbage.
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let g = parse(&garbage, &opts);
    assert!(g.mail.from.is_none());
    assert!(g.mail.flags.iter().any(|f| f == flag::UNPARSABLE), "{:?}", g.mail.flags);
    assert_eq!(g.mail.attachments[0].data, garbage, "the raw source is attached");
    // Deeply nested multiparts.
    let mut deep = String::from("From: a@b.test\r\nSubject: deep\r\nMIME-Version: 1.0\r\n");
    for i in 0..500 {
        deep.push_str(&format!("Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"));
    }
    deep.push_str("Content-Type: text/plain\r\n\r\ninnermost\r\n");
    let d = parse(deep.as_bytes(), &opts);
    assert_eq!(d.mail.subject, "deep");
    // A huge header and a very long subject.
    let long = format!("From: a@b.test\r\nSubject: {}\r\nX-Junk: {}\r\n\r\nbody\r\n", "s".repeat(5000), "j".repeat(1_000_000));
    let l = parse(long.as_bytes(), &opts);
    assert!(l.mail.subject.len() <= 1000);
    // Every prefix of a real fixture parses without panicking.
    let raw = fixture("attachments.eml");
    for cut in (0..raw.len()).step_by(7) {
        let _ = parse(&raw[..cut], &opts);
    }
}

#[test]
fn unusual_headers_still_have_an_author_or_a_body() {
    // Only MIME headers: a message with a body and an attachment, not noise.
    check(
        "mime_entity_only.eml",
        Expect {
            subject: Some(""),
            text_contains: &["Only MIME headers"],
            attachments: Some(&[("report.csv", "text/csv")]),
            flags: &[flag::NO_SENDER],
            ..Default::default()
        },
    );
    let raw = fixture("mime_entity_only.eml");
    let m = parse(&raw, &ParseOptions::default());
    assert!(!m.mail.flags.iter().any(|f| f == flag::UNPARSABLE), "{:?}", m.mail.flags);
    // From without an address: Sender is the author, From's name is kept.
    check("sender_fallback.eml", Expect { from: Some("assistant@customer.test"), flags: &[flag::SENDER_FALLBACK], is_auto: Some(false), ..Default::default() });
    let s = parse(&fixture("sender_fallback.eml"), &ParseOptions::default());
    assert_eq!(s.mail.from_name.as_deref(), Some("Ada Lovelace"));
    // No From, no Sender: the envelope sender.
    check("return_path_only.eml", Expect { from: Some("envelope@customer.test"), flags: &[flag::SENDER_FALLBACK], ..Default::default() });
    // The null return path is nobody.
    let n = parse(&fixture("null_return_path.eml"), &ParseOptions::default());
    assert!(n.mail.from.is_none());
    assert!(n.mail.flags.iter().any(|f| f == flag::NO_SENDER), "{:?}", n.mail.flags);
    assert!(!n.mail.flags.iter().any(|f| f == flag::SENDER_FALLBACK));
}
