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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Bound;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use blobjobs_store_api::list::{Flow, Paginator};
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, Condition, Error, ErrorKind, Etag, ListEntry,
    ListOptions, ListPage, Metadata, Result, SetOptions, SetOutcome, Timestamp, once_stream,
    validate_key, validate_metadata,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The longest store name accepted, in UTF-8 bytes (catalog names such as
/// `site-1/deploy:abc:name` are longer than user-facing ones).
pub const MAX_FILE_STORE_NAME_BYTES: usize = crate::catalog::MAX_CATALOG_NAME_BYTES;

/// The first bytes of every blob file.
const MAGIC: &[u8; 8] = b"nblob01\n";
/// Magic plus the `u32` header length.
const PREFIX_LEN: usize = 12;
/// A header longer than this is damage, not data (metadata is limited to 1515 bytes of JSON).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How much of a file to read at once when only the header is wanted.
const HEAD_READ: usize = 4096;
/// The longest piece of an encoded name in one path component, well below the usual
/// 255-byte file name limit even with a suffix.
const PIECE_CHARS: usize = 200;
/// Values up to this size are written together with their header in one system call.
const SMALL_VALUE: usize = 256 * 1024;
/// The chunk size of [`BlobStore::get_stream`].
const STREAM_CHUNK: usize = 64 * 1024;
/// Blob files up to this size (a value of about 64 KiB and its header) are read whole by
/// [`BlobStore::get_stream`], in the same blocking call that opens them; larger ones stream.
const WHOLE_READ: usize = STREAM_CHUNK + HEAD_READ;
/// [`BlobStore::set_stream`] collects up to this much of a body in memory; a body that ends
/// within it is written like [`BlobStore::set`], in one blocking call.
const SMALL_BODY: usize = 64 * 1024;
/// A listing page with at least this many headers to read reads them on several threads.
const PARALLEL_LIST_READS: usize = 64;
/// At most this many threads read a page's headers.
const LIST_READ_THREADS: usize = 4;
/// How often a write retries creating its temporary file when a concurrent delete removed
/// the empty directory it had just created.
const CREATE_ATTEMPTS: usize = 16;
/// A temporary file unchanged for this long was left by a writer that died: a live write
/// changes its file with every chunk it receives and renames it moments after the last.
const STALE_TEMP: Duration = Duration::from_secs(60 * 60);

const BLOB_SUFFIX: &str = ".b";
const STORE_SUFFIX: &str = ".s";
const HASHED_STORE_SUFFIX: &str = ".h";
const LOCK_FILE: &str = ".lock";
const NAME_FILE: &str = ".name";
const TEMP_PREFIX: &str = ".tmp-";

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

/// Where one key lives.
struct KeyPath {
    /// The directory of the blob file (the store directory or a chunk directory under it).
    dir: PathBuf,
    /// The blob file.
    file: PathBuf,
}

/// The JSON part of a blob file's header.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    etag: Etag,
    size: u64,
    last_modified: u64,
    metadata: Metadata,
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

    /// Deletes every key of the store called `name` under `root`; returns how many there were.
    ///
    /// The store's directory and lock file stay, so that a process holding the lock at this
    /// moment keeps excluding the others; an empty store is not listed.
    pub async fn delete_store(root: impl AsRef<Path>, name: &str) -> Result<u64> {
        let store = FileStore::open(root, name, FileOptions::default())?;
        blocking(move || store.inner.delete_all()).await
    }
}

fn check_store_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_FILE_STORE_NAME_BYTES {
        return Err(Error::invalid(format!(
            "store name must be 1 to {MAX_FILE_STORE_NAME_BYTES} bytes"
        )));
    }
    Ok(())
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

// ---------------------------------------------------------------------------------------------
// Name encoding

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_kept(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

/// Encodes text for use in file names (see the module documentation).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if is_kept(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes what [`encode`] produced; anything it could not have produced gives `None`.
fn decode(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = hex_value(*bytes.get(i + 1)?)?;
            let lo = hex_value(*bytes.get(i + 2)?)?;
            let byte = (hi << 4) | lo;
            // A kept byte is never escaped, so an escaped one is not canonical.
            if is_kept(byte) {
                return None;
            }
            out.push(byte);
            i += 3;
        } else if is_kept(b) {
            out.push(b);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(out).ok()
}

/// Splits an encoded name into path pieces of at most [`PIECE_CHARS`] characters, never
/// cutting an escape in two.
fn split_pieces(encoded: &str) -> Vec<&str> {
    let bytes = encoded.as_bytes();
    let mut pieces = Vec::with_capacity(bytes.len() / PIECE_CHARS + 1);
    let mut start = 0;
    while bytes.len() - start > PIECE_CHARS {
        let mut end = start + PIECE_CHARS;
        if bytes[end - 1] == b'%' {
            end -= 1;
        } else if bytes[end - 2] == b'%' {
            end -= 2;
        }
        pieces.push(&encoded[start..end]);
        start = end;
    }
    pieces.push(&encoded[start..]);
    pieces
}

fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The directory of a store and whether it is named by hash.
fn store_dir(root: &Path, name: &str) -> (PathBuf, bool) {
    let encoded = encode(name);
    if encoded.len() <= PIECE_CHARS {
        (root.join(format!("{encoded}{STORE_SUFFIX}")), false)
    } else {
        (
            root.join(format!("{}{HASHED_STORE_SUFFIX}", sha256_hex(name))),
            true,
        )
    }
}

fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::new(ErrorKind::Io, format!("no randomness for a file name: {e}")))?;
    let mut out = String::with_capacity(16);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Blob files

fn blob_prefix(header: &Header, pad_to: Option<usize>) -> Result<Vec<u8>> {
    let mut json = serde_json::to_vec(header)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot encode a blob header: {e}")))?;
    if let Some(len) = pad_to {
        if json.len() > len {
            return Err(Error::new(
                ErrorKind::Io,
                "blob header outgrew its reserved space",
            ));
        }
        json.resize(len, b' ');
    }
    let json_len = u32::try_from(json.len())
        .map_err(|_| Error::new(ErrorKind::Io, "blob header is too long"))?;
    let mut out = Vec::with_capacity(PREFIX_LEN + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&json_len.to_le_bytes());
    out.extend_from_slice(&json);
    Ok(out)
}

/// The length of magic, length field and JSON header, from at least the first
/// [`PREFIX_LEN`] bytes of a file of `file_len` bytes.
fn header_extent(head: &[u8], file_len: u64, path: &Path) -> Result<usize> {
    if head.len() < PREFIX_LEN || &head[..MAGIC.len()] != MAGIC {
        return Err(corrupt(path, "bad magic"));
    }
    let mut len = [0u8; 4];
    len.copy_from_slice(&head[MAGIC.len()..PREFIX_LEN]);
    let json_len = u32::from_le_bytes(len) as usize;
    let total = PREFIX_LEN + json_len;
    if json_len > MAX_HEADER_BYTES || total as u64 > file_len {
        return Err(corrupt(path, "bad header length"));
    }
    Ok(total)
}

