//! Waiting for a debug container to run: watch the pod until the container runs or
//! terminates, showing why it waits (ContainerCreating, ErrImagePull and its message,
//! Unschedulable…) — a spinner on a terminal, one line per change otherwise — up to `--timeout`.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use kube::api::{WatchEvent, WatchParams};
use kube::core::ResourceExt;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::errors::{Action, KspyError};
use crate::interrupt::{EXIT_INTERRUPTED, interrupt};
use crate::output;

/// The longest `--timeout` accepted: a year. Anything longer is a mistake (and overflows the
/// clock's arithmetic somewhere near 584 billion years); `0` waits without a limit.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(8760 * 3600);

/// Parses a duration as Go (and so kubectl) writes them — `90s`, `5m`, `1.5m`, `1h30m`,
/// `500ms`, with units `ns`, `us` (`µs`), `ms`, `s`, `m`, `h` and decimal fractions — or plain
/// seconds (`90`); `0` means no limit. Durations longer than [`MAX_TIMEOUT`] are refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let too_long = || {
        format!(
            "{s:?} is longer than the longest timeout accepted, {} (a year); use 0 for no limit",
            format_duration(MAX_TIMEOUT)
        )
    };
    let not_a_duration =
        || format!("{s:?} is not a duration like 30s, 1.5m or 1h30m (units ns, us, ms, s, m, h)");
    if s.is_empty() {
        return Err("empty duration".into());
    }
    // Nanoseconds, in u128 so that no sum or product of the parts below can overflow before
    // it is compared with the maximum.
    let max = MAX_TIMEOUT.as_nanos();
    let mut total: u128 = 0;
    // A non-zero digit written: such a duration rounding to nothing is not `0` (no limit).
    let mut written_nonzero = false;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
            return Err(not_a_duration());
        }
        written_nonzero |= number.bytes().any(|b| (b'1'..=b'9').contains(&b));
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_len);
        rest = next;
        let unit_ns: u128 = match unit {
            // Plain seconds: only a whole number alone.
            "" if number_len == s.len() && fraction.is_empty() && !number.contains('.') => {
                1_000_000_000
            }
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(not_a_duration()),
            _ => {
                return Err(format!(
                    "{s:?}: unknown unit {unit:?} (use ns, us, ms, s, m or h)"
                ));
            }
        };
        // More digits than the maximum has cannot make a valid timeout.
        if whole.trim_start_matches('0').len() > 20 {
            return Err(too_long());
        }
        let whole: u128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| not_a_duration())?
        };
        // Nine fractional digits are below a nanosecond of any unit but hours and minutes;
        // beyond twelve nothing counts.
        let fraction = &fraction[..fraction.len().min(12)];
        let fraction_ns = if fraction.is_empty() {
            0
        } else {
            let digits: u128 = fraction.parse().map_err(|_| not_a_duration())?;
            digits * unit_ns / 10u128.pow(fraction.len() as u32)
        };
        total = whole
            .checked_mul(unit_ns)
            .and_then(|n| n.checked_add(fraction_ns))
            .and_then(|n| n.checked_add(total))
            .filter(|n| *n <= max)
            .ok_or_else(too_long)?;
    }
    if total == 0 && written_nonzero {
        return Err(format!(
            "{s:?} is shorter than a nanosecond, which would read as 0, no limit; give at \
             least 1ns, or 0 for no limit"
        ));
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| too_long())?;
    let nanos = u32::try_from(total % 1_000_000_000).map_err(|_| too_long())?;
    Ok(Duration::new(secs, nanos))
}

/// Where a container stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Running.
    Running,
    /// Terminated, with its exit code and reason.
    Terminated {
        /// Exit code.
        exit_code: i32,
        /// Reason (`Completed`, `Error`, …).
        reason: String,
    },
    /// Not running yet, and why.
    Waiting {
        /// Why: the waiting reason, or the pod's scheduling problem.
        reason: String,
        /// The accompanying message.
        message: String,
    },
}

impl State {
    /// `reason: message`, or just the reason.
    pub fn describe(&self) -> String {
        match self {
            State::Running => "Running".into(),
            State::Terminated { exit_code, reason } => {
                format!("Terminated ({reason}, exit code {exit_code})")
            }
            State::Waiting { reason, message } if message.is_empty() => reason.clone(),
            State::Waiting { reason, message } => format!("{reason}: {message}"),
        }
    }
}

