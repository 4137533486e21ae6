//! Chained triggers: a `TRIGGER` subscription publishes on another trigger when it is delivered.

use std::time::Duration;

use chrono::TimeDelta;
use hookgate::clock::Clock as _;
use hookgate::domain::invocation::{Attempt, InvocationState, Next};
use hookgate::store::events::Draft;
use hookgate::store::outcomes::{self, Effect, Outcome};
use hookgate::store::{invocations, queue, triggers};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};
use crate::sink::{Reply, Sink};

/// Creates a fire-and-forget trigger whose input needs the `required` fields.
pub async fn trigger(app: &TestApp, id: &str, required: &[&str]) {
    let example: serde_json::Map<String, Value> =
        required.iter().map(|f| ((*f).to_owned(), json!(1))).collect();
    let body = json!({"id": id, "name": id, "type": "FIRE_AND_FORGET",
        "inputSchema": {"type": "object", "required": required}, "exampleInput": example});
    let response = app.post("/triggers/v1", &body).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

fn chain_body(from: &str, to: &str, input_path: Option<&str>) -> Value {
    json!({"name": format!("{from} to {to}"), "triggerId": from, "type": "TRIGGER",
        "triggerConfig": {"triggerId": to, "inputPath": input_path}})
}

/// Creates a chained subscription and returns its body.
async fn chain(app: &TestApp, from: &str, to: &str, input_path: Option<&str>) -> Value {
    let response = app.post("/trigger-subscriptions/v1", &chain_body(from, to, input_path)).await;
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// Publishes `input` on `trigger`; returns the ids of the invocations it created.
async fn publish(app: &TestApp, trigger: &str, input: Value) -> Vec<String> {
    let body: Value = app.publish(trigger, input).await.json().await.unwrap();
    body.as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn detail(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/trigger-invocations/v1/{id}")).await.json().await.unwrap()
}

/// How many invocations `trigger` has.
async fn invocations_of(app: &TestApp, trigger: &str) -> usize {
    let path = format!("/trigger-invocations/v1?filters=triggerId%20eq%20%22{trigger}%22&count=true&limit=0");
    app.get(&path).await.headers()["x-total-count"].to_str().unwrap().parse().unwrap()
}

fn state(app: &TestApp, id: &str) -> InvocationState {
    let id = id.parse().unwrap();
    app.store.run_blocking(|c| invocations::get(c, &id)).unwrap().state
}

#[actix_web::test]
async fn a_chained_delivery_publishes_one_event_per_selected_item_and_sends_no_http() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.always(Reply::status(200));
    trigger(&app, "test:orders", &["batch"]).await;
    trigger(&app, "test:order", &["id"]).await;
    let created = chain(&app, "test:orders", "test:order", Some("$.batch")).await;
    assert_eq!(created["type"], "WORKFLOW", "{created}");
    assert_eq!(created["triggerConfig"], json!({"triggerId": "test:order", "inputPath": "$.batch"}));
    assert!(created.get("httpConfig").is_none(), "{created}");
    app.subscribe_url_to("test:order", &sink.url("/order")).await;

    let ids = publish(&app, "test:orders", json!({"batch": [{"id": 1}, {"id": 2}, {"id": 3}]})).await;
    assert_eq!(ids.len(), 1);
    app.drain().await;
    let received = sink.wait_for(3, Duration::from_secs(5)).await;
    let mut order_ids: Vec<i64> = received.iter().map(|r| r.json()["id"].as_i64().unwrap()).collect();
    order_ids.sort_unstable();
    assert_eq!(order_ids, [1, 2, 3]);
    assert!(received.iter().all(|r| r.path == "/order"), "only the target trigger's subscriber is called");
    let chained = detail(&app, &ids[0]).await;
    assert_eq!(chained["state"], "DELIVERED", "{chained}");
    let log = chained["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 1, "{chained}");
    let published: Value = serde_json::from_str(log[0]["response"].as_str().unwrap()).unwrap();
    assert_eq!(published["triggerId"], "test:order");
    assert_eq!(published["eventIds"].as_array().unwrap().len(), 3, "{published}");
    assert_eq!(published["published"], 3, "{published}");
    assert_eq!(invocations_of(&app, "test:order").await, 3);

    // An empty array publishes nothing; an item that does not fit the target's schema publishes
    // nothing either and ends dead with why; so does a path that selects nothing.
    let empty = publish(&app, "test:orders", json!({"batch": []})).await;
    let unfit = publish(&app, "test:orders", json!({"batch": [{"id": 4}, {"name": "no id"}]})).await;
    let wrong = publish(&app, "test:orders", json!({"batch": 7})).await;
    app.drain().await;
    assert_eq!(detail(&app, &empty[0]).await["state"], "DELIVERED");
    let unfit = detail(&app, &unfit[0]).await;
    assert_eq!(unfit["state"], "DEAD", "{unfit}");
    assert!(
        unfit["lastError"].as_str().unwrap().contains("item 1 does not match the input schema"),
        "{unfit}"
    );
    let wrong = detail(&app, &wrong[0]).await;
    assert!(wrong["lastError"].as_str().unwrap().contains("not a JSON object"), "{wrong}");
    assert_eq!(invocations_of(&app, "test:order").await, 3, "failed chains published nothing");
    assert_eq!(sink.received().len(), 3);

    // Without an inputPath the whole payload is the input.
    let whole = json!({"name": "whole", "triggerId": "test:order", "type": "TRIGGER",
        "triggerConfig": {"triggerId": "test:fire-and-forget"}});
    assert_eq!(app.post("/trigger-subscriptions/v1", &whole).await.status(), 201);
    app.subscribe_url_to("test:fire-and-forget", &sink.url("/whole")).await;
    publish(&app, "test:order", json!({"id": 9, "identityId": "x"})).await;
    app.drain().await;
    let all = sink.wait_for(5, Duration::from_secs(5)).await;
    let whole: Vec<_> = all.iter().filter(|r| r.path == "/whole").collect();
    assert_eq!(whole.len(), 1);
    assert_eq!(whole[0].json()["id"], 9);
}

#[actix_web::test]
async fn chained_subscriptions_read_back_list_patch_and_guard_their_target() {
    let app = TestApp::spawn().await;
    trigger(&app, "test:a", &[]).await;
    trigger(&app, "test:b", &[]).await;
    let created = chain(&app, "test:a", "test:b", None).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/trigger-subscriptions/v1/{id}");

    let listed: Value =
        app.get("/trigger-subscriptions/v1?filters=type%20eq%20%22WORKFLOW%22").await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["triggerConfig"]["triggerId"], "test:b");

    let ops = json!([{"op": "replace", "path": "/triggerConfig/inputPath", "value": "$.inner"}]);
    let patched = app.patch(&path, &ops).await;
    assert_eq!(patched.status(), 200);
    assert_eq!(patched.json::<Value>().await.unwrap()["triggerConfig"]["inputPath"], "$.inner");
    // What a read shows can be sent back as it is.
    let read: Value = app.get(&path).await.json().await.unwrap();
    let replaced = app.put(&path, &read).await;
    assert_eq!(replaced.status(), 200);
    assert_eq!(replaced.json::<Value>().await.unwrap()["triggerConfig"], read["triggerConfig"]);

    let text = error_text(app.delete("/triggers/v1/test:b").await, 409).await;
    assert!(text.contains("chained subscription"), "{text}");
    assert_eq!(app.delete(&path).await.status(), 204);
    assert_eq!(app.delete("/triggers/v1/test:b").await.status(), 204);
}

#[actix_web::test]
async fn a_chain_that_would_close_a_cycle_or_cannot_publish_is_refused_with_400() {
    let app = TestApp::spawn().await;
    for id in ["test:a", "test:b", "test:c"] {
        trigger(&app, id, &[]).await;
    }
    let text =
        error_text(app.post("/trigger-subscriptions/v1", &chain_body("test:a", "test:a", None)).await, 400)
            .await;
    assert!(text.contains("would close a cycle: test:a → test:a"), "{text}");
    chain(&app, "test:a", "test:b", None).await;
    let to_c = chain(&app, "test:b", "test:c", None).await;
    let text =
        error_text(app.post("/trigger-subscriptions/v1", &chain_body("test:c", "test:a", None)).await, 400)
            .await;
    assert!(text.contains("test:c → test:a → test:b → test:c"), "{text}");
    // Replacing a chain is checked too: b → a would close a → b → a.
    let path = format!("/trigger-subscriptions/v1/{}", to_c["id"].as_str().unwrap());
    let ops = json!([{"op": "replace", "path": "/triggerConfig/triggerId", "value": "test:a"}]);
    let text = error_text(app.patch(&path, &ops).await, 400).await;
    assert!(text.contains("cycle"), "{text}");

    let rr = json!({"id": "test:rr", "name": "rr", "type": "REQUEST_RESPONSE",
        "inputSchema": {"type": "object"}, "outputSchema": {"type": "object"}, "exampleInput": {}, "exampleOutput": {}});
    assert_eq!(app.post("/triggers/v1", &rr).await.status(), 201);
    let cases = [
        (chain_body("test:rr", "test:a", None), "REQUEST_RESPONSE"),
        (chain_body("test:c", "test:none", None), "'test:none' does not name a trigger"),
        (chain_body("test:c", "not a trigger id!", None), "triggerConfig.triggerId"),
        (chain_body("test:c", "test:a", Some("$[?(")), "triggerConfig.inputPath"),
        (json!({"name": "x", "triggerId": "test:c", "type": "TRIGGER"}), "triggerConfig: is required"),
        (
            json!({"name": "x", "triggerId": "test:c", "type": "TRIGGER", "triggerConfig": {}}),
            "triggerConfig.triggerId",
        ),
        (
            json!({"name": "x", "triggerId": "test:c", "type": "HTTP", "triggerConfig": {"triggerId": "test:a"},
                "httpConfig": {"url": "http://127.0.0.1:9/", "httpDispatchMode": "SYNC"}}),
            "triggerConfig",
        ),
        (
            json!({"name": "x", "triggerId": "test:c", "type": "TRIGGER", "triggerConfig": {"triggerId": "test:a"},
                "httpConfig": {"url": "http://127.0.0.1:9/", "httpDispatchMode": "SYNC"}}),
            "httpConfig",
        ),
    ];
    for (body, needle) in cases {
        let text = error_text(app.post("/trigger-subscriptions/v1", &body).await, 400).await;
        assert!(text.contains(needle), "{body}: {text}");
    }
    let listed: Value = app.get("/trigger-subscriptions/v1").await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "nothing refused was stored: {listed}");
}

#[actix_web::test]
async fn a_chain_deeper_than_eight_stops_with_a_recorded_reason() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.always(Reply::status(200));
    let ids: Vec<String> = (0..=9).map(|i| format!("test:link-{i}")).collect();
    for id in &ids {
        trigger(&app, id, &[]).await;
    }
    let mut links = Vec::new();
    for pair in ids.windows(2) {
        links.push(chain(&app, &pair[0], &pair[1], None).await["id"].as_str().unwrap().to_owned());
    }
    app.subscribe_url_to(&ids[8], &sink.url("/eighth")).await;
    app.subscribe_url_to(&ids[9], &sink.url("/ninth")).await;
    publish(&app, &ids[0], json!({"hop": 0})).await;
    app.drain().await;
    let received = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].path, "/eighth", "an event 8 links down a chain is delivered");
    assert_eq!(invocations_of(&app, &ids[9]).await, 0, "but it publishes no ninth link");
    let last = format!("/trigger-invocations/v1?filters=subscriptionId%20eq%20%22{}%22", links[8]);
    let last: Value = app.get(&last).await.json().await.unwrap();
    let last = detail(&app, last[0]["id"].as_str().unwrap()).await;
    assert_eq!(last["state"], "DEAD", "{last}");
    assert!(last["lastError"].as_str().unwrap().contains("deeper than 8"), "{last}");
}

