//! Keys, names and query parameters in URLs: how the client writes them and how the server
//! reads them back, so that every valid key survives the trip unchanged.
//!
//! # Paths
//!
//! The official client concatenates `/<site>/<store>/<key>` and lets the WHATWG URL parser
//! clean it up, which silently changes some keys (`a?b` loses `?b`, `x/../y` becomes `y`,
//! `a b` and `a%20b` collide). The client here writes the same bytes as the official client
//! for every key that client handles correctly, and percent-encodes the rest, so a server
//! that percent-decodes the path exactly once (as the emulator does with
//! [`decode_segment`]) recovers every valid key unchanged. In a path segment
//! ([`PATH_SEGMENT`]):
//!
//! * `%` itself, `?` and `#` (which would end the path), `\` (which URL parsers read as
//!   `/`), space, the C0 controls and DEL, and every non-ASCII byte (as UTF-8) are encoded,
//!   as are `"`, `<`, `>`, `^`, `` ` ``, `{` and `}`, which the URL parser would also encode
//!   or reject;
//! * a segment that is exactly `.` or `..` is sent as `%2E` or `%2E%2E`, so nothing on the
//!   way resolves it as a relative path;
//! * `/` stays a separator inside a key, and everything else (`+`, `;`, `*`, `:`, `@`, `!`,
//!   `$`, `&`, `'`, `(`, `)`, `,`, `=`, `[`, `]`, `|`, `~`) is sent literally, like the
//!   official client does.
//!
//! Site IDs, store names and the region segment are single segments: a `/` inside them is
//! sent as `%2F`.
//!
//! The server decodes leniently, as the WHATWG URL standard does: a `%` that is not followed
//! by two hex digits stays literal, because the official client sends a key such as `100%`
//! unencoded. The decoded text must be UTF-8.
//!
//! # Queries
//!
//! Query values are encoded more strictly ([`QUERY_VALUE`]): only ASCII letters, digits and
//! `*-._` stay literal, and a space is written `%20` (not `+`), which form decoders and
//! plain percent decoders read the same way. The server form-decodes them (`+` is a space,
//! as `URLSearchParams` writes it), then percent-decodes once; the result must be UTF-8.

use std::borrow::Cow;

use blobjobs_store_api::{Error, Result};
use percent_encoding::{
    AsciiSet, CONTROLS, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode,
};

/// The path prefix of API mode: `{apiURL}/api/v1/blobs/{site}/{store}/{key}`.
pub const API_PREFIX: &str = "/api/v1/blobs";

/// The prefix of the optional first segment of an edge path that names a region:
/// `/region:us-east-2/{site}/…`.
pub const REGION_PREFIX: &str = "region:";

/// The bytes escaped in a path segment besides non-ASCII ones (see the module docs).
pub const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The bytes escaped in a query value: all but ASCII letters, digits and `*-._`.
pub const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

/// Appends one segment (no `/` inside) to `out`, escaped.
fn push_escaped_segment(out: &mut String, segment: &str) {
    match segment {
        "." => out.push_str("%2E"),
        ".." => out.push_str("%2E%2E"),
        _ => out.extend(utf8_percent_encode(segment, PATH_SEGMENT)),
    }
}

/// Appends `/` and `key` as path segments, keeping the `/`s of the key as separators.
pub fn push_key(out: &mut String, key: &str) {
    out.push('/');
    for (i, segment) in key.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        push_escaped_segment(out, segment);
    }
}

/// Appends `/` and `text` as a single path segment: a `/` inside is escaped as `%2F`.
pub fn push_segment(out: &mut String, text: &str) {
    out.push('/');
    for (i, part) in text.split('/').enumerate() {
        if i > 0 {
            out.push_str("%2F");
        }
        push_escaped_segment(out, part);
    }
}

/// Appends the region segment `/region:<region>`.
pub fn push_region(out: &mut String, region: &str) {
    push_segment(out, &format!("{REGION_PREFIX}{region}"));
}

/// Drops a leading `/region:R` segment of an edge path.
pub fn strip_region(path: &str) -> &str {
    let Some(rest) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_prefix(REGION_PREFIX))
    else {
        return path;
    };
    match rest.find('/') {
        Some(i) => &rest[i..],
        None => "",
    }
}

/// Percent-decodes one path part (a site, a store or a whole key) once; `+` stays a `+`.
/// The result must be UTF-8.
pub fn decode_segment(raw: &str) -> Result<String> {
    utf8(percent_decode_str(raw).decode_utf8())
}

