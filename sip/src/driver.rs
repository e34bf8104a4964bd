//! The thin tokio driver: the only module that touches sockets or reads the
//! clock.
//!
//! It owns one UDP socket (bound by [`bind_udp`] with a 4 MiB receive
//! buffer, so bursts of INVITEs survive a busy scheduler) and one
//! [`Endpoint`], and runs a single task that: sends what
//! `poll_transmit` yields, forwards `pop_event` into a bounded channel,
//! sleeps until `poll_timeout`, and applies call-control commands from a
//! bounded channel. The application holds a [`Handle`] (commands) and the
//! event receiver; the composition root holds the shutdown sender.
//!
//! Shutdown: when the `watch` channel flips to `true`, every call in
//! progress is hung up (CANCEL, BYE or 603), and the loop keeps running for
//! at most [`SHUTDOWN_GRACE`] so those transactions can complete; then the
//! task ends. The bind address is the caller's decision (config).

use crate::endpoint::{CallError, Dial, Endpoint, Event, Input};
use crate::msg::{CallId, MAX_MESSAGE};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Receive buffer asked of the kernel (it may grant less; see `net.core.rmem_max`).
pub const RECV_BUFFER: usize = 4 * 1024 * 1024;
/// Bound of the command and event queues.
pub const QUEUE: usize = 1024;
/// How long shutdown waits for hung-up calls to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Binds a non-blocking UDP socket with `SO_RCVBUF` raised to [`RECV_BUFFER`].
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
    let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: a smaller buffer than asked is not a reason to fail.
    if let Err(e) = s.set_recv_buffer_size(RECV_BUFFER) {
        tracing::warn!(error = %e, "could not raise SO_RCVBUF");
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// The receive buffer the kernel actually granted, for diagnostics.
pub fn recv_buffer_size(sock: &UdpSocket) -> io::Result<usize> {
    socket2::SockRef::from(sock).recv_buffer_size()
}

enum Command {
    Dial(Box<Dial>, oneshot::Sender<Result<CallId, CallError>>),
    Ring(CallId, oneshot::Sender<Result<(), CallError>>),
    Answer(CallId, Vec<u8>, oneshot::Sender<Result<(), CallError>>),
    Reject(CallId, u16, oneshot::Sender<Result<(), CallError>>),
    Hangup(CallId, oneshot::Sender<Result<(), CallError>>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DriverError {
    #[error("the SIP driver has stopped")]
    Stopped,
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Call control for the application; cheap to clone.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Command>,
    local: SocketAddr,
}

impl Handle {
    /// The address the socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }
    async fn ask<T>(&self, f: impl FnOnce(oneshot::Sender<Result<T, CallError>>) -> Command) -> Result<T, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(f(tx)).await.map_err(|_| DriverError::Stopped)?;
        Ok(rx.await.map_err(|_| DriverError::Stopped)??)
    }
    pub async fn dial(&self, dial: Dial) -> Result<CallId, DriverError> {
        self.ask(|r| Command::Dial(Box::new(dial), r)).await
    }
    pub async fn ring(&self, call: CallId) -> Result<(), DriverError> {
        self.ask(|r| Command::Ring(call, r)).await
    }
    pub async fn answer(&self, call: CallId, sdp: Vec<u8>) -> Result<(), DriverError> {
        self.ask(|r| Command::Answer(call, sdp, r)).await
    }
    pub async fn reject(&self, call: CallId, status: u16) -> Result<(), DriverError> {
        self.ask(|r| Command::Reject(call, status, r)).await
    }
    pub async fn hangup(&self, call: CallId) -> Result<(), DriverError> {
        self.ask(|r| Command::Hangup(call, r)).await
    }
}

/// Starts the driver task. Returns the handle, the event stream and the task.
pub fn spawn(socket: UdpSocket, endpoint: Endpoint, shutdown: watch::Receiver<bool>) -> io::Result<(Handle, mpsc::Receiver<Event>, JoinHandle<()>)> {
    let local = socket.local_addr()?;
    let (cmd_tx, cmd_rx) = mpsc::channel(QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(run(socket, endpoint, cmd_rx, ev_tx, shutdown));
    Ok((Handle { tx: cmd_tx, local }, ev_rx, task))
}

async fn flush(socket: &UdpSocket, ep: &mut Endpoint, events: &mpsc::Sender<Event>) {
    while let Some(t) = ep.poll_transmit() {
        if let Err(e) = socket.send_to(&t.data, t.dest).await {
            // A failed send is like a lost datagram: the transaction's
            // retransmission and timeout timers deal with it.
            tracing::debug!(dest = %t.dest, error = %e, "send failed");
        }
    }
    while let Some(ev) = ep.pop_event() {
        // Waiting here is the back-pressure of the bounded queue; a dropped
        // receiver just means nobody listens any more.
        let _ = events.send(ev).await;
    }
}

async fn run(socket: UdpSocket, mut ep: Endpoint, mut commands: mpsc::Receiver<Command>, events: mpsc::Sender<Event>, mut shutdown: watch::Receiver<bool>) {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let mut deadline: Option<Instant> = None;
    loop {
        flush(&socket, &mut ep, &events).await;
        if let Some(d) = deadline
            && (ep.call_count() == 0 || Instant::now() >= d) {
                break;
            }
        let wake = ep.poll_timeout().map(Instant::from_std);
        let sleep_until = match (wake, deadline) {
            (Some(w), Some(d)) => Some(w.min(d)),
            (w, d) => w.or(d),
        };
        tokio::select! {
            changed = shutdown.changed(), if deadline.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    let now = Instant::now().into_std();
                    for id in ep.call_ids() {
                        let _ = ep.hangup(now, &id);
                    }
                    deadline = Some(Instant::now() + SHUTDOWN_GRACE);
                }
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => ep.handle(Instant::now().into_std(), Input::Datagram { from, data: &buf[..n] }),
                // ICMP port unreachable surfaces here on some systems; it
                // concerns one peer, never the listener.
                Err(e) => tracing::debug!(error = %e, "recv failed"),
            },
            cmd = commands.recv(), if deadline.is_none() => match cmd {
                Some(c) => apply(&mut ep, c),
                None => {
                    // Every handle is gone: nobody can control calls, so stop as on shutdown.
                    let now = Instant::now().into_std();
                    for id in ep.call_ids() {
                        let _ = ep.hangup(now, &id);
                    }
                    deadline = Some(Instant::now() + SHUTDOWN_GRACE);
                }
            },
            _ = sleep(sleep_until) => ep.handle(Instant::now().into_std(), Input::Timeout),
        }
    }
    flush(&socket, &mut ep, &events).await;
    tracing::debug!("SIP driver stopped");
}

async fn sleep(until: Option<Instant>) {
    match until {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn apply(ep: &mut Endpoint, c: Command) {
    let now = Instant::now().into_std();
    match c {
        Command::Dial(d, r) => {
            let _ = r.send(ep.dial(now, *d));
        }
        Command::Ring(id, r) => {
            let _ = r.send(ep.ring(now, &id));
        }
        Command::Answer(id, sdp, r) => {
            let _ = r.send(ep.answer(now, &id, sdp));
        }
        Command::Reject(id, s, r) => {
            let _ = r.send(ep.reject(now, &id, s));
        }
        Command::Hangup(id, r) => {
            let _ = r.send(ep.hangup(now, &id));
        }
    }
}
