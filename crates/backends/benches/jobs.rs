//! Job benchmarks: create, claim, succeed and get through `store_api::BlobJobStore` (the one
//! job layer, compare-and-swap on every change) over the memory store and the file store,
//! durable and without fsync.
//!
//! Run with `cargo bench -p backends --bench jobs` (or all benchmarks with
//! `cargo xtask bench`). Medians are in
//! `target/criterion/<group>/job_<operation>/new/estimates.json`.
//!
//! Each measured claim needs a fresh pending job and each succeed a fresh claimed one, so those
//! benchmarks time only the operation itself and prepare (and afterwards delete) the job
//! outside the timed part; every store therefore stays the same size however long the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{FileOptions, FileStore, MemoryStore};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use store_api::{BlobJobStore, BlobStore, Job, JobId, JobStatus, JobStore, NewJob};

/// How long a benchmark claim holds its lease; far longer than any run.
const LEASE: Duration = Duration::from_secs(600);
const OWNER: &str = "bench-worker";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("no tokio runtime: {e}"))
}

fn ok<T>(result: store_api::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("job operation failed: {e}"))
}

/// A job shaped like the serverless example's: a small JSON input.
fn new_job() -> NewJob {
    NewJob::new(
        "extract",
        json!({ "document": "uploads/report.pdf", "criteria": ["clarity", "evidence"] }),
    )
}

async fn create(jobs: &BlobJobStore<dyn BlobStore>) -> JobId {
    ok(jobs.create(new_job()).await).id
}

async fn remove(jobs: &BlobJobStore<dyn BlobStore>, id: &JobId) {
    assert!(ok(jobs.delete(id).await), "the benchmark job vanished");
}

fn check(job: &Job, status: JobStatus) {
    assert_eq!(job.status, status, "job {} in the wrong state", job.id);
}

/// The four job benchmarks on one store, as group `name`.
fn bench_jobs(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    blobs: Arc<dyn BlobStore>,
) {
    let jobs = Arc::new(BlobJobStore::new(blobs));
    let mut group = c.benchmark_group(name);

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
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let id = create(&jobs).await;
                    let start = Instant::now();
                    let job = ok(jobs.claim(&id, OWNER, LEASE).await);
                    timed += start.elapsed();
                    check(&job, JobStatus::Running);
                    remove(&jobs, &id).await;
                }
                timed
            }
        });
    });

    group.bench_function("job_succeed", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let jobs = jobs.clone();
            async move {
                let mut timed = Duration::ZERO;
                for _ in 0..iters {
                    let id = create(&jobs).await;
                    ok(jobs.claim(&id, OWNER, LEASE).await);
                    let start = Instant::now();
                    let job = ok(jobs.succeed(&id, OWNER, json!({ "points": 30 })).await);
                    timed += start.elapsed();
                    check(&job, JobStatus::Succeeded);
                    remove(&jobs, &id).await;
                }
                timed
            }
        });
    });

    let id = rt.block_on(create(&jobs));
    group.bench_function("job_get", |b| {
        b.to_async(rt).iter(|| async {
            let job = ok(jobs.get(&id).await).unwrap_or_else(|| panic!("the job is missing"));
            check(&job, JobStatus::Pending);
        });
    });
    group.finish();
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
    bench_jobs(c, &rt, "file_nosync", open("jobs-nosync", false));
    bench_jobs(c, &rt, "memory", Arc::new(MemoryStore::new()));
    bench_jobs(c, &rt, "file_durable", open("jobs-durable", true));
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
    targets = jobs
}
criterion_main!(benches);
