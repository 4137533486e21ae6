//! Where "now" comes from: the system clock in production, a manual one in tests.

use std::sync::{Arc, Mutex};

use chrono::{NaiveDateTime, TimeDelta, Utc};

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current UTC time, truncated to microseconds (what both databases store).
    fn now(&self) -> NaiveDateTime;
}

pub type SharedClock = Arc<dyn Clock>;

fn truncate(t: NaiveDateTime) -> NaiveDateTime {
    let micros = t.and_utc().timestamp_micros();
    chrono::DateTime::from_timestamp_micros(micros).map_or(t, |d| d.naive_utc())
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> NaiveDateTime {
        truncate(Utc::now().naive_utc())
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock(Mutex<NaiveDateTime>);

impl ManualClock {
    pub fn new(start: NaiveDateTime) -> Self {
        Self(Mutex::new(truncate(start)))
    }

    pub fn advance(&self, by: TimeDelta) {
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> NaiveDateTime {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
