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
