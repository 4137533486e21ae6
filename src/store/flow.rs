//! The flow-control state every instance shares, one row per limited or braked subscription:
//! the next free start slot of its rate, the brake its subscriber's pushback put on it, and
//! the permits each instance holds against its `maxInFlight`. Every change locks the row
//! (SQLite's writer serialises them anyway), so two instances never reserve the same slot or
//! hold more permits than the limit between them.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::revisions::{self, Cached};
use super::schema::{flow_permits, subscription_flow, subscriptions};
use super::{AnyConnection, StoreError};
use crate::domain::flow::{self, Brake, Limits};

/// What an instance asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ask {
    /// Request starts to reserve (spaced by the current rate, if there is one).
    pub slots: u32,
    /// The permits it wants to hold in all, fewer than it holds to give some back.
    pub permits: u32,
}

/// What it was given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grant {
    pub limits: Limits,
    pub brake: Option<Brake>,
    /// The rate its starts are spaced at; `None`: as fast as they come.
    pub rate: Option<f64>,
    /// The reserved starts (clock time): `slots` of them, from `start` until before `end`.
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    pub slots: u32,
    /// The requests it may now have under way; `None`: no `maxInFlight`.
    pub permits: Option<u32>,
}

type FlowRow = (NaiveDateTime, Option<f64>, Option<NaiveDateTime>);

/// The limits of `sub`, or `None` when it no longer exists.
fn limits_of(conn: &mut AnyConnection, sub: &str) -> Result<Option<Limits>, StoreError> {
    let found: Option<(Option<f64>, Option<i32>)> = subscriptions::table
        .find(sub)
        .select((subscriptions::rate_limit, subscriptions::max_in_flight))
        .first(conn)
        .optional()?;
    Ok(found.map(|(rate, max)| Limits { rate, max_in_flight: max.and_then(|m| u32::try_from(m).ok()) }))
}

/// The row of `sub`, created if missing, locked until the transaction ends.
fn locked(conn: &mut AnyConnection, sub: &str, now: NaiveDateTime) -> Result<FlowRow, StoreError> {
    let fresh = (subscription_flow::subscription_id.eq(sub), subscription_flow::next_slot.eq(now));
    let query = subscription_flow::table.find(sub).select((
        subscription_flow::next_slot,
        subscription_flow::braked_rate,
        subscription_flow::braked_at,
    ));
    let row = match conn {
        AnyConnection::Postgresql(pg) => {
            diesel::insert_into(subscription_flow::table)
                .values(fresh)
                .on_conflict_do_nothing()
                .execute(pg)?;
            query.for_update().first(pg)?
        }
        AnyConnection::Sqlite(sqlite) => {
            diesel::insert_into(subscription_flow::table)
                .values(fresh)
                .on_conflict_do_nothing()
                .execute(sqlite)?;
            query.first(sqlite)?
        }
    };
    Ok(row)
}

/// Reserves start slots and settles the permits `owner` holds for `sub`; `None` when the
/// subscription no longer exists. The permits of an instance found dead are deleted with it
/// ([`forget`]), so every permit held counts, however late its holder's heartbeat.
pub fn acquire(
    conn: &mut AnyConnection,
    sub: &str,
    owner: &str,
    now: NaiveDateTime,
    ask: Ask,
) -> Result<Option<Grant>, StoreError> {
    let Some(limits) = limits_of(conn, sub)? else { return Ok(None) };
    let (next_slot, braked_rate, braked_at) = locked(conn, sub, now)?;
    let brake = Brake::stored(braked_rate, braked_at);
    let rate = flow::current_rate(limits, brake, now);
    let (start, end) = flow::reserve(next_slot, now, limits, brake, ask.slots);
    if rate.is_some() && ask.slots > 0 {
        diesel::update(subscription_flow::table.find(sub))
            .set(subscription_flow::next_slot.eq(end))
            .execute(conn)?;
    }
    let permits = match limits.max_in_flight {
        None => {
            diesel::delete(flow_permits::table.find((sub, owner))).execute(conn)?;
            None
        }
        Some(max) => Some(settle_permits(conn, sub, owner, max, ask.permits)?),
    };
    Ok(Some(Grant { limits, brake, rate, start, end, slots: ask.slots, permits }))
}

fn settle_permits(
    conn: &mut AnyConnection,
    sub: &str,
    owner: &str,
    max: u32,
    wanted: u32,
) -> Result<u32, StoreError> {
    let others: Option<i64> = flow_permits::table
        .filter(flow_permits::subscription_id.eq(sub))
        .filter(flow_permits::owner.ne(owner))
        .select(diesel::dsl::sum(flow_permits::permits))
        .first(conn)?;
    let others = u32::try_from(others.unwrap_or(0)).unwrap_or(u32::MAX);
    let held = wanted.min(max.saturating_sub(others));
    diesel::delete(flow_permits::table.find((sub, owner))).execute(conn)?;
    if held > 0 {
        let row = (
            flow_permits::subscription_id.eq(sub),
            flow_permits::owner.eq(owner),
            flow_permits::permits.eq(i32::try_from(held).unwrap_or(i32::MAX)),
        );
        diesel::insert_into(flow_permits::table).values(row).execute(conn)?;
    }
    Ok(held)
}

/// Puts the brake on `sub` after its subscriber pushed back (429, 503) at `now`, when it was
/// being sent at about `observed` requests per second. A `Retry-After` pauses every start until
/// it has passed, and the rate grows back only from then. Other instances learn of a new brake
/// with the next subscription change they see. `None` when the subscription no longer exists.
pub fn push_back(
    conn: &mut AnyConnection,
    sub: &str,
    now: NaiveDateTime,
    observed: f64,
    retry_after: Option<std::time::Duration>,
) -> Result<Option<Brake>, StoreError> {
    let Some(limits) = limits_of(conn, sub)? else { return Ok(None) };
    let (next_slot, braked_rate, braked_at) = locked(conn, sub, now)?;
    let before = Brake::stored(braked_rate, braked_at);
    let mut brake = flow::pushed_back(limits, before, observed, now);
    let mut next = next_slot;
    if let Some(wait) = retry_after.and_then(|w| TimeDelta::from_std(w).ok()) {
        brake.at = brake.at.max(now + wait);
        next = next.max(now + wait);
    }
    if before == Some(brake) && next == next_slot {
        return Ok(Some(brake));
    }
    diesel::update(subscription_flow::table.find(sub))
        .set((
            subscription_flow::next_slot.eq(next),
            subscription_flow::braked_rate.eq(brake.rate),
            subscription_flow::braked_at.eq(brake.at),
        ))
        .execute(conn)?;
    revisions::changed(conn, Cached::Subscriptions)?;
    Ok(Some(brake))
}

/// Gives back every permit `owner` holds (it stopped, or is dead).
pub fn forget(conn: &mut AnyConnection, owners: &[String]) -> Result<(), StoreError> {
    diesel::delete(flow_permits::table.filter(flow_permits::owner.eq_any(owners))).execute(conn)?;
    Ok(())
}
