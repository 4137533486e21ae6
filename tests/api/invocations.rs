use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};
use crate::sink::{Reply, Sink};

#[actix_web::test]
async fn test_invocations_reach_every_subscription_disabled_ones_too_with_filters_applied() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    let http = |path: &str| json!({"url": sink.url(path), "httpDispatchMode": "SYNC"});
    let on = app.subscribe("test:fire-and-forget", json!({"name": "on", "httpConfig": http("/on")})).await;
    let off = app
        .subscribe(
            "test:fire-and-forget",
            json!({"name": "off", "enabled": false, "httpConfig": http("/off")}),
        )
        .await;
    app.subscribe("test:fire-and-forget", json!({"name": "filtered", "filter": "$[?($.identityId == 'nobody')]", "httpConfig": http("/filtered")})).await;

    let response = app
        .post(
            "/trigger-invocations/v1/test",
            &json!({"triggerId": "test:fire-and-forget", "contentJson": {"k": 1}}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let subs: std::collections::BTreeSet<&str> =
        body.as_array().unwrap().iter().map(|i| i["subscriptionId"].as_str().unwrap()).collect();
    assert_eq!(subs, [on["id"].as_str().unwrap(), off["id"].as_str().unwrap()].into_iter().collect());
    assert_eq!(body[0]["contentJson"], json!({"k": 1}));
    app.drain().await;
    let mut paths: Vec<String> = sink.received().iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, vec!["/off", "/on"]);
    assert_eq!(
        sink.received()[0].json(),
        json!({"identityId": "201327fda1c44704ac01181e963d463c"}),
        "the example input"
    );

    let only = json!({"triggerId": "test:fire-and-forget", "contentJson": {}, "input": {"identityId": "x"}, "subscriptionIds": [on["id"]]});
    let body: Value = app.post("/trigger-invocations/v1/test", &only).await.json().await.unwrap();
    assert_eq!(body.as_array().unwrap().len(), 1);

    let none = app
        .post("/trigger-invocations/v1/test", &json!({"triggerId": "idn:source-created", "contentJson": {}}))
        .await;
    assert_eq!(none.status(), 204);
    let stranger = json!({"triggerId": "test:fire-and-forget", "contentJson": {}, "subscriptionIds": [uuid::Uuid::new_v4().to_string()]});
    assert!(
        error_text(app.post("/trigger-invocations/v1/test", &stranger).await, 400)
            .await
            .contains("does not subscribe")
    );
    let bad = json!({"triggerId": "test:fire-and-forget", "contentJson": {}, "input": {"identityId": 1}});
    error_text(app.post("/trigger-invocations/v1/test", &bad).await, 400).await;
    error_text(
        app.post("/trigger-invocations/v1/test", &json!({"triggerId": "test:fire-and-forget"})).await,
        400,
    )
    .await;
}

