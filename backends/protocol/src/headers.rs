//! Headers both ends read and write: their names, metadata, write conditions, ETags, HTTP
//! dates, the signed-URL `accept` value, rate limits and the error text of `x-nf-error`.
//!
//! Metadata travels as `b64;` + base64 of a JSON object ([`Metadata::to_header`]). The data
//! request of a write carries it in [`AMZ_METADATA`], the signed-URL request of API mode in
//! [`NETLIFY_METADATA`]; responses carry both, and the client reads [`NETLIFY_METADATA`]
//! first, as the official client does.

use std::time::{Duration, UNIX_EPOCH};

use blobjobs_store_api::{
    Condition, Error, ErrorKind, Etag, Metadata, Result, Timestamp, validate_metadata,
};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The metadata header of edge and signed-URL requests, and of every response.
pub const AMZ_METADATA: HeaderName = HeaderName::from_static("x-amz-meta-user");

/// The metadata header of API-mode step-1 requests, also sent on responses and read there
/// first.
pub const NETLIFY_METADATA: HeaderName = HeaderName::from_static("netlify-blobs-metadata");

/// The error text of a rejected request, which the official client puts in its errors.
pub const NF_ERROR: HeaderName = HeaderName::from_static("x-nf-error");

/// The Unix time (seconds) after which a rate-limited client may try again, sent with 429.
pub const RATE_LIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

/// The `accept` value with which API mode asks for a signed URL instead of the blob.
pub const SIGNED_URL_ACCEPT: &str = "application/json;type=signed-url";

/// The `cache-control` of every write, as the official client sends it.
pub const WRITE_CACHE_CONTROL: &str = "max-age=0, stale-while-revalidate=60";

/// The longest text put in [`NF_ERROR`], in characters.
pub const NF_ERROR_MAX_CHARS: usize = 200;

/// A header as text, if present and visible ASCII.
pub fn text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Metadata as a header value; [`ErrorKind::InvalidInput`] if it cannot be one.
pub fn metadata_value(metadata: &Metadata) -> Result<HeaderValue> {
    HeaderValue::from_str(&metadata.to_header())
        .map_err(|_| Error::invalid("metadata does not fit in a header"))
}

/// The metadata of a response, as the client reads it: [`NETLIFY_METADATA`] first, then
/// [`AMZ_METADATA`]; neither means empty metadata. Undecodable metadata is
/// [`ErrorKind::Protocol`]: the server broke the protocol.
pub fn response_metadata(headers: &HeaderMap) -> Result<Metadata> {
    let Some(value) = headers
        .get(NETLIFY_METADATA)
        .or_else(|| headers.get(AMZ_METADATA))
    else {
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

/// The metadata of a write request, as the server reads it: [`AMZ_METADATA`] (the data
/// request) or else [`NETLIFY_METADATA`] (API step 1). Anything but `b64;` + base64 of a
/// JSON object within the size limit is [`ErrorKind::InvalidInput`].
pub fn request_metadata(headers: &HeaderMap) -> Result<Option<Metadata>> {
    let Some(value) = headers
        .get(AMZ_METADATA)
        .or_else(|| headers.get(NETLIFY_METADATA))
    else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| Error::invalid("metadata header is not ascii"))?;
    if !text.starts_with("b64;") {
        return Err(Error::invalid(
            "metadata header must be b64;<base64 of a json object>",
        ));
    }
    let metadata = Metadata::from_header(text)?;
    validate_metadata(&metadata)?;
    Ok(Some(metadata))
}

/// Puts a write's condition into `headers`: `if-none-match: *` for [`Condition::IfNew`],
/// `if-match: <etag>` for [`Condition::IfMatch`], nothing for [`Condition::Always`].
pub fn insert_condition(headers: &mut HeaderMap, condition: &Condition) -> Result<()> {
    match condition {
        Condition::Always => {}
        Condition::IfNew => {
            headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        }
        Condition::IfMatch(etag) => {
            let value = HeaderValue::from_str(etag.as_str())
                .map_err(|_| Error::invalid("the etag is not a valid header value"))?;
            headers.insert(header::IF_MATCH, value);
        }
    }
    Ok(())
}

/// The condition of a write request, as the server reads it. `if-match` needs one ETag, a
/// write's `if-none-match` may only be `*`, and the two cannot be combined.
pub fn read_condition(headers: &HeaderMap) -> Result<Condition> {
    let value = |name: HeaderName| -> Result<Option<String>> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.trim().to_owned()))
                .map_err(|_| Error::invalid("conditional header is not ascii")),
        }
    };
    match (value(header::IF_MATCH)?, value(header::IF_NONE_MATCH)?) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "if-match and if-none-match cannot be combined",
        )),
        (Some(etag), None) if etag.is_empty() || etag == "*" => {
            Err(Error::invalid("if-match needs one etag"))
        }
        (Some(etag), None) => Ok(Condition::IfMatch(Etag::new(etag))),
        (None, Some(star)) if star == "*" => Ok(Condition::IfNew),
        (None, Some(_)) => Err(Error::invalid(
            "on a write, if-none-match supports only '*'",
        )),
        (None, None) => Ok(Condition::Always),
    }
}

