//! What an attached debug container reaches in its target's process namespace.
//!
//! [`crate::asks`] says what a container asks for in its own spec. A debug container attached
//! to a running pod also reaches the processes it shares a process namespace with: with
//! SYS_PTRACE it can run code as them, taking over what they hold; without it, as their user
//! it can still read their files and environment ([`crate::user_reach`] decides when). This
//! module works out, per pod ([`TraceReach`]), what each process namespace holds, and per
//! debug container ([`traced_containers`]), what it reaches beyond its own asks
//! ([`TracedContainer`], kept in [`Asks::traced`]).
//!
//! It is separate from `asks` because it is a second question about the pod as a whole (who
//! shares a namespace with whom, and what they hold), answered from the asks of every
//! container, not read off one container's spec.

use std::collections::{BTreeMap, HashMap, HashSet};

use k8s_openapi::api::core::v1::Pod;

use crate::asks::{Asks, ContainerParts, PodVolumes, VolumeAsk, VolumeKind};
use crate::capability::Capability;
use crate::user_reach::{self, UserReach};

/// A container whose processes a debug container can trace, and the privileges it holds that
/// the debug container does not ask for itself: tracing a process (with SYS_PTRACE, past the
/// kernel's rule that a tracer hold every capability of its tracee) lets the tracer run code
/// as that process, with all it holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TracedContainer {
    /// The container's name.
    pub name: String,
    /// Capabilities it adds that the debug container does not.
    pub capabilities: Vec<Capability>,
    /// The members of the privileged family it has (`privileged: true`, `seccomp
    /// Unconfined`, ...), as [`Asks::privileged_family`] names them.
    pub privileged: Vec<&'static str>,
    /// The hostPath volumes it mounts, as it mounts them: its processes reach the node's
    /// files there, and so does a debug container running code as them (or reading their
    /// files through `/proc/PID/root`, which SYS_PTRACE also opens).
    pub host_paths: Vec<VolumeAsk>,
    /// It runs as root, or may become root through a setuid program, and the debug container
    /// does not ask for that itself: code run as its processes runs as root.
    pub runs_as_root: bool,
    /// The other pod volumes it mounts that the debug container does not, by name and kind:
    /// their files are open to code run as its processes (and through `/proc/PID/root`).
    pub volumes: Vec<(String, VolumeKind)>,
    /// The Secrets in its environment that the debug container does not read itself: they
    /// are in its processes' memory and `/proc/PID/environ`.
    pub env_from_secrets: Vec<String>,
    /// `None` when the debug container reaches it by SYS_PTRACE; otherwise how it reaches
    /// its processes as their user ([`crate::user_reach`]), which opens their files and
    /// environment (not their capabilities, which the kernel then requires it to hold).
    pub as_user: Option<UserReach>,
}

impl TracedContainer {
    /// How much it says: one for the container, and one for each thing it holds.
    pub fn size(&self) -> usize {
        1 + self.capabilities.len()
            + self.privileged.len()
            + self.host_paths.len()
            + self.volumes.len()
            + self.env_from_secrets.len()
    }
}

/// What the containers of a pod hold that a container tracing their processes takes over,
/// worked out once per pod and gathered per process namespace, so that judging each debug
/// container against it does not go over the pod's containers again: a review adding many
/// debug containers to a pod of many containers would be quadratic.
#[derive(Debug, Default)]
pub struct TraceReach {
    /// `shareProcessNamespace: true`: one process namespace holds every container.
    shared: bool,
    /// With `shared`, what the pod's one process namespace holds.
    pod: Held,
    /// Without it, what each container's process namespace holds, by the container's name:
    /// the container itself and every ephemeral container targeting it
    /// (`targetContainerName` puts an ephemeral container in its target's namespace).
    by_target: HashMap<String, Held>,
}

