//! Policy reloads under load: reviews on keep-alive HTTP/1.1 and HTTP/2 connections while the
//! policy directory is swapped, kubelet-style (`..data`, keys added and deleted), between sets
//! that grant more, grant nothing, and do not load. Every answer is one whole set's, never an allow from a set whose
//! replacement has been reported, none fails, the counts add up, and the memory does not grow
//! with the number of reloads. Alone in its binary: it reads the process's RSS.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{POLICIES, POLICIES_WITH_SYS_ADMIN, fixture, response_of};
use kspy_webhook::client::{HttpVersion, HttpsConnection};

/// Grants nothing: only the Warn-mode policy of [`POLICIES`], its second document.
fn no_grant() -> String {
    POLICIES.split("---").nth(1).unwrap_or_default().to_owned()
}

/// CEL that does not compile: the load fails, the set in force stays.
const BROKEN: &str = "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata:\n  name: broken\nspec:\n  validations:\n    - expression: \"container.image.(\"\n";

/// The sets, by what each answers to the two fixtures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Set {
    /// [`POLICIES`]: SYS_PTRACE granted with a warning, SYS_ADMIN denied.
    Sre,
    /// [`POLICIES_WITH_SYS_ADMIN`]: both granted, no warning.
    SysAdmin,
    /// [`no_grant`]: both denied.
    NoGrant,
}

impl Set {
    /// The ConfigMap's keys: the grant and the warning in files of their own, so that a set
    /// without one deletes a key.
    fn files(self) -> Vec<(&'static str, String)> {
        let sre_grant = POLICIES.split("---").next().unwrap_or_default().to_owned();
        match self {
            Set::Sre => vec![("grant.yaml", sre_grant), ("warn.yaml", no_grant())],
            Set::SysAdmin => vec![("grant.yaml", POLICIES_WITH_SYS_ADMIN.to_owned())],
            Set::NoGrant => vec![("warn.yaml", no_grant())],
        }
    }

    /// What this set answers: allowed, and with the pinning warning.
    fn answers(self, sys_admin: bool) -> (bool, bool) {
        match (self, sys_admin) {
            (Set::Sre, false) => (true, true),
            (Set::Sre, true) => (false, true),
            (Set::SysAdmin, _) => (true, false),
            (Set::NoGrant, _) => (false, true),
        }
    }
}

/// A ConfigMap volume: `..<generation>/<key>`, `..data -> ..<generation>`, and
/// `<key> -> ..data/<key>` for each key.
struct ConfigMap {
    dir: PathBuf,
    generation: u32,
    keys: Vec<String>,
}

impl ConfigMap {
    fn new(root: &Path, files: &[(&str, String)]) -> ConfigMap {
        let dir = root.join("policies");
        std::fs::create_dir_all(&dir).expect("dir");
        let mut map = ConfigMap {
            dir,
            generation: 0,
            keys: Vec::new(),
        };
        let first = map.write_generation(files);
        symlink(&first, map.dir.join("..data")).expect("..data");
        map.link_new_keys(files);
        map
    }

    fn write_generation(&mut self, files: &[(&str, String)]) -> String {
        self.generation += 1;
        let name = format!("..2026_11_28_{:06}", self.generation);
        std::fs::create_dir(self.dir.join(&name)).expect("generation");
        for (key, text) in files {
            std::fs::write(self.dir.join(&name).join(key), text).expect("write");
        }
        name
    }

    fn link_new_keys(&mut self, files: &[(&str, String)]) {
        for (key, _) in files {
            if !self.keys.iter().any(|k| k == key) {
                symlink(format!("..data/{key}"), self.dir.join(key)).expect("link");
                self.keys.push((*key).to_owned());
            }
        }
    }

    /// The kubelet's atomic writer: the new generation, `..data` renamed onto it, the old
    /// generation removed, then, `linger` later, the links of added keys made and those of
    /// deleted keys removed.
    fn swap(&mut self, files: &[(&str, String)], linger: Duration) {
        let old = std::fs::read_link(self.dir.join("..data")).expect("..data");
        let new = self.write_generation(files);
        symlink(&new, self.dir.join("..data_tmp")).expect("tmp");
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).expect("swap");
        std::fs::remove_dir_all(self.dir.join(old)).expect("remove old");
        std::thread::sleep(linger);
        self.link_new_keys(files);
        let gone: Vec<String> = self
            .keys
            .iter()
            .filter(|k| !files.iter().any(|(f, _)| f == k))
            .cloned()
            .collect();
        for key in gone {
            std::fs::remove_file(self.dir.join(&key)).expect("unlink");
            self.keys.retain(|k| *k != key);
        }
    }
}

