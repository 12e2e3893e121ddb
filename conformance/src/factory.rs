//! How the suite gets instances: factories that build a fresh store handle per call, of a
//! `BlobStore` or of a `JobStore`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use blobjobs_store_api::{
    BlobJobStore, BlobStore, Clock, Error, ErrorKind, JobStore, JobStoreConfig, ManualClock,
    Result, Timestamp,
};

use crate::probe::{Probe, Scoped};
use crate::remote::KillSwitch;

/// Builds *instances* of one store configuration.
///
/// An instance is what a fresh serverless invocation would build: a new handle from the same
/// configuration that shares nothing with earlier handles in process memory. For a file store
/// that is a new `FileStore` over the same directory; for an HTTP store, a new client for the
/// same endpoint. Returning clones of one shared handle would hide exactly the bugs the
/// cross-instance cases look for.
///
/// Any `Fn() -> impl Future<Output = Result<Arc<dyn BlobStore>>>` closure is a factory.
#[async_trait]
pub trait InstanceFactory: Send + Sync + 'static {
    /// A new instance.
    async fn instance(&self) -> Result<Arc<dyn BlobStore>>;

    /// Whether every instance is an OS process of its own that
    /// [`InstanceFactory::killable_instance`] can kill as a crash would. The crash case runs
    /// only then; factories whose instances live in the calling process skip it.
    fn spawns_processes(&self) -> bool {
        false
    }

    /// A new instance and the switch that kills its process (SIGKILL). The default, for
    /// instances in the calling process, is an [`ErrorKind::InvalidInput`] error.
    async fn killable_instance(&self) -> Result<(Arc<dyn BlobStore>, KillSwitch)> {
        Err(Error::new(
            ErrorKind::InvalidInput,
            "the instances of this factory are not processes, so none can be killed",
        ))
    }
}

#[async_trait]
impl<F, Fut> InstanceFactory for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Arc<dyn BlobStore>>> + Send + 'static,
{
    async fn instance(&self) -> Result<Arc<dyn BlobStore>> {
        (self)().await
    }
}

/// A shared, type-erased factory, as the runner keeps it.
pub type SharedFactory = Arc<dyn InstanceFactory>;

/// A shared factory is a factory, so that runners holding one can pass it to
/// [`crate::run_all`] and friends directly.
#[async_trait]
impl InstanceFactory for SharedFactory {
    async fn instance(&self) -> Result<Arc<dyn BlobStore>> {
        self.as_ref().instance().await
    }

    fn spawns_processes(&self) -> bool {
        self.as_ref().spawns_processes()
    }

    async fn killable_instance(&self) -> Result<(Arc<dyn BlobStore>, KillSwitch)> {
        self.as_ref().killable_instance().await
    }
}

/// What a job-store instance is built with: the namespace of the case and the clock its
/// instances share.
///
/// Every instance built with the same namespace must see the same jobs (that is the point);
/// instances built with different namespaces must not see each other's jobs, so that cases
/// and runs never meet. A store maps the namespace to whatever separates data for it: a key
/// prefix, a table, a schema, a column. It is a short ASCII string of lowercase letters,
/// digits, `-` and `/`, ending in `/`.
///
/// Leases and TTLs are judged by [`JobEnv::clock`], which the suite moves by hand, so that a
/// case can step over a lease's expiry without waiting for it. A job store graded by the
/// suite must take its time from this clock.
#[derive(Clone)]
pub struct JobEnv {
    namespace: String,
    clock: Arc<dyn Clock>,
    probe: Option<Arc<Probe>>,
}

