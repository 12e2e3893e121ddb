//! Stores for the suite's own tests: a blob store with one deliberate fault each (built on a
//! shared `MemoryStore`, which is correct), and a job store written directly on a map,
//! without any `BlobStore`, correct when its state is shared and with one deliberate fault
//! each otherwise.

#![allow(dead_code)] // Each test binary uses its own part of the catalogue.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use blobjobs_backends::MemoryStore;
use blobjobs_conformance::JobEnv;
use blobjobs_store_api::jobs::UpdateFn;
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, Clock, Condition, Error, ErrorKind, Etag, Job,
    JobFilter, JobId, JobPage, JobStatus, JobStore, Lease, ListOptions, ListPage, Metadata, NewJob,
    Progress, Result, SetOptions, SetOutcome, Timestamp,
};
use bytes::Bytes;
use serde_json::Value;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One deliberate fault of a blob store: each method gets the correct store underneath and
/// by default just calls it.
#[async_trait]
pub trait Fault: Send + Sync + fmt::Debug + 'static {
    async fn get(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<Blob>> {
        inner.get(key).await
    }
    async fn get_metadata(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<BlobInfo>> {
        inner.get_metadata(key).await
    }
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        inner.set(key, value, options).await
    }
    async fn delete(&self, inner: &dyn BlobStore, key: &str) -> Result<()> {
        inner.delete(key).await
    }
    async fn list(&self, inner: &dyn BlobStore, options: ListOptions) -> Result<ListPage> {
        inner.list(options).await
    }
    async fn get_stream(
        &self,
        inner: &dyn BlobStore,
        key: &str,
    ) -> Result<Option<(BlobInfo, ByteStream)>> {
        inner.get_stream(key).await
    }
    async fn set_stream(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        inner.set_stream(key, body, max_size, options).await
    }
}

/// A correct store (`inner`) with one fault.
#[derive(Debug)]
pub struct Faulty<F> {
    inner: Arc<dyn BlobStore>,
    fault: F,
}

#[async_trait]
impl<F: Fault> BlobStore for Faulty<F> {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        self.fault.get(self.inner.as_ref(), key).await
    }
    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        self.fault.get_metadata(self.inner.as_ref(), key).await
    }
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        self.fault
            .set(self.inner.as_ref(), key, value, options)
            .await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.fault.delete(self.inner.as_ref(), key).await
    }
    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        self.fault.list(self.inner.as_ref(), options).await
    }
    async fn get_stream(&self, key: &str) -> Result<Option<(BlobInfo, ByteStream)>> {
        self.fault.get_stream(self.inner.as_ref(), key).await
    }
    async fn set_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        self.fault
            .set_stream(self.inner.as_ref(), key, body, max_size, options)
            .await
    }
}

/// A factory of instances of a faulty store: each a new fault value over a handle on one
/// shared `MemoryStore`, so that the instances share data and only the fault is wrong.
/// `fault` gets a handle of its own on the shared store, for faults that act later.
pub fn faulty<F: Fault>(
    fault: impl Fn(Arc<dyn BlobStore>) -> F + Send + Sync + 'static,
) -> impl Fn() -> std::future::Ready<Result<Arc<dyn BlobStore>>> + Send + Sync + 'static {
    let shared = MemoryStore::new();
    move || {
        let store = Faulty {
            inner: Arc::new(shared.clone()),
            fault: fault(Arc::new(shared.clone())),
        };
        std::future::ready(Ok(Arc::new(store) as Arc<dyn BlobStore>))
    }
}

/// Instances that are clones of one `MemoryStore`: the simplest correct shared store.
pub fn shared_memory()
-> impl Fn() -> std::future::Ready<Result<Arc<dyn BlobStore>>> + Send + Sync + 'static {
    let shared = MemoryStore::new();
    move || std::future::ready(Ok(Arc::new(shared.clone()) as Arc<dyn BlobStore>))
}

/// Instances that are separate `MemoryStore`s: like serverless instances with process-local
/// state, they share nothing.
pub fn separate_memory()
-> impl Fn() -> std::future::Ready<Result<Arc<dyn BlobStore>>> + Send + Sync + Copy + 'static {
    || std::future::ready(Ok(Arc::new(MemoryStore::new()) as Arc<dyn BlobStore>))
}

/// Whether a condition holds for a key whose current ETag is `current`.
fn holds(condition: &Condition, current: Option<&Etag>) -> bool {
    match (condition, current) {
        (Condition::Always, _) => true,
        (Condition::IfNew, current) => current.is_none(),
        (Condition::IfMatch(want), Some(have)) => want == have,
        (Condition::IfMatch(_), None) => false,
    }
}

