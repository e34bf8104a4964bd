//! The media plane without SIP: G.711, RTP rewriting, RFC 4733 detection,
//! WAV round trips (pure), then the media thread with plain UDP sockets as
//! far ends: bridge both ways, re-bridge with continuity, prompt pacing,
//! recording and DTMF events. Everything binds 127.0.0.1 and every wait
//! is bounded.

use sip::dtmf::{self, Detector, TelephoneEvent};
use sip::g711::{self, Codec};
use sip::media::{Media, MediaConfig, MediaEvent};
use sip::rtp::{self, Rewriter, Source};
use sip::wav::{self, Prompt, WavWriter};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;

/// The share of the signal's energy at `freq` (Goertzel), averaged over the
/// 20 ms blocks that are not silent, so leading or trailing silence does not
/// dilute it: ~1 for a pure tone at `freq`, ~0 for a tone elsewhere.
pub fn goertzel(x: &[i16], freq: f64, rate: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq / rate;
    let c = 2.0 * w.cos();
    let (mut sum, mut blocks) = (0.0, 0usize);
    for block in x.chunks_exact(160) {
        let (mut s1, mut s2, mut energy) = (0.0f64, 0.0f64, 0.0f64);
        for &v in block {
            let v = f64::from(v);
            energy += v * v;
            let s0 = v + c * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        // Below ~ -50 dBFS RMS counts as silence.
        if energy / 160.0 < 100.0 * 100.0 {
            continue;
        }
        sum += (s1 * s1 + s2 * s2 - c * s1 * s2) / (energy * 80.0);
        blocks += 1;
    }
    if blocks == 0 { 0.0 } else { sum / blocks as f64 }
}

pub fn tone(freq: f64, ms: usize, amp: f64) -> Vec<i16> {
    (0..ms * 8).map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / 8000.0).sin()) as i16).collect()
}

#[test]
fn g711_round_trips_within_quantisation() {
    for codec in [Codec::Pcmu, Codec::Pcma] {
        for s in (-32000i32..32000).step_by(97) {
            let d = codec.decode(codec.encode(s as i16));
            let err = (i32::from(d) - s).abs();
            assert!(err <= (s.abs() / 16).max(16), "{codec:?} {s} -> {d}");
        }
        assert!(codec.decode(codec.silence()).abs() <= 8);
    }
    // Known points of the laws.
    assert_eq!(g711::ulaw_encode(0), 0xFF);
    assert_eq!(g711::alaw_encode(0), 0xD5);
    let mut p = [g711::ulaw_encode(1000), g711::ulaw_encode(-1000)];
    g711::transcode(Codec::Pcmu, Codec::Pcma, &mut p);
    assert!((g711::alaw_decode(p[0]) - 1000).abs() < 64 && (g711::alaw_decode(p[1]) + 1000).abs() < 64);
}

fn packet(seq: u16, ts: u32, ssrc: u32, pt: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = [0u8; 12];
    rtp::write_header(&mut h, false, pt, seq, ts, ssrc);
    [&h[..], payload].concat()
}

#[test]
fn rtp_parse_rejects_what_is_not_rtp() {
    let p = packet(7, 160, 0xabc, 0, &[1; 160]);
    let h = rtp::parse(&p).unwrap();
    assert_eq!((h.seq, h.timestamp, h.ssrc, h.payload_type, h.payload_offset, h.payload_end), (7, 160, 0xabc, 0, 12, 172));
    assert!(rtp::parse(&p[..11]).is_none());
    assert!(rtp::parse(&[0x40; 20]).is_none(), "version 1");
    let mut rtcp = p.clone();
    rtcp[1] = 200; // RTCP SR after RFC 5761 muxing
    assert!(rtp::parse(&rtcp).is_none());
    let mut ext = p.clone();
    ext[0] |= 0x10; // extension bit with a bogus length running past the end
    ext[14] = 0xff;
    assert!(rtp::parse(&ext).is_none());
    let mut cc = p.clone();
    cc[0] |= 0x02; // two CSRCs
    assert_eq!(rtp::parse(&cc).unwrap().payload_offset, 20);
}