/// What the processes of one process namespace hold that tracing takes over, each privilege
/// with the first container holding it (and, for a host path, the container mounting it the
/// most writable way).
#[derive(Debug, Default)]
struct Held {
    capabilities: BTreeMap<Capability, String>,
    privileged: BTreeMap<&'static str, String>,
    /// hostPath volumes mounted, by volume name, with the container holding the mount.
    host_paths: BTreeMap<String, (VolumeAsk, String)>,
    /// The first container running as root (or able to become root).
    root: Option<String>,
    /// Other volumes mounted, by volume name, with their kind and the container mounting it.
    volumes: BTreeMap<String, (VolumeKind, String)>,
    /// Secrets in the environment, by Secret name, with the container reading it.
    env_secrets: BTreeMap<String, String>,
    /// Each container by name, with its asks: what a debug container acting as its user
    /// reaches ([`reached_as_user`]).
    members: Vec<(String, Asks)>,
}

impl Held {
    /// Adds what the container `name` (asking `asks`) holds.
    fn add(&mut self, name: &str, asks: Asks) {
        for cap in &asks.capabilities {
            self.capabilities
                .entry(cap.clone())
                .or_insert_with(|| name.to_owned());
        }
        for phrase in asks.privileged_family() {
            self.privileged
                .entry(phrase)
                .or_insert_with(|| name.to_owned());
        }
        if asks.asks_root() && self.root.is_none() {
            self.root = Some(name.to_owned());
        }
        for v in asks
            .volumes
            .iter()
            .filter(|v| v.kind != VolumeKind::HostPath)
        {
            self.volumes
                .entry(v.name.clone())
                .or_insert_with(|| (v.kind, name.to_owned()));
        }
        for secret in &asks.env_from_secrets {
            self.env_secrets
                .entry(secret.clone())
                .or_insert_with(|| name.to_owned());
        }
        for v in &asks.host_paths {
            match self.host_paths.get(&v.name) {
                // A writable mount reaches more than a read-only one.
                Some((held, _)) if !held.read_only || v.read_only => {}
                _ => {
                    self.host_paths
                        .insert(v.name.clone(), (v.clone(), name.to_owned()));
                }
            }
        }
        self.members.push((name.to_owned(), asks));
    }
}

impl TraceReach {
    /// The reach into `pod`, whose volumes are `volumes` ([`PodVolumes::of`] the same pod).
    pub fn of(pod: &Pod, volumes: &PodVolumes<'_>) -> TraceReach {
        let Some(spec) = pod.spec.as_ref() else {
            return TraceReach::default();
        };
        // A Windows pod runs only on a Windows node (the kubelet refuses a pod whose
        // `spec.os.name` is not its own), where no container joins another's processes: the
        // CRI's namespace options, `targetContainerName`'s target among them, are Linux-only,
        // and the API server refuses `shareProcessNamespace` and `hostPID` in such a pod. So
        // nothing is reached, and judging it would deny with remedies (runAsUser,
        // capabilities, allowPrivilegeEscalation) the API server refuses there.
        if crate::pod_os::is_windows_pod(pod) {
            return TraceReach::default();
        }
        let mut reach = TraceReach {
            shared: spec.share_process_namespace == Some(true),
            ..TraceReach::default()
        };
        // Regular and init containers each have a process namespace of their own; an
        // ephemeral container joins its target's, or has one no other container can be
        // asked into when it has no target.
        let regular = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .map(|c| (ContainerParts::from_container(c), Some(c.name.as_str())));
        let ephemeral = spec
            .ephemeral_containers
            .iter()
            .flatten()
            .map(ContainerParts::from_ephemeral)
            .map(|c| (c, c.target));
        for (c, namespace) in regular.chain(ephemeral) {
            let held = match (reach.shared, namespace) {
                (true, _) => &mut reach.pod,
                (false, Some(namespace)) => {
                    reach.by_target.entry(namespace.to_owned()).or_default()
                }
                (false, None) => continue,
            };
            let asks = Asks {
                // Held: `allowPrivilegeEscalation` only lets the traced process gain, by a
                // setuid program, what its capabilities already bound, and those are judged.
                allow_privilege_escalation: false,
                ..Asks::extract(&c, pod, volumes)
            };
            held.add(c.name, asks);
        }
        reach
    }
}

