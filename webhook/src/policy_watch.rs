//! Loading the policy directory and reloading it when its content changes.
//!
//! The directory is polled: every interval the YAML files under it are read (following
//! symlinks, skipping `.`-names exactly as the loader does; a ConfigMap volume's from its
//! current generation, see [`PolicySource`]) and hashed. When the hash changes the whole set is loaded and compiled again;
//! if anything is wrong, every error is logged with its file, line, document, policy and
//! field, the failure is counted, and the previous engine stays in force.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kspy_admission::policy::load;
use kspy_admission::{Engine, LoadErrors, PolicySet, Settings};
use tokio::sync::watch;

use crate::engine_cell::EngineCell;
use crate::error::WebhookError;
use crate::metrics::Metrics;
use crate::policy_source::PolicySource;

/// Loads and compiles the policies in `dir` into an engine with `settings`; a ConfigMap
/// volume's from its current generation (see [`PolicySource`]), the files named by their
/// links in `dir`.
pub fn load_engine(dir: &Path, settings: Settings) -> Result<Engine, WebhookError> {
    load_engine_from(&PolicySource::of(dir), dir, settings)
}

/// [`load_engine`] from `source`.
fn load_engine_from(
    source: &PolicySource,
    dir: &Path,
    settings: Settings,
) -> Result<Engine, WebhookError> {
    let policies = PolicySet::load_dir_as(source.root(dir), dir).map_err(WebhookError::Policies)?;
    Engine::new(policies, settings).map_err(WebhookError::Settings)
}

/// Warns, at start and after a reload, about what loaded but is likely a mistake: each of the
/// set's own warnings (a field a Pod never has), and an empty set: a directory emptied by
/// mistake (a ConfigMap without its data, a wrong mount) is valid, but leaves every debug
/// request without a grant.
pub(crate) fn warn_about(dir: &Path, policies: &PolicySet) {
    for w in policies.warnings() {
        tracing::warn!(
            policies = %dir.display(),
            file = %w.file,
            line = w.at.map(|(line, _)| line),
            column = w.at.map(|(_, column)| column),
            document = w.document,
            policy = w.policy.as_deref(),
            field = w.field.as_deref(),
            warning = %w.message,
            "policy warning; the policies are in force"
        );
    }
    if policies.is_empty() {
        tracing::warn!(
            policies = %dir.display(),
            "no DebugPolicy under the policy directory: no debug request can be granted (each is \
             denied, or allowed with --no-policy-allows) until one is added"
        );
    }
}

/// A hash of the names and contents of every policy file under `dir` (and of any error
/// reading them), to detect changes cheaply. It reads what the loader reads and no more
/// (from the same [`PolicySource`], with the loader's own listing and reader: its depth, file
/// count and size limits, regular files only, a directory loop cut short), but lists a
/// dangling link by name, so that its repair is noticed.
pub fn fingerprint(dir: &Path) -> u64 {
    fingerprint_of(dir, &PolicySource::of(dir))
}

/// [`fingerprint`] of the files `source` reads. Names are hashed relative to the directory
/// read, so that a new generation holding the same files is no change.
fn fingerprint_of(dir: &Path, source: &PolicySource) -> u64 {
    let root = source.root(dir);
    let mut hasher = DefaultHasher::new();
    matches!(source, PolicySource::Generation(_)).hash(&mut hasher);
    let mut files = Vec::new();
    if let Err(err) = load::collect_files_keeping_dangling(root, &mut files) {
        err.hash(&mut hasher);
    }
    files.sort();
    for file in files {
        file.strip_prefix(root).unwrap_or(&file).hash(&mut hasher);
        match load::read_file(&file) {
            Ok(text) => text.hash(&mut hasher),
            Err(err) => err.hash(&mut hasher),
        }
    }
    hasher.finish()
}

/// Logs every load error, one line each with file, line, column, document, policy, field and
/// error.
pub(crate) fn log_load_errors(dir: &Path, errors: &LoadErrors) {
    for e in errors.errors() {
        tracing::error!(
            policies = %dir.display(),
            file = %e.file,
            line = e.at.map(|(line, _)| line),
            column = e.at.map(|(_, column)| column),
            document = e.document,
            policy = e.policy.as_deref(),
            field = e.field.as_deref(),
            // Not `message`: that is the event's own, which a second member would hide.
            error = %e.message,
            "policy error; keeping the previous policies"
        );
    }
}

