//! The media plane: RTP legs terminated at centralino, relayed between
//! bridged legs in-process, with prompts, recording and DTMF detection.
//!
//! # Shape
//!
//! [`Media`] is a cheap, cloneable handle; the work is done by one
//! dedicated OS thread (the *media thread*) that owns every leg's UDP
//! socket, registered with one `mio::Poll`. A packet is received, its
//! header rewritten in place ([`crate::rtp::Rewriter`]) and sent from the
//! peer leg's socket on that same thread, in the same loop iteration: there
//! is no channel, task wake-up or thread hand-off per packet. On 2 vCPUs
//! that hand-off is what costs most (see `shared/notes/limits.md` §4);
//! the tokio runtime keeps the other core for signalling and the CRM.
//!
//! Control (open, bridge, play, record, close) arrives on a channel and a
//! `mio::Waker`; events ([`MediaEvent`]: DTMF, prompt done, latching) leave
//! on a bounded tokio channel with `try_send`, so the media thread never
//! blocks on a slow consumer (it counts what it had to drop instead).
//!
//! # Legs and bridges
//!
//! A leg is one far end (a carrier call, an agent's softphone). Each leg
//! has its own port on the configured media address, which goes into our
//! SDP. We send toward the address in the far end's SDP until a packet
//! arrives, then *latch*: we send to where its packets come from
//! (symmetric RTP, so NAT'd far ends work). Bridging `a` and `b` makes
//! each forward to the other; unbridging stops that, and bridging `a` to
//! `c` later is just another switch. Every leg has one outgoing SSRC for
//! its lifetime and a continuous sequence/timestamp, whatever feeds it
//! (peer, prompt, next peer): this is what lets an agent stay on one
//! nailed-up leg and hear successive customers with no signalling.
//!
//! A playing prompt takes precedence over bridged audio toward that leg.
//! Recording taps a leg in both directions into a 2-channel WAV
//! (left: what the far end sent us, right: what we sent it), clocked by a
//! 20 ms tick so the channels stay aligned even through silence.
//!
//! **Invariant:** no per-packet path panics or allocates; malformed
//! packets are counted and dropped.

use crate::dtmf::Detector;
use crate::g711::{self, Codec};
use crate::rtp::{self, FRAME_SAMPLES, HEADER_LEN, Rewriter, Source};
use crate::wav::{Prompt, WavWriter};
use mio::{Events, Interest, Poll, Token, Waker};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Identifies a leg for the lifetime of the media thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(u32);

impl std::fmt::Display for LegId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "leg{}", self.0)
    }
}

/// Media settings.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// The address leg sockets bind to and that goes into our SDP.
    pub ip: IpAddr,
    /// Port range for legs (e.g. what the firewall opens); `None` lets the
    /// kernel pick ephemeral ports.
    pub ports: Option<(u16, u16)>,
    /// `SO_RCVBUF` per leg. A leg receives 50 packets/s, so the default
    /// buffer already holds seconds of audio; raise it only if the media
    /// thread is expected to stall.
    pub recv_buffer: Option<usize>,
    /// Capacity of the event queue.
    pub event_queue: usize,
}

impl MediaConfig {
    pub fn new(ip: IpAddr) -> MediaConfig {
        MediaConfig { ip, ports: None, recv_buffer: None, event_queue: 1024 }
    }
}

/// What the media thread reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// An RFC 4733 key press received on `leg`.
    Dtmf { leg: LegId, digit: char, duration_ms: u32 },
    /// A prompt finished playing (not raised when stopped or replaced).
    PromptDone { leg: LegId },
    /// We now send `leg`'s media to `to` (first packet, or the far end moved).
    Latched { leg: LegId, to: SocketAddr },
}

/// Counters of one leg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegStats {
    pub received: u64,
    pub sent: u64,
    /// Malformed packets, or ones we could not send.
    pub dropped: u64,
    pub remote: Option<SocketAddr>,
    pub ssrc: u32,
    /// Source switches toward this far end (bridges, prompts).
    pub switches: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("the media thread has stopped")]
    Stopped,
    #[error("no free port in the media range")]
    NoPort,
    #[error(transparent)]
    Io(#[from] io::Error),
}

