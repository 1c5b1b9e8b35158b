//! Errors starting the webhook. Once running, failures are answered (denials, HTTP errors),
//! logged and counted, never returned.

use std::net::SocketAddr;

use kspy_admission::LoadErrors;
use kspy_certs::CertError;

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The configuration cannot work (see [`crate::config::ServerConfig::validate`]).
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    /// The serving certificate or key did not load.
    #[error("serving certificate: {0}")]
    Certs(#[from] CertError),
    /// The policies did not load (every error is listed).
    #[error("{0}")]
    Policies(LoadErrors),
    /// The engine refused the settings (for example a classifier expression).
    #[error("engine settings: {0}")]
    Settings(LoadErrors),
    /// rustls refused the TLS configuration.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another I/O failure while starting.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: std::io::Error,
    },
}
