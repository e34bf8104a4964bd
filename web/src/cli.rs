//! Glue for the command-line subcommands that do more than start the server:
//! turning domain errors into readable messages, and the CSV import with its
//! progress bar and reject file.

use crm::Store;
use std::path::Path;

/// A readable error from a domain error, listing invalid fields.
pub fn describe(e: crm::Error) -> anyhow::Error {
    match e {
        crm::Error::Invalid(fields) => {
            let list: Vec<String> = fields.iter().map(|f| format!("{}: {}", f.field, f.reason)).collect();
            anyhow::anyhow!("invalid input — {}", list.join("; "))
        }
        other => anyhow::Error::new(other),
    }
}

/// `centralino import parties FILE`: automatic column mapping (headers that
/// name a field, in English or Italian) refined by `--map Header=field`; a
/// progress bar; a reject file with the line number and reason of every bad
/// row. Re-running the same file creates nothing twice.
pub async fn import_parties(store: &Store, file: &Path, map: &[String], rejects: Option<&Path>, owner: Option<&str>) -> anyhow::Result<()> {
    use anyhow::Context;
    use crm::import::{ImportMapping, ImportOptions};
    use std::io::BufRead;
    let sys = crm::Actor::system();
    let owner_id = match owner {
        Some(u) => Some(store.find_user_by_username(u).await?.with_context(|| format!("no user named {u:?}"))?.id),
        None => None,
    };
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    // Count the lines first: cheap next to the import, and it gives the
    // progress bar a true length.
    let mut first = String::new();
    let mut total = 0u64;
    for (i, line) in std::io::BufReader::new(&f).split(b'\n').enumerate() {
        let line = line.with_context(|| format!("reading {}", file.display()))?;
        if i == 0 {
            first = String::from_utf8_lossy(&line).trim_end_matches('\r').to_string();
        } else {
            total += 1;
        }
    }
    let delim = [';', ',', '\t', '|'].into_iter().max_by_key(|d| first.matches(*d).count()).unwrap_or(',');
    let headers: Vec<String> = first.split(delim).map(|h| h.trim().trim_matches('"').to_string()).collect();
    let mut mapping = ImportMapping::auto(&headers);
    for m in map {
        let (h, field) = m.split_once('=').with_context(|| format!("--map {m:?}: expected HEADER=FIELD"))?;
        if !headers.iter().any(|x| x == h.trim()) {
            anyhow::bail!("--map {m:?}: the file has no column {:?} (columns: {})", h.trim(), headers.join(", "));
        }
        mapping.columns.insert(h.trim().to_string(), field.trim().to_string());
    }
    let options = ImportOptions { owner_id, consent_source: Some(format!("import of {}", file.display())), ..Default::default() };
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("importing {bar:40} {pos}/{len} rows  {per_sec}  eta {eta}  {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let reader = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let report = store
        .import_parties(&sys, reader, &mapping, &options, |p| {
            bar.set_position(p.rows);
            bar.set_message(format!("new {} · updated {} · skipped {} · rejected {}", p.inserted, p.updated, p.skipped, p.rejected));
        })
        .await
        .map_err(describe)?;
    bar.finish();
    let rejects_path = rejects.map(Path::to_path_buf).unwrap_or_else(|| {
        let mut p = file.as_os_str().to_owned();
        p.push(".rejects.csv");
        p.into()
    });
    if !report.rejected.is_empty() {
        let out = std::fs::File::create(&rejects_path).with_context(|| format!("creating {}", rejects_path.display()))?;
        report.write_rejects(out).context("writing the reject file")?;
    }
    let secs = (report.elapsed_ms as f64 / 1000.0).max(0.001);
    println!(
        "{} rows in {:.1} s ({:.0} rows/s): {} new, {} updated, {} already present, {} companies created, {} rejected",
        report.rows,
        secs,
        report.rows as f64 / secs,
        report.inserted,
        report.updated,
        report.skipped,
        report.companies_created,
        report.rejected.len()
    );
    if !report.rejected.is_empty() {
        println!("rejected rows with line numbers and reasons: {}", rejects_path.display());
    }
    Ok(())
}

/// `centralino bounce classify FILE...`: one JSON line per file. The top-level
/// `recipient`/`reason`/`hard`/`status` describe the first failed recipient;
/// `failures` lists them all. An unreadable file is reported on its line
/// with an `error` and does not stop the others.
pub fn bounce_classify(files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for f in files {
        let line = match std::fs::read(f) {
            Ok(raw) => {
                let r = mailgate::bounce::classify(&raw);
                let first = r.failures.first();
                serde_json::json!({
                    "file": f.display().to_string(),
                    "is_bounce": r.is_bounce(),
                    "kind": r.kind,
                    "recipient": first.and_then(|x| x.recipient.clone()),
                    "reason": first.map(|x| x.reason),
                    "hard": first.is_some_and(|x| x.hard),
                    "status": first.and_then(|x| x.status.clone()),
                    "verp_token": r.verp_token,
                    "malformed": r.malformed,
                    "failures": r.failures,
                })
            }
            Err(e) => serde_json::json!({ "file": f.display().to_string(), "error": e.to_string() }),
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `centralino dialer claim-bench`: drains a campaign's hopper as a dialer
/// node would, without dialing — claim a batch, hold each lead, book it
/// done — printing one JSON line per claimed lead. Two of these on one
/// PostgreSQL database show that claims never hand a lead to both
/// (`FOR UPDATE SKIP LOCKED`).
pub async fn dialer_claim_bench(store: &Store, campaign: i64, node: &str, batch: usize, hold_ms: u64) -> anyhow::Result<()> {
    use std::io::Write;
    let id = crm::dialer_store::DialerCampaignId(campaign);
    let us = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    loop {
        let claim = store.dialer_claim(id, batch.max(1), crm::now_ms(), node).await.map_err(describe)?;
        if claim.leads.is_empty() {
            break;
        }
        for lead in claim.leads {
            let claimed = us();
            tokio::time::sleep(std::time::Duration::from_millis(hold_ms)).await;
            let done = crm::dialer_store::AttemptResult::Disposed { final_: true, callback_at: None, callback_agent: None };
            store.dialer_finish(lead.attempt_id, done, crm::now_ms()).await.map_err(describe)?;
            let line = serde_json::json!({"lead": lead.lead_id.0, "attempt": lead.attempt_id, "node": node, "claimed_us": claimed, "finished_us": us()});
            writeln!(out, "{line}")?;
            n += 1;
        }
    }
    eprintln!("{node}: claimed {n} leads");
    Ok(())
}
