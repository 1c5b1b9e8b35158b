//! `events.k8s.io/v1` Events: create, list, get and patch in a namespace, validated as the
//! real API server validates what kspy's webhook sends (the fields a new-style Event must
//! carry, a `series` of at least 2, and the fields an update may not change).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::SharedState;
use super::patch::{self, PatchKind};
use super::pods::{authorize, content_type};
use super::status::{ApiError, FieldError};
use super::validation::{dns1123_subdomain_errors, generate_name_errors};
use crate::identity::Identity;

/// The API server's limit on `note`.
const NOTE_MAX_BYTES: usize = 1024;

/// `POST /apis/events.k8s.io/v1/namespaces/{ns}/events`.
pub async fn create_event(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path(ns): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.record("POST", &uri.to_string(), &user, &headers, &body);
    authorize(&user, "create", "events", None, Some(&ns), None)?;
    let event: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "Event in version \"v1\" cannot be handled as a Event: {e}"
        ))
    })?;
    let mut errors = validate(&event, &ns);
    errors.extend(validate_series(&event));
    if !errors.is_empty() {
        let name = event["metadata"]["name"]
            .as_str()
            .or(event["metadata"]["generateName"].as_str())
            .unwrap_or("");
        return Err(ApiError::invalid("Event", name, &errors));
    }
    let stored = state.store().add_event(&ns, event);
    Ok((StatusCode::CREATED, Json(stored)).into_response())
}

/// `GET /apis/events.k8s.io/v1/namespaces/{ns}/events`.
pub async fn list_events(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path(ns): Path<String>,
) -> Result<Response, ApiError> {
    authorize(&user, "list", "events", None, Some(&ns), None)?;
    let store = state.store();
    let items = store.events(&ns);
    Ok(Json(json!({
        "kind": "EventList",
        "apiVersion": "events.k8s.io/v1",
        "metadata": {"resourceVersion": store.current_rv().to_string()},
        "items": items,
    }))
    .into_response())
}