impl fmt::Debug for JobEnv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobEnv")
            .field("namespace", &self.namespace)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl JobEnv {
    /// An environment with `namespace` and `clock`, for driving a factory by hand.
    pub fn new(namespace: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        JobEnv {
            namespace: namespace.into(),
            clock,
            probe: None,
        }
    }

    /// The environment of one instance of a case: the case's namespace, clock and probe.
    pub(crate) fn for_case(namespace: String, clock: ManualClock, probe: Arc<Probe>) -> Self {
        JobEnv {
            namespace,
            clock: Arc::new(clock),
            probe: Some(probe),
        }
    }

    /// The namespace every instance of this case shares.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The clock leases and TTLs are judged by.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// `blobs` seen through the namespace as a key prefix, for job stores built on a
    /// `BlobStore`. Inside the suite the view also records and perturbs every call (see
    /// [`crate::Options::perturb()`]), so that races inside the job layer show.
    pub fn scope(&self, blobs: Arc<dyn BlobStore>) -> Arc<dyn BlobStore> {
        match &self.probe {
            Some(probe) => Arc::new(Scoped::new(blobs, self.namespace.clone(), probe.clone())),
            None => Arc::new(Scoped::new(
                blobs,
                self.namespace.clone(),
                Arc::new(Probe::quiet()),
            )),
        }
    }

    /// The same environment on a clock of its own that reads `now`, for the fresh instances
    /// that re-read a case after it settled.
    pub(crate) fn at(&self, now: Timestamp) -> JobEnv {
        self.with_clock(ManualClock::new(now))
    }

    /// The same environment on `clock`.
    pub(crate) fn with_clock(&self, clock: ManualClock) -> JobEnv {
        JobEnv {
            namespace: self.namespace.clone(),
            clock: Arc::new(clock),
            probe: self.probe.clone(),
        }
    }
}

/// Builds *instances* of one job-store configuration: the job-store twin of
/// [`InstanceFactory`].
///
/// Every call builds a new handle, as a fresh serverless invocation would, on the namespace
/// and clock of `env` (see [`JobEnv`]). [`BlobJobFactory`] is the factory of the project's
/// own job layer over any blob-store factory; a team with a job store of its own (SQL-native,
/// a queue) implements this trait, or passes a closure
/// `Fn(JobEnv) -> impl Future<Output = Result<Arc<dyn JobStore>>>`.
#[async_trait]
pub trait JobStoreFactory: Send + Sync + 'static {
    /// A new instance.
    async fn instance(&self, env: &JobEnv) -> Result<Arc<dyn JobStore>>;
}

#[async_trait]
impl<F, Fut> JobStoreFactory for F
where
    F: Fn(JobEnv) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Arc<dyn JobStore>>> + Send + 'static,
{
    async fn instance(&self, env: &JobEnv) -> Result<Arc<dyn JobStore>> {
        (self)(env.clone()).await
    }
}

/// A shared, type-erased job-store factory.
pub type SharedJobFactory = Arc<dyn JobStoreFactory>;

#[async_trait]
impl JobStoreFactory for SharedJobFactory {
    async fn instance(&self, env: &JobEnv) -> Result<Arc<dyn JobStore>> {
        self.as_ref().instance(env).await
    }
}

/// The project's job layer, [`BlobJobStore`], over instances of a blob-store factory: one
/// new blob instance per job-store instance, seen through the namespace as a key prefix, on
/// the environment's clock.
pub struct BlobJobFactory {
    blobs: SharedFactory,
}

impl BlobJobFactory {
    /// Job stores over the instances of `blobs`.
    pub fn new(blobs: impl InstanceFactory) -> Self {
        BlobJobFactory {
            blobs: Arc::new(blobs),
        }
    }

    /// Job stores over the instances of an already shared factory.
    pub fn shared(blobs: SharedFactory) -> Self {
        BlobJobFactory { blobs }
    }
}

#[async_trait]
impl JobStoreFactory for BlobJobFactory {
    async fn instance(&self, env: &JobEnv) -> Result<Arc<dyn JobStore>> {
        let blobs = env.scope(self.blobs.instance().await?);
        let config = JobStoreConfig {
            clock: env.clock(),
            ..JobStoreConfig::default()
        };
        Ok(Arc::new(BlobJobStore::with_config(blobs, config)))
    }
}
