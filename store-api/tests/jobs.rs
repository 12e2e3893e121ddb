//! Lifecycle and compare-and-swap tests of the generic job layer, over a small in-test store.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use blobjobs_store_api::list::paginate;
use blobjobs_store_api::{
    Blob, BlobInfo, BlobJobStore, BlobStore, Condition, ErrorKind, Etag, JobFilter, JobId,
    JobStatus, JobStore, JobStoreConfig, ListEntry, ListOptions, ListPage, ManualClock, NewJob,
    Result, SetOptions, SetOutcome, Timestamp,
};
use bytes::Bytes;
use serde_json::json;

/// A minimal correct store, so these tests depend on no backend crate. It can be told to
/// fail the next N conditional writes, as if another instance had won each race.
#[derive(Debug, Default)]
struct TestStore {
    map: Mutex<BTreeMap<String, Blob>>,
    lose_next_races: AtomicU32,
    conditional_writes: AtomicU32,
    /// Misbehave: list every key, whatever prefix was asked for.
    list_ignores_prefix: AtomicBool,
}

#[async_trait]
impl BlobStore for TestStore {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        Ok(self.map.lock().unwrap().get(key).cloned())
    }
    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        Ok(self.map.lock().unwrap().get(key).map(|b| b.info.clone()))
    }
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        let mut map = self.map.lock().unwrap();
        if let Condition::IfMatch(want) = &options.condition {
            self.conditional_writes.fetch_add(1, Ordering::SeqCst);
            let lose = self
                .lose_next_races
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if lose {
                // Another "instance" rewrote the job in between: bump its ETag.
                if let Some(b) = map.get_mut(key) {
                    b.info.etag = Etag::random()?;
                }
                return Ok(SetOutcome::ConditionFailed);
            }
            if map.get(key).map(|b| &b.info.etag) != Some(want) {
                return Ok(SetOutcome::ConditionFailed);
            }
        }
        if options.condition == Condition::IfNew && map.contains_key(key) {
            return Ok(SetOutcome::ConditionFailed);
        }
        let etag = Etag::random()?;
        let info = BlobInfo {
            etag: etag.clone(),
            metadata: options.metadata,
            size: value.len() as u64,
            last_modified: Timestamp::from_millis(0),
        };
        map.insert(key.to_owned(), Blob { value, info });
        Ok(SetOutcome::Written { etag })
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.map.lock().unwrap().remove(key);
        Ok(())
    }
    async fn list(&self, mut options: ListOptions) -> Result<ListPage> {
        if self.list_ignores_prefix.load(Ordering::SeqCst) {
            options.prefix.clear();
        }
        let entries: Vec<ListEntry> = self
            .map
            .lock()
            .unwrap()
            .iter()
            .map(|(k, b)| ListEntry {
                key: k.clone(),
                etag: b.info.etag.clone(),
                size: b.info.size,
                last_modified: b.info.last_modified,
            })
            .collect();
        paginate(entries, &options)
    }
}

struct Fixture {
    store: Arc<TestStore>,
    jobs: BlobJobStore<TestStore>,
    clock: ManualClock,
}

fn fixture() -> Fixture {
    let store = Arc::new(TestStore::default());
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let config = JobStoreConfig {
        max_cas_retries: 5,
        clock: Arc::new(clock.clone()),
    };
    let jobs = BlobJobStore::with_config(store.clone(), config);
    Fixture { store, jobs, clock }
}

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn happy_path_pending_running_succeeded() {
    let f = fixture();
    let job = f
        .jobs
        .create(NewJob::new("extract", json!({"pdf": "a.pdf"})))
        .await
        .unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(f.jobs.get(&job.id).await.unwrap().unwrap(), job);

    let running = f.jobs.claim(&job.id, "worker-b", LEASE).await.unwrap();
    assert_eq!(running.status, JobStatus::Running);
    assert_eq!(running.attempts, 1);
    assert_eq!(running.lease.as_ref().unwrap().owner, "worker-b");

    let p = f
        .jobs
        .progress(&job.id, "worker-b", 40, Some("page 2".into()))
        .await
        .unwrap();
    assert_eq!(p.progress.unwrap().percent, 40);

    let done = f
        .jobs
        .succeed(&job.id, "worker-b", json!({"rubric": [1, 2]}))
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"rubric": [1, 2]})));
    assert!(done.lease.is_none());
    assert_eq!(f.jobs.get(&job.id).await.unwrap().unwrap(), done);
}

