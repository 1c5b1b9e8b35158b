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
    // The kubelet writes "a"'s status twice after it is added (ContainerCreating, then
    // Running), each a new resourceVersion: read the pod once it has settled, or a write
    // landing between this GET and the PUT makes the PUT conflict (as it would on a cluster).
    s.wait_for_pod("prod", "web", Duration::from_secs(5), |p| {
        p.status
            .as_ref()
            .and_then(|s| s.ephemeral_container_statuses.as_ref())
            .is_some_and(|st| {
                st.iter()
                    .any(|c| c.name == "a" && c.state.as_ref().is_some_and(|s| s.running.is_some()))
            })
    })
    .await
    .expect("the kubelet runs \"a\"");
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

/// A static pod's mirror takes no ephemeral container, whatever the patch: the API server's
/// `ValidatePodEphemeralContainersUpdate` answers only that, at the empty field path.
#[tokio::test]
async fn a_static_pods_mirror_takes_no_ephemeral_container() {
    let mut mirror = fixtures::web_pod("kube-system", "etcd-cp-1");
    mirror.metadata.annotations = Some(
        [(
            "kubernetes.io/config.mirror".to_string(),
            "0123abcd".to_string(),
        )]
        .into_iter()
        .collect(),
    );
    let s = ApiServer::builder()
        .namespace("kube-system", &[])
        .pod(mirror)
        .start()
        .await
        .expect("server starts");
    let api: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "kube-system");
    // Also with an error of its own (a duplicate name): the static pod's error alone.
    for c in [eph("dbg", "busybox"), eph("app", "busybox")] {
        for pp in [PatchParams::default(), PatchParams::default().dry_run()] {
            let st = api_err(
                api.patch_ephemeral_containers(
                    "etcd-cp-1",
                    &pp,
                    &Patch::Strategic(json!({"spec": {"ephemeralContainers": [c.clone()]}})),
                )
                .await
                .unwrap_err(),
            );
            assert_eq!((st.code, st.reason.as_str()), (422, "Invalid"));
            assert_eq!(
                st.message,
                r#"Pod "etcd-cp-1" is invalid: : Forbidden: static pods do not support ephemeral containers"#
            );
            let d = st.details.unwrap();
            assert_eq!(d.causes.len(), 1);
            assert_eq!(d.causes[0].reason, "FieldValueForbidden");
            assert_eq!(
                d.causes[0].message,
                "Forbidden: static pods do not support ephemeral containers"
            );
            assert_eq!(d.causes[0].field, "");
        }
    }
    assert!(
        api.get("etcd-cp-1")
            .await
            .unwrap()
            .spec
            .unwrap()
            .ephemeral_containers
            .is_none()
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
    // Resize and stdin travel on channels of their own: the size must have reached the
    // process before `size` is typed (seen, not guessed at with a sleep).
    let process = s.process("prod", "web", "dbg").expect("the dbg process");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !process.resizes.lock().unwrap().contains(&(120, 40)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the resize never reached the process"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
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

    // An upgrade the translator does not take (SPDY, no v5 WebSocket) reaches the kubelet,
    // whose plain-text refusal of a container that does not run comes back as it is.
    let mut spdy = http_request(
        "POST",
        "/api/v1/namespaces/prod/pods/web/attach?container=dbg&stdout=true",
        "",
        b"",
    );
    spdy.headers_mut()
        .insert("upgrade", axum::http::HeaderValue::from_static("SPDY/3.1"));
    spdy.headers_mut().insert(
        "connection",
        axum::http::HeaderValue::from_static("Upgrade"),
    );
    let st = api_err(client.request::<Value>(spdy).await.unwrap_err());
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
        "metadata": {"generateName": "web.kspy-", "namespace": "prod"},
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
    assert!(name.starts_with("web.kspy-"), "{name}");

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
    // A generateName is a DNS subdomain but for a trailing `-`: one ending in `.` is refused.
    let mut dotted = decision_event("x");
    dotted.metadata.generate_name = Some("web.kspy.".into());
    let err = api_err(
        api.create(&PostParams::default(), &dotted)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422, "{}", err.message);
    assert!(
        err.message.starts_with(
            "Event \"web.kspy.\" is invalid: metadata.generateName: Invalid value: \"web.kspy.\": \
             a lowercase RFC 1123 subdomain"
        ),
        "{}",
        err.message
    );

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

/// Container validation of the fields kspy writes (`pkg/apis/core/validation`, 1.33):
/// `env[].valueFrom` (exactly one source, none beside a value), `recursiveReadOnly` (only
/// read-only, unpropagated mounts) and Bidirectional propagation (privileged containers only),
/// both named after the mount list as upstream does; user and group ID ranges; `procMount:
/// Unmasked` only with `hostUsers: false`; seccomp and AppArmor `localhostProfile` rules; no
/// whitespace around images.
#[tokio::test]
async fn container_validation_covers_security_fields_mounts_env_and_images() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("alice").await.unwrap(), "prod");
    let strategic = |c: Value| Patch::Strategic(json!({"spec": {"ephemeralContainers": [c]}}));
    let pp = PatchParams::default();

    let mut bad = eph("dbg", " busybox");
    bad["env"] = json!([
        {"name": "A", "value": "x", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "B", "valueFrom": {}},
        {"name": "C", "valueFrom": {
            "fieldRef": {"fieldPath": "metadata.name"},
            "secretKeyRef": {"name": "s", "key": "k"}
        }}
    ]);
    bad["volumeMounts"] = json!([
        {"name": "data", "mountPath": "/d", "recursiveReadOnly": "IfPossible"},
        {"name": "creds", "mountPath": "/c", "readOnly": true,
         "mountPropagation": "Bidirectional", "recursiveReadOnly": "Enabled"}
    ]);
    bad["securityContext"] = json!({
        "runAsUser": -1,
        "runAsGroup": 2147483648_i64,
        "procMount": "Unmasked",
        "seccompProfile": {"type": "Localhost"},
        "appArmorProfile": {"type": "RuntimeDefault", "localhostProfile": "x"}
    });
    let st = api_err(
        api.patch_ephemeral_containers("web", &pp, &strategic(bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 422);
    let p = "spec.ephemeralContainers[0]";
    let want = [
        format!(
            "{p}.env[0].valueFrom: Invalid value: \"\": may not be specified when `value` is not empty"
        ),
        format!(
            "{p}.env[1].valueFrom: Invalid value: \"\": must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"
        ),
        format!(
            "{p}.env[2].valueFrom: Invalid value: \"\": may not have more than one field specified at a time"
        ),
        format!(
            "{p}.volumeMounts.recursiveReadOnly: Forbidden: may only be specified when readOnly is true"
        ),
        format!(
            "{p}.volumeMounts.mountPropagation: Forbidden: Bidirectional mount propagation is available only to privileged containers"
        ),
        format!(
            "{p}.volumeMounts.recursiveReadOnly: Forbidden: may only be specified when mountPropagation is None or not specified"
        ),
        format!(
            "{p}.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive"
        ),
        format!(
            "{p}.securityContext.runAsGroup: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive"
        ),
        format!(
            "{p}.securityContext.procMount: Invalid value: \"Unmasked\": `hostUsers` must be false to use `Unmasked`"
        ),
        format!(
            "{p}.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost"
        ),
        format!(
            "{p}.securityContext.appArmorProfile.localhostProfile: Invalid value: \"x\": can only be set if the AppArmor type is Localhost"
        ),
        format!(
            "{p}.image: Invalid value: \" busybox\": must not have leading or trailing whitespace"
        ),
    ];
    assert_eq!(
        st.message,
        format!("Pod \"web\" is invalid: [{}]", want.join(", "))
    );

    // What passes: kspy's `recursiveReadOnly: IfPossible` beside `readOnly: true`,
    // Bidirectional propagation in a privileged container, a Localhost seccomp profile.
    let mut ok = eph("ok", "busybox");
    ok["volumeMounts"] = json!([
        {"name": "data", "mountPath": "/d", "mountPropagation": "Bidirectional"},
        {"name": "creds", "mountPath": "/c", "readOnly": true, "recursiveReadOnly": "IfPossible"}
    ]);
    ok["securityContext"] = json!({
        "privileged": true,
        "seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/audit.json"},
        "appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-debug"}
    });
    ok["env"] = json!([{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]);
    api.patch_ephemeral_containers("web", &pp, &strategic(ok))
        .await
        .unwrap();

    // Pod creates: the pod-level profiles and ranges, then each container's image; seccomp's
    // stray localhostProfile is reported with the whole profile as the bad value.
    let mut pod: Value = serde_json::to_value(fixtures::web_pod("prod", "badpod")).unwrap();
    pod["spec"]["containers"][0]["image"] = json!("nginx ");
    pod["spec"]["containers"][0]["securityContext"]["seccompProfile"] =
        json!({"type": "RuntimeDefault", "localhostProfile": "p"});
    pod["spec"]["securityContext"] = json!({
        "runAsUser": 2147483648_i64,
        "seccompProfile": {"type": "Bogus"},
        "appArmorProfile": {"type": "Localhost"}
    });
    let st = api_err(
        api.create(
            &PostParams::default(),
            &serde_json::from_value(pod).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    let (head, tail) = st
        .message
        .split_once("spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: core.SeccompProfile{Type:\"RuntimeDefault\", LocalhostProfile:(*string)(0x")
        .expect(&st.message);
    assert_eq!(head, "Pod \"badpod\" is invalid: [");
    let (_, rest) = tail.split_once(")}: ").expect(&st.message);
    assert_eq!(
        rest,
        "can only be set when seccomp type is Localhost, \
         spec.securityContext.runAsUser: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive, \
         spec.securityContext.seccompProfile.type: Unsupported value: \"Bogus\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\", \
         spec.securityContext.appArmorProfile.localhostProfile: Required value: must be set when AppArmor type is Localhost, \
         spec.containers[0].image: Invalid value: \"nginx \": must not have leading or trailing whitespace]"
    );

    // `procMount: Unmasked` is valid in a user namespace.
    let mut userns: Value = serde_json::to_value(fixtures::web_pod("prod", "userns")).unwrap();
    userns["spec"]["hostUsers"] = json!(false);
    userns["spec"]["containers"][0]["securityContext"]["procMount"] = json!("Unmasked");
    api.create(
        &PostParams::default(),
        &serde_json::from_value(userns).unwrap(),
    )
    .await
    .unwrap();
}

/// The ServiceAccount admission plugin (`plugin/pkg/admission/serviceaccount/admission.go`):
/// a pod naming an account that does not exist is refused (403, named by its generateName
/// when it has no name yet); the token is mounted into every init and regular container
/// without a mount at its path; an existing `kube-api-access-*` volume is reused; the pod's
/// `automountServiceAccountToken`, else the account's, decides.
#[tokio::test]
async fn service_account_admission_looks_up_and_mounts_per_container() {
    const TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "prod");
    let create = |pod: Value| {
        let api = api.clone();
        async move {
            api.create(
                &PostParams::default(),
                &serde_json::from_value(pod).unwrap(),
            )
            .await
        }
    };
    let mut robot: Value = serde_json::to_value(fixtures::web_pod("prod", "robot")).unwrap();
    robot["spec"]["serviceAccountName"] = json!("robot");
    let st = api_err(create(robot.clone()).await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        st.message,
        r#"pods "robot" is forbidden: error looking up service account prod/robot: serviceaccount "robot" not found"#
    );
    let mut generated = robot.clone();
    generated["metadata"] = json!({"generateName": "robot-", "namespace": "prod"});
    let st = api_err(create(generated).await.unwrap_err());
    assert_eq!(
        st.message,
        r#"pods "robot-" is forbidden: error looking up service account prod/robot: serviceaccount "robot" not found"#
    );
    assert!(s.pod("prod", "robot").is_none());
    s.add_service_account("prod", "robot", Some(false));
    // The account turns automounting off; the pod's own setting wins over it.
    let p = create(robot.clone()).await.unwrap();
    let spec = p.spec.unwrap();
    assert_eq!(spec.service_account_name.as_deref(), Some("robot"));
    let mounts = |c: &k8s_openapi::api::core::v1::Container| -> Vec<(String, String)> {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.clone(), m.mount_path.clone()))
            .collect()
    };
    assert!(
        !mounts(&spec.containers[0]).iter().any(|(_, p)| p == TOKEN),
        "{spec:?}"
    );
    robot["metadata"]["name"] = json!("robot2");
    robot["spec"]["automountServiceAccountToken"] = json!(true);
    let spec = create(robot).await.unwrap().spec.unwrap();
    assert!(mounts(&spec.containers[0]).iter().any(|(_, p)| p == TOKEN));

    // Per container: `sidecar` mounts its own volume at the token path and keeps it; `app`
    // and the init container get the token.
    let mut pod = serde_json::to_value(fixtures::two_container_pod("prod", "mixed")).unwrap();
    pod["spec"]["volumes"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "own-token", "emptyDir": {}}));
    pod["spec"]["containers"][1]["volumeMounts"] =
        json!([{"name": "own-token", "mountPath": TOKEN}]);
    pod["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox:1.36"}]);
    let spec = create(pod).await.unwrap().spec.unwrap();
    let token_volumes: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .filter(|n| n.starts_with("kube-api-access-"))
        .collect();
    assert_eq!(token_volumes.len(), 1, "{:?}", spec.volumes);
    let token = (token_volumes[0].clone(), TOKEN.to_string());
    assert!(mounts(&spec.containers[0]).contains(&token));
    assert_eq!(
        mounts(&spec.containers[1]),
        vec![("own-token".to_string(), TOKEN.to_string())]
    );
    assert_eq!(
        mounts(&spec.init_containers.as_ref().unwrap()[0]),
        vec![token]
    );

    // An existing kube-api-access-* volume (a copy of a pod carries one) is reused.
    let mut copy = serde_json::to_value(fixtures::web_pod("prod", "copy")).unwrap();
    copy["spec"]["volumes"].as_array_mut().unwrap().push(
        json!({"name": "kube-api-access-abcde", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}
        ]}}),
    );
    let spec = create(copy).await.unwrap().spec.unwrap();
    let names: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.clone())
        .collect();
    assert_eq!(names, ["data", "creds", "kube-api-access-abcde"]);
    assert!(
        mounts(&spec.containers[0])
            .contains(&("kube-api-access-abcde".to_string(), TOKEN.to_string()))
    );
}

