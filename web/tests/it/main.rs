//! Black-box tests of the HTTP API: each spawns the real application on
//! port 0 with a fresh database (SQLite, and PostgreSQL when
//! `CENTRALINO_TEST_PG` is set) and talks to it over real HTTP.

mod api;
mod campaigns;
mod console;
mod data;
mod dialer;
mod harness;
mod sales;
mod telephony;
mod tickets;
