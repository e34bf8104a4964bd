//! Data-driven parser tests: every case goes through one `check` helper
//! that parses the input and compares a compact rendering of what came out.

use sip::msg::{self, ParseError};

/// What a parse produced, flattened to compare in one assertion.
#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// start, call-id, cseq, from-tag, to-tag, branch, body
    Ok { start: &'static str, call_id: &'static str, cseq: &'static str, from_tag: Option<&'static str>, branch: &'static str, body: &'static str },
    Err(ParseError),
}

fn check(input: &str, expected: Expect) {
    let got = match msg::parse(input.as_bytes()) {
        Ok(m) => {
            let start = match m.method() {
                Some(meth) => meth.to_string(),
                None => m.status().map(|s| s.to_string()).unwrap_or_default(),
            };
            let exp_start = match &expected { Expect::Ok { start, .. } => *start, _ => "" };
            assert_eq!(start, exp_start, "start of {input:?}");
            let cseq = format!("{} {}", m.cseq, m.cseq_method);
            let call_id = m.call_id.to_string();
            let from_tag = m.from_tag.clone();
            let branch = m.via.branch.clone().unwrap_or_default();
            let body = String::from_utf8_lossy(m.body()).into_owned();
            // Every message we accept must re-serialise to something we accept.
            let again = msg::parse(&m.to_bytes()).expect("round trip");
            assert_eq!(again.call_id, m.call_id);
            assert_eq!(again.body(), m.body());
            return match expected {
                Expect::Ok { call_id: c, cseq: q, from_tag: f, branch: b, body: bd, .. } => {
                    assert_eq!((call_id.as_str(), cseq.as_str(), from_tag.as_deref(), branch.as_str(), body.as_str()), (c, q, f, b, bd), "input {input:?}");
                }
                Expect::Err(e) => panic!("expected {e:?}, parsed {input:?}"),
            };
        }
        Err(e) => Expect::Err(e),
    };
    assert_eq!(got, expected, "input {input:?}");
}

const INVITE: &str = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@127.0.0.1>;tag=a1\r\n\
To: <sip:bob@127.0.0.1>\r\n\
Call-ID: c1@host\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5062>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

fn ok(start: &'static str, cseq: &'static str, body: &'static str) -> Expect {
    Expect::Ok { start, call_id: "c1@host", cseq, from_tag: Some("a1"), branch: "z9hG4bK1", body }
}

#[test]
fn plain_invite() {
    check(INVITE, ok("INVITE", "1 INVITE", "v=0\n"));
}

#[test]
fn compact_forms() {
    let compact = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
f: <sip:alice@127.0.0.1>;tag=a1\r\n\
t: <sip:bob@127.0.0.1>\r\n\
i: c1@host\r\n\
CSeq: 1 INVITE\r\n\
m: <sip:alice@127.0.0.1:5062>\r\n\
c: application/sdp\r\n\
k: timer\r\n\
s: hello\r\n\
l: 4\r\n\r\nv=0\n";
    check(compact, ok("INVITE", "1 INVITE", "v=0\n"));
    let m = msg::parse(compact.as_bytes()).unwrap();
    assert_eq!(m.header("Supported").as_deref(), Some("timer"));
    assert_eq!(m.header("Subject").as_deref(), Some("hello"));
    assert!(m.header("Contact").is_some());
}

#[test]
fn folded_lines() {
    let folded = "SIP/2.0 401 Unauthorized\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
From: <sip:alice@127.0.0.1>;tag=a1\r\n\
To: <sip:bob@127.0.0.1>;tag=b\r\n\
Call-ID: c1@host\r\n\
CSeq: 1 INVITE\r\n\
WWW-Authenticate: Digest realm=\"r\",\r\n nonce=\"n\",\r\n\talgorithm=SHA-256, qop=\"auth\"\r\n\
Content-Length: 0\r\n\r\n";
    check(folded, ok("401", "1 INVITE", ""));
    let m = msg::parse(folded.as_bytes()).unwrap();
    let ch = sip::digest::Challenge::parse(&m.header("WWW-Authenticate").unwrap()).unwrap();
    assert_eq!(ch.algorithm, sip::digest::Algorithm::Sha256);
    assert_eq!(ch.nonce, "n");
}

#[test]
fn via_lists_are_split() {
    let s = INVITE.replace(
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1;rport\r\n",
        "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1;rport, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKx\r\n",
    );
    check(&s, ok("INVITE", "1 INVITE", "v=0\n"));
    assert_eq!(msg::parse(s.as_bytes()).unwrap().header_values("Via").len(), 2);
}

