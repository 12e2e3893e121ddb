//! The request handler: credentials, routing, and dispatch to the operation handlers
//! (`handlers`) over the catalog.
//!
//! [`App::handle`] turns one request into one response without touching a socket, so tests
//! can drive it in-process; [`crate::serve`] only feeds it connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use blobjobs_backends::Catalog;
use blobjobs_protocol::Query;
use blobjobs_protocol::headers::accepts_signed_url;
use blobjobs_store_api::{BlobStore, Error};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Body;

use crate::auth::{Auth, Denied};
use crate::body::{BodyEnd, BodyWatch, ResponseBody, Watched};
use crate::config::Config;
use crate::error::Rejection;
use crate::handlers;
use crate::response::status_only;
use crate::route::{self, Mode, RESERVED_PREFIX, Resource, Route};

/// What a handler comes to: a response, or a rejection to turn into one.
pub(crate) type Outcome = Result<Response<ResponseBody>, Rejection>;

/// The emulator's request handler. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct App {
    pub(crate) inner: Arc<Inner>,
    /// The address clients reached, used for signed URLs when a request has no `Host`.
    local_addr: Option<SocketAddr>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The storage: catalog store `<site>/<raw store>` holds that store of that site, so no
    /// site can reach another's keys.
    pub(crate) catalog: Catalog,
    /// Token check and URL signing.
    pub(crate) auth: Auth,
    /// The largest value a PUT may carry.
    pub(crate) max_blob_size: u64,
    /// Entries per page of key and store listings.
    pub(crate) list_page_size: usize,
    /// How long a signed URL stays valid, in whole seconds (at least one).
    pub(crate) signed_url_ttl_secs: u64,
    /// The most connections served at once (before the file limit lowers it).
    pub(crate) max_connections: usize,
    /// How long a request's headers may take, counted from when a connection waits for one.
    pub(crate) header_timeout: Duration,
    /// How long a request body or a response may make no progress.
    pub(crate) idle_timeout: Duration,
}

