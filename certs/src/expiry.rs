//! Reading a certificate's validity period (x509-parser).

use rustls::pki_types::CertificateDer;

use crate::error::CertError;

/// The `notAfter` of a DER certificate, in seconds since the Unix epoch. `what` names the
/// certificate's origin in the error.
pub fn not_after_unix(der: &CertificateDer<'_>, what: &str) -> Result<i64, CertError> {
    validity_unix(der, what).map(|(_, not_after)| not_after)
}

/// The `notBefore` and `notAfter` of a DER certificate, in seconds since the Unix epoch.
pub fn validity_unix(der: &CertificateDer<'_>, what: &str) -> Result<(i64, i64), CertError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| CertError::X509 {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    let validity = cert.validity();
    Ok((
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    ))
}

/// What a reload says about a certificate: who it is for, who issued it, which one it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject's distinguished name (`CN=kspy-webhook.kspy.svc`).
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// The issuer's key identifier (the authority key identifier extension), hex, when the
    /// certificate has one: a regenerated CA often keeps its name but not its key.
    pub issuer_key_id: Option<String>,
    /// The serial number, hex bytes separated by colons.
    pub serial: String,
}

impl CertIdentity {
    /// True when `other` was issued by another CA: another issuer name, or another issuer key
    /// when both certificates name theirs.
    pub fn other_issuer(&self, other: &CertIdentity) -> bool {
        self.issuer != other.issuer
            || matches!((&self.issuer_key_id, &other.issuer_key_id), (Some(a), Some(b)) if a != b)
    }
}

/// The subject, issuer and serial number of a DER certificate.
pub fn identity(der: &CertificateDer<'_>, what: &str) -> Result<CertIdentity, CertError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| CertError::X509 {
            what: what.to_owned(),
            reason: e.to_string(),
        })?;
    let issuer_key_id = cert
        .extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| {
                    id.0.iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                })
            }
            _ => None,
        });
    Ok(CertIdentity {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        issuer_key_id,
        serial: cert.raw_serial_as_string(),
    })
}

/// The DNS and IP subject alternative names of a DER certificate, rendered as strings.
pub fn subject_alt_names(der: &CertificateDer<'_>, what: &str) -> Result<Vec<String>, CertError> {
    use x509_parser::extensions::GeneralName;
    let x509 = |reason: String| CertError::X509 {
        what: what.to_owned(),
        reason,
    };
    let (_, cert) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| x509(e.to_string()))?;
    let Some(ext) = cert
        .subject_alternative_name()
        .map_err(|e| x509(e.to_string()))?
    else {
        return Ok(Vec::new());
    };
    let mut names = Vec::new();
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(dns) => names.push((*dns).to_owned()),
            GeneralName::IPAddress(bytes) => match bytes.len() {
                4 => {
                    let octets: [u8; 4] = [bytes[0], bytes[1], bytes[2], bytes[3]];
                    names.push(std::net::Ipv4Addr::from(octets).to_string());
                }
                16 => {
                    let mut octets = [0u8; 16];
                    octets.copy_from_slice(bytes);
                    names.push(std::net::Ipv6Addr::from(octets).to_string());
                }
                _ => {}
            },
            _ => {}
        }
    }
    Ok(names)
}

/// Formats seconds since the Unix epoch as an RFC 3339 UTC timestamp
/// (`2026-01-31T12:00:00Z`); out-of-range values are shown as plain seconds.
pub fn format_unix_utc(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("@{secs}"),
    }
}

#[cfg(test)]
mod tests {
    use super::format_unix_utc;

    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(format_unix_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix_utc(1_767_225_600), "2026-01-01T00:00:00Z");
        assert_eq!(
            format_unix_utc(1_767_225_600 + 86_399),
            "2026-01-01T23:59:59Z"
        );
        assert_eq!(format_unix_utc(i64::MAX), format!("@{}", i64::MAX));
    }
}
