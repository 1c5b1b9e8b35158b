//! What a debug container asks for, normalized so policies judge meaning, not spelling.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, EnvVar, EphemeralContainer, Pod, PodSecurityContext, ResourceClaim,
    ResourceRequirements, SELinuxOptions, SecurityContext, Volume, VolumeDevice, VolumeMount,
    WindowsSecurityContextOptions,
};
use serde::Serialize;

use crate::capability::Capability;
use crate::hostpath::HostPath;
use crate::image::ImageRef;
use crate::user_reach::Identity;

// What an attached container reaches in its target's process namespace is worked out in
// `reach.rs`; re-exported so the `asks::` paths keep working.
pub use crate::reach::{TraceReach, TracedContainer, traced_containers};

/// The fields of a container that asks are read from, for both `Container` and
/// `EphemeralContainer` (Kubernetes keeps them as two types with the same fields).
#[derive(Debug, Clone, Copy)]
pub struct ContainerParts<'a> {
    /// `name`
    pub name: &'a str,
    /// `image`
    pub image: Option<&'a str>,
    /// `securityContext`
    pub security_context: Option<&'a SecurityContext>,
    /// `volumeMounts`
    pub volume_mounts: &'a [VolumeMount],
    /// `volumeDevices`: a pod volume (a block-mode PersistentVolumeClaim) given to the
    /// container as a raw device, which reaches the volume's data as a mount does.
    pub volume_devices: &'a [VolumeDevice],
    /// `env`
    pub env: &'a [EnvVar],
    /// `envFrom`
    pub env_from: &'a [EnvFromSource],
    /// `targetContainerName` (ephemeral containers only)
    pub target: Option<&'a str>,
    /// `resources.claims`: the pod's DRA resource claims whose devices the container gets.
    pub resource_claims: &'a [ResourceClaim],
}

impl<'a> ContainerParts<'a> {
    /// The parts of an ephemeral container.
    pub fn from_ephemeral(c: &'a EphemeralContainer) -> Self {
        ContainerParts {
            name: &c.name,
            image: c.image.as_deref(),
            security_context: c.security_context.as_ref(),
            volume_mounts: c.volume_mounts.as_deref().unwrap_or_default(),
            volume_devices: c.volume_devices.as_deref().unwrap_or_default(),
            env: c.env.as_deref().unwrap_or_default(),
            env_from: c.env_from.as_deref().unwrap_or_default(),
            target: c.target_container_name.as_deref(),
            resource_claims: claims(c.resources.as_ref()),
        }
    }

    /// The parts of a regular or init container.
    pub fn from_container(c: &'a Container) -> Self {
        ContainerParts {
            name: &c.name,
            image: c.image.as_deref(),
            security_context: c.security_context.as_ref(),
            volume_mounts: c.volume_mounts.as_deref().unwrap_or_default(),
            volume_devices: c.volume_devices.as_deref().unwrap_or_default(),
            env: c.env.as_deref().unwrap_or_default(),
            env_from: c.env_from.as_deref().unwrap_or_default(),
            target: None,
            resource_claims: claims(c.resources.as_ref()),
        }
    }
}

/// The resource claims a container's `resources` name.
fn claims(resources: Option<&ResourceRequirements>) -> &[ResourceClaim] {
    resources
        .and_then(|r| r.claims.as_deref())
        .unwrap_or_default()
}

/// How sensitive a mounted pod volume is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum VolumeKind {
    /// ConfigMaps, emptyDirs, PVCs and the like.
    NonSecret,
    /// A Secret, a projected volume with Secret or service-account-token sources, an inline
    /// CSI volume, a flexVolume, or a volume of a kind kspy does not know (see `volume_kind`).
    Secret,
    /// A hostPath volume: judged by the `hostPaths` grant, not `mountVolumes`.
    HostPath,
}

/// One pod volume a container mounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeAsk {
    /// The pod volume's name.
    pub name: String,
    /// How sensitive it is.
    pub kind: VolumeKind,
    /// Whether every mount of it by this container is read-only (and not
    /// `recursiveReadOnly: Disabled`).
    pub read_only: bool,
    /// Whether a mount is read-only only at its top (`readOnly: true` with
    /// `recursiveReadOnly: Disabled`), which [`VolumeAsk::read_only`] does not count: kept
    /// so that a denial can say so rather than "read-write".
    #[serde(skip)]
    pub writable_below: bool,
    /// For hostPath volumes, the normalized host path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPath>,
}

