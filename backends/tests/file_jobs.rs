//! The property that sets the file backend apart from the memory backend for job tracking: a
//! job created through one instance is visible through another only when the instances share
//! a store. The job store's cases themselves, across separate `FileStore` handles and on
//! separate memory stores as the negative control, run in `conformance.rs`.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::sync::Arc;
use std::time::Duration;

use blobjobs_backends::MemoryStore;
use blobjobs_store_api::{BlobJobStore, ErrorKind, JobStore, NewJob};
use serde_json::json;

/// The bug this project exists for: a process-local map loses jobs between instances. Two
/// memory stores are two instances that share nothing.
#[tokio::test]
async fn separate_memory_stores_share_no_jobs() {
    let trigger = BlobJobStore::new(Arc::new(MemoryStore::new()));
    let status = BlobJobStore::new(Arc::new(MemoryStore::new()));
    let job = trigger
        .create(NewJob::new("render", json!({"page": 3})))
        .await
        .unwrap();
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
}
