//! The one public error type of the project's storage layers, with a stable `kind()`.

use std::fmt;

/// What went wrong, as a stable category that callers can match on.
///
/// Tests and callers should branch on the kind, never on the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller passed a key, store name, metadata, cursor or value that is not allowed.
    InvalidInput,
    /// The named job (or other addressed item) does not exist.
    NotFound,
    /// A conditional write found a different state than it required.
    PreconditionFailed,
    /// A compare-and-swap loop gave up after its bounded number of retries.
    Conflict,
    /// A job state change that the lifecycle does not allow (for example succeeded to running).
    IllegalTransition,
    /// A job could not be claimed because another worker holds a live lease on it.
    LeaseHeld,
    /// The credentials were missing or rejected.
    Unauthorized,
    /// A value is larger than the configured maximum.
    TooLarge,
    /// Stored data could not be decoded (a damaged file, a job blob that is not a job).
    Corrupt,
    /// The remote side answered something the protocol does not allow.
    Protocol,
    /// The operation did not finish in time; it may or may not have taken effect.
    Timeout,
    /// The service is temporarily unavailable (5xx, 429, connection refused or reset).
    Unavailable,
    /// A local I/O failure.
    Io,
    /// The storage has no room left (a full disk or an exhausted quota): nothing was
    /// written, and what was stored before is intact.
    StorageFull,
}

impl ErrorKind {
    /// Every kind, so that code mapping names or statuses can be checked to cover them all.
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::PreconditionFailed,
        ErrorKind::Conflict,
        ErrorKind::IllegalTransition,
        ErrorKind::LeaseHeld,
        ErrorKind::Unauthorized,
        ErrorKind::TooLarge,
        ErrorKind::Corrupt,
        ErrorKind::Protocol,
        ErrorKind::Timeout,
        ErrorKind::Unavailable,
        ErrorKind::Io,
        ErrorKind::StorageFull,
    ];

    /// The kind whose [`ErrorKind::as_str`] is `name`.
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// A short lowercase name for the kind, stable across releases (used in reports and JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::NotFound => "not_found",
            ErrorKind::PreconditionFailed => "precondition_failed",
            ErrorKind::Conflict => "conflict",
            ErrorKind::IllegalTransition => "illegal_transition",
            ErrorKind::LeaseHeld => "lease_held",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Io => "io",
            ErrorKind::StorageFull => "storage_full",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned by every `BlobStore` and `JobStore` operation.
///
/// It is opaque on purpose: match on [`Error::kind`], read [`Error::is_retryable`], and show
/// it with `Display`. Backends keep their own detailed error types private and convert them
/// into this one in a single place.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    kind: ErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// Builds an error of `kind` with a lowercase message without a trailing full stop.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// Attaches the underlying cause, kept for `source()` chains and debugging.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Shorthand for an [`ErrorKind::InvalidInput`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message)
    }

    /// Shorthand for an [`ErrorKind::TooLarge`] error: a value passed the limit of `max` bytes.
    pub fn too_large(max: u64) -> Self {
        Error::new(
            ErrorKind::TooLarge,
            format!("value is larger than the maximum of {max} bytes"),
        )
    }

    /// Shorthand for an [`ErrorKind::Io`] error wrapping `err`, with `context` as the message.
    pub fn io(context: impl Into<String>, err: std::io::Error) -> Self {
        let context = context.into();
        Error::new(ErrorKind::Io, format!("{context}: {err}")).with_source(err)
    }

    /// The category of this error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the kind.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether repeating the same operation later may succeed.
    ///
    /// True for timeouts, temporary unavailability and exhausted compare-and-swap loops; false
    /// for everything that repeating cannot change, such as invalid input.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ErrorKind::Timeout
                | ErrorKind::Unavailable
                | ErrorKind::Conflict
                | ErrorKind::LeaseHeld
        )
    }
}

/// The result type of the storage layers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_kinds_are_the_transient_ones() {
        assert!(Error::new(ErrorKind::Timeout, "t").is_retryable());
        assert!(Error::new(ErrorKind::Unavailable, "u").is_retryable());
        assert!(!Error::invalid("bad key").is_retryable());
        assert!(!Error::new(ErrorKind::IllegalTransition, "x").is_retryable());
    }

    #[test]
    fn every_kind_has_a_distinct_name_that_parses_back() {
        let names: std::collections::HashSet<&str> =
            ErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), ErrorKind::ALL.len());
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(ErrorKind::from_name("nope"), None);
    }

    #[test]
    fn io_error_keeps_its_source() {
        let err = Error::io("reading blob", std::io::Error::other("disk gone"));
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(std::error::Error::source(&err).is_some());
        assert!(err.to_string().contains("disk gone"));
    }
}
