use chrono::TimeDelta;
use hookgate::domain::invocation::InvocationState;
use hookgate::store::invocations;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};
use crate::sink::{Reply, Sink};

fn state(app: &TestApp, id: &str) -> InvocationState {
    let id = id.parse().unwrap();
    app.store.run_blocking(|c| invocations::get(c, &id)).unwrap().state
}

/// An app whose first attempt is the last, a sink that fails, and `n` dead letters.
async fn dead_letters(n: usize) -> (TestApp, Sink, Value, Vec<String>) {
    let app = TestApp::spawn_with(|s| s.retry_schedule.clear()).await;
    let sink = Sink::start();
    sink.script((0..n).map(|_| Reply::status(500)));
    let sub = app.subscribe_url(&sink.url("/h")).await;
    let mut ids = Vec::new();
    for i in 0..n {
        let body: Value = app
            .publish("test:fire-and-forget", json!({"identityId": format!("d{i}")}))
            .await
            .json()
            .await
            .unwrap();
        ids.push(body[0]["id"].as_str().unwrap().to_owned());
    }
    app.drain().await;
    (app, sink, sub, ids)
}

#[actix_web::test]
async fn dead_letters_are_listed_with_their_last_error() {
    let (app, _sink, sub, ids) = dead_letters(3).await;
    let response = app.get("/dead-letters/v1?count=true").await;
    assert_eq!(response.headers()["x-total-count"], "3");
    let list: Value = response.json().await.unwrap();
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|d| d["state"] == "DEAD" && d["lastError"] == "subscriber answered HTTP 500")
    );
    let path = format!(
        "/dead-letters/v1?filters=subscriptionId%20eq%20%22{}%22&limit=1",
        sub["id"].as_str().unwrap()
    );
    let one: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(one[0]["id"], ids[2].as_str(), "newest first");
    error_text(app.get("/dead-letters/v1?filters=state%20eq%20%22DEAD%22").await, 400).await;
    let reader = app.token_for(&["sp:trigger-service-invocation-status:read"]).await;
    let forbidden = app.http.get(app.url("/dead-letters/v1")).bearer_auth(reader).send().await.unwrap();
    assert!(error_text(forbidden, 403).await.contains("hookgate:dead-letters:manage"));
}

#[actix_web::test]
async fn replaying_one_invocation_redelivers_it_with_the_same_webhook_id_and_records_who() {
    let (app, sink, _sub, ids) = dead_letters(1).await;
    let id = &ids[0];
    let response = app.post(&format!("/trigger-invocations/v1/{id}/replay"), &json!({})).await;
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["state"].as_str(), body["attempts"].as_i64()), (Some("PENDING"), Some(0)));
    let again = app.post(&format!("/trigger-invocations/v1/{id}/replay"), &json!({})).await;
    assert!(error_text(again, 409).await.contains("already pending"));
    app.drain().await;
    assert_eq!(state(&app, id), InvocationState::Delivered);
    let received = sink.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].headers["webhook-id"], received[1].headers["webhook-id"]);

    let replayed_delivered = app.post(&format!("/trigger-invocations/v1/{id}/replay"), &json!({})).await;
    assert_eq!(replayed_delivered.status(), 202, "a delivered invocation can be replayed too");
    let detail: Value = app.get(&format!("/trigger-invocations/v1/{id}")).await.json().await.unwrap();
    let replays = detail["replays"].as_array().unwrap();
    assert_eq!(replays.len(), 2);
    assert!(replays[0]["by"].as_str().is_some_and(|b| b.len() == 32), "{detail}");
    assert!(replays[0]["at"].is_string() && replays[0]["forced"] == false);
    error_text(
        app.post(&format!("/trigger-invocations/v1/{}/replay", uuid::Uuid::new_v4()), &json!({})).await,
        404,
    )
    .await;
}

