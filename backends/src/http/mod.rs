//! The Netlify Blobs wire client: `HttpStore`, a `BlobStore` that speaks the protocol of the
//! official `@netlify/blobs` client (11.1.1) to Netlify, to `netlify dev`'s `BlobsServer`
//! or to the project's emulator.
//!
//! # Modes
//!
//! * **Edge mode** (an `edgeURL` is configured): every request goes to
//!   `{edgeURL}[/region:R]/{siteID}/{store}/{key}` with `authorization: Bearer <token>`.
//!   [`Consistency::Strong`] sends everything to `uncachedEdgeURL` instead.
//! * **API mode** (otherwise): reads and writes of values take two steps. The first asks
//!   `{apiURL}/api/v1/blobs/{siteID}/{store}/{key}` with the same method, the bearer token
//!   and `accept: application/json;type=signed-url` for a signed URL (`{"url": …}`); the
//!   second sends the data request to that URL *without* the token. A 403 from the signed
//!   URL fetches a fresh one and tries again, within the retry budget. `HEAD`, `DELETE` and
//!   listing take one step on the API path. A region is a `region=` query parameter.
//!
//! Headers are the official client's: `x-amz-meta-user: b64;…` on data writes and
//! `netlify-blobs-metadata` on the signed-URL request, `if-none-match: *` for
//! [`Condition::IfNew`], `if-match: <etag>` for [`Condition::IfMatch`], and
//! `cache-control: max-age=0, stale-while-revalidate=60` on every write. Responses are read
//! like the official client reads them (`netlify-blobs-metadata` before `x-amz-meta-user`).
//!
//! # Configuration
//!
//! A store is configured by a [`HttpConfig`], built directly (for example
//! [`HttpConfig::edge`] for the emulator) or resolved by [`HttpConfig::resolve`] from
//! [`ClientOptions`] (the official client's `getStore` options) and the
//! `NETLIFY_BLOBS_CONTEXT` environment variable ([`BlobsContext`]: standard base64 of a JSON
//! object with `siteID`, `token`, `edgeURL`, `uncachedEdgeURL`, `apiURL`, `deployID` and
//! `primaryRegion`; an unset, empty or undecodable value is an empty context). The official
//! client's precedence rules apply:
//!
//! 1. For site and legacy stores, options with **both** a site ID and a token make the store
//!    ignore the context completely (URLs included: without an edge or API URL in the
//!    options, requests go to `https://api.netlify.com`).
//! 2. Otherwise, and always for deploy stores, every context field overrides the option of
//!    the same name (`edgeURL`, `uncachedEdgeURL`, `apiURL`, `siteID`, `token`); the deploy
//!    ID of the options wins over the context's.
//! 3. Consistency, region and retries come only from the options, `primaryRegion` only from
//!    the context.
//! 4. With an edge URL the store uses edge mode, otherwise API mode.
//! 5. A site ID and a token are required.
//!
//! Store kinds ([`StoreKind`]) give the raw store name: `site:<name>`, `deploy:<id>` or
//! `deploy:<id>:<name>`, or a legacy name sent as it is. Deploy stores carry a region: the
//! context's `primaryRegion` in edge mode, `auto` in API mode, unless one is given.
//!
//! # Keys on the wire
//!
//! Keys are written into the path like the official client writes them, except that
//! characters which would change the URL's meaning are percent-encoded (see the `encode`
//! module: `%`, `?`, `#`, `\`, space, non-ASCII, and `.`/`..` segments among them). Any
//! valid key therefore round-trips exactly against a server that percent-decodes the path
//! once, which is what the project's emulator does. A server that does not decode (the
//! official `BlobsServer`) stores such keys in their encoded form, exactly as it does for
//! the official client.
//!
//! # Failures and retries
//!
//! Every request is retried under a [`RetryPolicy`] on 429 (waiting for
//! `X-RateLimit-Reset` when given), on 5xx and on connection errors, with a timeout per
//! request and a deadline per operation. Reads, deletes and unconditional writes are
//! idempotent and simply resent.
//!
//! A **conditional write** whose result is unknown (a timeout, a connection lost after the
//! request may have been sent, or a 500, 502 or 504) is never blindly resent, because a
//! resend of a write that did apply would fail its own condition (`IfNew`) or overwrite a
//! newer version. Instead the store reads the key back and decides:
//!
//! * the key still satisfies the condition (absent for `IfNew`, still at the expected ETag
//!   for `IfMatch`; ETags change on every write) → the write did not apply and is resent;
//! * the key holds exactly the bytes and metadata that were sent → the write applied, and
//!   the read ETag is returned;
//! * anything else → another writer got there first: [`SetOutcome::ConditionFailed`];
//! * the read itself fails → [`ErrorKind::Timeout`], meaning "outcome unknown".
//!
//! The content comparison cannot tell this write from an identical one by another writer
//! in the same window; both then report success, which is harmless for identical content.
//!
//! # Errors
//!
//! 401 and 403 are [`ErrorKind::Unauthorized`], 404 means absent, 412 is
//! [`SetOutcome::ConditionFailed`], 413 is [`ErrorKind::TooLarge`], 400 is
//! [`ErrorKind::InvalidInput`]; any other unexpected status becomes an error carrying a
//! [`StatusError`] (status and the start of the body) as its source. The token never
//! appears in a URL, a log line, an error message or a `Debug` output.
//!
//! # HTTPS
//!
//! With the `tls` feature (on by default) the client speaks `http://` and `https://` alike,
//! through rustls with the `ring` provider, HTTP/1.1 only. Server certificates are checked
//! against the webpki root certificates compiled into the binary, so no system certificate
//! store is needed, plus the extra roots of a PEM file named by
//! [`ClientOptions::extra_root_pem`] / [`HttpConfig::extra_root_pem`] (the environment
//! variable [`CA_FILE_ENV`], `NETLIFY_BLOBS_CA_FILE`, for [`HttpStore::from_env`] and
//! `open_store`), for a server with a private or self-signed certificate. A file that
//! cannot be read fails opening with [`ErrorKind::Io`], one without a certificate with
//! [`ErrorKind::InvalidInput`]. Signed URLs may be `https://` too.
//!
//! A handshake that no retry can fix (a certificate that is not trusted or not valid for
//! the host, no common TLS version) fails the operation at once with
//! [`ErrorKind::Protocol`]; other connection failures are retried as usual.
//!
//! Without the `tls` feature, an `https://` URL fails opening (and an `https://` signed URL
//! fails the request) with [`ErrorKind::InvalidInput`], and the extra roots are not read.
//!
//! # Limits
//!
//! Reads from a server that sends no `etag` (the official `BlobsServer`) report an empty
//! ETag, so compare-and-swap against such a server cannot work.

