//! `kspy ls [POD]`: what kspy left in a pod, a namespace, or every namespace — the ephemeral
//! containers (`kspy attach`), and the pods kspy creates, labelled `kspy.dev/debug`: debug copies
//! (`copy`) and node-debugging pods (`node`) — with their image, target, state, age and added
//! capabilities.

use std::process::ExitCode;

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};
use kube::api::{Api, ListParams};
use serde::Serialize;

use crate::cluster::{Cluster, ClusterArgs};
use crate::copy::{DEBUG_CONTAINER_ANNOTATION, DEBUG_LABEL, SOURCE_POD_ANNOTATION};
use crate::errors::{Action, KspyError};
use crate::output::{self, Output};
use crate::wait::{State, container_status, state_of};

/// `kspy ls` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LsArgs {
    /// Only this pod
    #[arg(value_name = "POD", value_parser = crate::args::parse_object_name)]
    pub pod: Option<String>,
    /// Cluster, context and namespace.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Every namespace
    #[arg(short = 'A', long, conflicts_with = "pod", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_value = "false", hide_default_value = true,
          default_missing_value = "true", value_parser = crate::args::parse_bool,
          action = clap::ArgAction::Set)]
    pub all_namespaces: bool,
    /// Print as JSON or YAML instead of a table
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    pub output: Option<Output>,
    /// List pods in pages of this many, as kubectl get does (0: all in one request)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CHUNK_SIZE)]
    pub chunk_size: u32,
}

/// Pods listed per request, kubectl's default: a namespace of thousands of pods is read in
/// pages, not in one response the API server must build whole and kspy hold whole.
pub const DEFAULT_CHUNK_SIZE: u32 = 500;

/// What a row is: which command of kspy's left it behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An ephemeral container in a pod (`kspy attach`).
    Ephemeral,
    /// A debug copy of a pod (`kspy copy`), labelled `kspy.dev/debug: copy`.
    Copy,
    /// A node-debugging pod (`kspy node`), labelled `kspy.dev/debug: node`.
    Node,
}

impl Kind {
    /// The name in the table and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ephemeral => "ephemeral",
            Kind::Copy => "copy",
            Kind::Node => "node",
        }
    }
}

/// One ephemeral container, or one debug pod kspy created (with its debug container).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    /// Namespace.
    pub namespace: String,
    /// Pod.
    pub pod: String,
    /// What it is: `ephemeral`, `copy` or `node`.
    pub kind: Kind,
    /// The debug container's name; `None` for a copy without one (`--set-image` alone).
    pub name: Option<String>,
    /// Its image.
    pub image: Option<String>,
    /// Target container, if any (ephemeral containers only).
    pub target: Option<String>,
    /// State (`Running`, `Terminated (Completed, exit code 0)`, `ErrImagePull`…); the pod's
    /// phase for a copy without a debug container.
    pub state: String,
    /// Seconds since the container started, when it did; since the pod was created for a copy
    /// without a debug container.
    pub age_seconds: Option<i64>,
    /// Added capabilities, and `privileged` when privileged.
    pub capabilities: Vec<String>,
    /// The pod a debug copy was made from (`kspy.dev/source-pod`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_pod: Option<String>,
    /// The node of a node-debugging pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// `reason` of a waiting container alone (the table has no room for its message); anything
/// else described in full. A container with no status in a pod that has finished never ran
/// and never will (the kubelet starts nothing in a finished pod): `NotStarted (pod
/// Succeeded)`, not the pod's phase alone, which read as the container's own outcome.
fn short_state(pod: &Pod, container: &str) -> String {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    if container_status(pod, container).is_none()
        && let Some(phase @ ("Succeeded" | "Failed")) = phase
    {
        return format!("NotStarted (pod {phase})");
    }
    match state_of(pod, container) {
        State::Waiting { reason, .. } => reason,
        other => other.describe(),
    }
}

/// Seconds since `container` of `pod` started (running, or before it terminated).
fn started_seconds_ago(pod: &Pod, container: &str, now: i64) -> Option<i64> {
    container_status(pod, container)
        .and_then(|s| s.state.as_ref())
        .and_then(|s| {
            s.running
                .as_ref()
                .and_then(|r| r.started_at.as_ref())
                .or_else(|| s.terminated.as_ref().and_then(|t| t.started_at.as_ref()))
        })
        .map(|t| (now - t.0.as_second()).max(0))
}

