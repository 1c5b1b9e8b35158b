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
//!         messageExcludes: [...]
//!         warningsContain: [...]
//!         auditAnnotations: {action: attach}       # each must be present with this value
//!         patch: [{op: add, path: ..., value: ...}] # the exact JSON patch (endpoint: mutate)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use serde::Deserialize;
use serde_json::Value;

use crate::engine::{Endpoint, Engine, NamespaceOrigin, Settings};
use crate::policy::load::{collect_files, read_file, yaml_documents, yaml_error};
use crate::policy::spec::{API_VERSION, TEST_KIND};
use crate::policy::{LoadErrors, PolicySet};
use crate::review::ParsedReview;

/// A test-suite document.
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
    cases: Vec<TestCase>,
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

/// Why a suite could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// The policies do not load.
    #[error(transparent)]
    Policies(#[from] LoadErrors),
    /// A test document is malformed.
    #[error("{file}: document {document}: {field}: {message}")]
    Suite {
        /// The file.
        file: String,
        /// The 1-based document number.
        document: usize,
        /// The field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The directory or a file cannot be read.
    #[error("{0}")]
    Io(String),
    /// Two suites declare one namespace with different labels: every case sees one Namespace
    /// object, so which labels apply would depend on the order the files are read in.
    #[error(
        "namespace {name:?} is declared with different labels in {first} ({first_labels}) and \
         in {second} ({second_labels}); every case sees one Namespace per name: declare it \
         once (for example in namespaces.yaml), or with the same labels in both"
    )]
    NamespaceConflict {
        /// The namespace name.
        name: String,
        /// Where it is declared first: `FILE document N`.
        first: String,
        /// Its labels there, as `{k: v, …}`.
        first_labels: String,
        /// Where it is declared again, differently.
        second: String,
        /// Its labels there.
        second_labels: String,
    },
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
    /// What did not match; empty when it passed. A failure may span lines (a denial's
    /// message, a patch): the lines after the first are meant to be indented under it.
    pub failures: Vec<String>,
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
    /// In file, then case order.
    pub results: Vec<CaseResult>,
}

impl TestReport {
    /// How many cases failed.
    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.passed()).count()
    }
}

struct Suite {
    file: PathBuf,
    /// The 1-based document number in `file`.
    document: usize,
    doc: TestDocument,
}

impl Suite {
    /// `FILE document N`, for messages.
    fn origin(&self) -> String {
        format!("{} document {}", self.file.display(), self.document)
    }
}