enum Cmd {
    Add { id: LegId, socket: std::net::UdpSocket, codec: Codec },
    Remote { id: LegId, addr: Option<SocketAddr>, codec: Codec, telephone_event: Option<u8> },
    Bridge(LegId, LegId),
    Unbridge(LegId),
    Play { id: LegId, prompt: Prompt },
    StopPlay(LegId),
    Record { id: LegId, writer: Option<WavWriter> },
    Tap { id: LegId, tx: mpsc::Sender<PcmFrame>, samples: u64 },
    Close(LegId),
    Stats(LegId, oneshot::Sender<Option<LegStats>>),
    Shutdown,
}

struct Shared {
    tx: Mutex<std_mpsc::Sender<Cmd>>,
    /// Shared with the engine: if the last handle closed the eventfd right
    /// after waking it, epoll would forget the wake-up and the thread would sleep on.
    waker: Arc<Waker>,
    cfg: MediaConfig,
    next_id: AtomicU32,
    next_port: AtomicU32,
    /// Events dropped because the queue was full.
    events_dropped: Arc<AtomicU64>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: tell the thread to finish recordings and stop.
        if let Ok(tx) = self.tx.lock() {
            let _ = tx.send(Cmd::Shutdown);
        }
        let _ = self.waker.wake();
    }
}

/// Handle to the media thread; cheap to clone. Dropping the last clone
/// stops the thread (recordings are finished first).
#[derive(Clone)]
pub struct Media {
    shared: Arc<Shared>,
}

const WAKER: Token = Token(usize::MAX);

impl Media {
    /// Starts the media thread.
    pub fn start(cfg: MediaConfig) -> io::Result<(Media, mpsc::Receiver<MediaEvent>, JoinHandle<()>)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = std_mpsc::channel();
        let (ev_tx, ev_rx) = mpsc::channel(cfg.event_queue.max(1));
        let events_dropped = Arc::new(AtomicU64::new(0));
        let first_port = cfg.ports.map_or(0, |(lo, _)| u32::from(lo));
        let engine = Engine::new(poll, waker.clone(), rx, ev_tx, events_dropped.clone());
        let thread = std::thread::Builder::new().name("media".into()).spawn(move || engine.run())?;
        let shared = Shared { tx: Mutex::new(tx), waker, cfg, next_id: AtomicU32::new(1), next_port: AtomicU32::new(first_port), events_dropped };
        Ok((Media { shared: Arc::new(shared) }, ev_rx, thread))
    }

    fn send(&self, cmd: Cmd) -> Result<(), MediaError> {
        let tx = self.shared.tx.lock().map_err(|_| MediaError::Stopped)?;
        tx.send(cmd).map_err(|_| MediaError::Stopped)?;
        self.shared.waker.wake()?;
        Ok(())
    }

    /// Events dropped because nobody drained the event queue in time.
    pub fn events_dropped(&self) -> u64 {
        self.shared.events_dropped.load(Ordering::Relaxed)
    }

    /// Opens a leg: binds its RTP port. The returned address goes into our SDP.
    pub fn open_leg(&self, codec: Codec) -> Result<(LegId, SocketAddr), MediaError> {
        let socket = self.bind()?;
        let local = socket.local_addr()?;
        let id = LegId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        self.send(Cmd::Add { id, socket, codec })?;
        Ok((id, local))
    }

    fn bind(&self) -> Result<std::net::UdpSocket, MediaError> {
        let cfg = &self.shared.cfg;
        let try_bind = |port: u16| -> io::Result<std::net::UdpSocket> {
            let addr = SocketAddr::new(cfg.ip, port);
            let domain = if addr.is_ipv4() { socket2::Domain::IPV4 } else { socket2::Domain::IPV6 };
            let s = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
            if let Some(n) = cfg.recv_buffer {
                let _ = s.set_recv_buffer_size(n);
            }
            s.set_nonblocking(true)?;
            s.bind(&addr.into())?;
            Ok(s.into())
        };
        let Some((lo, hi)) = cfg.ports else { return Ok(try_bind(0)?) };
        // RTP ports are even by convention (RTCP used the odd one above).
        let span = u32::from(hi.saturating_sub(lo)) / 2 + 1;
        for _ in 0..span {
            let n = self.shared.next_port.fetch_add(2, Ordering::Relaxed);
            let port = u32::from(lo) + ((n.wrapping_sub(u32::from(lo))) / 2 % span) * 2;
            if let Ok(s) = try_bind(port as u16) {
                return Ok(s);
            }
        }
        Err(MediaError::NoPort)
    }

    /// Sets what the far end's SDP said: its address (until latching), the
    /// negotiated codec and telephone-event payload type.
    pub fn set_remote(&self, id: LegId, addr: Option<SocketAddr>, codec: Codec, telephone_event: Option<u8>) -> Result<(), MediaError> {
        self.send(Cmd::Remote { id, addr, codec, telephone_event })
    }

    /// Connects two legs' media both ways; each is first unbridged from any
    /// previous peer.
    pub fn bridge(&self, a: LegId, b: LegId) -> Result<(), MediaError> {
        self.send(Cmd::Bridge(a, b))
    }

    /// Stops forwarding between `id` and its peer (both directions).
    pub fn unbridge(&self, id: LegId) -> Result<(), MediaError> {
        self.send(Cmd::Unbridge(id))
    }

    /// Plays `prompt` into the leg, paced at 20 ms, replacing any prompt
    /// already playing. [`MediaEvent::PromptDone`] follows at the end.
    pub fn play(&self, id: LegId, prompt: Prompt) -> Result<(), MediaError> {
        self.send(Cmd::Play { id, prompt })
    }

    pub fn stop_play(&self, id: LegId) -> Result<(), MediaError> {
        self.send(Cmd::StopPlay(id))
    }

    /// Starts recording the leg (both directions, 2-channel 16-bit 8 kHz
    /// WAV) to `path`, replacing any recording in progress. The file is
    /// created here, so a bad path is an error now, not a silent loss.
    pub fn record_start(&self, id: LegId, path: &Path) -> Result<(), MediaError> {
        let writer = WavWriter::create(path, 2, 8000)?;
        self.send(Cmd::Record { id, writer: Some(writer) })
    }

    /// Taps the far end's inbound audio: the media thread sends it,
    /// decoded to 16-bit linear PCM in 20 ms frames ([`PcmFrame`]), to the
    /// returned channel for the next `max` of audio, then closes it (also
    /// when the leg closes). The channel holds `cap` frames; when the
    /// consumer falls behind, frames are dropped, never waited for. A new
    /// tap replaces the leg's previous one. DTMF events are not tapped.
    /// Used by the dialer's answering-machine detection.
    pub fn tap(&self, id: LegId, max: Duration, cap: usize) -> Result<mpsc::Receiver<PcmFrame>, MediaError> {
        let (tx, rx) = mpsc::channel(cap.max(1));
        let samples = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).saturating_mul(8);
        self.send(Cmd::Tap { id, tx, samples })?;
        Ok(rx)
    }

    /// Stops recording and finishes the file.
    pub fn record_stop(&self, id: LegId) -> Result<(), MediaError> {
        self.send(Cmd::Record { id, writer: None })
    }

    /// Closes the leg: unbridges it, finishes its recording, frees the port.
    pub fn close_leg(&self, id: LegId) -> Result<(), MediaError> {
        self.send(Cmd::Close(id))
    }

    /// The leg's counters, or `None` if there is no such leg.
    pub async fn stats(&self, id: LegId) -> Result<Option<LegStats>, MediaError> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Stats(id, tx))?;
        rx.await.map_err(|_| MediaError::Stopped)
    }
}

