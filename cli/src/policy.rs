//! `kspy policy …`: the offline policy commands. They run exactly the engine the webhook runs
//! (`kspy-admission`), so what passes here is what the cluster will decide.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Namespace;
use kspy_admission::policy::compiled::Match;
use kspy_admission::policy::spec::{
    API_VERSION, DefaultsSpec, KIND, LabelOperator, LabelSelectorSpec, MountTargetVolumes,
    PodSecurityDefault, TEST_KIND, TargetContainer, VolumeGrant,
};
use kspy_admission::policy::{LoadErrors, Mode};
use kspy_admission::testing::{
    SuiteError, TestError, check_suites, declared_namespaces, label_selecting, run_dir,
};
use kspy_admission::{
    Endpoint, Engine, NamespaceOrigin, NoPolicyVerdict, ParsedReview, PolicySet, Settings,
};

use crate::errors::KspyError;

/// `kspy policy` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Load and compile the policies of a directory (or of one file) and list them; read
    /// the DebugPolicyTest suites beside them too, and the review fixtures their cases name,
    /// without running them.
    #[command(
        after_help = "Exits 1 when a policy or a test suite does not load (a review fixture a case
names included), and when there is no policy at all; every error found is reported. Warnings
(a field the Pod type lacks, read from the review's object) are printed on standard error;
with --strict they fail the check too, as a CI job wants.

Examples:
  # Check the shipped library; a broken file is reported with file, document, policy and field
  {prog} policy check policies/

  # Check one file, as kubectl -f takes one
  {prog} policy check policies/sre.yaml

  # In CI: a warning fails the check
  {prog} policy check --strict policies/"
    )]
    Check {
        /// A directory of policy files (every *.yaml and *.yml under it), or one policy file.
        #[arg(value_name = "PATH")]
        dir: PathBuf,
        /// Exit 1 when there is any warning, after reporting everything.
        #[arg(long)]
        strict: bool,
    },
    /// Judge one AdmissionReview offline and print the AdmissionReview the webhook would return.
    #[command(
        after_help = "Prints the whole response review (apiVersion, kind, response), the patch
base64-encoded as the API server receives it. Says on standard error when the review adds no debug container (kspy allows it without
consulting any policy), and warns when /validate would answer
otherwise after the policies' own /mutate defaults, which the API server applies first, and when
no test suite declares the review's namespace, so that a policy selecting namespaces by label did
not apply. Exits 0 whatever the verdict; non-zero only when the policies or the review cannot be
read, and when there is no policy at all.

Examples:
  # What would /validate answer?
  {prog} policy eval --policies policies/ policies/fixtures/attach-sre-ptrace.json
  # What would /mutate inject?
  {prog} policy eval --policies policies/ --mutate policies/fixtures/attach-dev-plain.json"
    )]
    Eval {
        /// A directory of policy files (every *.yaml and *.yml under it), or one policy
        /// file; the DebugPolicyTest suites there declare the namespaces.
        #[arg(long, value_name = "PATH")]
        policies: PathBuf,
        /// Answer as /mutate (defaults patch) instead of /validate (verdict).
        #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_value = "false", hide_default_value = true, default_missing_value = "true",
              value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
        mutate: bool,
        /// A Namespace (YAML or JSON) to judge with; by default the namespaces declared by the
        /// test suites under --policies, looked up by the review's namespace.
        #[arg(long, value_name = "FILE")]
        namespace: Option<PathBuf>,
        /// Allow requests no policy applies to, as the webhook's --no-policy-allows does.
        #[arg(long, value_name = "BOOL", num_args = 0..=1, require_equals = true,
              default_value = "false", hide_default_value = true, default_missing_value = "true",
              value_parser = crate::args::parse_bool, action = clap::ArgAction::Set)]
        no_policy_allows: bool,
        /// The AdmissionReview JSON file ("-" for standard input).
        review: PathBuf,
    },
    /// Run the DebugPolicyTest cases that live beside the policies.
    #[command(
        after_help = "Prints a table of cases, and for each failure what was expected and what came.
Warns on standard error when no suite declares a case's namespace, so that a policy selecting
namespaces by label did not apply (or, a guardrail, denied unchecked). Reports every error in
the suites on standard error, and runs the cases that read. Exits 1 when a case fails (with
--strict also when there is any warning), and 3 when not every case could run: the policies or a
suite do not load (every error is reported), a case's review does not read (ERROR in the
table), or there is no case at all.

