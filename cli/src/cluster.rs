//! Cluster access like kubectl: `--kubeconfig`, then `KUBECONFIG` (a list of files, merged
//! with kubectl's rules, missing files skipped), then `~/.kube/config`, then the in-cluster
//! service account; `--context` picks a context;
//! `-n/--namespace` defaults to the context's namespace, then `default`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use kube::api::{Api, ListParams};
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use kube::{Client, Config};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::container::{validate_dns_label, validate_dns_subdomain};

/// The User-Agent of kspy's requests, in kubectl's form: `kspy/VERSION (OS/ARCH)`.
pub fn user_agent() -> String {
    format!(
        "kspy/{} ({}/{})",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}
use crate::errors::{
    Action, ExecPlugin, KspyError, WebhookDenial, explain, explain_exec_plugin,
    missing_with_candidates,
};
use crate::patch::{PlannedRequest, json_patch_not_applied};
use crate::proxy::{self, Proxy};
use crate::request_timeout::{AnswerTimeout, host_port};
use crate::retry::ServerRetry;
use crate::warnings::{WarningLayer, Warnings};

/// What the API server made of a write that admission judges ([`Cluster::send_judged`]).
#[derive(Debug)]
pub enum Judged<T> {
    /// Carried out (in a dry run: admitted); the object as the API server returned it.
    Done(T),
    /// A JSON patch whose `test` of the `resourceVersion` failed: the object changed since it
    /// was read, and nothing was written. The error explained, for when the caller does not
    /// read it again.
    Stale(KspyError),
    /// An admission webhook denied it, and nothing was written.
    Denied {
        /// The webhook and its reasons.
        denial: WebhookDenial,
        /// The denial explained, as kspy reports it when it is final.
        error: KspyError,
    },
}

/// The flags that pick the cluster and namespace, shared by every command that talks to one.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ClusterArgs {
    /// Path to the kubeconfig file [default: $KUBECONFIG, ~/.kube/config, then in-cluster]
    #[arg(long, value_name = "FILE", value_parser = crate::args::parse_kubeconfig)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use [default: the current context]
    #[arg(long, value_name = "NAME", value_parser = crate::args::parse_context)]
    pub context: Option<String>,
    /// Namespace [default: the context's namespace, else "default"]
    #[arg(short = 'n', long, value_name = "NAMESPACE", value_parser = crate::args::parse_namespace)]
    pub namespace: Option<String>,
    /// How long to wait for the API server to answer each request, as 30s or 2m ("0": no
    /// limit); watches and attach sessions answer at once and are never cut. The API server
    /// answers within 60s itself, so only a hung server, proxy or load balancer reaches it
    #[arg(long, value_name = "DURATION",
          default_value = crate::request_timeout::DEFAULT_REQUEST_TIMEOUT,
          value_parser = crate::wait::parse_duration)]
    pub request_timeout: std::time::Duration,
}

impl ClusterArgs {
    /// `--kubeconfig` and `--context` as given, each after a space and shell-quoted, for the
    /// commands kspy suggests (attach again, delete the copy): without them, a suggestion
    /// copied into the shell would reach whatever cluster is current there — another one,
    /// perhaps — and attach to, or delete, something else. Empty when neither was given (the
    /// same environment then picks the same cluster).
    pub fn repeated(&self) -> String {
        let mut out = String::new();
        if let Some(path) = &self.kubeconfig {
            out.push_str(" --kubeconfig ");
            out.push_str(&shell_quote(&path.to_string_lossy()));
        }
        if let Some(context) = &self.context {
            out.push_str(" --context ");
            out.push_str(&shell_quote(context));
        }
        out
    }
}

/// `word` as a POSIX shell reads it back: as it is when it holds only characters no shell
/// treats specially, else in single quotes (a `'` inside as `'\''`).
pub fn shell_quote(word: &str) -> std::borrow::Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "@%+=:,./_-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        std::borrow::Cow::Borrowed(word)
    } else {
        std::borrow::Cow::Owned(format!("'{}'", word.replace('\'', "'\\''")))
    }
}

/// A connected client and the namespace to work in.
#[derive(Clone)]
pub struct Cluster {
    /// The kube client.
    pub client: Client,
    /// The namespace from `-n` or the context.
    pub namespace: String,
    /// The API server URL, and the proxy in between if any, for messages.
    pub server: String,
    /// The user the context names but the kubeconfig lacks, if so ([`MissingUser`]).
    pub missing_user: Option<MissingUser>,
    /// `--kubeconfig` and `--context` as given, for the commands kspy suggests
    /// ([`ClusterArgs::repeated`]).
    pub flags: String,
    /// The exec credential plugin of the context's user, if it has one, for explaining its
    /// failures (kube-rs runs it again when its credential expires).
    pub exec_plugin: Option<ExecPlugin>,
    /// The proxy requests go through, if any, and the API server's URL, for explaining a
    /// proxy that failed to carry them.
    pub proxy: Option<(Proxy, http::Uri)>,
}

