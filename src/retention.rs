//! Retention: the background purge of what is past its retention ([`crate::store::purge`]), a
//! batch at a time with a pause between batches, on one instance at a time; `hookgate purge`
//! runs the same on demand.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::delivery::{Shutdown, every};
use crate::metrics::Metrics;
use crate::store::purge::{self, Cutoffs, Purged};
use crate::store::{Store, StoreError};

/// How often the background purge runs.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The pause between two batches, which lets other writes in.
const BETWEEN_BATCHES: Duration = Duration::from_millis(20);

/// How long finished work is kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub delivered: Duration,
    pub dead: Duration,
    pub audit: Duration,
}

impl Retention {
    pub fn of(settings: &Settings) -> Self {
        Self {
            delivered: settings.retention_delivered,
            dead: settings.retention_dead,
            audit: settings.retention_audit,
        }
    }

    /// Every kind kept for `age`.
    pub fn all(age: Duration) -> Self {
        Self { delivered: age, dead: age, audit: age }
    }

    pub fn cutoffs(&self, now: NaiveDateTime) -> Cutoffs {
        let ago = |d: Duration| now - TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX);
        Cutoffs { delivered: ago(self.delivered), dead: ago(self.dead), audit: ago(self.audit), now }
    }
}

pub struct Purger {
    store: Store,
    clock: SharedClock,
    retention: Retention,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Purger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Purger").field("retention", &self.retention).finish_non_exhaustive()
    }
}

impl Purger {
    pub fn new(store: Store, clock: SharedClock, retention: Retention, metrics: Arc<Metrics>) -> Self {
        Self { store, clock, retention, metrics }
    }

    /// Purges, batch after batch, until nothing past retention is left (or another instance
    /// purges); returns what it removed.
    pub async fn run_once(&self) -> Result<Purged, StoreError> {
        let cutoffs = self.retention.cutoffs(self.clock.now());
        let mut total = Purged::default();
        loop {
            let Some(batch) = self.store.write(move |c| purge::batch(c, cutoffs)).await? else {
                tracing::debug!("another instance is purging");
                break;
            };
            total.add(batch);
            self.count(batch);
            if !batch.full() {
                break;
            }
            tokio::time::sleep(BETWEEN_BATCHES).await;
        }
        if total != Purged::default() {
            tracing::info!(
                invocations = total.invocations,
                attempts = total.attempts,
                events = total.events,
                schedule_ticks = total.schedule_ticks,
                idempotency_keys = total.idempotency_keys,
                tokens = total.tokens,
                audit_entries = total.audit_entries,
                "purged what is past its retention"
            );
        }
        Ok(total)
    }

    fn count(&self, batch: Purged) {
        let m = &self.metrics;
        m.purged("invocations", batch.invocations);
        m.purged("attempts", batch.attempts);
        m.purged("events", batch.events);
        m.purged("schedule_ticks", batch.schedule_ticks);
        m.purged("idempotency_keys", batch.idempotency_keys);
        m.purged("tokens", batch.tokens);
        m.purged("audit_entries", batch.audit_entries);
    }

    /// Runs the purge every minute until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        every(PURGE_EVERY, shutdown, "purge", || self.run_once()).await;
    }
}
