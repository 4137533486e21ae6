//! Scheduled triggers: cron checked on create and update, one event per tick across instances,
//! missed ticks skipped.

use std::sync::Arc;

use chrono::{NaiveDateTime, TimeDelta};
use hookgate::clock::Clock as _;
use hookgate::domain::invocation::InvocationState;
use hookgate::domain::schedule::Schedule;
use hookgate::store::{invocations, schedules};
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};
use crate::sink::Sink;

const HOURLY: &str = "0 0 * * * *";

fn trigger(id: &str, schedule: &str) -> Value {
    json!({
        "id": id,
        "name": "Hourly report",
        "type": "FIRE_AND_FORGET",
        "inputSchema": {"type": "object", "properties": {"tick": {"type": "string"}}},
        "exampleInput": {"tick": "2026-01-01T00:00:00.000Z"},
        "params": {"report": "sales"},
        "schedule": schedule,
    })
}

/// Moves the app's clock to `offset` past the next tick of `schedule`; returns that tick.
fn to_next_tick(app: &TestApp, schedule: &str, offset: TimeDelta) -> NaiveDateTime {
    let s = Schedule::parse(schedule, None).unwrap();
    let now = app.clock.now();
    let tick = s.next_tick(now).unwrap();
    app.advance(tick - now + offset);
    tick
}

fn fired(app: &TestApp, id: &str) -> Vec<NaiveDateTime> {
    let id = id.parse().unwrap();
    app.store.run_blocking(|c| schedules::fired(c, &id)).unwrap()
}

#[actix_web::test]
async fn a_scheduled_trigger_fires_once_per_tick_with_the_tick_and_its_params() {
    let app = TestApp::spawn().await;
    let created = app.post("/triggers/v1", &trigger("report:hourly", HOURLY)).await;
    assert_eq!(created.status(), 201);
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["schedule"], HOURLY);
    let sink = Sink::start();
    app.subscribe_url_to("report:hourly", &sink.url("/r")).await;

    // Half an hour past a tick, whatever the wall clock said at the start: no tick is due.
    to_next_tick(&app, HOURLY, TimeDelta::minutes(30));
    assert_eq!(app.scheduler.run_once().await.unwrap(), 0, "nothing before the first tick");
    let tick = to_next_tick(&app, HOURLY, TimeDelta::seconds(2));
    assert_eq!(app.scheduler.run_once().await.unwrap(), 1);
    assert_eq!(app.scheduler.run_once().await.unwrap(), 0, "a tick fires once");
    app.drain().await;
    let received = sink.received();
    assert_eq!(received.len(), 1);
    let expected = tick.and_utc().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    assert_eq!(received[0].json(), json!({"tick": expected, "report": "sales"}));

    let next = to_next_tick(&app, HOURLY, TimeDelta::zero());
    assert_eq!(app.scheduler.run_once().await.unwrap(), 1);
    assert_eq!(fired(&app, "report:hourly"), vec![tick, next]);
}

#[actix_web::test]
async fn ticks_missed_while_nothing_ran_are_skipped_not_replayed_in_a_burst() {
    let app = TestApp::spawn().await;
    app.post("/triggers/v1", &trigger("report:hourly", HOURLY)).await;
    let first = to_next_tick(&app, HOURLY, TimeDelta::seconds(1));
    assert_eq!(app.scheduler.run_once().await.unwrap(), 1);

    // Down for five hours: only the latest tick, still within the grace, fires.
    app.advance(TimeDelta::hours(5));
    assert_eq!(app.scheduler.run_once().await.unwrap(), 1);
    assert_eq!(fired(&app, "report:hourly"), vec![first, first + TimeDelta::hours(5)]);

    // Down past a tick's grace: nothing fires until the next tick.
    app.advance(TimeDelta::minutes(30) + TimeDelta::hours(1));
    assert_eq!(app.scheduler.run_once().await.unwrap(), 0);
    assert_eq!(fired(&app, "report:hourly").len(), 2);
}

#[actix_web::test]
async fn two_instances_on_one_database_fire_each_tick_once() {
    let a = TestApp::spawn().await;
    let b = TestApp::spawn_on(Arc::clone(&a.db), |_| {}).await;
    a.post("/triggers/v1", &trigger("report:every-second", "* * * * * *")).await;
    a.subscribe_url_to("report:every-second", "http://127.0.0.1:9/never").await;
    let start = a.clock.now();
    b.advance(start - b.clock.now());
    let mut total = 0;
    for _ in 0..20 {
        a.advance(TimeDelta::seconds(1));
        b.advance(TimeDelta::seconds(1));
        let (x, y) = tokio::join!(a.scheduler.run_once(), b.scheduler.run_once());
        total += x.unwrap() + y.unwrap();
    }
    assert_eq!(total, 20);
    let pending = a.store.run_blocking(|c| invocations::count_in_state(c, InvocationState::Pending)).unwrap();
    assert_eq!(pending, 20, "one event, so one invocation, per tick");
}

#[actix_web::test]
async fn invalid_schedules_are_refused_with_the_reason() {
    let app = TestApp::spawn().await;
    let five = app.post("/triggers/v1", &trigger("report:a", "0 * * * *")).await;
    assert!(error_text(five, 400).await.contains("has 5 fields; a schedule has 6"));
    let bad = app.post("/triggers/v1", &trigger("report:a", "0 0 25 * * *")).await;
    assert!(error_text(bad, 400).await.contains("not a valid cron expression"));
    let mut zoned = trigger("report:a", HOURLY);
    zoned["timezone"] = json!("Mars/Olympus");
    assert!(error_text(app.post("/triggers/v1", &zoned).await, 400).await.contains("IANA time zone"));
    let mut strict = trigger("report:a", HOURLY);
    strict["inputSchema"] = json!({"type": "object", "required": ["region"]});
    strict["exampleInput"] = json!({"region": "eu"});
    assert!(error_text(app.post("/triggers/v1", &strict).await, 400).await.contains("must accept a tick"));

    let mut good = trigger("report:a", HOURLY);
    good["timezone"] = json!("Europe/Paris");
    let created: Value = app.post("/triggers/v1", &good).await.json().await.unwrap();
    assert_eq!(created["timezone"], "Europe/Paris");
    let patched = app
        .patch(
            "/triggers/v1/report:a",
            &json!([{"op": "replace", "path": "/schedule", "value": "61 * * * * *"}]),
        )
        .await;
    assert!(error_text(patched, 400).await.contains("not a valid cron expression"));
    let unchanged: Value = app.get("/triggers/v1/report:a").await.json().await.unwrap();
    assert_eq!(unchanged["schedule"], HOURLY);
}
