//! The accessors of timestamps and durations, as cel-go has them.

use kube_cel::cel::extractors::{Arguments, This};
use kube_cel::cel::{FunctionContext, ResolveResult, Value};

use super::value_type;

/// The accessors of timestamps (and, for the last four, durations) kspy registers.
pub(super) const TIME_ACCESSORS: [&str; 10] = [
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
];

/// `<timestamp>.getHours([<string>])` and the other [`TIME_ACCESSORS`] as cel-go has them: a
/// timestamp's parts in UTC, or in the time zone given (`'+05:30'`, `'-08:00'` or `'UTC'`), and
/// a duration's whole hours, minutes, seconds or milliseconds as an int. cel 0.13 read a
/// timestamp's parts in the offset it was written with (`timestamp('2024-01-02T00:30:00+01:00')
/// .getHours()` was 0 where Kubernetes answers 23), ignored the time zone argument, and cut a
/// duration's count to 32 bits: `duration('4294970000s').getSeconds()` was 2704, so a guardrail
/// `getSeconds() <= 3600` held for a duration of 136 years.
pub(super) fn time_accessor(
    ftx: &FunctionContext,
    This(this): This<Value>,
    Arguments(args): Arguments,
) -> ResolveResult {
    match (&this, &args[..]) {
        (Value::Duration(d), []) => Ok(Value::Int(match ftx.name {
            "getHours" => d.num_hours(),
            "getMinutes" => d.num_minutes(),
            "getSeconds" => d.num_seconds(),
            "getMilliseconds" => d.num_milliseconds(),
            name => {
                return Err(ftx.error(format!(
                    "{name} takes a timestamp, not a duration (a duration has getHours, \
                     getMinutes, getSeconds and getMilliseconds)"
                )));
            }
        })),
        (Value::Timestamp(t), []) => Ok(timestamp_part(
            ftx.name,
            &t.with_timezone(&chrono_utc_offset()),
        )),
        (Value::Timestamp(t), [Value::String(zone)]) => {
            let offset = time_zone(zone).map_err(|err| ftx.error(err))?;
            Ok(timestamp_part(ftx.name, &t.with_timezone(&offset)))
        }
        _ => Err(ftx.error(format!(
            "{} takes a timestamp and, optionally, a time zone ('+01:00' or 'UTC'), or a \
             duration (got {}{})",
            ftx.name,
            value_type(&this),
            args.iter()
                .map(|a| format!(", {}", value_type(a)))
                .collect::<String>()
        ))),
    }
}

/// UTC as a fixed offset.
fn chrono_utc_offset() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("0 is a valid offset"))
}

/// A timestamp's part named by its accessor, as cel-go counts it (months and days of the year
/// and month from 0, days of the week from Sunday = 0).
fn timestamp_part(name: &str, t: &chrono::DateTime<chrono::FixedOffset>) -> Value {
    use chrono::{Datelike, Timelike};
    Value::Int(match name {
        "getFullYear" => i64::from(t.year()),
        "getMonth" => i64::from(t.month0()),
        "getDayOfYear" => i64::from(t.ordinal0()),
        "getDayOfMonth" => i64::from(t.day0()),
        "getDate" => i64::from(t.day()),
        "getDayOfWeek" => i64::from(t.weekday().num_days_from_sunday()),
        "getHours" => i64::from(t.hour()),
        "getMinutes" => i64::from(t.minute()),
        "getSeconds" => i64::from(t.second()),
        _ => i64::from(t.nanosecond() / 1_000_000),
    })
}

/// A time zone argument as cel-go reads it: with a `:`, an offset from UTC in hours and
/// minutes (`'+05:30'`, `'-08:00'`); without, a zone name, of which kspy knows `UTC` only
/// (cel-go reads the IANA database, which kspy does not carry): another is an error, which
/// denies, saying to give the offset.
fn time_zone(zone: &str) -> Result<chrono::FixedOffset, String> {
    let Some((hours, minutes)) = zone.split_once(':') else {
        return match zone {
            "" | "UTC" => Ok(chrono_utc_offset()),
            _ => Err(format!(
                "time zone {zone:?}: kspy knows no time zone names but UTC; give the offset from \
                 UTC instead ('-05:00')"
            )),
        };
    };
    let bad = || format!("time zone {zone:?}: an offset is written '+05:30' or '-08:00'");
    let hours: i32 = hours.parse().map_err(|_| bad())?;
    let minutes: i32 = minutes.parse().map_err(|_| bad())?;
    let offset = if zone.starts_with('-') {
        hours.checked_mul(60).and_then(|h| h.checked_sub(minutes))
    } else {
        hours.checked_mul(60).and_then(|h| h.checked_add(minutes))
    };
    offset
        .and_then(|m| m.checked_mul(60))
        .and_then(chrono::FixedOffset::east_opt)
        .ok_or_else(bad)
}
