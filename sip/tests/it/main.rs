//! The one integration-test binary of the `sip` crate: parser and digest
//! tables, the sans-IO core driven with injected time, bad input, and
//! interop against real sipp.

#![allow(clippy::unwrap_used)]

mod adopt;
mod digest;
mod framing;
mod guard;
mod interop;
mod media;
mod media_interop;
mod core;
mod parser;
mod registrar;
mod sipp;
