//! The memory backend: correct inside one instance, invisible to every other.
//!
//! A `MemoryStore` is exactly what a serverless instance's process-local `Map` is: reads,
//! writes, conditions and listings behave like any other store inside the instance that owns
//! it, and a new instance starts empty and never sees what another wrote. That makes it the
//! conformance suite's negative control: its cross-instance properties must fail.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use blobjobs_store_api::list::{Flow, Paginator};
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, Condition, Error, ErrorKind, Etag, ListEntry, ListOptions, ListPage,
    Result, SetOptions, SetOutcome, Timestamp, validate_key, validate_metadata,
};
use bytes::Bytes;

/// A process-local store. Clones share the same data (they are one instance); a store made
/// with [`MemoryStore::new`] is a new, empty instance.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    /// The keys of this instance. A `BTreeMap` keeps them sorted for listing.
    entries: Arc<RwLock<BTreeMap<String, Blob>>>,
}

impl MemoryStore {
    /// A new, empty instance.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn poisoned() -> Error {
        Error::new(ErrorKind::Io, "memory store lock poisoned by a panic")
    }
}

#[async_trait]
impl BlobStore for MemoryStore {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        validate_key(key)?;
        let entries = self.entries.read().map_err(|_| Self::poisoned())?;
        Ok(entries.get(key).cloned())
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        validate_key(key)?;
        let entries = self.entries.read().map_err(|_| Self::poisoned())?;
        Ok(entries.get(key).map(|b| b.info.clone()))
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        validate_key(key)?;
        validate_metadata(&options.metadata)?;
        let etag = Etag::random()?;
        let mut entries = self.entries.write().map_err(|_| Self::poisoned())?;
        let current = entries.get(key).map(|b| &b.info.etag);
        let allowed = match (&options.condition, current) {
            (Condition::Always, _) => true,
            (Condition::IfNew, current) => current.is_none(),
            (Condition::IfMatch(want), Some(have)) => want == have,
            (Condition::IfMatch(_), None) => false,
        };
        if !allowed {
            return Ok(SetOutcome::ConditionFailed);
        }
        let info = BlobInfo {
            etag: etag.clone(),
            metadata: options.metadata,
            size: value.len() as u64,
            last_modified: Timestamp::now(),
        };
        entries.insert(key.to_owned(), Blob { value, info });
        Ok(SetOutcome::Written { etag })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let mut entries = self.entries.write().map_err(|_| Self::poisoned())?;
        entries.remove(key);
        Ok(())
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let mut pager = Paginator::new(&options)?;
        let entries = self.entries.read().map_err(|_| Self::poisoned())?;
        let start = pager.start_key().to_owned();
        for (key, blob) in
            entries.range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded))
        {
            let entry = ListEntry {
                key: key.clone(),
                etag: blob.info.etag.clone(),
                size: blob.info.size,
                last_modified: blob.info.last_modified,
            };
            if pager.push(entry) == Flow::Stop {
                break;
            }
        }
        Ok(pager.finish())
    }
}
