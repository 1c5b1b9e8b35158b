//! Flags that cannot work stop the binary at start, with a message saying why and what to do,
//! instead of failing every review later.

#![cfg(unix)]

use std::ffi::OsString;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `kspy-webhook` with `args` (after placeholder certificate paths and an empty policy
/// directory, which are never read when a flag is refused); its exit success and stderr.
/// Fails if it is still running after 20 s (it started serving).
fn run(args: &[&str]) -> (bool, String) {
    let policies = tempfile::tempdir().expect("temp dir");
    run_in(policies.path(), args)
}

/// [`run`] with the policy directory `policies`.
fn run_in(policies: &std::path::Path, args: &[&str]) -> (bool, String) {
    let mut all: Vec<OsString> = ["--policies".into(), policies.into()].into();
    all.extend(
        [
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
            "--namespace-lookup",
            "none",
        ]
        .map(OsString::from),
    );
    all.extend(args.iter().map(OsString::from));
    exit_of(Command::new(env!("CARGO_BIN_EXE_kspy-webhook")).args(all))
}

/// Runs `command` (kspy-webhook with its arguments, on port 0 unless it names `--addr`,
/// Events off) until it exits; its
/// exit success and stderr. Fails if it is still running after 20 s (it started serving).
fn exit_of(command: &mut Command) -> (bool, String) {
    if !command.get_args().any(|a| a == "--addr") {
        command.args(["--addr", "127.0.0.1:0"]);
    }
    let mut child = command
        .args(["--admin-addr", "127.0.0.1:0", "--events", "off"])
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
            panic!("kspy-webhook {command:?} is still running");
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

#[test]
fn a_missing_policy_directory_is_named_with_what_to_do() {
    let (ok, stderr) = run_in(std::path::Path::new("/nonexistent/policies"), &[]);
    assert!(!ok);
    assert!(
        stderr.contains("--policies /nonexistent/policies: no such directory; give the directory"),
        "{stderr}"
    );
    // --dev's default, relative to where it runs: said so, and nothing is written there.
    let cwd = tempfile::tempdir().expect("temp dir");
    let (ok, stderr) = exit_of(
        Command::new(env!("CARGO_BIN_EXE_kspy-webhook"))
            .arg("--dev")
            .current_dir(cwd.path()),
    );
    assert!(!ok);
    assert!(
        stderr.contains("--policies policies: no such directory (the default with --dev, relative to the current directory"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(cwd.path()).expect("read").count(),
        0,
        "no certificates written"
    );
}

#[test]
fn a_namespace_cache_longer_than_a_day_is_refused_at_start() {
    let (ok, stderr) = run(&["--namespace-cache-ttl", "25h"]);
    assert!(!ok);
    assert!(
        stderr.contains("--namespace-cache-ttl 90000s is longer than a day"),
        "{stderr}"
    );
}

#[test]
fn namespace_lookup_api_without_a_client_configuration_says_what_to_do() {
    let home = tempfile::tempdir().expect("temp dir");
    let policies = tempfile::tempdir().expect("temp dir");
    let (ok, stderr) = exit_of(
        Command::new(env!("CARGO_BIN_EXE_kspy-webhook"))
            .arg("--policies")
            .arg(policies.path())
            .args([
                "--tls-cert",
                "/nonexistent/c",
                "--tls-key",
                "/nonexistent/k",
            ])
            .args(["--namespace-lookup", "api"])
            .env("HOME", home.path())
            .env("KUBECONFIG", home.path().join("none"))
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT"),
    );
    assert!(!ok);
    assert!(
        stderr.contains("--namespace-lookup api: cannot build a Kubernetes client from KUBECONFIG"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--namespace-lookup declared or none"),
        "{stderr}"
    );
    // kube's error holds its whole chain in its message; the chain is not printed again.
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

/// Starts `--dev` from a scratch directory with the repository's policies and `args`; the
/// start must fail.
fn dev_refused(args: &[&str]) -> String {
    let cwd = tempfile::tempdir().expect("temp dir");
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let (ok, stderr) = exit_of(
        Command::new(env!("CARGO_BIN_EXE_kspy-webhook"))
            .args(["--dev", "--policies", policies])
            .args(args)
            .current_dir(cwd.path()),
    );
    assert!(!ok, "{args:?} started: {stderr}");
    stderr
}

#[test]
fn a_classifier_that_does_not_compile_is_named_by_its_flag() {
    let stderr = dev_refused(&["--copy-classifier", "object.("]);
    assert!(stderr.contains("--copy-classifier: "), "{stderr}");
    assert!(stderr.contains("CEL expression"), "{stderr}");
    assert!(!stderr.contains("copyClassifier"), "{stderr}");
}

#[test]
fn a_port_in_use_is_named_once_with_its_flag_and_what_to_do() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let stderr = dev_refused(&["--addr", &addr]);
    assert!(
        stderr.contains(&format!("cannot listen on {addr} (--addr): ")),
        "{stderr}"
    );
    assert!(
        stderr.contains("another process holds the port: stop it, or choose another with --addr"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "{stderr}"
    );
}

/// Runs the binary with the repository's policies and the given certificate files: the start
/// must fail; its stderr.
fn refused_with_certs(cert: &std::path::Path, key: &std::path::Path) -> String {
    let policies = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let (ok, stderr) = exit_of(
        Command::new(env!("CARGO_BIN_EXE_kspy-webhook"))
            .args(["--policies", policies, "--namespace-lookup", "none"])
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key),
    );
    assert!(!ok, "started: {stderr}");
    stderr
}

/// Each fact once: the error's messages used to repeat their sources, and the chain was
/// printed after them (`tls.crt: No such file…: tls.crt: No such file…: No such file…`).
#[test]
fn a_missing_certificate_file_is_named_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cert = dir.path().join("tls.crt");
    let stderr = refused_with_certs(&cert, &dir.path().join("tls.key"));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("serving certificate: {}: ", cert.display())),
        "{stderr}"
    );
    assert_eq!(stderr.matches("tls.crt").count(), 1, "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn an_expired_certificate_is_named_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    let cert = params.self_signed(&key).expect("cert");
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert_file, cert.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");
    let stderr = refused_with_certs(&cert_file, &key_file);
    assert_eq!(stderr.matches("expired").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("tls.crt").count(), 1, "{stderr}");
}

/// An invalid RUST_LOG used to fall back to `info` silently: one warning names the variable,
/// the value and why it was refused, and the level used.
#[test]
fn an_invalid_rust_log_is_warned_about_once() {
    let policies = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_kspy-webhook"))
        .arg("--policies")
        .arg(policies.path())
        .args([
            "--tls-cert",
            "/nonexistent/tls.crt",
            "--tls-key",
            "/nonexistent/tls.key",
            "--namespace-lookup",
            "none",
            "--events",
            "off",
            "--log-format",
            "json",
        ])
        .env("RUST_LOG", "bogus===")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .output()
        .expect("run kspy-webhook");
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let warnings: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["variable"] == "RUST_LOG")
        .collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    let line = &warnings[0];
    assert_eq!(line["level"], "WARN", "{line}");
    assert!(
        line["error"]
            .as_str()
            .is_some_and(|e| e.contains("bogus===")),
        "{line}"
    );
    // The fallback level is named.
    assert_eq!(line["level_used"], "info", "{line}");
}
