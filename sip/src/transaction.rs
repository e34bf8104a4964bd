//! The RFC 3261 §17 transaction layer: four state machines (INVITE and
//! non-INVITE, client and server) with timers A, B, D, E, F, G, H, I, J, K.
//! Timer C belongs to proxies, which we are not.
//!
//! Each transaction is a plain value driven by its owner, the
//! [`crate::endpoint::Endpoint`]: it is told about messages and the time
//! (`now` is always passed in, never read) and answers with [`TxOutput`]s:
//! bytes to (re)transmit and what to tell the transaction user. It reports
//! its next deadline through `next_timeout`, which the endpoint folds into
//! `poll_timeout`. On reliable transports the retransmission timers are off
//! and the wait timers D, I, J, K are zero, as §17 says.
//!
//! One deviation on purpose: the INVITE server transaction has RFC 6026's
//! `Accepted` state, so it, not the dialog layer, retransmits a 2xx until
//! the ACK arrives (timer G's schedule) and gives up at timer L = 64·T1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The RFC 3261 base timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers { t1: Duration::from_millis(500), t2: Duration::from_secs(4), t4: Duration::from_secs(5) }
    }
}

impl Timers {
    /// 64·T1: timers B, F, H, J (and L).
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }
}

/// What a transaction asks of its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxOutput {
    /// Send these bytes to the transaction's peer.
    Transmit(Vec<u8>),
    /// A response the client transaction passes up (the first of each
    /// status class, every 2xx for INVITE).
    Response,
    /// Timer B or F fired: the TU should act as on a 408.
    Timeout,
    /// Server INVITE: no ACK came for a final response (timer H or L).
    NoAck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// `Calling` for INVITE, `Trying` for the rest.
    Calling,
    Proceeding,
    Completed,
    Terminated,
}

/// A client transaction (INVITE or non-INVITE).
#[derive(Debug, Clone)]
pub struct ClientTx {
    pub invite: bool,
    pub state: ClientState,
    pub dest: SocketAddr,
    reliable: bool,
    timers: Timers,
    request: Vec<u8>,
    /// The ACK for a non-2xx final response, resent when the response is.
    ack: Option<Vec<u8>>,
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer B (INVITE) or F (non-INVITE).
    timeout_at: Option<Instant>,
    /// Timer D (INVITE) or K (non-INVITE).
    end_at: Option<Instant>,
}

impl ClientTx {
    /// Starts the transaction; the caller transmits `request` once now.
    pub fn new(now: Instant, invite: bool, request: Vec<u8>, dest: SocketAddr, reliable: bool, timers: Timers) -> (ClientTx, TxOutput) {
        let tx = ClientTx {
            invite,
            state: ClientState::Calling,
            dest,
            reliable,
            timers,
            request: request.clone(),
            ack: None,
            retransmit_at: (!reliable).then(|| now + timers.t1),
            interval: timers.t1,
            timeout_at: Some(now + timers.t64()),
            end_at: None,
        };
        (tx, TxOutput::Transmit(request))
    }

