//! Open and click tracking, unsubscribe links and VERP return paths, with
//! tokens that need no database read to check.
//!
//! A [`Token`] carries the outbox row, message and party it belongs to, the
//! time the mail was rendered and, for a click, the link's index and its
//! URL, followed by a 128-bit truncated HMAC-SHA256 tag over all of it under
//! the installation's secret; the whole is base64url. So the tracking
//! endpoints verify a token in memory, a click redirects to the URL that was
//! signed into that very message (never an open redirect), and nobody can
//! forge or enumerate tokens. This is Keila's scheme (the only one of
//! listmonk, Postal, Keila and Mautic that signs its links); the others use
//! random ids that must be looked up.
//!
//! [`rewrite`] puts the tokens into a rendered mail at send time;
//! [`machine_open`] and [`machine_click`] judge whether a hit came from a
//! person or from a proxy or scanner; the durable, batched event log behind
//! the endpoints is [`crate::eventlog`].
//!
//! Pure: no I/O, no clock (times are passed in).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use regex::Regex;
use std::net::IpAddr;
use std::sync::LazyLock;

type HmacSha256 = hmac::Hmac<sha256::Sha256>;

/// Bytes of HMAC tag kept: 128 bits, far beyond guessing.
const TAG: usize = 16;
const VERSION: u8 = 1;
/// Tokens older than this are refused (a mail from last year's campaign
/// being "opened" by a replaying bot is not an open).
pub const MAX_AGE_MS: i64 = 400 * 24 * 3600 * 1000;

/// What a token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Open,
    /// 1-based link index and the URL it redirects to.
    Click { index: u32, url: String },
    Unsubscribe,
}

/// The decoded content of a valid token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub outbox_id: i64,
    pub message_id: i64,
    pub party_id: i64,
    /// When the mail was rendered for sending (ms).
    pub sent_at: i64,
    pub kind: Kind,
}

/// Signs and verifies tokens under one secret. Cheap to clone; the keyed
/// HMAC state is computed once.
#[derive(Clone)]
pub struct Signer {
    mac: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(…)")
    }
}

