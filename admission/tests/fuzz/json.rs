//! Mutations of JSON documents, at three levels:
//!
//! - bytes ([`mutate_bytes`]): anything, valid JSON or not;
//! - text that keeps the meaning ([`write`]): white space between tokens, members in another
//!   order, characters written as `\u` escapes, a member written twice with the real value
//!   last (JSON leaves a repeated member to the reader; kspy refuses it or reads the last);
//! - values ([`mutate_value`]): a node of a `serde_json::Value` replaced, removed, multiplied,
//!   nested deep, made huge, given another type or odd unicode.
//!
//! Values nested deeper than serde_json can write and drop without deep recursion are not
//! built as values: a mutation leaves a placeholder string, and [`Doc::to_bytes`] splices the
//! text in.

use serde_json::{Value, json};

use super::rng::Rng;

/// A document being mutated, with the text to splice in for its placeholders.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The document.
    pub value: Value,
    /// `(placeholder, raw JSON text)`: each placeholder string in `value` stands for the text.
    pub splices: Vec<(String, String)>,
}

impl Doc {
    /// A document without splices.
    pub fn new(value: Value) -> Doc {
        Doc {
            value,
            splices: Vec::new(),
        }
    }

    /// A placeholder string for `text`, to put where the text goes.
    pub fn splice(&mut self, text: String) -> Value {
        let placeholder = format!("kspy-fuzz-splice-{}", self.splices.len());
        self.splices.push((placeholder.clone(), text));
        Value::String(placeholder)
    }

    /// The document as compact JSON, placeholders replaced by their text.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut text = serde_json::to_string(&self.value).expect("a value encodes");
        for (placeholder, raw) in &self.splices {
            text = text.replacen(&format!("\"{placeholder}\""), raw, 1);
        }
        text.into_bytes()
    }
}

/// Every node of `value` by its JSON Pointer, the root excluded, in document order.
pub fn pointers(value: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_pointers(value, "", &mut out);
    out
}

fn collect_pointers(value: &Value, at: &str, out: &mut Vec<String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(m) => m.iter().map(|(k, v)| (escape(k), v)).collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string(), v))
            .collect(),
        _ => return,
    };
    for (key, child) in children {
        let pointer = format!("{at}/{key}");
        out.push(pointer.clone());
        collect_pointers(child, &pointer, out);
    }
}

/// A key as a JSON Pointer segment.
pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// A JSON Pointer segment as the key it names.
pub fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

/// `pointer`'s parent pointer and last segment (unescaped); `None` for the root.
pub fn split_pointer(pointer: &str) -> Option<(&str, String)> {
    let (parent, last) = pointer.rsplit_once('/')?;
    Some((parent, unescape(last)))
}

