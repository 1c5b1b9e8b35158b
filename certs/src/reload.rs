//! A rustls certificate resolver that follows certificate rotation on disk.
//!
//! Kubernetes updates a mounted Secret by writing the new files into a fresh hidden directory
//! (`..2026_01_01_00_00_00.123`), then atomically renaming a `..data` symlink to point at it;
//! `tls.crt` and `tls.key` are themselves symlinks to `..data/tls.crt` and `..data/tls.key`.
//! The paths the server was given never change, so watching them for modification misses the
//! update. [`ReloadingResolver`] instead re-reads both files through their symlinks every poll
//! and compares the bytes with what it last saw: any way the resolved content changes (symlink
//! swap, rename over, rewrite in place) is noticed within one interval.
//!
//! A change that does not load (half-written file, key not matching the certificate, expired
//! certificate, garbage) is logged and reported, and the previous certificate stays in use.
//! Established TLS connections are not affected by a reload; new handshakes get the new
//! certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::error::{CertError, error_chain};
use crate::expiry::format_unix_utc;
use crate::pem::{CLOCK_SKEW_SECS, LoadedCert, parse_pem_pair};

/// The default interval between two polls of the certificate files.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// What one [`ReloadingResolver::poll`] found.
#[derive(Debug)]
pub enum ReloadOutcome {
    /// The files hold what was last seen (or the same failure as last time).
    Unchanged,
    /// New content loaded and is now served.
    Reloaded {
        /// When clients stop accepting the new chain ([`LoadedCert::not_after`]: the earliest
        /// `notAfter` of the certificate and its intermediates), seconds since the Unix epoch.
        not_after: i64,
    },
    /// New content did not load; the previous certificate is still served.
    Failed(CertError),
}

/// The content last read from disk, to detect changes.
#[derive(Default)]
struct Seen {
    cert: Vec<u8>,
    key: Vec<u8>,
    /// The last read failure reported and the state of the files it was found in (see
    /// [`files_state`]), so a missing file is reported once, not every poll; but a further
    /// change (another `..data` swap) that fails the same way is reported and counted again.
    read_error: Option<(String, u64)>,
    /// True once the expiry of the certificate served has been logged: it is said once, not
    /// every poll, until another certificate is loaded.
    expiry_logged: bool,
    /// When the content seen was refused as not valid yet: the Unix time from which it would
    /// be accepted. Unlike every other refusal this one mends itself, so that content is
    /// tried again then.
    valid_from: Option<i64>,
}

/// A [`ResolvesServerCert`] serving the certificate and key from two PEM files, reloaded when
/// their content changes. Share it as `Arc<ReloadingResolver>` between the rustls
/// `ServerConfig` and the watcher ([`ReloadingResolver::watch`]).
pub struct ReloadingResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<LoadedCert>,
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for ReloadingResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingResolver")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .field("not_after", &self.not_after())
            .finish_non_exhaustive()
    }
}

impl ReloadingResolver {
    /// Loads the certificate chain and key; fails if they do not load (see
    /// [`parse_pem_pair`]).
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, CertError> {
        // Read as every poll reads: a `..data` swap while the webhook starts must not pair the
        // old certificate with the new key and fail the start.
        let (cert, key) = read_pair(cert_path, key_path)?;
        let loaded = parse_pem_pair(
            &cert,
            &key,
            &cert_path.display().to_string(),
            &key_path.display().to_string(),
        )?;
        Ok(ReloadingResolver {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: RwLock::new(loaded),
            seen: Mutex::new(Seen {
                cert,
                key,
                read_error: None,
                expiry_logged: false,
                valid_from: None,
            }),
        })
    }

