//! The admission chain: mutating webhooks in order, then validating webhooks, each called
//! with an `admission.k8s.io/v1` AdmissionReview shaped like the real API server's
//! (`apiserver/pkg/admission/plugin/webhook`), results turned into the same Status errors.

pub mod client;
pub mod config;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use serde_json::{Value, json};

pub use config::{ChainConfigError, Webhook, WebhookKind, WebhookTarget};

use crate::apiserver::defaults::random_uid;
use crate::apiserver::status::ApiError;
use crate::identity::Identity;

/// Admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `CREATE`
    Create,
    /// `UPDATE` (PATCH and PUT)
    Update,
}

impl Operation {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
        }
    }
}

/// The request being admitted (always a core/v1 Pod here).
#[derive(Debug, Clone)]
pub struct Attributes {
    /// Operation.
    pub operation: Operation,
    /// Subresource (`ephemeralcontainers`) or empty.
    pub subresource: String,
    /// Object name.
    pub name: String,
    /// Namespace.
    pub namespace: String,
    /// Requesting identity.
    pub user: Identity,
    /// The object (mutated in place by mutating webhooks).
    pub object: Value,
    /// The stored object for UPDATE.
    pub old_object: Option<Value>,
    /// `dryRun=All` was asked.
    pub dry_run: bool,
    /// `CreateOptions` / `PatchOptions` / `UpdateOptions`.
    pub options: Value,
    /// Labels of the namespace (for `namespaceSelector`).
    pub namespace_labels: BTreeMap<String, String>,
}

/// One webhook call as recorded by the harness, for assertions.
#[derive(Debug, Clone)]
pub struct ReviewRecord {
    /// Webhook name.
    pub webhook: String,
    /// Mutating or validating.
    pub kind: WebhookKind,
    /// The AdmissionReview sent.
    pub request: Value,
    /// The AdmissionReview received, when one was.
    pub response: Option<Value>,
    /// The call failure, when it failed.
    pub error: Option<String>,
}

/// Shared log of webhook calls.
pub type ReviewLog = Arc<Mutex<Vec<ReviewRecord>>>;

/// What the chain adds to a successful request.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    /// Warnings, returned to the client as `Warning: 299 - "..."` headers.
    pub warnings: Vec<String>,
    /// `auditAnnotations` of all responses, keyed `<webhook>/<key>` as the audit log does.
    pub audit_annotations: BTreeMap<String, String>,
}

/// The configured webhooks.
#[derive(Debug, Clone, Default)]
pub struct AdmissionChain {
    webhooks: Vec<Webhook>,
}

