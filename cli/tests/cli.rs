//! The real `kspy` binary against a recording stand-in API server: the exact sequence and
//! bodies of requests for attach, dry runs, copy and node, and the messages for API errors.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{FakeApi, FakeProxy, Recorded, Reply, WEB, texts, web_pod};

/// A pod store answering like the API server for the few endpoints kspy uses.
struct Sim {
    pod: Value,
    /// Runs on admitted ephemeral containers, like a mutating webhook (dry runs included).
    webhook: Option<fn(&mut Value)>,
    /// The state the watch reports for new debug containers.
    new_state: Value,
    /// Answers a PATCH of ephemeralcontainers instead of admitting it.
    refuse_patch: Option<fn() -> Reply>,
    /// How many PATCHes of ephemeralcontainers to answer with 409 Conflict (the object was
    /// modified meanwhile) before admitting one.
    conflicts: u32,
    /// Runs on the pod once a debug container is added: what happens to it meanwhile.
    after_patch: Option<fn(&mut Value)>,
    /// Runs on the pod just before each of the next `races` PATCHes of ephemeralcontainers
    /// is judged: someone else's write between kspy's read and its write (the pod's
    /// resourceVersion moves on).
    meanwhile: Option<fn(&mut Value)>,
    races: u32,
    /// Whether the writes of `meanwhile` also come before dry-run requests.
    race_dry_runs: bool,
    /// Containers whose process exited (reported by the fake kubelet): name, exit code, and
    /// when the pod's status starts showing it.
    exited: Vec<(String, i32, Instant)>,
    resource_version: u64,
    /// What `pods/log` answers.
    logs: Vec<u8>,
    /// Whether `pods/log` is refused (403, RBAC).
    logs_refused: bool,
    /// Whether watching pods is refused (403, RBAC: a role granting the patch but not watch).
    watch_refused: bool,
}

/// How long after a container's process exits its pod status says so (the kubelet's status
/// sync; about a second on a real node).
const STATUS_DELAY: Duration = Duration::from_millis(300);

impl Sim {
    fn new() -> Sim {
        Sim {
            pod: web_pod(),
            webhook: None,
            new_state: json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-01-01T00:05:00Z"}}),
            refuse_patch: None,
            conflicts: 0,
            after_patch: None,
            meanwhile: None,
            races: 0,
            race_dry_runs: false,
            exited: Vec::new(),
            resource_version: 12345,
            logs: b"hello from the debug container\n".to_vec(),
            logs_refused: false,
            watch_refused: false,
        }
    }

    /// The pod as the API server shows it now: the debug containers added have a status
    /// (`new_state`), and those whose process exited show it, once the kubelet has said so.
    fn current(&self) -> Value {
        let mut pod = self.pod.clone();
        let names: Vec<String> = pod["spec"]["ephemeralContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_string))
            .collect();
        let Some(statuses) = pod["status"]["ephemeralContainerStatuses"].as_array_mut() else {
            return pod;
        };
        for n in names {
            if !statuses.iter().any(|s| s["name"] == n.as_str()) {
                statuses.push(
                    json!({"name": n, "image": "busybox:latest", "imageID": "", "ready": false,
                    "restartCount": 0, "state": self.new_state.clone()}),
                );
            }
        }
        for (name, code, visible) in &self.exited {
            if Instant::now() < *visible {
                continue;
            }
            for status in statuses.iter_mut().filter(|s| s["name"] == name.as_str()) {
                let reason = if *code == 0 { "Completed" } else { "Error" };
                status["state"] = json!({"terminated": {"exitCode": code, "reason": reason,
                    "startedAt": "2026-01-01T00:05:00Z", "finishedAt": "2026-01-01T00:06:00Z"}});
            }
        }
        pod
    }
}

const POD_PATH: &str = "/api/v1/namespaces/prod/pods/web-7d9f8c6b5-x2x4q";

/// The API server's answer to a JSON patch that does not apply to the pod as it is now, a
/// failed `test` op among others (patch.go: `NewGenericServerResponse(422, …)`, no causes).
fn json_patch_not_applied() -> Reply {
    Reply::status(
        422,
        "Invalid",
        "the server rejected our request due to an error in our request",
        json!({}),
    )
}

/// Applies a PATCH of ephemeralcontainers to `pod` as the API server does: the names of the
/// containers added, or its refusal (a failed JSON patch `test`; existing ephemeral
/// containers removed).
fn apply_patch(pod: &mut Value, r: &Recorded) -> Result<Vec<String>, Reply> {
    let before: Vec<Value> = pod["spec"]["ephemeralContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let body = r.json();
    let mut added = Vec::new();
    let mut new_list = before.clone();
    match r.content_type.as_str() {
        "application/strategic-merge-patch+json" => {
            for c in body["spec"]["ephemeralContainers"]
                .as_array()
                .expect("containers")
            {
                new_list.push(c.clone());
                added.push(c.clone());
            }
        }
        "application/json-patch+json" => {
            for op in body.as_array().expect("ops") {
                let path = op["path"].as_str().expect("path");
                match (op["op"].as_str().expect("op"), path) {
                    // Compared with the pod stored now, as the server applies the patch.
                    ("test", _) if pod.pointer(path) == Some(&op["value"]) => {}
                    ("test", _) => return Err(json_patch_not_applied()),
                    ("add", "/spec/ephemeralContainers/-") => {
                        new_list.push(op["value"].clone());
                        added.push(op["value"].clone());
                    }
                    ("add", "/spec/ephemeralContainers") => {
                        new_list = op["value"].as_array().expect("value").clone();
                        added = new_list.clone();
                    }
                    other => panic!("unexpected op {other:?}"),
                }
            }
        }
        other => panic!("unexpected content type {other}"),
    }
    // Validation: existing ephemeral containers may not be removed.
    if let Some(gone) = before
        .iter()
        .find(|c| !new_list.iter().any(|n| n["name"] == c["name"]))
    {
        let why = format!(
            "existing ephemeral containers {} may not be removed\n",
            gone["name"]
        );
        return Err(Reply::status(
            422,
            "Invalid",
            &format!("Pod \"{WEB}\" is invalid: spec.ephemeralContainers: Forbidden: {why}"),
            json!({"name": WEB, "kind": "Pod", "causes": [{"reason": "FieldValueForbidden",
                "message": format!("Forbidden: {why}"), "field": "spec.ephemeralContainers"}]}),
        ));
    }
    pod["spec"]["ephemeralContainers"] = Value::Array(new_list);
    Ok(added
        .iter()
        .filter(|c| !before.iter().any(|b| b["name"] == c["name"]))
        .map(|c| c["name"].as_str().expect("name").to_string())
        .collect())
}

/// `kspy attach WEB -c app --name NAME -i`, with `input` on stdin.
fn attach_stdin(api: &FakeApi, name: &str, input: &[u8]) -> std::process::Output {
    api.kspy_with_input(&["attach", WEB, "-c", "app", "--name", name, "-i"], input)
}

/// [`sim_api`] where the new debug container starts running at once.
fn running_sim_api() -> (FakeApi, Arc<Mutex<Sim>>) {
    let mut sim = Sim::new();
    sim.new_state = json!({"running": {"startedAt": "2026-01-01T00:05:00Z"}});
    sim_api(sim)
}

fn sim_api(sim: Sim) -> (FakeApi, Arc<Mutex<Sim>>) {
    let sim = Arc::new(Mutex::new(sim));
    let s = sim.clone();
    let kubelet = sim.clone();
    let on_exit = move |container: &str, code: i32| {
        kubelet.lock().expect("sim").exited.push((
            container.to_string(),
            code,
            Instant::now() + STATUS_DELAY,
        ));
    };
    let api = FakeApi::start_with_kubelet(
        move |r: &Recorded| {
            let mut sim = s.lock().expect("sim");
            let watch = r.param("watch").as_deref() == Some("true");
            match (r.method.as_str(), r.path.as_str()) {
                ("GET", POD_PATH) => Reply::ok(&sim.current()),
                ("GET", "/api/v1/namespaces/prod/pods") if watch && sim.watch_refused => {
                    Reply::status(
                        403,
                        "Forbidden",
                        "pods is forbidden: User \"dev\" cannot watch resource \"pods\" in API \
                         group \"\" in the namespace \"prod\"",
                        json!({"kind": "pods"}),
                    )
                }
                ("GET", "/api/v1/namespaces/prod/pods") if watch => {
                    Reply::events(&[("MODIFIED", sim.current())])
                }
                ("GET", "/api/v1/namespaces/prod/pods") => Reply::ok(&json!({
                    "kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "1"}, "items": [sim.pod.clone()]
                })),
                ("PATCH", p) if p == format!("{POD_PATH}/ephemeralcontainers") => {
                    if let Some(refuse) = sim.refuse_patch {
                        return refuse();
                    }
                    if sim.conflicts > 0 && r.param("dryRun").is_none() {
                        sim.conflicts -= 1;
                        return Reply::status(
                            409,
                            "Conflict",
                            &format!(
                                "Operation cannot be fulfilled on pods \"{WEB}\": the object has been modified; please apply your changes to the latest version and try again"
                            ),
                            json!({"name": WEB, "kind": "pods"}),
                        );
                    }
                    if sim.races > 0 && (sim.race_dry_runs || r.param("dryRun").is_none()) {
                        sim.races -= 1;
                        if let Some(write) = sim.meanwhile {
                            write(&mut sim.pod);
                        }
                        sim.resource_version += 1;
                        sim.pod["metadata"]["resourceVersion"] =
                            json!(sim.resource_version.to_string());
                    }
                    let mut pod = sim.pod.clone();
                    let added = match apply_patch(&mut pod, r) {
                        Ok(added) => added,
                        Err(refused) => return refused,
                    };
                    if let Some(webhook) = sim.webhook {
                        for c in pod["spec"]["ephemeralContainers"]
                            .as_array_mut()
                            .expect("list")
                        {
                            if added.iter().any(|a| c["name"] == a.as_str()) {
                                webhook(c);
                            }
                        }
                    }
                    if r.param("dryRun").is_none() {
                        sim.resource_version += 1;
                        pod["metadata"]["resourceVersion"] =
                            json!(sim.resource_version.to_string());
                        sim.pod = pod.clone();
                        if let Some(then) = sim.after_patch {
                            then(&mut sim.pod);
                        }
                    }
                    Reply::ok(&pod)
                }
                ("GET", p) if p == format!("{POD_PATH}/log") && sim.logs_refused => Reply::status(
                    403,
                    "Forbidden",
                    &format!(
                        "pods \"{WEB}\" is forbidden: User \"dev\" cannot get resource \"pods/log\" in API group \"\" in the namespace \"prod\""
                    ),
                    json!({"name": WEB, "kind": "pods"}),
                ),
                ("GET", p) if p == format!("{POD_PATH}/log") => Reply::bytes(&sim.logs),
                _ => Reply::status(
                    404,
                    "NotFound",
                    "the server could not find the requested resource",
                    json!({}),
                ),
            }
        },
        on_exit,
    );
    (api, sim)
}

fn kspy_webhook(c: &mut Value) {
    if c.get("targetContainerName").is_none() {
        c["targetContainerName"] = json!("sidecar");
    }
    c["imagePullPolicy"] = json!("IfNotPresent");
}

#[test]
fn attach_sequence_patch_watch_then_logs_of_a_terminated_container() {
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--attach",
        "--",
        "echo",
        "hi",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "stderr: {stderr}");
    let reqs = api.requests();
    let lines: Vec<String> = reqs
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        lines,
        vec![
            format!("GET {POD_PATH}"),
            format!("PATCH {POD_PATH}/ephemeralcontainers"),
            "GET /api/v1/namespaces/prod/pods".to_string(),
            format!("GET {POD_PATH}/log"),
        ]
    );
    let patch = &reqs[1];
    assert_eq!(patch.query, "fieldManager=kspy");
    assert_eq!(patch.content_type, "application/strategic-merge-patch+json");
    assert_eq!(
        patch.json(),
        json!({"spec": {"ephemeralContainers": [{
            "name": "debugger-tst42", "image": "busybox:latest", "command": ["echo", "hi"],
            "targetContainerName": "app", "terminationMessagePolicy": "File",
            "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}
        }]}})
    );
    let watch = &reqs[2];
    assert_eq!(watch.param("watch").as_deref(), Some("true"));
    assert_eq!(
        watch.param("fieldSelector").as_deref(),
        Some(format!("metadata.name={WEB}").as_str())
    );
    assert_eq!(
        watch.param("resourceVersion").as_deref(),
        Some("12346"),
        "watches from the patched pod"
    );
    assert_eq!(
        reqs[3].param("container").as_deref(),
        Some("debugger-tst42")
    );
    assert_eq!(stdout, "hello from the debug container\n");
    assert!(stderr.contains("already terminated"), "{stderr}");
}

#[test]
fn attach_json_patch_appends_to_the_list() {
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--patch-type",
        "json",
        "--profile",
        "legacy",
    ]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let reqs = api.requests();
    assert_eq!(reqs.len(), 2, "no attach without -i: {:?}", api.lines());
    assert_eq!(reqs[1].content_type, "application/json-patch+json");
    assert_eq!(
        reqs[1].json(),
        json!([{"op": "add", "path": "/spec/ephemeralContainers/-", "value": {
            "name": "debugger-tst42", "image": "busybox:latest", "targetContainerName": "app",
            "terminationMessagePolicy": "File"
        }}])
    );
}

/// The fixture's pod without ephemeral containers: a JSON patch must create the list.
fn without_debug_containers(sim: &mut Sim) {
    if let Some(spec) = sim.pod["spec"].as_object_mut() {
        spec.remove("ephemeralContainers");
    }
    sim.pod["status"]["ephemeralContainerStatuses"] = json!([]);
}

/// A JSON patch creating the list of ephemeral containers would replace one that someone else
/// adds between kspy's GET and its PATCH; it is tested against the resourceVersion read, and
/// when the test fails (a 422 without causes, as the API server answers), kspy reads the pod
/// again and sends the patch built anew, once.
#[test]
fn json_patch_creating_the_list_is_rebuilt_when_the_pod_changed_meanwhile() {
    fn someone_adds_a_debug_container(pod: &mut Value) {
        pod["spec"]["ephemeralContainers"] = json!([{"name": "debugger-other",
            "image": "busybox:latest", "terminationMessagePolicy": "File"}]);
    }
    fn the_kubelet_updates_the_status(pod: &mut Value) {
        pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    }
    let attach = &[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--patch-type",
        "json",
        "--profile",
        "legacy",
    ];
    let get = format!("GET {POD_PATH}");
    let patch = format!("PATCH {POD_PATH}/ephemeralcontainers?fieldManager=kspy");
    let container = json!({"name": "debugger-tst42", "image": "busybox:latest",
        "targetContainerName": "app", "terminationMessagePolicy": "File"});

    let mut sim = Sim::new();
    without_debug_containers(&mut sim);
    sim.meanwhile = Some(someone_adds_a_debug_container);
    sim.races = 1;
    let (api, sim) = sim_api(sim);
    let out = api.kspy(attach);
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_eq!(
        api.lines(),
        vec![get.clone(), patch.clone(), get.clone(), patch.clone()]
    );
    let reqs = api.requests();
    assert_eq!(
        reqs[1].json(),
        json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": "12345"},
            {"op": "add", "path": "/spec/ephemeralContainers", "value": [container.clone()]}
        ])
    );
    assert_eq!(
        reqs[3].json(),
        json!([{"op": "add", "path": "/spec/ephemeralContainers/-", "value": container.clone()}]),
        "the list exists now: appended to"
    );
    let names: Vec<Value> = sim.lock().expect("sim").pod["spec"]["ephemeralContainers"]
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].clone())
        .collect();
    assert_eq!(names, [json!("debugger-other"), json!("debugger-tst42")]);

    // The pod changes again before the second PATCH: reported, not retried forever.
    let mut sim = Sim::new();
    without_debug_containers(&mut sim);
    sim.meanwhile = Some(the_kubelet_updates_the_status);
    sim.races = 2;
    let (api, _) = sim_api(sim);
    let out = api.kspy(attach);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(api.lines(), vec![get.clone(), patch.clone(), get, patch]);
    assert_eq!(
        api.requests()[3].json()[0]["value"],
        "12346",
        "tested against the pod read again"
    );
    assert!(
        stderr.starts_with(&format!(
            "kspy: could not add debug container debugger-tst42 to pod prod/{WEB}: the pod was \
             changed by someone else at the same time (its resourceVersion no longer matched \
             the JSON patch's test)\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: run the same command again"),
        "{stderr}"
    );
}

/// `--mount-target` mirrors the target's mounts but those of a subPath (the API server refuses
/// them on ephemeral containers), and says which it left out.
#[test]
fn mount_target_leaves_sub_path_mounts_out_and_says_so() {
    let mut sim = Sim::new();
    sim.pod["spec"]["containers"][0]["volumeMounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"name": "config", "mountPath": "/etc/web/app.yaml", "subPath": "app.yaml"}));
    let (api, _) = sim_api(sim);
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--mount-target",
    ]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "note: volume \"config\" of container \"app\" was not mounted at /etc/web/app.yaml: \
             the target mounts subPath \"app.yaml\" of it, which an ephemeral container cannot; \
             mount the whole volume elsewhere with --mount config:PATH:ro\n"
        ),
        "{stderr}"
    );
    let mounts = api.requests()[1].json()["spec"]["ephemeralContainers"][0]["volumeMounts"].clone();
    let paths: Vec<&str> = mounts
        .as_array()
        .expect("mounts")
        .iter()
        .map(|m| m["mountPath"].as_str().expect("path"))
        .collect();
    assert_eq!(
        paths,
        [
            "/etc/web",
            "/var/lib/web",
            "/var/run/secrets/kubernetes.io/serviceaccount"
        ]
    );
    assert!(!mounts.to_string().contains("subPath"), "{mounts}");
}

#[test]
fn dry_run_server_sends_dry_run_all_and_reports_what_admission_changed() {
    let mut sim = Sim::new();
    sim.webhook = Some(kspy_webhook);
    let (api, sim) = sim_api(sim);
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--dry-run=server",
        "-it",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        api.lines(),
        vec![
            format!("GET {POD_PATH}"),
            format!("PATCH {POD_PATH}/ephemeralcontainers?dryRun=All&fieldManager=kspy"),
        ],
        "no watch, no attach on a dry run"
    );
    assert!(
        stdout.starts_with("admitted (server dry run, nothing was changed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("imagePullPolicy: (unset) → \"IfNotPresent\""),
        "{stdout}"
    );
    let pod = &sim.lock().expect("sim").pod;
    assert_eq!(
        pod["spec"]["ephemeralContainers"].as_array().map(Vec::len),
        Some(2),
        "nothing persisted"
    );
}

