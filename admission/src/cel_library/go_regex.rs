//! Regular expressions as Kubernetes' CEL reads them: Go's syntax (RE2), translated for the
//! `regex` crate, and each pattern compiled once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use kube_cel::cel::extractors::{Arguments, This};
use kube_cel::cel::{ExecutionError, FunctionContext, ResolveResult, Value};
use regex::{Regex, RegexBuilder};

/// The most patterns kept compiled. Policies hold a handful of constant patterns; one taken
/// from request data could make each request's differ, so past this many (or past
/// [`MAX_CACHED_REGEX_BYTES`]) a pattern is compiled for its call only, and memory stays
/// bounded.
pub(crate) const MAX_CACHED_REGEXES: usize = 256;

/// The most one pattern may compile to, in the `regex` crate's measure of its compiled
/// program (`RegexBuilder::size_limit`): 1 MiB. The crate's default, 10 MiB, let 256 cached
/// patterns built from request data hold gigabytes. RE2, which Kubernetes' CEL stands for,
/// also refuses a pattern past a memory budget (8 MiB by default); 1 MiB takes every pattern a
/// policy plausibly writes (Unicode classes such as `[\p{L}\p{N}]+` need 64 KiB, `.{1000}`
/// under 1 MiB) and refuses what only a repetition of a large class reaches (`\pL{100}`).
pub(crate) const MAX_REGEX_BYTES: usize = 1 << 20;

/// The most a pattern's lazy DFA cache may grow to (`RegexBuilder::dfa_size_limit`), where
/// the crate's default is 2 MiB: past it the search falls back to a slower engine, with the
/// same answer.
pub(crate) const REGEX_DFA_BYTES: usize = 64 << 10;

/// The most the cached patterns may hold together, each counted as the smallest power of two
/// (from [`SMALLEST_TIER`]) its program compiles within plus [`REGEX_DFA_BYTES`]: 32 MiB, a
/// quarter of the webhook's memory limit (`deploy/base/deployment.yaml`). It holds
/// [`MAX_CACHED_REGEXES`] patterns of the usual size, or 30 of the largest. Past it a
/// pattern is compiled for its call only.
pub(crate) const MAX_CACHED_REGEX_BYTES: usize = 32 << 20;

/// The first size limit a pattern is compiled within; nearly every pattern fits, compiled once
/// (`^kspy-[a-z]+$` takes under 1 KiB, Unicode classes such as `[\p{L}\p{N}]` 64 KiB), and
/// each larger limit tried doubles it, so finding a large pattern's limit costs at most about
/// twice compiling it once.
const SMALLEST_TIER: usize = 64 << 10;

/// Bytes of a compile's size limit per unit of the evaluation's budget
/// ([`super::MAX_EVALUATION_COST`]): compiling is work the budget's steps do not count, and a
/// pattern taken from request data is compiled at each call, so each attempt is charged (the
/// largest a tenth of the budget); a constant pattern, compiled once and kept, costs nothing
/// after.
const BYTES_PER_UNIT: usize = 10;

/// Compiled regular expressions by pattern, and the bytes they are counted to hold.
#[derive(Default)]
pub(crate) struct RegexCache {
    entries: HashMap<String, Arc<Regex>>,
    bytes: usize,
}

impl RegexCache {
    /// `pattern` (Go's syntax, [`go_pattern`]) compiled, from `cache` when it was compiled
    /// before; why not when it does not compile (not cached: an invalid pattern fails each
    /// time). Cached while the cache holds fewer than [`MAX_CACHED_REGEXES`] patterns and
    /// this one's bytes fit [`MAX_CACHED_REGEX_BYTES`].
    fn get(cache: &Mutex<RegexCache>, pattern: &str) -> Result<Arc<Regex>, String> {
        if let Some(re) = cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entries
            .get(pattern)
        {
            return Ok(re.clone());
        }
        // Compiled outside the lock: another thread's lookups do not wait for it.
        let (re, counted) = compile(pattern)?;
        let re = Arc::new(re);
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.entries.len() < MAX_CACHED_REGEXES
            && cache.bytes + counted <= MAX_CACHED_REGEX_BYTES
            && !cache.entries.contains_key(pattern)
        {
            cache.entries.insert(pattern.to_owned(), re.clone());
            cache.bytes += counted;
        }
        Ok(re)
    }

