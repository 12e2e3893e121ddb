//! Large values stream through the file backend in bounded memory. This is its own test
//! binary so that the peak memory it measures is its own.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use blobjobs_backends::{FileOptions, FileStore};
use blobjobs_store_api::{BlobStore, ByteStream, SetOptions};
use bytes::Bytes;
use futures_util::StreamExt;

const GIB: u64 = 1024 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;

/// The peak resident set size of this process so far, in bytes (Linux only).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn chunk(i: u64) -> Bytes {
    // Each chunk starts with its index, so a reordered or repeated chunk would show.
    let mut c = vec![0xa5u8; CHUNK];
    c[..8].copy_from_slice(&i.to_le_bytes());
    Bytes::from(c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_gib_streams_in_and_out_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), "large", FileOptions::default()).unwrap();
    let chunks = GIB / CHUNK as u64;
    let body: ByteStream = Box::pin(futures_util::stream::iter(0..chunks).map(|i| Ok(chunk(i))));
    let outcome = store
        .set_stream("big", body, Some(GIB), SetOptions::new())
        .await
        .unwrap();
    assert!(outcome.is_written());

    let (info, mut stream) = store.get_stream("big").await.unwrap().unwrap();
    assert_eq!(info.size, GIB);
    let mut read: u64 = 0;
    let mut pending = Vec::new();
    let mut next_chunk = 0u64;
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        read += piece.len() as u64;
        // The stream's chunking need not match the writer's; check whole chunks as they form.
        pending.extend_from_slice(&piece);
        while pending.len() >= CHUNK {
            assert!(
                pending[..CHUNK] == chunk(next_chunk)[..],
                "chunk {next_chunk} differs"
            );
            pending.drain(..CHUNK);
            next_chunk += 1;
        }
    }
    assert_eq!(read, GIB);
    assert_eq!(next_chunk, chunks);
    if let Some(peak) = peak_rss() {
        eprintln!("peak RSS after 1 GiB in and out: {} MiB", peak >> 20);
        assert!(peak < 100 * 1024 * 1024, "peak RSS was {} MiB", peak >> 20);
    }
}
