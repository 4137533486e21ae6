//! The delivery queue in the database: claiming due work under a lease, giving work back, and
//! failing overdue responses. Outcomes are recorded by [`super::outcomes`].
//!
//! The hot statements are written out per backend, with the state as a literal so that each one
//! reads its partial index (`invocations_pending`, `invocations_leased`) in order and stops after
//! the batch: their cost does not grow with the backlog.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};

use super::invocations::InvocationRow;
use super::schema::{events, invocations};
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::invocation::{DEADLINE_PASSED, DeadReason, Invocation, InvocationState};
use crate::domain::trace::TraceParent;

/// An invocation this instance holds under its lease, with the bytes to deliver.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub invocation: Invocation,
    pub payload: Arc<str>,
    /// The trace of its event (`None` for events stored before traces were kept).
    pub trace: Option<TraceParent>,
}

const CLAIM_EXPIRED_SQLITE: &str = "UPDATE invocations SET state = 'IN_FLIGHT', lease_owner = ?, \
     lease_expires_at = ?, attempts = attempts + 1, updated = ? WHERE id IN (SELECT id FROM invocations \
     WHERE state = 'IN_FLIGHT' AND lease_expires_at <= ? ORDER BY lease_expires_at LIMIT ?) RETURNING *";
const CLAIM_PENDING_SQLITE: &str = "UPDATE invocations SET state = 'IN_FLIGHT', lease_owner = ?, \
     lease_expires_at = ?, attempts = attempts + 1, updated = ? WHERE id IN (SELECT id FROM invocations \
     WHERE state = 'PENDING' AND order_key IS NULL AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?) \
     RETURNING *";
const CLAIM_EXPIRED_PG: &str = "UPDATE invocations SET state = 'IN_FLIGHT', lease_owner = $1, \
     lease_expires_at = $2, attempts = attempts + 1, updated = $3 WHERE id IN (SELECT id FROM invocations \
     WHERE state = 'IN_FLIGHT' AND lease_expires_at <= $4 ORDER BY lease_expires_at LIMIT $5 \
     FOR UPDATE SKIP LOCKED) RETURNING *";
const CLAIM_PENDING_PG: &str = "UPDATE invocations SET state = 'IN_FLIGHT', lease_owner = $1, \
     lease_expires_at = $2, attempts = attempts + 1, updated = $3 WHERE id IN (SELECT id FROM invocations \
     WHERE state = 'PENDING' AND order_key IS NULL AND next_attempt_at <= $4 ORDER BY next_attempt_at LIMIT $5 \
     FOR UPDATE SKIP LOCKED) RETURNING *";

/// The head of an ordered stream: pending and due, with nothing unfinished before it.
const ORDERED_HEAD: &str = "i.state = 'PENDING' AND i.order_key IS NOT NULL AND i.next_attempt_at <= {now} \
     AND NOT EXISTS (SELECT 1 FROM invocations p WHERE p.subscription_id = i.subscription_id \
     AND p.order_key = i.order_key AND p.order_key IS NOT NULL \
     AND p.state IN ('PENDING', 'IN_FLIGHT', 'AWAITING') \
     AND (p.created < i.created OR (p.created = i.created AND p.id < i.id)))";

fn claim_ordered_sql(pg: bool) -> &'static str {
    static SQLITE: OnceLock<String> = OnceLock::new();
    static POSTGRES: OnceLock<String> = OnceLock::new();
    (if pg { &POSTGRES } else { &SQLITE }).get_or_init(|| build_claim_ordered_sql(pg))
}

fn build_claim_ordered_sql(pg: bool) -> String {
    let (set, now, limit, lock) = if pg {
        (
            "lease_owner = $1, lease_expires_at = $2, attempts = attempts + 1, updated = $3",
            "$4",
            "$5",
            " FOR UPDATE SKIP LOCKED",
        )
    } else {
        ("lease_owner = ?, lease_expires_at = ?, attempts = attempts + 1, updated = ?", "?", "?", "")
    };
    format!(
        "UPDATE invocations SET state = 'IN_FLIGHT', {set} WHERE id IN (SELECT i.id FROM invocations i \
         WHERE {} ORDER BY i.next_attempt_at LIMIT {limit}{lock}) RETURNING *",
        ORDERED_HEAD.replace("{now}", now)
    )
}