#[test]
fn rewriter_continues_across_sources() {
    let t0 = Instant::now();
    let mut w = Rewriter::new(0x1234, 1000, 50_000);
    let a = Source { input: 1, ssrc: 0xaaaa };
    let b = Source { input: 2, ssrc: 0xbbbb };
    let (s0, ts0, m0) = w.map(t0, a, 40_000, 9_000, false);
    assert_eq!((s0, m0), (1000, true));
    let (s1, ts1, m1) = w.map(t0 + Duration::from_millis(20), a, 40_001, 9_160, false);
    assert_eq!((s1, ts1.wrapping_sub(ts0), m1), (1001, 160, false));
    // A loss in the source stays a gap in the output.
    let (s2, _, _) = w.map(t0 + Duration::from_millis(60), a, 40_003, 9_480, false);
    assert_eq!(s2, 1003);
    // Switch to another source 100 ms later: seq continues, ts advances by the wall time.
    let (s3, ts3, m3) = w.map(t0 + Duration::from_millis(160), b, 7, 123, false);
    assert_eq!((s3, m3), (1004, true));
    assert_eq!(ts3.wrapping_sub(ts0.wrapping_add(480)), 800);
    let (s4, _, _) = w.map(t0 + Duration::from_millis(180), b, 8, 283, false);
    assert_eq!(s4, 1005);
    // A late packet from before does not pull the anchor back.
    let (s5, _, _) = w.map(t0 + Duration::from_millis(181), b, 6, 0, false);
    assert_eq!(s5, 1003);
    let (s6, _, _) = w.map(t0 + Duration::from_millis(200), b, 9, 443, false);
    assert_eq!(s6, 1006);
    assert_eq!(w.switches, 2);
}

#[test]
fn dtmf_reports_each_press_once() {
    let mut d = Detector::default();
    let ev = |end, dur| dtmf::payload(TelephoneEvent { event: 5, end, volume: 10, duration: dur });
    assert_eq!(d.feed(1000, 1, &ev(false, 160)), None);
    assert_eq!(d.feed(1000, 1, &ev(false, 320)), None);
    let got = d.feed(1000, 1, &ev(true, 800));
    assert_eq!(got, Some(dtmf::Digit { digit: '5', duration_ms: 100 }));
    assert_eq!(d.feed(1000, 1, &ev(true, 800)), None, "retransmitted end");
    assert_eq!(d.feed(1000, 1, &ev(true, 800)), None);
    assert_eq!(d.feed(2000, 1, &ev(true, 400)).map(|d| d.digit), Some('5'));
    assert_eq!(dtmf::digit(10), Some('*'));
    assert_eq!(dtmf::digit(11), Some('#'));
    assert_eq!(dtmf::digit(15), Some('D'));
    assert_eq!(dtmf::digit(16), None);
    assert!(d.feed(3000, 1, &[1, 2]).is_none(), "short payload");
}

#[test]
fn wav_round_trip_and_prompt_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.wav");
    let samples = tone(440.0, 100, 8000.0);
    let mut w = WavWriter::create(&path, 1, 8000).unwrap();
    w.write(&samples).unwrap();
    w.finish().unwrap();
    let pcm = wav::read(&path).unwrap();
    assert_eq!((pcm.rate, pcm.channels, pcm.format, pcm.samples.len()), (8000, 1, wav::Format::Pcm16, 800));
    assert_eq!(pcm.samples, samples);
    let p = Prompt::load(&path, Codec::Pcma).unwrap();
    assert_eq!((p.payload.len(), p.duration_ms()), (800, 100));
    // µ-law WAV (format 7) loads too.
    let mut ulaw = b"RIFF\0\0\0\0WAVEfmt \x12\0\0\0\x07\0\x01\0\x40\x1f\0\0\x40\x1f\0\0\x01\0\x08\0\0\0data".to_vec();
    ulaw.extend(&(4u32).to_le_bytes());
    ulaw.extend([0xFF, 0x80, 0x00, 0x7F]);
    let pcm = wav::parse(&ulaw).unwrap();
    assert_eq!((pcm.format, pcm.samples.len()), (wav::Format::Ulaw, 4));
    // A 22 kHz file is refused rather than played at the wrong speed.
    let fast = dir.path().join("fast.wav");
    let mut w = WavWriter::create(&fast, 1, 22050).unwrap();
    w.write(&samples).unwrap();
    w.finish().unwrap();
    assert!(matches!(Prompt::load(&fast, Codec::Pcmu), Err(wav::WavError::Unsupported(_))));
    assert!(matches!(wav::parse(b"not a wave file at all"), Err(wav::WavError::NotWave)));
}

