//! Pod Security warnings: what the namespace's enforced level will make the API server refuse,
//! said by kspy with what to do. The API server runs Pod Security after the mutating webhooks
//! and before the validating ones, so `/mutate` gives them, for the containers as kspy's own
//! defaults leave them; `/validate` gives the same (for `kspy policy eval` and where Pod
//! Security lets the request through).

mod common;

use common::*;
use kspy_admission::Endpoint;
use serde_json::{Value, json};

const ENFORCE: &str = "pod-security.kubernetes.io/enforce";

/// Grants busybox and SYS_PTRACE; `defaults` is the policy's `defaults:` mapping.
fn grants(defaults: &str) -> String {
    policy(
        "debug",
        &format!(
            "  match: {{actions: [attach, copy]}}\n  grant: {{images: ['busybox:*'], capabilities: [SYS_PTRACE], runAsRoot: true, hostPaths: ['/var/log']}}\n  defaults: {defaults}"
        ),
    )
}

/// A securityContext that meets `restricted`.
fn hardened() -> Value {
    json!({
        "allowPrivilegeEscalation": false, "runAsNonRoot": true, "runAsUser": 1000,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}
    })
}

/// An attach of `d` to a pod whose own containers are hardened, edited by `edit` (object and
/// oldObject alike).
fn attach_to(d: Value, edit: impl Fn(&mut Value)) -> Value {
    let mut r = attach("locked", "alice", &["sre"], vec![], vec![d]);
    edit_pods(&mut r, |pod| {
        let spec = &mut pod["spec"];
        for c in spec["containers"].as_array_mut().unwrap() {
            c["securityContext"] = hardened();
        }
        edit(pod);
    });
    r
}

fn warnings(j: &kspy_admission::Judgement) -> Vec<String> {
    j.response.warnings.clone().unwrap_or_default()
}

fn pod_security_lines(j: &kspy_admission::Judgement) -> Vec<String> {
    warnings(j)
        .into_iter()
        .filter(|w| w.contains("enforces Pod Security"))
        .collect()
}

#[test]
fn mutate_warns_for_the_container_as_the_defaults_leave_it() {
    let restricted = namespace("locked", &[(ENFORCE, "restricted")]);
    let plain = attach_to(debugger("d", "busybox:1.36"), |_| {});

    // `podSecurity: conform` fills in what restricted needs: nothing to warn about.
    let e = engine(&grants("{podSecurity: conform}"));
    let j = judge(&e, &plain, Endpoint::Mutate, Some(&restricted));
    assert!(!patch_of(&j).is_empty());
    assert_eq!(pod_security_lines(&j), Vec::<String>::new());

    // Without it the container reaches Pod Security as sent, and the warning says so first.
    let e = engine(&grants("{imagePullPolicy: IfNotPresent}"));
    let j = judge(&e, &plain, Endpoint::Mutate, Some(&restricted));
    let lines = pod_security_lines(&j);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            r#"namespace "locked" enforces Pod Security "restricted", which forbids in container "d": allowPrivilegeEscalation not set to false"#
        ),
        "{lines:?}"
    );
    assert!(lines[0].ends_with("(try --profile restricted or ask for an exemption)"));

    // What no default can make restricted is still named after the defaults.
    let mut ptrace = debugger("d", "busybox:1.36");
    ptrace["securityContext"] = json!({"capabilities": {"add": ["SYS_PTRACE"]}});
    let e = engine(&grants("{podSecurity: conform}"));
    let j = judge(
        &e,
        &attach_to(ptrace, |_| {}),
        Endpoint::Mutate,
        Some(&restricted),
    );
    let lines = pod_security_lines(&j);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(r#"which forbids in container "d": capability SYS_PTRACE;"#),
        "{lines:?}"
    );
    assert!(!lines[0].contains("allowPrivilegeEscalation"), "{lines:?}");

    // No level, or privileged: no warning.
    for ns in [
        namespace("locked", &[]),
        namespace("locked", &[(ENFORCE, "privileged")]),
    ] {
        let j = judge(
            &e,
            &attach_to(debugger("d", "busybox:1.36"), |_| {}),
            Endpoint::Mutate,
            Some(&ns),
        );
        assert_eq!(pod_security_lines(&j), Vec::<String>::new());
    }
}

