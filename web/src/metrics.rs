//! `/metrics` in the Prometheus text format: request counts per route and
//! status class, and a latency histogram per route. Kept by hand (a few
//! atomics behind a mutex-free map per route) rather than pulling in a
//! metrics framework for a dozen series.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const BUCKETS_S: [f64; 10] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 2.5];

#[derive(Default)]
struct Series {
    count: [AtomicU64; 5],
    buckets: [AtomicU64; BUCKETS_S.len()],
    sum_us: AtomicU64,
    total: AtomicU64,
}

#[derive(Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<(String, String), std::sync::Arc<Series>>>,
    pub started: std::sync::OnceLock<Instant>,
}

impl Metrics {
    fn series(&self, method: &str, route: &str) -> std::sync::Arc<Series> {
        let mut m = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((method.to_string(), route.to_string())).or_default().clone()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let m = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        out.push_str("# HELP centralino_http_requests_total HTTP requests by route and status class.\n");
        out.push_str("# TYPE centralino_http_requests_total counter\n");
        for ((method, route), s) in m.iter() {
            for (i, class) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
                let n = s.count[i].load(Ordering::Relaxed);
                if n > 0 {
                    let _ = writeln!(out, "centralino_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{class}\"}} {n}");
                }
            }
        }
        out.push_str("# HELP centralino_http_request_duration_seconds HTTP request latency.\n");
        out.push_str("# TYPE centralino_http_request_duration_seconds histogram\n");
        for ((method, route), s) in m.iter() {
            let mut cum = 0;
            for (i, le) in BUCKETS_S.iter().enumerate() {
                cum += s.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(out, "centralino_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"{le}\"}} {cum}");
            }
            let total = s.total.load(Ordering::Relaxed);
            let _ = writeln!(out, "centralino_http_request_duration_seconds_bucket{{method=\"{method}\",route=\"{route}\",le=\"+Inf\"}} {total}");
            let _ = writeln!(out, "centralino_http_request_duration_seconds_sum{{method=\"{method}\",route=\"{route}\"}} {}", s.sum_us.load(Ordering::Relaxed) as f64 / 1e6);
            let _ = writeln!(out, "centralino_http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\"}} {total}");
        }
        if let Some(t) = self.started.get() {
            out.push_str("# TYPE centralino_uptime_seconds gauge\n");
            let _ = writeln!(out, "centralino_uptime_seconds {}", t.elapsed().as_secs());
        }
        out
    }
}

/// Middleware: times each request and counts it under its route template
/// (never the raw path, so ids do not explode the series count).
pub async fn track(State(m): State<std::sync::Arc<Metrics>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let start = Instant::now();
    let res = next.run(req).await;
    let el = start.elapsed();
    let s = m.series(&method, &route);
    let class = (res.status().as_u16() / 100).clamp(1, 5) as usize - 1;
    s.count[class].fetch_add(1, Ordering::Relaxed);
    let secs = el.as_secs_f64();
    if let Some(i) = BUCKETS_S.iter().position(|le| secs <= *le) {
        s.buckets[i].fetch_add(1, Ordering::Relaxed);
    }
    s.total.fetch_add(1, Ordering::Relaxed);
    s.sum_us.fetch_add(el.as_micros() as u64, Ordering::Relaxed);
    res
}
