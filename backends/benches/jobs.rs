//! Job benchmarks: create, claim, succeed and get through `blobjobs_store_api::BlobJobStore` (the one
//! job layer, compare-and-swap on every change) over the memory store and the file store,
//! durable and without fsync.
//!
//! Run with `cargo bench -p blobjobs-backends --bench jobs` (or all benchmarks with
//! `cargo xtask bench`). Medians are in
//! `target/criterion/<group>/job_<operation>/new/estimates.json`.
//!
//! The benchmark bodies live in `blobjobs_test_support::bench`, shared with the emulator's
//! HTTP bench.

use std::sync::Arc;

use blobjobs_backends::{FileOptions, FileStore, MemoryStore};
use blobjobs_store_api::BlobStore;
use blobjobs_test_support::bench::bench_job_ops;
use criterion::{Criterion, criterion_group, criterion_main};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("no tokio runtime: {e}"))
}

fn jobs(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("no temp dir: {e}"));
    let open = |name: &str, fsync: bool| -> Arc<dyn BlobStore> {
        let opened = FileStore::open(dir.path(), name, FileOptions { fsync });
        Arc::new(opened.unwrap_or_else(|e| panic!("cannot open the file store: {e}")))
    };
    // The durable store goes last: its fsyncs keep the disk busy for a while after they
    // return, which would slow the store without fsync.
    bench_job_ops(c, &rt, "file_nosync", open("jobs-nosync", false));
    bench_job_ops(c, &rt, "memory", Arc::new(MemoryStore::new()));
    bench_job_ops(c, &rt, "file_durable", open("jobs-durable", true));
}

criterion_group! {
    name = benches;
    config = blobjobs_test_support::bench::criterion_config();
    targets = jobs
}
criterion_main!(benches);
