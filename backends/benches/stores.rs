//! Store benchmarks: set, get, compare-and-swap, a 1,000-key listing and a whole listing of
//! 10,000 keys on the memory store and the file store (durable and without fsync), plus the
//! disk's own limit measured in the same run: a raw loop of temporary file, write, fsync,
//! rename, fsync directory.
//!
//! Run with `cargo bench -p blobjobs-backends --bench stores` (or all benchmarks with
//! `cargo xtask bench`). Medians are in
//! `target/criterion/<group>/<bench>/new/estimates.json`.
//!
//! A disk's fsync latency drifts a lot from second to second on shared machines, so comparing
//! two benchmarks run one after the other says little. After the criterion benchmarks, a
//! paired run therefore alternates the raw loop and a durable `FileStore::set` op by op and
//! prints both medians and their ratio (and writes them as JSON to the file named by
//! `BENCH_PAIRED_OUT`, when set).
//!
//! The store benchmark bodies live in `blobjobs_test_support::bench`, shared with the
//! emulator's HTTP bench.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use blobjobs_backends::{FileOptions, FileStore, MemoryStore};
use blobjobs_store_api::{BlobStore, SetOptions};
use blobjobs_test_support::bench::{
    BlobStores, LIST_KEYS, LIST_KEYS_LARGE, VALUE_BYTES, bench_blob_ops, fill, ok, value,
};
use criterion::{Criterion, criterion_group};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("no tokio runtime: {e}"))
}

/// The disk's limit for one durable small write, done by hand with no store around it.
fn raw_durable_write(dir: &Path, payload: &[u8]) {
    let temp = dir.join(".tmp-raw");
    let target = dir.join("raw.b");
    let mut file = File::create(&temp).unwrap_or_else(|e| panic!("create: {e}"));
    file.write_all(payload)
        .unwrap_or_else(|e| panic!("write: {e}"));
    file.sync_all().unwrap_or_else(|e| panic!("fsync: {e}"));
    drop(file);
    fs::rename(&temp, &target).unwrap_or_else(|e| panic!("rename: {e}"));
    File::open(dir)
        .and_then(|d| d.sync_all())
        .unwrap_or_else(|e| panic!("fsync dir: {e}"));
}

fn stores(c: &mut Criterion) {
    let rt = runtime();
    // The system temporary directory holds every file store and the raw loop, so all of
    // them measure the same disk.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
    let durable = FileOptions { fsync: true };
    let nosync = FileOptions { fsync: false };
    let open = |name: &str, options| -> Arc<dyn BlobStore> {
        Arc::new(ok(FileStore::open(dir.path(), name, options)))
    };

    // The listed stores are filled once, quickly; listing does not depend on fsync.
    let memory_listed: Arc<dyn BlobStore> = Arc::new(MemoryStore::new());
    let file_listed = open("listed", nosync);
    let memory_listed_large: Arc<dyn BlobStore> = Arc::new(MemoryStore::new());
    let file_listed_large = open("listed-large", nosync);
    rt.block_on(async {
        for store in [&memory_listed, &file_listed] {
            fill(store, LIST_KEYS, value()).await;
        }
        for store in [&memory_listed_large, &file_listed_large] {
            fill(store, LIST_KEYS_LARGE, value()).await;
        }
    });

    let subjects = [
        (
            "file_durable",
            BlobStores {
                point: open("durable", durable),
                listed: open("listed", durable),
                listed_large: open("listed-large", durable),
            },
        ),
        (
            "file_nosync",
            BlobStores {
                point: open("nosync", nosync),
                listed: file_listed,
                listed_large: file_listed_large,
            },
        ),
        (
            "memory",
            BlobStores {
                point: Arc::new(MemoryStore::new()),
                listed: memory_listed,
                listed_large: memory_listed_large,
            },
        ),
    ];
    // The raw loop runs just before the durable store, the nearest in time it can be.
    let raw_dir = dir.path().join("raw");
    fs::create_dir_all(&raw_dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let payload = vec![0x5a; VALUE_BYTES];
    let mut group = c.benchmark_group("raw_disk");
    group.bench_function("tmp_write_fsync_rename_fsyncdir_1k", |b| {
        b.iter(|| raw_durable_write(&raw_dir, &payload));
    });
    group.finish();
    for (group, stores) in &subjects {
        bench_blob_ops(c, &rt, group, stores);
    }
}

/// Alternates one raw durable write and one durable `set`, `PAIRS` times, and prints the
/// medians and the throughput ratio of `set` to the raw loop.
fn paired_set_versus_raw() {
    const PAIRS: usize = 100;
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
    let raw_dir = dir.path().join("raw");
    fs::create_dir_all(&raw_dir).unwrap_or_else(|e| panic!("mkdir: {e}"));
    let store = ok(FileStore::open(
        dir.path(),
        "paired",
        FileOptions { fsync: true },
    ));
    let payload = vec![0x5a; VALUE_BYTES];
    let v = value();
    let mut raw = Vec::with_capacity(PAIRS);
    let mut set = Vec::with_capacity(PAIRS);
    for i in 0..PAIRS + 10 {
        let time_raw = || {
            let start = Instant::now();
            raw_durable_write(&raw_dir, &payload);
            start.elapsed()
        };
        let time_set = || {
            let start = Instant::now();
            rt.block_on(async { ok(store.set("paired", v.clone(), SetOptions::new()).await) });
            start.elapsed()
        };
        // Alternate which goes first, so that neither always follows the other's fsync.
        let (r, s) = if i % 2 == 0 {
            let r = time_raw();
            (r, time_set())
        } else {
            let s = time_set();
            (time_raw(), s)
        };
        // The first rounds only warm up.
        if i >= 10 {
            raw.push(r);
            set.push(s);
        }
    }
    raw.sort_unstable();
    set.sort_unstable();
    let (raw_median, set_median) = (raw[PAIRS / 2], set[PAIRS / 2]);
    let ratio = raw_median.as_secs_f64() / set_median.as_secs_f64();
    println!(
        "paired durable 1 KiB write, {PAIRS} pairs: raw loop median {raw_median:?}, \
         FileStore::set median {set_median:?}, set/raw throughput ratio {ratio:.2}"
    );
    if let Some(path) = std::env::var_os("BENCH_PAIRED_OUT") {
        let json = serde_json::json!({
            "pairs": PAIRS,
            "raw_median_ns": raw_median.as_nanos() as u64,
            "set_median_ns": set_median.as_nanos() as u64,
            "set_over_raw_throughput": ratio,
        });
        fs::write(&path, json.to_string()).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
    }
}

criterion_group! {
    name = benches;
    config = blobjobs_test_support::bench::criterion_config();
    targets = stores
}

fn main() {
    benches();
    // `cargo bench` passes `--bench`; `cargo test --benches` does not and only smoke-tests
    // each benchmark once, so the paired run is skipped there.
    if std::env::args().any(|a| a == "--bench") {
        paired_set_versus_raw();
    }
    Criterion::default().configure_from_args().final_summary();
}
