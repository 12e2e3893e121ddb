//! Reading blob files: whole, header only, or as a stream, on the blocking pool or in place from
//! the page cache.
//!
//! Every read parses one open file, so header and value always belong to the same version. The
//! in-place variants ([`read_blob_cached`], [`read_blob_info_cached`]) return `None` whenever the
//! page cache cannot answer, and the caller then runs the blocking variant ([`read_blob`],
//! [`read_blob_info`], [`open_blob`]); both parse with the functions of `format`, so they agree
//! on every file (a unit test compares them file by file).

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use blobjobs_store_api::{Blob, BlobInfo, ByteStream, Error, ErrorKind, Result};
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::format::{PREFIX_LEN, decode_header, header_extent, parse_whole};
use super::sys::{CachedRead, open_existing, read_cached};
use super::{corrupt, io_error};

/// How much of a file to read at once when only the header is wanted.
const HEAD_READ: usize = 4096;

/// The chunk size of `BlobStore::get_stream`.
const STREAM_CHUNK: usize = 64 * 1024;
/// Blob files up to this size (a value of about 64 KiB and its header) are read whole by
/// `BlobStore::get_stream`, in the same blocking call that opens them; larger ones stream.
pub(super) const WHOLE_READ: usize = STREAM_CHUNK + HEAD_READ;

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
pub(super) enum Opened {
    /// A small file, read whole.
    Whole(Blob),
    /// A larger file: its header, and the file positioned at the start of the value.
    Streaming(BlobInfo, File),
}

/// Opens the blob file at `path` and reads it whole if it is at most `whole_max` bytes long;
/// otherwise reads only its header. One open file is one version, so whatever is read from it
/// belongs together, even while the key is being replaced.
pub(super) fn open_blob(path: &Path, whole_max: u64) -> Result<Option<Opened>> {
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

/// [`read_blob`] of a file of at most [`WHOLE_READ`] bytes, from the page cache alone (see
/// [`read_cached`]); `None` when that would wait, and the blocking path must read.
pub(super) fn read_blob_cached(path: &Path) -> Option<Result<Option<Blob>>> {
    let CachedRead::Found { data, .. } = read_cached(path, WHOLE_READ, true)? else {
        return Some(Ok(None));
    };
    Some(parse_whole(data, path).map(Some))
}

/// [`read_blob_info`] from the page cache alone, when the header is within the first
/// [`HEAD_READ`] bytes; `None` when the blocking path must read.
pub(super) fn read_blob_info_cached(path: &Path) -> Option<Result<Option<BlobInfo>>> {
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

pub(super) fn read_blob(path: &Path) -> Result<Option<Blob>> {
    match open_blob(path, u64::MAX)? {
        Some(Opened::Whole(blob)) => Ok(Some(blob)),
        // Unreachable with no size limit, but a header is no value: say so rather than panic.
        Some(Opened::Streaming(..)) => Err(Error::new(ErrorKind::Io, "blob was not read whole")),
        None => Ok(None),
    }
}

pub(super) fn read_blob_info(path: &Path) -> Result<Option<BlobInfo>> {
    let Some(mut file) = open_existing(path)? else {
        return Ok(None);
    };
    Ok(Some(read_info(&mut file, path)?.0))
}

pub(super) fn exists(path: &Path) -> Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error("cannot stat", path, e)),
    }
}

/// Reads a value chunk by chunk from a file positioned at its start.
pub(super) fn value_stream(file: tokio::fs::File, size: u64, path: PathBuf) -> ByteStream {
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

#[cfg(test)]
mod tests {
    use blobjobs_store_api::{BlobStore, Metadata, SetOptions};

    use super::*;
    use crate::file::testing::runtime;
    use crate::file::{FileOptions, FileStore};

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
}
