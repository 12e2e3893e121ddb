//! The error of an unexpected HTTP status: its kind from the protocol's one mapping
//! ([`kind_for_status`]), the status and the start of the body as its source.

use std::fmt;

pub use blobjobs_protocol::status::kind_for_status;
use blobjobs_store_api::Error;
use http::StatusCode;

/// The most characters of a response body kept in an error.
pub const BODY_EXCERPT_CHARS: usize = 200;

/// An unexpected HTTP status, kept as the `source` of the [`Error`] it caused so callers can
/// reach the status and the start of the body with `downcast_ref`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusError {
    /// The HTTP status code.
    pub status: u16,
    /// What the request was, such as `PUT site:jobs/jobs/abc` (never a URL query, which may
    /// hold a signature).
    pub request: String,
    /// The first [`BODY_EXCERPT_CHARS`] characters of the body, lossily decoded as UTF-8,
    /// followed by `x-nf-error` when the server sent one.
    pub body_start: String,
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} answered {}", self.request, self.status)?;
        if !self.body_start.is_empty() {
            write!(f, ": {}", self.body_start)?;
        }
        Ok(())
    }
}

impl std::error::Error for StatusError {}

/// The start of a body for an error message: at most [`BODY_EXCERPT_CHARS`] characters.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text.chars().take(BODY_EXCERPT_CHARS).collect();
    // Keep messages on one line.
    out = out.replace(['\n', '\r'], " ");
    out.trim().to_owned()
}

/// The error for a response that the operation does not accept.
pub(crate) fn status_error(
    request: &str,
    status: StatusCode,
    body: &[u8],
    nf_error: Option<&str>,
) -> Error {
    let mut body_start = excerpt(body);
    if let Some(nf) = nf_error {
        let nf: String = nf.chars().take(BODY_EXCERPT_CHARS).collect();
        if body_start.is_empty() {
            body_start = nf;
        } else {
            body_start = format!("{body_start} ({nf})");
        }
    }
    let source = StatusError {
        status: status.as_u16(),
        request: request.to_owned(),
        body_start,
    };
    Error::new(kind_for_status(status), source.to_string()).with_source(source)
}

#[cfg(test)]
mod tests {
    use super::*;
    use blobjobs_store_api::ErrorKind;

    #[test]
    fn errors_carry_the_status_and_the_start_of_the_body() {
        let body = "x".repeat(500);
        let err = status_error(
            "GET site:s/k",
            StatusCode::IM_A_TEAPOT,
            body.as_bytes(),
            None,
        );
        assert_eq!(err.kind(), ErrorKind::Protocol);
        let source = std::error::Error::source(&err)
            .and_then(|s| s.downcast_ref::<StatusError>())
            .unwrap();
        assert_eq!(source.status, 418);
        assert_eq!(source.body_start.chars().count(), BODY_EXCERPT_CHARS);
        assert!(err.to_string().len() < 300);
    }
}
