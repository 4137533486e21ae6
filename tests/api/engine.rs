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
    // Room for 16 in memory: a batch of 30 is stored pending beyond it and claimed as room comes back.
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

#[derive(QueryableByName)]
struct Input {
    #[diesel(sql_type = diesel::sql_types::Text)]
    input: String,
}

#[actix_web::test]
async fn publishes_that_arrive_together_each_get_their_own_invocations_and_one_refused_leaves_the_others() {
    let app = TestApp::spawn_with(|s| s.workers = 0).await;
    app.subscribe_url("http://127.0.0.1:9/h").await;
    // The database refuses one event: the group it was written with fails, and the others are
    // written again without it.
    let refuse = match app.store.backend() {
        hookgate::store::Backend::Sqlite => {
            "CREATE TRIGGER refuse_marked BEFORE INSERT ON events WHEN NEW.input LIKE '%refuse%' \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
        }
        hookgate::store::Backend::Postgres => {
            "CREATE FUNCTION refuse_marked() RETURNS trigger AS $$ BEGIN IF NEW.input LIKE '%refuse%' THEN \
             RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER refuse_marked BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_marked()"
        }
    };
    app.store
        .run_blocking(|c| diesel::connection::SimpleConnection::batch_execute(c, refuse).map_err(Into::into))
        .unwrap();
    let names: Vec<String> =
        (0..40).map(|i| if i == 7 { "refuse".into() } else { format!("e{i}") }).collect();
    let answers = futures_util::future::join_all(
        names.iter().map(|name| app.publish("test:fire-and-forget", json!({"identityId": name}))),
    )
    .await;
    for (name, answer) in names.iter().zip(answers) {
        if name == "refuse" {
            assert!(!answer.status().is_success(), "the refused event is not accepted");
            continue;
        }
        assert_eq!(answer.status(), 200, "{name}");
        let body: Value = answer.json().await.unwrap();
        let id = body[0]["id"].as_str().unwrap().to_owned();
        let Input { input } = app
            .store
            .run_blocking(move |c| {
                diesel::sql_query(
                    "SELECT e.input AS input FROM invocations i JOIN events e ON e.id = i.event_id WHERE i.id = ",
                )
                .sql(if app_is_pg(c) { "$1" } else { "?" })
                .bind::<diesel::sql_types::Text, _>(id)
                .get_result::<Input>(c)
                .map_err(Into::into)
            })
            .unwrap();
        let stored: Value = serde_json::from_str(&input).unwrap();
        assert_eq!(stored["identityId"], name.as_str(), "each answer names its own event's invocation");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM events"), 39);
    assert_eq!(count(&app, "SELECT COUNT(*) AS n FROM invocations"), 39);
}

fn app_is_pg(c: &mut hookgate::store::AnyConnection) -> bool {
    matches!(c, hookgate::store::AnyConnection::Postgresql(_))
}

#[actix_web::test]
async fn on_postgres_work_published_by_one_instance_wakes_another_at_once() {
    let publisher = TestApp::spawn_with(|s| s.workers = 0).await;
    if publisher.store.backend() != hookgate::store::Backend::Postgres {
        // SQLite has one process to tell, which its own publishes wake directly.
        return;
    }
    // The delivering instance looks for work on its own once a minute: a delivery within
    // seconds came through its listener.
    let deliverer = TestApp::spawn_on(publisher.db.clone(), |s| {
        s.workers = 1;
        s.poll_interval = Duration::from_secs(60);
    })
    .await;
    let sink = Sink::start();
    publisher.subscribe_url(&sink.url("/h")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    publisher.publish("test:fire-and-forget", json!({"identityId": "a"})).await;
    let got = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1, "delivered by the other instance");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    drop(deliverer);
}
