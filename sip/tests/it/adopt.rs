//! A call outlives the process that placed it: its dialog
//! (`Endpoint::dialog`) is taken over by a fresh endpoint
//! (`Endpoint::adopt`) only to end it — BYE when answered, CANCEL on the
//! original INVITE's branch while ringing — without ever re-sending the
//! INVITE. Sans-IO, time injected.

use super::core::{addr, endpoint};
use sip::msg::{self, Message};
use sip::{Dial, Endpoint, Event, Input, Outcome};
use std::time::{Duration, Instant};

const TRUNK: &str = "127.0.0.1:5070";

fn drain(ep: &mut Endpoint) -> Vec<(std::net::SocketAddr, Message)> {
    std::iter::from_fn(|| ep.poll_transmit()).map(|t| (t.dest, msg::parse(&t.data).unwrap())).collect()
}

fn events(ep: &mut Endpoint) -> Vec<Event> {
    std::iter::from_fn(|| ep.pop_event()).collect()
}

/// A response to `req` from the carrier (To tag `carrier`).
fn reply(req: &Message, status: &str, extra: &str) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {status}\r\n");
    for v in req.header_values("Via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    let to = req.header("To").unwrap();
    let to = if req.to_tag.is_none() { format!("{to};tag=carrier") } else { to };
    s.push_str(&format!("From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n", req.header("From").unwrap(), req.call_id, req.header("CSeq").unwrap()));
    s.into_bytes()
}

fn feed(ep: &mut Endpoint, now: Instant, data: &[u8]) {
    ep.handle(now, Input::Datagram { from: addr(TRUNK), data });
}

/// Dials from a first endpoint; returns it, the call and the INVITE.
fn placed(now: Instant) -> (Endpoint, sip::CallId, Message) {
    let mut ep = endpoint();
    let call = ep.dial(now, Dial { trunk: addr(TRUNK), number: "+15551234".into(), caller: "100".into(), rtp: addr("127.0.0.1:40000"), auth: None, ring_timeout: None }).unwrap();
    let invite = drain(&mut ep).pop().unwrap().1;
    (ep, call, invite)
}

#[test]
fn answered_call_is_ended_with_bye_in_its_dialog() {
    let now = Instant::now();
    let (mut old, call, invite) = placed(now);
    feed(&mut old, now, &reply(&invite, "180 Ringing", ""));
    feed(&mut old, now, &reply(&invite, "200 OK", "Contact: <sip:callee@127.0.0.1:5080>\r\nRecord-Route: <sip:127.0.0.1:5090;lr>\r\n"));
    let _ = drain(&mut old);
    let dialog = old.dialog(&call).unwrap();
    assert!(dialog.contains("state=confirmed"), "{dialog}");
    drop(old); // the crash

    let mut new = endpoint();
    assert_eq!(new.adopt(now, &dialog).unwrap(), call);
    let out = drain(&mut new);
    assert_eq!(out.len(), 1, "only a BYE: {out:?}");
    let (dest, bye) = &out[0];
    assert_eq!(bye.method(), Some(rsip::Method::Bye));
    assert_eq!(bye.call_id, call);
    assert_eq!(bye.to_tag.as_deref(), Some("carrier"));
    assert_eq!(bye.from_tag, invite.from_tag);
    assert_eq!(bye.request_uri().as_deref(), Some("sip:callee@127.0.0.1:5080"));
    assert!(bye.header("Route").unwrap().contains("127.0.0.1:5090"));
    assert_eq!(*dest, addr("127.0.0.1:5090"), "sent along the route set");
    assert_eq!(bye.cseq, 2);
    feed(&mut new, now, &reply(bye, "200 OK", ""));
    assert!(events(&mut new).iter().any(|e| matches!(e, Event::Ended { call: c, outcome: Outcome::Completed { by_remote: false }, .. } if *c == call)));
    assert_eq!(new.call_count(), 0);
}