fn decode_header(json: &[u8], file_len: u64, extent: usize, path: &Path) -> Result<BlobInfo> {
    let header: Header =
        serde_json::from_slice(json).map_err(|_| corrupt(path, "header is not valid"))?;
    if header.size != file_len - extent as u64 {
        return Err(corrupt(path, "value length differs from the header"));
    }
    Ok(BlobInfo {
        etag: header.etag,
        metadata: header.metadata,
        size: header.size,
        last_modified: Timestamp::from_millis(header.last_modified),
    })
}

/// Opens a file for reading, or `None` if it does not exist. `O_NONBLOCK` changes nothing for
/// a regular file, but keeps a FIFO someone put at a key's path from blocking the open forever
/// (reading it then finds a damaged blob).
fn open_existing(path: &Path) -> Result<Option<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error("cannot open", path, e)),
    }
}

/// Reads the header of an open blob file; returns it and the offset of the value.
fn read_info(file: &mut File, path: &Path) -> Result<(BlobInfo, u64)> {
    let file_len = file
        .metadata()
        .map_err(|e| io_error("cannot stat", path, e))?
        .len();
    read_info_of(file, file_len, path)
}

/// [`read_info`] of a file known to be `file_len` bytes long.
fn read_info_of(file: &mut File, file_len: u64, path: &Path) -> Result<(BlobInfo, u64)> {
    let first = usize::try_from(file_len)
        .unwrap_or(HEAD_READ)
        .min(HEAD_READ);
    let mut head = vec![0u8; first];
    read_exact(file, &mut head, path)?;
    let extent = header_extent(&head, file_len, path)?;
    if extent > head.len() {
        let old = head.len();
        head.resize(extent, 0);
        read_exact(file, &mut head[old..], path)?;
    }
    let info = decode_header(&head[PREFIX_LEN..extent], file_len, extent, path)?;
    Ok((info, extent as u64))
}

fn read_exact(file: &mut File, buf: &mut [u8], path: &Path) -> Result<()> {
    file.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            corrupt(path, "file is shorter than its header says")
        } else {
            io_error("cannot read", path, e)
        }
    })
}

/// A blob file opened for reading.
enum Opened {
    /// A small file, read whole.
    Whole(Blob),
    /// A larger file: its header, and the file positioned at the start of the value.
    Streaming(BlobInfo, File),
}

/// Opens the blob file at `path` and reads it whole if it is at most `whole_max` bytes long;
/// otherwise reads only its header. One open file is one version, so whatever is read from it
/// belongs together, even while the key is being replaced.
fn open_blob(path: &Path, whole_max: u64) -> Result<Option<Opened>> {
    let Some(mut file) = open_existing(path)? else {
        return Ok(None);
    };
    let file_len = file
        .metadata()
        .map_err(|e| io_error("cannot stat", path, e))?
        .len();
    if file_len > whole_max {
        let (info, offset) = read_info_of(&mut file, file_len, path)?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error("cannot seek", path, e))?;
        return Ok(Some(Opened::Streaming(info, file)));
    }
    let len = usize::try_from(file_len).map_err(|_| corrupt(path, "file is too large"))?;
    let mut data = vec![0u8; len];
    read_exact(&mut file, &mut data, path)?;
    Ok(Some(Opened::Whole(parse_whole(data, path)?)))
}

/// The blob in `data`, the whole content of the blob file at `path`.
fn parse_whole(data: Vec<u8>, path: &Path) -> Result<Blob> {
    let file_len = data.len() as u64;
    let extent = header_extent(&data, file_len, path)?;
    let info = decode_header(&data[PREFIX_LEN..extent], file_len, extent, path)?;
    let value = Bytes::from(data).slice(extent..);
    Ok(Blob { value, info })
}

/// Reads from the page cache alone, without ever waiting for the disk, so that the async
/// caller can do it in place rather than on the blocking pool: the path is resolved only from
/// cached directory entries (`openat2` with `RESOLVE_CACHED`) and the bytes are read only if
/// cached (`preadv2` with `RWF_NOWAIT`). Returns the file's first `max` bytes (the whole file
/// if `whole`), or `None` when that cannot be done without waiting, or on any error: the
/// blocking path then does the read and reports what went wrong.
#[cfg(target_os = "linux")]
fn read_cached(path: &Path, max: usize, whole: bool) -> Option<CachedRead> {
    use std::sync::atomic::{AtomicBool, Ordering};

    use rustix::fs::{CWD, Mode, OFlags, ResolveFlags, openat2};
    use rustix::io::{Errno, IoSliceMut, ReadWriteFlags, preadv2};

    /// Cleared for good when the kernel lacks `openat2` or `RESOLVE_CACHED` (before 5.12), or
    /// a file system cannot read without waiting (`EOPNOTSUPP` from `RWF_NOWAIT`, as on FUSE),
    /// so that such a process stops paying for attempts that cannot succeed.
    static SUPPORTED: AtomicBool = AtomicBool::new(true);
    if !SUPPORTED.load(Ordering::Relaxed) {
        return None;
    }
    // No access time update: on a journaling file system it may wait for the journal. The
    // kernel allows `O_NOATIME` only to the file's owner; anyone else gets `EPERM` and reads
    // on the blocking pool. `O_NONBLOCK` keeps a FIFO or device file at a key's path from
    // blocking the open; anything but a regular file then goes to the blocking path.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOATIME | OFlags::NONBLOCK;
    let fd = match openat2(CWD, path, flags, Mode::empty(), ResolveFlags::CACHED) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Some(CachedRead::Absent),
        Err(Errno::NOSYS | Errno::INVAL) => {
            SUPPORTED.store(false, Ordering::Relaxed);
            return None;
        }
        Err(_) => return None,
    };
    let file = File::from(fd);
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let file_len = meta.len();
    if whole && file_len > max as u64 {
        return None;
    }
    let len = usize::try_from(file_len).ok()?.min(max);
    let mut data = vec![0u8; len];
    let mut filled = 0;
    while filled < len {
        let mut bufs = [IoSliceMut::new(&mut data[filled..])];
        match preadv2(&file, &mut bufs, filled as u64, ReadWriteFlags::NOWAIT) {
            // Shorter than its length a moment ago: let the blocking path tell why.
            Ok(0) => return None,
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(Errno::OPNOTSUPP) => {
                SUPPORTED.store(false, Ordering::Relaxed);
                return None;
            }
            Err(_) => return None,
        }
    }
    Some(CachedRead::Found { data, file_len })
}

#[cfg(not(target_os = "linux"))]
fn read_cached(_: &Path, _: usize, _: bool) -> Option<CachedRead> {
    None
}

/// What [`read_cached`] found.
enum CachedRead {
    /// No file at the path.
    Absent,
    /// The file's first bytes, and its length.
    Found { data: Vec<u8>, file_len: u64 },
}

