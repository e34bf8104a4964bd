//! RFC 4733 telephone-events (DTMF) received over RTP.
//!
//! A sender emits several packets per key press, all with the timestamp of
//! the event's start, and repeats the final "end" packet three times. The
//! [`Detector`] reports each press exactly once, when its first end packet
//! arrives (so the duration is known), and remembers the timestamp so the
//! retransmitted ends are ignored. Pure; no clock.

/// The 4-byte telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    pub volume: u8,
    /// In timestamp units (8 kHz samples).
    pub duration: u16,
}

pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
    let p = payload.get(..4)?;
    Some(TelephoneEvent { event: p[0], end: p[1] & 0x80 != 0, volume: p[1] & 0x3F, duration: u16::from_be_bytes([p[2], p[3]]) })
}

/// Builds a payload (for tests and for sending DTMF ourselves).
pub fn payload(ev: TelephoneEvent) -> [u8; 4] {
    let d = ev.duration.to_be_bytes();
    [ev.event, (u8::from(ev.end) << 7) | (ev.volume & 0x3F), d[0], d[1]]
}

/// Event code → DTMF character (0–9, *, #, A–D); other events (e.g. flash) are `None`.
pub fn digit(event: u8) -> Option<char> {
    Some(match event {
        0..=9 => char::from(b'0' + event),
        10 => '*',
        11 => '#',
        12..=15 => char::from(b'A' + event - 12),
        _ => return None,
    })
}

/// A detected key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    pub digit: char,
    pub duration_ms: u32,
}

/// De-duplicates telephone-event packets of one stream into key presses.
#[derive(Debug, Clone, Default)]
pub struct Detector {
    last_ended: Option<(u32, u32)>,
}

impl Detector {
    /// Feeds one telephone-event packet: its RTP timestamp, SSRC and payload.
    pub fn feed(&mut self, timestamp: u32, ssrc: u32, payload: &[u8]) -> Option<Digit> {
        let ev = parse(payload)?;
        if !ev.end || self.last_ended == Some((ssrc, timestamp)) {
            return None;
        }
        self.last_ended = Some((ssrc, timestamp));
        Some(Digit { digit: digit(ev.event)?, duration_ms: u32::from(ev.duration) / 8 })
    }
}
