//! The sans-IO SIP endpoint: transactions, dialogs, the user agent (calls)
//! and the registrar, in the style of quinn-proto.
//!
//! [`Endpoint`] does no I/O and reads no clock. The driver feeds it
//! datagrams and the time with [`Endpoint::handle`], drains bytes to send
//! with [`Endpoint::poll_transmit`], sleeps until [`Endpoint::poll_timeout`],
//! and takes call events with [`Endpoint::pop_event`]. The application
//! controls calls with [`Endpoint::dial`], [`Endpoint::ring`],
//! [`Endpoint::answer`], [`Endpoint::reject`] and [`Endpoint::hangup`].
//!
//! Below it sit [`crate::msg`] (parsing), [`crate::transaction`] (the §17
//! state machines, owned here in two maps keyed by branch) and
//! [`crate::digest`]. Agent passwords come through the [`Credentials`]
//! trait, which the composition root implements against the CRM; nothing
//! here knows of a database.
//!
//! A malformed message is answered with 400 where possible and otherwise
//! dropped; it never reaches a transaction. Every per-message path returns
//! early instead of panicking, and every state that waits on the network
//! has a deadline (timers B/F/H/J, the ring timer, the CANCEL deadline).

use crate::digest::{self, Algorithm, Challenge};
use crate::guard::{Guard, RateLimits, TrunkAddr, Verdict};
use crate::msg::{self, CallId, Message};
use crate::transaction::{ClientTx, ServerTx, Timers, TxOutput};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rsip::{Header, Method, prelude::UntypedHeader};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Agent passwords for the registrar. The composition root implements it
/// against the CRM; lookups must be quick because the core is synchronous
/// (cache in the implementation if the store is slow).
pub trait Credentials: Send + Sync {
    /// The SIP password of `username`, or `None` if there is no such agent.
    fn password(&self, username: &str) -> Option<String>;
}

/// Endpoint settings. `local` is the address written into Via and Contact;
/// the driver decides where it actually binds.
#[derive(Debug, Clone)]
pub struct Config {
    pub local: SocketAddr,
    pub user_agent: String,
    pub timers: Timers,
    /// Our own ring-no-answer limit for outbound calls (then CANCEL).
    pub ring_timeout: Duration,
    /// The registrar's digest realm.
    pub realm: String,
    /// Algorithm the registrar challenges with. MD5 is what most softphones
    /// (and sipp) answer; SHA-256 is RFC 8760's.
    pub auth_algorithm: Algorithm,
    pub max_register_expires: u32,
    /// Seed for tags, branches and nonces, so tests are reproducible.
    pub rng_seed: u64,
    /// Toll-fraud protection: INVITEs from these addresses are accepted as
    /// they come; from anywhere else only with a digest answer (407) that
    /// [`Credentials`] verifies, and with no `Credentials` not at all (403).
    pub trusted_trunks: Vec<TrunkAddr>,
    /// Trunks reached over TCP: requests to them say `SIP/2.0/TCP` in Via,
    /// are not retransmitted, and the driver sends them on a connection.
    pub tcp_trunks: Vec<SocketAddr>,
    /// Size and per-source rate limits (see [`crate::guard`]).
    pub limits: RateLimits,
}

impl Config {
    pub fn new(local: SocketAddr) -> Config {
        Config {
            local,
            user_agent: "centralino".into(),
            timers: Timers::default(),
            ring_timeout: Duration::from_secs(30),
            realm: "centralino".into(),
            auth_algorithm: Algorithm::Md5,
            max_register_expires: 3600,
            rng_seed: 0x5eed,
            trusted_trunks: Vec::new(),
            tcp_trunks: Vec::new(),
            limits: RateLimits::default(),
        }
    }
}

/// Bytes for the driver to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub dest: SocketAddr,
    pub data: Vec<u8>,
}

/// What the driver hands to [`Endpoint::handle`].
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// One UDP datagram (or one stream frame) from `from`.
    Datagram { from: SocketAddr, data: &'a [u8] },
    /// The instant of `poll_timeout` has passed.
    Timeout,
}

/// Digest credentials for a trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestAuth {
    pub username: String,
    pub password: String,
}

/// An outbound call.
#[derive(Debug, Clone)]
pub struct Dial {
    pub trunk: SocketAddr,
    /// The number dialled; becomes the user part of the Request-URI.
    pub number: String,
    /// Our caller id (user part of From).
    pub caller: String,
    /// Where our RTP would be received; goes into the SDP offer.
    pub rtp: SocketAddr,
    pub auth: Option<DigestAuth>,
    /// Overrides [`Config::ring_timeout`].
    pub ring_timeout: Option<Duration>,
}

/// How a call ended, as the dialer books it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It was answered and then hung up by either side.
    Completed { by_remote: bool },
    /// 486, 600.
    Busy,
    /// 480, 408, timer B, or our ring timer.
    NoAnswer,
    /// 404, 484.
    BadNumber,
    /// 503 (with Retry-After seconds if given): fail over and back off.
    CarrierTrouble { retry_after: Option<u32> },
    /// Any other final failure (status in the event).
    Rejected,
    /// Cancelled before answer: by the caller (inbound) or by us (outbound hangup).
    Cancelled,
    /// The trunk's challenge could not be answered or the answer was refused.
    AuthFailed,
    /// The far end stopped talking (no ACK for our 2xx).
    Failed,
}

/// An inbound call, raised when the INVITE arrives, before any answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingCall {
    pub call: CallId,
    /// From P-Asserted-Identity if present, else From: the URI's user part.
    pub caller: String,
    pub caller_display: Option<String>,
    /// The user part of the Request-URI.
    pub callee: String,
    pub sdp: Vec<u8>,
    pub source: SocketAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Incoming(IncomingCall),
    /// 180/183 (and others 101–199) on an outbound call; early SDP if any.
    Progress { call: CallId, status: u16, sdp: Option<Vec<u8>> },
    Answered { call: CallId, sdp: Vec<u8> },
    Ended { call: CallId, outcome: Outcome, status: Option<u16> },
    /// A binding was added or refreshed (`expires > 0`) or removed (`0`).
    Registered { user: String, contact: String, source: SocketAddr, expires: u32 },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("no such call")]
    UnknownCall,
    #[error("call is not in a state for this: {0}")]
    InvalidState(&'static str),
    #[error("bad target: {0}")]
    BadTarget(String),
}

/// A registered agent contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub contact: String,
    pub source: SocketAddr,
    pub expires_at: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Invite,
    Cancel,
    Bye,
}