#[test]
fn ambiguous_target_is_left_to_the_webhook_when_it_sets_one() {
    let mut sim = Sim::new();
    sim.webhook = Some(kspy_webhook);
    let (api, sim) = sim_api(sim);
    let out = api.kspy(&["attach", WEB, "--name", "debugger-tst42"]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let reqs = api.requests();
    assert_eq!(
        api.lines(),
        vec![
            format!("GET {POD_PATH}"),
            format!("PATCH {POD_PATH}/ephemeralcontainers?dryRun=All&fieldManager=kspy"),
            format!("PATCH {POD_PATH}/ephemeralcontainers?fieldManager=kspy"),
        ]
    );
    for r in &reqs[1..] {
        assert!(
            r.json()["spec"]["ephemeralContainers"][0]
                .get("targetContainerName")
                .is_none(),
            "{}",
            r.body
        );
    }
    assert!(stderr.contains("(target: sidecar"), "{stderr}");
    let pod = &sim.lock().expect("sim").pod;
    assert_eq!(
        pod["spec"]["ephemeralContainers"][2]["targetContainerName"],
        "sidecar"
    );
}

#[test]
fn ambiguous_target_falls_back_to_the_first_container_without_a_webhook() {
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&["attach", WEB, "--name", "debugger-tst42"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let reqs = api.requests();
    assert_eq!(reqs.len(), 3, "{:?}", api.lines());
    assert!(
        reqs[1].json()["spec"]["ephemeralContainers"][0]
            .get("targetContainerName")
            .is_none()
    );
    assert_eq!(reqs[2].param("dryRun"), None);
    assert_eq!(
        reqs[2].json()["spec"]["ephemeralContainers"][0]["targetContainerName"],
        "app"
    );
}

#[test]
fn dry_run_client_prints_the_request_and_sends_no_write() {
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--dry-run",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(api.lines(), vec![format!("GET {POD_PATH}")]);
    assert!(
        stdout.starts_with(&format!(
            "PATCH {POD_PATH}/ephemeralcontainers?fieldManager=kspy\nContent-Type: application/strategic-merge-patch+json\n\n{{"
        )),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "curl -X PATCH 'http://127.0.0.1:8001{POD_PATH}/ephemeralcontainers?fieldManager=kspy'"
    )));
    // The printed body is the exact body.
    let start = stdout.find("\n\n").expect("blank line") + 2;
    let end = stdout.find("\n\n# the same").expect("curl part");
    let body: Value = serde_json::from_str(&stdout[start..end]).expect("body is JSON");
    assert_eq!(
        body["spec"]["ephemeralContainers"][0]["name"],
        "debugger-tst42"
    );

    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--dry-run=client",
        "-o",
        "yaml",
    ]);
    let (stdout, _) = texts(&out);
    assert!(
        stdout.contains("name: debugger-tst42") && stdout.contains("targetContainerName: app"),
        "{stdout}"
    );
}

#[test]
fn reuse_attaches_to_the_running_container_without_patching() {
    let mut sim = Sim::new();
    sim.new_state = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
    let (api, _) = sim_api(sim);
    // debugger-old01 runs with busybox:latest, SYS_PTRACE (= general), target app.
    // `--wait --no-attach` stops before the WebSocket attach.
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--reuse",
        "--no-attach",
        "--wait",
    ]);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains("reusing running debug container debugger-old01"),
        "{stderr}"
    );
    assert!(
        api.requests().iter().all(|r| r.method == "GET"),
        "{:?}",
        api.lines()
    );
}

/// A target that does not run (crash-looping) holds the debug container back, as it joins its
/// processes: kspy says so, and what to do instead, rather than leave the wait unexplained.
#[test]
fn a_target_that_does_not_run_is_named_with_the_way_out() {
    let mut sim = Sim::new();
    sim.pod["status"]["containerStatuses"][0]["state"] = json!({"waiting": {
        "reason": "CrashLoopBackOff",
        "message": "back-off 5m0s restarting failed container=app"}});
    sim.new_state = json!({"waiting": {"reason": "CreateContainerConfigError",
        "message": "unable to find target container app"}});
    let (api, _) = sim_api(sim);
    let out = api.kspy(&["attach", WEB, "-c", "app", "--wait", "--timeout", "1s"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "note: target container app is not running (CrashLoopBackOff: back-off 5m0s \
             restarting failed container=app): the debug container shares its processes, so it \
             starts only while app runs and ends when app's process does; for a crash loop, \
             debug a copy in which app sleeps instead: `kspy copy {WEB} -n prod --to \
             {WEB}-debug --fork -c app -it`\n"
        )),
        "{stderr}"
    );
    // A running target gets no such note.
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&["attach", WEB, "-c", "app", "--no-attach"]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("note:"), "{stderr}");
}

/// A pod being deleted starts no new container: adding one (which could never be removed, nor
/// run) is refused before any write, naming the way out; a debug container already running in
/// it can still be reused.
#[test]
fn a_pod_being_deleted_gets_no_debug_container() {
    let mut sim = Sim::new();
    sim.pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:10:00Z");
    sim.pod["metadata"]["deletionGracePeriodSeconds"] = json!(30);
    sim.new_state = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
    let (api, _) = sim_api(sim);
    for dry_run in ["--dry-run=none", "--dry-run=client", "--dry-run=server"] {
        let before = api.requests().len();
        let out = api.kspy(&["attach", WEB, "-c", "app", dry_run]);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{dry_run}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "kspy: pod prod/{WEB} is being deleted (since 2026-01-01T00:10:00Z, with a grace \
                 period of 30s); a debug container added now would never start\n"
            )),
            "{dry_run}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("kspy copy {WEB} -n prod --to {WEB}-debug -it")),
            "{dry_run}: {stderr}"
        );
        assert!(
            api.requests()[before..].iter().all(|r| r.method == "GET"),
            "{dry_run}: {:?}",
            api.lines()
        );
    }
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--reuse",
        "--no-attach",
        "--wait",
    ]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("reusing running debug container debugger-old01"),
        "{stderr}"
    );
}

/// A static pod (its mirror in the API) takes no debug container: the API server refuses any
/// (`static pods do not support ephemeral containers`). kspy says so before any write, dry runs
/// too, naming the node to debug instead.
#[test]
fn a_static_pod_gets_no_debug_container_and_its_node_is_offered() {
    let mut sim = Sim::new();
    sim.pod["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "0123abcd",
        "kubernetes.io/config.source": "file"});
    sim.pod["spec"]["nodeName"] = json!("cp-1");
    let (api, _) = sim_api(sim);
    for dry_run in ["--dry-run=none", "--dry-run=client", "--dry-run=server"] {
        let before = api.requests().len();
        let out = api.kspy(&["attach", WEB, "--context", "fake", dry_run]);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{dry_run}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "kspy: pod prod/{WEB} is a static pod: the API server refuses debug containers \
                 for static pods\n  the kubelet of node cp-1 runs it from a manifest file"
            )),
            "{dry_run}: {stderr}"
        );
        assert!(
            stderr.contains("hint: debug it from its node: `kspy node cp-1 --context fake -it`"),
            "{dry_run}: {stderr}"
        );
        assert!(
            api.requests()[before..].iter().all(|r| r.method == "GET"),
            "{dry_run}: {:?}",
            api.lines()
        );
    }
}

/// `--reuse` attaches to the container it finds, unless told not to: `--attach=false` is
/// honoured as `--no-attach` is.
#[test]
fn reuse_with_attach_false_does_not_attach() {
    let mut sim = Sim::new();
    sim.new_state = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
    let (api, _) = sim_api(sim);
    for no in ["--attach=false", "--no-attach"] {
        let before = api.requests().len();
        let out = api.kspy(&["attach", WEB, "-c", "app", "-i", "--reuse", no]);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{no}: {stderr}");
        assert!(
            stderr.contains("reusing running debug container debugger-old01"),
            "{no}: {stderr}"
        );
        assert!(
            stderr.contains("attach with: kspy attach"),
            "{no}: {stderr}"
        );
        assert_eq!(stdout, "", "{no}: nothing came from an attach");
        assert_eq!(
            api.lines()[before..],
            [format!("GET {POD_PATH}")],
            "{no}: no attach"
        );
    }
}

/// `--reuse --name` attaches to the container as it is: a flag that describes it otherwise is
/// refused, saying what differs, before anything is written or attached.
#[test]
fn reuse_by_name_refuses_flags_the_container_does_not_match() {
    let mut sim = Sim::new();
    sim.new_state = json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}});
    let (api, _) = sim_api(sim);
    // debugger-old01 runs busybox:latest with SYS_PTRACE, target app.
    let out = api.kspy(&[
        "attach",
        WEB,
        "--reuse",
        "--name",
        "debugger-old01",
        "--image",
        "nicolaka/netshoot",
        "--reason",
        "INC-7",
        "--no-attach",
    ]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "kspy: --reuse --name debugger-old01: debug container debugger-old01 of pod \
             prod/{WEB} is not what the other flags ask for\n  --image: it runs image \
             \"busybox:latest\", not \"nicolaka/netshoot\"\n  --reason: it was added with \
             KSPY_REASON (none), not \"INC-7\"\nhint: --reuse --name attaches to debugger-old01 \
             as it is"
        )),
        "{stderr}"
    );
    assert_eq!(api.lines(), [format!("GET {POD_PATH}")]);

    // What matches is fine.
    let out = api.kspy(&[
        "attach",
        WEB,
        "--reuse",
        "--name",
        "debugger-old01",
        "--image",
        "busybox:latest",
        "-c",
        "app",
        "--no-attach",
    ]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("reusing running debug container debugger-old01"),
        "{stderr}"
    );
}

/// A dry run with --reuse shows what the command would do: attach to the running debug
/// container that matches, adding none — no dry-run PATCH of a container that would never
/// exist — or, when none matches, the dry run of adding one, with a note saying why.
#[test]
fn dry_runs_with_reuse_show_the_container_that_would_be_reused() {
    let (api, _) = sim_api(Sim::new());
    // debugger-old01 runs with busybox:latest, SYS_PTRACE (= general), target app.
    for mode in ["--dry-run=server", "--dry-run=client"] {
        let before = api.requests().len();
        let out = api.kspy(&["attach", WEB, "-c", "app", "--reuse", mode]);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{mode}: {stderr}");
        assert!(
            stdout.starts_with(&format!(
                "would reuse running debug container debugger-old01 of pod prod/{WEB} ({} dry \
                 run: no write was sent)\nnothing would be added",
                mode.trim_start_matches("--dry-run=")
            )),
            "{mode}: {stdout}"
        );
        assert_eq!(
            api.lines()[before..],
            [format!("GET {POD_PATH}")],
            "{mode}: only the pod is read"
        );
    }
    // -o: the container that would be reused, alone on stdout.
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--reuse",
        "--dry-run=server",
        "-o",
        "json",
        "-q",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let container: Value = serde_json::from_str(&stdout).expect("the container alone");
    assert_eq!(container["name"], "debugger-old01");
    assert_eq!(stderr, "");

    // Nothing matches a privileged container: the dry run of adding one, and why.
    let before = api.requests().len();
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--reuse",
        "--profile",
        "sysadmin",
        "--name",
        "debugger-tst42",
        "--dry-run=server",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "note: --reuse: no running debug container of pod prod/{WEB} matches; the command \
             would add debugger-tst42, as this dry run shows"
        )),
        "{stderr}"
    );
    assert!(stdout.starts_with("admitted (server dry run"), "{stdout}");
    assert!(
        api.requests()[before..]
            .iter()
            .any(|r| r.method == "PATCH" && r.param("dryRun").as_deref() == Some("All")),
        "{:?}",
        api.lines()
    );
}

#[test]
fn missing_container_lists_the_containers_and_sends_nothing() {
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&["attach", WEB, "-c", "ap"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr,
        format!(
            "kspy: container ap not found in pod {WEB}\n  containers that exist: app, sidecar\n"
        )
    );
    assert_eq!(api.lines(), vec![format!("GET {POD_PATH}")]);
}

/// `-c NAME` far from every container's name is kubectl debug's `-c` for the new container,
/// not a misspelt target: the error says what -c is in kspy (a near miss, above, does not).
#[test]
fn missing_container_named_as_kubectl_names_the_debug_container_says_what_c_is() {
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&["attach", WEB, "-c", "debugger"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr,
        format!(
            "kspy: container debugger not found in pod {WEB}\n  containers that exist: sidecar, \
             app\nhint: in kspy, -c is --target: the container to debug (kubectl debug's \
             --target); name the debug container with --name (what kubectl debug's -c does)\n"
        )
    );
    assert_eq!(api.lines(), vec![format!("GET {POD_PATH}")]);
}

/// An API server with namespace `empty` (no pods) and without namespace `ghost`: it lists no
/// pods in either, as the real one does, and answers 404 for every pod.
fn ghost_and_empty_namespaces_api() -> FakeApi {
    FakeApi::start(|r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
        ("GET", "/api/v1/namespaces/ghost/pods") | ("GET", "/api/v1/namespaces/empty/pods") => {
            Reply::ok(&json!({"kind": "PodList", "apiVersion": "v1",
                "metadata": {"resourceVersion": "1"}, "items": []}))
        }
        ("GET", "/api/v1/namespaces/ghost") => Reply::not_found("namespaces", "ghost"),
        ("GET", "/api/v1/namespaces/empty") => Reply::ok(
            &json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "empty"}}),
        ),
        ("GET", p) => Reply::not_found("pods", p.rsplit('/').next().unwrap_or_default()),
        _ => Reply::status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            json!({}),
        ),
    })
}

#[test]
fn missing_namespace_is_named_as_such() {
    let api = ghost_and_empty_namespaces_api();
    let out = api.kspy(&["attach", WEB, "-n", "ghost"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "kspy: namespace ghost does not exist (looking for pod {WEB})\nhint: check -n/--namespace"
        )),
        "{stderr}"
    );
    // A namespace that exists, without pods: the pod is missing, not the namespace.
    let out = api.kspy(&["attach", WEB, "-n", "empty"]);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.starts_with(&format!("kspy: pod {WEB} not found in namespace empty\n")),
        "{stderr}"
    );
    assert!(stderr.contains("there are no pods here"), "{stderr}");
}

/// The API server lists no pods, not 404, in a namespace that does not exist: `kspy ls` there
/// said "no debug containers or debug pods in namespace ghost" (and `-o json` printed `[]`),
/// passing a mistyped -n off as a namespace with nothing left behind. It says the namespace
/// does not exist now; an empty namespace that exists still lists nothing.
#[test]
fn ls_in_a_missing_namespace_says_so() {
    let api = ghost_and_empty_namespaces_api();
    for args in [
        &["ls", "-n", "ghost"][..],
        &["ls", "-n", "ghost", "-o", "json"],
    ] {
        let out = api.kspy(args);
        let (stdout, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stdout, "", "{args:?}");
        assert!(
            stderr.starts_with(
                "kspy: namespace ghost does not exist (listing what kspy left in it)\nhint: \
                 check -n/--namespace"
            ),
            "{args:?}: {stderr}"
        );
    }
    let out = api.kspy(&["ls", "-n", "empty"]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr,
        "no debug containers or debug pods in namespace empty\n"
    );
    let out = api.kspy(&["ls", "-n", "empty", "-o", "json"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_eq!(texts(&out).0, "[]\n");
}

#[test]
fn missing_pod_lists_the_pods_that_exist() {
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&["attach", "web-7d9f8c6b5-x2x4r", "--context", "fake"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("kspy: pod web-7d9f8c6b5-x2x4r not found in namespace prod\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("pods that exist: {WEB}")),
        "{stderr}"
    );
}

fn refuse_rbac() -> Reply {
    Reply::status(
        403,
        "Forbidden",
        &format!(
            "pods \"{WEB}\" is forbidden: User \"alice\" cannot patch resource \"pods/ephemeralcontainers\" in API group \"\" in the namespace \"prod\""
        ),
        json!({"name": WEB, "kind": "pods"}),
    )
}

fn refuse_webhook() -> Reply {
    Reply::status(
        403,
        "Forbidden",
        "admission webhook \"validate.kspy.dev\" denied the request: capability SYS_ADMIN is granted by no applicable policy; image docker.io/library/ubuntu:latest matches no allowed image",
        json!({}),
    )
}

fn refuse_not_served() -> Reply {
    Reply::status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        json!({}),
    )
}

fn refuse_pod_security() -> Reply {
    Reply::status(
        403,
        "Forbidden",
        &format!(
            "pods \"{WEB}\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities (container \"debugger-tst42\" must not include \"SYS_PTRACE\" in securityContext.capabilities.add)"
        ),
        json!({"name": WEB, "kind": "pods"}),
    )
}

fn attach_refused(refuse: fn() -> Reply) -> String {
    let mut sim = Sim::new();
    sim.refuse_patch = Some(refuse);
    let (api, _) = sim_api(sim);
    let out = api.kspy(&["attach", WEB, "-c", "app", "--name", "debugger-tst42"]);
    assert_eq!(out.status.code(), Some(1));
    texts(&out).1
}

#[test]
fn forbidden_names_the_rbac_verb_and_resource() {
    let stderr = attach_refused(refuse_rbac);
    assert!(
        stderr.starts_with(&format!(
            "kspy: could not add debug container debugger-tst42 to pod prod/{WEB}: you are not allowed to patch pods/ephemeralcontainers in namespace prod\n"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("hint: ask for an RBAC Role granting verb \"patch\" on resource \"pods/ephemeralcontainers\" in namespace prod; check with `kubectl auth can-i patch pods/ephemeralcontainers -n prod`"), "{stderr}");
}

#[test]
fn webhook_denial_shows_each_reason() {
    let stderr = attach_refused(refuse_webhook);
    assert!(
        stderr.starts_with(&format!(
            "kspy: admission webhook \"validate.kspy.dev\" denied adding debug container debugger-tst42 to pod prod/{WEB}\n  - capability SYS_ADMIN is granted by no applicable policy\n  - image docker.io/library/ubuntu:latest matches no allowed image\nhint: "
        )),
        "{stderr}"
    );
}

fn refuse_sys_ptrace() -> Reply {
    Reply::status(
        403,
        "Forbidden",
        &format!(
            "admission webhook \"validate.kspy.dev\" denied the request: kspy denied the debug container for pod prod/{WEB}:\n- container \"debugger-tst42\": capability SYS_PTRACE is not granted by the policies that apply (dev-debug); sre-debug grants it to group sre"
        ),
        json!({}),
    )
}

/// `--profile general`, the default, adds SYS_PTRACE: a denial of it says so and names the
/// profiles that add none; asked for with --cap, it is the user's own request.
#[test]
fn denied_profile_capability_suggests_another_profile() {
    let stderr = attach_refused(refuse_sys_ptrace);
    assert!(
        stderr.contains(
            "hint: capability SYS_PTRACE came from --profile general (the default), not from \
             --cap: if you do not need it, use `--profile baseline` (no added capabilities) or \
             `--profile legacy`; otherwise: kspy's policy decides"
        ),
        "{stderr}"
    );

    let mut sim = Sim::new();
    sim.refuse_patch = Some(refuse_sys_ptrace);
    let (api, _) = sim_api(sim);
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--cap",
        "sys_ptrace",
    ]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("hint: kspy's policy decides"), "{stderr}");
    assert!(!stderr.contains("--profile baseline"), "{stderr}");
}

#[test]
fn subresource_404_says_ephemeral_containers_are_not_served() {
    let stderr = attach_refused(refuse_not_served);
    assert!(
        stderr.starts_with("kspy: this cluster does not serve ephemeral containers"),
        "{stderr}"
    );
    assert!(stderr.contains("kspy copy"), "{stderr}");
}

#[test]
fn pod_security_names_level_and_profile() {
    let stderr = attach_refused(refuse_pod_security);
    assert!(
        stderr.contains("namespace prod enforces level \"baseline\""),
        "{stderr}"
    );
    assert!(stderr.contains("--profile baseline"), "{stderr}");
}

/// A server for copy and node: records, admits pod creation, knows one node.
fn create_api(whoami: bool) -> FakeApi {
    FakeApi::start(
        move |r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
            ("GET", POD_PATH) => Reply::ok(&web_pod()),
            ("GET", "/api/v1/nodes/node-a") => Reply::ok(
                &json!({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "node-a"}}),
            ),
            ("GET", "/api/v1/nodes/node-b") => Reply::not_found("nodes", "node-b"),
            ("GET", "/api/v1/nodes/node-down") => Reply::ok(&json!({
                "kind": "Node", "apiVersion": "v1", "metadata": {"name": "node-down"},
                "status": {"conditions": [
                    {"type": "MemoryPressure", "status": "Unknown"},
                    {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                     "message": "Kubelet stopped posting node status."}]}})),
            ("GET", "/api/v1/nodes") => Reply::ok(
                &json!({"kind": "NodeList", "apiVersion": "v1", "metadata": {},
            "items": [{"metadata": {"name": "node-a"}}, {"metadata": {"name": "node-c"}}]}),
            ),
            ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews") if whoami => Reply::json(
                201,
                &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                "status": {"userInfo": {"username": "alice@example.com", "groups": ["sre"]}}}),
            ),
            ("POST", p) if p.starts_with("/api/v1/namespaces/") && p.ends_with("/pods") => {
                let mut pod = r.json();
                if pod["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("node-debugger-"))
                    && p.contains("/restricted/")
                {
                    return Reply::status(
                        403,
                        "Forbidden",
                        &format!(
                            "pods \"{}\" is forbidden: violates PodSecurity \"restricted:latest\": host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), hostPath volumes (volume \"host-root\")",
                            pod["metadata"]["name"].as_str().unwrap_or_default()
                        ),
                        json!({"kind": "pods"}),
                    );
                }
                pod["metadata"]["resourceVersion"] = json!("1");
                Reply::json(201, &pod)
            }
            ("DELETE", POD_PATH) => Reply::ok(&web_pod()),
            _ => Reply::status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                json!({}),
            ),
        },
    )
}