Examples:
  {prog} policy test policies/
  {prog} policy test --strict policies/"
    )]
    Test {
        /// Directory of policies and their tests.
        dir: PathBuf,
        /// Exit 1 when there is any warning (a policy's, or a case's), after running every
        /// case and printing the results.
        #[arg(long)]
        strict: bool,
    },
    /// Explain a policy in words: whom it serves, what it grants, what it checks, which
    /// defaults it sets.
    #[command(after_help = "Examples:
  {prog} policy explain --policies policies/ sre-debug
  {prog} policy explain --policies policies/sre.yaml sre-debug")]
    Explain {
        /// A directory of policy files, or one policy file.
        #[arg(long, value_name = "PATH")]
        policies: PathBuf,
        /// The policy name.
        name: String,
    },
}

/// Runs a `kspy policy` subcommand.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let code = match cmd {
        PolicyCommand::Check { dir, strict } => check(&dir, strict, &mut out),
        PolicyCommand::Eval {
            policies,
            mutate,
            namespace,
            no_policy_allows,
            review,
        } => eval(
            &policies,
            mutate,
            namespace.as_deref(),
            no_policy_allows,
            &review,
            &mut out,
        ),
        PolicyCommand::Test { dir, strict } => test(&dir, strict, &mut out),
        PolicyCommand::Explain { policies, name } => explain(&policies, &name, &mut out),
    }?;
    out.flush()?;
    Ok(code)
}

/// The hint for policies that do not load, from what went wrong.
fn load_hint(path: &Path, errors: &LoadErrors) -> String {
    let errors = errors.errors();
    if errors.iter().any(|e| e.field.as_deref() == Some("kind")) {
        format!(
            "a policy directory holds only {KIND} and {TEST_KIND} documents (and a kustomize \
             Kustomization, which is skipped), and every *.yaml and *.yml file under {} is \
             read: move other YAML elsewhere, or check the policy files one at a time: \
             `{} policy check FILE`",
            path.display(),
            crate::prog()
        )
    } else if errors.iter().all(|e| e.field.is_some()) {
        "fix the fields named above; nothing was loaded".to_string()
    } else {
        "fix the files named above; nothing was loaded".to_string()
    }
}

fn load_failed(path: &Path, errors: &LoadErrors) -> KspyError {
    let n = errors.errors().len();
    KspyError::new(format!(
        "cannot load the policies at {}: {n} error{}",
        path.display(),
        if n == 1 { "" } else { "s" }
    ))
    .details(errors.errors().iter().map(ToString::to_string))
    .hint(load_hint(path, errors))
}

/// What a command takes: `test` needs a directory (its fixtures are relative to the suites),
/// the others a directory or one policy file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    DirOrFile,
    Dir,
}

/// Whether `path` is a directory; an error saying so when it does not exist, with a hint
/// saying what the command takes.
fn is_dir(path: &Path, takes: Takes) -> Result<bool, KspyError> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(meta.is_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(KspyError::new(format!(
            "{} does not exist",
            path.display()
        ))
        .hint(match takes {
            Takes::DirOrFile => {
                "give a directory of policy files (for example policies/) or one policy file"
                    .to_string()
            }
            Takes::Dir => format!(
                "give the directory that holds the policies and their {TEST_KIND} suites \
                 (for example policies/)"
            ),
        })),
        Err(e) => Err(KspyError::new(format!("cannot read {}", path.display())).source(e)),
    }
}

/// The policies at `path`, which is a directory (every `*.yaml` and `*.yml` under it) or one
/// file (read whatever its name, as `kubectl -f` does), and how many files were read.
fn load(path: &Path) -> Result<(PolicySet, usize), KspyError> {
    if is_dir(path, Takes::DirOrFile)? {
        let set = PolicySet::load_dir(path).map_err(|e| load_failed(path, &e))?;
        warn_about(&set);
        let files = set.files().len();
        return Ok((set, files));
    }
    // The loader's own reader: it counts the bytes while reading (a device such as /dev/zero
    // says 0 beforehand, and was read until memory ran out) and refuses pipes, which the
    // suites beside the policies would be read from a second time.
    let text = kspy_admission::policy::load::read_file(path).map_err(|why| {
        KspyError::new(format!("cannot read policy file {}", path.display())).details([why])
    })?;
    let set = PolicySet::from_yaml(&path.display().to_string(), &text)
        .map_err(|e| load_failed(path, &e))?;
    warn_about(&set);
    Ok((set, 1))
}

