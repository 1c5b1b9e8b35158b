//! `kspy attach POD`: add an ephemeral debug container to a running pod through
//! `PATCH pods/POD/ephemeralcontainers`, then wait for it and attach.
//!
//! Requests, in order:
//!
//! 1. `GET /api/v1/namespaces/NS/pods/POD` — the target must exist and the name be free;
//! 2. only when the pod has several containers and nothing names the target: a `PATCH
//!    …/ephemeralcontainers?dryRun=All` without `targetContainerName`, to see whether an
//!    admission webhook (kspy's `defaults.targetContainer`) sets it; if none does, the target
//!    is the pod's first container;
//! 3. `PATCH …/ephemeralcontainers` (with `dryRun=All` under `--dry-run=server`); a JSON
//!    patch creating the list is tested against the `resourceVersion` read, and when the pod
//!    changed meanwhile, kspy reads it again and sends the patch built anew, once. When kspy
//!    picked the first container itself (step 2) and an admission webhook denies that, while
//!    step 2's probe without a target was admitted — kspy's webhook withholds its default
//!    target where `/validate` would refuse it — the container is sent once more without a
//!    target, with a note (under `--dry-run=server`, the probe is that dry run's answer).
//!    When kspy picked the pod's only container, or its annotated default, no probe came
//!    first: on an admission webhook's denial, a dry run without a target follows, and when
//!    it is admitted, the same note and the container sent without a target (under
//!    `--dry-run=server`, that dry run is the answer); when it is denied too, the first
//!    denial is reported. A target named with `-c` is never dropped;
//! 4. a watch of the pod until the container runs, then `pods/attach` (or `pods/log` when it
//!    already terminated).

use std::process::ExitCode;

use k8s_openapi::api::core::v1::{EphemeralContainer, Pod};
use serde_json::Value;

use crate::args::{DebugArgs, DryRun, TargetArgs};
use crate::cluster::{Cluster, ClusterArgs, Judged};
use crate::container::{
    ContainerSpecBuilder, PickedBy, REASON_ENV, TargetChoice, generate_name, normalize_capability,
    resolve_target,
};
use crate::errors::{Action, KspyError, WebhookDenial};
use crate::output;
use crate::patch::{PatchType, add_ephemeral};
use crate::profile::Profile;
use crate::session;
use crate::wait::{State, state_of};

/// `kspy attach` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct AttachArgs {
    /// The pod to debug
    #[arg(value_name = "POD", value_parser = crate::args::parse_object_name)]
    pub pod: String,
    /// Cluster, context and namespace.
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// The container being debugged.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The debug container and its session.
    #[command(flatten)]
    pub debug: DebugArgs,
    /// Patch format: strategic merge (as kubectl) or RFC 6902 JSON patch
    #[arg(long, value_enum, default_value_t = PatchType::Strategic, value_name = "TYPE")]
    pub patch_type: PatchType,
    /// Attach to a running debug container of this pod with the same image, command, security
    /// context, target, and --reason and --image-pull-policy when given (or to the one named by
    /// --name, whose image, --cap, --profile, -c, command, reason and pull policy must then match
    /// those given) instead of adding another; ephemeral containers can never be removed; a dry
    /// run says which one it would reuse. Not with --as-target-user, --mount-target, --mount,
    /// --env, --env-from-target or --custom
    #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
          default_value = "false", hide_default_value = true, default_missing_value = "true",
          value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
    pub reuse: bool,
}

/// The flags whose effect on the container `--reuse` cannot compare with an existing one
/// (they copy from the target, or merge anything into the spec), among those given.
pub fn flags_reuse_cannot_honour(d: &DebugArgs, t: &TargetArgs) -> Vec<&'static str> {
    [
        (t.as_target_user, "--as-target-user"),
        (t.mount_target, "--mount-target"),
        (!t.mounts.is_empty(), "--mount"),
        (!d.env.is_empty(), "--env"),
        (t.env_from_target, "--env-from-target"),
        (d.custom.is_some(), "--custom"),
    ]
    .into_iter()
    .filter_map(|(given, flag)| given.then_some(flag))
    .collect()
}

/// The security context as `--reuse` compares it: capability lists sorted and deduplicated,
/// an empty one the same as none.
fn security(c: &EphemeralContainer) -> Value {
    let mut sc = serde_json::to_value(&c.security_context).unwrap_or(Value::Null);
    if let Some(caps) = sc.get_mut("capabilities").and_then(Value::as_object_mut) {
        for list in caps.values_mut() {
            if let Some(items) = list.as_array_mut() {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                items.dedup();
            }
        }
    }
    match sc {
        Value::Object(m) if m.is_empty() => Value::Null,
        other => other,
    }
}

/// Whether security context `have` (a running container's) stands in for `want` (what kspy
/// would send): every field `want` sets has the same value in `have`, and whatever else `have`
/// sets only hardens it — what kspy's webhook (`podSecurity: conform`) or another admission
/// controller adds to a new container too, so a fresh one would look the same.
fn security_covers(have: &Value, want: &Value) -> bool {
    let empty = serde_json::Map::new();
    let have = have.as_object().unwrap_or(&empty);
    let want = want.as_object().unwrap_or(&empty);
    let hardening = |field: &str, value: &Value| match field {
        "allowPrivilegeEscalation" => value == &Value::Bool(false),
        "runAsNonRoot" | "readOnlyRootFilesystem" => value == &Value::Bool(true),
        "seccompProfile" => value["type"] != "Unconfined",
        _ => false,
    };
    let caps_cover = |h: Option<&Value>, w: Option<&Value>| {
        let h = h.and_then(Value::as_object).unwrap_or(&empty);
        let w = w.and_then(Value::as_object).unwrap_or(&empty);
        w.iter().all(|(k, v)| h.get(k) == Some(v))
            && h.iter().all(|(k, v)| {
                w.contains_key(k) || k == "drop" || v.as_array().is_some_and(Vec::is_empty)
            })
    };
    want.iter()
        .all(|(k, v)| k == "capabilities" || have.get(k) == Some(v))
        && have
            .iter()
            .all(|(k, v)| k == "capabilities" || want.contains_key(k) || hardening(k, v))
        && caps_cover(have.get("capabilities"), want.get("capabilities"))
}

