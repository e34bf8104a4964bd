//! RTP (RFC 3550) header reading and the per-stream rewriting that makes a
//! bridged call look like one continuous stream to each far end.
//!
//! Pure and clock-free: time comes in as `now`. The relay in
//! [`crate::media`] owns one [`Rewriter`] per leg, for what it sends toward
//! that leg's far end. Whatever feeds the leg (the bridged peer, a prompt,
//! a later peer after a re-bridge) is a *source*; when the source changes,
//! the rewriter re-anchors so that the sequence number continues at
//! `last + 1` and the timestamp advances by the wall time elapsed (at least
//! one 20 ms frame), under one SSRC of ours. Within one source, gaps and
//! reordering are preserved (offsets, not counters), so the far end's
//! jitter buffer and loss statistics stay truthful.

use std::time::Instant;

/// Fixed header length without CSRCs.
pub const HEADER_LEN: usize = 12;
/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: u32 = 160;

/// The fields of an RTP header we use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub marker: bool,
    pub payload_type: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    /// Where the payload starts (after CSRCs and any extension).
    pub payload_offset: usize,
    /// Where the payload ends (before any padding).
    pub payload_end: usize,
}

/// Reads an RTP header; `None` for anything that is not a well-formed
/// version-2 packet (including RTCP, whose PT 200–204 sits in the marker
/// and payload-type byte, so RFC 5761 demultiplexing rejects it here).
pub fn parse(pkt: &[u8]) -> Option<Header> {
    if pkt.len() < HEADER_LEN || pkt[0] >> 6 != 2 {
        return None;
    }
    let pt = pkt[1] & 0x7F;
    if (72..=76).contains(&pt) {
        return None;
    }
    let cc = usize::from(pkt[0] & 0x0F);
    let mut off = HEADER_LEN + 4 * cc;
    if pkt[0] & 0x10 != 0 {
        let ext = pkt.get(off + 2..off + 4)?;
        off += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    let mut end = pkt.len();
    if pkt[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*pkt.last()?))?;
    }
    if off > end {
        return None;
    }
    Some(Header {
        marker: pkt[1] & 0x80 != 0,
        payload_type: pt,
        seq: u16::from_be_bytes([pkt[2], pkt[3]]),
        timestamp: u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]),
        ssrc: u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]),
        payload_offset: off,
        payload_end: end,
    })
}

/// Writes a 12-byte header (no CSRC, extension or padding) into `buf`.
pub fn write_header(buf: &mut [u8; HEADER_LEN], marker: bool, pt: u8, seq: u16, ts: u32, ssrc: u32) {
    buf[0] = 0x80;
    buf[1] = (u8::from(marker) << 7) | (pt & 0x7F);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&ts.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Identifies a source feeding a rewriter: which input (leg index or the
/// prompt player, with a generation bumped on every bridge change) and the
/// SSRC it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source {
    pub input: u64,
    pub ssrc: u32,
}

/// Output-side state of one stream we send. See the module docs.
#[derive(Debug, Clone)]
pub struct Rewriter {
    ssrc: u32,
    source: Option<Source>,
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    last_at: Option<Instant>,
    /// Packets re-anchored so far (source switches), for tests and metrics.
    pub switches: u32,
}

impl Rewriter {
    /// `ssrc` is ours toward this far end; `seq0`/`ts0` should be random (RFC 3550 §5.1).
    pub fn new(ssrc: u32, seq0: u16, ts0: u32) -> Rewriter {
        Rewriter { ssrc, source: None, seq_offset: 0, ts_offset: 0, last_seq: seq0.wrapping_sub(1), last_ts: ts0.wrapping_sub(FRAME_SAMPLES), last_at: None, switches: 0 }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Maps an input packet's (seq, ts) from `source` to ours; returns the
    /// new (seq, ts, marker). The marker is set on the first packet after a
    /// switch, as RFC 3551 asks for the start of a talkspurt.
    pub fn map(&mut self, now: Instant, source: Source, seq: u16, ts: u32, marker: bool) -> (u16, u32, bool) {
        let mut marker = marker;
        if self.source != Some(source) {
            let elapsed = self.last_at.map_or(0, |t| now.saturating_duration_since(t).as_micros() as u64);
            // Advance by the wall time passed, rounded to whole frames, but
            // at least one frame so the far end never sees a repeated timestamp.
            let frames = (elapsed / 20_000).max(1) as u32;
            let out_ts = self.last_ts.wrapping_add(frames.wrapping_mul(FRAME_SAMPLES));
            self.seq_offset = self.last_seq.wrapping_add(1).wrapping_sub(seq);
            self.ts_offset = out_ts.wrapping_sub(ts);
            self.source = Some(source);
            self.switches += 1;
            marker = true;
        }
        let out_seq = seq.wrapping_add(self.seq_offset);
        let out_ts = ts.wrapping_add(self.ts_offset);
        // Track the highest sequence sent (serial-number arithmetic), so a
        // late reordered packet does not pull the anchor back.
        if out_seq.wrapping_sub(self.last_seq) < 0x8000 || self.last_at.is_none() {
            self.last_seq = out_seq;
            self.last_ts = out_ts;
        }
        self.last_at = Some(now);
        (out_seq, out_ts, marker)
    }

    /// Rewrites SSRC, sequence, timestamp and marker of `pkt` in place.
    /// `pkt` must have passed [`parse`] (so it has at least 12 bytes).
    pub fn rewrite(&mut self, now: Instant, input: u64, pkt: &mut [u8], h: &Header) {
        let (seq, ts, marker) = self.map(now, Source { input, ssrc: h.ssrc }, h.seq, h.timestamp, h.marker);
        if pkt.len() < HEADER_LEN {
            return;
        }
        pkt[1] = (u8::from(marker) << 7) | (pkt[1] & 0x7F);
        pkt[2..4].copy_from_slice(&seq.to_be_bytes());
        pkt[4..8].copy_from_slice(&ts.to_be_bytes());
        pkt[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
    }
}
