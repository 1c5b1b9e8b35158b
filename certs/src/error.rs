//! The one error type of this crate.

use std::path::PathBuf;

/// Everything that can go wrong generating, writing, loading or reloading certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A service name, namespace or extra SAN is not usable in a certificate.
    #[error("invalid certificate name {name:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// The validity period is zero or too long to represent.
    #[error("invalid validity period: {0}")]
    InvalidValidity(String),
    /// rcgen failed to build or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The PEM data holds no certificate.
    #[error("{what}: no CERTIFICATE block found")]
    NoCertificate {
        /// Where the PEM came from (a path, or a description).
        what: String,
    },
    /// The PEM data holds no private key.
    #[error("{what}: no private key block found (PKCS#8, PKCS#1 or SEC1)")]
    NoPrivateKey {
        /// Where the PEM came from.
        what: String,
    },
    /// The PEM data could not be decoded.
    #[error("{what}: malformed PEM: {source}")]
    Pem {
        /// Where the PEM came from.
        what: String,
        /// The decoder's error.
        source: std::io::Error,
    },
    /// The certificate's DER could not be parsed as X.509.
    #[error("{what}: not a valid X.509 certificate: {reason}")]
    X509 {
        /// Where the certificate came from.
        what: String,
        /// The parser's message.
        reason: String,
    },
    /// rustls refused the key, or the key does not belong to the certificate.
    #[error("{what}: {source}")]
    Key {
        /// Where the key came from.
        what: String,
        /// The rustls error (unsupported key type, key/certificate mismatch, …).
        source: rustls::Error,
    },
    /// A CA certificate could not be added to a root store.
    #[error("{what}: unusable CA certificate: {source}")]
    Ca {
        /// Where the CA certificate came from.
        what: String,
        /// The rustls/webpki error.
        source: rustls::Error,
    },
    /// The certificate's `notBefore` is still ahead (beyond the allowed clock skew): clients
    /// would refuse it ("certificate is not yet valid").
    #[error(
        "{what}: certificate is not valid before unix time {not_before}, {ahead} s from now; \
         check the issuer's and this node's clocks, or wait"
    )]
    NotYetValid {
        /// Where the certificate came from.
        what: String,
        /// Its `notBefore`, seconds since the Unix epoch.
        not_before: i64,
        /// How far ahead that is, in seconds.
        ahead: i64,
    },
    /// The certificate is already past its `notAfter`.
    #[error("{what}: certificate expired at unix time {not_after}")]
    Expired {
        /// Where the certificate came from.
        what: String,
        /// Its `notAfter`, seconds since the Unix epoch.
        not_after: i64,
    },
}

impl CertError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        CertError::Io {
            path: path.into(),
            source,
        }
    }
}
