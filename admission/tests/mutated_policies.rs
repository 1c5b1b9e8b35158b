//! Mutated policy files through the loader the webhook and the CLI use (`PolicySet`'s
//! `from_sources`, which `load_dir` feeds, and `kspy_admission::testing` for the suites),
//! starting from the shipped library: bytes, the YAML tree (wrong types, missing and unknown
//! keys, huge lists, deep nesting), YAML hazards (anchors, aliases, merge keys, tags), and the
//! CEL expressions. Whatever the file, loading never panics (not even a panic the loader
//! catches from the CEL parser), finishes in bounded time and memory, and a refusal is a
//! non-empty error naming the file, and the policy where the document names one. A set that
//! loads judges every fixture without a panic. Files written otherwise but meaning the same
//! (aliases for repeated parts, tags, comments, quoting) load to the same answers.
//!
//! Case counts, seeds and replaying a failure: see `fuzz/run.rs`.

mod fuzz;

use std::time::{Duration, Instant};

use fuzz::cel::hostile_expression;
use fuzz::json::{self, Doc};
use fuzz::library::{Library, answer};
use fuzz::rng::Rng;
use fuzz::run::{Case, Run};
use fuzz::yaml::{self, YamlStyle};
use kspy_admission::{Endpoint, Engine, LoadErrors, PolicySet, Settings};
use serde_json::{Value, json};

/// The documents of a YAML text as the loader reads them (`None` when it does not parse).
fn documents(text: &str) -> Option<Vec<Value>> {
    serde_saphyr::from_multiple::<Value>(text).ok()
}

/// Loads the library with `file` (an index into its sources) replaced by `text`.
fn load_with(lib: &Library, file: usize, text: &str) -> Result<PolicySet, LoadErrors> {
    PolicySet::from_sources(lib.sources.iter().enumerate().map(|(i, (name, original))| {
        (
            name.as_str(),
            if i == file { text } else { original.as_str() },
        )
    }))
}

/// Fails the case unless every error is non-empty and names a file of the set, one names the
/// mutated file, and an error inside a document that names its policy names it too.
fn check_errors(
    case: &Case<'_>,
    lib: &Library,
    file: usize,
    text: &str,
    errors: &LoadErrors,
    what: &str,
) {
    let mutated = &lib.sources[file].0;
    let fail =
        |why: String| case.fail(&format!("{what}: {why}; errors: {errors}"), text.as_bytes());
    if errors.errors().is_empty() {
        fail("refused with no error".into());
    }
    let docs = documents(text);
    for e in errors.errors() {
        if e.message.trim().is_empty() || e.to_string().trim().is_empty() {
            fail(format!("an empty error: {e:?}"));
        }
        if !lib.sources.iter().any(|(name, _)| *name == e.file) {
            fail(format!("an error names no file of the set: {e:?}"));
        }
        if e.file != *mutated {
            continue;
        }
        let named = e
            .document
            .and_then(|d| docs.as_ref()?.get(d.checked_sub(1)?).cloned())
            .and_then(|doc| doc.pointer("/metadata/name")?.as_str().map(str::to_owned));
        if let Some(name) = named
            && e.policy.as_deref() != Some(name.as_str())
        {
            fail(format!(
                "an error in the document of policy {name:?} does not name it: {e:?}"
            ));
        }
    }
    if !errors
        .errors()
        .iter()
        .any(|e| e.file == *mutated || e.message.contains(mutated.as_str()))
    {
        fail(format!("no error names the mutated file {mutated}"));
    }
}

