//! Turning failures — above all the API server's `Status` answers — into messages that say
//! what happened and what to do next.
//!
//! Every failure that reaches the user is a [`KspyError`]: a one-line headline, optional
//! detail lines (a webhook's reasons, Pod Security violations, the names that do exist) and
//! an optional hint. `main` prints it the way ripgrep prints its errors:
//!
//! ```text
//! kspy: admission webhook "validate.kspy.dev" denied adding debugger-x2bq7 to pod prod/web
//!   - capability SYS_ADMIN is granted by no policy that applies
//! hint: `--dry-run=server` asks again without changing anything
//! ```

use std::fmt;

use kube::core::Status;

use crate::output::printable;
use crate::request_timeout::NoAnswer;
use crate::wait::format_duration;

/// A failure worth showing to a person: what happened, the details, and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{headline}")]
pub struct KspyError {
    /// One line: what happened.
    pub headline: String,
    /// Further lines, printed indented under the headline.
    pub details: Vec<String>,
    /// What to do about it, when kspy can tell.
    pub hint: Option<String>,
    /// The underlying error, printed as "caused by" lines.
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// kspy's exit code for it: 1 unless set ([`KspyError::exit_code`]).
    pub code: u8,
}

impl KspyError {
    /// A failure with only a headline.
    pub fn new(headline: impl Into<String>) -> Self {
        KspyError {
            headline: headline.into(),
            details: Vec::new(),
            hint: None,
            source: None,
            code: 1,
        }
    }

    /// Sets kspy's exit code for this failure (130 after an interrupt, as shells expect).
    pub fn exit_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    /// Adds detail lines.
    pub fn details<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.details.extend(lines.into_iter().map(Into::into));
        self
    }

    /// Sets the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Sets the underlying error.
    pub fn source(mut self, err: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(err));
        self
    }

    /// Renders the message as `main` prints it, `prog` being the name kspy was invoked as.
    ///
    /// Messages carry text from the cluster (an API server's or a webhook's message, a
    /// kubelet's reason), so every part is printed with its control characters escaped
    /// ([`printable`]): a detail or cause that spans lines is printed as several indented
    /// lines, anything else that could drive the terminal shows as `\u{1b}`.
    pub fn render(&self, prog: &str) -> String {
        let mut out = format!("{prog}: {}\n", printable(&self.headline));
        for line in self.details.iter().flat_map(|d| d.lines()) {
            out.push_str("  ");
            out.push_str(&printable(line));
            out.push('\n');
        }
        let mut source = self.source.as_deref().map(|e| e as &dyn std::error::Error);
        let mut previous = self.headline.clone();
        while let Some(err) = source {
            let text = err.to_string();
            // Many errors repeat their source in their own message; say it once.
            if !previous.contains(&text) {
                for (i, line) in text.lines().enumerate() {
                    let lead = if i == 0 { "  caused by: " } else { "    " };
                    out.push_str(&format!("{lead}{}\n", printable(line)));
                }
            }
            previous = text;
            source = err.source();
        }
        if let Some(hint) = &self.hint {
            out.push_str(&format!("hint: {}\n", printable(hint)));
        }
        out
    }
}

/// What kspy was doing when the API server answered with an error; it decides the headline
/// and, for a 403, which RBAC permission is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `GET` of a pod.
    GetPod {
        /// Namespace.
        ns: String,
        /// Pod name.
        pod: String,
    },
    /// `GET` of the pods of a namespace (all namespaces when `None`).
    ListPods {
        /// Namespace, or `None` for all namespaces.
        ns: Option<String>,
    },
    /// `PATCH` of `pods/ephemeralcontainers`.
    AddEphemeral {
        /// Namespace.
        ns: String,
        /// Pod name.
        pod: String,
        /// Name of the debug container being added.
        container: String,
    },
    /// `POST` of a pod (a debug copy or a node-debugging pod).
    CreatePod {
        /// Namespace.
        ns: String,
        /// Name of the new pod.
        pod: String,
    },
    /// `DELETE` of a pod (`kspy copy --replace`).
    DeletePod {
        /// Namespace.
        ns: String,
        /// Pod name.
        pod: String,
    },
    /// `GET` of a node.
    GetNode {
        /// Node name.
        node: String,
    },
    /// Watch of a pod while waiting for a container.
    WatchPod {
        /// Namespace.
        ns: String,
        /// Pod name.
        pod: String,
    },
    /// Attaching to a container (`pods/attach`).
    Attach {
        /// Namespace.
        ns: String,
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
    },
    /// Reading a container's logs (`pods/log`).
    Logs {
        /// Namespace.
        ns: String,
        /// Pod name.
        pod: String,
        /// Container name.
        container: String,
    },
}

impl Action {
    /// "could not …" headline for a generic failure.
    fn failed(&self) -> String {
        match self {
            Action::GetPod { ns, pod } => format!("could not read pod {ns}/{pod}"),
            Action::ListPods { ns: Some(ns) } => {
                format!("could not list the pods of namespace {ns}")
            }
            Action::ListPods { ns: None } => "could not list pods in all namespaces".to_string(),
            Action::AddEphemeral { ns, pod, container } => {
                format!("could not add debug container {container} to pod {ns}/{pod}")
            }
            Action::CreatePod { ns, pod } => format!("could not create pod {ns}/{pod}"),
            Action::DeletePod { ns, pod } => format!("could not delete pod {ns}/{pod}"),
            Action::GetNode { node } => format!("could not read node {node}"),
            Action::WatchPod { ns, pod } => format!("could not watch pod {ns}/{pod}"),
            Action::Attach { ns, pod, container } => {
                format!("could not attach to container {container} of pod {ns}/{pod}")
            }
            Action::Logs { ns, pod, container } => {
                format!("could not read the logs of container {container} of pod {ns}/{pod}")
            }
        }
    }

    /// What was being admitted, for an admission denial ("adding … to pod …").
    fn admitted(&self) -> String {
        match self {
            Action::AddEphemeral { ns, pod, container } => {
                format!("adding debug container {container} to pod {ns}/{pod}")
            }
            Action::CreatePod { ns, pod } => format!("creating pod {ns}/{pod}"),
            Action::DeletePod { ns, pod } => format!("deleting pod {ns}/{pod}"),
            other => other.failed().replacen("could not ", "", 1),
        }
    }

    /// The RBAC permission the action needs: (verb, resource, namespace).
    pub fn permission(&self) -> (&'static str, &'static str, Option<&str>) {
        match self {
            Action::GetPod { ns, .. } => ("get", "pods", Some(ns)),
            Action::ListPods { ns } => ("list", "pods", ns.as_deref()),
            Action::AddEphemeral { ns, .. } => ("patch", "pods/ephemeralcontainers", Some(ns)),
            Action::CreatePod { ns, .. } => ("create", "pods", Some(ns)),
            Action::DeletePod { ns, .. } => ("delete", "pods", Some(ns)),
            Action::GetNode { .. } => ("get", "nodes", None),
            Action::WatchPod { ns, .. } => ("watch", "pods", Some(ns)),
            // A WebSocket attach is a GET, authorized as `get` up to 1.34; 1.35+ also checks
            // `create` (AuthorizePodWebsocketUpgradeCreatePermission), which a 403 then names.
            Action::Attach { ns, .. } => ("get", "pods/attach", Some(ns)),
            Action::Logs { ns, .. } => ("get", "pods/log", Some(ns)),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.failed())
    }
}