/// Every conditional write succeeds: the condition is not checked at all.
#[derive(Debug)]
pub struct IgnoresConditions;

#[async_trait]
impl Fault for IgnoresConditions {
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        inner
            .set(key, value, options.condition(Condition::Always))
            .await
    }
}

/// Checks one kind of condition with a read and then writes unconditionally: correct alone,
/// but two racing writers can both pass the check. With `yields`, the check and the write
/// are separate awaits that give the scheduler a turn; without, nothing but a few
/// instructions lies between them, as in a store that never yields.
#[derive(Debug)]
pub struct RacyCondition {
    pub if_new: bool,
    pub if_match: bool,
    pub yields: bool,
}

#[async_trait]
impl Fault for RacyCondition {
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let racy = match options.condition {
            Condition::Always => false,
            Condition::IfNew => self.if_new,
            Condition::IfMatch(_) => self.if_match,
        };
        if !racy {
            return inner.set(key, value, options).await;
        }
        let current = inner.get_metadata(key).await?.map(|i| i.etag);
        if !holds(&options.condition, current.as_ref()) {
            return Ok(SetOutcome::ConditionFailed);
        }
        if self.yields {
            tokio::task::yield_now().await;
        }
        inner
            .set(key, value, options.condition(Condition::Always))
            .await
    }
}

/// Writes to job keys (`…jobs/<id>`) drop their only-if-match condition: the job layer's
/// read-modify-write loses its compare-and-swap, so racing job updates overwrite each other.
#[derive(Debug)]
pub struct UnconditionalJobWrites {
    pub yields: bool,
}

#[async_trait]
impl Fault for UnconditionalJobWrites {
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        if key.contains("jobs/") && matches!(options.condition, Condition::IfMatch(_)) {
            if self.yields {
                tokio::task::yield_now().await;
            }
            return inner
                .set(key, value, options.condition(Condition::Always))
                .await;
        }
        inner.set(key, value, options).await
    }
}

/// Serves reads from a per-instance cache that only its own writes invalidate.
#[derive(Debug, Default)]
pub struct StaleCache {
    cache: Mutex<HashMap<String, Blob>>,
}

