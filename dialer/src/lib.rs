//! The dialer: campaigns, the lead hopper, pacing (preview, progressive,
//! power, predictive), answering-machine detection, agent states and
//! dispositions.
//!
//! What exists today is the heart of it: [`pacing`], where every mode sits
//! behind one clock-free trait ([`pacing::Pacer`]: events and `now` in, a
//! number of calls to place out), and [`sim`], a seeded discrete-event
//! simulator that drives the very same pacers against synthetic callees and
//! agents and measures occupancy and abandon rates from ground truth.
//!
//! The live part: [`agents`] (agent states as a pure state machine) and
//! [`runtime`] (a tokio task per campaign: claims leads from the CRM
//! hopper, dials through a [`runtime::Lines`] implementation such as the
//! B2BUA, bridges answers to agents' nailed-up legs, drops to the
//! safe-harbour prompt after the grace time, and feeds the pacer).
//!
//! Architecture invariant: pacing and agent states never read the clock,
//! sleep, spawn or do I/O; only [`runtime`] does, and it feeds pacers
//! events exactly as the simulator does. The crate depends on `crm` (the
//! hopper and campaign storage) and on no other workspace crate.

pub mod agents;
pub mod amd;
pub mod pacing;
pub mod runtime;
pub mod sim;