#[test]
fn copy_sequence_and_body() {
    let api = create_api(true);
    let out = api.kspy(&[
        "copy",
        WEB,
        "--to",
        "web-debug",
        "--fork",
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--replace",
    ]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        api.lines(),
        vec![
            format!("GET {POD_PATH}"),
            "POST /apis/authentication.k8s.io/v1/selfsubjectreviews".to_string(),
            format!("DELETE {POD_PATH}"),
            "POST /api/v1/namespaces/prod/pods?fieldManager=kspy".to_string(),
            format!("DELETE {POD_PATH}"),
        ]
    );
    let reqs = api.requests();
    assert_eq!(
        reqs[2].json()["dryRun"],
        json!(["All"]),
        "--replace asks first"
    );
    assert!(reqs[4].json().get("dryRun").is_none());
    assert_eq!(reqs[3].content_type, "application/json");
    let pod = reqs[3].json();
    assert_eq!(pod["metadata"]["name"], "web-debug");
    assert_eq!(pod["metadata"]["labels"], json!({"kspy.dev/debug": "copy"}));
    assert_eq!(
        pod["metadata"]["annotations"],
        json!({"kspy.dev/source-pod": WEB, "kspy.dev/requested-by": "alice@example.com",
            "kspy.dev/debug-container": "debugger-tst42"})
    );
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(
        pod["spec"]["containers"][0]["command"],
        json!(["sleep", "2147483647"])
    );
    assert_eq!(pod["spec"]["containers"][2]["name"], "debugger-tst42");
    assert_eq!(reqs[4].json()["gracePeriodSeconds"], 0);
    assert!(
        stderr.contains("delete it when done: kubectl delete pod web-debug -n prod"),
        "{stderr}"
    );
}

/// A server where the user may create pods but not delete the source pod: its DELETE is
/// refused always (`dry_runs_too`), or only when it is not a dry run (the permission changed
/// between the two, or a webhook judges only real deletes).
/// `kspy copy --fork` puts the target to sleep with the image's own `sleep`, which distroless
/// and scratch images lack: it says so, and how to give the container an image that has one;
/// `-q` leaves the note out. `--help` says it too.
#[test]
fn fork_says_the_image_needs_a_sleep() {
    let api = create_api(false);
    let args = [
        "copy",
        WEB,
        "--to",
        "web-debug",
        "--fork",
        "-c",
        "app",
        "--dry-run=client",
    ];
    let out = api.kspy(&args);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "note: --fork runs `sleep 2147483647` in container app instead of its command: its \
             image (registry.example.com/web:1.4.2) must have a `sleep`"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("--set-image app=IMAGE"), "{stderr}");
    let mut quiet = args.to_vec();
    quiet.push("-q");
    let out = api.kspy(&quiet);
    assert_eq!(texts(&out).1, "");

    let out = api.kspy(&["copy", "--help"]);
    let (help, _) = texts(&out);
    assert!(
        help.contains("distroless and scratch images have none"),
        "{help}"
    );
}

fn no_delete_api(dry_runs_too: bool) -> FakeApi {
    FakeApi::start(
        move |r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
            ("GET", POD_PATH) => Reply::ok(&web_pod()),
            ("POST", "/api/v1/namespaces/prod/pods") => {
                let mut pod = r.json();
                pod["metadata"]["resourceVersion"] = json!("1");
                Reply::json(201, &pod)
            }
            ("DELETE", POD_PATH) if !dry_runs_too && r.json().get("dryRun").is_some() => {
                Reply::ok(&web_pod())
            }
            ("DELETE", POD_PATH) => Reply::status(
                403,
                "Forbidden",
                &format!(
                    "pods \"{WEB}\" is forbidden: User \"dev\" cannot delete resource \"pods\" in API group \"\" in the namespace \"prod\""
                ),
                json!({"name": WEB, "kind": "pods"}),
            ),
            _ => Reply::status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                json!({}),
            ),
        },
    )
}

/// `--replace` by a user who may not delete the original: refused before the copy is created;
/// and when the real DELETE fails after all, the copy that runs is named, with its cleanup.
/// A write the API server (or a proxy in front of it) answers with 504 Timeout may have been
/// carried out: it is never sent again, as kubectl (client-go) never re-sends it without a
/// Retry-After, and the error says to look. Re-sent, the copy kspy had just created came back
/// as "it already exists".
#[test]
fn a_write_answered_with_504_is_not_sent_again() {
    let created = Arc::new(Mutex::new(false));
    let api = FakeApi::start(
        move |r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
            ("GET", POD_PATH) => Reply::ok(&web_pod()),
            ("POST", "/api/v1/namespaces/prod/pods") => {
                let mut done = created.lock().expect("created");
                if *done {
                    Reply::status(
                        409,
                        "AlreadyExists",
                        "pods \"web-debug\" already exists",
                        json!({"name": "web-debug", "kind": "pods"}),
                    )
                } else {
                    *done = true;
                    Reply::status(
                        504,
                        "Timeout",
                        "Timeout: request did not complete within requested timeout - context \
                     deadline exceeded",
                        json!({}),
                    )
                }
            }
            _ => Reply::not_found("pods", "x"),
        },
    );
    let out = api.kspy(&["copy", WEB, "--to", "web-debug", "--no-attach"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let posts = api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/pods"))
        .count();
    assert_eq!(posts, 1, "{:?}", api.lines());
    assert!(
        stderr.starts_with(
            "kspy: could not create pod prod/web-debug (504 Timeout)\n  Timeout: request did not \
             complete within requested timeout"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("the request may have been carried out all the same"),
        "{stderr}"
    );
    assert!(!stderr.contains("already exists"), "{stderr}");
}

/// An overloaded API server (API Priority and Fairness) answers 429 with Retry-After: the
/// request was not carried out, and kspy sends it again after that wait, as kubectl does —
/// a write too.
#[test]
fn too_many_requests_with_retry_after_is_sent_again() {
    let refused = Arc::new(Mutex::new(0));
    let api = FakeApi::start(move |r: &Recorded| {
        let busy = || {
            Reply::status(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                json!({"retryAfterSeconds": 1}),
            )
            .with_header("Retry-After", "1")
        };
        let mut n = refused.lock().expect("refused");
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", POD_PATH) if *n == 0 => {
                *n += 1;
                busy()
            }
            ("GET", POD_PATH) => Reply::ok(&web_pod()),
            ("POST", "/api/v1/namespaces/prod/pods") if *n == 1 => {
                *n += 1;
                busy()
            }
            ("POST", "/api/v1/namespaces/prod/pods") => Reply::json(201, &r.json()),
            _ => Reply::not_found("pods", "x"),
        }
    });
    let out = api.kspy(&["copy", WEB, "--to", "web-debug", "--no-attach"]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let lines = api.lines();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with(&format!("GET {POD_PATH}")))
            .count(),
        2,
        "{lines:?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("POST /api/v1/namespaces/prod/pods"))
            .count(),
        2,
        "{lines:?}"
    );
}

/// A server that answers 429 asking for a wait longer than what is left of
/// --request-timeout did answer: kspy does not begin that wait (client-go's rate limiter
/// refuses a wait past the request's deadline too) but reports the 429 at once, as a busy
/// server — not, after the timeout, as one that "took the connection but did not answer".
#[test]
fn too_many_requests_asking_to_wait_past_the_request_timeout_is_reported_as_such() {
    let api = FakeApi::start(|_| {
        Reply::status(
            429,
            "TooManyRequests",
            "Too many requests, please try again later.",
            json!({"retryAfterSeconds": 5}),
        )
        .with_header("Retry-After", "5")
    });
    let started = Instant::now();
    let out = api.kspy(&["ls", "--request-timeout", "3s"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}: {stderr}",
        started.elapsed()
    );
    assert_eq!(api.lines().len(), 1, "{:?}", api.lines());
    assert!(
        stderr.starts_with(
            "kspy: could not list the pods of namespace prod: the API server is too busy and \
             asked to come back later (429 Too Many Requests)\n  Too many requests, please try \
             again later.\n"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: nothing was carried out") && stderr.contains("(it asked for 5s)"),
        "{stderr}"
    );
    assert!(!stderr.contains("did not answer"), "{stderr}");
}

#[test]
fn copy_replace_without_delete_permission() {
    let copy = [
        "copy",
        WEB,
        "--to",
        "web-debug",
        "--replace",
        "--name",
        "debugger-tst42",
    ];
    let api = no_delete_api(true);
    let out = api.kspy(&copy);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        api.requests()
            .iter()
            .all(|r| r.method != "POST" || r.path.contains("selfsubject")),
        "no copy created: {:?}",
        api.lines()
    );
    assert!(
        stderr.starts_with(&format!(
            "kspy: could not delete pod prod/{WEB}: you are not allowed to delete pods in namespace prod\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("  nothing was created: --replace first asks"),
        "{stderr}"
    );

    let api = no_delete_api(false);
    let out = api.kspy(&copy);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "kspy: created pod prod/web-debug (a debug copy of {WEB}), but could not delete pod \
             prod/{WEB}: you are not allowed to delete pods in namespace prod\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("`kubectl delete pod web-debug -n prod` if you do not want both"),
        "{stderr}"
    );
}

/// A server for copying a `hostPID` pod (node-exporter, a CNI agent): admits the copy.
fn host_pid_api() -> FakeApi {
    FakeApi::start(
        move |r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
            ("GET", POD_PATH) => {
                let mut pod = web_pod();
                pod["spec"]["hostPID"] = json!(true);
                Reply::ok(&pod)
            }
            ("POST", "/api/v1/namespaces/prod/pods") => {
                let mut pod = r.json();
                pod["metadata"]["resourceVersion"] = json!("1");
                Reply::json(201, &pod)
            }
            _ => Reply::status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                json!({}),
            ),
        },
    )
}

