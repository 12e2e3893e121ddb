//! Blob-store faults that act later: writes another instance sees only after a lag, deletes
//! a lagging replica undoes, and acknowledged writes that are reverted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use blobjobs_store_api::{Blob, BlobInfo, BlobStore, Result, SetOptions, SetOutcome};
use bytes::Bytes;

use super::{Fault, faulty, lock};

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
