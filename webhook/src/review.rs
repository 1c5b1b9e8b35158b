//! `POST /mutate` and `POST /validate`: one AdmissionReview in, one out.
//!
//! - A body with a `Content-Encoding` other than `identity` gets 415 before it is read (the API
//!   server never compresses what it sends), one with a `Transfer-Encoding` other than
//!   `chunked` 501.
//! - The body is read up to the size limit (413 beyond it), once it has room in the
//!   server-wide budget of body bytes (`body_budget.rs`; 408 if none frees up before the
//!   deadline), and parsed; anything that is not an `admission.k8s.io/v1` AdmissionReview with
//!   a request gets 400 and a one-line reason. Every such answer is counted in
//!   `kspy_bad_requests_total` and logged at info with its reason.
//! - A parsed review is always answered HTTP 200 with the verdict inside, as the API server
//!   expects. Judging runs on the judging threads under the per-request deadline; the
//!   Namespace is looked up only for requests the engine needs it for, within a share of the
//!   deadline. If judging does not finish in time, or fails in any way, the request is denied
//!   (fail closed) with the reason, counted in `kspy_internal_errors_total` and in
//!   `kspy_reviews_total` as denied.
//! - One log line per decision (info for debug requests, debug for the rest, error for a
//!   fail-closed denial) and one trace span per review.

use std::cell::Cell;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kspy_admission::classify::{Classifier, PodState, classify};
use kspy_admission::{Action, Endpoint, Engine, ParsedReview, ReviewError, Verdict};
use kube::core::admission::AdmissionResponse;
use tracing::Instrument;
use tracing::field::Empty;

use crate::body::{BodyError, WhenFull, read_body};
use crate::body_budget::BodyRoom;
use crate::bounded_text::{FIELD_BYTES, MESSAGE_BYTES, bounded};
use crate::call_timeout::ReviewTimeout;
use crate::config::FaultInjection;
use crate::error_status::error_status;
use crate::events::DecisionEvent;
use crate::hints::hints;
use crate::judge_pool::JobFailure;
use crate::metrics::{BadRequest, InternalError};
use crate::namespaces::{Cached, Found, lookup_budget};
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
        http.response.status_code = Empty,
        // Set for an HTTP error and a fail-closed denial (`mark_error`); a policy's denial
        // is a decision, not an error.
        otel.status_code = Empty,
        otel.status_description = Empty,
    );
    crate::telemetry::adopt_remote_parent(&span, req.headers());
    let response = review(state, endpoint, name, req)
        .instrument(span.clone())
        .await;
    // As an i64: the layer exports unsigned integers as strings, and the semantic convention
    // (and the collectors' queries) want an int.
    span.record(
        "http.response.status_code",
        i64::from(response.status().as_u16()),
    );
    response
}

/// Marks the current review span as failed, with `message` (what the client is told) as the
/// status message.
fn mark_error(message: &str) {
    let span = tracing::Span::current();
    // The code first: the description sets the error status with its message, and a later
    // code would replace it with an empty one.
    span.record("otel.status_code", "ERROR");
    span.record(
        "otel.status_description",
        bounded(message, MESSAGE_BYTES).as_ref(),
    );
}

