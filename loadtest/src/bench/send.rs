//! `loadtest send`: campaign sending throughput through the real peers.
//! Email: a campaign to N recipients on SQLite, drained by the real
//! [`CampaignSender`] — claim, merge, link rewriting, Ed25519 DKIM, and the
//! hand-off to the local Postfix (the relay's 250) — in mails per second.
//! SMS: single-part `submit_sm`s to the fake SMSC (peers.sh) with a window
//! of 10, in submits per second, through [`SmppClient`].

use crate::Common;
use anyhow::Context;
use crm::lists::{ListKind, NewList};
use crm::parties::{EmailInput, PartyInput};
use crm::{Actor, Channel, StoreOptions};
use loadtest::report::{Latency, Report, Row, Unit};
use mailgate::campaign::relay::{Relay, lettre};
use mailgate::campaign::{CampaignConfig, CampaignSender};
use mailgate::dkim::{Algorithm, Dkim};
use mailgate::smpp::{SmppClient, SmppConfig, split};
use mailgate::tracking::Signer;
use mailgate::{Security, SmtpConfig};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Campaign mails to send.
    #[arg(long, default_value_t = 5_000)]
    mails: u64,
    /// SMS submits.
    #[arg(long, default_value_t = 20_000)]
    sms: u64,
    /// Mails in flight (the relay pool's size).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The local Postfix, HOST:PORT.
    #[arg(long, env = "CENTRALINO_TEST_SMTP")]
    smtp: Option<String>,
    /// The fake SMSC, HOST:PORT.
    #[arg(long, env = "CENTRALINO_TEST_SMSC")]
    smsc: Option<String>,
    /// Submits awaiting their response at once.
    #[arg(long, default_value_t = 10)]
    window: usize,
}

const MAIL: &str = "email: claim + render + DKIM Ed25519 + SMTP 250 (per mail)";
const BUILD: &str = "CPU per mail: merge + links + DKIM Ed25519 + format (1 thread)";
const MTA: &str = "baseline: one pre-built mail re-sent, same pool → SMTP 250";
const SMS: &str = "SMS: submit_sm → submit_sm_resp (per submit)";

pub async fn run(args: &Args, common: &Common) -> anyhow::Result<Report> {
    let mut report = Report::new("send", "sqlite", serde_json::json!({"mails": args.mails, "sms": args.sms, "concurrency": args.concurrency, "window": args.window}));
    if let Some(smtp) = &args.smtp {
        let (base, brow) = mta_baseline(args, smtp).await?;
        let (rate, row, build) = mail(args, common, smtp).await?;
        report.row(brow);
        report.row(row);
        report.row(build);
        report.fact("email / baseline", format!("{:.2}", rate / base));
        report.check("email", "≥ 2,000 mails/s (Ed25519)", format!("{rate:.0} mails/s (the MTA alone took {base:.0}/s)"), rate >= 2_000.0);
    }
    if let Some(smsc) = &args.smsc {
        let (rate, row, throttled) = sms(args, smsc).await?;
        report.row(row);
        report.fact("sms throttled answers", throttled);
        report.fact("sms rate", format!("{rate:.0} submits/s"));
    }
    Ok(report)
}

