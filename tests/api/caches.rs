//! What an instance keeps in memory (triggers as publishing checks input against them,
//! subscriptions as its dispatcher delivers to them) and how it learns that another instance on
//! the same database changed them. Each instance keeps them for a minute at most, so a change seen
//! within seconds came through the revisions table (and, on PostgreSQL, its notification).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::sink::{Received, Sink};

/// Polls `check` until it holds, failing after `within`.
async fn soon(within: Duration, what: &str, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let since = Instant::now();
    while !check().await {
        assert!(since.elapsed() < within, "{what}: not seen after {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    since.elapsed()
}

#[actix_web::test]
async fn a_trigger_changed_by_another_instance_is_checked_anew_by_this_one_within_a_second() {
    let this = TestApp::spawn().await;
    let other = TestApp::spawn_on(this.db.clone(), |_| {}).await;
    let before = this.publish("test:fire-and-forget", json!({"identityId": "a"})).await;
    assert_eq!(before.status(), 200, "{}", before.text().await.unwrap());
    // A second publish is checked against the trigger kept in memory.
    assert_eq!(this.publish("test:fire-and-forget", json!({"identityId": "b"})).await.status(), 200);

    let mut trigger: Value = other.get("/triggers/v1/test:fire-and-forget").await.json().await.unwrap();
    trigger["inputSchema"] = json!({"type": "object", "required": ["identityId", "tenant"]});
    trigger["exampleInput"] = json!({"identityId": "e", "tenant": "t"});
    let replaced = other.put("/triggers/v1/test:fire-and-forget", &trigger).await;
    assert_eq!(replaced.status(), 200, "{}", replaced.text().await.unwrap());

    let took = soon(Duration::from_secs(2), "the new input schema", async || {
        this.publish("test:fire-and-forget", json!({"identityId": "c"})).await.status() == 422
    })
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    let ok = this.publish("test:fire-and-forget", json!({"identityId": "d", "tenant": "t"})).await;
    assert_eq!(ok.status(), 200);
}

/// A delivering instance and another on its database, a subscription of the first to `path` of
/// a local subscriber, and its first delivery.
async fn delivering_pair(path: &str) -> (TestApp, TestApp, Sink, String, Received) {
    let this = TestApp::spawn_with(|s| s.workers = 1).await;
    let other = TestApp::spawn_on(this.db.clone(), |_| {}).await;
    let sink = Sink::start();
    let subscription = this.subscribe_url(&sink.url(path)).await;
    let id = subscription["id"].as_str().unwrap().to_owned();
    this.publish("test:fire-and-forget", json!({"identityId": "a"})).await;
    let first = sink.wait_for(1, Duration::from_secs(5)).await.remove(0);
    (this, other, sink, id, first)
}

/// Publishes one event at a time until the latest delivery passes `check`; how long it took.
async fn deliver_until(
    this: &TestApp,
    sink: &Sink,
    what: &str,
    check: impl Fn(&Received) -> bool,
) -> Duration {
    let mut published = sink.received().len();
    soon(Duration::from_secs(2), what, async || {
        published += 1;
        this.publish("test:fire-and-forget", json!({"identityId": "b"})).await;
        let got = sink.wait_for(published, Duration::from_secs(2)).await;
        got.last().is_some_and(&check)
    })
    .await
}

#[actix_web::test]
async fn a_subscription_moved_by_another_instance_is_delivered_to_its_new_url_within_a_second() {
    let (this, other, sink, id, first) = delivering_pair("/old").await;
    assert_eq!(first.path, "/old");

    let moved = other
        .patch(
            &format!("/trigger-subscriptions/v1/{id}"),
            &json!([{"op": "replace", "path": "/httpConfig/url", "value": sink.url("/new")}]),
        )
        .await;
    assert_eq!(moved.status(), 200, "{}", moved.text().await.unwrap());

    let took = deliver_until(&this, &sink, "the new url", |r| r.path == "/new").await;
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[actix_web::test]
async fn a_secret_rotated_by_another_instance_signs_the_next_deliveries_of_this_one() {
    let (this, other, sink, id, first) = delivering_pair("/h").await;
    let signatures = |r: &Received| r.headers["webhook-signature"].split(' ').count();
    assert_eq!(signatures(&first), 1, "one secret, one signature");

    let rotated = other.post(&format!("/trigger-subscriptions/v1/{id}/rotate-secret"), &json!({})).await;
    assert_eq!(rotated.status(), 200, "{}", rotated.text().await.unwrap());

    deliver_until(&this, &sink, "the rotated secret", |r| signatures(r) == 2).await;
}

#[actix_web::test]
async fn a_publish_right_after_another_instance_subscribes_reaches_the_new_subscription() {
    let this = TestApp::spawn().await;
    let other = TestApp::spawn_on(this.db.clone(), |_| {}).await;
    let subscribed = |body: &Value| -> Vec<String> {
        body.as_array().unwrap().iter().map(|i| i["subscriptionId"].as_str().unwrap().to_owned()).collect()
    };
    let first = this.subscribe_url("http://127.0.0.1:9/first").await;
    for n in 0..3 {
        // Publishing keeps the trigger's subscribers.
        let body: Value = this
            .publish("test:fire-and-forget", json!({"identityId": format!("a{n}")}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(subscribed(&body), [first["id"].as_str().unwrap()]);
    }
    for round in 0..5 {
        let added = other.subscribe_url(&format!("http://127.0.0.1:9/added-{round}")).await;
        // No pause: the publish checks that the subscribers it kept are still current.
        let body: Value = this
            .publish("test:fire-and-forget", json!({"identityId": format!("b{round}")}))
            .await
            .json()
            .await
            .unwrap();
        let got = subscribed(&body);
        assert_eq!(got.len(), round + 2, "{got:?}");
        assert!(got.iter().any(|id| id == added["id"].as_str().unwrap()), "{got:?}");
    }
}
