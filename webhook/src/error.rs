//! Errors starting the webhook. Once running, failures are answered (denials, HTTP errors),
//! logged and counted, never returned.
//!
//! As in `kspy-certs`, a message never repeats its `source`: the binary prints the chain once
//! ([`kspy_certs::error_chain`]), so a source in the message too would say it twice.

use std::net::SocketAddr;

use kspy_admission::LoadErrors;
use kspy_certs::CertError;

/// Why the webhook could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The configuration cannot work (see [`crate::config::ServerConfig::validate`]).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The serving certificate or key did not load.
    #[error("serving certificate")]
    Certs(#[from] CertError),
    /// The client CA file (`--client-ca`) did not load.
    #[error("client CA (--client-ca)")]
    ClientCa(#[source] CertError),
    /// The policies did not load (every error is listed).
    #[error("{0}")]
    Policies(LoadErrors),
    /// The engine refused the settings (for example a classifier expression), named by the
    /// flag that set them.
    #[error("{}", settings_message(.0))]
    Settings(LoadErrors),
    /// rustls refused the TLS configuration.
    #[error("TLS configuration")]
    Tls(#[from] rustls::Error),
    /// A listener could not be bound. (The I/O error is part of the message, not a `source`:
    /// the binary prints the whole chain, which would say it twice.)
    #[error("cannot listen on {addr} ({flag}): {error}{}", bind_hint(error, flag))]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The flag that sets it: `--addr` or `--admin-addr`.
        flag: &'static str,
        /// The I/O error.
        error: std::io::Error,
    },
    /// Another I/O failure while starting.
    #[error("{context}: {error}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// What to do about a listener that could not be bound, for the common causes.
fn bind_hint(error: &std::io::Error, flag: &str) -> String {
    match error.kind() {
        std::io::ErrorKind::AddrInUse => {
            format!("; another process holds the port: stop it, or choose another with {flag}")
        }
        std::io::ErrorKind::PermissionDenied => {
            format!("; ports below 1024 need privileges: choose a higher one with {flag}")
        }
        std::io::ErrorKind::AddrNotAvailable => {
            format!(
                "; no interface here has that address: use [::] (every address, IPv4 and IPv6), 0.0.0.0 or 127.0.0.1 with {flag}"
            )
        }
        _ => String::new(),
    }
}

/// The engine's settings errors, each under the flag that set the value.
fn settings_message(errors: &LoadErrors) -> String {
    let lines: Vec<String> = errors
        .errors()
        .iter()
        .map(|e| {
            let flag = match e.field.as_deref() {
                Some("copyClassifier") => "--copy-classifier",
                Some("nodeClassifier") => "--node-classifier",
                Some(other) => other,
                None => "engine settings",
            };
            format!("{flag}: {} (the value is a CEL expression over `object`, `request` and `namespaceObject`)", e.message)
        })
        .collect();
    lines.join("; ")
}
