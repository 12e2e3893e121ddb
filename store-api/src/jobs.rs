//! The `JobStore` trait and its one implementation, generic over any `BlobStore`.
//!
//! Key layout: each job is one JSON blob under `jobs/<id>` (see [`JOB_PREFIX`]), with
//! metadata `{"kind": …, "status": …}`. Every change is a read-modify-write guarded by a
//! compare-and-swap on the blob's ETag and retried on conflict, so no update is lost between
//! instances and exactly one of two racing claimants wins.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;

use crate::blob::{BlobStore, Condition, ListOptions, Metadata, SetOptions, SetOutcome, Timestamp};
use crate::clock::{Clock, SystemClock};
use crate::error::{Error, ErrorKind, Result};
use crate::job::{Job, JobId, JobStatus, Lease, NewJob, Progress};

/// The key prefix under which jobs are stored.
pub const JOB_PREFIX: &str = "jobs/";

/// Which jobs `JobStore::list` returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this kind.
    pub kind: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// How many stored jobs to examine for this page (before filtering); `None` for the
    /// backend's default page size.
    pub page_size: Option<usize>,
}

/// One page of jobs, in id order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobPage {
    /// The matching jobs on this page. A page can be empty while `next_cursor` is set, when
    /// none of the examined jobs matched the filter.
    pub jobs: Vec<Job>,
    /// Pass this back in [`JobFilter::cursor`] for the next page.
    pub next_cursor: Option<String>,
}

/// A boxed read-modify-write step for [`JobStore::update`].
pub type UpdateFn<'a> = &'a (dyn Fn(&mut Job, Timestamp) -> Result<()> + Send + Sync);

/// Job tracking that every serverless instance can share.
#[async_trait]
pub trait JobStore: Send + Sync + fmt::Debug {
    /// Creates a pending job. With a caller-chosen id that already exists, returns the
    /// existing job unchanged (if it is of the same kind) instead of creating a second one.
    async fn create(&self, new: NewJob) -> Result<Job>;

    /// The job, or `None` if it does not exist or its TTL has run out.
    async fn get(&self, id: &JobId) -> Result<Option<Job>>;

    /// Applies `change` as one atomic read-modify-write. `change` may run more than once
    /// (once per conflict); an error from it aborts the update and is returned.
    async fn update(&self, id: &JobId, change: UpdateFn<'_>) -> Result<Job>;

    /// Takes the job for `owner` for `lease`: pending to running, or running with an expired
    /// lease to running again. Counts an attempt. Exactly one of several concurrent
    /// claimants succeeds; the others get [`ErrorKind::LeaseHeld`].
    async fn claim(&self, id: &JobId, owner: &str, lease: Duration) -> Result<Job>;

    /// Records progress of a running job held by `owner`.
    async fn progress(
        &self,
        id: &JobId,
        owner: &str,
        percent: u8,
        message: Option<String>,
    ) -> Result<Job>;

    /// Finishes a running job held by `owner` with `result`.
    async fn succeed(&self, id: &JobId, owner: &str, result: Value) -> Result<Job>;

    /// Finishes a running job held by `owner` with `error`.
    async fn fail(&self, id: &JobId, owner: &str, error: String) -> Result<Job>;

    /// Cancels a pending or running job.
    async fn cancel(&self, id: &JobId) -> Result<Job>;

    /// Removes a job; returns whether it existed.
    async fn delete(&self, id: &JobId) -> Result<bool>;

    /// One page of jobs matching `filter`, in id order (for generated ids that is the order
    /// they were created in, oldest first).
    async fn list(&self, filter: JobFilter) -> Result<JobPage>;

    /// Deletes every job whose TTL has run out; returns how many it deleted.
    async fn purge_expired(&self) -> Result<usize>;
}

/// Settings of [`BlobJobStore`].
#[derive(Debug, Clone)]
pub struct JobStoreConfig {
    /// How many times a read-modify-write is retried after losing a compare-and-swap race
    /// before giving up with [`ErrorKind::Conflict`].
    pub max_cas_retries: u32,
    /// The source of time for leases and TTLs.
    pub clock: Arc<dyn Clock>,
}

impl Default for JobStoreConfig {
    fn default() -> Self {
        JobStoreConfig {
            max_cas_retries: 64,
            clock: Arc::new(SystemClock),
        }
    }
}

/// The `JobStore` over any `BlobStore`: the only implementation of job semantics.
#[derive(Debug, Clone)]
pub struct BlobJobStore<S: ?Sized> {
    blobs: Arc<S>,
    config: JobStoreConfig,
}

impl<S: BlobStore + ?Sized> BlobJobStore<S> {
    /// Jobs stored in `blobs` with the default settings.
    pub fn new(blobs: Arc<S>) -> Self {
        BlobJobStore::with_config(blobs, JobStoreConfig::default())
    }