struct ClientEntry {
    tx: ClientTx,
    call: Option<CallId>,
    purpose: Purpose,
    request: rsip::Request,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ServerKey {
    branch: String,
    method: String,
    sent_by: String,
}

struct ServerEntry {
    tx: ServerTx,
    request: Message,
    call: Option<CallId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// Outbound: INVITE sent. Inbound: INVITE received, not answered.
    Early,
    Established,
    /// BYE sent.
    Ending,
}

struct Call {
    outbound: bool,
    state: CallState,
    /// Our From (outbound) or To (inbound) value, with our tag.
    local: String,
    /// Their To (outbound) or From (inbound) value; tag added when known.
    remote: String,
    remote_tag: Option<String>,
    local_cseq: u32,
    remote_target: Option<String>,
    route_set: Vec<String>,
    peer: SocketAddr,
    /// Over a stream connection: no retransmissions, and everything in the
    /// dialog goes back over the connection to `peer`.
    reliable: bool,
    request_uri: String,
    // Outbound only.
    invite_key: Option<(String, Method)>,
    invite: Option<rsip::Request>,
    offer: Vec<u8>,
    auth: Option<DigestAuth>,
    auth_attempts: u8,
    got_1xx: bool,
    cancel: Option<Outcome>,
    cancel_sent: bool,
    ring_deadline: Option<Instant>,
    cancel_deadline: Option<Instant>,
    ack: Option<Vec<u8>>,
    // Inbound only.
    server_key: Option<ServerKey>,
    local_sdp: Option<Vec<u8>>,
    /// Taken over from a crashed process ([`Endpoint::adopt`]) only to be
    /// ended: a refused CANCEL ends it at once.
    adopted: bool,
}

/// The sans-IO SIP endpoint. See the module docs.
pub struct Endpoint {
    cfg: Config,
    rng: StdRng,
    credentials: Option<Arc<dyn Credentials>>,
    clients: HashMap<(String, String), ClientEntry>,
    servers: HashMap<ServerKey, ServerEntry>,
    calls: HashMap<CallId, Call>,
    bindings: HashMap<String, Binding>,
    nonces: HashMap<String, Instant>,
    outbox: VecDeque<Transmit>,
    events: VecDeque<Event>,
    guard: Guard,
    /// Messages dropped as malformed (for metrics and tests).
    pub dropped: u64,
    /// INVITEs refused by toll-fraud protection (403).
    pub refused: u64,
    /// Messages dropped or requests answered 503 by the size and rate limits.
    pub rate_limited: u64,
}

const NONCE_LIFETIME: Duration = Duration::from_secs(300);
const MAX_NONCES: usize = 10_000;
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, INFO";

fn hdr(name: &str, value: impl Into<String>) -> Header {
    let v = value.into();
    match name.to_ascii_lowercase().as_str() {
        "via" => Header::Via(rsip::headers::Via::new(v)),
        "from" => Header::From(rsip::headers::From::new(v)),
        "to" => Header::To(rsip::headers::To::new(v)),
        "call-id" => Header::CallId(rsip::headers::CallId::new(v)),
        "cseq" => Header::CSeq(rsip::headers::CSeq::new(v)),
        "contact" => Header::Contact(rsip::headers::Contact::new(v)),
        "max-forwards" => Header::MaxForwards(rsip::headers::MaxForwards::new(v)),
        "content-type" => Header::ContentType(rsip::headers::ContentType::new(v)),
        "route" => Header::Route(rsip::headers::Route::new(v)),
        "record-route" => Header::RecordRoute(rsip::headers::RecordRoute::new(v)),
        "authorization" => Header::Authorization(rsip::headers::Authorization::new(v)),
        "proxy-authorization" => Header::ProxyAuthorization(rsip::headers::ProxyAuthorization::new(v)),
        "www-authenticate" => Header::WwwAuthenticate(rsip::headers::WwwAuthenticate::new(v)),
        "user-agent" => Header::UserAgent(rsip::headers::UserAgent::new(v)),
        "server" => Header::Server(rsip::headers::Server::new(v)),
        "allow" => Header::Allow(rsip::headers::Allow::new(v)),
        "expires" => Header::Expires(rsip::headers::Expires::new(v)),
        _ => Header::Other(name.to_owned(), v),
    }
}

/// `host[:port]` → a socket address, if it is an IP literal. Names are not
/// resolved here (no I/O); callers fall back to the address they know.
fn hostport_addr(hp: &str) -> Option<SocketAddr> {
    if let Ok(a) = hp.parse() {
        return Some(a);
    }
    hp.trim_matches(['[', ']']).parse::<std::net::IpAddr>().ok().map(|ip| SocketAddr::new(ip, 5060))
}

fn with_tag(value: &str, tag: &str) -> String {
    if msg::header_param(value, "tag").is_some() { value.to_owned() } else { format!("{value};tag={tag}") }
}

fn status_outcome(status: u16, retry_after: Option<u32>) -> Outcome {
    match status {
        486 | 600 => Outcome::Busy,
        480 | 408 => Outcome::NoAnswer,
        404 | 484 => Outcome::BadNumber,
        503 => Outcome::CarrierTrouble { retry_after },
        401 | 407 => Outcome::AuthFailed,
        _ => Outcome::Rejected,
    }
}

impl Endpoint {
    pub fn new(cfg: Config, credentials: Option<Arc<dyn Credentials>>) -> Endpoint {
        Endpoint {
            rng: StdRng::seed_from_u64(cfg.rng_seed),
            guard: Guard::new(cfg.limits.clone(), cfg.trusted_trunks.clone()),
            cfg,
            credentials,
            clients: HashMap::new(),
            servers: HashMap::new(),
            calls: HashMap::new(),
            bindings: HashMap::new(),
            nonces: HashMap::new(),
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            dropped: 0,
            refused: 0,
            rate_limited: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    // ----- the quinn-proto style surface -----

    /// Feeds one input at time `now`.
    pub fn handle(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Datagram { from, data } => self.handle_datagram(now, from, data, false),
            Input::Timeout => self.handle_timeout(now),
        }
    }

    /// Feeds one message framed from a stream connection (TCP) whose far
    /// end is `from` (see [`crate::framing`]). Transactions on it do not
    /// retransmit, and responses and in-dialog requests go back to `from`,
    /// which the driver maps to the connection.
    pub fn handle_stream(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.handle_datagram(now, from, data, true);
    }

    /// Whether requests to `dest` go over a stream connection.
    pub fn is_tcp_trunk(&self, dest: SocketAddr) -> bool {
        self.cfg.tcp_trunks.contains(&dest)
    }

    /// The admission guard (rate limits, trunk list), for metrics and tests.
    pub fn guard(&self) -> &Guard {
        &self.guard
    }

    /// The next bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.outbox.pop_front()
    }

