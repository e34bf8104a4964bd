//! The store test-suite. Every test runs against SQLite (a fresh temp file)
//! and, when `CENTRALINO_TEST_PG` names a PostgreSQL server URL, against a
//! fresh PostgreSQL database too. `CENTRALINO_REQUIRE_PG=1` (set by the
//! README's test command) turns a missing PostgreSQL into a failure rather
//! than a skip.
#![allow(unused_imports)]

mod activities;
mod auth;
mod campaigns;
mod deals;
mod dedup;
mod dialer;
mod harness;
mod import;
mod lists;
mod outcomes;
mod parties;
mod tickets;
