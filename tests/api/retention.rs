//! Bounded storage: the purge removes what is past its retention, and keeps the rest.

use std::process::Command;

use chrono::TimeDelta;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::sink::{Reply, Sink};

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Rows in `table`, read from the database itself.
pub fn rows(app: &TestApp, table: &'static str) -> i64 {
    app.store
        .run_blocking(move |c| {
            Ok(diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")).get_result::<Count>(c)?.n)
        })
        .unwrap()
}

/// Publishes `n` events on `test:fire-and-forget`, a thousand per request.
async fn publish_many(app: &TestApp, n: usize, tag: &str) {
    for start in (0..n).step_by(1000) {
        let batch: Vec<Value> = (start..n.min(start + 1000))
            .map(|i| json!({"triggerId": "test:fire-and-forget", "input": {"identityId": format!("{tag}-{i}")}, "contentJson": {}}))
            .collect();
        let response = app.post("/trigger-invocations/v1/start", &Value::Array(batch)).await;
        assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    }
}

#[actix_web::test]
async fn ten_thousand_delivered_invocations_past_retention_leave_no_rows() {
    let mut app = TestApp::spawn().await;
    let sink = Sink::start();
    // The first hundred attempts fail once, so attempts have rows of their own too.
    sink.script(std::iter::repeat_n(Reply::status(500), 100));
    sink.always(Reply::status(200));
    app.subscribe_url(&sink.url("/kept-for-a-week")).await;
    publish_many(&app, 10_000, "old").await;
    app.drain().await;
    app.advance(TimeDelta::seconds(6));
    app.drain().await;
    assert_eq!(rows(&app, "attempts"), 100);
    assert_eq!(rows(&app, "invocations"), 10_000);

    // A week later, 10 fresh deliveries join them.
    app.advance(TimeDelta::days(7) + TimeDelta::minutes(1));
    app.token = app.token_for(&["sp:scopes:all"]).await;
    publish_many(&app, 10, "new").await;
    app.drain().await;

    let purged = app.purger.run_once().await.unwrap();
    assert_eq!((purged.invocations, purged.attempts, purged.events), (10_000, 100, 10_000), "{purged:?}");
    assert_eq!(rows(&app, "invocations"), 10);
    assert_eq!(rows(&app, "attempts"), 0);
    assert_eq!(rows(&app, "events"), 10);
    assert_eq!(app.purger.run_once().await.unwrap().invocations, 0, "nothing is left to purge");

    app.advance(TimeDelta::days(8));
    app.purger.run_once().await.unwrap();
    assert_eq!((rows(&app, "invocations"), rows(&app, "events")), (0, 0));
}

#[actix_web::test]
async fn dead_letters_are_kept_for_their_own_retention_with_their_events() {
    let mut app = TestApp::spawn_with(|s| s.retry_schedule = Vec::new()).await;
    let sink = Sink::start();
    sink.always(Reply::status(200));
    app.subscribe_url(&sink.url("/ok")).await;
    app.subscribe_url("http://127.0.0.1:9/refused").await;
    publish_many(&app, 5, "e").await;
    // An event of a trigger without subscribers: no invocation ever references it.
    let lonely = json!({"id": "test:lonely", "name": "lonely", "type": "FIRE_AND_FORGET",
        "inputSchema": {"type": "object"}, "exampleInput": {}});
    assert_eq!(app.post("/triggers/v1", &lonely).await.status(), 201);
    assert!(app.publish("test:lonely", json!({})).await.status().is_success());
    assert_eq!(rows(&app, "events"), 6);
    app.drain().await;
    assert_eq!(rows(&app, "invocations"), 10);

    app.advance(TimeDelta::days(8));
    app.token = app.token_for(&["sp:scopes:all"]).await;
    let purged = app.purger.run_once().await.unwrap();
    assert_eq!(purged.invocations, 5, "only the delivered ones: {purged:?}");
    assert_eq!(rows(&app, "invocations"), 5, "the dead letters stay for 30 days");
    assert_eq!(rows(&app, "events"), 5, "their events stay with them; the lonely one went");
    let listed: Value = app.get("/dead-letters/v1").await.json().await.unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 5);

    app.advance(TimeDelta::days(23));
    app.purger.run_once().await.unwrap();
    assert_eq!((rows(&app, "invocations"), rows(&app, "events")), (0, 0));
}

#[actix_web::test]
async fn hookgate_purge_counts_with_dry_run_then_removes() {
    let app = TestApp::spawn().await;
    let sink = Sink::start();
    sink.always(Reply::status(200));
    app.subscribe_url(&sink.url("/h")).await;
    // Made two hours ago by the wall clock, which the command reads.
    app.advance(TimeDelta::hours(-2));
    publish_many(&app, 3, "cli").await;
    app.drain().await;
    let purge = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .arg("purge")
            .args(args)
            .env("HOOKGATE_DATABASE_URL", app.db.url())
            .env("HOOKGATE_ENCRYPTION_KEY", hookgate::config::TEST_KEY)
            .env("HOOKGATE_LOG", "warn")
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).unwrap()
    };
    let would = purge(&["--older-than", "1h", "--dry-run", "--json"]);
    assert_eq!((would["invocations"].as_u64(), would["events"].as_u64()), (Some(3), Some(3)), "{would}");
    assert_eq!(would["dryRun"], true);
    assert_eq!(rows(&app, "invocations"), 3, "a dry run removes nothing");
    assert_eq!(purge(&["--older-than", "3h", "--json"])["invocations"], 0);
    let removed = purge(&["--older-than", "1h", "--json"]);
    assert_eq!(removed["invocations"], 3, "{removed}");
    assert_eq!((rows(&app, "invocations"), rows(&app, "events")), (0, 0));
}

/// The bytes the database takes: the SQLite file and its WAL after a checkpoint, or on
/// PostgreSQL the rows of the tables the purge empties.
fn footprint(app: &TestApp) -> i64 {
    match &*app.db {
        crate::helpers::TestDb::Sqlite(dir) => {
            app.store.run_blocking(hookgate::store::checkpoint).unwrap();
            let size = |name: &str| std::fs::metadata(dir.path().join(name)).map_or(0, |m| m.len());
            i64::try_from(size("hookgate.db") + size("hookgate.db-wal")).unwrap()
        }
        crate::helpers::TestDb::Postgres { .. } => {
            rows(app, "invocations") + rows(app, "events") + rows(app, "attempts")
        }
    }
}

#[actix_web::test]
async fn under_a_steady_load_with_a_short_retention_the_database_stops_growing() {
    let mut app = TestApp::spawn_with(|s| s.retention_delivered = std::time::Duration::from_secs(60)).await;
    let sink = Sink::start();
    sink.always(Reply::status(200));
    app.subscribe_url(&sink.url("/steady")).await;
    let mut sizes = Vec::new();
    for round in 0..12 {
        publish_many(&app, 1000, &format!("steady-{round}")).await;
        app.drain().await;
        // The next round comes after this one's retention: the purge frees its rows.
        app.advance(TimeDelta::minutes(2));
        app.token = app.token_for(&["sp:scopes:all"]).await;
        let purged = app.purger.run_once().await.unwrap();
        assert_eq!(purged.invocations, 1000, "round {round}: its deliveries are past the retention");
        sizes.push(footprint(&app));
    }
    eprintln!("footprint by round: {sizes:?}");
    // Once the freed pages are there to reuse, the size stays where it was after a few rounds.
    let settled = sizes[3];
    assert!(sizes[3..].iter().all(|&s| s <= settled + settled / 10), "sizes by round: {sizes:?}");
}
