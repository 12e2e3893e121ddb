//! Test support: an emulator served in-process on 127.0.0.1:0, and a small raw HTTP client.
#![allow(dead_code, clippy::unwrap_used)]

pub mod binary;
pub mod cli;
pub mod raw;

use std::net::SocketAddr;

use blobjobs_backends::Catalog;
use blobjobs_emulator::Config;
use blobjobs_emulator::body::ResponseBody;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The token of every test server.
pub const TOKEN: &str = "test-token";

/// An emulator serving on a real socket until stopped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub base: String,
    shutdown: std::sync::Mutex<Option<oneshot::Sender<()>>>,
    task: JoinHandle<std::io::Result<()>>,
    http: Client<HttpConnector, ResponseBody>,
    /// Keeps the data directory of a file catalog alive.
    _dir: Option<tempfile::TempDir>,
}

/// A response with its whole body.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {:?}", self.text()))
    }

    pub fn etag(&self) -> String {
        self.header("etag").expect("an etag header").to_owned()
    }
}

/// A file catalog in a fresh temporary directory, without fsync for speed (atomicity and
/// conditions are the same either way).
pub fn file_catalog() -> (Catalog, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::file(
        dir.path().to_path_buf(),
        blobjobs_backends::FileOptions { fsync: false },
    )
    .unwrap();
    (catalog, dir)
}

/// A server over a fresh file catalog, configured by `tweak`.
pub async fn file_server(tweak: impl FnOnce(Config) -> Config) -> TestServer {
    let (catalog, dir) = file_catalog();
    TestServer::start_with_dir(tweak(Config::new(catalog, TOKEN)), Some(dir)).await
}

/// A memory-catalog configuration with the test token.
pub fn memory_config() -> Config {
    Config::new(Catalog::memory(), TOKEN)
}

impl TestServer {
    /// Serves `config` on 127.0.0.1:0.
    pub async fn start(config: Config) -> Self {
        Self::start_with_dir(config, None).await
    }

    /// A memory-backed server with default settings.
    pub async fn memory() -> Self {
        Self::start(memory_config()).await
    }

    pub async fn start_with_dir(config: Config, dir: Option<tempfile::TempDir>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(blobjobs_emulator::serve(listener, config, async move {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            base: format!("http://{addr}"),
            shutdown: std::sync::Mutex::new(Some(tx)),
            task,
            http: Client::builder(TokioExecutor::new()).build_http(),
            _dir: dir,
        }
    }

    /// The data directory of a file catalog server.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }

    /// Signals shutdown without waiting.
    pub fn begin_shutdown(&self) {
        if let Some(tx) = self.shutdown.lock().unwrap().take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for `serve` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.begin_shutdown();
        (&mut self.task).await.unwrap()
    }

    /// Sends a request without credentials unless `headers` carries them.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        self.send_body(
            method,
            path,
            headers,
            blobjobs_emulator::body::full(body.into()),
        )
        .await
    }

    /// Sends a request with the bearer token.
    pub async fn authed(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let bearer = format!("Bearer {TOKEN}");
        let mut all = vec![("authorization", bearer.as_str())];
        all.extend_from_slice(headers);
        self.call(method, path, &all, body).await
    }

    /// Shorthands for authorized requests without extra headers.
    pub async fn get(&self, path: &str) -> Reply {
        self.authed("GET", path, &[], Bytes::new()).await
    }

    pub async fn put(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.authed("PUT", path, &[], body).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.authed("DELETE", path, &[], Bytes::new()).await
    }

    pub async fn send_body(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: ResponseBody,
    ) -> Reply {
        let url = if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut builder = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(url);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let response = self
            .http
            .request(builder.body(body).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// Asserts a rejected request: the status, and a short, non-empty plain-text reason.
pub fn assert_rejected(reply: &Reply, status: u16) {
    assert_eq!(reply.status.as_u16(), status, "body: {}", reply.text());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{reply:?}"
    );
    let text = reply.text();
    assert!(!text.trim().is_empty() && text.len() < 300, "{text:?}");
}

/// The `edgeURL` inside an `export NETLIFY_BLOBS_CONTEXT=…` line.
pub fn edge_url_of_export_line(line: &str) -> String {
    use base64::Engine as _;
    let encoded = line
        .strip_prefix("export NETLIFY_BLOBS_CONTEXT=")
        .unwrap_or_else(|| panic!("not an export line: {line:?}"));
    let json = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .unwrap();
    let context: serde_json::Value = serde_json::from_slice(&json).unwrap();
    context["edgeURL"].as_str().unwrap().to_owned()
}

/// A loopback port that nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