async fn review(
    state: Arc<AppState>,
    endpoint: Endpoint,
    name: &'static str,
    req: Request,
) -> Response {
    let started = Instant::now();
    // Checked: the configuration keeps the timeout within 30 s, but a deadline past the
    // clock's end must not panic; a deadline of now denies at once (fail closed).
    let now = tokio::time::Instant::from_std(started);
    let timeout = ReviewTimeout::for_call(state.review_timeout, req.uri().query());
    let deadline = now.checked_add(timeout.limit).unwrap_or(now);
    let _in_flight = state.metrics.in_flight();
    let max = state.max_body_bytes;
    // Every refusal below is sent before the body is read whole, and hyper then closes an
    // HTTP/1.1 connection rather than read the rest: say so, so that the client (the API
    // server's Go transport) sends its next review on another connection.
    let http1 = req.version() < axum::http::Version::HTTP_2;
    let early = |response: Response| closing_if(http1, response);

    // The API server never compresses what it sends a webhook; a compressed or otherwise
    // encoded body would only be misread.
    if let Some(encoding) = unsupported_encoding(req.headers()) {
        let mut response = refuse(
            &state,
            name,
            BadRequest::UnsupportedEncoding,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Content-Encoding {encoding} is not supported: kspy reads admission reviews as the API server sends them, uncompressed; send the body without Content-Encoding"
            ),
            None,
        );
        response.headers_mut().insert(
            header::ACCEPT_ENCODING,
            header::HeaderValue::from_static("identity"),
        );
        return early(response);
    }

    // hyper takes a body apart from its chunks and passes on anything else as it came: a body
    // sent gzip-compressed by transfer coding would be read (and judged) as if it were plain.
    if let Some(coding) = unsupported_transfer_coding(req.headers()) {
        return early(refuse(
            &state,
            name,
            BadRequest::UnsupportedEncoding,
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "Transfer-Encoding {coding} is not supported: kspy reads admission reviews as the API server sends them, with Content-Length or chunked; send the body without other transfer codings"
            ),
            None,
        ));
    }

    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return early(too_large(&state, name, max));
    }
    // The body's claim on the server-wide budget: its declared length, or the most it may be.
    // Room is taken piece by piece as the bytes arrive (body_budget.rs).
    let mut room = state.body_budget.open(declared.unwrap_or(max as u64));
    let when_full = if req.version() == axum::http::Version::HTTP_2 {
        WhenFull::Refuse
    } else {
        WhenFull::Wait
    };
    let refused = match read_body(req.into_body(), &mut room, max, when_full, deadline).await {
        Ok(body) => Ok(body),
        Err(BodyError::TooLarge) => Err(too_large(&state, name, max)),
        Err(BodyError::Unreadable(err)) => Err(refuse(
            &state,
            name,
            BadRequest::Unreadable,
            StatusCode::BAD_REQUEST,
            format!("cannot read the request body: {err}"),
            None,
        )),
        Err(BodyError::NotArrived) => Err(refuse(
            &state,
            name,
            BadRequest::Unreadable,
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within the review deadline of {timeout}; send it whole and at once"
            ),
            Some(format!("{:?}", timeout.limit)),
        )),
        Err(BodyError::NoRoom) if when_full == WhenFull::Refuse => {
            let mut response = refuse(
                &state,
                name,
                BadRequest::BufferFull,
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "the server's limit of {} request body bytes in memory (--max-buffered-bytes) is taken by other requests, and an HTTP/2 request does not wait for room; retry",
                    state.max_buffered_bytes
                ),
                Some(format!(
                    "{} bytes buffered at once",
                    state.max_buffered_bytes
                )),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            Err(response)
        }
        Err(BodyError::NoRoom) => Err(refuse(
            &state,
            name,
            BadRequest::BufferFull,
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body was not read within the review deadline of {timeout}: other requests held the server's limit of {} body bytes in memory (--max-buffered-bytes) all that time; retry",
                state.max_buffered_bytes
            ),
            Some(format!(
                "{} bytes buffered at once, {:?}",
                state.max_buffered_bytes, timeout.limit
            )),
        )),
    };
    let body = match refused {
        Ok(body) => body,
        Err(response) => return early(response),
    };
    room.complete();

    let hints = hints(&body);
    let span = tracing::Span::current();
    if let Some(uid) = &hints.uid {
        span.record("uid", bounded(uid, FIELD_BYTES).as_ref());
    }
    let known = Arc::new(Mutex::new(Known::default()));

    match decide(
        &state,
        endpoint,
        body,
        room,
        known.clone(),
        timeout,
        deadline,
    )
    .await
    {
        Ok(Ok(decided)) => answer(&state, name, decided, timeout, started),
        Ok(Err(err)) => refuse(
            &state,
            name,
            BadRequest::Invalid,
            StatusCode::BAD_REQUEST,
            err.to_string(),
            None,
        ),
        Err(failure) => {
            let known = known.lock().unwrap_or_else(PoisonError::into_inner).clone();
            let fields = if known.parsed {
                DecisionFields {
                    uid: hints.uid.unwrap_or_default(),
                    user: known.user,
                    namespace: known.namespace,
                    pod: known.pod,
                    action: known.action.unwrap_or_else(|| UNKNOWN_ACTION.to_owned()),
                }
            } else {
                DecisionFields {
                    uid: hints.uid.unwrap_or_default(),
                    user: String::new(),
                    namespace: hints.namespace.unwrap_or_default(),
                    pod: String::new(),
                    action: UNKNOWN_ACTION.to_owned(),
                }
            };
            fail_closed(&state, name, failure, timeout, fields, started)
        }
    }
}

