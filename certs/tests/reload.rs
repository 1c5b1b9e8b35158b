//! Hot reload as Kubernetes performs it: a Secret volume whose `..data` symlink is swapped
//! atomically to a new timestamped directory, the file paths themselves never changing.

#![cfg(unix)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kspy_certs::{GeneratedCerts, ReloadOutcome, ReloadingResolver, generate};

const DAY: Duration = Duration::from_secs(86_400);

/// A directory laid out like a kubelet-managed Secret volume.
struct SecretVolume {
    root: PathBuf,
    generation: u32,
}

impl SecretVolume {
    /// `root/..2026_01_01_00_00_00.0/{tls.crt,tls.key}`, `root/..data -> ..2026…0`,
    /// `root/tls.crt -> ..data/tls.crt`, `root/tls.key -> ..data/tls.key`.
    fn new(root: &Path, cert: &[u8], key: &[u8]) -> Self {
        let mut volume = SecretVolume {
            root: root.to_owned(),
            generation: 0,
        };
        let dir = volume.write_generation(cert, key);
        symlink(&dir, root.join("..data")).expect("..data");
        symlink("..data/tls.crt", root.join("tls.crt")).expect("tls.crt");
        symlink("..data/tls.key", root.join("tls.key")).expect("tls.key");
        volume
    }

    fn write_generation(&mut self, cert: &[u8], key: &[u8]) -> String {
        self.generation += 1;
        let name = format!("..2026_01_01_00_00_00.{}", self.generation);
        let dir = self.root.join(&name);
        std::fs::create_dir(&dir).expect("generation dir");
        std::fs::write(dir.join("tls.crt"), cert).expect("crt");
        std::fs::write(dir.join("tls.key"), key).expect("key");
        name
    }

    /// What kubelet's atomic writer does: new directory, temporary symlink, rename over
    /// `..data`, remove the old directory.
    fn swap(&mut self, cert: &[u8], key: &[u8]) {
        let old = std::fs::read_link(self.root.join("..data")).expect("read ..data");
        let new = self.write_generation(cert, key);
        let tmp = self.root.join("..data_tmp");
        symlink(&new, &tmp).expect("tmp link");
        std::fs::rename(&tmp, self.root.join("..data")).expect("atomic rename");
        std::fs::remove_dir_all(self.root.join(old)).expect("remove old generation");
    }

    /// A swap to a generation that holds the certificate but no key (a broken Secret).
    fn swap_without_key(&mut self, cert: &[u8]) {
        self.swap(cert, b"");
        std::fs::remove_file(self.root.join("..data/tls.key")).expect("remove the key");
    }

    fn cert(&self) -> PathBuf {
        self.root.join("tls.crt")
    }

    fn key(&self) -> PathBuf {
        self.root.join("tls.key")
    }
}

/// A Secret volume under `root` holding `certs`, and a resolver serving from it.
fn serving(root: &Path, certs: &GeneratedCerts) -> (SecretVolume, ReloadingResolver) {
    let volume = SecretVolume::new(root, certs.cert_pem.as_bytes(), certs.key_pem.as_bytes());
    let resolver = ReloadingResolver::load(&volume.cert(), &volume.key()).expect("load");
    (volume, resolver)
}

/// What `f` logs, as text lines without colours.
fn logs_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buffer = Buffer::default();
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let value = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8(buffer.0.lock().expect("log").clone()).expect("UTF-8");
    (value, text)
}