/// [`read_blob`] of a file of at most [`WHOLE_READ`] bytes, from the page cache alone (see
/// [`read_cached`]); `None` when that would wait, and the blocking path must read.
fn read_blob_cached(path: &Path) -> Option<Result<Option<Blob>>> {
    let CachedRead::Found { data, .. } = read_cached(path, WHOLE_READ, true)? else {
        return Some(Ok(None));
    };
    Some(parse_whole(data, path).map(Some))
}

/// [`read_blob_info`] from the page cache alone, when the header is within the first
/// [`HEAD_READ`] bytes; `None` when the blocking path must read.
fn read_blob_info_cached(path: &Path) -> Option<Result<Option<BlobInfo>>> {
    let CachedRead::Found {
        data: head,
        file_len,
    } = read_cached(path, HEAD_READ, false)?
    else {
        return Some(Ok(None));
    };
    let extent = match header_extent(&head, file_len, path) {
        Ok(extent) if extent <= head.len() => extent,
        Ok(_) => return None,
        Err(e) => return Some(Err(e)),
    };
    Some(decode_header(&head[PREFIX_LEN..extent], file_len, extent, path).map(Some))
}

fn read_blob(path: &Path) -> Result<Option<Blob>> {
    match open_blob(path, u64::MAX)? {
        Some(Opened::Whole(blob)) => Ok(Some(blob)),
        // Unreachable with no size limit, but a header is no value: say so rather than panic.
        Some(Opened::Streaming(..)) => Err(Error::new(ErrorKind::Io, "blob was not read whole")),
        None => Ok(None),
    }
}

fn read_blob_info(path: &Path) -> Result<Option<BlobInfo>> {
    let Some(mut file) = open_existing(path)? else {
        return Ok(None);
    };
    Ok(Some(read_info(&mut file, path)?.0))
}

/// What a listing shows of the blob file at `path`, or `None` if it does not exist.
fn read_listed_one(path: &Path) -> Result<Option<Listed>> {
    Ok(read_blob_info(path)?.map(|info| Listed {
        etag: info.etag,
        size: info.size,
        last_modified: info.last_modified,
    }))
}

/// [`read_listed_one`] for every path, in order. Each header costs a few system calls and
/// little else, so many of them are read on several threads at once.
fn read_listed(paths: &[&Path]) -> Result<Vec<Option<Listed>>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(LIST_READ_THREADS);
    if paths.len() < PARALLEL_LIST_READS || threads < 2 {
        return paths.iter().map(|p| read_listed_one(p)).collect();
    }
    let part_len = paths.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let mut parts = Vec::new();
        for part in paths.chunks(part_len) {
            let read = move || part.iter().map(|p| read_listed_one(p)).collect();
            match std::thread::Builder::new().spawn_scoped(scope, read) {
                Ok(handle) => parts.push(Ok(handle)),
                // No thread to spare: read this part here.
                Err(_) => parts.push(Err(read())),
            }
        }
        let mut out = Vec::with_capacity(paths.len());
        for part in parts {
            let read: Result<Vec<_>> = match part {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    Err(Error::new(
                        ErrorKind::Io,
                        "a header reading thread panicked",
                    ))
                }),
                Err(read) => read,
            };
            out.extend(read?);
        }
        Ok(out)
    })
}

fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("cannot stat", path, e)),
    }
}

/// A temporary file that is removed unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: a leftover temporary file is never listed, only wasted space.
            let _ = fs::remove_file(&self.path);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The change counter and the listing cache

/// The store's exclusive lock, held while the value lives.
struct StoreLock {
    file: File,
    path: PathBuf,
}

/// A change announced on the change counter by [`StoreLock::begin_change`].
struct Change {
    /// The even value the counter had before, which stands for the store as it is now, when
    /// there was one.
    before: Option<u64>,
    /// The odd value the counter holds during the change.
    odd: u64,
}

impl StoreLock {
    /// Announces a change: makes the change counter odd, where it stays until
    /// [`StoreLock::end_change`]. A counter left odd by a writer that died mid-change is first
    /// moved to the next even value, which is safe because holding the lock means no change is
    /// in progress; every step is thus to the next value.
    fn begin_change(&self) -> Result<Change> {
        let failed = |e| io_error("cannot update the change counter in", &self.path, e);
        let (mut current, known) = match read_counter(&self.file).map_err(failed)? {
            Some(n) if n != 0 && n < COUNTER_LIMIT => (n, true),
            // A new lock file (or one from before counters): start at a random even value, so
            // that a lock file made anew never retraces the values of a removed one.
            _ => (random_counter_start()?, false),
        };
        if !current.is_multiple_of(2) {
            current += 1;
            write_counter(&self.file, current).map_err(failed)?;
        }
        write_counter(&self.file, current + 1).map_err(failed)?;
        Ok(Change {
            before: known.then_some(current),
            odd: current + 1,
        })
    }

    /// Announces that `change` is complete: the counter becomes even.
    fn end_change(&self, change: Change) {
        // If this fails the counter stays odd, which only turns listing caches off until the
        // next change; the change itself is done, so it is not reported as failed.
        let _ = write_counter(&self.file, change.odd + 1);
    }

    /// The stamp a listing would read with the counter at `generation`.
    fn stamp(&self, generation: u64) -> Option<Stamp> {
        let meta = self.file.metadata().ok()?;
        Some(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            generation,
        })
    }
}

/// Counter values stay below this; a larger one is damage and starts the counter anew.
const COUNTER_LIMIT: u64 = 1 << 62;

fn random_counter_start() -> Result<u64> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::new(ErrorKind::Io, format!("no randomness for a counter: {e}")))?;
    // Even, at least 2^40 and at most 2^61, far from the limit.
    Ok(((u64::from_le_bytes(bytes) >> 3) | (1 << 40)) & !1)
}

/// Gray code: consecutive values differ in one bit, so a read racing one update of the
/// counter sees the old or the new value, never a mixture of their bytes meaning a third.
fn to_gray(n: u64) -> u64 {
    n ^ (n >> 1)
}

fn from_gray(g: u64) -> u64 {
    let mut n = g;
    for shift in [32, 16, 8, 4, 2, 1] {
        n ^= n >> shift;
    }
    n
}

/// The change counter: the first 8 bytes of the lock file, or `None` if it has fewer.
fn read_counter(file: &File) -> io::Result<Option<u64>> {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => return Ok(None),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(from_gray(u64::from_le_bytes(buf))))
}

fn write_counter(file: &File, n: u64) -> io::Result<()> {
    file.write_all_at(&to_gray(n).to_le_bytes(), 0)
}

/// A reading of a store's change counter, and which lock file it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    /// An even counter value: no change was in progress.
    generation: u64,
}

/// The keys of the last listing walk of a store and the headers read for them, kept while the
/// store's change counter shows that nothing changed, or that only this handle changed it.
#[derive(Debug, Default)]
struct ListCache {
    cached: Mutex<Option<Cached>>,
}

/// One cached walk.
#[derive(Debug)]
struct Cached {
    /// The counter value the keys belong to.
    stamp: Stamp,
    /// The prefix walked: `entries` holds exactly the keys that start with it.
    prefix: String,
    /// The keys, in order.
    entries: BTreeMap<String, CachedKey>,
}