#[actix_web::test]
async fn a_chained_delivery_publishes_only_while_its_lease_is_held() {
    let app = TestApp::spawn().await;
    trigger(&app, "test:a", &[]).await;
    trigger(&app, "test:b", &[]).await;
    chain(&app, "test:a", "test:b", None).await;
    app.subscribe_url_to("test:b", "http://127.0.0.1:9/never").await;
    let ids = publish(&app, "test:a", json!({"n": 1})).await;
    let lease = Duration::from_secs(30);
    let now = app.clock.now();
    let first = app.store.run_blocking(move |c| queue::claim(c, "worker-a", now, lease, 10)).unwrap();
    assert_eq!(first.len(), 1);
    app.advance(TimeDelta::seconds(31));
    let now = app.clock.now();
    let second = app.store.run_blocking(move |c| queue::claim(c, "worker-b", now, lease, 10)).unwrap();
    assert_eq!(second.len(), 1, "the expired lease is taken over");

    let target = app.store.run_blocking(|c| triggers::get(c, &"test:b".parse().unwrap())).unwrap();
    let outcome = |attempt: i32| Outcome {
        invocation: ids[0].parse().unwrap(),
        attempt: Attempt { attempt, started: now, duration_ms: 0, status: None, response: None, error: None },
        next: Next::Delivered,
        effect: Effect::Publish(vec![Draft::new(&target, &serde_json::Map::new(), &json!({}))]),
        refused: false,
        subscription: None,
    };
    let late = outcome(1);
    app.store.run_blocking(move |c| outcomes::record(c, "worker-a", &[late], now)).unwrap();
    assert_eq!(invocations_of(&app, "test:b").await, 0, "the worker that lost its lease published nothing");
    assert_eq!(state(&app, &ids[0]), InvocationState::InFlight);
    let held = outcome(2);
    app.store.run_blocking(move |c| outcomes::record(c, "worker-b", &[held], now)).unwrap();
    assert_eq!(invocations_of(&app, "test:b").await, 1);
    assert_eq!(state(&app, &ids[0]), InvocationState::Delivered);
}

