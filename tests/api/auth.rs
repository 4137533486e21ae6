use chrono::TimeDelta;
use hookgate::store::clients;
use serde_json::Value;

use crate::helpers::{TestApp, error_text};

async fn token_response(app: &TestApp, request: reqwest::RequestBuilder) -> (u16, Value) {
    let _ = app;
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[actix_web::test]
async fn tokens_are_issued_for_form_multipart_query_and_basic_encodings() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.create_client(&["sp:trigger-service-subscriptions:read"]);
    let url = app.url("/oauth/token");

    let form = app.http.post(&url).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ]);
    let boundary = "hookgateBoundary";
    let multipart_body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"client_id\"\r\n\r\n{id}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"client_secret\"\r\n\r\n{secret}\r\n--{boundary}--\r\n"
    );
    let multipart = app
        .http
        .post(&url)
        .header("Content-Type", format!("multipart/form-data; boundary={boundary}"))
        .body(multipart_body);
    let query =
        app.http.post(format!("{url}?grant_type=client_credentials&client_id={id}&client_secret={secret}"));
    let basic =
        app.http.post(&url).basic_auth(&id, Some(&secret)).form(&[("grant_type", "client_credentials")]);

    for (name, request) in [("form", form), ("multipart", multipart), ("query", query), ("basic", basic)] {
        let (status, body) = token_response(&app, request).await;
        assert_eq!(status, 200, "{name}: {body}");
        assert_eq!(body["token_type"], "bearer", "{name}");
        assert_eq!(body["expires_in"], 12 * 3600, "{name}");
        assert_eq!(body["scope"], "sp:trigger-service-subscriptions:read", "{name}");
        let token = body["access_token"].as_str().unwrap();
        let listed = app.http.get(app.url("/triggers/v1")).bearer_auth(token).send().await.unwrap();
        assert_eq!(listed.status(), 200, "{name}");
    }
}

#[actix_web::test]
async fn wrong_credentials_and_grants_get_oauth_errors() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.create_client(&["sp:scopes:all"]);
    let url = app.url("/oauth/token");
    let cases = [
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", "wrong"),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
                ("client_secret", secret.as_str()),
            ],
            401,
            "invalid_client",
        ),
        (
            vec![("grant_type", "password"), ("client_id", id.as_str()), ("client_secret", secret.as_str())],
            400,
            "unsupported_grant_type",
        ),
        (vec![("client_id", id.as_str()), ("client_secret", secret.as_str())], 400, "invalid_request"),
        (vec![("grant_type", "client_credentials"), ("client_id", id.as_str())], 400, "invalid_request"),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", id.as_str()),
                ("client_secret", secret.as_str()),
                ("scope", "bogus"),
            ],
            400,
            "invalid_scope",
        ),
    ];
    for (form, status, error) in cases {
        let (got, body) = token_response(&app, app.http.post(&url).form(&form)).await;
        assert_eq!((got, body["error"].as_str().unwrap()), (status, error), "{form:?}: {body}");
    }
    let json = app
        .http
        .post(&url)
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 400);
}

#[actix_web::test]
async fn a_token_can_be_narrowed_to_some_of_the_clients_scopes_but_not_widened() {
    let app = TestApp::spawn().await;
    let (id, secret) = app
        .create_client(&["sp:trigger-service-subscriptions:read", "sp:trigger-service-subscriptions:manage"]);
    let url = app.url("/oauth/token");
    let narrow = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("scope", "sp:trigger-service-subscriptions:read"),
    ];
    let (status, body) = token_response(&app, app.http.post(&url).form(&narrow)).await;
    assert_eq!(status, 200);
    assert_eq!(body["scope"], "sp:trigger-service-subscriptions:read");
    let token = body["access_token"].as_str().unwrap();
    let create = app
        .http
        .post(app.url("/trigger-subscriptions/v1"))
        .bearer_auth(token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert!(error_text(create, 403).await.contains("sp:trigger-service-subscriptions:manage"));

    let wide = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("scope", "hookgate:triggers:manage"),
    ];
    let (status, body) = token_response(&app, app.http.post(&url).form(&wide)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
}

