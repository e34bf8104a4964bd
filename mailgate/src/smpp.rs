//! SMS over SMPP v3.4: a small PDU codec, the text encoder (GSM-7 or UCS-2
//! per text, concatenation with a UDH), an ESME client (bind_transceiver,
//! a window of unacknowledged submits, back-off on throttling, enquire_link
//! keepalive, delivery receipts) and the campaign SMS sender.
//!
//! Why hand-written rather than `rusmpp`: the client needs seven PDUs, all
//! fixed layouts of C-strings and octets; the codec below is ~150 lines,
//! pure and tested byte-split, and costs no compile time on shared cores.
//!
//! Shape: [`Pdu::decode`] is pure framing (a partial PDU is `Ok(None)`, not
//! an error). [`SmppClient`] owns the socket through two tasks — a writer
//! draining a channel, and a reader that routes responses to waiting
//! submits by sequence number, answers `deliver_sm`/`enquire_link`/`unbind`
//! and turns delivery receipts into [`Receipt`]s. A semaphore of `window`
//! permits bounds the submits awaiting their `submit_sm_resp`.
//! ESME_RTHROTTLED (0x58) and ESME_RMSGQFUL (0x14) pause every submit of
//! the client for a back-off that doubles while throttling continues, and
//! the refused part is retried.
//!
//! [`SmsSender`] drains SMS rows of the campaign outbox (consent `sms` and
//! suppression checked by the claim), records the SMSC's ids per part and
//! maps receipts to `sms_delivered` / `sms_failed` on the timeline.

use crm::campaigns::{Claimed, MessageId, Outcome, SendInfo};
use crm::{Channel, Millis};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{info, warn};

/// Command ids (SMPP v3.4 §5.1.2.1).
pub mod cmd {
    pub const GENERIC_NACK: u32 = 0x8000_0000;
    pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
    pub const BIND_TRANSCEIVER_RESP: u32 = 0x8000_0009;
    pub const SUBMIT_SM: u32 = 0x0000_0004;
    pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
    pub const DELIVER_SM: u32 = 0x0000_0005;
    pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
    pub const UNBIND: u32 = 0x0000_0006;
    pub const UNBIND_RESP: u32 = 0x8000_0006;
    pub const ENQUIRE_LINK: u32 = 0x0000_0015;
    pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;
}

/// Command status values the client acts on.
pub mod status {
    pub const OK: u32 = 0x00;
    pub const MSGQFUL: u32 = 0x14;
    pub const INVCMDID: u32 = 0x03;
    pub const THROTTLED: u32 = 0x58;
}

/// The largest PDU we accept; anything longer is a broken peer.
const MAX_PDU: usize = 64 * 1024;

/// A framing error: the connection cannot continue.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad SMPP frame: {0}")]
pub struct FrameError(pub &'static str);

/// One PDU: header fields and the raw body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub command: u32,
    pub status: u32,
    pub seq: u32,
    pub body: Vec<u8>,
}

impl Pdu {
    pub fn new(command: u32, status: u32, seq: u32, body: Vec<u8>) -> Pdu {
        Pdu { command, status, seq, body }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.body.len());
        out.extend_from_slice(&((16 + self.body.len()) as u32).to_be_bytes());
        out.extend_from_slice(&self.command.to_be_bytes());
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// Decodes the first PDU of `buf`: `Ok(None)` when it is not complete
    /// yet, else the PDU and how many bytes it took.
    pub fn decode(buf: &[u8]) -> Result<Option<(Pdu, usize)>, FrameError> {
        if buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if !(16..=MAX_PDU).contains(&len) {
            return Err(FrameError("command_length out of range"));
        }
        if buf.len() < len {
            return Ok(None);
        }
        let word = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
        Ok(Some((Pdu { command: word(4), status: word(8), seq: word(12), body: buf[16..len].to_vec() }, len)))
    }
}

fn cstr(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(0);
}

/// A cursor over a PDU body.
struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn cstr(&mut self) -> Option<String> {
        let end = self.b[self.i..].iter().position(|&c| c == 0)?;
        let s = String::from_utf8_lossy(&self.b[self.i..self.i + end]).to_string();
        self.i += end + 1;
        Some(s)
    }
    fn u8(&mut self) -> Option<u8> {
        let v = *self.b.get(self.i)?;
        self.i += 1;
        Some(v)
    }
    fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let v = self.b.get(self.i..self.i + n)?;
        self.i += n;
        Some(v)
    }
}

