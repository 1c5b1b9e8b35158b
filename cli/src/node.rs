//! `kspy node NODE`: a node-debugging pod, as `kubectl debug node/NODE`: pinned to the node
//! (`nodeName`), tolerating every taint, `restartPolicy: Never`, labelled
//! `kspy.dev/debug: node`; with the default `general` profile it runs in the host's PID,
//! network and IPC namespaces with the node's `/` at `/host`.
//!
//! Requests: `GET` of the node (skipped quietly when nodes may not be read), a
//! SelfSubjectReview, the `POST` of the pod, then wait and attach.

use std::collections::BTreeMap;
use std::process::ExitCode;

use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::args::{DebugArgs, DryRun};
use crate::cluster::{Cluster, ClusterArgs};
use crate::container::{BuildError, ContainerSpecBuilder, DEFAULT_IMAGE, random_suffix};
use crate::copy::{DEBUG_LABEL, REASON_ANNOTATION, REQUESTED_BY_ANNOTATION};
use crate::errors::{Action, KspyError};
use crate::output;
use crate::patch::create_pod;
use crate::profile::{ALL, HOST_ROOT_VOLUME, Profile, Style};
use crate::session;

/// The debug container's name in node pods, as kubectl.
pub const NODE_CONTAINER: &str = "debugger";

/// `kspy node` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// The node to debug
    #[arg(value_name = "NODE", value_parser = crate::args::parse_object_name)]
    pub node: String,
    /// Cluster, context and namespace.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The debug container and its session.
    #[command(flatten)]
    pub debug: DebugArgs,
    /// Mount the node's / at /host writable, as kubectl debug node does. Without it kspy mounts
    /// it read-only: most node debugging only reads, and policies grant read-only host access
    /// more widely (the shipped platform-node-debug grants / read-only only). Only with the
    /// profiles that mount it: legacy, general, sysadmin
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = false, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub host_writable: bool,
}

/// How the node's `/` is mounted at `/host` (profiles that mount it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRoot {
    /// Read-only: kspy's default.
    ReadOnly,
    /// Writable, as `kubectl debug node` mounts it (`--host-writable`).
    Writable,
}

/// Whether `profile` mounts the node's `/` at `/host` in a node pod (what `--host-writable`
/// makes writable), found by applying it to an empty pod, so that it cannot disagree with
/// what the profile does.
pub fn mounts_host_root(profile: Profile) -> bool {
    profiled_node_pod(profile)
        .volumes
        .iter()
        .flatten()
        .any(|v| v.name == HOST_ROOT_VOLUME)
}