/// Judges `count` random fixtures (all when `count` is 0) with `engine`, at both endpoints,
/// with the declared Namespace and without: never a panic.
fn judge_fixtures(lib: &Library, case: &mut Case<'_>, engine: &Engine, count: usize, what: &str) {
    let picks: Vec<usize> = if count == 0 {
        (0..lib.fixtures.len()).collect()
    } else {
        (0..count)
            .map(|_| case.rng.below(lib.fixtures.len()))
            .collect()
    };
    for i in picks {
        let (name, body) = &lib.fixtures[i];
        for at in [Endpoint::Validate, Endpoint::Mutate] {
            let known = case.rng.one_in(2);
            case.guard(
                &format!("{what}; judging {name} at /{}", at.as_str()),
                body,
                || {
                    answer(engine, body, at, &|r| {
                        if known {
                            lib.namespace_of(r).cloned()
                        } else {
                            None
                        }
                    })
                },
            );
        }
    }
}

/// The pointers of the DebugPolicy documents' nodes, by document index, `/spec` first.
fn policy_targets(docs: &[Value]) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (i, d) in docs.iter().enumerate() {
        if d.get("kind").and_then(Value::as_str) != Some("DebugPolicy") {
            continue;
        }
        out.extend(json::pointers(d).into_iter().map(|p| (i, p)));
    }
    out
}

/// Writes documents as YAML: mostly block style as serde-saphyr writes it, or flow style,
/// placeholders of `doc` spliced in.
fn to_yaml(rng: &mut Rng, docs: &[Value], splices: &[(String, String)]) -> String {
    let mut text = if rng.one_in(2) {
        yaml::write(rng, docs, YamlStyle::default())
    } else {
        docs.iter()
            .map(|d| serde_saphyr::to_string(d).unwrap_or_else(|e| panic!("writes YAML: {e}")))
            .collect::<Vec<_>>()
            .join("---\n")
    };
    for (placeholder, raw) in splices {
        for form in [format!("\"{placeholder}\""), placeholder.clone()] {
            if text.contains(&form) {
                text = text.replacen(&form, raw, 1);
                break;
            }
        }
    }
    text
}

/// Loads `text` in place of file `file` under the case's guard, checks a refusal's errors,
/// and judges fixtures with what loads.
fn load_and_judge(lib: &Library, case: &mut Case<'_>, file: usize, text: &str, what: &str) -> bool {
    let loaded = case.guard(&format!("{what}; loading"), text.as_bytes(), || {
        load_with(lib, file, text)
    });
    match loaded {
        Err(errors) => {
            check_errors(case, lib, file, text, &errors, what);
            false
        }
        Ok(set) => {
            let engine = case.guard(
                &format!("{what}; building the engine"),
                text.as_bytes(),
                || Engine::new(set, Settings::default()),
            );
            match engine {
                Ok(engine) => judge_fixtures(lib, case, &engine, 3, what),
                Err(e) => case.fail(
                    &format!("{what}: loaded, yet no engine: {e}"),
                    text.as_bytes(),
                ),
            }
            true
        }
    }
}

