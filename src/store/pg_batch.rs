//! PostgreSQL's batch statements: each takes any number of rows as one array per column
//! (`unnest`), so its SQL never changes. Diesel prepares it once per connection (an `sql_query`
//! or a multi-row `VALUES` insert is parsed and planned on every call), and PostgreSQL gets one
//! statement, one round trip, per batch: a publish group stores its events and invocations in
//! one (checking that the subscribers it fanned out to are still current), an outcome batch its
//! failed attempts and new states in one. Being single statements,
//! they are atomic without a transaction of their own ([`super::Store::write_atomic`]).

use chrono::NaiveDateTime;
use diesel::pg::Pg;
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamp};
use diesel::{PgConnection, QueryResult, RunQueryDsl};

use super::StoreError;
use super::invocations::InvocationRow;

/// Pushes `binds` separated by commas.
macro_rules! push_binds {
    ($out:ident; $first:expr => $st:ty $(, $rest:expr => $rst:ty)* $(,)?) => {{
        $out.push_bind_param::<$st, _>($first)?;
        $( $out.push_sql(", "); $out.push_bind_param::<$rst, _>($rest)?; )*
    }};
}

/// Events, one array per column.
#[derive(Default)]
pub(super) struct EventColumns<'a> {
    pub id: Vec<&'a str>,
    pub trigger_id: Vec<&'a str>,
    pub kind: Vec<&'a str>,
    pub input: Vec<&'a str>,
    pub content_json: Vec<&'a str>,
    pub payload: Vec<&'a str>,
    pub depth: Vec<i32>,
    pub traceparent: Vec<&'a str>,
}

/// New invocations, one array per column that differs between them.
#[derive(Default)]
struct InvocationColumns<'a> {
    id: Vec<&'a str>,
    event_id: Vec<&'a str>,
    subscription_id: Vec<&'a str>,
    trigger_id: Vec<&'a str>,
    kind: Vec<&'a str>,
    state: Vec<&'a str>,
    attempts: Vec<i32>,
    lease_owner: Vec<Option<&'a str>>,
    lease_expires_at: Vec<Option<NaiveDateTime>>,
    secret: Vec<&'a str>,
    last_error: Vec<Option<&'a str>>,
    completed: Vec<Option<NaiveDateTime>>,
    order_key: Vec<Option<&'a str>>,
    dead_reason: Vec<Option<&'a str>>,
}

/// Stores events and their new invocations (created at `now`) in one statement, unless the
/// count of subscription changes is no longer `revision`.
struct InsertNew<'a> {
    now: NaiveDateTime,
    revision: Option<i64>,
    events: &'a EventColumns<'a>,
    invocations: InvocationColumns<'a>,
}

impl QueryId for InsertNew<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Pg> for InsertNew<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (e, i) = (self.events, &self.invocations);
        out.push_sql("WITH unchanged AS (SELECT 1 WHERE ");
        out.push_bind_param::<Nullable<BigInt>, _>(&self.revision)?;
        out.push_sql(
            "::int8 IS NULL OR EXISTS (SELECT 1 FROM revisions WHERE name = 'subscriptions' AND value = ",
        );
        out.push_bind_param::<Nullable<BigInt>, _>(&self.revision)?;
        out.push_sql(
            ")), new_invocations AS (INSERT INTO invocations (id, event_id, subscription_id, trigger_id, kind, \
             state, attempts, lease_owner, lease_expires_at, secret, last_error, completed, order_key, \
             dead_reason, next_attempt_at, created, updated, deliver_when_disabled) SELECT v.*, ",
        );
        push_binds!(out; &self.now => Timestamp, &self.now => Timestamp, &self.now => Timestamp);
        out.push_sql(", false FROM unnest(");
        push_binds!(out; &i.id => Array<Text>, &i.event_id => Array<Text>,
            &i.subscription_id => Array<Text>, &i.trigger_id => Array<Text>, &i.kind => Array<Text>,
            &i.state => Array<Text>, &i.attempts => Array<Integer>,
            &i.lease_owner => Array<Nullable<Text>>, &i.lease_expires_at => Array<Nullable<Timestamp>>,
            &i.secret => Array<Text>, &i.last_error => Array<Nullable<Text>>,
            &i.completed => Array<Nullable<Timestamp>>, &i.order_key => Array<Nullable<Text>>,
            &i.dead_reason => Array<Nullable<Text>>);
        out.push_sql(
            ") AS v WHERE EXISTS (SELECT 1 FROM unchanged)) INSERT INTO events (id, trigger_id, kind, input, \
             content_json, payload, depth, traceparent, created) SELECT e.*, ",
        );
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" FROM unnest(");
        push_binds!(out; &e.id => Array<Text>, &e.trigger_id => Array<Text>, &e.kind => Array<Text>,
            &e.input => Array<Text>, &e.content_json => Array<Text>, &e.payload => Array<Text>,
            &e.depth => Array<Integer>, &e.traceparent => Array<Text>);
        out.push_sql(") AS e WHERE EXISTS (SELECT 1 FROM unchanged)");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for InsertNew<'_> {}

