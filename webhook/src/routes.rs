//! The HTTPS routes: `POST /mutate`, `POST /validate`; other methods on them get 405, other
//! paths 404, each with a one-line reason.

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;

use crate::review::{mutate, plain, validate};
use crate::state::AppState;

/// The webhook routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/mutate", post(mutate).fallback(method_not_allowed))
        .route("/validate", post(validate).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(state)
}

async fn method_not_allowed() -> Response {
    let mut response = plain(
        StatusCode::METHOD_NOT_ALLOWED,
        "only POST is accepted here".into(),
    );
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("POST"),
    );
    response
}

async fn not_found() -> Response {
    plain(
        StatusCode::NOT_FOUND,
        "not found: kspy serves POST /mutate and POST /validate".into(),
    )
}
