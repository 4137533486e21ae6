//! Auto-disable: once a minute, a subscription whose deliveries have all failed for
//! `disable_after` (at least [`MIN_FAILURES`] of them) is switched off with the reason, exactly
//! as a 410 Gone does: its real-time events are held as dead letters until it is enabled again,
//! so enabling it and replaying them loses nothing. Each one is published on
//! `hookgate:subscription-disabled` and audited. Every instance sweeps; the subscription's row
//! lock makes each switch happen once.

use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;

use crate::clock::SharedClock;
use crate::delivery::{Shutdown, every};
use crate::domain::duration::format_duration;
use crate::store::health::{self, Streak};
use crate::store::{Store, StoreError};

/// How often the sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The fewest failures that switch a subscription off, however long they span.
pub const MIN_FAILURES: i32 = 5;

#[derive(Debug)]
pub struct Sweeper {
    store: Store,
    clock: SharedClock,
    after: Duration,
}

impl Sweeper {
    pub fn new(store: Store, clock: SharedClock, after: Duration) -> Self {
        Self { store, clock, after }
    }

    /// Switches off what has failed for too long; returns their failing streaks.
    pub async fn run_once(&self) -> Result<Vec<Streak>, StoreError> {
        let now = self.clock.now();
        let before = now - TimeDelta::from_std(self.after).unwrap_or(TimeDelta::MAX);
        let after = format_duration(self.after);
        let disabled = self.store.write(move |c| health::sweep(c, now, before, MIN_FAILURES, &after)).await?;
        for streak in &disabled {
            tracing::warn!(
                subscription.id = %streak.subscription,
                failures = streak.failures,
                since = %streak.since,
                "every delivery to the subscription failed for too long; switched it off"
            );
        }
        Ok(disabled)
    }

    /// Sweeps every minute until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        every(SWEEP_EVERY, shutdown, "auto-disable sweep", || self.run_once()).await;
    }
}