/// How much audio a recording channel may queue before we drop the oldest
/// (far ends whose clocks drift would otherwise grow the offset forever).
const REC_MAX_QUEUE: usize = 5 * FRAME_SAMPLES as usize;
/// A far end that moves is only followed after its old address has been
/// quiet this long, so a stray packet from elsewhere cannot steal the leg.
const RELATCH_AFTER: Duration = Duration::from_millis(500);
/// Packets read from one socket per readiness event before moving on, for fairness.
const READ_BUDGET: usize = 32;
const FRAME: Duration = Duration::from_millis(20);

struct Playing {
    prompt: Prompt,
    pos: usize,
    seq: u16,
    ts: u32,
    epoch: u64,
    next_at: Instant,
}

struct Recording {
    writer: WavWriter,
    rx: VecDeque<i16>,
    tx: VecDeque<i16>,
    next_at: Instant,
    frame: Vec<i16>,
}

impl Recording {
    fn push(q: &mut VecDeque<i16>, codec: Codec, payload: &[u8]) {
        q.extend(payload.iter().map(|&b| codec.decode(b)));
        let excess = q.len().saturating_sub(REC_MAX_QUEUE);
        q.drain(..excess);
    }
}

/// 20 ms of 8 kHz 16-bit linear PCM, as a [`Media::tap`] delivers it.
pub type PcmFrame = [i16; FRAME_SAMPLES as usize];

