//! Glob patterns for namespaces, users, groups and images.
//!
//! `*` and `?` never cross `/`; `**` does, except in user and group patterns
//! ([`NamePattern::identity`]), where `/` is an ordinary character. Image patterns are normalized like image references
//! (see [`ImagePattern`]) so that a policy's `busybox:*` and a request's `docker.io/library/busybox:1`
//! meet on the same spelling.

use globset::{GlobBuilder, GlobMatcher};

use crate::image::{DEFAULT_REGISTRY, ImageRef, is_registry};

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as written (its first 80 characters and `…` when longer).
    pub pattern: String,
    /// What is wrong with it.
    pub reason: String,
}

/// A compiled glob over names (namespaces, users, groups, service accounts).
#[derive(Debug, Clone)]
pub struct NamePattern {
    source: String,
    matcher: Glob,
}

impl NamePattern {
    /// Compiles a pattern whose `*` and `?` stay within one `/`-separated segment (namespaces,
    /// `NAMESPACE/NAME` service accounts); empty patterns and white space are refused.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        Ok(NamePattern {
            source: pattern.to_owned(),
            matcher: compile(pattern)?,
        })
    }

    /// Compiles a user or group pattern, in which `/` is an ordinary character that `*` and
    /// `?` match too: a user or group name has no segments, yet may hold `/` (an OIDC user
    /// `https://issuer.example.com#1234`, a Keycloak group `/platform/sre`). Read as a
    /// separator, `users: ['*']` on a guardrail skipped every such user, in silence.
    pub fn identity(pattern: &str) -> Result<Self, PatternError> {
        Ok(NamePattern {
            source: pattern.to_owned(),
            matcher: compile_with(pattern, false)?,
        })
    }

    /// True when `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        self.matcher.is_match(name)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

/// A compiled image pattern.
///
/// The pattern is normalized like a reference: a first segment that is not a host gets
/// `docker.io/` (and a lone name `docker.io/library/`). A pattern that names no tag or digest
/// matches every tag and digest of the names it matches; otherwise it is matched against the
/// whole normalized reference `registry/repository[:tag][@digest]`, and only against one that
/// has what it names: a pattern with a tag never matches a reference pinned by digest (which
/// has no tag), nor one with a digest a reference by tag. A pattern whose first
/// segment is only wildcards (`**`, `*/*`) is taken as written. Patterns that could never match
/// a normalized reference (`*` alone, regex syntax, upper case, a tag beside a digest,
/// `docker.io/NAME`) are refused with what to write instead.
#[derive(Debug, Clone)]
pub struct ImagePattern {
    source: String,
    normalized: String,
    shape: Shape,
    matcher: Glob,
}

/// What an image pattern names besides the repository, and so which references it can match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Neither tag nor digest: matched against `registry/repository`, whatever the reference
    /// pins.
    Name,
    /// A tag: matched only against references with a tag. Matched against the whole reference,
    /// a wildcard before the `:` would otherwise stretch over `@sha256` and the tag's pattern
    /// over the digest's hex (`tools*:1*` against `tools@sha256:1…`).
    Tag,
    /// A digest: matched only against references pinned by digest.
    Digest,
}

impl ImagePattern {
    /// Compiles an image pattern.
    pub fn new(pattern: &str) -> Result<Self, PatternError> {
        let err = |reason: &str| PatternError {
            pattern: pattern.to_owned(),
            reason: reason.to_owned(),
        };
        if pattern.is_empty() {
            return Err(err("the pattern is empty"));
        }
        if let Some(reason) = never_matches(pattern) {
            return Err(err(&reason));
        }
        let last_segment = pattern.rsplit('/').next().unwrap_or(pattern);
        let shape = if pattern.contains('@') {
            Shape::Digest
        } else if last_segment.contains(':') {
            Shape::Tag
        } else {
            Shape::Name
        };
        let first = pattern.split('/').next().unwrap_or(pattern);
        let wildcard_first = !first.is_empty() && first.chars().all(|c| matches!(c, '*' | '?'));
        let normalized = if wildcard_first || is_registry(first) && pattern.contains('/') {
            pattern.to_owned()
        } else if pattern.contains('/') {
            format!("{DEFAULT_REGISTRY}/{pattern}")
        } else {
            format!("{DEFAULT_REGISTRY}/library/{pattern}")
        };
        // Only the registry: elsewhere (`mirror.example.com/index.docker.io/…`) it is a path.
        let normalized = match normalized.strip_prefix("index.docker.io/") {
            Some(rest) => format!("{DEFAULT_REGISTRY}/{rest}"),
            None => normalized,
        };
        let matcher = compile(&normalized).map_err(|e| err(&e.reason))?;
        Ok(ImagePattern {
            source: pattern.to_owned(),
            normalized,
            shape,
            matcher,
        })
    }

