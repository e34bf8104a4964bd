//! The gateway's typed errors. A failure while handling one message ends
//! that attempt (the sync core backs off and resumes from the store); none
//! of them stops the process, and none carries a password in its text.

/// Errors of the IMAP and SMTP drivers.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("connecting to {what} {addr}: {source}")]
    Connect { what: &'static str, addr: String, source: std::io::Error },
    #[error("TLS with {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("IMAP server did not {0}")]
    Protocol(&'static str),
    #[error("timed out during {0}")]
    Timeout(&'static str),
    #[error("store: {0}")]
    Store(#[from] crm::Error),
    #[error("building mail: {0}")]
    Build(String),
    #[error("SMTP ({kind}): {source}")]
    Smtp { kind: SmtpFailure, source: lettre::transport::smtp::Error },
}

/// Whether an SMTP failure is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpFailure {
    /// A 5xx answer: the relay will never take this mail.
    Permanent,
    /// A 4xx answer, a timeout or a broken connection: try again later.
    Transient,
}

impl std::fmt::Display for SmtpFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SmtpFailure::Permanent => "permanent",
            SmtpFailure::Transient => "transient",
        })
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