#[tokio::test]
async fn failure_and_cancellation_paths() {
    let f = fixture();
    let a = f.jobs.create(NewJob::new("k", json!(1))).await.unwrap();
    f.jobs.claim(&a.id, "w", LEASE).await.unwrap();
    let failed = f
        .jobs
        .fail(&a.id, "w", "model timed out".into())
        .await
        .unwrap();
    assert_eq!(failed.status, JobStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("model timed out"));

    let b = f.jobs.create(NewJob::new("k", json!(2))).await.unwrap();
    assert_eq!(
        f.jobs.cancel(&b.id).await.unwrap().status,
        JobStatus::Cancelled
    );

    let c = f.jobs.create(NewJob::new("k", json!(3))).await.unwrap();
    f.jobs.claim(&c.id, "w", LEASE).await.unwrap();
    assert_eq!(
        f.jobs.cancel(&c.id).await.unwrap().status,
        JobStatus::Cancelled
    );
}

#[tokio::test]
async fn terminal_states_reject_every_transition() {
    let f = fixture();
    let job = f.jobs.create(NewJob::new("k", json!(null))).await.unwrap();
    f.jobs.claim(&job.id, "w", LEASE).await.unwrap();
    let done = f.jobs.succeed(&job.id, "w", json!("ok")).await.unwrap();

    let kinds = [
        f.jobs.claim(&job.id, "w2", LEASE).await.unwrap_err().kind(),
        f.jobs
            .succeed(&job.id, "w", json!(0))
            .await
            .unwrap_err()
            .kind(),
        f.jobs
            .fail(&job.id, "w", "x".into())
            .await
            .unwrap_err()
            .kind(),
        f.jobs.cancel(&job.id).await.unwrap_err().kind(),
        f.jobs
            .progress(&job.id, "w", 1, None)
            .await
            .unwrap_err()
            .kind(),
    ];
    for kind in kinds {
        assert_eq!(kind, ErrorKind::IllegalTransition);
    }
    // Nothing changed.
    assert_eq!(f.jobs.get(&job.id).await.unwrap().unwrap(), done);
}

#[tokio::test]
async fn pending_job_cannot_finish_without_a_claim() {
    let f = fixture();
    let job = f.jobs.create(NewJob::new("k", json!(null))).await.unwrap();
    let err = f.jobs.succeed(&job.id, "w", json!(1)).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IllegalTransition);
    let err = f.jobs.fail(&job.id, "w", "e".into()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::IllegalTransition);
}

#[tokio::test]
async fn live_lease_excludes_other_claimants_and_owners() {
    let f = fixture();
    let job = f.jobs.create(NewJob::new("k", json!(null))).await.unwrap();
    f.jobs.claim(&job.id, "a", LEASE).await.unwrap();
    assert_eq!(
        f.jobs.claim(&job.id, "b", LEASE).await.unwrap_err().kind(),
        ErrorKind::LeaseHeld
    );
    assert_eq!(
        f.jobs
            .succeed(&job.id, "b", json!(1))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::LeaseHeld
    );
}

#[tokio::test]
async fn expired_lease_can_be_reclaimed_and_counts_an_attempt() {
    let f = fixture();
    let job = f.jobs.create(NewJob::new("k", json!(null))).await.unwrap();
    f.jobs.claim(&job.id, "a", LEASE).await.unwrap();
    f.clock.advance(LEASE + Duration::from_millis(1));
    let again = f.jobs.claim(&job.id, "b", LEASE).await.unwrap();
    assert_eq!(again.attempts, 2);
    assert_eq!(again.lease.unwrap().owner, "b");
    // The old owner has lost the job.
    assert_eq!(
        f.jobs
            .succeed(&job.id, "a", json!(1))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::LeaseHeld
    );
    f.jobs.succeed(&job.id, "b", json!(1)).await.unwrap();
}

#[tokio::test]
async fn update_retries_lost_races_then_succeeds() {
    let f = fixture();
    let job = f.jobs.create(NewJob::new("k", json!(0))).await.unwrap();
    f.store.lose_next_races.store(3, Ordering::SeqCst);
    let claimed = f.jobs.claim(&job.id, "w", LEASE).await.unwrap();
    assert_eq!(claimed.status, JobStatus::Running);
    // Three lost races and the winning write.
    assert_eq!(f.store.conditional_writes.load(Ordering::SeqCst), 4);
    assert_eq!(f.jobs.get(&job.id).await.unwrap().unwrap().attempts, 1);
}

#[tokio::test]
async fn update_gives_up_after_bounded_retries() {
    let f = fixture();
    let job = f.jobs.create(NewJob::new("k", json!(0))).await.unwrap();
    f.store.lose_next_races.store(100, Ordering::SeqCst);
    let err = f.jobs.claim(&job.id, "w", LEASE).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.is_retryable());
    // max_cas_retries = 5 means one try plus five retries.
    assert_eq!(f.store.conditional_writes.load(Ordering::SeqCst), 6);
    assert_eq!(
        f.jobs.get(&job.id).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
}

