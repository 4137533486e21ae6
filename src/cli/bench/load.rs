//! The load generator: publishes the benchmark's events through the HTTP API (`start`, or a
//! WEBHOOK source signed as a Standard Webhooks sender signs), closed loop (each connection as
//! soon as the last answer came), open loop at a rate, or in batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use anyhow::bail;

use super::BenchArgs;
use super::sink::micros_now;
use crate::delivery::signer::{SigningKey, signature_header};
use crate::domain::secret::new_signing_secret;

/// The route each event is published through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    /// `POST /trigger-invocations/v1/start` with a bearer token.
    Start,
    /// `POST /hooks/v1/bench`, a Standard Webhooks source: signed, with a `webhook-id` each.
    Webhook,
    /// `XADD` to a fresh stream on the local Redis (127.0.0.1:6379) that a `REDIS_STREAM`
    /// source consumes.
    RedisStream,
    /// A JetStream publish to a fresh stream on the local NATS (127.0.0.1:4222).
    Nats,
    /// A publish to a fresh durable queue on the local RabbitMQ (127.0.0.1:5672, guest).
    Amqp,
}

/// The NATS and RabbitMQ the broker routes publish to.
const BENCH_NATS: &str = "nats://127.0.0.1:4222";
const BENCH_AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The Redis the `redis-stream` route publishes to.
const BENCH_REDIS: &str = "redis://127.0.0.1:6379/";

/// How a publishing connection sends one event.
#[derive(Clone)]
pub(super) enum Entry {
    Start { url: String, token: String },
    Webhook { url: String, key: SigningKey },
    RedisStream { con: redis::aio::MultiplexedConnection, stream: String },
    Nats { js: async_nats::jetstream::Context, stream: String, subject: String },
    Amqp { _connection: Arc<lapin::Connection>, channel: lapin::Channel, queue: String },
}

/// Creates the benchmark's source.
async fn create_source(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    source: &Value,
) -> anyhow::Result<()> {
    let created = http.post(format!("{base}/sources/v1")).bearer_auth(token).json(source).send().await?;
    if !created.status().is_success() {
        bail!("creating the benchmark source: {}", created.text().await?);
    }
    Ok(())
}

