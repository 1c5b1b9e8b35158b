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
    /// `CreateOptions`, or `UpdateOptions` (for a PATCH too, as the real server sends).
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
        "operation": a.operation.as_str(),
        "userInfo": {"username": a.user.name, "uid": a.user.uid, "groups": a.user.reported_groups()},
        "object": a.object,
        "oldObject": a.old_object.clone().unwrap_or(Value::Null),
        "dryRun": a.dry_run,
        "options": a.options,
    });
    // `name` and `namespace` are omitempty: a generateName create has no name yet.
    if !a.name.is_empty() {
        req["name"] = json!(a.name);
    }
    if !a.namespace.is_empty() {
        req["namespace"] = json!(a.namespace);
    }
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

    /// This chain's webhooks and `other`'s together, in the API server's calling order:
    /// mutating before validating, each by configuration name, a configuration's webhooks
    /// in their own order (the sort is stable). For chains whose webhooks are called at
    /// different places (e.g. kspy's and a stub's).
    pub fn and(mut self, other: AdmissionChain) -> Self {
        self.webhooks.extend(other.webhooks);
        self.webhooks.sort_by(|a, b| {
            (a.kind == WebhookKind::Validating, &a.configuration)
                .cmp(&(b.kind == WebhookKind::Validating, &b.configuration))
        });
        self
    }

    /// The webhooks in calling order.
    pub fn webhooks(&self) -> &[Webhook] {
        &self.webhooks
    }

    /// Whether `w` is called for `a`, as `generic.Webhook.ShouldCallHook` decides: rules,
    /// `namespaceSelector`, `objectSelector`, then `matchConditions`. A matchConditions
    /// evaluation error is a 403 under `failurePolicy: Fail` and skips the webhook under
    /// `Ignore`.
    fn should_call(w: &Webhook, a: &Attributes) -> Result<bool, ApiError> {
        let selected = config::rule_matches(&w.rules, a.operation.as_str(), "pods", &a.subresource)
            && config::selector_matches(w.namespace_selector.as_ref(), &a.namespace_labels)
            && config::object_selector_matches(
                w.object_selector.as_ref(),
                Some(&a.object),
                a.old_object.as_ref(),
            );
        if !selected {
            return Ok(false);
        }
        match match_conditions(&w.match_conditions, a) {
            Ok(matches) => Ok(matches),
            Err(errors) if w.fail_closed => {
                Err(ApiError::forbidden("pods", &a.name, aggregate(&errors)))
            }
            Err(_) => Ok(false),
        }
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
        let mut rec = ReviewRecord {
            webhook: w.name.clone(),
            kind: w.kind,
            request: review,
            response: None,
            error: None,
        };
        let parsed: Result<Value, String> = match result {
            Err(e) => Err(e.0),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Err(e) => Err(format!(
                    "failed to call webhook: couldn't get version/kind; json parse error: {e}"
                )),
                Ok(v) => {
                    rec.response = Some(v.clone());
                    verify_response(&uid, w.kind == WebhookKind::Mutating, &v)
                }
            },
        };
        let out = match parsed {
            Ok(response) => Ok(Some(response)),
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

    /// Runs the mutating webhooks as `webhook/mutating/dispatcher.go` with the admission
    /// reinvoker (`admission/reinvocation.go`) does: in order, each webhook's applicability
    /// (selectors, matchConditions) decided on the object as the webhooks before it left
    /// it, each JSON patch applied and the result decoded and defaulted
    /// ([`Self::call_mutating`]). When a webhook changed the object, the webhooks with
    /// `reinvocationPolicy: IfNeeded` that ran before that change are called once more in a
    /// second round (still only if they match); a change in that round makes the
    /// reinvocable ones before it eligible later in the same round, but there is no third.
    /// A webhook not called in the first round is never called in the second.
    ///
    /// The in-tree mutating plugins, which the caller ran before this, are not run again:
    /// see [`Self::mutate_with`] for a request whose plugins must be.
    pub async fn mutate(
        &self,
        a: &mut Attributes,
        log: &ReviewLog,
        admitted: &mut Admitted,
    ) -> Result<(), ApiError> {
        self.mutate_with(a, log, admitted, &|_| Ok(())).await
    }

    /// [`Self::mutate`], with the in-tree mutating plugins `in_tree` run again at the start of
    /// the second round, as the reinvoker runs the whole mutating chain again whenever a
    /// webhook changed the object (whatever the webhooks' reinvocationPolicy): on a pod
    /// create, the ServiceAccount plugin mounts the token into a container a webhook added.
    /// When they change the object, every webhook with `reinvocationPolicy: IfNeeded` that ran
    /// is called again (`IsOutputChangedSinceLastWebhookInvocation`).
    pub async fn mutate_with(
        &self,
        a: &mut Attributes,
        log: &ReviewLog,
        admitted: &mut Admitted,
        in_tree: &(dyn Fn(&mut Value) -> Result<(), ApiError> + Sync),
    ) -> Result<(), ApiError> {
        use std::collections::BTreeSet;
        // Indices into `self.webhooks` stand in for the webhook UIDs of the dispatcher.
        let mut previously_invoked: BTreeSet<usize> = BTreeSet::new();
        let mut reinvoke: BTreeSet<usize> = BTreeSet::new();
        let mut should_reinvoke = false;
        for round in 0..2 {
            if round == 1 && !should_reinvoke {
                break;
            }
            if round == 1 {
                let before = a.object.clone();
                in_tree(&mut a.object)?;
                if a.object != before {
                    reinvoke.append(&mut previously_invoked);
                }
            }
            for (i, w) in self.webhooks.iter().enumerate() {
                if w.kind != WebhookKind::Mutating || !Self::should_call(w, a)? {
                    continue;
                }
                if round == 1 && !reinvoke.contains(&i) {
                    continue;
                }
                if self.call_mutating(w, a, log, admitted).await? {
                    // RequireReinvokingPreviouslyInvokedPlugins + SetShouldReinvoke.
                    reinvoke.append(&mut previously_invoked);
                    should_reinvoke = true;
                }
                if w.reinvoke_if_needed {
                    previously_invoked.insert(i);
                }
            }
        }
        Ok(())
    }

    /// Calls one mutating webhook and applies its patch (`callAttrMutatingHook`): the
    /// patched JSON is decoded as the typed Pod (fields the type lacks are dropped, as the
    /// non-strict JSON decoder drops them; a value that does not decode is a 500
    /// InternalError, as is a patch that does not apply), compared with the object before
    /// (`changed`), then defaulted. Returns whether the object changed.
    async fn call_mutating(
        &self,
        w: &Webhook,
        a: &mut Attributes,
        log: &ReviewLog,
        admitted: &mut Admitted,
    ) -> Result<bool, ApiError> {
        let Some(resp) = self.call(w, a, log).await? else {
            return Ok(false);
        };
        Self::collect(&resp, &w.name, admitted);
        if resp.get("allowed").and_then(Value::as_bool) != Some(true) {
            return Err(denial(&w.name, resp.get("status")));
        }
        // verify_response has checked that a patch comes with patchType JSONPatch.
        let bytes = match patch_bytes(&resp) {
            Ok(b) if b.is_empty() => return Ok(false),
            Ok(b) => b,
            Err(why) => return Err(ApiError::internal(calling_error(&w.name, &why))),
        };
        let patch: json_patch::Patch = match serde_json::from_slice(&bytes) {
            Ok(p) => p,
            Err(e) => {
                // `received undecodable patch in webhook response`: a call failure.
                let msg = calling_error(
                    &w.name,
                    &format!("received undecodable patch in webhook response: {e}"),
                );
                if let Ok(mut l) = log.lock()
                    && let Some(rec) = l.iter_mut().rev().find(|r| r.webhook == w.name)
                {
                    rec.error = Some(msg.clone());
                }
                if w.fail_closed {
                    return Err(ApiError::internal(msg));
                }
                return Ok(false);
            }
        };
        if patch.0.is_empty() {
            return Ok(false);
        }
        let mut obj = a.object.clone();
        json_patch::patch(&mut obj, &patch).map_err(ApiError::internal)?;
        let typed: k8s_openapi::api::core::v1::Pod =
            serde_json::from_value(obj).map_err(ApiError::internal)?;
        let mut decoded = serde_json::to_value(&typed).map_err(ApiError::internal)?;
        let changed = decoded != a.object;
        crate::apiserver::defaults::apply_pod_defaults(&mut decoded);
        a.object = decoded;
        Ok(changed)
    }

    /// Runs the validating webhooks (sequentially, in order; the real server runs them in
    /// parallel and reports the first denial, which for a deterministic chain is the same).
    pub async fn validate(
        &self,
        a: &Attributes,
        log: &ReviewLog,
        admitted: &mut Admitted,
    ) -> Result<(), ApiError> {
        for w in self
            .webhooks
            .iter()
            .filter(|w| w.kind == WebhookKind::Validating)
        {
            if !Self::should_call(w, a)? {
                continue;
            }
            let Some(resp) = self.call(w, a, log).await? else {
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

/// The decoded `response.patch` (empty when absent). Invalid base64 fails the decoding of
/// the whole AdmissionReview in the real server, as Go's `[]byte` decoding words it.
fn patch_bytes(resp: &Value) -> Result<Vec<u8>, String> {
    match resp.get("patch") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| {
                    let at = match e {
                        base64::DecodeError::InvalidByte(at, _)
                        | base64::DecodeError::InvalidLastSymbol(at, _) => at,
                        base64::DecodeError::InvalidLength(at) => at,
                        base64::DecodeError::InvalidPadding => s.len(),
                    };
                    format!("failed to call webhook: illegal base64 data at input byte {at}")
                })
        }
        Some(other) => Err(format!(
            "failed to call webhook: json: cannot unmarshal {} into Go struct field AdmissionResponse.response.patch of type []uint8",
            crate::apiserver::patch::go_json_type(other)
        )),
    }
}

/// `webhookrequest.VerifyAdmissionResponse` for `admission.k8s.io/v1`: the response must be
/// there, carry the request's uid, come in an `admission.k8s.io/v1` `AdmissionReview`, and
/// a mutating webhook's `patch` and `patchType` (only `JSONPatch`) come together while a
/// validating webhook returns neither. Each failure is a webhook call failure (the reason
/// is returned), to which the webhook's failurePolicy applies. Returns `response`.
pub fn verify_response(uid: &str, mutating: bool, review: &Value) -> Result<Value, String> {
    let invalid = |why: String| format!("received invalid webhook response: {why}");
    let r = match review.get("response") {
        None | Some(Value::Null) => return Err(invalid("webhook response was absent".into())),
        Some(r) => r,
    };
    let got_uid = r.get("uid").and_then(Value::as_str).unwrap_or("");
    if got_uid != uid {
        return Err(invalid(format!(
            "expected response.uid={uid:?}, got {got_uid:?}"
        )));
    }
    let api_version = review
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = review.get("kind").and_then(Value::as_str).unwrap_or("");
    if (api_version, kind) != ("admission.k8s.io/v1", "AdmissionReview") {
        // schema.GroupVersionKind.String(): "group/version, Kind=kind".
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        return Err(invalid(format!(
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got {group}/{version}, Kind={kind}"
        )));
    }
    let patch = patch_bytes(r)?;
    let patch_type = match r.get("patchType") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(other) => {
            return Err(format!(
                "failed to call webhook: json: cannot unmarshal {} into Go struct field AdmissionResponse.response.patchType of type v1.PatchType",
                crate::apiserver::patch::go_json_type(other)
            ));
        }
    };
    if mutating {
        if !patch.is_empty() && patch_type.is_empty() {
            return Err(invalid(
                "webhook returned response.patch but not response.patchType".into(),
            ));
        }
        if patch.is_empty() && !patch_type.is_empty() {
            return Err(invalid(
                "webhook returned response.patchType but not response.patch".into(),
            ));
        }
        if !patch_type.is_empty() && patch_type != "JSONPatch" {
            return Err(invalid(format!(
                "webhook returned invalid response.patchType of {patch_type:?}"
            )));
        }
    } else {
        if !patch.is_empty() {
            return Err(invalid(
                "validating webhook may not return response.patch".into(),
            ));
        }
        if !patch_type.is_empty() {
            return Err(invalid(
                "validating webhook may not return response.patchType".into(),
            ));
        }
    }
    Ok(r.clone())
}

