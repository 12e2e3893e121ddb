//! Why a request is refused, and the short plain-text response that says so. Storage error
//! kinds become statuses through the protocol's one mapping, [`status_for_kind`].
//!
//! A failure of the server's own storage (a 5xx) is told to the client by its kind and its
//! cause alone: the storage's own message names files under the data directory, which is the
//! server's business, so it goes to the log ([`Rejection::log_message`]) and not on the wire.

use std::time::Duration;

use blobjobs_protocol::headers::insert_nf_error;
use blobjobs_protocol::status::status_for_kind;
use blobjobs_store_api::{Error, ErrorKind};
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{ResponseBody, full};

/// A request that cannot be served, turned into a short plain-text response.
#[derive(Debug)]
pub enum Rejection {
    /// The storage layer or input checking refused; the status comes from
    /// [`status_for_kind`].
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
    /// The request body could not be read to its end: bad chunk framing, or the connection
    /// ended before the body did (400).
    BadBody(String),
    /// No part of the request body arrived for this long (408).
    BodyTimeout(Duration),
}

impl From<Error> for Rejection {
    fn from(err: Error) -> Self {
        Rejection::Store(err)
    }
}

impl Rejection {
    /// The status code of this rejection.
    pub fn status(&self) -> StatusCode {
        match self {
            Rejection::Store(err) => status_for_kind(err.kind()),
            Rejection::MissingCredentials => StatusCode::UNAUTHORIZED,
            Rejection::WrongCredentials => StatusCode::FORBIDDEN,
            Rejection::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Rejection::NoRoute => StatusCode::NOT_FOUND,
            Rejection::BadBody(_) => StatusCode::BAD_REQUEST,
            Rejection::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The plain-text message sent in the body and in `x-nf-error`.
    pub fn message(&self) -> String {
        match self {
            Rejection::Store(err) if status_for_kind(err.kind()).is_server_error() => {
                server_failure(err)
            }
            Rejection::Store(err) => err.to_string(),
            Rejection::MissingCredentials => {
                "missing credentials: send authorization: Bearer <token>".to_owned()
            }
            Rejection::WrongCredentials => "invalid token or signature".to_owned(),
            Rejection::MethodNotAllowed { allow } => {
                format!("method not allowed; allowed: {allow}")
            }
            Rejection::NoRoute => "no such route".to_owned(),
            Rejection::BadBody(why) => {
                format!("the request body is malformed or ended early: {why}")
            }
            Rejection::BodyTimeout(idle) => format!(
                "no part of the request body arrived for {} s",
                idle.as_secs()
            ),
        }
    }

    /// What the server's log says about this rejection: the whole message, paths included.
    pub fn log_message(&self) -> String {
        match self {
            Rejection::Store(err) => err.to_string(),
            other => other.message(),
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
        insert_nf_error(headers, &message);
        if let Rejection::MethodNotAllowed { allow } = self {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// What a client is told of a failure of the server's storage: what kind of failure, and the
/// operating system's reason, without the storage's message (which names paths).
fn server_failure(err: &Error) -> String {
    let what = match err.kind() {
        ErrorKind::StorageFull => "the server's storage is full, so nothing was written",
        ErrorKind::Corrupt => "the stored value is damaged; the server's log names the file",
        _ => "the server's storage failed; the server's log has the details",
    };
    match std::error::Error::source(err) {
        Some(cause) => format!("{what} ({cause})"),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blobjobs_store_api::ErrorKind;

    #[test]
    fn rejections_map_to_client_visible_statuses() {
        let store = |kind| Rejection::Store(Error::new(kind, "x")).status();
        assert_eq!(store(ErrorKind::InvalidInput), StatusCode::BAD_REQUEST);
        assert_eq!(store(ErrorKind::TooLarge), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(
            store(ErrorKind::PreconditionFailed),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(store(ErrorKind::Io), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            store(ErrorKind::StorageFull),
            StatusCode::INSUFFICIENT_STORAGE
        );
        assert_eq!(
            Rejection::BadBody("x".into()).status(),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            Rejection::BodyTimeout(Duration::from_secs(1)).status(),
            StatusCode::REQUEST_TIMEOUT
        );
        assert_eq!(
            Rejection::MissingCredentials.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(Rejection::WrongCredentials.status(), StatusCode::FORBIDDEN);
    }

    /// The storage's messages name files under the data directory; the client gets the kind
    /// and the system's reason, the log gets everything.
    #[test]
    fn server_failures_keep_paths_to_the_log() {
        let full = Error::io(
            "cannot write /srv/blobs/site%2Fa.s/.tmp-l0",
            std::io::Error::from_raw_os_error(28),
        );
        let full = Error::new(ErrorKind::StorageFull, full.to_string())
            .with_source(std::io::Error::from_raw_os_error(28));
        let damaged = Error::new(
            ErrorKind::Corrupt,
            "damaged blob file /srv/blobs/x.b: bad magic",
        );
        for err in [full, damaged] {
            let rejection = Rejection::Store(err);
            assert!(
                !rejection.message().contains("/srv/blobs"),
                "{}",
                rejection.message()
            );
            assert!(rejection.log_message().contains("/srv/blobs"));
            let response = rejection.into_response();
            let header = &response.headers()[blobjobs_protocol::headers::NF_ERROR];
            assert!(!header.to_str().unwrap().contains("/srv/blobs"));
        }
    }

    #[test]
    fn error_headers_are_always_valid() {
        let r = Rejection::Store(Error::invalid("bad key \"ü\"\n")).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            r.headers()[blobjobs_protocol::headers::NF_ERROR],
            "bad key \"?\"?"
        );
    }
}