/// The API server refuses shareProcessNamespace together with hostPID: without the flag kspy
/// leaves it unset for such a pod; an explicit --share-processes is refused before any write.
#[test]
fn copy_of_a_host_pid_pod_does_not_share_processes() {
    let api = host_pid_api();
    let out = api.kspy(&["copy", WEB, "--to", "web-debug", "--name", "debugger-tst42"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let post = api
        .requests()
        .into_iter()
        .find(|r| r.path == "/api/v1/namespaces/prod/pods")
        .expect("POST");
    assert_eq!(post.json()["spec"]["hostPID"], true);
    assert!(
        post.json()["spec"].get("shareProcessNamespace").is_none(),
        "{}",
        post.body
    );

    let api = host_pid_api();
    let out = api.kspy(&["copy", WEB, "--to", "web-debug", "--share-processes"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        api.lines(),
        vec![format!("GET {POD_PATH}")],
        "no other request"
    );
    assert!(
        stderr.starts_with(&format!(
            "kspy: invalid --share-processes value \"true\": pod {WEB} uses hostPID, and the API \
             server refuses shareProcessNamespace together with hostPID"
        )),
        "{stderr}"
    );
}

#[test]
fn copy_dry_run_server_and_client() {
    let api = create_api(false);
    let out = api.kspy(&["copy", WEB, "--to", "web-debug", "--dry-run=server"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("admitted (server dry run, nothing was changed): pod prod/web-debug"),
        "{stdout}"
    );
    let reqs = api.requests();
    let post = reqs
        .iter()
        .find(|r| r.path == "/api/v1/namespaces/prod/pods")
        .expect("POST");
    assert_eq!(post.param("dryRun").as_deref(), Some("All"));
    assert!(
        post.json()["metadata"]["annotations"]
            .get("kspy.dev/requested-by")
            .is_none(),
        "unknown user: no annotation"
    );

    let api = create_api(false);
    let out = api.kspy(&[
        "copy",
        WEB,
        "--to",
        "web-debug",
        "--dry-run=client",
        "--replace",
    ]);
    let (stdout, _) = texts(&out);
    assert!(
        stdout.starts_with(
            "POST /api/v1/namespaces/prod/pods?fieldManager=kspy\nContent-Type: application/json\n"
        ),
        "{stdout}"
    );
    assert!(stdout.contains(&format!("DELETE {POD_PATH}\n")), "{stdout}");
    assert!(
        api.requests()
            .iter()
            .all(|r| r.method != "DELETE" && r.path != "/api/v1/namespaces/prod/pods"),
        "{:?}",
        api.lines()
    );
}

/// With `-o`, a server dry run's stdout is the admitted object alone, so that it parses; the
/// verdict goes to stderr (nowhere with `-q`), for copy and node as for attach.
#[test]
fn dry_run_server_with_output_prints_only_the_object_on_stdout() {
    let api = create_api(false);
    let out = api.kspy(&[
        "copy",
        WEB,
        "--to",
        "web-debug",
        "--dry-run=server",
        "-o",
        "json",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let pod: Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert_eq!(pod["metadata"]["name"], "web-debug");
    assert!(
        stderr.contains("admitted (server dry run, nothing was changed): pod prod/web-debug"),
        "{stderr}"
    );

    let out = api.kspy(&["node", "node-a", "--dry-run=server", "-o", "yaml"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let pod: Value = serde_saphyr::from_str(&stdout).expect("stdout is YAML");
    assert_eq!(pod["spec"]["nodeName"], "node-a");
    assert!(
        stderr.contains("admitted (server dry run, nothing was changed): pod prod/node-debugger-"),
        "{stderr}"
    );

    let out = api.kspy(&["node", "node-a", "--dry-run=server", "-o", "json", "-q"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_str::<Value>(&stdout).expect("stdout is JSON");
    assert!(!stderr.contains("admitted"), "{stderr}");
}

#[test]
fn node_sequence_and_body() {
    let api = create_api(true);
    let out = api.kspy(&[
        "node",
        "node-a",
        "--context",
        "other",
        "--reason",
        "disk pressure",
    ]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let lines = api.lines();
    assert_eq!(lines[0], "GET /api/v1/nodes/node-a");
    assert_eq!(
        lines[1],
        "POST /apis/authentication.k8s.io/v1/selfsubjectreviews"
    );
    assert_eq!(
        lines[2], "POST /api/v1/namespaces/other/pods?fieldManager=kspy",
        "namespace from context `other`"
    );
    assert_eq!(lines.len(), 3);
    let pod = api.requests()[2].json();
    let name = pod["metadata"]["name"].as_str().expect("name");
    assert!(
        name.starts_with("node-debugger-node-a-")
            && name.len() == "node-debugger-node-a-".len() + 5,
        "{name}"
    );
    assert_eq!(pod["metadata"]["labels"], json!({"kspy.dev/debug": "node"}));
    assert_eq!(
        pod["metadata"]["annotations"],
        json!({"kspy.dev/requested-by": "alice@example.com", "kspy.dev/reason": "disk pressure"})
    );
    let spec = &pod["spec"];
    assert_eq!(spec["nodeName"], "node-a");
    assert_eq!(
        (
            spec["hostPID"].clone(),
            spec["hostNetwork"].clone(),
            spec["hostIPC"].clone()
        ),
        (json!(true), json!(true), json!(true))
    );
    assert_eq!(spec["tolerations"], json!([{"operator": "Exists"}]));
    assert_eq!(spec["containers"][0]["name"], "debugger");
    assert_eq!(
        spec["containers"][0]["env"],
        json!([{"name": "KSPY_REASON", "value": "disk pressure"}])
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"],
        json!([{"name": "host-root", "mountPath": "/host", "readOnly": true}]),
        "the node's / is read-only unless --host-writable"
    );
}

/// A node that is not Ready (its kubelet down, the usual reason to debug a node) may never
/// start the pod: kspy says so before it waits, not only when --timeout has passed.
#[test]
fn a_node_that_is_not_ready_is_said_to_be() {
    let api = create_api(true);
    let out = api.kspy(&["node", "node-down", "--no-attach"]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.starts_with(
            "note: node node-down is not Ready (Ready is Unknown) (NodeStatusUnknown: Kubelet \
             stopped posting node status.): its kubelet may never start the pod, and kspy waits \
             for it up to --timeout"
        ),
        "{stderr}"
    );
    let out = api.kspy(&["node", "node-a", "--no-attach"]);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("note:"), "{stderr}");
}

#[test]
fn node_errors_missing_node_and_pod_security() {
    let api = create_api(false);
    let out = api.kspy(&["node", "node-b"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with("kspy: node node-b not found\n  nodes that exist: node-a, node-c\n"),
        "{stderr}"
    );

    let out = api.kspy(&["node", "node-a", "-n", "restricted"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("namespace restricted enforces level \"restricted\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("  - host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)\n"),
        "{stderr}"
    );
    assert!(
        stderr.contains("pod-security.kubernetes.io/enforce=privileged"),
        "{stderr}"
    );
}

/// Without attaching, `-q` prints the name kspy chose, alone on a line of stdout, so that a
/// script can capture it: the debug container for attach and copy, the pod for node.
#[test]
fn quiet_without_attaching_prints_the_generated_name() {
    let (api, _) = running_sim_api();
    for extra in [&["--no-attach"][..], &["-i", "--no-attach", "--wait"], &[]] {
        let mut args = vec!["attach", WEB, "-c", "app", "-q"];
        args.extend_from_slice(extra);
        let before = api.requests().len();
        let out = api.kspy(&args);
        let (stdout, stderr) = texts(&out);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
        let patch = api.requests()[before..]
            .iter()
            .find(|r| r.method == "PATCH")
            .expect("patch")
            .json();
        let name = patch["spec"]["ephemeralContainers"][0]["name"]
            .as_str()
            .expect("name")
            .to_string();
        assert!(name.starts_with("debugger-"), "{name}");
        assert_eq!(stdout, format!("{name}\n"), "{args:?}");
    }
    // -o: stdout holds the object alone, which must parse.
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "-q",
        "--no-attach",
        "-o",
        "json",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let container: Value = serde_json::from_str(&stdout).expect("only the container");
    assert!(
        container["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("debugger-"))
    );

    let api = create_api(true);
    let created = |api: &FakeApi| {
        api.requests()
            .into_iter()
            .rfind(|r| r.method == "POST" && r.path.ends_with("/pods"))
            .expect("the pod's POST")
            .json()
    };
    let out = api.kspy(&["copy", WEB, "--to", "web-debug", "-q", "--no-attach"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "");
    let pod = created(&api);
    let debugger = pod["spec"]["containers"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["name"].as_str())
        .expect("the debug container");
    assert!(debugger.starts_with("debugger-"), "{debugger}");
    assert_eq!(stdout, format!("{debugger}\n"));
    // A copy without a debug container: the copy's name.
    let out = api.kspy(&[
        "copy",
        WEB,
        "--to",
        "web-img",
        "--set-image",
        "app=busybox:1.36",
        "-q",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "web-img\n");

    let out = api.kspy(&["node", "node-a", "-q", "--no-attach"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stderr, "");
    let pod = created(&api);
    let name = pod["metadata"]["name"].as_str().expect("name");
    assert!(name.starts_with("node-debugger-node-a-"), "{name}");
    assert_eq!(stdout, format!("{name}\n"));
}

#[test]
fn ls_lists_ephemeral_containers() {
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&["ls"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("POD") && lines[0].contains("CAPABILITIES"));
    assert!(
        lines[1].contains("debugger-old01")
            && lines[1].contains("Running")
            && lines[1].ends_with("SYS_PTRACE")
    );
    assert!(lines[2].contains("debugger-gone2") && lines[2].ends_with("privileged"));

    let out = api.kspy(&["ls", WEB, "-o", "json"]);
    let rows: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(rows[0]["target"], "app");
    assert_eq!(rows[1]["state"], "Terminated (Completed, exit code 0)");
}

/// `kspy ls` lists the pods kspy created too — debug copies and node pods, labelled
/// `kspy.dev/debug` — each with its kind, in the table and in JSON, in the namespace or in all.
#[test]
fn ls_lists_debug_copies_and_node_pods() {
    let mut copy = web_pod();
    copy["metadata"]["name"] = json!("web-debug");
    copy["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
    copy["metadata"]["annotations"] =
        json!({"kspy.dev/source-pod": WEB, "kspy.dev/debug-container": "debugger-tst42"});
    copy["spec"]["ephemeralContainers"] = json!(null);
    copy["status"]["ephemeralContainerStatuses"] = json!(null);
    copy["spec"]["containers"]
        .as_array_mut()
        .expect("containers")
        .push(json!({"name": "debugger-tst42", "image": "busybox:latest"}));
    let node = json!({"metadata": {"name": "node-debugger-node-a-x2x4q", "namespace": "ops",
            "labels": {"kspy.dev/debug": "node"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "debugger",
            "image": "busybox:latest", "securityContext": {"privileged": true}}]},
        "status": {"phase": "Running"}});
    // An ordinary pod with a label of that name but no kspy value, and none of its own.
    let mut plain = web_pod();
    plain["metadata"]["name"] = json!("api-0");
    plain["metadata"]["labels"] = json!({"kspy.dev/debug": "other"});
    plain["spec"]["ephemeralContainers"] = json!(null);
    let list = |items: Vec<Value>| {
        Reply::ok(&json!({"kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "1"}, "items": items}))
    };
    let api = {
        let (web, copy, node, plain) = (web_pod(), copy.clone(), node.clone(), plain.clone());
        FakeApi::start(move |r: &Recorded| match r.path.as_str() {
            "/api/v1/namespaces/prod/pods" => list(vec![web.clone(), copy.clone(), plain.clone()]),
            "/api/v1/pods" => list(vec![node.clone(), web.clone(), copy.clone(), plain.clone()]),
            "/api/v1/namespaces/prod/pods/web-debug" => Reply::ok(&copy),
            _ => Reply::not_found("pods", "x"),
        })
    };
    let out = api.kspy(&["ls"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    let columns: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        columns,
        [
            "POD",
            "KIND",
            "NAME",
            "IMAGE",
            "TARGET",
            "STATE",
            "AGE",
            "CAPABILITIES"
        ]
    );
    let cells = |line: &str| {
        line.split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(cells(lines[1])[..3], [WEB, "ephemeral", "debugger-old01"]);
    assert_eq!(cells(lines[2])[..3], [WEB, "ephemeral", "debugger-gone2"]);
    assert_eq!(
        cells(lines[3]),
        [
            "web-debug",
            "copy",
            "debugger-tst42",
            "busybox:latest",
            "-",
            "Starting",
            "-",
            "-"
        ]
    );

    let out = api.kspy(&["ls", "-A", "-o", "json"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let rows: Value = serde_json::from_str(&stdout).expect("json");
    let kinds: Vec<(&str, &str, &str)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["namespace"].as_str().unwrap_or_default(),
                r["pod"].as_str().unwrap_or_default(),
                r["kind"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("ops", "node-debugger-node-a-x2x4q", "node"),
            ("prod", WEB, "ephemeral"),
            ("prod", WEB, "ephemeral"),
            ("prod", "web-debug", "copy"),
        ]
    );
    assert_eq!(rows[0]["node"], "node-a");
    assert_eq!(rows[0]["capabilities"], json!(["privileged"]));
    assert_eq!(rows[3]["sourcePod"], WEB);
    assert_eq!(rows[3]["name"], "debugger-tst42");

    let out = api.kspy(&["ls", "-A"]);
    let (stdout, _) = texts(&out);
    assert!(stdout.starts_with("NAMESPACE "), "{stdout}");
    assert!(
        stdout.lines().nth(1).is_some_and(|l| l.starts_with("ops ")
            && l.contains(" node ")
            && l.ends_with("privileged")),
        "{stdout}"
    );

    let out = api.kspy(&["ls", "web-debug", "-o", "yaml"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("kind: copy"), "{stdout}");
}

/// `kspy ls` reads pods in pages (`--chunk-size`, 500 by default, as kubectl get), following
/// each page's `continue` token to the end and listing the rows of every page.
#[test]
fn ls_follows_continue_tokens_page_by_page() {
    let mut copy = web_pod();
    copy["metadata"]["name"] = json!("web-debug");
    copy["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
    copy["spec"]["ephemeralContainers"] = json!(null);
    copy["status"]["ephemeralContainerStatuses"] = json!(null);
    let page = |items: Vec<Value>, next: Option<&str>| {
        let mut meta = json!({"resourceVersion": "7"});
        if let Some(token) = next {
            meta["continue"] = json!(token);
            meta["remainingItemCount"] = json!(1);
        }
        Reply::ok(&json!({"kind": "PodList", "apiVersion": "v1", "metadata": meta, "items": items}))
    };
    let api = {
        let (web, copy) = (web_pod(), copy.clone());
        FakeApi::start(move |r: &Recorded| match r.path.as_str() {
            "/api/v1/namespaces/prod/pods" if r.query.contains("continue=after-web") => {
                page(vec![copy.clone()], None)
            }
            "/api/v1/namespaces/prod/pods" => page(vec![web.clone()], Some("after-web")),
            _ => Reply::not_found("pods", "x"),
        })
    };
    let out = api.kspy(&["ls", "--chunk-size", "1", "-o", "json"]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let rows: Value = serde_json::from_str(&stdout).expect("json");
    let pods: Vec<&str> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["pod"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(pods, [WEB, WEB, "web-debug"], "{stdout}");
    let lists: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.path == "/api/v1/namespaces/prod/pods")
        .map(|r| r.query)
        .collect();
    assert_eq!(lists.len(), 2, "{lists:?}");
    assert!(
        lists[0].contains("limit=1") && !lists[0].contains("continue"),
        "{lists:?}"
    );
    assert!(
        lists[1].contains("limit=1") && lists[1].contains("continue=after-web"),
        "{lists:?}"
    );

    // The default page is kubectl's 500; 0 asks for everything at once.
    let before = api.requests().len();
    let out = api.kspy(&["ls"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let queries: Vec<String> = api.requests()[before..]
        .iter()
        .map(|r| r.query.clone())
        .collect();
    assert!(
        queries.iter().any(|q| q.contains("limit=500")),
        "{queries:?}"
    );
    let before = api.requests().len();
    let out = api.kspy(&["ls", "--chunk-size", "0"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let queries: Vec<String> = api.requests()[before..]
        .iter()
        .map(|r| r.query.clone())
        .collect();
    assert!(queries.iter().all(|q| !q.contains("limit=")), "{queries:?}");
}

/// A cache or proxy that ignores `continue` answers the first page again with the same
/// token: kspy listed it for ever, adding its rows each time; it stops now, saying so.
#[test]
fn ls_stops_when_the_same_page_comes_back() {
    let page = json!({"kind": "PodList", "apiVersion": "v1",
        "metadata": {"resourceVersion": "7", "continue": "again"},
        "items": [web_pod()]});
    let api = FakeApi::start(move |_| Reply::ok(&page));
    // Bounded: before, kspy never ended.
    let mut child = api.spawn_kspy(&["ls", "--chunk-size", "1", "-o", "json"]);
    drop(child.stdin.take());
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "kspy ls still running after 20 s, {} requests",
                api.lines().len()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.starts_with(
            "kspy: could not list the pods of namespace prod: the API server answered the same \
             page again (continue token \"again\" twice)\n"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("--chunk-size 0"), "{stderr}");
    assert_eq!(api.lines().len(), 2, "{:?}", api.lines());
}

/// A kubeconfig whose context `fake` (namespace prod) names user `user`, next to the users
/// `defined`; no `user:` at all when `user` is empty.
fn kubeconfig_with_user(api: &FakeApi, user: &str, defined: &[&str]) -> std::path::PathBuf {
    let path = api.dir.path().join(format!("kubeconfig-user-{user}"));
    let user_line = if user.is_empty() {
        String::new()
    } else {
        format!("    user: {user}\n")
    };
    let users: String = defined
        .iter()
        .map(|u| format!("- name: {u}\n  user:\n    token: {u}-token\n"))
        .collect();
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    \
         server: http://{}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n{user_line}    \
         namespace: prod\nusers:\n{users}",
        api.addr
    );
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// A context naming a user the kubeconfig does not define: kubectl and kube-rs go on without
/// credentials, and so does kspy, but never silently — a warning first, and a refusal of the
/// anonymous request names the cause. A context with no user at all (before `kubectl proxy`,
/// say) is anonymous on purpose and gets no warning.
#[test]
fn a_context_naming_a_missing_user_is_said_so() {
    let (api, _) = sim_api(Sim::new());
    let warning = "kspy: warning: context fake names user ghost, which the kubeconfig does not \
                   define; kspy sends its requests without credentials (anonymous), as kubectl \
                   does\nhint: define user ghost under `users:` in the kubeconfig";
    let kc = kubeconfig_with_user(&api, "ghost", &["alice"]);
    let out = api.kspy_env(&["ls"], &kc, &[], b"");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.starts_with(warning), "{stderr}");
    assert!(
        stdout.contains("debugger-old01"),
        "the anonymous request went: {stdout}"
    );
    for (user, defined) in [("", &["alice"][..]), ("alice", &["alice"])] {
        let kc = kubeconfig_with_user(&api, user, defined);
        let out = api.kspy_env(&["ls"], &kc, &[], b"");
        let (_, stderr) = texts(&out);
        assert!(out.status.success(), "{user:?}: {stderr}");
        assert_eq!(stderr, "", "{user:?}");
    }

    // The API server refuses anonymous requests: the error says why they were anonymous.
    let refusing =
        FakeApi::start(|_| Reply::status(401, "Unauthorized", "Unauthorized", json!({})));
    let kc = kubeconfig_with_user(&refusing, "ghost", &["alice"]);
    let out = refusing.kspy_env(&["attach", WEB], &kc, &[], b"");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "kspy: could not read pod prod/{WEB}: the API server did not accept your credentials\n  \
             Unauthorized\n  kspy sent no credentials: context fake names user ghost, which the \
             kubeconfig does not define\nhint: define user ghost under `users:`"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("log in again"), "{stderr}");
}

/// The commands kspy suggests (attach again, delete the copy) repeat `--kubeconfig` and
/// `--context` when they were given, shell-quoted: copied into the shell, they reach the same
/// cluster, not whatever is current there.
#[test]
fn suggested_commands_repeat_the_cluster_flags_given() {
    let mut sim = Sim::new();
    sim.new_state = json!({"running": {"startedAt": "2026-01-01T00:05:00Z"}});
    let (api, _) = sim_api(sim);
    let server = format!("http://{}", api.addr);
    let kubeconfig = api.write_kubeconfig("kube config", &server, "", "    token: t\n");
    let path = kubeconfig.display().to_string();
    let out = api.kspy_env(
        &[
            "attach",
            WEB,
            "-c",
            "app",
            "--name",
            "debugger-tst42",
            "-it",
            "--no-attach",
            "--kubeconfig",
            &path,
            "--context",
            "fake",
        ],
        &kubeconfig,
        &[],
        b"",
    );
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let flags = format!("--kubeconfig '{path}' --context fake");
    assert!(
        stderr.contains(&format!(
            "attach with: kspy attach {WEB} -n prod {flags} --reuse --name debugger-tst42 -it  \
             (or: kubectl attach {WEB} -n prod {flags} -c debugger-tst42 -it)\n"
        )),
        "{stderr}"
    );

    // A copy: its cleanup and its attach command too.
    let api = create_api(false);
    let server = format!("http://{}", api.addr);
    let kubeconfig = api.write_kubeconfig("kube config", &server, "", "    token: t\n");
    let path = kubeconfig.display().to_string();
    let out = api.kspy_env(
        &[
            "copy",
            WEB,
            "--to",
            "web-debug",
            "--name",
            "debugger-tst42",
            "--no-attach",
            "--kubeconfig",
            &path,
            "--context",
            "fake",
        ],
        &kubeconfig,
        &[],
        b"",
    );
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let flags = format!("--kubeconfig '{path}' --context fake");
    assert!(
        stderr.contains(&format!(
            "delete it when done: kubectl delete pod web-debug -n prod {flags}\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "attach with: kubectl attach web-debug -n prod {flags} -c debugger-tst42\n"
        )),
        "{stderr}"
    );
}

#[test]
fn unknown_context_lists_contexts() {
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&["ls", "--context", "fak"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with(
            "kspy: context fak not found in the kubeconfig\n  contexts that exist: fake, other\n"
        ),
        "{stderr}"
    );
    assert!(api.requests().is_empty());
}

/// Kubeconfig mistakes are named where they are: a context's bad namespace is not a bad
/// --namespace; an empty or unknown current-context lists the contexts, as an unknown
/// --context does, and says how to pick one. Nothing is sent.
#[test]
fn kubeconfig_mistakes_are_named_where_they_are() {
    let (api, _) = sim_api(Sim::new());
    let server = format!("http://{}", api.addr);
    let write = |file: &str, current: &str, namespace: &str| {
        let path = api.dir.path().join(file);
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: {current}\nclusters:\n- name: c\n  \
                 cluster:\n    server: {server}\ncontexts:\n- name: staging\n  context:\n    \
                 cluster: c\n    user: u\n    namespace: {namespace}\n- name: prod\n  \
                 context:\n    cluster: c\n    user: u\nusers:\n- name: u\n  user:\n    token: t\n"
            ),
        )
        .expect("kubeconfig");
        path
    };
    let run = |kubeconfig: &std::path::Path| {
        let out = api.kspy_env(&["ls"], kubeconfig, &[], b"");
        assert_eq!(out.status.code(), Some(1));
        texts(&out).1
    };

    let bad_ns = write("bad-ns", "staging", "Bad_NS");
    // `-A` uses no namespace, as `kubectl get -A`: the context's bad one is no error there.
    let out = api.kspy_env(&["ls", "-A"], &bad_ns, &[], b"");
    let (_, stderr) = texts(&out);
    assert!(!stderr.contains("sets namespace"), "{stderr}");
    assert_eq!(
        api.lines().last().map(String::as_str),
        Some("GET /api/v1/pods?limit=500")
    );
    let before = api.lines().len();
    let stderr = run(&bad_ns);
    assert_eq!(api.lines().len(), before, "nothing sent");
    assert!(
        stderr.starts_with(
            "kspy: context staging of the kubeconfig sets namespace \"Bad_NS\", which is no \
             valid namespace name"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("--namespace value"), "{stderr}");
    assert!(
        stderr.contains("`kubectl config set-context staging --namespace=NAME`"),
        "{stderr}"
    );

    for (file, current, headline) in [
        (
            "empty-current",
            "\"\"",
            "kspy: the kubeconfig sets no current context, and no --context was given\n",
        ),
        (
            "unknown-current",
            "prdo",
            "kspy: the kubeconfig's current context prdo is not one of its contexts (no \
             --context was given)\n",
        ),
    ] {
        let stderr = run(&write(file, current, "prod"));
        assert!(stderr.starts_with(headline), "{file}: {stderr}");
        assert!(
            stderr.contains("  contexts that exist: "),
            "{file}: {stderr}"
        );
        assert!(
            stderr.contains("prod") && stderr.contains("staging"),
            "{file}: {stderr}"
        );
        assert!(
            stderr.contains("hint: pick one with --context NAME"),
            "{file}: {stderr}"
        );
    }
    assert_eq!(
        api.lines(),
        ["GET /api/v1/pods?limit=500"],
        "only the -A list was sent"
    );
}

#[test]
fn unreachable_server_says_so() {
    let api = FakeApi::start(|_| Reply::text(""));
    let dir = tempfile::tempdir().expect("tmp");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::copy(api.kubeconfig(), &kubeconfig).expect("copy kubeconfig");
    drop(api); // nothing listens there any more
    let out = support::run_binary(
        std::path::Path::new(env!("CARGO_BIN_EXE_kspy")),
        &["ls"],
        Some(&kubeconfig),
        dir.path(),
    );
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("cannot reach the API server at http://127.0.0.1:"),
        "{stderr}"
    );
}

/// A listener that takes connections and never says a word, as a hung API server, proxy or
/// load balancer does; the connections are held open until the test ends.
fn silent_listener() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    addr
}

/// A server that takes the connection but never answers is reported as such, within
/// --request-timeout — not as "cannot reach" after kube-rs's 30 s on connecting (HTTPS, where
/// the TLS handshake hangs), nor never (plain HTTP, which nothing bounded).
#[test]
fn a_server_that_never_answers_is_reported_as_hung() {
    let addr = silent_listener();
    let api = FakeApi::start(|_| Reply::text(""));
    for scheme in ["http", "https"] {
        let kubeconfig = api.write_kubeconfig(
            &format!("silent-{scheme}"),
            &format!("{scheme}://{addr}"),
            "",
            "    token: test-token\n",
        );
        let started = Instant::now();
        let out = api.kspy_env(&["ls", "--request-timeout", "1s"], &kubeconfig, &[], b"");
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{scheme}: {stderr}");
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{scheme}: {:?}",
            started.elapsed()
        );
        assert!(
            stderr.starts_with(&format!(
                "kspy: could not list the pods of namespace prod: the API server at \
                 {scheme}://{addr}/ took the connection but did not answer within 1s\n"
            )),
            "{scheme}: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "hint: {addr} accepts connections but nothing answers: the API server, or a \
                 proxy or load balancer in front of it, is hung or overloaded"
            )),
            "{scheme}: {stderr}"
        );
        assert!(!stderr.contains("cannot reach"), "{scheme}: {stderr}");
    }
}

/// A write that gets no answer may still have been carried out: the message says to look
/// before running the command again.
#[test]
fn a_write_without_an_answer_may_have_been_done() {
    let api = FakeApi::start(|r: &Recorded| match r.method.as_str() {
        "GET" if r.path == POD_PATH => Reply::ok(&web_pod()),
        _ => {
            // The API server (or its webhooks) hangs on the write.
            std::thread::sleep(Duration::from_secs(3));
            Reply::text("")
        }
    });
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--request-timeout",
        "500ms",
    ]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "kspy: could not add debug container debugger-tst42 to pod prod/{WEB}: the API \
             server at http://{}/ took the connection but did not answer within 500ms\n  the \
             request may have been carried out all the same: look before running the command \
             again (`kubectl get pods -n prod`)\n",
            api.addr
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("--request-timeout (0 for no limit)"),
        "{stderr}"
    );
}

/// An API server whose certificate the kubeconfig does not trust (no certificate-authority):
/// a certificate problem, not "cannot reach … check that the cluster is up".
#[test]
fn untrusted_server_certificate_says_so() {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = kspy_certs::generate_with_sans(
        "api",
        "default",
        Duration::from_secs(3600),
        &["127.0.0.1".to_string()],
    )
    .expect("certificates");
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(certs.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("certificate");
    let key = PrivateKeyDer::from_pem_slice(certs.key_pem.as_bytes()).expect("key");
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config"),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let Ok(mut tls) = rustls::ServerConnection::new(config.clone()) else {
                continue;
            };
            // The handshake, until the client gives up on the certificate.
            while tls.complete_io(&mut conn).is_ok() && tls.is_handshaking() {}
        }
    });
    let api = FakeApi::start(|_| Reply::text(""));
    let kubeconfig = api.write_kubeconfig(
        "tls-kubeconfig",
        &format!("https://{addr}"),
        "",
        "    token: test-token\n",
    );
    let out = api.kspy_env(&["ls"], &kubeconfig, &[], b"");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "kspy: could not list the pods of namespace prod: the API server's certificate at \
             https://{addr}/ is not trusted: it is not signed by a certificate authority the \
             kubeconfig trusts\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("certificate-authority-data") && !stderr.contains("cluster is up"),
        "{stderr}"
    );
}

#[test]
fn help_has_examples_and_completion_works() {
    let dir = tempfile::tempdir().expect("tmp");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kspy"));
    for sub in ["attach", "copy", "node", "ls", "completion"] {
        let out = support::run_binary(bin, &[sub, "--help"], None, dir.path());
        let (stdout, _) = texts(&out);
        assert!(out.status.success());
        assert!(stdout.contains("Examples:"), "{sub} --help has no examples");
    }
    for shell in ["bash", "zsh", "fish"] {
        let out = support::run_binary(bin, &["completion", shell], None, dir.path());
        let (stdout, _) = texts(&out);
        assert!(out.status.success());
        assert!(
            stdout.contains("attach") && stdout.contains("kspy"),
            "{shell}"
        );
    }
}

#[cfg(unix)]
#[test]
fn works_as_kubectl_plugin() {
    let dir = tempfile::tempdir().expect("tmp");
    let link = dir.path().join("kubectl-kspy");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kspy"), &link).expect("symlink");
    let out = support::run_binary(&link, &["--help"], None, dir.path());
    let (stdout, _) = texts(&out);
    assert!(out.status.success());
    assert!(stdout.contains("Usage: kubectl kspy <COMMAND>"), "{stdout}");
    let out = support::run_binary(
        &link,
        &["attach", "x", "-c", "ap"],
        Some(&dir.path().join("missing")),
        dir.path(),
    );
    let (_, stderr) = texts(&out);
    assert!(stderr.starts_with("kubectl kspy: "), "{stderr}");

    // Examples in help and hints in errors name the command as it was invoked.
    for sub in [
        &["attach", "--help"][..],
        &["policy", "check", "--help"],
        &["--help"],
    ] {
        let out = support::run_binary(&link, sub, None, dir.path());
        let (stdout, _) = texts(&out);
        assert!(stdout.contains("\n  kubectl kspy "), "{sub:?}: {stdout}");
        assert!(
            !stdout.lines().any(|l| l.trim_start().starts_with("kspy ")),
            "{sub:?} shows `kspy …` examples: {stdout}"
        );
    }
    let mut sim = Sim::new();
    sim.refuse_patch = Some(refuse_not_served);
    let (api, _) = sim_api(sim);
    let out = support::run_binary(
        &link,
        &["attach", WEB, "-c", "app", "--name", "debugger-tst42"],
        Some(&api.kubeconfig()),
        api.dir.path(),
    );
    let (_, stderr) = texts(&out);
    assert!(
        stderr.contains("use `kubectl kspy copy POD --to NAME` instead"),
        "{stderr}"
    );
}

#[test]
fn attach_streams_stdin_and_stdout_over_websocket() {
    let (api, _) = running_sim_api();
    let out = attach_stdin(&api, "debugger-tst42", b"ping\n");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "attached\nping\n");
    let reqs = api.requests();
    let attach = reqs
        .iter()
        .find(|r| r.path == format!("{POD_PATH}/attach"))
        .expect("attach request");
    assert_eq!(attach.param("container").as_deref(), Some("debugger-tst42"));
    assert_eq!(attach.param("stdin").as_deref(), Some("true"));
    assert_eq!(attach.param("tty"), None, "stdin is not a terminal: no TTY");
    assert!(
        stderr.ends_with("\ncontainer debugger-tst42 exited with code 0\n"),
        "{stderr}"
    );
}

/// The stream is cut while the container goes on: after a few seconds of its status still
/// saying Running, kspy says how to attach again and exits 0.
#[test]
fn attach_cut_while_the_container_runs_says_how_to_attach_again() {
    let (api, _) = running_sim_api();
    let started = Instant::now();
    let out = api.kspy_with_input(
        &[
            "attach",
            WEB,
            "-c",
            "app",
            "--name",
            "debugger-detach",
            "-i",
        ],
        b"ping\n",
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(stdout, "attached\nping\n");
    assert!(
        stderr.ends_with(&format!(
            "\nsession ended; attach again with: kspy attach {WEB} -n prod --reuse --name debugger-detach -i  (or: kubectl attach {WEB} -n prod -c debugger-detach -i)\n"
        )),
        "{stderr}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "waited for the status"
    );
    let lines = api.lines();
    let attach_at = lines
        .iter()
        .position(|l| l.starts_with(&format!("GET {POD_PATH}/attach?")))
        .expect("attached");
    let reads = lines[attach_at + 1..]
        .iter()
        .filter(|l| **l == format!("GET {POD_PATH}"))
        .count();
    assert!((2..=40).contains(&reads), "{lines:?}");
}

/// The kubelet's attach stream carries no exit code: kspy reads it from the pod's status,
/// which shows the container terminated a little after the stream ends.
#[test]
fn attach_exits_with_the_containers_exit_code() {
    let (api, sim) = running_sim_api();
    let out = api.kspy_with_input(
        &[
            "attach",
            WEB,
            "-c",
            "app",
            "--name",
            "debugger-fail",
            "-it",
            "-q",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(3), "{}", texts(&out).1);
    assert_eq!(
        sim.lock()
            .expect("sim")
            .exited
            .first()
            .map(|(n, c, _)| (n.as_str(), *c)),
        Some(("debugger-fail", 3)),
        "the exit code came through the pod's status"
    );
    let lines = api.lines();
    assert_eq!(
        lines.last(),
        Some(&format!("GET {POD_PATH}")),
        "the pod is read after the session: {lines:?}"
    );
}

/// A container that had already terminated when kspy came to attach: its logs, and its exit
/// code.
#[test]
fn already_terminated_container_exits_with_its_exit_code() {
    let mut sim = Sim::new();
    sim.new_state = json!({"terminated": {"exitCode": 2, "reason": "Error",
        "startedAt": "2026-01-01T00:05:00Z", "finishedAt": "2026-01-01T00:05:01Z"}});
    let (api, _) = sim_api(sim);
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--attach",
        "--",
        "false",
    ]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stdout, "hello from the debug container\n");
    assert!(
        stderr.contains(
            "container debugger-tst42 has already terminated (Terminated (Error, exit code 2)); its logs:"
        ),
        "{stderr}"
    );
}

/// Logs are bytes: a container that wrote something other than UTF-8 (a binary dump, Latin-1
/// text) still has it shown as written, and kspy still exits with its exit code.
#[test]
fn logs_that_are_not_utf8_are_passed_through_with_the_exit_code() {
    let mut sim = Sim::new();
    sim.new_state = json!({"terminated": {"exitCode": 3, "reason": "Error",
        "startedAt": "2026-01-01T00:05:00Z", "finishedAt": "2026-01-01T00:05:01Z"}});
    let raw: &[u8] = b"caf\xe9 \xff\xfe\x00binary\n";
    sim.logs = raw.to_vec();
    let (api, _) = sim_api(sim);
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--attach",
        "--",
        "cat",
        "/dump",
    ]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(out.stdout, raw, "{stderr}");
    assert!(!stderr.contains("kspy:"), "{stderr}");

    // Logs that cannot be read at all (no `get pods/log`) are said so; the exit code stays.
    let mut sim = Sim::new();
    sim.new_state = json!({"terminated": {"exitCode": 3, "reason": "Error"}});
    sim.logs_refused = true;
    let (api, _) = sim_api(sim);
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--attach",
    ]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(&format!(
            "kspy: could not read the logs of container debugger-tst42 of pod prod/{WEB}: you \
             are not allowed to get pods/log in namespace prod"
        )),
        "{stderr}"
    );
}

/// The command ended between the wait and the attach: its logs and its exit code, as kubectl
/// falls back to them.
#[test]
fn attach_to_a_container_that_just_ended_shows_its_logs_and_exit_code() {
    let (api, _) = running_sim_api();
    let out = attach_stdin(&api, "debugger-ended", b"");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(
            "could not attach: container debugger-ended has already terminated; its logs:"
        ),
        "{stderr}"
    );
    assert!(
        api.lines()
            .iter()
            .any(|l| l.contains("/log?container=debugger-ended")),
        "{:?}",
        api.lines()
    );
}

/// The kubelet could not attach (the container stopped in between): an error with its
/// message, exit code 1, as `kubectl attach`.
#[test]
fn failed_attach_is_an_error() {
    let (api, _) = running_sim_api();
    let out = attach_stdin(&api, "debugger-gone", b"");
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(&format!(
            "kspy: could not attach to container debugger-gone of pod prod/{WEB}\n  Internal error occurred: error attaching to container: failed to load task: no running task found: task 0a1b2c not found: not found\n  container debugger-gone of pod prod/{WEB} still shows as running; once the cause is fixed, attach to it with: kspy attach {WEB} -n prod --reuse --name debugger-gone -i  (or: kubectl attach {WEB} -n prod -c debugger-gone -i)\nhint: the container may have stopped before kspy attached"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("session ended"), "{stderr}");
}

/// An attach RBAC refuses (403 with the authorizer's Status on the WebSocket upgrade) names
/// the verb and resource to ask for, not only the refused upgrade.
#[test]
fn an_attach_refused_by_rbac_names_the_permission() {
    let (api, _) = running_sim_api();
    let out = attach_stdin(&api, "debugger-refused", b"");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "kspy: could not attach to container debugger-refused of pod prod/{WEB}: you are \
             not allowed to get pods/attach in namespace prod\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "hint: ask for an RBAC Role granting verb \"get\" on resource \"pods/attach\" in \
             namespace prod"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("switch protocol"), "{stderr}");
    // The container was added and still runs: the user is told how to reach it once granted,
    // not left to run the same command again and add a second one.
    assert!(
        stderr.contains(&format!(
            "  container debugger-refused of pod prod/{WEB} still shows as running; once the cause \
             is fixed, attach to it with: kspy attach {WEB} -n prod --reuse --name debugger-refused -i  \
             (or: kubectl attach {WEB} -n prod -c debugger-refused -i)\n"
        )),
        "{stderr}"
    );
}

fn evict(pod: &mut Value) {
    pod["status"]["phase"] = json!("Failed");
    pod["status"]["reason"] = json!("Evicted");
    pod["status"]["message"] =
        json!("The node was low on resource: memory. Threshold quantity: 100Mi, available: 54Mi.");
}

const COPY_PATH: &str = "/api/v1/namespaces/prod/pods/web-debug";

/// An API server for `kspy copy WEB --to web-debug` whose kubelet restarts the copy's debug
/// container when it exits, as the copy's restartPolicy (the source pod's, Always) says:
/// `status` gives the debug container's status as the watch and the `GET` of the copy show it,
/// from how often its attached process has exited so far (the fake kubelet's `on_exit`).
/// `pods/log` answers which run it shows: `previous=true` the one before the current one.
fn restarting_copy_api(status: fn(u32) -> Value) -> FakeApi {
    let created: Arc<Mutex<Option<Value>>> = Arc::new(Mutex::new(None));
    let exits = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (store, count) = (created.clone(), exits.clone());
    let current = move || {
        let mut pod = store.lock().expect("copy").clone()?;
        let debug = pod["metadata"]["annotations"]["kspy.dev/debug-container"].clone();
        let mut s = status(count.load(std::sync::atomic::Ordering::SeqCst));
        s["name"] = debug;
        s["image"] = json!("busybox:latest");
        s["imageID"] = json!("");
        s["ready"] = json!(false);
        pod["status"] = json!({"phase": "Running", "containerStatuses": [s]});
        Some(pod)
    };
    FakeApi::start_with_kubelet(
        move |r: &Recorded| match (r.method.as_str(), r.path.as_str()) {
            ("GET", POD_PATH) => Reply::ok(&web_pod()),
            ("POST", "/api/v1/namespaces/prod/pods") => {
                let mut pod = r.json();
                pod["metadata"]["resourceVersion"] = json!("1");
                *created.lock().expect("copy") = Some(pod.clone());
                Reply::json(201, &pod)
            }
            ("GET", "/api/v1/namespaces/prod/pods") if r.param("watch").is_some() => {
                match current() {
                    Some(pod) => Reply::events(&[("MODIFIED", pod)]),
                    None => Reply::events(&[]),
                }
            }
            ("GET", COPY_PATH) => match current() {
                Some(pod) => Reply::ok(&pod),
                None => Reply::not_found("pods", "web-debug"),
            },
            ("GET", p) if p == format!("{COPY_PATH}/log") => {
                if r.param("previous").as_deref() == Some("true") {
                    Reply::text("output of the run that ended\n")
                } else {
                    Reply::text("output of the run going on\n")
                }
            }
            _ => Reply::status(
                404,
                "NotFound",
                "the server could not find the requested resource",
                json!({}),
            ),
        },
        move |_, _| {
            exits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        },
    )
}

/// A copy's debug container that exits is restarted (the copy keeps the pod's restartPolicy,
/// as kubectl debug's copies do): its status shows it waiting in back-off, the run that ended
/// in `lastState`. `--wait` stops there with that run's exit code and logs, and says it is
/// being restarted, instead of waiting out --timeout.
#[test]
fn a_copys_container_that_exits_and_restarts_ends_the_wait_with_its_exit_code() {
    let api = restarting_copy_api(|_| {
        json!({"restartCount": 1,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}},
            "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}})
    });
    let started = Instant::now();
    let out = api.kspy(&[
        "copy",
        WEB,
        "--to",
        "web-debug",
        "--image",
        "busybox:latest",
        "--name",
        "debugger-tst42",
        "--wait",
        "--timeout",
        "20s",
        "--",
        "sh",
        "-c",
        "exit 3",
    ]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(15), "{stderr}");
    assert!(
        stderr.contains(
            "container debugger-tst42 ran and exited (Error, exit code 3); the pod's \
             restartPolicy (Always) is restarting it"
        ),
        "{stderr}"
    );
    assert_eq!(stdout, "output of the run that ended\n");
    let logs: Vec<Recorded> = api
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/log"))
        .collect();
    assert_eq!(logs.len(), 1, "{:?}", api.lines());
    assert_eq!(logs[0].param("previous").as_deref(), Some("true"));
}

/// An attach session to a copy's debug container ends when its process exits; the kubelet
/// restarts it at once (Running again, restart count up, the exit in `lastState`). kspy exits
/// with the exit code of the run that ended and says it is being restarted — not "session
/// ended; attach again" with exit code 0.
#[test]
fn a_session_in_a_copy_ends_with_the_exit_code_of_the_run_even_when_it_is_restarted() {
    let api = restarting_copy_api(|exits| {
        if exits == 0 {
            json!({"restartCount": 0,
                "state": {"running": {"startedAt": "2026-01-01T00:05:00Z"}}})
        } else {
            json!({"restartCount": exits,
                "state": {"running": {"startedAt": "2026-01-01T00:06:00Z"}},
                "lastState": {"terminated": {"exitCode": 3, "reason": "Error"}}})
        }
    });
    let started = Instant::now();
    // `*-fail`: the fake kubelet's process exits with code 3 when stdin ends.
    let out = api.kspy_with_input(
        &[
            "copy",
            WEB,
            "--to",
            "web-debug",
            "--image",
            "busybox:latest",
            "--name",
            "debugger-fail",
            "-i",
        ],
        b"",
    );
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stdout.starts_with("attached\n"), "{stdout}");
    assert!(
        stderr.contains(
            "container debugger-fail exited with code 3; the pod's restartPolicy (Always) is \
             restarting it: attach again with:"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("session ended"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(5), "{stderr}");
}

/// A pod evicted while kspy waits for the debug container: it stops at once, with the reason
/// and message, and no "raise --timeout".
#[test]
fn waiting_stops_when_the_pod_is_evicted() {
    let mut sim = Sim::new();
    sim.new_state = json!({"waiting": {"reason": "ContainerCreating"}});
    sim.after_patch = Some(evict);
    let (api, _) = sim_api(sim);
    let started = Instant::now();
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(20), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "kspy: pod prod/{WEB} failed (Evicted): The node was low on resource: memory. Threshold quantity: 100Mi, available: 54Mi.; container debugger-tst42 will not run\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the kubelet evicted the pod"),
        "{stderr}"
    );
    assert!(!stderr.contains("--timeout"), "{stderr}");
}

/// A 409 on the PATCH is a write conflict: sent once more, then reported as a conflict.
#[test]
fn patch_conflict_is_retried_once_then_reported() {
    let mut sim = Sim::new();
    sim.conflicts = 1;
    let (api, sim) = sim_api(sim);
    let out = api.kspy(&["attach", WEB, "-c", "app", "--name", "debugger-tst42"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let patch = format!("PATCH {POD_PATH}/ephemeralcontainers?fieldManager=kspy");
    assert_eq!(
        api.lines(),
        vec![format!("GET {POD_PATH}"), patch.clone(), patch.clone()]
    );
    let requests = api.requests();
    assert_eq!(requests[1].body, requests[2].body, "the same patch again");
    assert_eq!(
        sim.lock().expect("sim").pod["spec"]["ephemeralContainers"][2]["name"],
        "debugger-tst42"
    );

    let mut sim = Sim::new();
    sim.conflicts = 2;
    let (api, _) = sim_api(sim);
    let out = api.kspy(&["attach", WEB, "-c", "app", "--name", "debugger-tst42"]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        api.lines(),
        vec![format!("GET {POD_PATH}"), patch.clone(), patch]
    );
    assert!(
        stderr.starts_with(&format!(
            "kspy: could not add debug container debugger-tst42 to pod prod/{WEB}: the pod was changed by someone else at the same time (409 Conflict)\n"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("already exists"), "{stderr}");
    assert!(
        stderr.contains("hint: run the same command again"),
        "{stderr}"
    );
}

/// The debug container is added before the wait: when watching it is refused (a role that
/// grants the patch but not `watch`), the error says it stays and how to attach to it, or the
/// same command run again would add a second one.
#[test]
fn a_refused_watch_says_the_container_was_added_and_how_to_attach() {
    let mut sim = Sim::new();
    sim.watch_refused = true;
    let (api, sim) = sim_api(sim);
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "-q",
        "-it",
    ]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "kspy: could not watch pod prod/{WEB}: you are not allowed to watch pods in \
             namespace prod\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "  debug container debugger-tst42 was added and stays in pod prod/{WEB}: ephemeral \
             containers cannot be removed\n  once it runs, attach to it with: kspy attach {WEB} \
             -n prod --reuse --name debugger-tst42 -it"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: ask for an RBAC Role granting verb \"watch\" on resource \"pods\""),
        "{stderr}"
    );
    let added = sim.lock().expect("sim").pod["spec"]["ephemeralContainers"].clone();
    assert!(
        added
            .as_array()
            .expect("list")
            .iter()
            .any(|c| c["name"] == "debugger-tst42"),
        "{added}"
    );
}

#[test]
fn wait_times_out_with_the_waiting_reason() {
    let mut sim = Sim::new();
    sim.new_state =
        json!({"waiting": {"reason": "ErrImagePull", "message": "pull access denied for nope"}});
    let (api, _) = sim_api(sim);
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--image",
        "nope",
        "--wait",
        "--timeout",
        "2s",
    ]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("waiting for debugger-tst42 in pod prod/web-7d9f8c6b5-x2x4q: ErrImagePull: pull access denied for nope"), "{stderr}");
    assert!(
        stderr.contains("kspy: timed out after 2s waiting for container debugger-tst42"),
        "{stderr}"
    );
    assert!(
        stderr.contains("last state: ErrImagePull: pull access denied for nope"),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the image cannot be pulled"),
        "{stderr}"
    );
    // What stays behind, and how to come back to it.
    assert!(
        stderr.contains(&format!(
            "  debug container debugger-tst42 was added and stays in pod prod/{WEB}: ephemeral \
             containers cannot be removed\n  once it runs, attach to it with: kspy attach {WEB} \
             -n prod --reuse --name debugger-tst42"
        )),
        "{stderr}"
    );
    // Watches that end at once are not retried in a tight loop.
    let watches = api
        .requests()
        .iter()
        .filter(|r| r.param("watch").is_some())
        .count();
    assert!((1..=12).contains(&watches), "{watches} watches in 2s");
}

/// A container that waits for what can never come — here `--profile restricted` (runAsNonRoot)
/// with busybox, which runs as root — is reported at once with what to do, not after
/// `--timeout` with a hint to raise it: the kubelet retries it for good, and an ephemeral
/// container can never be changed.
#[test]
fn a_container_that_can_never_start_ends_the_wait_at_once() {
    let mut sim = Sim::new();
    sim.new_state = json!({"waiting": {"reason": "CreateContainerConfigError",
        "message": "container has runAsNonRoot and image will run as root (pod: \"web_prod(1)\", container: debugger-tst42)"}});
    let (api, _) = sim_api(sim);
    let started = std::time::Instant::now();
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--profile",
        "restricted",
        "--wait",
        "--timeout",
        "30s",
    ]);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "waited {:?}: {stderr}",
        started.elapsed()
    );
    assert!(
        stderr.contains(&format!(
            "kspy: container debugger-tst42 of pod prod/{WEB} will never start: \
             CreateContainerConfigError: container has runAsNonRoot and image will run as root"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "  debug container debugger-tst42 was added and stays in pod prod/{WEB}: ephemeral \
             containers cannot be removed\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: the container must not run as root and its image runs as root"),
        "{stderr}"
    );
    assert!(!stderr.contains("--timeout"), "{stderr}");
    assert!(!stderr.contains("once it runs"), "{stderr}");
}

/// Whether the process was ended by SIGINT (2), as Ctrl-C ends a command: a shell shows `$?`
/// 130 for it, and one running a script or a loop stops too (an `exit 130` would not stop it).
fn ended_by_sigint(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(2)
}

/// Ctrl-C while kspy waits for the container: not a silent death but what stays behind and how
/// to attach to it; then kspy ends by the signal, as Ctrl-C ends any command (`$?` 130).
#[test]
fn interrupted_wait_says_what_stays_and_ends_as_ctrl_c_does() {
    let mut sim = Sim::new();
    sim.new_state = json!({"waiting": {"reason": "ContainerCreating"}});
    let (api, _) = sim_api(sim);
    let mut child = api.spawn_kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--wait",
        "--timeout",
        "60s",
    ]);
    let stderr = support::Collected::start(child.stderr.take().expect("stderr"));
    // The state the watch reported, not only the first line (still "Starting", before the
    // watch answers): the interrupt must come after kspy knows it, or the test races.
    assert!(
        stderr.wait_for(
            &format!("waiting for debugger-tst42 in pod prod/{WEB}: ContainerCreating"),
            Duration::from_secs(20)
        ),
        "{}",
        stderr.text()
    );
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("kspy ends");
    let stderr = stderr.finish();
    assert!(ended_by_sigint(status), "{status:?}: {stderr}");
    assert!(
        stderr.contains(&format!(
            "kspy: interrupted while waiting for container debugger-tst42 of pod prod/{WEB} (last \
             state: ContainerCreating)\n  debug container debugger-tst42 was added and stays in \
             pod prod/{WEB}: ephemeral containers cannot be removed\n  once it runs, attach to it \
             with: kspy attach {WEB} -n prod --reuse --name debugger-tst42"
        )),
        "{stderr}"
    );
}

/// Ctrl-C while the write is on its way (the API server, or its webhooks, slow to answer): not
/// a silent death but that the container may have been added all the same; then kspy ends by
/// the signal.
#[test]
fn interrupted_write_says_it_may_have_been_done() {
    let patching = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = patching.clone();
    let api = FakeApi::start(move |r: &Recorded| match r.method.as_str() {
        "GET" if r.path == POD_PATH => Reply::ok(&web_pod()),
        _ => {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            std::thread::sleep(Duration::from_secs(5));
            Reply::text("")
        }
    });
    let mut child = api.spawn_kspy(&["attach", WEB, "-c", "app", "--name", "debugger-tst42"]);
    let stderr = support::Collected::start(child.stderr.take().expect("stderr"));
    let started = Instant::now();
    while !patching.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no write came: {}",
            stderr.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = child.wait().expect("kspy ends");
    let stderr = stderr.finish();
    assert!(ended_by_sigint(status), "{status:?}: {stderr}");
    assert!(
        stderr.contains(&format!(
            "kspy: could not add debug container debugger-tst42 to pod prod/{WEB}: interrupted \
             before the API server answered\n  the request may have been carried out all the \
             same: look before running the command again (`kubectl get pods -n prod`)"
        )),
        "{stderr}"
    );
}

/// Once kspy has waited, Ctrl-C still ends it — during an attach session without a TTY, say:
/// taking the signal over for the wait must not swallow it afterwards.
#[test]
fn interrupt_after_the_wait_still_ends_kspy() {
    let (api, _) = running_sim_api();
    let mut child = api.spawn_kspy(&["attach", WEB, "-c", "app", "--name", "debugger-tst42", "-i"]);
    // Kept open: the session goes on until the interrupt.
    let stdin = child.stdin.take().expect("stdin");
    let stdout = support::Collected::start(child.stdout.take().expect("stdout"));
    let stderr = support::Collected::start(child.stderr.take().expect("stderr"));
    assert!(
        stdout.wait_for("attached", Duration::from_secs(20)),
        "{}",
        stderr.text()
    );
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("Ctrl-C did not end kspy: {}", stderr.text());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(stdin);
    assert!(ended_by_sigint(status), "{status:?}: {}", stderr.finish());
}

/// On a terminal, Ctrl-C typed while the spinner turns clears its line before kspy says what
/// stays behind (the line was left on the screen, the shell's prompt after it).
#[test]
fn interrupted_spinner_clears_its_line() {
    let mut sim = Sim::new();
    sim.new_state = json!({"waiting": {"reason": "ContainerCreating"}});
    let (api, _) = sim_api(sim);
    let Some(mut child) = api.spawn_kspy_in_terminal(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "--wait",
        "--timeout",
        "60s",
    ]) else {
        eprintln!("SKIP: util-linux's script is not installed");
        return;
    };
    let screen = support::Collected::start(child.stdout.take().expect("stdout"));
    assert!(
        screen.wait_for("waiting for debugger-tst42", Duration::from_secs(20)),
        "{}",
        screen.text()
    );
    let mut keyboard = child.stdin.take().expect("stdin");
    std::io::Write::write_all(&mut keyboard, b"\x03").expect("type Ctrl-C");
    let status = child.wait().expect("kspy ends");
    drop(keyboard);
    let screen = screen.finish();
    assert_eq!(status.code(), Some(130), "{screen:?}");
    let last_frame = screen.rfind("waiting for debugger-tst42").expect("spinner");
    let after = &screen[last_frame..];
    let cleared = after.find("\r\x1b[2K").expect("the line cleared");
    let said = after
        .find("kspy: interrupted while waiting")
        .expect("what happened");
    assert!(cleared < said, "{after:?}");
}

/// A signal that ends kspy during a TTY session (SIGTERM from a supervisor, SIGHUP when an
/// SSH session drops, SIGQUIT, `kill -INT`) still ends it by that signal, but gives the
/// terminal its mode back first: the shell after it echoes and reads lines again. Dying by a
/// signal skips the destructor that restored it before.
#[test]
fn a_signal_during_a_tty_session_leaves_the_terminal_as_it_was() {
    for (signal, number) in [("TERM", 15), ("HUP", 1), ("QUIT", 3), ("INT", 2)] {
        let (api, _) = running_sim_api();
        let kspy = support::kspy_command_line(&[
            "attach",
            WEB,
            "-c",
            "app",
            "--name",
            "debugger-tst42",
            "-it",
        ]);
        // `sh -c` prints its pid, which kspy keeps by exec; after kspy, `stty -a` shows the
        // terminal's mode as kspy left it.
        let inner = format!("echo KSPY-PID:$$; exec {kspy}");
        let line = format!(
            "sh -c {} ; s=$?; echo; echo KSPY-STATUS:$s; stty -a",
            support::sh_quote(&inner)
        );
        let Some(mut child) = api.spawn_shell_in_terminal(&line) else {
            eprintln!("SKIP: util-linux's script is not installed");
            return;
        };
        let screen = support::Collected::start(child.stdout.take().expect("stdout"));
        assert!(
            screen.wait_for("attached", Duration::from_secs(20)),
            "{signal}: {}",
            screen.text()
        );
        let text = screen.text();
        let pid = text
            .split("KSPY-PID:")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("kspy's pid")
            .to_string();
        let killed = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid])
            .status()
            .expect("kill");
        assert!(killed.success(), "{signal}");
        let keyboard = child.stdin.take();
        child.wait().expect("the shell ends");
        drop(keyboard);
        let screen = screen.finish();
        let after = screen
            .split("KSPY-STATUS:")
            .nth(1)
            .unwrap_or_else(|| panic!("{signal}: {screen:?}"));
        let status: i32 = after
            .split_whitespace()
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{signal}: {after:?}"));
        assert_eq!(
            status,
            128 + number,
            "{signal}: ended by the signal: {screen:?}"
        );
        let modes: Vec<&str> = after.split_whitespace().collect();
        for mode in ["icanon", "echo", "isig", "icrnl", "opost"] {
            assert!(
                modes.contains(&mode),
                "{signal}: the terminal is left without {mode}: {after:?}"
            );
        }
    }
}

/// A timeout under a second, or with a fraction, is echoed as given, not rounded to "1s".
#[test]
fn sub_second_timeouts_are_echoed_as_given() {
    let mut sim = Sim::new();
    sim.new_state = json!({"waiting": {"reason": "ContainerCreating"}});
    let (api, _) = sim_api(sim);
    for (given, shown) in [("500ms", "500ms"), ("1500ms", "1.5s")] {
        let out = api.kspy(&["attach", WEB, "-c", "app", "--wait", "--timeout", given]);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "kspy: timed out after {shown} waiting for container"
            )),
            "{given}: {stderr}"
        );
    }
}

