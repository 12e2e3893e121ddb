//! The JSON bodies of the protocol, with serde in both directions: the server writes them,
//! the client reads them.
//!
//! Readers are lenient where the official client is: a missing or `null` field reads as
//! empty, unknown fields are ignored.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use blobjobs_store_api::{Error, ErrorKind, Etag, ListEntry, ListPage, Result, Timestamp};
use serde::{Deserialize, Deserializer, Serialize};

/// A page of a key listing: `{"blobs":[…],"directories":[…],"next_cursor":…}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBody {
    /// The blobs of the page.
    #[serde(default, deserialize_with = "null_as_default")]
    pub blobs: Vec<ListBlob>,
    /// The directories of the page (directories mode), without a trailing `/`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub directories: Vec<String>,
    /// The cursor of the next page; absent (or empty) on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// One blob of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBlob {
    /// The current ETag.
    #[serde(default, deserialize_with = "null_as_default")]
    pub etag: String,
    /// The key, decoded.
    #[serde(default, deserialize_with = "null_as_default")]
    pub key: String,
    /// The time of the last write, RFC 3339 with milliseconds.
    #[serde(default, deserialize_with = "null_as_default")]
    pub last_modified: String,
    /// The size in bytes.
    #[serde(default, deserialize_with = "null_as_default")]
    pub size: u64,
}

impl ListBody {
    /// Reads a list response; [`ErrorKind::Protocol`] if it is not such a JSON object.
    pub fn parse(body: &[u8]) -> Result<ListBody> {
        serde_json::from_slice(body).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("list response is not valid json: {e}"),
            )
        })
    }

    /// The page as the client hands it on. Entries without a key are dropped like the
    /// official client drops them, an unreadable time becomes the Unix epoch, and an empty
    /// cursor means the last page.
    pub fn into_page(self) -> ListPage {
        let blobs = self
            .blobs
            .into_iter()
            .filter(|b| !b.key.is_empty())
            .map(|b| ListEntry {
                key: b.key,
                etag: Etag::new(b.etag),
                size: b.size,
                last_modified: Timestamp::parse_rfc3339(&b.last_modified)
                    .unwrap_or(Timestamp::from_millis(0)),
            })
            .collect();
        ListPage {
            blobs,
            directories: self.directories,
            next_cursor: self.next_cursor.filter(|c| !c.is_empty()),
        }
    }
}

impl From<ListPage> for ListBody {
    /// The body a server sends for a page of its store.
    fn from(page: ListPage) -> Self {
        ListBody {
            blobs: page
                .blobs
                .into_iter()
                .map(|e| ListBlob {
                    etag: e.etag.as_str().to_owned(),
                    key: e.key,
                    last_modified: e.last_modified.to_rfc3339(),
                    size: e.size,
                })
                .collect(),
            directories: page.directories,
            next_cursor: page.next_cursor,
        }
    }
}

/// The answer to API step 1: `{"url": "…"}`, where the data request goes next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedUrl {
    /// The signed URL, absolute or (from some servers) a path on the API's host.
    pub url: String,
}

impl SignedUrl {
    /// Reads a step-1 answer; [`ErrorKind::Protocol`] if it is not `{"url": …}`.
    pub fn parse(body: &[u8]) -> Result<SignedUrl> {
        serde_json::from_slice(body).map_err(|_| {
            Error::new(
                ErrorKind::Protocol,
                "signed url response is not {\"url\": …}",
            )
        })
    }
}

/// A page of a site's store listing: `{"stores":[…],"next_cursor":…}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoresBody {
    /// Raw store names.
    #[serde(default, deserialize_with = "null_as_default")]
    pub stores: Vec<String>,
    /// The cursor of the next page ([`encode_store_cursor`]); absent on the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The answer to deleting a store: `{"blobs_deleted":n,"has_more":false}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteStoreBody {
    /// How many blobs were deleted.
    #[serde(default)]
    pub blobs_deleted: u64,
    /// Whether blobs are left to delete in another call.
    #[serde(default)]
    pub has_more: bool,
}

