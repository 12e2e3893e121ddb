//! What a case works with: instances under the run's random prefix, a shared manual clock,
//! and a timeline of every operation that a failure report shows. This file holds the
//! context and `Failure`; `instance.rs` and `job_handle.rs` the recorded blob and job
//! instances, `timeline.rs` the timeline and its renderings.

mod instance;
mod job_handle;
mod timeline;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use blobjobs_store_api::{BlobStore, Error, ErrorKind, JobStore, ManualClock, Result, Timestamp};

pub(crate) use instance::Instance;
pub(crate) use job_handle::JobHandle;
use timeline::{Owners, Timeline};
pub(crate) use timeline::{show_etag, show_job, show_value};

use crate::causes;
use crate::factory::{JobEnv, SharedFactory, SharedJobFactory};
use crate::options::{Capabilities, Options};
use crate::probe::{Probe, Scoped};
use crate::settle::Ledger;

/// The time every case's manual clock starts at (2026-01-01T00:00:00Z).
pub(crate) const CLOCK_START_MS: u64 = 1_767_225_600_000;

/// Why a case failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    /// A timeline of its own (model-based cases build one); otherwise the case's log is used.
    pub(crate) timeline: Option<Vec<String>>,
    pub(crate) replay: Option<String>,
    /// The likely cause, one of [`crate::causes`], when the failure itself knows it; else the
    /// runner names it from the case's symptoms or its first promise.
    pub(crate) cause: Option<&'static str>,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            timeline: None,
            replay: None,
            cause: None,
        }
    }

    /// Names the likely cause (one of [`crate::causes`]).
    pub(crate) fn because(mut self, cause: &'static str) -> Self {
        self.cause = Some(cause);
        self
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let f = Failure::new(format!("unexpected error {}: {}", e.kind(), e.message()));
        match e.kind() {
            ErrorKind::Timeout | ErrorKind::Unavailable => f.because(causes::UNAVAILABLE),
            ErrorKind::Unauthorized => f.because(causes::UNAUTHORIZED),
            _ => f,
        }
    }
}

/// Runs `fut` with a time limit; an expired limit is a `Timeout` error.
pub(crate) async fn limited<T>(limit: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("operation took longer than {} ms", limit.as_millis()),
        )),
    }
}

struct CtxInner {
    blobs: Option<SharedFactory>,
    jobs: SharedJobFactory,
    prefix: String,
    caps: Capabilities,
    options: Options,
    seed: u64,
    clock: ManualClock,
    log: Arc<Timeline>,
    instances: AtomicUsize,
    fresh: AtomicUsize,
    probe: Arc<Probe>,
    ledger: Ledger,
    owners: Arc<Owners>,
}

/// What a run grades: a blob-store factory (and the job layer over it), or a job store alone.
#[derive(Clone)]
pub(crate) struct Target {
    /// Instances of the blob store; `None` when the run grades a job store alone.
    pub(crate) blobs: Option<SharedFactory>,
    /// Instances of the job store.
    pub(crate) jobs: SharedJobFactory,
}

/// Everything one case needs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Ctx(Arc<CtxInner>);

impl Ctx {
    pub(crate) fn new(
        target: Target,
        prefix: String,
        caps: Capabilities,
        options: Options,
        seed: u64,
    ) -> Self {
        let probe = Arc::new(Probe::new(seed, options.perturb));
        Ctx(Arc::new(CtxInner {
            blobs: target.blobs,
            jobs: target.jobs,
            prefix,
            caps,
            options,
            seed,
            clock: ManualClock::new(Timestamp::from_millis(CLOCK_START_MS)),
            log: Arc::new(Timeline::default()),
            instances: AtomicUsize::new(0),
            fresh: AtomicUsize::new(0),
            probe,
            ledger: Ledger::default(),
            owners: Arc::new(Owners::default()),
        }))
    }

    pub(crate) fn caps(&self) -> &Capabilities {
        &self.0.caps
    }

    pub(crate) fn options(&self) -> &Options {
        &self.0.options
    }

    /// The seed of this case (derived from the run's seed and the case's name).
    pub(crate) fn seed(&self) -> u64 {
        self.0.seed
    }

    /// The blob-store factory; `None` when the run grades a job store alone.
    pub(crate) fn blob_factory(&self) -> Option<&SharedFactory> {
        self.0.blobs.as_ref()
    }

    /// The job-store factory.
    pub(crate) fn job_factory(&self) -> &SharedJobFactory {
        &self.0.jobs
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.0.prefix
    }

    pub(crate) fn probe(&self) -> &Arc<Probe> {
        &self.0.probe
    }

    /// What the case expects to read once the store has settled (see [`crate::settle`]).
    pub(crate) fn ledger(&self) -> &Ledger {
        &self.0.ledger
    }

    pub(crate) fn timeline(&self) -> Vec<String> {
        self.0.log.lines()
    }

    /// The longest key a case may use below its prefix.
    pub(crate) fn max_key_bytes(&self) -> usize {
        self.0
            .caps
            .max_key_bytes
            .saturating_sub(self.0.prefix.len())
    }

    /// A prefix below the case's own that no other part of the case uses.
    pub(crate) fn fresh_prefix(&self) -> String {
        let n = self.0.fresh.fetch_add(1, Ordering::SeqCst);
        format!("{}f{n}/", self.0.prefix)
    }