/// The spec of an empty node pod with `profile` applied: what the profile itself adds, read
/// off the result so that no description of a profile can disagree with what it does.
fn profiled_node_pod(profile: Profile) -> PodSpec {
    let mut pod = Pod {
        spec: Some(PodSpec {
            containers: vec![Default::default()],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    profile.apply_pod(Style::Node, &mut pod, "");
    pod.spec.unwrap_or_default()
}

/// `--host-writable` with a profile that does not mount the node's `/`: there is nothing to
/// make writable, and ignoring the flag would leave the user believing `/host` is there.
/// The message for a usage error, naming the profiles that do mount it.
pub fn host_writable_conflict(args: &NodeArgs) -> Option<String> {
    let profile = args.debug.profile;
    if !args.host_writable || mounts_host_root(profile) {
        return None;
    }
    let mounting: Vec<&str> = ALL
        .into_iter()
        .filter(|p| mounts_host_root(*p))
        .map(Profile::name)
        .collect();
    Some(format!(
        "--host-writable makes the node's / at /host writable, but profile {} does not mount \
         it; profiles {} do: pick one of them, or leave out --host-writable",
        profile.name(),
        mounting.join(", ")
    ))
}

/// Why the pod may never start on `node`: its `Ready` condition is not `True` (its kubelet
/// stopped reporting, or reports a problem). A pod bound by `nodeName` skips the scheduler, so
/// nothing else says so, and a broken node is when `kspy node` is wanted most: the note says
/// what to expect before kspy waits. `None` for a Ready node, or one that reports no
/// conditions.
pub fn not_ready(node: &Node) -> Option<String> {
    let ready = node
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")?;
    if ready.status == "True" {
        return None;
    }
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let why = match (ready.reason.as_deref(), ready.message.as_deref()) {
        (Some(r), Some(m)) => format!(" ({r}: {m})"),
        (Some(r), None) => format!(" ({r})"),
        (None, Some(m)) => format!(" ({m})"),
        (None, None) => String::new(),
    };
    Some(format!(
        "node {name} is not Ready (Ready is {}){why}: its kubelet may never start the pod, and \
         kspy waits for it up to --timeout; when the kubelet is down, the node's own console or \
         your provider's serial console reaches it",
        ready.status
    ))
}

/// Why the kubelet of `node` will refuse the pod: it reports `DiskPressure` or `PIDPressure`.
/// Under either, the kubelet's eviction manager admits only critical pods, so the node pod
/// (bound by `nodeName`, past the scheduler) fails at once with reason `Evicted`; under
/// `MemoryPressure` alone it admits the pod, which tolerates every taint. `None` otherwise.
pub fn refused_for_pressure(node: &Node) -> Option<String> {
    let pressures: Vec<&str> = node
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .filter(|c| {
            matches!(c.type_.as_str(), "DiskPressure" | "PIDPressure") && c.status == "True"
        })
        .map(|c| c.type_.as_str())
        .collect();
    if pressures.is_empty() {
        return None;
    }
    let name = node.metadata.name.as_deref().unwrap_or_default();
    Some(format!(
        "node {name} reports {}: its kubelet admits only critical pods until that clears, so \
         the pod will likely fail at once (reason Evicted); `kubectl describe node {name}` \
         shows what is short, and the node's own console reaches it meanwhile",
        pressures.join(" and ")
    ))
}

/// Whether `node` runs Windows: its `kubernetes.io/os` label (which every kubelet sets), or
/// else the operating system its kubelet reports.
pub fn runs_windows(node: &Node) -> bool {
    let label = node
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/os"));
    match label {
        Some(os) => os == "windows",
        None => node
            .status
            .as_ref()
            .and_then(|s| s.node_info.as_ref())
            .is_some_and(|i| i.operating_system == "windows"),
    }
}

/// The host access `profile` gives a node pod, in words; empty when it gives none.
fn host_access(profile: Profile) -> Vec<&'static str> {
    let spec = profiled_node_pod(profile);
    let mut what = Vec::new();
    if spec.host_pid == Some(true) || spec.host_network == Some(true) || spec.host_ipc == Some(true)
    {
        what.push("the node's PID, network and IPC namespaces");
    }
    if mounts_host_root(profile) {
        what.push("its / at /host");
    }
    what
}

/// Why the pod `kspy node` would create cannot run on `node`, a Windows node: the profile's
/// host access (host namespaces, the node's `/` at `/host`) is Linux's, and so is the default
/// image (`image_given` false: busybox has no Windows build). Such a pod is accepted by the API
/// server and then never starts — the kubelet cannot run it — and kspy would wait for it until
/// `--timeout`; refused before anything is created. `None` for a Linux node, and for a profile
/// without host access with an image of the user's choice.
pub fn windows_refusal(node: &Node, profile: Profile, image_given: bool) -> Option<KspyError> {
    if !runs_windows(node) {
        return None;
    }
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let access = host_access(profile);
    let why = if !access.is_empty() {
        format!(
            "profile {} gives the pod {}, which only a Linux node has",
            profile.name(),
            access.join(" and ")
        )
    } else if !image_given {
        format!("the default image, {DEFAULT_IMAGE}, has no Windows build")
    } else {
        return None;
    };
    Some(
        KspyError::new(format!("node {name} runs Windows: {why}"))
            .details([
                "the pod would never start there, and kspy would wait for it until --timeout; \
                 nothing was created",
            ])
            .hint(
                "kspy node makes Linux pods for Linux nodes. For a container on a Windows node \
                 without host access, give --profile baseline and a Windows image (--image \
                 mcr.microsoft.com/windows/nanoserver:ltsc2022, say); access to the host itself \
                 needs a Windows HostProcess pod",
            ),
    )
}

/// The longest object name: a DNS-1123 subdomain.
const MAX_NAME: usize = 253;

/// `node-debugger-NODE-XXXXX`, as kubectl. A node name too long for that is shortened from
/// its end, and any `-` or `.` the cut leaves at its end removed, so the pod name stays a valid
/// DNS subdomain of at most 253 characters that still ends in the random suffix.
pub fn pod_name(node: &str, suffix: &str) -> String {
    const PREFIX: &str = "node-debugger-";
    let room = MAX_NAME.saturating_sub(PREFIX.len() + 1 + suffix.len());
    // Node names are DNS subdomains (ASCII), but cut on a character boundary regardless.
    let mut end = node.len().min(room);
    while !node.is_char_boundary(end) {
        end -= 1;
    }
    let node = node[..end].trim_end_matches(['-', '.']);
    format!("{PREFIX}{node}-{suffix}")
}

/// Builds the node-debugging pod `name` in `namespace` for `node`.
pub fn build_node_pod(
    node: &str,
    namespace: &str,
    name: &str,
    builder: &ContainerSpecBuilder,
    requested_by: Option<&str>,
    host_root: HostRoot,
) -> Result<Pod, BuildError> {
    let container = builder.build(Style::Node, None, None)?;
    let container_name = container.name.clone();
    let mut annotations = BTreeMap::new();
    if let Some(user) = requested_by {
        annotations.insert(REQUESTED_BY_ANNOTATION.to_string(), user.to_string());
    }
    // Policies read the reason of a pod they create from the pod, as for debug copies
    // (the shipped production-reason does); the container also carries it as KSPY_REASON.
    if let Some(reason) = &builder.reason {
        annotations.insert(REASON_ANNOTATION.to_string(), reason.clone());
    }
    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                DEBUG_LABEL.to_string(),
                "node".to_string(),
            )])),
            annotations: (!annotations.is_empty()).then_some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![container],
            node_name: Some(node.to_string()),
            // A node debugger needs no API token; without it the pod asks for no secret volume.
            automount_service_account_token: Some(false),
            restart_policy: Some("Never".to_string()),
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".to_string()),
                ..Toleration::default()
            }]),
            ..PodSpec::default()
        }),
        status: None,
    };
    builder
        .profile
        .apply_pod(Style::Node, &mut pod, &container_name);
    if host_root == HostRoot::ReadOnly {
        let mounts = pod
            .spec
            .iter_mut()
            .flat_map(|s| s.containers.iter_mut())
            .flat_map(|c| c.volume_mounts.iter_mut().flatten());
        for m in mounts.filter(|m| m.name == HOST_ROOT_VOLUME) {
            m.read_only = Some(true);
        }
    }
    Ok(pod)
}

