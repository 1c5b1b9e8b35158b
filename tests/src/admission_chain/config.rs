//! Webhook entries, built from `admissionregistration.k8s.io/v1` Mutating/Validating
//! WebhookConfigurations (typed, or picked out of rendered YAML manifests).
//!
//! Honoured: `rules` (operations, apiGroups, apiVersions, resources incl. `x/*`, `*/y`,
//! scope), `clientConfig.url` / `service.path` + `caBundle`, `failurePolicy`,
//! `timeoutSeconds` (default 10), `sideEffects` (dry-run gating), `namespaceSelector`,
//! `objectSelector`, `matchConditions` (CEL, compiled here — a configuration whose
//! expression does not compile is refused, as the API server refuses to store it — and
//! evaluated per call in [`super::match_conditions`]), configuration order (by configuration
//! name, as the API server sorts).
//! `reinvocationPolicy` (carried into [`Webhook::reinvoke_if_needed`], acted on by
//! [`super::AdmissionChain::mutate`]).
//! Not honoured: `matchPolicy` (only core/v1 is served, so Exact and Equivalent agree).

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations, ValidatingWebhook,
    ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;

use crate::apiserver::status::{ApiError, FieldError};

/// Where webhooks of rendered manifests should be called instead of their in-cluster Service.
#[derive(Debug, Clone)]
pub struct WebhookTarget {
    /// Base URL, e.g. `https://127.0.0.1:8443`; each webhook's `service.path` is appended.
    pub base_url: String,
    /// PEM of the CA that signed the webhook's serving certificate (becomes `caBundle`).
    pub ca_pem: String,
}

/// Errors while building the chain from configurations or manifests.
#[derive(Debug, thiserror::Error)]
pub enum ChainConfigError {
    /// The YAML did not parse.
    #[error("manifests do not parse as YAML: {0}")]
    Yaml(String),
    /// A webhook configuration did not decode.
    #[error("{kind} {name:?} does not decode: {source}")]
    Decode {
        /// Kind of the document.
        kind: String,
        /// metadata.name
        name: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A `matchConditions` expression does not compile (the API server refuses such a
    /// configuration: `webhooks[i].matchConditions[j].expression: Invalid value`).
    #[error(
        "webhook {webhook:?}: matchConditions[{index}] ({name:?}): compilation failed: {error}"
    )]
    MatchCondition {
        /// `webhooks[].name`.
        webhook: String,
        /// Position in `matchConditions`.
        index: usize,
        /// `matchConditions[].name`.
        name: String,
        /// The parser's message.
        error: String,
    },
    /// The API server would refuse to store the configuration
    /// (`ValidateMutatingWebhookConfiguration` / `ValidateValidatingWebhookConfiguration`);
    /// the message is its 422: `MutatingWebhookConfiguration.admissionregistration.k8s.io
    /// "x" is invalid: webhooks[0].timeoutSeconds: Invalid value: 31: …`.
    #[error("{0}")]
    Invalid(String),
    /// A webhook points at a Service and no target URL was given.
    #[error("webhook {0:?} uses a service reference; give a WebhookTarget to call it on loopback")]
    NoUrl(String),
}

/// Whether a webhook mutates or validates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookKind {
    /// MutatingWebhookConfiguration entry.
    Mutating,
    /// ValidatingWebhookConfiguration entry.
    Validating,
}

/// One webhook as the chain calls it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Name of the configuration holding it.
    pub configuration: String,
    /// `webhooks[].name` (appears in denial messages).
    pub name: String,
    /// Mutating or validating.
    pub kind: WebhookKind,
    /// Rules.
    pub rules: Vec<RuleWithOperations>,
    /// URL called (`?timeout=Ns` is appended on each call).
    pub url: String,
    /// PEM bundle trusted for the call; `None` trusts nothing.
    pub ca_bundle: Option<Vec<u8>>,
    /// `failurePolicy: Fail` (default) or `Ignore`.
    pub fail_closed: bool,
    /// `timeoutSeconds`.
    pub timeout: Duration,
    /// `sideEffects`.
    pub side_effects: String,
    /// `namespaceSelector`.
    pub namespace_selector: Option<LabelSelector>,
    /// `objectSelector`.
    pub object_selector: Option<LabelSelector>,
    /// `matchConditions`, in order (each compiled once when the chain was built).
    pub match_conditions: Vec<MatchCondition>,
    /// `reinvocationPolicy: IfNeeded` (mutating webhooks only; `Never` is the default).
    pub reinvoke_if_needed: bool,
}

