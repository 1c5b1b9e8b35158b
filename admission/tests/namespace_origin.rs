//! A guardrail that selects namespaces by label, in a namespace whose labels are unknown: the
//! denial says why they are unknown from where the Namespaces come from.

mod common;

use common::*;
use kspy_admission::{NamespaceOrigin, Settings};

const POLICIES: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: images}
spec:
  match: {actions: [attach], groups: [dev]}
  grant: {images: [busybox:1.36*], runAsRoot: true}
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: production-reason}
spec:
  match:
    namespaceSelector:
      matchLabels: {env: production}
  validations:
    - expression: "has(container.env)"
      message: a reason is needed in production
"#;

/// Dana (group dev) attaches a busybox debug container in namespace shop.
fn dana_attaches_in_shop() -> serde_json::Value {
    attach(
        "shop",
        "dana",
        &["dev"],
        vec![],
        vec![debugger("d", "busybox:1.36")],
    )
}

fn message(namespaces: NamespaceOrigin) -> String {
    let settings = Settings {
        namespaces,
        ..Settings::default()
    };
    let review = dana_attaches_in_shop();
    let j = validate(&engine_with(POLICIES, settings), &review);
    assert!(!j.response.allowed);
    j.response.result.message
}

#[test]
fn the_webhook_reading_namespaces_points_at_rbac() {
    let m = message(NamespaceOrigin::Api);
    assert!(
        m.contains(
            "the labels of namespace \"shop\" are unknown (the Namespace could not be read)"
        ),
        "{m}"
    );
    assert!(
        m.contains("the webhook needs RBAC `get` on namespaces"),
        "{m}"
    );
}

#[test]
fn a_webhook_without_lookup_says_so() {
    let m = message(NamespaceOrigin::NotLookedUp);
    assert!(
        m.contains("(the webhook does not look Namespaces up)"),
        "{m}"
    );
    assert!(m.contains("--namespace-lookup api"), "{m}");
}

#[test]
fn declared_namespaces_point_at_the_suites_not_the_webhook() {
    let m = message(NamespaceOrigin::Declared {
        under: "policies/".into(),
    });
    assert!(
        m.contains(
            "(the namespace is not declared in any DebugPolicyTest spec.namespaces under \
             policies/)"
        ),
        "{m}"
    );
    assert!(!m.contains("webhook"), "{m}");
    assert!(!m.contains("RBAC"), "{m}");
}

/// A Warn or Audit policy selecting namespaces by label, with the Namespace unknown, cannot
/// deny, but it does not pass in silence either: during an audit roll-out "no warning" would
/// read as "nothing to warn about". It says its validations were not checked; the request is
/// judged by the Enforce policies alone (allowed here, as with the Namespace known).
#[test]
fn warn_and_audit_policies_say_they_were_not_checked() {
    let policies = POLICIES.replace(
        "metadata: {name: production-reason}\nspec:\n",
        "metadata: {name: production-reason}\nspec:\n  mode: Warn\n",
    ) + r#"---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: audit-team}
spec:
  mode: Audit
  validations:
    - expression: "has(namespaceObject.metadata.labels) && 'team' in namespaceObject.metadata.labels"
      message: debugging outside a team namespace
"#;
    let e = engine_with(&policies, Settings::default());
    let review = dana_attaches_in_shop();
    let j = validate(&e, &review);
    assert!(j.response.allowed, "{}", j.response.result.message);
    let warnings = j.response.warnings.clone().unwrap_or_default();
    assert!(
        warnings.iter().any(|w| w.starts_with(
            "policy production-reason applies in namespaces labelled env=production and the \
             labels of namespace \"shop\" are unknown (the Namespace could not be read), so its \
             validations were not checked"
        )),
        "{warnings:?}"
    );
    let audit = &j.response.audit_annotations;
    assert_eq!(
        audit.get("audit-audit-team").map(String::as_str),
        Some(
            "not checked: it reads namespaceObject (the Namespace and its labels) in its CEL and \
             the labels of namespace \"shop\" are unknown (the Namespace could not be read)"
        ),
        "{audit:?}"
    );
    // With the Namespace known, each is checked as usual and neither says so.
    let ns = namespace("shop", &[("env", "production")]);
    let j = judge(&e, &review, kspy_admission::Endpoint::Validate, Some(&ns));
    assert!(j.response.allowed, "{}", j.response.result.message);
    let warnings = j.response.warnings.clone().unwrap_or_default();
    assert_eq!(
        warnings,
        ["policy production-reason: a reason is needed in production"]
    );
    assert_eq!(
        j.response.audit_annotations["audit-audit-team"],
        "debugging outside a team namespace"
    );
}
