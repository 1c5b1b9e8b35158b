//! Reviews over real HTTPS: verdicts, denial messages, the mutate patch, warnings, HTTP/2.

mod common;

use base64::Engine as _;
use common::{Harness, fixture, fixture_uid, response_of};
use kspy_webhook::client::HttpVersion;
use serde_json::Value;

#[tokio::test]
async fn allowed_attach_echoes_the_uid_with_audit_annotations() {
    let h = Harness::start().await;
    let (status, body) = h.post_fixture("/validate", "attach-allowed.json").await;
    assert_eq!(status, 200);
    let r = response_of(&body);
    assert_eq!(r["uid"], fixture_uid("attach-allowed.json"));
    assert_eq!(r["allowed"], true, "{r}");
    assert!(r.get("patch").is_none(), "validate never patches: {r}");
    let annotations = r["auditAnnotations"]
        .as_object()
        .expect("audit annotations");
    assert!(
        annotations
            .values()
            .any(|v| v.as_str().is_some_and(|s| s.contains("test-sre"))),
        "{r}"
    );
    assert_eq!(
        h.server
            .metrics()
            .reviews_total("validate", "attach", "allowed", "test-sre,test-pinned"),
        1,
        "{}",
        h.server.metrics().render()
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn denied_attach_says_why_with_status_403() {
    let h = Harness::start().await;
    let (status, body) = h.post_fixture("/validate", "attach-denied.json").await;
    assert_eq!(
        status, 200,
        "a judged request is HTTP 200 whatever the verdict"
    );
    let r = response_of(&body);
    assert_eq!(r["uid"], fixture_uid("attach-denied.json"));
    assert_eq!(r["allowed"], false);
    assert_eq!(r["status"]["code"], 403, "{r}");
    let message = r["status"]["message"].as_str().expect("message");
    // Why: which pod, which container, what is missing and under which policies.
    assert!(
        message
            .starts_with("kspy denied the debug container for pod shop/checkout-5c7d9b8f6-q4w2e:"),
        "{message}"
    );
    assert!(
        message.contains(
            "container \"debugger-def34\": capability SYS_ADMIN is not granted by the policies that apply (test-sre)"
        ),
        "{message}"
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn no_applicable_policy_is_denied_by_default() {
    let h = Harness::start().await;
    let (status, body) = h.post_fixture("/validate", "attach-no-policy.json").await;
    assert_eq!(status, 200);
    let r = response_of(&body);
    assert_eq!(r["allowed"], false, "{r}");
    assert_eq!(r["status"]["code"], 403, "{r}");
    // Denied because no policy applies (and that is the default), saying who asked for what.
    let message = r["status"]["message"].as_str().expect("message");
    assert!(
        message.contains(
            "no DebugPolicy allows user \"mallory@example.com\" (groups interns) to attach in namespace \"shop\""
        ),
        "{message}"
    );
    assert!(
        message.ends_with("; kspy denies debug requests no policy allows"),
        "{message}"
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn no_policy_allows_setting_lets_it_through() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.settings.no_policy = kspy_admission::NoPolicyVerdict::Allow;
    })
    .await;
    let (_, body) = h.post_fixture("/validate", "attach-no-policy.json").await;
    assert_eq!(response_of(&body)["allowed"], true);
    h.server.shutdown().await;
}

#[tokio::test]
async fn non_debug_requests_are_allowed_untouched() {
    let h = Harness::start().await;
    for path in ["/mutate", "/validate"] {
        let (status, body) = h.post_fixture(path, "create-plain-pod.json").await;
        assert_eq!(status, 200);
        let r = response_of(&body);
        assert_eq!(r["allowed"], true, "{r}");
        assert_eq!(r["uid"], fixture_uid("create-plain-pod.json"));
        assert!(r.get("patch").is_none(), "{r}");
        assert!(r.get("warnings").is_none(), "{r}");
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn mutate_patch_applies_to_the_expected_pod() {
    let h = Harness::start().await;
    let (status, body) = h.post_fixture("/mutate", "attach-allowed.json").await;
    assert_eq!(status, 200);
    let r = response_of(&body);
    assert_eq!(r["allowed"], true, "{r}");
    assert_eq!(r["patchType"], "JSONPatch", "{r}");
    let patch_json = base64::engine::general_purpose::STANDARD
        .decode(r["patch"].as_str().expect("patch is a base64 string"))
        .expect("base64");
    let patch: json_patch::Patch = serde_json::from_slice(&patch_json).expect("RFC 6902 patch");

    let review: Value = serde_json::from_slice(&fixture("attach-allowed.json")).expect("fixture");
    let original = review["request"]["object"].clone();
    let mut pod = original.clone();
    json_patch::patch(&mut pod, &patch).expect("patch applies");

    let debugger = &pod["spec"]["ephemeralContainers"][0];
    // No `targetContainer: first` default here: in app's process namespace the debug
    // container would trace app's processes (SYS_PTRACE) and take over its service-account
    // token, which no policy grants, so /validate would deny what it allows as sent.
    assert!(debugger.get("targetContainerName").is_none(), "{debugger}");
    assert!(
        r["warnings"].as_array().is_some_and(|w| w.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("was not given targetContainerName \"app\"")))),
        "{r}"
    );
    assert_eq!(debugger["imagePullPolicy"], "IfNotPresent", "{debugger}");
    // Everything the user set is unchanged.
    for field in [
        "name",
        "image",
        "command",
        "stdin",
        "tty",
        "securityContext",
    ] {
        assert_eq!(
            debugger[field], original["spec"]["ephemeralContainers"][0][field],
            "{field}"
        );
    }
    // Nothing outside spec.ephemeralContainers changed.
    let mut rest = pod.clone();
    let mut rest_original = original.clone();
    rest["spec"]["ephemeralContainers"] = Value::Null;
    rest_original["spec"]["ephemeralContainers"] = Value::Null;
    assert_eq!(rest, rest_original);
    // The API server calls /validate with the patch applied: what /mutate made is allowed.
    let mut patched = review.clone();
    patched["request"]["object"] = pod;
    let (status, body) = h
        .post(
            "/validate",
            serde_json::to_vec(&patched).expect("encodes").into(),
        )
        .await;
    assert_eq!(status, 200);
    let v = response_of(&body);
    assert_eq!(v["allowed"], true, "{v}");
    h.server.shutdown().await;
}

#[tokio::test]
async fn warn_mode_policies_produce_warnings_not_denials() {
    let h = Harness::start().await;
    let (_, body) = h.post_fixture("/validate", "attach-allowed.json").await;
    let r = response_of(&body);
    assert_eq!(r["allowed"], true, "{r}");
    let warnings = r["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|s| s.contains("pinned by digest"))),
        "{r}"
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn http2_and_keep_alive_serve_many_reviews_on_one_connection() {
    let h = Harness::start().await;
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let mut conn = h.connect(version).await;
        for _ in 0..20 {
            let resp = conn
                .post_json("/validate", fixture("attach-allowed.json"))
                .await
                .expect("request");
            assert_eq!(resp.status(), 200);
            assert_eq!(response_of(resp.body())["allowed"], true);
        }
    }
    assert_eq!(
        h.server
            .metrics()
            .reviews_total("validate", "attach", "allowed", "test-sre,test-pinned"),
        40
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn metrics_and_health_on_the_admin_port() {
    let h = Harness::start().await;
    h.post_fixture("/validate", "attach-denied.json").await;
    h.post_fixture("/mutate", "create-plain-pod.json").await;
    assert_eq!(h.admin_get("/healthz").await.0, 200);
    assert_eq!(h.admin_get("/readyz").await.0, 200);
    let (status, text) = h.admin_get("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "kspy_reviews_total{endpoint=\"validate\",action=\"attach\",verdict=\"denied\",policy=\"test-sre,test-pinned\"} 1",
        "kspy_reviews_total{endpoint=\"mutate\",action=\"none\",verdict=\"not-debug\",policy=\"none\"} 1",
        "kspy_review_duration_seconds_count{endpoint=\"validate\"} 1",
        "kspy_policies_loaded 2",
        "kspy_cert_expiry_timestamp_seconds ",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
    let expiry: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("kspy_cert_expiry_timestamp_seconds "))
        .and_then(|v| v.parse().ok())
        .expect("expiry value");
    assert_eq!(expiry, h.certs.not_after_unix());
    assert_eq!(h.admin_get("/nope").await.0, 404);
    h.server.shutdown().await;
}
