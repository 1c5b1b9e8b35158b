//! `url()` and its getters, reading URLs as Go's `net/url` does.

use std::collections::HashMap;
use std::sync::Arc;

use kube_cel::cel::extractors::This;
use kube_cel::cel::{ExecutionError, FunctionContext, ResolveResult, Value};

use super::value_type;

/// A URL as Kubernetes' CEL holds it: read as Go's `net/url` reads it (`url()` checks the
/// string with `ParseRequestURI` and keeps what `Parse` makes of it), its parts as written.
/// kube-cel 0.8 read URLs with the `url` crate (WHATWG), which rewrites them, and read a path
/// (`'/healthz'`) as `http://localhost/healthz`: `url('http://localhost/x').getScheme()` was
/// `''` (so a guardrail `getScheme() != 'http'` held for it), `url('/x').getHost()`
/// `'localhost'` where Kubernetes has `''`, `url('https://x.com:443').getHost()` `'x.com'`
/// where Kubernetes has `'x.com:443'`; it lowercased and punycoded hosts, and resolved `..` in
/// paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct GoUrl {
    /// In lower case, as Go keeps it.
    scheme: String,
    /// What follows `scheme:` when no `/` does (`mailto:a@b.c`).
    opaque: String,
    /// As written, before the last `@` of the authority.
    userinfo: Option<String>,
    /// The host and port, percent-escapes decoded (Go's `URL.Host`).
    host: String,
    /// The path, percent-escapes decoded (Go's `URL.Path`, bytes).
    path: Vec<u8>,
    /// The path as written, where escaping `path` again would not give it back.
    raw_path: Option<String>,
    /// After `?`, as written.
    raw_query: String,
    /// After `#`, as written.
    fragment: Option<String>,
}

impl kube_cel::cel::objects::Opaque for GoUrl {
    fn runtime_type_name(&self) -> &str {
        "kubernetes.URL"
    }
}

/// What Go's `net/url` escapes in a part ([`go_should_escape`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlPart {
    Path,
    Host,
    Zone,
    UserPassword,
    QueryComponent,
    Fragment,
}

/// Go's `shouldEscape`: whether byte `c` is escaped in `part`.
fn go_should_escape(c: u8, part: UrlPart) -> bool {
    if c.is_ascii_alphanumeric() {
        return false;
    }
    if matches!(part, UrlPart::Host | UrlPart::Zone)
        && matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        )
    {
        return false;
    }
    match c {
        b'-' | b'_' | b'.' | b'~' => false,
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match part {
            UrlPart::Path => c == b'?',
            UrlPart::UserPassword => matches!(c, b'@' | b'/' | b'?' | b':'),
            UrlPart::QueryComponent => true,
            UrlPart::Fragment => false,
            UrlPart::Host | UrlPart::Zone => true,
        },
        b'!' | b'(' | b')' | b'*' if part == UrlPart::Fragment => false,
        _ => true,
    }
}

