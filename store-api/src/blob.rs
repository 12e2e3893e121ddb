//! The `BlobStore` trait: one named store of keys, each with a value, metadata and an ETag.

use std::fmt;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, ErrorKind, Result};

/// A stream of value chunks, used to move large values without holding them in memory.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send + 'static>>;

/// An opaque entity tag that identifies one written version of one key.
///
/// Backends guarantee that the ETag changes on every successful write and never repeats for
/// different content of a key. The string is kept exactly as it travels in HTTP headers,
/// quotes included (for example `"3f2a…"`), so it can be compared byte for byte.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Etag(String);

impl Etag {
    /// Wraps a header value as an ETag, unchanged.
    pub fn new(value: impl Into<String>) -> Self {
        Etag(value.into())
    }

    /// A fresh quoted ETag made of 128 random bits, unique for every write.
    pub fn random() -> Result<Self> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| Error::new(ErrorKind::Io, format!("no randomness for an etag: {e}")))?;
        let mut s = String::with_capacity(34);
        s.push('"');
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        s.push('"');
        Ok(Etag(s))
    }

    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Etag({})", self.0)
    }
}

impl fmt::Display for Etag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// User metadata of a blob: a JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// Empty metadata (`{}`).
    pub fn new() -> Self {
        Metadata(Map::new())
    }

    /// Metadata from string pairs, convenient in tests and examples.
    pub fn from_pairs<K: Into<String>, V: Into<Value>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Metadata(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// Wraps a JSON object.
    pub fn from_map(map: Map<String, Value>) -> Self {
        Metadata(map)
    }

    /// Parses JSON text, which must be an object.
    pub fn from_json(text: &str) -> Result<Self> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Metadata(map)),
            Ok(_) => Err(Error::invalid("metadata must be a JSON object")),
            Err(e) => Err(Error::invalid(format!("metadata is not valid JSON: {e}"))),
        }
    }

    /// Compact JSON text.
    pub fn to_json(&self) -> String {
        // Serializing a map of JSON values cannot fail.
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    /// The wire encoding used in `x-amz-meta-user` and `netlify-blobs-metadata`:
    /// `b64;` followed by standard base64 of the JSON text.
    pub fn to_header(&self) -> String {
        format!("b64;{}", STANDARD.encode(self.to_json()))
    }

    /// Decodes a metadata header. A value without the `b64;` prefix means empty metadata, as in
    /// the official client; a `b64;` value that is not base64 of a JSON object is an error.
    pub fn from_header(value: &str) -> Result<Self> {
        let Some(encoded) = value.strip_prefix("b64;") else {
            return Ok(Metadata::new());
        };
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| Error::invalid("metadata header is not valid base64"))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::invalid("metadata header is not UTF-8 JSON"))?;
        Metadata::from_json(text)
    }

    /// The JSON object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The JSON object, mutably.
    pub fn as_map_mut(&mut self) -> &mut Map<String, Value> {
        &mut self.0
    }

    /// One field.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A point in time with millisecond precision, as listings report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(u64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// The current wall-clock time.
    pub fn now() -> Self {
        Timestamp::from(SystemTime::now())
    }

    /// Milliseconds since the Unix epoch.
    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// RFC 3339 in UTC with milliseconds, such as `2026-11-28T11:04:55.787Z`.
    pub fn to_rfc3339(self) -> String {
        let ms = self.0 % 1000;
        let secs = self.0 / 1000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
            rem / 3600,
            (rem / 60) % 60,
            rem % 60
        )
    }

    /// Parses the form written by [`Timestamp::to_rfc3339`] (fraction optional, `Z` only).
    pub fn parse_rfc3339(text: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("not an RFC 3339 UTC timestamp: {text:?}"));
        let t = text.strip_suffix('Z').ok_or_else(bad)?;
        let (date, time) = t.split_once('T').ok_or_else(bad)?;
        let mut dp = date.splitn(3, '-');
        let num = |s: Option<&str>| s.and_then(|s| s.parse::<i64>().ok()).ok_or_else(bad);
        let (y, mo, d) = (num(dp.next())?, num(dp.next())?, num(dp.next())?);
        let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
        let mut tp = hms.splitn(3, ':');
        let (h, mi, s) = (num(tp.next())?, num(tp.next())?, num(tp.next())?);
        let frac3: String = frac.chars().chain("000".chars()).take(3).collect();
        let ms: i64 = frac3.parse().map_err(|_| bad())?;
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || s > 60 {
            return Err(bad());
        }
        let days = days_from_civil(y, mo as u32, d as u32);
        let total = ((days * 86_400 + h * 3600 + mi * 60 + s) * 1000) + ms;
        u64::try_from(total).map(Timestamp).map_err(|_| bad())
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let ms = t
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_millis();
        Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
    }
}

