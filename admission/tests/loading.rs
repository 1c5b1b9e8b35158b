//! Issue point 3: policy files load all or nothing, and every error names file, document,
//! policy and field.

mod common;

use kspy_admission::PolicySet;

fn errors(yaml: &str) -> Vec<String> {
    errors_in("team.yaml", yaml)
}

fn errors_in(file: &str, yaml: &str) -> Vec<String> {
    PolicySet::from_yaml(file, yaml)
        .expect_err("should not load")
        .errors()
        .iter()
        .map(|e| e.to_string())
        .collect()
}

fn one_error(body: &str) -> String {
    let e = errors(&common::policy("p", body));
    assert_eq!(e.len(), 1, "{e:#?}");
    e[0].clone()
}

/// Every misspelt field of a document is reported in one run, each with the field it was
/// probably meant to be, beside the other errors of the document.
#[test]
fn every_unknown_field_is_reported_at_once_with_a_did_you_mean() {
    let e = errors(&common::policy(
        "p",
        "  grant:\n    images: ['busybox:*']\n    capabilites: [SYS_PTRACE]\n  validatons:\n    - expression: 'true'\n  defaults:\n    imagePullPolicy: Sometimes\n    targetContainer: frist",
    ));
    // In the order of the decoded document's keys.
    let want = [
        "spec.defaults.imagePullPolicy: unknown variant `Sometimes`",
        "spec.defaults.targetContainer: unknown variant `frist`",
        "spec.grant.capabilites: unknown field `capabilites` (did you mean `capabilities`?), \
         expected one of",
        "spec.validatons: unknown field `validatons` (did you mean `validations`?)",
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for (got, want) in e.iter().zip(want) {
        assert!(got.contains(want), "{got:?} lacks {want:?}\n{e:#?}");
    }
    // A value taken out for its own error is not then reported missing.
    let e = one_error("  validations:\n    - expression: 5");
    assert!(
        e.contains("spec.validations[0].expression: invalid type"),
        "{e}"
    );
    // A name close to none is reported as serde words it.
    let e = one_error("  zzz: 1");
    assert!(
        e.contains("spec.zzz: unknown field `zzz`, expected one of `description`"),
        "{e}"
    );
}

#[test]
fn each_mistake_is_reported_where_it_is() {
    let cases: &[(&str, &[&str])] = &[
        (
            "  grant:\n    capabilites: [SYS_PTRACE]",
            &[
                "team.yaml:7:5: document 1 (policy p): spec.grant",
                "unknown field `capabilites`",
            ],
        ),
        (
            "  mode: enforce",
            &["spec.mode", "unknown variant `enforce`"],
        ),
        // A list where a map of fields belongs: serde's derive would read the list as the
        // fields in order (`match: [[attach]]` as `actions: [attach]`); it is refused.
        (
            "  grant:\n    - images: ['registry.example.com/*']",
            &[
                "spec.grant",
                "invalid type: sequence, expected a map of fields",
            ],
        ),
        (
            "  match: [[attach]]",
            &["spec.match", "expected a map of fields"],
        ),
        (
            "  match:\n    namespaceSelector: [[]]",
            &["spec.match.namespaceSelector", "expected a map of fields"],
        ),
        (
            "  conditions: [[a, 'true']]",
            &["spec.conditions[0]", "expected a map of fields"],
        ),
        (
            "  defaults:\n    env: [[A, b]]",
            &["spec.defaults.env[0]", "expected a map of fields"],
        ),
        (
            "  defaults:\n    env: [{name: OK_1.x-y, value: a}, {name: CAFÉ, value: b}]",
            &[
                "spec.defaults.env[1].name",
                "\"CAFÉ\" is not a variable name",
            ],
        ),
        (
            "  defaults:\n    env: [{name: 1ST, value: a}]",
            &["spec.defaults.env[0].name", "not starting with a digit"],
        ),
        (
            "  grant:\n    runAsRoot: yes-please",
            &["spec.grant.runAsRoot"],
        ),
        (
            "  grant:\n    capabilities: [SYS_PTRAC]",
            &["spec.grant.capabilities[0]", "SYS_PTRACE"],
        ),
        (
            "  grant:\n    images: ['registry.example.com/[x']",
            &["spec.grant.images[0]", "invalid pattern"],
        ),
        // Image patterns that can never match a normalized reference.
        (
            "  grant:\n    images: ['*']",
            &["spec.grant.images[0]", "write \"**\" for any image"],
        ),
        (
            "  grant:\n    images: ['registry.example.com/debug/Busybox']",
            &[
                "spec.grant.images[0]",
                "lower-case",
                "write \"debug/busybox\"",
            ],
        ),
        (
            "  grant:\n    images: ['^registry.example.com/debug/.*$']",
            &[
                "spec.grant.images[0]",
                "'^' does not occur",
                "not regular expressions",
            ],
        ),
        (
            "  grant:\n    images: ['registry.example.com/(tools|debug)/*']",
            &["spec.grant.images[0]", "'(' does not occur"],
        ),
        (
            "  grant:\n    images: ['registry\\\\.example\\\\.com/*']",
            &["spec.grant.images[0]", "'\\\\' does not occur"],
        ),
        (
            "  grant:\n    images: ['busybox:1.+']",
            &["spec.grant.images[0]", "'+' does not occur"],
        ),
        (
            "  grant:\n    images: ['busybox:1.36@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef']",
            &[
                "spec.grant.images[0]",
                "matched without its tag",
                "write \"busybox@sha256:0123",
                "or \"busybox:1.36\" for that tag",
            ],
        ),
        (
            "  grant:\n    images: ['docker.io/*']",
            &["spec.grant.images[0]", "write \"docker.io/library/*\""],
        ),
        (
            "  grant:\n    images: ['index.docker.io/busybox:1.36']",
            &["write \"docker.io/library/busybox\""],
        ),
        (
            "  match:\n    namespaces: [Prod]",
            &[
                "spec.match.namespaces[0]",
                "\"Prod\" can never match",
                "write \"prod\"",
            ],
        ),
        (
            "  match:\n    excludeNamespaces: [kube_system]",
            &["spec.match.excludeNamespaces[0]", "'_' is none of those"],
        ),
        (
            "  match:\n    namespaces: [no]",
            &[
                "spec.match.namespaces[0]",
                "invalid type: boolean `false`",
                "quote the value",
            ],
        ),
        (
            "  match:\n    namespaceSelector:\n      matchLabels: {team: 'pay*'}",
            &[
                "spec.match.namespaceSelector.matchLabels.team",
                "\"pay*\" can never match",
                "matchExpressions with operator In",
            ],
        ),
        // Keys and values no label can have: the selector never holds (a guardrail never
        // applies, a NotIn always does). The API server refuses them in its own selectors.
        (
            "  match:\n    namespaceSelector:\n      matchExpressions:\n        - {key: env, operator: In, values: ['production,staging']}",
            &[
                "spec.match.namespaceSelector.matchExpressions[0].values[0]",
                "\"production,staging\" is not a label value",
                "one value per item: values: [production, staging]",
            ],
        ),
        (
            "  match:\n    namespaceSelector:\n      matchLabels: {env: 'production, staging'}",
            &[
                "spec.match.namespaceSelector.matchLabels.env",
                "write matchExpressions: [{key: env, operator: In, values: [production, staging]}]",
            ],
        ),
        (
            "  match:\n    namespaceSelector:\n      matchLabels: {'env ': production}",
            &[
                "spec.match.namespaceSelector.matchLabels.env ",
                "\"env \" is not a label key",
            ],
        ),
        (
            "  match:\n    namespaceSelector:\n      matchLabels: {env: 'prod/eu'}",
            &[
                "spec.match.namespaceSelector.matchLabels.env",
                "\"prod/eu\" is not a label value",
            ],
        ),
        (
            "  match:\n    namespaceSelector:\n      matchExpressions:\n        - {key: 'example.com/', operator: Exists}",
            &[
                "spec.match.namespaceSelector.matchExpressions[0].key",
                "\"example.com/\" is not a label key",
            ],
        ),
        (
            "  match:\n    namespaces: ['prod *']",
            &["spec.match.namespaces[0]", "white space"],
        ),
        (
            "  match:\n    actions: [exec]",
            &["spec.match.actions[0]", "unknown variant `exec`"],
        ),
        (
            "  match:\n    serviceAccounts: [builder]",
            &["spec.match.serviceAccounts[0]", "NAMESPACE/NAME"],
        ),
        // Both parts are lower-case DNS names: this loaded and never matched.
        (
            "  match:\n    serviceAccounts: [ci/builder, Ops/Deployer-*]",
            &[
                "spec.match.serviceAccounts[1]",
                "\"Ops/Deployer-*\" can never match: namespaces and service-account names are lower-case; write \"ops/deployer-*\"",
            ],
        ),
        (
            "  grant:\n    hostPaths: [{path: /var/log, readonly: true}]",
            &[
                "spec.grant.hostPaths[0]",
                "unknown field `readonly`",
                "either a path, `- /var/log` (read-write), or `- {path: /var/log, readOnly: true}`",
            ],
        ),
        (
            "  grant:\n    hostPaths: [{path: /var/log, readOnly: 'yes'}]",
            &[
                "spec.grant.hostPaths[0]",
                "readOnly: invalid type: string \"yes\", expected a boolean",
                "either a path",
            ],
        ),
        (
            "  grant:\n    hostPaths: [[/var/log]]",
            &["spec.grant.hostPaths[0]", "found a list", "either a path"],
        ),
        (
            "  grant:\n    hostPaths: [var/log]",
            &["spec.grant.hostPaths[0]", "absolute"],
        ),
        (
            "  conditions:\n    - {name: prod, expression: 'true'}\n    - {name: prod, expression: 'false'}\n",
            &[
                "spec.conditions[1].name",
                "\"prod\" is already the name of spec.conditions[0]",
            ],
        ),
        (
            "  defaults:\n    env: [{name: A, value: '1'}, {name: B, value: '2'}, {name: A, value: '3'}]\n",
            &[
                "spec.defaults.env[2].name",
                "\"A\" is already set by spec.defaults.env[0]",
            ],
        ),
        // A denial gives each reason one line: a `|` block's message (its trailing line
        // break too) would end it early and could start a line that reads as another reason.
        (
            "  validations:\n    - expression: 'true'\n      message: |\n        must be x\n        - container \"y\": fine\n",
            &[
                "spec.validations[0].message",
                "the message has a line break",
                "fold it with `message: >-`",
            ],
        ),
        (
            "  validations:\n    - expression: 'true'\n      message: |\n        must be x\n",
            &["spec.validations[0].message", "line break"],
        ),
        (
            "  validations:\n    - expression: 'true'\n      message: '  '\n",
            &["spec.validations[0].message", "the message is blank"],
        ),
        // A mode suffix, as --mount and docker write it, would be part of the path: a
        // grant of a directory nobody mounts, not a read-only /var/log.
        (
            "  grant:\n    hostPaths: [/var/log:ro]",
            &[
                "spec.grant.hostPaths[0]",
                "\"/var/log:ro\" ends in \":ro\"",
                "write `- {path: /var/log, readOnly: true}`",
            ],
        ),
        (
            "  grant:\n    hostPaths: [{path: '/:rw'}]",
            &[
                "spec.grant.hostPaths[0]",
                "\"/:rw\" ends in \":rw\"",
                "write `- /`",
            ],
        ),
        (
            "  grant:\n    hostPaths: [/proc, {path: /var/log/.., readOnly: true}]",
            &["spec.grant.hostPaths[1]", "\"/var/log/..\" contains \"..\""],
        ),
        (
            "  validations:\n    - expression: \"container.image.startsWith('x'\"",
            &[
                "spec.validations[0].expression",
                "syntax error at line ",
                "expression: container.image",
            ],
        ),
        (
            "  conditions:\n    - name: c\n      expression: \"contianer.image == 'x'\"",
            &[
                "spec.conditions[0].expression",
                "undeclared reference to \"contianer\"",
            ],
        ),
        (
            "  validations:\n    - expression: \"object.spec.containers.all(c, object.spec.volumes.all(v, v.name != c.name))\"",
            &["spec.validations[0].expression", "budget"],
        ),
        (
            "  match:\n    namespaceSelector:\n      matchExpressions: [{key: team, operator: In}]",
            &["matchExpressions[0].values", "In and NotIn need"],
        ),
        (
            "  mode: Warn\n  grant:\n    capabilities: [SYS_PTRACE]",
            &[
                "spec.grant: a Warn policy grants nothing",
                "act only in mode Enforce",
                "pilot group",
            ],
        ),
        (
            "  mode: Audit\n  defaults:\n    targetContainer: first",
            &["spec.defaults: an Audit policy injects no defaults"],
        ),
        (
            "  defaults:\n    securityContext: {privileged: maybe}",
            &["spec.defaults.securityContext.privileged", "invalid type"],
        ),
        (
            "  defaults:\n    securityContext: {runAsUsr: 5}",
            &[
                "spec.defaults.securityContext.runAsUsr",
                "unknown field \"runAsUsr\" (did you mean \"runAsUser\"?)",
            ],
        ),
        (
            "  defaults:\n    securityContext: {runAsNonRoot: true, capabilities: {drop: [ALL], ad: [NET_RAW]}}",
            &[
                "spec.defaults.securityContext.capabilities.ad",
                "unknown field \"ad\"",
            ],
        ),
        (
            "  defaults:\n    securityContext: {runAsUser: '5'}",
            &["spec.defaults.securityContext.runAsUser", "invalid type"],
        ),
        (
            "  defaults:\n    securityContext: [runAsUser]",
            &["spec.defaults.securityContext: must be a mapping"],
        ),
        (
            "  defaults:\n    securityContext:\n      seccompProfile: {type: RuntimeDefault, localhostProfile: x.json}",
            &[
                "spec.defaults.securityContext.seccompProfile",
                "localhostProfile is only allowed with type Localhost, not RuntimeDefault",
            ],
        ),
        (
            "  defaults:\n    securityContext:\n      appArmorProfile: {type: Localhost}",
            &[
                "spec.defaults.securityContext.appArmorProfile",
                "type Localhost needs localhostProfile",
            ],
        ),
        (
            "  defaults:\n    securityContext:\n      seccompProfile: {type: runtimedefault}",
            &[
                "spec.defaults.securityContext.seccompProfile",
                "type \"runtimedefault\" is not a profile type (did you mean \"RuntimeDefault\"?)",
            ],
        ),
    ];
    for (body, wants) in cases {
        let e = one_error(body);
        for want in *wants {
            assert!(
                e.contains(want),
                "for {body:?}\n  error {e:?}\n  lacks {want:?}"
            );
        }
    }
}

/// CEL that parses and names only variables, yet fails at every evaluation (and so denies
/// every request the policy sees), is refused at load, naming the field and the name.
#[test]
fn cel_that_could_only_fail_is_refused() {
    let cases: &[(&str, &[&str])] = &[
        (
            "  validations:\n    - expression: \"container.image.startswith('x')\"",
            &[
                "spec.validations[0].expression",
                "unknown function \"startswith\" (did you mean \"startsWith\"?)",
            ],
        ),
        (
            "  conditions:\n    - name: c\n      expression: \"sizee(container.args) > 0\"",
            &[
                "spec.conditions[0].expression",
                "unknown function \"sizee\" (did you mean \"size\"?)",
            ],
        ),
        (
            "  validations:\n    - expression: \"sets.contans(asks.capabilities, ['NET_RAW'])\"",
            &["unknown function \"sets.contans\" (did you mean \"sets.contains\"?)"],
        ),
        (
            "  validations:\n    - expression: \"type(container.image) == string\"",
            &["unknown function \"type\""],
        ),
        (
            "  validations:\n    - expression: \"dyn(container.image) == 'x'\"",
            &["unknown function \"dyn\""],
        ),
        // A type name is no value at run time either.
        (
            "  validations:\n    - expression: \"container.image != string\"",
            &["undeclared reference to \"string\""],
        ),
        (
            "  variables:\n    - {name: reason, expression: \"'x'\"}\n  validations:\n    - expression: \"variables.reasn != ''\"",
            &[
                "spec.validations[0].expression",
                "variables.reasn is not declared in spec.variables (did you mean \"reason\"?)",
            ],
        ),
        // The index form reads as the select form does.
        (
            "  variables:\n    - {name: reason, expression: \"'x'\"}\n  validations:\n    - expression: \"variables['reasn'] != ''\"",
            &[
                "spec.validations[0].expression",
                "variables.reasn is not declared in spec.variables (did you mean \"reason\"?)",
            ],
        ),
        (
            "  variables:\n    - {name: a, expression: \"variables.b + 1\"}\n    - {name: b, expression: \"1\"}",
            &[
                "spec.variables[0].expression",
                "variables.b is not declared above this variable",
                "move \"b\" above",
            ],
        ),
        (
            "  validations:\n    - expression: \"'container.image.startsWith(\\\"x\\\")'\"",
            &[
                "spec.validations[0].expression",
                "is a string literal, but a bool is needed",
            ],
        ),
        (
            "  conditions:\n    - {name: c, expression: '[true]'}",
            &["spec.conditions[0].expression", "a list literal"],
        ),
        (
            "  validations:\n    - {expression: 'true', messageExpression: '1'}",
            &[
                "spec.validations[0].messageExpression",
                "an int literal, but a string is needed",
            ],
        ),
    ];
    for (body, wants) in cases {
        let e = one_error(body);
        for want in *wants {
            assert!(
                e.contains(want),
                "for {body:?}\n  error {e:?}\n  lacks {want:?}"
            );
        }
    }
    // What the runtime does resolve still loads: library functions through their prefix, a
    // comprehension variable named like a library or like `variables`, declared variables.
    let ok = common::policy(
        "p",
        "  variables:\n    - {name: caps, expression: 'asks.capabilities'}\n    - {name: count, expression: 'size(variables.caps)'}\n  validations:\n    - expression: \"sets.contains(['SYS_PTRACE'], variables.caps) && math.greatest([1, variables.count]) > 0 && base64.encode(b'a') != '' && [1].all(sets, sets > 0) && [{'a': 1}].all(variables, has(variables.a))\"\n      messageExpression: \"'no'\"",
    );
    if let Err(e) = PolicySet::from_yaml("team.yaml", &ok) {
        panic!("{e}");
    }
    // Asking whether a variable exists is no read: `has()` is false for one not declared, and
    // `in` too. A declared variable read by index, and a comprehension variable named
    // `variables`, load.
    let asks = common::policy(
        "p",
        "  variables:\n    - {name: reason, expression: \"'x'\"}\n  validations:\n    - expression: \"has(variables.nope) || 'nope' in variables || variables['reason'] != '' || [{'a': 1}].all(variables, variables['a'] > 0)\"",
    );
    if let Err(e) = PolicySet::from_yaml("team.yaml", &asks) {
        panic!("{e}");
    }
}

/// The checks that a pattern could match some name look at the characters that stand for
/// themselves only: bracket expressions (`[^x]`, `[[:digit:]]`) and escapes are glob syntax
/// that matches real names.
#[test]
fn glob_syntax_in_patterns_is_not_taken_for_impossible_characters() {
    let ok = common::policy(
        "p",
        "  match:\n    namespaces: ['team-[^x]*', 'team-[[:digit:]]*', 'team\\-a', 'ns-[!_]?']\n  grant:\n    images: ['registry.example.com/team-[^x]*/**', 'registry.example.com/[[:lower:]]*/**']",
    );
    if let Err(e) = PolicySet::from_yaml("team.yaml", &ok) {
        panic!("{e}");
    }
    // Outside brackets the same characters are still refused, and a pattern that is already
    // lower-case is not told to write itself.
    let e = one_error("  match:\n    namespaces: ['team_[^x]*']");
    assert!(e.contains("'_' is none of those"), "{e}");
    assert!(!e.contains("write"), "{e}");
    let e = one_error("  grant:\n    images: ['registry.example.com/[^x]*/.*$']");
    assert!(e.contains("'$' does not occur"), "{e}");
}

#[test]
fn documents_kinds_and_names() {
    let e =
        errors("apiVersion: kspy.dev/v1alpha1\nkind: DebugPolcy\nmetadata: {name: a}\nspec: {}\n");
    assert!(
        e[0].contains("document 1 (policy a): kind: expected kind DebugPolicy"),
        "{e:?}"
    );
    // What is missing is said so, not as an empty value found (`found ""`).
    let e = errors("apiVersion: kspy.dev/v1alpha1\nmetadata: {name: a}\nspec: {}\n");
    assert!(
        e[0].ends_with(
            "document 1 (policy a): kind: expected kind DebugPolicy (or DebugPolicyTest), found \
             none: the document has no kind"
        ),
        "{e:?}"
    );
    let e = errors("kind: DebugPolicy\napiVersion: [kspy.dev/v1alpha1]\nmetadata: {name: a}\n");
    assert!(
        e[0].ends_with("apiVersion: expected kspy.dev/v1alpha1, found a list"),
        "{e:?}"
    );
    // A document that is no mapping has no kind to name: it is said what it is.
    for (yaml, what) in [
        ("- kind: DebugPolicy\n", "a list"),
        ("DebugPolicy\n", "a string"),
    ] {
        let e = errors(yaml);
        assert_eq!(
            e,
            [format!(
                "team.yaml:1:1: document 1: the document is {what}, not a mapping: a DebugPolicy is \
                 a mapping with apiVersion, kind, metadata and spec"
            )]
        );
    }
    let e = errors("apiVersion: kspy.dev/v1\nkind: DebugPolicy\nmetadata: {name: a}\nspec: {}\n");
    assert!(
        e[0].contains("apiVersion: expected kspy.dev/v1alpha1"),
        "{e:?}"
    );
    let e = errors(&format!(
        "{}{}",
        common::policy("a", "  mode: Warn"),
        common::policy("a", "  mode: Audit")
    ));
    assert_eq!(
        e,
        [
            "team.yaml:11:3: document 2 (policy a): metadata.name: a policy of this name is \
          already defined in team.yaml:4:3 document 1"
        ],
    );
    let e = errors(&common::policy("Bad_Name", "  mode: Warn"));
    assert!(e[0].contains("metadata.name"), "{e:?}");
    // A name that would break the report's line is quoted.
    let e = errors(&common::policy("\"a\\nteam.yaml: forged\"", "  mode: Warn"));
    assert!(
        e[0].contains(r#"(policy "a\nteam.yaml: forged")"#) && !e[0].contains('\n'),
        "{e:?}"
    );
    let e = errors("spec: [unclosed\n");
    assert!(e[0].starts_with("team.yaml: not valid YAML"), "{e:?}");
}

#[test]
fn every_error_of_a_file_is_reported_at_once() {
    let yaml = format!(
        "{}{}",
        common::policy("a", "  grant:\n    capabilities: [NOPE]\n    images: ['']"),
        common::policy(
            "b",
            "  conditions:\n    - {name: c, expression: 'nope == 1'}"
        )
    );
    let e = errors(&yaml);
    assert_eq!(e.len(), 3, "{e:#?}");
}

#[test]
fn empty_documents_and_test_suites_are_skipped() {
    let yaml = format!(
        "---\n{}apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicyTest\nmetadata: {{name: t}}\nspec: {{}}\n---\n",
        common::policy("a", "  mode: Warn")
    );
    let set = PolicySet::from_yaml("x.yaml", &yaml).unwrap();
    assert_eq!(set.names(), ["a"]);
    // A kustomization beside the policies (as in deploy/base/policies) is skipped too, but
    // only kustomize's own kind.
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nconfigMapGenerator: []\n";
    let set = PolicySet::from_yaml("kustomization.yaml", kustomization).unwrap();
    assert!(set.names().is_empty());
    let e = errors("apiVersion: example.com/v1\nkind: Kustomization\n");
    assert!(e[0].contains("kind: expected kind DebugPolicy"), "{e:?}");
}

/// Kubernetes mounts a ConfigMap as `..2026_11_26_…/file`, a `..data` link to it, and
/// `file -> ..data/file` links. Each policy must be read once, through the links.
#[test]
fn a_configmap_volume_layout_loads_each_policy_once() {
    let dir = tempfile::tempdir().unwrap();
    let stamp = dir.path().join("..2026_11_26_10_00_00.123");
    std::fs::create_dir(&stamp).unwrap();
    std::fs::write(stamp.join("a.yaml"), common::policy("a", "  mode: Warn")).unwrap();
    std::fs::write(stamp.join("b.yml"), common::policy("b", "  mode: Audit")).unwrap();
    std::fs::write(stamp.join("notes.txt"), "not a policy").unwrap();
    std::os::unix::fs::symlink("..2026_11_26_10_00_00.123", dir.path().join("..data")).unwrap();
    for f in ["a.yaml", "b.yml", "notes.txt"] {
        std::os::unix::fs::symlink(format!("..data/{f}"), dir.path().join(f)).unwrap();
    }
    let set = PolicySet::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.names(), ["a", "b"]);
    assert_eq!(set.files().len(), 2);
}

/// The per-file limits say what they are and what to do.
#[test]
fn a_file_over_the_document_limit_says_so() {
    let one =
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicyTest\nmetadata: {name: t}\nspec: {}\n";
    let file = |n: usize| vec![one; n].join("---\n");
    assert!(PolicySet::from_yaml("many.yaml", &file(1024)).is_ok());
    let e = errors_in("many.yaml", &file(1025));
    assert_eq!(
        e,
        [
            "many.yaml: the file holds more than 1024 YAML documents, the most one policy file may \
          hold: split it into several files in the policy directory"
        ]
    );
}

#[test]
fn unreadable_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let e = PolicySet::load_dir(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read the directory"), "{e}");
    std::fs::write(dir.path().join("bin.yaml"), [0xff, 0xfe, 0x00]).unwrap();
    let e = PolicySet::load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("bin.yaml: not UTF-8") || e.contains("bin.yaml: the file is not UTF-8"),
        "{e}"
    );
}

