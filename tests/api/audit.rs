//! The audit log: every change to triggers, subscriptions, sources and API clients, and every
//! replay and erasure, with who, when, and the resource before and after, secrets left out.

use chrono::TimeDelta;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text};
use crate::sink::{Reply, Sink};
use crate::sources::{create_source, webhook_source};

const BEARER: &str = "audit-bearer-9d8c7b6a";

async fn audit(app: &TestApp, query: &str) -> Value {
    let response = app.get(&format!("/audit/v1{query}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn actions(entries: &Value) -> Vec<&str> {
    entries.as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect()
}

#[actix_web::test]
async fn every_change_is_recorded_with_who_when_and_what_and_no_secret() {
    let mut app = TestApp::spawn_with(|s| s.retry_schedule = Vec::new()).await;
    let (token, actor) = app.client_token(&["sp:scopes:all"]).await;
    app.token = token;
    let sink = Sink::start();
    sink.always(Reply::status(500));

    crate::chains::trigger(&app, "test:audited", &[]).await;
    let patched = app
        .patch("/triggers/v1/test:audited", &json!([{"op": "replace", "path": "/name", "value": "renamed"}]))
        .await;
    assert_eq!(patched.status(), 200);
    let sub = app
        .subscribe(
            "test:fire-and-forget",
            json!({"httpConfig": {"url": sink.url("/a"), "httpDispatchMode": "SYNC",
                "httpAuthenticationType": "BEARER_TOKEN", "bearerTokenAuthConfig": {"bearerToken": BEARER}}}),
        )
        .await;
    let id = sub["id"].as_str().unwrap().to_owned();
    let path = format!("/trigger-subscriptions/v1/{id}");
    let renamed = app.patch(&path, &json!([{"op": "replace", "path": "/name", "value": "audited"}])).await;
    assert_eq!(renamed.status(), 200);
    let rotated: Value = app.post(&format!("{path}/rotate-secret"), &json!({})).await.json().await.unwrap();
    let source_secret = hookgate::domain::secret::new_signing_secret();
    create_source(&app, &webhook_source("audited-source", source_secret.expose())).await;
    assert_eq!(app.delete("/sources/v1/audited-source").await.status(), 204);

    app.publish("test:fire-and-forget", json!({"identityId": "audited"})).await;
    app.drain().await;
    let dead: Value = app.get("/dead-letters/v1").await.json().await.unwrap();
    let invocation = dead[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        app.post(&format!("/trigger-invocations/v1/{invocation}/replay"), &json!({})).await.status(),
        202
    );
    app.drain().await;
    let bulk =
        app.post("/dead-letters/v1/replay", &json!({"filters": format!("subscriptionId eq \"{id}\"")})).await;
    assert_eq!(bulk.status(), 200);
    app.drain().await;
    let erase = format!("/trigger-invocations/v1?filters=subscriptionId%20eq%20%22{id}%22");
    assert_eq!(app.delete(&erase).await.status(), 200);
    assert_eq!(app.delete(&path).await.status(), 204);
    assert_eq!(app.delete("/triggers/v1/test:audited").await.status(), 204);

    let response = app.get("/audit/v1?count=true").await;
    assert_eq!(response.headers()["x-total-count"], "12");
    let text = response.text().await.unwrap();
    for secret in
        [BEARER, rotated["secret"].as_str().unwrap(), sub["secret"].as_str().unwrap(), source_secret.expose()]
    {
        assert!(!text.contains(secret), "the audit log shows a secret: {secret}");
    }
    let entries: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        actions(&entries),
        [
            "trigger.delete",
            "subscription.delete",
            "invocations.erase",
            "dead-letters.replay",
            "invocation.replay",
            "source.delete",
            "source.create",
            "subscription.rotate-secret",
            "subscription.update",
            "subscription.create",
            "trigger.update",
            "trigger.create",
        ][..],
        "newest first"
    );
    for entry in entries.as_array().unwrap() {
        assert_eq!(entry["actor"], actor, "{entry}");
        assert!(entry["at"].as_str().unwrap().ends_with('Z'), "{entry}");
    }
    let update = &entries[8];
    assert_eq!(
        (update["resourceType"].as_str(), update["resourceId"].as_str()),
        (Some("subscription"), Some(id.as_str()))
    );
    assert_eq!(update["after"]["name"], "audited");
    assert_ne!(update["before"]["name"], "audited");
    assert_eq!(update["after"]["httpConfig"]["httpAuthenticationType"], "BEARER_TOKEN");
    assert_eq!(entries[1]["before"]["name"], "audited", "a deletion keeps what was deleted");
    assert_eq!(entries[2]["after"]["invocations"], 1);
    assert_eq!(entries[3]["after"]["replayed"], 1);
}

#[actix_web::test]
async fn the_audit_log_filters_pages_needs_its_scope_and_is_purged_after_its_retention() {
    let mut app = TestApp::spawn().await;
    crate::chains::trigger(&app, "test:one", &[]).await;
    crate::chains::trigger(&app, "test:two", &[]).await;
    let only: Value = audit(&app, "?filters=resourceId%20eq%20%22test%3Atwo%22").await;
    assert_eq!(actions(&only), ["trigger.create"]);
    assert_eq!(only[0]["after"]["id"], "test:two");
    let page = audit(&app, "?limit=1&offset=1").await;
    assert_eq!(page[0]["resourceId"], "test:one");
    let since = audit(
        &app,
        "?filters=at%20gt%20%222000-01-01T00%3A00%3A00Z%22%20and%20action%20eq%20%22trigger.create%22",
    )
    .await;
    assert_eq!(since.as_array().unwrap().len(), 2);
    assert!(error_text(app.get("/audit/v1?filters=name%20eq%20%22x%22").await, 400).await.contains("name"));

    let all = app.token.clone();
    app.token = app.token_for(&["sp:trigger-service-subscriptions:manage", "hookgate:triggers:manage"]).await;
    assert_eq!(app.get("/audit/v1").await.status(), 403);
    app.token = app.token_for(&["hookgate:audit:read"]).await;
    assert_eq!(audit(&app, "").await.as_array().unwrap().len(), 2);

    app.token = all;
    app.advance(TimeDelta::days(91));
    let purged = app.purger.run_once().await.unwrap();
    assert_eq!(purged.audit_entries, 2);
    app.token = app.token_for(&["hookgate:audit:read"]).await;
    assert_eq!(audit(&app, "").await, json!([]));
}

#[actix_web::test]
async fn api_clients_made_and_revoked_on_the_database_are_recorded_as_the_cli() {
    let app = TestApp::spawn().await;
    let run = |args: &[&str]| crate::cli::stdout(&crate::cli::hookgate(&app.db, args)).into_bytes();
    let created: Value = serde_json::from_slice(&run(&[
        "client",
        "create",
        "--name",
        "ops",
        "--scope",
        "hookgate:audit:read",
        "--json",
    ]))
    .unwrap();
    let id = created["clientId"].as_str().unwrap();
    run(&["client", "revoke", id]);
    let entries = audit(&app, "?filters=resourceType%20eq%20%22client%22").await;
    assert_eq!(actions(&entries), ["client.revoke", "client.create"]);
    assert!(entries.as_array().unwrap().iter().all(|e| e["actor"] == "cli" && e["resourceId"] == id));
    assert_eq!(entries[1]["after"]["scopes"], "hookgate:audit:read");
    assert!(!entries.to_string().contains(created["clientSecret"].as_str().unwrap()));
}