fn kubeconfig_error(
    e: KubeconfigError,
    context: Option<&str>,
    kubeconfig: Option<&Kubeconfig>,
) -> KspyError {
    let names: Vec<String> = kubeconfig
        .map(|k| k.contexts.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    if let (KubeconfigError::LoadContext(_), Some(ctx)) = (&e, context) {
        return missing_with_candidates(
            format!("context {ctx} not found in the kubeconfig"),
            "context",
            ctx,
            &names,
        );
    }
    // No --context: the kubeconfig's own current-context is missing or names nothing.
    let current = match &e {
        KubeconfigError::CurrentContextNotSet => Some(None),
        KubeconfigError::LoadContext(name) => Some(Some(name.as_str())),
        _ => None,
    };
    if let Some(current) = current {
        return no_current_context(current, &names);
    }
    if let Some(err) = proxy_setting_error(&e, kubeconfig, context) {
        return err;
    }
    if let Some(err) = cluster_entry_error(&e, kubeconfig, context) {
        return err;
    }
    KspyError::new("cannot load the kubeconfig")
        .source(e)
        .hint("check `--kubeconfig`, `KUBECONFIG` and `--context`")
}

/// The errors about the cluster the context names, said in the kubeconfig's terms: kube-rs's
/// `failed to load the cluster of context: prod-cluster` names the cluster where it seems to
/// name the context, and says neither that the kubeconfig lacks it (a typo, or a `KUBECONFIG`
/// list without the file that defines it) nor which clusters it has; `cluster url is missing
/// on selected cluster` names no cluster at all.
fn cluster_entry_error(
    e: &KubeconfigError,
    kubeconfig: Option<&Kubeconfig>,
    context: Option<&str>,
) -> Option<KspyError> {
    let kubeconfig = kubeconfig?;
    let (context, selected) = selected_context(kubeconfig, context)?;
    let cluster = selected.cluster.clone();
    match e {
        KubeconfigError::LoadClusterOfContext(_) => {
            let names: Vec<String> = kubeconfig.clusters.iter().map(|c| c.name.clone()).collect();
            let set_it = format!(
                "set context {context}'s `cluster:` to one that exists (`kubectl config \
                 get-clusters` lists them)"
            );
            if cluster.is_empty() {
                let e = missing_with_candidates(
                    format!("context {context} of the kubeconfig names no cluster"),
                    "cluster",
                    "",
                    &names,
                );
                return Some(e.hint(set_it));
            }
            let e = missing_with_candidates(
                format!(
                    "context {context} names cluster {cluster}, which the kubeconfig does not \
                     define"
                ),
                "cluster",
                &cluster,
                &names,
            );
            Some(e.hint(format!(
                "define cluster {cluster} under `clusters:` in the kubeconfig (in a KUBECONFIG \
                 list, the file that defines it may be missing from the list), or {set_it}"
            )))
        }
        KubeconfigError::LoadCertificateAuthority(why) => Some(
            KspyError::new(format!(
                "cannot read the certificate-authority of cluster {cluster} (context {context}) \
                 in the kubeconfig: {why}"
            ))
            .hint(format!(
                "fix the certificate-authority path of cluster {cluster} in the kubeconfig (a \
                 relative path is taken from the kubeconfig file's directory), or give the CA \
                 inline as certificate-authority-data"
            )),
        ),
        KubeconfigError::MissingClusterUrl | KubeconfigError::ParseClusterUrl(_) => {
            let server = kubeconfig
                .clusters
                .iter()
                .find(|c| c.name == cluster)
                .and_then(|c| c.cluster.as_ref())
                .and_then(|c| c.server.as_deref())
                .unwrap_or_default();
            let why = match e {
                KubeconfigError::ParseClusterUrl(why) if !server.trim().is_empty() => {
                    format!("is no URL ({server:?}: {why})")
                }
                _ => "is not set".to_string(),
            };
            Some(
                KspyError::new(format!(
                    "the server of cluster {cluster} (context {context}) in the kubeconfig {why}"
                ))
                .hint(format!(
                    "set it to the API server's URL: `kubectl config set-cluster {cluster} \
                     --server=https://HOST:6443`"
                )),
            )
        }
        _ => None,
    }
}

/// The error when no `--context` is given and the kubeconfig's `current-context` is unset
/// (or empty, which kubectl reads as unset: `None`) or names a context it does not have; as
/// for an unknown `--context`, the contexts that exist are listed, and how to pick one.
fn no_current_context(current: Option<&str>, names: &[String]) -> KspyError {
    let headline = match current {
        None => "the kubeconfig sets no current context, and no --context was given".to_string(),
        Some(name) => format!(
            "the kubeconfig's current context {name} is not one of its contexts (no --context \
             was given)"
        ),
    };
    if names.is_empty() {
        return KspyError::new(headline).hint(
            "the kubeconfig has no contexts at all: check --kubeconfig or KUBECONFIG, or add \
             one with `kubectl config set-context`",
        );
    }
    let listed = match current {
        // Closest to the name first, as for a mistyped --context.
        Some(name) => missing_with_candidates(headline, "context", name, names),
        // Nothing to be close to: in the kubeconfig's order.
        None => {
            let shown = names.len().min(10);
            let mut e = KspyError::new(headline).details([format!(
                "contexts that exist: {}",
                names[..shown].join(", ")
            )]);
            if names.len() > shown {
                e = e.details([format!("… and {} more", names.len() - shown)]);
            }
            e
        }
    };
    listed.hint(format!(
        "pick one with --context NAME, or make it the current one with `kubectl config \
         use-context NAME`{}",
        match current {
            Some(name) => format!(" (or fix current-context {name} if it is a typo)"),
            None => String::new(),
        }
    ))
}

/// Where the namespace kspy works in came from when `-n` is not given, for the error when it
/// is no valid namespace name.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NamespaceFrom {
    /// The `namespace:` of this kubeconfig context (the default `default` when it sets none).
    Context(String),
    /// The in-cluster service account's namespace file.
    ServiceAccount,
}