/// DefaultTolerationSeconds adds its 300 s not-ready/unreachable tolerations only when no
/// toleration tolerates those NoExecute taints already (a wildcard, or the key with NoExecute
/// or no effect); the Priority plugin resolves `priorityClassName` (the system classes exist,
/// others are refused) and refuses a `priority` that contradicts the class.
#[tokio::test]
async fn default_tolerations_and_priority_follow_the_plugins() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "prod");
    let create = |name: &str, spec: Value| {
        let mut pod = serde_json::to_value(fixtures::web_pod("prod", name)).unwrap();
        for (k, v) in spec.as_object().unwrap() {
            pod["spec"][k] = v.clone();
        }
        let api = api.clone();
        async move {
            api.create(
                &PostParams::default(),
                &serde_json::from_value(pod).unwrap(),
            )
            .await
        }
    };
    let tolerations = |p: Pod| -> Vec<Value> {
        p.spec
            .unwrap()
            .tolerations
            .unwrap_or_default()
            .into_iter()
            .map(|t| serde_json::to_value(t).unwrap())
            .collect()
    };
    let not_ready = json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists",
        "effect": "NoExecute", "tolerationSeconds": 300});
    let unreachable = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
        "effect": "NoExecute", "tolerationSeconds": 300});
    // A wildcard tolerates both: nothing added.
    let wildcard = json!({"operator": "Exists"});
    let got = tolerations(
        create("wild", json!({"tolerations": [wildcard]}))
            .await
            .unwrap(),
    );
    assert_eq!(got, vec![wildcard]);
    // not-ready with NoSchedule does not tolerate the NoExecute taint; unreachable without an
    // effect does.
    let ns = json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"});
    let un = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 60});
    let got = tolerations(
        create("keyed", json!({"tolerations": [ns, un]}))
            .await
            .unwrap(),
    );
    assert_eq!(got, vec![ns, un, not_ready.clone()]);
    let got = tolerations(create("plain", json!({})).await.unwrap());
    assert_eq!(got, vec![not_ready, unreachable]);

    // Priority.
    let p = create(
        "critical",
        json!({"priorityClassName": "system-cluster-critical"}),
    )
    .await
    .unwrap();
    let spec = p.spec.unwrap();
    assert_eq!(spec.priority, Some(2_000_000_000));
    assert_eq!(
        spec.preemption_policy.as_deref(),
        Some("PreemptLowerPriority")
    );
    let st = api_err(
        create("unknown", json!({"priorityClassName": "gold"}))
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        st.message,
        r#"pods "unknown" is forbidden: no PriorityClass with name gold was found"#
    );
    let st = api_err(
        create("forged", json!({"priority": 1000}))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        st.message,
        r#"pods "forged" is forbidden: the integer value of priority (1000) must not be provided in pod spec; priority admission controller computed 0 from the given PriorityClass name"#
    );
    // The computed value itself may be sent (a copy of a pod carries it).
    let p = create(
        "copied",
        json!({"priorityClassName": "system-node-critical", "priority": 2_000_001_000,
               "preemptionPolicy": "PreemptLowerPriority"}),
    )
    .await
    .unwrap();
    assert_eq!(p.spec.unwrap().priority, Some(2_000_001_000));
}

