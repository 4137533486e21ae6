//! `GET /metrics`: the counters move by exactly what happened, the gauges read the database,
//! and a configured token is required.

use std::collections::HashMap;
use std::time::Duration;

use chrono::TimeDelta;
use serde_json::json;

use crate::helpers::TestApp;
use crate::sink::{Reply, Sink};

/// Every sample of a scrape, by its series (`name{labels}`).
async fn scrape(app: &TestApp) -> HashMap<String, f64> {
    let response = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = response.text().await.unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("a sample: {line}"));
            (series.to_owned(), value.parse().unwrap_or_else(|_| panic!("a number: {line}")))
        })
        .collect()
}

fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

/// How much each of `series` moved between two scrapes.
fn moved(before: &HashMap<String, f64>, after: &HashMap<String, f64>, series: &[&str]) -> Vec<f64> {
    series.iter().map(|s| sample(after, s) - sample(before, s)).collect()
}

const OUTCOMES: [&str; 4] = [
    "hookgate_deliveries_total{outcome=\"delivered\"}",
    "hookgate_deliveries_total{outcome=\"retried\"}",
    "hookgate_deliveries_total{outcome=\"dead\"}",
    "hookgate_deliveries_total{outcome=\"refused\"}",
];

#[actix_web::test]
#[expect(clippy::float_cmp, reason = "the samples compared are whole numbers, exact in an f64")]
async fn a_delivery_a_retry_and_a_dead_letter_move_the_counters_by_exactly_one_each() {
    let app = TestApp::spawn_with(|s| s.retry_schedule = vec![Duration::from_secs(5)]).await;
    let (ok, failing) = (Sink::start(), Sink::start());
    ok.always(Reply::status(200));
    failing.always(Reply::status(500));
    app.subscribe_url(&ok.url("/ok")).await;
    let failing_sub = app.subscribe_url(&failing.url("/failing")).await;
    let before = scrape(&app).await;

    let published = app.publish("test:fire-and-forget", json!({"identityId": "m-1"})).await;
    assert!(published.status().is_success());
    assert_eq!(app.drain().await, 2);
    let after_first = scrape(&app).await;
    assert_eq!(moved(&before, &after_first, &OUTCOMES), [1.0, 1.0, 0.0, 0.0], "a delivery and a retry");

    app.advance(TimeDelta::seconds(6));
    assert_eq!(app.drain().await, 1);
    let after = scrape(&app).await;
    assert_eq!(moved(&after_first, &after, &OUTCOMES), [0.0, 0.0, 1.0, 0.0], "the retry's last attempt");
    assert_eq!(
        moved(&before, &after, &["hookgate_events_published_total{trigger=\"test:fire-and-forget\"}"]),
        [1.0]
    );
    assert_eq!(moved(&before, &after, &["hookgate_delivery_duration_seconds_count"]), [3.0]);
    assert_eq!(
        moved(
            &before,
            &after,
            &["hookgate_http_requests_total{route=\"/trigger-invocations/v1/start\",status=\"200\"}"]
        ),
        [1.0]
    );
    assert_eq!(sample(&after, "hookgate_invocations{state=\"DELIVERED\"}"), 1.0);
    assert_eq!(sample(&after, "hookgate_invocations{state=\"DEAD\"}"), 1.0);
    assert_eq!(sample(&after, "hookgate_invocations{state=\"PENDING\"}"), 0.0);
    assert_eq!(sample(&after, "hookgate_oldest_due_seconds"), 0.0);
    assert!(sample(&after, "hookgate_db_pool_connections") >= 1.0);

    // A second event waits for its retry: the gauges show it once it is due.
    app.publish("test:fire-and-forget", json!({"identityId": "m-2"})).await;
    app.drain().await;
    app.advance(TimeDelta::seconds(7));
    let waiting = scrape(&app).await;
    assert_eq!(sample(&waiting, "hookgate_invocations{state=\"PENDING\"}"), 1.0);
    let oldest = sample(&waiting, "hookgate_oldest_due_seconds");
    // The retry was due 4 to 6 s (5 s ± 20 % jitter) after the attempt.
    assert!((1.0..=3.0).contains(&oldest), "due for 1 to 3 s: {oldest}");
    let id = failing_sub["id"].as_str().unwrap();
    assert_eq!(
        sample(&waiting, &format!("hookgate_subscription_failing_invocations{{subscription=\"{id}\"}}")),
        1.0
    );
}

#[actix_web::test]
async fn a_refused_target_counts_as_refused_and_makes_no_request() {
    let app = TestApp::spawn().await;
    app.subscribe_url("http://127.0.0.2:9/internal").await;
    let before = scrape(&app).await;
    app.publish("test:fire-and-forget", json!({"identityId": "r-1"})).await;
    app.drain().await;
    let after = scrape(&app).await;
    assert_eq!(moved(&before, &after, &OUTCOMES), [0.0, 0.0, 0.0, 1.0]);
    assert_eq!(moved(&before, &after, &["hookgate_delivery_duration_seconds_count"]), [0.0]);
}

#[actix_web::test]
async fn a_metrics_token_is_required_once_configured() {
    let token = "scrape-me-0123456789";
    let app =
        TestApp::spawn_with(|s| s.metrics_token = Some(hookgate::domain::secret::Secret::new(token))).await;
    let missing = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    // SailPoint's 401 body.
    let body: serde_json::Value = missing.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("metrics token"), "{body}");
    let wrong = app.http.get(app.url("/metrics")).bearer_auth("scrape-me-wrong-token").send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app.http.get(app.url("/metrics")).bearer_auth(token).send().await.unwrap();
    assert_eq!(right.status(), 200);
    assert!(right.text().await.unwrap().contains("hookgate_deliveries_total"));
}
