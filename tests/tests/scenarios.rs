//! End-to-end scenarios: the real `kspy` binary → the in-process API server → kspy's real
//! webhook (in-process, over HTTPS with the harness CA) with the policies of
//! `tests/fixtures/policies`, configured by the webhook configurations of `deploy/`.
//!
//! With `KSPY_E2E_KUBECONFIG` set they run against that cluster instead (see tests/README.md).
//! Without the `kspy` binary (`cargo build -p kspy`) they print SKIP and pass — and fail
//! when `KSPY_E2E_REQUIRE` is set, as `.ci/run` does.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kspy_e2e::scenario::Env;
use kspy_e2e::tools::{self, JsonKubectl};
use kube::Api;
use serde_json::Value;

async fn env() -> Option<Env> {
    if tools::kspy_bin().is_none() {
        tools::skip(
            "kspy binary not found next to the test executable; run `cargo build -p kspy` (or set KSPY_BIN)",
        );
        return None;
    }
    Some(Env::start().await.expect("scenario environment starts"))
}

fn ephemeral(p: &Pod) -> Vec<k8s_openapi::api::core::v1::EphemeralContainer> {
    p.spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.clone())
        .unwrap_or_default()
}

fn caps(c: &k8s_openapi::api::core::v1::EphemeralContainer) -> Vec<String> {
    c.security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.add.clone())
        .unwrap_or_default()
}

/// The (last) review `webhook` answered for `operation` on the pod `name`, as the in-process
/// server recorded it: (AdmissionReview sent, AdmissionReview received). `None` on a real
/// cluster, which keeps its reviews to itself; in process the review must exist.
fn review_of(env: &Env, webhook: &str, name: &str, operation: &str) -> Option<(Value, Value)> {
    let s = env.server()?;
    let reviews = s.reviews();
    let r = reviews
        .iter()
        .rev()
        .find(|r| {
            r.webhook == webhook
                && r.request["request"]["name"] == name
                && r.request["request"]["operation"] == operation
        })
        .unwrap_or_else(|| {
            let seen: Vec<String> = reviews
                .iter()
                .map(|r| {
                    format!(
                        "{} {} {}",
                        r.webhook, r.request["request"]["operation"], r.request["request"]["name"]
                    )
                })
                .collect();
            panic!("{webhook} never reviewed {operation} of {name:?}; reviews: {seen:?}")
        });
    let response = r.response.clone().unwrap_or_else(|| {
        panic!(
            "{webhook}'s review of {operation} {name:?} has no answer: {:?}",
            r.error
        )
    });
    Some((r.request.clone(), response))
}

/// kspy's validating review of `operation` on the pod `name` (see [`review_of`]).
fn validation_of(env: &Env, name: &str, operation: &str) -> Option<(Value, Value)> {
    review_of(env, "validate.kspy.dev", name, operation)
}

