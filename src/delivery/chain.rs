//! A chained subscription's delivery: no HTTP request, but the events it publishes on its
//! target trigger, checked against that trigger here and stored by the recorder in the
//! transaction that records the delivery ([`crate::store::outcomes::Effect::Publish`]).

use serde_json::{Value, json};

use super::sender::Target;
use crate::domain::chain;
use crate::domain::invocation::{InvocationKind, Next};
use crate::domain::schema::{Schemas, Side};
use crate::domain::subscription::ChainTarget;
use crate::domain::trace::TraceParent;
use crate::store::events::Draft;
use crate::store::outcomes::Effect;
use crate::store::queue::Claimed;

/// The most event ids a chained delivery's response lists (it counts them all).
const LISTED_IDS: usize = 100;

/// What a chained delivery comes to.
pub struct Chained {
    pub next: Next,
    pub effect: Effect,
    /// What it published, as JSON, kept as the attempt's response.
    pub response: Option<String>,
    pub error: Option<String>,
}

impl Chained {
    /// Nothing can be published: the settings or the payload do not fit, which no retry mends.
    fn failed(error: String) -> Self {
        Self { next: Next::Dead, effect: Effect::None, response: None, error: Some(error) }
    }
}

/// The events `claimed` publishes through `chain`: one per input that the chain's `inputPath`
/// picks from the payload, each checked against the target trigger's input schema. A test
/// invocation checks the same and publishes nothing.
pub fn deliver(
    schemas: &Schemas,
    claimed: &Claimed,
    target: &Target,
    chain: &ChainTarget,
    trace: TraceParent,
) -> Chained {
    let invocation = &claimed.invocation;
    if target.request_response.is_some() {
        return Chained::failed(format!(
            "trigger '{}' is REQUEST_RESPONSE, and a chained subscription gives no answer",
            invocation.trigger_id
        ));
    }
    let Some(trigger) = target.publishes_on.as_ref() else {
        return Chained::failed(format!(
            "trigger '{}', which it publishes on, no longer exists",
            chain.trigger_id
        ));
    };
    if !trigger.enabled {
        return Chained::failed(format!("trigger '{}', which it publishes on, is disabled", trigger.id));
    }
    let payload: Value = match serde_json::from_str(&claimed.payload) {
        Ok(payload) => payload,
        Err(e) => return Chained::failed(format!("the payload is not JSON: {e}")),
    };
    let inputs = match chain::inputs(&payload, chain.input_path.as_ref()) {
        Ok(inputs) => inputs,
        Err(reason) => return Chained::failed(reason),
    };
    let content = json!({"chainedFrom": {"invocationId": invocation.id.as_str(), "triggerId": invocation.trigger_id.as_str()}});
    let mut drafts = Vec::with_capacity(inputs.len());
    for (at, input) in inputs.into_iter().enumerate() {
        let value = Value::Object(input);
        let problems = match schemas.problems(trigger, Side::Input, &value) {
            Ok(problems) => problems,
            Err(e) => return Chained::failed(e),
        };
        if let Some(first) = problems.first() {
            return Chained::failed(format!(
                "item {at} does not match the input schema of '{}': {first}",
                trigger.id
            ));
        }
        let Value::Object(input) = &value else { unreachable!("inputs are objects") };
        // The published events continue the trace, from this delivery's span.
        drafts.push(Draft { trace, ..Draft::new(trigger, input, &content) });
    }
    let event_ids: Vec<&str> = drafts.iter().take(LISTED_IDS).map(|d| d.event_id.as_str()).collect();
    if invocation.kind == InvocationKind::Test {
        let response = json!({"triggerId": trigger.id.as_str(), "test": true, "wouldPublish": drafts.len()});
        return Chained {
            next: Next::Delivered,
            effect: Effect::None,
            response: Some(response.to_string()),
            error: None,
        };
    }
    let response =
        json!({"triggerId": trigger.id.as_str(), "published": drafts.len(), "eventIds": event_ids})
            .to_string();
    Chained { next: Next::Delivered, effect: Effect::Publish(drafts), response: Some(response), error: None }
}
