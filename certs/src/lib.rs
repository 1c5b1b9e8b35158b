//! # kspy-certs — certificates for kspy's webhook
//!
//! - [`generate`] / [`generate_with_sans`]: a private CA and a serving certificate for the
//!   webhook Service (`NAME.NS.svc`, `NAME.NS.svc.cluster.local`, `NAME.NS`, `NAME`), and
//!   [`GeneratedCerts::write_to`] to write them as `ca.crt`, `tls.crt`, `tls.key` and
//!   `ca-bundle.b64` (the webhook configurations' `caBundle`).
//! - [`load_pem_files`] / [`parse_pem_pair`]: PEM chain + key checked and turned into a rustls
//!   [`CertifiedKey`](rustls::sign::CertifiedKey); [`root_store_from_pem`] for clients that trust
//!   only kspy's CA.
//! - [`not_after_unix`]: a certificate's expiry (x509-parser); [`LoadedCert::not_after`], the
//!   earliest expiry of a served chain (certificate and intermediates), is what the webhook
//!   exports as a metric.
//! - [`ReloadingResolver`]: a rustls `ResolvesServerCert` that follows rotation of the files on
//!   disk, including Kubernetes' `..data` symlink swap, by polling their resolved content.
//! - [`ReloadingClientVerifier`]: a rustls `ClientCertVerifier` requiring a client certificate
//!   from the CAs of a PEM file (reloaded the same way) and, optionally, one of a few names
//!   ([`ClientCertNames`]).
//!
//! Cryptography is rustls' and rcgen's `ring` backend only; keys are ECDSA P-256.

#![warn(missing_docs)]

mod client_ca;
mod error;
mod expiry;
mod generate;
mod pem;
mod reload;
mod write;

pub use client_ca::{ClientCaReload, ClientCertNames, ClientNameRefused, ReloadingClientVerifier};
pub use error::{CertError, error_chain};
pub use expiry::{CertIdentity, format_unix_utc, identity, not_after_unix, subject_alt_names};
pub use generate::{GeneratedCerts, generate, generate_with_sans, service_dns_names};
pub use pem::{
    LoadedCert, load_pem_files, parse_certs, parse_pem_pair, parse_private_key, root_store_from_pem,
};
pub use reload::{DEFAULT_RELOAD_INTERVAL, ReloadOutcome, ReloadingResolver};
pub use write::{CA_BUNDLE_FILE, CA_CERT_FILE, CERT_FILE, KEY_FILE, WrittenFiles};
