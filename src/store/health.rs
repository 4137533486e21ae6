//! Subscription health: a row per subscription whose deliveries have failed since its last
//! success (when the first of those failures started, how many, the last error), written with
//! the outcomes that tell of it and removed by the next success. A sweep switches off the
//! subscriptions that have failed like this for too long ([`sweep`]), as a 410 Gone does
//! ([`disable`]).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::upsert::excluded;

use super::outcomes::Outcome;
use super::revisions::{self, Cached};
use super::schema::{self, subscription_health};
use super::{AnyConnection, StoreError, audit, operational, subscriptions, write_transaction};
use crate::domain::catalog;
use crate::domain::ids::SubscriptionId;
use crate::domain::time::iso;

/// What a batch of outcomes says of their subscriptions' health.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Changes<'a> {
    /// Subscriptions with a success in the batch: healthy again.
    pub up: Vec<&'a str>,
    /// Subscriptions with only failures in it.
    pub down: Vec<Failing<'a>>,
}

#[derive(Debug, PartialEq, Eq)]
pub(super) struct Failing<'a> {
    pub subscription: &'a str,
    /// When the first failed attempt of the batch started.
    pub since: NaiveDateTime,
    pub failures: i32,
    pub last_error: Option<String>,
}

impl<'a> Changes<'a> {
    pub(super) fn of(outcomes: &'a [Outcome]) -> Self {
        let mut up: Vec<&str> = Vec::new();
        let mut down: HashMap<&str, Failing> = HashMap::new();
        for outcome in outcomes {
            let Some(subscription) = outcome.subscription.as_ref().map(SubscriptionId::as_str) else {
                continue;
            };
            if !outcome.next.is_failure() {
                up.push(subscription);
                continue;
            }
            let error = super::outcomes::last_error(&outcome.attempt);
            let failing = down.entry(subscription).or_insert(Failing {
                subscription,
                since: outcome.attempt.started,
                failures: 0,
                last_error: None,
            });
            failing.since = failing.since.min(outcome.attempt.started);
            failing.failures += 1;
            failing.last_error = error.or(failing.last_error.take());
        }
        up.sort_unstable();
        up.dedup();
        let mut down: Vec<Failing> =
            down.into_values().filter(|f| up.binary_search(&f.subscription).is_err()).collect();
        down.sort_by(|a, b| a.subscription.cmp(b.subscription));
        Self { up, down }
    }
}

/// Writes `changes` (SQLite; PostgreSQL writes them in its outcome statement).
pub(super) fn write_sqlite(conn: &mut diesel::SqliteConnection, changes: &Changes) -> Result<(), StoreError> {
    if !changes.up.is_empty() {
        diesel::delete(
            subscription_health::table.filter(subscription_health::subscription_id.eq_any(&changes.up)),
        )
        .execute(conn)?;
    }
    for f in &changes.down {
        diesel::insert_into(subscription_health::table)
            .values((
                subscription_health::subscription_id.eq(f.subscription),
                subscription_health::failing_since.eq(f.since),
                subscription_health::failures.eq(f.failures),
                subscription_health::last_error.eq(f.last_error.as_deref()),
            ))
            .on_conflict(subscription_health::subscription_id)
            .do_update()
            .set((
                subscription_health::failures
                    .eq(subscription_health::failures + excluded(subscription_health::failures)),
                subscription_health::last_error.eq(excluded(subscription_health::last_error)),
            ))
            .execute(conn)?;
    }
    Ok(())
}

/// Forgets a subscription's failures (it was switched off, or on again).
pub(super) fn forget(conn: &mut AnyConnection, id: &SubscriptionId) -> Result<(), StoreError> {
    diesel::delete(subscription_health::table.find(id.as_str())).execute(conn)?;
    Ok(())
}

/// Why hookgate switches a subscription off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disabling {
    pub reason: String,
    /// Since when every delivery failed, and how many did (auto-disable).
    pub failing: Option<(NaiveDateTime, i32)>,
}

/// Switches a subscription off, recording why (a subscriber answered 410 Gone, or every
/// delivery failed for too long); its real-time events are held as dead letters from now on.
/// When it was on, the change is audited (by `hookgate`) and published on
/// `hookgate:subscription-disabled`. Returns whether it was on.
pub fn disable(
    conn: &mut AnyConnection,
    id: &SubscriptionId,
    why: &Disabling,
    now: NaiveDateTime,
) -> Result<bool, StoreError> {
    write_transaction(conn, |conn| {
        subscriptions::lock(conn, id)?;
        let current = match subscriptions::get(conn, id) {
            Ok(current) => current,
            Err(StoreError::NotFound) => return Ok(false),
            Err(e) => return Err(e),
        };
        diesel::update(schema::subscriptions::table.find(id.as_str()))
            .set((
                schema::subscriptions::enabled.eq(false),
                schema::subscriptions::disabled_reason.eq(&why.reason),
                schema::subscriptions::updated.eq(now),
            ))
            .execute(conn)?;
        revisions::changed(conn, Cached::Subscriptions)?;
        if !current.spec.enabled {
            return Ok(false);
        }
        forget(conn, id)?;
        let entry = audit::Entry {
            actor: "hookgate".into(),
            action: "subscription.disable",
            resource_type: "subscription",
            resource_id: id.to_string(),
            before: Some(serde_json::json!({"enabled": true})),
            after: Some(serde_json::json!({"enabled": false, "disabledReason": why.reason})),
        };
        audit::record(conn, now, &entry)?;
        let input = operational::object([
            ("subscriptionId", id.to_string().into()),
            ("subscriptionName", current.spec.name.clone().into()),
            ("triggerId", current.trigger_id.to_string().into()),
            ("reason", why.reason.clone().into()),
            ("disabledAt", operational::time(now)),
            (
                "failingSince",
                why.failing.map_or(serde_json::Value::Null, |(since, _)| operational::time(since)),
            ),
            ("failures", why.failing.map_or(serde_json::Value::Null, |(_, n)| n.into())),
        ]);
        operational::publish(conn, catalog::SUBSCRIPTION_DISABLED, input, Some(id.as_str()), now)?;
        Ok(true)
    })
}

