//! `loadtest amd`: answering-machine detection evaluated on synthesised
//! speech.
//!
//! Human-style answers ("Hello?", "Pronto?", …) and machine greetings of
//! varied length (with a beep) are spoken by espeak-ng (several voices and
//! speeds, English and Italian) at run time into a temporary folder, band-
//! limited to 300–3400 Hz and resampled to 8 kHz 16-bit mono by sox. Each
//! sample then gets a random answer gap before the speech, a random level,
//! and white noise at a fixed SNR (seeded RNG), and is fed in 20 ms frames to
//! `dialer::amd` under several configurations. Nothing generated is kept.
//!
//! Reported per configuration: the confusion matrix (truth × verdict),
//! accuracy, the false-positive rate (a person classified as a machine —
//! the figure the Ofcom abandon form needs), the NotSure share, and decision
//! time percentiles; per SNR for the default; and the greeting-end (beep)
//! detector's hit rate and timing error on the machines.

use anyhow::{bail, Context};
use dialer::amd::{Amd, AmdConfig, GreetingEndCause, GreetingEndConfig, GreetingEndDetector, Verdict, FRAME_SAMPLES};
use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Samples per class (human, machine).
    #[arg(long, default_value_t = 400)]
    pub samples: usize,
    /// Print every misclassified sample.
    #[arg(long)]
    pub verbose: bool,
    /// Also write the corpus to this folder (`index.tsv` and one s16le
    /// `N.raw` per sample), to tune the detector offline.
    #[arg(long)]
    pub save_corpus: Option<std::path::PathBuf>,
}

const HUMAN_EN: &[&str] = &[
    "Hello?",
    "Hello, yes?",
    "Yes, who's this?",
    "Hi.",
    "Yeah?",
    "Hello, this is Mark.",
    "Good morning.",
    "Speaking.",
    "Hello, who is calling?",
];
const HUMAN_IT: &[&str] = &["Pronto?", "Sì, chi parla?", "Pronto, chi è?", "Sì?", "Buongiorno.", "Pronto, dica.", "Sì, pronto?"];
const MACHINE_EN: &[&str] = &[
    "Hi, you've reached John Smith. I can't take your call right now, please leave a message after the tone.",
    "The person you are calling is not available. Please leave a message after the beep.",
    "Hello, this is Sarah. Leave a message.",
    "Hi, it's Tom, leave a message.",
    "You have reached 0 2 0 7 9 4 6 0 0 0 0. Please leave your message after the tone.",
    "Hello, you've reached the Miller family. We're not home right now, but if you leave your name and number we will call you back.",
    "Sorry, I missed your call. Leave a message.",
];
const MACHINE_IT: &[&str] = &[
    "Ciao, sono Marco, lasciate un messaggio dopo il segnale acustico.",
    "Il cliente da lei chiamato non è al momento raggiungibile. Lasci un messaggio dopo il segnale.",
    "Risponde la segreteria telefonica di Giulia Rossi. Lasciate un messaggio dopo il bip, grazie.",
    "Sono Luca, richiamo io.",
    "Segreteria telefonica. Lasciate un messaggio.",
];
const VOICES_EN: &[&str] = &["en-us", "en-gb", "en-us+f3", "en-gb+m3", "en-us+f2", "en-gb-x-rp+f4"];
const VOICES_IT: &[&str] = &["it", "it+f3", "it+m2", "it+f4"];
const SPEEDS: &[u32] = &[140, 170, 200];
/// SNRs in dB; `None` is a clean line (a −66 dBFS noise floor only).
const SNRS: &[Option<f64>] = &[None, Some(30.0), Some(20.0), Some(10.0)];

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Truth {
    Human,
    Machine,
}

struct Sample {
    truth: Truth,
    text: &'static str,
    voice: &'static str,
    speed: u32,
    snr: Option<f64>,
    gap_ms: u32,
    pcm: Vec<i16>,
    /// Where the greeting (speech + beep) ends, ms; the message may start here.
    greeting_end_ms: u32,
}