impl TraceReach {
    /// How many containers share the process namespace a container asking `debugger` joins
    /// (itself included): each is compared with it ([`traced_containers`]).
    pub fn sharing(&self, debugger: &Asks) -> usize {
        if debugger.privileged {
            return 0;
        }
        let held = if self.shared {
            Some(&self.pod)
        } else {
            debugger
                .target
                .as_deref()
                .and_then(|t| self.by_target.get(t))
        };
        held.map_or(0, |h| h.members.len())
    }
}

/// The containers whose processes the ephemeral container `name`, asking `debugger`, can
/// trace, each with what it holds beyond `debugger`, from the pod's [`TraceReach`]; empty
/// unless `debugger` may trace ([`Asks::may_trace`]) and is not privileged itself.
///
/// It shares a process namespace with its target (`targetContainerName`) and with every
/// other ephemeral container targeting the same container, and with every container when the
/// pod has `shareProcessNamespace: true`. Each privilege is named with the first container
/// holding it; each host path with the container mounting it the most writable way, unless
/// that is `debugger` itself (then judged as its own mount). A `hostPID` pod's host
/// namespace is judged on its own, as a host namespace the debug container shares.
pub fn traced_containers(name: &str, debugger: &Asks, reach: &TraceReach) -> Vec<TracedContainer> {
    if debugger.privileged {
        return Vec::new();
    }
    let held = if reach.shared {
        &reach.pod
    } else {
        match debugger
            .target
            .as_deref()
            .and_then(|t| reach.by_target.get(t))
        {
            Some(held) => held,
            None => return Vec::new(),
        }
    };
    let own = Own::of(debugger);
    if !debugger.may_trace() {
        return reached_as_user(name, debugger, &own, held);
    }
    let own_family = debugger.privileged_family();
    // By name: a hostile pod may have many holders, each looked up for every privilege.
    let mut out: BTreeMap<&str, TracedContainer> = BTreeMap::new();
    for (cap, holder) in &held.capabilities {
        crate::search_steps::step(crate::search_steps::Search::TracedHoldings);
        if !(own.all_capabilities || own.capabilities.contains(cap)) {
            traced(&mut out, holder).capabilities.push(cap.clone());
        }
    }
    for (phrase, holder) in &held.privileged {
        if !own_family.contains(phrase) {
            traced(&mut out, holder).privileged.push(phrase);
        }
    }
    for (volume, holder) in held.host_paths.values() {
        if holder != name {
            traced(&mut out, holder).host_paths.push(volume.clone());
        }
    }
    if let Some(holder) = &held.root
        && !debugger.asks_root()
    {
        traced(&mut out, holder).runs_as_root = true;
    }
    for (volume, (kind, holder)) in &held.volumes {
        crate::search_steps::step(crate::search_steps::Search::TracedHoldings);
        if !own.volumes.contains(volume.as_str()) {
            traced(&mut out, holder)
                .volumes
                .push((volume.clone(), *kind));
        }
    }
    for (secret, holder) in &held.env_secrets {
        crate::search_steps::step(crate::search_steps::Search::TracedHoldings);
        if !own.env_secrets.contains(secret.as_str()) {
            traced(&mut out, holder)
                .env_from_secrets
                .push(secret.clone());
        }
    }
    out.into_values().collect()
}