/// Go's `unescape`: `s` with its percent-escapes decoded (and, in a query component, `+` as a
/// space); an error for a malformed escape, or a character a host may not hold.
fn go_unescape(s: &str, part: UrlPart) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                    let bad = s.get(i..(i + 3).min(s.len())).unwrap_or("%");
                    return Err(format!("invalid URL escape {bad:?}"));
                };
                let escape = &s[i..i + 3];
                #[allow(clippy::cast_possible_truncation)] // two hex digits
                let v = (hi << 4 | lo) as u8;
                if part == UrlPart::Host && hi < 8 && escape != "%25" {
                    return Err(format!("invalid URL escape {escape:?}"));
                }
                if part == UrlPart::Zone
                    && escape != "%25"
                    && v != b' '
                    && go_should_escape(v, UrlPart::Host)
                {
                    return Err(format!("invalid URL escape {escape:?}"));
                }
                out.push(v);
                i += 3;
            }
            b'+' if part == UrlPart::QueryComponent => {
                out.push(b' ');
                i += 1;
            }
            c => {
                if matches!(part, UrlPart::Host | UrlPart::Zone)
                    && c < 0x80
                    && go_should_escape(c, part)
                {
                    return Err(format!(
                        "invalid character {:?} in host name",
                        char::from(c).to_string()
                    ));
                }
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// Go's `escape` of a path.
fn go_escape_path(path: &[u8]) -> String {
    let mut out = String::with_capacity(path.len());
    for &c in path {
        if go_should_escape(c, UrlPart::Path) {
            out.push_str(&format!("%{c:02X}"));
        } else {
            out.push(char::from(c));
        }
    }
    out
}

/// Go's `validOptionalPort`: empty, or `:` and digits.
fn go_valid_optional_port(port: &str) -> bool {
    port.is_empty()
        || port
            .strip_prefix(':')
            .is_some_and(|digits| digits.bytes().all(|c| c.is_ascii_digit()))
}

/// Go's `parseHost`: the host (and port), decoded. Square brackets are taken only around an
/// IPv6 address (with its zone, `%25en0`), at the start of the host, as Go takes them since
/// the fixes for CVE-2025-47912 and CVE-2026-25679: `[evil.com]`, `[10.0.0.1]` and
/// `a.com[::1]` are refused, where older Go (and kspy before) read a hostname out of them.
fn go_host(host: &str) -> Result<String, String> {
    let invalid_port = |p: &str| format!("invalid port {p:?} after host");
    match host.rfind('[') {
        Some(0) => {}
        Some(_) => return Err("invalid IP-literal".to_owned()),
        None => {
            if let Some(colon) = host.rfind(':') {
                let colon_port = &host[colon..];
                if !go_valid_optional_port(colon_port) {
                    return Err(invalid_port(colon_port));
                }
            }
            return Ok(String::from_utf8_lossy(&go_unescape(host, UrlPart::Host)?).into_owned());
        }
    }
    let Some(end) = host.rfind(']') else {
        return Err("missing ']' in host".to_owned());
    };
    let colon_port = &host[end + 1..];
    if !go_valid_optional_port(colon_port) {
        return Err(invalid_port(colon_port));
    }
    let hostname = &host[1..end];
    let decoded = match hostname.find("%25") {
        Some(zone) => {
            let mut decoded = go_unescape(&hostname[..zone], UrlPart::Host)?;
            decoded.extend(go_unescape(&hostname[zone..], UrlPart::Zone)?);
            decoded
        }
        None => go_unescape(hostname, UrlPart::Host)?,
    };
    let decoded = String::from_utf8_lossy(&decoded).into_owned();
    go_ipv6_literal(&decoded)?;
    Ok(format!("[{decoded}]{colon_port}"))
}

/// What Go's `netip.ParseAddr` must make of the inside of a host's brackets: an IPv6 address,
/// optionally with a non-empty zone after `%`; not an IPv4 one.
fn go_ipv6_literal(text: &str) -> Result<(), String> {
    if text.parse::<std::net::Ipv4Addr>().is_ok() {
        return Err("invalid IP-literal".to_owned());
    }
    let (address, zone) = match text.split_once('%') {
        Some((address, zone)) => (address, Some(zone)),
        None => (text, None),
    };
    if address.parse::<std::net::Ipv6Addr>().is_err() || zone == Some("") {
        return Err(format!(
            "invalid host: {text:?} is no IPv6 address, the only host Go's net/url takes in \
             square brackets"
        ));
    }
    Ok(())
}

/// Go's `validUserinfo`.
fn go_valid_userinfo(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_ascii_alphanumeric()
            || matches!(
                c,
                '-' | '.'
                    | '_'
                    | ':'
                    | '~'
                    | '!'
                    | '$'
                    | '&'
                    | '\''
                    | '('
                    | ')'
                    | '*'
                    | '+'
                    | ','
                    | ';'
                    | '='
                    | '%'
                    | '@'
            )
    })
}

/// Go's `getScheme`: the scheme and what follows its `:`, or no scheme and all of `raw`.
fn go_scheme(raw: &str) -> Result<(&str, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return Err("missing protocol scheme".to_owned()),
            b':' => return Ok((&raw[..i], &raw[i + 1..])),
            _ => return Ok(("", raw)),
        }
    }
    Ok(("", raw))
}

/// Go's `url.parse(raw, viaRequest)`, without the fragment (`raw` holds none for `Parse`; for
/// `ParseRequestURI` a `#` is part of the path or query).
fn go_parse(raw: &str, via_request: bool) -> Result<GoUrl, String> {
    if raw.bytes().any(|c| c < 0x20 || c == 0x7f) {
        return Err("net/url: invalid control character in URL".to_owned());
    }
    if raw.is_empty() && via_request {
        return Err("empty url".to_owned());
    }
    let mut url = GoUrl::default();
    if raw == "*" {
        url.path = b"*".to_vec();
        return Ok(url);
    }
    let (scheme, mut rest) = go_scheme(raw)?;
    url.scheme = scheme.to_ascii_lowercase();
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        rest = &rest[..rest.len() - 1];
    } else if let Some((before, query)) = rest.split_once('?') {
        rest = before;
        url.raw_query = query.to_owned();
    }
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            url.opaque = rest.to_owned();
            return Ok(url);
        }
        if via_request {
            return Err("invalid URI for request".to_owned());
        }
        if let Some(colon) = rest.find(':')
            && rest.find('/').is_none_or(|slash| colon < slash)
        {
            return Err("first path segment in URL cannot contain colon".to_owned());
        }
    }
    if (!url.scheme.is_empty() || (!via_request && !rest.starts_with("///")))
        && let Some(after) = rest.strip_prefix("//")
    {
        let (authority, path) = after.split_at(after.find('/').unwrap_or(after.len()));
        let (userinfo, host) = match authority.rfind('@') {
            Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
            None => (None, authority),
        };
        url.host = go_host(host)?;
        if let Some(userinfo) = userinfo {
            if !go_valid_userinfo(userinfo) {
                return Err("net/url: invalid userinfo".to_owned());
            }
            go_unescape(userinfo, UrlPart::UserPassword)?;
            url.userinfo = Some(userinfo.to_owned());
        }
        rest = path;
    }
    url.path = go_unescape(rest, UrlPart::Path)?;
    if go_escape_path(&url.path) != rest {
        url.raw_path = Some(rest.to_owned());
    }
    Ok(url)
}

