//! The listing cache: the keys of the last walk, kept while the change counter says they are
//! still the store's keys, within a memory budget shared by every cache of a catalog.
//!
//! [`ListCache::page`] serves a page from the cached walk if the stamp matches, [`ListCache::put`]
//! caches a walk that no change overlapped, [`ListCache::remember`] adds headers read while the
//! stamp held, and [`ListCache::follow`] applies a change made through this handle, under the
//! lock. Why this is sound is argued in the module documentation of [`super`] ("Listing and the
//! listing cache").
//!
//! Every cache charges an estimate of its size to a [`ListCacheBudget`]. A walk larger than the
//! whole budget is not cached (the listing then walks with memory bounded by the page size, see
//! `walk`); a walk that fits empties the least recently used caches of other stores until the
//! budget holds it. Headers are cached only while they fit.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use blobjobs_store_api::list::{Flow, Paginator};
use blobjobs_store_api::{Etag, ListEntry, ListOptions, ListPage, Result, Timestamp};

use super::counter::{Change, Stamp, StoreLock};

/// How many bytes the listing caches of one catalog (or of one [`FileStore`](super::FileStore)
/// opened on its own) may hold together, unless told otherwise.
pub const DEFAULT_LIST_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// What one cached key costs besides the bytes of its name: its share of the map's nodes, the
/// entry, and the allocator's overhead for the name (measured with glibc on 64-bit Linux: 147
/// bytes for a 17-byte key in a map of 200,000, rounded up).
const ENTRY_BYTES: usize = 136;
/// What a cached header adds to its key: the ETag's text and its allocation (measured: 80).
const HEADER_BYTES: usize = 80;

/// The estimated memory of one cached key.
pub(super) fn entry_bytes(key: &str, listed: bool) -> usize {
    ENTRY_BYTES + key.len() + if listed { HEADER_BYTES } else { 0 }
}

/// The memory that a set of listing caches may hold together: every cache charges its
/// estimated size here before it keeps anything.
#[derive(Debug)]
pub struct ListCacheBudget {
    limit: AtomicUsize,
    state: Mutex<BudgetState>,
}

#[derive(Debug, Default)]
struct BudgetState {
    /// The bytes charged by the caches in `holders`.
    used: usize,
    /// Counts uses, to find the least recently used cache.
    tick: u64,
    /// Every cache that holds a walk now.
    holders: Vec<Holder>,
}

#[derive(Debug)]
struct Holder {
    id: usize,
    slot: Weak<Mutex<Option<Cached>>>,
    bytes: usize,
    used_at: u64,
}

impl ListCacheBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        ListCacheBudget {
            limit: AtomicUsize::new(limit),
            state: Mutex::new(BudgetState::default()),
        }
    }

    /// The most bytes the caches may hold together.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    /// Changes the limit; caches over a lower one are emptied, least recently used first.
    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
        if let Ok(mut state) = self.state.lock() {
            state.evict_down_to(limit, usize::MAX);
        }
    }

    /// The bytes the caches hold now, by their own estimate.
    pub fn used(&self) -> usize {
        self.state.lock().map_or(0, |s| s.used)
    }

    /// Changes what cache `id` holds from `old` to `new` bytes, emptying other caches if needed;
    /// `false`, changing nothing, if `new` cannot fit. The caller holds the lock of `slot`,
    /// and other caches are only ever `try_lock`ed here, so no two locks wait for each other.
    fn claim(&self, id: usize, slot: &Arc<Mutex<Option<Cached>>>, old: usize, new: usize) -> bool {
        let limit = self.limit();
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        state.tick += 1;
        let tick = state.tick;
        let position = state.holders.iter().position(|h| h.id == id);
        let held = position.map_or(0, |i| state.holders[i].bytes);
        debug_assert_eq!(held, old, "a cache's charge differs from its size");
        if new > held {
            if new > limit {
                return false;
            }
            let others = state.used - held;
            if others + new > limit && !state.evict_down_to(limit - new + held, id) {
                return false;
            }
        }
        // Eviction may have moved entries, so look again.
        match state.holders.iter().position(|h| h.id == id) {
            Some(i) => {
                let h = &mut state.holders[i];
                h.bytes = new;
                h.used_at = tick;
            }
            None => state.holders.push(Holder {
                id,
                slot: Arc::downgrade(slot),
                bytes: new,
                used_at: tick,
            }),
        }
        state.used = state.used - held + new;
        true
    }

    /// Marks cache `id` as just used.
    fn touch(&self, id: usize) {
        if let Ok(mut state) = self.state.lock() {
            state.tick += 1;
            let tick = state.tick;
            if let Some(h) = state.holders.iter_mut().find(|h| h.id == id) {
                h.used_at = tick;
            }
        }
    }

    /// Forgets what cache `id` held.
    fn release(&self, id: usize) {
        if let Ok(mut state) = self.state.lock()
            && let Some(i) = state.holders.iter().position(|h| h.id == id)
        {
            let h = state.holders.swap_remove(i);
            state.used -= h.bytes;
        }
    }
}

