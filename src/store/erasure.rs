//! Erasure on request: matching invocations go with their events, their attempts and replays,
//! for a data-subject request. An event's payload is the data, so an event goes whole: every
//! invocation of it is removed, matched or not. An event with an invocation in flight is left
//! alone (that attempt is being recorded); the answer counts the matching invocations left, and
//! a repeated request erases them once they have settled.

use diesel::prelude::*;
use serde::Serialize;

use super::invocations::{Condition, filtered};
use super::purge::{BATCH, remove_unreferenced};
use super::schema::{attempts, invocations};
use super::{AnyConnection, StoreError, write_transaction};

const IN_FLIGHT: &str = "IN_FLIGHT";

/// What an erasure removed, and what it had to leave.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Erased {
    pub invocations: u64,
    pub attempts: u64,
    pub events: u64,
    /// Matching invocations left because an invocation of their event is in flight: repeat the
    /// request once it settles.
    pub left: u64,
}

/// Erases the events of up to [`BATCH`] matching invocations, in one transaction; `None` when
/// no matching invocation is left to erase.
pub fn erase_batch(conn: &mut AnyConnection, conditions: &[Condition]) -> Result<Option<Erased>, StoreError> {
    write_transaction(conn, |conn| {
        let busy = diesel::alias!(invocations as busy);
        let in_flight = busy
            .filter(busy.field(invocations::event_id).eq(invocations::event_id))
            .filter(busy.field(invocations::state).eq(IN_FLIGHT))
            .select(busy.field(invocations::id));
        let events: Vec<String> = filtered!(invocations::table.into_boxed(), conditions)
            .filter(diesel::dsl::not(diesel::dsl::exists(in_flight)))
            .select(invocations::event_id)
            .distinct()
            .limit(BATCH)
            .load(conn)?;
        if events.is_empty() {
            return Ok(None);
        }
        let events: Vec<&str> = events.iter().map(String::as_str).collect();
        let settled = invocations::table
            .filter(invocations::event_id.eq_any(&events))
            .filter(invocations::state.ne(IN_FLIGHT));
        let ids: Vec<String> = settled.select(invocations::id).load(conn)?;
        let attempts_n: i64 =
            attempts::table.filter(attempts::invocation_id.eq_any(&ids)).count().get_result(conn)?;
        // The state is checked again as each row is deleted: one claimed meanwhile stays.
        let removed = diesel::delete(
            invocations::table.filter(invocations::id.eq_any(&ids)).filter(invocations::state.ne(IN_FLIGHT)),
        )
        .execute(conn)?;
        Ok(Some(Erased {
            invocations: u64::try_from(removed).unwrap_or(u64::MAX),
            attempts: attempts_n.unsigned_abs(),
            events: remove_unreferenced(conn, &events)?,
            left: 0,
        }))
    })
}

/// How many invocations match.
pub fn count_matching(conn: &mut AnyConnection, conditions: &[Condition]) -> Result<u64, StoreError> {
    let n: i64 = filtered!(invocations::table.into_boxed(), conditions).count().get_result(conn)?;
    Ok(n.unsigned_abs())
}
