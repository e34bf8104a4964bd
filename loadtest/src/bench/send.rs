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
const SMS: &str = "SMS: submit_sm → submit_sm_resp (per submit)";

pub async fn run(args: &Args, common: &Common) -> anyhow::Result<Report> {
    let mut report = Report::new("send", "sqlite", serde_json::json!({"mails": args.mails, "sms": args.sms, "concurrency": args.concurrency, "window": args.window}));
    if let Some(smtp) = &args.smtp {
        let (rate, row) = mail(args, common, smtp).await?;
        report.row(row);
        report.check("email", "≥ 2,000 mails/s (Ed25519)", format!("{rate:.0} mails/s"), rate >= 2_000.0);
    }
    if let Some(smsc) = &args.smsc {
        let (rate, row, throttled) = sms(args, smsc).await?;
        report.row(row);
        report.fact("sms throttled answers", throttled);
        report.fact("sms rate", format!("{rate:.0} submits/s"));
    }
    Ok(report)
}

async fn mail(args: &Args, common: &Common, smtp: &str) -> anyhow::Result<(f64, Row)> {
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
    let list = store.create_list(&Actor::system(), NewList { name: "send".into(), description: None, kind: ListKind::Static, filter: None, party_ids: ids }).await?;
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
    let (host, port) = smtp.rsplit_once(':').context("--smtp HOST:PORT")?;
    let cfg_smtp = SmtpConfig {
        host: host.into(),
        port: port.parse()?,
        security: Security::Plain,
        credentials: None,
        default_from: crm::EmailAddress::parse("news@gw.test").map_err(anyhow::Error::msg)?,
        timeout: Duration::from_secs(30),
    };
    let mut cfg = CampaignConfig::new(cfg_smtp, "gw.test", "https://track.example");
    cfg.concurrency = args.concurrency;
    cfg.batch = 1_000;
    // A fixed test key (the seed [7; 32], base64): signing cost does not depend on it.
    let dkim = Dkim::new("s2026", "gw.test", Algorithm::Ed25519, "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=")?;
    let sender = CampaignSender::new(cfg, Signer::new(&store.campaign_secret().await?), Some(dkim))?;
    let t0 = Instant::now();
    let mut sent = 0u64;
    let mut errors = 0u64;
    let mut lat = Latency::new();
    while sent + errors < args.mails && t0.elapsed() < Duration::from_secs(300) {
        let r0 = Instant::now();
        let r = sender.drain(&store, crm::now_ms()).await?;
        if r.sent > 0 {
            // Per-mail time in this round (rounds are concurrency-wide).
            let per = r0.elapsed() / r.sent as u32;
            for _ in 0..r.sent {
                lat.record(per);
            }
        }
        sent += r.sent as u64;
        errors += r.failed as u64;
        if r.sent + r.failed == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let el = t0.elapsed();
    let rate = sent as f64 / el.as_secs_f64();
    store.close().await;
    let _ = std::fs::remove_file(&path);
    Ok((rate, Row::new(MAIL, &lat, el, errors, Unit::Micros).with_rate(rate, "mails")))
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
