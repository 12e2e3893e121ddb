//! Names on disk: how store names and keys become file names, and the fixed names of the
//! backend's own files.
//!
//! The rules are in the module documentation of [`super`] ("Layout on disk"). The code here
//! keeps them in one place: [`encode`] and [`decode`] are exact inverses on the names encoding
//! produces, [`split_pieces`] cuts an encoded key into path components without splitting an
//! escape, and [`Inner::key_path`] and [`store_dir`] put the pieces together. The walk (in
//! `walk`) accepts a file only if these functions would have produced its path.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use blobjobs_store_api::{Error, ErrorKind, Result};
use sha2::{Digest, Sha256};

use super::{Inner, MAX_FILE_STORE_NAME_BYTES};

/// The longest piece of an encoded name in one path component, well below the usual
/// 255-byte file name limit even with a suffix.
pub(super) const PIECE_CHARS: usize = 200;

pub(super) const BLOB_SUFFIX: &str = ".b";
pub(super) const STORE_SUFFIX: &str = ".s";
pub(super) const HASHED_STORE_SUFFIX: &str = ".h";
pub(super) const LOCK_FILE: &str = ".lock";
pub(super) const NAME_FILE: &str = ".name";
pub(super) const TEMP_PREFIX: &str = ".tmp-";
/// Temporary files named `.tmp-l<16 hex>` are locked (`flock`) by their writer for as long as
/// it works on them, so a sweep can tell a dead writer's file from a live one's at any age.
/// Older versions wrote `.tmp-<16 hex>` without a lock; those are swept by age only.
pub(super) const LOCKED_TEMP_PREFIX: &str = ".tmp-l";

/// Whether `name` is a temporary file locked by its writer (see [`LOCKED_TEMP_PREFIX`]).
pub(super) fn is_locked_temp(name: &str) -> bool {
    name.strip_prefix(LOCKED_TEMP_PREFIX)
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Where one key lives.
pub(super) struct KeyPath {
    /// The directory of the blob file (the store directory or a chunk directory under it).
    pub(super) dir: PathBuf,
    /// The blob file.
    pub(super) file: PathBuf,
}

/// Checks that `name` can name a store: 1 to [`MAX_FILE_STORE_NAME_BYTES`] bytes. This is the
/// one check of store names, for file stores and for every [`Catalog`](crate::Catalog).
pub(crate) fn check_store_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_FILE_STORE_NAME_BYTES {
        return Err(Error::invalid(format!(
            "store name must be 1 to {MAX_FILE_STORE_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn is_kept(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
}

/// Encodes text for use in file names (see the module documentation).
pub(super) fn encode(text: &str) -> String {
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
pub(super) fn decode(encoded: &str) -> Option<String> {
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
pub(super) fn split_pieces(encoded: &str) -> Vec<&str> {
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

pub(super) fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The directory of a store and whether it is named by hash.
pub(super) fn store_dir(root: &Path, name: &str) -> (PathBuf, bool) {
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

pub(super) fn random_hex() -> Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::new(ErrorKind::Io, format!("no randomness for a file name: {e}")))?;
    let mut out = String::with_capacity(16);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    Ok(out)
}

impl Inner {
    pub(super) fn key_path(&self, key: &str) -> KeyPath {
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
