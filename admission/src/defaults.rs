//! The default-injecting JSON patch `/mutate` returns.
//!
//! A patch touches only the new debug containers and only fields the user left unset: the API
//! server rejects a `pods/ephemeralcontainers` update that changes an existing ephemeral
//! container, and a default must never override a choice.

use std::collections::{BTreeMap, BTreeSet};

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::Volume;
use serde_json::{Value, json};

use crate::asks::VolumeKind;
use crate::classify::{
    Action, ContainerList, DEBUG_CONTAINER_ANNOTATION, Subject, is_kubectl_debugger_name,
};
use crate::pod_os::LINUX_ONLY_CONTAINER_FIELDS;
use crate::pod_security::{Conforming, Level, conforming_security_context};
use crate::policy::compiled::CompiledPolicy;
use crate::policy::spec::{MountTargetVolumes, PodSecurityDefault, TargetContainer};

/// Accumulates RFC 6902 `add` operations.
#[derive(Debug, Default)]
pub struct PatchBuilder {
    ops: Vec<PatchOperation>,
}

impl PatchBuilder {
    /// Adds `value` at the path made of `tokens`.
    pub fn add<'t>(&mut self, tokens: impl IntoIterator<Item = &'t str>, value: Value) {
        self.ops.push(PatchOperation::Add(AddOperation {
            path: PointerBuf::from_tokens(tokens),
            value,
        }));
    }

    /// Adds every key of `defaults` that `current` lacks, recursing into mappings both have
    /// except the [unions](TAKEN_WHOLE) of a security context, which are added whole or not at
    /// all. Lists and scalars the user set are left alone.
    pub fn fill_absent(&mut self, base: &[String], current: &Value, defaults: &Value) {
        let Some(defaults) = defaults.as_object() else {
            return;
        };
        for (key, value) in defaults {
            let mut path = base.to_vec();
            path.push(key.clone());
            match current.get(key) {
                None | Some(Value::Null) => {
                    self.add(path.iter().map(String::as_str), value.clone())
                }
                Some(existing)
                    if existing.is_object() && value.is_object() && !is_taken_whole(key) =>
                {
                    self.fill_absent(&path, existing, value);
                }
                Some(_) => {}
            }
        }
    }

    /// Appends `items` to the list `field` of the object at `base` (whose current value is
    /// `current`): one `add …/-` per item when the list exists, the whole list otherwise.
    pub fn append(&mut self, base: &[String], current: &Value, field: &str, items: Vec<Value>) {
        if items.is_empty() {
            return;
        }
        let list = base.iter().map(String::as_str).chain([field]);
        if current.get(field).is_some_and(|l| !l.is_null()) {
            for item in items {
                self.add(list.clone().chain(["-"]), item);
            }
        } else {
            self.add(list, Value::Array(items));
        }
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The patch.
    pub fn build(self) -> Patch {
        Patch(self.ops)
    }
}

/// Inputs to the defaults of one subject.
pub(crate) struct SubjectDefaults<'a> {
    /// The subject.
    pub subject: &'a Subject,
    /// Enforce policies that apply to it, in load order (the first to set a field wins).
    pub policies: Vec<&'a CompiledPolicy>,
    /// The pod object as sent.
    pub object: &'a Value,
    /// The request's action.
    pub action: Action,
    /// The pod's volumes by name ([`volumes_by_name`] of `object`, indexed once per request).
    pub volumes: &'a BTreeMap<&'a str, &'a Value>,
    /// The namespace's enforced Pod Security level.
    pub level: Option<Level>,
    /// The `runAsUser`s the pod's containers name
    /// ([`container_users`](crate::pod_security::container_users) of `object`, once per
    /// request), and those the defaults of the subjects before this one gave
    /// ([`SubjectPatched::run_as_user`]): a conforming default names another.
    pub pod_users: &'a BTreeSet<i64>,
    /// Whether a `targetContainer` default may be given. Not when the debug container, as
    /// these defaults leave it, would reach in its target's process namespace what no
    /// applicable policy grants (the engine finds out after a first pass): `/validate` would
    /// deny the request that, without the default, it allows.
    pub target_default: bool,
}

