//! Properties of the pacers, checked event by event and over simulated shifts.

use std::time::Duration;

use dialer::pacing::{
    AgentId, CallId, Event, Pacer, PacingMode, Predictive, PredictiveConfig, Preview, Progressive,
    Time, Vicidial, VicidialConfig,
};
use dialer::sim::{Drift, RunMetrics, Scenario, run, run_days};

fn secs(s: u64) -> Time {
    Time::from_secs(s)
}

fn shift(mode: &PacingMode, scenario: &Scenario, seed: u64) -> RunMetrics {
    let mut pacer = mode.build();
    run(scenario, pacer.as_mut(), seed).expect("valid scenario")
}

/// A two-hour stationary shift keeps the slow (debug) test runs short.
fn short(agents: u32, p: f64) -> Scenario {
    Scenario {
        shift_s: 2.0 * 3600.0,
        ..Scenario::stationary(agents, p)
    }
}

#[test]
fn progressive_places_one_call_per_ready_agent() {
    let mut p = Progressive::default();
    let t = secs(0);
    for a in 0..3 {
        p.on_event(t, &Event::AgentLoggedIn(AgentId::new(a)));
    }
    assert_eq!(p.calls_to_place(t), 3);
    for c in 0..3 {
        p.on_event(t, &Event::CallPlaced(CallId::new(c)));
    }
    assert_eq!(p.calls_to_place(t), 0);
    p.on_event(secs(5), &Event::CallFailed(CallId::new(1)));
    assert_eq!(p.calls_to_place(secs(5)), 1);
    p.on_event(secs(6), &Event::CallAnswered(CallId::new(0)));
    assert_eq!(
        p.calls_to_place(secs(6)),
        1,
        "a waiting answer still holds its agent"
    );
}

#[test]
fn progressive_never_has_more_calls_than_ready_agents() {
    for seed in 0..3 {
        let m = shift(&PacingMode::Progressive, &short(10, 0.35), seed);
        assert!(
            m.max_excess_calls <= 0,
            "seed {seed}: {} calls over ready agents",
            m.max_excess_calls
        );
        assert_eq!(m.live_drops, 0);
        assert!(m.live_connects > 100);
    }
}

#[test]
fn preview_dials_only_after_the_card_was_read() {
    let mut p = Preview::new(Duration::from_secs(10));
    p.on_event(secs(0), &Event::AgentLoggedIn(AgentId::new(7)));
    assert_eq!(p.calls_to_place(secs(5)), 0);
    assert_eq!(p.calls_to_place(secs(10)), 1);
    p.on_event(secs(10), &Event::CallPlaced(CallId::new(1)));
    assert_eq!(p.calls_to_place(secs(30)), 0);
    // The call fails: the agent reads the next card before dialing again.
    p.on_event(secs(30), &Event::CallFailed(CallId::new(1)));
    assert_eq!(p.calls_to_place(secs(35)), 0);
    assert_eq!(p.calls_to_place(secs(40)), 1);
}

#[test]
fn preview_and_power_one_never_abandon() {
    let m = shift(&PacingMode::Preview { preview_s: 10.0 }, &short(10, 0.2), 4);
    assert_eq!(m.live_drops, 0);
    assert!(m.max_excess_calls <= 0);
    let m = shift(&PacingMode::Power { ratio: 1.0 }, &short(10, 0.2), 4);
    assert_eq!(m.live_drops, 0);
}

#[test]
fn same_seed_same_metrics() {
    let sc = short(10, 0.2);
    for mode in [
        PacingMode::Progressive,
        PacingMode::Predictive(PredictiveConfig::with_target(0.03)),
        PacingMode::Vicidial(VicidialConfig::default()),
    ] {
        let a = shift(&mode, &sc, 11);
        let b = shift(&mode, &sc, 11);
        assert_eq!(a, b, "{} is not deterministic", mode.label());
        let c = shift(&mode, &sc, 12);
        assert_ne!(a, c, "{}: seeds should matter", mode.label());
    }
}

