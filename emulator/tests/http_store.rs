//! `blobjobs_backends::HttpStore` against the emulator served in-process on 127.0.0.1:0: the
//! conformance suite, one test per case, in edge mode over a file catalog and in API mode
//! over a memory catalog with tiny server pages, every instance a new client; then faults
//! injected by a TCP proxy between the two.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use blobjobs_backends::http::{
    ClientOptions, Consistency, HttpStore, RetryPolicy, StoreKind, Token,
};
use blobjobs_conformance::Backend;
use blobjobs_store_api::{BlobStore, ErrorKind, SetOptions, SetOutcome};
use blobjobs_test_support::stream_of;
use bytes::Bytes;
use common::{TOKEN, TestServer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const SITE: &str = "http-site";

/// An emulator over a fresh file catalog, or over memory, with `page_size` entries per
/// listing page.
async fn emulator(file: bool, page_size: usize) -> TestServer {
    if file {
        common::file_server(|c| c.list_page_size(page_size)).await
    } else {
        TestServer::start(common::memory_config().list_page_size(page_size)).await
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy::default()
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .max_elapsed(Duration::from_secs(10))
        .request_timeout(Duration::from_secs(5))
}

/// Client options for the server at `url`, in API mode or in edge mode with strong
/// consistency.
fn options(url: &str, api: bool, retry: RetryPolicy) -> ClientOptions {
    let mut options = ClientOptions {
        site_id: Some(SITE.into()),
        token: Some(Token::new(TOKEN)),
        consistency: Consistency::Strong,
        retry,
        ..ClientOptions::default()
    };
    if api {
        options.api_url = Some(url.to_owned());
    } else {
        options.edge_url = Some(url.to_owned());
        options.uncached_edge_url = Some(url.to_owned());
    }
    options
}

/// A new instance (a new client with its own connection pool) of store `name` at `url`.
fn open(url: &str, api: bool, name: &str, retry: RetryPolicy) -> HttpStore {
    HttpStore::open(
        &options(url, api, retry),
        None,
        &StoreKind::Site(name.into()),
    )
    .unwrap()
}

// ---------------------------------------------------------------------------------------------
// The conformance suite: edge mode over a file catalog, API mode over memory with 3-entry
// server pages. Each instance is a new client of one emulator that lives as long as the
// factory.

/// The backend `name`: clients in API mode when `api`, else in edge mode, of `emu`.
fn clients_of(name: &str, emu: TestServer, api: bool) -> Backend {
    let emu = Arc::new(emu);
    let factory = move || {
        let store = open(&emu.base, api, "conformance", retry());
        std::future::ready(Ok(Arc::new(store) as Arc<dyn BlobStore>))
    };
    Backend::new(name, factory)
}

async fn edge_over_file() -> Backend {
    clients_of("http-edge+file", emulator(true, 1000).await, false)
}

async fn api_over_memory_small_pages() -> Backend {
    clients_of("http-api+memory", emulator(false, 3).await, true)
}

blobjobs_conformance::tests!(edge_over_file, edge_over_file());
blobjobs_conformance::tests!(api_over_memory_small_pages, api_over_memory_small_pages());

#[tokio::test]
async fn wrong_tokens_are_unauthorized() {
    let emu = emulator(false, 1000).await;
    for api in [false, true] {
        let mut options = options(&emu.base, api, RetryPolicy::none());
        options.token = Some(Token::new("not-the-token"));
        let store = HttpStore::open(&options, None, &StoreKind::Site("s".into())).unwrap();
        let err = store.get("k").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "api: {api}");
        assert!(!format!("{err} {err:?} {store:?}").contains("not-the-token"));
    }
}

#[tokio::test]
async fn values_over_the_server_limit_are_too_large() {
    let emu = TestServer::start(common::memory_config().max_blob_size(1000)).await;
    let store = open(&emu.base, false, "limits", retry());
    let err = store
        .set("k", Bytes::from(vec![0u8; 1001]), SetOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(store.get("k").await.unwrap().is_none());
    // A streamed upload over the limit is refused too, and leaves nothing behind.
    let chunks = vec![Bytes::from(vec![1u8; 256 * 1024]); 6];
    let err = store
        .set_stream("s", stream_of(chunks), None, SetOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::TooLarge | ErrorKind::Unavailable),
        "{err:?}"
    );
    assert!(store.get("s").await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Faults, injected by a TCP proxy between the client and the emulator

/// What the proxy does to the next exchanges. Each fault is used up once it has acted.
#[derive(Default)]
struct ProxyFaults {
    /// Forward the next request, then close the client's connection instead of forwarding
    /// the answer.
    drop_next_response: AtomicBool,
    /// Answer this many requests with `status` and close, without forwarding them.
    status_times: AtomicU64,
    /// The status for `status_times`.
    status: AtomicU64,
    /// `X-RateLimit-Reset` to send with `status`, 0 for none.
    rate_limit_reset: AtomicU64,
    /// Hold the next answer back this many milliseconds.
    delay_next_ms: AtomicU64,
    /// Requests forwarded to the emulator.
    forwarded: AtomicU64,
}

/// A loopback proxy on 127.0.0.1:0 in front of `upstream`; returns its base URL.
async fn proxy(upstream: &str, faults: Arc<ProxyFaults>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream_addr = upstream.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let faults = faults.clone();
            let upstream_addr = upstream_addr.clone();
            tokio::spawn(async move {
                let _ = relay(client, &upstream_addr, &faults).await;
            });
        }
    });
    base
}

