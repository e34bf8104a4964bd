//! The third-party real-world corpora (mail-parser's malformed and
//! third-party mails, RT's inbound test mails) through the whole ingest
//! path against Dovecot: every file is APPENDed to a fresh IMAP folder, the
//! IMAP reader drains it into a fresh store, and then
//! - every file is stored once as a raw message and either belongs to
//!   exactly one ticket or is quarantined (stored, not ingested),
//! - the stored raw bytes are exactly what Dovecot serves for that UID,
//!   and equal the file byte for byte, or — where the file has bare LF or
//!   NUL bytes — the file with Dovecot's normalisation applied (it serves
//!   bare LF as CRLF and NUL as 0x80, RFC 3501 allowing no NUL in FETCH),
//! - every inbound history row is one of these mails, once; a mail whose
//!   Message-ID the store already has is recorded as another delivery of
//!   that mail (same ticket, no second history row — RT's two
//!   `*-with-umlaut` mails share one Message-ID, as do its two
//!   `email-file-attachment*.eml`),
//! - nothing is left without `\Seen` on the server,
//! - a second pass reads nothing, and a replay from UID 1 creates nothing.
//!
//! The corpora are outside the repository (`$CENTRALINO_CORPORA`, default
//! `/work/shared/corpora`); without them the test says so and returns.

use crate::harness::*;
use crm::tickets::{Direction, RawMailId, TicketNo};
use futures::TryStreamExt;
use mailgate::imap::sync_once;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const FOLDERS: &[&str] = &["mail-parser/malformed", "mail-parser/thirdparty", "rt-emails"];

fn corpora() -> Option<PathBuf> {
    let dir = match std::env::var_os("CENTRALINO_CORPORA") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from("/work/shared/corpora"),
    };
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("note: skipping the corpus test: no corpora at {} (set CENTRALINO_CORPORA)", dir.display());
        None
    }
}

/// The mail files under `dir`, sorted: expectation files (`.json`) and
/// licence/README files are not mail.
fn mail_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
                continue;
            }
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.ends_with(".json") || name.starts_with("COPYING") || name.starts_with("LICENSE") || name.starts_with("README") {
                continue;
            }
            out.push(p);
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// What Dovecot serves for an APPENDed message: bare LF as CRLF (a CR
/// already before the LF is kept as is) and NUL as 0x80 (RFC 3501 forbids
/// NUL in a FETCH literal; Dovecot substitutes it).
fn as_served(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 20);
    for (i, &b) in raw.iter().enumerate() {
        if b == b'\n' && (i == 0 || raw[i - 1] != b'\r') {
            out.push(b'\r');
        }
        out.push(if b == 0 { 0x80 } else { b });
    }
    out
}

