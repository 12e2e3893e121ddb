//! Bad requests get short 4xx answers that reach the client, never a 5xx, never a hang, never
//! an error in the server's log: a corpus of malformed and refused requests, each with the
//! status it must get, sent as raw bytes over TCP; and a property test that sends arbitrary
//! bytes and mutated requests through the server's path, query and header parsing.
//!
//! The property test runs 200 cases by default; `BLOBS_FUZZ_CASES` sets another number, for
//! example a longer run before a release:
//!
//! ```text
//! BLOBS_FUZZ_CASES=20000 cargo test -p blobjobs-emulator --test bad_requests -- --nocapture
//! ```
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use blobjobs_emulator::Config;
use common::raw::{Ending, Outcome, exchange, request};
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

// ---------------------------------------------------------------------------------------------
// The corpus

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// This status.
    Status(u16),
    /// The connection closed without a response: a request whose head never finished, which
    /// has nothing to answer.
    Closed,
}

struct Case {
    name: String,
    bytes: Vec<u8>,
    ending: Ending,
    expect: Expect,
}

struct Corpus(Vec<Case>);

impl Corpus {
    fn add(&mut self, name: impl Into<String>, bytes: Vec<u8>, status: u16) {
        self.with(name, bytes, Ending::HalfClose, Expect::Status(status));
    }

    fn with(&mut self, name: impl Into<String>, bytes: Vec<u8>, ending: Ending, expect: Expect) {
        self.0.push(Case {
            name: name.into(),
            bytes,
            ending,
            expect,
        });
    }
}

const BEARER: (&str, &str) = ("authorization", "Bearer test-token");
const KEY: &str = "/site-1/site:corpus/key";
/// Where the few odd requests that are accepted write.
const OTHER: &str = "/site-1/site:corpus/other";

fn authed(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut all = vec![BEARER];
    all.extend_from_slice(headers);
    request(method, target, &all, body)
}