/// Takes one use of a counted fault.
fn take(counter: &AtomicU64) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Relays one connection in both directions, applying the faults. HTTP/1.1 clients send
/// one request at a time per connection, so the next answer bytes belong to the last
/// request.
async fn relay(mut client: TcpStream, upstream: &str, faults: &ProxyFaults) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            n = client.read(&mut up) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                let starts_request = up[..n].windows(10).any(|w| w == b"HTTP/1.1\r\n");
                if starts_request && take(&faults.status_times) {
                    let status = faults.status.load(Ordering::SeqCst);
                    let reset = faults.rate_limit_reset.load(Ordering::SeqCst);
                    let extra = if reset > 0 {
                        format!("x-ratelimit-reset: {reset}\r\n")
                    } else {
                        String::new()
                    };
                    let answer = format!(
                        "HTTP/1.1 {status} Injected\r\ncontent-length: 8\r\nconnection: close\r\n{extra}\r\ninjected"
                    );
                    client.write_all(answer.as_bytes()).await?;
                    return Ok(());
                }
                if starts_request {
                    faults.forwarded.fetch_add(1, Ordering::SeqCst);
                }
                server.write_all(&up[..n]).await?;
            }
            n = server.read(&mut down) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                let delay = faults.delay_next_ms.swap(0, Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if faults.drop_next_response.swap(false, Ordering::SeqCst) {
                    return Ok(());
                }
                client.write_all(&down[..n]).await?;
            }
        }
    }
}

struct Proxied {
    emu: TestServer,
    faults: Arc<ProxyFaults>,
    base: String,
}

impl Proxied {
    async fn start() -> Proxied {
        let emu = emulator(true, 1000).await;
        let faults = Arc::new(ProxyFaults::default());
        let base = proxy(&emu.base, faults.clone()).await;
        Proxied { emu, faults, base }
    }

    /// A client that goes through the proxy.
    fn client(&self, retry: RetryPolicy) -> HttpStore {
        open(&self.base, false, "faults", retry)
    }

    /// A client that talks to the emulator directly, to see what really happened.
    fn direct(&self) -> HttpStore {
        open(&self.emu.base, false, "faults", retry())
    }

    fn forwarded(&self) -> u64 {
        self.faults.forwarded.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_write_whose_answer_is_lost_is_applied_exactly_once() {
    let p = Proxied::start().await;
    let store = p.client(retry());
    // IfNew: the emulator creates the key, the answer never arrives.
    p.faults.drop_next_response.store(true, Ordering::SeqCst);
    let before = p.forwarded();
    let outcome = store
        .set("job", Bytes::from("v1"), SetOptions::new().if_new())
        .await
        .unwrap();
    let stored = p.direct().get("job").await.unwrap().unwrap();
    assert_eq!(stored.value, "v1");
    assert_eq!(
        outcome,
        SetOutcome::Written {
            etag: stored.info.etag.clone()
        }
    );
    // The PUT and the read-back, no second PUT.
    assert_eq!(p.forwarded() - before, 2);

    // IfMatch: a resend would fail its own condition; the read-back reports it applied.
    p.faults.drop_next_response.store(true, Ordering::SeqCst);
    let before = p.forwarded();
    let outcome = store
        .set(
            "job",
            Bytes::from("v2"),
            SetOptions::new().if_match(stored.info.etag),
        )
        .await
        .unwrap();
    let stored = p.direct().get("job").await.unwrap().unwrap();
    assert_eq!(stored.value, "v2");
    assert_eq!(outcome.etag(), Some(&stored.info.etag));
    assert_eq!(p.forwarded() - before, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_conditional_write_is_checked_not_resent() {
    let p = Proxied::start().await;
    let store = p.client(retry().request_timeout(Duration::from_millis(300)));
    p.faults.delay_next_ms.store(1500, Ordering::SeqCst);
    let started = Instant::now();
    let outcome = store
        .set("slow", Bytes::from("v"), SetOptions::new().if_new())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    let stored = p.direct().get("slow").await.unwrap().unwrap();
    assert_eq!(outcome.etag(), Some(&stored.info.etag));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_and_rate_limited_answers_are_retried() {
    let p = Proxied::start().await;
    p.direct()
        .set("k", Bytes::from("v"), SetOptions::new())
        .await
        .unwrap();
    let store = p.client(retry().jitter(false));
    p.faults.status.store(503, Ordering::SeqCst);
    p.faults.status_times.store(2, Ordering::SeqCst);
    assert_eq!(store.get("k").await.unwrap().unwrap().value, "v");
    assert_eq!(p.faults.status_times.load(Ordering::SeqCst), 0);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    p.faults.status.store(429, Ordering::SeqCst);
    p.faults.rate_limit_reset.store(now + 2, Ordering::SeqCst);
    p.faults.status_times.store(1, Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, "v");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed <= Duration::from_millis(2500), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_give_up_within_their_bounds() {
    let p = Proxied::start().await;
    let policy = retry()
        .jitter(false)
        .max_attempts(5)
        .backoff(Duration::from_millis(50), Duration::from_millis(100));
    let store = p.client(policy);
    p.faults.status.store(500, Ordering::SeqCst);
    p.faults.status_times.store(100, Ordering::SeqCst);
    let started = Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // Four waits of 50, 100, 100, 100 ms and five quick attempts.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
    assert!(elapsed <= Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(p.faults.status_times.load(Ordering::SeqCst), 95);

    let policy = retry()
        .max_attempts(1000)
        .backoff(Duration::from_millis(20), Duration::from_millis(20))
        .max_elapsed(Duration::from_millis(600));
    let store = p.client(policy);
    let started = Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        started.elapsed() <= Duration::from_millis(600 + 400),
        "{:?}",
        started.elapsed()
    );
}