/// Whether the subject is a container a debug request brings, whose image has not run under
/// this pod's securityContext: an ephemeral container, every container of a node-debugging
/// pod, and a copy's debug container (named by `kspy copy`'s annotation, or as `kubectl debug
/// --copy-to` names it). The other containers of a copy are the source pod's, and their images
/// already run as the users they pick.
fn is_debug_container(d: &SubjectDefaults<'_>) -> bool {
    let s = d.subject;
    s.list == ContainerList::Ephemeral
        || d.action == Action::Node
        || is_kubectl_debugger_name(&s.name)
        || d.object["metadata"]["annotations"][DEBUG_CONTAINER_ANNOTATION] == s.name.as_str()
}

/// What [`subject_defaults`] tells its caller besides the patch.
#[derive(Debug, Default)]
pub(crate) struct SubjectPatched {
    /// Notes for the user (mounts not mirrored, defaults left out of a Windows pod).
    pub notes: Vec<String>,
    /// The `runAsUser` the patch gives the container, when it adds one: the next subjects'
    /// [`SubjectDefaults::pod_users`] must count it, or two debug containers added at once
    /// would both get the same conforming user and read each other's files.
    pub run_as_user: Option<i64>,
    /// The `targetContainerName` the patch gives the container, when it adds one.
    pub target: Option<String>,
}

