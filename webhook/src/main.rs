//! `kspy-webhook`: kspy's admission webhook server. See the crate README for flags, endpoints
//! and metrics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use kspy_admission::{NamespaceOrigin, NoPolicyVerdict, Settings};
use kspy_webhook::config::{DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_BUFFERED_BYTES};
use kspy_webhook::duration::parse_duration;
use kspy_webhook::events::EventSink;
use kspy_webhook::telemetry::{self, LogFormat};
use kspy_webhook::{ClientAuth, NamespaceSource, ServerConfig, TlsFiles};

/// mimalloc: judging a review allocates a few hundred small values, and glibc malloc was a
/// third of its instructions (see the engine benchmark). The floor server and load generator
/// (`kspy-load`) use it too, so the comparison stays like for like.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Where `--dev` keeps its generated CA and serving certificate.
const DEV_DIR: &str = ".kspy-dev";
/// The fixture the `--dev` banner's curl line posts, relative to the policy directory.
const DEV_FIXTURE: &str = "fixtures/attach-sre-ptrace.json";

/// kspy's admission webhook: judges debug containers and debug pods against kspy policies.
#[derive(Debug, Parser)]
#[command(name = "kspy-webhook", version, about)]
struct Args {
    /// HTTPS listen address for POST /mutate and /validate; [::] takes IPv4 and IPv6 (IPv4
    /// only where the kernel has no IPv6) [default: [::]:8443; with --dev 127.0.0.1:8443].
    #[arg(long)]
    addr: Option<SocketAddr>,
    /// Plain-HTTP listen address for /healthz, /readyz and /metrics; [::] as for --addr
    /// [default: [::]:8080; with --dev 127.0.0.1:8080].
    #[arg(long)]
    admin_addr: Option<SocketAddr>,
    /// Directory of DebugPolicy files (*.yaml, *.yml, recursively), reloaded on change
    /// [default with --dev: policies].
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// PEM serving certificate (chain), reloaded on change.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of the serving certificate, reloaded on change.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// PEM bundle of CA certificates: the HTTPS port then requires a client certificate
    /// issued by one of them for client authentication (clientAuth extended key usage), such
    /// as the one the API server presents when its AdmissionConfiguration gives it one for
    /// this webhook; other callers get no TLS connection. Reloaded on change.
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
    /// With --client-ca, a name the client certificate must bear as its subject common name
    /// or one of its DNS names (repeat the flag to allow several); without it, any
    /// certificate from the --client-ca CAs is accepted.
    #[arg(long, value_name = "NAME", requires = "client_ca")]
    client_name: Vec<String>,
    /// Local run: generate a CA and a serving certificate for 127.0.0.1, localhost and ::1
    /// into ./.kspy-dev/ (kept across runs while it has more than a day left), listen on
    /// loopback, log as text, and print how to send a review.
    #[arg(long)]
    dev: bool,
    /// Allow debug requests no policy applies to (audit-only roll-out); the default denies.
    #[arg(long)]
    no_policy_allows: bool,
    /// CEL expression that also classifies a pod CREATE as a debug copy, and a pod UPDATE that
    /// changes an image, asked of the pod after and before the update.
    #[arg(long, value_name = "CEL")]
    copy_classifier: Option<String>,
    /// CEL expression that also classifies a pod CREATE as node debugging, and a pod UPDATE
    /// that changes an image, asked of the pod after and before the update.
    #[arg(long, value_name = "CEL")]
    node_classifier: Option<String>,
    /// Largest request body accepted; larger ones get HTTP 413.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Most request body bytes held in memory at once, over all requests (at least
    /// --max-body-bytes). Bytes are counted as they arrive; a piece that finds no room waits
    /// for some within its review deadline over HTTP/1.1, then gets HTTP 408, and over HTTP/2
    /// gets 503 with Retry-After at once (a waiting stream would hold its connection's
    /// window). A piece is not given room that could leave bodies waiting on each other.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_BUFFERED_BYTES)]
    max_buffered_bytes: usize,
    /// Deadline for one review, above zero and at most 30s (the API server waits at most 30 s
    /// for a webhook); keep it below the webhook's timeoutSeconds. A review not decided in
    /// time is denied.
    #[arg(long, value_name = "DURATION", default_value = "9s", value_parser = parse_duration)]
    review_timeout: Duration,
    /// Log format [default: json; with --dev text]. Level from RUST_LOG (default info).
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
    /// How often the certificate files and the policy directory are checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
    reload_interval: Duration,
    /// On SIGTERM, how long /readyz fails while reviews are still served, before the
    /// listener closes (lets endpoints update first).
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = parse_duration)]
    shutdown_delay: Duration,
    /// Where Namespace objects (for namespaceSelector and namespaceObject) come from: the API
    /// server (needs RBAC get on namespaces), none (guardrails that select namespaces by
    /// label then deny every request they might apply to), declared (the Namespaces the
    /// DebugPolicyTest suites under --policies declare, read at start: for local runs and
    /// benchmarks), or auto (the API server when a kubeconfig or in-cluster config is found,
    /// otherwise none) [default: auto; with --dev declared, so a local run never reads a
    /// cluster its kubeconfig happens to point at].
    #[arg(long, value_enum)]
    namespace_lookup: Option<NamespaceLookupMode>,
    /// How long a looked-up Namespace is reused.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    namespace_cache_ttl: Duration,
    /// On SIGTERM, longest wait for in-flight reviews once the listener is closed.
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    shutdown_grace: Duration,
    /// Threads that parse and judge reviews; more reviews than this wait in line, within
    /// their deadline [default: the number of CPUs this process may use].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    judge_threads: Option<u16>,
    /// Most HTTPS connections open at once (each holds tens of KiB of buffers). With every one
    /// taken, the connection idle the longest is closed for a new client; while all have a
    /// request in flight, new connections wait in the listen queue.
    #[arg(long, value_name = "N", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
    /// Kubernetes Events about decisions: on every debug request judged on /validate (not dry
    /// runs), an Event on the Pod saying who, how, and what kspy decided (needs RBAC create
    /// and patch on events.k8s.io events). auto: when a kubeconfig or in-cluster config is found
    /// [default: auto; with --dev off, so a local run never writes to a cluster it finds].
    #[arg(long, value_enum)]
    events: Option<EventsMode>,
}