/// Everything one container asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Asks {
    /// The normalized image reference; the raw text when it does not parse.
    pub image: String,
    /// The parsed image, when valid.
    #[serde(skip)]
    pub image_ref: Option<ImageRef>,
    /// Why the image is invalid, when it is: such a request is never granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_error: Option<String>,
    /// Added capabilities, normalized, sorted, without duplicates.
    pub capabilities: Vec<Capability>,
    /// Capability names that are not names at all: never granted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_capabilities: Vec<String>,
    /// `securityContext.privileged: true`
    pub privileged: bool,
    /// `allowPrivilegeEscalation: true`, set explicitly.
    pub allow_privilege_escalation: bool,
    /// `allowPrivilegeEscalation` not `false` (unset is `true` at run time): a setuid program
    /// can raise the process's privileges, to root for a setuid-root one. Never in a Windows
    /// pod, which has no setuid programs. Not shown to CEL, which reads the field itself.
    #[serde(skip)]
    pub may_escalate: bool,
    /// Runs as root: `runAsNonRoot` not true and `runAsUser` 0 or unset (pod level included).
    pub runs_as_root: bool,
    /// When [`Asks::runs_as_root`] is the Windows form of it, an administrator account: for
    /// saying so in a denial, where "root" would send a Windows user to `runAsUser`, which
    /// the API server refuses in a Windows pod. Not shown to CEL.
    #[serde(skip)]
    pub windows_admin: Option<WindowsAdmin>,
    /// `procMount: Unmasked`
    pub proc_mount_unmasked: bool,
    /// seccomp `Unconfined` (container or pod level).
    pub seccomp_unconfined: bool,
    /// AppArmor `Unconfined` (field or the legacy annotation, container or pod level).
    pub apparmor_unconfined: bool,
    /// SELinux options Pod Security's baseline forbids (container or pod level): a type other
    /// than the container types (`spc_t`, `unconfined_t` run unconfined), or a user or role.
    pub selinux_unconfined: bool,
    /// `windowsOptions.hostProcess: true` (container or pod level): a Windows container with
    /// the host's full access.
    pub host_process: bool,
    /// `windowsOptions.gmsaCredentialSpecName` or `gmsaCredentialSpec` (container level, else
    /// the pod's, which the container inherits field by field): the container runs with an
    /// Active Directory identity (a group Managed Service Account), which no other grant
    /// covers. Not shown to CEL, which reads the field itself.
    #[serde(skip)]
    pub gmsa: bool,
    /// Pod volumes it mounts, by volume name.
    pub volumes: Vec<VolumeAsk>,
    /// Host paths mounted through hostPath volumes (a subset of `volumes`, by path).
    pub host_paths: Vec<VolumeAsk>,
    /// The images of the `image` volumes it mounts that the kubelet pulls for it: every one in
    /// a pod being created, and in a running pod those no regular or init container uses yet.
    /// The container can run what they hold, so they are judged as its image is.
    pub volume_images: Vec<VolumeImage>,
    /// The `gitRepo` volumes it mounts that the kubelet sets up for it (every one in a pod being
    /// created; in a running pod those no regular or init container uses yet), by volume name,
    /// with the repository each names. The kubelet runs `git clone` for them on the node, as
    /// root, from the node's network and file system: a repository of the pod's choosing may be
    /// a local path on the node, another pod's repository among them (CVE-2025-1767, which
    /// upstream will not fix), or a service only the node reaches. Not shown to CEL, which reads
    /// the volume.
    #[serde(skip)]
    pub git_repos: BTreeMap<String, String>,
    /// The hostPath volumes it mounts read-only that the kubelet creates on the node for it,
    /// by volume name, with their `type` (`DirectoryOrCreate`, `FileOrCreate`): creating a
    /// missing path writes the node (an empty `/etc/nologin` locks users out), so such a
    /// mount counts as read-write in `host_paths`. Not shown to CEL, which reads the volume.
    #[serde(skip)]
    pub host_paths_created: BTreeMap<String, String>,
    /// Secrets it reads into its environment (`secretKeyRef`, `envFrom.secretRef`).
    pub env_from_secrets: Vec<String>,
    /// The pod's DRA resource claims it uses (`resources.claims`), by name, sorted: a driver
    /// kspy cannot see into prepares the devices and hands them over with what their CDI
    /// specs add (device nodes, mounts of the node's files, environment), and a claim the pod
    /// names (`resourceClaimName`) may be one another pod uses too, its device with it. Judged
    /// as a Secret volume is, as inline CSI volumes are. Not shown to CEL, which reads the
    /// container.
    #[serde(skip)]
    pub resource_claims: Vec<String>,
    /// The container it targets (`targetContainerName`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// For an attached container that may trace (SYS_PTRACE or ALL), the containers whose
    /// processes it shares a namespace with and what they hold beyond it
    /// ([`traced_containers`]). Not shown to CEL: the containers are in `object`.
    #[serde(skip)]
    pub traced: Vec<TracedContainer>,
    /// Who it runs as and the capabilities it can hold, for working out which containers'
    /// processes it reaches without SYS_PTRACE ([`crate::user_reach`]).
    #[serde(skip)]
    pub identity: Identity,
}

/// A pod's volumes by name, indexed once per pod for the asks of all its containers: indexing
/// them for each container made a pod with many containers and many volumes quadratic to judge.
#[derive(Debug, Clone, Default)]
pub struct PodVolumes<'a> {
    by_name: BTreeMap<&'a str, &'a Volume>,
    /// The volumes the kubelet has already set up for the pod: those its regular and init
    /// containers use. The kubelet sets up only the volumes some container uses, so a debug
    /// container using another one makes it set that one up: pull an `image` volume's image.
    set_up: BTreeSet<&'a str>,
}

impl<'a> PodVolumes<'a> {
    /// Indexes the volumes of `pod`, a pod being created: none is set up yet. Of two with one
    /// name (which the API server refuses), the later one counts.
    pub fn of(pod: &'a Pod) -> Self {
        PodVolumes {
            by_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.volumes.as_deref())
                .unwrap_or_default()
                .iter()
                .map(|v| (v.name.as_str(), v))
                .collect(),
            set_up: BTreeSet::new(),
        }
    }

    /// Indexes the volumes of `pod`, a running pod an ephemeral container is added to: the
    /// volumes its regular and init containers use are set up already.
    pub fn of_running(pod: &'a Pod) -> Self {
        let mut volumes = Self::of(pod);
        if let Some(spec) = &pod.spec {
            for c in spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
            {
                let mounts = c.volume_mounts.iter().flatten().map(|m| m.name.as_str());
                let devices = c.volume_devices.iter().flatten().map(|d| d.name.as_str());
                volumes.set_up.extend(mounts.chain(devices));
            }
        }
        volumes
    }
}

/// The image an `image` volume mounted by a container brings onto the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeImage {
    /// The pod volume's name.
    pub volume: String,
    /// The normalized reference; the raw text when it does not parse.
    pub image: String,
    /// The parsed reference, when valid.
    #[serde(skip)]
    pub image_ref: Option<ImageRef>,
    /// Why the reference is invalid, when it is: such a volume is never granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_error: Option<String>,
}

impl VolumeImage {
    /// The image of the `image` volume `volume`, normalized like a container's.
    fn of(volume: &str, reference: Option<&str>) -> VolumeImage {
        let raw = reference.unwrap_or("");
        let (image, image_ref, image_error) = match ImageRef::parse(raw) {
            Ok(r) => (r.to_string(), Some(r), None),
            Err(e) => (raw.to_owned(), None, Some(e.to_string())),
        };
        VolumeImage {
            volume: volume.to_owned(),
            image,
            image_ref,
            image_error,
        }
    }
}

impl Asks {
    /// Extracts the asks of one container of `pod`, whose volumes are `volumes`
    /// ([`PodVolumes::of`] the same pod).
    pub fn extract(c: &ContainerParts<'_>, pod: &Pod, volumes: &PodVolumes<'_>) -> Asks {
        let spec = pod.spec.as_ref();
        let pod_sc = spec.and_then(|s| s.security_context.as_ref());
        let sc = c.security_context;
        let mut asks = Asks {
            target: c.target.map(str::to_owned),
            ..Asks::default()
        };

        let raw_image = c.image.unwrap_or("");
        match ImageRef::parse(raw_image) {
            Ok(image) => {
                asks.image = image.to_string();
                asks.image_ref = Some(image);
            }
            Err(e) => {
                asks.image = raw_image.to_owned();
                asks.image_error = Some(e.to_string());
            }
        }

        let added = sc
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.add.as_deref())
            .unwrap_or_default();
        for name in added {
            match Capability::normalize(name) {
                Ok(cap) => asks.capabilities.push(cap),
                Err(_) => asks.invalid_capabilities.push(name.clone()),
            }
        }
        asks.capabilities.sort();
        asks.capabilities.dedup();

