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

fn message(namespaces: NamespaceOrigin) -> String {
    let settings = Settings {
        namespaces,
        ..Settings::default()
    };
    let review = attach(
        "shop",
        "dana",
        &["dev"],
        vec![],
        vec![debugger("d", "busybox:1.36")],
    );
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
