//! Relay benchmark, callable from the `loadtest` binary (no binary here).
//!
//! [`relay`] runs N bridged calls through a relay on loopback for a few
//! seconds and reports loss, relay delay percentiles (hdrhistogram), CPU
//! and memory per call. Each call has two far ends (customer and agent),
//! each sending 50 packets/s of 172-byte PCMU RTP to its leg and receiving
//! the other's packets: 100 packets/s in and 100 out at the relay, i.e.
//! 200 relayed packet events per call (the convention of `limits.md` §4).
//!
//! [`Relay::Centralino`] is our [`crate::media`] thread (a port per leg,
//! header rewriting, latching). [`Relay::Mmsg`] is the bare baseline: one
//! socket, `recvmmsg`/`sendmmsg` batches of 64, a table lookup from source
//! to destination, nothing else. Both use the same generator and sink, in
//! the same process, so a run compares them under the same load.
//!
//! Delay is measured from the generator's send to the sink's receive
//! (both in this process, stamped with one `Instant` base), so it includes
//! the two loopback hops, not just the relay.

use crate::g711::Codec;
use crate::media::{Media, MediaConfig};
use crate::rtp;
use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};
use std::collections::HashMap;
use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Which relay carries the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relay {
    Centralino,
    Mmsg,
}

/// One run's result.
#[derive(Debug, Clone)]
pub struct RelayReport {
    pub relay: Relay,
    pub calls: usize,
    pub secs: f64,
    pub sent: u64,
    pub received: u64,
    /// Packets whose sequence number did not follow the previous one's
    /// from the same sender, or whose SSRC changed mid-stream.
    pub discontinuities: u64,
    /// Delay percentiles in microseconds: p50, p90, p99, p99.9, max.
    pub delay_us: [u64; 5],
    /// Process CPU (user + system) over the run, in percent of one core.
    pub cpu_percent: f64,
    /// Resident memory added per call by setting the calls up (userspace only).
    pub rss_per_call_bytes: i64,
}

impl RelayReport {
    pub fn loss(&self) -> f64 {
        if self.sent == 0 { 0.0 } else { self.sent.saturating_sub(self.received) as f64 / self.sent as f64 }
    }
    /// Relayed packets per second (received at the relay), as in `limits.md` §4.
    pub fn pps(&self) -> f64 {
        self.sent as f64 / self.secs
    }
    /// The acceptance rule of the media brief: under 0.1 % loss and p99 ≤ 5 ms.
    pub fn ok(&self) -> bool {
        self.loss() < 0.001 && self.delay_us[2] <= 5_000
    }
}

impl fmt::Display for RelayReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [p50, p90, p99, p999, max] = self.delay_us;
        write!(
            f,
            "{:<10} calls={:>5} pps_in={:>7.0} loss={:.3}% discont={} delay_us p50={} p90={} p99={} p99.9={} max={} cpu={:.0}% rss/call={}B {}",
            format!("{:?}", self.relay),
            self.calls,
            self.pps(),
            self.loss() * 100.0,
            self.discontinuities,
            p50,
            p90,
            p99,
            p999,
            max,
            self.cpu_percent,
            self.rss_per_call_bytes,
            if self.ok() { "OK" } else { "OVER" }
        )
    }
}

const PACKET: usize = 172;
const PPS_PER_FAR_END: u64 = 50;

fn rss_bytes() -> i64 {
    // statm's second field is resident pages; 4 KiB pages on the targets we run.
    std::fs::read_to_string("/proc/self/statm").ok().and_then(|s| s.split_whitespace().nth(1)?.parse::<i64>().ok()).map_or(0, |p| p * 4096)
}

fn cpu_ticks() -> u64 {
    // utime + stime of the whole process, in clock ticks (USER_HZ = 100).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

fn loopback() -> io::Result<UdpSocket> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(1 << 20);
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    Ok(s.into())
}

