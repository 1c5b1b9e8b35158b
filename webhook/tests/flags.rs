//! Flags that cannot work stop the binary at start, with a message saying why and what to do,
//! instead of failing every review later.

#![cfg(unix)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `kspy-webhook` with `args` (after placeholder certificate and policy paths, which are
/// never read when a flag is refused); its exit success and stderr. Fails if it is still
/// running after 20 s (it started serving).
fn run(args: &[&str]) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kspy-webhook"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--policies",
            "/nonexistent/policies",
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
            "--events",
            "off",
            "--namespace-lookup",
            "none",
        ])
        .args(args)
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kspy-webhook");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("kspy-webhook {args:?} is still running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn review_timeouts_the_api_server_cannot_wait_for_are_refused_at_start() {
    for timeout in ["10000000000000000000s", "31s", "1h"] {
        let (ok, stderr) = run(&["--review-timeout", timeout]);
        assert!(!ok, "{timeout}");
        assert!(stderr.contains("--review-timeout"), "{timeout}: {stderr}");
        assert!(stderr.contains("at most 30s"), "{timeout}: {stderr}");
        assert!(stderr.contains("API server waits at most 30 s"), "{stderr}");
    }
    let (ok, stderr) = run(&["--review-timeout", "0s"]);
    assert!(!ok);
    assert!(stderr.contains("--review-timeout 0s"), "{stderr}");
}

#[test]
fn a_body_budget_below_one_body_is_refused_at_start() {
    let (ok, stderr) = run(&[
        "--max-body-bytes",
        "1048576",
        "--max-buffered-bytes",
        "1048575",
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("--max-buffered-bytes 1048575 is smaller than --max-body-bytes 1048576"),
        "{stderr}"
    );
}

#[test]
fn a_reload_interval_past_the_clocks_end_is_refused_at_start() {
    let (ok, stderr) = run(&["--reload-interval", "10000000000000000000s"]);
    assert!(!ok);
    assert!(stderr.contains("--reload-interval"), "{stderr}");
}