/// generateName: `names.SimpleNameGenerator` cuts the prefix to 58 characters before the five
/// random ones, so a generated name never exceeds 63.
#[tokio::test]
async fn generate_name_prefix_is_cut_to_58_characters() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "prod");
    let prefix = format!("{}-", "debugger".repeat(9)); // 73 characters
    let mut pod = fixtures::web_pod("prod", "");
    pod.metadata.name = None;
    pod.metadata.generate_name = Some(prefix.clone());
    let created = api.create(&PostParams::default(), &pod).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert_eq!(name.len(), 63, "{name}");
    assert_eq!(&name[..58], &prefix[..58]);
    assert_eq!(
        created.metadata.generate_name.as_deref(),
        Some(prefix.as_str())
    );
    // A short prefix is kept whole.
    pod.metadata.generate_name = Some("web-".into());
    let name = api
        .create(&PostParams::default(), &pod)
        .await
        .unwrap()
        .metadata
        .name
        .unwrap();
    assert!(name.starts_with("web-") && name.len() == 9, "{name}");
}

/// A pod name is a DNS-1123 subdomain as `IsDNS1123Subdomain` checks it: at most 253
/// characters and the regex, whose dot-separated parts have no 63-character limit of their own
/// (a label's). So `node-debugger-NODE-XXXXX` for a long node name, which `kspy node` cuts to
/// 253 characters, is a valid name; a longer one gets the length error, an upper-case one the
/// regex error, each as the API server words them.
#[tokio::test]
async fn pod_names_are_subdomains_without_a_label_limit() {
    let s = server().await;
    let api: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "prod");
    let create = |name: String| {
        let api = api.clone();
        async move {
            let pod = fixtures::web_pod("prod", &name);
            api.create(&PostParams::default(), &pod).await
        }
    };
    let long = format!("node-debugger-{}.example-x2x4q", "n".repeat(225));
    assert_eq!(long.len(), 253);
    let created = create(long.clone()).await.expect("a 253-character name");
    assert_eq!(created.metadata.name.as_deref(), Some(long.as_str()));

    let status = api_err(
        create(format!("{long}x"))
            .await
            .expect_err("254 characters"),
    );
    assert_eq!(status.code, 422);
    assert!(
        status
            .message
            .contains("metadata.name: Invalid value: \"node-debugger-nnn")
            && status
                .message
                .ends_with(": must be no more than 253 characters"),
        "{}",
        status.message
    );
    let status = api_err(create("Web".into()).await.expect_err("upper case"));
    assert!(
        status
            .message
            .contains("a lowercase RFC 1123 subdomain must consist of lower case"),
        "{}",
        status.message
    );
}

