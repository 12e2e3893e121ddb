//! A small client of the emulator's edge routes, behind the `get`, `set`, `list` and `delete`
//! commands of the binary. Values stream in both directions.

use blobjobs_store_api::{ByteStream, Error, ErrorKind, Etag, Metadata, Result};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::app::METADATA_HEADER;
use crate::body::{ResponseBody, empty, request_stream, streaming};
use crate::route::encode_query_value;

/// One page of a key listing, as the server sends it.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct ListResponse {
    /// Blobs on the page.
    #[serde(default)]
    pub blobs: Vec<ListedBlob>,
    /// Directories on the page (directories mode).
    #[serde(default)]
    pub directories: Vec<String>,
    /// The cursor of the next page, absent on the last.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

/// One blob of a listing.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ListedBlob {
    /// The key.
    pub key: String,
    /// The current ETag.
    pub etag: String,
    /// The size in bytes.
    pub size: u64,
    /// RFC 3339 time of the last write.
    pub last_modified: String,
}

/// A blob read with [`Client::get`]: its ETag, metadata and a stream of its bytes.
pub struct Download {
    /// The ETag.
    pub etag: Option<Etag>,
    /// The metadata.
    pub metadata: Metadata,
    /// The value, in chunks.
    pub body: ByteStream,
}

/// A client for one emulator, one token and one site.
#[derive(Debug, Clone)]
pub struct Client {
    base_url: String,
    token: String,
    site: String,
    http: HyperClient<HttpConnector, ResponseBody>,
}

impl Client {
    /// A client of the server at `base_url` (such as `http://127.0.0.1:4733`).
    pub fn new(base_url: &str, token: &str, site: &str) -> Self {
        Client {
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
            site: site.to_owned(),
            http: HyperClient::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Reads `key` of the raw store `store`; `None` if it does not exist.
    pub async fn get(&self, store: &str, key: &str) -> Result<Option<Download>> {
        let response = self
            .send(Method::GET, &self.key_path(store, key), empty(), None)
            .await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            _ => return Err(status_error(response).await),
        }
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(Etag::new);
        let metadata = match response.headers().get(METADATA_HEADER) {
            Some(v) => Metadata::from_header(v.to_str().unwrap_or_default())?,
            None => Metadata::new(),
        };
        Ok(Some(Download {
            etag,
            metadata,
            body: request_stream(response.into_body()),
        }))
    }

    /// Writes `value` under `key` of the raw store `store`; returns the new ETag.
    pub async fn set(
        &self,
        store: &str,
        key: &str,
        value: ByteStream,
        metadata: Option<&Metadata>,
    ) -> Result<Etag> {
        let meta = match metadata {
            Some(m) => Some(
                HeaderValue::from_str(&m.to_header())
                    .map_err(|_| Error::invalid("metadata does not fit in a header"))?,
            ),
            None => None,
        };
        let response = self
            .send(
                Method::PUT,
                &self.key_path(store, key),
                streaming(value),
                meta,
            )
            .await?;
        if response.status() != StatusCode::OK {
            return Err(status_error(response).await);
        }
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Ok(Etag::new(etag))
    }

    /// Deletes `key` of the raw store `store` (a missing key is not an error).
    pub async fn delete(&self, store: &str, key: &str) -> Result<()> {
        let response = self
            .send(Method::DELETE, &self.key_path(store, key), empty(), None)
            .await?;
        match response.status() {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(status_error(response).await),
        }
    }

    /// One page of the listing of the raw store `store`.
    pub async fn list_page(
        &self,
        store: &str,
        prefix: &str,
        directories: bool,
        cursor: Option<&str>,
    ) -> Result<ListResponse> {
        let mut query = Vec::new();
        if !prefix.is_empty() {
            query.push(format!("prefix={}", encode_query_value(prefix)));
        }
        if directories {
            query.push("directories=true".to_owned());
        }
        if let Some(cursor) = cursor {
            query.push(format!("cursor={}", encode_query_value(cursor)));
        }
        let mut path = format!(
            "/{}/{}",
            encode_query_value(&self.site),
            encode_query_value(store)
        );
        if !query.is_empty() {
            path = format!("{path}?{}", query.join("&"));
        }
        let response = self.send(Method::GET, &path, empty(), None).await?;
        if response.status() != StatusCode::OK {
            return Err(status_error(response).await);
        }
        let body = collect(response).await?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::new(ErrorKind::Protocol, format!("bad list response: {e}")))
    }

    /// The whole listing of the raw store `store`, following cursors.
    pub async fn list_all(
        &self,
        store: &str,
        prefix: &str,
        directories: bool,
    ) -> Result<ListResponse> {
        let mut all = ListResponse::default();
        let mut cursor = None;
        loop {
            let page = self
                .list_page(store, prefix, directories, cursor.as_deref())
                .await?;
            all.blobs.extend(page.blobs);
            all.directories.extend(page.directories);
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok(all);
            }
        }
    }

    fn key_path(&self, store: &str, key: &str) -> String {
        let key: Vec<String> = key.split('/').map(encode_query_value).collect();
        format!(
            "/{}/{}/{}",
            encode_query_value(&self.site),
            encode_query_value(store),
            key.join("/")
        )
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: ResponseBody,
        metadata: Option<HeaderValue>,
    ) -> Result<Response<Incoming>> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base_url))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .body(body)
            .map_err(|e| Error::invalid(format!("cannot build the request: {e}")))?;
        if let Some(metadata) = metadata {
            request.headers_mut().insert(METADATA_HEADER, metadata);
        }
        self.http.request(request).await.map_err(|e| {
            Error::new(
                ErrorKind::Unavailable,
                format!("request to {} failed: {e}", self.base_url),
            )
        })
    }
}

async fn collect(response: Response<Incoming>) -> Result<Bytes> {
    Ok(response
        .into_body()
        .collect()
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("reading the response: {e}")))?
        .to_bytes())
}

/// An error for an unexpected status, carrying the server's text.
async fn status_error(response: Response<Incoming>) -> Error {
    let status = response.status();
    let kind = match status {
        StatusCode::BAD_REQUEST => ErrorKind::InvalidInput,
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ErrorKind::Unauthorized,
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        StatusCode::PRECONDITION_FAILED => ErrorKind::PreconditionFailed,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorKind::TooLarge,
        s if s.is_server_error() => ErrorKind::Unavailable,
        _ => ErrorKind::Protocol,
    };
    let text = collect(response).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    Error::new(kind, format!("server answered {status}: {}", text.trim()))
}