impl BudgetState {
    /// Empties the least recently used caches other than `keep` until at most `target` bytes
    /// are held; `false` if that is not possible now (caches in use are skipped).
    fn evict_down_to(&mut self, target: usize, keep: usize) -> bool {
        let mut order: Vec<(u64, usize)> = self
            .holders
            .iter()
            .filter(|h| h.id != keep)
            .map(|h| (h.used_at, h.id))
            .collect();
        order.sort_unstable();
        for (_, id) in order {
            if self.used <= target {
                break;
            }
            let Some(i) = self.holders.iter().position(|h| h.id == id) else {
                continue;
            };
            let emptied = match self.holders[i].slot.upgrade() {
                None => true,
                Some(slot) => match slot.try_lock() {
                    Ok(mut cached) => {
                        *cached = None;
                        true
                    }
                    Err(_) => false,
                },
            };
            if emptied {
                let h = self.holders.swap_remove(i);
                self.used -= h.bytes;
            }
        }
        self.used <= target
    }
}

/// The keys of the last listing walk of a store and the headers read for them, kept while the
/// store's change counter shows that nothing changed, or that only this handle changed it.
#[derive(Debug)]
pub(super) struct ListCache {
    cached: Arc<Mutex<Option<Cached>>>,
    budget: Arc<ListCacheBudget>,
    /// A walk found to be larger than the whole budget: the stamp and prefix it was made at, so
    /// that listings of the same state do not try to collect it again.
    too_big: Mutex<Option<(Stamp, String)>>,
}

/// One cached walk.
#[derive(Debug)]
pub(super) struct Cached {
    /// The counter value the keys belong to.
    stamp: Stamp,
    /// The prefix walked: `entries` holds exactly the keys that start with it.
    pub(super) prefix: String,
    /// The keys, in order, with what a listing shows of their headers once read.
    pub(super) entries: BTreeMap<String, Option<Listed>>,
    /// The estimated memory of `entries`, as charged to the budget.
    bytes: usize,
}

impl Cached {
    /// Sets the header of `key` (adding the key if new), keeping `bytes` up to date.
    pub(super) fn insert(&mut self, key: &str, listed: Listed) {
        if let Some(old) = self.entries.insert(key.to_owned(), Some(listed)) {
            self.bytes -= entry_bytes(key, old.is_some());
        }
        self.bytes += entry_bytes(key, true);
    }

    /// Removes `key`, keeping `bytes` up to date.
    pub(super) fn remove(&mut self, key: &str) {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= entry_bytes(key, old.is_some());
        }
    }

    /// Removes every key.
    pub(super) fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

/// What a listing shows of a blob's header.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub(super) etag: Etag,
    pub(super) size: u64,
    pub(super) last_modified: Timestamp,
}

/// One page of a listing, with the header of each blob on it when known.
pub(super) type PageParts = (ListPage, Vec<Option<Listed>>);