/// True when `a` is `b`, or one of them is inside the other.
pub fn overlaps(a: &str, b: &str) -> bool {
    let inside = |inner: &str, outer: &str| {
        inner == outer || (inner.starts_with(outer) && inner[outer.len()..].starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

/// The kind of a JSON value, for "a value of another type".
pub fn kind(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// Numbers where integers (ports, user ids, grace periods) are expected, and around them.
pub fn hostile_number(rng: &mut Rng) -> Value {
    let numbers = [
        json!(0),
        json!(-1),
        json!(1),
        json!(65534),
        json!(i64::MAX),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(9_007_199_254_740_993u64),
        json!(4_294_967_296u64),
        json!(-4_294_967_297i64),
        json!(2_147_483_648u64),
        json!(-2_147_483_649i64),
        json!(0.5),
        json!(1.0),
        json!(-0.0),
        json!(1e308),
        json!(-1e308),
        json!(5e-324),
    ];
    rng.pick(&numbers).clone()
}

/// Number texts serde_json reads differently or not at all (out of range, odd forms), for
/// splicing into the text.
pub const NUMBER_TEXTS: &[&str] = &[
    "1e400",
    "-1e400",
    "1E+2",
    "1e-400",
    "-0",
    "0.0e0",
    "18446744073709551616",
    "-9223372036854775809",
    "123456789012345678901234567890",
    "1.7976931348623157e309",
];

/// Strings a policy judges by (capabilities, images, paths, names, groups), their look-alikes,
/// and unicode that trips naive code.
pub const HOSTILE_STRINGS: &[&str] = &[
    "",
    " ",
    "\u{0}",
    "a\u{0}b",
    "\u{202e}gnp.exe",
    "\u{200b}",
    "\u{feff}",
    "ß",
    "İ",
    "ﬁ",
    "Ａ",
    "𝕒",
    "🐳",
    "\u{7f}\u{80}\u{9f}",
    "\\",
    "\"",
    "\n",
    "..",
    "%2e%2e",
    "SYS_ADMIN",
    "sys_admin",
    "CAP_SYS_ADMIN",
    "NET_ADMIN",
    "ALL",
    "all",
    "SYS_PTRACE",
    "cap_sys_ptrace",
    "registry.example.com/debug/tools:1.4",
    "registry.exаmple.com/debug/tools:1.4",
    "registry.example.com.evil.io/debug/tools:1.4",
    "registry.example.com:443/debug/tools:1.4",
    "registry.example.com/debug/../tools:1.4",
    "registry.example.com//debug/tools",
    "registry.example.com/debug/tools/extra:1",
    "REGISTRY.EXAMPLE.COM/debug/tools",
    "busybox",
    "busybox:1.36",
    "busybox:1.36@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    "docker.io/busybox:1.36",
    "index.docker.io/library/busybox:1.36",
    "nicolaka/netshoot:v0.13",
    "evil.io/x",
    "/",
    "//etc/../",
    "/etc/shadow",
    "/var/run/docker.sock",
    "/proc/1/root",
    "../../etc",
    "relative/path",
    "C:\\Windows",
    "kube-system",
    "KUBE-SYSTEM",
    "kube-system ",
    "prod-payments",
    "team-checkout",
    "default",
    "sre",
    "SRE",
    "platform-admins",
    "kube-system-admins",
    "developers",
    "team-checkout",
    "system:masters",
    "system:serviceaccount:kube-system:default",
    "copy",
    "node",
    "node-debugger-x",
    "debugger-bcdfg",
    "debugger-m4n8d",
    "app",
    "KSPY_REASON",
    "kspy.dev/reason",
    "kspy.dev/debug",
    "Unconfined",
    "Unmasked",
    "spc_t",
    "Disabled",
    "true",
    "null",
    "0",
];

/// A hostile string: one of [`HOSTILE_STRINGS`], a long one, or `original` with odd
/// characters inserted or its case changed.
pub fn hostile_string(rng: &mut Rng, original: Option<&str>) -> String {
    let original = original.unwrap_or("registry.example.com/debug/tools:1.4");
    match rng.below(8) {
        0 | 1 => (*rng.pick(HOSTILE_STRINGS)).to_owned(),
        2 => {
            // Long: up to 1 MiB.
            let unit = *rng.pick(&["a", "é", "🐳", "/", "\\", "\"", "\u{0}", "../"]);
            let len = rng.size(1 << 20) / unit.len() + 1;
            unit.repeat(len)
        }
        3 => original.to_uppercase(),
        4 => format!(
            "{original}{}",
            rng.pick(&[" ", "\n", "\u{0}", "/", ".", ":", "@"])
        ),
        _ => {
            let mut chars: Vec<char> = original.chars().collect();
            let at = rng.below(chars.len() + 1);
            let odd = *rng.pick(&[
                '\u{0}', '\u{200b}', '\u{202e}', 'а', 'е', 'о', 'ı', 'é', 'Ａ', '𝕒', '/', '.', ':',
                '@', '*', '?', '[', '\\', '~',
            ]);
            if at < chars.len() && rng.one_in(2) {
                chars[at] = odd;
            } else {
                chars.insert(at, odd);
            }
            chars.into_iter().collect()
        }
    }
}

/// Values of every kind, the likely and the hostile.
pub fn hostile_value(rng: &mut Rng) -> Value {
    match rng.below(9) {
        0 => Value::Null,
        1 => Value::Bool(rng.one_in(2)),
        2 => hostile_number(rng),
        3 | 4 => Value::String(hostile_string(rng, None)),
        5 => json!([]),
        6 => json!({}),
        7 => rng
            .pick(&[
                json!(["SYS_ADMIN"]),
                json!([{}]),
                json!([null]),
                json!({"add": ["SYS_ADMIN"]}),
                json!({"privileged": true}),
                json!({"name": "x"}),
                json!({"": ""}),
            ])
            .clone(),
        _ => Value::String(hostile_string(rng, Some("x"))),
    }
}

/// `depth` levels of nesting around `inner`, as text (no recursion to build or drop it).
pub fn nested_text(rng: &mut Rng, depth: usize, inner: &str) -> String {
    let (open, close) = match rng.below(3) {
        0 => ("[", "]"),
        1 => ("{\"a\":", "}"),
        _ => ("[1,{\"spec\":", "}]"),
    };
    let mut text = String::with_capacity(depth * (open.len() + close.len()) + inner.len());
    for _ in 0..depth {
        text.push_str(open);
    }
    text.push_str(inner);
    for _ in 0..depth {
        text.push_str(close);
    }
    text
}

/// Byte-level damage, one to four times: bits flipped, bytes set, inserted or removed,
/// truncation, a span repeated, removed or taken from a donor, JSON tokens inserted. Returns
/// what was done.
pub fn mutate_bytes(rng: &mut Rng, body: &mut Vec<u8>, donors: &[&[u8]]) -> String {
    const SPECIALS: &[u8] = b"{}[]\",:\\ 0123456789.eE+-tfnul\x00\x1f\x7f\xff\xc3\x80";
    const TOKENS: &[&[u8]] = &[
        b"\"",
        b"\\",
        b"\\u",
        b"\\ud800",
        b"\\udc00",
        b"\\u0000",
        b"{",
        b"}",
        b"[",
        b"]",
        b",",
        b":",
        b"null",
        b"true",
        b"1e999",
        b"-",
        "\u{feff}".as_bytes(),
        "\u{fffd}".as_bytes(),
        b"\r\n",
        b"/*x*/",
        b"NaN",
        b"Infinity",
        b"\"\":",
        b",\"privileged\":true",
        b",\"hostPID\":true",
        b"\xf0\x9f\x90",
    ];
    let mut done = Vec::new();
    for _ in 0..rng.range(1, 4) {
        if body.is_empty() {
            break;
        }
        let at = rng.below(body.len());
        match rng.below(10) {
            0 => {
                let bit = rng.below(8);
                body[at] ^= 1 << bit;
                done.push(format!("bit {bit} of byte {at} flipped"));
            }
            1 => {
                let c = *rng.pick(SPECIALS);
                body[at] = c;
                done.push(format!("byte {at} set to {c:#04x}"));
            }
            2 => {
                let c = *rng.pick(SPECIALS);
                body.insert(at, c);
                done.push(format!("{c:#04x} inserted at {at}"));
            }
            3 => {
                body.remove(at);
                done.push(format!("byte {at} removed"));
            }
            4 => {
                body.truncate(at);
                done.push(format!("truncated to {at} bytes"));
            }
            5 => {
                let end = (at + rng.size(4096)).min(body.len());
                let span = body[at..end].to_vec();
                let to = rng.below(body.len() + 1);
                body.splice(to..to, span);
                done.push(format!("bytes {at}..{end} repeated at {to}"));
            }
            6 => {
                let end = (at + rng.size(4096)).min(body.len());
                body.drain(at..end);
                done.push(format!("bytes {at}..{end} removed"));
            }
            7 if !donors.is_empty() => {
                let donor = *rng.pick(donors);
                let from = rng.below(donor.len());
                let end = (from + rng.size(2048)).min(donor.len());
                body.splice(at..at, donor[from..end].iter().copied());
                done.push(format!("donor bytes {from}..{end} inserted at {at}"));
            }
            _ => {
                let token = *rng.pick(TOKENS);
                body.splice(at..at, token.iter().copied());
                done.push(format!(
                    "{:?} inserted at {at}",
                    String::from_utf8_lossy(token)
                ));
            }
        }
    }
    done.join(", ")
}

/// How [`write`] writes a value.
#[derive(Debug, Clone, Copy, Default)]
pub struct Style {
    /// White space between tokens, at random.
    pub space: bool,
    /// Object members in random order.
    pub shuffle: bool,
    /// Characters of strings and keys written as escapes, at random.
    pub escape: bool,
    /// Now and then a member written twice, a hostile value first and the real one last.
    pub repeat: bool,
}

impl Style {
    /// Every meaning-keeping change but repeated members.
    pub fn all_but_repeats() -> Style {
        Style {
            space: true,
            shuffle: true,
            escape: true,
            repeat: false,
        }
    }
}

/// `value` as JSON text in `style`: the same document to any reader (with [`Style::repeat`],
/// to a reader that keeps a repeated member's last value).
pub fn write(rng: &mut Rng, value: &Value, style: Style) -> String {
    let mut out = String::new();
    write_into(rng, value, style, &mut out);
    out
}

fn space(rng: &mut Rng, style: Style, out: &mut String) {
    if style.space && rng.one_in(3) {
        for _ in 0..rng.range(1, 3) {
            out.push(*rng.pick(&[' ', '\t', '\n', '\r']));
        }
    }
}

fn write_into(rng: &mut Rng, value: &Value, style: Style, out: &mut String) {
    space(rng, style, out);
    match value {
        Value::Object(m) => {
            out.push('{');
            let mut members: Vec<(&String, &Value)> = m.iter().collect();
            if style.shuffle {
                for i in (1..members.len()).rev() {
                    members.swap(i, rng.below(i + 1));
                }
            }
            let mut first = true;
            for (k, v) in members {
                let mut member = |rng: &mut Rng, v: &Value, out: &mut String| {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    space(rng, style, out);
                    write_string(rng, k, style, out);
                    space(rng, style, out);
                    out.push(':');
                    write_into(rng, v, style, out);
                };
                if style.repeat && rng.one_in(20) {
                    let junk = hostile_value(rng);
                    member(rng, &junk, out);
                }
                member(rng, v, out);
            }
            space(rng, style, out);
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_into(rng, v, style, out);
            }
            space(rng, style, out);
            out.push(']');
        }
        Value::String(s) => write_string(rng, s, style, out),
        other => out.push_str(&other.to_string()),
    }
    space(rng, style, out);
}

fn write_string(rng: &mut Rng, s: &str, style: Style, out: &mut String) {
    out.push('"');
    // Escape every character of some strings, a few of others.
    let rate = if style.escape {
        *rng.pick(&[0usize, 1, 4, 50])
    } else {
        0
    };
    for c in s.chars() {
        let must = c == '"' || c == '\\' || (c as u32) < 0x20;
        if rate > 0 && rng.below(rate) == 0 || must && rng.one_in(2) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                if rng.one_in(2) {
                    out.push_str(&format!("\\u{unit:04x}"));
                } else {
                    out.push_str(&format!("\\u{unit:04X}"));
                }
            }
        } else if must {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c => out.push_str(&format!("\\u{:04x}", c as u32)),
            }
        } else if c == '/' && style.escape && rng.one_in(4) {
            out.push_str("\\/");
        } else {
            out.push(c);
        }
    }
    out.push('"');
}

