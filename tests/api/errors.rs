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
