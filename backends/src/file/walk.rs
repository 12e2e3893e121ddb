//! Walking a store's directories: listing pages, and listing the stores under a root.
//!
//! [`walk_keys`] finds the keys under an encoded prefix, descending only into chunk directories
//! that can hold a match, and skips every file this backend could not have written (dot files,
//! foreign names, non-canonical paths, anything but regular files). [`Inner::list`] combines it
//! with the listing cache and reads the headers of a page, on several threads for long pages.
//! A walk too large for the cache's budget is not collected: [`Inner::bounded_page`] keeps only
//! the first items of the page while it walks, so a listing of any store needs memory in
//! proportion to its page size. A damaged blob file is left out of listings, with a warning,
//! and only reads of its own key fail. [`list_stores_blocking`] recognises the store
//! directories of a root (decoding `.s` names, checking `.h` names against their `.name` file)
//! and lists those that hold at least one key.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use blobjobs_store_api::list::{Flow, Paginator};
use blobjobs_store_api::{Error, ErrorKind, ListOptions, ListPage, Result, validate_key};

use super::counter::Stamp;
use super::list_cache::{Listed, PageParts, bare_entry, entry_bytes, fill_page};
use super::names::{
    BLOB_SUFFIX, HASHED_STORE_SUFFIX, NAME_FILE, PIECE_CHARS, STORE_SUFFIX, check_store_name,
    decode, encode, sha256_hex, split_pieces,
};
use super::read::read_blob_info;
use super::{Inner, io_error};

/// A listing page with at least this many headers to read reads them on several threads.
const PARALLEL_LIST_READS: usize = 64;
/// At most this many threads read a page's headers.
const LIST_READ_THREADS: usize = 4;