    /// True when the normalized reference matches.
    pub fn matches(&self, image: &ImageRef) -> bool {
        match self.shape {
            Shape::Name => self.matcher.is_match(&image.name()),
            Shape::Tag if image.tag().is_none() => false,
            Shape::Digest if image.digest().is_none() => false,
            Shape::Tag | Shape::Digest => self.matcher.is_match(&image.to_string()),
        }
    }

    /// True when the pattern names a tag, and so never matches a reference pinned by digest.
    pub fn names_a_tag(&self) -> bool {
        self.shape == Shape::Tag
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The pattern as matched.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

/// Why an image pattern can never match a normalized reference, when it cannot: each of these
/// loaded silently and then granted nothing.
fn never_matches(pattern: &str) -> Option<String> {
    // `*` and `?` never cross `/`, and every normalized reference has one.
    if pattern != "**" && pattern.chars().all(|c| matches!(c, '*' | '?')) {
        return Some(
            "`*` never crosses `/`, and every image reference has one \
             (docker.io/library/busybox): write \"**\" for any image"
                .into(),
        );
    }
    let (name_and_tag, digest) = match pattern.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (pattern, None),
    };
    // Image references hold none of these; they are regular-expression habits. Inside a
    // bracket expression `^` negates (`[^x]`), so only the literal characters count; a
    // backslash is refused wherever it stands: an escape is never needed in a reference, and
    // `registry\.example\.com` is the regular-expression habit again.
    if let Some(c) = name_and_tag.contains('\\').then_some('\\').or_else(|| {
        literal_chars(name_and_tag).find(|c| matches!(c, '^' | '$' | '(' | ')' | '|' | '+'))
    }) {
        return Some(format!(
            "{c:?} does not occur in image references: patterns are globs, not regular \
             expressions (`*` matches within one path segment, `**` across segments, `?` one \
             character, `[abc]` and `{{a,b}}` alternatives)"
        ));
    }
    let (name, tag) = match name_and_tag.rsplit_once('/') {
        Some((head, last)) => match last.split_once(':') {
            Some((l, t)) => (format!("{head}/{l}"), Some(t)),
            None => (name_and_tag.to_owned(), None),
        },
        None => match name_and_tag.split_once(':') {
            Some((n, t)) => (n.to_owned(), Some(t)),
            None => (name_and_tag.to_owned(), None),
        },
    };
    if let (Some(tag), Some(digest)) = (tag, digest) {
        return Some(format!(
            "a reference with a digest is matched without its tag (the runtime ignores a tag \
             beside a digest, so kspy drops it): write \"{name}@{digest}\" to allow that digest, \
             or \"{name}:{tag}\" for that tag"
        ));
    }
    let first = name.split('/').next().unwrap_or(&name);
    let repository = if name.contains('/') && is_registry(first) {
        &name[first.len() + 1..]
    } else {
        name.as_str()
    };
    if repository.chars().any(|c| c.is_ascii_uppercase()) {
        return Some(format!(
            "repository names in image references are lower-case, so {repository:?} never \
             matches: write {:?}",
            repository.to_ascii_lowercase()
        ));
    }
    if matches!(first, "docker.io" | "index.docker.io")
        && !repository.contains('/')
        && !repository.contains("**")
    {
        return Some(format!(
            "Docker Hub references always have a user or `library/` segment \
             (busybox is docker.io/library/busybox): write \"docker.io/library/{repository}\" \
             for official images, or \"docker.io/*/{repository}\" for any user's"
        ));
    }
    None
}

/// A compiled glob. The shapes policies mostly use — a plain name, `prefix*` — are matched
/// directly; globset (a regex underneath, with a candidate to build per match) only takes the
/// rest. Every pattern is compiled by globset first, so what is refused does not change.
#[derive(Debug, Clone)]
enum Glob {
    /// No wildcard: the name itself.
    Exact(String),
    /// `prefix*`: the prefix, then anything without `/` (`*` never crosses `/`).
    Prefix(String),
    /// `prefix*` where `*` crosses `/` ([`NamePattern::identity`]): the prefix, then anything.
    AnyPrefix(String),
    /// Anything else.
    Full(GlobMatcher),
}

impl Glob {
    fn is_match(&self, name: &str) -> bool {
        match self {
            Glob::Exact(exact) => name == exact,
            Glob::Prefix(prefix) => name
                .strip_prefix(prefix.as_str())
                .is_some_and(|rest| !rest.contains('/')),
            Glob::AnyPrefix(prefix) => name.starts_with(prefix.as_str()),
            Glob::Full(matcher) => matcher.is_match(name),
        }
    }
}

/// The characters of a glob that stand for themselves: those outside bracket expressions
/// (`[a-z]`, `[^x]`, `[[:digit:]]`, whose content is syntax), an escaped character (`\-`) as
/// itself, and never the glob operators. Checks that a pattern could match a kind of name
/// look at these only, so valid glob syntax is not mistaken for a character no name has.
pub fn literal_chars(pattern: &str) -> impl Iterator<Item = char> + '_ {
    let mut chars = pattern.chars();
    std::iter::from_fn(move || {
        loop {
            match chars.next()? {
                '\\' => return chars.next(),
                '[' => {
                    // A `]` right after `[` or `[!`/`[^` is a member, as globset reads it;
                    // `[:class:]` inside ends at its own `:]`.
                    let mut first = true;
                    while let Some(c) = chars.next() {
                        match c {
                            '!' | '^' if first => continue,
                            ']' if !first => break,
                            '[' if chars.clone().next() == Some(':') => {
                                let rest = chars.as_str();
                                if let Some(end) = rest.find(":]") {
                                    chars = rest[end + 2..].chars();
                                }
                            }
                            _ => {}
                        }
                        first = false;
                    }
                }
                '*' | '?' | '{' | '}' | ',' | ']' => {}
                c => return Some(c),
            }
        }
    })
}

