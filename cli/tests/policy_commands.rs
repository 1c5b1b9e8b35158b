//! `kspy policy check|eval|test|explain`, run as the real binary.

use std::path::PathBuf;
use std::process::{Command, Output};

fn kspy(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kspy"))
        .args(args)
        .output()
        .expect("run kspy")
}

fn policies() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policies")
        .display()
        .to_string()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The exit code of `kspy policy COMMAND` when the policies or suites do not load: `check`
/// fails (1); `test` could not run every case (3), which a case that ran and failed (1) is not.
fn not_loaded(command: &str) -> Option<i32> {
    Some(if command == "test" { 3 } else { 1 })
}

/// Asserts that `kspy policy check` and `kspy policy test` both refuse the suites in `dir`
/// with `count` errors, each of `want` among them, and exit as for files that do not load.
fn assert_suite_errors(dir: &std::path::Path, count: usize, want: &[String]) {
    for command in ["check", "test"] {
        let out = kspy(&["policy", command, &dir.display().to_string()]);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            not_loaded(command),
            "{command}: {stderr}"
        );
        assert!(
            stderr.starts_with(&format!(
                "kspy: {count} errors in the DebugPolicyTest suites at {}\n",
                dir.display()
            )),
            "{command}: {stderr}"
        );
        for line in want {
            assert!(stderr.contains(line), "{command}: {line}\n{stderr}");
        }
    }
}

#[test]
fn check_lists_the_shipped_policies() {
    let out = kspy(&["policy", "check", &policies()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("6 policies in "), "{stdout}");
    for name in [
        "developer-attach",
        "sre-debug",
        "platform-node-debug",
        "production-reason",
    ] {
        assert!(stdout.contains(name), "{name}: {stdout}");
    }
}

/// Each error names `FILE:LINE:COLUMN` of the field it is about, as a compiler does.
#[test]
fn check_reports_a_broken_file_with_its_line_policy_and_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: sre-oops}\nspec:\n  grant:\n    capabilities: [SYS_PTRACE, NET_ADMN]\n",
    )
    .unwrap();
    let out = kspy(&["policy", "check", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr
            .contains("broken.yaml:6:32: document 1 (policy sre-oops): spec.grant.capabilities[1]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\"NET_ADMN\" is not a Linux capability"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// A field the Pod type lacks loads (a newer cluster may send it) but is named on stderr,
/// with the expression, by every command that loads policies; the shipped ones have none.
#[test]
fn check_warns_about_a_field_the_pod_type_lacks() {
    let check = kspy(&["policy", "check", &policies()]);
    assert!(check.status.success(), "{}", text(&check.stderr));
    assert_eq!(text(&check.stderr), "");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: no-host-pid}\nspec:\n  grant: {images: ['busybox:*']}\n  validations:\n    - expression: '!has(object.spec.hostPid)'\n",
    )
    .unwrap();
    let path = dir.path().display().to_string();
    for args in [
        vec!["check", &path],
        vec!["explain", "--policies", &path, "no-host-pid"],
    ] {
        let out = kspy(&[&["policy"][..], &args].concat());
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("kspy: warning: ")
                && stderr.contains(
                    "p.yaml:7:7: document 1 (policy no-host-pid): spec.validations[0].expression: \
                     object.spec has no field \"hostPid\" in Kubernetes 1.33 (did you mean \
                     \"hostPID\"?)"
                )
                && stderr.contains("\n    expression: !has(object.spec.hostPid)"),
            "{args:?}: {stderr}"
        );
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    // `test` says it too, before the cases' results.
    let dir = suites_copy();
    std::fs::write(
        dir.path().join("z-guardrail.yaml"),
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: no-host-pid}\nspec:\n  mode: Warn\n  match: {actions: [node]}\n  validations:\n    - expression: '!has(object.spec.hostPid)'\n",
    )
    .unwrap();
    let out = kspy(&["policy", "test", &dir.path().display().to_string()]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("kspy: warning: ")
            && stderr.contains("(policy no-host-pid): spec.validations[0].expression: object.spec has no field \"hostPid\""),
        "{stderr}"
    );

    // --strict, as a CI job runs them: the same output, and a warning fails the command.
    let strict_failure = "kspy: 1 warning above, and --strict fails on warnings\n\
                          hint: fix what each warning names; without --strict they are reported \
                          and do not fail\n";
    let suites = dir.path().display().to_string();
    for args in [
        vec!["check", "--strict", &path],
        vec!["test", "--strict", &suites],
    ] {
        let out = kspy(&[&["policy"][..], &args].concat());
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("kspy: warning: ") && stderr.ends_with(strict_failure),
            "{args:?}: {stderr}"
        );
        assert!(!out.stdout.is_empty(), "{args:?}");
    }
    // Without warnings --strict passes.
    for args in [
        vec!["check", "--strict", &policies()],
        vec!["test", "--strict", &policies()],
    ] {
        let out = kspy(&[&["policy"][..], &args].concat());
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stderr), "", "{args:?}");
    }
}

#[test]
fn eval_prints_the_whole_review_with_a_base64_patch() {
    let fixture = format!("{}/fixtures/attach-dev-plain.json", policies());
    let out = kspy(&[
        "policy",
        "eval",
        "--policies",
        &policies(),
        "--mutate",
        &fixture,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let review: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(
        review["response"]["uid"],
        "6b1f0a52-1c1e-4a55-9a3c-0d6e2b7f1a03"
    );
    assert_eq!(review["response"]["patchType"], "JSONPatch");
    use base64::Engine as _;
    let patch = base64::engine::general_purpose::STANDARD
        .decode(
            review["response"]["patch"]
                .as_str()
                .expect("patch is a string"),
        )
        .unwrap();
    let patch: serde_json::Value = serde_json::from_slice(&patch).unwrap();
    assert_eq!(
        patch[0]["path"],
        "/spec/ephemeralContainers/0/targetContainerName"
    );

    // A denial is still exit 0: the verdict is in the output.
    let fixture = format!("{}/fixtures/attach-dev-ptrace.json", policies());
    let out = kspy(&["policy", "eval", "--policies", &policies(), &fixture]);
    assert!(out.status.success());
    let review: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(review["response"]["allowed"], false);
    assert_eq!(review["response"]["status"]["code"], 403);
}

/// A guardrail that selects a field of what is not there (`target.name` for a debug container
/// without a target, the SRE fixture's) denies, saying why: cel 0.13 read it as `false`, and
/// `!=` let every such debug container through. A policy granting to `groups: []` (everyone,
/// as an omitted field) loads with a warning, which `check --strict` fails on.
#[test]
fn eval_denies_a_field_of_a_missing_target_and_check_warns_of_an_empty_group_list() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.yaml");
    std::fs::write(
        &file,
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: sre}\nspec:\n  match: {groups: [sre]}\n  grant: {images: ['**'], capabilities: [SYS_PTRACE], runAsRoot: true, mountVolumes: all}\n  validations:\n    - expression: \"target.name != 'vault-agent'\"\n      message: the vault agent is not to be debugged\n",
    )
    .unwrap();
    let fixture = format!("{}/fixtures/attach-sre-ptrace.json", policies());
    let path = file.display().to_string();
    let out = kspy(&["policy", "eval", "--policies", &path, &fixture]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let review: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(review["response"]["allowed"], false);
    let message = review["response"]["status"]["message"]
        .as_str()
        .unwrap_or("");
    assert!(
        message.contains(
            "policy sre: validation 1 (target.name != 'vault-agent') failed to evaluate: \
             Unexpected type: got 'null_type', want 'a map to select field \"name\" from \
             (target is null: test it first, `target == null || …`)'"
        ),
        "{message}"
    );

    std::fs::write(
        &file,
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: sre}\nspec:\n  match: {groups: []}\n  grant: {images: ['**']}\n",
    )
    .unwrap();
    let out = kspy(&["policy", "check", "--strict", &path]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("kspy: warning: ")
            && stderr.contains(
                "(policy sre): spec.match.groups: an empty list matches everyone, as an omitted \
                 field does"
            ),
        "{stderr}"
    );
}