/// A leg's inbound audio going to a consumer ([`Media::tap`]).
struct Tap {
    tx: mpsc::Sender<PcmFrame>,
    /// Samples still to deliver.
    left: u64,
    frame: PcmFrame,
    fill: usize,
    dropped: u64,
}

impl Tap {
    /// Decodes `payload` into frames and offers each to the consumer
    /// (`try_send`: a full channel drops the frame). Returns `false` once
    /// the tap is over (its length reached, or the consumer gone).
    fn push(&mut self, codec: Codec, payload: &[u8]) -> bool {
        for &b in payload {
            if self.left == 0 {
                return false;
            }
            self.frame[self.fill] = codec.decode(b);
            self.fill += 1;
            self.left -= 1;
            if self.fill == self.frame.len() {
                self.fill = 0;
                match self.tx.try_send(self.frame) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => self.dropped += 1,
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
        }
        self.left > 0
    }
}

struct Leg {
    id: LegId,
    sock: mio::net::UdpSocket,
    codec: Codec,
    telephone_event: Option<u8>,
    remote: Option<SocketAddr>,
    latched: bool,
    last_rx: Option<Instant>,
    /// Slot of the bridged leg: what we receive here is sent there.
    peer: Option<usize>,
    /// Identifies the current bridge as a source at the peer's rewriter.
    fwd_epoch: u64,
    out: Rewriter,
    play: Option<Playing>,
    rec: Option<Recording>,
    tap: Option<Tap>,
    dtmf: Detector,
    stats: LegStats,
}

struct Engine {
    poll: Poll,
    _waker: Arc<Waker>,
    /// Slots whose socket still had packets when their read budget ran out.
    /// Readiness is edge-triggered, so they are revisited without waiting.
    again: Vec<usize>,
    cmds: std_mpsc::Receiver<Cmd>,
    events: mpsc::Sender<MediaEvent>,
    events_dropped: Arc<AtomicU64>,
    legs: Vec<Option<Leg>>,
    free: Vec<usize>,
    by_id: HashMap<LegId, usize>,
    next_epoch: u64,
    /// Slots with a prompt or a recording: the only ones the 20 ms tick visits.
    timed: Vec<usize>,
    buf: Vec<u8>,
    out: Vec<u8>,
}

/// Large enough for any RTP over UDP we accept; bigger datagrams are truncated and dropped.
const MAX_PACKET: usize = 2048;

impl Engine {
    fn new(poll: Poll, waker: Arc<Waker>, cmds: std_mpsc::Receiver<Cmd>, events: mpsc::Sender<MediaEvent>, events_dropped: Arc<AtomicU64>) -> Engine {
        Engine { poll, _waker: waker, again: Vec::new(), cmds, events, events_dropped, legs: Vec::new(), free: Vec::new(), by_id: HashMap::new(), next_epoch: 1, timed: Vec::new(), buf: vec![0; MAX_PACKET], out: vec![0; MAX_PACKET] }
    }

    fn emit(&self, ev: MediaEvent) {
        if self.events.try_send(ev).is_err() {
            self.events_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn epoch(&mut self) -> u64 {
        self.next_epoch += 1;
        self.next_epoch
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if self.again.is_empty() { self.next_deadline().map(|d| d.saturating_duration_since(Instant::now())) } else { Some(Duration::ZERO) };
            if let Err(e) = self.poll.poll(&mut events, timeout)
                && e.kind() != io::ErrorKind::Interrupted
            {
                tracing::error!(error = %e, "media poll failed; media thread stops");
                break;
            }
            let now = Instant::now();
            // Commands first: they were issued before the packets now
            // waiting (a bridge, then the first packet for it).
            if !self.commands(now) {
                break;
            }
            let again = std::mem::take(&mut self.again);
            for slot in again {
                self.readable(now, slot);
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {}
                    Token(slot) => self.readable(now, slot),
                }
            }
            self.tick(Instant::now());
        }
        for slot in 0..self.legs.len() {
            self.close_slot(slot);
        }
        tracing::debug!("media thread stopped");
    }

    /// Applies queued commands; `false` on shutdown.
    fn commands(&mut self, now: Instant) -> bool {
        loop {
            match self.cmds.try_recv() {
                Ok(Cmd::Shutdown) | Err(std_mpsc::TryRecvError::Disconnected) => return false,
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Ok(c) => {
                    let retime = matches!(c, Cmd::Play { .. } | Cmd::StopPlay(_) | Cmd::Record { .. } | Cmd::Close(_));
                    self.apply(now, c);
                    if retime {
                        self.retime();
                    }
                }
            }
        }
    }

