//! Polled sources (`HTTP_POLL`, `MONITOR`): which are due, taking one for a fetch (one instance
//! at a time), and firing what a fetch found exactly once: an item id is fired when its row in
//! `source_seen` is inserted, a monitor's crossing when its reading moves from the one read.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::events::insert_events;
use super::schema::{source_seen, sources};
use super::sources::SourceRow;
use super::{AnyConnection, StoreError, subscriptions, write_transaction};
use crate::domain::event::NewEvent;
use crate::domain::ids::SourceId;
use crate::domain::invocation::{InvocationKind, merge_params};
use crate::domain::source::poll::Reading;
use crate::domain::source::{Source, SourceType};
use crate::domain::trigger::Trigger;

/// How many item ids are kept per source.
pub const KEPT_IDS: i64 = 10_000;

/// Enabled polls and monitors due at `now`.
pub fn due(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<Vec<Source>, StoreError> {
    sources::table
        .filter(sources::kind.eq_any([SourceType::HttpPoll.as_str(), SourceType::Monitor.as_str()]))
        .filter(sources::enabled.eq(true))
        .filter(sources::next_poll_at.is_null().or(sources::next_poll_at.le(now)))
        .load::<SourceRow>(conn)?
        .into_iter()
        .map(SourceRow::into_domain)
        .collect()
}

/// Takes the source for a fetch now, and sets when it is next due; `false` when another
/// instance (or an earlier pass) took it first.
pub fn take(
    conn: &mut AnyConnection,
    id: &SourceId,
    now: NaiveDateTime,
    next: NaiveDateTime,
) -> Result<bool, StoreError> {
    let taken = diesel::update(sources::table.find(id.as_str()))
        .filter(sources::next_poll_at.is_null().or(sources::next_poll_at.le(now)))
        .set(sources::next_poll_at.eq(Some(next)))
        .execute(conn)?;
    Ok(taken == 1)
}

/// The event `input` makes on `trigger`, for its subscribers now.
fn event_for(
    conn: &mut AnyConnection,
    trigger: &Trigger,
    input: &serde_json::Map<String, serde_json::Value>,
) -> Result<NewEvent, StoreError> {
    let payload = serde_json::Value::Object(merge_params(&trigger.params, input));
    let subscribers = subscriptions::all_for_trigger(conn, &trigger.id)?;
    Ok(NewEvent::new(
        InvocationKind::RealTime,
        &trigger.id,
        serde_json::Value::Object(input.clone()).to_string(),
        "{}".into(),
        &payload,
        &subscribers,
    ))
}

/// An item a poll found: its id, and the event input when it makes one (an item that was refused
/// is still remembered, so it is refused once).
pub struct Found {
    pub id: String,
    pub input: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Remembers the ids of `found` not seen before and fires their events on `trigger`, in one
/// transaction; returns the ids that were new, in order.
pub fn fire_new(
    conn: &mut AnyConnection,
    id: &SourceId,
    trigger: &Trigger,
    found: &[Found],
    now: NaiveDateTime,
) -> Result<Vec<String>, StoreError> {
    write_transaction(conn, |conn| {
        let mut new = Vec::new();
        let mut events = Vec::new();
        for item in found {
            let row = (
                source_seen::source_id.eq(id.as_str()),
                source_seen::item_id.eq(&item.id),
                source_seen::seen_at.eq(now),
            );
            let inserted = match conn {
                AnyConnection::Postgresql(pg) => diesel::insert_into(source_seen::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(pg)?,
                AnyConnection::Sqlite(sqlite) => diesel::insert_into(source_seen::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(sqlite)?,
            };
            if inserted == 0 {
                continue;
            }
            new.push(item.id.clone());
            if let Some(input) = &item.input {
                events.push(event_for(conn, trigger, input)?);
            }
        }
        if !events.is_empty() {
            insert_events(conn, &events, now, None)?;
        }
        if !new.is_empty() {
            let keep: Option<NaiveDateTime> = source_seen::table
                .filter(source_seen::source_id.eq(id.as_str()))
                .order(source_seen::seen_at.desc())
                .offset(KEPT_IDS)
                .select(source_seen::seen_at)
                .first(conn)
                .optional()?;
            if let Some(oldest_kept) = keep {
                diesel::delete(
                    source_seen::table
                        .filter(source_seen::source_id.eq(id.as_str()))
                        .filter(source_seen::seen_at.lt(oldest_kept)),
                )
                .execute(conn)?;
            }
        }
        Ok(new)
    })
}

/// What a monitor last read.
pub fn reading(conn: &mut AnyConnection, id: &SourceId) -> Result<Option<(String, Reading)>, StoreError> {
    let state: Option<String> = sources::table.find(id.as_str()).select(sources::state).first(conn)?;
    Ok(state.and_then(|text| serde_json::from_str(&text).ok().map(|reading| (text, reading))))
}

/// Moves a monitor's reading from `was` (the stored text, `None` for none) to `now_reading`, and
/// fires `event` with it, in one transaction; `false` (nothing fired) when another instance moved
/// it first.
pub fn record_reading(
    conn: &mut AnyConnection,
    id: &SourceId,
    was: Option<&str>,
    now_reading: &Reading,
    event: Option<(&Trigger, &serde_json::Map<String, serde_json::Value>)>,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let text = serde_json::to_string(now_reading).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    write_transaction(conn, |conn| {
        let target = sources::table.find(id.as_str());
        let moved = match was {
            Some(was) => diesel::update(target.filter(sources::state.eq(was)))
                .set(sources::state.eq(&text))
                .execute(conn)?,
            None => diesel::update(target.filter(sources::state.is_null()))
                .set(sources::state.eq(&text))
                .execute(conn)?,
        };
        if moved == 0 {
            return Ok(false);
        }
        if let Some((trigger, input)) = event {
            let event = event_for(conn, trigger, input)?;
            insert_events(conn, std::slice::from_ref(&event), now, None)?;
        }
        Ok(true)
    })
}