#[test]
fn ringing_call_is_cancelled_on_the_invite_branch_and_never_reoffered() {
    let now = Instant::now();
    let (mut old, call, invite) = placed(now);
    feed(&mut old, now, &reply(&invite, "180 Ringing", ""));
    let dialog = old.dialog(&call).unwrap();
    assert!(dialog.contains("state=early"), "{dialog}");
    drop(old);

    let mut new = endpoint();
    new.adopt(now, &dialog).unwrap();
    let out = drain(&mut new);
    assert_eq!(out.len(), 1, "only a CANCEL: {out:?}");
    let cancel = &out[0].1;
    assert_eq!(cancel.method(), Some(rsip::Method::Cancel));
    assert_eq!(cancel.via.branch, invite.via.branch, "CANCEL matches the INVITE");
    assert_eq!(cancel.request_uri(), invite.request_uri());
    assert_eq!(cancel.cseq, invite.cseq);
    // Timers run: the INVITE is never sent again.
    new.handle(now + Duration::from_secs(5), Input::Timeout);
    assert!(drain(&mut new).iter().all(|(_, m)| m.method() != Some(rsip::Method::Invite)));
    feed(&mut new, now, &reply(cancel, "200 OK", ""));
    feed(&mut new, now, &reply(&invite, "487 Request Terminated", ""));
    let ack = drain(&mut new);
    assert_eq!(ack.len(), 1);
    assert_eq!(ack[0].1.method(), Some(rsip::Method::Ack));
    assert_eq!(ack[0].1.via.branch, invite.via.branch, "the 487 is ACKed on the INVITE's branch");
    assert!(events(&mut new).iter().any(|e| matches!(e, Event::Ended { call: c, outcome: Outcome::Cancelled, .. } if *c == call)));
}

#[test]
fn a_200_crossing_the_cancel_is_acked_and_hung_up() {
    let now = Instant::now();
    let (mut old, call, invite) = placed(now);
    feed(&mut old, now, &reply(&invite, "180 Ringing", ""));
    let dialog = old.dialog(&call).unwrap();
    drop(old);
    let mut new = endpoint();
    new.adopt(now, &dialog).unwrap();
    let _cancel = drain(&mut new);
    feed(&mut new, now, &reply(&invite, "200 OK", "Contact: <sip:callee@127.0.0.1:5070>\r\n"));
    let out = drain(&mut new);
    let methods: Vec<_> = out.iter().filter_map(|(_, m)| m.method()).collect();
    assert_eq!(methods, vec![rsip::Method::Ack, rsip::Method::Bye]);
    feed(&mut new, now, &reply(&out[1].1, "200 OK", ""));
    assert!(events(&mut new).iter().any(|e| matches!(e, Event::Ended { call: c, .. } if *c == call)));
    assert_eq!(new.call_count(), 0);
}

#[test]
fn a_refused_cancel_ends_the_adopted_call_at_once() {
    let now = Instant::now();
    let (mut old, call, invite) = placed(now);
    feed(&mut old, now, &reply(&invite, "180 Ringing", ""));
    let dialog = old.dialog(&call).unwrap();
    drop(old);
    let mut new = endpoint();
    new.adopt(now, &dialog).unwrap();
    let cancel = drain(&mut new).pop().unwrap().1;
    feed(&mut new, now, &reply(&cancel, "481 Call/Transaction Does Not Exist", ""));
    assert!(events(&mut new).iter().any(|e| matches!(e, Event::Ended { call: c, outcome: Outcome::Cancelled, status: Some(481) } if *c == call)));
    assert_eq!(new.call_count(), 0);
}

#[test]
fn a_bad_or_duplicate_dialog_is_refused_and_changes_nothing() {
    let now = Instant::now();
    let mut ep = endpoint();
    for bad in ["", "call=x@y\nstate=early\n", "call=a@b\nstate=confirmed\nlocal=<sip:a@b>;tag=1\nremote=<sip:c@d>\nrequest_uri=sip:c@d\ncseq=x\npeer=127.0.0.1:5070\n", "call=a@b\nstate=talking\n"] {
        assert!(ep.adopt(now, bad).is_err(), "{bad:?}");
    }
    assert_eq!(ep.call_count(), 0);
    assert!(drain(&mut ep).is_empty());
    let (old, call, _) = placed(now);
    let d = old.dialog(&call).unwrap();
    let mut ep = old;
    assert!(ep.adopt(now, &d).is_err(), "a call this endpoint has is not adopted twice");
}
