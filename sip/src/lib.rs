//! SIP signalling for centralino: messages, a sans-IO transaction, dialog
//! and user-agent core, and a thin tokio driver.
//!
//! # Shape
//!
//! The principal type is [`Endpoint`], a sans-IO core in the style of
//! quinn-proto: it does no I/O and reads no clock. Its neighbours are:
//!
//! - [`msg`]: messages on `rsip` 0.4, with our normalisation layer in front
//!   of rsip's parser (compact and folded headers, Via lists, body cut to
//!   Content-Length, size limits) and [`msg::bad_request_for`] for 400s.
//! - [`digest`]: digest authentication (MD5, SHA-256 with RFC 8760 tokens,
//!   `qop=auth`, `nc` in hex), replacing rsip's generator.
//! - [`framing`]: stream framing by Content-Length for TCP/TLS; a partial
//!   frame is `Incomplete`, not an error.
//! - [`transaction`]: the RFC 3261 §17 state machines with timers A–K
//!   (T1 = 500 ms, T2 = 4 s, T4 = 5 s), owned by the endpoint.
//! - [`sdp`]: the PCMU/PCMA/telephone-event offer and answer.
//! - [`driver`]: the only module with sockets and a clock: one UDP socket
//!   (SO_RCVBUF 4 MiB), optionally a TCP listener and client connections
//!   ([`driver::spawn_with_tcp`], [`Config::tcp_trunks`]), bounded
//!   queues, graceful shutdown via `watch`.
//! - [`guard`]: toll-fraud admission and per-source size/rate limits.
//!
//! - Media: [`media`] is the RTP plane, one dedicated thread owning every
//!   leg's socket (relay, latching, prompts, recording, DTMF); [`rtp`]
//!   (header rewriting for continuity), [`dtmf`] (RFC 4733), [`g711`] and
//!   [`wav`] are its pure helpers; [`b2bua`] joins calls to legs;
//!   [`bench`] measures the relay for the `loadtest` binary.
//!
//! **Architecture invariants.** The core (`msg`, `digest`, `framing`,
//! `transaction`, `endpoint`, `sdp`) does no I/O and reads no clock; time
//! is always a `now: Instant` argument. The crate depends on no other
//! workspace crate: agent passwords come in through the [`Credentials`]
//! trait and call outcomes go out as [`Event`]s, both wired by the
//! composition root. No per-message path unwraps: a malformed message is
//! answered 400 where a response is possible and otherwise dropped.
//!
//! # Call-control API
//!
//! Driving the core directly (tests, custom drivers):
//!
//! ```text
//! let mut ep = Endpoint::new(Config::new(local_addr), Some(credentials));
//! ep.handle(now, Input::Datagram { from, data });   // bytes in
//! ep.handle(now, Input::Timeout);                   // once poll_timeout() has passed
//! while let Some(Transmit { dest, data }) = ep.poll_transmit() { /* send */ }
//! while let Some(event) = ep.pop_event() { /* react */ }
//! let wake_at: Option<Instant> = ep.poll_timeout();
//! ```
//!
//! Calls are identified by their SIP Call-ID, the newtype [`CallId`].
//!
//! - Outbound: [`Endpoint::dial`]`(now, `[`Dial`]` { trunk, number, caller,
//!   rtp, auth, ring_timeout })` → `CallId`. The INVITE carries an SDP offer
//!   (PCMU, PCMA, telephone-event). 100 is absorbed; 180/183 raise
//!   [`Event::Progress`] (with early SDP if any); a 2xx is ACKed and raises
//!   [`Event::Answered`]; 401/407 are answered once with digest from
//!   [`DigestAuth`] (same Call-ID and From tag, CSeq + 1). Our ring timer
//!   ([`Config::ring_timeout`], default 30 s) sends CANCEL (only after a
//!   1xx, as §9.1 requires) and the 487 ends the call as
//!   [`Outcome::NoAnswer`].
//! - Inbound: an INVITE is answered 100 at once and raises
//!   [`Event::Incoming`] ([`IncomingCall`]: caller from P-Asserted-Identity,
//!   else From) before any answer. Then [`Endpoint::ring`] (180),
//!   [`Endpoint::answer`]`(sdp)` (200, retransmitted until the ACK), or
//!   [`Endpoint::reject`]`(status)`. A CANCEL from the caller gets 200 and
//!   487 and ends the call as [`Outcome::Cancelled`].
//! - Either way: [`Endpoint::hangup`] sends CANCEL (outbound, unanswered),
//!   603 (inbound, unanswered) or BYE (established); a BYE from the peer is
//!   answered 200. Every call ends with exactly one [`Event::Ended`]
//!   `{ call, outcome, status }`, where [`Outcome`] maps 486/600 → `Busy`,
//!   480/408/timer B → `NoAnswer`, 404/484 → `BadNumber`, 503 →
//!   `CarrierTrouble { retry_after }`, other failures → `Rejected`.
//! - Registrar: REGISTER is challenged (401, digest realm
//!   [`Config::realm`]), checked against [`Credentials::password`], and a
//!   binding raises [`Event::Registered`]; [`Endpoint::registration`] looks
//!   one up. Without a `Credentials`, REGISTER gets 405.
//! - OPTIONS is always answered 200.
//! - Toll-fraud protection ([`guard`]): a new INVITE is accepted only from
//!   an address in [`Config::trusted_trunks`] or with a digest answer to
//!   our 407 that [`Credentials`] verifies (an agent's softphone);
//!   anything else gets 403, counted in [`Endpoint::refused`] and logged at
//!   most ten lines a second. Per source IP, datagrams over
//!   [`RateLimits::max_message`] and beyond the message rate are dropped
//!   unparsed, new transactions beyond the transaction rate get a
//!   stateless 503 (token buckets with injected time; trunks unlimited
//!   unless configured).
//!
//! With the tokio driver, the same operations are async methods on
//! [`driver::Handle`] (`dial`, `ring`, `answer`, `reject`, `hangup`), and
//! events arrive on a bounded `mpsc::Receiver<Event>`:
//!
//! ```text
//! let socket = driver::bind_udp(config_bind_addr)?;          // e.g. 127.0.0.1:5060
//! let ep = Endpoint::new(Config::new(socket.local_addr()?), Some(creds));
//! let (handle, events, task) = driver::spawn(socket, ep, shutdown_rx)?;
//! // or UDP and TCP on one address, as `centralino serve` listens:
//! let tcp = driver::bind_tcp(socket.local_addr()?)?;
//! let (handle, events, task) = driver::spawn_with_tcp(socket, Some(tcp), ep, shutdown_rx)?;
//! let call = handle.dial(Dial { .. }).await?;
//! // shutdown_tx.send(true): calls are hung up, the task ends within 2 s.
//! ```
//!
//! # Calls with media: the B2BUA
//!
//! Every call terminates at centralino: [`b2bua::B2bua`] gives each call
//! its own RTP port (a *leg* in the [`media::Media`] thread) and writes it
//! into our SDP; the far ends never see each other.
//!
//! ```text
//! let (media, media_events, _thread) = Media::start(MediaConfig::new(media_ip))?;
//! let (b2b, mut events, _pump) = B2bua::spawn(handle, sip_events, media, media_events, sink);
//! let customer = b2b.dial(Dial { .. }).await?;      // leg allocated, offer carries its port
//! // Incoming(inc) → b2b.ring(&inc.call), b2b.answer(&inc.call) (leg in the offered codec)
//! b2b.bridge(&agent, &customer).await?;             // media both ways, no signalling
//! b2b.unbridge(&agent).await?;                      // agent's leg stays up (nailed-up)
//! b2b.bridge(&agent, &next_customer).await?;        // re-bridge to the next answered call
//! b2b.play(&customer, Prompt::load(path, Codec::Pcmu)?).await?;  // 20 ms paced
//! b2b.record(&customer, Some(path)).await?;         // 2-channel WAV; None stops
//! b2b.hangup(&customer).await?;
//! ```
//!
//! - `events` yields [`b2bua::CallEvent`]: every SIP [`Event`], plus
//!   `Dtmf { call, digit, duration_ms }` (RFC 4733, once per key press) and
//!   `PromptDone { call }`.
//! - Bridging rewrites SSRC, sequence and timestamp toward each far end so
//!   it sees one continuous stream across bridges, prompts and re-bridges;
//!   PCMU↔PCMA legs are transcoded; we send to where the far end's packets
//!   come from (symmetric RTP).
//! - Every call ends with one [`b2bua::CallRecord`] (start, ringing,
//!   answer, end; outcome and SIP status; leg; calls it was bridged with;
//!   recording path) handed to the [`b2bua::CallRecordSink`] that the
//!   composition root implements against the CRM.

pub mod b2bua;
pub mod bench;
pub mod digest;
pub mod driver;
pub mod dtmf;
pub mod endpoint;
pub mod framing;
pub mod g711;
pub mod guard;
pub mod media;
pub mod msg;
pub mod rtp;
pub mod sdp;
pub mod transaction;
pub mod wav;

pub use guard::{RateLimits, TrunkAddr};
pub use endpoint::{Config, Credentials, Dial, DigestAuth, Endpoint, Event, IncomingCall, Input, Outcome, Transmit};
pub use msg::CallId;
