//! Recording outcomes: a batch of them in one transaction, retried while the database is away,
//! so that what a subscriber received is not sent again needlessly.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::metrics::{Delivery, Metrics};
use crate::store::outcomes::{self, Outcome, Recorded};
use crate::store::{Store, StoreError};

/// The most outcomes recorded in one transaction.
pub const MAX_BATCH: usize = 512;

/// How long a batch is retried before it is left to its leases (then delivered again).
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

/// Where outcomes are recorded, and counted once they are.
pub struct Recorder<'a> {
    pub store: &'a Store,
    pub owner: &'a str,
    pub clock: &'a SharedClock,
    pub metrics: &'a Metrics,
}

impl Recorder<'_> {
    pub async fn record(&self, outcomes: Arc<Vec<Outcome>>) -> Result<(), StoreError> {
        let (owner, now) = (self.owner.to_owned(), self.clock.now());
        let recorded = self.store.write_atomic(move |c| outcomes::record(c, &owner, &outcomes, now)).await?;
        self.count(&recorded);
        Ok(())
    }

    fn count(&self, recorded: &Recorded) {
        let m = self.metrics;
        m.delivery(Delivery::Delivered, recorded.delivered);
        m.delivery(Delivery::Retried, recorded.retried);
        m.delivery(Delivery::Dead, recorded.dead);
        m.delivery(Delivery::Refused, recorded.refused);
        for trigger in &recorded.published {
            m.published(trigger, 1);
        }
    }

    /// Records `outcomes`, retrying with backoff for up to a minute when the database fails.
    pub async fn record_until_done(&self, outcomes: Vec<Outcome>) {
        let outcomes = Arc::new(outcomes);
        let started = tokio::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            match self.record(outcomes.clone()).await {
                Ok(()) => return,
                Err(e) if started.elapsed() < GIVE_UP_AFTER => {
                    tracing::warn!(error = %e, outcomes = outcomes.len(), "recording outcomes failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                Err(e) => {
                    tracing::error!(
                        error = %e,
                        outcomes = outcomes.len(),
                        "recording outcomes failed for a minute; their leases will expire and they will be sent again"
                    );
                    return;
                }
            }
        }
    }
}