async fn mail(args: &Args, common: &Common, smtp: &str) -> anyhow::Result<(f64, Row, Row)> {
    std::fs::create_dir_all(&common.data_dir)?;
    let path = common.data_dir.join(format!("send-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let store = crm::Store::open(StoreOptions::new(path.to_string_lossy().to_string())).await.context("opening the store")?;
    let mut ids = Vec::with_capacity(args.mails as usize);
    for i in 0..args.mails {
        let input = PartyInput {
            kind: "person".into(),
            name: Some(format!("Cliente {i}")),
            first_name: Some(format!("Nome{i}")),
            emails: vec![EmailInput { address: format!("customer+loadsend{}@gw.test", i % 8), kind: None }],
            ..Default::default()
        };
        let id = store.create_party(&Actor::system(), input).await?.id;
        store.set_consent(&Actor::system(), id, Channel::Email, true, "loadtest").await?;
        ids.push(id);
    }
    let list = store.create_list(&Actor::system(), NewList { name: "send".into(), description: None, kind: ListKind::Static, filter: None, party_ids: ids.clone() }).await?;
    let camp = store.create_campaign("send", "", 0, None, crm::now_ms()).await?;
    let msg = store
        .add_campaign_message(
            camp.id,
            Channel::Email,
            "Ciao {{ first_name }}",
            "Ciao {{ first_name }}, le offerte: https://shop.example/offerte e https://shop.example/vini",
            "<html><body><p>Ciao <b>{{ first_name }}</b>, <a href=\"https://shop.example/offerte\">offerte</a></p></body></html>",
            list.id,
            crm::now_ms(),
        )
        .await?;
    store.launch_message(msg, "gw.test", crm::now_ms()).await?;
    let cfg_smtp = smtp_config(smtp)?;
    let mut cfg = CampaignConfig::new(cfg_smtp, "gw.test", "https://track.example");
    cfg.concurrency = args.concurrency;
    cfg.batch = 1_000;
    // A fixed test key (the seed [7; 32], base64): signing cost does not depend on it.
    let dkim = Dkim::new("s2026", "gw.test", Algorithm::Ed25519, "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=")?;
    let sender = CampaignSender::new(cfg, Signer::new(&store.campaign_secret().await?), Some(dkim))?;
    // CPU cost of one mail without store or relay: merge, links, pixel,
    // headers, DKIM Ed25519 and the final formatting, on one thread.
    let info = store.send_info(msg).await?;
    let ctxs = store.merge_contexts(&ids[..ids.len().min(1_000)]).await?;
    let mut build = Latency::new();
    let b0 = Instant::now();
    for (i, p) in ids.iter().take(1_000).enumerate() {
        let row = crm::campaigns::Claimed { outbox_id: i as i64 + 1, party_id: *p, address: format!("customer+loadsend{}@gw.test", i % 8), message_key: format!("k{i}@gw.test"), attempts: 1 };
        let s = Instant::now();
        let m = sender.build(msg, &info, &row, &ctxs[&p.0], crm::now_ms())?;
        std::hint::black_box(m.formatted());
        build.record(s.elapsed());
    }
    let built = ids.len().min(1_000) as f64;
    let build_row = Row::new(BUILD, &build, b0.elapsed(), 0, Unit::Micros).with_rate(built / b0.elapsed().as_secs_f64(), "mails");
    let mut sender = sender;
    let timings = sender.record_timings();
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut errors = 0u64;
    while sent + errors < args.mails && t0.elapsed() < Duration::from_secs(300) {
        let r = sender.drain(&store, crm::now_ms()).await?;
        sent += r.sent as u64;
        errors += r.failed as u64;
        if r.sent + r.failed == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let el = t0.elapsed();
    let rate = sent as f64 / el.as_secs_f64();
    // Every row committed `sent` (the group commit finished with the round).
    let m = store.message_monitor(msg).await?;
    anyhow::ensure!(m.sent as u64 == sent, "monitor says {} sent, the sender {sent}", m.sent);
    let mut lat = Latency::new();
    for d in timings.lock().map(|v| v.clone()).unwrap_or_default() {
        lat.record(d);
    }
    store.close().await;
    let _ = std::fs::remove_file(&path);
    Ok((rate, Row::new(MAIL, &lat, el, errors, Unit::Micros).with_rate(rate, "mails"), build_row))
}

/// What the MTA accepts through the same pool with no store, no render and
/// no signing: one mail of the campaign's size, signed once, re-sent.
async fn mta_baseline(args: &Args, smtp: &str) -> anyhow::Result<(f64, Row)> {
    let relay = std::sync::Arc::new(Relay::new(smtp_config(smtp)?, args.concurrency));
    let dkim = Dkim::new("s2026", "gw.test", Algorithm::Ed25519, "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=")?;
    let text = "Ciao Nome1, le offerte: https://track.example/t/c/AQFjAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA e https://track.example/t/c/AQFjAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB\n\n--\nUnsubscribe: https://track.example/u/AQF1AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n";
    let html = "<html><body><p>Ciao <b>Nome1</b>, <a href=\"https://track.example/t/c/AQFjAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\">offerte</a></p><img src=\"https://track.example/t/o/AQFvAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.gif\" width=\"1\" height=\"1\" alt=\"\"></body></html>";
    let mut m = lettre::Message::builder()
        .from("news@gw.test".parse()?)
        .to("customer+loadsend1@gw.test".parse()?)
        .subject("Ciao Nome1")
        .message_id(Some("<baseline@gw.test>".into()))
        .multipart(lettre::message::MultiPart::alternative_plain_html(text.to_string(), html.to_string()))?;
    dkim.sign(&mut m);
    let raw = std::sync::Arc::new(m.formatted());
    let n = args.mails;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (relay, raw, next) = (relay.clone(), raw.clone(), next.clone());
        tasks.spawn(async move {
            let mut out = vec![];
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break out;
                }
                let to: lettre::Address = format!("customer+loadsend{}@gw.test", i % 8).parse().expect("address");
                let env = lettre::address::Envelope::new(Some("bounces@gw.test".parse().expect("address")), vec![to]).expect("envelope");
                let s = Instant::now();
                let ok = relay.send(&env, &raw).await.is_ok();
                out.push((s.elapsed(), ok));
            }
        });
    }
    let mut lat = Latency::new();
    let mut errors = 0;
    while let Some(r) = tasks.join_next().await {
        for (d, ok) in r? {
            lat.record(d);
            errors += u64::from(!ok);
        }
    }
    let el = t0.elapsed();
    relay.close().await;
    let rate = (n - errors) as f64 / el.as_secs_f64();
    Ok((rate, Row::new(MTA, &lat, el, errors, Unit::Micros).with_rate(rate, "mails")))
}