/// Byte damage, YAML hazards and tree mutations of one policy file at a time: no panic, a
/// bounded load, errors that say where, and a loaded set that judges every fixture.
#[test]
fn mutated_policy_files_load_or_fail_saying_where() {
    let lib = Library::load();
    let run = Run::new(
        "mutated_policy_files_load_or_fail_saying_where",
        0x6b73_7079_f101,
        70,
    );
    let donors: Vec<&[u8]> = lib.sources.iter().map(|(_, t)| t.as_bytes()).collect();
    let (mut loaded, mut refused) = (0, 0);
    for mut case in run.cases() {
        let file = case.rng.below(lib.sources.len());
        let (name, original) = &lib.sources[file];
        let (text, what) = match case.rng.below(4) {
            0 => {
                let mut b = original.clone().into_bytes();
                let what = json::mutate_bytes(&mut case.rng, &mut b, &donors);
                (String::from_utf8_lossy(&b).into_owned(), what)
            }
            1 => yaml::hazard(&mut case.rng, original),
            _ => {
                let mut docs = documents(original).expect("the shipped files are YAML");
                let mut targets = policy_targets(&docs);
                if targets.is_empty() {
                    // A file of test suites: any node.
                    targets = docs
                        .iter()
                        .enumerate()
                        .flat_map(|(i, d)| json::pointers(d).into_iter().map(move |p| (i, p)))
                        .collect();
                }
                let mut done = Vec::new();
                let mut splices = Vec::new();
                for _ in 0..case.rng.range(1, 3) {
                    let (d, _) = case.rng.pick(&targets).clone();
                    let in_doc: Vec<String> = targets
                        .iter()
                        .filter(|(i, p)| *i == d && (p.starts_with("/spec") || case.rng.one_in(3)))
                        .map(|(_, p)| p.clone())
                        .collect();
                    let mut doc = Doc::new(docs[d].clone());
                    doc.splices = std::mem::take(&mut splices);
                    if case.rng.one_in(5) && docs[d]["kind"] == "DebugPolicy" {
                        // A securityContext default of any shape: merged into patches.
                        let v = json::hostile_value(&mut case.rng);
                        let default = json!({"capabilities": v.clone(), "runAsUser": json::hostile_number(&mut case.rng)});
                        set_member(
                            &mut doc.value,
                            &["spec", "defaults", "securityContext"],
                            default,
                        );
                        done.push(format!(
                            "document {} defaults.securityContext {}",
                            d + 1,
                            json::short(&v)
                        ));
                    }
                    done.push(format!(
                        "document {}: {}",
                        d + 1,
                        json::mutate_value(&mut case.rng, &mut doc, &in_doc, &[])
                    ));
                    docs[d] = doc.value;
                    splices = doc.splices;
                }
                (to_yaml(&mut case.rng, &docs, &splices), done.join("; "))
            }
        };
        let what = format!("{name}: {what}");
        if load_and_judge(&lib, &mut case, file, &text, &what) {
            loaded += 1;
        } else {
            refused += 1;
        }
    }
    run.summary(&format!("loaded {loaded}, refused {refused}"));
}

/// The expressions of the library's policies: `(file, document index, pointer)`.
fn expression_sites(lib: &Library) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for (f, (_, text)) in lib.sources.iter().enumerate() {
        let docs = documents(text).expect("YAML");
        for (d, p) in policy_targets(&docs) {
            if p.ends_with("/expression") || p.ends_with("/messageExpression") {
                out.push((f, d, p));
            }
        }
    }
    out
}

/// Hostile and damaged CEL, in place of a shipped expression or added as a variable,
/// condition, validation or message expression (or as the webhook's classifier setting):
/// no panic loading or judging, errors that say where.
#[test]
fn mutated_cel_loads_or_fails_saying_where() {
    let lib = Library::load();
    let run = Run::new(
        "mutated_cel_loads_or_fails_saying_where",
        0x6b73_7079_f102,
        80,
    );
    let sites = expression_sites(&lib);
    assert!(sites.len() >= 2, "the library has expressions");
    let (mut loaded, mut refused) = (0, 0);
    for mut case in run.cases() {
        let (file, d, pointer) = case.rng.pick(&sites).clone();
        let (name, original) = &lib.sources[file];
        let mut docs = documents(original).expect("YAML");
        let base = docs[d]
            .pointer(&pointer)
            .and_then(Value::as_str)
            .unwrap_or("true")
            .to_owned();
        let (expr, how) = hostile_expression(&mut case.rng, &base);
        if case.rng.one_in(8) {
            // The webhook's --copy-classifier / --node-classifier.
            let settings = Settings {
                copy_classifier: Some(expr.clone()),
                node_classifier: case.rng.one_in(2).then(|| expr.clone()),
                ..Settings::default()
            };
            let what = format!("classifier {how}");
            let built = case.guard(&what, expr.as_bytes(), || {
                let set = PolicySet::load_dir(&fuzz::library::policies_dir())
                    .unwrap_or_else(|e| panic!("{e}"));
                Engine::new(set, settings)
            });
            match built {
                Ok(engine) => {
                    judge_fixtures(&lib, &mut case, &engine, 4, &what);
                    loaded += 1;
                }
                Err(e) => {
                    let e = &e.errors()[0];
                    if e.message.trim().is_empty() || e.file != "settings" {
                        case.fail(&format!("{what}: {e:?}"), expr.as_bytes());
                    }
                    refused += 1;
                }
            }
            continue;
        }
        let spec = &mut docs[d]["spec"];
        let what = match case.rng.below(5) {
            0 | 1 => {
                if let Some(slot) = docs[d].pointer_mut(&pointer) {
                    *slot = Value::String(expr.clone());
                }
                format!("document {} {pointer}: {how}", d + 1)
            }
            2 => {
                push(
                    spec,
                    "variables",
                    json!({"name": "fuzz", "expression": expr}),
                );
                format!("document {} variable fuzz: {how}", d + 1)
            }
            3 => {
                push(
                    spec,
                    "conditions",
                    json!({"name": "fuzz", "expression": expr}),
                );
                format!("document {} condition fuzz: {how}", d + 1)
            }
            _ => {
                let v = if case.rng.one_in(2) {
                    json!({"expression": expr, "message": "fuzz"})
                } else {
                    json!({"expression": "false", "messageExpression": expr})
                };
                push(spec, "validations", v);
                format!("document {} validation: {how}", d + 1)
            }
        };
        let text = to_yaml(&mut case.rng, &docs, &[]);
        let what = format!("{name}: {what}");
        if load_and_judge(&lib, &mut case, file, &text, &what) {
            loaded += 1;
        } else {
            refused += 1;
        }
    }
    run.summary(&format!("loaded {loaded}, refused {refused}"));
}