/// What a listing shows of the blob file at `path`, or `None` if it does not exist. A damaged
/// file is `None` too, with a warning: one bad file must not hide every other key of its store,
/// and reading its key reports the damage.
fn read_listed_one(path: &Path) -> Result<Option<Listed>> {
    match read_blob_info(path) {
        Ok(info) => Ok(info.map(|info| Listed {
            etag: info.etag,
            size: info.size,
            last_modified: info.last_modified,
        })),
        Err(e) if e.kind() == ErrorKind::Corrupt => {
            tracing::warn!("listing skips a damaged blob file: {e}");
            Ok(None)
        }
        Err(e) => Err(e),
    }
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

impl Inner {
    /// One page of keys. The sorted keys come from the cached walk when the change counter
    /// says the store is as it was walked, else from a new walk (cached if the counter did
    /// not move while it ran and the budget holds it); headers are read only for the keys on
    /// the page and cached on the same terms.
    pub(super) fn list(&self, options: &ListOptions) -> Result<ListPage> {
        let stamp = self.read_stamp();
        let (mut page, known) = match self.list_cache.page(stamp, options)? {
            Some(parts) => parts,
            None => self.walk_page(stamp, options)?,
        };
        // Positions on the page whose headers are not cached.
        let missing: Vec<usize> = (0..known.len()).filter(|&i| known[i].is_none()).collect();
        let paths: Vec<PathBuf> = missing
            .iter()
            .map(|&i| self.key_path(&page.blobs[i].key).file)
            .collect();
        let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
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
        let mut listed = known;
        for &i in &missing {
            listed[i] = read.next().flatten();
        }
        // A key deleted since the directory was read (or a damaged one) has no header and is
        // left out.
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

    /// A page from a new walk. The walk's keys are collected (and cached) while their estimated
    /// memory fits the listing cache's budget; a walk that outgrows it is dropped, and the page
    /// comes from [`Inner::bounded_page`] instead.
    fn walk_page(&self, stamp: Option<Stamp>, options: &ListOptions) -> Result<PageParts> {
        let prefix = encode(&options.prefix);
        let worth_collecting =
            stamp.is_none_or(|stamp| !self.list_cache.known_too_big(stamp, &options.prefix));
        if worth_collecting {
            let limit = self.list_cache.limit();
            let mut entries = BTreeMap::new();
            let mut bytes = 0;
            let mut fits = true;
            walk_keys(&self.dir, &mut Vec::new(), &prefix, &mut |key, _| {
                bytes += entry_bytes(&key, false);
                fits = bytes <= limit;
                if fits {
                    entries.insert(key, None);
                }
                fits
            })?;
            if fits {
                let parts = fill_page(&entries, options)?;
                // Only a walk that no change overlapped may stand for its counter value.
                if let Some(stamp) = stamp
                    && self.read_stamp() == Some(stamp)
                {
                    self.list_cache.put(stamp, &options.prefix, entries, bytes);
                }
                return Ok(parts);
            }
            drop(entries);
            if let Some(stamp) = stamp {
                self.list_cache.mark_too_big(stamp, &options.prefix);
            }
        }
        bounded_page(options, &mut |visit| {
            walk_keys(&self.dir, &mut Vec::new(), &prefix, &mut |key, _| {
                visit(key);
                true
            })
            .map(|_| ())
        })
    }
}

/// A page from walks (each a call of `walk`, which shows every key under the prefix, in any
/// order) that keep only the first `page size + 1` items (keys, or directories in directories
/// mode) after the page's start, so that memory stays in proportion to the page. Usually one
/// walk fills the page; another follows, from the last item on, only when items fed to the
/// [`Paginator`] turn out to be skipped (such as the directory a cursor points past).
fn bounded_page(options: &ListOptions, walk: &mut KeyWalk<'_>) -> Result<PageParts> {
    let mut pager = Paginator::new(options)?;
    let wanted = options
        .page_size
        .unwrap_or(blobjobs_store_api::list::DEFAULT_PAGE_SIZE)
        + 1;
    let mut from = Start::Key(pager.start_key().to_owned());
    loop {
        let mut first = FirstItems::new(wanted, options);
        walk(&mut |key| {
            if from.admits(&key) {
                first.offer(key);
            }
        })?;
        let (items, complete) = first.finish();
        let mut last = None;
        let mut stopped = false;
        for key in items {
            if pager.push(bare_entry(key.clone())) == Flow::Stop {
                stopped = true;
                break;
            }
            last = Some(key);
        }
        match last {
            Some(last) if !stopped && !complete => {
                from = Start::after(&last, options);
            }
            _ => break,
        }
    }
    let page = pager.finish();
    let known = vec![None; page.blobs.len()];
    Ok((page, known))
}

/// A walk over the keys under a prefix: it calls the visitor it is given once per key.
type KeyWalk<'a> = dyn FnMut(&mut dyn FnMut(String)) -> Result<()> + 'a;

/// Where a bounded walk starts.
enum Start {
    /// At this key and after it.
    Key(String),
    /// After this key.
    After(String),
}

impl Start {
    /// Where the walk goes on after `last`, the first key of the last item fed: past the item,
    /// which in directories mode is every key of its directory.
    fn after(last: &str, options: &ListOptions) -> Start {
        match directory_of(last, options) {
            // Every key under `dir/` sorts below `dir0`, and every other key above `dir/…`
            // sorts at or above it ('0' follows '/').
            Some(dir) => Start::Key(format!("{dir}0")),
            None => Start::After(last.to_owned()),
        }
    }

    fn admits(&self, key: &str) -> bool {
        match self {
            Start::Key(k) => key >= k.as_str(),
            Start::After(k) => key > k.as_str(),
        }
    }
}

/// The directory a key of the listing falls into in directories mode.
fn directory_of<'a>(key: &'a str, options: &ListOptions) -> Option<&'a str> {
    if !options.directories {
        return None;
    }
    let rest = key.strip_prefix(options.prefix.as_str())?;
    rest.find('/').map(|i| &key[..options.prefix.len() + i])
}

/// The first `wanted` items of a walk that sees keys in any order. An item is a key, or in
/// directories mode a directory; it ranks by its smallest key, which is the key the
/// [`Paginator`] is fed for it.
struct FirstItems<'a> {
    wanted: usize,
    options: &'a ListOptions,
    /// Items by rank: smallest key → the directory, or `None` for a plain key.
    by_rank: BTreeMap<String, Option<String>>,
    /// Directories kept, with their rank.
    dirs: HashMap<String, String>,
}

impl<'a> FirstItems<'a> {
    fn new(wanted: usize, options: &'a ListOptions) -> Self {
        FirstItems {
            wanted,
            options,
            by_rank: BTreeMap::new(),
            dirs: HashMap::new(),
        }
    }

