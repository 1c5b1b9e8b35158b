//! `POST /mutate` and `POST /validate`: one AdmissionReview in, one out.
//!
//! - The body is read up to the size limit (413 beyond it) and parsed; anything that is not an
//!   `admission.k8s.io/v1` AdmissionReview with a request gets 400 and a one-line reason.
//! - A parsed review is always answered HTTP 200 with the verdict inside, as the API server
//!   expects. Judging runs on the blocking pool under the per-request deadline; if it does not
//!   finish in time, or fails in any way, the request is denied (fail closed) with the reason,
//!   and counted in `kspy_internal_errors_total`.
//! - One log line per decision (info for debug requests, debug for the rest) and one trace
//!   span per review.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kspy_admission::{Endpoint, Judgement, ParsedReview, Verdict};
use kube::core::admission::AdmissionResponse;
use tracing::Instrument;
use tracing::field::Empty;

use crate::config::FaultInjection;
use crate::metrics::{BadRequest, InternalError};
use crate::state::AppState;
use crate::wire::encode_review;

/// `POST /mutate`.
pub(crate) async fn mutate(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, Endpoint::Mutate, req).await
}

/// `POST /validate`.
pub(crate) async fn validate(State(state): State<Arc<AppState>>, req: Request) -> Response {
    handle(state, Endpoint::Validate, req).await
}

fn endpoint_name(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Mutate => "mutate",
        Endpoint::Validate => "validate",
    }
}

async fn handle(state: Arc<AppState>, endpoint: Endpoint, req: Request) -> Response {
    let name = endpoint_name(endpoint);
    let span = tracing::info_span!(
        "review",
        otel.name = name,
        otel.kind = "server",
        endpoint = name,
        uid = Empty,
        user = Empty,
        namespace = Empty,
        pod = Empty,
        action = Empty,
        verdict = Empty,
    );
    review(state, endpoint, name, req).instrument(span).await
}

async fn review(state: Arc<AppState>, endpoint: Endpoint, name: &'static str, req: Request) -> Response {
    let started = Instant::now();
    let deadline = tokio::time::Instant::from_std(started) + state.review_timeout;
    let _in_flight = state.metrics.in_flight();
    let max = state.max_body_bytes;

    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        state.metrics.bad_request(name, BadRequest::TooLarge);
        return too_large(max);
    }
    let body = match tokio::time::timeout_at(deadline, Limited::new(req.into_body(), max).collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
            state.metrics.bad_request(name, BadRequest::TooLarge);
            return too_large(max);
        }
        Ok(Err(err)) => {
            state.metrics.bad_request(name, BadRequest::Unreadable);
            return plain(StatusCode::BAD_REQUEST, format!("cannot read the request body: {err}"));
        }
        Err(_) => {
            state.metrics.bad_request(name, BadRequest::Unreadable);
            return plain(StatusCode::REQUEST_TIMEOUT, "the request body did not arrive within the review deadline".into());
        }
    };

    let parsed = match ParsedReview::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(err) => {
            state.metrics.bad_request(name, BadRequest::Invalid);
            tracing::info!(endpoint = name, reason = %err, "bad request");
            return plain(StatusCode::BAD_REQUEST, err.to_string());
        }
    };
    drop(body);
    let ids = Ids {
        uid: parsed.uid().to_owned(),
        user: parsed.user().to_owned(),
        namespace: parsed.namespace().unwrap_or("").to_owned(),
        pod: parsed.name().to_owned(),
    };
    let span = tracing::Span::current();
    span.record("uid", ids.uid.as_str());
    span.record("user", ids.user.as_str());
    span.record("namespace", ids.namespace.as_str());
    span.record("pod", ids.pod.as_str());

    match judge(&state, endpoint, parsed, deadline).await {
        Ok(judgement) => answer(&state, name, &ids, judgement, started),
        Err(failure) => {
            state.metrics.internal_error(name, failure);
            let message = match failure {
                InternalError::Timeout => format!(
                    "kspy could not decide within {:?}; denied (fail closed)",
                    state.review_timeout
                ),
                InternalError::Panic => "kspy failed while deciding; denied (fail closed)".to_owned(),
                InternalError::Serialize => "kspy could not encode its answer; denied (fail closed)".to_owned(),
            };
            tracing::error!(
                endpoint = name,
                uid = %ids.uid,
                user = %ids.user,
                namespace = %ids.namespace,
                pod = %ids.pod,
                reason = failure.label(),
                "{message}"
            );
            let response = internal_denial(&ids.uid, &message);
            state.metrics.observe(name, started.elapsed());
            response
        }
    }
}