#[test]
fn an_attach_warns_about_what_the_pod_already_has() {
    let e = engine(&grants("{podSecurity: conform}"));
    let baseline = namespace("locked", &[(ENFORCE, "baseline")]);
    let r = attach_to(debugger("d", "busybox:1.36"), |pod| {
        let spec = &mut pod["spec"];
        spec["containers"][0]["securityContext"]["privileged"] = json!(true);
        spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
        spec["containers"][1]["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
        spec["containers"][1]["volumeMounts"] = json!([{"name": "logs", "mountPath": "/logs"}]);
        spec["volumes"].as_array_mut().unwrap().extend([
            json!({"name": "logs", "hostPath": {"path": "/var/log"}}),
            json!({"name": "spare", "hostPath": {"path": "/srv"}}),
        ]);
        spec["securityContext"] = json!({"sysctls": [
            {"name": "kernel.msgmax", "value": "65536"},
            {"name": "net.ipv4.tcp_syncookies", "value": "1"}
        ]});
    });
    let expected = concat!(
        r#"namespace "locked" enforces Pod Security "baseline", which forbids in pod "web-1": "#,
        r#"container "app": privileged: true; "#,
        r#"container "sidecar": hostPath volume "logs"; "#,
        r#"hostPort 8080; sysctl kernel.msgmax; hostPath volume "spare"; "#,
        "adding a container makes the API server judge the whole pod, so it will reject the ",
        "debug container unless the pod is exempt (ask a cluster administrator for a Pod ",
        "Security exemption)"
    );
    // The same text from both endpoints, so that the API server, which drops a warning it
    // already gave, shows it once.
    for endpoint in [Endpoint::Mutate, Endpoint::Validate] {
        let j = judge(&e, &r, endpoint, Some(&baseline));
        assert_eq!(pod_security_lines(&j), [expected], "{endpoint:?}");
    }
}

#[test]
fn restricted_names_the_volume_types_it_does_not_allow() {
    let e = engine(&grants("{podSecurity: conform}"));
    let restricted = namespace("locked", &[(ENFORCE, "restricted")]);
    let r = attach_to(debugger("d", "busybox:1.36"), |pod| {
        pod["spec"]["volumes"].as_array_mut().unwrap().extend([
            json!({"name": "share", "nfs": {"server": "nfs.example.com", "path": "/x"}}),
            json!({"name": "scratch", "emptyDir": {}}),
            json!({"name": "bare"}),
        ]);
    });
    let lines = pod_security_lines(&judge(&e, &r, Endpoint::Mutate, Some(&restricted)));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains(r#"which forbids in pod "web-1": volume "share" of type nfs; "#),
        "{lines:?}"
    );
    for allowed in ["config", "creds", "scratch", "bare"] {
        assert!(!lines[0].contains(&format!("{allowed:?}")), "{lines:?}");
    }
    // Baseline allows any volume type but hostPath.
    let baseline = namespace("locked", &[(ENFORCE, "baseline")]);
    let j = judge(&e, &r, Endpoint::Mutate, Some(&baseline));
    assert_eq!(pod_security_lines(&j), Vec::<String>::new());
}

#[test]
fn a_copy_warns_about_its_pod_and_each_container() {
    let e = engine(&grants("{}"));
    let baseline = namespace("team", &[(ENFORCE, "baseline")]);
    let mut copy = pod("team");
    copy["metadata"] =
        json!({"name": "web-1-debug", "namespace": "team", "labels": {"kspy.dev/debug": "copy"}});
    copy["spec"]["containers"] = json!([
        {"name": "app", "image": "busybox:1.36", "ports": [{"containerPort": 80, "hostPort": 80}]},
        {"name": "debugger", "image": "busybox:1.36",
         "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}
    ]);
    let lines = pod_security_lines(&judge(
        &e,
        &create("team", "alice", &["sre"], copy),
        Endpoint::Mutate,
        Some(&baseline),
    ));
    assert_eq!(
        lines,
        [
            r#"namespace "team" enforces Pod Security "baseline", which forbids in container "debugger": capability SYS_PTRACE; the API server will reject it (try --profile baseline or ask for an exemption)"#,
            r#"namespace "team" enforces Pod Security "baseline", which forbids in pod "web-1-debug": hostPort 80; the API server will reject the pod unless it is exempt (ask a cluster administrator for a Pod Security exemption)"#,
        ]
    );
}

/// A Windows pod (`spec.os.name: windows`) cannot carry Linux-only securityContext fields: the
/// API server refuses the whole request when one is set, so kspy's defaults must not add one,
/// and `restricted` asks a Windows pod only for `runAsNonRoot`.
#[test]
fn a_windows_pod_gets_no_linux_only_defaults_or_warnings() {
    let restricted = namespace("locked", &[(ENFORCE, "restricted")]);
    let windows = |user: Option<&str>| {
        attach_to(debugger("d", "busybox:1.36"), move |pod| {
            let spec = &mut pod["spec"];
            spec["os"] = json!({"name": "windows"});
            for c in spec["containers"].as_array_mut().unwrap() {
                c["securityContext"] = json!({"runAsNonRoot": true});
            }
            if let Some(user) = user {
                spec["securityContext"] = json!({"windowsOptions": {"runAsUserName": user}});
            }
        })
    };
    // The shipped developer defaults: a drop list written for Linux, then conform.
    let e = engine(&grants(
        "{securityContext: {capabilities: {drop: [SETUID, SETGID]}}, podSecurity: conform}",
    ));

    let j = judge(&e, &windows(None), Endpoint::Mutate, Some(&restricted));
    let sc: Vec<Value> = patch_of(&j)
        .into_iter()
        .filter(|op| op["path"] == "/spec/ephemeralContainers/0/securityContext")
        .map(|op| op["value"].clone())
        .collect();
    assert_eq!(
        sc,
        [json!({"runAsNonRoot": true, "windowsOptions": {"runAsUserName": "ContainerUser"}})],
        "{:?}",
        patch_of(&j)
    );
    assert_eq!(pod_security_lines(&j), Vec::<String>::new());
    assert!(
        warnings(&j).contains(
            &r#"the securityContext defaults capabilities were not set on container "d": pod "web-1" runs Windows (spec.os.name), where the API server refuses them"#
                .to_owned()
        ),
        "{:?}",
        warnings(&j)
    );

    // A user the pod names already is kept: only runAsNonRoot is added.
    let j = judge(
        &e,
        &windows(Some("ContainerUser")),
        Endpoint::Mutate,
        Some(&restricted),
    );
    let sc: Vec<Value> = patch_of(&j)
        .into_iter()
        .filter(|op| op["path"] == "/spec/ephemeralContainers/0/securityContext")
        .map(|op| op["value"].clone())
        .collect();
    assert_eq!(sc, [json!({"runAsNonRoot": true})]);

    // Without conform, the warning names what restricted asks of a Windows container, and
    // not the Linux-only fields it exempts Windows pods from.
    let e = engine(&grants("{imagePullPolicy: IfNotPresent}"));
    let j = judge(&e, &windows(None), Endpoint::Mutate, Some(&restricted));
    let lines = pod_security_lines(&j);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            r#"namespace "locked" enforces Pod Security "restricted", which forbids in container "d": running as an administrator (runAsNonRoot must be true, and windowsOptions.runAsUserName ContainerUser or unset); the API server"#
        ),
        "{lines:?}"
    );
}

