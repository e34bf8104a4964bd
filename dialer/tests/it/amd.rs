//! Answering-machine detection on small synthetic signals generated here:
//! "words" are bursts of a few harmonics under a rounded envelope with a
//! little noise, silence is near-zero line noise. No TTS needed; the espeak
//! evaluation lives in `loadtest amd`.

use dialer::amd::*;

/// Tiny deterministic noise source (xorshift) so tests need no RNG crate.
struct Noise(u64);
impl Noise {
    fn next(&mut self, amp: f32) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0) * amp
    }
}

/// A signal built piece by piece.
struct Sig {
    pcm: Vec<i16>,
    noise: Noise,
    floor: f32,
}

impl Sig {
    fn new(floor: f32) -> Self {
        Self { pcm: Vec::new(), noise: Noise(0x9E37_79B9_7F4A_7C15), floor }
    }
    fn silence(mut self, ms: u32) -> Self {
        for _ in 0..ms * 8 {
            let v = self.noise.next(self.floor);
            self.pcm.push(v as i16);
        }
        self
    }
    /// A voiced word: 150 Hz fundamental with harmonics, sine envelope.
    fn word(mut self, ms: u32) -> Self {
        let n = ms * 8;
        for i in 0..n {
            let t = i as f32 / 8000.0;
            let env = (std::f32::consts::PI * i as f32 / n as f32).sin().powf(0.3);
            let f = 150.0;
            let v = (1..6).map(|h| (2.0 * std::f32::consts::PI * f * h as f32 * t).sin() / h as f32).sum::<f32>();
            let s = env * 5000.0 * v + self.noise.next(self.floor + 300.0);
            self.pcm.push(s.clamp(-32767.0, 32767.0) as i16);
        }
        self
    }
    fn tone(mut self, hz: f32, ms: u32) -> Self {
        for i in 0..ms * 8 {
            let t = i as f32 / 8000.0;
            let s = 8000.0 * (2.0 * std::f32::consts::PI * hz * t).sin() + self.noise.next(self.floor);
            self.pcm.push(s as i16);
        }
        self
    }
    /// Continuous machine-style speech: words with short gaps.
    fn talk(mut self, ms: u32, word_ms: u32, gap_ms: u32) -> Self {
        let mut done = 0;
        while done < ms {
            self = self.word(word_ms).silence(gap_ms);
            done += word_ms + gap_ms;
        }
        self
    }
}

fn run(cfg: AmdConfig, pcm: &[i16]) -> Decision {
    let mut amd = Amd::new(cfg);
    for f in pcm.chunks(FRAME_SAMPLES) {
        if let Some(d) = amd.push_pcm(f) {
            return d;
        }
    }
    panic!("no decision after {} ms", pcm.len() / 8);
}

#[test]
fn hello_then_silence_is_human_after_the_greeting_silence() {
    let s = Sig::new(20.0).silence(500).word(400).silence(3000);
    let d = run(AmdConfig::default(), &s.pcm);
    assert_eq!((d.verdict, d.reason), (Verdict::Human, Reason::AfterGreetingSilence), "{d:?}");
    // 500 ms gap + 400 ms word + 600 ms silence, within two frames.
    assert!((1460..=1560).contains(&d.at_ms), "{d:?}");
    assert_eq!(d.words, 1);
    assert!((440..=560).contains(&d.initial_silence_ms), "{d:?}");
}

#[test]
fn two_short_words_are_still_human() {
    let s = Sig::new(20.0).silence(400).word(250).silence(300).word(300).silence(3000);
    let d = run(AmdConfig::default(), &s.pcm);
    assert_eq!(d.verdict, Verdict::Human, "{d:?}");
    assert_eq!(d.words, 2);
}

#[test]
fn long_continuous_greeting_is_a_machine() {
    // Gaps of 30 ms are shorter than between_words_silence: one long run.
    let s = Sig::new(20.0).silence(600).talk(6000, 400, 30);
    let d = run(AmdConfig::default(), &s.pcm);
    assert_eq!((d.verdict, d.reason), (Verdict::Machine, Reason::LongGreeting), "{d:?}");
    assert!(d.at_ms <= 2300, "{d:?}");
}