#[async_trait]
impl Fault for StaleCache {
    async fn get(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<Blob>> {
        if let Some(hit) = lock(&self.cache).get(key) {
            return Ok(Some(hit.clone()));
        }
        let blob = inner.get(key).await?;
        if let Some(b) = &blob {
            lock(&self.cache).insert(key.to_owned(), b.clone());
        }
        Ok(blob)
    }
    async fn get_metadata(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<BlobInfo>> {
        Ok(self.get(inner, key).await?.map(|b| b.info))
    }
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        lock(&self.cache).remove(key);
        inner.set(key, value, options).await
    }
    async fn delete(&self, inner: &dyn BlobStore, key: &str) -> Result<()> {
        lock(&self.cache).remove(key);
        inner.delete(key).await
    }
}

/// Loses the last page of every listing that has more than one.
#[derive(Debug)]
pub struct DropsLastPage;

#[async_trait]
impl Fault for DropsLastPage {
    async fn list(&self, inner: &dyn BlobStore, options: ListOptions) -> Result<ListPage> {
        let later_page = options.cursor.is_some();
        let page = inner.list(options).await?;
        if later_page && page.next_cursor.is_none() {
            return Ok(ListPage::default());
        }
        Ok(page)
    }
}

/// Makes ETags from the value's size, so different content of equal length shares one.
#[derive(Debug)]
pub struct ReusesEtags;

fn weak_etag(size: u64) -> Etag {
    Etag::new(format!("\"size-{size}\""))
}

#[async_trait]
impl Fault for ReusesEtags {
    async fn get(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<Blob>> {
        Ok(inner.get(key).await?.map(|mut b| {
            b.info.etag = weak_etag(b.info.size);
            b
        }))
    }
    async fn get_metadata(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<BlobInfo>> {
        Ok(inner.get_metadata(key).await?.map(|mut i| {
            i.etag = weak_etag(i.size);
            i
        }))
    }
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        mut options: SetOptions,
    ) -> Result<SetOutcome> {
        let size = value.len() as u64;
        if let Condition::IfMatch(want) = &options.condition {
            match inner.get_metadata(key).await? {
                Some(info) if weak_etag(info.size) == *want => {
                    options.condition = Condition::IfMatch(info.etag);
                }
                _ => return Ok(SetOutcome::ConditionFailed),
            }
        }
        Ok(match inner.set(key, value, options).await? {
            SetOutcome::Written { .. } => SetOutcome::Written {
                etag: weak_etag(size),
            },
            SetOutcome::ConditionFailed => SetOutcome::ConditionFailed,
        })
    }
    async fn list(&self, inner: &dyn BlobStore, options: ListOptions) -> Result<ListPage> {
        let mut page = inner.list(options).await?;
        for e in &mut page.blobs {
            e.etag = weak_etag(e.size);
        }
        Ok(page)
    }
}

/// Reads carry no ETag (an empty one), as the official `BlobsServer` answers a GET.
#[derive(Debug)]
pub struct NoEtagOnReads;

#[async_trait]
impl Fault for NoEtagOnReads {
    async fn get(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<Blob>> {
        Ok(inner.get(key).await?.map(|mut b| {
            b.info.etag = Etag::new("");
            b
        }))
    }
    async fn get_metadata(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<BlobInfo>> {
        Ok(inner.get_metadata(key).await?.map(|mut i| {
            i.etag = Etag::new("");
            i
        }))
    }
}

/// What one instance's write looked like, for stores that change their mind later.
#[derive(Debug, Clone)]
struct Written {
    by: usize,
    at: Instant,
    before: Option<Blob>,
}

/// Another instance sees a write only `lag` after it was made (it reads the version before
/// it until then); the writing instance sees it at once. A store that is consistent
/// "eventually".
#[derive(Debug)]
pub struct DelayedVisibility {
    me: usize,
    lag: Duration,
    writes: Arc<Mutex<HashMap<String, Written>>>,
}

/// A factory of [`DelayedVisibility`] instances over one shared store.
pub fn delayed_visibility(
    lag: Duration,
) -> impl Fn() -> std::future::Ready<Result<Arc<dyn BlobStore>>> + Send + Sync + 'static {
    let writes = Arc::new(Mutex::new(HashMap::new()));
    let next = std::sync::atomic::AtomicUsize::new(0);
    faulty(move |_| DelayedVisibility {
        me: next.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
        lag,
        writes: writes.clone(),
    })
}

impl DelayedVisibility {
    /// The version this instance may read instead of the current one, if a recent write of
    /// another instance is still hidden from it.
    fn hidden(&self, key: &str) -> Option<Option<Blob>> {
        let writes = lock(&self.writes);
        let w = writes.get(key)?;
        (w.by != self.me && w.at.elapsed() < self.lag).then(|| w.before.clone())
    }

