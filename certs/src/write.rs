//! Writing generated certificates to a directory, in the layout of a `kubernetes.io/tls` Secret.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::CertError;
use crate::generate::GeneratedCerts;

/// File name of the CA certificate.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the serving certificate (the `tls.crt` key of a TLS Secret).
pub const CERT_FILE: &str = "tls.crt";
/// File name of the serving key (the `tls.key` key of a TLS Secret).
pub const KEY_FILE: &str = "tls.key";
/// File name of the base64 `caBundle`.
pub const CA_BUNDLE_FILE: &str = "ca-bundle.b64";

/// Where [`GeneratedCerts::write_to`] put each file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenFiles {
    /// `DIR/ca.crt`.
    pub ca_cert: PathBuf,
    /// `DIR/tls.crt`.
    pub cert: PathBuf,
    /// `DIR/tls.key` (mode 0600 on Unix).
    pub key: PathBuf,
    /// `DIR/ca-bundle.b64` (base64 of `ca.crt`, no trailing newline).
    pub ca_bundle: PathBuf,
}

impl GeneratedCerts {
    /// Writes `ca.crt`, `tls.crt`, `tls.key` and `ca-bundle.b64` into `dir`, creating it if
    /// needed. Each file is written to a temporary name and renamed into place, so a reader
    /// (such as a running webhook's reloader) never sees a half-written file. The key is
    /// readable by its owner only.
    pub fn write_to(&self, dir: &Path) -> Result<WrittenFiles, CertError> {
        fs::create_dir_all(dir).map_err(|e| CertError::io(dir, e))?;
        let files = WrittenFiles {
            ca_cert: dir.join(CA_CERT_FILE),
            cert: dir.join(CERT_FILE),
            key: dir.join(KEY_FILE),
            ca_bundle: dir.join(CA_BUNDLE_FILE),
        };
        write_atomic(&files.ca_cert, self.ca_cert_pem.as_bytes(), false)?;
        write_atomic(&files.ca_bundle, self.ca_bundle_b64().as_bytes(), false)?;
        // Key before certificate: a reloader polling the pair sees a consistent pair once the
        // certificate lands.
        write_atomic(&files.key, self.key_pem.as_bytes(), true)?;
        write_atomic(&files.cert, self.cert_pem.as_bytes(), false)?;
        Ok(files)
    }
}

/// Writes `contents` to `.NAME.tmp` beside `path`, then renames it over `path`.
///
/// The temporary file is always created anew (`O_CREAT | O_EXCL`): a leftover from an
/// interrupted run is removed first, and creation refuses to follow a symbolic link planted at
/// that name, so the key can never be written through a link to some other file. The rename
/// replaces a link at `path` itself rather than following it.
fn write_atomic(path: &Path, contents: &[u8], private: bool) -> Result<(), CertError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    // `remove_file` removes a symbolic link, never its target.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(CertError::io(&tmp, e)),
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(|e| CertError::io(&tmp, e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| CertError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| CertError::io(path, e))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_planted_at_the_temporary_name_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        fs::create_dir(&out).expect("mkdir");
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious\n").expect("victim");
        std::os::unix::fs::symlink(&victim, out.join(".tls.key.tmp")).expect("symlink");

        write_atomic(&out.join(KEY_FILE), b"PRIVATE KEY\n", true).expect("write");

        assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious\n");
        assert_eq!(
            fs::read_to_string(out.join(KEY_FILE)).expect("key"),
            "PRIVATE KEY\n"
        );
        let key = fs::symlink_metadata(out.join(KEY_FILE)).expect("meta");
        assert!(key.file_type().is_file(), "the key is a file, not a link");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
        assert!(
            fs::symlink_metadata(out.join(".tls.key.tmp")).is_err(),
            "no temporary file is left"
        );
    }

    #[test]
    fn a_leftover_temporary_file_is_replaced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tmp = dir.path().join(".ca.crt.tmp");
        fs::write(&tmp, "stale stale stale").expect("leftover");
        write_atomic(&dir.path().join(CA_CERT_FILE), b"CA", false).expect("write");
        assert_eq!(
            fs::read_to_string(dir.path().join(CA_CERT_FILE)).expect("ca"),
            "CA"
        );
    }
}