/// Stores `events` and the new invocations `rows` (each created at `now`, as
/// [`InvocationRow::new`] makes them) in one statement. With a `revision`, stores nothing and
/// returns `false` if the count of subscription changes has moved from it.
pub(super) fn insert_new(
    conn: &mut PgConnection,
    now: NaiveDateTime,
    revision: Option<i64>,
    events: &EventColumns,
    rows: &[&InvocationRow],
) -> Result<bool, StoreError> {
    let mut c = InvocationColumns::default();
    for r in rows {
        c.id.push(&r.id);
        c.event_id.push(&r.event_id);
        c.subscription_id.push(&r.subscription_id);
        c.trigger_id.push(&r.trigger_id);
        c.kind.push(&r.kind);
        c.state.push(&r.state);
        c.attempts.push(r.attempts);
        c.lease_owner.push(r.lease_owner.as_deref());
        c.lease_expires_at.push(r.lease_expires_at);
        c.secret.push(&r.secret);
        c.last_error.push(r.last_error.as_deref());
        c.completed.push(r.completed);
        c.order_key.push(r.order_key.as_deref());
        c.dead_reason.push(r.dead_reason.as_deref());
    }
    let stored = InsertNew { now, revision, events, invocations: c }.execute(conn)?;
    Ok(stored == events.id.len())
}

/// New states of invocations, one array per column (see `outcomes::CHANGE_COLUMNS`).
#[derive(Default)]
pub(super) struct ChangeColumns<'a> {
    pub id: Vec<&'a str>,
    pub state: Vec<&'a str>,
    pub attempts: Vec<i32>,
    pub next_attempt_at: Vec<NaiveDateTime>,
    pub last_error: Vec<Option<&'a str>>,
    pub completed: Vec<Option<NaiveDateTime>>,
    pub output: Vec<Option<&'a str>>,
    pub success_started: Vec<Option<NaiveDateTime>>,
    pub success_duration_ms: Vec<Option<i32>>,
    pub success_status: Vec<Option<i32>>,
    pub success_response: Vec<Option<&'a str>>,
    pub dead_reason: Vec<Option<&'a str>>,
}

/// Failed attempts, one array per column.
#[derive(Default)]
pub(super) struct AttemptColumns<'a> {
    pub id: Vec<String>,
    pub invocation_id: Vec<&'a str>,
    pub attempt: Vec<i32>,
    pub started: Vec<NaiveDateTime>,
    pub duration_ms: Vec<i32>,
    pub status: Vec<Option<i32>>,
    pub response: Vec<Option<&'a str>>,
    pub error: Vec<Option<&'a str>>,
}

