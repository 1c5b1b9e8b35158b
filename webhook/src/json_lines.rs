//! The JSON log line format: one object per event, written straight into the line.
//!
//! tracing-subscriber's own JSON format builds each line through serde: a map serializer per
//! event and, for every `%value` field, a `String` formatted and then serialized again. That
//! cost 22.8 K instructions per decision line, 4.4 % of a review (callgrind). This formatter
//! writes the same object — `timestamp` (RFC 3339, UTC, microseconds), `level`, then the
//! event's fields at the top level, `message` among them — escaping values as it formats
//! them, with no allocation. Spans and targets are left out, as the server configured the
//! serde one to do; traces carry the spans.

use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats each event as one JSON object on one line.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        writer.write_str("{\"timestamp\":\"")?;
        write_timestamp(&mut writer, SystemTime::now())?;
        write!(writer, "\",\"level\":\"{}\"", event.metadata().level())?;
        let mut fields = Fields {
            out: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`; the first error is kept and ends the line.
struct Fields<'a, 'w> {
    out: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = (|| {
                self.out.write_str(",\"")?;
                Escaped(&mut *self.out).write_str(field.name())?;
                self.out.write_str("\":")?;
                value(self.out)
            })();
        }
    }

    /// A field whose value is written as a JSON string.
    fn quoted(&mut self, field: &Field, text: fmt::Arguments<'_>) {
        self.field(field, |out| {
            out.write_char('"')?;
            Escaped(&mut *out).write_fmt(text)?;
            out.write_char('"')
        });
    }
}

impl Visit for Fields<'_, '_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields arrive here too, and `message`: their Debug is their Display.
        self.quoted(field, format_args!("{value:?}"));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.quoted(field, format_args!("{value}"));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.quoted(field, format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity: those are written as strings.
        if value.is_finite() {
            self.field(field, |out| write!(out, "{value}"));
        } else {
            self.field(field, |out| write!(out, "\"{value}\""));
        }
    }
}

/// Writes what it is given as the inside of a JSON string.
struct Escaped<'a, W: fmt::Write + ?Sized>(&'a mut W);

impl<W: fmt::Write + ?Sized> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..i])?;
            if escape.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = i + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

/// `now` as RFC 3339 in UTC with microseconds, e.g. `2026-11-26T22:10:00.123456Z`.
fn write_timestamp(out: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60,
        since.subsec_micros()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;

    use super::*;
    use crate::log_capture::Lines;

    /// The lines `log` writes through this format, each parsed.
    fn logged(log: impl FnOnce()) -> Vec<Value> {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(JsonLines)
            .with_writer(move || sink.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = lines.text();
        assert!(text.ends_with('\n'), "{text:?}");
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    struct Shown(&'static str);

    impl fmt::Display for Shown {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    #[test]
    fn fields_are_top_level_members_with_their_types() {
        let before = SystemTime::now();
        let lines = logged(|| {
            tracing::info!(
                endpoint = "validate",
                uid = %Shown("705ab4f5-6393-11e8-b7cc-42010a800002"),
                policies = ?["a", "b"],
                duration_us = 42u64,
                delta = -3i64,
                dry_run = false,
                share = 0.5f64,
                nan = f64::NAN,
                "decision"
            );
            tracing::warn!(count = 2, "second {}", "line");
        });
        assert_eq!(lines.len(), 2);
        let d = &lines[0];
        assert_eq!(d["level"], "INFO");
        assert_eq!(d["message"], "decision");
        assert_eq!(d["endpoint"], "validate");
        assert_eq!(d["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(d["policies"], r#"["a", "b"]"#);
        assert_eq!(d["duration_us"], 42);
        assert_eq!(d["delta"], -3);
        assert_eq!(d["dry_run"], false);
        assert_eq!(d["share"], 0.5);
        assert_eq!(d["nan"], "NaN");
        assert_eq!(lines[1]["level"], "WARN");
        assert_eq!(lines[1]["message"], "second line");
        // The timestamp is now, to the microsecond, in UTC.
        let stamp: k8s_openapi::jiff::Timestamp = d["timestamp"]
            .as_str()
            .expect("timestamp")
            .parse()
            .expect("RFC 3339");
        let stamp = SystemTime::from(stamp);
        assert!(
            stamp + Duration::from_micros(1) >= before,
            "{stamp:?} before {before:?}"
        );
        assert!(stamp <= SystemTime::now());
        assert!(d["timestamp"].as_str().expect("timestamp").ends_with('Z'));
    }

    #[test]
    fn values_are_escaped() {
        let nasty = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \0 esc \u{1b} é ✓";
        let lines = logged(|| {
            tracing::info!(user = nasty, shown = %Shown("a\"b"), "message with \"quotes\"\n");
        });
        assert_eq!(lines[0]["user"], nasty);
        assert_eq!(lines[0]["shown"], "a\"b");
        assert_eq!(lines[0]["message"], "message with \"quotes\"\n");
    }

    #[test]
    fn dates_follow_the_calendar() {
        let at = |secs: u64| {
            let mut s = String::new();
            write_timestamp(
                &mut s,
                UNIX_EPOCH + Duration::from_micros(secs * 1_000_000 + 7),
            )
            .expect("write");
            s
        };
        assert_eq!(at(0), "1970-01-01T00:00:00.000007Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00.000007Z");
        assert_eq!(at(1_795_732_199), "2026-11-26T22:29:59.000007Z");
        assert_eq!(at(4_107_542_399), "2100-02-28T23:59:59.000007Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00.000007Z");
    }
}
