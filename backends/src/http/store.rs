//! The `BlobStore` operations of `HttpStore`, each as calls of the protocol: how a read, a
//! write, a delete and a listing page are asked for, and what their answers mean.

use ::http::header::{self, HeaderValue};
use ::http::{HeaderMap, Method, StatusCode};
use async_trait::async_trait;
use blobjobs_protocol::bodies::ListBody;
use blobjobs_protocol::headers::{self as wire, AMZ_METADATA, NETLIFY_METADATA};
use blobjobs_protocol::path::Query;
use blobjobs_store_api::stream::{Head, read_head};
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, Condition, Error, ErrorKind, ListOptions, ListPage,
    Result, SetOptions, SetOutcome, validate_key, validate_metadata,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::BodyDataStream;

use super::HttpStore;
use super::call::{Call, CallBody, Reply, ReplyBody, Route};
use super::pager::{Cutter, Step};
use super::retry::Budget;

/// How much of a streamed write is collected before deciding to stream it: a shorter value
/// is sent whole, so it can be resent and checked like any other write.
const STREAM_THRESHOLD: usize = 1 << 20;

/// The `BlobInfo` of a read's headers; `size` when the length is known.
fn info_from(headers: &HeaderMap, size: Option<u64>) -> Result<BlobInfo> {
    Ok(BlobInfo {
        etag: wire::read_etag(headers),
        metadata: wire::response_metadata(headers)?,
        size: size.unwrap_or(0),
        last_modified: wire::read_last_modified(headers),
    })
}

impl HttpStore {
    fn read_call(&self, key: &str, stream: bool) -> Call {
        Call {
            stream_response: stream,
            ..Call::simple(
                self.what(&Method::GET, Some(key)),
                Method::GET,
                self.value_route(key, HeaderMap::new()),
            )
        }
    }

    /// Reads `key` whole within `budget`.
    pub(super) async fn get_within(&self, key: &str, budget: &mut Budget) -> Result<Option<Blob>> {
        let call = self.read_call(key, false);
        let reply = self.send_idempotent(&call, budget).await?;
        match reply.status {
            StatusCode::OK => {
                let info = info_from(&reply.headers, Some(reply.bytes().len() as u64))?;
                let ReplyBody::Full(value) = reply.body else {
                    return Err(Error::new(ErrorKind::Protocol, "unexpected streamed body"));
                };
                Ok(Some(Blob { value, info }))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(HttpStore::reply_error(&call.what, &reply)),
        }
    }

    /// Reads the head of `key` within `budget`.
    pub(super) async fn head_within(
        &self,
        key: &str,
        budget: &mut Budget,
    ) -> Result<Option<BlobInfo>> {
        let call = Call::simple(
            self.what(&Method::HEAD, Some(key)),
            Method::HEAD,
            Route::Direct(self.url(Some(key), Query::default())),
        );
        let reply = self.send_idempotent(&call, budget).await?;
        match reply.status {
            StatusCode::OK | StatusCode::NOT_MODIFIED => Ok(Some(info_from(
                &reply.headers,
                wire::read_length(&reply.headers),
            )?)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(HttpStore::reply_error(&call.what, &reply)),
        }
    }

    /// The request of a write: headers for the data request and for step 1.
    pub(super) fn write_call(
        &self,
        key: &str,
        options: &SetOptions,
        body: CallBody,
    ) -> Result<Call> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static(wire::WRITE_CACHE_CONTROL),
        );
        let mut step1 = HeaderMap::new();
        if !options.metadata.is_empty() {
            let value = wire::metadata_value(&options.metadata)?;
            headers.insert(AMZ_METADATA, value.clone());
            step1.insert(NETLIFY_METADATA, value);
        }
        wire::insert_condition(&mut headers, &options.condition)?;
        Ok(Call {
            headers,
            body,
            conditional: options.condition != Condition::Always,
            ..Call::simple(
                self.what(&Method::PUT, Some(key)),
                Method::PUT,
                self.value_route(key, step1),
            )
        })
    }

