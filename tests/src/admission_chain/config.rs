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

/// Appends the webhooks of `configs` (sorted by configuration name) as `kind`. The mutating
/// and validating types are distinct in k8s-openapi but share these fields, so one body reads
/// both and the failure-policy and timeout rules cannot drift apart.
macro_rules! push_webhooks {
    ($out:ident, $configs:expr, $kind:expr, $target:expr, $reinvocation:expr) => {{
        let mut configs: Vec<_> = $configs.iter().collect();
        configs.sort_by_key(|c| c.metadata.name.clone());
        for cfg in configs {
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
                    timeout: Duration::from_secs(
                        w.timeout_seconds.unwrap_or(10).clamp(1, 30) as u64
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
        target,
        mutating_reinvocation
    );
    push_webhooks!(
        out,
        validating,
        WebhookKind::Validating,
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
