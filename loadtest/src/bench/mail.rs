//! `loadtest mail-ingest`: the support desk's inbound path without IMAP.
//! Generates a mixed synthetic corpus in memory (multipart/alternative with
//! text and HTML, base64 attachments, Latin-1 quoted-printable and UTF-8
//! bodies, RFC 2047 subjects, replies carrying In-Reply-To and References to
//! earlier mails), averaging about 50 KB a mail, then measures:
//!
//! - **parse only**: `mailgate::parse::parse` per mail on one thread
//!   (mails/s/core);
//! - **end to end, batched**: `mailgate::ingest::handle_batch` on batches
//!   of `--batch` mails (50, the IMAP fetch batch): parse each, then store
//!   and ingest the batch in one transaction — what the IMAP driver does;
//! - **several mailboxes at once** (`--mailboxes`, 4): the same, one task
//!   per mailbox as the gateway runs one reader per mailbox, on a second
//!   corpus of the same size;
//! - **end to end, per mail**: parse → `Store::store_raw_mail` →
//!   `Store::ingest_mail` one mail after another (`ingest::handle`, the
//!   fallback path), on the first `--per-mail` mails;
//! - **baseline**: `Store::ping` through the same store, one at a time.
//!
//! With `--corpus DIR` (repeatable) every file under DIR is then run through
//! the same whole path, and the report counts what fails and why: parse
//! panics, flags the parser set (`unparsable`, `charset-fallback`…), and
//! store errors. Corpus files are read at run time and never copied.

use crate::Common;
use crate::bench::lookup::{backend_name, round};
use anyhow::Context;
use crm::tickets::{CentreInput, RawMail};
use crm::{Actor, Backend};
use loadtest::db::Location;
use loadtest::report::{Latency, Report, Row, Unit};
use mailgate::parse::{self, ParseOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value = "sqlite")]
    backend: Backend,
    /// Synthetic mails to generate and ingest.
    #[arg(long, default_value_t = 5_000)]
    mails: u64,
    /// Mails per store transaction in the batched run.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Mails (from the end of the corpus) also ingested one at a time.
    #[arg(long, default_value_t = 500)]
    per_mail: u64,
    /// Also run as many mailboxes at once (a reader each, as the gateway
    /// does), on a second corpus of the same size; 1: skip.
    #[arg(long, default_value_t = 4)]
    mailboxes: usize,
    /// Also run every file under this directory through the whole ingest
    /// path and report failures (repeatable).
    #[arg(long)]
    corpus: Vec<PathBuf>,
}

const PARSE: &str = "parse only (per mail)";
const E2E: &str = "parse + store + ticket, batched (handle_batch; per mail)";
const E2E_ONE: &str = "parse + store_raw_mail + ingest_mail, one at a time (per mail)";
const PING: &str = "baseline: Store::ping";