/// A request framed by hand: `head` lines after the request line (with `Host` and the bearer
/// token), then the raw `body` bytes.
fn framed(method: &str, target: &str, head: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{method} {target} HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer {TOKEN}\r\n"
    )
    .into_bytes();
    for line in head {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn chunked(body: &[u8]) -> Vec<u8> {
    framed("PUT", KEY, &["transfer-encoding: chunked"], body)
}

fn corpus() -> Vec<Case> {
    let mut c = Corpus(Vec::new());
    let big = vec![b'x'; 1 << 20];

    // The request line.
    c.add(
        "two spaces after the method",
        b"GET  / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        400,
    );
    c.add("no version", b"GET /\r\nhost: x\r\n\r\n".to_vec(), 400);
    c.add(
        "unknown protocol",
        b"GET / FOO/1.1\r\nhost: x\r\n\r\n".to_vec(),
        400,
    );
    c.add(
        "version with junk",
        b"GET / HTTP/1.1x\r\nhost: x\r\n\r\n".to_vec(),
        400,
    );
    c.add(
        "NUL in the method",
        b"G\0T / HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        400,
    );
    c.add(
        "DEL in the target",
        b"GET /\x7f HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        400,
    );
    c.add(
        "space in the target",
        b"GET /a b HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        400,
    );
    c.add(
        "raw non-ASCII site",
        framed("GET", "/sité-1/site:corpus/k", &[], b""),
        400,
    );
    // Empty lines before a request are allowed (and skipped); then the client is gone.
    c.with(
        "empty lines only",
        b"\r\n\r\n".to_vec(),
        Ending::HalfClose,
        Expect::Closed,
    );
    c.add(
        "binary garbage",
        vec![0xff, 0xfe, 0x00, 0x01, b'\r', b'\n', b'\r', b'\n'],
        400,
    );
    c.add(
        "TLS hello to a plain port",
        vec![
            0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03, b'\r', b'\n', b'\r',
            b'\n',
        ],
        400,
    );
    c.add(
        "LF-only line ends with a bad target",
        b"GET %zz HTTP/1.1\nhost: x\n\n".to_vec(),
        400,
    );
    c.add(
        "target longer than a request head may be",
        request("GET", &format!("/{}", "a".repeat(70_000)), &[], b""),
        431,
    );
    c.add("lowercase method", authed("get", KEY, &[], b""), 405);
    c.add("extension method", authed("PROPFIND", KEY, &[], b""), 405);
    c.add("long method", authed(&"M".repeat(300), KEY, &[], b""), 405);
    c.add("asterisk target", authed("OPTIONS", "*", &[], b""), 405);
    c.add(
        "authority target",
        authed("CONNECT", "127.0.0.1:443", &[], b""),
        405,
    );
    c.add(
        "absolute target with a bad key",
        authed("GET", "http://127.0.0.1/site-1/site:corpus/%FF", &[], b""),
        400,
    );
    c.add(
        "HTTP/1.0 without credentials",
        b"GET /site-1/site:corpus/k HTTP/1.0\r\n\r\n".to_vec(),
        401,
    );

    // Headers hyper refuses.
    c.add(
        "header without a colon",
        framed("GET", KEY, &["nonsense"], b""),
        400,
    );
    c.add(
        "space before the colon",
        framed("GET", KEY, &["x-a : b"], b""),
        400,
    );
    c.add(
        "NUL in a header value",
        framed("GET", KEY, &["x-a: b\0c"], b""),
        400,
    );
    c.add(
        "folded header line",
        framed("GET", KEY, &["x-a: b", " c"], b""),
        400,
    );
    c.add(
        "header name with a slash",
        framed("GET", KEY, &["x/a: b"], b""),
        400,
    );
    let many: Vec<String> = (0..150).map(|i| format!("x-h{i}: v")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    c.add("too many headers", framed("GET", KEY, &many, b""), 431);
    let huge = format!("x-big: {}", "v".repeat(500_000));
    c.add(
        "header section too large",
        framed("GET", KEY, &[&huge], b""),
        431,
    );

    // Content length.
    for (name, value) in [
        ("letters", "abc"),
        ("negative", "-1"),
        ("plus sign", "+5"),
        ("past u64", "18446744073709551616"),
        ("hex", "0x10"),
        ("empty", ""),
        ("two values", "5, 6"),
    ] {
        let head = format!("content-length: {value}");
        c.add(
            format!("content-length {name}"),
            framed("PUT", KEY, &[&head], b"hello"),
            400,
        );
    }
    c.add(
        "two different content-lengths",
        framed(
            "PUT",
            KEY,
            &["content-length: 5", "content-length: 6"],
            b"hello!",
        ),
        400,
    );
    c.add(
        "content-length over the limit",
        framed("PUT", KEY, &["content-length: 2000"], &[b'x'; 2000]),
        413,
    );
    c.add(
        "content-length far over the limit, 1 MiB sent",
        framed("PUT", KEY, &["content-length: 10000000000"], &big),
        413,
    );
    c.add(
        "over the limit with expect: 100-continue",
        framed(
            "PUT",
            KEY,
            &["content-length: 5000", "expect: 100-continue"],
            b"",
        ),
        413,
    );
    c.add(
        "body shorter than its content-length",
        framed("PUT", KEY, &["content-length: 100"], b"short"),
        400,
    );
    c.with(
        "body shorter than its content-length, sender stalls",
        framed("PUT", KEY, &["content-length: 100"], b"short"),
        Ending::KeepOpen,
        Expect::Status(408),
    );
    c.add(
        "content-length body too large, body sent",
        framed("PUT", KEY, &["content-length: 1025"], &[b'x'; 1025]),
        413,
    );

    // Transfer encodings.
    for coding in [
        "gzip",
        "gzip, chunked",
        "chunked, gzip",
        "identity",
        "deflate",
        "chunked, chunked",
        "br",
        "x-custom",
        "gzip,chunked",
    ] {
        let head = format!("transfer-encoding: {coding}");
        c.add(
            format!("transfer-encoding {coding}"),
            framed("PUT", KEY, &[&head], b"5\r\nhello\r\n0\r\n\r\n"),
            400,
        );
    }
    c.add(
        "two transfer-encoding headers",
        framed(
            "PUT",
            KEY,
            &["transfer-encoding: gzip", "transfer-encoding: chunked"],
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
        400,
    );
    // Framed by transfer-encoding alone, and the connection closes after (RFC 9112, 6.3).
    c.add(
        "transfer-encoding and content-length",
        framed(
            "PUT",
            OTHER,
            &["transfer-encoding: chunked", "content-length: 5"],
            b"5\r\nhello\r\n0\r\n\r\n",
        ),
        200,
    );

    // Chunked bodies.
    c.add(
        "chunk size not hex",
        chunked(b"zz\r\nhello\r\n0\r\n\r\n"),
        400,
    );
    c.add(
        "chunk size overflows",
        chunked(b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
        400,
    );
    c.add(
        "chunk size 2^64",
        chunked(b"10000000000000000\r\nhello\r\n0\r\n\r\n"),
        400,
    );
    c.add(
        "negative chunk size",
        chunked(b"-5\r\nhello\r\n0\r\n\r\n"),
        400,
    );
    c.add("empty chunk size", chunked(b"\r\nhello\r\n0\r\n\r\n"), 400);
    c.add(
        "chunk size with a space inside",
        chunked(b"1 0\r\nhello\r\n0\r\n\r\n"),
        400,
    );
    c.add(
        "chunk data longer than its size",
        chunked(b"3\r\nhello\r\n0\r\n\r\n"),
        400,
    );
    c.add(
        "chunk without its CRLF",
        chunked(b"5\r\nhelloX0\r\n\r\n"),
        400,
    );
    // Chunk extensions mean nothing to the protocol and are skipped whatever they hold; the
    // value arrives whole.
    c.add(
        "chunk extension with a NUL",
        framed(
            "PUT",
            OTHER,
            &["transfer-encoding: chunked"],
            b"5;\0\r\nhello\r\n0\r\n\r\n",
        ),
        200,
    );
    c.add("last chunk missing", chunked(b"5\r\nhello\r\n"), 400);
    c.add("chunk cut short", chunked(b"a\r\nhello"), 400);
    c.add("size line cut short", chunked(b"5"), 400);
    c.add(
        "trailer cut short",
        chunked(b"5\r\nhello\r\n0\r\nx-t: 1"),
        400,
    );
    c.with(
        "last chunk missing, sender stalls",
        chunked(b"5\r\nhello\r\n"),
        Ending::KeepOpen,
        Expect::Status(408),
    );
    c.with(
        "chunk cut short, sender stalls",
        chunked(b"a\r\nhello"),
        Ending::KeepOpen,
        Expect::Status(408),
    );
    c.add(
        "chunked body over the limit",
        chunked(&[b"800\r\n".as_slice(), &[b'x'; 0x800], b"\r\n0\r\n\r\n"].concat()),
        413,
    );
    c.add(
        "chunk size far over the limit, 1 MiB sent",
        chunked(&[b"ffffffff\r\n".as_slice(), &big].concat()),
        413,
    );

    // Paths.
    for (name, path, status) in [
        // A `%` that starts no escape stays a `%`, as the official client sends it: these
        // are odd keys, not bad ones, and they are absent.
        ("lone percent", "/site-1/site:corpus/%", 404),
        ("percent with bad hex", "/site-1/site:corpus/%G0", 404),
        ("encoded NUL in the key", "/site-1/site:corpus/%00", 404),
        ("key not UTF-8", "/site-1/site:corpus/%FF", 400),
        ("empty key", "/site-1/site:corpus/", 400),
        (
            "key over 600 bytes",
            &format!("/site-1/site:corpus/{}", "k".repeat(601)),
            400,
        ),
        (
            "encoded slash leading the key",
            "/site-1/site:corpus/%2Fa",
            400,
        ),
        ("empty store name", "/site-1/site:/k", 400),
        ("store name with a slash", "/site-1/site:a%2Fb/k", 400),
        ("deploy store with a bad ID", "/site-1/deploy:bad-id/k", 400),
        ("deploy store without an ID", "/site-1/deploy:/k", 400),
        ("site not UTF-8", "/%FF/site:corpus/k", 400),
        ("site starting with a dot", "/.hidden/site:corpus/k", 400),
        ("site with an escape", "/site%2F1/site:corpus/k", 400),
        (
            "store name too long",
            &format!("/site-1/site:{}/k", "s".repeat(2000)),
            400,
        ),
        ("API path without a site", "/api/v1/blobs/", 404),
        (
            "API path with a bad store",
            "/api/v1/blobs/site-1/site:/k",
            400,
        ),
        ("region without a site", "/region:us-east-1", 404),
        ("root", "/", 404),
        (
            "reserved prefix, unknown route",
            "/.well-known/blobs-emulator/nope",
            404,
        ),
        (
            "reserved prefix, traversal",
            "/.well-known/blobs-emulator/../health",
            404,
        ),
    ] {
        c.add(
            format!("path: {name}"),
            authed("GET", path, &[], b""),
            status,
        );
    }
    c.add(
        "PUT to a bad key with a 1 MiB body",
        authed("PUT", "/site-1/site:corpus/%FF", &[], &big),
        400,
    );
    c.add(
        "POST to the health route",
        authed("POST", "/.well-known/blobs-emulator/health", &[], b""),
        405,
    );

    // Queries.
    for (name, query, status) in [
        ("prefix not UTF-8", "prefix=%FF", 400),
        ("cursor not base64", "cursor=%2A%2A", 400),
        ("cursor of another kind", "cursor=eHl6", 400),
        ("directories not a boolean", "directories=maybe", 400),
        ("lone percent (a literal prefix)", "prefix=%", 200),
    ] {
        c.add(
            format!("store listing query: {name}"),
            authed("GET", &format!("/site-1/site:corpus?{query}"), &[], b""),
            status,
        );
    }
    // An unquoted ETag matches no blob: the condition fails.
    c.add(
        "PUT with if-match without quotes",
        authed("PUT", KEY, &[("if-match", "abc")], b"value"),
        412,
    );
    c.add(
        "site listing with a bad cursor",
        authed("GET", "/api/v1/blobs/site-1?cursor=%2A", &[], b""),
        400,
    );
    c.add(
        "raw space in a query",
        authed("GET", "/site-1/site:corpus?prefix=a b", &[], b""),
        400,
    );

    // Metadata and conditions.
    let long_meta = format!("b64;{}", "e30".repeat(2000));
    for (name, header, value) in [
        ("metadata not base64", "x-amz-meta-user", "b64;!!!"),
        ("metadata not JSON", "x-amz-meta-user", "b64;bm90IGpzb24"),
        ("metadata not an object", "x-amz-meta-user", "b64;WzFd"),
        ("metadata without its prefix", "x-amz-meta-user", "e30="),
        ("metadata too large", "x-amz-meta-user", long_meta.as_str()),
        (
            "netlify metadata not base64",
            "netlify-blobs-metadata",
            "b64;%%%",
        ),
        ("if-none-match other than *", "if-none-match", "\"abc\""),
    ] {
        c.add(
            format!("PUT with {name}"),
            authed("PUT", KEY, &[(header, value)], b"value"),
            400,
        );
    }

    // Credentials, on every kind of route, with and without a body to refuse.
    let routes = [
        ("key, edge", KEY),
        ("key, API", "/api/v1/blobs/site-1/site:corpus/key"),
        ("store", "/site-1/site:corpus"),
        ("site", "/api/v1/blobs/site-1"),
    ];
    let credentials: [(&str, Option<&str>, u16); 5] = [
        ("no credentials", None, 401),
        ("a wrong token", Some("Bearer wrong"), 403),
        ("an empty bearer", Some("Bearer "), 403),
        ("basic auth", Some("Basic dXNlcjpwYXNz"), 403),
        ("the token without the scheme", Some(TOKEN), 403),
    ];
    for (route, path) in routes {
        for (who, auth, status) in credentials {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            c.add(
                format!("GET {route} with {who}"),
                request("GET", path, &headers, b""),
                status,
            );
            c.add(
                format!("PUT {route} with {who} and a 1 MiB body"),
                request("PUT", path, &headers, &big),
                status,
            );
        }
    }
    for (name, query) in [
        ("a wrong signature", "expires=99999999999&signature=00"),
        ("an expired signature", "expires=1&signature=00"),
        ("a signature without expiry", "signature=00"),
        (
            "an expiry that is not a number",
            "expires=soon&signature=00",
        ),
    ] {
        c.add(
            format!("GET with {name}"),
            request("GET", &format!("{KEY}?{query}"), &[], b""),
            403,
        );
        c.add(
            format!("PUT with {name} and a 1 MiB body"),
            request("PUT", &format!("{KEY}?{query}"), &[], &big),
            403,
        );
    }

    // Methods a route does not serve.
    for method in ["POST", "PATCH", "OPTIONS", "TRACE"] {
        for (route, path) in routes {
            c.add(
                format!("{method} on {route}"),
                authed(method, path, &[], b""),
                405,
            );
        }
    }
    c.add(
        "PUT on a store",
        authed("PUT", "/site-1/site:corpus", &[], b"v"),
        405,
    );
    c.add(
        "DELETE on a site",
        authed("DELETE", "/api/v1/blobs/site-1", &[], b""),
        405,
    );

    // Requests whose head never ends: nothing to answer, the connection closes.
    c.with(
        "head cut short",
        b"GET /site-1/site:corpus/k HTTP/1.1\r\nhost: x\r\n".to_vec(),
        Ending::HalfClose,
        Expect::Closed,
    );
    c.with(
        "head cut short, sender stalls",
        b"GET /site-1/site:corpus/k HTTP/1.1\r\nhost: x\r\n".to_vec(),
        Ending::KeepOpen,
        Expect::Closed,
    );
    c.with(
        "request line cut short, sender stalls",
        b"GET /site-1".to_vec(),
        Ending::KeepOpen,
        Expect::Closed,
    );

    c.0
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
