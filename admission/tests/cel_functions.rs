//! Issue point 4: the CEL environment. Each row of the README's function table is backed by a
//! row here: the expression is evaluated as a policy validation against a real request.

mod common;

use common::*;
use serde_json::json;

/// Evaluates `expr` as a validation for an SRE attaching busybox with SYS_PTRACE.
fn holds(expr: &str) -> Result<bool, String> {
    let yaml = format!(
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {{name: p}}\nspec:\n  grant:\n    images: ['**']\n    capabilities: [SYS_PTRACE]\n    runAsRoot: true\n  validations:\n    - expression: {}\n      message: rule failed\n",
        serde_json::to_string(expr).unwrap()
    );
    let set = kspy_admission::PolicySet::from_yaml("t.yaml", &yaml).map_err(|e| e.to_string())?;
    let engine = kspy_admission::Engine::new(set, Default::default()).unwrap();
    let mut dbg = debugger("dbg", "busybox:1.36");
    dbg["securityContext"] = json!({"capabilities": {"add": ["SYS_PTRACE"]}, "runAsUser": 0});
    dbg["env"] = json!([{"name": "KSPY_REASON", "value": " INC-1 slow "}]);
    outcome(&validate(
        &engine,
        &attach("prod", "alice", &["sre", "oncall"], vec![], vec![dbg]),
    ))
}

/// What a judgement of the one validation (`message: rule failed`) says of its expression:
/// true when allowed, false when the rule failed, the denial's message when the expression
/// failed to evaluate (or anything else denied).
fn outcome(j: &kspy_admission::Judgement) -> Result<bool, String> {
    let msg = &j.response.result.message;
    if j.response.allowed {
        Ok(true)
    } else if msg.contains("rule failed") {
        Ok(false)
    } else {
        Err(msg.clone())
    }
}

#[test]
fn kubernetes_cel_function_table() {
    let rows: &[(&str, &str)] = &[
        // variables
        (
            "variables",
            "container.name == 'dbg' && target == null && request.userInfo.username == 'alice'",
        ),
        (
            "variables",
            "asks.image == 'docker.io/library/busybox:1.36' && asks.capabilities == ['SYS_PTRACE']",
        ),
        (
            "variables",
            "object.metadata.name == 'web-1' && oldObject.spec.containers.size() == 2",
        ),
        (
            "variables",
            "request.operation == 'UPDATE' && request.subResource == 'ephemeralcontainers'",
        ),
        // integers bound from JSON are int, so arithmetic works
        ("int", "container.securityContext.runAsUser + 1 == 1"),
        // standard macros
        (
            "macros",
            "has(container.env) && container.env.exists(e, e.name == 'KSPY_REASON')",
        ),
        ("macros", "request.userInfo.groups.all(g, g.size() > 0)"),
        (
            "macros",
            "request.userInfo.groups.exists_one(g, g == 'sre')",
        ),
        (
            "macros",
            "request.userInfo.groups.filter(g, g.startsWith('o')) == ['oncall']",
        ),
        (
            "macros",
            "request.userInfo.groups.map(g, g.size()) == [3, 6]",
        ),
        // strings
        ("lowerAscii", "'SRE'.lowerAscii() == 'sre'"),
        ("upperAscii", "'sre'.upperAscii() == 'SRE'"),
        (
            "split",
            "asks.image.split('/') == ['docker.io', 'library', 'busybox:1.36']",
        ),
        ("join", "['a', 'b'].join('-') == 'a-b'"),
        ("replace", "'a-b'.replace('-', '_') == 'a_b'"),
        ("trim", "container.env[0].value.trim() == 'INC-1 slow'"),
        ("indexOf", "'busybox'.indexOf('box') == 4"),
        ("lastIndexOf", "'a.b.c'.lastIndexOf('.') == 3"),
        ("substring", "'busybox'.substring(0, 4) == 'busy'"),
        ("charAt", "'busybox'.charAt(0) == 'b'"),
        (
            "startsWith/endsWith/contains",
            "asks.image.startsWith('docker.io/') && asks.image.endsWith(':1.36') && asks.image.contains('busybox')",
        ),
        (
            "matches",
            "asks.image.matches('^docker\\\\.io/library/[a-z]+:[0-9.]+$')",
        ),
        ("format", "'%s/%s'.format(['a', 'b']) == 'a/b'"),
        // lists
        ("sum", "[1, 2, 3].sum() == 6"),
        ("min/max", "[3, 1, 2].min() == 1 && [3, 1, 2].max() == 3"),
        ("isSorted", "[1, 2, 3].isSorted() && !['b', 'a'].isSorted()"),
        (
            "indexOf (list)",
            "request.userInfo.groups.indexOf('oncall') == 1",
        ),
        // sets, regex, math, encoders
        (
            "sets",
            "sets.contains(request.userInfo.groups, ['sre']) && sets.intersects(['a'], ['a', 'b'])",
        ),
        (
            "matches, Unicode classes, twice (the second from kspy's cache)",
            "'本番障害'.matches('[\\\\p{L}\\\\p{N}]') && '本番障害'.matches('[\\\\p{L}\\\\p{N}]') \
             && !'\u{200b}\u{200b}'.matches('[\\\\p{L}\\\\p{N}]')",
        ),
        (
            "find",
            "'v1.36.0'.find('[0-9]+') == '1' && 'abc'.find('[0-9]+') == ''",
        ),
        (
            "findAll",
            "'a1b22'.findAll('[0-9]+') == ['1', '22'] && 'a1b22c3'.findAll('[0-9]+', 2) == ['1', '22'] \
             && 'a1b22'.findAll('[0-9]+', -1) == ['1', '22'] && 'a1b22'.findAll('[0-9]+', 0) == []",
        ),
        (
            "math",
            "math.greatest(1, 5, 3) == 5 && math.least(4, 2) == 2",
        ),
        ("base64", "base64.encode(b'hi') == 'aGk='"),
        (
            "conversions",
            "bool('true') && string(true) == 'true' && int(timestamp('1970-01-01T00:00:01Z')) == 1 && timestamp(1) == timestamp('1970-01-01T00:00:01Z') && double('1.5') == 1.5 && string(b'a') == 'a' && bytes('a') == b'a'",
        ),
        // Kubernetes libraries
        (
            "quantity",
            "quantity('1Gi').isGreaterThan(quantity('512Mi'))",
        ),
        (
            "ip/cidr",
            "cidr('10.0.0.0/8').containsIP(ip('10.1.2.3')) && isIP('::1')",
        ),
        (
            "url",
            "url('https://registry.example.com:5000/v2').getHost() == 'registry.example.com:5000'",
        ),
        ("semver", "semver('1.36.0').isGreaterThan(semver('1.2.3'))"),
    ];
    let mut failed = Vec::new();
    for (name, expr) in rows {
        match holds(expr) {
            Ok(true) => {}
            other => failed.push(format!("{name}: {expr}\n    -> {other:?}")),
        }
    }
    assert!(
        failed.is_empty(),
        "{} rows failed:\n{}",
        failed.len(),
        failed.join("\n")
    );
}

#[test]
fn false_is_false() {
    assert_eq!(holds("container.name == 'other'"), Ok(false));
    assert_eq!(holds("'a'.upperAscii() == 'a'"), Ok(false));
}

#[test]
fn evaluation_errors_deny_with_the_error() {
    // A missing key is an evaluation error: the request is denied, the error is shown.
    let err = holds("container.securityContext.privileged == false").unwrap_err();
    assert!(
        err.contains(
            "validation 1 (container.securityContext.privileged == false) failed to evaluate"
        ),
        "{err}"
    );
    assert!(err.contains("privileged"), "{err}");
    // A non-bool result is an error too.
    let err = holds("container.name").unwrap_err();
    assert!(err.contains("expected a bool, got string"), "{err}");
    // Named as CEL names the type (`type(null)` is `null_type`), as the library's errors do.
    let err = holds("[null][0]").unwrap_err();
    assert!(err.contains("expected a bool, got null_type"), "{err}");
}

/// Each variable doubling the one before passes the static cost estimate; evaluating 25 of them
/// would build a gigabyte string. A policy's variables are capped in size together, and going
/// over is an evaluation error: the request is denied (fail closed) with the variable named.
#[test]
fn a_variable_that_grows_past_the_cap_denies() {
    let mut yaml = String::from(
        "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: doubling}\nspec:\n  grant:\n    images: ['**']\n    capabilities: [SYS_PTRACE]\n    runAsRoot: true\n  variables:\n    - {name: v0, expression: request.uid}\n",
    );
    for n in 1..=24 {
        yaml.push_str(&format!(
            "    - {{name: v{n}, expression: 'variables.v{m} + variables.v{m}'}}\n",
            m = n - 1
        ));
    }
    yaml.push_str("  validations:\n    - expression: size(variables.v24) > 0\n");
    let set =
        kspy_admission::PolicySet::from_yaml("t.yaml", &yaml).unwrap_or_else(|e| panic!("{e}"));
    let engine = kspy_admission::Engine::new(set, Default::default()).unwrap();
    let mut dbg = debugger("dbg", "busybox:1.36");
    dbg["securityContext"] = json!({"capabilities": {"add": ["SYS_PTRACE"]}, "runAsUser": 0});
    let j = validate(
        &engine,
        &attach("prod", "alice", &["sre"], vec![], vec![dbg]),
    );
    assert!(!j.response.allowed);
    let msg = &j.response.result.message;
    assert!(msg.contains("failed to evaluate"), "{msg}");
    assert!(
        msg.contains("would hold more than 2 MiB, their limit"),
        "{msg}"
    );
    // Stopped at the first variable over the cap, long before v24.
    assert!(msg.contains("policy doubling: variable \"v"), "{msg}");
    assert!(!msg.contains("\"v24\""), "{msg}");
}

