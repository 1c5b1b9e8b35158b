//! `kspy copy POD --to NAME`: a debug copy of a pod, as `kubectl debug --copy-to`, with a
//! debug container, optional image swaps, and `--fork`, the CrashLoopBackOff recipe.
//!
//! Requests: `GET` of the pod, a SelfSubjectReview (who is asking, for the annotation), the
//! `POST` of the copy, with `--replace` the `DELETE` of the original (asked first with a dry
//! run, before the `POST`), then wait and attach.

use std::collections::BTreeMap;
use std::process::ExitCode;

use k8s_openapi::api::core::v1::{Container, Lifecycle, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::args::{DebugArgs, DryRun, TargetArgs};
use crate::cluster::{Cluster, ClusterArgs};
use crate::container::{
    BuildError, ContainerSpecBuilder, TakenBy, TargetChoice, generate_name, resolve_target,
    used_names,
};
use crate::errors::{Action, KspyError};
use crate::output;
use crate::patch::{PlannedRequest, create_pod, delete_pod};
use crate::profile::{KeepFlags, Profile, Style, strip_copy};
use crate::session;

/// The label on every pod kspy creates; `copy` or `node`.
pub const DEBUG_LABEL: &str = "kspy.dev/debug";
/// Annotation naming the pod a copy was made from.
pub const SOURCE_POD_ANNOTATION: &str = "kspy.dev/source-pod";
/// Annotation naming the user who asked, when the cluster can tell.
pub const REQUESTED_BY_ANNOTATION: &str = "kspy.dev/requested-by";
/// Annotation carrying `--reason` on a debug copy.
pub const REASON_ANNOTATION: &str = "kspy.dev/reason";
/// Annotation naming a debug copy's debug container, which `kspy ls` shows: the copy also
/// holds the source pod's containers, and nothing else tells them apart. The webhook reads it
/// too (the source pod's containers keep the users their images pick).
pub const DEBUG_CONTAINER_ANNOTATION: &str = kspy_admission::classify::DEBUG_CONTAINER_ANNOTATION;
/// What `--fork` runs instead of the target container's command: a long sleep, so the
/// container stays up for inspection instead of crashing again.
pub const FORK_COMMAND: [&str; 2] = ["sleep", "2147483647"];

fn parse_set_image(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        // The image is checked as --image's is: one with a space was sent, and refused by the
        // API server only after the copy's request was built and the source pod read.
        Some((c, i)) if !c.is_empty() && !i.is_empty() => {
            let image = crate::args::parse_image(i).map_err(|why| format!("{s:?}: {why}"))?;
            Ok((c.to_string(), image))
        }
        _ => Err(format!(
            "{s:?}: expected CONTAINER=IMAGE (\"*\" for every container)"
        )),
    }
}

/// `kspy copy` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CopyArgs {
    /// The pod to copy
    #[arg(value_name = "POD", value_parser = crate::args::parse_object_name)]
    pub pod: String,
    /// Name of the copy
    #[arg(long = "to", visible_alias = "copy-to", value_name = "NAME",
          value_parser = crate::args::parse_object_name)]
    pub to: String,
    /// Cluster, context and namespace.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The container being debugged.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The debug container and its session.
    #[command(flatten)]
    pub debug: DebugArgs,
    /// Share one process namespace between the copy's containers (--share-processes=false to
    /// not) [default: true, unless the pod sets shareProcessNamespace itself, uses hostPID or
    /// runs Windows]
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub share_processes: Option<bool>,
    /// Schedule the copy on the original pod's node
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub same_node: bool,
    /// Change a container's image in the copy, CONTAINER=IMAGE ("*" for all; repeatable);
    /// without --image the copy gets no debug container
    #[arg(long = "set-image", value_name = "CONTAINER=IMAGE", value_parser = parse_set_image,
          action = clap::ArgAction::Append)]
    pub set_image: Vec<(String, String)>,
    /// Delete the original pod once the copy is created
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub replace: bool,
    /// CrashLoopBackOff recipe: drop labels, annotations and probes, restartPolicy Never, and
    /// replace the target container's command with `sleep 2147483647` (and drop its postStart
    /// hook, which would fail without the app and get the container killed) — its image must
    /// have a `sleep` (distroless and scratch images have none: give that container another
    /// image with --set-image CONTAINER=IMAGE). The target may be a sidecar (an init container
    /// with restartPolicy Always), not another init container: asleep, it would never complete
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub fork: bool,
    /// Keep the original labels (a ReplicaSet, DaemonSet or Job whose pod it is then adopts
    /// the copy, and may delete it)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub keep_labels: bool,
    /// Keep the original annotations
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub keep_annotations: bool,
    /// Keep liveness probes
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub keep_liveness: bool,
    /// Keep readiness probes
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub keep_readiness: bool,
    /// Keep startup probes
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub keep_startup: bool,
    /// Run the init containers in the copy (--keep-init-containers=false to drop them)
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value_t = true, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub keep_init_containers: bool,
}

/// The flags of the debug container given to a copy that gets none: `--set-image` without
/// `--image` only swaps images (as in kubectl debug), so these would be ignored. `--profile`,
/// `--reason` and `-c` still apply to the copy itself (the profile's pod changes, the
/// `kspy.dev/reason` annotation, the container `--fork` puts to sleep).
pub fn flags_without_debug_container(args: &CopyArgs) -> Vec<&'static str> {
    let (d, t) = (&args.debug, &args.target);
    if args.set_image.is_empty() || d.image.is_some() {
        return Vec::new();
    }
    [
        (d.name.is_some(), "--name"),
        (!d.caps.is_empty(), "--cap"),
        (d.custom.is_some(), "--custom"),
        (!d.env.is_empty(), "--env"),
        (d.image_pull_policy.is_some(), "--image-pull-policy"),
        (d.stdin, "-i/--stdin"),
        (d.tty, "-t/--tty"),
        (d.attach == Some(true), "--attach"),
        (d.wait, "--wait"),
        (d.arguments_only, "--arguments-only"),
        (!t.mounts.is_empty(), "--mount"),
        (t.mount_target, "--mount-target"),
        (t.env_from_target, "--env-from-target"),
        (t.as_target_user, "--as-target-user"),
        (!d.command.is_empty(), "-- COMMAND"),
    ]
    .into_iter()
    .filter_map(|(given, flag)| given.then_some(flag))
    .collect()
}

