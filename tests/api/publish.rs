use chrono::TimeDelta;
use hookgate::domain::invocation::InvocationState;
use hookgate::store::invocations;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};

fn pending(app: &TestApp) -> i64 {
    app.store.run_blocking(|c| invocations::count_in_state(c, InvocationState::Pending)).unwrap()
}

#[actix_web::test]
async fn publishing_creates_one_invocation_per_enabled_matching_subscription() {
    let app = TestApp::spawn().await;
    let all = app.subscribe("test:fire-and-forget", json!({"name": "all"})).await;
    let matching = app
        .subscribe("test:fire-and-forget", json!({"name": "match", "filter": "$[?($.identityId == 'a')]"}))
        .await;
    app.subscribe("test:fire-and-forget", json!({"name": "other", "filter": "$[?($.identityId == 'b')]"}))
        .await;
    app.subscribe("test:fire-and-forget", json!({"name": "off", "enabled": false})).await;
    app.subscribe("idn:identity-created", json!({"name": "elsewhere"})).await;

    let response = app.publish("test:fire-and-forget", json!({"identityId": "a"})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let mut subs: Vec<&str> =
        body.as_array().unwrap().iter().map(|i| i["subscriptionId"].as_str().unwrap()).collect();
    subs.sort_unstable();
    let mut expected = vec![all["id"].as_str().unwrap(), matching["id"].as_str().unwrap()];
    expected.sort_unstable();
    assert_eq!(subs, expected);
    for invocation in body.as_array().unwrap() {
        assert_eq!(invocation["triggerId"], "test:fire-and-forget");
        assert!(uuid::Uuid::parse_str(invocation["id"].as_str().unwrap()).is_ok());
        assert!(!invocation["secret"].as_str().unwrap().is_empty());
        assert_eq!(invocation["contentJson"], json!({}));
    }
    assert_eq!(pending(&app), 2);

    let nobody: Value =
        app.publish("test:fire-and-forget", json!({"identityId": "z"})).await.json().await.unwrap();
    assert_eq!(nobody.as_array().unwrap().len(), 1, "only the unfiltered subscription");
}

#[actix_web::test]
async fn bad_publishes_get_clear_errors_and_store_nothing() {
    let app = TestApp::spawn().await;
    app.subscribe("test:fire-and-forget", json!({})).await;
    let text = error_text(app.publish("test:fire-and-forget", json!({"identityId": 7})).await, 422).await;
    assert!(text.contains("/identityId"), "{text}");
    let text = error_text(app.publish("test:fire-and-forget", json!({})).await, 422).await;
    assert!(text.contains("identityId"), "{text}");
    let text = error_text(app.publish("idn:nope", json!({})).await, 400).await;
    assert!(text.contains("does not name a trigger"), "{text}");
    let bad_shape = app
        .post("/trigger-invocations/v1/start", &json!({"triggerId": "test:fire-and-forget", "input": [1]}))
        .await;
    assert!(error_text(bad_shape, 400).await.contains("input"));
    let malformed =
        app.post_raw("/trigger-invocations/v1/start", "application/json", "{\"triggerId\":").await;
    error_text(malformed, 400).await;
    let not_json = app.post_raw("/trigger-invocations/v1/start", "text/plain", "hello").await;
    error_text(not_json, 415).await;
    let empty_batch = app.post("/trigger-invocations/v1/start", &json!([])).await;
    error_text(empty_batch, 400).await;

    let patch = json!([{"op": "replace", "path": "/enabled", "value": false}]);
    assert_eq!(app.patch("/triggers/v1/test:fire-and-forget", &patch).await.status(), 200);
    let text = error_text(app.publish("test:fire-and-forget", json!({"identityId": "a"})).await, 409).await;
    assert!(text.contains("disabled"), "{text}");

    let reader = app.token_for(&["sp:trigger-service-subscriptions:manage"]).await;
    let forbidden = app
        .http
        .post(app.url("/trigger-invocations/v1/start"))
        .bearer_auth(reader)
        .json(&json!({"triggerId": "test:fire-and-forget", "input": {"identityId": "a"}}))
        .send()
        .await
        .unwrap();
    assert!(error_text(forbidden, 403).await.contains("hookgate:events:publish"));
    assert_eq!(pending(&app), 0);
}

#[actix_web::test]
async fn an_oversized_publish_is_a_413() {
    let app = TestApp::spawn_with(|s| s.max_body_size = 4096).await;
    let big = json!({"triggerId": "test:fire-and-forget", "input": {"identityId": "x".repeat(8192)}});
    error_text(app.post("/trigger-invocations/v1/start", &big).await, 413).await;
}

#[actix_web::test]
async fn a_batch_publishes_every_event_or_none() {
    let app = TestApp::spawn().await;
    app.subscribe("test:fire-and-forget", json!({})).await;
    let batch = json!([
        {"triggerId": "test:fire-and-forget", "input": {"identityId": "a"}},
        {"triggerId": "test:fire-and-forget", "input": {"identityId": "b"}, "contentJson": {"n": 2}},
    ]);
    let body: Value = app.post("/trigger-invocations/v1/start", &batch).await.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert_eq!(body[1][0]["contentJson"], json!({"n": 2}));
    assert_eq!(pending(&app), 2);

    let broken = json!([
        {"triggerId": "test:fire-and-forget", "input": {"identityId": "c"}},
        {"triggerId": "test:fire-and-forget", "input": {"identityId": 3}},
    ]);
    let text = error_text(app.post("/trigger-invocations/v1/start", &broken).await, 422).await;
    assert!(text.starts_with("event 1:"), "{text}");
    assert_eq!(pending(&app), 2, "nothing of the failed batch was stored");
}

async fn send(app: &TestApp, key: &str, id: &str) -> reqwest::Response {
    app.http
        .post(app.url("/trigger-invocations/v1/start"))
        .bearer_auth(&app.token)
        .header("Idempotency-Key", key)
        .json(&json!({"triggerId": "test:fire-and-forget", "input": {"identityId": id}}))
        .send()
        .await
        .unwrap()
}

#[actix_web::test]
async fn an_idempotency_key_replays_the_first_answer_and_refuses_a_different_body() {
    let mut app = TestApp::spawn().await;
    app.subscribe("test:fire-and-forget", json!({})).await;
    let first = send(&app, "k-1", "a").await;
    assert_eq!(first.status(), 200);
    let first: Value = first.json().await.unwrap();
    let again = send(&app, "k-1", "a").await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(pending(&app), 1);

    let text = error_text(send(&app, "k-1", "b").await, 409).await;
    assert!(text.contains("Idempotency-Key"), "{text}");
    assert_eq!(pending(&app), 1);

    app.advance(TimeDelta::hours(25));
    app.token = app.token_for(&["sp:scopes:all"]).await;
    let after: Value = send(&app, "k-1", "b").await.json().await.unwrap();
    assert_ne!(after, first, "an expired key is forgotten");
    assert_eq!(pending(&app), 2);
}

#[actix_web::test]
async fn keyed_publishes_sent_together_store_each_key_once() {
    let app = TestApp::spawn().await;
    app.subscribe("test:fire-and-forget", json!({})).await;
    // 60 requests at once over 20 keys: each key three times, the third with another body.
    let keys: Vec<String> = (0..60).map(|n| format!("group-{}", n % 20)).collect();
    let sent =
        keys.iter().enumerate().map(|(n, key)| send(&app, key, if n >= 40 { "other" } else { "same" }));
    let answers = futures_util::future::join_all(sent).await;
    let mut by_key: std::collections::HashMap<usize, Vec<(u16, Option<Value>)>> =
        std::collections::HashMap::new();
    for (n, response) in answers.into_iter().enumerate() {
        let status = response.status().as_u16();
        let body = if status == 200 { Some(response.json::<Value>().await.unwrap()) } else { None };
        by_key.entry(n % 20).or_default().push((status, body));
    }
    assert_eq!(pending(&app), 20, "one event per key");
    for (key, answers) in by_key {
        let accepted: Vec<&Value> = answers.iter().filter_map(|(_, body)| body.as_ref()).collect();
        let refused = answers.iter().filter(|(status, _)| *status == 409).count();
        assert_eq!(accepted.len() + refused, 3, "key {key}: {answers:?}");
        assert!(
            accepted.windows(2).all(|w| w[0] == w[1]),
            "key {key}: every answer names the same invocation"
        );
    }
}

#[actix_web::test]
async fn a_publish_with_more_invocations_than_one_statement_takes_stores_every_one() {
    let app = TestApp::spawn().await;
    for n in 0..40 {
        app.subscribe("test:fire-and-forget", json!({"name": format!("s{n}")})).await;
    }
    let batch: Vec<Value> = (0..30)
        .map(|i| json!({"triggerId": "test:fire-and-forget", "input": {"identityId": format!("e{i}")}}))
        .collect();
    let response = app.post("/trigger-invocations/v1/start", &Value::Array(batch)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let per_event = body.as_array().unwrap();
    assert_eq!(per_event.len(), 30);
    assert!(per_event.iter().all(|list| list.as_array().unwrap().len() == 40), "{body}");
    let ids: std::collections::BTreeSet<&str> = per_event
        .iter()
        .flat_map(|list| list.as_array().unwrap())
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1200, "30 events to 40 subscriptions");
    assert_eq!(pending(&app), 1200);
}