/// The body of a `bind_transceiver`.
pub fn bind_body(system_id: &str, password: &str, system_type: &str) -> Vec<u8> {
    let mut b = vec![];
    cstr(&mut b, system_id);
    cstr(&mut b, password);
    cstr(&mut b, system_type);
    b.extend_from_slice(&[0x34, 0, 0]); // interface_version 3.4, addr_ton, addr_npi
    cstr(&mut b, "");
    b
}

/// One part of a short message, ready for `submit_sm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// 0x00 (SMSC default alphabet, GSM-7 unpacked) or 0x08 (UCS-2).
    pub data_coding: u8,
    /// 0x40 (UDH indicator) for a part of a concatenated message.
    pub esm_class: u8,
    /// UDH (if any) followed by the encoded text.
    pub payload: Vec<u8>,
}

/// The body of a `submit_sm` for one part, asking for a delivery receipt.
pub fn submit_body(source: &str, dest: &str, part: &Part) -> Vec<u8> {
    let mut b = vec![];
    cstr(&mut b, ""); // service_type
    // An alphanumeric sender is TON 5; a number is international (1/1).
    let alpha = source.chars().any(|c| c.is_ascii_alphabetic());
    b.extend_from_slice(&[if alpha { 5 } else { 1 }, if alpha { 0 } else { 1 }]);
    cstr(&mut b, source.trim_start_matches('+'));
    b.extend_from_slice(&[1, 1]);
    cstr(&mut b, dest.trim_start_matches('+'));
    b.extend_from_slice(&[part.esm_class, 0, 0]); // esm_class, protocol_id, priority
    cstr(&mut b, ""); // schedule_delivery_time
    cstr(&mut b, ""); // validity_period
    b.extend_from_slice(&[1, 0, part.data_coding, 0]); // registered_delivery, replace, data_coding, sm_default_msg_id
    b.push(part.payload.len() as u8);
    b.extend_from_slice(&part.payload);
    b
}

/// The parts of `submit_sm`/`deliver_sm` bodies the client reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShortMessage {
    pub source: String,
    pub dest: String,
    pub esm_class: u8,
    pub data_coding: u8,
    pub text: Vec<u8>,
    /// TLV `receipted_message_id` (0x001E), if present.
    pub receipted_id: Option<String>,
}

/// Parses a `deliver_sm` (or `submit_sm`) body; `None` if truncated.
pub fn parse_sm(body: &[u8]) -> Option<ShortMessage> {
    let mut r = Reader { b: body, i: 0 };
    r.cstr()?;
    r.bytes(2)?;
    let source = r.cstr()?;
    r.bytes(2)?;
    let dest = r.cstr()?;
    let esm_class = r.u8()?;
    r.bytes(2)?;
    r.cstr()?;
    r.cstr()?;
    r.bytes(2)?;
    let data_coding = r.u8()?;
    r.u8()?;
    let len = r.u8()? as usize;
    let text = r.bytes(len)?.to_vec();
    let mut receipted_id = None;
    while let (Some(tag), Some(len)) = (r.bytes(2), r.bytes(2)) {
        let (tag, len) = (u16::from_be_bytes([tag[0], tag[1]]), u16::from_be_bytes([len[0], len[1]]) as usize);
        let Some(v) = r.bytes(len) else { break };
        if tag == 0x001E {
            receipted_id = Some(String::from_utf8_lossy(v).trim_end_matches('\0').to_string());
        }
    }
    Some(ShortMessage { source, dest, esm_class, data_coding, text, receipted_id })
}

// ---------------------------------------------------------------- text

/// The GSM 03.38 default alphabet, in code order (0x1B is the escape).
const GSM_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u{1b}ÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The extension table (after 0x1B): (char, code).
const GSM_EXT: [(char, u8); 10] =
    [('\u{c}', 0x0A), ('^', 0x14), ('{', 0x28), ('}', 0x29), ('\\', 0x2F), ('[', 0x3C), ('~', 0x3D), (']', 0x3E), ('|', 0x40), ('€', 0x65)];

