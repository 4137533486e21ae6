//! How hookgate writes times: ISO 8601 in UTC, to the millisecond.

use chrono::NaiveDateTime;

pub fn iso(t: NaiveDateTime) -> String {
    t.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
