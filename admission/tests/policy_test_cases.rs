//! `DebugPolicyTest` cases: a `reviewPatch` varies a fixture without another copy of it.

mod common;

use kspy_admission::Settings;
use kspy_admission::testing::run_dir;

const SUITE: &str = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: t}
spec:
  cases:
    - name: as the fixture is
      review: review.json
      expect: {allowed: true}
    - name: another image, through a patch
      review: review.json
      reviewPatch:
        - {op: replace, path: /request/object/spec/ephemeralContainers/0/image, value: "evil.example.net/x:1"}
      expect:
        allowed: false
        messageContains: [image evil.example.net/x:1 is not granted]
    - name: a patch that does not apply
      review: review.json
      reviewPatch:
        - {op: remove, path: /request/object/spec/nope}
      expect: {allowed: true}
"#;

/// Writes `review.json` into `dir`: user `u` attaching `busybox:1.36` as `d` in `ns`, the
/// review every suite here names.
fn write_busybox_review(dir: &std::path::Path) {
    let review = common::attach(
        "ns",
        "u",
        &[],
        vec![],
        vec![common::debugger("d", "busybox:1.36")],
    );
    std::fs::write(dir.join("review.json"), review.to_string()).unwrap();
}

#[test]
fn review_patches_vary_a_fixture_and_a_bad_one_fails_its_case() {
    let dir = tempfile::tempdir().unwrap();
    let policy = common::policy(
        "busybox",
        "  grant: {images: ['busybox:1.36*'], runAsRoot: true}",
    );
    std::fs::write(dir.path().join("p.yaml"), format!("{policy}{SUITE}")).unwrap();
    write_busybox_review(dir.path());

    let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    let outcome: Vec<(&str, &[String])> = report
        .results
        .iter()
        .map(|r| (r.case.as_str(), r.failures.as_slice()))
        .collect();
    assert!(outcome[0].1.is_empty(), "{outcome:?}");
    assert!(outcome[1].1.is_empty(), "{outcome:?}");
    assert_eq!(outcome[2].1.len(), 1, "{outcome:?}");
    assert!(
        outcome[2].1[0].starts_with("reviewPatch does not apply to ")
            && outcome[2].1[0].contains("review.json"),
        "{outcome:?}"
    );

    // Not a patch at all: the case is malformed, named by field, and does not run; the
    // others do.
    let broken = SUITE.replace(
        "        - {op: remove, path: /request/object/spec/nope}",
        "        - {op: frobnicate}",
    );
    std::fs::write(dir.path().join("p.yaml"), format!("{policy}{broken}")).unwrap();
    let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    let errors: Vec<String> = report.suite_errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .contains("(suite t, case \"a patch that does not apply\"): spec.cases[2].reviewPatch"),
        "{errors:?}"
    );
    assert_eq!(report.results.len(), 2, "{report:?}");
}

/// A case is judged as the cluster would judge it: the API server applies kspy's `/mutate`
/// patch before `/validate`, so defaults the policies' own grants refuse fail the case even
/// though the review as sent is allowed. Defaults they grant pass.
#[test]
fn a_case_fails_when_the_policies_own_defaults_change_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let suite = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: t}
spec:
  cases:
    - name: as sent
      review: review.json
      expect: {allowed: true}
"#;
    write_busybox_review(dir.path());
    let run = |defaults: &str| {
        let policy = common::policy(
            "busybox",
            &format!("  grant: {{images: ['busybox:1.36*'], runAsRoot: true}}\n{defaults}"),
        );
        std::fs::write(dir.path().join("p.yaml"), format!("{policy}{suite}")).unwrap();
        let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
        report.results[0].failures.clone()
    };

    let refused = run("  defaults:\n    securityContext: {privileged: true}\n");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].starts_with("as sent the review is allowed, but after the defaults")
            && refused[0].contains("privileged"),
        "{refused:?}"
    );

    let granted = run("  defaults:\n    env: [{name: DEBUG_SESSION, value: '1'}]\n");
    assert!(granted.is_empty(), "{granted:?}");
}

/// A case's `userInfo` carries what a policy may read of the user: `uid` and the
/// authenticator's `extra` too, not only the name and groups.
#[test]
fn a_case_can_name_the_users_uid_and_extras() {
    let dir = tempfile::tempdir().unwrap();
    write_busybox_review(dir.path());
    let policy = common::policy(
        "sso-only",
        "  grant: {images: ['busybox:1.36*'], runAsRoot: true}\n  validations:\n    - expression: \"request.userInfo.uid == 'u-42' && 'sso' in request.userInfo.extra['idp']\"\n      message: only SSO sessions may debug\n",
    );
    let suite = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: t}
