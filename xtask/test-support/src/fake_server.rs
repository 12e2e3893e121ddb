//! A scriptable stand-in for a Netlify Blobs server, for wire and fault tests of `HttpStore`
//! (the backends crate's `http_wire.rs` and `http_faults.rs`).
//!
//! It speaks just enough of the protocol (edge paths, API paths with signed URLs, listings
//! with `next_cursor`) over the memory catalog, records every request, and injects faults on
//! request: error statuses, dropped connections (before or after applying a write) and slow
//! answers.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use blobjobs_backends::Catalog;
use blobjobs_backends::http::{
    ClientOptions, HttpConfig, HttpStore, RetryPolicy, StoreKind, Token,
};
use blobjobs_store_api::{
    BlobStore, Condition, Etag, ListOptions, Metadata, SetOptions, SetOutcome,
};
use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The bearer token the server accepts.
pub const TOKEN: &str = "fake-secret-token-42";
/// The site every client of the server uses.
pub const SITE: &str = "site-1";
/// The signature of every signed URL the server hands out.
pub const SIGNATURE: &str = "sig0123";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The method.
    pub method: Method,
    /// Path and query, exactly as sent.
    pub target: String,
    /// The headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl Seen {
    /// The value of header `name`, if present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What to do to a request.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and headers, applying nothing.
    Status(u16, Vec<(&'static str, String)>),
    /// Close the connection without an answer, applying nothing.
    Drop,
    /// Apply the request, then close the connection without an answer.
    ApplyThenDrop,
    /// Wait, then handle the request normally (applying it after the wait).
    Delay(Duration),
    /// Apply the request at once, then wait before answering.
    ApplyThenDelay(Duration),
    /// Let a competing writer store these bytes under the request's key, apply nothing of
    /// the request, and close the connection without an answer.
    CompetitorThenDrop(Bytes),
}

struct Rule {
    method: Method,
    /// Only requests to signed URLs (no bearer, `signature=` in the query).
    signed_only: bool,
    fault: Fault,
}

struct State {
    catalog: Catalog,
    page_size: usize,
    seen: Mutex<Vec<Seen>>,
    rules: Mutex<VecDeque<Rule>>,
    addr: SocketAddr,
}

/// A running fake server; it stops when dropped.
pub struct FakeServer {
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// A server on 127.0.0.1:0 with listing pages of up to 1000 entries.
    pub async fn start() -> FakeServer {
        FakeServer::with_page_size(1000).await
    }

    /// A server on 127.0.0.1:0 with listing pages of up to `page_size` entries.
    pub async fn with_page_size(page_size: usize) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State {
            catalog: Catalog::memory(),
            page_size,
            seen: Mutex::new(Vec::new()),
            rules: Mutex::new(VecDeque::new()),
            addr,
        });
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { handle(state, req).await }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeServer { state, task }
    }

    /// The server's base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.state.addr)
    }

    /// Injects `fault` into the next request with `method`.
    pub fn fault(&self, method: Method, fault: Fault) {
        self.state.rules.lock().unwrap().push_back(Rule {
            method,
            signed_only: false,
            fault,
        });
    }

    /// Injects `fault` into the next signed-URL request with `method`.
    pub fn fault_signed(&self, method: Method, fault: Fault) {
        self.state.rules.lock().unwrap().push_back(Rule {
            method,
            signed_only: true,
            fault,
        });
    }

    /// Injects `fault` into the next request with `method` that carries the data: in API mode
    /// the request to the signed URL, not the one that asks for it.
    pub fn fault_data(&self, api: bool, method: Method, fault: Fault) {
        if api {
            self.fault_signed(method, fault);
        } else {
            self.fault(method, fault);
        }
    }

    /// How many injected faults have not struck yet.
    pub fn faults_left(&self) -> usize {
        self.state.rules.lock().unwrap().len()
    }

    /// Every request so far, and forgets them.
    pub fn take_seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.state.seen.lock().unwrap())
    }

    /// The server-side store behind raw store name `store` of [`SITE`].
    pub fn store(&self, store: &str) -> Arc<dyn BlobStore> {
        self.state
            .catalog
            .store(&format!("{SITE}/{store}"))
            .unwrap()
    }

    /// Options for this server in edge mode (explicit site and token, strong consistency).
    pub fn edge_options(&self, retry: RetryPolicy) -> ClientOptions {
        ClientOptions {
            site_id: Some(SITE.into()),
            token: Some(Token::new(TOKEN)),
            edge_url: Some(self.url()),
            uncached_edge_url: Some(self.url()),
            consistency: blobjobs_backends::http::Consistency::Strong,
            retry,
            ..ClientOptions::default()
        }
    }

    /// Options for this server in API mode.
    pub fn api_options(&self, retry: RetryPolicy) -> ClientOptions {
        ClientOptions {
            site_id: Some(SITE.into()),
            token: Some(Token::new(TOKEN)),
            api_url: Some(self.url()),
            retry,
            ..ClientOptions::default()
        }
    }

    /// A client of store `name` in edge mode.
    pub fn edge_store(&self, name: &str, retry: RetryPolicy) -> HttpStore {
        HttpStore::open(
            &self.edge_options(retry),
            None,
            &StoreKind::Site(name.into()),
        )
        .unwrap()
    }

    /// A client of store `name` in API mode.
    pub fn api_store(&self, name: &str, retry: RetryPolicy) -> HttpStore {
        HttpStore::open(
            &self.api_options(retry),
            None,
            &StoreKind::Site(name.into()),
        )
        .unwrap()
    }

    /// A client of store `name` in API mode when `api`, else in edge mode.
    pub fn mode_store(&self, api: bool, name: &str, retry: RetryPolicy) -> HttpStore {
        if api {
            self.api_store(name, retry)
        } else {
            self.edge_store(name, retry)
        }
    }

    /// An edge-mode configuration of store `name` on this server.
    pub fn config(&self, name: &str) -> HttpConfig {
        HttpConfig::edge(self.url(), SITE, Token::new(TOKEN), name).unwrap()
    }
}