/// The process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// The sum of a counter's series in the metrics text.
fn sum_of(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_under_reload_are_each_from_one_whole_set_and_none_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut map = ConfigMap::new(tmp.path(), &Set::Sre.files());
    let dir = map.dir.clone();
    let h = common::Harness::start_with(POLICIES, move |c| {
        c.policies_dir = dir;
        c.reload_interval = Duration::from_millis(10);
    })
    .await;
    let addr = h.server.addr;

    // `sets[e]` is in force from when the controller bumps `epoch` to `e`; the one after may
    // be in force already (swapped, its reload not seen yet).
    let sets = Arc::new(Mutex::new(vec![Set::Sre]));
    let epoch = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for worker in 0usize..6 {
        let (sets, epoch, stop, sent, failures) = (
            sets.clone(),
            epoch.clone(),
            stop.clone(),
            sent.clone(),
            failures.clone(),
        );
        let tls = if worker.is_multiple_of(2) {
            h.tls.clone()
        } else {
            kspy_webhook::tls::client_config(common::ca_roots(&[&h.certs.ca_cert_pem]), &[b"h2"])
                .expect("h2 config")
        };
        let version = if worker.is_multiple_of(2) {
            HttpVersion::Http1
        } else {
            HttpVersion::Http2
        };
        workers.push(tokio::spawn(async move {
            let mut conn = HttpsConnection::connect(addr, "localhost", &tls, version)
                .await
                .expect("connect");
            let mut n = 0usize;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let sys_admin = (n + worker).is_multiple_of(2);
                let name = if sys_admin {
                    "attach-denied.json"
                } else {
                    "attach-allowed.json"
                };
                let before = epoch.load(Ordering::SeqCst);
                let result = conn.post_json("/validate", fixture(name)).await;
                let after = epoch.load(Ordering::SeqCst);
                sent.fetch_add(1, Ordering::SeqCst);
                let resp = match result {
                    Ok(resp) if resp.status() == 200 => resp,
                    Ok(resp) => {
                        failures
                            .lock()
                            .expect("lock")
                            .push(format!("{name}: status {}", resp.status()));
                        continue;
                    }
                    Err(e) => {
                        failures.lock().expect("lock").push(format!("{name}: {e}"));
                        return;
                    }
                };
                let r = response_of(resp.body());
                let got = (
                    r["allowed"] == true,
                    r["warnings"].as_array().is_some_and(|w| {
                        w.iter().any(|w| {
                            w.as_str()
                                .is_some_and(|w| w.contains("should be pinned by digest"))
                        })
                    }),
                );
                let sets = sets.lock().expect("lock").clone();
                let window = &sets[before..sets.len().min(after + 2)];
                if !window.iter().any(|s| s.answers(sys_admin) == got) {
                    failures.lock().expect("lock").push(format!(
                        "{name}: allowed and warned {got:?}, from none of {window:?} (epochs {before}..={after}): {r}"
                    ));
                }
            }
        }));
    }

    // Good reloads and failures exactly: the key links come and go up to three polls after
    // the swap (a kubelet that stalls), and a set read through them in between (the changed
    // keys without the added ones) would be one reload too many, or, with the broken key not
    // linked yet, a good reload where a failure is due.
    let reloads = |good: u64, bad: u64| {
        let metrics = h.server.metrics().clone();
        async move {
            let what = format!(
                "reload {good} seen, and {bad} failures (a reload past {good}: a set the \
                 ConfigMap never held, read mid-update, was loaded)"
            );
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let (g, b) = metrics.policy_reloads();
                if g == good && b == bad {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{what}: not within 10 s; {g} reloads seen, {b} failures"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let order = [
        Set::SysAdmin,
        Set::NoGrant,
        Set::Sre,
        Set::NoGrant,
        Set::SysAdmin,
        Set::Sre,
    ];
    let (mut good, mut bad) = (0u64, 0u64);
    let mut rss_after_warm_up = 0;
    let rounds = 100;
    for round in 0..rounds {
        if round == 10 {
            rss_after_warm_up = rss_kib();
        }
        let next = order[round % order.len()];
        let linger = Duration::from_millis(10 * (round % 4) as u64);
        // Announced before the swap: the next set may judge as soon as it is written.
        sets.lock().expect("lock").push(next);
        map.swap(&next.files(), linger);
        good += 1;
        reloads(good, bad).await;
        epoch.fetch_add(1, Ordering::SeqCst);
        if round.is_multiple_of(3) {
            let mut broken = next.files();
            broken.push(("broken.yaml", BROKEN.to_owned()));
            bad += 1;
            map.swap(&broken, linger);
            reloads(good, bad).await;
            // Back to the set in force, which is no change to the engine but a reload.
            sets.lock().expect("lock").push(next);
            map.swap(&next.files(), linger);
            good += 1;
            reloads(good, bad).await;
            epoch.fetch_add(1, Ordering::SeqCst);
        }
    }
    let rss_at_end = rss_kib();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.expect("worker");
    }
    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "{} failures: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let sent = sent.load(Ordering::SeqCst) as u64;
    assert!(sent > 200, "too little traffic: {sent}");
    let text = h.server.metrics().render();
    assert_eq!(sum_of(&text, "kspy_reviews_total"), sent, "{text}");
    assert_eq!(sum_of(&text, "kspy_bad_requests_total"), 0, "{text}");
    assert_eq!(sum_of(&text, "kspy_internal_errors_total"), 0, "{text}");
    assert!(text.contains("kspy_reviews_in_flight 0\n"), "{text}");
    let (g, b) = h.server.metrics().policy_reloads();
    assert!(g == good && b == bad, "reloads {g} good, {b} failed");
    // Thirty-odd reloads after the warm-up: each set is a few hundred KiB at most, and any
    // engine kept past its reviews would add up.
    let grown = rss_at_end.saturating_sub(rss_after_warm_up);
    eprintln!(
        "rss {rss_after_warm_up} KiB -> {rss_at_end} KiB after {good} reloads, {sent} reviews"
    );
    assert!(
        grown < 16 * 1024,
        "RSS grew by {grown} KiB over the reloads"
    );
    h.server.shutdown().await;
}
