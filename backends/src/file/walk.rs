//! Walking a store's directories: listing pages, and listing the stores under a root.
//!
//! [`walk_keys`] finds the keys under an encoded prefix, descending only into chunk directories
//! that can hold a match, and skips every file this backend could not have written (dot files,
//! foreign names, non-canonical paths, anything but regular files). [`Inner::list`] combines it
//! with the listing cache and reads the headers of a page, on several threads for long pages.
//! [`list_stores_blocking`] recognises the store directories of a root (decoding `.s` names,
//! checking `.h` names against their `.name` file) and lists those that hold at least one key.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use blobjobs_store_api::{Error, ErrorKind, ListOptions, ListPage, Result, validate_key};

use super::list_cache::{CachedKey, Listed, fill_page};
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

impl Inner {
    /// One page of keys. The sorted keys come from the cached walk when the change counter
    /// says the store is as it was walked, else from a new walk (cached if the counter did
    /// not move while it ran); headers are read only for the keys on the page and cached on
    /// the same terms.
    pub(super) fn list(&self, options: &ListOptions) -> Result<ListPage> {
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
}

/// Collects `(key, path)` for the blob files under `dir` whose encoded key starts with
/// `prefix` (encoded). `pieces` are the chunk directory names on the way down. Files that
/// this backend could not have written (temporary files, foreign names) are skipped. Stops
/// once `limit` keys are found.
pub(super) fn walk_keys(
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
        let mut found = Vec::new();
        walk_keys(&entry.path(), &mut Vec::new(), "", &mut found, Some(1))?;
        if !found.is_empty() {
            names.push(name);
        }
    }
    names.sort_unstable();
    Ok(names)
}