        asks.privileged = sc.and_then(|s| s.privileged).unwrap_or(false);
        asks.allow_privilege_escalation =
            sc.and_then(|s| s.allow_privilege_escalation) == Some(true);
        // A setuid program is how a process gains privileges on Linux; Windows has none, and
        // a Windows pod cannot set the field at all.
        asks.may_escalate = sc.and_then(|s| s.allow_privilege_escalation) != Some(false)
            && !crate::pod_os::is_windows_pod(pod);
        asks.runs_as_root = runs_as_root(sc, pod_sc);
        asks.windows_admin = windows_admin(sc, pod_sc, pod, asks.runs_as_root);
        asks.proc_mount_unmasked = sc.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked");
        asks.seccomp_unconfined = seccomp_unconfined(sc, pod_sc);
        asks.apparmor_unconfined = apparmor_unconfined(c.name, sc, pod_sc, pod);
        asks.selinux_unconfined = sc
            .and_then(|s| s.se_linux_options.as_ref())
            .into_iter()
            .chain(pod_sc.and_then(|p| p.se_linux_options.as_ref()))
            .any(selinux_beyond_baseline);
        asks.host_process = sc
            .and_then(|s| s.windows_options.as_ref())
            .into_iter()
            .chain(pod_sc.and_then(|p| p.windows_options.as_ref()))
            .any(|w| w.host_process == Some(true));
        asks.gmsa = [
            windows_option(sc, pod_sc, |w| w.gmsa_credential_spec_name.as_deref()),
            windows_option(sc, pod_sc, |w| w.gmsa_credential_spec.as_deref()),
        ]
        .iter()
        .any(Option::is_some);

        // Per volume: every mount read-only; some mount read-only at its top only.
        let mut mounted: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
        for m in c.volume_mounts {
            // `recursiveReadOnly: Disabled` leaves the volume's submounts writable (under a
            // host's `/`, the kubelet's and the runtime's own disks), so it is no read-only
            // mount a read-only grant covers.
            let top_read_only = m.read_only.unwrap_or(false);
            let writable_below =
                top_read_only && m.recursive_read_only.as_deref() == Some("Disabled");
            let read_only = top_read_only && !writable_below;
            let entry = mounted.entry(m.name.as_str()).or_insert((true, false));
            entry.0 &= read_only;
            entry.1 |= writable_below;
        }
        // A raw device has no read-only form: the container may write the volume's blocks.
        for d in c.volume_devices {
            mounted.entry(d.name.as_str()).or_insert((true, false)).0 = false;
        }
        for (name, (read_only, writable_below)) in mounted {
            let volume = volumes.by_name.get(name).copied();
            if let Some(image) = volume.and_then(|v| v.image.as_ref())
                && !volumes.set_up.contains(name)
            {
                asks.volume_images
                    .push(VolumeImage::of(name, image.reference.as_deref()));
            }
            if let Some(repo) = volume.and_then(|v| v.git_repo.as_ref())
                && !volumes.set_up.contains(name)
            {
                asks.git_repos
                    .insert(name.to_owned(), repo.repository.clone());
            }
            let mut ask = volume_ask(name, read_only, volume);
            ask.writable_below = writable_below;
            if let Some(kind) = volume.and_then(created_on_node)
                && ask.read_only
                && !volumes.set_up.contains(name)
            {
                ask.read_only = false;
                asks.host_paths_created
                    .insert(name.to_owned(), kind.to_owned());
            }
            if ask.kind == VolumeKind::HostPath {
                asks.host_paths.push(ask.clone());
            }
            asks.volumes.push(ask);
        }

        let mut secrets: Vec<String> = c
            .env
            .iter()
            .filter_map(|e| e.value_from.as_ref()?.secret_key_ref.as_ref())
            .map(|r| r.name.clone())
            .chain(
                c.env_from
                    .iter()
                    .filter_map(|e| e.secret_ref.as_ref())
                    .map(|r| r.name.clone()),
            )
            .collect();
        secrets.sort();
        secrets.dedup();
        asks.env_from_secrets = secrets;
        asks.resource_claims = c.resource_claims.iter().map(|r| r.name.clone()).collect();
        asks.resource_claims.sort();
        asks.resource_claims.dedup();
        asks.identity = Identity::of(
            sc,
            pod_sc,
            asks.asks_root(),
            asks.privileged,
            &asks.capabilities,
        );
        asks
    }

    /// True when the container asks for anything the `privileged` grant covers.
    pub fn needs_privileged(&self) -> bool {
        !self.privileged_family().is_empty()
    }

    /// What the container asks for of the family the `privileged` grant covers, one phrase
    /// each (`privileged: true`, `seccomp Unconfined`, ...).
    pub fn privileged_family(&self) -> Vec<&'static str> {
        [
            (self.privileged, "privileged: true"),
            (
                self.allow_privilege_escalation,
                "allowPrivilegeEscalation: true",
            ),
            (self.proc_mount_unmasked, "procMount: Unmasked"),
            (self.seccomp_unconfined, "seccomp Unconfined"),
            (self.apparmor_unconfined, "AppArmor Unconfined"),
            (
                self.selinux_unconfined,
                "SELinux options beyond the container types (seLinuxOptions type, user or role)",
            ),
            (self.host_process, "windowsOptions.hostProcess: true"),
            (
                self.gmsa,
                "a gMSA credential spec (windowsOptions.gmsaCredentialSpecName or \
                 gmsaCredentialSpec: an Active Directory identity)",
            ),
        ]
        .into_iter()
        .filter_map(|(asked, phrase)| asked.then_some(phrase))
        .collect()
    }

    /// Whether the container runs as root or may become root through a setuid program, which
    /// only a grant of `runAsRoot` covers.
    pub fn asks_root(&self) -> bool {
        self.runs_as_root || (self.may_escalate && !self.privileged)
    }

    /// Whether the container may trace processes of other users and of more privileged
    /// containers: it adds SYS_PTRACE, or ALL.
    pub fn may_trace(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| c.is_all() || c.as_str() == "SYS_PTRACE")
    }
}

