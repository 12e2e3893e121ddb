//! A job store written directly on a map, without any `BlobStore`: correct when its state
//! is shared, and with one deliberate fault each otherwise.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use blobjobs_conformance::JobEnv;
use blobjobs_store_api::jobs::UpdateFn;
use blobjobs_store_api::{
    Clock, Error, ErrorKind, Job, JobFilter, JobId, JobPage, JobStatus, JobStore, Lease, NewJob,
    Progress, Result, Timestamp,
};
use serde_json::Value;

use super::lock;

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
