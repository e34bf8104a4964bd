//! The composition root: [`Application::build`] opens the store and binds the
//! HTTP listener; [`Application::run_until_stopped`] serves until the
//! shutdown future resolves, then drains in-flight requests and closes the
//! store. Tests build it on port 0 with a fresh database.

use crate::api;
use crate::config::Settings;
use crate::error::ApiError;
use crate::metrics::{self, Metrics};
use crate::state::AppState;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Router, middleware};
use crm::{Store, StoreOptions};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use utoipa::OpenApi;

/// The largest request body accepted (JSON and CSV uploads).
pub const BODY_LIMIT: usize = 8 * 1024 * 1024;

pub struct Application {
    listener: tokio::net::TcpListener,
    state: AppState,
    campaigns: crate::config::RawCampaigns,
    telephony: Option<crate::telephony::Telephony>,
    mail: Option<mailgate::GatewayConfig>,
    jobs_every: std::time::Duration,
}

impl Application {
    pub async fn build(settings: &Settings) -> anyhow::Result<Application> {
        let store = open_store(settings).await?;
        Self::with_store(settings, store).await
    }

    pub async fn with_store(settings: &Settings, store: Store) -> anyhow::Result<Application> {
        let listener = tokio::net::TcpListener::bind(settings.http).await?;
        let metrics = Arc::new(Metrics::default());
        let _ = metrics.started.set(std::time::Instant::now());
        let telephony = match settings.sip {
            Some(addr) => Some(crate::telephony::start(addr, settings.trunks.clone(), store.clone(), settings.inbound_ring_limit).await?),
            None => None,
        };
        let pops = telephony.as_ref().map(|t| t.pops.clone());
        let state = AppState { store, metrics, secure_cookies: settings.secure_cookies, actors: Default::default(), pops, dialers: Default::default(), desk: Default::default() };
        if let Some(t) = &telephony {
            crate::dialer_lines::wire(&state.dialers, state.store.clone(), t.b2bua.clone(), t.line_events.clone(), Some(t.bridges.clone())).await;
            // The console's softphones and card pops (the task ends with the telephony's channels).
            let _ = state.desk.watch(state.store.clone(), t.b2bua.clone(), t.local.ip(), t.bridges.subscribe(), t.line_events.subscribe());
        }
        Ok(Application { listener, state, campaigns: settings.campaigns.clone().resolved(&settings.database_url), telephony, mail: settings.mail.clone(), jobs_every: settings.jobs_every })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Where SIP listens, when it is on.
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.telephony.as_ref().map(|t| t.local)
    }

    /// Screen-pops as inbound calls arrive (for consoles and tests).
    pub fn screen_pops(&self) -> Option<tokio::sync::broadcast::Receiver<crate::telephony::ScreenPop>> {
        self.state.pops.as_ref().map(|p| p.subscribe())
    }

    /// Serves HTTP and runs the workers (SIP, mail gateway, support jobs)
    /// until `shutdown` resolves; then stops taking requests, lets the
    /// workers reach a safe point, hangs up live calls and closes the store.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let gateway = match self.mail {
            Some(cfg) => Some(mailgate::Gateway::new(store.clone(), cfg).spawn(stop_rx.clone())?),
            None => None,
        };
        let jobs = tokio::spawn(support_jobs(store.clone(), self.jobs_every, stop_rx));
        let campaigns = crate::api::tracking::Campaigns::start(&store, &self.campaigns).await?;
        let app = campaigns.mount(router(self.state));
        axum::serve(self.listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(shutdown).await?;
        campaigns.stop().await;
        let _ = stop_tx.send(true);
        if let Some(g) = gateway {
            g.join().await;
        }
        let _ = jobs.await;
        if let Some(t) = self.telephony {
            t.stop().await;
        }
        store.close().await;
        Ok(())
    }
}

pub async fn open_store(settings: &Settings) -> anyhow::Result<Store> {
    let mut opts = StoreOptions::new(settings.database_url.clone());
    opts.default_region = settings.default_region;
    opts.max_connections = settings.db_connections;
    Ok(Store::open(opts).await?)
}

pub fn router(state: AppState) -> Router {
    let metrics = state.metrics.clone();
    Router::new()
        .merge(api::router())
        .merge(crate::console::router())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .route("/api/openapi.json", get(openapi))
        .fallback(|| async { ApiError::not_found("route") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(metrics, metrics::track))
        .with_state(state)
}

async fn healthz(State(st): State<AppState>) -> impl IntoResponse {
    match st.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn metrics_text(State(st): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], st.metrics.render())
}

async fn openapi() -> impl IntoResponse {
    axum::Json(api::ApiDoc::openapi())
}

/// The support desk's periodic jobs: scheduled rules, the SLA scan and
/// split-ticket state propagation. Each is idempotent, so a run cut short
/// by a crash is simply repeated.
async fn support_jobs(store: Store, every: std::time::Duration, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        let now = crm::now_ms();
        if let Err(e) = store.run_scheduled_rules(now).await {
            tracing::warn!(error = %e, "scheduled ticket rules failed");
        }
        if let Err(e) = store.sla_scan(now).await {
            tracing::warn!(error = %e, "SLA scan failed");
        }
        if let Err(e) = store.propagate_split_states(now).await {
            tracing::warn!(error = %e, "split propagation failed");
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutdown signal received; draining");
}
