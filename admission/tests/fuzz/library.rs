//! The shipped policy library as the fuzz tests use it: the policy files' texts, the engine
//! they make, the Namespaces their suites declare, and every AdmissionReview fixture as the
//! API server sends it (compact). Reviews are answered through the webhook's own entry:
//! `ParsedReview::from_bytes` on the raw body, `Engine::judge`, `Judgement::encode`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Namespace;
use kspy_admission::testing::declared_namespaces;
use kspy_admission::{Endpoint, Engine, ParsedReview, PolicySet, Settings, Verdict};
use serde_json::Value;

/// `policies/` at the workspace root.
pub fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

/// The library.
pub struct Library {
    /// The policy files, `(path as load_dir names it, text)`, in load order.
    pub sources: Vec<(String, String)>,
    /// The engine over them, default settings (what `kspy-webhook --policies policies/` runs).
    pub engine: Engine,
    /// The Namespaces the suites declare (`--namespace-lookup declared`).
    pub namespaces: BTreeMap<String, Namespace>,
    /// `(file name, compact body)` of every fixture, by name.
    pub fixtures: Vec<(String, Vec<u8>)>,
}

/// How one body was answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The engine's verdict.
    pub verdict: Verdict,
    /// The debug action, when it was one.
    pub action: Option<String>,
    /// The containers judged.
    pub subjects: Vec<String>,
    /// The AdmissionReview sent back, parsed (audit annotations are a hash map; their order
    /// differs from one answer to the next).
    pub review: Value,
}

impl Answer {
    /// `response.allowed`.
    pub fn allowed(&self) -> bool {
        self.review["response"]["allowed"] == Value::Bool(true)
    }

    /// `response.status.message` (empty when allowed).
    pub fn message(&self) -> &str {
        self.review["response"]["status"]["message"]
            .as_str()
            .unwrap_or("")
    }
}

impl Library {
    /// Loads the library; panics if the shipped files do not load (other tests say why).
    pub fn load() -> Library {
        let dir = policies_dir();
        let engine = Engine::new(
            PolicySet::load_dir(&dir).unwrap_or_else(|e| panic!("{e}")),
            Settings::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut sources: Vec<(String, String)> = std::fs::read_dir(&dir)
            .expect("policies/")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).expect("policy file");
                (p.display().to_string(), text)
            })
            .collect();
        sources.sort();
        let namespaces = declared_namespaces(&dir).unwrap_or_else(|e| panic!("{e}"));
        let mut fixtures: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join("fixtures"))
            .expect("policies/fixtures")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| (name_of(&p), compact(&p)))
            .collect();
        fixtures.sort();
        assert!(fixtures.len() >= 10, "the fixtures are there");
        Library {
            sources,
            engine,
            namespaces,
            fixtures,
        }
    }

    /// A fixture's compact body by file name.
    pub fn fixture(&self, name: &str) -> &[u8] {
        &self
            .fixtures
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no fixture {name}"))
            .1
    }

    /// The declared Namespace of a review's namespace, as the webhook would look it up.
    pub fn namespace_of(&self, review: &ParsedReview) -> Option<&Namespace> {
        review.namespace().and_then(|n| self.namespaces.get(n))
    }
}

/// Answers `body` at `endpoint` with `engine` as the webhook does: `None` when the body is
/// refused (the webhook's 400), else the judgement. `lookup` gives the Namespace the
/// webhook would have (`None` for a lookup that failed).
pub fn answer(
    engine: &Engine,
    body: &[u8],
    endpoint: Endpoint,
    lookup: &dyn Fn(&ParsedReview) -> Option<Namespace>,
) -> Option<Answer> {
    let review = ParsedReview::from_bytes(bytes::Bytes::copy_from_slice(body)).ok()?;
    let namespace = lookup(&review);
    let judgement = engine.judge(&review, endpoint, namespace.as_ref());
    let encoded = judgement
        .encode()
        .unwrap_or_else(|e| panic!("an answer always encodes: {e}"));
    let back: Value = serde_json::from_slice(&encoded).expect("the answer is JSON");
    assert_eq!(
        back["response"]["uid"],
        review.uid(),
        "the answer echoes the uid"
    );
    assert_eq!(
        back["response"]["allowed"] == Value::Bool(true),
        judgement.verdict != Verdict::Denied,
        "the verdict is the answer's"
    );
    Some(Answer {
        verdict: judgement.verdict,
        action: judgement.action.map(|a| a.to_string()),
        subjects: judgement.subjects,
        review: back,
    })
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The fixture compact, in the API server's field order.
fn compact(path: &Path) -> Vec<u8> {
    let text = std::fs::read(path).expect("fixture");
    serde_json::from_slice::<serde::de::IgnoredAny>(&text).expect("fixture is JSON");
    kspy_admission::wire::compact_json(&text)
}
