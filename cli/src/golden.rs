//! Golden JSON fixtures for tests: `tests/fixtures/*.json`, compared as JSON values.
//!
//! `KSPY_BLESS=1 cargo test -p kspy` rewrites them from the current output; review the diff
//! before keeping it. A missing golden file fails the test.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

/// Path of a fixture file.
pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}

/// Reads a fixture as JSON.
pub fn fixture(name: &str) -> Value {
    let path = fixture_path(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// Reads a fixture pod.
pub fn fixture_pod(name: &str) -> Pod {
    serde_json::from_value(fixture(name)).unwrap_or_else(|e| panic!("{name} is not a Pod: {e}"))
}

/// Asserts `actual` equals the golden file `name` (or rewrites it under `KSPY_BLESS=1`).
pub fn assert_golden(name: &str, actual: &Value) {
    let path = fixture_path(name);
    let pretty = serde_json::to_string_pretty(actual).expect("serializable") + "\n";
    if std::env::var_os("KSPY_BLESS").is_some() {
        std::fs::write(&path, &pretty).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        return;
    }
    let expected = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => panic!(
            "golden file {} is missing ({e}); create it with KSPY_BLESS=1 and review it",
            path.display()
        ),
    };
    let expected_value: Value =
        serde_json::from_str(&expected).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()));
    if &expected_value != actual {
        panic!(
            "{} differs from the golden file\n--- expected\n{}\n--- actual\n{}",
            name,
            serde_json::to_string_pretty(&expected_value).unwrap_or_default(),
            pretty
        );
    }
}