#[derive(Serialize, Default, Clone)]
struct Figures {
    config: String,
    samples: usize,
    human_as_human: usize,
    human_as_machine: usize,
    human_as_not_sure: usize,
    machine_as_machine: usize,
    machine_as_human: usize,
    machine_as_not_sure: usize,
    /// Right verdicts / all samples (NotSure counts as wrong).
    accuracy: f64,
    /// Humans classified as machines / humans.
    false_positive_rate: f64,
    /// Machines classified as humans or NotSure / machines (they reach an agent).
    machine_to_agent_rate: f64,
    not_sure_rate: f64,
    decision_ms_p50: u64,
    decision_ms_p90: u64,
    decision_ms_p99: u64,
    decision_ms_max: u64,
    human_decision_ms_p50: u64,
    human_decision_ms_p90: u64,
}

#[derive(Serialize)]
struct BeepFigures {
    machines_detected: usize,
    ended_by_beep: usize,
    ended_by_silence: usize,
    timeout: usize,
    /// The message would start before the greeting ended (talks over it).
    premature: usize,
    error_ms_p50: u64,
    error_ms_p90: u64,
    error_ms_max: u64,
}

#[derive(Serialize)]
struct Report {
    benchmark: &'static str,
    seed: u64,
    samples_per_class: usize,
    espeak: String,
    configs: Vec<Figures>,
    default_by_snr: Vec<(String, Figures)>,
    greeting_end: BeepFigures,
}

fn tool_version(cmd: &str, arg: &str) -> anyhow::Result<String> {
    let out = Command::new(cmd)
        .arg(arg)
        .output()
        .with_context(|| format!("{cmd} not found: apt-get install -y espeak-ng sox"))?;
    Ok(String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or("").trim().to_string())
}

/// espeak-ng → sox (telephone band, 8 kHz, s16le raw) → samples.
fn synth(dir: &Path, n: usize, voice: &str, speed: u32, pitch: u32, text: &str) -> anyhow::Result<Vec<i16>> {
    let wav = dir.join(format!("{n}.wav"));
    let raw = dir.join(format!("{n}.raw"));
    let st = Command::new("espeak-ng")
        .args(["-v", voice, "-s", &speed.to_string(), "-p", &pitch.to_string(), "-w"])
        .arg(&wav)
        .arg(text)
        .status()
        .context("running espeak-ng")?;
    if !st.success() {
        bail!("espeak-ng failed for voice {voice}");
    }
    let st = Command::new("sox")
        .arg(&wav)
        .args(["-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", "-t", "raw"])
        .arg(&raw)
        .args(["highpass", "300", "lowpass", "3400"])
        .status()
        .context("running sox")?;
    if !st.success() {
        bail!("sox failed");
    }
    let bytes = std::fs::read(&raw)?;
    let mut pcm: Vec<i16> = bytes.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
    // espeak pads with silence; trim it so the gap we add is the real gap.
    let loud = |s: &i16| s.unsigned_abs() > 300;
    let start = pcm.iter().position(loud).unwrap_or(0);
    let end = pcm.iter().rposition(loud).map_or(pcm.len(), |e| e + 1);
    pcm = pcm[start..end].to_vec();
    Ok(pcm)
}

/// Mean power over the speech's active frames (RMS above a tenth of the loudest).
fn active_power(pcm: &[f64]) -> f64 {
    let frames: Vec<f64> =
        pcm.chunks(FRAME_SAMPLES).map(|f| f.iter().map(|x| x * x).sum::<f64>() / f.len() as f64).collect();
    let max = frames.iter().cloned().fold(0.0, f64::max);
    let act: Vec<f64> = frames.into_iter().filter(|&p| p > max / 100.0).collect();
    if act.is_empty() {
        return 1.0;
    }
    act.iter().sum::<f64>() / act.len() as f64
}

