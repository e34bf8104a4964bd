//! The sans-IO endpoint driven with injected time: a scripted peer answers
//! what it transmits, and the clock only moves when the test says so.

use sip::msg::{self, Message};
use sip::{Config, Dial, DigestAuth, Endpoint, Event, Input, Outcome};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// An endpoint that trusts the scripted trunks at 127.0.0.9 and 127.0.0.1 (any port).
pub fn endpoint() -> Endpoint {
    let mut cfg = Config::new(addr("127.0.0.1:5060"));
    cfg.trusted_trunks = vec!["127.0.0.9".parse().unwrap(), "127.0.0.1".parse().unwrap()];
    Endpoint::new(cfg, None)
}

fn drain(ep: &mut Endpoint) -> Vec<(SocketAddr, Message)> {
    let mut out = Vec::new();
    while let Some(t) = ep.poll_transmit() {
        let m = msg::parse(&t.data).unwrap_or_else(|e| panic!("we sent unparsable {e}: {}", String::from_utf8_lossy(&t.data)));
        out.push((t.dest, m));
    }
    out
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.pop_event()).collect()
}

/// A response to `req` as a peer would write it.
fn reply(req: &Message, status: &str, to_tag: Option<&str>, extra: &str, body: &str) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {status}\r\n");
    for v in req.header_values("Via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    let to = req.header("To").unwrap();
    let to = match to_tag {
        Some(t) if req.to_tag.is_none() => format!("{to};tag={t}"),
        _ => to,
    };
    s.push_str(&format!("From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}", req.header("From").unwrap(), req.call_id, req.header("CSeq").unwrap()));
    s.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    s.into_bytes()
}

fn feed(ep: &mut Endpoint, now: Instant, from: SocketAddr, data: &[u8]) {
    ep.handle(now, Input::Datagram { from, data });
}

/// Advances the clock to each timeout up to `until`, collecting transmits.
fn run_until(ep: &mut Endpoint, mut now: Instant, until: Instant) -> Vec<(Instant, Message)> {
    let mut out = Vec::new();
    while let Some(t) = ep.poll_timeout() {
        if t > until {
            break;
        }
        now = now.max(t);
        ep.handle(now, Input::Timeout);
        out.extend(drain(ep).into_iter().map(|(_, m)| (now, m)));
    }
    out
}

fn dial(ep: &mut Endpoint, now: Instant, trunk: SocketAddr) -> sip::CallId {
    ep.dial(now, Dial { trunk, number: "+15551234".into(), caller: "100".into(), rtp: addr("127.0.0.1:40000"), auth: None, ring_timeout: None }).unwrap()
}

const TRUNK: &str = "127.0.0.1:5070";

#[test]
fn options_get_200() {
    let mut ep = endpoint();
    let now = Instant::now();
    let req = "OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKo1\r\nFrom: <sip:a@127.0.0.1>;tag=x\r\nTo: <sip:b@127.0.0.1>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    feed(&mut ep, now, addr("127.0.0.1:5071"), req.as_bytes());
    let out = drain(&mut ep);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, addr("127.0.0.1:5071"));
    assert_eq!(out[0].1.status(), Some(200));
    // A retransmitted OPTIONS is absorbed by the transaction and re-answered.
    feed(&mut ep, now, addr("127.0.0.1:5071"), req.as_bytes());
    assert_eq!(drain(&mut ep).len(), 1);
    // Timer J ends the server transaction.
    run_until(&mut ep, now, now + Duration::from_secs(33));
    assert_eq!(ep.transaction_count(), (0, 0));
}