#[test]
fn predictive_holds_three_percent_with_twenty_agents() {
    let sc = Scenario::stationary(20, 0.2);
    let m = shift(
        &PacingMode::Predictive(PredictiveConfig::with_target(0.03)),
        &sc,
        1,
    );
    assert!(
        m.abandon_rate() <= 0.03,
        "abandon rate {}",
        m.abandon_rate()
    );
    let progressive = shift(&PacingMode::Progressive, &sc, 1);
    assert!(
        m.talk_occupancy() > progressive.talk_occupancy() + 0.15,
        "predictive {} vs progressive {}",
        m.talk_occupancy(),
        progressive.talk_occupancy()
    );
}

#[test]
fn predictive_one_percent_target_abandons_less_than_three_percent_target() {
    let sc = Scenario::stationary(20, 0.35);
    let strict = shift(
        &PacingMode::Predictive(PredictiveConfig::with_target(0.01)),
        &sc,
        2,
    );
    let loose = shift(
        &PacingMode::Predictive(PredictiveConfig::with_target(0.03)),
        &sc,
        2,
    );
    // The target holds over the campaign's window, not each day: one cold
    // day of about 3,700 live answers has a standard error of 0.16 points
    // at 1 % (the 10-day benchmark lands at 0.91–1.00 %).
    assert!(
        strict.abandon_rate() <= 0.0125,
        "abandon rate {}",
        strict.abandon_rate()
    );
    assert!(strict.abandon_rate() < 0.6 * loose.abandon_rate());
    assert!(strict.talk_occupancy() < loose.talk_occupancy());
}

#[test]
fn predictive_survives_a_carrier_outage() {
    let sc = Scenario {
        drift: Drift::Outage {
            at_s: 3600.0,
            minutes: 10.0,
        },
        ..Scenario::stationary(20, 0.2)
    };
    let m = shift(
        &PacingMode::Predictive(PredictiveConfig::with_target(0.03)),
        &sc,
        3,
    );
    assert!(
        m.abandon_rate() <= 0.03,
        "abandon rate {}",
        m.abandon_rate()
    );
}

#[test]
fn vicidial_level_drops_to_one_over_the_drop_limit() {
    let mut v = Vicidial::new(VicidialConfig::default());
    let mut t = secs(0);
    for a in 0..10 {
        v.on_event(t, &Event::AgentLoggedIn(AgentId::new(a)));
    }
    // Agents idle with nothing waiting: the level climbs every 15 s.
    for _ in 0..60 {
        v.calls_to_place(t);
        t = t + Duration::from_secs(1);
    }
    assert!(v.level() > 1.5, "level {}", v.level());
    assert!(v.level() <= 3.0);
    // 60 dials, 10 answers, 5 drops: over 3 %, so the level is forced to 1.
    for c in 0..60 {
        v.on_event(t, &Event::CallPlaced(CallId::new(c)));
    }
    for c in 0..5 {
        v.on_event(t, &Event::CallDropped(CallId::new(c)));
    }
    for c in 5..10 {
        let agent = AgentId::new(c as u32);
        v.on_event(
            t,
            &Event::CallConnected {
                call: CallId::new(c),
                agent,
            },
        );
        v.on_event(
            t,
            &Event::CallEnded {
                call: CallId::new(c),
                agent,
                live: true,
            },
        );
    }
    for _ in 0..16 {
        v.calls_to_place(t);
        t = t + Duration::from_secs(1);
    }
    assert_eq!(v.level(), 1.0);
}

