//! The delivery queue in the database: claiming due work under a lease, recording outcomes in
//! batches, giving work back, and failing overdue responses.
//!
//! The hot statements are written out per backend, with the state as a literal so that each one
//! reads its partial index (`invocations_pending`, `invocations_leased`) in order and stops after
//! the batch: their cost does not grow with the backlog.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;

use super::invocations::{InvocationRow, insert_rows};
use super::schema::{attempts, events, invocations};
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::ids::{InvocationId, SubscriptionId};
use crate::domain::invocation::{Attempt, Invocation, InvocationState};

/// An invocation this instance holds under its lease, with the bytes to deliver.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub invocation: Invocation,
    pub payload: Arc<str>,
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
        let found: Vec<(String, String)> = events::table
            .filter(events::id.eq_any(chunk))
            .select((events::id, events::payload))
            .load(conn)?;
        payloads.extend(found.into_iter().map(|(id, payload)| (id, Arc::<str>::from(payload))));
    }
    rows.into_iter()
        .map(|row| {
            let payload = payloads
                .get(&row.event_id)
                .cloned()
                .ok_or_else(|| StoreError::Corrupt(format!("invocation {} has no event", row.id)))?;
            Ok(Claimed { invocation: row.into_domain()?, payload })
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

/// What happens to an invocation after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Delivered,
    /// Delivered, and the subscriber answered with this output (`REQUEST_RESPONSE`, SYNC or DYNAMIC).
    Answered(String),
    /// Acknowledged (`REQUEST_RESPONSE`, ASYNC or DYNAMIC): `complete` is due before this deadline.
    Awaiting(NaiveDateTime),
    RetryAt(NaiveDateTime),
    Dead,
    /// Not attempted: given back, due again at this time (its subscriber is too slow to take it
    /// within the lease). The attempt it was claimed for is not counted.
    Deferred(NaiveDateTime),
}

/// The outcome of one attempt, to be recorded.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub invocation: InvocationId,
    pub attempt: Attempt,
    pub next: Next,
    /// A subscription to switch off with this reason (the subscriber answered 410 Gone).
    pub disable: Option<(SubscriptionId, String)>,
}

impl Outcome {
    /// A success is kept on the invocation; a failure gets its own row in `attempts`.
    fn failed(&self) -> bool {
        matches!(self.next, Next::RetryAt(_) | Next::Dead)
    }
}

/// One invocation's new state, as a row of the batch update.
struct Change<'a> {
    id: &'a str,
    state: &'static str,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    last_error: Option<String>,
    completed: Option<NaiveDateTime>,
    output: Option<&'a str>,
    success: Option<&'a Attempt>,
}

impl<'a> Change<'a> {
    fn of(o: &'a Outcome, now: NaiveDateTime) -> Self {
        let (state, next_attempt_at, completed, output) = match &o.next {
            Next::Delivered => (InvocationState::Delivered, now, Some(now), None),
            Next::Answered(output) => (InvocationState::Delivered, now, Some(now), Some(output.as_str())),
            Next::Awaiting(deadline) => (InvocationState::Awaiting, *deadline, None, None),
            Next::RetryAt(at) | Next::Deferred(at) => (InvocationState::Pending, *at, None, None),
            Next::Dead => (InvocationState::Dead, now, Some(now), None),
        };
        let deferred = matches!(o.next, Next::Deferred(_));
        Self {
            id: o.invocation.as_str(),
            state: state.as_str(),
            attempts: if deferred { o.attempt.attempt - 1 } else { o.attempt.attempt },
            next_attempt_at,
            last_error: if o.failed() { last_error(&o.attempt) } else { None },
            completed,
            output,
            success: (!o.failed() && !deferred).then_some(&o.attempt),
        }
    }
}

/// Rows per batch update. A batch is cut into these sizes, the last chunk padded by repeating its
/// last row, so each backend sees a handful of statement shapes and keeps them prepared.
const CHUNK_SIZES: [usize; 5] = [1, 4, 16, 64, 256];

fn chunk_size(n: usize) -> usize {
    CHUNK_SIZES.into_iter().find(|&s| s >= n).unwrap_or(CHUNK_SIZES[CHUNK_SIZES.len() - 1])
}

const CHANGE_COLUMNS: usize = 11;

/// `UPDATE … FROM (VALUES …)`: one statement sets each row of a chunk to its own values, if
/// `owner` still holds its lease. Built once per chunk size and backend.
fn update_sql(rows: usize, pg: bool) -> &'static str {
    static SQLITE: OnceLock<Vec<String>> = OnceLock::new();
    static POSTGRES: OnceLock<Vec<String>> = OnceLock::new();
    let built = if pg { &POSTGRES } else { &SQLITE };
    let statements =
        built.get_or_init(|| CHUNK_SIZES.iter().map(|&size| build_update_sql(size, pg)).collect());
    let index = CHUNK_SIZES.iter().position(|&size| size == rows).unwrap_or(CHUNK_SIZES.len() - 1);
    &statements[index]
}