/// One key of a cached walk.
#[derive(Debug, Clone)]
struct CachedKey {
    path: PathBuf,
    /// What a listing shows of its header, once read.
    listed: Option<Listed>,
}

/// What a listing shows of a blob's header.
#[derive(Debug, Clone)]
struct Listed {
    etag: Etag,
    size: u64,
    last_modified: Timestamp,
}

/// One page of a listing, with the file and the known header of each blob on it.
type PageParts = (ListPage, Vec<CachedKey>);

impl ListCache {
    /// The page `options` asks for, if the cache holds the keys of the store at `stamp`.
    fn page(&self, stamp: Option<Stamp>, options: &ListOptions) -> Result<Option<PageParts>> {
        let Some(stamp) = stamp else {
            return Ok(None);
        };
        let Ok(cached) = self.cached.lock() else {
            return Ok(None);
        };
        match cached.as_ref() {
            Some(c) if c.stamp == stamp && options.prefix.starts_with(&c.prefix) => {
                fill_page(&c.entries, options).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Caches `entries`, the keys under `prefix` at `stamp`.
    fn put(&self, stamp: Stamp, prefix: &str, entries: BTreeMap<String, CachedKey>) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some(Cached {
                stamp,
                prefix: prefix.to_owned(),
                entries,
            });
        }
    }

    /// Adds headers read while the counter still had the value `stamp`.
    fn remember(&self, stamp: Stamp, read: impl Iterator<Item = (String, Listed)>) {
        let Ok(mut cached) = self.cached.lock() else {
            return;
        };
        let Some(c) = cached.as_mut().filter(|c| c.stamp == stamp) else {
            return;
        };
        for (key, listed) in read {
            if let Some(entry) = c.entries.get_mut(&key) {
                entry.listed = Some(listed);
            }
        }
    }

    /// Called under the store lock, after `change` was made and before it is announced as
    /// complete: if the cache holds the store as it was before the change, `update` makes it
    /// hold the store as it is after, for the value the counter is about to take.
    fn follow(&self, lock: &StoreLock, change: &Change, update: impl FnOnce(&mut Cached)) {
        let Some(before) = change.before else {
            return;
        };
        let Ok(mut cached) = self.cached.lock() else {
            return;
        };
        let Some(c) = cached.as_mut() else {
            return;
        };
        if Some(c.stamp) != lock.stamp(before) {
            return;
        }
        update(c);
        c.stamp.generation = change.odd + 1;
    }
}

/// Builds the page `options` asks for from `entries`, the sorted keys of a walk.
fn fill_page(entries: &BTreeMap<String, CachedKey>, options: &ListOptions) -> Result<PageParts> {
    let mut pager = Paginator::new(options)?;
    let start = pager.start_key().to_owned();
    // Page through the keys alone; headers are wanted only for the keys on the page.
    for key in entries.range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded)) {
        let entry = ListEntry {
            key: key.0.clone(),
            etag: Etag::new(""),
            size: 0,
            last_modified: Timestamp::from_millis(0),
        };
        if pager.push(entry) == Flow::Stop {
            break;
        }
    }
    let page = pager.finish();
    let mut keys = Vec::with_capacity(page.blobs.len());
    for entry in &page.blobs {
        let Some(found) = entries.get(&entry.key) else {
            return Err(Error::new(ErrorKind::Io, "a listed key left the walk"));
        };
        keys.push(found.clone());
    }
    Ok((page, keys))
}

// ---------------------------------------------------------------------------------------------
// The store

impl Inner {
    fn key_path(&self, key: &str) -> KeyPath {
        let encoded = encode(key);
        let pieces = split_pieces(&encoded);
        let mut dir = self.dir.clone();
        let (last, chunks) = match pieces.split_last() {
            Some((last, chunks)) => (*last, chunks),
            None => ("", &[][..]),
        };
        for chunk in chunks {
            dir.push(chunk);
        }
        let file = dir.join(format!("{last}{BLOB_SUFFIX}"));
        KeyPath { dir, file }
    }

