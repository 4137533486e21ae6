//! PostgreSQL restarted under load: publishes in the gap get 503 with `Retry-After`, nothing
//! accepted is lost, and hookgate recovers by itself. A test binary of its own, because it restarts
//! the database server that the other tests use (cargo runs test binaries one at a time).
//! Built only with `--features pg-restart-test`; it needs `TEST_DATABASE_URL` and the right to
//! run `pg_ctlcluster` (`.ci/run` runs it after the other suites).
#![expect(clippy::expect_used, reason = "a test that cannot proceed should fail loudly")]

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookgate::clock::SystemClock;
use hookgate::config::Settings;
use hookgate::domain::scope::Scopes;
use hookgate::startup::Application;
use hookgate::store::{Store, clients};
use serde_json::{Value, json};

fn restart_postgres() {
    let version = std::fs::read_dir("/etc/postgresql")
        .expect("a Debian PostgreSQL cluster")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .max()
        .expect("a cluster version");
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", &version, "main", "restart", "-m", "fast"])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster restart: {status:?}");
}

#[actix_web::test]
async fn a_postgres_restart_under_load_answers_503_loses_nothing_and_recovers_by_itself() {
    let admin = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .expect("TEST_DATABASE_URL names the PostgreSQL server to restart");
    let admin = if admin.contains("sslmode=") { admin } else { format!("{admin}?sslmode=disable") };
    let schema = format!("restart_{}", uuid::Uuid::new_v4().simple());
    let setup = Store::open(&admin, 1, Duration::from_secs(10)).unwrap();
    setup
        .run_blocking(|c| {
            diesel::connection::SimpleConnection::batch_execute(c, &format!("CREATE SCHEMA {schema}"))
                .map_err(Into::into)
        })
        .unwrap();
    drop(setup);
    let url = format!("{admin}&options=-csearch_path%3D{schema}");

    // The subscriber: a plain HTTP server counting deliveries by webhook-id.
    let received = Arc::new(std::sync::Mutex::new(BTreeSet::<String>::new()));
    let seen = received.clone();
    let sink = actix_web::HttpServer::new(move || {
        let seen = seen.clone();
        actix_web::App::new().default_service(actix_web::web::to(move |req: actix_web::HttpRequest| {
            let seen = seen.clone();
            async move {
                if let Some(id) = req.headers().get("webhook-id").and_then(|v| v.to_str().ok()) {
                    seen.lock().unwrap().insert(id.to_owned());
                }
                actix_web::HttpResponse::NoContent().finish()
            }
        }))
    })
    .workers(1)
    .bind("127.0.0.1:0")
    .unwrap();
    let sink_port = sink.addrs()[0].port();
    actix_web::rt::spawn(sink.run());

    let mut settings = Settings::for_tests(&url);
    settings.workers = 1;
    settings.poll_interval = Duration::from_millis(200);
    settings.delivery_timeout = Duration::from_secs(2);
    settings.retry_schedule = vec![Duration::from_secs(1); 5];
    let app = Application::build(settings, Arc::new(SystemClock)).unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let store = app.store().clone();
    actix_web::rt::spawn(app.run_until_stopped());
    let scopes = Scopes::parse("sp:scopes:all").unwrap();
    let now = chrono::Utc::now().naive_utc();
    let (client, secret) = store.run_blocking(|c| clients::create(c, "restart", &scopes, now)).unwrap();
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client.id.as_str()),
            ("client_secret", secret.expose()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap().to_owned();
    let subscribed = http
        .post(format!("{base}/trigger-subscriptions/v1"))
        .bearer_auth(&token)
        .json(&json!({"name": "r", "triggerId": "test:fire-and-forget", "type": "HTTP",
                      "httpConfig": {"url": format!("http://127.0.0.1:{sink_port}/r"), "httpDispatchMode": "SYNC"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 201);

    // Publish steadily for a while; restart PostgreSQL in the middle.
    let publisher = {
        let (http, base, token) = (http.clone(), base.clone(), token.clone());
        actix_web::rt::spawn(async move {
            let mut accepted = Vec::new();
            let mut refused = 0;
            let started = Instant::now();
            let mut i = 0;
            while started.elapsed() < Duration::from_secs(12) {
                i += 1;
                let sent = http
                    .post(format!("{base}/trigger-invocations/v1/start"))
                    .bearer_auth(&token)
                    .json(&json!({"triggerId": "test:fire-and-forget", "input": {"identityId": format!("p{i}")}}))
                    .send()
                    .await
                    .unwrap();
                match sent.status().as_u16() {
                    200 => {
                        let body: Value = sent.json().await.unwrap();
                        accepted.push(body[0]["id"].as_str().unwrap().to_owned());
                    }
                    503 => {
                        assert_eq!(sent.headers()["retry-after"], "1");
                        let body: Value = sent.json().await.unwrap();
                        assert!(body["detailCode"].as_str().unwrap().starts_with("503"), "{body}");
                        refused += 1;
                    }
                    other => panic!(
                        "a publish during the restart answered {other}: {}",
                        sent.text().await.unwrap()
                    ),
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (accepted, refused)
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    tokio::task::spawn_blocking(restart_postgres).await.unwrap();
    let (accepted, refused) = publisher.await.unwrap();
    assert!(accepted.len() > 50, "publishing resumed after the restart ({} accepted)", accepted.len());
    eprintln!("{} accepted, {refused} refused with 503 during the restart", accepted.len());

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing = accepted.iter().filter(|id| !received.lock().unwrap().contains(*id)).count();
        if missing == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{missing} accepted events were never delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cleanup = Store::open(&admin, 1, Duration::from_secs(10)).unwrap();
    let _ = cleanup.run_blocking(|c| {
        diesel::connection::SimpleConnection::batch_execute(c, &format!("DROP SCHEMA {schema} CASCADE"))
            .map_err(Into::into)
    });
}