async fn far_end() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Receives RTP on `s` until `n` packets or the deadline; returns the headers and payloads.
pub async fn collect(s: &UdpSocket, n: usize, within: Duration) -> Vec<(rtp::Header, Vec<u8>, SocketAddr)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    let deadline = tokio::time::Instant::now() + within;
    while out.len() < n {
        match tokio::time::timeout_at(deadline, s.recv_from(&mut buf)).await {
            Ok(Ok((len, from))) => {
                if let Some(h) = rtp::parse(&buf[..len]) {
                    out.push((h, buf[h.payload_offset..h.payload_end].to_vec(), from));
                }
            }
            _ => break,
        }
    }
    out
}

async fn send_stream(s: &UdpSocket, to: SocketAddr, ssrc: u32, first_seq: u16, count: u16, payload: &[u8]) {
    send_stream_pt(s, to, ssrc, first_seq, count, payload, 0).await
}

async fn send_stream_pt(s: &UdpSocket, to: SocketAddr, ssrc: u32, first_seq: u16, count: u16, payload: &[u8], pt: u8) {
    for i in 0..count {
        let seq = first_seq.wrapping_add(i);
        s.send_to(&packet(seq, u32::from(seq) * 160, ssrc, pt, payload), to).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn assert_continuous(pkts: &[(rtp::Header, Vec<u8>, SocketAddr)]) {
    let ssrc = pkts[0].0.ssrc;
    for w in pkts.windows(2) {
        assert_eq!(w[1].0.ssrc, ssrc, "one SSRC toward the far end");
        assert_eq!(w[1].0.seq, w[0].0.seq.wrapping_add(1), "sequence continues");
        assert!(w[1].0.timestamp.wrapping_sub(w[0].0.timestamp) < 0x8000_0000, "timestamp moves forward");
    }
}

#[tokio::test]
async fn bridge_relays_both_ways_and_rebridges_with_continuity() {
    let (media, mut events, thread) = Media::start(MediaConfig::new([127, 0, 0, 1].into())).unwrap();
    let (agent, customer1, customer2) = (far_end().await, far_end().await, far_end().await);
    let (la, la_addr) = media.open_leg(Codec::Pcmu).unwrap();
    let (l1, l1_addr) = media.open_leg(Codec::Pcmu).unwrap();
    let (l2, l2_addr) = media.open_leg(Codec::Pcma).unwrap();
    // The agent's SDP address is known; customers are only learnt by latching.
    media.set_remote(la, Some(agent.local_addr().unwrap()), Codec::Pcmu, Some(101)).unwrap();
    media.set_remote(l1, None, Codec::Pcmu, Some(101)).unwrap();
    media.set_remote(l2, None, Codec::Pcma, None).unwrap();
    media.bridge(la, l1).unwrap();
    // Customer 1 talks first (so we latch), then the agent answers.
    send_stream(&customer1, l1_addr, 0x1111, 100, 10, &[0x11; 160]).await;
    let at_agent = collect(&agent, 10, Duration::from_secs(3)).await;
    assert_eq!(at_agent.len(), 10, "{:?} {:?}", media.stats(l1).await, media.stats(la).await);
    assert!(at_agent.iter().all(|p| p.2 == la_addr && p.1 == vec![0x11; 160]));
    send_stream(&agent, la_addr, 0xa9e7, 5000, 10, &[0x22; 160]).await;
    let at_c1 = collect(&customer1, 10, Duration::from_secs(3)).await;
    assert_eq!(at_c1.len(), 10);
    assert!(at_c1.iter().all(|p| p.2 == l1_addr && p.0.ssrc != 0xa9e7));
    assert_continuous(&at_c1);
    // Re-bridge the agent to customer 2 (PCMA): no signalling, just a switch.
    media.bridge(la, l2).unwrap();
    let pcma = vec![g711::alaw_encode(1000); 160];
    send_stream_pt(&customer2, l2_addr, 0x2222, 60000, 10, &pcma, 8).await;
    let mut at_agent2 = collect(&agent, 10, Duration::from_secs(3)).await;
    assert_eq!(at_agent2.len(), 10);
    assert!(at_agent2.iter().all(|p| p.0.payload_type == 0 && p.1 == vec![g711::ulaw_encode(g711::alaw_decode(pcma[0])); 160]), "transcoded to the agent's PCMU");
    // What the agent heard from customer 1 then customer 2 is one stream.
    let mut all = at_agent;
    all.append(&mut at_agent2);
    assert_continuous(&all);
    assert!(all[10].0.marker, "marker on the switch");
    // Customer 1 is now unbridged: it hears nothing.
    send_stream(&agent, la_addr, 0xa9e7, 5010, 5, &[0x33; 160]).await;
    assert_eq!(collect(&customer2, 5, Duration::from_secs(3)).await.len(), 5);
    assert!(collect(&customer1, 1, Duration::from_millis(200)).await.is_empty());
    let st = media.stats(la).await.unwrap().unwrap();
    assert_eq!((st.received, st.sent, st.dropped), (15, 20, 0));
    assert_eq!(st.switches, 2);
    // Latching was reported for the customers.
    let mut latched = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let MediaEvent::Latched { leg, .. } = ev {
            latched.push(leg);
        }
    }
    assert!(latched.contains(&l1) && latched.contains(&l2));
    media.close_leg(l1).unwrap();
    assert_eq!(media.stats(l1).await.unwrap(), None);
    drop(media);
    thread.join().unwrap();
}

#[tokio::test]
async fn prompt_is_paced_recorded_and_dtmf_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (media, mut events, thread) = Media::start(MediaConfig::new([127, 0, 0, 1].into())).unwrap();
    let (caller, agent) = (far_end().await, far_end().await);
    let (lc, lc_addr) = media.open_leg(Codec::Pcmu).unwrap();
    let (la, la_addr) = media.open_leg(Codec::Pcmu).unwrap();
    media.set_remote(lc, Some(caller.local_addr().unwrap()), Codec::Pcmu, Some(101)).unwrap();
    media.set_remote(la, Some(agent.local_addr().unwrap()), Codec::Pcmu, Some(96)).unwrap();
    let rec = dir.path().join("call.wav");
    media.record_start(lc, &rec).unwrap();
    // A 400 ms 1 kHz prompt to the caller: 20 packets, 20 ms apart.
    media.play(lc, Prompt::from_samples(&tone(1000.0, 400, 8000.0), Codec::Pcma)).unwrap();
    let t0 = Instant::now();
    let got = collect(&caller, 20, Duration::from_secs(3)).await;
    let took = t0.elapsed();
    assert_eq!(got.len(), 20);
    assert!(took >= Duration::from_millis(330) && took < Duration::from_millis(1500), "paced: {took:?}");
    assert_continuous(&got);
    let heard: Vec<i16> = got.iter().flat_map(|p| p.1.iter().map(|&b| Codec::Pcmu.decode(b))).collect();
    assert!(goertzel(&heard, 1000.0, 8000.0) > 0.8, "1 kHz arrives as PCMU");
    let done = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(MediaEvent::PromptDone { leg }) = events.recv().await {
                break leg;
            }
        }
    });
    assert_eq!(done.await.unwrap(), lc);
    // Bridge caller and agent; the caller speaks 600 Hz and presses 7 (PT 101).
    media.bridge(lc, la).unwrap();
    let speech: Vec<u8> = tone(600.0, 20, 8000.0).iter().map(|&s| g711::ulaw_encode(s)).collect();
    for i in 0..15u16 {
        caller.send_to(&packet(i, u32::from(i) * 160, 0xc0, 0, &speech), lc_addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (k, end) in [(0, false), (1, false), (2, true), (3, true), (4, true)] {
        let p = dtmf::payload(TelephoneEvent { event: 7, end, volume: 10, duration: 160 * (k + 1) });
        caller.send_to(&packet(100 + k, 15 * 160, 0xc0, 101, &p), lc_addr).await.unwrap();
    }
    let at_agent = collect(&agent, 20, Duration::from_secs(3)).await;
    assert_eq!(at_agent.iter().filter(|p| p.0.payload_type == 0).count(), 15);
    assert_eq!(at_agent.iter().filter(|p| p.0.payload_type == 96).count(), 5, "DTMF renumbered to the agent's PT");
    let dtmf = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            if let Some(MediaEvent::Dtmf { leg, digit, duration_ms }) = events.recv().await {
                break (leg, digit, duration_ms);
            }
        }
    });
    assert_eq!(dtmf.await.unwrap(), (lc, '7', 60));
    // The agent answers with 1.6 kHz.
    let agent_speech: Vec<u8> = tone(1600.0, 20, 8000.0).iter().map(|&s| g711::ulaw_encode(s)).collect();
    for i in 0..15u16 {
        agent.send_to(&packet(i, u32::from(i) * 160, 0xa0, 0, &agent_speech), la_addr).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(collect(&caller, 15, Duration::from_secs(3)).await.len(), 15);
    media.record_stop(lc).unwrap();
    media.stats(lc).await.unwrap(); // a round trip: the stop has been applied
    let pcm = wav::read(&rec).unwrap();
    assert_eq!((pcm.channels, pcm.rate), (2, 8000));
    let left: Vec<i16> = pcm.samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = pcm.samples.iter().skip(1).step_by(2).copied().collect();
    // Left: what the caller sent (600 Hz); right: what it heard (1 kHz prompt, then 1.6 kHz).
    assert!(goertzel(&left, 600.0, 8000.0) > 0.3, "{}", goertzel(&left, 600.0, 8000.0));
    assert!(goertzel(&right, 1000.0, 8000.0) > 0.2, "{}", goertzel(&right, 1000.0, 8000.0));
    assert!(goertzel(&right, 1600.0, 8000.0) > 0.1, "{}", goertzel(&right, 1600.0, 8000.0));
    assert!(goertzel(&left, 1000.0, 8000.0) < 0.05);
    let secs = pcm.samples.len() as f64 / 2.0 / 8000.0;
    assert!((1.0..5.0).contains(&secs), "recording length {secs}");
    drop(media);
    thread.join().unwrap();
}

