use std::time::Duration;

use base64::Engine as _;
use chrono::TimeDelta;
use hmac::{Hmac, KeyInit, Mac};
use hookgate::domain::invocation::InvocationState;
use hookgate::store::invocations;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::sink::{Received, Reply, Sink};

/// Verifies a Standard Webhooks signature independently of hookgate's signer.
pub fn verify(secret: &str, request: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let h = &request.headers;
    let signed =
        format!("{}.{}.{}", h["webhook-id"], h["webhook-timestamp"], String::from_utf8_lossy(&request.body));
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(signed.as_bytes());
    let expected =
        format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes()));
    h["webhook-signature"].split(' ').any(|s| s == expected)
}

fn invocation(app: &TestApp, id: &str) -> hookgate::domain::invocation::Invocation {
    let id = id.parse().unwrap();
    app.store.run_blocking(|c| invocations::get(c, &id)).unwrap()
}

fn attempts(app: &TestApp, id: &str) -> Vec<hookgate::domain::invocation::Attempt> {
    let id = id.parse().unwrap();
    app.store.run_blocking(|c| invocations::attempts_of(c, &id)).unwrap()
}

async fn publish_one(app: &TestApp, input: Value) -> String {
    let body: Value = app.publish("test:fire-and-forget", input).await.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
    body[0]["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_published_event_is_delivered_as_a_signed_post_of_the_stored_payload() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    let patch = json!([{"op": "add", "path": "/params/source", "value": "crm"}]);
    assert_eq!(app.patch("/triggers/v1/test:fire-and-forget", &patch).await.status(), 200);
    let sub = app
        .subscribe(
            "test:fire-and-forget",
            json!({"httpConfig": {"url": sink.url("/hook"), "httpDispatchMode": "SYNC"}}),
        )
        .await;
    let id = publish_one(&app, json!({"identityId": "a", "source": "override"})).await;

    assert_eq!(app.drain().await, 1);
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let request = &got[0];
    assert_eq!(request.path, "/hook");
    assert_eq!(request.headers["content-type"], "application/json");
    assert_eq!(request.headers["webhook-id"], id);
    assert_eq!(request.headers["hookgate-trigger"], "test:fire-and-forget");
    assert_eq!(request.headers["hookgate-attempt"], "1");
    let ts: i64 = request.headers["webhook-timestamp"].parse().unwrap();
    assert!((ts - chrono::Utc::now().timestamp()).abs() < 60);
    assert!(verify(sub["secret"].as_str().unwrap(), request), "signature does not verify");
    assert_eq!(request.json(), json!({"identityId": "a", "source": "override"}));
    assert!(!request.headers.contains_key("authorization"));

    let done = invocation(&app, &id);
    assert_eq!(done.state, InvocationState::Delivered);
    assert!(done.completed.is_some());
    let tries = attempts(&app, &id);
    assert_eq!(tries.len(), 1);
    assert_eq!(tries[0].status, Some(200));
    assert_eq!(app.drain().await, 0, "nothing is delivered twice");
}

#[actix_web::test]
async fn failures_retry_on_the_schedule_then_become_dead_letters() {
    let app =
        TestApp::spawn_with(|s| s.retry_schedule = vec![Duration::from_secs(10), Duration::from_secs(60)])
            .await;
    let sink = Sink::start();
    sink.always(Reply::status(500).body("boom"));
    app.subscribe_url(&sink.url("/h")).await;
    let id = publish_one(&app, json!({"identityId": "a"})).await;

    assert_eq!(app.drain().await, 1);
    let first = invocation(&app, &id);
    assert_eq!(first.state, InvocationState::Pending);
    let wait = (first.next_attempt_at - first.updated).num_milliseconds();
    assert!((8_000..12_000).contains(&wait), "retry after {wait} ms, not 10 s ± 20 %");
    assert_eq!(app.drain().await, 0, "not due yet");

    app.advance(TimeDelta::seconds(13));
    assert_eq!(app.drain().await, 1);
    assert_eq!(invocation(&app, &id).state, InvocationState::Pending);
    app.advance(TimeDelta::seconds(73));
    assert_eq!(app.drain().await, 1);
    let dead = invocation(&app, &id);
    assert_eq!(dead.state, InvocationState::Dead);
    assert_eq!(dead.last_error.as_deref(), Some("subscriber answered HTTP 500"));
    let tries = attempts(&app, &id);
    assert_eq!(tries.iter().map(|a| a.attempt).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(tries.iter().all(|a| a.status == Some(500) && a.response.as_deref() == Some("boom")));
    assert_eq!(sink.received().len(), 3);
    app.advance(TimeDelta::days(2));
    assert_eq!(app.drain().await, 0, "a dead letter is not retried");
}

#[actix_web::test]
async fn retry_after_is_honoured_within_the_cap() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.script([Reply::status(429).header("Retry-After", "120")]);
    app.subscribe_url(&sink.url("/h")).await;
    let id = publish_one(&app, json!({"identityId": "a"})).await;
    app.drain().await;
    let retry = invocation(&app, &id);
    assert_eq!((retry.next_attempt_at - retry.updated).num_seconds(), 120);
    app.advance(TimeDelta::seconds(121));
    app.drain().await;
    assert_eq!(invocation(&app, &id).state, InvocationState::Delivered);
}

#[actix_web::test]
async fn a_410_disables_the_subscription_and_keeps_the_event() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.script([Reply::status(410)]);
    let sub = app.subscribe_url(&sink.url("/h")).await;
    let id = publish_one(&app, json!({"identityId": "a"})).await;
    app.drain().await;
    assert_eq!(invocation(&app, &id).state, InvocationState::Dead);
    let read: Value = app
        .get(&format!("/trigger-subscriptions/v1/{}", sub["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read["enabled"], false);
    assert!(read["disabledReason"].as_str().unwrap().contains("410"));
    let none: Value =
        app.publish("test:fire-and-forget", json!({"identityId": "b"})).await.json().await.unwrap();
    assert_eq!(none, json!([]), "a disabled subscription receives no new events");
}

#[actix_web::test]
async fn basic_and_bearer_credentials_are_sent() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    app.subscribe(
        "test:fire-and-forget",
        json!({"httpConfig": {"url": sink.url("/basic"), "httpDispatchMode": "SYNC",
        "httpAuthenticationType": "BASIC_AUTH", "basicAuthConfig": {"userName": "u", "password": "p@ss"}}}),
    )
    .await;
    app.subscribe(
        "test:fire-and-forget",
        json!({"httpConfig": {"url": sink.url("/bearer"), "httpDispatchMode": "SYNC",
        "httpAuthenticationType": "BEARER_TOKEN", "bearerTokenAuthConfig": {"bearerToken": "t0k"}}}),
    )
    .await;
    app.publish("test:fire-and-forget", json!({"identityId": "a"})).await;
    app.drain().await;
    let got = sink.received();
    let by_path = |p: &str| got.iter().find(|r| r.path == p).unwrap().headers["authorization"].clone();
    assert_eq!(
        by_path("/basic"),
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("u:p@ss"))
    );
    assert_eq!(by_path("/bearer"), "Bearer t0k");
}

#[actix_web::test]
async fn redirects_are_not_followed_and_slow_or_huge_answers_are_cut() {
    let app = TestApp::spawn_with(|s| s.delivery_timeout = Duration::from_millis(500)).await;
    let sink = Sink::start();
    sink.script([
        Reply::status(302).header("Location", &sink.url("/elsewhere")),
        Reply::status(200).delay(Duration::from_secs(2)),
        Reply::status(200).body("x".repeat(40_000)),
    ]);
    app.subscribe_url(&sink.url("/h")).await;
    let id = publish_one(&app, json!({"identityId": "a"})).await;
    app.drain().await;
    let tries = attempts(&app, &id);
    assert_eq!(tries[0].status, Some(302));
    assert_eq!(invocation(&app, &id).state, InvocationState::Pending);

    app.advance(TimeDelta::seconds(10));
    app.drain().await;
    let tries = attempts(&app, &id);
    assert_eq!(tries[1].status, None);
    assert!(tries[1].error.as_deref().unwrap().contains("timed out"), "{:?}", tries[1].error);

    app.advance(TimeDelta::minutes(10));
    app.drain().await;
    let tries = attempts(&app, &id);
    assert_eq!(tries[2].status, Some(200));
    assert_eq!(tries[2].response.as_ref().unwrap().len(), 16 * 1024);
    assert!(sink.received().iter().all(|r| r.path == "/h"), "the redirect was never followed");
}

#[actix_web::test]
async fn the_ssrf_guard_refuses_loopback_targets_unless_allow_listed() {
    let app = TestApp::spawn_with(|s| s.allowed_target_networks.clear()).await;
    let sink = Sink::start();
    let port = sink.port;
    for url in [
        format!("http://127.0.0.1:{port}/h"),
        format!("http://127.0.0.2:{port}/h"),
        format!("http://localhost:{port}/h"),
        format!("http://[::1]:{port}/h"),
    ] {
        app.subscribe(
            "test:fire-and-forget",
            json!({"name": url, "httpConfig": {"url": url, "httpDispatchMode": "SYNC"}}),
        )
        .await;
    }
    let body: Value =
        app.publish("test:fire-and-forget", json!({"identityId": "a"})).await.json().await.unwrap();
    app.drain().await;
    assert!(sink.received().is_empty(), "a refused target was contacted");
    for i in body.as_array().unwrap() {
        let tries = attempts(&app, i["id"].as_str().unwrap());
        assert_eq!(tries.len(), 1);
        let error = tries[0].error.as_deref().unwrap();
        assert!(error.contains("not a permitted") || error.contains("may not reach"), "{error}");
    }
}

#[actix_web::test]
async fn during_a_rotation_deliveries_carry_both_signatures() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    let sub = app.subscribe_url(&sink.url("/h")).await;
    let id = sub["id"].as_str().unwrap();
    let rotated: Value = app
        .post(&format!("/trigger-subscriptions/v1/{id}/rotate-secret"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    app.publish("test:fire-and-forget", json!({"identityId": "a"})).await;
    app.drain().await;
    let request = &sink.received()[0];
    assert_eq!(request.headers["webhook-signature"].split(' ').count(), 2);
    assert!(verify(sub["secret"].as_str().unwrap(), request));
    assert!(verify(rotated["secret"].as_str().unwrap(), request));
}

#[actix_web::test]
async fn an_invocation_whose_worker_died_is_claimed_again_after_its_lease() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    app.subscribe_url(&sink.url("/h")).await;
    let id = publish_one(&app, json!({"identityId": "a"})).await;
    let now = hookgate::clock::Clock::now(app.clock.as_ref());
    let taken = app
        .store
        .run_blocking(|c| {
            hookgate::store::queue::claim(c, "a-worker-that-crashes", now, Duration::from_secs(60), 10)
        })
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(app.drain().await, 0, "the lease still holds");
    app.advance(TimeDelta::seconds(61));
    assert_eq!(app.drain().await, 1);
    assert_eq!(invocation(&app, &id).state, InvocationState::Delivered);
    assert_eq!(sink.received().len(), 1);
}

#[actix_web::test]
async fn the_background_loops_deliver_without_being_driven() {
    let app = TestApp::spawn_with(|s| {
        s.workers = 2;
        s.poll_interval = Duration::from_millis(200);
    })
    .await;
    let sink = Sink::start();
    app.subscribe_url(&sink.url("/h")).await;
    for i in 0..20 {
        app.publish("test:fire-and-forget", json!({"identityId": format!("e{i}")})).await;
    }
    let got = sink.wait_for(20, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 20);
    let mut ids: Vec<&str> = got.iter().map(|r| r.headers["webhook-id"].as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 20, "each invocation delivered once");
}
