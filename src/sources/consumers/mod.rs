//! Broker consumers: one per enabled broker source (`REDIS_STREAM`, `NATS`) on every instance,
//! all sharing the source's consumer group or durable consumer, so each message goes to one of
//! them. A message is acknowledged only once its event is committed (published under the key
//! `source:{id}:{message id}`, so a message delivered again after a crash fires nothing new). A
//! message that cannot become an event is a rejection and is acknowledged: never an endless
//! redelivery. Messages a consumer took and did not acknowledge (its instance died) are taken
//! over once idle for [`CLAIM_IDLE`]. A broker that is down is retried with backoff and shown in
//! the source's `status.lastError`.

mod amqp;
mod nats;
mod redis_stream;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use super::Tally;
use crate::clock::SharedClock;
use crate::delivery::{Publisher, Shutdown};
use crate::domain::ids::{SourceId, TriggerId};
use crate::domain::schema::Schemas;
use crate::domain::source::{RejectReason, Rejection, Source, SourceType, schema_rejection};
use crate::domain::trigger::Trigger;
use crate::store::events::{Draft, Published};
use crate::store::idempotency::IdempotencyKey;
use crate::store::revisions::Cached;
use crate::store::{Store, sources, triggers};

/// How long a message may stay unacknowledged before another consumer takes it over.
pub const CLAIM_IDLE: Duration = Duration::from_secs(5);
/// How often a consumer looks for such messages (where the broker does not redeliver by itself).
const CLAIM_EVERY: Duration = Duration::from_secs(2);
/// The most messages read at once.
const BATCH: usize = 200;
/// How long one read waits for messages.
const WAIT: Duration = Duration::from_secs(1);
/// The longest wait before connecting again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How often the set of sources is read again when nothing signals a change.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

pub struct Consumers {
    store: Store,
    clock: SharedClock,
    publisher: Arc<Publisher>,
    tally: Arc<Tally>,
    schemas: Schemas,
    /// This instance's consumer name in every group.
    name: String,
    dedupe_for: Duration,
}

impl std::fmt::Debug for Consumers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumers").field("name", &self.name).finish_non_exhaustive()
    }
}

