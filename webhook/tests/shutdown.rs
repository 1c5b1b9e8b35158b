//! Graceful shutdown: a review in flight when shutdown starts is answered; readiness fails
//! first; the real binary does the same on SIGTERM.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{
    Harness, admin_get, client_tls, eventually, fixture, fixture_uid, raw_tls, read_response,
    response_of,
};
use kspy_webhook::client::{HttpVersion, HttpsConnection};
use tokio::io::AsyncWriteExt;

/// Sends the headers and the first half of `body`; the rest is sent by the caller.
async fn start_request(
    stream: &mut tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    body: &[u8],
) -> usize {
    let head = format!(
        "POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let half = body.len() / 2;
    stream.write_all(&body[..half]).await.expect("first half");
    stream.flush().await.expect("flush");
    half
}

#[tokio::test]
async fn a_review_in_flight_at_shutdown_completes() {
    let h = Harness::start().await;
    let body = fixture("attach-allowed.json");
    let mut stream = raw_tls(h.server.addr, &h.tls).await;
    let half = start_request(&mut stream, &body).await;
    let metrics = h.server.metrics().clone();
    eventually("the review is in flight", Duration::from_secs(5), || {
        let m = metrics.clone();
        async move { m.render().contains("kspy_reviews_in_flight 1\n") }
    })
    .await;

    let admin = h.server.admin_addr;
    let addr = h.server.addr;
    let handle = h.server.shutdown_handle();
    handle.shutdown();
    let stopping = tokio::spawn(h.server.shutdown());
    eventually(
        "readiness fails once shutdown starts",
        Duration::from_secs(5),
        || async { admin_get(admin, "/readyz").await.0 == 503 },
    )
    .await;
    assert_eq!(
        admin_get(admin, "/healthz").await.0,
        200,
        "still alive while draining"
    );
    // The listener is closed: new connections are refused.
    eventually(
        "new connections are refused",
        Duration::from_secs(5),
        || async { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;

    stream.write_all(&body[half..]).await.expect("second half");
    stream.flush().await.expect("flush");
    let (status, answer) = read_response(&mut stream).await;
    assert_eq!(status, 200);
    let r = response_of(answer.as_bytes());
    assert_eq!(r["uid"], fixture_uid("attach-allowed.json"));
    assert_eq!(r["allowed"], true);
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes")
        .expect("shutdown task");
}

#[tokio::test]
async fn the_shutdown_delay_keeps_serving_while_not_ready() {
    let h = Harness::start_with(common::POLICIES, |c| {
        c.shutdown_delay = Duration::from_millis(800)
    })
    .await;
    let (admin, addr) = (h.server.admin_addr, h.server.addr);
    h.server.shutdown_handle().shutdown();
    assert_eq!(admin_get(admin, "/readyz").await.0, 503);
    let mut conn = HttpsConnection::connect(addr, "localhost", &h.tls, HttpVersion::Http1)
        .await
        .expect("still accepting during the delay");
    let resp = conn
        .post_json("/validate", fixture("attach-allowed.json"))
        .await
        .expect("served");
    assert_eq!(resp.status(), 200);
    h.server.wait().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Reads the binary's JSON log until the "listening" line; the two addresses.
fn listening_addrs(lines: &mut impl Iterator<Item = String>) -> (SocketAddr, SocketAddr) {
    for line in lines {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["message"] == "kspy-webhook listening" {
            let addr = v["addr"]
                .as_str()
                .expect("addr")
                .parse()
                .expect("addr parses");
            let admin = v["admin_addr"]
                .as_str()
                .expect("admin_addr")
                .parse()
                .expect("admin parses");
            return (addr, admin);
        }
    }
    panic!("the webhook exited before listening");
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_lets_the_binary_finish_the_review_in_flight_and_exit_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = common::loopback_certs();
    let files = certs.write_to(&dir.path().join("tls")).expect("certs");
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).expect("dir");
    std::fs::write(policies.join("p.yaml"), common::POLICIES).expect("policies");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kspy-webhook"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--log-format",
            "json",
        ])
        .arg("--policies")
        .arg(&policies)
        .arg("--tls-cert")
        .arg(&files.cert)
        .arg("--tls-key")
        .arg(&files.key)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn kspy-webhook");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = rx.iter();
    let (addr, admin) = listening_addrs(&mut lines);
    assert_eq!(admin_get(admin, "/readyz").await.0, 200);

    let tls = client_tls(&[&certs.ca_cert_pem]);
    let body = fixture("attach-allowed.json");
    let mut stream = raw_tls(addr, &tls).await;
    let half = start_request(&mut stream, &body).await;
    eventually(
        "the review is in flight",
        Duration::from_secs(5),
        || async {
            admin_get(admin, "/metrics")
                .await
                .1
                .contains("kspy_reviews_in_flight 1\n")
        },
    )
    .await;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let logs: Vec<String> = lines
        .by_ref()
        .take_while(|l| !l.contains("shutting down"))
        .collect();
    assert!(logs.iter().any(|l| l.contains("SIGTERM")), "{logs:?}");

    stream.write_all(&body[half..]).await.expect("second half");
    stream.flush().await.expect("flush");
    let (code, answer) = read_response(&mut stream).await;
    assert_eq!(code, 200);
    assert_eq!(response_of(answer.as_bytes())["allowed"], true);

    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "{exit:?}");
    let rest: Vec<String> = lines.collect();
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}
