//! Many named stores under one root: what a server such as the emulator serves from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use blobjobs_store_api::{BlobStore, BlobStoreExt as _, Error, ErrorKind, ListOptions, Result};

use crate::file::{
    DEFAULT_LIST_CACHE_BYTES, FileOptions, FileStore, ListCacheBudget, MAX_FILE_STORE_NAME_BYTES,
    check_store_name, make_dir_all, sweep_root,
};
use crate::memory::MemoryStore;

/// The longest catalog store name, in UTF-8 bytes. Catalog names are internal (for example
/// `site-1/deploy:abc:name`), so they are longer than user-facing store names. It is the file
/// backend's limit, so that every catalog name opens as a [`FileStore`].
pub const MAX_CATALOG_NAME_BYTES: usize = MAX_FILE_STORE_NAME_BYTES;

/// A set of named stores backed by one storage engine.
#[derive(Debug, Clone)]
pub enum Catalog {
    /// Stores held in this process's memory; they vanish with it.
    Memory(MemoryCatalog),
    /// Durable stores in one root directory, shared by every process that opens it.
    File(FileCatalog),
}

/// The stores of [`Catalog::Memory`].
#[derive(Debug, Clone, Default)]
pub struct MemoryCatalog {
    /// Every store ever opened, by name. A store stays here once opened so that all handles
    /// of one name share data (the process is one instance).
    stores: Arc<Mutex<BTreeMap<String, MemoryStore>>>,
}

/// The stores of [`Catalog::File`]: one directory per store under a root.
#[derive(Debug, Clone)]
pub struct FileCatalog {
    /// The directory that holds every store.
    root: PathBuf,
    /// The settings every store is opened with.
    options: FileOptions,
    /// One handle per store opened so far, so that every request on a store shares the
    /// handle's listing cache; emptied when it reaches [`MAX_FILE_HANDLES`], as it holds
    /// nothing but caches.
    stores: Arc<Mutex<BTreeMap<String, FileStore>>>,
    /// The memory the listing caches of all handles may hold together.
    list_cache: Arc<ListCacheBudget>,
}

/// The most store handles a [`FileCatalog`] keeps.
const MAX_FILE_HANDLES: usize = 10_000;

impl FileCatalog {
    /// The directory that holds every store.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The settings every store is opened with.
    pub fn options(&self) -> FileOptions {
        self.options
    }

    /// The handle on the store called `name`, opened with the catalog's settings on first use
    /// and kept for the requests that follow.
    fn handle(&self, name: &str) -> Result<FileStore> {
        let mut stores = self.stores.lock().map_err(|_| poisoned())?;
        if let Some(store) = stores.get(name) {
            return Ok(store.clone());
        }
        let store = FileStore::open_with_budget(&self.root, name, self.options, &self.list_cache)?;
        if stores.len() >= MAX_FILE_HANDLES {
            stores.clear();
        }
        stores.insert(name.to_owned(), store.clone());
        Ok(store)
    }
}

impl Catalog {
    /// An empty in-memory catalog.
    pub fn memory() -> Self {
        Catalog::Memory(MemoryCatalog::default())
    }

    /// A catalog of durable stores under `root`, which is created (readable by its owner only)
    /// if it does not exist.
    ///
    /// Opening sweeps the temporary files that writers killed mid-write left under `root`: a
    /// writer holds a lock on its temporary file, so only dead writers' files go, even while
    /// other processes write the same root. The stores' listing caches share
    /// [`DEFAULT_LIST_CACHE_BYTES`] ([`Catalog::set_list_cache_bytes`] changes it).
    pub fn file(root: PathBuf, options: FileOptions) -> Result<Self> {
        make_dir_all(&root)
            .map_err(|e| Error::io(format!("cannot create store root {}", root.display()), e))?;
        sweep_root(&root);
        Ok(Catalog::File(FileCatalog {
            root,
            options,
            stores: Arc::default(),
            list_cache: Arc::new(ListCacheBudget::new(DEFAULT_LIST_CACHE_BYTES)),
        }))
    }