    /// Takes the store's exclusive lock; it is held until the returned value is dropped.
    fn lock(&self) -> Result<StoreLock> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("cannot open lock file", &path, e))?;
        file.lock().map_err(|e| io_error("cannot lock", &path, e))?;
        Ok(StoreLock { file, path })
    }

    /// The store's change counter as a lister sees it, without the lock; `None` when the
    /// store cannot be cached now (no counter yet, or a change in progress or cut short).
    fn read_stamp(&self) -> Option<Stamp> {
        let file = File::open(self.dir.join(LOCK_FILE)).ok()?;
        let meta = file.metadata().ok()?;
        let generation = read_counter(&file).ok()??;
        (generation != 0 && generation.is_multiple_of(2)).then(|| Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            generation,
        })
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        if !self.options.fsync {
            return Ok(());
        }
        sync_dir(dir)
    }

    /// Creates the store directory if needed. A hashed store directory is built under a
    /// temporary name with its `.name` file inside and renamed into place, so it never exists
    /// without its name.
    fn ensure_store_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        if !self.root.is_dir() {
            fs::create_dir_all(&self.root)
                .map_err(|e| io_error("cannot create directory", &self.root, e))?;
            if let Some(parent) = self.root.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.sync_dir(parent)?;
            }
        }
        if !self.hashed {
            match fs::create_dir(&self.dir) {
                Ok(()) => return self.sync_dir(&self.root),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(io_error("cannot create directory", &self.dir, e)),
            }
        }
        let temp = self.root.join(format!("{TEMP_PREFIX}{}", random_hex()?));
        let built = (|| {
            fs::create_dir(&temp).map_err(|e| io_error("cannot create directory", &temp, e))?;
            let name_path = temp.join(NAME_FILE);
            let mut file =
                File::create(&name_path).map_err(|e| io_error("cannot create", &name_path, e))?;
            file.write_all(self.name.as_bytes())
                .map_err(|e| io_error("cannot write", &name_path, e))?;
            if self.options.fsync {
                file.sync_all()
                    .map_err(|e| io_error("cannot sync", &name_path, e))?;
            }
            self.sync_dir(&temp)
        })();
        let renamed = built.and_then(|()| match fs::rename(&temp, &self.dir) {
            Ok(()) => self.sync_dir(&self.root),
            // Another writer created the store first; its directory is as good as ours.
            Err(_) if self.dir.is_dir() => Ok(()),
            Err(e) => Err(io_error("cannot create directory", &self.dir, e)),
        });
        let _ = fs::remove_file(temp.join(NAME_FILE));
        let _ = fs::remove_dir(&temp);
        renamed
    }

    /// Creates `dir` (the store directory or a chunk directory in it) and its parents.
    fn ensure_dir(&self, dir: &Path) -> Result<()> {
        self.ensure_store_dir()?;
        let Ok(rel) = dir.strip_prefix(&self.dir) else {
            return Ok(());
        };
        let mut current = self.dir.clone();
        for part in rel.components() {
            let parent = current.clone();
            current.push(part);
            match fs::create_dir(&current) {
                Ok(()) => self.sync_dir(&parent)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error("cannot create directory", &current, e)),
            }
        }
        Ok(())
    }

    /// Before the first change made through this handle, and before the first change after
    /// every [`STALE_TEMP`] since the last sweep, removes the temporary files that writers
    /// which died left in the store (those untouched for [`STALE_TEMP`]). Best effort: a file
    /// that cannot be removed stays, never listed, as it would have anyway.
    fn sweep(&self) {
        {
            let Ok(mut last) = self.swept.lock() else {
                return;
            };
            if last.is_some_and(|at| at.elapsed() < STALE_TEMP) {
                return;
            }
            *last = Some(Instant::now());
        }
        let removed = sweep_stale_temps(&self.dir, SystemTime::now());
        if removed > 0 {
            tracing::info!(
                "removed {removed} temporary files left by interrupted writes in {}",
                self.dir.display()
            );
        }
    }

    /// Creates a new temporary file in `dir`, creating the directory if needed.
    fn create_temp(&self, dir: &Path) -> Result<(File, TempFile)> {
        self.sweep();
        let mut last_error = None;
        for _ in 0..CREATE_ATTEMPTS {
            let path = dir.join(format!("{TEMP_PREFIX}{}", random_hex()?));
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => return Ok((file, TempFile { path, armed: true })),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.ensure_dir(dir)?;
                    last_error = Some(e);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(e) => return Err(io_error("cannot create", &path, e)),
            }
        }
        let err = last_error.unwrap_or_else(|| io::Error::other("no attempt made"));
        Err(io_error("cannot create a temporary file in", dir, err))
    }

    /// Under the lock: checks `condition` against the current version of `key` and renames
    /// the finished temporary file, whose header is `written`, over the target. Fsyncs the
    /// directory after releasing the lock but before returning.
    fn commit(
        &self,
        key: &str,
        temp: TempFile,
        target: &KeyPath,
        condition: &Condition,
        written: Listed,
    ) -> Result<SetOutcome> {
        let lock = self.lock()?;
        let allowed = match condition {
            Condition::Always => true,
            Condition::IfNew => !exists(&target.file)?,
            Condition::IfMatch(want) => {
                read_blob_info(&target.file)?.is_some_and(|info| info.etag == *want)
            }
        };
        if !allowed {
            drop(lock);
            drop(temp);
            return Ok(SetOutcome::ConditionFailed);
        }
        let change = lock.begin_change()?;
        // Without fsync the old version is swapped out rather than replaced: see
        // `FileOptions::fsync`. Its file, now under the temporary name, is removed (by dropping
        // `temp`) once the lock is released.
        // Only an existing target can be swapped; `IfNew` has just seen that there is none.
        let swap = !self.options.fsync && !matches!(condition, Condition::IfNew);
        let swapped_out = if swap && exchange(&temp.path, &target.file) {
            Some(temp)
        } else {
            fs::rename(&temp.path, &target.file)
                .map_err(|e| io_error("cannot rename into", &target.file, e))?;
            temp.disarm();
            None
        };
        let etag = written.etag.clone();
        self.list_cache.follow(&lock, &change, |cached| {
            if key.starts_with(&cached.prefix) {
                let entry = CachedKey {
                    path: target.file.clone(),
                    listed: Some(written),
                };
                cached.entries.insert(key.to_owned(), entry);
            }
        });
        lock.end_change(change);
        drop(lock);
        drop(swapped_out);
        self.sync_dir(&target.dir)?;
        Ok(SetOutcome::Written { etag })
    }

    fn set(&self, key: &str, value: &Bytes, options: &SetOptions) -> Result<SetOutcome> {
        let target = self.key_path(key);
        let etag = Etag::random()?;
        let header = Header {
            etag: etag.clone(),
            size: value.len() as u64,
            last_modified: Timestamp::now().as_millis(),
            metadata: options.metadata.clone(),
        };
        let mut prefix = blob_prefix(&header, None)?;
        let (mut file, temp) = self.create_temp(&target.dir)?;
        let written = if value.len() <= SMALL_VALUE {
            prefix.extend_from_slice(value);
            file.write_all(&prefix)
        } else {
            file.write_all(&prefix).and_then(|()| file.write_all(value))
        };
        written.map_err(|e| io_error("cannot write", &temp.path, e))?;
        if self.options.fsync {
            file.sync_data()
                .map_err(|e| io_error("cannot sync", &temp.path, e))?;
        }
        drop(file);
        let written = Listed {
            etag,
            size: header.size,
            last_modified: Timestamp::from_millis(header.last_modified),
        };
        self.commit(key, temp, &target, &options.condition, written)
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.sweep();
        let target = self.key_path(key);
        // A key that is not there now is deleted as of now; no lock is needed to say so.
        if !exists(&target.file)? {
            return Ok(());
        }
        let lock = self.lock()?;
        let change = lock.begin_change()?;
        match fs::remove_file(&target.file) {
            Ok(()) => {}
            // Deleted meanwhile by another writer: gone either way.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("cannot remove", &target.file, e)),
        }
        let synced = self.remove_empty_chunks(&target.dir);
        self.list_cache.follow(&lock, &change, |cached| {
            cached.entries.remove(key);
        });
        lock.end_change(change);
        drop(lock);
        self.sync_dir(&synced)
    }

    /// Under the lock, removes `dir` and its parents up to the store directory while they are
    /// empty; returns the deepest directory left, whose entry list changed. A writer that
    /// created a directory but not yet its temporary file sees `NotFound` and creates it again;
    /// one with a temporary file inside keeps the directory from being removed.
    fn remove_empty_chunks(&self, dir: &Path) -> PathBuf {
        let mut current = dir.to_path_buf();
        while current != self.dir && current.starts_with(&self.dir) {
            if fs::remove_dir(&current).is_err() {
                break;
            }
            if !current.pop() {
                break;
            }
        }
        current
    }

    /// One page of keys. The sorted keys come from the cached walk when the change counter
    /// says the store is as it was walked, else from a new walk (cached if the counter did
    /// not move while it ran); headers are read only for the keys on the page and cached on
    /// the same terms.
    fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let stamp = self.read_stamp();
        let (mut page, keys) = match self.list_cache.page(stamp, options)? {
            Some(parts) => parts,
            None => {
                let mut found = Vec::new();
                walk_keys(
                    &self.dir,
                    &mut Vec::new(),
                    &encode(&options.prefix),
                    &mut found,
                    None,
                )?;
                let entries: BTreeMap<String, CachedKey> = found
                    .into_iter()
                    .map(|(key, path)| (key, CachedKey { path, listed: None }))
                    .collect();
                let parts = fill_page(&entries, options)?;
                // Only a walk that no change overlapped may stand for its counter value.
                if let Some(stamp) = stamp
                    && self.read_stamp() == Some(stamp)
                {
                    self.list_cache.put(stamp, &options.prefix, entries);
                }
                parts
            }
        };
        // Positions on the page whose headers are not cached.
        let missing: Vec<usize> = (0..keys.len())
            .filter(|&i| keys[i].listed.is_none())
            .collect();
        let paths: Vec<&Path> = missing.iter().map(|&i| keys[i].path.as_path()).collect();
        let read = read_listed(&paths)?;
        // Headers read while nothing changed belong to the counter value read at the start.
        if let Some(stamp) = stamp
            && !missing.is_empty()
            && self.read_stamp() == Some(stamp)
        {
            let known = missing
                .iter()
                .zip(&read)
                .filter_map(|(&i, listed)| Some((page.blobs[i].key.clone(), listed.clone()?)));
            self.list_cache.remember(stamp, known);
        }
        let mut read = read.into_iter();
        let mut listed: Vec<Option<Listed>> = keys.into_iter().map(|k| k.listed).collect();
        for &i in &missing {
            listed[i] = read.next().flatten();
        }
        // A key deleted since the directory was read has no header and is left out.
        page.blobs = page
            .blobs
            .into_iter()
            .zip(listed)
            .filter_map(|(mut entry, listed)| {
                let listed = listed?;
                entry.etag = listed.etag;
                entry.size = listed.size;
                entry.last_modified = listed.last_modified;
                Some(entry)
            })
            .collect();
        Ok(page)
    }

    /// Deletes every key under the lock; returns how many it deleted.
    fn delete_all(&self) -> Result<u64> {
        if !self.dir.is_dir() {
            return Ok(0);
        }
        self.sweep();
        let lock = self.lock()?;
        let change = lock.begin_change()?;
        let mut found = Vec::new();
        walk_keys(&self.dir, &mut Vec::new(), "", &mut found, None)?;
        let mut count = 0;
        let mut dirs = Vec::new();
        for (_, path) in &found {
            match fs::remove_file(path) {
                Ok(()) => count += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error("cannot remove", path, e)),
            }
            if let Some(parent) = path.parent()
                && parent != self.dir
            {
                dirs.push(parent.to_path_buf());
            }
        }
        // Deepest first, so that parents are empty by the time they are tried.
        dirs.sort_unstable_by_key(|d| std::cmp::Reverse(d.components().count()));
        dirs.dedup();
        for dir in &dirs {
            self.remove_empty_chunks(dir);
        }
        self.list_cache
            .follow(&lock, &change, |cached| cached.entries.clear());
        lock.end_change(change);
        drop(lock);
        self.sync_dir(&self.dir)?;
        Ok(count)
    }
}