/// PodSecurity evaluates an update only when it is significant (`isSignificantPodUpdate`),
/// for the pod and its `ephemeralcontainers` alike, and then judges the whole pod: adding a
/// conforming ephemeral container to a pod that violates the level (created before the label)
/// is refused, an update that adds nothing is not.
#[tokio::test]
async fn pod_security_evaluates_only_significant_updates() {
    let mut legacy = fixtures::web_pod("base", "legacy");
    legacy.spec.as_mut().unwrap().host_pid = Some(true);
    let s = ApiServer::builder()
        .namespace(
            "base",
            &[("pod-security.kubernetes.io/enforce", "baseline")],
        )
        .pod(legacy)
        .start()
        .await
        .unwrap();
    let api: Api<Pod> = Api::namespaced(s.client("admin").await.unwrap(), "base");
    let pp = PatchParams::default();
    let st = api_err(
        api.patch_ephemeral_containers(
            "legacy",
            &pp,
            &Patch::Strategic(json!({"spec": {"ephemeralContainers": [eph("dbg", "busybox")]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        st.message,
        r#"pods "legacy" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostPID=true)"#
    );
    // Nothing added, nothing re-imaged: not evaluated.
    api.patch_ephemeral_containers("legacy", &pp, &Patch::Merge(json!({})))
        .await
        .unwrap();
    api.patch(
        "legacy",
        &pp,
        &Patch::Merge(json!({"metadata": {"labels": {"seen": "yes"}}})),
    )
    .await
    .unwrap();
    // A new image is significant.
    let st = api_err(
        api.patch(
            "legacy",
            &pp,
            &Patch::Strategic(
                json!({"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}),
            ),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(st.code, 403, "{}", st.message);
}

/// On create the pod strategy syncs AppArmor profile fields and the deprecated annotations
/// (`applyAppArmorVersionSkew`) before validating admission: a field-only Unconfined profile
/// gains its annotation, which PodSecurity then reports too; an annotation-only profile gains
/// its field and a deprecation warning; an annotation contradicting the field is invalid.
#[tokio::test]
async fn app_armor_fields_and_annotations_are_synced_on_create() {
    let s = ApiServer::builder()
        .namespace("prod", &[])
        .namespace(
            "base",
            &[("pod-security.kubernetes.io/enforce", "baseline")],
        )
        .start()
        .await
        .unwrap();
    let client = s.client("admin").await.unwrap();
    let base: Api<Pod> = Api::namespaced(client.clone(), "base");
    let mut field_only: Value = serde_json::to_value(fixtures::web_pod("base", "aa")).unwrap();
    field_only["spec"]["containers"][0]["securityContext"]["appArmorProfile"] =
        json!({"type": "Unconfined"});
    let st = api_err(
        base.create(
            &PostParams::default(),
            &serde_json::from_value(field_only).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        st.message,
        r#"pods "aa" is forbidden: violates PodSecurity "baseline:latest": forbidden AppArmor profiles (container "app" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/app=\"unconfined\"")"#
    );

    let mut annotated = serde_json::to_value(fixtures::web_pod("prod", "annotated")).unwrap();
    annotated["metadata"]["annotations"] =
        json!({"container.apparmor.security.beta.kubernetes.io/app": "localhost/k8s-debug"});
    let (code, warnings) = warnings_of(
        &client,
        "POST",
        "/api/v1/namespaces/prod/pods",
        "application/json",
        &annotated,
    )
    .await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        vec![
            r#"299 - "metadata.annotations[container.apparmor.security.beta.kubernetes.io/app]: deprecated since v1.30; use the \"appArmorProfile\" field instead""#
        ]
    );
    let stored = s.pod("prod", "annotated").unwrap();
    let sc = serde_json::to_value(&stored.spec.unwrap().containers[0].security_context).unwrap();
    assert_eq!(
        sc["appArmorProfile"],
        json!({"type": "Localhost", "localhostProfile": "k8s-debug"})
    );
    // An AppArmor annotation that contradicts the container's field is refused on create.
    let mut mismatch: Value = serde_json::to_value(fixtures::web_pod("prod", "mismatch")).unwrap();
    mismatch["metadata"]["annotations"] =
        json!({"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"});
    mismatch["spec"]["containers"][0]["securityContext"]["appArmorProfile"] =
        json!({"type": "Localhost", "localhostProfile": "k8s-debug"});
    let prod: Api<Pod> = Api::namespaced(client, "prod");
    let st = api_err(
        prod.create(
            &PostParams::default(),
            &serde_json::from_value(mismatch).unwrap(),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        st.message,
        r#"Pod "mismatch" is invalid: spec.containers[0].securityContext.appArmorProfile.type: Forbidden: apparmor type in annotation and field must match"#
    );
}

/// The `Warning` headers of a raw request through `client` (kube-rs does not surface them).
async fn warnings_of(
    client: &kube::Client,
    method: &str,
    uri: &str,
    content_type: &str,
    body: &Value,
) -> (u16, Vec<String>) {
    let req = axum::http::Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.to_string().into_bytes()))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    let warnings = resp
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    (resp.status().as_u16(), warnings)
}

/// PodSecurity's other baseline checks (`policy/check_*.go`): AppArmor (field and
/// annotation), hostPorts, procMount, SELinux options, seccomp Unconfined, unsafe sysctls and
/// Windows host processes, in the registry's order and wording; restricted refuses an
/// explicit `runAsUser: 0`; the safe sysctls depend on the pinned version.
#[tokio::test]
async fn pod_security_baseline_covers_every_check() {
    let s = ApiServer::builder()
        .namespace(
            "base",
            &[("pod-security.kubernetes.io/enforce", "baseline")],
        )
        .namespace(
            "old",
            &[
                ("pod-security.kubernetes.io/enforce", "baseline"),
                ("pod-security.kubernetes.io/enforce-version", "v1.31"),
            ],
        )
        .namespace(
            "strict",
            &[("pod-security.kubernetes.io/enforce", "restricted")],
        )
        .pod(fixtures::web_pod("base", "web"))
        .start()
        .await
        .unwrap();
    let client = s.client("admin").await.unwrap();
    let create = |ns: &str, pod: Value| {
        let api: Api<Pod> = Api::namespaced(client.clone(), ns);
        async move {
            api.create(
                &PostParams::default(),
                &serde_json::from_value(pod).unwrap(),
            )
            .await
        }
    };
    let mut bad: Value = serde_json::to_value(fixtures::web_pod("base", "bad")).unwrap();
    bad["metadata"]["annotations"] =
        json!({"container.apparmor.security.beta.kubernetes.io/app": "unconfined"});
    bad["spec"]["hostUsers"] = json!(false);
    bad["spec"]["securityContext"] = json!({"sysctls": [
        {"name": "kernel.msgmax", "value": "65536"},
        {"name": "net.ipv4.tcp_syncookies", "value": "1"},
        {"name": "net.core.somaxconn", "value": "1024"}
    ]});
    let c = &mut bad["spec"]["containers"][0];
    c["ports"] = json!([
        {"containerPort": 8080, "hostPort": 8080},
        {"containerPort": 80, "hostPort": 80}
    ]);
    c["securityContext"] = json!({
        "appArmorProfile": {"type": "Unconfined"},
        "seLinuxOptions": {"type": "spc_t", "user": "system_u"},
        // Forbidden at 1.33 even in a user namespace: the relaxation is an alpha gate.
        "procMount": "Unmasked",
        "seccompProfile": {"type": "Unconfined"}
    });
    let st = api_err(create("base", bad).await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        st.message,
        r#"pods "bad" is forbidden: violates PodSecurity "baseline:latest": forbidden AppArmor profiles (container "app" and annotation must not set AppArmor profile type to "Unconfined", "container.apparmor.security.beta.kubernetes.io/app=\"unconfined\""), hostPort (container "app" uses hostPorts 80, 8080), procMount (container "app" must not set securityContext.procMount to "Unmasked"), seLinuxOptions (container "app" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set), seccompProfile (container "app" must not set securityContext.seccompProfile.type to "Unconfined"), forbidden sysctls (kernel.msgmax, net.core.somaxconn)"#
    );

    // A Windows host process (which needs the host network).
    let mut win: Value = serde_json::to_value(fixtures::web_pod("base", "win")).unwrap();
    win["spec"]["hostNetwork"] = json!(true);
    win["spec"]["securityContext"] = json!({"windowsOptions": {"hostProcess": true}});
    let st = api_err(create("base", win).await.unwrap_err());
    assert_eq!(
        st.message,
        r#"pods "win" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)"#
    );

    // The allowed values pass: RuntimeDefault/Localhost profiles, container_t, Default.
    let mut ok: Value = serde_json::to_value(fixtures::web_pod("base", "ok")).unwrap();
    ok["metadata"]["annotations"] =
        json!({"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"});
    ok["spec"]["securityContext"] = json!({
        "seLinuxOptions": {"type": "container_t", "level": "s0:c1,c2"},
        "seccompProfile": {"type": "RuntimeDefault"},
        "sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "4096 87380 6291456"}]
    });
    ok["spec"]["containers"][0]["securityContext"]["procMount"] = json!("Default");
    ok["spec"]["containers"][0]["securityContext"]["appArmorProfile"] =
        json!({"type": "RuntimeDefault"});
    create("base", ok.clone()).await.unwrap();
    // net.ipv4.tcp_rmem is safe from policy 1.32 on only.
    ok["metadata"]["namespace"] = json!("old");
    let st = api_err(create("old", ok).await.unwrap_err());
    assert_eq!(
        st.message,
        r#"pods "ok" is forbidden: violates PodSecurity "baseline:v1.31": forbidden sysctls (net.ipv4.tcp_rmem)"#
    );

    // An ephemeral container is checked too.
    let base: Api<Pod> = Api::namespaced(client.clone(), "base");
    let st = api_err(
        base.patch_ephemeral_containers(
            "web",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"ephemeralContainers": [{
                "name": "dbg", "image": "busybox",
                "securityContext": {"seccompProfile": {"type": "Unconfined"}}
            }]}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(
        st.message,
        r#"pods "web" is forbidden: violates PodSecurity "baseline:latest": seccompProfile (container "dbg" must not set securityContext.seccompProfile.type to "Unconfined")"#
    );

    // Restricted: an explicit runAsUser 0, even with runAsNonRoot set.
    let mut root: Value = serde_json::to_value(fixtures::hardened_pod("strict", "root")).unwrap();
    root["spec"]["containers"][0]["securityContext"]["runAsUser"] = json!(0);
    let st = api_err(create("strict", root).await.unwrap_err());
    assert_eq!(
        st.message,
        r#"pods "root" is forbidden: violates PodSecurity "restricted:latest": runAsUser=0 (container "app" must not set runAsUser=0)"#
    );
}

/// The `warn` label: a pod the enforced level admits but the warned level would not is
/// created with the plugin's `Warning` header; a refused request carries none; ephemeral
/// container updates warn the same way.
#[tokio::test]
async fn pod_security_warn_label_returns_warnings() {
    let s = ApiServer::builder()
        .namespace(
            "warned",
            &[
                ("pod-security.kubernetes.io/enforce", "baseline"),
                ("pod-security.kubernetes.io/warn", "restricted"),
                ("pod-security.kubernetes.io/warn-version", "v1.33"),
                ("pod-security.kubernetes.io/audit", "restricted"),
            ],
        )
        .pod(fixtures::hardened_pod("warned", "hard"))
        .start()
        .await
        .unwrap();
    let client = s.client("admin").await.unwrap();
    let pods = "/api/v1/namespaces/warned/pods";
    let web = serde_json::to_value(fixtures::web_pod("warned", "web")).unwrap();
    let (code, warnings) = warnings_of(&client, "POST", pods, "application/json", &web).await;
    assert_eq!(code, 201);
    assert_eq!(
        warnings,
        vec![
            r#"299 - "would violate PodSecurity \"restricted:v1.33\": allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"app\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")""#
        ]
    );
    // Refused by the enforced level: the error only, no warning.
    let mut bad = serde_json::to_value(fixtures::web_pod("warned", "bad")).unwrap();
    bad["spec"]["hostPID"] = json!(true);
    let (code, warnings) = warnings_of(&client, "POST", pods, "application/json", &bad).await;
    assert_eq!(code, 403);
    assert!(warnings.is_empty(), "{warnings:?}");
    // A conforming pod: no warning.
    let ok = serde_json::to_value(fixtures::hardened_pod("warned", "ok")).unwrap();
    let (code, warnings) = warnings_of(&client, "POST", pods, "application/json", &ok).await;
    assert_eq!((code, warnings.len()), (201, 0), "{warnings:?}");
    // An ephemeral container without the restricted securityContext.
    let (code, warnings) = warnings_of(
        &client,
        "PATCH",
        "/api/v1/namespaces/warned/pods/hard/ephemeralcontainers",
        "application/strategic-merge-patch+json",
        &json!({"spec": {"ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}}),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        warnings,
        vec![
            r#"299 - "would violate PodSecurity \"restricted:v1.33\": allowPrivilegeEscalation != false (container \"dbg\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"dbg\" must set securityContext.capabilities.drop=[\"ALL\"])""#
        ]
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
    // A plain request (no upgrade) that passes authorization is refused by the upgrade-aware
    // proxy, before the kubelet.
    let ws_only = "Upgrade request required";

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
    let pod = api.get_ephemeral_containers("web").await.unwrap();
    let put = api
        .replace_ephemeral_containers("web", &PostParams::default(), &pod)
        .await
        .unwrap();
    let patched = api
        .patch("web", &PatchParams::default(), &Patch::Merge(json!({})))
        .await
        .unwrap();
    assert_eq!(put.metadata.resource_version, rv, "PUT of the same pod");
    assert_eq!(patched.metadata.resource_version, rv, "empty merge patch");
    // Then a write that changes something.
    let labelled = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    assert_ne!(labelled.metadata.resource_version, rv, "a real write");
    // A watch from the resourceVersion before them replays the history since: the real write
    // alone. (Replayed, not watched live, so no timing decides what it sees.)
    let events = client
        .request_text(http_request(
            "GET",
            &format!(
                "/api/v1/namespaces/prod/pods?watch=true&resourceVersion={}&timeoutSeconds=1",
                rv.as_deref().unwrap()
            ),
            "",
            b"",
        ))
        .await
        .unwrap();
    let events: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seen: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} rv {}",
                e["type"], e["object"]["metadata"]["resourceVersion"]
            )
        })
        .collect();
    assert_eq!(events.len(), 1, "no MODIFIED for no-op writes: {seen:?}");
    assert_eq!(events[0]["type"], "MODIFIED");
    assert_eq!(
        events[0]["object"]["metadata"]["resourceVersion"],
        labelled.metadata.resource_version.as_deref().unwrap()
    );
    assert_eq!(events[0]["object"]["metadata"]["labels"]["touched"], "yes");
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

/// Lists page as the real server pages them: `limit` items in namespace/name order, a
/// `continue` token and `remainingItemCount` while more remain, the next page from the token;
/// a token that is not one is a 400, and a limit of 0 lists everything.
#[tokio::test]
async fn lists_page_by_limit_and_continue() {
    let s = ApiServer::builder()
        .namespace("prod", &[])
        .namespace("ops", &[])
        .pod(fixtures::web_pod("prod", "web"))
        .pod(fixtures::web_pod("prod", "api"))
        .pod(fixtures::web_pod("prod", "db"))
        .pod(fixtures::web_pod("ops", "tools"))
        .start()
        .await
        .expect("server starts");
    let client = s.client("admin").await.unwrap();
    let all: Api<Pod> = Api::all(client.clone());
    let mut names = Vec::new();
    let mut remaining = Vec::new();
    let mut params = ListParams::default().limit(3);
    loop {
        let page = all.list(&params).await.unwrap();
        assert!(page.items.len() <= 3);
        names.extend(page.items.iter().map(|p| {
            format!(
                "{}/{}",
                p.metadata.namespace.as_deref().unwrap_or_default(),
                p.metadata.name.as_deref().unwrap_or_default()
            )
        }));
        remaining.push(page.metadata.remaining_item_count);
        match page.metadata.continue_ {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(names, ["ops/tools", "prod/api", "prod/db", "prod/web"]);
    assert_eq!(remaining, [Some(1), None]);

    // One namespace; a limit of 0 is no limit.
    let prod: Api<Pod> = Api::namespaced(client.clone(), "prod");
    let page = prod.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(page.metadata.continue_.is_some());
    let page = prod.list(&ListParams::default().limit(0)).await.unwrap();
    assert_eq!(page.items.len(), 3);
    assert_eq!(page.metadata.continue_, None);

    let e = api_err(
        prod.list(&ListParams::default().continue_token("not a token"))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code, 400);
    assert!(
        e.message.starts_with("continue key is not valid"),
        "{}",
        e.message
    );
}