/// Everything `build_copy` needs besides the source pod.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Name of the copy.
    pub to: String,
    /// `--share-processes`, when given ([`share_process_namespace`]).
    pub share_processes: Option<bool>,
    /// `--same-node`.
    pub same_node: bool,
    /// `--set-image` pairs.
    pub set_image: Vec<(String, String)>,
    /// `--fork`.
    pub fork: bool,
    /// `--keep-*`.
    pub keep: KeepFlags,
    /// `--profile`.
    pub profile: Profile,
    /// The container `--fork` puts to sleep.
    pub target: Option<String>,
    /// The user asking, for the annotation.
    pub requested_by: Option<String>,
    /// `--reason`, also kept as the `kspy.dev/reason` annotation: a copy's containers are
    /// the source pod's, so policies read the reason from the pod.
    pub reason: Option<String>,
}

/// The copy's `shareProcessNamespace`: `--share-processes` (`flag`) when given, as kubectl;
/// without it, true when `source` leaves it unset, does not use `hostPID` and does not run
/// Windows, else the source's own (an explicit `false` stays).
///
/// An explicit true for a `hostPID` pod is refused: the API server refuses
/// `shareProcessNamespace` together with `hostPID`. So is any explicit value for a Windows pod
/// (`spec.os.name: windows`), where the API server refuses the field itself, true or false
/// ("cannot be set for a windows pod"); kubectl debug --copy-to always sets it, and so cannot
/// copy a Windows pod at all.
pub fn share_process_namespace(
    source: &Pod,
    flag: Option<bool>,
) -> Result<Option<bool>, BuildError> {
    let spec = source.spec.as_ref();
    let own = spec.and_then(|s| s.share_process_namespace);
    let host_pid = spec.and_then(|s| s.host_pid) == Some(true);
    let windows = spec.is_some_and(crate::profile::runs_windows);
    match flag {
        Some(given) if windows => Err(BuildError::InvalidFlag {
            flag: "--share-processes",
            value: given.to_string(),
            why: format!(
                "pod {} runs Windows (spec.os.name: windows), where the API server refuses \
                 shareProcessNamespace, true or false; leave out --share-processes (Windows \
                 containers do not share a process namespace)",
                source.metadata.name.as_deref().unwrap_or_default()
            ),
        }),
        Some(true) if host_pid => Err(BuildError::InvalidFlag {
            flag: "--share-processes",
            value: "true".to_string(),
            why: format!(
                "pod {} uses hostPID, and the API server refuses shareProcessNamespace together \
                 with hostPID; leave out --share-processes (the copy's containers share the \
                 node's process namespace then)",
                source.metadata.name.as_deref().unwrap_or_default()
            ),
        }),
        Some(given) => Ok(Some(given)),
        None if own.is_none() && !host_pid && !windows => Ok(Some(true)),
        None => Ok(own),
    }
}

/// The prefix of the annotations a kubelet puts on the mirror pod of a static pod.
const KUBELET_CONFIG_ANNOTATIONS: &str = "kubernetes.io/config.";