/// Waits until `joined` says the server consumes (measure from then, not from when it noticed
/// the new source).
async fn until_consuming<F: std::future::Future<Output = bool>>(
    mut joined: impl FnMut() -> F,
) -> anyhow::Result<()> {
    let since = std::time::Instant::now();
    while !joined().await {
        if since.elapsed() > Duration::from_secs(10) {
            bail!("the server did not start consuming within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

impl Entry {
    /// The entry for `via`; for a webhook, creates the benchmark's source.
    pub(super) async fn open(
        via: Via,
        http: &reqwest::Client,
        base: &str,
        token: &str,
    ) -> anyhow::Result<Self> {
        if via == Via::Start {
            let url = format!("{base}/trigger-invocations/v1/start");
            return Ok(Self::Start { url, token: token.to_owned() });
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        if via == Via::Nats {
            let (stream, subject) = (format!("HGBENCH_{id}"), format!("hookgate-bench.{id}"));
            create_source(http, base, token, &json!({"id": "bench", "name": "Benchmark", "type": "NATS",
                "triggerId": "bench:event",
                "natsConfig": {"url": BENCH_NATS, "stream": stream, "subject": subject, "durable": "hookgate"}}))
            .await?;
            let js = async_nats::jetstream::new(async_nats::connect(BENCH_NATS).await?);
            until_consuming(|| {
                let (js, stream) = (js.clone(), stream.clone());
                async move {
                    match js.get_stream(&stream).await {
                        Ok(s) => s
                            .get_consumer::<async_nats::jetstream::consumer::pull::Config>("hookgate")
                            .await
                            .is_ok(),
                        Err(_) => false,
                    }
                }
            })
            .await?;
            return Ok(Self::Nats { js, stream, subject });
        }
        if via == Via::Amqp {
            let queue = format!("hookgate-bench-{id}");
            let connection =
                lapin::Connection::connect(BENCH_AMQP, lapin::ConnectionProperties::default()).await?;
            let channel = connection.create_channel().await?;
            let durable = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
            channel
                .queue_declare(queue.as_str().into(), durable, lapin::types::FieldTable::default())
                .await?;
            create_source(
                http,
                base,
                token,
                &json!({"id": "bench", "name": "Benchmark", "type": "AMQP",
                "triggerId": "bench:event", "amqpConfig": {"url": BENCH_AMQP, "queue": queue}}),
            )
            .await?;
            until_consuming(|| {
                let (channel, queue) = (channel.clone(), queue.clone());
                async move {
                    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
                    channel
                        .queue_declare(queue.as_str().into(), passive, lapin::types::FieldTable::default())
                        .await
                        .is_ok_and(|q| q.consumer_count() > 0)
                }
            })
            .await?;
            return Ok(Self::Amqp { _connection: Arc::new(connection), channel, queue });
        }
        if via == Via::RedisStream {
            let stream = format!("hookgate-bench:{}", uuid::Uuid::new_v4().simple());
            let source = json!({"id": "bench", "name": "Benchmark", "type": "REDIS_STREAM", "triggerId": "bench:event",
                "redisStreamConfig": {"url": BENCH_REDIS, "stream": stream, "group": "hookgate"}});
            let created =
                http.post(format!("{base}/sources/v1")).bearer_auth(token).json(&source).send().await?;
            if !created.status().is_success() {
                bail!("creating the benchmark source: {}", created.text().await?);
            }
            let mut con = redis::Client::open(BENCH_REDIS)?.get_multiplexed_async_connection().await?;
            // Measure from when the server consumes, not from when it notices the new source.
            let since = std::time::Instant::now();
            loop {
                // The consumer creates the stream and its group as it joins, then reads.
                let groups: redis::RedisResult<Vec<redis::Value>> =
                    redis::cmd("XINFO").arg("GROUPS").arg(&stream).query_async(&mut con).await;
                if groups.is_ok_and(|g| !g.is_empty()) {
                    break;
                }
                if since.elapsed() > Duration::from_secs(10) {
                    bail!("the server did not start consuming {stream} within 10 s");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            return Ok(Self::RedisStream { con, stream });
        }
        let secret = new_signing_secret();
        let source = json!({"id": "bench", "name": "Benchmark", "type": "WEBHOOK", "triggerId": "bench:event",
            "webhookConfig": {"verification": "STANDARD_WEBHOOKS", "secret": secret.expose()}});
        let created = http.post(format!("{base}/sources/v1")).bearer_auth(token).json(&source).send().await?;
        if !created.status().is_success() {
            bail!("creating the benchmark source: {}", created.text().await?);
        }
        let key =
            SigningKey::from_secret(&secret).ok_or_else(|| anyhow::anyhow!("a fresh secret decodes"))?;
        Ok(Self::Webhook { url: format!("{base}/hooks/v1/bench"), key })
    }

    /// Sends one event; returns whether it was accepted.
    async fn send(&self, http: &reqwest::Client, input: &Value, seq: usize) -> bool {
        let request = match self {
            Self::RedisStream { con, stream } => {
                let added: redis::RedisResult<String> =
                    redis::AsyncCommands::xadd(&mut con.clone(), stream, "*", &[("body", input.to_string())])
                        .await;
                return added.is_ok();
            }
            Self::Nats { js, subject, .. } => {
                return match js.publish(subject.clone(), input.to_string().into()).await {
                    Ok(stored) => stored.await.is_ok(),
                    Err(_) => false,
                };
            }
            Self::Amqp { channel, queue, .. } => {
                let properties = lapin::BasicProperties::default().with_message_id(format!("m{seq}").into());
                let options = lapin::options::BasicPublishOptions::default();
                let body = input.to_string();
                let queue = queue.as_str().into();
                return channel
                    .basic_publish("".into(), queue, options, body.as_bytes(), properties)
                    .await
                    .is_ok();
            }
            Self::Start { url, token } => {
                http.post(url).bearer_auth(token).json(&json!({"triggerId": "bench:event", "input": input}))
            }
            Self::Webhook { url, key } => {
                let body = input.to_string();
                let id = format!("msg_{seq}");
                #[expect(clippy::cast_possible_wrap, reason = "seconds since 1970 fit in an i64")]
                let at = (micros_now() / 1_000_000) as i64;
                http.post(url)
                    .header("Content-Type", "application/json")
                    .header("webhook-id", &id)
                    .header("webhook-timestamp", at.to_string())
                    .header(
                        "webhook-signature",
                        signature_header(std::slice::from_ref(key), &id, at, body.as_bytes()),
                    )
                    .body(body)
            }
        };
        request.send().await.is_ok_and(|r| r.status().is_success())
    }

    /// Removes what the entry made outside hookgate (a Redis stream).
    pub(super) async fn close(self) {
        match self {
            Self::RedisStream { mut con, stream } => {
                let _: redis::RedisResult<()> = redis::AsyncCommands::del(&mut con, &stream).await;
            }
            Self::Nats { js, stream, .. } => {
                let _ = js.delete_stream(&stream).await;
            }
            Self::Amqp { channel, queue, .. } => {
                let options = lapin::options::QueueDeleteOptions::default();
                let _ = channel.queue_delete(queue.as_str().into(), options).await;
            }
            Self::Start { .. } | Self::Webhook { .. } => {}
        }
    }
}

/// Publishes `args.events` events one per request over `args.concurrency` connections, each as
/// soon as the last answered or, with `--rate`, at its due time; returns how many were accepted.
pub(super) async fn publish(
    args: &BenchArgs,
    http: &reqwest::Client,
    entry: &Entry,
) -> anyhow::Result<usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let origin = micros_now();
    let interval_us = args.rate.map(|r| 1_000_000.0 / r);
    let publishers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (http, next, accepted, entry) = (http.clone(), next.clone(), accepted.clone(), entry.clone());
            let (events, pad) = (args.events, "x".repeat(args.pad));
            actix_web::rt::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= events {
                        return;
                    }
                    let t0 = match interval_us {
                        None => micros_now(),
                        Some(step) => {
                            #[expect(
                                clippy::cast_possible_truncation,
                                clippy::cast_sign_loss,
                                clippy::cast_precision_loss,
                                reason = "microsecond offsets of a bounded run"
                            )]
                            let due = origin + (seq as f64 * step) as u64;
                            let now = micros_now();
                            if due > now {
                                tokio::time::sleep(Duration::from_micros(due - now)).await;
                            }
                            due
                        }
                    };
                    let input = if pad.is_empty() {
                        json!({"seq": seq, "t0": t0})
                    } else {
                        json!({"seq": seq, "t0": t0, "pad": pad})
                    };
                    if entry.send(&http, &input, seq).await {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for p in publishers {
        p.await?;
    }
    Ok(accepted.load(Ordering::Relaxed))
}

/// Publishes `events` events in batches of 1,000 per request; returns how many were accepted.
pub(super) async fn publish_batches(
    events: usize,
    concurrency: usize,
    http: &reqwest::Client,
    base: &str,
    token: &str,
) -> anyhow::Result<usize> {
    const BATCH: usize = 1000;
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..concurrency.min(4))
        .map(|_| {
            let (http, next, accepted, token) =
                (http.clone(), next.clone(), accepted.clone(), token.to_owned());
            let url = format!("{base}/trigger-invocations/v1/start");
            actix_web::rt::spawn(async move {
                loop {
                    let first = next.fetch_add(BATCH, Ordering::Relaxed);
                    if first >= events {
                        return;
                    }
                    let t0 = micros_now();
                    let batch: Vec<Value> = (first..(first + BATCH).min(events))
                        .map(|seq| json!({"triggerId": "bench:event", "input": {"seq": seq, "t0": t0}}))
                        .collect();
                    let n = batch.len();
                    let sent = http.post(&url).bearer_auth(&token).json(&batch).send().await;
                    if sent.is_ok_and(|r| r.status().is_success()) {
                        accepted.fetch_add(n, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for p in publishers {
        p.await?;
    }
    Ok(accepted.load(Ordering::Relaxed))
}