#[test]
fn eval_refuses_bad_input_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    for (body, want) in [
        ("{not json", "the body is not JSON"),
        (
            r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1beta1","request":{}}"#,
            "unsupported apiVersion",
        ),
        (
            r#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#,
            "has no request",
        ),
    ] {
        std::fs::write(&bad, body).unwrap();
        let out = kspy(&[
            "policy",
            "eval",
            "--policies",
            &policies(),
            &bad.display().to_string(),
        ]);
        assert!(!out.status.success(), "{body}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(want), "{body}: {stderr}");
    }
    let out = kspy(&[
        "policy",
        "eval",
        "--policies",
        &policies(),
        "/nonexistent/review.json",
    ]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("cannot read /nonexistent/review.json"));
}

#[test]
fn test_runs_the_library_and_fails_on_a_failing_case() {
    let out = kspy(&["policy", "test", &policies()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(stdout.contains("RESULT"), "{stdout}");
    assert!(stdout.trim_end().ends_with(" passed, 0 failed"), "{stdout}");

    // A copy of the library with one expectation turned around must fail, naming the case.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&PathBuf::from(policies()), dir.path());
    let node = dir.path().join("node.yaml");
    let text_before = std::fs::read_to_string(&node).unwrap();
    let flipped = text_before.replacen("allowed: true", "allowed: false", 1);
    assert_ne!(text_before, flipped);
    std::fs::write(&node, flipped).unwrap();
    let out = kspy(&["policy", "test", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL platform-node-debug / a platform admin debugs a node"),
        "{stdout}"
    );
    assert!(stdout.contains("expected denied, got allowed"), "{stdout}");
    assert!(stdout.trim_end().ends_with(" passed, 1 failed"), "{stdout}");
}

#[test]
fn explain_says_who_and_what() {
    let out = kspy(&["policy", "explain", "--policies", &policies(), "sre-debug"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "\napplies to groups [sre] in namespaces except [kube-system] for [attach]\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("capabilities  SYS_PTRACE, NET_ADMIN, NET_RAW"),
        "{stdout}"
    );
    assert!(stdout.contains("\n  pod volumes   all ("), "{stdout}");
    let out = kspy(&["policy", "explain", "--policies", &policies(), "nope"]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("no policy named \"nope\""), "{stderr}");
    assert!(
        stderr.contains("the policies: developer-attach, "),
        "{stderr}"
    );
}

#[test]
fn explain_prints_yaml_spellings_and_selectors() {
    let out = kspy(&[
        "policy",
        "explain",
        "--policies",
        &policies(),
        "developer-attach",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with("developer-attach (Enforce, "),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\napplies to groups [developers] in namespaces with labels [team] for [attach]\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("\n  pod volumes   nonSecret ("), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: selected}\nspec:\n  match:\n    namespaces: [prod-*]\n    excludeNamespaces: [prod-secret]\n    namespaceSelector:\n      matchLabels: {env: production}\n      matchExpressions:\n        - {key: team, operator: In, values: [a, b]}\n        - {key: frozen, operator: DoesNotExist}\n  grant:\n    images: [busybox:*]\n    hostPaths: [/var/log, {path: /, readOnly: true}]\n",
    )
    .unwrap();
    let out = kspy(&[
        "policy",
        "explain",
        "--policies",
        &dir.path().join("p.yaml").display().to_string(),
        "selected",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains("\napplies to everyone in namespaces [prod-*] except [prod-secret] with labels [env=production,team in (a,b),!frozen]\n"),
        "{stdout}"
    );
    assert!(stdout.contains("\n  pod volumes   none\n"), "{stdout}");
    assert!(!stdout.contains("None"), "{stdout}");
    // Not root means not root by a setuid program either.
    assert!(
        stdout.contains(
            "\n  run as root   no (another user only with allowPrivilegeEscalation: false)\n"
        ),
        "{stdout}"
    );
    // The short form grants writing too, and says so.
    assert!(
        stdout.contains("\n  host path     /var/log (read-write)\n  host path     / (read-only)\n"),
        "{stdout}"
    );
}

#[test]
fn check_takes_one_file_and_refuses_nothing_to_check() {
    let file = format!("{}/sre.yaml", policies());
    let out = kspy(&["policy", "check", &file]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("2 policies in 1 file under {file}:\n")),
        "{stdout}"
    );
    assert!(
        stdout.contains("sre-debug") && stdout.contains("sre-copy"),
        "{stdout}"
    );

    // A directory without policies is a failure, not "0 policies".
    let empty = tempfile::tempdir().unwrap();
    let out = kspy(&["policy", "check", &empty.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(": no policy files (*.yaml, *.yml) under "),
        "{stderr}"
    );
    assert!(
        stderr.contains("\nhint: a policy is a YAML document with"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    let tests_only = format!("{}/namespaces.yaml", policies());
    let out = kspy(&["policy", "check", &tests_only]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains(": no DebugPolicy in "),
        "{}",
        text(&out.stderr)
    );

    let out = kspy(&["policy", "check", "/nonexistent/policies"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("kspy: /nonexistent/policies does not exist\n"),
        "{stderr}"
    );
    assert!(!stderr.contains("fix the fields"), "{stderr}");

    // A mistyped directory whose parent exists (`kspy policy check polices/`): no suites were
    // read from a path that is not there, so no suite error repeats that it is missing.
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("polices");
    let out = kspy(&["policy", "check", &missing.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with(&format!("kspy: {} does not exist\n", missing.display())),
        "{stderr}"
    );
    assert!(!stderr.contains("DebugPolicyTest suites"), "{stderr}");
    assert!(!stderr.contains("fix the suites"), "{stderr}");
}

#[test]
fn check_names_yaml_that_is_not_a_policy() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&PathBuf::from(policies()), dir.path());
    // A kustomization beside the policies (deploy/base/policies) is skipped ...
    std::fs::write(
        dir.path().join("kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n",
    )
    .unwrap();
    let out = kspy(&["policy", "check", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // ... any other kind is named.
    std::fs::write(
        dir.path().join("settings.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n",
    )
    .unwrap();
    let out = kspy(&["policy", "check", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "settings.yaml:2:1: document 1 (policy settings): kind: expected kind DebugPolicy"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("move other YAML elsewhere"), "{stderr}");
    assert!(!stderr.contains("fix the fields"), "{stderr}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `cli/tests/fixtures/policy-suites`: a policy that grants, a guardrail, a defaults-only
/// policy, and two suites that both declare the namespace `shop`.
fn suites_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy-suites")
}

/// A copy of [`suites_dir`] to change.
fn suites_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&suites_dir(), dir.path());
    dir
}

/// Replaces `from` with `to` in `file` of a [`suites_copy`]; `from` must be there.
fn replace_in(dir: &tempfile::TempDir, file: &str, from: &str, to: &str) {
    let path = dir.path().join(file);
    let before = std::fs::read_to_string(&path).unwrap();
    let after = before.replace(from, to);
    assert_ne!(before, after, "{from:?} is not in {file}");
    std::fs::write(&path, after).unwrap();
}

#[test]
fn a_namespace_declared_twice_with_other_labels_is_refused_naming_both_files() {
    // The same labels in both suites: fine.
    let out = kspy(&["policy", "test", &suites_dir().display().to_string()]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let dir = suites_copy();
    replace_in(
        &dir,
        "suite-tools.yaml",
        "labels: {env: production}",
        "labels: {env: staging}",
    );
    let out = kspy(&["policy", "test", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), not_loaded("test"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "namespace \"shop\" is declared with different labels in {0}/suite-shop.yaml \
             document 1 (labels {{env: production}}) and in {0}/suite-tools.yaml document 1 \
             (labels {{env: staging}})",
            dir.path().display()
        )),
        "{stderr}"
    );
    // Which labels apply is unknown: the cases in that namespace are not judged.
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  - not run: namespace \"shop\" is declared with different labels")
            && stdout.contains("  1  shop   ERROR   a developer")
            && stdout
                .trim_end()
                .ends_with("\n0 passed, 0 failed, 2 not run"),
        "{stdout}"
    );
}

#[test]
fn check_reads_the_test_suites_and_says_what_apiversion_it_found() {
    let out = kspy(&["policy", "check", &suites_dir().display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("\n2 DebugPolicyTest suites with 2 cases read (not run: "),
        "{stdout}"
    );

    let dir = suites_copy();
    replace_in(
        &dir,
        "suite-tools.yaml",
        "apiVersion: kspy.dev/v1alpha1",
        "apiVersion: kspy.dev/v1",
    );
    let want = format!(
        "{}/suite-tools.yaml:2:1: document 1 (suite tools): apiVersion: expected kspy.dev/v1alpha1, \
         found \"kspy.dev/v1\"",
        dir.path().display()
    );
    for command in ["check", "test"] {
        let out = kspy(&["policy", command, &dir.path().display().to_string()]);
        assert_eq!(out.status.code(), not_loaded(command), "{command}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(&want), "{command}: {stderr}");
        // check prints no listing; test runs the other suite's case.
        let stdout = text(&out.stdout);
        if command == "check" {
            assert!(stdout.is_empty(), "{stdout}");
        } else {
            assert!(
                stdout.trim_end().ends_with("\n1 passed, 0 failed"),
                "{stdout}"
            );
        }
    }
}

/// A policy that does not load stops `check` and `test`, but not before the suites' own errors
/// are reported with it: fixing one file at a time, run after run, is what this saves.
#[test]
fn a_policy_that_does_not_load_does_not_hide_the_suites_errors() {
    let dir = suites_copy();
    replace_in(
        &dir,
        "suite-tools.yaml",
        "apiVersion: kspy.dev/v1alpha1",
        "apiVersion: kspy.dev/v1",
    );
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: sre-oops}\nspec:\n  grant:\n    capabilities: [NET_ADMN]\n",
    )
    .unwrap();
    for command in ["check", "test"] {
        let out = kspy(&["policy", command, &dir.path().display().to_string()]);
        assert_eq!(out.status.code(), not_loaded(command), "{command}");
        let stderr = text(&out.stderr);
        let policy = stderr
            .find("broken.yaml:6:20: document 1 (policy sre-oops): spec.grant.capabilities[0]")
            .unwrap_or_else(|| panic!("{command}: {stderr}"));
        let suites = stderr
            .find("\n  and 1 error in the DebugPolicyTest suites there:\n    ")
            .unwrap_or_else(|| panic!("{command}: {stderr}"));
        let suite = stderr
            .find("suite-tools.yaml:2:1: document 1 (suite tools): apiVersion: expected kspy.dev/v1alpha1")
            .unwrap_or_else(|| panic!("{command}: {stderr}"));
        assert!(policy < suites && suites < suite, "{command}: {stderr}");
        assert!(
            stderr.ends_with("; fix the suites named after them too\n"),
            "{command}: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{command}");
    }
    // With the suites right, the policy's error is reported alone, as before.
    replace_in(
        &dir,
        "suite-tools.yaml",
        "apiVersion: kspy.dev/v1",
        "apiVersion: kspy.dev/v1alpha1",
    );
    let out = kspy(&["policy", "check", &dir.path().display().to_string()]);
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("suites there"), "{stderr}");
    assert!(stderr.ends_with("nothing was loaded\n"), "{stderr}");
}

#[test]
fn eval_refuses_no_policies_as_check_does_and_takes_one_file() {
    let review = suites_dir()
        .join("fixtures/attach-busybox.json")
        .display()
        .to_string();
    let empty = tempfile::tempdir().unwrap();
    let out = kspy(&[
        "policy",
        "eval",
        "--policies",
        &empty.path().display().to_string(),
        &review,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(": no policy files (*.yaml, *.yml) under "),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));

    // One file, as the hint for a missing path says: its suites declare the namespaces.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shop.yaml");
    let policies = std::fs::read_to_string(suites_dir().join("policies.yaml")).unwrap();
    let suite = std::fs::read_to_string(suites_dir().join("suite-shop.yaml")).unwrap();
    std::fs::write(&file, format!("{policies}---\n{suite}")).unwrap();
    let out = kspy(&[
        "policy",
        "eval",
        "--policies",
        &file.display().to_string(),
        &review,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");

    let out = kspy(&["policy", "eval", "--policies", "/nonexistent/p", &review]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("or one policy file"),
        "{}",
        text(&out.stderr)
    );
    // `test` takes a directory only, and its hint says so.
    let out = kspy(&["policy", "test", "/nonexistent/p"]);
    assert_eq!(out.status.code(), not_loaded("test"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("hint: give the directory that holds the policies"),
        "{stderr}"
    );
    assert!(!stderr.contains("one policy file"), "{stderr}");
}

#[test]
fn eval_refuses_a_namespace_file_of_another_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let review = format!("{}/fixtures/attach-sre-ptrace.json", policies());
    let eval = |namespace: &str| {
        let file = dir.path().join(format!("{namespace}.yaml"));
        std::fs::write(
            &file,
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n  labels: {{team: checkout}}\n"),
        )
        .unwrap();
        kspy(&[
            "policy",
            "eval",
            "--policies",
            &policies(),
            "--namespace",
            &file.display().to_string(),
            &review,
        ])
    };
    // The review is in prod-payments: team-checkout's labels would skip production's
    // guardrail.
    let out = eval("team-checkout");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "is Namespace \"team-checkout\", but the review is in namespace \"prod-payments\""
        ),
        "{stderr}"
    );
    // Its own namespace, with these labels, is judged.
    let out = eval("prod-payments");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

/// A `--namespace` file must hold one Namespace: an empty one was judged as a Namespace with
/// no labels (a denial by the wrong policies, exit 0), and two were refused with the YAML
/// reader's advice to call one of its functions.
#[test]
fn eval_refuses_a_namespace_file_without_exactly_one_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let review = format!("{}/fixtures/attach-sre-ptrace.json", policies());
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: prod-payments\n";
    for (contents, want) in [
        (
            "",
            "holds no Namespace: it is empty, or only comments".to_string(),
        ),
        (
            "# kubectl get namespace prod-payments -o yaml\n",
            "holds no Namespace".to_string(),
        ),
        (
            &format!("{namespace}---\n{namespace}"),
            "holds 2 YAML documents; --namespace takes one Namespace".to_string(),
        ),
    ] {
        let file = dir.path().join("ns.yaml");
        std::fs::write(&file, contents).unwrap();
        let out = kspy(&[
            "policy",
            "eval",
            "--policies",
            &policies(),
            "--namespace",
            &file.display().to_string(),
            &review,
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{contents:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{contents:?}: no verdict is printed");
        assert!(stderr.contains(&want), "{contents:?}: {stderr}");
        assert!(
            stderr.contains(
                "hint: --namespace takes a file of one Namespace (the review's, \"prod-payments\")"
            ),
            "{stderr}"
        );
    }
}

#[test]
fn eval_and_test_blame_an_undeclared_namespace_not_the_webhook() {
    let dir = suites_copy();
    let fixture = dir.path().join("fixtures/attach-busybox.json");
    let mut review: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    review["request"]["namespace"] = "elsewhere".into();
    let elsewhere = dir.path().join("fixtures/attach-elsewhere.json");
    std::fs::write(&elsewhere, review.to_string()).unwrap();
    let want = format!(
        "the labels of namespace \"elsewhere\" are unknown (the namespace is not declared in any \
         DebugPolicyTest spec.namespaces under {})",
        dir.path().display()
    );

    let out = kspy(&[
        "policy",
        "eval",
        "--policies",
        &dir.path().display().to_string(),
        &elsewhere.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains(&want), "{message}");
    assert!(!message.contains("webhook"), "{message}");

    std::fs::write(
        dir.path().join("suite-elsewhere.yaml"),
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicyTest\nmetadata: {name: elsewhere}\n\
         spec:\n  cases:\n    - name: undeclared\n      review: fixtures/attach-elsewhere.json\n\
         \x20     expect: {allowed: true}\n",
    )
    .unwrap();
    let out = kspy(&["policy", "test", &dir.path().display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains(&want), "{stdout}");
    assert!(!stdout.contains("webhook"), "{stdout}");
}

#[test]
fn test_failures_keep_their_details_indented_and_name_the_resolved_fixture() {
    let dir = suites_copy();
    std::fs::write(
        dir.path().join("suite-wrong.yaml"),
        r#"apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: wrong}
spec:
  cases:
    - name: expects an allow the guardrail denies
      review: fixtures/attach-busybox.json
      reviewPatch:
        - {op: remove, path: /request/object/spec/ephemeralContainers/0/env}
      expect: {allowed: true}
    - name: names a fixture that is not there
      review: fixtures/x.json
      expect: {allowed: true}
"#,
    )
    .unwrap();
    let out = kspy(&["policy", "test", &dir.path().display().to_string()]);
    // The fixture that is not there: the case did not run, which is not a failing policy.
    assert_eq!(out.status.code(), Some(3));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  wrong  FAIL    expects an allow the guardrail denies\n")
            && stdout.contains("  wrong  ERROR   names a fixture that is not there\n")
            && stdout.contains("\nERROR wrong / names a fixture that is not there (")
            && stdout
                .trim_end()
                .ends_with("\n2 passed, 1 failed, 1 not run"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n  - expected allowed, got denied: kspy denied the debug container"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\n      - container \"debugger\": policy production-reason: "),
        "{stdout}"
    );
    assert!(!stdout.contains("\n- "), "{stdout}");
    let resolved = dir.path().canonicalize().unwrap().join("fixtures/x.json");
    assert!(
        stdout.contains(&format!(
            "\n  - review \"fixtures/x.json\" ({}): ",
            resolved.display()
        )),
        "{stdout}"
    );
}

#[test]
fn duplicate_case_names_in_a_suite_are_refused() {
    let dir = suites_copy();
    let tools = dir.path().join("suite-tools.yaml");
    let before = std::fs::read_to_string(&tools).unwrap();
    let case = &before[before.find("    - name: without").unwrap()..];
    std::fs::write(&tools, format!("{before}{case}")).unwrap();
    for command in ["check", "test"] {
        let out = kspy(&["policy", command, &dir.path().display().to_string()]);
        assert_eq!(out.status.code(), not_loaded(command), "{command}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(
                "suite-tools.yaml:17:7: document 1 (suite tools, case \"without a reason the \
                 guardrail denies\"): spec.cases[1].name: \"without a reason the guardrail \
                 denies\" is already the name of spec.cases[0]"
            ),
            "{command}: {stderr}"
        );
    }
    // test, like check, ends with what to do; the first of the two cases ran, and the other
    // suite's.
    let out = kspy(&["policy", "test", &dir.path().display().to_string()]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.ends_with(
            "\nhint: fix the suites named above; the cases they name did not run, nor any case \
             of a suite whose own fields are wrong (the results of the others are above)\n"
        ),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.trim_end().ends_with("\n2 passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn explain_shows_defaults_and_message_expressions() {
    let dir = suites_dir().display().to_string();
    let out = kspy(&["policy", "explain", "--policies", &dir, "oncall-defaults"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "\ngrants nothing: it sets defaults for the debug containers it applies to\n"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("guardrail"), "{stdout}");
    for line in [
        "\n  targetContainer     none\n",
        "\n  mountTargetVolumes  readOnly\n",
        "\n  env                 ONCALL=platform, PAGER=on\n",
        "\n  securityContext     {\"runAsNonRoot\":true}\n",
        "\n  podSecurity         conform\n",
    ] {
        assert!(stdout.contains(line), "{line}: {stdout}");
    }

    let out = kspy(&["policy", "explain", "--policies", &dir, "production-reason"]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("grants nothing: a guardrail, its validations deny"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "\n  messageExpression: 'container ' + container.name + ' needs a reason in production'\n"
        ),
        "{stdout}"
    );
    assert!(!stdout.contains("(the rule)"), "{stdout}");

    let empty = tempfile::tempdir().unwrap();
    let file = empty.path().join("p.yaml");
    std::fs::write(
        &file,
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: nothing}\nspec: {}\n",
    )
    .unwrap();
    let out = kspy(&[
        "policy",
        "explain",
        "--policies",
        &file.display().to_string(),
        "nothing",
    ]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("grants nothing, checks nothing and sets no defaults: it has no effect"),
        "{stdout}"
    );
}

#[test]
fn denials_leave_defaults_only_policies_out_of_the_policies_that_apply() {
    let dir = suites_copy();
    let fixture = dir.path().join("fixtures/attach-busybox.json");
    let mut review: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    review["request"]["object"]["spec"]["ephemeralContainers"][0]["image"] = "ubuntu:24.04".into();
    let ubuntu = dir.path().join("fixtures/attach-ubuntu.json");
    std::fs::write(&ubuntu, review.to_string()).unwrap();
    let out = kspy(&[
        "policy",
        "eval",
        "--policies",
        &dir.path().display().to_string(),
        &ubuntu.display().to_string(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let message = answer["response"]["status"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.contains(
            "image docker.io/library/ubuntu:24.04 is not granted by the policies that apply \
             (team-images, production-reason);"
        ),
        "{message}"
    );
}

/// `eval` prints the answer to the review as sent, and warns when `/validate` would answer
/// otherwise after the policies' own `/mutate` patch, which the API server applies first: here
/// a `privileged` default the policy does not grant.
#[test]
fn eval_warns_when_the_policies_own_defaults_change_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let review = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../policies/fixtures/attach-dev-plain.json")
        .display()
        .to_string();
    let eval = |defaults: &str| {
        std::fs::write(
            dir.path().join("p.yaml"),
            format!(
                "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {{name: tools}}\n\
                 spec:\n  grant: {{images: ['registry.example.com/debug/**'], runAsRoot: true}}\n\
                 {defaults}"
            ),
        )
        .unwrap();
        let out = kspy(&[
            "policy",
            "eval",
            "--policies",
            &dir.path().display().to_string(),
            &review,
        ]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (answer["response"]["allowed"].clone(), text(&out.stderr))
    };

    let (allowed, stderr) = eval("  defaults:\n    securityContext: {privileged: true}\n");
    assert_eq!(allowed, true, "stdout is the answer as sent");
    assert!(
        stderr.starts_with(
            "kspy: warning: as sent the review is allowed, but after the defaults the policies \
             inject"
        ) && stderr.contains("privileged"),
        "{stderr}"
    );

    let (allowed, stderr) = eval("  defaults:\n    env: [{name: DEBUG_SESSION, value: '1'}]\n");
    assert_eq!(allowed, true);
    assert!(stderr.is_empty(), "{stderr}");
}

/// kspy under a 2 GB address-space limit: a read without end fails fast instead of taking
/// the machine's memory.
#[cfg(target_os = "linux")]
fn kspy_limited(args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2000000 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_kspy"))
        .args(args)
        .output()
        .expect("run kspy")
}

/// A device says 0 bytes beforehand: the policy file, the review and the Namespace were read
/// from /dev/zero until memory ran out. Each is now refused at its limit, naming it.
#[cfg(target_os = "linux")]
#[test]
fn policy_commands_refuse_a_device_without_reading_it_to_the_end() {
    let review = format!("{}/fixtures/attach-sre-ptrace.json", policies());
    for (args, want) in [
        (
            vec!["policy", "check", "/dev/zero"],
            "kspy: cannot read policy file /dev/zero\n  not a regular file",
        ),
        (
            vec!["policy", "explain", "--policies", "/dev/zero", "sre-debug"],
            "kspy: cannot read policy file /dev/zero\n  not a regular file",
        ),
        (
            vec!["policy", "eval", "--policies", &policies(), "/dev/zero"],
            "kspy: /dev/zero holds more than 6291456 bytes, the most the webhook reads of an \
             AdmissionReview",
        ),
        (
            vec![
                "policy",
                "eval",
                "--policies",
                &policies(),
                "--namespace",
                "/dev/zero",
                &review,
            ],
            "kspy: /dev/zero holds more than 4194304 bytes, the most kspy reads of a Namespace \
             file",
        ),
    ] {
        let out = kspy_limited(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with(want), "{args:?}: {stderr}");
    }
}

/// A review on standard input is named so, not "-".
#[test]
fn eval_names_standard_input() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kspy"))
        .args(["policy", "eval", "--policies", &policies(), "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run kspy");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("kspy ends");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("kspy: standard input is not a reviewable AdmissionReview"),
        "{stderr}"
    );
}

/// One policy file declares no namespaces: a policy selecting namespaces by label did not
/// apply, and the denial listed it as if the user were outside it. eval says why on stderr.
#[test]
fn eval_says_when_a_label_selecting_policy_did_not_apply_for_unknown_labels() {
    let review = format!("{}/fixtures/attach-dev-plain.json", policies());
    let developers = format!("{}/developers.yaml", policies());
    let out = kspy(&["policy", "eval", "--policies", &developers, &review]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "kspy: warning: the labels of namespace \"team-checkout\" are unknown (no \
             DebugPolicyTest under {developers} declares it in spec.namespaces), so \
             developer-attach selects namespaces by label and did not apply; declare the \
             namespace with its labels in a DebugPolicyTest's spec.namespaces beside the \
             policies, or give --namespace FILE\n"
        )
    );
    // Labels known, from the suites or from --namespace: nothing to say.
    let out = kspy(&["policy", "eval", "--policies", &policies(), &review]);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let dir = tempfile::tempdir().unwrap();
    let namespace = dir.path().join("ns.yaml");
    std::fs::write(
        &namespace,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-checkout, labels: {team: checkout}}\n",
    )
    .unwrap();
    let out = kspy(&[
        "policy",
        "eval",
        "--policies",
        &developers,
        "--namespace",
        &namespace.display().to_string(),
        &review,
    ]);
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["response"]["allowed"], true, "{answer}");
}

/// A condition or check reads `variables.NAME`: explain shows what each variable is (it
/// showed `when prod: variables.isProd` and nothing of isProd).
#[test]
fn explain_shows_the_variables_conditions_and_checks_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("prod.yaml");
    std::fs::write(
        &file,
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: prod-only}\nspec:\n\
         \x20 variables:\n\
         \x20   - {name: isProd, expression: \"namespaceObject.metadata.name.startsWith('prod')\"}\n\
         \x20 conditions:\n\
         \x20   - {name: prod, expression: variables.isProd}\n\
         \x20 validations:\n\
         \x20   - {expression: \"has(container.image)\"}\n",
    )
    .unwrap();
    let out = kspy(&[
        "policy",
        "explain",
        "--policies",
        &file.display().to_string(),
        "prod-only",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.contains(
            "applies to everyone\n  where variables.isProd = \
             namespaceObject.metadata.name.startsWith('prod')\n  when prod: variables.isProd\n"
        ),
        "{stdout}"
    );
}

/// `cli/tests/fixtures/broken-suites/suite-broken.yaml`, copied into a copy of
/// [`suites_dir`]: four mistakes in two suites.
fn with_broken_suites() -> tempfile::TempDir {
    let dir = suites_copy();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/broken-suites/suite-broken.yaml"),
        dir.path().join("suite-broken.yaml"),
    )
    .unwrap();
    dir
}

/// check and test stopped at the first suite error, and named no suite or case: each is
/// reported, with its file, suite, case and field. test still runs the cases that read.
#[test]
fn check_and_test_report_every_suite_error_and_test_runs_the_cases_that_read() {
    let dir = with_broken_suites();
    let file = dir.path().join("suite-broken.yaml").display().to_string();
    let want = [
        format!(
            "\n  {file}:8:7: document 1 (suite broken, case \"no expectation\"): spec.cases[0]: \
             missing field `expect`\n"
        ),
        format!(
            "\n  {file}:13:7: document 1 (suite broken, case \"reads and runs\"): spec.cases[2].name: \
             \"reads and runs\" is already the name of spec.cases[1]"
        ),
        format!(
            "\n  {file}:21:3: document 2 (suite misspelled): spec.namspaces: unknown field \
             `namspaces`"
        ),
        format!(
            "\n  {file}:25:16: document 2 (suite misspelled, case \"not a boolean\"): \
             spec.cases[0].expect.allowed: invalid type: string \"yes\", expected a boolean\n"
        ),
    ];
    assert_suite_errors(dir.path(), 4, &want);
    // The two good suites' cases and the first "reads and runs" ran; the misspelled suite's
    // did not.
    let out = kspy(&["policy", "test", &dir.path().display().to_string()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  broken  pass    reads and runs\n")
            && stdout.contains("  shop    pass    a developer")
            && stdout.contains("  tools   pass    without a reason")
            && !stdout.contains("not a boolean")
            && stdout.trim_end().ends_with("\n3 passed, 0 failed"),
        "{stdout}"
    );
}

/// eval warned when a label-selecting policy did not apply for a namespace no suite declares;
/// test said nothing, and such a case passed for the unknown labels alone. It warns now, on
/// stderr, naming suite, case and file; pass or fail is unchanged.
#[test]
fn test_warns_when_a_case_is_judged_without_its_namespaces_labels() {
    let dir = suites_copy();
    let suite = dir.path().join("suite-elsewhere.yaml");
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/undeclared-namespace/suite-elsewhere.yaml"),
        &suite,
    )
    .unwrap();
    let out = kspy(&["policy", "test", &dir.path().display().to_string()]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.trim_end().ends_with("\n3 passed, 0 failed"),
        "{stdout}"
    );
    assert_eq!(
        stderr,
        format!(
            "kspy: warning: elsewhere / without a reason in an undeclared namespace ({}): the \
             labels of namespace \"elsewhere\" are unknown (no DebugPolicyTest beside the \
             policies declares it in spec.namespaces), so production-reason selects namespaces \
             by label and denied the request without checking its validations; declare the \
             namespace with its labels in a DebugPolicyTest's spec.namespaces, and the case is \
             judged as the cluster would judge it\n",
            suite.display()
        )
    );
    // Declared, the namespace's labels are known: nothing to say.
    let out = kspy(&["policy", "test", &suites_dir().display().to_string()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    // eval says the same of a guardrail (it said that one "did not apply", though it denied).
    let fixture = dir.path().join("fixtures/attach-busybox.json");
    let mut review: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fixture).unwrap()).unwrap();
    review["request"]["namespace"] = "elsewhere".into();
    std::fs::write(&fixture, review.to_string()).unwrap();
    let out = kspy(&[
        "policy",
        "eval",
        "--policies",
        &dir.path().display().to_string(),
        &fixture.display().to_string(),
    ]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "), so production-reason selects namespaces by label and denied the request \
             without checking its validations; declare"
        ),
        "{stderr}"
    );
}

/// check read the suites but not the fixtures their cases name: a missing fixture, one that
/// is not JSON or not an AdmissionReview, and a reviewPatch that does not apply passed check
/// and failed only under test. check names each (file, suite, case, field and path), without
/// running a case.
#[test]
fn check_names_review_fixtures_that_are_missing_or_do_not_read() {
    let dir = suites_copy();
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken-fixtures"),
        dir.path(),
    );
    let out = kspy(&["policy", "check", &dir.path().display().to_string()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let suite = dir.path().join("suite-fixtures.yaml").display().to_string();
    let fixtures = dir.path().canonicalize().unwrap().join("fixtures");
    let fixtures = fixtures.display();
    let want = [
        format!(
            "\n  {suite}:9:7: document 1 (suite fixtures, case \"a fixture that is not there\"): \
             spec.cases[0].review: review \"fixtures/missing.json\" ({fixtures}/missing.json): "
        ),
        format!(
            "\n  {suite}:12:7: document 1 (suite fixtures, case \"a fixture that is not JSON\"): \
             spec.cases[1].review: {fixtures}/not-json.json: not JSON: "
        ),
        format!(
            "\n  {suite}:15:7: document 1 (suite fixtures, case \"a fixture that is not an \
             AdmissionReview\"): spec.cases[2].review: {fixtures}/not-a-review.json: the \
             AdmissionReview has no request\n"
        ),
        format!(
            "\n  {suite}:19:7: document 1 (suite fixtures, case \"a patch that does not apply to its \
             fixture\"): spec.cases[3].reviewPatch: reviewPatch does not apply to \
             {fixtures}/attach-busybox.json: "
        ),
    ];
    assert!(
        stderr.starts_with(&format!(
            "kspy: 4 errors in the DebugPolicyTest suites at {}\n",
            dir.path().display()
        )),
        "{stderr}"
    );
    for line in &want {
        assert!(stderr.contains(line), "{line}\n{stderr}");
    }
}

/// Suites that could not fail passed: a suite without cases (or namespaces), a case with an
/// empty name (a blank line in the table), an empty `messageContains` text (in every
/// message), and `messageExcludes` on an allowed request (which has no message to search).
/// Each is a suite error now, named, from `check` and `test` alike, exit 1; the good suites'
/// cases still run, and a suite of namespaces alone still reads.
#[test]
fn suites_and_cases_that_check_nothing_are_refused() {
    let dir = suites_copy();
    std::fs::write(
        dir.path().join("suite-vacuous.yaml"),
        r#"apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: forgotten}
spec: {}
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: emptied}
spec:
  cases: []
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: only-namespaces}
spec:
  namespaces: [{name: elsewhere}]
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: vacuous}
spec:
  cases:
    - name: ""
      review: fixtures/attach-busybox.json
      expect: {allowed: false}
    - name: an empty text is in every message
      review: fixtures/attach-busybox.json
      expect: {allowed: false, messageContains: [""]}
    - name: an allowed request has no message to exclude from
      review: fixtures/attach-busybox.json
      expect: {allowed: true, messageExcludes: [SYS_ADMIN]}
"#,
    )
    .unwrap();
    let file = dir.path().join("suite-vacuous.yaml").display().to_string();
    let want = [
        format!(
            "\n  {file}:4:1: document 1 (suite forgotten): spec.cases: the suite lists no cases and \
             declares no namespaces, so it tests nothing"
        ),
        format!(
            "\n  {file}:10:3: document 2 (suite emptied): spec.cases: the suite lists no cases"
        ),
        format!(
            "\n  {file}:23:7: document 4 (suite vacuous): spec.cases[0].name: the name is empty"
        ),
        format!(
            "\n  {file}:28:50: document 4 (suite vacuous, case \"an empty text is in every \
             message\"): spec.cases[1].expect.messageContains[0]: the text is empty: every \
             message contains it, so it checks nothing"
        ),
        format!(
            "\n  {file}:31:31: document 4 (suite vacuous, case \"an allowed request has no message \
             to exclude from\"): spec.cases[2].expect.messageExcludes: an allowed request has \
             no denial message, so messageExcludes is never checked"
        ),
    ];
    assert_suite_errors(dir.path(), 5, &want);
    let out = kspy(&["policy", "test", &dir.path().display().to_string()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.trim_end().ends_with("\n2 passed, 0 failed"),
        "{stdout}"
    );
}

/// A file that is not YAML was reported twice by `check` and `test` (once as a policy error,
/// again as a suite error), its snippet headed `<input>` rather than the file, and a key
/// written twice was told to "set DuplicateKeyPolicy in Options", which only the program
/// reading the file can. Now it is said once, under the file's name, in a policy author's terms.
#[test]
fn a_file_that_is_not_yaml_is_reported_once_under_its_own_name() {
    let dir = suites_copy();
    replace_in(
        &dir,
        "suite-tools.yaml",
        "        allowed: false\n",
        "        allowed: false\n        allowed: true\n",
    );
    let file = dir.path().join("suite-tools.yaml").display().to_string();
    for command in ["check", "test"] {
        let out = kspy(&["policy", command, &dir.path().display().to_string()]);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            not_loaded(command),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "\n  {file}: not valid YAML: error: line 16 column 9: the key `allowed` appears \
                 twice in one mapping, and a policy file says each key once: merge the two, or \
                 remove one\n"
            )),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("--> {file}:16:9\n")),
            "{command}: {stderr}"
        );
        assert_eq!(
            stderr.matches("not valid YAML").count(),
            1,
            "{command}: {stderr}"
        );
        assert!(
            !stderr.contains("<input>") && !stderr.contains("DuplicateKeyPolicy"),
            "{command}: {stderr}"
        );
    }
}

/// `kspy policy test` exited 1 both when a case failed and when nothing could run (a policy
/// that does not load, a broken suite, no directory), so a CI job could not tell a broken file
/// from a broken policy. A failed case is 1; not every case run is 3.
#[test]
fn test_exit_code_tells_a_failing_case_from_files_that_do_not_load() {
    let code = |dir: &std::path::Path| {
        kspy(&["policy", "test", &dir.display().to_string()])
            .status
            .code()
    };
    // A case that runs and fails.
    let failing = suites_copy();
    replace_in(
        &failing,
        "suite-tools.yaml",
        "allowed: false",
        "allowed: true",
    );
    assert_eq!(code(failing.path()), Some(1));
    // A policy that does not load.
    let broken = suites_copy();
    replace_in(
        &broken,
        "policies.yaml",
        "kind: DebugPolicy\n",
        "kind: DebugPolicy\n  x: [\n",
    );
    assert_eq!(code(broken.path()), Some(3));
    // A suite that does not read, beside a case that fails: not every case ran.
    replace_in(&failing, "suite-shop.yaml", "expect:", "expectt:");
    assert_eq!(code(failing.path()), Some(3));
    // No directory at all.
    assert_eq!(code(&failing.path().join("nope")), Some(3));
}

/// Two suites of one name reported their cases as `SUITE / CASE` alike, so a failure could not
/// be told from its namesake's (and two documents of one file not even by the file). The
/// second is refused, naming the first and the line of its name, and its cases do not run; the
/// first's do.
#[test]
fn two_suites_of_one_name_are_refused_naming_the_first() {
    let dir = suites_copy();
    replace_in(
        &dir,
        "suite-tools.yaml",
        "metadata: {name: tools}",
        "metadata: {name: shop}",
    );
    let first = dir.path().join("suite-shop.yaml").display().to_string();
    let second = dir.path().join("suite-tools.yaml").display().to_string();
    for command in ["check", "test"] {
        let out = kspy(&["policy", command, &dir.path().display().to_string()]);
        let stderr = text(&out.stderr);
        assert_eq!(
            out.status.code(),
            not_loaded(command),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "\n  {second}:4:12: document 1 (suite shop): metadata.name: a suite of this name is \
                 already defined in {first}:3:12 document 1; results are reported by suite and case \
                 name, so give each suite its own name\n"
            )),
            "{command}: {stderr}"
        );
    }
    let out = kspy(&["policy", "test", &dir.path().display().to_string()]);
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("  shop   pass    a developer")
            && !stdout.contains("without a reason")
            && stdout.trim_end().ends_with("\n1 passed, 0 failed"),
        "{stdout}"
    );
}

/// A suite's field errors spoke serde's Rust: `expected struct TestCase`, a `.` for a field
/// when the document lacks `metadata`, and an unknown field without the name it was meant to
/// be, where the policy loader says "did you mean". They say it as the loader does now.
#[test]
fn suite_errors_speak_the_suite_authors_terms() {
    let dir = suites_copy();
    std::fs::write(
        dir.path().join("suite-terms.yaml"),
        r#"apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
spec:
  cases: []
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: terms}
spec:
  cases:
    - a case written as a string
    - name: a misspelled expectation
      review: fixtures/attach-busybox.json
      expect: {allowed: false, messageContain: [reason]}
    - name: an unquoted no
      review: fixtures/attach-busybox.json
      expect: {allowed: false, messageContains: [no]}
"#,
    )
    .unwrap();
    let file = dir.path().join("suite-terms.yaml").display().to_string();
    let want = [
        format!("\n  {file}:1:1: document 1: missing field `metadata`\n"),
        format!(
            "\n  {file}:11:7: document 2 (suite terms): spec.cases[0]: invalid type: string \"a case \
             written as a string\", expected a case: a mapping with name, review and expect\n"
        ),
        format!(
            "\n  {file}:14:32: document 2 (suite terms, case \"a misspelled expectation\"): \
             spec.cases[1].expect.messageContain: unknown field `messageContain` (did you mean \
             `messageContains`?), expected one of"
        ),
        format!(
            "\n  {file}:17:50: document 2 (suite terms, case \"an unquoted no\"): \
             spec.cases[2].expect.messageContains[0]: invalid type: boolean `false`, expected a \
             string; YAML reads unquoted yes, no, on, off, y, n, true and false as booleans: \
             quote the value (\"no\")\n"
        ),
    ];
    let out = kspy(&["policy", "check", &dir.path().display().to_string()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for line in &want {
        assert!(stderr.contains(line), "{line}\n{stderr}");
    }
    assert!(!stderr.contains("struct "), "{stderr}");
}

/// A CEL expression written over several lines (a YAML block scalar) was shown with its
/// continuation lines at the report's outer indentation, as if they were lines of their own,
/// and a `|` scalar's final newline placed a syntax error at its end on a line after the last
/// one shown. The lines now stay under `expression:`, and the error on the last of them.
#[test]
fn a_multi_line_expression_stays_together_in_its_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        r#"apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: pinned}
spec:
  validations:
    - expression: |
        container.image != '' &&
        container.image.contains('@sha256:' &&
        true
      message: pin the image
"#,
    )
    .unwrap();
    let out = kspy(&["policy", "check", &dir.path().display().to_string()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "spec.validations[0].expression: syntax error at line 3, column 5: Syntax error: \
             missing ')' at '<EOF>'\n      expression: container.image != '' &&\n                  \
             container.image.contains('@sha256:' &&\n                  true\nhint: "
        ),
        "{stderr}"
    );
}

/// A review that is no debug request (here an attach fixture whose object lacks the new
/// ephemeral container) is allowed without any policy consulted: a case expecting it allowed
/// passed whatever the policies said, and eval's answer (`allowed: true`, no annotations) did
/// not say no policy decided. test warns (and --strict fails) unless the case says
/// `policies: []`; eval says so on stderr.
#[test]
fn a_review_that_is_no_debug_request_is_named_as_checking_no_policy() {
    let dir = suites_copy();
    std::fs::write(
        dir.path().join("suite-plain.yaml"),
        r#"apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: plain}
spec:
  cases:
    - name: the new container was left out of the object
      review: fixtures/attach-busybox.json
      reviewPatch:
        - {op: remove, path: /request/object/spec/ephemeralContainers}
      expect: {allowed: true}
"#,
    )
    .unwrap();
    let path = dir.path().display().to_string();
    let out = kspy(&["policy", "test", &path]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("kspy: warning: plain / the new container was left out of the object (",)
            && stderr.contains(
                "): the review adds no debug container (no new ephemeral container in its object, \
             no debug copy or node pod), so kspy allows it without consulting any policy and the \
             case passes whatever the policies say"
            ),
        "{stderr}"
    );
    let out = kspy(&["policy", "test", "--strict", &path]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // Saying what the case checks silences it.
    replace_in(
        &dir,
        "suite-plain.yaml",
        "{allowed: true}",
        "{allowed: true, policies: []}",
    );
    let out = kspy(&["policy", "test", "--strict", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // eval on the shipped plain pod.
    let out = kspy(&[
        "policy",
        "eval",
        "--policies",
        &policies(),
        &format!("{}/fixtures/create-plain-pod.json", policies()),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "note: the review adds no debug container (no new ephemeral container in its \
             object, no debug copy or node pod), so kspy allows it without consulting any policy"
        ),
        "{stderr}"
    );
}

/// A CEL expression the CEL library would panic on is a policy's evaluation error, which
/// denies, named with its policy and expression, and no panic text reaches stderr: kube-cel's
/// `format` panicked on a precision past 65535 (now refused before it is called), and cel's
/// `-` panics on the one int it cannot negate (caught, and the panic hook kept quiet).
/// `kspy policy eval` and `kspy policy test` printed "thread 'main' panicked at …" before.
#[test]
fn eval_and_test_name_the_expression_the_cel_library_fails_on_without_panic_text() {
    let cases = [
        (
            "'%.99999f'.format([1.0]) != ''",
            "the precision of a %.Nf clause is at most 65535, and this format string asks for \
             99999",
        ),
        (
            "-(-9223372036854775808) > 0",
            "the CEL library failed on it",
        ),
    ];
    for (expression, says) in cases {
        let dir = suites_copy();
        replace_in(
            &dir,
            "policies.yaml",
            "has(container.env) && container.env.exists(e, e.name == 'KSPY_REASON')",
            &format!("{expression} && has(container.env)"),
        );
        let path = dir.path().display().to_string();
        let review = dir.path().join("fixtures/attach-busybox.json");
        let out = kspy(&[
            "policy",
            "eval",
            "--policies",
            &path,
            &review.display().to_string(),
        ]);
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{expression}: {stderr}");
        assert!(!stderr.contains("panicked"), "{expression}: {stderr}");
        let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(answer["response"]["allowed"], false, "{expression}");
        let message = answer["response"]["status"]["message"]
            .as_str()
            .unwrap_or("");
        assert!(
            message.contains(&format!(
                "policy production-reason: validation 1 ({expression} && has(container.env)) \
                 failed to evaluate: "
            )) && message.contains(says),
            "{expression}: {message}"
        );

        let out = kspy(&["policy", "test", &path]);
        let stderr = text(&out.stderr);
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{expression}: {stdout}{stderr}");
        assert!(!stderr.contains("panicked"), "{expression}: {stderr}");
        assert!(stdout.contains(says), "{expression}: {stdout}");
    }
}

/// A `defaults.imagePullPolicy` never applies in a cluster (the API server sets the field
/// before webhooks run): `check` says so with its line and passes, `--strict` fails on it, and
/// the flag the warning points to is one `kspy attach` has.
#[test]
fn check_warns_that_an_image_pull_policy_default_never_applies() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: pulls}\nspec:\n  grant: {images: ['busybox:*']}\n  defaults:\n    imagePullPolicy: IfNotPresent\n",
    )
    .unwrap();
    let path = dir.path().display().to_string();
    let out = kspy(&["policy", "check", &path]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with("kspy: warning: ")
            && stderr.contains(
                "p.yaml:7:5: document 1 (policy pulls): spec.defaults.imagePullPolicy: \
                 IfNotPresent never applies in a cluster"
            )
            && stderr.contains("`kspy attach --image-pull-policy IfNotPresent`"),
        "{stderr}"
    );
    let out = kspy(&["policy", "check", "--strict", &path]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let help = text(&kspy(&["attach", "--help"]).stdout);
    assert!(help.contains("--image-pull-policy"), "{help}");
}

/// `kspy policy check` placed a CEL syntax error at its `expression:` field, leaving the
/// author of a block of several lines to count down to "line 3, column 5" of the expression.
/// It names the line and column in the file (`FILE:LINE:COLUMN`, where an editor jumps):
/// here the end of the `|` block's third line, where the parser finds the `)` missing.
#[test]
fn check_places_a_cel_syntax_error_where_it_is_in_the_file() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cel-error-in-block");
    let out = kspy(&["policy", "check", &dir.display().to_string()]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:13:13: document 1 (policy pinned): spec.validations[0].expression: syntax error \
             at line 3, column 5: Syntax error: missing ')' at '<EOF>'\n",
            dir.join("pinned.yaml").display()
        )),
        "{stderr}"
    );
}