#[tokio::test]
async fn real_world_corpora_through_dovecot() {
    let Some(root) = corpora() else { return };
    let Some(p) = peers() else { return };
    each_store(|ts| {
        let p = p.clone();
        let root = root.clone();
        async move {
            let store = ts.store.clone();
            let centre = centre(&store, "Corpus").await;
            // Raw rows are numbered from 1 in a fresh store; a batch rolled
            // back on PostgreSQL may skip sequence values, hence the margin.
            let mut next_raw_probe = 1i64;
            // Message-IDs ingested so far (in this store), and the tickets
            // the earlier corpus folders opened.
            let mut seen_ids: BTreeMap<String, TicketNo> = BTreeMap::new();
            let mut earlier_tickets: BTreeSet<TicketNo> = BTreeSet::new();
            for sub in FOLDERS {
                let files = mail_files(&root.join(sub));
                assert!(!files.is_empty(), "{sub}: no mail files");
                let f = folder("corpus");
                let cfg = p.mailbox("support", &f, centre);

                // APPEND every file, in order, over one session: UID i+1 is file i.
                let mut s = mailgate::imap::connect(&cfg).await.expect("imap connect");
                s.create(&f).await.expect("create folder");
                for file in &files {
                    let raw = std::fs::read(file).expect("read corpus file");
                    s.append(&f, None, None, &raw).await.unwrap_or_else(|e| panic!("append {}: {e}", file.display()));
                }
                let _ = s.logout().await;

                let r = sync_once(store.clone(), cfg.clone(), opts(), false).await.expect("sync");
                assert_eq!(r.handled + r.quarantined, files.len(), "{}/{sub}: every file handled or quarantined", ts.name);

                // What Dovecot serves, by UID, and what is still unseen.
                let mut s = mailgate::imap::connect(&cfg).await.expect("imap connect");
                s.select(&f).await.expect("select");
                let unseen = s.uid_search("UNSEEN").await.expect("search unseen");
                assert!(unseen.is_empty(), "{}/{sub}: UIDs left unflagged on the server: {unseen:?}", ts.name);
                let served: BTreeMap<u32, Vec<u8>> = s
                    .uid_fetch("1:*", "(UID BODY.PEEK[])")
                    .await
                    .expect("fetch")
                    .try_collect::<Vec<_>>()
                    .await
                    .expect("fetch")
                    .iter()
                    .filter_map(|m| Some((m.uid?, m.body()?.to_vec())))
                    .collect();
                let _ = s.logout().await;
                assert_eq!(served.len(), files.len(), "{}/{sub}: Dovecot holds every file", ts.name);

                // The raw rows of this folder.
                let mut rows = BTreeMap::new();
                let mut misses = 0;
                let mut id = next_raw_probe;
                while misses < 50 {
                    match store.raw_mail(RawMailId(id)).await {
                        Ok(row) => {
                            misses = 0;
                            next_raw_probe = id + 1;
                            if row.mail.mailbox == cfg.name {
                                let uid = u32::try_from(row.mail.uid).expect("uid");
                                assert!(rows.insert(uid, row).is_none(), "{}/{sub}: UID {uid} stored twice", ts.name);
                            }
                        }
                        Err(crm::Error::NotFound(_)) => misses += 1,
                        Err(e) => panic!("raw mail {id}: {e}"),
                    }
                    id += 1;
                }
                assert_eq!(rows.len(), files.len(), "{}/{sub}: one raw row per file", ts.name);

                let mut ticket_of: BTreeMap<u32, TicketNo> = BTreeMap::new();
                let mut quarantined = Vec::new();
                let mut same_id = Vec::new();
                let (mut normalised, mut nul) = (0, 0);
                for (i, file) in files.iter().enumerate() {
                    let uid = u32::try_from(i + 1).expect("uid");
                    let name = file.strip_prefix(&root).unwrap_or(file).display().to_string();
                    let row = rows.get(&uid).unwrap_or_else(|| panic!("{}: {name} (UID {uid}) was not stored", ts.name));
                    let original = std::fs::read(file).expect("read corpus file");
                    assert!(row.mail.raw == served[&uid], "{}: {name}: the stored raw message differs from what Dovecot serves", ts.name);
                    if row.mail.raw != original {
                        if original.contains(&0) {
                            nul += 1;
                        } else {
                            normalised += 1;
                        }
                        assert!(row.mail.raw == as_served(&original), "{}: {name}: the stored raw message differs from the file beyond Dovecot's CRLF/NUL normalisation", ts.name);
                    }
                    match (row.ticket, row.ingested_at) {
                        (Some(t), Some(_)) => {
                            ticket_of.insert(uid, t);
                            // A Message-ID the store already has: recorded as
                            // another delivery of that mail (its ticket, no new
                            // history row); the raw message is still kept.
                            if let Some(id) = &row.mail.message_id {
                                match seen_ids.get(id) {
                                    Some(first) => {
                                        assert_eq!(*first, t, "{}: {name}: a repeated Message-ID points at the first copy's ticket", ts.name);
                                        same_id.push(name.clone());
                                    }
                                    None => {
                                        seen_ids.insert(id.clone(), t);
                                    }
                                }
                            }
                        }
                        (None, None) => quarantined.push(name),
                        other => panic!("{}: {name}: inconsistent raw row (ticket, ingested_at) = {other:?}", ts.name),
                    }
                }
                assert_eq!(ticket_of.len() + quarantined.len(), files.len());
                assert_eq!(quarantined.len(), r.quarantined, "{}/{sub}: the quarantine count matches the report", ts.name);
                // The report's tickets agree with the store's.
                for (uid, t) in &r.tickets {
                    assert_eq!(ticket_of.get(uid), Some(t), "{}/{sub}: UID {uid}", ts.name);
                }

                // Every inbound history row of these tickets is one of these
                // mails, and each mail is there once (a mail may thread into
                // an earlier one's ticket, e.g. RT's 8859-15 series).
                let tickets: BTreeSet<TicketNo> = ticket_of.values().copied().collect();
                let mut inbound = 0;
                for t in &tickets {
                    let d = detail(&store, *t).await;
                    inbound += d.messages.iter().filter(|m| m.direction == Direction::In).count();
                }
                assert_eq!(inbound, ticket_of.len() - same_id.len(), "{}/{sub}: one history row per ticketed mail (repeated Message-IDs: {same_id:?})", ts.name);
                assert_eq!(r.duplicates, same_id.len(), "{}/{sub}: repeated Message-IDs reported as duplicates", ts.name);
                let opened = tickets.difference(&earlier_tickets).count();
                assert_eq!(r.created, opened, "{}/{sub}: tickets opened", ts.name);

                // Exactly once: nothing new to read, and a replay from UID 1
                // recognises every mail.
                let again = sync_once(store.clone(), cfg.clone(), opts(), false).await.expect("second pass");
                assert_eq!((again.handled, again.created), (0, 0), "{}/{sub}: second pass", ts.name);
                let replay = sync_once(store.clone(), cfg.clone(), opts(), true).await.expect("replay");
                assert_eq!(replay.created, 0, "{}/{sub}: the replay opened no ticket", ts.name);
                assert_eq!(replay.duplicates, ticket_of.len(), "{}/{sub}: the replay saw every ticketed mail as a duplicate", ts.name);
                for (uid, t) in &replay.tickets {
                    assert_eq!(ticket_of.get(uid), Some(t), "{}/{sub}: replayed UID {uid}", ts.name);
                }
                let mut inbound_after = 0;
                for t in &tickets {
                    let d = detail(&store, *t).await;
                    inbound_after += d.messages.iter().filter(|m| m.direction == Direction::In).count();
                }
                assert_eq!(inbound_after, inbound, "{}/{sub}: the replay added no history", ts.name);

                earlier_tickets.extend(tickets.iter().copied());
                eprintln!(
                    "{}: corpus {sub}: {} files, {} ticketed into {} tickets ({opened} opened; {} with a repeated Message-ID {same_id:?}), {} quarantined {:?}; stored as Dovecot serves it: {} with CRLF for bare LF, {} also with NUL as 0x80, the rest byte-identical to the file",
                    ts.name,
                    files.len(),
                    ticket_of.len(),
                    tickets.len(),
                    same_id.len(),
                    quarantined.len(),
                    quarantined,
                    normalised,
                    nul
                );
            }
        }
    })
    .await;
}