    /// How many patterns `cache` holds, and the bytes they are counted to hold.
    #[cfg(test)]
    fn held(cache: &Mutex<RegexCache>) -> (usize, usize) {
        let cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        (cache.entries.len(), cache.bytes)
    }
}

/// `pattern` compiled within the smallest power-of-two size limit, from [`SMALLEST_TIER`] up
/// to [`MAX_REGEX_BYTES`], that holds it, and the bytes it is counted to hold (that limit
/// plus [`REGEX_DFA_BYTES`]); why not when it does not compile or needs more. Each attempt is
/// charged to the running evaluation's budget before it is made.
fn compile(pattern: &str) -> Result<(Regex, usize), String> {
    let translated = go_pattern(pattern)?;
    let mut limit = SMALLEST_TIER;
    loop {
        super::charge(u64::try_from(limit / BYTES_PER_UNIT).unwrap_or(u64::MAX))
            .map_err(|err| err.to_string())?;
        match RegexBuilder::new(&translated)
            .size_limit(limit)
            .dfa_size_limit(REGEX_DFA_BYTES)
            .build()
        {
            Ok(re) => return Ok((re, limit + REGEX_DFA_BYTES)),
            Err(regex::Error::CompiledTooBig(_)) if limit < MAX_REGEX_BYTES => limit *= 2,
            Err(regex::Error::CompiledTooBig(_)) => {
                return Err(format!(
                    "the pattern compiles to more than {} KiB, the most kspy holds for one \
                     pattern (as RE2 refuses a pattern past its memory budget): repetitions of \
                     large classes (`\\pL{{100}}`, `(.{{1000}}){{10}}`) are the usual cause; \
                     repeat less, or use a smaller class",
                    MAX_REGEX_BYTES >> 10
                ));
            }
            // The error as the pattern was written, where that fails too.
            Err(err) => return Err(Regex::new(pattern).err().unwrap_or(err).to_string()),
        }
    }
}

/// The patterns compiled for every judging thread.
pub(crate) struct Regexes;

impl Regexes {
    /// `pattern` compiled, from the process's cache ([`RegexCache`]) when it was compiled
    /// before.
    pub(crate) fn get(pattern: &str) -> Result<Arc<Regex>, String> {
        static CACHE: OnceLock<Mutex<RegexCache>> = OnceLock::new();
        RegexCache::get(CACHE.get_or_init(Mutex::default), pattern)
    }
}

/// What Go's `\d` matches (`[0-9]`): ASCII only, where the `regex` crate's `\d` is every
/// Unicode digit.
const GO_DIGIT: &str = "0-9";
/// What Go's `\w` matches: ASCII letters, digits and `_`.
const GO_WORD: &str = "0-9A-Za-z_";
/// What Go's `\s` matches: ASCII tab, line feed, form feed, carriage return and space.
const GO_SPACE: &str = r"\t\n\f\r ";

/// The POSIX classes Go knows (`[[:alpha:]]`, negated `[[:^alpha:]]`), all of which the
/// `regex` crate reads alike (ASCII).
const GO_POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// `pattern`, written in Go's regular expression syntax (RE2, which Kubernetes' CEL compiles
/// `matches`, `find` and `findAll` patterns with), as the `regex` crate reads it to match the
/// same strings; an error for what Go refuses and the `regex` crate would read otherwise.
/// The two syntaxes agree but for:
/// - `\d`, `\w`, `\s` and `\b` (and `\D`, `\W`, `\S`, `\B`) are ASCII in Go and Unicode in
///   the `regex` crate: `'١٢٣'.matches('^\\d+$')` and `'é'.matches('^\\w$')` are `false` in
///   Kubernetes, so a guardrail allowing only `^[\\w.-]+$` lets no other script through;
/// - in a character class Go reads `[`, `&&`, `--` and `~~` as the characters, the `regex`
///   crate as a nested class, an intersection, a difference and a symmetric difference;
/// - `\<` and `\>` are `<` and `>` in Go, word boundaries in the `regex` crate;
/// - a `{` that starts no repetition (`a{,3}`, `{x}`, `a{01}`) is a `{` in Go, an error in the
///   `regex` crate; a repetition count over 1000 an error in Go;
/// - `\Q…\E` (literal text), `\p{^Greek}` and octal escapes (`\012`) are Go's alone;
/// - a POSIX class Go does not know (`[[:foo:]]`) is an error in Go, a nested class of its
///   characters in the `regex` crate;
/// - the flags `x`, `u` and `R` are the `regex` crate's alone (Go refuses them).
///
/// What neither takes (look-around, back-references) the `regex` crate refuses as Go does.
pub(crate) fn go_pattern(pattern: &str) -> Result<String, String> {
    let mut out = String::with_capacity(pattern.len() + 16);
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        rest = &rest[c.len_utf8()..];
        rest = match c {
            '\\' => go_escape(rest, &mut out)?,
            '[' => go_class(rest, &mut out)?,
            '{' => go_brace(rest, &mut out)?,
            '(' if rest.starts_with('?') => go_group(rest, &mut out)?,
            c => {
                out.push(c);
                rest
            }
        };
    }
    Ok(out)
}

