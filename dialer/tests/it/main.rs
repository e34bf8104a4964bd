//! Integration tests of the dialer: pacing properties checked in simulation,
//! agent states, and the live runtime against a fake carrier.

mod agents;
mod amd;
mod pacing;
mod runtime;