fn gaussian(rng: &mut StdRng) -> f64 {
    // Box–Muller; rand's core crate has no normal distribution.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

fn build_corpus(dir: &Path, per_class: usize, seed: u64) -> anyhow::Result<Vec<Sample>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut cache: HashMap<(&'static str, &'static str, u32, u32), Vec<i16>> = HashMap::new();
    let mut out = Vec::with_capacity(per_class * 2);
    for i in 0..per_class * 2 {
        let truth = if i % 2 == 0 { Truth::Human } else { Truth::Machine };
        let italian = rng.random_bool(0.4);
        let texts = match (truth, italian) {
            (Truth::Human, false) => HUMAN_EN,
            (Truth::Human, true) => HUMAN_IT,
            (Truth::Machine, false) => MACHINE_EN,
            (Truth::Machine, true) => MACHINE_IT,
        };
        let voices = if italian { VOICES_IT } else { VOICES_EN };
        let text = texts[rng.random_range(0..texts.len())];
        let voice = voices[rng.random_range(0..voices.len())];
        let speed = SPEEDS[rng.random_range(0..SPEEDS.len())];
        let pitch = [35u32, 50, 65][rng.random_range(0..3)];
        let n = cache.len();
        let speech = match cache.get(&(text, voice, speed, pitch)) {
            Some(s) => s.clone(),
            None => {
                let s = synth(dir, n, voice, speed, pitch, text)?;
                cache.insert((text, voice, speed, pitch), s.clone());
                s
            }
        };
        // Answer gap: people speak 0.2–1.5 s after pick-up; machines start
        // their greeting 0.3–2.0 s after answering.
        let gap_ms = match truth {
            Truth::Human => rng.random_range(200..1500),
            Truth::Machine => rng.random_range(300..2000),
        };
        // Level: espeak's peak scaled to −3 … −21 dBFS.
        let peak = speech.iter().map(|s| s.unsigned_abs()).max().unwrap_or(1).max(1) as f64;
        let gain = 10f64.powf(-rng.random_range(3.0..21.0) / 20.0) * 32767.0 / peak;
        let mut sig: Vec<f64> = vec![0.0; gap_ms as usize * 8];
        sig.extend(speech.iter().map(|&s| f64::from(s) * gain));
        let mut greeting_end_ms = (sig.len() / 8) as u32;
        let power = active_power(&sig[gap_ms as usize * 8..]);
        if truth == Truth::Machine {
            // Pause, then the beep: 440–1400 Hz, 0.3–0.8 s, at speech level.
            sig.extend(std::iter::repeat_n(0.0, rng.random_range(200..700) * 8));
            let hz = [440.0, 850.0, 1000.0, 1400.0][rng.random_range(0..4)];
            let amp = (2.0 * power).sqrt();
            let len = rng.random_range(300..800) * 8;
            sig.extend((0..len).map(|k| amp * (2.0 * std::f64::consts::PI * hz * k as f64 / 8000.0).sin()));
            greeting_end_ms = (sig.len() / 8) as u32;
        }
        // Then the silence of someone waiting (or a machine recording).
        sig.extend(std::iter::repeat_n(0.0, 4000 * 8));
        let snr = SNRS[(i / 2) % SNRS.len()];
        let sigma = match snr {
            Some(db) => (power / 10f64.powf(db / 10.0)).sqrt(),
            None => 32767.0 * 10f64.powf(-66.0 / 20.0),
        };
        // Noise from its own stream per sample: the number of draws follows the
        // clip's length, and espeak-ng's output length is not bit-stable from
        // run to run, so drawing it from `rng` shifted every later choice
        // (two runs of one seed synthesised 597 and 589 distinct clips).
        let mut noise = StdRng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let pcm = sig.iter().map(|&x| (x + sigma * gaussian(&mut noise)).clamp(-32768.0, 32767.0) as i16).collect();
        out.push(Sample { truth, text, voice, speed, snr, gap_ms, pcm, greeting_end_ms });
    }
    eprintln!("synthesised {} distinct clips for {} samples", cache.len(), out.len());
    Ok(out)
}

fn save_corpus(dir: &Path, corpus: &[Sample]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut index = String::from("n\ttruth\tsnr_db\tgap_ms\tgreeting_end_ms\tvoice\tspeed\ttext\n");
    for (n, s) in corpus.iter().enumerate() {
        let bytes: Vec<u8> = s.pcm.iter().flat_map(|x| x.to_le_bytes()).collect();
        std::fs::write(dir.join(format!("{n}.raw")), bytes)?;
        let snr = s.snr.map_or("clean".to_string(), |d| d.to_string());
        let truth = if s.truth == Truth::Human { "human" } else { "machine" };
        index.push_str(&format!(
            "{n}\t{truth}\t{snr}\t{}\t{}\t{}\t{}\t{}\n",
            s.gap_ms, s.greeting_end_ms, s.voice, s.speed, s.text
        ));
    }
    std::fs::write(dir.join("index.tsv"), index)?;
    Ok(())
}

fn pct(h: &Histogram<u64>, q: f64) -> u64 {
    if h.is_empty() {
        0
    } else {
        h.value_at_quantile(q)
    }
}