#[test]
fn outbound_answered_then_bye() {
    let mut ep = endpoint();
    let now = Instant::now();
    let id = dial(&mut ep, now, addr(TRUNK));
    let out = drain(&mut ep);
    assert_eq!(out.len(), 1);
    let (dest, invite) = &out[0];
    assert_eq!(*dest, addr(TRUNK));
    assert_eq!(invite.method(), Some(rsip::Method::Invite));
    let sdp = String::from_utf8_lossy(invite.body()).into_owned();
    assert!(sdp.contains("RTP/AVP 0 8 101") && sdp.contains("telephone-event/8000"), "{sdp}");
    assert!(invite.via.rport);

    feed(&mut ep, now, addr(TRUNK), &reply(invite, "100 Trying", None, "", ""));
    feed(&mut ep, now, addr(TRUNK), &reply(invite, "180 Ringing", Some("t1"), "", ""));
    feed(&mut ep, now, addr(TRUNK), &reply(invite, "183 Session Progress", Some("t1"), "Content-Type: application/sdp\r\n", "v=0\r\n"));
    let rr = "Record-Route: <sip:127.0.0.1:5080;lr>, <sip:127.0.0.1:5081;lr>\r\nContact: <sip:peer@127.0.0.1:5090>\r\nContent-Type: application/sdp\r\n";
    let ok = reply(invite, "200 OK", Some("t1"), rr, "v=0\r\n");
    feed(&mut ep, now, addr(TRUNK), &ok);
    let ev = events(&mut ep);
    assert!(matches!(&ev[0], Event::Progress { status: 180, sdp: None, .. }));
    assert!(matches!(&ev[1], Event::Progress { status: 183, sdp: Some(_), .. }));
    assert!(matches!(&ev[2], Event::Answered { call, .. } if *call == id));
    let out = drain(&mut ep);
    assert_eq!(out.len(), 1);
    let (dest, ack) = &out[0];
    assert_eq!(ack.method(), Some(rsip::Method::Ack));
    // The ACK for a 2xx is a new transaction, goes via the route set
    // (reversed Record-Route) to the first hop, and targets the Contact.
    assert_ne!(ack.via.branch, invite.via.branch);
    assert_eq!(*dest, addr("127.0.0.1:5081"));
    assert_eq!(ack.request_uri().unwrap(), "sip:peer@127.0.0.1:5090");
    assert_eq!(ack.header_values("Route").len(), 2);
    assert_eq!(ack.to_tag.as_deref(), Some("t1"));
    assert_eq!(ack.cseq, invite.cseq);
    // A retransmitted 200 is ACKed again.
    feed(&mut ep, now, addr(TRUNK), &ok);
    assert_eq!(drain(&mut ep)[0].1.method(), Some(rsip::Method::Ack));

    ep.hangup(now, &id).unwrap();
    let out = drain(&mut ep);
    let bye = &out[0].1;
    assert_eq!(bye.method(), Some(rsip::Method::Bye));
    assert_eq!(bye.cseq, invite.cseq + 1);
    assert_eq!(bye.call_id, invite.call_id);
    feed(&mut ep, now, addr("127.0.0.1:5081"), &reply(bye, "200 OK", None, "", ""));
    assert_eq!(events(&mut ep), vec![Event::Ended { call: id, outcome: Outcome::Completed { by_remote: false }, status: None }]);
    run_until(&mut ep, now, now + Duration::from_secs(60));
    assert_eq!((ep.transaction_count(), ep.call_count()), ((0, 0), 0));
}

#[test]
fn timer_a_retransmits_and_timer_b_gives_408() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let id = dial(&mut ep, t0, addr(TRUNK));
    drain(&mut ep);
    let sent = run_until(&mut ep, t0, t0 + Duration::from_secs(40));
    let at: Vec<u64> = sent.iter().map(|(t, _)| t.duration_since(t0).as_millis() as u64).collect();
    // Timer A: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s (doubling, no cap for INVITE).
    assert_eq!(at, vec![500, 1500, 3500, 7500, 15500, 31500]);
    let ev = events(&mut ep);
    assert_eq!(ev, vec![Event::Ended { call: id, outcome: Outcome::NoAnswer, status: Some(408) }]);
    assert_eq!(ep.transaction_count(), (0, 0));
    assert_eq!(ep.poll_timeout(), None);
}