/// Takes up to `limit` due invocations (in flight under an expired lease first, then pending and
/// due, then the heads of ordered streams), marks them in flight under `owner`'s lease and counts
/// the attempt about to be made.
/// PostgreSQL skips rows other instances hold; SQLite's single writer makes the claim atomic.
pub fn claim(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    let until = now + TimeDelta::from_std(lease).unwrap_or(TimeDelta::minutes(1));
    let rows = write_transaction(conn, |conn| {
        let mut rows = claim_where(conn, Due::Expired, owner, until, now, limit)?;
        for due in [Due::Pending, Due::OrderedHead] {
            let left = limit - i64::try_from(rows.len()).unwrap_or(limit);
            if left > 0 {
                rows.extend(claim_where(conn, due, owner, until, now, left)?);
            }
        }
        Ok(rows)
    })?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut event_ids: Vec<&str> = rows.iter().map(|r| r.event_id.as_str()).collect();
    event_ids.sort_unstable();
    event_ids.dedup();
    let mut payloads = std::collections::HashMap::with_capacity(event_ids.len());
    for chunk in event_ids.chunks(500) {
        let found: Vec<(String, String, Option<String>)> = events::table
            .filter(events::id.eq_any(chunk))
            .select((events::id, events::payload, events::traceparent))
            .load(conn)?;
        payloads.extend(found.into_iter().map(|(id, payload, trace)| {
            (id, (Arc::<str>::from(payload), trace.as_deref().and_then(TraceParent::parse)))
        }));
    }
    rows.into_iter()
        .map(|row| {
            let (payload, trace) = payloads
                .get(&row.event_id)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("invocation {} has no event", row.id)))?;
            Ok(Claimed { invocation: row.into_domain()?, payload, trace })
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Due {
    Expired,
    Pending,
    OrderedHead,
}

fn claim_where(
    conn: &mut AnyConnection,
    due: Due,
    owner: &str,
    until: NaiveDateTime,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<InvocationRow>, StoreError> {
    macro_rules! run {
        ($conn:expr, $sql:expr) => {
            diesel::sql_query($sql)
                .bind::<Text, _>(owner)
                .bind::<Timestamp, _>(until)
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(now)
                .bind::<BigInt, _>(limit)
                .load::<InvocationRow>($conn)?
        };
    }
    Ok(match (conn, due) {
        (AnyConnection::Sqlite(c), Due::Expired) => run!(c, CLAIM_EXPIRED_SQLITE),
        (AnyConnection::Sqlite(c), Due::Pending) => run!(c, CLAIM_PENDING_SQLITE),
        (AnyConnection::Postgresql(c), Due::Expired) => run!(c, CLAIM_EXPIRED_PG),
        (AnyConnection::Postgresql(c), Due::Pending) => run!(c, CLAIM_PENDING_PG),
        (AnyConnection::Sqlite(c), Due::OrderedHead) => run!(c, claim_ordered_sql(false)),
        (AnyConnection::Postgresql(c), Due::OrderedHead) => run!(c, claim_ordered_sql(true)),
    })
}

/// Gives back in-flight invocations held by `owner` (a graceful shutdown), due at once.
pub fn release(conn: &mut AnyConnection, owner: &str, now: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(diesel::update(
        invocations::table
            .filter(invocations::lease_owner.eq(owner))
            .filter(invocations::state.eq(InvocationState::InFlight.as_str())),
    )
    .set((
        invocations::state.eq(InvocationState::Pending.as_str()),
        invocations::lease_owner.eq(None::<String>),
        invocations::lease_expires_at.eq(None::<NaiveDateTime>),
        invocations::attempts.eq(invocations::attempts - 1),
        invocations::next_attempt_at.eq(now),
        invocations::updated.eq(now),
    ))
    .execute(conn)?)
}

/// Fails every awaiting invocation whose response deadline has passed; returns how many.
pub fn expire_overdue(conn: &mut AnyConnection, now: NaiveDateTime) -> Result<usize, StoreError> {
    Ok(diesel::update(
        invocations::table
            .filter(invocations::state.eq(InvocationState::Awaiting.as_str()))
            .filter(invocations::next_attempt_at.le(now)),
    )
    .set((
        invocations::state.eq(InvocationState::Dead.as_str()),
        invocations::last_error.eq(DEADLINE_PASSED),
        invocations::dead_reason.eq(DeadReason::DeadlinePassed.as_str()),
        invocations::completed.eq(Some(now)),
        invocations::updated.eq(now),
    ))
    .execute(conn)?)
}