/// The `action` of a review the server denied before the engine classified it.
pub(crate) const UNKNOWN_ACTION: &str = "unknown";

/// What is known of a review while it is being judged, for the log line and the metrics of a
/// fail-closed denial if judging does not finish.
#[derive(Debug, Clone, Default)]
struct Known {
    /// The body parsed as a review; the fields below are from it.
    parsed: bool,
    user: String,
    namespace: String,
    pod: String,
    /// The debug action, once classified (`none` for a request that is not a debug request).
    action: Option<String>,
}

/// The fields of a decision log line the server writes itself.
struct DecisionFields {
    uid: String,
    user: String,
    namespace: String,
    pod: String,
    action: String,
}

/// Denies a review judging did not finish (or could not encode), fail closed: counted in
/// `kspy_internal_errors_total` and, as `denied`, in `kspy_reviews_total`, and logged as a
/// decision line at error level with what was known. Without a uid there is no review to
/// answer: HTTP 500, and the API server applies the webhook's failure policy.
fn fail_closed(
    state: &AppState,
    name: &'static str,
    failure: InternalError,
    timeout: ReviewTimeout,
    d: DecisionFields,
    started: Instant,
) -> Response {
    state.metrics.internal_error(name, failure);
    let message = match failure {
        InternalError::Timeout => {
            format!("kspy could not decide within {timeout}; denied (fail closed)")
        }
        InternalError::Panic => "kspy failed while deciding; denied (fail closed)".to_owned(),
        InternalError::Serialize => {
            "kspy could not encode its answer; denied (fail closed)".to_owned()
        }
    };
    mark_error(&message);
    let elapsed = started.elapsed();
    if d.uid.is_empty() {
        state.metrics.observe(name, elapsed);
        tracing::error!(
            endpoint = name,
            namespace = %bounded(&d.namespace, FIELD_BYTES),
            reason = failure.label(),
            error = %message,
            "no request uid to deny: answered HTTP 500, the API server applies the webhook's failure policy"
        );
        return error_status(StatusCode::INTERNAL_SERVER_ERROR, message);
    }
    let span = tracing::Span::current();
    span.record("user", bounded(&d.user, FIELD_BYTES).as_ref());
    span.record("namespace", bounded(&d.namespace, FIELD_BYTES).as_ref());
    span.record("pod", bounded(&d.pod, FIELD_BYTES).as_ref());
    span.record("action", bounded(&d.action, FIELD_BYTES).as_ref());
    span.record("verdict", "denied");
    state
        .metrics
        .review(name, &d.action, "denied", &[], elapsed);
    tracing::error!(
        endpoint = name,
        uid = %bounded(&d.uid, FIELD_BYTES),
        user = %bounded(&d.user, FIELD_BYTES),
        namespace = %bounded(&d.namespace, FIELD_BYTES),
        pod = %bounded(&d.pod, FIELD_BYTES),
        action = %bounded(&d.action, FIELD_BYTES),
        verdict = "denied",
        policies = "",
        subjects = "",
        duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        reason = failure.label(),
        error = %message,
        "decision"
    );
    internal_denial(&d.uid, &message)
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
    /// A pod CREATE (no subresource): when it is no debug request, the webhook
    /// configurations' matchConditions did not keep it away ([`warn_unmatched_pod_create`]).
    pod_create: bool,
    dry_run: bool,
    allowed: bool,
    /// Why it was denied, briefly, for the decision's Event (empty when allowed).
    reasons: Vec<kspy_admission::decide::DenialReason>,
    pod_uid: Option<String>,
    policies: Vec<String>,
    subjects: Vec<String>,
    body: Result<Vec<u8>, serde_json::Error>,
}