pub async fn run(args: &Args, common: &Common) -> anyhow::Result<Report> {
    let t0 = Instant::now();
    let mails = synthetic(args.mails, common.seed);
    let bytes: usize = mails.iter().map(Vec::len).sum();
    let mut report = Report::new("mail-ingest", backend_name(args.backend), serde_json::json!({"mails": args.mails, "batch": args.batch, "per_mail": args.per_mail, "mailboxes": args.mailboxes, "seed": common.seed, "corpus": args.corpus}));
    report.fact(
        "corpus",
        format!("{} synthetic mails, {:.1} MB, mean {:.1} KB (generated in {:.2} s)", mails.len(), bytes as f64 / 1e6, bytes as f64 / mails.len().max(1) as f64 / 1e3, t0.elapsed().as_secs_f64()),
    );
    let opts = ParseOptions::default();

    // Parse only, one thread.
    let mut lat = Latency::new();
    let t0 = Instant::now();
    for m in &mails {
        let s = Instant::now();
        std::hint::black_box(parse::parse(m, &opts));
        lat.record(s.elapsed());
    }
    let parse_s = t0.elapsed();
    let parse_rate = mails.len() as f64 / parse_s.as_secs_f64();
    report.row(Row::new(PARSE, &lat, parse_s, 0, Unit::Micros).with_rate(parse_rate, "mails"));

    let loc = Location::new(args.backend, &format!("mail-{}", std::process::id()), &common.data_dir, common.pg_url.as_deref())?;
    loc.drop_db().await?;
    let store = loc.open(8).await?;
    let centre = store
        .create_centre(
            &Actor::system(),
            CentreInput {
                name: "Bench desk".into(),
                public: true,
                team_id: None,
                head_user_id: None,
                calendar_id: None,
                auto_ack: true,
                mailboxes: vec!["support@bench.test".into()],
            },
        )
        .await
        .context("creating the service centre")?
        .id;

    // Baseline: one store round trip.
    let mut ping = Latency::new();
    for _ in 0..200 {
        store.ping().await?;
    }
    let t0 = Instant::now();
    for _ in 0..2_000 {
        let s = Instant::now();
        store.ping().await?;
        ping.record(s.elapsed());
    }
    let ping_s = t0.elapsed();
    report.row(Row::new(PING, &ping, ping_s, 0, Unit::Micros).with_rate(2_000.0 / ping_s.as_secs_f64(), "pings"));

    // End to end, batched as the IMAP driver does it; the last `per_mail`
    // mails are kept for the one-at-a-time run (distinct UIDs and ids).
    let per_mail = (args.per_mail as usize).min(mails.len() / 2);
    let mut mails = mails;
    let tail = mails.split_off(mails.len() - per_mail);
    let batched_n = mails.len();
    let t0 = Instant::now();
    let one = run_stream(store.clone(), bench_mailbox("bench", centre), opts.clone(), mails, args.batch).await;
    let (lat, created, joined, errors, first_error) = (one.lat, one.created, one.joined, one.errors, one.first_error);
    let e2e_s = t0.elapsed();
    let e2e_rate = batched_n as f64 / e2e_s.as_secs_f64();
    report.row(Row::new(E2E, &lat, e2e_s, errors, Unit::Micros).with_rate(e2e_rate, "mails"));
    report.fact(
        "end to end, batched",
        format!("{batched_n} mails in batches of {}: {created} tickets created, {joined} mails joined an existing ticket, {errors} errors{} (latency = the batch's time, recorded once per mail)", args.batch, first_error.map(|e| format!(" (first: {e})")).unwrap_or_default()),
    );

    // Several mailboxes at once, each its own reader as in the gateway
    // (one task per mailbox, batches in UID order within each); a second
    // corpus of the same shape (another seed, so other Message-IDs).
    if args.mailboxes > 1 {
        let more = synthetic(batched_n as u64, common.seed.wrapping_add(1));
        let mut parts: Vec<Vec<Vec<u8>>> = vec![Vec::new(); args.mailboxes];
        for (i, m) in more.into_iter().enumerate() {
            parts[i % args.mailboxes].push(m);
        }
        let t = Instant::now();
        let mut tasks = Vec::new();
        for (k, part) in parts.into_iter().enumerate() {
            tasks.push(tokio::spawn(run_stream(store.clone(), bench_mailbox(&format!("bench-{k}"), centre), opts.clone(), part, args.batch)));
        }
        let mut all = Latency::new();
        let (mut c, mut j, mut e) = (0u64, 0u64, 0u64);
        let mut first = None;
        for task in tasks {
            let r = task.await.context("a mailbox task")?;
            all.merge(&r.lat);
            c += r.created;
            j += r.joined;
            e += r.errors;
            if first.is_none() {
                first = r.first_error;
            }
        }
        let par_s = t.elapsed();
        let par_rate = batched_n as f64 / par_s.as_secs_f64();
        let name = format!("parse + store + ticket, batched, {} mailboxes at once (per mail)", args.mailboxes);
        report.row(Row::new(&name, &all, par_s, e, Unit::Micros).with_rate(par_rate, "mails"));
        report.ratio_of(&name, E2E, None, None, par_rate / e2e_rate);
        report.fact(
            "end to end, mailboxes at once",
            format!("{batched_n} mails over {} mailboxes: {c} tickets created, {j} joined, {e} errors{}", args.mailboxes, first.map(|e| format!(" (first: {e})")).unwrap_or_default()),
        );
    }

    // End to end, one mail at a time (the fallback path), same store.
    let mut lat1 = Latency::new();
    let mut errors1 = 0u64;
    let mut uid = batched_n as u32;
    let t1 = Instant::now();
    for m in tail {
        uid += 1;
        let s = Instant::now();
        if ingest_one(&store, centre, "bench", i64::from(uid), m).await.is_err() {
            errors1 += 1;
        }
        lat1.record(s.elapsed());
    }
    let one_s = t1.elapsed();
    let one_rate = per_mail as f64 / one_s.as_secs_f64().max(1e-9);
    if per_mail > 0 {
        report.row(Row::new(E2E_ONE, &lat1, one_s, errors1, Unit::Micros).with_rate(one_rate, "mails"));
        report.ratio_of(E2E, E2E_ONE, None, None, e2e_rate / one_rate);
    }
    let ping_rate = 2_000.0 / ping_s.as_secs_f64();
    report.ratio_of(E2E, PING, None, None, e2e_rate / ping_rate);
    report.ratio_of(E2E, PARSE, None, None, e2e_rate / parse_rate);
    report.check("parse only", "≥ 1,000 mails/s/core", format!("{:.0} mails/s", round(parse_rate, 0)), parse_rate >= 1_000.0);
    report.check("end to end", "≥ 300 mails/s", format!("{:.0} mails/s", round(e2e_rate, 0)), e2e_rate >= 300.0);

    for dir in &args.corpus {
        corpus_eval(&store, centre, dir, &opts, &mut report).await?;
    }
    store.close().await;
    loc.drop_db().await?;
    Ok(report)
}

