//! Admission control in front of the endpoint: who may place calls through
//! us (toll-fraud protection) and how much any one source may send.
//!
//! Sans-IO like the rest of the core: every decision takes `now`. The
//! [`Endpoint`](crate::Endpoint) owns one [`Guard`] and asks it, per
//! datagram, whether the source is within its message rate (before
//! parsing, so a flood costs a hash lookup, not a parse) and, per new
//! server transaction, whether it is within its transaction rate. The
//! INVITE policy itself (trunk address, else a digest-authenticated agent,
//! else 403) lives in the endpoint, which has the credentials; this module
//! supplies [`TrunkAddr`] matching and the rate-limited log of refusals.
//!
//! Limits are kept per source *IP*, not per address: a flooder can change
//! its port for free. Trusted trunks have their own, by default unlimited,
//! limits, because a carrier legitimately sends thousands of INVITEs per
//! second and must never be throttled by the rules meant for strangers.
//! The per-source table is bounded ([`RateLimits::max_sources`]); idle
//! sources are forgotten, and when it is full of active sources a new one
//! is refused rather than letting the table (and our memory) grow.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// A trunk we accept INVITEs from: any port of an IP, or one exact address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrunkAddr {
    Ip(IpAddr),
    Addr(SocketAddr),
}

impl TrunkAddr {
    pub fn matches(&self, from: SocketAddr) -> bool {
        match self {
            TrunkAddr::Ip(ip) => canonical(*ip) == canonical(from.ip()),
            TrunkAddr::Addr(a) => canonical(a.ip()) == canonical(from.ip()) && a.port() == from.port(),
        }
    }
}

impl From<IpAddr> for TrunkAddr {
    fn from(ip: IpAddr) -> Self {
        TrunkAddr::Ip(ip)
    }
}

impl From<SocketAddr> for TrunkAddr {
    fn from(a: SocketAddr) -> Self {
        TrunkAddr::Addr(a)
    }
}

impl std::str::FromStr for TrunkAddr {
    type Err = std::net::AddrParseError;
    /// `192.0.2.1` (any port) or `192.0.2.1:5060` (that port only).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<SocketAddr>() {
            Ok(a) => Ok(TrunkAddr::Addr(a)),
            Err(_) => s.trim_matches(['[', ']']).parse::<IpAddr>().map(TrunkAddr::Ip),
        }
    }
}

/// An IPv4-mapped IPv6 address is the IPv4 address (dual-stack sockets).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub rate: f64,
    pub burst: f64,
}

impl Bucket {
    pub const fn new(rate: f64, burst: f64) -> Bucket {
        Bucket { rate, burst }
    }
}

/// Size and rate limits, per source IP.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// The largest datagram or stream frame we look at; larger ones are
    /// dropped unparsed. Real INVITEs are a few KiB.
    pub max_message: usize,
    /// Messages per second from one untrusted source (requests, responses,
    /// retransmissions alike). Excess is dropped silently: answering a
    /// flood would amplify it.
    pub messages: Bucket,
    /// New server transactions per second from one untrusted source.
    /// Excess gets 503 with Retry-After (bounded by the message rate).
    pub transactions: Bucket,
    /// The same two limits for trusted trunks; `None` is unlimited.
    pub trunk_messages: Option<Bucket>,
    pub trunk_transactions: Option<Bucket>,
    /// How many sources the limiter remembers at once.
    pub max_sources: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            max_message: 16 * 1024,
            // A softphone registering, calling and sending DTMF INFO stays
            // far below this; a scanner (sipvicious and friends) does not.
            messages: Bucket::new(50.0, 100.0),
            transactions: Bucket::new(10.0, 20.0),
            trunk_messages: None,
            trunk_transactions: None,
            max_sources: 10_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Tokens {
    level: f64,
    at: Instant,
}