/// Whether running debug container `c` can stand in for `wanted`: the same image, command
/// and arguments, a security context that covers the one wanted (profile, `--cap`;
/// [`security_covers`]), the same target when kspy knows it, stdin and a TTY when the
/// session needs them, and — when they are asked for — the same reason (`KSPY_REASON`, which
/// policies and audit read from the container) and image pull policy.
fn interchangeable(c: &EphemeralContainer, wanted: &EphemeralContainer) -> bool {
    c.image == wanted.image
        && c.command.clone().unwrap_or_default() == wanted.command.clone().unwrap_or_default()
        && c.args.clone().unwrap_or_default() == wanted.args.clone().unwrap_or_default()
        && security_covers(&security(c), &security(wanted))
        && (wanted.target_container_name.is_none()
            || c.target_container_name == wanted.target_container_name)
        && (!wanted.stdin.unwrap_or(false) || c.stdin.unwrap_or(false))
        && (!wanted.tty.unwrap_or(false) || c.tty.unwrap_or(false))
        && (reason_of(wanted).is_none() || reason_of(c) == reason_of(wanted))
        && (wanted.image_pull_policy.is_none() || c.image_pull_policy == wanted.image_pull_policy)
}

/// The reason a debug container was added for: its `KSPY_REASON`.
fn reason_of(c: &EphemeralContainer) -> Option<&str> {
    c.env
        .iter()
        .flatten()
        .find(|e| e.name == REASON_ENV)
        .and_then(|e| e.value.as_deref())
}

/// The capabilities a container adds, as kspy's policies compare them.
fn added_capabilities(c: &EphemeralContainer) -> Vec<String> {
    c.security_context
        .as_ref()
        .and_then(|s| s.capabilities.as_ref())
        .and_then(|caps| caps.add.as_ref())
        .into_iter()
        .flatten()
        .map(|cap| normalize_capability(cap).unwrap_or_else(|_| cap.clone()))
        .collect()
}

/// `--reuse --name NAME` attaches to the debug container NAME as it is, without adding one:
/// what the command line asks of the container explicitly cannot change it, so each of those
/// flags must describe `found` — else kspy would attach to something other than what was asked
/// and say nothing. `wanted` is the container the same flags would add. Returns what differs,
/// one line per flag; empty when everything asked matches (or nothing was).
pub fn named_mismatches(
    found: &EphemeralContainer,
    wanted: &EphemeralContainer,
    d: &DebugArgs,
    t: &TargetArgs,
) -> Vec<String> {
    let mut out = Vec::new();
    let shown = |v: Option<&str>| v.map_or("(none)".to_string(), |v| format!("{v:?}"));
    if d.image.is_some() && found.image != wanted.image {
        out.push(format!(
            "--image: it runs image {}, not {}",
            shown(found.image.as_deref()),
            shown(wanted.image.as_deref())
        ));
    }
    let has = added_capabilities(found);
    let missing: Vec<&str> = d
        .caps
        .iter()
        .filter(|c| !has.contains(c))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        out.push(format!(
            "--cap: it does not add {} (it adds {})",
            missing.join(", "),
            if has.is_empty() {
                "none".to_string()
            } else {
                has.join(", ")
            }
        ));
    }
    if d.profile != Profile::General && !security_covers(&security(found), &security(wanted)) {
        out.push(format!(
            "--profile {}: its security context is not the one the profile sets",
            d.profile.name()
        ));
    }
    if let Some(target) = &t.target
        && found.target_container_name.as_deref() != Some(target.as_str())
    {
        out.push(format!(
            "-c: it targets {}, not {target:?}",
            shown(found.target_container_name.as_deref())
        ));
    }
    let words = |c: &EphemeralContainer| {
        [c.command.clone(), c.args.clone()]
            .into_iter()
            .flatten()
            .flatten()
            .collect::<Vec<String>>()
    };
    if !d.command.is_empty() && (found.command != wanted.command || found.args != wanted.args) {
        out.push(format!(
            "-- COMMAND: it runs {:?}, not {:?}",
            words(found),
            words(wanted)
        ));
    }
    if d.reason.is_some() && reason_of(found) != reason_of(wanted) {
        out.push(format!(
            "--reason: it was added with KSPY_REASON {}, not {}",
            shown(reason_of(found)),
            shown(reason_of(wanted))
        ));
    }
    if d.image_pull_policy.is_some() && found.image_pull_policy != wanted.image_pull_policy {
        out.push(format!(
            "--image-pull-policy: its pull policy is {}, not {}",
            shown(found.image_pull_policy.as_deref()),
            shown(wanted.image_pull_policy.as_deref())
        ));
    }
    out
}

/// The running debug container `--reuse` attaches to: by name when `by_name`, else the
/// newest that is [`interchangeable`] with `wanted`.
pub fn find_reusable(
    pod: &Pod,
    wanted: &EphemeralContainer,
    by_name: bool,
) -> Result<Option<String>, KspyError> {
    let existing = pod
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref());
    if by_name {
        let Some(found) = existing
            .into_iter()
            .flatten()
            .find(|c| c.name == wanted.name)
        else {
            let own = pod.spec.as_ref().is_some_and(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
                    .any(|c| c.name == wanted.name)
            });
            if own {
                return Err(KspyError::new(format!(
                    "container {} is one of pod {}'s own containers, not a debug container: \
                     --reuse --name attaches only to debug containers",
                    wanted.name,
                    pod.metadata.name.as_deref().unwrap_or_default()
                ))
                .hint(format!(
                    "to debug it, add a debug container targeting it: `{} attach {} -c {}`",
                    crate::prog(),
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    wanted.name
                )));
            }
            return Ok(None);
        };
        return match state_of(pod, &found.name) {
            State::Running => Ok(Some(found.name.clone())),
            other => Err(KspyError::new(format!(
                "debug container {} is not running ({}); ephemeral containers cannot be restarted",
                found.name,
                other.describe()
            ))
            .hint("leave out --name to add a new one")),
        };
    }
    let same = |c: &&EphemeralContainer| {
        interchangeable(c, wanted) && state_of(pod, &c.name) == State::Running
    };
    Ok(existing
        .into_iter()
        .flatten()
        .rfind(same)
        .map(|c| c.name.clone()))
}

