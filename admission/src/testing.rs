//! Policy test suites: `DebugPolicyTest` documents beside the policies, run with exactly the
//! engine the webhook runs (`kspy policy test DIR`).
//!
//! ```yaml
//! apiVersion: kspy.dev/v1alpha1
//! kind: DebugPolicyTest
//! metadata: {name: sre}
//! spec:
//!   namespaces:                       # Namespace objects every case sees (labels only);
//!                                     # another suite may declare one again, same labels only
//!     - {name: prod-payments, labels: {env: production}}
//!   cases:
//!     - name: an SRE traces a production pod
//!       review: fixtures/attach-sre-ptrace.json   # relative to this file
//!       endpoint: validate                        # or mutate
//!       userInfo: {username: alice, groups: [sre]} # optional override of the fixture's
//!       expect:
//!         allowed: true
//!         policies: [sre-debug]                    # compared as a set
//!         messageContains: [...]                   # substrings of the denial message
//!         messageExcludes: [...]                   # only with allowed: false
//!         warningsContain: [...]
//!         auditAnnotations: {action: attach}       # each must be present with this value
//!         patch: [{op: add, path: ..., value: ...}] # the exact JSON patch (endpoint: mutate)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use serde::Deserialize;
use serde_json::Value;

use crate::classify::Action;
use crate::engine::{Endpoint, Engine, Judgement, NamespaceOrigin, Settings, Verdict};
use crate::policy::compiled::{MatchInput, MatchOutcome};
use crate::policy::load::{
    Positions, collect_files, read_file, unknown_field_message, yaml_documents, yaml_error,
};
use crate::policy::spec::{API_VERSION, TEST_KIND};
use crate::policy::{LoadErrors, LoadWarning, Mode, PolicySet};
use crate::review::ParsedReview;

/// A test-suite document, its cases kept as JSON: each case is read on its own, so that every
/// broken case is reported, and the others still run.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TestDocument {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: TestMetadata,
    spec: TestSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestMetadata {
    name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TestSpec {
    #[serde(default)]
    namespaces: Vec<NamespaceSpec>,
    #[serde(default)]
    cases: Vec<Value>,
}

/// A Namespace as tests declare it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespaceSpec {
    /// The namespace name.
    pub name: String,
    /// Its labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TestCase {
    name: String,
    review: String,
    /// An RFC 6902 patch applied to the fixture first: one case per variation, without a copy
    /// of the whole review for each.
    #[serde(default)]
    review_patch: Option<json_patch::Patch>,
    #[serde(default)]
    endpoint: EndpointSpec,
    #[serde(default)]
    user_info: Option<UserInfoOverride>,
    expect: Expectation,
}

#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
enum EndpointSpec {
    #[default]
    Validate,
    Mutate,
}

/// Who asks instead, in the review's `userInfo` shape (`system:authenticated` is added to
/// the groups, as the API server adds it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserInfoOverride {
    username: String,
    #[serde(default)]
    groups: Vec<String>,
    /// The user's UID, when a policy reads `request.userInfo.uid`.
    #[serde(default)]
    uid: Option<String>,
    /// Authenticator-provided extras (`request.userInfo.extra`), such as
    /// `authentication.kubernetes.io/credential-id`.
    #[serde(default)]
    extra: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Expectation {
    allowed: bool,
    #[serde(default)]
    policies: Option<Vec<String>>,
    #[serde(default)]
    message_contains: Vec<String>,
    #[serde(default)]
    message_excludes: Vec<String>,
    #[serde(default)]
    warnings_contain: Vec<String>,
    #[serde(default)]
    audit_annotations: BTreeMap<String, String>,
    #[serde(default)]
    patch: Option<Vec<Value>>,
}

/// One problem in a test suite: where it is (file, document, suite, case, field) and what is
/// wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteError {
    /// The file.
    pub file: String,
    /// The 1-based document number, when the problem is inside one.
    pub document: Option<usize>,
    /// The suite (`metadata.name`), when it reads.
    pub suite: Option<String>,
    /// The case (its `name`), when the problem is in one that has a name.
    pub case: Option<String>,
    /// The field path, e.g. `spec.cases[1].expect`.
    pub field: Option<String>,
    /// The 1-based line and column in `file` where the field is written (the nearest field
    /// above it when it is missing), when the problem is inside a document.
    pub at: Option<(u64, u64)>,
    /// What is wrong, and what to do.
    pub message: String,
}