#[tokio::test]
async fn caller_chosen_id_makes_create_idempotent() {
    let f = fixture();
    let id = JobId::new("order-42").unwrap();
    let first = f
        .jobs
        .create(NewJob::new("k", json!(1)).id(id.clone()))
        .await
        .unwrap();
    f.jobs.claim(&id, "w", LEASE).await.unwrap();
    let second = f
        .jobs
        .create(NewJob::new("k", json!(2)).id(id.clone()))
        .await
        .unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.input, json!(1));
    assert_eq!(second.status, JobStatus::Running);
    let other_kind = f.jobs.create(NewJob::new("other", json!(2)).id(id)).await;
    assert_eq!(other_kind.unwrap_err().kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn missing_jobs_are_not_found() {
    let f = fixture();
    let id = JobId::new("nope").unwrap();
    assert!(f.jobs.get(&id).await.unwrap().is_none());
    assert_eq!(
        f.jobs.claim(&id, "w", LEASE).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(!f.jobs.delete(&id).await.unwrap());
}

#[tokio::test]
async fn deleted_job_does_not_come_back() {
    let f = fixture();
    let job = f.jobs.create(NewJob::new("k", json!(null))).await.unwrap();
    assert!(f.jobs.delete(&job.id).await.unwrap());
    assert!(f.jobs.get(&job.id).await.unwrap().is_none());
    assert_eq!(
        f.jobs.claim(&job.id, "w", LEASE).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(f.jobs.get(&job.id).await.unwrap().is_none());
}

#[tokio::test]
async fn ttl_hides_then_purge_deletes() {
    let f = fixture();
    let short = f
        .jobs
        .create(NewJob::new("k", json!(1)).ttl(Duration::from_secs(10)))
        .await
        .unwrap();
    let forever = f.jobs.create(NewJob::new("k", json!(2))).await.unwrap();
    assert_eq!(f.jobs.purge_expired().await.unwrap(), 0);
    f.clock.advance(Duration::from_secs(11));
    assert!(f.jobs.get(&short.id).await.unwrap().is_none());
    assert!(f.jobs.get(&forever.id).await.unwrap().is_some());
    assert_eq!(f.jobs.purge_expired().await.unwrap(), 1);
    assert!(
        f.store
            .get(&format!("jobs/{}", short.id))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(f.jobs.purge_expired().await.unwrap(), 0);
}

#[tokio::test]
async fn list_filters_by_status_and_kind_and_paginates() {
    let f = fixture();
    let mut ids = Vec::new();
    for i in 0..7 {
        let kind = if i % 2 == 0 { "extract" } else { "enhance" };
        let job = f.jobs.create(NewJob::new(kind, json!(i))).await.unwrap();
        f.clock.advance(Duration::from_millis(1));
        ids.push(job.id);
    }
    f.jobs.claim(&ids[0], "w", LEASE).await.unwrap();

    let mut seen = Vec::new();
    let mut cursor = None;
    // Bounded: a cursor that never ends fails the comparison below instead of hanging.
    for _ in 0..100 {
        let page = f
            .jobs
            .list(JobFilter {
                kind: Some("extract".into()),
                cursor,
                page_size: Some(2),
                ..JobFilter::default()
            })
            .await
            .unwrap();
        seen.extend(page.jobs.into_iter().map(|j| j.id));
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    let expected: Vec<JobId> = ids.iter().step_by(2).cloned().collect();
    assert_eq!(seen, expected, "oldest first, only extract jobs");

    let running = f
        .jobs
        .list(JobFilter {
            status: Some(JobStatus::Running),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(running.jobs.len(), 1);
    assert_eq!(running.jobs[0].id, ids[0]);
}

#[tokio::test]
async fn progress_is_bounded() {
    let f = fixture();
    let job = f.jobs.create(NewJob::new("k", json!(null))).await.unwrap();
    f.jobs.claim(&job.id, "w", LEASE).await.unwrap();
    let err = f.jobs.progress(&job.id, "w", 101, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn keys_listed_outside_the_job_prefix_are_skipped_not_sliced() {
    let f = fixture();
    let job = f
        .jobs
        .create(NewJob::new("extract", json!({})).ttl(Duration::from_secs(60)))
        .await
        .unwrap();
    // Shorter than the prefix, and one whose fifth byte falls inside a two-byte character:
    // slicing either by the prefix's length would panic.
    for key in ["x", "abcd\u{e9}z"] {
        f.store
            .set(key, Bytes::from_static(b"{}"), SetOptions::default())
            .await
            .unwrap();
    }
    f.store.list_ignores_prefix.store(true, Ordering::SeqCst);

    let page = f.jobs.list(JobFilter::default()).await.unwrap();
    assert_eq!(
        page.jobs.iter().map(|j| &j.id).collect::<Vec<_>>(),
        [&job.id]
    );

    f.clock.advance(Duration::from_secs(61));
    assert_eq!(f.jobs.purge_expired().await.unwrap(), 1);
    assert!(f.store.get("x").await.unwrap().is_some());
}