/// Whether a read's `if-none-match` names `current` (or is `*`), so the server answers 304.
/// A weak validator (`W/"…"`) matches its strong ETag; lists are split at commas.
pub fn none_match(headers: &HeaderMap, current: &Etag) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == current.as_str())
}

/// The `etag` of a response, or an empty ETag when the server sends none (the official
/// `BlobsServer` sends none on reads). ETags travel exactly as the server made them, quotes
/// included.
pub fn read_etag(headers: &HeaderMap) -> Etag {
    Etag::new(text(headers, header::ETAG).unwrap_or(""))
}

/// Puts `etag` in the `etag` header, if it is a valid header value.
pub fn insert_etag(headers: &mut HeaderMap, etag: &Etag) {
    if let Ok(value) = HeaderValue::from_str(etag.as_str()) {
        headers.insert(header::ETAG, value);
    }
}

/// `content-length`, if present and a number.
pub fn read_length(headers: &HeaderMap) -> Option<u64> {
    text(headers, header::CONTENT_LENGTH).and_then(|v| v.trim().parse().ok())
}

/// `t` as an IMF-fixdate (RFC 9110 §5.6.7), such as `Sun, 06 Nov 1994 08:49:37 GMT`, the form
/// HTTP requires for `last-modified`. Milliseconds are dropped. `None` past the year 9999,
/// which has no IMF-fixdate.
pub fn http_date(t: Timestamp) -> Option<String> {
    /// 10000-01-01T00:00:00Z in Unix seconds.
    const YEAR_10000: u64 = 253_402_300_800;
    let secs = t.as_millis() / 1000;
    if secs >= YEAR_10000 {
        return None;
    }
    Some(httpdate::fmt_http_date(
        UNIX_EPOCH + Duration::from_secs(secs),
    ))
}

/// Parses an HTTP date (IMF-fixdate, or the obsolete RFC 850 and asctime forms).
pub fn parse_http_date(text: &str) -> Option<Timestamp> {
    let time = httpdate::parse_http_date(text).ok()?;
    let millis = time.duration_since(UNIX_EPOCH).ok()?.as_millis();
    Some(Timestamp::from_millis(u64::try_from(millis).ok()?))
}

/// `last-modified` of a response, or the Unix epoch when absent or unreadable.
pub fn read_last_modified(headers: &HeaderMap) -> Timestamp {
    text(headers, header::LAST_MODIFIED)
        .and_then(parse_http_date)
        .unwrap_or(Timestamp::from_millis(0))
}

/// Puts `t` in `last-modified`, if it has an HTTP date.
pub fn insert_last_modified(headers: &mut HeaderMap, t: Timestamp) {
    if let Some(value) = http_date(t).and_then(|d| HeaderValue::from_str(&d).ok()) {
        headers.insert(header::LAST_MODIFIED, value);
    }
}

/// Whether a request's `accept` asks for a signed URL: [`SIGNED_URL_ACCEPT`], matched
/// case-insensitively, ignoring spaces, also inside a list.
pub fn accepts_signed_url(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            compact.eq_ignore_ascii_case(SIGNED_URL_ACCEPT)
        })
}

/// [`RATE_LIMIT_RESET`] of a response, in Unix seconds.
pub fn rate_limit_reset(headers: &HeaderMap) -> Option<u64> {
    text(headers, RATE_LIMIT_RESET).and_then(|v| v.trim().parse().ok())
}

/// [`NF_ERROR`] of a response.
pub fn nf_error(headers: &HeaderMap) -> Option<&str> {
    text(headers, NF_ERROR)
}

