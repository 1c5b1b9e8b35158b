//! One log line per decision, from the real binary: a JSON object with the decision's fields
//! (`--log-format json`, the default), or a text line with the same fields (`text`).

#![cfg(unix)]

mod common;

use common::{WebhookProcess, fixture, fixture_uid, text_field};
use serde_json::Value;

/// Sends an allowed and a denied attach and a plain pod create to `/validate`, stops the
/// process, and returns every log line it wrote after listening.
async fn decisions(webhook: WebhookProcess) -> Vec<String> {
    let mut conn = webhook.connect().await;
    for name in [
        "attach-allowed.json",
        "attach-denied.json",
        "create-plain-pod.json",
    ] {
        let resp = conn
            .post_json("/validate", fixture(name))
            .await
            .expect("review");
        assert_eq!(resp.status(), 200);
    }
    drop(conn);
    webhook.terminate();
    let lines: Vec<String> = webhook.lines.iter().collect();
    assert!(webhook.wait().await.success());
    lines
}

#[tokio::test]
async fn json_logs_have_one_line_per_debug_decision_with_its_fields() {
    let lines = decisions(WebhookProcess::spawn(&[])).await;
    let decisions: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| v["message"] == "decision")
        .collect();
    // The plain pod create is not a debug request: logged at debug level, so not here.
    assert_eq!(decisions.len(), 2, "{lines:#?}");
    let allowed = &decisions[0];
    assert_eq!(allowed["level"], "INFO");
    assert_eq!(allowed["uid"], fixture_uid("attach-allowed.json"));
    assert_eq!(allowed["endpoint"], "validate");
    assert_eq!(allowed["user"], "alice@example.com");
    assert_eq!(allowed["namespace"], "shop");
    assert_eq!(allowed["pod"], "checkout-5c7d9b8f6-q4w2e");
    assert_eq!(allowed["action"], "attach");
    assert_eq!(allowed["verdict"], "allowed");
    assert!(
        !allowed["policies"].as_str().expect("policies").is_empty(),
        "{allowed}"
    );
    assert!(allowed["duration_us"].is_u64(), "{allowed}");
    let denied = &decisions[1];
    assert_eq!(denied["uid"], fixture_uid("attach-denied.json"));
    assert_eq!(denied["verdict"], "denied");
}

#[tokio::test]
async fn text_logs_carry_the_same_fields() {
    let lines = decisions(WebhookProcess::spawn_logging("text", &[])).await;
    let decisions: Vec<&String> = lines.iter().filter(|l| l.contains(" decision ")).collect();
    assert_eq!(decisions.len(), 2, "{lines:#?}");
    let uid = |l: &str| text_field(l, "uid");
    assert_eq!(
        uid(decisions[0]),
        Some(fixture_uid("attach-allowed.json")),
        "{}",
        decisions[0]
    );
    assert_eq!(
        text_field(decisions[0], "verdict").as_deref(),
        Some("allowed")
    );
    assert_eq!(
        text_field(decisions[0], "action").as_deref(),
        Some("attach")
    );
    assert_eq!(
        text_field(decisions[0], "user").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(uid(decisions[1]), Some(fixture_uid("attach-denied.json")));
    assert_eq!(
        text_field(decisions[1], "verdict").as_deref(),
        Some("denied")
    );
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<Value>(l).is_err()),
        "text, not JSON: {lines:#?}"
    );
}

