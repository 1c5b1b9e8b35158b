//! Client certificates (`--client-ca`, `--client-name`) over real TLS on loopback: a client
//! with a certificate from the CA is answered; one without a certificate, an expired one, one from
//! another CA, one not for client authentication, or one without an allowed name gets no
//! connection, and the refusal is counted and logged; the CA file is reloaded on a Secret
//! volume's `..data` swap, a broken change keeping the previous CAs; a CA file that cannot
//! work stops the start.

#![cfg(unix)]

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{Harness, WebhookProcess, eventually, fixture, response_of};
use kspy_webhook::metrics::ConnectionClosed;
use kspy_webhook::{ClientAuth, ServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::version::{TLS12, TLS13};
use rustls::{AlertDescription, ClientConfig, SupportedProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA for client certificates: its PEM and what issues with it.
struct ClientCa {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl ClientCa {
    fn new(name: &str) -> ClientCa {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("CA");
        ClientCa {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A client certificate (clientAuth) with common name `cn` and DNS names `dns`.
    fn client(&self, cn: &str, dns: &[&str]) -> ClientCert {
        self.issue(cn, dns, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A client certificate (clientAuth) with common name `cn` that expired in 2000.
    fn expired_client(&self, cn: &str) -> ClientCert {
        self.issue_with(cn, &[], ExtendedKeyUsagePurpose::ClientAuth, |params| {
            params.not_before = rcgen::date_time_ymd(1999, 1, 1);
            params.not_after = rcgen::date_time_ymd(2000, 1, 1);
        })
    }

    fn issue(&self, cn: &str, dns: &[&str], eku: ExtendedKeyUsagePurpose) -> ClientCert {
        self.issue_with(cn, dns, eku, |_| {})
    }

    fn issue_with(
        &self,
        cn: &str,
        dns: &[&str],
        eku: ExtendedKeyUsagePurpose,
        tweak: impl FnOnce(&mut CertificateParams),
    ) -> ClientCert {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.subject_alt_names = dns
            .iter()
            .map(|d| SanType::DnsName((*d).try_into().expect("ia5")))
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![eku];
        tweak(&mut params);
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        ClientCert {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

/// A client certificate and its key.
struct ClientCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A client trusting the server's CA, speaking `version`, presenting `cert` if given.
fn client(
    server_ca: &str,
    version: &'static SupportedProtocolVersion,
    cert: Option<&ClientCert>,
) -> ClientConfig {
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .expect("version")
            .with_root_certificates(common::ca_roots(&[server_ca]));
    let mut config = match cert {
        Some(cert) => builder
            .with_client_auth_cert(cert.chain.clone(), cert.key.clone_key())
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// POSTs the allowed fixture to `/validate` on a new connection: the status and the answer's
/// `allowed`, or what went wrong.
async fn validate(addr: std::net::SocketAddr, tls: &ClientConfig) -> Result<(u16, bool), String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    let mut stream = tokio_rustls::TlsConnector::from(Arc::new(tls.clone()))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let body = fixture("attach-allowed.json");
    let head = format!(
        "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(&body).await.map_err(|e| e.to_string())?;
    stream.flush().await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    // The server closes without close_notify after `connection: close`: what arrived counts.
    let read = stream.read_to_end(&mut buf).await;
    let text = String::from_utf8_lossy(&buf);
    let Some(status) = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
    else {
        return Err(format!("no answer: {read:?}"));
    };
    let answer = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, response_of(answer.as_bytes())["allowed"] == true))
}

/// The alert with which the server refuses a client: in TLS 1.2 the handshake fails; in TLS
/// 1.3 the client's part of the handshake ends before the server has checked its certificate,
/// so the alert comes with the first read. Nothing is written, so that the refusal cannot
/// race a request (a reset could then hide the alert). Fails if the client gets through.
async fn refusal(addr: std::net::SocketAddr, tls: &ClientConfig) -> AlertDescription {
    let alert_of = |err: &std::io::Error| match err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(alert)) => *alert,
        _ => panic!("refused without an alert: {err:?}"),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = ServerName::try_from("localhost").expect("name");
    let mut stream = match tokio_rustls::TlsConnector::from(Arc::new(tls.clone()))
        .connect(name, tcp)
        .await
    {
        Ok(stream) => stream,
        Err(err) => return alert_of(&err),
    };
    let mut byte = [0u8; 1];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut byte)).await {
        Ok(Err(err)) => alert_of(&err),
        Ok(Ok(n)) => panic!("not refused: read {n} bytes"),
        Err(_) => panic!("not refused: the connection stayed open"),
    }
}

/// A server whose HTTPS port requires certificates from `ca_file` bearing one of `names`.
async fn requiring(ca_file: &Path, names: &[&str]) -> Harness {
    let ca = ca_file.to_owned();
    let names = names.iter().map(|n| (*n).to_owned()).collect();
    Harness::start_with(common::POLICIES, move |config: &mut ServerConfig| {
        config.client_auth = Some(ClientAuth { ca, names });
    })
    .await
}

fn refused_total(h: &Harness) -> u64 {
    h.server
        .metrics()
        .connections_closed_total(ConnectionClosed::ClientCertRefused)
}

/// Waits until `kspy_connections_closed_total{reason="client-cert-refused"}` is `n` (the
/// server counts a refusal once its side of the handshake has ended), and checks that no
/// other handshake failure was counted.
async fn refusals_counted(h: &Harness, n: u64) {
    eventually("refusals counted", Duration::from_secs(5), || async {
        refused_total(h) == n
    })
    .await;
    assert_eq!(
        h.server
            .metrics()
            .connections_closed_total(ConnectionClosed::HandshakeFailed),
        0
    );
}

fn write_ca(dir: &Path, ca: &ClientCa) -> PathBuf {
    let path = dir.join("client-ca.crt");
    std::fs::write(&path, &ca.pem).expect("write CA");
    path
}

#[tokio::test]
async fn a_client_with_a_certificate_from_the_ca_is_answered() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = ClientCa::new("kspy client CA");
    let h = requiring(&write_ca(dir.path(), &ca), &[]).await;
    let cert = ca.client("kube-apiserver", &[]);
    for version in [&TLS12, &TLS13] {
        let tls = client(&h.certs.ca_cert_pem, version, Some(&cert));
        assert_eq!(
            validate(h.server.addr, &tls).await,
            Ok((200, true)),
            "{version:?}"
        );
    }
    assert_eq!(refused_total(&h), 0);
    // The admin port stays plain HTTP, with no client certificate.
    assert_eq!(h.admin_get("/healthz").await.0, 200);
    let (status, metrics) = h.admin_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("kspy_connections_closed_total{reason=\"client-cert-refused\"} 0\n"),
        "{metrics}"
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_and_counted() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = ClientCa::new("kspy client CA");
    let h = requiring(&write_ca(dir.path(), &ca), &[]).await;
    let tls13 = client(&h.certs.ca_cert_pem, &TLS13, None);
    assert_eq!(
        refusal(h.server.addr, &tls13).await,
        AlertDescription::CertificateRequired
    );
    // rustls sends TLS 1.3's alert in TLS 1.2 too (1.2 has no such alert of its own).
    let tls12 = client(&h.certs.ca_cert_pem, &TLS12, None);
    assert_eq!(
        refusal(h.server.addr, &tls12).await,
        AlertDescription::CertificateRequired
    );
    // What a forged review gets: no answer at all.
    assert!(validate(h.server.addr, &tls13).await.is_err());
    refusals_counted(&h, 3).await;
    let (_, metrics) = h.admin_get("/metrics").await;
    assert!(
        metrics.contains("kspy_connections_closed_total{reason=\"client-cert-refused\"} 3\n"),
        "{metrics}"
    );
    h.server.shutdown().await;
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused_with_certificate_expired() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = ClientCa::new("kspy client CA");
    let h = requiring(&write_ca(dir.path(), &ca), &[]).await;
    let expired = ca.expired_client("kube-apiserver");
    for version in [&TLS12, &TLS13] {
        let tls = client(&h.certs.ca_cert_pem, version, Some(&expired));
        assert_eq!(
            refusal(h.server.addr, &tls).await,
            AlertDescription::CertificateExpired,
            "{version:?}"
        );
    }
    refusals_counted(&h, 2).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_or_not_for_clients_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = ClientCa::new("kspy client CA");
    let h = requiring(&write_ca(dir.path(), &ca), &[]).await;
    let other = ClientCa::new("some other CA");
    for version in [&TLS12, &TLS13] {
        // Same subject, other issuer.
        let tls = client(
            &h.certs.ca_cert_pem,
            version,
            Some(&other.client("kube-apiserver", &[])),
        );
        assert_eq!(
            refusal(h.server.addr, &tls).await,
            AlertDescription::UnknownCA,
            "{version:?}"
        );
    }
    // From the right CA, but for serving only (no clientAuth extended key usage).
    let server_only = ca.issue("kube-apiserver", &[], ExtendedKeyUsagePurpose::ServerAuth);
    let tls = client(&h.certs.ca_cert_pem, &TLS13, Some(&server_only));
    assert_eq!(
        refusal(h.server.addr, &tls).await,
        AlertDescription::UnsupportedCertificate
    );
    refusals_counted(&h, 3).await;
    h.server.shutdown().await;
}

#[tokio::test]
async fn with_client_names_only_a_certificate_bearing_one_is_answered() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = ClientCa::new("kspy client CA");
    let h = requiring(
        &write_ca(dir.path(), &ca),
        &["kube-apiserver", "apiserver.kspy.example"],
    )
    .await;
    let server_ca = &h.certs.ca_cert_pem;
    for (cert, what) in [
        (ca.client("kube-apiserver", &[]), "the common name"),
        (
            ca.client("someone", &["other.example", "apiserver.kspy.example"]),
            "a DNS name",
        ),
    ] {
        let tls = client(server_ca, &TLS13, Some(&cert));
        assert_eq!(
            validate(h.server.addr, &tls).await,
            Ok((200, true)),
            "{what}"
        );
    }
    for (cert, what) in [
        (ca.client("intruder", &["pod.example"]), "other names"),
        // Names are compared whole, and a DNS name only as a DNS name.
        (
            ca.client("kube-apiserver-2", &["kube-apiserver.example"]),
            "similar names",
        ),
        // A common name is compared exactly (a DNS name ignoring ASCII case).
        (ca.client("KUBE-APISERVER", &[]), "another case"),
    ] {
        for version in [&TLS12, &TLS13] {
            let tls = client(server_ca, version, Some(&cert));
            assert_eq!(
                refusal(h.server.addr, &tls).await,
                AlertDescription::CertificateUnknown,
                "{what} {version:?}"
            );
        }
    }
    refusals_counted(&h, 6).await;
    h.server.shutdown().await;
}

/// The refusal is logged at warn with the peer and the reason (the names the certificate had
/// and those allowed), at most once per 5 s: the next line counts those not logged.
#[tokio::test]
async fn refusals_are_logged_with_the_reason_at_most_once_per_interval() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = ClientCa::new("kspy client CA");
    let ca_file = write_ca(dir.path(), &ca);
    let ca_arg = ca_file.to_str().expect("utf-8 path");
    let process = WebhookProcess::spawn_with(
        "json",
        &[],
        &["--client-ca", ca_arg, "--client-name", "kube-apiserver"],
    );
    let start = process
        .start_lines
        .iter()
        .find(|l| l.contains("client certificates required"))
        .expect("the start says client certificates are required");
    assert!(start.contains("kube-apiserver"), "{start}");
    let server_ca = process.ca_pem.clone();
    let intruder = client(
        &server_ca,
        &TLS13,
        Some(&ca.client("intruder", &["pod.example"])),
    );
    let refused_lines = |wait: Duration, at_most: usize| -> Vec<serde_json::Value> {
        let until = std::time::Instant::now() + wait;
        let mut found = Vec::new();
        while let Some(left) = until.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = process.lines.recv_timeout(left) else {
                break;
            };
            if line.contains("client certificate refused") {
                found.push(serde_json::from_str(&line).expect("JSON line"));
                if found.len() == at_most {
                    break;
                }
            }
        }
        found
    };
    refusal(process.addr, &intruder).await;
    let first = refused_lines(Duration::from_secs(5), 1);
    // The server took the time of this refusal before it wrote the line read here: the
    // interval runs from before this instant, so waiting from it is never too short.
    let first_logged = std::time::Instant::now();
    assert_eq!(first.len(), 1, "the first refusal is logged: {first:?}");
    let line = &first[0];
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(
        line["peer"]
            .as_str()
            .is_some_and(|p| p.starts_with("127.0.0.1:")),
        "{line}"
    );
    let reason = line["reason"].as_str().expect("reason");
    assert!(reason.contains("CN=intruder, DNS:pod.example"), "{reason}");
    assert!(reason.contains("(kube-apiserver)"), "{reason}");
    assert_eq!(line["not_logged"], 0, "{line}");

    // Two more within the interval: held back.
    for _ in 0..2 {
        refusal(process.addr, &intruder).await;
    }
    let held_back = refused_lines(Duration::from_secs(1), usize::MAX);
    assert!(held_back.is_empty(), "logged within 5 s: {held_back:?}");
    assert!(
        first_logged.elapsed() < Duration::from_secs(5),
        "the test ran too slow to tell: {:?}",
        first_logged.elapsed()
    );

    // Past the interval, the next refusal is logged with the count of those held back.
    if let Some(rest) = Duration::from_millis(5_200).checked_sub(first_logged.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    let no_cert = client(&server_ca, &TLS13, None);
    refusal(process.addr, &no_cert).await;
    let second = refused_lines(Duration::from_secs(2), usize::MAX);
    assert_eq!(second.len(), 1, "{second:?}");
    assert_eq!(second[0]["not_logged"], 2, "{}", second[0]);
    assert!(
        second[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no client certificate")),
        "{}",
        second[0]
    );
    let (_, metrics) = common::admin_get(process.admin, "/metrics").await;
    assert!(
        metrics.contains("kspy_connections_closed_total{reason=\"client-cert-refused\"} 4\n"),
        "{metrics}"
    );
    process.terminate();
    assert!(process.wait().await.success());
}

/// A directory laid out like a kubelet-managed Secret (or ConfigMap) volume holding `ca.crt`.
struct CaVolume {
    root: PathBuf,
    generation: u32,
}

impl CaVolume {
    fn new(root: &Path, pem: &str) -> CaVolume {
        std::fs::create_dir_all(root).expect("root");
        let mut volume = CaVolume {
            root: root.to_owned(),
            generation: 0,
        };
        let dir = volume.write_generation(pem);
        symlink(&dir, root.join("..data")).expect("..data");
        symlink("..data/ca.crt", root.join("ca.crt")).expect("ca.crt");
        volume
    }

    fn write_generation(&mut self, pem: &str) -> String {
        self.generation += 1;
        let name = format!("..2026_11_26_10_00_00.{}", self.generation);
        std::fs::create_dir(self.root.join(&name)).expect("generation");
        std::fs::write(self.root.join(&name).join("ca.crt"), pem).expect("ca.crt");
        name
    }

    /// kubelet's atomic writer: new directory, temporary link, rename over `..data`, remove
    /// the old directory.
    fn swap(&mut self, pem: &str) {
        let old = std::fs::read_link(self.root.join("..data")).expect("read ..data");
        let new = self.write_generation(pem);
        symlink(&new, self.root.join("..data_tmp")).expect("tmp link");
        std::fs::rename(self.root.join("..data_tmp"), self.root.join("..data")).expect("rename");
        std::fs::remove_dir_all(self.root.join(old)).expect("remove old");
    }

    fn file(&self) -> PathBuf {
        self.root.join("ca.crt")
    }
}

/// The CA file rotated by a `..data` swap while the server runs: certificates from the new CA
/// are accepted and those from the old one refused, without a restart. The old client keeps
/// its TLS configuration (and so its session cache) throughout: a resumed session would skip
/// the certificate check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_client_ca_is_in_force_without_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let (old, new) = (ClientCa::new("client CA 1"), ClientCa::new("client CA 2"));
    let mut volume = CaVolume::new(&dir.path().join("client-ca"), &old.pem);
    let h = requiring(&volume.file(), &[]).await;
    let server_ca = &h.certs.ca_cert_pem;
    let old_client = client(server_ca, &TLS13, Some(&old.client("kube-apiserver", &[])));
    let new_client = client(server_ca, &TLS13, Some(&new.client("kube-apiserver", &[])));
    for _ in 0..2 {
        assert_eq!(validate(h.server.addr, &old_client).await, Ok((200, true)));
    }
    assert_eq!(
        refusal(h.server.addr, &new_client).await,
        AlertDescription::UnknownCA
    );

    volume.swap(&new.pem);
    eventually("the new CA in force", Duration::from_secs(5), || async {
        h.server.metrics().client_ca_reloads() == (1, 0)
    })
    .await;
    assert_eq!(validate(h.server.addr, &new_client).await, Ok((200, true)));
    assert_eq!(
        refusal(h.server.addr, &old_client).await,
        AlertDescription::UnknownCA
    );
    // A bundle of both (a rotation's overlap) trusts both.
    volume.swap(&format!("{}{}", old.pem, new.pem));
    eventually("the bundle in force", Duration::from_secs(5), || async {
        h.server.metrics().client_ca_reloads() == (2, 0)
    })
    .await;
    assert_eq!(validate(h.server.addr, &old_client).await, Ok((200, true)));
    assert_eq!(validate(h.server.addr, &new_client).await, Ok((200, true)));
    let (_, metrics) = h.admin_get("/metrics").await;
    assert!(
        metrics.contains("kspy_client_ca_reloads_total{result=\"success\"} 2\n"),
        "{metrics}"
    );
    h.server.shutdown().await;
}

/// A change that does not load keeps the previous CA in force and is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_client_ca_change_keeps_the_previous_ca() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = ClientCa::new("client CA");
    let mut volume = CaVolume::new(&dir.path().join("client-ca"), &ca.pem);
    let h = requiring(&volume.file(), &[]).await;
    let tls = client(
        &h.certs.ca_cert_pem,
        &TLS13,
        Some(&ca.client("kube-apiserver", &[])),
    );
    assert_eq!(validate(h.server.addr, &tls).await, Ok((200, true)));

    volume.swap("-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAA\n-----END CERTIFICATE-----\n");
    eventually("the failure counted", Duration::from_secs(5), || async {
        h.server.metrics().client_ca_reloads() == (0, 1)
    })
    .await;
    assert_eq!(validate(h.server.addr, &tls).await, Ok((200, true)));
    // Seen again at the next polls, it is not counted again.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(h.server.metrics().client_ca_reloads(), (0, 1));

    volume.swap("");
    eventually(
        "the second failure counted",
        Duration::from_secs(5),
        || async { h.server.metrics().client_ca_reloads() == (0, 2) },
    )
    .await;
    assert_eq!(validate(h.server.addr, &tls).await, Ok((200, true)));
    let (_, metrics) = h.admin_get("/metrics").await;
    assert!(
        metrics.contains("kspy_client_ca_reloads_total{result=\"failure\"} 2\n"),
        "{metrics}"
    );
    h.server.shutdown().await;
}

/// Runs `kspy-webhook --dev` (its own serving certificate, in a scratch directory) with
/// `args`; the start must fail: its exit code and stderr.
fn refused_start(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let cwd = tempfile::tempdir().expect("dir");
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_kspy-webhook"))
        .args(["--dev", "--policies", policies])
        .args(["--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(args)
        .current_dir(cwd.path())
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("kspy-webhook {args:?} is still running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_client_ca_that_cannot_work_stops_the_start_with_the_reason() {
    let dir = tempfile::tempdir().expect("dir");
    let flag = std::ffi::OsStr::new("--client-ca");

    let missing = dir.path().join("missing.crt");
    let (code, stderr) = refused_start(&[flag, missing.as_os_str()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("client CA (--client-ca): {}: ", missing.display())),
        "{stderr}"
    );
    assert!(stderr.contains("No such file or directory"), "{stderr}");

    let unreadable = dir.path().join("a-directory.crt");
    std::fs::create_dir(&unreadable).expect("dir");
    let (code, stderr) = refused_start(&[flag, unreadable.as_os_str()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "client CA (--client-ca): {}: ",
            unreadable.display()
        )),
        "{stderr}"
    );

    let no_cert = dir.path().join("no-cert.crt");
    std::fs::write(&no_cert, KeyPair::generate().expect("key").serialize_pem()).expect("write");
    let (code, stderr) = refused_start(&[flag, no_cert.as_os_str()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "client CA (--client-ca): {}: no CERTIFICATE block found",
            no_cert.display()
        )),
        "{stderr}"
    );

    let garbage = dir.path().join("garbage.crt");
    let ca = ClientCa::new("good");
    std::fs::write(
        &garbage,
        format!(
            "{}-----BEGIN CERTIFICATE-----\nAAAAAAAAAAAA\n-----END CERTIFICATE-----\n",
            ca.pem
        ),
    )
    .expect("write");
    let (code, stderr) = refused_start(&[flag, garbage.as_os_str()]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "client CA (--client-ca): {} (certificate 2 of the bundle): not a valid X.509 certificate",
            garbage.display()
        )),
        "{stderr}"
    );

    // A usage error from the flags themselves (exit code 2).
    let (code, stderr) = refused_start(&[
        std::ffi::OsStr::new("--client-name"),
        std::ffi::OsStr::new("kube-apiserver"),
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--client-ca"), "{stderr}");

    let good = write_ca(dir.path(), &ca);
    let (code, stderr) = refused_start(&[
        flag,
        good.as_os_str(),
        std::ffi::OsStr::new("--client-name"),
        std::ffi::OsStr::new(""),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("--client-name is empty"), "{stderr}");
}
