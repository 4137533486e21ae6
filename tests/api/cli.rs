use std::process::{Command, Output};

use serde_json::Value;

use crate::helpers::TestDb;

pub fn hookgate(db: &TestDb, args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(args)
        .current_dir(dir.path())
        .env("HOOKGATE_DATABASE_URL", db.url())
        .env("HOOKGATE_ENCRYPTION_KEY", hookgate::config::TEST_KEY)
        .env("HOOKGATE_LOG", "warn")
        .output()
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "stderr: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn client_create_prints_the_secret_once_then_list_and_revoke_work() {
    let db = TestDb::new();
    let created: Value = serde_json::from_str(&stdout(&hookgate(
        &db,
        &[
            "client",
            "create",
            "--name",
            "ci",
            "--scope",
            "sp:trigger-service-subscriptions:read",
            "--scope",
            "hookgate:triggers:manage",
            "--json",
        ],
    )))
    .unwrap();
    let id = created["clientId"].as_str().unwrap().to_owned();
    assert!(created["clientSecret"].as_str().unwrap().starts_with("hgs_"));
    assert_eq!(created["scopes"], "sp:trigger-service-subscriptions:read hookgate:triggers:manage");

    let listed: Value = serde_json::from_str(&stdout(&hookgate(&db, &["client", "list", "--json"]))).unwrap();
    assert_eq!(listed[0]["clientId"], id.as_str());
    assert!(listed[0]["revoked"].is_null());
    let text = stdout(&hookgate(&db, &["client", "list"]));
    assert!(text.contains(&id) && text.contains("active"), "{text}");
    assert!(!text.contains(created["clientSecret"].as_str().unwrap()));

    assert!(stdout(&hookgate(&db, &["client", "revoke", &id])).contains("revoked"));
    let listed: Value = serde_json::from_str(&stdout(&hookgate(&db, &["client", "list", "--json"]))).unwrap();
    assert!(listed[0]["revoked"].is_string());

    let missing = hookgate(&db, &["client", "revoke", "0123456789abcdef0123456789abcdef"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no client"));
}

#[test]
fn unknown_scopes_are_refused_with_the_known_ones_listed() {
    let db = TestDb::new();
    let output = hookgate(&db, &["client", "create", "--name", "x", "--scope", "everything"]);
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(err.contains("'everything'") && err.contains("sp:scopes:all"), "{err}");
}

#[test]
fn migrate_applies_the_schema() {
    let db = TestDb::new();
    assert!(stdout(&hookgate(&db, &["migrate"])).contains("migrations applied"));
    assert!(stdout(&hookgate(&db, &["migrate"])).contains("migrations applied"));
}

#[test]
fn bad_configuration_is_refused_naming_the_key() {
    let db = TestDb::new();
    let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["serve"])
        .env("HOOKGATE_DATABASE_URL", db.url())
        .env("HOOKGATE_ENCRYPTION_KEY", hookgate::config::TEST_KEY)
        .env("HOOKGATE_LISTEN", "nowhere")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("'listen'"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hookgate.toml"), "token_ttl = \"forever\"\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["migrate"])
        .current_dir(dir.path())
        .env("HOOKGATE_DATABASE_URL", db.url())
        .env("HOOKGATE_ENCRYPTION_KEY", hookgate::config::TEST_KEY)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("'token_ttl'"));
}

#[test]
fn the_benchmark_delivers_every_event_once_and_reports_json() {
    let mut args =
        vec!["bench", "--events", "50", "--subscriptions", "2", "--concurrency", "4", "--idle-timeout", "10"];
    let pg = std::env::var("TEST_DATABASE_URL").ok().filter(|u| !u.is_empty());
    if let Some(url) = &pg {
        args.extend(["--database-url", url.as_str()]);
    }
    let output = Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(&args)
        .env("HOOKGATE_LOG", "error")
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(stdout(&output).lines().last().unwrap()).unwrap();
    assert_eq!(report["backend"], if pg.is_some() { "postgres" } else { "sqlite" });
    assert_eq!(report["events"], 50);
    assert_eq!(report["deliveries"], 100);
    assert_eq!(report["lost"], 0);
    assert_eq!(report["duplicates"], 0);
    for key in ["elapsed_s", "events_per_s", "deliveries_per_s", "peak_rss_mb"] {
        assert!(report[key].as_f64().is_some_and(|v| v > 0.0), "{key}: {report}");
    }
    for key in ["p50", "p90", "p99", "max"] {
        assert!(report["latency_ms"][key].is_number(), "{key}");
    }
}
