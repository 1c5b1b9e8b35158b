//! Durations as Go writes them (`9s`, `500ms`, `1m30s`), for flags and for the API server's
//! `?timeout=`: one grammar, so a flag accepts what `kubectl` and the API server write.

use std::time::Duration;

/// A duration flag value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {0:?}: use a number with ms, s, m or h (e.g. 500ms, 9s, 1m30s), or plain seconds"
)]
pub struct DurationError(pub String);

/// Parses a flag value: a Go duration ([`parse_go_duration`]) or a bare number of seconds
/// (`3`, `1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(text.to_owned());
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let seconds: f64 = t.parse().map_err(|_| err())?;
        return Duration::try_from_secs_f64(seconds).map_err(|_| err());
    }
    parse_go_duration(t).ok_or_else(err)
}

/// Parses a duration as Go's `time.Duration.String` writes it and `time.ParseDuration` reads
/// it: one or more decimal numbers each with a unit (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`;
/// `10s`, `1m30s`, `1.5s`), or `0`. `None` for anything else, a negative duration included.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest.is_empty() {
        return None;
    }
    let mut seconds = 0.0_f64;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        seconds += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_go_durations_and_plain_seconds() {
        assert_eq!(parse_duration("9s"), Ok(Duration::from_secs(9)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration(" 9s "), Ok(Duration::from_secs(9)));
        for bad in ["", "s", "-1s", "5d", "1e400", "abc", "1.2.3s", "1.2.3", "."] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_durations_parse_as_go_writes_them() {
        for (text, want) in [
            ("10s", Duration::from_secs(10)),
            ("1m0s", Duration::from_secs(60)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5s", Duration::from_millis(1500)),
            ("500ms", Duration::from_millis(500)),
            ("250us", Duration::from_micros(250)),
            ("250µs", Duration::from_micros(250)),
            ("2h", Duration::from_secs(7200)),
            ("+3s", Duration::from_secs(3)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_go_duration(text), Some(want), "{text}");
        }
        for bad in [
            "",
            "s",
            "10",
            "-1s",
            "1.2.3s",
            "5d",
            "1e3s",
            "1s ",
            " 1s",
            "1 s",
            ".s",
            "1e400h",
            "99999999999999999999999h",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }
}
