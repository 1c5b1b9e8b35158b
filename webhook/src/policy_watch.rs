//! Loading the policy directory and reloading it when its content changes.
//!
//! The directory is polled: every interval the YAML files under it are read (following
//! symlinks, skipping `.`-names exactly as the loader does, so a ConfigMap volume's `..data`
//! swap is seen) and hashed. When the hash changes the whole set is loaded and compiled again;
//! if anything is wrong, every error is logged with its file, document, policy and field, the
//! failure is counted, and the previous engine stays in force.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kspy_admission::{Engine, LoadErrors, PolicySet, Settings};
use tokio::sync::watch;

use crate::engine_cell::EngineCell;
use crate::error::WebhookError;
use crate::metrics::Metrics;

/// Loads and compiles the policies in `dir` into an engine with `settings`.
pub fn load_engine(dir: &Path, settings: Settings) -> Result<Engine, WebhookError> {
    let policies = PolicySet::load_dir(dir).map_err(WebhookError::Policies)?;
    Engine::new(policies, settings).map_err(WebhookError::Settings)
}

/// Warns, at start and after a reload, when `dir` holds no policy: a directory emptied by
/// mistake (a ConfigMap without its data, a wrong mount) is valid, but leaves every debug
/// request without a grant.
pub(crate) fn warn_if_empty(dir: &Path, count: usize) {
    if count == 0 {
        tracing::warn!(
            policies = %dir.display(),
            "no DebugPolicy under the policy directory: no debug request can be granted (each is \
             denied, or allowed with --no-policy-allows) until one is added"
        );
    }
}

/// A hash of the names and contents of every policy file under `dir` (and of any error
/// reading them), to detect changes cheaply.
pub fn fingerprint(dir: &Path) -> u64 {
    let mut hasher = DefaultHasher::new();
    let mut files = Vec::new();
    if let Err(err) = collect(dir, &mut files) {
        err.to_string().hash(&mut hasher);
    }
    files.sort();
    for file in files {
        file.hash(&mut hasher);
        match std::fs::read(&file) {
            Ok(bytes) => bytes.hash(&mut hasher),
            Err(err) => err.to_string().hash(&mut hasher),
        }
    }
    hasher.finish()
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            // A dangling link: hash its name so its repair is noticed.
            out.push(path);
            continue;
        };
        if meta.is_dir() {
            collect(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Logs every load error, one line each with file, document, policy, field and error.
pub(crate) fn log_load_errors(dir: &Path, errors: &LoadErrors) {
    for e in errors.errors() {
        tracing::error!(
            policies = %dir.display(),
            file = %e.file,
            document = e.document,
            policy = e.policy.as_deref(),
            field = e.field.as_deref(),
            // Not `message`: that is the event's own, which a second member would hide.
            error = %e.message,
            "policy error; keeping the previous policies"
        );
    }
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
        let mut seen = initial;
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
            let dir2 = dir.clone();
            let settings2 = settings.clone();
            let polled = tokio::task::spawn_blocking(move || {
                let now = fingerprint(&dir2);
                if now == seen {
                    return (now, None);
                }
                let result = PolicySet::load_dir(&dir2).and_then(|p| Engine::new(p, settings2));
                (now, Some(result))
            })
            .await;
            let (now, result) = match polled {
                Ok(pair) => pair,
                Err(err) => {
                    tracing::error!(error = %err, "policy reload task failed");
                    metrics.policy_reload_failed();
                    continue;
                }
            };
            seen = now;
            match result {
                None => {}
                Some(Ok(new_engine)) => {
                    let names: Vec<String> = new_engine
                        .policies()
                        .names()
                        .into_iter()
                        .map(str::to_owned)
                        .collect();
                    metrics.policy_reload_succeeded(names.len());
                    engine.replace(new_engine);
                    tracing::info!(policies = %dir.display(), count = names.len(), names = ?names, "policies reloaded");
                    warn_if_empty(&dir, names.len());
                }
                Some(Err(errors)) => {
                    metrics.policy_reload_failed();
                    log_load_errors(&dir, &errors);
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
    }
}
