//! Events and invocations: one firing of a trigger, and its delivery to one subscription.

use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::{InvocationId, SubscriptionId, TriggerId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvocationKind {
    /// Started by the test endpoint; delivered even to disabled subscriptions.
    Test,
    /// Started by a published event.
    RealTime,
}

impl InvocationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "TEST",
            Self::RealTime => "REAL_TIME",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "TEST" => Some(Self::Test),
            "REAL_TIME" => Some(Self::RealTime),
            _ => None,
        }
    }
}

/// Where an invocation is in its life: pending (due at `next_attempt_at`) → in flight (leased by
/// a worker) → delivered, or back to pending for a retry, or dead once attempts are exhausted.
/// A `REQUEST_RESPONSE` invocation the subscriber acknowledged (ASYNC, or DYNAMIC with 202) is
/// awaiting its `complete` callback until `next_attempt_at`, its response deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InvocationState {
    Pending,
    InFlight,
    Awaiting,
    Delivered,
    Dead,
}

impl InvocationState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::InFlight => "IN_FLIGHT",
            Self::Awaiting => "AWAITING",
            Self::Delivered => "DELIVERED",
            Self::Dead => "DEAD",
        }
    }
    /// Delivered (with its output, for `REQUEST_RESPONSE`) or dead: nothing more will happen
    /// unless it is replayed.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Delivered | Self::Dead)
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PENDING" => Some(Self::Pending),
            "IN_FLIGHT" => Some(Self::InFlight),
            "AWAITING" => Some(Self::Awaiting),
            "DELIVERED" => Some(Self::Delivered),
            "DEAD" => Some(Self::Dead),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Invocation {
    pub id: InvocationId,
    pub event_id: String,
    pub subscription_id: SubscriptionId,
    pub trigger_id: TriggerId,
    pub kind: InvocationKind,
    pub state: InvocationState,
    pub attempts: i32,
    pub next_attempt_at: NaiveDateTime,
    pub secret: String,
    pub last_error: Option<String>,
    pub created: NaiveDateTime,
    pub updated: NaiveDateTime,
    pub completed: Option<NaiveDateTime>,
    /// Set by a forced replay: delivered even while the subscription is disabled.
    pub deliver_when_disabled: bool,
    /// A `REQUEST_RESPONSE` invocation's output (JSON text), once it has one.
    pub output: Option<String>,
    /// The ordered stream it belongs to within its subscription; `None` when unordered.
    pub order_key: Option<String>,
    /// Why it is dead, when it is.
    pub dead_reason: Option<DeadReason>,
}

/// Why an invocation ended dead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// Its attempts failed, with no retry left or a failure that is not retried.
    Failed,
    /// A `REQUEST_RESPONSE` invocation whose `complete` callback did not come before its deadline.
    DeadlinePassed,
    /// The subscriber's `complete` callback reported an error.
    SubscriberError,
    /// Kept as a dead letter when published, never sent (its subscription was disabled, say).
    Held,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "FAILED",
            Self::DeadlinePassed => "DEADLINE_PASSED",
            Self::SubscriberError => "SUBSCRIBER_ERROR",
            Self::Held => "HELD",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "FAILED" => Some(Self::Failed),
            "DEADLINE_PASSED" => Some(Self::DeadlinePassed),
            "SUBSCRIBER_ERROR" => Some(Self::SubscriberError),
            "HELD" => Some(Self::Held),
            _ => None,
        }
    }
}

/// The error text of an invocation whose response deadline passed.
pub const DEADLINE_PASSED: &str = "no complete callback arrived before the response deadline";

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

/// Where an attempt leaves an invocation that was in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled<'a> {
    pub state: InvocationState,
    /// When it is next due: a retry's time, an awaited response's deadline, else `now`.
    pub due: NaiveDateTime,
    pub completed: Option<NaiveDateTime>,
    pub output: Option<&'a str>,
    pub dead_reason: Option<DeadReason>,
    /// Whether the attempt counts (a deferred invocation was not attempted).
    pub attempted: bool,
    /// Whether the attempt failed (it then gets its own row; a success stays on the invocation).
    pub failed: bool,
}

impl Next {
    /// Whether the attempt failed (it then gets its own row; a success stays on the invocation).
    pub fn is_failure(&self) -> bool {
        matches!(self, Self::RetryAt(_) | Self::Dead)
    }

    /// The transition out of `IN_FLIGHT` after an attempt, at `now`.
    pub fn settle(&self, now: NaiveDateTime) -> Settled<'_> {
        let (state, due, output) = match self {
            Self::Delivered => (InvocationState::Delivered, now, None),
            Self::Answered(output) => (InvocationState::Delivered, now, Some(output.as_str())),
            Self::Awaiting(deadline) => (InvocationState::Awaiting, *deadline, None),
            Self::RetryAt(at) | Self::Deferred(at) => (InvocationState::Pending, *at, None),
            Self::Dead => (InvocationState::Dead, now, None),
        };
        Settled {
            state,
            due,
            completed: state.is_finished().then_some(now),
            output,
            dead_reason: (state == InvocationState::Dead).then_some(DeadReason::Failed),
            attempted: !matches!(self, Self::Deferred(_)),
            failed: self.is_failure(),
        }
    }
}

