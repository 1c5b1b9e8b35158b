//! Each thing a subject asks for, as one item a grant must cover.
//!
//! `asks.rs` reads a container's spec into fields ([`crate::asks::Asks`]); here those fields
//! (and the pod-level asks, and what the subject reaches in its process namespace) become a
//! flat list of [`Ask`]s ([`Ask::list`]), each with whether a policy's grant covers it
//! ([`Ask::granted_by`]) and the phrase a denial names it by (its `Display`).
//!
//! It is separate from `decide.rs` so that the verdict procedure (which policies apply, which
//! validations fail, which asks no policy grants) reads without the catalogue of what can be
//! asked, and a new kind of ask is added in one place.

use crate::asks::{VolumeAsk, VolumeKind, WindowsAdmin};
use crate::capability::Capability;
use crate::classify::{Action, DebugRequest, Subject};
use crate::policy::compiled::CompiledPolicy;
use crate::user_reach::UserReach;

/// One thing a subject asks for, as judged against grants.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ask {
    Image(String),
    InvalidImage(String),
    /// The image of an `image` volume the subject mounts, which the kubelet pulls for it: the
    /// subject can run what it holds, so it needs an image grant as the subject's own image
    /// does. `error` says why the reference is invalid, when it is (never granted).
    VolumeImage {
        volume: String,
        image: String,
        error: Option<String>,
    },
    Capability(Capability),
    InvalidCapability(String),
    /// Running as root; on Windows as an administrator, said as such.
    RunAsRoot(Option<WindowsAdmin>),
    /// Running as another user without `allowPrivilegeEscalation: false`: a setuid-root
    /// program in the image makes the process root (with the container's capabilities), so
    /// only a grant of root covers it.
    MayBecomeRoot,
    Privileged(&'static str),
    Volume(String, VolumeKind),
    EnvFromSecret(String),
    /// A DRA resource claim the subject uses (`resources.claims`): devices a driver prepares,
    /// with what their CDI specs add, which kspy cannot see into. Granted by `mountVolumes:
    /// all`, as an inline CSI volume is.
    ResourceClaim(String),
    HostPath {
        volume: String,
        path: Option<String>,
        read_only: bool,
        writable_below: bool,
        /// The volume's `type` when the mount is read-only but the kubelet creates the path
        /// on the node for it (`DirectoryOrCreate`, `FileOrCreate`), which writes the node.
        created: Option<String>,
    },
    HostNamespace(&'static str),
    /// A host namespace an attached container shares with its pod.
    InheritedHostNamespace(&'static str),
    /// What a container the subject may trace holds (a capability, a member of the privileged
    /// family, root, a mounted volume, a Secret in its environment), which the subject reaches
    /// by tracing its processes.
    ThroughTracing {
        container: String,
        ask: Box<Ask>,
        /// `None` by SYS_PTRACE; otherwise how it reaches the container's processes as their
        /// user, without it.
        as_user: Option<UserReach>,
    },
    /// SYS_PTRACE (or ALL) in the node's process namespace: every process on the node can be
    /// traced and taken over, the kubelet's and the container runtime's included, which is
    /// what `privileged: true` gives. Granted by `privileged` only.
    TracingHostProcesses,
    /// Running as root (or able to become root) in the node's process namespace, without
    /// SYS_PTRACE: the kernel opens the files and environment of a process
    /// (`/proc/PID/root`, `/proc/PID/environ`) to one of the same user holding every
    /// capability it holds, so root reaches every container on the node running as root with
    /// no more than the runtime's defaults, and holding SETUID every user's, their Secret
    /// mounts and service-account tokens included. kspy cannot see those pods, so it judges
    /// this as mounting Secrets: granted by `mountVolumes: all`.
    ReadingHostProcesses,
    /// A `hostPort` of a copy or node pod: it binds a port of the node. Granted by
    /// `privileged`, as Pod Security's baseline level forbids it.
    HostPort(i32),
    /// A sysctl outside Kubernetes' safe set on a copy or node pod. Granted by `privileged`.
    UnsafeSysctl(String),
    /// A `gitRepo` volume the kubelet sets up for the subject: it runs `git clone` of the
    /// repository the volume names on the node, as root, from the node's network and file
    /// system (a local path reaches other pods' repositories, CVE-2025-1767, unfixed upstream).
    /// Granted by `privileged`, as the kubelet's calls for probe hosts are.
    GitRepo {
        volume: String,
        repository: String,
    },
    /// A host a probe or lifecycle hook of a copy or node pod names, which the kubelet calls
    /// from the node's network. Granted by `privileged`, as Pod Security's baseline level
    /// forbids it.
    ProbeHost(String),
}

impl std::fmt::Display for Ask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ask::Image(i) => write!(f, "image {i}"),
            Ask::InvalidImage(e) => write!(f, "{e}"),
            Ask::VolumeImage {
                volume,
                error: Some(e),
                ..
            } => write!(f, "image volume {volume:?}: {e}"),
            Ask::VolumeImage { volume, image, .. } => write!(
                f,
                "image {image} (of image volume {volume:?}, whose files the container can run)"
            ),
            Ask::Capability(c) => write!(f, "capability {c}"),
            Ask::InvalidCapability(c) => write!(f, "capability {c:?} (not a capability name)"),
            Ask::RunAsRoot(None) => write!(f, "running as root"),
            Ask::RunAsRoot(Some(admin)) => write!(f, "{admin}"),
            Ask::MayBecomeRoot => write!(
                f,
                "becoming root through a setuid program (allowPrivilegeEscalation is not false; \
                 set it to false to run as the user given)"
            ),
            Ask::Privileged(what) => write!(f, "{what}"),
            Ask::Volume(v, VolumeKind::Secret) => write!(f, "mounting secret volume {v:?}"),
            Ask::Volume(v, _) => write!(f, "mounting volume {v:?}"),
            Ask::EnvFromSecret(s) => write!(f, "environment from secret {s:?}"),
            Ask::ResourceClaim(c) => write!(
                f,
                "resource claim {c:?} (resources.claims: devices a DRA driver prepares, with the \
                 mounts and environment their CDI specs add, which kspy cannot see into, judged \
                 as a secret volume is)"
            ),
            Ask::HostPath {
                volume,
                path: Some(p),
                read_only,
                writable_below,
                created,
            } => write!(
                f,
                "hostPath {p} (volume {volume:?}, {})",
                if *read_only {
                    "read-only"
                } else if let Some(kind) = created {
                    // Say why a read-only mount is judged as a write, and what would not be.
                    return write!(
                        f,
                        "hostPath {p} (volume {volume:?}, mounted read-only, but type {kind} \
                         has the kubelet create the path on the node when it is missing, which \
                         writes the node; a read-only grant covers type Directory, File or none)"
                    );
                } else if *writable_below {
                    // A read-only grant does not cover it; say why, and what would.
                    "read-only at its top but writable below: recursiveReadOnly: Disabled; \
                     a read-only grant needs IfPossible or Enabled"
                } else {
                    "read-write"
                }
            ),
            Ask::HostPath {
                volume, path: None, ..
            } => write!(f, "hostPath volume {volume:?} with an invalid path"),
            Ask::HostNamespace(ns) => write!(f, "host {ns} namespace"),
            Ask::ThroughTracing {
                container,
                ask,
                as_user: Some(how),
            } => write!(
                f,
                "{ask} ({} by container {container:?}: {})",
                if matches!(**ask, Ask::HostPath { .. } | Ask::Volume(..)) {
                    "mounted"
                } else {
                    "held"
                },
                how.explain(container)
            ),
            Ask::ThroughTracing {
                container,
                ask,
                as_user: None,
            } => write!(
                f,
                "{ask} ({} by container {container:?}, whose processes SYS_PTRACE lets the debug container trace and take over)",
                if matches!(**ask, Ask::HostPath { .. } | Ask::Volume(..)) {
                    "mounted"
                } else {
                    "held"
                }
            ),
            Ask::HostPort(port) => write!(
                f,
                "hostPort {port} (binds that port of the node, which Pod Security's baseline forbids)"
            ),
            Ask::ProbeHost(host) => write!(
                f,
                "a probe or lifecycle hook calling host {host} (the kubelet calls it from the \
                 node's network, which Pod Security's baseline forbids; leave host unset to \
                 call the pod)"
            ),
            Ask::GitRepo { volume, repository } => write!(
                f,
                "gitRepo volume {volume:?} (the kubelet clones {repository:?} on the node, as \
                 root, from the node's network and file system, where a local path reaches \
                 other pods' repositories (CVE-2025-1767); clone in an init container instead)"
            ),
            Ask::UnsafeSysctl(name) => write!(
                f,
                "sysctl {name} (not among Kubernetes' safe sysctls: it reaches the node's kernel)"
            ),
            Ask::ReadingHostProcesses => write!(
                f,
                "reading other containers' files and environment on the node (as root in the \
                 node's pid namespace, through /proc)"
            ),
            Ask::TracingHostProcesses => write!(
                f,
                "tracing the node's processes (SYS_PTRACE in the host pid namespace reaches \
                 every process on the node, the kubelet and the container runtime included, \
                 as privileged: true does)"
            ),
            Ask::InheritedHostNamespace(ns) => write!(
                f,
                "host {ns} namespace (the pod has {}: true, and the debug container shares it)",
                match *ns {
                    "pid" => "hostPID",
                    "network" => "hostNetwork",
                    _ => "hostIPC",
                }
            ),
        }
    }
}