/// Builds the copy of `source` with the debug container `debug` (none with `None`).
pub fn build_copy(
    source: &Pod,
    opts: &CopyOptions,
    debug: Option<&ContainerSpecBuilder>,
) -> Result<Pod, BuildError> {
    let source_name = source.metadata.name.clone().unwrap_or_default();
    let mut spec = source.spec.clone().unwrap_or_default();
    spec.ephemeral_containers = None;
    if !opts.same_node {
        spec.node_name = None;
    }
    spec.share_process_namespace = share_process_namespace(source, opts.share_processes)?;

    let names: Vec<String> = spec.containers.iter().map(|c| c.name.clone()).collect();
    for (container, _) in &opts.set_image {
        if container != "*" && !names.contains(container) {
            return Err(BuildError::UnknownContainer {
                flag: "--set-image",
                pod: source_name.clone(),
                wanted: container.clone(),
                existing: names.clone(),
            });
        }
    }
    for c in &mut spec.containers {
        let image = opts
            .set_image
            .iter()
            .rev()
            .find(|(n, _)| n == &c.name)
            .or_else(|| opts.set_image.iter().rev().find(|(n, _)| n == "*"));
        if let Some((_, image)) = image {
            c.image = Some(image.clone());
        }
    }

    let mut pod = Pod {
        metadata: ObjectMeta {
            name: Some(opts.to.clone()),
            namespace: source.metadata.namespace.clone(),
            labels: source.metadata.labels.clone(),
            annotations: source.metadata.annotations.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    };

    let style = Style::Copy(opts.keep);
    let mut debug_name = String::new();
    if let Some(builder) = debug {
        let c = builder.build(style, Some(source), opts.target.as_deref())?;
        if let Some(spec) = pod.spec.as_mut() {
            if used_names(spec).contains(&c.name) {
                return Err(BuildError::NameTaken {
                    name: c.name.clone(),
                    pod: opts.to.clone(),
                    // A copy has no ephemeral containers: the name is one of the pod's own.
                    taken_by: TakenBy::PodsOwn,
                });
            }
            debug_name = c.name.clone();
            spec.containers.push(c);
        }
    }
    opts.profile.apply_pod(style, &mut pod, &debug_name);

    if opts.fork {
        strip_copy(&mut pod, opts.keep);
        if let Some(spec) = pod.spec.as_mut() {
            spec.restart_policy = Some("Never".to_string());
            // With restartPolicy Never the API server requires every resize policy to be
            // NotRequired: a container restarted to resize would never run again.
            let containers = spec
                .containers
                .iter_mut()
                .chain(spec.init_containers.iter_mut().flatten());
            for policy in containers.flat_map(|c| c.resize_policy.iter_mut().flatten()) {
                policy.restart_policy = "NotRequired".to_string();
            }
            put_to_sleep(spec, source, opts)?;
        }
    }

    // What kspy sets says who asked for this copy, and why: a value the source carries (itself
    // a copy, or annotated by hand) would be stale — another requester, another reason, which
    // a policy reading `kspy.dev/reason` would accept — when kspy has none of its own.
    // The kubelet's own (`kubernetes.io/config.mirror`, `.hash`, `.source`, `.seen`) say the
    // source is a static pod's mirror; on a copy they would make every kubelet take it for one
    // too, never run it, and delete it as an orphaned mirror (the legacy profile and
    // --keep-annotations keep the source's annotations).
    if let Some(annotations) = pod.metadata.annotations.as_mut() {
        for key in [
            SOURCE_POD_ANNOTATION,
            REQUESTED_BY_ANNOTATION,
            REASON_ANNOTATION,
            DEBUG_CONTAINER_ANNOTATION,
        ] {
            annotations.remove(key);
        }
        annotations.retain(|key, _| !key.starts_with(KUBELET_CONFIG_ANNOTATIONS));
    }
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(DEBUG_LABEL.to_string(), "copy".to_string());
    let annotations = pod.metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(SOURCE_POD_ANNOTATION.to_string(), source_name);
    if !debug_name.is_empty() {
        annotations.insert(DEBUG_CONTAINER_ANNOTATION.to_string(), debug_name);
    }
    if let Some(user) = &opts.requested_by {
        annotations.insert(REQUESTED_BY_ANNOTATION.to_string(), user.clone());
    }
    if let Some(reason) = &opts.reason {
        annotations.insert(REASON_ANNOTATION.to_string(), reason.clone());
    }
    Ok(pod)
}

/// `--fork`'s own change: the container `opts.target` names (else the first) runs
/// [`FORK_COMMAND`] instead of its command, and without its `postStart` hook, in `spec`, the
/// copy of `source`.
///
/// The hook goes because it runs beside the new command, not the app: one that talks to the
/// app fails, and the kubelet then kills the container (`FailedPostStartHook`), which with
/// `restartPolicy: Never` never runs again — the copy made to stay up would end at once.
///
/// A sidecar (an init container with `restartPolicy: Always`) runs beside the others and is put
/// to sleep like them, its probes dropped as theirs are (`--keep-*` keeps them). Any other init
/// container is refused ([`BuildError::ForkInitContainer`]): the pod's containers, the debug
/// container among them, start only after it completes, and a sleeping one never does.
fn put_to_sleep(spec: &mut PodSpec, source: &Pod, opts: &CopyOptions) -> Result<(), BuildError> {
    let Some(target) = opts
        .target
        .clone()
        .or_else(|| spec.containers.first().map(|c| c.name.clone()))
    else {
        return Ok(());
    };
    let sleep = |c: &mut Container| {
        c.command = Some(FORK_COMMAND.iter().map(|s| s.to_string()).collect());
        c.args = None;
        if let Some(lifecycle) = c.lifecycle.as_mut() {
            lifecycle.post_start = None;
            if *lifecycle == Lifecycle::default() {
                c.lifecycle = None;
            }
        }
    };
    if let Some(c) = spec.containers.iter_mut().find(|c| c.name == target) {
        sleep(c);
        return Ok(());
    }
    let init = spec.init_containers.iter_mut().flatten();
    if let Some(c) = init.into_iter().find(|c| c.name == target) {
        if c.restart_policy.as_deref() == Some("Always") {
            sleep(c);
            if !opts.keep.liveness {
                c.liveness_probe = None;
            }
            if !opts.keep.readiness {
                c.readiness_probe = None;
            }
            if !opts.keep.startup {
                c.startup_probe = None;
            }
            return Ok(());
        }
        return Err(fork_init_container(source, &target, false));
    }
    // Named (it is the source pod's) but no longer in the copy: --keep-init-containers=false
    // dropped it.
    let in_source = source
        .spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten())
        .any(|c| c.name == target);
    if in_source {
        return Err(fork_init_container(source, &target, true));
    }
    Ok(())
}

fn fork_init_container(source: &Pod, container: &str, dropped: bool) -> BuildError {
    let spec = source.spec.as_ref();
    BuildError::ForkInitContainer {
        container: container.to_string(),
        pod: source.metadata.name.clone().unwrap_or_default(),
        dropped,
        image: spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten())
            .find(|c| c.name == container)
            .and_then(|c| c.image.clone())
            .unwrap_or_default(),
        containers: spec
            .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default(),
    }
}

/// What `--fork` assumes and kspy cannot check without pulling the image: that the image of
/// the container it puts to sleep has a `sleep` ([`FORK_COMMAND`]). Distroless and scratch
/// images have none, and the container then fails with StartError. The note names the
/// container and its image in the copy (after `--set-image`) and the way out; `None` without
/// `--fork`.
pub fn fork_note(copy: &Pod, opts: &CopyOptions) -> Option<String> {
    if !opts.fork {
        return None;
    }
    let spec = copy.spec.as_ref()?;
    let containers = &spec.containers;
    // The container put_to_sleep chose: a sidecar (init container) too.
    let sleeping = match &opts.target {
        Some(t) => containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| &c.name == t)?,
        None => containers.first()?,
    };
    Some(format!(
        "--fork runs `{}` in container {} instead of its command: its image ({}) must have a \
         `sleep`; distroless and scratch images have none, and the container would fail with \
         StartError. If so, give it one that has, with --set-image {}=IMAGE",
        FORK_COMMAND.join(" "),
        sleeping.name,
        sleeping.image.as_deref().unwrap_or("none"),
        sleeping.name
    ))
}

