//! Loading PEM certificates and keys into what rustls serves and trusts.

use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::error::CertError;
use crate::expiry::{CertIdentity, identity};

/// How far in the future a certificate's `notBefore` may lie and still be served: clocks of
/// the issuer and of this node may disagree a little.
pub(crate) const CLOCK_SKEW_SECS: i64 = 5 * 60;

/// A serving certificate chain and key, checked and ready for rustls.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    /// The chain (end-entity first) and signing key.
    pub certified_key: Arc<CertifiedKey>,
    /// When clients stop accepting the chain, seconds since the Unix epoch: the earliest
    /// `notAfter` of the end-entity certificate and of the intermediates sent with it (an
    /// intermediate that expires first fails every handshake from then on, however long the
    /// end-entity certificate has left). A self-signed root sent along is not counted: a
    /// client checks its own copy of the root it trusts.
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
/// end-entity certificate (the first of the chain), and neither that certificate nor an
/// intermediate after it has expired or starts beyond the allowed clock skew.
/// `cert_what`/`key_what` name the sources in errors.
pub fn parse_pem_pair(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_what: &str,
    key_what: &str,
) -> Result<LoadedCert, CertError> {
    let chain = parse_certs(cert_pem, cert_what)?;
    let key = parse_private_key(key_pem, key_what)?;
    let validity = chain_validity(&chain, cert_what)?;
    let identity = identity(&chain[0], cert_what)?;
    let provider = rustls::crypto::ring::default_provider();
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| CertError::Key {
            what: format!("{key_what} (for {cert_what})"),
            source,
        })?;
    let certified_key = CertifiedKey::new(chain, signer);
    match certified_key.keys_match() {
        // A key whose public half the provider cannot tell is not refused (rustls' own
        // `CertifiedKey::from_der` does the same).
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        // rustls says only "keys may not be consistent: KeyMismatch"; which files and what
        // to do is ours to say. The key of a later certificate of the file means the chain is
        // in the wrong order, not that key and certificate come from different issuances.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            let position = certified_key.cert.iter().skip(1).position(|cert| {
                CertifiedKey::new(vec![cert.clone()], certified_key.key.clone())
                    .keys_match()
                    .is_ok()
            });
            return Err(match position {
                Some(i) => CertError::ChainOrder {
                    what: cert_what.to_owned(),
                    position: i + 2,
                },
                None => CertError::KeyMismatch {
                    cert: cert_what.to_owned(),
                    key: key_what.to_owned(),
                },
            });
        }
        Err(source) => {
            return Err(CertError::Key {
                what: format!("{key_what} (for {cert_what})"),
                source,
            });
        }
    }
    // After the key: a chain in the wrong order starts with a CA certificate, which is no
    // serving certificate either, but the order is what to fix.
    check_serving_use(&certified_key.cert[0], cert_what)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    for (what, not_before, not_after) in &validity {
        if *not_after <= now {
            return Err(CertError::Expired {
                what: what.clone(),
                not_after: *not_after,
            });
        }
        // A certificate from the future fails every handshake just as an expired one does.
        // A few minutes are allowed for clocks that disagree (kspy's own certificates start
        // 5 minutes back for the same reason).
        if *not_before > now.saturating_add(CLOCK_SKEW_SECS) {
            return Err(CertError::NotYetValid {
                what: what.clone(),
                not_before: *not_before,
                ahead: not_before - now,
            });
        }
    }
    let not_after = validity
        .iter()
        .map(|(_, _, not_after)| *not_after)
        .min()
        .unwrap_or(i64::MIN);
    Ok(LoadedCert {
        certified_key: Arc::new(certified_key),
        not_after,
        identity,
    })
}