impl Tokens {
    fn full(b: Bucket, now: Instant) -> Tokens {
        Tokens { level: b.burst, at: now }
    }
    fn take(&mut self, b: Bucket, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.level = (self.level + dt * b.rate).min(b.burst);
        self.at = now.max(self.at);
        if self.level >= 1.0 {
            self.level -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Source {
    messages: Tokens,
    transactions: Tokens,
    seen: Instant,
}

/// What a source may do, for [`Guard::admit_message`] and
/// [`Guard::admit_transaction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Over the size limit.
    TooLarge,
    /// Over a rate limit (or the source table is full).
    Limited,
}

/// Per-source rate limiting and the rate-limited refusal log.
#[derive(Debug)]
pub struct Guard {
    limits: RateLimits,
    trunks: Vec<TrunkAddr>,
    sources: HashMap<IpAddr, Source>,
    last_sweep: Option<Instant>,
    log: LogLimiter,
}

/// Sources not heard from for this long are forgotten (their buckets are
/// full again by then for any sane limit).
const IDLE: Duration = Duration::from_secs(60);

impl Guard {
    pub fn new(limits: RateLimits, trunks: Vec<TrunkAddr>) -> Guard {
        Guard { limits, trunks, sources: HashMap::new(), last_sweep: None, log: LogLimiter::new(10, Duration::from_secs(1)) }
    }

    pub fn is_trunk(&self, from: SocketAddr) -> bool {
        self.trunks.iter().any(|t| t.matches(from))
    }

    pub fn limits(&self) -> &RateLimits {
        &self.limits
    }

    /// Number of sources currently tracked (for tests and metrics).
    pub fn tracked_sources(&self) -> usize {
        self.sources.len()
    }

    /// One datagram (or frame) of `len` bytes from `from`.
    pub fn admit_message(&mut self, now: Instant, from: SocketAddr, len: usize) -> Verdict {
        if len > self.limits.max_message {
            return Verdict::TooLarge;
        }
        let trunk = self.is_trunk(from);
        let bucket = if trunk { self.limits.trunk_messages } else { Some(self.limits.messages) };
        let Some(bucket) = bucket else { return Verdict::Pass };
        match self.source(now, from) {
            Some(s) => Self::verdict(s.messages.take(bucket, now)),
            None => Verdict::Limited,
        }
    }

    /// A new server transaction from `from`.
    pub fn admit_transaction(&mut self, now: Instant, from: SocketAddr) -> Verdict {
        let trunk = self.is_trunk(from);
        let bucket = if trunk { self.limits.trunk_transactions } else { Some(self.limits.transactions) };
        let Some(bucket) = bucket else { return Verdict::Pass };
        match self.source(now, from) {
            Some(s) => Self::verdict(s.transactions.take(bucket, now)),
            None => Verdict::Limited,
        }
    }

    fn verdict(ok: bool) -> Verdict {
        if ok { Verdict::Pass } else { Verdict::Limited }
    }

    fn source(&mut self, now: Instant, from: SocketAddr) -> Option<&mut Source> {
        let ip = canonical(from.ip());
        if !self.sources.contains_key(&ip) {
            if self.sources.len() >= self.limits.max_sources {
                self.sweep(now, true);
                if self.sources.len() >= self.limits.max_sources {
                    return None;
                }
            }
            let l = &self.limits;
            let (m, t) = if self.trunks.iter().any(|t| t.matches(from)) {
                (l.trunk_messages.unwrap_or(l.messages), l.trunk_transactions.unwrap_or(l.transactions))
            } else {
                (l.messages, l.transactions)
            };
            let s = Source { messages: Tokens::full(m, now), transactions: Tokens::full(t, now), seen: now };
            self.sources.insert(ip, s);
        } else if self.last_sweep.is_none_or(|t| now.saturating_duration_since(t) >= IDLE) {
            self.sweep(now, false);
        }
        let s = self.sources.get_mut(&ip)?;
        s.seen = now;
        Some(s)
    }

    /// Forgets idle sources; amortised to once per [`IDLE`] unless `force`.
    fn sweep(&mut self, now: Instant, force: bool) {
        if !force && self.last_sweep.is_some_and(|t| now.saturating_duration_since(t) < IDLE) {
            return;
        }
        self.last_sweep = Some(now);
        self.sources.retain(|_, s| now.saturating_duration_since(s.seen) < IDLE);
    }

    /// Logs a refusal unless too many were logged lately; a summary of the
    /// suppressed ones follows with the next line that gets through.
    pub fn log_refusal(&mut self, now: Instant, from: SocketAddr, what: &str, reason: &str) {
        if let Some(suppressed) = self.log.allow(now) {
            if suppressed > 0 {
                tracing::warn!(suppressed, "further refusals were not logged");
            }
            tracing::warn!(%from, what, reason, "refused");
        }
    }

    /// How many refusals were not logged (for tests and metrics).
    pub fn suppressed_logs(&self) -> u64 {
        self.log.total_suppressed
    }
}

/// At most `per_window` lines per `window`; counts the rest.
#[derive(Debug)]
pub struct LogLimiter {
    per_window: u32,
    window: Duration,
    start: Option<Instant>,
    used: u32,
    suppressed: u64,
    pub total_suppressed: u64,
}

impl LogLimiter {
    pub fn new(per_window: u32, window: Duration) -> LogLimiter {
        LogLimiter { per_window, window, start: None, used: 0, suppressed: 0, total_suppressed: 0 }
    }

    /// `Some(n)` if a line may be logged now, `n` being how many were
    /// suppressed since the last one that was; `None` if it must not.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.start.is_none_or(|s| now.saturating_duration_since(s) >= self.window) {
            self.start = Some(now);
            self.used = 0;
        }
        if self.used < self.per_window {
            self.used += 1;
            Some(std::mem::take(&mut self.suppressed))
        } else {
            self.suppressed += 1;
            self.total_suppressed += 1;
            None
        }
    }
}