/// An empty document (`---` twice, a document of comments only, `~`) still counts: the YAML
/// reader drops it, and every document after one was numbered one too low, in the policies'
/// errors and in the suites'.
#[test]
fn documents_are_numbered_as_the_file_has_them() {
    let suite = "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicyTest\nmetadata: {name: t}\n";
    // With where `kind` is written: the line counts every document, empty ones too.
    for (yaml, number, at) in [
        ("kind: X\n".to_owned(), 1, "1:1"),
        ("---\n---\nkind: X\n".to_owned(), 2, "3:1"),
        (
            "# a header\n---\n# nothing here yet\n---\nkind: X\n".to_owned(),
            2,
            "5:1",
        ),
        (
            format!("{suite}spec: {{}}\n---\n~\n---\n--- {{kind: X}}\n"),
            4,
            "8:6",
        ),
        (format!("{suite}spec: {{}}\n...\nkind: X\n"), 2, "6:1"),
    ] {
        let e = errors(&yaml);
        assert_eq!(e.len(), 1, "{yaml:?}: {e:?}");
        assert!(
            e[0].starts_with(&format!(
                "team.yaml:{at}: document {number}: kind: expected kind"
            )),
            "{yaml:?}: {e:?}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("suite.yaml");
    std::fs::write(&file, format!("---\n---\n{suite}spec: {{nope: 1}}\n")).unwrap();
    let e = kspy_admission::testing::check_suites(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with(&format!(
            "1 error in DebugPolicyTest suites:\n  {}:6:8: document 2 (suite t): spec.nope",
            file.display()
        )),
        "{e}"
    );
}

/// Aliases of aliases ("billion laughs") are refused at the loader's own limit, said in words
/// (the reader's text was a debug dump of its budget, as the breach came wrapped in the
/// alias's error), as is a large value repeated by aliases. Anchors shared as usual load.
#[test]
fn an_alias_bomb_is_refused_in_words() {
    let mut laughs = String::from(
        "kind: DebugPolicy\nl0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..9 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        laughs.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
    }
    assert!(laughs.len() < 1000);
    let e = errors_in("laughs.yaml", &laughs);
    assert_eq!(
        e,
        [
            "laughs.yaml: the file's aliases repeat more than 10000 YAML nodes, the most one \
          policy file may: an alias repeats what its anchor names, and aliases of aliases \
          multiply it; write the repeated parts out, or split the file"
        ]
    );

    let big = format!(
        "kind: DebugPolicy\na: &a \"{}\"\nb: [{}]\n",
        "x".repeat(1 << 20),
        ["*a"; 9].join(", ")
    );
    let e = errors_in("big.yaml", &big);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "big.yaml: the file's text, with what its aliases repeat, exceeds 8388608 bytes"
        ),
        "{e:?}"
    );

    let shared = "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata:\n  name: a\n  \
                  labels: &team {team: checkout, tier: web}\n  annotations: *team\nspec:\n  \
                  match: {groups: [sre]}\n  grant: {images: [busybox:1.36*]}\n";
    let set = PolicySet::from_yaml("shared.yaml", shared).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.names(), ["a"]);
}

