//! Printing objects (`-o json|yaml`) and what the API server changed in them, and making text
//! that comes from the cluster safe to print on a terminal ([`printable`]).

use std::borrow::Cow;
use std::io::Write;

use serde::Serialize;
use serde_json::Value;

use crate::errors::KspyError;

/// `-o/--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Pretty JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Renders `value` in `format`.
pub fn render<T: Serialize>(value: &T, format: Output) -> Result<String, KspyError> {
    match format {
        Output::Json => serde_json::to_string_pretty(value)
            .map(|s| s + "\n")
            .map_err(|e| KspyError::new("cannot render JSON").source(e)),
        Output::Yaml => serde_saphyr::to_string(value)
            .map_err(|e| KspyError::new("cannot render YAML").source(e)),
    }
}

/// Prints `value` on stdout in `format`.
pub fn print<T: Serialize>(value: &T, format: Output) -> Result<(), KspyError> {
    write_stdout(render(value, format)?)
}

/// Writes `text` to stdout and flushes it. Unlike `print!`, which panics, a failed write is an
/// error, whose source is the `io::Error`: `main` ends quietly on a closed pipe
/// (`kspy ls | head -1`).
pub fn write_stdout(text: impl AsRef<[u8]>) -> Result<(), KspyError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_ref())
        .and_then(|()| out.flush())
        .map_err(|e| KspyError::new("cannot write to standard output").source(e))
}

/// `text` with every control character escaped (`\u{1b}` for ESC, `\n`, `\r`, `\t`), for
/// printing text that comes from the cluster: an image, a kubelet's waiting message, an API
/// server's or a webhook's message, a warning. Anyone who may add a debug container can put
/// ESC sequences in its image (the API server accepts them), and a terminal would obey them
/// when `kspy ls` prints it — move the cursor, rewrite earlier lines, set the window title.
/// Backslashes are left as they are, so escaping twice changes nothing.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Reports a server dry run's verdict `text` for a command run with `-o` as `output` and
/// `-q` as `quiet`. Without `-o` the verdict is the command's output: stdout. With `-o`,
/// stdout holds the object alone (so that it parses as JSON or YAML), and the verdict goes to
/// stderr, unless `-q` asked for the object only.
///
/// The warnings the API server and its webhooks sent with the dry run (a `Warn`-mode policy,
/// Pod Security's warn level), held for it ([`crate::warnings::Warnings::hold`]), are part of
/// the verdict; left out with it under `-q -o`, they are printed on stderr when kspy ends.
pub fn report_verdict(
    mut text: String,
    output: Option<Output>,
    quiet: bool,
) -> Result<(), KspyError> {
    if !(quiet && output.is_some()) {
        let warnings = crate::warnings::Warnings::process().take_held();
        if !warnings.is_empty() {
            text.push_str("warnings from the API server and its admission webhooks:\n");
            for w in warnings {
                text.push_str(&format!("  {}\n", crate::warnings::line(&w)));
            }
        }
    }
    match output {
        None => write_stdout(text),
        Some(_) if quiet => Ok(()),
        Some(_) => {
            eprint!("{text}");
            Ok(())
        }
    }
}

/// The leaf differences from `before` to `after`, one line each
/// (`securityContext.runAsNonRoot: (unset) → true`).
pub fn diff(before: &Value, after: &Value) -> Vec<String> {
    let mut out = Vec::new();
    diff_at("", before, after, &mut out);
    out
}

fn show(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "(unset)".to_string(),
        Some(v) => serde_json::to_string(v).unwrap_or_default(),
    }
}

fn diff_at(path: &str, before: &Value, after: &Value, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match (b.get(k), a.get(k)) {
                    (Some(bv), Some(av)) => diff_at(&p, bv, av, out),
                    (bv, av) => out.push(format!("{p}: {} → {}", show(bv), show(av))),
                }
            }
        }
        (b, a) if b != a => out.push(format!("{path}: {} → {}", show(Some(b)), show(Some(a)))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_lists_leaf_changes() {
        let before =
            json!({"name": "d", "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}}});
        let after = json!({"name": "d", "targetContainerName": "app",
            "securityContext": {"capabilities": {"add": ["SYS_PTRACE"]}, "runAsNonRoot": true}});
        assert_eq!(
            diff(&before, &after),
            vec![
                "securityContext.runAsNonRoot: (unset) → true",
                "targetContainerName: (unset) → \"app\""
            ]
        );
        assert!(diff(&before, &before).is_empty());
    }

    #[test]
    fn control_characters_are_escaped_for_the_terminal() {
        assert!(matches!(printable("busybox:1.36"), Cow::Borrowed(_)));
        assert_eq!(
            printable("evil\u{1b}]0;owned\u{7}\u{1b}[2J:latest"),
            "evil\\u{1b}]0;owned\\u{7}\\u{1b}[2J:latest"
        );
        // C1 controls (CSI is U+009B) too, and line breaks keep a table row on one line.
        assert_eq!(printable("a\u{9b}31mb"), "a\\u{9b}31mb");
        assert_eq!(printable("one\ntwo\r\tthree"), "one\\ntwo\\r\\tthree");
        // Idempotent: what was escaped once is printable already.
        let once = printable("x\u{1b}[1m").into_owned();
        assert_eq!(printable(&once), once);
        assert_eq!(printable("naïve ⠋ café"), "naïve ⠋ café");
    }

    #[test]
    fn yaml_and_json_render() {
        let v = json!({"name": "d", "args": ["a"]});
        let j = render(&v, Output::Json).expect("json");
        assert!(
            j.ends_with("}\n") && j.contains("\n  \"name\": \"d\""),
            "{j}"
        );
        assert_eq!(serde_json::from_str::<Value>(&j).expect("parses back"), v);
        let y = render(&v, Output::Yaml).expect("yaml");
        assert!(y.contains("name: d"), "{y}");
        let back: Value = serde_saphyr::from_str(&y).expect("parses back");
        assert_eq!(back, v);
    }
}