/// `--events` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum EventsMode {
    /// Post Events when a Kubernetes client configuration is found.
    Auto,
    /// Never post Events.
    Off,
}

/// `--namespace-lookup` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum NamespaceLookupMode {
    /// The API server if a client configuration is found, otherwise none.
    Auto,
    /// The API server; fail to start without a client configuration.
    Api,
    /// Never: guardrails that select namespaces by label deny every request they might apply
    /// to.
    None,
    /// The Namespaces the policy test suites declare, as `kspy policy test` sees them.
    Declared,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // A panic inside a policy's CEL evaluation is caught there and is that policy's evaluation
    // error (the request is denied and the decision line says why); its raw text would land
    // on stderr between the log lines, once per such request. Other panics still print.
    kspy_admission::cel::quiet_evaluation_panics();
    // Judging has its own threads (the server's judging pool); Tokio's blocking pool only
    // serves policy and certificate reloads and name lookups. Its default of 512 threads only
    // lets bursts leave idle threads behind, each with its own allocator heap.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("kspy-webhook")
        .max_blocking_threads(8)
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("kspy-webhook: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The chain once: `{err:#}` would repeat what foreign errors (kube's) already
            // hold in their message.
            let text = kspy_certs::error_chain(err.as_ref());
            tracing::error!(error = %text, "kspy-webhook failed");
            eprintln!("kspy-webhook: {text}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let format = args.log_format.unwrap_or(if args.dev {
        LogFormat::Text
    } else {
        LogFormat::Json
    });
    let telemetry =
        telemetry::init(format, "kspy-webhook").context("setting up logs and traces")?;

    let result = run(&args).await;
    // Flush traces off the runtime's worker threads.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    result
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let mut signals = Signals::install();
    let mut config = config_from(args)?;
    config.namespaces = namespace_source(args).await?;
    config.settings.namespaces = namespace_origin(&config.namespaces, &config.policies_dir);
    config.events = event_sink(args, &config.namespaces).await;
    let policies = config.policies_dir.clone();
    let server = kspy_webhook::start(config).await?;
    if args.dev {
        print_dev_banner(
            &policies,
            server.addr,
            server.admin_addr,
            args.client_ca.as_deref(),
        );
    }
    let handle = server.shutdown_handle();
    signals.stopped().await;
    signals.while_stopping();
    tracing::info!("shutting down: finishing in-flight reviews");
    handle.shutdown();
    server.wait().await;
    tracing::info!("stopped");
    Ok(())
}

