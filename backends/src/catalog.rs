//! Many named stores under one root: what a server such as the emulator serves from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use blobjobs_store_api::{BlobStore, Error, ErrorKind, ListOptions, Result};

use crate::file::{FileOptions, FileStore};
use crate::memory::MemoryStore;

/// The longest catalog store name, in UTF-8 bytes. Catalog names are internal (for example
/// `site-1/deploy:abc:name`), so they are longer than user-facing store names.
pub const MAX_CATALOG_NAME_BYTES: usize = 1024;

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
}

pub(crate) fn check_catalog_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_CATALOG_NAME_BYTES {
        return Err(Error::invalid(format!(
            "store name must be 1 to {MAX_CATALOG_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

impl Catalog {
    /// An empty in-memory catalog.
    pub fn memory() -> Self {
        Catalog::Memory(MemoryCatalog::default())
    }

    /// A catalog of durable stores under `root`, which is created if it does not exist.
    pub fn file(root: PathBuf, options: FileOptions) -> Result<Self> {
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::io(format!("cannot create store root {}", root.display()), e))?;
        Ok(Catalog::File(FileCatalog {
            root,
            options,
            stores: Arc::default(),
        }))
    }

    /// A handle on the store called `name`, created empty on first use.
    pub fn store(&self, name: &str) -> Result<Arc<dyn BlobStore>> {
        check_catalog_name(name)?;
        match self {
            Catalog::Memory(m) => {
                let mut stores = m.stores.lock().map_err(|_| poisoned())?;
                Ok(Arc::new(stores.entry(name.to_owned()).or_default().clone()))
            }
            Catalog::File(f) => {
                let mut stores = f.stores.lock().map_err(|_| poisoned())?;
                if let Some(store) = stores.get(name) {
                    return Ok(Arc::new(store.clone()));
                }
                let store = FileStore::open(&f.root, name, f.options)?;
                if stores.len() >= MAX_FILE_HANDLES {
                    stores.clear();
                }
                stores.insert(name.to_owned(), store.clone());
                Ok(Arc::new(store))
            }
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
        check_catalog_name(name)?;
        match self {
            Catalog::Memory(m) => {
                let removed = m.stores.lock().map_err(|_| poisoned())?.remove(name);
                let Some(store) = removed else {
                    return Ok(0);
                };
                let mut count = 0;
                let mut cursor = None;
                loop {
                    let page = store.list(ListOptions::new().cursor(cursor)).await?;
                    count += page.blobs.len() as u64;
                    cursor = page.next_cursor;
                    if cursor.is_none() {
                        return Ok(count);
                    }
                }
            }
            Catalog::File(f) => FileStore::delete_store(&f.root, name).await,
        }
    }
}

fn poisoned() -> Error {
    Error::new(ErrorKind::Io, "catalog lock poisoned by a panic")
}