/// Policy files under `dir` that are listed but cannot be found: dangling symlinks, or files
/// gone between the listing and the look.
fn vanished(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    // A directory that cannot be read is a load error like any other, not a vanished file.
    let _ = load::collect_files_keeping_dangling(dir, &mut files);
    files.sort();
    files.retain(|f| std::fs::metadata(f).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound));
    files
}

/// What one poll of the policy directory found.
enum Polled {
    /// Nothing changed.
    Unchanged,
    /// A listed file is gone; the change is looked at again at the next poll.
    Deferred,
    /// Files still gone at the poll after the one that found them.
    Vanished(Vec<PathBuf>),
    /// The files changed while they were read; the change is looked at again at the next
    /// poll.
    Moved,
    /// The new set, or why it does not load (boxed: an engine is large, and moved once).
    Loaded(Box<Result<Engine, LoadErrors>>),
}

/// The reload loop's memory between polls.
struct Watcher {
    dir: PathBuf,
    settings: Settings,
    /// The fingerprint of the content last handled (loaded, or reported as broken).
    seen: u64,
    /// The fingerprint of a change put off because a listed file was gone.
    deferred: Option<u64>,
}

impl Watcher {
    /// Looks at the directory once. Blocking file I/O.
    ///
    /// A ConfigMap volume is read from its current generation ([`PolicySource`]): the key
    /// links the kubelet adds and removes after an update's `..data` swap do not matter.
    /// In a plain directory a dangling link (a file removed, or a link made before its
    /// target) waits for the next poll: only if the file is still gone then is it reported
    /// (and counted).
    fn poll(&mut self) -> Polled {
        self.poll_with(load)
    }

    /// [`Watcher::poll`] with `load` as the loader: it reads the files under its first
    /// argument and names them as under its second.
    fn poll_with(
        &mut self,
        load: impl FnOnce(&Path, &Path, Settings) -> Result<Engine, LoadErrors>,
    ) -> Polled {
        let source = PolicySource::of(&self.dir);
        let now = fingerprint_of(&self.dir, &source);
        if now == self.seen {
            self.deferred = None;
            return Polled::Unchanged;
        }
        if source == PolicySource::Plain {
            let gone = vanished(&self.dir);
            if !gone.is_empty() {
                if self.deferred != Some(now) {
                    self.deferred = Some(now);
                    return Polled::Deferred;
                }
                self.deferred = None;
                self.seen = now;
                return Polled::Vanished(gone);
            }
        }
        self.deferred = None;
        let loaded = load(source.root(&self.dir), &self.dir, self.settings.clone());
        // The loader opens each file on its own: in a plain directory a file may change
        // between two reads, and a generation may be swapped out (and removed) while it is
        // read. Either gives a set that was never in the directory, or errors that are no
        // one's mistake; kept only if nothing changed while the files were read, otherwise
        // looked at again at the next poll.
        if PolicySource::of(&self.dir) != source || fingerprint_of(&self.dir, &source) != now {
            return Polled::Moved;
        }
        self.seen = now;
        Polled::Loaded(Box::new(loaded))
    }
}

/// Loads and compiles the policies under `read`, named as under `shown` (the [`Watcher`]'s
/// loader).
fn load(read: &Path, shown: &Path, settings: Settings) -> Result<Engine, LoadErrors> {
    PolicySet::load_dir_as(read, shown).and_then(|p| Engine::new(p, settings))
}

