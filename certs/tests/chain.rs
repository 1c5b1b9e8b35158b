//! Chains that are more than one certificate (a root, an intermediate, the serving
//! certificate), keys that need a clear refusal, and what a real TLS client makes of what is
//! served.

use std::sync::Arc;

use kspy_certs::{
    CertError, ReloadOutcome, ReloadingResolver, parse_pem_pair, root_store_from_pem,
};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::ServerName;
use rustls::sign::CertifiedKey;
use time::{Duration, OffsetDateTime};

/// A certificate's PEM and what issues with it (when it is a CA).
struct Issued {
    pem: String,
    key: KeyPair,
    params: CertificateParams,
}

impl Issued {
    fn issuer(&self) -> Issuer<'_, &KeyPair> {
        Issuer::new(self.params.clone(), &self.key)
    }
}

/// A CA named `name` valid from a day ago until `days` from now, self-signed or issued by
/// `by`.
fn ca(name: &str, days: i64, by: Option<&Issued>) -> Issued {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(400);
    params.not_after = now + Duration::days(days);
    let cert = match by {
        None => params.self_signed(&key),
        Some(by) => params.signed_by(&key, &by.issuer()),
    }
    .expect("CA");
    Issued {
        pem: cert.pem(),
        key,
        params,
    }
}

/// A serving certificate for `localhost`, valid for `days` from now, issued by `by`.
fn leaf(days: i64, by: &Issued) -> Issued {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(days);
    let cert = params.signed_by(&key, &by.issuer()).expect("leaf");
    Issued {
        pem: cert.pem(),
        key,
        params,
    }
}

fn unix(days_from_now: i64) -> i64 {
    // The certificates above hold whole seconds; compare to the second.
    (OffsetDateTime::now_utc() + Duration::days(days_from_now)).unix_timestamp()
}

/// A full TLS handshake over memory between a server resolving its certificate with
/// `resolver` and a client trusting only `ca_pem`, for `localhost`. The client's verdict:
/// the end-entity certificate it was shown, or why it refused it.
fn handshake(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
    ca_pem: &str,
) -> Result<Vec<u8>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    let roots = root_store_from_pem(ca_pem.as_bytes(), "ca").expect("roots");
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let mut client = rustls::ClientConnection::new(Arc::new(client), name).expect("client");
    let mut server = rustls::ServerConnection::new(Arc::new(server)).expect("server");
    for _ in 0..10 {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).expect("client write");
        }
        server.read_tls(&mut &wire[..]).expect("server read");
        server.process_new_packets().expect("server side");
        let mut wire = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut wire).expect("server write");
        }
        client.read_tls(&mut &wire[..]).expect("client read");
        client.process_new_packets()?;
        if !client.is_handshaking() {
            let shown = client.peer_certificates().expect("a certificate");
            return Ok(shown[0].as_ref().to_vec());
        }
    }
    panic!("the handshake did not finish");
}

/// Serves one chain, whatever it holds.
#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for Fixed {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

fn der(pem: &str) -> Vec<u8> {
    kspy_certs::parse_certs(pem.as_bytes(), "pem").expect("pem")[0]
        .as_ref()
        .to_vec()
}

/// An intermediate that expires before the serving certificate ends every handshake at its
/// own expiry: that is the expiry the metric, `/readyz` and the reload log must give. A
/// self-signed root sent along is not counted (clients check their own copy of it).
#[test]
fn the_expiry_is_the_earliest_of_the_certificate_and_its_intermediates() {
    let root = ca("root", 3650, None);
    let intermediate = ca("intermediate", 2, Some(&root));
    let serving = leaf(30, &intermediate);
    // A copy of the root, sent along, that expires even sooner: its expiry is the client's
    // own copy's business.
    let stale_root = ca("stale root", 1, None);
    let chain = format!("{}{}{}", serving.pem, intermediate.pem, stale_root.pem);
    let loaded = parse_pem_pair(
        chain.as_bytes(),
        serving.key.serialize_pem().as_bytes(),
        "tls.crt",
        "tls.key",
    )
    .expect("loads");
    assert!(
        (loaded.not_after - unix(2)).abs() <= 5,
        "the intermediate's expiry (in 2 days), not the serving certificate's (30): {}",
        kspy_certs::format_unix_utc(loaded.not_after)
    );

    // Alone, the serving certificate is what counts.
    let loaded = parse_pem_pair(
        serving.pem.as_bytes(),
        serving.key.serialize_pem().as_bytes(),
        "tls.crt",
        "tls.key",
    )
    .expect("loads");
    assert!((loaded.not_after - unix(30)).abs() <= 5);
}

