//! Triggers and sources as the publish and inbound routes read them: each kept while nothing of
//! its kind has changed anywhere ([`crate::store::revisions`]: at once for a change made by this
//! instance, within a quarter second for one made elsewhere), and for a minute at most.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::domain::ids::{SourceId, TriggerId};
use crate::domain::source::Source;
use crate::domain::trigger::Trigger;
use crate::store::revisions::Cached;
use crate::store::{self, Store, StoreError};

/// The longest anything is trusted from memory.
const KEEP_FOR: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Entry<T> {
    value: Arc<T>,
    /// The count of changes of its kind when it was read.
    seen: u64,
    read: Instant,
}

/// Records of one kind, by id.
#[derive(Debug)]
pub struct Kept<T> {
    kind: Cached,
    entries: Mutex<HashMap<String, Entry<T>>>,
}

impl<T: Send + Sync + 'static> Kept<T> {
    fn new(kind: Cached) -> Self {
        Self { kind, entries: Mutex::new(HashMap::new()) }
    }

    /// The record `key`, from memory while fresh, else read by `load`.
    async fn get(
        &self,
        store: &Store,
        key: &str,
        load: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<Arc<T>, StoreError> {
        let seen = store.seen(self.kind);
        if let Some(entry) = self.lock().get(key)
            && entry.seen == seen
            && entry.read.elapsed() < KEEP_FOR
        {
            return Ok(entry.value.clone());
        }
        let value = Arc::new(load.await?);
        let entry = Entry { value: value.clone(), seen, read: Instant::now() };
        self.lock().insert(key.to_owned(), entry);
        Ok(value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry<T>>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Triggers, as publishing checks input against them.
#[derive(Debug)]
pub struct TriggerCache(Kept<Trigger>);

impl Default for TriggerCache {
    fn default() -> Self {
        Self(Kept::new(Cached::Triggers))
    }
}

impl TriggerCache {
    pub async fn get(&self, store: &Store, id: &TriggerId) -> Result<Arc<Trigger>, StoreError> {
        let wanted = id.clone();
        self.0.get(store, id.as_str(), store.run(move |c| store::triggers::get(c, &wanted))).await
    }
}

/// Sources, as their inbound route checks messages against them.
#[derive(Debug)]
pub struct SourceCache(Kept<Source>);

impl Default for SourceCache {
    fn default() -> Self {
        Self(Kept::new(Cached::Sources))
    }
}

impl SourceCache {
    pub async fn get(&self, store: &Store, id: &SourceId) -> Result<Arc<Source>, StoreError> {
        let wanted = id.clone();
        self.0.get(store, id.as_str(), store.run(move |c| store::sources::get(c, &wanted))).await
    }
}