/// Loads the policies in `dir` at start, with the fingerprint of what was loaded: a load
/// during which the files changed (a ConfigMap swap, see [`Watcher::poll`]) is done again
/// 20 ms later, a few times at most. The last one is kept (or its error returned); if it
/// read a mix, the fingerprint taken before it differs from the files' and the first poll
/// loads them again.
pub(crate) fn load_at_start(dir: &Path, settings: Settings) -> Result<(Engine, u64), WebhookError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        let source = PolicySource::of(dir);
        let before = fingerprint_of(dir, &source);
        let loaded = load_engine_from(&source, dir, settings.clone());
        let still = PolicySource::of(dir) == source && fingerprint_of(dir, &source) == before;
        if attempts >= 5 || still {
            return loaded.map(|engine| (engine, before));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Logs each policy file listed under `dir` that is still gone, one line each naming it.
fn log_vanished(dir: &Path, files: &[PathBuf]) {
    for file in files {
        tracing::error!(
            policies = %dir.display(),
            file = %file.display(),
            error = "the file is listed but cannot be read: a dangling symlink, or removed; \
                     remove the link or restore its target",
            "policy error; keeping the previous policies"
        );
    }
}

/// Logs a reload with the policies' names as the start does: comma-separated, not a Debug
/// list (`["a", "b"]`).
fn log_reloaded(dir: &Path, engine: &Engine) {
    let names = engine.policies().names().join(", ");
    let count = engine.policies().len();
    tracing::info!(policies = %dir.display(), count, names = %names, "policies reloaded");
}

/// Puts a newly loaded engine in force, and only then reports the reload (the count in
/// `kspy_policy_reloads_total`, the log line and the set's warnings): whoever sees the reload
/// reported and sends a review gets the new set's verdict. Reporting first left a moment in
/// which the old set still judged, and could allow what the reported set no longer grants.
fn put_in_force(dir: &Path, cell: &EngineCell, metrics: &Metrics, new_engine: Engine) {
    let in_force = cell.replace(new_engine);
    metrics.policy_reload_succeeded(in_force.policies().len());
    log_reloaded(dir, &in_force);
    warn_about(dir, in_force.policies());
}

/// Spawns the reload loop: polls `dir` every `interval` until `shutdown` turns true.
/// `initial` is the fingerprint of what was loaded at start.
pub(crate) fn spawn(
    dir: PathBuf,
    settings: Settings,
    interval: Duration,
    initial: u64,
    engine: Arc<EngineCell>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut watcher = Some(Watcher {
            dir: dir.clone(),
            settings: settings.clone(),
            seen: initial,
            deferred: None,
        });
        // Clamped: tokio's interval adds the period to an Instant unchecked.
        let mut ticker = tokio::time::interval(
            interval.clamp(Duration::from_millis(10), crate::config::MAX_DURATION),
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            tokio::select! {
                () = crate::serve::stopped(&mut shutdown) => break,
                _ = ticker.tick() => {}
            }
            let Some(mut polling) = watcher.take() else {
                break;
            };
            let polled = tokio::task::spawn_blocking(move || {
                let polled = polling.poll();
                (polling, polled)
            })
            .await;
            let polled = match polled {
                Ok((back, polled)) => {
                    watcher = Some(back);
                    polled
                }
                Err(err) => {
                    // The watcher's memory went with the task: start again from what is in
                    // force, so the next poll compares with nothing and reloads.
                    tracing::error!(error = %err, "policy reload task failed");
                    metrics.policy_reload_failed();
                    watcher = Some(Watcher {
                        dir: dir.clone(),
                        settings: settings.clone(),
                        seen: 0,
                        deferred: None,
                    });
                    continue;
                }
            };
            match polled {
                Polled::Loaded(loaded) => match *loaded {
                    Ok(new_engine) => put_in_force(&dir, &engine, &metrics, new_engine),
                    Err(errors) => {
                        metrics.policy_reload_failed();
                        log_load_errors(&dir, &errors);
                    }
                },
                Polled::Unchanged => {}
                Polled::Deferred => tracing::debug!(
                    policies = %dir.display(),
                    "a listed policy file is gone; looking again at the next poll"
                ),
                Polled::Moved => tracing::debug!(
                    policies = %dir.display(),
                    "the policy files changed while they were read; loading them again at the next poll"
                ),
                Polled::Vanished(files) => {
                    metrics.policy_reload_failed();
                    log_vanished(&dir, &files);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::log_capture::Lines;
    use crate::telemetry::{LogFormat, log_subscriber};

    fn logged(format: LogFormat, errors: &LoadErrors) -> String {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = log_subscriber(format, tracing::Level::INFO, move || sink.clone());
        tracing::subscriber::with_default(subscriber, || {
            log_load_errors(Path::new("/etc/kspy/policies"), errors)
        });
        lines.text()
    }

    const POLICY: &str = "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: NAME}\n\
         spec:\n  match:\n    actions: [attach]\n  grant:\n    images: [\"busybox:*\"]\n";

    /// A ConfigMap volume: `..g1/{a,b}.yaml`, `..data -> ..g1`, `a.yaml -> ..data/a.yaml`, …
    fn configmap(root: &Path, names: &[&str]) -> PathBuf {
        use std::os::unix::fs::symlink;
        let dir = root.join("pol");
        std::fs::create_dir_all(dir.join("..g1")).expect("generation");
        for name in names {
            std::fs::write(
                dir.join(format!("..g1/{name}.yaml")),
                POLICY.replace("NAME", name),
            )
            .expect("write");
            symlink(
                format!("..data/{name}.yaml"),
                dir.join(format!("{name}.yaml")),
            )
            .expect("link");
        }
        symlink("..g1", dir.join("..data")).expect("..data");
        dir
    }

    /// The kubelet's swap to a generation holding only `names`; the old one is removed, the
    /// top-level links are left as they are.
    fn swap(dir: &Path, names: &[&str]) {
        use std::os::unix::fs::symlink;
        std::fs::create_dir_all(dir.join("..g2")).expect("generation");
        for name in names {
            std::fs::write(
                dir.join(format!("..g2/{name}.yaml")),
                POLICY.replace("NAME", name),
            )
            .expect("write");
        }
        symlink("..g2", dir.join("..data_tmp")).expect("tmp");
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
        std::fs::remove_dir_all(dir.join("..g1")).expect("remove the old generation");
    }

    fn watcher(dir: &Path) -> Watcher {
        Watcher {
            dir: dir.to_owned(),
            settings: Settings::default(),
            seen: fingerprint(dir),
            deferred: None,
        }
    }

    /// A key deleted from a ConfigMap: the poll between the `..data` swap and the removal of
    /// the dangling link loads the new generation (it once reported a broken change and
    /// counted a failure, then waited a poll), and the link's removal is no change.
    #[test]
    fn a_link_left_dangling_for_a_moment_is_no_failure() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = configmap(root.path(), &["a", "b"]);
        let mut w = watcher(&dir);
        assert!(matches!(w.poll(), Polled::Unchanged));
        swap(&dir, &["a"]);
        let Polled::Loaded(loaded) = w.poll() else {
            panic!("the new set is loaded");
        };
        let engine = loaded.expect("the new set loads");
        assert_eq!(engine.policies().names(), ["a"]);
        std::fs::remove_file(dir.join("b.yaml")).expect("the kubelet removes the link");
        assert!(matches!(w.poll(), Polled::Unchanged));

        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber =
            log_subscriber(LogFormat::Json, tracing::Level::INFO, move || sink.clone());
        let two = PolicySet::from_yaml(
            "two.yaml",
            &format!(
                "{}---\n{}",
                POLICY.replace("NAME", "a"),
                POLICY.replace("NAME", "b")
            ),
        )
        .and_then(|p| Engine::new(p, Settings::default()))
        .expect("two policies");
        tracing::subscriber::with_default(subscriber, || log_reloaded(&dir, &two));
        let line: Value = serde_json::from_str(lines.text().trim_end()).expect("one JSON line");
        assert_eq!(line["names"], "a, b", "{line}");
    }

    /// A `MakeWriter` that notes, for each log write, the policies the cell has in force.
    #[derive(Clone)]
    struct InForceAtEachLine {
        cell: Arc<EngineCell>,
        seen: Arc<std::sync::Mutex<Vec<Vec<String>>>>,
    }

    impl std::io::Write for InForceAtEachLine {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let engine = self.cell.current();
            let names = engine.policies().names();
            self.seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(names.iter().map(ToString::to_string).collect());
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn engine_of(names: &[&str]) -> Engine {
        let yaml = names
            .iter()
            .map(|n| POLICY.replace("NAME", n))
            .collect::<Vec<_>>()
            .join("---\n");
        PolicySet::from_yaml("p.yaml", &yaml)
            .and_then(|p| Engine::new(p, Settings::default()))
            .expect("policies")
    }

    /// The reload is counted and logged once the new set is in force: the line saying
    /// "policies reloaded" was written (and the count raised) while the old set still judged.
    #[test]
    fn a_reload_is_reported_only_once_the_new_set_judges() {
        let cell = Arc::new(EngineCell::new(engine_of(&["old"])));
        let metrics = Metrics::new();
        let probe = InForceAtEachLine {
            cell: cell.clone(),
            seen: Arc::default(),
        };
        let sink = probe.clone();
        let subscriber =
            log_subscriber(LogFormat::Json, tracing::Level::INFO, move || sink.clone());
        tracing::subscriber::with_default(subscriber, || {
            put_in_force(Path::new("/p"), &cell, &metrics, engine_of(&["new"]))
        });
        let seen = probe.seen.lock().expect("lock").clone();
        assert!(!seen.is_empty(), "the reload is logged");
        assert!(
            seen.iter().all(|names| names == &["new"]),
            "policies in force as each line was written: {seen:?}"
        );
        assert_eq!(metrics.policy_reloads(), (1, 0));
        assert_eq!(cell.current().policies().names(), ["new"]);
    }

    /// A key added to a ConfigMap, with an existing key changed: the poll between the kubelet's
    /// `..data` swap and its creating the new key's link saw the changed `a.yaml` without
    /// `b.yaml`, a set that was never in the ConfigMap, and put it in force. It then waited
    /// one poll for the link, which a kubelet slower than one poll still beat. The new
    /// generation is now loaded whole at once, and the link's coming is no change.
    #[test]
    fn a_key_added_is_loaded_with_the_generation_before_its_link_is_there() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = configmap(root.path(), &["a"]);
        let mut w = watcher(&dir);
        std::fs::create_dir_all(dir.join("..g2")).expect("generation");
        for name in ["a", "b"] {
            std::fs::write(
                dir.join(format!("..g2/{name}.yaml")),
                POLICY.replace("NAME", name).replace("busybox", "alpine"),
            )
            .expect("write");
        }
        symlink("..g2", dir.join("..data_tmp")).expect("tmp");
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
        let Polled::Loaded(loaded) = w.poll() else {
            panic!("the new generation is loaded whole");
        };
        let engine = loaded.expect("loads");
        assert_eq!(engine.policies().names(), ["a", "b"]);
        // Named by their links, not by the generation they were read from.
        let files: Vec<_> = engine.policies().files().to_vec();
        assert_eq!(files, [dir.join("a.yaml"), dir.join("b.yaml")]);
        symlink("..data/b.yaml", dir.join("b.yaml")).expect("the kubelet links the new key");
        assert!(matches!(w.poll(), Polled::Unchanged));
    }

    /// A generation swapped out, and removed, while the loader reads it: the errors of its
    /// vanished files are no one's mistake, and the set read is not the one in force; looked
    /// at again at the next poll, not counted as a broken change.
    #[test]
    fn a_generation_removed_while_it_is_read_is_looked_at_again() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = configmap(root.path(), &["a", "b"]);
        let mut w = watcher(&dir);
        std::fs::write(
            dir.join("..g1/a.yaml"),
            POLICY.replace("NAME", "a").replace("busybox", "alpine"),
        )
        .expect("a change to look at");
        let polled = w.poll_with(|read, shown, settings| {
            swap(&dir, &["a"]);
            load(read, shown, settings)
        });
        assert!(matches!(polled, Polled::Moved), "not kept");
        let Polled::Loaded(loaded) = w.poll() else {
            panic!("the new generation is loaded at the next poll");
        };
        assert_eq!(loaded.expect("loads").policies().names(), ["a"]);
    }

    /// At start too: the set is read from the generation, named by the links.
    #[test]
    fn the_start_reads_the_generation_whole() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = configmap(root.path(), &["a"]);
        std::fs::write(dir.join("..g1/b.yaml"), POLICY.replace("NAME", "b")).expect("write");
        let (engine, seen) = load_at_start(&dir, Settings::default()).expect("loads");
        assert_eq!(engine.policies().names(), ["a", "b"]);
        assert_eq!(seen, fingerprint(&dir));

        // An error names the file by its link.
        std::fs::write(dir.join("..g1/c.yaml"), "kind: [\n").expect("write");
        let Err(err) = load_at_start(&dir, Settings::default()) else {
            panic!("a broken file does not load");
        };
        let message = err.to_string();
        let named = format!("{}:", dir.join("c.yaml").display());
        assert!(message.contains(&named), "{message}");
        assert!(!message.contains("..g1"), "{message}");
    }

    /// A ConfigMap swap while the loader reads the files one by one: it read `a.yaml` of the
    /// old generation and `b.yaml` of the new, a set that was never in the ConfigMap. That
    /// set was put in force (until the next poll); it is now dropped, and the next poll
    /// loads the new generation whole.
    #[test]
    fn a_swap_while_the_files_are_read_puts_no_mix_in_force() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = configmap(root.path(), &["a", "b"]);
        let mut w = watcher(&dir);
        // Something to load: a change, in a generation of its own.
        let generation = |g: &str, image: &str| {
            std::fs::create_dir_all(dir.join(g)).expect("generation");
            for name in ["a", "b"] {
                std::fs::write(
                    dir.join(format!("{g}/{name}.yaml")),
                    POLICY.replace("NAME", name).replace("busybox", image),
                )
                .expect("write");
            }
            symlink(g, dir.join("..data_tmp")).expect("tmp");
            std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).expect("swap");
        };
        generation("..g2", "alpine");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).expect("read");
        let polled = w.poll_with(|_, _, settings| {
            let a = read("a.yaml");
            generation("..g3", "debian");
            let b = read("b.yaml");
            PolicySet::from_yaml("mix.yaml", &format!("{a}---\n{b}"))
                .and_then(|p| Engine::new(p, settings))
        });
        assert!(
            matches!(polled, Polled::Moved),
            "the mixed set is not put in force"
        );
        let Polled::Loaded(loaded) = w.poll() else {
            panic!("the new generation is loaded at the next poll");
        };
        let engine = loaded.expect("the new generation loads");
        assert_eq!(engine.policies().names(), ["a", "b"]);
        assert_eq!(w.seen, fingerprint(&dir));
        assert!(read("a.yaml").contains("debian") && read("b.yaml").contains("debian"));
        assert!(matches!(w.poll(), Polled::Unchanged));
    }

    /// A policy selecting a field the Pod type lacks is in force, and each load says where
    /// the field is, as `kspy policy check` does.
    #[test]
    fn a_loads_warnings_are_logged_with_their_place() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber =
            log_subscriber(LogFormat::Json, tracing::Level::INFO, move || sink.clone());
        let set = PolicySet::from_yaml(
            "p.yaml",
            &format!(
                "{}  validations:\n    - expression: \"object.spec.hostPID == false || object.spec.hostPIDD\"\n",
                POLICY.replace("NAME", "a")
            ),
        )
        .expect("a warning does not stop the load");
        tracing::subscriber::with_default(subscriber, || warn_about(Path::new("/p"), &set));
        let text = lines.text();
        let logged: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON lines"))
            .collect();
        assert_eq!(logged.len(), 1, "{text}");
        let line = &logged[0];
        assert_eq!(line["level"], "WARN", "{line}");
        assert_eq!(line["file"], "p.yaml", "{line}");
        assert_eq!([&line["line"], &line["column"]], [10, 7], "{line}");
        assert_eq!(line["policy"], "a", "{line}");
        assert_eq!(line["field"], "spec.validations[0].expression", "{line}");
        let warning = line["warning"].as_str().expect("a warning");
        assert!(
            warning.starts_with("object.spec has no field \"hostPIDD\" in Kubernetes 1.33 (did you mean \"hostPID\"?)"),
            "{warning}"
        );
    }

    /// Two links to `.` made the poller's walk 2^40 paths long (gigabytes, and a shutdown
    /// that never finished); it now stops at the loop as the loader does, and the broken
    /// change is reported with the previous policies kept.
    #[test]
    fn a_directory_loop_is_one_broken_change_not_an_endless_walk() {
        use std::os::unix::fs::symlink;
        let root = tempfile::tempdir().expect("tempdir");
        let dir = configmap(root.path(), &["a"]);
        let mut w = watcher(&dir);
        symlink(".", dir.join("x")).expect("link");
        symlink(".", dir.join("y")).expect("link");
        let mut files = Vec::new();
        let err = load::collect_files_keeping_dangling(&dir, &mut files).expect_err("a loop");
        assert!(err.contains("(a symlink loop)"), "{err}");
        let Polled::Loaded(loaded) = w.poll() else {
            panic!("the change is looked at");
        };
        let errors = loaded.expect_err("the loop is a load error").to_string();
        assert!(errors.contains("(a symlink loop)"), "{errors}");
        assert!(matches!(w.poll(), Polled::Unchanged));
    }

    /// What the fingerprint reads is bounded as the loader's reads are: a link to a device is
    /// not read to its (missing) end.
    #[test]
    fn the_fingerprint_does_not_read_a_device() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = configmap(root.path(), &["a"]);
        let before = fingerprint(&dir);
        std::os::unix::fs::symlink("/dev/zero", dir.join("zero.yaml")).expect("link");
        assert_ne!(fingerprint(&dir), before);
    }

    /// In a plain directory, a link still dangling at the next poll is reported, naming the
    /// file, once.
    #[test]
    fn a_link_still_dangling_at_the_next_poll_is_reported_by_its_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("pol");
        std::fs::create_dir(&dir).expect("dir");
        std::fs::write(dir.join("a.yaml"), POLICY.replace("NAME", "a")).expect("write");
        let target = root.path().join("b.yaml");
        std::fs::write(&target, POLICY.replace("NAME", "b")).expect("write");
        std::os::unix::fs::symlink(&target, dir.join("b.yaml")).expect("link");
        let mut w = watcher(&dir);
        std::fs::remove_file(&target).expect("the link's target goes");
        assert!(matches!(w.poll(), Polled::Deferred));
        let Polled::Vanished(files) = w.poll() else {
            panic!("reported at the second poll");
        };
        assert_eq!(files, [dir.join("b.yaml")]);
        assert!(matches!(w.poll(), Polled::Unchanged));

        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber =
            log_subscriber(LogFormat::Json, tracing::Level::INFO, move || sink.clone());
        tracing::subscriber::with_default(subscriber, || log_vanished(&dir, &files));
        let line: Value = serde_json::from_str(lines.text().trim_end()).expect("one JSON line");
        assert_eq!(
            line["message"],
            "policy error; keeping the previous policies"
        );
        assert_eq!(
            line["file"].as_str(),
            Some(dir.join("b.yaml").display().to_string().as_str()),
            "{line}"
        );
    }

    /// The line operators alert on keeps its headline and names the error in its own field,
    /// in both formats.
    #[test]
    fn a_load_error_line_has_its_headline_and_the_error() {
        let errors = PolicySet::from_yaml(
            "typo.yaml",
            "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: p}\nspec:\n  grnat: {}\n",
        )
        .expect_err("the typo is refused");
        let json = logged(LogFormat::Json, &errors);
        let line: Value = serde_json::from_str(json.trim_end()).expect("one JSON line");
        assert_eq!(
            line["message"], "policy error; keeping the previous policies",
            "{line}"
        );
        assert_eq!(line["file"], "typo.yaml", "{line}");
        // Where the misspelt field is written: `grnat:` on line 5, column 3.
        assert_eq!([&line["line"], &line["column"]], [5, 3], "{line}");
        assert_eq!(line["policy"], "p", "{line}");
        assert!(
            line["error"]
                .as_str()
                .is_some_and(|e| e.contains("unknown field `grnat`")),
            "{line}"
        );
        let text = logged(LogFormat::Text, &errors);
        assert!(
            text.contains("policy error; keeping the previous policies"),
            "{text}"
        );
        assert!(text.contains(" error=\"unknown field `grnat`"), "{text}");
        assert!(text.contains(" line=5 column=3 "), "{text}");
    }

    /// A CEL syntax error in a `|` block is logged where it is in the file, as `kspy policy
    /// check` places it (it was logged at the `expression:` field, line 6, column 7).
    #[test]
    fn a_cel_syntax_error_is_logged_where_it_is_in_the_file() {
        let errors = PolicySet::from_yaml(
            "block.yaml",
            "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: p}\nspec:\n  \
             validations:\n    - expression: |\n        container.image != '' &&\n        \
             container.name != '' )\n",
        )
        .expect_err("the syntax error is refused");
        let json = logged(LogFormat::Json, &errors);
        let line: Value = serde_json::from_str(json.trim_end()).expect("one JSON line");
        // The stray `)` on the block's second line: line 8, column 30.
        assert_eq!([&line["line"], &line["column"]], [8, 30], "{line}");
        assert_eq!(line["field"], "spec.validations[0].expression", "{line}");
        assert!(
            line["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("syntax error at line 2, column 22: ")),
            "{line}"
        );
    }
}
