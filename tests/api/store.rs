use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::helpers::TestApp;

fn migration_names(backend: &str) -> BTreeSet<String> {
    std::fs::read_dir(format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn both_backends_have_the_same_migrations() {
    let sqlite = migration_names("sqlite");
    assert!(!sqlite.is_empty());
    assert_eq!(sqlite, migration_names("postgres"));
    for name in &sqlite {
        for backend in ["sqlite", "postgres"] {
            for file in ["up.sql", "down.sql"] {
                let path = format!("{}/migrations/{backend}/{name}/{file}", env!("CARGO_MANIFEST_DIR"));
                assert!(std::path::Path::new(&path).exists(), "{path}");
            }
        }
    }
}

#[actix_web::test]
async fn concurrent_creates_cannot_exceed_the_one_subscription_limit() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "race", "triggerId": "test:request-response", "type": "HTTP",
                      "httpConfig": {"url": "http://127.0.0.1:9/x", "httpDispatchMode": "SYNC"}});
    let requests = (0..8).map(|_| app.post("/trigger-subscriptions/v1", &body));
    let statuses: Vec<u16> =
        futures_util::future::join_all(requests).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 201).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == 201 || *s == 400), "{statuses:?}");
    let listed: Value = app
        .get("/trigger-subscriptions/v1?filters=triggerId%20eq%20%22test%3Arequest-response%22")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_second_start_on_the_same_database_migrates_nothing_and_keeps_data() {
    let app = TestApp::spawn().await;
    let sub = app.subscribe("idn:identity-created", json!({})).await;
    let db = app.stop().await;
    let again = TestApp::spawn_on(db, |_| {}).await;
    assert_eq!(again.store.migrate().unwrap(), 0);
    let path = format!("/trigger-subscriptions/v1/{}", sub["id"].as_str().unwrap());
    assert_eq!(again.get(&path).await.status(), 200);
}

/// Two updates of one trigger whose reads would overlap: each waits (up to 300 ms) for the other
/// to have read. Unless the store serialises them, both read the old row and one write is lost.
#[actix_web::test]
async fn concurrent_updates_of_one_trigger_never_lose_a_write() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::time::{Duration, Instant};

    use hookgate::domain::ids::TriggerId;
    use hookgate::domain::trigger::TriggerSpec;

    let app = TestApp::spawn().await;
    let id: TriggerId = "test:fire-and-forget".parse().unwrap();
    let read = Arc::new(AtomicUsize::new(0));
    let now = chrono::Utc::now().naive_utc();
    let writers: Vec<_> = (0..2)
        .map(|i| {
            let (store, read, id) = (app.store.clone(), read.clone(), id.clone());
            std::thread::spawn(move || {
                store.run_blocking(|conn| {
                    hookgate::store::triggers::update(conn, &id, now, |current| {
                        read.fetch_add(1, SeqCst);
                        let deadline = Instant::now() + Duration::from_millis(300);
                        while read.load(SeqCst) < 2 && Instant::now() < deadline {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        let mut params = current.params.clone();
                        params.insert(format!("k{i}"), json!(i));
                        Ok(TriggerSpec {
                            id: current.id.clone(),
                            name: current.name.clone(),
                            kind: current.kind,
                            description: current.description.clone(),
                            input_schema: current.input_schema.clone(),
                            example_input: current.example_input.clone(),
                            output_schema: current.output_schema.clone(),
                            example_output: current.example_output.clone(),
                            params,
                            enabled: current.enabled,
                            schedule: current.schedule.clone(),
                        })
                    })
                })
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap().unwrap();
    }
    let trigger = app.store.run_blocking(|c| hookgate::store::triggers::get(c, &id)).unwrap();
    assert_eq!(trigger.params.len(), 2, "a write was lost: {:?}", trigger.params);
}
