//! Pod watches, streamed like the real server: newline-delimited JSON events
//! `{"type":"ADDED|MODIFIED|DELETED|BOOKMARK|ERROR","object":{...}}` over a chunked
//! `application/json` response.
//!
//! `resourceVersion` unset or `"0"` starts with synthetic ADDED events for the current
//! objects; a later one replays history after it (410 Expired as an ERROR event when it is
//! gone); `sendInitialEvents=true` ends the initial list with a BOOKMARK annotated
//! `k8s.io/initial-events-end`. Selector transitions are reported as the real cacher does:
//! an object starting to match is ADDED, one ceasing to match is DELETED.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::SinkExt;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::SharedState;
use super::selectors::ListOptions;
use super::status::ApiError;
use super::store::{EventType, PodEvent};

fn line(kind: &str, object: &Value) -> Bytes {
    let mut s = json!({"type": kind, "object": object}).to_string();
    s.push('\n');
    Bytes::from(s)
}

fn pod_line(kind: EventType, pod: &Pod) -> Option<Bytes> {
    serde_json::to_value(pod)
        .ok()
        .map(|v| line(kind.as_str(), &v))
}

/// How an event looks to a watcher with these options, if it sees it at all.
fn transform(ev: &PodEvent, ns: Option<&str>, opts: &ListOptions) -> Option<(EventType, Arc<Pod>)> {
    if ns.is_some_and(|n| ev.pod.metadata.namespace.as_deref() != Some(n)) {
        return None;
    }
    let now = opts.selects(&ev.pod);
    match ev.kind {
        EventType::Added | EventType::Deleted => now.then(|| (ev.kind, ev.pod.clone())),
        EventType::Modified => {
            let before = ev.prev.as_ref().map(|p| opts.selects(p)).unwrap_or(now);
            match (before, now) {
                (true, true) => Some((EventType::Modified, ev.pod.clone())),
                (false, true) => Some((EventType::Added, ev.pod.clone())),
                (true, false) => Some((EventType::Deleted, ev.pod.clone())),
                (false, false) => None,
            }
        }
    }
}

/// Starts a watch on pods of `ns` (or all namespaces).
pub fn watch_pods(
    state: &SharedState,
    ns: Option<String>,
    opts: ListOptions,
) -> Result<Response, ApiError> {
    let (initial, mut rx, start_rv) = {
        let store = state.store();
        let rx = store.subscribe();
        let cur = store.current_rv();
        let mut lines = Vec::new();
        match opts.resource_version.as_deref() {
            None | Some("0") => {
                for p in store.pods(ns.as_deref()).iter().filter(|p| opts.selects(p)) {
                    lines.extend(pod_line(EventType::Added, p));
                }
            }
            Some(rv) => {
                let rv: u64 = rv.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid resource version: {rv:?}"))
                })?;
                if opts.send_initial_events {
                    for p in store.pods(ns.as_deref()).iter().filter(|p| opts.selects(p)) {
                        lines.extend(pod_line(EventType::Added, p));
                    }
                } else {
                    match store.events_since(rv) {
                        Ok(evs) => {
                            for ev in &evs {
                                if let Some((k, p)) = transform(ev, ns.as_deref(), &opts) {
                                    lines.extend(pod_line(k, &p));
                                }
                            }
                        }
                        Err(e) => lines.push(line("ERROR", &e.to_status())),
                    }
                }
            }
        }
        if opts.send_initial_events && opts.allow_bookmarks {
            lines.push(line(
                "BOOKMARK",
                &json!({"kind": "Pod", "apiVersion": "v1", "metadata": {
                    "resourceVersion": cur.to_string(),
                    "annotations": {"k8s.io/initial-events-end": "true"}
                }}),
            ));
        }
        (lines, rx, cur)
    };
    let (mut tx, body_rx) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(64);
    let timeout = opts.timeout_seconds.map(Duration::from_secs);
    tokio::spawn(async move {
        for l in initial {
            if tx.send(Ok(l)).await.is_err() {
                return;
            }
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, rx.recv()).await {
                    Ok(r) => r,
                    Err(_) => return,
                },
                None => rx.recv().await,
            };
            match next {
                Ok(ev) if ev.rv <= start_rv => {}
                Ok(ev) => {
                    if let Some((k, p)) = transform(&ev, ns.as_deref(), &opts)
                        && let Some(l) = pod_line(k, &p)
                        && tx.send(Ok(l)).await.is_err()
                    {
                        return;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let st = ApiError::new(
                        410,
                        "Expired",
                        "watch lagged behind; too old resource version",
                    )
                    .to_status();
                    let _ = tx.send(Ok(line("ERROR", &st))).await;
                    return;
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    let mut resp = (StatusCode::OK, Body::from_stream(body_rx)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// A namespace watch. From `resourceVersion` unset or `"0"`, or with `sendInitialEvents`:
/// ADDED for every namespace (with `sendInitialEvents` and bookmarks, then the
/// initial-events-end BOOKMARK). From a later `resourceVersion` — a watch resumed after a
/// list or an earlier watch — only what happened after it: ADDED for the namespaces
/// created since (namespaces are only ever created here, so that is all that can have
/// happened). The stream then stays open until `timeoutSeconds`; namespaces the harness
/// adds later are not streamed.
pub fn watch_namespaces(state: &SharedState, opts: &ListOptions) -> Result<Response, ApiError> {
    let since = match opts.resource_version.as_deref() {
        None | Some("0") => None,
        Some(_) if opts.send_initial_events => None,
        Some(rv) => Some(
            rv.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {rv:?}")))?,
        ),
    };
    let (lines, rv) = {
        let store = state.store();
        let lines: Vec<Bytes> = store
            .namespaces()
            .iter()
            .filter(|n| {
                since.is_none_or(|since| {
                    n.metadata
                        .resource_version
                        .as_deref()
                        .and_then(|r| r.parse::<u64>().ok())
                        .is_some_and(|r| r > since)
                })
            })
            .filter_map(|n| serde_json::to_value(n).ok())
            .map(|v| line("ADDED", &v))
            .collect();
        (lines, store.current_rv())
    };
    let mut lines = lines;
    if opts.send_initial_events && opts.allow_bookmarks {
        lines.push(line(
            "BOOKMARK",
            &json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {
                "resourceVersion": rv.to_string(),
                "annotations": {"k8s.io/initial-events-end": "true"}
            }}),
        ));
    }
    let timeout = Duration::from_secs(opts.timeout_seconds.unwrap_or(1800));
    let (mut tx, body_rx) = futures::channel::mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(async move {
        for l in lines {
            if tx.send(Ok(l)).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(timeout).await;
    });
    let mut resp = (StatusCode::OK, Body::from_stream(body_rx)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