/// A policy file truncated to nothing by a non-atomic write must not take its policies away
/// in silence: what they denied would be allowed.
#[test]
fn an_empty_or_comment_only_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        common::policy("a", "  mode: Warn"),
    )
    .unwrap();
    let guard = dir.path().join("guard.yaml");
    for text in ["", "# the guardrails\n", "---\n---\n"] {
        std::fs::write(&guard, text).unwrap();
        let e = PolicySet::load_dir(dir.path()).unwrap_err();
        assert_eq!(
            e.errors()[0].to_string(),
            format!(
                "{}: the file holds no YAML document (it is empty, or only comments); \
                 remove it, or restore its policies",
                guard.display()
            ),
            "{text:?}"
        );
    }
    // A text given in memory may be empty: it is no file that lost its policies.
    assert!(PolicySet::from_yaml("inline", "").is_ok());
}

/// What is not a regular file is refused before it is read: a FIFO would block the reader for
/// ever, a link to a device would never end.
#[test]
fn special_files_and_directory_loops_are_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.yaml"),
        common::policy("a", "  mode: Warn"),
    )
    .unwrap();
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
    let e = PolicySet::load_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("zero.yaml is not a regular file"), "{e}");
    std::fs::remove_file(dir.path().join("zero.yaml")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("socket.yaml")).unwrap();
    let e = PolicySet::load_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("socket.yaml is not a regular file"), "{e}");
    std::fs::remove_file(dir.path().join("socket.yaml")).unwrap();
    assert!(PolicySet::load_dir(dir.path()).is_ok());
    // A link back to the directory is a loop, named as one at once (not 40 levels down).
    std::os::unix::fs::symlink(".", dir.path().join("again")).unwrap();
    let e = PolicySet::load_dir(dir.path()).unwrap_err().to_string();
    assert!(e.contains("again leads back to"), "{e}");
    assert!(e.contains("(a symlink loop); remove the link"), "{e}");
    // The reader itself counts what it reads rather than trusting the size the file claims.
    let e = kspy_admission::policy::load::read_file(std::path::Path::new("/dev/zero")).unwrap_err();
    assert!(e.contains("not a regular file"), "{e}");
}

