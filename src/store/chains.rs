//! Chained triggers in the database: the checks a chained subscription passes when it is
//! written (its target exists, no cycle), and publishing what chained deliveries produced in
//! the transaction that records them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::outcomes::{Effect, Outcome};
use super::schema::{events, invocations, subscriptions, triggers};
use super::{AnyConnection, StoreError, events as publish};
use crate::domain::chain::{self, MAX_DEPTH};
use crate::domain::ids::{SubscriptionId, TriggerId};
use crate::domain::invocation::Next;
use crate::domain::subscription::SubscriptionSpec;
use crate::domain::trigger::TriggerType;

/// An advisory lock key (PostgreSQL) held while a chain is written, so that two instances
/// cannot each add half of a cycle.
const CHAIN_LOCK: i64 = 0x686f_6f6b_6368_6e73;

/// Checks a subscription on `trigger` (of `kind`) before it is stored: a chained one must be on
/// a `FIRE_AND_FORGET` trigger, publish on a trigger that exists, and close no cycle with the
/// chains of the other subscriptions (all but `replacing`). Call it in the write transaction.
pub(super) fn check(
    conn: &mut AnyConnection,
    trigger: &TriggerId,
    kind: TriggerType,
    spec: &SubscriptionSpec,
    replacing: Option<&SubscriptionId>,
) -> Result<(), StoreError> {
    let Some(target) = spec.target.chain() else { return Ok(()) };
    let invalid = |text: String| StoreError::Invalid(format!("triggerConfig.triggerId: {text}"));
    if kind == TriggerType::RequestResponse {
        return Err(StoreError::Invalid(format!(
            "type: trigger '{trigger}' is REQUEST_RESPONSE; a TRIGGER subscription gives no answer, so it \
             needs a FIRE_AND_FORGET trigger"
        )));
    }
    if let AnyConnection::Postgresql(pg) = conn {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({CHAIN_LOCK})")).execute(pg)?;
    }
    let exists: i64 = triggers::table.find(target.trigger_id.as_str()).count().get_result(conn)?;
    if exists == 0 {
        return Err(invalid(format!("'{}' does not name a trigger", target.trigger_id)));
    }
    let mut others = subscriptions::table
        .filter(subscriptions::chain_trigger_id.is_not_null())
        .select((subscriptions::trigger_id, subscriptions::chain_trigger_id.assume_not_null()))
        .into_boxed();
    if let Some(id) = replacing {
        others = others.filter(subscriptions::id.ne(id.as_str()));
    }
    let chains: Vec<(TriggerId, TriggerId)> = others
        .load::<(String, String)>(conn)?
        .into_iter()
        .filter_map(|(from, to)| Some((from.parse().ok()?, to.parse().ok()?)))
        .collect();
    if let Some(path) = chain::cycle(&chains, trigger, &target.trigger_id) {
        let path: Vec<&str> = std::iter::once(trigger).chain(&path).map(TriggerId::as_str).collect();
        return Err(invalid(format!(
            "publishing on '{}' would close a cycle: {}",
            target.trigger_id,
            path.join(" → ")
        )));
    }
    Ok(())
}

/// How many chained subscriptions publish on `trigger`: such a trigger cannot be deleted.
pub(super) fn count_targeting(conn: &mut AnyConnection, trigger: &TriggerId) -> Result<i64, StoreError> {
    Ok(subscriptions::table
        .filter(subscriptions::chain_trigger_id.eq(trigger.as_str()))
        .count()
        .get_result(conn)?)
}

/// Publishes the events of the chained deliveries among `outcomes` whose lease `owner` still
/// holds, adding their triggers to `published`, and returns the outcomes left to record. An
/// event already `MAX_DEPTH` links down a chain publishes nothing: its invocation is dead, with
/// the reason. Call it in the write transaction that records the outcomes.
pub(super) fn settle(
    conn: &mut AnyConnection,
    owner: &str,
    outcomes: &[Outcome],
    now: NaiveDateTime,
    published: &mut Vec<String>,
) -> Result<Vec<Outcome>, StoreError> {
    let mut settled = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        let Effect::Publish(drafts) = &outcome.effect else {
            settled.push(outcome.clone());
            continue;
        };
        let mut outcome = Outcome { effect: Effect::None, ..outcome.clone() };
        match held_depth(conn, owner, outcome.invocation.as_str())? {
            // The lease went to another instance: its delivery publishes, this one records nothing.
            None => continue,
            Some(depth) if depth >= MAX_DEPTH => {
                outcome.next = Next::Dead;
                outcome.attempt.response = None;
                outcome.attempt.error = Some(chain::too_deep(depth));
            }
            Some(depth) => {
                let drafts: Vec<_> =
                    drafts.iter().map(|d| publish::Draft { depth: depth + 1, ..d.clone() }).collect();
                publish::publish_chained(conn, &drafts, now)?;
                published.extend(drafts.iter().map(|d| d.trigger_id.to_string()));
            }
        }
        settled.push(outcome);
    }
    Ok(settled)
}

/// The chain depth of an invocation's event, if `owner` still holds the invocation's lease;
/// on PostgreSQL the invocation stays locked until the transaction ends, so no other instance
/// can take it meanwhile.
fn held_depth(conn: &mut AnyConnection, owner: &str, invocation: &str) -> Result<Option<i32>, StoreError> {
    let held = invocations::table
        .find(invocation)
        .filter(invocations::state.eq("IN_FLIGHT"))
        .filter(invocations::lease_owner.eq(owner))
        .select(invocations::event_id);
    let event: Option<String> = match conn {
        AnyConnection::Postgresql(pg) => held.for_update().first(pg).optional()?,
        AnyConnection::Sqlite(sqlite) => held.first(sqlite).optional()?,
    };
    let Some(event) = event else { return Ok(None) };
    Ok(Some(events::table.find(event).select(events::depth).first(conn)?))
}
