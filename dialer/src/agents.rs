//! Agent states on a campaign, as a pure state machine with injected time.
//!
//! ```text
//! LoggedOut ──login──▶ Ready ◀──────────────── wrap-up ends (timer or disposition)
//!                      │  ▲ ▲                               ▲
//!          pause(reason)│  │ └── resume ── Paused(reason)     │
//!                      ▼  │                                   │
//!               Reserved (preview card) ──dial── OnCall ──hangup── WrapUp
//!                      └── skip ─▶ Ready        ▲
//!          Ready ──────── bridged (predictive) ─┘
//! ```
//!
//! The agent's audio leg stays up across all of these (a nailed-up SIP
//! leg); the machine only says whom the runtime may bridge to. A pause or
//! logout asked for during a call takes effect when the call's wrap-up
//! ends, so no call is cut short. Every transition that changes what the
//! pacer sees returns the [`crate::pacing::Event`]s to feed it.
//!
//! Architecture invariant: nothing here reads the clock; `now` is passed in.

use crate::pacing::{AgentId, CallId, Event, Time};
use std::time::Duration;

/// Where an agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    LoggedOut,
    Ready,
    /// Holding a previewed lead's card (preview mode).
    Reserved { lead: i64 },
    OnCall { call: CallId },
    /// After a call; ends by a disposition or when `until` passes.
    WrapUp { call: CallId, until: Time },
    Paused { reason: String },
}

impl AgentState {
    pub fn label(&self) -> &'static str {
        match self {
            AgentState::LoggedOut => "logged_out",
            AgentState::Ready => "ready",
            AgentState::Reserved { .. } => "reserved",
            AgentState::OnCall { .. } => "on_call",
            AgentState::WrapUp { .. } => "wrap_up",
            AgentState::Paused { .. } => "paused",
        }
    }
}

/// An action that is not allowed in the agent's present state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent is {state}: cannot {action}")]
pub struct BadTransition {
    pub state: &'static str,
    pub action: &'static str,
}

/// What the agent asked for while busy, applied when the wrap-up ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum After {
    Ready,
    Pause(String),
    Logout,
}

/// One agent's state machine.
#[derive(Debug, Clone)]
pub struct Agent {
    pub id: AgentId,
    state: AgentState,
    since: Time,
    wrap: Duration,
    after: After,
}

impl Agent {
    /// A logged-out agent with the campaign's wrap-up time.
    pub fn new(id: AgentId, wrap: Duration) -> Self {
        Agent { id, state: AgentState::LoggedOut, since: Time::ZERO, wrap, after: After::Ready }
    }

    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// When the present state began.
    pub fn since(&self) -> Time {
        self.since
    }

    fn bad(&self, action: &'static str) -> BadTransition {
        BadTransition { state: self.state.label(), action }
    }

    fn set(&mut self, now: Time, s: AgentState) {
        self.state = s;
        self.since = now;
    }

    pub fn login(&mut self, now: Time) -> Result<Vec<Event>, BadTransition> {
        match self.state {
            AgentState::LoggedOut => {
                self.set(now, AgentState::Ready);
                self.after = After::Ready;
                Ok(vec![Event::AgentLoggedIn(self.id)])
            }
            _ => Err(self.bad("log in")),
        }
    }

    /// Pauses now when idle; during a call or wrap-up, once it ends.
    pub fn pause(&mut self, now: Time, reason: &str) -> Result<Vec<Event>, BadTransition> {
        match &self.state {
            AgentState::Ready | AgentState::Reserved { .. } => {
                self.set(now, AgentState::Paused { reason: reason.to_string() });
                // The pacer has no "paused": to it the agent left.
                Ok(vec![Event::AgentLoggedOut(self.id)])
            }
            AgentState::OnCall { .. } | AgentState::WrapUp { .. } => {
                self.after = After::Pause(reason.to_string());
                Ok(vec![])
            }
            AgentState::Paused { .. } => {
                self.state = AgentState::Paused { reason: reason.to_string() };
                Ok(vec![])
            }
            AgentState::LoggedOut => Err(self.bad("pause")),
        }
    }

    /// Back to ready from a pause (or cancels a pending pause).
    pub fn resume(&mut self, now: Time) -> Result<Vec<Event>, BadTransition> {
        match self.state {
            AgentState::Paused { .. } => {
                self.set(now, AgentState::Ready);
                Ok(vec![Event::AgentLoggedIn(self.id)])
            }
            AgentState::OnCall { .. } | AgentState::WrapUp { .. } => {
                self.after = After::Ready;
                Ok(vec![])
            }
            AgentState::Ready => Ok(vec![]),
            _ => Err(self.bad("resume")),
        }
    }