fn bench_mailbox(name: &str, centre: crm::tickets::ServiceCentreId) -> mailgate::MailboxConfig {
    let mut cfg = mailgate::MailboxConfig::new("bench.invalid", 143, mailgate::Security::Plain, "bench", mailgate::Secret::new(""), centre);
    cfg.name = name.into();
    cfg
}

/// What one mailbox's run did.
struct StreamResult {
    lat: Latency,
    created: u64,
    joined: u64,
    errors: u64,
    first_error: Option<String>,
}

/// One mailbox's mails through `handle_batch`, `batch` at a time, in UID
/// order, as the IMAP driver hands them over.
async fn run_stream(store: crm::Store, cfg: mailgate::MailboxConfig, opts: ParseOptions, mails: Vec<Vec<u8>>, batch: usize) -> StreamResult {
    let mut r = StreamResult { lat: Latency::new(), created: 0, joined: 0, errors: 0, first_error: None };
    let mut uid = 0u32;
    let mut it = mails.into_iter().peekable();
    while it.peek().is_some() {
        let fetched: Vec<mailgate::ingest::Fetched> = it
            .by_ref()
            .take(batch.max(1))
            .map(|raw| {
                uid += 1;
                mailgate::ingest::Fetched { uid, raw, truncated: false }
            })
            .collect();
        let n = fetched.len();
        let s = Instant::now();
        match mailgate::ingest::handle_batch(&store, &cfg, &opts, 1, fetched).await {
            Ok(done) => {
                for (_, d) in done {
                    match d {
                        Some(d) if d.outcome.created => r.created += 1,
                        Some(_) => r.joined += 1,
                        None => r.errors += 1,
                    }
                }
            }
            Err(e) => {
                r.errors += n as u64;
                r.first_error.get_or_insert(e.to_string());
            }
        }
        // Each mail of the batch waited for the whole batch.
        let per = s.elapsed();
        for _ in 0..n {
            r.lat.record(per);
        }
    }
    r
}

/// The whole inbound path for one message; `Ok(true)` when it opened a ticket.
async fn ingest_one(store: &crm::Store, centre: crm::tickets::ServiceCentreId, mailbox: &str, uid: i64, raw: Vec<u8>) -> Result<bool, String> {
    let inbound = parse::parse(&raw, &ParseOptions::default());
    let now = crm::now_ms();
    let raw_id = store
        .store_raw_mail(RawMail { mailbox: mailbox.into(), uidvalidity: 1, uid, message_id: inbound.mail.message_id.clone(), raw, received_at: now })
        .await
        .map_err(|e| format!("store_raw_mail: {e}"))?;
    let out = store.ingest_mail(raw_id, inbound.mail, centre, now).await.map_err(|e| format!("ingest_mail: {e}"))?;
    Ok(out.created)
}