impl fmt::Display for SuiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names come from the directory and the suites: one that could forge lines (or
        // terminal escapes) in the report is quoted, as the policy loader quotes them.
        let forged = |s: &str| s.chars().any(char::is_control);
        if forged(&self.file) {
            write!(f, "{:?}", self.file)?;
        } else {
            write!(f, "{}", self.file)?;
        }
        // `FILE:LINE:COLUMN`, as compilers write it, so that editors and terminals jump there.
        if let Some((line, column)) = self.at {
            write!(f, ":{line}:{column}")?;
        }
        if let Some(d) = self.document {
            write!(f, ": document {d}")?;
        }
        let suite = self.suite.as_deref().map(|s| {
            if forged(s) || s.chars().any(char::is_whitespace) {
                format!("suite {s:?}")
            } else {
                format!("suite {s}")
            }
        });
        let case = self.case.as_deref().map(|c| format!("case {c:?}"));
        match (suite, case) {
            (Some(s), Some(c)) => write!(f, " ({s}, {c})")?,
            (Some(x), None) | (None, Some(x)) => write!(f, " ({x})")?,
            (None, None) => {}
        }
        if let Some(field) = &self.field {
            write!(f, ": {field}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found in the test suites of a directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SuiteErrors(Vec<SuiteError>);

impl SuiteErrors {
    /// The individual errors, in file order.
    pub fn errors(&self) -> &[SuiteError] {
        &self.0
    }
}

impl fmt::Display for SuiteErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "{n} error{} in {TEST_KIND} suites:",
            if n == 1 { "" } else { "s" }
        )?;
        for e in &self.0 {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

/// Why the suites could not be read, or the cases could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The policies do not load.
    #[error(transparent)]
    Policies(#[from] LoadErrors),
    /// Suites are malformed, or disagree about a namespace's labels: every such problem found.
    #[error(transparent)]
    Suites(#[from] SuiteErrors),
    /// The directory cannot be read.
    #[error("{0}")]
    Io(String),
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The suite (`metadata.name`).
    pub suite: String,
    /// The case name.
    pub case: String,
    /// The file that holds it.
    pub file: PathBuf,
    /// The 1-based line and column of the case in `file`, for a case that failed or did not
    /// run (a passing case is not looked up).
    pub at: Option<(u64, u64)>,
    /// What did not match; empty when it passed. A failure may span lines (a denial's
    /// message, a patch): the lines after the first are meant to be indented under it.
    pub failures: Vec<String>,
    /// False when the case could not be judged at all (its review does not read, or its
    /// namespace's labels are uncertain): its one failure says why. A case that did not run
    /// is a broken suite, not a policy that decides otherwise than expected.
    pub ran: bool,
    /// What the case's author should know though it does not decide pass or fail: a policy
    /// that selects namespaces by label did not apply, as no suite declares the namespace.
    pub warnings: Vec<String>,
}

impl CaseResult {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Every case's result.
#[derive(Debug, Clone, Default)]
pub struct TestReport {
    /// In file, then case order: the cases of the suites that read.
    pub results: Vec<CaseResult>,
    /// What is wrong with the suites, in file order. A case named here did not run (nor did
    /// every case of a document whose own fields are wrong); the others ran.
    pub suite_errors: Vec<SuiteError>,
    /// What loaded in the policies but is likely a mistake ([`PolicySet::warnings`]).
    pub policy_warnings: Vec<LoadWarning>,
}

impl TestReport {
    /// How many cases failed, counting those that did not run.
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.passed()).count()
    }

    /// How many cases could not be judged at all ([`CaseResult::ran`]).
    pub fn not_run(&self) -> usize {
        self.results.iter().filter(|r| !r.ran).count()
    }
}

/// One `DebugPolicyTest` document: what of it reads.
struct Suite {
    file: PathBuf,
    /// The 1-based document number in `file`.
    document: usize,
    /// `metadata.name`, when it reads.
    name: Option<String>,
    /// `spec.namespaces`; `None` when they do not read, and cases in a namespace no other
    /// suite declares cannot be judged.
    namespaces: Option<Vec<NamespaceSpec>>,
    /// The cases that read, with their index in `spec.cases`: none when the document's own
    /// fields do not.
    cases: Vec<(usize, TestCase)>,
    /// How many cases `spec.cases` lists.
    listed: usize,
}

impl Suite {
    /// `FILE document N`, for messages.
    fn origin(&self) -> String {
        format!("{} document {}", self.file.display(), self.document)
    }

    /// An error at `field` of this suite (of its case named `case`).
    fn error(&self, case: Option<&str>, field: String, message: String) -> SuiteError {
        SuiteError {
            file: self.file.display().to_string(),
            document: Some(self.document),
            suite: self.name.clone(),
            case: case.map(str::to_owned),
            field: Some(field),
            at: None,
            message,
        }
    }
}

/// The suites of a directory or file, and what is wrong with them.
#[derive(Default)]
struct Suites {
    suites: Vec<Suite>,
    errors: Vec<SuiteError>,
    /// A file could not be read as YAML: the suites in it, and their namespaces, are unknown.
    unread_files: bool,
}

/// The namespaces the suites declare, as every case sees them.
struct Declared {
    namespaces: BTreeMap<String, Namespace>,
    /// Declared with different labels: which apply is unknown, so their cases are not judged.
    conflicting: BTreeSet<String>,
    /// False when some suite's namespaces do not read: a namespace no other suite declares may
    /// be declared there, with labels that would change the verdict.
    complete: bool,
}

/// The namespaces declared by the test suites at `path` (a directory, every `*.yaml` and
/// `*.yml` under it, or one file), for `kspy policy eval` and the webhook's
/// `--namespace-lookup declared`. Any problem in the suites is an error, listing every one.
pub fn declared_namespaces(path: &Path) -> Result<BTreeMap<String, Namespace>, TestError> {
    let mut found = suites_at(path)?;
    let declared = namespaces_of(&found.suites, &mut found.errors);
    if !found.errors.is_empty() {
        locate(&mut found.errors);
        return Err(SuiteErrors(found.errors).into());
    }
    Ok(declared.namespaces)
}

/// What [`check_suites`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SuiteSummary {
    /// How many `DebugPolicyTest` documents.
    pub suites: usize,
    /// How many cases in them.
    pub cases: usize,
}

/// Reads and checks the test suites at `path` (a directory, every `*.yaml` and `*.yml` under
/// it, or one file) without running them, for `kspy policy check`: each document is well
/// formed, the namespaces the suites declare agree, and each case's review fixture is there
/// and reads, with its `reviewPatch`, as an AdmissionReview. Every problem found is in the
/// error.
pub fn check_suites(path: &Path) -> Result<SuiteSummary, TestError> {
    let mut found = suites_at(path)?;
    namespaces_of(&found.suites, &mut found.errors);
    // Fixtures are relative to their suite, and must lie under the directory checked (or the
    // file's own directory), as `run_dir` requires under its directory.
    let base = if path.is_dir() {
        path
    } else {
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
    };
    let root = base
        .canonicalize()
        .map_err(|e| TestError::Io(format!("{}: {e}", base.display())))?;
    for suite in &found.suites {
        for (j, case) in &suite.cases {
            if let Err((part, message)) = prepare_review(&root, &suite.file, case) {
                found.errors.push(suite.error(
                    Some(&case.name),
                    format!("spec.cases[{j}].{part}"),
                    message,
                ));
            }
        }
    }
    if !found.errors.is_empty() {
        locate(&mut found.errors);
        return Err(SuiteErrors(found.errors).into());
    }
    Ok(SuiteSummary {
        suites: found.suites.len(),
        cases: found.suites.iter().map(|s| s.listed).sum(),
    })
}

/// Loads the policies of `dir` and runs every test case found beside them.
///
/// A broken suite does not stop the others: its problems are in
/// [`TestReport::suite_errors`], the cases that read run. A case whose namespace's labels are
/// uncertain (declared differently by two suites, or declared by none while some suite's
/// namespaces do not read) fails as not run rather than be judged with the wrong labels.
///
/// The cases see the namespaces the suites declare, so `settings.namespaces` is set to
/// [`NamespaceOrigin::Declared`] under `dir` whatever it was.
pub fn run_dir(dir: &Path, mut settings: Settings) -> Result<TestReport, TestError> {
    settings.namespaces = NamespaceOrigin::Declared {
        under: dir.display().to_string(),
    };
    let policies = PolicySet::load_dir(dir)?;
    let policy_warnings = policies.warnings().to_vec();
    let engine = Engine::new(policies, settings)?;
    let mut found = suites(dir)?;
    let mut declared = namespaces_of(&found.suites, &mut found.errors);
    declared.complete &= !found.unread_files;
    let root = dir
        .canonicalize()
        .map_err(|e| TestError::Io(format!("{}: {e}", dir.display())))?;
    let mut report = TestReport {
        policy_warnings,
        ..TestReport::default()
    };
    // Where each failing case is, by file: read again only when one fails.
    let mut positions: BTreeMap<&Path, Option<Positions>> = BTreeMap::new();
    for suite in &found.suites {
        for (j, case) in &suite.cases {
            let mut warnings = Vec::new();
            let (failures, ran) =
                match run_case(&engine, &root, &suite.file, case, &declared, &mut warnings) {
                    Ok(failures) => (failures, true),
                    Err(why) => (vec![why], false),
                };
            let at = if failures.is_empty() {
                None
            } else {
                positions
                    .entry(&suite.file)
                    .or_insert_with(|| read_file(&suite.file).ok().map(|t| Positions::of(&t)))
                    .as_ref()
                    .and_then(|p| p.find(suite.document, Some(&format!("spec.cases[{j}]"))))
            };
            report.results.push(CaseResult {
                suite: suite.name.clone().unwrap_or_default(),
                case: case.name.clone(),
                file: suite.file.clone(),
                at,
                failures,
                ran,
                warnings,
            });
        }
    }
    locate(&mut found.errors);
    report.suite_errors = found.errors;
    Ok(report)
}

fn suites(dir: &Path) -> Result<Suites, TestError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files).map_err(|e| TestError::Io(format!("{}: {e}", dir.display())))?;
    files.sort();
    let mut found = Suites::default();
    for file in files {
        suites_in(&file, &mut found);
    }
    one_suite_per_name(&mut found);
    Ok(found)
}