#[test]
fn many_words_is_a_machine() {
    let s = Sig::new(20.0).silence(300).talk(5000, 160, 300);
    let d = run(AmdConfig::default(), &s.pcm);
    assert_eq!((d.verdict, d.reason), (Verdict::Machine, Reason::MaxWords), "{d:?}");
    assert_eq!(d.words, 3);
}

#[test]
fn dead_air_is_a_machine_by_initial_silence() {
    let s = Sig::new(20.0).silence(6000);
    let d = run(AmdConfig::default(), &s.pcm);
    assert_eq!((d.verdict, d.reason), (Verdict::Machine, Reason::InitialSilence), "{d:?}");
    assert_eq!(d.at_ms, 1700);
}

#[test]
fn clicks_do_not_end_the_initial_silence() {
    let mut s = Sig::new(20.0);
    for _ in 0..10 {
        s = s.silence(300).word(40);
    }
    let d = run(AmdConfig::default(), &s.pcm);
    assert_eq!(d.reason, Reason::InitialSilence, "{d:?}");
}

#[test]
fn the_decision_is_capped_at_two_and_a_half_seconds() {
    // A late, long "hello": the after-greeting silence would end at
    // 1200 + 900 + 600 = 2700 ms. At the 2.5 s deadline the greeting has
    // been short and silent for 400 ms: a person waiting.
    let s = Sig::new(20.0).silence(1200).word(900).silence(3000);
    let d = run(AmdConfig::default(), &s.pcm);
    assert_eq!((d.verdict, d.reason, d.at_ms), (Verdict::Human, Reason::DeadlinePause, 2500), "{d:?}");
    // Without the deadline rules (the untuned detector) it is NotSure.
    let d = run(AmdConfig::untuned(), &s.pcm);
    assert_eq!((d.verdict, d.reason, d.at_ms), (Verdict::NotSure, Reason::TooLong, 2500), "{d:?}");
    // Asterisk's 5 s window waits and gets it right, 0.5 s later.
    let d = run(AmdConfig { adaptive_threshold: true, ..AmdConfig::asterisk() }, &s.pcm);
    assert_eq!(d.verdict, Verdict::Human, "{d:?}");
    assert!(d.at_ms > 2500);
    // Any cap holds for any signal.
    let cfg = AmdConfig { total_analysis_ms: 1200, ..AmdConfig::default() };
    for sig in [Sig::new(20.0).silence(4000), Sig::new(20.0).silence(300).talk(4000, 400, 30)] {
        let d = run(cfg.clone(), &sig.pcm);
        assert!(d.at_ms <= 1200, "{d:?}");
    }
}

#[test]
fn a_late_greeting_still_talking_at_the_deadline_is_a_machine() {
    // Starts at 1.5 s (after the initial-silence limit would be too late to
    // catch it), then talks on: 1 s of voice by the deadline.
    let s = Sig::new(20.0).silence(1500).talk(4000, 400, 30);
    let d = run(AmdConfig::default(), &s.pcm);
    assert_eq!((d.verdict, d.reason, d.at_ms), (Verdict::Machine, Reason::DeadlineVoice, 2500), "{d:?}");
    assert!(d.voice_ms >= 700, "{d:?}");
}

#[test]
fn a_noisy_line_needs_the_adaptive_threshold() {
    // Line noise with mean |x| ≈ 450, above the fixed threshold of 256.
    let s = Sig::new(900.0).silence(500).word(400).silence(3000);
    let fixed = run(AmdConfig { adaptive_threshold: false, ..AmdConfig::default() }, &s.pcm);
    assert_eq!(fixed.verdict, Verdict::Machine, "fixed threshold hears noise as a greeting: {fixed:?}");
    let adaptive = run(AmdConfig::default(), &s.pcm);
    assert_eq!(adaptive.verdict, Verdict::Human, "{adaptive:?}");
}

