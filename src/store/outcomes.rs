//! Recording outcomes: after a batch of attempts, each invocation's new state is written by one
//! batch update, applied only where the recording instance still holds the lease, with a row in
//! `attempts` for each failure. A first-try success stays on the invocation (`success_*`).
//!
//! SQLite gets `UPDATE … FROM (VALUES …)` in a few fixed chunk sizes; PostgreSQL gets one
//! statement per batch whatever its size, failed attempts included ([`super::pg_batch`]).

use std::sync::OnceLock;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text, Timestamp};
use diesel::sqlite::Sqlite;

use super::health::{self, Disabling};
use super::invocations::insert_rows;
use super::operational;
use super::pg_batch::{AttemptColumns, ChangeColumns, HealthColumns, RecordOutcomes};
use super::schema::attempts;
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::catalog;
use crate::domain::ids::{InvocationId, SubscriptionId};
use crate::domain::invocation::{Attempt, DeadReason, Next};

/// The outcome of one attempt, to be recorded.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub invocation: InvocationId,
    pub attempt: Attempt,
    pub next: Next,
    pub effect: Effect,
    /// Stopped by the SSRF guard: no request was made.
    pub refused: bool,
    /// The subscription whose health the attempt tells of; `None` when nothing was tried (the
    /// invocation could not go to it, or was put off).
    pub subscription: Option<SubscriptionId>,
}

/// What a recorded batch settled, as the metrics count it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// Attempts that reached the subscriber and were taken.
    pub delivered: u64,
    /// Failed attempts whose invocation will be tried again.
    pub retried: u64,
    /// Failed attempts that left their invocation a dead letter.
    pub dead: u64,
    /// Attempts the SSRF guard stopped.
    pub refused: u64,
    /// The trigger of each event chained deliveries published.
    pub published: Vec<String>,
}

impl Recorded {
    fn count(&mut self, outcomes: &[Outcome]) {
        for outcome in outcomes {
            match outcome.next {
                _ if outcome.refused => self.refused += 1,
                Next::Delivered | Next::Answered(_) | Next::Awaiting(_) => self.delivered += 1,
                Next::RetryAt(_) => self.retried += 1,
                Next::Dead => self.dead += 1,
                Next::Deferred(_) => {}
            }
        }
    }
}

/// What recording an outcome does besides settling its invocation, in the same transaction.
#[derive(Debug, Clone)]
pub enum Effect {
    None,
    /// Switch this subscription off with this reason (the subscriber answered 410 Gone).
    Disable(SubscriptionId, String),
    /// Publish these events (a chained trigger's delivery), unless the invocation's event is
    /// too deep in its chain ([`super::chains::settle`]).
    Publish(Vec<super::events::Draft>),
}

impl Outcome {
    /// A success is kept on the invocation; a failure gets its own row in `attempts`.
    fn failed(&self) -> bool {
        self.next.is_failure()
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
    dead_reason: Option<&'static str>,
}

impl<'a> Change<'a> {
    fn of(o: &'a Outcome, now: NaiveDateTime) -> Self {
        let settled = o.next.settle(now);
        Self {
            id: o.invocation.as_str(),
            state: settled.state.as_str(),
            attempts: if settled.attempted { o.attempt.attempt } else { o.attempt.attempt - 1 },
            next_attempt_at: settled.due,
            last_error: if settled.failed { last_error(&o.attempt) } else { None },
            completed: settled.completed,
            output: settled.output,
            success: (settled.attempted && !settled.failed).then_some(&o.attempt),
            dead_reason: settled.dead_reason.map(DeadReason::as_str),
        }
    }
}

/// Rows per SQLite batch update. A batch is cut into these sizes, the last chunk padded by
/// repeating its last row, so SQLite sees a handful of statement shapes.
const CHUNK_SIZES: [usize; 5] = [1, 4, 16, 64, 256];

fn chunk_size(n: usize) -> usize {
    CHUNK_SIZES.into_iter().find(|&s| s >= n).unwrap_or(CHUNK_SIZES[CHUNK_SIZES.len() - 1])
}

/// The columns of a row of changes, in order: the invocation's id, then what an outcome sets.
const CHANGE_COLUMNS: [&str; 12] = [
    "id",
    "state",
    "attempts",
    "next_attempt_at",
    "last_error",
    "completed",
    "output",
    "success_started",
    "success_duration_ms",
    "success_status",
    "success_response",
    "dead_reason",
];

/// The `SET` list, each column from `v.{name(i)}`, `i` counting the change's columns from 1.
fn set_list(name: impl Fn(usize) -> String) -> String {
    let sets: Vec<String> = CHANGE_COLUMNS
        .iter()
        .enumerate()
        .skip(1)
        .map(|(i, column)| format!("{column} = v.{}", name(i + 1)))
        .collect();
    sets.join(", ")
}

/// SQLite's `UPDATE … FROM (VALUES …)` for a chunk of `rows` changes: one statement sets each
/// row to its own values, if `owner` still holds its lease. Built once per chunk size.
fn sqlite_update_sql(rows: usize) -> &'static str {
    static BUILT: OnceLock<Vec<String>> = OnceLock::new();
    let statements =
        BUILT.get_or_init(|| CHUNK_SIZES.iter().map(|&size| build_sqlite_update_sql(size)).collect());
    let index = CHUNK_SIZES.iter().position(|&size| size == rows).unwrap_or(CHUNK_SIZES.len() - 1);
    &statements[index]
}

