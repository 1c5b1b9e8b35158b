//! The policy library in `policies/` loads, its test cases pass, and its fixtures are real
//! Kubernetes objects.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use kspy_admission::testing::run_dir;
use kspy_admission::{PolicySet, Settings};

fn policies_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies")
}

#[test]
fn shipped_policies_load() {
    let set = PolicySet::load_dir(&policies_dir()).unwrap_or_else(|e| panic!("{e}"));
    let mut names = set.names();
    names.sort();
    assert_eq!(
        names,
        [
            "developer-attach",
            "kube-system-privileged",
            "platform-node-debug",
            "production-reason",
            "sre-copy",
            "sre-debug"
        ]
    ); // Nor does any select a field its Kubernetes type lacks.
    assert_eq!(set.warnings(), &[]);
}

#[test]
fn shipped_policy_tests_pass() {
    let report = run_dir(&policies_dir(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    let failures: Vec<String> = report
        .results
        .iter()
        .filter(|r| !r.passed())
        .map(|r| {
            format!(
                "{} / {}:\n    {}",
                r.suite,
                r.case,
                r.failures.join("\n    ")
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "failing cases:\n{}",
        failures.join("\n")
    );
    assert!(
        report.results.len() >= 20,
        "only {} cases",
        report.results.len()
    );
}

/// Every fixture decodes into kube's AdmissionReview with k8s-openapi Pods and encodes back to
/// the same JSON: no misspelt or invented fields, every value of the right type.
#[test]
fn fixtures_round_trip_through_kubernetes_types() {
    let dir = policies_dir().join("fixtures");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        count += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let original: serde_json::Value = serde_json::from_str(&text).unwrap();
        let review: kube::core::admission::AdmissionReview<Pod> =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let request = review.request.as_ref().unwrap();
        for (field, pod) in [
            ("object", &request.object),
            ("oldObject", &request.old_object),
        ] {
            let Some(pod) = pod else { continue };
            let again = serde_json::to_value(pod).unwrap();
            assert_eq!(
                again,
                original["request"][field],
                "{}: request.{field} does not survive a round trip through k8s_openapi Pod",
                path.display()
            );
        }
    }
    assert!(count >= 10);
}

/// Neither the shipped policies nor the e2e scenarios' set a `defaults.imagePullPolicy`: the
/// API server sets the field while decoding a request, before admission webhooks run, so the
/// default never applies in a cluster (README, "Defaults"). The e2e set carried one, which
/// read as if the scenarios' `IfNotPresent` came from kspy; it is the API server's own default
/// for a tagged image.
#[test]
fn no_policy_here_sets_an_image_pull_policy_default_that_never_applies() {
    let e2e = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/policies");
    for dir in [policies_dir(), e2e] {
        let set = PolicySet::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert!(!set.is_empty(), "{}", dir.display());
        let setting: Vec<&str> = set
            .policies()
            .iter()
            .filter(|p| p.defaults.image_pull_policy.is_some())
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(setting, Vec::<&str>::new(), "{}", dir.display());
    }
}