/// A subscription's failing streak, as the sweep reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streak {
    pub subscription: SubscriptionId,
    pub since: NaiveDateTime,
    pub failures: i32,
    pub last_error: Option<String>,
}

impl Streak {
    fn disabling(&self, after: &str) -> Disabling {
        let last = self.last_error.as_deref().unwrap_or("no error text");
        Disabling {
            reason: format!(
                "every delivery failed for {after}: {} failures since {}; the last: {last}",
                self.failures,
                iso(self.since)
            ),
            failing: Some((self.since, self.failures)),
        }
    }
}

/// Switches off every enabled subscription whose deliveries have all failed since `before` or
/// earlier, at least `min_failures` times (`after` names that span in the reason), each in a
/// transaction of its own; forgets the rows of subscriptions that no longer exist. Returns the
/// streaks of the subscriptions switched off.
pub fn sweep(
    conn: &mut AnyConnection,
    now: NaiveDateTime,
    before: NaiveDateTime,
    min_failures: i32,
    after: &str,
) -> Result<Vec<Streak>, StoreError> {
    let gone = schema::subscriptions::table.select(schema::subscriptions::id);
    diesel::delete(subscription_health::table.filter(subscription_health::subscription_id.ne_all(gone)))
        .execute(conn)?;
    let rows: Vec<(String, NaiveDateTime, i32, Option<String>)> = subscription_health::table
        .inner_join(schema::subscriptions::table)
        .filter(schema::subscriptions::enabled.eq(true))
        .filter(subscription_health::failing_since.le(before))
        .filter(subscription_health::failures.ge(min_failures))
        .select((
            subscription_health::subscription_id,
            subscription_health::failing_since,
            subscription_health::failures,
            subscription_health::last_error,
        ))
        .load(conn)?;
    let mut disabled = Vec::new();
    for (id, since, failures, last_error) in rows {
        let subscription: SubscriptionId =
            id.parse().map_err(|e| StoreError::Corrupt(format!("subscription id '{id}': {e}")))?;
        let streak = Streak { subscription, since, failures, last_error };
        if disable(conn, &streak.subscription, &streak.disabling(after), now)? {
            disabled.push(streak);
        }
    }
    Ok(disabled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::invocation::{Attempt, Next};
    use crate::store::outcomes::Effect;

    fn outcome(sub: Option<&str>, next: Next, started: i64, error: Option<&str>) -> Outcome {
        Outcome {
            invocation: uuid::Uuid::now_v7().to_string().parse().unwrap(),
            attempt: Attempt {
                attempt: 1,
                started: chrono::DateTime::from_timestamp(started, 0).unwrap().naive_utc(),
                duration_ms: 1,
                status: None,
                response: None,
                error: error.map(str::to_owned),
            },
            next,
            effect: Effect::None,
            refused: false,
            subscription: sub.map(|s| s.parse().unwrap()),
        }
    }

    #[test]
    fn a_success_in_the_batch_makes_its_subscription_healthy_and_failures_add_up() {
        let (a, b) = ("0f4a6c1e-5b1d-4c1a-9a57-3c8f2d6b7e10", "1f4a6c1e-5b1d-4c1a-9a57-3c8f2d6b7e10");
        let retry = Next::RetryAt(chrono::DateTime::from_timestamp(100, 0).unwrap().naive_utc());
        let outcomes = [
            outcome(Some(a), retry.clone(), 20, Some("refused")),
            outcome(Some(a), Next::Delivered, 30, None),
            outcome(Some(b), retry, 12, Some("first")),
            outcome(Some(b), Next::Dead, 10, Some("second")),
            outcome(None, Next::Dead, 5, Some("not tried")),
        ];
        let changes = Changes::of(&outcomes);
        assert_eq!(changes.up, [a]);
        assert_eq!(changes.down.len(), 1);
        let failing = &changes.down[0];
        assert_eq!((failing.subscription, failing.failures), (b, 2));
        assert_eq!(failing.last_error.as_deref(), Some("second"));
        assert_eq!(failing.since, chrono::DateTime::from_timestamp(10, 0).unwrap().naive_utc());
    }
}
