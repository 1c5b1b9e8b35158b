//! Generating a private CA and a serving certificate for the webhook Service.
//!
//! The API server reaches an in-cluster webhook at `https://NAME.NS.svc:PORT/…` and checks the
//! serving certificate against the webhook configuration's `caBundle`, by subject alternative
//! name only (no Common Name fallback). [`generate`] therefore issues a certificate whose SANs are
//! every name the Service answers to, signed by a fresh CA whose PEM, base64-encoded, is the
//! `caBundle`.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use time::OffsetDateTime;

use crate::error::CertError;

/// How far `notBefore` is set in the past, so that clocks a little behind still accept the
/// certificate right after it is issued.
const BACKDATE: time::Duration = time::Duration::minutes(5);

/// A freshly generated CA and serving certificate, all PEM-encoded.
///
/// The CA's private key is not kept: rotating means generating a new pair and updating the
/// webhook configurations' `caBundle` (see [`GeneratedCerts::ca_bundle_b64`]).
#[derive(Clone)]
pub struct GeneratedCerts {
    /// The CA certificate (`ca.crt`).
    pub ca_cert_pem: String,
    /// The serving certificate (`tls.crt`).
    pub cert_pem: String,
    /// The serving certificate's private key, PKCS#8 (`tls.key`).
    pub key_pem: String,
    /// Every subject alternative name of the serving certificate, in order.
    pub sans: Vec<String>,
    /// The serving certificate's `notAfter`.
    pub not_after: SystemTime,
}

impl std::fmt::Debug for GeneratedCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCerts")
            .field("sans", &self.sans)
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl GeneratedCerts {
    /// The CA certificate PEM, base64-encoded: the value of a webhook configuration's
    /// `clientConfig.caBundle`.
    pub fn ca_bundle_b64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.ca_cert_pem.as_bytes())
    }

    /// The serving certificate's `notAfter` in seconds since the Unix epoch.
    pub fn not_after_unix(&self) -> i64 {
        unix_seconds(self.not_after)
    }
}

/// The DNS names a Service `service` in namespace `namespace` is reached by, most specific
/// first: `NAME.NS.svc`, `NAME.NS.svc.cluster.local`, `NAME.NS`, `NAME`.
pub fn service_dns_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
    ]
}

/// Generates a CA and a serving certificate for Service `service` in `namespace`, valid for
/// `validity` from now. The SANs are [`service_dns_names`].
pub fn generate(
    service: &str,
    namespace: &str,
    validity: Duration,
) -> Result<GeneratedCerts, CertError> {
    generate_with_sans(service, namespace, validity, &[])
}

/// Like [`generate`], with `extra_sans` appended to the serving certificate: IP addresses
/// (`127.0.0.1`, `::1`) become IP SANs, anything else a DNS SAN (`localhost`). Used by
/// `kspy-webhook --dev` and by tests that connect over loopback.
pub fn generate_with_sans(
    service: &str,
    namespace: &str,
    validity: Duration,
    extra_sans: &[String],
) -> Result<GeneratedCerts, CertError> {
    check_label(service, "service")?;
    check_label(namespace, "namespace")?;
    if validity.is_zero() {
        return Err(CertError::InvalidValidity(
            "must be longer than zero".into(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let not_before = now - BACKDATE;
    let not_after = time::Duration::try_from(validity)
        .ok()
        .and_then(|v| now.checked_add(v))
        .filter(|t| t.year() < 10_000)
        .ok_or_else(|| CertError::InvalidValidity(format!("{validity:?} is too long")))?;

    let mut sans = service_dns_names(service, namespace);
    for extra in extra_sans {
        if !sans.contains(extra) {
            sans.push(extra.clone());
        }
    }

    // The CA.
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = name(&format!("kspy CA for {service}.{namespace}"));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);

    // The serving certificate.
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = name(&sans[0]);
    params.subject_alt_names = sans.iter().map(|s| san(s)).collect::<Result<Vec<_>, _>>()?;
    params.is_ca = IsCa::ExplicitNoCa;
    // An ECDSA key signs; it never enciphers a key (RFC 8813 forbids keyEncipherment for EC).
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    let cert = params.signed_by(&key, &issuer)?;

    Ok(GeneratedCerts {
        ca_cert_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        sans,
        not_after: SystemTime::from(not_after),
    })
}

/// Seconds since the Unix epoch (negative before it).
pub(crate) fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "kspy");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn san(s: &str) -> Result<SanType, CertError> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let valid = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid {
        return Err(CertError::InvalidName {
            name: s.to_owned(),
            reason: "not an IP address or DNS name".into(),
        });
    }
    // `10.0.0.300` passes the label rules above, and would have become a DNS name no client
    // ever matches: one connecting to an address compares it with the IP names only. No DNS
    // name ends in an all-digit label (RFC 3696, section 2).
    if s.rsplit('.')
        .next()
        .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(CertError::InvalidName {
            name: s.to_owned(),
            reason: "not an IP address (a mistyped one?), and not a DNS name either: a DNS \
                     name never ends in an all-digit label"
                .into(),
        });
    }
    let ia5 = s
        .to_owned()
        .try_into()
        .map_err(|e: rcgen::Error| CertError::InvalidName {
            name: s.to_owned(),
            reason: e.to_string(),
        })?;
    Ok(SanType::DnsName(ia5))
}

/// Service and namespace names are RFC 1123 labels: lower-case alphanumerics and `-`, at most
/// 63 characters, starting and ending alphanumeric.
fn check_label(s: &str, what: &str) -> Result<(), CertError> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CertError::InvalidName {
            name: s.to_owned(),
            reason: format!(
                "a {what} name must be 1-63 lower-case letters, digits or '-', \
                 starting and ending with a letter or digit"
            ),
        })
    }
}