/// The status of container `name` in `pod`, wherever it is listed.
pub fn container_status<'a>(pod: &'a Pod, name: &str) -> Option<&'a ContainerStatus> {
    let status = pod.status.as_ref()?;
    status
        .ephemeral_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .chain(status.init_container_statuses.iter().flatten())
        .find(|s| s.name == name)
}

/// How a container that ran ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exited {
    /// Its exit code.
    pub exit_code: i32,
    /// The kubelet's reason (`Completed`, `Error`, …).
    pub reason: String,
    /// Whether the kubelet has restarted it since (the pod's `restartPolicy` is `Always` or
    /// `OnFailure`, as a debug copy keeps the source pod's): the exit is its `lastState`, and
    /// it runs, or waits in back-off, again.
    pub restarted: bool,
}

/// How many times the kubelet restarted container `name` of `pod` (0 before it has a status).
pub fn restarts(pod: &Pod, name: &str) -> i32 {
    container_status(pod, name).map_or(0, |s| s.restart_count)
}

/// How container `name` of `pod` ended, when it ran and exited: terminated now, or — in a pod
/// whose `restartPolicy` restarts it — restarted more often than the `restarts_before` it had
/// when kspy started to follow it, its `lastState` being the run that ended. `state` alone
/// misses the latter: a restarted container shows `Running` or `Waiting` (`CrashLoopBackOff`)
/// again.
pub fn exited_since(pod: &Pod, name: &str, restarts_before: i32) -> Option<Exited> {
    let status = container_status(pod, name)?;
    let ended = |t: &k8s_openapi::api::core::v1::ContainerStateTerminated, restarted| Exited {
        exit_code: t.exit_code,
        reason: t.reason.clone().unwrap_or_else(|| "Terminated".into()),
        restarted,
    };
    if let Some(t) = status.state.as_ref().and_then(|s| s.terminated.as_ref()) {
        return Some(ended(t, false));
    }
    if status.restart_count > restarts_before
        && let Some(t) = status
            .last_state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
    {
        return Some(ended(t, true));
    }
    None
}

/// The pod's `restartPolicy` as the kubelet applies it (`Always` when unset).
pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Where container `name` of `pod` stands.
pub fn state_of(pod: &Pod, name: &str) -> State {
    if let Some(s) = container_status(pod, name).and_then(|s| s.state.as_ref()) {
        if s.running.is_some() {
            return State::Running;
        }
        if let Some(t) = &s.terminated {
            return State::Terminated {
                exit_code: t.exit_code,
                reason: t.reason.clone().unwrap_or_else(|| "Terminated".into()),
            };
        }
        if let Some(w) = &s.waiting {
            return State::Waiting {
                reason: w.reason.clone().unwrap_or_else(|| "Waiting".into()),
                message: w.message.clone().unwrap_or_default(),
            };
        }
    }
    // No status for the container yet: say what the pod is doing.
    let status = pod.status.as_ref();
    let unschedulable = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False");
    if let Some(c) = unschedulable {
        return State::Waiting {
            reason: c.reason.clone().unwrap_or_else(|| "Unschedulable".into()),
            message: c.message.clone().unwrap_or_default(),
        };
    }
    let phase = status
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    State::Waiting {
        reason: if phase == "Running" {
            "Starting".into()
        } else {
            phase
        },
        message: String::new(),
    }
}

/// How many columns the progress line may take: the terminal's width, or 80 when it has
/// none to tell, including a terminal that reports 0 columns (under `script`, say), where
/// cutting the line to the width left only "…".
fn line_width(size: std::io::Result<(u16, u16)>) -> usize {
    size.ok()
        .map(|(columns, _)| usize::from(columns))
        .filter(|columns| *columns > 0)
        .unwrap_or(80)
}

/// Shows progress on stderr.
pub struct Progress {
    spinner: bool,
    quiet: bool,
    label: String,
    shown: String,
    frame: usize,
}

const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

impl Progress {
    /// Progress for waiting on `label`; a spinner when stderr is a terminal.
    pub fn new(label: String, quiet: bool) -> Progress {
        Progress {
            spinner: !quiet && std::io::stderr().is_terminal(),
            quiet,
            label,
            shown: String::new(),
            frame: 0,
        }
    }

