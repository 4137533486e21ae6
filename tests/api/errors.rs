use serde_json::json;

use crate::helpers::{TestApp, error_text};

#[actix_web::test]
async fn malformed_json_is_a_400_in_sailpoints_error_body() {
    let app = TestApp::spawn().await;
    let response = app.post_raw("/trigger-subscriptions/v1", "application/json", "{\"name\": ").await;
    let text = error_text(response, 400).await;
    assert!(text.contains("not valid JSON"), "{text}");
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_a_415() {
    let app = TestApp::spawn().await;
    let response = app.post_raw("/trigger-subscriptions/v1", "text/plain", "name=x").await;
    assert!(error_text(response, 415).await.contains("application/json"));
}

#[actix_web::test]
async fn an_oversized_body_is_a_413() {
    let app = TestApp::spawn_with(|s| s.max_body_size = 4096).await;
    let big = json!({"name": "x".repeat(8192), "triggerId": "idn:identity-created", "type": "HTTP"});
    let text = error_text(app.post("/trigger-subscriptions/v1", &big).await, 413).await;
    assert!(text.contains("4096"), "{text}");
}

#[actix_web::test]
async fn deeply_nested_json_is_refused_without_harm() {
    let app = TestApp::spawn().await;
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let body = format!("{{\"input\": {deep}, \"filter\": \"$\"}}");
    let response = app.post_raw("/trigger-subscriptions/v1/validate-filter", "application/json", body).await;
    error_text(response, 400).await;
}

#[actix_web::test]
async fn unknown_routes_are_404_and_unserved_methods_405() {
    let app = TestApp::spawn().await;
    assert!(error_text(app.get("/nothing/here").await, 404).await.contains("no route"));
    let response = app.delete("/triggers/v1").await;
    assert_eq!(response.headers()["allow"], "GET, POST");
    let text = error_text(response, 405).await;
    assert!(text.contains("DELETE"), "{text}");
    let response = app
        .http
        .request(reqwest::Method::TRACE, app.url("/beta/trigger-subscriptions/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, PUT, PATCH, DELETE");
    error_text(app.get("/oauth/token").await, 405).await;
}

#[actix_web::test]
async fn text_with_a_nul_character_is_a_400_naming_the_field_on_either_backend() {
    let app = TestApp::spawn().await;
    let subscription = json!({"name": "a\u{0}b", "triggerId": "test:fire-and-forget", "type": "HTTP",
                              "httpConfig": {"url": "http://127.0.0.1:9/x", "httpDispatchMode": "SYNC"}});
    let text = error_text(app.post("/trigger-subscriptions/v1", &subscription).await, 400).await;
    assert!(text.contains("name") && text.contains("NUL"), "{text}");
    let trigger = json!({"id": "nul:test", "name": "n", "description": "x\u{0}", "type": "FIRE_AND_FORGET",
                         "inputSchema": {"type": "object"}, "exampleInput": {}});
    let text = error_text(app.post("/triggers/v1", &trigger).await, 400).await;
    assert!(text.contains("description"), "{text}");
    // Inside an event's input a NUL is data, stored escaped in its JSON.
    let published = app.publish("test:fire-and-forget", json!({"identityId": "a\u{0}b"})).await;
    assert_eq!(published.status(), 200);
}

#[actix_web::test]
async fn a_subscriber_answer_holding_nul_bytes_is_recorded() {
    let app = TestApp::spawn().await;
    let sink = crate::sink::Sink::start();
    sink.script([crate::sink::Reply::status(500).body("bad\u{0}news")]);
    app.subscribe_url(&sink.url("/h")).await;
    let published: serde_json::Value =
        app.publish("test:fire-and-forget", json!({"identityId": "a"})).await.json().await.unwrap();
    assert_eq!(app.drain().await, 1);
    let id = published[0]["id"].as_str().unwrap();
    let detail: serde_json::Value =
        app.get(&format!("/trigger-invocations/v1/{id}")).await.json().await.unwrap();
    assert_eq!(detail["attemptLog"][0]["response"], "bad\u{FFFD}news", "{detail}");
    assert_eq!(detail["state"], "PENDING", "the retry is scheduled");
}