/// The controllers that adopt a pod without an owner their selector matches (their controller
/// reference manager claims orphans). A StatefulSet adopts only pods named as its own
/// (`NAME-ORDINAL`), which a copy is not.
const ADOPTING_CONTROLLERS: [&str; 4] = ["ReplicaSet", "ReplicationController", "DaemonSet", "Job"];

/// What `--keep-labels` does to a copy of a pod a controller owns: the copy, which kspy creates
/// without `ownerReferences`, still carries every label the controller's selector reads, so the
/// controller adopts it as one of its pods — a ReplicaSet then has one pod too many and deletes
/// the one it ranks lowest, which a copy still starting is; a Job counts its exit as one of
/// its own. The note names the controller; `None` when the copy does not keep the source's
/// labels (the default, or the legacy profile) or no adopting controller owns the source.
pub fn adoption_note(source: &Pod, copy: &Pod) -> Option<String> {
    let owner = source
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true) && ADOPTING_CONTROLLERS.contains(&o.kind.as_str()))?;
    let labels = source.metadata.labels.as_ref().filter(|l| !l.is_empty())?;
    let kept = copy.metadata.labels.as_ref()?;
    if labels
        .iter()
        .filter(|(k, _)| k.as_str() != DEBUG_LABEL)
        .any(|(k, v)| kept.get(k) != Some(v))
    {
        return None;
    }
    let consequence = if owner.kind == "Job" {
        "count the copy as one of its pods: its exit would count as the Job's success or failure"
    } else {
        "then hold one pod too many and delete one, most likely the copy while it starts"
    };
    Some(format!(
        "--keep-labels keeps the labels {} {} selects its pods by, and a controller adopts any \
         pod without an owner that its selector matches: it will take the copy as its own and \
         {consequence}. Leave out --keep-labels unless that is what you want",
        owner.kind, owner.name
    ))
}

/// The error when the copy `to` was created (or admitted, in a server dry run) but the
/// original `pod` could not be deleted (`err`): the copy is not left unmentioned.
/// `flags`: the cluster flags given, repeated in the command it suggests
/// ([`crate::cluster::ClusterArgs::repeated`]).
fn replace_failed(
    err: KspyError,
    ns: &str,
    flags: &str,
    to: &str,
    pod: &str,
    dry: bool,
) -> KspyError {
    let (created, cleanup) = if dry {
        ("the server dry run admitted pod", String::new())
    } else {
        (
            "created pod",
            format!(
                "; pod {ns}/{to} is running beside it: delete it with \
                 `kubectl delete pod {to} -n {ns}{flags}` if you do not want both"
            ),
        )
    };
    let then = match &err.hint {
        Some(h) => format!("{h}{cleanup}"),
        None => format!("the original pod {ns}/{pod} is still there{cleanup}"),
    };
    KspyError {
        headline: format!(
            "{created} {ns}/{to} (a debug copy of {pod}), but {}",
            err.headline
        ),
        hint: Some(then),
        ..err
    }
}

