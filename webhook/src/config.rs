//! The server's configuration, as the binary's flags and in-process users (tests, the e2e
//! crate) give it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kspy_admission::Settings;

use crate::namespaces::NamespaceSource;

/// Default maximum request body: 6 MiB (the API server's own limit on request bodies is 3 MiB;
/// an AdmissionReview carries the object twice).
pub const DEFAULT_MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
/// Default per-request deadline, below the webhook configurations' `timeoutSeconds: 10`.
pub const DEFAULT_REVIEW_TIMEOUT: Duration = Duration::from_secs(9);
/// Default interval between polls of the certificate files and the policy directory.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// Default longest wait for in-flight reviews at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
/// Default TLS listen address.
pub const DEFAULT_ADDR: &str = "0.0.0.0:8443";
/// Default admin (health, metrics) listen address.
pub const DEFAULT_ADMIN_ADDR: &str = "0.0.0.0:8080";

/// Where the serving certificate and key are read from (and re-read when they change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, end-entity first (`tls.crt`).
    pub cert: PathBuf,
    /// PEM private key (`tls.key`).
    pub key: PathBuf,
}

/// Faults injected into judging, to test the fail-closed paths. Always
/// [`FaultInjection::None`] outside tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FaultInjection {
    /// Judge normally.
    #[default]
    None,
    /// Sleep this long on the judging thread before judging (tests the deadline).
    Delay(Duration),
    /// Panic on the judging thread (tests that a panic becomes a denial).
    Panic,
}

/// Everything [`crate::start`] needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// HTTPS listen address for `/mutate` and `/validate` (port 0: any free port).
    pub addr: SocketAddr,
    /// Plain-HTTP listen address for `/healthz`, `/readyz`, `/metrics`.
    pub admin_addr: SocketAddr,
    /// Directory of policy files, loaded at start and reloaded on change.
    pub policies_dir: PathBuf,
    /// Serving certificate and key.
    pub tls: TlsFiles,
    /// Engine settings (no-policy verdict, classifiers).
    pub settings: Settings,
    /// Largest request body accepted; larger ones get HTTP 413.
    pub max_body_bytes: usize,
    /// Deadline for one review, from request received to response ready.
    pub review_timeout: Duration,
    /// Interval between polls of the certificate files and the policy directory.
    pub reload_interval: Duration,
    /// After shutdown is requested, how long `/readyz` fails while requests are still served,
    /// so load balancers stop sending new ones first.
    pub shutdown_delay: Duration,
    /// Longest wait for in-flight reviews once the listener is closed.
    pub shutdown_grace: Duration,
    /// Time limits of the HTTPS connections (handshake, request headers, HTTP/2 pings).
    pub connection_limits: crate::serve::ConnectionLimits,
    /// Threads that judge reviews, so most reviews judged at the same time; the rest wait in
    /// line (within their deadline). Default: the number of CPUs.
    pub judge_threads: usize,
    /// Where Namespace objects (for `namespaceSelector` and `namespaceObject`) come from.
    pub namespaces: NamespaceSource,
    /// Where Kubernetes Events about decisions go (default: nowhere).
    pub events: crate::events::EventSink,
    /// When repeats of a decision are written as an Event series (default: client-go's).
    pub event_series: crate::event_series::SeriesTiming,
    /// Testing aid; [`FaultInjection::None`] in production.
    pub fault_injection: FaultInjection,
}

impl ServerConfig {
    /// A configuration with the defaults: listen on [`DEFAULT_ADDR`] and
    /// [`DEFAULT_ADMIN_ADDR`], deny when no policy applies, 6 MiB bodies, 9 s deadline, 2 s
    /// reload polls.
    pub fn new(policies_dir: impl Into<PathBuf>, tls: TlsFiles) -> Self {
        ServerConfig {
            addr: SocketAddr::from(([0, 0, 0, 0], 8443)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], 8080)),
            policies_dir: policies_dir.into(),
            tls,
            settings: Settings::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            review_timeout: DEFAULT_REVIEW_TIMEOUT,
            reload_interval: DEFAULT_RELOAD_INTERVAL,
            shutdown_delay: Duration::ZERO,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            connection_limits: crate::serve::ConnectionLimits::default(),
            judge_threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            namespaces: NamespaceSource::None,
            events: crate::events::EventSink::Off,
            event_series: crate::event_series::SeriesTiming::default(),
            fault_injection: FaultInjection::None,
        }
    }

    /// The same configuration listening on `127.0.0.1:0` for both ports (tests).
    pub fn on_loopback(mut self) -> Self {
        self.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        self.admin_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        self
    }
}
