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

fn write_atomic(path: &Path, contents: &[u8], private: bool) -> Result<(), CertError> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{file_name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&tmp).map_err(|e| CertError::io(&tmp, e))?;
    // `mode` applies only on creation; make sure a leftover temporary file is private too.
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(|e| CertError::io(&tmp, e))?;
    }
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| CertError::io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| CertError::io(path, e))
}
