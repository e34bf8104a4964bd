//! The campaign sender's connection pool to the relay.
//!
//! `lettre`'s own pooled transport was the bottleneck of `loadtest send`
//! (≈ 260 mails/s with 16 connections into a Postfix that takes > 1,100/s
//! from a Python client): it opens its sockets without `TCP_NODELAY`, and
//! it writes the message body and the closing `CRLF.CRLF` in two writes, so
//! Nagle's algorithm holds the terminator back until the relay's delayed
//! ACK — tens of milliseconds per mail. It also sends a `NOOP` before every
//! reuse of a pooled connection.
//!
//! This pool keeps `lettre`'s SMTP dialogue ([`AsyncSmtpConnection`]: EHLO,
//! STARTTLS, AUTH, MAIL/RCPT/DATA) but owns the sockets: each is opened with
//! `TCP_NODELAY`, and a connection idle for less than [`FRESH`] is reused
//! without a `NOOP` (one that has been idle longer is tested first, so a
//! connection the relay closed meanwhile is replaced, never used to send).
//! At most `size` connections are open at once. Any failure closes the
//! connection it happened on (lettre aborts it); the caller decides whether
//! the mail is retried.
//!
//! Implicit TLS (SMTPS, port 465) goes through lettre's own connector,
//! which does not set `TCP_NODELAY`; plain and STARTTLS relays, the usual
//! campaign set-up (a local MTA), get the fast path.

use crate::{Security, SmtpConfig};
/// The `lettre` this pool speaks (for callers building mails for [`Relay::send`]).
pub use lettre;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A pooled connection idle for less than this is used without a `NOOP`.
pub const FRESH: Duration = Duration::from_secs(5);

/// Why a mail was not accepted.
#[derive(Debug)]
pub enum RelayError {
    /// A 5xx answer: the relay will never take this mail.
    Permanent(String),
    /// A 4xx answer, a timeout, a refused or broken connection.
    Transient(String),
}

impl std::fmt::Display for RelayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelayError::Permanent(s) => write!(f, "SMTP (permanent): {s}"),
            RelayError::Transient(s) => write!(f, "SMTP (transient): {s}"),
        }
    }
}

impl From<lettre::transport::smtp::Error> for RelayError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        if e.is_permanent() { RelayError::Permanent(e.to_string()) } else { RelayError::Transient(e.to_string()) }
    }
}

/// A bounded pool of SMTP connections to one relay; see the module docs.
pub struct Relay {
    cfg: SmtpConfig,
    hello: ClientId,
    idle: Mutex<Vec<(AsyncSmtpConnection, Instant)>>,
    slots: Semaphore,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay").field("host", &self.cfg.host).field("port", &self.cfg.port).finish_non_exhaustive()
    }
}

impl Relay {
    pub fn new(cfg: SmtpConfig, size: usize) -> Relay {
        let hello = ClientId::Domain(cfg.default_from.domain().to_string());
        Relay { cfg, hello, idle: Mutex::new(Vec::new()), slots: Semaphore::new(size.max(1)) }
    }

    fn tls(&self) -> Result<TlsParameters, RelayError> {
        TlsParameters::new(self.cfg.host.clone()).map_err(|e| RelayError::Transient(format!("TLS with {}: {e}", self.cfg.host)))
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, RelayError> {
        let c = &self.cfg;
        let mut conn = match c.security {
            Security::Tls => AsyncSmtpConnection::connect_tokio1((c.host.as_str(), c.port), Some(c.timeout), &self.hello, Some(self.tls()?), None).await?,
            Security::Plain | Security::StartTls => {
                let tcp = tokio::time::timeout(c.timeout, tokio::net::TcpStream::connect((c.host.as_str(), c.port)))
                    .await
                    .map_err(|_| RelayError::Transient(format!("connecting to {}:{}: timed out", c.host, c.port)))?
                    .map_err(|e| RelayError::Transient(format!("connecting to {}:{}: {e}", c.host, c.port)))?;
                tcp.set_nodelay(true).map_err(|e| RelayError::Transient(format!("TCP_NODELAY: {e}")))?;
                let mut conn = tokio::time::timeout(c.timeout, AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &self.hello))
                    .await
                    .map_err(|_| RelayError::Transient("timed out waiting for the greeting".into()))??;
                if c.security == Security::StartTls {
                    conn.starttls(self.tls()?, &self.hello).await?;
                }
                conn
            }
        };
        if let Some((user, pass)) = &c.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &Credentials::new(user.clone(), pass.expose().to_string())).await?;
        }
        Ok(conn)
    }

    /// A connection: a fresh idle one, a tested stale one, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, RelayError> {
        loop {
            let pooled = self.idle.lock().ok().and_then(|mut v| v.pop());
            match pooled {
                Some((c, at)) if at.elapsed() < FRESH => return Ok(c),
                Some((mut c, _)) => {
                    if tokio::time::timeout(self.cfg.timeout, c.test_connected()).await.unwrap_or(false) {
                        return Ok(c);
                    }
                    c.abort().await;
                }
                None => return self.connect().await,
            }
        }
    }

    /// Sends one mail; returns the relay's answer to the end of DATA.
    pub async fn send(&self, envelope: &Envelope, raw: &[u8]) -> Result<Response, RelayError> {
        let _slot = self.slots.acquire().await.map_err(|_| RelayError::Transient("the relay pool is closed".into()))?;
        let mut conn = self.checkout().await?;
        match tokio::time::timeout(self.cfg.timeout, conn.send(envelope, raw)).await {
            Ok(Ok(r)) => {
                if !conn.has_broken()
                    && let Ok(mut v) = self.idle.lock()
                {
                    v.push((conn, Instant::now()));
                }
                Ok(r)
            }
            Ok(Err(e)) => Err(e.into()),
            Err(_) => {
                conn.abort().await;
                Err(RelayError::Transient(format!("timed out after {:?} sending to the relay", self.cfg.timeout)))
            }
        }
    }

    /// Says QUIT on every idle connection.
    pub async fn close(&self) {
        let conns: Vec<_> = self.idle.lock().map(|mut v| v.drain(..).collect()).unwrap_or_default();
        for (mut c, _) in conns {
            let _ = c.quit().await;
        }
    }
}
