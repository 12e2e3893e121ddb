//! How the suite gets instances: a factory that builds a fresh store handle per call.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use blobjobs_store_api::{BlobStore, Result};

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
}
