//! IMAP over TLS against Dovecot with a throwaway CA (made by
//! `scripts/peers.sh`): implicit TLS (IMAPS) and STARTTLS each carry a mail
//! to a ticket when the mailbox trusts the CA file, and refuse to log in —
//! storing nothing — when it does not.

use crate::harness::*;
use mailgate::Security;
use mailgate::imap::sync_once;

/// The IMAPS address and the CA file, or `None` (with a note).
fn tls_peer() -> Option<((String, u16), std::path::PathBuf)> {
    let (Ok(addr), Ok(ca)) = (std::env::var("CENTRALINO_TEST_IMAPS"), std::env::var("CENTRALINO_TEST_IMAP_CA")) else {
        if std::env::var("CENTRALINO_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("CENTRALINO_REQUIRE_PEERS=1 but CENTRALINO_TEST_IMAPS/CENTRALINO_TEST_IMAP_CA are not set");
        }
        eprintln!("note: skipping the IMAP TLS test: no IMAPS peer (scripts/peers.sh start DIR exports it)");
        return None;
    };
    let (h, p) = addr.rsplit_once(':')?;
    Some(((h.to_string(), p.parse().ok()?), ca.into()))
}

#[tokio::test]
async fn imaps_and_starttls_with_a_private_ca() {
    let Some(p) = peers() else { return };
    let Some(((host, imaps_port), ca)) = tls_peer() else { return };
    each_store(|ts| {
        let (p, host, ca) = (p.clone(), host.clone(), ca.clone());
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Support").await;
            for (n, security) in [Security::Tls, Security::StartTls].into_iter().enumerate() {
                let inbox = folder("tls");
                let id = format!("tls{n}-{}@customer.test", unique_suffix());
                p.append("support", &inbox, &simple_mail("Ada <ada@customer.test>", &id, "Over TLS", "", "Encrypted hello.")).await;
                let mut cfg = p.mailbox("support", &inbox, centre);
                cfg.host = host.clone();
                cfg.security = security;
                if security == Security::Tls {
                    cfg.port = imaps_port;
                }

                // Without the CA the server's certificate is not trusted:
                // no login, nothing stored.
                let before = ticket_count(&store).await;
                let err = sync_once(store.clone(), cfg.clone(), opts(), false).await.expect_err("untrusted certificate");
                assert!(matches!(err, mailgate::Error::Tls { .. }), "{}: {security:?}: {err}", ts.name);
                assert_eq!(ticket_count(&store).await, before, "nothing stored");

                cfg.ca_file = Some(ca.clone());
                let r = sync_once(store.clone(), cfg.clone(), opts(), false).await.unwrap_or_else(|e| panic!("{}: {security:?}: {e}", ts.name));
                assert_eq!((r.handled, r.created), (1, 1), "{}: {security:?}", ts.name);
                let d = detail(&store, r.tickets[0].1).await;
                assert!(d.messages[0].text.contains("Encrypted hello."));

                // A CA file that is not PEM is a clear error.
                let bad = std::env::temp_dir().join(format!("not-a-ca-{}.pem", unique_suffix()));
                std::fs::write(&bad, b"hello").expect("write");
                cfg.ca_file = Some(bad.clone());
                let err = sync_once(store.clone(), cfg, opts(), false).await.expect_err("bad CA file");
                assert!(err.to_string().contains("CA file"), "{err}");
                let _ = std::fs::remove_file(bad);
            }
        }
    })
    .await;
}
