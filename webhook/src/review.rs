//! `POST /mutate` and `POST /validate`: one AdmissionReview in, one out.
//!
//! - The body is read up to the size limit (413 beyond it) and parsed; anything that is not an
//!   `admission.k8s.io/v1` AdmissionReview with a request gets 400 and a one-line reason.
//! - A parsed review is always answered HTTP 200 with the verdict inside, as the API server
//!   expects. Judging runs on the judging threads under the per-request deadline; if it does not
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
use kspy_admission::{Endpoint, ParsedReview, ReviewError, Verdict};
use kube::core::admission::AdmissionResponse;
use tracing::Instrument;
use tracing::field::Empty;

use crate::config::FaultInjection;
use crate::events::DecisionEvent;
use crate::hints::hints;
use crate::judge_pool::JobFailure;
use crate::metrics::{BadRequest, InternalError};
use crate::state::AppState;
use kspy_admission::encode_review;

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

async fn review(
    state: Arc<AppState>,
    endpoint: Endpoint,
    name: &'static str,
    req: Request,
) -> Response {
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
    let body = match tokio::time::timeout_at(deadline, Limited::new(req.into_body(), max).collect())
        .await
    {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
            state.metrics.bad_request(name, BadRequest::TooLarge);
            return too_large(max);
        }
        Ok(Err(err)) => {
            state.metrics.bad_request(name, BadRequest::Unreadable);
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {err}"),
            );
        }
        Err(_) => {
            state.metrics.bad_request(name, BadRequest::Unreadable);
            return plain(
                StatusCode::REQUEST_TIMEOUT,
                "the request body did not arrive within the review deadline".into(),
            );
        }
    };

    let hints = hints(&body);
    let span = tracing::Span::current();
    if let Some(uid) = &hints.uid {
        span.record("uid", uid.as_str());
    }
    let namespace = match &hints.namespace {
        Some(ns) => state.namespaces.get(ns, deadline).await,
        None => None,
    };

    match decide(&state, endpoint, body, namespace, deadline).await {
        Ok(Ok(decided)) => answer(&state, name, decided, started),
        Ok(Err(err)) => {
            state.metrics.bad_request(name, BadRequest::Invalid);
            tracing::info!(endpoint = name, reason = %err, "bad request");
            plain(StatusCode::BAD_REQUEST, err.to_string())
        }
        Err(failure) => {
            state.metrics.internal_error(name, failure);
            let message = match failure {
                InternalError::Timeout => format!(
                    "kspy could not decide within {:?}; denied (fail closed)",
                    state.review_timeout
                ),
                InternalError::Panic => {
                    "kspy failed while deciding; denied (fail closed)".to_owned()
                }
                InternalError::Serialize => {
                    "kspy could not encode its answer; denied (fail closed)".to_owned()
                }
            };
            let uid = hints.uid.as_deref().unwrap_or("");
            tracing::error!(
                endpoint = name,
                uid,
                namespace = hints.namespace.as_deref().unwrap_or(""),
                reason = failure.label(),
                "{message}"
            );
            state.metrics.observe(name, started.elapsed());
            if uid.is_empty() {
                // No uid to answer with: an HTTP error, and the API server applies the
                // webhook's failure policy.
                plain(StatusCode::INTERNAL_SERVER_ERROR, message)
            } else {
                internal_denial(uid, &message)
            }
        }
    }
}

/// What judging one review produced, ready to send and to log.
struct Decided {
    uid: String,
    user: String,
    namespace: String,
    pod: String,
    action: String,
    verdict: String,
    debug_request: bool,
    dry_run: bool,
    allowed: bool,
    /// The denial message (empty when allowed).
    message: String,
    pod_uid: Option<String>,
    policies: Vec<String>,
    subjects: Vec<String>,
    body: Result<Vec<u8>, serde_json::Error>,
}