/// Places each error inside a document at the line and column of the field it names
/// ([`Positions`]), each file read again once: only when there are errors, so the suites are
/// parsed a second time only to report them.
fn locate(errors: &mut [SuiteError]) {
    let mut read: BTreeMap<String, Option<Positions>> = BTreeMap::new();
    for e in errors.iter_mut().filter(|e| e.at.is_none()) {
        let Some(document) = e.document else {
            continue;
        };
        let positions = read.entry(e.file.clone()).or_insert_with(|| {
            read_file(Path::new(&e.file))
                .ok()
                .map(|text| Positions::of(&text))
        });
        e.at = positions
            .as_ref()
            .and_then(|p| p.find(document, e.field.as_deref()));
    }
}

/// Results and failures are reported as `SUITE / CASE`: two suites of one name (in one file,
/// or copied from one file to another) would report cases no one can tell apart, and a case
/// of one could seem to pass for the other. The first keeps the name and its cases run; each
/// later one is an error, naming the first, and its cases do not run (its namespaces still
/// count, for the other suites' cases).
fn one_suite_per_name(found: &mut Suites) {
    let mut first: BTreeMap<String, (PathBuf, usize)> = BTreeMap::new();
    // Only on this error: the first suite's file is parsed again for the line of its name.
    let mut positions: BTreeMap<PathBuf, Option<Positions>> = BTreeMap::new();
    for suite in &mut found.suites {
        let Some(name) = suite.name.clone() else {
            continue;
        };
        match first.get(&name) {
            Some((file, document)) => {
                let line = positions
                    .entry(file.clone())
                    .or_insert_with(|| read_file(file).ok().map(|t| Positions::of(&t)))
                    .as_ref()
                    .and_then(|p| p.find(*document, Some("metadata.name")))
                    .map(|(line, column)| format!(":{line}:{column}"))
                    .unwrap_or_default();
                let origin = format!("{}{line} document {document}", file.display());
                found.errors.push(suite.error(
                    None,
                    "metadata.name".into(),
                    format!(
                        "a suite of this name is already defined in {origin}; results are \
                         reported by suite and case name, so give each suite its own name"
                    ),
                ));
                suite.cases.clear();
            }
            None => {
                first.insert(name, (suite.file.clone(), suite.document));
            }
        }
    }
}

