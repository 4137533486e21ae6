//! Erasure on request: `DELETE /trigger-invocations/v1?filters=…` removes what matches, with its
//! events and attempts, and nothing else.

use hookgate::clock::Clock as _;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};
use crate::retention::rows;
use crate::sink::{Reply, Sink};

fn erase_path(filters: &str) -> String {
    format!("/trigger-invocations/v1?filters={}", urlencode(filters))
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[actix_web::test]
async fn matching_invocations_go_with_their_events_and_attempts_and_the_rest_stays() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.script([Reply::status(500)]);
    sink.always(Reply::status(200));
    app.subscribe_url(&sink.url("/erased")).await;
    crate::chains::trigger(&app, "test:kept", &[]).await;
    app.subscribe_url_to("test:kept", &sink.url("/kept")).await;
    for i in 0..3 {
        let r = app.publish("test:fire-and-forget", json!({"identityId": format!("erase-{i}")})).await;
        assert!(r.status().is_success());
    }
    app.drain().await;
    app.advance(chrono::TimeDelta::seconds(10));
    app.drain().await;
    assert_eq!(rows(&app, "attempts"), 1, "the first attempt failed and has its row");
    let other = app.publish("test:kept", json!({"identityId": "stays"})).await;
    assert!(other.status().is_success(), "{}", other.text().await.unwrap());
    let events_before = rows(&app, "events");
    let invocations_before = rows(&app, "invocations");

    let response = app.delete(&erase_path("triggerId eq \"test:fire-and-forget\"")).await;
    assert_eq!(response.status(), 200);
    let erased: Value = response.json().await.unwrap();
    assert_eq!(erased, json!({"invocations": 3, "attempts": 1, "events": 3, "left": 0}));
    assert_eq!(rows(&app, "events"), events_before - 3);
    assert_eq!(rows(&app, "invocations"), invocations_before - 3);
    assert_eq!(rows(&app, "attempts"), 0);
    let listed: Value = app
        .get("/trigger-invocations/v1?filters=triggerId%20eq%20%22test%3Afire-and-forget%22")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!([]));
    let again: Value =
        app.delete(&erase_path("triggerId eq \"test:fire-and-forget\"")).await.json().await.unwrap();
    assert_eq!(again, json!({"invocations": 0, "attempts": 0, "events": 0, "left": 0}));
}

#[actix_web::test]
async fn erasure_needs_a_valid_filter_and_the_dead_letter_scope() {
    let mut app = TestApp::spawn().await;
    assert!(error_text(app.delete("/trigger-invocations/v1").await, 400).await.contains("filters"));
    assert!(error_text(app.delete(&erase_path("name eq \"x\"")).await, 400).await.contains("name"));
    assert!(!error_text(app.delete(&erase_path("triggerId eq")).await, 400).await.is_empty());
    app.token = app.token_for(&["sp:trigger-service-invocation-status:read"]).await;
    let forbidden = app.delete(&erase_path("triggerId eq \"test:fire-and-forget\"")).await;
    assert_eq!(forbidden.status(), 403);
}

#[actix_web::test]
async fn an_event_with_an_invocation_in_flight_is_left_and_counted() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.always(Reply::status(200));
    app.subscribe_url(&sink.url("/a")).await;
    app.publish("test:fire-and-forget", json!({"identityId": "busy"})).await;
    // Claimed by an instance that has not recorded its attempt yet.
    let now = app.clock.now();
    let claimed = app
        .store
        .run_blocking(move |c| {
            hookgate::store::queue::claim(c, "worker-x", now, std::time::Duration::from_secs(60), 10)
        })
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let erased: Value =
        app.delete(&erase_path("triggerId eq \"test:fire-and-forget\"")).await.json().await.unwrap();
    assert_eq!(erased, json!({"invocations": 0, "attempts": 0, "events": 0, "left": 1}));
    assert_eq!(rows(&app, "events"), 1);
}
