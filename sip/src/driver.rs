//! The thin tokio driver: the only module that touches sockets or reads the
//! clock.
//!
//! It owns one UDP socket (bound by [`bind_udp`] with a 4 MiB receive
//! buffer, so bursts of INVITEs survive a busy scheduler) and one
//! [`Endpoint`], and runs a single task that: sends what
//! `poll_transmit` yields, forwards `pop_event` into a bounded channel
//! (never blocking on it: events that do not fit wait in the loop, which
//! keeps applying commands, and only reading the network pauses),
//! sleeps until `poll_timeout`, and applies call-control commands from a
//! bounded channel. The application holds a [`Handle`] (commands) and the
//! event receiver; the composition root holds the shutdown sender.
//!
//! TCP ([`spawn_with_tcp`]): a listener from [`bind_tcp`] and, for
//! [`Config::tcp_trunks`](crate::Config::tcp_trunks), client connections
//! opened on the first send. Each connection is one task that cuts the
//! byte stream into messages with [`StreamDecoder`] (partial reads are
//! just `Incomplete`) and hands them to the endpoint with
//! [`Endpoint::handle_stream`]; what the endpoint sends to a connection's
//! peer address goes out on that connection through a bounded queue. A
//! frame that can never be valid closes that connection only. The endpoint
//! stays on the one loop task, so TCP adds no locking to the core.
//!
//! Shutdown: when the `watch` channel flips to `true`, every call in
//! progress is hung up (CANCEL, BYE or 603), and the loop keeps running for
//! at most [`SHUTDOWN_GRACE`] so those transactions can complete; then the
//! task ends. The bind address is the caller's decision (config).

use crate::endpoint::{CallError, Dial, Endpoint, Event, Input};
use crate::framing::{FrameError, StreamDecoder};
use crate::msg::{CallId, MAX_MESSAGE};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Receive buffer asked of the kernel (it may grant less; see `net.core.rmem_max`).
pub const RECV_BUFFER: usize = 4 * 1024 * 1024;
/// Bound of the command and event queues.
pub const QUEUE: usize = 1024;
/// How long shutdown waits for hung-up calls to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Datagrams handled per wake-up when more are already queued.
pub const RECV_BATCH: usize = 64;
/// The most TCP connections (accepted and opened) at once; more are refused.
pub const MAX_CONNECTIONS: usize = 1024;
/// Messages queued toward one TCP connection; a peer that does not read
/// loses messages beyond this, as a UDP peer would.
pub const CONNECTION_QUEUE: usize = 256;
/// How long opening a TCP connection to a trunk may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds a TCP listener for SIP (with `SO_REUSEADDR`, so a restart does not
/// wait for TIME_WAIT).
pub fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let s = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    s.set_reuseaddr(true)?;
    s.bind(addr)?;
    s.listen(1024)
}

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
    Dialog(CallId, oneshot::Sender<Result<Option<String>, CallError>>),
    Adopt(String, oneshot::Sender<Result<CallId, CallError>>),
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
    /// [`Endpoint::dialog`]: an outbound call's dialog, to store.
    pub async fn dialog(&self, call: CallId) -> Result<Option<String>, DriverError> {
        self.ask(|r| Command::Dialog(call, r)).await
    }
    /// [`Endpoint::adopt`]: ends a call a previous process left up.
    pub async fn adopt(&self, dialog: String) -> Result<CallId, DriverError> {
        self.ask(|r| Command::Adopt(dialog, r)).await
    }
}

/// Starts the driver task on UDP only. Returns the handle, the event
/// stream and the task.
pub fn spawn(socket: UdpSocket, endpoint: Endpoint, shutdown: watch::Receiver<bool>) -> io::Result<(Handle, mpsc::Receiver<Event>, JoinHandle<()>)> {
    spawn_with_tcp(socket, None, endpoint, shutdown)
}