/// The septets of one character, or `None` when GSM-7 cannot carry it.
fn gsm_char(c: char) -> Option<Vec<u8>> {
    if let Some(i) = GSM_BASIC.chars().position(|g| g == c)
        && i != 0x1B
    {
        return Some(vec![i as u8]);
    }
    GSM_EXT.iter().find(|(g, _)| *g == c).map(|(_, code)| vec![0x1B, *code])
}

/// Which alphabet a text goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Gsm7,
    Ucs2,
}

/// GSM-7 when every character fits, else UCS-2.
pub fn coding_for(text: &str) -> Coding {
    if text.chars().all(|c| gsm_char(c).is_some()) { Coding::Gsm7 } else { Coding::Ucs2 }
}

/// Encodes and splits a text: one part up to 160 septets (GSM-7) or 70
/// UTF-16 units (UCS-2); beyond that parts of 153 / 67 with a UDH carrying
/// `reference`, the part count and the part number. An escape pair or a
/// surrogate pair is never split across parts.
pub fn split(text: &str, reference: u8) -> Vec<Part> {
    let coding = coding_for(text);
    // Units: each the bytes of one character (never split).
    let units: Vec<Vec<u8>> = match coding {
        Coding::Gsm7 => text.chars().filter_map(gsm_char).collect(),
        Coding::Ucs2 => text
            .chars()
            .map(|c| {
                let mut buf = [0u16; 2];
                c.encode_utf16(&mut buf).iter().flat_map(|u| u.to_be_bytes()).collect()
            })
            .collect(),
    };
    // Capacity in bytes: GSM unpacked is one septet per byte; UCS-2 two per unit.
    let (single, multi, dc) = match coding {
        Coding::Gsm7 => (160, 153, 0x00),
        Coding::Ucs2 => (140, 134, 0x08),
    };
    let total: usize = units.iter().map(Vec::len).sum();
    if total <= single {
        return vec![Part { data_coding: dc, esm_class: 0, payload: units.concat() }];
    }
    let mut chunks: Vec<Vec<u8>> = vec![vec![]];
    for u in units {
        if chunks.last().is_some_and(|c| c.len() + u.len() > multi) {
            chunks.push(vec![]);
        }
        if let Some(c) = chunks.last_mut() {
            c.extend_from_slice(&u);
        }
    }
    let n = chunks.len().min(255) as u8;
    chunks
        .into_iter()
        .take(255)
        .enumerate()
        .map(|(i, c)| {
            let mut payload = vec![0x05, 0x00, 0x03, reference, n, i as u8 + 1];
            payload.extend_from_slice(&c);
            Part { data_coding: dc, esm_class: 0x40, payload }
        })
        .collect()
}

// ---------------------------------------------------------------- receipts

/// A delivery receipt from the SMSC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The SMSC's id of the submitted part.
    pub id: String,
    /// `DELIVRD`, `UNDELIV`, `EXPIRED`, `REJECTD`…
    pub stat: String,
    pub err: String,
}

impl Receipt {
    pub fn delivered(&self) -> bool {
        self.stat == "DELIVRD"
    }

    /// Reads `id:… stat:… err:…` from a receipt's text; the TLV
    /// `receipted_message_id` wins over the text's id when present.
    pub fn parse(sm: &ShortMessage) -> Option<Receipt> {
        if sm.esm_class & 0x3C != 0x04 {
            return None;
        }
        let text = String::from_utf8_lossy(&sm.text);
        let field = |k: &str| {
            text.split_whitespace().find_map(|w| w.strip_prefix(k).and_then(|r| r.strip_prefix(':'))).map(str::to_string)
        };
        let id = sm.receipted_id.clone().or_else(|| field("id"))?;
        Some(Receipt { id, stat: field("stat")?, err: field("err").unwrap_or_default() })
    }
}

// ---------------------------------------------------------------- client

/// Where and how to bind.
#[derive(Debug, Clone)]
pub struct SmppConfig {
    /// `HOST:PORT`.
    pub addr: String,
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    /// The sender shown to recipients (a number or up to 11 letters).
    pub source: String,
    /// Submits awaiting their response at once.
    pub window: usize,
    pub enquire_link: Duration,
    pub response_timeout: Duration,
    /// First back-off after a throttling answer; doubles up to 5 s.
    pub throttle_backoff: Duration,
}