/// A predictive pacer that has learned a floor (one short simulated day of
/// 50 agents, after which every agent has logged out), then, the next day,
/// 50 agents who all picked up a call (a person: past machine handling) at
/// the returned time.
fn warmed_with_fifty_on_calls(seed: u64) -> (Predictive, Time) {
    let mut p = Predictive::new(PredictiveConfig::with_target(0.03));
    run_days(&short(50, 0.2), &mut p, &[seed]).expect("valid scenario");
    let t0 = Time::from_secs(86_400);
    for a in 0..50u32 {
        let call = CallId::new(1_000_000 + u64::from(a));
        p.on_event(t0, &Event::AgentLoggedIn(AgentId::new(a)));
        p.on_event(t0, &Event::CallPlaced(call));
    }
    let t1 = t0 + Duration::from_secs(10);
    for a in 0..50u32 {
        let call = CallId::new(1_000_000 + u64::from(a));
        p.on_event(t1, &Event::CallAnswered(call));
        p.on_event(
            t1,
            &Event::CallConnected {
                call,
                agent: AgentId::new(a),
            },
        );
    }
    (p, t1)
}

/// Every agent of the floor ends their call (a person) at `at`: wrap-up,
/// which averages 15 s, starts.
fn all_end_calls(p: &mut Predictive, at: Time) {
    for a in 0..50u32 {
        let call = CallId::new(1_000_000 + u64::from(a));
        p.on_event(
            at,
            &Event::CallEnded {
                call,
                agent: AgentId::new(a),
                live: true,
            },
        );
    }
}

#[test]
fn predictive_dials_more_when_agents_are_about_to_free_up() {
    let (p, t) = warmed_with_fifty_on_calls(4);
    // Same learned state. 25 s into their calls (talk averages 120 s) hardly
    // anyone will be free within the next ring: no call is worth the risk.
    let early = p.clone().calls_to_place(t + Duration::from_secs(25));
    // The same agents 8 s into wrap-up: most will be free within a ring.
    let mut wrapping = p.clone();
    all_end_calls(&mut wrapping, t + Duration::from_secs(25));
    let late = wrapping.calls_to_place(t + Duration::from_secs(33));
    assert!(late > early, "late {late} vs early {early}");
    assert!(late >= 10, "late {late}");
}

#[test]
fn predictive_dials_fewer_when_abandons_are_over_budget() {
    let (mut clean, t) = warmed_with_fifty_on_calls(5);
    let mut over = clean.clone();
    // Thirty people answered at a person-like ring age and found no agent.
    for c in 0..30u64 {
        let call = CallId::new(2_000_000 + c);
        over.on_event(t, &Event::CallPlaced(call));
        let answered = t + Duration::from_secs(8);
        over.on_event(answered, &Event::CallAnswered(call));
        over.on_event(answered + Duration::from_secs(2), &Event::CallDropped(call));
    }
    all_end_calls(&mut clean, t + Duration::from_secs(25));
    all_end_calls(&mut over, t + Duration::from_secs(25));
    let at = t + Duration::from_secs(33);
    let n_clean = clean.calls_to_place(at);
    let n_over = over.calls_to_place(at);
    assert!(
        over.budget() < clean.budget(),
        "budget {} vs {}",
        over.budget(),
        clean.budget()
    );
    assert!(n_over < n_clean, "over budget {n_over} vs clean {n_clean}");
    let (live, drops) = over.window_counts();
    assert!(
        drops > 20.0 && live > drops,
        "window {live} live, {drops} drops"
    );
}

#[test]
fn learned_state_carries_across_days_and_runs_are_deterministic() {
    let mode = PacingMode::Predictive(PredictiveConfig::with_target(0.03));
    let sc = short(10, 0.2);
    let two = |seeds: &[u64]| {
        let mut p = mode.build();
        run_days(&sc, p.as_mut(), seeds).expect("valid scenario")
    };
    let a = two(&[7, 8]);
    assert_eq!(a, two(&[7, 8]), "same seeds, same days");
    // Day 8 run after day 7 (a warm pacer) is not day 8 run cold.
    let cold = two(&[8]);
    assert_eq!(a.len(), 2);
    assert_ne!(a[1], cold[0]);
    // Day 1 begins with the pacer's memory of day 0: its window still holds
    // day 0's answers.
    let mut p = Predictive::new(PredictiveConfig::with_target(0.03));
    run_days(&sc, &mut p, &[7]).expect("valid scenario");
    let (live, _) = p.window_counts();
    assert!(live > 100.0, "window holds {live} live answers");
}