/// Starts the driver task on UDP and, if given, a TCP listener (usually
/// bound to the same address). TCP client connections to
/// [`Config::tcp_trunks`](crate::Config::tcp_trunks) are opened as needed
/// either way.
pub fn spawn_with_tcp(socket: UdpSocket, tcp: Option<TcpListener>, endpoint: Endpoint, shutdown: watch::Receiver<bool>) -> io::Result<(Handle, mpsc::Receiver<Event>, JoinHandle<()>)> {
    let local = socket.local_addr()?;
    let (cmd_tx, cmd_rx) = mpsc::channel(QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(run(socket, tcp, endpoint, cmd_rx, ev_tx, shutdown));
    Ok((Handle { tx: cmd_tx, local }, ev_rx, task))
}

/// What connection tasks tell the loop.
enum StreamMsg {
    Frame { from: SocketAddr, data: bytes::Bytes },
    Closed { peer: SocketAddr },
}

/// The TCP side: connections by peer address, their tasks, and the
/// channel their frames arrive on.
struct Streams {
    listener: Option<TcpListener>,
    conns: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
    tasks: JoinSet<()>,
    frames_tx: mpsc::Sender<StreamMsg>,
    frames_rx: mpsc::Receiver<StreamMsg>,
}

impl Streams {
    fn new(listener: Option<TcpListener>) -> Streams {
        let (frames_tx, frames_rx) = mpsc::channel(QUEUE);
        Streams { listener, conns: HashMap::new(), tasks: JoinSet::new(), frames_tx, frames_rx }
    }

    /// Starts the task of one connection, accepted (`stream`) or to be
    /// opened to `peer`.
    fn start(&mut self, peer: SocketAddr, stream: Option<TcpStream>) -> Option<mpsc::Sender<Vec<u8>>> {
        if self.conns.len() >= MAX_CONNECTIONS {
            tracing::warn!(%peer, "too many TCP connections; refused");
            return None;
        }
        let (tx, rx) = mpsc::channel(CONNECTION_QUEUE);
        self.conns.insert(peer, tx.clone());
        let frames = self.frames_tx.clone();
        self.tasks.spawn(async move {
            let stream = match stream {
                Some(s) => Ok(s),
                None => match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(peer)).await {
                    Ok(r) => r,
                    Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timed out")),
                },
            };
            match stream {
                Ok(s) => connection(s, peer, rx, &frames).await,
                // Like a lost datagram: the transaction's timer B/F ends it.
                Err(e) => tracing::debug!(%peer, error = %e, "TCP connect failed"),
            }
            let _ = frames.send(StreamMsg::Closed { peer }).await;
        });
        Some(tx)
    }

    /// Queues `data` to `dest` if it is (or is to be) a TCP peer; gives it
    /// back if the caller is to send it by UDP.
    fn send(&mut self, ep: &Endpoint, dest: SocketAddr, data: Vec<u8>) -> Result<(), Vec<u8>> {
        let tx = match self.conns.get(&dest) {
            Some(tx) => Some(tx.clone()),
            None if ep.is_tcp_trunk(dest) => self.start(dest, None),
            None => return Err(data),
        };
        if let Some(tx) = tx
            && tx.try_send(data).is_err()
        {
            tracing::debug!(%dest, "TCP queue full or closed; message dropped");
        }
        Ok(())
    }
}

