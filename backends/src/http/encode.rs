//! URL building: how keys, store names and query values are written into request URLs.
//!
//! The official client concatenates `/<site>/<store>/<key>` and lets the WHATWG URL parser
//! clean it up, which silently changes some keys (`a?b` loses `?b`, `x/../y` becomes `y`,
//! `a b` and `a%20b` collide). This module writes the same bytes as the official client
//! for every key it handles correctly, and percent-encodes the rest so that a server that
//! percent-decodes the path exactly once (as the project's emulator does) recovers every
//! valid key unchanged:
//!
//! * `%` itself, `?`, `#`, `\`, space, control characters, DEL and every non-ASCII byte
//!   (as UTF-8) are encoded, as are `"`, `<`, `>`, `^`, `` ` ``, `{` and `}`, which the
//!   URL parser would also encode or reject;
//! * a path segment that is exactly `.` or `..` is sent as `%2E` or `%2E%2E`, so nothing
//!   on the way resolves it;
//! * `/` stays a separator, and everything else (`+`, `;`, `*`, `:`, `@`, `!`, `$`, `&`,
//!   `'`, `(`, `)`, `,`, `=`, `[`, `]`, `|`, `~`) is sent literally, like the official
//!   client does.
//!
//! Query values are encoded more strictly: only ASCII letters, digits and `*-._` stay
//! literal, and a space is written `%20` (not `+`), which form decoders and plain percent
//! decoders read the same way.

use std::fmt::Write as _;

/// Whether `b` must be percent-encoded inside a path segment.
fn needs_path_escape(b: u8) -> bool {
    b <= 0x20
        || b >= 0x7F
        || matches!(
            b,
            b'%' | b'?' | b'#' | b'\\' | b'"' | b'<' | b'>' | b'^' | b'`' | b'{' | b'}'
        )
}

fn push_escaped(out: &mut String, b: u8) {
    // Writing to a String cannot fail.
    let _ = write!(out, "%{b:02X}");
}

/// Appends one path segment (no `/` inside) to `out`, escaped.
fn push_segment(out: &mut String, segment: &str) {
    match segment {
        "." => out.push_str("%2E"),
        ".." => out.push_str("%2E%2E"),
        _ => {
            for &b in segment.as_bytes() {
                if needs_path_escape(b) {
                    push_escaped(out, b);
                } else {
                    out.push(char::from(b));
                }
            }
        }
    }
}

/// Appends `/` and `text` as path segments, keeping `/` in `text` as separators.
pub(crate) fn push_path(out: &mut String, text: &str) {
    out.push('/');
    for (i, segment) in text.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        push_segment(out, segment);
    }
}

/// Appends `/` and `text` as a single path segment: a `/` inside is escaped as `%2F`.
pub(crate) fn push_single_segment(out: &mut String, text: &str) {
    out.push('/');
    for (i, part) in text.split('/').enumerate() {
        if i > 0 {
            out.push_str("%2F");
        }
        push_segment(out, part);
    }
}

/// Percent-encodes a query value.
pub(crate) fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_') {
            out.push(char::from(b));
        } else {
            push_escaped(&mut out, b);
        }
    }
    out
}

/// Builds a query string (`?a=1&b=2`, or empty) from name/value pairs; values are encoded.
pub(crate) fn query(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(name);
        out.push('=');
        out.push_str(&query_value(value));
    }
    out
}

/// Decodes `%XX` sequences once, leaving a `%` without two hex digits as it is. This is
/// the decoding the module's encoding is designed against; tests use it to prove round trips.
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|c| char::from(*c).to_digit(16)),
                bytes.get(i + 2).and_then(|c| char::from(*c).to_digit(16)),
            )
        {
            // Two hex digits make a value below 256.
            out.push(u8::try_from(hi * 16 + lo).unwrap_or(b'%'));
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_path(key: &str) -> String {
        let mut out = String::new();
        push_path(&mut out, key);
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
            let decoded = percent_decode(&key_path(&key)[1..]);
            assert_eq!(decoded, key.as_bytes(), "{key:?}");
        }
    }

    #[test]
    fn query_values_are_strictly_encoded() {
        assert_eq!(
            query(&[("prefix", "cart/"), ("directories", "true")]),
            "?prefix=cart%2F&directories=true"
        );
        assert_eq!(query_value("a b+c&d=e?ü"), "a%20b%2Bc%26d%3De%3F%C3%BC");
        assert_eq!(query(&[]), "");
    }

    #[test]
    fn single_segments_escape_slashes() {
        let mut out = String::new();
        push_single_segment(&mut out, "site:a/b");
        assert_eq!(out, "/site:a%2Fb");
    }
}
