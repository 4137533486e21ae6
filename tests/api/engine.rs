//! The delivery engine: in-memory hand-off from publish, fallback to the database when memory is
//! full, fairness between subscribers, and what a delivery writes.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::TimeDelta;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use hookgate::domain::invocation::InvocationState;
use hookgate::store::invocations;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::sink::{Reply, Sink};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn count(app: &TestApp, sql: &'static str) -> i64 {
    app.store
        .run_blocking(|c| {
            Ok(diesel::sql_query(sql).get_result::<Count>(c).map_err(hookgate::store::StoreError::from)?.n)
        })
        .unwrap()
}

fn batch(n: usize) -> Value {
    Value::Array(
        (0..n)
            .map(|i| json!({"triggerId": "test:fire-and-forget", "input": {"identityId": format!("e{i}")}}))
            .collect(),
    )
}

#[actix_web::test]
async fn a_publish_hands_its_invocations_to_the_running_dispatcher_leased_to_it() {
    let app = TestApp::spawn_with(|s| {
        s.workers = 1;
        // Idle loops look for work once a minute: a delivery within seconds came through memory.
        s.poll_interval = Duration::from_secs(60);
    })
    .await;
    let sink = Sink::start();
    app.subscribe_url(&sink.url("/h")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let published: Value =
        app.publish("test:fire-and-forget", json!({"identityId": "a"})).await.json().await.unwrap();
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].headers["webhook-id"], published[0]["id"].as_str().unwrap());
    assert_eq!(got[0].headers["hookgate-attempt"], "1");
}

#[actix_web::test]
async fn work_beyond_the_room_in_memory_waits_in_the_database_and_is_still_delivered_once() {
    let app = TestApp::spawn_with(|s| {
        s.workers = 1;
        s.max_in_flight = 1;
        s.poll_interval = Duration::from_millis(100);
    })
    .await;
    let sink = Sink::start();
    app.subscribe_url(&sink.url("/h")).await;
    // Room for 4 in memory: a batch of 30 is stored pending and claimed as room comes back.
    let published: Value = app.post("/trigger-invocations/v1/start", &batch(30)).await.json().await.unwrap();
    let expected: BTreeSet<String> =
        published.as_array().unwrap().iter().map(|e| e[0]["id"].as_str().unwrap().to_owned()).collect();
    let got = sink.wait_for(30, Duration::from_secs(20)).await;
    let ids: BTreeSet<String> = got.iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert_eq!(got.len(), 30, "each delivered once");
    assert_eq!(ids, expected);
}

#[actix_web::test]
async fn a_slow_subscriber_does_not_hold_up_a_fast_one() {
    let app = TestApp::spawn_with(|s| {
        s.workers = 1;
        s.max_in_flight = 16;
        s.max_in_flight_per_subscription = 2;
        s.poll_interval = Duration::from_millis(100);
    })
    .await;
    let slow = Sink::start();
    slow.always(Reply::status(200).delay(Duration::from_millis(1200)));
    let fast = Sink::start();
    app.subscribe_url(&slow.url("/slow")).await;
    app.subscribe_url(&fast.url("/fast")).await;
    for round in 0..2 {
        let body: Vec<Value> = (0..6)
            .map(|i| json!({"triggerId": "test:fire-and-forget", "input": {"identityId": format!("r{round}-{i}")}}))
            .collect();
        assert_eq!(app.post("/trigger-invocations/v1/start", &Value::Array(body)).await.status(), 200);
    }
    assert_eq!(fast.wait_for(12, Duration::from_secs(10)).await.len(), 12);
    assert!(slow.received().len() <= 4, "the slow one took its share only: {}", slow.received().len());
    // What the slow one could not start soon went back to the database, due later; the test's
    // clock moves at the pace of real time, so leases run out only as they would in production.
    let mut delivered = slow.received().len();
    for _ in 0..60 {
        app.advance(TimeDelta::milliseconds(500));
        delivered = slow.wait_for(12, Duration::from_millis(500)).await.len();
        if delivered == 12 {
            break;
        }
    }
    assert_eq!(delivered, 12);
    let ids: BTreeSet<String> = slow.received().iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert_eq!(ids.len(), 12, "none twice");
}

#[actix_web::test]
async fn a_first_try_success_writes_no_attempt_row_but_shows_in_the_attempt_log() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.script([Reply::status(500)]);
    sink.always(Reply::status(204));
    app.subscribe_url(&sink.url("/h")).await;
    let first: Value =
        app.publish("test:fire-and-forget", json!({"identityId": "a"})).await.json().await.unwrap();
    let retried = first[0]["id"].as_str().unwrap().to_owned();
    app.drain().await;
    let second: Value =
        app.publish("test:fire-and-forget", json!({"identityId": "b"})).await.json().await.unwrap();
    let clean = second[0]["id"].as_str().unwrap().to_owned();
    app.advance(TimeDelta::seconds(10));
    app.drain().await;
    for id in [&retried, &clean] {
        let parsed = id.parse().unwrap();
        let state = app.store.run_blocking(|c| invocations::get(c, &parsed)).unwrap().state;
        assert_eq!(state, InvocationState::Delivered);
    }
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM attempts"), 1, "only the failed attempt has a row");
    let detail: Value = app.get(&format!("/trigger-invocations/v1/{clean}")).await.json().await.unwrap();
    let log = detail["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{detail}");
    assert_eq!((log[0]["attempt"].clone(), log[0]["status"].clone()), (json!(1), json!(204)));
    let detail: Value = app.get(&format!("/trigger-invocations/v1/{retried}")).await.json().await.unwrap();
    let statuses: Vec<Value> =
        detail["attemptLog"].as_array().unwrap().iter().map(|a| a["status"].clone()).collect();
    assert_eq!(statuses, [json!(500), json!(204)]);

    // A replay keeps the earlier success in the log next to the new one.
    assert_eq!(app.post(&format!("/trigger-invocations/v1/{clean}/replay"), &json!({})).await.status(), 202);
    app.drain().await;
    let detail: Value = app.get(&format!("/trigger-invocations/v1/{clean}")).await.json().await.unwrap();
    let log = detail["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 2, "{detail}");
    assert!(log.iter().all(|a| a["status"] == 204), "{detail}");
}
