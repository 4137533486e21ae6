//! Delivering instances and their heartbeats. An instance that stops beating is dead: the work
//! leased to it is made claimable at once, instead of when its leases expire.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::schema::{instances, invocations};
use super::{AnyConnection, StoreError};
use crate::domain::invocation::InvocationState;

/// Records that `id` is alive at `now` (registering it on its first beat).
pub fn beat(conn: &mut AnyConnection, id: &str, now: NaiveDateTime) -> Result<(), StoreError> {
    let row = (instances::id.eq(id), instances::started.eq(now), instances::heartbeat_at.eq(now));
    macro_rules! upsert {
        ($c:expr) => {
            diesel::insert_into(instances::table)
                .values(row)
                .on_conflict(instances::id)
                .do_update()
                .set(instances::heartbeat_at.eq(excluded(instances::heartbeat_at)))
                .execute($c)?
        };
    }
    match conn {
        AnyConnection::Postgresql(c) => upsert!(c),
        AnyConnection::Sqlite(c) => upsert!(c),
    };
    Ok(())
}

/// What a takeover found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Takeover {
    /// Instances silent for longer than allowed, now forgotten.
    pub dead: Vec<String>,
    /// Their in-flight invocations, made claimable now.
    pub invocations: usize,
}

/// Forgets every instance but `me` that has not beaten for `silence`, and expires the leases of
/// the invocations it held, so the next claim takes them.
pub fn take_over_dead(
    conn: &mut AnyConnection,
    me: &str,
    now: NaiveDateTime,
    silence: TimeDelta,
) -> Result<Takeover, StoreError> {
    let dead: Vec<String> = instances::table
        .filter(instances::heartbeat_at.lt(now - silence))
        .filter(instances::id.ne(me))
        .select(instances::id)
        .load(conn)?;
    if dead.is_empty() {
        return Ok(Takeover::default());
    }
    let invocations = diesel::update(
        invocations::table
            .filter(invocations::state.eq(InvocationState::InFlight.as_str()))
            .filter(invocations::lease_owner.eq_any(&dead))
            .filter(invocations::lease_expires_at.gt(now)),
    )
    .set(invocations::lease_expires_at.eq(now))
    .execute(conn)?;
    diesel::delete(instances::table.filter(instances::id.eq_any(&dead))).execute(conn)?;
    super::flow::forget(conn, &dead)?;
    Ok(Takeover { dead, invocations })
}

/// Forgets `id` (a graceful stop, after it gave back its work).
pub fn leave(conn: &mut AnyConnection, id: &str) -> Result<(), StoreError> {
    diesel::delete(instances::table.find(id)).execute(conn)?;
    super::flow::forget(conn, &[id.to_owned()])?;
    Ok(())
}