/// A rotation to a chain whose intermediate has expired is refused, naming the intermediate;
/// the chain served before stays, and clients still complete their handshakes with it. Served,
/// the refused chain would fail every handshake.
#[test]
fn a_chain_with_an_expired_intermediate_is_refused_and_the_old_one_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = ca("root", 3650, None);
    let good_intermediate = ca("intermediate", 365, Some(&root));
    let good = leaf(30, &good_intermediate);
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, format!("{}{}", good.pem, good_intermediate.pem)).expect("crt");
    std::fs::write(&key, good.key.serialize_pem()).expect("key");
    let resolver = Arc::new(ReloadingResolver::load(&cert, &key).expect("load"));
    assert_eq!(
        handshake(resolver.clone(), &root.pem).expect("handshake"),
        der(&good.pem)
    );

    let expired_intermediate = ca("expired intermediate", -1, Some(&root));
    let next = leaf(30, &expired_intermediate);
    let next_chain = format!("{}{}", next.pem, expired_intermediate.pem);
    // Written in place, key first: the pair is consistent when the certificate lands.
    std::fs::write(&key, next.key.serialize_pem()).expect("key");
    std::fs::write(&cert, &next_chain).expect("crt");
    match resolver.poll() {
        ReloadOutcome::Failed(err @ CertError::Expired { .. }) => {
            let text = err.to_string();
            assert!(
                text.contains("certificate 2 of the chain")
                    && text.contains("CN=expired intermediate"),
                "{text}"
            );
        }
        other => panic!("expected the expired intermediate to be refused, got {other:?}"),
    }
    assert_eq!(
        handshake(resolver.clone(), &root.pem).expect("the previous chain still works"),
        der(&good.pem)
    );

    // What serving it would have done.
    let provider = rustls::crypto::ring::default_provider();
    let served = CertifiedKey::from_der(
        kspy_certs::parse_certs(next_chain.as_bytes(), "chain").expect("chain"),
        kspy_certs::parse_private_key(next.key.serialize_pem().as_bytes(), "key").expect("key"),
        &provider,
    )
    .expect("certified key");
    let err = handshake(Arc::new(Fixed(Arc::new(served))), &root.pem)
        .expect_err("an expired intermediate fails the handshake");
    assert!(
        matches!(
            err,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
            )
        ),
        "{err:?}"
    );
}

