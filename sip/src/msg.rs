//! SIP messages: parsing and serialising on `rsip` 0.4, with the thin layer
//! of our own that closes its gaps.
//!
//! `rsip` owns the types (`Method`, `StatusCode`, `Uri`, `Header`) and the
//! grammar of the start line and header names. Before its tokenizer sees a
//! message, [`parse`] normalises the head: folded header lines are unfolded
//! (rsip rejects the whole message otherwise), compact header names
//! (`v: f: t: i: l: m: c: k: s:` and `e: o: r: u: x:`) are expanded (rsip
//! would file them under `Header::Other`), comma-joined `Via` values are split
//! into one header each, and the body is cut to `Content-Length`. Then the
//! few fields the transaction and dialog layers key on (top `Via` branch,
//! tags, `Call-ID`, `CSeq`) are extracted once into [`Message`], so no layer
//! above has to deal with a half-parsed message.
//!
//! Serialising goes through [`Message::to_bytes`], which writes the start
//! line and headers with rsip's `Display` and appends the body as bytes
//! (rsip renders bodies lossily as UTF-8) with a freshly computed
//! `Content-Length`.
//!
//! Nothing here panics on input: every failure is a [`ParseError`], and
//! [`bad_request_for`] builds a 400 from the raw bytes where enough of the
//! request survives to address one.

use rsip::{Header, Method, StatusCode};
use std::fmt;

/// The largest message we accept on any transport. RFC 3261 has no limit;
/// real INVITEs are a few KiB, and bounding memory per message is what keeps
/// a flood of oversized garbage from costing more than its bytes.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// The most header lines one message may carry.
pub const MAX_HEADERS: usize = 256;
/// The longest single (unfolded) header line.
pub const MAX_HEADER_LINE: usize = 8 * 1024;

/// Why a message could not be parsed. Callers branch on it only to decide
/// between answering 400 and dropping; the text goes to logs.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ParseError {
    #[error("message of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("message has no end of headers")]
    Truncated,
    #[error("message head is not UTF-8")]
    NotUtf8,
    #[error("bad start line")]
    StartLine,
    #[error("bad header line: {0}")]
    HeaderLine(String),
    #[error("too many headers")]
    TooManyHeaders,
    #[error("bad or inconsistent Content-Length")]
    ContentLength,
    #[error("missing or bad mandatory header {0}")]
    Mandatory(&'static str),
    #[error("rsip rejected the message: {0}")]
    Rsip(String),
}

/// A SIP Call-ID. Private field: it is only made by parsing a message or by
/// generating a fresh one, so it never carries CR/LF into a header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(String);

