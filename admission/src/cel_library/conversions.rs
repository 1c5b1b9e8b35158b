//! Type conversions as cel-go's standard library has them (the overloads of `string`, `bool`,
//! `bytes`, `double`, `timestamp` and `duration`; `int` and `uint` in `mod.rs`).
//!
//! cel 0.13 lacked some overloads and answered others differently: `bool()` did not exist
//! (`bool('true')` was refused at load as an unknown function), `string(true)`,
//! `timestamp(1)`, `duration(1)`, `bytes(b'a')`, `timestamp(t)` and `duration(d)` failed,
//! `string(b'\xff')` replaced the invalid byte where cel-go fails, `string(1e6)` was
//! `'1000000'` where cel-go's `%g` writes `'1e+06'`, `string(duration('1h30m'))` was
//! `'1h30m0s'` where cel-go writes seconds (`'5400s'`), a timestamp was written with
//! `+00:00` and three-digit fractions where cel-go writes Go's RFC 3339 (`Z`, fractions
//! without trailing zeros), and `double('1e400')` was infinity where Go's `ParseFloat` fails.
//! What cel 0.13 and kube-cel do as cel-go does is left to them ([`kube_cel_call`]).

use std::sync::Arc;

use kube_cel::cel::extractors::This;
use kube_cel::cel::{FunctionContext, ResolveResult, Value};

use super::{kube_cel_call, value_type};

/// The least and the greatest Unix second of a CEL timestamp (0001-01-01T00:00:00Z and
/// 9999-12-31T23:59:59Z), as cel-go bounds `timestamp(int)`.
const MIN_UNIX_SECONDS: i64 = -62_135_596_800;
const MAX_UNIX_SECONDS: i64 = 253_402_300_799;

/// `string(x)`: as cel-go converts a bool (`'true'`), bytes (valid UTF-8 only), a double
/// (Go's `%g`), a timestamp (Go's RFC 3339 with nanoseconds) and a duration (seconds,
/// `'5400s'`); anything else (strings, integers, kube-cel's IP and CIDR values) as kube-cel
/// does.
pub(super) fn string(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    let text = match &this {
        Value::Bool(b) => b.to_string(),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => {
                return Err(ftx.error(
                    "invalid UTF-8 in bytes, cannot convert to string (as in Kubernetes): \
                     base64.encode(…) writes any bytes as a string",
                ));
            }
        },
        Value::Float(f) => go_format_g(*f),
        Value::Timestamp(t) => go_rfc3339_nano(t),
        Value::Duration(d) => go_duration_seconds(d),
        _ => return kube_cel_call(ftx, "string(a)", this, None),
    };
    Ok(Value::String(Arc::new(text)))
}

/// `bool(x)`: a bool as it is; a string as Go's `strconv.ParseBool` reads it (`1`, `t`, `T`,
/// `TRUE`, `true`, `True`, and `0`, `f`, `F`, `FALSE`, `false`, `False`), anything else failing.
pub(super) fn bool(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    match &this {
        Value::Bool(b) => Ok(Value::Bool(*b)),
        Value::String(s) => match s.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(Value::Bool(true)),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(Value::Bool(false)),
            other => Err(ftx.error(format!(
                "type conversion error from 'string' to 'bool': {other:?} is no bool (true is \
                 written 1, t, T, TRUE, true or True; false 0, f, F, FALSE, false or False)"
            ))),
        },
        other => Err(ftx.error(format!(
            "bool takes a bool or a string, not a {}",
            value_type(other)
        ))),
    }
}

/// `bytes(x)`: bytes as they are; a string's UTF-8.
pub(super) fn bytes(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    match this {
        Value::Bytes(b) => Ok(Value::Bytes(b)),
        Value::String(s) => Ok(Value::Bytes(Arc::new(s.as_bytes().to_vec()))),
        other => Err(ftx.error(format!(
            "bytes takes a string or bytes, not a {}",
            value_type(&other)
        ))),
    }
}

/// `double(x)`: a string as Go's `strconv.ParseFloat` reads it, failing past the range of a
/// double (`'1e400'`) where Rust reads infinity, and on a signed NaN; anything else as cel
/// does.
pub(super) fn double(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    let Value::String(s) = &this else {
        return kube_cel_call(ftx, "double(a)", this, None);
    };
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let named = ["inf", "infinity", "nan"]
        .iter()
        .any(|n| unsigned.eq_ignore_ascii_case(n));
    let signed_nan = unsigned.len() != s.len() && unsigned.eq_ignore_ascii_case("nan");
    match s.parse::<f64>() {
        Ok(f) if f.is_infinite() && !named => Err(ftx.error(format!(
            "type conversion error from 'string' to 'double': {s:?} is out of the range of a \
             double (as Go's strconv.ParseFloat reads it)"
        ))),
        Ok(f) if !signed_nan => Ok(Value::Float(f)),
        _ => Err(ftx.error(format!(
            "type conversion error from 'string' to 'double': {s:?} is no number"
        ))),
    }
}

