//! Configuration in two phases: [`RawConfig`] is what a TOML file and the
//! environment say (everything optional); [`Settings`] is the resolved,
//! validated result with defaults applied. Precedence: command-line flags >
//! environment (`CENTRALINO_*`, `DATABASE_URL`) > file > defaults.

use anyhow::{Context, bail};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub http: Option<String>,
    pub sip: Option<String>,
    pub database_url: Option<String>,
    pub default_region: Option<String>,
    pub secure_cookies: Option<bool>,
    pub db_connections: Option<u32>,
    pub campaigns: Option<RawCampaigns>,
    pub mail: Option<RawMail>,
    /// Seconds an unanswered inbound call rings before it is released (default 20).
    pub inbound_ring_secs: Option<u64>,
    /// SIP trunks allowed to send INVITEs without digest: `IP` or `IP:PORT`.
    #[serde(default)]
    pub trunks: Vec<String>,
}

/// `[mail]`: the support desk's SMTP relay and the mailboxes it reads.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMail {
    /// A per-installation token marking our own outgoing mail (loop defence).
    pub loop_token: Option<String>,
    pub smtp: Option<RawSmtp>,
    #[serde(default)]
    pub mailboxes: Vec<RawMailbox>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSmtp {
    pub host: String,
    pub port: u16,
    /// `plain` (loopback only), `tls` or `starttls`.
    pub security: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub from: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMailbox {
    pub host: String,
    pub port: u16,
    /// `tls` (default, IMAPS), `starttls` or `plain` (loopback only).
    pub security: Option<String>,
    /// A PEM file of CA certificates trusted for this mailbox's TLS (a
    /// private CA), in addition to the WebPKI roots.
    pub ca_file: Option<String>,
    pub user: String,
    pub password: String,
    pub folder: Option<String>,
    /// The service centre (id) its mail feeds.
    pub centre: i64,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub http: SocketAddr,
    /// `None` when SIP is switched off (`sip = "off"`).
    pub sip: Option<SocketAddr>,
    pub database_url: String,
    pub default_region: crm::Region,
    pub secure_cookies: bool,
    pub db_connections: u32,
    pub campaigns: RawCampaigns,
    pub mail: Option<mailgate::GatewayConfig>,
    /// How often the support desk's jobs run (rules, SLA scan, split propagation).
    pub jobs_every: std::time::Duration,
    pub inbound_ring_limit: std::time::Duration,
    pub trunks: Vec<sip::guard::TrunkAddr>,
}

impl RawConfig {
    pub fn load(path: Option<&Path>) -> anyhow::Result<RawConfig> {
        let mut raw = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing config {}", p.display()))?
            }
            None => RawConfig::default(),
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = env("CENTRALINO_HTTP") {
            raw.http = Some(v);
        }
        if let Some(v) = env("CENTRALINO_SIP") {
            raw.sip = Some(v);
        }
        if let Some(v) = env("DATABASE_URL").or_else(|| env("CENTRALINO_DATABASE_URL")) {
            raw.database_url = Some(v);
        }
        if let Some(v) = env("CENTRALINO_REGION") {
            raw.default_region = Some(v);
        }
        Ok(raw)
    }

    pub fn resolve(self) -> anyhow::Result<Settings> {
        let http: SocketAddr = self.http.as_deref().unwrap_or("127.0.0.1:8080").parse().context("http: not an address like 127.0.0.1:8080")?;
        let sip: Option<SocketAddr> = match self.sip.as_deref().unwrap_or("127.0.0.1:5060") {
            "off" => None,
            a => Some(a.parse().context("sip: not an address like 127.0.0.1:5060 (or \"off\")")?),
        };
        let region = match self.default_region.as_deref() {
            Some(r) => crm::Region::parse(r).map_err(anyhow::Error::msg)?,
            None => crm::Region::default(),
        };
        let conns = self.db_connections.unwrap_or(8);
        if conns == 0 || conns > 512 {
            bail!("db_connections: between 1 and 512");
        }
        Ok(Settings {
            http,
            sip,
            database_url: self.database_url.unwrap_or_else(|| "centralino.db".into()),
            default_region: region,
            secure_cookies: self.secure_cookies.unwrap_or(false),
            db_connections: conns,
            campaigns: self.campaigns.unwrap_or_default(),
            mail: self.mail.map(resolve_mail).transpose()?,
            jobs_every: std::time::Duration::from_secs(60),
            inbound_ring_limit: std::time::Duration::from_secs(self.inbound_ring_secs.unwrap_or(20).clamp(1, 600)),
            trunks: self
                .trunks
                .iter()
                .map(|t| {
                    t.parse::<SocketAddr>()
                        .map(sip::guard::TrunkAddr::Addr)
                        .or_else(|_| t.parse::<std::net::IpAddr>().map(sip::guard::TrunkAddr::Ip))
                        .map_err(|_| anyhow::anyhow!("trunks: {t:?} is not an IP or IP:PORT"))
                })
                .collect::<anyhow::Result<_>>()?,
        })
    }
}

fn security(s: Option<&str>) -> anyhow::Result<mailgate::Security> {
    Ok(match s.unwrap_or("tls") {
        "plain" => mailgate::Security::Plain,
        "tls" => mailgate::Security::Tls,
        "starttls" => mailgate::Security::StartTls,
        other => bail!("mail: security {other:?} is not plain, tls or starttls"),
    })
}

