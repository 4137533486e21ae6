//! Events and invocations: publish (fan-out in one transaction), claim under a lease, record
//! outcomes in batches, and read them back.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;

use super::schema::{attempts, events, idempotency_keys, invocations};
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::ids::{InvocationId, SubscriptionId, TriggerId};
use crate::domain::invocation::{Attempt, Invocation, InvocationKind, InvocationState};
use crate::domain::subscription::Subscription;

/// An event to store, with the subscriptions it goes to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub trigger_id: TriggerId,
    pub kind: InvocationKind,
    pub input: String,
    pub content_json: String,
    /// The exact bytes subscribers receive.
    pub payload: String,
    pub subscriptions: Vec<SubscriptionId>,
    /// Subscriptions switched off by a 410: the event is kept for them as a dead letter with this
    /// reason, so it can be replayed once they are enabled again.
    pub held: Vec<(SubscriptionId, String)>,
}

impl NewEvent {
    /// A real-time event for the enabled `subscribers` whose filter matches `payload`; those a 410
    /// switched off keep it as a dead letter to replay once re-enabled.
    pub fn real_time(
        trigger_id: &TriggerId,
        input: String,
        content_json: String,
        payload: &serde_json::Value,
        subscribers: &[Subscription],
    ) -> Self {
        let matching = subscribers
            .iter()
            .filter(|s| s.spec.enabled || s.disabled_reason.is_some())
            .filter(|s| s.spec.filter.as_ref().is_none_or(|f| f.matches(payload)));
        let (live, held): (Vec<&Subscription>, Vec<&Subscription>) = matching.partition(|s| s.spec.enabled);
        Self {
            trigger_id: trigger_id.clone(),
            kind: InvocationKind::RealTime,
            input,
            content_json,
            payload: payload.to_string(),
            subscriptions: live.iter().map(|s| s.id.clone()).collect(),
            held: held
                .iter()
                .map(|s| (s.id.clone(), s.disabled_reason.clone().unwrap_or_default()))
                .collect(),
        }
    }
}

#[derive(Queryable, Insertable)]
#[diesel(table_name = invocations)]
struct InvocationRow {
    id: String,
    event_id: String,
    subscription_id: String,
    trigger_id: String,
    kind: String,
    state: String,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    lease_owner: Option<String>,
    lease_expires_at: Option<NaiveDateTime>,
    secret: String,
    last_error: Option<String>,
    created: NaiveDateTime,
    updated: NaiveDateTime,
    completed: Option<NaiveDateTime>,
    deliver_when_disabled: bool,
    output: Option<String>,
}

impl InvocationRow {
    /// A new invocation of `event` for `subscription`: pending and due now, or, with a reason,
    /// already a dead letter (kept to be replayed later).
    fn new(
        event_id: &str,
        subscription: &SubscriptionId,
        event: &NewEvent,
        now: NaiveDateTime,
        dead: Option<String>,
    ) -> Self {
        let state = if dead.is_some() { InvocationState::Dead } else { InvocationState::Pending };
        Self {
            id: InvocationId::generate().to_string(),
            event_id: event_id.to_owned(),
            subscription_id: subscription.to_string(),
            trigger_id: event.trigger_id.to_string(),
            kind: event.kind.as_str().to_owned(),
            state: state.as_str().to_owned(),
            attempts: 0,
            next_attempt_at: now,
            lease_owner: None,
            lease_expires_at: None,
            secret: uuid::Uuid::new_v4().to_string(),
            completed: dead.is_some().then_some(now),
            last_error: dead,
            created: now,
            updated: now,
            deliver_when_disabled: false,
            output: None,
        }
    }