/// The SELinux types Pod Security's baseline level allows (besides none); `container_engine_t`
/// since policy version 1.31.
pub(crate) const BASELINE_SELINUX_TYPES: &[&str] = &[
    "container_t",
    "container_init_t",
    "container_kvm_t",
    "container_engine_t",
];

/// True for SELinux options the baseline level forbids: any other type, or any user or role.
fn selinux_beyond_baseline(o: &SELinuxOptions) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
    let odd_type = o
        .type_
        .as_deref()
        .is_some_and(|t| !t.is_empty() && !BASELINE_SELINUX_TYPES.contains(&t));
    odd_type || set(&o.user) || set(&o.role)
}

/// The Windows option `field` picks, the container's else the pod's: the kubelet merges
/// `windowsOptions` field by field.
fn windows_option<'a>(
    sc: Option<&'a SecurityContext>,
    pod_sc: Option<&'a PodSecurityContext>,
    field: impl Fn(&'a WindowsSecurityContextOptions) -> Option<&'a str>,
) -> Option<&'a str> {
    sc.and_then(|s| s.windows_options.as_ref())
        .and_then(&field)
        .or_else(|| {
            pod_sc
                .and_then(|p| p.windows_options.as_ref())
                .and_then(&field)
        })
}

/// Whether the container runs as root, or on Windows as an administrator. A `runAsUserName`
/// other than `ContainerUser` counts as one: the kubelet's `runAsNonRoot` check refuses only
/// the exact spelling `ContainerAdministrator`, while Windows account names ignore case
/// (`containeradministrator` is the same account) and `NT AUTHORITY\SYSTEM` is above it; an
/// image's own account may be in the Administrators group. On a Linux node the field is
/// ignored, so this errs towards root there, never towards an admin taken for a user. A
/// pod with no `spec.os` may run on a Windows node, which ignores `runAsUser`, so the name
/// counts whatever `runAsUser` says.
fn runs_as_root(sc: Option<&SecurityContext>, pod_sc: Option<&PodSecurityContext>) -> bool {
    if windows_option(sc, pod_sc, |w| w.run_as_user_name.as_deref())
        .is_some_and(|name| !name.eq_ignore_ascii_case(crate::pod_os::WINDOWS_UNPRIVILEGED_USER))
    {
        return true;
    }
    let non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_sc.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    let user = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_sc.and_then(|p| p.run_as_user));
    !non_root && matches!(user, None | Some(0))
}

/// The administrator account a container judged to run as root runs as on Windows: the
/// `runAsUserName` that made it count as one, or, in a Windows pod that sets no such name, the
/// image's default account. `None` for root on Linux.
fn windows_admin(
    sc: Option<&SecurityContext>,
    pod_sc: Option<&PodSecurityContext>,
    pod: &Pod,
    runs_as_root: bool,
) -> Option<WindowsAdmin> {
    if !runs_as_root {
        return None;
    }
    match windows_option(sc, pod_sc, |w| w.run_as_user_name.as_deref()) {
        Some(name) if !name.eq_ignore_ascii_case(crate::pod_os::WINDOWS_UNPRIVILEGED_USER) => {
            Some(WindowsAdmin::Named(name.to_owned()))
        }
        _ if crate::pod_os::is_windows_pod(pod) => Some(WindowsAdmin::ImageDefault),
        _ => None,
    }
}

/// How a Windows container runs with administrator rights in the container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum WindowsAdmin {
    /// `windowsOptions.runAsUserName` names an account other than `ContainerUser`.
    Named(String),
    /// No account is named and `runAsNonRoot` is not true: the image's default account runs
    /// it, which is `ContainerAdministrator` in Windows Server Core images.
    ImageDefault,
}

impl std::fmt::Display for WindowsAdmin {
    /// The phrase a denial names the ask by, with what to write instead.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::pod_os::{WINDOWS_ADMINISTRATOR, WINDOWS_UNPRIVILEGED_USER};
        match self {
            WindowsAdmin::Named(name) => write!(
                f,
                "running as Windows account {name:?}, an administrator in the container (every \
                 account but {WINDOWS_UNPRIVILEGED_USER} counts as one; set \
                 windowsOptions.runAsUserName: {WINDOWS_UNPRIVILEGED_USER})"
            ),
            WindowsAdmin::ImageDefault => write!(
                f,
                "running as a Windows administrator (without runAsNonRoot: true the image's \
                 default account runs it, {WINDOWS_ADMINISTRATOR} in Windows Server Core \
                 images; set runAsNonRoot: true and windowsOptions.runAsUserName: \
                 {WINDOWS_UNPRIVILEGED_USER})"
            ),
        }
    }
}

fn seccomp_unconfined(sc: Option<&SecurityContext>, pod_sc: Option<&PodSecurityContext>) -> bool {
    let profile = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| pod_sc.and_then(|p| p.seccomp_profile.as_ref()));
    profile.is_some_and(|p| p.type_ == "Unconfined")
}

fn apparmor_unconfined(
    name: &str,
    sc: Option<&SecurityContext>,
    pod_sc: Option<&PodSecurityContext>,
    pod: &Pod,
) -> bool {
    // The kubelet's order: the container's field, then the container's (deprecated)
    // annotation, then the pod's field. Reading the pod's field before the annotation judged a
    // pod-level RuntimeDefault beside an `unconfined` annotation confined, which the kubelet
    // runs unconfined.
    if let Some(profile) = sc.and_then(|s| s.app_armor_profile.as_ref()) {
        return profile.type_ == "Unconfined";
    }
    let key = format!("container.apparmor.security.beta.kubernetes.io/{name}");
    if let Some(value) = pod.metadata.annotations.as_ref().and_then(|a| a.get(&key)) {
        return value == "unconfined";
    }
    pod_sc
        .and_then(|p| p.app_armor_profile.as_ref())
        .is_some_and(|profile| profile.type_ == "Unconfined")
}

/// The `type` of a hostPath volume the kubelet creates on the node when the path is missing
/// (`DirectoryOrCreate`, `FileOrCreate`), as root, when it sets the volume up.
fn created_on_node(volume: &Volume) -> Option<&str> {
    let kind = volume.host_path.as_ref()?.type_.as_deref()?;
    matches!(kind, "DirectoryOrCreate" | "FileOrCreate").then_some(kind)
}