#[test]
fn busy_is_acked_on_the_invite_branch() {
    let mut ep = endpoint();
    let now = Instant::now();
    let id = dial(&mut ep, now, addr(TRUNK));
    let invite = drain(&mut ep).remove(0).1;
    let busy = reply(&invite, "486 Busy Here", Some("b"), "", "");
    feed(&mut ep, now, addr(TRUNK), &busy);
    let ack = drain(&mut ep).remove(0).1;
    assert_eq!(ack.method(), Some(rsip::Method::Ack));
    assert_eq!(ack.via.branch, invite.via.branch);
    assert_eq!(ack.to_tag.as_deref(), Some("b"));
    assert_eq!(events(&mut ep), vec![Event::Ended { call: id, outcome: Outcome::Busy, status: Some(486) }]);
    // The retransmitted 486 is ACKed again (timer D keeps the transaction).
    feed(&mut ep, now, addr(TRUNK), &busy);
    assert_eq!(drain(&mut ep).len(), 1);
    run_until(&mut ep, now, now + Duration::from_secs(33));
    assert_eq!(ep.transaction_count(), (0, 0));
}

#[test]
fn outcome_mapping() {
    for (status, outcome) in [
        ("600 Busy Everywhere", Outcome::Busy),
        ("480 Temporarily Unavailable", Outcome::NoAnswer),
        ("408 Request Timeout", Outcome::NoAnswer),
        ("404 Not Found", Outcome::BadNumber),
        ("484 Address Incomplete", Outcome::BadNumber),
        ("503 Service Unavailable", Outcome::CarrierTrouble { retry_after: Some(30) }),
        ("403 Forbidden", Outcome::Rejected),
        ("401 Unauthorized", Outcome::AuthFailed),
    ] {
        let mut ep = endpoint();
        let now = Instant::now();
        dial(&mut ep, now, addr(TRUNK));
        let invite = drain(&mut ep).remove(0).1;
        feed(&mut ep, now, addr(TRUNK), &reply(&invite, status, Some("x"), "Retry-After: 30\r\n", ""));
        match events(&mut ep).as_slice() {
            [Event::Ended { outcome: o, .. }] => assert_eq!(*o, outcome, "{status}"),
            other => panic!("{status}: {other:?}"),
        }
    }
}

#[test]
fn digest_challenge_is_answered() {
    let mut ep = endpoint();
    let now = Instant::now();
    let id = ep
        .dial(now, Dial { trunk: addr(TRUNK), number: "5551234".into(), caller: "100".into(), rtp: addr("127.0.0.1:40000"), auth: Some(DigestAuth { username: "acct".into(), password: "pw".into() }), ring_timeout: None })
        .unwrap();
    let invite = drain(&mut ep).remove(0).1;
    for (status, hdr_in, hdr_out) in [("401 Unauthorized", "WWW-Authenticate", "Authorization"), ("407 Proxy Authentication Required", "Proxy-Authenticate", "Proxy-Authorization")] {
        let mut ep2 = endpoint();
        let id2 = ep2
            .dial(now, Dial { trunk: addr(TRUNK), number: "5551234".into(), caller: "100".into(), rtp: addr("127.0.0.1:40000"), auth: Some(DigestAuth { username: "acct".into(), password: "pw".into() }), ring_timeout: None })
            .unwrap();
        let inv = drain(&mut ep2).remove(0).1;
        let ch = format!("{hdr_in}: Digest realm=\"carrier\", nonce=\"abc\", algorithm=SHA-256, qop=\"auth\"\r\n");
        feed(&mut ep2, now, addr(TRUNK), &reply(&inv, status, Some("c"), &ch, ""));
        let out = drain(&mut ep2);
        assert_eq!(out.len(), 2, "ACK then the new INVITE");
        assert_eq!(out[0].1.method(), Some(rsip::Method::Ack));
        let again = &out[1].1;
        assert_eq!((again.cseq, &again.call_id, &again.from_tag), (inv.cseq + 1, &inv.call_id, &inv.from_tag));
        assert_ne!(again.via.branch, inv.via.branch);
        let auth = sip::digest::Credentials::parse(&again.header(hdr_out).unwrap()).unwrap();
        assert_eq!(auth.algorithm, sip::digest::Algorithm::Sha256);
        assert!(auth.verify("pw", "INVITE"));
        assert!(events(&mut ep2).is_empty());
        // A second challenge after our answer is not answered forever.
        feed(&mut ep2, now, addr(TRUNK), &reply(again, status, Some("c"), &ch, ""));
        let third = drain(&mut ep2).pop().unwrap().1;
        feed(&mut ep2, now, addr(TRUNK), &reply(&third, status, Some("c"), &ch, ""));
        let ev = events(&mut ep2);
        assert!(matches!(ev.as_slice(), [Event::Ended { call, outcome: Outcome::AuthFailed, .. }] if *call == id2), "{ev:?}");
    }
    let _ = (id, invite);
}