#[actix_web::test]
async fn the_status_list_shows_sailpoint_fields_and_keeps_failures_longer_than_successes() {
    let mut app = TestApp::spawn_with(|s| s.retry_schedule.clear()).await;
    let sink = Sink::start();
    sink.script([Reply::status(200), Reply::status(500)]);
    let sub = app
        .subscribe(
            "test:fire-and-forget",
            json!({"name": "status-sub", "httpConfig": {"url": sink.url("/h"), "httpDispatchMode": "SYNC"}}),
        )
        .await;
    app.publish("test:fire-and-forget", json!({"identityId": "ok"})).await;
    app.drain().await;
    app.advance(TimeDelta::seconds(1));
    app.publish("test:fire-and-forget", json!({"identityId": "fails"})).await;
    app.drain().await;

    let statuses: Value =
        app.get("/trigger-invocations/v1/status?sorters=created").await.json().await.unwrap();
    assert_eq!(statuses.as_array().unwrap().len(), 2);
    let ok = &statuses[0];
    assert_eq!(ok["subscriptionId"], sub["id"]);
    assert_eq!(ok["subscriptionName"], "status-sub");
    assert_eq!(ok["type"], "REAL_TIME");
    assert_eq!(
        ok["startInvocationInput"],
        json!({"triggerId": "test:fire-and-forget", "input": {"identityId": "ok"}, "contentJson": {}})
    );
    assert!(ok["completed"].is_string());
    assert_eq!(ok["completeInvocationInput"], json!({"localizedError": null, "output": null}));
    let failed = &statuses[1];
    assert_eq!(
        failed["completeInvocationInput"]["localizedError"]["message"],
        "subscriber answered HTTP 500"
    );

    let filtered =
        app.get("/trigger-invocations/v1/status?filters=triggerId%20eq%20%22idn%3Aother%22&count=true").await;
    assert_eq!(filtered.headers()["x-total-count"], "0");
    error_text(app.get("/trigger-invocations/v1/status?filters=state%20eq%20%22DEAD%22").await, 400).await;

    app.advance(TimeDelta::hours(25));
    app.token = app.token_for(&["sp:scopes:all"]).await;
    let later: Value = app.get("/trigger-invocations/v1/status").await.json().await.unwrap();
    assert_eq!(later.as_array().unwrap().len(), 1, "successes go after 24 h, failures stay 48 h");
    app.advance(TimeDelta::hours(24));
    app.token = app.token_for(&["sp:scopes:all"]).await;
    let gone: Value = app.get("/trigger-invocations/v1/status").await.json().await.unwrap();
    assert_eq!(gone, json!([]));
}

#[actix_web::test]
async fn invocations_can_be_listed_by_state_and_read_with_their_attempts() {
    let app = TestApp::spawn_with(|s| s.retry_schedule = vec![std::time::Duration::from_secs(1)]).await;
    let sink = Sink::start();
    sink.always(Reply::status(503).body("down"));
    app.subscribe_url(&sink.url("/h")).await;
    let published: Value =
        app.publish("test:fire-and-forget", json!({"identityId": "a"})).await.json().await.unwrap();
    let id = published[0]["id"].as_str().unwrap();
    app.drain().await;

    let pending: Value =
        app.get("/trigger-invocations/v1?filters=state%20eq%20%22pending%22").await.json().await.unwrap();
    assert_eq!(pending[0]["id"], id);
    assert_eq!(pending[0]["attempts"], 1);
    assert!(pending[0]["nextAttemptAt"].is_string());
    app.advance(TimeDelta::seconds(5));
    app.drain().await;
    let dead = app.get("/trigger-invocations/v1?filters=state%20in%20(%22DEAD%22)%20and%20triggerId%20eq%20%22test%3Afire-and-forget%22&count=true").await;
    assert_eq!(dead.headers()["x-total-count"], "1");
    let none = app
        .get("/trigger-invocations/v1?filters=created%20gt%20%222999-01-01T00%3A00%3A00Z%22&count=true")
        .await;
    assert_eq!(none.headers()["x-total-count"], "0");

    let detail: Value = app.get(&format!("/trigger-invocations/v1/{id}")).await.json().await.unwrap();
    assert_eq!(detail["state"], "DEAD");
    assert_eq!(detail["lastError"], "subscriber answered HTTP 503");
    let log = detail["attemptLog"].as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["status"], 503);
    assert_eq!(log[0]["response"], "down");
    error_text(app.get(&format!("/trigger-invocations/v1/{}", uuid::Uuid::new_v4())).await, 404).await;
    error_text(app.get("/trigger-invocations/v1/nope").await, 404).await;
    error_text(
        app.get("/trigger-invocations/v1?filters=state%20eq%20%22DEAD%22%20or%20type%20eq%20%22TEST%22")
            .await,
        400,
    )
    .await;
    error_text(app.get("/trigger-invocations/v1?filters=created%20ge%20%22yesterday%22").await, 400).await;
}