impl SmppConfig {
    pub fn new(addr: impl Into<String>, system_id: &str, password: &str) -> SmppConfig {
        SmppConfig {
            addr: addr.into(),
            system_id: system_id.into(),
            password: password.into(),
            system_type: String::new(),
            source: "centralino".into(),
            window: 10,
            enquire_link: Duration::from_secs(30),
            response_timeout: Duration::from_secs(10),
            throttle_backoff: Duration::from_millis(100),
        }
    }
}

/// Why a submit did not get an id.
#[derive(Debug, thiserror::Error)]
pub enum SmppError {
    #[error("SMPP connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("SMPP bind refused (status 0x{0:02x})")]
    BindRefused(u32),
    #[error("SMPP connection closed")]
    Closed,
    #[error("no SMPP response in time")]
    Timeout,
    #[error("SMSC rejected the message (status 0x{0:02x})")]
    Rejected(u32),
    #[error(transparent)]
    Frame(#[from] FrameError),
}

impl SmppError {
    /// Whether trying again later may succeed (connection trouble,
    /// throttling that outlasted the retries) — as opposed to a rejection.
    pub fn is_transient(&self) -> bool {
        !matches!(self, SmppError::Rejected(_))
    }
}

type Pending = Arc<Mutex<HashMap<u32, oneshot::Sender<Pdu>>>>;

/// Throttling state shared by every submit of a client.
#[derive(Debug, Default)]
struct Throttle {
    until: Option<Instant>,
    backoff: Duration,
}

/// A bound transceiver session; cheap to clone.
#[derive(Clone)]
pub struct SmppClient {
    cfg: Arc<SmppConfig>,
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    seq: Arc<AtomicU32>,
    window: Arc<Semaphore>,
    throttle: Arc<Mutex<Throttle>>,
    /// How many throttling answers this client received (for tests/logs).
    throttled: Arc<AtomicU32>,
    /// Set by the reader when the connection ends.
    closed: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for SmppClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmppClient").field("addr", &self.cfg.addr).field("system_id", &self.cfg.system_id).finish_non_exhaustive()
    }
}

