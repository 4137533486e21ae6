//! Auto-disable and operational events: a subscription whose deliveries all fail for five days
//! is switched off and holds its events; hookgate publishes on its own triggers, never to the
//! subscription an event is about, and publishes no `invocation-dead` about its own events.

use std::time::Duration;

use chrono::TimeDelta;
use hookgate::health::Sweeper;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};
use crate::sink::{Reply, Sink};
use crate::sources::create_source;

const FIVE_DAYS: Duration = Duration::from_secs(5 * 86_400);

fn sweeper(app: &TestApp) -> Sweeper {
    Sweeper::new(app.store.clone(), app.clock.clone(), FIVE_DAYS)
}

async fn subscription(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/trigger-subscriptions/v1/{id}")).await.json().await.unwrap()
}

fn input_of(received: &crate::sink::Received) -> Value {
    let mut body = received.json();
    body.as_object_mut().unwrap().remove("_metadata");
    body
}

#[actix_web::test]
async fn a_subscription_whose_deliveries_all_fail_for_five_days_is_switched_off_and_loses_nothing() {
    let mut app = TestApp::spawn_with(|s| s.retry_schedule = vec![Duration::from_secs(3600)]).await;
    let (failing, flaky, operator) = (Sink::start(), Sink::start(), Sink::start());
    failing.always(Reply::status(500));
    flaky.always(Reply::status(503));
    let sub = app.subscribe_url(&failing.url("/h")).await;
    let sub_id = sub["id"].as_str().unwrap().to_owned();
    let flaky_sub = app.subscribe_url(&flaky.url("/h")).await;
    app.subscribe_url_to("hookgate:subscription-disabled", &operator.url("/ops")).await;
    let sweep = sweeper(&app);
    for day in 0..5 {
        // Tokens last 12 hours.
        app.token = app.token_for(&["sp:scopes:all"]).await;
        if day == 3 {
            flaky.always(Reply::status(200));
        }
        app.publish("test:fire-and-forget", json!({"identityId": format!("day{day}")})).await;
        app.drain().await;
        flaky.always(Reply::status(503));
        app.advance(TimeDelta::hours(1));
        app.drain().await;
        app.advance(TimeDelta::hours(23));
        if day < 4 {
            assert!(sweep.run_once().await.unwrap().is_empty(), "day {day}: not five days yet");
        }
    }
    app.token = app.token_for(&["sp:scopes:all"]).await;
    app.publish("test:fire-and-forget", json!({"identityId": "day5"})).await;
    app.drain().await;
    let disabled = sweep.run_once().await.unwrap();
    assert_eq!(disabled.len(), 1, "only the one that never succeeded: {disabled:?}");
    assert_eq!(disabled[0].subscription.as_str(), sub_id);
    assert_eq!(disabled[0].failures, 11, "two attempts a day for five days, and today's first");
    assert!(sweep.run_once().await.unwrap().is_empty(), "switched off once");

    let read = subscription(&app, &sub_id).await;
    assert_eq!(read["enabled"], false);
    let reason = read["disabledReason"].as_str().unwrap();
    assert!(reason.starts_with("every delivery failed for 5d: 11 failures since "), "{reason}");
    assert!(reason.ends_with("the last: subscriber answered HTTP 500"), "{reason}");
    assert_eq!(subscription(&app, flaky_sub["id"].as_str().unwrap()).await["enabled"], true);

    app.drain().await;
    let told = operator.received();
    assert_eq!(told.len(), 1, "one operational event");
    let event = input_of(&told[0]);
    assert_eq!(
        (&event["subscriptionId"], &event["triggerId"], &event["failures"], &event["reason"]),
        (&json!(sub_id), &json!("test:fire-and-forget"), &json!(11), &json!(reason))
    );
    let audit: Value = app
        .get(&format!(
            "/audit/v1?filters=resourceId%20eq%20%22{sub_id}%22%20and%20actor%20eq%20%22hookgate%22"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(audit[0]["action"], "subscription.disable", "{audit}");

    let sent_before = failing.received().len();
    let body: Value =
        app.publish("test:fire-and-forget", json!({"identityId": "while-off"})).await.json().await.unwrap();
    let to: Vec<&Value> = body.as_array().unwrap().iter().map(|i| &i["subscriptionId"]).collect();
    assert_eq!(to, [&flaky_sub["id"]], "nothing is sent to it while it is off");
    app.advance(TimeDelta::hours(2));
    app.drain().await;
    assert_eq!(failing.received().len(), sent_before, "not even today's retry");

    let on = json!([{"op": "replace", "path": "/enabled", "value": true}]);
    assert_eq!(app.patch(&format!("/trigger-subscriptions/v1/{sub_id}"), &on).await.status(), 200);
    failing.always(Reply::status(200));
    let filter = format!("subscriptionId eq \"{sub_id}\"");
    let replayed: Value =
        app.post("/dead-letters/v1/replay", &json!({"filters": filter})).await.json().await.unwrap();
    assert_eq!(replayed["replayed"], 7, "days 0–5 and the event held while off: {replayed}");
    app.drain().await;
    let mut delivered: Vec<String> = failing
        .received()
        .iter()
        .skip(sent_before)
        .map(|r| r.json()["identityId"].as_str().unwrap().to_owned())
        .collect();
    delivered.sort();
    assert_eq!(delivered, ["day0", "day1", "day2", "day3", "day4", "day5", "while-off"]);
    assert!(sweep.run_once().await.unwrap().is_empty(), "switched on, it starts afresh");
}

#[actix_web::test]
async fn an_operational_event_never_goes_to_the_subscription_it_is_about() {
    let app = TestApp::spawn().await;
    let (gone, first_operator, second_operator) = (Sink::start(), Sink::start(), Sink::start());
    gone.always(Reply::status(410));
    first_operator.always(Reply::status(410));
    let sub = app.subscribe_url(&gone.url("/h")).await;
    let first = app.subscribe_url_to("hookgate:subscription-disabled", &first_operator.url("/a")).await;
    app.subscribe_url_to("hookgate:subscription-disabled", &second_operator.url("/b")).await;
    app.publish("test:fire-and-forget", json!({"identityId": "u1"})).await;
    for _ in 0..3 {
        app.drain().await;
    }
    let about: Vec<Value> =
        second_operator.received().iter().map(|r| input_of(r)["subscriptionId"].clone()).collect();
    assert_eq!(about, [sub["id"].clone(), first["id"].clone()], "a 410 switches off and tells");
    assert_eq!(first_operator.received().len(), 1, "told of the first, then switched off itself");
    let held: Value = app
        .get(&format!(
            "/dead-letters/v1?filters=subscriptionId%20eq%20%22{}%22",
            first["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(held.as_array().unwrap().len(), 1, "only its own 410'd event, nothing about itself: {held}");
}

#[actix_web::test]
async fn a_dead_invocation_is_told_once_and_an_operational_one_is_not_told_at_all() {
    let app = TestApp::spawn_with(|s| s.retry_schedule = Vec::new()).await;
    let (failing, operator) = (Sink::start(), Sink::start());
    failing.always(Reply::status(500));
    operator.always(Reply::status(500));
    let sub = app.subscribe_url(&failing.url("/h")).await;
    app.subscribe_url_to("hookgate:invocation-dead", &operator.url("/ops")).await;
    let published: Value =
        app.publish("test:fire-and-forget", json!({"identityId": "u1"})).await.json().await.unwrap();
    for _ in 0..3 {
        app.drain().await;
    }
    let told = operator.received();
    assert_eq!(told.len(), 1, "the operator's own dead invocation is not told again");
    let event = input_of(&told[0]);
    assert_eq!(event["invocationId"], published[0]["id"]);
    assert_eq!(
        (&event["subscriptionId"], &event["triggerId"], &event["attempts"], &event["lastError"]),
        (&sub["id"], &json!("test:fire-and-forget"), &json!(1), &json!("subscriber answered HTTP 500"))
    );
    let dead: Value = app.get("/dead-letters/v1").await.json().await.unwrap();
    assert_eq!(dead.as_array().unwrap().len(), 2, "the first and the operator's: {dead}");
}

#[actix_web::test]
async fn a_source_that_starts_failing_is_told_once_until_it_works_again() {
    let app = TestApp::spawn().await;
    let (feed, operator) = (Sink::start(), Sink::start());
    feed.always(Reply::status(503));
    app.subscribe_url_to("hookgate:source-failing", &operator.url("/ops")).await;
    create_source(
        &app,
        &json!({
            "id": "feed", "name": "the feed", "type": "HTTP_POLL", "triggerId": crate::sources::TRIGGER,
            "pollConfig": {"url": feed.url("/items"), "every": "5s", "itemsPath": "$.data[*]", "idPath": "$.id"},
        }),
    )
    .await;
    let poll_and_tell = || async {
        app.poller.run_once().await.unwrap();
        app.advance(TimeDelta::seconds(5));
        // The counts and the source's state are written about once a second.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        app.drain().await;
    };
    poll_and_tell().await;
    poll_and_tell().await;
    assert_eq!(operator.received().len(), 1, "told once while it keeps failing");
    let event = input_of(&operator.received()[0]);
    assert_eq!(
        (&event["sourceId"], &event["sourceName"], &event["sourceType"]),
        (&json!("feed"), &json!("the feed"), &json!("HTTP_POLL"))
    );
    assert!(event["error"].as_str().unwrap().contains("503"), "{event}");

    feed.always(Reply::status(200).header("Content-Type", "application/json").body(r#"{"data": []}"#));
    poll_and_tell().await;
    feed.always(Reply::status(500));
    poll_and_tell().await;
    assert_eq!(operator.received().len(), 2, "it worked in between, so its next failure is told");
}

#[actix_web::test]
async fn operational_triggers_are_in_the_catalog_and_only_hookgate_publishes_on_them() {
    let app = TestApp::spawn().await;
    for id in ["hookgate:subscription-disabled", "hookgate:invocation-dead", "hookgate:source-failing"] {
        let trigger: Value = app.get(&format!("/triggers/v1/{id}")).await.json().await.unwrap();
        assert_eq!(trigger["type"], "FIRE_AND_FORGET", "{trigger}");
        let schema: Value = serde_json::from_str(trigger["inputSchema"].as_str().unwrap()).unwrap();
        assert!(schema["required"].is_array(), "{trigger}");
        let text = error_text(app.publish(id, trigger["exampleInput"].clone()).await, 400).await;
        assert!(text.contains("only hookgate publishes on it"), "{text}");
    }
}