    pub(crate) fn note(&self, line: impl Into<String>) {
        self.0.log.push(line.into());
    }

    fn next_id(&self) -> usize {
        self.0.instances.fetch_add(1, Ordering::SeqCst)
    }

    /// Opens a new blob-store instance through the factory.
    pub(crate) async fn instance(&self) -> Result<Instance, Failure> {
        self.instance_under(self.0.prefix.clone()).await
    }

    /// Opens a new blob-store instance that sees the keys under `prefix` (a prefix of the
    /// case's own, such as one from [`Ctx::fresh_prefix`]).
    pub(crate) async fn instance_under(&self, prefix: String) -> Result<Instance, Failure> {
        let id = self.next_id();
        let Some(factory) = &self.0.blobs else {
            return Err(Failure::new(
                "the run grades a job store, which has no blob-store instances",
            ));
        };
        let raw = limited(self.0.options.op_timeout, factory.instance())
            .await
            .map_err(|e| {
                Failure::new(format!(
                    "the factory could not open instance {id} (error {}): {}",
                    e.kind(),
                    e.message()
                ))
                .because(causes::NO_INSTANCE)
            })?;
        let store: Arc<dyn BlobStore> =
            Arc::new(Scoped::new(raw.clone(), prefix, self.0.probe.clone()));
        Ok(Instance {
            id,
            store,
            raw,
            log: self.0.log.clone(),
            op_timeout: self.0.options.op_timeout,
            owners: self.0.owners.clone(),
            probe: self.0.probe.clone(),
        })
    }

    /// Opens a new blob-store instance seen through `prefix`, without recording its calls in
    /// the case's timeline (the model-based cases keep timelines of their own).
    pub(crate) async fn scoped_blobs(&self, prefix: String) -> Result<Arc<dyn BlobStore>, Failure> {
        Ok(self.instance_under(prefix).await?.store)
    }

    /// Opens `n` new instances.
    pub(crate) async fn instances(&self, n: usize) -> Result<Vec<Instance>, Failure> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.instance().await?);
        }
        Ok(out)
    }

    /// The environment of the case's job-store instances: its prefix as the namespace and
    /// its shared manual clock.
    pub(crate) fn job_env(&self) -> JobEnv {
        JobEnv::for_case(
            self.0.prefix.clone(),
            self.0.clock.clone(),
            self.0.probe.clone(),
        )
    }

    /// The environment of job-store instances on the namespace `prefix` (one of the case's
    /// own, such as one from [`Ctx::fresh_prefix`]), on the case's clock.
    pub(crate) fn job_env_for(&self, prefix: String) -> JobEnv {
        JobEnv::for_case(prefix, self.0.clock.clone(), self.0.probe.clone())
    }

    /// Opens a new job-store instance through the job factory, on the case's clock.
    pub(crate) async fn job_instance(&self) -> Result<JobHandle, Failure> {
        let id = self.next_id();
        let jobs = open_jobs(&self.0.jobs, &self.job_env(), self.0.options.op_timeout)
            .await
            .map_err(|e| {
                Failure::new(format!(
                    "the factory could not open job-store instance {id} (error {}): {}",
                    e.kind(),
                    e.message()
                ))
                .because(causes::NO_INSTANCE)
            })?;
        Ok(JobHandle {
            id,
            jobs,
            log: self.0.log.clone(),
            op_timeout: self.0.options.op_timeout,
            owners: self.0.owners.clone(),
            probe: self.0.probe.clone(),
        })
    }

    /// The project's job layer over the blob instance `instance`, on the case's clock (for
    /// the cases that grade both layers of one store at once, such as the crash case).
    pub(crate) fn blob_jobs(&self, instance: &Instance) -> JobHandle {
        let config = blobjobs_store_api::JobStoreConfig {
            clock: Arc::new(self.0.clock.clone()),
            ..blobjobs_store_api::JobStoreConfig::default()
        };
        JobHandle {
            id: instance.id,
            jobs: Arc::new(blobjobs_store_api::BlobJobStore::with_config(
                instance.store.clone(),
                config,
            )),
            log: self.0.log.clone(),
            op_timeout: self.0.options.op_timeout,
            owners: self.0.owners.clone(),
            probe: self.0.probe.clone(),
        }
    }

    /// Opens `n` new job-store instances.
    pub(crate) async fn job_instances(&self, n: usize) -> Result<Vec<JobHandle>, Failure> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.job_instance().await?);
        }
        Ok(out)
    }

    /// The case's shared manual clock.
    pub(crate) fn clock(&self) -> &ManualClock {
        &self.0.clock
    }

    /// The time on the case's shared clock.
    pub(crate) fn now(&self) -> Timestamp {
        use blobjobs_store_api::Clock as _;
        self.0.clock.now()
    }

    /// Moves the shared clock forward.
    pub(crate) fn advance(&self, by: Duration) {
        self.0.clock.advance(by);
        self.note(format!("clock: advance {} ms", by.as_millis()));
    }
}

/// Opens one job-store instance from `factory` within `limit`.
pub(crate) async fn open_jobs(
    factory: &SharedJobFactory,
    env: &JobEnv,
    limit: Duration,
) -> Result<Arc<dyn JobStore>> {
    limited(limit, factory.instance(env)).await
}