#[actix_web::test]
async fn a_disabled_subscription_needs_force_and_a_deleted_one_cannot_be_replayed() {
    let (app, sink, sub, ids) = dead_letters(2).await;
    let sub_path = format!("/trigger-subscriptions/v1/{}", sub["id"].as_str().unwrap());
    let off = json!([{"op": "replace", "path": "/enabled", "value": false}]);
    assert_eq!(app.patch(&sub_path, &off).await.status(), 200);
    let refused = app.post(&format!("/trigger-invocations/v1/{}/replay", ids[0]), &json!({})).await;
    assert!(error_text(refused, 409).await.contains("force=true"));
    let forced = app.post(&format!("/trigger-invocations/v1/{}/replay?force=true", ids[0]), &json!({})).await;
    assert_eq!(forced.status(), 202);
    app.drain().await;
    assert_eq!(
        state(&app, &ids[0]),
        InvocationState::Delivered,
        "a forced replay reaches a disabled subscription"
    );
    assert_eq!(sink.received().len(), 3);

    let bulk: Value = app.post("/dead-letters/v1/replay", &json!({})).await.json().await.unwrap();
    assert_eq!(bulk, json!({"replayed": 0, "skipped": 1}), "the disabled subscription's dead letter waits");
    let on = json!([{"op": "replace", "path": "/enabled", "value": true}]);
    assert_eq!(app.patch(&sub_path, &on).await.status(), 200);
    let bulk: Value = app.post("/dead-letters/v1/replay", &json!({})).await.json().await.unwrap();
    assert_eq!(bulk, json!({"replayed": 1, "skipped": 0}), "after re-enabling it can be replayed");
    app.drain().await;
    assert_eq!(state(&app, &ids[1]), InvocationState::Delivered);

    assert_eq!(app.delete(&sub_path).await.status(), 204);
    let gone = app.post(&format!("/trigger-invocations/v1/{}/replay", ids[1]), &json!({})).await;
    assert!(error_text(gone, 409).await.contains("deleted"));
}

#[actix_web::test]
async fn bulk_replay_requeues_matching_dead_letters_a_hundred_per_second() {
    let (app, sink, _sub, ids) = dead_letters(250).await;
    assert_eq!(sink.received().len(), 250);
    let none: Value = app
        .post("/dead-letters/v1/replay", &json!({"filters": "created lt \"2000-01-01T00:00:00Z\""}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none, json!({"replayed": 0, "skipped": 0}));
    let all: Value = app
        .post("/dead-letters/v1/replay", &json!({"filters": "triggerId eq \"test:fire-and-forget\""}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(all, json!({"replayed": 250, "skipped": 0}));
    assert_eq!(app.drain().await, 100, "the first hundred are due now");
    app.advance(TimeDelta::seconds(1));
    assert_eq!(app.drain().await, 100);
    app.advance(TimeDelta::seconds(1));
    assert_eq!(app.drain().await, 50);
    assert!(ids.iter().all(|id| state(&app, id) == InvocationState::Delivered));
    error_text(app.post("/dead-letters/v1/replay", &json!({"filters": "nonsense"})).await, 400).await;
    error_text(app.post("/dead-letters/v1/replay", &json!({"unknown": 1})).await, 400).await;
}

#[actix_web::test]
async fn events_that_arrive_while_a_410_holds_a_subscription_off_can_be_replayed_after_it_is_enabled() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.script([Reply::status(410)]);
    let sub = app.subscribe_url(&sink.url("/h")).await;
    let user_off = app.subscribe("test:fire-and-forget", json!({"name": "off", "enabled": false, "httpConfig": {"url": sink.url("/off"), "httpDispatchMode": "SYNC"}})).await;
    app.publish("test:fire-and-forget", json!({"identityId": "first"})).await;
    app.drain().await;
    for i in 0..2 {
        let body: Value = app
            .publish("test:fire-and-forget", json!({"identityId": format!("later{i}")}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(body, json!([]), "nothing is sent while the subscription is off");
    }
    let held: Value = app.get("/dead-letters/v1").await.json().await.unwrap();
    assert_eq!(held.as_array().unwrap().len(), 3, "the 410'd event and the two held ones: {held}");
    assert!(held[0]["lastError"].as_str().unwrap().starts_with("not sent: the subscriber answered 410 Gone"));
    assert!(
        held.as_array().unwrap().iter().all(|d| d["subscriptionId"] == sub["id"]),
        "a subscription a user disabled keeps nothing"
    );
    assert_ne!(held[0]["subscriptionId"], user_off["id"]);

    let on = json!([{"op": "replace", "path": "/enabled", "value": true}]);
    assert_eq!(
        app.patch(&format!("/trigger-subscriptions/v1/{}", sub["id"].as_str().unwrap()), &on).await.status(),
        200
    );
    let replayed: Value = app.post("/dead-letters/v1/replay", &json!({})).await.json().await.unwrap();
    assert_eq!(replayed, json!({"replayed": 3, "skipped": 0}));
    app.drain().await;
    let bodies: Vec<String> =
        sink.received().iter().skip(1).map(|r| r.json()["identityId"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bodies.len(), 3);
    for id in ["first", "later0", "later1"] {
        assert!(bodies.iter().any(|b| b == id), "{id} not delivered: {bodies:?}");
    }
}