/// Explains any error from the kube client; `server` is the API server URL, named when it
/// cannot be reached.
/// `flags` are the `--kubeconfig`/`--context` flags given (` --context prod`, or empty), which
/// every command a hint suggests repeats, so that it looks at the same cluster.
pub fn explain(action: &Action, err: kube::Error, server: &str, flags: &str) -> KspyError {
    if let Some(no_answer) = find_cause::<NoAnswer>(&err) {
        return explain_no_answer(action, no_answer, server, flags);
    }
    let certificate = match &err {
        kube::Error::HyperError(_) | kube::Error::Service(_) => certificate_problem(&err),
        _ => None,
    };
    if let Some(problem) = certificate {
        return explain_certificate(action, server, &problem).source(err);
    }
    let dropped = match &err {
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            crate::retry::connection_dropped(&err)
        }
        _ => false,
    };
    if dropped {
        // It was reached, and the request sent: a write may have been carried out. (A read
        // was sent again as kubectl does, `crate::retry`, and cut each time.)
        return KspyError::new(format!(
            "{}: the connection to the API server at {server} was closed before it answered",
            action.failed()
        ))
        .details(maybe_done(action, flags))
        .hint(
            "the API server, or a load balancer or proxy in front of it, closed the connection: \
             it may be restarting or overloaded; try again in a moment",
        )
        .source(err);
    }
    match err {
        kube::Error::Api(status) => explain_status(action, &status, flags),
        kube::Error::HyperError(_) | kube::Error::Service(_) => KspyError::new(format!(
            "{}: cannot reach the API server at {server}",
            action.failed()
        ))
        .hint("check the context (`--context`, `KUBECONFIG`) and that the cluster is up")
        .source(err),
        kube::Error::Auth(_) => {
            KspyError::new(format!("{}: could not authenticate", action.failed()))
                .hint("your kubeconfig's credentials could not be used; log in again")
                .source(err)
        }
        other => KspyError::new(action.failed()).source(other),
    }
}

/// The exec credential plugin (`users[].user.exec`) of the kubeconfig user kspy uses: what a
/// message about its failure names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecPlugin {
    /// The kubeconfig user whose plugin it is.
    pub user: String,
    /// Its `command` (the executable, without its arguments, which may hold secrets).
    pub command: String,
    /// Its `installHint`, when the kubeconfig gives one (kubectl shows it when the command is
    /// not found).
    pub install_hint: Option<String>,
}

/// At most this many of a failed plugin's last stderr lines are shown.
const PLUGIN_STDERR_LINES: usize = 20;

/// Explains a failure of the exec credential `plugin` — not found, failed, or printed no
/// credential — with `doing` as the headline's start (`cannot get credentials`, or what kspy
/// was doing); `None` for any other error. kube-rs reports a failed plugin with the `Debug`
/// form of its whole output — stdout too, which is where a credential goes — on one line; this
/// shows only its stderr (its message, often what to do: `run 'aws sso login'`), line by line,
/// and nothing of its stdout.
pub fn explain_exec_plugin(
    doing: &str,
    err: &kube::Error,
    plugin: &ExecPlugin,
    flags: &str,
) -> Option<KspyError> {
    use kube::client::AuthError;
    let kube::Error::Auth(auth) = err else {
        return None;
    };
    let ExecPlugin {
        user,
        command,
        install_hint,
    } = plugin;
    let what = format!("the exec credential plugin of kubeconfig user {user}, {command},");
    let config = format!("users[].user.exec of user {user} in the kubeconfig");
    let e = match auth {
        AuthError::AuthExecStart(io) if io.kind() == std::io::ErrorKind::NotFound => {
            let hint = match install_hint {
                Some(_) => format!(
                    "install it as its install hint above says (kspy looks for it as kubectl \
                     does, on PATH unless the command is a path), or fix {config}"
                ),
                None => {
                    format!("install it (on PATH, unless the command is a path), or fix {config}")
                }
            };
            KspyError::new(format!("{doing}: {what} is not installed (not found)"))
                .details(install_hint.iter().cloned())
                .hint(hint)
        }
        AuthError::AuthExecStart(io) => {
            KspyError::new(format!("{doing}: {what} could not be run: {io}")).hint(format!(
                "check that {command} is an executable, or fix {config}"
            ))
        }
        AuthError::AuthExecRun { out, .. } => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
            let mut details: Vec<String> = Vec::new();
            if lines.len() > PLUGIN_STDERR_LINES {
                details.push(format!(
                    "… ({} earlier lines of its output left out)",
                    lines.len() - PLUGIN_STDERR_LINES
                ));
            }
            let shown = &lines[lines.len().saturating_sub(PLUGIN_STDERR_LINES)..];
            details.extend(shown.iter().map(|l| l.to_string()));
            if lines.is_empty() {
                // An interactive plugin writes to kspy's own stderr.
                details.push("its own messages, if it printed any, are above".to_string());
            }
            let status = match out.status.code() {
                Some(code) => format!("exit code {code}"),
                None => out.status.to_string(),
            };
            KspyError::new(format!("{doing}: {what} failed ({status})"))
                .details(details)
                .hint(format!(
                    "its message says why: most often the login it relies on has expired; log \
                     in again with the tool it belongs to and run the command again \
                     (`kubectl{flags} get pods` runs the same plugin); the plugin is set in \
                     {config}"
                ))
        }
        AuthError::AuthExecParse(parse) => {
            KspyError::new(format!(
                "{doing}: {what} printed no credential kspy can read"
            ))
            // Its first line only: the rest quotes the plugin's stdout, which may hold
            // a credential in a form kspy did not expect.
            .details(parse.to_string().lines().next().map(str::to_string))
            .hint(format!(
                "it must print an ExecCredential (JSON) on stdout; check the plugin's \
                     version and the apiVersion {config} asks for"
            ))
        }
        _ => return None,
    };
    Some(e)
}

/// The first cause of type `T` in `err`'s chain, `err` included.
fn find_cause<'a, T: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        cause = e.source();
    }
    None
}

/// A request that got no answer in time ([`NoAnswer`]): a server that takes connections but
/// does not answer is hung or overloaded, which is not "cannot reach".
fn explain_no_answer(action: &Action, n: &NoAnswer, server: &str, flags: &str) -> KspyError {
    let after = format_duration(n.after);
    if !n.connected {
        return KspyError::new(format!(
            "{}: cannot reach the API server at {server}: no connection within {after}",
            action.failed()
        ))
        .hint(
            "nothing answers at that address: check the server address of the context's cluster \
             (`--context`, `KUBECONFIG`), the network path to it (VPN, firewall) and that the \
             cluster is up",
        );
    }
    let maybe_done = maybe_done(action, flags);
    KspyError::new(format!(
        "{}: the API server at {server} took the connection but did not answer within {after}",
        action.failed()
    ))
    .details(maybe_done)
    .hint(format!(
        "{} accepts connections but nothing answers: the API server, or a proxy or load \
         balancer in front of it, is hung or overloaded; check the cluster's health and try \
         again later{}",
        n.hop,
        if n.connecting {
            ""
        } else {
            ", or wait longer with --request-timeout (0 for no limit)"
        }
    ))
}

/// For a write that got no answer: that it may have been carried out all the same, and how to
/// look. `None` for a read.
fn maybe_done(action: &Action, flags: &str) -> Option<String> {
    match action {
        Action::AddEphemeral { .. } | Action::CreatePod { .. } | Action::DeletePod { .. } => {
            let (_, _, ns) = action.permission();
            Some(format!(
                "the request may have been carried out all the same: look before running the \
                 command again (`kubectl{flags} get pods -n {}`)",
                ns.unwrap_or("default")
            ))
        }
        _ => None,
    }
}

/// Ctrl-C while a request was on its way: said, with whether it may have been carried out;
/// kspy then ends as Ctrl-C ends it ([`crate::interrupt::EXIT_INTERRUPTED`]).
pub fn interrupted_request(action: &Action, flags: &str) -> KspyError {
    KspyError::new(format!(
        "{}: interrupted before the API server answered",
        action.failed()
    ))
    .details(maybe_done(action, flags))
    .exit_code(crate::interrupt::EXIT_INTERRUPTED)
}

/// The TLS certificate problem somewhere in `err`'s chain (rustls' `invalid peer
/// certificate: UnknownIssuer`), when that is why the API server could not be reached.
fn certificate_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(e) = cause {
        let text = e.to_string();
        if let Some(i) = text.find("invalid peer certificate") {
            let problem = text[i + "invalid peer certificate".len()..]
                .trim_start_matches(':')
                .trim();
            return Some(problem.to_string());
        }
        cause = e.source();
    }
    None
}