fn put_varint(out: &mut Vec<u8>, v: u64) {
    let mut v = v;
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

impl Signer {
    pub fn new(secret: &[u8]) -> Signer {
        // HMAC takes keys of any length; an empty key still works (and is
        // refused at configuration time).
        let mac = <HmacSha256 as KeyInit>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        Signer { mac }
    }

    fn tag(&self, domain: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut m = self.mac.clone();
        m.update(domain);
        m.update(payload);
        m.finalize().into_bytes()[..TAG].to_vec()
    }

    /// Encodes and signs a token.
    pub fn sign(&self, t: &Token) -> String {
        let mut p = Vec::with_capacity(48);
        p.push(VERSION);
        p.push(match t.kind {
            Kind::Open => b'o',
            Kind::Click { .. } => b'c',
            Kind::Unsubscribe => b'u',
        });
        for v in [t.outbox_id, t.message_id, t.party_id, t.sent_at] {
            put_varint(&mut p, v.max(0) as u64);
        }
        if let Kind::Click { index, url } = &t.kind {
            put_varint(&mut p, u64::from(*index));
            p.extend_from_slice(url.as_bytes());
        }
        let tag = self.tag(b"centralino-track\0", &p);
        p.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(p)
    }

    /// Verifies and decodes a token; `None` for anything forged, truncated,
    /// padded, expired or malformed.
    pub fn verify(&self, token: &str, now: i64) -> Option<Token> {
        if token.len() > 4096 {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(token).ok()?;
        if raw.len() < 2 + TAG {
            return None;
        }
        let (p, tag) = raw.split_at(raw.len() - TAG);
        let mut m = self.mac.clone();
        m.update(b"centralino-track\0");
        m.update(p);
        m.verify_truncated_left(tag).ok()?;
        if p[0] != VERSION {
            return None;
        }
        let mut pos = 2;
        let mut next = || get_varint(p, &mut pos).and_then(|v| i64::try_from(v).ok());
        let (outbox_id, message_id, party_id, sent_at) = (next()?, next()?, next()?, next()?);
        if now - sent_at > MAX_AGE_MS {
            return None;
        }
        let kind = match p[1] {
            b'o' if pos == p.len() => Kind::Open,
            b'u' if pos == p.len() => Kind::Unsubscribe,
            b'c' => {
                let index = u32::try_from(get_varint(p, &mut pos)?).ok()?;
                let url = std::str::from_utf8(&p[pos..]).ok()?.to_string();
                Kind::Click { index, url }
            }
            _ => return None,
        };
        Some(Token { outbox_id, message_id, party_id, sent_at, kind })
    }

    /// The VERP token of an outbox row for `bounces+TOKEN@domain`: lower-case
    /// letters and digits only, because MTAs and `bounce.rs` lower-case
    /// addresses and Dovecot turns the detail into a folder name.
    pub fn verp(&self, outbox_id: i64) -> String {
        let tag = self.tag(b"centralino-verp\0", outbox_id.to_string().as_bytes());
        format!("o{outbox_id}k{}", hex::encode(&tag[..8]))
    }

    /// The outbox row a VERP token names, if the token is ours.
    pub fn parse_verp(&self, token: &str) -> Option<i64> {
        let rest = token.trim().to_ascii_lowercase();
        let rest = rest.strip_prefix('o')?;
        let (id, tag) = rest.split_once('k')?;
        let id: i64 = id.parse().ok()?;
        let want = self.tag(b"centralino-verp\0", id.to_string().as_bytes());
        let got = hex::decode(tag).ok()?;
        // Constant-time enough: both are 8 bytes and compared in full.
        (got.len() == 8 && got.iter().zip(&want[..8]).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0).then_some(id)
    }
}

/// What [`rewrite`] needs to know about the recipient's row.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    pub outbox_id: i64,
    pub message_id: i64,
    pub party_id: i64,
    pub sent_at: i64,
}

impl Ids {
    fn token(&self, kind: Kind) -> Token {
        Token { outbox_id: self.outbox_id, message_id: self.message_id, party_id: self.party_id, sent_at: self.sent_at, kind }
    }
}

/// The tracked form of one rendered mail.
#[derive(Debug, Clone, PartialEq)]
pub struct Tracked {
    pub text: String,
    pub html: Option<String>,
    /// The distinct links, in order: index `i + 1` is `links[i]`.
    pub links: Vec<String>,
    pub unsubscribe_url: String,
}

static HREF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)(<a\b[^>]*?\bhref\s*=\s*)(["'])(https?://[^"'\s<>]+)(["'])"#).unwrap_or_else(|_| unreachable!("constant regex"))
});
static BARE_URL: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"https?://[^\s<>"')\]]+"#).unwrap_or_else(|_| unreachable!("constant regex")));

/// The unsubscribe URL of a row (also used for `List-Unsubscribe`).
pub fn unsubscribe_url(signer: &Signer, base: &str, ids: Ids) -> String {
    format!("{}/u/{}", base.trim_end_matches('/'), signer.sign(&ids.token(Kind::Unsubscribe)))
}

