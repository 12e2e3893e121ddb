//! The checks before a run: can the store be reached, and do the credentials read and write?
//! A dead URL or a wrong token is one clear line within seconds, not a failure of every case
//! after minutes of retries.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use blobjobs_backends::http::RetryPolicy;
use blobjobs_store_api::{BlobStore, Error, ErrorKind, SetOptions, SetOutcome};
use bytes::Bytes;
use tokio::time::Instant;

/// How long the checks may take in all: one request each for a read, a write and a delete.
pub const PREFLIGHT_LIMIT: Duration = Duration::from_secs(3);

/// The retry policy of the store the checks use: one attempt per request, each bounded by
/// the whole check's limit, so an unreachable server fails at once.
pub fn preflight_retry() -> RetryPolicy {
    RetryPolicy::none().request_timeout(PREFLIGHT_LIMIT)
}

/// Why a store cannot be graded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreflightError {
    /// What went wrong.
    pub kind: PreflightFailure,
    /// One line for the user, naming the store and what to check.
    pub line: String,
}

/// The kinds of [`PreflightError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreflightFailure {
    /// Nothing answered, or the connection failed.
    Unreachable,
    /// No answer within [`PREFLIGHT_LIMIT`].
    NoAnswer,
    /// The credentials were refused.
    Credentials,
    /// The store answered, but not as a store must to a plain read, write or delete.
    Refused,
}

impl fmt::Display for PreflightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.line)
    }
}

impl std::error::Error for PreflightError {}

/// Reads a key that does not exist, writes `probe_key`, and deletes it again, through
/// `store`, within `limit` in all. `target` names the store in the error (a URL without its
/// query, a path).
pub async fn preflight(
    store: Arc<dyn BlobStore>,
    target: &str,
    probe_key: &str,
    limit: Duration,
) -> Result<(), PreflightError> {
    let deadline = Instant::now() + limit;
    let step = |what: &'static str| {
        move |r: Result<Result<(), Error>, tokio::time::error::Elapsed>| match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(explain(target, what, &e)),
            Err(_) => Err(PreflightError {
                kind: PreflightFailure::NoAnswer,
                line: format!(
                    "{target} did not answer a {what} within {} s; is it the right URL?",
                    limit.as_secs_f32()
                ),
            }),
        }
    };
    let read = async { store.get(probe_key).await.map(|_| ()) };
    step("read")(tokio::time::timeout_at(deadline, read).await)?;
    let write = async {
        match store
            .set(
                probe_key,
                Bytes::from_static(b"conformance preflight"),
                SetOptions::new(),
            )
            .await?
        {
            SetOutcome::Written { .. } => Ok(()),
            SetOutcome::ConditionFailed => Err(Error::new(
                ErrorKind::Protocol,
                "an unconditional write reported a failed condition",
            )),
        }
    };
    step("write")(tokio::time::timeout_at(deadline, write).await)?;
    let delete = store.delete(probe_key);
    step("delete")(tokio::time::timeout_at(deadline, delete).await)?;
    Ok(())
}

/// One line for a failed step.
fn explain(target: &str, what: &str, e: &Error) -> PreflightError {
    // One attempt was made; the client's note about giving up says nothing here.
    let detail = match e.message().find(" (gave up after ") {
        Some(at) => &e.message()[..at],
        None => e.message(),
    };
    match e.kind() {
        ErrorKind::Unauthorized => PreflightError {
            kind: PreflightFailure::Credentials,
            line: format!(
                "{target} refused the credentials on a first {what} ({detail}); check the token \
                 (--token or NETLIFY_BLOBS_TOKEN) and the site (--site)"
            ),
        },
        ErrorKind::Unavailable | ErrorKind::Timeout
            if detail.contains("cannot connect") || detail.contains("connection failed") =>
        {
            // Transport messages repeat hyper's layers; the last part says what happened.
            let cause = detail.rsplit(": ").next().unwrap_or(detail);
            PreflightError {
                kind: PreflightFailure::Unreachable,
                line: format!("cannot reach {target}: {cause}; is the server running?"),
            }
        }
        ErrorKind::Timeout => PreflightError {
            kind: PreflightFailure::NoAnswer,
            line: format!("{target} did not answer a first {what} in time ({detail})"),
        },
        kind => PreflightError {
            kind: PreflightFailure::Refused,
            line: format!("{target} failed a first {what} ({kind}): {detail}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blobjobs_backends::MemoryStore;

    #[tokio::test]
    async fn a_working_store_passes_and_keeps_nothing() {
        let store = Arc::new(MemoryStore::new());
        preflight(store.clone(), "memory://", "probe", PREFLIGHT_LIMIT)
            .await
            .unwrap();
        assert!(store.get("probe").await.unwrap().is_none());
    }

    #[test]
    fn failures_read_as_one_line_naming_the_target() {
        let refused = Error::new(
            ErrorKind::Unavailable,
            "GET site:s/k: cannot connect: client error (Connect): tcp connect error: Connection refused (os error 111) (gave up after 1 attempts in 0 ms)",
        );
        let e = explain("http://127.0.0.1:9", "read", &refused);
        assert_eq!(e.kind, PreflightFailure::Unreachable);
        assert_eq!(
            e.line,
            "cannot reach http://127.0.0.1:9: Connection refused (os error 111); is the server running?"
        );
        let denied = Error::new(
            ErrorKind::Unauthorized,
            "GET site:s/k answered 403: invalid token",
        );
        let e = explain("http://h", "read", &denied);
        assert_eq!(e.kind, PreflightFailure::Credentials);
        assert!(e.line.starts_with("http://h refused the credentials"));
        for e in [e, explain("x", "write", &Error::invalid("bad"))] {
            assert!(!e.line.contains('\n'));
        }
    }
}
