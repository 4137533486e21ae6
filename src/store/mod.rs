//! Persistence: the pool, migrations and every query. The only module that names diesel.

pub mod audit;
mod chains;
pub mod clients;
mod connection;
pub mod crypto;
pub mod erasure;
mod error;
pub mod events;
pub mod flow;
pub mod gauges;
pub mod health;
pub mod idempotency;
pub mod instances;
pub mod invocations;
pub mod operational;
pub mod outcomes;
mod pg_batch;
pub mod polls;
pub mod purge;
pub mod queue;
pub mod replays;
pub mod responses;
pub mod revisions;
pub mod schedules;
mod schema;
pub mod sources;
pub mod subscribers;
pub mod subscriptions;
pub mod triggers;
#[cfg(test)]
mod upgrade_tests;
mod writer;

use std::time::Duration;

pub use connection::{AnyConnection, Backend, checkpoint, write_transaction};
pub use error::StoreError;

/// A handle on the database: cheap to clone, shared by the API, the workers and the CLI.
#[derive(Clone)]
pub struct Store {
    pool: connection::Pool,
    backend: Backend,
    url: String,
    /// SQLite's one writing connection, once started (see [`Store::start_writer`]).
    writer: Option<writer::Writer>,
    /// The changes to cached data this instance knows of ([`revisions`]).
    known: std::sync::Arc<revisions::Known>,
    /// Callers waiting for a pooled connection.
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// The pool as the metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    pub connections: u32,
    pub idle: u32,
    pub waiting: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens a pool of up to `max_connections` on `url` (a SQLite path or `postgres://...`).
    pub fn open(url: &str, max_connections: u32, timeout: Duration) -> Result<Self, StoreError> {
        let (pool, backend) = connection::open_pool(url, max_connections, timeout)?;
        Ok(Self {
            pool,
            backend,
            url: url.to_owned(),
            writer: None,
            known: std::sync::Arc::default(),
            waiting: std::sync::Arc::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Open and idle pooled connections, and how many callers wait for one.
    pub fn pool_status(&self) -> PoolStatus {
        let state = self.pool.state();
        PoolStatus {
            connections: state.connections,
            idle: state.idle_connections,
            waiting: self.waiting.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// How many changes to data of `kind` this instance knows of: what it cached under an older
    /// count is stale.
    pub fn seen(&self, kind: revisions::Cached) -> u64 {
        self.known.seen(kind)
    }

    /// Applies pending migrations; returns how many ran.
    pub fn migrate(&self) -> Result<usize, StoreError> {
        self.run_blocking(connection::run_migrations)
    }

    /// On a SQLite file, gives every [`Store::write`] to one writing connection on its own thread,
    /// which commits what queues up together. Other backends, and in-memory SQLite, keep using
    /// the pool.
    pub fn start_writer(&mut self) -> Result<(), StoreError> {
        if self.backend != Backend::Sqlite || self.url.contains(":memory:") || self.writer.is_some() {
            return Ok(());
        }
        let manager = connection::Manager::new(&self.url);
        let conn = manager.establish().map_err(|e| StoreError::Open(format!("{}: {e}", self.url)))?;
        self.writer = Some(
            writer::Writer::start(conn, self.known.clone()).map_err(|e| StoreError::Open(e.to_string()))?,
        );
        Ok(())
    }

    /// Runs `f` in a write transaction: with a writer (SQLite), in its next group; else on a
    /// pooled connection off the async threads.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.write(f).await,
            None => self.run(move |c| write_transaction(c, f)).await,
        }
    }

    /// Runs `f`, whose writes are atomic by themselves (one statement, or a transaction `f` opens
    /// itself): on SQLite in the writer's next group like any write; on PostgreSQL on a pooled
    /// connection with no transaction around it, saving the round trips of `BEGIN` and `COMMIT`.
    pub async fn write_atomic<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        match (&self.writer, self.backend) {
            (Some(writer), _) => writer.write(f).await,
            (None, Backend::Postgres) => self.run(f).await,
            (None, Backend::Sqlite) => self.run(move |c| write_transaction(c, f)).await,
        }
    }

    /// Runs `f` on a pooled connection on the calling thread (for the CLI and start-up).
    pub fn run_blocking<T>(
        &self,
        f: impl FnOnce(&mut AnyConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use std::sync::atomic::Ordering;
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let pooled = self.pool.get();
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let mut pooled = pooled.map_err(StoreError::PoolTimeout)?;
        let result = f(&mut pooled.conn);
        self.known.note_touched();
        if let Err(e) = &result
            && e.is_disconnect()
        {
            pooled.broken = true;
        }
        result
    }

    /// Runs `f` on a pooled connection off the async threads, inside the caller's span.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let store = self.clone();
        let span = tracing::Span::current();
        tokio::task::spawn_blocking(move || span.in_scope(|| store.run_blocking(f))).await?
    }

    /// Keeps SQLite's WAL short: run every half second while serving (commits never checkpoint).
    pub async fn checkpoint_loop(&self, mut stop: tokio::sync::watch::Receiver<bool>) {
        if self.backend != Backend::Sqlite {
            return;
        }
        while !*stop.borrow() {
            if let Err(e) = self.run(checkpoint).await {
                tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stop.changed() => {}
            }
        }
        let _ = self.run(checkpoint).await;
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|conn| {
            use diesel::connection::SimpleConnection;
            conn.batch_execute("SELECT 1").map_err(StoreError::from)
        })
        .await
    }
}

/// Reads a JSON column written by hookgate.
fn json_column<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}