/// What loaded but is likely a mistake, on stderr (stdout stays the command's answer); the
/// webhook logs the same at each load.
fn warn_about(set: &PolicySet) {
    for w in set.warnings() {
        eprintln!("{}: warning: {w}", crate::prog());
    }
}

/// [`load`], refusing a path without any policy: checking nothing is not a pass.
fn load_some(path: &Path) -> Result<(PolicySet, usize), KspyError> {
    let (set, files) = load(path)?;
    if !set.is_empty() {
        return Ok((set, files));
    }
    let headline = match files {
        0 => format!("no policy files (*.yaml, *.yml) under {}", path.display()),
        1 => format!("no {KIND} in {}", path.display()),
        n => format!("no {KIND} in the {n} files under {}", path.display()),
    };
    Err(KspyError::new(headline).hint(format!(
        "a policy is a YAML document with `apiVersion: {API_VERSION}` and `kind: {KIND}`; \
         give the directory that holds them (for example policies/) or one policy file"
    )))
}

/// A directory of policies and test suites (`test`): the suites beside the policies declare
/// the namespaces, and the cases' fixtures are relative to them, so one file is not enough.
fn require_dir(path: &Path) -> Result<(), KspyError> {
    if is_dir(path, Takes::Dir)? {
        return Ok(());
    }
    Err(
        KspyError::new(format!("{} is not a directory", path.display())).hint(format!(
            "give the directory that holds the policies and their {TEST_KIND} suites, \
             which declare the namespaces; the directory of this file is {}",
            path.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .display()
        )),
    )
}

/// Every problem found in the suites under `dir`, one a line, and `hint`.
fn suite_errors(dir: &Path, errors: &[SuiteError], hint: impl Into<String>) -> KspyError {
    let n = errors.len();
    KspyError::new(format!(
        "{n} error{} in the {TEST_KIND} suites at {}",
        if n == 1 { "" } else { "s" },
        dir.display()
    ))
    .details(errors.iter().map(ToString::to_string))
    .hint(hint)
}

/// `failure` of the policies at `path`, with the errors of the test suites there added: a
/// broken policy must not hide a broken suite until the next run. The suites are read as
/// `check` reads them (fixtures included), independently of the policies.
fn with_suite_errors(failure: KspyError, path: &Path) -> KspyError {
    // A path that does not exist holds no suites: reading them again only repeats "No such
    // file or directory" as a suite error, and the hint would ask to fix suites there are none of.
    if !path.exists() {
        return failure;
    }
    let Err(TestError::Suites(errors)) = check_suites(path) else {
        return failure;
    };
    // A file that is not YAML fails both readers alike: said once, among the policies' errors.
    let errors: Vec<&SuiteError> = errors
        .errors()
        .iter()
        .filter(|e| !failure.details.contains(&e.to_string()))
        .collect();
    if errors.is_empty() {
        return failure;
    }
    let n = errors.len();
    let hint = failure
        .hint
        .clone()
        .map(|h| format!("{h}; fix the suites named after them too"));
    let mut failure = failure.details([format!(
        "and {n} error{} in the {TEST_KIND} suites there:",
        if n == 1 { "" } else { "s" }
    )]);
    failure = failure.details(errors.iter().map(|e| format!("  {e}")));
    failure.hint = hint;
    failure
}

/// Why the suites under `dir` could not be read or run, for `test` and `eval`; load errors get
/// the same message as `check`.
fn test_failed(dir: &Path, e: TestError) -> KspyError {
    match e {
        TestError::Policies(errors) => load_failed(dir, &errors),
        TestError::Suites(errors) => suite_errors(
            dir,
            errors.errors(),
            "fix the suites named above: the namespaces they declare are read from them",
        ),
        other => KspyError::new(format!("cannot run the tests under {}", dir.display()))
            .details([other.to_string()]),
    }
}

/// A mode as policy files spell it (`Enforce`, `Warn`, `Audit`).
fn mode_name(mode: Mode) -> String {
    serde_json::to_value(mode)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{mode:?}"))
}

