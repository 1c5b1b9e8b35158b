//! Hostile CEL: the shipped expressions damaged (truncated, tokens inserted or removed,
//! parentheses unbalanced), nested deep or chained long, and expressions that stress the
//! parser, the checks the loader runs and every library function at evaluation (huge and
//! overflowing literals, unicode and bad escapes, macros of the wrong arity, `has()` on what
//! is no field, division by zero, out-of-range indexes, odd arguments).

use super::rng::Rng;

/// Expressions that stress the parser, the loader's checks or evaluation. Each is meant as a
/// whole expression; [`hostile_expression`] also splices them into others.
pub const HOSTILE: &[&str] = &[
    // Literals at and past their limits.
    "9223372036854775807 + 1 > 0",
    "-9223372036854775808 - 1 < 0",
    "9223372036854775808 > 0",
    "-9223372036854775809 < 0",
    "18446744073709551615u + 1u > 0u",
    "18446744073709551616u > 0u",
    "0xFFFFFFFFFFFFFFFFF > 0",
    "99999999999999999999999999999 > 0",
    "1e309 > 0.0",
    "-1e309 < 0.0",
    "1e-400 == 0.0",
    "-9223372036854775808 / -1 == 0",
    "-9223372036854775808 % -1 == 0",
    "1 / 0 == 0",
    "1 % 0 == 0",
    "1u / 0u == 0u",
    "1.0 / 0.0 > 0.0",
    "int(1e300) > 0",
    "int(-1e300) < 0",
    "uint(-1) > 0u",
    "int(18446744073709551615u) > 0",
    "int('x') == 0",
    "int('9223372036854775808') > 0",
    "double('x') > 0.0",
    "uint('-1') > 0u",
    "-(-9223372036854775808) > 0",
    "9223372036854775807 * 2 > 0",
    "-9223372036854775807 - 2 < 0",
    // Strings, bytes and escapes.
    "'\\uD800' == ''",
    "'\\U0010FFFF' != ''",
    "'\\U00110000' != ''",
    "'\\xff' != ''",
    "b'\\xff' != b''",
    "string(b'\\xff') != ''",
    "'\\777' != ''",
    "'\\q' != ''",
    "'''a\nb''' != ''",
    "r'\\d' != ''",
    "'ñ' + '🐳' != ''",
    "'\u{202e}' == '\u{202e}'",
    "size('🐳') == 1",
    "'abc'.substring(5) == ''",
    "'abc'.substring(2, 1) == ''",
    "'abc'.substring(-1) == ''",
    "'abc'.substring(0, 99) == ''",
    "'abc'.charAt(10) == ''",
    "'abc'.charAt(-1) == ''",
    "'🐳x'.charAt(1) == 'x'",
    "'🐳x'.substring(1, 2) == 'x'",
    "'abc'.indexOf('c', 99) == 0",
    "'abc'.indexOf('', -1) == 0",
    "'abc'.lastIndexOf('', 10) == 0",
    "'abc'.lastIndexOf('a', -5) == 0",
    "'a'.split('').size() > 0",
    "'a'.split('a', -1).size() > 0",
    "'a,b'.split(',', 0).size() == 0",
    "'abc'.replace('', 'x') != ''",
    "'abc'.replace('a', 'b', -2) != ''",
    "'x'.repeat(3) == 'xxx'",
    "'%s'.format([]) == ''",
    "'%d'.format(['a']) == ''",
    "'%.999999f'.format([1.0]) != ''",
    "'%s %s'.format([1]) != ''",
    "'%z'.format([1]) != ''",
    "'%'.format([]) != ''",
    "'%e'.format([1e308]) != ''",
    "'%x'.format([-1]) != ''",
    "'%b'.format([9223372036854775807]) != ''",
    "'%o'.format(['a']) != ''",
    "'%.3f'.format([1.0/0.0]) != ''",
    "'a'.matches('(') ",
    "'a'.matches('a{99999}{99999}')",
    "'a'.matches('\\\\p{Nope}')",
    "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!'.matches('(a+)+$')",
    "'x'.find('(') == ''",
    "'aaa'.findAll('a', -5).size() > 0",
    "'aaa'.findAll('a', 0).size() == 0",
    "'abc'.lowerAscii().upperAscii() == 'ABC'",
    "'  '.trim() == ''",
    "[' a '].join() != ''",
    "['a', 1].join(',') != ''",
    "[].join('') == ''",
    // Lists and maps.
    "[1, 2][5] == 1",
    "[1][-1] == 1",
    "[1][1u] == 1",
    "[1][1.5] == 1",
    "{'a': 1}['b'] == 1",
    "{'a': 1, 'a': 2}['a'] == 1",
    "{1: 'a', 1u: 'b'}[1] == 'a'",
    "{[1]: 1}.size() == 1",
    "[].min() == 0",
    "[].max() == 0",
    "['a', 1].sum() == 0",
    "[1, 'a'].isSorted()",
    "[1.0, 1].sum() > 0.0",
    "[9223372036854775807, 1].sum() > 0",
    "[1, 2].indexOf('a') == -1",
    "[[1], [1]].indexOf([1]) == 0",
    "math.greatest() == 0",
    "math.least([]) == 0",
    "math.greatest(1, 'a') == 1",
    "math.least(1.0, 1u, -1) == -1",
    "sets.contains([1], ['a'])",
    "sets.intersects([], [])",
    "size(1) == 0",
    "size(null) == 0",
    "null.a == 1",
    "1.a == 1",
    "'a'.b == 1",
    // Macros, right and wrong.
    "[1].all(x)",
    "[1].all(x, y, z)",
    "[1].all(1, true)",
    "[1].exists()",
    "[1].exists_one(x, x, x)",
    "[1].map(x)",
    "[1].map(x, y, z, w) == []",
    "[1].filter(1, x) == []",
    "[1].map(x, x > 0, x) == [1]",
    "[1].all(x, [2].all(x, x > 1))",
    "{'a': 1}.all(k, k == 'a')",
    "{'a': 1}.exists(k, v, k == 'a')",
    "1.all(x, x)",
    "'abc'.exists(c, c == 'a')",
    "null.all(x, x)",
    "object.all(x, x)",
    "container.exists(k, k == 'name')",
    "asks.capabilities.exists_one(c, c == 'SYS_ADMIN')",
    "asks.volumes.all(v, v.readOnly)",
    "asks.hostPaths.map(p, p.hostPath).all(p, p.startsWith('/'))",
    "request.userInfo.groups.all(g, g.matches('^[a-z]'))",
    "has()",
    "has(1)",
    "has(x)",
    "has(object)",
    "has(object.a.b())",
    "has(object['a'])",
    "has(object.metadata.labels.a)",
    "has(request.userInfo.groups[0])",
    "has(variables.x)",
    "has(has(object.a))",
    "has(object.spec.containers.all(c, true))",
    "has({'a': 1}.a)",
    "has([1].a)",
    "has(null.a)",
    // Variables in odd shapes.
    "object == null",
    "object.spec.containers[99].name == ''",
    "object.spec.containers[0].securityContext.privileged",
    "oldObject.spec.ephemeralContainers.size() >= 0",
    "namespaceObject.metadata.labels['team'] == 'x'",
    "target.name == 'app'",
    "asks.image.startsWith('registry.example.com/')",
    "asks.pod.hostPID",
    "container.securityContext.capabilities.add.exists(c, c == 'SYS_ADMIN')",
    "variables.nope",
    "request.uid.size() > 0",
    "request.options == null",
    "request.dryRun == false",
    // Kubernetes libraries with odd arguments.
    "quantity('1Ei').isGreaterThan(quantity('x'))",
    "quantity('99999999999999999999999999999999999Ei').isGreaterThan(quantity('1'))",
    "quantity('1').add(9223372036854775807).add(9223372036854775807).isInteger()",
    "quantity('1e999').asInteger() > 0",
    "quantity('-1Ei').sub(quantity('1Ei')).asApproximateFloat() < 0.0",
    "ip('::ffff:1.2.3.4').family() == 6",
    "ip('1.2.3.4.5').family() == 4",
    "cidr('1.2.3.4/99').containsIP(ip('1.2.3.4'))",
    "cidr('::/0').containsIP('1.2.3.4')",
    "cidr('1.2.3.0/24').masked().prefixLength() == 24",
    "isIP('x') || isCIDR('y')",
    "url('%').getHost() == ''",
    "url('http://[::1').getHost() == ''",
    "url('https://a/b?c=%zz').getQuery().size() == 0",
    "semver('1.2.3-').isGreaterThan(semver('1.0.0'))",
    "semver('99999999999999999999.0.0').major() > 0",
    "isSemver('1.2.3', true)",
    "base64.encode(b'x') == ''",
    "base64.decode('!!!') == b''",
    "duration('1000000000000h') > duration('1s')",
    "duration('-292471208677y') < duration('0s')",
    "timestamp('9999-99-99T00:00:00Z') > timestamp(0)",
    "timestamp(253402300800) > timestamp(0)",
    "timestamp('1970-01-01T00:00:00Z') + duration('9223372036s') > timestamp(0)",
    "timestamp('0001-01-01T00:00:00Z') - duration('1s') < timestamp(0)",
    "duration('9223372036s') + duration('9223372036s') > duration('0s')",
    "timestamp('2020-01-01T00:00:00Z').getHours('Nope/Zone') == 0",
    "format.dns1123Label().validate('x').hasValue()",
    "authorizer.group('').resource('pods').check('get').allowed()",
    "optional.of(1).hasValue()",
    "object.?metadata.orValue(null) != null",
    "dyn(1) == 1",
    "type(1) == int",
    "1 in 1",
    "'a' in 'abc'",
    "1 in {'a': 1}",
    "[1] in [[1]]",
    "{} == {}",
    "[] == {}",
    "null == null && true",
    "!true || !!!!!!!!!!!!!!!!!!false",
    "-------------1 == 1",
    "true ? 1 : 'a'",
    "(true)",
    "",
    " ",
    "(",
    ")",
    "((((",
    "))))",
    "'",
    "\"",
    "'''",
    "/*",
    "// comment only",
    "true // trailing",
    "\u{0}",
    "true\u{0}",
    "ñ == 1",
    "𝕒 == 1",
    "a.b.c.d.e.f.g.h == 1",
];