    /// The next call or registration event, if any.
    pub fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Input::Timeout`] must next be handled.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = self.clients.values().filter_map(|e| e.tx.next_timeout());
        let s = self.servers.values().filter_map(|e| e.tx.next_timeout());
        let calls = self.calls.values().flat_map(|c| [c.ring_deadline, c.cancel_deadline]).flatten();
        c.chain(s).chain(calls).min()
    }

    /// Number of live transactions (client, server); for tests and metrics.
    pub fn transaction_count(&self) -> (usize, usize) {
        (self.clients.len(), self.servers.len())
    }

    /// The calls in progress (for shutdown).
    pub fn call_ids(&self) -> Vec<CallId> {
        self.calls.keys().cloned().collect()
    }

    /// Number of calls in progress.
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// The current binding of a registered agent.
    pub fn registration(&self, user: &str, now: Instant) -> Option<&Binding> {
        self.bindings.get(user).filter(|b| b.expires_at > now)
    }

    // ----- call control -----

    /// Starts an outbound call to `dial.number` at the trunk.
    pub fn dial(&mut self, now: Instant, dial: Dial) -> Result<CallId, CallError> {
        let number = msg::sanitize(&dial.number);
        let caller = msg::sanitize(&dial.caller);
        let ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+-_.*#".contains(&b));
        if !ok(&number) || !ok(&caller) {
            return Err(CallError::BadTarget(number));
        }
        let call_id = self.new_call_id();
        let local_tag = self.token(8);
        let request_uri = format!("sip:{number}@{}", dial.trunk);
        let local = format!("<sip:{caller}@{}>;tag={local_tag}", self.cfg.local);
        let remote = format!("<{request_uri}>");
        let offer = crate::sdp::offer(dial.rtp, self.rng.random::<u32>() as u64).into_bytes();
        let call = Call {
            outbound: true,
            state: CallState::Early,
            local,
            remote,
            remote_tag: None,
            local_cseq: 1,
            remote_target: None,
            route_set: Vec::new(),
            peer: dial.trunk,
            reliable: self.cfg.tcp_trunks.contains(&dial.trunk),
            request_uri,
            invite_key: None,
            invite: None,
            offer,
            auth: dial.auth,
            auth_attempts: 0,
            got_1xx: false,
            cancel: None,
            cancel_sent: false,
            ring_deadline: Some(now + dial.ring_timeout.unwrap_or(self.cfg.ring_timeout)),
            cancel_deadline: None,
            ack: None,
            server_key: None,
            local_sdp: None,
            adopted: false,
        };
        self.calls.insert(call_id.clone(), call);
        if let Err(e) = self.send_invite(now, &call_id, None) {
            self.calls.remove(&call_id);
            return Err(e);
        }
        tracing::debug!(call_id = %call_id, "dialling");
        Ok(call_id)
    }

    /// Sends 180 Ringing on an inbound call.
    pub fn ring(&mut self, now: Instant, call: &CallId) -> Result<(), CallError> {
        self.respond_invite(now, call, 180, Vec::new())
    }

    /// Answers an inbound call with our SDP.
    pub fn answer(&mut self, now: Instant, call: &CallId, sdp: Vec<u8>) -> Result<(), CallError> {
        self.respond_invite(now, call, 200, sdp)?;
        if let Some(c) = self.calls.get_mut(call) {
            c.state = CallState::Established;
        }
        Ok(())
    }

    /// Rejects an inbound call with a final status (≥ 300).
    pub fn reject(&mut self, now: Instant, call: &CallId, status: u16) -> Result<(), CallError> {
        if !(300..700).contains(&status) {
            return Err(CallError::InvalidState("reject needs a status 300-699"));
        }
        self.respond_invite(now, call, status, Vec::new())?;
        self.end(call, Outcome::Rejected, Some(status));
        Ok(())
    }

    /// Hangs up: CANCEL before answer (outbound), 603 (inbound unanswered),
    /// BYE once established.
    pub fn hangup(&mut self, now: Instant, call: &CallId) -> Result<(), CallError> {
        let c = self.calls.get_mut(call).ok_or(CallError::UnknownCall)?;
        match (c.outbound, c.state) {
            (_, CallState::Ending) => Ok(()),
            (true, CallState::Early) => {
                c.cancel.get_or_insert(Outcome::Cancelled);
                self.try_cancel(now, call);
                Ok(())
            }
            (false, CallState::Early) => self.reject(now, call, 603),
            (_, CallState::Established) => {
                self.send_bye(now, call);
                Ok(())
            }
        }
    }

    // ----- dialogs that outlive the process -----

    /// What another process needs to end this outbound call after a crash
    /// (see [`Endpoint::adopt`]): Call-ID, our From and their To with the
    /// tags known so far, Request-URI, remote target, route set, next
    /// CSeq, trunk, and for an unanswered call the INVITE's Via (its
    /// branch is what a CANCEL must match). `key=value` lines; no value
    /// holds a line break (messages are sanitised). `None` for an inbound
    /// or unknown call.
    pub fn dialog(&self, id: &CallId) -> Option<String> {
        let c = self.calls.get(id)?;
        if !c.outbound {
            return None;
        }
        let state = match c.state {
            CallState::Early => "early",
            CallState::Established | CallState::Ending => "confirmed",
        };
        let mut out = format!("call={id}\nstate={state}\nlocal={}\nremote={}\nrequest_uri={}\ncseq={}\npeer={}\nreliable={}\n", c.local, c.remote, c.request_uri, c.local_cseq, c.peer, u8::from(c.reliable));
        if let Some(t) = &c.remote_target {
            out.push_str(&format!("remote_target={t}\n"));
        }
        for r in &c.route_set {
            out.push_str(&format!("route={r}\n"));
        }
        if let Some(v) = c.invite.as_ref().and_then(|i| i.headers.iter().find_map(|h| if let Header::Via(v) = h { Some(v.value().to_owned()) } else { None })) {
            out.push_str(&format!("invite_via={v}\n"));
        }
        Some(out)
    }

    /// Takes over a call [`Endpoint::dialog`] described in a process that
    /// died, only to end it: BYE for an answered call; for one still
    /// ringing, a CANCEL matching the original INVITE (a 487 is ACKed; a
    /// 200 that crosses it is ACKed and followed by BYE). Its end is
    /// reported as [`Event::Ended`] like any call's: BYE answered or timed
    /// out (64·T1), CANCEL refused, or no final answer within 64·T1.
    pub fn adopt(&mut self, now: Instant, text: &str) -> Result<CallId, CallError> {
        let bad = |what: &str| CallError::BadTarget(format!("dialog: {what}"));
        let mut f: HashMap<&str, &str> = HashMap::new();
        let mut routes = Vec::new();
        for line in text.lines() {
            let Some((k, v)) = line.split_once('=') else { continue };
            if k == "route" {
                routes.push(v.to_owned());
            } else {
                f.insert(k, v);
            }
        }
        let get = |k: &str| f.get(k).copied().filter(|v| !v.is_empty()).ok_or_else(|| bad(k));
        let id = CallId::parse(get("call")?).ok_or_else(|| bad("call"))?;
        if self.calls.contains_key(&id) {
            return Err(CallError::InvalidState("call already known"));
        }
        let early = match get("state")? {
            "early" => true,
            "confirmed" => false,
            _ => return Err(bad("state")),
        };
        let peer: SocketAddr = get("peer")?.parse().map_err(|_| bad("peer"))?;
        let cseq: u32 = get("cseq")?.parse().map_err(|_| bad("cseq"))?;
        let (local, remote, request_uri) = (get("local")?.to_owned(), get("remote")?.to_owned(), get("request_uri")?.to_owned());
        let reliable = f.get("reliable") == Some(&"1");
        let mut call = Call {
            outbound: true,
            state: if early { CallState::Early } else { CallState::Established },
            remote_tag: msg::header_param(&remote, "tag").flatten(),
            local,
            remote,
            local_cseq: cseq,
            remote_target: f.get("remote_target").map(|v| v.to_string()),
            route_set: routes,
            peer,
            reliable,
            request_uri,
            invite_key: None,
            invite: None,
            offer: Vec::new(),
            auth: None,
            auth_attempts: 0,
            got_1xx: true,
            cancel: Some(Outcome::Cancelled),
            cancel_sent: false,
            ring_deadline: None,
            cancel_deadline: None,
            ack: None,
            server_key: None,
            local_sdp: None,
            adopted: true,
        };
        if early {
            // The INVITE as the dead process sent it (what CANCEL and the
            // ACK of a 487 copy), under a transaction already past its
            // provisional: nothing is re-sent, so a carrier that has
            // forgotten the call is not offered it again.
            let via = get("invite_via")?.to_owned();
            let branch = msg::header_param(&via, "branch").flatten().ok_or_else(|| bad("invite_via"))?;
            let headers = vec![
                hdr("Via", via),
                hdr("Max-Forwards", "70"),
                hdr("From", call.local.clone()),
                hdr("To", call.remote.clone()),
                hdr("Call-ID", id.to_string()),
                hdr("CSeq", format!("{cseq} INVITE")),
            ];
            let req = self.build_request(Method::Invite, &call.request_uri, headers, Vec::new())?;
            let bytes = msg::to_bytes(&rsip::SipMessage::Request(req.clone()));
            let (mut tx, _not_sent) = ClientTx::new(now, true, bytes, peer, reliable, self.cfg.timers);
            let _ = tx.on_response(now, 100, Vec::new);
            call.invite_key = Some((branch.clone(), Method::Invite));
            call.invite = Some(req.clone());
            self.calls.insert(id.clone(), call);
            self.clients.insert((branch, "INVITE".to_owned()), ClientEntry { tx, call: Some(id.clone()), purpose: Purpose::Invite, request: req });
            self.try_cancel(now, &id);
        } else {
            self.calls.insert(id.clone(), call);
            self.send_bye(now, &id);
        }
        tracing::info!(call_id = %id, early, "ending a call left by a previous process");
        Ok(id)
    }

    // ----- building and sending -----

    fn token(&mut self, bytes: usize) -> String {
        let v: Vec<u8> = (0..bytes).map(|_| self.rng.random()).collect();
        hex::encode(v)
    }

    fn new_call_id(&mut self) -> CallId {
        let t = self.token(12);
        // The token is hex, so this cannot fail; fall back defensively anyway.
        CallId::from_token(format!("{t}@centralino"))
    }

    fn via(&mut self, reliable: bool) -> (String, String) {
        let branch = format!("z9hG4bK{}", self.token(10));
        let transport = if reliable { "TCP" } else { "UDP" };
        (format!("SIP/2.0/{transport} {};branch={branch};rport", self.cfg.local), branch)
    }

    fn build_request(&self, method: Method, uri: &str, headers: Vec<Header>, body: Vec<u8>) -> Result<rsip::Request, CallError> {
        let uri = rsip::Uri::try_from(uri).map_err(|e| CallError::BadTarget(e.to_string()))?;
        Ok(rsip::Request { method, uri, version: rsip::Version::V2, headers: headers.into(), body })
    }

    fn send_invite(&mut self, now: Instant, id: &CallId, auth_header: Option<(String, String)>) -> Result<(), CallError> {
        let reliable = self.calls.get(id).ok_or(CallError::UnknownCall)?.reliable;
        let (via, branch) = self.via(reliable);
        let contact = format!("<sip:centralino@{}>", self.cfg.local);
        let ua = self.cfg.user_agent.clone();
        let c = self.calls.get_mut(id).ok_or(CallError::UnknownCall)?;
        let mut headers = vec![
            hdr("Via", via),
            hdr("Max-Forwards", "70"),
            hdr("From", c.local.clone()),
            hdr("To", c.remote.clone()),
            hdr("Call-ID", id.to_string()),
            hdr("CSeq", format!("{} INVITE", c.local_cseq)),
            hdr("Contact", contact),
            hdr("Allow", ALLOW),
            hdr("User-Agent", ua),
            hdr("Content-Type", "application/sdp"),
        ];
        if let Some((n, v)) = auth_header {
            headers.push(hdr(&n, v));
        }
        let (uri, body, peer) = (c.request_uri.clone(), c.offer.clone(), c.peer);
        let req = self.build_request(Method::Invite, &uri, headers, body)?;
        let bytes = msg::to_bytes(&rsip::SipMessage::Request(req.clone()));
        let (tx, first) = ClientTx::new(now, true, bytes, peer, reliable, self.cfg.timers);
        let key = (branch, "INVITE".to_owned());
        if let Some(c) = self.calls.get_mut(id) {
            c.invite_key = Some((key.0.clone(), Method::Invite));
            c.invite = Some(req.clone());
        }
        self.clients.insert(key, ClientEntry { tx, call: Some(id.clone()), purpose: Purpose::Invite, request: req });
        self.emit_tx(peer, first);
        Ok(())
    }

    fn emit_tx(&mut self, dest: SocketAddr, out: TxOutput) {
        if let TxOutput::Transmit(data) = out {
            self.outbox.push_back(Transmit { dest, data });
        }
    }

    /// Sends CANCEL for an outbound INVITE if a provisional has arrived;
    /// otherwise it goes out when one does (§9.1).
    fn try_cancel(&mut self, now: Instant, id: &CallId) {
        let Some(c) = self.calls.get_mut(id) else { return };
        if !c.got_1xx || c.cancel_sent {
            return;
        }
        let (Some(inv), Some((branch, _))) = (c.invite.clone(), c.invite_key.clone()) else { return };
        c.cancel_sent = true;
        // If the INVITE never completes after CANCEL, give up after 64·T1.
        c.cancel_deadline = Some(now + self.cfg.timers.t64());
        c.ring_deadline = None;
        let (peer, reliable) = (c.peer, c.reliable);
        let mut headers = Vec::new();
        for h in inv.headers.iter() {
            match h {
                Header::Via(_) | Header::From(_) | Header::To(_) | Header::CallId(_) | Header::Route(_) | Header::MaxForwards(_) => headers.push(h.clone()),
                Header::CSeq(cs) => {
                    let n = cs.value().split_whitespace().next().unwrap_or("1").to_owned();
                    headers.push(hdr("CSeq", format!("{n} CANCEL")));
                }
                _ => {}
            }
        }
        let req = rsip::Request { method: Method::Cancel, uri: inv.uri.clone(), version: rsip::Version::V2, headers: headers.into(), body: Vec::new() };
        let bytes = msg::to_bytes(&rsip::SipMessage::Request(req.clone()));
        let (tx, first) = ClientTx::new(now, false, bytes, peer, reliable, self.cfg.timers);
        self.clients.insert((branch, "CANCEL".into()), ClientEntry { tx, call: Some(id.clone()), purpose: Purpose::Cancel, request: req });
        self.emit_tx(peer, first);
        tracing::debug!(call_id = %id, "CANCEL sent");
    }

    /// Where in-dialog requests go: first route, else remote target, else
    /// the address the dialog started with.
    fn dialog_dest(c: &Call) -> SocketAddr {
        if c.reliable {
            // The connection is the way back; a Contact or Route naming
            // another address would need a connection we do not have.
            return c.peer;
        }
        let first = c.route_set.first().map(|r| msg::uri_hostport(msg::header_uri(r)).to_owned());
        let target = c.remote_target.as_deref().map(|t| msg::uri_hostport(t).to_owned());
        first.or(target).and_then(|hp| hostport_addr(&hp)).unwrap_or(c.peer)
    }

    /// Builds an in-dialog request (ACK, BYE). `cseq` overrides the next
    /// local CSeq (ACK reuses the INVITE's).
    fn dialog_request(&mut self, id: &CallId, method: Method, cseq: Option<u32>) -> Option<(rsip::Request, String, SocketAddr)> {
        let reliable = self.calls.get(id)?.reliable;
        let (via, branch) = self.via(reliable);
        let ua = self.cfg.user_agent.clone();
        let c = self.calls.get_mut(id)?;
        let n = match cseq {
            Some(n) => n,
            None => {
                c.local_cseq += 1;
                c.local_cseq
            }
        };
        let (from, to) = (c.local.clone(), c.remote.clone());
        let mut headers = vec![hdr("Via", via), hdr("Max-Forwards", "70"), hdr("From", from), hdr("To", to), hdr("Call-ID", id.to_string()), hdr("CSeq", format!("{n} {method}"))];
        for r in &c.route_set {
            headers.push(hdr("Route", r.clone()));
        }
        headers.push(hdr("User-Agent", ua));
        let uri = c.remote_target.clone().unwrap_or_else(|| c.request_uri.clone());
        let dest = Self::dialog_dest(c);
        let req = self.build_request(method, &uri, headers, Vec::new()).ok()?;
        Some((req, branch, dest))
    }

    fn send_bye(&mut self, now: Instant, id: &CallId) {
        let Some((req, branch, dest)) = self.dialog_request(id, Method::Bye, None) else { return };
        if let Some(c) = self.calls.get_mut(id) {
            c.state = CallState::Ending;
        }
        let reliable = self.calls.get(id).is_some_and(|c| c.reliable);
        let bytes = msg::to_bytes(&rsip::SipMessage::Request(req.clone()));
        let (tx, first) = ClientTx::new(now, false, bytes, dest, reliable, self.cfg.timers);
        self.clients.insert((branch, "BYE".into()), ClientEntry { tx, call: Some(id.clone()), purpose: Purpose::Bye, request: req });
        self.emit_tx(dest, first);
    }

    /// A response to `req` (already carrying received/rport in its Via).
    fn response(&self, req: &Message, status: u16, to_tag: Option<&str>, extra: Vec<Header>, body: Vec<u8>) -> Vec<u8> {
        let mut headers = Vec::new();
        for h in req.headers().iter() {
            match h {
                Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => headers.push(h.clone()),
                Header::RecordRoute(_) if req.method() == Some(Method::Invite) && (101..300).contains(&status) => headers.push(h.clone()),
                Header::To(t) => match to_tag {
                    Some(tag) if status > 100 => headers.push(hdr("To", with_tag(t.value(), tag))),
                    _ => headers.push(h.clone()),
                },
                _ => {}
            }
        }
        headers.push(hdr("Server", self.cfg.user_agent.clone()));
        headers.extend(extra);
        if !body.is_empty() {
            headers.push(hdr("Content-Type", "application/sdp"));
        }
        let resp = rsip::Response { status_code: status.into(), version: rsip::Version::V2, headers: headers.into(), body };
        msg::to_bytes(&rsip::SipMessage::Response(resp))
    }

    /// Where responses to a request from `from` go (§18.2.2, RFC 3581).
    fn response_dest(req: &Message, from: SocketAddr) -> SocketAddr {
        if req.via.rport {
            return from;
        }
        let hp = &req.via.sent_by;
        let port = hostport_addr(hp).map(|a| a.port()).unwrap_or(5060);
        SocketAddr::new(from.ip(), port)
    }

    /// Adds `received` and a filled-in `rport` to the top Via (RFC 3581 §4).
    fn stamp_via(req: &mut Message, from: SocketAddr) {
        let headers = match &mut req.sip {
            rsip::SipMessage::Request(r) => &mut r.headers,
            rsip::SipMessage::Response(_) => return,
        };
        if let Some(h) = headers.iter_mut().find(|h| matches!(h, Header::Via(_))) {
            let v = h.to_string();
            let v = v.split_once(':').map(|x| x.1.trim().to_owned()).unwrap_or(v);
            let mut parts: Vec<String> = v.split(';').map(str::to_owned).collect();
            let mut changed = false;
            for p in parts.iter_mut().skip(1) {
                if p.trim().eq_ignore_ascii_case("rport") {
                    *p = format!("rport={}", from.port());
                    changed = true;
                }
            }
            let host = msg::uri_hostport(&format!("sip:{}", req.via.sent_by)).to_owned();
            let host_ip = hostport_addr(&host).map(|a| a.ip());
            if changed || host_ip != Some(from.ip()) {
                parts.retain(|p| !p.trim().to_ascii_lowercase().starts_with("received="));
                parts.push(format!("received={}", from.ip()));
            }
            *h = hdr("Via", parts.join(";"));
        }
    }

    fn respond_invite(&mut self, now: Instant, id: &CallId, status: u16, body: Vec<u8>) -> Result<(), CallError> {
        let c = self.calls.get(id).ok_or(CallError::UnknownCall)?;
        if c.outbound || c.state != CallState::Early {
            return Err(CallError::InvalidState("not an unanswered inbound call"));
        }
        let key = c.server_key.clone().ok_or(CallError::InvalidState("no INVITE transaction"))?;
        let tag = msg::header_param(&c.local, "tag").flatten();
        let contact = format!("<sip:centralino@{}>", self.cfg.local);
        let entry = self.servers.get(&key).ok_or(CallError::InvalidState("INVITE transaction gone"))?;
        let mut extra = Vec::new();
        if status < 300 {
            extra.push(hdr("Contact", contact));
            extra.push(hdr("Allow", ALLOW));
        }
        let bytes = self.response(&entry.request, status, tag.as_deref(), extra, body.clone());
        if status == 200
            && let Some(c) = self.calls.get_mut(id) {
                c.local_sdp = Some(body);
            }
        self.server_send(now, &key, status, bytes);
        Ok(())
    }

    fn server_send(&mut self, now: Instant, key: &ServerKey, status: u16, bytes: Vec<u8>) {
        let Some(e) = self.servers.get_mut(key) else { return };
        let dest = e.tx.dest;
        for o in e.tx.send(now, status, bytes) {
            self.emit_tx(dest, o);
        }
    }

    fn end(&mut self, id: &CallId, outcome: Outcome, status: Option<u16>) {
        if let Some(c) = self.calls.remove(id) {
            // Any INVITE client transaction still waiting belongs to nobody
            // now. One in Proceeding has no timer of its own (timer B stops
            // at the first 1xx), so it is dropped here rather than left stuck;
            // one in Completed stays to re-ACK retransmissions until timer D.
            if let Some((b, m)) = c.invite_key {
                let key = (b, m.to_string());
                let waiting = self.clients.get(&key).is_some_and(|e| matches!(e.tx.state, crate::transaction::ClientState::Calling | crate::transaction::ClientState::Proceeding));
                if waiting {
                    self.clients.remove(&key);
                } else if let Some(e) = self.clients.get_mut(&key) {
                    e.call = None;
                }
            }
            tracing::debug!(call_id = %id, ?outcome, ?status, "call ended");
            self.events.push_back(Event::Ended { call: id.clone(), outcome, status });
        }
    }

    // ----- input -----

    fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8], reliable: bool) {
        // Checked before parsing, so a flood costs a lookup, not a parse.
        match self.guard.admit_message(now, from, data.len()) {
            Verdict::Pass => {}
            v => {
                self.rate_limited += 1;
                let reason = if v == Verdict::TooLarge { "message too large" } else { "message rate" };
                self.guard.log_refusal(now, from, "message", reason);
                return;
            }
        }
        // RFC 5626 keep-alives are bare CRLFs; they need no answer here.
        if data.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return;
        }
        let mut m = match msg::parse(data) {
            Ok(m) => m,
            Err(e) => {
                self.dropped += 1;
                tracing::debug!(%from, error = %e, "malformed message");
                if let Some(resp) = msg::bad_request_for(data, &e) {
                    self.outbox.push_back(Transmit { dest: from, data: resp });
                }
                return;
            }
        };
        if m.is_request() {
            Self::stamp_via(&mut m, from);
            self.on_request(now, from, m, reliable);
        } else {
            self.on_response(now, m);
        }
    }

    fn on_response(&mut self, now: Instant, m: Message) {
        let Some(status) = m.status() else { return };
        let Some(branch) = m.via.branch.clone() else { return };
        let key = (branch, m.cseq_method.to_string());
        let Some(entry) = self.clients.get_mut(&key) else {
            // A 2xx retransmission after the INVITE transaction ended: the
            // dialog resends its ACK (§13.2.2.4).
            if (200..300).contains(&status) && m.cseq_method == Method::Invite
                && let Some(c) = self.calls.get(&m.call_id)
                    && let Some(ack) = c.ack.clone() {
                        let dest = Self::dialog_dest(c);
                        self.outbox.push_back(Transmit { dest, data: ack });
                    }
            return;
        };
        let req = entry.request.clone();
        let dest = entry.tx.dest;
        let outs = entry.tx.on_response(now, status, || Self::non2xx_ack(&req, &m));
        let (call, purpose) = (entry.call.clone(), entry.purpose);
        let mut deliver = false;
        for o in outs {
            match o {
                TxOutput::Response => deliver = true,
                other => self.emit_tx(dest, other),
            }
        }
        if deliver
            && let Some(call) = call {
                match purpose {
                    Purpose::Invite => self.on_invite_response(now, &call, &m, status),
                    Purpose::Bye if status >= 200 => self.end(&call, Outcome::Completed { by_remote: false }, None),
                    // An adopted call's CANCEL refused (481): the carrier no
                    // longer has the INVITE; nothing is left to end.
                    Purpose::Cancel if status >= 300 && self.calls.get(&call).is_some_and(|c| c.adopted && c.state == CallState::Early) => self.end(&call, Outcome::Cancelled, Some(status)),
                    _ => {}
                }
            }
        self.gc();
    }

    /// The ACK for a non-2xx final response (§17.1.1.3): same branch and
    /// Request-URI as the INVITE, the To of the response.
    fn non2xx_ack(inv: &rsip::Request, resp: &Message) -> Vec<u8> {
        let mut headers = Vec::new();
        for h in inv.headers.iter() {
            match h {
                Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::Route(_) | Header::MaxForwards(_) => headers.push(h.clone()),
                Header::CSeq(cs) => {
                    let n = cs.value().split_whitespace().next().unwrap_or("1").to_owned();
                    headers.push(hdr("CSeq", format!("{n} ACK")));
                }
                Header::To(t) => headers.push(resp.header("To").map(|v| hdr("To", v)).unwrap_or_else(|| Header::To(t.clone()))),
                _ => {}
            }
        }
        let req = rsip::Request { method: Method::Ack, uri: inv.uri.clone(), version: rsip::Version::V2, headers: headers.into(), body: Vec::new() };
        msg::to_bytes(&rsip::SipMessage::Request(req))
    }

    fn on_invite_response(&mut self, now: Instant, id: &CallId, m: &Message, status: u16) {
        let Some(c) = self.calls.get_mut(id) else { return };
        match status {
            100 => {
                c.got_1xx = true;
                if c.cancel.is_some() {
                    self.try_cancel(now, id);
                }
            }
            101..=199 => {
                c.got_1xx = true;
                let sdp = (!m.body().is_empty()).then(|| m.body().to_vec());
                self.events.push_back(Event::Progress { call: id.clone(), status, sdp });
                if c.cancel.is_some() {
                    self.try_cancel(now, id);
                }
            }
            200..=299 => {
                if c.state != CallState::Early {
                    return;
                }
                c.remote_tag = m.to_tag.clone();
                if let Some(to) = m.header("To") {
                    c.remote = to;
                }
                c.remote_target = m.header("Contact").map(|v| msg::header_uri(&v).to_owned());
                c.route_set = m.header_values("Record-Route").iter().flat_map(|v| msg::split_commas(v).into_iter().map(str::to_owned).collect::<Vec<_>>()).rev().collect();
                c.state = CallState::Established;
                c.ring_deadline = None;
                c.cancel_deadline = None;
                let cancelled = c.cancel.is_some();
                let cseq = m.cseq;
                if let Some((ack, _, dest)) = self.dialog_request(id, Method::Ack, Some(cseq)) {
                    let bytes = msg::to_bytes(&rsip::SipMessage::Request(ack));
                    self.outbox.push_back(Transmit { dest, data: bytes.clone() });
                    if let Some(c) = self.calls.get_mut(id) {
                        c.ack = Some(bytes);
                    }
                }
                self.events.push_back(Event::Answered { call: id.clone(), sdp: m.body().to_vec() });
                if cancelled {
                    // The 200 crossed our CANCEL: the call exists, end it.
                    self.send_bye(now, id);
                }
            }
            401 | 407 => {
                let hname = if status == 401 { "WWW-Authenticate" } else { "Proxy-Authenticate" };
                let answer = if status == 401 { "Authorization" } else { "Proxy-Authorization" };
                let ch = m.header(hname).and_then(|v| Challenge::parse(&v).ok());
                match (c.auth.clone(), ch) {
                    (Some(auth), Some(ch)) if c.auth_attempts < 2 && c.cancel.is_none() => {
                        c.auth_attempts += 1;
                        c.local_cseq += 1;
                        let uri = c.request_uri.clone();
                        let cnonce = self.token(8);
                        let value = digest::authorization(&ch, &auth.username, &auth.password, "INVITE", &uri, 1, &cnonce);
                        if self.send_invite(now, id, Some((answer.to_owned(), value))).is_err() {
                            self.end(id, Outcome::AuthFailed, Some(status));
                        }
                    }
                    _ => self.end(id, Outcome::AuthFailed, Some(status)),
                }
            }
            _ => {
                let outcome = match (c.cancel, status) {
                    (Some(o), 487) => o,
                    _ => status_outcome(status, m.header("Retry-After").and_then(|v| v.split_whitespace().next()?.parse().ok())),
                };
                self.end(id, outcome, Some(status));
            }
        }
    }

    fn on_request(&mut self, now: Instant, from: SocketAddr, m: Message, reliable: bool) {
        let Some(method) = m.method() else { return };
        let branch = m.via.branch.clone().unwrap_or_default();
        let key = ServerKey {
            branch: branch.clone(),
            method: if method == Method::Ack { "INVITE".into() } else { method.to_string() },
            sent_by: m.via.sent_by.clone(),
        };
        if method == Method::Ack {
            if let Some(e) = self.servers.get_mut(&key) {
                e.tx.on_ack(now);
            } else if let Some(c) = self.calls.get(&m.call_id) {
                // ACK for our 2xx: a new transaction, matched by dialog.
                if let Some(k) = c.server_key.clone()
                    && let Some(e) = self.servers.get_mut(&k) {
                        e.tx.on_ack(now);
                    }
            }
            self.gc();
            return;
        }
        if let Some(e) = self.servers.get_mut(&key) {
            let dest = e.tx.dest;
            for o in e.tx.on_retransmit() {
                self.emit_tx(dest, o);
            }
            return;
        }
        // Over a stream the response goes back on the connection (§18.2.2).
        let dest = if reliable { from } else { Self::response_dest(&m, from) };
        if self.guard.admit_transaction(now, from) != Verdict::Pass {
            // Stateless, so the flood leaves no transaction behind; the
            // message rate limit bounds how many of these we send.
            self.rate_limited += 1;
            self.guard.log_refusal(now, from, &method.to_string(), "transaction rate");
            let r = self.response(&m, 503, None, vec![hdr("Retry-After", "5")], Vec::new());
            self.outbox.push_back(Transmit { dest, data: r });
            return;
        }
        let tx = ServerTx::new(method == Method::Invite, dest, reliable, self.cfg.timers);
        self.servers.insert(key.clone(), ServerEntry { tx, request: m.clone(), call: None });
        match method {
            Method::Invite => self.on_invite(now, from, &key, &m, reliable),
            Method::Cancel => self.on_cancel(now, &key, &m),
            Method::Bye => {
                let found = self.calls.get(&m.call_id).is_some_and(|c| c.remote_tag == m.from_tag || c.remote_tag == m.to_tag);
                if found {
                    let r = self.response(&m, 200, None, Vec::new(), Vec::new());
                    self.server_send(now, &key, 200, r);
                    self.end(&m.call_id, Outcome::Completed { by_remote: true }, None);
                } else {
                    let r = self.response(&m, 481, None, Vec::new(), Vec::new());
                    self.server_send(now, &key, 481, r);
                }
            }
            Method::Options => {
                let tag = self.token(6);
                let extra = vec![hdr("Allow", ALLOW), hdr("Accept", "application/sdp")];
                let r = self.response(&m, 200, Some(&tag), extra, Vec::new());
                self.server_send(now, &key, 200, r);
            }
            Method::Register => self.on_register(now, from, &key, &m),
            Method::Info if self.calls.contains_key(&m.call_id) => {
                let r = self.response(&m, 200, None, Vec::new(), Vec::new());
                self.server_send(now, &key, 200, r);
            }
            _ => {
                let r = self.response(&m, 501, None, vec![hdr("Allow", ALLOW)], Vec::new());
                self.server_send(now, &key, 501, r);
            }
        }
        self.gc();
    }

    fn on_invite(&mut self, now: Instant, from: SocketAddr, key: &ServerKey, m: &Message, reliable: bool) {
        if m.to_tag.is_some() {
            // A re-INVITE: keep the session as it is by answering with our
            // current SDP; anything else about the dialog stays unchanged.
            let sdp = self.calls.get(&m.call_id).filter(|c| c.state == CallState::Established).map(|c| c.local_sdp.clone().unwrap_or_else(|| c.offer.clone()));
            let (status, body) = match sdp {
                Some(s) => (200, s),
                None => (481, Vec::new()),
            };
            let contact = hdr("Contact", format!("<sip:centralino@{}>", self.cfg.local));
            let r = self.response(m, status, None, if status == 200 { vec![contact] } else { Vec::new() }, body);
            self.server_send(now, key, status, r);
            return;
        }
        if self.calls.contains_key(&m.call_id) {
            // Same Call-ID as a call we know but a new transaction: a loop
            // or a forked copy; refuse it (§8.2.2.2).
            let r = self.response(m, 482, None, Vec::new(), Vec::new());
            self.server_send(now, key, 482, r);
            return;
        }
        if !self.guard.is_trunk(from) && !self.authorize_invite(now, from, key, m) {
            return;
        }
        let trying = self.response(m, 100, None, Vec::new(), Vec::new());
        self.server_send(now, key, 100, trying);
        let local_tag = self.token(8);
        let to = m.header("To").unwrap_or_default();
        let remote = m.header("From").unwrap_or_default();
        let identity = m.header("P-Asserted-Identity").map(|v| msg::split_commas(&v).first().map(|s| s.to_string()).unwrap_or_default()).filter(|v| !v.is_empty()).unwrap_or_else(|| remote.clone());
        let uri = msg::header_uri(&identity).to_owned();
        let caller = msg::uri_user(&uri).map(str::to_owned).unwrap_or(uri);
        let display = identity.split('<').next().map(|d| d.trim().trim_matches('"').to_owned()).filter(|d| !d.is_empty() && identity.contains('<'));
        let request_uri = m.request_uri().unwrap_or_default();
        let callee = msg::uri_user(&request_uri).unwrap_or_default().to_owned();
        let call = Call {
            outbound: false,
            state: CallState::Early,
            local: with_tag(&to, &local_tag),
            remote,
            remote_tag: m.from_tag.clone(),
            local_cseq: 0,
            remote_target: m.header("Contact").map(|v| msg::header_uri(&v).to_owned()),
            route_set: m.header_values("Record-Route").iter().flat_map(|v| msg::split_commas(v).into_iter().map(str::to_owned).collect::<Vec<_>>()).collect(),
            peer: if reliable { from } else { Self::response_dest(m, from) },
            reliable,
            request_uri,
            invite_key: None,
            invite: None,
            offer: Vec::new(),
            auth: None,
            auth_attempts: 0,
            got_1xx: false,
            cancel: None,
            cancel_sent: false,
            ring_deadline: None,
            cancel_deadline: None,
            ack: None,
            server_key: Some(key.clone()),
            local_sdp: None,
            adopted: false,
        };
        self.calls.insert(m.call_id.clone(), call);
        if let Some(e) = self.servers.get_mut(key) {
            e.call = Some(m.call_id.clone());
        }
        tracing::debug!(call_id = %m.call_id, %caller, "incoming call");
        self.events.push_back(Event::Incoming(IncomingCall {
            call: m.call_id.clone(),
            caller: msg::sanitize(&caller),
            caller_display: display,
            callee,
            sdp: m.body().to_vec(),
            source: from,
        }));
    }

    fn on_cancel(&mut self, now: Instant, key: &ServerKey, m: &Message) {
        let inv_key = ServerKey { method: "INVITE".into(), ..key.clone() };
        let pending = self.servers.get(&inv_key).map(|e| (e.call.clone(), e.tx.state));
        match pending {
            Some((call, state)) => {
                let r = self.response(m, 200, None, Vec::new(), Vec::new());
                self.server_send(now, key, 200, r);
                if state == crate::transaction::ServerState::Proceeding {
                    let tag = call.as_ref().and_then(|c| self.calls.get(c)).and_then(|c| msg::header_param(&c.local, "tag").flatten());
                    if let Some(inv) = self.servers.get(&inv_key).map(|e| e.request.clone()) {
                        let r = self.response(&inv, 487, tag.as_deref(), Vec::new(), Vec::new());
                        self.server_send(now, &inv_key, 487, r);
                    }
                    if let Some(c) = call {
                        self.end(&c, Outcome::Cancelled, Some(487));
                    }
                }
            }
            None => {
                let r = self.response(m, 481, None, Vec::new(), Vec::new());
                self.server_send(now, key, 481, r);
            }
        }
    }

    /// Toll-fraud protection for an INVITE from a source that is not a
    /// trusted trunk: it must carry a digest answer (Proxy-Authorization,
    /// RFC 3261 §22.3) for an agent that [`Credentials`] knows. Answers 407
    /// or 403 itself and returns false if the call must not go ahead.
    fn authorize_invite(&mut self, now: Instant, from: SocketAddr, key: &ServerKey, m: &Message) -> bool {
        let tag = self.token(6);
        let Some(store) = self.credentials.clone() else {
            self.refuse(now, from, key, m, &tag, "not a trusted trunk");
            return false;
        };
        let creds = m.header("Proxy-Authorization").and_then(|v| digest::Credentials::parse(&v).ok());
        let Some(creds) = creds else {
            let ch = self.challenge(now, false);
            let r = self.response(m, 407, Some(&tag), vec![hdr("Proxy-Authenticate", ch)], Vec::new());
            self.server_send(now, key, 407, r);
            return false;
        };
        let fresh = self.nonces.get(&creds.nonce).is_some_and(|t| now.duration_since(*t) < NONCE_LIFETIME);
        if !fresh || creds.realm != self.cfg.realm {
            let ch = self.challenge(now, !fresh);
            let r = self.response(m, 407, Some(&tag), vec![hdr("Proxy-Authenticate", ch)], Vec::new());
            self.server_send(now, key, 407, r);
            return false;
        }
        if store.password(&creds.username).is_some_and(|pw| creds.verify(&pw, "INVITE")) {
            return true;
        }
        self.refuse(now, from, key, m, &tag, "digest refused");
        false
    }

    fn refuse(&mut self, now: Instant, from: SocketAddr, key: &ServerKey, m: &Message, tag: &str, reason: &str) {
        self.refused += 1;
        self.guard.log_refusal(now, from, "INVITE", reason);
        let r = self.response(m, 403, Some(tag), Vec::new(), Vec::new());
        self.server_send(now, key, 403, r);
    }

    fn challenge(&mut self, now: Instant, stale: bool) -> String {
        if self.nonces.len() >= MAX_NONCES {
            self.nonces.retain(|_, t| now.duration_since(*t) < NONCE_LIFETIME);
            if self.nonces.len() >= MAX_NONCES {
                // A flood of unanswered challenges: forget them all rather
                // than grow; honest clients simply get challenged again.
                self.nonces.clear();
            }
        }
        let nonce = self.token(16);
        self.nonces.insert(nonce.clone(), now);
        Challenge { realm: self.cfg.realm.clone(), nonce, opaque: None, algorithm: self.cfg.auth_algorithm, qop_auth: true, stale }.to_header_value()
    }

    fn on_register(&mut self, now: Instant, from: SocketAddr, key: &ServerKey, m: &Message) {
        let Some(store) = self.credentials.clone() else {
            let r = self.response(m, 405, None, vec![hdr("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO")], Vec::new());
            self.server_send(now, key, 405, r);
            return;
        };
        let tag = self.token(6);
        let creds = m.header("Authorization").and_then(|v| digest::Credentials::parse(&v).ok());
        let Some(creds) = creds else {
            let ch = self.challenge(now, false);
            let r = self.response(m, 401, Some(&tag), vec![hdr("WWW-Authenticate", ch)], Vec::new());
            self.server_send(now, key, 401, r);
            return;
        };
        let fresh = self.nonces.get(&creds.nonce).is_some_and(|t| now.duration_since(*t) < NONCE_LIFETIME);
        if !fresh || creds.realm != self.cfg.realm {
            let ch = self.challenge(now, !fresh);
            let r = self.response(m, 401, Some(&tag), vec![hdr("WWW-Authenticate", ch)], Vec::new());
            self.server_send(now, key, 401, r);
            return;
        }
        let ok = store.password(&creds.username).is_some_and(|pw| creds.verify(&pw, "REGISTER"));
        if !ok {
            tracing::info!(user = %msg::sanitize(&creds.username), "registration refused");
            let r = self.response(m, 403, Some(&tag), Vec::new(), Vec::new());
            self.server_send(now, key, 403, r);
            return;
        }
        let user = creds.username.clone();
        let contact = m.header("Contact");
        let header_expires = m.header("Expires").and_then(|v| v.trim().parse::<u32>().ok());
        let (contact_value, expires) = match contact.as_deref() {
            Some("*") => (None, 0),
            Some(c) => {
                let e = msg::header_param(c, "expires").flatten().and_then(|v| v.parse().ok()).or(header_expires).unwrap_or(3600);
                (Some(msg::header_uri(c).to_owned()), e.min(self.cfg.max_register_expires))
            }
            None => (None, u32::MAX),
        };
        let mut extra = Vec::new();
        if expires == u32::MAX {
            // A query: report the current binding without changing it.
            if let Some(b) = self.registration(&user, now) {
                let left = b.expires_at.saturating_duration_since(now).as_secs();
                extra.push(hdr("Contact", format!("<{}>;expires={left}", b.contact)));
            }
        } else if expires == 0 {
            self.bindings.remove(&user);
            self.events.push_back(Event::Registered { user: user.clone(), contact: contact_value.clone().unwrap_or_default(), source: from, expires: 0 });
        } else if let Some(c) = contact_value {
            self.bindings.insert(user.clone(), Binding { contact: c.clone(), source: from, expires_at: now + Duration::from_secs(expires.into()) });
            extra.push(hdr("Contact", format!("<{c}>;expires={expires}")));
            self.events.push_back(Event::Registered { user, contact: c, source: from, expires });
        }
        let r = self.response(m, 200, Some(&tag), extra, Vec::new());
        self.server_send(now, key, 200, r);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<_> = self.clients.iter().filter(|(_, e)| e.tx.next_timeout().is_some_and(|t| t <= now)).map(|(k, _)| k.clone()).collect();
        for k in due {
            let Some(e) = self.clients.get_mut(&k) else { continue };
            let dest = e.tx.dest;
            let outs = e.tx.on_timeout(now);
            let (call, purpose) = (e.call.clone(), e.purpose);
            for o in outs {
                match o {
                    TxOutput::Timeout => {
                        if let Some(c) = &call {
                            match purpose {
                                Purpose::Invite => {
                                    let outcome = self.calls.get(c).and_then(|c| c.cancel).unwrap_or(Outcome::NoAnswer);
                                    self.end(c, outcome, Some(408));
                                }
                                Purpose::Bye => self.end(c, Outcome::Completed { by_remote: false }, Some(408)),
                                Purpose::Cancel => {}
                            }
                        }
                    }
                    other => self.emit_tx(dest, other),
                }
            }
        }
        let due: Vec<_> = self.servers.iter().filter(|(_, e)| e.tx.next_timeout().is_some_and(|t| t <= now)).map(|(k, _)| k.clone()).collect();
        for k in due {
            let Some(e) = self.servers.get_mut(&k) else { continue };
            let dest = e.tx.dest;
            let call = e.call.clone();
            for o in e.tx.on_timeout(now) {
                match o {
                    TxOutput::NoAck => {
                        if let Some(c) = &call
                            && self.calls.get(c).is_some_and(|c| c.state == CallState::Established) {
                                // §13.3.1.4: no ACK for our 2xx, so end the dialog with BYE.
                                self.send_bye(now, c);
                                self.end(c, Outcome::Failed, None);
                            }
                    }
                    other => self.emit_tx(dest, other),
                }
            }
        }
        let ring: Vec<_> = self.calls.iter().filter(|(_, c)| c.ring_deadline.is_some_and(|t| t <= now)).map(|(k, _)| k.clone()).collect();
        for id in ring {
            if let Some(c) = self.calls.get_mut(&id) {
                c.ring_deadline = None;
                c.cancel.get_or_insert(Outcome::NoAnswer);
                tracing::debug!(call_id = %id, "ring timeout");
            }
            self.try_cancel(now, &id);
        }
        let stuck: Vec<_> = self.calls.iter().filter(|(_, c)| c.cancel_deadline.is_some_and(|t| t <= now)).map(|(k, c)| (k.clone(), c.cancel.unwrap_or(Outcome::Cancelled))).collect();
        for (id, outcome) in stuck {
            self.end(&id, outcome, None);
        }
        self.gc();
    }

    /// Drops terminated transactions, and INVITE client transactions whose
    /// call has ended and that have nothing left to do.
    fn gc(&mut self) {
        self.clients.retain(|_, e| !e.tx.is_terminated());
        self.servers.retain(|_, e| !e.tx.is_terminated());
    }
}