/// One `matchConditions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchCondition {
    /// `name`.
    pub name: String,
    /// `expression` (CEL; must evaluate to a bool).
    pub expression: String,
}

fn match_conditions_of(
    webhook: &str,
    conditions: Option<&Vec<k8s_openapi::api::admissionregistration::v1::MatchCondition>>,
) -> Result<Vec<MatchCondition>, ChainConfigError> {
    conditions
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(index, c)| {
            kube_cel::cel::Program::compile(&c.expression).map_err(|e| {
                ChainConfigError::MatchCondition {
                    webhook: webhook.to_string(),
                    index,
                    name: c.name.clone(),
                    error: e.to_string(),
                }
            })?;
            Ok(MatchCondition {
                name: c.name.clone(),
                expression: c.expression.clone(),
            })
        })
        .collect()
}

/// Whether a request matches: operation, resource (`pods`), subresource, namespaced scope.
pub fn rule_matches(
    rules: &[RuleWithOperations],
    operation: &str,
    resource: &str,
    subresource: &str,
) -> bool {
    rules.iter().any(|r| {
        let any = |v: &Option<Vec<String>>, want: &str| {
            v.as_ref()
                .is_some_and(|v| v.iter().any(|x| x == "*" || x == want))
        };
        let res_ok = r.resources.as_ref().is_some_and(|rs| {
            rs.iter().any(|spec| {
                let (res, sub) = spec.split_once('/').unwrap_or((spec.as_str(), ""));
                (res == "*" || res == resource) && (sub == "*" || sub == subresource)
            })
        });
        let scope_ok = matches!(r.scope.as_deref(), None | Some("*") | Some("Namespaced"));
        any(&r.operations, operation)
            && any(&r.api_groups, "")
            && any(&r.api_versions, "v1")
            && res_ok
            && scope_ok
    })
}

/// Whether a LabelSelector is empty (`None`, or neither matchLabels nor matchExpressions):
/// `labels.Everything()`, which the API server treats as matching without looking at objects.
pub fn selector_is_empty(sel: Option<&LabelSelector>) -> bool {
    sel.is_none_or(|s| {
        s.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && s.match_expressions.as_ref().is_none_or(|e| e.is_empty())
    })
}

/// `objectSelector` as `predicates/object.Matcher.MatchObjectSelector` applies it: an empty
/// selector matches; otherwise the webhook is called when the object OR the old object
/// matches, and a missing object (`oldObject` on CREATE) matches nothing — it is not an
/// empty label set, which `NotIn` / `DoesNotExist` would select.
pub fn object_selector_matches(
    sel: Option<&LabelSelector>,
    object: Option<&Value>,
    old_object: Option<&Value>,
) -> bool {
    if selector_is_empty(sel) {
        return true;
    }
    let matches = |obj: Option<&Value>| {
        obj.filter(|o| o.is_object()).is_some_and(|o| {
            let labels: BTreeMap<String, String> = o
                .pointer("/metadata/labels")
                .and_then(|l| serde_json::from_value(l.clone()).ok())
                .unwrap_or_default();
            selector_matches(sel, &labels)
        })
    };
    matches(object) || matches(old_object)
}