fn volume_ask(name: &str, read_only: bool, volume: Option<&Volume>) -> VolumeAsk {
    let mut ask = VolumeAsk {
        name: name.to_owned(),
        kind: VolumeKind::Secret,
        read_only,
        writable_below: false,
        host_path: None,
    };
    // The API server refuses mounts of undeclared volumes; judge one as sensitive anyway.
    if let Some(v) = volume {
        ask.kind = volume_kind(v);
        if let Some(hp) = &v.host_path {
            // An unparsable host path stays a hostPath ask with no path: no grant covers it.
            ask.host_path = HostPath::parse(&hp.path).ok();
        }
    }
    ask
}

/// How sensitive a pod volume is. What kspy cannot see into counts as a secret, so that a
/// kind of volume it does not know is never mounted on a grant meant for ConfigMaps:
///
/// - an inline CSI volume, whatever its driver: the drivers used inline are mostly there to
///   hand credentials to the pod (the Secrets Store driver's Vault and cloud secrets,
///   cert-manager's and SPIFFE's certificates and keys), and kspy cannot tell the others;
/// - a flexVolume, for the same reason: its driver, a program on the node, puts there what it
///   likes, and flexVolume drivers handed out credentials before CSI did (Azure Key Vault's
///   `azure/kv`);
/// - a projected volume with a source kspy does not know (a `podCertificate`, Kubernetes
///   1.34, holds a private key; the 1.33 types kspy reads drop it, leaving an empty source);
/// - a volume with none of the sources kspy knows (a kind newer than those types).
pub(crate) fn volume_kind(v: &Volume) -> VolumeKind {
    if v.host_path.is_some() {
        return VolumeKind::HostPath;
    }
    if v.secret.is_some() || v.csi.is_some() || v.flex_volume.is_some() {
        return VolumeKind::Secret;
    }
    if let Some(projected) = &v.projected {
        let sensitive = projected
            .sources
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|s| {
                let known = s.cluster_trust_bundle.is_some()
                    || s.config_map.is_some()
                    || s.downward_api.is_some();
                s.secret.is_some() || s.service_account_token.is_some() || !known
            });
        return if sensitive {
            VolumeKind::Secret
        } else {
            VolumeKind::NonSecret
        };
    }
    let known = [
        v.aws_elastic_block_store.is_some(),
        v.azure_disk.is_some(),
        v.azure_file.is_some(),
        v.cephfs.is_some(),
        v.cinder.is_some(),
        v.config_map.is_some(),
        v.downward_api.is_some(),
        v.empty_dir.is_some(),
        v.ephemeral.is_some(),
        v.fc.is_some(),
        v.flocker.is_some(),
        v.gce_persistent_disk.is_some(),
        v.git_repo.is_some(),
        v.glusterfs.is_some(),
        v.image.is_some(),
        v.iscsi.is_some(),
        v.nfs.is_some(),
        v.persistent_volume_claim.is_some(),
        v.photon_persistent_disk.is_some(),
        v.portworx_volume.is_some(),
        v.quobyte.is_some(),
        v.rbd.is_some(),
        v.scale_io.is_some(),
        v.storageos.is_some(),
        v.vsphere_volume.is_some(),
    ];
    if known.contains(&true) {
        VolumeKind::NonSecret
    } else {
        VolumeKind::Secret
    }
}

/// The fields CEL's `asks` has: those of [`Asks`] as serialized (optional ones included) and
/// the pod-level `pod` and `hostNamespaces` the engine adds.
pub const ASKS_FIELDS: &[&str] = &[
    "image",
    "imageError",
    "capabilities",
    "invalidCapabilities",
    "privileged",
    "allowPrivilegeEscalation",
    "runsAsRoot",
    "procMountUnmasked",
    "seccompUnconfined",
    "apparmorUnconfined",
    "selinuxUnconfined",
    "hostProcess",
    "volumes",
    "hostPaths",
    "volumeImages",
    "envFromSecrets",
    "target",
    "pod",
    "hostNamespaces",
];

/// The hosts the probes and lifecycle hooks of `c` name, which the kubelet calls from the node.
fn hosts_called_by_kubelet(c: &Container) -> Vec<String> {
    let probes = [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
        .into_iter()
        .flatten()
        .flat_map(|p| {
            let http = p.http_get.as_ref().and_then(|h| h.host.as_ref());
            let tcp = p.tcp_socket.as_ref().and_then(|t| t.host.as_ref());
            http.into_iter().chain(tcp)
        });
    let hooks = c
        .lifecycle
        .iter()
        .flat_map(|l| [&l.post_start, &l.pre_stop])
        .flatten()
        .flat_map(|h| {
            let http = h.http_get.as_ref().and_then(|h| h.host.as_ref());
            let tcp = h.tcp_socket.as_ref().and_then(|t| t.host.as_ref());
            http.into_iter().chain(tcp)
        });
    probes
        .chain(hooks)
        .filter(|host| !host.is_empty())
        .cloned()
        .collect()
}

/// Pod-level asks of copy and node pods.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PodAsks {
    /// `hostPID: true`
    pub host_pid: bool,
    /// `hostNetwork: true`
    pub host_network: bool,
    /// `hostIPC: true`
    pub host_ipc: bool,
    /// `nodeName`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// The `hostPort`s of its containers (init and ephemeral ones included), sorted: each
    /// binds a port of the node, which Pod Security's baseline level forbids (one bound at
    /// the kubelet's port takes its traffic).
    pub host_ports: Vec<i32>,
    /// Its sysctls (`securityContext.sysctls`) outside Kubernetes' safe set
    /// ([`SAFE_SYSCTLS`]), which baseline forbids: they reach the node's kernel
    /// (`kernel.core_pattern` runs a program of the pod's choosing on the node).
    pub unsafe_sysctls: Vec<String>,
    /// The hosts its containers' probes and lifecycle hooks name (`httpGet.host`,
    /// `tcpSocket.host`), sorted: the kubelet calls them itself, from the node's network (its
    /// loopback services, the cloud's metadata endpoint), which baseline forbids since
    /// Kubernetes 1.34. Without a host it calls the pod.
    pub probe_hosts: Vec<String>,
}

/// The sysctls Pod Security's baseline level allows (at its latest version, as the kubelet
/// allows them by default): namespaced, and isolated from the node and other pods. Policy
/// version 1.27 added `ip_local_reserved_ports`, 1.29 the `tcp_keepalive_*` and
/// `tcp_fin_timeout`, 1.32 `tcp_rmem` and `tcp_wmem`: a namespace pinned to an older
/// `enforce-version` refuses those, which the Pod Security warnings follow
/// ([`crate::pod_security::Version`]); a policy judges them as safe at any version.
pub const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
];

