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
//! Architecture invariant: pacing never reads the clock, sleeps, spawns or
//! does I/O. A live driver (to come, on top of `sip` and `crm`) will own
//! timers and sockets and feed pacers events exactly as the simulator does.
//! For now the crate depends on no other workspace crate.

pub mod amd;
pub mod pacing;
pub mod sim;
