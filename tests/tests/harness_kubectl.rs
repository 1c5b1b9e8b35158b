//! The real kubectl against the in-process API server: discovery, server-side printing,
//! `kubectl debug` (ephemeral container, interactive attach over WebSocket, copy, node),
//! and every kubectl binary on the machine (the Cloud SDK's 1.27–1.33 when present).
//! Skipped, with a message, only when the machine has no kubectl at all.
//!
//! Pod creates (`--copy-to`, `node/…`) use [`tools::json_kubectl`]: the newest kubectl that
//! sends them as JSON (newer ones send protobuf, which the harness decodes too, checked by
//! `protobuf_pod_creates_are_decoded_as_json_ones`); with kubectl installed but no such
//! binary, those tests fail.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kspy_e2e::{ApiServer, fixtures, tools};

async fn server() -> ApiServer {
    ApiServer::builder()
        .namespace("prod", &[])
        .pod(fixtures::web_pod("prod", "web"))
        .start()
        .await
        .expect("server starts")
}

fn kubectl_or_skip() -> Option<PathBuf> {
    let k = tools::kubectl();
    if k.is_none() {
        tools::skip_without_kubectl(
            "no kubectl found (set KSPY_E2E_KUBECTL or install /usr/bin/kubectl)",
        );
    }
    k
}