/// How far a judging thread got with a review.
#[expect(
    clippy::large_enum_variant,
    reason = "`Done` is every review's path and is moved once; boxing it would cost an allocation per review"
)]
enum Stage {
    /// Judged.
    Done(Decided),
    /// The engine needs the review's Namespace, and only the API server can tell it.
    Lookup {
        /// Boxed: the document is large, and this is the rare path.
        parsed: Box<ParsedReview>,
        namespace: String,
        engine: Arc<Engine>,
        room: BodyRoom,
    },
}

/// Parses, judges and encodes on a judging thread ([`crate::judge_pool`]), off the
/// connection-serving workers, so the whole decision runs under `deadline` even if it never
/// returns. The Namespace is looked up only once the body parsed and only if the engine needs
/// it ([`namespace_need`]); fixed sets and cached lookups are read on the judging thread, so
/// the document is built, used and freed there. When only the API server can tell, the review
/// comes back here for the lookup (at most [`lookup_budget`]) and then goes to a judging
/// thread again. `room` (the body's room in the budget) is given back with the body.
async fn decide(
    state: &AppState,
    endpoint: Endpoint,
    body: axum::body::Bytes,
    room: BodyRoom,
    known: Arc<Mutex<Known>>,
    timeout: ReviewTimeout,
    deadline: tokio::time::Instant,
) -> Result<Result<Decided, ReviewError>, InternalError> {
    let engine = state.engine.current();
    let lookup = state.namespaces.clone();
    let fault = state.fault_injection;
    let first_known = known.clone();
    let task = state.judges.run(deadline, move || {
        let known = first_known;
        // No copy: the engine keeps the body as collected (a single chunk shares hyper's read
        // buffer) for its raw views.
        let parsed = ParsedReview::from_bytes(body)?;
        *known.lock().unwrap_or_else(PoisonError::into_inner) = Known {
            parsed: true,
            user: parsed.user().to_owned(),
            namespace: parsed.namespace().unwrap_or("").to_owned(),
            pod: parsed.name().to_owned(),
            action: None,
        };
        match fault {
            FaultInjection::None => {}
            FaultInjection::Delay(d) => std::thread::sleep(d),
            FaultInjection::Panic => panic!("fault injection: panic while judging"),
        }
        let cached = match parsed.namespace().filter(|n| !n.is_empty()) {
            // Cluster-scoped: there is no Namespace to look up.
            None => Cached::Known(Found::Unknown),
            Some(ns) => lookup.cached(ns),
        };
        let namespace = match cached {
            Cached::Known(found) => found,
            Cached::Miss => {
                let need = namespace_need(&engine, &parsed);
                if let Some(action) = need.action {
                    known.lock().unwrap_or_else(PoisonError::into_inner).action =
                        Some(action.to_owned());
                }
                if need.lookup {
                    let namespace = parsed.namespace().unwrap_or("").to_owned();
                    return Ok(Stage::Lookup {
                        parsed: Box::new(parsed),
                        namespace,
                        engine,
                        room,
                    });
                }
                Found::Unknown
            }
        };
        let decided = judge(&engine, &parsed, endpoint, &namespace);
        drop((parsed, room));
        Ok(Stage::Done(decided))
    });
    let failed = |failure| match failure {
        JobFailure::Timeout => InternalError::Timeout,
        JobFailure::Panic => InternalError::Panic,
    };
    let (parsed, namespace, engine, room) = match task.await.map_err(failed)? {
        Err(err) => return Ok(Err(err)),
        Ok(Stage::Done(decided)) => return Ok(Ok(decided)),
        Ok(Stage::Lookup {
            parsed,
            namespace,
            engine,
            room,
        }) => (parsed, namespace, engine, room),
    };
    // A bounded share of the deadline: a slow or hanging API server leaves the rest to
    // judging, which then goes on with the last known Namespace if it is recent, or none.
    let share = lookup_budget(timeout.limit);
    let found = state.namespaces.fetch(&namespace, share, deadline).await;
    let task = state.judges.run(deadline, move || {
        let decided = judge(&engine, &parsed, endpoint, &found);
        drop((parsed, room));
        decided
    });
    task.await.map(Ok).map_err(failed)
}

