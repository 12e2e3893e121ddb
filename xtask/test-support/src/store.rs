//! Small helpers for tests that drive a `BlobStore`: an unconditional write, a whole listing,
//! streams in and out, the awkward keys every backend must keep apart, and a look for the
//! file backend's temporary files.

use std::path::{Path, PathBuf};

use blobjobs_store_api::validate::MAX_KEY_BYTES;
use blobjobs_store_api::{
    BlobStore, BlobStoreExt as _, ByteStream, Etag, ListOptions, SetOptions, SetOutcome,
};
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

/// Every blob key and directory of a listing, following cursors to the end.
pub async fn all_keys(store: &dyn BlobStore, options: ListOptions) -> (Vec<String>, Vec<String>) {
    let (blobs, dirs) = store.list_all_with_directories(options).await.unwrap();
    (blobs.into_iter().map(|e| e.key).collect(), dirs)
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

/// The conformance suite's awkward keys at the protocol's full key length (600 bytes):
/// valid keys that are easy to get wrong on the wire, on disk and in listings.
pub fn awkward_keys() -> Vec<String> {
    blobjobs_conformance::awkward_keys(MAX_KEY_BYTES)
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

/// Asserts that no file backend's temporary file (`.tmp…`) is left anywhere under `dir`.
pub fn assert_no_temp_files(dir: &Path) {
    let temps: Vec<PathBuf> = files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "temporary files left behind: {temps:?}");
}
