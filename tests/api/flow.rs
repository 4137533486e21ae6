//! Per-subscription flow control, run by real `hookgate serve` processes: `rateLimit` and
//! `maxInFlight` hold across two instances on one database, a 429's `Retry-After` pauses the
//! whole subscription and its rate grows back, and a slow subscriber never delays a fast one.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, error_text};
use crate::resilience::Server;
use crate::sink::{Reply, Sink};

/// Publishes one event through `server` for `test:fire-and-forget`, with `id` as its identity.
async fn publish(app: &TestApp, server: &Server, id: &str) {
    let response = app
        .http
        .post(format!("{}/trigger-invocations/v1/start", server.url))
        .bearer_auth(&app.token)
        .json(&json!({"triggerId": "test:fire-and-forget", "input": {"identityId": id}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn identity(r: &crate::sink::Received) -> String {
    r.json()["identityId"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn rate_limit_and_max_in_flight_are_subscription_fields_checked_on_the_way_in() {
    let app = TestApp::spawn().await;
    let created = app.subscribe("test:fire-and-forget", json!({"rateLimit": 2.5, "maxInFlight": 3})).await;
    let id = created["id"].as_str().unwrap();
    let read: Value = app.get(&format!("/trigger-subscriptions/v1/{id}")).await.json().await.unwrap();
    assert_eq!(
        (&read["rateLimit"], &read["maxInFlight"], &read["currentRate"]),
        (&json!(2.5), &json!(3), &json!(2.5))
    );

    let ops = json!([{"op": "replace", "path": "/rateLimit", "value": 10}, {"op": "remove", "path": "/maxInFlight"}]);
    let patched: Value =
        app.patch(&format!("/trigger-subscriptions/v1/{id}"), &ops).await.json().await.unwrap();
    assert_eq!((&patched["rateLimit"], &patched["currentRate"]), (&json!(10.0), &json!(10.0)));
    assert!(patched.get("maxInFlight").is_none(), "{patched}");

    let unlimited = app.subscribe("test:fire-and-forget", json!({})).await;
    assert!(unlimited.get("rateLimit").is_none() && unlimited.get("currentRate").is_none(), "{unlimited}");

    for (extra, field) in [
        (json!({"rateLimit": 0}), "rateLimit"),
        (json!({"rateLimit": -1.5}), "rateLimit"),
        (json!({"rateLimit": 1e9}), "rateLimit"),
        (json!({"maxInFlight": 0}), "maxInFlight"),
    ] {
        let mut body = json!({
            "name": "bad", "triggerId": "test:fire-and-forget", "type": "HTTP",
            "httpConfig": {"url": "http://127.0.0.1:9/hook", "httpDispatchMode": "SYNC"},
        });
        crate::helpers::merge(&mut body, extra.clone());
        let text = error_text(app.post("/trigger-subscriptions/v1", &body).await, 400).await;
        assert!(text.starts_with(field), "{extra}: {text}");
    }
    let mut body = json!({
        "name": "bad", "triggerId": "test:fire-and-forget", "type": "HTTP",
        "httpConfig": {"url": "http://127.0.0.1:9/hook", "httpDispatchMode": "SYNC"}, "maxInFlight": -2,
    });
    error_text(app.post("/trigger-subscriptions/v1", &body).await, 400).await;
    body["maxInFlight"] = json!("many");
    error_text(app.post("/trigger-subscriptions/v1", &body).await, 400).await;
}

#[actix_web::test]
async fn a_rate_limit_holds_across_two_instances() {
    let db = Arc::new(TestDb::new());
    let (first, second) = (Server::start(&db), Server::start(&db));
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    let sink = Sink::start();
    app.subscribe(
        "test:fire-and-forget",
        json!({"httpConfig": {"url": sink.url("/h"), "httpDispatchMode": "SYNC"}, "rateLimit": 5}),
    )
    .await;
    for i in 0..20 {
        publish(&app, if i % 2 == 0 { &first } else { &second }, &format!("r{i}")).await;
    }
    let received = sink.wait_for(20, Duration::from_secs(30)).await;
    assert_eq!(received.len(), 20);
    let mut at: Vec<Instant> = received.iter().map(|r| r.at).collect();
    at.sort();
    let span = at[19] - at[0];
    assert!(span >= Duration::from_millis(3400), "20 starts at 5/s take 3.8 s; they took {span:?}");
    for (i, start) in at.iter().enumerate() {
        let within = at[i..].iter().take_while(|t| **t - *start < Duration::from_secs(1)).count();
        assert!(within <= 6, "{within} requests within a second of request {i}");
    }
    let mut ids: Vec<String> = received.iter().map(identity).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "each delivered once");
}

#[actix_web::test]
async fn max_in_flight_holds_across_two_instances() {
    let db = Arc::new(TestDb::new());
    let (first, second) = (Server::start(&db), Server::start(&db));
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    let sink = Sink::start();
    sink.always(Reply::status(200).delay(Duration::from_millis(300)));
    app.subscribe(
        "test:fire-and-forget",
        json!({"httpConfig": {"url": sink.url("/h"), "httpDispatchMode": "SYNC"}, "maxInFlight": 2}),
    )
    .await;
    for i in 0..12 {
        publish(&app, if i % 2 == 0 { &first } else { &second }, &format!("m{i}")).await;
    }
    let received = sink.wait_for(12, Duration::from_secs(30)).await;
    assert_eq!(received.len(), 12);
    assert_eq!(sink.most_at_once(), 2, "two at a time between both instances, never more");
}

/// The subscription as `server` shows it now (the test app's own clock stands still).
async fn current(app: &TestApp, server: &Server, path: &str) -> Value {
    let response =
        app.http.get(format!("{}{path}", server.url)).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[actix_web::test]
async fn a_429_pauses_the_whole_subscription_for_its_retry_after_and_the_rate_grows_back() {
    let db = Arc::new(TestDb::new());
    let server = Server::start_with(&db, &[("HOOKGATE_RETRY_SCHEDULE", "100ms,100ms")]);
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    let sink = Sink::start();
    sink.script([Reply::status(429).header("Retry-After", "2")]);
    let created = app
        .subscribe(
            "test:fire-and-forget",
            json!({"httpConfig": {"url": sink.url("/h"), "httpDispatchMode": "SYNC"}, "rateLimit": 20}),
        )
        .await;
    let path = format!("/trigger-subscriptions/v1/{}", created["id"].as_str().unwrap());
    let rate = |v: &Value| v["currentRate"].as_f64().unwrap_or_else(|| panic!("no currentRate: {v}"));
    assert!((rate(&current(&app, &server, &path).await) - 20.0).abs() < 1e-9, "the limit at first");
    publish(&app, &server, "first").await;
    let pushed_back = sink.wait_for(1, Duration::from_secs(10)).await[0].at;
    let mut braked = current(&app, &server, &path).await;
    while rate(&braked) >= 20.0 && pushed_back.elapsed() < Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        braked = current(&app, &server, &path).await;
    }
    assert!(rate(&braked) <= 10.0, "halved at least: {braked}");
    for i in 0..5 {
        publish(&app, &server, &format!("later{i}")).await;
    }
    let received = sink.wait_for(7, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 7, "the retry and the five later events");
    for r in &received[1..] {
        let after = r.at - pushed_back;
        assert!(after >= Duration::from_millis(1900), "{} was sent {after:?} after the 429", identity(r));
    }
    let slowed = rate(&current(&app, &server, &path).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = rate(&current(&app, &server, &path).await);
    assert!(grown > slowed || (grown - 20.0).abs() < 1e-9, "the rate grows back: {slowed} then {grown}");
    assert!(slowed < 20.0, "still braked right after the pause: {slowed}");
}

#[actix_web::test]
async fn a_ten_second_subscriber_does_not_delay_a_fast_one() {
    let db = Arc::new(TestDb::new());
    let server =
        Server::start_with(&db, &[("HOOKGATE_DELIVERY_TIMEOUT", "15s"), ("HOOKGATE_BATCH_SIZE", "100")]);
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    let (slow, fast) = (Sink::start(), Sink::start());
    slow.always(Reply::status(200).delay(Duration::from_secs(10)));
    for sink in [&slow, &fast] {
        app.subscribe(
            "test:fire-and-forget",
            json!({"httpConfig": {"url": sink.url("/h"), "httpDispatchMode": "SYNC"}}),
        )
        .await;
    }
    let mut published = HashMap::new();
    for i in 0..100 {
        let id = format!("f{i}");
        publish(&app, &server, &id).await;
        published.insert(id, Instant::now());
    }
    let received = fast.wait_for(100, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 100);
    let mut latencies: Vec<Duration> =
        received.iter().map(|r| r.at.saturating_duration_since(published[&identity(r)])).collect();
    latencies.sort();
    let p99 = latencies[98];
    assert!(p99 < Duration::from_millis(500), "the fast subscriber's p99 is {p99:?}");
    assert!(slow.received().len() >= 60, "the slow one was being sent to meanwhile");
}