// Howard Hinnant's civil-date algorithms, for days since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What a store knows about one key apart from its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The ETag of the current version.
    pub etag: Etag,
    /// The user metadata stored with it.
    pub metadata: Metadata,
    /// The value's length in bytes.
    pub size: u64,
    /// When the current version was written.
    pub last_modified: Timestamp,
}

/// A value with its [`BlobInfo`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The bytes, exactly as written.
    pub value: Bytes,
    /// ETag, metadata, size and time.
    pub info: BlobInfo,
}

/// When a `set` may write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Condition {
    /// Always write.
    #[default]
    Always,
    /// Write only if the key does not exist (`if-none-match: *`).
    IfNew,
    /// Write only if the key exists with exactly this ETag (`if-match`).
    IfMatch(Etag),
}

/// Options of a `set`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetOptions {
    /// Metadata stored with the value; it replaces any previous metadata.
    pub metadata: Metadata,
    /// The write condition.
    pub condition: Condition,
}

impl SetOptions {
    /// Unconditional write with empty metadata.
    pub fn new() -> Self {
        SetOptions::default()
    }

    /// Sets the metadata.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets the condition.
    pub fn condition(mut self, condition: Condition) -> Self {
        self.condition = condition;
        self
    }

    /// Shorthand for [`Condition::IfNew`].
    pub fn if_new(self) -> Self {
        self.condition(Condition::IfNew)
    }

    /// Shorthand for [`Condition::IfMatch`].
    pub fn if_match(self, etag: Etag) -> Self {
        self.condition(Condition::IfMatch(etag))
    }
}

/// What a `set` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetOutcome {
    /// The value was written (and, for durable backends, is durable) with this new ETag.
    Written {
        /// The ETag of the version just written.
        etag: Etag,
    },
    /// The condition did not hold; nothing was written.
    ConditionFailed,
}

impl SetOutcome {
    /// Whether the value was written.
    pub fn is_written(&self) -> bool {
        matches!(self, SetOutcome::Written { .. })
    }

    /// The new ETag, if the value was written.
    pub fn etag(&self) -> Option<&Etag> {
        match self {
            SetOutcome::Written { etag } => Some(etag),
            SetOutcome::ConditionFailed => None,
        }
    }
}

/// Options of a `list`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys that start with this string (empty for all).
    pub prefix: String,
    /// Collapse keys that have a `/` after the prefix into directory names, as a file
    /// browser would: with prefix `cart/`, `cart/a/1` and `cart/a/2` become directory
    /// `cart/a`.
    pub directories: bool,
    /// The `next_cursor` of the previous page, or `None` for the first page.
    pub cursor: Option<String>,
    /// The largest number of entries (blobs plus directories) in one page;
    /// `None` means [`crate::list::DEFAULT_PAGE_SIZE`].
    pub page_size: Option<usize>,
}

impl ListOptions {
    /// All keys, first page.
    pub fn new() -> Self {
        ListOptions::default()
    }

    /// Sets the prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Turns on directories mode.
    pub fn directories(mut self, on: bool) -> Self {
        self.directories = on;
        self
    }

    /// Sets the cursor.
    pub fn cursor(mut self, cursor: Option<String>) -> Self {
        self.cursor = cursor;
        self
    }

    /// Sets the page size.
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n);
        self
    }
}