    /// Sets how many bytes the listing caches of a file catalog's stores may hold together
    /// (their own estimate of their size); a store whose listing would need more is listed
    /// without a cache, with memory in proportion to the page size. No effect on memory
    /// catalogs, which hold every key anyway.
    pub fn set_list_cache_bytes(&self, bytes: usize) {
        if let Catalog::File(f) = self {
            f.list_cache.set_limit(bytes);
        }
    }

    /// How many bytes the listing caches of a file catalog hold now, by their own estimate;
    /// 0 for memory catalogs.
    pub fn list_cache_bytes_used(&self) -> usize {
        match self {
            Catalog::File(f) => f.list_cache.used(),
            Catalog::Memory(_) => 0,
        }
    }

    /// A handle on the store called `name`, created empty on first use.
    pub fn store(&self, name: &str) -> Result<Arc<dyn BlobStore>> {
        check_store_name(name)?;
        match self {
            Catalog::Memory(m) => {
                let mut stores = m.stores.lock().map_err(|_| poisoned())?;
                Ok(Arc::new(stores.entry(name.to_owned()).or_default().clone()))
            }
            Catalog::File(f) => Ok(Arc::new(f.handle(name)?)),
        }
    }

    /// The names of the stores that hold at least one key and start with `prefix`, sorted.
    pub async fn list_stores(&self, prefix: &str) -> Result<Vec<String>> {
        match self {
            Catalog::Memory(m) => {
                let stores: Vec<(String, MemoryStore)> = {
                    let stores = m.stores.lock().map_err(|_| poisoned())?;
                    stores
                        .iter()
                        .filter(|(name, _)| name.starts_with(prefix))
                        .map(|(n, s)| (n.clone(), s.clone()))
                        .collect()
                };
                let mut names = Vec::new();
                for (name, store) in stores {
                    let page = store.list(ListOptions::new().page_size(1)).await?;
                    if !page.blobs.is_empty() {
                        names.push(name);
                    }
                }
                Ok(names)
            }
            Catalog::File(f) => FileStore::list_stores(&f.root, prefix).await,
        }
    }

    /// Deletes every key of the store called `name`; returns how many there were.
    pub async fn delete_store(&self, name: &str) -> Result<u64> {
        check_store_name(name)?;
        match self {
            Catalog::Memory(m) => {
                let removed = m.stores.lock().map_err(|_| poisoned())?.remove(name);
                let Some(store) = removed else {
                    return Ok(0);
                };
                Ok(store.list_all(ListOptions::new()).await?.len() as u64)
            }
            // The catalog's own handle: it carries the catalog's settings (`--no-fsync`
            // included), and its listing cache follows the delete.
            Catalog::File(f) => f.handle(name)?.delete_all().await,
        }
    }
}

fn poisoned() -> Error {
    Error::new(ErrorKind::Io, "catalog lock poisoned by a panic")
}

#[cfg(test)]
mod tests {
    use blobjobs_store_api::SetOptions;
    use bytes::Bytes;

    use super::*;
    use crate::file::fsyncs_under;

    /// Skipped fsyncs are the one difference `--no-fsync` makes that a test can see, so the
    /// test counts them (the file backend records every fsync in test builds).
    #[tokio::test]
    async fn deleting_a_store_honours_the_catalogs_fsync_setting() {
        for fsync in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let catalog = Catalog::file(dir.path().to_owned(), FileOptions { fsync }).unwrap();
            let store = catalog.store("site:a").unwrap();
            store
                .set("k", Bytes::from_static(b"v"), SetOptions::new())
                .await
                .unwrap();
            let written = fsyncs_under(dir.path());
            assert_eq!(written > 0, fsync, "fsyncs of a write with fsync {fsync}");

            assert_eq!(catalog.delete_store("site:a").await.unwrap(), 1);
            let deleted = fsyncs_under(dir.path()) - written;
            assert_eq!(
                deleted > 0,
                fsync,
                "fsyncs of a store delete with fsync {fsync}"
            );
            assert!(store.get("k").await.unwrap().is_none());
        }
    }
}