fn config_from(args: &Args) -> anyhow::Result<ServerConfig> {
    let loopback = |port| SocketAddr::from(([127, 0, 0, 1], port));
    // Every address, IPv4 and IPv6 (listen.rs: IPv4 only where the kernel has no IPv6).
    let any = |port| SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
    let policies = match (&args.policies, args.dev) {
        (Some(dir), _) => dir.clone(),
        (None, true) => PathBuf::from("policies"),
        (None, false) => bail!("--policies DIR is required (or --dev for a local run)"),
    };
    // Before --dev writes its certificates: a run from the wrong directory leaves nothing.
    if !policies.is_dir() {
        let defaulted = if args.policies.is_none() {
            let here =
                std::env::current_dir().map_or_else(|_| ".".into(), |d| d.display().to_string());
            format!(" (the default with --dev, relative to the current directory {here})")
        } else {
            String::new()
        };
        bail!(
            "--policies {}: no such directory{defaulted}; give the directory of DebugPolicy \
             files with --policies DIR, or run from the repository's root",
            policies.display()
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key, args.dev) {
        (Some(cert), Some(key), _) => TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        },
        (_, _, true) => dev_certs(Path::new(DEV_DIR))?,
        _ => bail!("--tls-cert FILE and --tls-key FILE are required (or --dev for a local run)"),
    };
    let mut config = ServerConfig::new(&policies, tls);
    config.addr = args
        .addr
        .unwrap_or(if args.dev { loopback(8443) } else { any(8443) });
    config.admin_addr =
        args.admin_addr
            .unwrap_or(if args.dev { loopback(8080) } else { any(8080) });
    config.settings = Settings {
        no_policy: if args.no_policy_allows {
            NoPolicyVerdict::Allow
        } else {
            NoPolicyVerdict::Deny
        },
        // Set once the namespace source is known (`run`).
        namespaces: NamespaceOrigin::default(),
        copy_classifier: args.copy_classifier.clone(),
        node_classifier: args.node_classifier.clone(),
    };
    config.max_body_bytes = args.max_body_bytes;
    config.max_buffered_bytes = args.max_buffered_bytes;
    config.review_timeout = args.review_timeout;
    config.reload_interval = args.reload_interval;
    config.shutdown_delay = args.shutdown_delay;
    config.shutdown_grace = args.shutdown_grace;
    config.connection_limits.max_connections = args.max_connections as usize;
    config.client_auth = args.client_ca.as_ref().map(|ca| ClientAuth {
        ca: ca.clone(),
        names: args.client_name.clone(),
    });
    if let Some(n) = args.judge_threads {
        config.judge_threads = usize::from(n);
    }
    // Refused here, before anything is read or contacted; `start` checks again.
    config.validate()?;
    if args.namespace_cache_ttl > kspy_webhook::config::MAX_DURATION {
        bail!(
            "--namespace-cache-ttl {:?} is longer than a day: a relabelled Namespace would be \
             judged by its old labels that long; use at most 24h (default 30s; 0 reads it for \
             every request)",
            args.namespace_cache_ttl
        );
    }
    Ok(config)
}

/// `--namespace-lookup` as given, else `declared` for a local run (`--dev`), so it never reads
/// Namespaces from a cluster its kubeconfig happens to point at, else `auto`.
fn namespace_lookup_mode(args: &Args) -> NamespaceLookupMode {
    args.namespace_lookup.unwrap_or(if args.dev {
        NamespaceLookupMode::Declared
    } else {
        NamespaceLookupMode::Auto
    })
}

/// What judging without any Namespace means, said at start.
const WITHOUT_NAMESPACES: &str = "no Namespace objects: a policy that selects namespaces by \
     label grants nothing, and an Enforce policy with validations that does (a guardrail) \
     denies every request it might apply to (fail closed)";