/// One blob in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// The key.
    pub key: String,
    /// Its current ETag (the same one `get` and `get_metadata` report).
    pub etag: Etag,
    /// Its value's length in bytes.
    pub size: u64,
    /// When it was last written.
    pub last_modified: Timestamp,
}

/// One page of a listing, in ascending key order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Blobs on this page.
    pub blobs: Vec<ListEntry>,
    /// Directory names on this page (directories mode only), without a trailing `/`.
    pub directories: Vec<String>,
    /// Pass this back to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One named store of keys with values, metadata and ETags.
///
/// Implementations validate keys with [`crate::validate_key`] and metadata with
/// [`crate::validate_metadata`] and return [`ErrorKind::InvalidInput`] for bad input.
/// A handle is cheap to share (`Arc<dyn BlobStore>`); whether two handles see each other's
/// writes is the backend's defining property (the memory backend's do not).
#[async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// The value, metadata and ETag of `key`, or `None` if it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Blob>>;

    /// The metadata and ETag of `key` without its value, or `None` if it does not exist.
    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>>;

    /// Writes `value` under `key` if `options.condition` holds. Value and metadata change
    /// together; a reader sees either the old version or the new one.
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome>;

    /// Removes `key`. Removing a key that does not exist is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// One page of keys in ascending order (see [`ListOptions`]).
    async fn list(&self, options: ListOptions) -> Result<ListPage>;

    /// Like [`BlobStore::get`] but hands the value over as a stream. The default reads the
    /// whole value; backends that can stream override it.
    async fn get_stream(&self, key: &str) -> Result<Option<(BlobInfo, ByteStream)>> {
        Ok(self.get(key).await?.map(|blob| {
            let value = blob.value;
            let stream: ByteStream = Box::pin(Once(Some(Ok(value))));
            (blob.info, stream)
        }))
    }

    /// Like [`BlobStore::set`] but takes the value as a stream. `max_size` bounds the value;
    /// a longer stream fails with [`ErrorKind::TooLarge`] and writes nothing. The default
    /// collects the stream in memory; backends that can stream override it.
    async fn set_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let value = crate::stream::read_all(body, max_size).await?;
        self.set(key, value, options).await
    }
}

/// A stream of at most one item.
struct Once(Option<Result<Bytes>>);

impl Stream for Once {
    type Item = Result<Bytes>;
    fn poll_next(
        mut self: Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.take())
    }
}

/// A stream holding `bytes` as its only chunk.
pub fn once_stream(bytes: Bytes) -> ByteStream {
    Box::pin(Once(Some(Ok(bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_header_round_trip() {
        let m = Metadata::from_pairs([("user", "ü")]);
        let h = m.to_header();
        assert_eq!(h, "b64;eyJ1c2VyIjoiw7wifQ==");
        assert_eq!(Metadata::from_header(&h).unwrap(), m);
        assert_eq!(Metadata::new().to_header(), "b64;e30=");
        assert!(Metadata::from_header("plain").unwrap().is_empty());
        assert_eq!(
            Metadata::from_header("b64;!!!").unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        // An array is valid JSON but not an object.
        assert!(Metadata::from_header("b64;WzFd").is_err());
    }

    #[test]
    fn timestamps_round_trip() {
        let t = Timestamp::from_millis(1_795_863_895_787);
        let s = t.to_rfc3339();
        assert_eq!(s, "2026-11-28T11:04:55.787Z");
        assert_eq!(Timestamp::parse_rfc3339(&s).unwrap(), t);
        assert_eq!(
            Timestamp::parse_rfc3339("1970-01-01T00:00:00Z").unwrap(),
            Timestamp::from_millis(0)
        );
        assert!(Timestamp::parse_rfc3339("yesterday").is_err());
    }

    #[test]
    fn random_etags_are_quoted_and_distinct() {
        let a = Etag::random().unwrap();
        let b = Etag::random().unwrap();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with('"') && a.as_str().ends_with('"'));
        assert_eq!(a.as_str().len(), 34);
    }
}
