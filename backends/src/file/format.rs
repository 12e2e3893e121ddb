//! The blob file format: magic, header length, JSON header, value.
//!
//! ```text
//! offset 0   8 bytes   b"nblob01\n"
//! offset 8   4 bytes   n, the length of the JSON header, little-endian u32
//! offset 12  n bytes   {"etag":…,"size":…,"last_modified":…,"metadata":…}, maybe space-padded
//! 12 + n     size      the value
//! ```
//!
//! The header is parsed strictly (unknown fields refused). Anything that does not fit the
//! format is [`ErrorKind::Corrupt`]: a header length
//! over [`MAX_HEADER_BYTES`] or past the end of the file, a header that does not parse, or a
//! `size` that differs from what follows the header.

use std::path::Path;

use blobjobs_store_api::{Blob, BlobInfo, Error, ErrorKind, Etag, Metadata, Result, Timestamp};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::corrupt;

/// The first bytes of every blob file.
const MAGIC: &[u8; 8] = b"nblob01\n";
/// Magic plus the `u32` header length.
pub(super) const PREFIX_LEN: usize = 12;
/// A header longer than this is damage, not data (metadata is limited to 1515 bytes of JSON).
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// The JSON part of a blob file's header.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Header {
    pub(super) etag: Etag,
    pub(super) size: u64,
    pub(super) last_modified: u64,
    pub(super) metadata: Metadata,
}

pub(super) fn blob_prefix(header: &Header, pad_to: Option<usize>) -> Result<Vec<u8>> {
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
pub(super) fn header_extent(head: &[u8], file_len: u64, path: &Path) -> Result<usize> {
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

pub(super) fn decode_header(
    json: &[u8],
    file_len: u64,
    extent: usize,
    path: &Path,
) -> Result<BlobInfo> {
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

/// The blob in `data`, the whole content of the blob file at `path`.
pub(super) fn parse_whole(data: Vec<u8>, path: &Path) -> Result<Blob> {
    let file_len = data.len() as u64;
    let extent = header_extent(&data, file_len, path)?;
    let info = decode_header(&data[PREFIX_LEN..extent], file_len, extent, path)?;
    let value = Bytes::from(data).slice(extent..);
    Ok(Blob { value, info })
}