/// Sets the member at `path` below `value`, making each step an object where it is not one
/// (a mutation may have made it a string).
fn set_member(value: &mut Value, path: &[&str], member: Value) {
    let mut at = value;
    for step in path {
        if !at.is_object() {
            *at = json!({});
        }
        at = at
            .as_object_mut()
            .expect("an object")
            .entry(*step)
            .or_insert(Value::Null);
    }
    *at = member;
}

fn push(spec: &mut Value, list: &str, item: Value) {
    if !spec[list].is_array() {
        spec[list] = json!([]);
    }
    if let Some(a) = spec[list].as_array_mut() {
        a.push(item);
    }
}

/// A policy file written otherwise — flow style, anchors and aliases for repeated parts,
/// tags, comments — is the same file: the set loads and answers every fixture as the shipped
/// one does, message and patch included.
#[test]
fn the_same_policies_written_otherwise_answer_the_same() {
    let lib = Library::load();
    let run = Run::new(
        "the_same_policies_written_otherwise_answer_the_same",
        0x6b73_7079_f103,
        24,
    );
    for mut case in run.cases() {
        let file = case.rng.below(lib.sources.len());
        let (name, original) = &lib.sources[file];
        let docs = documents(original).expect("YAML");
        let style = YamlStyle {
            aliases: true,
            tags: case.rng.one_in(2),
            comments: case.rng.one_in(2),
        };
        let text = yaml::write(&mut case.rng, &docs, style);
        let what = format!("{name} written {style:?}");
        let set = case.guard(&what, text.as_bytes(), || load_with(&lib, file, &text));
        let set =
            set.unwrap_or_else(|e| case.fail(&format!("{what}: refused: {e}"), text.as_bytes()));
        let engine = Engine::new(set, Settings::default()).expect("an engine");
        for _ in 0..3 {
            let (fixture, body) = case.rng.pick(&lib.fixtures).clone();
            for at in [Endpoint::Validate, Endpoint::Mutate] {
                let ns = |r: &kspy_admission::ParsedReview| lib.namespace_of(r).cloned();
                let got = case.guard(&what, text.as_bytes(), || answer(&engine, &body, at, &ns));
                let want = answer(&lib.engine, &body, at, &ns);
                if got != want {
                    case.fail(
                        &format!(
                            "{what}: {fixture} at /{} answered {:?}, the shipped file {:?}",
                            at.as_str(),
                            got.map(|a| a.review),
                            want.map(|a| a.review)
                        ),
                        text.as_bytes(),
                    );
                }
            }
        }
    }
    run.summary("");
}