impl App {
    /// A handler for `config`. Fails on an empty token, a page size outside
    /// 1..=[`blobjobs_store_api::list::MAX_PAGE_SIZE`], no connections or a zero timeout.
    /// Applies the listing cache's limit to the catalog.
    pub fn new(config: Config) -> std::io::Result<Self> {
        let invalid = |msg: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, msg);
        if config.token.is_empty() {
            return Err(invalid("the token must not be empty"));
        }
        if config.list_page_size == 0
            || config.list_page_size > blobjobs_store_api::list::MAX_PAGE_SIZE
        {
            return Err(invalid("the list page size must be between 1 and 10000"));
        }
        if config.max_connections == 0 {
            return Err(invalid("the connection limit must be at least 1"));
        }
        if config.header_timeout.is_zero() || config.idle_timeout.is_zero() {
            return Err(invalid("timeouts must be longer than zero"));
        }
        config.catalog.set_list_cache_bytes(config.list_cache_bytes);
        Ok(App {
            inner: Arc::new(Inner {
                auth: Auth::new(&config.token, config.clock.clone())?,
                catalog: config.catalog,
                max_blob_size: config.max_blob_size,
                list_page_size: config.list_page_size,
                signed_url_ttl_secs: config.signed_url_ttl.as_secs().max(1),
                max_connections: config.max_connections,
                header_timeout: config.header_timeout,
                idle_timeout: config.idle_timeout,
            }),
            local_addr: None,
        })
    }

    /// The same handler, told which address it is served on.
    pub fn with_local_addr(mut self, addr: SocketAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Answers one request. Never panics on any input; every failure is a short 4xx or 5xx,
    /// and a 5xx only for a failure of the server itself.
    ///
    /// A request whose body was not read to its end (refused before reading it, or cut short)
    /// gets `connection: close`: the connection cannot carry another request, and the client
    /// learns so with the response rather than from a reset. A body that turns out malformed or
    /// cut short is the client's fault (400), one that stalls for the idle timeout gets 408,
    /// whatever the handler made of the failed read.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let sends_body = declares_body(req.headers());
        let watch = BodyWatch::default();
        let idle = self.inner.idle_timeout;
        let req = req.map(|body| Watched::new(body, watch.clone(), idle));
        let outcome = match check_framing(req.headers()) {
            Ok(()) => self.route(req).await,
            Err(rejection) => Err(rejection),
        };
        let end = watch.lock().map(|end| end.clone()).unwrap_or_default();
        let finished = end == BodyEnd::Finished;
        let outcome = match end {
            BodyEnd::Failed(why) => Err(Rejection::BadBody(why)),
            BodyEnd::Stalled(idle) => Err(Rejection::BodyTimeout(idle)),
            BodyEnd::Open | BodyEnd::Finished => outcome,
        };
        let mut response = match outcome {
            Ok(response) => response,
            Err(rejection) => {
                if rejection.status().is_server_error() {
                    let error = rejection.log_message();
                    tracing::error!(%method, %path, %error, "request failed");
                } else {
                    let error = rejection.message();
                    tracing::debug!(%method, %path, %error, "request refused");
                }
                rejection.into_response()
            }
        };
        if sends_body && !finished {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
        response
    }

    async fn route<B>(&self, req: Request<B>) -> Outcome
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let path = req.uri().path();
        if crate::ui::serves(path) {
            return self.ui(req.map(|_| ())).await;
        }
        if path.starts_with(RESERVED_PREFIX) {
            return handlers::reserved_route(req.method(), path);
        }
        let query = Query::parse(req.uri().query())?;
        self.authorize(&req, &query)?;
        let method = req.method().clone();
        if ![Method::GET, Method::HEAD, Method::PUT, Method::DELETE].contains(&method) {
            return Err(Rejection::MethodNotAllowed {
                allow: "GET, HEAD, PUT, DELETE",
            });
        }
        let Some(Route { mode, resource }) = route::parse_path(path)? else {
            return Err(Rejection::NoRoute);
        };
        match resource {
            Resource::Site { site } => match method {
                Method::GET => self.list_stores(&site, &query).await,
                _ => Err(Rejection::MethodNotAllowed { allow: "GET" }),
            },
            Resource::Store { site, store } => match method {
                Method::GET => self.list(&site, &store, query).await,
                Method::DELETE => self.delete_store(&site, &store).await,
                _ => Err(Rejection::MethodNotAllowed {
                    allow: "GET, DELETE",
                }),
            },
            Resource::Key {
                site,
                store,
                key,
                edge_path,
            } => {
                let wants_signed_url = mode == Mode::Api
                    && (method == Method::GET || method == Method::PUT)
                    && accepts_signed_url(req.headers());
                if wants_signed_url {
                    return self.signed_url(&req, &edge_path);
                }
                let store = self.store(&site, &store)?;
                match method {
                    Method::GET => handlers::get(&*store, &key, req.headers()).await,
                    Method::HEAD => handlers::head(&*store, &key, req.headers()).await,
                    Method::PUT => self.put(&*store, &key, req).await,
                    _ => {
                        store.delete(&key).await?;
                        Ok(status_only(StatusCode::NO_CONTENT))
                    }
                }
            }
        }
    }

    /// Lets a request through if it carries the right bearer token, or a valid signature for
    /// its method and path.
    fn authorize<B>(&self, req: &Request<B>, query: &Query) -> Result<(), Rejection> {
        let auth = &self.inner.auth;
        let bearer = req.headers().get(header::AUTHORIZATION);
        if bearer.is_some_and(|v| auth.check_bearer(v.as_bytes())) {
            return Ok(());
        }
        if let (Some(expires), Some(signature)) = (&query.expires, &query.signature)
            && auth.verify(req.method().as_str(), req.uri().path(), expires, signature)
        {
            return Ok(());
        }
        let presented = bearer.is_some() || query.signature.is_some();
        Err(match presented {
            true => Denied::Wrong,
            false => Denied::Missing,
        }
        .into())
    }

    /// The catalog store behind a site's raw store name.
    pub(crate) fn store(&self, site: &str, store: &str) -> Result<Arc<dyn BlobStore>, Rejection> {
        Ok(self.inner.catalog.store(&catalog_name(site, store))?)
    }

    /// The authority clients used to reach this server: the `Host` header, else the
    /// listening address.
    pub(crate) fn host(&self, headers: &HeaderMap) -> Result<String, Rejection> {
        if let Some(host) = headers.get(header::HOST) {
            let host = host
                .to_str()
                .ok()
                .filter(|h| !h.contains('@'))
                .and_then(|h| h.parse::<http::uri::Authority>().ok())
                .ok_or_else(|| Error::invalid("the host header is not a valid authority"))?;
            return Ok(host.to_string());
        }
        match self.local_addr {
            Some(addr) => Ok(addr.to_string()),
            None => Err(Error::invalid("a host header is required for a signed url").into()),
        }
    }
}

/// Whether a request says it carries a body: a `content-length` other than 0, or any
/// `transfer-encoding`.
fn declares_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// Refuses a body framed with a transfer coding other than plain `chunked` (such as `gzip,
/// chunked`): the HTTP layer would take its chunks apart but hand over the still encoded
/// bytes, which must never be stored as the value. (A request with both `transfer-encoding`
/// and `content-length` never gets here with both: hyper frames it by the former, drops the
/// latter and closes the connection after the response, as RFC 9112 asks.)
fn check_framing(headers: &HeaderMap) -> Result<(), Rejection> {
    let mut codings = headers.get_all(header::TRANSFER_ENCODING).iter();
    let (Some(first), None) = (codings.next(), codings.next()) else {
        return match headers.contains_key(header::TRANSFER_ENCODING) {
            true => Err(unsupported_coding()),
            false => Ok(()),
        };
    };
    match first.to_str().map(str::trim) {
        Ok(coding) if coding.eq_ignore_ascii_case("chunked") => Ok(()),
        _ => Err(unsupported_coding()),
    }
}

fn unsupported_coding() -> Rejection {
    Error::invalid("transfer-encoding other than chunked is not supported: send the value as it is")
        .into()
}

/// The catalog name of a site's store. Site IDs hold no `/`, so names cannot collide.
pub fn catalog_name(site: &str, raw_store: &str) -> String {
    format!("{site}/{raw_store}")
}

impl From<Denied> for Rejection {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Missing => Rejection::MissingCredentials,
            Denied::Wrong => Rejection::WrongCredentials,
        }
    }
}
