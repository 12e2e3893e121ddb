//! The file backend: durable named stores in a local directory, shared safely by threads and by
//! OS processes.
//!
//! A [`FileStore`] is one store; a [`Catalog::file`](crate::Catalog::file) serves many stores
//! under one root, with one handle per store. The backend is **Unix-only**: it relies on `flock`,
//! on fsyncing directories and on device and inode numbers, and the crate does not build on
//! other platforms. Linux also gets reads served in place from the page cache, and Linux,
//! Android and Apple platforms the swap that makes writes without fsync cheaper.
//!
//! This is the design of the backend, written once. The private submodules (listed at the end)
//! document their details; `cargo doc --document-private-items` shows them.
//!
//! # Invariants
//!
//! - A write is acknowledged only once it is durable: temporary file, fsync, rename under the
//!   store lock, fsync of the directory. Without [`FileOptions::fsync`] it is still atomic.
//! - A reader sees one whole version of a blob, never part of one, and takes no lock.
//! - Every change of a store (a write that passed its condition, a delete of a key that exists,
//!   [`FileStore::delete_all`]) holds the store's lock. The lock file is never removed.
//! - Every change moves the store's change counter, under the lock, one step to an odd value
//!   before it touches the directory and one step to an even value after.
//! - A cached listing is used only while the counter reads the even value the cache was filled
//!   at, so, as long as every writer keeps the counter, it equals a fresh walk of the directory.
//!
//! # Layout on disk
//!
//! ```text
//! <root>/
//!   <encoded store name>.s/        a store whose encoded name has at most 200 characters
//!   <SHA-256 of the name, hex>.h/  a store with a longer name
//!     .name                        the store's name, in hashed store directories only
//!     .lock                        the store's lock file and change counter; never removed
//!     <encoded key>.b              one blob: header and value in one file
//!     <piece>/…/<last piece>.b     a key whose encoding is longer than 200 characters
//!     .tmp-l<16 hex>               a write in progress, in its target's directory, locked
//!                                  by its writer (`.tmp-<16 hex>` from older versions)
//!   .tmp-<16 hex>/                 a hashed store directory being built
//! ```
//!
//! *Permissions.* Files are created `0600` and directories `0700` (narrowed further by the
//! umask): blobs may hold anything, and the data directory may sit where other users look.
//!
//! *Encoding.* Names never reach the file system raw. Store names and keys keep the bytes `a-z`,
//! `0-9`, `_` and `-`; every other byte, upper-case letters included, becomes `%XX` with
//! upper-case hex. An encoded name therefore has no `/` and no `.`: no key can name a path
//! outside its store, `.` and `..` are ordinary keys, encoded names never start with a dot (dot
//! files are the backend's own), and two keys never alias on a case-insensitive file system.
//! Decoding refuses what encoding cannot produce (lower-case hex, an escaped kept byte), so a
//! key has exactly one file name. Encoding goes byte by byte, so the encoding of a prefix is a
//! prefix of the encoding of every key that starts with it, and a prefix listing walks only
//! the directories that can match.
//!
//! *Long keys.* A key may be 600 bytes, which can encode to 1800 characters, far over the usual
//! 255-byte limit of a file name. An encoded key is cut into pieces of at most 200 characters,
//! never inside an escape; all pieces but the last are directories ("chunk directories"). A walk
//! accepts a file only if its path is exactly the one its key would be written to, so stray
//! files (foreign names, non-canonical paths) never list as keys, and no two paths list as the
//! same key.
//!
//! *Long store names.* A store directory is one path component, and a store name may be
//! [`MAX_FILE_STORE_NAME_BYTES`] bytes (3072 encoded characters). A store whose encoded name is
//! longer than 200 characters is named by the SHA-256 of its name, and its `.name` file holds
//! the name, for [`FileStore::list_stores`]. Such a directory is built under a temporary name
//! with `.name` inside and then renamed into place, so it never exists without its name.
//!
//! *Blob files.* The 8 bytes `nblob01\n`, the length of the JSON header as a little-endian
//! `u32`, the JSON header `{"etag", "size", "last_modified", "metadata"}` (`last_modified` in
//! milliseconds since the Unix epoch; possibly padded with spaces), then the value. Value and
//! metadata live in one file, so they change together. A bad magic, a header over 64 KiB or one
//! that does not parse, or a size that disagrees with the file's length reads as
//! [`ErrorKind::Corrupt`], never as a panic.
//!
//! # Writes: durability and atomicity
//!
//! A write ([`BlobStore::set`], [`BlobStore::set_stream`]):
//!
//! 1. writes the whole blob file to `.tmp-l<16 hex>` in its target's directory, holding an
//!    `flock` on it, and fsyncs it (`fdatasync`): the slow part, done without the store lock;
//! 2. takes the store lock, checks the condition against the current file (`IfNew`: is there
//!    one; `IfMatch`: the ETag in its header), moves the change counter to odd, renames the
//!    temporary file over the target, moves the counter to even and releases the lock;
//! 3. fsyncs the directory, and only then returns [`SetOutcome::Written`].
//!
//! A refused condition removes the temporary file and changes nothing. Directories created on
//! the way (the root, a store, a chunk directory) have their parent fsynced. ETags are 128
//! random bits ([`Etag::random`](blobjobs_store_api::Etag::random)), new on every write. A
//! process killed at any point leaves the old or the new version, and at most a temporary file,
//! which is never listed. A delete takes the lock only if the key exists; it unlinks the file,
//! removes chunk directories left empty (under the lock) and fsyncs the directory whose entries
//! changed.
//!
//! [`BlobStore::set_stream`] collects up to 64 KiB of the body in memory; a body that ends
//! within it is written as `set` writes. A longer body streams into the temporary file after a
//! header with the widest placeholder values, which is rewritten in place, padded to the same
//! length, once the size is known. Both paths check `max_size` at every chunk, and a body that
//! fails or is too large writes nothing.
//!
//! *A full disk.* A write that meets `ENOSPC` or `EDQUOT` at any step fails with
//! [`ErrorKind::StorageFull`] (every other failure of the file system is [`ErrorKind::Io`]);
//! like any failed write it removes its temporary file and leaves the old version in place.
//!
//! *Without fsync* ([`FileOptions::fsync`] `false`, the emulator's `--no-fsync`) step 1 skips
//! the `fdatasync` and step 3 the directory fsync, and step 2 swaps the temporary file with the
//! target (`RENAME_EXCHANGE`) instead of renaming over it; the old version, now under the
//! temporary name, is unlinked once the lock is released. Readers see exactly what a rename
//! would show them. The reason: a rename over an existing file makes ext4 (its `auto_da_alloc`
//! heuristic; xfs and btrfs have similar ones) allocate and start writing the new file's data
//! at once, in the renaming thread, under the store lock, which costs more than the rest of such
//! a write together. That buys crash safety the mode does not promise: a killed process loses
//! nothing either way, but after a power loss or OS crash acknowledged writes may be lost, and
//! a key overwritten shortly before may read as [`ErrorKind::Corrupt`] (an empty file). A new
//! key (`IfNew`, or no target to swap), a platform or file system that cannot swap, or any
//! failed swap falls back to the rename.
//!
//! # Reads
//!
//! A reader opens the blob file and reads header and value from that one open file, so it gets
//! one whole version even while the key is being replaced. Reads take no lock.
//!
//! Blocking file work runs on tokio's blocking pool, and the hop there and back costs more
//! than reading a small cached file. So on Linux [`BlobStore::get`], [`BlobStore::get_stream`]
//! and [`BlobStore::get_metadata`] first try to read in place, on the async worker, with calls
//! that fail rather than wait: `openat2` with `RESOLVE_CACHED` (the path resolves from cached
//! directory entries only), `O_NONBLOCK` and `O_NOATIME`, then `preadv2` with `RWF_NOWAIT`
//! (cached pages only). `get` and `get_stream` do so only for files of at most 68 KiB (a value
//! of about 64 KiB and its header); `get_metadata` reads the first 4 KiB of any file and needs
//! the header to lie within them. Anything else (a page or directory entry not in the cache,
//! not a regular file, an error) goes to the blocking pool, which reads and reports errors; both
//! paths parse the bytes with the same functions. A kernel without `openat2` or
//! `RESOLVE_CACHED` (before 5.12), or a file system that answers `RWF_NOWAIT` with
//! `EOPNOTSUPP` (FUSE), turns the in-place path off for the rest of the process. A read in
//! place never returns `Pending`, so each one first spends tokio's cooperative budget: a loop
//! of cached reads still lets timers and other tasks run.
//!
//! On the blocking pool, `get_stream` opens the file and reads the header, and for a file of at
//! most 68 KiB the value too, in one call, and returns it as a stream of one chunk; a larger
//! value streams in 64 KiB chunks. Every open of a blob file uses `O_NONBLOCK`, so a FIFO
//! someone put at a key's path cannot block it (it then reads as a damaged blob).
//!
//! # Locking
//!
//! Every change holds an exclusive `flock` on `<store>/.lock` ([`std::fs::File::lock`]) around
//! "read the current version, check the condition, rename or unlink". Unconditional writes take
//! it too; otherwise a conditional write could check, lose the CPU, and rename over an
//! unconditional write that landed in between, which is not linearizable. The lock file is
//! opened anew by each operation: `flock` locks belong to an open file description, so threads
//! of one process exclude each other exactly as processes do. The lock file is never removed,
//! [`FileStore::delete_all`] included: removing it while a process holds it would let a third
//! process lock a new file and run alongside the holder.
//!
//! # The change counter
//!
//! The first 8 bytes of `.lock` are the store's change counter, a `u64` stored little-endian
//! as its Gray code (`n ^ (n >> 1)`), read and written in place at offset 0. Only the lock
//! holder writes it, always to the next value, so it only grows, and a read racing a write sees
//! the old or the new value: consecutive Gray codes differ in one bit, so no mixture of their
//! bytes means a third value. Before its rename or unlink, a change moves the counter to the
//! next value, which is odd; after, to the next again, which is even. A refused condition, or a
//! delete of a missing key, leaves it alone. A writer that dies (or fails) between the two steps
//! leaves it odd; the next change, which holds the lock and so knows that nothing is in
//! progress, first steps it to even, then on through odd to even as usual. Every step is one
//! step, since a jump of two could be read torn as the value in between. A new lock file, or one
//! whose counter is missing, zero or absurdly large, starts at a random even value between 2^40
//! and 2^61, so that a lock file made anew does not retrace the values of a removed one.
//!
//! # Listing and the listing cache
//!
//! A listing walks the store's directories, decodes the keys, sorts them by bytes and feeds
//! them to [`Paginator`](blobjobs_store_api::list::Paginator), so cursors, prefixes and
//! directories behave as in every other backend, and a key that exists throughout a paginated
//! walk appears exactly once. Headers are read only for the keys on the page; 64 or more of
//! them are read on up to 4 threads, as each costs a few system calls and little else. A key
//! deleted between the walk and the header read is left out of the page, and so is a damaged
//! one, with a warning in the log: reads of that key fail with [`ErrorKind::Corrupt`], the rest
//! of the store lists and reads as before. A walk costs O(keys under the prefix); the cache
//! makes it happen once per change of the store rather than once per page.
//!
//! *Stamp.* A lister reads the counter without the lock, together with the lock file's device
//! and inode numbers. Only an even, non-zero value is a stamp; an odd one (a change in progress,
//! or a writer that died mid-change), a missing lock file or a missing counter means "do not
//! cache".
//!
//! *Cache.* Each handle (shared by its clones; a [`FileCatalog`](crate::catalog::FileCatalog)
//! keeps one per store) holds at most one walk: its stamp, the prefix walked, the keys under it
//! with their file paths, and the headers (ETag, size, time) read so far. A walk is cached only
//! if the stamp read before it equals the stamp read after it. A listing uses the cached walk
//! when its stamp equals the cached one and its prefix starts with the cached prefix. Headers
//! read for such a listing join the cache only if the stamp read after reading them is still the
//! same and the cache still holds that stamp. Any other listing walks again.
//!
//! *Memory.* Every cache charges an estimate of its size (about 140 bytes per key plus the key,
//! and 80 more per header) to a budget: [`DEFAULT_LIST_CACHE_BYTES`] per handle opened on its
//! own, one shared budget for all handles of a [`Catalog`](crate::Catalog)
//! ([`Catalog::set_list_cache_bytes`](crate::Catalog::set_list_cache_bytes), the emulator's
//! `--list-cache-bytes`). A walk that fits empties the least recently used caches of other stores
//! as needed; headers join only while they fit. A walk that outgrows the whole budget is
//! dropped, and the page comes from walks that keep only the first `page size + 1` items (keys,
//! or directories in directories mode) in memory: every page then costs a walk, but a listing of
//! any store needs memory in proportion to its page size.
//!
//! *Own changes.* A change made through a handle keeps that handle's cache, so a process's own
//! writes keep its listings cached (in the emulator every write goes through the catalog's
//! handle). Under the lock, a change reads the counter `c` and writes `c + 1`; renames or
//! unlinks; then, if the cache holds stamp `c` of the same lock file, inserts, replaces or
//! removes the key in it (with the header just written), or empties it for
//! [`FileStore::delete_all`], and re-tags it `c + 2`; and only then writes `c + 2`.
//!
//! *Why it is sound.* Changes happen under the lock, and each moves the counter to an odd value
//! before it touches the directory and to a new even value after. So the counter holds any even
//! value `g` over one interval of time, during which the directory does not change. A cached
//! walk read `g` before it ran and again after, so it ran inside that interval and saw exactly
//! the store at `g`. The counter never returns to an old value, so a listing that reads `g`
//! again is still inside the interval, and nothing changed since the walk. A write that returned
//! before a listing began, in any process, had already moved the counter past `g`, so the
//! listing cannot miss it. An own change re-tags the cache `c + 2` only if it held the store at
//! `c`, which is the store just before this change, since holding the lock means no other change
//! is in progress. Nobody else writes `c + 2` (the next change moves on from it to `c + 3`), so
//! `c + 2` stands for exactly the cached store plus this change. The re-tag happens before the
//! counter shows `c + 2`, so no lister matches the new tag before the change is done. The
//! device and inode numbers make a stamp of a lock file made anew differ from the old one's.
//!
//! # Temporary files and the sweep
//!
//! A writer that dies leaves its temporary file behind. It is never listed, and it is swept:
//! a writer holds an `flock` on its temporary file until the write is over, and a lock dies
//! with its process, so a sweep removes a temporary file exactly when it can lock it, whatever
//! its age (and removes it while holding the lock; a writer that loses that race sees its new
//! file gone once it gets the lock and starts over with another). A
//! [`Catalog::file`](crate::Catalog::file) sweeps every store when it opens, so a restarted
//! server starts clean even while other processes write the same root; every handle sweeps its
//! store (chunk directories included) at its first write or delete, and again at the first
//! after each hour. Temporary files of older versions, which carry no lock, are removed once
//! unmodified for an hour.
//!
//! # Known limits
//!
//! - Unix only (see above); in-place reads on Linux only.
//! - Every process that writes a store must maintain the counter, as every version of this
//!   backend since the cache does. A file changed behind the store's back, without the lock and
//!   the counter, stays unseen by a handle's cached listing until the next change made through
//!   another handle or process. So does one made while a lock file is replaced by a copy that
//!   carries the same counter and gets the old file's inode number.
//! - The cache keeps in memory, per handle, the keys of the walked prefix and the headers read
//!   so far, within its budget; a [`FileCatalog`](crate::catalog::FileCatalog) keeps up to
//!   10,000 handles.
//! - Temporary files of writers killed mid-write stay on disk until a catalog opens on the root
//!   or a handle sweeps. An older version's unlocked temporary file is swept by age, so there a
//!   streamed upload that stalls for an hour lets a sweep take a live write's file; that write
//!   then fails with an error, and nothing acknowledged is lost. A process killed while it
//!   builds a hashed store directory leaves a `.tmp-<16 hex>/` directory in the root, which is
//!   never listed and never swept.
//! - Without fsync, the swapped-out old version stays in its chunk directory until just after
//!   the lock is released; a delete of the last key of that directory in that instant leaves
//!   the directory empty. Empty chunk directories are never listed and change nothing else.
//! - [`FileStore::delete_all`] leaves the store directory, its lock file (and `.name`) behind;
//!   an empty store is not listed by [`FileStore::list_stores`].
//! - Every overwrite creates one file and frees one, since readers may still be reading the old
//!   one. On ext4 without a journal, creating files gets slower as many are deleted (the kernel
//!   skips inodes freed in the last few seconds), so overwrite-heavy load pays for this.
//!
//! # Code map
//!
//! - `mod.rs`: [`FileOptions`], [`FileStore`], the shared state of a handle and the
//!   [`BlobStore`] impl, which checks its input and runs the blocking part on
//!   `tokio::task::spawn_blocking`, except for reads done in place.
//! - `names`: the encoding, chunk pieces, store directories, and the fixed file names.
//! - `format`: the blob file's magic and header.
//! - `read`: reading blob files whole, header only or as a stream, blocking or in place.
//! - `write`: temporary files, the commit under the lock, `set`, `set_stream`, deletes.
//! - `counter`: the store lock and the change counter.
//! - `list_cache`: the listing cache and its memory budget.
//! - `walk`: listing pages, the directory walk and [`FileStore::list_stores`].
//! - `sweep`: removing dead writers' temporary files, per handle and for a whole root.
//! - `sys`: the platform calls (`openat2`, `preadv2`, `renameat2`, fsync).

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

