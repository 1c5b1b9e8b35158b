//! A denial's short reasons (`Judgement::reasons`), which kspy's Events carry to whoever may
//! read the namespace: what was wrong and which policy denied, without the requester's groups
//! or which policies grant what to whom (the response's message keeps those, for the
//! requester).

mod common;

use common::*;
use kspy_admission::classify::MAX_REACHED;
use kspy_admission::decide::{DenialReason, MAX_LISTED_DENIALS};
use kspy_admission::{Endpoint, Judgement, Verdict};
use serde_json::json;

/// A grant for SREs, a grant elsewhere, a guardrail that passes for busybox, a guardrail
/// that refuses ttys, and a Warn policy that always complains.
const POLICIES: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: sre-debug}
spec:
  match: {actions: [attach], groups: [sre]}
  grant:
    images: ["busybox:*"]
    capabilities: [SYS_PTRACE]
    runAsRoot: true
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: kube-system-admin}
spec:
  match: {actions: [attach], groups: [kube-system-admins], namespaces: [kube-system]}
  grant:
    images: ["busybox:*"]
    capabilities: [SYS_ADMIN]
    runAsRoot: true
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: busybox-only}
spec:
  validations:
    - expression: "container.image.startsWith('busybox')"
      message: only busybox
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: no-tty}
spec:
  validations:
    - expression: "!has(container.tty) || !container.tty"
      message: no interactive sessions here
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: grumpy}
spec:
  mode: Warn
  validations:
    - expression: "false"
      message: always warns
"#;

/// An attach of one debug container `d` by `user` in `groups`, adding `caps`.
fn attach_by(user: &str, groups: &[&str], tty: bool, caps: &[&str]) -> serde_json::Value {
    let mut d = debugger("d", "busybox:1.36");
    d["tty"] = json!(tty);
    d["securityContext"] = json!({"capabilities": {"add": caps}});
    attach("shop", user, groups, vec![], vec![d])
}

fn reason(policy: Option<&str>, text: &str) -> DenialReason {
    DenialReason {
        container: Some("d".into()),
        policy: policy.map(str::to_owned),
        reason: text.into(),
    }
}

/// Asserts that the denial's message still says `full`, for the requester.
fn message_says(j: &Judgement, full: &str) {
    let m = &j.response.result.message;
    assert!(m.contains(full), "{full}\n{m}");
}

#[test]
fn a_missing_grant_is_a_reason_naming_no_policy_nor_who_holds_it() {
    let j = validate(
        &engine(POLICIES),
        &attach_by("alice", &["sre"], false, &["SYS_ADMIN"]),
    );
    assert_eq!(j.verdict, Verdict::Denied);
    assert_eq!(
        j.reasons,
        [reason(None, "capability SYS_ADMIN is not granted")]
    );
    message_says(
        &j,
        "kube-system-admin grants it to groups [kube-system-admins]",
    );
}

#[test]
fn no_applicable_policy_is_a_reason_without_the_users_groups() {
    let j = validate(
        &engine(POLICIES),
        &attach_by("mallory", &["interns"], false, &[]),
    );
    // The guardrail busybox-only applied and passed; it is not blamed.
    assert_eq!(
        j.reasons,
        [reason(None, "no DebugPolicy allows this request")]
    );
    message_says(&j, "user \"mallory\" (groups interns)");
    message_says(&j, "sre-debug (to groups [sre]");
}

#[test]
fn only_an_enforce_policy_whose_validation_failed_is_named() {
    let j = validate(
        &engine(POLICIES),
        &attach_by("alice", &["sre"], true, &["SYS_PTRACE"]),
    );
    assert_eq!(
        j.reasons,
        [reason(Some("no-tty"), "no interactive sessions here")]
    );
    assert_eq!(
        j.reasons[0].to_string(),
        "policy no-tty: no interactive sessions here"
    );
    // Both at once, in the order of the full message.
    let j = validate(&engine(POLICIES), &attach_by("bob", &["dev"], true, &[]));
    assert_eq!(
        j.reasons,
        [
            reason(Some("no-tty"), "no interactive sessions here"),
            reason(None, "no DebugPolicy allows this request"),
        ]
    );
    assert_eq!(
        j.reasons[1].to_string(),
        "no DebugPolicy allows this request"
    );
}