/// Puts `message` in [`NF_ERROR`], with anything that cannot travel in a header replaced by
/// `?` and cut to [`NF_ERROR_MAX_CHARS`].
pub fn insert_nf_error(headers: &mut HeaderMap, message: &str) {
    let safe: String = message
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .take(NF_ERROR_MAX_CHARS)
        .collect();
    if let Ok(value) = HeaderValue::from_str(&safe) {
        headers.insert(NF_ERROR, value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn at(rfc: &str) -> Option<String> {
        Timestamp::parse_rfc3339(rfc).ok().and_then(http_date)
    }

    #[test]
    fn http_dates_are_imf_fixdates() {
        assert_eq!(
            at("1994-11-06T08:49:37.999Z").as_deref(),
            Some("Sun, 06 Nov 1994 08:49:37 GMT")
        );
        assert_eq!(
            http_date(Timestamp::from_millis(0)).as_deref(),
            Some("Thu, 01 Jan 1970 00:00:00 GMT")
        );
        assert_eq!(
            at("2000-02-29T23:59:59Z").as_deref(),
            Some("Tue, 29 Feb 2000 23:59:59 GMT")
        );
        assert_eq!(
            at("2026-11-28T11:04:55.787Z").as_deref(),
            Some("Sat, 28 Nov 2026 11:04:55 GMT")
        );
        assert_eq!(
            at("9999-12-31T23:59:59Z").as_deref(),
            Some("Fri, 31 Dec 9999 23:59:59 GMT")
        );
        // Past year 9999 there is no IMF-fixdate.
        assert_eq!(at("10000-01-01T00:00:00Z"), None);
    }

    #[test]
    fn http_dates_parse() {
        let t = parse_http_date("Sat, 28 Nov 2026 11:04:55 GMT").unwrap();
        assert_eq!(t.as_millis(), 1_795_863_895_000);
        assert!(parse_http_date("yesterday").is_none());
        let mut headers = HeaderMap::new();
        assert_eq!(read_last_modified(&headers).as_millis(), 0);
        insert_last_modified(&mut headers, t);
        assert_eq!(read_last_modified(&headers), t);
    }

    #[test]
    fn response_metadata_prefers_the_netlify_header() {
        let mut headers = HeaderMap::new();
        headers.insert(AMZ_METADATA, "b64;eyJhIjoxfQ==".parse().unwrap());
        assert_eq!(
            response_metadata(&headers).unwrap().get("a"),
            Some(&1.into())
        );
        headers.insert(NETLIFY_METADATA, "b64;eyJiIjoyfQ==".parse().unwrap());
        assert_eq!(
            response_metadata(&headers).unwrap().get("b"),
            Some(&2.into())
        );
        headers.insert(NETLIFY_METADATA, "b64;!!".parse().unwrap());
        assert_eq!(
            response_metadata(&headers).unwrap_err().kind(),
            ErrorKind::Protocol
        );
    }

    #[test]
    fn request_metadata_prefers_the_data_header_and_is_strict() {
        let mut headers = HeaderMap::new();
        assert_eq!(request_metadata(&headers).unwrap(), None);
        headers.insert(NETLIFY_METADATA, "b64;eyJiIjoyfQ==".parse().unwrap());
        let meta = request_metadata(&headers).unwrap().unwrap();
        assert_eq!(meta.get("b"), Some(&2.into()));
        headers.insert(
            AMZ_METADATA,
            metadata_value(&Metadata::from_pairs([("a", 1)])).unwrap(),
        );
        let meta = request_metadata(&headers).unwrap().unwrap();
        assert_eq!(meta.get("a"), Some(&1.into()));
        headers.insert(AMZ_METADATA, "plain".parse().unwrap());
        assert_eq!(
            request_metadata(&headers).unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn conditions_round_trip_through_headers() {
        for condition in [
            Condition::Always,
            Condition::IfNew,
            Condition::IfMatch(Etag::new("\"e1\"")),
        ] {
            let mut headers = HeaderMap::new();
            insert_condition(&mut headers, &condition).unwrap();
            assert_eq!(read_condition(&headers).unwrap(), condition);
        }
        let mut both = HeaderMap::new();
        both.insert(header::IF_MATCH, "\"e\"".parse().unwrap());
        both.insert(header::IF_NONE_MATCH, "*".parse().unwrap());
        assert!(read_condition(&both).is_err());
        let mut star = HeaderMap::new();
        star.insert(header::IF_MATCH, "*".parse().unwrap());
        assert!(read_condition(&star).is_err());
        let mut tag = HeaderMap::new();
        tag.insert(header::IF_NONE_MATCH, "\"e\"".parse().unwrap());
        assert!(read_condition(&tag).is_err());
    }

    #[test]
    fn etags_match_reads_strongly_and_weakly() {
        let etag = Etag::new("\"abc\"");
        let mut headers = HeaderMap::new();
        assert!(!none_match(&headers, &etag));
        insert_etag(&mut headers, &etag);
        assert_eq!(read_etag(&headers), etag);
        let mut conditional = HeaderMap::new();
        conditional.insert(header::IF_NONE_MATCH, "\"x\", W/\"abc\"".parse().unwrap());
        assert!(none_match(&conditional, &etag));
        conditional.insert(header::IF_NONE_MATCH, "\"x\"".parse().unwrap());
        assert!(!none_match(&conditional, &etag));
        assert_eq!(read_etag(&HeaderMap::new()).as_str(), "");
    }

    #[test]
    fn small_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            "text/html, Application/JSON; type=signed-url"
                .parse()
                .unwrap(),
        );
        assert!(accepts_signed_url(&headers));
        headers.insert(RATE_LIMIT_RESET, " 1700000000 ".parse().unwrap());
        assert_eq!(rate_limit_reset(&headers), Some(1_700_000_000));
        headers.insert(header::CONTENT_LENGTH, "12".parse().unwrap());
        assert_eq!(read_length(&headers), Some(12));
        insert_nf_error(&mut headers, "bad key \"ü\"\n");
        assert_eq!(nf_error(&headers), Some("bad key \"?\"?"));
    }
}