/// Whether `labels` satisfy a metav1 LabelSelector (`None` or empty selects everything).
pub fn selector_matches(sel: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = sel else { return true };
    let labels_ok = sel
        .match_labels
        .as_ref()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)));
    let exprs_ok = sel.match_expressions.as_ref().is_none_or(|es| {
        es.iter().all(|e| {
            let vals = e.values.clone().unwrap_or_default();
            match e.operator.as_str() {
                "In" => labels.get(&e.key).is_some_and(|v| vals.contains(v)),
                "NotIn" => labels.get(&e.key).is_none_or(|v| !vals.contains(v)),
                "Exists" => labels.contains_key(&e.key),
                "DoesNotExist" => !labels.contains_key(&e.key),
                _ => false,
            }
        })
    });
    labels_ok && exprs_ok
}

fn resolve_client(
    hook: &str,
    cc: &WebhookClientConfig,
    target: Option<&WebhookTarget>,
) -> Result<(String, Option<Vec<u8>>), ChainConfigError> {
    match target {
        Some(t) => {
            let path = cc
                .service
                .as_ref()
                .and_then(|s| s.path.clone())
                .or_else(|| {
                    cc.url
                        .as_ref()
                        .and_then(|u| u.parse::<hyper::Uri>().ok())
                        .map(|u| u.path().to_string())
                })
                .unwrap_or_else(|| "/".into());
            Ok((
                format!("{}{}", t.base_url.trim_end_matches('/'), path),
                Some(t.ca_pem.as_bytes().to_vec()),
            ))
        }
        None => {
            let url = cc
                .url
                .clone()
                .ok_or_else(|| ChainConfigError::NoUrl(hook.to_string()))?;
            Ok((url, cc.ca_bundle.as_ref().map(|b| b.0.clone())))
        }
    }
}

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// `validation.IsDNS1123Subdomain`: the messages for `s` (empty when valid).
fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let label_ok = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    if !s.split('.').all(label_ok) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// `validation.IsQualifiedName` (`[prefix/]name`): the messages for `s`.
fn qualified_name_errors(s: &str) -> Vec<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if p.is_empty() {
            errs.push("prefix part must be non-empty".to_string());
        } else {
            errs.extend(
                dns1123_subdomain_errors(p)
                    .into_iter()
                    .map(|e| format!("prefix part {e}")),
            );
        }
    }
    let b = name.as_bytes();
    if b.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else {
        if b.len() > 63 {
            errs.push("name part must be no more than 63 characters".to_string());
        }
        let ok = b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'));
        if !ok {
            errs.push(QUALIFIED_NAME_MSG.to_string());
        }
    }
    errs
}

/// What `admissionregistration/validation` checks of one webhook of a v1 configuration,
/// after the v1 defaults (failurePolicy Fail, matchPolicy Equivalent, timeoutSeconds 10,
/// reinvocationPolicy Never) — fields the API server requires without a default
/// (`sideEffects`, `admissionReviewVersions`) are checked as sent.
struct WebhookFields<'a> {
    path: String,
    name: &'a str,
    side_effects: &'a str,
    admission_review_versions: &'a [String],
    timeout_seconds: Option<i32>,
    failure_policy: Option<&'a str>,
    match_policy: Option<&'a str>,
    /// `None` for a validating webhook, which has no such field.
    reinvocation_policy: Option<Option<&'a str>>,
    client_config: &'a WebhookClientConfig,
    match_conditions: &'a [k8s_openapi::api::admissionregistration::v1::MatchCondition],
}

