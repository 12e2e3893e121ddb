//! Small helpers for tests that drive a `BlobStore`: an unconditional write, a whole listing,
//! streams in and out, and the awkward keys every backend must keep apart.
//!
//! Included by path from several test binaries, each of which uses a different part.
#![allow(dead_code)]

use blobjobs_store_api::{BlobStore, ByteStream, Etag, ListOptions, SetOptions, SetOutcome};
use bytes::Bytes;
use futures_util::StreamExt as _;

/// Writes `value` under `key` unconditionally and returns the new ETag.
pub async fn put(store: &dyn BlobStore, key: &str, value: &[u8]) -> Etag {
    match store
        .set(key, Bytes::copy_from_slice(value), SetOptions::new())
        .await
        .unwrap()
    {
        SetOutcome::Written { etag } => etag,
        SetOutcome::ConditionFailed => panic!("unconditional set of {key:?} was refused"),
    }
}

/// Every blob key and directory of a listing, following cursors to the end (at most 10,000
/// pages, so that a cursor that never ends fails the test instead of hanging it).
pub async fn all_keys(store: &dyn BlobStore, options: ListOptions) -> (Vec<String>, Vec<String>) {
    let mut blobs = Vec::new();
    let mut dirs = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let page = store.list(options.clone().cursor(cursor)).await.unwrap();
        blobs.extend(page.blobs.into_iter().map(|e| e.key));
        dirs.extend(page.directories);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return (blobs, dirs);
        }
    }
    panic!("listing never ended");
}

/// A stream that yields `chunks` in order.
pub fn stream_of(chunks: Vec<Bytes>) -> ByteStream {
    Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))
}

/// All the bytes of `stream`, or its first error.
pub async fn collect(mut stream: ByteStream) -> blobjobs_store_api::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// Valid keys that are easy to get wrong: siblings that are prefixes of each other,
/// characters with a meaning in URLs, paths or shells, percent signs that look like escapes,
/// dot segments, repeated and trailing slashes, control characters, unicode, case, and the
/// longest keys (600 bytes, also as one 2-byte character repeated and as two long segments).
pub fn awkward_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "a",
        "a/b",
        "a/b/c",
        "a b",
        "a%b",
        "a%20b",
        "a%2Fb",
        "%41",
        "A",
        "a?b",
        "a#b",
        "a+b",
        "a;b*c",
        "q\"<>^`{}|",
        "..",
        ".",
        "...",
        "../x",
        "x/../y",
        "./z",
        "z/.",
        "dot.",
        "a//b",
        "ü/ß",
        "ü/é",
        "日本語",
        "emoji-😀",
        "😀",
        "trailing/",
        "-",
        "_",
        "~",
        "a.b",
        "a.b.b",
        "\\",
        "a\\b",
        "nul\u{0}byte",
        "x\ny",
        "tab\there",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    keys.push("k".repeat(600));
    keys.push("%".repeat(600));
    keys.push("ü".repeat(300));
    keys.push(format!("{}/{}", "d".repeat(250), "e".repeat(349)));
    keys.push("K".repeat(600));
    keys
}