fn check(dir: &Path, strict: bool, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let (set, files) = load_some(dir).map_err(|e| with_suite_errors(e, dir))?;
    let suites = check_suites(dir).map_err(|e| match e {
        TestError::Suites(errors) => suite_errors(
            dir,
            errors.errors(),
            format!(
                "fix the suites named above; `{} policy test` would fail the cases named or not \
                 run them, and would run no case of a suite whose own fields are wrong",
                crate::prog()
            ),
        ),
        other => KspyError::new(format!(
            "the {TEST_KIND} suites at {} do not load",
            dir.display()
        ))
        .details([other.to_string()]),
    })?;
    writeln!(
        out,
        "{} {} in {files} {} under {}:",
        set.len(),
        if set.len() == 1 { "policy" } else { "policies" },
        if files == 1 { "file" } else { "files" },
        dir.display()
    )?;
    for p in set.policies() {
        writeln!(
            out,
            "  {:<28} {:<8} {}",
            p.name,
            mode_name(p.mode),
            p.origin.file
        )?;
    }
    if suites.suites > 0 {
        writeln!(
            out,
            "{} {TEST_KIND} {} with {} {} read (not run: `{} policy test` runs them)",
            suites.suites,
            if suites.suites == 1 {
                "suite"
            } else {
                "suites"
            },
            suites.cases,
            if suites.cases == 1 { "case" } else { "cases" },
            crate::prog()
        )?;
    }
    if strict {
        out.flush()?;
        fail_on_warnings(set.warnings().len())?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Under `--strict`, the error for `count` warnings printed above; none for none.
fn fail_on_warnings(count: usize) -> Result<(), KspyError> {
    if count == 0 {
        return Ok(());
    }
    Err(KspyError::new(format!(
        "{count} {} above, and --strict fails on warnings",
        if count == 1 { "warning" } else { "warnings" }
    ))
    .hint("fix what each warning names; without --strict they are reported and do not fail"))
}

/// The most of an AdmissionReview `policy eval` reads: what the webhook reads at most.
const REVIEW_LIMIT: u64 = kspy_admission::testing::MAX_PATCHED_REVIEW_BYTES as u64;

/// Reads `path` whole (`-`: standard input), refusing more than `limit` bytes. The bytes are
/// counted while reading: a device (`/dev/zero`) or a pipe says nothing of its size
/// beforehand, and was read until memory ran out.
/// `why` completes "the most …": whose limit it is.
fn read_limited(path: &Path, limit: u64, why: &str) -> Result<Vec<u8>, KspyError> {
    use std::io::Read;
    let stdin = path == Path::new("-");
    let name = if stdin {
        "standard input".to_string()
    } else {
        path.display().to_string()
    };
    let cannot_read = |e: std::io::Error| KspyError::new(format!("cannot read {name}")).source(e);
    let reader: Box<dyn Read> = if stdin {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).map_err(cannot_read)?)
    };
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > limit {
        return Err(KspyError::new(format!(
            "{name} holds more than {limit} bytes, the most {why}"
        )));
    }
    Ok(bytes)
}

/// The one Namespace of a `--namespace` file. An empty file is refused rather than read as a
/// Namespace without labels, which would judge the review by the wrong policies and exit 0.
fn read_namespace(path: &Path, reviewed: Option<&str>) -> Result<Namespace, KspyError> {
    let bytes = read_limited(
        path,
        kspy_admission::policy::load::MAX_FILE_BYTES,
        "kspy reads of a Namespace file",
    )?;
    let text = String::from_utf8(bytes).map_err(|_| {
        KspyError::new(format!("{} is not a Namespace", path.display()))
            .details(["the file is not UTF-8 text"])
    })?;
    let not_a_namespace = |e: serde_saphyr::Error| {
        KspyError::new(format!("{} is not a Namespace", path.display())).source(e)
    };
    let mut docs: Vec<Namespace> =
        serde_saphyr::from_str_multiple(&text).map_err(not_a_namespace)?;
    let the_one = match reviewed {
        Some(n) => format!("the review's, {n:?}"),
        None => "the one to judge the review with".to_string(),
    };
    let hint = format!(
        "--namespace takes a file of one Namespace ({the_one}), as `kubectl get namespace \
         NAME -o yaml` writes it; or leave out --namespace to use the namespaces the test \
         suites declare"
    );
    match docs.len() {
        1 => Ok(docs.remove(0)),
        0 => Err(KspyError::new(format!(
            "{} holds no Namespace: it is empty, or only comments",
            path.display()
        ))
        .hint(hint)),
        n => Err(KspyError::new(format!(
            "{} holds {n} YAML documents; --namespace takes one Namespace",
            path.display()
        ))
        .hint(hint)),
    }
}

