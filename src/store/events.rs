//! Publishing: one call stores a batch of events, picks their subscribers, honours the
//! `Idempotency-Key`, and creates the invocations, all in one transaction.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::NaiveDateTime;
use serde_json::Value;

use super::idempotency::{self, Answered, IdempotencyKey, Recalled};
use super::invocations::{InvocationRow, Lease, insert_rows};
use super::pg_batch::{self, EventColumns};
use super::queue::Claimed;
use super::revisions::{self, Signal};
use super::schema::{events, invocations};
use super::subscribers::Subscribers;
use super::{AnyConnection, StoreError, write_transaction};
use crate::domain::event::{NewEvent, Recipient};
use crate::domain::ids::TriggerId;
use crate::domain::invocation::{Invocation, InvocationKind, InvocationState};
use crate::domain::trace::TraceParent;
use diesel::prelude::*;

/// An event checked against its trigger, ready to publish.
#[derive(Debug, Clone)]
pub struct Draft {
    /// The id the event is stored under ([`crate::domain::event::new_event_id`]).
    pub event_id: String,
    pub trigger_id: TriggerId,
    pub input: String,
    pub content_json: String,
    /// The trigger's params merged with the input: what subscribers receive.
    pub payload: Value,
    /// How many chained deliveries led to it ([`crate::domain::chain`]).
    pub depth: i32,
    /// The trace it belongs to: the producer's, else a new one.
    pub trace: TraceParent,
}

impl Draft {
    /// An event of `trigger` with `input` (already checked against its schema), under a new id.
    pub fn new(
        trigger: &crate::domain::trigger::Trigger,
        input: &serde_json::Map<String, Value>,
        content_json: &Value,
    ) -> Self {
        Self {
            event_id: crate::domain::event::new_event_id(),
            trigger_id: trigger.id.clone(),
            input: Value::Object(input.clone()).to_string(),
            content_json: content_json.to_string(),
            payload: Value::Object(crate::domain::invocation::merge_params(&trigger.params, input)),
            depth: 0,
            trace: TraceParent::start(),
        }
    }
}

impl Draft {
    /// The event to store, fanned out to those of `subscribers` it goes to.
    pub fn event_for(&self, subscribers: &[crate::domain::subscription::Subscription]) -> NewEvent {
        NewEvent {
            id: self.event_id.clone(),
            depth: self.depth,
            trace: self.trace,
            ..NewEvent::new(
                InvocationKind::RealTime,
                &self.trigger_id,
                self.input.clone(),
                self.content_json.clone(),
                &self.payload,
                subscribers,
            )
        }
    }
}

/// What a publish stored, or why it stored nothing.
#[derive(Debug)]
pub enum Published {
    /// Per event, its invocations.
    Created(Vec<Vec<Invocation>>),
    /// A repeat of a keyed request: per event, the invocations the first one created; and the
    /// events' ids (empty for a request answered before they were kept).
    Replayed(Vec<Vec<Invocation>>, Vec<String>),
    /// A repeat of a request answered before answers were kept as ids: the body it was given.
    ReplayedBody(String),
    /// The key was already used for a different request.
    KeyReused,
}

/// Asked, once the number of new invocations is known, for a lease to create them under (in
/// flight, handed over in memory); `None` leaves them pending for any instance to claim.
pub type Offer<'a> = dyn FnMut(usize) -> Option<Lease> + 'a;

/// A publish request: its events, and the `Idempotency-Key` it came with.
pub type Request = (Vec<Draft>, Option<IdempotencyKey>);

/// What one request of a group becomes.
enum Plan {
    Create,
    /// Its key was answered before.
    Recalled(Recalled),
    /// Its key is the same as the earlier request's at this place in the group, for the same request.
    SameAs(usize),
    /// Its key is an earlier request's in the group, for a different request.
    Reused,
}

