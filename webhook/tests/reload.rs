//! Hot reload under traffic: the serving certificate rotated through a kubelet-style `..data`
//! symlink swap, and the policy directory changed (good and broken).

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::{
    POLICIES, POLICIES_WITH_SYS_ADMIN, client_tls, eventually, fixture, loopback_certs, response_of,
};
use kspy_certs::GeneratedCerts;
use kspy_webhook::client::{HttpVersion, HttpsConnection};
use kspy_webhook::{ServerConfig, TlsFiles};

/// A directory laid out like a kubelet-managed Secret volume.
struct SecretVolume {
    root: PathBuf,
    generation: u32,
}

impl SecretVolume {
    fn new(root: &Path, certs: &GeneratedCerts) -> Self {
        std::fs::create_dir_all(root).expect("root");
        let mut v = SecretVolume {
            root: root.to_owned(),
            generation: 0,
        };
        let dir = v.write_generation(certs.cert_pem.as_bytes(), certs.key_pem.as_bytes());
        symlink(&dir, root.join("..data")).expect("..data");
        symlink("..data/tls.crt", root.join("tls.crt")).expect("tls.crt");
        symlink("..data/tls.key", root.join("tls.key")).expect("tls.key");
        v
    }

    fn write_generation(&mut self, cert: &[u8], key: &[u8]) -> String {
        self.generation += 1;
        let name = format!("..2026_11_26_10_00_00.{}", self.generation);
        std::fs::create_dir(self.root.join(&name)).expect("generation");
        std::fs::write(self.root.join(&name).join("tls.crt"), cert).expect("crt");
        std::fs::write(self.root.join(&name).join("tls.key"), key).expect("key");
        name
    }

    /// kubelet's atomic writer: new directory, temporary link, rename over `..data`, remove the
    /// old directory.
    fn swap(&mut self, cert: &[u8], key: &[u8]) {
        let old = std::fs::read_link(self.root.join("..data")).expect("read ..data");
        let new = self.write_generation(cert, key);
        symlink(&new, self.root.join("..data_tmp")).expect("tmp link");
        std::fs::rename(self.root.join("..data_tmp"), self.root.join("..data")).expect("rename");
        std::fs::remove_dir_all(self.root.join(old)).expect("remove old");
    }

    fn files(&self) -> TlsFiles {
        TlsFiles {
            cert: self.root.join("tls.crt"),
            key: self.root.join("tls.key"),
        }
    }
}

fn der(certs: &GeneratedCerts) -> Vec<u8> {
    kspy_certs::parse_certs(certs.cert_pem.as_bytes(), "crt").expect("parse")[0]
        .as_ref()
        .to_vec()
}