#[test]
fn ring_timeout_cancels_and_487_means_no_answer() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let id = ep
        .dial(t0, Dial { trunk: addr(TRUNK), number: "5551234".into(), caller: "100".into(), rtp: addr("127.0.0.1:40000"), auth: None, ring_timeout: Some(Duration::from_secs(20)) })
        .unwrap();
    let invite = drain(&mut ep).remove(0).1;
    feed(&mut ep, t0, addr(TRUNK), &reply(&invite, "180 Ringing", Some("r"), "", ""));
    events(&mut ep);
    assert_eq!(ep.poll_timeout(), Some(t0 + Duration::from_secs(20)));
    let sent = run_until(&mut ep, t0, t0 + Duration::from_secs(20));
    let cancel = &sent[0].1;
    assert_eq!(cancel.method(), Some(rsip::Method::Cancel));
    assert_eq!(cancel.via.branch, invite.via.branch);
    assert_eq!(cancel.to_tag, None);
    let now = t0 + Duration::from_secs(20);
    feed(&mut ep, now, addr(TRUNK), &reply(cancel, "200 OK", Some("r"), "", ""));
    feed(&mut ep, now, addr(TRUNK), &reply(&invite, "487 Request Terminated", Some("r"), "", ""));
    assert_eq!(drain(&mut ep)[0].1.method(), Some(rsip::Method::Ack));
    assert_eq!(events(&mut ep), vec![Event::Ended { call: id, outcome: Outcome::NoAnswer, status: Some(487) }]);
}

#[test]
fn cancel_that_gets_no_487_still_ends_the_call() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let id = dial(&mut ep, t0, addr(TRUNK));
    let invite = drain(&mut ep).remove(0).1;
    feed(&mut ep, t0, addr(TRUNK), &reply(&invite, "183 Session Progress", Some("r"), "", ""));
    ep.hangup(t0, &id).unwrap();
    assert_eq!(drain(&mut ep)[0].1.method(), Some(rsip::Method::Cancel));
    events(&mut ep);
    run_until(&mut ep, t0, t0 + Duration::from_secs(70));
    assert_eq!(events(&mut ep), vec![Event::Ended { call: id, outcome: Outcome::Cancelled, status: None }]);
    run_until(&mut ep, t0, t0 + Duration::from_secs(200));
    assert_eq!((ep.transaction_count(), ep.call_count(), ep.poll_timeout()), ((0, 0), 0, None));
}

const INBOUND: &str = "INVITE sip:+3912345@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKin1;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Anon\" <sip:anonymous@127.0.0.1>;tag=caller1\r\n\
To: <sip:+3912345@127.0.0.1>\r\n\
Call-ID: in-1@127.0.0.1\r\n\
CSeq: 7 INVITE\r\n\
P-Asserted-Identity: \"Mario Rossi\" <sip:+390612345678@127.0.0.1>\r\n\
Contact: <sip:caller@127.0.0.1:5062>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 0\r\n\r\n";

