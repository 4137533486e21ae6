//! Trigger schedules: a 6-field cron expression (seconds first) read in a time zone.

use std::fmt;

use chrono::{NaiveDateTime, TimeZone as _};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A checked schedule. Ticks are computed in `timezone` (UTC when absent) and handed out in UTC.
#[derive(Clone)]
pub struct Schedule {
    expression: String,
    timezone: Option<String>,
    cron: Cron,
    tz: chrono_tz::Tz,
}

impl Schedule {
    /// Parses `expression` (`sec min hour day-of-month month day-of-week`, e.g. `0 0 * * * *`)
    /// and an IANA time zone such as `Europe/Paris`.
    pub fn parse(expression: &str, timezone: Option<&str>) -> Result<Self, String> {
        let expression = expression.trim();
        let fields = expression.split_whitespace().count();
        if fields != 6 {
            return Err(format!(
                "'{expression}' has {fields} fields; a schedule has 6: second minute hour day-of-month month day-of-week, e.g. '0 0 * * * *'"
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| format!("'{expression}' is not a valid cron expression: {e}"))?;
        let tz = match timezone {
            None => chrono_tz::UTC,
            Some(name) => name
                .parse::<chrono_tz::Tz>()
                .map_err(|_| format!("'{name}' is not an IANA time zone such as Europe/Paris or UTC"))?,
        };
        Ok(Self { expression: expression.to_owned(), timezone: timezone.map(str::to_owned), cron, tz })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    pub fn timezone(&self) -> Option<&str> {
        self.timezone.as_deref()
    }

    /// The latest tick at or before `at` (UTC), if there is one.
    pub fn latest_tick(&self, at: NaiveDateTime) -> Option<NaiveDateTime> {
        let local = self.tz.from_utc_datetime(&at);
        self.cron.find_previous_occurrence(&local, true).ok().map(|t| t.naive_utc())
    }

    /// The first tick after `at` (UTC), if there is one.
    pub fn next_tick(&self, at: NaiveDateTime) -> Option<NaiveDateTime> {
        let local = self.tz.from_utc_datetime(&at);
        self.cron.find_next_occurrence(&local, false).ok().map(|t| t.naive_utc())
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schedule")
            .field("expression", &self.expression)
            .field("timezone", &self.timezone)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression && self.timezone == other.timezone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn at(h: u32, m: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 3, 2).unwrap().and_hms_opt(h, m, s).unwrap()
    }

    #[test]
    fn hourly_ticks_fall_on_the_hour() {
        let s = Schedule::parse("0 0 * * * *", None).unwrap();
        assert_eq!(s.latest_tick(at(10, 30, 0)), Some(at(10, 0, 0)));
        assert_eq!(s.latest_tick(at(10, 0, 0)), Some(at(10, 0, 0)));
        assert_eq!(s.next_tick(at(10, 0, 0)), Some(at(11, 0, 0)));
    }

    #[test]
    fn the_seconds_field_counts() {
        let s = Schedule::parse("*/15 * * * * *", None).unwrap();
        assert_eq!(s.latest_tick(at(10, 0, 14)), Some(at(10, 0, 0)));
        assert_eq!(s.next_tick(at(10, 0, 14)), Some(at(10, 0, 15)));
    }

    #[test]
    fn weekday_names_and_ranges_are_read() {
        // 2026-03-02 is a Monday; the Saturday after it is skipped to the next Monday.
        let s = Schedule::parse("0 30 9 * * MON-FRI", None).unwrap();
        assert_eq!(s.next_tick(at(10, 0, 0)), Some(at(9, 30, 0) + chrono::TimeDelta::days(1)));
        let saturday = at(10, 0, 0) + chrono::TimeDelta::days(5);
        assert_eq!(s.next_tick(saturday), Some(at(9, 30, 0) + chrono::TimeDelta::days(7)));
    }

    #[test]
    fn a_time_zone_moves_the_ticks() {
        // 09:00 in Paris is 08:00 UTC in winter.
        let s = Schedule::parse("0 0 9 * * *", Some("Europe/Paris")).unwrap();
        assert_eq!(s.latest_tick(at(8, 30, 0)), Some(at(8, 0, 0)));
    }

    #[test]
    fn bad_expressions_and_zones_are_refused_with_the_reason() {
        assert!(Schedule::parse("0 * * * *", None).unwrap_err().contains("5 fields"));
        assert!(Schedule::parse("0 0 25 * * *", None).unwrap_err().contains("not a valid cron"));
        assert!(Schedule::parse("0 0 * * * *", Some("Mars/Olympus")).unwrap_err().contains("time zone"));
    }
}