fn policy_dir(root: &Path, yaml: &str) -> PathBuf {
    let dir = root.join("policies");
    std::fs::create_dir_all(&dir).expect("policies");
    std::fs::write(dir.join("policies.yaml"), yaml).expect("write");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_rotation_under_traffic_drops_nothing_and_serves_the_new_cert() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let first = loopback_certs();
    let second = loopback_certs();
    let mut volume = SecretVolume::new(&tmp.path().join("tls"), &first);
    let mut config =
        ServerConfig::new(policy_dir(tmp.path(), POLICIES), volume.files()).on_loopback();
    config.reload_interval = Duration::from_millis(50);
    let server = kspy_webhook::start(config).await.expect("start");
    let addr = server.addr;
    // The caBundle during a rotation holds both CAs.
    let tls = client_tls(&[&first.ca_cert_pem, &second.ca_cert_pem]);

    // A keep-alive connection opened before the rotation.
    let mut old_conn = HttpsConnection::connect(addr, "localhost", &tls, HttpVersion::Http1)
        .await
        .expect("connect");
    assert_eq!(old_conn.peer_certificate(), Some(der(&first).as_slice()));

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for worker in 0..4 {
        let (stop, ok, failures, tls) = (stop.clone(), ok.clone(), failures.clone(), tls.clone());
        workers.push(tokio::spawn(async move {
            let version = if worker % 2 == 0 {
                HttpVersion::Http1
            } else {
                HttpVersion::Http2
            };
            let mut keep = HttpsConnection::connect(addr, "localhost", &tls, version)
                .await
                .ok();
            while !stop.load(Ordering::Relaxed) {
                // Alternate a fresh connection (new handshake) and the kept one.
                let result = match (worker < 2, keep.as_mut()) {
                    (false, Some(conn)) => {
                        conn.post_json("/validate", fixture("attach-allowed.json"))
                            .await
                    }
                    _ => match HttpsConnection::connect(addr, "localhost", &tls, version).await {
                        Ok(mut conn) => {
                            conn.post_json("/validate", fixture("attach-allowed.json"))
                                .await
                        }
                        Err(e) => Err(e),
                    },
                };
                match result {
                    Ok(resp)
                        if resp.status() == 200 && response_of(resp.body())["allowed"] == true =>
                    {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => failures
                        .lock()
                        .expect("lock")
                        .push(format!("status {}", resp.status())),
                    Err(e) => failures.lock().expect("lock").push(e.to_string()),
                }
            }
        }));
    }

    // Traffic under way before the rotation: counted, not waited for by the clock.
    let traffic = |n: u64, what: &'static str| {
        let (ok, failures) = (ok.clone(), failures.clone());
        eventually(what, Duration::from_secs(30), move || {
            let (ok, failures) = (ok.clone(), failures.clone());
            async move {
                let failed = failures.lock().expect("lock").clone();
                assert!(failed.is_empty(), "failures: {failed:?}");
                ok.load(Ordering::Relaxed) >= n
            }
        })
    };
    traffic(20, "twenty reviews before the rotation").await;
    let before = ok.load(Ordering::Relaxed);
    volume.swap(second.cert_pem.as_bytes(), second.key_pem.as_bytes());
    let new_der = der(&second);
    // Full handshakes only: a resumed TLS session carries no certificate.
    let mut fresh = tls.clone();
    fresh.resumption = rustls::client::Resumption::disabled();
    eventually(
        "new handshakes get the new certificate",
        Duration::from_secs(5),
        || {
            let tls = fresh.clone();
            let want = new_der.clone();
            async move {
                HttpsConnection::connect(addr, "localhost", &tls, HttpVersion::Http1)
                    .await
                    .is_ok_and(|c| c.peer_certificate() == Some(want.as_slice()))
            }
        },
    )
    .await;
    traffic(before + 20, "twenty reviews across the rotation").await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("worker");
    }
    let failures = failures.lock().expect("lock").clone();
    assert!(
        failures.is_empty(),
        "{} failures: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    let total = ok.load(Ordering::Relaxed);
    assert!(
        before >= 20 && total >= before + 20,
        "too little traffic: {before} then {total}"
    );

    // The connection opened before the rotation is still up and served.
    let resp = old_conn
        .post_json("/validate", fixture("attach-allowed.json"))
        .await
        .expect("old connection still works");
    assert_eq!(resp.status(), 200);
    assert_eq!(server.metrics().cert_reloads(), (1, 0));
    let (_, text) = common::admin_get(server.admin_addr, "/metrics").await;
    assert!(
        text.contains(&format!(
            "kspy_cert_expiry_timestamp_seconds {}",
            second.not_after_unix()
        )),
        "{text}"
    );

    // A broken rotation keeps the current certificate and is counted.
    volume.swap(b"garbage", second.key_pem.as_bytes());
    eventually("the failure is counted", Duration::from_secs(5), || async {
        server.metrics().cert_reloads() == (1, 1)
    })
    .await;
    let conn = HttpsConnection::connect(addr, "localhost", &fresh, HttpVersion::Http1)
        .await
        .expect("still serving");
    assert_eq!(conn.peer_certificate(), Some(der(&second).as_slice()));
    server.shutdown().await;
}

