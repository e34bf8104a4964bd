//! The compact CRM domain of centralino and the only crate that talks SQL.
//!
//! The principal type is [`Store`]: a handle on the database (SQLite embedded
//! by default, PostgreSQL when the URL says `postgres://`) whose methods are
//! the domain operations — parties and their phones, emails, sites,
//! characteristics and consents; users, teams and who may see what; deals,
//! activities and the outcome graph; lists, de-duplication and import. Every
//! method that reads or writes on behalf of a person takes an [`Actor`], so
//! role and team visibility are enforced here, once, and not by each caller.
//!
//! Values from outside are parsed into newtypes at the boundary
//! ([`PhoneNumber`], [`EmailAddress`], the id types) and never cross inward as
//! bare strings. Every write to parties, deals and activities appends to the
//! operation log ([`oplog`]) inside the same transaction.
//!
//! Architecture invariant: this crate depends on no other workspace crate and
//! knows nothing about HTTP, JSON APIs or SIP.

pub mod activities;
pub mod auth;
pub mod calls;
pub mod campaigns;
pub mod campaigns_monitor;
pub mod campaigns_sms;
pub mod campaigns_template;
pub mod deals;
pub mod dedup;
pub mod dialer_store;
pub mod error;
pub mod import;
pub mod lists;
pub mod oplog;
pub mod outcomes;
pub mod parties;
pub mod store;
pub mod tickets;
pub mod types;

pub use auth::{Actor, Role, Scope};
pub use error::{Error, FieldError, Result};
pub use store::{Backend, Store, StoreOptions};
pub use types::*;