async fn namespace_source(args: &Args) -> anyhow::Result<NamespaceSource> {
    let mode = namespace_lookup_mode(args);
    match mode {
        NamespaceLookupMode::None => {
            tracing::warn!("{WITHOUT_NAMESPACES} (--namespace-lookup none)");
            return Ok(NamespaceSource::None);
        }
        NamespaceLookupMode::Declared => return declared_namespaces(args),
        NamespaceLookupMode::Auto | NamespaceLookupMode::Api => {}
    }
    match kube::Client::try_default().await {
        Ok(client) => {
            tracing::info!("Namespace objects are read from the API server");
            Ok(NamespaceSource::Api {
                client,
                ttl: args.namespace_cache_ttl,
            })
        }
        Err(err) if mode == NamespaceLookupMode::Auto => {
            tracing::warn!(
                error = %err,
                "{WITHOUT_NAMESPACES} (no Kubernetes client configuration)"
            );
            Ok(NamespaceSource::None)
        }
        Err(err) => Err(anyhow::Error::new(err).context(
            "--namespace-lookup api: cannot build a Kubernetes client from KUBECONFIG, \
             ~/.kube/config or the in-cluster service account (fix or provide one, or run in a \
             cluster; or choose --namespace-lookup declared or none)",
        )),
    }
}

/// Where the engine is told the Namespaces come from, for its messages: a Namespace it lacks
/// was not readable, not looked up, or not declared by the suites under `policies`.
fn namespace_origin(source: &NamespaceSource, policies: &Path) -> NamespaceOrigin {
    match source {
        NamespaceSource::None => NamespaceOrigin::NotLookedUp,
        NamespaceSource::Static(_) => NamespaceOrigin::Declared {
            under: policies.display().to_string(),
        },
        NamespaceSource::Api { .. } => NamespaceOrigin::Api,
    }
}

/// The Namespaces the DebugPolicyTest suites under `--policies` declare.
fn declared_namespaces(args: &Args) -> anyhow::Result<NamespaceSource> {
    let dir = args
        .policies
        .clone()
        .unwrap_or_else(|| PathBuf::from("policies"));
    let declared = kspy_admission::testing::declared_namespaces(&dir).map_err(|e| {
        anyhow::anyhow!(
            "reading the namespaces declared under {}: {e}",
            dir.display()
        )
    })?;
    tracing::info!(
        namespaces = declared.len(),
        "Namespace objects come from the DebugPolicyTest suites"
    );
    Ok(NamespaceSource::Static(declared.into_iter().collect()))
}

/// `--events` as given, else off for a local run (`--dev`), so it never writes to a cluster
/// its kubeconfig happens to point at, else auto.
fn events_mode(args: &Args) -> EventsMode {
    args.events.unwrap_or(if args.dev {
        EventsMode::Off
    } else {
        EventsMode::Auto
    })
}

/// Where decision Events go: the namespace lookup's client when there is one, else a client
/// of its own, else nowhere.
async fn event_sink(args: &Args, namespaces: &NamespaceSource) -> EventSink {
    if events_mode(args) == EventsMode::Off {
        return EventSink::Off;
    }
    let client = match namespaces {
        NamespaceSource::Api { client, .. } => client.clone(),
        _ => match kube::Client::try_default().await {
            Ok(client) => client,
            Err(_) => {
                tracing::info!(
                    "no Kubernetes client configuration: decision Events are not posted"
                );
                return EventSink::Off;
            }
        },
    };
    tracing::info!("decision Events are posted to the API server");
    EventSink::Api {
        client,
        instance: replica_name(),
    }
}

/// This replica's name for `reportingInstance`: the pod's hostname, which Kubernetes sets to
/// the pod name.
fn replica_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kspy-webhook".to_owned())
}

