//! Triggers as publishing reads them: each kept while no trigger has changed anywhere
//! ([`crate::store::revisions`]: at once for a change made by this instance, within a quarter
//! second for one made elsewhere), and for a minute at most.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::ids::TriggerId;
use crate::domain::trigger::Trigger;
use crate::store::revisions::Cached;
use crate::store::{self, Store, StoreError};

/// The longest a trigger is trusted from memory.
const KEEP_FOR: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Kept {
    trigger: Arc<Trigger>,
    /// The count of trigger changes when it was read.
    seen: u64,
    read: Instant,
}

#[derive(Debug, Default)]
pub struct TriggerCache {
    kept: Mutex<HashMap<String, Kept>>,
}

impl TriggerCache {
    /// The trigger, from memory while fresh, else from the database.
    pub async fn get(&self, store: &Store, id: &TriggerId) -> Result<Arc<Trigger>, StoreError> {
        let seen = store.seen(Cached::Triggers);
        if let Some(kept) = self.lock().get(id.as_str())
            && kept.seen == seen
            && kept.read.elapsed() < KEEP_FOR
        {
            return Ok(kept.trigger.clone());
        }
        let wanted = id.clone();
        let trigger = Arc::new(store.run(move |c| store::triggers::get(c, &wanted)).await?);
        let kept = Kept { trigger: trigger.clone(), seen, read: Instant::now() };
        self.lock().insert(id.to_string(), kept);
        Ok(trigger)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Kept>> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
