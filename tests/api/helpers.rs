//! The test harness: each test gets its own app on port 0 and its own database (a SQLite file,
//! or a PostgreSQL schema when `TEST_DATABASE_URL` is set), and a manual clock.

use std::sync::Arc;

use chrono::TimeDelta;
use diesel::connection::SimpleConnection as _;
use hookgate::clock::{Clock, ManualClock, SharedClock};
use hookgate::config::Settings;
use hookgate::domain::scope::Scopes;
use hookgate::startup::Application;
use hookgate::store::{Store, clients};
use serde_json::{Value, json};

/// A database that lives as long as the test.
pub enum TestDb {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, schema: String },
}

impl TestDb {
    pub fn new() -> Self {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => {
                let admin_url = plain(admin_url);
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let admin = Store::open(&admin_url, 1, std::time::Duration::from_secs(10))
                    .expect("TEST_DATABASE_URL is reachable");
                admin
                    .run_blocking(|c| c.batch_execute(&format!("CREATE SCHEMA {schema}")).map_err(Into::into))
                    .expect("create test schema");
                Self::Postgres { admin_url, schema }
            }
            _ => Self::Sqlite(tempfile::tempdir().expect("temp dir")),
        }
    }

    pub fn url(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.path().join("hookgate.db").display().to_string(),
            Self::Postgres { admin_url, schema } => {
                let sep = if admin_url.contains('?') { '&' } else { '?' };
                format!("{admin_url}{sep}options=-csearch_path%3D{schema}")
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Postgres { admin_url, schema } = self
            && let Ok(admin) = Store::open(admin_url, 1, std::time::Duration::from_secs(10))
        {
            let _ = admin.run_blocking(|c| {
                c.batch_execute(&format!("DROP SCHEMA {schema} CASCADE")).map_err(Into::into)
            });
        }
    }
}