spec:
  cases:
    - name: an SSO session
      review: review.json
      userInfo: {username: alice, uid: u-42, extra: {idp: [sso]}}
      expect: {allowed: true}
    - name: a token
      review: review.json
      userInfo: {username: alice, uid: u-42, extra: {idp: [token]}}
      expect: {allowed: false, messageContains: [only SSO sessions may debug]}
"#;
    std::fs::write(dir.path().join("p.yaml"), format!("{policy}{suite}")).unwrap();
    let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.results.len(), 2);
    for r in &report.results {
        assert!(r.passed(), "{}: {:?}", r.case, r.failures);
    }
}

/// A `reviewPatch` whose `copy` operations each copy what the last one made doubles the
/// review each time: 30 of them, a suite of 40 lines, took all the memory of
/// `kspy policy test`. The case fails instead, at the first copy past the webhook's body
/// limit, naming it; copies that keep the review within it still apply.
#[test]
fn a_review_patch_cannot_grow_the_review_without_bound() {
    let dir = tempfile::tempdir().unwrap();
    let copies: String = (0..30)
        .map(|i| {
            format!(
                "        - {{op: copy, from: /request/object/spec, path: /request/object/spec/x{i}}}\n"
            )
        })
        .collect();
    let suite = format!(
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicyTest\nmetadata: {{name: t}}\nspec:\n  \
         cases:\n    - name: doubling\n      review: review.json\n      reviewPatch:\n{copies}      \
         expect: {{allowed: true}}\n    - name: one copy\n      review: review.json\n      \
         reviewPatch:\n        - {{op: copy, from: /request/object/metadata/name, path: \
         /request/object/metadata/generateName}}\n      expect: {{allowed: true}}\n"
    );
    let policy = common::policy(
        "busybox",
        "  grant: {images: ['busybox:1.36*'], runAsRoot: true}",
    );
    std::fs::write(dir.path().join("p.yaml"), format!("{policy}{suite}")).unwrap();
    write_busybox_review(dir.path());

    let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    let doubling = &report.results[0].failures;
    assert_eq!(doubling.len(), 1, "{doubling:?}");
    assert!(
        doubling[0].starts_with("reviewPatch operation ")
            && doubling[0].contains("(copy from \"/request/object/spec\") would grow")
            && doubling[0].contains("review.json past 6291456 bytes"),
        "{doubling:?}"
    );
    assert!(report.results[1].failures.is_empty(), "{report:?}");
}

/// `/validate` never answers with a patch: a case expecting one from it is a mistake in the
/// suite, named as such, not a case failing with "got []".
#[test]
fn a_patch_expected_from_validate_is_a_suite_error() {
    let dir = tempfile::tempdir().unwrap();
    write_busybox_review(dir.path());
    let policy = common::policy(
        "busybox",
        "  grant: {images: ['busybox:1.36*'], runAsRoot: true}\n  defaults: {targetContainer: none}",
    );
    let suite = |endpoint: &str| {
        format!(
            r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {{name: t}}
spec:
  cases:
    - name: the defaults
      review: review.json
{endpoint}      expect:
        allowed: true
        patch: []
"#
        )
    };
    std::fs::write(dir.path().join("p.yaml"), format!("{policy}{}", suite(""))).unwrap();
    let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.results.is_empty(),
        "a patch expected from /validate ran"
    );
    let text = report.suite_errors[0].to_string();
    assert!(
        text.contains("spec.cases[0].expect.patch") && text.contains("add `endpoint: mutate`"),
        "{text}"
    );
    // From /mutate the same expectation runs, and holds.
    std::fs::write(
        dir.path().join("p.yaml"),
        format!("{policy}{}", suite("      endpoint: mutate\n")),
    )
    .unwrap();
    let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        report.results[0].failures.is_empty(),
        "{:?}",
        report.results
    );
}

/// A case's own mistakes say what to write: an empty or directory `review`, and
/// `messageContains` on a request that was allowed (no denial message to search).
#[test]
fn a_cases_own_mistakes_say_what_to_write() {
    let dir = tempfile::tempdir().unwrap();
    write_busybox_review(dir.path());
    std::fs::create_dir(dir.path().join("fixtures")).unwrap();
    let policy = common::policy(
        "busybox",
        "  grant: {images: ['busybox:1.36*'], runAsRoot: true}",
    );
    let suite = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: t}
spec:
  cases:
    - name: no review
      review: ""
      expect: {allowed: true}
    - name: a directory
      review: fixtures
      expect: {allowed: true}
    - name: a reason from an allowed request
      review: review.json
      expect:
        allowed: false
        messageContains: [not granted]