/// The namespaces declared by the test suites at `path` (a directory, every `*.yaml` and
/// `*.yml` under it, or one file), for `kspy policy eval` and the webhook's
/// `--namespace-lookup declared`.
pub fn declared_namespaces(path: &Path) -> Result<BTreeMap<String, Namespace>, TestError> {
    namespaces_of(&suites_at(path)?)
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
/// formed and the namespaces the suites declare agree. Fixtures are not read.
pub fn check_suites(path: &Path) -> Result<SuiteSummary, TestError> {
    let suites = suites_at(path)?;
    namespaces_of(&suites)?;
    Ok(SuiteSummary {
        suites: suites.len(),
        cases: suites.iter().map(|s| s.doc.spec.cases.len()).sum(),
    })
}

/// Loads the policies of `dir` and runs every test case found beside them.
///
/// The cases see the namespaces the suites declare, so `settings.namespaces` is set to
/// [`NamespaceOrigin::Declared`] under `dir` whatever it was.
pub fn run_dir(dir: &Path, mut settings: Settings) -> Result<TestReport, TestError> {
    settings.namespaces = NamespaceOrigin::Declared {
        under: dir.display().to_string(),
    };
    let policies = PolicySet::load_dir(dir)?;
    let engine = Engine::new(policies, settings)?;
    let suites = suites(dir)?;
    let namespaces = namespaces_of(&suites)?;
    let root = dir
        .canonicalize()
        .map_err(|e| TestError::Io(format!("{}: {e}", dir.display())))?;
    let mut report = TestReport::default();
    for suite in &suites {
        for case in &suite.doc.spec.cases {
            let failures = run_case(&engine, &root, &suite.file, case, &namespaces)
                .unwrap_or_else(|e| vec![e]);
            report.results.push(CaseResult {
                suite: suite.doc.metadata.name.clone(),
                case: case.name.clone(),
                file: suite.file.clone(),
                failures,
            });
        }
    }
    Ok(report)
}

fn suites(dir: &Path) -> Result<Vec<Suite>, TestError> {
    let mut files = Vec::new();
    collect_files(dir, &mut files).map_err(|e| TestError::Io(format!("{}: {e}", dir.display())))?;
    files.sort();
    let mut out = Vec::new();
    for file in files {
        out.extend(suites_in(&file)?);
    }
    Ok(out)
}

/// The test suites under a directory, or of one file.
fn suites_at(path: &Path) -> Result<Vec<Suite>, TestError> {
    if path.is_dir() {
        suites(path)
    } else {
        suites_in(path)
    }
}

/// The test suites of one file.
fn suites_in(file: &Path) -> Result<Vec<Suite>, TestError> {
    let text = read_file(file).map_err(|e| TestError::Io(format!("{}: {e}", file.display())))?;
    let docs = yaml_documents(&text)
        .map_err(|e| TestError::Io(format!("{}: {}", file.display(), yaml_error(&e))))?;
    let mut out = Vec::new();
    for (number, v) in docs {
        if v.get("kind").and_then(Value::as_str) != Some(TEST_KIND) {
            continue;
        }
        let suite_error = |field: String, message: String| TestError::Suite {
            file: file.display().to_string(),
            document: number,
            field,
            message,
        };
        match v.get("apiVersion") {
            Some(Value::String(found)) if found == API_VERSION => {}
            Some(Value::String(found)) => {
                return Err(suite_error(
                    "apiVersion".into(),
                    format!("expected {API_VERSION}, found {found:?}"),
                ));
            }
            Some(found) => {
                return Err(suite_error(
                    "apiVersion".into(),
                    format!("expected {API_VERSION}, found {found}"),
                ));
            }
            None => {
                return Err(suite_error(
                    "apiVersion".into(),
                    format!("expected {API_VERSION}, found none"),
                ));
            }
        }
        let doc: TestDocument = serde_path_to_error::deserialize(&v)
            .map_err(|e| suite_error(e.path().to_string(), e.into_inner().to_string()))?;
        let mut names: BTreeMap<&str, usize> = BTreeMap::new();
        for (j, case) in doc.spec.cases.iter().enumerate() {
            if let Some(first) = names.insert(&case.name, j) {
                return Err(suite_error(
                    format!("spec.cases[{j}].name"),
                    format!(
                        "{:?} is already the name of spec.cases[{first}]; failures are \
                         reported by case name, so give each case of a suite its own",
                        case.name
                    ),
                ));
            }
            // /validate never answers with a patch: the case would fail as "got []", whatever
            // the policies inject.
            if case.expect.patch.is_some() && matches!(case.endpoint, EndpointSpec::Validate) {
                return Err(suite_error(
                    format!("spec.cases[{j}].expect.patch"),
                    format!(
                        "case {:?} expects a patch from /validate, which never sends one: add \
                         `endpoint: mutate` to check the defaults",
                        case.name
                    ),
                ));
            }
        }
        out.push(Suite {
            file: file.to_path_buf(),
            document: number,
            doc,
        });
    }
    Ok(out)
}

/// The Namespace objects the suites declare, by name. A namespace declared again with the
/// same labels is fine (each suite may list what its cases need); with other labels it is
/// refused, naming both places.
fn namespaces_of(suites: &[Suite]) -> Result<BTreeMap<String, Namespace>, TestError> {
    let mut declared: BTreeMap<&str, (&NamespaceSpec, &Suite)> = BTreeMap::new();
    for s in suites {
        for ns in &s.doc.spec.namespaces {
            match declared.get(ns.name.as_str()) {
                Some((first, _)) if first.labels == ns.labels => {}
                Some((first, where_first)) => {
                    return Err(TestError::NamespaceConflict {
                        name: ns.name.clone(),
                        first: where_first.origin(),
                        first_labels: labels_text(&first.labels),
                        second: s.origin(),
                        second_labels: labels_text(&ns.labels),
                    });
                }
                None => {
                    declared.insert(&ns.name, (ns, s));
                }
            }
        }
    }
    Ok(declared
        .into_iter()
        .map(|(name, (ns, _))| {
            let mut n = Namespace::default();
            n.metadata.name = Some(name.to_owned());
            let mut labels = ns.labels.clone();
            labels.insert("kubernetes.io/metadata.name".into(), name.to_owned());
            n.metadata.labels = Some(labels);
            (name.to_owned(), n)
        })
        .collect())
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

fn run_case(
    engine: &Engine,
    root: &Path,
    suite_file: &Path,
    case: &TestCase,
    namespaces: &BTreeMap<String, Namespace>,
) -> Result<Vec<String>, String> {
    let path = fixture_path(root, suite_file, &case.review)?;
    let text = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut value: Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    if let Some(patch) = &case.review_patch {
        apply_review_patch(&mut value, patch, &path)?;
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
    // Kept for the cross-check below, which needs the review as sent.
    let sent = matches!(case.endpoint, EndpointSpec::Validate).then(|| value.clone());
    let review = ParsedReview::from_value(value).map_err(|e| format!("{}: {e}", path.display()))?;
    let namespace = review.namespace().and_then(|n| namespaces.get(n));
    let endpoint = match case.endpoint {
        EndpointSpec::Validate => Endpoint::Validate,
        EndpointSpec::Mutate => Endpoint::Mutate,
    };
    let j = engine.judge(&review, endpoint, namespace);
    let e = &case.expect;
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
            Some(bytes) => {
                serde_json::from_slice(bytes).map_err(|e| format!("patch is not JSON: {e}"))?
            }
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