/// Rewrites every http(s) link of the text and HTML parts to a signed click
/// URL under `base` (the same URL gets the same index in both parts), adds
/// the open pixel to the HTML, and leaves links under `base` itself (the
/// unsubscribe link) alone.
pub fn rewrite(signer: &Signer, base: &str, ids: Ids, text: &str, html: Option<&str>) -> Tracked {
    let base = base.trim_end_matches('/');
    let mut links: Vec<String> = Vec::new();
    let mut click = |url: &str| -> Option<String> {
        if url.starts_with(base) {
            return None;
        }
        let index = match links.iter().position(|l| l == url) {
            Some(i) => i + 1,
            None => {
                links.push(url.to_string());
                links.len()
            }
        };
        let t = ids.token(Kind::Click { index: index as u32, url: url.to_string() });
        Some(format!("{base}/t/c/{}", signer.sign(&t)))
    };
    let html = html.map(|h| {
        let mut out = HREF
            .replace_all(h, |c: &regex::Captures<'_>| {
                // The attribute value is HTML: `&amp;` in it is `&` in the URL.
                let url = c[3].replace("&amp;", "&");
                match click(&url) {
                    Some(u) => format!("{}{}{}{}", &c[1], &c[2], u, &c[4]),
                    None => c[0].to_string(),
                }
            })
            .into_owned();
        let pixel = format!(
            "<img src=\"{base}/t/o/{}.gif\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;border:0;width:1px;height:1px\">",
            signer.sign(&ids.token(Kind::Open))
        );
        match out.to_ascii_lowercase().rfind("</body>") {
            Some(i) => out.insert_str(i, &pixel),
            None => out.push_str(&pixel),
        }
        out
    });
    let text = BARE_URL
        .replace_all(text, |c: &regex::Captures<'_>| {
            let url = c[0].trim_end_matches(['.', ',', ';', ':', '!', '?']);
            let tail = &c[0][url.len()..];
            match click(url) {
                Some(u) => format!("{u}{tail}"),
                None => c[0].to_string(),
            }
        })
        .into_owned();
    Tracked { text, html, links, unsubscribe_url: unsubscribe_url(signer, base, ids) }
}

/// Apple Mail Privacy Protection fetches every image through Apple's
/// proxies as soon as the mail arrives, whether or not anyone reads it. Its
/// requests come from Apple's 17.0.0.0/8 network and carry the bare
/// user agent `Mozilla/5.0`.
fn apple_mpp(ua: &str, ip: Option<IpAddr>) -> bool {
    let apple_net = matches!(ip, Some(IpAddr::V4(v4)) if v4.octets()[0] == 17);
    apple_net || ua.trim() == "Mozilla/5.0"
}

/// User agents of mail-security scanners, link checkers and libraries
/// (lower-case substrings). Gmail's and Yahoo's image proxies are not
/// here: they fetch when a person opens the mail.
const MACHINE_AGENTS: &[&str] = &[
    "bot", "crawler", "spider", "preview", "scanner", "barracuda", "mimecast", "proofpoint", "forcepoint", "symantec", "messagelabs",
    "trendmicro", "sophos", "fortiguard", "safelinks", "microsoft office protocol discovery", "python-requests", "python-urllib", "curl/",
    "wget/", "go-http-client", "okhttp", "java/", "libwww", "httpclient", "headlesschrome", "phantomjs",
];

fn machine_agent(ua: &str) -> bool {
    let ua = ua.to_ascii_lowercase();
    ua.trim().is_empty() || MACHINE_AGENTS.iter().any(|m| ua.contains(m))
}

/// A trusted reverse proxy: one address (`10.0.0.7`) or a network
/// (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNet {
    addr: IpAddr,
    prefix: u8,
}

