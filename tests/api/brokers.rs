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
    let mut error = Value::Null;
    for _ in 0..100 {
        let source: Value = app.get("/sources/v1/down").await.json().await.unwrap();
        assert_eq!(
            source["redisStreamConfig"]["url"], "redis://:****@127.0.0.1:1/",
            "the password is write-only"
        );
        error = source["status"]["lastError"].clone();
        if error.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