    fn into_domain(self) -> Result<Invocation, StoreError> {
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

#[derive(Insertable)]
#[diesel(table_name = events)]
struct EventRow<'a> {
    id: String,
    trigger_id: &'a str,
    kind: &'static str,
    input: &'a str,
    content_json: &'a str,
    payload: &'a str,
    created: NaiveDateTime,
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

/// Stores events and one pending invocation per subscription, all in the caller's transaction.
/// Returns, per event, its invocations.
pub fn insert_events(
    conn: &mut AnyConnection,
    new_events: &[NewEvent],
    now: NaiveDateTime,
) -> Result<Vec<Vec<Invocation>>, StoreError> {
    let mut event_rows = Vec::with_capacity(new_events.len());
    let mut invocation_rows = Vec::new();
    let mut held_rows = Vec::new();
    let mut per_event = Vec::with_capacity(new_events.len());
    for event in new_events {
        let event_id = uuid::Uuid::now_v7().to_string();
        let first = invocation_rows.len();
        for subscription in &event.subscriptions {
            invocation_rows.push(InvocationRow::new(&event_id, subscription, event, now, None));
        }
        per_event.push(first..invocation_rows.len());
        for (subscription, reason) in &event.held {
            held_rows.push(InvocationRow::new(
                &event_id,
                subscription,
                event,
                now,
                Some(format!("not sent: {reason}")),
            ));
        }
        event_rows.push(EventRow {
            id: event_id,
            trigger_id: event.trigger_id.as_str(),
            kind: event.kind.as_str(),
            input: &event.input,
            content_json: &event.content_json,
            payload: &event.payload,
            created: now,
        });
    }
    insert_rows!(conn, events::table, event_rows);
    insert_rows!(conn, invocations::table, invocation_rows);
    insert_rows!(conn, invocations::table, held_rows);
    let mut created: Vec<Invocation> =
        invocation_rows.into_iter().map(InvocationRow::into_domain).collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(per_event.len());
    for range in per_event.into_iter().rev() {
        out.push(created.split_off(range.start));
    }
    out.reverse();
    Ok(out)
}

/// What an `Idempotency-Key` already answered.
pub enum Remembered {
    /// The same request: replay this response.
    Same(String),
    /// The key was used for a different request.
    Different,
    Unknown,
}

pub fn recall_key(
    conn: &mut AnyConnection,
    key: &str,
    request_hash: &str,
    now: NaiveDateTime,
) -> Result<Remembered, StoreError> {
    let found: Option<(String, String)> = idempotency_keys::table
        .find(key)
        .filter(idempotency_keys::expires_at.gt(now))
        .select((idempotency_keys::request_hash, idempotency_keys::response))
        .first(conn)
        .optional()?;
    Ok(match found {
        Some((hash, response)) if hash == request_hash => Remembered::Same(response),
        Some(_) => Remembered::Different,
        None => Remembered::Unknown,
    })
}

/// Remembers the response to a keyed request (replacing an expired entry).
pub fn remember_key(
    conn: &mut AnyConnection,
    key: &str,
    request_hash: &str,
    response: &str,
    now: NaiveDateTime,
    ttl: Duration,
) -> Result<(), StoreError> {
    diesel::delete(idempotency_keys::table.find(key)).execute(conn)?;
    diesel::insert_into(idempotency_keys::table)
        .values((
            idempotency_keys::key.eq(key),
            idempotency_keys::request_hash.eq(request_hash),
            idempotency_keys::response.eq(response),
            idempotency_keys::created.eq(now),
            idempotency_keys::expires_at.eq(now + TimeDelta::from_std(ttl).unwrap_or(TimeDelta::days(1))),
        ))
        .execute(conn)?;
    Ok(())
}

/// A claimed invocation with what its delivery needs.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub invocation: Invocation,
    pub payload: String,
}

/// Takes up to `limit` due invocations (pending and due, or in flight with an expired lease),
/// marks them in flight under `owner`'s lease and counts the attempt about to be made.
/// PostgreSQL skips rows other instances hold; SQLite's single writer makes the statement atomic.
pub fn claim(
    conn: &mut AnyConnection,
    owner: &str,
    now: NaiveDateTime,
    lease: Duration,
    limit: i64,
) -> Result<Vec<Claimed>, StoreError> {
    diesel::alias!(invocations as due: DueAlias);
    let lease_until = now + TimeDelta::from_std(lease).unwrap_or(TimeDelta::minutes(1));
    let pending = due
        .field(invocations::state)
        .eq(InvocationState::Pending.as_str())
        .and(due.field(invocations::next_attempt_at).le(now));
    let expired = due
        .field(invocations::state)
        .eq(InvocationState::InFlight.as_str())
        .and(due.field(invocations::lease_expires_at).le(now));
    let candidates = due
        .select(due.field(invocations::id))
        .filter(pending.or(expired))
        .order(due.field(invocations::next_attempt_at).asc())
        .limit(limit);
    let changes = (
        invocations::state.eq(InvocationState::InFlight.as_str()),
        invocations::lease_owner.eq(owner),
        invocations::lease_expires_at.eq(lease_until),
        invocations::attempts.eq(invocations::attempts + 1),
        invocations::updated.eq(now),
    );
    let ids: Vec<String> = match conn {
        AnyConnection::Postgresql(pg) => diesel::update(invocations::table)
            .filter(invocations::id.eq_any(candidates.for_update().skip_locked()))
            .set(changes)
            .returning(invocations::id)
            .get_results(pg)?,
        AnyConnection::Sqlite(sqlite) => sqlite.immediate_transaction(|sqlite| {
            diesel::update(invocations::table)
                .filter(invocations::id.eq_any(candidates))
                .set(changes)
                .returning(invocations::id)
                .get_results(sqlite)
        })?,
    };
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(InvocationRow, String)> = invocations::table
        .inner_join(events::table)
        .filter(invocations::id.eq_any(&ids))
        .select((invocations::all_columns, events::payload))
        .load(conn)?;
    rows.into_iter().map(|(row, payload)| Ok(Claimed { invocation: row.into_domain()?, payload })).collect()
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

/// Records a batch of outcomes in one transaction: each attempt row, and the invocation's new
/// state if `owner` still holds its lease (a worker whose lease expired records the attempt but
/// does not overrule the worker that took over).
pub fn record(
    conn: &mut AnyConnection,
    owner: &str,
    outcomes: &[Outcome],
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    write_transaction(conn, |conn| {
        let rows: Vec<AttemptRow> = outcomes
            .iter()
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
        insert_rows!(conn, attempts::table, rows);
        let held =
            invocations::lease_owner.eq(owner).and(invocations::state.eq(InvocationState::InFlight.as_str()));
        // The common case, every delivered invocation of the batch, is one statement.
        let delivered: Vec<&str> =
            outcomes.iter().filter(|o| o.next == Next::Delivered).map(|o| o.invocation.as_str()).collect();
        for chunk in delivered.chunks(500) {
            diesel::update(invocations::table.filter(invocations::id.eq_any(chunk)).filter(held))
                .set((
                    invocations::state.eq(InvocationState::Delivered.as_str()),
                    invocations::next_attempt_at.eq(now),
                    invocations::lease_owner.eq(None::<String>),
                    invocations::lease_expires_at.eq(None::<NaiveDateTime>),
                    invocations::last_error.eq(None::<String>),
                    invocations::completed.eq(Some(now)),
                    invocations::updated.eq(now),
                ))
                .execute(conn)?;
        }
        for outcome in outcomes.iter().filter(|o| o.next != Next::Delivered) {
            let (state, next_at, completed, output) = match &outcome.next {
                Next::RetryAt(at) => (InvocationState::Pending, *at, None, None),
                Next::Awaiting(deadline) => (InvocationState::Awaiting, *deadline, None, None),
                Next::Answered(output) => (InvocationState::Delivered, now, Some(now), Some(output.as_str())),
                Next::Dead | Next::Delivered => (InvocationState::Dead, now, Some(now), None),
            };
            let error = match state {
                InvocationState::Pending | InvocationState::Dead => last_error(&outcome.attempt),
                _ => None,
            };
            diesel::update(invocations::table.find(outcome.invocation.as_str()).filter(held))
                .set((
                    invocations::state.eq(state.as_str()),
                    invocations::next_attempt_at.eq(next_at),
                    invocations::lease_owner.eq(None::<String>),
                    invocations::lease_expires_at.eq(None::<NaiveDateTime>),
                    invocations::last_error.eq(error),
                    invocations::completed.eq(completed),
                    invocations::output.eq(output),
                    invocations::updated.eq(now),
                ))
                .execute(conn)?;
            if let Some((subscription, reason)) = &outcome.disable {
                super::subscriptions::disable(conn, subscription, reason, now)?;
            }
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

/// Why a `complete` callback was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteRefusal {
    /// The invocation already has its result (delivered with an output, or failed).
    AlreadyCompleted { state: InvocationState, at: Option<NaiveDateTime> },
    /// The response deadline passed (at this time); the invocation has failed.
    PastDeadline(NaiveDateTime),
}

/// Completes a `REQUEST_RESPONSE` invocation with its output (`Ok`) or the subscriber's error
/// (`Err`): delivered or dead, either way finished. A callback that arrives before the
/// subscriber's acknowledgement was recorded is accepted too.
pub fn complete(
    conn: &mut AnyConnection,
    id: &InvocationId,
    result: Result<&str, &str>,
    now: NaiveDateTime,
) -> Result<Result<(), CompleteRefusal>, StoreError> {
    write_transaction(conn, |conn| {
        let invocation = get(conn, id)?;
        match invocation.state {
            InvocationState::Delivered | InvocationState::Dead => {
                let at = invocation.completed;
                return Ok(Err(if invocation.last_error.as_deref() == Some(DEADLINE_PASSED) {
                    CompleteRefusal::PastDeadline(invocation.next_attempt_at)
                } else {
                    CompleteRefusal::AlreadyCompleted { state: invocation.state, at }
                }));
            }
            InvocationState::Awaiting if invocation.next_attempt_at <= now => {
                expire_overdue(conn, now)?;
                return Ok(Err(CompleteRefusal::PastDeadline(invocation.next_attempt_at)));
            }
            _ => {}
        }
        let (state, output, error) = match result {
            Ok(output) => (InvocationState::Delivered, Some(output), None),
            Err(error) => (InvocationState::Dead, None, Some(format!("the subscriber reported: {error}"))),
        };
        let changed = diesel::update(
            invocations::table.find(id.as_str()).filter(invocations::state.eq(invocation.state.as_str())),
        )
        .set((
            invocations::state.eq(state.as_str()),
            invocations::output.eq(output),
            invocations::last_error.eq(error),
            invocations::lease_owner.eq(None::<String>),
            invocations::lease_expires_at.eq(None::<NaiveDateTime>),
            invocations::next_attempt_at.eq(now),
            invocations::completed.eq(Some(now)),
            invocations::updated.eq(now),
        ))
        .execute(conn)?;
        if changed == 0 {
            let now_state = get(conn, id)?;
            return Ok(Err(CompleteRefusal::AlreadyCompleted {
                state: now_state.state,
                at: now_state.completed,
            }));
        }
        Ok(Ok(()))
    })
}

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

pub fn attempts_of(conn: &mut AnyConnection, id: &InvocationId) -> Result<Vec<Attempt>, StoreError> {
    let rows: Vec<AttemptRead> = attempts::table
        .filter(attempts::invocation_id.eq(id.as_str()))
        .order((attempts::attempt, attempts::started))
        .select((
            attempts::attempt,
            attempts::started,
            attempts::duration_ms,
            attempts::status,
            attempts::response,
            attempts::error,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .map(|r| Attempt {
            attempt: r.attempt,
            started: r.started,
            duration_ms: r.duration_ms,
            status: r.status,
            response: r.response,
            error: r.error,
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

/// Test invocations: events of kind TEST to the given subscriptions, in one transaction.
pub fn insert_test_event(
    conn: &mut AnyConnection,
    event: &NewEvent,
    now: NaiveDateTime,
) -> Result<Vec<Invocation>, StoreError> {
    write_transaction(conn, |c| Ok(insert_events(c, std::slice::from_ref(event), now)?.remove(0)))
}

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

fn requeue(
    conn: &mut AnyConnection,
    ids: &[&str],
    deliver_when_disabled: bool,
    due: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<(), StoreError> {
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
            invocations::updated.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Insertable)]
#[diesel(table_name = super::schema::replays)]
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
        let disabled = !subscription.spec.enabled && invocation.kind == InvocationKind::RealTime;
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
        diesel::insert_into(super::schema::replays::table).values(&row).execute(conn)?;
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
        let enabled: std::collections::HashMap<String, bool> = super::subscriptions::by_ids(conn, &sub_ids)?
            .into_iter()
            .map(|s| (s.id.to_string(), s.spec.enabled))
            .collect();
        let mut normal = Vec::new();
        let mut forced = Vec::new();
        let mut skipped = 0;
        for (id, sub, kind) in &dead {
            match enabled.get(sub) {
                None => skipped += 1,
                Some(false) if kind == InvocationKind::RealTime.as_str() => {
                    if force {
                        forced.push(id.as_str());
                    } else {
                        skipped += 1;
                    }
                }
                Some(_) => normal.push(id.as_str()),
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
        insert_rows!(conn, super::schema::replays::table, rows);
        Ok(ReplaySummary { replayed: normal.len() + forced.len(), skipped })
    })
}

/// Who replayed an invocation, and when, oldest first.
pub fn replays_of(
    conn: &mut AnyConnection,
    id: &InvocationId,
) -> Result<Vec<(String, NaiveDateTime, bool)>, StoreError> {
    use super::schema::replays;
    Ok(replays::table
        .filter(replays::invocation_id.eq(id.as_str()))
        .order(replays::replayed_at)
        .select((replays::replayed_by, replays::replayed_at, replays::forced))
        .load(conn)?)
}