/// The containers of `held` (one process namespace) whose processes the debug container
/// `name`, asking `debugger` (without SYS_PTRACE), reaches as their user, each with the files
/// and environment it reaches beyond its own.
fn reached_as_user(
    name: &str,
    debugger: &Asks,
    own: &Own<'_>,
    held: &Held,
) -> Vec<TracedContainer> {
    let mut out = Vec::new();
    for (holder, m) in held.members.iter().filter(|(holder, _)| holder != name) {
        let Some(how) = user_reach::reach(&debugger.identity, &m.identity) else {
            continue;
        };
        let reached = TracedContainer {
            name: holder.clone(),
            host_paths: m.host_paths.clone(),
            volumes: m
                .volumes
                .iter()
                .filter(|v| v.kind != VolumeKind::HostPath)
                .filter(|v| {
                    crate::search_steps::step(crate::search_steps::Search::TracedHoldings);
                    !own.volumes.contains(v.name.as_str())
                })
                .map(|v| (v.name.clone(), v.kind))
                .collect(),
            env_from_secrets: m
                .env_from_secrets
                .iter()
                .filter(|s| {
                    crate::search_steps::step(crate::search_steps::Search::TracedHoldings);
                    !own.env_secrets.contains(s.as_str())
                })
                .cloned()
                .collect(),
            as_user: Some(how),
            ..TracedContainer::default()
        };
        if !(reached.host_paths.is_empty()
            && reached.volumes.is_empty()
            && reached.env_from_secrets.is_empty())
        {
            out.push(reached);
        }
    }
    out
}

/// The capabilities a debug container adds, the volumes it mounts and the Secrets in its
/// environment, by name: each
/// capability, volume and Secret the containers it reaches hold is looked up in them, and a
/// search of its lists for each made one debug container with many of them, beside a target
/// with many, cost the product (5 000 `envFrom` Secrets against 5 000 `env` ones: 111 ms per
/// review).
struct Own<'a> {
    capabilities: HashSet<&'a Capability>,
    /// It adds `ALL`.
    all_capabilities: bool,
    volumes: HashSet<&'a str>,
    env_secrets: HashSet<&'a str>,
}

impl<'a> Own<'a> {
    fn of(debugger: &'a Asks) -> Self {
        Own {
            capabilities: debugger.capabilities.iter().collect(),
            all_capabilities: debugger.capabilities.iter().any(Capability::is_all),
            volumes: debugger.volumes.iter().map(|v| v.name.as_str()).collect(),
            env_secrets: debugger
                .env_from_secrets
                .iter()
                .map(String::as_str)
                .collect(),
        }
    }
}

