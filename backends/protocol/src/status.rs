//! HTTP statuses and error kinds, in both directions: the status a server answers for an
//! [`ErrorKind`], and the kind a client reports for a status. Both tables live here and
//! nowhere else.

use blobjobs_store_api::ErrorKind;
use http::StatusCode;

/// The kind of error a client reports for an unexpected `status`.
///
/// 404 and 412 rarely become errors: operations turn them into "absent" and "condition
/// failed" before asking. 507 (the server's storage is full) is [`ErrorKind::StorageFull`];
/// 429 and every other 5xx are [`ErrorKind::Unavailable`] (worth another try); any other
/// status the protocol does not use is [`ErrorKind::Protocol`].
pub fn kind_for_status(status: StatusCode) -> ErrorKind {
    match status.as_u16() {
        400 => ErrorKind::InvalidInput,
        401 | 403 => ErrorKind::Unauthorized,
        404 => ErrorKind::NotFound,
        408 => ErrorKind::Timeout,
        412 => ErrorKind::PreconditionFailed,
        413 => ErrorKind::TooLarge,
        429 => ErrorKind::Unavailable,
        507 => ErrorKind::StorageFull,
        s if s >= 500 => ErrorKind::Unavailable,
        _ => ErrorKind::Protocol,
    }
}

/// The status a server answers for a failure of `kind`.
///
/// The job-layer kinds (`Conflict`, `IllegalTransition`, `LeaseHeld`) are 409; a server that
/// could not do its work (`Timeout`, `Unavailable`) answers 503, which clients retry; a
/// failure of the server's own storage (`Corrupt`, `Protocol`, `Io`) is 500, and storage with
/// no room left (`StorageFull`) is 507 Insufficient Storage.
pub fn status_for_kind(kind: ErrorKind) -> StatusCode {
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
        ErrorKind::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
        // A kind added to store-api later is a server failure until it gets a row above.
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn kind(status: u16) -> ErrorKind {
        kind_for_status(StatusCode::from_u16(status).unwrap())
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind(400), ErrorKind::InvalidInput);
        assert_eq!(kind(401), ErrorKind::Unauthorized);
        assert_eq!(kind(403), ErrorKind::Unauthorized);
        assert_eq!(kind(404), ErrorKind::NotFound);
        assert_eq!(kind(408), ErrorKind::Timeout);
        assert_eq!(kind(412), ErrorKind::PreconditionFailed);
        assert_eq!(kind(413), ErrorKind::TooLarge);
        assert_eq!(kind(429), ErrorKind::Unavailable);
        assert_eq!(kind(500), ErrorKind::Unavailable);
        assert_eq!(kind(507), ErrorKind::StorageFull);
        assert_eq!(kind(503), ErrorKind::Unavailable);
        assert_eq!(kind(409), ErrorKind::Protocol);
        assert_eq!(kind(302), ErrorKind::Protocol);
    }

    /// Every kind has a status chosen for it, and where the status names the kind alone, a
    /// client reading it back gets the same kind.
    #[test]
    fn every_kind_maps_and_the_pairs_round_trip_where_defined() {
        for kind in ErrorKind::ALL {
            let status = status_for_kind(kind);
            let expected = match kind {
                ErrorKind::InvalidInput => 400,
                ErrorKind::NotFound => 404,
                ErrorKind::PreconditionFailed => 412,
                ErrorKind::Conflict | ErrorKind::IllegalTransition | ErrorKind::LeaseHeld => 409,
                ErrorKind::Unauthorized => 401,
                ErrorKind::TooLarge => 413,
                ErrorKind::Timeout | ErrorKind::Unavailable => 503,
                ErrorKind::Corrupt | ErrorKind::Protocol | ErrorKind::Io => 500,
                ErrorKind::StorageFull => 507,
                other => panic!("{other:?} has no status in this table"),
            };
            assert_eq!(status.as_u16(), expected, "{kind:?}");
            let back = kind_for_status(status);
            match kind {
                // Several kinds share these statuses, so the client cannot tell them apart:
                // 409 is not a status the blob protocol uses, and a 5xx only says "retry".
                ErrorKind::Conflict | ErrorKind::IllegalTransition | ErrorKind::LeaseHeld => {
                    assert_eq!(back, ErrorKind::Protocol, "{kind:?}");
                }
                ErrorKind::Timeout | ErrorKind::Corrupt | ErrorKind::Protocol | ErrorKind::Io => {
                    assert_eq!(back, ErrorKind::Unavailable, "{kind:?}")
                }
                _ => assert_eq!(back, kind, "{kind:?} does not round-trip"),
            }
        }
    }
}