/// Paths a suite's `review` may name: outside the policy directory, devices, directories,
/// files that are no review.
const HOSTILE_REVIEWS: &[&str] = &[
    "../../../../etc/passwd",
    "/etc/passwd",
    "/dev/zero",
    "/proc/self/mem",
    "fixtures",
    "fixtures/",
    "fixtures/../sre.yaml",
    "fixtures/../../policies/fixtures/attach-dev-plain.json",
    "fixtures/nope.json",
    "",
    ".",
    "fixtures/attach-dev-plain.json\u{0}.yaml",
    "fixtures\\attach-dev-plain.json",
    "~/x",
];

/// RFC 6902 operations a suite's `reviewPatch` may hold: copies of copies, moves into
/// themselves, odd paths and indexes, tests that fail.
fn hostile_patch(rng: &mut Rng) -> Value {
    let one = |rng: &mut Rng| match rng.below(9) {
        0 => {
            json!({"op": "copy", "from": "/request/object", "path": format!("/request/object/x{}", rng.below(99))})
        }
        1 => json!({"op": "copy", "from": "/request", "path": "/request/object/spec/containers/-"}),
        2 => json!({"op": "move", "from": "/request", "path": "/request/object"}),
        3 => {
            json!({"op": "add", "path": "/request/object/spec/containers/99999999999999999999", "value": 1})
        }
        4 => {
            json!({"op": "remove", "path": *rng.pick(&["/request", "", "/", "/request/object/spec/containers/-", "/request/~2", "/request/uid"])})
        }
        5 => json!({"op": "replace", "path": "", "value": json::hostile_value(rng)}),
        6 => json!({"op": "test", "path": "/request/uid", "value": "nope"}),
        7 => {
            json!({"op": "add", "path": "/request/userInfo/groups/-", "value": *rng.pick(&["sre", "platform-admins", "kube-system-admins"])})
        }
        _ => {
            json!({"op": "replace", "path": "/request/object/spec", "value": json::hostile_value(rng)})
        }
    };
    let n = rng.size(40);
    Value::Array((0..n).map(|_| one(rng)).collect())
}

