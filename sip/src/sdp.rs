//! The little SDP we need (RFC 4566, offer/answer per RFC 3264): an audio
//! offer with PCMU, PCMA and telephone-event (RFC 4733), reading the remote
//! media address and codecs, and answering an offer with the first codec we
//! share. The user agent only carries these bodies; [`crate::b2bua`]
//! reads them to point a media leg at the far end.

use std::net::{IpAddr, SocketAddr};

/// Payload type we use for telephone-event.
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// An audio offer from `addr` (the RTP address) with PCMU, PCMA and
/// telephone-event 0-15.
pub fn offer(addr: SocketAddr, session_id: u64) -> String {
    let (ip_ver, ip) = match addr.ip() {
        IpAddr::V4(ip) => ("IP4", ip.to_string()),
        IpAddr::V6(ip) => ("IP6", ip.to_string()),
    };
    format!(
        "v=0\r\no=centralino {session_id} {session_id} IN {ip_ver} {ip}\r\ns=-\r\nc=IN {ip_ver} {ip}\r\nt=0 0\r\n\
m=audio {port} RTP/AVP 0 8 {te}\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
        port = addr.port(),
        te = TELEPHONE_EVENT_PT,
    )
}

/// The audio stream of a session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub addr: Option<SocketAddr>,
    /// Payload types in offer order.
    pub payload_types: Vec<u8>,
    /// The payload type of telephone-event/8000, if offered.
    pub telephone_event: Option<u8>,
}

impl Media {
    /// The G.711 codec offer/answer settles on: the first of PCMU (0) or
    /// PCMA (8) in the stream's list, as [`answer`] chooses it.
    pub fn codec(&self) -> Option<crate::g711::Codec> {
        self.payload_types.iter().find_map(|&pt| crate::g711::Codec::from_payload_type(pt))
    }
}

/// Reads the first audio stream; `None` if there is none or it is malformed.
pub fn parse(sdp: &[u8]) -> Option<Media> {
    let text = std::str::from_utf8(sdp).ok()?;
    let mut session_ip: Option<IpAddr> = None;
    let mut media_ip: Option<IpAddr> = None;
    let mut port: Option<u16> = None;
    let mut pts = Vec::new();
    let mut te = None;
    let mut in_audio = false;
    for line in text.lines() {
        let line = line.trim_end();
        if let Some(c) = line.strip_prefix("c=") {
            let ip = c.split_whitespace().nth(2).and_then(|s| s.split('/').next()?.parse().ok());
            if in_audio { media_ip = ip } else if port.is_none() { session_ip = ip }
        } else if let Some(m) = line.strip_prefix("m=") {
            if port.is_some() {
                in_audio = false;
                continue;
            }
            let mut it = m.split_whitespace();
            if it.next() == Some("audio") {
                in_audio = true;
                port = it.next().and_then(|p| p.parse().ok());
                let _proto = it.next();
                pts = it.filter_map(|p| p.parse().ok()).collect();
            }
        } else if in_audio
            && let Some(r) = line.strip_prefix("a=rtpmap:")
                && let Some((pt, enc)) = r.split_once(' ')
                    && enc.to_ascii_lowercase().starts_with("telephone-event/8000") {
                        te = pt.parse().ok();
                    }
    }
    let port = port?;
    let addr = media_ip.or(session_ip).map(|ip| SocketAddr::new(ip, port));
    Some(Media { addr, payload_types: pts, telephone_event: te })
}

/// Answers an offer from `local` with PCMU or PCMA (the first the offer
/// lists) and telephone-event if offered; `None` if no codec is shared.
pub fn answer(offer_sdp: &[u8], local: SocketAddr, session_id: u64) -> Option<String> {
    let m = parse(offer_sdp)?;
    let codec = m.payload_types.iter().copied().find(|pt| *pt == 0 || *pt == 8)?;
    let (ip_ver, ip) = match local.ip() {
        IpAddr::V4(ip) => ("IP4", ip.to_string()),
        IpAddr::V6(ip) => ("IP6", ip.to_string()),
    };
    let name = if codec == 0 { "PCMU" } else { "PCMA" };
    let mut s = format!(
        "v=0\r\no=centralino {session_id} {session_id} IN {ip_ver} {ip}\r\ns=-\r\nc=IN {ip_ver} {ip}\r\nt=0 0\r\n"
    );
    match m.telephone_event {
        Some(te) => s.push_str(&format!(
            "m=audio {} RTP/AVP {codec} {te}\r\na=rtpmap:{codec} {name}/8000\r\na=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-15\r\n",
            local.port()
        )),
        None => s.push_str(&format!("m=audio {} RTP/AVP {codec}\r\na=rtpmap:{codec} {name}/8000\r\n", local.port())),
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    Some(s)
}