impl ListCache {
    /// An empty cache that charges `budget`.
    pub(super) fn new(budget: Arc<ListCacheBudget>) -> Self {
        ListCache {
            cached: Arc::default(),
            budget,
            too_big: Mutex::new(None),
        }
    }

    fn id(&self) -> usize {
        Arc::as_ptr(&self.cached) as usize
    }

    /// The most bytes a walk may take to be cached.
    pub(super) fn limit(&self) -> usize {
        self.budget.limit()
    }

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
                self.budget.touch(self.id());
                fill_page(&c.entries, options).map(Some)
            }
            _ => Ok(None),
        }
    }

    /// Whether a walk for `prefix` at `stamp` is already known to be too large to cache.
    pub(super) fn known_too_big(&self, stamp: Stamp, prefix: &str) -> bool {
        self.too_big
            .lock()
            .is_ok_and(|t| matches!(&*t, Some((s, p)) if *s == stamp && prefix.starts_with(p)))
    }

    /// Notes that the walk of `prefix` at `stamp` does not fit the budget.
    pub(super) fn mark_too_big(&self, stamp: Stamp, prefix: &str) {
        if let Ok(mut too_big) = self.too_big.lock() {
            *too_big = Some((stamp, prefix.to_owned()));
        }
    }

    /// Caches `entries`, the keys under `prefix` at `stamp`, whose estimated memory is
    /// `bytes`, if the budget can hold them.
    pub(super) fn put(
        &self,
        stamp: Stamp,
        prefix: &str,
        entries: BTreeMap<String, Option<Listed>>,
        bytes: usize,
    ) {
        let Ok(mut cached) = self.cached.lock() else {
            return;
        };
        let old = cached.as_ref().map_or(0, |c| c.bytes);
        if self.budget.claim(self.id(), &self.cached, old, bytes) {
            *cached = Some(Cached {
                stamp,
                prefix: prefix.to_owned(),
                entries,
                bytes,
            });
        } else {
            *cached = None;
            self.budget.release(self.id());
        }
    }

    /// Adds headers read while the counter still had the value `stamp`, as far as the budget
    /// allows.
    pub(super) fn remember(&self, stamp: Stamp, read: impl Iterator<Item = (String, Listed)>) {
        let Ok(mut cached) = self.cached.lock() else {
            return;
        };
        let Some(c) = cached.as_mut().filter(|c| c.stamp == stamp) else {
            return;
        };
        let read: Vec<(String, Listed)> = read
            .filter(|(key, _)| matches!(c.entries.get(key), Some(None)))
            .collect();
        let added: usize = read.iter().map(|_| HEADER_BYTES).sum();
        if added == 0
            || !self
                .budget
                .claim(self.id(), &self.cached, c.bytes, c.bytes + added)
        {
            return;
        }
        for (key, listed) in read {
            c.insert(&key, listed);
        }
    }

    /// Called under the store lock, after `change` was made and before it is announced as
    /// complete: if the cache holds the store as it was before the change, `update` makes it
    /// hold the store as it is after, for the value the counter is about to take. A cache the
    /// budget can no longer hold is dropped.
    pub(super) fn follow(
        &self,
        lock: &StoreLock,
        change: &Change,
        update: impl FnOnce(&mut Cached),
    ) {
        let Some(before) = change.before else {
            return;
        };
        let before = lock.stamp(before);
        let after = change.odd + 1;
        if let Ok(mut too_big) = self.too_big.lock()
            && let Some((stamp, _)) = too_big.as_mut()
            && Some(*stamp) == before
        {
            // One key more or less leaves a walk that was too large about as large.
            stamp.generation = after;
        }
        let Ok(mut cached) = self.cached.lock() else {
            return;
        };
        let Some(c) = cached.as_mut() else {
            return;
        };
        if Some(c.stamp) != before {
            return;
        }
        let old = c.bytes;
        update(c);
        c.stamp.generation = after;
        if !self.budget.claim(self.id(), &self.cached, old, c.bytes) {
            *cached = None;
            self.budget.release(self.id());
        }
    }
}