async fn kubectl(
    bin: &Path,
    s: &ApiServer,
    user: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> tools::Output {
    let mut full = vec![
        "--kubeconfig".to_string(),
        s.kubeconfig_for(user).display().to_string(),
    ];
    full.extend(args.iter().map(|a| a.to_string()));
    let env = vec![("HOME".to_string(), s.dir().display().to_string())];
    tools::run(
        bin,
        &full,
        &env,
        stdin.map(|t| t.as_bytes().to_vec()),
        Duration::from_secs(60),
    )
    .await
    .expect("kubectl runs")
}

fn eph_names(s: &ApiServer) -> Vec<String> {
    s.pod("prod", "web")
        .and_then(|p| p.spec)
        .and_then(|s| s.ephemeral_containers)
        .map(|e| e.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_get_pods_uses_discovery_and_tables() {
    let Some(k) = kubectl_or_skip() else { return };
    let s = server().await;
    let out = kubectl(&k, &s, "alice", &["get", "pods", "-n", "prod"], None).await;
    assert!(out.success(), "{}", out.all());
    let header = out.stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("NAME") && header.contains("STATUS"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains("web") && out.stdout.contains("Running") && out.stdout.contains("1/1"),
        "{}",
        out.all()
    );
    let out = kubectl(
        &k,
        &s,
        "alice",
        &[
            "get",
            "pod",
            "web",
            "-n",
            "prod",
            "-o",
            "jsonpath={.spec.nodeName}",
        ],
        None,
    )
    .await;
    assert_eq!(out.stdout, "node-1", "{}", out.all());
    let out = kubectl(
        &k,
        &s,
        "alice",
        &["get", "pod", "ghost", "-n", "prod"],
        None,
    )
    .await;
    assert!(
        out.stderr.contains(r#"pods "ghost" not found"#),
        "{}",
        out.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_adds_an_ephemeral_container() {
    let Some(k) = kubectl_or_skip() else { return };
    let s = server().await;
    let out = kubectl(
        &k,
        &s,
        "alice",
        &[
            "debug",
            "web",
            "-n",
            "prod",
            "--image=busybox:1.36",
            "--target=app",
        ],
        None,
    )
    .await;
    assert!(out.success(), "{}", out.all());
    let names = eph_names(&s);
    assert_eq!(names.len(), 1);
    assert!(names[0].starts_with("debugger-"), "{names:?}");
    let pod = s.pod("prod", "web").unwrap();
    let ec = &pod.spec.unwrap().ephemeral_containers.unwrap()[0];
    assert_eq!(ec.target_container_name.as_deref(), Some("app"));
    let req = s
        .requests()
        .into_iter()
        .find(|r| r.method == "PATCH")
        .expect("kubectl sent a PATCH");
    assert_eq!(req.content_type, "application/strategic-merge-patch+json");
    assert!(
        req.uri
            .starts_with("/api/v1/namespaces/prod/pods/web/ephemeralcontainers"),
        "{}",
        req.uri
    );
    // RBAC denial is reported as kubectl users see it.
    let out = kubectl(
        &k,
        &s,
        "eve",
        &["debug", "web", "-n", "prod", "--image=busybox"],
        None,
    )
    .await;
    assert!(!out.success());
    assert!(
        out.stderr
            .contains(r#"cannot patch resource "pods/ephemeralcontainers""#),
        "{}",
        out.all()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_interactive_attach_round_trip() {
    let Some(k) = kubectl_or_skip() else { return };
    let s = server().await;
    let out = kubectl(
        &k,
        &s,
        "alice",
        &[
            "debug",
            "-i",
            "web",
            "-n",
            "prod",
            "--image=busybox",
            "--container=dbg",
            "--",
            "sh",
        ],
        Some("echo hello-from-kubectl\nexit\n"),
    )
    .await;
    assert!(out.success(), "{}", out.all());
    assert!(out.stdout.contains("hello-from-kubectl"), "{}", out.all());
    let p = s
        .wait_for_pod("prod", "web", Duration::from_secs(5), |p| {
            p.status
                .as_ref()
                .and_then(|s| s.ephemeral_container_statuses.as_ref())
                .is_some_and(|st| {
                    st.iter().any(|c| {
                        c.name == "dbg" && c.state.as_ref().is_some_and(|s| s.terminated.is_some())
                    })
                })
        })
        .await;
    assert!(p.is_some(), "dbg terminated after exit");
    let out = kubectl(
        &k,
        &s,
        "alice",
        &["logs", "web", "-n", "prod", "-c", "dbg"],
        None,
    )
    .await;
    assert!(out.stdout.contains("hello-from-kubectl"), "{}", out.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_debug_copy_and_node() {
    let Some(k) = tools::json_kubectl_or_fail().await else {
        return;
    };
    println!("kubectl sending JSON pod creates: {}", k.display());
    let s = server().await;
    let out = kubectl(
        &k,
        &s,
        "admin",
        &[
            "debug",
            "web",
            "-n",
            "prod",
            "--image=busybox",
            "--copy-to=web-debug",
            "--share-processes",
            "--container=dbg",
        ],
        None,
    )
    .await;
    assert!(out.success(), "{}: {}", k.display(), out.all());
    let create = s
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && r.uri.starts_with("/api/v1/namespaces/prod/pods"))
        .expect("kubectl POSTed the copy");
    assert!(
        create.content_type.starts_with("application/json"),
        "{}",
        create.content_type
    );
    let copy = s.pod("prod", "web-debug").expect("copy created");
    let spec = copy.spec.unwrap();
    assert_eq!(spec.share_process_namespace, Some(true));
    assert!(spec.containers.iter().any(|c| c.name == "dbg"));
    let out = kubectl(
        &k,
        &s,
        "admin",
        &["debug", "node/node-1", "-n", "prod", "--image=busybox"],
        None,
    )
    .await;
    assert!(out.success(), "{}", out.all());
    let pods: Vec<String> = {
        let client = s.client("admin").await.unwrap();
        let api: kube::Api<k8s_openapi::api::core::v1::Pod> = kube::Api::namespaced(client, "prod");
        api.list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter_map(|p| p.metadata.name)
            .collect()
    };
    let node_dbg = pods
        .iter()
        .find(|n| n.starts_with("node-debugger-node-1-"))
        .expect("node debugger pod");
    let p = s.pod("prod", node_dbg).unwrap().spec.unwrap();
    assert_eq!(p.host_pid, Some(true));
    assert_eq!(p.node_name.as_deref(), Some("node-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_installed_kubectl_debugs_against_the_server() {
    // /usr/bin/kubectl, PATH, and the Cloud SDK's kubectl.1.27 … kubectl.1.33 when present.
    let versions = tools::kubectl_candidates();
    if versions.is_empty() {
        tools::skip_without_kubectl("no kubectl on this machine");
        return;
    }
    let s = server().await;
    for k in &versions {
        let before = eph_names(&s).len();
        let out = kubectl(
            k,
            &s,
            "alice",
            &["debug", "web", "-n", "prod", "--image=busybox"],
            None,
        )
        .await;
        assert!(out.success(), "{}: {}", k.display(), out.all());
        assert_eq!(eph_names(&s).len(), before + 1, "{}", k.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_webhook_warnings_and_denials() {
    use kspy_e2e::stub_webhook::{self, StubWebhook};
    use kspy_e2e::{AdmissionChain, WebhookTarget};
    use serde_json::{Value, json};
    let Some(k) = kubectl_or_skip() else { return };
    let s = server().await;
    let stub = StubWebhook::start(
        s.ca(),
        std::sync::Arc::new(|req: &Value| {
            if req["userInfo"]["username"] == "bob" {
                stub_webhook::deny(403, "bob may not debug")
            } else {
                json!({"allowed": true, "warnings": ["debug session is audited"]})
            }
        }),
    )
    .await
    .unwrap();
    let yaml = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: stub}
webhooks:
- name: validate.stub.dev
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig: {url: "https://example.invalid/validate"}
  rules:
  - {operations: [UPDATE], apiGroups: [""], apiVersions: [v1], resources: [pods/ephemeralcontainers]}
"#;
    let target = WebhookTarget {
        base_url: stub.url.clone(),
        ca_pem: stub.ca_pem.clone(),
    };
    s.set_admission(AdmissionChain::from_manifests(yaml, Some(&target)).unwrap());
    let out = kubectl(
        &k,
        &s,
        "alice",
        &["debug", "web", "-n", "prod", "--image=busybox"],
        None,
    )
    .await;
    assert!(out.success(), "{}", out.all());
    assert!(
        out.stderr.contains("Warning: debug session is audited"),
        "{}",
        out.all()
    );
    let out = kubectl(
        &k,
        &s,
        "bob",
        &["debug", "web", "-n", "prod", "--image=busybox"],
        None,
    )
    .await;
    assert!(!out.success());
    assert!(
        out.stderr.contains(
            r#"admission webhook "validate.stub.dev" denied the request: bob may not debug"#
        ),
        "{}",
        out.all()
    );
}

/// kubectl 1.32 and later create pods with protobuf bodies, which kube-apiserver decodes as it
/// decodes JSON: each such kubectl on the machine creates its copy and node pod here, and they
/// are stored as the JSON-sending kubectl's are (the same spec, but for the generated names).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_pod_creates_are_decoded_as_json_ones() {
    let Some(json_kubectl) = tools::json_kubectl_or_fail().await else {
        return;
    };
    let s = server().await;
    // The spec as stored, with kubectl's random names and what the server generates masked.
    let shape = |name: &str| {
        let pod = s.pod("prod", name).expect("created");
        let mut text = serde_json::to_value(pod.spec).expect("spec").to_string();
        for generated in ["debugger-", "kube-api-access-"] {
            let mut masked = String::new();
            let mut rest = text.as_str();
            while let Some(i) = rest.find(generated) {
                let end = i + generated.len() + 5;
                masked.push_str(&rest[..i + generated.len()]);
                masked.push_str("XXXXX");
                rest = rest.get(end..).unwrap_or("");
            }
            masked.push_str(rest);
            text = masked;
        }
        serde_json::from_str::<serde_json::Value>(&text).expect("masked spec")
    };
    let run = |bin: PathBuf, args: Vec<String>| {
        let s = &s;
        async move {
            let before = s.requests().len();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let out = kubectl(&bin, s, "admin", &args, None).await;
            let types: Vec<String> = s
                .requests()
                .into_iter()
                .skip(before)
                .filter(|r| r.method == "POST")
                .map(|r| r.content_type)
                .collect();
            (out, types)
        }
    };
    let copy_args = |name: &str| {
        [
            "-n",
            "prod",
            "debug",
            "web",
            "--image=busybox:1.36",
            "--profile=general",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--copy-to={name}")])
        .collect::<Vec<_>>()
    };
    let (out, _) = run(json_kubectl.clone(), copy_args("via-json")).await;
    assert!(out.success(), "{}", out.all());
    let mut checked = 0;
    for bin in tools::kubectl_candidates() {
        let Some((1, minor, _)) = tools::kubectl_version(&bin).await else {
            continue;
        };
        if minor < 32 {
            continue;
        }
        let name = format!("via-protobuf-{minor}-{checked}");
        let (out, types) = run(bin.clone(), copy_args(&name)).await;
        assert!(out.success(), "{}: {}", bin.display(), out.all());
        assert!(
            types
                .iter()
                .any(|t| t.starts_with("application/vnd.kubernetes.protobuf")),
            "{} sent {types:?}",
            bin.display()
        );
        assert_eq!(shape(&name), shape("via-json"), "{}", bin.display());
        let node_args = ["-n", "prod", "debug", "node/node-1", "--image=busybox:1.36"]
            .iter()
            .map(|a| a.to_string())
            .collect();
        let (out, _) = run(bin.clone(), node_args).await;
        assert!(out.success(), "{}: {}", bin.display(), out.all());
        assert!(
            out.stdout
                .contains("Creating debugging pod node-debugger-node-1-"),
            "{}",
            out.all()
        );
        checked += 1;
    }
    if checked == 0 {
        println!("no kubectl 1.32 or later on this machine: nothing sends protobuf");
    }
}
