//! `/hooks/v1/{id}`: senders deliver to WEBHOOK sources. Signatures here are made by hookgate's
//! own Standard Webhooks signer, which the contract run checks against the `standardwebhooks`
//! package; the contract run also signs as Stripe, GitHub and generic HMAC senders do, with
//! their own libraries.

use std::time::Duration;

use hookgate::clock::Clock as _;
use hookgate::delivery::signer::{SigningKey, signature_header};
use hookgate::domain::invocation::InvocationState;
use hookgate::domain::secret::{Secret, new_signing_secret};
use hookgate::store::invocations;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};
use crate::sink::{Reply, Sink};
use crate::sources::{TRIGGER, create_source, webhook_source};

/// Posts `body` to a source's URL as a Standard Webhooks sender would, signed at `at`.
async fn send_signed(
    app: &TestApp,
    url: &str,
    secret: &Secret,
    id: &str,
    at: i64,
    body: &str,
) -> reqwest::Response {
    let key = SigningKey::from_secret(secret).unwrap();
    app.http
        .post(url)
        .header("Content-Type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", at.to_string())
        .header("webhook-signature", signature_header(&[key], id, at, body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

fn now_s(app: &TestApp) -> i64 {
    app.clock.now().and_utc().timestamp()
}

fn count(app: &TestApp, state: InvocationState) -> i64 {
    app.store.run_blocking(|c| invocations::count_in_state(c, state)).unwrap()
}

async fn open_source(app: &TestApp, extra: Value) -> String {
    let mut body = json!({"name": "open", "type": "WEBHOOK", "triggerId": TRIGGER, "webhookConfig": {"verification": "NONE"}});
    crate::helpers::merge(&mut body, extra);
    create_source(app, &body).await["url"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn a_signed_webhook_fires_one_event_and_a_redelivery_fires_none() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.always(Reply::status(200));
    app.subscribe_url(&sink.url("/in")).await;
    let secret = new_signing_secret();
    let url = create_source(&app, &webhook_source("std", secret.expose())).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = r#"{"identityId": "u1", "amount": 3}"#;

    let first = send_signed(&app, &url, &secret, "msg_1", now_s(&app), body).await;
    assert_eq!(first.status(), 202);
    let answer: Value = first.json().await.unwrap();
    assert_eq!(answer["invocations"], 1, "{answer}");
    let event_id = answer["eventId"].as_str().unwrap().to_owned();

    let again = send_signed(&app, &url, &secret, "msg_1", now_s(&app), body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["Idempotent-Replayed"], "true");
    let repeated: Value = again.json().await.unwrap();
    assert_eq!(repeated["eventId"], event_id.as_str());
    assert_eq!(count(&app, InvocationState::Pending), 1, "the redelivery stored nothing");

    app.drain().await;
    let received = sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(received[0].json(), json!({"identityId": "u1", "amount": 3}));
    let source: Value = app.get("/sources/v1/std").await.json().await.unwrap();
    assert_eq!(source["status"]["received"], 2);
    assert_eq!(source["status"]["fired"], 1);
    assert_eq!(source["status"]["rejected"], 0);
    assert!(source["status"]["lastEventAt"].is_string(), "{source}");
}

#[actix_web::test]
async fn forged_expired_and_unsigned_messages_are_refused_stored_nowhere_and_listed() {
    let app = TestApp::spawn().await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let secret = new_signing_secret();
    let url = create_source(&app, &webhook_source("std", secret.expose())).await["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = r#"{"identityId": "u1"}"#;

    let forged = send_signed(&app, &url, &new_signing_secret(), "m1", now_s(&app), body).await;
    assert_eq!(forged.status(), 401);
    let forged: Value = forged.json().await.unwrap();
    assert!(forged["error"].as_str().unwrap().contains("signature"), "{forged}");
    let expired = send_signed(&app, &url, &secret, "m2", now_s(&app) - 301, body).await;
    assert_eq!(expired.status(), 401);
    let unsigned =
        app.http.post(&url).header("Content-Type", "application/json").body(body).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let not_json =
        app.http.post(&url).header("Content-Type", "text/plain").body("hello").send().await.unwrap();
    assert_eq!(not_json.status(), 401, "the signature is checked before the body is read as JSON");

    assert_eq!(count(&app, InvocationState::Pending), 0);
    let stored: i64 = app.store.run_blocking(invocations::count_all).unwrap();
    assert_eq!(stored, 0);
    let rejections: Value = app.get("/sources/v1/std/rejections").await.json().await.unwrap();
    let reasons: Vec<&str> =
        rejections.as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["BAD_SIGNATURE"; 4]);
    assert!(rejections[3]["message"].as_str().unwrap().contains("does not match"), "{rejections}");
    assert_eq!(rejections[3]["excerpt"], body);
    assert!(rejections[2]["message"].as_str().unwrap().contains("5 minutes"), "newest first: {rejections}");
    assert!(
        rejections[0]["message"].as_str().unwrap().contains("webhook-id header is missing"),
        "{rejections}"
    );
    let source: Value = app.get("/sources/v1/std").await.json().await.unwrap();
    assert_eq!(source["status"]["rejected"], 4);
    assert!(source["status"]["lastError"].as_str().unwrap().starts_with("BAD_SIGNATURE"), "{source}");
    let limited: Value = app.get("/sources/v1/std/rejections?limit=1").await.json().await.unwrap();
    assert_eq!(limited.as_array().unwrap().len(), 1);
    assert_eq!(app.get("/sources/v1/std/rejections?limit=1000").await.status(), 400);
}

#[actix_web::test]
async fn an_unsigned_source_takes_messages_only_at_its_token_url() {
    let app = TestApp::spawn().await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let url = open_source(&app, json!({"id": "open"})).await;
    let post = |url: String, body: &'static str, content_type: &'static str| {
        let http = app.http.clone();
        async move { http.post(url).header("Content-Type", content_type).body(body).send().await.unwrap() }
    };
    assert_eq!(post(url.clone(), r#"{"identityId": "a"}"#, "application/json").await.status(), 202);
    assert_eq!(
        post(app.url("/hooks/v1/open"), r#"{"identityId": "a"}"#, "application/json").await.status(),
        404
    );
    assert_eq!(
        post(app.url("/hooks/v1/open/hk_wrong"), r#"{"identityId": "a"}"#, "application/json").await.status(),
        404
    );
    assert_eq!(post(app.url("/hooks/v1/nobody"), "{}", "application/json").await.status(), 404);
    let text = post(url.clone(), "hello", "text/plain").await;
    assert!(error_text(text, 415).await.contains("JSON"));
    assert_eq!(post(url.clone(), "{oops", "application/json").await.status(), 400);
    let schema = post(url.clone(), r#"{"other": 1}"#, "application/json").await;
    assert!(error_text(schema, 422).await.contains("input schema"));
    let array = post(url.clone(), "[1]", "application/json").await;
    assert!(error_text(array, 400).await.contains("not a JSON object"));
    let rejections: Value = app.get("/sources/v1/open/rejections").await.json().await.unwrap();
    let reasons: Vec<&str> =
        rejections.as_array().unwrap().iter().map(|r| r["reason"].as_str().unwrap()).collect();
    assert_eq!(reasons, ["NOT_AN_OBJECT", "INPUT_SCHEMA", "NOT_JSON", "NOT_JSON"]);
    assert_eq!(count(&app, InvocationState::Pending), 1, "only the good message was stored");

    let disabled =
        app.patch("/sources/v1/open", &json!([{"op": "replace", "path": "/enabled", "value": false}])).await;
    assert_eq!(disabled.status(), 200);
    assert_eq!(post(url, r#"{"identityId": "a"}"#, "application/json").await.status(), 409);
}

#[actix_web::test]
async fn input_path_and_routes_pick_the_input_and_the_trigger() {
    let app = TestApp::spawn().await;
    let custom = json!({
        "id": "test:charges", "name": "Charges", "type": "FIRE_AND_FORGET",
        "inputSchema": {"type": "object", "required": ["charge"]}, "exampleInput": {"charge": "ch_1"},
    });
    assert_eq!(app.post("/triggers/v1", &custom).await.status(), 201);
    app.subscribe_url_to("test:charges", "http://127.0.0.1:9/charges").await;
    app.subscribe_url("http://127.0.0.1:9/default").await;
    let url = open_source(
        &app,
        json!({
            "id": "routed",
            "inputPath": "$.data.object",
            "routes": {"path": "$.type", "map": {"charge.succeeded": "test:charges"}, "otherwise": "DROP"},
        }),
    )
    .await;
    let send = |body: Value| {
        let (http, url) = (app.http.clone(), url.clone());
        async move { http.post(url).json(&body).send().await.unwrap() }
    };
    let routed = send(json!({"type": "charge.succeeded", "data": {"object": {"charge": "ch_9"}}})).await;
    assert_eq!(routed.status(), 202);
    let dropped = send(json!({"type": "refund.created", "data": {"object": {"charge": "ch_9"}}})).await;
    assert_eq!(dropped.status(), 202);
    let dropped: Value = dropped.json().await.unwrap();
    assert_eq!(dropped, json!({"eventId": null, "invocations": 0}));
    let rows = app.store.run_blocking(invocations::count_all).unwrap();
    assert_eq!(rows, 1);
    let rejections: Value = app.get("/sources/v1/routed/rejections").await.json().await.unwrap();
    assert_eq!(rejections[0]["reason"], "UNKNOWN_ROUTE");

    // By header, with the source's own trigger for anything unnamed.
    let by_header = open_source(
        &app,
        json!({
            "id": "by-header",
            "routes": {"header": "X-GitHub-Event", "map": {"push": "test:charges"}},
        }),
    )
    .await;
    let pushed = app
        .http
        .post(&by_header)
        .header("X-GitHub-Event", "push")
        .json(&json!({"charge": "c"}))
        .send()
        .await
        .unwrap();
    assert_eq!(pushed.status(), 202);
    let other = app
        .http
        .post(&by_header)
        .header("X-GitHub-Event", "issues")
        .json(&json!({"identityId": "i"}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 202);
    let other: Value = other.json().await.unwrap();
    assert_eq!(other["invocations"], 1);
    let listed: Value = app.get("/trigger-invocations/v1?sorters=created").await.json().await.unwrap();
    let triggers: Vec<&str> =
        listed.as_array().unwrap().iter().map(|i| i["triggerId"].as_str().unwrap()).collect();
    assert_eq!(triggers, ["test:charges", "test:charges", TRIGGER]);
}

#[actix_web::test]
async fn a_get_source_takes_the_query_string_as_input() {
    let app = TestApp::spawn().await;
    app.subscribe_url("http://127.0.0.1:9/never").await;
    let url = open_source(
        &app,
        json!({"id": "pinged", "webhookConfig": {"verification": "NONE", "methods": ["GET"]}}),
    )
    .await;
    let got = app.http.get(format!("{url}?identityId=u7&x=1")).send().await.unwrap();
    assert_eq!(got.status(), 202);
    let posted = app.http.post(&url).json(&json!({"identityId": "u7"})).send().await.unwrap();
    assert_eq!(posted.status(), 405);
    assert_eq!(posted.headers()["Allow"], "GET");
    let listed: Value = app.get("/trigger-invocations/v1").await.json().await.unwrap();
    assert_eq!(listed[0]["startInvocationInput"]["input"], json!({"identityId": "u7", "x": "1"}));
}

/// A SYNC source on the request/response test trigger, whose subscriber is at `subscriber`.
async fn sync_source(app: &TestApp, subscriber: &str) -> String {
    let http = json!({"httpConfig": {"url": subscriber, "httpDispatchMode": "SYNC"}});
    app.subscribe("test:request-response", http).await;
    let source = json!({
        "id": "blocking", "triggerId": "test:request-response",
        "webhookConfig": {"verification": "NONE", "response": "SYNC"},
    });
    open_source(app, source).await
}

#[actix_web::test]
async fn a_sync_source_answers_its_sender_with_the_subscriber_s_output() {
    let app = TestApp::spawn_with(|s| s.workers = 1).await;
    let sink = Sink::start();
    sink.always(Reply::status(200).body(r#"{"approved": true}"#));
    let url = sync_source(&app, &sink.url("/rr")).await;
    let answered = app.http.post(&url).json(&json!({"identityId": "u1"})).send().await.unwrap();
    assert_eq!(answered.status(), 200);
    let output: Value = answered.json().await.unwrap();
    assert_eq!(output, json!({"approved": true}));
}

#[actix_web::test]
async fn a_sync_source_answers_504_when_no_output_comes_in_time() {
    let app = TestApp::spawn_with(|s| s.max_wait = Duration::from_millis(200)).await;
    let url = sync_source(&app, "http://127.0.0.1:9/rr").await;
    let answered = app.http.post(&url).json(&json!({"identityId": "u1"})).send().await.unwrap();
    assert_eq!(answered.status(), 504);
    let body: Value = answered.json().await.unwrap();
    assert_eq!(body["state"], "PENDING", "{body}");
    assert!(body["eventId"].is_string(), "{body}");
}

#[actix_web::test]
async fn counts_written_by_one_instance_are_read_by_the_next() {
    let app = TestApp::spawn().await;
    let url = open_source(&app, json!({"id": "counted"})).await;
    for _ in 0..3 {
        assert_eq!(app.http.post(&url).json(&json!({"identityId": "u"})).send().await.unwrap().status(), 202);
    }
    assert_eq!(app.http.post(&url).json(&json!([])).send().await.unwrap().status(), 400);
    let db = app.stop().await;
    let next = TestApp::spawn_on(db, |_| {}).await;
    let source: Value = next.get("/sources/v1/counted").await.json().await.unwrap();
    assert_eq!(source["status"]["received"], 4, "{source}");
    assert_eq!(source["status"]["fired"], 3);
    assert_eq!(source["status"]["rejected"], 1);
    let rejections: Value = next.get("/sources/v1/counted/rejections").await.json().await.unwrap();
    assert_eq!(rejections.as_array().unwrap().len(), 1);
}
