//! Toll-fraud protection and per-source limits, sans-IO with injected time:
//! INVITEs only from trusted trunks or digest-authenticated agents (407,
//! then 403 for a wrong answer), token buckets per source IP for messages
//! and new transactions, the size limit, and the bounded refusal log.

use sip::guard::{Bucket, Guard, LogLimiter, RateLimits, TrunkAddr, Verdict};
use sip::msg::{self, Message};
use sip::{Config, Credentials, Endpoint, Event, Input};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Agents;
impl Credentials for Agents {
    fn password(&self, username: &str) -> Option<String> {
        (username == "agent7").then(|| "s3cret".to_owned())
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

const TRUNK: &str = "192.0.2.10:5060";
const STRANGER: &str = "198.51.100.66:5060";

fn endpoint(creds: bool) -> Endpoint {
    let mut cfg = Config::new(addr("127.0.0.1:5060"));
    cfg.trusted_trunks = vec!["192.0.2.10".parse().unwrap()];
    Endpoint::new(cfg, creds.then(|| Arc::new(Agents) as Arc<dyn Credentials>))
}

fn invite(from: SocketAddr, call: &str, branch: &str, cseq: u32, auth: Option<&str>) -> Vec<u8> {
    let auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default();
    format!(
        "INVITE sip:+390200000@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{branch}\r\nFrom: <sip:+15550001@{ip}>;tag=f{call}\r\nTo: <sip:+390200000@127.0.0.1>\r\nCall-ID: {call}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:x@{from}>\r\n{auth}Content-Length: 0\r\n\r\n",
        ip = from.ip()
    )
    .into_bytes()
}

fn options(from: SocketAddr, n: u32) -> Vec<u8> {
    format!("OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKo{n}\r\nFrom: <sip:p@{ip}>;tag=o\r\nTo: <sip:127.0.0.1>\r\nCall-ID: o{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", ip = from.ip()).into_bytes()
}

fn out(ep: &mut Endpoint) -> Vec<Message> {
    std::iter::from_fn(|| ep.poll_transmit()).map(|t| msg::parse(&t.data).unwrap()).collect()
}

fn incoming(ep: &mut Endpoint) -> usize {
    std::iter::from_fn(|| ep.pop_event()).filter(|e| matches!(e, Event::Incoming(_))).count()
}

#[test]
fn trunk_invites_are_accepted_strangers_get_403_without_a_registrar() {
    let mut ep = endpoint(false);
    let now = Instant::now();
    ep.handle(now, Input::Datagram { from: addr(TRUNK), data: &invite(addr(TRUNK), "c1", "a1", 1, None) });
    assert_eq!(out(&mut ep)[0].status(), Some(100));
    assert_eq!(incoming(&mut ep), 1);
    // Another port of the trunk's IP is the trunk too (TrunkAddr::Ip).
    let other_port = addr("192.0.2.10:5099");
    ep.handle(now, Input::Datagram { from: other_port, data: &invite(other_port, "c2", "a2", 1, None) });
    assert_eq!(incoming(&mut ep), 1);
    let _ = out(&mut ep);
    ep.handle(now, Input::Datagram { from: addr(STRANGER), data: &invite(addr(STRANGER), "c3", "a3", 1, None) });
    let r = out(&mut ep);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].status(), Some(403));
    assert_eq!(incoming(&mut ep), 0);
    assert_eq!(ep.refused, 1);
    assert_eq!(ep.call_count(), 2);
}

#[test]
fn agents_answer_407_and_a_wrong_password_gets_403() {
    let mut ep = endpoint(true);
    let now = Instant::now();
    let from = addr(STRANGER);
    ep.handle(now, Input::Datagram { from, data: &invite(from, "c1", "b1", 1, None) });
    let r = out(&mut ep);
    assert_eq!(r[0].status(), Some(407));
    assert_eq!(incoming(&mut ep), 0);
    let ch = sip::digest::Challenge::parse(&r[0].header("Proxy-Authenticate").unwrap()).unwrap();
    // The ACK for the 407 completes that transaction; a retransmitted INVITE
    // meanwhile would get the 407 again, never a call.
    ep.handle(now, Input::Datagram { from, data: &invite(from, "c1", "b1", 1, None) });
    assert_eq!(out(&mut ep)[0].status(), Some(407));
    let uri = "sip:+390200000@127.0.0.1";
    let bad = sip::digest::authorization(&ch, "agent7", "guess", "INVITE", uri, 1, "x");
    ep.handle(now, Input::Datagram { from, data: &invite(from, "c1", "b2", 2, Some(&bad)) });
    assert_eq!(out(&mut ep)[0].status(), Some(403));
    assert_eq!(ep.refused, 1);
    let unknown = sip::digest::authorization(&ch, "mallory", "s3cret", "INVITE", uri, 2, "x");
    ep.handle(now, Input::Datagram { from, data: &invite(from, "c1", "b3", 3, Some(&unknown)) });
    assert_eq!(out(&mut ep)[0].status(), Some(403));
    // A nonce we never issued is re-challenged (stale), not accepted.
    let forged = sip::digest::authorization(&ch, "agent7", "s3cret", "INVITE", uri, 3, "x").replace(&ch.nonce, "feedface");
    ep.handle(now, Input::Datagram { from, data: &invite(from, "c1", "b4", 4, Some(&forged)) });
    let r = out(&mut ep);
    assert_eq!(r[0].status(), Some(407));
    assert!(r[0].header("Proxy-Authenticate").unwrap().contains("stale=true"));
    let good = sip::digest::authorization(&ch, "agent7", "s3cret", "INVITE", uri, 4, "x");
    ep.handle(now, Input::Datagram { from, data: &invite(from, "c1", "b5", 5, Some(&good)) });
    assert_eq!(out(&mut ep)[0].status(), Some(100));
    assert_eq!(incoming(&mut ep), 1);
    assert_eq!(ep.refused, 2);
}