fn build_update_sql(rows: usize, pg: bool) -> String {
    // SQLite names the columns of a VALUES list column1, column2, …; PostgreSQL takes a list.
    let col = |c: usize| if pg { format!("v.c{c}") } else { format!("v.column{c}") };
    let mut n = 0;
    let mut param = || {
        n += 1;
        if pg { format!("${n}") } else { "?".to_owned() }
    };
    let mut sql = format!(
        "UPDATE invocations SET state = {}, attempts = {}, next_attempt_at = {}, last_error = {}, \
         completed = {}, output = {}, success_started = {}, success_duration_ms = {}, \
         success_status = {}, success_response = {}, lease_owner = NULL, lease_expires_at = NULL, \
         updated = {} FROM (",
        col(2),
        col(3),
        col(4),
        col(5),
        col(6),
        col(7),
        col(8),
        col(9),
        col(10),
        col(11),
        param()
    );
    for row in 0..rows {
        sql.push_str(if row == 0 { "VALUES (" } else { ", (" });
        let values: Vec<String> = (0..CHANGE_COLUMNS).map(|_| param()).collect();
        sql.push_str(&values.join(", "));
        sql.push(')');
    }
    sql.push_str(") AS v");
    if pg {
        sql.push_str(" (c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11)");
    }
    let (id, owner) = (col(1), param());
    sql + &format!(
        " WHERE invocations.id = {id} AND invocations.state = 'IN_FLIGHT' AND invocations.lease_owner = {owner}"
    )
}

macro_rules! bind_changes {
    ($backend:ty, $sql:expr, $chunk:expr, $owner:expr, $now:expr) => {{
        let mut q = diesel::sql_query($sql).into_boxed::<$backend>().bind::<Timestamp, _>($now);
        for c in $chunk {
            q = q
                .bind::<Text, _>(c.id)
                .bind::<Text, _>(c.state)
                .bind::<Integer, _>(c.attempts)
                .bind::<Timestamp, _>(c.next_attempt_at)
                .bind::<Nullable<Text>, _>(c.last_error.as_deref())
                .bind::<Nullable<Timestamp>, _>(c.completed)
                .bind::<Nullable<Text>, _>(c.output)
                .bind::<Nullable<Timestamp>, _>(c.success.map(|a| a.started))
                .bind::<Nullable<Integer>, _>(c.success.map(|a| a.duration_ms))
                .bind::<Nullable<Integer>, _>(c.success.and_then(|a| a.status))
                .bind::<Nullable<Text>, _>(c.success.and_then(|a| a.response.as_deref()));
        }
        q.bind::<Text, _>($owner)
    }};
}

#[derive(Insertable)]
#[diesel(table_name = attempts)]
struct AttemptRow<'a> {
    id: String,
    invocation_id: &'a str,
    attempt: i32,
    started: NaiveDateTime,
    duration_ms: i32,
    status: Option<i32>,
    response: Option<&'a str>,
    error: Option<&'a str>,
}

/// Records a batch of outcomes in one transaction: the invocations' new states in a few batch
/// updates (applied only where `owner` still holds the lease: a worker whose lease expired does
/// not overrule the one that took over), a row in `attempts` for each failed attempt, and the
/// subscriptions a 410 switched off.
pub fn record(
    conn: &mut AnyConnection,
    owner: &str,
    outcomes: &[Outcome],
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let changes: Vec<Change> = outcomes.iter().map(|o| Change::of(o, now)).collect();
    write_transaction(conn, |conn| {
        let mut rest = &changes[..];
        while !rest.is_empty() {
            let size = chunk_size(rest.len());
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            let padding = std::iter::repeat_n(&chunk[chunk.len() - 1], size - chunk.len());
            let padded: Vec<&Change> = chunk.iter().chain(padding).collect();
            match conn {
                AnyConnection::Sqlite(c) => {
                    bind_changes!(Sqlite, update_sql(size, false), padded.iter().copied(), owner, now)
                        .execute(c)?
                }
                AnyConnection::Postgresql(c) => {
                    bind_changes!(Pg, update_sql(size, true), padded.iter().copied(), owner, now)
                        .execute(c)?
                }
            };
        }
        let failures: Vec<AttemptRow> = outcomes
            .iter()
            .filter(|o| o.failed())
            .map(|o| AttemptRow {
                id: uuid::Uuid::now_v7().to_string(),
                invocation_id: o.invocation.as_str(),
                attempt: o.attempt.attempt,
                started: o.attempt.started,
                duration_ms: o.attempt.duration_ms,
                status: o.attempt.status,
                response: o.attempt.response.as_deref(),
                error: o.attempt.error.as_deref(),
            })
            .collect();
        insert_rows!(conn, attempts::table, failures);
        for (subscription, reason) in outcomes.iter().filter_map(|o| o.disable.as_ref()) {
            super::subscriptions::disable(conn, subscription, reason, now)?;
        }
        Ok(())
    })
}

fn last_error(a: &Attempt) -> Option<String> {
    match (&a.error, a.status) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(status)) => Some(format!("subscriber answered HTTP {status}")),
        (None, None) => None,
    }
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

/// Why an awaiting invocation failed when its response deadline passed.
pub const DEADLINE_PASSED: &str = "no complete callback arrived before the response deadline";

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
        invocations::completed.eq(Some(now)),
        invocations::updated.eq(now),
    ))
    .execute(conn)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_a_few_fixed_sizes() {
        assert_eq!(chunk_size(1), 1);
        assert_eq!(chunk_size(3), 4);
        assert_eq!(chunk_size(17), 64);
        assert_eq!(chunk_size(256), 256);
        assert_eq!(chunk_size(1000), 256);
    }

    #[test]
    fn the_batch_update_numbers_its_postgres_parameters_and_names_sqlite_columns() {
        let pg = build_update_sql(2, true);
        assert!(pg.contains("$1 FROM (VALUES ($2,"), "{pg}");
        assert!(pg.ends_with("lease_owner = $24"), "{pg}");
        let sqlite = build_update_sql(1, false);
        assert!(sqlite.contains("state = v.column2") && sqlite.contains("v.column11"), "{sqlite}");
        assert!(!sqlite.contains('$'), "{sqlite}");
    }
}