/// Reuses `dir`'s certificate while it loads and has more than a day left; otherwise
/// generates a new CA and serving certificate for loopback.
fn dev_certs(dir: &Path) -> anyhow::Result<TlsFiles> {
    let files = TlsFiles {
        cert: dir.join(kspy_certs::CERT_FILE),
        key: dir.join(kspy_certs::KEY_FILE),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let reusable = dir.join(kspy_certs::CA_CERT_FILE).is_file()
        && kspy_certs::load_pem_files(&files.cert, &files.key)
            .is_ok_and(|loaded| loaded.not_after > now.saturating_add(86_400));
    if !reusable {
        let sans = ["127.0.0.1", "localhost", "::1"].map(str::to_owned);
        let certs = kspy_certs::generate_with_sans(
            "kspy-webhook",
            "kspy",
            Duration::from_secs(30 * 86_400),
            &sans,
        )
        .context("generating the development certificate")?;
        certs
            .write_to(dir)
            .with_context(|| format!("writing the development certificate to {}", dir.display()))?;
    }
    Ok(files)
}

fn print_dev_banner(
    policies: &Path,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    client_ca: Option<&Path>,
) {
    let ca = Path::new(DEV_DIR).join(kspy_certs::CA_CERT_FILE);
    let ca = std::fs::canonicalize(&ca).unwrap_or(ca);
    let fixture = policies.join(DEV_FIXTURE);
    let fixture = fixture.is_file().then_some(fixture);
    let host = if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    };
    println!("kspy-webhook --dev");
    println!("  policies:  {}", policies.display());
    println!("  CA:        {}", ca.display());
    println!("  webhook:   https://{host}/validate  https://{host}/mutate");
    println!("  admin:     http://{admin_addr}/metrics");
    if let Some(client_ca) = client_ca {
        println!(
            "  clients:   a client certificate from {} is required",
            client_ca.display()
        );
    }
    println!();
    let review = fixture
        .as_deref()
        .map_or_else(|| "REVIEW.json".to_owned(), |f| f.display().to_string());
    println!("Send it a review (an admission.k8s.io/v1 AdmissionReview):");
    let client_cert = if client_ca.is_some() {
        " --cert CLIENT.crt --key CLIENT.key"
    } else {
        ""
    };
    println!(
        "  curl --cacert {}{client_cert} -H 'Content-Type: application/json' --data-binary @{review} https://{host}/validate",
        ca.display(),
    );
    println!();
}

