//! The public tracking endpoints: the open pixel `/t/o/{token}.gif`, the
//! click redirect `/t/c/{token}` and the unsubscribe page and one-click
//! endpoint `/u/{token}` (RFC 8058).
//!
//! The hot path reads no database: the token is checked in memory
//! ([`mailgate::tracking::Signer`]) and the click's target is inside the
//! signed token, so a redirect only ever goes to a URL that was in that
//! message. A forged, truncated or expired token is a 404 and records
//! nothing; the pixel still returns its image then, so a mail client shows
//! no broken picture. A valid hit is written to the event log
//! ([`mailgate::eventlog`]) and answered once it is on disk.
//!
//! The client address for the Apple-proxy test is the socket's peer, or,
//! when that peer is one of the configured `trusted_proxies`, the
//! right-most untrusted address of its `X-Forwarded-For`
//! ([`tracking::client_ip`]); a header from anyone else is ignored.

use crate::config::RawCampaigns;
use anyhow::{Context, bail};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use crm::campaigns::TrackEvent;
use mailgate::campaign::{CampaignConfig, CampaignSender};
use mailgate::dkim::{Algorithm, Dkim};
use mailgate::eventlog::{EventLog, LogOptions};
use mailgate::pacing::{Limits, SendWindow};
use mailgate::tracking::{self, Kind, ProxyNet, Signer, Token};
use mailgate::{Secret, Security, SmtpConfig};
use axum::Extension;
use axum::extract::ConnectInfo;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// What the endpoints need: the signer and the event log.
#[derive(Clone, Debug)]
pub struct Tracking {
    pub signer: Signer,
    pub log: EventLog,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<ProxyNet>,
}

#[derive(Clone)]
struct TrackState {
    t: Arc<Tracking>,
    store: crm::Store,
}

/// The tracking routes, with their own state (merged into the app).
pub fn router(t: Arc<Tracking>, store: crm::Store) -> Router {
    Router::new()
        .route("/t/o/{file}", get(pixel))
        .route("/t/c/{token}", get(click))
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .with_state(TrackState { t, store })
}

/// The campaign side of the composition root: the tracking endpoints'
/// signer and event log, and the sender worker when a relay is configured.
pub struct Campaigns {
    tracking: Arc<Tracking>,
    store: crm::Store,
    writer: tokio::task::JoinHandle<()>,
    sender: Option<tokio::task::JoinHandle<()>>,
    /// The bounce mailbox reader and the SMS sender, when configured.
    workers: Vec<tokio::task::JoinHandle<()>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Campaigns {
    /// Replays the event log, then starts the sender (if configured).
    pub async fn start(store: &crm::Store, cfg: &RawCampaigns) -> anyhow::Result<Campaigns> {
        let secret = match &cfg.tracking_secret {
            Some(hexkey) => {
                let k = hex::decode(hexkey.trim()).context("campaigns.tracking_secret: not hex")?;
                if k.len() < 16 {
                    bail!("campaigns.tracking_secret: at least 16 bytes (32 hex digits)");
                }
                k
            }
            None => store.campaign_secret().await?,
        };
        let signer = Signer::new(&secret);
        let trusted_proxies =
            cfg.trusted_proxies.iter().map(|p| ProxyNet::parse(p)).collect::<Result<Vec<_>, _>>().map_err(anyhow::Error::msg).context("campaigns.trusted_proxies")?;
        if let Some(d) = &cfg.mail_domain {
            store.set_campaign_setting("mail_domain", d).await?;
        }
        let dir = cfg.event_log_dir.clone().unwrap_or_else(|| "tracking-wal".into());
        let (log, writer) = EventLog::open(std::path::Path::new(&dir), store.clone(), LogOptions { sync: cfg.event_log_fsync.unwrap_or(true), ..LogOptions::default() }).await.context("opening the tracking event log")?;
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let mut workers = vec![];
        let sender = match sender_config(cfg)? {
            Some((c, dkim)) => {
                if let Some(address) = &cfg.fax_gateway {
                    let relay = Arc::new(mailgate::campaign::relay::Relay::new(c.smtp.clone(), 2));
                    let from = lettre_mailbox(c.from.as_str())?;
                    let gateway = mailgate::fax::EmailFaxGateway { relay, from, address: address.clone() };
                    workers.push(tokio::spawn(mailgate::fax::FaxSender::new(gateway).run(store.clone(), Duration::from_secs(5), stop.subscribe())));
                }
                let s = CampaignSender::new(c, signer.clone(), dkim)?;
                Some(tokio::spawn(s.run(store.clone(), stop_rx)))
            }
            None => None,
        };
        if let Some(mb) = crate::api::messaging::bounce_mailbox(cfg)? {
            let key = cfg.fax_callback_secret.as_deref().map(|h| hex::decode(h.trim())).transpose().context("campaigns.fax_callback_secret: not hex")?;
            let reader = mailgate::bounces_in::BounceReader::new(store.clone(), mb, signer.clone(), key);
            workers.push(tokio::spawn(reader.run(stop.subscribe())));
        }
        workers.extend(crate::api::messaging::start_sms(store, cfg, &stop).await?);
        Ok(Campaigns { tracking: Arc::new(Tracking { signer, log, trusted_proxies }), store: store.clone(), writer, sender, workers, stop })
    }

    pub fn mount(&self, app: Router) -> Router {
        app.merge(router(self.tracking.clone(), self.store.clone()))
    }

    /// Stops the sender at a safe point and drains the event log into the
    /// store (call after the HTTP server stopped, before closing the store).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        if let Some(s) = self.sender {
            let _ = s.await;
        }
        for w in self.workers {
            let _ = w.await;
        }
        drop(self.tracking);
        let _ = self.writer.await;
    }
}