#[tokio::test]
async fn garbage_and_rtcp_are_dropped_without_harm() {
    let (media, _events, thread) = Media::start(MediaConfig::new([127, 0, 0, 1].into())).unwrap();
    let (a, b) = (far_end().await, far_end().await);
    let (la, la_addr) = media.open_leg(Codec::Pcmu).unwrap();
    let (lb, _) = media.open_leg(Codec::Pcmu).unwrap();
    media.set_remote(lb, Some(b.local_addr().unwrap()), Codec::Pcmu, None).unwrap();
    media.bridge(la, lb).unwrap();
    a.send_to(b"\x00\x01garbage", la_addr).await.unwrap();
    a.send_to(&[0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], la_addr).await.unwrap();
    a.send_to(&[], la_addr).await.unwrap();
    send_stream(&a, la_addr, 9, 1, 3, &[0x55; 160]).await;
    assert_eq!(collect(&b, 3, Duration::from_secs(3)).await.len(), 3);
    let st = media.stats(la).await.unwrap().unwrap();
    assert_eq!((st.received, st.dropped), (3, 3));
    drop(media);
    thread.join().unwrap();
}

#[test]
fn port_range_is_respected() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut cfg = MediaConfig::new([127, 0, 0, 1].into());
        cfg.ports = Some((37400, 37406));
        let (media, _ev, thread) = Media::start(cfg).unwrap();
        let mut ports = Vec::new();
        for _ in 0..4 {
            ports.push(media.open_leg(Codec::Pcmu).unwrap().1.port());
        }
        ports.sort();
        assert_eq!(ports, vec![37400, 37402, 37404, 37406]);
        assert!(matches!(media.open_leg(Codec::Pcmu), Err(sip::media::MediaError::NoPort)));
        drop(media);
        thread.join().unwrap();
    });
}