/// The added capabilities of a security context, and `privileged` when it is.
fn capabilities(sc: Option<&SecurityContext>) -> Vec<String> {
    let mut out: Vec<String> = sc
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|c| c.add.clone())
        .unwrap_or_default();
    if sc.and_then(|s| s.privileged).unwrap_or(false) {
        out.push("privileged".into());
    }
    out
}

/// The kind of a pod kspy created, from its `kspy.dev/debug` label.
fn pod_kind(pod: &Pod) -> Option<Kind> {
    match pod.metadata.labels.as_ref()?.get(DEBUG_LABEL)?.as_str() {
        "copy" => Some(Kind::Copy),
        "node" => Some(Kind::Node),
        _ => None,
    }
}

/// The debug container of a pod kspy created: the one a copy's `kspy.dev/debug-container`
/// names (a copy also holds the source's containers; one made with `--set-image` alone has
/// no debug container), a node pod's only container.
fn debug_container(pod: &Pod, kind: Kind) -> Option<&Container> {
    let containers = &pod.spec.as_ref()?.containers;
    match kind {
        Kind::Copy => {
            let name = pod
                .metadata
                .annotations
                .as_ref()?
                .get(DEBUG_CONTAINER_ANNOTATION)?;
            containers.iter().find(|c| &c.name == name)
        }
        Kind::Node => containers.first(),
        Kind::Ephemeral => None,
    }
}

/// The row of a debug pod kspy created, labelled `kind`.
fn pod_row(pod: &Pod, kind: Kind, now: i64) -> Row {
    let container = debug_container(pod, kind);
    let (state, age_seconds) = match container {
        Some(c) => (
            short_state(pod, &c.name),
            started_seconds_ago(pod, &c.name, now),
        ),
        None => (
            pod.status
                .as_ref()
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "Pending".into()),
            pod.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| (now - t.0.as_second()).max(0)),
        ),
    };
    let annotation = |key: &str| {
        pod.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key))
            .cloned()
    };
    Row {
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        pod: pod.metadata.name.clone().unwrap_or_default(),
        kind,
        name: container.map(|c| c.name.clone()),
        image: container.and_then(|c| c.image.clone()),
        target: None,
        state,
        age_seconds,
        capabilities: capabilities(container.and_then(|c| c.security_context.as_ref())),
        source_pod: (kind == Kind::Copy)
            .then(|| annotation(SOURCE_POD_ANNOTATION))
            .flatten(),
        node: (kind == Kind::Node)
            .then(|| pod.spec.as_ref().and_then(|s| s.node_name.clone()))
            .flatten(),
    }
}

/// The rows for `pods`, `now` in seconds since the epoch: for each pod, the pod itself when
/// kspy created it (a copy or a node pod), then its ephemeral containers.
pub fn rows(pods: &[Pod], now: i64) -> Vec<Row> {
    let mut out = Vec::new();
    for pod in pods {
        if let Some(kind) = pod_kind(pod) {
            out.push(pod_row(pod, kind, now));
        }
        let ecs = pod
            .spec
            .as_ref()
            .and_then(|s| s.ephemeral_containers.as_ref());
        for c in ecs.into_iter().flatten() {
            out.push(Row {
                namespace: pod.metadata.namespace.clone().unwrap_or_default(),
                pod: pod.metadata.name.clone().unwrap_or_default(),
                kind: Kind::Ephemeral,
                name: Some(c.name.clone()),
                image: Some(c.image.clone().unwrap_or_default()),
                target: c.target_container_name.clone(),
                state: short_state(pod, &c.name),
                age_seconds: started_seconds_ago(pod, &c.name, now),
                capabilities: capabilities(c.security_context.as_ref()),
                source_pod: None,
                node: None,
            });
        }
    }
    out
}

/// Age as kubectl shows it: `42s`, `5m`, `3h`, `2d`.
pub fn age(seconds: Option<i64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s < 120 => format!("{s}s"),
        Some(s) if s < 3 * 3600 => format!("{}m", s / 60),
        Some(s) if s < 2 * 86400 => format!("{}h", s / 3600),
        Some(s) => format!("{}d", s / 86400),
    }
}

