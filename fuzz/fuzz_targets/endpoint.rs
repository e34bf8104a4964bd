//! The endpoint core fed an arbitrary script: datagrams and stream frames
//! from a few sources (one a trusted trunk), clock jumps with timeouts,
//! and call-control calls. Properties: no panic, and never a stuck timer:
//! after `Input::Timeout` at `now`, `poll_timeout` is later than `now`
//! (else a driver would spin), and after a long quiet spell every
//! transaction has ended.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::{Config, Credentials, Dial, Endpoint, Input};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Agents;
impl Credentials for Agents {
    fn password(&self, u: &str) -> Option<String> {
        (u == "agent7").then(|| "s3cret".into())
    }
}

const SOURCES: [&str; 4] = ["192.0.2.10:5060", "198.51.100.7:5060", "198.51.100.7:40000", "127.0.0.1:5062"];

fuzz_target!(|data: &[u8]| {
    let mut cfg = Config::new("127.0.0.1:5060".parse().unwrap());
    cfg.trusted_trunks = vec!["192.0.2.10".parse().unwrap()];
    cfg.tcp_trunks = vec!["192.0.2.10:5061".parse().unwrap()];
    let mut ep = Endpoint::new(cfg, Some(Arc::new(Agents)));
    let t0 = Instant::now();
    let mut now = t0;
    let mut calls = Vec::new();
    let mut rest = data;
    while let [op, tail @ ..] = rest {
        rest = tail;
        match op % 8 {
            0 | 1 | 2 => {
                // A message: 2-byte length, then that many bytes.
                let [a, b, tail @ ..] = rest else { break };
                let len = (u16::from_le_bytes([*a, *b]) as usize).min(tail.len());
                let (msg, tail) = tail.split_at(len);
                rest = tail;
                let from: SocketAddr = SOURCES[(*op as usize / 8) % SOURCES.len()].parse().unwrap();
                if op % 8 == 2 {
                    ep.handle_stream(now, from, msg);
                } else {
                    ep.handle(now, Input::Datagram { from, data: msg });
                }
            }
            3 => {
                let [ms, tail @ ..] = rest else { break };
                rest = tail;
                now += Duration::from_millis(*ms as u64 * 40);
                fire(&mut ep, now);
            }
            4 => {
                let trunk = if op & 0x80 != 0 { "192.0.2.10:5061" } else { "192.0.2.10:5060" };
                let d = Dial { trunk: trunk.parse().unwrap(), number: "+390200".into(), caller: "100".into(), rtp: "127.0.0.1:40000".parse().unwrap(), auth: None, ring_timeout: Some(Duration::from_secs(2)) };
                if let Ok(c) = ep.dial(now, d) {
                    calls.push(c);
                }
            }
            _ => {
                calls.extend(ep.call_ids());
                if let Some(c) = calls.get(*op as usize % calls.len().max(1)).cloned() {
                    let _ = match op % 8 {
                        5 => ep.ring(now, &c),
                        6 => ep.answer(now, &c, b"v=0\r\n".to_vec()),
                        _ => ep.hangup(now, &c),
                    };
                }
            }
        }
        while ep.poll_transmit().is_some() {}
        while ep.pop_event().is_some() {}
    }
    // End every call, then a long quiet spell: nothing may be left waiting.
    for c in ep.call_ids() {
        let _ = ep.hangup(now, &c);
    }
    for _ in 0..64 {
        now += Duration::from_secs(40);
        fire(&mut ep, now);
        while ep.poll_transmit().is_some() {}
    }
    assert_eq!(ep.transaction_count(), (0, 0), "transactions outlived every timer");
    assert_eq!(ep.call_count(), 0, "calls outlived hangup and every timer");
});

/// Handles every timeout due by `now`, as a driver would.
fn fire(ep: &mut Endpoint, now: Instant) {
    let mut rounds = 0;
    while let Some(t) = ep.poll_timeout() {
        if t > now {
            break;
        }
        ep.handle(now, Input::Timeout);
        rounds += 1;
        assert!(rounds < 10_000, "poll_timeout stays in the past: a stuck timer");
    }
}