/// The test suites under a directory, or of one file.
fn suites_at(path: &Path) -> Result<Suites, TestError> {
    if path.is_dir() {
        suites(path)
    } else {
        let mut found = Suites::default();
        suites_in(path, &mut found);
        one_suite_per_name(&mut found);
        Ok(found)
    }
}

/// Adds the test suites of one file to `found`, and what is wrong with them.
fn suites_in(file: &Path, found: &mut Suites) {
    let whole_file = |message: String| SuiteError {
        file: file.display().to_string(),
        document: None,
        suite: None,
        case: None,
        field: None,
        at: None,
        message,
    };
    let docs = match read_file(file) {
        Ok(text) => yaml_documents(&text).map_err(|e| yaml_error(&e, &file.display().to_string())),
        Err(e) => Err(e),
    };
    let docs = match docs {
        Ok(docs) => docs,
        Err(message) => {
            found.errors.push(whole_file(message));
            found.unread_files = true;
            return;
        }
    };
    for (number, v) in docs {
        if v.get("kind").and_then(Value::as_str) != Some(TEST_KIND) {
            continue;
        }
        let suite = read_suite(file, number, &v, &mut found.errors);
        found.suites.push(suite);
    }
}

/// One `DebugPolicyTest` document: what of it reads, every problem added to `errors`.
fn read_suite(file: &Path, number: usize, v: &Value, errors: &mut Vec<SuiteError>) -> Suite {
    let listed = v.pointer("/spec/cases").and_then(Value::as_array);
    let mut suite = Suite {
        file: file.to_path_buf(),
        document: number,
        name: v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(str::to_owned),
        namespaces: None,
        cases: Vec::new(),
        listed: listed.map_or(0, Vec::len),
    };
    let found = match v.get("apiVersion") {
        Some(Value::String(found)) if found == API_VERSION => None,
        Some(Value::String(found)) => Some(format!("{found:?}")),
        Some(found) => Some(found.to_string()),
        None => Some("none".to_owned()),
    };
    if let Some(found) = found {
        // Another version's fields may mean other things: nothing of it is read.
        errors.push(suite.error(
            None,
            "apiVersion".into(),
            format!("expected {API_VERSION}, found {found}"),
        ));
        return suite;
    }
    let shape: Result<TestDocument, _> = serde_path_to_error::deserialize(v);
    let cases: Vec<Value> = match shape {
        Ok(doc) => {
            suite.name = Some(doc.metadata.name);
            suite.namespaces = Some(doc.spec.namespaces);
            doc.spec.cases
        }
        Err(e) => {
            let path = e.path().to_string();
            let message = suite_message(e.into_inner().to_string());
            let mut error = suite.error(None, path.clone(), message);
            // The document itself (a missing `metadata`): no field to point at.
            if path == "." {
                error.field = None;
            }
            errors.push(error);
            // What still reads: the namespaces, for the other suites' cases, and the cases'
            // own problems, reported too; none of the cases runs.
            suite.namespaces = v
                .get("spec")
                .and_then(Value::as_object)
                .and_then(|spec| match spec.get("namespaces") {
                    None => Some(Vec::new()),
                    Some(ns) => serde_json::from_value(ns.clone()).ok(),
                });
            let cases = listed.cloned().unwrap_or_default();
            read_cases(&suite, &cases, errors);
            return suite;
        }
    };
    // Neither cases nor namespaces: the document tests nothing, and would pass whatever the
    // policies do (a suite whose cases were deleted, or never written under `spec.cases`).
    // A suite of namespaces alone is how the namespaces are declared once, for every suite.
    if cases.is_empty() && suite.namespaces.as_ref().is_none_or(Vec::is_empty) {
        errors.push(
            suite.error(
                None,
                "spec.cases".into(),
                "the suite lists no cases and declares no namespaces, so it tests nothing and \
             would pass whatever the policies decide: add cases under spec.cases, or remove \
             the document"
                    .to_owned(),
            ),
        );
    }
    suite.cases = read_cases(&suite, &cases, errors);
    suite
}

