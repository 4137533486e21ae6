//! Invocations as stored, and the reads the API and the tests make of them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{attempts, events, invocations};
use super::{AnyConnection, StoreError};
use crate::domain::event::{NewEvent, Recipient};
use crate::domain::ids::InvocationId;
use crate::domain::invocation::{Attempt, DeadReason, Invocation, InvocationKind, InvocationState};

#[derive(Queryable, QueryableByName, Insertable)]
#[diesel(table_name = invocations)]
pub(super) struct InvocationRow {
    pub id: String,
    pub event_id: String,
    pub subscription_id: String,
    pub trigger_id: String,
    pub kind: String,
    pub state: String,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<NaiveDateTime>,
    pub secret: String,
    pub last_error: Option<String>,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub completed: Option<NaiveDateTime>,
    pub deliver_when_disabled: bool,
    pub output: Option<String>,
    pub success_started: Option<NaiveDateTime>,
    pub success_duration_ms: Option<i32>,
    pub success_status: Option<i32>,
    pub success_response: Option<String>,
    pub order_key: Option<String>,
    pub dead_reason: Option<String>,
}

/// Who holds a new invocation: the instance it was handed to in memory, until when.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub until: NaiveDateTime,
}

impl InvocationRow {
    /// A new invocation of `event` for `subscription`: pending and due now, or already in flight
    /// under `lease` (handed to a dispatcher in memory), or, with a reason, a dead letter.
    pub(super) fn new(
        event_id: &str,
        recipient: &Recipient,
        event: &NewEvent,
        now: NaiveDateTime,
        lease: Option<&Lease>,
        dead: Option<String>,
    ) -> Self {
        // Ordered invocations wait their turn in the database: a claim takes each stream's head.
        let lease = lease.filter(|_| recipient.order_key.is_none());
        let state = match (&dead, lease) {
            (Some(_), _) => InvocationState::Dead,
            (None, Some(_)) => InvocationState::InFlight,
            (None, None) => InvocationState::Pending,
        };
        let lease = lease.filter(|_| dead.is_none());
        Self {
            id: InvocationId::generate().to_string(),
            event_id: event_id.to_owned(),
            subscription_id: recipient.subscription.to_string(),
            trigger_id: event.trigger_id.to_string(),
            kind: event.kind.as_str().to_owned(),
            state: state.as_str().to_owned(),
            attempts: i32::from(lease.is_some()),
            next_attempt_at: now,
            lease_owner: lease.map(|l| l.owner.clone()),
            lease_expires_at: lease.map(|l| l.until),
            secret: uuid::Uuid::new_v4().to_string(),
            completed: dead.is_some().then_some(now),
            last_error: dead,
            created: now,
            updated: now,
            deliver_when_disabled: false,
            output: None,
            success_started: None,
            success_duration_ms: None,
            success_status: None,
            success_response: None,
            order_key: recipient.order_key.clone(),
            dead_reason: (state == InvocationState::Dead).then(|| DeadReason::Held.as_str().to_owned()),
        }
    }

    pub(super) fn into_domain(self) -> Result<Invocation, StoreError> {
        let corrupt =
            |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(format!("invocations.{what}: {e}"));
        Ok(Invocation {
            id: self.id.parse().map_err(|e| corrupt("id", &e))?,
            subscription_id: self.subscription_id.parse().map_err(|e| corrupt("subscription_id", &e))?,
            trigger_id: self.trigger_id.parse().map_err(|e| corrupt("trigger_id", &e))?,
            kind: InvocationKind::parse(&self.kind).ok_or_else(|| corrupt("kind", &self.kind))?,
            state: InvocationState::parse(&self.state).ok_or_else(|| corrupt("state", &self.state))?,
            event_id: self.event_id,
            attempts: self.attempts,
            next_attempt_at: self.next_attempt_at,
            secret: self.secret,
            last_error: self.last_error,
            created: self.created,
            updated: self.updated,
            completed: self.completed,
            deliver_when_disabled: self.deliver_when_disabled,
            output: self.output,
            order_key: self.order_key,
            dead_reason: match self.dead_reason {
                Some(reason) => {
                    Some(DeadReason::parse(&reason).ok_or_else(|| corrupt("dead_reason", &reason))?)
                }
                None => None,
            },
        })
    }
}

/// Inserts rows in multi-row statements (the multi-backend connection has no batch insert, so it
/// goes through the backend's own connection), in chunks that stay under both parameter limits.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {{
        for chunk in $rows.chunks(500) {
            match $conn {
                AnyConnection::Postgresql(pg) => diesel::insert_into($table).values(chunk).execute(pg)?,
                AnyConnection::Sqlite(sqlite) => diesel::insert_into($table).values(chunk).execute(sqlite)?,
            };
        }
    }};
}
pub(super) use insert_rows;

pub fn get(conn: &mut AnyConnection, id: &InvocationId) -> Result<Invocation, StoreError> {
    invocations::table.find(id.as_str()).first::<InvocationRow>(conn)?.into_domain()
}

#[derive(Queryable)]
struct AttemptRead {
    attempt: i32,
    started: NaiveDateTime,
    duration_ms: i32,
    status: Option<i32>,
    response: Option<String>,
    error: Option<String>,
}