/// The error for a namespace that is no DNS label and did not come from `-n` (which is checked
/// as the command line is parsed): it names where it came from and how to fix it there.
fn invalid_namespace(namespace: &str, from: &NamespaceFrom) -> Option<KspyError> {
    let why = match validate_dns_label("--namespace", namespace) {
        Ok(()) => return None,
        Err(crate::container::BuildError::InvalidFlag { why, .. }) => why,
        Err(other) => other.to_string(),
    };
    let (headline, hint) = match from {
        NamespaceFrom::Context(context) => (
            format!(
                "context {context} of the kubeconfig sets namespace {namespace:?}, which is no \
                 valid namespace name: it {why}"
            ),
            format!(
                "fix the context's namespace (`kubectl config set-context {context} \
                 --namespace=NAME`), or give one with -n NAMESPACE"
            ),
        ),
        NamespaceFrom::ServiceAccount => (
            format!(
                "the namespace of this pod's service account ({namespace:?}, from \
                 /var/run/secrets/kubernetes.io/serviceaccount/namespace) is no valid namespace \
                 name: it {why}"
            ),
            "give the namespace with -n NAMESPACE".to_string(),
        ),
    };
    Some(KspyError::new(headline).hint(hint))
}

/// The cluster the kubeconfig's context (`--context`, else its current context) names, with
/// its `proxy-url` when it has one.
fn cluster_proxy_url(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<(String, String)> {
    let (_, ctx) = selected_context(kubeconfig, context)?;
    let cluster = kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == ctx.cluster)?
        .cluster
        .as_ref()?;
    let url = cluster.proxy_url.clone().filter(|u| !u.trim().is_empty())?;
    Some((ctx.cluster.clone(), url))
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// kube-rs reads the proxy settings itself while loading the kubeconfig (the cluster's
/// `proxy-url`, else `HTTPS_PROXY`, then `NO_PROXY`) before kspy decides on them: its parse
/// errors, said in terms of the setting that caused them.
fn proxy_setting_error(
    e: &KubeconfigError,
    kubeconfig: Option<&Kubeconfig>,
    context: Option<&str>,
) -> Option<KspyError> {
    match e {
        KubeconfigError::ParseProxyUrl(why) => {
            let source = match kubeconfig.and_then(|k| cluster_proxy_url(k, context)) {
                Some((cluster, _)) => {
                    format!("the proxy-url of cluster {cluster} in the kubeconfig")
                }
                None if env_var("HTTPS_PROXY").is_some_and(|v| !v.is_empty()) => {
                    "HTTPS_PROXY".to_string()
                }
                None => "https_proxy".to_string(),
            };
            Some(
                KspyError::new(format!("cannot use the proxy set by {source}: {why}")).hint(
                    format!(
                        "give {source} a URL such as http://proxy.example.com:3128, or unset it"
                    ),
                ),
            )
        }
        KubeconfigError::ParseNoProxy(why) => {
            let (var, value) = ["NO_PROXY", "no_proxy"]
                .iter()
                .find_map(|v| env_var(v).filter(|s| !s.is_empty()).map(|s| (*v, s)))
                .unwrap_or(("NO_PROXY", String::new()));
            Some(
                KspyError::new(format!("cannot read {var}={value:?}: {why}")).hint(format!(
                    "kube-rs, kspy's Kubernetes client, reads {var} even when it does not apply; \
                         it takes host names, domains (.example.com), IP addresses and CIDR ranges \
                         (10.0.0.0/8), separated by commas, with no empty entries"
                )),
            )
        }
        _ => None,
    }
}

fn home_kubeconfig() -> Option<PathBuf> {
    let home = std::env::var_os("HOME").or_else(|| std::env::var_os("USERPROFILE"))?;
    let path = PathBuf::from(home).join(".kube").join("config");
    path.exists().then_some(path)
}

/// The most bytes of a kubeconfig file kspy hands to kube-rs, which reads the file whole.
/// Kubeconfigs are a few KiB (tens of KiB with many clusters and inline certificates).
pub const MAX_KUBECONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// What a file that is not a regular file is, for messages.
fn file_kind(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// How a kubeconfig path is read.
enum KubeconfigSource {
    /// A regular file within [`MAX_KUBECONFIG_BYTES`]: kube-rs reads it, and resolves the
    /// files it names relative to its directory.
    File,
    /// A pipe (`--kubeconfig <(command)`, as kubectl takes it): kspy reads it, up to the cap.
    Pipe,
}

/// Refuses, before kube-rs reads it whole, a kubeconfig path that is neither a regular file
/// nor a pipe (after symlinks: a device such as /dev/zero was read until memory ran out) or
/// that is larger than [`MAX_KUBECONFIG_BYTES`].
fn check_kubeconfig_file(
    path: &Path,
    meta: &std::fs::Metadata,
) -> Result<KubeconfigSource, KspyError> {
    let headline = format!("cannot load kubeconfig {}", path.display());
    #[cfg(unix)]
    if std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()) {
        return Ok(KubeconfigSource::Pipe);
    }
    if meta.is_dir() {
        return Err(KspyError::new(headline)
            .details(["it is a directory"])
            .hint(
                "name the kubeconfig file (for example ~/.kube/config), not its directory, in \
                 --kubeconfig or KUBECONFIG",
            ));
    }
    if !meta.is_file() {
        return Err(KspyError::new(headline)
            .details([format!(
                "it is {}, not a regular file: a kubeconfig is read to its end, which such a \
                 file may never reach",
                file_kind(meta.file_type())
            )])
            .hint(
                "write the kubeconfig to a file (`kubectl config view --raw > FILE`) and name \
                 that file in --kubeconfig or KUBECONFIG",
            ));
    }
    if meta.len() > MAX_KUBECONFIG_BYTES {
        return Err(too_large(
            headline,
            &format!("is {} bytes, more", meta.len()),
        ));
    }
    Ok(KubeconfigSource::File)
}

/// `size`: "is N bytes, more" or "goes on longer", before "than the 16 MiB …".
fn too_large(headline: String, size: &str) -> KspyError {
    KspyError::new(headline)
        .details([format!(
            "it {size} than the {} MiB kspy reads of a kubeconfig",
            MAX_KUBECONFIG_BYTES / (1024 * 1024)
        )])
        .hint(
            "check that --kubeconfig or KUBECONFIG names the kubeconfig (a few KiB; \
             `kubectl config view --raw` prints the one in use)",
        )
}

/// A kubeconfig from a pipe, read up to [`MAX_KUBECONFIG_BYTES`]. Files it names relative to
/// itself are taken relative to the working directory: a pipe has no directory of its own.
fn read_kubeconfig_pipe(path: &Path) -> Result<Kubeconfig, KspyError> {
    use std::io::Read as _;
    let headline = || format!("cannot load kubeconfig {}", path.display());
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KUBECONFIG_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| KspyError::new(headline()).source(e))?;
    if text.len() as u64 > MAX_KUBECONFIG_BYTES {
        return Err(too_large(headline(), "goes on longer"));
    }
    Kubeconfig::from_yaml(&text).map_err(|e| {
        KspyError::new(headline())
            .source(e)
            .hint("fix what the command writes, or name a kubeconfig file")
    })
}