/// Every file under `dir` (recursively, skipping `.json` expectations and
/// licence files) through parse → store → ticket.
async fn corpus_eval(store: &crm::Store, centre: crm::tickets::ServiceCentreId, dir: &Path, opts: &ParseOptions, report: &mut Report) -> anyhow::Result<()> {
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    let mailbox = format!("corpus-{}", dir.display());
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut flags: BTreeMap<String, u64> = BTreeMap::new();
    let mut failures: Vec<String> = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let raw = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let name = f.strip_prefix(dir).unwrap_or(f).display().to_string();
        let parsed = std::panic::catch_unwind(|| parse::parse(&raw, opts));
        let inbound = match parsed {
            Ok(p) => p,
            Err(_) => {
                failed += 1;
                failures.push(format!("{name}: parse panicked"));
                continue;
            }
        };
        for fl in &inbound.mail.flags {
            *flags.entry(fl.clone()).or_default() += 1;
        }
        match ingest_one(store, centre, &mailbox, i as i64 + 1, raw).await {
            Ok(_) => ok += 1,
            Err(e) => {
                failed += 1;
                failures.push(format!("{name}: {e}"));
            }
        }
    }
    report.fact(
        &format!("corpus {}", dir.display()),
        serde_json::json!({"files": files.len(), "ticketed": ok, "failed": failed, "failures": failures, "flags": flags}),
    );
    eprintln!("corpus {}: {} files, {ok} became tickets, {failed} failed; flags {flags:?}", dir.display(), files.len());
    for f in &failures {
        eprintln!("  {f}");
    }
    Ok(())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, out)?;
            continue;
        }
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".json") || name.starts_with("COPYING") || name.starts_with("LICENSE") || name.starts_with("README") {
            continue;
        }
        out.push(p);
    }
    Ok(())
}

/// `n` synthetic mails: a quarter are replies to an earlier mail (same
/// subject with `Re:`, In-Reply-To and the References chain), about 60 %
/// carry a 20–60 KB attachment, every other one is Latin-1
/// quoted-printable, and all have a text and an HTML alternative.
fn synthetic(n: u64, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n as usize);
    let mut threads: Vec<(String, Vec<String>)> = Vec::new();
    const WORDS: &[&str] = &["ordine", "fattura", "consegna", "problema", "stampante", "contratto", "rinnovo", "account", "password", "centralino", "linea", "urgente"];
    for i in 0..n {
        let id = format!("m{i}.{seed}@customer{}.example", i % 97);
        let sender = rng.random_range(0..500);
        let reply = i > 10 && rng.random_bool(0.25);
        let (subject, refs) = if reply {
            let t = rng.random_range(0..threads.len());
            let (s, r) = threads[t].clone();
            threads[t].1.push(id.clone());
            (format!("Re: {s}"), r)
        } else {
            let s = format!("{} {} n. {i}", WORDS[rng.random_range(0..WORDS.len())], WORDS[rng.random_range(0..WORDS.len())]);
            threads.push((s.clone(), vec![id.clone()]));
            (s, Vec::new())
        };
        let latin1 = i % 2 == 0;
        let para = |rng: &mut StdRng| -> String {
            let mut p = String::new();
            for _ in 0..rng.random_range(40..120) {
                p.push_str(WORDS[rng.random_range(0..WORDS.len())]);
                p.push(' ');
            }
            p.push_str("perché è già così.\n");
            p
        };
        let mut text = String::from("Buongiorno,\n\n");
        for _ in 0..rng.random_range(2..8) {
            text.push_str(&para(&mut rng));
            text.push('\n');
        }
        if reply {
            text.push_str("\nIl giorno lun, 1 dic 2025 alle 10:00 Supporto ha scritto:\n");
            for l in para(&mut rng).lines() {
                text.push_str("> ");
                text.push_str(l);
                text.push('\n');
            }
        }
        let html = format!("<html><body><p>{}</p><script>alert(1)</script></body></html>", text.replace('\n', "<br>\n"));
        let boundary_alt = format!("alt{i}");
        let boundary_mix = format!("mix{i}");
        let mut m = String::with_capacity(60_000);
        m.push_str(&format!("From: \"Cliente {sender}\" <cliente{sender}@customer.example>\r\n"));
        m.push_str("To: support@bench.test\r\n");
        // RFC 2047 encoded subject on every third mail.
        if i % 3 == 0 {
            m.push_str(&format!("Subject: =?UTF-8?Q?{}?=\r\n", subject.replace(' ', "_")));
        } else {
            m.push_str(&format!("Subject: {subject}\r\n"));
        }
        m.push_str(&format!("Message-ID: <{id}>\r\n"));
        if let Some(last) = refs.last() {
            m.push_str(&format!("In-Reply-To: <{last}>\r\n"));
            m.push_str(&format!("References: {}\r\n", refs.iter().map(|r| format!("<{r}>")).collect::<Vec<_>>().join(" ")));
        }
        m.push_str("Date: Mon, 1 Dec 2025 10:00:00 +0100\r\nMIME-Version: 1.0\r\n");
        let attach = rng.random_bool(0.6);
        if attach {
            m.push_str(&format!("Content-Type: multipart/mixed; boundary=\"{boundary_mix}\"\r\n\r\n--{boundary_mix}\r\n"));
        }
        m.push_str(&format!("Content-Type: multipart/alternative; boundary=\"{boundary_alt}\"\r\n\r\n--{boundary_alt}\r\n"));
        if latin1 {
            m.push_str("Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n");
            m.push_str(&qp_latin1(&text));
        } else {
            m.push_str("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n");
            m.push_str(&text.replace('\n', "\r\n"));
        }
        m.push_str(&format!("\r\n--{boundary_alt}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{}\r\n--{boundary_alt}--\r\n", html.replace('\n', "\r\n")));
        if attach {
            let size = rng.random_range(20_000..60_000);
            let data: Vec<u8> = (0..size).map(|_| rng.random()).collect();
            m.push_str(&format!("\r\n--{boundary_mix}\r\nContent-Type: application/pdf; name=\"doc{i}.pdf\"\r\nContent-Disposition: attachment; filename=\"doc{i}.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"));
            m.push_str(&base64(&data));
            m.push_str(&format!("\r\n--{boundary_mix}--\r\n"));
        }
        out.push(m.into_bytes());
    }
    out
}

