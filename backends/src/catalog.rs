//! Many named stores under one root: what a server such as the emulator serves from.
//!
//! A catalog is in memory (this process only), in a directory (shared by the processes of
//! one machine), or on an engine (S3-compatible storage or PostgreSQL, shared by every
//! process that reaches it, so several servers over one engine serve the same stores).
//! [`Catalog::open`] takes the same specs as [`open_store`](crate::open::open_store), and a
//! catalog store is the same store as the one an `open_store` of that spec and name opens.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use blobjobs_store_api::{BlobStore, BlobStoreExt as _, Error, ErrorKind, ListOptions, Result};

use crate::file::{
    DEFAULT_LIST_CACHE_BYTES, FileOptions, FileStore, ListCacheBudget, MAX_FILE_STORE_NAME_BYTES,
    check_store_name, make_dir_all, sweep_root,
};
use crate::memory::MemoryStore;
use crate::open::{OpenOptions, StoreSpec};

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
    /// Stores in an S3 bucket (under a prefix), shared by every process that reaches it.
    #[cfg(feature = "s3")]
    S3(S3Catalog),
    /// Stores in a PostgreSQL table, shared by every process that reaches the database.
    #[cfg(feature = "postgres")]
    Postgres(PgCatalog),
}

/// The stores of [`Catalog::S3`]: one directory per store under the bucket's prefix, all on
/// one client (its connections are shared by every store).
#[cfg(feature = "s3")]
#[derive(Debug, Clone)]
pub struct S3Catalog {
    /// A handle whose client and prefix every store shares.
    root: crate::s3::S3Store,
}

/// The stores of [`Catalog::Postgres`]: ranges of rows of one table, all on one connection
/// pool.
#[cfg(feature = "postgres")]
#[derive(Debug, Clone)]
pub struct PgCatalog {
    /// A handle whose pool every store shares.
    root: crate::postgres::PgStore,
}

/// The store name the root handle of an engine catalog is opened with; it is never written.
#[cfg(any(feature = "s3", feature = "postgres"))]
const ROOT_NAME: &str = "catalog";

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

    /// A catalog of stores in an S3 bucket, under `config`'s prefix. Nothing is sent yet
    /// ([`Catalog::check`] makes one read).
    #[cfg(feature = "s3")]
    pub fn s3(config: &crate::s3::S3Config) -> Result<Self> {
        Ok(Catalog::S3(S3Catalog {
            root: crate::s3::S3Store::open(config, ROOT_NAME)?,
        }))
    }

    /// A catalog of stores in a PostgreSQL database, on one pool of `config.pool_size`
    /// connections. Nothing is sent yet ([`Catalog::check`] makes one read, and creates the
    /// schema on first use).
    #[cfg(feature = "postgres")]
    pub fn postgres(config: &crate::postgres::PgConfig) -> Result<Self> {
        Ok(Catalog::Postgres(PgCatalog {
            root: crate::postgres::PgStore::open(config, ROOT_NAME)?,
        }))
    }

    /// The catalog a spec names: `memory://`, `file://PATH` (with `options.file`),
    /// `s3://BUCKET[/PREFIX]?…` or `postgres://…`, configured as
    /// [`open_store_with`](crate::open::open_store_with) configures a store (credentials
    /// from `options.env`). Netlify and `http://` specs name a server, not a catalog, and are
    /// refused.
    pub fn open(spec: &str, options: &OpenOptions) -> Result<Self> {
        match StoreSpec::parse(spec)? {
            StoreSpec::Memory => Ok(Catalog::memory()),
            StoreSpec::File(root) => Catalog::file(root, options.file),
            #[cfg(feature = "s3")]
            StoreSpec::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => Catalog::s3(&crate::open::s3_config(
                &bucket, &prefix, &endpoint, &region, options,
            )?),
            #[cfg(feature = "postgres")]
            StoreSpec::Postgres(url) => {
                Catalog::postgres(&crate::postgres::PgConfig::parse(url.expose(), &|name| {
                    options.env.var(name)
                })?)
            }
            #[allow(unreachable_patterns)] // Reached when a feature is off.
            StoreSpec::S3 { .. } | StoreSpec::Postgres(_) => Err(Error::invalid(
                "this build of the backends crate has no s3 or postgres feature",
            )),
            StoreSpec::Netlify(_) | StoreSpec::Http { .. } => Err(Error::invalid(
                "a catalog is memory://, file://PATH, s3://BUCKET or postgres://HOST/DB, not a server",
            )),
        }
    }

    /// Checks that the storage answers: one cheap read on an engine (a server that is down
    /// or refuses the credentials fails here, with a message naming its host and port and
    /// never a credential; PostgreSQL also gets its schema); nothing for memory and files,
    /// whose failures show when the catalog is made.
    pub async fn check(&self) -> Result<()> {
        match self {
            Catalog::Memory(_) | Catalog::File(_) => Ok(()),
            #[cfg(feature = "s3")]
            Catalog::S3(c) => c.root.get_metadata(crate::open::PROBE_KEY).await.map(drop),
            #[cfg(feature = "postgres")]
            Catalog::Postgres(c) => c.root.get_metadata(crate::open::PROBE_KEY).await.map(drop),
        }
    }

    /// Where the stores live, for a banner or a log line; never a credential.
    pub fn describe(&self) -> String {
        match self {
            Catalog::Memory(_) => "in memory".to_owned(),
            Catalog::File(f) => format!(
                "files in {}, fsync {}",
                f.root.display(),
                if f.options.fsync { "on" } else { "off" }
            ),
            #[cfg(feature = "s3")]
            Catalog::S3(c) => format!("s3 at {}", c.root.place()),
            #[cfg(feature = "postgres")]
            Catalog::Postgres(c) => format!("postgres at {}", c.root.server()),
        }
    }

    /// Whether processes on other machines can share the stores: true for engines.
    pub fn is_engine(&self) -> bool {
        !matches!(self, Catalog::Memory(_) | Catalog::File(_))
    }

    /// Sets how many bytes the listing caches of a file catalog's stores may hold together
    /// (their own estimate of their size); a store whose listing would need more is listed
    /// without a cache, with memory in proportion to the page size. No effect on other
    /// catalogs: memory holds every key anyway, and engines list from their own indexes.
    pub fn set_list_cache_bytes(&self, bytes: usize) {
        if let Catalog::File(f) = self {
            f.list_cache.set_limit(bytes);
        }
    }

    /// How many bytes the listing caches of a file catalog hold now, by their own estimate;
    /// 0 for other catalogs.
    pub fn list_cache_bytes_used(&self) -> usize {
        match self {
            Catalog::File(f) => f.list_cache.used(),
            _ => 0,
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
            #[cfg(feature = "s3")]
            Catalog::S3(c) => Ok(Arc::new(c.root.catalog_sibling(name)?)),
            #[cfg(feature = "postgres")]
            Catalog::Postgres(c) => Ok(Arc::new(c.root.catalog_sibling(name)?)),
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
            #[cfg(feature = "s3")]
            Catalog::S3(c) => c.root.store_names(prefix).await,
            #[cfg(feature = "postgres")]
            Catalog::Postgres(c) => c.root.store_names(prefix).await,
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
            #[cfg(feature = "s3")]
            Catalog::S3(c) => c.root.catalog_sibling(name)?.delete_all().await,
            #[cfg(feature = "postgres")]
            Catalog::Postgres(c) => c.root.catalog_sibling(name)?.delete_all().await,
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
