//! Telling instances that something changed. A write that makes cached data stale raises a
//! counter in `revisions` in its own transaction, and this instance's count once that is over;
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

/// A kind of data that instances keep in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cached {
    /// API clients and their tokens.
    Clients,
    /// Triggers, as publishing checks input against them.
    Triggers,
    /// Subscriptions and their signing secrets, as the dispatcher delivers to them.
    Subscriptions,
    /// Sources, as their inbound routes check messages against them.
    Sources,
}

impl Cached {
    const ALL: [Self; 4] = [Self::Clients, Self::Triggers, Self::Subscriptions, Self::Sources];

    /// The row of `revisions` that counts its changes.
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Clients => "clients",
            Self::Triggers => "triggers",
            Self::Subscriptions => "subscriptions",
            Self::Sources => "sources",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == s)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// What a notification says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Data of this kind changed.
    Changed(Cached),
    /// Work was stored that no instance holds in memory.
    Work,
}

impl Signal {
    fn as_str(self) -> &'static str {
        match self {
            Self::Changed(kind) => kind.name(),
            Self::Work => "work",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        if s == "work" { Some(Self::Work) } else { Cached::parse(s).map(Self::Changed) }
    }
}

/// An instance's count of the changes it knows of, per kind: data cached under an older count
/// is not trusted. Each [`Store`] has its own, so two instances in one process still learn of
/// each other's changes only through the database.
#[derive(Debug, Default)]
pub struct Known([AtomicU64; 4]);

impl Known {
    /// The count of changes of `kind` known so far.
    pub fn seen(&self, kind: Cached) -> u64 {
        self.0[kind as usize].load(Ordering::Acquire)
    }

    fn note(&self, kind: Cached) {
        self.0[kind as usize].fetch_add(1, Ordering::AcqRel);
    }

    /// Counts the changes this thread's transactions made, once they are over (committed or
    /// not: a change that did not happen costs only a re-read).
    pub(super) fn note_touched(&self) {
        let touched = TOUCHED.replace(0);
        for kind in Cached::ALL.into_iter().filter(|kind| touched & kind.bit() != 0) {
            self.note(kind);
        }
    }
}

thread_local! {
    /// The kinds changed by the transaction under way on this thread, counted by the store's
    /// instance when it is over ([`Known::note_touched`]): counted before the commit, a cache
    /// could read the old data again and keep it under the new count.
    static TOUCHED: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
}

/// Records, in the caller's transaction, that data of `kind` changed: every instance drops what
/// it keeps of it, this one once the transaction is over.
pub fn changed(conn: &mut AnyConnection, kind: Cached) -> Result<(), StoreError> {
    diesel::update(revisions::table.find(kind.name()))
        .set(revisions::value.eq(revisions::value + 1))
        .execute(conn)?;
    TOUCHED.set(TOUCHED.get() | kind.bit());
    notify(conn, Signal::Changed(kind))
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

fn read_all(conn: &mut AnyConnection) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(revisions::table.select((revisions::name, revisions::value)).load(conn)?)
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
            let (stop, url, known) = (stop.clone(), self.url.clone(), self.known.clone());
            std::thread::Builder::new()
                .name("pg-listener".into())
                .spawn(move || listen(&url, &known, &on_work, &stop))
        });
        let mut counts: Option<Vec<(String, i64)>> = None;
        while !over(&stop) {
            match self.run(read_all).await {
                Ok(now) => {
                    if let Some(before) = &counts {
                        for (name, value) in &now {
                            if !before.contains(&(name.clone(), *value))
                                && let Some(kind) = Cached::parse(name)
                            {
                                self.known.note(kind);
                            }
                        }
                    }
                    counts = Some(now);
                }
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
fn listen(url: &str, known: &Known, on_work: &dyn Fn(), stop: &tokio::sync::watch::Receiver<bool>) {
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
        for kind in Cached::ALL {
            known.note(kind);
        }
        'listening: while !over(stop) {
            for notification in conn.notifications_iter() {
                match notification {
                    Ok(n) => match Signal::parse(&n.payload) {
                        Some(Signal::Changed(kind)) => known.note(kind),
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