/// Publishes several requests, keyed or not, in the caller's write transaction: their keys are
/// recalled with one read, the new events stored with one insert per table, the new keys
/// remembered with one insert. A repeated key is answered from what it created the first time
/// (within the group too). Also returns the invocations created under the offered lease, with
/// their payload, for the caller to hand to its dispatcher.
pub fn publish_group(
    conn: &mut AnyConnection,
    requests: &[Request],
    now: NaiveDateTime,
    offer: &mut Offer<'_>,
    subscribers: &Subscribers,
) -> Result<(Vec<Published>, Vec<Claimed>), StoreError> {
    let keys: Vec<&IdempotencyKey> = requests.iter().filter_map(|(_, key)| key.as_ref()).collect();
    let mut recalled = idempotency::recall_all(conn, &keys, now)?.into_iter();
    let mut first_of: HashMap<&str, (usize, &str)> = HashMap::new();
    let mut plans = Vec::with_capacity(requests.len());
    for (at, (_, key)) in requests.iter().enumerate() {
        let Some(key) = key else {
            plans.push(Plan::Create);
            continue;
        };
        match recalled.next() {
            Some(Recalled::Unknown) | None => {}
            Some(known) => {
                plans.push(Plan::Recalled(known));
                continue;
            }
        }
        plans.push(match first_of.get(key.key.as_str()) {
            Some(&(first, hash)) if hash == key.request_hash => Plan::SameAs(first),
            Some(_) => Plan::Reused,
            None => {
                first_of.insert(&key.key, (at, &key.request_hash));
                Plan::Create
            }
        });
    }
    let drafts: Vec<&Draft> = requests
        .iter()
        .zip(&plans)
        .filter(|(_, plan)| matches!(plan, Plan::Create))
        .flat_map(|((drafts, _), _)| drafts)
        .collect();
    let (per_event, leased) = if drafts.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        create(conn, &drafts, now, offer, subscribers)?
    };
    let mut per_event = per_event.into_iter();
    let mut created: Vec<Option<Vec<Vec<Invocation>>>> = Vec::with_capacity(requests.len());
    let mut remembered = Vec::new();
    for ((drafts, key), plan) in requests.iter().zip(&plans) {
        if !matches!(plan, Plan::Create) {
            created.push(None);
            continue;
        }
        let lists: Vec<Vec<Invocation>> = per_event.by_ref().take(drafts.len()).collect();
        if let Some(key) = key {
            let answered = Answered {
                events: lists.iter().map(|l| l.iter().map(|i| i.id.to_string()).collect()).collect(),
                event_ids: drafts.iter().map(|d| d.event_id.clone()).collect(),
            };
            remembered.push((key, answered));
        }
        created.push(Some(lists));
    }
    idempotency::remember_all(conn, &remembered, now)?;
    let event_ids = |at: usize| requests[at].0.iter().map(|d| d.event_id.clone()).collect();
    let mut out = Vec::with_capacity(requests.len());
    for (at, plan) in plans.into_iter().enumerate() {
        out.push(match plan {
            Plan::Create => Published::Created(created[at].take().unwrap_or_default()),
            Plan::SameAs(first) => Published::Replayed(
                out.get(first)
                    .and_then(|p| match p {
                        Published::Created(lists) => Some(lists.clone()),
                        _ => None,
                    })
                    .unwrap_or_default(),
                event_ids(first),
            ),
            Plan::Reused | Plan::Recalled(Recalled::Different) => Published::KeyReused,
            Plan::Recalled(Recalled::SameBody(body)) => Published::ReplayedBody(body),
            Plan::Recalled(Recalled::Same(answered)) => {
                Published::Replayed(read_back(conn, &answered)?, answered.event_ids)
            }
            Plan::Recalled(Recalled::Unknown) => unreachable!("unknown keys are created"),
        });
    }
    Ok((out, leased))
}

/// Per event, the invocations created; and those created under the offered lease, with their
/// payload.
pub type Stored = (Vec<Vec<Invocation>>, Vec<Claimed>);

/// Per request, per event, the invocations created; and those created under the offered lease.
pub type Together = (Vec<Vec<Vec<Invocation>>>, Vec<Claimed>);

/// Publishes several unkeyed requests with one insert per table for all of them (on PostgreSQL
/// one statement for both tables). Atomic by itself: it reads the subscribers, then writes once.
pub fn publish_together(
    conn: &mut AnyConnection,
    requests: &[&[Draft]],
    now: NaiveDateTime,
    offer: &mut Offer<'_>,
    subscribers: &Subscribers,
) -> Result<Together, StoreError> {
    let drafts: Vec<&Draft> = requests.iter().copied().flatten().collect();
    let (mut per_event, leased) = create(conn, &drafts, now, offer, subscribers)?;
    let mut out = Vec::with_capacity(requests.len());
    for request in requests.iter().rev() {
        out.push(per_event.split_off(per_event.len() - request.len()));
    }
    out.reverse();
    Ok((out, leased))
}