    fn offer(&mut self, key: String) {
        let full = self.by_rank.len() >= self.wanted;
        if full
            && self
                .by_rank
                .last_key_value()
                .is_some_and(|(last, _)| key >= *last)
        {
            return;
        }
        match directory_of(&key, self.options).map(str::to_owned) {
            Some(dir) => {
                if let Some(rank) = self.dirs.get(&dir) {
                    if key >= *rank {
                        return;
                    }
                    let old = rank.clone();
                    self.by_rank.remove(&old);
                }
                self.dirs.insert(dir.clone(), key.clone());
                self.by_rank.insert(key, Some(dir));
            }
            None => {
                self.by_rank.insert(key, None);
            }
        }
        if self.by_rank.len() > self.wanted
            && let Some((_, dir)) = self.by_rank.pop_last()
            && let Some(dir) = dir
        {
            self.dirs.remove(&dir);
        }
    }

    /// The kept items' keys in order, and whether they are all there are (fewer than wanted).
    fn finish(self) -> (Vec<String>, bool) {
        let complete = self.by_rank.len() < self.wanted;
        (self.by_rank.into_keys().collect(), complete)
    }
}

/// Calls `visit` with `(key, path)` for each blob file under `dir` whose encoded key starts
/// with `prefix` (encoded), until it returns `false`. `pieces` are the chunk directory names
/// on the way down. Files that this backend could not have written (temporary files, foreign
/// names) are skipped. Returns `false` if `visit` stopped the walk.
pub(super) fn walk_keys(
    dir: &Path,
    pieces: &mut Vec<String>,
    prefix: &str,
    visit: &mut dyn FnMut(String, PathBuf) -> bool,
) -> Result<bool> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(io_error("cannot read directory", dir, e)),
    };
    let so_far: String = pieces.concat();
    for entry in entries {
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
            if !visit(key, entry.path()) {
                return Ok(false);
            }
        } else if file_type.is_dir() && !name.contains('.') && name.len() <= PIECE_CHARS {
            let encoded = format!("{so_far}{name}");
            if encoded.starts_with(prefix) || prefix.starts_with(&encoded) {
                pieces.push(name.to_owned());
                let walked = walk_keys(&entry.path(), pieces, prefix, visit);
                pieces.pop();
                if !walked? {
                    return Ok(false);
                }
            }
        }
    }
    Ok(true)
}

pub(super) fn list_stores_blocking(root: &Path, prefix: &str) -> Result<Vec<String>> {
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
        let mut found = false;
        walk_keys(&entry.path(), &mut Vec::new(), "", &mut |_, _| {
            found = true;
            false
        })?;
        if found {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Pages of a listing, following cursors, from `page_of`.
    fn pages(
        options: &ListOptions,
        mut page_of: impl FnMut(&ListOptions) -> ListPage,
    ) -> Vec<(Vec<String>, Vec<String>)> {
        let mut options = options.clone();
        let mut out = Vec::new();
        loop {
            assert!(out.len() < 100, "the cursors go round: {out:?}");
            let page = page_of(&options);
            let keys = page.blobs.iter().map(|e| e.key.clone()).collect();
            out.push((keys, page.directories.clone()));
            match page.next_cursor {
                Some(cursor) => options.cursor = Some(cursor),
                None => return out,
            }
        }
    }

    proptest! {
        /// Walks that keep only the first items of a page give exactly the pages of the
        /// whole sorted walk, whatever order the directory shows the keys in.
        #[test]
        fn bounded_walks_page_like_the_whole_walk(
            keys in prop::collection::btree_set("[ab/.]{1,5}", 0..40),
            order in any::<u64>(),
            prefix in "[ab/]{0,2}",
            directories in any::<bool>(),
            page_size in 1usize..5,
        ) {
            let options = ListOptions::new()
                .prefix(prefix)
                .directories(directories)
                .page_size(page_size);
            let whole: BTreeMap<String, Option<Listed>> =
                keys.iter().map(|k| (k.clone(), None)).collect();
            let expected = pages(&options, |o| fill_page(&whole, o).unwrap().0);
            // The walk's order: the keys rotated and reversed by the seed.
            let mut shown: Vec<String> = keys.iter().cloned().collect();
            if !shown.is_empty() {
                let turn = (order % shown.len() as u64) as usize;
                shown.rotate_left(turn);
            }
            if order % 2 == 1 {
                shown.reverse();
            }
            let got = pages(&options, |o| {
                bounded_page(o, &mut |visit| {
                    for key in shown.iter().filter(|k| k.starts_with(&o.prefix)) {
                        visit(key.clone());
                    }
                    Ok(())
                })
                .unwrap()
                .0
            });
            prop_assert_eq!(got, expected);
        }
    }
}