/// Runs `step` over and over while another thread swaps `volume` between the two pairs as
/// fast as the kubelet could (every millisecond), until `step` says it has seen enough and
/// there were ten swaps at least; returns the number of swaps. Counted, not timed: a busy
/// machine runs fewer steps and swaps in a second (once, 8 polls that saw a change in 1.5 s),
/// but not fewer in all.
fn while_swapping(
    mut volume: SecretVolume,
    pairs: [&GeneratedCerts; 2],
    mut step: impl FnMut() -> bool,
) -> usize {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let swaps = Arc::new(AtomicUsize::new(0));
    let flipper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let pairs = pairs.map(|p| (p.cert_pem.clone(), p.key_pem.clone()));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let (cert, key) = &pairs[(swaps.load(Ordering::Relaxed) + 1) % 2];
                volume.swap(cert.as_bytes(), key.as_bytes());
                swaps.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    // Only against a hang (a resolver that never sees a swap): the counts decide the end.
    let hung = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let enough = step();
        if enough && swaps.load(Ordering::Relaxed) >= 10 {
            break;
        }
        if std::time::Instant::now() > hung {
            stop.store(true, Ordering::Relaxed);
            panic!(
                "not enough steps within 120 s, over {} swaps",
                swaps.load(Ordering::Relaxed)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().expect("flipper");
    swaps.load(Ordering::Relaxed)
}

fn pair() -> GeneratedCerts {
    generate("kspy-webhook", "kspy", DAY).expect("generate")
}

fn served_der(resolver: &ReloadingResolver) -> Vec<u8> {
    resolver.current().cert[0].as_ref().to_vec()
}

fn der_of(certs: &GeneratedCerts) -> Vec<u8> {
    kspy_certs::parse_certs(certs.cert_pem.as_bytes(), "crt").expect("parse")[0]
        .as_ref()
        .to_vec()
}

#[test]
fn symlink_swap_is_picked_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pair();
    let (mut volume, resolver) = serving(dir.path(), &first);
    assert_eq!(served_der(&resolver), der_of(&first));
    assert!(matches!(resolver.poll(), ReloadOutcome::Unchanged));

    let second = pair();
    volume.swap(second.cert_pem.as_bytes(), second.key_pem.as_bytes());
    // The file paths' own metadata did not change: the symlinks are the same inodes.
    let (outcome, logged) = logs_of(|| resolver.poll());
    // RFC 3339 as /readyz and the errors say it, not unix seconds.
    let expiry = kspy_certs::format_unix_utc(second.not_after_unix());
    assert!(logged.contains(&format!("not_after={expiry}")), "{logged}");
    match outcome {
        ReloadOutcome::Reloaded { not_after } => assert_eq!(not_after, second.not_after_unix()),
        other => panic!("expected a reload, got {other:?}"),
    }
    assert_eq!(served_der(&resolver), der_of(&second));
    assert!(matches!(resolver.poll(), ReloadOutcome::Unchanged));
}

#[test]
fn a_bad_new_certificate_keeps_the_old_one_until_a_good_one_arrives() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pair();
    let (mut volume, resolver) = serving(dir.path(), &first);

    // Garbage.
    volume.swap(b"not a certificate", first.key_pem.as_bytes());
    assert!(matches!(resolver.poll(), ReloadOutcome::Failed(_)));
    assert_eq!(served_der(&resolver), der_of(&first));
    // Reported once, not at every poll.
    assert!(matches!(resolver.poll(), ReloadOutcome::Unchanged));

    // A certificate with someone else's key.
    let second = pair();
    let third = pair();
    volume.swap(second.cert_pem.as_bytes(), third.key_pem.as_bytes());
    match resolver.poll() {
        ReloadOutcome::Failed(err) => assert!(err.to_string().contains("tls.key"), "{err}"),
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(served_der(&resolver), der_of(&first));

    // The right key lands: reload.
    volume.swap(second.cert_pem.as_bytes(), second.key_pem.as_bytes());
    assert!(matches!(resolver.poll(), ReloadOutcome::Reloaded { .. }));
    assert_eq!(served_der(&resolver), der_of(&second));
}

#[test]
fn a_vanished_file_is_reported_once_and_the_certificate_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pair();
    let volume = SecretVolume::new(
        dir.path(),
        first.cert_pem.as_bytes(),
        first.key_pem.as_bytes(),
    );
    let resolver = ReloadingResolver::load(&volume.cert(), &volume.key()).expect("load");
    std::fs::remove_file(volume.key()).expect("rm");
    assert!(matches!(resolver.poll(), ReloadOutcome::Failed(_)));
    assert!(matches!(resolver.poll(), ReloadOutcome::Unchanged));
    assert_eq!(served_der(&resolver), der_of(&first));
}