/// Adds one subject's defaults to `patch`.
pub(crate) fn subject_defaults(
    patch: &mut PatchBuilder,
    d: &SubjectDefaults<'_>,
) -> SubjectPatched {
    let mut notes = Vec::new();
    let s = d.subject;
    let base: Vec<String> = vec!["spec".into(), s.list.field().into(), s.index.to_string()];
    let at = |field: &str| {
        let mut p = base.clone();
        p.push(field.to_owned());
        p
    };
    let first = |f: &dyn Fn(&CompiledPolicy) -> bool| d.policies.iter().copied().find(|p| f(p));
    let container = &s.container;
    // Borrowed, not cloned: a debug copy has a subject per container, and copying every
    // container for each made its defaults quadratic in the number of containers.
    let pod_containers: &[Value] = d.object["spec"]["containers"]
        .as_array()
        .map_or(&[], Vec::as_slice);

    let mut target = s.asks.target.clone();
    let mut target_added = None;
    if s.list == ContainerList::Ephemeral && target.is_none() && d.target_default {
        let rule = first(&|p| p.defaults.target_container.is_some())
            .and_then(|p| p.defaults.target_container);
        let chosen = match rule {
            Some(TargetContainer::First) => pod_containers.first(),
            Some(TargetContainer::Sole) if pod_containers.len() == 1 => pod_containers.first(),
            _ => None,
        };
        if let Some(name) = chosen.and_then(|c| c["name"].as_str()) {
            patch.add(
                at("targetContainerName").iter().map(String::as_str),
                json!(name),
            );
            target = Some(name.to_owned());
            target_added = Some(name.to_owned());
        }
    }

    if s.list == ContainerList::Ephemeral
        && let Some(mode) = first(&|p| p.defaults.mount_target_volumes.is_some())
            .and_then(|p| p.defaults.mount_target_volumes)
        && mode != MountTargetVolumes::None
        && let Some(target) = &target
    {
        // A sidecar (a restartable init container) can be the target too, as the engine's
        // `target` finds it.
        let init_containers: &[Value] = d.object["spec"]["initContainers"]
            .as_array()
            .map_or(&[], Vec::as_slice);
        let target_mounts = pod_containers
            .iter()
            .chain(init_containers)
            .find(|c| c["name"] == target.as_str())
            .and_then(|c| c["volumeMounts"].as_array())
            .map_or(&[][..], Vec::as_slice);
        // Indexed, not searched per mount: a request may add many containers that target one
        // with many mounts, and judging it must stay proportional to the patch it makes.
        // A path is taken by the container's own mounts and its block devices; a volume it
        // uses as a block device cannot also be mounted (the API server refuses both).
        let devices = container["volumeDevices"]
            .as_array()
            .map_or(&[][..], Vec::as_slice);
        let mut taken_paths: BTreeSet<&str> = container["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|m| m["mountPath"].as_str())
            .chain(devices.iter().filter_map(|d| d["devicePath"].as_str()))
            .collect();
        let device_volumes: BTreeSet<&str> =
            devices.iter().filter_map(|d| d["name"].as_str()).collect();
        let mut added = Vec::new();
        for m in target_mounts {
            let (Some(name), Some(path)) = (m["name"].as_str(), m["mountPath"].as_str()) else {
                continue;
            };
            if taken_paths.contains(path) || device_volumes.contains(name) {
                continue;
            }
            // The API server refuses subPath and subPathExpr on ephemeral containers, and the
            // whole volume at a path meant for one file of it would be wrong.
            let sub_path = ["subPath", "subPathExpr"]
                .iter()
                .any(|k| m[*k].as_str().is_some_and(|v| !v.is_empty()));
            if sub_path {
                notes.push(format!(
                    "volume {name:?} of container {target:?} was not mounted at {path}: the target \
                     mounts a subPath of it, which an ephemeral container cannot"
                ));
                continue;
            }
            let volume = d.volumes.get(name).copied();
            let kind = volume_kind(volume);
            let read_only = mode == MountTargetVolumes::ReadOnly || m["readOnly"] == json!(true);
            if !mount_granted(&d.policies, volume, name, kind, read_only) {
                // The service-account token is never mirrored unless granted; saying so on
                // every attach would only be noise.
                if name.starts_with("kube-api-access-") {
                    continue;
                }
                // Not mounted is not out of reach by itself: /validate judges what the debug
                // container reaches as the target's user (README, "Asks"), as far as the
                // securityContexts tell.
                let reach = if crate::pod_os::is_windows(d.object) {
                    // No /proc there: a Windows container joins no other's processes (the
                    // target's process namespace is a Linux notion), so this is no refusal
                    // to come, only what the user will not see.
                    "; a Windows debug container shares only the pod's network with its \
                     target, not its processes or files, so it cannot read the volume at all"
                } else if kind == VolumeKind::Secret {
                    "; a debug container that could read the target's copy through \
                     /proc/PID/root as the target's user is refused"
                } else {
                    ""
                };
                notes.push(format!(
                    "volume {name:?} of container {target:?} was not mounted: no applicable policy grants mounting it{reach}"
                ));
                continue;
            }
            taken_paths.insert(path);
            let mut mount = json!({"name": name, "mountPath": path, "readOnly": read_only});
            if read_only && kind == VolumeKind::HostPath {
                mount["recursiveReadOnly"] = json!(RECURSIVE_READ_ONLY);
            }
            added.push(mount);
        }
        patch.append(&base, container, "volumeMounts", added);
    }

    recursive_read_only(patch, &base, container, d.volumes);

    if container.get("imagePullPolicy").is_none_or(Value::is_null)
        && let Some(policy) = first(&|p| p.defaults.image_pull_policy.is_some())
            .and_then(|p| p.defaults.image_pull_policy)
    {
        patch.add(
            at("imagePullPolicy").iter().map(String::as_str),
            json!(policy.as_str()),
        );
    }

    let mut env_added: Vec<Value> = Vec::new();
    let existing_env = container["env"].as_array().cloned().unwrap_or_default();
    for p in &d.policies {
        for e in &p.defaults.env {
            let taken = existing_env
                .iter()
                .chain(&env_added)
                .any(|x| x["name"] == e.name.as_str());
            if !taken {
                env_added.push(json!({"name": e.name, "value": e.value}));
            }
        }
    }
    patch.append(&base, container, "env", env_added);

    // securityContext: policy defaults first, then what the Pod Security level needs.
    let mut wanted = serde_json::Map::new();
    for p in &d.policies {
        if let Some(Value::Object(sc)) = &p.defaults.security_context {
            merge_absent(&mut wanted, sc);
        }
    }
    let windows = crate::pod_os::is_windows(d.object);
    if windows {
        // A policy's securityContext default written for Linux (dropping SETUID and SETGID)
        // would make the API server refuse the whole request.
        let left_out: Vec<&str> = LINUX_ONLY_CONTAINER_FIELDS
            .into_iter()
            .filter(|f| wanted.remove(*f).is_some())
            .collect();
        if !left_out.is_empty() {
            notes.push(format!(
                "the securityContext defaults {} were not set on container {:?}: pod {:?} runs \
                 Windows (spec.os.name), where the API server refuses them",
                left_out.join(", "),
                s.name,
                d.object["metadata"]["name"].as_str().unwrap_or_default(),
            ));
        }
    }
    let conform = first(&|p| p.defaults.pod_security.is_some())
        .and_then(|p| p.defaults.pod_security)
        == Some(PodSecurityDefault::Conform);
    if conform
        && let Some(level) = d.level
        && let Some(Value::Object(sc)) = conforming_security_context(
            level,
            &s.asks,
            &Conforming {
                container_sc: &container["securityContext"],
                pod_sc: &d.object["spec"]["securityContext"],
                pod_users: d.pod_users,
                windows,
                debug_container: is_debug_container(d),
            },
        )
    {
        merge_absent(&mut wanted, &sc);
        // The level needs ALL dropped; a policy's own drop list (SETUID and SETGID, to keep a
        // root debug container from becoming its target's user) must not stand in its way,
        // and ALL covers it.
        let all = json!(["ALL"]);
        if sc.get("capabilities").is_some_and(|c| c["drop"] == all)
            && let Some(Value::Object(caps)) = wanted.get_mut("capabilities")
            && !caps
                .get("drop")
                .and_then(Value::as_array)
                .is_some_and(|d| d.contains(&json!("ALL")))
        {
            caps.insert("drop".to_owned(), all);
        }
    }
    let current = &container["securityContext"];
    if wanted.get("allowPrivilegeEscalation") == Some(&json!(false))
        && current["allowPrivilegeEscalation"].is_null()
        && escalates_anyway(current, &wanted)
    {
        // The API server refuses `allowPrivilegeEscalation: false` beside `privileged: true`
        // or an added CAP_SYS_ADMIN, so the default would turn the request Invalid over a
        // field the user never set. Pod Security still names the privilege, where it applies.
        wanted.remove("allowPrivilegeEscalation");
    }
    keep_added_capabilities(current, &mut wanted);
    // Filled in only where the container names no user (fill_absent, or the whole context).
    let run_as_user = current["runAsUser"]
        .is_null()
        .then(|| wanted.get("runAsUser").and_then(Value::as_i64))
        .flatten();
    if !wanted.is_empty() {
        if current.is_object() {
            patch.fill_absent(&at("securityContext"), current, &Value::Object(wanted));
        } else {
            patch.add(
                at("securityContext").iter().map(String::as_str),
                Value::Object(wanted),
            );
        }
    }
    SubjectPatched {
        notes,
        run_as_user,
        target: target_added,
    }
}

/// The volumes of the pod `object` by name (of two with one name, which the API server
/// refuses, the later), for [`SubjectDefaults::volumes`].
pub(crate) fn volumes_by_name(object: &Value) -> BTreeMap<&str, &Value> {
    object["spec"]["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| Some((v["name"].as_str()?, v)))
        .collect()
}

/// What read-only host mounts get: recursive where the node's runtime and kernel can (the
/// kubelet falls back to a plain read-only mount elsewhere; API servers before 1.30 drop the
/// field).
pub const RECURSIVE_READ_ONLY: &str = "IfPossible";

/// Makes the subject's own read-only hostPath mounts recursively read-only where they leave
/// it unset: a plain read-only mount of the host's `/` leaves every filesystem mounted below
/// it writable, which is not what a read-only grant means. The API server allows the field
/// only beside `readOnly: true` and without mount propagation.
fn recursive_read_only(
    patch: &mut PatchBuilder,
    base: &[String],
    container: &Value,
    volumes: &BTreeMap<&str, &Value>,
) {
    let Some(mounts) = container["volumeMounts"].as_array() else {
        return;
    };
    for (i, m) in mounts.iter().enumerate() {
        let host_path = m["name"]
            .as_str()
            .and_then(|name| volumes.get(name))
            .is_some_and(|v| v.get("hostPath").is_some_and(|h| !h.is_null()));
        let propagates = !matches!(m["mountPropagation"].as_str(), None | Some("None"));
        if host_path
            && m["readOnly"] == json!(true)
            && m["recursiveReadOnly"].is_null()
            && !propagates
        {
            let index = i.to_string();
            let path = base.iter().map(String::as_str).chain([
                "volumeMounts",
                index.as_str(),
                "recursiveReadOnly",
            ]);
            patch.add(path, json!(RECURSIVE_READ_ONLY));
        }
    }
}

/// Whether the container, once the defaults in `wanted` fill what `current` leaves unset, is
/// privileged or adds CAP_SYS_ADMIN: the two cases in which the API server's
/// `ValidateSecurityContext` refuses `allowPrivilegeEscalation: false`.
fn escalates_anyway(current: &Value, wanted: &serde_json::Map<String, Value>) -> bool {
    let field = |name: &str| match &current[name] {
        Value::Null => wanted.get(name).unwrap_or(&Value::Null),
        set => set,
    };
    let privileged = field("privileged") == &json!(true);
    let added = match &current["capabilities"]["add"] {
        Value::Null => wanted
            .get("capabilities")
            .map_or(&Value::Null, |c| &c["add"]),
        set => set,
    };
    let sys_admin = added
        .as_array()
        .is_some_and(|caps| caps.iter().any(|c| c == "CAP_SYS_ADMIN"));
    privileged || sys_admin
}

/// Leaves out of a default `capabilities.drop` what the container adds (as the user set it,
/// or else as the defaults do), in any spelling: containerd and CRI-O add a container's
/// capabilities before they drop its drop list, so the default would take away in silence a
/// capability the user asked for. `ALL` in the drop list stays unless `ALL` is added. A drop
/// list left empty is not added at all.
fn keep_added_capabilities(current: &Value, wanted: &mut serde_json::Map<String, Value>) {
    let added = match &current["capabilities"]["add"] {
        Value::Null => wanted
            .get("capabilities")
            .map_or(Value::Null, |c| c["add"].clone()),
        set => set.clone(),
    };
    let added: Vec<crate::Capability> = added
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|c| crate::Capability::normalize(c).ok())
        .collect();
    if added.is_empty() {
        return;
    }
    let Some(Value::Object(caps)) = wanted.get_mut("capabilities") else {
        return;
    };
    let Some(Value::Array(drop)) = caps.get_mut("drop") else {
        return;
    };
    let adds_all = added.iter().any(crate::Capability::is_all);
    drop.retain(|c| {
        let Some(cap) = c
            .as_str()
            .and_then(|c| crate::Capability::normalize(c).ok())
        else {
            return true;
        };
        !(adds_all || added.contains(&cap))
    });
    if drop.is_empty() {
        caps.remove("drop");
        if caps.is_empty() {
            wanted.remove("capabilities");
        }
    }
}

/// Fields of a security context that are unions over their `type`: a `localhostProfile`
/// is Invalid beside any `type` but `Localhost`, so filling one field of a profile someone
/// else chose would turn the request Invalid (or change what the profile means). Defaults take
/// these whole, from the user or from the first policy that sets them.
pub const TAKEN_WHOLE: [&str; 2] = ["seccompProfile", "appArmorProfile"];

fn is_taken_whole(field: &str) -> bool {
    TAKEN_WHOLE.contains(&field)
}

fn merge_absent(into: &mut serde_json::Map<String, Value>, from: &serde_json::Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (None, _) => {
                into.insert(k.clone(), v.clone());
            }
            (Some(Value::Object(existing)), Value::Object(more)) if !is_taken_whole(k) => {
                merge_absent(existing, more)
            }
            _ => {}
        }
    }
}