/// The message for an API server whose certificate kspy does not accept (`problem`, as
/// rustls names it).
fn explain_certificate(action: &Action, server: &str, problem: &str) -> KspyError {
    let (why, hint) = if problem.contains("UnknownIssuer") || problem.contains("BadSignature") {
        (
            "it is not signed by a certificate authority the kubeconfig trusts".to_string(),
            "the kubeconfig's cluster entry needs the CA that signed the API server's \
             certificate: set certificate-authority (a file) or certificate-authority-data \
             (base64 PEM) for the context's cluster; if it is set, the cluster's CA may have \
             changed: get a fresh kubeconfig from your cluster's provider"
                .to_string(),
        )
    } else if problem.contains("NotValidForName") {
        (
            "it is not valid for the server's name".to_string(),
            format!(
                "the kubeconfig's server address ({server}) must be one of the certificate's \
                 names; use that name, or set tls-server-name for the cluster"
            ),
        )
    } else if problem.contains("Expired") || problem.contains("NotValidYet") {
        (
            "it is expired or not yet valid".to_string(),
            "check this machine's clock; if it is right, the cluster's certificate must be \
             renewed"
                .to_string(),
        )
    } else {
        (
            format!("it was refused ({problem})"),
            "check the kubeconfig's certificate-authority(-data) for the context's cluster"
                .to_string(),
        )
    };
    KspyError::new(format!(
        "{}: the API server's certificate at {server} is not trusted: {why}",
        action.failed()
    ))
    .hint(hint)
}

/// Explains an API `Status` answer.
pub fn explain_status(action: &Action, status: &Status, flags: &str) -> KspyError {
    let message = status.message.trim();
    if let Some(denial) = WebhookDenial::parse(message) {
        return explain_webhook_denial(action, &denial);
    }
    if let Some(violation) = PodSecurityViolation::parse(message) {
        return explain_pod_security(action, &violation);
    }
    if message.contains("failed calling webhook") {
        return KspyError::new(format!(
            "{}: an admission webhook could not be called",
            action.failed()
        ))
        .details([message.to_string()])
        .hint(format!(
            "the webhook's service is down or unreachable and its failurePolicy is Fail; \
             platform team: `kubectl{flags} -n kspy-system get pods`"
        ));
    }
    match status.code {
        401 => KspyError::new(format!(
            "{}: the API server did not accept your credentials",
            action.failed()
        ))
        .details(nonempty(message))
        .hint("your credentials expired or are wrong; log in again"),
        403 => explain_forbidden(action, message, flags),
        404 => explain_not_found(action, status),
        // A write conflict: the object changed between kspy's read and its write. The
        // ephemeralcontainers subresource only ever answers 409 so (its new container's name
        // already taken is a 422).
        409 if status.reason == "Conflict" || matches!(action, Action::AddEphemeral { .. }) => {
            KspyError::new(format!(
                "{}: the pod was changed by someone else at the same time (409 Conflict)",
                action.failed()
            ))
            .details(nonempty(message))
            .hint(
                "run the same command again; if this keeps happening, a controller or webhook is \
                 rewriting the pod continuously",
            )
        }
        409 => {
            let mut e = KspyError::new(format!("{}: it already exists", action.failed()))
                .details(nonempty(message));
            if let Action::CreatePod { ns, pod } = action {
                // Never a bare `kubectl delete`: the pod in the way may be anyone's, even the
                // one being debugged.
                e = e.hint(format!(
                    "pick another name; pod {ns}/{pod} stays as it is. Only if it is a debug pod \
                     of kspy's you no longer need (`kubectl{flags} get pod {pod} -n {ns} -L \
                     kspy.dev/debug` shows copy or node), delete it first"
                ));
            }
            e
        }
        // The JSON patch's test of the resourceVersion failed (again, after kspy read the
        // pod anew): the pod keeps changing under it.
        422 if matches!(action, Action::AddEphemeral { .. })
            && crate::patch::json_patch_not_applied(status) =>
        {
            KspyError::new(format!(
                "{}: the pod was changed by someone else at the same time (its resourceVersion \
                 no longer matched the JSON patch's test)",
                action.failed()
            ))
            .hint(
                "run the same command again, or use --patch-type strategic, which appends \
                 whatever the pod's version; if this keeps happening, a controller or webhook \
                 is rewriting the pod continuously",
            )
        }
        422 => {
            let causes: Vec<String> = status
                .details
                .iter()
                .flat_map(|d| d.causes.iter())
                .map(|c| {
                    if c.field.is_empty() {
                        c.message.clone()
                    } else {
                        format!("{}: {}", c.field, c.message)
                    }
                })
                .collect();
            let details = if causes.is_empty() {
                nonempty(message)
            } else {
                causes
            };
            let e = KspyError::new(format!(
                "{}: the API server found the request invalid",
                action.failed()
            ))
            .details(details);
            match name_taken_meanwhile(action, status, flags)
                .or_else(|| windows_pod(action, status))
            {
                Some(hint) => e.hint(hint),
                None => e,
            }
        }
        // Throttled: API Priority and Fairness (or max-inflight) turned it away, nothing was
        // carried out. kspy waited as often and as long as it asked within --request-timeout
        // (`crate::retry`); this answer is the one it did not wait for.
        429 => {
            let asked = status
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| format!(" (it asked for {s}s)"))
                .unwrap_or_default();
            KspyError::new(format!(
                "{}: the API server is too busy and asked to come back later (429 Too Many \
                 Requests)",
                action.failed()
            ))
            .details(nonempty(message))
            .hint(format!(
                "nothing was carried out: the API server limits the requests it takes at once \
                 (API Priority and Fairness) and is at its limit; try again in a little while. \
                 kspy waits as the server asks{asked}, up to {} times, within --request-timeout: \
                 a longer --request-timeout leaves it more time",
                crate::retry::MAX_RETRIES
            ))
        }
        _ => {
            let what = if status.code == 0 {
                String::new()
            } else {
                format!(" ({} {})", status.code, status.reason)
            };
            // A write the server timed out on may still be carried out (kspy does not send it
            // again: `crate::retry`).
            let timed_out = status.code == 504 || status.reason == "Timeout";
            KspyError::new(format!("{}{what}", action.failed()))
                .details(nonempty(message))
                .details(maybe_done(action, flags).filter(|_| timed_out))
        }
    }
}

/// The hint for a 422 that refuses Linux-only securityContext fields in a Windows pod
/// (`spec.os.name: windows`, "cannot be set for a windows pod"): the default profile,
/// `general`, adds SYS_PTRACE, which no Windows pod may carry. `None` for any other 422.
fn windows_pod(action: &Action, status: &Status) -> Option<String> {
    let (Action::AddEphemeral { ns, pod, .. } | Action::CreatePod { ns, pod }) = action else {
        return None;
    };
    const WINDOWS: &str = "cannot be set for a windows pod";
    let said = status.message.contains(WINDOWS)
        || status
            .details
            .iter()
            .flat_map(|d| d.causes.iter())
            .any(|c| c.message.contains(WINDOWS));
    said.then(|| {
        format!(
            "pod {ns}/{pod} runs Windows (spec.os.name: windows), where capabilities, \
             seccomp, runAsUser and the other Linux-only securityContext fields cannot be set: \
             run it again without --cap and with --profile legacy or --profile baseline (the \
             default profile, general, adds SYS_PTRACE)"
        )
    })
}

/// The hint for a 422 on adding debug container NAME that says NAME is taken: another
/// container of that name was added after kspy read the pod (kspy checks the name it sends
/// against the pod as read). The API server then says `existing ephemeral containers "NAME"
/// may not be changed` (a strategic merge patch merges by name into the one there) or
/// `Duplicate value: "NAME"` (a JSON patch appends a second). `None` for any other 422.
/// `flags`, the cluster flags given, go into the command it suggests.
fn name_taken_meanwhile(action: &Action, status: &Status, flags: &str) -> Option<String> {
    let Action::AddEphemeral { ns, pod, container } = action else {
        return None;
    };
    let quoted = format!("{container:?}");
    let texts = std::iter::once(status.message.as_str()).chain(
        status
            .details
            .iter()
            .flat_map(|d| d.causes.iter())
            .map(|c| c.message.as_str()),
    );
    let taken = texts.into_iter().any(|t| {
        t.contains(&format!(
            "existing ephemeral containers {quoted} may not be changed"
        )) || t.contains(&format!("Duplicate value: {quoted}"))
    });
    taken.then(|| {
        format!(
            "a container named {container} was added to pod {ns}/{pod} after kspy read it (by \
             someone else, or another kspy), and nothing was written: run the command again \
             with another --name, or without one for a generated name; to attach to that one \
             if it is a debug container: `{} attach {pod} -n {ns}{flags} --reuse --name \
             {container}`",
            crate::prog()
        )
    })
}