/// Who and what a review is about, for logs.
struct Ids {
    uid: String,
    user: String,
    namespace: String,
    pod: String,
}

/// Judges on the blocking pool, at most `judge_slots` at once, within `deadline`.
async fn judge(
    state: &AppState,
    endpoint: Endpoint,
    parsed: ParsedReview,
    deadline: tokio::time::Instant,
) -> Result<Judgement, InternalError> {
    let permit = tokio::time::timeout_at(deadline, state.judge_slots.clone().acquire_owned())
        .await
        .map_err(|_| InternalError::Timeout)?
        .map_err(|_| InternalError::Panic)?;
    let namespace = match parsed.namespace() {
        Some(name) if !name.is_empty() => state.namespaces.get(name, deadline).await,
        _ => None,
    };
    let engine = state.engine.current();
    let fault = state.fault_injection;
    let task = tokio::task::spawn_blocking(move || {
        match fault {
            FaultInjection::None => {}
            FaultInjection::Delay(d) => std::thread::sleep(d),
            FaultInjection::Panic => panic!("fault injection: panic while judging"),
        }
        let judgement = engine.judge(&parsed, endpoint, namespace.as_deref());
        drop(permit);
        judgement
    });
    match tokio::time::timeout_at(deadline, task).await {
        Ok(Ok(judgement)) => Ok(judgement),
        Ok(Err(_join)) => Err(InternalError::Panic),
        Err(_) => Err(InternalError::Timeout),
    }
}

fn answer(state: &AppState, name: &'static str, ids: &Ids, judgement: Judgement, started: Instant) -> Response {
    let action = judgement
        .action
        .as_ref()
        .map_or_else(|| "none".to_owned(), ToString::to_string);
    let verdict = judgement.verdict.to_string();
    let span = tracing::Span::current();
    span.record("action", action.as_str());
    span.record("verdict", verdict.as_str());
    let policies = judgement.policies.clone();
    let subjects = judgement.subjects.clone();
    let debug_request = !matches!(judgement.verdict, Verdict::NotDebug);
    let body = match encode_review(&judgement.response) {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(error = %err, uid = %ids.uid, "cannot serialize the AdmissionReview response");
            state.metrics.internal_error(name, InternalError::Serialize);
            return internal_denial(&ids.uid, "kspy could not encode its answer; denied (fail closed)");
        }
    };
    let elapsed = started.elapsed();
    state.metrics.review(name, &action, &verdict, &policies, elapsed);
    if debug_request {
        tracing::info!(
            endpoint = name,
            uid = %ids.uid,
            user = %ids.user,
            namespace = %ids.namespace,
            pod = %ids.pod,
            action = %action,
            verdict = %verdict,
            policies = ?policies,
            subjects = ?subjects,
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "decision"
        );
    } else {
        tracing::debug!(
            endpoint = name,
            uid = %ids.uid,
            user = %ids.user,
            namespace = %ids.namespace,
            pod = %ids.pod,
            verdict = %verdict,
            "not a debug request"
        );
    }
    json(body)
}

/// A denial built by the server itself (not the engine): HTTP 200, `allowed: false`,
/// `status.code` 500, so the API server refuses the request with the reason.
fn internal_denial(uid: &str, message: &str) -> Response {
    let mut response = AdmissionResponse::invalid(message);
    response.uid = uid.to_owned();
    response.result.code = 500;
    response.result.reason = "InternalError".into();
    match encode_review(&response) {
        Ok(body) => json(body),
        // Nothing left to answer with; the API server applies the failure policy.
        Err(_) => plain(StatusCode::INTERNAL_SERVER_ERROR, message.to_owned()),
    }
}

fn json(body: Vec<u8>) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

/// A plain-text error with a one-line reason.
pub(crate) fn plain(status: StatusCode, reason: String) -> Response {
    let mut line = reason.replace(['\n', '\r'], " ");
    line.push('\n');
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], line).into_response()
}

fn too_large(max: usize) -> Response {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than the limit of {max} bytes"),
    )
}
