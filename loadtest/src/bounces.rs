//! `loadtest bounces`: agreement of `mailgate::bounce::classify` with a
//! labelled bounce corpus (sisimai's set-of-emails with labels taken from
//! go-sisimai's tests; see `../shared/corpora/README.md`).
//!
//! Reported: recipient extraction rate (labelled rows for which a recipient
//! was found), reason agreement, hard/soft agreement, and false positives on
//! the corpus's `not/` folder (messages that are not bounces). A file with
//! several labelled rows is compared row by row with the failures in the
//! order the classifier found them. The corpus is read from disk and never
//! copied into the repository.

use anyhow::Context;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Folder with `bsd/*.eml` (and optionally `not/`), or a folder of .eml files.
    #[arg(long)]
    pub corpus: PathBuf,
    /// Labels (JSON list of {file, index, reason, hard, status}); default CORPUS/labels.json.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Print every disagreement.
    #[arg(long)]
    pub verbose: bool,
}

#[derive(Deserialize)]
struct Label {
    file: String,
    index: usize,
    #[serde(default)]
    status: String,
    reason: String,
    hard: bool,
}

#[derive(Serialize, Default)]
struct Figures {
    files: usize,
    labelled_rows: usize,
    recipient_found: usize,
    reason_agree: usize,
    hard_agree: usize,
    not_files: usize,
    not_false_positives: usize,
    recipient_rate: f64,
    reason_agreement: f64,
    hard_agreement: f64,
    ms_per_message: f64,
    confusion: BTreeMap<String, usize>,
}

fn eml_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    Ok(v)
}

pub fn run(a: &Args, json: Option<&Path>) -> anyhow::Result<()> {
    let bsd = if a.corpus.join("bsd").is_dir() { a.corpus.join("bsd") } else { a.corpus.clone() };
    let labels_path = a.labels.clone().unwrap_or_else(|| a.corpus.join("labels.json"));
    let labels: Vec<Label> = match std::fs::read(&labels_path) {
        Ok(b) => serde_json::from_slice(&b).with_context(|| format!("parsing {}", labels_path.display()))?,
        Err(_) => Vec::new(),
    };
    let mut fig = Figures::default();
    let mut results = BTreeMap::new();
    let started = std::time::Instant::now();
    for p in eml_files(&bsd)? {
        let raw = std::fs::read(&p)?;
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        results.insert(name, mailgate::bounce::classify(&raw));
        fig.files += 1;
    }
    let not = a.corpus.join("not");
    if not.is_dir() {
        for p in eml_files(&not)? {
            let raw = std::fs::read(&p)?;
            fig.not_files += 1;
            let r = mailgate::bounce::classify(&raw);
            if r.is_bounce() {
                fig.not_false_positives += 1;
                if a.verbose {
                    println!("false positive: {}", p.display());
                }
            }
        }
    }
    let n_msgs = (fig.files + fig.not_files).max(1);
    fig.ms_per_message = started.elapsed().as_secs_f64() * 1000.0 / n_msgs as f64;
    for l in &labels {
        let Some(r) = results.get(&l.file) else { continue };
        fig.labelled_rows += 1;
        // Reasons that are not failures are reported as a single entry.
        let f = r.failures.get(l.index.saturating_sub(1)).or_else(|| r.failures.first());
        if f.is_some_and(|f| f.recipient.is_some()) {
            fig.recipient_found += 1;
        }
        let got = f.map(|f| f.reason.as_str()).unwrap_or("none");
        if got == l.reason {
            fig.reason_agree += 1;
        } else {
            *fig.confusion.entry(format!("{} -> {}", l.reason, got)).or_default() += 1;
            if a.verbose {
                println!("{} #{}: label {} ({}), got {} ({})", l.file, l.index, l.reason, l.status, got, f.and_then(|f| f.status.clone()).unwrap_or_default());
            }
        }
        if f.is_some_and(|f| f.hard) == l.hard {
            fig.hard_agree += 1;
        }
    }
    let rows = fig.labelled_rows.max(1) as f64;
    fig.recipient_rate = fig.recipient_found as f64 / rows;
    fig.reason_agreement = fig.reason_agree as f64 / rows;
    fig.hard_agreement = fig.hard_agree as f64 / rows;
    println!("bounce classification on {} ({} files, {} labelled rows)", a.corpus.display(), fig.files, fig.labelled_rows);
    println!("  recipient extracted   {:>6.1}%  ({}/{})", fig.recipient_rate * 100.0, fig.recipient_found, fig.labelled_rows);
    println!("  reason agreement      {:>6.1}%  ({}/{})", fig.reason_agreement * 100.0, fig.reason_agree, fig.labelled_rows);
    println!("  hard/soft agreement   {:>6.1}%  ({}/{})", fig.hard_agreement * 100.0, fig.hard_agree, fig.labelled_rows);
    println!("  false positives not/  {} of {}", fig.not_false_positives, fig.not_files);
    println!("  {:.3} ms per message", fig.ms_per_message);
    let mut top: Vec<_> = fig.confusion.iter().collect();
    top.sort_by(|x, y| y.1.cmp(x.1));
    for (k, v) in top.iter().take(10) {
        println!("  {v:>4}  {k}");
    }
    if let Some(path) = json {
        std::fs::write(path, serde_json::to_vec_pretty(&fig)?).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
