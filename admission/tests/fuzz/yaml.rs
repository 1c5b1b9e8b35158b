//! YAML text for policy files: the documents written out in flow style, the same documents to
//! any YAML reader however they are written ([`write`]: anchors and aliases for repeated
//! subtrees, tags, comments, quoting), and hazards a broken or hostile file holds
//! ([`hazard`]: undefined and recursive aliases, merge keys, odd tags, directives, stray
//! indicators).

use serde_json::Value;

use super::rng::Rng;

/// How [`write`] writes.
#[derive(Debug, Clone, Copy, Default)]
pub struct YamlStyle {
    /// An anchor on some subtrees, and an alias for each later subtree equal to one.
    pub aliases: bool,
    /// `!!str`, `!!seq`, `!!map` tags now and then.
    pub tags: bool,
    /// Comments after some items.
    pub comments: bool,
}

/// The documents as one YAML stream in flow style; every string double-quoted, every
/// character outside printable ASCII escaped, so no scalar is read as another type.
pub fn write(rng: &mut Rng, docs: &[Value], style: YamlStyle) -> String {
    let mut out = String::new();
    for doc in docs {
        out.push_str("---\n");
        // Anchors hold within one document.
        let mut anchors: Vec<(Value, String)> = Vec::new();
        write_node(rng, doc, style, &mut anchors, &mut out);
        out.push('\n');
    }
    out
}

fn write_node(
    rng: &mut Rng,
    v: &Value,
    style: YamlStyle,
    anchors: &mut Vec<(Value, String)>,
    out: &mut String,
) {
    let big = matches!(v, Value::Array(a) if !a.is_empty())
        || matches!(v, Value::Object(m) if !m.is_empty())
        || matches!(v, Value::String(s) if s.len() > 3);
    if style.aliases && big {
        if let Some((_, name)) = anchors.iter().find(|(a, _)| a == v) {
            out.push('*');
            out.push_str(name);
            return;
        }
        if rng.one_in(3) {
            let name = format!("a{}", anchors.len());
            out.push('&');
            out.push_str(&name);
            out.push(' ');
            anchors.push((v.clone(), name));
        }
    }
    if style.tags && rng.one_in(6) {
        match v {
            Value::String(_) => out.push_str("!!str "),
            Value::Array(_) => out.push_str("!!seq "),
            Value::Object(_) => out.push_str("!!map "),
            _ => {}
        }
    }
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => quoted(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, item) in a.iter().enumerate() {
                if i > 0 {
                    separator(rng, style, out);
                }
                write_node(rng, item, style, anchors, out);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    separator(rng, style, out);
                }
                quoted(k, out);
                out.push_str(": ");
                write_node(rng, item, style, anchors, out);
            }
            out.push('}');
        }
    }
}

fn separator(rng: &mut Rng, style: YamlStyle, out: &mut String) {
    out.push(',');
    if style.comments && rng.one_in(5) {
        out.push_str(" # a comment, with: [flow] {indicators} &and *aliases\n");
    } else {
        out.push(' ');
    }
}

/// A YAML double-quoted scalar.
fn quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' '..='~' => out.push(c),
            c if (c as u32) <= 0xffff => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
}

/// Text a broken or hostile file holds; see [`hazard`].
const HAZARDS: &[&str] = &[
    "*undefined",
    "&a [*a]",
    "&a {b: *a}",
    "&x 1",
    "*x",
    "<<: *x",
    "<<: {privileged: true}",
    "<<: [*x, *x]",
    "!!binary aGVsbG8=",
    "!!python/object:os.system [ls]",
    "!custom {a: 1}",
    "!<tag:yaml.org,2002:str> x",
    "!!int 0xffffffffffffffffffffffff",
    "!!float .nan",
    "!!bool maybe",
    "!!null x",
    "!!timestamp 2001-12-14",
    ".inf",
    "-.inf",
    "0o777777777777777777777777",
    "%YAML 1.1",
    "%TAG ! tag:evil,2000:",
    "---",
    "...",
    "\t",
    "? [complex, key]\n: value",
    "{",
    "[",
    "}",
    "]",
    "|",
    ">-",
    "- - -",
    " : ",
    "'",
    "\"",
    "\"\\x\"",
    "@",
    "`",
    "\u{feff}",
    "\u{0}",
    "\r",
    "no",
    "yes",
    "~",
    "=",
    "0x",
    "1_000",
];

/// `text` with a hazard inserted at a random line, either alone on a line or within one.
pub fn hazard(rng: &mut Rng, text: &str) -> (String, String) {
    let hazard = *rng.pick(HAZARDS);
    let lines: Vec<&str> = text.split('\n').collect();
    let at = rng.below(lines.len());
    let mut out = Vec::with_capacity(lines.len() + 1);
    for (i, line) in lines.iter().enumerate() {
        if i == at {
            if rng.one_in(2) {
                out.push(hazard.to_owned());
                out.push((*line).to_owned());
            } else {
                let mut l = (*line).to_owned();
                let mut cut = rng.below(l.len() + 1);
                while !l.is_char_boundary(cut) {
                    cut -= 1;
                }
                l.insert_str(cut, hazard);
                out.push(l);
            }
        } else {
            out.push((*line).to_owned());
        }
    }
    (out.join("\n"), format!("{hazard:?} at line {}", at + 1))
}
