//! The plain-HTTP admin port: `GET /healthz` (the process is alive), `GET /readyz` (certificate
//! and policies loaded, not shutting down) and `GET /metrics` (Prometheus text).
//!
//! It is served by the webhook port's accept loop (`serve.rs`) with the same deadlines, and at
//! most [`MAX_CONNECTIONS`] connections. It was served by `axum::serve`, which sets no limit
//! at all: a client that connected and sent nothing, or half a request head, held its
//! connection for ever, and 500 of them each holding 390 KiB of a head took the RSS from 34
//! to 195 MiB (the NetworkPolicy admits any source on 8080 unless narrowed).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::serve::ConnectionLimits;
use crate::state::AppState;

/// Most connections open at once on the admin port. Its clients are the kubelet's probes (a
/// connection each, closed after the answer) and a few scrapers keeping one each.
pub(crate) const MAX_CONNECTIONS: usize = 64;

/// The admin port's limits: the webhook port's deadlines, [`MAX_CONNECTIONS`] connections.
pub(crate) fn limits(webhook: ConnectionLimits) -> ConnectionLimits {
    ConnectionLimits {
        max_connections: MAX_CONNECTIONS,
        ..webhook
    }
}

/// The admin routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    match state.not_ready_reason() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    state.metrics.set_judgements_queued(state.judges.queued());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
