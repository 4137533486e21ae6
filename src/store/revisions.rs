//! Telling instances that something changed. A write that makes cached data stale raises a
//! counter in `revisions` in its own transaction, and this process's copy of it once committed;
//! every instance reads the counters a few times a second ([`Store::watch`]), so a change made
//! by another instance or by the CLI on the same database empties its caches promptly. On
//! PostgreSQL the same transaction also sends a `NOTIFY`, heard at once by every instance's
//! listener, which also wakes delivery loops when work is published that no instance holds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;

use super::schema::revisions;
use super::{AnyConnection, Backend, Store, StoreError};

/// The channel every instance listens on (PostgreSQL), followed by the schema's name: deployments
/// in other schemas of the same database do not hear each other.
const CHANNEL: &str = "hookgate_";

/// What a notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// API clients or their tokens changed (a client was revoked).
    Clients,
    /// Work was stored that no instance holds in memory.
    Work,
}

impl Signal {
    fn as_str(self) -> &'static str {
        match self {
            Self::Clients => "clients",
            Self::Work => "work",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "clients" => Some(Self::Clients),
            "work" => Some(Self::Work),
            _ => None,
        }
    }
}

/// This process's count of client changes it knows of: a cached token read under an older count
/// is not trusted.
static CLIENTS: AtomicU64 = AtomicU64::new(0);

/// The count of client changes this process knows of.
pub fn clients_seen() -> u64 {
    CLIENTS.load(Ordering::Acquire)
}

/// This process learnt (or made, and committed) a change to clients.
pub fn note_clients_changed() {
    CLIENTS.fetch_add(1, Ordering::AcqRel);
}

/// Records, in the caller's transaction, that clients changed; call [`note_clients_changed`]
/// after the commit.
pub fn clients_changed(conn: &mut AnyConnection) -> Result<(), StoreError> {
    diesel::update(revisions::table.find(Signal::Clients.as_str()))
        .set(revisions::value.eq(revisions::value + 1))
        .execute(conn)?;
    notify(conn, Signal::Clients)
}

/// Sends `signal` to every instance when the caller's transaction commits (PostgreSQL; SQLite
/// has no one to tell but this process).
pub fn notify(conn: &mut AnyConnection, signal: Signal) -> Result<(), StoreError> {
    if let AnyConnection::Postgresql(pg) = conn {
        pg.batch_execute(&format!(
            "SELECT pg_notify('{CHANNEL}' || current_schema(), '{}')",
            signal.as_str()
        ))?;
    }
    Ok(())
}

fn clients_revision(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    Ok(revisions::table
        .find(Signal::Clients.as_str())
        .select(revisions::value)
        .first::<i64>(conn)
        .optional()?
        .unwrap_or(0))
}

/// How often the counters are read.
const READ_EVERY: Duration = Duration::from_millis(250);

/// How often the listener looks for notifications that arrived.
const LISTEN_EVERY: Duration = Duration::from_millis(5);

impl Store {
    /// Until `stop`, reads the counters a few times a second and, on PostgreSQL, listens for
    /// notifications; `on_work` is called when another instance stored work no one holds.
    pub async fn watch(
        &self,
        on_work: impl Fn() + Send + 'static,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let listener = (self.backend() == Backend::Postgres).then(|| {
            let (stop, url) = (stop.clone(), self.url.clone());
            std::thread::Builder::new()
                .name("pg-listener".into())
                .spawn(move || listen(&url, &on_work, &stop))
        });
        let mut known = None;
        while !over(&stop) {
            match self.run(clients_revision).await {
                Ok(now) if known.is_some_and(|k| k != now) => {
                    note_clients_changed();
                    known = Some(now);
                }
                Ok(now) => known = Some(now),
                Err(e) => tracing::debug!(error = %e, "could not read revisions; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(READ_EVERY) => {}
                _ = stop.changed() => {}
            }
        }
        if let Some(Ok(thread)) = listener {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Whether the watch is over: told to stop, or its owner is gone.
fn over(stop: &tokio::sync::watch::Receiver<bool>) -> bool {
    stop.has_changed().is_err() || *stop.borrow()
}

/// Listens on a connection of its own until `stop`, connecting again after a failure.
fn listen(url: &str, on_work: &dyn Fn(), stop: &tokio::sync::watch::Receiver<bool>) {
    while !over(stop) {
        let connected = diesel::PgConnection::establish(url).map_err(|e| e.to_string()).and_then(|mut c| {
            let schema = diesel::select(diesel::dsl::sql::<diesel::sql_types::Text>("current_schema()"))
                .get_result::<String>(&mut c)
                .map_err(|e| e.to_string())?;
            let channel = format!("{CHANNEL}{schema}").replace('"', "\"\"");
            c.batch_execute(&format!("LISTEN \"{channel}\"")).map(|()| c).map_err(|e| e.to_string())
        });
        let mut conn = match connected {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "the PostgreSQL listener could not connect; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        // Whatever was missed while not listening: look again.
        on_work();
        note_clients_changed();
        'listening: while !over(stop) {
            for notification in conn.notifications_iter() {
                match notification {
                    Ok(n) => match Signal::parse(&n.payload) {
                        Some(Signal::Clients) => note_clients_changed(),
                        Some(Signal::Work) => on_work(),
                        None => {}
                    },
                    Err(e) => {
                        tracing::debug!(error = %e, "the PostgreSQL listener lost its connection");
                        break 'listening;
                    }
                }
            }
            std::thread::sleep(LISTEN_EVERY);
        }
    }
}
