//! Client certificates: a rustls [`ClientCertVerifier`] that requires a certificate issued by
//! one of the CAs of a PEM file, reloaded when the file changes, and optionally one of a few
//! names.
//!
//! The chain, the validity period and the `clientAuth` extended key usage are checked by
//! rustls' [`WebPkiClientVerifier`]; [`ReloadingClientVerifier`] delegates to one built from
//! the file's CAs and swaps it for a new one when the file's content changes (read through
//! its symlinks every poll, as [`crate::ReloadingResolver`] reads the serving certificate, so
//! that a Secret or ConfigMap volume's `..data` swap is seen). A change that does not load
//! keeps the previous CAs in force. On top of the chain it checks the certificate's names:
//! with allowed names given, the subject's common name or one of its DNS subject alternative
//! names must equal one of them ([`ClientCertNames::matches`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};

use crate::error::{CertError, error_chain};
use crate::expiry::identity;
use crate::pem::parse_certs;
use crate::reload::{files_state, retry_not_found, spawn_poller};

/// The names of a client certificate that the name check looks at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientCertNames {
    /// The subject's common names (`CN=`), usually one; those not readable as text are left
    /// out.
    pub common_names: Vec<String>,
    /// The DNS subject alternative names.
    pub dns_names: Vec<String>,
}

impl ClientCertNames {
    /// The common names and DNS names of a DER certificate. `what` names the certificate in
    /// the error.
    pub fn of(der: &CertificateDer<'_>, what: &str) -> Result<Self, CertError> {
        use x509_parser::extensions::GeneralName;
        let x509 = |reason: String| CertError::X509 {
            what: what.to_owned(),
            reason,
        };
        let (_, cert) =
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| x509(e.to_string()))?;
        let common_names = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok().map(str::to_owned))
            .collect();
        let dns_names = match cert
            .subject_alternative_name()
            .map_err(|e| x509(e.to_string()))?
        {
            Some(ext) => ext
                .value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::DNSName(dns) => Some((*dns).to_owned()),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(ClientCertNames {
            common_names,
            dns_names,
        })
    }

    /// True when one of `allowed` equals a common name (exactly: a common name is a name,
    /// as Kubernetes reads it for a user) or a DNS name (ignoring ASCII case, as DNS does).
    /// A wildcard DNS name (`*.kspy-system.svc`) is compared as written, never expanded: it
    /// matches only an allowed name written the same way.
    pub fn matches(&self, allowed: &[String]) -> bool {
        allowed.iter().any(|name| {
            self.common_names.iter().any(|cn| cn == name)
                || self
                    .dns_names
                    .iter()
                    .any(|dns| dns.eq_ignore_ascii_case(name))
        })
    }
}

impl fmt::Display for ClientCertNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.common_names.is_empty() && self.dns_names.is_empty() {
            return f.write_str("no common name and no DNS name");
        }
        let names: Vec<String> = self
            .common_names
            .iter()
            .map(|cn| format!("CN={cn}"))
            .chain(self.dns_names.iter().map(|dns| format!("DNS:{dns}")))
            .collect();
        f.write_str(&names.join(", "))
    }
}

/// A client certificate that chains to a trusted CA but has none of the allowed names. The
/// handshake fails with this error inside `rustls::Error::InvalidCertificate(
/// CertificateError::Other(..))` (the client gets a `certificate_unknown` alert), so whoever
/// logs the failed handshake can say which names the certificate had.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "client certificate names ({names}) are not among the allowed client names ({})",
    allowed.join(", ")
)]
pub struct ClientNameRefused {
    /// The certificate's names.
    pub names: ClientCertNames,
    /// The names allowed.
    pub allowed: Vec<String>,
}

/// What one [`ReloadingClientVerifier::poll`] found.
#[derive(Debug)]
pub enum ClientCaReload {
    /// The file holds what was last seen (or fails as it did last time).
    Unchanged,
    /// New content loaded; client certificates are now checked against it.
    Reloaded {
        /// How many CA certificates the file holds.
        cas: usize,
    },
    /// New content did not load; the previous CAs stay in force.
    Failed(CertError),
}

/// The CAs in force and the verifier built from them.
struct LoadedCas {
    verifier: Arc<dyn ClientCertVerifier>,
    /// Each CA's subject, for logs.
    subjects: Vec<String>,
}

