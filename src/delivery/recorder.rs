//! Recording outcomes: a batch of them in one transaction, retried while the database is away,
//! so that what a subscriber received is not sent again needlessly.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::SharedClock;
use crate::store::outcomes::{self, Outcome};
use crate::store::{Store, StoreError};

/// The most outcomes recorded in one transaction.
pub const MAX_BATCH: usize = 512;

/// How long a batch is retried before it is left to its leases (then delivered again).
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

pub async fn record(
    store: &Store,
    owner: &str,
    clock: &SharedClock,
    outcomes: Arc<Vec<Outcome>>,
) -> Result<(), StoreError> {
    let (owner, now) = (owner.to_owned(), clock.now());
    store.write_atomic(move |c| outcomes::record(c, &owner, &outcomes, now)).await
}

/// Records `outcomes`, retrying with backoff for up to a minute when the database fails.
pub async fn record_until_done(store: &Store, owner: &str, clock: &SharedClock, outcomes: Vec<Outcome>) {
    let outcomes = Arc::new(outcomes);
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match record(store, owner, clock, outcomes.clone()).await {
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
