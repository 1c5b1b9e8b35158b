//! Server-side printing: `meta.k8s.io/v1` Table responses for pods, as `kubectl get` asks
//! for with `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

/// Whether the Accept header asks for a Table.
pub fn wants_table(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| {
        a.split(',')
            .next()
            .is_some_and(|first| first.contains("as=Table"))
    })
}

/// Go's `duration.HumanDuration`, close enough: `5s`, `3m`, `2h`, `4d`.
pub fn human_age(seconds: i64) -> String {
    match seconds {
        s if s < 0 => "<invalid>".into(),
        s if s < 120 => format!("{s}s"),
        s if s < 600 => format!("{}m{}s", s / 60, s % 60),
        s if s < 3 * 3600 => format!("{}m", s / 60),
        s if s < 48 * 3600 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn row(pod: &Pod) -> Value {
    let status = pod.status.as_ref();
    let statuses = status
        .and_then(|s| s.container_statuses.clone())
        .unwrap_or_default();
    let total = pod.spec.as_ref().map(|s| s.containers.len()).unwrap_or(0);
    let ready = statuses.iter().filter(|c| c.ready).count();
    let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
    let waiting = statuses.iter().find_map(|c| {
        c.state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
    });
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    let reason = waiting.unwrap_or(phase);
    let age = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| human_age(Timestamp::now().as_second() - t.0.as_second()))
        .unwrap_or_else(|| "<unknown>".into());
    let mut meta = serde_json::to_value(&pod.metadata).unwrap_or(json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
    }
    json!({
        "cells": [pod.metadata.name.clone().unwrap_or_default(), format!("{ready}/{total}"), reason, restarts, age],
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta}
    })
}

/// A Table of pods.
pub fn pods_table(pods: &[Pod], resource_version: &str) -> Value {
    let col = |name: &str, ty: &str, format: &str, description: &str| json!({"name": name, "type": ty, "format": format, "description": description, "priority": 0});
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": [
            col("Name", "string", "name", "Name must be unique within a namespace."),
            col("Ready", "string", "", "The aggregate readiness state of this pod for accepting traffic."),
            col("Status", "string", "", "The aggregate status of the containers in this pod."),
            col("Restarts", "string", "", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
            col("Age", "string", "", "CreationTimestamp is a timestamp representing the server time when this object was created."),
        ],
        "rows": pods.iter().map(row).collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_and_ages() {
        assert!(wants_table(Some(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
        )));
        assert!(!wants_table(Some("application/json")));
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(7200), "120m");
        assert_eq!(human_age(3 * 86400), "3d");
        let t = pods_table(&[Pod::default()], "7");
        assert_eq!(t["rows"][0]["cells"][1], "0/0");
    }
}
