//! What the metrics read from the database: invocations by state, how long the oldest due one
//! has waited, and the subscriptions with the most invocations waiting for a retry. Three
//! aggregate reads, on tables the retention keeps bounded.

use chrono::NaiveDateTime;
use diesel::dsl::{count_star, min};
use diesel::prelude::*;

use super::schema::invocations;
use super::{AnyConnection, StoreError};
use crate::domain::invocation::InvocationState;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Gauges {
    /// Every state, with 0 for those no invocation is in.
    pub by_state: Vec<(&'static str, i64)>,
    /// How long the oldest invocation due at `now` has waited, in milliseconds (0: none).
    pub oldest_due_ms: i64,
    /// Subscriptions by how many of their invocations wait for a retry, most first.
    pub failing: Vec<(String, i64)>,
}

const STATES: [InvocationState; 5] = [
    InvocationState::Pending,
    InvocationState::InFlight,
    InvocationState::Awaiting,
    InvocationState::Delivered,
    InvocationState::Dead,
];

pub fn read(conn: &mut AnyConnection, now: NaiveDateTime, top: i64) -> Result<Gauges, StoreError> {
    let counted: Vec<(String, i64)> = invocations::table
        .group_by(invocations::state)
        .select((invocations::state, count_star()))
        .load(conn)?;
    let by_state = STATES
        .iter()
        .map(|state| {
            let name = state.as_str();
            (name, counted.iter().find(|(s, _)| s == name).map_or(0, |(_, n)| *n))
        })
        .collect();
    let oldest: Option<NaiveDateTime> = invocations::table
        .filter(invocations::state.eq(InvocationState::Pending.as_str()))
        .filter(invocations::next_attempt_at.le(now))
        .select(min(invocations::next_attempt_at))
        .first(conn)?;
    let failing = invocations::table
        .filter(invocations::state.eq(InvocationState::Pending.as_str()))
        .filter(invocations::attempts.gt(0))
        .group_by(invocations::subscription_id)
        .select((invocations::subscription_id, count_star()))
        .order_by((count_star().desc(), invocations::subscription_id))
        .limit(top)
        .load(conn)?;
    Ok(Gauges {
        by_state,
        oldest_due_ms: oldest.map_or(0, |at| (now - at).num_milliseconds().max(0)),
        failing,
    })
}