/// Mutated suites (hostile `review` paths and `reviewPatch`es, any node of the suite
/// documents changed) through what `kspy policy test` and `check` run and the webhook's
/// `--namespace-lookup declared` reads, on a copy of the library: no panic, bounded time and
/// memory, and an error says which file.
#[test]
fn mutated_suites_run_or_fail_saying_where() {
    let lib = Library::load();
    let run = Run::new(
        "mutated_suites_run_or_fail_saying_where",
        0x6b73_7079_f104,
        8,
    );
    let dir = tempfile::tempdir().expect("a temporary directory");
    let root = dir.path();
    let shipped = fuzz::library::policies_dir();
    std::fs::create_dir(root.join("fixtures")).expect("fixtures/");
    for entry in std::fs::read_dir(shipped.join("fixtures")).expect("fixtures") {
        let p = entry.expect("entry").path();
        std::fs::copy(&p, root.join("fixtures").join(p.file_name().expect("name"))).expect("copy");
    }
    let files: Vec<(std::path::PathBuf, String)> = lib
        .sources
        .iter()
        .map(|(path, text)| {
            let name = std::path::Path::new(path).file_name().expect("name");
            (root.join(name), text.clone())
        })
        .collect();
    for (path, text) in &files {
        std::fs::write(path, text).expect("write");
    }
    let mut ran = 0;
    for mut case in run.cases() {
        let (path, original) = case.rng.pick(&files).clone();
        let mut docs = documents(&original).expect("YAML");
        let suites: Vec<usize> = (0..docs.len())
            .filter(|&i| docs[i]["kind"] == "DebugPolicyTest")
            .collect();
        let mut done = Vec::new();
        for _ in 0..case.rng.range(1, 3) {
            let Some(&d) = suites.get(case.rng.below(suites.len())) else {
                break;
            };
            let n = docs[d]["spec"]["cases"].as_array().map_or(0, Vec::len);
            if n == 0 || case.rng.one_in(4) {
                let targets = json::pointers(&docs[d]);
                let mut doc = Doc::new(docs[d].clone());
                done.push(json::mutate_value(&mut case.rng, &mut doc, &targets, &[]));
                docs[d] = doc.value;
                continue;
            }
            let c = case.rng.below(n);
            let at = &mut docs[d]["spec"]["cases"][c];
            if case.rng.one_in(2) {
                let review = *case.rng.pick(HOSTILE_REVIEWS);
                set_member(at, &["review"], json!(review));
                done.push(format!("case {c} review {review:?}"));
            } else {
                let patch = hostile_patch(&mut case.rng);
                done.push(format!("case {c} reviewPatch {}", json::short(&patch)));
                set_member(at, &["reviewPatch"], patch);
            }
        }
        let text = to_yaml(&mut case.rng, &docs, &[]);
        std::fs::write(&path, &text).expect("write");
        let what = format!("{}: {}", path.display(), done.join("; "));
        let file = path.display().to_string();
        let named = |e: String| e.contains(&file) || e.contains(root.to_string_lossy().as_ref());
        if let Err(e) = case.guard(
            &format!("{what}; declared_namespaces"),
            text.as_bytes(),
            || kspy_admission::testing::declared_namespaces(root),
        ) && !named(e.to_string())
        {
            case.fail(
                &format!("{what}: an error naming no file: {e}"),
                text.as_bytes(),
            );
        }
        let report = case.guard(&format!("{what}; run_dir"), text.as_bytes(), || {
            kspy_admission::testing::run_dir(root, Settings::default())
        });
        match report {
            Err(e) if !named(e.to_string()) => case.fail(
                &format!("{what}: an error naming no file: {e}"),
                text.as_bytes(),
            ),
            Err(_) => {}
            Ok(report) => {
                for e in &report.suite_errors {
                    if !named(e.to_string()) {
                        case.fail(
                            &format!("{what}: a suite error naming no file: {e}"),
                            text.as_bytes(),
                        );
                    }
                }
                for r in &report.results {
                    if r.failures.iter().any(|f| f.trim().is_empty()) {
                        case.fail(&format!("{what}: an empty failure: {r:?}"), text.as_bytes());
                    }
                }
                ran += report.results.len();
            }
        }
        std::fs::write(&path, &original).expect("restore");
    }
    run.summary(&format!("{ran} suite cases ran"));
}

