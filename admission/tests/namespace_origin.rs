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

/// A grant that selects namespaces by label, with the Namespace unknown.
const TEAM_GRANT: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: team-attach}
spec:
  match:
    actions: [attach]
    groups: [dev]
    namespaceSelector: {matchExpressions: [{key: team, operator: Exists}]}
  grant: {images: [busybox:1.36*], runAsRoot: true}
"#;

/// Why the API server did not give the Namespace decides what to do: a denial for want of
/// its labels (a guardrail's, and one that no policy allows because the grant selects by
/// label) says which, and the fix for it: "could not be read" sent a missing Namespace and an
/// API server that did not answer alike to RBAC.
#[test]
fn an_unread_namespace_says_why_and_what_to_do() {
    use kspy_admission::{Endpoint, NamespaceMiss};
    let review = kspy_admission::ParsedReview::from_value(dana_attaches_in_shop()).unwrap();
    let cases = [
        (
            NamespaceMiss::NotFound,
            "(the API server answered 404 Not Found: no Namespace of this name exists)",
            "(check the namespace name; a Namespace created a moment ago is seen once the \
             webhook's cached lookup expires (--namespace-cache-ttl))",
        ),
        (
            NamespaceMiss::Forbidden {
                user: Some("system:serviceaccount:kspy-system:kspy-webhook".into()),
            },
            "(the API server answered 403 Forbidden: the webhook's ServiceAccount \
             (system:serviceaccount:kspy-system:kspy-webhook) may not get namespaces)",
            "(grant the webhook's ServiceAccount (system:serviceaccount:kspy-system:kspy-webhook) \
             RBAC verb `get` on resource `namespaces` (API group \"\")",
        ),
        (
            NamespaceMiss::TimedOut {
                after: std::time::Duration::from_millis(500),
            },
            "(the API server did not answer the Namespace lookup within 500 ms, its share of the \
             review deadline)",
            "(kspy fails closed when it cannot read a Namespace in time; retry",
        ),
        (
            NamespaceMiss::Unreachable,
            "(the webhook could not reach the API server to read the Namespace)",
            "(kspy fails closed when it cannot read a Namespace; check the network",
        ),
        (
            NamespaceMiss::Refused { code: 500 },
            "(the API server answered the Namespace lookup with HTTP 500)",
            "the webhook's log has the API server's message",
        ),
        (
            NamespaceMiss::NotAName,
            "(no Namespace can have this name (not a DNS-1123 label), so it was not looked up)",
            "(check the namespace the request names)",
        ),
    ];
    for policies in [POLICIES, TEAM_GRANT] {
        let e = engine_with(policies, Settings::default());
        for (miss, why, fix) in &cases {
            let j = e.judge_namespace_unread(&review, Endpoint::Validate, miss);
            assert!(!j.response.allowed, "{miss:?}");
            let m = &j.response.result.message;
            assert!(m.contains(why), "{miss:?}: {m}");
            assert!(m.contains(fix), "{miss:?}: {m}");
            assert!(!m.contains("could not be read"), "{miss:?}: {m}");
            if !matches!(miss, NamespaceMiss::Forbidden { .. }) {
                assert!(!m.contains("RBAC"), "{miss:?}: {m}");
            }
        }
    }
    // The grant that did not apply is named, with why.
    let e = engine_with(TEAM_GRANT, Settings::default());
    let j = e.judge_namespace_unread(&review, Endpoint::Validate, &NamespaceMiss::NotFound);
    assert!(
        j.response.result.message.contains(
            "; policy team-attach depends on the labels of namespace \"shop\" (a \
             namespaceSelector, or CEL reading namespaceObject), which are unknown (the API \
             server answered 404 Not Found"
        ),
        "{}",
        j.response.result.message
    );
    // Not looked up at all (`--namespace-lookup none`): said as before, whatever the miss.
    let e = engine_with(
        TEAM_GRANT,
        Settings {
            namespaces: NamespaceOrigin::NotLookedUp,
            ..Settings::default()
        },
    );
    let m = validate(&e, &dana_attaches_in_shop())
        .response
        .result
        .message;
    assert!(
        m.contains("(the webhook does not look Namespaces up), so it does not apply"),
        "{m}"
    );
}
