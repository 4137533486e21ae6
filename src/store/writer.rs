//! SQLite's one writer: a thread that owns the only connection that writes, and commits the jobs
//! that queue up while it works together, one transaction for many of them (group commit).
//!
//! Each job runs in a savepoint of the shared transaction, so one that fails leaves the others
//! intact; its caller hears the outcome only after the commit. No writer waits on SQLite's busy
//! handler, and the writer's page cache is never invalidated by another writing connection.

use std::sync::mpsc;

use diesel::Connection as _;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use tokio::sync::oneshot;

use super::revisions::Known;
use super::{AnyConnection, StoreError};

/// What a job tells its caller once the shared transaction has committed (`None`) or failed.
type Finish = Box<dyn FnOnce(Option<&StoreError>) + Send>;

/// One caller's work, waiting for the writer.
trait Job: Send {
    /// Runs in the group's transaction; what it returns answers the caller after the commit.
    fn run(self: Box<Self>, conn: &mut AnyConnection) -> Finish;
    /// The group's transaction could not start: the caller hears why.
    fn refuse(self: Box<Self>, why: &StoreError);
}

struct Queued<T, F> {
    work: F,
    answer: oneshot::Sender<Result<T, StoreError>>,
    span: tracing::Span,
}

impl<T, F> Job for Queued<T, F>
where
    F: FnOnce(&mut AnyConnection) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut AnyConnection) -> Finish {
        let Self { work, answer, span } = *self;
        let result = span.in_scope(|| conn.transaction::<T, StoreError, _>(work));
        Box::new(move |failed| {
            let out = match (result, failed) {
                (Ok(_), Some(e)) => Err(StoreError::Commit(e.to_string())),
                (result, _) => result,
            };
            let _ = answer.send(out);
        })
    }

    fn refuse(self: Box<Self>, why: &StoreError) {
        let _ = self.answer.send(Err(StoreError::Commit(why.to_string())));
    }
}

/// The most jobs committed together.
const MAX_GROUP: usize = 256;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Writer")
    }
}

impl Writer {
    /// Starts the writer thread on `conn`; it ends when every `Writer` handle is dropped.
    /// What the groups change in cached data counts in `known` once they are over.
    pub fn start(mut conn: AnyConnection, known: std::sync::Arc<Known>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || {
            while let Ok(first) = queue.recv() {
                let mut group = vec![first];
                while group.len() < MAX_GROUP {
                    match queue.try_recv() {
                        Ok(job) => group.push(job),
                        Err(_) => break,
                    }
                }
                commit_group(&mut conn, group, &known);
            }
        })?;
        Ok(Self { jobs })
    }

    /// Runs `f` in the next group's transaction and answers once that has committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, StoreError> + Send + 'static,
        T: Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job = Box::new(Queued { work: f, answer, span: tracing::Span::current() });
        self.jobs.send(job).map_err(|_| StoreError::WriterGone)?;
        answered.await.map_err(|_| StoreError::WriterGone)?
    }
}

/// Runs a group of jobs in one `BEGIN IMMEDIATE` transaction, each in its own savepoint; what
/// they changed in cached data counts before any of them is answered.
fn commit_group(conn: &mut AnyConnection, group: Vec<Box<dyn Job>>, known: &Known) {
    let AnyConnection::Sqlite(sqlite) = conn else {
        unreachable!("the writer runs only on SQLite");
    };
    if let Err(e) = AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE") {
        let e = StoreError::from(e);
        tracing::warn!(error = %e, "the SQLite writer could not begin a transaction");
        for job in group {
            job.refuse(&e);
        }
        return;
    }
    let finishers: Vec<Finish> = group.into_iter().map(|job| job.run(conn)).collect();
    let AnyConnection::Sqlite(sqlite) = conn else { unreachable!("the backend never changes") };
    let committed = AnsiTransactionManager::commit_transaction(sqlite).map_err(StoreError::from);
    if committed.is_err() {
        let _ = AnsiTransactionManager::rollback_transaction(sqlite);
    }
    known.note_touched();
    let failed = committed.err();
    for finish in finishers {
        finish(failed.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection as _;
    use diesel::prelude::*;
    use diesel::sql_types::BigInt;

    use super::*;
    use crate::store::connection::Manager;

    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }

    #[tokio::test]
    async fn writes_that_queue_up_commit_together_and_a_failing_one_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let url = dir.path().join("w.db").display().to_string();
        let manager = Manager::new(&url);
        let mut conn = manager.establish().unwrap();
        conn.batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER PRIMARY KEY)").unwrap();
        let writer = Writer::start(manager.establish().unwrap(), std::sync::Arc::default()).unwrap();
        let jobs = (0..64i64).map(|n| {
            let writer = writer.clone();
            async move {
                writer
                    .write(move |c| {
                        c.batch_execute(&format!("INSERT INTO t (n) VALUES ({n})"))?;
                        if n % 4 == 0 {
                            return Err(StoreError::Invalid(format!("{n} is refused")));
                        }
                        Ok(n)
                    })
                    .await
            }
        });
        let results = futures_util::future::join_all(jobs).await;
        let refused = results.iter().filter(|r| matches!(r, Err(StoreError::Invalid(_)))).count();
        assert_eq!((results.iter().filter(|r| r.is_ok()).count(), refused), (48, 16));
        let Count { n } = diesel::sql_query("SELECT COUNT(*) AS n FROM t").get_result(&mut conn).unwrap();
        assert_eq!(n, 48, "each refused write was rolled back alone");
        let Count { n } =
            diesel::sql_query("SELECT COUNT(*) AS n FROM t WHERE n % 4 = 0").get_result(&mut conn).unwrap();
        assert_eq!(n, 0);
    }
}
