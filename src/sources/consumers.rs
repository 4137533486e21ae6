//! Broker consumers: one per enabled `REDIS_STREAM` source on every instance, all in the
//! source's consumer group, so each entry goes to one of them. An entry is acknowledged only
//! once its event is committed (published under the key `source:{id}:{entry id}`, so an entry
//! delivered again after a crash fires nothing new). An entry that cannot become an event is a
//! rejection and is acknowledged: never an endless redelivery. Entries a consumer took and did not
//! acknowledge (its instance died) are claimed by any consumer once idle for [`CLAIM_IDLE`]. A
//! broker that is down is retried with backoff and shown in the source's `status.lastError`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands as _;
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use serde_json::json;
use tokio::sync::watch;

use super::Tally;
use crate::clock::SharedClock;
use crate::delivery::{Publisher, Shutdown};
use crate::domain::ids::SourceId;
use crate::domain::schema::{Schemas, Side};
use crate::domain::source::broker::{RedisStreamConfig, entry_document};
use crate::domain::source::{RejectReason, Rejection, Source, SourceType};
use crate::store::events::{Draft, Published};
use crate::store::idempotency::IdempotencyKey;
use crate::store::revisions::Cached;
use crate::store::{Store, sources, triggers};

/// How long an entry may stay unacknowledged before another consumer takes it over.
pub const CLAIM_IDLE: Duration = Duration::from_secs(5);
/// How often a consumer looks for such entries.
const CLAIM_EVERY: Duration = Duration::from_secs(2);
/// The most entries read at once.
const BATCH: usize = 200;
/// How long one read waits for entries.
const BLOCK_MS: usize = 1000;
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
            .filter(|s| s.spec.enabled && s.spec.kind == SourceType::RedisStream)
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
        let Some(config) = source.spec.redis_stream.clone() else { return };
        let mut backoff = Duration::from_secs(1);
        while !*stop.borrow() {
            match self.session(&source, &config, &mut stop).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::debug!(source = %source.id, error = %e, "the broker consumer failed; connecting again");
                    self.tally.failed(&source.id, format!("redis: {e}"));
                }
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// One connection's life: joins the group (creating the stream and group when missing),
    /// then reads, fires and acknowledges, taking over idle entries now and then.
    async fn session(
        &self,
        source: &Source,
        config: &RedisStreamConfig,
        stop: &mut watch::Receiver<bool>,
    ) -> redis::RedisResult<()> {
        let client = redis::Client::open(config.url.as_str())?;
        let mut con = client.get_multiplexed_async_connection().await?;
        con.set_response_timeout(Duration::from_millis(BLOCK_MS as u64) + Duration::from_secs(5));
        let created: redis::RedisResult<()> =
            con.xgroup_create_mkstream(&config.stream, &config.group, "0").await;
        if let Err(e) = created
            && e.code() != Some("BUSYGROUP")
        {
            return Err(e);
        }
        let read = StreamReadOptions::default().group(&config.group, &self.name).count(BATCH).block(BLOCK_MS);
        let mut claimed_at: Option<Instant> = None;
        while !*stop.borrow() {
            if claimed_at.is_none_or(|at| at.elapsed() >= CLAIM_EVERY) {
                let idle = usize::try_from(CLAIM_IDLE.as_millis()).unwrap_or(usize::MAX);
                let claimed: StreamAutoClaimReply = con
                    .xautoclaim_options(
                        &config.stream,
                        &config.group,
                        &self.name,
                        idle,
                        "0-0",
                        StreamAutoClaimOptions::default().count(BATCH),
                    )
                    .await?;
                self.handle(source, config, &mut con, claimed.claimed).await?;
                claimed_at = Some(Instant::now());
            }
            let reply: StreamReadReply = con.xread_options(&[&config.stream], &[">"], &read).await?;
            let entries: Vec<StreamId> = reply.keys.into_iter().flat_map(|k| k.ids).collect();
            self.handle(source, config, &mut con, entries).await?;
        }
        Ok(())
    }

    /// Fires each entry's event (together, so they share group commits), then acknowledges the
    /// entries that were stored or refused. One whose publish failed stays pending, for a later
    /// claim.
    async fn handle(
        &self,
        source: &Source,
        config: &RedisStreamConfig,
        con: &mut redis::aio::MultiplexedConnection,
        entries: Vec<StreamId>,
    ) -> redis::RedisResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let trigger_id = source.spec.trigger_id.clone();
        let trigger = match self.store.run(move |c| triggers::get(c, &trigger_id)).await {
            Ok(trigger) => trigger,
            Err(e) => {
                self.tally.failed(&source.id, format!("reading trigger '{}': {e}", source.spec.trigger_id));
                return Ok(());
            }
        };
        let mut done = Vec::with_capacity(entries.len());
        let mut publishing = Vec::new();
        for entry in &entries {
            self.tally.received(&source.id);
            let fields: Vec<(String, String)> = entry
                .map
                .iter()
                .map(|(k, v)| (k.clone(), redis::from_redis_value_ref::<String>(v).unwrap_or_default()))
                .collect();
            let excerpt = || json!(fields.iter().cloned().collect::<HashMap<_, _>>()).to_string();
            let refuse =
                |rejection: Rejection| self.tally.rejected(&source.id, now, &rejection, excerpt().as_bytes());
            let document = match entry_document(&fields) {
                Ok(document) => document,
                Err(message) => {
                    refuse(Rejection::new(RejectReason::NotJson, message));
                    done.push(entry.id.clone());
                    continue;
                }
            };
            let input = match source.spec.event_of(&document, |_| None) {
                Ok((_, input)) => input,
                Err(rejection) => {
                    refuse(rejection);
                    done.push(entry.id.clone());
                    continue;
                }
            };
            if !trigger.enabled {
                refuse(Rejection::new(
                    RejectReason::Disabled,
                    format!("trigger '{}' is disabled", trigger.id),
                ));
                done.push(entry.id.clone());
                continue;
            }
            let problems =
                self.schemas.problems(&trigger, Side::Input, &serde_json::Value::Object(input.clone()));
            match problems {
                Ok(problems) if !problems.is_empty() => {
                    let message = format!(
                        "the input does not match the input schema of '{}': {}",
                        trigger.id,
                        problems.join("; ")
                    );
                    refuse(Rejection::new(RejectReason::InputSchema, message));
                    done.push(entry.id.clone());
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    self.tally.failed(&source.id, e);
                    continue;
                }
            }
            let key = IdempotencyKey {
                key: format!("source:{}:{}", source.id, entry.id),
                request_hash: crate::domain::secret::hash(&format!("{}\n{}", source.id, entry.id)),
                ttl: self.dedupe_for,
            };
            let draft = Draft::new(&trigger, &input, &json!({}));
            let id = entry.id.clone();
            publishing.push(async move { (id, self.publisher.publish(vec![draft], Some(key), now).await) });
        }
        for (id, published) in futures_util::future::join_all(publishing).await {
            match published {
                Ok(Published::Created(_)) => {
                    self.tally.fired(&source.id, now);
                    done.push(id);
                }
                Ok(_) => done.push(id),
                Err(e) => self.tally.failed(&source.id, format!("storing an event: {e}")),
            }
        }
        if !done.is_empty() {
            let _: i64 = con.xack(&config.stream, &config.group, &done).await?;
        }
        Ok(())
    }
}

/// What a consumer is started for: a change restarts it.
fn settings_of(source: &Source) -> String {
    let stream =
        source.spec.redis_stream.as_ref().map(|c| (c.url.clone(), c.stream.clone(), c.group.clone()));
    format!("{stream:?}|{}|{:?}", source.spec.trigger_id, source.spec.input_path)
}
