//! `HTTP_POLL` and `MONITOR` sources: fetched on their interval, each new item and each crossing
//! fired exactly once, across passes, restarts and instances.

use std::sync::Arc;

use chrono::TimeDelta;
use hookgate::domain::invocation::InvocationState;
use hookgate::store::invocations;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, error_text};
use crate::sink::{Reply, Sink};
use crate::sources::{TRIGGER, create_source};

fn pending(app: &TestApp) -> i64 {
    app.store.run_blocking(|c| invocations::count_in_state(c, InvocationState::Pending)).unwrap()
}

fn items(ids: &[u32]) -> Reply {
    let data: Vec<Value> = ids.iter().map(|id| json!({"id": id, "identityId": format!("u{id}")})).collect();
    Reply::status(200).header("Content-Type", "application/json").body(json!({"data": data}).to_string())
}

async fn poll_source(app: &TestApp, url: &str) -> Value {
    create_source(
        app,
        &json!({
            "id": "orders", "name": "orders", "type": "HTTP_POLL", "triggerId": TRIGGER,
            "pollConfig": {"url": url, "every": "5s", "itemsPath": "$.data[*]", "idPath": "$.id",
                           "headers": {"Authorization": "Bearer poll-token"}},
        }),
    )
    .await
}

#[actix_web::test]
async fn a_poll_fires_each_new_item_once_across_passes_and_restarts() {
    let app = TestApp::spawn().await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let sink = Sink::start();
    sink.script([items(&[1, 2])]);
    sink.always(items(&[1, 2, 3]));
    let created = poll_source(&app, &sink.url("/orders")).await;
    assert_eq!(created["pollConfig"]["headers"], Value::Null, "headers are write-only");
    assert_eq!(created["pollConfig"]["every"], "5s");

    assert_eq!(app.poller.run_once().await.unwrap(), 2);
    assert_eq!(app.poller.run_once().await.unwrap(), 0, "not due again before 5 s");
    assert_eq!(sink.received().len(), 1);
    assert_eq!(sink.received()[0].headers["authorization"], "Bearer poll-token");
    app.advance(TimeDelta::seconds(5));
    assert_eq!(app.poller.run_once().await.unwrap(), 1, "only item 3 is new");
    assert_eq!(pending(&app), 3);
    let listed: Value = app.get("/trigger-invocations/v1?sorters=created").await.json().await.unwrap();
    let inputs: Vec<&Value> =
        listed.as_array().unwrap().iter().map(|i| &i["startInvocationInput"]["input"]).collect();
    assert_eq!(
        inputs,
        [
            &json!({"id": 1, "identityId": "u1"}),
            &json!({"id": 2, "identityId": "u2"}),
            &json!({"id": 3, "identityId": "u3"})
        ]
    );

    let db = app.stop().await;
    let app = TestApp::spawn_on(db, |_| {}).await;
    app.advance(TimeDelta::seconds(30));
    assert_eq!(app.poller.run_once().await.unwrap(), 0, "a restart fires no old item");
    assert_eq!(pending(&app), 3);
    let source: Value = app.get("/sources/v1/orders").await.json().await.unwrap();
    assert_eq!(source["status"]["fired"], 3, "{source}");
}