/// Tokens inserted into expressions.
const TOKENS: &[&str] = &[
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ".",
    ",",
    "?",
    ":",
    "!",
    "-",
    "&&",
    "||",
    "==",
    " in ",
    "'",
    "\"",
    "\\",
    "has(",
    ".all(x, ",
    ".exists(x, ",
    ".map(x, ",
    "size(",
    "9223372036854775808",
    "1/0",
    "\u{0}",
    "ñ",
    "🐳",
    "\n",
    "?.",
    ".?",
    "@",
    "#",
    "$",
    "`",
];

/// A hostile expression: one of [`HOSTILE`], or `base` (a shipped expression) damaged,
/// wrapped, nested deep or chained long. Returns it and what was done.
pub fn hostile_expression(rng: &mut Rng, base: &str) -> (String, String) {
    let chars: Vec<char> = base.chars().collect();
    let at = |rng: &mut Rng| rng.below(chars.len() + 1);
    match rng.below(12) {
        0..=2 => {
            let e = (*rng.pick(HOSTILE)).to_owned();
            (e.clone(), format!("hostile {e:?}"))
        }
        3 => {
            let cut = at(rng);
            (chars[..cut].iter().collect(), format!("truncated at {cut}"))
        }
        4 => {
            let i = at(rng);
            let token = *rng.pick(TOKENS);
            let mut e: String = chars[..i].iter().collect();
            e.push_str(token);
            e.extend(&chars[i..]);
            (e, format!("{token:?} inserted at {i}"))
        }
        5 if !chars.is_empty() => {
            let i = rng.below(chars.len());
            let mut c = chars.clone();
            c.remove(i);
            (c.into_iter().collect(), format!("character {i} removed"))
        }
        6 => {
            let n = rng.size(100_000);
            let (open, close) = *rng.pick(&[("(", ")"), ("!(", ")"), ("[", "][0]"), ("-(", ")")]);
            let e = format!("{}{base}{}", open.repeat(n), close.repeat(n));
            (e, format!("nested {n} deep in {open}…{close}"))
        }
        7 => {
            let n = rng.size(10_000);
            let op = *rng.pick(&[" && ", " || ", " + ", " == ", ".", "[0]"]);
            let unit = *rng.pick(&["true", "1", "'a'", "object", "x", "(1)"]);
            let mut e = unit.to_owned();
            for _ in 0..n {
                e.push_str(op);
                e.push_str(unit);
            }
            (e, format!("{n} times {op:?} {unit}"))
        }
        8 => {
            let other = *rng.pick(HOSTILE);
            let glue = *rng.pick(&[" && ", " || ", " ? true : ", " == "]);
            (
                format!("({base}){glue}({other})"),
                format!("joined with {glue:?} to {other:?}"),
            )
        }
        9 => {
            // A huge literal in place of a number, or a long string.
            let huge = match rng.below(3) {
                0 => "9".repeat(rng.size(4000)),
                1 => format!("'{}'", "a".repeat(rng.size(8000))),
                _ => format!("[{}]", vec!["1"; rng.size(3000)].join(",")),
            };
            let i = at(rng);
            let mut e: String = chars[..i].iter().collect();
            e.push_str(&huge);
            e.extend(&chars[i..]);
            (
                e,
                format!("a literal of {} bytes inserted at {i}", huge.len()),
            )
        }
        10 => {
            let span_at = at(rng);
            let end = (span_at + rng.size(40)).min(chars.len());
            let mut e: String = chars[..end].iter().collect();
            e.extend(&chars[span_at..]);
            (e, format!("characters {span_at}..{end} repeated"))
        }
        _ => {
            // An identifier swapped for another variable or a nonsense name.
            let variables = kspy_admission::cel::VARIABLES;
            let names: Vec<&str> = variables
                .iter()
                .copied()
                .chain(["self", "params", "x", "ñ"])
                .collect();
            let from = *rng.pick(variables);
            let to = *rng.pick(&names);
            (base.replace(from, to), format!("{from} renamed {to}"))
        }
    }
}