/// Files a YAML reader can be made to spend its time and memory on: alias bombs ("billion
/// laughs", with large scalars too), recursive aliases, merge-key chains, deep nesting,
/// document storms. Each is refused, quickly, with an error naming the file, and without the
/// process's memory growing by more than a fraction of what the file would expand to.
#[test]
fn hostile_yaml_is_refused_quickly_within_bounded_memory() {
    let laughs = |levels: usize, leaf: &str| {
        let mut s = format!(
            "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {{name: bomb}}\nspec:\n  description: &a0 \"{leaf}\"\n  x0: &b0 [*a0]\n"
        );
        for i in 1..=levels {
            let refs = vec![format!("*b{}", i - 1); 10].join(",");
            s.push_str(&format!("  x{i}: &b{i} [{refs}]\n"));
        }
        s
    };
    let merges = {
        let mut s = String::from("a0: &m0 {k0: v}\n");
        for i in 1..60 {
            s.push_str(&format!(
                "a{i}: &m{i} {{<<: [*m{}, *m{}], k{i}: v}}\n",
                i - 1,
                i - 1
            ));
        }
        s
    };
    let cases: Vec<(&str, String)> = vec![
        ("billion laughs", laughs(9, "lol")),
        ("laughs of a 1 MiB scalar", laughs(6, &"x".repeat(1 << 20))),
        ("wide laughs", {
            let mut s = String::from("a: &a [x,x,x,x,x,x,x,x,x,x,x,x,x,x,x,x]\n");
            s.push_str(&format!("b: [{}]\n", vec!["*a"; 49_000].join(",")));
            s
        }),
        ("a recursive alias", "a: &a [*a]\n".into()),
        ("an undefined alias", "kind: *nope\n".into()),
        ("merge-key chain", merges),
        (
            "flow nesting",
            format!("a: {}{}\n", "[".repeat(200_000), "]".repeat(200_000)),
        ),
        ("block nesting", {
            let mut s = String::new();
            for i in 0..5000 {
                s.push_str(&" ".repeat(i));
                s.push_str("a:\n");
            }
            s
        }),
        ("a document storm", "---\nkind: x\n".repeat(5000)),
        ("empty documents", "---\n".repeat(100_000)),
        ("a long key", format!("{}: 1\n", "k".repeat(3 << 20))),
        (
            "many anchors",
            (0..60_000).map(|i| format!("- &a{i} x\n")).collect(),
        ),
    ];
    let before = peak_rss_kib();
    for (what, text) in cases {
        let started = Instant::now();
        let result = PolicySet::from_yaml("hostile.yaml", &text);
        let took = started.elapsed();
        let errors = result.expect_err(what);
        for e in errors.errors() {
            assert!(
                e.file == "hostile.yaml" && !e.message.trim().is_empty(),
                "{what}: {e:?}"
            );
            // A limit is said in words, not as the reader's dump of its budget.
            assert!(!e.message.contains("budget breached"), "{what}: {e:?}");
        }
        // The reader is slow in a debug build, where each of these took up to 27 s before
        // the loader's own limits.
        let limit = if cfg!(debug_assertions) {
            Duration::from_secs(5)
        } else {
            Duration::from_millis(500)
        };
        assert!(took < limit, "{what}: took {took:?}");
        eprintln!(
            "hostile yaml {what}: {} bytes, refused in {took:?}: {}",
            text.len(),
            errors.errors()[0].message.lines().next().unwrap_or("")
        );
    }
    let grew = peak_rss_kib().saturating_sub(before);
    assert!(grew < 1 << 20, "the peak memory grew by {grew} KiB");
}

/// The process's peak resident memory (VmHWM), in KiB; 0 where /proc is not there.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Every function of the engine's CEL environment, called with arguments of every type at
/// their edges (as a receiver or not, zero to three of them), compiled and evaluated as the
/// engine does: a result or an error, never a panic. A policy's expression is evaluated while
/// a review is judged, where a panic would take the judgement down.
#[test]
fn cel_functions_never_panic_on_any_arguments() {
    let run = Run::new(
        "cel_functions_never_panic_on_any_arguments",
        0x6b73_7079_f105,
        20,
    );
    let env = kspy_admission::cel::CelEnv::new();
    let (mut compiled, mut evaluated) = (0, 0);
    for mut case in run.cases() {
        for _ in 0..8 {
            let call = fuzz::cel::random_call(&mut case.rng);
            // Compared with itself, so a bool is asked for whatever the call returns.
            let source = format!("{call} == {call}");
            let Ok(expr) = case.guard(&format!("compiling {source}"), source.as_bytes(), || {
                kspy_admission::cel::Expression::compile(&source)
            }) else {
                continue;
            };
            compiled += 1;
            let result = case.guard(&format!("evaluating {source}"), source.as_bytes(), || {
                expr.eval_bool(env.root())
            });
            evaluated += usize::from(result.is_ok());
        }
    }
    run.summary(&format!(
        "{compiled} compiled, {evaluated} evaluated to a bool"
    ));
}