fn build_sqlite_update_sql(rows: usize) -> String {
    // SQLite names the columns of a VALUES list column1, column2, …
    let row = format!("({})", ["?"; CHANGE_COLUMNS.len()].join(", "));
    format!(
        "UPDATE invocations SET {}, lease_owner = NULL, lease_expires_at = NULL, updated = ? FROM \
         (VALUES {}) AS v WHERE invocations.id = v.column1 AND invocations.state = 'IN_FLIGHT' \
         AND invocations.lease_owner = ?",
        set_list(|c| format!("column{c}")),
        vec![row; rows].join(", ")
    )
}

/// Writes `changes` on SQLite in padded chunks of a few fixed sizes.
fn sqlite_update(
    conn: &mut diesel::SqliteConnection,
    changes: &[Change],
    owner: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let mut rest = changes;
    while !rest.is_empty() {
        let size = chunk_size(rest.len());
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        let padding = std::iter::repeat_n(&chunk[chunk.len() - 1], size - chunk.len());
        let mut q =
            diesel::sql_query(sqlite_update_sql(size)).into_boxed::<Sqlite>().bind::<Timestamp, _>(now);
        for c in chunk.iter().chain(padding) {
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
                .bind::<Nullable<Text>, _>(c.success.and_then(|a| a.response.as_deref()))
                .bind::<Nullable<Text>, _>(c.dead_reason);
        }
        q.bind::<Text, _>(owner).execute(conn)?;
    }
    Ok(())
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

/// Records a batch of outcomes: the invocations' new states (applied only where `owner` still
/// holds the lease: a worker whose lease expired does not overrule the one that took over), a
/// row in `attempts` for each failed attempt, their subscriptions' health, the subscriptions a
/// 410 switched off, and the events chained deliveries and operational triggers publish.
/// Atomic by itself: on PostgreSQL one statement unless a subscription is switched off, an
/// invocation dies or events are published, else one transaction.
pub fn record(
    conn: &mut AnyConnection,
    owner: &str,
    outcomes: &[Outcome],
    now: NaiveDateTime,
) -> Result<Recorded, StoreError> {
    let mut recorded = Recorded::default();
    if outcomes.iter().any(|o| matches!(o.effect, Effect::Publish(_))) {
        return write_transaction(conn, |conn| {
            let settled = super::chains::settle(conn, owner, outcomes, now, &mut recorded.published)?;
            record_settled(conn, owner, &settled, now, &mut recorded.published)?;
            recorded.count(&settled);
            Ok(recorded)
        });
    }
    record_settled(conn, owner, outcomes, now, &mut recorded.published)?;
    recorded.count(outcomes);
    Ok(recorded)
}

/// [`record`] for outcomes that publish nothing of their own: the operational events they
/// cause (a subscription switched off, an invocation dead) are published with them.
fn record_settled(
    conn: &mut AnyConnection,
    owner: &str,
    outcomes: &[Outcome],
    now: NaiveDateTime,
    published: &mut Vec<String>,
) -> Result<(), StoreError> {
    let changes: Vec<Change> = outcomes.iter().map(|o| Change::of(o, now)).collect();
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
    let health = health::Changes::of(outcomes);
    let disables: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match &o.effect {
            Effect::Disable(subscription, reason) => Some((subscription, reason)),
            Effect::None | Effect::Publish(_) => None,
        })
        .collect();
    // A death needs the transaction only when someone listens for it.
    let tells = outcomes.iter().any(|o| o.next == Next::Dead)
        && operational::listened(conn, catalog::INVOCATION_DEAD)?;
    if let AnyConnection::Postgresql(pg) = conn
        && disables.is_empty()
        && !tells
    {
        return pg_record(pg, &changes, &failures, &health, owner, now);
    }
    write_transaction(conn, |conn| {
        let deaths = if tells { operational::deaths(conn, owner, outcomes, now)? } else { Vec::new() };
        match conn {
            AnyConnection::Sqlite(c) => {
                sqlite_update(c, &changes, owner, now)?;
                health::write_sqlite(c, &health)?;
                insert_rows!(conn, attempts::table, failures);
            }
            AnyConnection::Postgresql(c) => pg_record(c, &changes, &failures, &health, owner, now)?,
        }
        for (subscription, reason) in disables {
            let why = Disabling { reason: reason.clone(), failing: None };
            if health::disable(conn, subscription, &why, now)? {
                published.push(catalog::SUBSCRIPTION_DISABLED.to_owned());
            }
        }
        for (about, input) in deaths {
            if operational::publish(conn, catalog::INVOCATION_DEAD, input, Some(&about), now)? {
                published.push(catalog::INVOCATION_DEAD.to_owned());
            }
        }
        Ok(())
    })
}