    fn update(&mut self, state: &State) {
        // The kubelet's waiting message is anyone's text (an image name, a registry's answer).
        let text = output::printable(&state.describe()).into_owned();
        if self.quiet || text == self.shown {
            return;
        }
        self.shown = text;
        if self.spinner {
            self.draw();
        } else {
            eprintln!("waiting for {}: {}", self.label, self.shown);
        }
    }

    fn draw(&mut self) {
        if !self.spinner {
            return;
        }
        self.frame = (self.frame + 1) % FRAMES.len();
        let mut err = std::io::stderr();
        let width = line_width(crossterm::terminal::size());
        let mut line = format!(
            "{} waiting for {}: {}",
            FRAMES[self.frame], self.label, self.shown
        );
        if line.chars().count() >= width {
            line = line
                .chars()
                .take(width.saturating_sub(2))
                .collect::<String>()
                + "…";
        }
        let _ = write!(err, "\r\x1b[2K{line}");
        let _ = err.flush();
    }

    fn finish(&mut self) {
        if self.spinner {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
            let _ = std::io::stderr().flush();
        }
    }
}

/// The outcome of waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The container runs.
    Running,
    /// The container ran and stopped.
    Terminated,
}

/// Watches pod `pod` (starting from the copy in hand) until `container` runs or has run and
/// exited — terminated, or restarted more often than the `restarts_before` it had when kspy
/// started to follow it ([`exited_since`]) — or `timeout` passes (`None`: no limit). On a
/// timeout, the error says what stays behind and that `reattach` attaches to it later.
pub async fn wait_for_container(
    cluster: &Cluster,
    mut pod: Pod,
    container: &str,
    restarts_before: i32,
    timeout: Option<Duration>,
    quiet: bool,
    reattach: &str,
) -> Result<(Pod, Outcome), KspyError> {
    let ephemeral = pod
        .spec
        .as_ref()
        .and_then(|s| s.ephemeral_containers.as_ref())
        .is_some_and(|e| e.iter().any(|c| c.name == container));
    let name = pod.name_any();
    let ns = cluster.namespace.clone();
    let mut progress = Progress::new(format!("{container} in pod {ns}/{name}"), quiet);
    // `parse_duration` caps timeouts; still, a deadline past the clock's range is no deadline.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    let result = tokio::select! {
        r = watch_loop(cluster, &mut pod, &name, container, restarts_before, deadline,
                       &mut progress) => r,
        () = interrupt() => Err(WaitError::Interrupted),
    };
    // Also on an interrupt: the spinner's line is cleared before anything else is said.
    progress.finish();
    let left_behind = || {
        [
            if ephemeral {
                format!(
                    "debug container {container} was added and stays in pod {ns}/{name}: \
                     ephemeral containers cannot be removed"
                )
            } else {
                format!(
                    "pod {ns}/{name} was created and stays until deleted: \
                     `kubectl delete pod {name} -n {ns}{}`",
                    cluster.flags
                )
            },
            format!("once it runs, attach to it with: {reattach}"),
        ]
    };
    match result {
        Ok(outcome) => Ok((pod, outcome)),
        Err(WaitError::Interrupted) => Err(KspyError::new(format!(
            "interrupted while waiting for container {container} of pod {ns}/{name} (last \
             state: {})",
            state_of(&pod, container).describe()
        ))
        .details(left_behind())
        .exit_code(EXIT_INTERRUPTED)),
        Err(WaitError::Timeout) => {
            let state = state_of(&pod, container);
            let hint = timeout_hint(&state);
            Err(KspyError::new(format!(
                "timed out after {} waiting for container {container} of pod {ns}/{name}",
                timeout.map(format_duration).unwrap_or_default()
            ))
            .details([format!("last state: {}", state.describe())])
            .details(left_behind())
            .hint(hint))
        }
        Err(WaitError::Deleted) => Err(KspyError::new(format!(
            "pod {ns}/{name} was deleted while waiting for container {container}"
        ))),
        Err(WaitError::Finished(f)) => {
            Err(finished_error(&ns, &cluster.flags, &name, container, &f))
        }
        Err(WaitError::NeverStarts(state)) => {
            let [stays, _attach] = left_behind();
            Err(KspyError::new(format!(
                "container {container} of pod {ns}/{name} will never start: {}",
                output::printable(&state.describe())
            ))
            .details([stays])
            .hint(never_starts(&state).unwrap_or_default()))
        }
        // The container (or pod) was added before the wait: a watch refused (RBAC grants
        // patch but not watch) or cut says nothing of it by itself, and running the command
        // again would add another.
        Err(WaitError::Api(e)) => Err(e.details(left_behind())),
    }
}

