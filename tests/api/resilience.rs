//! Several instances, crashes and shutdowns: nothing accepted is lost.

use std::collections::BTreeSet;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hookgate::domain::invocation::InvocationState;
use hookgate::store::invocations;
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb};
use crate::sink::{Reply, Sink};

#[actix_web::test]
async fn two_instances_on_one_database_share_the_work_and_deliver_each_invocation_once() {
    let first = TestApp::spawn().await;
    let second = TestApp::spawn_on(first.db.clone(), |_| {}).await;
    let sink = Sink::start();
    first.subscribe_url(&sink.url("/h")).await;
    let batch: Vec<Value> = (0..200)
        .map(|i| json!({"triggerId": "test:fire-and-forget", "input": {"identityId": format!("e{i}")}}))
        .collect();
    let published: Value =
        first.post("/trigger-invocations/v1/start", &Value::Array(batch)).await.json().await.unwrap();
    let expected: BTreeSet<String> =
        published.as_array().unwrap().iter().map(|e| e[0]["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(expected.len(), 200);

    let (a, b) = tokio::join!(first.drain(), second.drain());
    assert_eq!(a + b, 200, "every invocation attempted exactly once ({a} + {b})");
    let received = sink.received();
    let ids: BTreeSet<String> = received.iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert_eq!(received.len(), 200, "no duplicates");
    assert_eq!(ids, expected);
}

#[actix_web::test]
async fn a_graceful_stop_finishes_in_flight_deliveries() {
    let app = TestApp::spawn_with(|s| {
        s.workers = 1;
        s.poll_interval = Duration::from_millis(50);
    })
    .await;
    let sink = Sink::start();
    sink.always(Reply::status(200).delay(Duration::from_millis(700)));
    app.subscribe_url(&sink.url("/h")).await;
    app.publish("test:fire-and-forget", json!({"identityId": "a"})).await;
    assert_eq!(sink.wait_for(1, Duration::from_secs(5)).await.len(), 1, "delivery started");
    let store = app.store.clone();
    let _db = app.stop().await;
    let in_flight =
        store.run_blocking(|c| invocations::count_in_state(c, InvocationState::InFlight)).unwrap();
    let delivered =
        store.run_blocking(|c| invocations::count_in_state(c, InvocationState::Delivered)).unwrap();
    assert_eq!((in_flight, delivered), (0, 1));
}

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Server {
    pub fn start(db: &TestDb) -> Self {
        Self::start_with(db, &[])
    }

    /// Starts `hookgate serve` on `db`, with these settings over the test defaults.
    pub fn start_with(db: &TestDb, settings: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_hookgate"));
        command
            .arg("serve")
            .env("HOOKGATE_DATABASE_URL", db.url())
            .env("HOOKGATE_ENCRYPTION_KEY", hookgate::config::TEST_KEY)
            .env("HOOKGATE_LISTEN", format!("127.0.0.1:{port}"))
            .env("HOOKGATE_ALLOWED_TARGET_NETWORKS", "127.0.0.1/32")
            .env("HOOKGATE_WORKERS", "1")
            .env("HOOKGATE_BATCH_SIZE", "2")
            .env("HOOKGATE_POLL_INTERVAL", "100ms")
            .env("HOOKGATE_DELIVERY_TIMEOUT", "1s")
            .env("HOOKGATE_RETRY_SCHEDULE", "1s,1s,1s")
            .env("HOOKGATE_LOG", "error");
        for (key, value) in settings {
            command.env(key, value);
        }
        let child = command.spawn().unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while !ready(&url) {
            assert!(started.elapsed() < Duration::from_secs(20), "hookgate serve did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, url }
    }
}

/// A server a test leaves running is stopped with it, so that it holds no pipe of the test run.
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the server answers its readiness probe (a blocking one-off check over a raw socket).
fn ready(base: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let addr = base.trim_start_matches("http://");
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else { return false };
    if stream
        .write_all(
            format!(
                "GET /health/ready HTTP/1.0
Host: {addr}

"
            )
            .as_bytes(),
        )
        .is_err()
    {
        return false;
    }
    let mut answer = String::new();
    stream.read_to_string(&mut answer).is_ok()
        && (answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"))
}

/// Publishes `n` events through `server`; returns their invocation ids.
async fn publish_through(app: &TestApp, server: &Server, prefix: &str, n: usize) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for i in 0..n {
        let body: Value = app
            .http
            .post(format!("{}/trigger-invocations/v1/start", server.url))
            .bearer_auth(&app.token)
            .json(&json!({"triggerId": "test:fire-and-forget", "input": {"identityId": format!("{prefix}{i}")}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        ids.insert(body[0]["id"].as_str().unwrap().to_owned());
    }
    ids
}

#[actix_web::test]
async fn killing_the_process_mid_delivery_loses_nothing() {
    let db = Arc::new(TestDb::new());
    let mut server = Server::start(&db);
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    let sink = Sink::start();
    // The first answers are slow, so the kill lands while deliveries are in flight.
    sink.script((0..4).map(|_| Reply::status(200).delay(Duration::from_secs(3))));
    app.subscribe_url(&sink.url("/h")).await;
    let expected = publish_through(&app, &server, "k", 6).await;
    sink.wait_for(1, Duration::from_secs(10)).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let mut restarted = Server::start(&db);
    let deadline = Instant::now() + Duration::from_secs(40);
    let delivered = loop {
        let done =
            app.store.run_blocking(|c| invocations::count_in_state(c, InvocationState::Delivered)).unwrap();
        if done == 6 || Instant::now() > deadline {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let _ = restarted.child.kill();
    let _ = restarted.child.wait();
    assert_eq!(delivered, 6, "every accepted event was delivered after the restart");
    let seen: BTreeSet<String> = sink.received().iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert_eq!(seen, expected, "each event reached the subscriber at least once");
}

#[actix_web::test]
async fn sigterm_stops_the_server_without_leaving_work_in_flight() {
    let db = Arc::new(TestDb::new());
    let server = Server::start(&db);
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    let sink = Sink::start();
    sink.always(Reply::status(200).delay(Duration::from_millis(500)));
    app.subscribe_url(&sink.url("/h")).await;
    app.http
        .post(format!("{}/trigger-invocations/v1/start", server.url))
        .bearer_auth(&app.token)
        .json(&json!({"triggerId": "test:fire-and-forget", "input": {"identityId": "t"}}))
        .send()
        .await
        .unwrap();
    sink.wait_for(1, Duration::from_secs(10)).await;
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut server = server;
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "exit status {exit:?}");
    let in_flight =
        app.store.run_blocking(|c| invocations::count_in_state(c, InvocationState::InFlight)).unwrap();
    assert_eq!(in_flight, 0);
}

#[actix_web::test]
async fn a_killed_instance_s_work_is_taken_over_within_seconds_not_when_its_leases_expire() {
    let db = Arc::new(TestDb::new());
    // A 15 s delivery timeout makes leases of 32 s: the work must come back long before that.
    let long_leases = [("HOOKGATE_DELIVERY_TIMEOUT", "15s")];
    let mut server = Server::start_with(&db, &long_leases);
    let app = TestApp::spawn_on(db.clone(), |_| {}).await;
    let sink = Sink::start();
    sink.script((0..2).map(|_| Reply::status(200).delay(Duration::from_secs(10))));
    app.subscribe_url(&sink.url("/h")).await;
    let expected = publish_through(&app, &server, "t", 4).await;
    sink.wait_for(1, Duration::from_secs(10)).await;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let killed = Instant::now();

    let mut restarted = Server::start_with(&db, &long_leases);
    let delivered = loop {
        let done =
            app.store.run_blocking(|c| invocations::count_in_state(c, InvocationState::Delivered)).unwrap();
        if done == 4 || killed.elapsed() > Duration::from_secs(25) {
            break done;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let took = killed.elapsed();
    let _ = restarted.child.kill();
    let _ = restarted.child.wait();
    assert_eq!(delivered, 4, "every accepted event was delivered after the restart");
    assert!(took < Duration::from_secs(8), "taken over after {took:?}, not after the 32 s lease");
    let seen: BTreeSet<String> = sink.received().iter().map(|r| r.headers["webhook-id"].clone()).collect();
    assert_eq!(seen, expected);
}
