//! Triggers as publishing reads them: each kept for half a second, and all forgotten at once
//! when this instance changes one. Another instance's change is seen within that half second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::ids::TriggerId;
use crate::domain::trigger::Trigger;
use crate::store::{self, Store, StoreError};

const FRESH_FOR: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub struct TriggerCache {
    entries: Mutex<HashMap<String, (Arc<Trigger>, Instant)>>,
}

impl TriggerCache {
    /// The trigger, from memory while fresh, else from the database.
    pub async fn get(&self, store: &Store, id: &TriggerId) -> Result<Arc<Trigger>, StoreError> {
        if let Some((trigger, read)) = self.lock().get(id.as_str())
            && read.elapsed() < FRESH_FOR
        {
            return Ok(trigger.clone());
        }
        let wanted = id.clone();
        let trigger = Arc::new(store.run(move |c| store::triggers::get(c, &wanted)).await?);
        self.lock().insert(id.to_string(), (trigger.clone(), Instant::now()));
        Ok(trigger)
    }

    /// Forgets every trigger (this instance changed one).
    pub fn forget(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<Trigger>, Instant)>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
