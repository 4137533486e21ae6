//! W3C trace context: a publish's `traceparent` is kept with its event and continued on every
//! delivery of it, through retries and chained triggers.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::sink::{Reply, Sink};

const PRODUCER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const PRODUCER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// The trace id and span id of a valid version-00 `traceparent`.
fn fields(traceparent: &str) -> (String, String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "{traceparent}");
    assert_eq!(parts[0], "00", "{traceparent}");
    assert_eq!((parts[1].len(), parts[2].len(), parts[3].len()), (32, 16, 2), "{traceparent}");
    assert!(
        parts[1].bytes().chain(parts[2].bytes()).all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    (parts[1].to_owned(), parts[2].to_owned(), parts[3].to_owned())
}

async fn publish_traced(app: &TestApp, trigger: &str, input: Value, traceparent: &str) {
    let response = app
        .http
        .post(app.url("/trigger-invocations/v1/start"))
        .bearer_auth(&app.token)
        .header("traceparent", traceparent)
        .json(&json!({"triggerId": trigger, "input": input, "contentJson": {}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
}

#[actix_web::test]
async fn every_delivery_of_a_traced_event_continues_the_producers_trace_under_its_own_span() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.script([Reply::status(503)]);
    sink.always(Reply::status(200));
    app.subscribe_url(&sink.url("/traced")).await;
    publish_traced(&app, "test:fire-and-forget", json!({"identityId": "t-1"}), PRODUCER).await;
    app.drain().await;
    app.advance(TimeDelta::seconds(10));
    app.drain().await;

    let received = sink.received();
    assert_eq!(received.len(), 2, "a failed attempt and its retry");
    let spans: Vec<(String, String, String)> =
        received.iter().map(|r| fields(&r.headers["traceparent"])).collect();
    for (trace, span, flags) in &spans {
        assert_eq!(trace, PRODUCER_TRACE);
        assert_eq!(flags, "01", "the producer's flags are kept");
        assert_ne!(span, "00f067aa0ba902b7", "each delivery is a span of its own");
    }
    assert_ne!(spans[0].1, spans[1].1, "the retry is another span");
}

#[actix_web::test]
async fn an_event_without_a_valid_traceparent_starts_one_trace_shared_by_its_deliveries() {
    let app = TestApp::spawn().await;
    let (a, b) = (Sink::start(), Sink::start());
    a.always(Reply::status(200));
    b.always(Reply::status(200));
    app.subscribe_url(&a.url("/a")).await;
    app.subscribe_url(&b.url("/b")).await;
    publish_traced(&app, "test:fire-and-forget", json!({"identityId": "t-2"}), "00-not-a-trace-01").await;
    app.publish("test:fire-and-forget", json!({"identityId": "t-3"})).await;
    app.drain().await;

    let traces = |sink: &Sink| -> Vec<String> {
        let mut received = sink.received();
        received.sort_by_key(|r| r.json()["identityId"].as_str().unwrap().to_owned());
        received.iter().map(|r| fields(&r.headers["traceparent"]).0).collect()
    };
    let (to_a, to_b) = (traces(&a), traces(&b));
    assert_eq!(to_a.len(), 2);
    assert_eq!(to_a, to_b, "both subscribers of an event see its one trace");
    assert_ne!(to_a[0], to_a[1], "two events, two traces");
    assert!(!to_a.contains(&PRODUCER_TRACE.to_owned()));
}

#[actix_web::test]
async fn a_chained_trigger_publishes_into_the_same_trace() {
    let app = TestApp::spawn().await;
    crate::chains::trigger(&app, "test:traced-next", &[]).await;
    let chained = app
        .post(
            "/trigger-subscriptions/v1",
            &json!({"name": "chain", "triggerId": "test:fire-and-forget", "type": "TRIGGER",
                "triggerConfig": {"triggerId": "test:traced-next"}}),
        )
        .await;
    assert_eq!(chained.status(), 201, "{}", chained.text().await.unwrap());
    let sink = Sink::start();
    sink.always(Reply::status(200));
    app.subscribe_url_to("test:traced-next", &sink.url("/next")).await;
    publish_traced(&app, "test:fire-and-forget", json!({"identityId": "t-4"}), PRODUCER).await;
    app.drain().await;
    let received = sink.received();
    assert_eq!(received.len(), 1);
    assert_eq!(fields(&received[0].headers["traceparent"]).0, PRODUCER_TRACE);
}
