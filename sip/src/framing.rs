//! Transport framing: where one SIP message ends.
//!
//! For UDP a datagram is a message and [`crate::msg::parse`] is all there
//! is. For stream transports (TCP, TLS) this module cuts the byte stream
//! into messages by the blank line and `Content-Length` (RFC 3261 §18.3),
//! mini-redis style: [`check`] says how long the next frame is or that it is
//! [`FrameError::Incomplete`]; a partial frame is never an error. The
//! [`StreamDecoder`] keeps the bytes of one connection between reads. A frame
//! that can never become valid (oversized, lying length) is
//! [`FrameError::Invalid`], and the driver then closes *that* connection only.
//!
//! It knows nothing of sockets: the driver pushes bytes in.

use crate::msg::{self, Message, ParseError, MAX_MESSAGE};
use bytes::BytesMut;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// More bytes are needed; not an error of the peer.
    #[error("incomplete frame")]
    Incomplete,
    #[error("invalid frame: {0}")]
    Invalid(ParseError),
}

/// Length of the leading keep-alive CRLFs (RFC 5626 §3.5.1) in `buf`.
fn keepalive_len(buf: &[u8]) -> usize {
    let mut n = 0;
    while buf[n..].starts_with(b"\r\n") {
        n += 2;
    }
    n
}

/// The length of the first complete frame in `buf` (after any keep-alive
/// CRLFs, which the length includes), without parsing it.
pub fn check(buf: &[u8]) -> Result<usize, FrameError> {
    let skip = keepalive_len(buf);
    let rest = &buf[skip..];
    let Some((head, after)) = msg::split_head(rest) else {
        if rest.len() > MAX_MESSAGE {
            return Err(FrameError::Invalid(ParseError::TooLarge(rest.len())));
        }
        return Err(FrameError::Incomplete);
    };
    let head_norm = msg::normalize_head(head).map_err(FrameError::Invalid)?;
    let head_len = head.len() + 4;
    match msg::body_len(&head_norm, after.len(), false).map_err(FrameError::Invalid)? {
        Some(n) if head_len + n > MAX_MESSAGE => Err(FrameError::Invalid(ParseError::TooLarge(head_len + n))),
        Some(n) => Ok(skip + head_len + n),
        None => Err(FrameError::Incomplete),
    }
}

/// What a stream decoder yields.
#[derive(Debug)]
pub enum Frame {
    /// A well-framed message that parsed.
    Message(Box<Message>),
    /// A well-framed message that did not parse: the raw bytes, so the
    /// caller can answer 400; the stream itself stays in sync.
    Malformed(Vec<u8>, ParseError),
}

/// Buffers one stream connection and yields complete frames.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    buf: BytesMut,
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends bytes read from the connection.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }
    /// Bytes held that are not yet a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
    /// The next frame's raw bytes (keep-alive CRLFs before it dropped),
    /// for a caller that parses itself, like the endpoint does;
    /// `Err(Incomplete)` if more bytes are needed, `Err(Invalid)` if the
    /// connection must be closed.
    pub fn next_raw(&mut self) -> Result<bytes::Bytes, FrameError> {
        // Keep-alives are consumed at once, so a peer sending nothing but
        // CRLFs cannot grow the buffer.
        let skip = keepalive_len(&self.buf);
        let _ = self.buf.split_to(skip);
        let len = check(&self.buf)?;
        Ok(self.buf.split_to(len).freeze())
    }
    /// The next frame, `Err(Incomplete)` if more bytes are needed, or
    /// `Err(Invalid)` if the connection must be closed.
    pub fn next_frame(&mut self) -> Result<Frame, FrameError> {
        let len = check(&self.buf)?;
        let skip = keepalive_len(&self.buf);
        let frame = self.buf.split_to(len);
        let raw = &frame[skip..];
        let out = match msg::parse(raw) {
            Ok(m) => Frame::Message(Box::new(m)),
            Err(e) => Frame::Malformed(raw.to_vec(), e),
        };
        Ok(out)
    }
}