/// A fast retry policy for tests: no jitter, short waits.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy::default()
        .backoff(Duration::from_millis(10), Duration::from_millis(40))
        .max_elapsed(Duration::from_secs(5))
        .request_timeout(Duration::from_secs(2))
        .jitter(false)
}

type Answer = Result<Response<Full<Bytes>>, std::io::Error>;

fn respond(status: u16, headers: Vec<(&str, String)>, body: impl Into<Bytes>) -> Answer {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in headers {
        resp.headers_mut().append(
            http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
    }
    Ok(resp)
}

fn dropped() -> Answer {
    Err(std::io::Error::other("fault: connection dropped"))
}

async fn handle(state: Arc<State>, req: Request<Incoming>) -> Answer {
    let (parts, body) = req.into_parts();
    // A body that breaks off (the client aborted the upload) is never applied.
    let body = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => return dropped(),
    };
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let seen = Seen {
        method: parts.method.clone(),
        target: target.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    };
    state.seen.lock().unwrap().push(seen.clone());
    let signed = parts.uri.query().is_some_and(|q| q.contains("signature="));
    let fault = {
        let mut rules = state.rules.lock().unwrap();
        let pos = rules
            .iter()
            .position(|r| r.method == parts.method && (!r.signed_only || signed));
        pos.and_then(|i| rules.remove(i)).map(|r| r.fault)
    };
    match fault {
        None => serve(&state, &seen).await,
        Some(Fault::Status(status, headers)) => respond(status, headers, "injected failure"),
        Some(Fault::Drop) => dropped(),
        Some(Fault::ApplyThenDrop) => {
            let _ = serve(&state, &seen).await;
            dropped()
        }
        Some(Fault::Delay(d)) => {
            tokio::time::sleep(d).await;
            serve(&state, &seen).await
        }
        Some(Fault::CompetitorThenDrop(bytes)) => {
            let mut headers = HeaderMap::new();
            headers.insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
            let competitor = Seen {
                method: Method::PUT,
                headers,
                body: bytes,
                ..seen
            };
            let _ = serve(&state, &competitor).await;
            dropped()
        }
        Some(Fault::ApplyThenDelay(d)) => {
            let answer = serve(&state, &seen).await;
            tokio::time::sleep(d).await;
            answer
        }
    }
}

fn decode(raw: &str) -> String {
    String::from_utf8(blobjobs_backends::http::percent_decode(raw)).unwrap()
}

fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (n, v) = pair.split_once('=')?;
        (n == name).then(|| decode(&v.replace('+', " ")))
    })
}