    /// Jobs stored in `blobs` with `config`.
    pub fn with_config(blobs: Arc<S>, config: JobStoreConfig) -> Self {
        BlobJobStore { blobs, config }
    }

    /// The underlying blob store.
    pub fn blobs(&self) -> &Arc<S> {
        &self.blobs
    }

    fn key(id: &JobId) -> String {
        format!("{JOB_PREFIX}{id}")
    }

    /// The job ID a listed key names, or `None` for a key that is not a job's. A store that
    /// lists keys outside the prefix it was asked for (a third-party one, say) is not trusted
    /// to have cut them at a character boundary, so the key is never sliced by length.
    fn id_of(key: &str) -> Option<JobId> {
        JobId::new(key.strip_prefix(JOB_PREFIX)?).ok()
    }

    fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    fn encode(job: &Job) -> Result<(Bytes, SetOptions)> {
        let body = serde_json::to_vec(job)
            .map_err(|e| Error::new(ErrorKind::Corrupt, format!("cannot encode job: {e}")))?;
        let metadata = Metadata::from_pairs([
            ("kind", Value::from(job.kind.clone())),
            ("status", Value::from(job.status.as_str())),
        ]);
        Ok((Bytes::from(body), SetOptions::new().metadata(metadata)))
    }

    fn decode(id: &JobId, bytes: &[u8]) -> Result<Job> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                format!("stored job {id} is not a valid job: {e}"),
            )
        })
    }

    /// Reads a job with its ETag, hiding expired ones.
    async fn read(&self, id: &JobId) -> Result<Option<(Job, crate::blob::Etag)>> {
        let Some(blob) = self.blobs.get(&Self::key(id)).await? else {
            return Ok(None);
        };
        let job = Self::decode(id, &blob.value)?;
        if job.is_expired(self.now()) {
            return Ok(None);
        }
        Ok(Some((job, blob.info.etag)))
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
            Some(lease) => Err(Error::new(
                ErrorKind::LeaseHeld,
                format!(
                    "job {} is leased to {:?}, not {owner:?}",
                    job.id, lease.owner
                ),
            )),
            None => Err(Error::new(
                ErrorKind::LeaseHeld,
                format!("job {} has no lease", job.id),
            )),
        }
    }
}