/// Go's Perl class `\c` (`d`, `w`, `s`, negated in upper case) as a `regex` crate class.
fn go_perl_class(c: char) -> Option<String> {
    let (set, negated) = match c {
        'd' => (GO_DIGIT, false),
        'D' => (GO_DIGIT, true),
        'w' => (GO_WORD, false),
        'W' => (GO_WORD, true),
        's' => (GO_SPACE, false),
        'S' => (GO_SPACE, true),
        _ => return None,
    };
    Some(format!("[{}{set}]", if negated { "^" } else { "" }))
}

/// Copies a Unicode class's name after `\p` or `\P` (`L`, `{Greek}`, Go's `{^Greek}` as the
/// negated class) from `rest`; what follows it.
fn go_unicode_class<'p>(p: char, rest: &'p str, out: &mut String) -> &'p str {
    if let Some(braced) = rest.strip_prefix('{')
        && let Some(end) = braced.find('}')
    {
        let name = &braced[..end];
        let (p, name) = match name.strip_prefix('^') {
            Some(name) => (if p == 'p' { 'P' } else { 'p' }, name),
            None => (p, name),
        };
        out.push('\\');
        out.push(p);
        out.push('{');
        out.push_str(name);
        out.push('}');
        return &braced[end + 1..];
    }
    out.push('\\');
    out.push(p);
    rest
}

/// Go's octal escape after a `\`: `\0` and up to two more octal digits, or `\1`…`\7` followed
/// by one or two more (a lone `\1` is a back-reference, which Go refuses, and so does the
/// `regex` crate); its value written as the `regex` crate reads it (`\x{A}`), and what follows
/// it. `c` is the character after the `\`, `after` what follows `c`.
fn go_octal(c: char, after: &str) -> Option<(String, &str)> {
    let octal = |s: &str| s.bytes().next().filter(|b| (b'0'..=b'7').contains(b));
    let first = c.to_digit(8)?;
    if first != 0 && octal(after).is_none() {
        return None;
    }
    let mut value = first;
    let mut rest = after;
    for _ in 0..2 {
        let Some(d) = octal(rest) else { break };
        value = value * 8 + u32::from(d - b'0');
        rest = &rest[1..];
    }
    Some((format!("\\x{{{value:X}}}"), rest))
}

/// An escape outside a class: `rest` follows the `\`; what follows the escape.
fn go_escape<'p>(rest: &'p str, out: &mut String) -> Result<&'p str, String> {
    let Some(c) = rest.chars().next() else {
        return Err("the pattern ends in a lone \\ (trailing backslash)".to_owned());
    };
    let after = &rest[c.len_utf8()..];
    if let Some((escape, after)) = go_octal(c, after) {
        out.push_str(&escape);
        return Ok(after);
    }
    if let Some(class) = go_perl_class(c) {
        out.push_str(&class);
        return Ok(after);
    }
    match c {
        // ASCII word boundaries, as Go's.
        'b' => out.push_str(r"(?-u:\b)"),
        'B' => out.push_str(r"(?-u:\B)"),
        // Escaped punctuation, the characters themselves in Go.
        '<' | '>' => out.push(c),
        // Literal text up to `\E` or the end.
        'Q' => {
            let (text, after) = match after.find(r"\E") {
                Some(end) => (&after[..end], &after[end + 2..]),
                None => (after, ""),
            };
            out.push_str(&regex::escape(text));
            return Ok(after);
        }
        'p' | 'P' => return Ok(go_unicode_class(c, after, out)),
        // `\x{10FFFF}` whole, so its braces are not read as a repetition.
        'x' if after.starts_with('{') => {
            let end = after.find('}').map_or(after.len(), |e| e + 1);
            out.push_str(r"\x");
            out.push_str(&after[..end]);
            return Ok(&after[end..]);
        }
        c => {
            out.push('\\');
            out.push(c);
        }
    }
    Ok(after)
}