/// The serving certificate after its intermediate (`cat intermediate.crt tls.crt`): the key
/// matches the second certificate. Saying "not the key of tls.crt, different issuances" sent
/// people looking for another key; the order is what is wrong.
#[test]
fn a_chain_in_the_wrong_order_says_so() {
    let root = ca("root", 3650, None);
    let intermediate = ca("intermediate", 365, Some(&root));
    let serving = leaf(30, &intermediate);
    let reversed = format!("{}{}", intermediate.pem, serving.pem);
    let err = parse_pem_pair(
        reversed.as_bytes(),
        serving.key.serialize_pem().as_bytes(),
        "tls.crt",
        "tls.key",
    )
    .expect_err("refused");
    assert!(
        matches!(err, CertError::ChainOrder { position: 2, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.starts_with("tls.crt: "), "{text}");
    assert!(text.contains("must come first"), "{text}");

    // A key that matches none of them is still a mismatch.
    let other = leaf(30, &intermediate);
    let err = parse_pem_pair(
        reversed.as_bytes(),
        other.key.serialize_pem().as_bytes(),
        "tls.crt",
        "tls.key",
    )
    .expect_err("refused");
    assert!(matches!(err, CertError::KeyMismatch { .. }), "{err:?}");
}

/// A throwaway P-256 key, encrypted with the passphrase `x` (`openssl pkcs8 -topk8`).
const PKCS8_ENCRYPTED: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIHsMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAhxFZ2l9Eni3QICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEM22wvOh60LO+Kcexa6IprkEgZDL
-----END ENCRYPTED PRIVATE KEY-----
";

/// The head of a traditional OpenSSL-encrypted key (`openssl ec -aes256`): headers before the
/// base64.
const OPENSSL_ENCRYPTED: &str = "-----BEGIN EC PRIVATE KEY-----
Proc-Type: 4,ENCRYPTED
DEK-Info: AES-256-CBC,03247A430EC2A2A182FA4EDC4CE550AD

MHcCAQEEILIunA8G2N0PLE72/ODyXykzGh374DXcXtHoprfwE3L5oAoGCCqGSM49
-----END EC PRIVATE KEY-----
";

/// An encrypted key is refused as encrypted, with what to do, rather than as "no private key
/// block found" or "malformed PEM: InvalidCharacter(45)".
#[test]
fn an_encrypted_key_is_refused_as_encrypted() {
    let root = ca("root", 3650, None);
    let serving = leaf(30, &root);
    for encrypted in [PKCS8_ENCRYPTED, OPENSSL_ENCRYPTED] {
        let err = parse_pem_pair(
            serving.pem.as_bytes(),
            encrypted.as_bytes(),
            "tls.crt",
            "tls.key",
        )
        .expect_err("refused");
        assert!(matches!(err, CertError::EncryptedKey { .. }), "{err:?}");
        let text = kspy_certs::error_chain(&err);
        assert!(
            text.starts_with("tls.key: the private key is encrypted"),
            "{text}"
        );
        assert!(text.contains("openssl pkey"), "{text}");
    }
    // An unencrypted key beside an encrypted one is the one used.
    let both = format!("{PKCS8_ENCRYPTED}{}", serving.key.serialize_pem());
    parse_pem_pair(
        serving.pem.as_bytes(),
        both.as_bytes(),
        "tls.crt",
        "tls.key",
    )
    .expect("the unencrypted key loads");
}

/// A serving certificate that names no DNS name or IP address (only a common name), or one
/// issued for client authentication only: clients refuse either from a server (the API server
/// matches names against the subject alternative names only, and checks serverAuth). A
/// rotation to one is refused with what is missing, and the chain served before stays.
#[test]
fn a_certificate_clients_refuse_from_a_server_is_refused_and_the_old_one_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = ca("root", 3650, None);
    let good = leaf(30, &root);
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, &good.pem).expect("crt");
    std::fs::write(&key, good.key.serialize_pem()).expect("key");
    let resolver = Arc::new(ReloadingResolver::load(&cert, &key).expect("load"));

    let common_name_only = |params: &mut CertificateParams| {
        params.subject_alt_names.clear();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
    };
    let client_auth_only = |params: &mut CertificateParams| {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    };
    type Case<'a> = (&'a str, &'a dyn Fn(&mut CertificateParams), &'a str);
    let cases: [Case<'_>; 2] = [
        (
            "common name only",
            &common_name_only,
            "names no DNS name or IP address",
        ),
        (
            "client auth only",
            &client_auth_only,
            "server authentication",
        ),
    ];
    for (case, shape, said) in cases {
        let next_key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        shape(&mut params);
        let next = params.signed_by(&next_key, &root.issuer()).expect("cert");
        std::fs::write(&key, next_key.serialize_pem()).expect("key");
        std::fs::write(&cert, next.pem()).expect("crt");
        match resolver.poll() {
            ReloadOutcome::Failed(err @ CertError::NotForServing { .. }) => {
                let text = err.to_string();
                assert!(text.contains(said), "{case}: {text}");
                assert!(text.contains("tls.crt"), "{case}: {text}");
            }
            other => panic!("{case}: expected a refusal, got {other:?}"),
        }
        assert_eq!(
            handshake(resolver.clone(), &root.pem).expect("the previous certificate still works"),
            der(&good.pem),
            "{case}"
        );

        // What serving it would have done.
        let provider = rustls::crypto::ring::default_provider();
        let served = CertifiedKey::from_der(
            vec![next.der().clone()],
            kspy_certs::parse_private_key(next_key.serialize_pem().as_bytes(), "key").expect("key"),
            &provider,
        )
        .expect("certified key");
        let err =
            handshake(Arc::new(Fixed(Arc::new(served))), &root.pem).expect_err("clients refuse it");
        assert!(
            matches!(err, rustls::Error::InvalidCertificate(_)),
            "{case}: {err:?}"
        );
    }
}
