//! The protocol's operations, one handler each: read, read the head, write, list a store,
//! list a site's stores, delete a store, issue a signed URL, and the emulator's own routes.

use blobjobs_protocol::Query;
use blobjobs_protocol::bodies::{
    DeleteStoreBody, ListBody, SignedUrl, StoresBody, decode_store_cursor, encode_store_cursor,
};
use blobjobs_protocol::headers::{insert_etag, read_condition, read_length, request_metadata};
use blobjobs_store_api::{BlobStore, Error, ErrorKind, ListOptions, SetOptions, SetOutcome};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Body;

use crate::app::{App, Outcome, catalog_name};
use crate::body::{empty, full, request_stream, streaming};
use crate::error::Rejection;
use crate::response::{json, read_response, status_only};
use crate::route::HEALTH_PATH;

impl App {
    /// API step 1 of get and set: a URL back to this server, in edge form, that authorizes
    /// this method on this key until it expires.
    pub(crate) fn signed_url<B>(&self, req: &Request<B>, edge_path: &str) -> Outcome {
        if req.method() == Method::PUT {
            // The metadata travels again on the signed request; reject bad metadata early.
            request_metadata(req.headers())?;
        }
        let host = self.host(req.headers())?;
        let auth = &self.inner.auth;
        let expires = auth.now() + self.inner.signed_url_ttl_secs;
        let query = Query {
            expires: Some(expires.to_string()),
            signature: Some(auth.sign(req.method().as_str(), edge_path, expires)),
            ..Query::default()
        };
        let url = format!("http://{host}{edge_path}{}", query.encode());
        Ok(json(StatusCode::OK, &SignedUrl { url }))
    }

    /// Writes the request's body under `key`, streamed, with its metadata and condition.
    pub(crate) async fn put<B>(&self, store: &dyn BlobStore, key: &str, req: Request<B>) -> Outcome
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let headers = req.headers();
        let metadata = request_metadata(headers)?.unwrap_or_default();
        let condition = read_condition(headers)?;
        let max = self.inner.max_blob_size;
        if let Some(length) = read_length(headers)
            && length > max
        {
            // Refuse before reading a byte of the body.
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!("value of {length} bytes is larger than the maximum of {max} bytes"),
            )
            .into());
        }
        let body = request_stream(req.into_body());
        let options = SetOptions::new().metadata(metadata).condition(condition);
        match store.set_stream(key, body, Some(max), options).await? {
            SetOutcome::Written { etag } => {
                let mut response = status_only(StatusCode::OK);
                insert_etag(response.headers_mut(), &etag);
                Ok(response)
            }
            SetOutcome::ConditionFailed => Err(Error::new(
                ErrorKind::PreconditionFailed,
                "the write condition does not hold",
            )
            .into()),
        }
    }

    /// One page of a store's listing.
    pub(crate) async fn list(&self, site: &str, store: &str, query: Query) -> Outcome {
        let store = self.store(site, store)?;
        let options = ListOptions::new()
            .prefix(query.prefix)
            .directories(query.directories)
            .cursor(query.cursor)
            .page_size(self.inner.list_page_size);
        let page = store.list(options).await?;
        Ok(json(StatusCode::OK, &ListBody::from(page)))
    }

    /// One page of the stores of `site` that start with the prefix and hold a blob.
    pub(crate) async fn list_stores(&self, site: &str, query: &Query) -> Outcome {
        let site_prefix = format!("{site}/");
        let after = query
            .cursor
            .as_deref()
            .map(decode_store_cursor)
            .transpose()?;
        let names = self
            .inner
            .catalog
            .list_stores(&format!("{site_prefix}{}", query.prefix))
            .await?;
        let mut stores: Vec<String> = names
            .into_iter()
            .filter_map(|n| n.strip_prefix(&site_prefix).map(str::to_owned))
            .filter(|n| after.as_ref().is_none_or(|a| n > a))
            .collect();
        stores.sort();
        let next_cursor = if stores.len() > self.inner.list_page_size {
            stores.truncate(self.inner.list_page_size);
            stores.last().map(|last| encode_store_cursor(last))
        } else {
            None
        };
        Ok(json(
            StatusCode::OK,
            &StoresBody {
                stores,
                next_cursor,
            },
        ))
    }

    /// Deletes every blob of a store in one request.
    pub(crate) async fn delete_store(&self, site: &str, store: &str) -> Outcome {
        let deleted = self
            .inner
            .catalog
            .delete_store(&catalog_name(site, store))
            .await?;
        Ok(json(
            StatusCode::OK,
            &DeleteStoreBody {
                blobs_deleted: deleted,
                has_more: false,
            },
        ))
    }
}

/// The emulator's own routes under the reserved prefix: only the health check.
pub(crate) fn reserved_route(method: &Method, path: &str) -> Outcome {
    if path != HEALTH_PATH {
        return Err(Rejection::NoRoute);
    }
    match *method {
        Method::GET | Method::HEAD => {
            let mut response = Response::new(full("ok\n"));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            Ok(response)
        }
        _ => Err(Rejection::MethodNotAllowed { allow: "GET, HEAD" }),
    }
}

/// Reads a blob, streamed.
pub(crate) async fn get(store: &dyn BlobStore, key: &str, headers: &HeaderMap) -> Outcome {
    let Some((info, stream)) = store.get_stream(key).await? else {
        return Err(Error::new(ErrorKind::NotFound, "no such key").into());
    };
    Ok(read_response(headers, &info, streaming(stream)))
}

/// Reads the head of a blob.
pub(crate) async fn head(store: &dyn BlobStore, key: &str, headers: &HeaderMap) -> Outcome {
    let Some(info) = store.get_metadata(key).await? else {
        return Err(Error::new(ErrorKind::NotFound, "no such key").into());
    };
    Ok(read_response(headers, &info, empty()))
}