/// The reviews kspy's two webhooks were sent for the pod `name` (in process).
fn kspy_reviews_of(env: &Env, name: &str) -> Vec<kspy_e2e::admission_chain::ReviewRecord> {
    env.server()
        .map(|s| {
            s.reviews()
                .into_iter()
                .filter(|r| {
                    r.webhook.ends_with(".kspy.dev") && r.request["request"]["name"] == name
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sre_attaches_with_sys_ptrace() {
    let Some(env) = env().await else { return };
    let out = env
        .kspy(
            "alice",
            &[
                "attach",
                "web",
                "--image",
                "busybox:1.36",
                "--cap",
                "SYS_PTRACE",
                "--no-attach",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    let pod = env.pod("web").await.unwrap();
    let ecs = ephemeral(&pod);
    assert_eq!(ecs.len(), 1, "{}", out.all());
    assert!(
        caps(&ecs[0]).iter().any(|c| c == "SYS_PTRACE"),
        "{:?}",
        ecs[0]
    );
    if let Some((req, resp)) = validation_of(&env, "web", "UPDATE") {
        assert_eq!(req["request"]["userInfo"]["username"], "alice");
        assert_eq!(req["request"]["subResource"], "ephemeralcontainers");
        assert_eq!(resp["response"]["allowed"], true, "{resp}");
    }
    env.cleanup().await.unwrap();
}

/// `stderr` holds kspy's reason for refusing bob (group `dev`) SYS_PTRACE: the policy that
/// applies to him does not grant it. (On a real cluster other policies may apply beside it.)
fn assert_denied_sys_ptrace_for_bob(stderr: &str, all: &str) {
    let reason = "capability SYS_PTRACE is not granted by the policies that apply (";
    let at = stderr
        .find(reason)
        .unwrap_or_else(|| panic!("the policy's reason is shown: {all}"));
    let applied = stderr[at + reason.len()..]
        .split(')')
        .next()
        .unwrap_or_default();
    assert!(
        applied.split(", ").any(|p| p == "e2e-dev-attach"),
        "the policies that apply to bob are named: {all}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_is_denied_sys_ptrace_with_the_policy_message() {
    let Some(env) = env().await else { return };
    let out = env
        .kspy(
            "bob",
            &[
                "attach",
                "web",
                "--image",
                "busybox:1.36",
                "--cap",
                "SYS_PTRACE",
                "--no-attach",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(!out.success(), "{}", out.all());
    assert!(out.stderr.contains("denied"), "{}", out.all());
    // The policy's reason, as the webhook gave it (not only the capability the CLI was given).
    assert_denied_sys_ptrace_for_bob(&out.stderr, &out.all());
    assert!(ephemeral(&env.pod("web").await.unwrap()).is_empty());
    // The same container without the capability is fine for developers.
    let out = env
        .kspy(
            "bob",
            &[
                "attach",
                "web",
                "--image",
                "busybox:1.36",
                "--profile",
                "legacy",
                "--no-attach",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    assert_eq!(ephemeral(&env.pod("web").await.unwrap()).len(), 1);
    env.cleanup().await.unwrap();
}

/// A root debug container keeping SETUID can become its target's user and read the target's
/// Secret mounts through /proc/PID/root: the developer policy's default drops SETUID and
/// SETGID (the plain attach above passes with it), and a container that drops something else
/// instead is refused with the way out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_container_that_could_become_its_targets_user_is_refused() {
    let Some(env) = env().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let custom = dir.path().join("custom.json");
    let custom_arg = custom.to_str().unwrap().to_owned();
    // bob attaches busybox (root) as is (`legacy`), with `security_context` from a file,
    // targeting `app` by name: kspy drops a target it picked itself when the policy refuses
    // it (`kspy_attach_drops_its_own_sole_container_target_the_policy_refuses`), never one the
    // user named.
    let attach_with = |security_context: &'static str| {
        std::fs::write(&custom, security_context).unwrap();
        let args = [
            "attach",
            "web",
            "-c",
            "app",
            "--image",
            "busybox:1.36",
            "--profile",
            "legacy",
            "--custom",
            custom_arg.as_str(),
            "--no-attach",
        ];
        let env = &env;
        async move { env.kspy("bob", &args, None).await }
    };
    let out = attach_with(r#"{"securityContext": {"capabilities": {"drop": ["NET_RAW"]}}}"#)
        .await
        .unwrap();
    assert!(!out.success(), "{}", out.all());
    for part in [
        r#"mounting secret volume "creds" (mounted by container "app""#,
        r#"become the user of container "app""#,
        "drop SETUID and SETGID",
        // kspy's hint: the flag that fixes it.
        r#"a `--custom` file with {"securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["SETUID", "SETGID"]}}}"#,
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.all());
    }
    assert!(ephemeral(&env.pod("web").await.unwrap()).is_empty());
    // The hint's way out works: root, without SETUID and SETGID, and no_new_privs.
    let out = attach_with(
        r#"{"securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["SETUID", "SETGID"]}}}"#,
    )
    .await
    .unwrap();
    assert!(out.success(), "{}", out.all());
    assert_eq!(ephemeral(&env.pod("web").await.unwrap()).len(), 1);
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_injects_target_and_mounts() {
    let Some(env) = env().await else { return };
    // Two containers and no -c: the policy default (targetContainer: first) picks `app`, and
    // mountTargetVolumes: readOnly mirrors its mounts.
    let out = env
        .kspy(
            "alice",
            &["attach", "duo", "--image", "busybox:1.36", "--no-attach"],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    let ec = ephemeral(&env.pod("duo").await.unwrap())
        .pop()
        .expect("added");
    assert_eq!(ec.target_container_name.as_deref(), Some("app"));
    let mounts = ec.volume_mounts.clone().unwrap_or_default();
    let data = mounts
        .iter()
        .find(|m| m.mount_path == "/data")
        .unwrap_or_else(|| panic!("data mounted: {ec:?}"));
    assert_eq!(data.read_only, Some(true));
    assert_eq!(ec.image_pull_policy.as_deref(), Some("IfNotPresent"));
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_dry_run_is_judged_not_persisted() {
    let Some(env) = env().await else { return };
    let out = env
        .kspy(
            "alice",
            &[
                "attach",
                "web",
                "--image",
                "busybox:1.36",
                "--dry-run=server",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(
        ephemeral(&env.pod("web").await.unwrap()).is_empty(),
        "nothing persisted"
    );
    if let Some((req, resp)) = validation_of(&env, "web", "UPDATE") {
        assert_eq!(req["request"]["dryRun"], true);
        assert_eq!(resp["response"]["allowed"], true, "{resp}");
    }
    let out = env
        .kspy(
            "bob",
            &[
                "attach",
                "web",
                "--image",
                "busybox:1.36",
                "--cap",
                "SYS_ADMIN",
                "--dry-run=server",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(!out.success(), "{}", out.all());
    // The reason, as kspy's webhook gave it for the dry run.
    assert!(
        out.stderr
            .contains("capability SYS_ADMIN is not granted by the policies that apply (",),
        "{}",
        out.all()
    );
    if let Some((req, resp)) = validation_of(&env, "web", "UPDATE") {
        assert_eq!(req["request"]["userInfo"]["username"], "bob");
        assert_eq!(req["request"]["dryRun"], true);
        assert_eq!(resp["response"]["allowed"], false, "{resp}");
    }
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_strategic_patch_types() {
    let Some(env) = env().await else { return };
    for (i, pt) in ["json", "strategic", "json"].iter().enumerate() {
        let name = format!("dbg-{i}");
        let out = env
            .kspy(
                "alice",
                &[
                    "attach",
                    "web",
                    "--image",
                    "busybox:1.36",
                    "--name",
                    &name,
                    "--patch-type",
                    pt,
                    "--no-attach",
                ],
                None,
            )
            .await
            .unwrap();
        assert!(out.success(), "{pt}: {}", out.all());
        assert_eq!(
            ephemeral(&env.pod("web").await.unwrap()).len(),
            i + 1,
            "{pt}"
        );
    }
    if let Some(s) = env.server() {
        let types: Vec<String> = s
            .requests()
            .into_iter()
            // The CLI's patches only: the webhook patches an Event series of its own when
            // decisions repeat, whenever its background task gets to it.
            .filter(|r| r.method == "PATCH" && r.uri.contains("/pods/web/ephemeralcontainers"))
            .map(|r| {
                // Named in the audit log as kubectl is: kspy/VERSION (OS/ARCH).
                assert!(
                    r.user_agent.starts_with("kspy/") && r.user_agent.contains(" ("),
                    "{:?}",
                    r.user_agent
                );
                r.content_type
            })
            .collect();
        assert_eq!(
            types,
            [
                "application/json-patch+json",
                "application/strategic-merge-patch+json",
                "application/json-patch+json"
            ]
        );
    }
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_fork_and_node_per_policy() {
    let Some(env) = env().await else { return };
    let out = env
        .kspy(
            "alice",
            &[
                "copy",
                "web",
                "--to",
                "web-fork",
                "--fork",
                "--image",
                "busybox:1.36",
                "--no-attach",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    let copy = env.pod("web-fork").await.unwrap();
    assert_eq!(
        copy.metadata
            .labels
            .unwrap_or_default()
            .get("kspy.dev/debug")
            .map(String::as_str),
        Some("copy")
    );
    // kspy records who asked, as the API server named the caller (SelfSubjectReview).
    if !env.is_real() {
        assert_eq!(
            copy.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kspy.dev/requested-by"))
                .map(String::as_str),
            Some("alice"),
            "{:?}",
            copy.metadata.annotations
        );
    }
    let out = env
        .kspy(
            "bob",
            &[
                "copy",
                "web",
                "--to",
                "web-fork-2",
                "--fork",
                "--image",
                "busybox:1.36",
                "--no-attach",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(!out.success(), "{}", out.all());
    assert!(out.stderr.contains("denied"), "{}", out.all());
    // Denied as a copy no policy allows bob, not for some other failure.
    assert!(
        out.stderr.contains(r#"no DebugPolicy allows user "bob""#)
            && out
                .stderr
                .contains(&format!(r#" to copy in namespace "{}""#, env.ns)),
        "{}",
        out.all()
    );
    assert!(env.pod("web-fork-2").await.is_err());

    // The node `web` runs on (`node-1` in-process).
    let node_name = env
        .pod("web")
        .await
        .unwrap()
        .spec
        .and_then(|s| s.node_name)
        .unwrap_or_else(|| "node-1".into());
    let out = env
        .kspy(
            "alice",
            &["node", &node_name, "--image", "busybox:1.36", "--no-attach"],
            None,
        )
        .await
        .unwrap();
    if env.is_real() {
        println!("node scenario on a real cluster: {}", out.all());
    } else {
        assert!(out.success(), "{}", out.all());
        let pods: Vec<Pod> =
            kube::Api::<Pod>::namespaced(env.client("admin").await.unwrap(), &env.ns)
                .list(&Default::default())
                .await
                .unwrap()
                .items;
        let node = pods
            .iter()
            .find(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kspy.dev/debug"))
                    .map(String::as_str)
                    == Some("node")
            })
            .unwrap_or_else(|| panic!("node pod created: {}", out.all()));
        assert_eq!(
            node.spec.as_ref().unwrap().node_name.as_deref(),
            Some("node-1")
        );
        assert_eq!(
            node.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kspy.dev/requested-by"))
                .map(String::as_str),
            Some("alice"),
            "{:?}",
            node.metadata.annotations
        );
    }
    let out = env
        .kspy(
            "bob",
            &["node", &node_name, "--image", "busybox:1.36", "--no-attach"],
            None,
        )
        .await
        .unwrap();
    assert!(!out.success(), "{}", out.all());
    // Denied as node debugging no policy allows bob, not for some other failure.
    assert!(
        out.stderr.contains(r#"no DebugPolicy allows user "bob""#)
            && out
                .stderr
                .contains(&format!(r#" to debug a node in namespace "{}""#, env.ns)),
        "{}",
        out.all()
    );
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_io_round_trip() {
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip("on a real cluster: the echo shell stand-in is the harness's");
        return;
    }
    let out = env
        .kspy(
            "alice",
            &[
                "attach",
                "web",
                "-i",
                "--image",
                "busybox:1.36",
                "--name",
                "io",
                "--",
                "sh",
            ],
            Some("echo round-trip-ok\nexit\n"),
        )
        .await
        .unwrap();
    let server = env.server().unwrap();
    let diag = || {
        let reqs: Vec<String> = server
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.uri))
            .collect();
        let st = server
            .pod(&env.ns, "web")
            .and_then(|p| p.status)
            .and_then(|s| s.ephemeral_container_statuses);
        format!("{}\nwrites: {reqs:?}\nstatuses: {st:?}", out.all())
    };
    assert!(out.success(), "{}", diag());
    assert!(out.stdout.contains("round-trip-ok"), "{}", diag());
    let done = server
        .wait_for_pod(&env.ns, "web", Duration::from_secs(5), |p| {
            p.status
                .as_ref()
                .and_then(|s| s.ephemeral_container_statuses.as_ref())
                .is_some_and(|st| {
                    st.iter().any(|c| {
                        c.name == "io" && c.state.as_ref().is_some_and(|s| s.terminated.is_some())
                    })
                })
        })
        .await;
    assert!(done.is_some(), "the debug container ended with `exit`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_down_fails_closed_with_a_clear_message() {
    let Some(mut env) = env().await else { return };
    if env.is_real() {
        tools::skip("on a real cluster: the scenario stops the webhook");
        return;
    }
    env.stop_webhook().await;
    let out = env
        .kspy(
            "alice",
            &["attach", "web", "--image", "busybox:1.36", "--no-attach"],
            None,
        )
        .await
        .unwrap();
    assert!(!out.success(), "{}", out.all());
    assert!(
        out.stderr.contains("failed calling webhook"),
        "{}",
        out.all()
    );
    assert!(out.stderr.contains("mutate.kspy.dev"), "{}", out.all());
    assert!(ephemeral(&env.pod("web").await.unwrap()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_meets_the_same_webhook() {
    let Some(env) = env().await else { return };
    let Some(out) = env
        .kubectl(
            "bob",
            &["debug", "web", "--image=busybox:1.36", "--profile=general"],
            None,
        )
        .await
        .unwrap()
    else {
        tools::skip_without_kubectl("no kubectl");
        return;
    };
    assert!(!out.success(), "{}", out.all());
    assert!(
        out.stderr
            .contains(r#"admission webhook "validate.kspy.dev" denied the request"#)
            || out
                .stderr
                .contains(r#"admission webhook "mutate.kspy.dev" denied the request"#),
        "{}",
        out.all()
    );
    assert_denied_sys_ptrace_for_bob(&out.stderr, &out.all());
    let out = env
        .kubectl(
            "alice",
            &["debug", "duo", "--image=busybox:1.36", "--profile=general"],
            None,
        )
        .await
        .unwrap()
        .unwrap();
    assert!(out.success(), "{}", out.all());
    let ec = ephemeral(&env.pod("duo").await.unwrap())
        .pop()
        .expect("added");
    assert_eq!(
        ec.target_container_name.as_deref(),
        Some("app"),
        "kspy's default target applies to kubectl too"
    );
    env.cleanup().await.unwrap();
}

/// `kubectl debug --profile=general` adds SYS_PTRACE, and tracing a container is taking over
/// what it holds: aimed at a container holding SYS_ADMIN it is refused, naming that container;
/// aimed at one holding nothing more, the same request is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_a_container_is_judged_for_what_it_holds() {
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip(
            "on a real cluster: a pod holding SYS_ADMIN may be refused by its Pod Security",
        );
        env.cleanup().await.unwrap();
        return;
    }
    let mut agent = kspy_e2e::fixtures::two_container_pod(&env.ns, "agent");
    if let Some(spec) = agent.spec.as_mut() {
        spec.containers[1].security_context = Some(
            serde_json::from_value(serde_json::json!({"capabilities": {"add": ["SYS_ADMIN"]}}))
                .expect("security context"),
        );
    }
    Api::<Pod>::namespaced(env.client("admin").await.unwrap(), &env.ns)
        .create(&Default::default(), &agent)
        .await
        .expect("pod created");
    let debug = |target: &'static str| {
        let env = &env;
        async move {
            let target = format!("--target={target}");
            env.kubectl(
                "alice",
                &[
                    "debug",
                    "agent",
                    "--image=busybox:1.36",
                    "--profile=general",
                    &target,
                ],
                None,
            )
            .await
            .unwrap()
        }
    };
    let Some(out) = debug("sidecar").await else {
        tools::skip_without_kubectl("no kubectl");
        return;
    };
    assert!(!out.success(), "{}", out.all());
    // (kubectl may print the message's quotes escaped.)
    for part in [
        "capability SYS_ADMIN (held by container ",
        "sidecar",
        "whose processes SYS_PTRACE lets the debug container trace and take over) is not granted",
    ] {
        assert!(out.stderr.contains(part), "{part}\n{}", out.all());
    }
    assert!(ephemeral(&env.pod("agent").await.unwrap()).is_empty());
    let out = debug("app").await.expect("kubectl ran before");
    assert!(out.success(), "{}", out.all());
    let ec = ephemeral(&env.pod("agent").await.unwrap())
        .pop()
        .expect("added");
    assert_eq!(ec.target_container_name.as_deref(), Some("app"));
    assert_eq!(caps(&ec), ["SYS_PTRACE"]);
    env.cleanup().await.unwrap();
}

/// A pod that names its user at the pod level (as many charts do) runs a debug container as
/// that user too. kspy's `targetContainer: first` default would put it in `app`'s process
/// namespace as `app`'s own user, where it reads `app`'s Secret mount through
/// /proc/PID/root, and `/validate` (called with kspy's patch applied) would refuse what
/// `kubectl debug` never asked for: the default is not given, kubectl shows why, and the
/// debug container is added without a target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_gets_no_target_default_that_would_refuse_it() {
    let Some(env) = env().await else { return };
    let shared = with_pod_level_user(kspy_e2e::fixtures::web_pod(&env.ns, "shared-user"));
    Api::<Pod>::namespaced(env.client("admin").await.unwrap(), &env.ns)
        .create(&Default::default(), &shared)
        .await
        .expect("pod created");
    let Some(out) = env
        .kubectl(
            "bob",
            &[
                "debug",
                "shared-user",
                "--image=busybox:1.36",
                "--profile=baseline",
            ],
            None,
        )
        .await
        .unwrap()
    else {
        tools::skip_without_kubectl("no kubectl");
        return;
    };
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stderr.contains("was not given targetContainerName"),
        "{}",
        out.all()
    );
    let ec = ephemeral(&env.pod("shared-user").await.unwrap())
        .pop()
        .expect("added");
    assert_eq!(ec.target_container_name, None, "{ec:?}");
    env.cleanup().await.unwrap();
}

/// `pod` naming its user (1000) at the pod level only, as many charts do: a debug container
/// without a user of its own runs as that user too, so as any container it targets.
fn with_pod_level_user(mut pod: Pod) -> Pod {
    if let Some(spec) = pod.spec.as_mut() {
        spec.security_context = Some(
            serde_json::from_value(serde_json::json!({"runAsUser": 1000, "runAsGroup": 1000}))
                .expect("security context"),
        );
        for c in &mut spec.containers {
            c.security_context = None;
        }
    }
    pod
}

/// Namespace `shop` (team=checkout) of an in-process API server holding some pods, with
/// developer dana of team checkout, behind kspy's webhook running the shipped policies.
struct DanaInShop {
    server: kspy_e2e::apiserver::ApiServer,
    _webhook: kspy_webhook::RunningServer,
    bin: std::path::PathBuf,
}

impl DanaInShop {
    /// Starts the API server with `pods` in `shop` and kspy's webhook; `bin` is kspy.
    async fn start(bin: std::path::PathBuf, pods: Vec<Pod>) -> DanaInShop {
        let mut builder = kspy_e2e::apiserver::ApiServer::builder()
            .identity(
                kspy_e2e::identity::Identity::new("dana").groups(&["developers", "team-checkout"]),
            )
            .namespace("shop", &[("team", "checkout")]);
        for pod in pods {
            builder = builder.pod(pod);
        }
        let server = builder.start().await.expect("API server starts");
        let (webhook, _) = kspy_e2e::scenario::wire_kspy(
            &server,
            kspy_e2e::scenario::workspace_root().join("policies"),
        )
        .await
        .expect("kspy's webhook starts");
        DanaInShop {
            server,
            _webhook: webhook,
            bin,
        }
    }

    /// `kspy attach POD` as dana in `shop` with busybox, the baseline profile and no
    /// terminal, then `extra`.
    async fn attach(&self, pod: &str, extra: &[&str]) -> tools::Output {
        let kubeconfig = self.server.kubeconfig_for("dana").display().to_string();
        let mut args: Vec<String> = [
            "attach",
            "--kubeconfig",
            &kubeconfig,
            "-n",
            "shop",
            pod,
            "--image",
            "busybox:1.36",
            "--profile",
            "baseline",
            "--no-attach",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        let env = [
            ("HOME".to_string(), self.server.dir().display().to_string()),
            ("NO_COLOR".to_string(), "1".to_string()),
        ];
        tools::run(&self.bin, &args, &env, None, Duration::from_secs(60))
            .await
            .expect("kspy runs")
    }
}

/// The kspy binary, for a scenario that installs the shipped policies in process: `None`
/// (the test skipped, and said why) when the binary is not built or a real cluster is the
/// target.
fn kspy_for_shipped_policies() -> Option<std::path::PathBuf> {
    let Some(bin) = tools::kspy_bin() else {
        tools::skip("kspy binary not found next to the test executable; run `cargo build -p kspy`");
        return None;
    };
    if tools::real_cluster().is_some() {
        tools::skip("in process only: it installs the shipped policies");
        return None;
    }
    Some(bin)
}

/// `kspy attach` without `-c` on a pod of several containers whose first, `app`, the shipped
/// policy (`developer-attach`) refuses as target: `app` runs as the pod-level runAsUser, which
/// the debug container gets too, and has a Secret mount. kspy's webhook withholds its
/// `targetContainer: first` default, so kspy's own fallback to the first container was denied
/// by `/validate` — for a target the user never asked for. kspy now sends the container
/// without a target, as `kubectl debug` without `--target` is added, and says so; the server
/// dry run shows the same. A pod whose first container may be targeted still gets it, with no
/// request more than before. In process only: the shipped policies, behind the deployed
/// webhook configurations, with a developer of the namespace's team.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kspy_attach_drops_its_own_first_container_target_the_policy_refuses() {
    let Some(bin) = kspy_for_shipped_policies() else {
        return;
    };
    const NS: &str = "shop";
    let shared = with_pod_level_user(kspy_e2e::fixtures::two_container_pod(NS, "shared-duo"));
    let shop = DanaInShop::start(
        bin,
        vec![shared, kspy_e2e::fixtures::two_container_pod(NS, "duo")],
    )
    .await;
    let server = &shop.server;
    let attach = |pod: &'static str, extra: &'static [&'static str]| shop.attach(pod, extra);
    let pods = Api::<Pod>::namespaced(server.client("admin").await.expect("client"), NS);
    let note = "note: no target container was named: kspy targeted app, the pod's first \
                container, and admission webhook \"validate.kspy.dev\" refused it as target";

    // The server dry run says what the real command does: admitted without a target.
    let out = attach("shared-duo", &["--dry-run=server", "-o", "json"]).await;
    assert!(out.success(), "{}", out.all());
    assert!(out.stderr.contains(note), "{}", out.all());
    let admitted: Value = serde_json::from_str(&out.stdout).expect("-o json prints JSON");
    assert_eq!(admitted["targetContainerName"], Value::Null, "{admitted}");
    assert!(ephemeral(&pods.get("shared-duo").await.unwrap()).is_empty());

    let out = attach("shared-duo", &[]).await;
    assert!(out.success(), "{}", out.all());
    for part in [
        "was not given targetContainerName",
        note,
        "mounting secret volume \"creds\"",
        "sending the debug container without a target instead",
        "-c CONTAINER",
        "(no target container:",
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.all());
    }
    let added = ephemeral(&pods.get("shared-duo").await.unwrap());
    assert_eq!(added.len(), 1, "added once: {added:?}");
    assert_eq!(added[0].target_container_name, None, "{:?}", added[0]);

    // No regression: duo's first container may be targeted, and is, by the policy default,
    // with the probe and the write alone.
    let patches = || {
        server
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.uri.contains("/pods/duo/ephemeralcontainers"))
            .count()
    };
    let before = patches();
    let out = attach("duo", &[]).await;
    assert!(out.success(), "{}", out.all());
    assert!(
        !out.stderr.contains("refused it as target"),
        "{}",
        out.all()
    );
    assert!(out.stderr.contains("(target: app,"), "{}", out.all());
    let ec = ephemeral(&pods.get("duo").await.unwrap())
        .pop()
        .expect("added");
    assert_eq!(ec.target_container_name.as_deref(), Some("app"), "{ec:?}");
    assert_eq!(patches() - before, 2, "the dry-run probe and the write");
}

/// As `kspy_attach_drops_its_own_first_container_target_the_policy_refuses`, on a pod of ONE
/// container: kspy picks `app`, the only container, without asking anyone, and the shipped
/// policy refuses it as target (the pod-level runAsUser and the Secret mount `creds`), while
/// `kubectl debug POD --image=…` is admitted. kspy now sends the container once more without
/// a target when its own pick is denied, and says so; the server dry run the same. `-c app`,
/// named by the user, is never dropped: denied. A one-container pod whose container may be
/// targeted keeps its target, with the one PATCH as before. In process only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kspy_attach_drops_its_own_sole_container_target_the_policy_refuses() {
    let Some(bin) = kspy_for_shipped_policies() else {
        return;
    };
    const NS: &str = "shop";
    let shared = with_pod_level_user(kspy_e2e::fixtures::web_pod(NS, "shared-solo"));
    assert_eq!(
        shared.spec.as_ref().map(|s| s.containers.len()),
        Some(1),
        "one container"
    );
    let shop = DanaInShop::start(bin, vec![shared, kspy_e2e::fixtures::web_pod(NS, "solo")]).await;
    let server = &shop.server;
    let attach = |pod: &'static str, extra: &'static [&'static str]| shop.attach(pod, extra);
    let pods = Api::<Pod>::namespaced(server.client("admin").await.expect("client"), NS);
    let patches = |pod: &str| {
        let uri = format!("/pods/{pod}/ephemeralcontainers");
        server
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH" && r.uri.contains(&uri))
            .count()
    };
    let note = "note: no target container was named: kspy targeted app, the pod's only \
                container, and admission webhook \"validate.kspy.dev\" refused it as target";

    // The server dry run says what the real command does: admitted without a target.
    let out = attach("shared-solo", &["--dry-run=server", "-o", "json"]).await;
    assert!(out.success(), "{}", out.all());
    assert!(out.stderr.contains(note), "{}", out.all());
    let admitted: Value = serde_json::from_str(&out.stdout).expect("-o json prints JSON");
    assert_eq!(admitted["targetContainerName"], Value::Null, "{admitted}");
    assert!(ephemeral(&pods.get("shared-solo").await.unwrap()).is_empty());

    let before = patches("shared-solo");
    let out = attach("shared-solo", &[]).await;
    assert!(out.success(), "{}", out.all());
    for part in [
        note,
        "mounting secret volume \"creds\"",
        "sending the debug container without a target instead",
        "-c CONTAINER",
        "(no target container:",
    ] {
        assert!(out.stderr.contains(part), "{part}: {}", out.all());
    }
    let added = ephemeral(&pods.get("shared-solo").await.unwrap());
    assert_eq!(added.len(), 1, "added once: {added:?}");
    assert_eq!(added[0].target_container_name, None, "{:?}", added[0]);
    assert_eq!(
        patches("shared-solo") - before,
        3,
        "the denied write, the dry run without a target, and the write without one"
    );

    // A target the user names is never dropped: denied, nothing added, no note.
    let out = attach("shared-solo", &["-c", "app"]).await;
    assert!(!out.success(), "{}", out.all());
    assert!(
        out.stderr.contains("validate.kspy.dev") && out.stderr.contains("creds"),
        "{}",
        out.all()
    );
    assert!(
        !out.stderr.contains("refused it as target"),
        "{}",
        out.all()
    );
    assert_eq!(ephemeral(&pods.get("shared-solo").await.unwrap()).len(), 1);

    // No regression: solo's only container may be targeted, and is, with the one write.
    let before = patches("solo");
    let out = attach("solo", &[]).await;
    assert!(out.success(), "{}", out.all());
    assert!(
        !out.stderr.contains("refused it as target"),
        "{}",
        out.all()
    );
    assert!(out.stderr.contains("(target: app,"), "{}", out.all());
    let ec = ephemeral(&pods.get("solo").await.unwrap())
        .pop()
        .expect("added");
    assert_eq!(ec.target_container_name.as_deref(), Some("app"), "{ec:?}");
    assert_eq!(patches("solo") - before, 1, "the write alone");
}

/// The pod `kubectl debug web --copy-to=NAME --image=busybox:1.36` creates, built here: the
/// pod's spec plus a container named `debugger-` and five characters of kubectl's random
/// alphabet, and no kspy label.
fn kubectl_shaped_copy(web: &Pod, name: &str) -> Pod {
    let mut spec = web.spec.clone().expect("web has a spec");
    spec.node_name = None;
    spec.ephemeral_containers = None;
    spec.containers.push(k8s_openapi::api::core::v1::Container {
        name: "debugger-x7k2p".into(),
        image: Some("busybox:1.36".into()),
        stdin: Some(true),
        tty: Some(true),
        ..Default::default()
    });
    Pod {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_copy_to_is_judged_as_a_copy() {
    // The real `kubectl debug web --copy-to=NAME --image=busybox:1.36`: a copy of the pod with
    // a `debugger-xxxxx` container and no kspy label, which the deployed matchConditions route
    // to kspy, which must judge it as a debug copy: bob may not copy, alice may. In process it
    // takes a kubectl that sends pod creates as JSON (tools::json_kubectl); the pod is built
    // and created through kube-rs only where no kubectl can be used (a real cluster without
    // kubectl, or a machine without any).
    let Some(env) = env().await else { return };
    let kubectl = if env.is_real() {
        tools::kubectl()
    } else {
        match tools::json_kubectl().await {
            JsonKubectl::Found(k) => Some(k),
            JsonKubectl::NoKubectl => None,
            JsonKubectl::NoneSendsJson(why) => panic!(
                "kubectl is installed but none sends pod creates as JSON; set KSPY_E2E_KUBECTL:\n{why}"
            ),
        }
    };
    let create = |user: &'static str, name: &'static str| {
        let env = &env;
        let kubectl = kubectl.clone();
        async move {
            match kubectl {
                Some(k) => {
                    let copy_to = format!("--copy-to={name}");
                    let out = env
                        .kubectl_with(
                            &k,
                            user,
                            &["debug", "web", &copy_to, "--image=busybox:1.36"],
                            None,
                        )
                        .await
                        .expect("kubectl runs");
                    if out.success() {
                        Ok(())
                    } else {
                        Err(format!("{}: {}", k.display(), out.all()))
                    }
                }
                None => {
                    println!("no usable kubectl: the copy is created through kube-rs");
                    let web = env.pod("web").await.expect("web");
                    Api::<Pod>::namespaced(env.client(user).await.expect("client"), &env.ns)
                        .create(&Default::default(), &kubectl_shaped_copy(&web, name))
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
            }
        }
    };
    let text = create("bob", "web-bob")
        .await
        .expect_err("bob may not copy");
    assert!(
        text.contains("admission webhook") && text.contains("to copy"),
        "{text}"
    );
    assert!(env.pod("web-bob").await.is_err(), "no copy was created");
    if env.server().is_some() {
        let bob = kspy_reviews_of(&env, "web-bob");
        assert!(
            bob.iter().any(|r| r
                .response
                .as_ref()
                .is_some_and(|v| v["response"]["allowed"] == false)),
            "kspy denied bob's copy: {bob:?}"
        );
    }

    create("alice", "web-alice").await.expect("alice may copy");
    let copy = env.pod("web-alice").await.expect("the copy exists");
    let debugger = copy
        .spec
        .as_ref()
        .expect("spec")
        .containers
        .iter()
        .find(|c| c.name.starts_with("debugger-"))
        .unwrap_or_else(|| panic!("a debugger-xxxxx container: {copy:?}"));
    assert_eq!(debugger.image.as_deref(), Some("busybox:1.36"));
    if let Some(s) = env.server() {
        // In process on a machine with kubectl, the copy came from the real kubectl.
        assert!(
            kubectl.is_some() || !tools::machine_has_kubectl(),
            "kubectl is installed but was not used"
        );
        if let Some(k) = &kubectl {
            let post = s
                .requests()
                .into_iter()
                .rfind(|r| {
                    r.method == "POST"
                        && r.uri
                            .starts_with(&format!("/api/v1/namespaces/{}/pods", env.ns))
                })
                .expect("the copy was POSTed");
            assert!(
                post.user_agent.starts_with("kubectl"),
                "{}: {}",
                k.display(),
                post.user_agent
            );
            assert!(post.body.contains("web-alice"), "{}", post.body);
        }
    }
    // In process, the review itself shows it was judged (a real cluster keeps it to itself).
    if let Some((request, response)) = validation_of(&env, "web-alice", "CREATE") {
        assert_eq!(request["request"]["userInfo"]["username"], "alice");
        assert_eq!(response["response"]["allowed"], true, "{response}");
    }
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_pod_creates_never_reach_kspy() {
    // The deployed matchConditions narrow pod CREATEs to debug-looking pods: ordinary pods,
    // named or generateName'd (no name yet in mutating admission), are never sent to kspy,
    // and evaluating the conditions on them is no error (which would reject them).
    let Some(env) = env().await else { return };
    let pods: Api<Pod> = Api::namespaced(env.client("admin").await.unwrap(), &env.ns);
    let kspy_reviews = || {
        env.server()
            .map(|s| {
                s.reviews()
                    .into_iter()
                    .filter(|r| r.webhook.ends_with(".kspy.dev"))
                    .count()
            })
            .unwrap_or(0)
    };
    let before = kspy_reviews();
    pods.create(
        &Default::default(),
        &kspy_e2e::fixtures::web_pod(&env.ns, "plain"),
    )
    .await
    .expect("a plain pod is created");
    let mut generated = kspy_e2e::fixtures::web_pod(&env.ns, "");
    generated.metadata.name = None;
    generated.metadata.generate_name = Some("plain-".into());
    let generated = pods
        .create(&Default::default(), &generated)
        .await
        .expect("a plain generateName pod is created");
    assert!(
        generated
            .metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with("plain-") && n.len() == "plain-".len() + 5),
        "{:?}",
        generated.metadata.name
    );
    if let Some(s) = env.server() {
        assert_eq!(
            kspy_reviews(),
            before,
            "plain pod creates reached kspy: {:?}",
            s.reviews()
                .iter()
                .skip(before)
                .map(|r| (&r.webhook, &r.request["request"]["name"]))
                .collect::<Vec<_>>()
        );
    }

    // The kubectl-shaped copy (a debugger-xxxxx container, no label) does reach both.
    let web = env.pod("web").await.unwrap();
    Api::<Pod>::namespaced(env.client("alice").await.unwrap(), &env.ns)
        .create(&Default::default(), &kubectl_shaped_copy(&web, "shaped"))
        .await
        .expect("alice may copy");
    if env.server().is_some() {
        assert_eq!(kspy_reviews(), before + 2, "mutate and validate");
        let (_, mutated) = review_of(&env, "mutate.kspy.dev", "shaped", "CREATE").unwrap();
        assert_eq!(mutated["response"]["allowed"], true, "{mutated}");
        let (_, validated) = validation_of(&env, "shaped", "CREATE").unwrap();
        assert_eq!(validated["response"]["allowed"], true, "{validated}");
    }
    env.cleanup().await.unwrap();
}

/// The Events of `reason` regarding `pod`, waiting up to 10 s for at least `want` of them
/// (the webhook posts them in the background).
async fn events_about(env: &Env, pod: &str, reason: &str, want: usize) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(env.client("admin").await.expect("client"), &env.ns);
    let mut found = Vec::new();
    for _ in 0..100 {
        found = api
            .list(&Default::default())
            .await
            .expect("list events")
            .items
            .into_iter()
            .filter(|e| {
                e.reason.as_deref() == Some(reason)
                    && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(pod)
                    && e.reporting_controller.as_deref() == Some("kspy.dev/webhook")
            })
            .collect();
        if found.len() >= want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decisions_are_recorded_as_events_on_the_pod() {
    let Some(env) = env().await else { return };
    let attach = |cap: &'static str, extra: &'static str| {
        let mut args = vec!["attach", "web", "--image", "busybox:1.36", "--no-attach"];
        args.extend(["--cap", cap]);
        if !extra.is_empty() {
            args.push(extra);
        }
        args
    };
    // Bob's container has a fixed name, so his retry below is the same decision.
    let bob = {
        let mut args = attach("SYS_PTRACE", "");
        args.extend(["--name", "dbg-bob"]);
        args
    };
    let out = env.kspy("bob", &bob, None).await.unwrap();
    assert!(!out.success(), "{}", out.all());
    let denied = events_about(&env, "web", "DebugDenied", 1).await;
    assert_eq!(denied.len(), 1, "{denied:?}");
    let e = &denied[0];
    assert!(e.series.is_none(), "a first denial is a single Event");
    assert_eq!(e.type_.as_deref(), Some("Warning"));
    assert_eq!(e.action.as_deref(), Some("Attach"));
    let note = e.note.as_deref().unwrap_or("");
    assert!(note.starts_with("attach by bob"), "{note}");
    assert!(
        note.contains("SYS_PTRACE"),
        "the reason is in the note: {note}"
    );
    let regarding = e.regarding.as_ref().expect("regarding");
    assert_eq!(regarding.kind.as_deref(), Some("Pod"));
    assert_eq!(regarding.namespace.as_deref(), Some(env.ns.as_str()));

    // The same denial again is counted on that Event (a series), not posted as a second one.
    let out = env.kspy("bob", &bob, None).await.unwrap();
    assert!(!out.success(), "{}", out.all());
    let mut repeated = None;
    for _ in 0..100 {
        let denied = events_about(&env, "web", "DebugDenied", 1).await;
        assert_eq!(denied.len(), 1, "{denied:?}");
        if denied[0].series.is_some() {
            repeated = Some(denied[0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let repeated = repeated.expect("the repeat written as a series");
    assert_eq!(repeated.series.map(|s| s.count), Some(2));
    assert_eq!(
        repeated.metadata.name, e.metadata.name,
        "the first Event carries the count"
    );

    let out = env
        .kspy("alice", &attach("SYS_PTRACE", ""), None)
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    let allowed = events_about(&env, "web", "DebugAllowed", 1).await;
    assert_eq!(allowed.len(), 1, "{allowed:?}");
    assert_eq!(allowed[0].type_.as_deref(), Some("Normal"));
    let note = allowed[0].note.as_deref().unwrap_or("");
    assert!(note.starts_with("attach by alice"), "{note}");
    assert!(note.contains("allowed by policy"), "{note}");

    // A server-side dry run is judged but leaves no Event (sideEffects: NoneOnDryRun).
    let out = env
        .kspy("bob", &attach("SYS_ADMIN", "--dry-run=server"), None)
        .await
        .unwrap();
    assert!(!out.success(), "{}", out.all());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(events_about(&env, "web", "DebugDenied", 2).await.len(), 1);
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restricted_namespace_attach_conforms_to_pod_security() {
    // Namespace `locked` enforces Pod Security "restricted" (the harness's PodSecurity
    // admission, after kspy's mutating webhook and before the validating ones). kspy's
    // `podSecurity: conform` default gives alice's plain debug container what the level
    // requires, so the attach passes; what a default cannot fix is refused by PodSecurity.
    use kspy_e2e::apiserver::pod_security;
    use kspy_e2e::scenario::RESTRICTED_NS;
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip("on a real cluster: the restricted namespace is the harness's");
        return;
    }
    let server = env.server().expect("in process");
    let out = env
        .kspy_in(
            RESTRICTED_NS,
            "alice",
            &[
                "attach",
                "hardened",
                "--image",
                "busybox:1.36",
                "--name",
                "dbg",
                // No securityContext of the CLI's own (the default profile adds SYS_PTRACE).
                "--profile",
                "legacy",
                "--no-attach",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    let pod = server.pod(RESTRICTED_NS, "hardened").expect("stored");
    let ec = ephemeral(&pod).pop().expect("added");
    let sc =
        serde_json::to_value(ec.security_context.as_ref().expect("a securityContext")).unwrap();
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{sc}");
    assert_eq!(
        sc["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "{sc}"
    );
    assert_eq!(sc["runAsNonRoot"], true, "{sc}");
    // Without what kspy filled in, PodSecurity refuses the same pod.
    let mut bare = serde_json::to_value(&pod).unwrap();
    bare["spec"]["ephemeralContainers"][0]
        .as_object_mut()
        .unwrap()
        .remove("securityContext");
    let labels = [(
        pod_security::ENFORCE_LABEL.to_string(),
        "restricted".to_string(),
    )]
    .into();
    let refused = pod_security::admit(&labels, "hardened", &bare).expect_err("not conforming");
    assert!(
        refused.message.contains(r#"container "dbg" must set"#),
        "{}",
        refused.message
    );

    // SYS_PTRACE is granted to alice by policy, but no default can make it restricted.
    let out = env
        .kspy_in(
            RESTRICTED_NS,
            "alice",
            &[
                "attach",
                "hardened",
                "--image",
                "busybox:1.36",
                "--name",
                "ptrace",
                "--cap",
                "SYS_PTRACE",
                "--no-attach",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(!out.success(), "{}", out.all());
    // kspy's CLI recognises the API server's PodSecurity refusal and rewords it.
    assert!(
        out.stderr.contains("Pod Security admission refused")
            && out.stderr.contains(r#"unrestricted capabilities (container "ptrace" must not include "SYS_PTRACE" in securityContext.capabilities.add)"#),
        "{}",
        out.all()
    );
    // The refusal as the API server words it (the same request through kube-rs).
    let api: Api<Pod> = Api::namespaced(env.client("alice").await.unwrap(), RESTRICTED_NS);
    let patch = kube::api::Patch::Strategic(serde_json::json!({"spec": {"ephemeralContainers": [{
        "name": "ptrace", "image": "busybox:1.36",
        "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}
    }]}}));
    let err = api
        .patch_ephemeral_containers("hardened", &Default::default(), &patch)
        .await
        .expect_err("PodSecurity refuses SYS_PTRACE");
    let kube::Error::Api(status) = err else {
        panic!("an API error: {err:?}")
    };
    assert_eq!((status.code, status.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        status.message,
        r#"pods "hardened" is forbidden: violates PodSecurity "restricted:latest": unrestricted capabilities (container "ptrace" must not include "SYS_PTRACE" in securityContext.capabilities.add)"#
    );
    assert_eq!(
        ephemeral(&server.pod(RESTRICTED_NS, "hardened").unwrap()).len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attaching_to_a_windows_pod_gets_no_linux_only_fields() {
    // A pod with `spec.os.name: windows` cannot carry Linux-only securityContext fields: the
    // API server refuses the whole request. kspy's defaults (e2e-dev-attach's drop list, and
    // `podSecurity: conform` in the restricted namespace) must leave them out.
    use kspy_e2e::scenario::RESTRICTED_NS;
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip("on a real cluster: needs a Windows node");
        return;
    }
    let server = env.server().expect("in process");
    for ns in ["prod", RESTRICTED_NS] {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "win", "namespace": ns},
            "spec": {
                "os": {"name": "windows"},
                "automountServiceAccountToken": false,
                "securityContext": {"runAsNonRoot": true},
                "containers": [{"name": "app", "image": "mcr.microsoft.com/windows/nanoserver:ltsc2022"}]
            }
        }))
        .unwrap();
        server.add_pod(pod).expect("a valid Windows pod");
    }
    let attach = |ns: &'static str, user: &'static str| {
        let env = &env;
        async move {
            env.kspy_in(
                ns,
                user,
                &[
                    "attach",
                    "win",
                    "--image",
                    "busybox:1.36",
                    "--name",
                    "dbg",
                    "--profile",
                    "legacy",
                    "--no-attach",
                ],
                None,
            )
            .await
            .unwrap()
        }
    };
    let security_context = |ns: &str| {
        let pod = server.pod(ns, "win").expect("stored");
        let ec = ephemeral(&pod).pop().expect("added");
        serde_json::to_value(&ec.security_context).unwrap()
    };

    // bob's policy drops SETUID and SETGID by default, which a Windows pod cannot set.
    let out = attach("prod", "bob").await;
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stderr.contains(
            r#"the securityContext defaults capabilities were not set on container "dbg": pod "win" runs Windows"#
        ),
        "{}",
        out.all()
    );
    assert_eq!(security_context("prod"), Value::Null);

    // In the restricted namespace, conform asks a Windows container only for runAsNonRoot.
    let out = attach(RESTRICTED_NS, "alice").await;
    assert!(out.success(), "{}", out.all());
    assert_eq!(
        security_context(RESTRICTED_NS),
        serde_json::json!({"runAsNonRoot": true, "windowsOptions": {"runAsUserName": "ContainerUser"}})
    );

    // The default profile adds SYS_PTRACE, which the API server refuses in a Windows pod: the
    // CLI says why, and which profile sends nothing Linux-only.
    let out = env
        .kspy_in(
            "prod",
            "alice",
            &["attach", "win", "--image", "busybox:1.36", "--no-attach"],
            None,
        )
        .await
        .unwrap();
    assert!(!out.success(), "{}", out.all());
    assert!(
        out.stderr
            .contains("capabilities: Forbidden: cannot be set for a windows pod")
            && out
                .stderr
                .contains("hint: pod prod/win runs Windows (spec.os.name: windows)"),
        "{}",
        out.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_security_refusing_a_pod_that_fails_its_level_already_is_explained() {
    // A pod started before its namespace enforced "restricted" (here: seeded without
    // admission) fails the level itself. Adding an ephemeral container makes PodSecurity
    // judge the whole pod, so every debug container is refused, however hardened. PodSecurity
    // runs before the validating webhooks; kspy's mutating webhook, which runs before it,
    // names what in the pod is the cause, and the API server returns that warning with the
    // refusal, to kspy's CLI and to kubectl alike.
    use kspy_e2e::scenario::RESTRICTED_NS;
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip("on a real cluster: the restricted namespace is the harness's");
        return;
    }
    let server = env.server().expect("in process");
    server
        .add_pod(kspy_e2e::fixtures::web_pod(RESTRICTED_NS, "legacy"))
        .unwrap();
    let cause = r#"namespace "locked" enforces Pod Security "restricted", which forbids in pod "legacy": container "app": allowPrivilegeEscalation not set to false, running as root (runAsNonRoot must be true), capabilities not dropping ALL, no seccompProfile RuntimeDefault or Localhost; adding a container makes the API server judge the whole pod"#;
    let out = env
        .kspy_in(
            RESTRICTED_NS,
            "alice",
            &[
                "attach",
                "legacy",
                "--image",
                "busybox:1.36",
                "--name",
                "dbg",
                "--profile",
                "restricted",
                "--no-attach",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(!out.success(), "{}", out.all());
    assert!(out.stderr.contains(cause), "{}", out.all());
    // kspy's CLI words the refusal itself: no profile of the debug container helps here.
    assert!(
        out.stderr.contains(
            r#"pod legacy itself fails the level "restricted" that namespace locked enforces"#
        ) && out
            .stderr
            .contains("ask a cluster administrator for a Pod Security exemption")
            && !out.stderr.contains("hint: use `--profile restricted`"),
        "{}",
        out.all()
    );
    // Only the pod is named: the debug container itself meets the level.
    assert!(
        !out.stderr.contains(r#"forbids in container "dbg""#),
        "{}",
        out.all()
    );

    if let Some(kubectl) = env
        .kubectl(
            "alice",
            &[
                "-n",
                RESTRICTED_NS,
                "debug",
                "legacy",
                "--image",
                "busybox:1.36",
                "--profile",
                "restricted",
            ],
            None,
        )
        .await
        .unwrap()
    {
        assert!(!kubectl.success(), "{}", kubectl.all());
        assert!(
            kubectl.stderr.contains(&format!("Warning: {cause}")),
            "{}",
            kubectl.all()
        );
    }
    assert!(ephemeral(&server.pod(RESTRICTED_NS, "legacy").unwrap()).is_empty());
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_context_naming_a_missing_user_is_named_when_refused() {
    // A kubeconfig whose context names a user its `users:` lack (a typo, or a KUBECONFIG list
    // without the file that defines it): kubectl and kube-rs send requests without
    // credentials then. A default API server (--anonymous-auth=true) runs them as
    // system:anonymous and RBAC refuses them (403); one started with --anonymous-auth=false
    // refuses them as unauthenticated (401). kspy goes on as kubectl does, but warns first,
    // and its error names the context and the missing user in both cases instead of "log in
    // again" or "ask for RBAC".
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip("on a real cluster: the kubeconfig is the harness's");
        return;
    }
    let server = env.server().expect("in process");
    let strict = kspy_e2e::ApiServer::builder()
        .namespace(&env.ns, &[])
        .pod(kspy_e2e::fixtures::web_pod(&env.ns, "web"))
        .anonymous_auth(false)
        .start()
        .await
        .unwrap();
    let warning = "kspy: warning: context alice names user alise, which the kubeconfig does not \
                   define; kspy sends its requests without credentials (anonymous), as kubectl \
                   does\n";
    let missing = "kspy sent no credentials: context alice names user alise, which the \
                   kubeconfig does not define\nhint: define user alise under `users:`";
    for (s, refusal) in [
        (
            server,
            format!(
                "kspy: could not read pod {ns}/web: you are not allowed to get pods in namespace \
                 {ns}\n  pods \"web\" is forbidden: User \"system:anonymous\" cannot get resource \
                 \"pods\" in API group \"\" in the namespace \"{ns}\"\n  {missing}",
                ns = env.ns
            ),
        ),
        (
            &strict,
            format!(
                "kspy: could not read pod {}/web: the API server did not accept your \
                 credentials\n  Unauthorized\n  {missing}",
                env.ns
            ),
        ),
    ] {
        let text = std::fs::read_to_string(s.kubeconfig_for("alice")).unwrap();
        let typo = text.replace("    user: alice\n", "    user: alise\n");
        assert_ne!(typo, text, "the context names its user: {text}");
        let kubeconfig = s.dir().join("kubeconfig-missing-user");
        std::fs::write(&kubeconfig, typo).unwrap();
        let bin = tools::kspy_bin().expect("kspy");
        let args: Vec<String> = [
            "attach",
            "web",
            "--kubeconfig",
            &kubeconfig.display().to_string(),
            "-n",
            &env.ns,
            "--no-attach",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let home = vec![("HOME".to_string(), s.dir().display().to_string())];
        let out = tools::run(&bin, &args, &home, None, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(out.code, Some(1), "{}", out.all());
        assert!(out.stderr.starts_with(warning), "{}", out.all());
        assert!(out.stderr.contains(&refusal), "{}", out.all());
        assert!(ephemeral(&s.pod(&env.ns, "web").unwrap()).is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kspy_mutation_is_idempotent_when_reinvoked() {
    // deploy/ sets reinvocationPolicy: IfNeeded on mutate.kspy.dev so that kspy's defaults
    // still hold after a later mutating webhook changed the debug container. The API server
    // then calls kspy again with its own output (plus the other webhook's change); kspy
    // must leave that object as it is, or its defaults would pile up.
    let Some(env) = env().await else { return };
    let Some(server) = env.server() else {
        tools::skip("on a real cluster: the other mutating webhook is the harness's stub");
        return;
    };
    use kspy_e2e::stub_webhook::{self, StubWebhook};
    let injector = StubWebhook::start(
        server.ca(),
        std::sync::Arc::new(|req: &Value| {
            let ecs = req["object"]["spec"]["ephemeralContainers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let Some(last) = ecs.len().checked_sub(1) else {
                return stub_webhook::allow();
            };
            let env = &ecs[last]["env"];
            if env
                .as_array()
                .is_some_and(|e| e.iter().any(|v| v["name"] == "INJECTED"))
            {
                return stub_webhook::allow();
            }
            let var = serde_json::json!({"name": "INJECTED", "value": "1"});
            stub_webhook::patch(if env.is_array() {
                serde_json::json!([{"op": "add", "path": format!("/spec/ephemeralContainers/{last}/env/-"), "value": var}])
            } else {
                serde_json::json!([{"op": "add", "path": format!("/spec/ephemeralContainers/{last}/env"), "value": [var]}])
            })
        }),
    )
    .await
    .unwrap();
    // Named after kspy.dev, so called after kspy's mutating webhook.
    let yaml = format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: {{name: zz-injector}}
webhooks:
- name: inject.example.com
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {{url: "{}/inject", caBundle: {}}}
  rules:
  - {{operations: [UPDATE], apiGroups: [""], apiVersions: [v1], resources: [pods/ephemeralcontainers]}}
"#,
        injector.url,
        kspy_e2e::admission_chain::config::ca_bundle_base64(&injector.ca_pem)
    );
    let chain = kspy_e2e::AdmissionChain::from_manifests(&yaml, None).unwrap();
    server.set_admission(server.admission().and(chain));

    let out = env
        .kspy(
            "alice",
            &["attach", "duo", "--image", "busybox:1.36", "--no-attach"],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    let mutations: Vec<_> = server
        .reviews()
        .into_iter()
        .filter(|r| {
            r.webhook == "mutate.kspy.dev"
                && r.request["request"]["name"] == "duo"
                && r.request["request"]["operation"] == "UPDATE"
                // kspy's own server dry run before the write goes the same way.
                && r.request["request"]["dryRun"] == false
        })
        .collect();
    assert_eq!(
        mutations.len(),
        2,
        "called, then reinvoked after the injector: {:#?}",
        mutations
            .iter()
            .map(|r| (r.request["request"]["dryRun"].clone(), r.response.clone()))
            .collect::<Vec<_>>()
    );
    let container =
        |review: &Value| review["request"]["object"]["spec"]["ephemeralContainers"][0].clone();
    let reinvoked_with = container(&mutations[1].request);
    assert!(
        reinvoked_with.to_string().contains("INJECTED"),
        "the reinvocation sees the injector's change: {reinvoked_with}"
    );
    // kspy's second answer changed nothing: what is stored is what it was reinvoked with.
    let stored = ephemeral(&env.pod("duo").await.unwrap())
        .pop()
        .expect("added");
    assert_eq!(
        serde_json::to_value(&stored).unwrap(),
        reinvoked_with,
        "second answer: {:?}",
        mutations[1].response
    );
    assert_eq!(stored.target_container_name.as_deref(), Some("app"));
    assert_eq!(stored.image_pull_policy.as_deref(), Some("IfNotPresent"));
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_mode_policies_reach_the_user_as_warnings() {
    // A Warn-mode policy never denies: its verdict comes back from the API server as a
    // `Warning: 299 - "…"` header, which kspy shows as kubectl does — on stderr, once; a server
    // dry run puts it in its verdict.
    let Some(env) = env().await else { return };
    let warning = "policy e2e-warn-old-busybox: busybox:1.35 is deprecated for debugging; use \
                   busybox:1.36";
    let out = env
        .kspy(
            "alice",
            &[
                "attach",
                "web",
                "--image",
                "busybox:1.35",
                "--dry-run=server",
            ],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stdout
            .starts_with("admitted (server dry run, nothing was changed)"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains(&format!(
            "warnings from the API server and its admission webhooks:\n  Warning: {warning}\n"
        )),
        "the verdict carries the warning: {}",
        out.all()
    );
    assert!(
        !out.stderr.contains(warning),
        "said once, in the verdict: {}",
        out.all()
    );
    assert!(ephemeral(&env.pod("web").await.unwrap()).is_empty());

    let out = env
        .kspy(
            "alice",
            &["attach", "web", "--image", "busybox:1.35", "--no-attach"],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    assert_eq!(
        out.stderr.matches(&format!("Warning: {warning}\n")).count(),
        1,
        "{}",
        out.all()
    );
    assert_eq!(ephemeral(&env.pod("web").await.unwrap()).len(), 1);

    // Nothing to warn about: no warning line at all.
    let out = env
        .kspy(
            "alice",
            &["attach", "web", "--image", "busybox:1.36", "--no-attach"],
            None,
        )
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    assert!(!out.stderr.contains(warning), "{}", out.all());
    // A real cluster may warn of other things (its own Pod Security warn level, say).
    if !env.is_real() {
        assert!(!out.stderr.contains("Warning:"), "{}", out.all());
    }
    env.cleanup().await.unwrap();
}

/// `kspy node` on a Windows node: the pod of the default profile (host namespaces, the node's
/// `/` at `/host`, busybox) is one the API server accepts and a Windows kubelet can never
/// run, so kspy used to create it and wait until --timeout. It refuses it now, saying why and
/// what works there, with nothing created; the harness's Linux node still gets its pod.
#[tokio::test]
async fn a_windows_node_is_refused_the_linux_node_pod() {
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip("on a real cluster: needs a Windows node");
        return;
    }
    let server = env.server().expect("in process");
    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "win-1", "labels": {"kubernetes.io/hostname": "win-1",
            "kubernetes.io/os": "windows", "kubernetes.io/arch": "amd64"}},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    }))
    .unwrap();
    server.add_node(node);
    let posts = || {
        server
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.uri.contains("/pods"))
            .count()
    };
    let before = posts();
    for extra in [&[][..], &["--profile", "baseline"]] {
        let mut args = vec!["node", "win-1", "--no-attach"];
        args.extend_from_slice(extra);
        let out = env.kspy("alice", &args, None).await.unwrap();
        assert_eq!(out.code, Some(1), "{args:?}: {}", out.all());
        assert!(
            out.stderr.starts_with("kspy: node win-1 runs Windows: "),
            "{}",
            out.all()
        );
        assert!(out.stderr.contains("nothing was created"), "{}", out.all());
    }
    assert_eq!(posts(), before, "no pod was created");
    let out = env
        .kspy("alice", &["node", "node-1", "--no-attach"], None)
        .await
        .unwrap();
    assert!(out.success(), "the Linux node: {}", out.all());
    assert_eq!(posts(), before + 1);
}

/// `kspy copy --fork -c CONTAINER` where CONTAINER is an init container: a sidecar
/// (`restartPolicy: Always`) is put to sleep like any container, probes and postStart hook
/// gone; any other init container is refused before anything is created (asleep it would
/// never complete, and nothing else would start). The old code accepted it, put nothing to
/// sleep, and its note named the first container as sleeping.
#[tokio::test]
async fn fork_puts_a_sidecar_to_sleep_and_refuses_an_init_container() {
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip("in process only: seeds its own pod");
        return;
    }
    let server = env.server().expect("in process");
    let mut pod = kspy_e2e::fixtures::web_pod(&env.ns, "meshed");
    let spec = pod.spec.as_mut().expect("spec");
    spec.init_containers = Some(
        serde_json::from_value(serde_json::json!([
            {"name": "migrate", "image": "registry.example.com/shop/web:1.4.2",
             "command": ["/web", "migrate"]},
            {"name": "mesh", "image": "registry.example.com/shop/proxy:2.0",
             "restartPolicy": "Always", "args": ["--admin", "15000"],
             "startupProbe": {"tcpSocket": {"port": 15000}},
             "lifecycle": {"postStart": {"exec": {"command": ["/proxy", "wait-ready"]}}}}
        ]))
        .unwrap(),
    );
    server.add_pod(pod).expect("a valid pod");

    let fork = |to: &'static str, target: &'static str| {
        let env = &env;
        async move {
            env.kspy(
                "alice",
                &[
                    "copy",
                    "meshed",
                    "--to",
                    to,
                    "--fork",
                    "-c",
                    target,
                    "--image",
                    "busybox:1.36",
                    "--no-attach",
                ],
                None,
            )
            .await
            .unwrap()
        }
    };
    let out = fork("meshed-migrate", "migrate").await;
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert!(
        out.stderr.starts_with(
            "kspy: --fork cannot put container migrate to sleep: it is an init container of pod \
             meshed\n"
        ),
        "{}",
        out.all()
    );
    assert!(
        env.pod("meshed-migrate").await.is_err(),
        "nothing was created"
    );

    let out = fork("meshed-mesh", "mesh").await;
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stderr
            .contains("in container mesh instead of its command"),
        "{}",
        out.all()
    );
    let copy = env.pod("meshed-mesh").await.unwrap();
    let spec = copy.spec.expect("spec");
    let mesh = &spec.init_containers.as_ref().expect("init containers")[1];
    assert_eq!(
        mesh.command.as_deref(),
        Some(&["sleep".to_string(), "2147483647".to_string()][..])
    );
    assert!(
        mesh.args.is_none() && mesh.startup_probe.is_none(),
        "{mesh:?}"
    );
    assert!(mesh.lifecycle.is_none(), "{mesh:?}");
    assert_eq!(spec.containers[0].command, None, "app runs as before");
}

/// `kspy copy --keep-labels` of a pod a ReplicaSet controls: the copy has no owner but the
/// labels the ReplicaSet selects by, so the ReplicaSet would adopt it and delete a pod to get
/// back to its count, most likely the copy. kspy says so in a note; without --keep-labels the
/// copy has no labels but kspy's own, and nothing is said.
#[tokio::test]
async fn keep_labels_of_a_replicaset_pod_warns_of_adoption() {
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip("in process only: seeds its own pod");
        return;
    }
    let server = env.server().expect("in process");
    let mut pod = kspy_e2e::fixtures::web_pod(&env.ns, "web-7d9f8c6b5-x2x4q");
    pod.metadata.labels = Some(
        [
            ("app".to_string(), "web".to_string()),
            ("pod-template-hash".to_string(), "7d9f8c6b5".to_string()),
        ]
        .into(),
    );
    pod.metadata.owner_references = Some(
        serde_json::from_value(serde_json::json!([{"apiVersion": "apps/v1",
            "kind": "ReplicaSet", "name": "web-7d9f8c6b5",
            "uid": "5e1d7c3b-1111-4a2b-9c3d-aaaabbbbcccc", "controller": true,
            "blockOwnerDeletion": true}]))
        .unwrap(),
    );
    server.add_pod(pod).expect("a valid pod");
    let copy = |to: &'static str, keep: bool| {
        let env = &env;
        async move {
            let mut args = vec![
                "copy",
                "web-7d9f8c6b5-x2x4q",
                "--to",
                to,
                "--image",
                "busybox:1.36",
                "--no-attach",
            ];
            if keep {
                args.push("--keep-labels");
            }
            env.kspy("alice", &args, None).await.unwrap()
        }
    };
    let out = copy("web-kept", true).await;
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stderr.contains(
            "note: --keep-labels keeps the labels ReplicaSet web-7d9f8c6b5 selects its pods by"
        ),
        "{}",
        out.all()
    );
    let kept = env.pod("web-kept").await.unwrap();
    assert_eq!(
        kept.metadata
            .labels
            .unwrap_or_default()
            .get("pod-template-hash"),
        Some(&"7d9f8c6b5".to_string())
    );
    let out = copy("web-plain", false).await;
    assert!(out.success(), "{}", out.all());
    assert!(!out.stderr.contains("--keep-labels"), "{}", out.all());
}

/// `kspy node` on a node whose name is too long for `node-debugger-NODE-XXXXX` within a pod
/// name's 253 characters: the name is cut, keeps the random suffix, and the API server takes
/// it (a subdomain's parts have no 63-character limit).
#[tokio::test]
async fn a_long_node_name_still_gets_its_node_pod() {
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip("on a real cluster: needs a node with a 240-character name");
        return;
    }
    let server = env.server().expect("in process");
    let long = format!("{}.compute.internal", "ip-10-0-1-2".repeat(20));
    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": long, "labels": {"kubernetes.io/os": "linux"}}
    }))
    .unwrap();
    server.add_node(node);
    let out = env
        .kspy("alice", &["node", &long, "--no-attach", "-q"], None)
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    let name = out.stdout.trim();
    assert_eq!(name.len(), 253, "{name}");
    assert!(name.starts_with("node-debugger-ip-10-0-1-2"), "{name}");
    let pod = env.pod(name).await.expect("created");
    assert_eq!(
        pod.spec.and_then(|s| s.node_name).as_deref(),
        Some(long.as_str())
    );
}

/// `kspy copy` of a Windows pod (`spec.os.name: windows`): the API server refuses
/// `shareProcessNamespace` there, true or false ("cannot be set for a windows pod"), so the copy
/// leaves it unset — it used to set it, as kubectl debug --copy-to does, and no copy of a
/// Windows pod could be made with any profile. With `--profile baseline` the copy is created;
/// an explicit `--share-processes` is refused before anything is created, saying why.
#[tokio::test]
async fn a_windows_pod_can_be_copied() {
    let Some(env) = env().await else { return };
    if env.is_real() {
        tools::skip("on a real cluster: needs a Windows node");
        return;
    }
    let server = env.server().expect("in process");
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "win", "namespace": env.ns},
        "spec": {
            "os": {"name": "windows"},
            "automountServiceAccountToken": false,
            "containers": [{"name": "app",
                "image": "mcr.microsoft.com/windows/nanoserver:ltsc2022"}]
        }
    }))
    .unwrap();
    server.add_pod(pod).expect("a valid Windows pod");
    let copy = |to: &'static str, extra: &'static [&'static str]| {
        let env = &env;
        async move {
            let mut args = vec![
                "copy",
                "win",
                "--to",
                to,
                "--profile",
                "baseline",
                "--image",
                "mcr.microsoft.com/windows/nanoserver:ltsc2022",
                "--no-attach",
            ];
            args.extend_from_slice(extra);
            env.kspy("alice", &args, None).await.unwrap()
        }
    };
    let out = copy("win-copy", &[]).await;
    assert!(out.success(), "{}", out.all());
    let created = env.pod("win-copy").await.expect("the copy exists");
    assert_eq!(created.spec.and_then(|s| s.share_process_namespace), None);
    for flag in ["--share-processes", "--share-processes=false"] {
        let extra: &'static [&'static str] = if flag.ends_with("false") {
            &["--share-processes=false"]
        } else {
            &["--share-processes"]
        };
        let out = copy("win-copy-2", extra).await;
        assert_eq!(out.code, Some(1), "{flag}: {}", out.all());
        assert!(
            out.stderr.contains("runs Windows (spec.os.name: windows)"),
            "{flag}: {}",
            out.all()
        );
        assert!(env.pod("win-copy-2").await.is_err(), "nothing created");
    }
}

/// `kspy ls` against the API server as it pages (its own `continue` tokens, across namespaces
/// with `-A`), refuses (RBAC as the authorizer words it) and answers for a namespace that does
/// not exist: every debug container and debug copy is listed however small the page, a user
/// without `list pods` is told the verb and resource, and a mistyped `-n` is an error, not an
/// empty list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kspy_ls_pages_refuses_and_names_a_missing_namespace() {
    let Some(env) = env().await else { return };
    let attach = [
        "attach",
        "web",
        "--image",
        "busybox:1.36",
        "--name",
        "debugger-ls001",
        "--no-attach",
    ];
    let out = env.kspy("alice", &attach, None).await.unwrap();
    assert!(out.success(), "{}", out.all());
    let copy = [
        "copy",
        "web",
        "--to",
        "web-ls-copy",
        "--image",
        "busybox:1.36",
        "--name",
        "debugger-ls002",
        "--no-attach",
    ];
    let out = env.kspy("alice", &copy, None).await.unwrap();
    assert!(out.success(), "{}", out.all());

    let rows = |out: &kspy_e2e::tools::Output| -> Vec<(String, String, String, String)> {
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.all()));
        v.as_array()
            .expect("a list of rows")
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_string();
                (s("namespace"), s("pod"), s("kind"), s("name"))
            })
            .collect()
    };
    let ns = env.ns.clone();
    let expected = vec![
        (
            ns.clone(),
            "web".to_string(),
            "ephemeral".to_string(),
            "debugger-ls001".to_string(),
        ),
        (
            ns.clone(),
            "web-ls-copy".to_string(),
            "copy".to_string(),
            "debugger-ls002".to_string(),
        ),
    ];
    // One pod per page: the namespace's three pages, then every namespace's.
    let out = env
        .kspy("admin", &["ls", "--chunk-size", "1", "-o", "json"], None)
        .await
        .unwrap();
    assert!(out.success(), "{}", out.all());
    assert_eq!(rows(&out), expected, "{}", out.all());
    if !env.is_real() {
        let out = env
            .kspy(
                "admin",
                &["ls", "-A", "--chunk-size", "1", "-o", "json"],
                None,
            )
            .await
            .unwrap();
        assert!(out.success(), "{}", out.all());
        assert_eq!(rows(&out), expected, "{}", out.all());

        // kspy's webhook's ServiceAccount may get namespaces, not list pods.
        let out = env.kspy("kspy-webhook", &["ls"], None).await.unwrap();
        assert_eq!(out.code, Some(1), "{}", out.all());
        assert!(
            out.stderr.starts_with(&format!(
                "kspy: could not list the pods of namespace {ns}: you are not allowed to list \
                 pods in namespace {ns}\n"
            )),
            "{}",
            out.all()
        );
    }

    let out = env
        .kspy_in("no-such-ns", "admin", &["ls", "-o", "json"], None)
        .await
        .unwrap();
    assert_eq!(out.code, Some(1), "{}", out.all());
    assert_eq!(out.stdout, "", "{}", out.all());
    assert!(
        out.stderr.starts_with(
            "kspy: namespace no-such-ns does not exist (listing what kspy left in it)"
        ),
        "{}",
        out.all()
    );
    env.cleanup().await.unwrap();
}

/// tests/README.md's table of scenarios has a row for each test in this file, and none for a
/// test that is gone: a scenario added or renamed without its row fails here.
#[test]
fn the_readme_lists_every_scenario() {
    let source = include_str!("scenarios.rs");
    let mut tests: Vec<&str> = Vec::new();
    let mut attribute = false;
    for line in source.lines() {
        if line.starts_with("#[tokio::test") || line.starts_with("#[test]") {
            attribute = true;
        } else if attribute && !line.starts_with("#[") {
            let name = line
                .trim_start_matches("async ")
                .strip_prefix("fn ")
                .and_then(|rest| rest.split('(').next());
            tests.extend(name);
            attribute = false;
        }
    }
    let readme = include_str!("../README.md");
    let table = readme
        .split("## Scenarios (`tests/scenarios.rs`)")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("tests/README.md has a section on the scenarios");
    let mut rows: Vec<&str> = table
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    // This test checks the table; it is not a scenario.
    tests.retain(|t| *t != "the_readme_lists_every_scenario");
    tests.sort_unstable();
    rows.sort_unstable();
    assert!(tests.len() >= 29, "{tests:?}");
    assert_eq!(
        rows, tests,
        "tests/README.md's scenarios against tests/scenarios.rs"
    );
}
