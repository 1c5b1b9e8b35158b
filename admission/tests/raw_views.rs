//! The raw view of an object (what CEL's `object` and `oldObject` read) must parse whenever an
//! answer depends on it. The typed decoding skips the parts nothing judges less strictly than
//! a full parse (a number out of range, a lone surrogate, nesting past serde_json's limit), so
//! such a body decodes but has no raw view; CEL would see `null` for the object and a
//! guardrail such as `!has(object.spec.hostAliases)` would hold. Such a review is denied.

mod common;

use common::*;
use kspy_admission::{Endpoint, ParsedReview, Settings, Verdict};
use serde_json::json;

const GUARDRAIL: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: copies}
spec:
  match: {actions: [copy]}
  grant: {images: ['**'], runAsRoot: true}
  validations:
    - expression: "!has(object.spec.hostAliases)"
      message: no hostAliases in copies
"#;

/// A debug copy with hostAliases whose `status` holds `bad` (raw JSON text).
fn copy_with_status(bad: &str) -> Vec<u8> {
    let pod = json!({
        "metadata": {"name": "web-copy", "labels": {"kspy.dev/debug": "copy"}},
        "spec": {
            "containers": [{"name": "debugger", "image": "busybox:1.36"}],
            "hostAliases": [{"ip": "10.0.0.1", "hostnames": ["evil"]}]
        },
        "status": {"x": "BAD"}
    });
    let text = create("ns", "alice", &[], pod).to_string();
    text.replace("\"BAD\"", bad).into_bytes()
}

#[test]
fn an_object_cel_cannot_read_is_denied_not_read_as_null() {
    let engine = engine(GUARDRAIL);
    // The same body with a well-formed status is denied by the guardrail.
    let fine = ParsedReview::from_slice(&copy_with_status("1")).expect("decodes");
    let j = engine.judge(&fine, Endpoint::Validate, None);
    assert_eq!(j.verdict, Verdict::Denied);
    assert!(
        j.response
            .result
            .message
            .contains("no hostAliases in copies")
    );
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for bad in ["1e400", r#""\udc00""#, deep.as_str()] {
        let body = copy_with_status(bad);
        let Ok(review) = ParsedReview::from_slice(&body) else {
            continue; // refused outright: fine too
        };
        for endpoint in [Endpoint::Validate, Endpoint::Mutate] {
            let j = engine.judge(&review, endpoint, None);
            assert_eq!(j.verdict, Verdict::Denied, "{bad:.20} {endpoint:?}");
            assert!(
                j.response
                    .result
                    .message
                    .contains("kspy cannot judge this request: request.object: "),
                "{}",
                j.response.result.message
            );
        }
    }
}

/// A copy classifier reads `object` too: a review it cannot read is not waved through as
/// "not a debug request".
#[test]
fn a_classifier_that_cannot_read_the_object_denies() {
    let settings = Settings {
        copy_classifier: Some(
            "has(object.metadata.labels) && 'copy-of' in object.metadata.labels".into(),
        ),
        ..Settings::default()
    };
    let engine = engine_with(GUARDRAIL, settings);
    let text = String::from_utf8(copy_with_status("1e400")).expect("UTF-8");
    let text = text.replace("\"kspy.dev/debug\":\"copy\"", "\"copy-of\":\"web\"");
    let review = ParsedReview::from_slice(text.as_bytes()).expect("decodes");
    let j = engine.judge(&review, Endpoint::Validate, None);
    assert_eq!(j.verdict, Verdict::Denied, "{}", j.response.result.message);
}

/// A debug copy whose `containers` are missing decodes as a Pod without containers: it would
/// have no subject to judge, and its host namespaces would go unjudged. It is denied.
#[test]
fn a_debug_pod_without_containers_is_denied() {
    let engine = engine(GUARDRAIL);
    let pod = json!({
        "metadata": {"name": "web-copy", "labels": {"kspy.dev/debug": "copy"}},
        "spec": {"hostPID": true}
    });
    let review = ParsedReview::from_slice(create("ns", "alice", &[], pod).to_string().as_bytes())
        .expect("decodes");
    let j = engine.judge(&review, Endpoint::Validate, None);
    assert_eq!(j.verdict, Verdict::Denied);
    assert!(
        j.response
            .result
            .message
            .contains("copy pod without containers"),
        "{}",
        j.response.result.message
    );
}
