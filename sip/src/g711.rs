//! G.711 µ-law and A-law (ITU-T G.711) sample conversion, the only codecs
//! the media plane speaks. Pure functions; used by prompts (WAV → payload),
//! recordings (payload → 16-bit PCM) and transcoding between a PCMU leg
//! and a PCMA leg, which is a byte-for-byte table lookup.

/// The two G.711 laws, named by their RTP payload type (RFC 3551).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// µ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl Codec {
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }
    pub fn from_payload_type(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }
    /// The byte a silent sample encodes to.
    pub fn silence(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }
    pub fn encode(self, s: i16) -> u8 {
        match self {
            Codec::Pcmu => ulaw_encode(s),
            Codec::Pcma => alaw_encode(s),
        }
    }
    pub fn decode(self, b: u8) -> i16 {
        match self {
            Codec::Pcmu => ulaw_decode(b),
            Codec::Pcma => alaw_decode(b),
        }
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// 16-bit linear → µ-law (the classic Sun reference algorithm).
pub fn ulaw_encode(sample: i16) -> u8 {
    let mut s = i32::from(sample);
    let sign = if s < 0 {
        s = -s;
        0x80
    } else {
        0
    };
    s = s.min(ULAW_CLIP) + ULAW_BIAS;
    let mut exp = 7;
    let mut mask = 0x4000;
    while exp > 0 && s & mask == 0 {
        exp -= 1;
        mask >>= 1;
    }
    let mantissa = (s >> (exp + 3)) & 0x0F;
    !((sign | (exp << 4) | mantissa) as u8)
}

/// µ-law → 16-bit linear.
pub fn ulaw_decode(b: u8) -> i16 {
    let u = !b;
    let exp = i32::from((u >> 4) & 7);
    let mant = i32::from(u & 0x0F);
    let s = (((mant << 3) + ULAW_BIAS) << exp) - ULAW_BIAS;
    (if u & 0x80 != 0 { -s } else { s }) as i16
}

/// 16-bit linear → A-law.
pub fn alaw_encode(sample: i16) -> u8 {
    let mut v = i32::from(sample) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let seg = SEG_END.iter().position(|&e| v <= e).unwrap_or(8) as i32;
    if seg >= 8 {
        return (0x7F ^ mask) as u8;
    }
    let mut a = seg << 4;
    a |= if seg < 2 { (v >> 1) & 0x0F } else { (v >> seg) & 0x0F };
    (a ^ mask) as u8
}

/// A-law → 16-bit linear.
pub fn alaw_decode(b: u8) -> i16 {
    let a = i32::from(b ^ 0x55);
    let mut t = (a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => t = (t + 0x108) << (seg - 1),
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

/// Rewrites `payload` from one law to the other in place (identity if equal).
pub fn transcode(from: Codec, to: Codec, payload: &mut [u8]) {
    if from == to {
        return;
    }
    for b in payload {
        *b = to.encode(from.decode(*b));
    }
}
