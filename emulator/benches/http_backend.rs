//! `HttpStore` benchmarks through the emulator: set, get, compare-and-swap, a 1,000-key listing
//! and a whole listing of 10,000 keys, and the job operations (create, claim, succeed, get
//! through `blobjobs_store_api::BlobJobStore`), all over a real loopback socket.
//!
//! Run with `cargo bench -p blobjobs-emulator --bench http_backend` (or all benchmarks with
//! `cargo xtask bench`). The emulator serves in this process, on 127.0.0.1 with a free port,
//! over in-memory storage, so the figures are the cost of the client, the protocol and the
//! server, not of a disk (the `stores` and `jobs` benchmarks of `backends` measure the disk).
//! Medians are in `target/criterion/http_emulator/<bench>/new/estimates.json`.

use std::sync::Arc;
use std::time::Duration;

use blobjobs_backends::http::{HttpConfig, Token};
use blobjobs_backends::{Catalog, HttpStore};
use blobjobs_store_api::{BlobStore, ListOptions, SetOptions};
use bytes::Bytes;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};

#[path = "../../backends/benches/support/job_ops.rs"]
mod job_ops;

use job_ops::bench_job_ops;

const TOKEN: &str = "bench-token";
const SITE: &str = "bench-site";
const GROUP: &str = "http_emulator";
const VALUE_BYTES: usize = 1024;
const LIST_KEYS: usize = 1000;
const LIST_KEYS_LARGE: usize = 10_000;
/// Concurrent requests that fill the listed stores.
const FILL_TASKS: usize = 16;

fn ok<T>(result: blobjobs_store_api::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("store operation failed: {e}"))
}

fn value() -> Bytes {
    Bytes::from(vec![0x5a; VALUE_BYTES])
}

/// A new client of the store `name` on the emulator at `url`.
fn client(url: &str, name: &str) -> Arc<dyn BlobStore> {
    let opened = HttpConfig::edge(url, SITE, Token::new(TOKEN), name).and_then(HttpStore::new);
    Arc::new(ok(opened))
}

/// Writes `count` small keys into `store` over [`FILL_TASKS`] concurrent requests.
async fn fill(store: &Arc<dyn BlobStore>, count: usize) {
    let mut tasks = Vec::new();
    for t in 0..FILL_TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..count).step_by(FILL_TASKS) {
                let key = format!("item/{i:05}");
                ok(store
                    .set(&key, Bytes::from_static(b"v"), SetOptions::new())
                    .await);
            }
        }));
    }
    for task in tasks {
        task.await
            .unwrap_or_else(|e| panic!("a fill task failed: {e}"));
    }
}

/// Lists `store` to the end, following cursors at the default page size; returns the count.
async fn list_all(store: &dyn BlobStore) -> usize {
    let mut count = 0;
    let mut cursor = None;
    loop {
        let page = ok(store.list(ListOptions::new().cursor(cursor)).await);
        count += page.blobs.len();
        cursor = page.next_cursor;
        if cursor.is_none() {
            return count;
        }
    }
}

fn bench_blobs(c: &mut Criterion, rt: &tokio::runtime::Runtime, url: &str) {
    let store = client(url, "point");
    let listed = client(url, "listed");
    let listed_large = client(url, "listed-large");
    rt.block_on(async {
        fill(&listed, LIST_KEYS).await;
        fill(&listed_large, LIST_KEYS_LARGE).await;
    });
    let v = value();
    let mut group = c.benchmark_group(GROUP);

    group.bench_function("set_1k", |b| {
        b.to_async(rt)
            .iter(|| async { ok(store.set("bench/set", v.clone(), SetOptions::new()).await) });
    });

    rt.block_on(async { ok(store.set("bench/get", v.clone(), SetOptions::new()).await) });
    group.bench_function("get_1k", |b| {
        b.to_async(rt).iter(|| async {
            let blob = ok(store.get("bench/get").await);
            assert!(blob.is_some_and(|b| b.value.len() == VALUE_BYTES));
        });
    });

    rt.block_on(async { ok(store.set("bench/cas", v.clone(), SetOptions::new()).await) });
    group.bench_function("cas_update", |b| {
        b.to_async(rt).iter(|| async {
            let current = ok(store.get("bench/cas").await)
                .unwrap_or_else(|| panic!("the compare-and-swap key is missing"));
            let outcome = ok(store
                .set(
                    "bench/cas",
                    v.clone(),
                    SetOptions::new().if_match(current.info.etag),
                )
                .await);
            assert!(outcome.is_written());
        });
    });

    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.bench_function("list_1000", |b| {
        b.to_async(rt).iter(|| async {
            let page = ok(listed.list(ListOptions::new().page_size(LIST_KEYS)).await);
            assert_eq!(page.blobs.len(), LIST_KEYS);
        });
    });
    group.bench_function("list_10000", |b| {
        b.to_async(rt)
            .iter(|| async { assert_eq!(list_all(listed_large.as_ref()).await, LIST_KEYS_LARGE) });
    });
    group.finish();
}

fn http_backend(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("no tokio runtime: {e}"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (url, server) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0: {e}"));
        let url = format!(
            "http://{}",
            listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
        );
        let config = blobjobs_emulator::Config::new(Catalog::memory(), TOKEN);
        let server = tokio::spawn(blobjobs_emulator::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        (url, server)
    });
    bench_blobs(c, &rt, &url);
    bench_job_ops(c, &rt, GROUP, client(&url, "jobs"));
    let _ = stop.send(());
    rt.block_on(async {
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the emulator failed: {e}"),
            Err(e) => panic!("the emulator task failed: {e}"),
        }
    });
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = http_backend
}
criterion_main!(benches);
