//! SIP signalling for centralino.

pub mod digest;
pub mod driver;
pub mod endpoint;
pub mod framing;
pub mod msg;
pub mod sdp;
pub mod transaction;

pub use endpoint::{Config, Credentials, Dial, DigestAuth, Endpoint, Event, IncomingCall, Input, Outcome, Transmit};
pub use msg::CallId;