fn is_meta(c: char) -> bool {
    matches!(c, '*' | '?' | '[' | ']' | '{' | '}' | '\\')
}

/// The longest pattern accepted, in bytes: longer than any image reference, user, group or
/// namespace name a pattern is matched against.
pub const MAX_PATTERN_BYTES: usize = 1024;

fn compile(pattern: &str) -> Result<Glob, PatternError> {
    compile_with(pattern, true)
}

/// Compiles a glob; with `literal_separator`, `*` and `?` do not match `/` (only `**` does).
fn compile_with(pattern: &str, literal_separator: bool) -> Result<Glob, PatternError> {
    let err = |reason: String| PatternError {
        // The start is enough to find it; an overlong pattern is not repeated whole.
        pattern: match pattern.char_indices().nth(80) {
            Some((cut, _)) => format!("{}…", &pattern[..cut]),
            None => pattern.to_owned(),
        },
        reason,
    };
    if pattern.is_empty() {
        return Err(err("the pattern is empty".into()));
    }
    // globset panics when the regex under a very long pattern outgrows its size limit, and
    // matching costs pattern length times name length; no name kspy matches is this long.
    if pattern.len() > MAX_PATTERN_BYTES {
        return Err(err(format!(
            "the pattern is {} bytes long; at most {MAX_PATTERN_BYTES} are accepted",
            pattern.len()
        )));
    }
    if pattern.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("patterns may not contain white space".into()));
    }
    let matcher = GlobBuilder::new(pattern)
        .literal_separator(literal_separator)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| err(e.kind().to_string()))?;
    if !pattern.chars().any(is_meta) {
        return Ok(Glob::Exact(pattern.to_owned()));
    }
    if let Some(prefix) = pattern.strip_suffix('*')
        && !prefix.chars().any(is_meta)
    {
        return Ok(if literal_separator {
            Glob::Prefix(prefix.to_owned())
        } else {
            Glob::AnyPrefix(prefix.to_owned())
        });
    }
    Ok(Glob::Full(matcher))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_characters_skip_bracket_expressions_and_unescape() {
        let lit = |p: &str| literal_chars(p).collect::<String>();
        assert_eq!(lit("team-[^x]*"), "team-");
        assert_eq!(lit("a[[:digit:]]b"), "ab");
        assert_eq!(lit("a[]x]b"), "ab");
        assert_eq!(lit("a\\-b{c,d}?"), "a-bcd");
        assert_eq!(lit("[unclosed"), "");
    }

    /// A pattern long enough to make globset's regex outgrow its limit is refused, not a panic.
    #[test]
    fn overlong_patterns_are_refused() {
        let long = "*a".repeat(70_000);
        let e = compile(&long).err().map(|e| e.reason).unwrap_or_default();
        assert!(e.contains("at most 1024"), "{e}");
        let shown = compile(&long)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(shown.len() < 200, "{shown}");
        assert!(compile(&"a*".repeat(MAX_PATTERN_BYTES / 2)).is_ok());
    }

    fn img(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn name_patterns() {
        let p = NamePattern::new("prod-*").unwrap();
        assert!(p.matches("prod-eu"));
        assert!(!p.matches("staging"));
        assert!(!p.matches("prod/x"));
        assert!(NamePattern::new("").is_err());
        assert!(NamePattern::new("a b").is_err());
        assert!(NamePattern::new("[abc").is_err());
        assert!(NamePattern::new("{a,b").is_err());
    }

    #[test]
    fn image_patterns_match_normalized_references() {
        let cases: &[(&str, &str, bool)] = &[
            (
                "registry.example.com/debug/*",
                "registry.example.com/debug/tools:1.0",
                true,
            ),
            (
                "registry.example.com/debug/*",
                "registry.example.com/debug/a/b:1",
                false,
            ),
            (
                "registry.example.com/debug/**",
                "registry.example.com/debug/a/b:1",
                true,
            ),
            (
                "registry.example.com/debug/*",
                "registry.example.com.evil.io/debug/tools",
                false,
            ),
            (
                "registry.example.com/*",
                "registry.example.com.evil.io/x",
                false,
            ),
            ("busybox", "docker.io/library/busybox", true),
            ("busybox", "busybox:1.36", true),
            ("busybox:1.*", "busybox:1.36", true),
            ("busybox:1.*", "busybox:latest", false),
            ("docker.io/library/busybox", "busybox", true),
            ("nicolaka/netshoot", "nicolaka/netshoot:v0.13", true),
            ("**", "quay.io/anything/at/all:1", true),
            ("*.example.com/**", "registry.example.com/debug/x", true),
            ("*.example.com/**", "example.com.evil.io/debug/x", false),
            (
                "registry.example.com/debug/*@sha256:*",
                "registry.example.com/debug/tools:v1",
                false,
            ),
        ];
        for (pattern, image, want) in cases {
            let p = ImagePattern::new(pattern).unwrap();
            assert_eq!(p.matches(&img(image)), *want, "{pattern} vs {image}");
        }
        let digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let p = ImagePattern::new("registry.example.com/debug/*@sha256:*").unwrap();
        assert!(p.matches(&img(&format!("registry.example.com/debug/tools@{digest}"))));
        // A digest has no tag: `*` must not stretch over `@sha256` for `:0*` to match its hex.
        for pattern in [
            "registry.example.com/debug/*:0*",
            "registry.example.com/*/*:*",
        ] {
            let p = ImagePattern::new(pattern).unwrap();
            assert!(p.names_a_tag());
            assert!(
                !p.matches(&img(&format!("registry.example.com/debug/tools@{digest}"))),
                "{pattern}"
            );
            assert!(
                p.matches(&img("registry.example.com/debug/tools:0.9")),
                "{pattern}"
            );
        }
    }

    /// The direct shapes agree with globset on names built to probe their edges.
    #[test]
    fn direct_shapes_agree_with_globset() {
        let patterns = [
            "prod",
            "prod-*",
            "a/b*",
            "registry.example.com/debug/*",
            "*",
            "x*",
        ];
        let names = [
            "",
            "prod",
            "prod-",
            "prod-eu",
            "prod-eu/x",
            "prodx",
            "pro",
            "a/b",
            "a/bc",
            "a/b/c",
            "a/bc/",
            "registry.example.com/debug/tools",
            "registry.example.com/debug/a/b",
            "x",
            "xy",
            "x/y",
            "/",
            "prod-\u{e9}",
        ];
        // Namespaces keep `/` as a separator; users and groups do not.
        for literal_separator in [true, false] {
            for pattern in patterns {
                let direct = compile_with(pattern, literal_separator).unwrap();
                assert!(
                    !matches!(direct, Glob::Full(_)),
                    "{pattern} takes a direct shape"
                );
                let full = GlobBuilder::new(pattern)
                    .literal_separator(literal_separator)
                    .backslash_escape(true)
                    .build()
                    .unwrap()
                    .compile_matcher();
                for name in names {
                    assert_eq!(
                        direct.is_match(name),
                        full.is_match(name),
                        "{pattern:?} vs {name:?}, literal separator {literal_separator}"
                    );
                }
            }
        }
        assert!(matches!(compile("prod-**").unwrap(), Glob::Full(_)));
        assert!(matches!(compile("pr?d").unwrap(), Glob::Full(_)));
        assert!(matches!(compile("a\\*").unwrap(), Glob::Full(_)));
    }

    #[test]
    fn bad_image_patterns() {
        assert!(ImagePattern::new("").is_err());
        assert!(ImagePattern::new("registry.example.com/[x").is_err());
    }
}
