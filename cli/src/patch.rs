//! The raw API requests kspy sends, built as data first ([`PlannedRequest`]) so that
//! `--dry-run=client` prints exactly what would be sent, and the same value is sent otherwise.
//!
//! Adding an ephemeral container is a `PATCH` of `pods/NAME/ephemeralcontainers`:
//!
//! - strategic merge (`application/strategic-merge-patch+json`, the default, what kubectl
//!   sends): `{"spec":{"ephemeralContainers":[CONTAINER]}}` — the list merges by `name`, so
//!   the container is appended;
//! - JSON patch (`application/json-patch+json`, RFC 6902): `add` at
//!   `/spec/ephemeralContainers/-`, or of the whole list at `/spec/ephemeralContainers` when the
//!   pod has none yet (appending to a missing list fails), after a `test` of the
//!   `resourceVersion` read: the whole list may only replace the list that was not there.

use k8s_openapi::api::core::v1::{EphemeralContainer, Pod};
use serde_json::{Value, json};

/// The field manager kspy's writes are recorded under.
pub const FIELD_MANAGER: &str = "kspy";

/// The message of the API server's 422 Invalid for a JSON patch that does not apply to the
/// object as it is now, a failed `test` op among others: its patch handler answers with
/// `NewGenericServerResponse(422, …)`, which keeps neither the op nor why (no causes).
pub const JSON_PATCH_NOT_APPLIED: &str =
    "the server rejected our request due to an error in our request";

/// Whether `status` is the API server's answer to a JSON patch that does not apply to the
/// object as it is now ([`JSON_PATCH_NOT_APPLIED`]). For kspy's patches that is the `test`
/// of the `resourceVersion` failing: the pod changed since it was read, and nothing was
/// written. (Validation failures are 422 too, but say what is invalid.)
pub fn json_patch_not_applied(status: &kube::core::Status) -> bool {
    status.code == 422 && status.message == JSON_PATCH_NOT_APPLIED
}

/// `--patch-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PatchType {
    /// Strategic merge patch, as kubectl.
    #[default]
    Strategic,
    /// RFC 6902 JSON patch.
    Json,
}

impl PatchType {
    /// The request's `Content-Type`.
    pub fn content_type(self) -> &'static str {
        match self {
            PatchType::Strategic => "application/strategic-merge-patch+json",
            PatchType::Json => "application/json-patch+json",
        }
    }
}

/// HTTP methods kspy uses for writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `PATCH`.
    Patch,
    /// `POST`.
    Post,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Patch => "PATCH",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

/// One API request, before it is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedRequest {
    /// The method.
    pub method: Method,
    /// Path and query, e.g. `/api/v1/namespaces/prod/pods/web/ephemeralcontainers?fieldManager=kspy`.
    pub path: String,
    /// The body's content type.
    pub content_type: &'static str,
    /// The body.
    pub body: Value,
}

fn query(dry_run: bool, field_manager: bool) -> String {
    let mut q = Vec::new();
    if dry_run {
        q.push("dryRun=All".to_string());
    }
    if field_manager {
        q.push(format!("fieldManager={FIELD_MANAGER}"));
    }
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// The `PATCH` adding `container` to `pod` (the pod as read, which tells whether the list
/// exists, and with which `resourceVersion`).
pub fn add_ephemeral(
    pod: &Pod,
    container: &EphemeralContainer,
    patch_type: PatchType,
    dry_run: bool,
) -> PlannedRequest {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let c = serde_json::to_value(container).unwrap_or(Value::Null);
    let body = match patch_type {
        PatchType::Strategic => json!({"spec": {"ephemeralContainers": [c]}}),
        PatchType::Json => {
            let has_list = pod
                .spec
                .as_ref()
                .and_then(|s| s.ephemeral_containers.as_ref())
                .is_some_and(|l| !l.is_empty());
            if has_list {
                json!([{"op": "add", "path": "/spec/ephemeralContainers/-", "value": c}])
            } else {
                // The whole list replaces whatever list the pod has when the patch applies:
                // a container someone else added since the GET would be removed (which the API
                // server refuses, and resending cannot fix). Only the pod as read may be
                // patched so; the caller reads it again when the test fails.
                let mut ops = Vec::new();
                if let Some(rv) = &pod.metadata.resource_version {
                    ops.push(
                        json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}),
                    );
                }
                ops.push(json!({"op": "add", "path": "/spec/ephemeralContainers", "value": [c]}));
                Value::Array(ops)
            }
        }
    };
    PlannedRequest {
        method: Method::Patch,
        path: format!(
            "/api/v1/namespaces/{ns}/pods/{name}/ephemeralcontainers{}",
            query(dry_run, true)
        ),
        content_type: patch_type.content_type(),
        body,
    }
}

/// The `POST` creating `pod` in its namespace.
pub fn create_pod(pod: &Pod, dry_run: bool) -> PlannedRequest {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    PlannedRequest {
        method: Method::Post,
        path: format!("/api/v1/namespaces/{ns}/pods{}", query(dry_run, true)),
        content_type: "application/json",
        body: serde_json::to_value(pod).unwrap_or(Value::Null),
    }
}

/// The `DELETE` of a pod, immediately (grace period 0), as `kubectl debug --replace`.
pub fn delete_pod(ns: &str, name: &str, dry_run: bool) -> PlannedRequest {
    let mut body = json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0});
    if dry_run {
        body["dryRun"] = json!(["All"]);
    }
    PlannedRequest {
        method: Method::Delete,
        path: format!("/api/v1/namespaces/{ns}/pods/{name}"),
        content_type: "application/json",
        body,
    }
}