fn eval(
    dir: &Path,
    mutate: bool,
    namespace_file: Option<&Path>,
    no_policy_allows: bool,
    review_path: &Path,
    out: &mut impl Write,
) -> anyhow::Result<ExitCode> {
    let settings = Settings {
        no_policy: if no_policy_allows {
            NoPolicyVerdict::Allow
        } else {
            NoPolicyVerdict::Deny
        },
        namespaces: NamespaceOrigin::Declared {
            under: dir.display().to_string(),
        },
        ..Settings::default()
    };
    let (set, _) = load_some(dir)?;
    let engine = Engine::new(set, settings).map_err(|e| anyhow::anyhow!("{e}"))?;
    let body = read_limited(
        review_path,
        REVIEW_LIMIT,
        "the webhook reads of an AdmissionReview",
    )?;
    let review = ParsedReview::from_slice(&body).with_context(|| {
        if review_path == Path::new("-") {
            "standard input is not a reviewable AdmissionReview".to_string()
        } else {
            format!(
                "{} is not a reviewable AdmissionReview",
                review_path.display()
            )
        }
    })?;
    let namespaces: BTreeMap<String, Namespace> = match namespace_file {
        Some(path) => {
            let ns = read_namespace(path, review.namespace())?;
            let name = ns.metadata.name.clone().unwrap_or_default();
            // Another namespace's labels would judge the review by policies that do not
            // apply to it (a production guardrail skipped for a team namespace's labels).
            if let Some(reviewed) = review.namespace()
                && !name.is_empty()
                && name != reviewed
            {
                anyhow::bail!(
                    "{} is Namespace {name:?}, but the review is in namespace {reviewed:?}: \
                     give the Namespace {reviewed:?} (its labels decide which policies apply), \
                     or leave out --namespace to use the one the test suites declare",
                    path.display()
                );
            }
            [(name, ns)].into_iter().collect()
        }
        None => declared_namespaces(dir).map_err(|e| test_failed(dir, e))?,
    };
    let namespace = match (namespace_file, review.namespace()) {
        (Some(_), _) => namespaces.values().next(),
        (None, Some(n)) => namespaces.get(n),
        (None, None) => None,
    };
    let endpoint = if mutate {
        Endpoint::Mutate
    } else {
        Endpoint::Validate
    };
    let judgement = engine.judge(&review, endpoint, namespace);
    // The answer alone ("allowed": true, no annotations) does not say that no policy decided.
    if kspy_admission::testing::consults_no_policy(&judgement) {
        eprintln!(
            "note: the review adds no debug container (no new ephemeral container in its \
             object, no debug copy or node pod), so kspy allows it without consulting any \
             policy; if it is meant to add one, check its object and oldObject"
        );
    }
    // Offline, a namespace no suite declares has unknown labels: a policy that selects
    // namespaces by label then does not apply, and a denial lists it among the policies for
    // the action as if the user were outside it. Say why on stderr (stdout stays the answer).
    // With --namespace, `namespace` is always that file's.
    if namespace.is_none()
        && let (Some(action), Some(ns)) = (judgement.action, review.namespace())
    {
        let unknown = label_selecting(engine.policies(), &review, endpoint, action, ns);
        if !unknown.is_empty() {
            eprintln!(
                "{}: warning: the labels of namespace {ns:?} are unknown (no {TEST_KIND} \
                 under {} declares it in spec.namespaces), so {}; declare the namespace with \
                 its labels in a {TEST_KIND}'s spec.namespaces beside the policies, or give \
                 --namespace FILE",
                crate::prog(),
                dir.display(),
                unknown.consequences()
            );
        }
    }
    let encoded = judgement
        .encode()
        .context("cannot encode the AdmissionReview")?;
    let answer: serde_json::Value = serde_json::from_slice(&encoded)?;
    serde_json::to_writer_pretty(&mut *out, &answer)?;
    writeln!(out)?;
    // In a cluster /validate judges the review after kspy's own /mutate patch: say so when
    // that verdict differs from the one printed (stdout stays the answer as sent).
    if !mutate
        && let Ok(sent) = serde_json::from_slice::<serde_json::Value>(&body)
        && let Some(differs) = kspy_admission::testing::verdict_after_own_defaults(
            &engine,
            &review,
            sent,
            namespace,
            judgement.response.allowed,
        )
    {
        eprintln!("{}: warning: {differs}", crate::prog());
    }
    Ok(ExitCode::SUCCESS)
}