/// Parses, judges and encodes on a judging thread ([`crate::judge_pool`]), so the document is
/// built, used and freed on one thread, off the connection-serving workers, and so the whole
/// decision runs under `deadline` even if it never returns.
async fn decide(
    state: &AppState,
    endpoint: Endpoint,
    body: axum::body::Bytes,
    namespace: Option<Arc<k8s_openapi::api::core::v1::Namespace>>,
    deadline: tokio::time::Instant,
) -> Result<Result<Decided, ReviewError>, InternalError> {
    let engine = state.engine.current();
    let fault = state.fault_injection;
    let task = state.judges.run(deadline, move || {
        // No copy: the engine keeps the body as collected (a single chunk shares hyper's read
        // buffer) for its raw views.
        let parsed = ParsedReview::from_bytes(body)?;
        match fault {
            FaultInjection::None => {}
            FaultInjection::Delay(d) => std::thread::sleep(d),
            FaultInjection::Panic => panic!("fault injection: panic while judging"),
        }
        let judgement = engine.judge(&parsed, endpoint, namespace.as_deref());
        Ok(Decided {
            uid: parsed.uid().to_owned(),
            user: parsed.user().to_owned(),
            namespace: parsed.namespace().unwrap_or("").to_owned(),
            pod: parsed.name().to_owned(),
            action: judgement
                .action
                .as_ref()
                .map_or_else(|| "none".to_owned(), ToString::to_string),
            verdict: judgement.verdict.to_string(),
            debug_request: !matches!(judgement.verdict, Verdict::NotDebug),
            dry_run: parsed.request().dry_run,
            allowed: judgement.response.allowed,
            message: if judgement.response.allowed {
                String::new()
            } else {
                judgement.response.result.message.clone()
            },
            pod_uid: parsed.pod().and_then(|p| p.metadata.uid.clone()),
            body: encode_review(&judgement.response),
            policies: judgement.policies,
            subjects: judgement.subjects,
        })
    });
    task.await.map_err(|failure| match failure {
        JobFailure::Timeout => InternalError::Timeout,
        JobFailure::Panic => InternalError::Panic,
    })
}

fn answer(state: &AppState, name: &'static str, d: Decided, started: Instant) -> Response {
    let span = tracing::Span::current();
    span.record("user", d.user.as_str());
    span.record("namespace", d.namespace.as_str());
    span.record("pod", d.pod.as_str());
    span.record("action", d.action.as_str());
    span.record("verdict", d.verdict.as_str());
    let body = match d.body {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(error = %err, uid = %d.uid, "cannot serialize the AdmissionReview response");
            state.metrics.internal_error(name, InternalError::Serialize);
            return internal_denial(
                &d.uid,
                "kspy could not encode its answer; denied (fail closed)",
            );
        }
    };
    let elapsed = started.elapsed();
    state
        .metrics
        .review(name, &d.action, &d.verdict, &d.policies, elapsed);
    if d.debug_request {
        tracing::info!(
            endpoint = name,
            uid = %d.uid,
            user = %d.user,
            namespace = %d.namespace,
            pod = %d.pod,
            action = %d.action,
            verdict = %d.verdict,
            policies = %d.policies.join(","),
            subjects = %d.subjects.join(","),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "decision"
        );
    } else {
        tracing::debug!(
            endpoint = name,
            uid = %d.uid,
            user = %d.user,
            namespace = %d.namespace,
            pod = %d.pod,
            verdict = %d.verdict,
            "not a debug request"
        );
    }
    // One Event per debug decision, from /validate only (the final verdict; /mutate would make
    // a second one), never for a dry run (the webhook declares sideEffects: NoneOnDryRun),
    // and only about a Pod with a name (a node-debugging Pod may have only generateName).
    if let Some(events) = &state.events
        && name == "validate"
        && d.debug_request
        && !d.dry_run
        && !d.pod.is_empty()
    {
        events.record(DecisionEvent {
            namespace: d.namespace,
            pod: d.pod,
            pod_uid: d.pod_uid,
            action: d.action,
            allowed: d.allowed,
            user: d.user,
            policies: d.policies,
            subjects: d.subjects,
            message: d.message,
        });
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
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        line,
    )
        .into_response()
}

fn too_large(max: usize) -> Response {
    plain(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than the limit of {max} bytes"),
    )
}