fn labels_of(obj: Option<&Value>) -> BTreeMap<String, String> {
    obj.and_then(|o| o.pointer("/metadata/labels"))
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

/// The AdmissionReview request the API server sends.
pub fn build_review(uid: &str, a: &Attributes) -> Value {
    let gvk = json!({"group": "", "version": "v1", "kind": "Pod"});
    let gvr = json!({"group": "", "version": "v1", "resource": "pods"});
    let mut req = json!({
        "uid": uid,
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": a.name,
        "namespace": a.namespace,
        "operation": a.operation.as_str(),
        "userInfo": {"username": a.user.name, "uid": a.user.uid, "groups": a.user.reported_groups()},
        "object": a.object,
        "oldObject": a.old_object.clone().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
        "options": a.options,
    });
    if !a.subresource.is_empty() {
        req["subResource"] = json!(a.subresource);
        req["requestSubResource"] = json!(a.subresource);
    }
    json!({"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": req})
}

/// A denial as the API server words it (`webhookerrors.ToStatusErr`).
pub fn denial(webhook: &str, status: Option<&Value>) -> ApiError {
    let denied_by = format!("admission webhook {webhook:?} denied the request");
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .unwrap_or(0) as u16;
    let code = if code < 400 { 400 } else { code };
    let reason = status
        .and_then(|s| s.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let msg = status
        .and_then(|s| s.get("message"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let message = if !msg.is_empty() {
        format!("{denied_by}: {msg}")
    } else if !reason.is_empty() {
        format!("{denied_by}: {reason}")
    } else {
        format!("{denied_by} without explanation")
    };
    ApiError {
        code,
        reason,
        message,
        details: status.and_then(|s| s.get("details")).cloned(),
    }
}

fn calling_error(webhook: &str, why: &str) -> String {
    format!("failed calling webhook {webhook:?}: {why}")
}

impl AdmissionChain {
    /// No webhooks: everything is admitted.
    pub fn empty() -> Self {
        Self::default()
    }

    /// From typed configurations; `target` overrides every clientConfig (URL + CA).
    pub fn from_configurations(
        mutating: &[MutatingWebhookConfiguration],
        validating: &[ValidatingWebhookConfiguration],
        target: Option<&WebhookTarget>,
    ) -> Result<Self, ChainConfigError> {
        Ok(Self {
            webhooks: config::webhooks_from(mutating, validating, target)?,
        })
    }

    /// From rendered YAML manifests (other kinds are skipped).
    pub fn from_manifests(
        yaml: &str,
        target: Option<&WebhookTarget>,
    ) -> Result<Self, ChainConfigError> {
        let (m, v) = config::configurations_from_yaml(yaml)?;
        Self::from_configurations(&m, &v, target)
    }

    /// The webhooks in calling order.
    pub fn webhooks(&self) -> &[Webhook] {
        &self.webhooks
    }

    fn applicable<'a>(
        &'a self,
        kind: WebhookKind,
        a: &'a Attributes,
    ) -> impl Iterator<Item = &'a Webhook> + 'a {
        self.webhooks.iter().filter(move |w| {
            w.kind == kind
                && config::rule_matches(&w.rules, a.operation.as_str(), "pods", &a.subresource)
                && config::selector_matches(w.namespace_selector.as_ref(), &a.namespace_labels)
                && (config::selector_matches(
                    w.object_selector.as_ref(),
                    &labels_of(Some(&a.object)),
                ) || config::selector_matches(
                    w.object_selector.as_ref(),
                    &labels_of(a.old_object.as_ref()),
                ))
        })
    }

    /// Calls one webhook; `Ok(None)` when it failed and its failurePolicy is Ignore.
    async fn call(
        &self,
        w: &Webhook,
        a: &Attributes,
        log: &ReviewLog,
    ) -> Result<Option<Value>, ApiError> {
        if a.dry_run && !matches!(w.side_effects.as_str(), "None" | "NoneOnDryRun") {
            return Err(ApiError::bad_request(format!(
                "admission webhook {:?} does not support dry run",
                w.name
            )));
        }
        let uid = random_uid();
        let review = build_review(&uid, a);
        let body = serde_json::to_vec(&review).map_err(ApiError::internal)?;
        let result = client::post_review(&w.url, w.ca_bundle.as_deref(), body, w.timeout).await;
        let parsed: Result<Value, String> = match result {
            Err(e) => Err(e.0),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Err(e) => Err(format!("received invalid webhook response: {e}")),
                Ok(v) => match v.get("response") {
                    None | Some(Value::Null) => {
                        Err("received invalid webhook response: webhook response was absent".into())
                    }
                    Some(r) if r.get("uid").and_then(Value::as_str) != Some(uid.as_str()) => {
                        Err(format!(
                            "received invalid webhook response: expected response.uid={uid:?}, got {:?}",
                            r.get("uid").and_then(Value::as_str).unwrap_or("")
                        ))
                    }
                    Some(_) => Ok(v),
                },
            },
        };
        let mut rec = ReviewRecord {
            webhook: w.name.clone(),
            kind: w.kind,
            request: review,
            response: None,
            error: None,
        };
        let out = match parsed {
            Ok(v) => {
                rec.response = Some(v.clone());
                Ok(v.get("response").cloned())
            }
            Err(why) => {
                let msg = calling_error(&w.name, &why);
                rec.error = Some(msg.clone());
                if w.fail_closed {
                    Err(ApiError::internal(msg))
                } else {
                    Ok(None)
                }
            }
        };
        if let Ok(mut l) = log.lock() {
            l.push(rec);
        }
        out
    }

    fn collect(resp: &Value, hook: &str, admitted: &mut Admitted) {
        for w in resp
            .get("warnings")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(s) = w.as_str() {
                admitted.warnings.push(s.to_string());
            }
        }
        if let Some(m) = resp.get("auditAnnotations").and_then(Value::as_object) {
            for (k, v) in m {
                admitted.audit_annotations.insert(
                    format!("{hook}/{k}"),
                    v.as_str().unwrap_or_default().to_string(),
                );
            }
        }
    }

    /// Runs the mutating webhooks, applying their JSON patches to `a.object`.
    pub async fn mutate(
        &self,
        a: &mut Attributes,
        log: &ReviewLog,
        admitted: &mut Admitted,
    ) -> Result<(), ApiError> {
        let hooks: Vec<Webhook> = self.applicable(WebhookKind::Mutating, a).cloned().collect();
        for w in hooks {
            let Some(resp) = self.call(&w, a, log).await? else {
                continue;
            };
            Self::collect(&resp, &w.name, admitted);
            if resp.get("allowed").and_then(Value::as_bool) != Some(true) {
                return Err(denial(&w.name, resp.get("status")));
            }
            let Some(patch_b64) = resp.get("patch").and_then(Value::as_str) else {
                continue;
            };
            match resp.get("patchType").and_then(Value::as_str) {
                Some("JSONPatch") => {}
                other => {
                    let why = format!(
                        "received invalid webhook response: unsupported patch type {:?}",
                        other.unwrap_or("")
                    );
                    if w.fail_closed {
                        return Err(ApiError::internal(calling_error(&w.name, &why)));
                    }
                    continue;
                }
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(patch_b64)
                .map_err(|e| {
                    ApiError::internal(format!(
                        "failed to decode patch from webhook {:?}: {e}",
                        w.name
                    ))
                })?;
            let patch: json_patch::Patch = serde_json::from_slice(&bytes).map_err(|e| {
                ApiError::internal(format!(
                    "failed to decode patch from webhook {:?}: {e}",
                    w.name
                ))
            })?;
            let mut obj = a.object.clone();
            json_patch::patch(&mut obj, &patch).map_err(ApiError::internal)?;
            a.object = obj;
        }
        Ok(())
    }

    /// Runs the validating webhooks (sequentially, in order; the real server runs them in
    /// parallel and reports the first denial, which for a deterministic chain is the same).
    pub async fn validate(
        &self,
        a: &Attributes,
        log: &ReviewLog,
        admitted: &mut Admitted,
    ) -> Result<(), ApiError> {
        let hooks: Vec<Webhook> = self
            .applicable(WebhookKind::Validating, a)
            .cloned()
            .collect();
        for w in hooks {
            let Some(resp) = self.call(&w, a, log).await? else {
                continue;
            };
            Self::collect(&resp, &w.name, admitted);
            if resp.get("allowed").and_then(Value::as_bool) != Some(true) {
                return Err(denial(&w.name, resp.get("status")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denial_wording() {
        let e = denial(
            "validate.kspy.dev",
            Some(
                &json!({"code": 403, "message": "no policy grants SYS_ADMIN", "reason": "Forbidden"}),
            ),
        );
        assert_eq!(e.code, 403);
        assert_eq!(
            e.message,
            "admission webhook \"validate.kspy.dev\" denied the request: no policy grants SYS_ADMIN"
        );
        let e = denial("v", None);
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "admission webhook \"v\" denied the request without explanation"
        );
    }

    #[test]
    fn review_shape() {
        let a = Attributes {
            operation: Operation::Update,
            subresource: "ephemeralcontainers".into(),
            name: "web".into(),
            namespace: "prod".into(),
            user: Identity::new("alice").groups(&["sre"]),
            object: json!({"kind": "Pod"}),
            old_object: Some(json!({"kind": "Pod"})),
            dry_run: true,
            options: json!({"kind": "PatchOptions", "apiVersion": "meta.k8s.io/v1"}),
            namespace_labels: BTreeMap::new(),
        };
        let r = build_review("u1", &a);
        assert_eq!(r["request"]["subResource"], "ephemeralcontainers");
        assert_eq!(r["request"]["requestSubResource"], "ephemeralcontainers");
        assert_eq!(
            r["request"]["userInfo"]["groups"],
            json!(["sre", "system:authenticated"])
        );
        assert_eq!(r["request"]["dryRun"], true);
        assert_eq!(
            r["request"]["kind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
    }
}