/// What to do when `--timeout` passed with the container in `state`: raising it helps only
/// where nothing is known to be wrong.
fn timeout_hint(state: &State) -> &'static str {
    let State::Waiting { reason, .. } = state else {
        return "raise --timeout, or look at `kubectl describe pod` for events";
    };
    match reason.as_str() {
        r if r.contains("ImagePull") || r == "InvalidImageName" => {
            "the image cannot be pulled: check its name, the registry, and the pod's imagePullSecrets"
        }
        "Unschedulable" => "no node can take the pod; check the node's taints and resources",
        // The kubelet's own retries: its message above says why it cannot create or start the
        // container (a Secret or ConfigMap its env names that does not exist, a target
        // container that does not run…); waiting longer changes nothing until that is fixed.
        "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
            "the kubelet cannot create or start the container: the last state's message says \
             why; fix that (`kubectl describe pod` shows the events too), as waiting longer \
             does not"
        }
        _ => "raise --timeout, or look at `kubectl describe pod` for events",
    }
}

enum WaitError {
    Timeout,
    Interrupted,
    Deleted,
    Finished(Finished),
    /// Waiting for what can never come ([`never_starts`]).
    NeverStarts(State),
    Api(KspyError),
}

/// What waiting makes of the pod as it stands: the container ran and exited (also when it was
/// restarted since: it may be running again, or waiting in back-off, but the run kspy waited
/// for is over), runs, the pod finished without running it, waits for what can never come
/// ([`never_starts`]), or waiting goes on.
fn judge(pod: &Pod, container: &str, restarts_before: i32) -> Result<Option<Outcome>, WaitError> {
    if exited_since(pod, container, restarts_before).is_some() {
        return Ok(Some(Outcome::Terminated));
    }
    match state_of(pod, container) {
        State::Running => Ok(Some(Outcome::Running)),
        State::Terminated { .. } => Ok(Some(Outcome::Terminated)),
        state @ State::Waiting { .. } => match finished(pod) {
            Some(f) => Err(WaitError::Finished(f)),
            None if never_starts(&state).is_some() => Err(WaitError::NeverStarts(state)),
            None => Ok(None),
        },
    }
}

/// What to do about a container that waits for what can never come, or `None` when it may
/// yet start. The kubelet keeps such a container waiting and retrying for good, and neither
/// its image nor its security context can change (an ephemeral container's never; a pod's
/// container's not without a new pod): waiting out `--timeout` would only delay the news.
/// Only reasons that depend on nothing but the container and its image count; a missing
/// Secret (`CreateContainerConfigError` for env) or a pull that fails (`ErrImagePull`,
/// `ImagePullBackOff`) may yet be fixed while kspy waits.
pub fn never_starts(state: &State) -> Option<&'static str> {
    let State::Waiting { reason, message } = state else {
        return None;
    };
    match reason.as_str() {
        "InvalidImageName" => Some(
            "the kubelet cannot parse the image reference: add a debug container with a valid \
             --image (a lower-case repository, as registry.example.com/team/tools:1.2)",
        ),
        "ErrImageNeverPull" => Some(
            "the image pull policy is Never and the node has no copy of the image: leave out \
             --image-pull-policy Never (or give IfNotPresent), or use an image the node has",
        ),
        // The kubelet's words (kuberuntime's verifyRunAsNonRoot), for an image that runs as
        // root or as a user named, not numbered.
        "CreateContainerConfigError"
            if message.contains("runAsNonRoot") && message.contains("image") =>
        {
            Some(
                "the container must not run as root and its image runs as root (or as a user \
                 the kubelet cannot tell is not root): name a non-root user — a --custom file \
                 with {\"securityContext\": {\"runAsUser\": 65534}}, or --as-target-user \
                 (attach, copy) when the target runs as one — or use an image that runs as a \
                 numeric non-root user",
            )
        }
        _ => None,
    }
}