impl Ask {
    /// Everything a subject asks for, pod-level asks included.
    pub fn list(subject: &Subject, request: &DebugRequest) -> Vec<Ask> {
        let a = &subject.asks;
        let mut out = Vec::new();
        match (&a.image_ref, &a.image_error) {
            (Some(i), _) => out.push(Ask::Image(i.to_string())),
            (None, e) => out.push(Ask::InvalidImage(
                e.clone().unwrap_or_else(|| "no image".into()),
            )),
        }
        out.extend(a.volume_images.iter().map(|v| Ask::VolumeImage {
            volume: v.volume.clone(),
            image: v.image.clone(),
            error: v.image_error.clone(),
        }));
        out.extend(a.capabilities.iter().cloned().map(Ask::Capability));
        out.extend(
            a.invalid_capabilities
                .iter()
                .map(|c| Ask::InvalidCapability(c.clone())),
        );
        if a.runs_as_root {
            out.push(Ask::RunAsRoot(a.windows_admin.clone()));
        } else if a.may_escalate && !a.privileged {
            out.push(Ask::MayBecomeRoot);
        }
        out.extend(a.privileged_family().into_iter().map(Ask::Privileged));
        for traced in &a.traced {
            let through = |ask: Ask| Ask::ThroughTracing {
                container: traced.name.clone(),
                ask: Box::new(ask),
                as_user: traced.as_user,
            };
            out.extend(
                traced
                    .capabilities
                    .iter()
                    .cloned()
                    .map(Ask::Capability)
                    .map(through),
            );
            out.extend(
                traced
                    .privileged
                    .iter()
                    .copied()
                    .map(Ask::Privileged)
                    .map(through),
            );
            if traced.runs_as_root {
                // Never a Windows pod: no container there joins another's processes.
                out.push(through(Ask::RunAsRoot(None)));
            }
            out.extend(
                traced
                    .volumes
                    .iter()
                    .map(|(name, kind)| through(Ask::Volume(name.clone(), *kind))),
            );
            out.extend(
                traced
                    .env_from_secrets
                    .iter()
                    .map(|s| through(Ask::EnvFromSecret(s.clone()))),
            );
            // Mounted by a container of the pod, the path was set up (created) with it.
            out.extend(
                traced
                    .host_paths
                    .iter()
                    .map(|v| Ask::host_path(v, None))
                    .map(through),
            );
        }
        out.extend(a.git_repos.iter().map(|(volume, repository)| Ask::GitRepo {
            volume: volume.clone(),
            repository: repository.clone(),
        }));
        for v in &a.volumes {
            if v.kind == VolumeKind::HostPath {
                out.push(Ask::host_path(v, a.host_paths_created.get(&v.name)));
            } else {
                out.push(Ask::Volume(v.name.clone(), v.kind));
            }
        }
        out.extend(
            a.env_from_secrets
                .iter()
                .map(|s| Ask::EnvFromSecret(s.clone())),
        );
        out.extend(a.resource_claims.iter().cloned().map(Ask::ResourceClaim));
        if a.may_trace() && !a.privileged && request.pod.host_pid {
            out.push(Ask::TracingHostProcesses);
        } else if a.asks_root() && !a.privileged && request.pod.host_pid {
            out.push(Ask::ReadingHostProcesses);
        }
        out.extend(request.pod.host_ports.iter().copied().map(Ask::HostPort));
        out.extend(
            request
                .pod
                .unsafe_sysctls
                .iter()
                .cloned()
                .map(Ask::UnsafeSysctl),
        );
        out.extend(request.pod.probe_hosts.iter().cloned().map(Ask::ProbeHost));
        let host_namespace = if request.action == Action::Attach {
            Ask::InheritedHostNamespace
        } else {
            Ask::HostNamespace
        };
        out.extend(
            request
                .pod
                .host_namespaces()
                .into_iter()
                .map(host_namespace),
        );
        out
    }

