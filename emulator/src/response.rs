//! Building responses: a blob's headers on reads (with 304 revalidation), JSON bodies, and
//! bare statuses. Header names and encodings come from the protocol crate.

use blobjobs_protocol::headers::{
    AMZ_METADATA, NETLIFY_METADATA, insert_etag, insert_last_modified, metadata_value, none_match,
};
use blobjobs_store_api::BlobInfo;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::body::{ResponseBody, empty, full};

/// The answer to a GET or HEAD of a blob: 304 when the request's revalidation header names
/// its ETag ([`none_match`]), else 200 with `body` and the blob's length and type.
pub(crate) fn read_response(
    headers: &HeaderMap,
    info: &BlobInfo,
    body: ResponseBody,
) -> Response<ResponseBody> {
    if none_match(headers, &info.etag) {
        return info_response(StatusCode::NOT_MODIFIED, info, empty());
    }
    let mut response = info_response(StatusCode::OK, info, body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(info.size));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    response
}

/// A response carrying the ETag, metadata (in both metadata headers) and modification time
/// of a blob.
fn info_response(
    status: StatusCode,
    info: &BlobInfo,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    insert_etag(headers, &info.etag);
    if let Ok(value) = metadata_value(&info.metadata) {
        headers.insert(AMZ_METADATA, value.clone());
        headers.insert(NETLIFY_METADATA, value);
    }
    insert_last_modified(headers, info.last_modified);
    response
}

/// A response with `status` and no body.
pub(crate) fn status_only(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

/// A JSON response with `status`.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
    // Serializing these plain structs cannot fail; an empty object is the safe fallback.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