/// The content last read from the file, to detect changes.
#[derive(Default)]
struct Seen {
    pem: Vec<u8>,
    /// The last read failure reported and the state of the file it was found in
    /// ([`files_state`]): reported once, but a further change that fails the same way is
    /// reported and counted again.
    read_error: Option<(String, u64)>,
}

/// A [`ClientCertVerifier`] requiring a client certificate issued by one of the CAs of a PEM
/// file (with the `clientAuth` extended key usage, within its validity), reloaded when the
/// file's content changes, and, when allowed names are given, bearing one of them
/// ([`ClientCertNames::matches`]). Share it as `Arc<ReloadingClientVerifier>` between the
/// rustls `ServerConfig` and the watcher ([`ReloadingClientVerifier::watch`]).
pub struct ReloadingClientVerifier {
    path: PathBuf,
    allowed_names: Vec<String>,
    current: RwLock<LoadedCas>,
    seen: Mutex<Seen>,
}

impl fmt::Debug for ReloadingClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingClientVerifier")
            .field("path", &self.path)
            .field("allowed_names", &self.allowed_names)
            .field("ca_subjects", &self.ca_subjects())
            .finish_non_exhaustive()
    }
}

impl ReloadingClientVerifier {
    /// Loads the CA certificates of the PEM file at `path`; fails if the file cannot be read,
    /// holds no certificate, or holds one that does not parse. An empty `allowed_names`
    /// accepts any certificate the CAs issued for client authentication.
    pub fn load(path: &Path, allowed_names: Vec<String>) -> Result<Self, CertError> {
        let pem = std::fs::read(path).map_err(|e| CertError::io(path, e))?;
        let loaded = load_cas(&pem, &path.display().to_string())?;
        Ok(ReloadingClientVerifier {
            path: path.to_owned(),
            allowed_names,
            current: RwLock::new(loaded),
            seen: Mutex::new(Seen {
                pem,
                read_error: None,
            }),
        })
    }

    /// The CA file this verifier reads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The names a client certificate must bear one of (none: any name).
    pub fn allowed_names(&self) -> &[String] {
        &self.allowed_names
    }

    /// The subjects of the CA certificates in force, in the file's order.
    pub fn ca_subjects(&self) -> Vec<String> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .subjects
            .clone()
    }

    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .verifier
            .clone()
    }

    /// Re-reads the file (through any symlinks) and, if its content changed since the last
    /// poll, loads it. Blocking file I/O: from async code call it on a blocking thread, as
    /// [`ReloadingClientVerifier::watch`] does. A reload is logged at info with the CAs'
    /// subjects, a failure at warn with the file and the reason.
    pub fn poll(&self) -> ClientCaReload {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let pem = match retry_not_found(|| {
            std::fs::read(&self.path).map_err(|e| CertError::io(&self.path, e))
        }) {
            Ok(pem) => pem,
            Err(err) => {
                let failure = (err.to_string(), files_state(&[&self.path]));
                if seen.read_error.as_ref() == Some(&failure) {
                    return ClientCaReload::Unchanged;
                }
                tracing::warn!(
                    file = %self.path.display(),
                    error = %error_chain(&err),
                    "cannot read the client CA file; keeping the previous client CAs"
                );
                seen.read_error = Some(failure);
                return ClientCaReload::Failed(err);
            }
        };
        seen.read_error = None;
        if pem == seen.pem {
            return ClientCaReload::Unchanged;
        }
        let outcome = match load_cas(&pem, &self.path.display().to_string()) {
            Ok(loaded) => {
                let cas = loaded.subjects.len();
                let subjects = loaded.subjects.join("; ");
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = loaded;
                tracing::info!(
                    file = %self.path.display(),
                    cas,
                    subjects = %subjects,
                    "client CA reloaded"
                );
                ClientCaReload::Reloaded { cas }
            }
            Err(err) => {
                tracing::warn!(
                    file = %self.path.display(),
                    error = %error_chain(&err),
                    "new client CA file does not load; keeping the previous client CAs"
                );
                ClientCaReload::Failed(err)
            }
        };
        // Failed content is remembered too: it is reported once, not every poll.
        seen.pem = pem;
        outcome
    }

    /// Spawns a task on the current Tokio runtime that polls every `interval` and hands each
    /// outcome other than [`ClientCaReload::Unchanged`] to `on_change` (for metrics). The task
    /// ends by itself once the verifier is dropped; abort the handle to stop it earlier.
    pub fn watch<F>(
        self: &Arc<Self>,
        interval: Duration,
        mut on_change: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: FnMut(&ClientCaReload) + Send + 'static,
    {
        spawn_poller(
            self,
            interval,
            "client CA",
            ReloadingClientVerifier::poll,
            move |outcome| {
                if !matches!(outcome, ClientCaReload::Unchanged) {
                    on_change(&outcome);
                }
            },
        )
    }
}