"#;
    std::fs::write(dir.path().join("p.yaml"), format!("{policy}{suite}")).unwrap();
    let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    let failures: Vec<String> = report
        .results
        .iter()
        .map(|r| r.failures.join(" | "))
        .collect();
    assert!(
        failures[0].contains("review is empty: name the AdmissionReview JSON file"),
        "{failures:?}"
    );
    assert!(
        failures[1].contains("is not a file: name the AdmissionReview JSON file"),
        "{failures:?}"
    );
    assert!(
        failures[2].contains("expected denied, got allowed")
            && failures[2]
                .contains("the request was allowed, and an allowed request has no denial message"),
        "{failures:?}"
    );
}

/// A broken suite no longer stops the others (the first error stopped the run, and no case
/// ran), but its namespaces may not read: a case in a namespace only it declares is then not
/// judged, rather than judged without the labels that would have denied it (here a
/// production guardrail, which would not apply, and the case would pass).
#[test]
fn a_broken_suite_stops_no_other_and_lends_no_guessed_labels() {
    let dir = tempfile::tempdir().unwrap();
    let busybox = "  grant: {images: ['busybox:1.36*'], runAsRoot: true}";
    let guardrail = "  match:\n    namespaceSelector: {matchLabels: {env: production}}\n  \
                     validations:\n    - {expression: 'false', message: not in production}";
    let policies = format!(
        "{}{}",
        common::policy("busybox", busybox),
        common::policy("no-prod", guardrail)
    );
    std::fs::write(dir.path().join("p.yaml"), policies).unwrap();
    write_busybox_review(dir.path());
    let prod = common::attach(
        "prod",
        "u",
        &[],
        vec![],
        vec![common::debugger("d", "busybox:1.36")],
    );
    std::fs::write(dir.path().join("prod.json"), prod.to_string()).unwrap();
    let suite = |name: &str, namespaces: &str, review: &str| {
        format!(
            "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicyTest\nmetadata: {{name: {name}}}\n\
             spec:\n  namespaces: {namespaces}\n  cases:\n    - name: {name} case\n      \
             review: {review}\n      expect: {{allowed: true}}\n"
        )
    };
    std::fs::write(
        dir.path().join("a.yaml"),
        suite("declares", "[{name: ns, labels: {}}]", "review.json"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("b.yaml"),
        suite(
            "broken",
            "[{name: prod, lables: {env: production}}]",
            "prod.json",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("c.yaml"),
        suite("relies", "[]", "prod.json"),
    )
    .unwrap();

    let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    let errors: Vec<String> = report.suite_errors.iter().map(|e| e.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!(
            "{}:5:29: document 1 (suite broken): spec.namespaces[0].lables: unknown field `lables`",
            dir.path().join("b.yaml").display()
        )),
        "{errors:?}"
    );
    let outcome: Vec<(&str, String)> = report
        .results
        .iter()
        .map(|r| (r.suite.as_str(), r.failures.join(" | ")))
        .collect();
    assert_eq!(outcome.len(), 2, "{outcome:?}");
    assert_eq!(outcome[0], ("declares", String::new()));
    assert_eq!(outcome[1].0, "relies");
    assert!(
        outcome[1].1.starts_with(
            "not run: no suite that reads declares namespace \"prod\", and one that does not \
             read (see the suite errors) may"
        ),
        "{outcome:?}"
    );
}

/// A fixture was read whole, whatever its size: a file of gigabytes named as a case's review
/// took the memory of `kspy policy test`. One past the webhook's limit fails its case, named,
/// before it is read (the file here is sparse: 7 MiB that take no room).
#[test]
fn a_fixture_past_the_webhooks_limit_fails_its_case_unread() {
    let dir = tempfile::tempdir().unwrap();
    write_busybox_review(dir.path());
    let huge = std::fs::File::create(dir.path().join("huge.json")).unwrap();
    huge.set_len(7 * 1024 * 1024).unwrap();
    let policy = common::policy(
        "busybox",
        "  grant: {images: ['busybox:1.36*'], runAsRoot: true}",
    );
    let suite = r#"
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: t}
spec:
  cases:
    - name: huge
      review: huge.json
      expect: {allowed: true}
    - name: as the fixture is
      review: review.json
      expect: {allowed: true}
"#;
    std::fs::write(dir.path().join("p.yaml"), format!("{policy}{suite}")).unwrap();
    let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    let huge = dir.path().canonicalize().unwrap().join("huge.json");
    assert_eq!(
        report.results[0].failures,
        [format!(
            "{} holds more than 6291456 bytes, the most the webhook reads of an \
             AdmissionReview: a fixture is one review, as the API server sends it",
            huge.display()
        )]
    );
    assert!(report.results[1].passed(), "{report:?}");
}