/// Atomically swaps the files at `from` and `to` (`renameat2` with `RENAME_EXCHANGE`, or
/// `renamex_np` with `RENAME_SWAP`). Returns `false`, having changed nothing, when it could not:
/// `to` does not exist, the platform or file system cannot swap, or any other error. A failed
/// swap changes nothing, so the caller then renames, which reports a real failure.
fn exchange(from: &Path, to: &Path) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
    {
        use rustix::fs::{CWD, RenameFlags, renameat_with};
        renameat_with(CWD, from, CWD, to, RenameFlags::EXCHANGE).is_ok()
    }
    #[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
    {
        let _ = (from, to);
        false
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    match File::open(dir) {
        Ok(d) => d.sync_all().map_err(|e| io_error("cannot sync", dir, e)),
        // Removed meanwhile by a delete, which is the later state anyway.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("cannot open directory", dir, e)),
    }
}

/// Collects `(key, path)` for the blob files under `dir` whose encoded key starts with
/// `prefix` (encoded). `pieces` are the chunk directory names on the way down. Files that
/// this backend could not have written (temporary files, foreign names) are skipped. Stops
/// once `limit` keys are found.
fn walk_keys(
    dir: &Path,
    pieces: &mut Vec<String>,
    prefix: &str,
    out: &mut Vec<(String, PathBuf)>,
    limit: Option<usize>,
) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_error("cannot read directory", dir, e)),
    };
    let so_far: String = pieces.concat();
    for entry in entries {
        if limit.is_some_and(|n| out.len() >= n) {
            return Ok(());
        }
        let entry = entry.map_err(|e| io_error("cannot read directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let file_type = entry
            .file_type()
            .map_err(|e| io_error("cannot stat", &entry.path(), e))?;
        if let Some(stem) = name.strip_suffix(BLOB_SUFFIX) {
            if !file_type.is_file() {
                continue;
            }
            let encoded = format!("{so_far}{stem}");
            if !encoded.starts_with(prefix) {
                continue;
            }
            let Some(key) = decode(&encoded) else {
                continue;
            };
            let canonical = split_pieces(&encoded);
            let on_disk = pieces.iter().map(String::as_str).chain([stem]);
            if validate_key(&key).is_err() || !canonical.into_iter().eq(on_disk) {
                continue;
            }
            out.push((key, entry.path()));
        } else if file_type.is_dir() && !name.contains('.') && name.len() <= PIECE_CHARS {
            let encoded = format!("{so_far}{name}");
            if encoded.starts_with(prefix) || prefix.starts_with(&encoded) {
                pieces.push(name.to_owned());
                let walked = walk_keys(&entry.path(), pieces, prefix, out, limit);
                pieces.pop();
                walked?;
            }
        }
    }
    Ok(())
}

/// Removes the temporary files in `dir` and its chunk directories that were last modified at
/// least [`STALE_TEMP`] before `now`; returns how many it removed.
fn sweep_stale_temps(dir: &Path, now: SystemTime) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() && !name.starts_with('.') {
            removed += sweep_stale_temps(&entry.path(), now);
        } else if file_type.is_file() && name.starts_with(TEMP_PREFIX) {
            let modified = entry.metadata().and_then(|m| m.modified());
            let stale =
                modified.is_ok_and(|t| now.duration_since(t).is_ok_and(|age| age >= STALE_TEMP));
            if stale && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

fn list_stores_blocking(root: &Path, prefix: &str) -> Result<Vec<String>> {
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_error("cannot read directory", root, e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot read directory", root, e))?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let name = if let Some(stem) = file_name.strip_suffix(STORE_SUFFIX) {
            match decode(stem) {
                Some(name) if !name.is_empty() && encode(&name) == stem => name,
                _ => continue,
            }
        } else if let Some(stem) = file_name.strip_suffix(HASHED_STORE_SUFFIX) {
            let name_path = entry.path().join(NAME_FILE);
            let name = match fs::read(&name_path) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("cannot read", &name_path, e)),
            };
            match String::from_utf8(name) {
                Ok(name) if sha256_hex(&name) == stem => name,
                _ => continue,
            }
        } else {
            continue;
        };
        if !name.starts_with(prefix) || check_store_name(&name).is_err() {
            continue;
        }
        let mut found = Vec::new();
        walk_keys(&entry.path(), &mut Vec::new(), "", &mut found, Some(1))?;
        if !found.is_empty() {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}

// ---------------------------------------------------------------------------------------------
// BlobStore

/// Reads a value chunk by chunk from a file positioned at its start.
fn value_stream(file: tokio::fs::File, size: u64, path: PathBuf) -> ByteStream {
    let stream = futures_util::stream::try_unfold(
        (file, size, path),
        |(mut file, remaining, path)| async move {
            if remaining == 0 {
                return Ok(None);
            }
            let want = usize::try_from(remaining)
                .unwrap_or(STREAM_CHUNK)
                .min(STREAM_CHUNK);
            let mut buf = vec![0u8; want];
            file.read_exact(&mut buf).await.map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    corrupt(&path, "file is shorter than its header says")
                } else {
                    io_error("cannot read", &path, e)
                }
            })?;
            Ok(Some((
                Bytes::from(buf),
                (file, remaining - want as u64, path),
            )))
        },
    );
    Box::pin(stream)
}