    /// What the answer to a write means.
    pub(super) fn write_outcome(
        call: &Call,
        options: &SetOptions,
        reply: &Reply,
    ) -> Result<SetOutcome> {
        let status = reply.status;
        if status.is_success() {
            return Ok(SetOutcome::Written {
                etag: wire::read_etag(&reply.headers),
            });
        }
        if status == StatusCode::PRECONDITION_FAILED && options.condition != Condition::Always {
            return Ok(SetOutcome::ConditionFailed);
        }
        Err(HttpStore::reply_error(&call.what, reply))
    }

    /// Fetches one server page of the listing; `None` if the store does not exist.
    async fn list_page(
        &self,
        options: &ListOptions,
        cursor: Option<&str>,
    ) -> Result<Option<ListPage>> {
        let query = Query {
            prefix: options.prefix.clone(),
            directories: options.directories,
            cursor: cursor.map(str::to_owned),
            ..Query::default()
        };
        let call = Call::simple(
            self.what(&Method::GET, None),
            Method::GET,
            Route::Direct(self.url(None, query)),
        );
        let mut budget = self.budget();
        let reply = self.send_idempotent(&call, &mut budget).await?;
        match reply.status {
            StatusCode::OK => ListBody::parse(reply.bytes()).map(|body| Some(body.into_page())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(HttpStore::reply_error(&call.what, &reply)),
        }
    }
}

#[async_trait]
impl BlobStore for HttpStore {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        validate_key(key)?;
        let mut budget = self.budget();
        self.get_within(key, &mut budget).await
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        validate_key(key)?;
        let mut budget = self.budget();
        self.head_within(key, &mut budget).await
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        validate_key(key)?;
        validate_metadata(&options.metadata)?;
        self.set_value(key, value, options).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let call = Call::simple(
            self.what(&Method::DELETE, Some(key)),
            Method::DELETE,
            Route::Direct(self.url(Some(key), Query::default())),
        );
        let mut budget = self.budget();
        let reply = self.send_idempotent(&call, &mut budget).await?;
        match reply.status {
            StatusCode::OK | StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(HttpStore::reply_error(&call.what, &reply)),
        }
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let (mut cutter, mut cursor) = Cutter::new(&options)?;
        loop {
            let Some(server) = self.list_page(&options, cursor.as_deref()).await? else {
                return Ok(cutter.finish());
            };
            match cutter.feed(server) {
                Step::Done => return Ok(cutter.finish()),
                Step::Fetch(next) => cursor = Some(next),
            }
        }
    }

    async fn get_stream(&self, key: &str) -> Result<Option<(BlobInfo, ByteStream)>> {
        validate_key(key)?;
        let call = self.read_call(key, true);
        let mut budget = self.budget();
        let reply = self.send_idempotent(&call, &mut budget).await?;
        match reply.status {
            StatusCode::OK => {
                let info = info_from(&reply.headers, wire::read_length(&reply.headers))?;
                let stream: ByteStream = match reply.body {
                    ReplyBody::Stream(body) => {
                        let what = call.what.clone();
                        Box::pin(BodyDataStream::new(body).map(move |chunk| {
                            chunk.map_err(|e| {
                                Error::new(
                                    ErrorKind::Unavailable,
                                    format!("{what}: connection lost while reading: {e}"),
                                )
                            })
                        }))
                    }
                    ReplyBody::Full(bytes) => blobjobs_store_api::once_stream(bytes),
                };
                Ok(Some((info, stream)))
            }
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(HttpStore::reply_error(&call.what, &reply)),
        }
    }

    async fn set_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        validate_key(key)?;
        validate_metadata(&options.metadata)?;
        // Collect a short value whole, so it gets the retries and checks of `set`.
        match read_head(body, STREAM_THRESHOLD, max_size).await? {
            Head::Complete(value) => self.set(key, value, options).await,
            Head::Partial { chunks, rest, .. } => {
                self.set_streamed(key, chunks, rest, max_size, options)
                    .await
            }
        }
    }
}
