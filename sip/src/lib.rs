//! SIP signalling for centralino.
//!
//! (Crate documentation is completed with the call-control API below.)

pub mod digest;
pub mod msg;

pub use msg::CallId;