impl Drop for ListCache {
    fn drop(&mut self) {
        self.budget.release(self.id());
    }
}

/// Builds the page `options` asks for from `entries`, the sorted keys of a walk.
pub(super) fn fill_page(
    entries: &BTreeMap<String, Option<Listed>>,
    options: &ListOptions,
) -> Result<PageParts> {
    let mut pager = Paginator::new(options)?;
    let start = pager.start_key().to_owned();
    // Page through the keys alone; headers are wanted only for the keys on the page.
    for key in entries.range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded)) {
        if pager.push(bare_entry(key.0.clone())) == Flow::Stop {
            break;
        }
    }
    let page = pager.finish();
    let known = page
        .blobs
        .iter()
        .map(|entry| entries.get(&entry.key).cloned().flatten())
        .collect();
    Ok((page, known))
}

/// A listing entry for `key` before its header is read.
pub(super) fn bare_entry(key: String) -> ListEntry {
    ListEntry {
        key,
        etag: Etag::new(""),
        size: 0,
        last_modified: Timestamp::from_millis(0),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use blobjobs_store_api::{BlobStore, SetOptions};
    use bytes::Bytes;

    use super::*;
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

    /// The charge of every cache equals its estimate, and the caches together never exceed
    /// the budget: a store that fits pushes out the least recently used one, a store larger
    /// than the whole budget is listed without being cached.
    #[test]
    fn caches_share_one_budget_and_the_least_recently_used_gives_way() {
        let rt = runtime();
        let dir = tempfile::tempdir().unwrap();
        let keys_of = |n: usize| (0..n).map(|i| format!("key-{i:04}")).collect::<Vec<_>>();
        let one_store = keys_of(40)
            .iter()
            .map(|k| entry_bytes(k, true))
            .sum::<usize>();
        // Room for two stores of 40 keys with their headers, not for three.
        let budget = Arc::new(ListCacheBudget::new(one_store * 5 / 2));
        let open = |name: &str| {
            FileStore::open_with_budget(dir.path(), name, FileOptions { fsync: false }, &budget)
                .unwrap()
        };
        let (a, b, c, big) = (open("a"), open("b"), open("c"), open("big"));
        for store in [&a, &b, &c] {
            for key in keys_of(40) {
                rt.block_on(store.set(&key, Bytes::from_static(b"v"), SetOptions::new()))
                    .unwrap();
            }
        }
        for key in keys_of(200) {
            rt.block_on(big.set(&key, Bytes::from_static(b"v"), SetOptions::new()))
                .unwrap();
        }
        let cached = |s: &FileStore| s.inner.list_cache.cached.lock().unwrap().is_some();
        assert_eq!(keys(&rt, &a), keys_of(40));
        assert_eq!(keys(&rt, &b), keys_of(40));
        assert_eq!(budget.used(), 2 * one_store);
        assert!(cached(&a) && cached(&b));
        // `a` is used again, so `b` is the one that gives way to `c`.
        assert_eq!(keys(&rt, &a), keys_of(40));
        assert_eq!(keys(&rt, &c), keys_of(40));
        assert!(cached(&a) && !cached(&b) && cached(&c));
        assert_eq!(budget.used(), 2 * one_store);
        // Larger than the whole budget: listed exactly, in pages, and never cached.
        let (all, _) = rt.block_on(async {
            use blobjobs_store_api::BlobStoreExt as _;
            big.list_all_with_directories(ListOptions::new().page_size(7))
                .await
                .unwrap()
        });
        let all: Vec<String> = all.into_iter().map(|e| e.key).collect();
        assert_eq!(all, keys_of(200));
        assert!(!cached(&big));
        assert!(budget.used() <= budget.limit());
        // A lower limit empties caches until it holds.
        budget.set_limit(one_store);
        assert!(budget.used() <= one_store);
        drop((a, b, c, big));
        assert_eq!(budget.used(), 0, "dropped handles give their memory back");
    }
}