/// One row of `fixtures/pod-security/upstream-checks.yaml`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UpstreamCase {
    name: String,
    upstream: String,
    level: String,
    #[serde(default)]
    version: Option<String>,
    spec: Value,
    #[serde(default)]
    annotations: Option<Value>,
    #[serde(default)]
    debug: Option<Value>,
    forbids: Vec<String>,
    #[serde(default)]
    not: Vec<String>,
}

/// The review a row describes: a copy of its pod, or (with `debug`) an attach to it.
fn upstream_case_review(case: &UpstreamCase) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-1", "namespace": "locked", "uid": "p-1"},
        "spec": case.spec.clone(),
    });
    if let Some(a) = &case.annotations {
        pod["metadata"]["annotations"] = a.clone();
    }
    match &case.debug {
        None => {
            pod["metadata"]["name"] = json!("web-1-debug");
            pod["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
            create("locked", "alice", &["sre"], pod)
        }
        Some(d) => {
            pod["status"] = json!({"phase": "Running"});
            let old = pod.clone();
            let list = pod["spec"]["ephemeralContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            pod["spec"]["ephemeralContainers"] = Value::Array([list, vec![d.clone()]].concat());
            review(
                "locked",
                "alice",
                &["sre"],
                "UPDATE",
                Some("ephemeralcontainers"),
                pod,
                Some(old),
            )
        }
    }
}

/// kspy's Pod Security warnings against upstream's checks, one row per check (and per
/// divergence found): the fixture names the upstream check each row follows.
#[test]
fn the_warnings_follow_upstreams_checks() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pod-security/upstream-checks.yaml");
    let text = std::fs::read_to_string(&path).expect("the fixture is readable");
    let cases: Vec<UpstreamCase> = serde_saphyr::from_str(&text).expect("the fixture parses");
    assert!(cases.len() > 20, "{} rows", cases.len());
    let e = engine(&grants("{}"));
    let mut failures = Vec::new();
    for case in &cases {
        let mut labels = vec![(ENFORCE, case.level.as_str())];
        if let Some(v) = &case.version {
            labels.push(("pod-security.kubernetes.io/enforce-version", v.as_str()));
        }
        let ns = namespace("locked", &labels);
        let lines = pod_security_lines(&judge(
            &e,
            &upstream_case_review(case),
            Endpoint::Validate,
            Some(&ns),
        ));
        let all = lines.join("\n");
        let missing: Vec<&String> = case.forbids.iter().filter(|f| !all.contains(*f)).collect();
        let extra: Vec<&String> = case.not.iter().filter(|n| all.contains(*n)).collect();
        let unexpected = case.forbids.is_empty() && !lines.is_empty();
        if !missing.is_empty() || !extra.is_empty() || unexpected {
            failures.push(format!(
                "{} ({}): missing {missing:?}, unwanted {extra:?}, got {lines:#?}",
                case.name, case.upstream
            ));
        }
        for line in &lines {
            assert!(
                line.contains(&format!("enforces Pod Security {:?}", case.level)),
                "{}: {line}",
                case.name
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `podSecurity: conform` sets `runAsNonRoot: true` on the debug container, but a pod whose
/// own securityContext says `runAsNonRoot: false` is refused by Pod Security as the pod's
/// setting (check_runAsNonRoot.go: "pod must not set securityContext.runAsNonRoot=false"),
/// whatever its containers set: `/mutate` says so rather than nothing.
#[test]
fn conform_cannot_undo_the_pods_own_run_as_non_root_false() {
    let restricted = namespace("locked", &[(ENFORCE, "restricted")]);
    let r = attach_to(debugger("d", "busybox:1.36"), |pod| {
        pod["spec"]["securityContext"] =
            json!({"runAsNonRoot": false, "seccompProfile": {"type": "RuntimeDefault"}});
    });
    let e = engine(&grants("{podSecurity: conform}"));
    let j = judge(&e, &r, Endpoint::Mutate, Some(&restricted));
    assert!(
        patch_of(&j)
            .iter()
            .any(|op| op["value"]["runAsNonRoot"] == json!(true)),
        "{:?}",
        patch_of(&j)
    );
    assert_eq!(
        pod_security_lines(&j),
        [concat!(
            r#"namespace "locked" enforces Pod Security "restricted", which forbids in pod "web-1": "#,
            "runAsNonRoot: false in the pod's securityContext; adding a container makes the API ",
            "server judge the whole pod, so it will reject the debug container unless the pod is ",
            "exempt (ask a cluster administrator for a Pod Security exemption)"
        )]
    );
}