/// Records `changes` and `failures` on PostgreSQL in one statement.
fn pg_record(
    conn: &mut diesel::PgConnection,
    changes: &[Change],
    failures: &[AttemptRow],
    health: &health::Changes,
    owner: &str,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let mut c = ChangeColumns::default();
    for change in changes {
        c.id.push(change.id);
        c.state.push(change.state);
        c.attempts.push(change.attempts);
        c.next_attempt_at.push(change.next_attempt_at);
        c.last_error.push(change.last_error.as_deref());
        c.completed.push(change.completed);
        c.output.push(change.output);
        c.success_started.push(change.success.map(|a| a.started));
        c.success_duration_ms.push(change.success.map(|a| a.duration_ms));
        c.success_status.push(change.success.and_then(|a| a.status));
        c.success_response.push(change.success.and_then(|a| a.response.as_deref()));
        c.dead_reason.push(change.dead_reason);
    }
    let mut a = AttemptColumns::default();
    for f in failures {
        a.id.push(f.id.clone());
        a.invocation_id.push(f.invocation_id);
        a.attempt.push(f.attempt);
        a.started.push(f.started);
        a.duration_ms.push(f.duration_ms);
        a.status.push(f.status);
        a.response.push(f.response);
        a.error.push(f.error);
    }
    let mut h = HealthColumns { up: health.up.clone(), ..HealthColumns::default() };
    for f in &health.down {
        h.subscription_id.push(f.subscription);
        h.since.push(f.since);
        h.failures.push(f.failures);
        h.last_error.push(f.last_error.as_deref());
    }
    RecordOutcomes { now, owner, changes: c, failures: a, health: h }.execute(conn)?;
    Ok(())
}

pub(super) fn last_error(a: &Attempt) -> Option<String> {
    match (&a.error, a.status) {
        (Some(e), _) => Some(e.clone()),
        (None, Some(status)) => Some(format!("subscriber answered HTTP {status}")),
        (None, None) => None,
    }
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
    fn the_sqlite_batch_update_names_its_columns_and_numbers_its_parameters() {
        let sqlite = build_sqlite_update_sql(2);
        assert!(sqlite.contains("state = v.column2,") && sqlite.contains("dead_reason = v.column12,"));
        assert_eq!(sqlite.matches('?').count(), 2 * CHANGE_COLUMNS.len() + 2, "{sqlite}");
    }
}