async fn serve(state: &State, seen: &Seen) -> Answer {
    let (path, query) = match seen.target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (seen.target.clone(), String::new()),
    };
    let signed = query_param(&query, "signature");
    let (api, rest) = match path.strip_prefix("/api/v1/blobs") {
        Some(rest) => (true, rest.to_owned()),
        None => {
            let rest = match path.strip_prefix("/region:") {
                Some(r) => r.find('/').map(|i| r[i..].to_owned()).unwrap_or_default(),
                None => path.clone(),
            };
            (false, rest)
        }
    };
    let bearer = seen.header("authorization") == Some(&format!("Bearer {TOKEN}"));
    let authorized = bearer || (!api && signed.as_deref() == Some(SIGNATURE));
    if !authorized {
        return respond(403, vec![], "");
    }
    let mut parts = rest.trim_start_matches('/').splitn(3, '/');
    let site = decode(parts.next().unwrap_or(""));
    let Some(store) = parts.next().map(decode) else {
        return respond(400, vec![], "no store");
    };
    let raw_key = parts.next().map(str::to_owned);
    let catalog_store = state.catalog.store(&format!("{site}/{store}")).unwrap();
    let wants_url = seen
        .header("accept")
        .is_some_and(|a| a.contains("type=signed-url"));
    if api && wants_url {
        let Some(raw_key) = raw_key else {
            return respond(400, vec![], "no key");
        };
        let url = format!(
            "http://{}/{}/{}/{}?signature={SIGNATURE}",
            state.addr,
            path_segment(&site),
            path_segment(&store),
            raw_key
        );
        return respond(200, vec![], serde_json::json!({ "url": url }).to_string());
    }
    let Some(raw_key) = raw_key else {
        return list(state, &*catalog_store, &seen.method, &query).await;
    };
    let key = decode(&raw_key);
    match seen.method {
        Method::GET | Method::HEAD => match catalog_store.get(&key).await {
            Ok(Some(blob)) => {
                let headers = vec![
                    ("etag", blob.info.etag.to_string()),
                    ("x-amz-meta-user", blob.info.metadata.to_header()),
                    ("content-length", blob.value.len().to_string()),
                ];
                let body = if seen.method == Method::GET {
                    blob.value
                } else {
                    Bytes::new()
                };
                respond(200, headers, body)
            }
            Ok(None) => respond(404, vec![], ""),
            Err(e) => respond(400, vec![], e.to_string()),
        },
        Method::PUT => {
            let metadata = match seen.header("x-amz-meta-user") {
                Some(h) => Metadata::from_header(h).unwrap(),
                None => Metadata::new(),
            };
            let condition = match (seen.header("if-none-match"), seen.header("if-match")) {
                (Some("*"), _) => Condition::IfNew,
                (_, Some(etag)) => Condition::IfMatch(Etag::new(etag)),
                _ => Condition::Always,
            };
            let options = SetOptions::new().metadata(metadata).condition(condition);
            match catalog_store.set(&key, seen.body.clone(), options).await {
                Ok(SetOutcome::Written { etag }) => {
                    respond(200, vec![("etag", etag.to_string())], "")
                }
                Ok(SetOutcome::ConditionFailed) => respond(412, vec![], ""),
                Err(e) => respond(400, vec![], e.to_string()),
            }
        }
        Method::DELETE => {
            catalog_store.delete(&key).await.unwrap();
            respond(204, vec![], "")
        }
        _ => respond(405, vec![], ""),
    }
}

fn path_segment(text: &str) -> String {
    text.replace('%', "%25").replace('/', "%2F")
}

async fn list(state: &State, store: &dyn BlobStore, method: &Method, query: &str) -> Answer {
    if *method != Method::GET {
        return respond(405, vec![], "");
    }
    let options = ListOptions::new()
        .prefix(query_param(query, "prefix").unwrap_or_default())
        .directories(query_param(query, "directories").as_deref() == Some("true"))
        .cursor(query_param(query, "cursor"))
        .page_size(state.page_size);
    let page = match store.list(options).await {
        Ok(page) => page,
        Err(e) => return respond(400, vec![], e.to_string()),
    };
    let blobs: Vec<_> = page
        .blobs
        .iter()
        .map(|e| {
            serde_json::json!({
                "etag": e.etag.as_str(),
                "key": e.key,
                "last_modified": e.last_modified.to_rfc3339(),
                "size": e.size,
            })
        })
        .collect();
    let body = serde_json::json!({
        "blobs": blobs,
        "directories": page.directories,
        "next_cursor": page.next_cursor,
    });
    respond(
        200,
        vec![("content-type", "application/json".into())],
        body.to_string(),
    )
}