/// A character class: `rest` follows its `[`; what follows its `]`. Each item is read as Go
/// reads it (a POSIX class, a Perl or Unicode class, a character or a range) and written so
/// the `regex` crate reads the same.
fn go_class<'p>(rest: &'p str, out: &mut String) -> Result<&'p str, String> {
    let missing = || "a character class has no closing ] (missing closing ])".to_owned();
    out.push('[');
    let mut rest = rest;
    if let Some(r) = rest.strip_prefix('^') {
        out.push('^');
        rest = r;
    }
    let mut first = true;
    loop {
        let Some(c) = rest.chars().next() else {
            return Err(missing());
        };
        // A `]` first is a `]`, as in Go.
        if c == ']' && !first {
            out.push(']');
            return Ok(&rest[1..]);
        }
        first = false;
        if rest.starts_with("[:")
            && let Some(end) = rest[2..].find(":]")
        {
            // `[:alpha:]`, ASCII in both. Go reads up to the next `:]` wherever it is, and
            // refuses a name it does not know, where the `regex` crate would read `[:foo:]`
            // as a nested class of `:`, `f` and `o`.
            let named = &rest[..end + 4];
            let name = &named[2..named.len() - 2];
            if !GO_POSIX_CLASSES.contains(&name.strip_prefix('^').unwrap_or(name)) {
                return Err(format!(
                    "invalid character class range {named}: Go's regular expressions, which \
                     Kubernetes' CEL uses, know the classes [:{}:]",
                    GO_POSIX_CLASSES.join(":], [:")
                ));
            }
            out.push_str(named);
            rest = &rest[end + 4..];
            continue;
        }
        if let Some(escaped) = rest.strip_prefix('\\')
            && let Some(e) = escaped.chars().next()
        {
            let after = &escaped[e.len_utf8()..];
            if let Some(class) = go_perl_class(e) {
                // A nested class, which the `regex` crate unites with the rest.
                out.push_str(&class);
                rest = after;
                continue;
            }
            if e == 'p' || e == 'P' {
                rest = go_unicode_class(e, after, out);
                continue;
            }
        }
        let lo;
        (lo, rest) = go_class_char(rest).ok_or_else(missing)?;
        if let Some(r) = rest.strip_prefix('-')
            && !r.is_empty()
            && !r.starts_with(']')
        {
            let hi;
            (hi, rest) = go_class_char(r).ok_or_else(missing)?;
            out.push_str(&lo);
            out.push('-');
            out.push_str(&hi);
        } else {
            out.push_str(&lo);
        }
    }
}

/// One character of a class (escaped or not) as the `regex` crate reads it in a class, and
/// what follows it; `None` at the end of the pattern.
fn go_class_char(rest: &str) -> Option<(String, &str)> {
    let c = rest.chars().next()?;
    let after = &rest[c.len_utf8()..];
    if c != '\\' {
        return Some((class_literal(c), after));
    }
    let e = after.chars().next()?;
    let after_e = &after[e.len_utf8()..];
    if let Some(octal) = go_octal(e, after_e) {
        return Some(octal);
    }
    if e.is_ascii_punctuation() {
        return Some((class_literal(e), after_e));
    }
    if e == 'x' {
        // `\x{10FFFF}` or `\x41`, whole.
        let len = match after_e.strip_prefix('{') {
            Some(braced) => braced.find('}').map_or(after_e.len(), |end| end + 2),
            None => after_e
                .bytes()
                .take(2)
                .take_while(u8::is_ascii_hexdigit)
                .count(),
        };
        return Some((format!(r"\x{}", &after_e[..len]), &after_e[len..]));
    }
    // `\n`, `\t`, `\x41`, …: the same in both (what Go refuses, the `regex` crate does too).
    Some((format!("\\{e}"), after_e))
}

