//! `REQUEST_RESPONSE` triggers: SYNC answers, ASYNC and DYNAMIC callbacks, deadlines, and
//! producers that wait for the output.

use std::time::Duration;

use chrono::TimeDelta;
use hookgate::domain::invocation::InvocationState;
use hookgate::domain::invocation::{DEADLINE_PASSED, Next};
use hookgate::store::invocations;
use hookgate::store::outcomes::{self, Outcome};
use hookgate::store::queue;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};
use crate::sink::{Reply, Sink};

const TRIGGER: &str = "test:request-response";

async fn subscribe(app: &TestApp, sink: &Sink, mode: &str, deadline: &str) -> Value {
    app.subscribe(
        TRIGGER,
        json!({
            "httpConfig": {"url": sink.url("/decide"), "httpDispatchMode": mode},
            "responseDeadline": deadline,
        }),
    )
    .await
}

/// Publishes one event; returns its invocation (`id`, `secret`, ...).
async fn publish(app: &TestApp) -> Value {
    let response = app.publish(TRIGGER, json!({"identityId": "u1"})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body[0].clone()
}

async fn detail(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/trigger-invocations/v1/{id}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// An app with an ASYNC subscriber (answering 200 `{}`) that has acknowledged one invocation.
async fn acknowledged(deadline: &str) -> (TestApp, Sink, Value) {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.always(Reply::status(200).body("{}"));
    subscribe(&app, &sink, "ASYNC", deadline).await;
    let invocation = publish(&app).await;
    app.drain().await;
    (app, sink, invocation)
}

/// Calls `complete` the way SailPoint's example subscriber does: no Authorization header.
async fn complete(app: &TestApp, id: &str, body: &Value) -> reqwest::Response {
    app.http.post(app.url(&format!("/trigger-invocations/v1/{id}/complete"))).json(body).send().await.unwrap()
}

#[actix_web::test]
async fn a_sync_answer_is_the_output_once_it_matches_the_output_schema() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.always(Reply::status(200).body(r#"{"approved": true}"#));
    subscribe(&app, &sink, "SYNC", "PT1H").await;
    let invocation = publish(&app).await;
    app.drain().await;

    let sent = sink.received();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].json(), json!({"identityId": "u1"}), "SYNC bodies carry no _metadata");
    let id = invocation["id"].as_str().unwrap();
    let got = detail(&app, id).await;
    assert_eq!(got["state"], "DELIVERED");
    assert_eq!(got["completeInvocationInput"]["output"], json!({"approved": true}));
    assert!(got["completed"].is_string());
    let statuses: Value = app.get("/trigger-invocations/v1/status").await.json().await.unwrap();
    let status = statuses.as_array().unwrap().iter().find(|s| s["id"] == id).unwrap().clone();
    assert_eq!(status["completeInvocationInput"]["output"], json!({"approved": true}));
    assert_eq!(status["completeInvocationInput"]["localizedError"], Value::Null);
    assert_eq!(status["completed"], got["completed"]);
}

#[actix_web::test]
async fn a_sync_answer_that_breaks_the_schema_or_is_not_json_fails_without_retry() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.script([Reply::status(200).body(r#"{"approved": "yes"}"#), Reply::status(200).body("ok")]);
    subscribe(&app, &sink, "SYNC", "PT1H").await;
    let first = publish(&app).await;
    app.drain().await;
    let second = publish(&app).await;
    app.drain().await;
    app.advance(TimeDelta::hours(1));
    app.drain().await;

    assert_eq!(sink.received().len(), 2, "a malformed answer is not retried");
    let bad = detail(&app, first["id"].as_str().unwrap()).await;
    assert_eq!(bad["state"], "DEAD");
    let reason = bad["lastError"].as_str().unwrap();
    assert!(reason.contains("output schema") && reason.contains("output/approved"), "{reason}");
    assert_eq!(bad["completeInvocationInput"]["localizedError"]["message"], reason);
    assert_eq!(bad["attemptLog"][0]["status"], 200);
    let not_json = detail(&app, second["id"].as_str().unwrap()).await;
    assert!(not_json["lastError"].as_str().unwrap().contains("not JSON"), "{not_json}");
}

#[actix_web::test]
async fn a_late_sync_answer_fails_the_invocation_with_the_reason() {
    let app = TestApp::spawn_with(|s| s.response_timeout = Duration::from_millis(300)).await;
    let sink = Sink::start();
    sink.always(Reply::status(200).body(r#"{"approved": true}"#).delay(Duration::from_secs(2)));
    subscribe(&app, &sink, "SYNC", "PT1H").await;
    let invocation = publish(&app).await;
    app.drain().await;
    app.advance(TimeDelta::hours(1));
    app.drain().await;

    let got = detail(&app, invocation["id"].as_str().unwrap()).await;
    assert_eq!(got["state"], "DEAD");
    assert_eq!(got["attempts"], 1);
    assert_eq!(got["lastError"], "no answer within the response timeout");
}

#[actix_web::test]
async fn an_async_subscriber_gets_metadata_acknowledges_and_completes_by_callback() {
    let (app, sink, invocation) = acknowledged("PT1H").await;
    let id = invocation["id"].as_str().unwrap();

    let body = sink.received()[0].json();
    assert_eq!(body["identityId"], "u1");
    let metadata = &body["_metadata"];
    let callback = format!("{}/trigger-invocations/v1/{id}/complete", app.address);
    assert_eq!(metadata["callbackURL"], callback.as_str());
    assert_eq!(metadata["responseMode"], "async");
    assert_eq!(metadata["secret"], invocation["secret"]);
    assert_eq!(metadata["triggerId"], TRIGGER);
    assert_eq!(metadata["triggerType"], "requestResponse");
    let waiting = detail(&app, id).await;
    assert_eq!(waiting["state"], "AWAITING");
    assert!(waiting["respondBy"].is_string());
    assert_eq!(waiting["completed"], Value::Null);

    let done = app
        .http
        .post(&callback)
        .json(&json!({"secret": metadata["secret"], "output": {"approved": false}}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 204);
    let got = detail(&app, id).await;
    assert_eq!(got["state"], "DELIVERED");
    assert_eq!(got["completeInvocationInput"]["output"], json!({"approved": false}));
}

#[actix_web::test]
async fn each_refused_completion_has_its_own_status_and_reason() {
    let (app, sink, invocation) = acknowledged("PT1H").await;
    let (id, secret) = (invocation["id"].as_str().unwrap(), invocation["secret"].as_str().unwrap());

    let unknown =
        complete(&app, "0190b3c4-0000-7000-8000-000000000000", &json!({"secret": secret, "output": {}}))
            .await;
    assert!(error_text(unknown, 404).await.contains("was not found"));
    let wrong = complete(&app, id, &json!({"secret": "guess", "output": {"approved": true}})).await;
    assert_eq!(wrong.status(), 401);
    let wrong: Value = wrong.json().await.unwrap();
    assert!(wrong["error"].as_str().unwrap().contains("secret does not match"), "{wrong}");
    let invalid = complete(&app, id, &json!({"secret": secret, "output": {"approved": "maybe"}})).await;
    assert!(error_text(invalid, 400).await.contains("output schema"));
    let empty = complete(&app, id, &json!({"secret": secret})).await;
    assert!(error_text(empty, 400).await.contains("output is required"));
    assert_eq!(detail(&app, id).await["state"], "AWAITING", "refused callbacks change nothing");

    let ok = complete(&app, id, &json!({"secret": secret, "output": {"approved": true}})).await;
    assert_eq!(ok.status(), 204);
    let again = complete(&app, id, &json!({"secret": secret, "output": {"approved": true}})).await;
    assert!(error_text(again, 409).await.contains("already completed"));

    let fire_and_forget = app.subscribe_url(&sink.url("/ff")).await;
    assert!(fire_and_forget["id"].is_string());
    let ff: Value =
        app.publish("test:fire-and-forget", json!({"identityId": "u2"})).await.json().await.unwrap();
    let ff_id = ff[0]["id"].as_str().unwrap();
    let not_rr = complete(&app, ff_id, &json!({"secret": ff[0]["secret"], "output": {}})).await;
    assert!(error_text(not_rr, 400).await.contains("FIRE_AND_FORGET"));
}

#[actix_web::test]
async fn a_reported_error_fails_the_invocation_and_shows_as_its_localized_error() {
    let (app, _sink, invocation) = acknowledged("PT1H").await;
    let id = invocation["id"].as_str().unwrap();
    let failed = complete(
        &app,
        id,
        &json!({"secret": invocation["secret"], "output": {}, "error": "approver not found"}),
    )
    .await;
    assert_eq!(failed.status(), 204);
    let got = detail(&app, id).await;
    assert_eq!(got["state"], "DEAD");
    assert_eq!(
        got["completeInvocationInput"]["localizedError"]["message"],
        "the subscriber reported: approver not found"
    );
    assert_eq!(got["completeInvocationInput"]["output"], Value::Null);
}

#[actix_web::test]
async fn past_the_response_deadline_an_invocation_fails_on_its_own() {
    let (app, _sink, invocation) = acknowledged("PT1M").await;
    let id = invocation["id"].as_str().unwrap();
    assert_eq!(detail(&app, id).await["state"], "AWAITING");

    app.advance(TimeDelta::seconds(61));
    app.drain().await;
    let got = detail(&app, id).await;
    assert_eq!(got["state"], "DEAD");
    assert_eq!(got["lastError"], DEADLINE_PASSED);
    let dead: Value = app.get("/dead-letters/v1").await.json().await.unwrap();
    assert_eq!(dead[0]["id"], id, "an expired invocation is a dead letter");
    let late =
        complete(&app, id, &json!({"secret": invocation["secret"], "output": {"approved": true}})).await;
    assert!(error_text(late, 410).await.contains("missed its response deadline"));
}

#[actix_web::test]
async fn a_callback_past_the_deadline_fails_the_invocation_even_before_the_sweep() {
    let (app, _sink, invocation) = acknowledged("PT1M").await;
    let id = invocation["id"].as_str().unwrap();
    app.advance(TimeDelta::seconds(61));
    let late =
        complete(&app, id, &json!({"secret": invocation["secret"], "output": {"approved": true}})).await;
    assert_eq!(late.status(), 410);
    assert_eq!(detail(&app, id).await["state"], "DEAD");
}

#[actix_web::test]
async fn a_dynamic_subscriber_answers_at_once_or_acknowledges_with_202() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.script([Reply::status(200).body(r#"{"approved": true}"#), Reply::status(202).body("{}")]);
    subscribe(&app, &sink, "DYNAMIC", "PT1H").await;
    let now = publish(&app).await;
    app.drain().await;
    let later = publish(&app).await;
    app.drain().await;

    assert_eq!(sink.received()[0].json()["_metadata"]["responseMode"], "dynamic");
    let answered = detail(&app, now["id"].as_str().unwrap()).await;
    assert_eq!(answered["state"], "DELIVERED");
    assert_eq!(answered["completeInvocationInput"]["output"], json!({"approved": true}));
    let later_id = later["id"].as_str().unwrap();
    assert_eq!(detail(&app, later_id).await["state"], "AWAITING");
    let done =
        complete(&app, later_id, &json!({"secret": later["secret"], "output": {"approved": false}})).await;
    assert_eq!(done.status(), 204);
    assert_eq!(detail(&app, later_id).await["state"], "DELIVERED");
}

#[actix_web::test]
async fn a_callback_that_beats_the_acknowledgement_is_kept() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    subscribe(&app, &sink, "ASYNC", "PT1H").await;
    let invocation = publish(&app).await;
    let id: hookgate::domain::ids::InvocationId = invocation["id"].as_str().unwrap().parse().unwrap();
    let now = hookgate::clock::Clock::now(app.clock.as_ref());
    let claimed =
        app.store.run_blocking(|c| queue::claim(c, "worker-a", now, Duration::from_secs(30), 10)).unwrap();
    assert_eq!(claimed.len(), 1);
    let done =
        complete(&app, id.as_str(), &json!({"secret": invocation["secret"], "output": {"approved": true}}))
            .await;
    assert_eq!(done.status(), 204, "accepted while the delivery is still in flight");
    let ack = Outcome {
        invocation: id.clone(),
        attempt: hookgate::domain::invocation::Attempt {
            attempt: 1,
            started: now,
            duration_ms: 5,
            status: Some(200),
            response: Some("{}".into()),
            error: None,
        },
        next: Next::Awaiting(now + TimeDelta::hours(1)),
        effect: outcomes::Effect::None,
        refused: false,
        subscription: None,
    };
    app.store.run_blocking(|c| outcomes::record(c, "worker-a", &[ack], now)).unwrap();
    let after = app.store.run_blocking(|c| invocations::get(c, &id)).unwrap();
    assert_eq!(after.state, InvocationState::Delivered, "the late acknowledgement does not reopen it");
    assert_eq!(after.output.as_deref(), Some(r#"{"approved":true}"#));
}

#[actix_web::test]
async fn a_producer_can_wait_for_the_output() {
    let app = TestApp::spawn_with(|s| s.workers = 1).await;
    let sink = Sink::start();
    sink.always(Reply::status(200).body(r#"{"approved": true}"#));
    subscribe(&app, &sink, "SYNC", "PT1H").await;
    let response = app
        .post(
            "/trigger-invocations/v1/start?wait=PT10S",
            &json!({"triggerId": TRIGGER, "input": {"identityId": "u1"}, "contentJson": {}}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body[0]["state"], "DELIVERED", "{body}");
    assert_eq!(body[0]["output"], json!({"approved": true}));
    assert!(body[0]["completed"].is_string());
}

#[actix_web::test]
async fn a_waiting_producer_gets_an_async_output_when_the_callback_arrives() {
    let app = TestApp::spawn_with(|s| s.workers = 1).await;
    let sink = Sink::start();
    sink.always(Reply::status(200).body("{}"));
    subscribe(&app, &sink, "ASYNC", "PT1H").await;
    let callbacks = actix_web::rt::spawn({
        let http = app.http.clone();
        async move {
            let received = loop {
                let got = sink.received();
                if let Some(first) = got.first() {
                    break first.json();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            };
            let metadata = &received["_metadata"];
            http.post(metadata["callbackURL"].as_str().unwrap())
                .json(&json!({"secret": metadata["secret"], "output": {"approved": false}}))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let response = app
        .post(
            "/trigger-invocations/v1/start?wait=10s",
            &json!({"triggerId": TRIGGER, "input": {"identityId": "u1"}, "contentJson": {}}),
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(callbacks.await.unwrap(), 204);
    assert_eq!(body[0]["state"], "DELIVERED", "{body}");
    assert_eq!(body[0]["output"], json!({"approved": false}));
}

#[actix_web::test]
async fn a_wait_is_capped_and_a_bad_one_refused() {
    let app = TestApp::spawn_with(|s| s.max_wait = Duration::from_millis(100)).await;
    let sink = Sink::start();
    subscribe(&app, &sink, "SYNC", "PT1H").await;
    let body = json!({"triggerId": TRIGGER, "input": {"identityId": "u1"}, "contentJson": {}});
    let capped: Value =
        app.post("/trigger-invocations/v1/start?wait=PT1H", &body).await.json().await.unwrap();
    assert_eq!(capped[0]["state"], "PENDING", "no delivery loop runs; the wait ends at the cap");
    let bad = app.post("/trigger-invocations/v1/start?wait=soon", &body).await;
    assert!(error_text(bad, 400).await.contains("not a duration"));
}
