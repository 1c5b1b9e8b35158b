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
/// Default server-wide budget of request body bytes held in memory at once: 64 MiB, ten
/// bodies of the largest size allowed, within the Deployment's 128 Mi memory limit.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 64 * 1024 * 1024;
/// Default per-request deadline, below the webhook configurations' `timeoutSeconds: 10`.
pub const DEFAULT_REVIEW_TIMEOUT: Duration = Duration::from_secs(9);
/// Longest review deadline accepted: the API server waits at most 30 s for a webhook
/// (`timeoutSeconds` is at most 30), so a longer deadline could never be met.
pub const MAX_REVIEW_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest of the other configured durations (reload interval, shutdown delay and grace,
/// connection limits, Event series timing): a day. Longer values are surely mistakes, and
/// they keep every deadline computed from them far from the clock's end.
pub const MAX_DURATION: Duration = Duration::from_secs(86_400);
/// Default interval between polls of the certificate files and the policy directory.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);
/// Default longest wait for in-flight reviews at shutdown.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(15);
/// Default TLS listen address: every address, IPv4 and IPv6 (`listen.rs`; IPv4 only where
/// the kernel has no IPv6).
pub const DEFAULT_ADDR: &str = "[::]:8443";
/// Default admin (health, metrics) listen address, IPv4 and IPv6 as [`DEFAULT_ADDR`].
pub const DEFAULT_ADMIN_ADDR: &str = "[::]:8080";

/// Where the serving certificate and key are read from (and re-read when they change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, end-entity first (`tls.crt`).
    pub cert: PathBuf,
    /// PEM private key (`tls.key`).
    pub key: PathBuf,
}

/// Client certificates the webhook port requires (`--client-ca`, `--client-name`): only a
/// caller presenting one, such as the API server configured with a client certificate for
/// the webhook, gets a TLS connection, so other pods cannot send forged reviews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM bundle of the CA certificates a client certificate must chain to (with the
    /// `clientAuth` extended key usage); re-read on change every `reload_interval`.
    pub ca: PathBuf,
    /// When not empty, the client certificate's subject common name or one of its DNS
    /// subject alternative names must equal one of these; empty: any certificate from the
    /// CAs is accepted.
    pub names: Vec<String>,
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
    /// Most request body bytes held in memory at once, over all requests (at least
    /// `max_body_bytes`), counted as they arrive. A piece of a body that does not fit waits
    /// for room within its deadline; see [`crate::metrics::BadRequest::BufferFull`].
    pub max_buffered_bytes: usize,
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
    /// Client certificates required on the HTTPS port; `None` (the default): any client may
    /// connect.
    pub client_auth: Option<ClientAuth>,
    /// Testing aid; [`FaultInjection::None`] in production.
    pub fault_injection: FaultInjection,
}

impl ServerConfig {
    /// A configuration with the defaults: listen on [`DEFAULT_ADDR`] and
    /// [`DEFAULT_ADMIN_ADDR`], deny when no policy applies, 6 MiB bodies, 64 MiB of bodies at
    /// once, 9 s deadline, 2 s reload polls.
    pub fn new(policies_dir: impl Into<PathBuf>, tls: TlsFiles) -> Self {
        ServerConfig {
            addr: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 8443)),
            admin_addr: SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 8080)),
            policies_dir: policies_dir.into(),
            tls,
            settings: Settings::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
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
            client_auth: None,
            fault_injection: FaultInjection::None,
        }
    }

    /// The same configuration listening on `127.0.0.1:0` for both ports (tests).
    pub fn on_loopback(mut self) -> Self {
        self.addr = SocketAddr::from(([127, 0, 0, 1], 0));
        self.admin_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        self
    }

    /// Checks the settings that could not work: a review deadline of zero or above
    /// [`MAX_REVIEW_TIMEOUT`], a body budget smaller than one body, a zero reload interval,
    /// a duration above [`MAX_DURATION`], an empty client name. [`crate::start`] calls it
    /// first.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.review_timeout.is_zero() {
            return Err(ConfigError::ReviewTimeoutZero);
        }
        if self.review_timeout > MAX_REVIEW_TIMEOUT {
            return Err(ConfigError::ReviewTimeoutTooLong(self.review_timeout));
        }
        if self.max_buffered_bytes < self.max_body_bytes {
            return Err(ConfigError::BufferedBelowBody {
                buffered: self.max_buffered_bytes,
                body: self.max_body_bytes,
            });
        }
        if self.reload_interval.is_zero() {
            return Err(ConfigError::Zero("--reload-interval"));
        }
        if self.event_series.check_every.is_zero() {
            return Err(ConfigError::Zero("event series check_every"));
        }
        if let Some(client_auth) = &self.client_auth
            && client_auth.names.iter().any(|name| name.trim().is_empty())
        {
            return Err(ConfigError::EmptyClientName);
        }
        let limits = &self.connection_limits;
        for (name, value) in [
            ("--reload-interval", self.reload_interval),
            ("--shutdown-delay", self.shutdown_delay),
            ("--shutdown-grace", self.shutdown_grace),
            ("connection limit handshake", limits.handshake),
            ("connection limit first_request", limits.first_request),
            ("connection limit request_head", limits.request_head),
            ("connection limit write_stall", limits.write_stall),
            ("connection limit keep_alive_idle", limits.keep_alive_idle),
            (
                "connection limit http2_ping_interval",
                limits.http2_ping_interval,
            ),
            (
                "connection limit http2_ping_timeout",
                limits.http2_ping_timeout,
            ),
            ("event series window", self.event_series.window),
            ("event series heartbeat", self.event_series.heartbeat),
            ("event series check_every", self.event_series.check_every),
        ] {
            if value > MAX_DURATION {
                return Err(ConfigError::TooLong { name, value });
            }
        }
        Ok(())
    }
}

