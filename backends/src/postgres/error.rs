//! The one place where `tokio-postgres` and pool errors become the project's [`Error`],
//! naming the server as `host:port/db` and never the password.

use blobjobs_store_api::{Error, ErrorKind};
use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// A failed statement or connection attempt of operation `op` on `server`.
pub(crate) fn error(op: &str, server: &str, err: tokio_postgres::Error) -> Error {
    let (kind, why) = classify(&err);
    Error::new(kind, format!("postgres {op} at {server}: {why}")).with_source(err)
}

/// A failure to get a connection from the pool.
pub(crate) fn pool_error(op: &str, server: &str, err: PoolError) -> Error {
    match err {
        PoolError::Backend(e) => error(op, server, e),
        PoolError::Timeout(_) => Error::new(
            ErrorKind::Timeout,
            format!("postgres {op} at {server}: no connection became free in time"),
        ),
        other => Error::new(
            ErrorKind::Unavailable,
            format!("postgres {op} at {server}: {other}"),
        ),
    }
}

/// Whether a failed write may have been applied: the statement may have reached the server
/// before the connection broke. A refusal by the server (a database error) never applied it.
pub(crate) fn may_have_applied(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_none()
}

fn classify(err: &tokio_postgres::Error) -> (ErrorKind, String) {
    if let Some(db) = err.as_db_error() {
        let code = db.code();
        let what = db.message().to_lowercase();
        let kind = if *code == SqlState::INVALID_PASSWORD
            || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            || *code == SqlState::INSUFFICIENT_PRIVILEGE
        {
            ErrorKind::Unauthorized
        } else if code.code().starts_with("08")
            || code.code().starts_with("57")
            || code.code().starts_with("53")
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            // Connection exceptions, shutdowns and restarts, exhausted resources, and
            // transactions the server rolled back: all worth trying again.
            ErrorKind::Unavailable
        } else if *code == SqlState::INVALID_CATALOG_NAME {
            ErrorKind::InvalidInput
        } else {
            ErrorKind::Protocol
        };
        let why = match kind {
            ErrorKind::Unauthorized => format!("permission denied: {what}"),
            _ => format!("{what} (sqlstate {})", code.code()),
        };
        return (kind, why);
    }
    let cause = root_cause(err);
    if err.is_closed() {
        return (
            ErrorKind::Unavailable,
            "the connection was closed".to_owned(),
        );
    }
    if cause.contains("timed out") || cause.contains("timeout") {
        return (ErrorKind::Timeout, format!("timed out: {cause}"));
    }
    (
        ErrorKind::Unavailable,
        format!("cannot reach the server: {cause}"),
    )
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(e) = next {
        text = format!("{text}: {e}");
        next = e.source();
    }
    text.lines().next().unwrap_or("").to_lowercase()
}
