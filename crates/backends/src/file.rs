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
//!     .tmp-<random>                  a write in progress (never listed)
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
//! fsyncs, for development speed.
//!
//! # Locking
//!
//! Every change (conditional or not, and deletes) holds an exclusive lock on `<store>/.lock`
//! (`flock` through [`File::lock`]) around "read the current ETag, check the condition,
//! rename". The lock file is opened anew by each operation, so threads of one process exclude
//! each other just like separate processes do. Reads take no lock.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store_api::list::{Flow, Paginator};
use store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, Condition, Error, ErrorKind, Etag, ListEntry,
    ListOptions, ListPage, Metadata, Result, SetOptions, SetOutcome, Timestamp, validate_key,
    validate_metadata,
};
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
/// How often a write retries creating its temporary file when a concurrent delete removed
/// the empty directory it had just created.
const CREATE_ATTEMPTS: usize = 16;

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
    /// Without it writes are still atomic, but a power loss may lose acknowledged writes; use
    /// `false` only for development speed.
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
/// it. Clones are cheap and share nothing but configuration.
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

/// Opens a file, or `None` if it does not exist.
fn open_existing(path: &Path) -> Result<Option<File>> {
    match File::open(path) {
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

fn read_blob(path: &Path) -> Result<Option<Blob>> {
    let data = match fs::read(path) {
        Ok(data) => data,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("cannot read", path, e)),
    };
    let file_len = data.len() as u64;
    let extent = header_extent(&data, file_len, path)?;
    let info = decode_header(&data[PREFIX_LEN..extent], file_len, extent, path)?;
    let value = Bytes::from(data).slice(extent..);
    Ok(Some(Blob { value, info }))
}

fn read_blob_info(path: &Path) -> Result<Option<BlobInfo>> {
    let Some(mut file) = open_existing(path)? else {
        return Ok(None);
    };
    Ok(Some(read_info(&mut file, path)?.0))
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

    /// Takes the store's exclusive lock; it is held until the returned file is dropped.
    fn lock(&self) -> Result<File> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error("cannot open lock file", &path, e))?;
        file.lock().map_err(|e| io_error("cannot lock", &path, e))?;
        Ok(file)
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

    /// Creates a new temporary file in `dir`, creating the directory if needed.
    fn create_temp(&self, dir: &Path) -> Result<(File, TempFile)> {
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

    /// Under the lock: checks `condition` against the current version and renames the
    /// finished temporary file over the target. Fsyncs the directory after releasing the lock
    /// but before returning.
    fn commit(
        &self,
        temp: TempFile,
        target: &KeyPath,
        condition: &Condition,
        etag: Etag,
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
        fs::rename(&temp.path, &target.file)
            .map_err(|e| io_error("cannot rename into", &target.file, e))?;
        temp.disarm();
        drop(lock);
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
        self.commit(temp, &target, &options.condition, etag)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let target = self.key_path(key);
        // A key that is not there now is deleted as of now; no lock is needed to say so.
        if !exists(&target.file)? {
            return Ok(());
        }
        let lock = self.lock()?;
        match fs::remove_file(&target.file) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("cannot remove", &target.file, e)),
        }
        let synced = self.remove_empty_chunks(&target.dir);
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

    fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let mut pager = Paginator::new(options)?;
        let mut found = Vec::new();
        walk_keys(
            &self.dir,
            &mut Vec::new(),
            &encode(&options.prefix),
            &mut found,
            None,
        )?;
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let first = found.partition_point(|(key, _)| key.as_str() < pager.start_key());
        // Page through the keys alone, then read headers only for the keys on the page.
        for (key, _) in &found[first..] {
            let entry = ListEntry {
                key: key.clone(),
                etag: Etag::new(""),
                size: 0,
                last_modified: Timestamp::from_millis(0),
            };
            if pager.push(entry) == Flow::Stop {
                break;
            }
        }
        let mut page = pager.finish();
        let mut blobs = Vec::with_capacity(page.blobs.len());
        for mut entry in page.blobs {
            let Ok(i) = found.binary_search_by(|(key, _)| key.as_str().cmp(&entry.key)) else {
                continue;
            };
            // A key deleted since the directory was read is left out.
            let Some(info) = read_blob_info(&found[i].1)? else {
                continue;
            };
            entry.etag = info.etag;
            entry.size = info.size;
            entry.last_modified = info.last_modified;
            blobs.push(entry);
        }
        page.blobs = blobs;
        Ok(page)
    }

    /// Deletes every key under the lock; returns how many it deleted.
    fn delete_all(&self) -> Result<u64> {
        if !self.dir.is_dir() {
            return Ok(0);
        }
        let lock = self.lock()?;
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
        drop(lock);
        self.sync_dir(&self.dir)?;
        Ok(count)
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

#[async_trait]
impl BlobStore for FileStore {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        validate_key(key)?;
        let path = self.inner.key_path(key).file;
        blocking(move || read_blob(&path)).await
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        validate_key(key)?;
        let path = self.inner.key_path(key).file;
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
        let opened = {
            let path = path.clone();
            blocking(move || {
                let Some(mut file) = open_existing(&path)? else {
                    return Ok(None);
                };
                let (info, offset) = read_info(&mut file, &path)?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| io_error("cannot seek", &path, e))?;
                Ok(Some((info, file)))
            })
            .await?
        };
        Ok(opened.map(|(info, file)| {
            let size = info.size;
            (
                info,
                value_stream(tokio::fs::File::from_std(file), size, path),
            )
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
        let inner = self.inner.clone();
        let target = inner.key_path(key);
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
                file.write_all(&reserved)
                    .map_err(|e| io_error("cannot write", &temp.path, e))?;
                Ok((file, temp))
            })
            .await?
        };
        let mut file = tokio::fs::File::from_std(file);
        let mut size: u64 = 0;
        while let Some(chunk) = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if let Some(max) = max_size
                && size > max
            {
                drop(file);
                blocking(move || {
                    drop(temp);
                    Ok(())
                })
                .await?;
                return Err(Error::new(
                    ErrorKind::TooLarge,
                    format!("value is larger than the maximum of {max} bytes"),
                ));
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
            inner.commit(temp, &target, &options.condition, etag)
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
    fn long_store_names_are_hashed() {
        let (dir, hashed) = store_dir(Path::new("r"), "site-1/deploy:abc:x");
        assert!(!hashed);
        assert_eq!(dir, Path::new("r/site-1%2Fdeploy%3Aabc%3Ax.s"));
        let (dir, hashed) = store_dir(Path::new("r"), &"ü".repeat(512));
        assert!(hashed);
        assert!(dir.to_string_lossy().ends_with(".h"));
    }
}