#[actix_web::test]
async fn requests_without_a_valid_token_get_401_in_sailpoint_shape() {
    let app = TestApp::spawn().await;
    for auth in [None, Some("Bearer nonsense"), Some("Basic Zm9vOmJhcg=="), Some("Bearer ")] {
        let mut request = app.http.get(app.url("/trigger-subscriptions/v1"));
        if let Some(value) = auth {
            request = request.header("Authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    }
}

#[actix_web::test]
async fn tokens_expire_after_their_ttl() {
    let app = TestApp::spawn_with(|s| s.token_ttl = std::time::Duration::from_secs(3600)).await;
    let token = app.token_for(&["sp:scopes:all"]).await;
    let ok = app.http.get(app.url("/triggers/v1")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    app.advance(TimeDelta::seconds(3601));
    let expired = app.http.get(app.url("/triggers/v1")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(expired.status(), 401);
}

#[actix_web::test]
async fn revoking_a_client_ends_its_tokens_and_its_logins() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.create_client(&["sp:scopes:all"]);
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let (_, body) = token_response(&app, app.http.post(app.url("/oauth/token")).form(&form)).await;
    let token = body["access_token"].as_str().unwrap().to_owned();

    let client_id = id.parse().unwrap();
    let now = chrono::Utc::now().naive_utc();
    app.store.run_blocking(|c| clients::revoke(c, &client_id, now)).unwrap();

    let after = app.http.get(app.url("/triggers/v1")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(after.status(), 401);
    let (status, body) = token_response(&app, app.http.post(app.url("/oauth/token")).form(&form)).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_client")));
}

#[actix_web::test]
async fn every_scope_guards_its_routes() {
    let app = TestApp::spawn().await;
    let read_only = app.token_for(&["sp:trigger-service-subscriptions:read"]).await;
    let manage = app.token_for(&["sp:trigger-service-subscriptions:manage"]).await;
    let status_only = app.token_for(&["sp:trigger-service-invocation-status:read"]).await;

    let get = |token: &str, path: &str| app.http.get(app.url(path)).bearer_auth(token.to_owned()).send();
    assert_eq!(get(&read_only, "/triggers/v1").await.unwrap().status(), 200);
    assert_eq!(get(&read_only, "/trigger-subscriptions/v1").await.unwrap().status(), 200);
    assert_eq!(get(&manage, "/trigger-subscriptions/v1").await.unwrap().status(), 200);
    error_text(get(&status_only, "/trigger-subscriptions/v1").await.unwrap(), 403).await;
    error_text(get(&status_only, "/triggers/v1").await.unwrap(), 403).await;

    let trigger = serde_json::json!({"id": "x:y", "name": "Y", "type": "FIRE_AND_FORGET", "inputSchema": {}, "exampleInput": {}});
    let post =
        app.http.post(app.url("/triggers/v1")).bearer_auth(&manage).json(&trigger).send().await.unwrap();
    assert!(error_text(post, 403).await.contains("hookgate:triggers:manage"));
    let filter = serde_json::json!({"input": {}, "filter": "$"});
    let validate = app
        .http
        .post(app.url("/trigger-subscriptions/v1/validate-filter"))
        .bearer_auth(&read_only)
        .json(&filter);
    error_text(validate.send().await.unwrap(), 403).await;
}

#[actix_web::test]
async fn health_needs_no_token() {
    let app = TestApp::spawn().await;
    let live = app.http.get(app.url("/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    let ready: Value = app.http.get(app.url("/health/ready")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ok");
    let backend =
        if std::env::var("TEST_DATABASE_URL").is_ok_and(|u| !u.is_empty()) { "postgres" } else { "sqlite" };
    assert_eq!(ready["database"], backend);
}

#[actix_web::test]
async fn a_token_remembered_by_the_server_is_refused_soon_after_the_cli_revokes_its_client() {
    let app = TestApp::spawn().await;
    let (id, secret) = app.create_client(&["sp:scopes:all"]);
    let login = app.http.post(app.url("/oauth/token")).basic_auth(&id, Some(&secret));
    let (_, body) = token_response(&app, login.form(&[("grant_type", "client_credentials")])).await;
    let token = body["access_token"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        let ok = app.http.get(app.url("/triggers/v1")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(ok.status(), 200);
    }
    // Another process revokes the client, straight on the database.
    let dir = tempfile::tempdir().unwrap();
    let revoked = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["client", "revoke", &id])
        .current_dir(dir.path())
        .env("HOOKGATE_DATABASE_URL", app.db.url())
        .env("HOOKGATE_ENCRYPTION_KEY", hookgate::config::TEST_KEY)
        .env("HOOKGATE_LOG", "warn")
        .output()
        .unwrap();
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let since = std::time::Instant::now();
    loop {
        let status = app.http.get(app.url("/triggers/v1")).bearer_auth(&token).send().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(since.elapsed() < std::time::Duration::from_secs(2), "still accepted after 2 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