/// A running consumer, with what it was started for.
struct Running {
    settings: String,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Consumers {
    pub fn new(
        store: Store,
        clock: SharedClock,
        publisher: Arc<Publisher>,
        tally: Arc<Tally>,
        dedupe_for: Duration,
    ) -> Self {
        let name = format!("hookgate-{}", uuid::Uuid::new_v4().simple());
        Self { store, clock, publisher, tally, schemas: Schemas::default(), name, dedupe_for }
    }

    /// Keeps one consumer running per enabled broker source, started, restarted on a change and
    /// stopped as sources come and go, until `shutdown`.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut running: HashMap<SourceId, Running> = HashMap::new();
        let mut read: Option<(u64, Instant)> = None;
        while !*shutdown.borrow() {
            let revision = self.store.seen(Cached::Sources);
            let stale = read.is_none_or(|(seen, at)| seen != revision || at.elapsed() >= REFRESH_EVERY);
            if stale {
                match self.store.run(sources::list).await {
                    Ok(all) => {
                        self.reconcile(&mut running, all).await;
                        read = Some((revision, Instant::now()));
                    }
                    Err(e) => tracing::debug!(error = %e, "could not read the sources; retrying"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => {}
            }
        }
        for (_, consumer) in running.drain() {
            let _ = consumer.stop.send(true);
            let _ = consumer.task.await;
        }
    }

    async fn reconcile(self: &Arc<Self>, running: &mut HashMap<SourceId, Running>, all: Vec<Source>) {
        let wanted: HashMap<SourceId, (String, Source)> = all
            .into_iter()
            .filter(|s| {
                s.spec.enabled
                    && matches!(s.spec.kind, SourceType::RedisStream | SourceType::Nats | SourceType::Amqp)
            })
            .map(|s| (s.id.clone(), (settings_of(&s), s)))
            .collect();
        let gone: Vec<SourceId> = running
            .iter()
            .filter(|(id, r)| wanted.get(*id).is_none_or(|(settings, _)| *settings != r.settings))
            .map(|(id, _)| id.clone())
            .collect();
        for id in gone {
            if let Some(consumer) = running.remove(&id) {
                let _ = consumer.stop.send(true);
                let _ = consumer.task.await;
            }
        }
        for (id, (settings, source)) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            let (stop, stopped) = watch::channel(false);
            let task = actix_web::rt::spawn(self.clone().consume(source, stopped));
            running.insert(id, Running { settings, stop, task });
        }
    }

    /// Consumes until told to stop, connecting again with backoff after a failure.
    async fn consume(self: Arc<Self>, source: Source, mut stop: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        while !*stop.borrow() {
            let ended = if let Some(config) = &source.spec.redis_stream {
                self.redis_session(&source, config, &mut stop).await.map_err(|e| format!("redis: {e}"))
            } else if let Some(config) = &source.spec.nats {
                self.nats_session(&source, config, &mut stop).await.map_err(|e| format!("nats: {e}"))
            } else if let Some(config) = &source.spec.amqp {
                self.amqp_session(&source, config, &mut stop).await.map_err(|e| format!("amqp: {e}"))
            } else {
                return;
            };
            match ended {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(source = %source.id, error = %e, "the broker consumer failed; connecting again");
                    self.tally.failed(&source.id, e);
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Fires the events of `messages` together (so they share group commits); returns, per
    /// message, whether it is done with (stored, a repeat, or refused) and may be acknowledged.
    /// One whose publish failed is not, and will be delivered again.
    async fn fire_all(&self, source: &Source, messages: Vec<Incoming>) -> Vec<bool> {
        if messages.is_empty() {
            return Vec::new();
        }
        let now = self.clock.now();
        let mut triggers: HashMap<TriggerId, Arc<Trigger>> = HashMap::new();
        let mut done = vec![false; messages.len()];
        let mut publishing = Vec::new();
        for (at, message) in messages.into_iter().enumerate() {
            self.tally.received(&source.id);
            let refuse = |rejection: Rejection| {
                self.tally.rejected(&source.id, now, &rejection, message.excerpt.as_bytes());
            };
            let routed = match message.document.map(|d| source.spec.event_of(&d, |_| None)) {
                Err(not_json) => Err(Rejection::new(RejectReason::NotJson, not_json)),
                Ok(routed) => routed,
            };
            let (trigger_id, input) = match routed {
                Ok(routed) => routed,
                Err(rejection) => {
                    refuse(rejection);
                    done[at] = true;
                    continue;
                }
            };
            let trigger = match self.trigger(&mut triggers, &trigger_id).await {
                Ok(trigger) => trigger,
                Err(e) => {
                    self.tally.failed(&source.id, format!("reading trigger '{trigger_id}': {e}"));
                    continue;
                }
            };
            if !trigger.enabled {
                refuse(Rejection::new(
                    RejectReason::Disabled,
                    format!("trigger '{}' is disabled", trigger.id),
                ));
                done[at] = true;
                continue;
            }
            match schema_rejection(&self.schemas, &trigger, &serde_json::Value::Object(input.clone())) {
                Ok(Some(rejection)) => {
                    refuse(rejection);
                    done[at] = true;
                    continue;
                }
                Ok(None) => {}
                Err(e) => {
                    self.tally.failed(&source.id, e);
                    continue;
                }
            }
            let key = message.id.map(|id| IdempotencyKey {
                key: format!("source:{}:{id}", source.id),
                request_hash: crate::domain::secret::hash(&format!("{}\n{id}", source.id)),
                ttl: self.dedupe_for,
            });
            let draft = Draft::new(&trigger, &input, &json!({}));
            publishing.push(async move { (at, self.publisher.publish(vec![draft], key, now).await) });
        }
        for (at, published) in futures_util::future::join_all(publishing).await {
            match published {
                Ok(Published::Created(_)) => {
                    self.tally.fired(&source.id, now);
                    done[at] = true;
                }
                Ok(_) => done[at] = true,
                Err(e) => self.tally.failed(&source.id, format!("storing an event: {e}")),
            }
        }
        done
    }
}

impl Consumers {
    /// The trigger `id`, read once per batch.
    async fn trigger(
        &self,
        kept: &mut HashMap<TriggerId, Arc<Trigger>>,
        id: &TriggerId,
    ) -> Result<Arc<Trigger>, crate::store::StoreError> {
        if let Some(trigger) = kept.get(id) {
            return Ok(trigger.clone());
        }
        let wanted = id.clone();
        let trigger = Arc::new(self.store.run(move |c| triggers::get(c, &wanted)).await?);
        kept.insert(id.clone(), trigger.clone());
        Ok(trigger)
    }
}

/// A message from a broker: its id there (a second delivery carries the same one), its
/// document or why it has none, and the start of it as text for a rejection.
struct Incoming {
    /// `None`: the message carries no id, so a second delivery would fire again.
    id: Option<String>,
    document: Result<serde_json::Value, String>,
    excerpt: String,
}

/// What a consumer is started for: a change restarts it.
fn settings_of(source: &Source) -> String {
    let stream =
        source.spec.redis_stream.as_ref().map(|c| (c.url.clone(), c.stream.clone(), c.group.clone()));
    let nats = source
        .spec
        .nats
        .as_ref()
        .map(|c| (c.url.clone(), c.stream.clone(), c.subject.clone(), c.durable.clone()));
    let amqp = source.spec.amqp.as_ref().map(|c| (c.url.clone(), c.queue.clone()));
    format!("{stream:?}|{nats:?}|{amqp:?}|{}|{:?}", source.spec.trigger_id, source.spec.input_path)
}