/// `c` written so the `regex` crate reads it as itself in a class.
fn class_literal(c: char) -> String {
    match c {
        '\\' | '[' | ']' | '^' | '-' | '&' | '~' => format!("\\{c}"),
        c => c.to_string(),
    }
}

/// The most a Go repetition count may be.
const GO_MAX_REPEAT: u64 = 1000;

/// A `{` outside a class: `rest` follows it. A repetition when Go reads one (`{n}`, `{n,}`,
/// `{n,m}`, counts without leading zeros), refused over [`GO_MAX_REPEAT`] as Go refuses it;
/// else the character `{`, as in Go.
fn go_brace<'p>(rest: &'p str, out: &mut String) -> Result<&'p str, String> {
    /// The number at the start of `s` and its length in digits, `None` where Go reads none.
    fn count(s: &str) -> Option<(u64, usize)> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || (digits > 1 && s.starts_with('0')) {
            return None;
        }
        let n = s[..digits].bytes().fold(0u64, |n, d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        Some((n, digits))
    }
    let repetition = count(rest).and_then(|(min, at)| {
        let after_min = &rest[at..];
        if let Some(r) = after_min.strip_prefix('}') {
            return Some((min, Some(min), r, at + 1));
        }
        let r = after_min.strip_prefix(',')?;
        if let Some(r) = r.strip_prefix('}') {
            return Some((min, None, r, at + 2));
        }
        let (max, digits) = count(r)?;
        let r = r[digits..].strip_prefix('}')?;
        Some((min, Some(max), r, at + 1 + digits + 1))
    });
    let Some((min, max, after, len)) = repetition else {
        out.push_str(r"\{");
        return Ok(rest);
    };
    if min > GO_MAX_REPEAT || max.is_some_and(|m| m > GO_MAX_REPEAT || m < min) {
        return Err(format!(
            "invalid repeat count {{{}: Go's regular expressions, which Kubernetes' CEL uses, \
             count from 0 to {GO_MAX_REPEAT}, the least first",
            &rest[..len]
        ));
    }
    out.push('{');
    out.push_str(&rest[..len]);
    Ok(after)
}

/// A group opened with `(?`: `rest` starts at the `?`. Flags other than Go's (`i`, `m`, `s`,
/// `U`) are refused: the `regex` crate's `x` (spaces ignored), `u` and `R` mean nothing in Go,
/// which refuses them.
fn go_group<'p>(rest: &'p str, out: &mut String) -> Result<&'p str, String> {
    out.push('(');
    let after = &rest[1..];
    let named = after.starts_with("P<")
        || (after.starts_with('<') && !after.starts_with("<=") && !after.starts_with("<!"));
    if !named {
        let end = after.find([':', ')']).unwrap_or(after.len());
        let flags = &after[..end];
        if flags.chars().all(|f| f.is_ascii_alphabetic() || f == '-')
            && let Some(bad) = flags
                .chars()
                .find(|f| f.is_ascii_alphabetic() && !"imsU".contains(*f))
        {
            return Err(format!(
                "unknown flag {bad} in (?{flags}: Go's regular expressions, which Kubernetes' \
                 CEL uses, take the flags i, m, s and U"
            ));
        }
    }
    out.push('?');
    Ok(after)
}

/// `<string>.matches(<string>)`: cel's, with the pattern compiled once, and the string read
/// charged ([`super::charge_read`]).
pub(super) fn matches(
    ftx: &FunctionContext,
    This(this): This<Arc<String>>,
    pattern: Arc<String>,
) -> Result<bool, ExecutionError> {
    super::charge_read(this.len())?;
    match Regexes::get(&pattern) {
        Ok(re) => Ok(re.is_match(&this)),
        Err(err) => Err(ftx.error(format!("'{pattern}' not a valid regex:\n{err}"))),
    }
}

/// `<string>.find(<string>)`: kube-cel's, with the pattern compiled once, and the string read
/// charged ([`super::charge_read`]). The first match, or `""`.
pub(super) fn find(This(this): This<Arc<String>>, pattern: Arc<String>) -> ResolveResult {
    super::charge_read(this.len())?;
    let re = Regexes::get(&pattern)
        .map_err(|e| ExecutionError::function_error("find", format!("invalid regex: {e}")))?;
    let found = re
        .find(&this)
        .map(|m| m.as_str().to_owned())
        .unwrap_or_default();
    Ok(Value::String(Arc::new(found)))
}