/// `kspy policy test`'s exit code when not every case could run: the directory, the policies
/// or the suites do not read, or there is no case at all. 1 is kept for cases that ran and
/// failed (and `--strict` warnings), so a CI job can tell a broken file from a broken policy.
const EXIT_NOT_RUN: u8 = 3;

fn test(dir: &Path, strict: bool, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let not_run = |e: KspyError| e.exit_code(EXIT_NOT_RUN);
    require_dir(dir).map_err(not_run)?;
    let report = run_dir(dir, Settings::default()).map_err(|e| {
        not_run(match e {
            TestError::Policies(_) => with_suite_errors(test_failed(dir, e), dir),
            other => test_failed(dir, other),
        })
    })?;
    if report.results.is_empty() && report.suite_errors.is_empty() {
        return Err(not_run(
            KspyError::new(format!("no {TEST_KIND} cases under {}", dir.display())).hint(format!(
                "put `kind: {TEST_KIND}` documents beside your policies"
            )),
        )
        .into());
    }
    // What the authors should know, though it decides nothing: on stderr, as eval's.
    for w in &report.policy_warnings {
        eprintln!("{}: warning: {w}", crate::prog());
    }
    for r in &report.results {
        for w in &r.warnings {
            eprintln!(
                "{}: warning: {} / {} ({}): {w}",
                crate::prog(),
                r.suite,
                r.case,
                r.file.display()
            );
        }
    }
    // The cases that read ran, whatever is wrong with other suites: their results first, then
    // every suite error.
    if !report.results.is_empty() {
        print_results(&report.results, out)?;
    }
    if !report.suite_errors.is_empty() {
        out.flush()?;
        let hint = if report.results.is_empty() {
            "fix the suites named above; no case was run"
        } else {
            "fix the suites named above; the cases they name did not run, nor any case of a \
             suite whose own fields are wrong (the results of the others are above)"
        };
        return Err(not_run(suite_errors(dir, &report.suite_errors, hint)).into());
    }
    if report.not_run() != 0 {
        return Ok(ExitCode::from(EXIT_NOT_RUN));
    }
    if report.failed() != 0 {
        return Ok(ExitCode::FAILURE);
    }
    if strict {
        out.flush()?;
        let case_warnings: usize = report.results.iter().map(|r| r.warnings.len()).sum();
        fail_on_warnings(report.policy_warnings.len() + case_warnings)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The table of cases, what each failure was, and how many passed.
fn print_results(
    results: &[kspy_admission::testing::CaseResult],
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let width = results
        .iter()
        .map(|r| r.suite.len())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:>3}  {:<width$}  {:<6}  CASE",
        "#", "SUITE", "RESULT"
    )?;
    for (i, r) in results.iter().enumerate() {
        let result = result_label(r);
        writeln!(
            out,
            "{:>3}  {:<width$}  {:<6}  {}",
            i + 1,
            r.suite,
            result,
            r.case
        )?;
    }
    for r in results.iter().filter(|r| !r.passed()) {
        // `FILE:LINE:COLUMN` of the case, as compilers write it, so that editors jump there.
        let at =
            r.at.map(|(line, column)| format!(":{line}:{column}"))
                .unwrap_or_default();
        writeln!(
            out,
            "\n{} {} / {} ({}{at})",
            result_label(r),
            r.suite,
            r.case,
            r.file.display()
        )?;
        for f in &r.failures {
            // A denial's own lines ("- container …") stay under their failure, not beside it.
            let mut lines = f.lines();
            writeln!(out, "  - {}", lines.next().unwrap_or_default())?;
            for line in lines {
                writeln!(out, "      {line}")?;
            }
        }
    }
    let failed = results.iter().filter(|r| r.ran && !r.passed()).count();
    let not_run = results.iter().filter(|r| !r.ran).count();
    write!(
        out,
        "\n{} passed, {failed} failed",
        results.len() - failed - not_run
    )?;
    if not_run != 0 {
        write!(out, ", {not_run} not run")?;
    }
    writeln!(out)?;
    Ok(())
}

