//! One fuzz run: its seed and number of cases (from the environment), a guard around each call
//! into the engine that turns a panic — also one the engine caught inside itself — or a call
//! that does not return into a failure naming the seed, the case and the input, written to a
//! file so it can be replayed.
//!
//! Environment:
//! - `KSPY_FUZZ_SEED`: the seed (decimal or `0x…`); each test has its own default.
//! - `KSPY_FUZZ_ITERS`: multiplies every test's number of cases (default 1), for long hunts
//!   (`cargo test --release -p kspy-admission --test mutated_reviews` with `KSPY_FUZZ_ITERS=200`).
//! - `KSPY_FUZZ_CASE`: run only this case of the seed, to replay a failure.
//! - `KSPY_FUZZ_TIMEOUT`: seconds one call may take before the run is aborted as hung
//!   (default 60).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use super::rng::Rng;

/// Panics the engine may catch and turn into an error, each with its thread, place and
/// message: those on the engine's own threads (named `kspy-…`, such as `kspy-cel-compile`)
/// and those on a thread inside [`Case::guard`]. Those of other tests do not count.
static CAUGHT: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());

/// Panics of dependencies the engine is known to contain, by the file they are raised in and
/// their message: each is reported in the run's summary, not failed, and the call must still
/// have answered. Anything else caught is a failure.
///
/// - kube-cel 0.8.0 `format`: a precision past 65535 (`'%.99999f'.format([1.0])`) reaches
///   `format!("{f:.precision$}")`, which panics;
/// - cel 0.13.0 unary minus on the smallest int (`-(-9223372036854775808)`), where overflow
///   checks are on (debug builds; release builds check cel's arithmetic too).
///
/// `Expression::eval` turns each into an evaluation error, which denies.
pub const KNOWN_CONTAINED: &[(&str, &str)] = &[
    (
        "kube-cel-0.8.0/src/functions/format.rs",
        "Formatting argument out of range",
    ),
    // cel 0.13.0 negates an int unchecked (`common/types/int.rs`, `self.0.neg()`), so
    // `-(-9223372036854775808)` overflows inside core's `Neg` (the panic names core's file).
    (
        "library/core/src/ops/arith.rs",
        "attempt to negate with overflow",
    ),
];

/// Panics caught that [`KNOWN_CONTAINED`] names, so far.
static KNOWN_SEEN: AtomicUsize = AtomicUsize::new(0);

/// True while the current thread runs a guarded call.
fn guarded_here() -> bool {
    let id = std::thread::current().id();
    in_flight()
        .try_lock()
        .is_ok_and(|calls| calls.contains_key(&id))
}

/// Notes every panic on an engine thread or in a guarded call, then reports it as the
/// default hook does. Installed once.
fn count_panics() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let name = thread.name().unwrap_or("");
            if name.starts_with("kspy-") && name != WATCHDOG || guarded_here() {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                let at = info
                    .location()
                    .map(|l| format!("{}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                CAUGHT.lock().unwrap_or_else(PoisonError::into_inner).push((
                    thread.id(),
                    format!("thread {name} panicked at {at}: {message}"),
                ));
            }
            report(info);
        }));
    });
}

/// The watchdog's thread name.
const WATCHDOG: &str = "kspy-fuzz-watchdog";

fn caught_so_far() -> usize {
    CAUGHT.lock().unwrap_or_else(PoisonError::into_inner).len()
}

/// What a thread is running right now, for the watchdog.
struct Current {
    started: Instant,
    report: Arc<String>,
    input: Arc<Vec<u8>>,
    file: PathBuf,
}

/// The calls in flight, by thread.
fn in_flight() -> &'static Mutex<HashMap<ThreadId, Current>> {
    static CALLS: OnceLock<Mutex<HashMap<ThreadId, Current>>> = OnceLock::new();
    CALLS.get_or_init(|| {
        std::thread::Builder::new()
            .name(WATCHDOG.into())
            .spawn(watchdog)
            .expect("the watchdog starts");
        Mutex::new(HashMap::new())
    })
}

/// How long one call may take.
fn timeout() -> Duration {
    let secs = std::env::var("KSPY_FUZZ_TIMEOUT")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// Aborts the process when a call has run past [`timeout`]: a call that never returns cannot
/// be stopped any other way, and the report is written before.
fn watchdog() {
    let limit = timeout();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let calls = in_flight().lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(hung) = calls.values().find(|c| c.started.elapsed() > limit) {
            let _ = std::fs::write(&hung.file, hung.input.as_slice());
            eprintln!(
                "\nkspy fuzz: a call did not return within {limit:?}; aborting.\n{}\ninput written to {}",
                hung.report,
                hung.file.display()
            );
            std::process::abort();
        }
    }
}

/// Where failing inputs are written: `kspy-fuzz/` in the cargo target directory (the test
/// binary lives in `TARGET/PROFILE/deps/`).
fn output_dir() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })
        .unwrap_or_else(std::env::temp_dir)
        .join("kspy-fuzz");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// One test's run.
#[derive(Debug)]
pub struct Run {
    test: &'static str,
    seed: u64,
    cases: u64,
    only: Option<u64>,
    slowest: Mutex<(Duration, String)>,
    calls: AtomicUsize,
}