#[tokio::test]
async fn policy_changes_reload_and_broken_ones_keep_the_previous_set() {
    let h = common::Harness::start().await;
    let denied = |body: &[u8]| response_of(body)["allowed"] == false;
    let (_, body) = h.post_fixture("/validate", "attach-denied.json").await;
    assert!(denied(&body), "SYS_ADMIN is not granted at first");

    // A good change: SYS_ADMIN granted.
    std::fs::write(h.policies.join("policies.yaml"), POLICIES_WITH_SYS_ADMIN).expect("write");
    eventually(
        "the new policy is in force",
        Duration::from_secs(5),
        || async {
            let (_, body) = h.post_fixture("/validate", "attach-denied.json").await;
            !denied(&body)
        },
    )
    .await;
    assert_eq!(h.server.metrics().policy_reloads(), (1, 0));
    assert!(
        h.admin_get("/metrics")
            .await
            .1
            .contains("kspy_policies_loaded 1\n")
    );

    // A broken change (CEL that does not compile, in a new file): counted, previous set kept.
    std::fs::write(
        h.policies.join("broken.yaml"),
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata:\n  name: broken\nspec:\n  validations:\n    - expression: \"container.image.(\"\n",
    )
    .expect("write");
    eventually("the failure is counted", Duration::from_secs(5), || async {
        h.server.metrics().policy_reloads() == (1, 1)
    })
    .await;
    let (_, body) = h.post_fixture("/validate", "attach-denied.json").await;
    assert!(!denied(&body), "the previous good set is still in force");
    // Polling again does not count the same broken content twice.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.server.metrics().policy_reloads(), (1, 1));
    assert_eq!(h.admin_get("/readyz").await.0, 200);

    // Not YAML at all: also refused.
    std::fs::write(h.policies.join("broken.yaml"), "{{{{ not yaml").expect("write");
    eventually(
        "the second failure is counted",
        Duration::from_secs(5),
        || async { h.server.metrics().policy_reloads() == (1, 2) },
    )
    .await;

    // Fixing it reloads.
    std::fs::remove_file(h.policies.join("broken.yaml")).expect("rm");
    std::fs::write(h.policies.join("policies.yaml"), POLICIES).expect("write");
    eventually(
        "the fixed set is in force",
        Duration::from_secs(5),
        || async {
            let (_, body) = h.post_fixture("/validate", "attach-denied.json").await;
            denied(&body)
        },
    )
    .await;
    assert_eq!(h.server.metrics().policy_reloads(), (2, 2));
    h.server.shutdown().await;
}

#[tokio::test]
async fn a_configmap_style_symlink_swap_of_the_policy_directory_is_seen() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let certs = loopback_certs();
    let files = certs.write_to(&tmp.path().join("tls")).expect("certs");
    // policies/..2026_a/policies.yaml, policies/..data -> ..2026_a, policies/policies.yaml -> ..data/policies.yaml
    let dir = tmp.path().join("policies");
    std::fs::create_dir_all(dir.join("..2026_a")).expect("gen a");
    std::fs::write(dir.join("..2026_a/policies.yaml"), POLICIES).expect("write");
    symlink("..2026_a", dir.join("..data")).expect("..data");
    symlink("..data/policies.yaml", dir.join("policies.yaml")).expect("link");
    let mut config = ServerConfig::new(
        &dir,
        TlsFiles {
            cert: files.cert,
            key: files.key,
        },
    )
    .on_loopback();
    config.reload_interval = Duration::from_millis(50);
    let server = kspy_webhook::start(config).await.expect("start");
    assert!(
        server
            .metrics()
            .render()
            .contains("kspy_policies_loaded 2\n")
    );

    std::fs::create_dir_all(dir.join("..2026_b")).expect("gen b");
    std::fs::write(dir.join("..2026_b/policies.yaml"), POLICIES_WITH_SYS_ADMIN).expect("write");
    symlink("..2026_b", dir.join("..data_tmp")).expect("tmp");
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
    std::fs::remove_dir_all(dir.join("..2026_a")).expect("rm old");
    eventually(
        "the swapped policies are loaded",
        Duration::from_secs(5),
        || async { server.metrics().policy_reloads() == (1, 0) },
    )
    .await;
    assert!(
        server
            .metrics()
            .render()
            .contains("kspy_policies_loaded 1\n")
    );
    server.shutdown().await;
}
