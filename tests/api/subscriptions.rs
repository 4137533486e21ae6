use chrono::TimeDelta;
use hookgate::store::subscriptions;
use serde_json::{Value, json};

use crate::helpers::{TestApp, error_text, merge};

fn basic_auth_body() -> Value {
    json!({
        "name": "Access request subscription",
        "description": "Access requested to site xyz",
        "triggerId": "idn:access-request-post-approval",
        "type": "HTTP",
        "httpConfig": {
            "url": "https://www.example.com/hook",
            "httpDispatchMode": "SYNC",
            "httpAuthenticationType": "BASIC_AUTH",
            "basicAuthConfig": {"userName": "user@example.com", "password": "eRtg4%6yuI!"}
        },
        "enabled": true,
        "filter": "$[?($.identityId == \"201327fda1c44704ac01181e963d463c\")]"
    })
}

#[actix_web::test]
async fn creating_a_subscription_returns_it_with_trigger_name_secret_and_no_password() {
    let app = TestApp::spawn().await;
    let response = app.post("/trigger-subscriptions/v1", &basic_auth_body()).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert!(uuid::Uuid::parse_str(body["id"].as_str().unwrap()).is_ok());
    assert_eq!(body["triggerName"], "Access Request Decision");
    assert_eq!(body["responseDeadline"], "PT1H");
    assert_eq!(
        body["httpConfig"]["basicAuthConfig"],
        json!({"userName": "user@example.com", "password": null})
    );
    assert!(body["httpConfig"]["bearerTokenAuthConfig"].is_null());
    assert!(body["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = body["id"].as_str().unwrap();

    let read: Value = app.get(&format!("/trigger-subscriptions/v1/{id}")).await.json().await.unwrap();
    assert!(read.get("secret").is_none(), "the secret is shown only on create");
    assert_eq!(read["httpConfig"]["basicAuthConfig"]["password"], Value::Null);
    assert_eq!(read["filter"], body["filter"]);
}

#[actix_web::test]
async fn listing_subscriptions_filters_sorts_and_counts() {
    let app = TestApp::spawn().await;
    let a = app.subscribe("idn:source-updated", json!({"name": "a"})).await;
    app.subscribe("idn:identity-created", json!({"name": "b"})).await;
    app.subscribe("idn:identity-created", json!({"name": "c"})).await;

    let response = app.get("/trigger-subscriptions/v1?count=true").await;
    assert_eq!(response.headers()["x-total-count"], "3");
    let id = a["id"].as_str().unwrap();
    let one: Value = app
        .get(&format!("/trigger-subscriptions/v1?filters=id%20eq%20%22{id}%22"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one.as_array().unwrap().len(), 1);
    assert_eq!(one[0]["name"], "a");
    let by_trigger: Value = app
        .get("/trigger-subscriptions/v1?filters=triggerId%20eq%20%22idn%3Aidentity-created%22")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(by_trigger.as_array().unwrap().len(), 2);
    let http: Value =
        app.get("/trigger-subscriptions/v1?filters=type%20eq%20%22HTTP%22").await.json().await.unwrap();
    assert_eq!(http.as_array().unwrap().len(), 3);
    let sorted: Value = app.get("/trigger-subscriptions/v1?sorters=-triggerName").await.json().await.unwrap();
    assert_eq!(sorted[0]["triggerName"], "Source Updated");
    let sorted: Value =
        app.get("/trigger-subscriptions/v1?sorters=triggerId&limit=1").await.json().await.unwrap();
    assert_eq!(sorted[0]["triggerId"], "idn:identity-created");
    let text = error_text(app.get("/trigger-subscriptions/v1?filters=name%20eq%20%22a%22").await, 400).await;
    assert!(text.contains("'name'"), "{text}");
}

#[actix_web::test]
async fn put_replaces_a_subscription_and_keeps_write_only_secrets_sent_back_as_null() {
    let app = TestApp::spawn().await;
    let created: Value =
        app.post("/trigger-subscriptions/v1", &basic_auth_body()).await.json().await.unwrap();
    let id = created["id"].as_str().unwrap();
    let path = format!("/trigger-subscriptions/v1/{id}");

    let mut read: Value = app.get(&path).await.json().await.unwrap();
    read["name"] = json!("renamed");
    read["enabled"] = json!(false);
    let replaced = app.put(&path, &read).await;
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!((replaced["name"].as_str(), replaced["enabled"].as_bool()), (Some("renamed"), Some(false)));
    let sid = id.parse().unwrap();
    let stored = app.store.run_blocking(|c| subscriptions::get(c, &sid)).unwrap();
    match &stored.spec.target.http().expect("an HTTP subscription").auth {
        hookgate::domain::subscription::HttpAuth::Basic { password, .. } => {
            assert_eq!(password.expose(), "eRtg4%6yuI!");
        }
        other => panic!("auth changed: {other:?}"),
    }

    let mut new_user = read.clone();
    new_user["httpConfig"]["basicAuthConfig"] = json!({"userName": "someone-else", "password": null});
    assert!(error_text(app.put(&path, &new_user).await, 400).await.contains("password"));

    let bearer = json!({
        "name": "bearer", "type": "HTTP",
        "httpConfig": {"url": "http://127.0.0.1:9/x", "httpDispatchMode": "ASYNC", "httpAuthenticationType": "BEARER_TOKEN",
                       "bearerTokenAuthConfig": {"bearerToken": "s3cr3t"}}
    });
    let replaced: Value = app.put(&path, &bearer).await.json().await.unwrap();
    assert_eq!(replaced["httpConfig"]["bearerTokenAuthConfig"], json!({"bearerToken": null}));
    assert!(
        replaced["filter"].is_null() && replaced["description"].is_null(),
        "PUT replaces the whole subscription"
    );
}

#[actix_web::test]
async fn id_and_trigger_id_are_immutable() {
    let app = TestApp::spawn().await;
    let created = app.subscribe("idn:identity-created", json!({})).await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/trigger-subscriptions/v1/{id}");
    let mut body = created.clone();
    body["triggerId"] = json!("idn:identity-deleted");
    assert!(error_text(app.put(&path, &body).await, 400).await.contains("triggerId"));
    let mut body = created.clone();
    body["id"] = json!(uuid::Uuid::new_v4().to_string());
    assert!(error_text(app.put(&path, &body).await, 400).await.contains("id"));
    let same = app.put(&path, &created).await;
    assert_eq!(same.status(), 200, "repeating the same ids is fine");
    let text = error_text(
        app.patch(&path, &json!([{"op": "replace", "path": "/triggerId", "value": "x"}])).await,
        400,
    )
    .await;
    assert!(text.contains("cannot be patched"), "{text}");
}

#[actix_web::test]
async fn patch_takes_json_patch_on_the_patchable_fields_including_booleans() {
    let app = TestApp::spawn().await;
    let created = app.subscribe("idn:identity-created", json!({})).await;
    let path = format!("/trigger-subscriptions/v1/{}", created["id"].as_str().unwrap());
    let response = app
        .patch(
            &path,
            &json!([
                {"op": "replace", "path": "/description", "value": "A new description"},
                {"op": "replace", "path": "/name", "value": "A new name"},
                {"op": "replace", "path": "/enabled", "value": false},
                {"op": "replace", "path": "/httpConfig/url", "value": "http://127.0.0.1:9/other"},
                {"op": "add", "path": "/filter", "value": "$.identity"}
            ]),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["description"], "A new description");
    assert_eq!(body["name"], "A new name");
    assert_eq!(body["enabled"], false);
    assert_eq!(body["httpConfig"]["url"], "http://127.0.0.1:9/other");
    assert_eq!(body["filter"], "$.identity");

    let bad_filter = app.patch(&path, &json!([{"op": "replace", "path": "/filter", "value": "$[?("}])).await;
    assert!(error_text(bad_filter, 400).await.contains("filter"));
    let bad_op = app.patch(&path, &json!([{"op": "explode", "path": "/name"}])).await;
    error_text(bad_op, 400).await;
    let not_array = app.patch(&path, &json!({"op": "replace"})).await;
    error_text(not_array, 400).await;
    let unknown = format!("/trigger-subscriptions/v1/{}", uuid::Uuid::new_v4());
    error_text(app.patch(&unknown, &json!([{"op": "replace", "path": "/name", "value": "x"}])).await, 404)
        .await;
}

#[actix_web::test]
async fn delete_removes_a_subscription_and_unknown_ids_are_404() {
    let app = TestApp::spawn().await;
    let created = app.subscribe("idn:identity-created", json!({})).await;
    let path = format!("/trigger-subscriptions/v1/{}", created["id"].as_str().unwrap());
    let deleted = app.delete(&path).await;
    assert_eq!(deleted.status(), 204);
    assert!(deleted.bytes().await.unwrap().is_empty());
    error_text(app.get(&path).await, 404).await;
    error_text(app.delete(&path).await, 404).await;
    error_text(app.put(&path, &created).await, 404).await;
    error_text(app.get("/trigger-subscriptions/v1/not-a-uuid").await, 404).await;
    error_text(app.delete("/trigger-subscriptions/v1/validate-filter").await, 404).await;
    error_text(app.put("/trigger-subscriptions/v1/validate-filter", &created).await, 404).await;
}

#[actix_web::test]
async fn request_response_triggers_take_one_subscription_and_fire_and_forget_fifty() {
    let app = TestApp::spawn().await;
    app.subscribe("test:request-response", json!({})).await;
    let second = app
        .post(
            "/trigger-subscriptions/v1",
            &json!({
                "name": "second", "triggerId": "test:request-response", "type": "HTTP",
                "httpConfig": {"url": "http://127.0.0.1:9/x", "httpDispatchMode": "ASYNC"}
            }),
        )
        .await;
    assert!(error_text(second, 400).await.contains("limit is 1"));

    for i in 0..50 {
        app.subscribe("test:fire-and-forget", json!({"name": format!("s{i}")})).await;
    }
    let extra = app
        .post(
            "/trigger-subscriptions/v1",
            &json!({
                "name": "51st", "triggerId": "test:fire-and-forget", "type": "HTTP",
                "httpConfig": {"url": "http://127.0.0.1:9/x", "httpDispatchMode": "SYNC"}
            }),
        )
        .await;
    assert!(error_text(extra, 400).await.contains("limit is 50"));
    let response = app.get("/trigger-subscriptions/v1?count=true&limit=0").await;
    assert_eq!(response.headers()["x-total-count"], "51");
}

#[actix_web::test]
async fn invalid_subscriptions_are_refused_with_a_clear_400_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let cases: Vec<(Value, &str)> = vec![
        (json!({"filter": "$[?(@.a == )]"}), "filter"),
        (json!({"filter": "identity"}), "filter"),
        (json!({"httpConfig": {"url": "not a url", "httpDispatchMode": "SYNC"}}), "httpConfig.url"),
        (json!({"httpConfig": {"url": "ftp://example.com", "httpDispatchMode": "SYNC"}}), "http"),
        (json!({"httpConfig": {"url": "http://x", "httpDispatchMode": "SOMETIMES"}}), "unknown variant"),
        (
            json!({"httpConfig": {"url": "http://x", "httpDispatchMode": "SYNC", "httpAuthenticationType": "BASIC_AUTH"}}),
            "basicAuthConfig",
        ),
        (
            json!({"httpConfig": {"url": "http://x", "httpDispatchMode": "SYNC", "httpAuthenticationType": "BEARER_TOKEN", "bearerTokenAuthConfig": {"bearerToken": null}}}),
            "bearerToken",
        ),
        (json!({"httpConfig": null}), "httpConfig"),
        (
            json!({"type": "EVENTBRIDGE", "eventBridgeConfig": {"awsAccount": "123456789012", "awsRegion": "us-west-1"}}),
            "only HTTP",
        ),
        (json!({"type": "CARRIER_PIGEON"}), "unknown variant"),
        (json!({"responseDeadline": "an hour"}), "responseDeadline"),
        (json!({"triggerId": "idn:no-such-trigger"}), "does not name a trigger"),
        (json!({"triggerId": 42}), "invalid type"),
        (json!({"name": ""}), "name"),
        (json!({"enabled": "yes"}), "invalid type"),
    ];
    for (change, needle) in cases {
        let mut body = json!({
            "name": "hook", "triggerId": "idn:identity-created", "type": "HTTP",
            "httpConfig": {"url": "http://127.0.0.1:9/hook", "httpDispatchMode": "SYNC"},
        });
        merge(&mut body, change.clone());
        let text = error_text(app.post("/trigger-subscriptions/v1", &body).await, 400).await;
        assert!(text.contains(needle), "{change}: {text}");
    }
    for missing in ["name", "triggerId", "type"] {
        let mut body = json!({"name": "x", "triggerId": "idn:identity-created", "type": "HTTP",
                              "httpConfig": {"url": "http://x", "httpDispatchMode": "SYNC"}});
        body.as_object_mut().unwrap().remove(missing);
        let text = error_text(app.post("/trigger-subscriptions/v1", &body).await, 400).await;
        assert!(text.contains(missing), "{missing}: {text}");
    }
    let response = app.get("/trigger-subscriptions/v1?count=true").await;
    assert_eq!(response.headers()["x-total-count"], "0");
}

#[actix_web::test]
async fn sdk_style_bodies_with_explicit_nulls_are_accepted() {
    let app = TestApp::spawn().await;
    let body = json!({
        "name": "demo", "description": null, "triggerId": "idn:identity-attributes-changed", "type": "HTTP",
        "responseDeadline": "PT1H",
        "httpConfig": {"url": "http://127.0.0.1:9/hook", "httpDispatchMode": "SYNC", "httpAuthenticationType": "BEARER_TOKEN",
                       "bearerTokenAuthConfig": {"bearerToken": "s3cr3t"}, "basicAuthConfig": null},
        "eventBridgeConfig": null, "enabled": true, "filter": null
    });
    let response = app.post("/trigger-subscriptions/v1", &body).await;
    assert_eq!(response.status(), 201);
}

async fn check(app: &TestApp, filter: &str) -> (bool, bool, bool) {
    let body = json!({"input": {"identityId": "201327fda1c44704ac01181e963d463c"}, "filter": filter});
    let response = app.post("/trigger-subscriptions/v1/validate-filter", &body).await;
    assert_eq!(response.status(), 200);
    let v: Value = response.json().await.unwrap();
    (
        v["isValid"].as_bool().unwrap(),
        v["isValidJSONPath"].as_bool().unwrap(),
        v["isPathExist"].as_bool().unwrap(),
    )
}

#[actix_web::test]
async fn validate_filter_reports_validity_path_existence_and_match() {
    let app = TestApp::spawn().await;
    assert_eq!(
        check(&app, r#"$[?($.identityId == "201327fda1c44704ac01181e963d463c")]"#).await,
        (true, true, true)
    );
    assert_eq!(check(&app, r#"$[?($.identityId == "other")]"#).await, (false, true, true));
    assert_eq!(check(&app, r#"$[?($.missing == "x")]"#).await, (false, true, false));
    assert_eq!(check(&app, "$[?(").await, (false, false, false));
    for body in [json!({"filter": "$"}), json!({"input": {}}), json!({"input": [], "filter": "$"})] {
        error_text(app.post("/trigger-subscriptions/v1/validate-filter", &body).await, 400).await;
    }
}

#[actix_web::test]
async fn rotating_a_secret_keeps_the_old_one_valid_for_the_overlap() {
    let app = TestApp::spawn().await;
    let created = app.subscribe("idn:identity-created", json!({})).await;
    let id = created["id"].as_str().unwrap();
    let first = created["secret"].as_str().unwrap().to_owned();
    let response = app.post(&format!("/trigger-subscriptions/v1/{id}/rotate-secret"), &json!({})).await;
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    let second = rotated["secret"].as_str().unwrap().to_owned();
    assert!(second.starts_with("whsec_") && second != first);

    let sid = id.parse().unwrap();
    let secrets_at = |app: &TestApp| {
        let now = hookgate::clock::Clock::now(app.clock.as_ref());
        app.store.run_blocking(|c| subscriptions::signing_secrets(c, &sid, now)).unwrap()
    };
    let now: Vec<String> = secrets_at(&app).iter().map(|s| s.expose().to_owned()).collect();
    assert_eq!(now, vec![second.clone(), first.clone()]);
    let unknown = format!("/trigger-subscriptions/v1/{}/rotate-secret", uuid::Uuid::new_v4());
    error_text(app.post(&unknown, &json!({})).await, 404).await;
    app.advance(TimeDelta::hours(24) + TimeDelta::seconds(1));
    let later: Vec<String> = secrets_at(&app).iter().map(|s| s.expose().to_owned()).collect();
    assert_eq!(later, vec![second]);
}

#[actix_web::test]
async fn the_api_answers_under_sailpoints_older_prefixes_with_or_without_the_experimental_header() {
    let app = TestApp::spawn().await;
    for prefix in ["/beta", "/v2024", "/v2025"] {
        let created = app
            .http
            .post(app.url(&format!("{prefix}/trigger-subscriptions")))
            .bearer_auth(&app.token)
            .header("X-SailPoint-Experimental", "true")
            .json(&json!({"name": prefix, "triggerId": "idn:identity-created", "type": "HTTP",
                          "httpConfig": {"url": "http://127.0.0.1:9/x", "httpDispatchMode": "SYNC"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201, "{prefix}");
        let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
        let triggers =
            app.get(&format!("{prefix}/triggers?filters=id%20eq%20%22idn%3Aidentity-created%22")).await;
        assert_eq!(triggers.json::<Value>().await.unwrap()[0]["id"], "idn:identity-created");
        let patched = app
            .patch(
                &format!("{prefix}/trigger-subscriptions/{id}"),
                &json!([{"op": "replace", "path": "/name", "value": "p"}]),
            )
            .await;
        assert_eq!(patched.status(), 200, "{prefix}");
        let filter = app
            .post(
                &format!("{prefix}/trigger-subscriptions/validate-filter"),
                &json!({"input": {}, "filter": "$"}),
            )
            .await;
        assert_eq!(filter.status(), 200, "{prefix}");
        assert_eq!(
            app.delete(&format!("{prefix}/trigger-subscriptions/{id}")).await.status(),
            204,
            "{prefix}"
        );
    }
}