    /// The certificate currently served.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .certified_key
            .clone()
    }

    /// When clients stop accepting the chain currently served, seconds since the Unix epoch:
    /// the earliest `notAfter` of the certificate and its intermediates
    /// ([`LoadedCert::not_after`]).
    pub fn not_after(&self) -> i64 {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .not_after
    }

    /// The certificate file this resolver reads.
    pub fn cert_path(&self) -> &Path {
        &self.cert_path
    }

    /// The key file this resolver reads.
    pub fn key_path(&self) -> &Path {
        &self.key_path
    }

    /// Re-reads both files (through any symlinks) and, if their content changed since the last
    /// poll, loads it. Blocking file I/O: from async code call it on a blocking thread, as
    /// [`ReloadingResolver::watch`] does. Successes are logged at info (subject, issuer,
    /// serial, expiry), failures at warn; so are a new certificate that expires sooner than
    /// the one it replaces or has another issuer, and, once, the expiry of the certificate
    /// served.
    pub fn poll(&self) -> ReloadOutcome {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        // Said once: otherwise only /readyz (503) and the expiry metric would show it, and
        // every new handshake fails from now on.
        let not_after = self.not_after();
        if not_after <= now && !seen.expiry_logged {
            tracing::warn!(
                cert = %self.cert_path.display(),
                not_after = %format_unix_utc(not_after),
                "the serving certificate has expired (it or an intermediate sent with it): clients \
                 refuse every new connection and /readyz fails until a valid certificate is \
                 installed"
            );
            seen.expiry_logged = true;
        }
        let (cert, key) = match read_pair(&self.cert_path, &self.key_path) {
            Ok(pair) => pair,
            Err(err) => {
                let failure = (
                    err.to_string(),
                    files_state(&[&self.cert_path, &self.key_path]),
                );
                if seen.read_error.as_ref() == Some(&failure) {
                    return ReloadOutcome::Unchanged;
                }
                tracing::warn!(error = %error_chain(&err), "cannot read certificate files; keeping the current certificate");
                seen.read_error = Some(failure);
                return ReloadOutcome::Failed(err);
            }
        };
        seen.read_error = None;
        let due = seen.valid_from.is_some_and(|from| now >= from);
        if cert == seen.cert && key == seen.key && !due {
            return ReloadOutcome::Unchanged;
        }
        let outcome = match parse_pem_pair(
            &cert,
            &key,
            &self.cert_path.display().to_string(),
            &self.key_path.display().to_string(),
        ) {
            Ok(loaded) => {
                let not_after = loaded.not_after;
                let new = loaded.identity.clone();
                let old = std::mem::replace(
                    &mut *self.current.write().unwrap_or_else(PoisonError::into_inner),
                    loaded,
                );
                seen.expiry_logged = false;
                tracing::info!(
                    cert = %self.cert_path.display(),
                    subject = %new.subject,
                    issuer = %new.issuer,
                    issuer_key_id = new.issuer_key_id.as_deref(),
                    serial = %new.serial,
                    not_after = %format_unix_utc(not_after),
                    "serving certificate reloaded"
                );
                // A rotation normally moves the expiry later; earlier usually means an old
                // certificate was put back, or the issuer's validity changed.
                if not_after < old.not_after {
                    tracing::warn!(
                        cert = %self.cert_path.display(),
                        not_after = %format_unix_utc(not_after),
                        previous_not_after = %format_unix_utc(old.not_after),
                        "the new serving certificate expires sooner than the one it replaces"
                    );
                }
                if new.other_issuer(&old.identity) {
                    tracing::warn!(
                        cert = %self.cert_path.display(),
                        issuer = %new.issuer,
                        issuer_key_id = new.issuer_key_id.as_deref(),
                        previous_issuer = %old.identity.issuer,
                        previous_issuer_key_id = old.identity.issuer_key_id.as_deref(),
                        "the new serving certificate has a different issuer: clients that trust \
                         only the previous CA (the webhook configurations' caBundle) will fail \
                         the handshake until their CA bundle is updated"
                    );
                }
                ReloadOutcome::Reloaded { not_after }
            }
            Err(err) => {
                tracing::warn!(error = %error_chain(&err), "new certificate does not load; keeping the current certificate");
                ReloadOutcome::Failed(err)
            }
        };
        // Remember failed content too: it is reported once, and the next change (for example
        // the key landing after the certificate) is tried again.
        seen.valid_from = match &outcome {
            ReloadOutcome::Failed(CertError::NotYetValid { not_before, .. }) => {
                Some(not_before.saturating_sub(CLOCK_SKEW_SECS))
            }
            _ => None,
        };
        seen.cert = cert;
        seen.key = key;
        outcome
    }

    /// Spawns a task on the current Tokio runtime that polls every `interval` and hands each
    /// outcome other than [`ReloadOutcome::Unchanged`] to `on_change` (for metrics). The task
    /// ends by itself once the resolver is dropped; abort the handle to stop it earlier.
    pub fn watch<F>(
        self: &Arc<Self>,
        interval: Duration,
        mut on_change: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: FnMut(&ReloadOutcome) + Send + 'static,
    {
        spawn_poller(
            self,
            interval,
            "certificate",
            ReloadingResolver::poll,
            move |outcome| {
                if !matches!(outcome, ReloadOutcome::Unchanged) {
                    on_change(&outcome);
                }
            },
        )
    }
}

