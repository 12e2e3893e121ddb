//! The file backend: durable named stores in a local directory, shared safely by threads and by
//! OS processes.
//!
//! # Layout on disk
//!
//! Several stores share one root directory. Names never reach the file system raw: store names
//! and keys are *encoded* by keeping the bytes `a-z`, `0-9`, `_` and `-` and writing every
//! other byte as `%XX` (upper-case hex). The encoding has no `/` and no `.`, so no key can name
//! a path outside its store, encoded names never start with a dot, and, because upper-case
//! letters are escaped too, two keys never alias on a case-insensitive file system.
//!
//! ```text
//! <root>/
//!   <encoded store name>.s/          a store whose encoded name fits in one file name
//!   <sha-256 of the name, hex>.h/    a store with a longer name; `.name` inside holds it
//!     .lock                          the store's lock file (never removed)
//!     <encoded key>.b                one blob: header and value in one file
//!     <first 200 chars>/<rest>.b     a key whose encoding is longer than 200 characters
//!     .tmp-<random>                  a write in progress (never listed; removed after an
//!                                    hour untouched, when its writer must have died)
//! ```
//!
//! A blob file is the 8-byte magic `nblob01\n`, the length of the JSON header as a
//! little-endian `u32`, the JSON header `{etag, size, last_modified, metadata}` (possibly
//! padded with spaces), then the value bytes. Value and metadata live in one file so they
//! change together.
//!
//! # Durability and atomicity
//!
//! A write goes to a temporary file in the target's directory, which is written and fsynced
//! before anything else happens; then, under the store lock, the condition is checked and the
//! temporary file is renamed over the target; then the directory is fsynced and only then is
//! the write acknowledged. A reader opens the file and so always reads one whole version, even
//! while it is being replaced. [`FileOptions::fsync`] `false` keeps the atomicity and skips the
//! fsyncs, for development speed. It also swaps the new file with the old one
//! (`RENAME_EXCHANGE`) and removes the old one after the lock is released, instead of renaming
//! over it: a rename over an existing file makes ext4 (and other file systems with the same
//! heuristic) start writing the new file's data to disk at once, which costs more than the
//! rest of the write together.
//!
//! # Reads
//!
//! Small files found whole in the page cache are read in place, on the async caller's thread,
//! with system calls that fail rather than wait for the disk (spending tokio's cooperative
//! budget, since they never yield); anything else is read on the blocking pool.
//!
//! # Locking
//!
//! Every change (conditional or not, and deletes) holds an exclusive lock on `<store>/.lock`
//! (`flock` through [`File::lock`]) around "read the current ETag, check the condition,
//! rename". The lock file is opened anew by each operation, so threads of one process exclude
//! each other just like separate processes do. Reads take no lock.
//!
//! # Listing cache
//!
//! The first 8 bytes of the lock file are a change counter (little-endian, Gray-coded). Every
//! change moves it, under the lock, to the next (odd) value before its rename or unlink and to
//! the next (even) value after, so an even value that has not moved means nothing changed. A
//! listing walks the directory and reads the counter before and after; if both readings are
//! the same even value, the sorted keys (and the headers read later while the counter still
//! has that value) are cached in the handle and reused as long as the counter reads the same.
//! A change made through the handle itself updates its cache under the lock, if the cache held
//! the store as it was just before, so that a process's own writes keep its listings cached.
//! A writer that dies between the two steps leaves the counter odd, which turns caching off
//! until the next change moves it on.

mod counter;
mod format;
mod list_cache;
mod names;
mod read;
mod sweep;
mod sys;
mod walk;
mod write;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, Error, ErrorKind, ListOptions, ListPage, Result,
    SetOptions, SetOutcome, once_stream, validate_key, validate_metadata,
};
use bytes::Bytes;

use self::list_cache::ListCache;
pub(crate) use self::names::check_store_name;
use self::names::store_dir;
use self::read::{
    Opened, WHOLE_READ, open_blob, read_blob, read_blob_cached, read_blob_info,
    read_blob_info_cached, value_stream,
};
use self::walk::list_stores_blocking;

#[cfg(test)]
pub(crate) use self::sys::fsyncs_under;

/// The longest store name accepted, in UTF-8 bytes. It is long enough for the internal names a
/// [`Catalog`](crate::Catalog) gives its stores (such as `site-1/deploy:abc:name`), which are
/// longer than user-facing ones; names longer than a file name can hold are stored by hash.
pub const MAX_FILE_STORE_NAME_BYTES: usize = 1024;

/// Settings of a [`FileStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileOptions {
    /// Whether to fsync files and directories before acknowledging a write (the default).
    ///
    /// Without it writes are still atomic and a crashed or killed process loses nothing it
    /// acknowledged, but the data reaches the disk only when the OS writes it back: a power
    /// loss or OS crash may lose acknowledged writes, and a key overwritten shortly before may
    /// then read as [`ErrorKind::Corrupt`] (an empty file) rather than as its old value. Use
    /// `false` for development and tests, like the official local server, which never syncs.
    pub fsync: bool,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions { fsync: true }
    }
}

/// A durable store in a directory, safe to share between threads and OS processes.
///
/// Every handle opened on the same root and name sees the same keys, whichever process opened
/// it. Clones are cheap; they share the configuration and the listing cache.
#[derive(Debug, Clone)]
pub struct FileStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The store's name as given, for messages and listings.
    name: String,
    /// The directory that holds all stores.
    root: PathBuf,
    /// This store's directory under the root.
    dir: PathBuf,
    /// Whether `dir` is named by a hash (long names) and so must carry a `.name` file.
    hashed: bool,
    options: FileOptions,
    /// The last listing walk, shared by every clone of the handle (see [`ListCache`]).
    list_cache: ListCache,
    /// When this handle last swept stale temporary files (see [`Inner::sweep`]).
    swept: Mutex<Option<Instant>>,
}

