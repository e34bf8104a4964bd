//! The mail side of the support desk: mail in over IMAP becomes tickets,
//! exactly once; replies and notifications go out over SMTP.
//!
//! The principal type is [`Gateway`]: the composition root builds it with a
//! [`crm::Store`] and a [`GatewayConfig`] (mailboxes, each bound to a service
//! centre; the SMTP relay; this installation's loop token) and spawns it with
//! a shutdown signal. It runs one reader per mailbox ([`imap::run_mailbox`])
//! and one outbox sender ([`smtp::run_sender`]).
//!
//! How it meets its neighbours: the store owns everything durable — raw
//! messages keyed by mailbox, UIDVALIDITY and UID, tickets and threading,
//! the outbox and the auto-acknowledgement rate limit (`crm::tickets::mail`).
//! This crate owns the protocols and the judgement calls about a message:
//! - [`sync`]: the IMAP sync state, sans I/O — which UIDs to fetch, when to
//!   flag, when to wait; [`imap`] is its thin tokio driver;
//! - [`parse`] and [`body`]: MIME, charsets, attachments, sanitised HTML,
//!   quoted history trimmed for display;
//! - [`thread`]: Message-ID, In-Reply-To, References, subject tags;
//! - [`classify`]: loop and auto-reply defence, pure and table-tested;
//! - [`smtp`]: rendering and sending the outbox with `lettre`.
//!
//! Campaign mail shares the plumbing: [`campaign`] drains the campaign
//! outbox (templates merged, links signed by [`tracking`], DKIM by [`dkim`],
//! windows and throttles by [`pacing`]) and maps bounces back through VERP;
//! [`eventlog`] makes tracking hits durable in batches. [`bounces_in`]
//! reads the bounce/notification mailbox (bounces, complaints, fax status
//! mails); [`smpp`] sends campaign SMS and takes delivery receipts;
//! [`fax`] is the fax provider interface and its email-gateway adapter.
//!
//! Architecture invariant: `mailgate` depends on `crm` only, never talks
//! SQL, and only [`imap`], [`bounces_in`], [`smtp`], [`campaign`], [`fax`]
//! and [`smpp`] touch sockets.

pub mod body;
pub mod bounce;
pub mod bounces_in;
pub mod campaign;
pub mod classify;
pub mod config;
pub mod dkim;
pub mod error;
pub mod eventlog;
pub mod fax;
pub mod imap;
pub mod ingest;
pub mod pacing;
pub mod parse;
pub mod smtp;
pub mod smpp;
pub mod sync;
pub mod thread;
pub mod tracking;

pub use config::{AfterIngest, GatewayConfig, MailboxConfig, Secret, Security, SmtpConfig};
pub use error::{Error, Result};

use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The running mail gateway; see the crate docs.
#[derive(Debug)]
pub struct Gateway {
    store: crm::Store,
    config: GatewayConfig,
}

/// The tasks of a spawned [`Gateway`].
#[derive(Debug)]
pub struct GatewayHandle {
    tasks: JoinSet<()>,
}

impl GatewayHandle {
    /// Waits until every task has stopped (after the shutdown signal).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Gateway {
    pub fn new(store: crm::Store, config: GatewayConfig) -> Gateway {
        Gateway { store, config }
    }

    /// Starts the mailbox readers and the outbox sender. Each task stops
    /// at its next safe point once `shutdown` turns true: a message being
    /// ingested is finished, a send in progress is recorded.
    pub fn spawn(self, shutdown: watch::Receiver<bool>) -> Result<GatewayHandle> {
        let mut tasks = JoinSet::new();
        let opts = Arc::new(self.config.parse.clone());
        if let Some(smtp) = &self.config.smtp {
            let mailer = smtp::Mailer::new(smtp, &self.config.parse.loop_token)?;
            tasks.spawn(smtp::run_sender(self.store.clone(), mailer, self.config.outbox_poll, self.config.history_foot, shutdown.clone()));
        }
        for mb in self.config.mailboxes {
            tasks.spawn(imap::run_mailbox(self.store.clone(), mb, opts.clone(), shutdown.clone()));
        }
        Ok(GatewayHandle { tasks })
    }
}