/// Every error inside a suite names the line and column of the field it is about (`FILE:LINE:
/// COLUMN:`, as the YAML reader places a syntax error), and a case that did not run or failed
/// its line: the field path alone (`spec.cases[3].expect`) had the author count list items.
/// A missing field is placed at the mapping that lacks it, a field reached through an alias
/// at the alias.
#[test]
fn suite_errors_and_failing_cases_name_their_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    write_busybox_review(dir.path());
    std::fs::write(dir.path().join("broken.json"), "{\"request\": ").unwrap();
    let policy = common::policy(
        "busybox",
        "  grant: {images: ['busybox:1.36*'], runAsRoot: true}",
    );
    std::fs::write(dir.path().join("p.yaml"), policy).unwrap();
    // Line numbers are those of this text: line 1 is the first `apiVersion`.
    let suite = "\
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: t}
spec:
  cases:
    - name: fine
      review: review.json
      expect: {allowed: true}
    - name: a typo
      review: review.json
      expect:
        allowd: true
    - name: no expectation
      review: review.json
    - name: a wrong type
      review: review.json
      expect: {allowed: true, policies: 3}
    - name: a fixture that does not parse
      review: broken.json
      expect: {allowed: true}
    - &shared {name: shared, review: review.json, expect: {allowed: maybe}}
    - *shared
    - name: fails
      review: review.json
      expect: {allowed: false}
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicyTest
metadata: {name: u, labels: {}}
spec:
  cases: []
";
    std::fs::write(dir.path().join("s.yaml"), suite).unwrap();
    let file = dir.path().join("s.yaml").display().to_string();

    let report = run_dir(dir.path(), Settings::default()).unwrap_or_else(|e| panic!("{e}"));
    let errors: Vec<String> = report.suite_errors.iter().map(|e| e.to_string()).collect();
    for (at, rest) in [
        (
            "12:9",
            r#": document 1 (suite t, case "a typo"): spec.cases[1].expect.allowd: unknown field `allowd` (did you mean `allowed`?)"#,
        ),
        (
            "13:7",
            r#": document 1 (suite t, case "no expectation"): spec.cases[2]: missing field `expect`"#,
        ),
        (
            "17:31",
            r#": document 1 (suite t, case "a wrong type"): spec.cases[3].expect.policies: invalid type: integer `3`, expected a sequence"#,
        ),
        (
            "21:60",
            r#": document 1 (suite t, case "shared"): spec.cases[5].expect.allowed: invalid type: string "maybe", expected a boolean"#,
        ),
        (
            "22:7",
            r#": document 1 (suite t, case "shared"): spec.cases[6].expect.allowed: invalid type: string "maybe", expected a boolean"#,
        ),
        (
            "29:21",
            ": document 2 (suite u): metadata.labels: unknown field `labels`",
        ),
    ] {
        let want = format!("{file}:{at}{rest}");
        assert!(
            errors.iter().any(|e| e.starts_with(&want)),
            "no error starting {want:?} in {errors:#?}"
        );
    }
    assert_eq!(errors.len(), 6, "{errors:#?}");

    // The cases that ran and did not pass, at the line of their `- name:`.
    let at: Vec<(&str, Option<(u64, u64)>)> = report
        .results
        .iter()
        .map(|r| (r.case.as_str(), r.at))
        .collect();
    assert_eq!(
        at,
        [
            ("fine", None),
            ("a fixture that does not parse", Some((18, 7))),
            ("fails", Some((23, 7))),
        ]
    );

    // `kspy policy check` reads the fixtures too: the one that does not parse is placed at its
    // case's `review`, and says where in the fixture JSON stops.
    let Err(kspy_admission::testing::TestError::Suites(errors)) =
        kspy_admission::testing::check_suites(dir.path())
    else {
        panic!("the suites check");
    };
    let fixture = errors
        .errors()
        .iter()
        .map(ToString::to_string)
        .find(|e| e.contains("broken.json"))
        .unwrap_or_else(|| panic!("{errors}"));
    assert!(
        fixture.starts_with(&format!(
            "{file}:19:7: document 1 (suite t, case \"a fixture that does not parse\"): \
             spec.cases[4].review: "
        )) && fixture.contains("not JSON: EOF while parsing a value at line 1 column 12"),
        "{fixture}"
    );
}
