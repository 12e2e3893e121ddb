//! The platform calls: opening blob files without blocking on a FIFO, reads that never wait for
//! the disk (`openat2`, `preadv2`), the atomic swap of two files (`renameat2`), and fsync.
//!
//! Each call that a platform or file system may lack has a fallback that changes nothing but
//! speed: [`read_cached`] returns `None` (and turns itself off for good when the kernel or file
//! system cannot do it), and [`exchange`] returns `false` so that the caller renames. Every
//! fsync goes through [`sync_data`], [`sync_all`] or [`sync_dir`], which in test builds record
//! the path synced, so that tests can check that [`FileOptions::fsync`](super::FileOptions::fsync)
//! is honoured.

use std::fs::File;
use std::io;
use std::path::Path;

use blobjobs_store_api::Result;

use super::io_error;

/// Opens a file for reading, or `None` if it does not exist. `O_NONBLOCK` changes nothing for
/// a regular file, but keeps a FIFO someone put at a key's path from blocking the open forever
/// (reading it then finds a damaged blob).
pub(super) fn open_existing(path: &Path) -> Result<Option<File>> {
    use rustix::fs::{Mode, OFlags, open};
    use rustix::io::Errno;

    // What `std::fs::OpenOptions` would do for a read, plus `O_NONBLOCK`.
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    loop {
        match open(path, flags, Mode::empty()) {
            Ok(fd) => return Ok(Some(File::from(fd))),
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::INTR) => {}
            Err(e) => return Err(io_error("cannot open", path, e.into())),
        }
    }
}

/// Reads from the page cache alone, without ever waiting for the disk, so that the async
/// caller can do it in place rather than on the blocking pool: the path is resolved only from
/// cached directory entries (`openat2` with `RESOLVE_CACHED`) and the bytes are read only if
/// cached (`preadv2` with `RWF_NOWAIT`). Returns the file's first `max` bytes (the whole file
/// if `whole`), or `None` when that cannot be done without waiting, or on any error: the
/// blocking path then does the read and reports what went wrong.
#[cfg(target_os = "linux")]
pub(super) fn read_cached(path: &Path, max: usize, whole: bool) -> Option<CachedRead> {
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
pub(super) enum CachedRead {
    /// No file at the path.
    Absent,
    /// The file's first bytes, and its length.
    Found { data: Vec<u8>, file_len: u64 },
}

/// Atomically swaps the files at `from` and `to` (`renameat2` with `RENAME_EXCHANGE`, or
/// `renameatx_np` with `RENAME_SWAP`). Returns `false`, having changed nothing, when it could not:
/// `to` does not exist, the platform or file system cannot swap, or any other error. A failed
/// swap changes nothing, so the caller then renames, which reports a real failure.
pub(super) fn exchange(from: &Path, to: &Path) -> bool {
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

/// Flushes a file's data, and the metadata needed to read it back, to the disk
/// (`fdatasync`); `path` names it in errors.
pub(super) fn sync_data(file: &File, path: &Path) -> Result<()> {
    fsyncs::record(path);
    file.sync_data()
        .map_err(|e| io_error("cannot sync", path, e))
}

/// Flushes a file's data and all its metadata to the disk (`fsync`); `path` names it in
/// errors.
pub(super) fn sync_all(file: &File, path: &Path) -> Result<()> {
    fsyncs::record(path);
    file.sync_all()
        .map_err(|e| io_error("cannot sync", path, e))
}

/// Flushes a directory's entries to the disk, so that the files created, renamed or removed
/// in it stay so after a crash.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    match File::open(dir) {
        Ok(d) => sync_all(&d, dir),
        // Removed meanwhile by a delete, which is the later state anyway.
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error("cannot open directory", dir, e)),
    }
}

/// The fsyncs made, by path, kept in test builds only: skipping them is all that
/// [`FileOptions::fsync`](super::FileOptions::fsync) `false` changes that a test could see
/// (short of a power cut), so this is how a test tells whether an operation honoured it.
#[cfg(test)]
mod fsyncs {
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static SYNCED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub(super) fn record(path: &Path) {
        SYNCED.lock().unwrap().push(path.to_owned());
    }

    /// How many fsyncs were made of `root` and the files and directories under it. Tests run
    /// in parallel, so each counts under a root of its own.
    pub(crate) fn under(root: &Path) -> usize {
        let synced = SYNCED.lock().unwrap();
        synced.iter().filter(|p| p.starts_with(root)).count()
    }
}

#[cfg(not(test))]
mod fsyncs {
    pub(super) fn record(_: &std::path::Path) {}
}

#[cfg(test)]
pub(crate) use fsyncs::under as fsyncs_under;

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

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
}