/// Reads one kubeconfig file; `Ok(None)` when it does not exist. A file that exists but
/// cannot be read or parsed is an error naming it, as is one that is not a regular file or is
/// too large to be a kubeconfig ([`check_kubeconfig_file`]).
fn read_kubeconfig(path: &Path) -> Result<Option<Kubeconfig>, KspyError> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Ok(meta) => {
            if let KubeconfigSource::Pipe = check_kubeconfig_file(path, &meta)? {
                return read_kubeconfig_pipe(path).map(Some);
            }
        }
        // Unreadable (permissions, a dangling component): kube-rs says why below.
        Err(_) => {}
    }
    let broken = |headline: String| {
        KspyError::new(headline).hint("fix the file, or leave it out of --kubeconfig / KUBECONFIG")
    };
    Kubeconfig::read_from(path).map(Some).map_err(|e| {
        let headline = format!("cannot load kubeconfig {}", path.display());
        match e {
            // Its message repeats the path with Rust's debug quoting; the I/O error says why.
            KubeconfigError::ReadConfig(io, _) => broken(headline).source(io),
            other => broken(headline).source(other),
        }
    })
}

/// Reads the files of a `KUBECONFIG` list and merges them as kubectl does: files that do not
/// exist are skipped; for each cluster, user and context the first file that names it wins,
/// and `current-context` comes from the first file that sets it. `Ok(None)` when none of the
/// files exists.
fn read_kubeconfig_list(paths: &[PathBuf]) -> Result<Option<Kubeconfig>, KspyError> {
    let mut merged: Option<Kubeconfig> = None;
    for path in paths {
        let Some(mut next) = read_kubeconfig(path)? else {
            continue;
        };
        // `current-context: ""` (kubectl config writes it) is unset, not a choice.
        if next.current_context.as_deref() == Some("") {
            next.current_context = None;
        }
        merged = Some(match merged {
            None => next,
            Some(so_far) => so_far.merge(next).map_err(|e| {
                KspyError::new(format!(
                    "cannot merge kubeconfig {} with the files before it in KUBECONFIG",
                    path.display()
                ))
                .source(e)
                .hint("every file in KUBECONFIG must be `apiVersion: v1`, `kind: Config`")
            })?,
        });
    }
    Ok(merged)
}

/// The files named by `KUBECONFIG`, empty entries dropped; `None` when it is unset or empty.
fn kubeconfig_env_paths() -> Option<Vec<PathBuf>> {
    let value = std::env::var_os("KUBECONFIG")?;
    let paths: Vec<PathBuf> = std::env::split_paths(&value)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    (!paths.is_empty()).then_some(paths)
}

/// A context that names a user the kubeconfig does not define. kubectl (client-go) and kube-rs
/// then send requests without credentials — anonymous — rather than refuse; kspy does the same,
/// but says so: it is nearly always a mistake (a typo, or a `KUBECONFIG` list that leaves out
/// the file defining the user), which would otherwise surface as a bare 401 or 403.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingUser {
    /// The context.
    pub context: String,
    /// The user it names.
    pub user: String,
}

impl MissingUser {
    /// What to do about it.
    fn fix(&self) -> String {
        format!(
            "define user {} under `users:` in the kubeconfig (in a KUBECONFIG list, the file \
             that defines it may be missing from the list), or set context {}'s `user:` to a \
             user that exists (`kubectl config get-users` lists them)",
            self.user, self.context
        )
    }
}