#[test]
fn certs_generate_refuses_existing_files_unless_forced() {
    let dir = tempfile::tempdir().expect("tmp");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kspy"));
    let out_dir = dir.path().join("certs");
    let out_arg = out_dir.display().to_string();
    let generate = |extra: &[&str]| {
        let mut args = vec![
            "certs",
            "generate",
            "--service",
            "kspy-webhook",
            "--namespace",
            "kspy-system",
            "--out",
            &out_arg,
        ];
        args.extend_from_slice(extra);
        support::run_binary(bin, &args, None, dir.path())
    };
    let out = generate(&[]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let key_before = std::fs::read(out_dir.join("tls.key")).expect("key");

    let out = generate(&[]);
    let (stdout, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with(&format!(
            "kspy: {out_arg} already holds certificate files; not replacing them\n"
        )),
        "{stderr}"
    );
    for file in ["ca.crt", "tls.crt", "tls.key", "ca-bundle.b64"] {
        assert!(
            stderr.contains(&format!("  {}\n", out_dir.join(file).display())),
            "{file}: {stderr}"
        );
    }
    assert!(stderr.contains("hint: pass --force"), "{stderr}");
    assert_eq!(
        std::fs::read(out_dir.join("tls.key")).expect("key"),
        key_before,
        "nothing replaced"
    );

    // One file is enough to refuse; --force replaces.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).expect("mkdir");
    std::fs::write(partial.join("tls.key"), "old").expect("old key");
    let partial_arg = partial.display().to_string();
    let out = support::run_binary(
        bin,
        &[
            "certs",
            "generate",
            "--service",
            "s",
            "--namespace",
            "n",
            "--out",
            &partial_arg,
        ],
        None,
        dir.path(),
    );
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains(&format!("  {}\n", partial.join("tls.key").display())));
    assert!(!stderr.contains("tls.crt"), "{stderr}");

    let out = generate(&["--force"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_ne!(
        std::fs::read(out_dir.join("tls.key")).expect("key"),
        key_before
    );
}

#[test]
fn certs_help_examples_work() {
    let dir = tempfile::tempdir().expect("tmp");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kspy"));
    let help = |args: &[&str]| {
        let out = support::run_binary(bin, args, None, dir.path());
        assert!(out.status.success());
        texts(&out).0
    };
    for sub in [
        &["certs", "generate", "--help"][..],
        &["certs", "inspect", "--help"],
    ] {
        assert!(help(sub).contains("Examples:"), "{sub:?}");
    }
    // Run each `kspy certs …` example of `kspy certs --help`, in order, in a scratch directory.
    let examples: Vec<String> = help(&["certs", "--help"])
        .lines()
        .filter_map(|l| l.trim().strip_prefix("kspy "))
        .map(str::to_string)
        .collect();
    assert_eq!(examples.len(), 2, "{examples:?}");
    for example in &examples {
        let args: Vec<&str> = example.split_whitespace().collect();
        let out = std::process::Command::new(bin)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("run example");
        assert!(
            out.status.success(),
            "`kspy {example}` fails: {}",
            texts(&out).1
        );
    }
}

#[test]
fn kubeconfig_list_skips_missing_files_and_merges_like_kubectl() {
    let api = FakeApi::start(|r: &Recorded| {
        assert_eq!(r.method, "GET");
        Reply::ok(&json!({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": []}))
    });
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kspy"));
    let home = api.dir.path();
    let full = api.kubeconfig();
    // The first file to set current-context wins, though it defines no context itself.
    let first = home.join("first.yaml");
    std::fs::write(
        &first,
        "apiVersion: v1\nkind: Config\ncurrent-context: other\n",
    )
    .expect("write");
    let list = format!(
        "{}/missing:{}:{}",
        home.display(),
        first.display(),
        full.display()
    );
    let out = support::run_binary(bin, &["ls"], Some(std::path::Path::new(&list)), home);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    // The namespace has no pods: kspy asks whether it exists (`kspy ls` in a missing one).
    assert_eq!(
        api.lines(),
        vec![
            "GET /api/v1/namespaces/other/pods?limit=500",
            "GET /api/v1/namespaces/other"
        ]
    );

    // `current-context: ""` (kubectl config writes it) sets nothing: the next file's counts.
    let blank = home.join("blank.yaml");
    std::fs::write(
        &blank,
        "apiVersion: v1\nkind: Config\ncurrent-context: \"\"\n",
    )
    .expect("write");
    let list = format!("{}:{}:{}", blank.display(), first.display(), full.display());
    let out = support::run_binary(bin, &["ls"], Some(std::path::Path::new(&list)), home);
    let (_, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let lines = api.lines();
    assert_eq!(
        lines[lines.len() - 2..],
        [
            "GET /api/v1/namespaces/other/pods?limit=500",
            "GET /api/v1/namespaces/other"
        ]
    );

    // A broken file in the list is named, without Rust's debug quoting.
    let broken = home.join("broken.yaml");
    std::fs::write(&broken, "clusters: [unclosed\n").expect("write");
    let list = format!("{}:{}", full.display(), broken.display());
    let out = support::run_binary(bin, &["ls"], Some(std::path::Path::new(&list)), home);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.starts_with(&format!(
            "kspy: cannot load kubeconfig {}\n",
            broken.display()
        )),
        "{stderr}"
    );
    let unreadable = home.join("a-directory");
    std::fs::create_dir(&unreadable).expect("mkdir");
    let out = support::run_binary(bin, &["ls"], Some(&unreadable), home);
    let (_, stderr) = texts(&out);
    assert!(
        stderr.starts_with(&format!(
            "kspy: cannot load kubeconfig {}\n",
            unreadable.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("'\""), "{stderr}");
    assert_eq!(
        api.lines().len(),
        4,
        "nothing sent with a broken kubeconfig (two lists, each with its namespace's GET)"
    );
}

/// The real binary under a 2 GB address-space limit, with `KUBECONFIG` as given (else unset)
/// and `HOME` at `home`; it must return within 30 seconds, or the test fails (it is killed).
#[cfg(target_os = "linux")]
fn kspy_bounded(
    args: &[&str],
    kubeconfig_env: Option<&str>,
    home: &std::path::Path,
) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -v 2000000 && exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_kspy"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(list) = kubeconfig_env {
        cmd.env("KUBECONFIG", list);
    }
    let mut child = cmd.spawn().expect("run kspy");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait for kspy").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("kspy output");
            panic!(
                "kspy {args:?} (KUBECONFIG {kubeconfig_env:?}) did not return within 30s: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("kspy output")
}

/// kube-rs reads a kubeconfig whole: `--kubeconfig /dev/zero` was read until memory ran out,
/// by `--kubeconfig`, in a `KUBECONFIG` list, or as ~/.kube/config, as was a file of any size.
/// Each is refused before it is read, naming the path and saying what to do. (A pipe is read,
/// up to the same cap: `a_kubeconfig_from_a_pipe_is_read_up_to_the_cap`.)
#[cfg(target_os = "linux")]
#[test]
fn a_kubeconfig_that_is_no_regular_file_or_too_large_is_refused_unread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let huge = home.join("huge.yaml");
    std::fs::File::create(&huge)
        .and_then(|f| f.set_len(17 * 1024 * 1024))
        .expect("a sparse 17 MiB file");
    let zero = home.join("zero.yaml");
    std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
    let missing = home.join("missing.yaml");

    let device = "it is a device, not a regular file: a kubeconfig is read to its end, which \
                  such a file may never reach\nhint: write the kubeconfig to a file";
    let large = "it is 17825792 bytes, more than the 16 MiB kspy reads of a kubeconfig\nhint: \
                 check that --kubeconfig or KUBECONFIG names the kubeconfig";
    let (huge, zero) = (huge.display().to_string(), zero.display().to_string());
    for (args, list, named, why) in [
        (
            vec!["ls", "--kubeconfig", "/dev/zero"],
            None,
            "/dev/zero",
            device,
        ),
        (vec!["ls", "--kubeconfig", &huge], None, &huge, large),
        (
            vec!["ls"],
            Some(format!("{}:{zero}", missing.display())),
            &zero,
            device,
        ),
        (vec!["ls"], Some(huge.clone()), &huge, large),
    ] {
        let out = kspy_bounded(&args, list.as_deref(), home);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?} {list:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("kspy: cannot load kubeconfig {named}\n  {why}")),
            "{args:?} {list:?}: {stderr}"
        );
    }

    // ~/.kube/config too, followed through its symlink.
    std::fs::create_dir(home.join(".kube")).expect("mkdir");
    std::os::unix::fs::symlink("/dev/zero", home.join(".kube/config")).expect("symlink");
    let out = kspy_bounded(&["ls"], None, home);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "kspy: cannot load kubeconfig {}/.kube/config\n  {device}",
            home.display()
        )),
        "{stderr}"
    );
}