impl ProxyNet {
    pub fn parse(s: &str) -> Result<ProxyNet, String> {
        let s = s.trim();
        let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
        let addr: IpAddr = a.parse().map_err(|_| format!("{s:?} is not an IP address or network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(|| format!("{s:?}: the prefix length must be 0–{max}"))?,
            None => max,
        };
        Ok(ProxyNet { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u8) {
            match a.to_canonical() {
                IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 4),
                IpAddr::V6(v) => (u128::from(v), 6),
            }
        };
        let ((net, fa), (x, fb)) = (bits(self.addr), bits(ip));
        if fa != fb {
            return false;
        }
        let prefix = u32::from(self.prefix);
        if prefix == 0 {
            return true;
        }
        let mask = u128::MAX << (128 - prefix);
        net & mask == x & mask
    }
}

/// The client's address for a request that came from `peer`: the socket
/// address, unless `peer` is a trusted proxy; then the right-most address
/// in `X-Forwarded-For` that is not itself a trusted proxy (the left part
/// of the header is whatever the client chose to send, so it is never
/// believed). An unparsable entry ends the walk at the peer.
pub fn client_ip(peer: Option<IpAddr>, forwarded_for: Option<&str>, trusted: &[ProxyNet]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = peer?;
    if !is_trusted(peer) {
        return Some(peer);
    }
    let Some(xff) = forwarded_for else { return Some(peer) };
    let mut client = peer;
    for hop in xff.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => {
                client = ip;
                if !is_trusted(ip) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    Some(client)
}

/// Whether an open was made by a machine (Apple MPP, a scanner).
pub fn machine_open(ua: &str, ip: Option<IpAddr>) -> bool {
    apple_mpp(ua, ip) || machine_agent(ua)
}

/// Scanners follow every link within seconds of delivery; a person does
/// not (the Mautic community's ±10 s window).
pub const SCANNER_WINDOW_MS: i64 = 10_000;

/// Whether a click was made by a machine: a scanner's agent, a `HEAD`
/// request, or a click within [`SCANNER_WINDOW_MS`] of sending.
pub fn machine_click(ua: &str, head: bool, sent_at: i64, now: i64) -> bool {
    head || machine_agent(ua) || now - sent_at < SCANNER_WINDOW_MS
}

/// The 43-byte transparent GIF the pixel returns.
pub const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00,
    0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> Ids {
        Ids { outbox_id: 42, message_id: 7, party_id: 9, sent_at: 1_000_000 }
    }

    #[test]
    fn tokens_round_trip_and_forgeries_fail() {
        let s = Signer::new(b"secret");
        let t = ids().token(Kind::Click { index: 2, url: "https://shop.example/a?b=1&c=2".into() });
        let tok = s.sign(&t);
        assert_eq!(s.verify(&tok, 2_000_000), Some(t.clone()));
        // Another key, a truncation, a flipped character, a padded copy.
        assert_eq!(Signer::new(b"other").verify(&tok, 2_000_000), None);
        for cut in 1..tok.len() {
            assert_eq!(s.verify(&tok[..cut], 2_000_000), None, "truncated at {cut}");
        }
        let mut flipped = tok.clone().into_bytes();
        flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
        assert_eq!(s.verify(&String::from_utf8(flipped).unwrap(), 2_000_000), None);
        assert_eq!(s.verify(&format!("{tok}A"), 2_000_000), None);
        assert_eq!(s.verify("", 0), None);
        // Expired.
        assert_eq!(s.verify(&tok, 1_000_000 + MAX_AGE_MS + 1), None);
        let o = s.sign(&ids().token(Kind::Open));
        assert_eq!(s.verify(&o, 1_000_000).map(|t| t.kind), Some(Kind::Open));
    }

    #[test]
    fn verp_tokens_are_lower_case_and_signed() {
        let s = Signer::new(b"secret");
        let v = s.verp(1234);
        assert!(v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()), "{v}");
        assert_eq!(s.parse_verp(&v), Some(1234));
        assert_eq!(s.parse_verp(&v.to_ascii_uppercase()), Some(1234));
        assert_eq!(s.parse_verp(&v.replace("o1234", "o1235")), None);
        assert_eq!(Signer::new(b"x").parse_verp(&v), None);
    }

