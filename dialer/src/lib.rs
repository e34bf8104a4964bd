//! The dialer: campaigns, the lead hopper, pacing (preview, progressive,
//! power, predictive), answering-machine detection, agent states and
//! dispositions.
//!
//! This crate will depend on `crm` (leads, outcomes, call records) and `sip`
//! (placing and bridging calls). Pacing will be clock-free: it takes events and
//! `now` and answers how many calls to place, so the same code runs live and
//! in the discrete-event simulator.