#[test]
fn content_length_cases() {
    // Extra bytes after Content-Length are dropped on datagrams.
    check(&format!("{INVITE}garbage"), ok("INVITE", "1 INVITE", "v=0\n"));
    // A length longer than the datagram is a lie.
    check(&INVITE.replace("Content-Length: 4", "Content-Length: 40"), Expect::Err(ParseError::ContentLength));
    check(&INVITE.replace("Content-Length: 4", "Content-Length: x"), Expect::Err(ParseError::ContentLength));
    // Without Content-Length the datagram's end is the body's end.
    check(&INVITE.replace("Content-Length: 4\r\n", ""), ok("INVITE", "1 INVITE", "v=0\n"));
}

#[test]
fn malformed_cases() {
    let cases: &[(&str, ParseError)] = &[
        ("", ParseError::Truncated),
        ("INVITE sip:bob@x SIP/2.0\r\nVia: x", ParseError::Truncated),
        ("\r\n\r\n", ParseError::StartLine),
        ("INVITE sip:bob@x SIP/2.0\r\nNo colon here\r\n\r\n", ParseError::HeaderLine("No colon here".into())),
        (" Via: x\r\n\r\n", ParseError::StartLine),
    ];
    for (input, err) in cases {
        check(input, Expect::Err(err.clone()));
    }
    // Header injection: a bare LF inside a header value.
    check(&INVITE.replace("Subject", "X").replace("CSeq: 1 INVITE", "CSeq: 1 INVITE\nX-Evil: 1"), Expect::Err(ParseError::HeaderLine("control character".into())));
    // Missing mandatory header.
    check(&INVITE.replace("Call-ID: c1@host\r\n", ""), Expect::Err(ParseError::Mandatory("Call-ID")));
    // CSeq method disagreeing with the request method.
    check(&INVITE.replace("CSeq: 1 INVITE", "CSeq: 1 BYE"), Expect::Err(ParseError::Mandatory("CSeq")));
    // Too large.
    let big = format!("{INVITE}{}", "a".repeat(70_000));
    check(&big, Expect::Err(ParseError::TooLarge(big.len())));
    // Too many headers.
    let many = INVITE.replace("Max-Forwards: 70\r\n", &"X-A: 1\r\n".repeat(300));
    check(&many, Expect::Err(ParseError::TooManyHeaders));
}

#[test]
fn bad_request_is_built_when_possible() {
    let broken = INVITE.replace("Content-Length: 4", "Content-Length: 99");
    let err = msg::parse(broken.as_bytes()).unwrap_err();
    let resp = msg::bad_request_for(broken.as_bytes(), &err).expect("a 400");
    let m = msg::parse(&resp).expect("our 400 parses");
    assert_eq!(m.status(), Some(400));
    assert_eq!(m.via.branch.as_deref(), Some("z9hG4bK1"));
    // No 400 for garbage, responses or ACK.
    assert!(msg::bad_request_for(b"\x00\x01garbage", &err).is_none());
    assert!(msg::bad_request_for(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", &err).is_none());
    assert!(msg::bad_request_for(INVITE.replace("INVITE sip", "ACK sip").as_bytes(), &err).is_none());
}

#[test]
fn random_garbage_never_panics() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for i in 0..3000 {
        let mut bytes = INVITE.as_bytes().to_vec();
        for _ in 0..(i % 8 + 1) {
            let at = rng.random_range(0..bytes.len());
            match rng.random_range(0..3) {
                0 => bytes[at] = rng.random(),
                1 => { bytes.remove(at); }
                _ => bytes.insert(at, rng.random()),
            }
        }
        if let Err(e) = msg::parse(&bytes) {
            let _ = msg::bad_request_for(&bytes, &e);
        }
    }
    for _ in 0..500 {
        let n = rng.random_range(0..2000);
        let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
        let _ = msg::parse(&bytes);
    }
}

#[test]
fn status_codes_outside_100_699_or_not_three_digits_are_refused() {
    // Found by the msg_parse fuzz target: rsip read "090" as 90, which we
    // then could not serialise back into a message.
    for code in ["090", "099", "700", "1000", "20"] {
        let m = format!("SIP/2.0 {code} X\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n");
        assert!(sip::msg::parse(m.as_bytes()).is_err(), "{code}");
    }
}
