//! Reviews that would decode into more memory than kspy allows: refused or denied, with why,
//! never judged on a partial view.

mod common;

use common::*;
use kspy_admission::{Endpoint, ParsedReview, Verdict};
use serde_json::json;

const COPIES: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: copies}
spec:
  match: {actions: [copy]}
  grant: {images: ['**'], runAsRoot: true}
  defaults: {imagePullPolicy: IfNotPresent}
  validations:
    - expression: "!has(object.spec.hostAliases)"
      message: no host aliases
"#;

fn copy_with(edit: impl Fn(&mut serde_json::Value)) -> serde_json::Value {
    let mut p = pod("team");
    p["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
    p["spec"]["containers"] = json!([{"name": "debugger", "image": "busybox:1.36"}]);
    edit(&mut p);
    create("team", "alice", &["dev"], p)
}

#[test]
fn typed_lists_past_the_budget_are_refused() {
    let r = copy_with(|p| {
        p["spec"]["volumes"] = (0..20_000)
            .map(|i| json!({"name": format!("v{i}")}))
            .collect();
    });
    let e = ParsedReview::from_slice(r.to_string().as_bytes()).unwrap_err();
    assert!(
        e.to_string()
            .contains("spec.volumes: its lists and maps would take more than 4 MiB once decoded"),
        "{e}"
    );
}

#[test]
fn a_raw_view_past_its_budget_denies_at_both_endpoints() {
    // Nothing typed holds it (an unknown field), but /mutate reads the raw object for its
    // defaults and the policy's validation reads it too: that view does not fit, so neither
    // endpoint may answer as if it were empty (`has(...)` of a null object holds).
    let r = copy_with(|p| p["spec"]["x-unknown"] = json!(vec![1; 400_000]));
    let e = engine(COPIES);
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        let j = judge(&e, &r, endpoint, None);
        assert_eq!(j.verdict, Verdict::Denied, "{endpoint:?}");
        let m = &j.response.result.message;
        assert!(
            m.contains("kspy cannot judge this request: request.object:")
                && m.contains("more than 8 MiB once decoded"),
            "{endpoint:?}: {m}"
        );
    }
}
