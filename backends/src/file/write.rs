//! Writing: temporary files, the commit under the store lock, deletes.
//!
//! [`Inner::set`] and [`Inner::set_stream`] write a temporary file ([`Inner::create_temp`]),
//! fsync it if the options say so, and hand it to [`Inner::commit`], which checks the condition
//! and renames (or swaps) under the lock, keeps the listing cache, and fsyncs the directory once
//! the lock is released. A [`TempFile`] removes its file when dropped, unless it was renamed into
//! place, so every early return cleans up. [`Inner::delete`] and [`Inner::delete_all`] unlink
//! under the lock and remove the chunk directories they leave empty.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use blobjobs_store_api::stream::{Head, check_size, read_head};
use blobjobs_store_api::{ByteStream, Condition, Etag, Result, SetOptions, SetOutcome, Timestamp};
use bytes::Bytes;
use futures_util::StreamExt as _;
use tokio::io::AsyncWriteExt;

use super::format::{Header, PREFIX_LEN, blob_prefix};
use super::list_cache::Listed;
use super::names::{KeyPath, LOCKED_TEMP_PREFIX, NAME_FILE, TEMP_PREFIX, random_hex};
use super::read::{exists, read_blob_info};
use super::sys::{exchange, sync_all, sync_data, sync_dir};
use super::walk::walk_keys;
use super::{Inner, blocking, io_error};

/// Values up to this size are written together with their header in one system call.
const SMALL_VALUE: usize = 256 * 1024;

/// `BlobStore::set_stream` collects up to this much of a body in memory; a body that ends
/// within it is written like `BlobStore::set`, in one blocking call.
const SMALL_BODY: usize = 64 * 1024;

/// How often a write retries creating its temporary file when a concurrent delete removed
/// the empty directory it had just created.
const CREATE_ATTEMPTS: usize = 16;

/// The permissions of every file the backend creates: the owner's only, as blobs may hold
/// anything (the process's umask may narrow them further).
pub(super) const FILE_MODE: u32 = 0o600;
/// The permissions of every directory the backend creates.
pub(super) const DIR_MODE: u32 = 0o700;

/// Creates the directory `path` with [`DIR_MODE`]; its parent must exist.
pub(super) fn make_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new().mode(DIR_MODE).create(path)
}

/// Creates the directory `path` and its missing parents, each with [`DIR_MODE`].
pub(crate) fn make_dir_all(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
}

/// Options that create a new file with [`FILE_MODE`], failing if it exists.
fn new_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(FILE_MODE);
    options
}

/// A temporary file that is removed unless it was renamed into place. It holds the file's
/// `flock` until dropped, which tells a sweep that its writer is alive.
pub(super) struct TempFile {
    pub(super) path: PathBuf,
    armed: bool,
    /// A descriptor of the file, kept open (and so locked) until the write is over.
    _lock: File,
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

impl Inner {
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
            make_dir_all(&self.root)
                .map_err(|e| io_error("cannot create directory", &self.root, e))?;
            if let Some(parent) = self.root.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.sync_dir(parent)?;
            }
        }
        if !self.hashed {
            match make_dir(&self.dir) {
                Ok(()) => return self.sync_dir(&self.root),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
                Err(e) => return Err(io_error("cannot create directory", &self.dir, e)),
            }
        }
        let temp = self.root.join(format!("{TEMP_PREFIX}{}", random_hex()?));
        let built = (|| {
            make_dir(&temp).map_err(|e| io_error("cannot create directory", &temp, e))?;
            let name_path = temp.join(NAME_FILE);
            let mut file = new_file()
                .open(&name_path)
                .map_err(|e| io_error("cannot create", &name_path, e))?;
            file.write_all(self.name.as_bytes())
                .map_err(|e| io_error("cannot write", &name_path, e))?;
            if self.options.fsync {
                sync_all(&file, &name_path)?;
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
            match make_dir(&current) {
                Ok(()) => self.sync_dir(&parent)?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_error("cannot create directory", &current, e)),
            }
        }
        Ok(())
    }

    /// Creates a new temporary file in `dir`, creating the directory if needed, and locks it
    /// for as long as the returned [`TempFile`] lives.
    pub(super) fn create_temp(&self, dir: &Path) -> Result<(File, TempFile)> {
        self.sweep();
        let mut last_error = None;
        for _ in 0..CREATE_ATTEMPTS {
            let path = dir.join(format!("{LOCKED_TEMP_PREFIX}{}", random_hex()?));
            match new_file().open(&path) {
                Ok(file) => {
                    // A sweep that found the file before the lock was taken removed it: then
                    // it has no name any more, and the write starts over with another.
                    let lock = file
                        .try_clone()
                        .and_then(|lock| lock.lock().map(|()| lock))
                        .map_err(|e| io_error("cannot lock", &path, e))?;
                    let meta = lock
                        .metadata()
                        .map_err(|e| io_error("cannot stat", &path, e))?;
                    if meta.nlink() == 0 {
                        continue;
                    }
                    let temp = TempFile {
                        path,
                        armed: true,
                        _lock: lock,
                    };
                    return Ok((file, temp));
                }
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
    pub(super) fn commit(
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
                cached.insert(key, written);
            }
        });
        lock.end_change(change);
        drop(lock);
        drop(swapped_out);
        self.sync_dir(&target.dir)?;
        Ok(SetOutcome::Written { etag })
    }

    pub(super) fn set(&self, key: &str, value: &Bytes, options: &SetOptions) -> Result<SetOutcome> {
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
            sync_data(&file, &temp.path)?;
        }
        drop(file);
        let written = Listed {
            etag,
            size: header.size,
            last_modified: Timestamp::from_millis(header.last_modified),
        };
        self.commit(key, temp, &target, &options.condition, written)
    }

    pub(super) fn delete(&self, key: &str) -> Result<()> {
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
        self.list_cache
            .follow(&lock, &change, |cached| cached.remove(key));
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

    /// Deletes every key under the lock; returns how many it deleted.
    pub(super) fn delete_all(&self) -> Result<u64> {
        if !self.dir.is_dir() {
            return Ok(0);
        }
        self.sweep();
        let lock = self.lock()?;
        let change = lock.begin_change()?;
        let mut found = Vec::new();
        walk_keys(&self.dir, &mut Vec::new(), "", &mut |_, path| {
            found.push(path);
            true
        })?;
        let mut count = 0;
        let mut dirs = Vec::new();
        for path in &found {
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
            .follow(&lock, &change, |cached| cached.clear());
        lock.end_change(change);
        drop(lock);
        self.sync_dir(&self.dir)?;
        Ok(count)
    }
}

impl Inner {
    /// Writes the value streamed in `body` to `key`, once `BlobStore::set_stream` has checked
    /// the key and metadata; fails with [`ErrorKind::TooLarge`] as soon as the body is longer
    /// than `max_size`, having written nothing.
    pub(super) async fn set_stream(
        self: Arc<Self>,
        key: &str,
        body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        // Most bodies are small: collect the start of the body, and if it ends there, write it
        // as `set` does, in one blocking call.
        let (head, mut size, mut body) = match read_head(body, SMALL_BODY, max_size).await? {
            Head::Complete(value) => {
                let inner = self.clone();
                let key = key.to_owned();
                return blocking(move || inner.set(&key, &value, &options)).await;
            }
            Head::Partial { chunks, size, rest } => (chunks, size, rest),
        };
        let inner = self;
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
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            if let Err(e) = check_size(size, max_size) {
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
                sync_data(&file, &temp.path)?;
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
