//! Secrets at rest: the database holds none of the subscriber credentials, signing secrets or
//! source secrets in plaintext; deliveries still sign and authenticate; a key is rotated online;
//! a wrong key fails at start.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};

use base64::Engine as _;
use diesel::prelude::*;
use diesel::sql_types::Text;
use hookgate::config::TEST_KEY;
use hookgate::domain::keyring::Key;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb};
use crate::resilience::Server;
use crate::sink::{Received, Reply, Sink};
use crate::sources::{create_source, webhook_source};

const BASIC_PASSWORD: &str = "basic-pw-5e1d0c9a";
const BEARER_TOKEN: &str = "bearer-tok-7f3a9c21";

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    text: String,
}

/// Everything the database holds, as bytes: the SQLite files (after a checkpoint), or every row of
/// every table hookgate keeps secrets in, as PostgreSQL's text form of the rows.
pub fn raw_database(app: &TestApp) -> Vec<u8> {
    match &*app.db {
        TestDb::Sqlite(dir) => {
            app.store.run_blocking(hookgate::store::checkpoint).unwrap();
            let mut bytes = Vec::new();
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
            }
            bytes
        }
        TestDb::Postgres { .. } => {
            let mut bytes = Vec::new();
            for table in ["subscriptions", "subscription_secrets", "sources", "meta"] {
                let rows: Vec<Row> = app
                    .store
                    .run_blocking(move |c| {
                        Ok(diesel::sql_query(format!("SELECT t::text AS text FROM {table} t")).load(c)?)
                    })
                    .unwrap();
                for row in rows {
                    bytes.extend(row.text.into_bytes());
                }
            }
            bytes
        }
    }
}

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The base64 key of a `whsec_` secret: what a leak would expose.
fn key_of(secret: &str) -> String {
    secret.trim_start_matches("whsec_").to_owned()
}

/// Subscribes a basic-auth and a bearer-token subscriber at `sink`; returns their signing secrets.
async fn subscribe_with_credentials(app: &TestApp, sink: &Sink) -> (String, String) {
    let basic = app
        .subscribe(
            "test:fire-and-forget",
            json!({"httpConfig": {"url": sink.url("/basic"), "httpDispatchMode": "SYNC",
                "httpAuthenticationType": "BASIC_AUTH", "basicAuthConfig": {"userName": "u", "password": BASIC_PASSWORD}}}),
        )
        .await;
    let bearer = app
        .subscribe(
            "test:fire-and-forget",
            json!({"httpConfig": {"url": sink.url("/bearer"), "httpDispatchMode": "SYNC",
                "httpAuthenticationType": "BEARER_TOKEN", "bearerTokenAuthConfig": {"bearerToken": BEARER_TOKEN}}}),
        )
        .await;
    let secret = |v: &Value| v["secret"].as_str().unwrap().to_owned();
    (secret(&basic), secret(&bearer))
}

fn check_credentials(received: &[Received], basic_secret: &str, bearer_secret: &str) {
    let at = |p: &str| received.iter().find(|r| r.path == p).unwrap_or_else(|| panic!("nothing at {p}"));
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("u:{BASIC_PASSWORD}"));
    assert_eq!(at("/basic").headers["authorization"], format!("Basic {basic}"));
    assert_eq!(at("/bearer").headers["authorization"], format!("Bearer {BEARER_TOKEN}"));
    assert!(crate::delivery::verify(basic_secret, at("/basic")));
    assert!(crate::delivery::verify(bearer_secret, at("/bearer")));
}

#[actix_web::test]
async fn the_database_holds_no_secret_in_plaintext_and_deliveries_still_sign_and_authenticate() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.always(Reply::status(200));
    let (basic_secret, bearer_secret) = subscribe_with_credentials(&app, &sink).await;
    let source_secret = hookgate::domain::secret::new_signing_secret();
    create_source(&app, &webhook_source("sealed-source", source_secret.expose())).await;
    app.publish("test:fire-and-forget", json!({"identityId": "sealed"})).await;
    app.drain().await;
    check_credentials(&sink.received(), &basic_secret, &bearer_secret);

    let raw = raw_database(&app);
    assert!(contains(&raw, "sealed-source"), "the dump holds the rows it should");
    for secret in [
        BASIC_PASSWORD,
        BEARER_TOKEN,
        &key_of(&basic_secret),
        &key_of(&bearer_secret),
        &key_of(source_secret.expose()),
    ] {
        assert!(!contains(&raw, secret), "{secret} is stored in plaintext");
    }
    assert!(contains(&raw, "enc1:"), "the secrets are stored sealed");
}