fn lettre_mailbox(address: &str) -> anyhow::Result<mailgate::campaign::relay::lettre::message::Mailbox> {
    address.parse().map_err(|e| anyhow::anyhow!("campaigns.from: {e}"))
}

fn sender_config(cfg: &RawCampaigns) -> anyhow::Result<Option<(CampaignConfig, Option<Dkim>)>> {
    let Some(relay) = &cfg.smtp else { return Ok(None) };
    let (host, port) = relay.rsplit_once(':').context("campaigns.smtp: HOST:PORT")?;
    let security = match cfg.smtp_security.as_deref().unwrap_or("starttls") {
        "plain" => Security::Plain,
        "tls" => Security::Tls,
        "starttls" => Security::StartTls,
        other => bail!("campaigns.smtp_security: {other:?} is not plain, tls or starttls"),
    };
    let from = cfg.from.as_deref().context("campaigns.from is required with campaigns.smtp")?;
    let from = crm::EmailAddress::parse(from).map_err(anyhow::Error::msg).context("campaigns.from")?;
    let domain = cfg.mail_domain.clone().unwrap_or_else(|| from.domain().to_string());
    let smtp = SmtpConfig {
        host: host.to_string(),
        port: port.parse().context("campaigns.smtp: port")?,
        security,
        credentials: match (&cfg.smtp_user, &cfg.smtp_password) {
            (Some(u), Some(p)) => Some((u.clone(), Secret::new(p.clone()))),
            _ => None,
        },
        default_from: from.clone(),
        timeout: Duration::from_secs(30),
    };
    let base = cfg.tracking_base_url.clone().context("campaigns.tracking_base_url is required with campaigns.smtp")?;
    let mut c = CampaignConfig::new(smtp, &domain, &base);
    c.from = from;
    c.from_name = cfg.from_name.clone();
    c.window = cfg.send_window.as_deref().map(SendWindow::parse).transpose().map_err(anyhow::Error::msg).context("campaigns.send_window")?;
    c.limits = Limits { per_second: cfg.per_second.unwrap_or(0), per_domain_per_minute: cfg.per_domain_per_minute.unwrap_or(0), per_hour: cfg.per_hour.unwrap_or(0) };
    c.concurrency = cfg.concurrency.unwrap_or(8);
    let dkim = match &cfg.dkim_key {
        Some(path) => {
            let alg = Algorithm::parse(cfg.dkim_algorithm.as_deref().unwrap_or("ed25519")).map_err(anyhow::Error::msg)?;
            let selector = cfg.dkim_selector.as_deref().context("campaigns.dkim_selector is required with dkim_key")?;
            let d = cfg.dkim_domain.clone().unwrap_or_else(|| domain.clone());
            Some(Dkim::from_file(selector, &d, alg, std::path::Path::new(path))?)
        }
        None => None,
    };
    Ok(Some((c, dkim)))
}

fn user_agent(h: &HeaderMap) -> &str {
    h.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// The peer's address, as `into_make_service_with_connect_info` records it.
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn client_ip(t: &Tracking, peer: &Peer, h: &HeaderMap) -> Option<IpAddr> {
    let xff = h.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    tracking::client_ip(peer.as_ref().map(|p| p.0.0.ip()), xff, &t.trusted_proxies)
}

fn event_key() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    hex::encode(b)
}