/// serde's message about a suite's field, in a suite author's terms: the closest name for an
/// unknown field ("did you mean"), what belongs where serde names its own Rust type
/// (`expected struct TestCase`), and YAML's booleans where a text belongs.
fn suite_message(message: String) -> String {
    let mut message = unknown_field_message(&message).unwrap_or(message);
    for (rust, words) in [
        (
            "struct TestCase",
            "a case: a mapping with name, review and expect",
        ),
        (
            "struct Expectation",
            "a mapping with allowed and the other expectations",
        ),
        (
            "struct UserInfoOverride",
            "a mapping with username and groups",
        ),
        ("struct NamespaceSpec", "a mapping with name and labels"),
        ("struct TestMetadata", "a mapping with name"),
        ("struct TestSpec", "a mapping with namespaces and cases"),
        (
            "struct TestDocument",
            "a mapping with apiVersion, kind, metadata and spec",
        ),
    ] {
        message = message.replace(rust, words);
    }
    // YAML 1.1 reads unquoted yes/no/on/off/y/n as booleans: `messageContains: [no]`.
    if message.starts_with("invalid type: boolean") && message.contains("expected a string") {
        message.push_str(
            "; YAML reads unquoted yes, no, on, off, y, n, true and false as booleans: quote \
             the value (\"no\")",
        );
    }
    message
}

/// What is wrong with a case's expectations that would let it pass without checking what it
/// says (or never let it pass), as `(field, message)`: an empty text, which every message
/// contains, and `messageExcludes` on an allowed request, which has no message to search.
fn vacuous_expectations(case: &TestCase) -> Vec<(String, String)> {
    let e = &case.expect;
    let mut found = Vec::new();
    let lists = [
        (
            "messageContains",
            &e.message_contains,
            "every message contains it, so it checks nothing",
        ),
        (
            "messageExcludes",
            &e.message_excludes,
            "every message contains it, so the case can never pass",
        ),
        (
            "warningsContain",
            &e.warnings_contain,
            "every warning contains it, so it checks only that there is a warning",
        ),
    ];
    for (field, texts, why) in lists {
        for (k, text) in texts.iter().enumerate() {
            if text.is_empty() {
                found.push((
                    format!("expect.{field}[{k}]"),
                    format!("the text is empty: {why}; write the text to look for"),
                ));
            }
        }
    }
    if e.allowed && !e.message_excludes.is_empty() {
        found.push((
            "expect.messageExcludes".to_owned(),
            "an allowed request has no denial message, so messageExcludes is never checked \
             and the case passes whatever the message would say: expect `allowed: false`, or \
             remove messageExcludes"
                .to_owned(),
        ));
    }
    found
}

/// The cases of `suite` that read and are sound, with their index; every problem of the
/// others is added to `errors`.
fn read_cases(
    suite: &Suite,
    cases: &[Value],
    errors: &mut Vec<SuiteError>,
) -> Vec<(usize, TestCase)> {
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (j, raw) in cases.iter().enumerate() {
        let name = raw.get("name").and_then(Value::as_str);
        let case: TestCase = match serde_path_to_error::deserialize(raw) {
            Ok(case) => case,
            Err(e) => {
                let field = match e.path().to_string() {
                    at if at == "." => format!("spec.cases[{j}]"),
                    at => format!("spec.cases[{j}].{at}"),
                };
                errors.push(suite.error(name, field, suite_message(e.into_inner().to_string())));
                continue;
            }
        };
        if let Some(&first) = names.get(case.name.as_str()) {
            // The first keeps the name, and runs; this one does not.
            errors.push(suite.error(
                Some(&case.name),
                format!("spec.cases[{j}].name"),
                format!(
                    "{:?} is already the name of spec.cases[{first}]; failures are reported \
                     by case name, so give each case of a suite its own",
                    case.name
                ),
            ));
            continue;
        }
        names.insert(case.name.clone(), j);
        if case.name.trim().is_empty() {
            errors.push(
                suite.error(
                    None,
                    format!("spec.cases[{j}].name"),
                    "the name is empty: results and failures are reported by case name, so say \
                 what the case checks"
                        .to_owned(),
                ),
            );
            continue;
        }
        let vacuous = vacuous_expectations(&case);
        if !vacuous.is_empty() {
            for (field, message) in vacuous {
                errors.push(suite.error(
                    Some(&case.name),
                    format!("spec.cases[{j}].{field}"),
                    message,
                ));
            }
            continue;
        }
        // /validate never answers with a patch: the case would fail as "got []", whatever
        // the policies inject.
        if case.expect.patch.is_some() && matches!(case.endpoint, EndpointSpec::Validate) {
            errors.push(suite.error(
                Some(&case.name),
                format!("spec.cases[{j}].expect.patch"),
                format!(
                    "case {:?} expects a patch from /validate, which never sends one: add \
                     `endpoint: mutate` to check the defaults",
                    case.name
                ),
            ));
            continue;
        }
        out.push((j, case));
    }
    out
}

/// The Namespace objects the suites declare, by name. A namespace declared again with the
/// same labels is fine (each suite may list what its cases need); with other labels it is an
/// error, naming both places, and the namespace is left out.
fn namespaces_of(suites: &[Suite], errors: &mut Vec<SuiteError>) -> Declared {
    let mut declared: BTreeMap<&str, (&NamespaceSpec, &Suite)> = BTreeMap::new();
    let mut conflicting = BTreeSet::new();
    for s in suites {
        for (i, ns) in s.namespaces.iter().flatten().enumerate() {
            match declared.get(ns.name.as_str()) {
                Some((first, _)) if first.labels == ns.labels => {}
                Some((first, where_first)) => {
                    errors.push(s.error(
                        None,
                        format!("spec.namespaces[{i}]"),
                        format!(
                            "namespace {:?} is declared with different labels in {} ({}) and \
                             in {} ({}); every case sees one Namespace per name: declare it \
                             once (for example in namespaces.yaml), or with the same labels in \
                             both",
                            ns.name,
                            where_first.origin(),
                            labels_text(&first.labels),
                            s.origin(),
                            labels_text(&ns.labels)
                        ),
                    ));
                    conflicting.insert(ns.name.clone());
                }
                None => {
                    declared.insert(&ns.name, (ns, s));
                }
            }
        }
    }
    let namespaces = declared
        .into_iter()
        .filter(|(name, _)| !conflicting.contains(*name))
        .map(|(name, (ns, _))| {
            let mut n = Namespace::default();
            n.metadata.name = Some(name.to_owned());
            let mut labels = ns.labels.clone();
            labels.insert("kubernetes.io/metadata.name".into(), name.to_owned());
            n.metadata.labels = Some(labels);
            (name.to_owned(), n)
        })
        .collect();
    Declared {
        namespaces,
        conflicting,
        complete: suites.iter().all(|s| s.namespaces.is_some()),
    }
}