fn webhook_errors(w: &WebhookFields<'_>) -> Vec<FieldError> {
    let p = &w.path;
    let mut errs = Vec::new();
    // validation.IsFullyQualifiedName
    if w.name.is_empty() {
        errs.push(FieldError::required(format!("{p}.name"), ""));
    } else {
        let dns = dns1123_subdomain_errors(w.name);
        if !dns.is_empty() {
            errs.push(FieldError::invalid(
                format!("{p}.name"),
                w.name,
                dns.join(","),
            ));
        } else if w.name.split('.').count() < 3 {
            errs.push(FieldError::invalid(
                format!("{p}.name"),
                w.name,
                "should be a domain with at least three segments separated by dots",
            ));
        }
    }
    if let Some(fp) = w.failure_policy
        && !matches!(fp, "Fail" | "Ignore")
    {
        errs.push(FieldError::not_supported(
            format!("{p}.failurePolicy"),
            fp,
            &["Fail", "Ignore"],
        ));
    }
    if let Some(mp) = w.match_policy
        && !matches!(mp, "Equivalent" | "Exact")
    {
        errs.push(FieldError::not_supported(
            format!("{p}.matchPolicy"),
            mp,
            &["Equivalent", "Exact"],
        ));
    }
    if w.side_effects.is_empty() {
        errs.push(FieldError::required(
            format!("{p}.sideEffects"),
            "must specify one of None, NoneOnDryRun",
        ));
    } else if !matches!(w.side_effects, "None" | "NoneOnDryRun") {
        errs.push(FieldError::not_supported(
            format!("{p}.sideEffects"),
            w.side_effects,
            &["None", "NoneOnDryRun"],
        ));
    }
    if let Some(t) = w.timeout_seconds
        && !(1..=30).contains(&t)
    {
        errs.push(FieldError::invalid_unquoted(
            format!("{p}.timeoutSeconds"),
            t.to_string(),
            "the timeout value must be between 1 and 30 seconds",
        ));
    }
    if let Some(Some(rp)) = w.reinvocation_policy
        && !matches!(rp, "IfNeeded" | "Never")
    {
        errs.push(FieldError::not_supported(
            format!("{p}.reinvocationPolicy"),
            rp,
            &["IfNeeded", "Never"],
        ));
    }
    if w.client_config.url.is_some() == w.client_config.service.is_some() {
        errs.push(FieldError::required(
            format!("{p}.clientConfig"),
            "exactly one of url or service is required",
        ));
    }
    // validateAdmissionReviewVersions (v1 requires a recognized version).
    let versions = w.admission_review_versions;
    let vp = format!("{p}.admissionReviewVersions");
    if versions.is_empty() {
        errs.push(FieldError::required(&vp, "must specify one of v1, v1beta1"));
    } else {
        let mut seen = std::collections::BTreeSet::new();
        for (i, v) in versions.iter().enumerate() {
            if !seen.insert(v.as_str()) {
                errs.push(FieldError::invalid(
                    format!("{vp}[{i}]"),
                    v,
                    "duplicate version",
                ));
                continue;
            }
            let b = v.as_bytes();
            let dns1035 = !b.is_empty()
                && b.len() <= 63
                && b[0].is_ascii_lowercase()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
            if !dns1035 {
                errs.push(FieldError::invalid(
                    format!("{vp}[{i}]"),
                    v,
                    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
                ));
            }
        }
        if !versions.iter().any(|v| v == "v1" || v == "v1beta1") {
            errs.push(FieldError::invalid_unquoted(
                &vp,
                format!(
                    "[]string{{{}}}",
                    versions
                        .iter()
                        .map(|v| format!("{v:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "must include at least one of v1, v1beta1",
            ));
        }
    }
    // validateMatchConditions: names required, qualified and unique; expressions required.
    let mut names = std::collections::BTreeSet::new();
    for (i, c) in w.match_conditions.iter().enumerate() {
        let cp = format!("{p}.matchConditions[{i}]");
        if c.name.is_empty() {
            errs.push(FieldError::required(format!("{cp}.name"), ""));
        } else {
            for e in qualified_name_errors(&c.name) {
                errs.push(FieldError::invalid(format!("{cp}.name"), &c.name, e));
            }
            if !names.insert(c.name.as_str()) {
                errs.push(FieldError::duplicate(format!("{cp}.name"), &c.name));
            }
        }
        if c.expression.trim().is_empty() {
            errs.push(FieldError::required(format!("{cp}.expression"), ""));
        }
    }
    if w.match_conditions.len() > 64 {
        errs.push(FieldError::invalid_unquoted(
            format!("{p}.matchConditions"),
            w.match_conditions.len().to_string(),
            "must have at most 64 items",
        ));
    }
    errs
}

/// Appends the webhooks of `configs` (sorted by configuration name) as `kind`. The mutating
/// and validating types are distinct in k8s-openapi but share these fields, so one body reads
/// both and the failure-policy and timeout rules cannot drift apart.
macro_rules! push_webhooks {
    ($out:ident, $configs:expr, $kind:expr, $kind_name:expr, $target:expr, $reinvocation:expr) => {{
        let mut configs: Vec<_> = $configs.iter().collect();
        configs.sort_by_key(|c| c.metadata.name.clone());
        for cfg in configs {
            let cfg_name = cfg.metadata.name.clone().unwrap_or_default();
            let mut errs = Vec::new();
            let mut hook_names = std::collections::BTreeSet::new();
            for (i, w) in cfg.webhooks.iter().flatten().enumerate() {
                errs.extend(webhook_errors(&WebhookFields {
                    path: format!("webhooks[{i}]"),
                    name: &w.name,
                    side_effects: &w.side_effects,
                    admission_review_versions: &w.admission_review_versions,
                    timeout_seconds: w.timeout_seconds,
                    failure_policy: w.failure_policy.as_deref(),
                    match_policy: w.match_policy.as_deref(),
                    reinvocation_policy: $reinvocation(w),
                    client_config: &w.client_config,
                    match_conditions: w.match_conditions.as_deref().unwrap_or_default(),
                }));
                if !w.name.is_empty() && !hook_names.insert(w.name.clone()) {
                    errs.push(FieldError::duplicate(
                        format!("webhooks[{i}].name"),
                        &w.name,
                    ));
                }
            }
            if !errs.is_empty() {
                return Err(ChainConfigError::Invalid(
                    ApiError::invalid_in_group(
                        $kind_name,
                        "admissionregistration.k8s.io",
                        &cfg_name,
                        &errs,
                    )
                    .message,
                ));
            }
            for w in cfg.webhooks.iter().flatten() {
                let (url, ca_bundle) = resolve_client(&w.name, &w.client_config, $target)?;
                let match_conditions = match_conditions_of(&w.name, w.match_conditions.as_ref())?;
                $out.push(Webhook {
                    configuration: cfg.metadata.name.clone().unwrap_or_default(),
                    name: w.name.clone(),
                    kind: $kind,
                    rules: w.rules.clone().unwrap_or_default(),
                    url,
                    ca_bundle,
                    fail_closed: w.failure_policy.as_deref() != Some("Ignore"),
                    // Validated above to be 1–30.
                    timeout: Duration::from_secs(
                        w.timeout_seconds.unwrap_or(10).unsigned_abs() as u64
                    ),
                    side_effects: w.side_effects.clone(),
                    namespace_selector: w.namespace_selector.clone(),
                    object_selector: w.object_selector.clone(),
                    match_conditions,
                    reinvoke_if_needed: $reinvocation(w) == Some(Some("IfNeeded")),
                });
            }
        }
    }};
}

/// A mutating webhook's `reinvocationPolicy` (`Some(None)` when unset).
fn mutating_reinvocation(w: &MutatingWebhook) -> Option<Option<&str>> {
    Some(w.reinvocation_policy.as_deref())
}

/// A validating webhook has no `reinvocationPolicy`.
fn no_reinvocation(_: &ValidatingWebhook) -> Option<Option<&str>> {
    None
}

/// Flattens configurations into webhook entries in the API server's calling order.
pub fn webhooks_from(
    mutating: &[MutatingWebhookConfiguration],
    validating: &[ValidatingWebhookConfiguration],
    target: Option<&WebhookTarget>,
) -> Result<Vec<Webhook>, ChainConfigError> {
    let mut out = Vec::new();
    push_webhooks!(
        out,
        mutating,
        WebhookKind::Mutating,
        "MutatingWebhookConfiguration",
        target,
        mutating_reinvocation
    );
    push_webhooks!(
        out,
        validating,
        WebhookKind::Validating,
        "ValidatingWebhookConfiguration",
        target,
        no_reinvocation
    );
    Ok(out)
}

/// Picks the webhook configurations out of rendered multi-document YAML (as `kubectl
/// kustomize` prints it; `kind: List` documents are flattened).
pub fn configurations_from_yaml(
    yaml: &str,
) -> Result<
    (
        Vec<MutatingWebhookConfiguration>,
        Vec<ValidatingWebhookConfiguration>,
    ),
    ChainConfigError,
> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| ChainConfigError::Yaml(e.to_string()))?;
    let mut flat = Vec::new();
    for d in docs {
        match d.get("kind").and_then(Value::as_str) {
            Some("List") => flat.extend(
                d.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            ),
            _ => flat.push(d),
        }
    }
    let mut mutating = Vec::new();
    let mut validating = Vec::new();
    for d in flat {
        let kind = d
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = d
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let decode_err = |source| ChainConfigError::Decode {
            kind: kind.clone(),
            name: name.clone(),
            source,
        };
        match kind.as_str() {
            "MutatingWebhookConfiguration" => {
                mutating.push(serde_json::from_value(d).map_err(decode_err)?)
            }
            "ValidatingWebhookConfiguration" => {
                validating.push(serde_json::from_value(d).map_err(decode_err)?)
            }
            _ => {}
        }
    }
    Ok((mutating, validating))
}

/// Base64 of a PEM bundle, as `caBundle` carries it in YAML.
pub fn ca_bundle_base64(pem: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: kspy-system}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: kspy}
webhooks:
- name: validate.kspy.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
  clientConfig:
    service: {name: kspy-webhook, namespace: kspy-system, path: /validate}
  namespaceSelector:
    matchExpressions:
    - {key: kubernetes.io/metadata.name, operator: NotIn, values: [kube-system]}
  matchConditions:
  - {name: x, expression: "true"}
  rules:
  - operations: [UPDATE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [pods/ephemeralcontainers]
---
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {name: kspy}
webhooks:
- name: mutate.kspy.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig:
    service: {name: kspy-webhook, namespace: kspy-system, path: /mutate}
  rules:
  - operations: [CREATE]
    apiGroups: [""]
    apiVersions: [v1]
    resources: [pods]
"#;

    #[test]
    fn manifests_with_target_override() {
        let (m, v) = configurations_from_yaml(YAML).unwrap();
        assert_eq!((m.len(), v.len()), (1, 1));
        assert!(matches!(
            webhooks_from(&m, &v, None),
            Err(ChainConfigError::NoUrl(_))
        ));
        let t = WebhookTarget {
            base_url: "https://127.0.0.1:9/".into(),
            ca_pem: "PEM".into(),
        };
        let hooks = webhooks_from(&m, &v, Some(&t)).unwrap();
        assert_eq!(hooks[0].name, "mutate.kspy.dev");
        assert_eq!(hooks[0].url, "https://127.0.0.1:9/mutate");
        assert_eq!(hooks[1].url, "https://127.0.0.1:9/validate");
        assert_eq!(hooks[1].timeout, Duration::from_secs(5));
        assert_eq!(
            hooks[1].match_conditions,
            [MatchCondition {
                name: "x".into(),
                expression: "true".into()
            }]
        );
        assert!(rule_matches(
            &hooks[1].rules,
            "UPDATE",
            "pods",
            "ephemeralcontainers"
        ));
        assert!(!rule_matches(&hooks[1].rules, "UPDATE", "pods", ""));
        assert!(rule_matches(&hooks[0].rules, "CREATE", "pods", ""));
        let sys: BTreeMap<String, String> =
            [("kubernetes.io/metadata.name".into(), "kube-system".into())].into();
        assert!(!selector_matches(
            hooks[1].namespace_selector.as_ref(),
            &sys
        ));
        assert!(selector_matches(
            hooks[1].namespace_selector.as_ref(),
            &BTreeMap::new()
        ));
    }
}
