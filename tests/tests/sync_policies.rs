//! `deploy/sync-policies.sh` refuses a policy library too large for the ConfigMap that
//! `kubectl apply -k` copies into its last-applied-configuration annotation (256 KiB), counting
//! the files as the JSON kubectl writes: escapes included, not just the files' bytes.

use std::path::Path;
use std::process::{Command, Output};

/// Runs a copy of the script in a scratch tree whose `policies/` holds `files`.
fn sync(files: &[(&str, String)]) -> anyhow::Result<Output> {
    let tmp = tempfile::tempdir()?;
    let deploy = tmp.path().join("deploy");
    std::fs::create_dir_all(deploy.join("base"))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sync-policies.sh");
    std::fs::copy(&script, deploy.join("sync-policies.sh"))?;
    let policies = tmp.path().join("policies");
    std::fs::create_dir_all(&policies)?;
    for (name, text) in files {
        std::fs::write(policies.join(name), text)?;
    }
    Ok(Command::new("sh")
        .arg(deploy.join("sync-policies.sh"))
        .output()?)
}

/// A policy file of about `len` bytes whose CEL is mostly `&&`.
fn conjunctions(len: usize) -> String {
    let mut text = String::from("apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\n# ");
    while text.len() < len {
        text.push_str("true && ");
    }
    text.push('\n');
    text
}

#[test]
fn a_library_that_fits_as_files_but_not_as_escaped_json_is_refused() -> anyhow::Result<()> {
    // 120 KB of files, well under 256 KiB, but each `&` is six bytes as kubectl's JSON:
    // about 300 KB of annotation.
    let out = sync(&[("many-ands.yaml", conjunctions(120_000))])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("bytes as JSON (12000")
            && stderr.contains("256 KiB")
            && stderr.contains("--server-side"),
        "{stderr}"
    );
    Ok(())
}

#[test]
fn a_library_within_the_annotation_budget_is_copied() -> anyhow::Result<()> {
    // 200 KB of plain text with few escapes: under the budget as JSON too.
    let mut text = String::from("apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\n# ");
    text.push_str(&"x".repeat(200_000));
    text.push('\n');
    let out = sync(&[("large.yaml", text)])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 policy file(s)"),
        "{out:?}"
    );
    Ok(())
}