/// `--kubeconfig <(command)`, as kubectl takes it: the pipe is read (kube-rs would take it
/// too, but whole), up to the cap a file has; past it, refused without reading on.
#[cfg(target_os = "linux")]
#[test]
fn a_kubeconfig_from_a_pipe_is_read_up_to_the_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    // Port 1: nothing listens, so loading it is seen as an attempt to reach that server.
    std::fs::write(
        &config,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'http://127.0.0.1:1'}\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .expect("write");
    let run = |feed: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "ulimit -v 2000000 && exec \"$0\" ls --request-timeout 5s --kubeconfig <({feed})"
            ))
            .arg(env!("CARGO_BIN_EXE_kspy"))
            .env_remove("KUBECONFIG")
            .env("HOME", dir.path())
            .env("CONFIG", &config)
            .output()
            .expect("run kspy under bash");
        assert_eq!(out.status.code(), Some(1), "{feed}");
        texts(&out).1
    };
    let stderr = run("cat \"$CONFIG\"");
    assert!(
        stderr.contains("cannot reach the API server at http://127.0.0.1:1"),
        "{stderr}"
    );
    let stderr = run("head -c 17000000 /dev/zero");
    assert!(
        stderr.starts_with("kspy: cannot load kubeconfig /dev/fd/")
            && stderr.contains("it goes on longer than the 16 MiB kspy reads of a kubeconfig"),
        "{stderr}"
    );
}