mod config;
mod encode;
mod pager;
mod retry;
mod status;
mod tls;
mod wire;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::http::header::{HeaderName, HeaderValue};
use ::http::{HeaderMap, Method, Request, StatusCode, Uri};
use async_trait::async_trait;
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, Condition, Error, ErrorKind, Etag, ListOptions,
    ListPage, Result, SetOptions, SetOutcome, validate_key, validate_metadata,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyDataStream, BodyExt as _, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use config::{
    BlobsContext, CA_FILE_ENV, CONTEXT_ENV, ClientOptions, Consistency, DEFAULT_API_URL, Endpoint,
    HttpConfig, LEGACY_PREFIX, REGIONS, StoreKind, Token, check_deploy_id,
};
pub use encode::percent_decode;
pub use retry::RetryPolicy;
pub use status::{BODY_EXCERPT_CHARS, StatusError, kind_for_status};

use pager::{Cutter, Step};
use retry::Budget;
use wire::{
    AMZ_METADATA, NETLIFY_METADATA, SIGNED_URL_ACCEPT, WRITE_CACHE_CONTROL, header, parse_list,
    parse_signed_url, read_etag, read_last_modified, read_length, read_metadata,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ReqBody = UnsyncBoxBody<Bytes, BoxError>;

/// How much of a streamed write is collected before deciding to stream it: a shorter value
/// is sent whole, so it can be resent and checked like any other write.
const STREAM_THRESHOLD: usize = 1 << 20;

/// The most bytes of an error response that are read for the error message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// How long an idle pooled connection is kept. Shorter than the 5 s keep-alive of common
/// servers (`BlobsServer` among them), so the pool rarely hands out a connection the
/// server is about to close.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A `BlobStore` over HTTP, speaking the Netlify Blobs protocol.
///
/// Clones share one connection pool and configuration. See the [module docs](self) for
/// the protocol, retries and error mapping.
#[derive(Clone)]
pub struct HttpStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The pooled keep-alive client shared by every request of this store and its clones.
    client: Client<tls::Connector, ReqBody>,
    /// What this store was opened with.
    config: HttpConfig,
    /// The data URL of the store without a trailing `/`: `{edge}[/region:R]/{site}/{store}`
    /// or `{api}/api/v1/blobs/{site}/{store}`.
    store_url: String,
    /// `scheme://authority` of the API, to complete a signed URL given as a path.
    api_origin: Option<String>,
    /// `Some("auto")`, `Some("us-east-1")`…: the API-mode `region` parameter.
    api_region: Option<String>,
}

impl fmt::Debug for HttpStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // HttpConfig's Debug shows the token as <redacted>.
        f.debug_struct("HttpStore")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// A base URL split into `scheme://authority` and a path prefix without trailing `/`.