/// Runs `calls` bridged calls for `secs` seconds through `relay`.
pub fn relay(relay: Relay, calls: usize, secs: f64) -> io::Result<RelayReport> {
    let rss0 = rss_bytes();
    // Far ends: [2*i] is call i's customer, [2*i+1] its agent.
    let far: Vec<UdpSocket> = (0..2 * calls).map(|_| loopback()).collect::<io::Result<_>>()?;
    let far_addr: Vec<SocketAddr> = far.iter().map(|s| s.local_addr()).collect::<io::Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    // Where each far end sends, and the relay's thread if we run one here.
    let mut targets = Vec::with_capacity(far.len());
    let mut media_keep = None;
    let mut mmsg_thread = None;
    match relay {
        Relay::Centralino => {
            let (media, _events, thread) = Media::start(MediaConfig::new([127, 0, 0, 1].into()))?;
            for i in 0..calls {
                let (a, aa) = media.open_leg(Codec::Pcmu).map_err(io::Error::other)?;
                let (b, ba) = media.open_leg(Codec::Pcmu).map_err(io::Error::other)?;
                media.set_remote(a, Some(far_addr[2 * i]), Codec::Pcmu, None).map_err(io::Error::other)?;
                media.set_remote(b, Some(far_addr[2 * i + 1]), Codec::Pcmu, None).map_err(io::Error::other)?;
                media.bridge(a, b).map_err(io::Error::other)?;
                targets.push(aa);
                targets.push(ba);
            }
            media_keep = Some((media, thread));
        }
        Relay::Mmsg => {
            let sock = loopback()?;
            let _ = socket2::SockRef::from(&sock).set_recv_buffer_size(4 << 20);
            let addr = sock.local_addr()?;
            let mut route = HashMap::with_capacity(far.len());
            for i in 0..calls {
                route.insert(far_addr[2 * i], far_addr[2 * i + 1]);
                route.insert(far_addr[2 * i + 1], far_addr[2 * i]);
                targets.push(addr);
                targets.push(addr);
            }
            let stop2 = stop.clone();
            mmsg_thread = Some(std::thread::spawn(move || mmsg_relay(sock, route, stop2)));
        }
    }
    // Let the relay register its sockets before measuring memory and sending.
    std::thread::sleep(Duration::from_millis(200));
    let rss_per_call = if calls > 0 { (rss_bytes() - rss0) / calls as i64 } else { 0 };

    let base = Instant::now();
    let sink_socks: Vec<UdpSocket> = far.iter().map(|s| s.try_clone()).collect::<io::Result<_>>()?;
    let stop_sink = Arc::new(AtomicBool::new(false));
    let sink = {
        let stop_sink = stop_sink.clone();
        std::thread::spawn(move || sink(sink_socks, base, stop_sink))
    };
    let cpu0 = cpu_ticks();
    let t0 = Instant::now();
    let sent = generate(&far, &targets, base, Duration::from_secs_f64(secs))?;
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu1 = cpu_ticks();
    std::thread::sleep(Duration::from_millis(300));
    stop_sink.store(true, Ordering::Relaxed);
    let (received, discontinuities, hist) = sink.join().map_err(|_| io::Error::other("sink panicked"))??;
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = mmsg_thread {
        t.join().map_err(|_| io::Error::other("relay panicked"))??;
    }
    if let Some((media, thread)) = media_keep {
        drop(media);
        let _ = thread.join();
    }
    let q = |p: f64| hist.value_at_quantile(p);
    Ok(RelayReport {
        relay,
        calls,
        secs: elapsed,
        sent,
        received,
        discontinuities,
        delay_us: [q(0.5), q(0.9), q(0.99), q(0.999), hist.max()],
        cpu_percent: (cpu1 - cpu0) as f64 / elapsed,
        rss_per_call_bytes: rss_per_call,
    })
}

/// Sends 50 packets/s from every far end, spread evenly over each 20 ms.
fn generate(far: &[UdpSocket], targets: &[SocketAddr], base: Instant, dur: Duration) -> io::Result<u64> {
    let n = far.len();
    let mut pkt = [0u8; PACKET];
    let ssrcs: Vec<u32> = (0..n).map(|_| rand::random()).collect();
    let period = Duration::from_nanos(1_000_000_000 / PPS_PER_FAR_END);
    let start = Instant::now();
    let mut sent = 0u64;
    let mut frame = 0u64;
    'outer: loop {
        let frame_start = start + period * frame as u32;
        if frame_start - start >= dur {
            break;
        }
        for i in 0..n {
            let due = frame_start + period * i as u32 / n as u32;
            let now = Instant::now();
            if due > now {
                // Sleep only for gaps worth a syscall; spin-free but coarse.
                if due - now > Duration::from_micros(200) {
                    std::thread::sleep(due - now);
                }
            } else if now - due > Duration::from_secs(1) {
                break 'outer;
            }
            let mut h = [0u8; rtp::HEADER_LEN];
            rtp::write_header(&mut h, false, 0, frame as u16, (frame as u32).wrapping_mul(160), ssrcs[i]);
            pkt[..rtp::HEADER_LEN].copy_from_slice(&h);
            let stamp = base.elapsed().as_nanos() as u64;
            pkt[12..20].copy_from_slice(&stamp.to_be_bytes());
            if far[i].send_to(&pkt, targets[i]).is_ok() {
                sent += 1;
            }
        }
        frame += 1;
    }
    Ok(sent)
}

