//! Builders for AdmissionReviews shaped like the API server's, and a one-call engine.

#![allow(dead_code)]

use k8s_openapi::api::core::v1::Namespace;
use kspy_admission::{Endpoint, Engine, Judgement, ParsedReview, PolicySet, Settings};
use serde_json::{Value, json};

/// A running pod with one `app` container and a few volumes.
pub fn pod(ns: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": ns, "uid": "p-1"},
        "spec": {
            "containers": [
                {"name": "app", "image": "registry.example.com/shop/web:1",
                 "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/web", "readOnly": true},
                    {"name": "creds", "mountPath": "/creds", "readOnly": true}]},
                {"name": "sidecar", "image": "envoy:1"}
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "web"}},
                {"name": "creds", "secret": {"secretName": "creds"}}
            ]
        },
        "status": {"phase": "Running"}
    })
}

/// A debug container.
pub fn debugger(name: &str, image: &str) -> Value {
    json!({"name": name, "image": image, "stdin": true, "tty": true})
}

/// An UPDATE of pods/ephemeralcontainers adding `new` to a pod that already has `old`.
pub fn attach(ns: &str, user: &str, groups: &[&str], old: Vec<Value>, new: Vec<Value>) -> Value {
    let mut old_pod = pod(ns);
    if !old.is_empty() {
        old_pod["spec"]["ephemeralContainers"] = Value::Array(old.clone());
    }
    let mut new_pod = old_pod.clone();
    let mut all = old;
    all.extend(new);
    new_pod["spec"]["ephemeralContainers"] = Value::Array(all);
    review(
        ns,
        user,
        groups,
        "UPDATE",
        Some("ephemeralcontainers"),
        new_pod,
        Some(old_pod),
    )
}

/// Applies `edit` to the pod of review `r` before and after the request (`object` and
/// `oldObject`), as an attach's pod is the same in both but for what is added.
pub fn edit_pods(r: &mut Value, mut edit: impl FnMut(&mut Value)) {
    for pod in ["object", "oldObject"] {
        edit(&mut r["request"][pod]);
    }
}

/// A CREATE of a pod.
pub fn create(ns: &str, user: &str, groups: &[&str], pod: Value) -> Value {
    review(ns, user, groups, "CREATE", None, pod, None)
}

/// An AdmissionReview v1 envelope.
pub fn review(
    ns: &str,
    user: &str,
    groups: &[&str],
    operation: &str,
    sub_resource: Option<&str>,
    object: Value,
    old_object: Option<Value>,
) -> Value {
    let mut request = json!({
        "uid": "uid-1",
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "name": object["metadata"]["name"].clone(),
        "namespace": ns,
        "operation": operation,
        "userInfo": {"username": user, "groups": groups},
        "object": object,
        "oldObject": old_object,
        "dryRun": false
    });
    if let Some(s) = sub_resource {
        request["subResource"] = json!(s);
        request["requestSubResource"] = json!(s);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request})
}

/// An engine over one YAML text.
pub fn engine(yaml: &str) -> Engine {
    engine_with(yaml, Settings::default())
}

/// An engine over one YAML text with settings.
pub fn engine_with(yaml: &str, settings: Settings) -> Engine {
    let set = PolicySet::from_yaml("test.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    Engine::new(set, settings).unwrap_or_else(|e| panic!("{e}"))
}

/// A namespace with labels.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    let mut n = Namespace::default();
    n.metadata.name = Some(name.to_owned());
    n.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    n
}

/// Judges a review value.
pub fn judge(
    engine: &Engine,
    review: &Value,
    endpoint: Endpoint,
    ns: Option<&Namespace>,
) -> Judgement {
    let parsed = ParsedReview::from_value(review.clone()).unwrap_or_else(|e| panic!("{e}"));
    engine.judge(&parsed, endpoint, ns)
}

/// `/validate` without a namespace object.
pub fn validate(engine: &Engine, review: &Value) -> Judgement {
    judge(engine, review, Endpoint::Validate, None)
}

/// The JSON patch of a `/mutate` answer.
pub fn patch_of(j: &Judgement) -> Vec<Value> {
    j.response
        .patch
        .as_ref()
        .map(|p| serde_json::from_slice(p).unwrap())
        .unwrap_or_default()
}

/// A policy document.
pub fn policy(name: &str, body: &str) -> String {
    format!(
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata:\n  name: {name}\nspec:\n{body}\n---\n"
    )
}