/// Every attempt made for an invocation, oldest first: the failures from `attempts`, and the
/// success kept on the invocation itself.
pub fn attempts_of(conn: &mut AnyConnection, id: &InvocationId) -> Result<Vec<Attempt>, StoreError> {
    let rows: Vec<AttemptRead> = attempts::table
        .filter(attempts::invocation_id.eq(id.as_str()))
        .select((
            attempts::attempt,
            attempts::started,
            attempts::duration_ms,
            attempts::status,
            attempts::response,
            attempts::error,
        ))
        .load(conn)?;
    let mut out: Vec<Attempt> = rows
        .into_iter()
        .map(|r| Attempt {
            attempt: r.attempt,
            started: r.started,
            duration_ms: r.duration_ms,
            status: r.status,
            response: r.response,
            error: r.error,
        })
        .collect();
    for kept in successes(conn, &[id.as_str()])? {
        out.push(kept.attempt);
    }
    out.sort_by_key(|a| (a.attempt, a.started));
    Ok(out)
}

/// A success kept on its invocation (rather than in `attempts`).
pub(super) struct KeptSuccess {
    pub invocation_id: String,
    pub attempt: Attempt,
}

#[derive(Queryable)]
struct SuccessRow {
    id: String,
    attempt: i32,
    started: Option<NaiveDateTime>,
    duration_ms: Option<i32>,
    status: Option<i32>,
    response: Option<String>,
}

/// The successes kept on these invocations.
pub(super) fn successes(conn: &mut AnyConnection, ids: &[&str]) -> Result<Vec<KeptSuccess>, StoreError> {
    let rows: Vec<SuccessRow> = invocations::table
        .filter(invocations::id.eq_any(ids))
        .filter(invocations::success_started.is_not_null())
        .select((
            invocations::id,
            invocations::attempts,
            invocations::success_started,
            invocations::success_duration_ms,
            invocations::success_status,
            invocations::success_response,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(KeptSuccess {
                invocation_id: r.id,
                attempt: Attempt {
                    attempt: r.attempt,
                    started: r.started?,
                    duration_ms: r.duration_ms.unwrap_or(0),
                    status: r.status,
                    response: r.response,
                    error: None,
                },
            })
        })
        .collect())
}

/// The invocations with these ids, in no particular order.
pub fn by_ids(conn: &mut AnyConnection, ids: &[&str]) -> Result<Vec<Invocation>, StoreError> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let rows: Vec<InvocationRow> = invocations::table.filter(invocations::id.eq_any(chunk)).load(conn)?;
        for row in rows {
            out.push(row.into_domain()?);
        }
    }
    Ok(out)
}

/// Counts invocations in each state (for tests and metrics).
/// How many invocations there are, in any state.
pub fn count_all(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(invocations::table.count().get_result(conn)?)
}

pub fn count_in_state(conn: &mut AnyConnection, state: InvocationState) -> Result<i64, StoreError> {
    Ok(invocations::table.filter(invocations::state.eq(state.as_str())).count().get_result(conn)?)
}

/// An invocation with what the status and list endpoints show beside it.
#[derive(Debug, Clone)]
pub struct InvocationView {
    pub invocation: Invocation,
    pub subscription_name: Option<String>,
    pub input: String,
    pub content_json: String,
}

/// One condition of an invocation list query (all conditions must hold).
#[derive(Debug, Clone)]
pub enum Condition {
    IdIs(String),
    TriggerIs(String),
    SubscriptionIs(String),
    StateIn(Vec<String>),
    KindIs(String),
    CreatedAtLeast(NaiveDateTime),
    CreatedBefore(NaiveDateTime),
}

/// Applies list conditions to a boxed invocations query.
macro_rules! filtered {
    ($query:expr, $conditions:expr) => {{
        let mut q = $query;
        for c in $conditions {
            q = match c {
                Condition::IdIs(id) => q.filter(invocations::id.eq(id.clone())),
                Condition::TriggerIs(t) => q.filter(invocations::trigger_id.eq(t.clone())),
                Condition::SubscriptionIs(s) => q.filter(invocations::subscription_id.eq(s.clone())),
                Condition::StateIn(states) => q.filter(invocations::state.eq_any(states.clone())),
                Condition::KindIs(k) => q.filter(invocations::kind.eq(k.clone())),
                Condition::CreatedAtLeast(t) => q.filter(invocations::created.ge(*t)),
                Condition::CreatedBefore(t) => q.filter(invocations::created.lt(*t)),
            };
        }
        q
    }};
}
pub(super) use filtered;

/// A page of invocations, newest first unless `oldest_first`, and the total that matched.
pub fn list(
    conn: &mut AnyConnection,
    conditions: &[Condition],
    oldest_first: bool,
    offset: i64,
    limit: i64,
) -> Result<(Vec<InvocationView>, i64), StoreError> {
    use super::schema::subscriptions;
    let total: i64 = filtered!(invocations::table.into_boxed(), conditions).count().get_result(conn)?;
    let base = invocations::table
        .inner_join(events::table)
        .left_join(subscriptions::table.on(subscriptions::id.eq(invocations::subscription_id)))
        .select((
            invocations::all_columns,
            subscriptions::name.nullable(),
            events::input,
            events::content_json,
        ))
        .into_boxed();
    let mut query = filtered!(base, conditions);
    query = if oldest_first {
        query.order((invocations::created.asc(), invocations::id.asc()))
    } else {
        query.order((invocations::created.desc(), invocations::id.desc()))
    };
    let rows: Vec<(InvocationRow, Option<String>, String, String)> =
        query.offset(offset).limit(limit).load(conn)?;
    let views = rows
        .into_iter()
        .map(|(row, subscription_name, input, content_json)| {
            Ok(InvocationView { invocation: row.into_domain()?, subscription_name, input, content_json })
        })
        .collect::<Result<_, StoreError>>()?;
    Ok((views, total))
}
