//! Per-subscription flow control: the limits a subscription may be given (`rateLimit`,
//! `maxInFlight`), the brake a subscriber's 429 or 503 puts on its rate, and the spacing of
//! request starts that keeps a rate (GCRA: each start reserves the next `1/rate` seconds).

use chrono::{NaiveDateTime, TimeDelta};

/// The lowest rate: of a `rateLimit`, and of a brake, in requests per second.
pub const MIN_RATE: f64 = 0.01;

/// The highest `rateLimit` accepted, in requests per second.
pub const MAX_RATE: f64 = 100_000.0;

/// The highest `maxInFlight` accepted.
pub const MAX_IN_FLIGHT: u32 = 10_000;

/// A brake halves the rate at most once in this long: the answers to requests already under
/// way when it was put on say nothing new.
const HALVE_AT_MOST_EVERY: TimeDelta = TimeDelta::seconds(1);

/// What a subscription was limited to; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Request starts per second, across every instance.
    pub rate: Option<f64>,
    /// Requests under way at once, across every instance.
    pub max_in_flight: Option<u32>,
}

impl Limits {
    /// Checks the values a caller gave.
    pub fn new(rate: Option<f64>, max_in_flight: Option<u32>) -> Result<Self, (&'static str, String)> {
        if let Some(rate) = rate
            && !(MIN_RATE..=MAX_RATE).contains(&rate)
        {
            return Err(("rateLimit", format!("must be between {MIN_RATE} and {MAX_RATE}")));
        }
        if let Some(max) = max_in_flight
            && !(1..=MAX_IN_FLIGHT).contains(&max)
        {
            return Err(("maxInFlight", format!("must be between 1 and {MAX_IN_FLIGHT}")));
        }
        Ok(Self { rate, max_in_flight })
    }

    pub fn is_unlimited(&self) -> bool {
        self.rate.is_none() && self.max_in_flight.is_none()
    }
}

/// A slowed rate: put on at `at`, it grows back by a tenth of itself (at least one request per
/// second) each second, and comes off once it reaches the rate limit or, without one, twice
/// the rate it was slowed to (the rate that drew the pushback).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Brake {
    pub rate: f64,
    pub at: NaiveDateTime,
}

impl Brake {
    /// The brake as stored: both halves, or none.
    pub fn stored(rate: Option<f64>, at: Option<NaiveDateTime>) -> Option<Self> {
        rate.zip(at).map(|(rate, at)| Self { rate, at })
    }

    fn grown(&self, now: NaiveDateTime) -> f64 {
        let seconds = (now - self.at).as_seconds_f64().max(0.0);
        self.rate + (self.rate / 10.0).max(1.0) * seconds
    }

    fn ceiling(&self, limit: Option<f64>) -> f64 {
        limit.unwrap_or(self.rate * 2.0)
    }

    /// Its rate at `now`, or `None` once it has come off.
    pub fn rate_at(&self, now: NaiveDateTime, limit: Option<f64>) -> Option<f64> {
        let grown = self.grown(now);
        (grown < self.ceiling(limit)).then_some(grown)
    }
}

/// The rate a subscription is sent at now: its limit, or less while a brake is on.
pub fn current_rate(limits: Limits, brake: Option<Brake>, now: NaiveDateTime) -> Option<f64> {
    let braked = brake.and_then(|b| b.rate_at(now, limits.rate));
    match (braked, limits.rate) {
        (Some(b), Some(l)) => Some(b.min(l)),
        (b, l) => b.or(l),
    }
}

/// The brake after a pushback at `now`, when the subscription was being sent at about
/// `observed` requests per second: half the current rate, unless it was halved a moment ago.
pub fn pushed_back(limits: Limits, brake: Option<Brake>, observed: f64, now: NaiveDateTime) -> Brake {
    if let Some(b) = brake
        && now - b.at < HALVE_AT_MOST_EVERY
    {
        return b;
    }
    let from = current_rate(limits, brake, now).unwrap_or(observed).min(observed.max(MIN_RATE * 2.0));
    let from = limits.rate.map_or(from, |l| from.min(l));
    Brake { rate: (from / 2.0).max(MIN_RATE), at: now }
}

/// Reserves `count` request starts: the first at `next_slot` or `now`, whichever is later, the
/// last ending where the rate allowed since the first adds up to `count` (a braked rate grows
/// meanwhile, so later starts come closer together). Returns the first start and the new next
/// slot; without a rate, both are the first start.
pub fn reserve(
    next_slot: NaiveDateTime,
    now: NaiveDateTime,
    limits: Limits,
    brake: Option<Brake>,
    count: u32,
) -> (NaiveDateTime, NaiveDateTime) {
    let start = next_slot.max(now);
    let seconds = span(limits, brake.filter(|b| b.rate_at(start, limits.rate).is_some()), start, count);
    let span = std::time::Duration::from_secs_f64(seconds.clamp(0.0, 1e6));
    (start, start + TimeDelta::from_std(span).unwrap_or(TimeDelta::MAX))
}