pub use self::list_cache::DEFAULT_LIST_CACHE_BYTES;
use self::list_cache::ListCache;
pub(crate) use self::list_cache::ListCacheBudget;
pub(crate) use self::names::check_store_name;
use self::names::store_dir;
use self::read::{
    Opened, WHOLE_READ, open_blob, read_blob, read_blob_cached, read_blob_info,
    read_blob_info_cached, value_stream,
};
pub(crate) use self::sweep::sweep_root;
use self::walk::list_stores_blocking;
pub(crate) use self::write::make_dir_all;

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
    ///
    /// The handle's listing cache may hold up to [`DEFAULT_LIST_CACHE_BYTES`]; the handles of a
    /// [`Catalog`](crate::Catalog) share one budget instead.
    pub fn open(root: impl AsRef<Path>, store_name: &str, options: FileOptions) -> Result<Self> {
        let budget = Arc::new(ListCacheBudget::new(DEFAULT_LIST_CACHE_BYTES));
        Self::open_with_budget(root, store_name, options, &budget)
    }

    /// [`FileStore::open`], with a listing cache that charges `budget`.
    pub(crate) fn open_with_budget(
        root: impl AsRef<Path>,
        store_name: &str,
        options: FileOptions,
        budget: &Arc<ListCacheBudget>,
    ) -> Result<Self> {
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
                list_cache: ListCache::new(Arc::clone(budget)),
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

/// Runs `read`, a read from the page cache that never waits (see `sys::read_cached`), on the
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

/// An error of the file system about `path`. A full disk or an exhausted quota is
/// [`ErrorKind::StorageFull`], any other failure [`ErrorKind::Io`]. The message names the path,
/// for the server's log; a server shows its clients the kind and the cause (`source`) alone.
fn io_error(what: &str, path: &Path, err: io::Error) -> Error {
    let kind = match err.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => ErrorKind::StorageFull,
        _ => ErrorKind::Io,
    };
    Error::new(kind, format!("{what} {}: {err}", path.display())).with_source(err)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A full disk or quota is told apart from other failures of the file system, whatever
    /// the operation that met it.
    #[test]
    fn a_full_disk_is_storage_full() {
        let path = Path::new("/data/store/.tmp-l0");
        let kind =
            |errno| io_error("cannot write", path, io::Error::from_raw_os_error(errno)).kind();
        assert_eq!(
            kind(rustix::io::Errno::NOSPC.raw_os_error()),
            ErrorKind::StorageFull
        );
        assert_eq!(
            kind(rustix::io::Errno::DQUOT.raw_os_error()),
            ErrorKind::StorageFull
        );
        assert_eq!(
            kind(rustix::io::Errno::ACCESS.raw_os_error()),
            ErrorKind::Io
        );
        assert_eq!(kind(rustix::io::Errno::IO.raw_os_error()), ErrorKind::Io);
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