    fn slot(&self, id: LegId) -> Option<usize> {
        self.by_id.get(&id).copied()
    }

    fn leg(&mut self, id: LegId) -> Option<&mut Leg> {
        let s = self.slot(id)?;
        self.legs.get_mut(s)?.as_mut()
    }

    fn apply(&mut self, now: Instant, cmd: Cmd) {
        match cmd {
            Cmd::Add { id, socket, codec } => {
                let slot = self.free.pop().unwrap_or(self.legs.len());
                let mut sock = mio::net::UdpSocket::from_std(socket);
                if let Err(e) = self.poll.registry().register(&mut sock, Token(slot), Interest::READABLE) {
                    tracing::warn!(leg = %id, error = %e, "cannot register leg socket");
                    return;
                }
                let out = Rewriter::new(rand::random(), rand::random(), rand::random());
                let stats = LegStats { ssrc: out.ssrc(), ..LegStats::default() };
                let leg = Leg { id, sock, codec, telephone_event: None, remote: None, latched: false, last_rx: None, peer: None, fwd_epoch: 0, out, play: None, rec: None, tap: None, dtmf: Detector::default(), stats };
                if slot == self.legs.len() {
                    self.legs.push(Some(leg));
                } else {
                    self.legs[slot] = Some(leg);
                }
                self.by_id.insert(id, slot);
            }
            Cmd::Remote { id, addr, codec, telephone_event } => {
                if let Some(l) = self.leg(id) {
                    l.codec = codec;
                    l.telephone_event = telephone_event;
                    // Latching wins over signalling: once packets came, we keep sending where they come from.
                    if !l.latched {
                        l.remote = addr;
                    }
                }
            }
            Cmd::Bridge(a, b) => {
                let (Some(sa), Some(sb)) = (self.slot(a), self.slot(b)) else { return };
                if sa == sb {
                    return;
                }
                self.unbridge_slot(sa);
                self.unbridge_slot(sb);
                let (ea, eb) = (self.epoch(), self.epoch());
                if let Some(l) = self.legs[sa].as_mut() {
                    l.peer = Some(sb);
                    l.fwd_epoch = ea;
                }
                if let Some(l) = self.legs[sb].as_mut() {
                    l.peer = Some(sa);
                    l.fwd_epoch = eb;
                }
            }
            Cmd::Unbridge(id) => {
                if let Some(s) = self.slot(id) {
                    self.unbridge_slot(s);
                }
            }
            Cmd::Play { id, prompt } => {
                let epoch = self.epoch();
                if let Some(l) = self.leg(id) {
                    l.play = Some(Playing { prompt, pos: 0, seq: rand::random(), ts: rand::random(), epoch, next_at: now });
                }
            }
            Cmd::StopPlay(id) => {
                if let Some(l) = self.leg(id) {
                    l.play = None;
                }
            }
            Cmd::Record { id, writer } => {
                if let Some(l) = self.leg(id) {
                    if let Some(old) = l.rec.take() {
                        finish(l.id, old);
                    }
                    l.rec = writer.map(|writer| Recording { writer, rx: VecDeque::new(), tx: VecDeque::new(), next_at: now + FRAME, frame: Vec::with_capacity(2 * FRAME_SAMPLES as usize) });
                }
            }
            Cmd::Tap { id, tx, samples } => {
                if let Some(l) = self.leg(id) {
                    l.tap = (samples > 0).then(|| Tap { tx, left: samples, frame: [0; FRAME_SAMPLES as usize], fill: 0, dropped: 0 });
                }
            }
            Cmd::Close(id) => {
                if let Some(s) = self.slot(id) {
                    self.close_slot(s);
                }
            }
            Cmd::Stats(id, reply) => {
                let st = self.leg(id).map(|l| LegStats { remote: l.remote, switches: l.out.switches, ..l.stats.clone() });
                let _ = reply.send(st);
            }
            Cmd::Shutdown => {}
        }
    }

    fn unbridge_slot(&mut self, s: usize) {
        let peer = self.legs.get_mut(s).and_then(|l| l.as_mut()).and_then(|l| l.peer.take());
        if let Some(p) = peer
            && let Some(Some(pl)) = self.legs.get_mut(p)
            && pl.peer == Some(s)
        {
            pl.peer = None;
        }
    }