    #[test]
    fn links_are_rewritten_with_one_index_per_url() {
        let s = Signer::new(b"k");
        let html = r#"<p><a href="https://shop.example/a?x=1&amp;y=2">A</a> <a class="b" href='https://shop.example/b'>B</a> <a href="https://t.example/u/keep">u</a> <a href="mailto:x@y.z">m</a></p></body>"#;
        let text = "See https://shop.example/b. Or https://shop.example/c";
        let t = rewrite(&s, "https://t.example/", ids(), text, Some(html));
        assert_eq!(t.links, ["https://shop.example/a?x=1&y=2", "https://shop.example/b", "https://shop.example/c"]);
        let h = t.html.unwrap();
        assert!(!h.contains("shop.example"), "{h}");
        assert!(h.contains("https://t.example/u/keep") && h.contains("mailto:x@y.z"));
        assert!(h.contains("/t/o/") && h.find("/t/o/") < h.find("</body>"));
        assert!(t.text.starts_with("See https://t.example/t/c/") && t.text.contains(". Or https://t.example/t/c/"), "{}", t.text);
        // The text's link to /b is index 2, as in the HTML.
        let tok = t.text.split("/t/c/").nth(1).unwrap().split('.').next().unwrap();
        assert_eq!(s.verify(tok, 1_000_000).unwrap().kind, Kind::Click { index: 2, url: "https://shop.example/b".into() });
        assert!(t.unsubscribe_url.starts_with("https://t.example/u/"));
    }

    #[test]
    fn machine_hits() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(machine_open("Mozilla/5.0", ip("203.0.113.5")), "Apple MPP's bare agent");
        assert!(machine_open("Mozilla/5.0 (Macintosh)", ip("17.58.1.1")), "Apple's network");
        assert!(!machine_open("Mozilla/5.0 (Windows NT 10.0) Thunderbird/115", ip("203.0.113.5")));
        assert!(!machine_open("Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)", ip("66.249.1.1")));
        assert!(machine_click("Mozilla/5.0 (X11)", false, 0, 3_000), "within seconds of sending");
        assert!(machine_click("Mimecast-Scanner", false, 0, 3_600_000));
        assert!(machine_click("Mozilla/5.0 (X11)", true, 0, 3_600_000), "HEAD");
        assert!(!machine_click("Mozilla/5.0 (X11) Firefox/120", false, 0, 3_600_000));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let trusted = [ProxyNet::parse("10.0.0.0/8").expect("net"), ProxyNet::parse("::1").expect("net")];
        // An untrusted peer: the socket address, whatever the header says.
        assert_eq!(client_ip(Some(ip("203.0.113.9")), Some("17.1.2.3"), &trusted), Some(ip("203.0.113.9")));
        assert_eq!(client_ip(Some(ip("203.0.113.9")), Some("17.1.2.3"), &[]), Some(ip("203.0.113.9")));
        // A trusted proxy: the right-most untrusted hop; a forged left part is ignored.
        assert_eq!(client_ip(Some(ip("10.1.1.1")), Some("17.1.2.3"), &trusted), Some(ip("17.1.2.3")));
        assert_eq!(client_ip(Some(ip("10.1.1.1")), Some("6.6.6.6, 198.51.100.4, 10.2.2.2"), &trusted), Some(ip("198.51.100.4")));
        assert_eq!(client_ip(Some(ip("::1")), Some("2001:db8::1"), &trusted), Some(ip("2001:db8::1")));
        // v4-mapped peers match v4 networks.
        assert_eq!(client_ip(Some(ip("::ffff:10.0.0.5")), Some("17.0.0.1"), &trusted), Some(ip("17.0.0.1")));
        // No header, or garbage in it: the proxy itself.
        assert_eq!(client_ip(Some(ip("10.1.1.1")), None, &trusted), Some(ip("10.1.1.1")));
        assert_eq!(client_ip(Some(ip("10.1.1.1")), Some("not-an-ip"), &trusted), Some(ip("10.1.1.1")));
        assert_eq!(client_ip(None, Some("17.1.2.3"), &trusted), None);
        assert!(ProxyNet::parse("10.0.0.0/33").is_err() && ProxyNet::parse("nope").is_err());
        assert!(ProxyNet::parse("0.0.0.0/0").expect("net").contains(ip("8.8.8.8")) && !ProxyNet::parse("0.0.0.0/0").expect("net").contains(ip("2001:db8::1")));
    }
}