/// Labels as a suite spells them: `labels {env: production}`, or `no labels`.
fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "no labels".to_owned();
    }
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("labels {{{}}}", pairs.join(", "))
}

/// Resolves a fixture path relative to the suite file, refusing anything outside `root`.
fn fixture_path(root: &Path, suite_file: &Path, review: &str) -> Result<PathBuf, String> {
    if review.trim().is_empty() {
        return Err(
            "review is empty: name the AdmissionReview JSON file, relative to the suite's file"
                .to_owned(),
        );
    }
    let base = suite_file.parent().unwrap_or(Path::new("."));
    let joined = base.join(review);
    let path = joined.canonicalize().map_err(|e| {
        // The path as written is relative to the suite: say where that led.
        let resolved = base
            .canonicalize()
            .map(|b| b.join(review))
            .unwrap_or(joined.clone());
        format!("review {review:?} ({}): {e}", resolved.display())
    })?;
    if !path.starts_with(root) {
        return Err(format!(
            "review {review:?} lies outside the policy directory ({}): fixtures live beside \
             their suites; copy it in",
            root.display()
        ));
    }
    if !path.is_file() {
        return Err(format!(
            "review {review:?} ({}) is not a file: name the AdmissionReview JSON file",
            path.display()
        ));
    }
    Ok(path)
}