/// The tap for answering-machine detection: the far end's audio arrives
/// decoded in 20 ms frames (PCMA and odd packet sizes re-framed), DTMF is
/// not tapped, the channel closes after the asked length, a consumer that
/// reads nothing makes the media thread drop frames rather than wait (the
/// bridged peer still gets every packet), and bridging is unaffected.
#[tokio::test]
async fn tap_delivers_decoded_frames_for_a_bounded_time_and_never_blocks() {
    let (media, _events, thread) = Media::start(MediaConfig::new([127, 0, 0, 1].into())).unwrap();
    let (callee, agent) = (far_end().await, far_end().await);
    let (lc, lc_addr) = media.open_leg(Codec::Pcma).unwrap();
    media.set_remote(lc, None, Codec::Pcma, Some(101)).unwrap();
    // 100 ms of audio; room for every frame.
    let mut rx = media.tap(lc, Duration::from_millis(100), 16).unwrap();
    let a = g711::alaw_encode(1200);
    // 80-sample packets: two make one frame. A DTMF packet in between is not audio.
    send_stream_pt(&callee, lc_addr, 7, 1, 3, &[a; 80], 8).await;
    send_stream_pt(&callee, lc_addr, 7, 4, 1, &[0x01, 0x0a, 0x00, 0xa0], 101).await;
    send_stream_pt(&callee, lc_addr, 7, 5, 9, &[a; 80], 8).await;
    let mut frames = Vec::new();
    while let Ok(Some(f)) = tokio::time::timeout(Duration::from_secs(3), rx.recv()).await {
        frames.push(f);
    }
    // 12 packets of 10 ms, but the tap ends at 100 ms: five frames, then closed.
    assert_eq!(frames.len(), 5);
    assert!(frames.iter().all(|f| f.len() == 160 && f.iter().all(|&s| s == g711::alaw_decode(a))));
    // A consumer that never reads: frames beyond its room are dropped, the
    // bridged agent still hears every packet.
    let (la, _) = media.open_leg(Codec::Pcmu).unwrap();
    media.set_remote(la, Some(agent.local_addr().unwrap()), Codec::Pcmu, None).unwrap();
    media.bridge(lc, la).unwrap();
    let mut slow = media.tap(lc, Duration::from_secs(10), 2).unwrap();
    send_stream_pt(&callee, lc_addr, 7, 20, 20, &[a; 160], 8).await;
    assert_eq!(collect(&agent, 20, Duration::from_secs(3)).await.len(), 20, "relaying never waits for the tap");
    let mut got = 0;
    while slow.try_recv().is_ok() {
        got += 1;
    }
    assert_eq!(got, 2, "the two frames that fit; the rest dropped");
    // Closing the leg ends the tap.
    media.close_leg(lc).unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(3), slow.recv()).await.unwrap().is_none());
    drop(media);
    thread.join().unwrap();
}