fn nonempty(message: &str) -> Vec<String> {
    if message.is_empty() {
        Vec::new()
    } else {
        vec![message.to_string()]
    }
}

/// A 403. Only a message shaped as the authorizer writes its denials (`User "alice" cannot
/// patch resource …`) means a missing RBAC permission; every other 403 comes from an
/// admission plugin or policy — a ResourceQuota used up, a namespace being deleted, a
/// ValidatingAdmissionPolicy — for which asking for a Role would send the user the wrong way.
fn explain_forbidden(action: &Action, message: &str, flags: &str) -> KspyError {
    match RbacDenial::parse(message) {
        Some(d) => explain_rbac(action, message, &d, flags),
        None => explain_refused(action, message, flags),
    }
}

fn explain_rbac(action: &Action, message: &str, d: &RbacDenial, flags: &str) -> KspyError {
    let (verb, resource, ns) = (&d.verb, &d.resource, &d.namespace);
    // Without a namespace the request was at cluster scope (`ls -A`, nodes): only a
    // ClusterRole grants that, and `can-i` needs `-A` to ask about pods in every namespace.
    let (role, can_i_ns, scope) = match ns {
        Some(ns) => ("Role", format!(" -n {ns}"), format!(" in namespace {ns}")),
        None if resource.starts_with("pods") => {
            ("ClusterRole", " -A".to_string(), " at cluster scope".into())
        }
        None => ("ClusterRole", String::new(), " at cluster scope".into()),
    };
    KspyError::new(format!(
        "{}: you are not allowed to {verb} {resource}{scope}",
        action.failed()
    ))
    .details(nonempty(message))
    .hint(format!(
        "ask for an RBAC {role} granting verb \"{verb}\" on resource \"{resource}\"{scope}; \
             check with `kubectl{flags} auth can-i {verb} {resource}{can_i_ns}`"
    ))
}

/// A 403 that is no RBAC denial: the server's message says why, with a hint for the refusals
/// kspy knows.
fn explain_refused(action: &Action, message: &str, flags: &str) -> KspyError {
    let (_, _, ns) = action.permission();
    let ns = ns.unwrap_or("default");
    let hint = if message.contains("exceeded quota") {
        format!(
            "a ResourceQuota of namespace {ns} is used up: `kubectl{flags} describe resourcequota \
             -n {ns}` shows its limits and what is used; delete what you no longer need there \
             (debug copies and node pods too: `{} ls{flags} -n {ns}`), or ask its owners for more",
            crate::prog()
        )
    } else if message.contains("failed quota") {
        format!(
            "a ResourceQuota of namespace {ns} requires requests or limits of every container \
             (`kubectl{flags} describe resourcequota -n {ns}`): give the debug container resources \
             with --custom (a copy or node pod; an ephemeral container cannot have any), or \
             ask the quota's owners for a LimitRange that fills them in"
        )
    } else if message.contains("because it is being terminated") {
        format!(
            "namespace {ns} is being deleted, and nothing new can be created in it; debug in \
             another namespace (-n), or wait until it is gone and recreated"
        )
    } else if let Some(policy) = admission_policy_name(message) {
        format!(
            "the ValidatingAdmissionPolicy {policy} refused it, not RBAC and not kspy's policy; \
             its owners (often the platform team) can say why: `kubectl{flags} get \
             validatingadmissionpolicy {policy} -o yaml` shows its rules"
        )
    } else {
        "this is no RBAC denial (that would say `User \"…\" cannot …`): an admission plugin or \
         policy of the cluster refused the request; its message above says why, and the \
         cluster's administrators can say more"
            .to_string()
    };
    KspyError::new(format!(
        "{}: the API server refused the request (403 Forbidden)",
        action.failed()
    ))
    .details(nonempty(message))
    .hint(hint)
}

/// The policy a ValidatingAdmissionPolicy denial names: `ValidatingAdmissionPolicy
/// 'no-debug' with binding 'no-debug-binding' denied request: …`.
fn admission_policy_name(message: &str) -> Option<&str> {
    let rest = &message[message.find("ValidatingAdmissionPolicy '")? + 27..];
    let (name, _) = rest.split_once('\'')?;
    (!name.is_empty()).then_some(name)
}

fn explain_not_found(action: &Action, status: &Status) -> KspyError {
    let message = status.message.trim();
    match action {
        // A missing subresource answers 404 with empty details (no object name), unlike a
        // missing pod whose Status names the pod.
        Action::AddEphemeral { ns, pod, .. }
            if status.details.as_ref().is_none_or(|d| d.name.is_empty()) =>
        {
            KspyError::new(format!(
                "this cluster does not serve ephemeral containers (404 on pods/{pod}/ephemeralcontainers in {ns})"
            ))
            .details(nonempty(message))
            .hint(format!(
                "ephemeral containers need Kubernetes 1.23+ (GA in 1.25); on older clusters use \
                 `{} copy POD --to NAME` instead",
                crate::prog()
            ))
        }
        Action::AddEphemeral { ns, pod, .. } => KspyError::new(format!("pod {ns}/{pod} no longer exists"))
            .details(nonempty(message)),
        Action::GetPod { ns, pod } => KspyError::new(format!("pod {pod} not found in namespace {ns}")),
        Action::GetNode { node } => KspyError::new(format!("node {node} not found")),
        other => KspyError::new(format!("{}: not found", other.failed())).details(nonempty(message)),
    }
}

/// An RBAC denial parsed from the API server's message
/// (`User "alice" cannot patch resource "pods/ephemeralcontainers" in API group "" in the namespace "prod"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RbacDenial {
    /// The user named in the message.
    pub user: String,
    /// The verb that was refused.
    pub verb: String,
    /// The resource, with its subresource (`pods/ephemeralcontainers`).
    pub resource: String,
    /// The namespace, when the request was namespaced.
    pub namespace: Option<String>,
}

impl RbacDenial {
    /// Parses the API server's RBAC message; `None` when it has another shape.
    pub fn parse(message: &str) -> Option<RbacDenial> {
        let rest = &message[message.find("User \"")? + 6..];
        let (user, rest) = rest.split_once('"')?;
        let rest = rest.trim_start().strip_prefix("cannot ")?;
        let (verb, rest) = rest.split_once(' ')?;
        let rest = rest.strip_prefix("resource \"")?;
        let (resource, rest) = rest.split_once('"')?;
        let namespace = rest
            .find("in the namespace \"")
            .and_then(|i| rest[i + 18..].split_once('"'))
            .map(|(ns, _)| ns.to_string());
        Some(RbacDenial {
            user: user.to_string(),
            verb: verb.to_string(),
            resource: resource.to_string(),
            namespace,
        })
    }
}

/// A denial by an admission webhook:
/// `admission webhook "validate.kspy.dev" denied the request: <reasons>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDenial {
    /// The webhook's name.
    pub webhook: String,
    /// The reasons, one per line.
    pub reasons: Vec<String>,
}

impl WebhookDenial {
    /// Parses an API server message; `None` when it is not a webhook denial.
    pub fn parse(message: &str) -> Option<WebhookDenial> {
        let start = message.find("admission webhook \"")?;
        let rest = &message[start + 19..];
        let (webhook, rest) = rest.split_once('"')?;
        let rest = rest.trim_start().strip_prefix("denied the request")?;
        let text = rest.trim_start_matches(':').trim();
        let text = if text.is_empty() {
            "without explanation"
        } else {
            text
        };
        let mut reasons = split_reasons(text);
        // kspy's webhook heads its list with "kspy denied the debug container for pod NS/NAME:"
        // (or "the debug copy …", "the node-debugging pod …"): kspy's own headline says that
        // already, and it is no reason.
        if reasons.len() > 1
            && reasons[0].starts_with("kspy denied the ")
            && reasons[0].ends_with(':')
        {
            reasons.remove(0);
        }
        Some(WebhookDenial {
            webhook: webhook.to_string(),
            reasons,
        })
    }
}

/// Splits a denial text into reasons: one per line, or, on a single line, one per `; `.
fn split_reasons(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let parts: Vec<&str> = if lines.len() > 1 {
        lines
    } else {
        text.split("; ")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect()
    };
    parts
        .into_iter()
        .map(|p| {
            p.trim_start_matches("- ")
                .trim_start_matches("* ")
                .to_string()
        })
        .collect()
}

