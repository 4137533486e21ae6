//! Events: one firing of a trigger, and the rule that decides which subscriptions get it.

use serde_json::Value;

use super::ids::{SubscriptionId, TriggerId};
use super::invocation::InvocationKind;
use super::subscription::Subscription;

/// May an invocation of `kind` go to `subscription` now?
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligibility {
    /// Deliver it.
    Live,
    /// Keep it as a dead letter with this reason, to replay once the subscription is enabled
    /// again (a subscriber that answered 410 Gone).
    Held(String),
    /// The subscription was switched off by an operator: nothing is sent or kept.
    Skipped,
}

impl Eligibility {
    /// Enabled subscriptions get everything; test invocations and forced replays go to disabled
    /// ones too; a subscription a 410 switched off keeps real-time events as dead letters.
    pub fn of(subscription: &Subscription, kind: InvocationKind, forced: bool) -> Self {
        if subscription.spec.enabled || kind == InvocationKind::Test || forced {
            return Self::Live;
        }
        match &subscription.disabled_reason {
            Some(reason) => Self::Held(reason.clone()),
            None => Self::Skipped,
        }
    }

    /// Why an invocation that is not live fails when it comes up for delivery.
    pub fn refusal(&self) -> Option<String> {
        match self {
            Self::Live => None,
            Self::Held(reason) => Some(reason.clone()),
            Self::Skipped => Some("the subscription is disabled".into()),
        }
    }
}

/// A fresh event id.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A subscription an event goes to, and the ordered stream it joins there (`None`: unordered).
#[derive(Debug, Clone)]
pub struct Recipient {
    pub subscription: SubscriptionId,
    pub order_key: Option<String>,
}

/// An event to store, with the subscriptions it goes to.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// A UUID v7, so events sort by creation.
    pub id: String,
    pub trigger_id: TriggerId,
    pub kind: InvocationKind,
    pub input: String,
    pub content_json: String,
    /// The exact bytes subscribers receive.
    pub payload: String,
    pub subscriptions: Vec<Recipient>,
    /// Subscriptions that keep the event as a dead letter, with the reason.
    pub held: Vec<(SubscriptionId, String)>,
    /// How many chained deliveries led to it: 0 unless a chained trigger published it.
    pub depth: i32,
    /// The trace it belongs to ([`crate::domain::trace`]).
    pub trace: super::trace::TraceParent,
}

impl NewEvent {
    /// An event of `kind` for the `subscribers` whose filter matches `payload` and who may
    /// receive it ([`Eligibility::of`]).
    pub fn new(
        kind: InvocationKind,
        trigger_id: &TriggerId,
        input: String,
        content_json: String,
        payload: &Value,
        subscribers: &[Subscription],
    ) -> Self {
        let mut event = Self {
            id: new_event_id(),
            trigger_id: trigger_id.clone(),
            kind,
            input,
            content_json,
            payload: payload.to_string(),
            subscriptions: Vec::new(),
            held: Vec::new(),
            depth: 0,
            trace: super::trace::TraceParent::start(),
        };
        for subscription in subscribers {
            if subscription.spec.filter.as_ref().is_some_and(|f| !f.matches(payload)) {
                continue;
            }
            match Eligibility::of(subscription, kind, false) {
                Eligibility::Live => event.subscriptions.push(Recipient {
                    subscription: subscription.id.clone(),
                    order_key: subscription.spec.ordering.stream_of(payload),
                }),
                Eligibility::Held(reason) => {
                    event.held.push((subscription.id.clone(), format!("not sent: {reason}")));
                }
                Eligibility::Skipped => {}
            }
        }
        event
    }
}