/// The kind of the pod volume `volume`, as the engine judges it ([`crate::asks`]): the
/// defaults must mirror only what the validating pass will grant, so there is one
/// classification. A missing volume, or one that does not decode, counts as secret: never
/// mirrored unless secrets are granted.
fn volume_kind(volume: Option<&Value>) -> VolumeKind {
    volume
        .and_then(|v| serde_json::from_value::<Volume>(v.clone()).ok())
        .map_or(VolumeKind::Secret, |v| crate::asks::volume_kind(&v))
}

/// A mirrored mount must be one the validating pass will grant, or the default would turn an
/// allowed request into a denied one.
fn mount_granted(
    policies: &[&CompiledPolicy],
    volume: Option<&Value>,
    name: &str,
    kind: VolumeKind,
    read_only: bool,
) -> bool {
    match kind {
        VolumeKind::HostPath => {
            let path = volume
                .and_then(|v| v["hostPath"]["path"].as_str())
                .and_then(|p| crate::hostpath::HostPath::parse(p).ok());
            let ask = crate::asks::VolumeAsk {
                name: name.to_owned(),
                kind,
                read_only,
                writable_below: false,
                host_path: path,
            };
            policies.iter().any(|p| p.grant.covers_host_path(&ask))
        }
        kind => policies.iter().any(|p| p.grant.covers_volume(kind)),
    }
}
