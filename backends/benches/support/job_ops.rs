//! The job benchmarks (create, claim, succeed, get through `BlobJobStore`), written once and
//! run on every backend: the backends crate's `jobs` bench and the emulator's `http_backend`
//! bench include this file.
//!
//! Each measured claim needs a fresh pending job and each succeed a fresh claimed one, so
//! those benchmarks time only the operation itself and prepare (and afterwards delete) the
//! job outside the timed part; every store therefore stays the same size however long the run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use blobjobs_store_api::{BlobJobStore, BlobStore, JobId, JobStatus, JobStore, NewJob};
use criterion::Criterion;
use serde_json::json;

/// How long a benchmark claim holds its lease; far longer than any run.
const LEASE: Duration = Duration::from_secs(600);
const OWNER: &str = "bench-worker";

fn ok<T>(result: blobjobs_store_api::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("job operation failed: {e}"))
}

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