#[test]
fn inbound_call_raises_event_then_answer_retransmits_until_ack() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    // The packet comes from another port than the Via says: rport wins.
    let src = addr("127.0.0.9:40001");
    feed(&mut ep, t0, src, INBOUND.as_bytes());
    let out = drain(&mut ep);
    assert_eq!(out[0].1.status(), Some(100));
    assert_eq!(out[0].0, src);
    let via = out[0].1.header("Via").unwrap();
    assert!(via.contains("rport=40001") && via.contains("received=127.0.0.9"), "{via}");
    let ev = events(&mut ep);
    let Event::Incoming(inc) = &ev[0] else { panic!("{ev:?}") };
    assert_eq!((inc.caller.as_str(), inc.caller_display.as_deref(), inc.callee.as_str()), ("+390612345678", Some("Mario Rossi"), "+3912345"));
    let id = inc.call.clone();
    ep.ring(t0, &id).unwrap();
    assert_eq!(drain(&mut ep)[0].1.status(), Some(180));
    ep.answer(t0, &id, b"v=0\r\n".to_vec()).unwrap();
    let ok = drain(&mut ep).remove(0).1;
    assert_eq!(ok.status(), Some(200));
    assert!(ok.to_tag.is_some() && ok.header("Contact").is_some());
    // Timer G schedule for the 2xx until the ACK arrives.
    let sent = run_until(&mut ep, t0, t0 + Duration::from_millis(3600));
    assert_eq!(sent.iter().map(|(t, _)| t.duration_since(t0).as_millis() as u64).collect::<Vec<_>>(), vec![500, 1500, 3500]);
    let ack = format!(
        "ACK sip:centralino@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKack\r\nFrom: \"Anon\" <sip:anonymous@127.0.0.1>;tag=caller1\r\nTo: <sip:+3912345@127.0.0.1>;tag={}\r\nCall-ID: in-1@127.0.0.1\r\nCSeq: 7 ACK\r\nContent-Length: 0\r\n\r\n",
        ok.to_tag.clone().unwrap()
    );
    let t1 = t0 + Duration::from_secs(4);
    feed(&mut ep, t1, src, ack.as_bytes());
    assert!(run_until(&mut ep, t1, t1 + Duration::from_secs(60)).is_empty());
    // The caller hangs up.
    let bye = ack.replace("ACK sip", "BYE sip").replace("7 ACK", "8 BYE").replace("z9hG4bKack", "z9hG4bKbye");
    feed(&mut ep, t1, src, bye.as_bytes());
    assert_eq!(drain(&mut ep)[0].1.status(), Some(200));
    assert_eq!(events(&mut ep), vec![Event::Ended { call: id, outcome: Outcome::Completed { by_remote: true }, status: None }]);
}

#[test]
fn inbound_cancel_gives_200_and_487() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let src = addr("127.0.0.1:5062");
    feed(&mut ep, t0, src, INBOUND.replace("P-Asserted-Identity", "X-Other").as_bytes());
    let ev = events(&mut ep);
    let Event::Incoming(inc) = &ev[0] else { panic!() };
    assert_eq!(inc.caller, "anonymous");
    drain(&mut ep);
    let cancel = "CANCEL sip:+3912345@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKin1;rport\r\nFrom: \"Anon\" <sip:anonymous@127.0.0.1>;tag=caller1\r\nTo: <sip:+3912345@127.0.0.1>\r\nCall-ID: in-1@127.0.0.1\r\nCSeq: 7 CANCEL\r\nContent-Length: 0\r\n\r\n";
    feed(&mut ep, t0, src, cancel.as_bytes());
    let out = drain(&mut ep);
    let codes: Vec<_> = out.iter().map(|(_, m)| (m.status(), m.cseq_method)).collect();
    assert_eq!(codes, vec![(Some(200), rsip::Method::Cancel), (Some(487), rsip::Method::Invite)]);
    assert!(matches!(events(&mut ep).as_slice(), [Event::Ended { outcome: Outcome::Cancelled, .. }]));
    // Without the ACK, timer G retransmits the 487 and timer H ends it.
    let sent = run_until(&mut ep, t0, t0 + Duration::from_secs(40));
    assert!(sent.iter().all(|(_, m)| m.status() == Some(487)) && sent.len() >= 5);
    assert_eq!(ep.transaction_count(), (0, 0));
}