/// Fans `drafts` out to their triggers' subscribers (as kept in `subscribers` while current)
/// and stores them, atomically.
fn create(
    conn: &mut AnyConnection,
    drafts: &[&Draft],
    now: NaiveDateTime,
    offer: &mut Offer<'_>,
    subscribers: &Subscribers,
) -> Result<Stored, StoreError> {
    let triggers: Vec<&TriggerId> = drafts.iter().map(|d| &d.trigger_id).collect();
    // The last try reads the subscribers and writes without checking that they are current, as
    // a publish in one transaction does on PostgreSQL.
    for checked in [true, true, false] {
        let read = subscribers.of(conn, &triggers)?;
        let new_events: Vec<NewEvent> =
            drafts.iter().map(|draft| draft.event_for(&read.by_trigger[draft.trigger_id.as_str()])).collect();
        let live = new_events.iter().flat_map(|e| &e.subscriptions).filter(|r| r.order_key.is_none()).count();
        let lease = if live > 0 { offer(live) } else { None };
        let revision = checked.then_some(read.revision);
        if let Some(stored) = store_events(conn, &new_events, now, lease.as_ref(), revision)? {
            return Ok(stored);
        }
        subscribers.forget();
    }
    Err(StoreError::Corrupt("the subscribers kept changing under a publish".into()))
}

/// Publishes the events of chained deliveries in the caller's transaction, their invocations
/// pending for any instance to claim.
pub fn publish_chained(
    conn: &mut AnyConnection,
    drafts: &[Draft],
    now: NaiveDateTime,
) -> Result<(), StoreError> {
    let drafts: Vec<&Draft> = drafts.iter().collect();
    create(conn, &drafts, now, &mut |_| None, &Subscribers::default()).map(|_| ())
}

/// The invocations a keyed request created, per event, in the order first answered.
fn read_back(conn: &mut AnyConnection, answered: &Answered) -> Result<Vec<Vec<Invocation>>, StoreError> {
    let ids: Vec<&str> = answered.events.iter().flatten().map(String::as_str).collect();
    let mut found: std::collections::HashMap<String, Invocation> =
        super::invocations::by_ids(conn, &ids)?.into_iter().map(|i| (i.id.to_string(), i)).collect();
    Ok(answered.events.iter().map(|list| list.iter().filter_map(|id| found.remove(id)).collect()).collect())
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
    depth: i32,
    traceparent: String,
}

/// Stores events and their invocations, atomically (one statement on PostgreSQL, else in the
/// caller's transaction): live ones pending, or in flight under `lease`; held ones as dead
/// letters. Returns, per event, its live invocations, and
/// those created under the lease with their payload.
pub fn insert_events(
    conn: &mut AnyConnection,
    new_events: &[NewEvent],
    now: NaiveDateTime,
    lease: Option<&Lease>,
) -> Result<Stored, StoreError> {
    store_events(conn, new_events, now, lease, None)?
        .ok_or_else(|| StoreError::Corrupt("a publish without a check was refused".into()))
}

