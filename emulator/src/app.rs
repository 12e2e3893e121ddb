//! The request handler: credentials, routing and every protocol operation over the catalog.
//!
//! [`App::handle`] turns one request into one response without touching a socket, so tests
//! can drive it in-process; [`crate::serve`] only feeds it connections.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use blobjobs_backends::Catalog;
use blobjobs_store_api::{
    BlobInfo, BlobStore, Condition, Error, Etag, ListOptions, Metadata, SetOptions, SetOutcome,
    Timestamp, validate_metadata,
};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Body;
use serde::Serialize;

use crate::auth::{Auth, Denied, unix_now};
use crate::body::{ResponseBody, empty, full, request_stream, streaming};
use crate::config::Config;
use crate::error::Failure;
use crate::route::{self, HEALTH_PATH, Mode, Query, RESERVED_PREFIX, Resource, Target};

/// The `accept` value with which API mode asks for a signed URL instead of the blob.
pub const SIGNED_URL_ACCEPT: &str = "application/json;type=signed-url";

/// The metadata header of edge and signed-URL requests, and of every response.
pub const METADATA_HEADER: &str = "x-amz-meta-user";

/// The metadata header of API-mode requests; also sent on responses.
pub const API_METADATA_HEADER: &str = "netlify-blobs-metadata";

type Outcome = Result<Response<ResponseBody>, Failure>;

/// The emulator's request handler. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct App {
    inner: Arc<Inner>,
    /// The address clients reached, used for signed URLs when a request has no `Host`.
    local_addr: Option<SocketAddr>,
}

#[derive(Debug)]
struct Inner {
    /// The storage: catalog store `<site>/<raw store>` holds that store of that site, so no
    /// site can reach another's keys.
    catalog: Catalog,
    /// Token check and URL signing.
    auth: Auth,
    max_blob_size: u64,
    list_page_size: usize,
    signed_url_ttl_secs: u64,
}