impl CallId {
    /// Accepts a Call-ID value from the wire or a generator; refuses empty
    /// values and anything with whitespace or control characters.
    pub fn parse(s: &str) -> Option<CallId> {
        let s = s.trim();
        if s.is_empty() || s.bytes().any(|b| b <= b' ' || b == 0x7f) {
            None
        } else {
            Some(CallId(s.to_owned()))
        }
    }
    /// For identifiers we generate from hex tokens, which are valid by construction.
    pub(crate) fn from_token(s: String) -> CallId {
        CallId(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The top `Via` of a message, as the transaction layer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopVia {
    /// The transport token (`UDP`, `TCP`, ...), upper-cased.
    pub transport: String,
    /// `host[:port]` as written.
    pub sent_by: String,
    pub branch: Option<String>,
    /// Whether the sender asked for `rport` (RFC 3581).
    pub rport: bool,
}

/// A parsed SIP message plus the fields every layer keys on.
#[derive(Debug, Clone)]
pub struct Message {
    pub sip: rsip::SipMessage,
    pub call_id: CallId,
    pub cseq: u32,
    pub cseq_method: Method,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub via: TopVia,
}

/// Expands a compact header name (RFC 3261 §7.3.3 and the event/refer
/// extensions) to its long form; other names pass through.
pub fn expand_compact(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'v' => "Via",
        b'f' => "From",
        b't' => "To",
        b'i' => "Call-ID",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'c' => "Content-Type",
        b'k' => "Supported",
        b's' => "Subject",
        b'e' => "Content-Encoding",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        _ => name,
    }
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Splits `buf` at the blank line ending the head. Returns (head, rest) with
/// the CRLFCRLF consumed, or `None` if the head is not complete yet.
pub fn split_head(buf: &[u8]) -> Option<(&[u8], &[u8])> {
    let pos = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&buf[..pos], &buf[pos + 4..]))
}

/// One normalised head: the start line and `(name, value)` pairs with long
/// names, unfolded, comma-joined Vias split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of a header, by case-insensitive long name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Unfolds and expands a raw head (without the final CRLFCRLF).
pub fn normalize_head(raw: &[u8]) -> Result<Head, ParseError> {
    let text = std::str::from_utf8(raw).map_err(|_| ParseError::NotUtf8)?;
    let mut lines = text.split("\r\n");
    // RFC 3261 §7.5: implementations should ignore CRLFs before the start line.
    let start = loop {
        match lines.next() {
            Some("") => continue,
            Some(l) => break l,
            None => return Err(ParseError::StartLine),
        }
    };
    if !start_line_ok(start) {
        return Err(ParseError::StartLine);
    }
    let mut joined: Vec<String> = Vec::new();
    for line in lines {
        // A bare CR or LF or NUL inside a line is how header injection
        // arrives; a message carrying one is refused whole.
        if line.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(ParseError::HeaderLine("control character".into()));
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            let Some(prev) = joined.last_mut() else {
                return Err(ParseError::HeaderLine("continuation before first header".into()));
            };
            prev.push(' ');
            prev.push_str(line.trim_start());
            if prev.len() > MAX_HEADER_LINE {
                return Err(ParseError::HeaderLine("line too long".into()));
            }
        } else {
            if line.len() > MAX_HEADER_LINE {
                return Err(ParseError::HeaderLine("line too long".into()));
            }
            joined.push(line.to_owned());
            if joined.len() > MAX_HEADERS {
                return Err(ParseError::TooManyHeaders);
            }
        }
    }
    let mut headers = Vec::with_capacity(joined.len());
    for line in joined {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError::HeaderLine(truncate(&line)));
        };
        let name = name.trim_end();
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(ParseError::HeaderLine(truncate(&line)));
        }
        let name = expand_compact(name).to_owned();
        let value = value.trim().to_owned();
        if name.eq_ignore_ascii_case("Via") {
            for part in split_commas(&value) {
                headers.push(("Via".to_owned(), part.to_owned()));
            }
        } else {
            headers.push((name, value));
        }
        if headers.len() > MAX_HEADERS {
            return Err(ParseError::TooManyHeaders);
        }
    }
    Ok(Head { start: start.to_owned(), headers })
}