/// Whether judging a review needs its Namespace, and its action (`none` when not a debug
/// request) when classifying told it.
struct NamespaceNeed {
    lookup: bool,
    action: Option<&'static str>,
}

/// Classifies the review as the engine will (`kspy_admission::classify`, without running the
/// configured CEL classifiers): a debug request needs its Namespace (policies'
/// `namespaceSelector`, `namespaceObject`, Pod Security levels); a request that is not one
/// needs it only if a configured classifier, which may read `namespaceObject`, would be asked.
/// A request that cannot be classified is denied whatever its Namespace.
fn namespace_need(engine: &Engine, parsed: &ParsedReview) -> NamespaceNeed {
    let probe = ClassifierProbe {
        settings: engine.settings(),
        asked: Cell::new(false),
    };
    match classify(parsed, &probe) {
        Ok(Some(request)) => NamespaceNeed {
            lookup: true,
            action: Some(request.action.as_str()),
        },
        // A configured classifier may still make it one.
        Ok(None) if probe.asked.get() => NamespaceNeed {
            lookup: true,
            action: None,
        },
        Ok(None) => NamespaceNeed {
            lookup: false,
            action: Some("none"),
        },
        Err(_) => NamespaceNeed {
            lookup: false,
            action: None,
        },
    }
}

/// A classifier that says "no" and notes whether a configured classifier would have been
/// asked.
struct ClassifierProbe<'a> {
    settings: &'a kspy_admission::Settings,
    asked: Cell<bool>,
}

impl Classifier for ClassifierProbe<'_> {
    fn matches(&self, action: Action, _: &ParsedReview, _: PodState) -> Result<bool, String> {
        let configured = match action {
            Action::Copy => self.settings.copy_classifier.is_some(),
            Action::Node => self.settings.node_classifier.is_some(),
            Action::Attach => false,
        };
        if configured {
            self.asked.set(true);
        }
        Ok(false)
    }
}

/// Judges and encodes one parsed review.
fn judge(engine: &Engine, parsed: &ParsedReview, endpoint: Endpoint, namespace: &Found) -> Decided {
    let judgement = match namespace {
        Found::Missing(why) => engine.judge_namespace_unread(parsed, endpoint, why),
        found => engine.judge(parsed, endpoint, found.namespace()),
    };
    Decided {
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
        pod_create: {
            let r = parsed.request();
            r.operation == kube::core::admission::Operation::Create
                && r.sub_resource.is_none()
                && r.kind.kind == "Pod"
        },
        dry_run: parsed.request().dry_run,
        allowed: judgement.response.allowed,
        reasons: judgement.reasons,
        pod_uid: parsed.pod().and_then(|p| p.metadata.uid.clone()),
        body: encode_review(&judgement.response),
        policies: judgement.policies,
        subjects: judgement.subjects,
    }
}