/// A file swapped for a FIFO between the listing (which refuses one) and the read: the
/// reader's open blocked until a writer came, for ever without one, and with it the
/// webhook's reload poll, which reads the files to hash them. It now refuses the FIFO at once.
#[test]
fn the_reader_does_not_wait_on_a_fifo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("swapped.yaml");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates the file.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0, "mkfifo");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(kspy_admission::policy::load::read_file(&fifo));
    });
    // A watchdog for a hang, not a speed bound: the read returns at once or never.
    let read = rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("the read of a FIFO returned");
    let e = read.unwrap_err();
    assert!(e.contains("not a regular file"), "{e}");
}

/// A file name is whatever the directory holds: it cannot forge a line of the report.
#[test]
fn a_file_name_with_control_characters_is_quoted_in_errors() {
    let e = errors_in("a\n  b.yaml: forged\u{1b}[2K.yaml", "kind: Nope\n");
    assert!(
        e[0].starts_with("\"a\\n  b.yaml: forged\\u{1b}[2K.yaml\":1:1: "),
        "{e:?}"
    );
}

/// An Audit policy records its findings as the audit annotation `audit-NAME`; the API server
/// drops a key whose name is over 63 characters, so a longer name would record nothing.
#[test]
fn an_audit_policy_name_must_fit_its_annotation_key() {
    let body = "  mode: Audit\n  validations:\n    - expression: 'true'";
    let fits = "a".repeat(57);
    assert!(PolicySet::from_yaml("t.yaml", &common::policy(&fits, body)).is_ok());
    let long = "a".repeat(58);
    let e = errors(&common::policy(&long, body));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("metadata.name: an Audit policy's name is at most 57 characters (58 here)"),
        "{e:?}"
    );
    // Enforce and Warn policies record no key of their name: any valid name goes.
    let enforce = "  grant: {images: ['busybox:*']}";
    assert!(PolicySet::from_yaml("t.yaml", &common::policy(&long, enforce)).is_ok());
}

