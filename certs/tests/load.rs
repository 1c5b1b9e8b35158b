//! PEM loading: what is accepted and what is refused, with useful messages.

use std::time::Duration;

use kspy_certs::{CertError, generate, load_pem_files, parse_pem_pair, root_store_from_pem};

const DAY: Duration = Duration::from_secs(86_400);

#[test]
fn a_generated_pair_loads_from_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = generate("kspy", "kspy", DAY).expect("generate");
    let files = certs.write_to(dir.path()).expect("write");
    let loaded = load_pem_files(&files.cert, &files.key).expect("loads");
    assert_eq!(loaded.certified_key.cert.len(), 1);
    assert_eq!(loaded.not_after, certs.not_after_unix());
}

#[test]
fn a_key_from_another_certificate_is_refused() {
    let a = generate("kspy", "kspy", DAY).expect("generate");
    let b = generate("kspy", "kspy", DAY).expect("generate");
    let err = parse_pem_pair(
        a.cert_pem.as_bytes(),
        b.key_pem.as_bytes(),
        "a.crt",
        "b.key",
    )
    .expect_err("mismatch");
    assert!(matches!(err, CertError::KeyMismatch { .. }), "{err}");
    let text = kspy_certs::error_chain(&err);
    // Not rustls' "keys may not be consistent: KeyMismatch": which file, and what to do.
    assert!(
        text.starts_with("tls.key (b.key) is not the private key of tls.crt (a.crt): "),
        "{text}"
    );
    assert!(text.contains("issued together"), "{text}");
    assert!(!text.contains("KeyMismatch"), "{text}");
}

#[test]
fn garbage_and_empty_input_are_refused_with_the_source_named() {
    let good = generate("kspy", "kspy", DAY).expect("generate");
    type Case<'a> = (&'a [u8], &'a [u8], fn(&CertError) -> bool);
    let cases: [Case<'_>; 5] = [
        (b"", good.key_pem.as_bytes(), |e| {
            matches!(e, CertError::NoCertificate { .. })
        }),
        (b"hello", good.key_pem.as_bytes(), |e| {
            matches!(e, CertError::NoCertificate { .. })
        }),
        (good.cert_pem.as_bytes(), b"", |e| {
            matches!(e, CertError::NoPrivateKey { .. })
        }),
        // A key file holding only a certificate.
        (good.cert_pem.as_bytes(), good.cert_pem.as_bytes(), |e| {
            matches!(e, CertError::NoPrivateKey { .. })
        }),
        // A CERTIFICATE block whose DER is not X.509.
        (
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            good.key_pem.as_bytes(),
            |e| matches!(e, CertError::X509 { .. }),
        ),
    ];
    for (i, (cert, key, expected)) in cases.into_iter().enumerate() {
        let err = parse_pem_pair(cert, key, "the.crt", "the.key").expect_err("refused");
        assert!(expected(&err), "case {i}: {err}");
        let text = err.to_string();
        assert!(
            text.contains("the.crt") || text.contains("the.key"),
            "case {i}: {text}"
        );
    }
}

#[test]
fn an_expired_certificate_is_refused() {
    use rcgen::{CertificateParams, KeyPair};
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["kspy.kspy.svc".to_owned()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).expect("cert");
    let err = parse_pem_pair(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        "old",
        "k",
    )
    .expect_err("expired");
    assert!(matches!(err, CertError::Expired { .. }), "{err}");
    // RFC 3339, as /readyz says it, not unix seconds.
    assert!(
        err.to_string()
            .ends_with("old: certificate expired at 2021-01-01T00:00:00Z"),
        "{err}"
    );
}

#[test]
fn a_certificate_not_valid_yet_is_refused_beyond_the_clock_skew() {
    use rcgen::{CertificateParams, KeyPair};
    let in_future = |minutes: i64| {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["kspy.kspy.svc".to_owned()]).expect("params");
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::minutes(minutes);
        params.not_after = now + time::Duration::days(30);
        let cert = params.self_signed(&key).expect("cert");
        parse_pem_pair(
            cert.pem().as_bytes(),
            key.serialize_pem().as_bytes(),
            "future",
            "k",
        )
    };
    // Clients would refuse it: "certificate is not yet valid".
    let err = in_future(24 * 60).expect_err("a day ahead");
    assert!(matches!(err, CertError::NotYetValid { .. }), "{err}");
    assert!(err.to_string().contains("clocks"), "{err}");
    assert!(!err.to_string().contains("unix time"), "{err}");
    // A minute ahead is clock skew, not a mistake.
    in_future(1).expect("a minute ahead loads");
}

#[test]
fn missing_files_name_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load_pem_files(&dir.path().join("nope.crt"), &dir.path().join("nope.key"))
        .expect_err("missing");
    assert!(matches!(err, CertError::Io { .. }));
    assert!(err.to_string().contains("nope.crt"), "{err}");
}

#[test]
fn root_store_holds_the_ca() {
    let certs = generate("kspy", "kspy", DAY).expect("generate");
    let store = root_store_from_pem(certs.ca_cert_pem.as_bytes(), "ca.crt").expect("store");
    assert_eq!(store.len(), 1);
    assert!(root_store_from_pem(b"nothing", "ca.crt").is_err());
}