/// The user that the context kspy uses (`--context`, else the current one) names and the
/// kubeconfig lacks; `None` when it is defined, or when the context names no user at all (on
/// purpose, as in front of `kubectl proxy`).
fn missing_user(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<MissingUser> {
    let (name, _) = selected_context(kubeconfig, context)?;
    let user = context_user(kubeconfig, context)?;
    let defined = kubeconfig.auth_infos.iter().any(|u| u.name == user);
    (!defined).then(|| MissingUser {
        context: name.to_string(),
        user,
    })
}

/// The exec credential plugin of the user that the context kspy uses (`--context`, else the
/// current one) names, when that user has one.
fn exec_plugin(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<ExecPlugin> {
    let user = context_user(kubeconfig, context)?;
    let exec = kubeconfig
        .auth_infos
        .iter()
        .find(|u| u.name == user)?
        .auth_info
        .as_ref()?
        .exec
        .as_ref()?;
    Some(ExecPlugin {
        user,
        command: exec.command.clone().unwrap_or_default(),
        install_hint: exec.install_hint.clone().filter(|h| !h.trim().is_empty()),
    })
}

/// The user that the context kspy uses (`--context`, else the current one) names.
fn context_user(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let (_, selected) = selected_context(kubeconfig, context)?;
    selected.user.clone().filter(|u| !u.is_empty())
}

/// The context kspy uses (`--context`, else the kubeconfig's current one): its name and its
/// entry, when the kubeconfig defines it.
fn selected_context<'a>(
    kubeconfig: &'a Kubeconfig,
    context: Option<&'a str>,
) -> Option<(&'a str, &'a kube::config::Context)> {
    let name = context.or(kubeconfig.current_context.as_deref())?;
    let selected = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == name)?
        .context
        .as_ref()?;
    Some((name, selected))
}

/// The error for credentials of kubeconfig user `user` that kube-rs could not read — a
/// `client-certificate`, `client-key` or `tokenFile` that is missing or unreadable — which
/// it reports as "cannot set up the Kubernetes client" without saying whose or what to do;
/// `None` for any other error.
fn unreadable_credentials(err: &kube::Error, user: &str) -> Option<KspyError> {
    let what = match err {
        kube::Error::InferKubeconfig(KubeconfigError::LoadClientCertificate(_)) => {
            "client-certificate"
        }
        kube::Error::InferKubeconfig(KubeconfigError::LoadClientKey(_)) => "client-key",
        kube::Error::Auth(kube::client::AuthError::ReadTokenFile(..)) => "tokenFile",
        _ => return None,
    };
    Some(
        KspyError::new(format!(
            "cannot read the credentials of kubeconfig user {user}: its {what} cannot be read"
        ))
        .hint(format!(
            "fix the {what} path of user {user} in the kubeconfig (a relative path is taken \
             from the kubeconfig file's directory), or get a fresh kubeconfig from your \
             cluster's provider"
        )),
    )
}

/// What [`load_config`] found.
struct Loaded {
    /// The client configuration, its proxy set.
    config: Config,
    /// The proxy, chosen as kubectl would, if any.
    proxy: Option<Proxy>,
    /// The user the context names but the kubeconfig lacks, if so.
    missing_user: Option<MissingUser>,
    /// Where the default namespace came from.
    namespace_from: NamespaceFrom,
    /// The context's user's exec credential plugin, if any.
    exec_plugin: Option<ExecPlugin>,
    /// The kubeconfig user the context names, if any.
    user: Option<String>,
}

/// The client configuration, with the proxy (if any) chosen as kubectl would, and the user
/// the context names but the kubeconfig lacks, if so.
async fn load_config(args: &ClusterArgs) -> Result<Loaded, KspyError> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        cluster: None,
        user: None,
    };
    let from_file = |mut kc: Kubeconfig| async {
        // `current-context: ""` (kubectl config writes it) is unset, not a choice.
        if kc.current_context.as_deref() == Some("") {
            kc.current_context = None;
        }
        let copy = kc.clone();
        let mut config = Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| kubeconfig_error(e, args.context.as_deref(), Some(&copy)))?;
        let cluster_proxy = cluster_proxy_url(&copy, args.context.as_deref());
        let proxy = proxy::choose(
            cluster_proxy
                .as_ref()
                .map(|(c, u)| (c.as_str(), u.as_str())),
            &config.cluster_url,
            &env_var,
        )?;
        config.proxy_url = proxy.as_ref().map(|p| p.url.clone());
        let missing_user = missing_user(&copy, args.context.as_deref());
        let exec_plugin = exec_plugin(&copy, args.context.as_deref());
        let user = context_user(&copy, args.context.as_deref());
        let context = args
            .context
            .clone()
            .or(copy.current_context)
            .unwrap_or_default();
        Ok::<_, KspyError>(Loaded {
            config,
            proxy,
            missing_user,
            namespace_from: NamespaceFrom::Context(context),
            exec_plugin,
            user,
        })
    };
    if let Some(path) = &args.kubeconfig {
        return match read_kubeconfig(path)? {
            Some(kc) => from_file(kc).await,
            None => Err(KspyError::new(format!(
                "cannot load kubeconfig {}: the file does not exist",
                path.display()
            ))
            .hint("check the path given to --kubeconfig")),
        };
    }
    let env_paths = kubeconfig_env_paths();
    let paths = match (&env_paths, home_kubeconfig()) {
        (Some(list), _) => list.clone(),
        (None, Some(home)) => vec![home],
        (None, None) => Vec::new(),
    };
    if let Some(kc) = read_kubeconfig_list(&paths)? {
        return from_file(kc).await;
    }
    let missing = env_paths.map(|list| {
        let names: Vec<String> = list.iter().map(|p| p.display().to_string()).collect();
        format!(
            "none of the files in KUBECONFIG exists ({})",
            names.join(", ")
        )
    });
    if let Some(ctx) = &args.context {
        return Err(
            KspyError::new(format!("context {ctx} not found: there is no kubeconfig"))
                .details(missing)
                .hint("set KUBECONFIG or pass --kubeconfig"),
        );
    }
    let mut config = Config::incluster().map_err(|e| {
        KspyError::new("no kubeconfig found and not running inside a cluster")
            .details(missing)
            .source(e)
            .hint("set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config")
    })?;
    let proxy = proxy::choose(None, &config.cluster_url, &env_var)?;
    config.proxy_url = proxy.as_ref().map(|p| p.url.clone());
    Ok(Loaded {
        config,
        proxy,
        missing_user: None,
        namespace_from: NamespaceFrom::ServiceAccount,
        exec_plugin: None,
        user: None,
    })
}