#[test]
fn rewriting_plain_files_in_place_is_picked_up_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pair();
    let files = first.write_to(dir.path()).expect("write");
    let resolver = ReloadingResolver::load(&files.cert, &files.key).expect("load");
    let second = pair();
    second.write_to(dir.path()).expect("rewrite");
    assert!(matches!(resolver.poll(), ReloadOutcome::Reloaded { .. }));
    assert_eq!(served_der(&resolver), der_of(&second));
}

#[tokio::test]
async fn the_watcher_reports_changes_and_stops_with_the_resolver() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pair();
    let mut volume = SecretVolume::new(
        dir.path(),
        first.cert_pem.as_bytes(),
        first.key_pem.as_bytes(),
    );
    let resolver = Arc::new(ReloadingResolver::load(&volume.cert(), &volume.key()).expect("load"));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let handle = resolver.watch(Duration::from_millis(20), move |outcome| {
        let label = match outcome {
            ReloadOutcome::Reloaded { .. } => "reloaded",
            ReloadOutcome::Failed(_) => "failed",
            ReloadOutcome::Unchanged => "unchanged",
        };
        sink.lock().expect("lock").push(label.to_owned());
    });

    let second = pair();
    volume.swap(second.cert_pem.as_bytes(), second.key_pem.as_bytes());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while served_der(&resolver) != der_of(&second) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no reload within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    volume.swap(b"junk", b"junk");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.lock().expect("lock").len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no failure report within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(*seen.lock().expect("lock"), ["reloaded", "failed"]);
    assert_eq!(served_der(&resolver), der_of(&second));

    drop(resolver);
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("watcher ends once the resolver is dropped")
        .expect("watcher did not panic");
}

/// Kubernetes may swap `..data` between the read of the certificate and the read of the key.
/// A pair read across a swap (the old certificate, the new key) must not count as a broken
/// certificate: that is a false alarm (a warning, a failed-reload count) on every rotation.
#[test]
fn a_swap_between_the_two_reads_is_not_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, second) = (pair(), pair());
    let (volume, resolver) = serving(dir.path(), &first);
    let (mut reloads, mut failures) = (0usize, Vec::new());
    let swaps = while_swapping(volume, [&first, &second], || {
        match resolver.poll() {
            ReloadOutcome::Reloaded { .. } => reloads += 1,
            ReloadOutcome::Failed(err) => failures.push(err.to_string()),
            ReloadOutcome::Unchanged => {}
        }
        reloads + failures.len() >= 100
    });
    assert!(reloads >= 10, "{reloads} reloads over {swaps} swaps");
    // Read across a swap, a third of these polls failed; two swaps within one read failed
    // too, until the read compared where the paths led (`two_swaps_during_one_read_…`). Only
    // a swap during each of the three tries can still pair an old key with a new certificate:
    // rare even here, where the volume is swapped every millisecond, and retried at the next
    // poll in service.
    assert!(
        failures.len() * 100 <= reloads + failures.len(),
        "{} of {} polls that saw a change failed: {:?}",
        failures.len(),
        reloads + failures.len(),
        &failures[..failures.len().min(3)]
    );
}

