//! `/sources/v1`: creating, reading, changing and deleting sources, and what is refused.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};

pub const TRIGGER: &str = "test:fire-and-forget";

/// A Standard Webhooks source body with `secret`.
pub fn webhook_source(id: &str, secret: &str) -> Value {
    json!({
        "id": id, "name": "payments", "type": "WEBHOOK", "triggerId": TRIGGER,
        "webhookConfig": {"verification": "STANDARD_WEBHOOKS", "secret": secret},
    })
}

/// Creates a source and returns its body.
pub async fn create_source(app: &TestApp, body: &Value) -> Value {
    let response = app.post("/sources/v1", body).await;
    let status = response.status();
    let created: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "{created}");
    created
}

#[actix_web::test]
async fn a_source_is_created_read_listed_changed_and_deleted() {
    let app = TestApp::spawn().await;
    let secret = hookgate::domain::secret::new_signing_secret();
    let created = create_source(&app, &webhook_source("stripe-payments", secret.expose())).await;
    assert_eq!(created["id"], "stripe-payments");
    assert_eq!(created["url"], app.url("/hooks/v1/stripe-payments"));
    assert_eq!(created["webhookConfig"]["secret"], Value::Null, "the secret is write-only");
    assert_eq!(created["webhookConfig"]["methods"], json!(["POST"]));
    assert_eq!(created["webhookConfig"]["response"], "ASYNC");
    assert_eq!(
        created["status"],
        json!({"received": 0, "fired": 0, "rejected": 0, "lastEventAt": null, "lastError": null})
    );
    let generated =
        create_source(&app, &json!({"name": "open", "type": "WEBHOOK", "triggerId": TRIGGER, "webhookConfig": {"verification": "NONE"}})).await;
    let id = generated["id"].as_str().unwrap();
    assert!(id.starts_with("src-"), "{generated}");
    let url = generated["url"].as_str().unwrap();
    assert!(
        url.starts_with(&app.url(&format!("/hooks/v1/{id}/hk_"))),
        "an unsigned source's URL carries a token: {url}"
    );

    let listed: Value = app
        .get("/sources/v1?filters=triggerId%20eq%20%22test%3Afire-and-forget%22&sorters=name")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["name"], "open");
    let by_id: Value =
        app.get("/sources/v1?filters=id%20eq%20%22stripe-payments%22").await.json().await.unwrap();
    assert_eq!(by_id.as_array().unwrap().len(), 1);
    let read: Value = app.get("/sources/v1/stripe-payments").await.json().await.unwrap();
    assert_eq!(read["name"], "payments");

    // A PUT that leaves the secret out keeps it; PATCH changes single fields.
    let mut replaced = webhook_source("stripe-payments", secret.expose());
    replaced["name"] = json!("payments (renamed)");
    replaced["webhookConfig"]["secret"] = Value::Null;
    let response = app.put("/sources/v1/stripe-payments", &replaced).await;
    assert_eq!(response.status(), 200);
    let patched = app
        .patch("/sources/v1/stripe-payments", &json!([{"op": "replace", "path": "/enabled", "value": false}]))
        .await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(patched["enabled"], false);
    assert_eq!(patched["name"], "payments (renamed)");
    let stored = app
        .store
        .run_blocking(|c| hookgate::store::sources::get(c, &"stripe-payments".parse().unwrap()))
        .unwrap();
    assert_eq!(stored.spec.webhook.unwrap().secret.as_deref(), Some(secret.expose()), "the secret was kept");

    let trigger_delete = app.delete(&format!("/triggers/v1/{TRIGGER}")).await;
    assert!(error_text(trigger_delete, 409).await.contains("source"));
    assert_eq!(app.delete("/sources/v1/stripe-payments").await.status(), 204);
    assert_eq!(app.get("/sources/v1/stripe-payments").await.status(), 404);
    assert_eq!(app.delete("/sources/v1/stripe-payments").await.status(), 404);
}