impl Cluster {
    /// Connects as kubectl would with the same flags and environment.
    pub async fn connect(args: &ClusterArgs) -> Result<Cluster, KspyError> {
        Cluster::connect_for(args, true).await
    }

    /// As [`Cluster::connect`], for a command that works in every namespace (`kspy ls -A`,
    /// as `kubectl get -A`): the context's namespace is not used, so one that is no valid
    /// name is no error.
    pub async fn connect_cluster_wide(args: &ClusterArgs) -> Result<Cluster, KspyError> {
        Cluster::connect_for(args, false).await
    }

    async fn connect_for(args: &ClusterArgs, namespaced: bool) -> Result<Cluster, KspyError> {
        let Loaded {
            mut config,
            proxy,
            missing_user,
            namespace_from,
            exec_plugin,
            user,
        } = load_config(args).await?;
        if let Some(m) = &missing_user {
            eprint!(
                "{}",
                KspyError::new(format!(
                    "warning: context {} names user {}, which the kubeconfig does not define; \
                     kspy sends its requests without credentials (anonymous), as kubectl does",
                    m.context, m.user
                ))
                .hint(m.fix())
                .render(crate::prog())
            );
        }
        // `--request-timeout` bounds connecting too, when it is the shorter.
        let limit = (!args.request_timeout.is_zero()).then_some(args.request_timeout);
        if let (Some(limit), Some(connect)) = (limit, config.connect_timeout) {
            config.connect_timeout = Some(connect.min(limit));
        }
        let answer_timeout = AnswerTimeout {
            limit,
            connect_limit: config.connect_timeout,
            hop: host_port(proxy.as_ref().map_or(&config.cluster_url, |p| &p.url)),
        };
        let namespace = match &args.namespace {
            // Checked as the command line was parsed.
            Some(ns) => ns.clone(),
            None => {
                let ns = config.default_namespace.clone();
                if let Some(e) = invalid_namespace(&ns, &namespace_from).filter(|_| namespaced) {
                    return Err(e);
                }
                ns
            }
        };
        let server = match &proxy {
            Some(p) => format!("{} {}", config.cluster_url, p.describe()),
            None => config.cluster_url.to_string(),
        };
        let proxy_and_server = proxy.clone().map(|p| (p, config.cluster_url.clone()));
        // kube-rs sends no User-Agent; the API server's audit log and `managedFields` (for a
        // write without fieldManager) name the client by it, as they name kubectl.
        if let Ok(value) = http::HeaderValue::from_str(&user_agent()) {
            config.headers.push((http::header::USER_AGENT, value));
        }
        // kube-rs re-sends a write after a 504 that may have carried it out; kspy retries only
        // as kubectl does (`crate::retry`).
        config.default_retry = false;
        let flags = args.repeated();
        let client = ClientBuilder::try_from(config)
            .map_err(|e| {
                // kube-rs runs the exec credential plugin here.
                if let Some(explained) = exec_plugin
                    .as_ref()
                    .and_then(|p| explain_exec_plugin("cannot get credentials", &e, p, &flags))
                {
                    return explained;
                }
                if let Some(explained) = user.as_deref().and_then(|u| unreadable_credentials(&e, u))
                {
                    return explained.source(e);
                }
                let e = KspyError::new("cannot set up the Kubernetes client").source(e);
                match &proxy {
                    Some(p) => e.details([format!("connecting {}", p.describe())]),
                    None => e,
                }
            })?
            // Inside the answer timeout: retries count against --request-timeout.
            .with_layer(&ServerRetry { limit })
            .with_layer(&answer_timeout)
            // kube-rs drops response headers: the API server's warnings are read here.
            .with_layer(&WarningLayer {
                sink: Warnings::process().clone(),
            })
            .build();
        Ok(Cluster {
            client,
            namespace,
            server,
            missing_user,
            flags,
            exec_plugin,
            proxy: proxy_and_server,
        })
    }

    /// Explains a client error for `action`. When the API server refused an anonymous request
    /// — 401, or 403 for `system:anonymous` — that kspy sent so because the context names a
    /// user the kubeconfig lacks, that is said to be the cause.
    pub fn explain(&self, action: &Action, err: kube::Error) -> KspyError {
        let anonymous_refused = match &err {
            kube::Error::Api(s) => {
                s.code == 401 || (s.code == 403 && s.message.contains("system:anonymous"))
            }
            _ => false,
        };
        // The plugin run again for a fresh credential, mid-command.
        if let Some(explained) = self
            .exec_plugin
            .as_ref()
            .and_then(|p| explain_exec_plugin(&action.to_string(), &err, p, &self.flags))
        {
            return explained;
        }
        // The proxy, not the API server, failed: its hint, not "check that the cluster is up".
        let proxy_hint = self.proxy.as_ref().and_then(|(proxy, server)| {
            proxy::ProxyFailure::find(&err).map(|f| f.hint(proxy, server))
        });
        let e = explain(action, err, &self.server, &self.flags);
        let e = match proxy_hint {
            Some(hint) => e.hint(hint),
            None => e,
        };
        match &self.missing_user {
            Some(m) if anonymous_refused => e
                .details([format!(
                    "kspy sent no credentials: context {} names user {}, which the kubeconfig \
                     does not define",
                    m.context, m.user
                )])
                .hint(m.fix()),
            _ => e,
        }
    }

