//! Blob-store faults that act at once, on the call they change: conditions ignored or
//! checked racily, stale caches, lost pages, weak or missing ETags, torn writes, dropped
//! metadata, a low metadata limit and folded key case.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, Condition, Error, Etag, ListOptions, ListPage, Metadata,
    Result, SetOptions, SetOutcome,
};
use bytes::Bytes;

use super::{Fault, lock};

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
