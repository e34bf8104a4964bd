//! Message intake: the parse path a datagram takes (`msg::parse`, the 400
//! builder for what fails) and the stream path (`framing`), on arbitrary
//! bytes. Properties: no panic; a message that parses serialises to bytes
//! that parse again to the same key fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip::framing::{FrameError, StreamDecoder};
use sip::msg;

fuzz_target!(|data: &[u8]| {
    match msg::parse(data) {
        Ok(m) => {
            let again = msg::parse(&m.to_bytes()).expect("what we serialise parses");
            assert_eq!(again.call_id, m.call_id);
            assert_eq!(again.cseq, m.cseq);
            assert_eq!(again.via.branch, m.via.branch);
            assert_eq!(again.body(), m.body());
        }
        Err(e) => {
            if let Some(resp) = msg::bad_request_for(data, &e) {
                // Our 400 echoes the peer's Via/From/To/Call-ID/CSeq, which
                // may be as broken as the request (that is why it gets a
                // 400), but never injects: one head, only those headers,
                // no stray CR or LF.
                let text = std::str::from_utf8(&resp).expect("our 400 is UTF-8");
                let head = text.strip_suffix("\r\n\r\n").expect("one head, no body");
                let mut lines = head.split("\r\n");
                assert_eq!(lines.next(), Some("SIP/2.0 400 Bad Request"));
                for l in lines {
                    assert!(!l.contains('\r') && !l.contains('\n'), "{l:?}");
                    let name = l.split(':').next().unwrap_or("");
                    assert!(["Via", "From", "To", "Call-ID", "CSeq", "Warning", "Content-Length"].contains(&name), "{l:?}");
                }
            }
        }
    }
    // The same bytes as a TCP stream, cut in two at a point the input picks.
    let cut = data.first().map(|b| *b as usize % (data.len() + 1)).unwrap_or(0);
    let mut dec = StreamDecoder::new();
    for part in [&data[..cut], &data[cut..]] {
        dec.push(part);
        loop {
            match dec.next_raw() {
                Ok(frame) => {
                    let _ = msg::parse(&frame);
                }
                Err(FrameError::Incomplete) => break,
                Err(FrameError::Invalid(_)) => return,
            }
        }
    }
});