#[test]
fn a_cel_error_names_its_policy_and_expression_but_not_the_error() {
    let broken = format!(
        "{POLICIES}---\n{}",
        policy(
            "broken",
            "  validations:\n    - expression: \"request.userInfo.extra['x'][0] == 'y'\"\n      message: never read"
        )
    );
    let j = validate(
        &engine(&broken),
        &attach_by("alice", &["sre"], false, &["SYS_PTRACE"]),
    );
    assert_eq!(
        j.reasons,
        [reason(Some("broken"), "validation 1 failed to evaluate")]
    );
    message_says(
        &j,
        "validation 1 (request.userInfo.extra['x'][0] == 'y') failed to evaluate",
    );
}

#[test]
fn a_guardrail_that_cannot_be_checked_is_named_for_the_whole_request() {
    let guarded = format!(
        "{POLICIES}---\n{}",
        policy(
            "prod-only-busybox",
            "  match: {namespaceSelector: {matchLabels: {env: production}}}\n  validations:\n    - expression: \"container.image.startsWith('busybox')\""
        )
    );
    // No Namespace given: its labels are unknown.
    let j = validate(
        &engine(&guarded),
        &attach_by("alice", &["sre"], false, &["SYS_PTRACE"]),
    );
    assert_eq!(
        j.reasons,
        [DenialReason {
            container: None,
            policy: Some("prod-only-busybox".into()),
            reason: "its validations cannot be checked: the Namespace could not be read".into(),
        }]
    );
}

#[test]
fn an_allowed_request_has_no_reasons() {
    let j = validate(
        &engine(POLICIES),
        &attach_by("alice", &["sre"], false, &["SYS_PTRACE"]),
    );
    assert_eq!(j.verdict, Verdict::Allowed, "{}", j.response.result.message);
    assert!(j.reasons.is_empty(), "{:?}", j.reasons);
}

/// `message: ""` is unset, as ValidatingAdmissionPolicy reads it: the denial shows the rule,
/// not an empty reason ("policy p: ").
#[test]
fn an_empty_message_shows_the_rule() {
    let policies = policy(
        "named-x",
        "  grant: {images: ['busybox:*'], runAsRoot: true}\n  validations:\n    - expression: \"container.name == 'x'\"\n      message: ''\n",
    );
    let j = validate(&engine(&policies), &attach_by("alice", &[], false, &[]));
    assert_eq!(j.verdict, Verdict::Denied);
    message_says(
        &j,
        "- container \"d\": policy named-x: failed rule: container.name == 'x'",
    );
}

/// An attach by alice (sre) of `n` debug containers, each running as root (so able to become
/// any user), each mounting a Secret volume of its own, all in `app`'s process namespace:
/// each reads every other one's Secret (and `app`'s two volumes) as their user, none of which
/// sre-debug grants.
fn debuggers_reading_each_others_secrets(n: usize) -> serde_json::Value {
    let new: Vec<_> = (0..n)
        .map(|i| {
            let mut d = debugger(&format!("d{i}"), "busybox:1.36");
            d["tty"] = json!(false);
            d["targetContainerName"] = json!("app");
            d["volumeMounts"] = json!([{"name": format!("s{i}"), "mountPath": "/s"}]);
            d
        })
        .collect();
    let mut r = attach("shop", "alice", &["sre"], vec![], new);
    edit_pods(&mut r, |pod| {
        let volumes = pod["spec"]["volumes"].as_array_mut().expect("volumes");
        for i in 0..n {
            volumes
                .push(json!({"name": format!("s{i}"), "secret": {"secretName": format!("s{i}")}}));
        }
    });
    r
}

/// 60 such debug containers: 60 x 62 denials, growing with the square of the review. The
/// message lists the first [`MAX_LISTED_DENIALS`] and counts the rest, and the reasons are as
/// many as it lists.
#[test]
fn a_review_denied_for_thousands_of_reasons_lists_a_hundred_and_counts_the_rest() {
    const DEBUGGERS: usize = 60;
    let j = validate(
        &engine(POLICIES),
        &debuggers_reading_each_others_secrets(DEBUGGERS),
    );
    assert_eq!(j.verdict, Verdict::Denied);
    assert_eq!(j.reasons.len(), MAX_LISTED_DENIALS, "{:?}", &j.reasons[..3]);
    let message = &j.response.result.message;
    let listed = message
        .lines()
        .filter(|l| l.starts_with("- container "))
        .count();
    assert_eq!(listed, MAX_LISTED_DENIALS);
    // Its own Secret, app's two volumes and the other 59 debug containers' Secrets, each.
    let all = DEBUGGERS * (1 + 2 + (DEBUGGERS - 1));
    assert!(
        message.ends_with(&format!(
            "\n- and {} more (kspy lists the first {MAX_LISTED_DENIALS})",
            all - MAX_LISTED_DENIALS
        )),
        "{}",
        &message[message.len().saturating_sub(300)..]
    );
    // The first ones listed are d0's, in full, as before.
    assert!(
        message.contains(
            "- container \"d0\": mounting secret volume \"s1\" (mounted by container \"d1\""
        ),
        "{}",
        &message[..2000.min(message.len())]
    );
}