/// What [`insert_events`] does; with a `revision` (PostgreSQL), nothing and `None` if the count
/// of subscription changes has moved from it (the caller's transaction makes SQLite's subscribers
/// current).
fn store_events(
    conn: &mut AnyConnection,
    new_events: &[NewEvent],
    now: NaiveDateTime,
    lease: Option<&Lease>,
    revision: Option<i64>,
) -> Result<Option<Stored>, StoreError> {
    let mut event_rows = Vec::with_capacity(new_events.len());
    let mut live_rows = Vec::new();
    let mut held_rows = Vec::new();
    let mut per_event = Vec::with_capacity(new_events.len());
    let mut held_per_event = Vec::with_capacity(new_events.len());
    for event in new_events {
        let event_id = event.id.clone();
        let first = live_rows.len();
        for recipient in &event.subscriptions {
            live_rows.push(InvocationRow::new(&event_id, recipient, event, now, lease, None));
        }
        per_event.push(first..live_rows.len());
        let held_first = held_rows.len();
        for (subscription, reason) in &event.held {
            let recipient = Recipient { subscription: subscription.clone(), order_key: None };
            held_rows.push(InvocationRow::new(&event_id, &recipient, event, now, None, Some(reason.clone())));
        }
        held_per_event.push(held_first..held_rows.len());
        event_rows.push(EventRow {
            id: event_id,
            trigger_id: event.trigger_id.as_str(),
            kind: event.kind.as_str(),
            input: &event.input,
            content_json: &event.content_json,
            payload: &event.payload,
            created: now,
            depth: event.depth,
            traceparent: event.trace.to_string(),
        });
    }
    match conn {
        AnyConnection::Postgresql(_) => {
            let rows: Vec<&InvocationRow> = (per_event.iter().zip(&held_per_event))
                .flat_map(|(live, held)| live_rows[live.clone()].iter().chain(&held_rows[held.clone()]))
                .collect();
            match insert_pg(conn, now, revision, &event_rows, &rows) {
                Err(StoreError::Moved) => return Ok(None),
                stored => stored?,
            }
        }
        AnyConnection::Sqlite(_) => {
            insert_rows!(conn, events::table, event_rows);
            insert_rows!(conn, invocations::table, live_rows);
            insert_rows!(conn, invocations::table, held_rows);
        }
    }
    if live_rows.iter().any(|r| r.lease_owner.is_none()) {
        // Work no instance holds: wake every instance's claim loop, not only this one's.
        revisions::notify(conn, Signal::Work)?;
    }
    let mut created: Vec<Invocation> =
        live_rows.into_iter().map(InvocationRow::into_domain).collect::<Result<_, _>>()?;
    let mut leased = Vec::new();
    if lease.is_some() {
        for (event, range) in new_events.iter().zip(&per_event) {
            let payload: Arc<str> = Arc::from(event.payload.as_str());
            for invocation in created[range.clone()].iter().filter(|i| i.state == InvocationState::InFlight) {
                leased.push(Claimed {
                    invocation: invocation.clone(),
                    payload: payload.clone(),
                    trace: Some(event.trace),
                });
            }
        }
    }
    let mut out = Vec::with_capacity(per_event.len());
    for range in per_event.into_iter().rev() {
        out.push(created.split_off(range.start));
    }
    out.reverse();
    Ok(Some((out, leased)))
}

/// Invocations per PostgreSQL statement at most: a statement is one message, and the client
/// library keeps the largest message it ever sent in memory, for each pooled connection. With
/// whole groups in one statement (up to about 10,000 invocations), publishing a million pending
/// invocations peaked at 153 MiB; with 1,000 at 136 MiB, with 500 at 129–132 MiB.
const PG_ROWS: usize = 500;

/// Inserts `events` and their invocations `rows` (in the order of their events) on PostgreSQL:
/// one statement when they are few, else statements of whole events in one transaction.
/// `StoreError::Moved` if the count of subscription changes moved from `revision`.
fn insert_pg(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    revision: Option<i64>,
    events: &[EventRow],
    rows: &[&InvocationRow],
) -> Result<(), StoreError> {
    let mut chunks: Vec<(&[EventRow], &[&InvocationRow])> = Vec::new();
    let (mut first_event, mut first_row, mut row) = (0, 0, 0);
    for (i, event) in events.iter().enumerate() {
        let end = row + rows[row..].iter().take_while(|r| r.event_id == event.id).count();
        if end - first_row > PG_ROWS && i > first_event {
            chunks.push((&events[first_event..i], &rows[first_row..row]));
            (first_event, first_row) = (i, row);
        }
        row = end;
    }
    chunks.push((&events[first_event..], &rows[first_row..]));
    let write = |conn: &mut AnyConnection, (events, rows): (&[EventRow], &[&InvocationRow])| {
        let AnyConnection::Postgresql(pg) = conn else { unreachable!("PostgreSQL only") };
        let mut columns = EventColumns::default();
        for e in events {
            columns.id.push(&e.id);
            columns.trigger_id.push(e.trigger_id);
            columns.kind.push(e.kind);
            columns.input.push(e.input);
            columns.content_json.push(e.content_json);
            columns.payload.push(e.payload);
            columns.depth.push(e.depth);
            columns.traceparent.push(&e.traceparent);
        }
        if pg_batch::insert_new(pg, now, revision, &columns, rows)? { Ok(()) } else { Err(StoreError::Moved) }
    };
    if chunks.len() == 1 {
        return write(conn, chunks[0]);
    }
    write_transaction(conn, |conn| chunks.into_iter().try_for_each(|chunk| write(conn, chunk)))
}

/// Test invocations: one event of kind TEST to the given subscriptions, in one transaction.
pub fn insert_test_event(
    conn: &mut AnyConnection,
    event: &NewEvent,
    now: NaiveDateTime,
) -> Result<Vec<Invocation>, StoreError> {
    write_transaction(conn, |c| {
        let (mut lists, _) = insert_events(c, std::slice::from_ref(event), now, None)?;
        Ok(lists.remove(0))
    })
}
