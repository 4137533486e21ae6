//! What the dispatcher delivers to: each subscription with its signing keys and, for a
//! `REQUEST_RESPONSE` trigger, that trigger; for a chained one, the trigger it publishes on. Kept in memory while no subscription or trigger has
//! changed anywhere ([`crate::store::revisions`]: at once for a change made by this instance,
//! within a quarter second for one made elsewhere), until the first rotation overlap among its
//! keys ends, and for a minute at most.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDateTime;

use super::sender::Target;
use super::signer::SigningKey;
use crate::clock::SharedClock;
use crate::domain::trigger::TriggerType;
use crate::store::revisions::Cached;
use crate::store::{Store, StoreError, subscriptions, triggers};

/// The longest a subscription is trusted from memory.
const KEEP_FOR: Duration = Duration::from_secs(60);

struct Kept {
    /// `None`: the subscription no longer exists.
    target: Option<Arc<Target>>,
    /// The counts of subscription and trigger changes when it was read.
    seen: (u64, u64),
    read: Instant,
    /// When one of its keys stops being valid (clock time).
    keys_until: Option<NaiveDateTime>,
}

pub struct Targets {
    store: Store,
    clock: SharedClock,
    kept: HashMap<String, Kept>,
}

impl Targets {
    pub fn new(store: Store, clock: SharedClock) -> Self {
        Self { store, clock, kept: HashMap::new() }
    }

    /// The target of a subscription read by [`Targets::refresh`]; `None` if it no longer exists.
    pub fn get(&self, subscription: &str) -> Option<Arc<Target>> {
        self.kept.get(subscription).and_then(|k| k.target.clone())
    }

    fn seen(&self) -> (u64, u64) {
        (self.store.seen(Cached::Subscriptions), self.store.seen(Cached::Triggers))
    }

    /// Reads those of `subscriptions` that are not kept or no longer fresh. On a failure, what
    /// is kept stays in use (deliveries without a target would fail as deleted).
    pub async fn refresh<'a>(&mut self, subscriptions: impl Iterator<Item = &'a str>) {
        let (seen, now) = (self.seen(), self.clock.now());
        let fresh = |k: &Kept| {
            k.seen == seen && k.read.elapsed() < KEEP_FOR && k.keys_until.is_none_or(|until| now < until)
        };
        let mut stale: Vec<String> = subscriptions
            .filter(|id| self.kept.get(*id).is_none_or(|k| !fresh(k)))
            .map(str::to_owned)
            .collect();
        if stale.is_empty() {
            return;
        }
        stale.sort_unstable();
        stale.dedup();
        match load(&self.store, stale, now).await {
            Ok(loaded) => {
                let read = Instant::now();
                for (id, (target, keys_until)) in loaded {
                    self.kept.insert(id, Kept { target, seen, read, keys_until });
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading subscriptions failed; using what is known"),
        }
    }
}

type Loaded = HashMap<String, (Option<Arc<Target>>, Option<NaiveDateTime>)>;

/// The targets of these subscriptions, with the end of their keys' rotation overlap; `None` for
/// those that no longer exist.
pub async fn load(store: &Store, ids: Vec<String>, now: NaiveDateTime) -> Result<Loaded, StoreError> {
    store
        .run(move |c| {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let subs = subscriptions::by_ids(c, &refs)?;
            let mut secrets = subscriptions::signing_secrets_of(c, &refs, now)?;
            let mut rr_triggers = HashMap::new();
            let mut out: Loaded = ids.iter().map(|id| (id.clone(), (None, None))).collect();
            for subscription in subs {
                let trigger_id = subscription.trigger_id.to_string();
                if !rr_triggers.contains_key(&trigger_id) {
                    let trigger = match triggers::get(c, &subscription.trigger_id) {
                        Ok(t) => (t.kind == TriggerType::RequestResponse).then_some(t),
                        Err(StoreError::NotFound) => None,
                        Err(e) => return Err(e),
                    };
                    rr_triggers.insert(trigger_id.clone(), trigger);
                }
                let secrets = secrets.remove(subscription.id.as_str()).unwrap_or_default();
                let keys_until = secrets.iter().filter_map(|(_, until)| *until).min();
                let keys = secrets.iter().filter_map(|(secret, _)| SigningKey::from_secret(secret)).collect();
                let id = subscription.id.to_string();
                let publishes_on = match subscription.spec.target.chain() {
                    None => None,
                    Some(chain) => match triggers::get(c, &chain.trigger_id) {
                        Ok(t) => Some(t),
                        Err(StoreError::NotFound) => None,
                        Err(e) => return Err(e),
                    },
                };
                let target = Target {
                    request_response: rr_triggers[&trigger_id].clone(),
                    publishes_on,
                    keys,
                    subscription,
                };
                out.insert(id, (Some(Arc::new(target)), keys_until));
            }
            Ok(out)
        })
        .await
}
