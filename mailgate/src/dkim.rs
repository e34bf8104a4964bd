//! DKIM signing of campaign mail (RFC 6376, Ed25519 per RFC 8463 and
//! RSA-SHA256) with `lettre`'s signer, relaxed/relaxed canonicalisation.
//!
//! The signature covers the headers a receiver judges a bulk mail by,
//! including `List-Unsubscribe` and `List-Unsubscribe-Post`, which RFC 8058
//! requires to be signed for one-click unsubscribe to be honoured.
//!
//! Keys: RSA as PKCS#1 PEM (`openssl genrsa -traditional`); Ed25519 as the
//! base64 of the 32-byte seed, or PKCS#8 PEM (`openssl genpkey -algorithm
//! ed25519`). The key is never logged.

use crate::error::{Error, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lettre::Message;
use lettre::message::dkim::{DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey};
use lettre::message::header::HeaderName;

/// The signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Ed25519,
    Rsa,
}

impl Algorithm {
    pub fn parse(s: &str) -> std::result::Result<Algorithm, String> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" | "ed25519-sha256" => Ok(Algorithm::Ed25519),
            "rsa" | "rsa-sha256" => Ok(Algorithm::Rsa),
            _ => Err(format!("unknown DKIM algorithm {s:?}; expected ed25519 or rsa")),
        }
    }
}

/// The headers signed, in this order. Not `Content-Type`: for a multipart
/// message lettre writes it with the body, after signing, so it cannot be
/// covered (the body hash covers the parts and their boundaries).
pub const SIGNED_HEADERS: &[&str] = &["From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version"];

/// A loaded signing key with its selector and domain.
pub struct Dkim {
    config: DkimConfig,
}

impl std::fmt::Debug for Dkim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dkim(…)")
    }
}

fn ed25519_seed(text: &str) -> Result<String> {
    let t = text.trim();
    if !t.contains("-----BEGIN") {
        return Ok(t.to_string());
    }
    let body: String = t.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body.trim()).map_err(|_| Error::Build("DKIM key: not base64 PEM".into()))?;
    // PKCS#8 for Ed25519 is a fixed 48-byte structure ending in the seed.
    if der.len() != 48 {
        return Err(Error::Build("DKIM key: not an Ed25519 PKCS#8 key".into()));
    }
    Ok(STANDARD.encode(&der[16..]))
}

impl Dkim {
    pub fn new(selector: &str, domain: &str, algorithm: Algorithm, key: &str) -> Result<Dkim> {
        let (text, alg) = match algorithm {
            Algorithm::Ed25519 => (ed25519_seed(key)?, DkimSigningAlgorithm::Ed25519),
            Algorithm::Rsa => (key.trim().to_string(), DkimSigningAlgorithm::Rsa),
        };
        let key = DkimSigningKey::new(&text, alg).map_err(|_| Error::Build("DKIM key: cannot be read (RSA needs PKCS#1 PEM, Ed25519 a 32-byte seed)".into()))?;
        let headers = SIGNED_HEADERS.iter().map(|h| HeaderName::new_from_ascii_str(h)).collect();
        let canon = DkimCanonicalization { header: DkimCanonicalizationType::Relaxed, body: DkimCanonicalizationType::Relaxed };
        Ok(Dkim { config: DkimConfig::new(selector.to_string(), domain.to_string(), key, headers, canon) })
    }

    /// Reads the key from a file.
    pub fn from_file(selector: &str, domain: &str, algorithm: Algorithm, path: &std::path::Path) -> Result<Dkim> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Build(format!("DKIM key {}: {e}", path.display())))?;
        Dkim::new(selector, domain, algorithm, &text)
    }

    /// Adds the `DKIM-Signature` header.
    pub fn sign(&self, m: &mut Message) {
        m.sign(&self.config);
    }
}