/// One structural mutation of `doc` at a node chosen among `targets` (JSON Pointers into
/// it); `donors` are other documents to take subtrees from. Returns what was done.
pub fn mutate_value(rng: &mut Rng, doc: &mut Doc, targets: &[String], donors: &[Value]) -> String {
    if targets.is_empty() {
        return "nothing to mutate".into();
    }
    let pointer = rng.pick(targets).clone();
    let Some(original) = doc.value.pointer(&pointer).cloned() else {
        return format!("{pointer} is gone");
    };
    let set = |doc: &mut Doc, v: Value| {
        if let Some(slot) = doc.value.pointer_mut(&pointer) {
            *slot = v;
        }
    };
    // Half the time a value of the same kind, which the typed decoding takes: the mutation
    // reaches the judging, not just the decoding.
    if rng.one_in(2) {
        return same_kind(rng, doc, &pointer, &original);
    }
    match rng.below(14) {
        0 | 1 => {
            let mut v = hostile_value(rng);
            while kind(&v) == kind(&original) {
                v = hostile_value(rng);
            }
            let what = format!("{pointer} set to a value of another type: {}", short(&v));
            set(doc, v);
            what
        }
        2 => {
            if rng.one_in(2) {
                let v = hostile_number(rng);
                let what = format!("{pointer} set to {v}");
                set(doc, v);
                what
            } else {
                let text = (*rng.pick(NUMBER_TEXTS)).to_owned();
                let what = format!("{pointer} set to the number text {text}");
                let placeholder = doc.splice(text);
                set(doc, placeholder);
                what
            }
        }
        3 | 4 => {
            let s = hostile_string(rng, original.as_str());
            let what = format!(
                "{pointer} set to the string {}",
                short(&Value::String(s.clone()))
            );
            set(doc, Value::String(s));
            what
        }
        5 => {
            let depth = rng.size(200_000);
            let inner = serde_json::to_string(&original).expect("encodes");
            let text = nested_text(rng, depth, &inner);
            let what = format!("{pointer} nested {depth} levels deep");
            let placeholder = doc.splice(text);
            set(doc, placeholder);
            what
        }
        6 | 7 => {
            let Some((parent, key)) = split_pointer(&pointer) else {
                return "root kept".into();
            };
            match doc.value.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&key);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = key.parse::<usize>()
                        && i < a.len()
                    {
                        a.remove(i);
                    }
                }
                _ => {}
            }
            format!("{pointer} removed")
        }
        8 => {
            let (key, value) = unknown_member(rng);
            let what = format!(
                "unknown member {key:?}: {} added at {pointer}",
                short(&value)
            );
            match doc.value.pointer_mut(&pointer) {
                Some(Value::Object(m)) => {
                    m.insert(key, value);
                }
                Some(Value::Array(a)) => a.push(json!({ key: value })),
                _ => {}
            }
            what
        }
        9 => {
            let v = match original {
                Value::Array(_) => json!({}),
                Value::Object(_) => json!([]),
                _ => rng.pick(&[json!([]), json!({}), json!("")]).clone(),
            };
            let what = format!("{pointer} emptied to {v}");
            set(doc, v);
            what
        }
        10 => {
            // Many: an array's items repeated (renamed where they have a name, so that
            // ephemeral containers are new ones), or a value in an array of many.
            let n = rng.size(3000);
            let items: Vec<Value> = match &original {
                Value::Array(a) if !a.is_empty() => a.clone(),
                other => vec![other.clone()],
            };
            let mut many = Vec::with_capacity(n);
            for i in 0..n {
                let mut item = items[i % items.len()].clone();
                if let Some(name) = item.get_mut("name")
                    && let Some(s) = name.as_str()
                {
                    *name = Value::String(format!("{s}-{i}"));
                }
                many.push(item);
            }
            set(doc, Value::Array(many));
            format!("{pointer} made an array of {n} items")
        }
        11 if !donors.is_empty() => {
            let donor = rng.pick(donors);
            let from = pointers(donor);
            let at = rng.pick(&from);
            let v = donor.pointer(at).cloned().unwrap_or(Value::Null);
            let what = format!("{pointer} set to a donor's {at}: {}", short(&v));
            set(doc, v);
            what
        }
        12 => {
            let other = rng.pick(targets).clone();
            match doc.value.pointer(&other).cloned() {
                Some(v) if !overlaps(&other, &pointer) => {
                    let what = format!("{pointer} set to the document's own {other}");
                    set(doc, v);
                    what
                }
                _ => format!("{pointer} kept"),
            }
        }
        _ => {
            let s = (*rng.pick(HOSTILE_STRINGS)).to_owned();
            let what = format!("{pointer} set to {s:?}");
            set(doc, Value::String(s));
            what
        }
    }
}

