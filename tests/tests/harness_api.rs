//! Self-tests of the in-process API server through kube-rs: discovery, CRUD, the
//! ephemeralcontainers subresource with all three patch types, validation and Status
//! shapes, dry runs, watch format, attach and logs.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kspy_e2e::{ApiServer, fixtures};
use kube::api::{
    Api, AttachParams, DeleteParams, ListParams, LogParams, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn server() -> ApiServer {
    ApiServer::builder()
        .namespace("prod", &[("team", "payments")])
        .pod(fixtures::web_pod("prod", "web"))
        .start()
        .await
        .expect("server starts")
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn eph(name: &str, image: &str) -> Value {
    json!({"name": name, "image": image, "stdin": true, "tty": true})
}

#[tokio::test]
async fn discovery_and_reads_work_for_kube_rs() {
    let s = server().await;
    let client = s.client("alice").await.unwrap();
    let info = client.apiserver_version().await.unwrap();
    assert_eq!(info.git_version, "v1.33.0");
    let discovery = kube::discovery::Discovery::new(client.clone())
        .run()
        .await
        .unwrap();
    let (pods, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk("", "v1", "Pod"))
        .expect("Pod discovered");
    assert_eq!(pods.plural, "pods");
    assert!(
        caps.subresources
            .iter()
            .any(|(r, _)| r.plural == "ephemeralcontainers")
    );
    assert!(caps.subresources.iter().any(|(r, _)| r.plural == "attach"));

    let api: Api<Pod> = Api::namespaced(client.clone(), "prod");
    let web = api.get("web").await.unwrap();
    assert_eq!(
        web.status.as_ref().unwrap().phase.as_deref(),
        Some("Running")
    );
    assert_eq!(
        web.spec.as_ref().unwrap().node_name.as_deref(),
        Some("node-1")
    );
    // Defaulting and the ServiceAccount plugin shaped the stored pod.
    let app = &web.spec.as_ref().unwrap().containers[0];
    assert_eq!(app.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert!(
        app.volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .any(|m| m.mount_path == "/var/run/secrets/kubernetes.io/serviceaccount")
    );
    let list = api
        .list(&ListParams::default().fields("metadata.name=web"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(
        api.list(&ListParams::default().labels("app=nope"))
            .await
            .unwrap()
            .items
            .len(),
        0
    );
    let ns: Api<Namespace> = Api::all(client);
    let prod = ns.get("prod").await.unwrap();
    assert_eq!(
        prod.metadata.labels.unwrap()["kubernetes.io/metadata.name"],
        "prod"
    );
    // Namespaces can be watched (for informers keeping a namespace cache).
    use futures::StreamExt;
    let events: Vec<_> = ns
        .watch(&WatchParams::default().timeout(1), "0")
        .await
        .unwrap()
        .collect()
        .await;
    assert!(events.iter().any(
        |e| matches!(e, Ok(WatchEvent::Added(n)) if n.metadata.name.as_deref() == Some("prod"))
    ));
}

#[tokio::test]
async fn strategic_patch_adds_ephemeral_container_and_kubelet_runs_it() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let mut c = eph("dbg", "busybox:1.36");
    c["targetContainerName"] = json!("app");
    let pod = api
        .patch_ephemeral_containers(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"ephemeralContainers": [c]}})),
        )
        .await
        .unwrap();
    let ecs = pod.spec.unwrap().ephemeral_containers.unwrap();
    assert_eq!(ecs.len(), 1);
    assert_eq!(
        ecs[0].termination_message_policy.as_deref(),
        Some("File"),
        "defaults applied"
    );
    let req = s.requests().into_iter().last().unwrap();
    assert_eq!(req.content_type, "application/strategic-merge-patch+json");
    assert!(
        req.uri.ends_with("/pods/web/ephemeralcontainers?"),
        "{}",
        req.uri
    );

    let running = s
        .wait_for_pod("prod", "web", Duration::from_secs(5), |p| {
            p.status
                .as_ref()
                .and_then(|s| s.ephemeral_container_statuses.as_ref())
                .is_some_and(|st| {
                    st.iter().any(|c| {
                        c.name == "dbg" && c.state.as_ref().is_some_and(|s| s.running.is_some())
                    })
                })
        })
        .await;
    assert!(running.is_some(), "dbg runs");

    // A second one merges by name next to the first.
    let pod = api
        .patch_ephemeral_containers(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"ephemeralContainers": [eph("dbg2", "alpine")]}})),
        )
        .await
        .unwrap();
    let names: Vec<String> = pod
        .spec
        .unwrap()
        .ephemeral_containers
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["dbg", "dbg2"]);
}