    async fn record(&self, inner: &dyn BlobStore, key: &str) -> Result<()> {
        let before = inner.get(key).await?;
        lock(&self.writes).insert(
            key.to_owned(),
            Written {
                by: self.me,
                at: Instant::now(),
                before,
            },
        );
        Ok(())
    }
}

#[async_trait]
impl Fault for DelayedVisibility {
    async fn get(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<Blob>> {
        match self.hidden(key) {
            Some(old) => Ok(old),
            None => inner.get(key).await,
        }
    }
    async fn get_metadata(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<BlobInfo>> {
        Ok(self.get(inner, key).await?.map(|b| b.info))
    }
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        self.record(inner, key).await?;
        inner.set(key, value, options).await
    }
    async fn delete(&self, inner: &dyn BlobStore, key: &str) -> Result<()> {
        self.record(inner, key).await?;
        inner.delete(key).await
    }
}

/// A delete is acknowledged at once, but `after` later a lagging replica puts the deleted
/// version back, unless the key was written again meanwhile.
#[derive(Debug)]
pub struct UndoesDeletes {
    pub after: Duration,
    /// The replica's handle on the shared store.
    pub store: Arc<dyn BlobStore>,
}

#[async_trait]
impl Fault for UndoesDeletes {
    async fn delete(&self, inner: &dyn BlobStore, key: &str) -> Result<()> {
        let Some(old) = inner.get(key).await? else {
            return inner.delete(key).await;
        };
        inner.delete(key).await?;
        let after = self.after;
        let key = key.to_owned();
        let store = self.store.clone();
        tokio::spawn(async move {
            tokio::time::sleep(after).await;
            let options = SetOptions::new()
                .metadata(old.info.metadata.clone())
                .if_new();
            let _ = store.set(&key, old.value, options).await;
        });
        Ok(())
    }
}

/// An acknowledged write is reverted `after` later (it only ever reached a cache), unless
/// the key was written again meanwhile.
#[derive(Debug)]
pub struct ForgetsWrites {
    pub after: Duration,
    pub store: Arc<dyn BlobStore>,
}

#[async_trait]
impl Fault for ForgetsWrites {
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let before = inner.get(key).await?;
        let outcome = inner.set(key, value, options).await?;
        if let SetOutcome::Written { etag } = &outcome {
            let store = self.store.clone();
            let key = key.to_owned();
            let etag = etag.clone();
            let after = self.after;
            tokio::spawn(async move {
                tokio::time::sleep(after).await;
                match before {
                    Some(old) => {
                        let options = SetOptions::new()
                            .metadata(old.info.metadata.clone())
                            .if_match(etag);
                        let _ = store.set(&key, old.value, options).await;
                    }
                    None => {
                        let still = store.get_metadata(&key).await.ok().flatten();
                        if still.is_some_and(|i| i.etag == etag) {
                            let _ = store.delete(&key).await;
                        }
                    }
                }
            });
        }
        Ok(outcome)
    }
}

/// A write of more than a few bytes lands in two steps, its first half and then the whole,
/// so that a reader in between sees a partial value.
#[derive(Debug)]
pub struct TornWrites;

#[async_trait]
impl Fault for TornWrites {
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        if value.len() >= 1024 && matches!(options.condition, Condition::Always) {
            inner
                .set(key, value.slice(..value.len() / 2), options.clone())
                .await?;
            tokio::task::yield_now().await;
        }
        inner.set(key, value, options).await
    }
}

/// Streamed writes drop their metadata.
#[derive(Debug)]
pub struct StreamDropsMetadata;

#[async_trait]
impl Fault for StreamDropsMetadata {
    async fn set_stream(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        body: ByteStream,
        max_size: Option<u64>,
        mut options: SetOptions,
    ) -> Result<SetOutcome> {
        options.metadata = Metadata::new();
        inner.set_stream(key, body, max_size, options).await
    }
}

/// Refuses metadata over 1,400 bytes of JSON, short of the contract's 1,515.
#[derive(Debug)]
pub struct MetadataLimitTooLow;

#[async_trait]
impl Fault for MetadataLimitTooLow {
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        if options.metadata.to_json().len() > 1400 {
            return Err(Error::invalid("metadata too large"));
        }
        inner.set(key, value, options).await
    }
}

/// Stores keys in lower case, so `A` and `a` are one key.
#[derive(Debug)]
pub struct FoldsKeyCase;

#[async_trait]
impl Fault for FoldsKeyCase {
    async fn get(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<Blob>> {
        inner.get(&key.to_lowercase()).await
    }
    async fn get_metadata(&self, inner: &dyn BlobStore, key: &str) -> Result<Option<BlobInfo>> {
        inner.get_metadata(&key.to_lowercase()).await
    }
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        inner.set(&key.to_lowercase(), value, options).await
    }
    async fn delete(&self, inner: &dyn BlobStore, key: &str) -> Result<()> {
        inner.delete(&key.to_lowercase()).await
    }
    async fn get_stream(
        &self,
        inner: &dyn BlobStore,
        key: &str,
    ) -> Result<Option<(BlobInfo, ByteStream)>> {
        inner.get_stream(&key.to_lowercase()).await
    }
}

/// A deliberate fault of [`MapJobs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobFault {
    /// None: a correct job store.
    None,
    /// `claim` reads the job, checks it, and writes it back in a second step, without
    /// holding anything in between; with `yields`, it gives the scheduler a turn between.
    ClaimWithoutCas { yields: bool },
    /// A lease is held until a millisecond after it runs out (`<=` for `<`).
    LeaseOffByOne,
    /// A TTL hides a job a millisecond after it runs out.
    TtlOffByOne,
    /// Listings ignore the cursor and page size: every page is the first one.
    ListIgnoresCursor,
}

/// The jobs of every namespace, as the instances of one [`MapJobs`] configuration share them.
pub type JobMaps = Arc<Mutex<HashMap<String, BTreeMap<JobId, Job>>>>;

/// A job store written directly on a map, without any `BlobStore`: the state lives in
/// `maps` (shared through an `Arc` by the instances that are handed the same one), per
/// namespace, and every change happens under its lock.
pub struct MapJobs {
    maps: JobMaps,
    namespace: String,
    clock: Arc<dyn Clock>,
    fault: JobFault,
}

