//! HTTP API, web console and the composition root of centralino.
//!
//! [`app::Application`] is the one place where the parts are built and
//! wired: it opens the [`crm::Store`], binds the HTTP listener and (as the
//! SIP, dialer and mail issues land) starts their workers, handing each its
//! dependencies. The `centralino` binary (`src/main.rs`) parses the command
//! line and configuration ([`config`]) and calls into it.
//!
//! Architecture invariant: only this crate knows HTTP and JSON. Handlers are
//! thin: they parse the request into domain inputs, pass the authenticated
//! [`crm::Actor`] to the store (which enforces roles and team visibility),
//! and map domain errors to `application/problem+json` ([`error`]).

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod dialer_lines;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod state;
pub mod telephony;
pub mod webrtc;
pub mod ws;

pub use app::Application;
pub use config::{RawConfig, Settings};