impl PodAsks {
    /// Extracts the pod-level asks.
    pub fn extract(pod: &Pod) -> PodAsks {
        let Some(spec) = &pod.spec else {
            return PodAsks::default();
        };
        let ports = |c: Option<&Vec<k8s_openapi::api::core::v1::ContainerPort>>| {
            c.into_iter()
                .flatten()
                .filter_map(|p| p.host_port)
                .filter(|p| *p != 0)
                .collect::<Vec<_>>()
        };
        let mut host_ports: Vec<i32> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(|c| ports(c.ports.as_ref()))
            .chain(
                spec.ephemeral_containers
                    .iter()
                    .flatten()
                    .flat_map(|c| ports(c.ports.as_ref())),
            )
            .collect();
        host_ports.sort_unstable();
        host_ports.dedup();
        let mut unsafe_sysctls: Vec<String> = spec
            .security_context
            .as_ref()
            .and_then(|sc| sc.sysctls.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|s| s.name.clone())
            .filter(|name| !SAFE_SYSCTLS.contains(&name.as_str()))
            .collect();
        unsafe_sysctls.sort();
        unsafe_sysctls.dedup();
        let mut probe_hosts: Vec<String> = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .flat_map(hosts_called_by_kubelet)
            .collect();
        probe_hosts.sort();
        probe_hosts.dedup();
        PodAsks {
            host_pid: spec.host_pid.unwrap_or(false),
            host_network: spec.host_network.unwrap_or(false),
            host_ipc: spec.host_ipc.unwrap_or(false),
            node_name: spec.node_name.clone().filter(|n| !n.is_empty()),
            host_ports,
            unsafe_sysctls,
            probe_hosts,
        }
    }

    /// The pod-level asks an ephemeral container takes over from its pod: it shares the
    /// pod's host namespaces, so SYS_PTRACE in a debug container of a `hostPID` pod reaches
    /// the node's processes as it would in a `hostPID` copy. The node is not asked for: the
    /// pod already runs on it.
    pub fn inherited(pod: &Pod) -> PodAsks {
        let Some(spec) = &pod.spec else {
            return PodAsks::default();
        };
        // Not the pod's host ports and sysctls: admitted with it, they are no ask of an
        // ephemeral container, which adds neither (the API server refuses its `ports`).
        PodAsks {
            host_pid: spec.host_pid.unwrap_or(false),
            host_network: spec.host_network.unwrap_or(false),
            host_ipc: spec.host_ipc.unwrap_or(false),
            ..PodAsks::default()
        }
    }