/// Why a `complete` callback was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteRefusal {
    /// The invocation already has its result (delivered with an output, or failed).
    AlreadyCompleted { state: InvocationState, at: Option<NaiveDateTime> },
    /// The response deadline passed (at this time); the invocation has failed.
    PastDeadline(NaiveDateTime),
}

/// What a `complete` callback at `now` does to an invocation as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completing {
    /// It takes the result (awaiting it, or still in flight: the callback came before the
    /// acknowledgement was recorded).
    Takes,
    /// Its deadline passed but it is still awaiting: it fails now, and the callback is refused.
    ExpiresFirst(NaiveDateTime),
    Refused(CompleteRefusal),
}

impl Invocation {
    /// The transition a `complete` callback asks for, decided on the invocation's state.
    pub fn completing(&self, now: NaiveDateTime) -> Completing {
        match self.state {
            InvocationState::Delivered | InvocationState::Dead => {
                Completing::Refused(if self.dead_reason == Some(DeadReason::DeadlinePassed) {
                    CompleteRefusal::PastDeadline(self.next_attempt_at)
                } else {
                    CompleteRefusal::AlreadyCompleted { state: self.state, at: self.completed }
                })
            }
            InvocationState::Awaiting if self.next_attempt_at <= now => {
                Completing::ExpiresFirst(self.next_attempt_at)
            }
            _ => Completing::Takes,
        }
    }
}

/// One HTTP request made for an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub attempt: i32,
    pub started: NaiveDateTime,
    pub duration_ms: i32,
    pub status: Option<i32>,
    pub response: Option<String>,
    pub error: Option<String>,
}

/// The body a subscriber receives: the trigger's default `params`, overridden by the input.
pub fn merge_params(params: &Map<String, Value>, input: &Map<String, Value>) -> Map<String, Value> {
    let mut payload = params.clone();
    for (k, v) in input {
        payload.insert(k.clone(), v.clone());
    }
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(s: &str) -> NaiveDateTime {
        s.parse().unwrap()
    }

    #[test]
    fn an_attempt_settles_an_invocation_by_what_it_returned() {
        let now = at("2026-12-01T10:00:00");
        let retry = Next::RetryAt(at("2026-12-01T10:01:00"));
        let retry = retry.settle(now);
        assert_eq!(
            (retry.state, retry.due, retry.completed),
            (InvocationState::Pending, at("2026-12-01T10:01:00"), None)
        );
        assert!(retry.failed && retry.attempted && retry.dead_reason.is_none());
        let dead = Next::Dead;
        let dead = dead.settle(now);
        assert_eq!(
            (dead.state, dead.completed, dead.dead_reason),
            (InvocationState::Dead, Some(now), Some(DeadReason::Failed))
        );
        let answered = Next::Answered("{}".into());
        let done = answered.settle(now);
        assert_eq!((done.state, done.output, done.failed), (InvocationState::Delivered, Some("{}"), false));
        let deferred = Next::Deferred(now);
        let deferred = deferred.settle(now);
        assert!(!deferred.attempted && !deferred.failed);
        assert_eq!(Next::Awaiting(at("2026-12-01T11:00:00")).settle(now).completed, None);
    }

    #[test]
    fn a_complete_callback_is_taken_refused_or_expires_the_invocation_first() {
        let now = at("2026-12-01T10:00:00");
        let mut inv = Invocation {
            id: "0190c0de-0000-7000-8000-000000000001".parse().unwrap(),
            event_id: "e".into(),
            subscription_id: "0190c0de-0000-7000-8000-0000000000aa".parse().unwrap(),
            trigger_id: "test:request-response".parse().unwrap(),
            kind: InvocationKind::RealTime,
            state: InvocationState::Awaiting,
            attempts: 1,
            next_attempt_at: at("2026-12-01T10:05:00"),
            secret: "s".into(),
            last_error: None,
            created: now,
            updated: now,
            completed: None,
            deliver_when_disabled: false,
            output: None,
            order_key: None,
            dead_reason: None,
        };
        assert_eq!(inv.completing(now), Completing::Takes);
        inv.state = InvocationState::InFlight;
        assert_eq!(inv.completing(now), Completing::Takes, "before the acknowledgement is recorded");
        inv.state = InvocationState::Awaiting;
        assert_eq!(
            inv.completing(at("2026-12-01T10:06:00")),
            Completing::ExpiresFirst(at("2026-12-01T10:05:00"))
        );
        inv.state = InvocationState::Dead;
        inv.dead_reason = Some(DeadReason::DeadlinePassed);
        assert_eq!(
            inv.completing(now),
            Completing::Refused(CompleteRefusal::PastDeadline(inv.next_attempt_at))
        );
        inv.dead_reason = Some(DeadReason::SubscriberError);
        inv.completed = Some(now);
        assert_eq!(
            inv.completing(now),
            Completing::Refused(CompleteRefusal::AlreadyCompleted {
                state: InvocationState::Dead,
                at: Some(now)
            })
        );
    }

    #[test]
    fn input_fields_override_default_params() {
        let params = json!({"source": "crm", "region": "eu"});
        let input = json!({"region": "us", "id": 1});
        let merged = merge_params(params.as_object().unwrap(), input.as_object().unwrap());
        assert_eq!(Value::Object(merged), json!({"source": "crm", "region": "us", "id": 1}));
    }
}