/// The same at start: a webhook starting while the Secret is updated (a rollout right after a
/// renewal) read the certificate and the key once each, and a swap between the two reads
/// failed the start with "not the private key of tls.crt" (the pod then restarted).
#[test]
fn a_swap_while_loading_does_not_fail_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, second) = (pair(), pair());
    let volume = SecretVolume::new(
        dir.path(),
        first.cert_pem.as_bytes(),
        first.key_pem.as_bytes(),
    );
    let (cert, key) = (volume.cert(), volume.key());
    let (mut loads, mut failures) = (0usize, Vec::new());
    let swaps = while_swapping(volume, [&first, &second], || {
        match ReloadingResolver::load(&cert, &key) {
            Ok(_) => loads += 1,
            Err(err) => failures.push(err.to_string()),
        }
        loads + failures.len() >= 500
    });
    assert!(swaps >= 10, "{swaps} swaps");
    // As for polls, only a swap during each of the three tries can still pair an old key with
    // a new certificate; that is rare (none in 2 500 loads here, where reading each file once
    // failed three to ten in a thousand).
    assert!(
        failures.len() * 1000 <= loads + failures.len(),
        "{} of {} loads failed: {:?}",
        failures.len(),
        loads + failures.len(),
        &failures[..failures.len().min(3)]
    );
}

/// Two swaps within one read, from the first pair to the second and back (a descheduled
/// reader on a busy machine; a rollback): the certificate read again equals the one read
/// first, yet the key came from another generation. Made deterministic with a key that is a
/// FIFO: the poll blocks in its read, and the swaps happen exactly then.
#[test]
fn two_swaps_during_one_read_are_not_a_failure() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (first, second) = (pair(), pair());
    let (mut volume, resolver) = serving(dir.path(), &first);
    // The second pair, its key a FIFO that the poll will block in.
    volume.swap(second.cert_pem.as_bytes(), b"");
    let fifo = std::fs::canonicalize(dir.path().join("..data"))
        .expect("..data")
        .join("tls.key");
    std::fs::remove_file(&fifo).expect("remove the key");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", fifo.display());

    let swapper = {
        let (first, second) = (first.clone(), second.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            // Returns once the poll opened the key: it has read the second certificate.
            let mut key = std::fs::OpenOptions::new()
                .write(true)
                .open(&fifo)
                .expect("open the FIFO");
            volume.swap(first.cert_pem.as_bytes(), first.key_pem.as_bytes());
            volume.swap(second.cert_pem.as_bytes(), second.key_pem.as_bytes());
            // The first pair's key: what a read through the first swap's generation got.
            key.write_all(first.key_pem.as_bytes())
                .expect("write the key");
        })
    };
    let outcome = resolver.poll();
    assert!(
        matches!(outcome, ReloadOutcome::Reloaded { .. }),
        "the second pair, read again: {outcome:?}"
    );
    swapper.join().expect("swapper");
    assert_eq!(served_der(&resolver), der_of(&second));
}

