//! The registrar: challenge, digest check through `Credentials`, bindings.

use sip::msg;
use sip::{Config, Credentials, Endpoint, Event, Input};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Agents;
impl Credentials for Agents {
    fn password(&self, username: &str) -> Option<String> {
        (username == "agent7").then(|| "s3cret".to_owned())
    }
}

fn register(cseq: u32, auth: Option<&str>) -> Vec<u8> {
    let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    format!("REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5064;branch=z9hG4bKr{cseq};rport\r\nFrom: <sip:agent7@127.0.0.1>;tag=r\r\nTo: <sip:agent7@127.0.0.1>\r\nCall-ID: reg1\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:agent7@127.0.0.1:5064>\r\nExpires: 120\r\n{auth}Content-Length: 0\r\n\r\n").into_bytes()
}

#[test]
fn challenge_then_register_then_wrong_password() {
    let mut ep = Endpoint::new(Config::new("127.0.0.1:5060".parse().unwrap()), Some(Arc::new(Agents)));
    let now = Instant::now();
    let from = "127.0.0.1:5064".parse().unwrap();
    ep.handle(now, Input::Datagram { from, data: &register(1, None) });
    let r = msg::parse(&ep.poll_transmit().unwrap().data).unwrap();
    assert_eq!(r.status(), Some(401));
    let ch = sip::digest::Challenge::parse(&r.header("WWW-Authenticate").unwrap()).unwrap();
    let auth = sip::digest::authorization(&ch, "agent7", "s3cret", "REGISTER", "sip:127.0.0.1", 1, "c1");
    ep.handle(now, Input::Datagram { from, data: &register(2, Some(&auth)) });
    let r = msg::parse(&ep.poll_transmit().unwrap().data).unwrap();
    assert_eq!(r.status(), Some(200));
    assert_eq!(ep.pop_event(), Some(Event::Registered { user: "agent7".into(), contact: "sip:agent7@127.0.0.1:5064".into(), source: from, expires: 120 }));
    assert!(ep.registration("agent7", now).is_some());
    assert!(ep.registration("agent7", now + Duration::from_secs(121)).is_none());
    let bad = sip::digest::authorization(&ch, "agent7", "guess", "REGISTER", "sip:127.0.0.1", 2, "c2");
    ep.handle(now, Input::Datagram { from, data: &register(3, Some(&bad)) });
    assert_eq!(msg::parse(&ep.poll_transmit().unwrap().data).unwrap().status(), Some(403));
    // An unknown nonce is re-challenged as stale.
    let forged = auth.replace(&ch.nonce, "deadbeef");
    ep.handle(now, Input::Datagram { from, data: &register(4, Some(&forged)) });
    let r = msg::parse(&ep.poll_transmit().unwrap().data).unwrap();
    assert_eq!(r.status(), Some(401));
    assert!(r.header("WWW-Authenticate").unwrap().contains("stale=true"));
}

#[test]
fn no_registrar_means_405() {
    let mut ep = Endpoint::new(Config::new("127.0.0.1:5060".parse().unwrap()), None);
    ep.handle(Instant::now(), Input::Datagram { from: "127.0.0.1:5064".parse().unwrap(), data: &register(1, None) });
    assert_eq!(msg::parse(&ep.poll_transmit().unwrap().data).unwrap().status(), Some(405));
}
