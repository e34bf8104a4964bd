//! The benchmarks, one module per subcommand.

pub mod http;
pub mod import;
pub mod lookup;
pub mod mail;
pub mod screenpop;
pub mod send;
pub mod tracking;
pub mod webrtc_agents;