/// The table, columns aligned; with a NAMESPACE column when `all`.
pub fn table(rows: &[Row], all: bool) -> String {
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut header = vec![
        "POD",
        "KIND",
        "NAME",
        "IMAGE",
        "TARGET",
        "STATE",
        "AGE",
        "CAPABILITIES",
    ];
    if all {
        header.insert(0, "NAMESPACE");
    }
    lines.push(header.iter().map(|s| s.to_string()).collect());
    for r in rows {
        let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let mut line = vec![
            r.pod.clone(),
            r.kind.as_str().to_string(),
            dash(&r.name),
            dash(&r.image),
            dash(&r.target),
            r.state.clone(),
            age(r.age_seconds),
            if r.capabilities.is_empty() {
                "-".into()
            } else {
                r.capabilities.join(",")
            },
        ];
        if all {
            line.insert(0, r.namespace.clone());
        }
        // Every cell comes from the cluster: an image or a state may hold escape sequences
        // the terminal would obey.
        let line = line
            .iter()
            .map(|cell| output::printable(cell).into_owned())
            .collect();
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for line in lines {
        let last = line.len() - 1;
        for (i, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                out.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push('\n');
    }
    out
}

/// Runs `kspy ls`.
pub async fn run(args: LsArgs) -> Result<ExitCode, KspyError> {
    let cluster = if args.all_namespaces {
        Cluster::connect_cluster_wide(&args.cluster).await?
    } else {
        Cluster::connect(&args.cluster).await?
    };
    let now = k8s_openapi::jiff::Timestamp::now().as_second();
    let rows = match &args.pod {
        Some(name) => rows(&[cluster.get_pod(name).await?], now),
        None => {
            let (api, ns) = if args.all_namespaces {
                (Api::<Pod>::all(cluster.client.clone()), None)
            } else {
                (cluster.pods(), Some(cluster.namespace.clone()))
            };
            // Page by page, keeping only the rows: a page's pods are dropped before the next.
            let mut all = Vec::new();
            let mut pods = 0;
            let mut params = ListParams::default();
            if args.chunk_size > 0 {
                params = params.limit(args.chunk_size);
            }
            loop {
                let page = api
                    .list(&params)
                    .await
                    .map_err(|e| cluster.explain(&Action::ListPods { ns: ns.clone() }, e))?;
                pods += page.items.len();
                all.extend(rows(&page.items, now));
                match page.metadata.continue_.filter(|c| !c.is_empty()) {
                    // The same token again would list the same page for ever, each time adding
                    // its rows once more (a cache or proxy that ignores the query, say).
                    Some(token) if params.continue_token.as_deref() == Some(token.as_str()) => {
                        return Err(KspyError::new(format!(
                            "{}: the API server answered the same page again (continue token \
                             {token:?} twice)",
                            Action::ListPods { ns: ns.clone() }
                        ))
                        .hint(format!(
                            "something between kspy and the API server (a cache or proxy at {}) \
                             ignores the continue parameter; list in one request with \
                             --chunk-size 0",
                            cluster.server
                        )));
                    }
                    Some(token) => params = params.continue_token(&token),
                    None => break,
                }
            }
            // The API server lists no pods, rather than 404, in a namespace that does not
            // exist: "nothing left in namespace prdo" would pass a mistyped -n off as clean.
            // Asked only when there are no pods at all.
            if pods == 0 && !args.all_namespaces && cluster.namespace_missing().await {
                return Err(cluster.no_such_namespace("listing what kspy left in it"));
            }
            all
        }
    };
    match args.output {
        Some(format) => output::print(&rows, format)?,
        None if rows.is_empty() => {
            let scope = match (&args.pod, args.all_namespaces) {
                (Some(p), _) => format!("pod {}/{p}", cluster.namespace),
                (None, true) => "any namespace".to_string(),
                (None, false) => format!("namespace {}", cluster.namespace),
            };
            eprintln!("no debug containers or debug pods in {scope}");
        }
        None => output::write_stdout(table(&rows, args.all_namespaces))?,
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden;
    use serde_json::json;

    #[test]
    fn rows_from_fixture() {
        let pod = golden::fixture_pod("pod-web.json");
        // 2026-01-01T00:10:00Z; the fixture's debugger-old01 started at 00:00:00.
        let now = 1_767_226_200;
        let rows = rows(&[pod], now);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].name.as_deref(), Some("debugger-old01"));
        assert_eq!(rows[0].kind, Kind::Ephemeral);
        assert_eq!(rows[0].state, "Running");
        assert_eq!(rows[0].target.as_deref(), Some("app"));
        assert_eq!(rows[0].capabilities, vec!["SYS_PTRACE"]);
        assert_eq!(age(rows[0].age_seconds), "10m");
        assert_eq!(rows[1].state, "Terminated (Completed, exit code 0)");
        assert_eq!(rows[1].capabilities, vec!["privileged"]);
        let t = table(&rows, false);
        let mut lines = t.lines();
        let header = lines.next().expect("header");
        assert!(header.starts_with("POD "), "{header}");
        let first = lines.next().expect("row");
        // Columns line up: NAME starts at the same offset in header and row.
        assert_eq!(header.find("NAME"), first.find("debugger-old01"));
        assert!(first.ends_with("SYS_PTRACE"));
    }

    /// A debug copy of the fixture pod, made by kspy copy (label, annotations, the debug
    /// container appended and running), and a node pod.
    fn debug_pods() -> Vec<Pod> {
        let mut copy = serde_json::to_value(golden::fixture_pod("pod-web.json")).expect("json");
        copy["metadata"]["name"] = json!("web-debug");
        copy["metadata"]["labels"] = json!({"kspy.dev/debug": "copy"});
        copy["metadata"]["annotations"] = json!({"kspy.dev/source-pod": "web-7d9f8c6b5-x2x4q",
            "kspy.dev/debug-container": "debugger-tst42"});
        copy["spec"]["ephemeralContainers"] = json!(null);
        copy["status"]["ephemeralContainerStatuses"] = json!(null);
        copy["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(
                json!({"name": "debugger-tst42", "image": "nicolaka/netshoot",
                "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}),
            );
        copy["status"]["containerStatuses"]
            .as_array_mut()
            .expect("statuses")
            .push(
                json!({"name": "debugger-tst42", "image": "nicolaka/netshoot", "imageID": "",
                "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": "2026-01-01T00:08:00Z"}}}),
            );
        let node = json!({"metadata": {"name": "node-debugger-node-a-x2x4q", "namespace": "prod",
                "labels": {"kspy.dev/debug": "node"}},
            "spec": {"nodeName": "node-a", "containers": [{"name": "debugger",
                "image": "busybox:latest", "securityContext": {"privileged": true}}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "debugger",
                "image": "busybox:latest", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        // --set-image alone: a copy without a debug container.
        let image_only = json!({"metadata": {"name": "web-img", "namespace": "prod",
                "creationTimestamp": "2026-01-01T00:07:00Z",
                "labels": {"kspy.dev/debug": "copy"},
                "annotations": {"kspy.dev/source-pod": "web-7d9f8c6b5-x2x4q"}},
            "spec": {"containers": [{"name": "app", "image": "busybox:1.36"}]},
            "status": {"phase": "Running"}});
        [copy, node, image_only]
            .into_iter()
            .map(|p| serde_json::from_value(p).expect("pod"))
            .collect()
    }

    #[test]
    fn debug_pods_are_listed_with_their_kind() {
        let mut pods = vec![golden::fixture_pod("pod-web.json")];
        pods.extend(debug_pods());
        let now = 1_767_226_200;
        let rows = rows(&pods, now);
        let kinds: Vec<(&str, Kind, Option<&str>)> = rows
            .iter()
            .map(|r| (r.pod.as_str(), r.kind, r.name.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (
                    "web-7d9f8c6b5-x2x4q",
                    Kind::Ephemeral,
                    Some("debugger-old01")
                ),
                (
                    "web-7d9f8c6b5-x2x4q",
                    Kind::Ephemeral,
                    Some("debugger-gone2")
                ),
                ("web-debug", Kind::Copy, Some("debugger-tst42")),
                ("node-debugger-node-a-x2x4q", Kind::Node, Some("debugger")),
                ("web-img", Kind::Copy, None),
            ]
        );
        let copy = &rows[2];
        assert_eq!(copy.image.as_deref(), Some("nicolaka/netshoot"));
        assert_eq!(copy.state, "Running");
        assert_eq!(age(copy.age_seconds), "2m");
        assert_eq!(copy.capabilities, vec!["SYS_PTRACE"]);
        assert_eq!(copy.source_pod.as_deref(), Some("web-7d9f8c6b5-x2x4q"));
        assert_eq!(copy.target, None);
        let node = &rows[3];
        assert_eq!(node.state, "ContainerCreating");
        assert_eq!(node.node.as_deref(), Some("node-a"));
        assert_eq!(node.capabilities, vec!["privileged"]);
        assert_eq!(age(node.age_seconds), "-");
        let image_only = &rows[4];
        assert_eq!(
            (image_only.state.as_str(), age(image_only.age_seconds)),
            ("Running", "3m".to_string()),
            "the pod's phase and age"
        );

        // JSON: `kind` on every row; sourcePod and node only where they apply.
        let v = serde_json::to_value(&rows).expect("json");
        assert_eq!(v[0]["kind"], "ephemeral");
        assert!(v[0].get("sourcePod").is_none() && v[0].get("node").is_none());
        assert_eq!(v[2]["kind"], "copy");
        assert_eq!(v[2]["sourcePod"], "web-7d9f8c6b5-x2x4q");
        assert_eq!(v[3]["kind"], "node");
        assert_eq!(v[3]["node"], "node-a");
        assert_eq!(v[4]["name"], json!(null));

        let t = table(&rows, false);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("POD "), "{t}");
        assert_eq!(lines[0].find("KIND"), lines[3].find("copy"), "{t}");
        assert_eq!(
            lines[0].find("NAME"),
            lines[3].find("debugger-tst42"),
            "{t}"
        );
        assert!(
            lines[4].contains(" node ") && lines[4].ends_with("privileged"),
            "{t}"
        );
        let image_only: Vec<&str> = lines[5].split_whitespace().collect();
        assert_eq!(
            image_only,
            ["web-img", "copy", "-", "-", "-", "Running", "3m", "-"],
            "{t}"
        );
    }

    /// An image (or a kubelet's reason) with escape sequences, which the API server accepts
    /// from anyone who may add a debug container, reaches the terminal escaped.
    #[test]
    fn cluster_text_in_the_table_is_escaped() {
        let mut pod = serde_json::to_value(golden::fixture_pod("pod-web.json")).expect("json");
        pod["spec"]["ephemeralContainers"][0]["image"] =
            json!("busybox\u{1b}[2J\u{1b}]0;pwned\u{7}:latest");
        pod["status"]["ephemeralContainerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "Err\u{1b}[31mImagePull"}});
        let pod: Pod = serde_json::from_value(pod).expect("pod");
        let t = table(&rows(&[pod], 1_767_226_200), false);
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert!(
            t.contains("busybox\\u{1b}[2J\\u{1b}]0;pwned\\u{7}:latest"),
            "{t}"
        );
        assert!(t.contains("Err\\u{1b}[31mImagePull"), "{t}");
        // Still one line per row, columns aligned on the escaped text.
        assert_eq!(t.lines().count(), 3, "{t}");
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0].find("TARGET"), lines[1].find("app "), "{t}");
    }

    /// An ephemeral container added to a pod that then finished, before the kubelet started
    /// it, has no status: it never ran, which its state says, rather than the pod's phase.
    #[test]
    fn a_container_that_never_ran_in_a_finished_pod_says_so() {
        let mut pod = serde_json::to_value(golden::fixture_pod("pod-web.json")).expect("json");
        pod["status"]["ephemeralContainerStatuses"] = json!(null);
        for (phase, state) in [
            ("Succeeded", "NotStarted (pod Succeeded)"),
            ("Failed", "NotStarted (pod Failed)"),
            ("Running", "Starting"),
        ] {
            pod["status"]["phase"] = json!(phase);
            let p: Pod = serde_json::from_value(pod.clone()).expect("pod");
            let rows = rows(&[p], 1_767_226_200);
            assert_eq!(rows[0].state, state, "{phase}");
            assert_eq!(rows[0].age_seconds, None, "{phase}");
        }
    }

    #[test]
    fn ages() {
        assert_eq!(age(None), "-");
        assert_eq!(age(Some(42)), "42s");
        assert_eq!(age(Some(600)), "10m");
        assert_eq!(age(Some(4 * 3600)), "4h");
        assert_eq!(age(Some(3 * 86400)), "3d");
    }
}