/// Refuses an end-entity certificate no client accepts from a server: one that names no DNS
/// name or IP address (clients, the API server included, match the host against the subject
/// alternative names only, never the common name), or whose extended key usage leaves out
/// server authentication.
fn check_serving_use(der: &CertificateDer<'static>, what: &str) -> Result<(), CertError> {
    let refuse = |reason: &str| CertError::NotForServing {
        what: what.to_owned(),
        reason: reason.to_owned(),
    };
    let x509 = |e: x509_parser::error::X509Error| CertError::X509 {
        what: what.to_owned(),
        reason: e.to_string(),
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| CertError::X509 {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    if let Some(eku) = cert.extended_key_usage().map_err(x509)? {
        // `any` satisfies Go's verifier, which is the API server's.
        if !eku.value.server_auth && !eku.value.any {
            return Err(refuse(
                "its extended key usage does not include server authentication (serverAuth), \
                 so clients refuse it from a server; issue it for server auth (cert-manager: \
                 `usages: [server auth]`; `kspy certs generate` does)",
            ));
        }
    }
    if crate::expiry::subject_alt_names(der, what)?.is_empty() {
        return Err(refuse(
            "it names no DNS name or IP address (subject alternative name), and clients match \
             the name they connect to (the Service's NAME.NS.svc) against those only, never \
             against the common name; issue it with the Service's DNS names as subject \
             alternative names (`kspy certs generate` does)",
        ));
    }
    Ok(())
}

/// The validity periods a client checks when it verifies `chain`: the end-entity
/// certificate's and each intermediate's, each with how errors name it. A self-signed
/// certificate after the first (a root sent along) is left out: clients verify against their
/// own copy of the root, which may be a renewal of the one sent.
fn chain_validity(
    chain: &[CertificateDer<'static>],
    what: &str,
) -> Result<Vec<(String, i64, i64)>, CertError> {
    let mut periods = Vec::with_capacity(chain.len());
    for (i, der) in chain.iter().enumerate() {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| CertError::X509 {
                what: if i == 0 {
                    what.to_owned()
                } else {
                    format!("{what} (certificate {} of the chain)", i + 1)
                },
                reason: e.to_string(),
            })?;
        if i > 0 && cert.subject().as_raw() == cert.issuer().as_raw() {
            continue;
        }
        let member = if i == 0 {
            what.to_owned()
        } else {
            format!(
                "{what} (certificate {} of the chain, the intermediate {})",
                i + 1,
                cert.subject()
            )
        };
        let validity = cert.validity();
        periods.push((
            member,
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        ));
    }
    Ok(periods)
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

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM document. An encrypted key
/// (`ENCRYPTED PRIVATE KEY`, or a key with OpenSSL's `Proc-Type: 4,ENCRYPTED` header) is
/// refused as such, [`CertError::EncryptedKey`]: kspy has no passphrase to open it.
pub fn parse_private_key(pem: &[u8], what: &str) -> Result<PrivateKeyDer<'static>, CertError> {
    let encrypted = || CertError::EncryptedKey {
        what: what.to_owned(),
    };
    match rustls_pemfile::private_key(&mut BufReader::new(pem)) {
        Ok(Some(key)) => Ok(key),
        // rustls-pemfile skips an `ENCRYPTED PRIVATE KEY` block as an unknown section (and
        // then finds no key), and fails on the headers of an OpenSSL-encrypted one ("malformed
        // PEM: InvalidCharacter(45)"): neither says the key is encrypted.
        Ok(None) | Err(_) if is_encrypted_key(pem) => Err(encrypted()),
        Ok(None) => Err(CertError::NoPrivateKey {
            what: what.to_owned(),
        }),
        Err(source) => Err(CertError::Pem {
            what: what.to_owned(),
            source,
        }),
    }
}

/// True when `pem` holds an encrypted private key: a PKCS#8 `ENCRYPTED PRIVATE KEY` block,
/// or a traditional OpenSSL key block with a `Proc-Type: 4,ENCRYPTED` header.
fn is_encrypted_key(pem: &[u8]) -> bool {
    let contains = |needle: &[u8]| pem.windows(needle.len()).any(|w| w == needle);
    contains(b"-----BEGIN ENCRYPTED PRIVATE KEY-----") || contains(b"Proc-Type: 4,ENCRYPTED")
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