/// Runs `kspy node`.
pub async fn run(args: NodeArgs) -> Result<ExitCode, KspyError> {
    let d = &args.debug;
    d.hold_warnings_for_verdict();
    let cluster = Cluster::connect(&args.cluster).await?;
    let ns = cluster.namespace.clone();
    match cluster.get_node(&args.node).await? {
        None if !d.quiet => eprintln!(
            "note: you may not read node {}; creating the pod anyway",
            args.node
        ),
        Some(node) => {
            if let Some(refusal) = windows_refusal(&node, d.profile, d.image.is_some()) {
                return Err(refusal);
            }
            let notes = [not_ready(&node), refused_for_pressure(&node)];
            for note in notes.into_iter().flatten().filter(|_| !d.quiet) {
                eprintln!("note: {}", output::printable(&note));
            }
        }
        None => {}
    }
    let builder = d.builder(
        d.name.clone().unwrap_or_else(|| NODE_CONTAINER.to_string()),
        None,
    )?;
    let name = pod_name(&args.node, &random_suffix(&mut rand::rng(), 5));
    let requested_by = cluster.whoami().await;
    let host_root = if args.host_writable {
        HostRoot::Writable
    } else {
        HostRoot::ReadOnly
    };
    let pod = build_node_pod(
        &args.node,
        &ns,
        &name,
        &builder,
        requested_by.as_deref(),
        host_root,
    )?;
    let req = create_pod(&pod, d.dry_run == DryRun::Server);
    if d.dry_run == DryRun::Client {
        match d.output {
            Some(format) => output::print(&pod, format)?,
            None => output::write_stdout(req.render())?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let action = Action::CreatePod {
        ns: ns.clone(),
        pod: name.clone(),
    };
    let created: Pod = cluster.send(&req, &action).await?;
    if let Some(format) = d.output {
        output::print(&created, format)?;
    }
    if d.dry_run == DryRun::Server {
        output::report_verdict(
            format!(
                "admitted (server dry run, nothing was changed): pod {ns}/{name} on node {}\n",
                args.node
            ),
            d.output,
            d.quiet,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if !d.quiet {
        eprintln!("created pod {ns}/{name} on node {}", args.node);
        eprintln!(
            "delete it when done: kubectl delete pod {name} -n {ns}{}",
            cluster.flags
        );
    }
    let reattach = format!(
        "kubectl attach {name} -n {ns}{} -c {}{}",
        cluster.flags,
        builder.name,
        if d.tty {
            " -it"
        } else if d.stdin {
            " -i"
        } else {
            ""
        }
    );
    // The pod's name is the one kspy generates (the container's is `debugger` or --name).
    session::follow(&cluster, created, &builder.name, d, &reattach, &name).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden;
    use serde_json::{Value, json};

    fn builder(profile: Profile) -> ContainerSpecBuilder {
        ContainerSpecBuilder {
            name: NODE_CONTAINER.into(),
            image: "busybox:latest".into(),
            stdin: true,
            tty: true,
            profile,
            reason: Some("disk pressure on node-a".into()),
            ..ContainerSpecBuilder::default()
        }
    }

    #[test]
    fn node_pods_for_every_profile_match_golden() {
        let mut all = serde_json::Map::new();
        for p in ALL {
            let pod = build_node_pod(
                "node-a",
                "default",
                "node-debugger-node-a-tst42",
                &builder(p),
                Some("alice"),
                HostRoot::ReadOnly,
            )
            .expect("builds");
            all.insert(
                p.name().to_string(),
                serde_json::to_value(pod).expect("json"),
            );
        }
        let all = Value::Object(all);
        let general = &all["general"];
        assert_eq!(general["spec"]["nodeName"], "node-a");
        assert_eq!(general["spec"]["hostPID"], true);
        assert_eq!(general["spec"]["hostNetwork"], true);
        assert_eq!(general["spec"]["hostIPC"], true);
        assert_eq!(
            general["spec"]["tolerations"],
            json!([{"operator": "Exists"}])
        );
        assert_eq!(general["spec"]["restartPolicy"], "Never");
        assert_eq!(
            general["metadata"]["labels"],
            json!({"kspy.dev/debug": "node"})
        );
        assert_eq!(
            general["spec"]["volumes"],
            json!([{"name": "host-root", "hostPath": {"path": "/"}}])
        );
        assert_eq!(
            general["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "host-root", "mountPath": "/host", "readOnly": true}])
        );
        assert_eq!(
            general["metadata"]["annotations"]["kspy.dev/reason"], "disk pressure on node-a",
            "policies read the reason from the pod"
        );
        assert_eq!(
            all["sysadmin"]["spec"]["containers"][0]["securityContext"]["privileged"],
            true
        );
        golden::assert_golden("node-profiles.json", &all);
    }

    #[test]
    fn host_writable_mounts_the_nodes_root_as_kubectl_does() {
        let pod = build_node_pod(
            "n",
            "default",
            "p",
            &builder(Profile::General),
            None,
            HostRoot::Writable,
        )
        .expect("builds");
        let v = serde_json::to_value(pod).expect("json");
        assert_eq!(
            v["spec"]["containers"][0]["volumeMounts"],
            json!([{"name": "host-root", "mountPath": "/host"}])
        );
    }

    #[test]
    fn host_writable_needs_a_profile_that_mounts_the_nodes_root() {
        let mounting: Vec<Profile> = ALL.into_iter().filter(|p| mounts_host_root(*p)).collect();
        assert_eq!(
            mounting,
            [Profile::Legacy, Profile::General, Profile::Sysadmin]
        );
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: NodeArgs,
        }
        let conflict = |extra: &[&str]| {
            let mut argv = vec!["kspy", "worker-3"];
            argv.extend_from_slice(extra);
            host_writable_conflict(&Cli::try_parse_from(argv).expect("parses").a)
        };
        assert_eq!(conflict(&["--host-writable"]), None, "general mounts it");
        assert_eq!(
            conflict(&["--host-writable", "--profile", "sysadmin"]),
            None
        );
        assert_eq!(conflict(&["--profile", "netadmin"]), None);
        for profile in ["netadmin", "baseline", "restricted"] {
            assert_eq!(
                conflict(&["--host-writable", "--profile", profile]),
                Some(format!(
                    "--host-writable makes the node's / at /host writable, but profile \
                     {profile} does not mount it; profiles legacy, general, sysadmin do: pick \
                     one of them, or leave out --host-writable"
                ))
            );
        }
    }

    #[test]
    fn mounts_of_pod_volumes_make_no_sense_on_nodes() {
        let mut b = builder(Profile::General);
        b.mounts = vec!["data:/d".parse().expect("mount")];
        assert!(matches!(
            build_node_pod("n", "default", "p", &b, None, HostRoot::ReadOnly),
            Err(BuildError::UnknownVolume { .. })
        ));
    }

    /// DiskPressure or PIDPressure make the kubelet refuse every pod that is not critical, so
    /// kspy says so before it waits; MemoryPressure alone, or pressure cleared, says nothing.
    #[test]
    fn disk_and_pid_pressure_are_noted_and_memory_pressure_is_not() {
        let node = |conditions: Value| -> Node {
            serde_json::from_value(json!({"metadata": {"name": "node-a"},
                "status": {"conditions": conditions}}))
            .expect("node")
        };
        let cond = |t: &str, status: &str| json!({"type": t, "status": status});
        let full = node(json!([
            cond("Ready", "True"),
            cond("DiskPressure", "True"),
            cond("PIDPressure", "True"),
            cond("MemoryPressure", "True")
        ]));
        let note = refused_for_pressure(&full).expect("noted");
        assert!(
            note.starts_with(
                "node node-a reports DiskPressure and PIDPressure: its kubelet admits only \
                 critical pods"
            ) && note.contains("kubectl describe node node-a"),
            "{note}"
        );
        let pid = node(json!([cond("PIDPressure", "True")]));
        assert!(refused_for_pressure(&pid).is_some_and(|n| n.contains("reports PIDPressure:")));
        for quiet in [
            node(json!([cond("MemoryPressure", "True")])),
            node(json!([
                cond("DiskPressure", "False"),
                cond("PIDPressure", "Unknown")
            ])),
            node(json!([])),
        ] {
            assert_eq!(refused_for_pressure(&quiet), None);
        }
    }

    /// A Windows node (by its kubernetes.io/os label, else the OS its kubelet reports) cannot
    /// run the Linux pod of a profile with host access, nor the default busybox image: refused,
    /// naming why and what works there. A Linux node, or baseline with an image given, pass.
    #[test]
    fn windows_nodes_are_refused_the_linux_pod() {
        let node = |v: Value| -> Node { serde_json::from_value(v).expect("node") };
        let labelled = node(json!({"metadata": {"name": "win-1",
            "labels": {"kubernetes.io/os": "windows"}}}));
        let reported = node(json!({"metadata": {"name": "win-1"},
            "status": {"nodeInfo": {"operatingSystem": "windows", "architecture": "amd64",
                "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "",
                "kubeProxyVersion": "", "kubeletVersion": "", "machineID": "", "osImage": "",
                "systemUUID": ""}}}));
        let linux = node(json!({"metadata": {"name": "node-a",
            "labels": {"kubernetes.io/os": "linux"}}}));
        for win in [&labelled, &reported] {
            assert!(runs_windows(win));
            let err = windows_refusal(win, Profile::General, true).expect("refused");
            let text = err.render("kspy");
            assert!(
                text.starts_with(
                    "kspy: node win-1 runs Windows: profile general gives the pod the node's \
                     PID, network and IPC namespaces and its / at /host, which only a Linux \
                     node has\n"
                ),
                "{text}"
            );
            assert!(text.contains("nothing was created"), "{text}");
            assert!(
                text.contains("--profile baseline and a Windows image"),
                "{text}"
            );
            let netadmin = windows_refusal(win, Profile::Netadmin, true)
                .expect("refused")
                .render("kspy");
            assert!(
                netadmin.contains(
                    "profile netadmin gives the pod the node's PID, network and \
                     IPC namespaces, which"
                ),
                "{netadmin}"
            );
            for p in [Profile::Legacy, Profile::Sysadmin] {
                assert!(windows_refusal(win, p, true).is_some(), "{p:?}");
            }
            let default_image = windows_refusal(win, Profile::Baseline, false)
                .expect("refused")
                .render("kspy");
            assert!(
                default_image.starts_with(
                    "kspy: node win-1 runs Windows: the default image, busybox:latest, has no \
                     Windows build\n"
                ),
                "{default_image}"
            );
            assert!(windows_refusal(win, Profile::Baseline, true).is_none());
            assert!(windows_refusal(win, Profile::Restricted, true).is_none());
        }
        assert!(!runs_windows(&linux));
        assert!(windows_refusal(&linux, Profile::General, false).is_none());
        // The label decides when set: a Linux label beats a stale or odd report.
        let mut both = reported.clone();
        both.metadata.labels = linux.metadata.labels.clone();
        assert!(!runs_windows(&both));
    }

    #[test]
    fn pod_names() {
        assert_eq!(pod_name("node-a", "x2x4q"), "node-debugger-node-a-x2x4q");
        let valid = |name: &str| {
            crate::container::validate_dns_subdomain("pod", name).is_ok() && name.len() <= 253
        };
        let long = pod_name(&"n".repeat(300), "x2x4q");
        assert_eq!(long.len(), 253);
        assert!(long.ends_with("nnn-x2x4q") && valid(&long), "{long}");
        // Cuts that would end the node part in '-' or '.' drop those characters.
        for filler in ["-", ".", "-.-"] {
            // 233 characters of node name fit; the cut falls right after the filler.
            let node = format!(
                "{}{filler}{}",
                "a".repeat(233 - filler.len()),
                "b".repeat(40)
            );
            let name = pod_name(&node, "x2x4q");
            assert!(valid(&name), "{name}");
            assert!(name.ends_with("a-x2x4q"), "{name}");
        }
    }
}
