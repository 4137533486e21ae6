//! One connection type over SQLite and PostgreSQL, its r2d2 pool, and embedded migrations.

use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::StoreError;

pub const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
pub const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Serialises concurrent `migrate` runs of several instances on one PostgreSQL database.
const MIGRATION_LOCK_KEY: i64 = 0x686f_6f6b_6761_7465;

#[derive(diesel::MultiConnection)]
pub enum AnyConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type Pool = r2d2::Pool<Manager>;

/// Which backend a database URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Self {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Self::Postgres
        } else {
            Self::Sqlite
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// An r2d2 manager that establishes the backend the URL names and reports its real errors
/// (the derived `AnyConnection::establish` tries each backend in turn and hides why they failed).
#[derive(Debug)]
pub struct Manager {
    url: String,
    backend: Backend,
}

impl Manager {
    pub fn new(url: &str) -> Self {
        let backend = Backend::from_url(url);
        let url = match backend {
            Backend::Sqlite => url.strip_prefix("sqlite://").unwrap_or(url).to_owned(),
            Backend::Postgres => url.to_owned(),
        };
        Self { url, backend }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn is_memory(&self) -> bool {
        self.backend == Backend::Sqlite && self.url.contains(":memory:")
    }
}

/// A pooled connection, marked broken when a query found the server gone (a PostgreSQL restart),
/// so the pool replaces it instead of handing it out again. With that, no `SELECT 1` is needed
/// on every checkout.
pub struct Pooled {
    pub conn: AnyConnection,
    pub broken: bool,
}

impl ManageConnection for Manager {
    type Connection = Pooled;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<Pooled, r2d2::Error> {
        self.establish().map(|conn| Pooled { conn, broken: false })
    }

    fn is_valid(&self, pooled: &mut Pooled) -> Result<(), r2d2::Error> {
        pooled.conn.batch_execute("SELECT 1").map_err(r2d2::Error::QueryError)
    }

    fn has_broken(&self, pooled: &mut Pooled) -> bool {
        use diesel::r2d2::R2D2Connection as _;
        pooled.broken || pooled.conn.is_broken()
    }
}

impl Manager {
    pub(super) fn establish(&self) -> Result<AnyConnection, r2d2::Error> {
        match self.backend {
            Backend::Postgres => {
                let mut conn =
                    diesel::PgConnection::establish(&self.url).map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(POSTGRES_CONNECTION_SETTINGS).map_err(r2d2::Error::QueryError)?;
                Ok(AnyConnection::Postgresql(conn))
            }
            Backend::Sqlite => {
                let mut conn =
                    diesel::SqliteConnection::establish(&self.url).map_err(r2d2::Error::ConnectionError)?;
                conn.batch_execute(SQLITE_CONNECTION_PRAGMAS).map_err(r2d2::Error::QueryError)?;
                Ok(AnyConnection::Sqlite(conn))
            }
        }
    }
}

/// Every PostgreSQL connection plans each execution of its prepared statements for the values
/// bound (they are still parsed once). A generic plan, which PostgreSQL keeps after five
/// executions, is made from the statistics of the moment: made while the tables are young, the
/// batch update of outcomes scanned every invocation instead of looking up the batch's ids, and
/// a drain at half rate (10,000 events to 10 subscribers) stalled with a p99 of 20 s until
/// autovacuum's statistics invalidated the plan.
const POSTGRES_CONNECTION_SETTINGS: &str = "SET plan_cache_mode = force_custom_plan";

/// Every SQLite connection: wait for the writer rather than fail, no fsync per commit in WAL
/// mode (a crash of the machine may lose the last commits, never corrupt the file), foreign
/// keys, and an 8 MiB page cache. No memory-mapped reads: mapped pages count in the process's
/// resident memory once per connection, which took a server draining a million invocations to
/// 146 MB with 64 MiB mapped and 80 MB without, at the same rate. Checkpoints run in the
/// background ([`checkpoint`]), not on a committing request.
const SQLITE_CONNECTION_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL; \
     PRAGMA foreign_keys = ON; PRAGMA cache_size = -8192; PRAGMA mmap_size = 0; \
     PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY;";

/// Copies what the WAL holds back into the database file without waiting for readers or the
/// writer; the next commit after a complete pass starts the WAL over, and `journal_size_limit`
/// truncates it, so it stays bounded under steady load.
pub fn checkpoint(conn: &mut AnyConnection) -> Result<(), StoreError> {
    if let AnyConnection::Sqlite(sqlite) = conn {
        sqlite.batch_execute("PRAGMA wal_checkpoint(PASSIVE)")?;
    }
    Ok(())
}

/// Opens the pool for `url`. An in-memory SQLite database lives in exactly one connection.
pub fn open_pool(url: &str, max_size: u32, timeout: Duration) -> Result<(Pool, Backend), StoreError> {
    let manager = Manager::new(url);
    let backend = manager.backend();
    if backend == Backend::Sqlite && !manager.is_memory() {
        // WAL is a property of the file: set it once, before several connections race for the
        // exclusive lock that switching needs.
        let mut conn = diesel::SqliteConnection::establish(&manager.url)
            .map_err(|e| StoreError::Open(format!("{}: {e}", manager.url)))?;
        conn.batch_execute(
            "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; PRAGMA journal_size_limit = 67108864;",
        )?;
    }
    let mut builder = r2d2::Pool::builder().connection_timeout(timeout);
    builder = if manager.is_memory() {
        builder.max_size(1).min_idle(Some(1)).idle_timeout(None).max_lifetime(None)
    } else {
        builder.max_size(max_size).min_idle(Some(1)).test_on_check_out(false)
    };
    let pool = builder.build(manager).map_err(StoreError::Connect)?;
    Ok((pool, backend))
}

/// Applies every pending migration of the connection's backend; returns how many ran.
pub fn run_migrations(conn: &mut AnyConnection) -> Result<usize, StoreError> {
    let migrate = |conn: &mut AnyConnection, source: EmbeddedMigrations| {
        conn.run_pending_migrations(source)
            .map(|done| done.len())
            .map_err(|e| StoreError::Migration(e.to_string()))
    };
    match conn {
        AnyConnection::Postgresql(_) => {
            conn.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))?;
            let result = migrate(conn, POSTGRES_MIGRATIONS);
            conn.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))?;
            result
        }
        AnyConnection::Sqlite(_) => migrate(conn, SQLITE_MIGRATIONS),
    }
}

