//! The fields of a text log line (`--log-format text`): `message name=value name=value`, with
//! every value that could be mistaken for more than one value quoted and escaped.
//!
//! tracing-subscriber's own text fields write `%value` fields and the message as they are, so a
//! username holding a line feed wrote a second, forged log line, and one holding
//! ` verdict=allowed` a forged field. Here:
//!
//! - a value is written bare when it is not empty and holds no white space, no `=`, no `"`, no
//!   `\` and no control character; otherwise it is written in double quotes, with `"` and `\`
//!   escaped as `\"` and `\\`, line feed, carriage return and tab as `\n`, `\r`, `\t`, and
//!   any other control character (ANSI escapes included) and the Unicode line and paragraph
//!   separators as `\u{…}`;
//! - the message is written first and bare, with the same escapes for control characters;
//! - numbers and booleans are written as they are.
//!
//! So one event is always one line, and `name=` starts a field only where a field starts.
//! The JSON format (`src/json_lines.rs`) escapes its values for JSON.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// Formats an event's fields for the text log format; see the module documentation.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextFields;

impl<'writer> FormatFields<'writer> for TextFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut visitor = Visitor {
            out: writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct Visitor<'w> {
    out: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    fn separator(&mut self) -> fmt::Result {
        if self.first {
            self.first = false;
            Ok(())
        } else {
            self.out.write_char(' ')
        }
    }

    /// A field whose value is text: the message bare, others bare or quoted.
    fn text(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.separator()?;
            // Formatted once; most values are short.
            let mut text = String::new();
            text.write_fmt(value)?;
            if field.name() == "message" {
                Escaped(&mut self.out).write_str(&text)
            } else {
                write!(self.out, "{}=", field.name())?;
                if needs_quotes(&text) {
                    self.out.write_char('"')?;
                    Escaped(&mut self.out).write_str(&text)?;
                    self.out.write_char('"')
                } else {
                    self.out.write_str(&text)
                }
            }
        })();
    }

    /// A field whose value cannot hold anything to escape (numbers, booleans).
    fn plain(&mut self, field: &Field, value: &dyn fmt::Display) {
        if self.result.is_err() {
            return;
        }
        self.result = (|| {
            self.separator()?;
            write!(self.out, "{}={value}", field.name())
        })();
    }
}

impl Visit for Visitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields and the message arrive here: their Debug is their Display.
        self.text(field, format_args!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, format_args!("{value}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.text(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.plain(field, &value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.plain(field, &value);
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.plain(field, &value);
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.plain(field, &value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.plain(field, &value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.plain(field, &value);
    }
}

/// Whether `text` has to be quoted to read as one value.
fn needs_quotes(text: &str) -> bool {
    text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '=' | '"' | '\\'))
}

/// Writes text with `"` and `\` and every control or line-breaking character escaped.
struct Escaped<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, c) in s.char_indices() {
            let escape = match c {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{{{:x}}}", u32::from(c))?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + c.len_utf8();
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::log_capture::Lines;

    /// What `log` writes through the text format, without ANSI colours.
    fn logged(log: impl FnOnce()) -> String {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(TextFields)
            .with_ansi(false)
            .with_target(false)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        lines.text()
    }

    struct Shown(&'static str);

    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    #[test]
    fn a_value_cannot_start_a_line_or_a_field() {
        let forged =
            "mallory\n2026-11-27T00:00:00.000000Z  INFO decision uid=forged verdict=allowed";
        let text = logged(|| {
            tracing::info!(
                user = %Shown(forged),
                other = "bob verdict=allowed",
                verdict = "denied",
                "decision"
            );
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.ends_with(
                " INFO decision user=\"mallory\\n2026-11-27T00:00:00.000000Z  INFO decision uid=forged verdict=allowed\" other=\"bob verdict=allowed\" verdict=denied\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn plain_values_stay_bare_and_the_rest_is_escaped() {
        let text = logged(|| {
            tracing::warn!(
                uid = "705ab4f5-6393-11e8",
                empty = "",
                quote = "a\"b",
                slash = "a\\b",
                bell = "\u{7}\u{1b}[31m\u{2028}",
                unicode = "é✓",
                count = 3u64,
                delta = -2i64,
                ok = true,
                policies = ?["a", "b"],
                "line one\nline two"
            );
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(
                " WARN line one\\nline two uid=705ab4f5-6393-11e8 empty=\"\" quote=\"a\\\"b\" slash=\"a\\\\b\" bell=\"\\u{7}\\u{1b}[31m\\u{2028}\" unicode=é✓ count=3 delta=-2 ok=true policies=\"[\\\"a\\\", \\\"b\\\"]\"\n"
            ),
            "{text}"
        );
    }
}