/// A case's word in the table: `ERROR` for one that could not be judged (its review does not
/// read), which is a broken suite rather than a policy deciding otherwise than expected.
fn result_label(r: &kspy_admission::testing::CaseResult) -> &'static str {
    if !r.ran {
        "ERROR"
    } else if r.passed() {
        "pass"
    } else {
        "FAIL"
    }
}

/// A label selector in kubectl's syntax: `env=production,team in (a,b),debug,!frozen`.
fn selector(sel: &LabelSelectorSpec) -> String {
    let mut parts: Vec<String> = sel
        .match_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    parts.extend(sel.match_expressions.iter().map(|r| match r.operator {
        LabelOperator::In => format!("{} in ({})", r.key, r.values.join(",")),
        LabelOperator::NotIn => format!("{} notin ({})", r.key, r.values.join(",")),
        LabelOperator::Exists => r.key.clone(),
        LabelOperator::DoesNotExist => format!("!{}", r.key),
    }));
    parts.join(",")
}

/// "to groups [sre] in namespaces except [kube-system] for [attach]": whom and where a policy
/// applies, from its static match.
fn describe_match(m: &Match) -> String {
    let list = |patterns: &[kspy_admission::glob::NamePattern]| {
        let names: Vec<&str> = patterns.iter().map(|p| p.as_str()).collect();
        format!("[{}]", names.join(", "))
    };
    let mut who = Vec::new();
    if !m.groups.is_empty() {
        who.push(format!("groups {}", list(&m.groups)));
    }
    if !m.users.is_empty() {
        who.push(format!("users {}", list(&m.users)));
    }
    if !m.service_accounts.is_empty() {
        who.push(format!("service accounts {}", list(&m.service_accounts)));
    }
    let mut text = if who.is_empty() {
        "to everyone".to_string()
    } else {
        format!("to {}", who.join(" and "))
    };
    if !m.namespaces.is_empty()
        || !m.exclude_namespaces.is_empty()
        || m.namespace_selector.is_some()
    {
        text.push_str(" in namespaces");
        if !m.namespaces.is_empty() {
            text.push_str(&format!(" {}", list(&m.namespaces)));
        }
        if !m.exclude_namespaces.is_empty() {
            text.push_str(&format!(" except {}", list(&m.exclude_namespaces)));
        }
        match m.namespace_selector.as_ref().map(selector) {
            Some(s) if s.is_empty() => text.push_str(" with any labels"),
            Some(s) => text.push_str(&format!(" with labels [{s}]")),
            None => {}
        }
    }
    if !m.actions.is_empty() {
        let actions: Vec<&str> = m.actions.iter().map(|a| a.as_str()).collect();
        text.push_str(&format!(" for [{}]", actions.join(", ")));
    }
    text
}

/// `grant.mountVolumes` as policy files spell it, with what it means.
fn volume_grant(v: VolumeGrant) -> &'static str {
    match v {
        VolumeGrant::None => "none",
        VolumeGrant::NonSecret => {
            "nonSecret (every pod volume but Secrets, service-account tokens, inline CSI volumes \
             and kinds kspy does not know)"
        }
        VolumeGrant::All => "all (every pod volume; env from Secrets too)",
    }
}

