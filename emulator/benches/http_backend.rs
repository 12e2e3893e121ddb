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

use blobjobs_backends::http::{HttpConfig, Token};
use blobjobs_backends::{Catalog, HttpStore};
use blobjobs_store_api::BlobStore;
use blobjobs_test_support::bench::{
    BlobStores, LIST_KEYS, LIST_KEYS_LARGE, bench_blob_ops, bench_job_ops, fill, ok,
};
use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};

const TOKEN: &str = "bench-token";
const SITE: &str = "bench-site";
const GROUP: &str = "http_emulator";

/// A new client of the store `name` on the emulator at `url`.
fn client(url: &str, name: &str) -> Arc<dyn BlobStore> {
    let opened = HttpConfig::edge(url, SITE, Token::new(TOKEN), name).and_then(HttpStore::new);
    Arc::new(ok(opened))
}

fn bench_blobs(c: &mut Criterion, rt: &tokio::runtime::Runtime, url: &str) {
    let stores = BlobStores {
        point: client(url, "point"),
        listed: client(url, "listed"),
        listed_large: client(url, "listed-large"),
    };
    rt.block_on(async {
        fill(&stores.listed, LIST_KEYS, Bytes::from_static(b"v")).await;
        fill(
            &stores.listed_large,
            LIST_KEYS_LARGE,
            Bytes::from_static(b"v"),
        )
        .await;
    });
    bench_blob_ops(c, rt, GROUP, &stores);
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

criterion_group! {
    name = benches;
    config = blobjobs_test_support::bench::criterion_config();
    targets = http_backend
}
criterion_main!(benches);
