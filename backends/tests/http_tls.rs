//! `HttpStore` over `https://`: a TLS server on 127.0.0.1 with a certificate made at test
//! time (a private root and a leaf for `localhost` and 127.0.0.1), serving a minimal edge
//! protocol. With the root trusted through `extra_root_pem`, writes and reads round-trip;
//! without it, operations fail at once with a typed error. Without the `tls` feature,
//! `https://` URLs are refused when the store is opened.
#![allow(clippy::unwrap_used)]

use blobjobs_backends::http::{HttpConfig, HttpStore, Token};
use blobjobs_store_api::ErrorKind;

const TOKEN: &str = "tls-test-token";

#[cfg(not(feature = "tls"))]
#[test]
fn https_needs_the_tls_feature() {
    let config = HttpConfig::edge("https://127.0.0.1:1", "site", Token::new(TOKEN), "s").unwrap();
    let err = HttpStore::new(config).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    // Plain http still opens.
    let config = HttpConfig::edge("http://127.0.0.1:1", "site", Token::new(TOKEN), "s").unwrap();
    assert!(HttpStore::new(config).is_ok());
}

#[cfg(feature = "tls")]
mod with_tls {
    use std::collections::HashMap;
    use std::convert::Infallible;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use blobjobs_store_api::{BlobStore, SetOptions, SetOutcome};
    use bytes::Bytes;
    use http::{Method, Request, Response, StatusCode};
    use http_body_util::{BodyExt as _, Full};
    use hyper::body::Incoming;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    use tokio::net::TcpListener;
    use tokio::time::Instant;
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls::ServerConfig;
    use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    use super::*;
    use blobjobs_backends::http::RetryPolicy;

    /// A private root and a server configuration whose leaf it signed.
    struct Pki {
        root_pem: String,
        server: Arc<ServerConfig>,
    }