fn resolve_mail(raw: RawMail) -> anyhow::Result<mailgate::GatewayConfig> {
    let mut cfg = mailgate::GatewayConfig::new(raw.loop_token.unwrap_or_else(|| "centralino".into()));
    if let Some(s) = raw.smtp {
        let from = crm::EmailAddress::parse(&s.from).map_err(|e| anyhow::anyhow!("mail.smtp.from: {e}"))?;
        let credentials = match (s.user, s.password) {
            (Some(u), Some(p)) => Some((u, mailgate::Secret::new(p))),
            (None, None) => None,
            _ => bail!("mail.smtp: give both user and password, or neither"),
        };
        cfg.smtp = Some(mailgate::SmtpConfig {
            host: s.host,
            port: s.port,
            security: security(s.security.as_deref())?,
            credentials,
            default_from: from,
            timeout: std::time::Duration::from_secs(30),
        });
    }
    for m in raw.mailboxes {
        let mut mb = mailgate::MailboxConfig::new(
            m.host,
            m.port,
            security(m.security.as_deref())?,
            m.user,
            mailgate::Secret::new(m.password),
            crm::tickets::ServiceCentreId(m.centre),
        );
        if let Some(f) = m.folder {
            mb = mb.folder(f);
        }
        mb.ca_file = m.ca_file.map(std::path::PathBuf::from);
        cfg.mailboxes.push(mb);
    }
    Ok(cfg)
}

/// `[campaigns]`: campaign mail and tracking. Everything is optional: with
/// no relay the tracking endpoints still run (links in mail already sent
/// keep working) but nothing is sent.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCampaigns {
    /// The relay for campaign mail, `HOST:PORT`.
    pub smtp: Option<String>,
    /// `plain` (loopback only), `tls` or `starttls`.
    pub smtp_security: Option<String>,
    pub smtp_user: Option<String>,
    pub smtp_password: Option<String>,
    /// The From address of campaign mail.
    pub from: Option<String>,
    pub from_name: Option<String>,
    /// The domain of Message-IDs and of the VERP return path.
    pub mail_domain: Option<String>,
    /// The public https base of `/t/…` and `/u/…`.
    pub tracking_base_url: Option<String>,
    /// Hex HMAC key for tracking tokens; default: one kept in the store.
    pub tracking_secret: Option<String>,
    /// Where the tracking write-ahead log lives.
    pub event_log_dir: Option<String>,
    /// `fdatasync` each batch of tracking events before answering (default
    /// true). Off, an answered hit survives a process crash (`kill -9`: the
    /// write is in the kernel) but not a power cut or a kernel crash.
    pub event_log_fsync: Option<bool>,
    /// PEM (RSA PKCS#1, Ed25519 PKCS#8) or base64 Ed25519 seed file.
    pub dkim_key: Option<String>,
    pub dkim_selector: Option<String>,
    pub dkim_domain: Option<String>,
    /// `ed25519` (default) or `rsa`.
    pub dkim_algorithm: Option<String>,
    /// e.g. `"Europe/Rome 20:00-07:00,weekends"`.
    pub send_window: Option<String>,
    pub per_second: Option<u32>,
    pub per_domain_per_minute: Option<u32>,
    pub per_hour: Option<u32>,
    pub concurrency: Option<usize>,
    /// The bounce/notification mailbox, read over IMAP: `HOST:PORT`.
    pub bounce_mailbox: Option<String>,
    /// `tls` (default) or `plain` (loopback only).
    pub bounce_security: Option<String>,
    pub bounce_user: Option<String>,
    pub bounce_password: Option<String>,
    pub bounce_folder: Option<String>,
    /// Hex HMAC key that fax-gateway status mails are signed with.
    pub fax_callback_secret: Option<String>,
    /// The SMSC for campaign SMS (SMPP v3.4 over TCP): `HOST:PORT`.
    pub smpp: Option<String>,
    pub smpp_system_id: Option<String>,
    pub smpp_password: Option<String>,
    /// The sender shown on SMS (a number or up to 11 letters).
    pub smpp_source: Option<String>,
    /// Reverse proxies (addresses or networks, `10.0.0.0/8`) whose
    /// `X-Forwarded-For` the tracking endpoints believe; from any other peer
    /// the socket address is the client's.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The email-to-fax gateway's address with `{number}` for the digits
    /// (e.g. `{number}@fax.example.net`); fax messages go out through the
    /// campaign relay (`smtp`) when set.
    pub fax_gateway: Option<String>,
}

impl std::fmt::Debug for RawCampaigns {
    /// Secrets (the relay password, the tracking key) are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawCampaigns")
            .field("smtp", &self.smtp)
            .field("from", &self.from)
            .field("mail_domain", &self.mail_domain)
            .field("tracking_base_url", &self.tracking_base_url)
            .field("dkim_key", &self.dkim_key)
            .field("send_window", &self.send_window)
            .finish_non_exhaustive()
    }
}

impl RawCampaigns {
    /// Fills the event-log directory: beside an SQLite file, or a per-URL
    /// directory under the system's temporary directory for PostgreSQL.
    pub fn resolved(mut self, database_url: &str) -> RawCampaigns {
        if self.event_log_dir.is_none() {
            let dir = if database_url.starts_with("postgres") {
                use sha2::Digest;
                let h = hex::encode(sha2::Sha256::digest(database_url.as_bytes()));
                std::env::temp_dir().join(format!("centralino-tracking-{}", &h[..12])).to_string_lossy().to_string()
            } else {
                format!("{}.tracking-wal", database_url.trim_start_matches("sqlite://").trim_start_matches("sqlite:").split('?').next().unwrap_or("centralino.db"))
            };
            self.event_log_dir = Some(dir);
        }
        self
    }
}
