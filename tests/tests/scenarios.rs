//! End-to-end scenarios: the real `kspy` binary → the in-process API server → kspy's real
//! webhook (in-process, over HTTPS with the harness CA) with the policies of
//! `tests/fixtures/policies`, configured by the webhook configurations of `deploy/`.
//!
//! With `KSPY_E2E_KUBECONFIG` set they run against that cluster instead (see tests/README.md).
//! Without the `kspy` binary (`cargo build -p kspy`) they print SKIP and pass.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kspy_e2e::scenario::Env;
use kspy_e2e::tools;
use kube::Api;
use serde_json::Value;

async fn env() -> Option<Env> {
    if tools::kspy_bin().is_none() {
        println!(
            "SKIP: kspy binary not found next to the test executable; run `cargo build -p kspy` (or set KSPY_BIN)"
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

/// The validating review kspy's webhook answered last (in-process only).
fn last_validation(env: &Env) -> Option<(Value, Value)> {
    let s = env.server()?;
    let r = s
        .reviews()
        .into_iter()
        .rev()
        .find(|r| r.webhook == "validate.kspy.dev")?;
    Some((r.request, r.response.unwrap_or(Value::Null)))
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
    if let Some((req, resp)) = last_validation(&env) {
        assert_eq!(req["request"]["userInfo"]["username"], "alice");
        assert_eq!(resp["response"]["allowed"], true);
    }
    env.cleanup().await.unwrap();
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
    assert!(
        out.stderr.contains("SYS_PTRACE"),
        "the reason names the capability: {}",
        out.all()
    );
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
    if let Some((req, _)) = last_validation(&env) {
        assert_eq!(req["request"]["dryRun"], true);
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
    assert!(out.stderr.contains("SYS_ADMIN"), "{}", out.all());
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
            .map(|r| r.content_type)
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
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_io_round_trip() {
    let Some(env) = env().await else { return };
    if env.is_real() {
        println!("SKIP on a real cluster: the echo shell stand-in is the harness's");
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
        println!("SKIP on a real cluster: the scenario stops the webhook");
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
        println!("SKIP: no kubectl");
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
    assert!(out.stderr.contains("SYS_PTRACE"), "{}", out.all());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_copy_to_is_judged_as_a_copy() {
    // The pod `kubectl debug web --copy-to=NAME --image=busybox:1.36` creates (kubectl itself
    // sends it as protobuf, which the in-process API server does not decode): the pod's spec
    // plus a container named `debugger-` and five characters of kubectl's random alphabet, and
    // no kspy label. The deployed webhook configuration routes it to kspy, which must judge it
    // as a debug copy: bob may not copy, alice may.
    let Some(env) = env().await else { return };
    let web = env.pod("web").await.unwrap();
    let copy_named = |name: &str| {
        let mut spec = web.spec.clone().unwrap();
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
    };
    let pods = |user: &'static str| {
        let env = &env;
        async move { Api::<Pod>::namespaced(env.client(user).await.unwrap(), &env.ns) }
    };
    let err = pods("bob")
        .await
        .create(&Default::default(), &copy_named("web-bob"))
        .await
        .expect_err("bob may not copy");
    let text = err.to_string();
    assert!(
        text.contains("admission webhook") && text.contains("to copy"),
        "{text}"
    );
    assert!(env.pod("web-bob").await.is_err(), "no copy was created");

    pods("alice")
        .await
        .create(&Default::default(), &copy_named("web-alice"))
        .await
        .expect("alice may copy");
    // In process, the review itself shows it was judged (a real cluster keeps it to itself).
    if let Some((request, response)) = last_validation(&env) {
        assert_eq!(request["request"]["name"], "web-alice", "{request}");
        assert_eq!(response["response"]["allowed"], true, "{response}");
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
