//! The HTTPS routes: `POST /mutate`, `POST /validate`; other methods on them get 405, other
//! paths 404, each with a one-line reason.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, Version, header};
use axum::response::Response;
use axum::routing::post;

use crate::error_status::error_status;
use crate::review::{closing_if, mutate, validate};
use crate::state::AppState;

/// The webhook routes.
pub(crate) fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/mutate", post(mutate).fallback(method_not_allowed))
        .route("/validate", post(validate).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(state)
}

async fn method_not_allowed(req: Request) -> Response {
    let mut response = error_status(
        StatusCode::METHOD_NOT_ALLOWED,
        "only POST is accepted here".into(),
    );
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("POST"),
    );
    closing_if(unread_http1_body(&req), response)
}

async fn not_found(req: Request) -> Response {
    let response = error_status(
        StatusCode::NOT_FOUND,
        "not found: kspy serves POST /mutate and POST /validate".into(),
    );
    closing_if(unread_http1_body(&req), response)
}

/// True for an HTTP/1.x request with a body, which these answers leave unread: hyper then
/// closes the connection, and the answer says so.
fn unread_http1_body(req: &Request) -> bool {
    let headers = req.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0");
    req.version() < Version::HTTP_2 && (declared || headers.contains_key(header::TRANSFER_ENCODING))
}