async fn watch_loop(
    cluster: &Cluster,
    pod: &mut Pod,
    name: &str,
    container: &str,
    restarts_before: i32,
    deadline: Option<Instant>,
    progress: &mut Progress,
) -> Result<Outcome, WaitError> {
    let api = cluster.pods();
    let action = Action::WatchPod {
        ns: cluster.namespace.clone(),
        pod: name.to_string(),
    };
    let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
    let deadline_or_far = deadline.unwrap_or(far);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        match judge(pod, container, restarts_before)? {
            Some(outcome) => return Ok(outcome),
            None => progress.update(&state_of(pod, container)),
        }
        if Instant::now() >= deadline_or_far {
            return Err(WaitError::Timeout);
        }
        let remaining = deadline_or_far.saturating_duration_since(Instant::now());
        let secs = u32::try_from(remaining.as_secs().clamp(1, 290)).unwrap_or(290);
        let params = WatchParams::default()
            .fields(&format!("metadata.name={name}"))
            .timeout(secs);
        let rv = pod.resource_version().unwrap_or_else(|| "0".into());
        let stream = api
            .watch(&params, &rv)
            .await
            .map_err(|e| WaitError::Api(cluster.explain(&action, e)))?;
        let mut stream = std::pin::pin!(stream);
        let mut saw_event = false;
        let mut refetch = false;
        loop {
            tokio::select! {
                ev = stream.next() => match ev {
                    None => break,
                    Some(Err(e)) => return Err(WaitError::Api(cluster.explain(&action, e))),
                    Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                        saw_event = true;
                        *pod = p;
                        match judge(pod, container, restarts_before)? {
                            Some(outcome) => return Ok(outcome),
                            None => progress.update(&state_of(pod, container)),
                        }
                    }
                    Some(Ok(WatchEvent::Deleted(_))) => return Err(WaitError::Deleted),
                    Some(Ok(WatchEvent::Bookmark(_))) => saw_event = true,
                    Some(Ok(WatchEvent::Error(_))) => {
                        // Usually 410 Gone: the resource version is too old. Read the pod again.
                        refetch = true;
                        break;
                    }
                },
                _ = tick.tick() => progress.draw(),
                _ = tokio::time::sleep_until(deadline_or_far) => return Err(WaitError::Timeout),
            }
        }
        // The watch ended (its server-side timeout, or at once): pause so as not to spin.
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            _ = tokio::time::sleep_until(deadline_or_far) => return Err(WaitError::Timeout),
        }
        if refetch || !saw_event {
            // Read the pod afresh for a resource version the server still has.
            match api.get(name).await {
                Ok(p) => *pod = p,
                Err(kube::Error::Api(s)) if s.code == 404 => return Err(WaitError::Deleted),
                Err(e) => return Err(WaitError::Api(cluster.explain(&action, e))),
            }
        }
    }
}