/// Quoted-printable of the text in ISO-8859-1 (characters outside Latin-1
/// become `?`), lines as CRLF.
fn qp_latin1(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 11 / 10);
    for line in text.lines() {
        let mut col = 0;
        for ch in line.chars() {
            let b = if (ch as u32) < 256 { ch as u32 as u8 } else { b'?' };
            let piece = if (b.is_ascii_graphic() && b != b'=') || b == b' ' { (b as char).to_string() } else { format!("={b:02X}") };
            if col + piece.len() > 73 {
                out.push_str("=\r\n");
                col = 0;
            }
            col += piece.len();
            out.push_str(&piece);
        }
        out.push_str("\r\n");
    }
    out
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 * 2 + 8);
    for (n, c) in data.chunks(3).enumerate() {
        if n > 0 && n % 19 == 0 {
            out.push_str("\r\n");
        }
        let v = (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(v >> 18) as usize & 63] as char);
        out.push(T[(v >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 { T[(v >> 6) as usize & 63] as char } else { '=' });
        out.push(if c.len() > 2 { T[v as usize & 63] as char } else { '=' });
    }
    out
}

#[derive(clap::Args, Debug)]
pub struct ImapArgs {
    #[arg(long, default_value = "sqlite")]
    backend: Backend,
    /// Mails appended, one at a time (each waits for its ticket).
    #[arg(long, default_value_t = 200)]
    mails: u64,
    /// Dovecot's IMAP address (`scripts/peers.sh start DIR` exports it).
    #[arg(long, env = "CENTRALINO_TEST_IMAP")]
    imap: String,
    #[arg(long, env = "CENTRALINO_TEST_MAIL_PASSWORD", default_value = "testpw")]
    password: String,
    #[arg(long, env = "CENTRALINO_TEST_MAIL_DOMAIN", default_value = "gw.test")]
    domain: String,
}

const APPEND: &str = "IMAP APPEND alone (per mail)";
const LATENCY: &str = "APPEND → ticket exists (per mail)";