/// `utilerrors.NewAggregate(errs).Error()`: one error as is, several as `[a, b]`.
fn aggregate(errors: &[String]) -> String {
    match errors {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    }
}

/// The `request` variable of matchConditions (`cel.CreateAdmissionRequest`): the
/// AdmissionRequest the webhook would get, without uid, object and oldObject (those are
/// variables of their own).
fn request_variable(a: &Attributes) -> Value {
    let mut review = build_review("", a);
    let mut request = review["request"].take();
    if let Some(m) = request.as_object_mut() {
        m.remove("object");
        m.remove("oldObject");
    }
    request
}

/// Evaluates a webhook's `matchConditions` as `matchconditions.matcher.Match` does:
/// `Ok(true)` when every condition is true (or there are none), `Ok(false)` as soon as one
/// is false (even if others failed), `Err` with the evaluation errors otherwise. Variables:
/// `object`, `oldObject` (null on CREATE) and `request`; a condition using `authorizer` is
/// an evaluation error here (this server has no authorizer to offer).
pub fn match_conditions(
    conditions: &[config::MatchCondition],
    a: &Attributes,
) -> Result<bool, Vec<String>> {
    use kube_cel::KubeCelExt;
    use kube_cel::cel;
    if conditions.is_empty() {
        return Ok(true);
    }
    let resulted =
        |expr: &str, why: String| format!("expression '{expr}' resulted in error: {why}");
    let mut ctx = cel::Context::default().with_all();
    let variables = [
        ("object", a.object.clone()),
        ("oldObject", a.old_object.clone().unwrap_or(Value::Null)),
        ("request", request_variable(a)),
    ];
    for (name, value) in variables {
        match cel::to_value(&value) {
            Ok(v) => ctx.add_variable_from_value(name, v),
            Err(e) => return Err(vec![format!("converting {name} for CEL: {e}")]),
        }
    }
    let mut errors = Vec::new();
    for c in conditions {
        let program = match cel::Program::compile(&c.expression) {
            Ok(p) => p,
            Err(e) => {
                errors.push(resulted(&c.expression, e.to_string()));
                continue;
            }
        };
        if program.references().has_variable("authorizer") {
            errors.push(resulted(
                &c.expression,
                "the authorizer variable is not supported by the kspy-e2e API server".into(),
            ));
            continue;
        }
        match program.execute(&ctx) {
            Ok(cel::Value::Bool(false)) => return Ok(false),
            Ok(cel::Value::Bool(true)) => {}
            Ok(other) => errors.push(resulted(
                &c.expression,
                format!("expected a bool, got {other:?}"),
            )),
            Err(e) => errors.push(resulted(&c.expression, e.to_string())),
        }
    }
    if errors.is_empty() {
        Ok(true)
    } else {
        Err(errors)
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
            options: json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1"}),
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