    fn close_slot(&mut self, s: usize) {
        self.unbridge_slot(s);
        let Some(mut leg) = self.legs.get_mut(s).and_then(Option::take) else { return };
        let _ = self.poll.registry().deregister(&mut leg.sock);
        if let Some(rec) = leg.rec.take() {
            finish(leg.id, rec);
        }
        self.by_id.remove(&leg.id);
        self.free.push(s);
    }

    /// Rebuilds the list of legs the tick visits (on commands only, never per packet).
    fn retime(&mut self) {
        self.timed = self.legs.iter().enumerate().filter(|(_, l)| l.as_ref().is_some_and(|l| l.play.is_some() || l.rec.is_some())).map(|(i, _)| i).collect();
    }

    /// The earliest prompt frame or recording frame due.
    fn next_deadline(&self) -> Option<Instant> {
        // Legs with a prompt or a recording are few next to relayed legs;
        // a linear scan over them is cheaper than keeping a timer heap.
        self.timed.iter().filter_map(|&s| self.legs.get(s)?.as_ref()).flat_map(|l| [l.play.as_ref().map(|p| p.next_at), l.rec.as_ref().map(|r| r.next_at)]).flatten().min()
    }

    /// Drains one leg's socket and forwards each packet to its peer.
    fn readable(&mut self, now: Instant, slot: usize) {
        for i in 0..=READ_BUDGET {
            if i == READ_BUDGET {
                if !self.again.contains(&slot) {
                    self.again.push(slot);
                }
                return;
            }
            let Some(Some(leg)) = self.legs.get_mut(slot) else { return };
            let (n, from) = match leg.sock.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    tracing::debug!(leg = %leg.id, error = %e, "recv failed");
                    return;
                }
            };
            let Some(h) = rtp::parse(&self.buf[..n]) else {
                leg.stats.dropped += 1;
                continue;
            };
            leg.stats.received += 1;
            // Symmetric RTP: send where the far end's packets come from.
            if leg.remote != Some(from) && (!leg.latched || leg.last_rx.is_none_or(|t| now.duration_since(t) > RELATCH_AFTER)) {
                leg.remote = Some(from);
                leg.latched = true;
                let id = leg.id;
                self.emit(MediaEvent::Latched { leg: id, to: from });
            }
            let Some(Some(leg)) = self.legs.get_mut(slot) else { return };
            if leg.remote == Some(from) {
                leg.last_rx = Some(now);
            }
            let payload = &self.buf[h.payload_offset..h.payload_end];
            let in_codec = Codec::from_payload_type(h.payload_type);
            if leg.telephone_event == Some(h.payload_type) {
                if let Some(d) = leg.dtmf.feed(h.timestamp, h.ssrc, payload) {
                    let id = leg.id;
                    self.emit(MediaEvent::Dtmf { leg: id, digit: d.digit, duration_ms: d.duration_ms });
                }
            } else {
                if let (Some(c), Some(rec)) = (in_codec, leg.rec.as_mut()) {
                    Recording::push(&mut rec.rx, c, payload);
                }
                if let (Some(c), Some(tap)) = (in_codec, leg.tap.as_mut())
                    && !tap.push(c, payload)
                {
                    if tap.dropped > 0 {
                        tracing::debug!(leg = %leg.id, dropped = tap.dropped, "tap consumer fell behind; frames dropped");
                    }
                    leg.tap = None;
                }
            }
            let Some(Some(leg)) = self.legs.get(slot) else { return };
            let (Some(p), te_in, epoch) = (leg.peer, leg.telephone_event, leg.fwd_epoch) else { continue };
            self.forward(now, p, n, &h, te_in, in_codec, epoch);
        }
    }

    /// Sends `self.buf[..n]` (header `h`) out of leg `p` toward its far end.
    #[allow(clippy::too_many_arguments)]
    fn forward(&mut self, now: Instant, p: usize, n: usize, h: &rtp::Header, te_in: Option<u8>, in_codec: Option<Codec>, epoch: u64) {
        let Some(Some(peer)) = self.legs.get_mut(p) else { return };
        // A prompt playing to this far end replaces the bridged audio.
        if peer.play.is_some() {
            return;
        }
        let Some(dest) = peer.remote else { return };
        let pkt = &mut self.buf[..n];
        if te_in == Some(h.payload_type) {
            // DTMF passes through, renumbered to the peer's telephone-event PT.
            let Some(te) = peer.telephone_event else { return };
            pkt[1] = (pkt[1] & 0x80) | te;
        } else if let Some(c) = in_codec {
            if c != peer.codec {
                g711::transcode(c, peer.codec, &mut pkt[h.payload_offset..h.payload_end]);
                pkt[1] = (pkt[1] & 0x80) | peer.codec.payload_type();
            }
            if let Some(rec) = peer.rec.as_mut() {
                Recording::push(&mut rec.tx, peer.codec, &pkt[h.payload_offset..h.payload_end]);
            }
        }
        peer.out.rewrite(now, epoch, pkt, h);
        match peer.sock.send_to(pkt, dest) {
            Ok(_) => peer.stats.sent += 1,
            // A full send buffer or an unreachable far end loses this packet only.
            Err(_) => peer.stats.dropped += 1,
        }
    }

    /// Sends due prompt frames and writes due recording frames.
    fn tick(&mut self, now: Instant) {
        let mut changed = false;
        for i in 0..self.timed.len() {
            let slot = self.timed[i];
            let Some(Some(leg)) = self.legs.get_mut(slot) else { continue };
            if leg.play.is_none() && leg.rec.is_none() {
                continue;
            }
            let mut done = false;
            if let Some(play) = leg.play.as_mut() {
                // Catch up at most a few frames after a stall rather than bursting.
                let mut budget = 3;
                while play.next_at <= now && budget > 0 {
                    budget -= 1;
                    let end = (play.pos + FRAME_SAMPLES as usize).min(play.prompt.payload.len());
                    let len = HEADER_LEN + FRAME_SAMPLES as usize;
                    let (hdr, body) = self.out[..len].split_at_mut(HEADER_LEN);
                    let chunk = play.prompt.payload.get(play.pos..end).unwrap_or_default();
                    body[..chunk.len()].copy_from_slice(chunk);
                    // Pad the last frame with silence.
                    body[chunk.len()..].fill(play.prompt.codec.silence());
                    g711::transcode(play.prompt.codec, leg.codec, body);
                    let (seq, ts, marker) = leg.out.map(now, Source { input: play.epoch, ssrc: 0 }, play.seq, play.ts, play.pos == 0);
                    let mut h = [0u8; HEADER_LEN];
                    rtp::write_header(&mut h, marker, leg.codec.payload_type(), seq, ts, leg.out.ssrc());
                    hdr.copy_from_slice(&h);
                    if let Some(dest) = leg.remote {
                        match leg.sock.send_to(&self.out[..len], dest) {
                            Ok(_) => leg.stats.sent += 1,
                            Err(_) => leg.stats.dropped += 1,
                        }
                    }
                    if let Some(rec) = leg.rec.as_mut() {
                        Recording::push(&mut rec.tx, leg.codec, &self.out[HEADER_LEN..len]);
                    }
                    play.seq = play.seq.wrapping_add(1);
                    play.ts = play.ts.wrapping_add(FRAME_SAMPLES);
                    play.pos = end;
                    play.next_at += FRAME;
                    if play.pos >= play.prompt.payload.len() {
                        done = true;
                        break;
                    }
                }
                if play.next_at + FRAME * 3 < now {
                    play.next_at = now;
                }
            }
            if let Some(rec) = leg.rec.as_mut() {
                let mut failed = false;
                while rec.next_at <= now {
                    rec.frame.clear();
                    for _ in 0..FRAME_SAMPLES {
                        rec.frame.push(rec.rx.pop_front().unwrap_or(0));
                        rec.frame.push(rec.tx.pop_front().unwrap_or(0));
                    }
                    rec.next_at += FRAME;
                    if let Err(e) = rec.writer.write(&rec.frame) {
                        tracing::warn!(leg = %leg.id, error = %e, "recording write failed; recording stopped");
                        failed = true;
                        break;
                    }
                }
                if failed {
                    leg.rec = None;
                    changed = true;
                }
            }
            if done {
                leg.play = None;
                changed = true;
                let id = leg.id;
                self.emit(MediaEvent::PromptDone { leg: id });
            }
        }
        if changed {
            self.retime();
        }
    }
}

fn finish(id: LegId, rec: Recording) {
    if let Err(e) = rec.writer.finish() {
        tracing::warn!(leg = %id, error = %e, "could not finish recording");
    }
}
