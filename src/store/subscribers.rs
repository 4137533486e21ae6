//! The subscribers of each trigger as publishing last read them, so that a publish group does
//! not read them again. They are kept together with the database's count of subscription
//! changes (`revisions`) at the time they were read, and used only while that count has not
//! moved: on SQLite the publish's transaction reads the count first; on PostgreSQL the write
//! itself stores nothing if the count moved ([`super::pg_batch`]), and the publish reads again.
//! Either way a publish sees every subscription committed before it began, as reading them in
//! its own transaction would.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use diesel::prelude::*;

use super::revisions::Cached;
use super::schema::revisions;
use super::{AnyConnection, StoreError, subscriptions};
use crate::domain::ids::TriggerId;
use crate::domain::subscription::Subscription;

/// Triggers whose subscribers are kept at most; beyond that the memory starts over.
const MAX_TRIGGERS: usize = 10_000;

#[derive(Debug)]
struct Kept {
    /// The count of subscription changes they were read under.
    revision: i64,
    by_trigger: HashMap<String, Arc<Vec<Subscription>>>,
}

#[derive(Debug)]
pub struct Subscribers {
    kept: Mutex<Kept>,
}

impl Default for Subscribers {
    fn default() -> Self {
        Self { kept: Mutex::new(Kept { revision: -1, by_trigger: HashMap::new() }) }
    }
}

/// The subscribers of the triggers a publish names, and the count they were read under: the
/// write must check that it has not moved (PostgreSQL).
pub struct Read {
    pub revision: i64,
    pub by_trigger: HashMap<String, Arc<Vec<Subscription>>>,
}

impl Subscribers {
    /// The subscribers of `triggers`, from memory while the count has not moved, else from the
    /// database.
    pub(super) fn of(&self, conn: &mut AnyConnection, triggers: &[&TriggerId]) -> Result<Read, StoreError> {
        // PostgreSQL trusts what is kept: its write checks the count.
        if matches!(conn, AnyConnection::Postgresql(_))
            && let Some(read) = self.lock().read(triggers, None)
        {
            return Ok(read);
        }
        let revision = current_revision(conn)?;
        if let Some(read) = self.lock().read(triggers, Some(revision)) {
            return Ok(read);
        }
        let mut by_trigger = HashMap::new();
        for trigger in triggers {
            if !by_trigger.contains_key(trigger.as_str()) {
                let subs = Arc::new(subscriptions::all_for_trigger(conn, trigger)?);
                by_trigger.insert(trigger.to_string(), subs);
            }
        }
        let mut kept = self.lock();
        // Counts only rise: a read under an older count than the one kept is not kept.
        if revision > kept.revision || kept.by_trigger.len() >= MAX_TRIGGERS {
            kept.by_trigger.clear();
            kept.revision = revision;
        }
        if revision == kept.revision {
            kept.by_trigger.extend(by_trigger.iter().map(|(t, s)| (t.clone(), s.clone())));
        }
        Ok(Read { revision, by_trigger })
    }

    /// Forgets everything (the count moved under a write).
    pub(super) fn forget(&self) {
        let mut kept = self.lock();
        kept.by_trigger.clear();
        kept.revision = -1;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Kept {
    /// What is kept for all of `triggers`, if it is (and was read under `revision`, if given).
    fn read(&self, triggers: &[&TriggerId], revision: Option<i64>) -> Option<Read> {
        if self.revision < 0 || revision.is_some_and(|r| r != self.revision) {
            return None;
        }
        let mut by_trigger = HashMap::new();
        for trigger in triggers {
            by_trigger.insert(trigger.to_string(), self.by_trigger.get(trigger.as_str())?.clone());
        }
        Some(Read { revision: self.revision, by_trigger })
    }
}

fn current_revision(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(revisions::table
        .find(Cached::Subscriptions.name())
        .select(revisions::value)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}