#[test]
fn bye_timer_e_is_capped_at_t2_and_f_ends_it() {
    let mut ep = endpoint();
    let t0 = Instant::now();
    let src = addr("127.0.0.1:5062");
    feed(&mut ep, t0, src, INBOUND.as_bytes());
    let Some(Event::Incoming(inc)) = ep.pop_event() else { panic!() };
    ep.answer(t0, &inc.call, b"v=0\r\n".to_vec()).unwrap();
    let ok = drain(&mut ep).pop().unwrap().1;
    let ack = format!("ACK sip:centralino@127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKack\r\nFrom: <sip:anonymous@127.0.0.1>;tag=caller1\r\nTo: <sip:x@127.0.0.1>;tag={}\r\nCall-ID: in-1@127.0.0.1\r\nCSeq: 7 ACK\r\nContent-Length: 0\r\n\r\n", ok.to_tag.clone().unwrap());
    feed(&mut ep, t0, src, ack.as_bytes());
    ep.hangup(t0, &inc.call).unwrap();
    let bye = drain(&mut ep).remove(0);
    assert_eq!(bye.0, addr("127.0.0.1:5062"), "BYE goes to the caller's Contact");
    assert_eq!(bye.1.request_uri().unwrap(), "sip:caller@127.0.0.1:5062");
    assert_eq!(bye.1.to_tag.as_deref(), Some("caller1"));
    assert_eq!(bye.1.from_tag, ok.to_tag);
    let sent = run_until(&mut ep, t0, t0 + Duration::from_secs(40));
    let at: Vec<u64> = sent.iter().map(|(t, _)| t.duration_since(t0).as_millis() as u64).collect();
    assert_eq!(&at[..5], &[500, 1500, 3500, 7500, 11500]);
    assert!(matches!(events(&mut ep).as_slice(), [Event::Ended { outcome: Outcome::Completed { by_remote: false }, status: Some(408), .. }]));
    assert_eq!(ep.transaction_count(), (0, 0));
}

#[test]
fn bad_input_gets_400_or_is_dropped_and_leaves_nothing() {
    let mut ep = endpoint();
    let now = Instant::now();
    let src = addr("127.0.0.1:5062");
    for bad in [
        INBOUND.replace("Content-Length: 0", "Content-Length: 500"),
        INBOUND.replace("CSeq: 7 INVITE", "CSeq: seven INVITE"),
        INBOUND.replace("Max-Forwards: 70", "Max-Forwards: 70\nInjected: yes"),
        INBOUND.replace("Max-Forwards: 70", &format!("X-Huge: {}", "a".repeat(9000))),
    ] {
        feed(&mut ep, now, src, bad.as_bytes());
        // Read raw: a 400 echoes the peer's (possibly broken) CSeq verbatim.
        let out: Vec<_> = std::iter::from_fn(|| ep.poll_transmit()).collect();
        assert_eq!(out.len(), 1, "{bad:.60}");
        assert!(out[0].data.starts_with(b"SIP/2.0 400 "));
        assert_eq!(out[0].dest, src);
    }
    for garbage in [&b"\x00\xff\xfe garbage"[..], b"\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n", &vec![b'A'; 70_000], &INBOUND.as_bytes()[..100]] {
        feed(&mut ep, now, src, garbage);
        assert!(drain(&mut ep).is_empty());
    }
    assert!(events(&mut ep).is_empty());
    assert_eq!((ep.transaction_count(), ep.call_count()), ((0, 0), 0));
    // The 70 000-byte one is over the size limit: dropped by the guard, unparsed.
    assert!(ep.dropped >= 7 && ep.rate_limited == 1, "{} {}", ep.dropped, ep.rate_limited);
}
