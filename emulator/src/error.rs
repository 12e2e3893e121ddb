//! Why a request is refused, and the short plain-text response that says so. Storage error
//! kinds become statuses through the protocol's one mapping, [`status_for_kind`].

use blobjobs_protocol::headers::insert_nf_error;
use blobjobs_protocol::status::status_for_kind;
use blobjobs_store_api::Error;
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
        }
    }

    /// The plain-text message sent in the body and in `x-nf-error`.
    pub fn message(&self) -> String {
        match self {
            Rejection::Store(err) => err.to_string(),
            Rejection::MissingCredentials => {
                "missing credentials: send authorization: Bearer <token>".to_owned()
            }
            Rejection::WrongCredentials => "invalid token or signature".to_owned(),
            Rejection::MethodNotAllowed { allow } => {
                format!("method not allowed; allowed: {allow}")
            }
            Rejection::NoRoute => "no such route".to_owned(),
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
            Rejection::MissingCredentials.status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(Rejection::WrongCredentials.status(), StatusCode::FORBIDDEN);
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
