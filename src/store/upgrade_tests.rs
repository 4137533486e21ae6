//! An existing database from before the delivery engine's schema upgrades without loss.

use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection as _;
use diesel_migrations::MigrationHarness as _;

use super::connection::{AnyConnection, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, open_pool, run_migrations};
use super::idempotency::{self, IdempotencyKey, Recalled};
use super::{invocations, queue};
use crate::domain::invocation::{CompleteRefusal, Completing, DeadReason, InvocationState};

/// A database for one test: a SQLite file, or a fresh schema on `TEST_DATABASE_URL`, removed
/// when dropped.
enum Scratch {
    /// The directory lives as long as the test.
    Sqlite(#[expect(dead_code, reason = "held for its Drop")] tempfile::TempDir),
    Postgres {
        admin: String,
        schema: String,
    },
}

impl Scratch {
    fn new() -> (String, Self) {
        match std::env::var("TEST_DATABASE_URL") {
            Ok(admin) if !admin.is_empty() => {
                let schema = format!("upgrade_{}", uuid::Uuid::new_v4().simple());
                let (pool, _) = open_pool(&admin, 1, Duration::from_secs(10)).unwrap();
                pool.get().unwrap().conn.batch_execute(&format!("CREATE SCHEMA {schema}")).unwrap();
                let sep = if admin.contains('?') { '&' } else { '?' };
                (format!("{admin}{sep}options=-csearch_path%3D{schema}"), Self::Postgres { admin, schema })
            }
            _ => {
                let dir = tempfile::tempdir().unwrap();
                (dir.path().join("old.db").display().to_string(), Self::Sqlite(dir))
            }
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Self::Postgres { admin, schema } = self
            && let Ok((pool, _)) = open_pool(admin, 1, Duration::from_secs(10))
            && let Ok(mut pooled) = pool.get()
        {
            let _ = pooled.conn.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
        }
    }
}

const OLD_ROWS: &str = "
INSERT INTO events (id, trigger_id, kind, input, content_json, payload, created)
  VALUES ('ev1', 'test:fire-and-forget', 'REAL_TIME', '{}', '{}', '{\"a\":1}', '2026-11-30 10:00:00');
INSERT INTO invocations (id, event_id, subscription_id, trigger_id, kind, state, attempts, next_attempt_at,
  secret, created, updated, completed, deliver_when_disabled)
  VALUES ('0190c0de-0000-7000-8000-000000000001', 'ev1', '0190c0de-0000-7000-8000-0000000000aa',
  'test:fire-and-forget', 'REAL_TIME', 'DELIVERED', 1, '2026-11-30 10:00:00', 's1',
  '2026-11-30 10:00:00', '2026-11-30 10:00:01', '2026-11-30 10:00:01', FALSE);
INSERT INTO invocations (id, event_id, subscription_id, trigger_id, kind, state, attempts, next_attempt_at,
  secret, created, updated, deliver_when_disabled)
  VALUES ('0190c0de-0000-7000-8000-000000000002', 'ev1', '0190c0de-0000-7000-8000-0000000000bb',
  'test:fire-and-forget', 'REAL_TIME', 'PENDING', 1, '2026-11-30 10:00:05', 's2',
  '2026-11-30 10:00:00', '2026-11-30 10:00:01', FALSE);
INSERT INTO invocations (id, event_id, subscription_id, trigger_id, kind, state, attempts, next_attempt_at,
  secret, last_error, created, updated, completed, deliver_when_disabled)
  VALUES ('0190c0de-0000-7000-8000-000000000003', 'ev1', '0190c0de-0000-7000-8000-0000000000cc',
  'test:fire-and-forget', 'REAL_TIME', 'DEAD', 1, '2026-11-30 10:00:30', 's3',
  'no complete callback arrived before the response deadline', '2026-11-30 10:00:00',
  '2026-11-30 10:00:30', '2026-11-30 10:00:30', FALSE);
INSERT INTO attempts (id, invocation_id, attempt, started, duration_ms, status)
  VALUES ('at1', '0190c0de-0000-7000-8000-000000000001', 1, '2026-11-30 10:00:00', 12, 200);
INSERT INTO idempotency_keys (key, request_hash, response, created, expires_at)
  VALUES ('k1', 'h1', '[{\"id\":\"0190c0de-0000-7000-8000-000000000001\"}]', '2026-11-30 10:00:00',
  '2099-01-01 00:00:00');
";

#[test]
fn a_database_from_before_the_engine_upgrade_keeps_its_invocations_attempts_keys_and_reasons() {
    let (url, _scratch) = Scratch::new();
    let (pool, _) = open_pool(&url, 1, Duration::from_secs(10)).unwrap();
    let mut pooled = pool.get().unwrap();
    let conn: &mut AnyConnection = &mut pooled.conn;
    for _ in 0..4 {
        let source = match conn {
            AnyConnection::Sqlite(_) => SQLITE_MIGRATIONS,
            AnyConnection::Postgresql(_) => POSTGRES_MIGRATIONS,
        };
        conn.run_next_migration(source).unwrap();
    }
    conn.batch_execute(OLD_ROWS).unwrap();
    assert!(run_migrations(conn).unwrap() >= 1, "the engine migration and those after it ran");

    let delivered = "0190c0de-0000-7000-8000-000000000001".parse().unwrap();
    assert_eq!(invocations::get(conn, &delivered).unwrap().state, InvocationState::Delivered);
    let attempts = invocations::attempts_of(conn, &delivered).unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].status, attempts[0].duration_ms), (Some(200), 12));

    let now: NaiveDateTime = "2026-11-30T10:01:00".parse().unwrap();
    let claimed = queue::claim(conn, "me", now, Duration::from_secs(30), 10).unwrap();
    assert_eq!(claimed.len(), 1, "the pending invocation is found through the new index");
    assert_eq!(claimed[0].invocation.attempts, 2);
    assert_eq!(&*claimed[0].payload, "{\"a\":1}");

    let expired = "0190c0de-0000-7000-8000-000000000003".parse().unwrap();
    let expired = invocations::get(conn, &expired).unwrap();
    assert_eq!(expired.dead_reason, Some(DeadReason::DeadlinePassed), "the reason is read off the old text");
    let at = "2026-11-30T10:00:30".parse().unwrap();
    assert_eq!(expired.completing(now), Completing::Refused(CompleteRefusal::PastDeadline(at)));

    let key = IdempotencyKey { key: "k1".into(), request_hash: "h1".into(), ttl: Duration::from_secs(60) };
    let Some(Recalled::SameBody(body)) = idempotency::recall_all(conn, &[&key], now).unwrap().pop() else {
        panic!("a key remembered before the upgrade still answers");
    };
    assert!(body.contains("000000000001"), "{body}");
    drop(pooled);
}