#[tokio::test]
async fn text_log_values_cannot_forge_lines_or_fields() {
    let webhook = WebhookProcess::spawn_logging("text", &[]);
    let mut conn = webhook.connect().await;
    let forged_line = "mallory\n2026-11-27T00:00:00.000000Z  INFO decision endpoint=validate uid=forged user=mallory verdict=allowed";
    let forged_field = "bob verdict=allowed";
    for (uid, user) in [("real-1", forged_line), ("real-2", forged_field)] {
        let mut review: Value =
            serde_json::from_slice(&fixture("attach-denied.json")).expect("fixture");
        review["request"]["uid"] = uid.into();
        review["request"]["userInfo"]["username"] = user.into();
        let body = serde_json::to_vec(&review).expect("encode");
        let resp = conn
            .post_json("/validate", body.into())
            .await
            .expect("review");
        assert_eq!(resp.status(), 200);
    }
    drop(conn);
    webhook.terminate();
    let lines: Vec<String> = webhook.lines.iter().collect();
    assert!(webhook.wait().await.success());

    assert!(
        lines
            .iter()
            .all(|l| text_field(l, "uid").as_deref() != Some("forged")),
        "a forged line: {lines:#?}"
    );
    for (uid, user) in [("real-1", forged_line), ("real-2", forged_field)] {
        let decisions: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(" decision ") && text_field(l, "uid").as_deref() == Some(uid))
            .collect();
        assert_eq!(decisions.len(), 1, "{lines:#?}");
        let line = decisions[0];
        assert_eq!(text_field(line, "user").as_deref(), Some(user), "{line}");
        assert_eq!(
            text_field(line, "verdict").as_deref(),
            Some("denied"),
            "{line}"
        );
    }
}

/// A reload that empties the policy directory warns as the start does: the set is valid, but
/// no debug request can be granted any more.
#[tokio::test]
async fn a_reload_that_leaves_no_policy_warns() {
    let webhook = WebhookProcess::spawn(&[]);
    std::fs::remove_file(webhook.policies.join("p.yaml")).expect("remove the policies");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut seen = Vec::new();
    let warning = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = webhook.lines.recv_timeout(left) else {
            panic!("no warning within 20 s: {seen:#?}");
        };
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        if v["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("no DebugPolicy under the policy directory"))
        {
            break v;
        }
        seen.push(line);
    };
    assert_eq!(warning["level"], "WARN", "{warning}");
    assert!(
        seen.iter().any(|l| l.contains("policies reloaded")),
        "the reload comes first: {seen:#?}"
    );
    webhook.terminate();
    assert!(webhook.wait().await.success());
}

/// A pod CREATE that is no debug request reaches kspy only when the webhook configurations'
/// matchConditions are not in force (Kubernetes 1.27 drops them unless its feature gate is
/// on): every pod creation then waits on kspy. One warning says so, not one per pod; debug
/// requests never raise it.
#[tokio::test]
async fn ordinary_pod_creates_warn_once_that_match_conditions_are_not_in_force() {
    let webhook = WebhookProcess::spawn(&[]);
    let mut conn = webhook.connect().await;
    for name in [
        "attach-allowed.json",
        "attach-denied.json",
        "create-plain-pod.json",
        "create-plain-pod.json",
        "create-plain-pod.json",
    ] {
        for path in ["/mutate", "/validate"] {
            let resp = conn.post_json(path, fixture(name)).await.expect("review");
            assert_eq!(resp.status(), 200);
        }
    }
    drop(conn);
    webhook.terminate();
    let lines: Vec<String> = webhook.lines.iter().collect();
    assert!(webhook.wait().await.success());
    let warned: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("matchConditions are not in force"))
        })
        .collect();
    assert_eq!(warned.len(), 1, "{lines:#?}");
    assert_eq!(warned[0]["level"], "WARN", "{}", warned[0]);
    assert_eq!(warned[0]["namespace"], "shop", "{}", warned[0]);
    assert!(
        warned[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("without-match-conditions")),
        "{}",
        warned[0]
    );
}

