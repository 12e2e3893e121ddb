//! The wire format of out-of-process instances: one JSON request per line in, one JSON
//! response per line out. Values travel as base64, everything else as plain JSON.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use blobjobs_store_api::{
    BlobStore, Error, ErrorKind, Etag, ListEntry, ListOptions, Metadata, SetOptions, SetOutcome,
    Timestamp,
};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A write condition on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WireCondition {
    /// Always write.
    Always,
    /// Only if the key does not exist.
    IfNew,
    /// Only if the key's ETag is `etag`.
    IfMatch {
        /// The expected ETag.
        etag: Etag,
    },
}

/// One `BlobStore` operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// `get`.
    Get {
        /// The key.
        key: String,
    },
    /// `get_metadata`.
    GetMetadata {
        /// The key.
        key: String,
    },
    /// `set`.
    Set {
        /// The key.
        key: String,
        /// The value, standard base64.
        value: String,
        /// The metadata.
        #[serde(default)]
        metadata: Metadata,
        /// The condition.
        condition: WireCondition,
    },
    /// `delete`.
    Delete {
        /// The key.
        key: String,
    },
    /// `list`.
    List {
        /// The prefix.
        #[serde(default)]
        prefix: String,
        /// Directories mode.
        #[serde(default)]
        directories: bool,
        /// The cursor.
        #[serde(default)]
        cursor: Option<String>,
        /// The page size.
        #[serde(default)]
        page_size: Option<usize>,
    },
}

/// One listed blob on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry {
    /// The key.
    pub key: String,
    /// Its ETag.
    pub etag: Etag,
    /// Its size.
    pub size: u64,
    /// Milliseconds since the epoch.
    pub last_modified: u64,
}

/// The result of one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// A value with its info (`get`).
    Blob {
        /// The value, standard base64.
        value: String,
        /// The ETag.
        etag: Etag,
        /// The metadata.
        metadata: Metadata,
        /// The size.
        size: u64,
        /// Milliseconds since the epoch.
        last_modified: u64,
    },
    /// Info without the value (`get_metadata`).
    Info {
        /// The ETag.
        etag: Etag,
        /// The metadata.
        metadata: Metadata,
        /// The size.
        size: u64,
        /// Milliseconds since the epoch.
        last_modified: u64,
    },
    /// The key does not exist (`get`, `get_metadata`).
    NotFound,
    /// `set` wrote.
    Written {
        /// The new ETag.
        etag: Etag,
    },
    /// `set` did not write.
    ConditionFailed,
    /// `delete` returned.
    Done,
    /// One page of a listing.
    Page {
        /// Blobs.
        blobs: Vec<WireEntry>,
        /// Directories.
        directories: Vec<String>,
        /// The next cursor.
        next_cursor: Option<String>,
    },
    /// The operation failed.
    Error {
        /// [`ErrorKind::as_str`] of the error.
        kind: String,
        /// Its message.
        message: String,
    },
}

/// A request line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed in the response.
    pub id: u64,
    /// The operation.
    #[serde(flatten)]
    pub op: Op,
}

/// A response line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// The request's id.
    pub id: u64,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The kind named by [`ErrorKind::as_str`]; unknown names become [`ErrorKind::Protocol`].
pub fn kind_from_str(name: &str) -> ErrorKind {
    ErrorKind::from_name(name).unwrap_or(ErrorKind::Protocol)
}

/// Turns an error into its wire outcome.
pub fn error_outcome(e: &Error) -> Outcome {
    Outcome::Error {
        kind: e.kind().as_str().to_owned(),
        message: e.message().to_owned(),
    }
}

/// Turns an error outcome back into an error.
pub fn outcome_error(kind: &str, message: &str) -> Error {
    Error::new(kind_from_str(kind), message.to_owned())
}

/// Runs `op` on `store`.
pub async fn apply(store: &dyn BlobStore, op: Op) -> Outcome {
    let result = match op {
        Op::Get { key } => store.get(&key).await.map(|b| match b {
            Some(b) => Outcome::Blob {
                value: STANDARD.encode(&b.value),
                etag: b.info.etag,
                metadata: b.info.metadata,
                size: b.info.size,
                last_modified: b.info.last_modified.as_millis(),
            },
            None => Outcome::NotFound,
        }),
        Op::GetMetadata { key } => store.get_metadata(&key).await.map(|i| match i {
            Some(i) => Outcome::Info {
                etag: i.etag,
                metadata: i.metadata,
                size: i.size,
                last_modified: i.last_modified.as_millis(),
            },
            None => Outcome::NotFound,
        }),
        Op::Set {
            key,
            value,
            metadata,
            condition,
        } => match STANDARD.decode(value.as_bytes()) {
            Ok(bytes) => {
                let options = SetOptions::new().metadata(metadata);
                let options = match condition {
                    WireCondition::Always => options,
                    WireCondition::IfNew => options.if_new(),
                    WireCondition::IfMatch { etag } => options.if_match(etag),
                };
                store
                    .set(&key, Bytes::from(bytes), options)
                    .await
                    .map(|o| match o {
                        SetOutcome::Written { etag } => Outcome::Written { etag },
                        SetOutcome::ConditionFailed => Outcome::ConditionFailed,
                    })
            }
            Err(_) => Err(Error::invalid("value is not valid base64")),
        },
        Op::Delete { key } => store.delete(&key).await.map(|()| Outcome::Done),
        Op::List {
            prefix,
            directories,
            cursor,
            page_size,
        } => {
            let mut options = ListOptions::new()
                .prefix(prefix)
                .directories(directories)
                .cursor(cursor);
            options.page_size = page_size;
            store.list(options).await.map(|p| Outcome::Page {
                blobs: p
                    .blobs
                    .into_iter()
                    .map(|e| WireEntry {
                        key: e.key,
                        etag: e.etag,
                        size: e.size,
                        last_modified: e.last_modified.as_millis(),
                    })
                    .collect(),
                directories: p.directories,
                next_cursor: p.next_cursor,
            })
        }
    };
    result.unwrap_or_else(|e| error_outcome(&e))
}

/// A listed entry from the wire.
pub fn entry_from_wire(e: WireEntry) -> ListEntry {
    ListEntry {
        key: e.key,
        etag: e.etag,
        size: e.size,
        last_modified: Timestamp::from_millis(e.last_modified),
    }
}

/// Encodes a value for the wire.
pub fn encode_value(value: &[u8]) -> String {
    STANDARD.encode(value)
}

/// Decodes a value from the wire.
pub fn decode_value(value: &str) -> blobjobs_store_api::Result<Bytes> {
    STANDARD
        .decode(value.as_bytes())
        .map(Bytes::from)
        .map_err(|_| Error::new(ErrorKind::Protocol, "value from the instance is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_object() {
        let r = Request {
            id: 7,
            op: Op::Set {
                key: "k".into(),
                value: encode_value(b"hi"),
                metadata: Metadata::new(),
                condition: WireCondition::IfMatch {
                    etag: Etag::new("\"e\""),
                },
            },
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.starts_with("{\"id\":7,\"op\":\"set\""), "{text}");
        assert_eq!(serde_json::from_str::<Request>(&text).unwrap(), r);
        for k in [ErrorKind::Timeout, ErrorKind::InvalidInput, ErrorKind::Io] {
            assert_eq!(kind_from_str(k.as_str()), k);
        }
        assert_eq!(kind_from_str("nonsense"), ErrorKind::Protocol);
    }
}