#[test]
fn mu_law_frames_give_the_same_decision() {
    fn ulaw(s: i16) -> u8 {
        // Reference encoder (G.711), only for the test.
        let bias = 0x84i32;
        let mut x = i32::from(s);
        let sign = if x < 0 {
            x = -x;
            0x80
        } else {
            0x00
        };
        x = (x.min(32635)) + bias;
        let seg = (0..8).find(|&i| x < (0x100 << i)).unwrap_or(7);
        !((sign | (seg << 4) | ((x >> (seg + 3)) & 0x0F)) as u8)
    }
    let s = Sig::new(20.0).silence(500).word(400).silence(3000);
    let bytes: Vec<u8> = s.pcm.iter().map(|&x| ulaw(x)).collect();
    for &x in &s.pcm[..2000] {
        let back = ulaw_to_linear(ulaw(x));
        assert!((i32::from(back) - i32::from(x)).abs() <= (i32::from(x).abs() / 16).max(8) + 4, "{x} -> {back}");
    }
    let mut amd = Amd::new(AmdConfig::default());
    let d = bytes.chunks(FRAME_SAMPLES).find_map(|f| amd.push_ulaw(f)).expect("decision");
    assert_eq!(d.verdict, Verdict::Human);
    assert_eq!(d.reason, run(AmdConfig::default(), &s.pcm).reason);
}

#[test]
fn odd_frame_sizes_and_empty_frames_are_fine() {
    let s = Sig::new(20.0).silence(500).word(400).silence(3000);
    let mut amd = Amd::new(AmdConfig::default());
    assert_eq!(amd.push_pcm(&[]), None);
    let d = s.pcm.chunks(80).find_map(|f| amd.push_pcm(f)).expect("decision");
    assert_eq!(d.verdict, Verdict::Human);
    // Latched: nothing more after the decision.
    assert_eq!(amd.push_pcm(&s.pcm[..160]), None);
    assert_eq!(amd.decision(), Some(d));
}

#[test]
fn the_beep_ends_the_greeting() {
    let s = Sig::new(20.0).talk(3000, 400, 30).silence(300).tone(1000.0, 500).silence(3000);
    let mut g = GreetingEndDetector::new(GreetingEndConfig::default());
    let end = s.pcm.chunks(FRAME_SAMPLES).find_map(|f| g.push_pcm(f)).expect("end");
    match end.cause {
        GreetingEndCause::Beep { hz } => assert!(hz.abs_diff(1000) <= 25, "{end:?}"),
        other => panic!("expected a beep, got {other:?}"),
    }
    // The tone ends at 3010 (talk rounds up to whole words) + 300 + 500 ms.
    let tone_end = s.pcm.len() as u32 / 8 - 3000;
    assert!(end.at_ms.abs_diff(tone_end) <= 40, "{end:?} vs {tone_end}");
}

#[test]
fn speech_is_not_a_beep_and_silence_ends_a_beepless_greeting() {
    let s = Sig::new(20.0).talk(4000, 400, 30).silence(5000);
    let mut g = GreetingEndDetector::new(GreetingEndConfig::default());
    let end = s.pcm.chunks(FRAME_SAMPLES).find_map(|f| g.push_pcm(f)).expect("end");
    assert_eq!(end.cause, GreetingEndCause::Silence, "{end:?}");
    // talk() ends with a 30 ms gap after the word ending at 4270 ms.
    assert!(end.at_ms.abs_diff(4270) <= 40, "{end:?}");
}

#[test]
fn policy_maps_decisions_to_actions() {
    let d = |verdict| Decision { verdict, reason: Reason::TooLong, at_ms: 0, words: 0, voice_ms: 0, initial_silence_ms: 0 };
    let p = AmdPolicy {
        enabled: true,
        on_machine: MachineAction::LeaveMessage { prompt: "msg.wav".into() },
        ..AmdPolicy::default()
    };
    assert_eq!(p.action_for(&d(Verdict::Human)), CallAction::ToAgent);
    assert_eq!(p.action_for(&d(Verdict::NotSure)), CallAction::ToAgent);
    assert_eq!(p.action_for(&d(Verdict::Machine)), CallAction::LeaveMessageAfterGreeting { prompt: "msg.wav".into() });
    let strict = AmdPolicy { not_sure_to_agent: false, on_machine: MachineAction::HangUp, ..p };
    assert_eq!(strict.action_for(&d(Verdict::NotSure)), CallAction::HangUp);
    // The policy is campaign data: it round-trips through JSON.
    let json = serde_json::to_string(&strict).expect("json");
    assert_eq!(serde_json::from_str::<AmdPolicy>(&json).expect("parse"), strict);
}
