//! Operational events: hookgate publishes on its own triggers (`hookgate:subscription-disabled`,
//! `hookgate:invocation-dead`, `hookgate:source-failing`) in the transaction of what they tell
//! of, to their subscribers as to any trigger's, except the subscription an event is about: a
//! failing operator's endpoint never feeds itself.

use chrono::NaiveDateTime;
use serde_json::{Map, Value, json};

use super::events::{self, Draft};
use super::{AnyConnection, StoreError, subscriptions, triggers};
use crate::domain::ids::TriggerId;

/// Publishes an event with `input` on the operational trigger `trigger`, to its subscribers
/// but the subscription `about`. Nothing is stored when the trigger was deleted or disabled,
/// or no subscription takes the event. Returns whether an event was stored.
pub fn publish(
    conn: &mut AnyConnection,
    trigger: &str,
    input: Value,
    about: Option<&str>,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    let id: TriggerId =
        trigger.parse().map_err(|e| StoreError::Corrupt(format!("trigger '{trigger}': {e}")))?;
    let trigger = match triggers::get(conn, &id) {
        Ok(trigger) if trigger.enabled => trigger,
        Ok(_) | Err(StoreError::NotFound) => return Ok(false),
        Err(e) => return Err(e),
    };
    let subscribers: Vec<_> = subscriptions::all_for_trigger(conn, &id)?
        .into_iter()
        .filter(|s| about != Some(s.id.as_str()))
        .collect();
    if subscribers.is_empty() {
        return Ok(false);
    }
    let Value::Object(input) = input else { return Err(StoreError::Corrupt("an operational input".into())) };
    let draft = Draft::new(&trigger, &input, &json!({}));
    let event = draft.event_for(&subscribers);
    if event.subscriptions.is_empty() && event.held.is_empty() {
        return Ok(false);
    }
    events::insert_events(conn, &[event], now, None)?;
    Ok(true)
}

/// Whether any subscription listens on the operational trigger `trigger`.
pub fn listened(conn: &mut AnyConnection, trigger: &str) -> Result<bool, StoreError> {
    let id: TriggerId =
        trigger.parse().map_err(|e| StoreError::Corrupt(format!("trigger '{trigger}': {e}")))?;
    Ok(subscriptions::count_for_trigger(conn, &id)? > 0)
}

/// A timestamp as operational events carry it.
pub fn time(at: NaiveDateTime) -> Value {
    Value::String(crate::domain::time::iso(at))
}

/// An object from pairs, leaving out the null ones.
pub fn object(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Value {
    let map: Map<String, Value> =
        pairs.into_iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.to_owned(), v)).collect();
    Value::Object(map)
}

/// The `hookgate:invocation-dead` inputs for the outcomes that leave their invocation dead
/// (for a caller that found someone listening), read before they are recorded: only those `owner` still holds, and none of an operational
/// trigger's invocations (an operator's endpoint that fails must not feed itself events).
pub(super) fn deaths(
    conn: &mut AnyConnection,
    owner: &str,
    outcomes: &[super::outcomes::Outcome],
    now: NaiveDateTime,
) -> Result<Vec<(String, Value)>, StoreError> {
    use diesel::prelude::*;

    use super::schema::invocations;
    let dead: Vec<&super::outcomes::Outcome> =
        outcomes.iter().filter(|o| o.next == crate::domain::invocation::Next::Dead).collect();
    let ids: Vec<&str> = dead.iter().map(|o| o.invocation.as_str()).collect();
    let query = invocations::table
        .filter(invocations::id.eq_any(&ids))
        .filter(invocations::state.eq("IN_FLIGHT"))
        .filter(invocations::lease_owner.eq(owner))
        .filter(invocations::trigger_id.not_like("hookgate:%"))
        .select((
            invocations::id,
            invocations::subscription_id,
            invocations::trigger_id,
            invocations::event_id,
        ));
    // On PostgreSQL the rows stay locked until the outcomes are recorded: no other instance can
    // take one over in between, so only a death that is recorded is told.
    let held: Vec<(String, String, String, String)> = match conn {
        AnyConnection::Postgresql(pg) => query.for_update().load(pg)?,
        AnyConnection::Sqlite(sqlite) => query.load(sqlite)?,
    };
    let by_id: std::collections::HashMap<&str, &&super::outcomes::Outcome> =
        dead.iter().map(|o| (o.invocation.as_str(), o)).collect();
    Ok(held
        .into_iter()
        .filter_map(|(id, subscription, trigger, event)| {
            let outcome = by_id.get(id.as_str())?;
            let input = object([
                ("invocationId", id.clone().into()),
                ("subscriptionId", subscription.clone().into()),
                ("triggerId", trigger.into()),
                ("eventId", event.into()),
                ("attempts", outcome.attempt.attempt.into()),
                (
                    "lastError",
                    super::outcomes::last_error(&outcome.attempt).map_or(Value::Null, Value::String),
                ),
                ("diedAt", time(now)),
            ]);
            Some((subscription, input))
        })
        .collect())
}
