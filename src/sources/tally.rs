//! What each source received, fired and refused, counted in memory and added to the database
//! about once a second in one transaction, so that counting costs an inbound message no write
//! of its own. Reads add what is not written yet, so this instance's counts are exact at once.
//! A kill -9 loses at most the last second of counts, never an event.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::NaiveDateTime;

use crate::domain::ids::SourceId;
use crate::domain::source::{Rejection, SourceStatus};
use crate::store::sources::{Activity, Refused};
use crate::store::{self, Store};

/// How often counts are written.
const WRITE_EVERY: Duration = Duration::from_secs(1);
/// The most refused messages kept in memory per source between two writes.
const KEEP_REFUSED: usize = 20;
/// The most of each refused message kept, in bytes.
const EXCERPT_BYTES: usize = 1024;

#[derive(Debug, Default)]
pub struct Tally {
    unwritten: Mutex<HashMap<SourceId, Activity>>,
}

impl Tally {
    fn with(&self, id: &SourceId, f: impl FnOnce(&mut Activity)) {
        let mut unwritten = self.unwritten.lock().unwrap_or_else(PoisonError::into_inner);
        f(unwritten.entry(id.clone()).or_default());
    }

    /// A message arrived.
    pub fn received(&self, id: &SourceId) {
        self.with(id, |a| {
            a.received += 1;
            a.working = Some(true);
        });
    }

    /// A message fired an event at `at`.
    pub fn fired(&self, id: &SourceId, at: NaiveDateTime) {
        self.with(id, |a| {
            a.fired += 1;
            a.last_event_at = Some(a.last_event_at.map_or(at, |t| t.max(at)));
        });
    }

    /// A message was refused; `body` is what it carried.
    pub fn rejected(&self, id: &SourceId, at: NaiveDateTime, rejection: &Rejection, body: &[u8]) {
        let mut end = body.len().min(EXCERPT_BYTES);
        while end > 0 && end < body.len() && (body[end] & 0xC0) == 0x80 {
            end -= 1;
        }
        let excerpt = String::from_utf8_lossy(&body[..end]).replace('\0', "\u{FFFD}");
        self.with(id, |a| {
            a.rejected += 1;
            a.last_error = Some(format!("{}: {}", rejection.reason.as_str(), rejection.message));
            if a.rejections.len() == KEEP_REFUSED {
                a.rejections.remove(0);
            }
            a.rejections.push(Refused {
                at,
                reason: rejection.reason,
                message: rejection.message.clone(),
                excerpt,
            });
        });
    }

    /// Something went wrong that is no message's fault (a fetch that failed): shown as the
    /// source's last error, and the source is failing until it works again.
    pub fn failed(&self, id: &SourceId, error: String) {
        self.with(id, |a| {
            a.last_error = Some(error);
            a.working = Some(false);
        });
    }

    /// The source worked: a fetch answered, or a message arrived.
    pub fn worked(&self, id: &SourceId) {
        self.with(id, |a| a.working = Some(true));
    }

    /// `stored` with what this instance has not written yet.
    pub fn status_of(&self, id: &SourceId, stored: &SourceStatus) -> SourceStatus {
        let unwritten = self.unwritten.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(a) = unwritten.get(id) else { return stored.clone() };
        SourceStatus {
            received: stored.received + a.received,
            fired: stored.fired + a.fired,
            rejected: stored.rejected + a.rejected,
            last_event_at: stored.last_event_at.max(a.last_event_at),
            last_error: a.last_error.clone().or_else(|| stored.last_error.clone()),
        }
    }

    /// The refused messages of `id` not written yet, newest first.
    pub fn unwritten_rejections(&self, id: &SourceId) -> Vec<Refused> {
        let unwritten = self.unwritten.lock().unwrap_or_else(PoisonError::into_inner);
        unwritten.get(id).map(|a| a.rejections.iter().rev().cloned().collect()).unwrap_or_default()
    }

    /// Writes what was counted; on failure keeps it for the next write.
    pub async fn write(&self, store: &Store, now: NaiveDateTime) {
        let taken: Vec<(SourceId, Activity)> = {
            let mut unwritten = self.unwritten.lock().unwrap_or_else(PoisonError::into_inner);
            unwritten.drain().collect()
        };
        if taken.is_empty() {
            return;
        }
        let batch = taken.clone();
        if let Err(e) = store.write(move |c| store::sources::record_activity(c, &batch, now)).await {
            tracing::warn!(error = %e, "could not write the sources' counts; keeping them for the next try");
            let mut unwritten = self.unwritten.lock().unwrap_or_else(PoisonError::into_inner);
            for (id, old) in taken {
                let now = unwritten.entry(id).or_default();
                now.received += old.received;
                now.fired += old.fired;
                now.rejected += old.rejected;
                now.last_event_at = now.last_event_at.max(old.last_event_at);
                now.last_error = now.last_error.take().or(old.last_error);
                now.working = now.working.or(old.working);
                let mut rejections = old.rejections;
                rejections.append(&mut now.rejections);
                let extra = rejections.len().saturating_sub(KEEP_REFUSED);
                rejections.drain(..extra);
                now.rejections = rejections;
            }
        }
    }

    /// Writes the counts about once a second until `stop`, and once more then.
    pub async fn run(
        self: std::sync::Arc<Self>,
        store: Store,
        clock: crate::clock::SharedClock,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(WRITE_EVERY) => {}
                _ = stop.changed() => {}
            }
            self.write(&store, clock.now()).await;
            if stop.has_changed().is_err() || *stop.borrow() {
                return;
            }
        }
    }
}