/// Runs `f` in a write transaction. On SQLite it starts with `BEGIN IMMEDIATE`, so that two
/// read-then-write transactions never fail with "database is locked" halfway through. Inside a
/// transaction already, SQLite gives `f` a savepoint (the writer's jobs are rolled back one by
/// one), and PostgreSQL runs it in the open transaction: a failure fails the whole of it, and
/// no savepoint round trips are spent.
pub fn write_transaction<T, F>(conn: &mut AnyConnection, f: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, StoreError>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let AnyConnection::Sqlite(sqlite) = conn else {
        let AnyConnection::Postgresql(pg) = conn else { unreachable!("two backends") };
        let status =
            <AnsiTransactionManager as TransactionManager<diesel::PgConnection>>::transaction_manager_status_mut(pg);
        if status.transaction_depth()?.is_some() {
            return f(conn);
        }
        return conn.transaction(f);
    };
    let status = <AnsiTransactionManager as TransactionManager<diesel::SqliteConnection>>::transaction_manager_status_mut(sqlite);
    if status.transaction_depth()?.is_some() {
        // Already inside a transaction (the writer's group): a savepoint.
        return conn.transaction(f);
    }
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    let result = f(conn);
    let AnyConnection::Sqlite(sqlite) = conn else {
        unreachable!("the backend of a connection never changes");
    };
    match result {
        Ok(value) => {
            AnsiTransactionManager::commit_transaction(sqlite)?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = AnsiTransactionManager::rollback_transaction(sqlite) {
                tracing::error!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use diesel::sql_types::{BigInt, Text};

    use super::*;

    #[derive(QueryableByName)]
    struct JournalMode {
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }

    #[derive(QueryableByName)]
    struct Pragma {
        #[diesel(sql_type = BigInt)]
        value: i64,
    }

    #[test]
    fn sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (pool, backend) =
            open_pool(&dir.path().join("x.db").display().to_string(), 2, Duration::from_secs(5)).unwrap();
        assert_eq!(backend, Backend::Sqlite);
        let mut conn = pool.get().unwrap();
        let AnyConnection::Sqlite(sqlite) = &mut conn.conn else { panic!("not sqlite") };
        let mode: JournalMode = diesel::sql_query("PRAGMA journal_mode").get_result(sqlite).unwrap();
        assert_eq!(mode.journal_mode, "wal");
        let fk: Pragma = diesel::sql_query("SELECT foreign_keys AS value FROM pragma_foreign_keys")
            .get_result(sqlite)
            .unwrap();
        assert_eq!(fk.value, 1);
        let busy: Pragma =
            diesel::sql_query("SELECT timeout AS value FROM pragma_busy_timeout").get_result(sqlite).unwrap();
        assert!(busy.value >= 5000, "{}", busy.value);
    }

    #[test]
    fn a_postgres_url_that_does_not_connect_reports_why() {
        let err = open_pool("postgres://nobody@127.0.0.1:1/none", 1, Duration::from_millis(300)).unwrap_err();
        let StoreError::Connect(source) = &err else { panic!("{err:?}") };
        assert!(source.to_string().contains("127.0.0.1"), "{source}");
    }
}