fn evaluate(name: &str, cfg: &AmdConfig, samples: &[&Sample], verbose: bool) -> anyhow::Result<Figures> {
    let mut f = Figures { config: name.into(), samples: samples.len(), ..Default::default() };
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000, 3)?;
    let mut human = Histogram::<u64>::new_with_bounds(1, 60_000, 3)?;
    for s in samples {
        let mut amd = Amd::new(cfg.clone());
        let d = s.pcm.chunks(FRAME_SAMPLES).find_map(|fr| amd.push_pcm(fr)).context("no decision")?;
        all.record(u64::from(d.at_ms.max(1)))?;
        match (s.truth, d.verdict) {
            (Truth::Human, Verdict::Human) => f.human_as_human += 1,
            (Truth::Human, Verdict::Machine) => f.human_as_machine += 1,
            (Truth::Human, Verdict::NotSure) => f.human_as_not_sure += 1,
            (Truth::Machine, Verdict::Machine) => f.machine_as_machine += 1,
            (Truth::Machine, Verdict::Human) => f.machine_as_human += 1,
            (Truth::Machine, Verdict::NotSure) => f.machine_as_not_sure += 1,
        }
        if s.truth == Truth::Human {
            human.record(u64::from(d.at_ms.max(1)))?;
        }
        let right = matches!((s.truth, d.verdict), (Truth::Human, Verdict::Human) | (Truth::Machine, Verdict::Machine));
        if verbose && !right {
            eprintln!(
                "{name}: {:?} {:?}/{:?} at {} ms — {:?} {} s{} gap {} ms snr {:?}",
                s.truth, d.verdict, d.reason, d.at_ms, s.text, s.voice, s.speed, s.gap_ms, s.snr
            );
        }
    }
    let n = samples.len().max(1) as f64;
    let humans = (f.human_as_human + f.human_as_machine + f.human_as_not_sure).max(1) as f64;
    let machines = (f.machine_as_machine + f.machine_as_human + f.machine_as_not_sure).max(1) as f64;
    f.accuracy = (f.human_as_human + f.machine_as_machine) as f64 / n;
    f.false_positive_rate = f.human_as_machine as f64 / humans;
    f.machine_to_agent_rate = (f.machine_as_human + f.machine_as_not_sure) as f64 / machines;
    f.not_sure_rate = (f.human_as_not_sure + f.machine_as_not_sure) as f64 / n;
    f.decision_ms_p50 = pct(&all, 0.5);
    f.decision_ms_p90 = pct(&all, 0.9);
    f.decision_ms_p99 = pct(&all, 0.99);
    f.decision_ms_max = all.max();
    f.human_decision_ms_p50 = pct(&human, 0.5);
    f.human_decision_ms_p90 = pct(&human, 0.9);
    Ok(f)
}

/// For machines the default detector got right: run the greeting-end
/// detector from the decision on and compare with the true end of greeting.
fn evaluate_greeting_end(cfg: &AmdConfig, samples: &[Sample]) -> anyhow::Result<BeepFigures> {
    let mut b = BeepFigures {
        machines_detected: 0,
        ended_by_beep: 0,
        ended_by_silence: 0,
        timeout: 0,
        premature: 0,
        error_ms_p50: 0,
        error_ms_p90: 0,
        error_ms_max: 0,
    };
    let mut err = Histogram::<u64>::new_with_bounds(1, 60_000, 3)?;
    for s in samples.iter().filter(|s| s.truth == Truth::Machine) {
        let mut amd = Amd::new(cfg.clone());
        let mut frames = s.pcm.chunks(FRAME_SAMPLES);
        let Some(d) = frames.by_ref().find_map(|fr| amd.push_pcm(fr)) else { continue };
        if d.verdict != Verdict::Machine {
            continue;
        }
        b.machines_detected += 1;
        let mut g = GreetingEndDetector::new(GreetingEndConfig::default());
        let Some(end) = frames.find_map(|fr| g.push_pcm(fr)) else { continue };
        match end.cause {
            GreetingEndCause::Beep { .. } => b.ended_by_beep += 1,
            GreetingEndCause::Silence => b.ended_by_silence += 1,
            GreetingEndCause::Timeout => b.timeout += 1,
        }
        let at = d.at_ms + end.at_ms;
        // A frame of rounding is not talking over the greeting.
        if at + 100 < s.greeting_end_ms {
            b.premature += 1;
        }
        err.record(u64::from(at.abs_diff(s.greeting_end_ms)).max(1))?;
    }
    b.error_ms_p50 = pct(&err, 0.5);
    b.error_ms_p90 = pct(&err, 0.9);
    b.error_ms_max = err.max();
    Ok(b)
}