#[tokio::test]
async fn json_and_merge_patches_and_put() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "prod");
    // JSON patch: adding to a missing list fails like the real server, creating it works.
    // (kube's Patch::Json needs its `jsonpatch` feature, which the workspace does not enable: send it raw.)
    let client = s.client("admin").await.unwrap();
    let path = "/api/v1/namespaces/prod/pods/web/ephemeralcontainers";
    let ct = "application/json-patch+json";
    let body =
        json!([{"op": "add", "path": "/spec/ephemeralContainers/-", "value": eph("a", "busybox")}])
            .to_string();
    let err = client
        .request::<Pod>(http_request("PATCH", path, ct, body.as_bytes()))
        .await
        .unwrap_err();
    assert_eq!(api_err(err).code, 422);
    let body =
        json!([{"op": "add", "path": "/spec/ephemeralContainers", "value": [eph("a", "busybox")]}])
            .to_string();
    client
        .request::<Pod>(http_request("PATCH", path, ct, body.as_bytes()))
        .await
        .unwrap();
    // Merge patch replaces the list: dropping "a" is refused.
    let err = api
        .patch_ephemeral_containers(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"ephemeralContainers": [eph("b", "busybox")]}})),
        )
        .await
        .unwrap_err();
    let st = api_err(err);
    assert_eq!((st.code, st.reason.as_str()), (422, "Invalid"));
    assert!(st.message.starts_with(r#"Pod "web" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "a" may not be removed"#), "{}", st.message);
    // PUT of the whole pod with one more container works (kube's replace_ephemeral_containers).
    let mut pod = api.get_ephemeral_containers("web").await.unwrap();
    let extra: k8s_openapi::api::core::v1::EphemeralContainer =
        serde_json::from_value(eph("c", "busybox")).unwrap();
    pod.spec
        .as_mut()
        .unwrap()
        .ephemeral_containers
        .as_mut()
        .unwrap()
        .push(extra);
    let out = api
        .replace_ephemeral_containers("web", &PostParams::default(), &pod)
        .await
        .unwrap();
    assert_eq!(out.spec.unwrap().ephemeral_containers.unwrap().len(), 2);
    // A stale resourceVersion conflicts.
    let err = api
        .replace_ephemeral_containers("web", &PostParams::default(), &pod)
        .await
        .unwrap_err();
    let st = api_err(err);
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
}

#[tokio::test]
async fn ephemeral_rules_and_status_shapes() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let strategic = |c: Value| Patch::Strategic(json!({"spec": {"ephemeralContainers": [c]}}));
    let pp = PatchParams::default();

    let st = api_err(
        api.patch_ephemeral_containers("web", &pp, &strategic(eph("app", "busybox")))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    assert_eq!(
        st.message,
        r#"Pod "web" is invalid: spec.ephemeralContainers[0].name: Duplicate value: "app""#
    );
    let d = st.details.unwrap();
    assert_eq!((d.name.as_str(), d.kind.as_str()), ("web", "Pod"));
    assert_eq!(d.causes[0].reason, "FieldValueDuplicate");
    assert_eq!(d.causes[0].field, "spec.ephemeralContainers[0].name");

    let mut bad = eph("dbg", "busybox");
    bad["ports"] = json!([{"containerPort": 80}]);
    bad["targetContainerName"] = json!("nope");
    let st = api_err(
        api.patch_ephemeral_containers("web", &pp, &strategic(bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        st.message,
        r#"Pod "web" is invalid: [spec.ephemeralContainers[0].targetContainerName: Not found: "nope", spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container]"#
    );

    api.patch_ephemeral_containers("web", &pp, &strategic(eph("dbg", "busybox")))
        .await
        .unwrap();
    let st = api_err(
        api.patch_ephemeral_containers("web", &pp, &strategic(eph("dbg", "alpine")))
            .await
            .unwrap_err(),
    );
    assert!(st.message.starts_with(r#"Pod "web" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" may not be changed"#));

    let st = api_err(api.get("ghost").await.unwrap_err());
    assert_eq!(
        (st.code, st.reason.as_str(), st.message.as_str()),
        (404, "NotFound", r#"pods "ghost" not found"#)
    );
    let st = api_err(
        api.patch_ephemeral_containers("ghost", &pp, &strategic(eph("x", "busybox")))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 404);

    let admin: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "prod");
    let st = api_err(
        admin
            .create(&PostParams::default(), &fixtures::web_pod("prod", "web"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (st.code, st.reason.as_str(), st.message.as_str()),
        (409, "AlreadyExists", r#"pods "web" already exists"#)
    );
    let mut with_eph = fixtures::web_pod("prod", "other");
    with_eph.spec.as_mut().unwrap().ephemeral_containers =
        Some(vec![serde_json::from_value(eph("x", "busybox")).unwrap()]);
    let st = api_err(
        admin
            .create(&PostParams::default(), &with_eph)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        st.message,
        r#"Pod "other" is invalid: spec.ephemeralContainers: Forbidden: cannot be set on create"#
    );
    let st = api_err(
        Api::<Pod>::namespaced(s.client("admin").await.unwrap(), "nowhere")
            .create(&PostParams::default(), &fixtures::web_pod("nowhere", "x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.message, r#"namespaces "nowhere" not found"#);

    let eve: Api<Pod> = Api::namespaced(s.client("eve").await.unwrap(), "prod");
    eve.get("web").await.unwrap();
    let st = api_err(
        eve.patch_ephemeral_containers("web", &pp, &strategic(eph("e", "busybox")))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        st.message,
        r#"pods "web" is forbidden: User "eve" cannot patch resource "pods/ephemeralcontainers" in API group "" in the namespace "prod""#
    );
}

#[tokio::test]
async fn unauthenticated_and_unsupported_media_type() {
    let s = server().await;
    let client = s.client("alice").await.unwrap();
    let req = http_request(
        "PATCH",
        "/api/v1/namespaces/prod/pods/web/ephemeralcontainers",
        "application/json",
        b"{}",
    );
    let st = api_err(client.request::<Pod>(req).await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (415, "UnsupportedMediaType"));
    let st = api_err(
        client
            .request::<Value>(http_request(
                "GET",
                "/api/v1/namespaces/prod/widgets",
                "",
                b"",
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 404);

    // A kubeconfig with an unknown token is refused with 401.
    let kc = std::fs::read_to_string(s.kubeconfig_for("alice"))
        .unwrap()
        .replace("alice-token", "wrong");
    let path = s.dir().join("bad-kubeconfig");
    std::fs::write(&path, kc).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let bad = kube::Client::try_from(cfg).unwrap();
    let st = api_err(
        Api::<Pod>::namespaced(bad, "prod")
            .get("web")
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (401, "Unauthorized"));
}

fn http_request(method: &str, path: &str, ct: &str, body: &[u8]) -> axum::http::Request<Vec<u8>> {
    let mut b = axum::http::Request::builder().method(method).uri(path);
    if !ct.is_empty() {
        b = b.header("content-type", ct);
    }
    b.body(body.to_vec()).unwrap()
}

#[tokio::test]
async fn dry_run_is_judged_but_not_persisted() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let out = api
        .patch_ephemeral_containers(
            "web",
            &PatchParams::default().dry_run(),
            &Patch::Strategic(json!({"spec": {"ephemeralContainers": [eph("dbg", "busybox")]}})),
        )
        .await
        .unwrap();
    assert_eq!(
        out.spec.unwrap().ephemeral_containers.unwrap()[0].name,
        "dbg"
    );
    let stored = api.get("web").await.unwrap();
    assert!(stored.spec.unwrap().ephemeral_containers.is_none());
    assert!(s.requests().last().unwrap().uri.contains("dryRun=All"));
    // Invalid requests still fail in a dry run.
    let st = api_err(
        api.patch_ephemeral_containers(
            "web",
            &PatchParams::default().dry_run(),
            &Patch::Strategic(json!({"spec": {"ephemeralContainers": [eph("app", "busybox")]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    let admin: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "prod");
    admin
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &fixtures::web_pod("prod", "copy"),
        )
        .await
        .unwrap();
    assert!(s.pod("prod", "copy").is_none());
    admin
        .delete(
            "web",
            &DeleteParams {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(s.pod("prod", "web").is_some());
    admin.delete("web", &DeleteParams::default()).await.unwrap();
    assert!(s.pod("prod", "web").is_none());
}

#[tokio::test]
async fn watch_stream_format_and_kube_watch() {
    let s = server().await;
    let client = s.client("alice").await.unwrap();
    let api: Api<Pod> = Api::namespaced(client.clone(), "prod");
    let rv = api
        .get("web")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();

    let mut stream = api
        .watch(
            &WatchParams::default()
                .fields("metadata.name=web")
                .timeout(5),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    api.patch_ephemeral_containers(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"ephemeralContainers": [eph("dbg", "busybox")]}})),
    )
    .await
    .unwrap();
    use futures::StreamExt;
    let mut saw_running = false;
    while let Some(ev) = stream.next().await {
        if let WatchEvent::Modified(p) = ev.unwrap() {
            let st = p
                .status
                .unwrap()
                .ephemeral_container_statuses
                .unwrap_or_default();
            if st
                .iter()
                .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            {
                saw_running = true;
                break;
            }
        }
    }
    assert!(saw_running, "watch delivered the Running transition");

    // Raw stream: one JSON object per line with type and object, `?watch=1` form.
    let text = client
        .request_text(http_request("GET", "/api/v1/namespaces/prod/pods?watch=1&fieldSelector=metadata.name%3Dweb&timeoutSeconds=1", "", b""))
        .await
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["type"], "ADDED");
    assert_eq!(lines[0]["object"]["kind"], "Pod");
    assert_eq!(lines[0]["object"]["metadata"]["name"], "web");
    // A resourceVersion beyond history replays nothing; sendInitialEvents ends with the bookmark.
    let text = client
        .request_text(http_request(
            "GET",
            "/api/v1/namespaces/prod/pods?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion=1&timeoutSeconds=1",
            "",
            b"",
        ))
        .await
        .unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "BOOKMARK");
    assert_eq!(
        last["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
}

#[tokio::test]
async fn attach_over_websocket_with_tty_and_resize() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    api.patch_ephemeral_containers(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"ephemeralContainers": [eph("dbg", "busybox")]}})),
    )
    .await
    .unwrap();
    s.wait_for_pod("prod", "web", Duration::from_secs(5), |_| {
        s.process("prod", "web", "dbg").is_some()
    })
    .await
    .unwrap();
    let mut att = api
        .attach("web", &AttachParams::interactive_tty().container("dbg"))
        .await
        .unwrap();
    let mut stdin = att.stdin().unwrap();
    let mut stdout = att.stdout().unwrap();
    let mut resize = att.terminal_size().unwrap();
    use futures::SinkExt;
    resize
        .send(kube::api::TerminalSize {
            width: 120,
            height: 40,
        })
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stdin
        .write_all(b"echo hello\rsize\rexit 0\r")
        .await
        .unwrap();
    let status = att.take_status().unwrap();
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !out.contains("exit 0") && tokio::time::Instant::now() < deadline {
        let n = tokio::time::timeout(Duration::from_secs(5), stdout.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(out.contains("echo hello\r\nhello\r\n"), "{out:?}");
    assert!(out.contains("120x40"), "{out:?}");
    let st = tokio::time::timeout(Duration::from_secs(5), status)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.status.as_deref(), Some("Success"));
    let done = s
        .wait_for_pod("prod", "web", Duration::from_secs(5), |p| {
            p.status
                .as_ref()
                .and_then(|s| s.ephemeral_container_statuses.as_ref())
                .is_some_and(|st| {
                    st.iter().any(|c| {
                        c.state
                            .as_ref()
                            .and_then(|s| s.terminated.as_ref())
                            .is_some_and(|t| t.exit_code == 0)
                    })
                })
        })
        .await;
    assert!(done.is_some(), "terminated with exit code 0");
    // Logs of the terminated container are served.
    let logs = api
        .logs(
            "web",
            &LogParams {
                container: Some("dbg".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(logs.contains("hello"));
    // Attaching to it now is refused by the kubelet, which the API server's stream
    // translator reports on the error channel of the (v5) stream.
    let mut again = api
        .attach("web", &AttachParams::interactive_tty().container("dbg"))
        .await
        .expect("the translator upgrades the connection");
    let st = tokio::time::timeout(Duration::from_secs(5), again.take_status().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            st.status.as_deref(),
            st.reason.as_deref(),
            st.message.as_deref()
        ),
        (
            Some("Failure"),
            Some("InternalError"),
            Some(
                "Internal error occurred: unable to upgrade connection: container dbg not found \
                 in pod web_prod"
            )
        )
    );
}

#[tokio::test]
async fn attach_container_choice_and_end_are_the_servers_not_kubectls() {
    let mut duo = fixtures::two_container_pod("prod", "duo");
    duo.metadata.annotations = Some(
        [(
            "kubectl.kubernetes.io/default-container".to_string(),
            "sidecar".to_string(),
        )]
        .into(),
    );
    let s = ApiServer::builder()
        .namespace("prod", &[])
        .pod(fixtures::web_pod("prod", "web"))
        .pod(duo)
        .start()
        .await
        .unwrap();
    let client = s.client("alice").await.unwrap();
    // The default-container annotation is for kubectl; the server wants container=.
    let st = api_err(
        client
            .request::<Value>(http_request(
                "GET",
                "/api/v1/namespaces/prod/pods/duo/attach?stdout=true",
                "",
                b"",
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (st.code, st.message.as_str()),
        (
            400,
            "a container name must be specified for pod duo, choose one of: [app sidecar]"
        )
    );

    // An attach ends with Success whatever the exit code: it is not an exec.
    let api: Api<Pod> = Api::namespaced(client.clone(), "prod");
    api.patch_ephemeral_containers(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"ephemeralContainers": [eph("dbg", "busybox")]}})),
    )
    .await
    .unwrap();
    s.wait_for_pod("prod", "web", Duration::from_secs(5), |_| {
        s.process("prod", "web", "dbg").is_some()
    })
    .await
    .unwrap();
    let mut att = api
        .attach("web", &AttachParams::interactive_tty().container("dbg"))
        .await
        .unwrap();
    let mut stdin = att.stdin().unwrap();
    let status = att.take_status().unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    stdin.write_all(b"exit 3\r").await.unwrap();
    let st = tokio::time::timeout(Duration::from_secs(5), status)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.status.as_deref(), Some("Success"), "{st:?}");

    // A request the translator does not take (no v5 WebSocket) reaches the kubelet, whose
    // plain-text refusal of a container that does not run comes back as it is.
    let st = api_err(
        client
            .request::<Value>(http_request(
                "GET",
                "/api/v1/namespaces/prod/pods/web/attach?container=dbg&stdout=true",
                "",
                b"",
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 500, "{st:?}");
    assert!(
        st.message
            .contains("container dbg not found in pod web_prod"),
        "{st:?}"
    );
}

#[tokio::test]
async fn image_behaviours_pull_error_and_oneshot_logs() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    api.patch_ephemeral_containers(
        "web",
        &PatchParams::default(),
        &Patch::Strategic(json!({"spec": {"ephemeralContainers": [eph("bad", "registry.example.com/nonexistent:1"), json!({"name": "once", "image": "oneshot:1"})]}})),
    )
    .await
    .unwrap();
    let state_of = |p: &Pod, n: &str| {
        p.status
            .as_ref()
            .and_then(|s| s.ephemeral_container_statuses.clone())
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.name == n)
            .and_then(|c| c.state)
    };
    let p = s
        .wait_for_pod("prod", "web", Duration::from_secs(5), |p| {
            state_of(p, "bad")
                .and_then(|s| s.waiting)
                .and_then(|w| w.reason)
                .as_deref()
                == Some("ErrImagePull")
                && state_of(p, "once").is_some_and(|s| s.terminated.is_some())
        })
        .await
        .expect("statuses reached");
    assert!(
        state_of(&p, "bad")
            .unwrap()
            .waiting
            .unwrap()
            .message
            .unwrap()
            .contains("not found")
    );
    let logs = api
        .logs(
            "web",
            &LogParams {
                container: Some("once".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(logs, "oneshot: done\n");
    let st = api_err(
        api.logs(
            "web",
            &LogParams {
                container: Some("bad".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        st.message,
        r#"container "bad" in pod "web" is waiting to start: ErrImagePull"#
    );
}

#[tokio::test]
async fn created_pods_go_pending_then_running() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "prod");
    let created = api
        .create(&PostParams::default(), &fixtures::web_pod("prod", "copy"))
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Pending"));
    assert!(created.metadata.uid.is_some());
    let p = s
        .wait_for_pod("prod", "copy", Duration::from_secs(5), |p| {
            p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .await;
    assert!(p.is_some());
}

/// An Event as kspy's webhook posts it.
fn decision_event(note: &str) -> k8s_openapi::api::events::v1::Event {
    serde_json::from_value(json!({
        "metadata": {"generateName": "web.kspy.", "namespace": "prod"},
        "eventTime": "2026-11-26T20:00:00.000000Z",
        "action": "Attach", "reason": "DebugDenied", "type": "Warning", "note": note,
        "regarding": {"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "prod"},
        "reportingController": "kspy.dev/webhook", "reportingInstance": "kspy-webhook-0",
    }))
    .expect("an Event")
}

#[tokio::test]
async fn events_take_series_patches_and_refuse_what_the_real_server_refuses() {
    use k8s_openapi::api::events::v1::Event;
    let s = server().await;
    let api: Api<Event> = Api::namespaced(s.client("kspy-webhook").await.unwrap(), "prod");
    let created = api
        .create(
            &PostParams::default(),
            &decision_event("attach by bob: denied"),
        )
        .await
        .unwrap();
    let name = created.metadata.name.clone().expect("a generated name");
    assert!(name.starts_with("web.kspy."), "{name}");

    let series = |count: i64| {
        Patch::Merge(
            json!({"series": {"count": count, "lastObservedTime": "2026-11-26T20:01:00.000000Z"}}),
        )
    };
    let patched = api
        .patch(&name, &PatchParams::default(), &series(2))
        .await
        .unwrap();
    assert_eq!(patched.series.as_ref().map(|s| s.count), Some(2));
    // The webhook may only create and patch; an admin reads it back.
    let admin: Api<Event> = Api::namespaced(s.client("admin").await.unwrap(), "prod");
    let got = admin.get(&name).await.unwrap();
    assert_eq!(got.series.map(|s| s.count), Some(2));
    assert_eq!(got.note.as_deref(), Some("attach by bob: denied"));

    // A series of one, a changed note, a series without its time: 422 Invalid.
    let err = api_err(
        api.patch(&name, &PatchParams::default(), &series(1))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(err.message.contains("series.count"), "{}", err.message);
    let err = api_err(
        api.patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"note": "rewritten"})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        err.message,
        format!(
            "Event.events.k8s.io \"{name}\" is invalid: message: Invalid value: \"rewritten\": \
             field is immutable"
        )
    );
    let mut bad = decision_event("x");
    bad.series = Some(k8s_openapi::api::events::v1::EventSeries {
        count: 1,
        last_observed_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ),
    });
    let err = api_err(api.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!(err.code, 422, "{}", err.message);

    // Gone: 404, which a recorder answers by creating the Event anew.
    let err = api_err(
        api.patch("web.kspy.gone", &PatchParams::default(), &series(3))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));

    // RBAC: eve may read pods but not patch events.
    let eve: Api<Event> = Api::namespaced(s.client("eve").await.unwrap(), "prod");
    let err = api_err(
        eve.patch(&name, &PatchParams::default(), &series(3))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 403, "{}", err.message);
    assert_eq!(
        err.message,
        format!(
            "events.events.k8s.io \"{name}\" is forbidden: User \"eve\" cannot patch resource \
             \"events\" in API group \"events.k8s.io\" in the namespace \"prod\""
        )
    );
}

/// PodSecurity admission: the namespace's enforce label, on pod creates and ephemeral
/// container updates, with the plugin's 403 wording; pod updates only when images change.
#[tokio::test]
async fn pod_security_enforces_the_namespace_level() {
    let s = ApiServer::builder()
        .namespace(
            "base",
            &[("pod-security.kubernetes.io/enforce", "baseline")],
        )
        .namespace(
            "strict",
            &[
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/enforce-version", "v1.33"),
            ],
        )
        .pod(fixtures::web_pod("base", "web"))
        .start()
        .await
        .unwrap();
    let client = s.client("admin").await.unwrap();
    let base: Api<Pod> = Api::namespaced(client.clone(), "base");
    // A plain pod meets baseline; a privileged one on the host's PID namespace does not.
    base.create(&PostParams::default(), &fixtures::web_pod("base", "plain"))
        .await
        .unwrap();
    let mut bad: Value = serde_json::to_value(fixtures::web_pod("base", "bad")).unwrap();
    bad["spec"]["hostPID"] = json!(true);
    bad["spec"]["containers"][0]["securityContext"]["privileged"] = json!(true);
    let st = api_err(
        base.create(
            &PostParams::default(),
            &serde_json::from_value(bad).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        st.message,
        r#"pods "bad" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostPID=true), privileged (container "app" must not set securityContext.privileged=true)"#
    );
    assert!(s.pod("base", "bad").is_none());
    // An ephemeral container adding SYS_ADMIN is refused; KILL is on the baseline list.
    let add = |name: &str, caps: Value| {
        Patch::Strategic(json!({"spec": {"ephemeralContainers": [{
            "name": name, "image": "busybox",
            "securityContext": {"capabilities": {"add": caps}}
        }]}}))
    };
    let st = api_err(
        base.patch_ephemeral_containers(
            "web",
            &PatchParams::default(),
            &add("dbg", json!(["SYS_ADMIN"])),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        st.message,
        r#"pods "web" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities (container "dbg" must not include "SYS_ADMIN" in securityContext.capabilities.add)"#
    );
    base.patch_ephemeral_containers("web", &PatchParams::default(), &add("dbg", json!(["KILL"])))
        .await
        .unwrap();
    // Restricted, with its pinned version, and a generateName pod (named in the message).
    let strict: Api<Pod> = Api::namespaced(client, "strict");
    let mut pod = fixtures::web_pod("strict", "");
    pod.metadata.name = None;
    pod.metadata.generate_name = Some("gen-".into());
    let st = api_err(
        strict
            .create(&PostParams::default(), &pod)
            .await
            .unwrap_err(),
    );
    let (subject, why) = st.message.split_once(" is forbidden: ").expect(&st.message);
    assert!(
        subject.starts_with(r#"pods "gen-"#) && subject.len() == r#"pods "gen-xxxxx""#.len(),
        "the generated name: {subject}"
    );
    assert_eq!(
        why,
        r#"violates PodSecurity "restricted:v1.33": allowPrivilegeEscalation != false (container "app" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "app" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "app" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")"#
    );
    let hardened = fixtures::hardened_pod("strict", "ok");
    strict
        .create(&PostParams::default(), &hardened)
        .await
        .unwrap();
}

/// The status code and message of `method` on `web`'s attach endpoint as `user` (a plain
/// request, no upgrade: authorization answers before the WebSocket check).
async fn attach_answer(s: &ApiServer, user: &str, method: &str) -> (u16, String) {
    let client = s.client(user).await.unwrap();
    let req = http_request(
        method,
        "/api/v1/namespaces/prod/pods/web/attach?container=app&stdout=true",
        "",
        b"",
    );
    let st = api_err(client.request::<Value>(req).await.unwrap_err());
    (st.code, st.message)
}

#[tokio::test]
async fn attach_is_authorized_by_the_http_method() {
    use kspy_e2e::identity::{Identity, Rule};
    let with = |name: &str, verbs: &[&str]| {
        Identity::new(name).rules(vec![
            Rule::new(&["get"], &["pods"]),
            Rule::new(verbs, &["pods/attach"]),
        ])
    };
    let build = |needs_create: bool| {
        ApiServer::builder()
            .identity(with("getter", &["get"]))
            .identity(with("creator", &["create"]))
            .identity(with("both", &["get", "create"]))
            .namespace("prod", &[])
            .pod(fixtures::web_pod("prod", "web"))
            .websocket_upgrade_needs_create(needs_create)
            .start()
    };
    let ws_only = "serves attach over WebSocket only";

    // 1.30–1.34: a WebSocket handshake is a GET, authorized as `get`; POST (SPDY) as `create`.
    let s = build(false).await.unwrap();
    let (code, msg) = attach_answer(&s, "getter", "GET").await;
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains(ws_only), "{msg}");
    let (code, msg) = attach_answer(&s, "creator", "GET").await;
    assert_eq!(code, 403, "{msg}");
    assert_eq!(
        msg,
        "pods \"web\" is forbidden: User \"creator\" cannot get resource \"pods/attach\" in API \
         group \"\" in the namespace \"prod\""
    );
    let (code, msg) = attach_answer(&s, "creator", "POST").await;
    assert_eq!(code, 400, "{msg}");
    let (code, msg) = attach_answer(&s, "getter", "POST").await;
    assert_eq!(code, 403, "{msg}");
    assert!(
        msg.contains("cannot create resource \"pods/attach\""),
        "{msg}"
    );

    // A real WebSocket attach with only `get`.
    let api: Api<Pod> = Api::namespaced(s.client("getter").await.unwrap(), "prod");
    let att = api
        .attach(
            "web",
            &AttachParams::default()
                .container("app")
                .stdin(false)
                .stderr(false),
        )
        .await;
    assert!(att.is_ok(), "{:?}", att.err());

    // 1.35 (AuthorizePodWebsocketUpgradeCreatePermission): the upgrade needs `create` too.
    let s = build(true).await.unwrap();
    let (code, msg) = attach_answer(&s, "getter", "GET").await;
    assert_eq!(code, 403, "{msg}");
    assert!(
        msg.contains("cannot create resource \"pods/attach\""),
        "{msg}"
    );
    let (code, msg) = attach_answer(&s, "creator", "GET").await;
    assert_eq!(code, 403, "{msg}");
    assert!(msg.contains("cannot get resource \"pods/attach\""), "{msg}");
    let (code, msg) = attach_answer(&s, "both", "GET").await;
    assert_eq!(code, 400, "{msg}");
    assert!(msg.contains(ws_only), "{msg}");
}

/// A kube client for `s` whose kubeconfig user carries no credentials at all.
async fn anonymous_client(s: &ApiServer) -> kube::Client {
    let kc = std::fs::read_to_string(s.kubeconfig_for("alice"))
        .unwrap()
        .replace("    token: alice-token\n", "    {}\n");
    let path = s.dir().join("anonymous-kubeconfig");
    std::fs::write(&path, kc).unwrap();
    let kc = kube::config::Kubeconfig::read_from(&path).unwrap();
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(cfg).unwrap()
}

#[tokio::test]
async fn requests_without_credentials_run_as_system_anonymous() {
    // --anonymous-auth=true (the default): authorization refuses, not authentication.
    let s = server().await;
    let anon = anonymous_client(&s).await;
    let st = api_err(
        Api::<Pod>::namespaced(anon.clone(), "prod")
            .get("web")
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        st.message,
        "pods \"web\" is forbidden: User \"system:anonymous\" cannot get resource \"pods\" in API \
         group \"\" in the namespace \"prod\""
    );
    // Discovery is for system:authenticated only; /version is public.
    let st = api_err(
        anon.request::<Value>(http_request("GET", "/api/v1", "", b""))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (st.code, st.message.as_str()),
        (
            403,
            "forbidden: User \"system:anonymous\" cannot get path \"/api/v1\""
        )
    );
    assert_eq!(
        anon.apiserver_version().await.unwrap().git_version,
        "v1.33.0"
    );

    // --anonymous-auth=false: 401.
    let s = ApiServer::builder()
        .namespace("prod", &[])
        .pod(fixtures::web_pod("prod", "web"))
        .anonymous_auth(false)
        .start()
        .await
        .unwrap();
    let st = api_err(
        Api::<Pod>::namespaced(anonymous_client(&s).await, "prod")
            .get("web")
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn self_subject_review_tells_the_caller_who_it_is() {
    let s = server().await;
    let review = || {
        http_request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            "application/json",
            br#"{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}"#,
        )
    };
    let alice = s.client("alice").await.unwrap();
    let answer: Value = alice.request(review()).await.unwrap();
    assert_eq!(answer["kind"], "SelfSubjectReview");
    assert_eq!(
        answer["status"]["userInfo"],
        json!({"username": "alice", "uid": "uid-alice", "groups": ["sre", "system:authenticated"]})
    );
    // Every authenticated user may ask (system:basic-user), even one with narrow rules.
    let eve: Value = s
        .client("eve")
        .await
        .unwrap()
        .request(review())
        .await
        .unwrap();
    assert_eq!(eve["status"]["userInfo"]["username"], "eve");
    // The anonymous user may not.
    let st = api_err(
        anonymous_client(&s)
            .await
            .request::<Value>(review())
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 403, "{st:?}");
    // Discovered: kube-rs finds the group and the resource.
    let discovery = kube::discovery::Discovery::new(alice).run().await.unwrap();
    let (ar, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "authentication.k8s.io",
            "v1",
            "SelfSubjectReview",
        ))
        .expect("SelfSubjectReview discovered");
    assert_eq!(ar.plural, "selfsubjectreviews");
    assert_eq!(caps.scope, kube::discovery::Scope::Cluster);
}

#[tokio::test]
async fn failed_patches_answer_as_the_patch_handler_does() {
    let s = server().await;
    let client = s.client("alice").await.unwrap();
    let path = "/api/v1/namespaces/prod/pods/web/ephemeralcontainers";
    // A JSON patch op that fails: 422 with the generic message, empty details (no causes).
    let st = api_err(
        client
            .request::<Pod>(http_request(
                "PATCH",
                path,
                "application/json-patch+json",
                br#"[{"op":"test","path":"/spec/nodeName","value":"elsewhere"}]"#,
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (st.code, st.reason.as_str(), st.message.as_str()),
        (
            422,
            "Invalid",
            "the server rejected our request due to an error in our request"
        )
    );
    assert!(
        st.details.as_ref().is_none_or(|d| d.causes.is_empty()),
        "{st:?}"
    );
    // A strategic merge patch whose merge-key list element lacks the key: a plain error
    // from the merge, answered 500 without a reason.
    let st = api_err(
        client
            .request::<Pod>(http_request(
                "PATCH",
                path,
                "application/strategic-merge-patch+json",
                br#"{"spec":{"ephemeralContainers":[{"image":"busybox"}]}}"#,
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (500, ""), "{st:?}");
    assert!(
        st.message
            .contains("does not contain declared merge key: name"),
        "{st:?}"
    );
    // A strategic merge patch that is not a JSON object: 400.
    let st = api_err(
        client
            .request::<Pod>(http_request(
                "PATCH",
                path,
                "application/strategic-merge-patch+json",
                b"[]",
            ))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (400, "BadRequest"), "{st:?}");
    assert!(
        s.pod("prod", "web")
            .unwrap()
            .spec
            .unwrap()
            .ephemeral_containers
            .is_none()
    );
}

#[tokio::test]
async fn an_unsupported_dry_run_value_is_invalid_options() {
    let s = server().await;
    let client = s.client("alice").await.unwrap();
    for (method, path, ct, body, kind) in [
        (
            "PATCH",
            "/api/v1/namespaces/prod/pods/web/ephemeralcontainers?dryRun=Yes",
            "application/strategic-merge-patch+json",
            br#"{"spec":{"ephemeralContainers":[{"name":"dbg","image":"busybox"}]}}"#.as_slice(),
            "PatchOptions",
        ),
        (
            "POST",
            "/api/v1/namespaces/prod/pods?dryRun=Yes",
            "application/json",
            br#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"busybox"}]}}"#
                .as_slice(),
            "CreateOptions",
        ),
        (
            "DELETE",
            "/api/v1/namespaces/prod/pods/web?dryRun=Yes",
            "",
            b"".as_slice(),
            "DeleteOptions",
        ),
    ] {
        let st = api_err(
            client
                .request::<Value>(http_request(method, path, ct, body))
                .await
                .unwrap_err(),
        );
        assert_eq!(
            (st.code, st.reason.as_str(), st.message.as_str()),
            (
                422,
                "Invalid",
                format!(
                    "{kind}.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: \
                     []string{{\"Yes\"}}: supported values: \"All\""
                )
                .as_str()
            ),
            "{method}"
        );
    }
    assert!(s.pod("prod", "web").is_some());
    assert!(s.pod("prod", "p").is_none());
}

#[tokio::test]
async fn writes_that_change_nothing_are_not_writes() {
    let s = server().await;
    let client = s.client("admin").await.unwrap();
    let api: Api<Pod> = Api::namespaced(client.clone(), "prod");
    let before = api.get("web").await.unwrap();
    let rv = before.metadata.resource_version.clone();
    // A watch from the current resourceVersion sees nothing for no-op writes.
    let watch = client.request_text(http_request(
        "GET",
        &format!(
            "/api/v1/namespaces/prod/pods?watch=true&resourceVersion={}&timeoutSeconds=1",
            rv.as_deref().unwrap()
        ),
        "",
        b"",
    ));
    let writes = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let pod = api.get_ephemeral_containers("web").await.unwrap();
        let put = api
            .replace_ephemeral_containers("web", &PostParams::default(), &pod)
            .await
            .unwrap();
        let patched = api
            .patch("web", &PatchParams::default(), &Patch::Merge(json!({})))
            .await
            .unwrap();
        (put, patched)
    };
    let (events, (put, patched)) = tokio::join!(watch, writes);
    assert_eq!(put.metadata.resource_version, rv, "PUT of the same pod");
    assert_eq!(patched.metadata.resource_version, rv, "empty merge patch");
    assert_eq!(events.unwrap().trim(), "", "no MODIFIED for no-op writes");
}

#[tokio::test]
async fn namespace_watch_resumes_after_its_resource_version() {
    let s = server().await;
    let client = s.client("admin").await.unwrap();
    let list = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    let rv = list.metadata.resource_version.unwrap();
    s.add_namespace("late", &[]);
    let text = client
        .request_text(http_request(
            "GET",
            &format!("/api/v1/namespaces?watch=true&resourceVersion={rv}&timeoutSeconds=1"),
            "",
            b"",
        ))
        .await
        .unwrap();
    let names: Vec<String> = text
        .lines()
        .map(|l| {
            let ev: Value = serde_json::from_str(l).unwrap();
            assert_eq!(ev["type"], "ADDED");
            ev["object"]["metadata"]["name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(names, ["late"], "only what came after {rv}");
    // From "0": every namespace.
    let text = client
        .request_text(http_request(
            "GET",
            "/api/v1/namespaces?watch=true&resourceVersion=0&timeoutSeconds=1",
            "",
            b"",
        ))
        .await
        .unwrap();
    assert_eq!(text.lines().count(), list.items.len() + 1);
}