/// Whether `--reuse` attaches to the container it found: it is there to attach to, so it does
/// without `-i` too, unless `--no-attach` or `--attach=false` says not to.
fn reuse_attaches(d: &DebugArgs) -> bool {
    !d.no_attach && d.attach.unwrap_or(true)
}

/// Ephemeral containers only run in a pod that still runs: refuse finished pods. `flags`,
/// the cluster flags given, go into the command it suggests.
pub fn check_running(pod: &Pod, flags: &str) -> Result<(), KspyError> {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    match phase {
        Some(phase @ ("Succeeded" | "Failed")) => Err(KspyError::new(format!(
            "pod {ns}/{name} has finished ({phase}); a debug container added now would never start"
        ))
        .hint(format!(
            "debug a copy instead: `{} copy {name} -n {ns}{flags} --to {name}-debug --fork -it`",
            crate::prog()
        ))),
        _ => Ok(()),
    }
}

/// The annotation a kubelet puts on the mirror pod it creates in the API for a static pod
/// (one it runs from a manifest file on its node).
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// A static pod (kube-apiserver, etcd… as the API shows them: a mirror pod, annotated
/// [`MIRROR_POD_ANNOTATION`]) takes no ephemeral container: its kubelet runs what the
/// manifest file on the node says and never reads them from the API, so the API server refuses
/// the write (`static pods do not support ephemeral containers`, whatever the container).
/// Refused before any request, with the way that works: a node pod on its node. `flags`, the
/// cluster flags given, go into the command it suggests.
pub fn check_not_static(pod: &Pod, flags: &str) -> Result<(), KspyError> {
    let mirror = pod
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(MIRROR_POD_ANNOTATION));
    if !mirror {
        return Ok(());
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let node = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("NODE");
    Err(KspyError::new(format!(
        "pod {ns}/{name} is a static pod: the API server refuses debug containers for static pods"
    ))
    .details([format!(
        "the kubelet of node {node} runs it from a manifest file on the node (the pod in the API \
         is only its mirror, annotated {MIRROR_POD_ANNOTATION}) and would never start a \
         container added through the API"
    )])
    .hint(format!(
        "debug it from its node: `{} node {node}{flags} -it` runs a shell in the host's PID, \
         network and IPC namespaces, where its processes are (`ps`, `nsenter -t PID`); or \
         `kubectl exec` into it when its image has a shell",
        crate::prog()
    )))
}

