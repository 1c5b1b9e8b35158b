//! TLS 1.2 and 1.3 only: clients limited to either version are served; a client that offers
//! only TLS 1.1 gets a `protocol_version` alert and no connection.

mod common;

use std::sync::Arc;

use common::{Harness, fixture, read_response, response_of};
use rustls::ClientConfig;
use rustls::version::{TLS12, TLS13};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client trusting the harness's CA that speaks only `version`.
fn client_speaking(
    h: &Harness,
    version: &'static rustls::SupportedProtocolVersion,
) -> ClientConfig {
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[version])
            .expect("version")
            .with_root_certificates(common::ca_roots(&[&h.certs.ca_cert_pem]))
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

#[tokio::test]
async fn tls_1_2_and_1_3_clients_are_served() {
    let h = Harness::start().await;
    let body = fixture("attach-allowed.json");
    for version in [&TLS12, &TLS13] {
        let tls = client_speaking(&h, version);
        let mut stream = common::raw_tls(h.server.addr, &tls).await;
        assert_eq!(
            stream.get_ref().1.protocol_version(),
            Some(version.version),
            "negotiated"
        );
        let head = format!(
            "POST /validate HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&body).await.expect("body");
        stream.flush().await.expect("flush");
        let (code, answer) = read_response(&mut stream).await;
        assert_eq!(code, 200, "{version:?}");
        assert_eq!(response_of(answer.as_bytes())["allowed"], true);
    }
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_tls_1_1_client_hello_gets_a_protocol_version_alert() {
    let h = Harness::start().await;
    // A TLS 1.1 ClientHello: client_version 3.2 and no supported_versions extension, with
    // what a server needs to get as far as choosing a version (a cipher suite, no compression,
    // signature algorithms to pick its certificate by).
    let mut hello = vec![0x03, 0x02];
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // no session id
    hello.extend_from_slice(&[0x00, 0x02, 0xc0, 0x2f]); // ECDHE-RSA-AES128-GCM-SHA256
    hello.extend_from_slice(&[0x01, 0x00]); // null compression
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256, rsa_pkcs1_sha256.
    let sig_algs = [
        0x00, 0x0d, 0x00, 0x08, 0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01,
    ];
    hello.extend_from_slice(&u16::try_from(sig_algs.len()).expect("len").to_be_bytes());
    hello.extend_from_slice(&sig_algs);
    let mut handshake = vec![0x01, 0x00];
    handshake.extend_from_slice(&u16::try_from(hello.len()).expect("len").to_be_bytes());
    handshake.extend_from_slice(&hello);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&u16::try_from(handshake.len()).expect("len").to_be_bytes());
    record.extend_from_slice(&handshake);

    let mut tcp = tokio::net::TcpStream::connect(h.server.addr)
        .await
        .expect("connect");
    tcp.write_all(&record).await.expect("hello");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tcp.read_to_end(&mut answer),
    )
    .await
    .expect("the server closes the connection");
    assert!(read.is_ok() || !answer.is_empty(), "{read:?}");
    // One alert record: content type 21, fatal (2), protocol_version (70).
    assert!(answer.len() >= 7, "{answer:?}");
    assert_eq!(answer[0], 21, "an alert: {answer:?}");
    assert_eq!(
        &answer[5..7],
        &[2, 70],
        "fatal protocol_version: {answer:?}"
    );
    h.server.shutdown().await;
}
