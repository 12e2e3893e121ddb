//! Stores for the suite's own tests: a blob store with one deliberate fault each (built on a
//! shared `MemoryStore`, which is correct), and a job store written directly on a map,
//! without any `BlobStore`, correct when its state is shared and with one deliberate fault
//! each otherwise. This file holds what every fault is built on ([`Fault`], [`Faulty`] and
//! the factories); `faults.rs` has the faults that act at once, `lagging.rs` those that act
//! later, and `map_jobs.rs` the job store.

#![allow(dead_code)] // Each test binary uses its own part of the catalogue.

mod faults;
mod lagging;
mod map_jobs;

// Re-exported whole: each test binary uses its own part of the catalogue.
#[allow(unused_imports)]
pub use faults::*;
#[allow(unused_imports)]
pub use lagging::*;
#[allow(unused_imports)]
pub use map_jobs::*;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use blobjobs_backends::MemoryStore;
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, ListOptions, ListPage, Result, SetOptions, SetOutcome,
};
use bytes::Bytes;

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