#[actix_web::test]
async fn bad_source_bodies_are_refused_with_the_field_named() {
    let app = TestApp::spawn().await;
    let secret = hookgate::domain::secret::new_signing_secret();
    let good = webhook_source("good", secret.expose());
    let cases: Vec<(Value, &str)> = vec![
        (json!({"name": "x", "type": "KAFKA", "triggerId": TRIGGER}), "type"),
        (json!({"name": "x", "type": "NATS", "triggerId": TRIGGER}), "natsConfig: required"),
        (
            json!({"name": "x", "type": "AMQP", "triggerId": TRIGGER,
                "amqpConfig": {"url": "amqps://h:5671/", "queue": "q"}}),
            "amqps is not supported",
        ),
        (
            json!({"name": "x", "type": "NATS", "triggerId": TRIGGER,
                "natsConfig": {"url": "nats://h:4222", "stream": "a.b", "subject": "s", "durable": "d"}}),
            "natsConfig.stream",
        ),
        (
            json!({"name": "x", "type": "REDIS_STREAM", "triggerId": TRIGGER,
                "redisStreamConfig": {"url": "http://h:6379", "stream": "s", "group": "g"}}),
            "redisStreamConfig.url",
        ),
        (json!({"name": "x", "type": "WEBHOOK", "triggerId": TRIGGER}), "webhookConfig"),
        (
            json!({"name": "x", "type": "WEBHOOK", "triggerId": TRIGGER, "webhookConfig": {"verification": "GITHUB"}}),
            "webhookConfig.secret",
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "triggerId": TRIGGER, "webhookConfig": {"verification": "STANDARD_WEBHOOKS", "secret": "whsec_%%%"}}),
            "whsec_",
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "triggerId": TRIGGER, "webhookConfig": {"verification": "HMAC_SHA256", "secret": "k"}}),
            "webhookConfig.header",
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "triggerId": TRIGGER, "webhookConfig": {"verification": "NONE", "methods": []}}),
            "methods",
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "triggerId": "nope:nope", "webhookConfig": {"verification": "NONE"}}),
            "does not name a trigger",
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "triggerId": TRIGGER, "inputPath": "$[", "webhookConfig": {"verification": "NONE"}}),
            "inputPath",
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "triggerId": TRIGGER, "routes": {"map": {}}, "webhookConfig": {"verification": "NONE"}}),
            "routes",
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "triggerId": TRIGGER, "routes": {"path": "$.type", "map": {"a": "nope:nope"}}, "webhookConfig": {"verification": "NONE"}}),
            "nope:nope",
        ),
        (
            json!({"name": "x", "type": "WEBHOOK", "triggerId": TRIGGER, "webhookConfig": {"verification": "NONE", "response": "SYNC"}}),
            "REQUEST_RESPONSE",
        ),
        (
            json!({"id": "Not A Slug", "name": "x", "type": "WEBHOOK", "triggerId": TRIGGER, "webhookConfig": {"verification": "NONE"}}),
            "id",
        ),
    ];
    for (body, expected) in cases {
        let text = error_text(app.post("/sources/v1", &body).await, 400).await;
        assert!(text.contains(expected), "{body}: {text}");
    }
    create_source(&app, &good).await;
    assert_eq!(app.post("/sources/v1", &good).await.status(), 409);
    let count: Value = app.get("/sources/v1").await.json().await.unwrap();
    assert_eq!(count.as_array().unwrap().len(), 1, "nothing refused was stored");

    let reader = app.token_for(&["sp:trigger-service-subscriptions:manage"]).await;
    let forbidden = app.http.get(app.url("/sources/v1")).bearer_auth(reader).send().await.unwrap();
    assert_eq!(forbidden.status(), 403);
    let scoped = app.token_for(&["hookgate:sources:manage"]).await;
    let allowed = app.http.get(app.url("/sources/v1/good")).bearer_auth(scoped).send().await.unwrap();
    assert_eq!(allowed.status(), 200);
}