/// `namespaceSelector:` with its lines commented out is null; it used to match every
/// namespace, while a null `groups:` was refused. Only an omitted key means "any".
#[test]
fn a_null_namespace_selector_is_refused_like_any_null_field() {
    let e = one_error(
        "  match:\n    actions: [attach]\n    namespaceSelector:\n    #  matchLabels: {team: payments}\n  grant: {images: ['busybox:*']}",
    );
    assert!(
        e.contains("spec.match.namespaceSelector") && e.contains("invalid type: null"),
        "{e}"
    );
}

/// A variable is read as `variables.NAME`: a name that is no CEL identifier could never be.
#[test]
fn a_variable_name_must_be_a_cel_identifier() {
    for bad in ["a.b", "", "1st", "team-name"] {
        let e = one_error(&format!(
            "  variables:\n    - {{name: {bad:?}, expression: \"'x'\"}}\n  grant: {{images: ['busybox:*']}}"
        ));
        assert!(
            e.contains("spec.variables[0].name") && e.contains("is not a CEL identifier"),
            "{bad:?}: {e}"
        );
    }
    let ok = common::policy(
        "p",
        "  variables:\n    - {name: _team_2, expression: \"'x'\"}\n  grant: {images: ['busybox:*']}",
    );
    assert!(PolicySet::from_yaml("t.yaml", &ok).is_ok());
}

/// `request` and `asks` have the fields kspy gives them: a misspelt one is refused at load,
/// with the field it was probably meant to be, instead of denying every request.
#[test]
fn a_misspelt_field_of_request_or_asks_is_refused_at_load() {
    for (expr, says) in [
        (
            "request.userinfo.username == 'x'",
            "request has no field \"userinfo\" (did you mean \"userInfo\"?)",
        ),
        (
            "!asks.privilged",
            "asks has no field \"privilged\" (did you mean \"privileged\"?)",
        ),
        ("has(request.namespce)", "request has no field \"namespce\""),
    ] {
        let e = one_error(&format!(
            "  grant: {{images: ['busybox:*']}}\n  validations:\n    - expression: {expr:?}"
        ));
        assert!(e.contains(says), "{expr}: {e}");
    }
    // Every field the README lists, and the pod-level ones, load.
    let ok = common::policy(
        "p",
        "  grant: {images: ['busybox:*']}\n  validations:\n    - expression: \"request.userInfo.username != '' && request.dryRun == false && !asks.privileged && asks.pod.hostPID == false && size(asks.hostNamespaces) == 0\"",
    );
    PolicySet::from_yaml("t.yaml", &ok).unwrap_or_else(|e| panic!("{e}"));
}

/// `container`, `target` and `namespaceObject` are built by kspy from Kubernetes' types: a
/// field those types lack is never there, so reading it is refused at load, as for `request`.
/// Under `has()` it would have been false at every request, and the validation never fired.
#[test]
fn a_field_kubernetes_types_lack_is_refused_for_the_values_kspy_builds() {
    for (expr, says) in [
        (
            "!has(container.securityContext.privilged) || !container.securityContext.privilged",
            "container.securityContext has no field \"privilged\" (did you mean \"privileged\"?); \
             kspy builds container from Kubernetes 1.33's types",
        ),
        (
            "target == null || target.volumeMounts.all(m, m.readOnly || m.mountPth != '/')",
            "target.volumeMounts[*] has no field \"mountPth\" (did you mean \"mountPath\"?)",
        ),
        (
            "namespaceObject.metadata.label['team'] == 'a'",
            "namespaceObject.metadata has no field \"label\" (did you mean \"labels\"?)",
        ),
    ] {
        let e = one_error(&format!(
            "  grant: {{images: ['busybox:*']}}\n  validations:\n    - expression: {expr:?}"
        ));
        assert!(
            e.contains("spec.validations[0].expression") && e.contains(says),
            "{expr}: {e}"
        );
    }
}