/// After an attach stream ends: how `container` ended once the status of pod `pod` shows it
/// ran and exited — terminated, or restarted more often than the `restarts_before` it had when
/// the session began ([`exited_since`]) — reading the pod until `grace` has passed; `None` when
/// it still runs the same run by then (the session was detached or cut, and it goes on).
pub async fn exit_after_session(
    cluster: &Cluster,
    pod: &str,
    container: &str,
    restarts_before: i32,
    grace: Duration,
) -> Result<Option<Exited>, KspyError> {
    let deadline = Instant::now() + grace;
    let action = Action::GetPod {
        ns: cluster.namespace.clone(),
        pod: pod.to_string(),
    };
    loop {
        match cluster.pods().get(pod).await {
            Ok(p) => {
                if let Some(exited) = exited_since(&p, container, restarts_before) {
                    return Ok(Some(exited));
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {
                return Err(KspyError::new(format!(
                    "pod {}/{pod} was deleted when the session ended; the exit code of container \
                     {container} is unknown",
                    cluster.namespace
                )));
            }
            Err(e) => {
                return Err(cluster.explain(&action, e).details([format!(
                    "reading the exit code of container {container} after the session ended"
                )]));
            }
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Why pod `pod` will never run the container any more: it has finished (phase `Failed` —
/// evicted, or rejected by its node's kubelet — or `Succeeded`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// `Failed` or `Succeeded`.
    pub phase: String,
    /// `status.reason`: `Evicted`, `OutOfpods`, `NodeAffinity`…, or empty.
    pub reason: String,
    /// `status.message`, or empty.
    pub message: String,
    /// The node it was on, when known.
    pub node: Option<String>,
}

/// The pod has finished: `Some` when its phase is `Failed` or `Succeeded`.
pub fn finished(pod: &Pod) -> Option<Finished> {
    let status = pod.status.as_ref()?;
    let phase = status.phase.as_deref()?;
    if phase != "Failed" && phase != "Succeeded" {
        return None;
    }
    Some(Finished {
        phase: phase.to_string(),
        reason: status.reason.clone().unwrap_or_default(),
        message: status.message.clone().unwrap_or_default(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
    })
}

/// The error for waiting on `container` of pod `ns/name` that finished without running it;
/// `flags`, the cluster flags given, go into the commands it suggests.
fn finished_error(ns: &str, flags: &str, name: &str, container: &str, f: &Finished) -> KspyError {
    let verb = if f.phase == "Failed" {
        "failed"
    } else {
        "completed"
    };
    let why = match (f.reason.as_str(), f.message.as_str()) {
        ("", "") => String::new(),
        (reason, "") => format!(" ({reason})"),
        ("", message) => format!(": {message}"),
        (reason, message) => format!(" ({reason}): {message}"),
    };
    let describe = format!("`kubectl describe pod {name} -n {ns}{flags}`");
    let node = f.node.as_deref().unwrap_or("NODE");
    let hint = match f.reason.as_str() {
        "Evicted" => format!(
            "the kubelet evicted the pod to reclaim resources on node {node} (see \
             `kubectl describe node {node}`); it will not run again: start over on a node with room"
        ),
        "" if f.phase == "Succeeded" => format!(
            "all of the pod's containers had exited; a finished pod runs nothing more (see {describe})"
        ),
        "" => format!("it will not run again; see why with {describe}"),
        _ if f.phase == "Failed" => format!(
            "the kubelet on node {node} refused or stopped the pod and it will not run again: \
             pick another node or free what this one lacks (see {describe})"
        ),
        _ => format!("it will not run again; see {describe}"),
    };
    KspyError::new(format!(
        "pod {ns}/{name} {verb}{why}; container {container} will not run"
    ))
    .hint(hint)
}

/// A duration as Go writes it, less the units that are zero — `1h30m`, `2s`, `1m30.5s`,
/// `1.5s`, `500ms`, `250us`, `0s` — so that what kspy echoes is what was given (`--timeout
/// 500ms` is never "1s") and parses back with [`parse_duration`]. Units below a second are
/// used only for durations under a second, as Go does; micro is `us`, which the parser takes.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    let nanos = d.subsec_nanos();
    if d.as_secs() == 0 {
        let (unit_ns, unit) = match nanos {
            1_000_000.. => (1_000_000, "ms"),
            1_000.. => (1_000, "us"),
            _ => (1, "ns"),
        };
        return format!(
            "{}{}{unit}",
            nanos / unit_ns,
            decimals(nanos % unit_ns, unit_ns)
        );
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || nanos > 0 || out.is_empty() {
        out.push_str(&format!("{s}{}s", decimals(nanos, 1_000_000_000)));
    }
    out
}

/// `.5` for 500 of a unit of 1000, without trailing zeros; empty for 0.
fn decimals(rest: u32, unit: u32) -> String {
    if rest == 0 {
        return String::new();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{rest:0width$}");
    format!(".{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_terminal_without_a_width_is_taken_as_80_columns() {
        assert_eq!(line_width(Ok((120, 40))), 120);
        assert_eq!(line_width(Ok((0, 0))), 80);
        assert_eq!(line_width(Err(std::io::Error::other("not a tty"))), 80);
    }

    /// The kubelet's waiting message reaches the progress line with its control characters
    /// escaped: an image name or a registry's answer could otherwise drive the terminal.
    #[test]
    fn the_progress_line_escapes_the_kubelets_message() {
        let mut progress = Progress::new("dbg in pod prod/web".into(), false);
        progress.update(&State::Waiting {
            reason: "ErrImagePull".into(),
            message: "failed to pull \"x\u{1b}]0;pwned\u{7}\": not found\r\n".into(),
        });
        assert_eq!(
            progress.shown,
            "ErrImagePull: failed to pull \"x\\u{1b}]0;pwned\\u{7}\": not found\\r\\n"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("5x").is_err());
        // Below a nanosecond is not "no limit".
        let tiny = parse_duration("0.0000000001s").unwrap_err();
        assert!(tiny.contains("shorter than a nanosecond"), "{tiny}");
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0.000s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1ns"), Ok(Duration::from_nanos(1)));
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
        // Go's durations, as kubectl takes them: decimal fractions and small units.
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration(".5h"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1.h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2.25s"), Ok(Duration::from_millis(2250)));
        assert_eq!(parse_duration("1h0.5m"), Ok(Duration::from_secs(3630)));
        assert_eq!(parse_duration("1500us"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        for bad in [".", "1.2.3s", "1..5m", "5m.", "1.5", "-1m", "1m5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        // The longest accepted is a year; anything longer is refused, never overflows.
        assert_eq!(parse_duration("8760h"), Ok(MAX_TIMEOUT));
        for long in [
            "8760h1ns",
            "8761h",
            "18446744073709551615h",
            "18446744073709551615",
            "99999999999999999999999999999999999999999h",
            "18446744073709551615h18446744073709551615h",
        ] {
            let err = parse_duration(long).expect_err(long);
            assert!(
                err.contains("longer than the longest timeout accepted, 8760h"),
                "{err}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
    }

    /// What kspy echoes is what was given: sub-second and fractional durations are never
    /// rounded to whole seconds, and each parses back to itself.
    #[test]
    fn durations_are_echoed_faithfully() {
        for (given, shown) in [
            ("500ms", "500ms"),
            ("1500ms", "1.5s"),
            ("1.5s", "1.5s"),
            ("90.25s", "1m30.25s"),
            ("1h0.5s", "1h0.5s"),
            ("2.5ms", "2.5ms"),
            ("250us", "250us"),
            ("1500us", "1.5ms"),
            ("42ns", "42ns"),
            ("1h1ns", "1h0.000000001s"),
            ("0", "0s"),
            ("2s", "2s"),
            ("1h30m", "1h30m"),
            ("8760h", "8760h"),
        ] {
            let d = parse_duration(given).expect(given);
            assert_eq!(format_duration(d), shown, "{given}");
            assert_eq!(parse_duration(shown), Ok(d), "{shown} parses back");
        }
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "status": status})).expect("pod")
    }

    #[test]
    fn states_from_status() {
        let p = pod(json!({"ephemeralContainerStatuses": [{
            "name": "dbg", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "pull access denied for nope"}}
        }]}));
        assert_eq!(
            state_of(&p, "dbg").describe(),
            "ErrImagePull: pull access denied for nope"
        );

        let p = pod(json!({"containerStatuses": [{
            "name": "debugger", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 3, "reason": "Error"}}
        }]}));
        assert_eq!(
            state_of(&p, "debugger"),
            State::Terminated {
                exit_code: 3,
                reason: "Error".into()
            }
        );

        let p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available"}]}),
        );
        assert_eq!(
            state_of(&p, "debugger").describe(),
            "Unschedulable: 0/3 nodes are available"
        );

        let p = pod(json!({"phase": "Pending"}));
        assert_eq!(state_of(&p, "debugger").describe(), "Pending");
    }

    /// A debug copy keeps the pod's restartPolicy: its debug container, once exited, is
    /// restarted, and its status shows Running or CrashLoopBackOff again. The run that ended
    /// is in `lastState`, found by the restart count going up.
    #[test]
    fn a_restarted_container_has_run_and_exited() {
        let status = |state: serde_json::Value, restarts: i32, last: serde_json::Value| {
            pod(json!({"phase": "Running", "containerStatuses": [{
                "name": "dbg", "image": "busybox", "imageID": "", "ready": false,
                "restartCount": restarts, "state": state, "lastState": last}]}))
        };
        let exit3 = json!({"terminated": {"exitCode": 3, "reason": "Error"}});
        let back_off = status(
            json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}),
            1,
            exit3.clone(),
        );
        let restarted = Exited {
            exit_code: 3,
            reason: "Error".into(),
            restarted: true,
        };
        assert_eq!(exited_since(&back_off, "dbg", 0), Some(restarted.clone()));
        assert!(matches!(
            judge(&back_off, "dbg", 0),
            Ok(Some(Outcome::Terminated))
        ));
        let running_again = status(
            json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
            1,
            exit3,
        );
        assert_eq!(exited_since(&running_again, "dbg", 0), Some(restarted));
        assert!(matches!(
            judge(&running_again, "dbg", 0),
            Ok(Some(Outcome::Terminated))
        ));
        // Restarts from before kspy followed it are not this run's end.
        assert_eq!(exited_since(&running_again, "dbg", 1), None);
        assert!(matches!(
            judge(&running_again, "dbg", 1),
            Ok(Some(Outcome::Running))
        ));
        // Terminated now (restartPolicy Never): not restarted.
        let done = status(
            json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
            0,
            json!({}),
        );
        assert_eq!(
            exited_since(&done, "dbg", 0),
            Some(Exited {
                exit_code: 0,
                reason: "Completed".into(),
                restarted: false
            })
        );
        assert_eq!(restarts(&back_off, "dbg"), 1);
        assert_eq!(restarts(&back_off, "other"), 0);
    }

    /// A timeout suggests a longer one only where nothing is known to be wrong.
    #[test]
    fn the_timeout_hint_fits_the_last_state() {
        let waiting = |reason: &str| State::Waiting {
            reason: reason.into(),
            message: String::new(),
        };
        assert!(timeout_hint(&waiting("ContainerCreating")).starts_with("raise --timeout"));
        assert!(timeout_hint(&waiting("ErrImagePull")).starts_with("the image cannot be pulled"));
        for reason in [
            "CreateContainerConfigError",
            "CreateContainerError",
            "RunContainerError",
        ] {
            let hint = timeout_hint(&waiting(reason));
            assert!(
                hint.starts_with("the kubelet cannot create or start"),
                "{reason}"
            );
            assert!(!hint.contains("raise --timeout"), "{reason}");
        }
    }

    /// Only reasons that hang on the container and its image end the wait; what may be fixed
    /// meanwhile (a pull, a missing Secret) does not.
    #[test]
    fn containers_that_can_never_start_are_told_from_those_that_may() {
        let waiting = |reason: &str, message: &str| State::Waiting {
            reason: reason.into(),
            message: message.into(),
        };
        assert!(never_starts(&waiting("InvalidImageName", "")).is_some());
        assert!(never_starts(&waiting("ErrImageNeverPull", "")).is_some());
        assert!(
            never_starts(&waiting(
                "CreateContainerConfigError",
                "container has runAsNonRoot and image has non-numeric user (nobody), cannot \
                 verify user is non-root"
            ))
            .is_some()
        );
        for (reason, message) in [
            ("CreateContainerConfigError", "secret \"db\" not found"),
            ("ErrImagePull", "pull access denied"),
            ("ImagePullBackOff", ""),
            ("ContainerCreating", ""),
        ] {
            assert_eq!(never_starts(&waiting(reason, message)), None, "{reason}");
        }
        assert_eq!(never_starts(&State::Running), None);
    }

    #[test]
    fn finished_pods_end_the_wait_with_their_reason() {
        // A node-debugging pod the kubelet refused: Failed, no container status at all.
        let mut p = pod(json!({"phase": "Failed", "reason": "OutOfpods",
            "message": "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: 110, capacity: 110"}));
        p.spec = Some(
            serde_json::from_value(json!({"nodeName": "worker-3", "containers": []}))
                .expect("spec"),
        );
        assert!(matches!(
            judge(&p, "debugger", 0),
            Err(WaitError::Finished(_))
        ));
        let f = finished(&p).expect("finished");
        let e = finished_error(
            "default",
            "",
            "node-debugger-worker-3-x2x4q",
            "debugger",
            &f,
        );
        assert_eq!(
            e.headline,
            "pod default/node-debugger-worker-3-x2x4q failed (OutOfpods): Pod was rejected: Node \
             didn't have enough resource: pods, requested: 1, used: 110, capacity: 110; container \
             debugger will not run"
        );
        let hint = e.hint.expect("hint");
        assert!(
            hint.contains("the kubelet on node worker-3 refused"),
            "{hint}"
        );
        assert!(!hint.contains("--timeout"), "{hint}");

        let p = pod(json!({"phase": "Succeeded"}));
        let e = finished_error("prod", "", "p", "dbg", &finished(&p).expect("finished"));
        assert_eq!(
            e.headline,
            "pod prod/p completed; container dbg will not run"
        );
        assert!(e.hint.expect("hint").contains("had exited"));

        // Running, or a container that ran: no verdict from the phase.
        assert!(matches!(
            judge(&pod(json!({"phase": "Running"})), "dbg", 0),
            Ok(None)
        ));
        let p = pod(json!({"phase": "Failed", "containerStatuses": [{
            "name": "dbg", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}]}));
        assert!(matches!(judge(&p, "dbg", 0), Ok(Some(Outcome::Terminated))));
    }
}