impl Run {
    /// A run of `base` cases (times `KSPY_FUZZ_ITERS`) seeded with `KSPY_FUZZ_SEED`, or
    /// `default_seed`.
    pub fn new(test: &'static str, default_seed: u64, base: u64) -> Run {
        count_panics();
        let factor = env_u64("KSPY_FUZZ_ITERS").unwrap_or(1).max(1);
        Run {
            test,
            seed: env_u64("KSPY_FUZZ_SEED").unwrap_or(default_seed),
            cases: base.saturating_mul(factor),
            only: env_u64("KSPY_FUZZ_CASE"),
            slowest: Mutex::new((Duration::ZERO, String::new())),
            calls: AtomicUsize::new(0),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The cases to run, each with its own generator.
    pub fn cases(&self) -> impl Iterator<Item = Case<'_>> + '_ {
        let range = match self.only {
            Some(only) => only..only + 1,
            None => 0..self.cases,
        };
        range.map(move |index| Case {
            run: self,
            index,
            rng: Rng::for_case(self.seed ^ salt(self.test), index),
        })
    }

    /// A summary line for the end of the test (seen with `--nocapture`).
    pub fn summary(&self, extra: &str) {
        let slowest = self.slowest.lock().unwrap_or_else(PoisonError::into_inner);
        eprintln!(
            "kspy fuzz {}: seed {:#x}, {} cases, {} guarded calls, {} known dependency panics contained, slowest {:?} ({}){}",
            self.test,
            self.seed,
            self.only.map_or(self.cases, |_| 1),
            self.calls.load(Ordering::SeqCst),
            KNOWN_SEEN.load(Ordering::SeqCst),
            slowest.0,
            slowest.1,
            if extra.is_empty() {
                String::new()
            } else {
                format!("; {extra}")
            }
        );
    }
}

/// A distinct stream per test for one seed.
fn salt(test: &str) -> u64 {
    // FNV-1a.
    test.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One case of a run.
pub struct Case<'r> {
    run: &'r Run,
    index: u64,
    /// The case's generator.
    pub rng: Rng,
}

impl Case<'_> {
    /// The case number.
    pub fn index(&self) -> u64 {
        self.index
    }

    fn file(&self) -> PathBuf {
        output_dir().join(format!(
            "{}-seed{:#x}-case{}.input",
            self.run.test, self.run.seed, self.index
        ))
    }

    fn report(&self, what: &str, input: &[u8]) -> String {
        const SHOWN: usize = 1500;
        let text = String::from_utf8_lossy(&input[..input.len().min(SHOWN)]);
        format!(
            "{} case {} of seed {:#x}: {what}\n  replay: KSPY_FUZZ_SEED={:#x} KSPY_FUZZ_CASE={} cargo test -p kspy-admission --test {} -- --exact {}\n  input ({} bytes{}): {text:?}",
            self.run.test,
            self.index,
            self.run.seed,
            self.run.seed,
            self.index,
            binary_name(),
            self.run.test,
            input.len(),
            if input.len() > SHOWN {
                ", shown in part"
            } else {
                ""
            },
        )
    }

    /// Fails the test: writes `input` to the output directory and panics with the seed, the
    /// case, `what`, the replay line and the input's start.
    pub fn fail(&self, what: &str, input: &[u8]) -> ! {
        let file = self.file();
        let _ = std::fs::write(&file, input);
        panic!(
            "{}\n  input written to {}",
            self.report(what, input),
            file.display()
        );
    }

    /// Calls `f` (one call into the engine about `input`, described by `what`), failing the
    /// test if it panics, if a panic was caught while it ran, on its thread or one of the
    /// engine's (the engine contains the CEL parser's and the CEL library's panics; each is a
    /// failure here all the same unless [`KNOWN_CONTAINED`] names it), or if it takes longer
    /// than the watchdog allows (the process is aborted then). Two tests guarding calls at
    /// once could see each other's engine-thread panics; either is a failure.
    pub fn guard<T>(&self, what: &str, input: &[u8], f: impl FnOnce() -> T) -> T {
        let before = caught_so_far();
        let id = std::thread::current().id();
        let started = Instant::now();
        in_flight()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                id,
                Current {
                    started,
                    report: Arc::new(self.report(what, input)),
                    input: Arc::new(input.to_vec()),
                    file: self.file(),
                },
            );
        let outcome = catch_unwind(AssertUnwindSafe(f));
        in_flight()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        let took = started.elapsed();
        self.run.calls.fetch_add(1, Ordering::SeqCst);
        {
            let mut slowest = self
                .run
                .slowest
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if took > slowest.0 {
                *slowest = (took, format!("case {}: {what}", self.index));
            }
        }
        match outcome {
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                self.fail(&format!("{what}: panicked: {message}"), input)
            }
            Ok(value) => {
                // This call's: on its own thread, or on one of the engine's (another test's
                // guarded thread is that test's business).
                let mut caught: Vec<String> = CAUGHT.lock().unwrap_or_else(PoisonError::into_inner)
                    [before..]
                    .iter()
                    .filter(|(thread, text)| *thread == id || text.starts_with("thread kspy-"))
                    .map(|(_, text)| text.clone())
                    .collect();
                let known = |c: &String| {
                    KNOWN_CONTAINED
                        .iter()
                        .any(|(file, message)| c.contains(file) && c.contains(message))
                };
                let contained = caught.iter().filter(|c| known(c)).count();
                KNOWN_SEEN.fetch_add(contained, Ordering::SeqCst);
                caught.retain(|c| !known(c));
                if !caught.is_empty() {
                    self.fail(
                        &format!(
                            "{what}: the engine caught a panic and went on: {}",
                            caught.join("; ")
                        ),
                        input,
                    );
                }
                value
            }
        }
    }
}

/// The test binary's name (`mutated_reviews`), for the replay line.
fn binary_name() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|s| {
            s.rsplit_once('-')
                .map_or(s.clone(), |(name, _)| name.to_owned())
        })
        .unwrap_or_default()
}
