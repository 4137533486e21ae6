use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What can go wrong in the store; it knows nothing of HTTP.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("a record with the same key already exists")]
    Conflict(#[source] DieselError),
    /// The write breaks a rule checked inside the transaction (a limit, a missing reference).
    #[error("{0}")]
    Invalid(String),
    /// The record is still referenced and cannot be removed.
    #[error("{0}")]
    InUse(String),
    #[error("could not open the SQLite database {0}")]
    Open(String),
    #[error("could not connect to the database")]
    Connect(#[source] diesel::r2d2::PoolError),
    #[error("no database connection was free in time")]
    PoolTimeout(#[source] diesel::r2d2::PoolError),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database query failed")]
    Query(#[source] DieselError),
    /// The shared transaction a write ran in did not commit.
    #[error("the transaction did not commit: {0}")]
    Commit(String),
    #[error("the database writer has stopped")]
    WriterGone,
    /// What a write was computed from changed before it ran; it stored nothing and may be
    /// computed again.
    #[error("the data this write was computed from changed")]
    Moved,
    #[error("blocking task failed")]
    Join(#[from] tokio::task::JoinError),
}

impl StoreError {
    /// The connection is gone (the server restarted or closed it): it must not be used again.
    pub fn is_disconnect(&self) -> bool {
        matches!(
            self,
            Self::Query(DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _
            ))
        )
    }
}

impl From<DieselError> for StoreError {
    fn from(e: DieselError) -> Self {
        match e {
            DieselError::NotFound => Self::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _) => Self::Conflict(e),
            other => Self::Query(other),
        }
    }
}