/// The entry of `out` for the container `holder`, added empty when missing.
fn traced<'o, 'k>(
    out: &'o mut BTreeMap<&'k str, TracedContainer>,
    holder: &'k str,
) -> &'o mut TracedContainer {
    out.entry(holder).or_insert_with(|| TracedContainer {
        name: holder.to_owned(),
        ..TracedContainer::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::EphemeralContainer;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    /// A pod whose `app` container holds `app_sc`, with `debugger` attached.
    fn traced_by(debugger: serde_json::Value, app_sc: serde_json::Value, share: bool) -> Asks {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {
                "shareProcessNamespace": share,
                "containers": [
                    {"name": "app", "image": "app", "securityContext": app_sc},
                    {"name": "sidecar", "image": "envoy", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}
                ],
                "ephemeralContainers": [debugger.clone()]
            }
        }));
        let ec: EphemeralContainer = serde_json::from_value(debugger).unwrap();
        let volumes = PodVolumes::of(&p);
        let mut asks = Asks::extract(&ContainerParts::from_ephemeral(&ec), &p, &volumes);
        asks.traced = traced_containers(&ec.name, &asks, &TraceReach::of(&p, &volumes));
        asks
    }

    /// A target adding 300 capabilities, mounting 300 volumes and reading 300 Secrets into
    /// its environment, traced by a debug container with 300 of each of its own: each one the
    /// process namespace holds is looked up once among the debug container's, not searched
    /// for in its lists.
    #[test]
    fn what_a_traced_container_holds_is_looked_up_once_each() {
        const N: usize = 300;
        let names =
            |prefix: &str| -> Vec<String> { (0..N).map(|i| format!("{prefix}{i}")).collect() };
        let mounts = |prefix: &str| -> Vec<serde_json::Value> {
            (0..N)
                .map(|i| json!({"name": format!("{prefix}{i}"), "mountPath": format!("/{prefix}/{i}")}))
                .collect()
        };
        let env: Vec<_> = (0..N)
            .map(|i| json!({"name": format!("E{i}"), "valueFrom": {"secretKeyRef": {"name": format!("s{i}"), "key": "k"}}}))
            .collect();
        let env_from: Vec<_> = (0..N)
            .map(|i| json!({"secretRef": {"name": format!("t{i}")}}))
            .collect();
        let volumes: Vec<_> = mounts("a")
            .into_iter()
            .chain(mounts("b"))
            .map(|m| json!({"name": m["name"], "emptyDir": {}}))
            .collect();
        let mut own_caps = names("Y");
        own_caps.push("SYS_PTRACE".into());
        let debugger = json!({"name": "d", "image": "busybox", "targetContainerName": "app",
            "securityContext": {"capabilities": {"add": own_caps}},
            "volumeMounts": mounts("b"), "envFrom": env_from});
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "app", "image": "app",
                    "securityContext": {"capabilities": {"add": names("X")}},
                    "volumeMounts": mounts("a"), "env": env}],
                "volumes": volumes,
                "ephemeralContainers": [debugger.clone()]
            }
        }));
        let ec: EphemeralContainer = serde_json::from_value(debugger).unwrap();
        let volumes = PodVolumes::of(&p);
        let asks = Asks::extract(&ContainerParts::from_ephemeral(&ec), &p, &volumes);
        let reach = TraceReach::of(&p, &volumes);
        crate::search_steps::reset(crate::search_steps::Search::TracedHoldings);
        let traced = traced_containers(&ec.name, &asks, &reach);
        let steps = crate::search_steps::count(crate::search_steps::Search::TracedHoldings);
        assert_eq!(traced.len(), 1);
        let app = &traced[0];
        assert_eq!(app.name, "app");
        assert_eq!(
            (
                app.capabilities.len(),
                app.volumes.len(),
                app.env_from_secrets.len()
            ),
            (N, N, N)
        );
        // The process namespace holds the debug container's own too (and SYS_PTRACE): each
        // looked up once.
        assert!((3 * N..=3 * (2 * N) + 1).contains(&steps), "{steps} steps");
    }

    fn tracer(caps: &[&str]) -> serde_json::Value {
        json!({"name": "d", "image": "busybox", "targetContainerName": "app",
               "securityContext": {"capabilities": {"add": caps}}})
    }

    #[test]
    fn tracing_reaches_what_the_traced_containers_hold_beyond_the_tracer() {
        let caps = |a: &Asks| -> Vec<(String, Vec<String>, Vec<&str>)> {
            a.traced
                .iter()
                .map(|t| {
                    let c = t.capabilities.iter().map(|c| c.to_string()).collect();
                    (t.name.clone(), c, t.privileged.clone())
                })
                .collect()
        };
        // The target's capabilities, less those the tracer adds itself.
        let a = traced_by(
            tracer(&["SYS_PTRACE", "NET_ADMIN"]),
            json!({"capabilities": {"add": ["NET_ADMIN", "SYS_ADMIN"]}}),
            false,
        );
        assert_eq!(caps(&a), [("app".into(), vec!["SYS_ADMIN".into()], vec![])]);
        // Its privileged family; allowPrivilegeEscalation gives nothing past its capabilities.
        let a = traced_by(
            tracer(&["CAP_SYS_PTRACE"]),
            json!({"privileged": true, "allowPrivilegeEscalation": true,
                   "seccompProfile": {"type": "Unconfined"}}),
            false,
        );
        assert_eq!(
            caps(&a),
            [(
                "app".into(),
                vec![],
                vec!["privileged: true", "seccomp Unconfined"]
            )]
        );
        // ALL traces too; a target holding nothing more is no ask.
        let a = traced_by(
            tracer(&["ALL"]),
            json!({"capabilities": {"add": ["SYS_ADMIN"]}}),
            false,
        );
        assert!(a.traced.is_empty(), "ALL covers SYS_ADMIN: {:?}", a.traced);
        // Without SYS_PTRACE the kernel lets no one trace a process holding more than itself.
        let a = traced_by(tracer(&["NET_RAW"]), json!({"privileged": true}), false);
        assert!(a.traced.is_empty());
        // Without a target, only a shared process namespace reaches the others.
        let mut untargeted = tracer(&["SYS_PTRACE"]);
        untargeted
            .as_object_mut()
            .unwrap()
            .remove("targetContainerName");
        let a = traced_by(untargeted.clone(), json!({"privileged": true}), false);
        assert!(a.traced.is_empty());
        let a = traced_by(untargeted, json!({"privileged": true}), true);
        assert_eq!(
            caps(&a),
            [
                ("app".into(), vec![], vec!["privileged: true"]),
                ("sidecar".into(), vec!["SYS_ADMIN".into()], vec![])
            ]
        );
        // A privileged tracer already holds it all.
        let mut privileged = tracer(&["SYS_PTRACE"]);
        privileged["securityContext"]["privileged"] = json!(true);
        let a = traced_by(
            privileged,
            json!({"capabilities": {"add": ["SYS_ADMIN"]}}),
            true,
        );
        assert!(a.traced.is_empty());
    }

    #[test]
    fn a_windows_pods_containers_share_no_processes() {
        // As Linux, a debug container that may become the target's user reaches its Secret
        // mount; in a Windows pod, the target's processes are out of reach.
        let debugger = json!({"name": "d", "image": "busybox", "targetContainerName": "app",
                              "securityContext": {"runAsNonRoot": true}});
        let pod_with = |os: Option<&str>| {
            let mut p = json!({"metadata": {"name": "p"}, "spec": {
                "containers": [{"name": "app", "image": "app",
                                "volumeMounts": [{"name": "creds", "mountPath": "/c"}]}],
                "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}],
                "ephemeralContainers": [debugger.clone()]
            }});
            if let Some(os) = os {
                p["spec"]["os"] = json!({"name": os});
            }
            pod(p)
        };
        let ec: EphemeralContainer = serde_json::from_value(debugger.clone()).unwrap();
        let reached = |p: &Pod| {
            let volumes = PodVolumes::of(p);
            let asks = Asks::extract(&ContainerParts::from_ephemeral(&ec), p, &volumes);
            traced_containers(&ec.name, &asks, &TraceReach::of(p, &volumes))
        };
        for linux in [pod_with(None), pod_with(Some("linux"))] {
            let traced = reached(&linux);
            assert_eq!(traced.len(), 1, "{traced:?}");
            assert_eq!(
                traced[0].volumes,
                [("creds".to_owned(), VolumeKind::Secret)]
            );
        }
        assert_eq!(reached(&pod_with(Some("windows"))), []);
    }

    /// One traced container as the tests compare it: name, capabilities, privileged family,
    /// host paths (path, read-only).
    type Reached = (String, Vec<String>, Vec<&'static str>, Vec<(String, bool)>);

    /// What `debugger` (the last ephemeral container of `pod_json`) reaches by tracing.
    fn reach_of(pod_json: serde_json::Value) -> Vec<Reached> {
        let p = pod(pod_json);
        let spec = p.spec.as_ref().unwrap();
        let ec = spec.ephemeral_containers.as_ref().unwrap().last().unwrap();
        let volumes = PodVolumes::of(&p);
        let asks = Asks::extract(&ContainerParts::from_ephemeral(ec), &p, &volumes);
        traced_containers(&ec.name, &asks, &TraceReach::of(&p, &volumes))
            .into_iter()
            .map(|t| {
                let paths = t
                    .host_paths
                    .iter()
                    .map(|v| (v.host_path.as_ref().unwrap().to_string(), v.read_only))
                    .collect();
                let caps = t.capabilities.iter().map(|c| c.to_string()).collect();
                (t.name, caps, t.privileged, paths)
            })
            .collect()
    }

    #[test]
    fn tracing_reaches_every_container_in_the_targets_process_namespace() {
        let pod_with = |ephemeral: serde_json::Value| {
            json!({"metadata": {"name": "p"}, "spec": {
                "containers": [{"name": "app", "image": "app"}, {"name": "db", "image": "db"}],
                "ephemeralContainers": ephemeral
            }})
        };
        let old = json!({"name": "old", "image": "tools", "targetContainerName": "app",
                         "securityContext": {"privileged": true}});
        let new = |target: &str| {
            json!({"name": "new", "image": "busybox", "targetContainerName": target,
                   "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}})
        };
        // An earlier debug container targeting the same container shares its namespace, and
        // so its processes: tracing them is running code as a privileged container.
        assert_eq!(
            reach_of(pod_with(json!([old.clone(), new("app")]))),
            [("old".into(), vec![], vec!["privileged: true"], vec![])]
        );
        // Targeting another container, it shares nothing with the privileged one.
        assert!(reach_of(pod_with(json!([old.clone(), new("db")]))).is_empty());
        // Nor does an untargeted debug container, which has a namespace of its own.
        let mut untargeted = old;
        untargeted
            .as_object_mut()
            .unwrap()
            .remove("targetContainerName");
        assert!(reach_of(pod_with(json!([untargeted, new("app")]))).is_empty());
    }

    #[test]
    fn tracing_reaches_the_host_paths_the_traced_containers_mount() {
        let pod_with = |app_mounts: serde_json::Value, share: bool, own: serde_json::Value| {
            json!({"metadata": {"name": "p"}, "spec": {
                "shareProcessNamespace": share,
                "volumes": [{"name": "root", "hostPath": {"path": "/"}},
                            {"name": "logs", "hostPath": {"path": "/var/log/"}}],
                "containers": [
                    {"name": "app", "image": "app", "volumeMounts": app_mounts},
                    {"name": "agent", "image": "agent", "volumeMounts": [
                        {"name": "logs", "mountPath": "/logs", "readOnly": true}]}
                ],
                "ephemeralContainers": [{"name": "d", "image": "busybox", "targetContainerName": "app",
                    "volumeMounts": own,
                    "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}}]
            }})
        };
        let writable_root = json!([{"name": "root", "mountPath": "/host"}]);
        // The target's mount, as it mounts it: its processes write the node's / for the tracer.
        assert_eq!(
            reach_of(pod_with(writable_root.clone(), false, json!([]))),
            [("app".into(), vec![], vec![], vec![("/".into(), false)])]
        );
        let read_only_root = json!([{"name": "root", "mountPath": "/host", "readOnly": true}]);
        assert_eq!(
            reach_of(pod_with(read_only_root.clone(), false, json!([]))),
            [("app".into(), vec![], vec![], vec![("/".into(), true)])]
        );
        // With one process namespace, every container's, the most writable mount of each.
        assert_eq!(
            reach_of(pod_with(read_only_root, true, json!([]))),
            [
                (
                    "agent".into(),
                    vec![],
                    vec![],
                    vec![("/var/log".into(), true)]
                ),
                ("app".into(), vec![], vec![], vec![("/".into(), true)]),
            ]
        );
        // The debug container's own writable mount is judged as its own, not again.
        assert_eq!(
            reach_of(pod_with(json!([]), true, writable_root)),
            [(
                "agent".into(),
                vec![],
                vec![],
                vec![("/var/log".into(), true)]
            )]
        );
    }
}