/// `sum()` overflows as `+` does: an evaluation error, which denies. kube-cel's own added
/// unchecked, so a guardrail bounding a sum of request values held for a sum past the bound
/// (it wrapped to a negative number in a release build) or took the judgement down (debug).
#[test]
fn a_sum_that_overflows_denies() {
    let yaml = "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: p}\nspec:\n  \
                grant:\n    images: ['**']\n    runAsRoot: true\n  validations:\n    - \
                expression: '[container.securityContext.runAsUser, 1].sum() <= 1000'\n      \
                message: rule failed\n";
    let set =
        kspy_admission::PolicySet::from_yaml("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let engine = kspy_admission::Engine::new(set, Default::default()).unwrap();
    let judge = |user: i64| {
        let mut dbg = debugger("dbg", "busybox:1.36");
        dbg["securityContext"] = json!({"runAsUser": user});
        validate(
            &engine,
            &attach("prod", "alice", &["sre"], vec![], vec![dbg]),
        )
    };
    assert!(judge(10).response.allowed);
    assert!(!judge(5000).response.allowed);
    let j = judge(i64::MAX);
    assert!(!j.response.allowed);
    let msg = &j.response.result.message;
    assert!(
        msg.contains("failed to evaluate") && msg.contains("integer overflow"),
        "{msg}"
    );
    // Sums within range are what they were.
    assert_eq!(
        holds("[1, 2, 3].sum() == 6 && [1u, 2u].sum() == 3u"),
        Ok(true)
    );
    assert_eq!(holds("[1.5, 2.5].sum() == 4.0 && [].sum() == 0"), Ok(true));
    assert!(holds("[1, 'a'].sum() == 0").is_err());
}

/// `lists.range(n)` builds at most as many items as a policy's variables may hold; past that
/// it is an evaluation error, which denies. kube-cel's built the list for any `n`: a policy
/// reading `lists.range(9223372036854775807)` loaded, and judging a request with it
/// allocated until the process was killed.
#[test]
fn a_range_past_the_cap_denies() {
    assert_eq!(
        holds("lists.range(3) == [0, 1, 2] && lists.range(0) == []"),
        Ok(true)
    );
    assert_eq!(holds("lists.range(262144).size() == 262144"), Ok(true));
    for n in ["262145", "9223372036854775807"] {
        let err = holds(&format!("lists.range({n}).size() > 0")).unwrap_err();
        assert!(
            err.contains("failed to evaluate")
                && err.contains(&format!(
                    "lists.range({n}) would build a list of more than 262144 items"
                )),
            "{err}"
        );
    }
    // A negative `n` gives `[]`, as in cel-go (kube-cel 0.8 failed, which denied).
    assert_eq!(
        holds("lists.range(-1) == [] && lists.range(-9223372036854775808) == []"),
        Ok(true)
    );
    assert_eq!(
        holds("lists.range(size([]) - 1).all(i, [][i] < [][i + 1])"),
        Ok(true)
    );
}

/// Selecting a field from a value that is no map (null, a string, a list) is an error, as in
/// CEL and the Kubernetes API server, which denies. cel 0.13 answered `false`, and a negation
/// or `!=` made a guardrail that always held: a forgotten `all(c, …)` in
/// `!object.spec.containers.securityContext.privileged` passed every pod, and `target.name !=
/// 'vault-agent'` every debug container without a target.
#[test]
fn selecting_a_field_from_what_is_no_map_denies() {
    for (expr, says) in [
        (
            "!object.spec.containers.securityContext.privileged",
            "got 'list', want 'a map to select field \"securityContext\" from \
             (object.spec.containers is a list)'",
        ),
        (
            "container.image.registry != 'docker.io'",
            "got 'string', want 'a map to select field \"registry\" from (container.image is \
             a string)'",
        ),
        (
            "target.name != 'vault-agent'",
            "got 'null_type', want 'a map to select field \"name\" from (target is null: test \
             it first, `target == null || …`)'",
        ),
        (
            "[target][0].name != 'vault-agent'",
            "got 'null_type', want 'a map to select field \"name\" from'",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains(&format!("Unexpected type: {says}")),
            "{expr}: {err}"
        );
    }
    // Maps select as before, `has()` still asks, and a guard keeps null out.
    for expr in [
        "container.securityContext.capabilities.add[0] == 'SYS_PTRACE'",
        "{'a': {'b': 1}}.a.b == 1",
        "!has(target.name) && !has(container.securityContext.privileged)",
        "target == null || target.name != 'vault-agent'",
        "object.spec.containers.all(c, c.name != '')",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    // A missing key is the error it was.
    let err = holds("container.securityContext.runAsGroup == 0").unwrap_err();
    assert!(err.contains("No such key: runAsGroup"), "{err}");
}

/// Values of types no value of which is equal: cel 0.13 answered `false` for `==` and `true`
/// for `!=`, so `container.securityContext.runAsUser != '0'` (a quoted number) held for root
/// too, a guardrail that always held. The API server's type check refuses such an expression;
/// kspy fails it when evaluated, which denies, and says why.
#[test]
fn comparing_values_of_different_types_denies() {
    for expr in [
        "container.securityContext.runAsUser != '0'",
        "container.securityContext.runAsUser == '0'",
        "container.securityContext.capabilities.add != 'SYS_PTRACE'",
        "request.userInfo.username != 1",
        "true != 'true'",
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate")
                && err.contains("values of different types are never equal"),
            "{expr}: {err}"
        );
    }
    let err = holds("container.securityContext.runAsUser != '0'").unwrap_err();
    assert!(err.contains("comparing a int with a string"), "{err}");
    // One type, null against anything, numbers against numbers: compared as before.
    for (expr, expected) in [
        ("container.securityContext.runAsUser != 0", false),
        ("container.securityContext.runAsUser == 0", true),
        ("container.securityContext.runAsUser == 0.0", true),
        ("target == null", true),
        ("target != null", false),
        ("container.securityContext != null", true),
        ("[1, 2] == [1, 2]", true),
        ("{'a': 1} != {'a': 2}", true),
        (
            "container.securityContext.capabilities.add == ['SYS_PTRACE']",
            true,
        ),
    ] {
        assert_eq!(holds(expr), Ok(expected), "{expr}");
    }
}

/// `in` looks for a value as `==` compares: cel 0.13 answered `false` for a value of a type
/// no item of the list (no key of the map) can equal, so `!(container.securityContext.runAsUser
/// in ['0'])` (a quoted number) held for root too. The API server's type check refuses such an
/// expression; kspy fails it when evaluated, which denies, naming both types.
#[test]
fn in_across_types_denies() {
    for (expr, says) in [
        (
            "!(container.securityContext.runAsUser in ['0'])",
            "looking for a int in a list whose items are strings",
        ),
        (
            "!(0 in container.securityContext.capabilities.add)",
            "looking for a int in a list whose items are strings",
        ),
        (
            "!(container.securityContext.runAsUser in {'0': true})",
            "looking for a int in a map whose keys are strings",
        ),
        (
            "!('0' in [0, null])",
            "looking for a string in a list whose items are ints",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate")
                && err.contains(says)
                && err.contains("values of different types are never equal"),
            "{expr}: {err}"
        );
    }
    // One type, numbers across int, uint and double, null, empty and mixed lists: as `==`.
    for (expr, expected) in [
        ("container.securityContext.runAsUser in [0, 1]", true),
        ("container.securityContext.runAsUser in [1, 2]", false),
        ("container.securityContext.runAsUser in [0.0]", true),
        ("1u in [1]", true),
        (
            "'SYS_PTRACE' in container.securityContext.capabilities.add",
            true,
        ),
        (
            "'SYS_ADMIN' in container.securityContext.capabilities.add",
            false,
        ),
        ("'a' in {'a': 1}", true),
        ("'b' in {'a': 1}", false),
        ("1u in {1: 'x'}", true),
        ("null in ['a']", false),
        ("'a' in [null]", false),
        ("1 in []", false),
        ("1 in [1, 'a'] && !(2 in [1, 'a'])", true),
        ("[1] in [[1]]", true),
    ] {
        assert_eq!(holds(expr), Ok(expected), "{expr}");
    }
}

/// `indexOf` and `lastIndexOf` on a string take their offset as Kubernetes' CEL (cel-go's
/// strings extension) does: an offset outside the string fails, which denies. kube-cel 0.8
/// searched from 0 for a negative one (`'abc'.indexOf('b', -1)` was 1), took one past the end
/// as the end (`'abc'.lastIndexOf('c', 5)` was 2), and read an offset that is no int as 0.
/// On a list they compare as `==` does.
#[test]
fn string_offsets_out_of_range_deny_as_in_kubernetes() {
    for (expr, says) in [
        ("'abc'.indexOf('b', -1) == 1", "index out of range: -1"),
        ("'abc'.indexOf('c', 3) == -1", "index out of range: 3"),
        (
            "'hello mellow'.indexOf('ello', 20) == -1",
            "index out of range: 20",
        ),
        ("'abc'.lastIndexOf('c', 5) == 2", "index out of range: 5"),
        ("'abc'.lastIndexOf('a', -1) == -1", "index out of range: -1"),
        ("''.indexOf('a') == -1", "index out of range: 0"),
        (
            "'abc'.indexOf('b', 1u) == 1",
            "indexOf on a string takes a string to search for and, optionally, an int offset \
             (got string, uint)",
        ),
        (
            "['0'].indexOf(0) == -1",
            "looking for a int in a list whose items are strings",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains(says),
            "{expr}: {err}"
        );
    }
    // Within range, cel-go's answers (its documentation's examples among them), in characters.
    for expr in [
        "'hello mellow'.indexOf('') == 0",
        "'hello mellow'.indexOf('ello') == 1",
        "'hello mellow'.indexOf('jello') == -1",
        "'hello mellow'.indexOf('', 2) == 2",
        "'hello mellow'.indexOf('ello', 2) == 7",
        "'abc'.indexOf('', 5) == 5",
        "'abc'.indexOf('c', 2) == 2",
        "'hello mellow'.lastIndexOf('') == 12",
        "'hello mellow'.lastIndexOf('ello') == 7",
        "'hello mellow'.lastIndexOf('jello') == -1",
        "'hello mellow'.lastIndexOf('ello', 6) == 1",
        "'bananana'.lastIndexOf('nana', 3) == 2",
        "'abc'.lastIndexOf('bc', 2) == 1",
        "'ta©o©αT'.indexOf('©', 3) == 4 && 'ta©o©αT'.lastIndexOf('©', 3) == 2",
        "'ta©o©αT'.indexOf('©αT', 3) == 4 && 'ta©o©αT'.indexOf('©α', 5) == -1",
        "[1, 2, 3, 2].indexOf(2) == 1 && [1, 2, 3, 2].lastIndexOf(2) == 3",
        "[1, 2.0, 3u].indexOf(2) == 1 && [1.0, 2, 1].lastIndexOf(1u) == 2",
        "[1, 2].indexOf(4) == -1 && [].indexOf('a') == -1",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
}

/// `replace` with a count as cel-go has it: a negative count replaces every occurrence (the
/// API server's `'a-b-c'.replace('-', '', -1)` is `'abc'`), where kube-cel 0.8 replaced none,
/// and a count that is no int fails where kube-cel read it as "all".
#[test]
fn replace_with_a_negative_count_replaces_all_as_in_kubernetes() {
    for expr in [
        "'a-b-c'.replace('-', '', -1) == 'abc'",
        "'hello hello'.replace('he', 'we', -1) == 'wello wello'",
        "'hello hello'.replace('he', 'we') == 'wello wello'",
        "'hello hello'.replace('he', 'we', 1) == 'wello hello'",
        "'hello hello'.replace('he', 'we', 0) == 'hello hello'",
        "'abc'.replace('', '-') == '-a-b-c-'",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    let err = holds("'a-b'.replace('-', '', 1u) == 'ab'").unwrap_err();
    assert!(
        err.contains("failed to evaluate")
            && err.contains(
                "replace takes the string to replace, its replacement and, \
                             optionally, an int count (got string, string, uint)"
            ),
        "{err}"
    );
}

/// An evaluation error denies naming its policy, its condition (or validation, or variable)
/// and the error, on one line and briefly: the error may quote request data (here a regular
/// expression taken from an env value), and quoted whole one request made a denial message of
/// megabytes, over as many lines as the data held line breaks.
#[test]
fn an_evaluation_error_is_named_briefly_with_its_policy_and_expression() {
    let yaml = "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: team-regex}\n\
                spec:\n  conditions:\n    - name: pattern-matches\n      expression: \
                container.image.matches(container.env[0].value)\n  grant:\n    images: \
                ['**']\n    runAsRoot: true\n";
    let set =
        kspy_admission::PolicySet::from_yaml("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let engine = kspy_admission::Engine::new(set, Default::default()).unwrap();
    let mut dbg = debugger("dbg", "busybox:1.36");
    let pattern = format!("({}", "ab\n".repeat(100_000));
    dbg["env"] = json!([{"name": "PATTERN", "value": pattern}]);
    let j = validate(
        &engine,
        &attach("prod", "alice", &["sre"], vec![], vec![dbg]),
    );
    assert!(!j.response.allowed);
    let msg = &j.response.result.message;
    assert!(
        msg.contains(
            "- container \"dbg\": policy team-regex: condition \"pattern-matches\" failed to \
             evaluate: "
        ) && msg.contains("Error executing function 'matches': '(ab ab ab")
            && msg.contains("bytes in all) …")
            && msg.contains(
                "error: unclosed group (expression: container.image.matches(container.env[0].value))"
            ),
        "{}",
        &msg[..msg.len().min(2000)]
    );
    assert!(!msg.contains("no DebugPolicy allows"), "{msg}");
    assert!(msg.len() < 1500, "{} bytes: {}", msg.len(), &msg[..2000]);
    assert_eq!(msg.lines().count(), 2, "{msg}");
}

/// Each evaluation may do at most `MAX_EVALUATION_COST` steps of work: comprehension steps,
/// the values each step copies (cel 0.13's `map` and `filter` copy the list built so far at
/// every step) and the items `lists.range` builds. The load-time estimate assumes lists of at
/// most 1,000 items and leaves out what `map` and `lists.range` build, and cel has no limit of
/// its own: a guardrail mapping the debug container's env over a request with a few thousand
/// entries held a judging thread for seconds per request, and `lists.range(n).map(x,
/// lists.range(n))` loaded and allocated until the process was killed. Past the budget the
/// evaluation fails, which denies, naming the budget, whatever `||` would have made of it.
#[test]
fn an_evaluation_past_the_cost_budget_denies() {
    let yaml = "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: p}\nspec:\n  \
                grant:\n    images: ['**']\n    runAsRoot: true\n  validations:\n    - \
                expression: \"!('LD_PRELOAD' in container.env.map(e, e.name))\"\n      \
                message: no LD_PRELOAD\n";
    let set =
        kspy_admission::PolicySet::from_yaml("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let engine = kspy_admission::Engine::new(set, Default::default()).unwrap();
    let judge = |entries: usize| {
        let mut dbg = debugger("dbg", "busybox:1.36");
        dbg["env"] = (0..entries)
            .map(|i| json!({"name": format!("V{i}"), "value": "x"}))
            .collect();
        validate(
            &engine,
            &attach("prod", "alice", &["sre"], vec![], vec![dbg]),
        )
    };
    assert!(judge(100).response.allowed);
    let j = judge(5000);
    assert!(!j.response.allowed);
    let msg = &j.response.result.message;
    assert!(
        msg.contains("failed to evaluate")
            && msg.contains("did more than 10000000 steps of work on this request"),
        "{msg}"
    );
    // An error `||` absorbs still denies: the evaluation was stopped, not answered.
    let err = holds("lists.range(5000).map(x, x).size() > 0 || true").unwrap_err();
    assert!(err.contains("steps of work"), "{err}");
    // Lists built in a loop count, however few steps build them (this allocated 80 GB).
    let err = holds("lists.range(100000).map(x, lists.range(100000)).size() > 0").unwrap_err();
    assert!(err.contains("steps of work"), "{err}");
    // What policies do stays far below it.
    assert_eq!(
        holds("lists.range(1000).map(x, x * 2).filter(x, x > 10).size() == 994"),
        Ok(true)
    );
    assert_eq!(
        holds("lists.range(200000).exists(x, x == 199999) && lists.range(262144).size() > 0"),
        Ok(true)
    );
}

/// What the CEL library would panic on is an evaluation error, which denies: kube-cel 0.8's
/// `format` panics on a precision past 65535, which took `kspy policy test` down (the webhook
/// caught it in its judging pool, but only as "kspy failed while deciding"), then was caught
/// and printed its panic text; such a format string is now refused before `format` is called,
/// saying why. A message expression that fails so gives way to the fixed message.
#[test]
fn a_panic_in_the_cel_library_denies_with_the_error() {
    for (format, asks) in [("%.99999f", "99999"), ("%.65536e", "65536")] {
        let err = holds(&format!("'{format}'.format([1.0]) != ''")).unwrap_err();
        let verb = &format[format.len() - 1..];
        assert!(
            err.contains("failed to evaluate")
                && err.contains(&format!(
                    "the precision of a %.N{verb} clause is at most 65535, and this format \
                     string asks for {asks}"
                )),
            "{err}"
        );
    }
    // Up to the limit, and where no precision is printed, `format` is kube-cel's.
    assert_eq!(holds("'%.3f'.format([1.0]) == '1.000'"), Ok(true));
    assert_eq!(holds("'%.65535f'.format([1.0]).size() == 65537"), Ok(true));
    assert_eq!(
        holds("'%%.99999f'.format([]) == '%.99999f' && '%.99999d'.format([1]) == '1'"),
        Ok(true)
    );
    let yaml = "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: p}\nspec:\n  \
                grant: {images: ['**'], runAsRoot: true}\n  validations:\n    - expression: \
                'false'\n      message: the fixed message\n      messageExpression: \
                \"'%.99999f'.format([1.0])\"\n";
    let set =
        kspy_admission::PolicySet::from_yaml("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let engine = kspy_admission::Engine::new(set, Default::default()).unwrap();
    let j = validate(
        &engine,
        &attach(
            "prod",
            "alice",
            &[],
            vec![],
            vec![debugger("dbg", "busybox:1.36")],
        ),
    );
    assert!(!j.response.allowed);
    assert!(
        j.response
            .result
            .message
            .contains("policy p: the fixed message"),
        "{}",
        j.response.result.message
    );
}

/// A messageExpression's result is taken as ValidatingAdmissionPolicy takes it: trimmed
/// (a trailing line break goes), and given up for the fixed message when a line break is left
/// inside. Sent as it was, a Warn policy's warning never reached the user: the API server drops
/// a warning text holding a control character whole.
#[test]
fn a_message_expression_with_a_line_break_gives_way_to_the_fixed_message() {
    let yaml = "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {name: p}\nspec:\n  \
                grant: {images: ['**'], runAsRoot: true}\n---\napiVersion: kspy.dev/v1alpha1\n\
                kind: DebugPolicy\nmetadata: {name: w}\nspec:\n  mode: Warn\n  validations:\n    \
                - expression: 'false'\n      message: the fixed message\n      messageExpression: \
                \"'line one\\\\nline two'\"\n    - expression: 'false'\n      message: unused\n      \
                messageExpression: \"' old busybox\\\\n'\"\n";
    let set =
        kspy_admission::PolicySet::from_yaml("t.yaml", yaml).unwrap_or_else(|e| panic!("{e}"));
    let engine = kspy_admission::Engine::new(set, Default::default()).unwrap();
    let j = validate(
        &engine,
        &attach(
            "prod",
            "alice",
            &[],
            vec![],
            vec![debugger("dbg", "busybox:1.36")],
        ),
    );
    assert!(j.response.allowed, "{}", j.response.result.message);
    assert_eq!(
        j.response.warnings.unwrap_or_default(),
        ["policy w: the fixed message", "policy w: old busybox"]
    );
}

/// An integer overflow inside the CEL interpreter is an evaluation error, which denies:
/// cel 0.13 negates unchecked, so `-(-9223372036854775808)` panicked where overflow checks
/// are on and stayed negative where they were off (release builds, which now check the CEL
/// crates' arithmetic too).
#[test]
fn an_overflow_in_the_cel_interpreter_denies() {
    let err = holds("-(-9223372036854775808) > 0").unwrap_err();
    assert!(
        err.contains("failed to evaluate") && err.contains("the CEL library failed on it"),
        "{err}"
    );
    assert_eq!(holds("-(-9223372036854775807) > 0"), Ok(true));
}

/// Variables are evaluated when an expression first names them, as in ValidatingAdmissionPolicy:
/// one that can only fail where the conditions exclude the request does not deny it, one that
/// fails where it is read still does (with its expression named), and one nobody reads is
/// never evaluated.
#[test]
fn variables_are_evaluated_when_first_named() {
    let policy = |conditions: &str| {
        format!(
            "apiVersion: kspy.dev/v1alpha1\nkind: DebugPolicy\nmetadata: {{name: team-attach}}\nspec:\n  match: {{actions: [attach]}}\n  variables:\n    - {{name: team, expression: \"request.userInfo.extra['team'][0]\"}}\n    - {{name: group, expression: \"'team-' + variables.team\"}}\n    - {{name: unused, expression: \"request.userInfo.extra['nope'][0]\"}}\n  conditions:\n{conditions}  grant: {{images: ['**'], runAsRoot: true}}\n"
        )
    };
    let excluded = policy(
        "    - {name: has-team, expression: \"has(request.userInfo.extra) && 'team' in request.userInfo.extra\"}\n    - {name: own-team, expression: \"variables.group in request.userInfo.groups\"}\n",
    );
    // No `team` in extra: the first condition excludes the request; neither variable ran.
    let j = validate(
        &engine(&excluded),
        &attach("ns", "alice", &[], vec![], vec![debugger("d", "busybox")]),
    );
    let msg = &j.response.result.message;
    assert!(!msg.contains("failed to evaluate"), "{msg}");
    assert!(
        msg.contains("no DebugPolicy allows user \"alice\""),
        "{msg}"
    );

    // Read where it fails: denied, naming the variable and its expression.
    let reads_first = policy(
        "    - {name: own-team, expression: \"variables.group in request.userInfo.groups\"}\n",
    );
    let j = validate(
        &engine(&reads_first),
        &attach("ns", "alice", &[], vec![], vec![debugger("d", "busybox")]),
    );
    let msg = &j.response.result.message;
    assert!(!j.response.allowed);
    assert!(
        msg.contains("variable \"team\" failed to evaluate")
            && msg.contains("(expression: request.userInfo.extra['team'][0])"),
        "{msg}"
    );
    // `unused` would fail too, but nothing names it.
    assert!(!msg.contains("\"unused\""), "{msg}");
}

/// `size` of a string counts characters, as CEL (and the API server) does: cel 0.13 counted
/// bytes, so a guardrail asking for a reason of at least ten characters let `'本番障害'` (4
/// characters, 12 bytes) through, and a size disagreed with the offsets `substring`, `charAt`
/// and `indexOf` take.
#[test]
fn the_size_of_a_string_is_its_characters_as_in_kubernetes() {
    for (expr, expected) in [
        ("size('本番障害') == 4 && '本番障害'.size() == 4", true),
        ("size('本番障害') >= 10", false),
        (
            "size('héllo') == 5 && size('') == 0 && size('abc') == 3",
            true,
        ),
        ("'héllo'.substring(size('héllo') - 2) == 'lo'", true),
        ("'héllo'.charAt(size('héllo')) == ''", true),
        // Bytes, lists and maps as before.
        (
            "size(b'h\\xc3\\xa9') == 3 && size([1, 2]) == 2 && size({'a': 1}) == 1",
            true,
        ),
        ("request.userInfo.groups.size() == 2", true),
    ] {
        assert_eq!(holds(expr), Ok(expected), "{expr}");
    }
    let err = holds("size(1) == 1").unwrap_err();
    assert!(
        err.contains("failed to evaluate")
            && err.contains("size takes a string, bytes, a list or a map, not a int"),
        "{err}"
    );
}

/// `split` and `join` as cel-go's strings extension has them (Go's `strings.SplitN`): an empty
/// separator splits between characters, where kube-cel 0.8 added an empty piece at each end
/// (`'abc'.split('')` had 5 pieces), and `join` fails on an item that is no string, where
/// kube-cel wrote it in Rust's debug form (`[1, 2].join(',')` was `'Int(1),Int(2)'`).
#[test]
fn split_and_join_as_in_kubernetes() {
    for expr in [
        "'a,b,c'.split(',') == ['a', 'b', 'c']",
        "'a,b,c'.split(',', -1) == ['a', 'b', 'c']",
        "'a,b,c'.split(',', 0) == []",
        "'a,b,c'.split(',', 1) == ['a,b,c']",
        "'a,b,c'.split(',', 2) == ['a', 'b,c']",
        "'a,b,c'.split(',', 9) == ['a', 'b', 'c']",
        "''.split(',') == [''] && 'a,'.split(',') == ['a', '']",
        "'abc'.split('') == ['a', 'b', 'c']",
        "'héllo'.split('').size() == 5",
        "'abc'.split('', 2) == ['a', 'bc'] && 'abc'.split('', 1) == ['abc']",
        "'abc'.split('', 0) == [] && 'abc'.split('', -1) == ['a', 'b', 'c']",
        "''.split('') == [] && ''.split('', 3) == []",
        "['a', 'b'].join('-') == 'a-b' && ['a', 'b'].join() == 'ab'",
        "[].join(',') == '' && ['a'].join(',') == 'a'",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    for (expr, says) in [
        (
            "[1, 2].join(',') != ''",
            "join takes a list of strings, and item 0 is a int",
        ),
        (
            "['a', 1].join(',') != ''",
            "join takes a list of strings, and item 1 is a int",
        ),
        (
            "['a', 'b'].join(1) != ''",
            "join takes a string separator or none (got int)",
        ),
        (
            "'a,b'.split(',', 1u) == ['a,b']",
            "split takes a string separator and, optionally, an int limit (got string, uint)",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains(says),
            "{expr}: {err}"
        );
    }
}

/// `matches`, `find` and `findAll` read a pattern as Go's regexp (RE2) does, which Kubernetes'
/// CEL compiles it with. The `regex` crate's syntax is nearly Go's, but its `\d`, `\w`, `\s`
/// and `\b` are Unicode where Go's are ASCII: a guardrail allowing `^[\w.-]+$` let names in
/// other scripts through that the API server refuses (`'١٢٣'.matches('^\\d+$')` was true). In
/// a class, Go reads `[`, `&&`, `--` and `~~` as characters; `\<` is `<`; a `{` that starts no
/// repetition is `{`; `\Q…\E` and `\p{^…}` are Go's. What Go refuses (a count over 1000, the
/// flags `x`, `u`, `R`, look-around, back-references) is refused at load when the pattern is
/// a constant, and fails to evaluate, which denies, when it is computed.
#[test]
fn regular_expressions_read_as_go_reads_them() {
    for expr in [
        // Perl classes and word boundaries are ASCII.
        "'123'.matches('^\\\\d+$') && !'١٢٣'.matches('^\\\\d+$') && '١'.matches('^\\\\D$')",
        "'a_1'.matches('^\\\\w+$') && !'é'.matches('^\\\\w$') && 'é'.matches('^\\\\W$')",
        "' \\t'.matches('^\\\\s+$') && !'\\u00a0'.matches('\\\\s') && '\\u00a0'.matches('^\\\\S$')",
        "!'é'.matches('\\\\b') && 'a b'.matches('a\\\\b') && 'éa'.matches('\\\\ba')",
        "!'aé'.matches('a\\\\b') == false && 'ab'.matches('a\\\\B')",
        "'\\u212a'.matches('(?i)^\\\\w$') && 'k'.matches('(?i)^\\\\W$') == false",
        // In a class too; nested negations as Go has them.
        "'١'.matches('^[\\\\d١]$') && !'١'.matches('^[\\\\d]$') && '5'.matches('^[^\\\\D]$')",
        "!'١'.matches('^[^\\\\D]$') && '-'.matches('^[\\\\d-z]$') && 'z'.matches('^[\\\\d-z]$')",
        "!'é'.matches('^[\\\\w.-]+$') && 'busybox-1.36'.matches('^[\\\\w.-]+$')",
        // Go's class syntax: `[`, `&&`, `--`, `~~` are characters; ranges as Go reads them.
        "'&'.matches('^[a&&b]$') && '['.matches('^[[a]$') && '~'.matches('^[a~~b]$')",
        "','.matches('^[+--]$') && ']'.matches('^[]a]$') && !']'.matches('^[^]a]$')",
        "'x'.matches('^[[:alpha:]]$') && !'é'.matches('^[[:alpha:]]$')",
        "'A'.matches('^\\\\x41$') && '['.matches('^[\\\\x5B]$') && 'B'.matches('^[\\\\x41-\\\\x5A]$')",
        "'本番障害'.matches('[\\\\p{L}\\\\p{N}]') && 'a'.matches('^[\\\\pL]$')",
        // `\\<`, `\\>`, a `{` that starts no repetition, `\\Q…\\E`, `\\p{^…}`.
        "'<a>'.matches('^\\\\<a\\\\>$') && !'a'.matches('\\\\<a')",
        "'a{,3}'.matches('^a{,3}$') && '{x}'.matches('^{x}$') && 'a{01}'.matches('^a{01}$')",
        "'aaa'.matches('^a{2,3}$') && 'aaaa'.matches('^a{2,}$') && 'aa'.matches('^a{2}$')",
        "'a.b'.matches('^\\\\Qa.b\\\\E$') && !'axb'.matches('^\\\\Qa.b\\\\E$') && 'a+'.matches('\\\\Qa+')",
        "'a'.matches('^\\\\p{^Greek}$') && !'α'.matches('^\\\\p{^Greek}$')",
        // Flags and groups Go takes.
        "'A'.matches('(?i)^a$') && 'a\\nb'.matches('(?m)^b$') && 'a\\nb'.matches('(?s)a.b')",
        "'ab'.matches('(?P<x>a)b') && 'ab'.matches('(?<x>a)b') && 'aa'.matches('(?U)a+')",
        // find and findAll alike.
        "'١2'.find('\\\\d+') == '2' && 'a1١2'.findAll('\\\\d') == ['1', '2']",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    for (expr, says) in [
        ("'a'.matches('a{1001}')", "invalid repeat count {1001}"),
        ("'a'.matches('a{3,2}')", "invalid repeat count {3,2}"),
        (
            "'a'.find('a{2,1001}') == ''",
            "invalid repeat count {2,1001}",
        ),
        ("'a'.matches('(?x) a')", "unknown flag x in (?x"),
        ("'a'.matches('(?-u:a)')", "unknown flag u in (?-u"),
        ("'a'.matches('(?R)a')", "unknown flag R in (?R"),
        ("'ab'.matches('a(?=b)')", "look-around"),
        (
            "'aa'.matches('(a)\\\\1')",
            "backreferences are not supported",
        ),
        ("'a'.matches('[a')", "a character class has no closing ]"),
    ] {
        assert_pattern_refused(expr, says);
    }
}

/// `expr`, whose constant pattern Go refuses, is refused at load saying `says`, as the API
/// server refuses it at compilation; the same pattern computed when evaluated fails then,
/// saying `says`, which denies.
fn assert_pattern_refused(expr: &str, says: &str) {
    let err = holds(expr).unwrap_err();
    assert!(
        err.contains("invalid regular expression") && err.contains(says),
        "{expr}: {err}"
    );
    let computed = expr
        .replace(".matches('", ".matches('' + '")
        .replace(".find('", ".find('' + '");
    let err = holds(&computed).unwrap_err();
    assert!(
        err.contains("failed to evaluate") && err.contains(says),
        "{computed}: {err}"
    );
}

/// Compiling a pattern is work, and a pattern taken from request data is compiled at each
/// call: a loop matching against many distinct patterns (`\pL{8}|0`, `\pL{8}|1`, …, each
/// half a megabyte once compiled) did unbounded work within one evaluation, since only the
/// loop's steps were counted. Each compile is now charged to the evaluation's budget by its size,
/// so such a loop stops, which denies, while a policy's own constant patterns, compiled once,
/// cost nothing after the first time.
#[test]
fn compiling_patterns_is_charged_to_the_evaluations_budget() {
    assert_eq!(
        holds("lists.range(12).all(i, 'ab'.matches('^[a-z]+$|' + string(i)))"),
        Ok(true)
    );
    let err =
        holds("!lists.range(300).exists(i, 'x'.matches('\\\\pL{8}|' + string(i)))").unwrap_err();
    assert!(
        err.contains("failed to evaluate") && err.contains("steps of work"),
        "{err}"
    );
}

/// Whether `expr` holds for a debug container whose one env value is `value`; the error when
/// it fails to evaluate.
fn holds_with_env(expr: &str, value: &str) -> Result<bool, String> {
    let e = engine(&policy(
        "p",
        &format!(
            "  grant: {{images: ['**'], capabilities: [SYS_PTRACE], runAsRoot: true}}\n  \
             validations:\n    - expression: {}\n      message: rule failed",
            serde_json::to_string(expr).unwrap()
        ),
    ));
    let mut dbg = debugger("dbg", "busybox:1.36");
    dbg["env"] = json!([{"name": "V", "value": value}]);
    outcome(&validate(
        &e,
        &attach("prod", "alice", &["sre"], vec![], vec![dbg]),
    ))
}

/// `split`, `findAll` and `replace` build from what the request sends, and nothing counted
/// it: a 300 KB env value of `/` split into 300,001 strings (some 120 bytes each here, a
/// third of a GB for a 3 MB value), and `v.replace('', v)` built the square of its length
/// (400 MB for 20 KB, more than the process has for 100 KB). Each now charges what it builds
/// to the evaluation's budget, as `lists.range` does, and builds no list longer than
/// `lists.range` may (262,144 items): past either, the evaluation fails, which denies.
#[test]
fn what_split_find_all_and_replace_build_is_counted() {
    let slashes = "/".repeat(300_000);
    for expr in [
        "container.env[0].value.split('/').size() > 3",
        "container.env[0].value.split('').size() > 3",
        "container.env[0].value.findAll('/').size() > 3",
    ] {
        let err = holds_with_env(expr, &slashes).unwrap_err();
        assert!(
            err.contains("failed to evaluate")
                && err.contains("would build a list of more than 262144 items"),
            "{expr}: {err}"
        );
    }
    let err = holds_with_env(
        "container.env[0].value.replace('', container.env[0].value).size() > 0",
        &"a".repeat(4_000),
    )
    .unwrap_err();
    assert!(
        err.contains("failed to evaluate") && err.contains("steps of work"),
        "{err}"
    );
    // What policies do stays far below it.
    for expr in [
        "container.env[0].value.split('/', 3).size() == 3",
        "container.env[0].value.findAll('/', 5).size() == 5",
        "container.env[0].value.replace('/', '-', 2).startsWith('--/')",
        "container.env[0].value.replace('/', '').size() == 0",
    ] {
        assert_eq!(holds_with_env(expr, &slashes), Ok(true), "{expr}");
    }
}

/// `x in list` looks at each item of the list, and only the loop around it was counted: with
/// the lists a request sends (`container.args.all(a, a in target.args)`, 20,000 strings
/// each) that was 400 million comparisons in one evaluation, minutes of a judging thread
/// (293 s in a debug build). Each `in` now charges the items it may look at, as Kubernetes'
/// CEL charges it by the list's size, so the loop stops at the budget, which denies.
#[test]
fn in_charges_the_items_it_looks_at() {
    let e = engine(&policy(
        "p",
        "  grant: {images: ['**'], capabilities: [SYS_PTRACE], runAsRoot: true}\n  \
         variables:\n    - {name: r, expression: 'lists.range(3200)'}\n  validations:\n    \
         - expression: 'lists.range(3200).all(i, !(i + 3200 in variables.r))'\n      \
         message: rule failed\n    - expression: \"1 in [0, 1] && 'a' in {'a': 1} && 2 in variables.r\"",
    ));
    let mut dbg = debugger("dbg", "busybox:1.36");
    dbg["securityContext"] = json!({"capabilities": {"add": ["SYS_PTRACE"]}, "runAsUser": 0});
    let j = validate(&e, &attach("prod", "alice", &["sre"], vec![], vec![dbg]));
    let msg = &j.response.result.message;
    assert!(!j.response.allowed);
    assert!(
        msg.contains("failed to evaluate") && msg.contains("steps of work"),
        "{msg}"
    );
    assert!(!msg.contains("1 in [0, 1]"), "{msg}");
}

/// `sets.contains`, `sets.equivalent`, `sets.intersects` and `distinct()` compare each item of
/// one list with each of the other (of the list so far), in one call that nothing counted:
/// `sets.intersects(container.args, target.args)` over two request lists of 20,000 strings
/// is 400 million comparisons. Each now charges that product to the evaluation's budget
/// first, so past it the evaluation fails, which denies; small lists answer as before.
#[test]
fn set_functions_charge_the_comparisons_they_make() {
    let four_thousand = "a".repeat(4_000);
    for expr in [
        "!sets.intersects(lists.range(4000), container.env[0].value.split(''))",
        "lists.range(5000).distinct().size() == 5000",
    ] {
        let err = holds_with_env(expr, &four_thousand).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains("steps of work"),
            "{expr}: {err}"
        );
    }
    for expr in [
        "sets.contains([1, 2, 3], [3, 1]) && !sets.contains([1], [2])",
        "sets.equivalent([1, 2, 2], [2, 1]) && sets.intersects(['a', 'b'], ['b'])",
        "[1, 2, 2, 1].distinct() == [1, 2] && lists.range(1000).distinct().size() == 1000",
    ] {
        assert_eq!(holds_with_env(expr, "a"), Ok(true), "{expr}");
    }
}

/// A regular expression reads the whole string it is given, and a loop may give it the same
/// long string at each step: `lists.range(20000).all(i, v.matches('b'))` over a 1 MB env
/// value read 20 GB in one evaluation, counted as 20,000 steps. `matches`, `find` and
/// `findAll` now charge a unit per 10 bytes of the string they read (Kubernetes' traversal
/// cost), so such a loop stops at the budget, which denies.
#[test]
fn a_regular_expression_charges_the_string_it_reads() {
    let long = "a".repeat(1_000_000);
    for expr in [
        "lists.range(20000).all(i, !container.env[0].value.matches('b'))",
        "lists.range(20000).all(i, container.env[0].value.find('b') == '')",
    ] {
        let err = holds_with_env(expr, &long).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains("steps of work"),
            "{expr}: {err}"
        );
    }
    assert_eq!(
        holds_with_env(
            "lists.range(50).all(i, !container.env[0].value.matches('b'))",
            &long
        ),
        Ok(true)
    );
}

/// `==` and `!=` between strings or bytes, a string's `size()` (its characters, counted one by
/// one), and `startsWith`, `endsWith` and `contains` read the strings they are given, and were
/// charged nothing: `lists.range(20000).all(i, v == v)` over a 1 MB value compared 20 GB,
/// counted as 20,000 steps. Each now charges a tenth of a unit per byte it reads, as
/// Kubernetes' CEL does; short strings cost nothing more.
#[test]
fn string_comparisons_and_sizes_charge_the_bytes_they_read() {
    let long = "a".repeat(1_000_000);
    let v = "container.env[0].value";
    let exprs = [
        format!("lists.range(20000).all(i, {v} == {v})"),
        format!("lists.range(20000).all(i, !({v} != {v}))"),
        format!("lists.range(20000).all(i, bytes({v}) == bytes({v}))"),
        format!("lists.range(20000).all(i, size({v}) > 0)"),
        format!("lists.range(20000).all(i, {v}.size() > 0)"),
        format!("lists.range(20000).all(i, {v}.startsWith({v}))"),
        format!("lists.range(20000).all(i, {v}.endsWith({v}))"),
        format!("lists.range(20000).all(i, {v}.contains({v}))"),
        format!("lists.range(20000).all(i, !{v}.contains('b'))"),
    ];
    for expr in &exprs {
        // 200 reads of 1 MB are 20 million units, twice the budget.
        let many = expr.replace("lists.range(20000)", "lists.range(200)");
        let err = holds_with_env(&many, &long).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains("steps of work"),
            "{many}: {err}"
        );
        // 20 reads of it fit, and 20,000 of a short string cost only the loop's steps.
        let few = expr.replace("lists.range(20000)", "lists.range(20)");
        assert_eq!(holds_with_env(&few, &long), Ok(true), "{few}");
        assert_eq!(holds_with_env(expr, "short value"), Ok(true), "{expr}");
    }
}

/// Go reads octal escapes (`\012`, `\123`, `\0`), in a class too; the `regex` crate refuses
/// them ("backreferences are not supported"), so a pattern Kubernetes takes failed to
/// evaluate, which denied every request it judged. A lone `\1` is still refused, as Go
/// refuses it.
#[test]
fn octal_escapes_read_as_go_reads_them() {
    for expr in [
        "'\\n'.matches('^\\\\012$') && 'S'.matches('^\\\\123$') && 'S4'.matches('^\\\\1234$')",
        "'a\\n'.matches('^a[\\\\012]$') && '8'.matches('^\\\\08$') == false && 'x'.matches('^[\\\\170-\\\\172]$')",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    let err = holds("'a'.matches('\\\\1')").unwrap_err();
    assert!(err.contains("backreferences are not supported"), "{err}");
}

/// A POSIX class name Go does not know (`[[:alpah:]]`) makes Go refuse the pattern, so the
/// expression fails to evaluate, which denies. It was handed to the `regex` crate, which reads
/// an unknown name as a nested class of its characters: `[[:foo:]]` matched `f`, `o` and `:`,
/// a typo in a guardrail silently changing what it lets through.
#[test]
fn an_unknown_posix_class_is_refused_as_go_refuses_it() {
    assert_eq!(
        holds("'1'.matches('^[[:^alpha:][:word:]]$') && !'é'.matches('^[[:alnum:]]$')"),
        Ok(true)
    );
    for (expr, says) in [
        (
            "!'f'.matches('^[[:foo:]]$')",
            "invalid character class range [:foo:]",
        ),
        (
            "'a'.matches('^[[:alpha]x:]]$')",
            "invalid character class range [:alpha]x:]",
        ),
        (
            "'a'.find('[[:^Alpha:]]') == ''",
            "invalid character class range [:^Alpha:]",
        ),
    ] {
        assert_pattern_refused(expr, says);
    }
}

/// `url()` and its getters read a URL as Kubernetes does, with Go's `net/url`: parts as
/// written. kube-cel 0.8 read it with the `url` crate, which rewrites it, and read a path as
/// `http://localhost/…`: `url('http://localhost/x').getScheme()` was `''`, so a guardrail
/// `getScheme() != 'http'` held for a plain-HTTP URL; `url('/x').getHost()` was `'localhost'`;
/// a default port was dropped (`'x.com:443'` became `'x.com'`), hosts lowercased and
/// punycoded, and `..` resolved in paths.
#[test]
fn urls_read_as_go_reads_them() {
    for expr in [
        "url('http://localhost/x').getScheme() == 'http' && url('HTTP://x.com').getScheme() == 'http'",
        "url('/healthz').getScheme() == '' && url('/healthz').getHost() == ''",
        "url('/healthz').getEscapedPath() == '/healthz' && url('/healthz').getPort() == ''",
        "url('https://x.com:443/a').getHost() == 'x.com:443' && url('https://x.com:443/a').getPort() == '443'",
        "url('https://X.com/a/../b').getHost() == 'X.com' && url('https://X.com/a/../b').getEscapedPath() == '/a/../b'",
        "url('https://bücher.de/').getHost() == 'bücher.de' && url('https://x.com').getEscapedPath() == ''",
        "url('https://a.com/a b').getEscapedPath() == '/a%20b' && url('https://a.com/a%2Fb').getEscapedPath() == '/a%2Fb'",
        "url('https://a.com/p#frag').getEscapedPath() == '/p'",
        "url('https://[::1]:80/').getHost() == '[::1]:80' && url('https://[::1]:80/').getHostname() == '::1'",
        "url('https://[::1]:80/').getPort() == '80' && url('https://user:pw@x.com/').getHost() == 'x.com'",
        "url('https://registry.example.com:5000/v2').getHostname() == 'registry.example.com'",
        "url('mailto:a@b.c').getScheme() == 'mailto' && url('mailto:a@b.c').getHost() == ''",
        "url('https://a.com?x=1&x=2&y').getQuery() == {'x': ['1', '2'], 'y': ['']}",
        "url('https://a.com?a+b=c%20d&bad=%zz&s;x=1').getQuery() == {'a b': ['c d']}",
        "url('https://a.com/path?').getQuery() == {} && url('https://a.com').getQuery() == {}",
        "url('https://x.com') == url('https://x.com') && url('https://x.com') != url('https://x.com/')",
        "isURL('https://x.com') && isURL('/x') && isURL('mailto:a@b')",
        "!isURL('x.com') && !isURL('') && !isURL('1http://x') && !isURL('https://a b.com')",
        "!isURL('https://x.com:abc/') && !isURL('https://x.com/%zz') && !isURL('https://e.com\\\\@g.com/')",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    for (expr, says) in [
        (
            "url('x.com').getHost() == ''",
            "URL parse error during conversion from string: parse \"x.com\": invalid URI for \
             request",
        ),
        (
            "url('https://x.com:abc/') != null",
            "invalid port \":abc\" after host",
        ),
        (
            "url('https://a b.com') != null",
            "invalid character \" \" in host name",
        ),
        (
            "url('https://x.com/#%zz') != null",
            "invalid URL escape \"%zz\"",
        ),
        (
            "'x.com'.getHost() == ''",
            "getHost takes a URL (url('https://…')), not a string",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains(says),
            "{expr}: {err}"
        );
    }
}

/// Go's `net/url` (since the fixes for CVE-2025-47912 and CVE-2026-25679, in every Go that
/// builds a supported Kubernetes) takes square brackets in a host only around an IPv6
/// address, at the start of the host. kspy took anything there: `url('https://[evil.com]/')`
/// had the hostname `'evil.com'`, and `url('https://trusted.com[::1]:80/')` the hostname
/// `'trusted.com[::1]'`, where Kubernetes fails the conversion, which denies.
#[test]
fn brackets_in_a_host_hold_an_ipv6_address_as_go_requires() {
    for expr in [
        "url('https://[::1]:80/').getHostname() == '::1' && isURL('https://[::ffff:10.0.0.1]/')",
        "url('http://[fe80::1%25en0]:8080/').getHostname() == 'fe80::1%en0'",
        "!isURL('https://[evil.com]/') && !isURL('https://[10.0.0.1]/') && !isURL('https://[]/')",
        "!isURL('https://a.com[::1]:80/') && !isURL('https://[::1][/') && !isURL('https://[fe80::1%25]/')",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    for (expr, says) in [
        (
            "url('https://[evil.com]/').getHostname() == 'evil.com'",
            "invalid host",
        ),
        (
            "url('https://[10.0.0.1]:80/').getHostname() == '10.0.0.1'",
            "invalid IP-literal",
        ),
        (
            "url('https://trusted.com[::1]:80/').getHostname() != ''",
            "invalid IP-literal",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains(says),
            "{expr}: {err}"
        );
    }
}

/// Semantic versions compare as Kubernetes compares them (blang/semver): by precedence, which
/// leaves build metadata out. kube-cel 0.8 broke ties on build metadata, so
/// `semver('1.2.3+patched').isGreaterThan(semver('1.2.3'))` was true and a guardrail requiring
/// a version past a known bad one let the bad one through with a build suffix; and its
/// normalization (`semver(s, true)`) took versions Kubernetes refuses. Quantities compare as
/// before.
#[test]
fn semvers_compare_as_in_kubernetes() {
    for expr in [
        "!semver('1.2.3+patched').isGreaterThan(semver('1.2.3'))",
        "semver('1.2.3+build') == semver('1.2.3') && semver('1.2.3+a') == semver('1.2.3+b')",
        "semver('1.2.3+build').compareTo(semver('1.2.3')) == 0",
        "!semver('1.2.3').isLessThan(semver('1.2.3+build'))",
        "semver('1.2.4').isGreaterThan(semver('1.2.3')) && semver('1.2.3-alpha').isLessThan(semver('1.2.3'))",
        "semver('1.2.3-alpha.1').isLessThan(semver('1.2.3-alpha.beta')) && semver('1.2.3') != semver('1.2.4')",
        "semver('v1.2', true) == semver('1.2.0') && semver('01.01.01', true).minor() == 1",
        "isSemver('v1.0', true) && !isSemver('v1.0') && !isSemver('V1.2.3', true)",
        "!isSemver('1.2-beta', true) && !isSemver('1.2.3.4', true) && !isSemver('01.2.3')",
        "semver('1.2.3').major() == 1 && semver('1.2.3').minor() == 2 && semver('1.2.3').patch() == 3",
        "quantity('1Gi').isGreaterThan(quantity('512Mi')) && quantity('1').isLessThan(quantity('2'))",
        "quantity('1Gi').compareTo(quantity('1024Mi')) == 0",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    for (expr, says) in [
        (
            "semver('1.2-beta', true) != null",
            "invalid semver \"1.2-beta\": short version cannot contain PreRelease/Build meta data",
        ),
        (
            "semver('1.2.3').isLessThan(quantity('2'))",
            "isLessThan compares two semvers (or two quantities), and only one side here is a semver",
        ),
        (
            "'1.2.3'.major() == 1",
            "major takes a semver (semver('1.2.3')), not a string",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains(says),
            "{expr}: {err}"
        );
    }
}

/// A Kubernetes CEL function kspy's CEL lacks is refused when the policy loads, saying why and
/// what to write instead; `all` with two variables was refused as an "unknown function
/// \"all\"", which read as if `all` itself were missing.
#[test]
fn a_kubernetes_function_kspy_lacks_is_refused_at_load_saying_why() {
    for (expr, says) in [
        (
            "[1].all(i, v, v == 1)",
            "unknown function \"all\": Kubernetes' two-variable form (`list.all(i, v, …)`, \
             `map.all(k, v, …)`) is not supported by kspy's CEL (cel 0.13); use the \
             one-variable form",
        ),
        (
            "[1].transformList(i, v, v) == [1]",
            "unknown function \"transformList\": Kubernetes' two-variable comprehensions",
        ),
        (
            "cel.bind(x, 1, x == 1)",
            "unknown function \"cel.bind\": cel.bind is not supported by kspy's CEL (cel 0.13); \
             declare a policy variable (spec.variables) instead",
        ),
        (
            "[2, 1].sortBy(x, x) == [1, 2]",
            "unknown function \"sortBy\" (did you mean \"sort\"?): sortBy is not supported",
        ),
        (
            "authorizer.group('apps') != null",
            "the authorizer library is not available",
        ),
        // As Kubernetes' documentation writes it: the chain is refused at its start, which
        // says why, not at `allowed`, which read as a misspelling.
        (
            "authorizer.group('apps').resource('deployments').check('get').allowed()",
            "unknown function \"authorizer.group\": kspy makes no API calls while judging, so \
             the authorizer library is not available",
        ),
        (
            "dyn(container.name) == 'dbg'",
            "unknown function \"dyn\": dyn() is not supported by kspy's CEL (cel 0.13); \
             kspy's variables are untyped, so write the value itself",
        ),
        (
            "type(container.name) == string",
            "unknown function \"type\": type() is not supported by kspy's CEL (cel 0.13)",
        ),
        (
            "[1].existsOne(i, v, v == 1)",
            "unknown function \"existsOne\": `existsOne` is Kubernetes' two-variable form of \
             `exists_one`",
        ),
        (
            "'a'.lowerAsci() == 'a'",
            "unknown function \"lowerAsci\" (did you mean \"lowerAscii\"?); it would fail",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains(says) && err.contains("it would fail on every request"),
            "{expr}: {err}"
        );
    }
}

/// Timestamp and duration accessors as cel-go has them: a timestamp's parts in UTC, or in the
/// time zone given, and a duration's whole hours, minutes, seconds or milliseconds as a 64-bit
/// int. cel 0.13 read a timestamp's parts in the offset it was written with, ignored the time
/// zone, and cut a duration's count to 32 bits: `duration('4294970000s').getSeconds()` was
/// 2704, so a guardrail bounding a duration read from an annotation held for 136 years.
#[test]
fn time_accessors_as_in_kubernetes() {
    for expr in [
        "duration('4294970000s').getSeconds() == 4294970000",
        "!(duration('4294970000s').getSeconds() <= 3600)",
        "duration('90m').getHours() == 1 && duration('-90m').getHours() == -1",
        "duration('90m').getMinutes() == 90 && duration('1.5s').getMilliseconds() == 1500",
        "timestamp('2024-01-02T00:30:00+01:00').getHours() == 23",
        "timestamp('2024-01-02T00:30:00+01:00').getDate() == 1",
        "timestamp('2024-01-01T00:00:00Z').getHours('-05:00') == 19",
        "timestamp('2024-01-01T00:00:00Z').getHours('+05:30') == 5 && timestamp('2024-01-01T00:00:00Z').getMinutes('+05:30') == 30",
        "timestamp('2024-01-01T00:00:00Z').getHours('UTC') == 0",
        "timestamp('2024-03-01T12:34:56.789Z').getMilliseconds() == 789 && timestamp('2024-03-01T12:34:56.789Z').getSeconds() == 56",
        "timestamp('2024-03-01T12:34:56.789Z').getDayOfYear() == 60 && timestamp('2024-03-01T12:34:56.789Z').getDayOfWeek() == 5",
        "timestamp('2024-03-01T12:34:56.789Z').getMonth() == 2 && timestamp('2024-03-01T12:34:56.789Z').getDayOfMonth() == 0",
        "timestamp('2024-03-01T12:34:56.789Z').getFullYear() == 2024",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    for (expr, says) in [
        (
            "timestamp('2024-01-01T00:00:00Z').getHours('America/New_York') == 19",
            "time zone \"America/New_York\": kspy knows no time zone names but UTC; give the \
             offset from UTC instead ('-05:00')",
        ),
        (
            "duration('1h').getDate() == 1",
            "getDate takes a timestamp, not a duration",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains(says),
            "{expr}: {err}"
        );
    }
}

/// `int()` and `uint()` of a double as cel-go has them: NaN, the infinities and anything at or
/// past the ends of the type fail, which denies. cel 0.13 made NaN 0, so `int(double(x)) <= 10`
/// held for `x = 'NaN'` taken from request data, and clamped at the ends.
#[test]
fn int_of_a_double_out_of_range_denies_as_in_kubernetes() {
    for expr in [
        "int(1.9) == 1 && int(-1.9) == -1 && int(-9223372036854774784.0) == -9223372036854774784",
        "uint(1.5) == 1u && uint(-0.0) == 0u",
        "int('12') + int(3u) == 15 && uint('12') + uint(3) == 15u",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    for (expr, says) in [
        (
            "int(double('NaN')) <= 10",
            "integer overflow: NaN is no int",
        ),
        (
            "int(9223372036854775807.0) > 0",
            "integer overflow: 9223372036854776000 is no int",
        ),
        (
            "int(-9223372036854775808.0) < 0",
            "integer overflow: -9223372036854776000 is no int",
        ),
        ("int(1.0 / 0.0) > 0", "integer overflow: inf is no int"),
        (
            "uint(18446744073709551615.0) > 0u",
            "unsigned integer overflow",
        ),
        (
            "uint(-0.5) == 0u",
            "unsigned integer overflow: -0.5 is no uint",
        ),
        (
            "uint(double('NaN')) == 0u",
            "unsigned integer overflow: NaN is no uint",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains(says),
            "{expr}: {err}"
        );
    }
}

/// `quantity()` and `isQuantity()` take a string written as Kubernetes' `resource.ParseQuantity`
/// reads one, nothing before or after: kube-cel 0.8 trimmed white space first and read signs
/// and dots anywhere in the number, so `quantity(' 1Gi ')` was a quantity and `isQuantity('1 ')`
/// true where the API server fails and answers false.
#[test]
fn quantities_are_written_as_in_kubernetes() {
    for expr in [
        "!isQuantity('1 ') && !isQuantity(' 1') && !isQuantity('1-2') && !isQuantity('1..2')",
        "!isQuantity('1e') && !isQuantity('1Kii') && !isQuantity('1ki') && !isQuantity('')",
        "isQuantity('1Gi') && isQuantity('500m') && isQuantity('1.5') && isQuantity('1e3')",
        "isQuantity('1E') && isQuantity('.5') && isQuantity('1.') && isQuantity('-1') && isQuantity('+1')",
        "isQuantity('1e+3') && isQuantity('1E-2') && isQuantity('5n') && isQuantity('5u')",
        "quantity('1Gi').isGreaterThan(quantity('512Mi')) && quantity('1Gi') == quantity('1024Mi')",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    let err = holds("quantity(' 1Gi ').isGreaterThan(quantity('1'))").unwrap_err();
    assert!(
        err.contains("failed to evaluate")
            && err
                .contains("\" 1Gi \" is no quantity: quantities must match the regular expression"),
        "{err}"
    );
}

/// The README's "optional syntax" row: cel 0.13 parses neither `a.?b` nor `[?x]`, so a policy
/// written with them is refused at load, not denied at every request.
#[test]
fn optional_syntax_is_refused_at_load() {
    for (expr, says) in [
        (
            "{'a': 1}.?a.orValue(0) == 1",
            "syntax error at line 1, column 9: unsupported syntax '.?'",
        ),
        (
            "[?optional.of(1)] == [1]",
            "syntax error at line 1, column 2: unsupported syntax '?'",
        ),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(err.contains(says), "{expr}: {err}");
    }
}

/// CIDR prefixes as Kubernetes reads them (Go's `netip.ParsePrefix`): no leading zero in the
/// prefix length or in an octet. kube-cel 0.8 read both (`10.0.0.0/08` as `/8`, `010.0.0.0/8`
/// as `10.0.0.0/8`), so `isCIDR` held where the API server answers false, and `cidr()` of
/// either converted where it fails. Addresses alone refused leading zeros already, as Go does.
#[test]
fn cidr_prefixes_with_leading_zeros_are_refused_as_in_kubernetes() {
    for expr in [
        "!isCIDR('10.0.0.0/08') && !isCIDR('10.0.0.0/00') && !isCIDR('fd00::/064')",
        "!isCIDR('010.0.0.0/8') && !isCIDR('10.0.0.0/+8') && !isCIDR('10.0.0.0/')",
        "!isCIDRv4('10.0.0.0/08') && !isCIDRv6('fd00::/064')",
        "isCIDR('10.0.0.0/8') && isCIDR('0.0.0.0/0') && isCIDR('fd00::/64') && !isCIDR('10.0.0.0/33')",
        "isCIDRv4('10.0.0.0/8') && isCIDRv6('fd00::/64') && !isCIDR('::ffff:1.2.3.4/128')",
        "!isIP('010.0.0.1') && !isIP('10.0.0.01') && isIP('10.0.0.1') && isIP('0001::1')",
        "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16') && cidr('10.0.0.0/8').prefixLength() == 8",
        "cidr('10.0.0.0/8').containsCIDR(cidr('10.1.0.0/16'))",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    for (expr, says) in [
        (
            "cidr('10.0.0.0/08').prefixLength() == 8",
            "netip.ParsePrefix(\"10.0.0.0/08\"): bad bits after slash: \"08\"",
        ),
        (
            "cidr('010.0.0.0/8').prefixLength() == 8",
            "netip.ParsePrefix(\"010.0.0.0/8\"): ParseAddr(\"010.0.0.0\")",
        ),
        (
            "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/016')",
            "bad bits after slash: \"016\"",
        ),
        ("ip('010.0.0.1') != null", "invalid IP address"),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains(says),
            "{expr}: {err}"
        );
    }
}

/// A pattern's compiled size is bounded (1 MiB, where the `regex` crate's default is 10 MiB)
/// and so is what the cache of compiled patterns holds (32 MiB): a policy building patterns
/// from request data could make the webhook hold 256 patterns of 10 MiB each. A pattern past
/// the bound fails to evaluate, which denies, saying why (refused at load when constant);
/// usual patterns, Unicode classes included, are untouched.
#[test]
fn a_pattern_too_large_to_compile_denies() {
    for expr in [
        "'x'.matches('' + '^[\\\\p{L}\\\\p{N}]+$') && 'x'.matches('' + '^.{1,1000}$')",
        "'ab'.find('' + '[a-z]{2}') == 'ab'",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    let says = "the pattern compiles to more than 1024 KiB";
    let err = holds("'x'.matches('' + '\\\\pL{100}')").unwrap_err();
    assert!(
        err.contains("failed to evaluate") && err.contains(says),
        "{err}"
    );
    let err = holds("'x'.findAll('\\\\pL{100}').size() == 0").unwrap_err();
    assert!(
        err.contains("invalid regular expression") && err.contains(says),
        "{err}"
    );
}

/// The conversions of cel-go's standard library, as Kubernetes has them. cel 0.13 had no
/// `bool()` (refused at load), failed `string(true)`, `int(timestamp)`, `int(duration)`,
/// `timestamp(int)`, `duration(int)`, `bytes(bytes)` and `timestamp(timestamp)`, replaced an
/// invalid byte in `string(bytes)`, wrote `string(1e6)` as `'1000000'` (cel-go: `'1e+06'`),
/// durations as `'1h30m0s'` (cel-go: `'5400s'`) and timestamps with `+00:00`, and read
/// `double('1e400')` as infinity and `uint('+1')` as 1, where Go's parsers fail.
#[test]
fn conversions_as_in_kubernetes() {
    for expr in [
        "string(true) == 'true' && string(false) == 'false'",
        "bool('true') && !bool('false') && bool(true) && !bool(false)",
        "bool('1') && bool('t') && bool('T') && bool('TRUE') && bool('True')",
        "!bool('0') && !bool('f') && !bool('F') && !bool('FALSE') && !bool('False')",
        "int(timestamp('1970-01-01T00:00:01Z')) == 1 && int(timestamp('1969-12-31T23:59:59.5Z')) == -1",
        "int(duration('1s')) == 1000000000 && duration(1) == duration('1ns')",
        "timestamp(1) == timestamp('1970-01-01T00:00:01Z') && timestamp(-62135596800) == timestamp('0001-01-01T00:00:00Z')",
        "timestamp(timestamp('2023-01-01T00:00:00Z')) == timestamp('2023-01-01T00:00:00Z')",
        "duration(duration('1s')) == duration('1s')",
        "string(b'hello') == 'hello' && bytes('hello') == b'hello' && bytes(b'a') == b'a'",
        "double('1.5') == 1.5 && double('-1e3') == -1000.0 && double('Infinity') > 1e308 && double('-inf') < 0.0",
        "string(1e6) == '1e+06' && string(-1.23e4) == '-12300' && string(1.5e-7) == '1.5e-07' && string(0.5) == '0.5'",
        "string(duration('1h30m')) == '5400s' && string(duration('1.5s')) == '1.5s'",
        "string(timestamp('2024-01-01T10:00:00.500Z')) == '2024-01-01T10:00:00.5Z'",
        "string(timestamp('2024-01-01T10:00:00+01:00')) == '2024-01-01T10:00:00+01:00'",
        "string(1) == '1' && string(1u) == '1' && string(ip('10.0.0.1')) == '10.0.0.1'",
        "uint('1') == 1u && int('+1') == 1",
    ] {
        assert_eq!(holds(expr), Ok(true), "{expr}");
    }
    for (expr, says) in [
        (
            "bool('yes')",
            "type conversion error from 'string' to 'bool'",
        ),
        ("string(b'\\xff') == ''", "invalid UTF-8 in bytes"),
        ("timestamp(253402300800) != null", "timestamp overflow"),
        ("double('1e400') > 0.0", "out of the range of a double"),
        ("double('x') > 0.0", "\"x\" is no number"),
        ("uint('+1') == 1u", "has a sign"),
    ] {
        let err = holds(expr).unwrap_err();
        assert!(
            err.contains("failed to evaluate") && err.contains(says),
            "{expr}: {err}"
        );
    }
}
