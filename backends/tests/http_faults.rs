//! `HttpStore` under injected faults: it retries what may be retried, gives up within its
//! bounds, waits for rate limits, and never applies a conditional write twice.
//!
//! The tests about time run with tokio's clock paused (`start_paused`), so backoffs,
//! timeouts, deadlines and rate-limit waits are asserted exactly, without waiting on the wall
//! clock. That works over real sockets because the fake server runs in the test's own
//! single-threaded runtime: loopback TCP delivers every write before the send returns, so
//! whenever the runtime parks, the peer's readiness is already there to wake a task, and
//! tokio only advances the paused clock when a park wakes nothing, that is, when every task
//! waits on a timer. The wall clock of `X-RateLimit-Reset` is a `ManualClock`.
#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::sync::Arc;
use std::time::Duration;

use blobjobs_backends::HttpStore;
use blobjobs_backends::http::{HttpConfig, RetryPolicy, StoreKind};
use blobjobs_store_api::{
    Blob, BlobStore, ByteStream, ErrorKind, ManualClock, SetOptions, SetOutcome, Timestamp,
};
use blobjobs_test_support::fake_server::{FakeServer, Fault, quick_retry};
use bytes::Bytes;
use http::Method;
use tokio::time::Instant;

/// How many requests with `method` carried data since the last look: every such request in
/// edge mode, and in API mode those to a signed URL (not the `/api/` ones that ask for it).
fn count(server: &FakeServer, method: Method) -> usize {
    server
        .take_seen()
        .into_iter()
        .filter(|s| s.method == method && !s.target.starts_with("/api/"))
        .count()
}

/// What the server holds under `key` of store `s`, read behind the client's back.
async fn stored(server: &FakeServer, key: &str) -> Blob {
    server.store("site:s").get(key).await.unwrap().unwrap()
}

/// A 429 answer that asks to wait until `reset` (Unix seconds).
fn rate_limited_until(reset: u64) -> Fault {
    Fault::Status(429, vec![("x-ratelimit-reset", reset.to_string())])
}

/// The wall clock of the rate-limit tests: 0.3 s before the Unix second 1 700 000 002.
fn wall_clock() -> ManualClock {
    ManualClock::new(Timestamp::from_millis(1_700_000_001_700))
}

/// An edge-mode client of store `s` whose wall clock is `wall`.
fn store_with_clock(server: &FakeServer, retry: RetryPolicy, wall: &ManualClock) -> HttpStore {
    let options = server.edge_options(retry);
    let config = HttpConfig::resolve(&options, None, &StoreKind::Site("s".into()))
        .unwrap()
        .with_clock(Arc::new(wall.clone()));
    HttpStore::new(config).unwrap()
}

