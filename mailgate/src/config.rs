//! What the composition root tells the gateway: the mailboxes to read (each
//! bound to a service centre), the SMTP relay to send through, and the
//! secrets. Passwords are wrapped in [`Secret`], whose `Debug` hides them,
//! so a config can be logged.

use crate::parse::ParseOptions;
use crate::sync::SyncParams;
use crm::EmailAddress;
use crm::tickets::ServiceCentreId;
use std::fmt;
use std::time::Duration;

/// A password or token: shown as `***` by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that sends it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// How a connection to a server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// No TLS: only for loopback and tests.
    Plain,
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain, then `STARTTLS` (SMTP submission 587, IMAP 143).
    StartTls,
}

/// What happens on the IMAP server to a message once it is stored and
/// ingested. Either way the store, not the server, remembers what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterIngest {
    /// Set `\Seen` and leave it in place.
    Flag,
    /// Set `\Seen` and move it to this folder (`MOVE`, RFC 6851).
    Move(String),
}

/// One mailbox to read, bound to a service centre.
#[derive(Debug, Clone)]
pub struct MailboxConfig {
    /// The stable name under which the store records UIDs, e.g.
    /// `support@imap.example.com/INBOX`. Renaming it re-reads the mailbox
    /// (Message-ID de-duplication then keeps tickets from doubling).
    pub name: String,
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// A PEM file of CA certificates trusted for this mailbox's TLS, in
    /// addition to the WebPKI roots (a private CA).
    pub ca_file: Option<std::path::PathBuf>,
    pub user: String,
    pub password: Secret,
    pub folder: String,
    pub centre: ServiceCentreId,
    pub after: AfterIngest,
    /// Messages larger than this are stored as their header only, flagged
    /// `truncated` (the original stays on the server).
    pub max_message_bytes: u32,
    /// How long one IDLE lasts before it is renewed (servers drop idle
    /// clients after 30 minutes; RFC 2177 says renew before 29). An IDLE
    /// also ends after `sync.poll`, the fallback poll.
    pub idle_timeout: Duration,
    pub sync: SyncParams,
    /// Connect and command timeout.
    pub timeout: Duration,
}

impl MailboxConfig {
    /// A mailbox with the usual defaults: INBOX, flag after ingest, 50 MB,
    /// IDLE renewed every 29 minutes, a fallback search every 30 seconds.
    pub fn new(host: impl Into<String>, port: u16, security: Security, user: impl Into<String>, password: Secret, centre: ServiceCentreId) -> Self {
        let host = host.into();
        let user = user.into();
        MailboxConfig {
            name: format!("{user}@{host}/INBOX"),
            host,
            port,
            security,
            ca_file: None,
            user,
            password,
            folder: "INBOX".into(),
            centre,
            after: AfterIngest::Flag,
            max_message_bytes: 50 * 1024 * 1024,
            idle_timeout: Duration::from_secs(29 * 60),
            sync: SyncParams::default(),
            timeout: Duration::from_secs(30),
        }
    }

    /// Reads another folder of the same account (the name follows).
    pub fn folder(mut self, folder: impl Into<String>) -> Self {
        self.folder = folder.into();
        self.name = format!("{}@{}/{}", self.user, self.host, self.folder);
        self
    }
}

/// The relay outgoing mail is handed to.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<(String, Secret)>,
    /// The sender when an outbox row names none.
    pub default_from: EmailAddress,
    /// Connect and command timeout.
    pub timeout: Duration,
}

/// Everything the gateway needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub mailboxes: Vec<MailboxConfig>,
    /// `None`: the outbox is not drained by this process.
    pub smtp: Option<SmtpConfig>,
    /// Parser limits and this installation's loop token.
    pub parse: ParseOptions,
    /// How often the sender looks at the outbox when idle.
    pub outbox_poll: Duration,
    /// How many past messages the history summary at the foot of a reply
    /// lists (0: none).
    pub history_foot: usize,
}

impl GatewayConfig {
    pub fn new(loop_token: impl Into<String>) -> Self {
        GatewayConfig {
            mailboxes: Vec::new(),
            smtp: None,
            parse: ParseOptions { loop_token: loop_token.into(), ..ParseOptions::default() },
            outbox_poll: Duration::from_secs(2),
            history_foot: 5,
        }
    }
}
