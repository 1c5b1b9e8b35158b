//! `deploy/sync-policies.sh` refuses a policy library too large for the ConfigMap that
//! `kubectl apply -k` copies into its last-applied-configuration annotation (256 KiB), counting
//! the files as the JSON kubectl writes: escapes included, not just the files' bytes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs a copy of the script in a scratch tree whose `policies/` holds `files`.
fn sync(files: &[(&str, String)]) -> anyhow::Result<Output> {
    let tmp = tempfile::tempdir()?;
    let policies = scratch_tree(tmp.path())?;
    for (name, text) in files {
        std::fs::write(policies.join(name), text)?;
    }
    run_script(tmp.path())
}

/// `deploy/` with a copy of the script and an empty `policies/` under `root`; returns the
/// path of `policies/`.
fn scratch_tree(root: &Path) -> anyhow::Result<PathBuf> {
    let deploy = root.join("deploy");
    std::fs::create_dir_all(deploy.join("base"))?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/sync-policies.sh");
    std::fs::copy(&script, deploy.join("sync-policies.sh"))?;
    let policies = root.join("policies");
    std::fs::create_dir_all(&policies)?;
    Ok(policies)
}

fn run_script(root: &Path) -> anyhow::Result<Output> {
    Ok(Command::new("sh")
        .arg(root.join("deploy/sync-policies.sh"))
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

/// A minimal DebugPolicy named `name`.
fn policy(name: &str) -> String {
    format!("apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {{name: {name}}}\n")
}

/// kspy-webhook's loader (and `kspy policy check|test`) follows symlinks, to files and to
/// directories: the ConfigMap must hold what they load. The script used to list files with
/// `find -type f`, which skips a symlinked file and never enters a symlinked directory, so
/// such a policy (a guardrail shared from another repository, say) was left out of the
/// ConfigMap without a word, while `kspy policy test policies/` went on passing with it.
#[cfg(unix)]
#[test]
fn symlinked_policy_files_and_directories_are_shipped_as_the_loader_reads_them()
-> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let policies = scratch_tree(tmp.path())?;
    let shared = tmp.path().join("shared");
    std::fs::create_dir_all(shared.join("team"))?;
    std::fs::write(policies.join("own.yaml"), policy("own"))?;
    std::fs::write(shared.join("guard.yaml"), policy("guard"))?;
    std::fs::write(shared.join("team/t.yaml"), policy("team"))?;
    std::os::unix::fs::symlink(shared.join("guard.yaml"), policies.join("guard.yaml"))?;
    std::os::unix::fs::symlink(shared.join("team"), policies.join("team"))?;

    let out = run_script(tmp.path())?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 policy file(s)"),
        "{out:?}"
    );
    let base = tmp.path().join("deploy/base/policies");
    let kustomization = std::fs::read_to_string(base.join("kustomization.yaml"))?;
    for entry in [
        "'guard.yaml=guard.yaml'",
        "'own.yaml=own.yaml'",
        "'team__t.yaml=team/t.yaml'",
    ] {
        assert!(
            kustomization.contains(entry),
            "{entry} missing:\n{kustomization}"
        );
    }
    // Copies of the content, not links: kustomize refuses links leading out of its tree.
    for (file, name) in [("guard.yaml", "guard"), ("team/t.yaml", "team")] {
        let path = base.join(file);
        assert!(
            !std::fs::symlink_metadata(&path)?.file_type().is_symlink(),
            "{file} copied as a link"
        );
        assert_eq!(std::fs::read_to_string(&path)?, policy(name));
    }
    assert!(
        !std::fs::symlink_metadata(base.join("team"))?
            .file_type()
            .is_symlink()
    );
    Ok(())
}

/// A link the loader could not read (dangling, or leading back up the tree) is a broken
/// library: refused with its name, never left out in silence.
#[cfg(unix)]
#[test]
fn dangling_and_looping_links_are_refused() -> anyhow::Result<()> {
    for (link, target, says) in [
        ("gone.yaml", "../nowhere/gone.yaml", "gone.yaml"),
        ("loop", ".", "loop"),
    ] {
        let tmp = tempfile::tempdir()?;
        let policies = scratch_tree(tmp.path())?;
        std::fs::write(policies.join("own.yaml"), policy("own"))?;
        std::os::unix::fs::symlink(target, policies.join(link))?;
        let out = run_script(tmp.path())?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{link}: {out:?}");
        assert!(stderr.contains(says), "{link}: {stderr}");
        assert!(
            !tmp.path().join("deploy/base/policies").exists(),
            "{link}: a copy was written anyway"
        );
    }
    Ok(())
}
