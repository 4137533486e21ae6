//! Ordered delivery: per subscription or per key, in publish order, across retries and instances.

use std::collections::{BTreeMap, BTreeSet};

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};
use crate::sink::{Received, Sink};

/// One in five first attempts fails, chosen by the invocation id (so at random, but the same on
/// every look).
fn flaky(request: &Received) -> u16 {
    let id = &request.headers["webhook-id"];
    let first = request.headers["hookgate-attempt"] == "1";
    let pick = id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    if first && pick % 5 == 0 { 500 } else { 204 }
}

/// Drains both instances at once until nothing more is due, then moves time past the retries.
async fn deliver_everything(first: &TestApp, second: &TestApp, expected: usize, sink: &Sink) {
    for _ in 0..50 {
        tokio::join!(first.drain(), second.drain());
        let delivered: BTreeSet<String> = sink
            .received()
            .iter()
            .filter(|r| flaky(r) == 204)
            .map(|r| r.headers["webhook-id"].clone())
            .collect();
        if delivered.len() == expected {
            return;
        }
        first.advance(TimeDelta::seconds(10));
        second.advance(TimeDelta::seconds(10));
    }
}

#[actix_web::test]
async fn keyed_streams_are_delivered_in_publish_order_across_retries_and_two_instances() {
    let first = TestApp::spawn().await;
    let second = TestApp::spawn_on(first.db.clone(), |_| {}).await;
    let sink = Sink::start();
    sink.decide(flaky);
    let sub = first
        .subscribe(
            "test:fire-and-forget",
            json!({"httpConfig": {"url": sink.url("/ordered"), "httpDispatchMode": "SYNC"},
                   "ordering": "KEY", "orderingKey": "$.identityId"}),
        )
        .await;
    assert_eq!((sub["ordering"].as_str(), sub["orderingKey"].as_str()), (Some("KEY"), Some("$.identityId")));
    // 1,000 events over 10 keys, published in one batch: publish order is the batch order.
    let events: Vec<Value> = (0..1000)
        .map(|seq| {
            json!({"triggerId": "test:fire-and-forget",
                   "input": {"identityId": format!("key-{}", seq % 10), "seq": seq}})
        })
        .collect();
    let response = first.post("/trigger-invocations/v1/start", &Value::Array(events)).await;
    assert_eq!(response.status(), 200);
    deliver_everything(&first, &second, 1000, &sink).await;

    let mut per_key: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for request in sink.received().iter().filter(|r| flaky(r) == 204) {
        if seen.insert(request.headers["webhook-id"].clone()) {
            let body = request.json();
            per_key
                .entry(body["identityId"].as_str().unwrap().to_owned())
                .or_default()
                .push(body["seq"].as_u64().unwrap());
        }
    }
    assert_eq!(seen.len(), 1000, "nothing lost");
    assert_eq!(per_key.len(), 10);
    for (key, seqs) in &per_key {
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        assert_eq!(seqs, &sorted, "{key} was received out of publish order");
        assert_eq!(seqs.len(), 100);
    }
    let failed_first = sink.received().iter().filter(|r| flaky(r) == 500).count();
    assert!(failed_first > 100, "the subscriber failed about a fifth of first attempts ({failed_first})");
}

#[actix_web::test]
async fn a_subscription_ordered_as_a_whole_sends_one_at_a_time_while_an_unordered_one_does_not_wait() {
    let app = TestApp::spawn().await;
    let ordered = Sink::start();
    ordered.decide(|r| if r.json()["seq"] == 0 && r.headers["hookgate-attempt"] == "1" { 503 } else { 204 });
    let free = Sink::start();
    app.subscribe(
        "test:fire-and-forget",
        json!({"httpConfig": {"url": ordered.url("/o"), "httpDispatchMode": "SYNC"}, "ordering": "SUBSCRIPTION"}),
    )
    .await;
    app.subscribe_url(&free.url("/f")).await;
    let events: Vec<Value> = (0..5)
        .map(|seq| json!({"triggerId": "test:fire-and-forget", "input": {"identityId": "x", "seq": seq}}))
        .collect();
    app.post("/trigger-invocations/v1/start", &Value::Array(events)).await;
    app.drain().await;
    assert_eq!(free.received().len(), 5, "the unordered subscription got everything at once");
    assert_eq!(ordered.received().len(), 1, "the first failed, so the rest wait behind its retry");
    app.advance(TimeDelta::seconds(10));
    app.drain().await;
    let seqs: Vec<u64> = ordered.received().iter().map(|r| r.json()["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [0, 0, 1, 2, 3, 4]);
}

#[actix_web::test]
async fn ordering_by_key_needs_a_valid_key() {
    let app = TestApp::spawn().await;
    let base = json!({"name": "o", "triggerId": "test:fire-and-forget", "type": "HTTP",
                      "httpConfig": {"url": "http://127.0.0.1:9/o", "httpDispatchMode": "SYNC"}});
    let mut no_key = base.clone();
    no_key["ordering"] = json!("KEY");
    let text = error_text(app.post("/trigger-subscriptions/v1", &no_key).await, 400).await;
    assert!(text.contains("orderingKey"), "{text}");
    let mut bad_key = no_key.clone();
    bad_key["orderingKey"] = json!("$[?(");
    let text = error_text(app.post("/trigger-subscriptions/v1", &bad_key).await, 400).await;
    assert!(text.contains("orderingKey"), "{text}");
    let mut unknown = base.clone();
    unknown["ordering"] = json!("SOMETIMES");
    let text = error_text(app.post("/trigger-subscriptions/v1", &unknown).await, 400).await;
    assert!(text.contains("ordering"), "{text}");
    let plain: Value = app.post("/trigger-subscriptions/v1", &base).await.json().await.unwrap();
    assert!(plain.get("ordering").is_none(), "unordered subscriptions read as SailPoint's: {plain}");
}
