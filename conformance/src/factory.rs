//! How the suite gets instances: a factory that builds a fresh store handle per call.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use blobjobs_store_api::{BlobStore, Error, ErrorKind, Result};

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
