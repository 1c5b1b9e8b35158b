//! `events.k8s.io/v1` Events: create and list in a namespace, validated as the real API
//! server validates what kspy's webhook sends (the fields a new-style Event must carry).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::SharedState;
use super::pods::authorize;
use super::status::{ApiError, FieldError};
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
    let errors = validate(&event, &ns);
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
    if text(&e["eventTime"]).is_none() {
        errors.push(FieldError::required("eventTime", ""));
    }
    for field in [
        "reportingController",
        "reportingInstance",
        "action",
        "reason",
    ] {
        if text(&e[field]).is_none() {
            errors.push(FieldError::required(field, ""));
        }
    }
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