/// Decodes `%XX` sequences once into bytes, leaving a `%` without two hex digits as it is.
pub fn percent_decode(text: &str) -> Vec<u8> {
    percent_decode_str(text).collect()
}

/// Percent-encodes a query value (see [`QUERY_VALUE`]).
pub fn encode_query_value(value: &str) -> String {
    utf8_percent_encode(value, QUERY_VALUE).to_string()
}

/// Form-decodes a query value: `+` is a space, then `%XX` is decoded once. The result must
/// be UTF-8.
pub fn decode_query_value(raw: &str) -> Result<String> {
    let spaced = raw.replace('+', " ");
    utf8(percent_decode_str(&spaced).decode_utf8()).map(|s| s.to_owned())
}

fn utf8(decoded: std::result::Result<Cow<'_, str>, std::str::Utf8Error>) -> Result<String> {
    decoded
        .map(Cow::into_owned)
        .map_err(|_| Error::invalid("percent-decoded text is not valid utf-8"))
}

/// The query parameters of the protocol. Both ends use this one type: the client encodes
/// it ([`Query::encode`]) and the server parses it ([`Query::parse`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `prefix` of a key or store listing; empty means none.
    pub prefix: String,
    /// `directories=true` of a key listing.
    pub directories: bool,
    /// `cursor` of a listing page after the first.
    pub cursor: Option<String>,
    /// `expires` of a signed URL (Unix seconds, as sent).
    pub expires: Option<String>,
    /// `signature` of a signed URL (hex, as sent).
    pub signature: Option<String>,
    /// `region` of API mode. A server with one region ignores it.
    pub region: Option<String>,
}

