//! Bad requests get short 4xx answers that reach the client, never a 5xx, never a hang, never
//! an error in the server's log: a corpus of malformed and refused requests, each with the
//! status it must get, sent as raw bytes over TCP; and a property test that sends arbitrary
//! bytes and mutated requests through the server's path, query and header parsing.
//! The corpus itself is in `bad_request_corpus/`.
//!
//! The property test runs 200 cases by default; `BLOBS_FUZZ_CASES` sets another number, for
//! example a longer run before a release:
//!
//! ```text
//! BLOBS_FUZZ_CASES=20000 cargo test -p blobjobs-emulator --test bad_requests -- --nocapture
//! ```
#![allow(clippy::unwrap_used)]

mod bad_request_corpus;
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use bad_request_corpus::{Case, Expect, KEY, corpus};
use blobjobs_emulator::Config;
use common::raw::{Ending, Outcome, exchange};
use common::{TOKEN, TestServer};
use proptest::prelude::*;

/// The largest value the corpus server accepts.
const MAX: usize = 1024;
/// The server's header and idle timeouts: short, so that stalled clients are answered soon.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long a case may wait for its answer: a stalled case gets one after `TIMEOUT`.
const LIMIT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// The server's log: every event at error level, counted for the whole test binary.

static ERRORS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

struct ErrorLog;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for ErrorLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if *event.metadata().level() == tracing::Level::ERROR {
            let mut text = String::new();
            event.record(
                &mut |field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
                    text.push_str(&format!("{}={value:?} ", field.name()));
                },
            );
            ERRORS
                .get_or_init(Mutex::default)
                .lock()
                .unwrap()
                .push(text);
        }
    }
}