/// `GET /apis/events.k8s.io/v1/namespaces/{ns}/events/{name}`.
pub async fn get_event(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path((ns, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    authorize(&user, "get", "events", None, Some(&ns), Some(&name))?;
    match state.store().event(&ns, &name) {
        Some(event) => Ok(Json(event.clone()).into_response()),
        None => Err(ApiError::not_found("events.events.k8s.io", &name)),
    }
}

/// `PATCH /apis/events.k8s.io/v1/namespaces/{ns}/events/{name}` (how a recorder writes a
/// series count): the patched Event is validated as a new one, then against the stored one.
pub async fn patch_event(
    State(state): State<SharedState>,
    Extension(user): Extension<Identity>,
    Path((ns, name)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    state.record("PATCH", &uri.to_string(), &user, &headers, &body);
    authorize(&user, "patch", "events", None, Some(&ns), Some(&name))?;
    let kind = PatchKind::from_content_type(&content_type(&headers))?;
    let mut store = state.store();
    let Some(old) = store.event(&ns, &name).cloned() else {
        return Err(ApiError::not_found("events.events.k8s.io", &name));
    };
    let new = patch::apply(kind, &old, &body)?;
    let errors = validate_update(&old, &new);
    if !errors.is_empty() {
        return Err(ApiError::invalid_in_group(
            "Event",
            "events.k8s.io",
            &name,
            &errors,
        ));
    }
    Ok(Json(store.replace_event(&ns, &name, new)).into_response())
}

/// The real server's `validateV1EventSeries`: a series counts at least 2 and says when it
/// was last seen.
fn validate_series(e: &Value) -> Vec<FieldError> {
    let series = &e["series"];
    if series.is_null() {
        return Vec::new();
    }
    let mut errors = Vec::new();
    if series["count"].as_i64().is_none_or(|n| n < 2) {
        errors.push(FieldError::invalid(
            "series.count",
            "",
            "should be at least 2",
        ));
    }
    if series["lastObservedTime"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        errors.push(FieldError::required("series.lastObservedTime", ""));
    }
    errors
}

/// The real server's `ValidateEventUpdate` for events.k8s.io/v1, in its order: the legacy
/// checks (the fields a new-style Event needs), the metadata that may not change, the series
/// when it changed, and the immutable fields under their internal (core) names.
fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    errors.extend(missing_reporting_fields(new));
    if new["note"]
        .as_str()
        .is_some_and(|n| n.len() > NOTE_MAX_BYTES)
    {
        errors.push(FieldError::invalid(
            "message",
            "",
            format!("can have at most {NOTE_MAX_BYTES} characters"),
        ));
    }
    for field in ["name", "namespace", "uid"] {
        if old["metadata"][field] != new["metadata"][field] {
            errors.push(FieldError::invalid(
                format!("metadata.{field}"),
                &shown(&new["metadata"][field]),
                "field is immutable",
            ));
        }
    }
    if old["series"] != new["series"] {
        errors.extend(validate_series(new));
    }
    for (field, internal) in [
        ("regarding", "involvedObject"),
        ("reason", "reason"),
        ("note", "message"),
        ("type", "type"),
        ("eventTime", "eventTime"),
        ("action", "action"),
        ("related", "related"),
        ("reportingController", "reportingController"),
        ("reportingInstance", "reportingInstance"),
    ] {
        if old[field] != new[field] {
            errors.push(FieldError::invalid(
                internal,
                &shown(&new[field]),
                "field is immutable",
            ));
        }
    }
    errors
}

/// `Required` for each field a new-style Event must set (checked on create and update).
fn missing_reporting_fields(e: &Value) -> Vec<FieldError> {
    [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ]
    .into_iter()
    .filter(|field| e[*field].as_str().is_none_or(str::is_empty))
    .map(|field| FieldError::required(field, ""))
    .collect()
}

/// A value as a field error shows it: a string as itself, anything else as JSON.
fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The checks of the real server's `ValidateEventCreate` for events.k8s.io/v1 that an
/// Event from a controller can fail.
fn validate(e: &Value, ns: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let text = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(kind) = e["kind"].as_str()
        && kind != "Event"
    {
        errors.push(FieldError::invalid("kind", kind, "must be Event"));
    }
    match e["metadata"]["namespace"].as_str() {
        Some(n) if !n.is_empty() && n != ns => errors.push(FieldError::invalid(
            "metadata.namespace",
            n,
            "does not match the namespace of the request",
        )),
        _ => {}
    }
    if text(&e["metadata"]["name"]).is_none() && text(&e["metadata"]["generateName"]).is_none() {
        errors.push(FieldError::required(
            "metadata.name",
            "name or generateName is required",
        ));
    }
    // `ValidateObjectMeta` with `NameIsDNSSubdomain`: a generateName is a subdomain but for a
    // trailing `-` (the random suffix follows it); a trailing `.` is refused.
    if let Some(g) = text(&e["metadata"]["generateName"]) {
        for msg in generate_name_errors(&g) {
            errors.push(FieldError::invalid("metadata.generateName", &g, msg));
        }
    }
    if let Some(n) = text(&e["metadata"]["name"]) {
        for msg in dns1123_subdomain_errors(&n) {
            errors.push(FieldError::invalid("metadata.name", &n, msg));
        }
    }
    if text(&e["eventTime"]).is_none() {
        errors.push(FieldError::required("eventTime", ""));
    }
    errors.extend(missing_reporting_fields(e));
    match e["type"].as_str() {
        Some("Normal" | "Warning") => {}
        Some(other) => errors.push(FieldError::not_supported(
            "type",
            other,
            &["Normal", "Warning"],
        )),
        None => errors.push(FieldError::required("type", "")),
    }
    if let Some(note) = e["note"].as_str()
        && note.len() > NOTE_MAX_BYTES
    {
        errors.push(FieldError::invalid(
            "note",
            "",
            format!("can have at most {NOTE_MAX_BYTES} characters"),
        ));
    }
    if !e["regarding"].is_object() {
        errors.push(FieldError::required("regarding", ""));
    }
    errors
}
