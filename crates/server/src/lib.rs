#![recursion_limit = "512"]
//! boveda's HTTPS server: the axum router over the vault, TLS-only serving, metrics, the
//! OpenAPI document and configuration.
//!
//! The router is built by [`router`] and served by [`net::serve`], so tests run it on port 0
//! or with `oneshot` and no socket.
//!
//! ```no_run
//! # async fn demo(state: boveda_server::AppState, tls: std::sync::Arc<rustls::ServerConfig>) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let app = boveda_server::router(state);
//! boveda_server::net::serve(listener, tls, app, std::future::pending(), std::time::Duration::from_secs(5)).await
//! # }
//! ```

mod api;
pub mod config;
mod error;
mod extract;
pub mod net;
pub mod notify;
pub mod openapi;
pub mod pdf;
mod presidio;
pub mod setup;
pub mod tls;

pub use api::{RouteDoc, routes};
pub use error::ApiError;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use boveda_core::Vault;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The vault.
    pub vault: Vault,
    /// The Prometheus recorder's handle, when metrics are on.
    pub metrics: Option<PrometheusHandle>,
    /// The body limit in bytes, for error messages.
    pub body_limit: usize,
    /// Wakes the rewrap job after a rotation.
    pub rewrap: Arc<tokio::sync::Notify>,
    /// Per-address limit on the authentication routes.
    pub auth_limit: Arc<RateLimit>,
}

/// A fixed-window limit per client address: at most `per_minute` requests in each minute.
/// Kept in the node's memory: it slows guessing from one address, while the account lockout in
/// the database holds across nodes.
pub struct RateLimit {
    per_minute: u32,
    windows: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, (Instant, u32)>>,
}

impl RateLimit {
    /// A limit of `per_minute` requests per address.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// Counts a request; false when the address is over its limit.
    pub fn allow(&self, addr: Option<std::net::IpAddr>) -> bool {
        let Some(addr) = addr else { return true };
        let Ok(mut w) = self.windows.lock() else {
            return true;
        };
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| start.elapsed().as_secs() < 60);
        }
        let e = w.entry(addr).or_insert((Instant::now(), 0));
        if e.0.elapsed().as_secs() >= 60 {
            *e = (Instant::now(), 0);
        }
        e.1 += 1;
        e.1 <= self.per_minute
    }
}

impl AppState {
    /// State over a vault with the process-wide metrics recorder.
    pub fn new(vault: Vault, body_limit: usize) -> Self {
        Self {
            vault,
            metrics: metrics_handle(),
            body_limit,
            rewrap: Arc::new(tokio::sync::Notify::new()),
            auth_limit: Arc::new(RateLimit::new(30)),
        }
    }
}

/// Installs the Prometheus recorder once per process and returns its handle.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "boveda_http_request_duration_seconds".into(),
                    ),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    ],
                )
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "boveda_audit_commit_seconds".into(),
                    ),
                    &[
                        0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1.0,
                    ],
                )
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("boveda_audit_commit_events".into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0],
                )
                .ok()?
                .install_recorder()
                .ok()
        })
        .clone()
}

/// Request id, security headers, JSON bodies for axum's own 404/405, and request metrics.
async fn envelope(req: Request, next: Next) -> Response {
    let rid = uuid::Uuid::now_v7().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let method = req.method().clone();
    let start = Instant::now();
    let mut resp = error::REQUEST_ID
        .scope(rid.clone(), async move {
            let resp = next.run(req).await;
            let json = resp
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
            match resp.status() {
                StatusCode::METHOD_NOT_ALLOWED if !json => {
                    let allow = resp.headers().get(header::ALLOW).cloned();
                    let mut r = ApiError::new(
                        StatusCode::METHOD_NOT_ALLOWED,
                        "method_not_allowed",
                        "this route does not support the method; see the Allow header",
                    )
                    .into_response();
                    if let Some(a) = allow {
                        r.headers_mut().insert(header::ALLOW, a);
                    }
                    r
                }
                StatusCode::NOT_FOUND if !json => ApiError::new(
                    StatusCode::NOT_FOUND,
                    "route_not_found",
                    "no such route; see /openapi.json",
                )
                .into_response(),
                _ => resp,
            }
        })
        .await;
    let status = resp.status().as_u16().to_string();
    metrics::counter!("boveda_http_requests_total", "route" => route.clone(), "method" => method.to_string(), "status" => status).increment(1);
    metrics::histogram!("boveda_http_request_duration_seconds", "route" => route, "method" => method.to_string()).record(start.elapsed().as_secs_f64());
    let h = resp.headers_mut();
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=63072000; includeSubDomains"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&rid) {
        h.insert("x-request-id", v);
    }
    resp
}

/// The application router over a state.
pub fn router(state: AppState) -> Router {
    let body_limit = state.body_limit;
    let mut r = Router::new();
    for (doc, handler) in routes() {
        r = r.route(doc.path, handler);
    }
    r.fallback(|| async {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "route_not_found",
            "no such route; see /openapi.json",
        )
    })
    .layer(axum::extract::DefaultBodyLimit::max(body_limit))
    .layer(axum::middleware::from_fn(envelope))
    .with_state(state)
}