/// `loadtest imap-latency`: the real gateway (`mailgate::Gateway`, IDLE on
/// a fresh folder of Dovecot's `support` user) against a fresh database;
/// the load generator APPENDs one synthetic mail at a time from its own
/// IMAP session and polls the store every 0.5 ms until the mail is stored
/// and ingested. The APPEND round trip itself is the baseline.
pub async fn imap_latency(args: &ImapArgs, common: &Common) -> anyhow::Result<Report> {
    use futures_like::poll_ingested;
    let (host, port) = args.imap.rsplit_once(':').context("--imap HOST:PORT")?;
    let port: u16 = port.parse().context("--imap HOST:PORT")?;
    let mut report = Report::new("imap-latency", backend_name(args.backend), serde_json::json!({"mails": args.mails, "imap": args.imap}));
    let loc = Location::new(args.backend, &format!("imap-{}", std::process::id()), &common.data_dir, common.pg_url.as_deref())?;
    loc.drop_db().await?;
    let store = loc.open(8).await?;
    let centre = store
        .create_centre(
            &Actor::system(),
            CentreInput { name: "Bench desk".into(), public: true, team_id: None, head_user_id: None, calendar_id: None, auto_ack: false, mailboxes: vec![] },
        )
        .await
        .context("creating the service centre")?
        .id;
    let folder = format!("lt{}x{}", std::process::id(), crm::now_ms());
    let cfg = mailgate::MailboxConfig::new(host, port, mailgate::Security::Plain, format!("support@{}", args.domain), mailgate::Secret::new(args.password.clone()), centre)
        .folder(folder.clone());
    let mut client = mailgate::imap::connect(&cfg).await.context("IMAP login as support")?;
    client.create(&folder).await.context("creating the folder")?;
    let uidvalidity = i64::from(client.select(&folder).await.context("selecting the folder")?.uid_validity.unwrap_or(0));
    let mut gw = mailgate::GatewayConfig::new("lt-loop");
    gw.mailboxes.push(cfg.clone());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let handle = mailgate::Gateway::new(store.clone(), gw).spawn(stop_rx)?;
    // Let the gateway log in, select and enter IDLE.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;

    let mails = synthetic(args.mails, common.seed);
    let (mut append_lat, mut lat) = (Latency::new(), Latency::new());
    let mut timeouts = 0;
    let mut all = Vec::with_capacity(mails.len());
    let t0 = Instant::now();
    for (i, m) in mails.iter().enumerate() {
        let s = Instant::now();
        client.append(&folder, None, None, m).await.context("APPEND")?;
        append_lat.record(s.elapsed());
        if poll_ingested(&store, &cfg.name, uidvalidity, i as i64 + 1).await? {
            lat.record(s.elapsed());
            all.push(s.elapsed());
        } else {
            timeouts += 1;
        }
    }
    let total = t0.elapsed();
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), handle.join()).await;
    let _ = client.logout().await;
    report.row(Row::new(APPEND, &append_lat, total, 0, Unit::Micros));
    report.row(Row::new(LATENCY, &lat, total, timeouts, Unit::Micros));
    all.sort_unstable();
    let q = |f: f64| all.get(((all.len() as f64 * f).ceil() as usize).saturating_sub(1)).map(|d| round(d.as_secs_f64() * 1e3, 1));
    report.fact("APPEND → ticket", serde_json::json!({"ticketed": all.len(), "missing after 10 s": timeouts, "p50_ms": q(0.50), "p95_ms": q(0.95), "max_ms": q(1.0)}));
    report.fact("method", "one mail at a time; ticket = raw row stored with the mail's UID and nothing left uningested; store polled every 0.5 ms; 10 s timeout per mail");
    store.close().await;
    loc.drop_db().await?;
    Ok(report)
}

mod futures_like {
    /// Waits until the mail with `uid` is stored and ingested; false after 10 s.
    pub async fn poll_ingested(store: &crm::Store, mailbox: &str, uidvalidity: i64, uid: i64) -> anyhow::Result<bool> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if store.max_mail_uid(mailbox, uidvalidity).await?.is_some_and(|m| m >= uid) && store.uningested_raw_mail(1).await?.is_empty() {
                return Ok(true);
            }
            tokio::time::sleep(std::time::Duration::from_micros(500)).await;
        }
        Ok(false)
    }
}