impl PlannedRequest {
    /// The request as `http` sends it (through kube's client, which adds the server and auth).
    pub fn to_http(&self) -> Result<http::Request<Vec<u8>>, http::Error> {
        let method = match self.method {
            Method::Patch => http::Method::PATCH,
            Method::Post => http::Method::POST,
            Method::Delete => http::Method::DELETE,
        };
        http::Request::builder()
            .method(method)
            .uri(&self.path)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, self.content_type)
            .body(serde_json::to_vec(&self.body).unwrap_or_default())
    }

    /// What `--dry-run=client` prints: method, path, content type, body, and the same as a
    /// curl command through `kubectl proxy`.
    pub fn render(&self) -> String {
        let body = serde_json::to_string_pretty(&self.body).unwrap_or_default();
        let compact = serde_json::to_string(&self.body).unwrap_or_default();
        format!(
            "{method} {path}\nContent-Type: {ct}\n\n{body}\n\n\
             # the same request with curl, through `kubectl proxy --port=8001`:\n\
             curl -X {method} 'http://127.0.0.1:8001{path}' \\\n  -H 'Content-Type: {ct}' \\\n  --data-binary '{data}'\n",
            method = self.method.as_str(),
            path = self.path,
            ct = self.content_type,
            data = compact.replace('\'', "'\\''"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::ContainerSpecBuilder;
    use crate::golden;

    fn container(pod: &Pod) -> EphemeralContainer {
        ContainerSpecBuilder {
            name: "debugger-tst42".into(),
            image: "busybox:latest".into(),
            stdin: true,
            tty: true,
            ..ContainerSpecBuilder::default()
        }
        .build_ephemeral(pod, Some("app"), None)
        .expect("builds")
    }

    fn as_json(r: &PlannedRequest) -> Value {
        json!({"method": r.method.as_str(), "path": r.path, "contentType": r.content_type, "body": r.body})
    }

    #[test]
    fn strategic_patch_golden() {
        let pod = golden::fixture_pod("pod-web.json");
        let r = add_ephemeral(&pod, &container(&pod), PatchType::Strategic, false);
        golden::assert_golden("patch-strategic.json", &as_json(&r));
    }

    #[test]
    fn json_patch_appends_when_list_exists() {
        let pod = golden::fixture_pod("pod-web.json");
        let r = add_ephemeral(&pod, &container(&pod), PatchType::Json, false);
        assert_eq!(r.body[0]["path"], "/spec/ephemeralContainers/-");
        golden::assert_golden("patch-json-append.json", &as_json(&r));
    }

    #[test]
    fn json_patch_creates_list_when_absent() {
        let mut pod = golden::fixture_pod("pod-web.json");
        if let Some(s) = pod.spec.as_mut() {
            s.ephemeral_containers = None;
        }
        let r = add_ephemeral(&pod, &container(&pod), PatchType::Json, false);
        // Only while the pod is as read: a container added meanwhile would be replaced.
        assert_eq!(
            r.body[0],
            json!({"op": "test", "path": "/metadata/resourceVersion", "value": "12345"})
        );
        assert_eq!(r.body[1]["path"], "/spec/ephemeralContainers");
        assert!(r.body[1]["value"].is_array());
        golden::assert_golden("patch-json-create.json", &as_json(&r));
    }

    #[test]
    fn dry_run_server_adds_dry_run_all() {
        let pod = golden::fixture_pod("pod-web.json");
        let r = add_ephemeral(&pod, &container(&pod), PatchType::Strategic, true);
        assert_eq!(
            r.path,
            "/api/v1/namespaces/prod/pods/web-7d9f8c6b5-x2x4q/ephemeralcontainers?dryRun=All&fieldManager=kspy"
        );
        let d = delete_pod("prod", "web", true);
        assert_eq!(d.body["dryRun"], json!(["All"]));
    }

    #[test]
    fn render_is_a_usable_curl_command() {
        let r = PlannedRequest {
            method: Method::Patch,
            path: "/api/v1/namespaces/ns/pods/p/ephemeralcontainers?fieldManager=kspy".into(),
            content_type: PatchType::Json.content_type(),
            body: json!([{"op": "add", "path": "/x", "value": "it's"}]),
        };
        let text = r.render();
        assert!(text.starts_with("PATCH /api/v1/namespaces/ns/pods/p/ephemeralcontainers?fieldManager=kspy\nContent-Type: application/json-patch+json\n\n["));
        assert!(text.contains("curl -X PATCH 'http://127.0.0.1:8001/api/v1/namespaces/ns/pods/p/ephemeralcontainers?fieldManager=kspy'"));
        // A single quote in the body is escaped for the shell.
        assert!(
            text.contains(r#"\"value\":\"it'\''s\""#) || text.contains(r#""value":"it'\''s""#),
            "{text}"
        );
        let http = r.to_http().expect("http");
        assert_eq!(http.method(), http::Method::PATCH);
        assert_eq!(
            http.headers()[http::header::CONTENT_TYPE],
            "application/json-patch+json"
        );
        let sent: Value = serde_json::from_slice(http.body()).expect("json body");
        assert_eq!(sent, r.body);
    }
}