#[test]
fn bad_flag_values_are_usage_errors_before_any_request() {
    let (api, _) = sim_api(Sim::new());
    let custom = api.dir.path().join("custom.yaml");
    std::fs::write(&custom, "securityContex:\n  privileged: true\n").expect("write");
    let custom = custom.display().to_string();
    let ports = api.dir.path().join("ports.yaml");
    std::fs::write(&ports, "ports:\n- containerPort: 8080\n").expect("write");
    let ports = ports.display().to_string();
    let sub_path = api.dir.path().join("sub-path.yaml");
    std::fs::write(
        &sub_path,
        "volumeMounts:\n- {name: config, mountPath: /cfg/a.yaml, subPath: a.yaml}\n",
    )
    .expect("write");
    let sub_path = sub_path.display().to_string();
    // containerd puts CAP_ before each name: CAP_CAP_SYS_PTRACE adds nothing, in silence.
    let cap_prefix = api.dir.path().join("cap-prefix.yaml");
    std::fs::write(
        &cap_prefix,
        "securityContext:\n  capabilities:\n    add: [CAP_SYS_PTRACE]\n",
    )
    .expect("write");
    let cap_prefix = cap_prefix.display().to_string();
    let cap_typo = api.dir.path().join("cap-typo.json");
    std::fs::write(
        &cap_typo,
        r#"{"securityContext": {"capabilities": {"drop": ["setuid", "SETGD"]}}}"#,
    )
    .expect("write");
    let cap_typo = cap_typo.display().to_string();
    for (args, wanted) in [
        (
            &["attach", WEB, "--cap", "sys ptrace", "--dry-run=client"][..],
            "invalid value 'sys ptrace' for '--cap <CAP>': a capability is a name like SYS_PTRACE",
        ),
        // A name Linux lacks: runc drops it, and the container runs without what was meant.
        (
            &["attach", WEB, "--cap", "cap_sys_ptrac"],
            "invalid value 'cap_sys_ptrac' for '--cap <CAP>': Linux has no capability \
             SYS_PTRAC; did you mean SYS_PTRACE?",
        ),
        (
            &["node", "node-a", "--cap", "NET_ADMN"],
            "did you mean NET_ADMIN",
        ),
        (&["attach", WEB, "-t"], "-t/--tty needs -i/--stdin; use -it"),
        (&["attach", WEB, "--image", ""], "the image is empty"),
        // What the kubelet cannot parse waits in InvalidImageName for good: an ephemeral
        // container that never runs and is never removed.
        (
            &["attach", WEB, "--image", "Busybox:1.36"],
            "invalid value 'Busybox:1.36' for '--image <IMAGE>': not a valid image reference: \
             repository names may only contain lower-case letters, digits and . _ - (did you \
             mean busybox:1.36?)",
        ),
        (
            &["node", "node-a", "--image", "busybox:"],
            "not a valid image reference: the tag must be 1-128 characters",
        ),
        (
            &["attach", WEB, "--image", "busybox@sha256:abc"],
            "not a valid image reference: the digest must have at least 32 hexadecimal characters",
        ),
        (
            &[
                "copy",
                WEB,
                "--to",
                "x",
                "--set-image",
                "app=registry.example.com/Web",
            ],
            "not a valid image reference",
        ),
        (
            &["attach", WEB, "--name", "Debugger"],
            "invalid value 'Debugger' for '--name <NAME>'",
        ),
        (
            &["attach", WEB, "--custom", "/nonexistent/custom.yaml"],
            "invalid value '/nonexistent/custom.yaml' for '--custom <FILE>': cannot read it",
        ),
        (
            &["attach", WEB, "--custom", &custom],
            "unknown field securityContex ",
        ),
        (
            &["node", "node-a", "--custom", &cap_prefix],
            "securityContext.capabilities.add[0] \"CAP_SYS_PTRACE\": write \"SYS_PTRACE\", \
             without CAP_",
        ),
        (
            &["copy", WEB, "--to", "x", "--custom", &cap_typo],
            "securityContext.capabilities.drop[1] \"SETGD\": Linux has no capability SETGD; \
             did you mean SETGID or",
        ),
        (
            &["attach", WEB, "--custom", &ports],
            "--custom file sets ports, which ephemeral containers may not have (an ephemeral \
             container's --custom file may set only args, workingDir, envFrom, env, \
             volumeMounts, terminationMessagePath, terminationMessagePolicy, imagePullPolicy, \
             securityContext, stdin, stdinOnce, tty, and no subPath",
        ),
        (
            &["attach", WEB, "--custom", &sub_path],
            "--custom file sets volumeMounts[0].subPath, which ephemeral containers may not \
             have; mount the whole volume instead (an ephemeral container's --custom file may \
             set only",
        ),
        (
            &[
                "copy",
                WEB,
                "--to",
                "x",
                "--mount",
                "data:/d",
                "--mount",
                "config:/d",
            ],
            "--mount data:/d and --mount config:/d both mount at /d",
        ),
        (
            &["node", "node-a", "--arguments-only"],
            "--arguments-only needs arguments",
        ),
        (&["attach", WEB, "--attach=maybe"], "expected true or false"),
        (
            &["copy", WEB, "--to", WEB, "--replace"],
            "names the pod being copied: the copy needs a name of its own",
        ),
        (
            &[
                "attach",
                WEB,
                "--wait",
                "--timeout",
                "18446744073709551615h",
            ],
            "\"18446744073709551615h\" is longer than the longest timeout accepted, 8760h (a \
             year); use 0 for no limit",
        ),
        (
            &["attach", WEB, "--env", "CAFÉ=1"],
            "invalid value 'CAFÉ=1' for '--env <NAME=VALUE>': the name contains 'É'; the API \
             server accepts only printable ASCII characters in environment variable names",
        ),
        (
            &["ls", "--context", ""],
            "invalid value '' for '--context <NAME>': the context name is empty; name a \
             context of the kubeconfig (`kubectl config get-contexts` lists them), or leave \
             out --context for the current one",
        ),
        (&["attach", WEB, "--context="], "the context name is empty"),
        (
            &["node", "node-a", "--kubeconfig", ""],
            "invalid value '' for '--kubeconfig <FILE>': the path is empty",
        ),
        (
            &["attach", WEB, "--reuse", "--env", "A=1", "--as-target-user"],
            "--reuse cannot honour --as-target-user, --env: it attaches to a debug container that already exists",
        ),
    ] {
        let out = api.kspy(args);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(stderr.contains(wanted), "{args:?}: {stderr}");
        assert!(!stderr.contains("kubectl delete"), "{args:?}: {stderr}");
        assert!(api.requests().is_empty(), "{args:?}: {:?}", api.lines());
    }
    // A debug copy's container is no ephemeral container: it may have ports.
    let copy_api = create_api(true);
    let out = copy_api.kspy(&[
        "copy",
        WEB,
        "--to",
        "web-debug",
        "--custom",
        &ports,
        "--dry-run=client",
        "-o",
        "json",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let pod: Value = serde_json::from_str(&stdout).expect("pod");
    let debug = pod["spec"]["containers"]
        .as_array()
        .and_then(|c| c.last())
        .expect("the debug container");
    assert_eq!(debug["ports"], json!([{"containerPort": 8080}]), "{debug}");
}

#[test]
fn boolean_flags_take_values_and_copy_to_is_accepted() {
    let (api, _) = sim_api(Sim::new());
    let out = api.kspy(&[
        "attach",
        WEB,
        "-c",
        "app",
        "--name",
        "debugger-tst42",
        "-i",
        "--attach=false",
    ]);
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_eq!(
        api.lines(),
        vec![
            format!("GET {POD_PATH}"),
            format!("PATCH {POD_PATH}/ephemeralcontainers?fieldManager=kspy"),
        ],
        "--attach=false: no watch, no attach"
    );
    let patch = &api.requests()[1];
    assert_eq!(
        patch.json()["spec"]["ephemeralContainers"][0]["stdin"],
        true
    );

    let api = create_api(false);
    let out = api.kspy(&[
        "copy",
        WEB,
        "--copy-to",
        "web-debug",
        "--keep-labels=true",
        "--share-processes=false",
        "--dry-run=client",
        "-o",
        "json",
    ]);
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    let pod: Value = serde_json::from_str(&stdout).expect("pod");
    assert_eq!(pod["metadata"]["name"], "web-debug");
    assert_eq!(pod["metadata"]["labels"]["app"], "web");
    assert_eq!(pod["spec"]["shareProcessNamespace"], false);
}

#[test]
fn closed_stdout_ends_quietly_with_success() {
    let dir = tempfile::tempdir().expect("tmp");
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kspy"));
    let policies = format!("{}/../policies", env!("CARGO_MANIFEST_DIR"));
    for args in [
        &["completion", "fish"][..],
        &["completion", "bash"],
        &["policy", "check", &policies],
        &["policy", "explain", "--policies", &policies, "sre-debug"],
        &[
            "policy",
            "eval",
            "--policies",
            &policies,
            &format!("{policies}/fixtures/attach-sre-ptrace.json"),
        ],
    ] {
        let out = support::run_with_closed_stdout(bin, args, None, dir.path());
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
    let (api, _) = sim_api(Sim::new());
    for args in [
        &["ls"][..],
        &["ls", "-o", "yaml"],
        &["attach", WEB, "-c", "app", "--dry-run=client"],
        &[
            "attach",
            WEB,
            "-c",
            "app",
            "--name",
            "debugger-tst42",
            "--dry-run=server",
        ],
    ] {
        let out = api.kspy_closed_stdout(args);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
    let api = create_api(true);
    for args in [
        &["copy", WEB, "--to", "web-debug", "--dry-run=client"][..],
        &["node", "node-a", "--dry-run=client"],
    ] {
        let out = api.kspy_closed_stdout(args);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert_eq!(stderr, "", "{args:?}");
    }
}

#[test]
fn client_dry_runs_send_no_write() {
    // Reads, and the SelfSubjectReview that asks who is asking (it changes nothing), as
    // cli/README.md says; no POST of a pod, no DELETE.
    let api = create_api(true);
    let out = api.kspy(&[
        "copy",
        WEB,
        "--to",
        "web-debug",
        "--dry-run=client",
        "--replace",
    ]);
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_eq!(
        api.lines(),
        vec![
            format!("GET {POD_PATH}"),
            "POST /apis/authentication.k8s.io/v1/selfsubjectreviews".to_string(),
        ]
    );
    let (stdout, _) = texts(&out);
    assert!(
        stdout.contains("\"kspy.dev/requested-by\": \"alice@example.com\""),
        "the printed body is the one that would be sent: {stdout}"
    );

    let api = create_api(true);
    let out = api.kspy(&["node", "node-a", "--dry-run=client"]);
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_eq!(
        api.lines(),
        vec![
            "GET /api/v1/nodes/node-a".to_string(),
            "POST /apis/authentication.k8s.io/v1/selfsubjectreviews".to_string(),
        ]
    );
}

/// A stand-in API server for trying the TTY by hand:
/// `cargo test -p kspy --test cli manual_server -- --ignored --nocapture`, then run the
/// printed command in a terminal (Ctrl-D ends the session; resizes are echoed back;
/// with `KSPY_MANUAL_WAITING=REASON` the container never starts, to see the spinner).
#[test]
#[ignore = "manual: serves for 120 s"]
fn manual_server() {
    let mut sim = Sim::new();
    sim.new_state = match std::env::var("KSPY_MANUAL_WAITING") {
        // e.g. KSPY_MANUAL_WAITING=ErrImagePull, to see the spinner.
        Ok(reason) => json!({"waiting": {"reason": reason, "message": "pull access denied"}}),
        Err(_) => json!({"running": {"startedAt": "2026-01-01T00:05:00Z"}}),
    };
    let (api, _) = sim_api(sim);
    println!(
        "KUBECONFIG={} {} attach {WEB} -c app -it",
        api.kubeconfig().display(),
        env!("CARGO_BIN_EXE_kspy")
    );
    std::thread::sleep(std::time::Duration::from_secs(120));
}

/// The audit's case: a proxy for the outside world, and NO_PROXY covering the API server.
#[test]
fn proxy_variables_with_no_proxy_covering_the_server_connect_directly() {
    let (api, _) = sim_api(Sim::new());
    let unreachable = "http://proxy.invalid:3128";
    let out = api.kspy_env(
        &["ls"],
        &api.kubeconfig(),
        &[
            ("HTTPS_PROXY", unreachable),
            ("HTTP_PROXY", unreachable),
            ("NO_PROXY", "127.0.0.1"),
        ],
        b"",
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("debugger-old01"), "{stdout}");
    assert_eq!(
        api.lines(),
        vec!["GET /api/v1/namespaces/prod/pods?limit=500"]
    );

    // Blank entries and a trailing comma, as kubectl takes them (kube-rs alone refuses them).
    for no_proxy in ["127.0.0.1,,.corp", "localhost, 127.0.0.1,", " *, .corp"] {
        let out = api.kspy_env(
            &["ls"],
            &api.kubeconfig(),
            &[("HTTPS_PROXY", unreachable), ("NO_PROXY", no_proxy)],
            b"",
        );
        let (_, stderr) = texts(&out);
        assert!(out.status.success(), "NO_PROXY={no_proxy:?}: {stderr}");
    }
    assert_eq!(api.lines().len(), 4, "each went straight to the API server");

    // What kube-rs cannot read at all is said so, naming the variable.
    let out = api.kspy_env(
        &["ls"],
        &api.kubeconfig(),
        &[
            ("HTTPS_PROXY", unreachable),
            ("NO_PROXY", "127.0.0.1,bad host"),
        ],
        b"",
    );
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("kspy: cannot read NO_PROXY=\"127.0.0.1,bad host\": "),
        "{stderr}"
    );
    assert_eq!(api.lines().len(), 4, "nothing sent");
}

/// kubectl's rules: the kubeconfig's proxy-url always; else HTTP_PROXY for an http:// API
/// server (HTTPS_PROXY for https://) unless NO_PROXY covers it. The API server's name here
/// resolves only on the proxy, so a request that skips the proxy cannot reach it.
#[test]
fn proxies_are_used_as_kubectl_uses_them() {
    let (api, _) = running_sim_api();
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    let proxy = FakeProxy::start(&[("kspy-api.invalid", loopback)]);
    let port = api.addr.port();
    let server = format!("http://kspy-api.invalid:{port}");
    let target = format!("kspy-api.invalid:{port}");
    let proxy_url = format!("http://{}", proxy.addr);
    let token = "    token: test-token\n";

    // The kubeconfig's proxy-url is used whatever NO_PROXY says, as kubectl does.
    let kc = api.write_kubeconfig(
        "via-proxy-url",
        &server,
        &format!("    proxy-url: {proxy_url}\n"),
        token,
    );
    let out = api.kspy_env(&["ls"], &kc, &[("NO_PROXY", "*")], b"");
    assert!(out.status.success(), "{}", texts(&out).1);
    assert_eq!(proxy.connects(), vec![target.clone()]);

    // HTTP_PROXY for an http:// server, the attach WebSocket included.
    let kc = api.write_kubeconfig("plain", &server, "", token);
    let out = api.kspy_env(
        &["attach", WEB, "-c", "app", "--name", "debugger-tst42", "-i"],
        &kc,
        &[
            ("HTTP_PROXY", &proxy_url),
            ("NO_PROXY", "10.0.0.0/8,.example.com"),
        ],
        b"ping\n",
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.starts_with("attached\nping\n"), "{stdout}");
    assert!(
        api.lines()
            .iter()
            .any(|l| l.starts_with(&format!("GET {POD_PATH}/attach?"))),
        "{:?}",
        api.lines()
    );
    assert!(proxy.connects().len() >= 2, "{:?}", proxy.connects());
    assert!(proxy.connects().iter().all(|c| *c == target));

    // NO_PROXY covering the server's domain: kspy goes direct, where the name does not resolve.
    let before = proxy.connects().len();
    for env in [
        &[("HTTP_PROXY", proxy_url.as_str()), ("NO_PROXY", ".invalid")][..],
        &[
            ("HTTP_PROXY", proxy_url.as_str()),
            ("no_proxy", "kspy-api.invalid"),
        ],
        // HTTPS_PROXY is for https:// servers only.
        &[("HTTPS_PROXY", proxy_url.as_str())],
    ] {
        let out = api.kspy_env(&["ls"], &kc, env, b"");
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{env:?}: {stderr}");
        assert!(
            stderr.contains(&format!("cannot reach the API server at {server}/\n")),
            "{env:?}: {stderr}"
        );
    }
    assert_eq!(proxy.connects().len(), before, "{:?}", proxy.connects());

    // An unreachable proxy is named in the error, without its password.
    let out = api.kspy_env(
        &["ls"],
        &kc,
        &[("HTTP_PROXY", "http://user:secret@proxy.invalid:3128")],
        b"",
    );
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach the API server at {server}/ through proxy http://proxy.invalid:3128 (HTTP_PROXY)"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("secret"), "{stderr}");
}

/// A kubeconfig user with an exec credential plugin that counts its runs: kspy builds one
/// client per command and runs the plugin only through it, for a one-request `ls` and for an
/// attach (patch, watch, WebSocket, reads of the pod) alike. The three runs per client are
/// kube-rs 5's own (building a client asks the plugin for a token, then twice for a client
/// certificate); the test keeps kspy from adding any.
#[cfg(unix)]
#[test]
fn exec_credential_plugin_runs_once_per_client() {
    use std::os::unix::fs::PermissionsExt;
    let (api, _) = running_sim_api();
    let count = api.dir.path().join("runs");
    let plugin = api.dir.path().join("credential-plugin");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho run >> '{}'\n\
             echo '{{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": \"ExecCredential\", \
             \"status\": {{\"token\": \"exec-token\", \"expirationTimestamp\": \"2099-01-01T00:00:00Z\"}}}}'\n",
            count.display()
        ),
    )
    .expect("write plugin");
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let user = format!(
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n",
        plugin.display()
    );
    let kc = api.write_kubeconfig(
        "exec-kubeconfig",
        &format!("http://{}", api.addr),
        "",
        &user,
    );
    let runs = || {
        std::fs::read_to_string(&count)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };

    let out = api.kspy_env(&["ls"], &kc, &[], b"");
    assert!(out.status.success(), "{}", texts(&out).1);
    let per_client = runs();
    assert!(
        (1..=3).contains(&per_client),
        "{per_client} runs for one client"
    );

    let out = api.kspy_env(
        &["attach", WEB, "-c", "app", "--name", "debugger-tst42", "-i"],
        &kc,
        &[],
        b"ping\n",
    );
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout, "attached\nping\n");
    assert!(api.lines().len() >= 5, "{:?}", api.lines());
    assert_eq!(
        runs() - per_client,
        per_client,
        "attach runs the plugin no more than ls: {:?}",
        api.lines()
    );
}