#[tokio::test]
async fn server_errors_and_dropped_connections_are_retried() {
    let server = FakeServer::start().await;
    let store = server.edge_store("s", quick_retry());
    store
        .set("k", Bytes::from("v"), SetOptions::new())
        .await
        .unwrap();
    server.take_seen();
    server.fault(Method::GET, Fault::Status(500, vec![]));
    server.fault(Method::GET, Fault::Status(502, vec![]));
    server.fault(Method::GET, Fault::Drop);
    assert_eq!(store.get("k").await.unwrap().unwrap().value, "v");
    assert_eq!(count(&server, Method::GET), 4);
    server.fault(Method::DELETE, Fault::Status(503, vec![]));
    store.delete("k").await.unwrap();
    assert_eq!(count(&server, Method::DELETE), 2);
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_attempt_limit() {
    let server = FakeServer::start().await;
    let store = server.edge_store("s", quick_retry().max_attempts(4));
    for _ in 0..10 {
        server.fault(Method::GET, Fault::Status(503, vec![]));
    }
    let started = Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert_eq!(count(&server, Method::GET), 4);
    // Backoff 10 + 20 + 40 ms; the answers themselves take no time on the paused clock.
    assert_eq!(started.elapsed(), Duration::from_millis(70));
}

#[tokio::test(start_paused = true)]
async fn retries_stop_at_the_time_limit() {
    let server = FakeServer::start().await;
    let policy = quick_retry()
        .max_attempts(1000)
        .backoff(Duration::from_millis(20), Duration::from_millis(20))
        .max_elapsed(Duration::from_millis(400));
    let store = server.edge_store("s", policy);
    for _ in 0..1000 {
        server.fault(Method::GET, Fault::Status(500, vec![]));
    }
    let started = Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // The deadline is strict: attempts at 0, 20, …, 380 ms, and the wait after the last
    // would end at the deadline, so it is not started.
    assert_eq!(started.elapsed(), Duration::from_millis(380));
    assert_eq!(count(&server, Method::GET), 20);
}

#[tokio::test(start_paused = true)]
async fn refused_connections_give_up_within_bounds() {
    let policy = quick_retry().max_attempts(3);
    let options = blobjobs_backends::http::ClientOptions {
        site_id: Some("s".into()),
        token: Some(blobjobs_backends::http::Token::new("t")),
        edge_url: Some("http://127.0.0.1:1".into()),
        retry: policy,
        ..Default::default()
    };
    let store = blobjobs_backends::HttpStore::open(
        &options,
        None,
        &blobjobs_backends::http::StoreKind::Site("s".into()),
    )
    .unwrap();
    let started = Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // Three attempts with backoffs of 10 and 20 ms between them.
    assert_eq!(started.elapsed(), Duration::from_millis(30));
    // Even a conditional write may be resent after a refused connection: nothing was sent.
    let started = Instant::now();
    let err = store
        .set("k", Bytes::from("v"), SetOptions::new().if_new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(started.elapsed(), Duration::from_millis(30));
}

#[tokio::test(start_paused = true)]
async fn rate_limits_are_waited_out_until_the_reset_time() {
    let server = FakeServer::start().await;
    let wall = wall_clock();
    let store = store_with_clock(
        &server,
        quick_retry().max_rate_limit_wait(Duration::from_secs(3)),
        &wall,
    );
    server.fault(Method::GET, rate_limited_until(1_700_000_002));
    let started = Instant::now();
    assert!(store.get("k").await.unwrap().is_none());
    // The wall clock reads 0.3 s before the reset: exactly that long, not the 3 s cap.
    assert_eq!(started.elapsed(), Duration::from_millis(300));
    assert_eq!(count(&server, Method::GET), 2);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_waits_are_capped() {
    let server = FakeServer::start().await;
    let wall = wall_clock();
    let store = store_with_clock(
        &server,
        quick_retry().max_rate_limit_wait(Duration::from_millis(200)),
        &wall,
    );
    server.fault(Method::GET, rate_limited_until(1_700_003_600));
    let started = Instant::now();
    assert!(store.get("k").await.unwrap().is_none());
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    // Without the header, a 429 still backs off (the first backoff, 10 ms) and retries.
    server.fault(Method::GET, Fault::Status(429, vec![]));
    let started = Instant::now();
    assert!(store.get("k").await.unwrap().is_none());
    assert_eq!(started.elapsed(), Duration::from_millis(10));
    assert_eq!(count(&server, Method::GET), 4);
}

#[tokio::test(start_paused = true)]
async fn slow_answers_time_out_and_are_retried() {
    let server = FakeServer::start().await;
    let store = server.edge_store(
        "s",
        quick_retry().request_timeout(Duration::from_millis(200)),
    );
    store
        .set("k", Bytes::from("v"), SetOptions::new())
        .await
        .unwrap();
    server.fault(Method::GET, Fault::Delay(Duration::from_secs(3)));
    let started = Instant::now();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, "v");
    // The first answer is given up at the 200 ms timeout; after a 10 ms backoff the second
    // comes at once.
    assert_eq!(started.elapsed(), Duration::from_millis(210));

    // When every answer is slow, the operation ends with a timeout within its time limit.
    let store = server.edge_store(
        "s",
        quick_retry()
            .request_timeout(Duration::from_millis(150))
            .max_elapsed(Duration::from_millis(500)),
    );
    for _ in 0..10 {
        server.fault(Method::GET, Fault::Delay(Duration::from_secs(3)));
    }
    let started = Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    // Attempts time out at 150, 310 and 480 ms (after backoffs of 10 and 20 ms); the next
    // backoff, 40 ms, would run past the 500 ms deadline.
    assert_eq!(started.elapsed(), Duration::from_millis(480));
}

#[tokio::test]
async fn a_conditional_write_applied_but_unanswered_is_reported_as_applied() {
    for api in [false, true] {
        let server = FakeServer::start().await;
        let store = server.mode_store(api, "s", quick_retry());
        // IfNew: the server creates the key, and the answer is lost.
        server.fault_data(api, Method::PUT, Fault::ApplyThenDrop);
        let outcome = store
            .set("k", Bytes::from("mine"), SetOptions::new().if_new())
            .await
            .unwrap();
        let first = stored(&server, "k").await;
        assert_eq!(
            outcome,
            SetOutcome::Written {
                etag: first.info.etag.clone()
            }
        );
        assert_eq!(first.value, "mine");
        assert_eq!(
            count(&server, Method::PUT),
            1,
            "the write was sent again (api: {api})"
        );

        // IfMatch: the same, with a timeout instead of a dropped connection.
        let slow = server.mode_store(
            api,
            "s",
            quick_retry().request_timeout(Duration::from_millis(200)),
        );
        let delay = Fault::ApplyThenDelay(Duration::from_secs(2));
        server.fault_data(api, Method::PUT, delay);
        let outcome = slow
            .set(
                "k",
                Bytes::from("next"),
                SetOptions::new().if_match(first.info.etag.clone()),
            )
            .await
            .unwrap();
        let now = stored(&server, "k").await;
        assert_eq!(now.value, "next");
        assert_eq!(outcome.etag(), Some(&now.info.etag));
        assert_eq!(
            count(&server, Method::PUT),
            1,
            "the write was sent again (api: {api})"
        );
    }
}

#[tokio::test]
async fn a_conditional_write_that_did_not_apply_is_resent_once() {
    let server = FakeServer::start().await;
    let store = server.edge_store("s", quick_retry());
    server.fault(Method::PUT, Fault::Drop);
    let outcome = store
        .set("k", Bytes::from("v"), SetOptions::new().if_new())
        .await
        .unwrap();
    assert!(outcome.is_written());
    assert_eq!(count(&server, Method::PUT), 2);

    // A 500 is treated like a lost answer: read back, found not applied, resent.
    let etag = outcome.etag().cloned().unwrap();
    server.fault(Method::PUT, Fault::Status(500, vec![]));
    let outcome = store
        .set("k", Bytes::from("w"), SetOptions::new().if_match(etag))
        .await
        .unwrap();
    assert!(outcome.is_written());
    assert_eq!(stored(&server, "k").await.value, "w");
    let seen = server.take_seen();
    let methods: Vec<&Method> = seen.iter().map(|s| &s.method).collect();
    assert_eq!(methods, [&Method::PUT, &Method::GET, &Method::PUT]);

    // A 503 or 429 means "not processed": resent without reading back.
    let etag = outcome.etag().cloned().unwrap();
    server.fault(Method::PUT, Fault::Status(503, vec![]));
    store
        .set("k", Bytes::from("x"), SetOptions::new().if_match(etag))
        .await
        .unwrap();
    assert_eq!(count(&server, Method::PUT), 2);
}

#[tokio::test]
async fn a_lost_conditional_write_overtaken_by_another_writer_reports_the_conflict() {
    let server = FakeServer::start().await;
    let store = server.edge_store("s", quick_retry());
    server.fault(
        Method::PUT,
        Fault::CompetitorThenDrop(Bytes::from("theirs")),
    );
    let outcome = store
        .set("k", Bytes::from("mine"), SetOptions::new().if_new())
        .await
        .unwrap();
    assert_eq!(outcome, SetOutcome::ConditionFailed);
    assert_eq!(stored(&server, "k").await.value, "theirs");
    assert_eq!(count(&server, Method::PUT), 1);
}

#[tokio::test]
async fn an_unknown_outcome_is_a_timeout_error() {
    let server = FakeServer::start().await;
    let store = server.edge_store("s", quick_retry().max_attempts(3));
    server.fault(Method::PUT, Fault::ApplyThenDrop);
    for _ in 0..5 {
        server.fault(Method::GET, Fault::Status(503, vec![]));
    }
    let err = store
        .set("k", Bytes::from("v"), SetOptions::new().if_new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert_eq!(count(&server, Method::PUT), 1);
}

#[tokio::test]
async fn unconditional_writes_are_simply_resent() {
    let server = FakeServer::start().await;
    let store = server.edge_store("s", quick_retry());
    server.fault(Method::PUT, Fault::ApplyThenDrop);
    server.fault(Method::PUT, Fault::Status(500, vec![]));
    let outcome = store
        .set("k", Bytes::from("v"), SetOptions::new())
        .await
        .unwrap();
    assert!(outcome.is_written());
    assert_eq!(count(&server, Method::PUT), 3);
}

#[tokio::test]
async fn refused_signed_urls_are_renewed_within_bounds() {
    let server = FakeServer::start().await;
    let store = server.api_store("s", quick_retry());
    server.fault_signed(Method::GET, Fault::Status(403, vec![]));
    assert!(store.get("k").await.unwrap().is_none());
    let seen: Vec<String> = server.take_seen().into_iter().map(|s| s.target).collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen[0].starts_with("/api/") && seen[2].starts_with("/api/"),
        "{seen:?}"
    );

    let store = server.api_store("s", quick_retry().max_attempts(6));
    for _ in 0..10 {
        server.fault_signed(Method::GET, Fault::Status(403, vec![]));
    }
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    // Six attempts, each a fresh signed URL and the refused request.
    let seen = server.take_seen();
    assert_eq!(seen.len(), 12);
    assert_eq!(
        seen.iter()
            .filter(|s| s.target.starts_with("/api/"))
            .count(),
        6
    );
}

#[tokio::test]
async fn a_streamed_write_is_never_sent_twice() {
    let server = FakeServer::start().await;
    let store = server.edge_store("s", quick_retry());
    server.fault(Method::PUT, Fault::Drop);
    let chunks = vec![Bytes::from(vec![1u8; 512 * 1024]); 4];
    let body: ByteStream = Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
    let err = store
        .set_stream("big", body, None, SetOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(count(&server, Method::PUT), 1);
}

#[tokio::test]
async fn no_retries_means_one_attempt() {
    let server = FakeServer::start().await;
    let store = server.edge_store("s", RetryPolicy::none());
    server.fault(Method::GET, Fault::Status(500, vec![]));
    assert_eq!(
        store.get("k").await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    assert_eq!(count(&server, Method::GET), 1);
    // In API mode one attempt is the signed-URL request and the data request together.
    let api = server.api_store("s", RetryPolicy::none());
    api.set("k", Bytes::from("v"), SetOptions::new())
        .await
        .unwrap();
    assert_eq!(api.get("k").await.unwrap().unwrap().value, "v");
    server.fault_signed(Method::GET, Fault::Status(403, vec![]));
    assert_eq!(
        api.get("k").await.unwrap_err().kind(),
        ErrorKind::Unauthorized
    );
}