/// The bytes of the fixture at `path`, refusing more than [`MAX_PATCHED_REVIEW_BYTES`]: a file
/// of any size was read whole (a log named by mistake took the memory of `kspy policy test`).
fn read_fixture(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let limit = MAX_PATCHED_REVIEW_BYTES as u64;
    let too_big = || {
        format!(
            "{} holds more than {limit} bytes, the most the webhook reads of an AdmissionReview: \
             a fixture is one review, as the API server sends it",
            path.display()
        )
    };
    let cannot_read = |e: std::io::Error| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    if file.metadata().map_err(cannot_read)?.len() > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(cannot_read)?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// The review a case judges, as JSON and parsed: its fixture, with its `reviewPatch` applied
/// and its `userInfo` in place. A problem names the case's field it lies in (`review` or
/// `reviewPatch`) and says what is wrong.
fn prepare_review(
    root: &Path,
    suite_file: &Path,
    case: &TestCase,
) -> Result<(Value, ParsedReview), (&'static str, String)> {
    let in_review = |message: String| ("review", message);
    let path = fixture_path(root, suite_file, &case.review).map_err(in_review)?;
    let text = read_fixture(&path).map_err(in_review)?;
    let mut value: Value = serde_json::from_slice(&text)
        .map_err(|e| in_review(format!("{}: not JSON: {e}", path.display())))?;
    if let Some(patch) = &case.review_patch {
        apply_review_patch(&mut value, patch, &path).map_err(|e| ("reviewPatch", e))?;
    }
    if let Some(u) = &case.user_info
        && let Some(req) = value.get_mut("request").and_then(Value::as_object_mut)
    {
        let mut groups = u.groups.clone();
        groups.push("system:authenticated".into());
        let mut user = serde_json::json!({"username": u.username, "groups": groups});
        if let Some(uid) = &u.uid {
            user["uid"] = uid.as_str().into();
        }
        if !u.extra.is_empty() {
            user["extra"] = serde_json::json!(u.extra);
        }
        req.insert("userInfo".into(), user);
    }
    let review = ParsedReview::from_value(value.clone())
        .map_err(|e| in_review(format!("{}: {e}", path.display())))?;
    Ok((value, review))
}

fn run_case(
    engine: &Engine,
    root: &Path,
    suite_file: &Path,
    case: &TestCase,
    declared: &Declared,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, String> {
    let (value, review) = prepare_review(root, suite_file, case).map_err(|(_, message)| message)?;
    // Kept for the cross-check below, which needs the review as sent.
    let sent = matches!(case.endpoint, EndpointSpec::Validate).then_some(value);
    let namespace = match review.namespace() {
        Some(n) if declared.conflicting.contains(n) => {
            return Err(format!(
                "not run: namespace {n:?} is declared with different labels (see the suite \
                 errors), and its labels decide which policies apply"
            ));
        }
        Some(n) => match declared.namespaces.get(n) {
            None if !declared.complete => {
                return Err(format!(
                    "not run: no suite that reads declares namespace {n:?}, and one that does \
                     not read (see the suite errors) may; its labels decide which policies apply"
                ));
            }
            found => found,
        },
        None => None,
    };
    let endpoint = match case.endpoint {
        EndpointSpec::Validate => Endpoint::Validate,
        EndpointSpec::Mutate => Endpoint::Mutate,
    };
    let j = engine.judge(&review, endpoint, namespace);
    // No suite declares the namespace, so its labels are unknown: a policy selecting
    // namespaces by label did not apply. An allowed case passes all the same, and the denial
    // of a denied one may not say it; say it here (as `kspy policy eval` does).
    if namespace.is_none()
        && let (Some(action), Some(ns)) = (j.action, review.namespace())
    {
        let unknown = label_selecting(engine.policies(), &review, endpoint, action, ns);
        if !unknown.is_empty() {
            warnings.push(format!(
                "the labels of namespace {ns:?} are unknown (no {TEST_KIND} beside the \
                 policies declares it in spec.namespaces), so {}; declare the namespace with \
                 its labels in a {TEST_KIND}'s spec.namespaces, and the case is judged as the \
                 cluster would judge it",
                unknown.consequences()
            ));
        }
    }
    let e = &case.expect;
    // kspy allows a review that is no debug request without consulting any policy: a case
    // expecting it allowed passes whatever the policies say (a fixture whose object lacks the
    // new ephemeral container, say). Said unless the case says so itself with `policies: []`.
    if consults_no_policy(&j) && e.allowed && e.policies.is_none() {
        warnings.push(NOT_DEBUG.to_owned());
    }
    let mut failures = Vec::new();
    if let Some(sent) = sent {
        failures.extend(verdict_after_own_defaults(
            engine,
            &review,
            sent,
            namespace,
            j.response.allowed,
        ));
    }
    let message = &j.response.result.message;
    if j.response.allowed != e.allowed {
        failures.push(format!(
            "expected {}, got {}{}",
            if e.allowed { "allowed" } else { "denied" },
            if j.response.allowed {
                "allowed"
            } else {
                "denied"
            },
            if message.is_empty() {
                String::new()
            } else {
                format!(": {message}")
            }
        ));
    }
    if let Some(want) = &e.policies {
        let want: BTreeSet<&str> = want.iter().map(String::as_str).collect();
        let got: BTreeSet<&str> = j.policies.iter().map(String::as_str).collect();
        if want != got {
            failures.push(format!("expected policies {want:?}, got {got:?}"));
        }
    }
    for s in &e.message_contains {
        if j.response.allowed && message.is_empty() {
            failures.push(format!(
                "message does not contain {s:?}: the request was allowed, and an allowed \
                 request has no denial message"
            ));
        } else if !message.contains(s.as_str()) {
            failures.push(format!(
                "message does not contain {s:?}; message: {message}"
            ));
        }
    }
    for s in &e.message_excludes {
        if message.contains(s.as_str()) {
            failures.push(format!("message contains {s:?}; message: {message}"));
        }
    }
    let warnings = j.response.warnings.clone().unwrap_or_default();
    for s in &e.warnings_contain {
        if !warnings.iter().any(|w| w.contains(s.as_str())) {
            failures.push(format!("no warning contains {s:?}; warnings: {warnings:?}"));
        }
    }
    for (k, v) in &e.audit_annotations {
        match j.response.audit_annotations.get(k) {
            Some(got) if got == v => {}
            got => failures.push(format!(
                "audit annotation {k:?}: expected {v:?}, got {got:?}"
            )),
        }
    }
    if let Some(want) = &e.patch {
        let got: Vec<Value> = match &j.response.patch {
            Some(bytes) => match serde_json::from_slice(bytes) {
                Ok(got) => got,
                Err(e) => {
                    failures.push(format!("kspy's patch is not a JSON list: {e}"));
                    return Ok(failures);
                }
            },
            None => Vec::new(),
        };
        if &got != want {
            failures.push(format!(
                "patch differs:\nexpected {}\ngot      {}",
                Value::Array(want.clone()),
                Value::Array(got)
            ));
        }
    }
    Ok(failures)
}

/// Why a case whose review adds no debug container checks no policy, for `kspy policy test`.
pub const NOT_DEBUG: &str = "the review adds no debug container (no new ephemeral container in \
     its object, no debug copy or node pod), so kspy allows it without consulting any policy and \
     the case passes whatever the policies say; if the review is meant to add one, check its \
     object and oldObject, and if passing untouched is what the case checks, say so with \
     `policies: []`";

/// True when `j` allowed a review without consulting any policy: it is no debug request, or
/// an attach that adds no ephemeral container (its object lists none that its oldObject
/// does not).
pub fn consults_no_policy(j: &Judgement) -> bool {
    match j.verdict {
        Verdict::NotDebug => true,
        Verdict::Allowed => j.subjects.is_empty(),
        Verdict::Denied => false,
    }
}

/// The policies that would apply to a review but for their namespace selector, which cannot be
/// judged without the namespace's labels ([`label_selecting`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelecting {
    /// Did not apply: their grants and defaults count for nothing.
    pub skipped: Vec<String>,
    /// Enforce guardrails: the engine denies for them without checking their validations.
    pub denying: Vec<String>,
}

impl LabelSelecting {
    /// True when no policy selects the namespace by label.
    pub fn is_empty(&self) -> bool {
        self.skipped.is_empty() && self.denying.is_empty()
    }

    /// What became of them, to follow "so": `sre-debug selects namespaces by label and did
    /// not apply`.
    pub fn consequences(&self) -> String {
        let verb = |names: &[String]| if names.len() == 1 { "s" } else { "" };
        let mut parts = Vec::new();
        if !self.skipped.is_empty() {
            parts.push(format!(
                "{} select{} namespaces by label and did not apply",
                self.skipped.join(", "),
                verb(&self.skipped)
            ));
        }
        if !self.denying.is_empty() {
            parts.push(format!(
                "{} select{} namespaces by label and denied the request without checking {} \
                 validations",
                self.denying.join(", "),
                verb(&self.denying),
                if self.denying.len() == 1 {
                    "its"
                } else {
                    "their"
                }
            ));
        }
        parts.join(", and ")
    }
}

/// The policies that would apply to `review` (for `action`, in `namespace`, at `endpoint`)
/// but for their namespace selector, which cannot be judged without the namespace's labels.
pub fn label_selecting(
    set: &PolicySet,
    review: &ParsedReview,
    endpoint: Endpoint,
    action: Action,
    namespace: &str,
) -> LabelSelecting {
    let groups = review
        .request()
        .user_info
        .groups
        .clone()
        .unwrap_or_default();
    let input = MatchInput {
        action,
        namespace,
        namespace_labels: None,
        user: review.user(),
        groups: &groups,
    };
    let mut out = LabelSelecting::default();
    for p in set.policies() {
        if p.matcher.outcome(&input) != MatchOutcome::NamespaceUnknown {
            continue;
        }
        // As the engine judges them: at /validate a guardrail fails closed, anything else (and
        // everything at /mutate) is left out.
        let guardrail = p.mode == Mode::Enforce && !p.validations.is_empty();
        if guardrail && matches!(endpoint, Endpoint::Validate) {
            out.denying.push(p.name.clone());
        } else {
            out.skipped.push(p.name.clone());
        }
    }
    out
}

/// The most bytes a fixture may grow to under its case's `reviewPatch` (as compact JSON): what
/// the webhook reads at most. A `copy` repeats a part of the review, and each copying the
/// last, two dozen of them built gigabytes from a suite of a few lines.
pub const MAX_PATCHED_REVIEW_BYTES: usize = 6 * 1024 * 1024;

/// Applies a case's `reviewPatch` to the fixture at `path`, operation by operation, refusing
/// a `copy` that would grow the review past [`MAX_PATCHED_REVIEW_BYTES`] before it is made
/// (only `copy` repeats what the review holds; what `add` and `replace` write is in the suite
/// file, which is bounded).
fn apply_review_patch(
    value: &mut Value,
    patch: &json_patch::Patch,
    path: &Path,
) -> Result<(), String> {
    let mut size = json_size(value);
    for (i, op) in patch.0.iter().enumerate() {
        if let json_patch::PatchOperation::Copy(copy) = op {
            let from = copy.from.to_string();
            size = size.saturating_add(value.pointer(&from).map_or(0, json_size));
            if size > MAX_PATCHED_REVIEW_BYTES {
                return Err(format!(
                    "reviewPatch operation {i} (copy from {from:?}) would grow {} past \
                     {MAX_PATCHED_REVIEW_BYTES} bytes, the most the webhook reads",
                    path.display()
                ));
            }
        }
        json_patch::patch(value, std::slice::from_ref(op))
            .map_err(|e| format!("reviewPatch does not apply to {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The length of `value` as compact JSON, counted without building the text.
fn json_size(value: &Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a value to a counter cannot fail; were it to, the count so far is a floor.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// In a cluster `/validate` never sees a review as sent: the API server applies kspy's own
/// `/mutate` patch first. A case judges the review as sent, so policies whose defaults their
/// own grants refuse (a `securityContext` default asking for `privileged`, say) would pass
/// their tests and deny every request in the cluster. This judges the mutated review too and
/// returns a failure when the verdict differs. `sent` is the review as sent (JSON), `review`
/// the same parsed; `None` when the policies inject nothing or the verdict stands.
pub fn verdict_after_own_defaults(
    engine: &Engine,
    review: &ParsedReview,
    mut sent: Value,
    namespace: Option<&Namespace>,
    allowed_as_sent: bool,
) -> Option<String> {
    let mutation = engine.judge(review, Endpoint::Mutate, namespace);
    let patch: json_patch::Patch = match mutation.response.patch.as_deref() {
        None => return None,
        Some(bytes) => match serde_json::from_slice(bytes) {
            Ok(patch) => patch,
            Err(e) => return Some(format!("kspy's /mutate patch is not a JSON patch: {e}")),
        },
    };
    if patch.0.is_empty() {
        return None;
    }
    let object = sent.get_mut("request")?.get_mut("object")?;
    if let Err(e) = json_patch::patch(object, &patch) {
        return Some(format!(
            "kspy's /mutate patch does not apply to the review's object: {e}"
        ));
    }
    let mutated = match ParsedReview::from_value(sent) {
        Ok(r) => r,
        Err(e) => return Some(format!("the review after kspy's /mutate patch: {e}")),
    };
    let after = engine.judge(&mutated, Endpoint::Validate, namespace);
    if after.response.allowed == allowed_as_sent {
        return None;
    }
    let verdict = |allowed| if allowed { "allowed" } else { "denied" };
    let message = &after.response.result.message;
    Some(format!(
        "as sent the review is {}, but after the defaults the policies inject (the API server \
         applies kspy's /mutate patch before /validate) it is {}{}; in a cluster the second \
         verdict is the one that counts: make the defaults something the policies grant",
        verdict(allowed_as_sent),
        verdict(after.response.allowed),
        if message.is_empty() {
            String::new()
        } else {
            format!(": {message}")
        }
    ))
}
