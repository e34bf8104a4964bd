//! Stream framing fed split at every byte: a partial frame is `Incomplete`,
//! never an error, and the same messages come out however the bytes arrive.

use sip::framing::{Frame, FrameError, StreamDecoder, check};

const A: &str = "OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK1\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:a@127.0.0.1>\r\nCall-ID: f1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 5\r\n\r\nhello";
const B: &str = "\r\n\r\nMESSAGE sip:a@127.0.0.1 SIP/2.0\r\nv: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK2\r\nf: <sip:x@127.0.0.1>;tag=1\r\nt: <sip:a@127.0.0.1>\r\ni: f2\r\nCSeq: 2 MESSAGE\r\nl: 2\r\n\r\nhi";

fn frames(dec: &mut StreamDecoder) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match dec.next_frame() {
            Ok(Frame::Message(m)) => out.push(format!("{}:{}", m.call_id, String::from_utf8_lossy(m.body()))),
            Ok(Frame::Malformed(_, e)) => out.push(format!("bad:{e}")),
            Err(FrameError::Incomplete) => return out,
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn split_at_every_byte() {
    let stream = format!("{A}{B}{A}");
    for cut in 0..=stream.len() {
        let mut dec = StreamDecoder::new();
        let mut got = Vec::new();
        dec.push(&stream.as_bytes()[..cut]);
        got.extend(frames(&mut dec));
        dec.push(&stream.as_bytes()[cut..]);
        got.extend(frames(&mut dec));
        assert_eq!(got, vec!["f1:hello", "f2:hi", "f1:hello"], "cut at {cut}");
        assert_eq!(dec.buffered(), 0);
    }
    // And byte by byte.
    let mut dec = StreamDecoder::new();
    let mut got = Vec::new();
    for b in stream.as_bytes() {
        dec.push(&[*b]);
        got.extend(frames(&mut dec));
    }
    assert_eq!(got.len(), 3);
}

#[test]
fn invalid_streams() {
    assert_eq!(check(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n"), Err(FrameError::Incomplete));
    // Content-Length is mandatory on streams.
    assert!(matches!(check(A.replace("Content-Length: 5\r\n", "").as_bytes()), Err(FrameError::Invalid(_))));
    // A head that never ends is cut off at the size limit.
    let endless = format!("OPTIONS sip:a SIP/2.0\r\n{}", "X-A: b\r\n".repeat(10_000));
    assert!(matches!(check(endless.as_bytes()), Err(FrameError::Invalid(_))));
    // A well-framed but broken message keeps the stream in sync.
    let mut dec = StreamDecoder::new();
    dec.push(A.replace("CSeq: 1 OPTIONS", "CSeq: x").as_bytes());
    dec.push(A.as_bytes());
    let got = frames(&mut dec);
    assert!(got[0].starts_with("bad:") && got[1] == "f1:hello", "{got:?}");
}

#[test]
fn raw_frames_split_at_every_byte_and_keepalives_do_not_pile_up() {
    let stream = format!("{A}{B}{A}");
    for cut in 0..=stream.len() {
        let mut dec = StreamDecoder::new();
        let mut got = Vec::new();
        for part in [&stream.as_bytes()[..cut], &stream.as_bytes()[cut..]] {
            dec.push(part);
            while let Ok(raw) = dec.next_raw() {
                got.push(sip::msg::parse(&raw).unwrap().call_id.to_string());
            }
        }
        assert_eq!(got, ["f1", "f2", "f1"], "cut at {cut}");
    }
    let mut dec = StreamDecoder::new();
    for _ in 0..10_000 {
        dec.push(b"\r\n\r\n");
        assert_eq!(dec.next_raw().unwrap_err(), FrameError::Incomplete);
    }
    assert!(dec.buffered() <= 4, "{}", dec.buffered());
}
