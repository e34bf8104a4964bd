//! Digest vectors from RFC 2617 (MD5) and RFC 7616 (SHA-256), and the
//! formatting bugs of rsip's generator that our code must not repeat.

use sip::digest::{self, Algorithm, Challenge, Credentials};

#[test]
fn rfc2617_md5_vector() {
    let r = digest::response(Algorithm::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life", "GET", "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093", Some((1, "0a4f113b")));
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
}

#[test]
fn rfc7616_sha256_vector() {
    let r = digest::response(
        Algorithm::Sha256,
        "Mufasa",
        "http-auth@example.org",
        "Circle of Life",
        "GET",
        "/dir/index.html",
        "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
        Some((1, "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
    );
    assert_eq!(r, "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
}

#[test]
fn challenge_tokens() {
    for (input, alg, qop) in [
        ("Digest realm=\"r\", nonce=\"n\"", Algorithm::Md5, false),
        ("Digest realm=\"r\", nonce=\"n\", algorithm=MD5, qop=\"auth,auth-int\"", Algorithm::Md5, true),
        ("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\"", Algorithm::Sha256, true),
        ("digest realm=\"r\",nonce=\"n\",algorithm=sha-256", Algorithm::Sha256, false),
    ] {
        let c = Challenge::parse(input).unwrap();
        assert_eq!((c.algorithm, c.qop_auth, c.realm.as_str(), c.nonce.as_str()), (alg, qop, "r", "n"), "{input}");
    }
    assert!(Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256").is_err());
    assert!(Challenge::parse("Basic realm=\"r\"").is_err());
}

#[test]
fn nc_is_eight_hex_digits_and_verifies() {
    let ch = Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256, qop=\"auth\", opaque=\"o\"").unwrap();
    let v = digest::authorization(&ch, "alice", "pw", "REGISTER", "sip:r", 26, "cn");
    assert!(v.contains("nc=0000001a"), "{v}");
    assert!(v.contains("opaque=\"o\""));
    let c = Credentials::parse(&v).unwrap();
    assert_eq!(c.qop, Some((26, "cn".to_owned())));
    assert!(c.verify("pw", "REGISTER"));
    assert!(!c.verify("wrong", "REGISTER"));
    assert!(!c.verify("pw", "INVITE"));
}
