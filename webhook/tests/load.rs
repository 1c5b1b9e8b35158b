//! The load generator and the floor server used by `kspy-load bench`.

mod common;

use std::time::Duration;

use common::{client_tls, fixture, loopback_certs};
use kspy_webhook::TlsFiles;
use kspy_webhook::client::{HttpVersion, HttpsConnection};
use kspy_webhook::floor::{FLOOR_RESPONSE, start_floor};
use kspy_webhook::load::{LoadConfig, LoadError, run_load};

#[tokio::test]
async fn floor_answers_the_constant_review_and_load_counts_every_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = loopback_certs();
    let files = certs.write_to(dir.path()).expect("write");
    let floor = start_floor(
        "127.0.0.1:0".parse().expect("addr"),
        &TlsFiles {
            cert: files.cert,
            key: files.key,
        },
    )
    .await
    .expect("floor");
    let tls = client_tls(&[&certs.ca_cert_pem]);

    let mut conn = HttpsConnection::connect(floor.addr, "127.0.0.1", &tls, HttpVersion::Http2)
        .await
        .expect("connect");
    let resp = conn
        .post_json("/anything", fixture("attach-allowed.json"))
        .await
        .expect("post");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().as_ref(), FLOOR_RESPONSE.as_bytes());

    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let report = run_load(LoadConfig {
            addr: floor.addr,
            server_name: "127.0.0.1".into(),
            tls: tls.clone(),
            path: "/validate".into(),
            body: fixture("attach-allowed.json"),
            concurrency: 4,
            version,
            duration: Duration::from_secs(30),
            count: 300,
            warmup: 20,
        })
        .await
        .expect("load");
        assert_eq!(report.ok, 300, "{report:?}");
        assert_eq!(report.errors + report.non_200, 0, "{report:?}");
        assert!(report.p50 <= report.p90 && report.p90 <= report.p99 && report.p99 <= report.max);
        assert!(report.rps() > 0.0);
    }
    floor.shutdown().await;
}

#[tokio::test]
async fn only_loopback_targets_and_bounded_runs_are_accepted() {
    let certs = loopback_certs();
    let base = LoadConfig {
        addr: "10.0.0.1:443".parse().expect("addr"),
        server_name: "x".into(),
        tls: client_tls(&[&certs.ca_cert_pem]),
        path: "/validate".into(),
        body: fixture("attach-allowed.json"),
        concurrency: 1,
        version: HttpVersion::Http1,
        duration: Duration::from_secs(1),
        count: 1,
        warmup: 0,
    };
    assert!(matches!(
        run_load(base.clone()).await,
        Err(LoadError::NotLoopback(_))
    ));
    let local = LoadConfig {
        addr: "127.0.0.1:1".parse().expect("addr"),
        ..base
    };
    for bad in [
        LoadConfig {
            duration: Duration::from_secs(3600),
            ..local.clone()
        },
        LoadConfig {
            count: 0,
            ..local.clone()
        },
        LoadConfig {
            concurrency: 0,
            ..local.clone()
        },
    ] {
        assert!(matches!(run_load(bad).await, Err(LoadError::Limit(_))));
    }
}

/// A failure of the load tool says its cause, not only the step that failed.
#[test]
fn a_failed_run_says_why() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kspy-load"))
        .args([
            "run",
            "--addr",
            "127.0.0.1:1",
            "--ca",
            "/nonexistent/ca.crt",
            "--review",
        ])
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../policies/fixtures/attach-sre-ptrace.json"
        ))
        .output()
        .expect("run kspy-load");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/ca.crt"), "{stderr}");
    assert!(stderr.contains("No such file or directory"), "{stderr}");
}