impl App {
    /// A handler for `config`. Fails on an empty token or a page size outside
    /// 1..=[`blobjobs_store_api::list::MAX_PAGE_SIZE`].
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
        Ok(App {
            inner: Arc::new(Inner {
                auth: Auth::new(&config.token)?,
                catalog: config.catalog,
                max_blob_size: config.max_blob_size,
                list_page_size: config.list_page_size,
                signed_url_ttl_secs: config.signed_url_ttl.as_secs().max(1),
            }),
            local_addr: None,
        })
    }

    /// The same handler, told which address it is served on.
    pub fn with_local_addr(mut self, addr: SocketAddr) -> Self {
        self.local_addr = Some(addr);
        self
    }

    /// Answers one request. Never panics on any input; every failure is a short 4xx or 5xx.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let response = match self.route(req).await {
            Ok(response) => response,
            Err(failure) => {
                if failure.status().is_server_error() {
                    tracing::error!(%method, %path, error = %failure.message(), "request failed");
                }
                failure.into_response()
            }
        };
        tracing::debug!(%method, %path, status = response.status().as_u16(), "request");
        response
    }

    async fn route<B>(&self, req: Request<B>) -> Outcome
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let path = req.uri().path();
        if path.starts_with(RESERVED_PREFIX) {
            return reserved_route(req.method(), path);
        }
        let query = route::parse_query(req.uri().query())?;
        self.authorize(&req, &query)?;
        let method = req.method().clone();
        if ![Method::GET, Method::HEAD, Method::PUT, Method::DELETE].contains(&method) {
            return Err(Failure::MethodNotAllowed {
                allow: "GET, HEAD, PUT, DELETE",
            });
        }
        let Some(Target { mode, resource }) = route::parse_path(path)? else {
            return Err(Failure::NoRoute);
        };
        match resource {
            Resource::Site { site } => match method {
                Method::GET => self.list_stores(&site, &query).await,
                _ => Err(Failure::MethodNotAllowed { allow: "GET" }),
            },
            Resource::Store { site, store } => match method {
                Method::GET => self.list(&site, &store, query).await,
                Method::DELETE => self.delete_store(&site, &store).await,
                _ => Err(Failure::MethodNotAllowed {
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
                    Method::GET => get(&*store, &key, req.headers()).await,
                    Method::HEAD => head(&*store, &key, req.headers()).await,
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
    fn authorize<B>(&self, req: &Request<B>, query: &Query) -> Result<(), Failure> {
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

    fn store(&self, site: &str, store: &str) -> Result<Arc<dyn BlobStore>, Failure> {
        Ok(self.inner.catalog.store(&catalog_name(site, store))?)
    }

    /// API step 1 of get and set: a URL back to this server, in edge form, that authorizes
    /// this method on this key until it expires.
    fn signed_url<B>(&self, req: &Request<B>, edge_path: &str) -> Outcome {
        if req.method() == Method::PUT {
            // The metadata travels again on the signed request; reject bad metadata early.
            read_metadata(req.headers())?;
        }
        let host = self.host(req.headers())?;
        let expires = unix_now() + self.inner.signed_url_ttl_secs;
        let signature = self
            .inner
            .auth
            .sign(req.method().as_str(), edge_path, expires);
        let url = format!("http://{host}{edge_path}?expires={expires}&signature={signature}");
        Ok(json(StatusCode::OK, &SignedUrl { url }))
    }

    /// The authority clients used to reach this server: the `Host` header, else the
    /// listening address.
    fn host(&self, headers: &HeaderMap) -> Result<String, Failure> {
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

    async fn put<B>(&self, store: &dyn BlobStore, key: &str, req: Request<B>) -> Outcome
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: std::fmt::Display,
    {
        let headers = req.headers();
        let metadata = read_metadata(headers)?.unwrap_or_default();
        let condition = read_condition(headers)?;
        let max = self.inner.max_blob_size;
        if let Some(length) = headers.get(header::CONTENT_LENGTH)
            && let Some(length) = length.to_str().ok().and_then(|l| l.parse::<u64>().ok())
            && length > max
        {
            // Refuse before reading a byte of the body.
            return Err(Error::new(
                blobjobs_store_api::ErrorKind::TooLarge,
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
                blobjobs_store_api::ErrorKind::PreconditionFailed,
                "the write condition does not hold",
            )
            .into()),
        }
    }

    async fn list(&self, site: &str, store: &str, query: Query) -> Outcome {
        let store = self.store(site, store)?;
        let options = ListOptions::new()
            .prefix(query.prefix)
            .directories(query.directories)
            .cursor(query.cursor)
            .page_size(self.inner.list_page_size);
        let page = store.list(options).await?;
        let body = ListBody {
            blobs: page
                .blobs
                .into_iter()
                .map(|e| ListBlob {
                    etag: e.etag.as_str().to_owned(),
                    key: e.key,
                    last_modified: e.last_modified.to_rfc3339(),
                    size: e.size,
                })
                .collect(),
            directories: page.directories,
            next_cursor: page.next_cursor,
        };
        Ok(json(StatusCode::OK, &body))
    }

    async fn list_stores(&self, site: &str, query: &Query) -> Outcome {
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

    async fn delete_store(&self, site: &str, store: &str) -> Outcome {
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

/// The catalog name of a site's store. Site IDs hold no `/`, so names cannot collide.
pub fn catalog_name(site: &str, raw_store: &str) -> String {
    format!("{site}/{raw_store}")
}

fn reserved_route(method: &Method, path: &str) -> Outcome {
    if path != HEALTH_PATH {
        return Err(Failure::NoRoute);
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
        _ => Err(Failure::MethodNotAllowed { allow: "GET, HEAD" }),
    }
}

async fn get(store: &dyn BlobStore, key: &str, headers: &HeaderMap) -> Outcome {
    let Some((info, stream)) = store.get_stream(key).await? else {
        return Err(Error::new(blobjobs_store_api::ErrorKind::NotFound, "no such key").into());
    };
    Ok(read_response(headers, &info, streaming(stream)))
}

async fn head(store: &dyn BlobStore, key: &str, headers: &HeaderMap) -> Outcome {
    let Some(info) = store.get_metadata(key).await? else {
        return Err(Error::new(blobjobs_store_api::ErrorKind::NotFound, "no such key").into());
    };
    Ok(read_response(headers, &info, empty()))
}

/// The answer to a GET or HEAD of a blob: 304 when `if-none-match` names its ETag, else 200
/// with `body` and the blob's length and type.
fn read_response(
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

/// A response carrying the ETag, metadata and modification time of a blob.
fn info_response(
    status: StatusCode,
    info: &BlobInfo,
    body: ResponseBody,
) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    insert_etag(headers, &info.etag);
    if let Ok(value) = HeaderValue::from_str(&info.metadata.to_header()) {
        headers.insert(METADATA_HEADER, value.clone());
        headers.insert(API_METADATA_HEADER, value);
    }
    if let Some(value) = http_date(info.last_modified).and_then(|d| HeaderValue::from_str(&d).ok())
    {
        headers.insert(header::LAST_MODIFIED, value);
    }
    response
}

/// `t` as an IMF-fixdate (RFC 9110 §5.6.7), such as `Sun, 06 Nov 1994 08:49:37 GMT`: the
/// form HTTP requires for `last-modified`. Milliseconds are dropped. `None` for a time that
/// has no four-digit year.
pub(crate) fn http_date(t: Timestamp) -> Option<String> {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // `YYYY-MM-DDTHH:MM:SS.mmmZ`, always UTC.
    let rfc = t.to_rfc3339();
    let (date, time) = rfc.split_once('T')?;
    let mut parts = date.splitn(3, '-');
    let (year, month, day) = (parts.next()?, parts.next()?, parts.next()?);
    if year.len() != 4 {
        return None;
    }
    let month = MONTHS.get(month.parse::<usize>().ok()?.checked_sub(1)?)?;
    let hms = time.get(..8)?;
    // 1970-01-01 was a Thursday.
    let weekday = DAYS[((t.as_millis() / 86_400_000) % 7) as usize];
    Some(format!("{weekday}, {day} {month} {year} {hms} GMT"))
}

fn insert_etag(headers: &mut HeaderMap, etag: &Etag) {
    if let Ok(value) = HeaderValue::from_str(etag.as_str()) {
        headers.insert(header::ETAG, value);
    }
}

/// Whether `if-none-match` names the current ETag (or is `*`), so a read answers 304.
fn none_match(headers: &HeaderMap, current: &Etag) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == current.as_str())
}

fn accepts_signed_url(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            compact.eq_ignore_ascii_case(SIGNED_URL_ACCEPT)
        })
}

/// The metadata of a write: `x-amz-meta-user` (the data request's header) or else
/// `netlify-blobs-metadata` (API step 1). Anything but `b64;` + base64 of a JSON object
/// within the size limit is refused.
fn read_metadata(headers: &HeaderMap) -> Result<Option<Metadata>, Failure> {
    let Some(value) = headers
        .get(METADATA_HEADER)
        .or_else(|| headers.get(API_METADATA_HEADER))
    else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Error::invalid("metadata header is not ascii"))?;
    if !text.starts_with("b64;") {
        return Err(Error::invalid("metadata header must be b64;<base64 of a json object>").into());
    }
    let metadata = Metadata::from_header(text)?;
    validate_metadata(&metadata)?;
    Ok(Some(metadata))
}

/// The condition of a write from `if-match` / `if-none-match: *`.
fn read_condition(headers: &HeaderMap) -> Result<Condition, Failure> {
    let text = |name: header::HeaderName| -> Result<Option<String>, Failure> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|_| Error::invalid("conditional header is not ascii").into()),
        }
    };
    match (text(header::IF_MATCH)?, text(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => {
            Err(Error::invalid("if-match and if-none-match cannot be combined").into())
        }
        (Some(etag), None) if etag.is_empty() || etag == "*" => {
            Err(Error::invalid("if-match needs one etag").into())
        }
        (Some(etag), None) => Ok(Condition::IfMatch(Etag::new(etag))),
        (None, Some(star)) if star == "*" => Ok(Condition::IfNew),
        (None, Some(_)) => {
            Err(Error::invalid("on a write, if-none-match supports only '*'").into())
        }
        (None, None) => Ok(Condition::Always),
    }
}

fn status_only(status: StatusCode) -> Response<ResponseBody> {
    let mut response = Response::new(empty());
    *response.status_mut() = status;
    response
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<ResponseBody> {
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

fn encode_store_cursor(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("s{last}"))
}

fn decode_store_cursor(cursor: &str) -> Result<String, Failure> {
    let bad = || Failure::from(Error::invalid("malformed store list cursor"));
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    raw.strip_prefix('s').map(str::to_owned).ok_or_else(bad)
}

impl From<Denied> for Failure {
    fn from(denied: Denied) -> Self {
        match denied {
            Denied::Missing => Failure::MissingCredentials,
            Denied::Wrong => Failure::WrongCredentials,
        }
    }
}

#[derive(Serialize)]
struct SignedUrl {
    url: String,
}

#[derive(Serialize)]
struct ListBlob {
    etag: String,
    key: String,
    last_modified: String,
    size: u64,
}

#[derive(Serialize)]
struct ListBody {
    blobs: Vec<ListBlob>,
    directories: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct StoresBody {
    stores: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

#[derive(Serialize)]
struct DeleteStoreBody {
    blobs_deleted: u64,
    has_more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc: &str) -> Option<String> {
        Timestamp::parse_rfc3339(rfc).ok().and_then(http_date)
    }

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(
            at("1994-11-06T08:49:37.999Z").as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(
            http_date(Timestamp::from_millis(0)).as_deref(),
            Some("Thu, 01 Jan 1970 00:00:00 GMT")
        );
        assert_eq!(
            at("2000-02-29T23:59:59Z").as_deref(),
            Some("Tue, 29 Feb 2000 23:59:59 GMT")
        );
        assert_eq!(
            at("2026-11-28T11:04:55.787Z").as_deref(),
            Some("Sat, 28 Nov 2026 11:04:55 GMT")
        );
        // Past year 9999 there is no IMF-fixdate.
        assert_eq!(at("10000-01-01T00:00:00Z"), None);
    }
}
