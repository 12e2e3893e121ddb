//! The listing cache: the keys of the last walk, kept while the change counter says they are
//! still the store's keys.
//!
//! [`ListCache::page`] serves a page from the cached walk if the stamp matches, [`ListCache::put`]
//! caches a walk that no change overlapped, [`ListCache::remember`] adds headers read while the
//! stamp held, and [`ListCache::follow`] applies a change made through this handle, under the
//! lock. Why this is sound is argued in the module documentation of [`super`] ("Listing and the
//! listing cache").

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Mutex;

use blobjobs_store_api::list::{Flow, Paginator};
use blobjobs_store_api::{
    Error, ErrorKind, Etag, ListEntry, ListOptions, ListPage, Result, Timestamp,
};

use super::counter::{Change, Stamp, StoreLock};

/// The keys of the last listing walk of a store and the headers read for them, kept while the
/// store's change counter shows that nothing changed, or that only this handle changed it.
#[derive(Debug, Default)]
pub(super) struct ListCache {
    cached: Mutex<Option<Cached>>,
}

/// One cached walk.
#[derive(Debug)]
pub(super) struct Cached {
    /// The counter value the keys belong to.
    stamp: Stamp,
    /// The prefix walked: `entries` holds exactly the keys that start with it.
    pub(super) prefix: String,
    /// The keys, in order.
    pub(super) entries: BTreeMap<String, CachedKey>,
}

/// One key of a cached walk.
#[derive(Debug, Clone)]
pub(super) struct CachedKey {
    pub(super) path: PathBuf,
    /// What a listing shows of its header, once read.
    pub(super) listed: Option<Listed>,
}

/// What a listing shows of a blob's header.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub(super) etag: Etag,
    pub(super) size: u64,
    pub(super) last_modified: Timestamp,
}

/// One page of a listing, with the file and the known header of each blob on it.
type PageParts = (ListPage, Vec<CachedKey>);

impl ListCache {
    /// The page `options` asks for, if the cache holds the keys of the store at `stamp`.
    pub(super) fn page(
        &self,
        stamp: Option<Stamp>,
        options: &ListOptions,
    ) -> Result<Option<PageParts>> {
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
    pub(super) fn put(&self, stamp: Stamp, prefix: &str, entries: BTreeMap<String, CachedKey>) {
        if let Ok(mut cached) = self.cached.lock() {
            *cached = Some(Cached {
                stamp,
                prefix: prefix.to_owned(),
                entries,
            });
        }
    }

    /// Adds headers read while the counter still had the value `stamp`.
    pub(super) fn remember(&self, stamp: Stamp, read: impl Iterator<Item = (String, Listed)>) {
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
    pub(super) fn follow(
        &self,
        lock: &StoreLock,
        change: &Change,
        update: impl FnOnce(&mut Cached),
    ) {
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
pub(super) fn fill_page(
    entries: &BTreeMap<String, CachedKey>,
    options: &ListOptions,
) -> Result<PageParts> {
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

#[cfg(test)]
mod tests {
    use std::fs;

    use blobjobs_store_api::{BlobStore, SetOptions};
    use bytes::Bytes;

    use crate::file::names::LOCK_FILE;
    use crate::file::testing::{counter, keys, runtime, sneak_in};
    use crate::file::{FileOptions, FileStore};

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
}
