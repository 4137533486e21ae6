//! ISO-8601 durations (`PT1H`, `P1DT12H`, `PT30M`), as SailPoint writes `responseDeadline`, and
//! short ones (`500ms`, `5s`, `2m`), as settings and hookgate's own fields write them.

use std::fmt;
use std::time::Duration;

/// Parses `500ms`, `5s`, `2m`, `1h`, `1d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("'{text}' is not a duration such as 500ms, 5s, 2m, 1h or 1d");
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let secs = |mult: u64| n.checked_mul(mult).map(Duration::from_secs).ok_or_else(bad);
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => secs(1),
        "m" => secs(60),
        "h" => secs(3600),
        "d" => secs(86400),
        _ => Err(bad()),
    }
}

/// Writes a duration as [`parse_duration`] reads it, in the largest unit that divides it.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if d.subsec_nanos() != 0 || secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsoDuration {
    text: String,
    duration: Duration,
}

impl IsoDuration {
    pub fn as_str(&self) -> &str {
        &self.text
    }
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl Default for IsoDuration {
    fn default() -> Self {
        Self { text: "PT1H".into(), duration: Duration::from_secs(3600) }
    }
}

impl fmt::Display for IsoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for IsoDuration {
    type Err = String;

    /// Years count 365 days and months 30: a deadline needs a length, not a calendar.
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("'{text}' is not an ISO-8601 duration such as PT1H or P1DT30M");
        let rest = text.strip_prefix('P').ok_or_else(bad)?;
        let (date, time) = match rest.split_once('T') {
            Some((d, t)) if !t.is_empty() => (d, Some(t)),
            Some(_) => return Err(bad()),
            None => (rest, None),
        };
        let mut seconds = 0f64;
        let mut any = false;
        let mut add = |part: &str, units: &[(char, f64)]| -> Result<(), String> {
            let mut number = String::new();
            let mut last_unit = -1i32;
            for c in part.chars() {
                if c.is_ascii_digit() || c == '.' {
                    number.push(c);
                    continue;
                }
                let idx = units.iter().position(|(u, _)| *u == c).ok_or_else(bad)?;
                let idx = i32::try_from(idx).map_err(|_| bad())?;
                let value: f64 = number.parse().map_err(|_| bad())?;
                if idx <= last_unit {
                    return Err(bad());
                }
                last_unit = idx;
                seconds += value * units[usize::try_from(idx).map_err(|_| bad())?].1;
                number.clear();
                any = true;
            }
            if number.is_empty() { Ok(()) } else { Err(bad()) }
        };
        add(date, &[('Y', 365.0 * 86400.0), ('M', 30.0 * 86400.0), ('W', 7.0 * 86400.0), ('D', 86400.0)])?;
        if let Some(time) = time {
            add(time, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
        }
        if !any || !seconds.is_finite() || seconds > 366.0 * 86400.0 * 100.0 {
            return Err(bad());
        }
        Ok(Self { text: text.to_owned(), duration: Duration::from_secs_f64(seconds) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_durations_are_written_as_they_are_read() {
        for text in ["5d", "36h", "90m", "61s", "1500ms"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
        assert_eq!(format_duration(Duration::from_secs(86_400 * 5)), "5d");
    }

    #[test]
    fn parses_the_durations_sailpoint_uses() {
        for (text, secs) in
            [("PT1H", 3600), ("PT30M", 1800), ("P1D", 86400), ("P1DT2H3M4S", 93784), ("PT0.5S", 0)]
        {
            let d: IsoDuration = text.parse().unwrap();
            assert_eq!(d.duration().as_secs(), secs, "{text}");
            assert_eq!(d.as_str(), text);
        }
    }

    #[test]
    fn refuses_malformed_durations() {
        for text in ["", "1H", "P", "PT", "PT1", "PTH", "P1H", "PT1M1H", "soon"] {
            assert!(text.parse::<IsoDuration>().is_err(), "{text}");
        }
    }
}