/// Every CA certificate of a PEM bundle, checked, and a verifier trusting exactly them.
fn load_cas(pem: &[u8], what: &str) -> Result<LoadedCas, CertError> {
    let certs = parse_certs(pem, what)?;
    // Only the certificates are read; a CA's key beside them (a bundle written by
    // `openssl req -x509 -keyout same-file`, or `cat ca.crt ca.key`) is ignored, but it
    // should not sit in the webhook's Secret at all: whoever reads it can issue client
    // certificates that kspy trusts.
    if matches!(
        rustls_pemfile::private_key(&mut std::io::BufReader::new(pem)),
        Ok(Some(_))
    ) {
        tracing::warn!(
            file = %what,
            "the --client-ca file also holds a private key, which the webhook does not use: \
             whoever can read the file can issue client certificates kspy trusts; keep only the \
             CA certificate in it and the key where the CA is run"
        );
    }
    let several = certs.len() > 1;
    let mut roots = RootCertStore::empty();
    let mut subjects = Vec::with_capacity(certs.len());
    for (i, cert) in certs.into_iter().enumerate() {
        let what = if several {
            format!("{what} (certificate {} of the bundle)", i + 1)
        } else {
            what.to_owned()
        };
        // Parsed first for a clear message: webpki's own says only "bad encoding".
        let subject = identity(&cert, &what)?.subject;
        // webpki takes any certificate as a trust anchor, so this loads; but a certificate
        // marked as no CA is almost always the client's own certificate given in place of
        // its CA, and every client is then refused as "unknown issuer".
        if marked_not_ca(&cert) {
            tracing::warn!(
                file = %what,
                certificate = %subject,
                "a --client-ca certificate is marked as no CA (basicConstraints CA:FALSE), so \
                 no client certificate chains to it and every client is refused (unknown \
                 issuer); give the CA certificate that issued the client certificates, not a \
                 client certificate"
            );
        }
        subjects.push(subject);
        roots
            .add(cert)
            .map_err(|source| CertError::Ca { what, source })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|source| CertError::ClientVerifier {
        what: what.to_owned(),
        source,
    })?;
    Ok(LoadedCas { verifier, subjects })
}

/// True when `der` says it is no CA (basic constraints present, `cA` false). A certificate
/// without the extension (an X.509 v1 root) may be a CA.
fn marked_not_ca(der: &CertificateDer<'_>) -> bool {
    x509_parser::parse_x509_certificate(der.as_ref())
        .ok()
        .and_then(|(_, cert)| {
            cert.basic_constraints()
                .ok()
                .flatten()
                .map(|bc| !bc.value.ca)
        })
        .unwrap_or(false)
}

