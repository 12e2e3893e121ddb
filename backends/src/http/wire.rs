//! What travels in bodies and headers: list JSON, signed-URL JSON, metadata and dates.

use ::http::HeaderMap;
use blobjobs_store_api::{Error, ErrorKind, Etag, ListEntry, Metadata, Result, Timestamp};
use serde::Deserialize;

/// Metadata header of edge and signed-URL requests.
pub(crate) const AMZ_METADATA: &str = "x-amz-meta-user";
/// Metadata header of API step-1 requests; read first on responses.
pub(crate) const NETLIFY_METADATA: &str = "netlify-blobs-metadata";
/// The `accept` value that asks the API for a signed URL.
pub(crate) const SIGNED_URL_ACCEPT: &str = "application/json;type=signed-url";
/// The `cache-control` of every write, as the official client sends it.
pub(crate) const WRITE_CACHE_CONTROL: &str = "max-age=0, stale-while-revalidate=60";

/// A list response: `{"blobs":[…],"directories":[…],"next_cursor":…}`.
#[derive(Debug, Deserialize)]
pub(crate) struct WireList {
    #[serde(default)]
    blobs: Option<Vec<WireBlob>>,
    #[serde(default)]
    directories: Option<Vec<String>>,
    #[serde(default)]
    next_cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireBlob {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    last_modified: Option<String>,
}

/// One decoded list page: entries without a key are dropped like the official client does,
/// and an empty cursor means the last page.
pub(crate) struct ServerPage {
    pub(crate) blobs: Vec<ListEntry>,
    pub(crate) directories: Vec<String>,
    pub(crate) next_cursor: Option<String>,
}

pub(crate) fn parse_list(body: &[u8]) -> Result<ServerPage> {
    let wire: WireList = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("list response is not valid json: {e}"),
        )
    })?;
    let blobs = wire
        .blobs
        .unwrap_or_default()
        .into_iter()
        .filter_map(|b| {
            let key = b.key?;
            Some(ListEntry {
                key,
                etag: Etag::new(b.etag.unwrap_or_default()),
                size: b.size.unwrap_or(0),
                last_modified: b
                    .last_modified
                    .and_then(|t| Timestamp::parse_rfc3339(&t).ok())
                    .unwrap_or(Timestamp::from_millis(0)),
            })
        })
        .collect();
    Ok(ServerPage {
        blobs,
        directories: wire.directories.unwrap_or_default(),
        next_cursor: wire.next_cursor.filter(|c| !c.is_empty()),
    })
}

#[derive(Debug, Deserialize)]
struct WireSignedUrl {
    url: String,
}

pub(crate) fn parse_signed_url(body: &[u8]) -> Result<String> {
    serde_json::from_slice::<WireSignedUrl>(body)
        .map(|w| w.url)
        .map_err(|_| {
            Error::new(
                ErrorKind::Protocol,
                "signed url response is not {\"url\": …}",
            )
        })
}

/// A header as text, if present and visible ASCII.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The metadata of a response: `netlify-blobs-metadata` first, then `x-amz-meta-user`;
/// neither means empty metadata.
pub(crate) fn read_metadata(headers: &HeaderMap) -> Result<Metadata> {
    let value = headers
        .get(NETLIFY_METADATA)
        .or_else(|| headers.get(AMZ_METADATA));
    let Some(value) = value else {
        return Ok(Metadata::new());
    };
    let text = value
        .to_str()
        .map_err(|_| Error::new(ErrorKind::Protocol, "metadata header is not ascii"))?;
    Metadata::from_header(text).map_err(|e| {
        Error::new(
            ErrorKind::Protocol,
            format!("server sent undecodable metadata: {}", e.message()),
        )
    })
}

/// The `etag` header, or an empty ETag when the server sends none (the official
/// `BlobsServer` sends none on reads).
pub(crate) fn read_etag(headers: &HeaderMap) -> Etag {
    Etag::new(header(headers, "etag").unwrap_or(""))
}

/// `content-length`, if present.
pub(crate) fn read_length(headers: &HeaderMap) -> Option<u64> {
    header(headers, "content-length").and_then(|v| v.trim().parse().ok())
}

/// `last-modified` (an HTTP date), or the Unix epoch when absent or unreadable.
pub(crate) fn read_last_modified(headers: &HeaderMap) -> Timestamp {
    header(headers, "last-modified")
        .and_then(parse_http_date)
        .unwrap_or(Timestamp::from_millis(0))
}

/// Parses an IMF-fixdate such as `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn parse_http_date(text: &str) -> Option<Timestamp> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parts: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    let day: u32 = day.parse().ok()?;
    let year: u32 = year.parse().ok()?;
    Timestamp::parse_rfc3339(&format!("{year:04}-{month:02}-{day:02}T{time}Z")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_json_maps_to_entries() {
        let body = br#"{"blobs":[{"etag":"\"e1\"","key":"cart/42","last_modified":"2026-11-28T11:04:55.787Z","size":2},{"etag":"x"}],"directories":["cart/x"],"next_cursor":""}"#;
        let page = parse_list(body).unwrap();
        assert_eq!(page.blobs.len(), 1);
        assert_eq!(page.blobs[0].key, "cart/42");
        assert_eq!(page.blobs[0].etag.as_str(), "\"e1\"");
        assert_eq!(page.blobs[0].size, 2);
        assert_eq!(page.blobs[0].last_modified.as_millis(), 1_795_863_895_787);
        assert_eq!(page.directories, ["cart/x"]);
        assert_eq!(page.next_cursor, None);
        let page = parse_list(br#"{"next_cursor":"abc"}"#).unwrap();
        assert!(page.blobs.is_empty() && page.directories.is_empty());
        assert_eq!(page.next_cursor.as_deref(), Some("abc"));
        assert_eq!(
            parse_list(b"").err().map(|e| e.kind()),
            Some(ErrorKind::Protocol)
        );
    }

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Sat, 28 Nov 2026 11:04:55 GMT").unwrap();
        assert_eq!(t.as_millis(), 1_795_863_895_000);
        assert!(parse_http_date("yesterday").is_none());
    }

    #[test]
    fn metadata_prefers_the_netlify_header() {
        let mut headers = HeaderMap::new();
        headers.insert(AMZ_METADATA, "b64;eyJhIjoxfQ==".parse().unwrap());
        assert_eq!(read_metadata(&headers).unwrap().get("a"), Some(&1.into()));
        headers.insert(NETLIFY_METADATA, "b64;eyJiIjoyfQ==".parse().unwrap());
        assert_eq!(read_metadata(&headers).unwrap().get("b"), Some(&2.into()));
        headers.insert(NETLIFY_METADATA, "b64;!!".parse().unwrap());
        assert_eq!(
            read_metadata(&headers).unwrap_err().kind(),
            ErrorKind::Protocol
        );
    }
}