fn smtp_config(smtp: &str) -> anyhow::Result<SmtpConfig> {
    let (host, port) = smtp.rsplit_once(':').context("--smtp HOST:PORT")?;
    Ok(SmtpConfig {
        host: host.into(),
        port: port.parse()?,
        security: Security::Plain,
        credentials: None,
        default_from: crm::EmailAddress::parse("news@gw.test").map_err(anyhow::Error::msg)?,
        timeout: Duration::from_secs(30),
    })
}

async fn sms(args: &Args, smsc: &str) -> anyhow::Result<(f64, Row, u32)> {
    let mut cfg = SmppConfig::new(smsc, "loadtest", "secret");
    cfg.window = args.window;
    let (client, mut receipts) = SmppClient::connect(cfg).await?;
    // Receipts are drained and dropped: this measures submits.
    tokio::spawn(async move { while receipts.recv().await.is_some() {} });
    let part = split("Ciao, la vendemmia è arrivata: offerte in cantina fino a domenica.", 0).remove(0);
    let t0 = Instant::now();
    // `window` workers take numbers from a shared counter: at most
    // `window` submits are ever outstanding, as in the sender.
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.window.max(1) {
        let (client, part, next, total) = (client.clone(), part.clone(), next.clone(), args.sms);
        tasks.spawn(async move {
            let mut out = vec![];
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break out;
                }
                let s = Instant::now();
                let ok = client.submit(&format!("+39333{:07}", i % 10_000_000), &part).await.is_ok();
                out.push((s.elapsed(), ok));
            }
        });
    }
    let mut results: Vec<(Duration, bool)> = vec![];
    while let Some(r) = tasks.join_next().await {
        results.extend(r?);
    }
    let el = t0.elapsed();
    let mut lat = Latency::new();
    let mut errors = 0;
    for (d, ok) in &results {
        lat.record(*d);
        errors += u64::from(!ok);
    }
    let rate = (args.sms - errors) as f64 / el.as_secs_f64();
    client.unbind().await;
    Ok((rate, Row::new(SMS, &lat, el, errors, Unit::Micros).with_rate(rate, "submits"), client.throttled_count()))
}