/// Subscription health: the subscriptions healthy again, and those failing, one array per
/// column (see `health::Changes`).
#[derive(Default)]
pub(super) struct HealthColumns<'a> {
    pub up: Vec<&'a str>,
    pub subscription_id: Vec<&'a str>,
    pub since: Vec<NaiveDateTime>,
    pub failures: Vec<i32>,
    pub last_error: Vec<Option<&'a str>>,
}

/// Records a batch of outcomes in one statement: the failed attempts, the subscriptions'
/// health, and each invocation's new state where `owner` still holds its lease.
pub(super) struct RecordOutcomes<'a> {
    pub now: NaiveDateTime,
    pub owner: &'a str,
    pub changes: ChangeColumns<'a>,
    pub failures: AttemptColumns<'a>,
    pub health: HealthColumns<'a>,
}

impl QueryId for RecordOutcomes<'_> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

/// The columns an outcome sets, as named in the `unnest` alias.
const SET: &str = "state = v.state, attempts = v.attempts, next_attempt_at = v.next_attempt_at, \
     last_error = v.last_error, completed = v.completed, output = v.output, \
     success_started = v.success_started, success_duration_ms = v.success_duration_ms, \
     success_status = v.success_status, success_response = v.success_response, \
     dead_reason = v.dead_reason, lease_owner = NULL, lease_expires_at = NULL";

impl QueryFragment<Pg> for RecordOutcomes<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let (a, c) = (&self.failures, &self.changes);
        out.push_sql(
            "WITH failed AS (INSERT INTO attempts (id, invocation_id, attempt, started, duration_ms, status, \
             response, error) SELECT * FROM unnest(",
        );
        push_binds!(out; &a.id => Array<Text>, &a.invocation_id => Array<Text>,
            &a.attempt => Array<Integer>, &a.started => Array<Timestamp>, &a.duration_ms => Array<Integer>,
            &a.status => Array<Nullable<Integer>>, &a.response => Array<Nullable<Text>>,
            &a.error => Array<Nullable<Text>>);
        let h = &self.health;
        out.push_sql(")), healthy AS (DELETE FROM subscription_health WHERE subscription_id = ANY(");
        out.push_bind_param::<Array<Text>, _>(&h.up)?;
        out.push_sql(
            ")), failing AS (INSERT INTO subscription_health (subscription_id, failing_since, failures, \
             last_error) SELECT * FROM unnest(",
        );
        push_binds!(out; &h.subscription_id => Array<Text>, &h.since => Array<Timestamp>,
            &h.failures => Array<Integer>, &h.last_error => Array<Nullable<Text>>);
        out.push_sql(
            ") ON CONFLICT (subscription_id) DO UPDATE SET failures = subscription_health.failures + \
             excluded.failures, last_error = excluded.last_error) UPDATE invocations SET ",
        );
        out.push_sql(SET);
        out.push_sql(", updated = ");
        out.push_bind_param::<Timestamp, _>(&self.now)?;
        out.push_sql(" FROM unnest(");
        push_binds!(out; &c.id => Array<Text>, &c.state => Array<Text>, &c.attempts => Array<Integer>,
            &c.next_attempt_at => Array<Timestamp>, &c.last_error => Array<Nullable<Text>>,
            &c.completed => Array<Nullable<Timestamp>>, &c.output => Array<Nullable<Text>>,
            &c.success_started => Array<Nullable<Timestamp>>,
            &c.success_duration_ms => Array<Nullable<Integer>>,
            &c.success_status => Array<Nullable<Integer>>, &c.success_response => Array<Nullable<Text>>,
            &c.dead_reason => Array<Nullable<Text>>);
        // Joined on the primary key only: see `outcomes` for why there is no state test.
        out.push_sql(
            ") AS v (id, state, attempts, next_attempt_at, last_error, completed, output, success_started, \
             success_duration_ms, success_status, success_response, dead_reason) \
             WHERE invocations.id = v.id AND invocations.lease_owner = ",
        );
        out.push_bind_param::<Text, _>(&self.owner)?;
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for RecordOutcomes<'_> {}