/// One TCP connection: frames in to the loop, queued messages out.
async fn connection(stream: TcpStream, peer: SocketAddr, mut outgoing: mpsc::Receiver<Vec<u8>>, frames: &mpsc::Sender<StreamMsg>) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let writer = async move {
        while let Some(data) = outgoing.recv().await {
            if wr.write_all(&data).await.is_err() {
                break;
            }
        }
    };
    let reader = async {
        let mut dec = StreamDecoder::new();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            dec.push(&buf[..n]);
            loop {
                match dec.next_raw() {
                    Ok(data) => {
                        if frames.send(StreamMsg::Frame { from: peer, data }).await.is_err() {
                            return;
                        }
                    }
                    Err(FrameError::Incomplete) => break,
                    Err(FrameError::Invalid(e)) => {
                        // The stream is out of sync for good: close this
                        // connection only.
                        tracing::debug!(%peer, error = %e, "bad TCP frame; closing");
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
    }
}

async fn accept(listener: &Option<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Events held back while the application's queue is full. Past this the
/// loop stops reading the network (the kernel buffer and the peers'
/// retransmissions absorb the burst) but keeps applying commands.
const MAX_PENDING_EVENTS: usize = 64 * 1024;

async fn flush(socket: &UdpSocket, streams: &mut Streams, ep: &mut Endpoint, events: &mpsc::Sender<Event>, pending: &mut VecDeque<Event>) {
    while let Some(t) = ep.poll_transmit() {
        let Err(data) = streams.send(ep, t.dest, t.data) else { continue };
        if let Err(e) = socket.send_to(&data, t.dest).await {
            // A failed send is like a lost datagram: the transaction's
            // retransmission and timeout timers deal with it.
            tracing::debug!(dest = %t.dest, error = %e, "send failed");
        }
    }
    // Never wait on the event queue here: the application may itself be
    // waiting for this loop to apply a command (answer, hangup) before it
    // reads the next event, and both would wait for ever. What does not
    // fit waits in `pending`, sent from the select loop as room appears.
    while let Some(ev) = ep.pop_event() {
        pending.push_back(ev);
    }
    while let Some(ev) = pending.pop_front() {
        match events.try_send(ev) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(ev)) => {
                pending.push_front(ev);
                break;
            }
            // Nobody listens any more: drop them.
            Err(mpsc::error::TrySendError::Closed(_)) => pending.clear(),
        }
    }
}

async fn run(socket: UdpSocket, tcp: Option<TcpListener>, mut ep: Endpoint, mut commands: mpsc::Receiver<Command>, events: mpsc::Sender<Event>, mut shutdown: watch::Receiver<bool>) {
    let mut buf = vec![0u8; MAX_MESSAGE + 1];
    let mut deadline: Option<Instant> = None;
    let mut streams = Streams::new(tcp);
    let mut pending = VecDeque::new();
    loop {
        flush(&socket, &mut streams, &mut ep, &events, &mut pending).await;
        let reading = pending.len() < MAX_PENDING_EVENTS;
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
            permit = events.reserve(), if !pending.is_empty() => {
                if let (Ok(p), Some(ev)) = (permit, pending.pop_front()) {
                    p.send(ev);
                } else {
                    pending.clear();
                }
            }
            acc = accept(&streams.listener), if reading => match acc {
                Ok((stream, peer)) => {
                    let _ = streams.start(peer, Some(stream));
                }
                Err(e) => tracing::debug!(error = %e, "TCP accept failed"),
            },
            msg = streams.frames_rx.recv(), if reading => match msg {
                Some(StreamMsg::Frame { from, data }) => ep.handle_stream(Instant::now().into_std(), from, &data),
                Some(StreamMsg::Closed { peer }) => {
                    streams.conns.remove(&peer);
                }
                // We hold a sender ourselves, so this does not happen.
                None => {}
            },
            Some(_) = streams.tasks.join_next(), if !streams.tasks.is_empty() => {}
            r = socket.recv_from(&mut buf), if reading => match r {
                Ok((n, from)) => {
                    let now = Instant::now().into_std();
                    ep.handle(now, Input::Datagram { from, data: &buf[..n] });
                    // Take what else is already queued before going round
                    // the loop: `poll_timeout` and the flush then run once
                    // per batch instead of once per datagram under load.
                    for _ in 1..RECV_BATCH {
                        match socket.try_recv_from(&mut buf) {
                            Ok((n, from)) => ep.handle(now, Input::Datagram { from, data: &buf[..n] }),
                            Err(_) => break,
                        }
                    }
                }
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
    flush(&socket, &mut streams, &mut ep, &events, &mut pending).await;
    // The last events (calls ended by the shutdown) are worth a short
    // wait; an application that does not read them within a second loses them.
    let drain = async {
        while let Some(ev) = pending.pop_front() {
            if events.send(ev).await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    // Dropping `streams` aborts the connection tasks.
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
        Command::Dialog(id, r) => {
            let _ = r.send(Ok(ep.dialog(&id)));
        }
        Command::Adopt(text, r) => {
            let _ = r.send(ep.adopt(now, &text));
        }
    }
}