async fn read_pdu(sock: &mut (impl AsyncReadExt + Unpin), buf: &mut Vec<u8>) -> Result<Pdu, SmppError> {
    loop {
        if let Some((pdu, used)) = Pdu::decode(buf)? {
            buf.drain(..used);
            return Ok(pdu);
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Err(SmppError::Closed);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

impl SmppClient {
    /// Connects and binds as a transceiver. Receipts arrive on the returned
    /// channel until the connection ends.
    pub async fn connect(cfg: SmppConfig) -> Result<(SmppClient, mpsc::Receiver<Receipt>), SmppError> {
        let mut sock = tokio::time::timeout(cfg.response_timeout, TcpStream::connect(&cfg.addr)).await.map_err(|_| SmppError::Timeout)??;
        let _ = sock.set_nodelay(true);
        sock.write_all(&Pdu::new(cmd::BIND_TRANSCEIVER, 0, 1, bind_body(&cfg.system_id, &cfg.password, &cfg.system_type)).encode()).await?;
        let mut buf = vec![];
        let resp = tokio::time::timeout(cfg.response_timeout, read_pdu(&mut sock, &mut buf)).await.map_err(|_| SmppError::Timeout)??;
        if resp.command != cmd::BIND_TRANSCEIVER_RESP || resp.status != status::OK {
            return Err(SmppError::BindRefused(resp.status));
        }
        let (rd, mut wr) = sock.into_split();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(1024);
        let (dlr_tx, dlr_rx) = mpsc::channel::<Receipt>(4096);
        let pending: Pending = Arc::default();
        let client = SmppClient {
            window: Arc::new(Semaphore::new(cfg.window.max(1))),
            cfg: Arc::new(cfg),
            tx: tx.clone(),
            pending: pending.clone(),
            seq: Arc::new(AtomicU32::new(2)),
            throttle: Arc::default(),
            throttled: Arc::default(),
            closed: Arc::default(),
        };
        // Writer: everything goes through one task, so PDUs never interleave.
        tokio::spawn(async move {
            while let Some(bytes) = rx.recv().await {
                if wr.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });
        // Keepalive: an enquire_link whenever the interval passes; its
        // response needs no waiter (the reader drops unmatched responses).
        let keep = client.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(keep.cfg.enquire_link).await;
                let seq = keep.next_seq();
                if keep.tx.send(Pdu::new(cmd::ENQUIRE_LINK, 0, seq, vec![]).encode()).await.is_err() {
                    break;
                }
            }
        });
        tokio::spawn(reader(rd, buf, tx, pending, dlr_tx, client.closed.clone()));
        Ok((client, dlr_rx))
    }

    fn next_seq(&self) -> u32 {
        // Sequence numbers run 1..=0x7FFFFFFF.
        self.seq.fetch_add(1, Ordering::Relaxed) % 0x7FFF_FFFF + 1
    }

    /// Whether the connection has ended (the owner should reconnect).
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// How many throttling answers arrived so far.
    pub fn throttled_count(&self) -> u32 {
        self.throttled.load(Ordering::Relaxed)
    }

    async fn wait_throttle(&self) {
        loop {
            let until = self.throttle.lock().ok().and_then(|t| t.until);
            match until {
                Some(u) if u > Instant::now() => tokio::time::sleep_until(u).await,
                _ => return,
            }
        }
    }

    fn on_throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut t) = self.throttle.lock() {
            t.backoff = if t.backoff.is_zero() { self.cfg.throttle_backoff } else { (t.backoff * 2).min(Duration::from_secs(5)) };
            t.until = Some(Instant::now() + t.backoff);
        }
    }

    fn on_accepted(&self) {
        if let Ok(mut t) = self.throttle.lock() {
            t.backoff = Duration::ZERO;
        }
    }

    /// Submits one part to `dest` and returns the SMSC's message id. At
    /// most `window` submits await their response at once; a throttling
    /// answer pauses the client and the part is retried (up to 8 times).
    pub async fn submit(&self, dest: &str, part: &Part) -> Result<String, SmppError> {
        let body = submit_body(&self.cfg.source, dest, part);
        for _ in 0..8 {
            self.wait_throttle().await;
            let permit = self.window.acquire().await.map_err(|_| SmppError::Closed)?;
            let seq = self.next_seq();
            let (otx, orx) = oneshot::channel();
            if let Ok(mut p) = self.pending.lock() {
                p.insert(seq, otx);
            }
            if self.tx.send(Pdu::new(cmd::SUBMIT_SM, 0, seq, body.clone()).encode()).await.is_err() {
                return Err(SmppError::Closed);
            }
            let resp = tokio::time::timeout(self.cfg.response_timeout, orx).await;
            drop(permit);
            let resp = match resp {
                Ok(Ok(r)) => r,
                Ok(Err(_)) => return Err(SmppError::Closed),
                Err(_) => {
                    if let Ok(mut p) = self.pending.lock() {
                        p.remove(&seq);
                    }
                    return Err(SmppError::Timeout);
                }
            };
            match resp.status {
                status::OK => {
                    self.on_accepted();
                    let id = Reader { b: &resp.body, i: 0 }.cstr().unwrap_or_default();
                    return Ok(id);
                }
                status::THROTTLED | status::MSGQFUL => self.on_throttled(),
                s => return Err(SmppError::Rejected(s)),
            }
        }
        Err(SmppError::Rejected(status::THROTTLED))
    }

    /// Unbinds politely (best effort).
    pub async fn unbind(&self) {
        let seq = self.next_seq();
        let (otx, orx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(seq, otx);
        }
        if self.tx.send(Pdu::new(cmd::UNBIND, 0, seq, vec![]).encode()).await.is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), orx).await;
        }
    }
}