/// The process's signal handlers. Installed before the server starts: a supervisor (or a test)
/// that stops the server as soon as it is up gets a graceful shutdown, not the default kill.
///
/// - SIGTERM and SIGINT (Ctrl-C) stop the server gracefully; once it is stopping, another one
///   is logged as ignored (`already stopping`): the drain has its own bounds
///   (`--shutdown-delay`, `--shutdown-grace`), and SIGKILL is there to cut it short.
/// - SIGHUP is logged and ignored: certificates and policies reload on their own when their
///   files change, so there is nothing to re-read. Without a handler its default action
///   killed the process at once, with no drain and no log line.
struct Signals {
    #[cfg(unix)]
    stop: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Installs the handlers (and starts answering SIGHUP). Must run inside the runtime.
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::hangup()) {
                Ok(mut hup) => {
                    tokio::spawn(async move {
                        while hup.recv().await.is_some() {
                            tracing::info!(
                                signal = "SIGHUP",
                                "signal ignored: certificates and policies reload on their own \
                                 when their files change (every --reload-interval)"
                            );
                        }
                    });
                }
                Err(err) => tracing::warn!(error = %err, "cannot install the SIGHUP handler"),
            }
            let stop = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                _ => None,
            };
            Signals { stop }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Waits for the first SIGTERM or SIGINT.
    async fn stopped(&mut self) {
        #[cfg(unix)]
        if let Some((term, int)) = &mut self.stop {
            let name = tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = int.recv() => "SIGINT",
            };
            tracing::info!(signal = name, "signal received");
            return;
        }
        #[cfg(unix)]
        tracing::warn!("cannot install signal handlers; stop with Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }

    /// From now on, logs every further SIGTERM or SIGINT as ignored: the server is stopping.
    fn while_stopping(self) {
        #[cfg(unix)]
        if let Some((mut term, mut int)) = self.stop {
            tokio::spawn(async move {
                loop {
                    let name = tokio::select! {
                        Some(()) = term.recv() => "SIGTERM",
                        Some(()) = int.recv() => "SIGINT",
                        else => break,
                    };
                    tracing::info!(
                        signal = name,
                        "already stopping: finishing in-flight reviews (at most --shutdown-delay \
                         and --shutdown-grace); send SIGKILL to stop at once"
                    );
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration the flags `extra` give, beside the required ones.
    fn configured(extra: &[&str]) -> Result<ServerConfig, anyhow::Error> {
        let mut argv = vec![
            "kspy-webhook",
            "--policies",
            // A directory that exists (it is checked); nothing is read from it.
            env!("CARGO_MANIFEST_DIR"),
            "--tls-cert",
            "c",
            "--tls-key",
            "k",
        ];
        argv.extend_from_slice(extra);
        config_from(&Args::try_parse_from(argv).expect("args"))
    }

    fn config(extra: &[&str]) -> ServerConfig {
        configured(extra).expect("config")
    }

    #[test]
    fn events_default_to_auto_but_off_for_a_local_run() {
        let mode = |extra: &[&str]| {
            let mut argv = vec!["kspy-webhook"];
            argv.extend_from_slice(extra);
            events_mode(&Args::try_parse_from(argv).expect("args"))
        };
        assert_eq!(mode(&[]), EventsMode::Auto);
        assert_eq!(mode(&["--dev"]), EventsMode::Off);
        assert_eq!(mode(&["--events", "off"]), EventsMode::Off);
        assert_eq!(mode(&["--dev", "--events", "auto"]), EventsMode::Auto);
        assert!(Args::try_parse_from(["kspy-webhook", "--events", "on"]).is_err());
    }

    /// The engine's denials for an unknown namespace say what to fix for the source in use.
    #[test]
    fn the_engine_is_told_where_namespaces_come_from() {
        let dir = Path::new("policies");
        assert_eq!(
            namespace_origin(&NamespaceSource::None, dir),
            NamespaceOrigin::NotLookedUp
        );
        assert_eq!(
            namespace_origin(&NamespaceSource::from_namespaces([]), dir),
            NamespaceOrigin::Declared {
                under: "policies".into()
            }
        );
    }

    #[tokio::test]
    async fn declared_namespaces_come_from_the_policy_test_suites() {
        let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
        let args = |mode: &str| {
            Args::try_parse_from([
                "kspy-webhook",
                "--policies",
                policies,
                "--namespace-lookup",
                mode,
            ])
            .expect("args")
        };
        let NamespaceSource::Static(declared) =
            namespace_source(&args("declared")).await.expect("declared")
        else {
            panic!("declared namespaces are a fixed set");
        };
        let prod = declared
            .get("prod-payments")
            .expect("prod-payments is declared");
        let labels = prod.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels.get("env").map(String::as_str), Some("production"));
        assert!(matches!(
            namespace_source(&args("none")).await.expect("none"),
            NamespaceSource::None
        ));

        let missing = Args::try_parse_from([
            "kspy-webhook",
            "--policies",
            "/nonexistent/kspy-policies",
            "--namespace-lookup",
            "declared",
        ])
        .expect("args");
        let err = namespace_source(&missing)
            .await
            .expect_err("no such directory");
        assert!(
            err.to_string().contains("/nonexistent/kspy-policies"),
            "{err}"
        );
    }

    #[test]
    fn namespace_lookup_defaults_to_auto_but_declared_for_a_local_run() {
        let mode = |extra: &[&str]| {
            let mut argv = vec!["kspy-webhook"];
            argv.extend_from_slice(extra);
            namespace_lookup_mode(&Args::try_parse_from(argv).expect("args"))
        };
        assert_eq!(mode(&[]), NamespaceLookupMode::Auto);
        assert_eq!(mode(&["--dev"]), NamespaceLookupMode::Declared);
        assert_eq!(
            mode(&["--dev", "--namespace-lookup", "auto"]),
            NamespaceLookupMode::Auto
        );
        assert_eq!(
            mode(&["--namespace-lookup", "none"]),
            NamespaceLookupMode::None
        );
    }

    #[test]
    fn unworkable_settings_are_refused_before_anything_starts() {
        let refused = |extra: &[&str]| configured(extra).expect_err("refused").to_string();
        let text = refused(&["--review-timeout", "10000000000000000000s"]);
        assert!(
            text.contains("--review-timeout") && text.contains("30"),
            "{text}"
        );
        assert!(refused(&["--review-timeout", "0s"]).contains("--review-timeout"));
        let text = refused(&["--max-body-bytes", "2048", "--max-buffered-bytes", "1024"]);
        assert!(text.contains("--max-buffered-bytes"), "{text}");
        assert_eq!(config(&[]).max_buffered_bytes, DEFAULT_MAX_BUFFERED_BYTES);
    }

    #[test]
    fn judge_threads_default_to_the_cpus_and_can_be_set() {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        assert_eq!(config(&[]).judge_threads, cpus);
        assert_eq!(config(&["--judge-threads", "3"]).judge_threads, 3);
        assert!(Args::try_parse_from(["kspy-webhook", "--judge-threads", "0"]).is_err());
    }

    #[test]
    fn client_certificates_are_off_unless_a_client_ca_is_given() {
        assert_eq!(config(&[]).client_auth, None);
        assert_eq!(
            config(&["--client-ca", "ca.crt"]).client_auth,
            Some(ClientAuth {
                ca: "ca.crt".into(),
                names: Vec::new(),
            })
        );
        assert_eq!(
            config(&[
                "--client-ca",
                "ca.crt",
                "--client-name",
                "kube-apiserver",
                "--client-name",
                "apiserver.example",
            ])
            .client_auth,
            Some(ClientAuth {
                ca: "ca.crt".into(),
                names: vec!["kube-apiserver".into(), "apiserver.example".into()],
            })
        );
        let err = Args::try_parse_from(["kspy-webhook", "--client-name", "kube-apiserver"])
            .expect_err("--client-name needs --client-ca");
        assert!(err.to_string().contains("--client-ca"), "{err}");
        let text = configured(&["--client-ca", "ca.crt", "--client-name", ""])
            .expect_err("empty name")
            .to_string();
        assert!(text.contains("--client-name"), "{text}");
    }

    #[test]
    fn max_connections_default_to_1024_and_can_be_set() {
        assert_eq!(config(&[]).connection_limits.max_connections, 1024);
        assert_eq!(
            config(&["--max-connections", "64"])
                .connection_limits
                .max_connections,
            64
        );
        assert!(Args::try_parse_from(["kspy-webhook", "--max-connections", "0"]).is_err());
    }

    /// The README's flag table lists exactly the flags `kspy-webhook` takes, each with the
    /// default clap applies: a flag added, renamed or given another default without its row
    /// fails here.
    #[test]
    fn the_readme_flag_table_is_the_flags_with_their_defaults() {
        use clap::CommandFactory as _;
        use std::collections::BTreeMap;
        let readme = include_str!("../README.md");
        let table = readme
            .split("\n## Flags\n")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("webhook/README.md has a \"## Flags\" section");
        // First column: the flags of the row; second column: its default.
        let mut rows: BTreeMap<String, String> = BTreeMap::new();
        for line in table.lines().filter(|l| l.starts_with("| `--")) {
            let mut cells = line.split(" | ");
            let flags = cells.next().unwrap_or_default();
            let default = cells.next().unwrap_or_default();
            for flag in flags.split('`').filter(|f| f.starts_with("--")) {
                let name = flag.split([' ', '=']).next().unwrap_or(flag);
                rows.insert(name.trim_start_matches("--").to_owned(), default.to_owned());
            }
        }
        let command = Args::command();
        let flags: BTreeMap<String, Option<String>> = command
            .get_arguments()
            .filter_map(|a| {
                let long = a.get_long()?;
                let default = a
                    .get_default_values()
                    .first()
                    .map(|v| v.to_string_lossy().into_owned());
                Some((long.to_owned(), default))
            })
            .filter(|(long, _)| long != "help" && long != "version")
            .collect();
        assert_eq!(
            rows.keys().collect::<Vec<_>>(),
            flags.keys().collect::<Vec<_>>(),
            "the flags in webhook/README.md's table against those of kspy-webhook --help"
        );
        for (flag, default) in &flags {
            if let Some(default) = default {
                let row = &rows[flag];
                assert!(
                    row.starts_with(&format!("`{default}`")),
                    "webhook/README.md says --{flag} defaults to {row}; kspy-webhook's default is {default}"
                );
            }
        }
    }
}