/// `Method SP URI SP SIP/2.0` or `SIP/2.0 SP 3DIGIT SP reason`.
fn start_line_ok(start: &str) -> bool {
    if start.bytes().any(|b| b < b' ' || b == 0x7f) {
        return false;
    }
    let mut parts = start.splitn(3, ' ');
    let (Some(a), Some(b), Some(c)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    if a == "SIP/2.0" {
        b.len() == 3 && b.bytes().all(|x| x.is_ascii_digit())
    } else {
        !a.is_empty() && a.bytes().all(is_token_char) && !b.is_empty() && c == "SIP/2.0"
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Splits a header value at commas outside quotes and angle brackets.
pub fn split_commas(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut start) = (false, false, 0);
    let bytes = v.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quoted => i += 1,
            b'"' => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(v[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// The `;name=value` parameters of a header value (for name-addr headers
/// the ones after the closing `>`, otherwise the ones after the first `;`).
pub fn header_params(v: &str) -> Vec<(String, Option<String>)> {
    let tail = match v.rfind('>') {
        Some(i) => &v[i + 1..],
        None => match v.find(';') {
            Some(i) => &v[i..],
            None => "",
        },
    };
    tail.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, val)) => (n.trim().to_ascii_lowercase(), Some(val.trim().trim_matches('"').to_owned())),
            None => (p.to_ascii_lowercase(), None),
        })
        .collect()
}

/// One parameter of a header value, by case-insensitive name.
pub fn header_param(v: &str, name: &str) -> Option<Option<String>> {
    header_params(v).into_iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// The URI inside a name-addr (`"x" <sip:a@b>;tag=1`) or addr-spec value.
pub fn header_uri(v: &str) -> &str {
    if let (Some(a), Some(b)) = (v.find('<'), v.find('>'))
        && a < b {
            return v[a + 1..b].trim();
        }
    v.split(';').next().unwrap_or("").trim()
}

/// The user part of a SIP URI (`sip:alice@host` → `alice`).
pub fn uri_user(uri: &str) -> Option<&str> {
    let rest = uri.split_once(':')?.1;
    let (user, _) = rest.split_once('@')?;
    Some(user.split(';').next().unwrap_or(user))
}

/// The `host[:port]` of a SIP URI, without parameters or user.
pub fn uri_hostport(uri: &str) -> &str {
    let rest = uri.split_once(':').map(|x| x.1).unwrap_or(uri);
    let rest = rest.rsplit_once('@').map(|x| x.1).unwrap_or(rest);
    rest.split([';', '?', '>']).next().unwrap_or(rest)
}

fn parse_top_via(v: &str) -> Option<TopVia> {
    let (proto, rest) = v.trim().split_once(char::is_whitespace)?;
    let mut parts = proto.split('/');
    let (name, version, transport) = (parts.next()?, parts.next()?, parts.next()?);
    if !name.trim().eq_ignore_ascii_case("SIP") || version.trim() != "2.0" {
        return None;
    }
    let sent_by = rest.split(';').next()?.trim().to_owned();
    if sent_by.is_empty() {
        return None;
    }
    let params = header_params(rest);
    let branch = params.iter().find(|(n, _)| n == "branch").and_then(|(_, v)| v.clone());
    let rport = params.iter().any(|(n, _)| n == "rport");
    Some(TopVia { transport: transport.trim().to_ascii_uppercase(), sent_by, branch, rport })
}

fn parse_cseq(v: &str) -> Option<(u32, Method)> {
    let mut it = v.split_whitespace();
    let n: u32 = it.next()?.parse().ok()?;
    let m = method_from_str(it.next()?)?;
    if it.next().is_some() || n >= 1 << 31 {
        return None;
    }
    Some((n, m))
}

/// rsip's `Method` from its token (case-sensitive, as RFC 3261 says).
pub fn method_from_str(s: &str) -> Option<Method> {
    Method::all().into_iter().find(|m| m.to_string() == s)
}

/// Where the body of a message whose head is `head` ends, given the bytes
/// that follow the head. `Ok(None)` means more bytes are needed.
pub fn body_len(head: &Head, available: usize, datagram: bool) -> Result<Option<usize>, ParseError> {
    match head.get("Content-Length") {
        Some(v) => {
            let n: usize = v.trim().parse().map_err(|_| ParseError::ContentLength)?;
            if n > MAX_MESSAGE {
                return Err(ParseError::ContentLength);
            }
            if n > available {
                // On a datagram nothing more will come: the length lies.
                if datagram { Err(ParseError::ContentLength) } else { Ok(None) }
            } else {
                Ok(Some(n))
            }
        }
        // RFC 3261 §18.3: on a stream Content-Length is mandatory; on UDP the
        // body runs to the end of the datagram.
        None if datagram => Ok(Some(available)),
        None => Err(ParseError::ContentLength),
    }
}

/// Parses one complete message (a datagram, or a frame cut by
/// [`crate::framing`]). Bytes after `Content-Length` are discarded, as RFC
/// 3261 §18.3 asks for datagrams.
pub fn parse(buf: &[u8]) -> Result<Message, ParseError> {
    if buf.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge(buf.len()));
    }
    let (raw_head, rest) = split_head(buf).ok_or(ParseError::Truncated)?;
    let head = normalize_head(raw_head)?;
    let n = body_len(&head, rest.len(), true)?.ok_or(ParseError::ContentLength)?;
    parse_normalized(&head, &rest[..n])
}