/// The reading half: routes responses, answers the SMSC's requests. A bad
/// frame ends this connection only; pending submits then see `Closed`.
async fn reader(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut buf: Vec<u8>,
    tx: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    dlrs: mpsc::Sender<Receipt>,
    closed: Arc<std::sync::atomic::AtomicBool>,
) {
    loop {
        let pdu = match read_pdu(&mut rd, &mut buf).await {
            Ok(p) => p,
            Err(e) => {
                info!(error = %e, "SMPP connection ended");
                break;
            }
        };
        if pdu.command & 0x8000_0000 != 0 {
            let waiter = pending.lock().ok().and_then(|mut p| p.remove(&pdu.seq));
            if let Some(w) = waiter {
                let _ = w.send(pdu);
            }
            continue;
        }
        let reply = match pdu.command {
            cmd::DELIVER_SM => {
                match parse_sm(&pdu.body).as_ref().and_then(Receipt::parse) {
                    Some(r) => {
                        let _ = dlrs.try_send(r);
                    }
                    None => warn!(seq = pdu.seq, "deliver_sm that is not a receipt ignored"),
                }
                // message_id of deliver_sm_resp is unused: an empty C-string.
                Pdu::new(cmd::DELIVER_SM_RESP, 0, pdu.seq, vec![0])
            }
            cmd::ENQUIRE_LINK => Pdu::new(cmd::ENQUIRE_LINK_RESP, 0, pdu.seq, vec![]),
            cmd::UNBIND => {
                let _ = tx.send(Pdu::new(cmd::UNBIND_RESP, 0, pdu.seq, vec![]).encode()).await;
                break;
            }
            _ => Pdu::new(cmd::GENERIC_NACK, status::INVCMDID, pdu.seq, vec![]),
        };
        if tx.send(reply.encode()).await.is_err() {
            break;
        }
    }
    closed.store(true, Ordering::Relaxed);
    // Dropping the waiters wakes every pending submit with `Closed`.
    if let Ok(mut p) = pending.lock() {
        p.clear();
    }
}

// ---------------------------------------------------------------- sender

/// What one round of [`SmsSender::drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmsReport {
    pub sent: usize,
    pub failed: usize,
    pub deferred: usize,
}

/// The campaign SMS sender; see the module docs.
#[derive(Debug, Clone)]
pub struct SmsSender {
    pub client: SmppClient,
    pub batch: i64,
    pub lease: Duration,
}

enum One {
    Sent,
    Failed,
    Deferred,
}

impl SmsSender {
    pub fn new(client: SmppClient) -> SmsSender {
        SmsSender { client, batch: 200, lease: Duration::from_secs(300) }
    }

    async fn send_one(&self, store: &crm::Store, info: &SendInfo, row: Claimed) -> crate::Result<One> {
        let now = crm::now_ms();
        let text = match store.merge_context(row.party_id).await {
            Ok(ctx) => crm::campaigns_template::render(&info.template, &ctx).map(|r| r.text.trim().to_string()),
            Err(crm::Error::NotFound(_)) => Err("the party no longer exists".to_string()),
            Err(e) => return Err(e.into()),
        };
        let text = match text {
            Ok(t) => t,
            Err(e) => {
                store.complete_outbox(row.outbox_id, Outcome::Failed, &e, now).await?;
                return Ok(One::Failed);
            }
        };
        // The concatenation reference only has to differ between the
        // long messages a handset receives at about the same time.
        let parts = split(&text, (row.outbox_id % 256) as u8);
        let mut ids = Vec::with_capacity(parts.len());
        for p in &parts {
            match self.client.submit(&row.address, p).await {
                Ok(id) => ids.push(id),
                Err(e) if e.is_transient() && row.attempts < 8 => {
                    warn!(error = %e, outbox_id = row.outbox_id, "SMS deferred");
                    // Parts already accepted are remembered so their
                    // receipts still find the row.
                    store.record_sms_parts(row.outbox_id, &ids, now).await?;
                    store.defer_outbox(row.outbox_id, crm::now_ms() + (5_000i64 << row.attempts.clamp(0, 6)), now).await?;
                    return Ok(One::Deferred);
                }
                Err(e) => {
                    store.record_sms_parts(row.outbox_id, &ids, now).await?;
                    store.complete_outbox(row.outbox_id, Outcome::Failed, &e.to_string(), crm::now_ms()).await?;
                    return Ok(One::Failed);
                }
            }
        }
        store.record_sms_parts(row.outbox_id, &ids, now).await?;
        store.complete_outbox(row.outbox_id, Outcome::Sent, &format!("{} part(s): {}", ids.len(), ids.join(",")), crm::now_ms()).await?;
        Ok(One::Sent)
    }

    /// One round over every launched SMS message with rows due; `window`
    /// recipients are in flight at once (their parts in order).
    pub async fn drain(&self, store: &crm::Store, now: Millis) -> crate::Result<SmsReport> {
        let mut report = SmsReport::default();
        for message in store.sendable_messages(Channel::Sms, now).await? {
            let info = store.send_info(message).await?;
            let rows = store.claim_outbox(message, self.batch, self.lease.as_millis() as i64, now).await?;
            let info = &info;
            let results: Vec<crate::Result<One>> = futures::stream::iter(rows)
                .map(|row| self.send_one(store, info, row))
                .buffer_unordered(self.client.cfg.window.max(1))
                .collect()
                .await;
            for r in results {
                match r? {
                    One::Sent => report.sent += 1,
                    One::Failed => report.failed += 1,
                    One::Deferred => report.deferred += 1,
                }
            }
            let _: MessageId = message;
        }
        Ok(report)
    }

