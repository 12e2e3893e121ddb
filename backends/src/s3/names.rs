//! Object names: how a store name and a key become one S3 object key that sorts like the key.
//!
//! Listing walks the bucket in the engine's order (UTF-8 byte order) from a start offset, so
//! the mapping from keys to object names must be injective, keep byte order, and keep
//! prefixes (a key's prefix maps to a prefix of its object name). A key's `/` is encoded, so
//! the key's own structure never becomes folders: directories mode is computed by the shared
//! paginator, never by the engine's delimiter listing (which on some engines keeps showing
//! emptied directories for minutes).
//!
//! The encoding works on characters and changes only ASCII ones:
//!
//! | character | becomes |
//! |---|---|
//! | U+0000 to U+0022 (controls, space, `!`, `"`) | `"` and two lowercase hex digits |
//! | `.` and `/` | `.0` and `.1` |
//! | `[` and `\` | `[0` and `[1` |
//! | `~` and U+007F | `~0` and `~1` |
//! | anything else | itself |
//!
//! and an object name ends with `!`. (The backslash is encoded because SeaweedFS reads it as
//! a `/`, and `[` goes with it to keep the order.) An object name ends with `!`, which sorts below every encoded character. Every code
//! of a character sorts between the codes of its neighbours and no code is a prefix of
//! another, so the encoding keeps order and prefixes; the final `!` makes a key's name sort
//! before the names of the longer keys it prefixes, and makes the encoded prefix itself a
//! start offset below every key that has the prefix. No name is empty, `.` or `..`, or holds
//! a `/` or a control character, so each one is a valid `object_store` path segment.
//!
//! Engines that store objects as files limit a path segment to 255 bytes (SeaweedFS answers
//! `KeyTooLongError`), so an encoded name is cut into segments: a segment ends after the
//! first character that brings it to [`SEGMENT_BYTES`] bytes or more (at most 203 bytes).
//! Where the cuts fall depends only on the characters before them, so two names that agree
//! up to some character are cut alike up to there; the first difference is still between
//! two encoded characters, never against a `/`, and the order and prefixes survive the cuts.

/// The character that ends every object name.
const END: char = '!';

/// A segment of a long name ends once it holds this many bytes.
pub(crate) const SEGMENT_BYTES: usize = 200;

/// `encoded` cut into segments of at least [`SEGMENT_BYTES`] bytes (the last may be shorter).
fn cut(encoded: &str) -> String {
    let mut out = String::with_capacity(encoded.len() + encoded.len() / SEGMENT_BYTES);
    let mut segment = 0;
    let mut chars = encoded.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        segment += c.len_utf8();
        if segment >= SEGMENT_BYTES && chars.peek().is_some() {
            out.push('/');
            segment = 0;
        }
    }
    out
}

/// Appends the encoding of `text` to `out` (without the final `!`).
pub(crate) fn encode_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '\u{0}'..='"' => {
                out.push('"');
                out.push_str(&format!("{:02x}", c as u32));
            }
            '.' => out.push_str(".0"),
            '/' => out.push_str(".1"),
            '[' => out.push_str("[0"),
            '\\' => out.push_str("[1"),
            '~' => out.push_str("~0"),
            '\u{7f}' => out.push_str("~1"),
            c => out.push(c),
        }
    }
}

/// The encoding of `text`, cut into segments: a start offset below the object names of every
/// key at or after `text`.
///
/// When the encoding ends exactly where a segment is full, every longer name goes on in a
/// folder of that name, and the offset goes on with `/ ` (a segment of one space):
/// SeaweedFS reads a listing's start offset folder by folder and skips a folder whose name
/// the offset ends with, so the offset must point into the folder rather than at it. In
/// plain byte order this changes nothing: no name continues a full segment with anything
/// but a `/`, and every segment starts with a character above the space.
pub(crate) fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    encode_into(text, &mut out);
    let mut offset = cut(&out);
    let last = offset.rsplit('/').next().map_or(0, str::len);
    if last >= SEGMENT_BYTES {
        offset.push_str("/ ");
    }
    offset
}

/// The object name of `key`: its encoding and the final `!`, cut into segments.
pub(crate) fn object_name(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    encode_into(key, &mut out);
    out.push(END);
    cut(&out)
}