/// The next chunk of a body.
async fn next_chunk(body: &mut ByteStream) -> Option<Result<Bytes>> {
    std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await
}

/// Fails with [`ErrorKind::TooLarge`] once `size` bytes are more than `max_size`.
fn check_max_size(size: u64, max_size: Option<u64>) -> Result<()> {
    match max_size {
        Some(max) if size > max => Err(Error::new(
            ErrorKind::TooLarge,
            format!("value is larger than the maximum of {max} bytes"),
        )),
        _ => Ok(()),
    }
}

/// The chunks of a body as one value, copied only if there is more than one.
fn concat(mut chunks: Vec<Bytes>) -> Bytes {
    if chunks.len() <= 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut value = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
    for chunk in &chunks {
        value.extend_from_slice(chunk);
    }
    Bytes::from(value)
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
        mut body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        validate_key(key)?;
        validate_metadata(&options.metadata)?;
        // Most bodies are small: collect the start of the body, and if it ends there, write it
        // as `set` does, in one blocking call.
        let mut head = Vec::new();
        let mut size: u64 = 0;
        while size <= SMALL_BODY as u64 {
            let Some(chunk) = next_chunk(&mut body).await else {
                let value = concat(head);
                let inner = self.inner.clone();
                let key = key.to_owned();
                return blocking(move || inner.set(&key, &value, &options)).await;
            };
            let chunk = chunk?;
            size += chunk.len() as u64;
            check_max_size(size, max_size)?;
            head.push(chunk);
        }
        let inner = self.inner.clone();
        let target = inner.key_path(key);
        let key = key.to_owned();
        let etag = Etag::random()?;
        // The size and time are known only at the end, so the header is written with the
        // widest values first and overwritten in place, padded to the same length.
        let mut header = Header {
            etag: etag.clone(),
            size: u64::MAX,
            last_modified: u64::MAX,
            metadata: options.metadata,
        };
        let reserved = blob_prefix(&header, None)?;
        let json_len = reserved.len() - PREFIX_LEN;
        let (file, temp) = {
            let inner = inner.clone();
            let dir = target.dir.clone();
            blocking(move || {
                let (mut file, temp) = inner.create_temp(&dir)?;
                let written = file
                    .write_all(&reserved)
                    .and_then(|()| head.iter().try_for_each(|chunk| file.write_all(chunk)));
                written.map_err(|e| io_error("cannot write", &temp.path, e))?;
                Ok((file, temp))
            })
            .await?
        };
        let mut file = tokio::fs::File::from_std(file);
        while let Some(chunk) = next_chunk(&mut body).await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if let Err(e) = check_max_size(size, max_size) {
                drop(file);
                blocking(move || {
                    drop(temp);
                    Ok(())
                })
                .await?;
                return Err(e);
            }
            file.write_all(&chunk)
                .await
                .map_err(|e| io_error("cannot write", &temp.path, e))?;
        }
        file.flush()
            .await
            .map_err(|e| io_error("cannot write", &temp.path, e))?;
        let file = file.into_std().await;
        header.size = size;
        header.last_modified = Timestamp::now().as_millis();
        blocking(move || {
            let prefix = blob_prefix(&header, Some(json_len))?;
            let mut file = file;
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(&prefix))
                .map_err(|e| io_error("cannot write", &temp.path, e))?;
            if inner.options.fsync {
                file.sync_data()
                    .map_err(|e| io_error("cannot sync", &temp.path, e))?;
            }
            drop(file);
            let written = Listed {
                etag,
                size: header.size,
                last_modified: Timestamp::from_millis(header.last_modified),
            };
            inner.commit(&key, temp, &target, &options.condition, written)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_and_keeps_only_safe_bytes() {
        for text in ["a", "a/b", "..", ".", "A", "%2F", "ü/ß ?#", "-_09az"] {
            let encoded = encode(text);
            assert!(
                encoded
                    .bytes()
                    .all(|b| is_kept(b) || b == b'%' || b.is_ascii_hexdigit())
            );
            assert!(!encoded.contains('.') && !encoded.contains('/'));
            assert_eq!(decode(&encoded).as_deref(), Some(text));
        }
        assert_eq!(encode("A"), "%41");
        // Non-canonical encodings are refused, so one key has exactly one file name.
        assert_eq!(decode("%61"), None);
        assert_eq!(decode("%2f"), None);
        assert_eq!(decode("A"), None);
        assert_eq!(decode("%2"), None);
    }

    #[test]
    fn pieces_never_cut_an_escape() {
        for lead in 0..4 {
            let text = format!("{}{}", "a".repeat(lead), "/".repeat(300));
            let encoded = encode(&text);
            let pieces = split_pieces(&encoded);
            assert_eq!(pieces.concat(), encoded);
            for piece in &pieces {
                assert!(piece.len() <= PIECE_CHARS);
                assert!(decode(piece).is_some(), "{piece}");
            }
        }
        assert_eq!(split_pieces(&"a".repeat(200)).len(), 1);
        assert_eq!(split_pieces(&"a".repeat(201)).len(), 2);
    }

    #[test]
    fn gray_code_round_trips_and_steps_by_one_bit() {
        for n in [
            0u64,
            1,
            2,
            3,
            255,
            256,
            1 << 40,
            (1 << 61) + 12_345,
            u64::MAX - 1,
        ] {
            assert_eq!(from_gray(to_gray(n)), n);
            assert_eq!((to_gray(n) ^ to_gray(n.wrapping_add(1))).count_ones(), 1);
        }
    }

    fn counter(store: &FileStore) -> Option<u64> {
        let file = File::open(store.dir().join(LOCK_FILE)).ok()?;
        read_counter(&file).unwrap()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn keys(rt: &tokio::runtime::Runtime, store: &FileStore) -> Vec<String> {
        let page = rt.block_on(store.list(ListOptions::new())).unwrap();
        page.blobs.into_iter().map(|e| e.key).collect()
    }

    /// Writes the file of `key` behind the store's back, as a writer that renamed it into
    /// place and died before it could say so would have left it.
    fn sneak_in(store: &FileStore, key: &str) {
        let from = store.key_path("a").unwrap();
        fs::copy(from, store.key_path(key).unwrap()).unwrap();
    }

    #[test]
    fn every_change_moves_the_counter_through_odd_to_even() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), "c", FileOptions { fsync: false }).unwrap();
        assert_eq!(counter(&store), None);
        rt.block_on(store.set("a", Bytes::from_static(b"1"), SetOptions::new()))
            .unwrap();
        let start = counter(&store).unwrap();
        assert!(start >= 1 << 40 && start.is_multiple_of(2), "{start}");
        rt.block_on(store.set("a", Bytes::from_static(b"2"), SetOptions::new()))
            .unwrap();
        assert_eq!(counter(&store), Some(start + 2));
        rt.block_on(store.delete("a")).unwrap();
        assert_eq!(counter(&store), Some(start + 4));
        // Nothing to delete and a refused condition are no changes.
        rt.block_on(store.delete("a")).unwrap();
        let refused = SetOptions::new().if_match(Etag::new("\"nope\""));
        rt.block_on(store.set("a", Bytes::new(), refused)).unwrap();
        assert_eq!(counter(&store), Some(start + 4));
        rt.block_on(store.set("a", Bytes::new(), SetOptions::new()))
            .unwrap();
        rt.block_on(FileStore::delete_store(dir.path(), "c"))
            .unwrap();
        assert_eq!(counter(&store), Some(start + 8));
    }

    #[test]
    fn a_writer_that_died_mid_change_turns_caching_off_until_the_next_change() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), "c", FileOptions { fsync: false }).unwrap();
        rt.block_on(store.set("a", Bytes::from_static(b"1"), SetOptions::new()))
            .unwrap();
        assert_eq!(keys(&rt, &store), ["a"]);
        let even = counter(&store).unwrap();

        // A writer announces a change, renames its file into place and dies: the lock goes
        // with the process, the counter stays odd.
        let lock = store.inner.lock().unwrap();
        let odd = lock.begin_change().unwrap().odd;
        sneak_in(&store, "b");
        drop(lock);
        assert_eq!(odd, even + 1);
        assert_eq!(counter(&store), Some(odd));
        assert_eq!(keys(&rt, &store), ["a", "b"], "the cache is not used");
        // While the counter is odd nothing is cached: every listing walks the directory.
        sneak_in(&store, "c");
        assert_eq!(keys(&rt, &store), ["a", "b", "c"]);

        // The next change moves the counter on one step at a time: to even (no change is in
        // progress while it holds the lock), to odd, and to even once done.
        rt.block_on(store.set("d", Bytes::from_static(b"4"), SetOptions::new()))
            .unwrap();
        assert_eq!(counter(&store), Some(odd + 3));
        assert_eq!(keys(&rt, &store), ["a", "b", "c", "d"]);
        // Caching is back on: an unannounced file stays unseen until the next change (made
        // through another handle, as this handle's own changes keep its cache up to date).
        sneak_in(&store, "e");
        assert_eq!(keys(&rt, &store), ["a", "b", "c", "d"]);
        rt.block_on(store.delete("d")).unwrap();
        assert_eq!(keys(&rt, &store), ["a", "b", "c"]);
        let other = FileStore::open(dir.path(), "c", FileOptions { fsync: false }).unwrap();
        rt.block_on(other.delete("c")).unwrap();
        assert_eq!(keys(&rt, &store), ["a", "b", "e"]);
    }

    #[test]
    fn a_lock_file_made_anew_does_not_revive_a_cached_listing() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), "c", FileOptions { fsync: false }).unwrap();
        rt.block_on(store.set("a", Bytes::from_static(b"1"), SetOptions::new()))
            .unwrap();
        assert_eq!(keys(&rt, &store), ["a"]);
        let lock_path = store.dir().join(LOCK_FILE);
        let old = fs::read(&lock_path).unwrap();
        // The lock file is replaced by one with the same counter value (a restored copy):
        // another file, so the cached walk no longer counts. The old file is moved aside, not
        // removed, so that the new one cannot get its inode number: a file system may give a new
        // file the number of one just removed (ext4 did, now and then, under this test), and a
        // file with the old device, inode and counter is the old lock file to a stamp.
        fs::rename(&lock_path, dir.path().join("old-lock")).unwrap();
        sneak_in(&store, "b");
        fs::write(&lock_path, &old).unwrap();
        assert_eq!(keys(&rt, &store), ["a", "b"]);
    }

    #[test]
    fn reads_from_the_page_cache_agree_with_blocking_reads() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::open(dir.path(), "c", FileOptions { fsync: false }).unwrap();
        let rt = runtime();
        let metadata = Metadata::from_pairs([("n", 1)]);
        let sizes = [0, 1, 1024, WHOLE_READ - 200, WHOLE_READ, 2 * WHOLE_READ];
        for size in sizes {
            let key = format!("k{size}");
            let options = SetOptions {
                metadata: metadata.clone(),
                ..SetOptions::default()
            };
            let value = Bytes::from(vec![7u8; size]);
            rt.block_on(store.set(&key, value, options)).unwrap();
        }
        fs::write(store.key_path("bad").unwrap(), b"nblob01\n\xff\xff").unwrap();
        let keys = sizes.iter().map(|s| format!("k{s}"));
        for key in keys.chain(["absent".to_owned(), "bad".to_owned()]) {
            let path = store.key_path(&key).unwrap();
            let blocking = read_blob(&path).map_err(|e| e.kind());
            match read_blob_cached(&path) {
                Some(cached) => assert_eq!(cached.map_err(|e| e.kind()), blocking, "{key}"),
                // Only a value too large to read whole goes to the blocking path (the files
                // were just written, so they are in the page cache).
                None => assert!(fs::metadata(&path).unwrap().len() > WHOLE_READ as u64),
            }
            let blocking = read_blob_info(&path).map_err(|e| e.kind());
            let cached = read_blob_info_cached(&path).expect("a header in the page cache");
            assert_eq!(cached.map_err(|e| e.kind()), blocking, "{key}");
        }
    }

    #[test]
    fn exchange_swaps_two_files_or_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "one").unwrap();
        fs::write(&b, "two").unwrap();
        let swapped = exchange(&a, &b);
        // Every Linux file system a temporary directory lives on (ext4, xfs, btrfs, tmpfs)
        // can swap.
        #[cfg(target_os = "linux")]
        assert!(swapped);
        if swapped {
            assert_eq!(fs::read_to_string(&a).unwrap(), "two");
            assert_eq!(fs::read_to_string(&b).unwrap(), "one");
        } else {
            // A platform or file system that cannot swap leaves both files as they were.
            assert_eq!(fs::read_to_string(&a).unwrap(), "one");
            assert_eq!(fs::read_to_string(&b).unwrap(), "two");
        }
        let missing = dir.path().join("missing");
        assert!(!exchange(&a, &missing));
        assert!(!missing.exists());
        assert!(a.exists());
    }

    #[test]
    fn long_store_names_are_hashed() {
        let (dir, hashed) = store_dir(Path::new("r"), "site-1/deploy:abc:x");
        assert!(!hashed);
        assert_eq!(dir, Path::new("r/site-1%2Fdeploy%3Aabc%3Ax.s"));
        let (dir, hashed) = store_dir(Path::new("r"), &"ü".repeat(512));
        assert!(hashed);
        assert!(dir.to_string_lossy().ends_with(".h"));
    }
}
