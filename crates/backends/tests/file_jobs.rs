//! The generic job store over the file backend, and the property that sets it apart from the
//! memory backend: a job created through one handle is visible through another.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::sync::Arc;
use std::time::Duration;

use backends::{FileOptions, FileStore, MemoryStore};
use serde_json::json;
use store_api::{BlobJobStore, ErrorKind, JobId, JobStatus, JobStore, NewJob};

fn new_job(id: &str) -> NewJob {
    NewJob {
        id: Some(JobId::new(id).unwrap()),
        kind: "render".into(),
        input: json!({"page": 3}),
        ttl: None,
    }
}

#[tokio::test]
async fn job_lifecycle_over_file_store() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Arc::new(FileStore::open(dir.path(), "jobs", FileOptions::default()).unwrap());
    let jobs = BlobJobStore::new(blobs);

    let created = jobs.create(new_job("job-1")).await.unwrap();
    assert_eq!(created.status, JobStatus::Pending);
    // Creating the same id again returns the existing job.
    let again = jobs.create(new_job("job-1")).await.unwrap();
    assert_eq!(again, created);

    let id = created.id.clone();
    let claimed = jobs
        .claim(&id, "worker-a", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(claimed.status, JobStatus::Running);
    assert_eq!(claimed.attempts, 1);
    let err = jobs
        .claim(&id, "worker-b", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeaseHeld);

    let progressed = jobs
        .progress(&id, "worker-a", 40, Some("halfway".into()))
        .await
        .unwrap();
    assert_eq!(progressed.progress.as_ref().unwrap().percent, 40);
    let err = jobs.progress(&id, "worker-b", 50, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeaseHeld);

    let done = jobs
        .succeed(&id, "worker-a", json!({"url": "/out.png"}))
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    let read = jobs.get(&id).await.unwrap().unwrap();
    assert_eq!(read, done);
    assert_eq!(read.result, Some(json!({"url": "/out.png"})));

    let page = jobs.list(Default::default()).await.unwrap();
    assert_eq!(page.jobs, vec![done]);
    assert!(jobs.delete(&id).await.unwrap());
    assert!(jobs.get(&id).await.unwrap().is_none());
}

/// The bug this project exists for: a process-local map loses jobs between instances. Two
/// memory stores are two instances that share nothing; two file store handles on one
/// directory share everything.
#[tokio::test]
async fn jobs_cross_instances_only_on_the_file_store() {
    let trigger = BlobJobStore::new(Arc::new(MemoryStore::new()));
    let status = BlobJobStore::new(Arc::new(MemoryStore::new()));
    let job = trigger.create(new_job("job-mem")).await.unwrap();
    assert!(trigger.get(&job.id).await.unwrap().is_some());
    assert!(
        status.get(&job.id).await.unwrap().is_none(),
        "a second memory instance must not see the first one's job"
    );
    let err = status
        .claim(&job.id, "background", Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);

    let dir = tempfile::tempdir().unwrap();
    let open = || Arc::new(FileStore::open(dir.path(), "jobs", FileOptions::default()).unwrap());
    let trigger = BlobJobStore::new(open());
    let background = BlobJobStore::new(open());
    let status = BlobJobStore::new(open());
    let job = trigger.create(new_job("job-file")).await.unwrap();
    background
        .claim(&job.id, "background", Duration::from_secs(5))
        .await
        .unwrap();
    background
        .succeed(&job.id, "background", json!("ok"))
        .await
        .unwrap();
    let seen = status.get(&job.id).await.unwrap().unwrap();
    assert_eq!(seen.status, JobStatus::Succeeded);
    assert_eq!(seen.result, Some(json!("ok")));
}
