//! The harness's own certificate authority and TLS configurations.
//!
//! One CA per harness, generated in-process with rcgen (ECDSA P-256). It signs the API
//! server's serving certificate and, for scenarios, the webhook's. Clients (kube-rs,
//! kubectl, the admission chain calling webhooks) trust only the CA they were given.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Errors while generating certificates or building TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// A PEM block could not be parsed.
    #[error("invalid PEM: {0}")]
    Pem(String),
    /// The PEM bundle held no certificate.
    #[error("no certificate in CA bundle")]
    EmptyBundle,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A certificate authority that can issue serving certificates.
pub struct CertAuthority {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
}

/// A serving certificate and key, PEM encoded, with the chain's CA.
#[derive(Debug, Clone)]
pub struct ServingCert {
    /// Leaf certificate PEM.
    pub cert_pem: String,
    /// Private key PEM (PKCS#8).
    pub key_pem: String,
    /// The issuing CA's certificate PEM.
    pub ca_pem: String,
}

impl CertAuthority {
    /// Generates a new CA named `common_name`.
    pub fn generate(common_name: &str) -> Result<Self, TlsError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            cert_pem: cert.pem(),
        })
    }

    /// The CA certificate, PEM encoded (what goes into `caBundle` and kubeconfigs).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Issues a serving certificate for the given DNS names and IP addresses.
    pub fn issue_serving(&self, names: &[&str]) -> Result<ServingCert, TlsError> {
        let sans: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans)?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            ca_pem: self.cert_pem.clone(),
        })
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A rustls server configuration for `cert` with the given ALPN protocols.
pub fn server_config(cert: &ServingCert, alpn: &[&[u8]]) -> Result<rustls::ServerConfig, TlsError> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| TlsError::Pem(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes())
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(cfg)
}

/// A rustls client configuration trusting only the certificates in `ca_pem`.
pub fn client_config(ca_pem: &[u8]) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let mut any = false;
    for c in CertificateDer::pem_slice_iter(ca_pem) {
        let c = c.map_err(|e| TlsError::Pem(e.to_string()))?;
        roots.add(c)?;
        any = true;
    }
    if !any {
        return Err(TlsError::EmptyBundle);
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_issues_cert_usable_by_rustls() {
        let ca = CertAuthority::generate("test-ca").unwrap();
        let cert = ca.issue_serving(&["localhost", "127.0.0.1"]).unwrap();
        server_config(&cert, &[b"http/1.1"]).unwrap();
        client_config(ca.cert_pem().as_bytes()).unwrap();
        assert!(matches!(client_config(b""), Err(TlsError::EmptyBundle)));
    }
}