/// `url(<string>)` as Kubernetes has it: the string must pass Go's `url.ParseRequestURI` (an
/// absolute URL or an absolute path), and the URL is what `url.Parse` makes of it.
pub(super) fn url(s: Arc<String>) -> ResolveResult {
    let parsed = go_parse(&s, true).and_then(|_| {
        let (before, fragment) = match s.split_once('#') {
            Some((before, fragment)) => (before, Some(fragment)),
            None => (s.as_str(), None),
        };
        let mut url = go_parse(before, false)?;
        if let Some(fragment) = fragment {
            go_unescape(fragment, UrlPart::Fragment)?;
            url.fragment = Some(fragment.to_owned());
        }
        Ok(url)
    });
    match parsed {
        Ok(url) => Ok(Value::Opaque(Arc::new(url))),
        Err(err) => Err(ExecutionError::function_error(
            "url",
            format!("URL parse error during conversion from string: parse {s:?}: {err}"),
        )),
    }
}

/// `isURL(<string>)`: whether `url()` takes it.
pub(super) fn is_url(s: Arc<String>) -> ResolveResult {
    Ok(Value::Bool(go_parse(&s, true).is_ok()))
}

/// The [`GoUrl`] a URL getter is called on.
fn this_url<'v>(ftx: &FunctionContext, this: &'v Value) -> Result<&'v GoUrl, ExecutionError> {
    match this {
        Value::Opaque(o) => o.downcast_ref::<GoUrl>(),
        _ => None,
    }
    .ok_or_else(|| {
        ftx.error(format!(
            "{} takes a URL (url('https://…')), not a {}",
            ftx.name,
            value_type(this)
        ))
    })
}

fn string_value(s: &str) -> ResolveResult {
    Ok(Value::String(Arc::new(s.to_owned())))
}

/// `<URL>.getScheme()`: the scheme, in lower case; `''` for a path.
pub(super) fn url_scheme(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    string_value(&this_url(ftx, &this)?.scheme)
}

/// `<URL>.getHost()`: the host and port as written (`'x.com:443'`, `'[::1]:80'`).
pub(super) fn url_host(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    string_value(&this_url(ftx, &this)?.host)
}

/// Go's `splitHostPort` of `URL.Host`: the host without brackets, and the port.
fn go_split_host_port(host_port: &str) -> (&str, &str) {
    let (mut host, mut port) = (host_port, "");
    if let Some(colon) = host_port.rfind(':')
        && go_valid_optional_port(&host_port[colon..])
    {
        (host, port) = (&host_port[..colon], &host_port[colon + 1..]);
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        host = inner;
    }
    (host, port)
}

/// `<URL>.getHostname()`: the host without its port or an IPv6 address's brackets.
pub(super) fn url_hostname(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    string_value(go_split_host_port(&this_url(ftx, &this)?.host).0)
}

/// `<URL>.getPort()`: the port as written, `''` without one.
pub(super) fn url_port(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    string_value(go_split_host_port(&this_url(ftx, &this)?.host).1)
}

/// `<URL>.getEscapedPath()`: Go's `URL.EscapedPath()`, the path as written when that is a
/// valid escaping of it (`..` stays), else escaped again; `''` without a path.
pub(super) fn url_escaped_path(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    let url = this_url(ftx, &this)?;
    if let Some(raw) = &url.raw_path {
        let valid = raw.bytes().all(|c| {
            matches!(
                c,
                b'!' | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
                    | b'['
                    | b']'
                    | b'%'
            ) || !go_should_escape(c, UrlPart::Path)
        });
        if valid && go_unescape(raw, UrlPart::Path).is_ok_and(|p| p == url.path) {
            return string_value(raw);
        }
    }
    if url.path == b"*" {
        return string_value("*");
    }
    string_value(&go_escape_path(&url.path))
}

/// `<URL>.getQuery()`: Go's `URL.Query()`, each key with its values in order; pairs Go skips
/// (a `;` in them, a malformed escape) skipped.
pub(super) fn url_query(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    use kube_cel::cel::objects::{Key, Map};
    let url = this_url(ftx, &this)?;
    let mut pairs: HashMap<Key, Vec<Value>> = HashMap::new();
    for pair in url.raw_query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (Ok(key), Ok(value)) = (
            go_unescape(key, UrlPart::QueryComponent),
            go_unescape(value, UrlPart::QueryComponent),
        ) else {
            continue;
        };
        let text = |b: Vec<u8>| Arc::new(String::from_utf8_lossy(&b).into_owned());
        pairs
            .entry(Key::String(text(key)))
            .or_default()
            .push(Value::String(text(value)));
    }
    let map = pairs
        .into_iter()
        .map(|(k, v)| (k, Value::List(Arc::new(v))))
        .collect();
    Ok(Value::Map(Map { map: Arc::new(map) }))
}