fn hookgate(db: &TestDb, keys: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hookgate"));
    command
        .args(args)
        .env("HOOKGATE_DATABASE_URL", db.url())
        .env("HOOKGATE_LOG", "info")
        .env_remove("HOOKGATE_ENCRYPTION_KEY");
    if let Some(keys) = keys {
        command.env("HOOKGATE_ENCRYPTION_KEY", keys);
    }
    command.output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned() + &String::from_utf8_lossy(&output.stdout)
}

#[actix_web::test]
async fn a_key_is_rotated_while_serving_and_the_old_key_alone_then_fails_at_start() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.always(Reply::status(200));
    let (basic_secret, bearer_secret) = subscribe_with_credentials(&app, &sink).await;
    let (client, client_secret) = app.create_client(&["sp:scopes:all"]);
    let store = app.store.clone();
    let db = app.stop().await;

    let (new_key, new_text) = Key::generate();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("new.key");
    std::fs::write(&key_file, format!("{new_text}\n")).unwrap();
    // The instance that serves meanwhile knows both keys, the new one first.
    let both = format!("{new_text},{TEST_KEY}");
    let server = Server::start_with(&db, &[("HOOKGATE_ENCRYPTION_KEY", both.as_str())]);
    let rotated = hookgate(
        &db,
        Some(TEST_KEY),
        &["keys", "rotate", "--new-key-file", key_file.to_str().unwrap(), "--json"],
    );
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    let report: Value = serde_json::from_slice(&rotated.stdout).unwrap();
    assert_eq!(report["key"], new_key.id());
    assert_eq!(report["resealed"]["basicPasswords"], 1);
    assert_eq!(report["resealed"]["bearerTokens"], 1);
    assert_eq!(report["resealed"]["signingSecrets"], 2);

    // Every sealed value now names the new key.
    let sealed: Vec<Row> = store
        .run_blocking(|c| {
            Ok(diesel::sql_query(
                "SELECT COALESCE(basic_password, bearer_token) AS text FROM subscriptions \
                 UNION ALL SELECT secret AS text FROM subscription_secrets",
            )
            .load(c)?)
        })
        .unwrap();
    assert_eq!(sealed.len(), 4);
    for row in &sealed {
        assert!(row.text.starts_with(&format!("enc1:{}:", new_key.id())), "{}", row.text);
    }

    // Deliveries through the serving instance authenticate and sign with what was sealed again.
    let http = reqwest::Client::new();
    let token: Value = http
        .post(format!("{}/oauth/token", server.url))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &client),
            ("client_secret", &client_secret),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let published = http
        .post(format!("{}/trigger-invocations/v1/start", server.url))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .json(&json!({"triggerId": "test:fire-and-forget", "input": {"identityId": "rotated"}, "contentJson": {}}))
        .send()
        .await
        .unwrap();
    assert!(published.status().is_success());
    let started = std::time::Instant::now();
    while sink.received().len() < 2 {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "not delivered");
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    check_credentials(&sink.received(), &basic_secret, &bearer_secret);
    drop(server);

    let old_only = hookgate(&db, Some(TEST_KEY), &["migrate"]);
    assert!(!old_only.status.success());
    assert!(
        stderr(&old_only).contains(&format!("sealed with encryption key {}", new_key.id())),
        "{}",
        stderr(&old_only)
    );
    let wrong = hookgate(&db, Some(&Key::generate().1), &["migrate"]);
    assert!(!wrong.status.success());
    assert!(stderr(&wrong).contains("set HOOKGATE_ENCRYPTION_KEY"), "{}", stderr(&wrong));
    assert!(hookgate(&db, Some(&new_text), &["migrate"]).status.success());
}

#[test]
fn without_a_key_sqlite_generates_one_beside_the_database_and_postgresql_refuses() {
    let db = TestDb::new();
    let first = hookgate(&db, None, &["migrate"]);
    match &db {
        TestDb::Sqlite(dir) => {
            assert!(first.status.success(), "{}", stderr(&first));
            assert!(stderr(&first).contains("generated the key"), "{}", stderr(&first));
            let file = dir.path().join("hookgate.db.key");
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let key = std::fs::read_to_string(&file).unwrap();
            let again = hookgate(&db, None, &["migrate"]);
            assert!(again.status.success() && !stderr(&again).contains("generated the key"));
            assert_eq!(std::fs::read_to_string(&file).unwrap(), key, "the key is kept");
        }
        TestDb::Postgres { .. } => {
            assert!(!first.status.success());
            assert!(stderr(&first).contains("PostgreSQL needs an encryption key"), "{}", stderr(&first));
        }
    }
}