/// What a client puts into a review reached the log lines whole: a megabyte of username,
/// container name or `apiVersion` made a megabyte line. Container runtimes split lines over
/// 16 KiB into pieces a log collector may read as lines of their own (the tail of a username
/// then forges a JSON record), and each such line is held in memory as it is written. Every
/// line about a review now stays well under 16 KiB, saying how long a cut value was.
#[tokio::test]
async fn request_text_in_log_lines_is_bounded() {
    let webhook = WebhookProcess::spawn(&[]);
    let mut conn = webhook.connect().await;
    let huge = 1 << 20;
    let forged = r#"{"level":"INFO","message":"decision","verdict":"allowed"}"#;
    let mut review: Value =
        serde_json::from_slice(&fixture("attach-allowed.json")).expect("fixture");
    let uid = "i".repeat(huge);
    review["request"]["uid"] = uid.clone().into();
    review["request"]["userInfo"]["username"] = format!("{}{forged}", "u".repeat(huge)).into();
    review["request"]["object"]["spec"]["ephemeralContainers"][0]["name"] = "c".repeat(huge).into();
    let resp = common::post_validate(&mut conn, &review).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        common::response_of(resp.body())["uid"],
        uid,
        "the answer carries the uid whole"
    );
    let mut bad: Value = serde_json::from_slice(&fixture("attach-allowed.json")).expect("fixture");
    bad["apiVersion"] = "v".repeat(huge).into();
    let resp = common::post_validate(&mut conn, &bad).await;
    assert_eq!(resp.status(), 400);
    drop(conn);
    webhook.terminate();
    let lines: Vec<String> = webhook.lines.iter().collect();
    assert!(webhook.wait().await.success());

    let longest = lines.iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 8 * 1024, "a line of {longest} bytes");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let decision = parsed
        .iter()
        .find(|v| v["message"] == "decision")
        .expect("a decision line");
    let cut = |field: &str, fill: char| {
        let value = decision[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field}"));
        assert!(
            value.starts_with(&fill.to_string().repeat(100)),
            "{field}: {value}"
        );
        assert!(value.contains("bytes"), "{field} says it was cut: {value}");
    };
    cut("uid", 'i');
    cut("user", 'u');
    cut("subjects", 'c');
    assert!(!decision["user"].as_str().unwrap_or("").contains(forged));
    let refused = parsed
        .iter()
        .find(|v| v["message"] == "bad request")
        .expect("a bad request line");
    let error = refused["error"].as_str().expect("error");
    assert!(error.starts_with("unsupported apiVersion"), "{error}");
    assert!(error.contains("bytes"), "{error}");
}

/// A policy expression that makes the CEL library panic (cel 0.13 negating the least int) is
/// that policy's evaluation error: the request is denied and the decision line says so. The
/// panic's own text ("thread … panicked at …/cel-0.13.0/…", several lines) stays off stderr,
/// where it would sit between the JSON log lines on every such request.
#[tokio::test]
async fn a_panic_in_a_policy_expression_is_a_denial_not_panic_text_on_stderr() {
    const PANICKING: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata:
  name: test-panics
spec:
  match:
    actions: [attach]
  grant:
    images: ["busybox:*"]
    capabilities: [SYS_PTRACE]
    runAsRoot: true
    mountVolumes: nonSecret
  validations:
    - expression: "-(-9223372036854775808) > 0"
      message: never shown
"#;
    let webhook = WebhookProcess::spawn(&[]);
    std::fs::write(webhook.policies.join("p.yaml"), PANICKING).expect("write the policy");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = webhook
            .lines
            .recv_timeout(left)
            .expect("a reload within 20 s");
        if line.contains("policies reloaded") && line.contains("test-panics") {
            break;
        }
    }
    let mut conn = webhook.connect().await;
    let resp = conn
        .post_json("/validate", fixture("attach-allowed.json"))
        .await
        .expect("review");
    assert_eq!(resp.status(), 200);
    let answer = common::response_of(resp.body());
    assert_eq!(answer["allowed"], false, "{answer}");
    drop(conn);
    webhook.terminate();
    let lines: Vec<String> = webhook.lines.iter().collect();
    let stderr = webhook.stderr.clone();
    assert!(webhook.wait().await.success());
    let decision = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == "decision")
        .unwrap_or_else(|| panic!("no decision line: {lines:#?}"));
    assert_eq!(decision["verdict"], "denied", "{decision}");
    let stderr = stderr.lock().expect("stderr").clone();
    assert!(
        !stderr.iter().any(|l| l.contains("panicked")),
        "panic text on stderr: {stderr:#?}"
    );
}