fn event(t: &Token, kind: &str, detail: String, machine: bool, now: i64) -> TrackEvent {
    TrackEvent { key: event_key(), outbox_id: t.outbox_id, message_id: t.message_id, party_id: t.party_id, kind: kind.into(), detail, machine, at: now }
}

fn gif(status: StatusCode) -> Response {
    let mut r = (status, tracking::PIXEL_GIF).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache, must-revalidate, private"));
    r
}

async fn pixel(State(s): State<TrackState>, Path(file): Path<String>, peer: Peer, headers: HeaderMap) -> Response {
    let now = crm::now_ms();
    let token = file.strip_suffix(".gif").and_then(|t| s.t.signer.verify(t, now)).filter(|t| t.kind == Kind::Open);
    let Some(t) = token else { return gif(StatusCode::NOT_FOUND) };
    let machine = tracking::machine_open(user_agent(&headers), client_ip(&s.t, &peer, &headers));
    match s.t.log.record(event(&t, "opened", String::new(), machine, now)).await {
        Ok(()) => gif(StatusCode::OK),
        Err(e) => {
            tracing::warn!(error = %e, "open not recorded");
            gif(StatusCode::SERVICE_UNAVAILABLE)
        }
    }
}

async fn click(State(s): State<TrackState>, method: Method, Path(token): Path<String>, headers: HeaderMap) -> Response {
    let now = crm::now_ms();
    let Some(t) = s.t.signer.verify(&token, now) else { return (StatusCode::NOT_FOUND, "not found").into_response() };
    let Kind::Click { index, url } = &t.kind else { return (StatusCode::NOT_FOUND, "not found").into_response() };
    let Ok(location) = HeaderValue::from_str(url) else { return (StatusCode::NOT_FOUND, "not found").into_response() };
    let machine = tracking::machine_click(user_agent(&headers), method == Method::HEAD, t.sent_at, now);
    // A click that cannot be recorded still goes where the reader wanted.
    if let Err(e) = s.t.log.record(event(&t, "clicked", format!("{index} {url}"), machine, now)).await {
        tracing::warn!(error = %e, "click not recorded");
    }
    let mut r = StatusCode::FOUND.into_response();
    r.headers_mut().insert(header::LOCATION, location);
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:32em;margin:3em auto\"><h1>{title}</h1>{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

fn unsubscribe_token(s: &TrackState, token: &str) -> Option<Token> {
    s.t.signer.verify(token, crm::now_ms()).filter(|t| t.kind == Kind::Unsubscribe)
}

/// GET shows a button and changes nothing: mail scanners follow links, and
/// a GET that unsubscribed would unsubscribe people who never asked.
async fn unsubscribe_page(State(s): State<TrackState>, Path(token): Path<String>) -> Response {
    if unsubscribe_token(&s, &token).is_none() {
        return page(StatusCode::NOT_FOUND, "Link not valid", "<p>This unsubscribe link is not valid.</p>");
    }
    page(
        StatusCode::OK,
        "Unsubscribe",
        "<p>Stop receiving these emails?</p><form method=\"post\"><input type=\"hidden\" name=\"source\" value=\"page\"><button type=\"submit\">Unsubscribe</button></form>",
    )
}

/// POST records the unsubscribe: from the page's button, or one-click from
/// the mail client (`List-Unsubscribe=One-Click`, RFC 8058).
async fn unsubscribe(State(s): State<TrackState>, Path(token): Path<String>, body: String) -> Response {
    let Some(t) = unsubscribe_token(&s, &token) else {
        return page(StatusCode::NOT_FOUND, "Link not valid", "<p>This unsubscribe link is not valid.</p>");
    };
    let source = if body.contains("List-Unsubscribe=One-Click") { "one-click unsubscribe (List-Unsubscribe-Post)" } else { "unsubscribe page" };
    match s.store.unsubscribe(t.outbox_id, &format!("{source}, message {}", t.message_id), crm::now_ms()).await {
        Ok(_) => page(StatusCode::OK, "Unsubscribed", "<p>You will receive no more of these emails.</p>"),
        Err(e) => {
            tracing::warn!(error = %e, "unsubscribe not recorded");
            page(StatusCode::SERVICE_UNAVAILABLE, "Try again", "<p>We could not record this right now; please try again in a minute.</p>")
        }
    }
}