/// A variable holding part of a Kubernetes object passes its type on: a field read through
/// `variables.NAME` is checked as one read directly is, an error for the values kspy builds and
/// a warning for the Pod as sent, named by the variable the reader wrote.
#[test]
fn a_field_read_through_a_policy_variable_is_checked_as_a_direct_read() {
    let body = |variables: &str, expr: &str| {
        format!(
            "  variables:\n{variables}  grant: {{images: ['busybox:*']}}\n  validations:\n    - expression: {expr:?}"
        )
    };
    let sc = "    - {name: sc, expression: \"container.securityContext\"}\n";
    for (variables, expr, field, says) in [
        (
            sc,
            "!has(variables.sc.privilged)",
            "spec.validations[0].expression",
            "variables.sc has no field \"privilged\" (did you mean \"privileged\"?); kspy \
             builds container from Kubernetes",
        ),
        (
            sc,
            "variables['sc'].runAsUsr != 0",
            "spec.validations[0].expression",
            "variables.sc has no field \"runAsUsr\" (did you mean \"runAsUser\"?)",
        ),
        // Through a chain of variables, each seeing those above it.
        (
            "    - {name: c, expression: \"container\"}\n    - {name: sc, expression: \"variables.c.securityContext\"}\n    - {name: caps, expression: \"variables.sc.capabilites\"}\n",
            "true",
            "spec.variables[2].expression",
            "variables.sc has no field \"capabilites\" (did you mean \"capabilities\"?)",
        ),
        // `request`'s own fields are kspy's: an error, as when read directly.
        (
            "    - {name: r, expression: \"request\"}\n",
            "variables.r.userinfo.username != ''",
            "spec.validations[0].expression",
            "variables.r has no field \"userinfo\" (did you mean \"userInfo\"?)",
        ),
        (
            "    - {name: mounts, expression: \"target.volumeMounts\"}\n",
            "variables.mounts.all(m, m.mountPth != '/')",
            "spec.validations[0].expression",
            "variables.mounts[*] has no field \"mountPth\" (did you mean \"mountPath\"?)",
        ),
    ] {
        let e = one_error(&body(variables, expr));
        assert!(e.contains(field) && e.contains(says), "{expr}: {e}");
    }
    // The Pod as sent: a warning, as for `object.…` read directly.
    let text = common::policy(
        "p",
        &body(
            "    - {name: containers, expression: \"object.spec.containers\"}\n",
            "variables.containers.all(c, c.imag != '')",
        ),
    );
    let set = PolicySet::from_yaml("t.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = set.warnings().iter().map(ToString::to_string).collect();
    assert!(
        warnings.len() == 1
            && warnings[0].contains(
                "spec.validations[0].expression: variables.containers[*] has no field \"imag\""
            ),
        "{warnings:#?}"
    );
    // Fields the types have load, and values of unknown type are not followed.
    let ok = common::policy(
        "p",
        &body(
            "    - {name: sc, expression: \"container.securityContext\"}\n    - {name: tty, expression: \"container.tty || false\"}\n",
            "!has(variables.sc.privileged) && variables['sc'].runAsUser != 0 && [1].all(variables, variables.sc.x == 1)",
        ),
    );
    let set = PolicySet::from_yaml("t.yaml", &ok).unwrap_or_else(|e| panic!("{e}"));
    assert!(set.warnings().is_empty(), "{:#?}", set.warnings());
}

/// `object` and `oldObject` are the Pod as the API server sent it, and a cluster newer than
/// the types kspy is built against may send fields they lack: a field the Pod type lacks loads,
/// with a warning that says where and what it was probably meant to be.
#[test]
fn a_field_the_pod_type_lacks_loads_with_a_warning() {
    let text = common::policy(
        "p",
        "  grant: {images: ['busybox:*']}\n  conditions:\n    - name: c\n      expression: \"object.spec.shareProcessNamespace == true\"\n  validations:\n    - expression: \"object.spec.containers.all(c, !has(c.securityContext.privilged))\"\n    - expression: \"container.image != '' && oldObject.metdata.name != ''\"",
    );
    let set = PolicySet::from_yaml("t.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = set.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0].starts_with(
            "t.yaml:11:7: document 1 (policy p): spec.validations[0].expression: \
             object.spec.containers[*].securityContext has no field \"privilged\" in Kubernetes \
             1.33 (did you mean \"privileged\"?)"
        ) && warnings[0].contains("if your cluster is newer"),
        "{warnings:#?}"
    );
    assert!(
        warnings[1].contains("spec.validations[1].expression: oldObject has no field \"metdata\""),
        "{warnings:#?}"
    );
}

/// What loads and can do nothing: a namespace an exclusion also matches, and a policy with no
/// grant, validation or default. Warnings, not errors: the set is in force, and `kspy policy
/// check --strict` stops a CI job on them.
#[test]
fn entries_and_policies_that_can_do_nothing_load_with_a_warning() {
    let warnings = |body: &str| -> Vec<String> {
        let set = PolicySet::from_yaml("t.yaml", &common::policy("p", body))
            .unwrap_or_else(|e| panic!("{e}"));
        set.warnings().iter().map(ToString::to_string).collect()
    };
    assert_eq!(
        warnings(
            "  match:\n    namespaces: [kube-system, prod, 'team-*']\n    excludeNamespaces: ['kube-*', 'team-*']\n  grant: {images: ['**']}"
        ),
        [
            "t.yaml:7:18: document 1 (policy p): spec.match.namespaces[0]: \"kube-system\" never matches: \
          excludeNamespaces pattern \"kube-*\" excludes it, and an exclusion wins"
        ]
    );
    for mode in ["Enforce", "Warn", "Audit"] {
        assert_eq!(
            warnings(&format!("  mode: {mode}\n  match: {{actions: [attach]}}")),
            [
                "t.yaml:5:1: document 1 (policy p): spec: the policy has no effect: it grants nothing, \
              has no validations and sets no defaults"
            ],
            "{mode}"
        );
    }
    // A guardrail, a grant and a defaults-only policy each do something.
    for body in [
        "  validations:\n    - expression: \"true\"",
        "  grant: {runAsRoot: true}",
        "  defaults: {targetContainer: first}",
    ] {
        assert_eq!(warnings(body), Vec::<String>::new(), "{body}");
    }
}

/// `groups: []` (or `users: []`, `serviceAccounts: []`) matches everyone, as an omitted field
/// does: a list a template or an edit left empty turned a grant for a team into a grant for
/// every user and service account, and loaded without a word. It loads with a warning (which
/// `--strict` fails on), unless another of the three names someone or nothing is granted.
#[test]
fn an_empty_who_list_on_a_granting_policy_loads_with_a_warning() {
    let warnings = |body: &str| -> Vec<String> {
        let set = PolicySet::from_yaml("t.yaml", &common::policy("p", body))
            .unwrap_or_else(|e| panic!("{e}"));
        set.warnings().iter().map(ToString::to_string).collect()
    };
    let says = |field: &str, at: &str| {
        format!(
            "t.yaml:{at}: document 1 (policy p): spec.match.{field}: an empty list matches everyone, \
             as an omitted field does, so this policy's grant applies to every user and service \
             account; name who it is for, or remove the field to say everyone"
        )
    };
    assert_eq!(
        warnings("  match: {actions: [attach], groups: []}\n  grant: {images: ['**']}"),
        [says("groups", "6:30")]
    );
    assert_eq!(
        warnings("  match:\n    users: []\n    serviceAccounts: []\n  grant: {runAsRoot: true}"),
        [says("users", "7:5"), says("serviceAccounts", "8:5")]
    );
    for body in [
        // Someone is named: fields are AND, and the empty list adds nothing.
        "  match: {groups: [], users: [alice]}\n  grant: {images: ['**']}",
        // Everyone, said by leaving the fields out.
        "  match: {actions: [attach]}\n  grant: {images: ['**']}",
        // A guardrail for everyone grants nothing.
        "  match: {groups: []}\n  validations:\n    - expression: \"true\"",
    ] {
        assert_eq!(warnings(body), Vec::<String>::new(), "{body}");
    }
}