fn parse_base(url: &str) -> Result<(String, String)> {
    let uri: Uri = url
        .parse()
        .map_err(|_| Error::invalid("the blobs url is not a valid url"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") if tls::HTTPS => "https",
        Some("https") => return Err(Error::invalid(tls::NO_TLS)),
        _ => {
            return Err(Error::invalid(
                "the blobs url must start with http:// or https://",
            ));
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(Error::invalid("the blobs url has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(Error::invalid(
            "the blobs url must not hold credentials; pass the token separately",
        ));
    }
    if uri.query().is_some() {
        return Err(Error::invalid("the blobs url must not have a query"));
    }
    let path = uri.path().trim_end_matches('/').to_owned();
    Ok((format!("{scheme}://{authority}"), path))
}

/// What one attempt of a request ran into.
#[derive(Debug)]
enum AttemptError {
    /// The connection could not be made; nothing was sent.
    Connect(BoxError),
    /// The connection failed after the request may have been sent.
    Transport(BoxError),
    /// The TLS handshake failed in a way no retry can fix (an untrusted certificate, for
    /// example); nothing was sent.
    Rejected(BoxError),
    /// No complete answer within the request timeout.
    Timeout,
}

/// A complete answer, or the head of a streamed one.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: ReplyBody,
}

enum ReplyBody {
    Full(Bytes),
    Stream(Incoming),
}

impl Reply {
    fn bytes(&self) -> &[u8] {
        match &self.body {
            ReplyBody::Full(b) => b,
            ReplyBody::Stream(_) => &[],
        }
    }
}

/// What step 1 of API mode came to.
enum StepOne {
    /// The signed URL for step 2.
    Url(String),
    /// An answer the operation must interpret (such as 401 or 404).
    Final(Reply),
    /// A failure worth another attempt, with a 429's `X-RateLimit-Reset`.
    Retry(Error, Option<u64>),
    /// A failure no retry can fix.
    Fatal(Error),
}

/// How an operation failed.
enum Failure {
    /// Definitely failed (or gave up); the error is final.
    Fatal(Error),
    /// A conditional write may or may not have applied.
    Ambiguous(Error),
}

/// Where a request goes.
enum Route {
    /// One step, with the bearer token.
    Direct(String),
    /// Two steps: a signed URL from this API URL, then the data request without the token.
    Signed {
        /// The API URL of step 1.
        api_url: String,
        /// Extra headers of step 1 (metadata of a write).
        step1_headers: HeaderMap,
    },
}

/// The body of a request.
enum CallBody {
    Empty,
    Full(Bytes),
    /// A body that can be sent only once.
    OneShot(Mutex<Option<ReqBody>>),
}

impl CallBody {
    /// The body for the next attempt, or `None` if a one-shot body was already sent.
    fn take(&self) -> Option<ReqBody> {
        match self {
            CallBody::Empty => Some(full_body(Bytes::new())),
            CallBody::Full(b) => Some(full_body(b.clone())),
            CallBody::OneShot(m) => m.lock().ok().and_then(|mut slot| slot.take()),
        }
    }

    fn is_one_shot(&self) -> bool {
        matches!(self, CallBody::OneShot(_))
    }
}

fn full_body(bytes: Bytes) -> ReqBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// One logical request, possibly sent several times.
struct Call {
    /// `METHOD store/key`, for messages and logs; never a URL (a signed URL's query is a
    /// credential).
    what: String,
    method: Method,
    route: Route,
    /// Headers of the data request, apart from `authorization`.
    headers: HeaderMap,
    body: CallBody,
    /// A conditional write: ambiguous failures are reported instead of resent.
    conditional: bool,
    /// Hand a 200's body over as a stream instead of reading it.
    stream_response: bool,
}

/// What reading the key back says about a conditional write whose outcome was unknown.
enum Verdict {
    Applied(Etag),
    NotApplied,
    Superseded,
    Unknown(Error),
}

impl HttpStore {
    /// A store with a fully resolved configuration.
    pub fn new(config: HttpConfig) -> Result<HttpStore> {
        let (base, api_origin, api_region) = match &config.endpoint {
            Endpoint::Edge { url, uncached_url } => {
                let chosen = match config.consistency {
                    Consistency::Eventual => url,
                    Consistency::Strong => uncached_url.as_ref().ok_or_else(|| {
                        Error::invalid("strong consistency needs an uncached edge url")
                    })?,
                };
                let (origin, path) = parse_base(chosen)?;
                // Check the other URL too, so a bad configuration fails at once.
                parse_base(url)?;
                let mut base = format!("{origin}{path}");
                if let Some(region) = &config.region {
                    encode::push_single_segment(&mut base, &format!("region:{region}"));
                }
                (base, None, None)
            }
            Endpoint::Api { url } => {
                let (origin, path) = parse_base(url)?;
                (
                    format!("{origin}{path}/api/v1/blobs"),
                    Some(origin),
                    config.region.clone(),
                )
            }
        };
        if config.site_id.is_empty() {
            return Err(Error::invalid("the site id must not be empty"));
        }
        let mut store_url = base;
        encode::push_single_segment(&mut store_url, &config.site_id);
        encode::push_single_segment(&mut store_url, &config.store);
        if store_url.parse::<Uri>().is_err() {
            return Err(Error::invalid(
                "the site id or store name does not fit in a url",
            ));
        }
        HeaderValue::from_str(&format!("Bearer {}", config.token.reveal()))
            .map_err(|_| Error::invalid("the token is not a valid header value"))?;

        let connector = tls::connector(&config)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(HttpStore {
            inner: Arc::new(Inner {
                client,
                config,
                store_url,
                api_origin,
                api_region,
            }),
        })
    }

    /// Resolves `options` against `context` for a store of `kind` (see [`ClientOptions`]
    /// for the precedence rules) and opens it.
    pub fn open(
        options: &ClientOptions,
        context: Option<&BlobsContext>,
        kind: &StoreKind,
    ) -> Result<HttpStore> {
        HttpStore::new(HttpConfig::resolve(options, context, kind)?)
    }

    /// Opens the store `name` (a site store, or a legacy store for names starting with
    /// [`LEGACY_PREFIX`]) from `NETLIFY_BLOBS_CONTEXT`, with strong consistency, trusting
    /// the extra root certificates of the file named by [`CA_FILE_ENV`] if it is set.
    pub fn from_env(name: &str) -> Result<HttpStore> {
        let options = ClientOptions {
            consistency: Consistency::Strong,
            extra_root_pem: std::env::var_os(CA_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from),
            ..ClientOptions::default()
        };
        HttpStore::open(
            &options,
            BlobsContext::from_env().as_ref(),
            &StoreKind::from_name(name),
        )
    }

    /// The configuration (its `Debug` output redacts the token).
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    fn is_api(&self) -> bool {
        matches!(self.inner.config.endpoint, Endpoint::Api { .. })
    }

    /// The URL of `key`, with the API region parameter if any; `query` holds further
    /// parameters, placed before the region as the official client does.
    fn url(&self, key: Option<&str>, query: &[(&str, &str)]) -> String {
        let mut url = self.inner.store_url.clone();
        if let Some(key) = key {
            encode::push_path(&mut url, key);
        }
        let mut pairs = query.to_vec();
        if let Some(region) = &self.inner.api_region {
            pairs.push(("region", region));
        }
        url.push_str(&encode::query(&pairs));
        url
    }

    fn what(&self, method: &Method, key: Option<&str>) -> String {
        match key {
            Some(key) => format!("{method} {}/{key}", self.inner.config.store),
            None => format!("{method} {}", self.inner.config.store),
        }
    }

    /// A read or write of a value: signed in API mode, direct in edge mode.
    fn value_route(&self, key: &str, step1_headers: HeaderMap) -> Route {
        let url = self.url(Some(key), &[]);
        if self.is_api() {
            Route::Signed {
                api_url: url,
                step1_headers,
            }
        } else {
            Route::Direct(url)
        }
    }

    fn build(
        &self,
        method: &Method,
        url: &str,
        bearer: bool,
        headers: &HeaderMap,
        body: ReqBody,
    ) -> Result<Request<ReqBody>> {
        let uri: Uri = url
            .parse()
            .map_err(|_| Error::new(ErrorKind::Protocol, "request url is not valid"))?;
        let mut req = Request::builder().method(method.clone()).uri(uri);
        if let Some(h) = req.headers_mut() {
            for (name, value) in headers {
                h.append(name.clone(), value.clone());
            }
            if bearer {
                let mut auth =
                    HeaderValue::from_str(&format!("Bearer {}", self.inner.config.token.reveal()))
                        .map_err(|_| Error::invalid("the token is not a valid header value"))?;
                auth.set_sensitive(true);
                h.insert(::http::header::AUTHORIZATION, auth);
            }
        }
        req.body(body)
            .map_err(|_| Error::new(ErrorKind::Protocol, "could not build the request"))
    }

    /// Sends one request and waits, within `timeout`, for its answer: the head and, unless
    /// `stream` is set and the status is 200, the whole body.
    async fn exchange(
        &self,
        req: Request<ReqBody>,
        timeout: Duration,
        stream: bool,
    ) -> std::result::Result<Reply, AttemptError> {
        let client = &self.inner.client;
        let attempt = async {
            let resp = client.request(req).await.map_err(|e| {
                if tls::rejection(&e).is_some() {
                    AttemptError::Rejected(Box::new(e))
                } else if e.is_connect() {
                    AttemptError::Connect(Box::new(e))
                } else {
                    AttemptError::Transport(Box::new(e))
                }
            })?;
            let (parts, body) = resp.into_parts();
            let body = if stream && parts.status == StatusCode::OK {
                ReplyBody::Stream(body)
            } else if parts.status.is_success() || parts.status.is_redirection() {
                ReplyBody::Full(
                    body.collect()
                        .await
                        .map_err(|e| AttemptError::Transport(Box::new(e)))?
                        .to_bytes(),
                )
            } else {
                // Error bodies only feed messages; read a bounded amount.
                let collected = Limited::new(body, ERROR_BODY_LIMIT).collect().await;
                ReplyBody::Full(collected.map(|c| c.to_bytes()).unwrap_or_default())
            };
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(AttemptError::Timeout),
        }
    }

    fn attempt_error(what: &str, err: &AttemptError) -> Error {
        match err {
            AttemptError::Connect(e) => Error::new(
                ErrorKind::Unavailable,
                format!("{what}: cannot connect: {}", error_chain(e.as_ref())),
            ),
            AttemptError::Transport(e) => Error::new(
                ErrorKind::Unavailable,
                format!("{what}: connection failed: {}", error_chain(e.as_ref())),
            ),
            AttemptError::Rejected(e) => Error::new(
                ErrorKind::Protocol,
                format!("{what}: tls handshake failed: {}", error_chain(e.as_ref())),
            ),
            AttemptError::Timeout => {
                Error::new(ErrorKind::Timeout, format!("{what}: no answer in time"))
            }
        }
    }

    fn reply_error(what: &str, reply: &Reply) -> Error {
        status::status_error(
            what,
            reply.status,
            reply.bytes(),
            header(&reply.headers, "x-nf-error"),
        )
    }

    /// Waits before the next attempt (remembering `err` as the last failure), or returns
    /// the final error.
    async fn back_off(
        what: &str,
        err: Error,
        rate_limit_reset: Option<u64>,
        budget: &mut Budget,
    ) -> std::result::Result<(), Failure> {
        match budget.next_delay(rate_limit_reset) {
            Some(delay) => {
                tracing::debug!(
                    request = what,
                    attempt = budget.attempts(),
                    delay_ms = delay.as_millis() as u64,
                    "retrying after: {err}"
                );
                budget.record(err);
                tokio::time::sleep(delay).await;
                Ok(())
            }
            None => Err(Failure::Fatal(budget.give_up(err))),
        }
    }

    /// Step 1 of API mode, once: a signed URL for the data request, or the API's final
    /// answer if it refuses (for example 401, or 404 for a missing site).
    async fn signed_url(
        &self,
        call: &Call,
        api_url: &str,
        step1_headers: &HeaderMap,
        timeout: Duration,
    ) -> StepOne {
        let mut headers = step1_headers.clone();
        headers.insert(
            ::http::header::ACCEPT,
            HeaderValue::from_static(SIGNED_URL_ACCEPT),
        );
        let req = match self.build(
            &call.method,
            api_url,
            true,
            &headers,
            full_body(Bytes::new()),
        ) {
            Ok(req) => req,
            Err(e) => return StepOne::Fatal(e),
        };
        // Step 1 writes nothing, so every failure of it may be retried.
        match self.exchange(req, timeout, false).await {
            Ok(reply) if reply.status == StatusCode::OK => {
                match parse_signed_url(reply.bytes()).and_then(|u| self.complete_signed_url(u)) {
                    Ok(url) => StepOne::Url(url),
                    Err(e) => StepOne::Fatal(e),
                }
            }
            Ok(reply) if is_retryable_status(reply.status) => StepOne::Retry(
                HttpStore::reply_error(&call.what, &reply),
                rate_limit_reset(&reply),
            ),
            Ok(reply) => StepOne::Final(reply),
            Err(e @ AttemptError::Rejected(_)) => {
                StepOne::Fatal(HttpStore::attempt_error(&call.what, &e))
            }
            Err(e) => StepOne::Retry(HttpStore::attempt_error(&call.what, &e), None),
        }
    }

    /// A signed URL as an absolute `http://` (or, with TLS, `https://`) URL.
    fn complete_signed_url(&self, url: String) -> Result<String> {
        let url = if url.starts_with('/') {
            format!(
                "{}{url}",
                self.inner.api_origin.as_deref().unwrap_or_default()
            )
        } else {
            url
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| Error::new(ErrorKind::Protocol, "the signed url is not a valid url"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") if tls::HTTPS => {}
            Some("https") => return Err(Error::invalid(tls::NO_TLS)),
            _ => {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    "the signed url is not an http:// or https:// url",
                ));
            }
        }
        if uri.authority().is_none() {
            return Err(Error::new(
                ErrorKind::Protocol,
                "the signed url has no host",
            ));
        }
        Ok(url)
    }

    /// Sends `call` until it gets an answer the operation must interpret, within `budget`.
    ///
    /// Retries 429, 5xx, connection failures, timeouts and (for signed URLs) 403. For a
    /// conditional write, a failure after which the write may have applied is returned as
    /// [`Failure::Ambiguous`] instead of being resent.
    async fn perform(
        &self,
        call: &Call,
        budget: &mut Budget,
    ) -> std::result::Result<Reply, Failure> {
        let mut signed: Option<String> = None;
        loop {
            // One attempt is one data request, with the signed-URL request before it in API
            // mode; both get the attempt's timeout.
            if !budget.begin_attempt() {
                return Err(Failure::Fatal(budget.exhausted(&call.what)));
            }
            let (url, bearer) = match &call.route {
                Route::Direct(url) => (url.clone(), true),
                Route::Signed {
                    api_url,
                    step1_headers,
                } => match &signed {
                    Some(url) => (url.clone(), false),
                    None => {
                        let timeout = budget.timeout();
                        match self.signed_url(call, api_url, step1_headers, timeout).await {
                            StepOne::Url(url) => {
                                signed = Some(url.clone());
                                (url, false)
                            }
                            StepOne::Final(reply) => return Ok(reply),
                            StepOne::Fatal(e) => return Err(Failure::Fatal(e)),
                            StepOne::Retry(err, reset) => {
                                HttpStore::back_off(&call.what, err, reset, budget).await?;
                                continue;
                            }
                        }
                    }
                },
            };
            let timeout = budget.timeout();
            if timeout.is_zero() {
                return Err(Failure::Fatal(budget.exhausted(&call.what)));
            }
            let Some(body) = call.body.take() else {
                return Err(Failure::Fatal(Error::new(
                    ErrorKind::Unavailable,
                    format!("{}: a streamed body cannot be sent twice", call.what),
                )));
            };
            let req = self
                .build(&call.method, &url, bearer, &call.headers, body)
                .map_err(Failure::Fatal)?;
            let (err, reset, ambiguous) =
                match self.exchange(req, timeout, call.stream_response).await {
                    Ok(reply) => {
                        let status = reply.status;
                        if status == StatusCode::FORBIDDEN && !bearer {
                            // The signed URL expired or was refused: fetch a new one.
                            signed = None;
                            (HttpStore::reply_error(&call.what, &reply), None, false)
                        } else if is_retryable_status(status) {
                            let ambiguous = matches!(status.as_u16(), 500 | 502 | 504);
                            let reset = rate_limit_reset(&reply);
                            (HttpStore::reply_error(&call.what, &reply), reset, ambiguous)
                        } else {
                            return Ok(reply);
                        }
                    }
                    Err(e @ AttemptError::Rejected(_)) => {
                        // A certificate that is not trusted now will not be on a retry.
                        return Err(Failure::Fatal(HttpStore::attempt_error(&call.what, &e)));
                    }
                    Err(e) => {
                        let ambiguous = !matches!(e, AttemptError::Connect(_));
                        (HttpStore::attempt_error(&call.what, &e), None, ambiguous)
                    }
                };
            if call.conditional && ambiguous {
                return Err(Failure::Ambiguous(err));
            }
            if call.body.is_one_shot() {
                return Err(Failure::Fatal(err));
            }
            HttpStore::back_off(&call.what, err, reset, budget).await?;
        }
    }

    /// Runs a call that is never ambiguous (reads, deletes, unconditional writes).
    async fn run(&self, call: &Call, budget: &mut Budget) -> Result<Reply> {
        match self.perform(call, budget).await {
            Ok(reply) => Ok(reply),
            Err(Failure::Fatal(e) | Failure::Ambiguous(e)) => Err(e),
        }
    }

    fn read_call(&self, key: &str, stream: bool) -> Call {
        Call {
            what: self.what(&Method::GET, Some(key)),
            method: Method::GET,
            route: self.value_route(key, HeaderMap::new()),
            headers: HeaderMap::new(),
            body: CallBody::Empty,
            conditional: false,
            stream_response: stream,
        }
    }

    async fn get_in(&self, key: &str, budget: &mut Budget) -> Result<Option<Blob>> {
        let call = self.read_call(key, false);
        let reply = self.run(&call, budget).await?;
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

    /// The request of a write: headers for the data request and for step 1.
    fn write_call(&self, key: &str, options: &SetOptions, body: CallBody) -> Result<Call> {
        let mut headers = HeaderMap::new();
        headers.insert(
            ::http::header::CACHE_CONTROL,
            HeaderValue::from_static(WRITE_CACHE_CONTROL),
        );
        let mut step1 = HeaderMap::new();
        if !options.metadata.is_empty() {
            let value = HeaderValue::from_str(&options.metadata.to_header())
                .map_err(|_| Error::invalid("metadata does not fit in a header"))?;
            headers.insert(HeaderName::from_static(AMZ_METADATA), value.clone());
            step1.insert(HeaderName::from_static(NETLIFY_METADATA), value);
        }
        match &options.condition {
            Condition::Always => {}
            Condition::IfNew => {
                headers.insert(::http::header::IF_NONE_MATCH, HeaderValue::from_static("*"));
            }
            Condition::IfMatch(etag) => {
                let value = HeaderValue::from_str(etag.as_str())
                    .map_err(|_| Error::invalid("the etag is not a valid header value"))?;
                headers.insert(::http::header::IF_MATCH, value);
            }
        }
        Ok(Call {
            what: self.what(&Method::PUT, Some(key)),
            method: Method::PUT,
            route: self.value_route(key, step1),
            headers,
            body,
            conditional: options.condition != Condition::Always,
            stream_response: false,
        })
    }

    fn write_outcome(call: &Call, options: &SetOptions, reply: &Reply) -> Result<SetOutcome> {
        let status = reply.status;
        if status.is_success() {
            return Ok(SetOutcome::Written {
                etag: read_etag(&reply.headers),
            });
        }
        if status == StatusCode::PRECONDITION_FAILED && options.condition != Condition::Always {
            return Ok(SetOutcome::ConditionFailed);
        }
        Err(HttpStore::reply_error(&call.what, reply))
    }

    /// Reads `key` back to learn whether a conditional write of `value` applied.
    async fn check_applied(
        &self,
        key: &str,
        value: &Bytes,
        options: &SetOptions,
        budget: &Budget,
    ) -> Verdict {
        let mut check = budget.child();
        let current = match self.get_in(key, &mut check).await {
            Ok(current) => current,
            Err(e) => return Verdict::Unknown(e),
        };
        match (&options.condition, current) {
            (Condition::IfMatch(_), None) => Verdict::Superseded,
            (_, None) => Verdict::NotApplied,
            (Condition::IfMatch(expected), Some(blob)) if blob.info.etag == *expected => {
                Verdict::NotApplied
            }
            (_, Some(blob)) => {
                if blob.value == *value && blob.info.metadata == options.metadata {
                    Verdict::Applied(blob.info.etag)
                } else {
                    Verdict::Superseded
                }
            }
        }
    }

    /// Sends a streamed write once.
    async fn set_streamed(
        &self,
        key: &str,
        head: Vec<Bytes>,
        rest: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let too_large = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = too_large.clone();
        let mut sent: u64 = 0;
        let chunks = futures_util::stream::iter(head.into_iter().map(Ok))
            .chain(rest)
            .map(
                move |chunk| -> std::result::Result<Frame<Bytes>, BoxError> {
                    let chunk = chunk.map_err(|e| Box::new(e) as BoxError)?;
                    sent += chunk.len() as u64;
                    if let Some(max) = max_size
                        && sent > max
                    {
                        flag.store(true, std::sync::atomic::Ordering::SeqCst);
                        return Err("value is larger than the maximum".into());
                    }
                    Ok(Frame::data(chunk))
                },
            );
        let body: ReqBody = StreamBody::new(chunks).boxed_unsync();
        let call = self.write_call(key, &options, CallBody::OneShot(Mutex::new(Some(body))))?;
        let mut budget = Budget::start(&self.inner.config.retry);
        let result = self.perform(&call, &mut budget).await;
        if too_large.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::TooLarge,
                format!(
                    "value is larger than the maximum of {} bytes",
                    max_size.unwrap_or(0)
                ),
            ));
        }
        match result {
            Ok(reply) => HttpStore::write_outcome(&call, &options, &reply),
            Err(Failure::Fatal(e)) => Err(e),
            Err(Failure::Ambiguous(e)) => {
                // The stream is gone, so the content cannot be compared; only "still as
                // required, so not applied" can be told apart from "unknown".
                let mut check = budget.child();
                let not_applied = match self.head_in(key, &mut check).await {
                    Ok(None) => options.condition == Condition::IfNew,
                    Ok(Some(info)) => options.condition == Condition::IfMatch(info.etag),
                    Err(_) => false,
                };
                let (kind, what) = if not_applied {
                    (ErrorKind::Unavailable, "did not apply")
                } else {
                    (ErrorKind::Timeout, "has an unknown outcome")
                };
                Err(Error::new(
                    kind,
                    format!(
                        "streamed conditional write of {key} {what}: {}",
                        e.message()
                    ),
                )
                .with_source(e))
            }
        }
    }

    async fn head_in(&self, key: &str, budget: &mut Budget) -> Result<Option<BlobInfo>> {
        let call = Call {
            what: self.what(&Method::HEAD, Some(key)),
            method: Method::HEAD,
            route: Route::Direct(self.url(Some(key), &[])),
            headers: HeaderMap::new(),
            body: CallBody::Empty,
            conditional: false,
            stream_response: false,
        };
        let reply = self.run(&call, budget).await?;
        match reply.status {
            StatusCode::OK | StatusCode::NOT_MODIFIED => Ok(Some(info_from(
                &reply.headers,
                read_length(&reply.headers),
            )?)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(HttpStore::reply_error(&call.what, &reply)),
        }
    }

    /// Fetches one server page of the listing.
    async fn list_page(
        &self,
        options: &ListOptions,
        cursor: Option<&str>,
    ) -> Result<Option<wire::ServerPage>> {
        let mut query: Vec<(&str, &str)> = Vec::new();
        if !options.prefix.is_empty() {
            query.push(("prefix", &options.prefix));
        }
        if options.directories {
            query.push(("directories", "true"));
        }
        if let Some(c) = cursor {
            query.push(("cursor", c));
        }
        let call = Call {
            what: self.what(&Method::GET, None),
            method: Method::GET,
            route: Route::Direct(self.url(None, &query)),
            headers: HeaderMap::new(),
            body: CallBody::Empty,
            conditional: false,
            stream_response: false,
        };
        let mut budget = Budget::start(&self.inner.config.retry);
        let reply = self.run(&call, &mut budget).await?;
        match reply.status {
            StatusCode::OK => parse_list(reply.bytes()).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(HttpStore::reply_error(&call.what, &reply)),
        }
    }
}

