//! Replays: a new attempt series for invocations that finished, one at a time or in bulk.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::invocations::{Condition, filtered, get, insert_rows, successes};
use super::schema::{invocations, replays};
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::event::Eligibility;
use crate::domain::ids::InvocationId;
use crate::domain::invocation::{InvocationKind, InvocationState};

/// Why a replay was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayRefusal {
    /// The invocation is still pending or in flight.
    InProgress,
    /// Its subscription is disabled and the replay was not forced.
    SubscriptionDisabled,
    SubscriptionDeleted,
}

/// What a bulk replay did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    pub replayed: usize,
    /// Dead letters left alone because their subscription is disabled (and the replay not forced)
    /// or deleted.
    pub skipped: usize,
}

/// How many re-queued invocations become due per second, so live traffic keeps flowing.
const REPLAY_PER_SECOND: usize = 100;

/// Moves the success kept on each invocation into `attempts`, so the replay's own attempts do not
/// overwrite it.
fn keep_successes(conn: &mut AnyConnection, ids: &[&str]) -> Result<(), StoreError> {
    use super::schema::attempts;
    let rows: Vec<_> = successes(conn, ids)?
        .into_iter()
        .map(|kept| {
            let a = kept.attempt;
            (
                attempts::id.eq(uuid::Uuid::now_v7().to_string()),
                attempts::invocation_id.eq(kept.invocation_id),
                attempts::attempt.eq(a.attempt),
                attempts::started.eq(a.started),
                attempts::duration_ms.eq(a.duration_ms),
                attempts::status.eq(a.status),
                attempts::response.eq(a.response),
                attempts::error.eq(None::<String>),
            )
        })
        .collect();
    insert_rows!(conn, attempts::table, rows);
    Ok(())
}

fn requeue(
    conn: &mut AnyConnection,
    ids: &[&str],
    deliver_when_disabled: bool,
    due: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    keep_successes(conn, ids)?;
    diesel::update(invocations::table.filter(invocations::id.eq_any(ids)))
        .set((
            invocations::state.eq(InvocationState::Pending.as_str()),
            invocations::attempts.eq(0),
            invocations::next_attempt_at.eq(due),
            invocations::lease_owner.eq(None::<String>),
            invocations::lease_expires_at.eq(None::<NaiveDateTime>),
            invocations::last_error.eq(None::<String>),
            invocations::completed.eq(None::<NaiveDateTime>),
            invocations::deliver_when_disabled.eq(deliver_when_disabled),
            invocations::output.eq(None::<String>),
            invocations::success_started.eq(None::<NaiveDateTime>),
            invocations::success_duration_ms.eq(None::<i32>),
            invocations::success_status.eq(None::<i32>),
            invocations::success_response.eq(None::<String>),
            invocations::dead_reason.eq(None::<String>),
            invocations::updated.eq(now),
        ))
        .execute(conn)?;
    super::revisions::notify(conn, super::revisions::Signal::Work)
}

#[derive(Insertable)]
#[diesel(table_name = replays)]
struct ReplayRow<'a> {
    id: String,
    invocation_id: &'a str,
    replayed_by: &'a str,
    replayed_at: NaiveDateTime,
    forced: bool,
}

/// Starts a new attempt series for one invocation (same id, so the same `webhook-id`).
pub fn replay(
    conn: &mut AnyConnection,
    id: &InvocationId,
    by: &str,
    force: bool,
    now: NaiveDateTime,
) -> Result<Result<(), ReplayRefusal>, StoreError> {
    write_transaction(conn, |conn| {
        let invocation = get(conn, id)?;
        if matches!(
            invocation.state,
            InvocationState::Pending | InvocationState::InFlight | InvocationState::Awaiting
        ) {
            return Ok(Err(ReplayRefusal::InProgress));
        }
        let sub = invocation.subscription_id.as_str();
        let Some(subscription) = super::subscriptions::by_ids(conn, &[sub])?.pop() else {
            return Ok(Err(ReplayRefusal::SubscriptionDeleted));
        };
        let disabled = Eligibility::of(&subscription, invocation.kind, false) != Eligibility::Live;
        if disabled && !force {
            return Ok(Err(ReplayRefusal::SubscriptionDisabled));
        }
        requeue(conn, &[id.as_str()], disabled, now, now)?;
        let row = ReplayRow {
            id: uuid::Uuid::now_v7().to_string(),
            invocation_id: id.as_str(),
            replayed_by: by,
            replayed_at: now,
            forced: force,
        };
        diesel::insert_into(replays::table).values(&row).execute(conn)?;
        Ok(Ok(()))
    })
}

/// Re-queues every dead letter matching `conditions`, 100 per second from now.
pub fn replay_dead(
    conn: &mut AnyConnection,
    conditions: &[Condition],
    by: &str,
    force: bool,
    now: NaiveDateTime,
) -> Result<ReplaySummary, StoreError> {
    write_transaction(conn, |conn| {
        let dead: Vec<(String, String, String)> = filtered!(invocations::table.into_boxed(), conditions)
            .filter(invocations::state.eq(InvocationState::Dead.as_str()))
            .order((invocations::created.asc(), invocations::id.asc()))
            .select((invocations::id, invocations::subscription_id, invocations::kind))
            .load(conn)?;
        let mut sub_ids: Vec<&str> = dead.iter().map(|(_, s, _)| s.as_str()).collect();
        sub_ids.sort_unstable();
        sub_ids.dedup();
        let subscriptions: std::collections::HashMap<String, crate::domain::subscription::Subscription> =
            super::subscriptions::by_ids(conn, &sub_ids)?
                .into_iter()
                .map(|s| (s.id.to_string(), s))
                .collect();
        let mut normal = Vec::new();
        let mut forced = Vec::new();
        let mut skipped = 0;
        for (id, sub, kind) in &dead {
            let kind = InvocationKind::parse(kind).unwrap_or(InvocationKind::RealTime);
            match subscriptions.get(sub).map(|s| Eligibility::of(s, kind, false)) {
                Some(Eligibility::Live) => normal.push(id.as_str()),
                Some(_) if force => forced.push(id.as_str()),
                None | Some(_) => skipped += 1,
            }
        }
        let mut second = 0i64;
        for (ids, deliver_when_disabled) in [(&normal, false), (&forced, true)] {
            for chunk in ids.chunks(REPLAY_PER_SECOND) {
                requeue(conn, chunk, deliver_when_disabled, now + TimeDelta::seconds(second), now)?;
                second += 1;
            }
        }
        let rows: Vec<ReplayRow> = normal
            .iter()
            .chain(&forced)
            .map(|id| ReplayRow {
                id: uuid::Uuid::now_v7().to_string(),
                invocation_id: id,
                replayed_by: by,
                replayed_at: now,
                forced: force,
            })
            .collect();
        insert_rows!(conn, replays::table, rows);
        Ok(ReplaySummary { replayed: normal.len() + forced.len(), skipped })
    })
}

/// Who replayed an invocation, and when, oldest first.
pub fn replays_of(
    conn: &mut AnyConnection,
    id: &InvocationId,
) -> Result<Vec<(String, NaiveDateTime, bool)>, StoreError> {
    Ok(replays::table
        .filter(replays::invocation_id.eq(id.as_str()))
        .order(replays::replayed_at)
        .select((replays::replayed_by, replays::replayed_at, replays::forced))
        .load(conn)?)
}
