//! Schedule ticks: one row per fired tick, so a tick fires once however many instances run.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::events::insert_events;
use super::schema::schedule_ticks;
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::event::NewEvent;
use crate::domain::ids::TriggerId;

/// Claims `tick` of `trigger` and, if this call claimed it, stores the event `make` builds for it
/// in the same transaction. Returns how many invocations were created, or `None` when the tick
/// had already fired (another instance, or an earlier pass).
pub fn fire(
    conn: &mut AnyConnection,
    trigger: &TriggerId,
    tick: NaiveDateTime,
    now: NaiveDateTime,
    make: impl FnOnce(&mut AnyConnection) -> Result<NewEvent, StoreError>,
) -> Result<Option<usize>, StoreError> {
    write_transaction(conn, |conn| {
        let row = (
            schedule_ticks::trigger_id.eq(trigger.as_str()),
            schedule_ticks::tick.eq(tick),
            schedule_ticks::created.eq(now),
        );
        let claimed = match conn {
            AnyConnection::Postgresql(pg) => {
                diesel::insert_into(schedule_ticks::table).values(row).on_conflict_do_nothing().execute(pg)?
            }
            AnyConnection::Sqlite(sqlite) => diesel::insert_into(schedule_ticks::table)
                .values(row)
                .on_conflict_do_nothing()
                .execute(sqlite)?,
        };
        if claimed == 0 {
            return Ok(None);
        }
        let event = make(conn)?;
        let (created, _) = insert_events(conn, std::slice::from_ref(&event), now, None)?;
        let invocations = created.first().map_or(0, Vec::len);
        if let Some(first) = created.first().and_then(|list| list.first()) {
            diesel::update(schedule_ticks::table.find((trigger.as_str(), tick)))
                .set(schedule_ticks::event_id.eq(Some(first.event_id.as_str())))
                .execute(conn)?;
        }
        Ok(Some(invocations))
    })
}

/// How many ticks of `trigger` have fired (tests, diagnostics).
pub fn fired(conn: &mut AnyConnection, trigger: &TriggerId) -> Result<Vec<NaiveDateTime>, StoreError> {
    Ok(schedule_ticks::table
        .filter(schedule_ticks::trigger_id.eq(trigger.as_str()))
        .order(schedule_ticks::tick)
        .select(schedule_ticks::tick)
        .load(conn)?)
}