impl fmt::Debug for MapJobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MapJobs({})", self.namespace)
    }
}

/// A factory of [`MapJobs`] instances with `fault`. With `shared`, every instance uses one
/// map (a correct job store if the fault is `None`); without, each instance keeps a map of
/// its own, as the seed's `const jobs = new Map()` did.
pub fn map_jobs(
    shared: bool,
    fault: JobFault,
) -> impl Fn(JobEnv) -> std::future::Ready<Result<Arc<dyn JobStore>>> + Send + Sync + 'static {
    let maps: JobMaps = Arc::new(Mutex::new(HashMap::new()));
    move |env: JobEnv| {
        let maps = if shared {
            maps.clone()
        } else {
            Arc::new(Mutex::new(HashMap::new()))
        };
        let store = MapJobs {
            maps,
            namespace: env.namespace().to_owned(),
            clock: env.clock(),
            fault,
        };
        std::future::ready(Ok(Arc::new(store) as Arc<dyn JobStore>))
    }
}

fn not_found(id: &JobId) -> Error {
    Error::new(ErrorKind::NotFound, format!("job not found: {id}"))
}

fn check_owner(job: &Job, owner: &str) -> Result<()> {
    if job.status != JobStatus::Running {
        return Err(Error::new(
            ErrorKind::IllegalTransition,
            format!("job {} is {}, not running", job.id, job.status),
        ));
    }
    match &job.lease {
        Some(lease) if lease.owner == owner => Ok(()),
        _ => Err(Error::new(
            ErrorKind::LeaseHeld,
            format!("job {} is not leased to {owner:?}", job.id),
        )),
    }
}

impl MapJobs {
    fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn expired(&self, job: &Job, now: Timestamp) -> bool {
        match (self.fault, job.expires_at) {
            (JobFault::TtlOffByOne, Some(t)) => t.as_millis() < now.as_millis(),
            _ => job.is_expired(now),
        }
    }

    fn leased(&self, job: &Job, now: Timestamp) -> bool {
        match (self.fault, &job.lease) {
            (JobFault::LeaseOffByOne, Some(l)) => {
                job.status == JobStatus::Running && l.expires_at >= now
            }
            _ => job.is_leased(now),
        }
    }

    /// Runs `f` on this namespace's jobs under the lock.
    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<JobId, Job>) -> T) -> T {
        let mut maps = lock(&self.maps);
        f(maps.entry(self.namespace.clone()).or_default())
    }

    fn read(&self, id: &JobId, now: Timestamp) -> Option<Job> {
        self.with(|jobs| jobs.get(id).filter(|j| !self.expired(j, now)).cloned())
    }

    fn claim_change(
        &self,
        owner: &str,
        lease_ms: u64,
        job: &mut Job,
        now: Timestamp,
    ) -> Result<()> {
        if self.leased(job, now) {
            return Err(Error::new(
                ErrorKind::LeaseHeld,
                format!("job {} is already claimed", job.id),
            ));
        }
        job.transition(JobStatus::Running, now)?;
        job.attempts = job.attempts.saturating_add(1);
        job.lease = Some(Lease {
            owner: owner.to_owned(),
            expires_at: Timestamp::from_millis(now.as_millis().saturating_add(lease_ms)),
        });
        Ok(())
    }
}

#[async_trait]
impl JobStore for MapJobs {
    async fn create(&self, new: NewJob) -> Result<Job> {
        let now = self.now();
        let id = match new.id {
            Some(id) => id,
            None => JobId::generate(now)?,
        };
        let job = Job {
            id: id.clone(),
            kind: new.kind,
            status: JobStatus::Pending,
            input: new.input,
            progress: None,
            result: None,
            error: None,
            attempts: 0,
            lease: None,
            created_at: now,
            updated_at: now,
            expires_at: new.ttl.map(|ttl| {
                Timestamp::from_millis(now.as_millis().saturating_add(ttl.as_millis() as u64))
            }),
        };
        self.with(|jobs| match jobs.get(&id) {
            Some(existing) if !self.expired(existing, now) => {
                if existing.kind == job.kind {
                    Ok(existing.clone())
                } else {
                    Err(Error::invalid(format!(
                        "job {id} already exists with another kind"
                    )))
                }
            }
            _ => {
                jobs.insert(id.clone(), job.clone());
                Ok(job)
            }
        })
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        Ok(self.read(id, self.now()))
    }