/// With no target named, kspy first asks (a dry run) whether a webhook picks one. That probe
/// carries the JSON patch's resourceVersion test too, so a pod written meanwhile answers
/// "stale": kspy reads it again and asks again, instead of pinning the first container.
#[test]
fn a_stale_probe_is_asked_again_and_the_webhook_still_picks_the_target() {
    fn the_kubelet_updates_the_status(pod: &mut Value) {
        pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    }
    let mut sim = Sim::new();
    without_debug_containers(&mut sim);
    sim.webhook = Some(kspy_webhook);
    sim.meanwhile = Some(the_kubelet_updates_the_status);
    sim.races = 1;
    sim.race_dry_runs = true;
    let (api, sim) = sim_api(sim);
    let out = api.kspy(&[
        "attach",
        WEB,
        "--name",
        "debugger-tst42",
        "--patch-type",
        "json",
    ]);
    assert!(out.status.success(), "{}", texts(&out).1);
    let get = format!("GET {POD_PATH}");
    let dry = format!("PATCH {POD_PATH}/ephemeralcontainers?dryRun=All&fieldManager=kspy");
    let patch = format!("PATCH {POD_PATH}/ephemeralcontainers?fieldManager=kspy");
    assert_eq!(api.lines(), vec![get.clone(), dry.clone(), get, dry, patch]);
    let s = sim.lock().expect("sim");
    // The webhook's choice, not the first container.
    assert_eq!(
        s.pod["spec"]["ephemeralContainers"][0]["targetContainerName"],
        "sidecar"
    );
}

/// An exec credential plugin that fails — its login expired, or it is not installed — is
/// named, with its user, its own message (stderr, line by line; never its stdout, where
/// credentials go) and what to do; not kube-rs's one-line dump of the plugin's whole output
/// as "cannot set up the Kubernetes client", nor, for a missing one, "unable to run auth
/// exec: No such file or directory" without saying what was run.
#[cfg(unix)]
#[test]
fn a_failing_exec_credential_plugin_is_named_with_its_message() {
    use std::os::unix::fs::PermissionsExt;
    let api = FakeApi::start(|_| Reply::ok(&json!({"kind": "PodList", "items": []})));
    let plugin = api.dir.path().join("expired-plugin");
    std::fs::write(
        &plugin,
        "#!/bin/sh\necho 'partial-secret-on-stdout'\n\
         echo 'error: the SSO session has expired' >&2\n\
         echo \"run 'aws sso login' to log in again\" >&2\nexit 255\n",
    )
    .expect("write plugin");
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let user = |command: &str, extra: &str| {
        format!(
            "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {command}\n      interactiveMode: Never\n{extra}"
        )
    };
    let server = format!("http://{}", api.addr);
    let kc = api.write_kubeconfig("expired", &server, "", &user(&plugin.to_string_lossy(), ""));
    let out = api.kspy_env(&["ls"], &kc, &[], b"");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(&format!(
            "kspy: cannot get credentials: the exec credential plugin of kubeconfig user fake, \
             {}, failed (exit code 255)\n  error: the SSO session has expired\n  run 'aws sso \
             login' to log in again\nhint: its message says why",
            plugin.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("partial-secret-on-stdout"), "{stderr}");
    assert!(!stderr.contains("KUBERNETES_EXEC_INFO"), "{stderr}");
    assert!(api.lines().is_empty(), "{:?}", api.lines());

    let kc = api.write_kubeconfig(
        "missing",
        &server,
        "",
        &user(
            "kubelogin-missing",
            "      installHint: \"kubelogin is required: https://example.com/kubelogin\"\n",
        ),
    );
    let out = api.kspy_env(&["ls"], &kc, &[], b"");
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "kspy: cannot get credentials: the exec credential plugin of kubeconfig user fake, \
         kubelogin-missing, is not installed (not found)\n  kubelogin is required: \
         https://example.com/kubelogin\nhint: install it as its install hint above says (kspy \
         looks for it as kubectl does, on PATH unless the command is a path), or fix \
         users[].user.exec of user fake in the kubeconfig\n"
    );
}

/// A proxy that answers every CONNECT with `status` (`407 Proxy Authentication Required`,
/// `502 Bad Gateway`) and closes; its address.
fn proxy_answering(status: &'static str) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = conn
                .write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
    });
    addr
}

/// When the proxy is what failed — nothing listens there, it wants credentials (407), or it
/// refused the tunnel (cannot reach the API server, or its rules) — the hint is about the proxy
/// and the setting that named it, not "check … that the cluster is up".
#[test]
fn a_failing_proxy_gets_a_hint_about_the_proxy() {
    let api = FakeApi::start(|_| Reply::ok(&json!({"kind": "PodList", "items": []})));
    let server = "http://kspy-api.invalid:6443";
    let kc = api.write_kubeconfig("via-proxy", server, "", "    token: test-token\n");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let auth = proxy_answering("407 Proxy Authentication Required");
    let refusing = proxy_answering("502 Bad Gateway");
    let cases = [
        (
            format!("http://{closed}"),
            format!(
                "hint: the proxy http://{closed} (set by HTTP_PROXY) did not take the connection: \
                 check that it runs and that HTTP_PROXY names it; if the API server is reachable \
                 without it, add kspy-api.invalid to NO_PROXY\n"
            ),
        ),
        (
            format!("http://{auth}"),
            format!(
                "hint: the proxy http://{auth} (set by HTTP_PROXY) wants credentials (407 Proxy \
                 Authentication Required): give them in HTTP_PROXY, as \
                 http://USER:PASSWORD@HOST:PORT\n"
            ),
        ),
        (
            format!("http://alice:wrong@{auth}"),
            format!(
                "hint: the proxy http://{auth} (set by HTTP_PROXY) did not accept the credentials \
                 in HTTP_PROXY (407 Proxy Authentication Required): check the user and password \
                 there (characters such as @ : / % must be percent-encoded)\n"
            ),
        ),
        (
            format!("http://{refusing}"),
            format!(
                "hint: the proxy http://{refusing} (set by HTTP_PROXY) refused to open a \
                 connection to the API server kspy-api.invalid: it cannot reach it, or its rules \
                 do not allow it; ask its administrators; if the API server is reachable without \
                 it, add kspy-api.invalid to NO_PROXY\n"
            ),
        ),
    ];
    for (proxy, hint) in cases {
        let out = api.kspy_env(&["ls"], &kc, &[("HTTP_PROXY", &proxy)], b"");
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{proxy}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "kspy: could not list the pods of namespace prod: cannot reach the API server at \
                 {server}/ through proxy "
            )),
            "{proxy}: {stderr}"
        );
        assert!(stderr.ends_with(&hint), "{proxy}: {stderr}");
        assert!(!stderr.contains("wrong"), "{stderr}");
    }
}

/// A context whose cluster the kubeconfig lacks — most often a KUBECONFIG list without the
/// file that defines it — was reported as kube-rs words it, "failed to load the cluster of
/// context: prod-cluster" under "cannot load the kubeconfig", naming the cluster as if it were
/// the context; a cluster without a server said "cluster url is missing on selected cluster"
/// without naming it. Both now name the context and the cluster, with the fix.
#[test]
fn a_context_whose_cluster_is_missing_or_has_no_server_is_named() {
    let api = FakeApi::start(|_| Reply::ok(&json!({"kind": "PodList", "items": []})));
    let home = api.dir.path();
    let contexts = home.join("contexts.yaml");
    std::fs::write(
        &contexts,
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\ncontexts:\n- name: prod\n  context:\n    cluster: prod-cluster\n    user: alice\n\
         clusters:\n- name: staging-cluster\n  cluster:\n    server: https://10.0.0.2:6443\n\
         users:\n- name: alice\n  user:\n    token: t\n",
    )
    .expect("write");
    let list = format!(
        "{}:{}/clusters-missing.yaml",
        contexts.display(),
        home.display()
    );
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_kspy"));
    let out = support::run_binary(bin, &["ls"], Some(std::path::Path::new(&list)), home);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "kspy: context prod names cluster prod-cluster, which the kubeconfig does not define\n  \
         clusters that exist: staging-cluster\nhint: define cluster prod-cluster under \
         `clusters:` in the kubeconfig (in a KUBECONFIG list, the file that defines it may be \
         missing from the list), or set context prod's `cluster:` to one that exists (`kubectl \
         config get-clusters` lists them)\n"
    );

    for server in ["", "    server: \"\"\n"] {
        let kc = home.join("no-server.yaml");
        std::fs::write(
            &kc,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: prod\ncontexts:\n- name: prod\n  context:\n    cluster: prod-cluster\n\
                 clusters:\n- name: prod-cluster\n  cluster:\n    insecure-skip-tls-verify: true\n{server}"
            ),
        )
        .expect("write");
        let out = support::run_binary(bin, &["ls"], Some(&kc), home);
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{server:?}: {stderr}");
        assert_eq!(
            stderr,
            "kspy: the server of cluster prod-cluster (context prod) in the kubeconfig is not \
             set\nhint: set it to the API server's URL: `kubectl config set-cluster prod-cluster \
             --server=https://HOST:6443`\n",
            "{server:?}"
        );
    }

    // A certificate-authority file that cannot be read names its cluster and context.
    let kc = home.join("no-ca.yaml");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\ncurrent-context: prod\ncontexts:\n- name: prod\n  context:\n    cluster: prod-cluster\n\
         clusters:\n- name: prod-cluster\n  cluster:\n    server: https://10.0.0.1:6443\n    certificate-authority: ca/missing.crt\n",
    )
    .expect("write");
    let out = support::run_binary(bin, &["ls"], Some(&kc), home);
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with(
            "kspy: cannot read the certificate-authority of cluster prod-cluster (context prod) \
             in the kubeconfig: "
        ) && stderr.contains(&home.join("ca/missing.crt").display().to_string()),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: fix the certificate-authority path of cluster prod-cluster"),
        "{stderr}"
    );
}

/// An API server on plain HTTP that closes the connection without answering the first request
/// whose request line starts with `drop` (a pooled connection a load balancer closed, an API
/// server restarting), and answers every other with `answer` (status line and JSON body);
/// its address and the request lines it saw.
fn server_dropping_first(
    drop: &'static str,
    answer: impl Fn(&str) -> (&'static str, String) + Send + 'static,
) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        let mut dropped = false;
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let mut reader = BufReader::new(conn);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let line = line.trim().to_string();
            log.lock().expect("log").push(line.clone());
            if !dropped && line.starts_with(drop) {
                dropped = true;
                continue; // closed unanswered
            }
            let (status, body) = answer(&line);
            let mut conn = reader.into_inner();
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    (addr, seen)
}

/// A connection closed before any answer came fails a read once, where kubectl (client-go,
/// for GETs) simply sends it again: kspy now does too. A write so cut may have been carried
/// out, and is never sent again.
#[test]
fn a_read_cut_before_its_answer_is_sent_again_a_write_is_not() {
    let api = FakeApi::start(|_| Reply::text(""));
    let list = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {},
        "items": [serde_json::to_value(web_pod()).expect("pod")]})
    .to_string();
    let (addr, seen) = server_dropping_first("GET", move |_| ("200 OK", list.clone()));
    let kc = api.write_kubeconfig(
        "dropping",
        &format!("http://{addr}"),
        "",
        "    token: test-token\n",
    );
    let out = api.kspy_env(&["ls"], &kc, &[], b"");
    let (stdout, stderr) = texts(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("debugger-old01"), "{stdout}");
    assert_eq!(
        *seen.lock().expect("seen"),
        [
            "GET /api/v1/namespaces/prod/pods?&limit=500 HTTP/1.1",
            "GET /api/v1/namespaces/prod/pods?&limit=500 HTTP/1.1"
        ]
    );

    let pod = serde_json::to_value(web_pod()).expect("pod").to_string();
    let (addr, seen) = server_dropping_first("POST /api/v1/namespaces/prod/pods", move |line| {
        if line.starts_with("GET") {
            ("200 OK", pod.clone())
        } else {
            ("201 Created", pod.clone())
        }
    });
    let kc = api.write_kubeconfig(
        "dropping-write",
        &format!("http://{addr}"),
        "",
        "    token: test-token\n",
    );
    let out = api.kspy_env(
        &["copy", WEB, "--to", "web-debug", "--no-attach"],
        &kc,
        &[],
        b"",
    );
    let (_, stderr) = texts(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let posts = seen
        .lock()
        .expect("seen")
        .iter()
        .filter(|l| l.starts_with("POST /api/v1/namespaces/prod/pods"))
        .count();
    assert_eq!(posts, 1, "{:?}", seen.lock().expect("seen"));
    // Reached, and the request sent: not "cannot reach", and it may have been carried out.
    assert!(
        stderr.starts_with(&format!(
            "kspy: could not create pod prod/web-debug: the connection to the API server at \
             http://{addr}/ was closed before it answered\n  the request may have been carried \
             out all the same: look before running the command again (`kubectl get pods -n \
             prod`)\n"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("cannot reach"), "{stderr}");
}

/// A user's client-certificate or tokenFile that cannot be read was reported as "cannot set
/// up the Kubernetes client", saying neither whose nor what to do; it names the kubeconfig
/// user and the field now, with the fix.
#[test]
fn unreadable_credential_files_name_the_user_and_the_field() {
    let api = FakeApi::start(|_| Reply::ok(&json!({"kind": "PodList", "items": []})));
    let server = format!("http://{}", api.addr);
    for (field, user) in [
        (
            "client-certificate",
            "    client-certificate: missing/cert.pem\n    client-key: missing/key.pem\n",
        ),
        ("tokenFile", "    tokenFile: missing/token\n"),
    ] {
        let kc = api.write_kubeconfig(&format!("creds-{field}"), &server, "", user);
        let out = api.kspy_env(&["ls"], &kc, &[], b"");
        let (_, stderr) = texts(&out);
        assert_eq!(out.status.code(), Some(1), "{field}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "kspy: cannot read the credentials of kubeconfig user fake: its {field} cannot be \
                 read\n"
            )),
            "{field}: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "hint: fix the {field} path of user fake in the kubeconfig"
            )),
            "{field}: {stderr}"
        );
        // The file kube-rs looked for, resolved from the kubeconfig's directory.
        assert!(
            stderr.contains(&api.dir.path().join("missing").display().to_string()),
            "{field}: {stderr}"
        );
        assert!(api.lines().is_empty(), "{:?}", api.lines());
    }
}
