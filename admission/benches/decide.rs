//! Deciding an attach review against 20 policies: the 6 shipped in `policies/` plus 14 team
//! policies of the same shape (static match, grants, one CEL condition each), the way a
//! platform team's library grows.
//!
//! `cargo bench -p kspy-admission --bench decide`

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use kspy_admission::testing::declared_namespaces;
use kspy_admission::{Endpoint, Engine, ParsedReview, PolicySet, Settings};

fn team_policies(n: usize) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {{name: team-{i}}}\nspec:\n  match:\n    actions: [attach]\n    groups: [team-{i}]\n    namespaces: [team-{i}-*]\n  conditions:\n    - {{name: hours, expression: \"request.userInfo.username.endsWith('@example.com')\"}}\n  grant:\n    images: [registry.example.com/team-{i}/*]\n    runAsRoot: true\n---\n"
            )
        })
        .collect()
}

fn engine() -> Engine {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let mut sources: Vec<(String, String)> = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("policies/") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) == Some("yaml") {
            let text = std::fs::read_to_string(&path).expect("policy file");
            sources.push((path.display().to_string(), text));
        }
    }
    sources.push(("team.yaml".into(), team_policies(14)));
    let set = PolicySet::from_sources(sources.iter().map(|(a, b)| (a.as_str(), b.as_str())))
        .expect("policies load");
    assert_eq!(set.len(), 20);
    Engine::new(set, Settings::default()).expect("engine")
}

fn bench(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let engine = engine();
    let namespaces = declared_namespaces(&dir).expect("namespaces");
    let body = std::fs::read(dir.join("fixtures/attach-sre-ptrace.json")).expect("fixture");
    let review = ParsedReview::from_slice(&body).expect("review");
    let ns = namespaces.get("prod-payments");
    let j = engine.judge(&review, Endpoint::Validate, ns);
    assert!(j.response.allowed, "{}", j.response.result.message);

    c.bench_function("validate attach, 20 policies (parsed review)", |b| {
        b.iter(|| engine.judge(std::hint::black_box(&review), Endpoint::Validate, ns))
    });
    c.bench_function("mutate attach, 20 policies (parsed review)", |b| {
        b.iter(|| engine.judge(std::hint::black_box(&review), Endpoint::Mutate, ns))
    });
    c.bench_function(
        "validate attach, 20 policies (from bytes, response encoded)",
        |b| {
            b.iter(|| {
                let r = ParsedReview::from_slice(std::hint::black_box(&body)).expect("review");
                let j = engine.judge(&r, Endpoint::Validate, ns);
                j.encode().expect("encode")
            })
        },
    );
    let plain = std::fs::read(dir.join("fixtures/create-plain-pod.json")).expect("fixture");
    c.bench_function("not a debug request (from bytes)", |b| {
        b.iter(|| {
            let r = ParsedReview::from_slice(std::hint::black_box(&plain)).expect("review");
            engine.judge(&r, Endpoint::Validate, None)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