    /// Pods of the working namespace.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Sends a planned write and decodes the answer.
    pub async fn send<T: DeserializeOwned>(
        &self,
        req: &PlannedRequest,
        action: &Action,
    ) -> Result<T, KspyError> {
        self.send_raw(req, action)
            .await?
            .map_err(|e| self.explain(action, e))
    }

    /// Sends a planned write that is safe to repeat — once more when the API server answers 409
    /// Conflict (the object was modified between its read and its write: adding an ephemeral
    /// container is such a write, a 409 means nothing was written, and the same patch, with the
    /// same new container name, can only add it once) — for a JSON patch guarded by a `test` of
    /// the object's `resourceVersion`: `Ok(None)` when the patch did not apply to the object as
    /// it is now ([`json_patch_not_applied`]) — it changed since it was read, nothing was
    /// written, and the caller reads it again to build the patch anew.
    pub async fn send_unless_stale<T: DeserializeOwned>(
        &self,
        req: &PlannedRequest,
        action: &Action,
    ) -> Result<Option<T>, KspyError> {
        match self.send_raw_retrying_conflict(req, action).await? {
            Err(kube::Error::Api(s)) if json_patch_not_applied(&s) => Ok(None),
            other => other.map(Some).map_err(|e| self.explain(action, e)),
        }
    }

    /// As [`Cluster::send_unless_stale`], telling apart a denial by an admission webhook
    /// (`admission webhook "NAME" denied the request: …`), after which nothing was written and
    /// the caller may send something else: [`Judged::Denied`] carries the webhook's denial
    /// and the error explained as any other. Every other failure is `Err`.
    pub async fn send_judged<T: DeserializeOwned>(
        &self,
        req: &PlannedRequest,
        action: &Action,
    ) -> Result<Judged<T>, KspyError> {
        match self.send_raw_retrying_conflict(req, action).await? {
            Ok(object) => Ok(Judged::Done(object)),
            Err(kube::Error::Api(s)) if json_patch_not_applied(&s) => {
                Ok(Judged::Stale(self.explain(action, kube::Error::Api(s))))
            }
            Err(kube::Error::Api(s)) => match WebhookDenial::parse(s.message.trim()) {
                Some(denial) => Ok(Judged::Denied {
                    denial,
                    error: self.explain(action, kube::Error::Api(s)),
                }),
                None => Err(self.explain(action, kube::Error::Api(s))),
            },
            Err(e) => Err(self.explain(action, e)),
        }
    }