type SinkResult = io::Result<(u64, u64, Histogram<u64>)>;

fn sink(socks: Vec<UdpSocket>, base: Instant, stop: Arc<AtomicBool>) -> SinkResult {
    let mut poll = Poll::new()?;
    let mut socks: Vec<mio::net::UdpSocket> = socks
        .into_iter()
        .map(|s| {
            s.set_nonblocking(true)?;
            Ok(mio::net::UdpSocket::from_std(s))
        })
        .collect::<io::Result<_>>()?;
    for (i, s) in socks.iter_mut().enumerate() {
        poll.registry().register(s, Token(i), Interest::READABLE)?;
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(io::Error::other)?;
    let mut last: Vec<Option<(u32, u16)>> = vec![None; socks.len()];
    let (mut received, mut discont) = (0u64, 0u64);
    let mut buf = [0u8; 2048];
    let mut events = Events::with_capacity(1024);
    while !stop.load(Ordering::Relaxed) {
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(s) = socks.get(i) else { continue };
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                let Some(h) = rtp::parse(&buf[..n]) else { continue };
                received += 1;
                if n >= 20 {
                    let mut st = [0u8; 8];
                    st.copy_from_slice(&buf[12..20]);
                    let now = base.elapsed().as_nanos() as u64;
                    let d = now.saturating_sub(u64::from_be_bytes(st)) / 1000;
                    let _ = hist.record(d.max(1));
                }
                if let Some((ssrc, seq)) = last[i]
                    && (ssrc != h.ssrc || seq.wrapping_add(1) != h.seq)
                {
                    discont += 1;
                }
                last[i] = Some((h.ssrc, h.seq));
            }
        }
    }
    Ok((received, discont, hist))
}

/// The bare baseline: one socket, batches of 64 both ways, no rewriting.
fn mmsg_relay(sock: UdpSocket, route: HashMap<SocketAddr, SocketAddr>, stop: Arc<AtomicBool>) -> io::Result<()> {
    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, SockaddrStorage, recvmmsg, sendmmsg};
    const BATCH: usize = 64;
    sock.set_read_timeout(Some(Duration::from_millis(50)))?;
    let fd = sock.as_raw_fd();
    let mut bufs = vec![[0u8; 2048]; BATCH];
    let mut picked = [(0usize, 0usize); BATCH];
    let mut dests: Vec<Option<SockaddrIn>> = vec![None; BATCH];
    let mut rx_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut tx_headers = MultiHeaders::<SockaddrIn>::preallocate(BATCH, None);
    while !stop.load(Ordering::Relaxed) {
        let mut count = 0;
        {
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = bufs.iter_mut().map(|b| [IoSliceMut::new(&mut b[..])]).collect();
            let res = match recvmmsg(fd, &mut rx_headers, iovs.iter_mut(), MsgFlags::MSG_WAITFORONE, None) {
                Ok(r) => r,
                Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            for (i, m) in res.enumerate() {
                let from = m.address.and_then(|a: SockaddrStorage| a.as_sockaddr_in().map(|s| SocketAddr::from(std::net::SocketAddrV4::from(*s))));
                let to = from.and_then(|f| route.get(&f)).and_then(|t| match t {
                    SocketAddr::V4(v4) => Some(SockaddrIn::from(*v4)),
                    SocketAddr::V6(_) => None,
                });
                if let Some(to) = to {
                    picked[count] = (i, m.bytes);
                    dests[count] = Some(to);
                    count += 1;
                }
            }
        }
        if count == 0 {
            continue;
        }
        let iovs: Vec<[IoSlice<'_>; 1]> = picked[..count].iter().map(|&(i, n)| [IoSlice::new(&bufs[i][..n])]).collect();
        let _ = sendmmsg(fd, &mut tx_headers, iovs.iter(), &dests[..count], [], MsgFlags::empty());
    }
    Ok(())
}