/// Parses an already normalised head and its exact body.
pub fn parse_normalized(head: &Head, body: &[u8]) -> Result<Message, ParseError> {
    let mut text = String::with_capacity(512);
    text.push_str(&head.start);
    text.push_str("\r\n");
    for (n, v) in &head.headers {
        // Content-Length is re-derived from the body we actually keep.
        if n.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        text.push_str(n);
        text.push_str(": ");
        text.push_str(v);
        text.push_str("\r\n");
    }
    text.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    let sip = rsip::SipMessage::try_from(bytes.as_slice()).map_err(|e| ParseError::Rsip(truncate(&e.to_string())))?;
    // rsip stores the body it was given; make sure it is exactly ours.
    let mut sip = sip;
    *sip.body_mut() = body.to_vec();

    let via = head.get("Via").and_then(parse_top_via).ok_or(ParseError::Mandatory("Via"))?;
    let call_id = head.get("Call-ID").and_then(CallId::parse).ok_or(ParseError::Mandatory("Call-ID"))?;
    let (cseq, cseq_method) = head.get("CSeq").and_then(parse_cseq).ok_or(ParseError::Mandatory("CSeq"))?;
    let from = head.get("From").ok_or(ParseError::Mandatory("From"))?;
    let to = head.get("To").ok_or(ParseError::Mandatory("To"))?;
    if let rsip::SipMessage::Response(r) = &sip {
        // rsip reads "090" or "1000" as a number; the grammar is three
        // digits 100-699 (§7.2), and anything else would not survive our
        // own serialising (found by the msg_parse fuzz target).
        let code = r.status_code.code();
        let digits = head.start.split(' ').nth(1).unwrap_or("");
        if !(100..=699).contains(&code) || digits.len() != 3 {
            return Err(ParseError::StartLine);
        }
    }
    if let rsip::SipMessage::Request(r) = &sip {
        // The CSeq method must match the request method (§8.1.1.5), except
        // that nothing else is allowed to disagree either.
        if r.method != cseq_method {
            return Err(ParseError::Mandatory("CSeq"));
        }
    }
    Ok(Message {
        from_tag: header_param(from, "tag").flatten(),
        to_tag: header_param(to, "tag").flatten(),
        sip,
        call_id,
        cseq,
        cseq_method,
        via,
    })
}

impl Message {
    pub fn is_request(&self) -> bool {
        self.sip.is_request()
    }
    /// The request method, or `None` for a response.
    pub fn method(&self) -> Option<Method> {
        match &self.sip {
            rsip::SipMessage::Request(r) => Some(r.method),
            rsip::SipMessage::Response(_) => None,
        }
    }
    /// The status code, or `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match &self.sip {
            rsip::SipMessage::Response(r) => Some(r.status_code.code()),
            rsip::SipMessage::Request(_) => None,
        }
    }
    pub fn headers(&self) -> &rsip::Headers {
        match &self.sip {
            rsip::SipMessage::Request(r) => &r.headers,
            rsip::SipMessage::Response(r) => &r.headers,
        }
    }
    pub fn body(&self) -> &[u8] {
        self.sip.body()
    }
    /// Every value of a header by long name, case-insensitively, as written.
    pub fn header_values(&self, name: &str) -> Vec<String> {
        self.headers()
            .iter()
            .filter_map(|h| {
                let (n, v) = header_name_value(h);
                n.eq_ignore_ascii_case(name).then_some(v)
            })
            .collect()
    }
    /// The first value of a header by long name.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_values(name).into_iter().next()
    }
    /// The request URI as written, for requests.
    pub fn request_uri(&self) -> Option<String> {
        match &self.sip {
            rsip::SipMessage::Request(r) => Some(r.uri.to_string()),
            rsip::SipMessage::Response(_) => None,
        }
    }
    /// Serialises with rsip's header rendering and our own body handling.
    pub fn to_bytes(&self) -> Vec<u8> {
        to_bytes(&self.sip)
    }
}