#[actix_web::test]
async fn two_instances_fire_each_polled_item_and_each_crossing_once() {
    let db = Arc::new(TestDb::new());
    let one = TestApp::spawn_on(db.clone(), |_| {}).await;
    let two = TestApp::spawn_on(db, |_| {}).await;
    one.subscribe_url("http://127.0.0.1:9/never").await;
    let sink = Sink::start();
    sink.always(items(&[1, 2, 3, 4]));
    poll_source(&one, &sink.url("/orders")).await;
    let any = json!({"id": "test:any", "name": "Any", "type": "FIRE_AND_FORGET",
        "inputSchema": {"type": "object"}, "exampleInput": {}});
    assert_eq!(one.post("/triggers/v1", &any).await.status(), 201);
    one.subscribe_url_to("test:any", "http://127.0.0.1:9/never").await;
    let hot = Sink::start();
    hot.always(Reply::status(200).body(r#"{"v": 50}"#));
    create_source(
        &one,
        &json!({
            "id": "hot", "name": "hot", "type": "MONITOR", "triggerId": "test:any",
            "monitorConfig": {"url": hot.url("/v"), "every": "5s", "valuePath": "$.v", "above": 10},
        }),
    )
    .await;
    let mut fired = 0;
    for _ in 0..3 {
        let (a, b) = tokio::join!(one.poller.run_once(), two.poller.run_once());
        fired += a.unwrap() + b.unwrap();
        one.advance(TimeDelta::seconds(5));
        two.advance(TimeDelta::seconds(5));
    }
    assert_eq!(fired, 5, "four items and one crossing");
    assert_eq!(pending(&one), 5, "each item and the crossing once");
}

#[actix_web::test]
async fn a_monitor_fires_once_per_crossing_and_keeps_its_state_across_restarts() {
    let app = TestApp::spawn().await;
    let trigger = json!({"id": "test:cpu", "name": "CPU", "type": "FIRE_AND_FORGET",
        "inputSchema": {"type": "object", "required": ["state"]}, "exampleInput": {"state": "OK"}});
    assert_eq!(app.post("/triggers/v1", &trigger).await.status(), 201);
    app.subscribe_url_to("test:cpu", "http://127.0.0.1:9/never").await;
    let sink = Sink::start();
    let value = |v: f64| Reply::status(200).body(json!({"cpu": {"load": v}}).to_string());
    sink.script([value(5.0), value(15.0), value(16.0)]);
    sink.always(value(4.0));
    create_source(&app, &json!({
        "id": "cpu", "name": "cpu", "type": "MONITOR", "triggerId": "test:cpu",
        "monitorConfig": {"url": sink.url("/load"), "every": "2s", "valuePath": "$.cpu.load", "above": 10},
    }))
    .await;
    let mut fired = Vec::new();
    for _ in 0..3 {
        fired.push(app.poller.run_once().await.unwrap());
        app.advance(TimeDelta::seconds(2));
    }
    assert_eq!(fired, [0, 1, 0], "5 is fine, 15 crosses, 16 stays above");
    let db = app.stop().await;
    let app = TestApp::spawn_on(db, |_| {}).await;
    app.advance(TimeDelta::seconds(10));
    assert_eq!(app.poller.run_once().await.unwrap(), 1, "back under after the restart: the state was kept");
    let listed: Value = app.get("/trigger-invocations/v1?sorters=created").await.json().await.unwrap();
    let inputs: Vec<&Value> =
        listed.as_array().unwrap().iter().map(|i| &i["startInvocationInput"]["input"]).collect();
    assert_eq!(
        inputs,
        [
            &json!({"state": "ALERT", "value": 15.0, "previous": 5.0, "threshold": 10.0, "source": "cpu"}),
            &json!({"state": "OK", "value": 4.0, "previous": 16.0, "threshold": 10.0, "source": "cpu"}),
        ]
    );
}

#[actix_web::test]
async fn a_failing_fetch_is_shown_and_tried_again_at_the_next_interval() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.script([Reply::status(500), Reply::status(200).body("not json")]);
    sink.always(items(&[7]));
    poll_source(&app, &sink.url("/orders")).await;
    assert_eq!(app.poller.run_once().await.unwrap(), 0);
    let source: Value = app.get("/sources/v1/orders").await.json().await.unwrap();
    assert!(source["status"]["lastError"].as_str().unwrap().contains("answered 500"), "{source}");
    app.advance(TimeDelta::seconds(5));
    assert_eq!(app.poller.run_once().await.unwrap(), 0);
    let source: Value = app.get("/sources/v1/orders").await.json().await.unwrap();
    assert!(source["status"]["lastError"].as_str().unwrap().contains("did not answer JSON"), "{source}");
    app.advance(TimeDelta::seconds(5));
    assert_eq!(app.poller.run_once().await.unwrap(), 1);

    let guarded = create_source(
        &app,
        &json!({
            "id": "inside", "name": "inside", "type": "HTTP_POLL", "triggerId": TRIGGER,
            "pollConfig": {"url": "http://10.255.255.1/secrets", "every": "1s", "idPath": "$.id"},
        }),
    )
    .await;
    assert_eq!(guarded["type"], "HTTP_POLL");
    app.poller.run_once().await.unwrap();
    let source: Value = app.get("/sources/v1/inside").await.json().await.unwrap();
    assert!(source["status"]["lastError"].as_str().unwrap().contains("refused"), "the SSRF guard: {source}");
}

#[actix_web::test]
async fn bad_poll_and_monitor_settings_are_refused() {
    let app = TestApp::spawn().await;
    let poll =
        |config: Value| json!({"name": "p", "type": "HTTP_POLL", "triggerId": TRIGGER, "pollConfig": config});
    let cases = [
        (json!({"name": "p", "type": "HTTP_POLL", "triggerId": TRIGGER}), "pollConfig"),
        (poll(json!({"url": "http://127.0.0.1/x", "every": "500ms", "idPath": "$.id"})), "every"),
        (poll(json!({"url": "ftp://127.0.0.1/x", "every": "5s", "idPath": "$.id"})), "pollConfig.url"),
        (poll(json!({"url": "http://127.0.0.1/x", "every": "5s", "idPath": "$["})), "idPath"),
        (
            json!({"name": "m", "type": "MONITOR", "triggerId": TRIGGER,
                "monitorConfig": {"url": "http://127.0.0.1/x", "every": "5s", "valuePath": "$.v"}}),
            "above, below",
        ),
        (
            json!({"name": "m", "type": "MONITOR", "triggerId": TRIGGER,
                "monitorConfig": {"url": "http://127.0.0.1/x", "every": "5s", "valuePath": "$.v", "above": 1, "below": 5}}),
            "below",
        ),
        (
            json!({"name": "p", "type": "HTTP_POLL", "triggerId": TRIGGER, "routes": {"path": "$.t"},
                "pollConfig": {"url": "http://127.0.0.1/x", "every": "5s", "idPath": "$.id"}}),
            "routes",
        ),
        (
            json!({"name": "p", "type": "WEBHOOK", "triggerId": TRIGGER, "webhookConfig": {"verification": "NONE"},
                "pollConfig": {"url": "http://127.0.0.1/x", "every": "5s", "idPath": "$.id"}}),
            "only for a HTTP_POLL",
        ),
    ];
    for (body, expected) in cases {
        let text = error_text(app.post("/sources/v1", &body).await, 400).await;
        assert!(text.contains(expected), "{body}: {text}");
    }
}