impl FileStore {
    /// A handle on the store called `store_name` under `root`. Nothing is created on disk until
    /// the first write. The name may be any non-empty UTF-8 text up to
    /// [`MAX_FILE_STORE_NAME_BYTES`] bytes; it is encoded, never used as a path.
    pub fn open(root: impl AsRef<Path>, store_name: &str, options: FileOptions) -> Result<Self> {
        check_store_name(store_name)?;
        let root = root.as_ref().to_path_buf();
        let (dir, hashed) = store_dir(&root, store_name);
        Ok(FileStore {
            inner: Arc::new(Inner {
                name: store_name.to_owned(),
                root,
                dir,
                hashed,
                options,
                list_cache: ListCache::default(),
                swept: Mutex::new(None),
            }),
        })
    }

    /// The store's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The store's directory (which may not exist yet).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The settings this handle was opened with.
    pub fn options(&self) -> FileOptions {
        self.inner.options
    }

    /// The file that holds `key` (which may not exist), for tools and diagnostics.
    pub fn key_path(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.inner.key_path(key).file)
    }

    /// The names of the stores under `root` that start with `prefix` and hold at least one
    /// key, sorted.
    pub async fn list_stores(root: impl AsRef<Path>, prefix: &str) -> Result<Vec<String>> {
        let root = root.as_ref().to_path_buf();
        let prefix = prefix.to_owned();
        blocking(move || list_stores_blocking(&root, &prefix)).await
    }

    /// Deletes every key of the store; returns how many there were. Like every change, it
    /// honours the handle's [`FileOptions`].
    ///
    /// The store's directory and lock file stay, so that a process holding the lock at this
    /// moment keeps excluding the others; an empty store is not listed.
    pub async fn delete_all(&self) -> Result<u64> {
        let inner = self.inner.clone();
        blocking(move || inner.delete_all()).await
    }
}

/// Runs `read`, a read from the page cache that never waits (see [`read_cached`]), on the
/// async worker. It never returns `Pending`, so it spends tokio's cooperative budget first:
/// a loop of such reads still lets the runtime run timers and other tasks.
async fn in_place<T>(read: impl FnOnce() -> Option<T>) -> Option<T> {
    tokio::task::coop::consume_budget().await;
    read()
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Io, format!("file task did not finish: {e}")))?
}

fn io_error(what: &str, path: &Path, err: io::Error) -> Error {
    Error::io(format!("{what} {}", path.display()), err)
}

fn corrupt(path: &Path, why: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!("damaged blob file {}: {why}", path.display()),
    )
}

#[async_trait]
impl BlobStore for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        validate_key(key)?;
        let path = self.inner.key_path(key).file;
        if let Some(read) = in_place(|| read_blob_cached(&path)).await {
            return read;
        }
        blocking(move || read_blob(&path)).await
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        validate_key(key)?;
        let path = self.inner.key_path(key).file;
        if let Some(read) = in_place(|| read_blob_info_cached(&path)).await {
            return read;
        }
        blocking(move || read_blob_info(&path)).await
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        validate_key(key)?;
        validate_metadata(&options.metadata)?;
        let inner = self.inner.clone();
        let key = key.to_owned();
        blocking(move || inner.set(&key, &value, &options)).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let inner = self.inner.clone();
        let key = key.to_owned();
        blocking(move || inner.delete(&key)).await
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let inner = self.inner.clone();
        blocking(move || inner.list(&options)).await
    }

    async fn get_stream(&self, key: &str) -> Result<Option<(BlobInfo, ByteStream)>> {
        validate_key(key)?;
        let path = self.inner.key_path(key).file;
        // A small value in the page cache is read in place; otherwise small values cost one
        // trip to the blocking pool: open, header and value together.
        if let Some(read) = in_place(|| read_blob_cached(&path)).await {
            return read.map(|found| found.map(|blob| (blob.info, once_stream(blob.value))));
        }
        let opened = {
            let path = path.clone();
            blocking(move || open_blob(&path, WHOLE_READ as u64)).await?
        };
        Ok(opened.map(|opened| match opened {
            Opened::Whole(blob) => (blob.info, once_stream(blob.value)),
            Opened::Streaming(info, file) => {
                let size = info.size;
                let stream = value_stream(tokio::fs::File::from_std(file), size, path);
                (info, stream)
            }
        }))
    }

    async fn set_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        validate_key(key)?;
        validate_metadata(&options.metadata)?;
        self.inner
            .clone()
            .set_stream(key, body, max_size, options)
            .await
    }
}

/// Helpers shared by the unit tests of the submodules.
#[cfg(test)]
mod testing {
    use std::fs::{self, File};

    use blobjobs_store_api::{BlobStore, ListOptions};

    use super::FileStore;
    use super::counter::read_counter;
    use super::names::LOCK_FILE;

    pub(super) fn counter(store: &FileStore) -> Option<u64> {
        let file = File::open(store.dir().join(LOCK_FILE)).ok()?;
        read_counter(&file).unwrap()
    }

    pub(super) fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    pub(super) fn keys(rt: &tokio::runtime::Runtime, store: &FileStore) -> Vec<String> {
        let page = rt.block_on(store.list(ListOptions::new())).unwrap();
        page.blobs.into_iter().map(|e| e.key).collect()
    }

    /// Writes the file of `key` behind the store's back, as a writer that renamed it into
    /// place and died before it could say so would have left it.
    pub(super) fn sneak_in(store: &FileStore, key: &str) {
        let from = store.key_path("a").unwrap();
        fs::copy(from, store.key_path(key).unwrap()).unwrap();
    }
}
