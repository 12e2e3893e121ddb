//! Why a request failed, and the one mapping from storage error kinds to HTTP statuses.

use blobjobs_store_api::{Error, ErrorKind};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{ResponseBody, full};

/// The HTTP status of a storage error of `kind`: the only place where kinds become statuses.
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorKind::Conflict | ErrorKind::IllegalTransition | ErrorKind::LeaseHeld => {
            StatusCode::CONFLICT
        }
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Timeout | ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Corrupt | ErrorKind::Protocol | ErrorKind::Io => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A request that cannot be served, turned into a short plain-text response.
#[derive(Debug)]
pub enum Failure {
    /// The storage layer or input checking refused; the status comes from [`status_for`].
    Store(Error),
    /// No credentials at all (401).
    MissingCredentials,
    /// Wrong token, or a bad or expired signature (403).
    WrongCredentials,
    /// The method is not served on this resource (405, with `allow`).
    MethodNotAllowed {
        /// The methods that are served there.
        allow: &'static str,
    },
    /// No such route (404).
    NoRoute,
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        Failure::Store(err)
    }
}

impl Failure {
    /// The status code of this failure.
    pub fn status(&self) -> StatusCode {
        match self {
            Failure::Store(err) => status_for(err.kind()),
            Failure::MissingCredentials => StatusCode::UNAUTHORIZED,
            Failure::WrongCredentials => StatusCode::FORBIDDEN,
            Failure::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Failure::NoRoute => StatusCode::NOT_FOUND,
        }
    }

    /// The plain-text message sent in the body and in `x-nf-error`.
    pub fn message(&self) -> String {
        match self {
            Failure::Store(err) => err.to_string(),
            Failure::MissingCredentials => {
                "missing credentials: send authorization: Bearer <token>".to_owned()
            }
            Failure::WrongCredentials => "invalid token or signature".to_owned(),
            Failure::MethodNotAllowed { allow } => format!("method not allowed; allowed: {allow}"),
            Failure::NoRoute => "no such route".to_owned(),
        }
    }

    /// The response: status, `text/plain` body with the message and a newline, and the
    /// message again in `x-nf-error`, which the official client puts in its errors.
    pub fn into_response(self) -> Response<ResponseBody> {
        let status = self.status();
        let message = self.message();
        let mut response = Response::new(full(Bytes::from(format!("{message}\n"))));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if let Ok(value) = HeaderValue::from_str(&header_safe(&message)) {
            headers.insert("x-nf-error", value);
        }
        if let Failure::MethodNotAllowed { allow } = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// The message with anything that cannot travel in a header replaced by `?`.
fn header_safe(message: &str) -> String {
    message
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(200)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_client_visible_statuses() {
        assert_eq!(status_for(ErrorKind::InvalidInput), StatusCode::BAD_REQUEST);
        assert_eq!(
            status_for(ErrorKind::TooLarge),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            status_for(ErrorKind::PreconditionFailed),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(status_for(ErrorKind::Io), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            Failure::MissingCredentials.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(Failure::WrongCredentials.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn error_headers_are_always_valid() {
        let r = Failure::Store(Error::invalid("bad key \"ü\"\n")).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()["x-nf-error"], "bad key \"?\"?");
    }
}