    /// A response matched this transaction. `ack` builds the ACK for a
    /// non-2xx final response of an INVITE (the transaction sends it, §17.1.1.3).
    pub fn on_response(&mut self, now: Instant, status: u16, ack: impl FnOnce() -> Vec<u8>) -> Vec<TxOutput> {
        let mut out = Vec::new();
        match (self.state, status) {
            (ClientState::Terminated, _) => {}
            (ClientState::Completed, s) if s >= 300 => {
                // A retransmitted final response: resend the ACK, absorb it.
                if let Some(a) = &self.ack {
                    out.push(TxOutput::Transmit(a.clone()));
                }
            }
            (ClientState::Completed, _) => {}
            (_, 100..=199) => {
                if self.state == ClientState::Calling {
                    self.state = ClientState::Proceeding;
                    if self.invite {
                        // Timer A stops and timer B no longer applies once
                        // the far end is known to be alive.
                        self.retransmit_at = None;
                        self.timeout_at = None;
                    } else if !self.reliable {
                        self.interval = self.timers.t2;
                        self.retransmit_at = Some(now + self.timers.t2);
                    }
                }
                out.push(TxOutput::Response);
            }
            (_, 200..=299) if self.invite => {
                // The 2xx goes to the TU, which ACKs it end to end.
                self.state = ClientState::Terminated;
                out.push(TxOutput::Response);
            }
            (_, _) => {
                self.state = ClientState::Completed;
                self.retransmit_at = None;
                self.timeout_at = None;
                if self.invite {
                    let a = ack();
                    out.push(TxOutput::Transmit(a.clone()));
                    self.ack = Some(a);
                    self.end_at = Some(now + if self.reliable { Duration::ZERO } else { Duration::from_secs(32).max(self.timers.t64()) });
                } else {
                    self.end_at = Some(now + if self.reliable { Duration::ZERO } else { self.timers.t4 });
                }
                out.push(TxOutput::Response);
            }
        }
        out
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        [self.retransmit_at, self.timeout_at, self.end_at].into_iter().flatten().min()
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<TxOutput> {
        let mut out = Vec::new();
        if self.end_at.is_some_and(|t| t <= now) {
            self.state = ClientState::Terminated;
            self.end_at = None;
        }
        if self.timeout_at.is_some_and(|t| t <= now) {
            self.state = ClientState::Terminated;
            self.timeout_at = None;
            self.retransmit_at = None;
            out.push(TxOutput::Timeout);
            return out;
        }
        if let Some(at) = self.retransmit_at
            && at <= now {
                out.push(TxOutput::Transmit(self.request.clone()));
                // Timer A doubles without cap for INVITE; timer E doubles up to T2.
                self.interval = if self.invite { self.interval * 2 } else { (self.interval * 2).min(self.timers.t2) };
                if !self.invite && self.state == ClientState::Proceeding {
                    self.interval = self.timers.t2;
                }
                self.retransmit_at = Some(now + self.interval);
            }
        out
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// `Trying` for non-INVITE; INVITE starts in `Proceeding`.
    Trying,
    Proceeding,
    /// RFC 6026: a 2xx was sent, waiting for the ACK.
    Accepted,
    Completed,
    Confirmed,
    Terminated,
}

/// A server transaction (INVITE or non-INVITE).
#[derive(Debug, Clone)]
pub struct ServerTx {
    pub invite: bool,
    pub state: ServerState,
    pub dest: SocketAddr,
    reliable: bool,
    timers: Timers,
    last_response: Option<Vec<u8>>,
    retransmit_at: Option<Instant>,
    interval: Duration,
    /// Timer H (INVITE non-2xx), L (INVITE 2xx) or J (non-INVITE).
    timeout_at: Option<Instant>,
    /// Timer I.
    end_at: Option<Instant>,
}

impl ServerTx {
    pub fn new(invite: bool, dest: SocketAddr, reliable: bool, timers: Timers) -> ServerTx {
        ServerTx {
            invite,
            state: if invite { ServerState::Proceeding } else { ServerState::Trying },
            dest,
            reliable,
            timers,
            last_response: None,
            retransmit_at: None,
            interval: timers.t1,
            timeout_at: None,
            end_at: None,
        }
    }

    /// The request was retransmitted: resend the last response, if any.
    pub fn on_retransmit(&mut self) -> Vec<TxOutput> {
        match self.state {
            ServerState::Proceeding | ServerState::Completed | ServerState::Trying | ServerState::Accepted => {
                self.last_response.clone().map(TxOutput::Transmit).into_iter().collect()
            }
            _ => Vec::new(),
        }
    }

    /// The TU sends a response through this transaction.
    pub fn send(&mut self, now: Instant, status: u16, bytes: Vec<u8>) -> Vec<TxOutput> {
        if matches!(self.state, ServerState::Completed | ServerState::Confirmed | ServerState::Terminated | ServerState::Accepted) {
            return Vec::new();
        }
        self.last_response = Some(bytes.clone());
        if status < 200 {
            if self.state == ServerState::Trying {
                self.state = ServerState::Proceeding;
            }
        } else if self.invite {
            self.state = if status < 300 { ServerState::Accepted } else { ServerState::Completed };
            if !self.reliable {
                self.retransmit_at = Some(now + self.timers.t1);
            }
            self.timeout_at = Some(now + self.timers.t64());
        } else {
            self.state = ServerState::Completed;
            self.timeout_at = Some(now + if self.reliable { Duration::ZERO } else { self.timers.t64() });
        }
        vec![TxOutput::Transmit(bytes)]
    }

    /// An ACK matched: for a non-2xx it hits this transaction (§17.2.3); for
    /// a 2xx the endpoint matches it by dialog and calls this too.
    pub fn on_ack(&mut self, now: Instant) {
        match self.state {
            ServerState::Completed => {
                self.state = ServerState::Confirmed;
                self.retransmit_at = None;
                self.timeout_at = None;
                self.end_at = Some(now + if self.reliable { Duration::ZERO } else { self.timers.t4 });
            }
            ServerState::Accepted => {
                self.state = ServerState::Terminated;
                self.retransmit_at = None;
                self.timeout_at = None;
            }
            _ => {}
        }
    }

    pub fn next_timeout(&self) -> Option<Instant> {
        [self.retransmit_at, self.timeout_at, self.end_at].into_iter().flatten().min()
    }

    pub fn on_timeout(&mut self, now: Instant) -> Vec<TxOutput> {
        let mut out = Vec::new();
        if self.end_at.is_some_and(|t| t <= now) {
            self.state = ServerState::Terminated;
            self.end_at = None;
        }
        if self.timeout_at.is_some_and(|t| t <= now) {
            if self.invite && matches!(self.state, ServerState::Completed | ServerState::Accepted) {
                out.push(TxOutput::NoAck);
            }
            self.state = ServerState::Terminated;
            self.timeout_at = None;
            self.retransmit_at = None;
            return out;
        }
        if let Some(at) = self.retransmit_at
            && at <= now {
                if let Some(r) = &self.last_response {
                    out.push(TxOutput::Transmit(r.clone()));
                }
                // Timer G doubles up to T2.
                self.interval = (self.interval * 2).min(self.timers.t2);
                self.retransmit_at = Some(now + self.interval);
            }
        out
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }
}
