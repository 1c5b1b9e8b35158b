//! Generation and writing: names, chain validity against the CA, files on disk.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use kspy_certs::{
    CertError, generate, generate_with_sans, parse_certs, parse_pem_pair, root_store_from_pem,
    subject_alt_names,
};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};

const DAY: Duration = Duration::from_secs(86_400);

/// Verifies the serving chain of `certs` for `name` exactly as a TLS client trusting only the
/// generated CA would.
fn verify(certs: &kspy_certs::GeneratedCerts, name: &str) -> Result<(), rustls::Error> {
    let roots = root_store_from_pem(certs.ca_cert_pem.as_bytes(), "ca").expect("ca loads");
    let verifier = WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .expect("verifier");
    let chain = parse_certs(certs.cert_pem.as_bytes(), "tls.crt").expect("chain parses");
    let server_name = ServerName::try_from(name.to_owned()).expect("server name");
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &server_name, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn serving_cert_names_every_service_dns_name() {
    let certs = generate("kspy-webhook", "kspy-system", 30 * DAY).expect("generate");
    let chain = parse_certs(certs.cert_pem.as_bytes(), "tls.crt").expect("parse");
    let sans = subject_alt_names(&chain[0], "tls.crt").expect("sans");
    assert_eq!(
        sans,
        [
            "kspy-webhook.kspy-system.svc",
            "kspy-webhook.kspy-system.svc.cluster.local",
            "kspy-webhook.kspy-system",
            "kspy-webhook",
        ]
    );
    assert_eq!(certs.sans, sans);
}

#[test]
fn chain_verifies_against_the_ca_for_each_name_and_not_others() {
    let certs = generate("kspy-webhook", "kspy", 30 * DAY).expect("generate");
    for name in [
        "kspy-webhook.kspy.svc",
        "kspy-webhook.kspy.svc.cluster.local",
        "kspy-webhook.kspy",
        "kspy-webhook",
    ] {
        verify(&certs, name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    for name in [
        "other.kspy.svc",
        "kspy-webhook.other.svc",
        "localhost",
        "127.0.0.1",
    ] {
        assert!(verify(&certs, name).is_err(), "{name} must not verify");
    }
    // Another generation's CA does not vouch for this certificate.
    let other = generate("kspy-webhook", "kspy", 30 * DAY).expect("generate");
    let mixed = kspy_certs::GeneratedCerts {
        ca_cert_pem: other.ca_cert_pem.clone(),
        ..certs.clone()
    };
    assert!(verify(&mixed, "kspy-webhook.kspy.svc").is_err());
}

#[test]
fn extra_sans_add_ip_and_dns_names() {
    let extra = [
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
        "::1".to_owned(),
    ];
    let certs = generate_with_sans("kspy-webhook", "kspy", DAY, &extra).expect("generate");
    verify(&certs, "127.0.0.1").expect("ip SAN");
    verify(&certs, "localhost").expect("dns SAN");
    let chain = parse_certs(certs.cert_pem.as_bytes(), "tls.crt").expect("parse");
    let sans = subject_alt_names(&chain[0], "tls.crt").expect("sans");
    assert!(sans.contains(&"::1".to_owned()), "{sans:?}");
}

#[test]
fn validity_is_what_was_asked() {
    let certs = generate("kspy-webhook", "kspy", 10 * DAY).expect("generate");
    let expected = SystemTime::now() + 10 * DAY;
    let diff = certs
        .not_after
        .duration_since(expected)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .expect("diff");
    assert!(diff < Duration::from_secs(60), "not_after off by {diff:?}");
    let loaded = parse_pem_pair(
        certs.cert_pem.as_bytes(),
        certs.key_pem.as_bytes(),
        "c",
        "k",
    )
    .expect("loads");
    assert_eq!(loaded.not_after, certs.not_after_unix());
}

#[test]
fn bad_names_and_validity_are_refused() {
    for (service, namespace) in [
        ("", "kspy"),
        ("Kspy", "kspy"),
        ("kspy_webhook", "kspy"),
        ("-kspy", "kspy"),
        ("kspy", "kspy-"),
        ("kspy", "a.b"),
        ("kspy", &"x".repeat(64)),
    ] {
        let err = generate(service, namespace, DAY).expect_err("bad name");
        assert!(matches!(err, CertError::InvalidName { .. }), "{err}");
    }
    assert!(matches!(
        generate("kspy", "kspy", Duration::ZERO),
        Err(CertError::InvalidValidity(_))
    ));
    assert!(matches!(
        generate("kspy", "kspy", Duration::from_secs(u64::MAX)),
        Err(CertError::InvalidValidity(_))
    ));
    for bad in [
        "",
        "bad name",
        "*.evil",
        "a..b",
        "-x",
        // Mistyped IP addresses: no DNS name either.
        "10.0.0.300",
        "300.1.1.1",
        "10.0.0",
        "8443",
    ] {
        let err = generate_with_sans("kspy", "kspy", DAY, &[bad.to_owned()]).expect_err(bad);
        assert!(matches!(err, CertError::InvalidName { .. }), "{bad}: {err}");
    }
}

#[test]
fn write_to_lays_out_a_tls_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("nested/out");
    let certs = generate("kspy-webhook", "kspy", DAY).expect("generate");
    let files = certs.write_to(&out).expect("write");
    assert_eq!(files.cert, out.join("tls.crt"));
    assert_eq!(
        std::fs::read_to_string(&files.ca_cert).expect("ca"),
        certs.ca_cert_pem
    );
    assert_eq!(
        std::fs::read_to_string(&files.cert).expect("crt"),
        certs.cert_pem
    );
    assert_eq!(
        std::fs::read_to_string(&files.key).expect("key"),
        certs.key_pem
    );
    let bundle = std::fs::read_to_string(&files.ca_bundle).expect("bundle");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(bundle.as_bytes())
        .expect("bundle is base64");
    assert_eq!(decoded, certs.ca_cert_pem.as_bytes());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&files.key)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(&out)
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
    // Writing again over existing files works (rotation by regeneration).
    let again = generate("kspy-webhook", "kspy", DAY).expect("generate");
    again.write_to(&out).expect("rewrite");
    assert_eq!(
        std::fs::read_to_string(&files.cert).expect("crt"),
        again.cert_pem
    );
}

#[test]
fn debug_output_hides_the_key() {
    let certs = generate("kspy", "kspy", DAY).expect("generate");
    let shown = format!("{certs:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

#[test]
fn the_ecdsa_serving_key_only_signs() {
    // RFC 8813: keyEncipherment must not be asserted for an EC key.
    let certs = generate("kspy-webhook", "kspy", DAY).expect("generate");
    let chain = parse_certs(certs.cert_pem.as_bytes(), "tls.crt").expect("chain parses");
    let (_, cert) = x509_parser::parse_x509_certificate(chain[0].as_ref()).expect("x509");
    let usage = cert
        .key_usage()
        .expect("key usage parses")
        .expect("key usage present")
        .value;
    assert!(usage.digital_signature(), "{usage:?}");
    assert!(!usage.key_encipherment(), "{usage:?}");
}