/// A configuration [`ServerConfig::validate`] refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `review_timeout` is zero.
    #[error(
        "--review-timeout 0s would deny every review before it is read; give the time kspy may take to decide (default 9s, at most 30s)"
    )]
    ReviewTimeoutZero,
    /// `review_timeout` is above [`MAX_REVIEW_TIMEOUT`].
    #[error(
        "--review-timeout {0:?} is longer than 30s: the API server waits at most 30 s for a webhook (timeoutSeconds <= 30), so it would give up first; use at most 30s, below the webhook's timeoutSeconds (default 9s for timeoutSeconds 10)"
    )]
    ReviewTimeoutTooLong(Duration),
    /// `max_buffered_bytes` is below `max_body_bytes`.
    #[error(
        "--max-buffered-bytes {buffered} is smaller than --max-body-bytes {body}: a body of the largest size allowed could never be read; raise --max-buffered-bytes to at least {body} (default 64 MiB) or lower --max-body-bytes"
    )]
    BufferedBelowBody {
        /// The budget given.
        buffered: usize,
        /// The body limit given.
        body: usize,
    },
    /// A duration that must not be zero is zero.
    #[error("{0} must be longer than zero")]
    Zero(&'static str),
    /// A `--client-name` that is empty (or only white space): no certificate could bear it.
    #[error(
        "--client-name is empty; give the common name or DNS name the client certificate must bear (the flag may be repeated)"
    )]
    EmptyClientName,
    /// A duration above [`MAX_DURATION`].
    #[error("{name} {value:?} is longer than a day; use at most 24h")]
    TooLong {
        /// Which setting (its flag, where it has one).
        name: &'static str,
        /// The value given.
        value: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServerConfig {
        ServerConfig::new(
            "p",
            TlsFiles {
                cert: "c".into(),
                key: "k".into(),
            },
        )
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(config().validate(), Ok(()));
    }

    #[test]
    fn review_timeouts_outside_the_api_servers_range_are_refused_with_the_reason() {
        let mut c = config();
        c.review_timeout = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::ReviewTimeoutZero));
        c.review_timeout = MAX_REVIEW_TIMEOUT;
        assert_eq!(c.validate(), Ok(()));
        for too_long in [
            Duration::from_millis(30_001),
            Duration::from_secs(10_000_000_000_000_000_000),
            Duration::MAX,
        ] {
            c.review_timeout = too_long;
            let err = c.validate().expect_err("too long");
            let text = err.to_string();
            assert!(text.contains("at most 30"), "{text}");
            assert!(text.contains("API server"), "{text}");
        }
    }

    #[test]
    fn the_body_budget_must_hold_one_body() {
        let mut c = config();
        c.max_buffered_bytes = c.max_body_bytes - 1;
        let text = c.validate().expect_err("too small").to_string();
        assert!(text.contains("--max-buffered-bytes"), "{text}");
        assert!(text.contains("--max-body-bytes"), "{text}");
        c.max_buffered_bytes = c.max_body_bytes;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn client_names_must_not_be_empty() {
        let mut c = config();
        c.client_auth = Some(ClientAuth {
            ca: "ca.crt".into(),
            names: Vec::new(),
        });
        assert_eq!(c.validate(), Ok(()));
        c.client_auth = Some(ClientAuth {
            ca: "ca.crt".into(),
            names: vec!["kube-apiserver".into(), " ".into()],
        });
        assert_eq!(c.validate(), Err(ConfigError::EmptyClientName));
    }

    #[test]
    fn other_durations_are_bounded() {
        let mut c = config();
        c.reload_interval = Duration::ZERO;
        assert_eq!(c.validate(), Err(ConfigError::Zero("--reload-interval")));
        c.reload_interval = Duration::MAX;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::TooLong {
                name: "--reload-interval",
                ..
            })
        ));
        let mut c = config();
        c.shutdown_grace = Duration::from_secs(86_401);
        assert!(c.validate().is_err());
    }
}