/// What the corpus found on PostgreSQL (mail-parser's `thirdparty/000.eml`,
/// RT's `notes-uuencoded`): a body decodes to text with NUL characters
/// (quoted-printable `=00`, uuencoded or binary data in a text part), which
/// PostgreSQL refuses in a `text` column — and a database error is taken
/// for an outage, so the mail stopped its mailbox.
/// The parse keeps no NUL in anything the store writes as text.
#[test]
fn nul_characters_never_reach_stored_text() {
    let raw = b"From: Ada <ada@customer.test>\r\nSubject: nul\x00 inside\r\nMessage-ID: <nul@customer.test>\r\n\
        MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
        --b\r\nContent-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nof =00binary stuff\r\n\
        --b\r\nContent-Type: text/plain; charset=utf-16le\r\nContent-Transfer-Encoding: binary\r\n\r\nT\x00e\x00s\x00t\x00\r\n\
        --b\r\nContent-Type: application/octet-stream; name=\"a\x00b.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n--b--\r\n";
    let got = mailgate::parse::parse(raw, &opts());
    let m = &got.mail;
    let mut texts: Vec<&str> = vec![&m.subject, &m.text];
    texts.extend(m.html_sanitized.as_deref());
    texts.extend(m.message_id.as_deref());
    texts.extend(m.from_name.as_deref());
    texts.extend(m.attachments.iter().filter_map(|a| a.filename.as_deref()));
    texts.extend(m.attachments.iter().map(|a| a.content_type.as_str()));
    for t in texts {
        assert!(!t.contains('\0'), "NUL kept in {t:?}");
    }
    assert!(m.text.contains("of binary stuff"), "{:?}", m.text);
    assert_eq!(m.message_id.as_deref(), Some("nul@customer.test"));
    // The attachment's bytes are data, not text: they keep their NULs.
    assert!(m.attachments.iter().any(|a| a.data == [0, 0, 0]), "{:?}", m.attachments.iter().map(|a| &a.data).collect::<Vec<_>>());
}
