//! Properties of the pacers, checked event by event and over simulated shifts.

use std::time::Duration;

use dialer::pacing::{
    AgentId, CallId, Event, Pacer, PacingMode, PredictiveConfig, Preview, Progressive, Time,
    Vicidial, VicidialConfig,
};
use dialer::sim::{Drift, RunMetrics, Scenario, run};

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
    assert!(
        strict.abandon_rate() <= 0.01,
        "abandon rate {}",
        strict.abandon_rate()
    );
    assert!(strict.abandon_rate() < loose.abandon_rate());
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