#[async_trait]
impl<S: BlobStore + ?Sized> JobStore for BlobJobStore<S> {
    async fn create(&self, new: NewJob) -> Result<Job> {
        let now = self.now();
        let id = match new.id {
            Some(id) => id,
            None => JobId::generate(now)?,
        };
        let ttl_ms = new
            .ttl
            .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
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
            expires_at: ttl_ms.map(|ms| Timestamp::from_millis(now.as_millis().saturating_add(ms))),
        };
        let (body, options) = Self::encode(&job)?;
        for _ in 0..=self.config.max_cas_retries {
            match self
                .blobs
                .set(&Self::key(&id), body.clone(), options.clone().if_new())
                .await?
            {
                SetOutcome::Written { .. } => return Ok(job),
                SetOutcome::ConditionFailed => {}
            }
            // The id is taken. A live job of the same kind is the result of an earlier
            // attempt of this same create; an expired one may be replaced.
            let Some(blob) = self.blobs.get(&Self::key(&id)).await? else {
                continue;
            };
            let existing = Self::decode(&id, &blob.value)?;
            if existing.is_expired(now) {
                let replaced = self
                    .blobs
                    .set(
                        &Self::key(&id),
                        body.clone(),
                        options
                            .clone()
                            .condition(Condition::IfMatch(blob.info.etag)),
                    )
                    .await?;
                if replaced.is_written() {
                    return Ok(job);
                }
                continue;
            }
            if existing.kind != job.kind {
                return Err(Error::invalid(format!(
                    "job {id} already exists with kind {:?}",
                    existing.kind
                )));
            }
            return Ok(existing);
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!("gave up creating job {id} after repeated conflicts"),
        ))
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        Ok(self.read(id).await?.map(|(job, _)| job))
    }

    async fn update(&self, id: &JobId, change: UpdateFn<'_>) -> Result<Job> {
        for _ in 0..=self.config.max_cas_retries {
            let Some((mut job, etag)) = self.read(id).await? else {
                return Err(Self::not_found(id));
            };
            let now = self.now();
            change(&mut job, now)?;
            // The id is the key; a change may not move the job elsewhere.
            if job.id != *id {
                return Err(Error::invalid("an update may not change the job id"));
            }
            let (body, options) = Self::encode(&job)?;
            match self
                .blobs
                .set(
                    &Self::key(id),
                    body,
                    options.condition(Condition::IfMatch(etag)),
                )
                .await?
            {
                SetOutcome::Written { .. } => return Ok(job),
                SetOutcome::ConditionFailed => continue,
            }
        }
        Err(Error::new(
            ErrorKind::Conflict,
            format!("gave up updating job {id} after repeated conflicts"),
        ))
    }

    async fn claim(&self, id: &JobId, owner: &str, lease: Duration) -> Result<Job> {
        if owner.is_empty() {
            return Err(Error::invalid("lease owner must not be empty"));
        }
        let lease_ms = u64::try_from(lease.as_millis()).unwrap_or(u64::MAX);
        if lease_ms == 0 {
            return Err(Error::invalid("lease must be at least one millisecond"));
        }
        let owner = owner.to_owned();
        self.update(id, &move |job: &mut Job, now: Timestamp| {
            if job.is_leased(now) {
                let holder = job.lease.as_ref().map(|l| l.owner.as_str()).unwrap_or("");
                return Err(Error::new(
                    ErrorKind::LeaseHeld,
                    format!("job {} is already claimed by {holder:?}", job.id),
                ));
            }
            job.transition(JobStatus::Running, now)?;
            job.attempts = job.attempts.saturating_add(1);
            job.lease = Some(Lease {
                owner: owner.clone(),
                expires_at: Timestamp::from_millis(now.as_millis().saturating_add(lease_ms)),
            });
            Ok(())
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
            return Err(Error::invalid(format!(
                "progress is {percent}%, the maximum is 100"
            )));
        }
        self.update(id, &|job: &mut Job, now: Timestamp| {
            Self::check_owner(job, owner)?;
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
            Self::check_owner(job, owner)?;
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
            Self::check_owner(job, owner)?;
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
        let existed = self.read(id).await?.is_some();
        self.blobs.delete(&Self::key(id)).await?;
        Ok(existed)
    }

    async fn list(&self, filter: JobFilter) -> Result<JobPage> {
        let mut options = ListOptions::new().prefix(JOB_PREFIX).cursor(filter.cursor);
        options.page_size = filter.page_size;
        let page = self.blobs.list(options).await?;
        let now = self.now();
        let mut jobs = Vec::new();
        for entry in page.blobs {
            let Some(id) = Self::id_of(&entry.key) else {
                continue;
            };
            // A job deleted between the listing and this read is simply skipped.
            let Some(blob) = self.blobs.get(&entry.key).await? else {
                continue;
            };
            let job = Self::decode(&id, &blob.value)?;
            if job.is_expired(now)
                || filter.status.is_some_and(|s| s != job.status)
                || filter.kind.as_ref().is_some_and(|k| *k != job.kind)
            {
                continue;
            }
            jobs.push(job);
        }
        Ok(JobPage {
            jobs,
            next_cursor: page.next_cursor,
        })
    }

    async fn purge_expired(&self) -> Result<usize> {
        let now = self.now();
        let mut purged = 0;
        let mut cursor = None;
        loop {
            let page = self
                .blobs
                .list(ListOptions::new().prefix(JOB_PREFIX).cursor(cursor))
                .await?;
            for entry in page.blobs {
                let Some(blob) = self.blobs.get(&entry.key).await? else {
                    continue;
                };
                let Some(id) = Self::id_of(&entry.key) else {
                    continue;
                };
                let job = Self::decode(&id, &blob.value)?;
                if job.is_expired(now) {
                    // Delete only the version that was read as expired; one that was
                    // replaced meanwhile by a fresh job with the same id stays. The blob
                    // API has no conditional delete, so re-check the ETag just before.
                    let still = self.blobs.get_metadata(&entry.key).await?;
                    if still.is_some_and(|info| info.etag == blob.info.etag) {
                        self.blobs.delete(&entry.key).await?;
                        purged += 1;
                    }
                }
            }
            cursor = page.next_cursor;
            if cursor.is_none() {
                return Ok(purged);
            }
        }
    }
}
