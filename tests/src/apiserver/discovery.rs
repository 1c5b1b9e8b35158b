//! Legacy (unaggregated) discovery: `/version`, `/api`, `/api/v1`, `/apis`,
//! `/apis/authentication.k8s.io[/v1]`.
//!
//! kubectl asks for aggregated discovery (`application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`)
//! first and falls back to these documents when the response's Content-Type is plain
//! `application/json`, which is what this server always answers.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::SharedState;

/// The Kubernetes version the harness claims to be.
pub const GIT_VERSION: &str = "v1.33.0";

/// `GET /version`.
pub async fn version() -> Json<Value> {
    Json(json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2025-04-23T00:00:00Z",
        "goVersion": "go1.24.2",
        "compiler": "gc",
        "platform": "linux/amd64"
    }))
}

/// `GET /api`: APIVersions.
pub async fn api(State(state): State<SharedState>) -> Json<Value> {
    Json(json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": state.address.to_string()}]
    }))
}

/// The APIGroup of `authentication.k8s.io` (v1 only, as from 1.28 when SelfSubjectReview
/// went GA).
fn authentication_api_group() -> Value {
    let v1 = json!({"groupVersion": super::authentication::GROUP_VERSION, "version": "v1"});
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": "authentication.k8s.io",
        "versions": [v1],
        "preferredVersion": v1
    })
}

/// `GET /apis`: APIGroupList — `authentication.k8s.io` (SelfSubjectReview). Items of an
/// APIGroupList carry no kind/apiVersion.
pub async fn apis() -> Json<Value> {
    let mut group = authentication_api_group();
    if let Some(m) = group.as_object_mut() {
        m.remove("kind");
        m.remove("apiVersion");
    }
    Json(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [group]}))
}

/// `GET /apis/authentication.k8s.io`: APIGroup.
pub async fn authentication_group() -> Json<Value> {
    Json(authentication_api_group())
}

/// `GET /apis/authentication.k8s.io/v1`: APIResourceList.
pub async fn authentication_v1() -> Json<Value> {
    Json(super::authentication::resources())
}

fn verbs(v: &[&str]) -> Value {
    json!(v)
}

/// The APIResourceList document of core/v1 as served.
pub fn core_v1_resources() -> Value {
    let pod_verbs = verbs(&[
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ]);
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
             "verbs": verbs(&["create", "delete", "get", "list", "patch", "update", "watch"]), "shortNames": ["ns"],
             "storageVersionHash": "Q3oi5N2YM8M="},
            {"name": "nodes", "singularName": "node", "namespaced": false, "kind": "Node",
             "verbs": verbs(&["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]),
             "shortNames": ["no"], "storageVersionHash": "XwShjMxG9Fs="},
            {"name": "pods", "singularName": "pod", "namespaced": true, "kind": "Pod", "verbs": pod_verbs,
             "shortNames": ["po"], "categories": ["all"], "storageVersionHash": "xPOwRZ+Yhw8="},
            {"name": "pods/attach", "singularName": "", "namespaced": true, "kind": "PodAttachOptions",
             "verbs": verbs(&["create", "get"])},
            {"name": "pods/ephemeralcontainers", "singularName": "", "namespaced": true, "kind": "Pod",
             "verbs": verbs(&["get", "patch", "update"])},
            {"name": "pods/log", "singularName": "", "namespaced": true, "kind": "Pod", "verbs": verbs(&["get"])},
            {"name": "pods/status", "singularName": "", "namespaced": true, "kind": "Pod",
             "verbs": verbs(&["get", "patch", "update"])}
        ]
    })
}

/// `GET /api/v1`: APIResourceList.
pub async fn api_v1() -> Json<Value> {
    Json(core_v1_resources())
}
