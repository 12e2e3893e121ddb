//! Input validation in one place: keys, store names and metadata, with the protocol's limits.

use crate::blob::Metadata;
use crate::error::{Error, Result};

/// The longest key accepted, in UTF-8 bytes (the official client's limit).
pub const MAX_KEY_BYTES: usize = 600;
/// The longest store name accepted, in UTF-8 bytes (the official client's limit).
pub const MAX_STORE_NAME_BYTES: usize = 64;
/// The longest metadata accepted, as compact JSON text in UTF-8 bytes.
///
/// The protocol sends metadata as `b64;` + base64(JSON) in a header, and the official client
/// rejects a header name plus value over 2048 characters. 1515 bytes of JSON is the largest
/// that fits (see `docs/protocol.md`).
pub const MAX_METADATA_JSON_BYTES: usize = 1515;

/// Checks a key: non-empty, no leading `/` or `%2F`, at most [`MAX_KEY_BYTES`] bytes.
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(Error::invalid("key must not be empty"));
    }
    if key.starts_with('/') || key.starts_with("%2F") {
        return Err(Error::invalid("key must not start with '/'"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::invalid(format!(
            "key is {} bytes, the maximum is {MAX_KEY_BYTES}",
            key.len()
        )));
    }
    Ok(())
}

/// Checks a user-facing store name: non-empty, no `/` or `%2F`, at most
/// [`MAX_STORE_NAME_BYTES`] bytes.
pub fn validate_store_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid("store name must not be empty"));
    }
    if name.contains('/') || name.contains("%2F") {
        return Err(Error::invalid("store name must not contain '/'"));
    }
    if name.len() > MAX_STORE_NAME_BYTES {
        return Err(Error::invalid(format!(
            "store name is {} bytes, the maximum is {MAX_STORE_NAME_BYTES}",
            name.len()
        )));
    }
    Ok(())
}

/// Checks that metadata encodes within [`MAX_METADATA_JSON_BYTES`].
pub fn validate_metadata(metadata: &Metadata) -> Result<()> {
    let len = metadata.to_json().len();
    if len > MAX_METADATA_JSON_BYTES {
        return Err(Error::invalid(format!(
            "metadata is {len} bytes of JSON, the maximum is {MAX_METADATA_JSON_BYTES}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn keys() {
        assert!(validate_key("a").is_ok());
        assert!(validate_key("dir/sub/c").is_ok());
        assert!(validate_key("%2fx").is_ok());
        assert!(validate_key(&"k".repeat(600)).is_ok());
        for bad in ["", "/a", "%2Fa"] {
            assert_eq!(
                validate_key(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
        assert_eq!(
            validate_key(&"k".repeat(601)).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        // 300 two-byte characters are exactly 600 bytes; one more is over.
        assert!(validate_key(&"ü".repeat(300)).is_ok());
        assert!(validate_key(&format!("{}a", "ü".repeat(300))).is_err());
    }

    #[test]
    fn store_names() {
        assert!(validate_store_name("rubric-jobs").is_ok());
        assert!(validate_store_name("a:b").is_ok());
        assert!(validate_store_name("%2f").is_ok());
        assert!(validate_store_name(&"s".repeat(64)).is_ok());
        for bad in ["", "a/b", "a%2Fb"] {
            assert!(validate_store_name(bad).is_err(), "{bad:?}");
        }
        assert!(validate_store_name(&"s".repeat(65)).is_err());
    }

    #[test]
    fn metadata_size_boundary() {
        // {"k":"..."} is 8 bytes of framing around the value.
        let at_limit = Metadata::from_pairs([("k", "x".repeat(MAX_METADATA_JSON_BYTES - 8))]);
        assert_eq!(at_limit.to_json().len(), MAX_METADATA_JSON_BYTES);
        assert!(validate_metadata(&at_limit).is_ok());
        let over = Metadata::from_pairs([("k", "x".repeat(MAX_METADATA_JSON_BYTES - 7))]);
        assert!(validate_metadata(&over).is_err());
    }
}