/// 250 such debug containers reach 250 x 251 containers and Secrets, past
/// [`MAX_REACHED`]: kspy does not work them all out (they took 240 MB for 700 debug
/// containers) but denies, saying why and what to do, on both endpoints. So are 250 that
/// hold nothing, which would be allowed one by one: each is still compared with each other
/// one (1 500 took 360 ms).
#[test]
fn debug_containers_reaching_too_much_are_denied_not_judged() {
    // Root, but unable to become app's user: app's volumes are out of its reach.
    let unable_to_switch_user = json!({"allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["SETUID", "SETGID"]}});
    let holding_nothing = {
        let new: Vec<_> = (0..250)
            .map(|i| {
                let mut d = debugger(&format!("d{i}"), "busybox:1.36");
                d["tty"] = json!(false);
                d["targetContainerName"] = json!("app");
                d["securityContext"] = unable_to_switch_user.clone();
                d
            })
            .collect();
        attach("shop", "alice", &["sre"], vec![], new)
    };
    let one = {
        let mut d = debugger("d", "busybox:1.36");
        d["tty"] = json!(false);
        d["targetContainerName"] = json!("app");
        d["securityContext"] = unable_to_switch_user.clone();
        attach("shop", "alice", &["sre"], vec![], vec![d])
    };
    let engine = engine(POLICIES);
    let j = validate(&engine, &one);
    assert_eq!(j.verdict, Verdict::Allowed, "{}", j.response.result.message);
    for (r, endpoint) in [
        (
            debuggers_reading_each_others_secrets(250),
            Endpoint::Validate,
        ),
        (debuggers_reading_each_others_secrets(250), Endpoint::Mutate),
        (holding_nothing.clone(), Endpoint::Validate),
        (holding_nothing, Endpoint::Mutate),
    ] {
        let j = judge(&engine, &r, endpoint, None);
        assert_eq!(j.verdict, Verdict::Denied, "{endpoint:?}");
        assert_eq!(
            j.reasons,
            [DenialReason::request("kspy cannot judge this request")]
        );
        let message = &j.response.result.message;
        assert!(
            message.contains(&format!(
                "the 250 debug containers this request adds reach, in the process namespaces \
                 they join, more than {MAX_REACHED} containers and what they hold"
            )) && message.ends_with("add fewer debug containers at once"),
            "{message}"
        );
    }
}

/// `/mutate` gives no `targetContainerName` default when, with their targets, the debug
/// containers a request adds would reach past [`MAX_REACHED`]: `/validate`, called with the
/// patch applied, would deny what it can judge without them. One alone gets its target.
#[test]
fn no_target_default_makes_debug_containers_reach_too_much() {
    let policies = format!(
        "{POLICIES}---\n{}",
        policy(
            "target-first",
            "  match: {actions: [attach]}\n  defaults: {targetContainer: first}"
        )
    );
    let engine = engine(&policies);
    let attach_of = |n: usize| {
        let new: Vec<_> = (0..n)
            .map(|i| {
                let mut d = debugger(&format!("d{i}"), "busybox:1.36");
                d["tty"] = json!(false);
                d["securityContext"] = json!({"allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["SETUID", "SETGID"]}});
                d
            })
            .collect();
        attach("shop", "alice", &["sre"], vec![], new)
    };
    let targets = |j: &Judgement| -> usize {
        patch_of(j)
            .iter()
            .filter(|op| op.to_string().contains("targetContainerName"))
            .count()
    };
    let one = judge(&engine, &attach_of(1), Endpoint::Mutate, None);
    assert_eq!(targets(&one), 1, "{:?}", patch_of(&one));
    let many = judge(&engine, &attach_of(250), Endpoint::Mutate, None);
    assert_eq!(targets(&many), 0);
    let warnings = many.response.warnings.clone().unwrap_or_default();
    assert_eq!(warnings.len(), 250);
    assert_eq!(
        warnings[0],
        format!(
            "container \"d0\" was not given targetContainerName \"app\": with their targets, the \
             debug containers this request adds would reach more than {MAX_REACHED} containers \
             and what they hold, which kspy denies; add fewer debug containers at once"
        )
    );
}