/// Every function the engine's CEL environment documents (the standard library and the
/// Kubernetes libraries), as called on a receiver or with a namespace: the engine's own list.
pub use kspy_admission::cel::FUNCTION_NAMES as FUNCTIONS;

/// Values of every CEL type, at their edges.
pub const VALUES: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "9223372036854775807",
    "-9223372036854775808",
    "0u",
    "1u",
    "18446744073709551615u",
    "0.0",
    "-0.0",
    "1.5",
    "-1.5",
    "1e308",
    "-1e308",
    "1e-320",
    "double('NaN')",
    "double('Infinity')",
    "double('-Infinity')",
    "''",
    "'a'",
    "'abc'",
    "'a,b,c'",
    "'🐳é'",
    "'%s'",
    "'%d %s %f %x %o %b %e %c'",
    "'%'",
    "'%.9999f'",
    "'('",
    "'.*'",
    "'1'",
    "'-1'",
    "'1.5'",
    "'1Ei'",
    "'1.2.3'",
    "'1.2.3.4'",
    "'::1'",
    "'1.2.3.0/24'",
    "'::/0'",
    "'http://a:99999/b?c=d#e'",
    "'%zz'",
    "'1s'",
    "'-1h'",
    "'9999999999h'",
    "'2024-02-30T00:00:00Z'",
    "b''",
    "b'\\xff'",
    "b'abc'",
    "true",
    "false",
    "null",
    "[]",
    "[1]",
    "[1, 2, 3]",
    "[3, 1, 2]",
    "['a', 'b']",
    "['a', 1]",
    "[[1], [2]]",
    "[1.5, 1]",
    "[9223372036854775807, 1]",
    "[null]",
    "{}",
    "{'a': 1}",
    "{1: 'a'}",
    "duration('1s')",
    "duration('-9223372036s')",
    "duration('9223372036s')",
    "timestamp(0)",
    "timestamp('0001-01-01T00:00:00Z')",
    "timestamp('9999-12-31T23:59:59Z')",
    "quantity('1')",
    "quantity('1Ei')",
    "quantity('-1Ei')",
    "quantity('0.000001')",
    "ip('1.2.3.4')",
    "ip('::ffff:1.2.3.4')",
    "cidr('1.2.3.0/24')",
    "cidr('::/0')",
    "url('http://a/b')",
    "semver('1.0.0')",
    "semver('0.0.0-a.b')",
    "optional.of(1)",
    "optional.none()",
    "lists.range(3)",
];

/// A call of a registered function with random arguments of every type: `f(a, …)`,
/// `r.f(a, …)`, or the namespaced form, with zero to three arguments.
pub fn random_call(rng: &mut Rng) -> String {
    let f = *rng.pick(FUNCTIONS);
    let args: Vec<&str> = (0..rng.below(4)).map(|_| *rng.pick(VALUES)).collect();
    let args = args.join(", ");
    if f.contains('.') || rng.one_in(2) {
        format!("{f}({args})")
    } else {
        format!("{}.{f}({args})", rng.pick(VALUES))
    }
}