/// The seconds from `start` until the rate has allowed `count` starts. A brake holds its rate
/// until it is put on (`at`, later than now after a `Retry-After`), then grows linearly up to
/// its ceiling, from where the limit (or nothing) holds.
fn span(limits: Limits, brake: Option<Brake>, start: NaiveDateTime, count: u32) -> f64 {
    let mut left = f64::from(count);
    let Some(brake) = brake else { return limits.rate.map_or(0.0, |rate| left / rate.max(MIN_RATE)) };
    let rate = brake.rate.max(MIN_RATE);
    let mut elapsed = 0.0;
    let waiting = (brake.at - start).as_seconds_f64().max(0.0);
    if rate * waiting >= left {
        return left / rate;
    }
    left -= rate * waiting;
    elapsed += waiting;
    let growth = (rate / 10.0).max(1.0);
    let ceiling = brake.ceiling(limits.rate);
    let from = rate + growth * (start - brake.at).as_seconds_f64().max(0.0);
    let to_ceiling = ((ceiling - from) / growth).max(0.0);
    let area = f64::midpoint(from, ceiling) * to_ceiling;
    if area >= left {
        let taken = (from.mul_add(from, 2.0 * growth * left).sqrt() - from) / growth;
        return elapsed + taken;
    }
    left -= area;
    elapsed += to_ceiling;
    elapsed + limits.rate.map_or(0.0, |limit| left / limit)
}

/// The gap between two reserved starts at `rate`.
pub fn spacing(rate: f64) -> std::time::Duration {
    std::time::Duration::from_secs_f64(1.0 / rate.max(MIN_RATE))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> NaiveDateTime {
        chrono::DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap().naive_utc()
    }

    #[test]
    fn limits_refuse_what_cannot_be_kept() {
        assert!(Limits::new(Some(0.0), None).is_err());
        assert!(Limits::new(Some(f64::NAN), None).is_err());
        assert!(Limits::new(Some(MAX_RATE * 2.0), None).is_err());
        assert!(Limits::new(None, Some(0)).is_err());
        assert_eq!(
            Limits::new(Some(0.5), Some(3)).unwrap(),
            Limits { rate: Some(0.5), max_in_flight: Some(3) }
        );
    }

    #[test]
    #[expect(clippy::float_cmp, reason = "the halvings are exact")]
    fn a_pushback_halves_the_rate_once_a_second_and_it_grows_back_until_it_comes_off() {
        let limits = Limits { rate: Some(100.0), max_in_flight: None };
        let brake = pushed_back(limits, None, 400.0, at(0));
        assert_eq!(brake.rate, 50.0, "half the limit, not half of what was seen above it");
        assert_eq!(pushed_back(limits, Some(brake), 400.0, at(0)), brake, "no second halving at once");
        let again = pushed_back(limits, Some(brake), 400.0, at(2));
        assert_eq!(again.rate, 30.0, "half of 50 grown for 2 s by 5/s");
        assert_eq!(current_rate(limits, Some(again), at(2)), Some(30.0));
        assert_eq!(current_rate(limits, Some(again), at(10)), Some(54.0));
        assert_eq!(current_rate(limits, Some(again), at(30)), Some(100.0), "off: back to the limit");
        assert!(again.rate_at(at(30), limits.rate).is_none());
    }

    #[test]
    #[expect(clippy::float_cmp, reason = "the halvings are exact")]
    fn without_a_limit_the_brake_starts_from_what_was_seen_and_comes_off_at_twice_its_rate() {
        let brake = pushed_back(Limits::default(), None, 40.0, at(0));
        assert_eq!(brake.rate, 20.0);
        assert_eq!(current_rate(Limits::default(), Some(brake), at(5)), Some(30.0));
        assert_eq!(current_rate(Limits::default(), Some(brake), at(10)), None);
        assert_eq!(pushed_back(Limits::default(), None, 0.0, at(0)).rate, MIN_RATE);
    }

    #[test]
    fn reservations_space_starts_by_the_rate_and_never_start_in_the_past() {
        let limits = Limits { rate: Some(4.0), max_in_flight: None };
        let (start, next) = reserve(at(-5), at(0), limits, None, 2);
        assert_eq!((start, next), (at(0), at(0) + TimeDelta::milliseconds(500)));
        let (start, next) = reserve(next, at(0), limits, None, 4);
        assert_eq!(
            (start, next),
            (at(0) + TimeDelta::milliseconds(500), at(1) + TimeDelta::milliseconds(500))
        );
        assert_eq!(reserve(at(0), at(0), Limits::default(), None, 50), (at(0), at(0)), "unlimited");
    }

    fn seconds(from: NaiveDateTime, to: NaiveDateTime) -> f64 {
        (to - from).as_seconds_f64()
    }

    #[test]
    fn a_braked_rate_reserves_by_how_it_grows() {
        let limits = Limits { rate: Some(20.0), max_in_flight: None };
        let brake = Brake { rate: 0.5, at: at(2) };
        let (start, next) = reserve(at(0), at(0), limits, Some(brake), 1);
        assert!((seconds(start, next) - 2.0).abs() < 1e-6, "0.5/s while paused: one start takes 2 s");
        let (start, next) = reserve(at(2), at(2), limits, Some(brake), 1);
        let expected = (0.25f64 + 2.0).sqrt() - 0.5;
        assert!((seconds(start, next) - expected).abs() < 1e-6, "0.5 t + t²/2 = 1");
        let (_, next) = reserve(at(2), at(2), limits, Some(brake), 300);
        let to_ceiling = 19.5;
        let area = f64::midpoint(0.5, 20.0) * to_ceiling;
        let expected = to_ceiling + (300.0 - area) / 20.0;
        assert!((seconds(at(2), next) - expected).abs() < 1e-6, "then the limit holds");
        let off = reserve(at(2), at(2), Limits::default(), Some(Brake { rate: 1.0, at: at(2) }), 10);
        assert!((seconds(off.0, off.1) - 1.0).abs() < 1e-6, "1.5 starts until it comes off at 2/s");
    }
}
