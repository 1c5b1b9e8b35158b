//! The one error type of this crate, and [`error_chain`] to print any error once.
//!
//! Convention (shared with the webhook's errors): a message says what failed and where, never
//! its `source` again; whoever prints an error prints the whole chain with [`error_chain`].
//! Repeating the source in the message made every fact appear two or three times once the
//! chain was printed (`tls.crt: No such file…: tls.crt: No such file…: No such file…`).

use std::path::PathBuf;

use crate::expiry::format_unix_utc;

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
    #[error("certificate generation failed")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}")]
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
    #[error("{what}: malformed PEM")]
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
    /// The private key is encrypted: kspy has no passphrase to open it.
    #[error(
        "{what}: the private key is encrypted, and kspy reads only unencrypted keys; store \
         the key unencrypted (`openssl pkey -in KEY -out KEY.plain` asks for the passphrase \
         once) and keep it safe by the file's permissions or the Secret's access rules"
    )]
    EncryptedKey {
        /// Where the key came from.
        what: String,
    },
    /// rustls refused the key (an unsupported type or curve), or could not tell whether it
    /// belongs to the certificate.
    #[error(
        "{what}: unusable private key (kspy signs with RSA of 2048 bits or more, ECDSA P-256 \
         or P-384, or Ed25519 keys)"
    )]
    Key {
        /// Where the key came from.
        what: String,
        /// The rustls error (unsupported key type, key/certificate mismatch, …).
        source: rustls::Error,
    },
    /// The private key is not the one the certificate was issued for.
    #[error(
        "tls.key ({key}) is not the private key of tls.crt ({cert}): they come from different \
         issuances; install the key and certificate issued together (in a Secret, replace \
         tls.crt and tls.key in one update)"
    )]
    KeyMismatch {
        /// Where the certificate came from.
        cert: String,
        /// Where the key came from.
        key: String,
    },
    /// The private key belongs to a later certificate of the chain file than the first: the
    /// chain is out of order, and TLS sends the first certificate as the server's own.
    #[error(
        "{what}: the private key belongs to certificate {position} of the file, not to the \
         first; the serving (end-entity) certificate must come first, followed by the \
         intermediates that issued it, each before its issuer"
    )]
    ChainOrder {
        /// Where the chain came from.
        what: String,
        /// The 1-based position of the certificate the key belongs to.
        position: usize,
    },
    /// The end-entity certificate is one clients refuse from a server: it names no DNS name
    /// or IP address, or is not for server authentication.
    #[error("{what}: not usable as a TLS server certificate: {reason}")]
    NotForServing {
        /// Where the certificate came from.
        what: String,
        /// What is missing, and what to do.
        reason: String,
    },
    /// A CA certificate could not be added to a root store.
    #[error("{what}: unusable CA certificate")]
    Ca {
        /// Where the CA certificate came from.
        what: String,
        /// The rustls/webpki error.
        source: rustls::Error,
    },
    /// rustls could not build a client-certificate verifier from the CA certificates.
    #[error("{what}: cannot check client certificates against these CA certificates")]
    ClientVerifier {
        /// Where the CA certificates came from.
        what: String,
        /// The rustls error.
        source: rustls::server::VerifierBuilderError,
    },
    /// The certificate's `notBefore` is still ahead (beyond the allowed clock skew): clients
    /// would refuse it ("certificate is not yet valid").
    #[error(
        "{what}: certificate is not valid before {}, {ahead} s from now; \
         check the issuer's and this node's clocks, or wait",
        format_unix_utc(*not_before)
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
    #[error("{what}: certificate expired at {}", format_unix_utc(*not_after))]
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

/// `err` and its sources as one line, `: `-separated, each fact once: a source whose text the
/// line already holds is left out. kspy's own errors never repeat their source, but others do
/// (kube's configuration errors, for one, hold their whole chain in their message).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each fact once: the path, then the operating system's reason.
    #[test]
    fn an_io_error_names_its_path_and_reason_once() {
        let err = CertError::io(
            "tls.crt",
            std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory"),
        );
        assert_eq!(error_chain(&err), "tls.crt: No such file or directory");
    }

    /// A foreign error that repeats its source is not printed twice.
    #[test]
    fn a_source_already_in_the_message_is_left_out() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Repeats(#[source] std::io::Error);
        let err = Repeats(std::io::Error::other("inner"));
        assert_eq!(error_chain(&err), "outer: inner");
    }
}