    /// The host namespaces asked for, by policy name (`pid`, `network`, `ipc`).
    pub fn host_namespaces(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.host_pid {
            out.push("pid");
        }
        if self.host_network {
            out.push("network");
        }
        if self.host_ipc {
            out.push("ipc");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `ASKS_FIELDS` is what CEL's `asks` can hold, no more and no less: a field added to
    /// `Asks` and not to the list would be refused at load as a misspelling.
    #[test]
    fn asks_fields_are_the_serialized_fields() {
        let every = Asks {
            image_error: Some("x".into()),
            invalid_capabilities: vec!["x".into()],
            target: Some("app".into()),
            ..Asks::default()
        };
        let serialized = serde_json::to_value(&every).unwrap();
        let mut have: Vec<&str> = serialized
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .chain(["pod", "hostNamespaces"])
            .collect();
        let mut listed = ASKS_FIELDS.to_vec();
        have.sort_unstable();
        listed.sort_unstable();
        assert_eq!(have, listed);
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    fn asks_of(pod_json: serde_json::Value) -> Asks {
        let p = pod(pod_json);
        let ec = &p
            .spec
            .as_ref()
            .unwrap()
            .ephemeral_containers
            .as_ref()
            .unwrap()[0];
        Asks::extract(&ContainerParts::from_ephemeral(ec), &p, &PodVolumes::of(&p))
    }

    fn with_ec(ec: serde_json::Value, extra_spec: serde_json::Value) -> serde_json::Value {
        let mut spec = json!({
            "containers": [{"name": "app", "image": "app:1"}],
            "volumes": [
                {"name": "data", "emptyDir": {}},
                {"name": "creds", "secret": {"secretName": "creds"}},
                {"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}},
                {"name": "cfg", "projected": {"sources": [{"configMap": {"name": "c"}}]}},
                {"name": "root", "hostPath": {"path": "//etc/../"}},
                {"name": "vault", "csi": {"driver": "secrets-store.csi.k8s.io", "readOnly": true}},
                {"name": "scratch", "csi": {"driver": "scratch.csi.example.com"}},
                {"name": "kv", "flexVolume": {"driver": "azure/kv"}},
                {"name": "pod-cert", "projected": {"sources": [{"podCertificate": {"signerName": "x"}}, {"configMap": {"name": "c"}}]}},
                {"name": "future", "someNewVolumeSource": {"path": "/x"}},
                {"name": "bundle", "projected": {"sources": [{"clusterTrustBundle": {"path": "ca.pem"}}, {"downwardAPI": {}}]}}
            ],
            "ephemeralContainers": [ec]
        });
        if let (Some(s), Some(extra)) = (spec.as_object_mut(), extra_spec.as_object()) {
            for (k, v) in extra {
                s.insert(k.clone(), v.clone());
            }
        }
        json!({"metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn capabilities_are_normalized_and_deduplicated() {
        let a = asks_of(with_ec(
            json!({"name": "d", "image": "busybox", "securityContext": {"capabilities": {"add": ["sys_ptrace", "CAP_SYS_PTRACE", "NET_ADMIN", "bad name"]}}}),
            json!({}),
        ));
        let caps: Vec<&str> = a.capabilities.iter().map(Capability::as_str).collect();
        assert_eq!(caps, ["NET_ADMIN", "SYS_PTRACE"]);
        assert_eq!(a.invalid_capabilities, ["bad name"]);
        assert_eq!(a.image, "docker.io/library/busybox:latest");
    }

    #[test]
    fn root_follows_pod_and_container_contexts() {
        let cases = [
            (json!({}), json!({}), true),
            (json!({"runAsUser": 0}), json!({}), true),
            (json!({"runAsUser": 1000}), json!({}), false),
            (json!({"runAsNonRoot": true}), json!({}), false),
            (json!({}), json!({"runAsNonRoot": true}), false),
            (json!({}), json!({"runAsUser": 1000}), false),
            (json!({"runAsUser": 0}), json!({"runAsUser": 1000}), true),
            (
                json!({"runAsNonRoot": false}),
                json!({"runAsNonRoot": true}),
                true,
            ),
        ];
        for (sc, pod_sc, want) in cases {
            let a = asks_of(with_ec(
                json!({"name": "d", "image": "busybox", "securityContext": sc}),
                json!({"securityContext": pod_sc}),
            ));
            assert_eq!(a.runs_as_root, want, "{sc} / {pod_sc}");
        }
    }

    #[test]
    fn a_windows_account_other_than_container_user_counts_as_root() {
        let windows = |name: &str| json!({"windowsOptions": {"runAsUserName": name}});
        let non_root = |mut sc: serde_json::Value| {
            sc["runAsNonRoot"] = json!(true);
            sc
        };
        let cases = [
            // The kubelet's runAsNonRoot check refuses only this exact spelling...
            (non_root(windows("ContainerAdministrator")), json!({}), true),
            // ...but Windows account names ignore case, and SYSTEM is above an administrator.
            (non_root(windows("containeradministrator")), json!({}), true),
            (non_root(windows(r"NT AUTHORITY\SYSTEM")), json!({}), true),
            (non_root(windows(r"CONTOSO\svc-web")), json!({}), true),
            // Inherited from the pod when the container names no account.
            (
                json!({"runAsNonRoot": true}),
                windows("ContainerAdministrator"),
                true,
            ),
            // A Windows node ignores runAsUser: the account decides.
            (
                json!({"runAsUser": 1000, "windowsOptions": {"runAsUserName": "ContainerAdministrator"}}),
                json!({}),
                true,
            ),
            (non_root(windows("ContainerUser")), json!({}), false),
            (non_root(windows("containeruser")), json!({}), false),
            // The container's account comes before the pod's.
            (
                non_root(windows("ContainerUser")),
                windows("ContainerAdministrator"),
                false,
            ),
        ];
        for (sc, pod_sc, want) in cases {
            let a = asks_of(with_ec(
                json!({"name": "d", "image": "busybox", "securityContext": sc}),
                json!({"os": {"name": "windows"}, "securityContext": pod_sc}),
            ));
            assert_eq!(a.runs_as_root, want, "{sc} / {pod_sc}");
            assert_eq!(a.asks_root(), want, "{sc} / {pod_sc}");
        }
    }

    #[test]
    fn a_gmsa_credential_spec_is_of_the_privileged_family() {
        for (sc, pod_sc) in [
            (
                json!({"windowsOptions": {"gmsaCredentialSpecName": "webapp1"}}),
                json!({}),
            ),
            (
                json!({"windowsOptions": {"gmsaCredentialSpec": "{}"}}),
                json!({}),
            ),
            // Inherited from the pod, field by field.
            (
                json!({"windowsOptions": {"runAsUserName": "ContainerUser"}}),
                json!({"windowsOptions": {"gmsaCredentialSpecName": "webapp1"}}),
            ),
        ] {
            let a = asks_of(with_ec(
                json!({"name": "d", "image": "busybox", "securityContext": sc}),
                json!({"os": {"name": "windows"}, "securityContext": pod_sc}),
            ));
            assert!(a.gmsa, "{sc} / {pod_sc}");
            assert!(
                a.privileged_family()
                    .iter()
                    .any(|p| p.contains("Active Directory identity")),
                "{sc} / {pod_sc}"
            );
        }
        let a = asks_of(with_ec(
            json!({"name": "d", "image": "busybox", "securityContext": {"windowsOptions": {"runAsUserName": "ContainerUser"}}}),
            json!({"os": {"name": "windows"}}),
        ));
        assert!(!a.gmsa && !a.needs_privileged());
    }

    #[test]
    fn privileged_family() {
        let a = asks_of(with_ec(
            json!({"name": "d", "image": "busybox", "securityContext": {"procMount": "Unmasked", "seccompProfile": {"type": "Unconfined"}}}),
            json!({}),
        ));
        assert!(a.proc_mount_unmasked && a.seccomp_unconfined && !a.privileged);
        assert!(a.needs_privileged());
        let a = asks_of(with_ec(
            json!({"name": "d", "image": "busybox"}),
            json!({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
        ));
        assert!(a.apparmor_unconfined);
        // The container's annotation comes before the pod's field, as in the kubelet.
        let mut annotated = with_ec(
            json!({"name": "d", "image": "busybox"}),
            json!({"securityContext": {"appArmorProfile": {"type": "RuntimeDefault"}}}),
        );
        annotated["metadata"]["annotations"] =
            json!({"container.apparmor.security.beta.kubernetes.io/d": "unconfined"});
        assert!(asks_of(annotated.clone()).apparmor_unconfined);
        // ...and after the container's own field.
        annotated["spec"]["ephemeralContainers"][0]["securityContext"] =
            json!({"appArmorProfile": {"type": "RuntimeDefault"}});
        assert!(!asks_of(annotated).apparmor_unconfined);
        for (sc, pod_sc) in [
            (json!({"seLinuxOptions": {"type": "spc_t"}}), json!({})),
            (json!({}), json!({"seLinuxOptions": {"role": "system_r"}})),
            (json!({"windowsOptions": {"hostProcess": true}}), json!({})),
        ] {
            let a = asks_of(with_ec(
                json!({"name": "d", "image": "busybox", "securityContext": sc}),
                json!({"securityContext": pod_sc}),
            ));
            assert!(a.needs_privileged(), "{sc} {pod_sc}");
        }
        let a = asks_of(with_ec(
            json!({"name": "d", "image": "busybox", "securityContext": {"seLinuxOptions": {"type": "container_t", "level": "s0:c1"}}}),
            json!({}),
        ));
        assert!(!a.needs_privileged());
        let a = asks_of(with_ec(
            json!({"name": "d", "image": "busybox", "securityContext": {"allowPrivilegeEscalation": false}}),
            json!({}),
        ));
        assert!(!a.needs_privileged());
    }

    /// Each mounted volume's name, kind and whether it is read-only.
    fn volume_kinds(a: &Asks) -> Vec<(&str, VolumeKind, bool)> {
        a.volumes
            .iter()
            .map(|v| (v.name.as_str(), v.kind, v.read_only))
            .collect()
    }

    #[test]
    fn volumes_are_classified() {
        let a = asks_of(with_ec(
            json!({"name": "d", "image": "busybox", "volumeMounts": [
                {"name": "data", "mountPath": "/data"},
                {"name": "creds", "mountPath": "/creds", "readOnly": true},
                {"name": "kube-api-access", "mountPath": "/sa", "readOnly": true},
                {"name": "cfg", "mountPath": "/cfg"},
                {"name": "root", "mountPath": "/host", "readOnly": true},
                {"name": "root", "mountPath": "/host2"},
                {"name": "vault", "mountPath": "/vault", "readOnly": true},
                {"name": "scratch", "mountPath": "/scratch"},
                {"name": "kv", "mountPath": "/kv", "readOnly": true},
                {"name": "pod-cert", "mountPath": "/pod-cert"},
                {"name": "future", "mountPath": "/future"},
                {"name": "bundle", "mountPath": "/bundle"}
            ]}),
            json!({}),
        ));
        assert_eq!(
            volume_kinds(&a),
            [
                ("bundle", VolumeKind::NonSecret, false),
                ("cfg", VolumeKind::NonSecret, false),
                ("creds", VolumeKind::Secret, true),
                ("data", VolumeKind::NonSecret, false),
                // A source the 1.33 types drop (podCertificate holds a private key), and a
                // volume of a kind they do not know: what kspy cannot see into is a secret.
                ("future", VolumeKind::Secret, false),
                ("kube-api-access", VolumeKind::Secret, true),
                // A flexVolume's driver, like a CSI driver, may hand out credentials.
                ("kv", VolumeKind::Secret, true),
                ("pod-cert", VolumeKind::Secret, false),
                ("root", VolumeKind::HostPath, false),
                // Any inline CSI volume: most drivers used inline hand out credentials.
                ("scratch", VolumeKind::Secret, false),
                ("vault", VolumeKind::Secret, true),
            ]
        );
        assert_eq!(a.host_paths.len(), 1);
        assert_eq!(a.host_paths[0].host_path.as_ref().unwrap().as_str(), "/");
    }

    #[test]
    fn volume_devices_are_writable_mounts_of_their_volume() {
        let a = asks_of(with_ec(
            json!({"name": "d", "image": "busybox",
            "volumeMounts": [{"name": "cfg", "mountPath": "/cfg", "readOnly": true}],
            "volumeDevices": [
                {"name": "block", "devicePath": "/dev/xvda"},
                {"name": "cfg", "devicePath": "/dev/xvdb"},
                {"name": "creds", "devicePath": "/dev/xvdc"}
            ]}),
            json!({}),
        ));
        assert_eq!(
            volume_kinds(&a),
            [
                // Undeclared in the pod: judged as sensitive, as an undeclared mount is.
                ("block", VolumeKind::Secret, false),
                ("cfg", VolumeKind::NonSecret, false),
                ("creds", VolumeKind::Secret, false),
            ]
        );
    }

    #[test]
    fn a_pod_asks_for_its_host_ports_and_unsafe_sysctls() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "securityContext": {"sysctls": [
                {"name": "net.ipv4.tcp_syncookies", "value": "1"},
                {"name": "kernel.core_pattern", "value": "|/x"},
                {"name": "kernel.core_pattern", "value": "|/y"}
            ]},
            "containers": [{"name": "a", "image": "a", "ports": [
                {"containerPort": 80, "hostPort": 10250}, {"containerPort": 81},
                {"containerPort": 82, "hostPort": 0}]}],
            "initContainers": [{"name": "i", "image": "i", "ports": [
                {"containerPort": 53, "hostPort": 53}, {"containerPort": 54, "hostPort": 10250}]}]
        }}));
        let asks = PodAsks::extract(&p);
        assert_eq!(asks.host_ports, [53, 10250]);
        assert_eq!(asks.unsafe_sysctls, ["kernel.core_pattern"]);
        // An attached container takes over neither: they were the pod's when it was admitted.
        let inherited = PodAsks::inherited(&p);
        assert!(inherited.host_ports.is_empty() && inherited.unsafe_sysctls.is_empty());
    }

    /// The kubelet clones a gitRepo volume's repository on the node when it sets the volume
    /// up: for every one a created pod mounts, and for one of a running pod only when no
    /// container of the pod uses it yet (else it was cloned already).
    #[test]
    fn git_repo_volumes_the_kubelet_sets_up_are_asked_for() {
        let p = pod(json!({"metadata": {"name": "p"}, "spec": {
            "containers": [{"name": "app", "image": "app:1",
                "volumeMounts": [{"name": "used", "mountPath": "/u"}]}],
            "volumes": [
                {"name": "used", "gitRepo": {"repository": "https://git.example.com/a"}},
                {"name": "fresh", "gitRepo": {"repository": "/var/lib/kubelet/pods/x"}}
            ],
            "ephemeralContainers": [{"name": "d", "image": "busybox", "volumeMounts": [
                {"name": "used", "mountPath": "/u"}, {"name": "fresh", "mountPath": "/f"}]}]
        }}));
        let spec = p.spec.as_ref().unwrap();
        let ec = ContainerParts::from_ephemeral(&spec.ephemeral_containers.as_ref().unwrap()[0]);
        let running = Asks::extract(&ec, &p, &PodVolumes::of_running(&p));
        let repos: Vec<(&str, &str)> = running
            .git_repos
            .iter()
            .map(|(v, r)| (v.as_str(), r.as_str()))
            .collect();
        assert_eq!(repos, [("fresh", "/var/lib/kubelet/pods/x")]);
        let created = Asks::extract(
            &ContainerParts::from_container(&spec.containers[0]),
            &p,
            &PodVolumes::of(&p),
        );
        assert_eq!(created.git_repos.len(), 1);
        assert!(created.git_repos.contains_key("used"));
    }

    #[test]
    fn env_from_secrets() {
        let a = asks_of(with_ec(
            json!({"name": "d", "image": "busybox",
                "env": [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}, {"name": "B", "value": "x"}],
                "envFrom": [{"secretRef": {"name": "s2"}}, {"configMapRef": {"name": "c"}}]}),
            json!({}),
        ));
        assert_eq!(a.env_from_secrets, ["s1", "s2"]);
    }

    #[test]
    fn hostile_images_are_kept_as_errors() {
        let a = asks_of(with_ec(
            json!({"name": "d", "image": "Registry.Example.com/../x"}),
            json!({}),
        ));
        assert!(a.image_ref.is_none());
        assert!(a.image_error.is_some());
    }
}