/// Runs `kspy copy`.
pub async fn run(args: CopyArgs) -> Result<ExitCode, KspyError> {
    let d = &args.debug;
    d.hold_warnings_for_verdict();
    let cluster = Cluster::connect(&args.cluster).await?;
    let ns = cluster.namespace.clone();
    let source = cluster.get_pod(&args.pod).await?;
    // Refused before any other request; `build_copy` uses the same answer.
    share_process_namespace(&source, args.share_processes)?;
    let target = match resolve_target(&source, args.target.target.as_deref())? {
        TargetChoice::Named(n) | TargetChoice::Picked { name: n, .. } => n,
        TargetChoice::Ambiguous { first } => first,
    };
    // As kubectl: --set-image alone makes no debug container (`main` refuses the debug
    // container's flags then: flags_without_debug_container).
    let with_debug = d.image.is_some() || args.set_image.is_empty();
    let builder = if with_debug {
        let name = match &d.name {
            Some(n) => n.clone(),
            None => generate_name(source.spec.as_ref(), &mut rand::rng()),
        };
        Some(d.builder(name, Some(&args.target))?)
    } else {
        None
    };
    let requested_by = cluster.whoami().await;
    let opts = CopyOptions {
        to: args.to.clone(),
        share_processes: args.share_processes,
        same_node: args.same_node,
        set_image: args.set_image.clone(),
        fork: args.fork,
        keep: KeepFlags {
            labels: args.keep_labels,
            annotations: args.keep_annotations,
            liveness: args.keep_liveness,
            readiness: args.keep_readiness,
            startup: args.keep_startup,
            init_containers: args.keep_init_containers,
        },
        profile: d.profile,
        target: Some(target),
        requested_by,
        reason: d.reason.clone(),
    };
    let copy = build_copy(&source, &opts, builder.as_ref())?;
    if let Some(note) = fork_note(&copy, &opts).filter(|_| !d.quiet) {
        eprintln!("note: {note}");
    }
    if let Some(note) = adoption_note(&source, &copy).filter(|_| !d.quiet) {
        eprintln!("note: {}", output::printable(&note));
    }
    let dry = d.dry_run != DryRun::None;
    let mut requests: Vec<(PlannedRequest, Action)> = vec![(
        create_pod(&copy, d.dry_run == DryRun::Server),
        Action::CreatePod {
            ns: ns.clone(),
            pod: args.to.clone(),
        },
    )];
    if args.replace {
        requests.push((
            delete_pod(&ns, &args.pod, d.dry_run == DryRun::Server),
            Action::DeletePod {
                ns: ns.clone(),
                pod: args.pod.clone(),
            },
        ));
    }
    if d.dry_run == DryRun::Client {
        match d.output {
            Some(format) => output::print(&copy, format)?,
            None => {
                let rendered: Vec<String> = requests.iter().map(|(r, _)| r.render()).collect();
                output::write_stdout(rendered.join("\n"))?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.replace && d.dry_run == DryRun::None {
        // Asked first with a dry run, which the API server authorizes and admits as the real
        // one: a user who may create pods but not delete this one gets no copy running beside it.
        let check = delete_pod(&ns, &args.pod, true);
        if let Some((_, action)) = requests.get(1) {
            cluster
                .send::<serde_json::Value>(&check, action)
                .await
                .map_err(|e| {
                    e.details([format!(
                        "nothing was created: --replace first asks (with a dry run) whether pod \
                         {ns}/{} may be deleted",
                        args.pod
                    )])
                })?;
        }
    }
    let created: Pod = cluster.send(&requests[0].0, &requests[0].1).await?;
    for (req, action) in &requests[1..] {
        if let Err(e) = cluster.send::<serde_json::Value>(req, action).await {
            return Err(replace_failed(
                e,
                &ns,
                &cluster.flags,
                &args.to,
                &args.pod,
                dry,
            ));
        }
    }
    if let Some(format) = d.output {
        output::print(&created, format)?;
    }
    if dry {
        output::report_verdict(
            format!(
                "admitted (server dry run, nothing was changed): pod {ns}/{}{}\n",
                args.to,
                if args.replace {
                    format!(", and deleting pod {ns}/{}", args.pod)
                } else {
                    String::new()
                }
            ),
            d.output,
            d.quiet,
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    if !d.quiet {
        eprintln!(
            "created pod {ns}/{} (a debug copy of {})",
            args.to, args.pod
        );
        if args.replace {
            eprintln!("deleted pod {ns}/{}", args.pod);
        }
        eprintln!(
            "delete it when done: kubectl delete pod {} -n {ns}{}",
            args.to, cluster.flags
        );
    }
    let Some(builder) = builder else {
        // No debug container (--set-image alone), nothing to attach to: `-q` still prints one
        // name, the copy's.
        session::print_name_for_scripts(d, &args.to)?;
        return Ok(ExitCode::SUCCESS);
    };
    let reattach = format!(
        "kubectl attach {} -n {ns}{} -c {}{}",
        args.to,
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
    // The copy's name is --to; the debug container's is the one kspy generates.
    session::follow(
        &cluster,
        created,
        &builder.name,
        d,
        &reattach,
        &builder.name,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden;
    use serde_json::{Value, json};

    fn debug() -> ContainerSpecBuilder {
        ContainerSpecBuilder {
            name: "debugger-tst42".into(),
            image: "busybox:latest".into(),
            stdin: true,
            tty: true,
            ..ContainerSpecBuilder::default()
        }
    }

    fn opts() -> CopyOptions {
        CopyOptions {
            to: "web-debug".into(),
            keep: KeepFlags {
                init_containers: true,
                ..KeepFlags::default()
            },
            target: Some("app".into()),
            requested_by: Some("alice@example.com".into()),
            reason: Some("INC-4211 reproduce crash loop".into()),
            ..CopyOptions::default()
        }
    }

    #[test]
    fn copy_general_golden() {
        let source = golden::fixture_pod("pod-web.json");
        let pod = build_copy(&source, &opts(), Some(&debug())).expect("builds");
        let v = serde_json::to_value(&pod).expect("json");
        assert_eq!(v["metadata"]["labels"], json!({"kspy.dev/debug": "copy"}));
        assert_eq!(
            v["metadata"]["annotations"]["kspy.dev/source-pod"],
            "web-7d9f8c6b5-x2x4q"
        );
        assert_eq!(
            v["metadata"]["annotations"]["kspy.dev/requested-by"],
            "alice@example.com"
        );
        assert!(v["metadata"].get("ownerReferences").is_none());
        assert!(v["spec"].get("nodeName").is_none());
        assert!(v["spec"].get("ephemeralContainers").is_none());
        assert_eq!(v["spec"]["shareProcessNamespace"], true);
        assert!(v.get("status").is_none());
        golden::assert_golden("copy-general.json", &v);
    }

    #[test]
    fn fork_golden() {
        let source = golden::fixture_pod("pod-web.json");
        let o = CopyOptions {
            fork: true,
            same_node: true,
            profile: Profile::Legacy,
            set_image: vec![("sidecar".into(), "envoy:debug".into())],
            ..opts()
        };
        let legacy = ContainerSpecBuilder {
            profile: Profile::Legacy,
            ..debug()
        };
        let pod = build_copy(&source, &o, Some(&legacy)).expect("builds");
        let v = serde_json::to_value(&pod).expect("json");
        assert!(
            v["spec"]["containers"][2].get("securityContext").is_none(),
            "legacy adds nothing"
        );
        let app = &v["spec"]["containers"][0];
        assert_eq!(app["command"], json!(FORK_COMMAND));
        assert!(app.get("args").is_none());
        assert!(app.get("livenessProbe").is_none() && app.get("readinessProbe").is_none());
        assert_eq!(v["spec"]["restartPolicy"], "Never");
        assert_eq!(v["spec"]["containers"][1]["image"], "envoy:debug");
        assert_eq!(v["spec"]["nodeName"], "node-a");
        // Even with the legacy profile, --fork drops annotations other than kspy's.
        let annotations = v["metadata"]["annotations"]
            .as_object()
            .expect("annotations");
        assert!(
            annotations.keys().all(|k| k.starts_with("kspy.dev/")),
            "{annotations:?}"
        );
        golden::assert_golden("copy-fork.json", &v);
    }

    /// --fork cannot know whether the image has a `sleep`: it says so, naming the container
    /// put to sleep and the image it will run in the copy.
    #[test]
    fn fork_notes_that_the_image_needs_a_sleep() {
        let source = golden::fixture_pod("pod-web.json");
        let o = CopyOptions {
            fork: true,
            set_image: vec![("app".into(), "gcr.io/distroless/static".into())],
            ..opts()
        };
        let pod = build_copy(&source, &o, Some(&debug())).expect("builds");
        let note = fork_note(&pod, &o).expect("a note");
        assert_eq!(
            note,
            "--fork runs `sleep 2147483647` in container app instead of its command: its image \
             (gcr.io/distroless/static) must have a `sleep`; distroless and scratch images have \
             none, and the container would fail with StartError. If so, give it one that has, \
             with --set-image app=IMAGE"
        );
        let plain = build_copy(&source, &opts(), Some(&debug())).expect("builds");
        assert_eq!(fork_note(&plain, &opts()), None);
    }

    /// The container --fork puts to sleep loses its postStart hook: run beside `sleep` instead
    /// of the app, a hook that talks to the app fails, and the kubelet kills the container,
    /// which restartPolicy Never then leaves dead. Its preStop stays; other containers keep
    /// theirs.
    #[test]
    fn fork_drops_the_post_start_hook_of_the_container_put_to_sleep() {
        let mut v = serde_json::to_value(golden::fixture_pod("pod-web.json")).expect("json");
        let hook = json!({"exec": {"command": ["/web", "warm-up"]}});
        v["spec"]["containers"][0]["lifecycle"] = json!({"postStart": hook.clone()});
        v["spec"]["containers"][1]["lifecycle"] =
            json!({"postStart": hook.clone(), "preStop": hook.clone()});
        let source: Pod = serde_json::from_value(v).expect("pod");
        let copy = |target: &str| {
            let o = CopyOptions {
                fork: true,
                target: Some(target.into()),
                ..opts()
            };
            let pod = build_copy(&source, &o, Some(&debug())).expect("builds");
            serde_json::to_value(pod).expect("json")
        };
        let app = copy("app");
        assert_eq!(app["spec"]["containers"][0]["command"], json!(FORK_COMMAND));
        assert!(
            app["spec"]["containers"][0].get("lifecycle").is_none(),
            "{}",
            app["spec"]["containers"][0]
        );
        assert_eq!(
            app["spec"]["containers"][1]["lifecycle"]["postStart"], hook,
            "the container not put to sleep keeps its hook"
        );
        let sidecar = copy("sidecar");
        assert_eq!(
            sidecar["spec"]["containers"][1]["lifecycle"],
            json!({"preStop": hook}),
            "preStop stays"
        );
    }

    /// --fork -c SIDECAR (an init container with restartPolicy Always) puts the sidecar to
    /// sleep, its probes dropped as the containers' are; --fork -c naming any other init
    /// container is refused (asleep, it would never complete, and nothing else would start),
    /// also when --keep-init-containers=false left it out. The old code accepted both, put no
    /// container to sleep and noted that the first container was.
    #[test]
    fn fork_of_an_init_container() {
        let mut v = serde_json::to_value(golden::fixture_pod("pod-web.json")).expect("json");
        v["spec"]["initContainers"]
            .as_array_mut()
            .expect("init containers")
            .push(
                json!({"name": "mesh", "image": "envoy:1.30", "restartPolicy": "Always",
                "args": ["--config", "/etc/envoy.yaml"],
                "startupProbe": {"tcpSocket": {"port": 15000}}}),
            );
        let source: Pod = serde_json::from_value(v).expect("pod");
        let fork = |target: &str, keep_init: bool| {
            let o = CopyOptions {
                fork: true,
                target: Some(target.into()),
                keep: KeepFlags {
                    init_containers: keep_init,
                    ..KeepFlags::default()
                },
                ..opts()
            };
            build_copy(&source, &o, Some(&debug())).map(|pod| (fork_note(&pod, &o), pod))
        };
        let (note, pod) = fork("mesh", true).expect("a sidecar sleeps");
        let v = serde_json::to_value(pod).expect("json");
        let mesh = &v["spec"]["initContainers"][1];
        assert_eq!(mesh["command"], json!(FORK_COMMAND));
        assert!(
            mesh.get("args").is_none() && mesh.get("startupProbe").is_none(),
            "{mesh}"
        );
        assert_eq!(
            v["spec"]["containers"][0]["command"],
            json!(["/web"]),
            "app runs as before"
        );
        assert!(
            note.is_some_and(|n| n.contains("in container mesh instead of its command")),
            "the note names the container put to sleep"
        );

        for keep_init in [true, false] {
            let err = fork("migrate", keep_init).expect_err("refused");
            assert!(
                matches!(&err, BuildError::ForkInitContainer { container, dropped, .. }
                    if container == "migrate" && *dropped != keep_init),
                "{err:?}"
            );
            let rendered = KspyError::from(err).render("kspy");
            assert!(
                rendered.starts_with(
                    "kspy: --fork cannot put container migrate to sleep: it is an init \
                     container of pod web-7d9f8c6b5-x2x4q"
                ),
                "{rendered}"
            );
            assert!(
                rendered.contains(
                    "--keep-init-containers=false --image registry.example.com/web:1.4.2 -- sh"
                ) && rendered.contains("with -c: app, sidecar"),
                "{rendered}"
            );
        }
    }

    /// --keep-labels on a copy of a ReplicaSet's pod: the copy has no owner but every label
    /// the ReplicaSet selects by, so it adopts the copy and deletes a pod to get back to its
    /// count. kspy says so; not without --keep-labels, not with the legacy profile (which
    /// drops the labels whatever --keep-labels says), not for a pod no such controller owns.
    #[test]
    fn keep_labels_of_a_controlled_pod_is_noted() {
        let source = golden::fixture_pod("pod-web.json");
        let note = |profile: Profile, labels: bool, source: &Pod| {
            let o = CopyOptions {
                profile,
                keep: KeepFlags {
                    labels,
                    ..KeepFlags::default()
                },
                ..opts()
            };
            let copy = build_copy(source, &o, Some(&debug())).expect("builds");
            adoption_note(source, &copy)
        };
        assert_eq!(
            note(Profile::General, true, &source).as_deref(),
            Some(
                "--keep-labels keeps the labels ReplicaSet web-7d9f8c6b5 selects its pods by, and \
                 a controller adopts any pod without an owner that its selector matches: it will \
                 take the copy as its own and then hold one pod too many and delete one, most \
                 likely the copy while it starts. Leave out --keep-labels unless that is what \
                 you want"
            )
        );
        assert_eq!(note(Profile::General, false, &source), None);
        assert_eq!(note(Profile::Legacy, true, &source), None);
        let mut v = serde_json::to_value(&source).expect("json");
        v["metadata"]["ownerReferences"][0]["kind"] = json!("Job");
        v["metadata"]["ownerReferences"][0]["name"] = json!("backup-29001");
        let job: Pod = serde_json::from_value(v.clone()).expect("pod");
        let job_note = note(Profile::General, true, &job).expect("noted");
        assert!(
            job_note.contains("Job backup-29001") && job_note.contains("success or failure"),
            "{job_note}"
        );
        v["metadata"]["ownerReferences"][0]["kind"] = json!("StatefulSet");
        let sts: Pod = serde_json::from_value(v.clone()).expect("pod");
        assert_eq!(
            note(Profile::General, true, &sts),
            None,
            "adopts its own names only"
        );
        v["metadata"]
            .as_object_mut()
            .expect("meta")
            .remove("ownerReferences");
        let bare: Pod = serde_json::from_value(v).expect("pod");
        assert_eq!(note(Profile::General, true, &bare), None);
    }

    #[test]
    fn keep_flags_and_share_processes_false() {
        let source = golden::fixture_pod("pod-web.json");
        let o = CopyOptions {
            share_processes: Some(false),
            keep: KeepFlags {
                labels: true,
                annotations: true,
                liveness: true,
                readiness: true,
                startup: true,
                init_containers: false,
            },
            ..opts()
        };
        let pod = build_copy(&source, &o, Some(&debug())).expect("builds");
        let v = serde_json::to_value(&pod).expect("json");
        assert_eq!(v["metadata"]["labels"]["app"], "web");
        assert_eq!(v["metadata"]["labels"]["kspy.dev/debug"], "copy");
        assert!(
            v["metadata"]["annotations"]
                .get("prometheus.io/scrape")
                .is_some()
        );
        assert!(v["spec"]["containers"][0].get("livenessProbe").is_some());
        assert!(v["spec"].get("initContainers").is_none());
        assert_eq!(v["spec"]["shareProcessNamespace"], false);
    }

    /// The source's own `kspy.dev/*` annotations (it is itself a copy, or was annotated by
    /// hand) never survive: a stale reason would pass a policy that reads it, a stale
    /// requester would be recorded. Kept with --keep-annotations and with the legacy profile,
    /// which keep the others.
    #[test]
    fn kspy_and_kubelet_annotations_of_the_source_are_not_copied() {
        let mut v = serde_json::to_value(golden::fixture_pod("pod-web.json")).expect("json");
        v["metadata"]["annotations"]["kspy.dev/reason"] = json!("INC-1 long closed");
        v["metadata"]["annotations"]["kspy.dev/requested-by"] = json!("mallory");
        v["metadata"]["annotations"]["kspy.dev/source-pod"] = json!("web-0");
        v["metadata"]["annotations"]["kspy.dev/debug-container"] = json!("debugger-old99");
        v["metadata"]["labels"]["kspy.dev/debug"] = json!("node");
        // A static pod's mirror: a copy carrying these is taken for one by every kubelet,
        // never run, and deleted as an orphan.
        v["metadata"]["annotations"]["kubernetes.io/config.mirror"] = json!("0123abcd");
        v["metadata"]["annotations"]["kubernetes.io/config.hash"] = json!("0123abcd");
        v["metadata"]["annotations"]["kubernetes.io/config.source"] = json!("file");
        let source: Pod = serde_json::from_value(v).expect("pod");
        for (profile, keep_annotations) in [(Profile::Legacy, false), (Profile::General, true)] {
            let o = CopyOptions {
                profile,
                keep: KeepFlags {
                    annotations: keep_annotations,
                    labels: true,
                    ..KeepFlags::default()
                },
                requested_by: None,
                reason: None,
                ..opts()
            };
            let pod = build_copy(&source, &o, Some(&debug())).expect("builds");
            let v = serde_json::to_value(&pod).expect("json");
            let annotations = &v["metadata"]["annotations"];
            assert!(
                annotations.get("prometheus.io/scrape").is_some(),
                "{profile:?}: other annotations kept: {annotations}"
            );
            assert!(
                annotations.get("kspy.dev/reason").is_none(),
                "{annotations}"
            );
            for kubelets in ["mirror", "hash", "source"] {
                assert!(
                    annotations
                        .get(format!("kubernetes.io/config.{kubelets}"))
                        .is_none(),
                    "{profile:?}: {annotations}"
                );
            }
            assert!(
                annotations.get("kspy.dev/requested-by").is_none(),
                "{annotations}"
            );
            assert_eq!(annotations["kspy.dev/source-pod"], "web-7d9f8c6b5-x2x4q");
            assert_eq!(
                annotations["kspy.dev/debug-container"], "debugger-tst42",
                "`kspy ls` finds the copy's own debug container"
            );
            assert_eq!(v["metadata"]["labels"]["kspy.dev/debug"], "copy");
            // Without a debug container (--set-image alone) there is none to name.
            let pod = build_copy(&source, &o, None).expect("builds");
            let annotations = pod.metadata.annotations.unwrap_or_default();
            assert!(
                !annotations.contains_key("kspy.dev/debug-container"),
                "{annotations:?}"
            );
        }
    }

    #[test]
    fn keep_init_containers_false_drops_them_with_every_profile() {
        let source = golden::fixture_pod("pod-web.json");
        for profile in [
            Profile::Legacy,
            Profile::General,
            Profile::Baseline,
            Profile::Restricted,
            Profile::Netadmin,
            Profile::Sysadmin,
        ] {
            for keep in [true, false] {
                let o = CopyOptions {
                    profile,
                    keep: KeepFlags {
                        init_containers: keep,
                        ..KeepFlags::default()
                    },
                    ..opts()
                };
                let builder = ContainerSpecBuilder { profile, ..debug() };
                let pod = build_copy(&source, &o, Some(&builder)).expect("builds");
                let init = pod.spec.and_then(|s| s.init_containers);
                assert_eq!(
                    init.is_some(),
                    keep,
                    "{profile:?}, init containers kept: {keep}"
                );
            }
        }
    }

    #[test]
    fn share_processes_flag_or_the_pods_own_setting() {
        let pod = |spec: Value| -> Pod {
            let mut v = serde_json::to_value(golden::fixture_pod("pod-web.json")).expect("json");
            for (k, val) in spec.as_object().expect("object") {
                v["spec"][k] = val.clone();
            }
            serde_json::from_value(v).expect("pod")
        };
        let shared = |source: &Pod, flag: Option<bool>| {
            let o = CopyOptions {
                share_processes: flag,
                ..opts()
            };
            build_copy(source, &o, Some(&debug()))
                .map(|p| p.spec.and_then(|s| s.share_process_namespace))
        };
        let plain = pod(json!({}));
        let host_pid = pod(json!({"hostPID": true}));
        let own_false = pod(json!({"shareProcessNamespace": false}));
        // Without the flag: true where the pod leaves it unset and may have it…
        assert_eq!(shared(&plain, None).expect("builds"), Some(true));
        // …never with hostPID, which the API server refuses it with…
        assert_eq!(shared(&host_pid, None).expect("builds"), None);
        // …and the pod's own false stays (the profile only sets it when unset).
        assert_eq!(shared(&own_false, None).expect("builds"), Some(false));
        // The flag, when given, decides.
        assert_eq!(shared(&own_false, Some(true)).expect("builds"), Some(true));
        assert_eq!(shared(&plain, Some(false)).expect("builds"), Some(false));
        assert_eq!(shared(&host_pid, Some(false)).expect("builds"), Some(false));
        // A Windows pod: the API server refuses the field, true or false. Left unset, with
        // every profile (the profile's own "share processes" included); a flag is refused.
        let windows = pod(json!({"os": {"name": "windows"}}));
        assert_eq!(shared(&windows, None).expect("builds"), None);
        for profile in crate::profile::ALL {
            let o = CopyOptions { profile, ..opts() };
            let copy = build_copy(&windows, &o, None).expect("builds");
            assert_eq!(
                copy.spec.and_then(|s| s.share_process_namespace),
                None,
                "{profile:?}"
            );
        }
        for flag in [true, false] {
            let err = shared(&windows, Some(flag)).expect_err("refused");
            assert_eq!(
                err.to_string(),
                format!(
                    "invalid --share-processes value \"{flag}\": pod web-7d9f8c6b5-x2x4q runs \
                     Windows (spec.os.name: windows), where the API server refuses \
                     shareProcessNamespace, true or false; leave out --share-processes (Windows \
                     containers do not share a process namespace)"
                )
            );
        }
        let err = shared(&host_pid, Some(true)).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "invalid --share-processes value \"true\": pod web-7d9f8c6b5-x2x4q uses hostPID, \
             and the API server refuses shareProcessNamespace together with hostPID; leave out \
             --share-processes (the copy's containers share the node's process namespace then)"
        );
    }

    #[test]
    fn fork_makes_resize_policies_not_required() {
        let mut v = serde_json::to_value(golden::fixture_pod("pod-web.json")).expect("json");
        let policies = json!([
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "RestartContainer"}
        ]);
        v["spec"]["containers"][0]["resizePolicy"] = policies.clone();
        v["spec"]["initContainers"] = json!([{"name": "proxy", "image": "envoy",
            "restartPolicy": "Always", "resizePolicy": policies.clone()}]);
        let source: Pod = serde_json::from_value(v).expect("pod");
        let copy = |fork: bool| {
            let o = CopyOptions { fork, ..opts() };
            let pod = build_copy(&source, &o, Some(&debug())).expect("builds");
            serde_json::to_value(pod).expect("json")
        };
        // restartPolicy Never: the API server requires NotRequired of every resize policy.
        let forked = copy(true);
        assert_eq!(forked["spec"]["restartPolicy"], "Never");
        let not_required = json!([
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "NotRequired"}
        ]);
        assert_eq!(
            forked["spec"]["containers"][0]["resizePolicy"],
            not_required
        );
        assert_eq!(
            forked["spec"]["initContainers"][0]["resizePolicy"],
            not_required
        );
        // Without --fork the pod's restartPolicy stays, and so do its resize policies.
        let plain = copy(false);
        assert_eq!(plain["spec"]["containers"][0]["resizePolicy"], policies);
    }

    #[test]
    fn set_image_only_and_unknown_container() {
        let source = golden::fixture_pod("pod-web.json");
        let o = CopyOptions {
            set_image: vec![
                ("*".into(), "busybox:1.36".into()),
                ("app".into(), "web:debug".into()),
            ],
            ..opts()
        };
        let pod = build_copy(&source, &o, None).expect("builds");
        let images: Vec<Value> = serde_json::to_value(pod.spec.expect("spec").containers)
            .expect("json")
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["image"].clone())
            .collect();
        assert_eq!(images, vec![json!("web:debug"), json!("busybox:1.36")]);

        let o = CopyOptions {
            set_image: vec![("ap".into(), "x".into())],
            ..opts()
        };
        assert!(matches!(
            build_copy(&source, &o, None),
            Err(BuildError::UnknownContainer { .. })
        ));
    }

    #[test]
    fn set_image_flag_parses() {
        assert_eq!(
            parse_set_image("app=web:1"),
            Ok(("app".into(), "web:1".into()))
        );
        assert!(parse_set_image("app").is_err());
        assert!(parse_set_image("=x").is_err());
        assert_eq!(
            parse_set_image("app=busybox latest"),
            Err(
                "\"app=busybox latest\": an image reference has no spaces or control characters"
                    .to_string()
            )
        );
        // Outside the reference grammar: the kubelet would leave it in InvalidImageName.
        let err = parse_set_image("app=Web:1").expect_err("upper case");
        assert!(err.contains("did you mean web:1?"), "{err}");
    }
}