/// The cursor of a store listing after the store `last`: opaque to clients, URL-safe.
pub fn encode_store_cursor(last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("s{last}"))
}

/// The store a store-listing cursor continues after; [`ErrorKind::InvalidInput`] for a
/// cursor that [`encode_store_cursor`] did not make.
pub fn decode_store_cursor(cursor: &str) -> Result<String> {
    let bad = || Error::invalid("malformed store list cursor");
    let raw = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    raw.strip_prefix('s').map(str::to_owned).ok_or_else(bad)
}

/// Reads `null` as the default value, like a missing field.
fn null_as_default<'de, D, T>(d: D) -> std::result::Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn list_json_maps_to_entries() {
        let body = br#"{"blobs":[{"etag":"\"e1\"","key":"cart/42","last_modified":"2026-11-28T11:04:55.787Z","size":2},{"etag":"x"},{"key":"n","etag":null,"size":null}],"directories":["cart/x"],"next_cursor":""}"#;
        let page = ListBody::parse(body).unwrap().into_page();
        let keys: Vec<&str> = page.blobs.iter().map(|b| b.key.as_str()).collect();
        assert_eq!(keys, ["cart/42", "n"]);
        assert_eq!(page.blobs[0].etag.as_str(), "\"e1\"");
        assert_eq!(page.blobs[0].size, 2);
        assert_eq!(page.blobs[0].last_modified.as_millis(), 1_795_863_895_787);
        assert_eq!(page.blobs[1].last_modified.as_millis(), 0);
        assert_eq!(page.directories, ["cart/x"]);
        assert_eq!(page.next_cursor, None);
        let page = ListBody::parse(br#"{"next_cursor":"abc","blobs":null}"#)
            .unwrap()
            .into_page();
        assert!(page.blobs.is_empty() && page.directories.is_empty());
        assert_eq!(page.next_cursor.as_deref(), Some("abc"));
        assert_eq!(
            ListBody::parse(b"").err().map(|e| e.kind()),
            Some(ErrorKind::Protocol)
        );
    }

    #[test]
    fn what_the_server_writes_the_client_reads() {
        let page = ListPage {
            blobs: vec![ListEntry {
                key: "a b".into(),
                etag: Etag::new("\"e\""),
                size: 3,
                last_modified: Timestamp::from_millis(1_795_863_895_787),
            }],
            directories: vec!["d".into()],
            next_cursor: Some("c".into()),
        };
        let json = serde_json::to_string(&ListBody::from(page.clone())).unwrap();
        assert_eq!(
            json,
            r#"{"blobs":[{"etag":"\"e\"","key":"a b","last_modified":"2026-11-28T11:04:55.787Z","size":3}],"directories":["d"],"next_cursor":"c"}"#
        );
        assert_eq!(ListBody::parse(json.as_bytes()).unwrap().into_page(), page);
        let last = ListBody::default();
        assert_eq!(
            serde_json::to_string(&last).unwrap(),
            r#"{"blobs":[],"directories":[]}"#
        );
    }

    #[test]
    fn small_bodies() {
        let url = SignedUrl::parse(br#"{"url":"http://h/x?signature=s"}"#).unwrap();
        assert_eq!(url.url, "http://h/x?signature=s");
        assert_eq!(
            SignedUrl::parse(b"[]").unwrap_err().kind(),
            ErrorKind::Protocol
        );
        let stores = StoresBody {
            stores: vec![],
            next_cursor: None,
        };
        assert_eq!(serde_json::to_string(&stores).unwrap(), r#"{"stores":[]}"#);
        let deleted = DeleteStoreBody {
            blobs_deleted: 2,
            has_more: false,
        };
        assert_eq!(
            serde_json::to_string(&deleted).unwrap(),
            r#"{"blobs_deleted":2,"has_more":false}"#
        );
    }

    #[test]
    fn store_cursors_round_trip_and_reject_garbage() {
        for last in ["site:a", "deploy:d:x", ""] {
            assert_eq!(
                decode_store_cursor(&encode_store_cursor(last)).unwrap(),
                last
            );
        }
        for bad in ["!", "", "eA"] {
            assert_eq!(
                decode_store_cursor(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
    }
}