fn explain_webhook_denial(action: &Action, denial: &WebhookDenial) -> KspyError {
    let is_kspy = denial.webhook.contains("kspy");
    let hint = if is_kspy {
        // The engine's reasons for a debug container that could act as its target's user
        // (`user_reach.rs` in kspy-admission): the fix is the debug container's own user or
        // capabilities, which kspy's flags set.
        let reached_by = |marker: &str| denial.reasons.iter().any(|r| r.contains(marker));
        let first = if reached_by("runs as the same user as container") {
            "the debug container runs as its target's user and so reads that container's \
             files: run it as another user (without --as-target-user); otherwise: "
        } else if reached_by("become the user of container") {
            "the debug container could act as its target's user and read that container's \
             files: a `--custom` file with {\"securityContext\": {\"allowPrivilegeEscalation\": \
             false, \"capabilities\": {\"drop\": [\"SETUID\", \"SETGID\"]}}} keeps root from \
             switching users (or use \
             `--profile restricted` with an image that runs as a non-root user); otherwise: "
        } else if reached_by("dropping capabilities does not help") {
            "the debug container and its target both run as root, and the target holds no \
             capability to set them apart: use `--profile restricted` with an image that runs \
             as a non-root user; otherwise: "
        } else if reached_by("may both run as root") {
            "the debug container and its target both run as root: a `--custom` file with \
             {\"securityContext\": {\"capabilities\": {\"drop\": [\"ALL\"]}}} leaves it less \
             than the target holds (or use `--profile restricted` with an image that runs as a \
             non-root user); otherwise: "
        } else {
            ""
        };
        format!(
            "{first}kspy's policy decides who may debug what; ask your platform team for a \
             DebugPolicy that grants it, test one offline with `{} policy test`, and re-check \
             with `--dry-run=server`, which changes nothing",
            crate::prog()
        )
    } else {
        "another admission webhook refused the request; its owners can say why".to_string()
    };
    KspyError::new(format!(
        "admission webhook \"{}\" denied {}",
        denial.webhook,
        action.admitted()
    ))
    .details(denial.reasons.iter().map(|r| format!("- {r}")))
    .hint(hint)
}

/// When kspy's webhook denied a capability that `--profile` added by itself (`from_profile`,
/// the profile's capabilities that `--cap` did not ask for too), says so, and that a profile
/// adding none needs no grant; other errors come back unchanged.
pub fn profile_capability_denied(
    mut err: KspyError,
    profile: &str,
    from_profile: &[&str],
) -> KspyError {
    let kspy_denial =
        err.headline.starts_with("admission webhook \"") && err.headline.contains("kspy");
    if !kspy_denial {
        return err;
    }
    let mentions = |line: &str, cap: &str| {
        line.match_indices(&format!("capability {cap}"))
            .any(|(i, m)| {
                !line[i + m.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            })
    };
    let denied: Vec<&str> = from_profile
        .iter()
        .copied()
        .filter(|cap| err.details.iter().any(|line| mentions(line, cap)))
        .collect();
    if denied.is_empty() {
        return err;
    }
    let default = if profile == "general" {
        " (the default)"
    } else {
        ""
    };
    let (them, it) = if denied.len() == 1 {
        ("capability", "it")
    } else {
        ("capabilities", "them")
    };
    let mut hint = format!(
        "{them} {} came from --profile {profile}{default}, not from --cap: if you do not need \
         {it}, use `--profile baseline` (no added capabilities) or `--profile legacy`",
        denied.join(", ")
    );
    if let Some(rest) = err.hint.take() {
        hint.push_str("; otherwise: ");
        hint.push_str(&rest);
    }
    err.hint = Some(hint);
    err
}

/// The Pod Security levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodSecurityLevel {
    /// `privileged`: anything goes.
    Privileged,
    /// `baseline`: no host namespaces, hostPath, privileged, or capabilities beyond the default set.
    Baseline,
    /// `restricted`: baseline plus non-root, drop ALL, no privilege escalation, seccomp.
    Restricted,
}

/// A Pod Security admission rejection:
/// `pods "x" is forbidden: violates PodSecurity "baseline:latest": host namespaces (...), ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSecurityViolation {
    /// The level the namespace enforces.
    pub level: PodSecurityLevel,
    /// The policy version (`latest`, `v1.33`).
    pub version: String,
    /// The individual violations.
    pub violations: Vec<String>,
}

impl PodSecurityViolation {
    /// Parses an API server message; `None` when it is not a Pod Security rejection.
    pub fn parse(message: &str) -> Option<PodSecurityViolation> {
        let start = message.find("violates PodSecurity \"")?;
        let rest = &message[start + 22..];
        let (policy, rest) = rest.split_once('"')?;
        let (level, version) = policy.split_once(':').unwrap_or((policy, "latest"));
        let level = match level {
            "privileged" => PodSecurityLevel::Privileged,
            "baseline" => PodSecurityLevel::Baseline,
            "restricted" => PodSecurityLevel::Restricted,
            _ => return None,
        };
        let list = rest.trim_start_matches(':').trim();
        Some(PodSecurityViolation {
            level,
            version: version.to_string(),
            violations: split_top_level(list),
        })
    }
}

