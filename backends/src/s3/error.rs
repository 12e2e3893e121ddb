//! The one place where `object_store` errors become the project's [`Error`], with messages
//! that name the endpoint and bucket but never a credential or a request signature.

use blobjobs_store_api::{Error, ErrorKind};
use object_store::client::{HttpError, HttpErrorKind};

/// Where the failed operation went, for messages: `host:port/bucket` (no credentials: an
/// `s3://` spec cannot hold any, and keys come from the environment).
pub(crate) fn error(op: &str, place: &str, err: object_store::Error) -> Error {
    let (kind, why) = classify(&err);
    Error::new(kind, format!("s3 {op} at {place}: {why}")).with_source(err)
}

/// Whether a failed conditional write may have been applied anyway: the request may have
/// reached the engine (a timeout, a connection lost after sending, a 5xx answer). A refused
/// connection or a definite answer never applied it.
pub(crate) fn may_have_applied(err: &object_store::Error) -> bool {
    match err {
        object_store::Error::Generic { source, .. } => match http_kind(source.as_ref()) {
            Some(HttpErrorKind::Connect) => false,
            Some(_) => true,
            None => status(source.as_ref()).is_none_or(|s| s >= 500),
        },
        _ => false,
    }
}

fn classify(err: &object_store::Error) -> (ErrorKind, String) {
    use object_store::Error as E;
    match err {
        E::PermissionDenied { .. } => (
            ErrorKind::Unauthorized,
            "permission denied: the engine refused the credentials (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".to_owned(),
        ),
        E::Unauthenticated { .. } => (
            ErrorKind::Unauthorized,
            "the engine wants valid credentials (check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)".to_owned(),
        ),
        E::InvalidPath { .. } => (ErrorKind::InvalidInput, "not a valid object path".to_owned()),
        E::NotSupported { .. } | E::NotImplemented { .. } => {
            (ErrorKind::Protocol, "the engine does not support this operation".to_owned())
        }
        E::Generic { source, .. } => {
            let cause = root_cause(source.as_ref());
            match http_kind(source.as_ref()) {
                Some(HttpErrorKind::Timeout) => (
                    ErrorKind::Timeout,
                    format!("timed out, the operation may or may not have taken effect ({cause})"),
                ),
                Some(HttpErrorKind::Connect) => {
                    (ErrorKind::Unavailable, format!("cannot connect: {cause}"))
                }
                Some(HttpErrorKind::Decode) => {
                    (ErrorKind::Protocol, format!("unreadable answer: {cause}"))
                }
                Some(_) => (ErrorKind::Unavailable, format!("connection failed: {cause}")),
                None => match status(source.as_ref()) {
                    Some(s) if s == 429 || s >= 500 => {
                        (ErrorKind::Unavailable, format!("the engine answered {s}"))
                    }
                    Some(s) => (ErrorKind::Protocol, format!("the engine refused the request with {s}")),
                    None => (ErrorKind::Unavailable, cause),
                },
            }
        }
        other => (ErrorKind::Protocol, format!("unexpected answer: {}", short(other))),
    }
}

/// The transport failure inside `err`'s source chain, if any.
fn http_kind(err: &(dyn std::error::Error + 'static)) -> Option<HttpErrorKind> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return Some(http.kind());
        }
        next = e.source();
    }
    None
}

/// The HTTP status named in `err`'s chain. `object_store` keeps the status of a failed
/// request in a private type whose message reads "…status code: 503 Service Unavailable…",
/// so the status is read from that text.
fn status(err: &(dyn std::error::Error + 'static)) -> Option<u16> {
    const MARK: &str = "status code: ";
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if let Some(at) = text.find(MARK) {
            let digits: String = text[at + MARK.len()..].chars().take(3).collect();
            if let Ok(code) = digits.parse() {
                return Some(code);
            }
        }
        next = e.source();
    }
    None
}

/// The innermost message of `err`'s chain, such as "Connection refused (os error 111)":
/// the part that says what happened, without the request's URL or the engine's body.
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(next) = last.source() {
        last = next;
    }
    short(last)
}

fn short(err: &dyn std::fmt::Display) -> String {
    let text = err.to_string();
    let first = text.lines().next().unwrap_or("").trim();
    first.chars().take(200).collect::<String>().to_lowercase()
}
