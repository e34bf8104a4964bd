//! HTTP digest authentication for SIP (RFC 2617 as used by RFC 3261 §22,
//! RFC 8760 algorithms), written here instead of using rsip's
//! `DigestGenerator`, which knows only the tokens `SHA256`/`SHA512` and
//! writes `nc` in decimal.
//!
//! It owns the challenge and credentials header grammar (`Digest k=v, ...`
//! with quoted strings), the hash computation for MD5 and SHA-256 with
//! `qop=auth` (and the legacy no-qop form), and verification for the
//! registrar. The user agent meets it when answering 401/407; the registrar
//! when checking `Authorization`.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// A digest hash algorithm. `-sess` variants are not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// Parses the RFC 8760 token (`MD5`, `SHA-256`); `SHA256` is accepted
    /// too because older servers write it so.
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s.trim().to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" | "SHA256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }
    /// Lower-case hex of the hash of `data`.
    pub fn hash(self, data: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(data.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(data.as_bytes())),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("not a Digest challenge")]
    NotDigest,
    #[error("missing parameter {0}")]
    Missing(&'static str),
    #[error("unsupported algorithm {0}")]
    Algorithm(String),
    #[error("unsupported qop {0}")]
    Qop(String),
}

/// Splits `Digest a=b, c="d, e"` into lower-cased names and unquoted values.
pub fn parse_params(value: &str) -> Result<Vec<(String, String)>, DigestError> {
    let v = value.trim();
    let rest = match v.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("Digest") => rest,
        _ => return Err(DigestError::NotDigest),
    };
    let mut out = Vec::new();
    for part in crate::msg::split_commas(rest) {
        if let Some((n, v)) = part.split_once('=') {
            let v = v.trim();
            let v = if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
                v[1..v.len() - 1].replace("\\\"", "\"").replace("\\\\", "\\")
            } else {
                v.to_owned()
            };
            out.push((n.trim().to_ascii_lowercase(), v));
        }
    }
    Ok(out)
}

fn get<'a>(p: &'a [(String, String)], k: &str) -> Option<&'a str> {
    p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// A `WWW-Authenticate`/`Proxy-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Whether the server offered `qop=auth`; if not, the RFC 2069 form is used.
    pub qop_auth: bool,
    pub stale: bool,
}

impl Challenge {
    pub fn parse(value: &str) -> Result<Challenge, DigestError> {
        let p = parse_params(value)?;
        let algorithm = match get(&p, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or_else(|| DigestError::Algorithm(a.to_owned()))?,
        };
        let qop_auth = match get(&p, "qop") {
            None => false,
            Some(q) => {
                if q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")) {
                    true
                } else {
                    return Err(DigestError::Qop(q.to_owned()));
                }
            }
        };
        Ok(Challenge {
            realm: get(&p, "realm").ok_or(DigestError::Missing("realm"))?.to_owned(),
            nonce: get(&p, "nonce").ok_or(DigestError::Missing("nonce"))?.to_owned(),
            opaque: get(&p, "opaque").map(str::to_owned),
            algorithm,
            qop_auth,
            stale: get(&p, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// Renders the challenge for a 401/407 we send.
    pub fn to_header_value(&self) -> String {
        let mut s = format!(
            "Digest realm=\"{}\", nonce=\"{}\", algorithm={}",
            self.realm,
            self.nonce,
            self.algorithm.token()
        );
        if self.qop_auth {
            s.push_str(", qop=\"auth\"");
        }
        if let Some(o) = &self.opaque {
            s.push_str(&format!(", opaque=\"{o}\""));
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        s
    }
}

#[allow(clippy::too_many_arguments)]
/// Computes the `response` value. `nc_cnonce` is `Some((nc, cnonce))` for
/// `qop=auth` and `None` for the RFC 2069 form.
pub fn response(
    alg: Algorithm,
    user: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    nc_cnonce: Option<(u32, &str)>,
) -> String {
    let ha1 = alg.hash(&format!("{user}:{realm}:{password}"));
    let ha2 = alg.hash(&format!("{method}:{uri}"));
    match nc_cnonce {
        Some((nc, cnonce)) => alg.hash(&format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}")),
        None => alg.hash(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// Builds an `Authorization`/`Proxy-Authorization` value answering `ch`.
pub fn authorization(ch: &Challenge, user: &str, password: &str, method: &str, uri: &str, nc: u32, cnonce: &str) -> String {
    let user = crate::msg::sanitize(user).replace('"', "");
    let mut s;
    if ch.qop_auth {
        let r = response(ch.algorithm, &user, &ch.realm, password, method, uri, &ch.nonce, Some((nc, cnonce)));
        s = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{r}\", algorithm={}, qop=auth, nc={nc:08x}, cnonce=\"{cnonce}\"",
            ch.realm,
            ch.nonce,
            ch.algorithm.token()
        );
    } else {
        let r = response(ch.algorithm, &user, &ch.realm, password, method, uri, &ch.nonce, None);
        s = format!(
            "Digest username=\"{user}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{r}\", algorithm={}",
            ch.realm,
            ch.nonce,
            ch.algorithm.token()
        );
    }
    if let Some(o) = &ch.opaque {
        s.push_str(&format!(", opaque=\"{o}\""));
    }
    s
}

/// The parts of an `Authorization` header the registrar checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub qop: Option<(u32, String)>,
}

impl Credentials {
    pub fn parse(value: &str) -> Result<Credentials, DigestError> {
        let p = parse_params(value)?;
        let algorithm = match get(&p, "algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a).ok_or_else(|| DigestError::Algorithm(a.to_owned()))?,
        };
        let qop = match get(&p, "qop") {
            None => None,
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let nc = get(&p, "nc").ok_or(DigestError::Missing("nc"))?;
                let nc = u32::from_str_radix(nc, 16).map_err(|_| DigestError::Missing("nc"))?;
                Some((nc, get(&p, "cnonce").ok_or(DigestError::Missing("cnonce"))?.to_owned()))
            }
            Some(q) => return Err(DigestError::Qop(q.to_owned())),
        };
        let f = |k: &'static str| get(&p, k).map(str::to_owned).ok_or(DigestError::Missing(k));
        Ok(Credentials {
            username: f("username")?,
            realm: f("realm")?,
            nonce: f("nonce")?,
            uri: f("uri")?,
            response: f("response")?,
            algorithm,
            qop,
        })
    }

    /// Whether the response matches `password` for `method`. Compares in
    /// constant time so the check leaks nothing about the expected hash.
    pub fn verify(&self, password: &str, method: &str) -> bool {
        let expected = response(
            self.algorithm,
            &self.username,
            &self.realm,
            password,
            method,
            &self.uri,
            &self.nonce,
            self.qop.as_ref().map(|(nc, c)| (*nc, c.as_str())),
        );
        let (a, b) = (expected.as_bytes(), self.response.to_ascii_lowercase().into_bytes());
        a.len() == b.len() && a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}