/// Whether a status is worth another attempt: 429 and every 5xx.
fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `X-RateLimit-Reset` (Unix seconds) of a 429.
fn rate_limit_reset(reply: &Reply) -> Option<u64> {
    if reply.status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    header(&reply.headers, "x-ratelimit-reset").and_then(|v| v.trim().parse().ok())
}

/// The `BlobInfo` of a read's headers; `size` when the length is known.
fn info_from(headers: &HeaderMap, size: Option<u64>) -> Result<BlobInfo> {
    Ok(BlobInfo {
        etag: read_etag(headers),
        metadata: read_metadata(headers)?,
        size: size.unwrap_or(0),
        last_modified: read_last_modified(headers),
    })
}

/// An error and its sources on one line (hyper's messages are terse at the top level).
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[async_trait]
impl BlobStore for HttpStore {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        validate_key(key)?;
        let mut budget = Budget::start(&self.inner.config.retry);
        self.get_in(key, &mut budget).await
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        validate_key(key)?;
        let mut budget = Budget::start(&self.inner.config.retry);
        self.head_in(key, &mut budget).await
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        validate_key(key)?;
        validate_metadata(&options.metadata)?;
        let call = self.write_call(key, &options, CallBody::Full(value.clone()))?;
        let mut budget = Budget::start(&self.inner.config.retry);
        loop {
            let err = match self.perform(&call, &mut budget).await {
                Ok(reply) => return HttpStore::write_outcome(&call, &options, &reply),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Ambiguous(e)) => e,
            };
            match self.check_applied(key, &value, &options, &budget).await {
                Verdict::Applied(etag) => return Ok(SetOutcome::Written { etag }),
                Verdict::Superseded => return Ok(SetOutcome::ConditionFailed),
                Verdict::NotApplied => {
                    // The write did not happen: resending it is safe.
                    let err = Error::new(ErrorKind::Unavailable, err.message().to_owned());
                    if let Err(Failure::Fatal(e) | Failure::Ambiguous(e)) =
                        HttpStore::back_off(&call.what, err, None, &mut budget).await
                    {
                        return Err(e);
                    }
                }
                Verdict::Unknown(read_err) => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                            "outcome of the conditional write of {key} is unknown: {}; \
                             reading it back failed: {}",
                            err.message(),
                            read_err.message()
                        ),
                    )
                    .with_source(err));
                }
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let call = Call {
            what: self.what(&Method::DELETE, Some(key)),
            method: Method::DELETE,
            route: Route::Direct(self.url(Some(key), &[])),
            headers: HeaderMap::new(),
            body: CallBody::Empty,
            conditional: false,
            stream_response: false,
        };
        let mut budget = Budget::start(&self.inner.config.retry);
        let reply = self.run(&call, &mut budget).await?;
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
        let mut budget = Budget::start(&self.inner.config.retry);
        let reply = self.run(&call, &mut budget).await?;
        match reply.status {
            StatusCode::OK => {
                let info = info_from(&reply.headers, read_length(&reply.headers))?;
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
        mut body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        validate_key(key)?;
        validate_metadata(&options.metadata)?;
        let too_large = |max: u64| {
            Error::new(
                ErrorKind::TooLarge,
                format!("value is larger than the maximum of {max} bytes"),
            )
        };
        // Collect a short value whole, so it gets the retries and checks of `set`.
        let mut head = Vec::new();
        let mut len = 0usize;
        while len <= STREAM_THRESHOLD {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    len += chunk.len();
                    if let Some(max) = max_size
                        && len as u64 > max
                    {
                        return Err(too_large(max));
                    }
                    head.push(chunk);
                }
                None => {
                    let mut value = Vec::with_capacity(len);
                    for chunk in &head {
                        value.extend_from_slice(chunk);
                    }
                    return self.set(key, Bytes::from(value), options).await;
                }
            }
        }
        self.set_streamed(key, head, body, max_size, options).await
    }
}