    /// The ask of mounting the hostPath volume `v`, whose path the kubelet creates on the node
    /// for it when `created` names the volume's type.
    fn host_path(v: &VolumeAsk, created: Option<&String>) -> Ask {
        Ask::HostPath {
            volume: v.name.clone(),
            path: v.host_path.as_ref().map(|p| p.to_string()),
            read_only: v.read_only,
            writable_below: v.writable_below,
            created: created.cloned(),
        }
    }

    /// True when `p`'s grant covers this ask.
    pub fn granted_by(&self, p: &CompiledPolicy, subject: &Subject) -> bool {
        let g = &p.grant;
        let a = &subject.asks;
        match self {
            Ask::Image(_) => a.image_ref.as_ref().is_some_and(|i| g.covers_image(i)),
            Ask::InvalidImage(_) | Ask::InvalidCapability(_) => false,
            Ask::VolumeImage { volume, .. } => a
                .volume_images
                .iter()
                .find(|v| &v.volume == volume)
                .and_then(|v| v.image_ref.as_ref())
                .is_some_and(|i| g.covers_image(i)),
            Ask::Capability(c) => g.covers_capability(c),
            Ask::RunAsRoot(_) | Ask::MayBecomeRoot => g.run_as_root,
            Ask::Privileged(_)
            | Ask::TracingHostProcesses
            | Ask::HostPort(_)
            | Ask::UnsafeSysctl(_)
            | Ask::ProbeHost(_)
            | Ask::GitRepo { .. } => g.privileged,
            Ask::Volume(_, kind) => g.covers_volume(*kind),
            Ask::EnvFromSecret(_) | Ask::ResourceClaim(_) | Ask::ReadingHostProcesses => {
                g.mount_volumes == crate::policy::spec::VolumeGrant::All
            }
            Ask::HostPath { volume, .. } => a
                .volumes
                .iter()
                .find(|v| &v.name == volume)
                .is_some_and(|v| g.covers_host_path(v)),
            Ask::HostNamespace(ns) | Ask::InheritedHostNamespace(ns) => g.covers_host_namespace(ns),
            // A host path is the traced container's mount, not one of the subject's own.
            Ask::ThroughTracing { container, ask, .. } => match &**ask {
                Ask::HostPath { volume, .. } => a
                    .traced
                    .iter()
                    .filter(|t| &t.name == container)
                    .flat_map(|t| &t.host_paths)
                    .find(|v| &v.name == volume)
                    .is_some_and(|v| g.covers_host_path(v)),
                _ => ask.granted_by(p, subject),
            },
        }
    }
}