/// A read-write hostPaths entry loads with a warning: the kubelet follows symbolic links, so
/// whoever writes below the prefix can link `PREFIX/x` to `/` and have a later hostPath volume
/// at `PREFIX/x`, which the same entry grants, mount the node's root. Read-only entries, and
/// `/` (everything already), do not warn.
#[test]
fn a_read_write_host_path_grant_warns_that_links_leave_it() {
    let warnings = |hosts: &str| -> Vec<String> {
        let body = format!("  grant:\n    hostPaths: {hosts}");
        let set = PolicySet::from_yaml("t.yaml", &common::policy("p", &body))
            .unwrap_or_else(|e| panic!("{e}"));
        set.warnings().iter().map(ToString::to_string).collect()
    };
    let w = warnings("[{path: /, readOnly: true}, /var/log/]");
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(
        w[0].starts_with(
            "t.yaml:7:44: document 1 (policy p): spec.grant.hostPaths[1]: /var/log is granted \
             read-write, and a prefix does not confine a writable mount: a debug container that \
             writes there can make a symbolic link below it (/var/log/x -> /)"
        ),
        "{w:#?}"
    );
    assert!(
        w[0].ends_with(
            "grant it read-only (`- {path: /var/log, readOnly: true}`) unless whoever has it may \
             write anywhere on the node"
        ),
        "{w:#?}"
    );
    for quiet in [
        "[{path: /var/log, readOnly: true}]",
        "[/]",
        "[{path: /, readOnly: false}]",
    ] {
        assert_eq!(warnings(quiet), Vec::<String>::new(), "{quiet}");
    }
}

/// A read-only hostPaths entry holding (or inside) the node directories pods write below warns
/// too: any pod can plant a symbolic link to `/` in its emptyDir volume
/// (`/var/lib/kubelet/pods/UID/volumes/kubernetes.io~empty-dir/NAME/x`) or its writable layer,
/// and a hostPath volume at that path, which the entry grants, mounts the node's `/` read-only.
#[test]
fn a_read_only_host_path_grant_over_pod_storage_warns_that_links_leave_it() {
    let warnings = |hosts: &str| -> Vec<String> {
        let body = format!("  grant:\n    hostPaths: {hosts}");
        let set = PolicySet::from_yaml("t.yaml", &common::policy("p", &body))
            .unwrap_or_else(|e| panic!("{e}"));
        set.warnings().iter().map(ToString::to_string).collect()
    };
    for (hosts, path, dir) in [
        (
            "[{path: /var/lib/kubelet, readOnly: true}]",
            "/var/lib/kubelet",
            "/var/lib/kubelet",
        ),
        ("[{path: /var, readOnly: true}]", "/var", "/var/lib/kubelet"),
        (
            "[{path: '//run/containerd/io.containerd.runtime.v2.task', readOnly: true}]",
            "/run/containerd/io.containerd.runtime.v2.task",
            "/run/containerd",
        ),
    ] {
        let w = warnings(hosts);
        assert_eq!(w.len(), 1, "{hosts}: {w:#?}");
        assert!(
            w[0].starts_with(&format!(
                "t.yaml:7:17: document 1 (policy p): spec.grant.hostPaths[0]: {path} is granted \
                 read-only, but a prefix does not confine a mount below {dir}, where pods write \
                 on the node"
            )),
            "{w:#?}"
        );
    }
    for quiet in [
        "[{path: /var/log, readOnly: true}, {path: /etc, readOnly: true}]",
        "[{path: /var/lib/kubeletx, readOnly: true}]",
        "[{path: /, readOnly: true}]",
    ] {
        assert_eq!(warnings(quiet), Vec::<String>::new(), "{quiet}");
    }
}

/// Match fields are AND: `users` and `serviceAccounts` together need a service account whose
/// user name a users pattern matches. With none that can, the policy never applies.
#[test]
fn users_and_service_accounts_that_can_never_both_hold_are_refused() {
    let e = one_error(
        "  match:\n    users: [alice, 'bob-*']\n    serviceAccounts: [ci/deployer]\n  grant: {images: ['**']}",
    );
    assert!(
        e.contains("spec.match.users: the policy can never apply: match fields are AND")
            && e.contains("write one policy for the users and another for the service accounts"),
        "{e}"
    );
    // A users pattern that can name a service account keeps the pair meaningful.
    for users in [
        "'system:serviceaccount:ci:*'",
        "'system:*'",
        "'*'",
        "'{alice,system:serviceaccount:ci:x}'",
    ] {
        let yaml = common::policy(
            "p",
            &format!(
                "  match:\n    users: [alice, {users}]\n    serviceAccounts: [ci/deployer]\n  grant: {{images: ['**']}}"
            ),
        );
        assert!(PolicySet::from_yaml("t.yaml", &yaml).is_ok(), "{users}");
    }
}

/// Every error and warning of a policy file names the line and column of the field it is
/// about (`FILE:LINE:COLUMN`, as a compiler writes it), of the mapping that lacks a missing
/// field, and of the document for a document that is no policy: an author of a long file no
/// longer counts list items to find `spec.grant.capabilities[1]`.
#[test]
fn errors_and_warnings_name_the_line_and_column_of_their_field() {
    let text = "\
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata:
  name: decoding
spec:
  grant:
    images: ['busybox:*']
    capabilites: [SYS_PTRACE]
    runAsRoot: [yes]
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: compiling}
spec:
  match: {groups: [sre]}
  grant:
    images: ['registry.example.com/[x']
    capabilities: [SYS_PTRACE, NET_ADMN]
    hostPaths: [var/log]
  conditions:
    - name: c
      expression: \"1 +\"
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: twice}
spec:
  grant: {runAsRoot: true}
---
# The same name again.
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata:
  name: twice
spec:
  grant: {runAsRoot: true}
---
- a list
---
apiVersion: kspy.dev/v1alpha1
kind: DebugPolicy
metadata: {name: missing}
spec:
  conditions:
    - name: no-expression