    async fn send_raw_retrying_conflict<T: DeserializeOwned>(
        &self,
        req: &PlannedRequest,
        action: &Action,
    ) -> Result<Result<T, kube::Error>, KspyError> {
        match self.send_raw(req, action).await? {
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                self.send_raw(req, action).await
            }
            other => Ok(other),
        }
    }

    async fn send_raw<T: DeserializeOwned>(
        &self,
        req: &PlannedRequest,
        action: &Action,
    ) -> Result<Result<T, kube::Error>, KspyError> {
        let http = req
            .to_http()
            .map_err(|e| KspyError::new(format!("{action}: cannot build the request")).source(e))?;
        // Ctrl-C while a write is on its way: it may be carried out all the same, so kspy says
        // so rather than end without a word.
        tokio::select! {
            answer = self.client.request::<T>(http) => Ok(answer),
            () = crate::interrupt::interrupt() => Err(crate::errors::interrupted_request(action, &self.flags)),
        }
    }

    /// Reads a pod; when it does not exist, the error lists the pods that do.
    pub async fn get_pod(&self, name: &str) -> Result<Pod, KspyError> {
        validate_dns_subdomain("POD", name).map_err(KspyError::from)?;
        let action = Action::GetPod {
            ns: self.namespace.clone(),
            pod: name.to_string(),
        };
        match self.pods().get(name).await {
            Ok(pod) => Ok(pod),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let headline = format!("pod {name} not found in namespace {}", self.namespace);
                match self.pods().list(&ListParams::default()).await {
                    Ok(list) => {
                        let names: Vec<String> = list
                            .items
                            .into_iter()
                            .filter_map(|p| p.metadata.name)
                            .collect();
                        // An empty namespace may be none at all: a mistyped -n, or a
                        // context's namespace that was deleted. Asked only then.
                        if names.is_empty() && self.namespace_missing().await {
                            return Err(self.no_such_namespace(&format!("looking for pod {name}")));
                        }
                        Err(missing_with_candidates(headline, "pod", name, &names))
                    }
                    Err(_) => Err(KspyError::new(headline).hint(format!(
                        "see the pods with `kubectl get pods -n {}{}`",
                        self.namespace, self.flags
                    ))),
                }
            }
            Err(e) => Err(self.explain(&action, e)),
        }
    }

    /// Whether the API server says the namespace does not exist (a 404 on its `GET` that names
    /// a namespace, as kube-apiserver's does; not a proxy's bare 404); false when it exists or
    /// cannot be read (you may not read namespaces).
    pub async fn namespace_missing(&self) -> bool {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        matches!(
            namespaces.get(&self.namespace).await,
            Err(kube::Error::Api(s)) if s.code == 404
                && s.details.as_ref().is_some_and(|d| d.kind == "namespaces")
        )
    }

    /// The error for a working namespace that does not exist (a mistyped `-n`, or a context's
    /// namespace since deleted), `doing` saying what kspy was after.
    pub fn no_such_namespace(&self, doing: &str) -> KspyError {
        KspyError::new(format!(
            "namespace {} does not exist ({doing})",
            self.namespace
        ))
        .hint(format!(
            "check -n/--namespace, or the context's namespace when -n is not given; \
             `kubectl{} get namespaces` lists those that exist",
            self.flags
        ))
    }

    /// Reads a node; `Ok(None)` when kspy may not read nodes (the pod is created anyway);
    /// when it does not exist, the error lists the nodes that do.
    pub async fn get_node(&self, name: &str) -> Result<Option<Node>, KspyError> {
        validate_dns_subdomain("NODE", name).map_err(KspyError::from)?;
        let nodes: Api<Node> = Api::all(self.client.clone());
        match nodes.get(name).await {
            Ok(node) => Ok(Some(node)),
            Err(kube::Error::Api(s)) if s.code == 403 => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 404 => {
                let headline = format!("node {name} not found");
                let names: Vec<String> = match nodes.list(&ListParams::default()).await {
                    Ok(list) => list
                        .items
                        .into_iter()
                        .filter_map(|n| n.metadata.name)
                        .collect(),
                    Err(_) => Vec::new(),
                };
                Err(missing_with_candidates(headline, "node", name, &names))
            }
            Err(e) => Err(self.explain(
                &Action::GetNode {
                    node: name.to_string(),
                },
                e,
            )),
        }
    }

    /// The user the API server sees, from a SelfSubjectReview (Kubernetes 1.28+); `None` when
    /// the cluster cannot say.
    pub async fn whoami(&self) -> Option<String> {
        let body = json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"});
        let req = http::Request::builder()
            .method(http::Method::POST)
            .uri("/apis/authentication.k8s.io/v1/selfsubjectreviews")
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&body).ok()?)
            .ok()?;
        let answer: Value = self.client.request(req).await.ok()?;
        answer
            .pointer("/status/userInfo/username")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bad namespace that came from the kubeconfig, not from -n, is said to come from
    /// there, with how to fix it there.
    #[test]
    fn an_invalid_namespace_is_named_by_where_it_came_from() {
        assert!(invalid_namespace("prod", &NamespaceFrom::Context("c".into())).is_none());
        let e = invalid_namespace("Bad_NS", &NamespaceFrom::Context("staging".into()))
            .expect("invalid");
        assert_eq!(
            e.headline,
            "context staging of the kubeconfig sets namespace \"Bad_NS\", which is no valid \
             namespace name: it must be lower-case letters, digits and '-', at most 63 characters"
        );
        assert!(!e.headline.contains("--namespace"), "{}", e.headline);
        assert_eq!(
            e.hint.as_deref(),
            Some(
                "fix the context's namespace (`kubectl config set-context staging \
                 --namespace=NAME`), or give one with -n NAMESPACE"
            )
        );
        let e = invalid_namespace("Bad_NS", &NamespaceFrom::ServiceAccount).expect("invalid");
        assert!(e.headline.contains("service account"), "{}", e.headline);
    }

    /// Without --context, a current-context that is unset, empty or unknown is reported as
    /// such, with the contexts that exist and how to pick one.
    #[test]
    fn a_missing_current_context_lists_the_contexts() {
        let contexts = vec!["prod".to_string(), "staging".to_string()];
        let e = no_current_context(None, &contexts);
        assert_eq!(
            e.headline,
            "the kubeconfig sets no current context, and no --context was given"
        );
        assert_eq!(e.details, ["contexts that exist: prod, staging"]);
        assert!(
            e.hint.as_deref().unwrap_or_default().starts_with(
                "pick one with --context NAME, or make it the current one with `kubectl \
                 config use-context NAME`"
            ),
            "{:?}",
            e.hint
        );
        let e = no_current_context(Some("prdo"), &contexts);
        assert_eq!(
            e.headline,
            "the kubeconfig's current context prdo is not one of its contexts (no --context \
             was given)"
        );
        assert_eq!(e.details, ["contexts that exist: prod, staging"]);
        let e = no_current_context(None, &[]);
        assert!(
            e.hint
                .as_deref()
                .unwrap_or_default()
                .contains("no contexts at all"),
            "{:?}",
            e.hint
        );
    }

    #[test]
    fn words_are_quoted_for_the_shell_only_when_they_need_it() {
        assert_eq!(
            shell_quote("prod-admin@cluster.example.com"),
            "prod-admin@cluster.example.com"
        );
        assert_eq!(shell_quote("/home/a/.kube/config"), "/home/a/.kube/config");
        assert_eq!(shell_quote("my context"), "'my context'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm -rf ~)"), "'$(rm -rf ~)'");
        assert_eq!(shell_quote(""), "''");
    }

    /// The cluster flags given come back, quoted, for the commands kspy suggests; none given,
    /// nothing: the same environment picks the same cluster.
    #[test]
    fn suggested_commands_repeat_the_cluster_flags_given() {
        assert_eq!(ClusterArgs::default().repeated(), "");
        let args = ClusterArgs {
            kubeconfig: Some(PathBuf::from("/tmp/kube configs/prod")),
            context: Some("prod".into()),
            ..ClusterArgs::default()
        };
        assert_eq!(
            args.repeated(),
            " --kubeconfig '/tmp/kube configs/prod' --context prod"
        );
        let args = ClusterArgs {
            context: Some("arn:aws:eks:eu-west-1:1234:cluster/prod".into()),
            ..ClusterArgs::default()
        };
        assert_eq!(
            args.repeated(),
            " --context arn:aws:eks:eu-west-1:1234:cluster/prod"
        );
    }
}