/// A certificate refused as not valid yet is tried again once it is: unlike every other
/// refusal, time mends it, and its content does not change (a renewed certificate issued by a
/// clock a few minutes ahead would otherwise never be served).
#[test]
fn a_certificate_not_valid_yet_is_taken_once_it_is() {
    use rcgen::{CertificateParams, KeyPair};
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pair();
    let (mut volume, resolver) = serving(dir.path(), &first);

    // Valid from 2 s past the 5 minutes of clock skew allowed.
    let key = KeyPair::generate().expect("key");
    let mut params =
        CertificateParams::new(vec!["kspy-webhook.kspy.svc".to_owned()]).expect("params");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now + time::Duration::seconds(5 * 60 + 2);
    params.not_after = now + time::Duration::days(30);
    let cert = params.self_signed(&key).expect("cert");
    volume.swap(cert.pem().as_bytes(), key.serialize_pem().as_bytes());
    match resolver.poll() {
        ReloadOutcome::Failed(err) => {
            assert!(err.to_string().contains("not valid before"), "{err}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(served_der(&resolver), der_of(&first));
    assert!(
        matches!(resolver.poll(), ReloadOutcome::Unchanged),
        "reported once"
    );

    std::thread::sleep(Duration::from_millis(3200));
    assert!(
        matches!(resolver.poll(), ReloadOutcome::Reloaded { .. }),
        "taken once valid"
    );
    assert_eq!(served_der(&resolver), cert.der().as_ref().to_vec());
}

/// Each failed change is reported (and so counted by the webhook), even when it fails with the
/// same message as the one before: only the same failure seen again is left unsaid.
#[test]
fn two_broken_swaps_failing_alike_are_two_failures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pair();
    let (mut volume, resolver) = serving(dir.path(), &first);
    volume.swap_without_key(pair().cert_pem.as_bytes());
    assert!(matches!(resolver.poll(), ReloadOutcome::Failed(_)));
    assert!(matches!(resolver.poll(), ReloadOutcome::Unchanged));
    volume.swap_without_key(pair().cert_pem.as_bytes());
    match resolver.poll() {
        ReloadOutcome::Failed(err) => assert!(err.to_string().contains("tls.key"), "{err}"),
        other => panic!("the second broken swap is a failure too, got {other:?}"),
    }
    assert!(matches!(resolver.poll(), ReloadOutcome::Unchanged));
    assert_eq!(served_der(&resolver), der_of(&first));
}

/// A reload says what is served now; a shorter life or another CA is a warning.
#[test]
fn a_reload_logs_the_certificate_and_warns_about_a_shorter_life_or_another_issuer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = pair();
    let (mut volume, resolver) = serving(dir.path(), &first);

    // Another CA (generate makes a new one, with the same name), and an hour to live.
    let shorter = generate("kspy-webhook", "kspy", Duration::from_secs(3600)).expect("generate");
    volume.swap(shorter.cert_pem.as_bytes(), shorter.key_pem.as_bytes());
    let (outcome, logged) = logs_of(|| resolver.poll());
    assert!(
        matches!(outcome, ReloadOutcome::Reloaded { .. }),
        "{outcome:?}"
    );
    let reloaded = logged
        .lines()
        .find(|l| l.contains("serving certificate reloaded"))
        .unwrap_or_else(|| panic!("{logged}"));
    for field in [
        "subject=O=kspy, CN=kspy-webhook.kspy.svc",
        "issuer=O=kspy, CN=kspy CA for kspy-webhook.kspy",
        "serial=",
        "issuer_key_id=",
    ] {
        assert!(reloaded.contains(field), "{field}: {reloaded}");
    }
    assert!(
        logged.contains("expires sooner than the one it replaces"),
        "{logged}"
    );
    assert!(logged.contains("has a different issuer"), "{logged}");

    // A longer life: no warning about it.
    let longer = generate("kspy-webhook", "kspy", 2 * DAY).expect("generate");
    volume.swap(longer.cert_pem.as_bytes(), longer.key_pem.as_bytes());
    let (_, logged) = logs_of(|| resolver.poll());
    assert!(logged.contains("serving certificate reloaded"), "{logged}");
    assert!(!logged.contains("expires sooner"), "{logged}");
}

/// The moment the served certificate expires is logged once (before, only /readyz said so).
#[test]
fn the_expiry_of_the_served_certificate_is_logged_once() {
    use rcgen::{CertificateParams, KeyPair};
    let dir = tempfile::tempdir().expect("tempdir");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::seconds(2);
    let cert = params.self_signed(&key).expect("cert");
    let volume = SecretVolume::new(
        dir.path(),
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
    );
    let resolver = ReloadingResolver::load(&volume.cert(), &volume.key()).expect("load");
    let (_, before) = logs_of(|| resolver.poll());
    assert!(!before.contains("expired"), "{before}");
    std::thread::sleep(Duration::from_millis(3100));
    let (_, logged) = logs_of(|| {
        resolver.poll();
        resolver.poll();
    });
    assert_eq!(
        logged
            .matches("the serving certificate has expired")
            .count(),
        1,
        "{logged}"
    );
    assert!(logged.contains(" WARN "), "{logged}");
}