fn capture_errors() {
    use tracing_subscriber::layer::SubscriberExt as _;
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(ErrorLog);
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

fn logged_errors() -> Vec<String> {
    ERRORS.get_or_init(Mutex::default).lock().unwrap().clone()
}

async fn corpus_server() -> TestServer {
    capture_errors();
    common::file_server(|c: Config| {
        c.max_blob_size(MAX as u64)
            .header_timeout(TIMEOUT)
            .idle_timeout(TIMEOUT)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_gets_its_status_and_none_a_5xx_or_a_hang() {
    let server = corpus_server().await;
    // A value that the failed writes must leave alone.
    let kept = server.put(KEY, "kept").await;
    assert_eq!(kept.status, 200);

    let cases = corpus();
    let total = cases.len();
    assert!(total >= 150, "only {total} cases");
    let addr = server.addr;
    let results: Vec<(Case, Outcome)> = futures_util::stream::iter(cases)
        .map(|case| async move {
            let outcome = exchange(addr, &case.bytes, case.ending, LIMIT).await;
            (case, outcome)
        })
        .buffer_unordered(16)
        .collect()
        .await;

    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    let (mut server_errors, mut hangs) = (0, 0);
    for (case, outcome) in &results {
        let got = match outcome {
            Outcome::Response(answer) => {
                if answer.status >= 500 {
                    server_errors += 1;
                }
                // Every refusal of the emulator's says why, briefly, in plain text. (hyper
                // answers requests it cannot parse with a bare status and no content type.)
                let text = String::from_utf8_lossy(&answer.body);
                let ours = answer.header("content-type").is_some();
                if answer.status >= 400 && ours && (text.trim().is_empty() || text.len() > 300) {
                    wrong.push(format!("{}: body {text:?}", case.name));
                }
                Expect::Status(answer.status)
            }
            Outcome::Hang => {
                hangs += 1;
                wrong.push(format!("{}: no answer within {LIMIT:?}", case.name));
                continue;
            }
            Outcome::Closed => Expect::Closed,
            Outcome::Reset | Outcome::Refused => {
                wrong.push(format!("{}: {outcome:?}", case.name));
                continue;
            }
        };
        *by_status.entry(format!("{got:?}")).or_default() += 1;
        if got != case.expect {
            wrong.push(format!(
                "{}: expected {:?}, got {outcome:?}",
                case.name, case.expect
            ));
        }
    }
    println!(
        "bad-request corpus: {total} cases, by outcome {by_status:?}, {server_errors} × 5xx, {hangs} hangs"
    );
    assert!(
        wrong.is_empty(),
        "{} of {total} cases wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!((server_errors, hangs), (0, 0));
    assert_eq!(
        server.get(KEY).await.text(),
        "kept",
        "a refused write changed the value"
    );
    let errors = logged_errors();
    assert!(
        errors.is_empty(),
        "bad requests were logged as errors: {errors:?}"
    );
    server.stop().await.unwrap();
}

/// A client that gives up in the middle of its upload is no error of the server's: the old
/// value stays, no temporary file is left, and nothing is logged at error level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_upload_keeps_the_old_value_and_logs_no_error() {
    let server = corpus_server().await;
    let path = "/site-1/site:aborts/key";
    assert_eq!(server.put(path, "old").await.status, 200);
    for (sent, reset) in [
        (10usize, false),
        (100_000, true),
        (300_000, false),
        (300_000, true),
    ] {
        let head = format!(
            "PUT {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\ncontent-length: 1000000\r\n\r\n"
        );
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        use tokio::io::AsyncWriteExt as _;
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&vec![b'n'; sent]).await.unwrap();
        if reset {
            // Gone without a word: a zero linger makes the kernel reset the connection (and,
            // being zero, never blocks the thread, which the deprecation warns of).
            #[allow(deprecated)]
            stream.set_linger(Some(Duration::ZERO)).unwrap();
        }
        drop(stream);
    }
    // The server notices at its next read; give it a moment.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let temps = blobjobs_test_support::files_under(server.data_dir().unwrap())
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
            .count();
        if temps == 0 || std::time::Instant::now() > deadline {
            assert_eq!(temps, 0, "temporary files left by aborted uploads");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.get(path).await.text(), "old");
    let errors = logged_errors();
    assert!(
        errors.is_empty(),
        "aborted uploads were logged as errors: {errors:?}"
    );
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Raw bytes

static CASES_RUN: AtomicUsize = AtomicUsize::new(0);

fn fuzz_cases() -> u32 {
    std::env::var("BLOBS_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200)
}

/// A well-formed request, to be mutated.
fn seed() -> impl Strategy<Value = Vec<u8>> {
    let method = prop::sample::select(vec!["GET", "HEAD", "PUT", "DELETE", "POST"]);
    let path = prop::sample::select(vec![
        "/site-1/site:fuzz/k",
        "/api/v1/blobs/site-1/site:fuzz/k%20x",
        "/region:us-east-1/site-1/deploy:abc123/k",
        "/site-1/site:fuzz",
        "/api/v1/blobs/site-1",
        "/.well-known/blobs-emulator/health",
    ]);
    let query = prop::sample::select(vec![
        "",
        "?prefix=a%2F&directories=true",
        "?cursor=a2V5",
        "?expires=1&signature=ab",
    ]);
    let header = prop::sample::select(vec![
        "authorization: Bearer test-token",
        "authorization: Bearer nope",
        "x-amz-meta-user: b64;eyJhIjoxfQ==",
        "netlify-blobs-metadata: b64;e30=",
        "if-match: \"abc\"",
        "if-none-match: *",
        "accept: application/json;type=signed-url",
        "content-length: 5",
        "transfer-encoding: chunked",
        "expect: 100-continue",
        "connection: close",
    ]);
    (method, path, query, prop::collection::vec(header, 0..5)).prop_map(|(m, p, q, headers)| {
        let mut out = format!("{m} {p}{q} HTTP/1.1\r\nhost: 127.0.0.1\r\n");
        for h in headers {
            out.push_str(h);
            out.push_str("\r\n");
        }
        out.push_str("\r\nhello");
        out.into_bytes()
    })
}

/// A seed with bytes overwritten, inserted or removed at random places.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), any::<u8>(), 0u8..3);
    (seed(), prop::collection::vec(edit, 1..6)).prop_map(|(mut bytes, edits)| {
        for (at, byte, how) in edits {
            let i = at.index(bytes.len() + 1);
            match how {
                0 if i < bytes.len() => bytes[i] = byte,
                1 if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, byte),
            }
        }
        bytes
    })
}

fn raw_request() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => mutated(),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: fuzz_cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Any bytes at all: the server answers below 500 or closes the connection, within the
    /// time limit, and logs no error.
    #[test]
    fn arbitrary_bytes_never_get_a_5xx_or_a_hang(bytes in raw_request()) {
        let runtime = runtime();
        let outcome = runtime.block_on(async {
            let server = shared_server().await;
            exchange(server, &bytes, Ending::HalfClose, LIMIT).await
        });
        CASES_RUN.fetch_add(1, Ordering::Relaxed);
        let shown = String::from_utf8_lossy(&bytes).into_owned();
        match &outcome {
            Outcome::Response(answer) => prop_assert!(answer.status < 500, "{shown:?} -> {outcome:?}"),
            Outcome::Closed | Outcome::Reset => {}
            Outcome::Hang | Outcome::Refused => prop_assert!(false, "{shown:?}: {outcome:?}"),
        }
        let errors = logged_errors();
        prop_assert!(errors.is_empty(), "{shown:?} was logged as an error: {errors:?}");
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// One server for every case of the property test, on the shared runtime.
async fn shared_server() -> std::net::SocketAddr {
    static SERVER: tokio::sync::OnceCell<TestServer> = tokio::sync::OnceCell::const_new();
    SERVER.get_or_init(corpus_server).await.addr
}

use futures_util::StreamExt as _;
