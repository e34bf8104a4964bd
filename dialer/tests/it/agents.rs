//! Agent states: the pure state machine with injected time.
use dialer::agents::{Agent, AgentState};
use dialer::pacing::{AgentId, CallId, Event, Time};
use std::time::Duration;

fn t(s: u64) -> Time {
    Time::from_secs(s)
}

#[test]
fn a_call_cycle_with_wrap_up_timer() {
    let id = AgentId::new(1);
    let mut a = Agent::new(id, Duration::from_secs(30));
    assert!(a.pause(t(0), "lunch").is_err(), "a logged-out agent cannot pause");
    assert_eq!(a.login(t(0)).unwrap(), vec![Event::AgentLoggedIn(id)]);
    let c = CallId::new(7);
    assert_eq!(a.connect(t(5), c).unwrap(), vec![Event::CallConnected { call: c, agent: id }]);
    assert!(a.connect(t(6), CallId::new(8)).is_err(), "one call at a time");
    assert_eq!(a.call_ended(t(65), true).unwrap(), vec![Event::CallEnded { call: c, agent: id, live: true }]);
    assert_eq!(a.state(), &AgentState::WrapUp { call: c, until: t(95) });
    assert!(a.tick(t(94)).is_empty());
    assert_eq!(a.tick(t(95)), vec![Event::AgentReady(id)]);
    assert!(a.is_ready());
}

#[test]
fn disposition_ends_wrap_up_and_pending_pause_applies_after() {
    let id = AgentId::new(2);
    let mut a = Agent::new(id, Duration::from_secs(30));
    a.login(t(0)).unwrap();
    let c = CallId::new(1);
    a.connect(t(1), c).unwrap();
    assert!(a.pause(t(2), "break").unwrap().is_empty(), "no pause mid-call");
    a.call_ended(t(10), true).unwrap();
    assert!(a.dispose(t(12), CallId::new(99)).is_err(), "only the agent's own call");
    assert_eq!(a.dispose(t(12), c).unwrap(), vec![Event::AgentReady(id), Event::AgentLoggedOut(id)]);
    assert_eq!(a.state(), &AgentState::Paused { reason: "break".into() });
    assert_eq!(a.resume(t(20)).unwrap(), vec![Event::AgentLoggedIn(id)]);
    assert!(a.is_ready());
}

#[test]
fn machine_calls_skip_wrap_and_preview_reserves() {
    let id = AgentId::new(3);
    let mut a = Agent::new(id, Duration::from_secs(30));
    a.login(t(0)).unwrap();
    a.reserve(t(1), 42).unwrap();
    assert_eq!(a.state().label(), "reserved");
    a.skip(t(2)).unwrap();
    let c = CallId::new(5);
    a.connect(t(3), c).unwrap();
    let ev = a.call_ended(t(8), false).unwrap();
    assert_eq!(ev, vec![Event::CallEnded { call: c, agent: id, live: false }, Event::AgentReady(id)]);
    assert!(a.is_ready());
    // Logging out mid-call finishes the call first.
    a.connect(t(9), CallId::new(6)).unwrap();
    assert_eq!(a.logout(t(10)).unwrap(), vec![Event::AgentLoggedOut(id)]);
    a.call_ended(t(11), true).unwrap();
    a.tick(t(41));
    assert_eq!(a.state(), &AgentState::LoggedOut);
}