fn answer(
    state: &AppState,
    name: &'static str,
    d: Decided,
    timeout: ReviewTimeout,
    started: Instant,
) -> Response {
    let span = tracing::Span::current();
    span.record("user", bounded(&d.user, FIELD_BYTES).as_ref());
    span.record("namespace", bounded(&d.namespace, FIELD_BYTES).as_ref());
    span.record("pod", bounded(&d.pod, FIELD_BYTES).as_ref());
    span.record("action", bounded(&d.action, FIELD_BYTES).as_ref());
    span.record("verdict", d.verdict.as_str());
    let body = match d.body {
        Ok(body) => body,
        Err(err) => {
            tracing::error!(
                error = %bounded(&err.to_string(), MESSAGE_BYTES),
                uid = %bounded(&d.uid, FIELD_BYTES),
                "cannot serialize the AdmissionReview response"
            );
            let fields = DecisionFields {
                uid: d.uid,
                user: d.user,
                namespace: d.namespace,
                pod: d.pod,
                action: d.action,
            };
            return fail_closed(
                state,
                name,
                InternalError::Serialize,
                timeout,
                fields,
                started,
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
            uid = %bounded(&d.uid, FIELD_BYTES),
            user = %bounded(&d.user, FIELD_BYTES),
            namespace = %bounded(&d.namespace, FIELD_BYTES),
            pod = %bounded(&d.pod, FIELD_BYTES),
            action = %d.action,
            verdict = %d.verdict,
            policies = %d.policies.join(","),
            subjects = %bounded(&d.subjects.join(","), MESSAGE_BYTES),
            duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "decision"
        );
    } else {
        tracing::debug!(
            endpoint = name,
            uid = %bounded(&d.uid, FIELD_BYTES),
            user = %bounded(&d.user, FIELD_BYTES),
            namespace = %bounded(&d.namespace, FIELD_BYTES),
            pod = %bounded(&d.pod, FIELD_BYTES),
            verdict = %d.verdict,
            "not a debug request"
        );
        if d.pod_create {
            warn_unmatched_pod_create(state, &d.namespace);
        }
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
            reasons: d.reasons,
        });
    }
    json(body)
}

/// How often at most [`warn_unmatched_pod_create`] writes its warning.
pub(crate) const UNMATCHED_POD_CREATE_LOG_EVERY: std::time::Duration =
    std::time::Duration::from_secs(60);

/// The shipped webhook configurations' matchConditions pass on exactly the pod CREATEs kspy's
/// classifier judges, so a pod CREATE that is no debug request means they are not in force:
/// Kubernetes 1.27 drops them without an error unless its AdmissionWebhookMatchConditions
/// gate is on. Every pod creation in the cluster then waits on kspy, and is refused while kspy
/// is down (failurePolicy Fail). Warned at most once a minute, with how many went unlogged.
fn warn_unmatched_pod_create(state: &AppState, namespace: &str) {
    if let Some(held_back) = state
        .unmatched_pod_creates
        .admit(tokio::time::Instant::now())
    {
        tracing::warn!(
            namespace = %bounded(namespace, FIELD_BYTES),
            held_back,
            "kspy was called for a pod CREATE that is not a debug request: the webhook \
             configurations' matchConditions are not in force (Kubernetes 1.27 drops them \
             unless the API server's AdmissionWebhookMatchConditions feature gate is on; use \
             deploy/components/without-match-conditions there), so every pod creation in the \
             cluster is refused while kspy is down"
        );
    }
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
        Err(_) => error_status(StatusCode::INTERNAL_SERVER_ERROR, message.to_owned()),
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

/// `response` with `Connection: close` when the request came over HTTP/1.x (HTTP/2 has no
/// such header: a stream ends on its own). For answers sent before the request body was read
/// whole: the connection cannot carry another request.
pub(crate) fn closing_if(http1: bool, mut response: Response) -> Response {
    if http1 {
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}

/// Answers a request that gets no verdict with an HTTP error: counted in
/// `kspy_bad_requests_total` and logged at info, one line with the reason, the message sent
/// and the limit that was hit, if one was.
fn refuse(
    state: &AppState,
    name: &'static str,
    reason: BadRequest,
    status: StatusCode,
    message: String,
    limit: Option<String>,
) -> Response {
    state.metrics.bad_request(name, reason);
    mark_error(&message);
    let logged = bounded(&message, MESSAGE_BYTES);
    match &limit {
        Some(limit) => tracing::info!(
            endpoint = name,
            status = status.as_u16(),
            reason = reason.label(),
            limit = %limit,
            error = %logged,
            "bad request"
        ),
        None => tracing::info!(
            endpoint = name,
            status = status.as_u16(),
            reason = reason.label(),
            error = %logged,
            "bad request"
        ),
    }
    error_status(status, message)
}

fn too_large(state: &AppState, name: &'static str, max: usize) -> Response {
    refuse(
        state,
        name,
        BadRequest::TooLarge,
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the request body is larger than the limit of {max} bytes (--max-body-bytes)"),
        Some(format!("{max} bytes")),
    )
}

/// The first `Content-Encoding` coding other than `identity`, shortened for messages; `None`
/// when the body is sent as is.
fn unsupported_encoding(headers: &header::HeaderMap) -> Option<String> {
    let shown = |text: &str| text.chars().take(40).collect::<String>();
    for value in headers.get_all(header::CONTENT_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Some(shown(&String::from_utf8_lossy(value.as_bytes())));
        };
        for coding in text.split(',').map(str::trim) {
            if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
                return Some(shown(coding));
            }
        }
    }
    None
}

