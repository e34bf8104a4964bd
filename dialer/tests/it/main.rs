//! Integration tests of the dialer: pacing properties checked in simulation.

mod amd;
mod pacing;