    async fn update(&self, id: &JobId, change: UpdateFn<'_>) -> Result<Job> {
        let now = self.now();
        self.with(|jobs| {
            let Some(mut job) = jobs.get(id).filter(|j| !self.expired(j, now)).cloned() else {
                return Err(not_found(id));
            };
            change(&mut job, now)?;
            if job.id != *id {
                return Err(Error::invalid("an update may not change the job id"));
            }
            jobs.insert(id.clone(), job.clone());
            Ok(job)
        })
    }

    async fn claim(&self, id: &JobId, owner: &str, lease: Duration) -> Result<Job> {
        if owner.is_empty() {
            return Err(Error::invalid("lease owner must not be empty"));
        }
        let lease_ms = lease.as_millis() as u64;
        if lease_ms == 0 {
            return Err(Error::invalid("lease must be at least one millisecond"));
        }
        if let JobFault::ClaimWithoutCas { yields } = self.fault {
            // Read, decide, write back: two separate steps.
            let now = self.now();
            let Some(mut job) = self.read(id, now) else {
                return Err(not_found(id));
            };
            self.claim_change(owner, lease_ms, &mut job, now)?;
            if yields {
                tokio::task::yield_now().await;
            }
            self.with(|jobs| jobs.insert(id.clone(), job.clone()));
            return Ok(job);
        }
        self.update(id, &|job: &mut Job, now: Timestamp| {
            self.claim_change(owner, lease_ms, job, now)
        })
        .await
    }

    async fn progress(
        &self,
        id: &JobId,
        owner: &str,
        percent: u8,
        message: Option<String>,
    ) -> Result<Job> {
        if percent > 100 {
            return Err(Error::invalid("progress is over 100%"));
        }
        self.update(id, &|job: &mut Job, now: Timestamp| {
            check_owner(job, owner)?;
            job.progress = Some(Progress {
                percent,
                message: message.clone(),
            });
            job.updated_at = now;
            Ok(())
        })
        .await
    }

    async fn succeed(&self, id: &JobId, owner: &str, result: Value) -> Result<Job> {
        self.update(id, &|job: &mut Job, now: Timestamp| {
            check_owner(job, owner)?;
            job.transition(JobStatus::Succeeded, now)?;
            job.result = Some(result.clone());
            job.progress = Some(Progress {
                percent: 100,
                message: job.progress.take().and_then(|p| p.message),
            });
            Ok(())
        })
        .await
    }

    async fn fail(&self, id: &JobId, owner: &str, error: String) -> Result<Job> {
        self.update(id, &|job: &mut Job, now: Timestamp| {
            check_owner(job, owner)?;
            job.transition(JobStatus::Failed, now)?;
            job.error = Some(error.clone());
            Ok(())
        })
        .await
    }

    async fn cancel(&self, id: &JobId) -> Result<Job> {
        self.update(id, &|job: &mut Job, now: Timestamp| {
            job.transition(JobStatus::Cancelled, now)
        })
        .await
    }

    async fn delete(&self, id: &JobId) -> Result<bool> {
        let now = self.now();
        Ok(self.with(|jobs| jobs.remove(id).is_some_and(|j| !self.expired(&j, now))))
    }

    async fn list(&self, filter: JobFilter) -> Result<JobPage> {
        let now = self.now();
        let size = filter.page_size.unwrap_or(1000).max(1);
        let after = match self.fault {
            JobFault::ListIgnoresCursor => None,
            _ => filter.cursor.clone(),
        };
        self.with(|jobs| {
            let examined: Vec<&Job> = jobs
                .values()
                .filter(|j| after.as_deref().is_none_or(|c| j.id.as_str() > c))
                .take(size)
                .collect();
            let more = examined.len() == size
                && jobs
                    .keys()
                    .any(|id| examined.last().is_some_and(|l| id > &l.id));
            let next_cursor = more
                .then(|| examined.last().map(|j| j.id.to_string()))
                .flatten();
            let page = examined
                .into_iter()
                .filter(|j| {
                    !self.expired(j, now)
                        && filter.status.is_none_or(|s| s == j.status)
                        && filter.kind.as_ref().is_none_or(|k| *k == j.kind)
                })
                .cloned()
                .collect();
            Ok(JobPage {
                jobs: page,
                next_cursor,
            })
        })
    }

    async fn purge_expired(&self) -> Result<usize> {
        let now = self.now();
        Ok(self.with(|jobs| {
            let before = jobs.len();
            jobs.retain(|_, j| !self.expired(j, now));
            before - jobs.len()
        }))
    }
}
