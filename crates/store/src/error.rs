/// Store errors. Messages name tables and kinds, never row contents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A unique key is taken (tenant name, record id, subject, key version).
    #[error("conflict: {0} already exists")]
    Conflict(&'static str),
    /// The backend cannot be reached or refused the operation.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stored row does not decode; the database was changed outside boveda.
    #[error("corrupt row in {0}")]
    Corrupt(&'static str),
    /// Operator misuse: bad storage settings, failed migration.
    #[error("storage configuration: {0}")]
    Config(String),
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        // SQLITE_CONSTRAINT_TRIGGER (1811) is a trigger refusing the write, not a duplicate.
        if let rusqlite::Error::SqliteFailure(f, _) = &e
            && f.code == rusqlite::ErrorCode::ConstraintViolation
            && f.extended_code != 1811
        {
            return Error::Conflict("row");
        }
        Error::Unavailable(format!("sqlite: {e}"))
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
            return Error::Conflict("row");
        }
        // `Display` of a database error carries the message, not the row's values.
        Error::Unavailable(format!("postgres: {e}"))
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Error::Unavailable(format!("postgres pool: {e}"))
    }
}
