//! The shapes values and metadata come in, so that fixed and generated cases combine every
//! value shape with every metadata shape, through every write path and every read path.

use blobjobs_store_api::validate::MAX_METADATA_JSON_BYTES;
use blobjobs_store_api::{Metadata, SetOptions};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The length of a multi-page value: two 64 KiB chunks and a few bytes, so that every
/// streaming read and write of a backend takes several chunks (and an odd last one).
pub(crate) const MULTI_PAGE_BYTES: usize = 2 * 64 * 1024 + 17;

/// The shape of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueShape {
    /// Short text naming the write (`v<label>`).
    Text,
    /// Zero bytes.
    Empty,
    /// One byte.
    OneByte,
    /// All 256 byte values, rotated by the write's label.
    EveryByte,
    /// [`MULTI_PAGE_BYTES`] bytes of a pattern seeded by the label.
    MultiPage,
}

impl ValueShape {
    /// Every shape.
    pub const ALL: [ValueShape; 5] = [
        ValueShape::Text,
        ValueShape::Empty,
        ValueShape::OneByte,
        ValueShape::EveryByte,
        ValueShape::MultiPage,
    ];

    /// The bytes of the write with `label` in this shape.
    pub fn bytes(self, label: u32) -> Vec<u8> {
        match self {
            ValueShape::Text => format!("v{label}").into_bytes(),
            ValueShape::Empty => Vec::new(),
            ValueShape::OneByte => vec![label as u8],
            ValueShape::EveryByte => (0..=255u8).map(|b| b.wrapping_add(label as u8)).collect(),
            // An odd period, so that a dropped or repeated chunk shows.
            ValueShape::MultiPage => (0..MULTI_PAGE_BYTES)
                .map(|i| ((i as u32).wrapping_mul(31).wrapping_add(label) % 251) as u8)
                .collect(),
        }
    }

    /// The value split into the chunks a streamed write sends: three uneven ones.
    pub fn chunks(self, label: u32) -> Vec<Bytes> {
        let all = Bytes::from(self.bytes(label));
        let a = all.len() / 3;
        let b = all.len() * 2 / 3 + 1;
        let b = b.min(all.len());
        vec![all.slice(..a), all.slice(a..b), all.slice(b..)]
    }

    /// A short name for timelines.
    pub fn name(self) -> &'static str {
        match self {
            ValueShape::Text => "text",
            ValueShape::Empty => "empty",
            ValueShape::OneByte => "one byte",
            ValueShape::EveryByte => "every byte value",
            ValueShape::MultiPage => "multi-page",
        }
    }
}

/// The shape of a write's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetaShape {
    /// No metadata given.
    Absent,
    /// An empty object given explicitly.
    EmptyObject,
    /// Nested objects, arrays, numbers, booleans and null.
    Nested,
    /// Keys and values outside ASCII, with quotes and backslashes.
    Unicode,
    /// Exactly the largest metadata the contract allows, as compact JSON.
    NearLimit,
}

impl MetaShape {
    /// Every shape.
    pub const ALL: [MetaShape; 5] = [
        MetaShape::Absent,
        MetaShape::EmptyObject,
        MetaShape::Nested,
        MetaShape::Unicode,
        MetaShape::NearLimit,
    ];

    /// The metadata a write with `label` stores, as a read must return it.
    pub fn metadata(self, label: u32) -> Metadata {
        let object = match self {
            MetaShape::Absent | MetaShape::EmptyObject => return Metadata::new(),
            MetaShape::Nested => json!({
                "label": label,
                "nested": {"list": [1, 2.5, null, true, {"deep": []}], "empty": {}},
                "n": -42
            }),
            MetaShape::Unicode => json!({
                "label": label,
                "ünï": "日本語 😀 \"quoted\" \\ back",
                "e\u{301}": "\u{e9}"
            }),
            MetaShape::NearLimit => return near_limit(label),
        };
        match object {
            Value::Object(map) => Metadata::from_map(map),
            _ => Metadata::new(),
        }
    }

    /// The options of a write with `label` in this shape: `Absent` passes no metadata at
    /// all, `EmptyObject` passes `{}` explicitly.
    pub fn options(self, label: u32) -> SetOptions {
        match self {
            MetaShape::Absent => SetOptions::new(),
            _ => SetOptions::new().metadata(self.metadata(label)),
        }
    }

    /// A short name for timelines.
    pub fn name(self) -> &'static str {
        match self {
            MetaShape::Absent => "no metadata",
            MetaShape::EmptyObject => "metadata {}",
            MetaShape::Nested => "nested metadata",
            MetaShape::Unicode => "unicode metadata",
            MetaShape::NearLimit => "metadata at the size limit",
        }
    }
}

/// Metadata whose compact JSON is `bytes` long: `{"label":N,"pad":"ü…x…"}`, padded with a
/// two-byte character and ASCII so that a limit counted in characters instead of bytes
/// shows.
pub(crate) fn metadata_of_len(label: u32, bytes: usize) -> Metadata {
    let frame = format!(r#"{{"label":{label},"pad":""}}"#).len();
    let room = bytes.saturating_sub(frame);
    let two = (room / 4).min(200);
    let pad = format!("{}{}", "ü".repeat(two), "x".repeat(room - 2 * two));
    Metadata::from_pairs([("label", Value::from(label)), ("pad", Value::from(pad))])
}

fn near_limit(label: u32) -> Metadata {
    metadata_of_len(label, MAX_METADATA_JSON_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padded_metadata_has_exactly_the_asked_length() {
        for len in [40, 1514, MAX_METADATA_JSON_BYTES, 1516, 2000] {
            assert_eq!(metadata_of_len(7, len).to_json().len(), len);
        }
        assert_eq!(
            MetaShape::NearLimit.metadata(123).to_json().len(),
            MAX_METADATA_JSON_BYTES
        );
    }

    #[test]
    fn shapes_have_their_sizes_and_chunks_add_up() {
        assert!(ValueShape::Empty.bytes(3).is_empty());
        assert_eq!(ValueShape::OneByte.bytes(3).len(), 1);
        let every = ValueShape::EveryByte.bytes(9);
        let distinct: std::collections::BTreeSet<u8> = every.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        for shape in ValueShape::ALL {
            let joined: Vec<u8> = shape.chunks(5).iter().flatten().copied().collect();
            assert_eq!(joined, shape.bytes(5));
        }
    }
}
