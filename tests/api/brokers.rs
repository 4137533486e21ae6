//! Broker sources against the real local Redis (127.0.0.1:6379): entries published with the
//! `redis` client fire one event each, are acknowledged once stored, survive a `kill -9` of the
//! consuming instance, and poison entries become rejections.

use std::time::{Duration, Instant};

use hookgate::store::invocations;
use redis::AsyncCommands as _;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb};
use crate::resilience::Server;
use crate::sources::{TRIGGER, create_source};

const REDIS: &str = "redis://127.0.0.1:6379/";

async fn redis() -> redis::aio::MultiplexedConnection {
    redis::Client::open(REDIS).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// A stream name no other test uses.
fn stream() -> String {
    format!("hookgate-test:{}", uuid::Uuid::new_v4().simple())
}

async fn stream_source(app: &TestApp, id: &str, stream: &str) -> Value {
    create_source(
        app,
        &json!({
            "id": id, "name": id, "type": "REDIS_STREAM", "triggerId": TRIGGER,
            "redisStreamConfig": {"url": REDIS, "stream": stream, "group": "hookgate"},
        }),
    )
    .await
}

async fn add(con: &mut redis::aio::MultiplexedConnection, stream: &str, fields: &[(&str, &str)]) {
    let _: String = con.xadd(stream, "*", fields).await.unwrap();
}

fn stored(app: &TestApp) -> i64 {
    app.store.run_blocking(invocations::count_all).unwrap()
}

/// Waits until `f` holds, at most `within`.
async fn until(within: Duration, f: impl Fn() -> bool) -> bool {
    let started = Instant::now();
    while !f() {
        if started.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// Waits (up to 2 s) until no entry of `stream` is left unacknowledged; returns whether none is.
async fn all_acknowledged(con: &mut redis::aio::MultiplexedConnection, stream: &str) -> bool {
    for _ in 0..40 {
        if pending_entries(con, stream).await == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Kills `first` mid-stream (once 300 events are stored), lets the producer finish, and checks
/// that the instances left fire all 2000 messages, each once.
async fn kill_mid_stream_then_count(
    app: &TestApp,
    mut first: Server,
    producer: actix_web::rt::task::JoinHandle<()>,
) {
    assert!(until(Duration::from_secs(20), || stored(app) >= 300).await, "the consumers started");
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let at_kill = stored(app);
    assert!(at_kill < 2000, "killed mid-stream ({at_kill} stored)");
    let all = until(Duration::from_secs(30), || stored(app) >= 2000).await;
    producer.await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(all, "stored {} of 2000 ({at_kill} at the kill)", stored(app));
    assert_eq!(stored(app), 2000, "each message fired once");
}

/// The source `id` as read once it shows a last error (waiting up to 10 s).
async fn once_failing(app: &TestApp, id: &str) -> Value {
    let mut source = Value::Null;
    for _ in 0..100 {
        source = app.get(&format!("/sources/v1/{id}")).await.json().await.unwrap();
        if source["status"]["lastError"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    source
}

async fn pending_entries(con: &mut redis::aio::MultiplexedConnection, stream: &str) -> i64 {
    let reply: redis::Value =
        redis::cmd("XPENDING").arg(stream).arg("hookgate").query_async(con).await.unwrap();
    match reply {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(n)) => *n,
            _ => 0,
        },
        _ => 0,
    }
}

#[actix_web::test]
async fn a_thousand_entries_fire_a_thousand_events_and_are_acknowledged() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let name = stream();
    stream_source(&app, "orders", &name).await;
    let mut con = redis().await;
    let pad = "x".repeat(1000);
    for i in 0..1000 {
        let body = json!({"identityId": format!("u{i}"), "pad": pad}).to_string();
        add(&mut con, &name, &[("body", &body)]).await;
    }
    assert!(until(Duration::from_secs(30), || stored(&app) >= 1000).await, "stored {}", stored(&app));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&app), 1000, "none twice");
    assert!(all_acknowledged(&mut con, &name).await, "every entry was acknowledged");
    let source: Value = app.get("/sources/v1/orders").await.json().await.unwrap();
    assert_eq!(source["status"]["fired"], 1000, "{source}");
    assert_eq!(source["redisStreamConfig"]["stream"], name.as_str());
    let _: () = con.del(&name).await.unwrap();
}

#[actix_web::test]
async fn a_poison_entry_is_a_rejection_not_a_stuck_consumer() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let name = stream();
    stream_source(&app, "poisoned", &name).await;
    let mut con = redis().await;
    add(&mut con, &name, &[("body", "not json")]).await;
    add(&mut con, &name, &[("body", r#"{"other": 1}"#)]).await;
    add(&mut con, &name, &[("identityId", "from-fields")]).await;
    add(&mut con, &name, &[("body", r#"{"identityId": "after"}"#)]).await;
    assert!(until(Duration::from_secs(10), || stored(&app) >= 2).await);
    let listed: Value = app.get("/trigger-invocations/v1?sorters=created").await.json().await.unwrap();
    let inputs: Vec<&Value> =
        listed.as_array().unwrap().iter().map(|i| &i["startInvocationInput"]["input"]).collect();
    assert_eq!(inputs, [&json!({"identityId": "from-fields"}), &json!({"identityId": "after"})]);
    let rejections: Value = app.get("/sources/v1/poisoned/rejections").await.json().await.unwrap();
    let reasons: Vec<&str> =
        rejections.as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["INPUT_SCHEMA", "NOT_JSON"]);
    assert!(all_acknowledged(&mut con, &name).await, "refused entries are acknowledged too");
    let _: () = con.del(&name).await.unwrap();
}

#[actix_web::test]
async fn two_instances_share_the_group_and_fire_each_entry_once() {
    let one = TestApp::spawn_with(|s| s.sources = true).await;
    let two = TestApp::spawn_on(one.db.clone(), |s| s.sources = true).await;
    one.subscribe_url("http://127.0.0.1:9/never").await;
    let name = stream();
    stream_source(&one, "shared", &name).await;
    let mut con = redis().await;
    for i in 0..300 {
        add(&mut con, &name, &[("body", &json!({"identityId": format!("s{i}")}).to_string())]).await;
    }
    assert!(until(Duration::from_secs(20), || stored(&one) >= 300).await, "stored {}", stored(&one));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&two), 300);
    let _: () = con.del(&name).await.unwrap();
}

#[actix_web::test]
async fn a_broker_that_is_down_is_reported_and_hookgate_keeps_serving() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    create_source(
        &app,
        &json!({
            "id": "down", "name": "down", "type": "REDIS_STREAM", "triggerId": TRIGGER,
            "redisStreamConfig": {"url": "redis://:hunter2@127.0.0.1:1/", "stream": "s", "group": "g"},
        }),
    )
    .await;
    let source = once_failing(&app, "down").await;
    assert_eq!(
        source["redisStreamConfig"]["url"], "redis://:****@127.0.0.1:1/",
        "the password is write-only"
    );
    let error = &source["status"]["lastError"];
    assert!(error.as_str().is_some_and(|e| e.starts_with("redis:")), "{error}");
    assert_eq!(app.get("/health/ready").await.status(), 200);
}

#[actix_web::test]
async fn a_killed_consumer_s_entries_are_all_fired_after_a_restart() {
    let db = std::sync::Arc::new(TestDb::new());
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let name = stream();
    stream_source(&app, "killed", &name).await;
    // An instance that died earlier left 50 entries read and never acknowledged.
    let mut con = redis().await;
    let _: () = con.xgroup_create_mkstream(&name, "hookgate", "0").await.unwrap();
    for i in 0..50 {
        add(&mut con, &name, &[("body", &json!({"identityId": format!("k{i}")}).to_string())]).await;
    }
    let taken: redis::streams::StreamReadReply = con
        .xread_options(
            &[&name],
            &[">"],
            &redis::streams::StreamReadOptions::default().group("hookgate", "crashed").count(50),
        )
        .await
        .unwrap();
    assert_eq!(taken.keys[0].ids.len(), 50);
    let mut server = Server::start(&db);
    // The producer keeps adding entries (about 500 a second) through the kill and the restart.
    let producer = actix_web::rt::spawn({
        let name = name.clone();
        async move {
            let mut con = redis().await;
            for i in 50..2000 {
                add(&mut con, &name, &[("body", &json!({"identityId": format!("k{i}")}).to_string())]).await;
                if i % 50 == 49 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    assert!(until(Duration::from_secs(20), || stored(&app) >= 300).await, "the consumer started");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let at_kill = stored(&app);
    assert!(at_kill < 2000, "killed mid-stream ({at_kill} stored)");
    let mut restarted = Server::start(&db);
    let all = until(Duration::from_secs(30), || stored(&app) >= 2000).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = restarted.child.kill();
    let _ = restarted.child.wait();
    assert!(all, "stored {} of 2000 ({at_kill} at the kill)", stored(&app));
    assert_eq!(stored(&app), 2000, "an entry delivered again is not fired twice");
    producer.await.unwrap();
    let _: () = con.del(&name).await.unwrap();
}

// NATS JetStream, at 127.0.0.1:4222.

const NATS: &str = "nats://127.0.0.1:4222";

/// A stream name and a subject no other test uses.
fn jetstream_names() -> (String, String) {
    let id = uuid::Uuid::new_v4().simple().to_string();
    (format!("HG_{id}"), format!("hookgate-test.{id}"))
}

async fn nats_source(app: &TestApp, id: &str, stream: &str, subject: &str) -> Value {
    create_source(
        app,
        &json!({
            "id": id, "name": id, "type": "NATS", "triggerId": TRIGGER,
            "natsConfig": {"url": NATS, "stream": stream, "subject": subject, "durable": "hookgate"},
        }),
    )
    .await
}

async fn jetstream() -> async_nats::jetstream::Context {
    async_nats::jetstream::new(async_nats::connect(NATS).await.unwrap())
}

/// Publishes to `subject` and waits for the stream to have stored it.
async fn publish(js: &async_nats::jetstream::Context, subject: &str, body: String) {
    js.publish(subject.to_owned(), body.into()).await.unwrap().await.unwrap();
}

/// Waits until the stream exists (the source's consumer creates it).
async fn stream_ready(js: &async_nats::jetstream::Context, stream: &str) {
    for _ in 0..100 {
        if js.get_stream(stream).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the consumer did not create stream {stream}");
}

/// The durable consumer a NATS source makes, once it exists.
async fn durable_ready(
    js: &async_nats::jetstream::Context,
    stream: &str,
) -> async_nats::jetstream::consumer::PullConsumer {
    for _ in 0..100 {
        if let Ok(stream) = js.get_stream(stream).await
            && let Ok(durable) = stream.get_consumer("hookgate").await
        {
            return durable;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the consumer did not create its durable on {stream}");
}

#[actix_web::test]
async fn a_thousand_nats_messages_fire_a_thousand_events_and_are_acknowledged() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let (stream, subject) = jetstream_names();
    let created = nats_source(&app, "nats-orders", &stream, &subject).await;
    assert_eq!(created["natsConfig"]["durable"], "hookgate");
    let js = jetstream().await;
    stream_ready(&js, &stream).await;
    let pad = "x".repeat(1000);
    for i in 0..1000 {
        publish(&js, &subject, json!({"identityId": format!("n{i}"), "pad": pad}).to_string()).await;
    }
    assert!(until(Duration::from_secs(30), || stored(&app) >= 1000).await, "stored {}", stored(&app));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&app), 1000, "none twice");
    let mut consumer: async_nats::jetstream::consumer::PullConsumer =
        js.get_stream(&stream).await.unwrap().get_consumer("hookgate").await.unwrap();
    let mut acked = false;
    for _ in 0..40 {
        let info = consumer.info().await.unwrap();
        if info.num_ack_pending == 0 && info.num_pending == 0 {
            acked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(acked, "every message was acknowledged");
    js.delete_stream(&stream).await.unwrap();
}

#[actix_web::test]
async fn a_poison_nats_message_is_a_rejection_not_a_stuck_consumer() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let (stream, subject) = jetstream_names();
    nats_source(&app, "nats-poisoned", &stream, &subject).await;
    let js = jetstream().await;
    stream_ready(&js, &stream).await;
    publish(&js, &subject, "not json".into()).await;
    publish(&js, &subject, r#"{"identityId": "after"}"#.into()).await;
    assert!(until(Duration::from_secs(10), || stored(&app) >= 1).await);
    let rejections: Value = app.get("/sources/v1/nats-poisoned/rejections").await.json().await.unwrap();
    assert_eq!(rejections[0]["reason"], "NOT_JSON", "{rejections}");
    assert_eq!(rejections[0]["excerpt"], "not json");
    js.delete_stream(&stream).await.unwrap();
}

#[actix_web::test]
async fn a_killed_nats_consumer_s_messages_are_all_fired_once_by_the_instances_left() {
    let db = std::sync::Arc::new(TestDb::new());
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let (stream, subject) = jetstream_names();
    nats_source(&app, "nats-killed", &stream, &subject).await;
    let mut first = Server::start(&db);
    let js = jetstream().await;
    stream_ready(&js, &stream).await;
    // The first instance made the durable consumer, then died; 50 messages published after it
    // are pulled here, as it would have pulled them, and never acknowledged.
    let durable = durable_ready(&js, &stream).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    for i in 0..50 {
        publish(&js, &subject, json!({"identityId": format!("k{i}")}).to_string()).await;
    }
    let mut pulled = durable.fetch().max_messages(50).messages().await.unwrap();
    let mut taken = 0;
    while let Some(message) = futures_util::StreamExt::next(&mut pulled).await {
        message.unwrap();
        taken += 1;
    }
    assert!(taken > 0, "the dead instance held messages");
    let first = Server::start(&db);
    let second = TestApp::spawn_on(db.clone(), |s| s.sources = true).await;
    let producer = actix_web::rt::spawn({
        let (js, subject) = (js.clone(), subject.clone());
        async move {
            for i in 50..2000 {
                publish(&js, &subject, json!({"identityId": format!("k{i}")}).to_string()).await;
                if i % 50 == 49 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    kill_mid_stream_then_count(&app, first, producer).await;
    drop(second);
    js.delete_stream(&stream).await.unwrap();
}

#[actix_web::test]
async fn a_nats_server_that_is_down_is_reported() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    create_source(&app, &json!({
        "id": "nats-down", "name": "down", "type": "NATS", "triggerId": TRIGGER,
        "natsConfig": {"url": "nats://me:hunter2@127.0.0.1:1", "stream": "S", "subject": "s", "durable": "d"},
    }))
    .await;
    let source = once_failing(&app, "nats-down").await;
    assert_eq!(source["natsConfig"]["url"], "nats://me:****@127.0.0.1:1", "the password is write-only");
    let error = &source["status"]["lastError"];
    assert!(error.as_str().is_some_and(|e| e.starts_with("nats:")), "{error}");
}

// RabbitMQ (AMQP 0-9-1), at 127.0.0.1:5672 as guest.

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A connection and a channel to RabbitMQ; the connection must outlive the channel's use.
async fn rabbit() -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(AMQP, lapin::ConnectionProperties::default()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

/// A durable queue no other test uses, declared as the source declares it.
async fn rabbit_queue(channel: &lapin::Channel) -> String {
    let name = format!("hookgate-test-{}", uuid::Uuid::new_v4().simple());
    let durable = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
    channel.queue_declare(name.as_str().into(), durable, lapin::types::FieldTable::default()).await.unwrap();
    name
}

async fn rabbit_publish(channel: &lapin::Channel, queue: &str, body: &str, id: &str) {
    let properties = lapin::BasicProperties::default().with_message_id(id.into());
    channel
        .basic_publish(
            "".into(),
            queue.into(),
            lapin::options::BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        )
        .await
        .unwrap();
}

async fn amqp_source(app: &TestApp, id: &str, queue: &str) -> Value {
    create_source(
        app,
        &json!({
            "id": id, "name": id, "type": "AMQP", "triggerId": TRIGGER,
            "amqpConfig": {"url": AMQP, "queue": queue},
        }),
    )
    .await
}

#[actix_web::test]
async fn a_thousand_rabbitmq_messages_fire_a_thousand_events_and_are_acknowledged() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let (_connection, channel) = rabbit().await;
    let queue = rabbit_queue(&channel).await;
    let created = amqp_source(&app, "rabbit-orders", &queue).await;
    assert_eq!(
        created["amqpConfig"]["url"], "amqp://guest:****@127.0.0.1:5672/%2f",
        "the password is write-only"
    );
    let pad = "x".repeat(1000);
    for i in 0..1000 {
        rabbit_publish(
            &channel,
            &queue,
            &json!({"identityId": format!("r{i}"), "pad": pad}).to_string(),
            &format!("m{i}"),
        )
        .await;
    }
    assert!(until(Duration::from_secs(30), || stored(&app) >= 1000).await, "stored {}", stored(&app));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(stored(&app), 1000, "none twice");
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    let left = channel
        .queue_declare(queue.as_str().into(), passive, lapin::types::FieldTable::default())
        .await
        .unwrap();
    assert_eq!(left.message_count(), 0, "every message was acknowledged");
    channel.queue_delete(queue.as_str().into(), lapin::options::QueueDeleteOptions::default()).await.unwrap();
}

#[actix_web::test]
async fn a_poison_rabbitmq_message_is_a_rejection_not_a_stuck_consumer() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let (_connection, channel) = rabbit().await;
    let queue = rabbit_queue(&channel).await;
    amqp_source(&app, "rabbit-poisoned", &queue).await;
    rabbit_publish(&channel, &queue, "not json", "p1").await;
    rabbit_publish(&channel, &queue, r#"{"identityId": "after"}"#, "p2").await;
    assert!(until(Duration::from_secs(10), || stored(&app) >= 1).await);
    let rejections: Value = app.get("/sources/v1/rabbit-poisoned/rejections").await.json().await.unwrap();
    assert_eq!(rejections[0]["reason"], "NOT_JSON", "{rejections}");
    channel.queue_delete(queue.as_str().into(), lapin::options::QueueDeleteOptions::default()).await.unwrap();
}

#[actix_web::test]
async fn a_killed_rabbitmq_consumer_s_messages_are_all_fired_once_by_the_instances_left() {
    let db = std::sync::Arc::new(TestDb::new());
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let (_connection, channel) = rabbit().await;
    let queue = rabbit_queue(&channel).await;
    amqp_source(&app, "rabbit-killed", &queue).await;
    // An instance that died earlier took 50 messages and never acknowledged them.
    for i in 0..50 {
        rabbit_publish(
            &channel,
            &queue,
            &json!({"identityId": format!("k{i}")}).to_string(),
            &format!("k{i}"),
        )
        .await;
    }
    {
        let (dead, dead_channel) = rabbit().await;
        dead_channel.basic_qos(50, lapin::options::BasicQosOptions::default()).await.unwrap();
        let mut taking = dead_channel
            .basic_consume(
                queue.as_str().into(),
                "dead".into(),
                lapin::options::BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        for _ in 0..50 {
            futures_util::StreamExt::next(&mut taking).await.unwrap().unwrap();
        }
        dead.close(0, "killed".into()).await.unwrap();
    }
    let first = Server::start(&db);
    let second = TestApp::spawn_on(db.clone(), |s| s.sources = true).await;
    let producer = actix_web::rt::spawn({
        let (channel, queue) = (channel.clone(), queue.clone());
        async move {
            for i in 50..2000 {
                rabbit_publish(
                    &channel,
                    &queue,
                    &json!({"identityId": format!("k{i}")}).to_string(),
                    &format!("k{i}"),
                )
                .await;
                if i % 50 == 49 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    kill_mid_stream_then_count(&app, first, producer).await;
    drop(second);
    channel.queue_delete(queue.as_str().into(), lapin::options::QueueDeleteOptions::default()).await.unwrap();
}

#[actix_web::test]
async fn a_rabbitmq_that_is_down_is_reported() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    create_source(
        &app,
        &json!({
            "id": "rabbit-down", "name": "down", "type": "AMQP", "triggerId": TRIGGER,
            "amqpConfig": {"url": "amqp://guest:guest@127.0.0.1:1/%2f", "queue": "q"},
        }),
    )
    .await;
    let error = &once_failing(&app, "rabbit-down").await["status"]["lastError"];
    assert!(error.as_str().is_some_and(|e| e.starts_with("amqp:")), "{error}");
}

/// A TCP forwarder on a port of its own to a broker; stopping it cuts every connection through
/// it, as a broker restart does.
struct Proxy {
    port: u16,
    accepting: actix_web::rt::task::JoinHandle<()>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<actix_web::rt::task::JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(port: u16, target: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = connections.clone();
        let accepting = actix_web::rt::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let forward = actix_web::rt::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                kept.lock().unwrap().push(forward);
            }
        });
        Self { port, accepting, connections }
    }

    fn stop(self) {
        self.accepting.abort();
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }
}

#[actix_web::test]
async fn a_consumer_reconnects_by_itself_after_its_broker_goes_away_and_comes_back() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let proxy = Proxy::start(0, "127.0.0.1:6379").await;
    let port = proxy.port;
    let name = stream();
    create_source(&app, &json!({
        "id": "flaky", "name": "flaky", "type": "REDIS_STREAM", "triggerId": TRIGGER,
        "redisStreamConfig": {"url": format!("redis://127.0.0.1:{port}/"), "stream": name, "group": "hookgate"},
    }))
    .await;
    let mut con = redis().await;
    add(&mut con, &name, &[("body", r#"{"identityId": "before"}"#)]).await;
    assert!(until(Duration::from_secs(10), || stored(&app) >= 1).await, "consumed through the proxy");
    proxy.stop();
    add(&mut con, &name, &[("body", r#"{"identityId": "while-down"}"#)]).await;
    let error = &once_failing(&app, "flaky").await["status"]["lastError"];
    assert!(error.as_str().is_some_and(|e| e.starts_with("redis:")), "the outage is shown: {error}");
    assert_eq!(stored(&app), 1);
    let back = Proxy::start(port, "127.0.0.1:6379").await;
    add(&mut con, &name, &[("body", r#"{"identityId": "after"}"#)]).await;
    assert!(until(Duration::from_secs(40), || stored(&app) >= 3).await, "stored {}", stored(&app));
    back.stop();
    let _: () = con.del(&name).await.unwrap();
}

#[actix_web::test]
async fn broker_messages_are_routed_to_the_trigger_their_routes_pick() {
    let app = TestApp::spawn_with(|s| s.sources = true).await;
    let charges = json!({"id": "test:charges", "name": "Charges", "type": "FIRE_AND_FORGET",
        "inputSchema": {"type": "object", "required": ["charge"]}, "exampleInput": {"charge": "c"}});
    assert_eq!(app.post("/triggers/v1", &charges).await.status(), 201);
    app.subscribe_url_to("test:charges", "http://127.0.0.1:9/never").await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let name = stream();
    create_source(
        &app,
        &json!({
            "id": "routed-stream", "name": "routed", "type": "REDIS_STREAM", "triggerId": TRIGGER,
            "routes": {"path": "$.type", "map": {"charge.succeeded": "test:charges"}, "otherwise": "DROP"},
            "redisStreamConfig": {"url": REDIS, "stream": name, "group": "hookgate"},
        }),
    )
    .await;
    let mut con = redis().await;
    add(&mut con, &name, &[("body", r#"{"type": "charge.succeeded", "charge": "ch_1"}"#)]).await;
    add(&mut con, &name, &[("body", r#"{"type": "refund.created", "charge": "ch_1"}"#)]).await;
    add(&mut con, &name, &[("body", r#"{"type": "charge.succeeded", "charge": "ch_2"}"#)]).await;
    assert!(until(Duration::from_secs(10), || stored(&app) >= 2).await);
    assert!(all_acknowledged(&mut con, &name).await, "the dropped entry is acknowledged too");
    let listed: Value = app.get("/trigger-invocations/v1").await.json().await.unwrap();
    let triggers: Vec<&str> =
        listed.as_array().unwrap().iter().map(|i| i["triggerId"].as_str().unwrap()).collect();
    assert_eq!(triggers, ["test:charges", "test:charges"]);
    let rejections: Value = app.get("/sources/v1/routed-stream/rejections").await.json().await.unwrap();
    assert_eq!(rejections[0]["reason"], "UNKNOWN_ROUTE");
    let header = json!({"name": "h", "type": "NATS", "triggerId": TRIGGER, "routes": {"header": "X-Type"},
        "natsConfig": {"url": "nats://127.0.0.1:4222", "stream": "S", "subject": "s", "durable": "d"}});
    let refused = crate::helpers::error_text(app.post("/sources/v1", &header).await, 400).await;
    assert!(refused.contains("route by path"), "{refused}");
    let _: () = con.del(&name).await.unwrap();
}