fn explain(dir: &Path, name: &str, out: &mut impl Write) -> anyhow::Result<ExitCode> {
    let (set, _) = load_some(dir)?;
    let Some(p) = set.get(name) else {
        return Err(
            KspyError::new(format!("no policy named {name:?} in {}", dir.display()))
                .details([format!("the policies: {}", set.names().join(", "))])
                .hint(format!(
                    "list them with `{} policy check {}`",
                    crate::prog(),
                    dir.display()
                ))
                .into(),
        );
    };
    writeln!(
        out,
        "{} ({}, {} document {})",
        p.name,
        mode_name(p.mode),
        p.origin.file,
        p.origin.document
    )?;
    if let Some(d) = &p.description {
        writeln!(out, "  {d}")?;
    }
    writeln!(out, "applies {}", describe_match(&p.matcher))?;
    // Conditions and checks read them as variables.NAME: without their expressions
    // `when prod: variables.isProd` would explain nothing.
    for (n, v) in &p.variables {
        writeln!(out, "  where variables.{n} = {}", v.source())?;
    }
    for (n, c) in &p.conditions {
        writeln!(out, "  when {n}: {}", c.source())?;
    }
    let g = &p.grant;
    let defaults = defaults_lines(&p.defaults);
    if p.mode != Mode::Enforce {
        writeln!(
            out,
            "grants nothing ({} mode only reports)",
            mode_name(p.mode)
        )?;
    } else if g.is_empty() && !p.validations.is_empty() {
        writeln!(out, "grants nothing: a guardrail, its validations deny")?;
    } else if g.is_empty() && !defaults.is_empty() {
        writeln!(
            out,
            "grants nothing: it sets defaults for the debug containers it applies to"
        )?;
    } else if g.is_empty() {
        writeln!(
            out,
            "grants nothing, checks nothing and sets no defaults: it has no effect"
        )?;
    } else {
        writeln!(out, "grants:")?;
        let images: Vec<&str> = g.images.iter().map(|i| i.as_str()).collect();
        if !images.is_empty() {
            writeln!(out, "  images        {}", images.join(", "))?;
        }
        let caps: Vec<&str> = g.capabilities.iter().map(|c| c.as_str()).collect();
        if !caps.is_empty() {
            writeln!(out, "  capabilities  {}", caps.join(", "))?;
        }
        writeln!(
            out,
            "  run as root   {}",
            if g.run_as_root {
                "yes"
            } else {
                "no (another user only with allowPrivilegeEscalation: false)"
            }
        )?;
        writeln!(
            out,
            "  privileged    {}",
            if g.privileged { "yes" } else { "no" }
        )?;
        writeln!(out, "  pod volumes   {}", volume_grant(g.mount_volumes))?;
        let ns: Vec<&str> = g.host_namespaces.iter().map(|h| h.as_str()).collect();
        if !ns.is_empty() {
            writeln!(out, "  host ns       {}", ns.join(", "))?;
        }
        for h in &g.host_paths {
            writeln!(
                out,
                "  host path     {}{}",
                h.prefix,
                if h.read_only {
                    " (read-only)"
                } else {
                    " (read-write)"
                }
            )?;
        }
    }
    if !defaults.is_empty() {
        if p.mode == Mode::Enforce {
            writeln!(
                out,
                "defaults (fields the user left unset; the first policy in load order to set \
                 one wins):"
            )?;
        } else {
            writeln!(
                out,
                "defaults (not applied: only Enforce policies set defaults):"
            )?;
        }
        for line in &defaults {
            writeln!(out, "  {line}")?;
        }
    }
    for (i, v) in p.validations.iter().enumerate() {
        writeln!(out, "checks {}: {}", i + 1, v.expression.source())?;
        match (&v.message_expression, &v.message) {
            (Some(e), Some(m)) => writeln!(
                out,
                "  messageExpression: {}\n  message: {m} (when the expression fails)",
                e.source()
            )?,
            (Some(e), None) => writeln!(out, "  messageExpression: {}", e.source())?,
            (None, Some(m)) => writeln!(out, "  message: {m}")?,
            (None, None) => writeln!(out, "  message: (the rule)")?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `spec.defaults` in the policy files' spellings, one field a line; empty when none is set.
fn defaults_lines(d: &DefaultsSpec) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(t) = d.target_container {
        let t = match t {
            TargetContainer::First => "first",
            TargetContainer::Sole => "sole",
            TargetContainer::None => "none",
        };
        lines.push(format!("targetContainer     {t}"));
    }
    if let Some(m) = d.mount_target_volumes {
        let m = match m {
            MountTargetVolumes::ReadOnly => "readOnly",
            MountTargetVolumes::AsTarget => "asTarget",
            MountTargetVolumes::None => "none",
        };
        lines.push(format!("mountTargetVolumes  {m}"));
    }
    if let Some(i) = d.image_pull_policy {
        lines.push(format!("imagePullPolicy     {}", i.as_str()));
    }
    if !d.env.is_empty() {
        let env: Vec<String> = d
            .env
            .iter()
            .map(|e| format!("{}={}", e.name, e.value))
            .collect();
        lines.push(format!("env                 {}", env.join(", ")));
    }
    if let Some(sc) = &d.security_context {
        lines.push(format!("securityContext     {sc}"));
    }
    if let Some(ps) = d.pod_security {
        let ps = match ps {
            PodSecurityDefault::Conform => "conform",
            PodSecurityDefault::None => "none",
        };
        lines.push(format!("podSecurity         {ps}"));
    }
    lines
}