";
    let e = errors_in("team.yaml", text);
    let want = [
        "team.yaml:8:5: document 1 (policy decoding): spec.grant.capabilites: unknown field",
        "team.yaml:9:5: document 1 (policy decoding): spec.grant.runAsRoot: invalid type",
        "team.yaml:17:14: document 2 (policy compiling): spec.grant.images[0]: invalid pattern",
        "team.yaml:18:32: document 2 (policy compiling): spec.grant.capabilities[1]: \"NET_ADMN\"",
        "team.yaml:19:17: document 2 (policy compiling): spec.grant.hostPaths[0]: invalid host",
        // A CEL syntax error: where it is inside the expression, the end of `1 +`.
        "team.yaml:22:23: document 2 (policy compiling): spec.conditions[0].expression: syntax",
        "team.yaml:34:3: document 4 (policy twice): metadata.name: a policy of this name is \
         already defined in team.yaml:26:12 document 3",
        "team.yaml:38:1: document 5: the document is a list, not a mapping",
        // A missing field: where the mapping that lacks it starts.
        "team.yaml:45:7: document 6 (policy missing): spec.conditions[0]: missing field \
         `expression`",
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for w in want {
        assert!(
            e.iter().any(|e| e.starts_with(w)),
            "no error starts with {w:?}\n{e:#?}"
        );
    }

    // Warnings too, each at its own field.
    let text = common::policy(
        "p",
        "  match:\n    actions: [attach]\n    groups: []\n  grant:\n    hostPaths:\n      - {path: /etc, readOnly: true}\n      - /var/log",
    );
    let set = PolicySet::from_yaml("t.yaml", &text).unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = set.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(
        warnings[0].starts_with("t.yaml:12:9: document 1 (policy p): spec.grant.hostPaths[1]: "),
        "{warnings:#?}"
    );
    assert!(
        warnings[1].starts_with("t.yaml:8:5: document 1 (policy p): spec.match.groups: "),
        "{warnings:#?}"
    );
    // The same place for the program that reads the fields.
    assert_eq!(set.warnings()[0].at, Some((12, 9)));
    // A clean set has none to place.
    let clean = PolicySet::from_yaml("t.yaml", &common::policy("p", "  grant: {runAsRoot: true}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(clean.warnings().is_empty());
}

/// The API server sets `imagePullPolicy` on every container while decoding the request, before
/// admission webhooks run, so `defaults.imagePullPolicy` never applies in a cluster: it loaded
/// in silence, and its author believed debug containers pulled as it said. It loads (files
/// written for it keep loading, and a hand-made review without one still gets it) with a
/// warning at its line that says so and where to set the pull policy instead.
#[test]
fn an_image_pull_policy_default_loads_with_a_warning_that_it_never_applies() {
    let set = PolicySet::from_yaml(
        "t.yaml",
        &common::policy(
            "p",
            "  grant: {runAsRoot: true}\n  defaults:\n    targetContainer: first\n    imagePullPolicy: Always",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let warnings: Vec<String> = set.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].starts_with(
            "t.yaml:9:5: document 1 (policy p): spec.defaults.imagePullPolicy: Always never \
             applies in a cluster: the API server sets imagePullPolicy on every container while \
             decoding the request"
        ) && warnings[0].contains("(`kspy attach --image-pull-policy Always`"),
        "{warnings:#?}"
    );
    assert_eq!(
        set.get("p").map(|p| p.defaults.image_pull_policy),
        Some(Some(kspy_admission::policy::spec::ImagePullPolicy::Always))
    );
    // Without it, no warning.
    let set = PolicySet::from_yaml(
        "t.yaml",
        &common::policy(
            "p",
            "  grant: {runAsRoot: true}\n  defaults:\n    targetContainer: first",
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(set.warnings().is_empty(), "{:#?}", set.warnings());
}

/// A CEL syntax error was placed at its `expression` field, with "syntax error at line L,
/// column C" counted inside the expression: in a block of ten lines the author counted lines
/// to find it. It is now placed where it is in the file whenever the file writes the
/// expression so that this can be told exactly (a plain or quoted scalar on one line without
/// escapes, a `|` or `>` block), and at the field otherwise; the message still counts inside
/// the expression. The cases are in fixtures/cel-error-positions.yaml, each with its place.
#[test]
fn a_cel_syntax_error_is_placed_where_it_is_in_the_file() {
    let text = include_str!("fixtures/cel-error-positions.yaml");
    let e = PolicySet::from_yaml("p.yaml", text).expect_err("should not load");
    let placed: Vec<_> = e
        .errors()
        .iter()
        .map(|e| (e.policy.as_deref(), e.at, e.message.as_str()))
        .collect();
    let want = [
        // Placed inside the expression.
        ("plain", (10, 42), "syntax error at line 1, column 24: "),
        ("literal", (21, 39), "syntax error at line 3, column 31: "),
        ("quoted", (30, 50), "syntax error at line 1, column 31: "),
        ("folded", (40, 31), "syntax error at line 1, column 48: "),
        // At the field: the text between the quotes is not the expression, or the lines of a
        // plain scalar are folded into one.
        ("escaped", (49, 7), "syntax error at line 1, column 24: "),
        (
            "folded-plain",
            (57, 7),
            "syntax error at line 1, column 49: ",
        ),
    ];
    assert_eq!(placed.len(), want.len(), "{placed:#?}");
    for (policy, at, message) in want {
        assert!(
            placed
                .iter()
                .any(|p| p.0 == Some(policy) && p.1 == Some(at) && p.2.starts_with(message)),
            "{policy}: want {at:?} and {message:?}\n{placed:#?}"
        );
    }
    // The report reads FILE:LINE:COLUMN of the error.
    assert!(
        e.to_string().contains(
            "\n  p.yaml:21:39: document 2 (policy literal): spec.validations[0].expression: \
             syntax error at line 3, column 31: Syntax error: extraneous input ')'"
        ),
        "{e}"
    );
}

/// A macro's syntax error (`all(1, …)`: "argument must be a simple name") counted its column
/// in bytes, so after non-ASCII text it named a column past the mistake (27 for the 23rd
/// character, after `'本番'`) and was placed at its field only. CEL positions count
/// characters, as the parser's other errors did: now the macro's do too, in the message and
/// in the file.
#[test]
fn a_macro_error_column_counts_characters() {
    let yaml = common::policy(
        "p",
        "  validations:\n    - expression: \"'本番' != '' && [1].all(1, true)\"",
    );
    let e = PolicySet::from_yaml("p.yaml", &yaml).expect_err("should not load");
    let [error] = e.errors() else {
        panic!("one error wanted: {e}");
    };
    assert!(
        error
            .message
            .starts_with("syntax error at line 1, column 23: argument must be a simple name"),
        "{error}"
    );
    // Line 7 of the file; the expression starts at column 20, so its 23rd character is at 42.
    assert_eq!(error.at, Some((7, 42)), "{error}");
}

/// A constant pattern given to `matches`, `find` or `findAll` that is no regular expression was
/// only found when evaluated, so the policy loaded and denied every request it judged. The API
/// server refuses such an expression when it compiles it; kspy now refuses it at load, naming
/// the field, the pattern and why. What Go refuses and the `regex` crate would take (a count
/// over 1000, the flag `x`) is refused too; patterns computed from the request still load.
#[test]
fn a_constant_invalid_regex_is_refused_at_load() {
    for (expression, wants) in [
        (
            "container.name.matches('[')",
            &[
                "spec.validations[0].expression",
                "invalid regular expression \"[\" given to matches",
                "missing closing ]",
                "fix the pattern",
            ][..],
        ),
        (
            "matches(container.name, '(unclosed')",
            &[
                "invalid regular expression \"(unclosed\" given to matches",
                "unclosed group",
            ],
        ),
        (
            "container.name.find('a)') == ''",
            &["given to find", "unopened group"],
        ),
        (
            "container.args.exists(a, a.findAll('x{1001}', 2).size() > 0)",
            &["given to findAll", "invalid repeat count {1001}"],
        ),
        (
            "container.name.matches('(?x) a')",
            &["given to matches", "unknown flag x"],
        ),
    ] {
        let body = format!(
            "  validations:\n    - expression: {}",
            serde_json::to_string(expression).unwrap()
        );
        let e = one_error(&body);
        for want in wants {
            assert!(
                e.contains(want),
                "for {expression:?}\n  error {e:?}\n  lacks {want:?}"
            );
        }
        // The reason is on the error's line, not the `regex` crate's pattern-and-caret lines.
        assert!(!e.contains("regex parse error"), "{e:?}");
    }
    let ok = common::policy(
        "p",
        "  validations:\n    - expression: \"container.name.matches('^[a-z]+$') && container.name.find('[0-9]+') == '' && container.image.matches(container.name) && container.name.findAll('a', 1).size() < 2\"",
    );
    if let Err(e) = PolicySet::from_yaml("team.yaml", &ok) {
        panic!("{e}");
    }
}