    /// Drains every `poll` until `shutdown` or until the connection ends
    /// (the caller reconnects).
    pub async fn run(self, store: crm::Store, poll: Duration, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() && !self.client.is_closed() {
            match self.drain(&store, crm::now_ms()).await {
                Ok(r) if r.sent + r.failed > 0 => info!(?r, "campaign SMS sent"),
                Ok(_) => {}
                Err(e) => warn!(error = %e, "SMS drain failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}

/// Applies delivery receipts to the timeline until the channel closes.
/// Returns how many receipts matched a row.
pub async fn run_receipts(store: crm::Store, mut receipts: mpsc::Receiver<Receipt>) -> usize {
    let mut matched = 0;
    while let Some(r) = receipts.recv().await {
        match store.record_sms_receipt(&r.id, r.delivered(), &format!("stat:{} err:{}", r.stat, r.err), crm::now_ms()).await {
            Ok(Some(_)) => matched += 1,
            Ok(None) => warn!(id = %r.id, "receipt for an unknown SMS"),
            Err(e) => warn!(error = %e, id = %r.id, "receipt not recorded"),
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm_table_has_128_codes() {
        assert_eq!(GSM_BASIC.chars().count(), 128);
    }

    #[test]
    fn frames_decode_split_at_every_byte() {
        let pdu = Pdu::new(cmd::SUBMIT_SM_RESP, 0, 7, b"abc\0".to_vec());
        let bytes = pdu.encode();
        for cut in 0..bytes.len() {
            assert_eq!(Pdu::decode(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        assert_eq!(Pdu::decode(&bytes), Ok(Some((pdu, bytes.len()))));
        assert!(Pdu::decode(&[0, 0, 0, 3, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn coding_and_parts() {
        let p = split("Ciao Ada, offerta {speciale} a 5€", 1);
        assert_eq!((p.len(), p[0].data_coding, p[0].esm_class), (1, 0, 0));
        // `{`, `}` and `€` take two septets each.
        assert_eq!(p[0].payload.len(), "Ciao Ada, offerta {speciale} a 5€".chars().count() + 3);
        assert_eq!(split(&"a".repeat(160), 1).len(), 1);
        let long = split(&"a".repeat(161), 9);
        assert_eq!(long.len(), 2);
        assert_eq!(&long[0].payload[..6], &[5, 0, 3, 9, 2, 1]);
        assert_eq!(long[0].payload.len() - 6, 153);
        let cjk = "你好".repeat(35);
        assert_eq!(coding_for(&cjk), Coding::Ucs2);
        assert_eq!(split(&cjk, 1).len(), 1);
        let parts = split(&"你".repeat(71), 1);
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].payload.len() - 6) / 2, 67);
        // An escape pair is not split at a part boundary.
        let t = format!("{}€", "a".repeat(152));
        let p = split(&format!("{t}{}", "b".repeat(10)), 1);
        assert_eq!(p[0].payload.len() - 6, 152);
    }

    #[test]
    fn receipts_parse() {
        let sm = ShortMessage {
            source: "393331234567".into(),
            dest: "centralino".into(),
            esm_class: 0x04,
            data_coding: 0,
            text: b"id:0000002a sub:001 dlvrd:000 submit date:2611221200 done date:2611221200 stat:UNDELIV err:001 text:Ciao".to_vec(),
            receipted_id: None,
        };
        assert_eq!(Receipt::parse(&sm), Some(Receipt { id: "0000002a".into(), stat: "UNDELIV".into(), err: "001".into() }));
        let body = submit_body("centralino", "+393331234567", &Part { data_coding: 0, esm_class: 0x04, payload: sm.text.clone() });
        let back = parse_sm(&body).expect("parses");
        assert_eq!((back.dest.as_str(), back.esm_class, back.text.len()), ("393331234567", 0x04, sm.text.len()));
    }
}