/// `timestamp(x)`: an int as Unix seconds (within the years 1 to 9999, as cel-go bounds it),
/// a timestamp as it is; a string as cel reads it.
pub(super) fn timestamp(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    match this {
        Value::Int(seconds) => {
            let utc = chrono::FixedOffset::east_opt(0);
            (MIN_UNIX_SECONDS..=MAX_UNIX_SECONDS)
                .contains(&seconds)
                .then(|| chrono::DateTime::from_timestamp(seconds, 0))
                .flatten()
                .zip(utc)
                .map(|(t, utc)| Value::Timestamp(t.with_timezone(&utc)))
                .ok_or_else(|| {
                    ftx.error(format!(
                        "timestamp overflow: {seconds} seconds from 1970 is no timestamp (a \
                         timestamp lies from {MIN_UNIX_SECONDS} to {MAX_UNIX_SECONDS}, the \
                         years 1 to 9999)"
                    ))
                })
        }
        Value::Timestamp(t) => Ok(Value::Timestamp(t)),
        other => kube_cel_call(ftx, "timestamp(a)", other, None),
    }
}

/// `duration(x)`: an int as nanoseconds, a duration as it is; a string as cel reads it.
pub(super) fn duration(ftx: &FunctionContext, This(this): This<Value>) -> ResolveResult {
    match this {
        Value::Int(nanos) => Ok(Value::Duration(chrono::Duration::nanoseconds(nanos))),
        Value::Duration(d) => Ok(Value::Duration(d)),
        other => kube_cel_call(ftx, "duration(a)", other, None),
    }
}

/// `f` as Go's `fmt.Sprintf("%g", f)` writes it: the shortest digits that read back as `f`,
/// in exponent form (`1e+06`, `1.5e-07`) when the exponent is below -4 or at least 6 (Go's
/// rule for the shortest precision), else plainly (`-12300`, `0.0001`); `NaN`, `+Inf`, `-Inf`.
pub(super) fn go_format_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    let sign = if f.is_sign_negative() { "-" } else { "" };
    if f == 0.0 {
        return format!("{sign}0");
    }
    // Rust's `{:e}` writes the shortest round-tripping digits, `d.ddde±x`.
    let exp_form = format!("{:e}", f.abs());
    let (mantissa, exp) = exp_form.split_once('e').unwrap_or((&exp_form, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!(
            "{sign}{first}{dot}{rest}e{exp_sign}{:02}",
            exp.unsigned_abs()
        );
    }
    // Plain: Rust's `{}` writes the same shortest digits without an exponent.
    format!("{sign}{}", f.abs())
}

/// `t` as Go's `t.Format(time.RFC3339Nano)` writes it: in its own offset, `Z` for UTC, the
/// fraction of a second without trailing zeros (none when whole).
fn go_rfc3339_nano(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    use chrono::Timelike;
    let mut out = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    let offset = t.offset().local_minus_utc();
    if offset == 0 {
        out.push('Z');
    } else {
        let sign = if offset < 0 { '-' } else { '+' };
        let minutes = offset.unsigned_abs() / 60;
        out.push_str(&format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60));
    }
    out
}

/// `d` as cel-go writes a duration: its seconds as Go's `strconv.FormatFloat(d.Seconds(), 'f',
/// -1, 64)` writes them, then `s` (`'5400s'`, `'1.5s'`, `'-0.000000001s'`).
#[allow(clippy::cast_precision_loss)] // as Go computes `Seconds()`
fn go_duration_seconds(d: &chrono::Duration) -> String {
    let seconds = match d.num_nanoseconds() {
        // Go: whole seconds plus the rest in nanoseconds, each made a double.
        Some(n) => (n / 1_000_000_000) as f64 + (n % 1_000_000_000) as f64 / 1e9,
        None => d.num_seconds() as f64,
    };
    // Rust's `{}` writes the shortest round-tripping digits without an exponent, as Go's 'f'
    // with precision -1 does.
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::go_format_g;

    #[test]
    fn doubles_are_written_as_go_writes_them() {
        for (f, go) in [
            (1e6, "1e+06"),
            (123_456_789.0, "1.23456789e+08"),
            (100_000.0, "100000"),
            (-1.23e4, "-12300"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
            (1.5, "1.5"),
            (-0.0, "-0"),
            (1e100, "1e+100"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(go_format_g(f), go, "{f}");
        }
    }
}
