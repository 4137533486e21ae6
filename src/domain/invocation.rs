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

    #[test]
    fn input_fields_override_default_params() {
        let params = json!({"source": "crm", "region": "eu"});
        let input = json!({"region": "us", "id": 1});
        let merged = merge_params(params.as_object().unwrap(), input.as_object().unwrap());
        assert_eq!(Value::Object(merged), json!({"source": "crm", "region": "us", "id": 1}));
    }
}