impl Query {
    /// The query string, `?a=1&b=2`, or empty when nothing is set. Parameters are written in
    /// a fixed order (`prefix`, `directories`, `cursor`, `expires`, `signature`, `region`),
    /// which puts `region` last, as the official client does.
    pub fn encode(&self) -> String {
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        if !self.prefix.is_empty() {
            pairs.push(("prefix", &self.prefix));
        }
        if self.directories {
            pairs.push(("directories", "true"));
        }
        let optional = [
            ("cursor", &self.cursor),
            ("expires", &self.expires),
            ("signature", &self.signature),
            ("region", &self.region),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                pairs.push((name, value));
            }
        }
        let mut out = String::new();
        for (i, (name, value)) in pairs.into_iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(name);
            out.push('=');
            out.extend(utf8_percent_encode(value, QUERY_VALUE));
        }
        out
    }

    /// Parses a query string (without the `?`). Values are form-decoded and must be UTF-8;
    /// `directories` must be `true`, `false` or empty. Unknown parameters are ignored, and so
    /// is a `region` that does not decode, since a server with one region never reads it.
    pub fn parse(query: Option<&str>) -> Result<Query> {
        let mut out = Query::default();
        let Some(query) = query else {
            return Ok(out);
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = || decode_query_value(value);
            match name {
                "prefix" => out.prefix = value()?,
                "directories" => {
                    out.directories = match value()?.as_str() {
                        "true" => true,
                        "false" | "" => false,
                        _ => return Err(Error::invalid("directories must be true or false")),
                    }
                }
                "cursor" => out.cursor = Some(value()?),
                "expires" => out.expires = Some(value()?),
                "signature" => out.signature = Some(value()?),
                "region" => out.region = value().ok(),
                _ => {}
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use proptest::prelude::*;

    fn key_path(key: &str) -> String {
        let mut out = String::new();
        push_key(&mut out, key);
        out
    }

    #[test]
    fn keys_the_official_client_handles_are_sent_the_same_way() {
        assert_eq!(key_path("cart/42"), "/cart/42");
        assert_eq!(key_path("dir/sub/c"), "/dir/sub/c");
        assert_eq!(key_path("a b"), "/a%20b");
        assert_eq!(key_path("ü"), "/%C3%BC");
        assert_eq!(
            key_path("a+b;c*d:e@f!$&'(),=~|[]"),
            "/a+b;c*d:e@f!$&'(),=~|[]"
        );
    }

    #[test]
    fn keys_the_official_client_mangles_are_escaped() {
        assert_eq!(key_path("a?b"), "/a%3Fb");
        assert_eq!(key_path("a#b"), "/a%23b");
        assert_eq!(key_path("a%20b"), "/a%2520b");
        assert_eq!(key_path("x/../y"), "/x/%2E%2E/y");
        assert_eq!(key_path("./a/."), "/%2E/a/%2E");
        assert_eq!(key_path("a\\b"), "/a%5Cb");
        assert_eq!(key_path("...."), "/....");
        assert_eq!(key_path("\u{7f}\t\"<>^`{}"), "/%7F%09%22%3C%3E%5E%60%7B%7D");
    }

    #[test]
    fn every_escaped_path_is_a_valid_uri_and_decodes_back() {
        let mut keys: Vec<String> = (1u8..0x80)
            .map(|b| format!("k{}z", char::from(b)))
            .collect();
        keys.extend(
            [
                "a b",
                "a%20b",
                "%",
                "%%",
                "%zz",
                "ü/é/😀",
                "x/../y",
                ".",
                "..",
                "a//b",
                "tab\tx",
            ]
            .map(String::from),
        );
        for key in keys {
            let path = format!("/site/site:s{}", key_path(&key));
            let uri: http::Uri = format!("http://127.0.0.1:1{path}")
                .parse()
                .unwrap_or_else(|e| panic!("{key:?}: {e}"));
            assert_eq!(uri.path(), path, "{key:?}");
            assert!(uri.query().is_none(), "{key:?}");
            assert_eq!(
                percent_decode(&key_path(&key)[1..]),
                key.as_bytes(),
                "{key:?}"
            );
        }
    }

    #[test]
    fn single_segments_escape_slashes_and_regions_strip() {
        let mut out = String::new();
        push_segment(&mut out, "site:a/b");
        push_region(&mut out, "us-east-2");
        assert_eq!(out, "/site:a%2Fb/region:us-east-2");
        assert_eq!(strip_region("/region:dev/s/site:x/k"), "/s/site:x/k");
        assert_eq!(strip_region("/region:x"), "");
        assert_eq!(strip_region("/s/region:x"), "/s/region:x");
    }

    #[test]
    fn the_server_decodes_once_and_leniently() {
        assert_eq!(decode_segment("a%2520b").unwrap(), "a%20b");
        assert_eq!(decode_segment("%C3%BC/dir/").unwrap(), "ü/dir/");
        assert_eq!(decode_segment("100%").unwrap(), "100%");
        assert_eq!(decode_segment("%zz%4").unwrap(), "%zz%4");
        assert_eq!(decode_segment("a+b").unwrap(), "a+b");
        assert!(decode_segment("%FF").is_err());
        assert_eq!(decode_query_value("a+b%2B").unwrap(), "a b+");
    }

    #[test]
    fn queries_encode_strictly_and_parse_back() {
        let list = Query {
            prefix: "cart/".into(),
            directories: true,
            region: Some("auto".into()),
            ..Query::default()
        };
        assert_eq!(
            list.encode(),
            "?prefix=cart%2F&directories=true&region=auto"
        );
        assert_eq!(Query::default().encode(), "");
        assert_eq!(
            encode_query_value("a b+c&d=e?ü"),
            "a%20b%2Bc%26d%3De%3F%C3%BC"
        );
        let q = Query::parse(Some(
            "prefix=cart%2F&directories=true&cursor=abc&region=auto",
        ))
        .unwrap();
        assert_eq!(q.prefix, "cart/");
        assert!(q.directories);
        assert_eq!(q.cursor.as_deref(), Some("abc"));
        assert_eq!(Query::parse(Some("prefix=a+b")).unwrap().prefix, "a b");
        assert!(Query::parse(Some("directories=yes")).is_err());
        assert!(Query::parse(Some("prefix=%FF")).is_err());
        assert_eq!(
            Query::parse(Some("region=%FF&x")).unwrap(),
            Query::default()
        );
        assert_eq!(Query::parse(None).unwrap(), Query::default());
    }

    proptest! {
        /// The one round trip both ends rely on: whatever the client writes, the server reads
        /// back exactly, and the URL stays a valid URI with no query.
        #[test]
        fn keys_and_queries_round_trip(
            key in "\\PC{1,40}",
            prefix in "\\PC{0,20}",
            cursor in proptest::option::of("\\PC{0,20}"),
            directories in any::<bool>(),
        ) {
            let path = key_path(&key);
            let uri: http::Uri = format!("http://h{path}").parse().unwrap();
            prop_assert_eq!(uri.path(), path.as_str());
            prop_assert_eq!(decode_segment(&path[1..]).unwrap(), key);
            let query = Query { prefix, directories, cursor, ..Query::default() };
            let encoded = query.encode();
            let parsed = Query::parse(encoded.strip_prefix('?')).unwrap();
            prop_assert_eq!(parsed, query);
        }
    }
}