/// Splits an rsip header into its name and value via its `Display` form,
/// which is `Name: value` for every variant.
pub fn header_name_value(h: &Header) -> (String, String) {
    let s = h.to_string();
    match s.split_once(':') {
        Some((n, v)) => (n.trim().to_owned(), v.trim().to_owned()),
        None => (s, String::new()),
    }
}

/// Serialises any rsip message, writing the body as raw bytes and a correct
/// `Content-Length` (any existing one is replaced).
pub fn to_bytes(sip: &rsip::SipMessage) -> Vec<u8> {
    let (start, headers, body) = match sip {
        rsip::SipMessage::Request(r) => (format!("{} {} {}", r.method, r.uri, r.version), &r.headers, &r.body),
        rsip::SipMessage::Response(r) => (format!("{} {}", r.version, status_line(&r.status_code)), &r.headers, &r.body),
    };
    let mut out = String::with_capacity(512);
    out.push_str(&start);
    out.push_str("\r\n");
    for h in headers.iter() {
        if matches!(h, Header::ContentLength(_)) {
            continue;
        }
        out.push_str(&h.to_string());
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn status_line(code: &StatusCode) -> String {
    // rsip's Display for StatusCode writes "code reason".
    code.to_string()
}

/// Removes CR, LF and NUL from text we are about to put into a header, so
/// values that come from callers (display names, numbers) cannot inject
/// headers of their own.
pub fn sanitize(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).collect()
}

/// Builds a 400 Bad Request for raw bytes that failed to parse, if enough of
/// a request survives: a request start line and the headers a response must
/// copy (`Via`, `From`, `To`, `Call-ID`, `CSeq`). Responses and hopeless
/// garbage get `None`, which means drop.
pub fn bad_request_for(buf: &[u8], reason: &ParseError) -> Option<Vec<u8>> {
    if buf.len() > MAX_MESSAGE {
        return None;
    }
    let head_end = split_head(buf).map(|(h, _)| h.len()).unwrap_or(buf.len());
    let text = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = text.split("\r\n").skip_while(|l| l.is_empty());
    let start = lines.next()?;
    let mut words = start.split(' ');
    let method = words.next()?;
    // Never answer a response or an ACK (§17.2.1: ACK gets no response).
    if method.starts_with("SIP/") || method == "ACK" || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return None;
    }
    if words.next().is_none() || words.next() != Some("SIP/2.0") {
        return None;
    }
    let mut copied: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with(' ') || line.starts_with('\t') {
            continue;
        }
        let Some((n, v)) = line.split_once(':') else { continue };
        let n = expand_compact(n.trim());
        let keep = ["Via", "From", "To", "Call-ID", "CSeq"].iter().find(|k| k.eq_ignore_ascii_case(n));
        if let Some(k) = keep {
            let v = sanitize(v.trim());
            if v.len() > MAX_HEADER_LINE {
                return None;
            }
            copied.push(((*k).to_owned(), v));
        }
    }
    for k in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if !copied.iter().any(|(n, _)| n == k) {
            return None;
        }
    }
    let mut out = String::from("SIP/2.0 400 Bad Request\r\n");
    for (n, v) in copied {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    let why: String = reason.to_string().chars().filter(|c| c.is_ascii_graphic() || *c == ' ').take(80).collect();
    out.push_str(&format!("Warning: 399 centralino \"{}\"\r\nContent-Length: 0\r\n\r\n", why.replace('"', "'")));
    Some(out.into_bytes())
}
