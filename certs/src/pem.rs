//! Loading PEM certificates and keys into what rustls serves and trusts.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::error::CertError;
use crate::expiry::{CertIdentity, identity, validity_unix};

/// How far in the future a certificate's `notBefore` may lie and still be served: clocks of
/// the issuer and of this node may disagree a little.
pub(crate) const CLOCK_SKEW_SECS: i64 = 5 * 60;

/// A serving certificate chain and key, checked and ready for rustls.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// The chain (end-entity first) and signing key.
    pub certified_key: Arc<CertifiedKey>,
    /// The end-entity certificate's `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
    /// The end-entity certificate's subject, issuer and serial number, for the reload log.
    pub identity: CertIdentity,
}

/// Reads and checks a PEM certificate chain and private key from two files.
pub fn load_pem_files(cert_path: &Path, key_path: &Path) -> Result<LoadedCert, CertError> {
    let cert_pem = std::fs::read(cert_path).map_err(|e| CertError::io(cert_path, e))?;
    let key_pem = std::fs::read(key_path).map_err(|e| CertError::io(key_path, e))?;
    parse_pem_pair(
        &cert_pem,
        &key_pem,
        &cert_path.display().to_string(),
        &key_path.display().to_string(),
    )
}

/// Checks a PEM certificate chain and private key held in memory: the chain is non-empty and
/// parses as X.509, the key is one rustls' ring provider can sign with, the key belongs to the
/// end-entity certificate, and that certificate has not expired. `cert_what`/`key_what` name
/// the sources in errors.
pub fn parse_pem_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_what: &str,
    key_what: &str,
) -> Result<LoadedCert, CertError> {
    let chain = parse_certs(cert_pem, cert_what)?;
    let key = parse_private_key(key_pem, key_what)?;
    let (not_before, not_after) = validity_unix(&chain[0], cert_what)?;
    let identity = identity(&chain[0], cert_what)?;
    let provider = rustls::crypto::ring::default_provider();
    let certified_key =
        CertifiedKey::from_der(chain, key, &provider).map_err(|source| match source {
            // rustls says only "keys may not be consistent: KeyMismatch"; which files and what
            // to do is ours to say.
            rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                CertError::KeyMismatch {
                    cert: cert_what.to_owned(),
                    key: key_what.to_owned(),
                }
            }
            source => CertError::Key {
                what: format!("{key_what} (for {cert_what})"),
                source,
            },
        })?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    if not_after <= now {
        return Err(CertError::Expired {
            what: cert_what.to_owned(),
            not_after,
        });
    }
    // A certificate from the future fails every handshake just as an expired one does. A few
    // minutes are allowed for clocks that disagree (kspy's own certificates start 5 minutes
    // back for the same reason).
    if not_before > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(CertError::NotYetValid {
            what: cert_what.to_owned(),
            not_before,
            ahead: not_before - now,
        });
    }
    Ok(LoadedCert {
        certified_key: Arc::new(certified_key),
        not_after,
        identity,
    })
}

/// Every `CERTIFICATE` block of a PEM document, in order; an error when there is none.
pub fn parse_certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs = rustls_pemfile::certs(&mut BufReader::new(pem))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CertError::Pem {
            what: what.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM document.
pub fn parse_private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    rustls_pemfile::private_key(&mut BufReader::new(pem))
        .map_err(|source| CertError::Pem {
            what: what.to_owned(),
            source,
        })?
        .ok_or_else(|| CertError::NoPrivateKey {
            what: what.to_owned(),
        })
}

/// A root store trusting exactly the certificates of a PEM document (typically `ca.crt`), for
/// clients that must trust only kspy's CA.
pub fn root_store_from_pem(pem: &[u8], what: &str) -> Result<RootCertStore, CertError> {
    let mut store = RootCertStore::empty();
    for cert in parse_certs(pem, what)? {
        store.add(cert).map_err(|source| CertError::Ca {
            what: what.to_owned(),
            source,
        })?;
    }
    Ok(store)
}