#[actix_web::test]
async fn a_test_invocation_of_a_chained_subscription_checks_the_chain_and_publishes_nothing() {
    let app = TestApp::spawn().await;
    trigger(&app, "test:a", &["items"]).await;
    trigger(&app, "test:b", &["id"]).await;
    chain(&app, "test:a", "test:b", Some("$.items")).await;
    let body = json!({"triggerId": "test:a", "input": {"items": [{"id": 1}, {"id": 2}]}, "contentJson": {}});
    let response = app.post("/trigger-invocations/v1/test", &body).await;
    assert!(response.status().is_success(), "{}", response.status());
    app.drain().await;
    let listed: Value = app
        .get("/trigger-invocations/v1?filters=triggerId%20eq%20%22test%3Aa%22")
        .await
        .json()
        .await
        .unwrap();
    let tested = detail(&app, listed[0]["id"].as_str().unwrap()).await;
    assert_eq!(tested["state"], "DELIVERED", "{tested}");
    let answer: Value = serde_json::from_str(tested["attemptLog"][0]["response"].as_str().unwrap()).unwrap();
    assert_eq!(answer["wouldPublish"], 2, "{answer}");
    assert_eq!(invocations_of(&app, "test:b").await, 0);
}

#[actix_web::test]
async fn the_running_dispatcher_delivers_what_a_chain_published_without_waiting_for_its_poll() {
    // A poll interval far longer than the wait: only the wake-up after recording can deliver in time.
    let app = TestApp::spawn_with(|s| {
        s.workers = 1;
        s.poll_interval = Duration::from_secs(30);
    })
    .await;
    let sink = Sink::start();
    sink.always(Reply::status(200));
    trigger(&app, "test:a", &["items"]).await;
    trigger(&app, "test:b", &["id"]).await;
    chain(&app, "test:a", "test:b", Some("$.items")).await;
    app.subscribe_url_to("test:b", &sink.url("/b")).await;
    for n in 0..5 {
        publish(&app, "test:a", json!({"items": [{"id": n * 2}, {"id": n * 2 + 1}]})).await;
    }
    let received = sink.wait_for(10, Duration::from_secs(5)).await;
    let mut ids: Vec<i64> = received.iter().map(|r| r.json()["id"].as_i64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
}