/// The first `Transfer-Encoding` coding other than `chunked`, shortened for messages; `None`
/// when the body is sent as is or only chunked (HTTP/2 has no transfer codings).
fn unsupported_transfer_coding(headers: &header::HeaderMap) -> Option<String> {
    let shown = |text: &str| text.chars().take(40).collect::<String>();
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(text) = value.to_str() else {
            return Some(shown(&String::from_utf8_lossy(value.as_bytes())));
        };
        for coding in text.split(',').map(str::trim) {
            if !coding.is_empty() && !coding.eq_ignore_ascii_case("chunked") {
                return Some(shown(coding));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Headers holding `name` once for each of `values`.
    fn headers(name: header::HeaderName, values: &[&str]) -> header::HeaderMap {
        let mut headers = header::HeaderMap::new();
        for v in values {
            headers.append(
                name.clone(),
                header::HeaderValue::from_str(v).expect("value"),
            );
        }
        headers
    }

    #[test]
    fn only_chunked_is_an_accepted_transfer_coding() {
        let coding = |values: &[&str]| {
            unsupported_transfer_coding(&headers(header::TRANSFER_ENCODING, values))
        };
        assert_eq!(coding(&[]), None);
        assert_eq!(coding(&["chunked"]), None);
        assert_eq!(coding(&["Chunked"]), None);
        assert_eq!(coding(&["gzip, chunked"]).as_deref(), Some("gzip"));
        assert_eq!(coding(&["deflate", "chunked"]).as_deref(), Some("deflate"));
    }

    #[test]
    fn only_identity_is_an_accepted_content_encoding() {
        let encoding =
            |values: &[&str]| unsupported_encoding(&headers(header::CONTENT_ENCODING, values));
        assert_eq!(encoding(&[]), None);
        assert_eq!(encoding(&["identity"]), None);
        assert_eq!(encoding(&["Identity, identity"]), None);
        assert_eq!(encoding(&["gzip"]).as_deref(), Some("gzip"));
        assert_eq!(encoding(&["identity", "br"]).as_deref(), Some("br"));
        assert_eq!(encoding(&["identity, deflate"]).as_deref(), Some("deflate"));
        assert_eq!(
            encoding(&[&"x".repeat(100)]).map(|s| s.len()),
            Some(40),
            "shortened"
        );
    }
}
