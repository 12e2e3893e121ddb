//! The benchmark bodies shared by the backends crate's `stores` and `jobs` benches and the
//! emulator's `http_backend` bench, so that every backend is measured by the same code:
//! the blob operations (set, get, compare-and-swap, a 1,000-key page, a 10,000-key listing)
//! and the job operations (create, claim, succeed, get through `BlobJobStore`).
//!
//! Each measured claim needs a fresh pending job and each succeed a fresh claimed one, so
//! those benchmarks time only the operation itself and prepare (and afterwards delete) the
//! job outside the timed part; every store therefore stays the same size however long the run.
//!
//! The benchmark ids (`set_1k`, `get_1k`, `cas_update`, `list_1000`, `list_10000`,
//! `job_create`, `job_claim`, `job_succeed`, `job_get`) are the ones `cargo xtask bench`
//! reads back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use blobjobs_store_api::{
    BlobJobStore, BlobStore, BlobStoreExt as _, JobId, JobStatus, JobStore, ListOptions, NewJob,
    SetOptions,
};
use bytes::Bytes;
use criterion::{Criterion, SamplingMode};
use serde_json::json;

/// The size of the values the point benchmarks write and read.
pub const VALUE_BYTES: usize = 1024;
/// The keys of the store whose first page of 1,000 is listed.
pub const LIST_KEYS: usize = 1000;
/// The keys of the store listed whole, page by page at the default page size.
pub const LIST_KEYS_LARGE: usize = 10_000;
/// Concurrent writers that fill the listed stores.
const FILL_TASKS: usize = 16;

/// The criterion settings of every benchmark here: short enough for `cargo xtask bench` to
/// run all groups in minutes, with enough samples for a stable median.
pub fn criterion_config() -> Criterion {
    Criterion::default()
        .sample_size(15)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
}

/// The value of the point benchmarks: [`VALUE_BYTES`] bytes.
pub fn value() -> Bytes {
    Bytes::from(vec![0x5a; VALUE_BYTES])
}

/// The result of a store operation, which a benchmark cannot go on without.
pub fn ok<T>(result: blobjobs_store_api::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("store operation failed: {e}"))
}

/// Writes `count` keys (`item/00000`, …) holding `value` into `store`, over [`FILL_TASKS`]
/// concurrent writers.
pub async fn fill(store: &Arc<dyn BlobStore>, count: usize, value: Bytes) {
    let mut tasks = Vec::new();
    for t in 0..FILL_TASKS {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            for i in (t..count).step_by(FILL_TASKS) {
                let key = format!("item/{i:05}");
                ok(store.set(&key, value.clone(), SetOptions::new()).await);
            }
        }));
    }
    for task in tasks {
        task.await
            .unwrap_or_else(|e| panic!("a fill task failed: {e}"));
    }
}

/// The stores one backend's blob benchmarks use.
pub struct BlobStores {
    /// The store of the point operations.
    pub point: Arc<dyn BlobStore>,
    /// A store holding [`LIST_KEYS`] keys (see [`fill`]).
    pub listed: Arc<dyn BlobStore>,
    /// A store holding [`LIST_KEYS_LARGE`] keys.
    pub listed_large: Arc<dyn BlobStore>,
}

/// The five blob benchmarks on `stores`, as criterion group `group`.
pub fn bench_blob_ops(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    group: &str,
    stores: &BlobStores,
) {
    let mut group = c.benchmark_group(group);
    let store = stores.point.clone();
    let v = value();

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

    let listed = stores.listed.clone();
    // Listings take milliseconds: flat sampling keeps their run within the measurement time.
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.bench_function("list_1000", |b| {
        b.to_async(rt).iter(|| async {
            let page = ok(listed.list(ListOptions::new().page_size(LIST_KEYS)).await);
            assert_eq!(page.blobs.len(), LIST_KEYS);
        });
    });
    let listed_large = stores.listed_large.clone();
    group.bench_function("list_10000", |b| {
        b.to_async(rt).iter(|| async {
            let all = ok(listed_large.list_all(ListOptions::new()).await);
            assert_eq!(all.len(), LIST_KEYS_LARGE);
        });
    });
    group.finish();
}

/// How long a benchmark claim holds its lease; far longer than any run.
const LEASE: Duration = Duration::from_secs(600);
const OWNER: &str = "bench-worker";

/// A job shaped like the serverless example's: a small JSON input.
async fn create(jobs: &BlobJobStore<dyn BlobStore>) -> JobId {
    let new = NewJob::new(
        "extract",
        json!({ "document": "uploads/report.pdf", "criteria": ["clarity", "evidence"] }),
    );
    ok(jobs.create(new).await).id
}

async fn remove(jobs: &BlobJobStore<dyn BlobStore>, id: &JobId) {
    assert!(ok(jobs.delete(id).await), "the benchmark job vanished");
}

/// Times `measured` on a job prepared by `prepare`, `iters` times; creating, preparing and
/// deleting the job are not timed.
async fn timed_on_fresh_jobs<P, M>(
    jobs: &BlobJobStore<dyn BlobStore>,
    iters: u64,
    prepare: P,
    measured: M,
) -> Duration
where
    P: AsyncFn(&JobId),
    M: AsyncFn(&JobId),
{
    let mut timed = Duration::ZERO;
    for _ in 0..iters {
        let id = create(jobs).await;
        prepare(&id).await;
        let start = Instant::now();
        measured(&id).await;
        timed += start.elapsed();
        remove(jobs, &id).await;
    }
    timed
}

/// The four job benchmarks on `blobs`, as criterion group `group`.
pub fn bench_job_ops(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    group: &str,
    blobs: Arc<dyn BlobStore>,
) {
    let jobs = Arc::new(BlobJobStore::new(blobs));
    let mut group = c.benchmark_group(group);

    group.bench_function("job_create", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let jobs = jobs.clone();
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    let id = create(&jobs).await;
                    timed += start.elapsed();
                    remove(&jobs, &id).await;
                }
                timed
            }
        });
    });

    group.bench_function("job_claim", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let jobs = jobs.clone();
            async move {
                let claim = async |id: &JobId| {
                    let job = ok(jobs.claim(id, OWNER, LEASE).await);
                    assert_eq!(job.status, JobStatus::Running);
                };
                timed_on_fresh_jobs(&jobs, iters, async |_: &JobId| {}, claim).await
            }
        });
    });

    group.bench_function("job_succeed", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let jobs = jobs.clone();
            async move {
                let claim = async |id: &JobId| {
                    ok(jobs.claim(id, OWNER, LEASE).await);
                };
                let succeed = async |id: &JobId| {
                    let job = ok(jobs.succeed(id, OWNER, json!({ "points": 30 })).await);
                    assert_eq!(job.status, JobStatus::Succeeded);
                };
                timed_on_fresh_jobs(&jobs, iters, claim, succeed).await
            }
        });
    });

    let id = rt.block_on(create(&jobs));
    group.bench_function("job_get", |b| {
        b.to_async(rt).iter(|| async {
            let job = ok(jobs.get(&id).await).unwrap_or_else(|| panic!("the job is missing"));
            assert_eq!(job.status, JobStatus::Pending);
        });
    });
    group.finish();
}