/// Reads the certificate, the key, and the certificate again: Kubernetes swaps a Secret
/// volume's `..data` link between reads, and a pair read across a swap (the old certificate,
/// the new key) would be reported as a mismatch. When the certificate changed under the read,
/// or either path led to another file afterwards than before ([`real_path`]), the pair is
/// read again (three tries; then the last pair is returned and judged as it is).
///
/// The certificate's content alone cannot tell: two swaps within one read (a descheduled
/// thread on a busy machine, or a rollback to the certificate served before) bring back a
/// certificate equal to the first read's beside the other generation's key. The real path
/// can: the kubelet names each generation anew (a timestamp) and removes the old one, so a
/// path that led into the same generation before and after the reads led there throughout.
///
/// The kubelet removes the old generation right after the swap, so a read that resolved
/// `..data` just before it may find its file gone: that is retried too.
fn read_pair(cert_path: &Path, key_path: &Path) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    retry_not_found(|| read_pair_once(cert_path, key_path))
}

fn read_pair_once(cert_path: &Path, key_path: &Path) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| CertError::io(path, e));
    let led_to = || (real_path(cert_path), real_path(key_path));
    for _ in 0..3 {
        let before = led_to();
        let cert = read(cert_path)?;
        let key = read(key_path)?;
        let again = read(cert_path)?;
        if again == cert && led_to() == before {
            return Ok((cert, key));
        }
    }
    let cert = read(cert_path)?;
    let key = read(key_path)?;
    Ok((cert, key))
}

/// The file `path` leads to through its symlinks, or why it leads nowhere: compared before
/// and after a read, so that an error is a value like any other.
fn real_path(path: &Path) -> Result<PathBuf, std::io::ErrorKind> {
    std::fs::canonicalize(path).map_err(|e| e.kind())
}

/// Runs `read` again (up to three tries, 5 ms apart) while it fails with "not found": the
/// kubelet removes a Secret volume's old generation right after swapping `..data`, so a read
/// that resolved `..data` just before the swap may find its file gone.
pub(crate) fn retry_not_found<T>(
    mut read: impl FnMut() -> Result<T, CertError>,
) -> Result<T, CertError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match read() {
            Err(CertError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound && attempt < 3 =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

/// Spawns a task on the current Tokio runtime that calls `poll` on `target` every `interval`
/// on a blocking thread (file I/O) and hands each outcome to `on_outcome`. The task ends by
/// itself once `target` is dropped (it holds only a weak reference); abort the handle to stop
/// it earlier. `what` names the poll in the error logged if a poll panics.
pub(crate) fn spawn_poller<T, O>(
    target: &Arc<T>,
    interval: Duration,
    what: &'static str,
    poll: fn(&T) -> O,
    mut on_outcome: impl FnMut(O) + Send + 'static,
) -> tokio::task::JoinHandle<()>
where
    T: Send + Sync + 'static,
    O: Send + 'static,
{
    let weak: Weak<T> = Arc::downgrade(target);
    let interval = interval.max(Duration::from_millis(10));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let Some(target) = weak.upgrade() else {
                break;
            };
            match tokio::task::spawn_blocking(move || poll(&target)).await {
                Ok(outcome) => on_outcome(outcome),
                Err(err) => tracing::error!(error = %err, "{what} poll task failed"),
            }
        }
    })
}

/// A hash of where `paths` lead and what of them can be read: each symlink's target along the
/// way, the real directory the last one is in (a Secret volume's `..data` swap changes it),
/// and the content or error of each file. Two read failures with the same message in different
/// states are two failed changes.
pub(crate) fn files_state(paths: &[&Path]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for path in paths {
        let mut at = path.to_path_buf();
        // 40: the kernel's own limit on links followed in one lookup.
        for _ in 0..40 {
            let Ok(target) = std::fs::read_link(&at) else {
                break;
            };
            target.hash(&mut hasher);
            at = match at.parent() {
                Some(dir) => dir.join(&target),
                None => target,
            };
        }
        let dir = at
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        match std::fs::canonicalize(dir) {
            Ok(real) => real.hash(&mut hasher),
            Err(err) => err.kind().hash(&mut hasher),
        }
        match std::fs::read(path) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(err) => err.kind().hash(&mut hasher),
        }
    }
    hasher.finish()
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}