#[test]
fn per_source_transaction_and_message_rates() {
    let mut ep = endpoint(false);
    let t0 = Instant::now();
    let from = addr(STRANGER);
    let limits = RateLimits::default();
    let (mut ok, mut busy) = (0, 0);
    for n in 0..200 {
        ep.handle(t0, Input::Datagram { from, data: &options(from, n) });
        for r in out(&mut ep) {
            match r.status() {
                Some(200) => ok += 1,
                Some(503) => {
                    assert!(r.header("Retry-After").is_some());
                    busy += 1
                }
                s => panic!("{s:?}"),
            }
        }
    }
    // The transaction burst is answered, the rest of the message burst gets
    // 503, and beyond the message burst nothing is sent at all.
    assert_eq!(ok, limits.transactions.burst as usize);
    assert_eq!(ok + busy, limits.messages.burst as usize);
    assert_eq!(ep.rate_limited, 200 - ok as u64);
    // Another source is not affected.
    let other = addr("198.51.100.67:5060");
    ep.handle(t0, Input::Datagram { from: other, data: &options(other, 1000) });
    assert_eq!(out(&mut ep)[0].status(), Some(200));
    // One second later the buckets have refilled by their rates.
    let t1 = t0 + Duration::from_secs(1);
    let mut ok = 0;
    for n in 200..260 {
        ep.handle(t1, Input::Datagram { from, data: &options(from, n) });
        ok += out(&mut ep).iter().filter(|r| r.status() == Some(200)).count();
    }
    assert_eq!(ok, limits.transactions.rate as usize);
    // A trunk is not limited by default: a burst of 2 000 is all answered.
    let trunk = addr(TRUNK);
    let mut ok = 0;
    for n in 0..2000 {
        ep.handle(t1, Input::Datagram { from: trunk, data: &options(trunk, 10_000 + n) });
        ok += out(&mut ep).iter().filter(|r| r.status() == Some(200)).count();
    }
    assert_eq!(ok, 2000);
    // The refusals were logged at most ten a second, the rest counted.
    assert!(ep.guard().suppressed_logs() > 100, "{}", ep.guard().suppressed_logs());
}

#[test]
fn oversized_messages_are_dropped_unparsed() {
    let mut ep = endpoint(false);
    let from = addr(TRUNK);
    let mut big = options(from, 1);
    let pad = format!("X-Pad: {}\r\n", "a".repeat(20_000));
    let at = big.len() - 2;
    big.splice(at..at, pad.bytes());
    ep.handle(Instant::now(), Input::Datagram { from, data: &big });
    assert!(ep.poll_transmit().is_none());
    assert_eq!(ep.rate_limited, 1);
}

#[test]
fn guard_table_is_bounded_and_idle_sources_are_forgotten() {
    let limits = RateLimits { max_sources: 100, messages: Bucket::new(1.0, 1.0), ..RateLimits::default() };
    let mut g = Guard::new(limits, vec![TrunkAddr::Addr(addr("192.0.2.10:5060"))]);
    let t0 = Instant::now();
    for i in 0..100u32 {
        let a = SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 5060));
        assert_eq!(g.admit_message(t0, a, 100), Verdict::Pass);
    }
    assert_eq!(g.tracked_sources(), 100);
    // Full of active sources: a new one is refused rather than grown into.
    assert_eq!(g.admit_message(t0, addr("10.9.9.9:5060"), 100), Verdict::Limited);
    // A minute later they are idle and make room.
    let later = t0 + Duration::from_secs(61);
    assert_eq!(g.admit_message(later, addr("10.9.9.9:5060"), 100), Verdict::Pass);
    assert_eq!(g.tracked_sources(), 1);
    // An exact-address trunk: only that port is the trunk.
    assert!(g.is_trunk(addr("192.0.2.10:5060")));
    assert!(!g.is_trunk(addr("192.0.2.10:5061")));
    assert!(TrunkAddr::Ip("192.0.2.10".parse().unwrap()).matches(addr("[::ffff:192.0.2.10]:1")));
    assert_eq!(g.admit_message(later, addr("10.9.9.9:5060"), 17_000), Verdict::TooLarge);
}

#[test]
fn log_limiter_reports_what_it_suppressed() {
    let mut l = LogLimiter::new(2, Duration::from_secs(1));
    let t0 = Instant::now();
    assert_eq!(l.allow(t0), Some(0));
    assert_eq!(l.allow(t0), Some(0));
    assert_eq!(l.allow(t0), None);
    assert_eq!(l.allow(t0), None);
    assert_eq!(l.allow(t0 + Duration::from_secs(1)), Some(2));
    assert_eq!(l.total_suppressed, 2);
}