/// The test process exits while apps it started still hold connections; with TLS on, OpenSSL's
/// exit-time cleanup can then crash under a connection still in use. The test database is on
/// loopback, so its connections are plain unless the URL asks otherwise.
fn plain(url: String) -> String {
    if url.contains("sslmode=") {
        return url;
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}sslmode=disable")
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub store: Store,
    pub clock: Arc<ManualClock>,
    pub token: String,
    server: actix_web::dev::ServerHandle,
    running: actix_web::rt::task::JoinHandle<std::io::Result<()>>,
    pub dispatcher: Arc<hookgate::delivery::Dispatcher>,
    pub scheduler: Arc<hookgate::delivery::Scheduler>,
    pub poller: Arc<hookgate::sources::Poller>,
    pub purger: Arc<hookgate::retention::Purger>,
    pub db: Arc<TestDb>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_on(Arc::new(TestDb::new()), |_| {}).await
    }

    pub async fn spawn_with(change: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on(Arc::new(TestDb::new()), change).await
    }

    /// Starts an app on an existing database (for restarts).
    pub async fn spawn_on(db: Arc<TestDb>, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = Settings::for_tests(&db.url());
        change(&mut settings);
        let clock = Arc::new(ManualClock::new(chrono::Utc::now().naive_utc()));
        let shared: SharedClock = clock.clone();
        let app = Application::build(settings, shared).expect("app builds");
        let address = format!("http://127.0.0.1:{}", app.port());
        let store = app.store().clone();
        let server = app.server_handle();
        let dispatcher = app.dispatcher();
        let scheduler = app.scheduler();
        let poller = app.poller();
        let purger = app.purger();
        let running = actix_web::rt::spawn(app.run_until_stopped());
        let http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let mut test = Self {
            address,
            http,
            store,
            clock,
            token: String::new(),
            server,
            running,
            dispatcher,
            scheduler,
            poller,
            purger,
            db,
        };
        test.token = test.token_for(&["sp:scopes:all"]).await;
        test
    }

    /// Stops the server gracefully (delivery loops finish their batch), keeping the database.
    pub async fn stop(self) -> Arc<TestDb> {
        self.server.stop(true).await;
        self.running.await.expect("the app task").expect("the app stopped cleanly");
        self.db
    }

    /// Creates an API client straight in the store; returns (id, secret).
    pub fn create_client(&self, scopes: &[&str]) -> (String, String) {
        let scopes = Scopes::parse(&scopes.join(" ")).expect("known scopes");
        let now = self.clock.now();
        let (client, secret) =
            self.store.run_blocking(|c| clients::create(c, "test", &scopes, now)).expect("client");
        (client.id.to_string(), secret.expose().to_owned())
    }

    /// A bearer token for a new client with `scopes`.
    pub async fn token_for(&self, scopes: &[&str]) -> String {
        self.client_token(scopes).await.0
    }

    /// A bearer token for a new client with `scopes`, and the client's id.
    pub async fn client_token(&self, scopes: &[&str]) -> (String, String) {
        let (id, secret) = self.create_client(scopes);
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .form(&[("grant_type", "client_credentials"), ("client_id", &id), ("client_secret", &secret)])
            .send()
            .await
            .expect("token request");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("json");
        (body["access_token"].as_str().expect("token").to_owned(), id)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub fn advance(&self, by: TimeDelta) {
        self.clock.advance(by);
    }

    /// Delivers everything due now; returns how many attempts were made.
    pub async fn drain(&self) -> usize {
        self.dispatcher.run_until_idle().await.expect("delivery")
    }

    /// Publishes one event and returns the response.
    pub async fn publish(&self, trigger: &str, input: Value) -> reqwest::Response {
        self.post(
            "/trigger-invocations/v1/start",
            &json!({"triggerId": trigger, "input": input, "contentJson": {}}),
        )
        .await
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).bearer_auth(&self.token).send().await.expect("request")
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http.post(self.url(path)).bearer_auth(&self.token).json(body).send().await.expect("request")
    }

    /// Posts `body` as is, with the given content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.token)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn put(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http.put(self.url(path)).bearer_auth(&self.token).json(body).send().await.expect("request")
    }

    pub async fn patch(&self, path: &str, ops: &Value) -> reqwest::Response {
        self.http
            .patch(self.url(path))
            .bearer_auth(&self.token)
            .header("Content-Type", "application/json-patch+json")
            .body(ops.to_string())
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.http.delete(self.url(path)).bearer_auth(&self.token).send().await.expect("request")
    }

    /// Subscribes `url` to `test:fire-and-forget` (synchronous, no auth) and returns the body.
    pub async fn subscribe_url(&self, url: &str) -> Value {
        self.subscribe_url_to("test:fire-and-forget", url).await
    }

    /// Subscribes `url` to `trigger` (synchronous, no auth) and returns the body.
    pub async fn subscribe_url_to(&self, trigger: &str, url: &str) -> Value {
        self.subscribe(trigger, json!({"httpConfig": {"url": url, "httpDispatchMode": "SYNC"}})).await
    }

    /// Creates a subscription to `trigger` and returns its body.
    pub async fn subscribe(&self, trigger: &str, extra: Value) -> Value {
        let mut body = json!({
            "name": "hook", "triggerId": trigger, "type": "HTTP",
            "httpConfig": {"url": "http://127.0.0.1:9/hook", "httpDispatchMode": "SYNC"},
        });
        merge(&mut body, extra);
        let response = self.post("/trigger-subscriptions/v1", &body).await;
        let status = response.status();
        let value: Value = response.json().await.expect("json");
        assert_eq!(status, 201, "{value}");
        value
    }
}

pub fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// Asserts SailPoint's `ErrorResponseDto` shape and returns its first message text.
pub async fn error_text(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.expect("error body is JSON");
    assert!(body["detailCode"].as_str().is_some_and(|c| c.starts_with(&status.to_string())), "{body}");
    let tracking = body["trackingId"].as_str().expect("trackingId");
    assert_eq!(tracking.len(), 32, "{body}");
    assert_eq!(body["messages"][0]["locale"], "en-US");
    assert!(body["causes"].is_array(), "{body}");
    body["messages"][0]["text"].as_str().expect("text").to_owned()
}
