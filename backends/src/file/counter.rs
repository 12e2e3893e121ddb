//! The store lock and the change counter in the lock file.
//!
//! [`Inner::lock`] opens `.lock` anew and takes an exclusive `flock` on it. Under the lock,
//! [`StoreLock::begin_change`] steps the counter to odd (first to even if a dead writer left it
//! odd) and [`StoreLock::end_change`] steps it to even. Listers read it without the lock through
//! [`Inner::read_stamp`], which gives a [`Stamp`] only for an even, non-zero value. The counter
//! is Gray-coded so that a read racing a write sees one of the two values; see the module
//! documentation of [`super`] ("The change counter").

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt as _};
use std::path::PathBuf;

use blobjobs_store_api::{Error, ErrorKind, Result};

use super::names::LOCK_FILE;
use super::write::FILE_MODE;
use super::{Inner, io_error};

/// The store's exclusive lock, held while the value lives.
pub(super) struct StoreLock {
    file: File,
    path: PathBuf,
}

/// A change announced on the change counter by [`StoreLock::begin_change`].
pub(super) struct Change {
    /// The even value the counter had before, which stands for the store as it is now, when
    /// there was one.
    pub(super) before: Option<u64>,
    /// The odd value the counter holds during the change.
    pub(super) odd: u64,
}

impl StoreLock {
    /// Announces a change: makes the change counter odd, where it stays until
    /// [`StoreLock::end_change`]. A counter left odd by a writer that died mid-change is first
    /// moved to the next even value, which is safe because holding the lock means no change is
    /// in progress; every step is thus to the next value.
    pub(super) fn begin_change(&self) -> Result<Change> {
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
    pub(super) fn end_change(&self, change: Change) {
        // If this fails the counter stays odd, which only turns listing caches off until the
        // next change; the change itself is done, so it is not reported as failed.
        let _ = write_counter(&self.file, change.odd + 1);
    }

    /// The stamp a listing would read with the counter at `generation`.
    pub(super) fn stamp(&self, generation: u64) -> Option<Stamp> {
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
pub(super) fn read_counter(file: &File) -> io::Result<Option<u64>> {
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
pub(super) struct Stamp {
    dev: u64,
    ino: u64,
    /// An even counter value: no change was in progress.
    pub(super) generation: u64,
}

impl Inner {
    /// Takes the store's exclusive lock; it is held until the returned value is dropped.
    pub(super) fn lock(&self) -> Result<StoreLock> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(|e| io_error("cannot open lock file", &path, e))?;
        file.lock().map_err(|e| io_error("cannot lock", &path, e))?;
        Ok(StoreLock { file, path })
    }

    /// The store's change counter as a lister sees it, without the lock; `None` when the
    /// store cannot be cached now (no counter yet, or a change in progress or cut short).
    pub(super) fn read_stamp(&self) -> Option<Stamp> {
        let file = File::open(self.dir.join(LOCK_FILE)).ok()?;
        let meta = file.metadata().ok()?;
        let generation = read_counter(&file).ok()??;
        (generation != 0 && generation.is_multiple_of(2)).then(|| Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            generation,
        })
    }
}

#[cfg(test)]
mod tests {
    use blobjobs_store_api::{BlobStore, Etag, SetOptions};
    use bytes::Bytes;

    use super::*;
    use crate::file::testing::{counter, runtime};
    use crate::file::{FileOptions, FileStore};

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
        rt.block_on(store.delete_all()).unwrap();
        assert_eq!(counter(&store), Some(start + 8));
    }
}
