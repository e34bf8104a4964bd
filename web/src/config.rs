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
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub http: SocketAddr,
    pub sip: SocketAddr,
    pub database_url: String,
    pub default_region: crm::Region,
    pub secure_cookies: bool,
    pub db_connections: u32,
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
        let sip: SocketAddr = self.sip.as_deref().unwrap_or("127.0.0.1:5060").parse().context("sip: not an address like 127.0.0.1:5060")?;
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
        })
    }
}