    fn pki(names: &[&str]) -> Pki {
        let root_key = KeyPair::generate().unwrap();
        let mut root_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        root_params
            .distinguished_name
            .push(DnType::CommonName, "blobs test root");
        let root = CertifiedIssuer::self_signed(root_params, root_key).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let leaf = CertificateParams::new(names)
            .unwrap()
            .signed_by(&leaf_key, &root)
            .unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone(), root.der().clone()], key)
            .unwrap();
        Pki {
            root_pem: root.pem(),
            server: Arc::new(server),
        }
    }

    /// What the fake server holds and saw.
    #[derive(Default)]
    struct State {
        /// Path → (value, etag).
        blobs: Mutex<HashMap<String, (Bytes, String)>>,
        /// TCP connections accepted.
        accepted: AtomicUsize,
        /// TLS handshakes completed.
        handshakes: AtomicUsize,
        /// Writes, for fresh ETags.
        writes: AtomicUsize,
    }

    /// A minimal edge-mode server: PUT stores the body and answers 200 with an ETag, GET
    /// answers the stored body with its ETag (or 404); both need the bearer token.
    async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: StatusCode| {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = status;
            r
        };
        let authorized = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {TOKEN}").as_bytes());
        if !authorized {
            return reply(StatusCode::UNAUTHORIZED);
        }
        let path = req.uri().path().to_owned();
        match *req.method() {
            Method::PUT => {
                let body = req.into_body().collect().await.unwrap().to_bytes();
                let n = state.writes.fetch_add(1, Ordering::SeqCst);
                let etag = format!("\"tls-{n}\"");
                state
                    .blobs
                    .lock()
                    .unwrap()
                    .insert(path, (body, etag.clone()));
                let mut r = reply(StatusCode::OK);
                r.headers_mut().insert("etag", etag.parse().unwrap());
                r
            }
            Method::GET => match state.blobs.lock().unwrap().get(&path).cloned() {
                Some((value, etag)) => {
                    let mut r = Response::new(Full::new(value));
                    r.headers_mut().insert("etag", etag.parse().unwrap());
                    r
                }
                None => reply(StatusCode::NOT_FOUND),
            },
            _ => reply(StatusCode::METHOD_NOT_ALLOWED),
        }
    }

    /// Serves `config` on 127.0.0.1 until the test's runtime ends.
    async fn start(config: Arc<ServerConfig>) -> (SocketAddr, Arc<State>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let acceptor = TlsAcceptor::from(config);
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                let state = shared.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    state.handshakes.fetch_add(1, Ordering::SeqCst);
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(handle(state, req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        (addr, state)
    }

    /// Writes `pem` to a file in a new temporary directory.
    fn pem_file(pem: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("root.pem");
        std::fs::write(&path, pem).unwrap();
        (dir, path)
    }

    fn store(url: &str, ca: Option<PathBuf>) -> HttpStore {
        let mut config = HttpConfig::edge(url, "site-1", Token::new(TOKEN), "tls").unwrap();
        config.extra_root_pem = ca;
        // Short limits, so a broken test fails fast instead of hanging.
        config.retry = RetryPolicy::default()
            .request_timeout(Duration::from_secs(5))
            .max_elapsed(Duration::from_secs(10));
        HttpStore::new(config).unwrap()
    }

    #[tokio::test]
    async fn set_and_get_round_trip_over_https_with_a_trusted_root() {
        let pki = pki(&["localhost", "127.0.0.1"]);
        let (addr, state) = start(pki.server.clone()).await;
        let (_dir, ca) = pem_file(&pki.root_pem);
        for host in ["127.0.0.1", "localhost"] {
            let store = store(&format!("https://{host}:{}", addr.port()), Some(ca.clone()));
            let key = format!("greeting/{host}");
            let outcome = store
                .set(
                    &key,
                    Bytes::from_static(b"hello over tls"),
                    SetOptions::new(),
                )
                .await
                .unwrap();
            let SetOutcome::Written { etag } = outcome else {
                panic!("not written: {outcome:?}");
            };
            assert!(etag.as_str().starts_with("\"tls-"), "{etag:?}");
            let blob = store.get(&key).await.unwrap().unwrap();
            assert_eq!(blob.value, "hello over tls");
            assert_eq!(blob.info.etag, etag);
            assert_eq!(blob.info.size, 14);
            assert!(store.get("greeting/absent").await.unwrap().is_none());
        }
        assert_eq!(state.blobs.lock().unwrap().len(), 2);
        assert!(state.handshakes.load(Ordering::SeqCst) >= 1);
    }

    /// Paused tokio time makes "at once" exact: the server runs in the test's runtime, so the
    /// clock moves only while every task waits on a timer (see `http_faults.rs`).
    #[tokio::test(start_paused = true)]
    async fn an_untrusted_certificate_fails_at_once_with_a_typed_error() {
        let pki = pki(&["localhost", "127.0.0.1"]);
        let (addr, state) = start(pki.server.clone()).await;
        let url = format!("https://127.0.0.1:{}", addr.port());
        // The webpki roots alone do not know the test root; neither does another private
        // root.
        let other = pki_other_root();
        let (_dir, other_ca) = pem_file(&other);
        for ca in [None, Some(other_ca)] {
            let store = store(&url, ca);
            let before = state.accepted.load(Ordering::SeqCst);
            let started = Instant::now();
            let err = store
                .set("k", Bytes::from_static(b"secret"), SetOptions::new())
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
            let err = store.get("k").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
            let err = store.get_metadata("k").await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
            // One connection per operation: a certificate failure is not retried, so no
            // backoff runs.
            assert_eq!(state.accepted.load(Ordering::SeqCst) - before, 3);
            assert_eq!(started.elapsed(), Duration::ZERO);
        }
        assert_eq!(state.handshakes.load(Ordering::SeqCst), 0);
        assert!(state.blobs.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_certificate_for_another_name_is_refused() {
        // The leaf names only `localhost`; reaching it as 127.0.0.1 must fail.
        let pki = pki(&["localhost"]);
        let (addr, state) = start(pki.server.clone()).await;
        let (_dir, ca) = pem_file(&pki.root_pem);
        let store = store(&format!("https://127.0.0.1:{}", addr.port()), Some(ca));
        let err = store.get("k").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
        assert_eq!(state.handshakes.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn plain_http_servers_still_work_and_tls_to_them_fails_cleanly() {
        // A plain http listener that answers nothing useful to a TLS client: the https
        // client must fail within its limits instead of hanging.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt as _;
                    let _ = tcp
                        .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                        .await;
                });
            }
        });
        let mut config = HttpConfig::edge(
            format!("https://127.0.0.1:{}", addr.port()),
            "site-1",
            Token::new(TOKEN),
            "tls",
        )
        .unwrap();
        config.retry = RetryPolicy::default()
            .max_attempts(2)
            .backoff(Duration::from_millis(10), Duration::from_millis(10))
            .request_timeout(Duration::from_secs(2))
            .max_elapsed(Duration::from_secs(5));
        let store = HttpStore::new(config).unwrap();
        let started = Instant::now();
        let err = store.get("k").await.unwrap_err();
        assert!(
            matches!(
                err.kind(),
                ErrorKind::Unavailable | ErrorKind::Protocol | ErrorKind::Timeout
            ),
            "{err}"
        );
        // At most the one backoff of 10 ms between the two attempts: nothing waits for the
        // 2 s request timeout.
        assert!(started.elapsed() <= Duration::from_millis(10));
    }

    /// The PEM of a root that signed nothing the test servers present.
    fn pki_other_root() -> String {
        pki(&["localhost"]).root_pem
    }

    #[test]
    fn a_bad_root_file_fails_opening() {
        let (dir, garbage) = pem_file("not a certificate\n");
        let mut config =
            HttpConfig::edge("https://127.0.0.1:1", "site-1", Token::new(TOKEN), "s").unwrap();
        config.extra_root_pem = Some(garbage);
        assert_eq!(
            HttpStore::new(config.clone()).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        config.extra_root_pem = Some(dir.path().join("missing/root.pem"));
        assert_eq!(HttpStore::new(config).unwrap_err().kind(), ErrorKind::Io);
    }
}