/// A mutation of the node at `pointer` that keeps its kind: a hostile string for a string, a
/// hostile number for a number, the other boolean, an array with an item removed, repeated or
/// replaced by a sibling, an object with a member removed, or set to a sibling's value.
fn same_kind(rng: &mut Rng, doc: &mut Doc, pointer: &str, original: &Value) -> String {
    let Some(slot) = doc.value.pointer_mut(pointer) else {
        return format!("{pointer} is gone");
    };
    match slot {
        Value::String(s) => {
            let v = hostile_string(rng, Some(s));
            let what = format!(
                "{pointer} set to the string {}",
                short(&Value::String(v.clone()))
            );
            *s = v;
            what
        }
        Value::Number(_) => {
            let v = hostile_number(rng);
            let what = format!("{pointer} set to {v}");
            *slot = v;
            what
        }
        Value::Bool(b) => {
            *b = !*b;
            format!("{pointer} set to {b}")
        }
        Value::Array(a) if !a.is_empty() => {
            let i = rng.below(a.len());
            match rng.below(3) {
                0 => {
                    a.remove(i);
                    format!("{pointer}/{i} removed")
                }
                1 => {
                    let n = rng.size(64);
                    let item = a[i].clone();
                    for _ in 0..n {
                        a.insert(i, item.clone());
                    }
                    format!("{pointer}/{i} repeated {n} times")
                }
                _ => {
                    let j = rng.below(a.len());
                    a[i] = a[j].clone();
                    format!("{pointer}/{i} set to its sibling {j}")
                }
            }
        }
        Value::Object(m) if !m.is_empty() => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let key = rng.pick(&keys).clone();
            if rng.one_in(2) {
                m.remove(&key);
                format!("{pointer}/{} removed", escape(&key))
            } else {
                let other = rng.pick(&keys).clone();
                let v = m[&other].clone();
                m.insert(key.clone(), v);
                format!(
                    "{pointer}/{} set to its sibling {}",
                    escape(&key),
                    escape(&other)
                )
            }
        }
        _ => format!("{pointer} ({}) kept", short(original)),
    }
}

/// A member no schema has: odd names, names of real fields in the wrong place or case.
pub fn unknown_member(rng: &mut Rng) -> (String, Value) {
    let names = [
        "kspyFuzzUnknown",
        "Privileged",
        "privileged ",
        "hostPID",
        "hostNetwork",
        "securityContext",
        "capabilities",
        "\u{0}",
        "",
        "$ref",
        "__proto__",
        "metadata",
        "spec",
        "name",
    ];
    let name = (*rng.pick(&names)).to_owned();
    (name, hostile_value(rng))
}

/// A value shortened for messages.
pub fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.len() > 80 {
        let mut end = 80;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}… ({} bytes)", &text[..end], text.len())
    } else {
        text
    }
}