/// Splits `a (x, y), b (z)` at the commas outside parentheses.
fn split_top_level(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for ch in list.chars() {
        match ch {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                let item = current.trim();
                if !item.is_empty() {
                    out.push(item.to_string());
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    let item = current.trim();
    if !item.is_empty() {
        out.push(item.to_string());
    }
    out
}

fn explain_pod_security(action: &Action, v: &PodSecurityViolation) -> KspyError {
    let level = match v.level {
        PodSecurityLevel::Privileged => "privileged",
        PodSecurityLevel::Baseline => "baseline",
        PodSecurityLevel::Restricted => "restricted",
    };
    let namespace = match action {
        Action::AddEphemeral { ns, .. } | Action::CreatePod { ns, .. } => ns.as_str(),
        _ => "the namespace",
    };
    let is_node =
        matches!(action, Action::CreatePod { pod, .. } if pod.starts_with("node-debugger-"));
    // Pod Security judges the whole pod when a container is added: when no violation names
    // the debug container, the pod fails the level by itself (it started before the label
    // was set, or is exempt), and no profile of the debug container can help.
    if let Action::AddEphemeral { pod, container, .. } = action
        && !v
            .violations
            .iter()
            .any(|r| r.contains(&format!("{container:?}")))
    {
        return KspyError::new(format!(
            "Pod Security admission refused {}: pod {pod} itself fails the level \"{level}\" that \
             namespace {namespace} enforces ({}), and adding a container makes the API server \
             judge the whole pod",
            action.admitted(),
            v.version
        ))
        .details(v.violations.iter().map(|r| format!("- {r}")))
        .hint(format!(
            "no debug container can be added to this pod while it fails the level: ask a cluster \
             administrator for a Pod Security exemption, or to bring the pod's own containers up \
             to \"{level}\""
        ));
    }
    let hint = match (v.level, is_node) {
        (_, true) => format!(
            "node debugging needs host namespaces and hostPath, which only the \"privileged\" level \
             allows: run it in a namespace labelled pod-security.kubernetes.io/enforce=privileged \
             (`-n NAMESPACE`), or use `--profile {level}` for an isolated pod on that node"
        ),
        (PodSecurityLevel::Baseline, false) => {
            "use `--profile baseline` (no added capabilities, no privileged mode; \
             baseline allows no SYS_PTRACE) and drop `--cap` values outside the baseline set"
                .to_string()
        }
        (PodSecurityLevel::Restricted, false) => {
            "use `--profile restricted` (non-root, drop ALL, no privilege \
             escalation, RuntimeDefault seccomp) and no `--cap` other than NET_BIND_SERVICE"
                .to_string()
        }
        (PodSecurityLevel::Privileged, false) => {
            "the namespace's Pod Security level refused the pod".to_string()
        }
    };
    KspyError::new(format!(
        "Pod Security admission refused {}: namespace {namespace} enforces level \"{level}\" ({})",
        action.admitted(),
        v.version
    ))
    .details(v.violations.iter().map(|r| format!("- {r}")))
    .hint(hint)
}

/// The names closest to `wanted` first (by edit distance), then the rest in order; at most `max`.
pub fn closest_names<'a>(
    wanted: &str,
    names: impl IntoIterator<Item = &'a str>,
    max: usize,
) -> Vec<String> {
    let mut scored: Vec<(usize, usize, &str)> = names
        .into_iter()
        .enumerate()
        .map(|(i, n)| (edit_distance(wanted, n), i, n))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(max)
        .map(|(_, _, n)| n.to_string())
        .collect()
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "pod web not found; pods in prod: web-7d9f, worker-1, …" — the names that exist.
pub fn missing_with_candidates(
    headline: String,
    what: &str,
    wanted: &str,
    existing: &[String],
) -> KspyError {
    if existing.is_empty() {
        return KspyError::new(headline).hint(format!("there are no {what}s here"));
    }
    let names = closest_names(wanted, existing.iter().map(String::as_str), 10);
    let more = existing.len().saturating_sub(names.len());
    let mut details = vec![format!("{what}s that exist: {}", names.join(", "))];
    if more > 0 {
        details.push(format!("… and {more} more"));
    }
    KspyError::new(headline).details(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).expect("a Status")
    }

    fn add(ns: &str, pod: &str) -> Action {
        Action::AddEphemeral {
            ns: ns.into(),
            pod: pod.into(),
            container: "debugger-abcde".into(),
        }
    }

    #[test]
    fn rbac_403_names_verb_resource_and_namespace() {
        let s = status(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"web\" is forbidden: User \"alice\" cannot patch resource \"pods/ephemeralcontainers\" in API group \"\" in the namespace \"prod\"",
            "reason": "Forbidden", "details": {"name": "web", "kind": "pods"}, "code": 403
        }));
        let e = explain_status(&add("prod", "web"), &s, "");
        assert!(
            e.headline
                .contains("not allowed to patch pods/ephemeralcontainers in namespace prod"),
            "{}",
            e.headline
        );
        let hint = e.hint.expect("a hint");
        assert!(
            hint.contains("kubectl auth can-i patch pods/ephemeralcontainers -n prod"),
            "{hint}"
        );
    }

    /// A denial because the debug container could act as its target's user says which flags
    /// change its user and capabilities.
    #[test]
    fn a_denial_for_acting_as_the_targets_user_names_the_flags_that_fix_it() {
        // The hint kspy gives for a denial with this one reason.
        let hint_for = |text: &str| {
            let denial = status(serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("admission webhook \"validate.kspy.dev\" denied the request: kspy denied the debug container for pod prod/web:\n- container \"d\": {text} is not granted by the policies that apply (dev)"),
                "reason": "Forbidden", "code": 403
            }));
            explain_status(&add("prod", "web"), &denial, "")
                .hint
                .expect("a hint")
        };
        // The engine's own words.
        let switch = kspy_admission::user_reach::UserReach::SwitchUser.explain("app");
        let hint = hint_for(&format!(
            r#"mounting secret volume "creds" (mounted by container "app": {switch})"#
        ));
        assert!(
            hint.starts_with("the debug container could act as its target's user")
                && hint.contains(r#""allowPrivilegeEscalation": false"#)
                && hint.contains("--profile restricted")
                && hint.contains("--custom")
                && hint.contains("kspy's policy decides"),
            "{hint}"
        );
        let hint = hint_for(
            r#"mounting secret volume "creds" (mounted by container "app": the debug container runs as the same user as container "app" (10001), so it reads that container's files through /proc/PID/root; run it as another user)"#,
        );
        assert!(
            hint.starts_with("the debug container runs as its target's user")
                && hint.contains("without --as-target-user"),
            "{hint}"
        );
        // Both root: the engine's own words, with and without a capability to drop.
        let both_root = |dropping_helps| {
            let why =
                kspy_admission::user_reach::UserReach::BothRoot { dropping_helps }.explain("app");
            hint_for(&format!(
                r#"mounting secret volume "creds" (mounted by container "app": {why})"#
            ))
        };
        let hint = both_root(true);
        assert!(
            hint.starts_with("the debug container and its target both run as root: a `--custom`")
                && hint.contains(r#"{"drop": ["ALL"]}"#),
            "{hint}"
        );
        let hint = both_root(false);
        assert!(
            hint.starts_with("the debug container and its target both run as root, and the target holds no capability")
                && !hint.contains("--custom"),
            "{hint}"
        );
        let hint = hint_for("capability SYS_ADMIN");
        assert!(hint.starts_with("kspy's policy decides"), "{hint}");
    }

    /// A request at cluster scope (`kspy ls -A`) needs a ClusterRole, and `can-i` asks with `-A`.
    #[test]
    fn rbac_403_at_cluster_scope_asks_for_a_cluster_role() {
        let s = status(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods is forbidden: User \"alice\" cannot list resource \"pods\" in API group \"\" at the cluster scope",
            "reason": "Forbidden", "details": {"kind": "pods"}, "code": 403
        }));
        let e = explain_status(&add("prod", "web"), &s, "");
        assert!(
            e.headline
                .contains("not allowed to list pods at cluster scope"),
            "{}",
            e.headline
        );
        let hint = e.hint.expect("a hint");
        assert!(hint.contains("RBAC ClusterRole"), "{hint}");
        assert!(hint.contains("kubectl auth can-i list pods -A`"), "{hint}");
    }

    /// The commands a hint suggests repeat the `--kubeconfig`/`--context` flags given, so that
    /// they look at the cluster kspy was talking to.
    #[test]
    fn suggested_commands_in_hints_repeat_the_cluster_flags() {
        let flags = " --context 'prod eu'";
        let rbac = status(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"web\" is forbidden: User \"alice\" cannot patch resource \"pods/ephemeralcontainers\" in API group \"\" in the namespace \"prod\"",
            "reason": "Forbidden", "code": 403
        }));
        let hint = explain_status(&add("prod", "web"), &rbac, flags)
            .hint
            .expect("a hint");
        assert!(
            hint.contains(
                "`kubectl --context 'prod eu' auth can-i patch pods/ephemeralcontainers -n prod`"
            ),
            "{hint}"
        );
        let quota = status(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"web-dbg\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=10, limited: pods=10",
            "reason": "Forbidden", "code": 403
        }));
        let create = Action::CreatePod {
            ns: "prod".into(),
            pod: "web-dbg".into(),
        };
        let hint = explain_status(&create, &quota, flags).hint.expect("a hint");
        assert!(
            hint.contains("`kubectl --context 'prod eu' describe resourcequota -n prod`")
                && hint.contains("ls --context 'prod eu' -n prod`"),
            "{hint}"
        );
        let interrupted = interrupted_request(&create, flags).render("kspy");
        assert!(
            interrupted.contains("`kubectl --context 'prod eu' get pods -n prod`"),
            "{interrupted}"
        );
    }

    /// A 403 whose message is not the authorizer's `User "…" cannot …` is no RBAC denial: it
    /// is said to be a refusal, with the server's message and a hint that fits it — never
    /// "you are not allowed" nor a Role to ask for.
    #[test]
    fn forbidden_without_an_rbac_message_is_not_called_rbac() {
        let create = Action::CreatePod {
            ns: "dev".into(),
            pod: "web-debug".into(),
        };
        let refused = |message: &str| {
            let s = status(serde_json::json!({"status": "Failure", "message": message,
                "reason": "Forbidden", "code": 403}));
            let e = explain_status(&create, &s, "");
            assert_eq!(
                e.headline,
                "could not create pod dev/web-debug: the API server refused the request (403 \
                 Forbidden)",
                "{message}"
            );
            assert_eq!(e.details, vec![message.to_string()]);
            let hint = e.hint.expect("hint");
            assert!(!hint.contains("RBAC Role"), "{hint}");
            assert!(!hint.contains("auth can-i"), "{hint}");
            hint
        };
        let hint = refused(
            "pods \"web-debug\" is forbidden: exceeded quota: compute, requested: pods=1, used: \
             pods=10, limited: pods=10",
        );
        assert!(
            hint.contains("ResourceQuota of namespace dev is used up")
                && hint.contains("kubectl describe resourcequota -n dev"),
            "{hint}"
        );
        let hint = refused(
            "pods \"web-debug\" is forbidden: failed quota: compute: must specify limits.cpu \
             for: debugger-x2x4q",
        );
        assert!(hint.contains("--custom"), "{hint}");
        let hint = refused(
            "pods \"web-debug\" is forbidden: unable to create new content in namespace dev \
             because it is being terminated",
        );
        assert!(hint.contains("namespace dev is being deleted"), "{hint}");
        let hint = refused(
            "pods \"web-debug\" is forbidden: ValidatingAdmissionPolicy 'no-debug-copies' with \
             binding 'no-debug-copies-binding' denied request: debug copies are off this week",
        );
        assert!(
            hint.contains("ValidatingAdmissionPolicy no-debug-copies refused it")
                && hint.contains("kubectl get validatingadmissionpolicy no-debug-copies"),
            "{hint}"
        );
        let hint = refused("forbidden");
        assert!(hint.contains("no RBAC denial"), "{hint}");
    }

    #[test]
    fn rbac_parse_cluster_scoped() {
        let d = RbacDenial::parse("nodes \"n1\" is forbidden: User \"bob\" cannot get resource \"nodes\" in API group \"\" at the cluster scope").expect("parsed");
        assert_eq!(d.user, "bob");
        assert_eq!(d.verb, "get");
        assert_eq!(d.resource, "nodes");
        assert_eq!(d.namespace, None);
    }

    #[test]
    fn webhook_denial_is_readable_and_not_mistaken_for_rbac() {
        let s = status(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "admission webhook \"validate.kspy.dev\" denied the request: capability SYS_ADMIN is granted by no applicable policy (sre-ptrace grants SYS_PTRACE to group sre); image docker.io/library/ubuntu:latest is not allowed",
            "reason": "Forbidden", "code": 403
        }));
        let e = explain_status(&add("prod", "web"), &s, "");
        assert_eq!(
            e.headline,
            "admission webhook \"validate.kspy.dev\" denied adding debug container debugger-abcde to pod prod/web"
        );
        assert_eq!(
            e.details,
            vec![
                "- capability SYS_ADMIN is granted by no applicable policy (sre-ptrace grants SYS_PTRACE to group sre)",
                "- image docker.io/library/ubuntu:latest is not allowed",
            ]
        );
        assert!(e.hint.expect("hint").contains("--dry-run=server"));
    }

    #[test]
    fn webhook_denial_multiline_reasons() {
        let d = WebhookDenial::parse(
            "admission webhook \"v.kspy.dev\" denied the request: denied:\n- a; still a\n- b",
        )
        .expect("parsed");
        assert_eq!(d.reasons, vec!["denied:", "a; still a", "b"]);
        let d =
            WebhookDenial::parse("admission webhook \"x\" denied the request without explanation")
                .expect("parsed");
        assert_eq!(d.reasons, vec!["without explanation"]);
    }

    #[test]
    fn webhook_denial_drops_the_kspy_webhooks_header_line() {
        // The Status message as the API server builds it from kspy's webhook's denial
        // (admission/src/engine.rs `denial_message`).
        for what in [
            "debug container for pod prod/web",
            "debug copy prod/web-debug",
            "node-debugging pod default/node-debugger-n1-abcde",
        ] {
            let s = status(serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!(
                    "admission webhook \"validate.kspy.dev\" denied the request: kspy denied the {what}:\n\
                     - container \"debugger-q7x2z\": capability SYS_ADMIN is not granted by the policies that apply (sre-debug); no policy grants it to anyone\n\
                     - container \"debugger-q7x2z\": image docker.io/library/ubuntu:latest is not granted by the policies that apply (sre-debug); no policy grants it to anyone"
                ),
                "reason": "Forbidden", "code": 403
            }));
            let e = explain_status(&add("prod", "web"), &s, "");
            assert_eq!(
                e.details,
                vec![
                    "- container \"debugger-q7x2z\": capability SYS_ADMIN is not granted by the policies that apply (sre-debug); no policy grants it to anyone",
                    "- container \"debugger-q7x2z\": image docker.io/library/ubuntu:latest is not granted by the policies that apply (sre-debug); no policy grants it to anyone",
                ],
                "{what}"
            );
        }
    }

    #[test]
    fn pod_security_names_level_and_compliant_profile() {
        let s = status(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "pods \"web\" is forbidden: violates PodSecurity \"baseline:latest\": non-default capabilities (container \"debugger-abcde\" must not include \"SYS_PTRACE\" in securityContext.capabilities.add), privileged (container \"debugger-abcde\" must not set securityContext.privileged=true)",
            "reason": "Forbidden", "details": {"name": "web", "kind": "pods"}, "code": 403
        }));
        let e = explain_status(&add("prod", "web"), &s, "");
        assert!(
            e.headline
                .contains("namespace prod enforces level \"baseline\" (latest)"),
            "{}",
            e.headline
        );
        assert_eq!(e.details.len(), 2, "{:?}", e.details);
        assert!(e.details[0].starts_with("- non-default capabilities (container"));
        assert!(e.hint.expect("hint").contains("--profile baseline"));
    }

    #[test]
    fn pod_security_refusing_for_the_pods_own_containers_says_no_profile_helps() {
        let msg = "pods \"web\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), runAsNonRoot != true (pod or container \"app\" must set securityContext.runAsNonRoot=true)";
        let v = PodSecurityViolation::parse(msg).expect("parsed");
        let e = explain_pod_security(&add("prod", "web"), &v);
        assert!(
            e.headline
                .contains("pod web itself fails the level \"restricted\""),
            "{}",
            e.headline
        );
        assert_eq!(e.details.len(), 2, "{:?}", e.details);
        let hint = e.hint.expect("hint");
        assert!(hint.contains("Pod Security exemption"), "{hint}");
        assert!(!hint.contains("--profile"), "{hint}");
        // Once the debug container is named, its profile is the advice again.
        let msg = msg.replace("pod or container \"app\"", "container \"debugger-abcde\"");
        let v = PodSecurityViolation::parse(&msg).expect("parsed");
        let e = explain_pod_security(&add("prod", "web"), &v);
        assert!(e.hint.expect("hint").contains("--profile restricted"));
    }

    #[test]
    fn pod_security_restricted_and_node() {
        let msg = "pods \"node-debugger-n1-abcde\" is forbidden: violates PodSecurity \"restricted:v1.33\": host namespaces (hostNetwork=true, hostPID=true, hostIPC=true), hostPath volumes (volume \"host-root\")";
        let v = PodSecurityViolation::parse(msg).expect("parsed");
        assert_eq!(v.level, PodSecurityLevel::Restricted);
        assert_eq!(v.version, "v1.33");
        assert_eq!(
            v.violations,
            vec![
                "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)",
                "hostPath volumes (volume \"host-root\")"
            ]
        );
        let e = explain_pod_security(
            &Action::CreatePod {
                ns: "default".into(),
                pod: "node-debugger-n1-abcde".into(),
            },
            &v,
        );
        assert!(e.hint.expect("hint").contains("enforce=privileged"));
    }

    #[test]
    fn subresource_404_means_not_served() {
        let s = status(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "the server could not find the requested resource", "reason": "NotFound",
            "details": {}, "code": 404
        }));
        let e = explain_status(&add("prod", "web"), &s, "");
        assert!(
            e.headline.contains("does not serve ephemeral containers"),
            "{}",
            e.headline
        );
        assert!(e.hint.expect("hint").contains("kspy copy"));
        // A 404 that names the pod is a vanished pod, not a missing subresource.
        let s = status(serde_json::json!({
            "status": "Failure", "message": "pods \"web\" not found", "reason": "NotFound",
            "details": {"name": "web", "kind": "pods"}, "code": 404
        }));
        assert_eq!(
            explain_status(&add("prod", "web"), &s, "").headline,
            "pod prod/web no longer exists"
        );
    }

    #[test]
    fn invalid_lists_causes() {
        let s = status(serde_json::json!({
            "status": "Failure", "message": "Pod \"web\" is invalid: spec.ephemeralContainers[0].name: Duplicate value: \"dbg\"",
            "reason": "Invalid", "code": 422,
            "details": {"name": "web", "kind": "Pod", "causes": [
                {"reason": "FieldValueDuplicate", "message": "Duplicate value: \"dbg\"", "field": "spec.ephemeralContainers[0].name"}
            ]}
        }));
        let e = explain_status(&add("prod", "web"), &s, "");
        assert_eq!(
            e.details,
            vec!["spec.ephemeralContainers[0].name: Duplicate value: \"dbg\""]
        );
    }

    /// A name taken between kspy's read and its write (two people running `--name dbg` at
    /// once): the API server's 422 in either patch's words gets a hint that says so; another
    /// container's duplicate does not.
    #[test]
    fn a_name_taken_meanwhile_is_said_to_be() {
        let add_dbg = Action::AddEphemeral {
            ns: "prod".into(),
            pod: "web".into(),
            container: "dbg".into(),
        };
        let strategic = status(serde_json::json!({
            "status": "Failure", "reason": "Invalid", "code": 422,
            "message": "Pod \"web\" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers \"dbg\" may not be changed",
            "details": {"name": "web", "kind": "Pod", "causes": [
                {"reason": "FieldValueForbidden", "message": "Forbidden: existing ephemeral containers \"dbg\" may not be changed", "field": "spec.ephemeralContainers"}
            ]}
        }));
        let json = status(serde_json::json!({
            "status": "Failure", "reason": "Invalid", "code": 422,
            "message": "Pod \"web\" is invalid: spec.ephemeralContainers[1].name: Duplicate value: \"dbg\"",
            "details": {"name": "web", "kind": "Pod", "causes": [
                {"reason": "FieldValueDuplicate", "message": "Duplicate value: \"dbg\"", "field": "spec.ephemeralContainers[1].name"}
            ]}
        }));
        for s in [&strategic, &json] {
            let hint = explain_status(&add_dbg, s, "").hint.expect("hint");
            assert!(
                hint.starts_with(
                    "a container named dbg was added to pod prod/web after kspy read it"
                ),
                "{hint}"
            );
            assert!(
                hint.ends_with("`kspy attach web -n prod --reuse --name dbg`"),
                "{hint}"
            );
        }
        let other = explain_status(&add("prod", "web"), &json, "");
        assert_eq!(other.hint, None);
    }

    /// A Windows pod refuses Linux-only fields; the hint says which profile sends none.
    #[test]
    fn a_windows_pod_refusing_linux_fields_is_said_to_run_windows() {
        let s = status(serde_json::json!({
            "status": "Failure", "reason": "Invalid", "code": 422,
            "message": "Pod \"win\" is invalid: spec.ephemeralContainers[0].securityContext.capabilities: Forbidden: cannot be set for a windows pod",
            "details": {"name": "win", "kind": "Pod", "causes": [
                {"reason": "FieldValueForbidden", "message": "Forbidden: cannot be set for a windows pod", "field": "spec.ephemeralContainers[0].securityContext.capabilities"}
            ]}
        }));
        let hint = explain_status(&add("prod", "win"), &s, "")
            .hint
            .expect("hint");
        assert!(
            hint.starts_with("pod prod/win runs Windows (spec.os.name: windows)")
                && hint.contains("--profile legacy or --profile baseline"),
            "{hint}"
        );
        let json = serde_json::json!({
            "status": "Failure", "reason": "Invalid", "code": 422,
            "message": "Pod \"web\" is invalid: spec.ephemeralContainers[0].image: Required value",
        });
        assert_eq!(
            explain_status(&add("prod", "web"), &status(json), "").hint,
            None
        );
    }

    #[test]
    fn conflict_409_is_not_already_exists() {
        let conflict = status(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": "Operation cannot be fulfilled on pods \"web\": the object has been modified; please apply your changes to the latest version and try again",
            "reason": "Conflict", "details": {"name": "web", "kind": "pods"}, "code": 409
        }));
        let e = explain_status(&add("prod", "web"), &conflict, "");
        assert_eq!(
            e.headline,
            "could not add debug container debugger-abcde to pod prod/web: the pod was changed by someone else at the same time (409 Conflict)"
        );
        assert!(
            e.hint
                .expect("hint")
                .starts_with("run the same command again")
        );
        let exists = status(serde_json::json!({
            "status": "Failure", "message": "pods \"web-debug\" already exists",
            "reason": "AlreadyExists", "details": {"name": "web-debug", "kind": "pods"}, "code": 409
        }));
        let create = Action::CreatePod {
            ns: "prod".into(),
            pod: "web-debug".into(),
        };
        let e = explain_status(&create, &exists, "");
        assert_eq!(
            e.headline,
            "could not create pod prod/web-debug: it already exists"
        );
        let hint = e.hint.expect("hint");
        assert!(hint.starts_with("pick another name"), "{hint}");
        assert!(!hint.contains("kubectl delete"), "{hint}");
    }

    #[test]
    fn closest_names_ranks_by_distance() {
        let names = ["worker-1", "web-7d9f", "api", "webb"];
        assert_eq!(closest_names("web", names, 2), vec!["webb", "api"]);
        let e = missing_with_candidates(
            "pod wbe not found".into(),
            "pod",
            "wbe",
            &["web".into(), "db".into()],
        );
        assert_eq!(e.details, vec!["pods that exist: web, db"]);
    }

    /// An error whose message repeats its source's.
    #[derive(Debug)]
    struct Wrapped(std::io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "wrapped: {}", self.0)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// No answer in time: "hung" when the address takes connections, "cannot reach" when it
    /// takes none; never a hint to wait longer for a limit on connecting it does not lengthen.
    #[test]
    fn no_answer_tells_a_hung_server_from_an_unreachable_one() {
        let list = Action::ListPods {
            ns: Some("prod".into()),
        };
        let no_answer = |connecting, connected| {
            let err = kube::Error::Service(Box::new(NoAnswer {
                after: std::time::Duration::from_secs(30),
                connecting,
                connected,
                hop: "10.0.0.1:6443".into(),
            }));
            explain(&list, err, "https://10.0.0.1:6443/", "")
        };
        let e = no_answer(false, true);
        assert_eq!(
            e.headline,
            "could not list the pods of namespace prod: the API server at https://10.0.0.1:6443/ \
             took the connection but did not answer within 30s"
        );
        assert!(e.details.is_empty(), "a read did nothing: {:?}", e.details);
        let hint = e.hint.expect("hint");
        assert!(hint.contains("hung or overloaded") && hint.contains("--request-timeout"));
        let hint = no_answer(true, true).hint.expect("hint");
        assert!(
            hint.contains("hung or overloaded") && !hint.contains("--request-timeout"),
            "{hint}"
        );
        let e = no_answer(false, false);
        assert_eq!(
            e.headline,
            "could not list the pods of namespace prod: cannot reach the API server at \
             https://10.0.0.1:6443/: no connection within 30s"
        );
        assert!(e.hint.expect("hint").contains("network path"));
    }

    /// A webhook's message (anyone may run a webhook, or write the reason a policy echoes)
    /// cannot drive the terminal: control characters are escaped in every part of an error,
    /// and a detail that spans lines stays indented under the headline.
    #[test]
    fn rendered_errors_escape_text_from_the_cluster() {
        let s = status(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": "admission webhook \"x.example.com\" denied the request: bad \u{1b}[2Jimage\u{1b}]0;pwned\u{7}"
        }));
        let text = explain_status(&add("prod", "web"), &s, "").render("kspy");
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(
            text.contains("  - bad \\u{1b}[2Jimage\\u{1b}]0;pwned\\u{7}\n"),
            "{text}"
        );
        let e = KspyError::new("head\u{1b}[1m")
            .details(["first\nsecond\u{9b}"])
            .source(std::io::Error::other("cause\u{1b}[0m\nmore"))
            .hint("do \u{1b}[5mthis");
        assert_eq!(
            e.render("kspy"),
            "kspy: head\\u{1b}[1m\n  first\n  second\\u{9b}\n  caused by: cause\\u{1b}[0m\n    more\nhint: do \\u{1b}[5mthis\n"
        );
    }

    #[test]
    fn render_has_headline_details_causes_and_hint() {
        let e = KspyError::new("boom")
            .details(["- one"])
            .hint("do this")
            .source(std::io::Error::other("disk"));
        assert_eq!(
            e.render("kspy"),
            "kspy: boom\n  - one\n  caused by: disk\nhint: do this\n"
        );
        let repeated = KspyError::new("cannot read").source(std::io::Error::other(Wrapped(
            std::io::Error::other("gone"),
        )));
        assert_eq!(
            repeated.render("kspy"),
            "kspy: cannot read\n  caused by: wrapped: gone\n"
        );
    }
}
