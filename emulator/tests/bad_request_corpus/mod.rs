//! The corpus of bad requests for `tests/bad_requests.rs`: malformed and refused requests
//! framed by hand, each with the status it must get (or a closed connection), grouped by the
//! part of the request that is wrong.

use crate::common::TOKEN;
use crate::common::raw::{Ending, request};

/// What a case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// This status.
    Status(u16),
    /// The connection closed without a response: a request whose head never finished, which
    /// has nothing to answer.
    Closed,
}

pub struct Case {
    pub name: String,
    pub bytes: Vec<u8>,
    pub ending: Ending,
    pub expect: Expect,
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
pub const KEY: &str = "/site-1/site:corpus/key";
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

pub fn corpus() -> Vec<Case> {
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