/// A pod being deleted (its `deletionTimestamp` set, during its grace period) starts no new
/// container: the kubelet only stops its containers. A debug container added then would wait
/// until the pod is gone, and could not be removed meanwhile. One already running can still be
/// attached to (`--reuse`), so only adding one is refused. `flags`, the cluster flags given,
/// go into the command it suggests.
pub fn check_not_terminating(pod: &Pod, flags: &str) -> Result<(), KspyError> {
    let Some(since) = &pod.metadata.deletion_timestamp else {
        return Ok(());
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let grace = pod
        .metadata
        .deletion_grace_period_seconds
        .map(|s| format!(", with a grace period of {s}s"))
        .unwrap_or_default();
    Err(KspyError::new(format!(
        "pod {ns}/{name} is being deleted (since {}{grace}); a debug container added now would \
         never start",
        since.0
    ))
    .hint(format!(
        "the kubelet starts nothing in a pod it is stopping: debug another pod of its workload \
         (`kubectl get pods -n {ns}{flags}`), or a copy of this one while it is still there: \
         `{} copy {name} -n {ns}{flags} --to {name}-debug -it`",
        crate::prog()
    )))
}

/// The command that attaches to debug container `container` of pod `ns/pod` again, with
/// kubectl's too; `flags` are the cluster flags given ([`crate::cluster::ClusterArgs::repeated`]),
/// so that it reaches the same cluster.
fn reattach_command(
    prog: &str,
    ns: &str,
    flags: &str,
    pod: &str,
    container: &str,
    args: &DebugArgs,
) -> String {
    let it = match (args.stdin, args.tty) {
        (true, true) => " -it",
        (true, false) => " -i",
        _ => "",
    };
    format!(
        "{prog} attach {pod} -n {ns}{flags} --reuse --name {container}{it}  (or: kubectl attach {pod} -n {ns}{flags} -c {container}{it})"
    )
}

/// Runs `kspy attach`.
pub async fn run(args: AttachArgs) -> Result<ExitCode, KspyError> {
    let d = &args.debug;
    d.hold_warnings_for_verdict();
    let cluster = Cluster::connect(&args.cluster).await?;
    let ns = cluster.namespace.clone();
    let mut pod = cluster.get_pod(&args.pod).await?;
    check_running(&pod, &cluster.flags)?;
    check_not_static(&pod, &cluster.flags)?;
    let choice = resolve_target(&pod, args.target.target.as_deref())?;
    let name = match &d.name {
        Some(n) => n.clone(),
        None => generate_name(pod.spec.as_ref(), &mut rand::rng()),
    };
    let builder = d.builder(name.clone(), Some(&args.target))?;
    let reference = match &choice {
        TargetChoice::Named(n) | TargetChoice::Picked { name: n, .. } => n.clone(),
        TargetChoice::Ambiguous { first } => first.clone(),
    };

    // Dry runs ask too: they show what the same command would do for real, and with --reuse
    // that may be to add nothing at all (a dry run of adding one would speak of a container
    // that would never exist).
    if args.reuse {
        // Compare with what would be built for the target kspy knows of. With --name that
        // name is taken when there is a container to reuse: the comparison is built under a
        // free one (names are not compared).
        let mut probe = builder.clone();
        if d.name.is_some() {
            probe.name = generate_name(pod.spec.as_ref(), &mut rand::rng());
        }
        let asked = probe.build_ephemeral(&pod, choice.name(), Some(&reference))?;
        let wanted = match &d.name {
            Some(_) => EphemeralContainer {
                name: name.clone(),
                ..EphemeralContainer::default()
            },
            None => asked.clone(),
        };
        let found = find_reusable(&pod, &wanted, d.name.is_some())?;
        if let Some(existing) = found.as_deref().filter(|_| d.name.is_some())
            && let Some(container) = added(&pod, existing)
        {
            let differ = named_mismatches(container, &asked, d, &args.target);
            if !differ.is_empty() {
                return Err(KspyError::new(format!(
                    "--reuse --name {existing}: debug container {existing} of pod {ns}/{} is \
                     not what the other flags ask for",
                    args.pod
                ))
                .details(differ)
                .hint(format!(
                    "--reuse --name attaches to {existing} as it is (a running container cannot \
                     be changed): leave those flags out, or leave out --name so that --reuse \
                     attaches to a running debug container that matches them, or adds one"
                ))
                .exit_code(2));
            }
        }
        if d.dry_run != DryRun::None {
            match &found {
                Some(existing) => {
                    report_dry_reuse(&ns, &args.pod, &pod, existing, d)?;
                    return Ok(ExitCode::SUCCESS);
                }
                None if !d.quiet => eprintln!(
                    "note: --reuse: no running debug container of pod {ns}/{} matches; the \
                     command would add {name}, as this dry run shows",
                    args.pod
                ),
                None => {}
            }
        } else if let Some(existing) = found {
            if !d.quiet {
                eprintln!(
                    "reusing running debug container {existing} of pod {ns}/{}",
                    args.pod
                );
            }
            // Reusing means attaching, unless --no-attach or --attach=false says otherwise.
            let attach_args = DebugArgs {
                attach: Some(reuse_attaches(d)),
                ..d.clone()
            };
            let reattach =
                reattach_command(crate::prog(), &ns, &cluster.flags, &args.pod, &existing, d);
            return session::follow(&cluster, pod, &existing, &attach_args, &reattach, &existing)
                .await;
        }
    }

    check_not_terminating(&pod, &cluster.flags)?;
    if !d.quiet {
        for note in builder.unmirrored_mounts(&pod, &reference) {
            eprintln!("note: {note}");
        }
    }

    let action = Action::AddEphemeral {
        ns: ns.clone(),
        pod: args.pod.clone(),
        container: name.clone(),
    };

    if d.dry_run == DryRun::Client {
        let ec = builder.build_ephemeral(&pod, choice.name(), Some(&reference))?;
        let req = add_ephemeral(&pod, &ec, args.patch_type, false);
        match d.output {
            Some(format) => output::print(&ec, format)?,
            None => output::write_stdout(req.render())?,
        }
        if let TargetChoice::Ambiguous { first } = &choice
            && !d.quiet
        {
            eprintln!(
                "note: no target container named; the kspy webhook's policy default picks it when \
                 installed, else kspy sets {first} (the first container) before sending, and \
                 sends it without a target when an admission webhook refuses {first} as target \
                 but admits it without one"
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let server_dry_run = d.dry_run == DryRun::Server;

    // Leave the target to an admission webhook when one sets it; else the first container.
    // `untargeted`: the probe, when admitted without a target and none set by a webhook — the
    // container it sent and the pod admitted — which kspy falls back on when a webhook denies
    // its own pick of the first container.
    let mut untargeted: Option<(EphemeralContainer, Pod)> = None;
    let (target, probed) = match &choice {
        TargetChoice::Named(n) | TargetChoice::Picked { name: n, .. } => (Some(n.clone()), None),
        TargetChoice::Ambiguous { first } => {
            let mut admitted = None;
            for attempt in 0..2 {
                let ec = builder.build_ephemeral(&pod, None, Some(first))?;
                let probe = add_ephemeral(&pod, &ec, args.patch_type, true);
                match cluster.send_unless_stale::<Pod>(&probe, &action).await {
                    Ok(Some(result)) => {
                        admitted = Some((ec, result));
                        break;
                    }
                    // The probe carries the JSON patch's resourceVersion test too: "stale"
                    // says the pod changed since the GET, not whether a webhook picks the
                    // target. Read it again and ask once more.
                    Ok(None) if attempt == 0 => {
                        pod = cluster.get_pod(&args.pod).await?;
                        check_running(&pod, &cluster.flags)?;
                        check_not_terminating(&pod, &cluster.flags)?;
                    }
                    _ => break,
                }
            }
            match admitted {
                Some((_, result))
                    if added(&result, &name).is_some_and(|c| c.target_container_name.is_some()) =>
                {
                    (None, Some(result))
                }
                other => {
                    untargeted = other;
                    (Some(first.clone()), None)
                }
            }
        }
    };

    let adding = Adding {
        cluster: &cluster,
        builder: &builder,
        reference: &reference,
        patch_type: args.patch_type,
        dry_run: server_dry_run,
        action: &action,
    };
    // What the note says of the untargeted fallback, should kspy's own pick be refused.
    let fallback = if server_dry_run {
        Fallback::DryRun
    } else {
        Fallback::Probed
    };
    let (ec, result) = match probed {
        Some(result) if server_dry_run => (
            builder.build_ephemeral(&pod, None, Some(&reference))?,
            result,
        ),
        _ => match adding.send(&pod, target.as_deref()).await? {
            (ec, Judged::Done(result)) => (ec, result),
            (_, Judged::Denied { denial, error }) => {
                // The container kspy picked itself, why, and a dry run of the same container
                // without a target that was admitted; `None` when the refused target was the
                // user's, or nothing without a target is admitted either.
                let fallback_from = match (&choice, untargeted) {
                    // kspy's own pick was refused where the user named no target, and the
                    // same container without one was admitted (kspy's webhook withholds its
                    // default target where /validate would refuse it): do what the user
                    // asked for. The denied request wrote nothing.
                    (TargetChoice::Ambiguous { first }, Some(probe)) => {
                        Some((first.as_str(), PickedBy::FirstContainer, probe))
                    }
                    // kspy picked the pod's only container, or its annotated default, and no
                    // probe was sent (that would cost a request on every attach): only now, on
                    // a denial that wrote nothing, ask without a target — a dry run, which
                    // leaves no Event or side effect when it is refused too. Then the first
                    // denial is the answer (as when the pod changed twice): it is about what
                    // kspy sent, and nothing was written.
                    (TargetChoice::Picked { name, by }, _) => {
                        let probing = Adding {
                            dry_run: true,
                            ..adding
                        };
                        match probing.send(&pod, None).await? {
                            (ec, Judged::Done(result)) => Some((name.as_str(), *by, (ec, result))),
                            (_, Judged::Denied { .. } | Judged::Stale(_)) => None,
                        }
                    }
                    _ => None,
                };
                let Some((picked, by, (probe_ec, probe_result))) = fallback_from else {
                    return Err(error);
                };
                if !d.quiet {
                    eprintln!(
                        "{}",
                        untargeted_note(
                            picked,
                            by,
                            &denial,
                            fallback,
                            &ns,
                            &args.pod,
                            &cluster.flags
                        )
                    );
                }
                if server_dry_run {
                    // The admitted dry run without a target is the answer.
                    (probe_ec, probe_result)
                } else {
                    match adding.send(&pod, None).await? {
                        (ec, Judged::Done(result)) => (ec, result),
                        (_, Judged::Denied { error, .. } | Judged::Stale(error)) => {
                            return Err(error);
                        }
                    }
                }
            }
            (_, Judged::Stale(error)) => return Err(error),
        },
    };
    let Some(final_ec) = added(&result, &name).cloned() else {
        return Err(KspyError::new(format!(
            "the API server accepted the patch but pod {ns}/{} has no container {name}",
            args.pod
        ))
        .hint("a mutating webhook may have renamed or removed it"));
    };

    if server_dry_run {
        report_dry_run(&ns, &args.pod, &ec, &final_ec, d)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(format) = d.output {
        output::print(&final_ec, format)?;
    }
    if !d.quiet {
        match &final_ec.target_container_name {
            Some(t) => eprintln!(
                "added debug container {name} to pod {ns}/{} (target: {t}, profile: {})",
                args.pod,
                d.profile.name()
            ),
            None => eprintln!(
                "added debug container {name} to pod {ns}/{} (no target container: it shares only the \
                 pod's network and IPC namespaces)",
                args.pod
            ),
        }
    }
    if !d.quiet
        && let Some(note) = final_ec
            .target_container_name
            .as_deref()
            .and_then(|t| target_not_running(&result, t, &cluster.flags))
    {
        eprintln!("note: {note}");
    }
    let reattach = reattach_command(crate::prog(), &ns, &cluster.flags, &args.pod, &name, d);
    session::follow(&cluster, result, &name, d, &reattach, &name).await
}

/// What adding the debug container sends, whatever its target.
#[derive(Clone, Copy)]
struct Adding<'a> {
    cluster: &'a Cluster,
    builder: &'a ContainerSpecBuilder,
    /// The container `--mount-target`, `--env-from-target` and `--as-target-user` copy from.
    reference: &'a str,
    patch_type: PatchType,
    /// `--dry-run=server`: sent with `dryRun=All`.
    dry_run: bool,
    action: &'a Action,
}

impl Adding<'_> {
    /// Sends the patch adding the debug container, targeting `target`, to `pod` as read. When
    /// the pod changed since — a JSON patch creating the list, whose `resourceVersion` test
    /// failed, and nothing was written (perhaps someone else added a container, and the list
    /// exists now) — reads it again and sends the patch built anew, once. Returns the container
    /// sent and what the API server made of it: the pod, a webhook's denial, or a second
    /// change.
    async fn send(
        &self,
        pod: &Pod,
        target: Option<&str>,
    ) -> Result<(EphemeralContainer, Judged<Pod>), KspyError> {
        let ec = self
            .builder
            .build_ephemeral(pod, target, Some(self.reference))?;
        let req = add_ephemeral(pod, &ec, self.patch_type, self.dry_run);
        match self.cluster.send_judged::<Pod>(&req, self.action).await? {
            Judged::Stale(_) => {}
            judged => return Ok((ec, judged)),
        }
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let fresh = self.cluster.get_pod(name).await?;
        check_running(&fresh, &self.cluster.flags)?;
        check_not_terminating(&fresh, &self.cluster.flags)?;
        let ec = self
            .builder
            .build_ephemeral(&fresh, target, Some(self.reference))?;
        let req = add_ephemeral(&fresh, &ec, self.patch_type, self.dry_run);
        let judged = self.cluster.send_judged::<Pod>(&req, self.action).await?;
        Ok((ec, judged))
    }
}

/// How the debug container came to be sent without a target after kspy's own pick was
/// denied ([`untargeted_note`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fallback {
    /// A dry run without a target was admitted (before the denied request when kspy picked
    /// the first container, after it otherwise); the real request without one is being sent.
    Probed,
    /// `--dry-run=server`: the dry run without a target was admitted.
    DryRun,
}

/// The note kspy prints when no target was named, kspy's own pick of `picked` (`by` says why
/// it picked it) was `denial`'s, and the debug container is sent without a target instead
/// (`how`: or, in a server dry run, would be: the untargeted dry run was admitted).
/// `ns`, `pod` and `flags` (the cluster flags given) go into the command it suggests.
fn untargeted_note(
    picked: &str,
    by: PickedBy,
    denial: &WebhookDenial,
    how: Fallback,
    ns: &str,
    pod: &str,
    flags: &str,
) -> String {
    let mut text = format!(
        "note: no target container was named: kspy targeted {picked}, {}, and admission webhook \
         \"{}\" refused it as target",
        by.describe(),
        output::printable(&denial.webhook)
    );
    match denial.reasons.as_slice() {
        [] => text.push('\n'),
        reasons => {
            text.push_str(":\n");
            for r in reasons {
                text.push_str(&format!("  - {}\n", output::printable(r)));
            }
        }
    }
    let what = match how {
        Fallback::DryRun => {
            "a real run sends the debug container without a target instead, as this dry run \
             shows (the dry run without a target was admitted)"
        }
        Fallback::Probed => {
            "sending the debug container without a target instead, as a dry run without one \
             was admitted (the denied request wrote nothing)"
        }
    };
    text.push_str(&format!(
        "{what}: it shares the pod's network and IPC namespaces but not {picked}'s processes; to \
         target a container, name it: `{} attach {pod} -n {ns}{flags} -c CONTAINER` (the policy \
         may refuse {picked} as above)",
        crate::prog()
    ));
    text
}

/// Why a debug container targeting container `target` of `pod` may wait long, or for good:
/// `target` does not run (crash-looping, or exited). The debug container joins its process
/// namespace, so the kubelet starts it only while `target` runs, and the kernel ends it with
/// `target`'s own process: for a crash loop, a `--fork` copy, whose `target` sleeps, is the
/// way. `None` when `target` runs or has no status yet (the pod is starting). `flags`, the
/// cluster flags given, go into the command it suggests.
pub fn target_not_running(pod: &Pod, target: &str, flags: &str) -> Option<String> {
    let status = crate::wait::container_status(pod, target)?;
    if status.state.as_ref()?.running.is_some() {
        return None;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    Some(format!(
        "target container {target} is not running ({}): the debug container shares its \
         processes, so it starts only while {target} runs and ends when {target}'s process \
         does; for a crash loop, debug a copy in which {target} sleeps instead: `{} copy {name} \
         -n {ns}{flags} --to {name}-debug --fork -c {target} -it`",
        state_of(pod, target).describe(),
        crate::prog()
    ))
}

/// A dry run (`--dry-run=client|server`) with `--reuse` that found running debug container
/// `existing` in `pod`: the command would attach to it and add nothing, so there is no write
/// to print or to have judged. Says so as a dry run's verdict; `-o` prints the container.
fn report_dry_reuse(
    ns: &str,
    pod_name: &str,
    pod: &Pod,
    existing: &str,
    d: &DebugArgs,
) -> Result<(), KspyError> {
    if let (Some(format), Some(container)) = (d.output, added(pod, existing)) {
        output::print(container, format)?;
    }
    let mode = match d.dry_run {
        DryRun::Server => "server dry run",
        _ => "client dry run",
    };
    let text = format!(
        "would reuse running debug container {existing} of pod {ns}/{pod_name} ({mode}: no write \
         was sent)\nnothing would be added, so there is no PATCH to show or to have admission \
         judge; attaching needs RBAC verb \"get\" on pods/attach, and \"create\" as well on \
         Kubernetes 1.35 or later (`kubectl auth can-i get pods/attach -n {ns}`, `kubectl auth \
         can-i create pods/attach -n {ns}`)\n"
    );
    output::report_verdict(text, d.output, d.quiet)
}

/// The ephemeral container `name` in `pod`.
fn added<'a>(pod: &'a Pod, name: &str) -> Option<&'a EphemeralContainer> {
    pod.spec
        .as_ref()?
        .ephemeral_containers
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
}

fn report_dry_run(
    ns: &str,
    pod: &str,
    sent: &EphemeralContainer,
    admitted: &EphemeralContainer,
    d: &DebugArgs,
) -> Result<(), KspyError> {
    if let Some(format) = d.output {
        output::print(admitted, format)?;
    }
    if d.quiet && d.output.is_some() {
        return Ok(());
    }
    let before = serde_json::to_value(sent).unwrap_or(Value::Null);
    let after = serde_json::to_value(admitted).unwrap_or(Value::Null);
    let changes = output::diff(&before, &after);
    let mut text = format!(
        "admitted (server dry run, nothing was changed): debug container {} in pod {ns}/{pod}\n",
        sent.name
    );
    if changes.is_empty() {
        text.push_str("the API server and its admission webhooks changed nothing\n");
    } else {
        text.push_str("changed by the API server's defaults and its admission webhooks:\n");
        // Field names and values a webhook set: its text, escaped for the terminal.
        for c in changes {
            text.push_str(&format!("  {}\n", output::printable(&c)));
        }
    }
    output::report_verdict(text, d.output, d.quiet)
}

/// The builder used for tests of `--reuse`.
#[cfg(test)]
fn test_builder() -> crate::container::ContainerSpecBuilder {
    crate::container::ContainerSpecBuilder {
        name: "debugger-new00".into(),
        image: "busybox:latest".into(),
        profile: crate::profile::Profile::Legacy,
        ..crate::container::ContainerSpecBuilder::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden;

    #[test]
    fn reuse_matches_running_same_image_and_privileges() {
        let pod = golden::fixture_pod("pod-web.json");
        // The fixture's running debugger-old01 has busybox:latest, SYS_PTRACE, target app.
        let wanted = test_builder()
            .build_ephemeral(&pod, Some("app"), None)
            .expect("builds");
        assert_eq!(
            find_reusable(&pod, &wanted, false).expect("ok"),
            None,
            "legacy adds no SYS_PTRACE: no match"
        );

        let mut b = test_builder();
        b.caps = vec!["SYS_PTRACE".into()];
        let wanted = b.build_ephemeral(&pod, Some("app"), None).expect("builds");
        assert_eq!(
            find_reusable(&pod, &wanted, false).expect("ok"),
            Some("debugger-old01".into())
        );

        let wanted = b
            .build_ephemeral(&pod, Some("sidecar"), None)
            .expect("builds");
        assert_eq!(
            find_reusable(&pod, &wanted, false).expect("ok"),
            None,
            "other target"
        );
    }

    /// A running pod whose only running debug container is `c` (status Running).
    fn pod_with_running(c: Value) -> Pod {
        let mut pod = serde_json::to_value(golden::fixture_pod("pod-web.json")).expect("json");
        let name = c["name"].clone();
        pod["spec"]["ephemeralContainers"] = serde_json::json!([c]);
        pod["status"]["ephemeralContainerStatuses"] = serde_json::json!([{
            "name": name, "image": "busybox:latest", "imageID": "", "ready": false,
            "restartCount": 0, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}
        }]);
        serde_json::from_value(pod).expect("pod")
    }

    #[test]
    fn reuse_compares_the_whole_security_context_and_command() {
        use crate::profile::Profile;
        // A root debug container with nothing in its security context (profile legacy).
        let legacy = serde_json::json!({"name": "debugger-root1", "image": "busybox:latest",
            "targetContainerName": "app", "terminationMessagePolicy": "File"});
        let pod = pod_with_running(legacy.clone());
        let wanted = |profile: Profile, command: &[&str]| {
            let mut b = test_builder();
            b.profile = profile;
            b.command = command.iter().map(|c| c.to_string()).collect();
            b.build_ephemeral(&pod, Some("app"), None).expect("builds")
        };
        assert_eq!(
            find_reusable(&pod, &wanted(Profile::Legacy, &[]), false).expect("ok"),
            Some("debugger-root1".into())
        );
        assert_eq!(
            find_reusable(&pod, &wanted(Profile::Restricted, &[]), false).expect("ok"),
            None,
            "restricted (non-root, drop ALL…) is not a root container"
        );
        assert_eq!(
            find_reusable(&pod, &wanted(Profile::Baseline, &[]), false).expect("ok"),
            Some("debugger-root1".into()),
            "baseline's empty security context is legacy's"
        );
        assert_eq!(
            find_reusable(
                &pod,
                &wanted(Profile::Legacy, &["strace", "-p", "1"]),
                false
            )
            .expect("ok"),
            None,
            "another command"
        );

        // A restricted container is found again by restricted, capability order aside.
        let restricted = wanted(Profile::Restricted, &[]);
        let mut existing = serde_json::to_value(&restricted).expect("json");
        existing["name"] = serde_json::json!("debugger-nonroot");
        let pod = pod_with_running(existing);
        assert_eq!(
            find_reusable(&pod, &restricted, false).expect("ok"),
            Some("debugger-nonroot".into())
        );
        // Hardened beyond what legacy asks (as kspy's webhook hardens every new container in
        // a restricted namespace): it stands in.
        assert_eq!(
            find_reusable(&pod, &wanted(Profile::Legacy, &[]), false).expect("ok"),
            Some("debugger-nonroot".into())
        );
        // More privilege than asked never does.
        let mut privileged = serde_json::to_value(&restricted).expect("json");
        privileged["name"] = serde_json::json!("debugger-priv");
        privileged["securityContext"]["privileged"] = serde_json::json!(true);
        let pod = pod_with_running(privileged);
        assert_eq!(find_reusable(&pod, &restricted, false).expect("ok"), None);
        let mut more_caps = serde_json::to_value(&restricted).expect("json");
        more_caps["name"] = serde_json::json!("debugger-caps");
        more_caps["securityContext"]["capabilities"]["add"] = serde_json::json!(["SYS_ADMIN"]);
        let pod = pod_with_running(more_caps);
        assert_eq!(find_reusable(&pod, &restricted, false).expect("ok"), None);

        // -it needs a container with stdin and a TTY.
        let pod = pod_with_running(legacy);
        let mut b = test_builder();
        b.stdin = true;
        b.tty = true;
        let interactive = b.build_ephemeral(&pod, Some("app"), None).expect("builds");
        assert_eq!(find_reusable(&pod, &interactive, false).expect("ok"), None);
    }

    #[test]
    fn reuse_names_the_flags_it_cannot_honour() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: AttachArgs,
        }
        let parse = |extra: &[&str]| {
            let mut argv = vec!["kspy", "web", "--reuse"];
            argv.extend_from_slice(extra);
            let cli = Cli::try_parse_from(argv).expect("parses");
            flags_reuse_cannot_honour(&cli.a.debug, &cli.a.target)
        };
        assert!(parse(&["--cap", "NET_ADMIN", "--profile", "restricted"]).is_empty());
        assert_eq!(
            parse(&[
                "--env",
                "A=1",
                "--mount",
                "data:/d",
                "--as-target-user",
                "--env-from-target",
                "--mount-target=true",
            ]),
            vec![
                "--as-target-user",
                "--mount-target",
                "--mount",
                "--env",
                "--env-from-target"
            ]
        );
        assert!(parse(&["--mount-target=false"]).is_empty());
    }

    /// `--reuse --name` attaches to the named container as it is: each flag that describes the
    /// container must describe it, or kspy would attach to something else than asked, quietly.
    #[test]
    fn reuse_by_name_checks_what_the_flags_ask_of_the_container() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: AttachArgs,
        }
        let pod = golden::fixture_pod("pod-web.json");
        // busybox:latest, SYS_PTRACE (profile general), target app, -it, no command.
        let found = added(&pod, "debugger-old01").expect("fixture").clone();
        let mismatches = |extra: &[&str]| {
            let mut argv = vec!["kspy", "web", "--reuse", "--name", "debugger-old01"];
            argv.extend_from_slice(extra);
            let a = Cli::try_parse_from(argv).expect("parses").a;
            let target = a.target.target.as_deref();
            let asked = a
                .debug
                .builder("debugger-cmp00".into(), Some(&a.target))
                .expect("builder")
                .build_ephemeral(&pod, target, Some(target.unwrap_or("app")))
                .expect("builds");
            named_mismatches(&found, &asked, &a.debug, &a.target)
        };
        assert!(mismatches(&[]).is_empty());
        assert!(mismatches(&["-it"]).is_empty());
        assert!(
            mismatches(&[
                "--image",
                "busybox:latest",
                "--cap",
                "sys_ptrace",
                "-c",
                "app"
            ])
            .is_empty(),
            "what matches is accepted"
        );
        assert_eq!(
            mismatches(&["--image", "nicolaka/netshoot"]),
            ["--image: it runs image \"busybox:latest\", not \"nicolaka/netshoot\""]
        );
        assert_eq!(
            mismatches(&["--cap", "NET_ADMIN", "--cap", "SYS_PTRACE"]),
            ["--cap: it does not add NET_ADMIN (it adds SYS_PTRACE)"]
        );
        assert_eq!(
            mismatches(&["--profile", "sysadmin"]),
            ["--profile sysadmin: its security context is not the one the profile sets"]
        );
        assert_eq!(
            mismatches(&["-c", "sidecar"]),
            ["-c: it targets \"app\", not \"sidecar\""]
        );
        assert_eq!(
            mismatches(&["--", "strace", "-p", "1"]),
            ["-- COMMAND: it runs [], not [\"strace\", \"-p\", \"1\"]"]
        );
        assert_eq!(
            mismatches(&["--reason", "INC-1", "--image-pull-policy", "Always"]),
            [
                "--reason: it was added with KSPY_REASON (none), not \"INC-1\"",
                "--image-pull-policy: its pull policy is (none), not \"Always\""
            ]
        );
    }

    /// Without --name, a reason or a pull policy asked for is part of what must match: a
    /// container added for another reason is not reused (the new one carries the reason,
    /// which policies and audit read).
    #[test]
    fn reuse_matches_the_reason_and_pull_policy_asked_for() {
        let pod = golden::fixture_pod("pod-web.json");
        let mut b = test_builder();
        b.caps = vec!["SYS_PTRACE".into()];
        let wanted = b.build_ephemeral(&pod, Some("app"), None).expect("builds");
        assert_eq!(
            find_reusable(&pod, &wanted, false).expect("ok"),
            Some("debugger-old01".into())
        );
        let mut with_reason = b.clone();
        with_reason.reason = Some("INC-1".into());
        let wanted = with_reason
            .build_ephemeral(&pod, Some("app"), None)
            .expect("builds");
        assert_eq!(find_reusable(&pod, &wanted, false).expect("ok"), None);
        let mut always = b.clone();
        always.image_pull_policy = Some("Always".into());
        let wanted = always
            .build_ephemeral(&pod, Some("app"), None)
            .expect("builds");
        assert_eq!(find_reusable(&pod, &wanted, false).expect("ok"), None);

        // The same reason and pull policy: reused.
        let mut v = serde_json::to_value(&pod).expect("json");
        v["spec"]["ephemeralContainers"][0]["env"] =
            serde_json::json!([{"name": "KSPY_REASON", "value": "INC-1"}]);
        v["spec"]["ephemeralContainers"][0]["imagePullPolicy"] = serde_json::json!("Always");
        let pod: Pod = serde_json::from_value(v).expect("pod");
        let mut both = b;
        both.reason = Some("INC-1".into());
        both.image_pull_policy = Some("Always".into());
        let wanted = both
            .build_ephemeral(&pod, Some("app"), None)
            .expect("builds");
        assert_eq!(
            find_reusable(&pod, &wanted, false).expect("ok"),
            Some("debugger-old01".into())
        );
    }

    /// The note names the target kspy picked, the webhook and its reasons, and how to target
    /// explicitly; the webhook's text is escaped for the terminal.
    #[test]
    fn untargeted_note_says_what_was_refused_and_how_to_target() {
        let denial = WebhookDenial::parse(
            "admission webhook \"validate.kspy.dev\" denied the request: kspy denied the debug \
             container for pod prod/duo:\n- mounting secret volume \"creds\"\u{1b}[2J",
        )
        .expect("a webhook denial");
        let note = untargeted_note(
            "app",
            PickedBy::FirstContainer,
            &denial,
            Fallback::Probed,
            "prod",
            "duo",
            " --context c",
        );
        assert!(
            note.starts_with(
                "note: no target container was named: kspy targeted app, the pod's first \
                 container, and admission webhook \"validate.kspy.dev\" refused it as target:\n  \
                 - mounting secret volume \"creds\"\\u{1b}[2J\n"
            ),
            "{note}"
        );
        assert!(!note.contains('\u{1b}'), "{note}");
        assert!(note.contains("sending the debug container without a target instead"));
        assert!(
            note.contains("`kspy attach duo -n prod --context c -c CONTAINER`"),
            "{note}"
        );
        let dry = untargeted_note(
            "app",
            PickedBy::FirstContainer,
            &denial,
            Fallback::DryRun,
            "prod",
            "duo",
            "",
        );
        assert!(dry.contains("a real run sends the debug container without a target instead"));
        let sole = untargeted_note(
            "app",
            PickedBy::OnlyContainer,
            &denial,
            Fallback::Probed,
            "prod",
            "solo",
            "",
        );
        assert!(
            sole.starts_with(
                "note: no target container was named: kspy targeted app, the pod's only \
                 container, and admission webhook"
            ),
            "{sole}"
        );
    }

    #[test]
    fn finished_pods_are_refused() {
        let mut pod = golden::fixture_pod("pod-web.json");
        assert!(check_running(&pod, "").is_ok());
        if let Some(s) = pod.status.as_mut() {
            s.phase = Some("Failed".into());
        }
        let err = check_running(&pod, " --context prod").expect_err("finished");
        assert!(
            err.headline.contains("has finished (Failed)"),
            "{}",
            err.headline
        );
        // A command to paste, naming the pod and the cluster, not placeholders.
        assert!(err.hint.expect("hint").ends_with(
            "`kspy copy web-7d9f8c6b5-x2x4q -n prod --context prod --to \
                 web-7d9f8c6b5-x2x4q-debug --fork -it`"
        ));
    }

    #[test]
    fn reuse_by_name_refuses_a_terminated_container() {
        let pod = golden::fixture_pod("pod-web.json");
        let by_name = |n: &str| EphemeralContainer {
            name: n.into(),
            ..EphemeralContainer::default()
        };
        assert_eq!(
            find_reusable(&pod, &by_name("debugger-old01"), true).expect("ok"),
            Some("debugger-old01".into())
        );
        let err = find_reusable(&pod, &by_name("debugger-gone2"), true).expect_err("terminated");
        assert!(
            err.headline.contains("cannot be restarted"),
            "{}",
            err.headline
        );
        assert_eq!(
            find_reusable(&pod, &by_name("nope"), true).expect("ok"),
            None
        );
        // An app container is no debug container: said so, not "add --reuse".
        let err = find_reusable(&pod, &by_name("app"), true).expect_err("app container");
        assert!(
            err.headline
                .starts_with("container app is one of pod web-7d9f8c6b5-x2x4q's own containers"),
            "{}",
            err.headline
        );
        assert!(!err.hint.expect("hint").contains("--reuse"));
    }
}