    pub fn logout(&mut self, now: Time) -> Result<Vec<Event>, BadTransition> {
        match self.state {
            AgentState::LoggedOut => Ok(vec![]),
            AgentState::Paused { .. } => {
                self.set(now, AgentState::LoggedOut);
                Ok(vec![])
            }
            AgentState::Ready | AgentState::Reserved { .. } => {
                self.set(now, AgentState::LoggedOut);
                Ok(vec![Event::AgentLoggedOut(self.id)])
            }
            AgentState::OnCall { .. } | AgentState::WrapUp { .. } => {
                self.after = After::Logout;
                Ok(vec![Event::AgentLoggedOut(self.id)])
            }
        }
    }

    /// Preview: the agent takes a lead's card.
    pub fn reserve(&mut self, now: Time, lead: i64) -> Result<(), BadTransition> {
        match self.state {
            AgentState::Ready => {
                self.set(now, AgentState::Reserved { lead });
                Ok(())
            }
            _ => Err(self.bad("reserve a lead")),
        }
    }

    /// Preview: the card is skipped; ready again.
    pub fn skip(&mut self, now: Time) -> Result<(), BadTransition> {
        match self.state {
            AgentState::Reserved { .. } => {
                self.set(now, AgentState::Ready);
                Ok(())
            }
            _ => Err(self.bad("skip")),
        }
    }

    /// An answered call was bridged to this agent (or a preview dial).
    pub fn connect(&mut self, now: Time, call: CallId) -> Result<Vec<Event>, BadTransition> {
        match self.state {
            AgentState::Ready | AgentState::Reserved { .. } => {
                self.set(now, AgentState::OnCall { call });
                Ok(vec![Event::CallConnected { call, agent: self.id }])
            }
            _ => Err(self.bad("take a call")),
        }
    }

    /// The call ended; wrap-up starts (or, for a machine, ready at once).
    pub fn call_ended(&mut self, now: Time, live: bool) -> Result<Vec<Event>, BadTransition> {
        let AgentState::OnCall { call } = self.state else {
            return Err(self.bad("end a call"));
        };
        let mut ev = vec![Event::CallEnded { call, agent: self.id, live }];
        if live && !self.wrap.is_zero() {
            self.set(now, AgentState::WrapUp { call, until: now + self.wrap });
        } else {
            // No wrap-up: straight into whatever was asked for.
            self.set(now, AgentState::WrapUp { call, until: now });
            ev.extend(self.finish_wrap(now));
        }
        Ok(ev)
    }

    /// The agent posted the disposition of `call`: wrap-up ends now.
    pub fn dispose(&mut self, now: Time, call: CallId) -> Result<Vec<Event>, BadTransition> {
        match self.state {
            AgentState::WrapUp { call: c, .. } if c == call => Ok(self.finish_wrap(now)),
            // Disposing while still talking ends the agent's part now.
            AgentState::OnCall { call: c } if c == call => {
                let mut ev = vec![Event::CallEnded { call, agent: self.id, live: true }];
                self.set(now, AgentState::WrapUp { call, until: now });
                ev.extend(self.finish_wrap(now));
                Ok(ev)
            }
            _ => Err(self.bad("dispose of that call")),
        }
    }

    /// Advances timers: a wrap-up whose time is up ends.
    pub fn tick(&mut self, now: Time) -> Vec<Event> {
        match self.state {
            AgentState::WrapUp { until, .. } if now >= until => self.finish_wrap(now),
            _ => vec![],
        }
    }

    fn finish_wrap(&mut self, now: Time) -> Vec<Event> {
        match std::mem::replace(&mut self.after, After::Ready) {
            After::Ready => {
                self.set(now, AgentState::Ready);
                vec![Event::AgentReady(self.id)]
            }
            After::Pause(reason) => {
                self.set(now, AgentState::Paused { reason });
                // Ready-then-gone keeps the pacer's floor consistent: it
                // counted the agent as wrapping.
                vec![Event::AgentReady(self.id), Event::AgentLoggedOut(self.id)]
            }
            After::Logout => {
                self.set(now, AgentState::LoggedOut);
                // The pacer already heard the logout; AgentReady lets its
                // floor drop the leaving agent.
                vec![Event::AgentReady(self.id)]
            }
        }
    }

    pub fn is_ready(&self) -> bool {
        self.state == AgentState::Ready
    }
}