/// `<string>.findAll(<string>[, <int>])`: kube-cel's, with the pattern compiled once. Every
/// match, or the first `n` of them; a negative `n` takes them all. The string read
/// ([`super::charge_read`]) and what it builds are charged to the evaluation's budget, and it
/// builds no more than `lists.range` may.
pub(super) fn find_all(This(this): This<Arc<String>>, Arguments(args): Arguments) -> ResolveResult {
    super::charge_read(this.len())?;
    let Some(Value::String(pattern)) = args.first() else {
        return Err(ExecutionError::function_error(
            "findAll",
            "expected string pattern",
        ));
    };
    let re = Regexes::get(pattern)
        .map_err(|e| ExecutionError::function_error("findAll", format!("invalid regex: {e}")))?;
    let limit = match args.get(1) {
        Some(Value::Int(n)) => usize::try_from(*n).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    // Counted first, the list built only once it is charged: a match of `/` in 300 KB of
    // slashes is 300,000 strings.
    super::charge_list("findAll", re.find_iter(&this).take(limit).count())?;
    let found = re
        .find_iter(&this)
        .take(limit)
        .map(|m| Value::String(Arc::new(m.as_str().to_owned())))
        .collect();
    Ok(Value::List(Arc::new(found)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_is_compiled_once_and_an_invalid_one_each_time() {
        let a = Regexes::get("^kspy-[a-z]+$").expect("valid");
        let b = Regexes::get("^kspy-[a-z]+$").expect("valid");
        assert!(Arc::ptr_eq(&a, &b), "the second lookup compiled again");
        assert!(a.is_match("kspy-cache"));
        let err = Regexes::get("(unclosed").expect_err("invalid");
        assert!(err.to_string().contains("unclosed"), "{err}");
    }

    /// The cache holds at most [`MAX_CACHED_REGEX_BYTES`] as it counts them, whatever the
    /// patterns: each is counted as the size limit it compiled within, and past the total a
    /// pattern is compiled for its call only. Before, up to 256 patterns of up to 10 MiB each
    /// (the `regex` crate's default limit) were kept.
    #[test]
    fn the_cache_is_bounded_in_bytes() {
        // `.{N}` for N near 1000 needs more than 512 KiB and at most 1 MiB; each N makes
        // another pattern.
        let large = |n: usize| format!(".{{{n}}}");
        let (re, counted) = compile(&large(1000)).expect("compiles within 1 MiB");
        assert!(re.is_match(&"x".repeat(1000)));
        assert_eq!(counted, MAX_REGEX_BYTES + REGEX_DFA_BYTES);
        let cache = Mutex::default();
        for n in 960..1000 {
            RegexCache::get(&cache, &large(n)).expect("compiles");
        }
        let (held, bytes) = RegexCache::held(&cache);
        assert!(bytes <= MAX_CACHED_REGEX_BYTES, "{bytes} bytes held");
        assert!(held < 40, "{held} patterns held");
        assert!(
            MAX_CACHED_REGEX_BYTES - bytes < counted,
            "room for another large pattern, yet not cached: {bytes} bytes held"
        );
        // Small patterns are counted small, and fill the cache up to its count.
        let cache = Mutex::default();
        for n in 0..MAX_CACHED_REGEXES + 10 {
            RegexCache::get(&cache, &format!("^kspy-{n}$")).expect("compiles");
        }
        let (held, bytes) = RegexCache::held(&cache);
        assert_eq!(held, MAX_CACHED_REGEXES);
        assert_eq!(
            bytes,
            MAX_CACHED_REGEXES * (SMALLEST_TIER + REGEX_DFA_BYTES)
        );
    }

    /// A pattern past [`MAX_REGEX_BYTES`] is refused, saying so, where the `regex` crate's
    /// default limit (10 MiB) takes it.
    #[test]
    fn a_pattern_past_the_size_limit_is_refused() {
        let err = compile(r"\pL{100}").err().unwrap_or_default();
        assert!(err.contains("compiles to more than 1024 KiB"), "{err}");
        assert!(Regex::new(r"\pL{100}").is_ok());
    }
}