impl ClientCertVerifier for ReloadingClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    /// None: the CertificateRequest names no CA, which tells the client that any of its
    /// certificates may do. With the CAs' subjects listed (rustls' default), a Go client
    /// configured with `Certificates` (crypto/tls) sends no certificate at all when none of
    /// its chain's issuers is listed; after a CA rotation that reached the client before the
    /// webhook, or with a client certificate issued by an intermediate the hints do not name,
    /// the refusal would then read "no client certificate" on our side and "certificate
    /// required" on the client's, hiding what is actually wrong. Without hints the client
    /// sends its certificate, and the refusal names the real reason (unknown issuer, expired,
    /// wrong names). It also keeps the list of trusted CAs from anyone who connects. The
    /// hints would only help a client choosing between several certificates; the API server
    /// has one per webhook (its kubeconfig `users` entry). (The subjects could not be lent
    /// out of the swappable verifier anyway: this method returns a borrow of `self`.)
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .verifier()
            .verify_client_cert(end_entity, intermediates, now)?;
        if self.allowed_names.is_empty() {
            return Ok(verified);
        }
        let names = ClientCertNames::of(end_entity, "client certificate")
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if names.matches(&self.allowed_names) {
            return Ok(verified);
        }
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(ClientNameRefused {
                names,
                allowed: self.allowed_names.clone(),
            })),
        )))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose,
        IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
    };

    /// A CA: its PEM and what issues with it.
    struct Ca {
        pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    fn ca(name: &str) -> Ca {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("self-signed");
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A certificate from `ca` with common name `cn` (if any), DNS names `dns` and the given
    /// extended key usages.
    fn leaf(
        ca: &Ca,
        cn: Option<&str>,
        dns: &[&str],
        eku: &[ExtendedKeyUsagePurpose],
    ) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        // rcgen's default subject is `CN=rcgen self signed cert`.
        params.distinguished_name = DistinguishedName::new();
        if let Some(cn) = cn {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        params.subject_alt_names = dns
            .iter()
            .map(|d| SanType::DnsName((*d).try_into().expect("ia5")))
            .collect();
        params.extended_key_usages = eku.to_vec();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params
            .signed_by(&key, &ca.issuer)
            .expect("signed")
            .der()
            .clone()
    }

    fn client(ca: &Ca, cn: Option<&str>, dns: &[&str]) -> CertificateDer<'static> {
        leaf(ca, cn, dns, &[ExtendedKeyUsagePurpose::ClientAuth])
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    fn names_of(der: &CertificateDer<'_>) -> ClientCertNames {
        ClientCertNames::of(der, "test").expect("names")
    }

    #[test]
    fn the_common_name_and_dns_names_are_read() {
        let ca = ca("test CA");
        let cert = client(
            &ca,
            Some("kube-apiserver"),
            &["apiserver.example", "kube-apiserver.kube-system.svc"],
        );
        assert_eq!(
            names_of(&cert),
            ClientCertNames {
                common_names: names(&["kube-apiserver"]),
                dns_names: names(&["apiserver.example", "kube-apiserver.kube-system.svc"]),
            }
        );
        assert_eq!(
            names_of(&cert).to_string(),
            "CN=kube-apiserver, DNS:apiserver.example, DNS:kube-apiserver.kube-system.svc"
        );
        let nameless = client(&ca, None, &[]);
        assert_eq!(names_of(&nameless), ClientCertNames::default());
        assert_eq!(
            names_of(&nameless).to_string(),
            "no common name and no DNS name"
        );
    }

    #[test]
    fn a_name_matches_by_common_name_or_dns_name() {
        let cert = ClientCertNames {
            common_names: names(&["kube-apiserver"]),
            dns_names: names(&["apiserver.example"]),
        };
        assert!(cert.matches(&names(&["kube-apiserver"])));
        assert!(cert.matches(&names(&["apiserver.example"])));
        assert!(cert.matches(&names(&["other", "apiserver.example"])));
        assert!(!cert.matches(&names(&["other"])));
        assert!(!cert.matches(&[]));
        // Neither a prefix nor a suffix nor a substring.
        assert!(!cert.matches(&names(&["kube-apiserver2"])));
        assert!(!cert.matches(&names(&["kube"])));
        assert!(!cert.matches(&names(&["example"])));
        assert!(!cert.matches(&names(&["www.apiserver.example"])));
    }

    #[test]
    fn dns_names_ignore_ascii_case_and_common_names_do_not() {
        let cert = ClientCertNames {
            common_names: names(&["Kube-APIServer"]),
            dns_names: names(&["APIServer.Example"]),
        };
        assert!(cert.matches(&names(&["apiserver.example"])));
        assert!(cert.matches(&names(&["Kube-APIServer"])));
        assert!(!cert.matches(&names(&["kube-apiserver"])));
    }

    #[test]
    fn a_wildcard_dns_name_is_not_expanded() {
        let cert = ClientCertNames {
            common_names: Vec::new(),
            dns_names: names(&["*.kspy-system.svc"]),
        };
        assert!(!cert.matches(&names(&["kspy-webhook.kspy-system.svc"])));
        assert!(cert.matches(&names(&["*.kspy-system.svc"])));
    }

    #[test]
    fn a_nameless_certificate_matches_nothing() {
        let cert = ClientCertNames::default();
        assert!(!cert.matches(&names(&[""])));
        assert!(!cert.matches(&names(&["kube-apiserver"])));
    }

    /// A file holding `pem`, and a verifier reading it.
    fn verifier(
        dir: &tempfile::TempDir,
        pem: &str,
        allowed: &[&str],
    ) -> (PathBuf, ReloadingClientVerifier) {
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, pem).expect("write");
        let v = ReloadingClientVerifier::load(&path, names(allowed)).expect("load");
        (path, v)
    }

    fn accepts(
        v: &ReloadingClientVerifier,
        cert: &CertificateDer<'_>,
    ) -> Result<(), rustls::Error> {
        v.verify_client_cert(cert, &[], UnixTime::now()).map(|_| ())
    }

    #[test]
    fn a_certificate_from_the_ca_is_accepted_and_others_are_not() {
        let dir = tempfile::tempdir().expect("dir");
        let trusted = ca("trusted");
        let other = ca("other");
        let (_, v) = verifier(&dir, &trusted.pem, &[]);
        assert!(v.client_auth_mandatory());
        assert!(v.root_hint_subjects().is_empty());
        accepts(&v, &client(&trusted, Some("anyone"), &[])).expect("from the CA");
        assert!(matches!(
            accepts(&v, &client(&other, Some("anyone"), &[])),
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        ));
        // A server certificate from the right CA is no client certificate.
        let server_only = leaf(
            &trusted,
            Some("anyone"),
            &[],
            &[ExtendedKeyUsagePurpose::ServerAuth],
        );
        let err = accepts(&v, &server_only).expect_err("serverAuth only");
        assert!(
            matches!(
                err,
                rustls::Error::InvalidCertificate(
                    CertificateError::InvalidPurpose
                        | CertificateError::InvalidPurposeContext { .. }
                )
            ),
            "{err:?}"
        );
    }

    #[test]
    fn with_names_the_certificate_must_bear_one() {
        let dir = tempfile::tempdir().expect("dir");
        let trusted = ca("trusted");
        let (_, v) = verifier(&dir, &trusted.pem, &["kube-apiserver", "api.example"]);
        accepts(&v, &client(&trusted, Some("kube-apiserver"), &[])).expect("by CN");
        accepts(&v, &client(&trusted, Some("x"), &["api.example"])).expect("by DNS name");
        let err = accepts(&v, &client(&trusted, Some("intruder"), &["pod.example"]))
            .expect_err("wrong names");
        let rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(inner))) = &err
        else {
            panic!("{err:?}");
        };
        let refused = inner
            .downcast_ref::<ClientNameRefused>()
            .expect("a ClientNameRefused");
        assert_eq!(refused.names.common_names, names(&["intruder"]));
        assert_eq!(
            refused.to_string(),
            "client certificate names (CN=intruder, DNS:pod.example) are not among the allowed \
             client names (kube-apiserver, api.example)"
        );
    }

    #[test]
    fn loading_fails_clearly() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("missing.crt");
        let err = ReloadingClientVerifier::load(&missing, Vec::new()).expect_err("missing");
        assert!(matches!(err, CertError::Io { .. }), "{err:?}");
        assert!(error_chain(&err).contains("missing.crt"), "{err}");

        let empty = dir.path().join("empty.crt");
        std::fs::write(&empty, "not a PEM file\n").expect("write");
        let err = ReloadingClientVerifier::load(&empty, Vec::new()).expect_err("empty");
        assert!(matches!(err, CertError::NoCertificate { .. }), "{err:?}");

        let garbage = dir.path().join("garbage.crt");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAA\n-----END CERTIFICATE-----\n",
        )
        .expect("write");
        let err = ReloadingClientVerifier::load(&garbage, Vec::new()).expect_err("garbage");
        assert!(matches!(err, CertError::X509 { .. }), "{err:?}");
        assert!(error_chain(&err).contains("garbage.crt"), "{err}");
    }

    /// The client's own certificate given as --client-ca loads (webpki takes any certificate
    /// as an anchor) but refuses every client as "unknown issuer": a warning says why. A CA's
    /// private key in the file is ignored, and warned about.
    #[test]
    fn a_certificate_marked_as_no_ca_or_a_key_beside_the_cas_is_warned_about() {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("log").extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let logged_by = |pem: &str| {
            let buffer = Buffer::default();
            let sink = buffer.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || sink.clone())
                .finish();
            let dir = tempfile::tempdir().expect("dir");
            let v = tracing::subscriber::with_default(subscriber, || verifier(&dir, pem, &[]).1);
            let text = String::from_utf8(buffer.0.lock().expect("log").clone()).expect("utf8");
            (v, text)
        };
        let trusted = ca("trusted");
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver-kspy");
        params.is_ca = IsCa::ExplicitNoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client_cert = params.signed_by(&key, &trusted.issuer).expect("client");

        let (v, logged) = logged_by(&client_cert.pem());
        assert!(logged.contains("marked as no CA"), "{logged}");
        assert!(logged.contains("CN=kube-apiserver-kspy"), "{logged}");
        assert!(
            matches!(
                accepts(&v, client_cert.der()),
                Err(rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer
                ))
            ),
            "refused, as the warning says"
        );

        // The CA itself: nothing to say.
        let (_, logged) = logged_by(&trusted.pem);
        assert!(!logged.contains("marked as no CA"), "{logged}");
        assert!(!logged.contains("private key"), "{logged}");

        // The CA with its key in the same file: trusted as before, and warned about.
        let with_key = format!("{}{}", trusted.pem, trusted.issuer.key().serialize_pem());
        let (v, logged) = logged_by(&with_key);
        assert!(
            logged.contains("the --client-ca file also holds a private key"),
            "{logged}"
        );
        let client = leaf(
            &trusted,
            Some("kube-apiserver"),
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
        );
        assert!(accepts(&v, &client).is_ok(), "still trusted");
    }

    #[test]
    fn a_bundle_trusts_each_of_its_cas() {
        let dir = tempfile::tempdir().expect("dir");
        let (a, b) = (ca("a"), ca("b"));
        let (_, v) = verifier(&dir, &format!("{}{}", a.pem, b.pem), &[]);
        assert_eq!(v.ca_subjects(), names(&["CN=a", "CN=b"]));
        accepts(&v, &client(&a, Some("x"), &[])).expect("a");
        accepts(&v, &client(&b, Some("x"), &[])).expect("b");
    }

    #[test]
    fn a_changed_file_is_reloaded_and_a_broken_one_keeps_the_previous_cas() {
        let dir = tempfile::tempdir().expect("dir");
        let (old, new) = (ca("old"), ca("new"));
        let (path, v) = verifier(&dir, &old.pem, &[]);
        let old_client = client(&old, Some("x"), &[]);
        let new_client = client(&new, Some("x"), &[]);
        assert!(matches!(v.poll(), ClientCaReload::Unchanged));

        std::fs::write(&path, &new.pem).expect("write");
        assert!(matches!(v.poll(), ClientCaReload::Reloaded { cas: 1 }));
        accepts(&v, &new_client).expect("new CA in force");
        accepts(&v, &old_client).expect_err("old CA gone");
        assert!(matches!(v.poll(), ClientCaReload::Unchanged));

        for broken in ["garbage\n", ""] {
            std::fs::write(&path, broken).expect("write");
            assert!(
                matches!(
                    v.poll(),
                    ClientCaReload::Failed(CertError::NoCertificate { .. })
                ),
                "{broken:?}"
            );
            // Said and counted once, not every poll.
            assert!(matches!(v.poll(), ClientCaReload::Unchanged));
            accepts(&v, &new_client).expect("previous CA still in force");
        }

        std::fs::remove_file(&path).expect("remove");
        assert!(matches!(
            v.poll(),
            ClientCaReload::Failed(CertError::Io { .. })
        ));
        assert!(matches!(v.poll(), ClientCaReload::Unchanged));
        accepts(&v, &new_client).expect("previous CA still in force");

        std::fs::write(&path, &old.pem).expect("write");
        assert!(matches!(v.poll(), ClientCaReload::Reloaded { cas: 1 }));
        accepts(&v, &old_client).expect("old CA back");
    }
}