/// The key whose object name is `name`, or `None` if `name` is not one this module makes
/// (an object some other program put under the store's directory).
pub(crate) fn key_of(name: &str) -> Option<String> {
    let key = decode(&name.replace('/', ""))?;
    (object_name(&key) == name).then_some(key)
}

/// The store whose directory is `dir` (one segment, no final `!`), or `None` if `dir` is not
/// one that [`encode_into`] makes.
pub(crate) fn store_of(dir: &str) -> Option<String> {
    let name = decode(&format!("{dir}{END}"))?;
    let mut again = String::with_capacity(dir.len());
    encode_into(&name, &mut again);
    (again == dir && !name.is_empty()).then_some(name)
}

fn decode(name: &str) -> Option<String> {
    let body = name.strip_suffix(END)?;
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                let hex: String = chars.by_ref().take(2).collect();
                let code = u32::from_str_radix(&hex, 16).ok()?;
                if hex.len() != 2 || hex.to_lowercase() != hex || code > 0x22 {
                    return None;
                }
                out.push(char::from_u32(code)?);
            }
            '.' => out.push(match chars.next()? {
                '0' => '.',
                '1' => '/',
                _ => return None,
            }),
            '[' => out.push(match chars.next()? {
                '0' => '[',
                '1' => '\\',
                _ => return None,
            }),
            '~' => out.push(match chars.next()? {
                '0' => '~',
                '1' => '\u{7f}',
                _ => return None,
            }),
            '!' | '\u{0}'..='\u{1f}' | '/' | '\\' | '\u{7f}' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &[
        "", "a", "a!", "a\"", "a b", "a/b", "a.b", "a-b", "a0", "a~", "a\u{7f}", "a\u{80}", "aü",
        "a日", "a😀", "a//b", "a/", ".", "..", "~", "nul\u{0}", "x\ny", "!", "\"", "#", "}", "zz",
        "%2F", "a%b", "\\", "a\\b", "[", "a[", "]", "Z",
    ];

    #[test]
    fn names_round_trip() {
        for key in keys() {
            let name = object_name(&key);
            assert_eq!(key_of(&name), Some(key.clone()), "{name:?}");
            for segment in name.split('/') {
                assert!(!segment.is_empty() && segment != "." && segment != "..");
                assert!(segment.len() <= 255 && !segment.chars().any(|c| c.is_ascii_control()));
            }
        }
    }

    /// The short keys, and long ones whose cuts fall at different characters.
    fn keys() -> Vec<String> {
        let mut keys: Vec<String> = KEYS.iter().map(|k| k.to_string()).collect();
        for n in [198, 199, 200, 201, 400] {
            for tail in ["", "a", "\u{10ffff}", "ü", "/", "日x", "~b"] {
                keys.push(format!("{}{tail}", "k".repeat(n)));
            }
        }
        keys.push("ü".repeat(300));
        keys.push(format!("{}/{}", "d".repeat(250), "e".repeat(349)));
        keys
    }

    #[test]
    fn names_sort_like_keys_and_offsets_start_at_their_key() {
        let keys = keys();
        for a in &keys {
            for b in &keys {
                let (na, nb) = (object_name(a), object_name(b));
                assert_eq!(a.cmp(b), na.cmp(&nb), "{a:?} vs {b:?}: {na:?} vs {nb:?}");
                // The start offset of `a` is below exactly the names of the keys from `a` on.
                assert_eq!(b >= a, encode(a) < nb, "offset of {a:?} against {b:?}");
            }
        }
    }

    #[test]
    fn store_directories_round_trip() {
        for name in [
            "a",
            "site-1/site:x",
            "local-site/deploy:0:n",
            "ü.~[\\ \"!",
            "a/b/c",
        ] {
            let mut dir = String::new();
            encode_into(name, &mut dir);
            assert!(!dir.contains('/'), "{dir:?}");
            assert_eq!(store_of(&dir).as_deref(), Some(name), "{dir:?}");
        }
        for foreign in ["", "a.2", "a!", "\"41", "x/y"] {
            assert_eq!(store_of(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn foreign_names_are_not_keys() {
        let cut_elsewhere = format!("{}/{}!", "k".repeat(150), "k".repeat(150));
        for name in [
            "plain",
            "a.2!",
            "\"zz!",
            "\"41!",
            "a~x!",
            "a/b!",
            "\"0A!",
            &cut_elsewhere,
        ] {
            assert_eq!(key_of(name), None, "{name:?}");
        }
    }
}