fn print_row(label: &str, f: &Figures) {
    println!(
        "| {label} | {} | {}/{}/{} | {}/{}/{} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {} / {} / {} / {} | {} / {} |",
        f.samples,
        f.human_as_human,
        f.human_as_machine,
        f.human_as_not_sure,
        f.machine_as_machine,
        f.machine_as_human,
        f.machine_as_not_sure,
        100.0 * f.accuracy,
        100.0 * f.false_positive_rate,
        100.0 * f.machine_to_agent_rate,
        100.0 * f.not_sure_rate,
        f.decision_ms_p50,
        f.decision_ms_p90,
        f.decision_ms_p99,
        f.decision_ms_max,
        f.human_decision_ms_p50,
        f.human_decision_ms_p90,
    );
}

const HEADER: &str = "| | n | human → H/M/NS | machine → M/H/NS | accuracy | FP (human→machine) | machine→agent | NotSure | decision ms p50/p90/p99/max | human decision ms p50/p90 |\n|---|---|---|---|---|---|---|---|---|---|";

pub fn run(a: &Args, json: Option<&Path>, seed: u64) -> anyhow::Result<()> {
    let espeak = tool_version("espeak-ng", "--version")?;
    tool_version("sox", "--version")?;
    let dir = tempfile::tempdir()?;
    let corpus = build_corpus(dir.path(), a.samples, seed)?;
    if let Some(out) = &a.save_corpus {
        save_corpus(out, &corpus)?;
    }
    let configs: Vec<(&str, AmdConfig)> = vec![
        ("asterisk defaults (5 s, 2 words, fixed 256)", AmdConfig::asterisk()),
        ("asterisk, capped 2.5 s", AmdConfig { total_analysis_ms: 2500, ..AmdConfig::asterisk() }),
        ("centralino untuned (2.5 s, 3 words, adaptive)", AmdConfig::untuned()),
        ("centralino default (tuned on seed 1)", AmdConfig::default()),
        ("tuned, no deadline rules", AmdConfig { deadline_human_silence_ms: 0, deadline_machine_voice_ms: 0, ..AmdConfig::default() }),
        ("tuned, initial silence 2500", AmdConfig { initial_silence_ms: 2500, ..AmdConfig::default() }),
        ("tuned, fixed threshold", AmdConfig { adaptive_threshold: false, ..AmdConfig::default() }),
    ];
    let all: Vec<&Sample> = corpus.iter().collect();
    let mut figs = Vec::new();
    println!("{HEADER}");
    for (name, cfg) in &configs {
        let verbose = a.verbose && name.starts_with("centralino default");
        let f = evaluate(name, cfg, &all, verbose)?;
        print_row(name, &f);
        figs.push(f);
    }
    println!("\nDefault configuration by SNR:\n\n{HEADER}");
    let mut by_snr = Vec::new();
    for snr in SNRS {
        let label = snr.map_or("clean".to_string(), |d| format!("{d} dB"));
        let sub: Vec<&Sample> = corpus.iter().filter(|s| s.snr == *snr).collect();
        let f = evaluate(&label, &AmdConfig::default(), &sub, false)?;
        print_row(&label, &f);
        by_snr.push((label, f));
    }
    let beep = evaluate_greeting_end(&AmdConfig::default(), &corpus)?;
    println!(
        "\nGreeting end after a machine verdict: {} machines, {} by beep, {} by silence, {} timeouts, {} premature; |error| p50 {} ms, p90 {} ms, max {} ms",
        beep.machines_detected,
        beep.ended_by_beep,
        beep.ended_by_silence,
        beep.timeout,
        beep.premature,
        beep.error_ms_p50,
        beep.error_ms_p90,
        beep.error_ms_max
    );
    if let Some(path) = json {
        let report = Report {
            benchmark: "amd",
            seed,
            samples_per_class: a.samples,
            espeak,
            configs: figs,
            default_by_snr: by_snr,
            greeting_end: beep,
        };
        std::fs::write(path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
