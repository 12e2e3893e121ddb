//! Limits probed on both sides: keys and metadata at several sizes just under, at, and over
//! the contract's limits, counted in bytes (a limit counted in characters shows with
//! multi-byte text), and refused writes that leave nothing behind.

use blobjobs_store_api::validate::MAX_METADATA_JSON_BYTES;
use blobjobs_store_api::{ErrorKind, SetOptions, SetOutcome};
use bytes::Bytes;

use crate::case::{Case, case, ensure, ensure_eq};
use crate::causes;
use crate::ctx::{Ctx, Failure};
use crate::shapes::metadata_of_len;
use crate::show::Show as _;

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!("limits", key_length_limit_is_exact, SingleInstance),
        case!(
            "limits",
            metadata_size_limit_is_exact,
            SingleInstance,
            Metadata
        ),
    ]
}

/// A key of exactly `bytes` UTF-8 bytes: ASCII, or ending in a two-byte character.
fn key_of(bytes: usize, two_byte_end: bool) -> String {
    if two_byte_end && bytes >= 2 {
        format!("{}ü", "k".repeat(bytes - 2))
    } else {
        "k".repeat(bytes)
    }
}

/// Keys of the longest length and one byte less are taken; one byte, two bytes and a hundred
/// bytes more are refused as invalid input by every operation, and write nothing. The limit
/// counts bytes of the whole key, the run's prefix included.
async fn key_length_limit_is_exact(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let max = ctx.caps().max_key_bytes;
    let room = ctx.max_key_bytes();
    ensure!(
        room >= 16,
        "the run's key prefix leaves only {room} bytes for keys"
    );
    // Under the prefix: the whole key is the prefix plus this.
    for (len, two) in [
        (room - 1, false),
        (room, false),
        (room, true),
        (room - 1, true),
    ] {
        let key = key_of(len, two);
        let total = key.len() + ctx.prefix().len();
        let out = s
            .set_with(&key, format!("len {total}"), SetOptions::new())
            .await;
        match out {
            Ok(SetOutcome::Written { .. }) => {}
            Ok(other) => {
                return Err(Failure::new(format!(
                    "a write of a key of {total} bytes (the limit is {max}) reported {}",
                    other.show()
                )));
            }
            Err(e) => {
                return Err(Failure::new(format!(
                    "a key of {total} bytes, within the limit of {max}, was refused with error {}",
                    e.kind()
                ))
                .because(causes::LIMITS_WRONG));
            }
        }
        let read = s.get(&key).await?.map(|b| b.value);
        ensure_eq!(
            read,
            Some(Bytes::from(format!("len {total}"))),
            "the value under a key of {total} bytes"
        );
    }
    // Over the limit, without the prefix (which would only make them longer).
    for (len, two) in [
        (max + 1, false),
        (max + 1, true),
        (max + 2, false),
        (max + 100, false),
    ] {
        let key = key_of(len, two);
        let shown = format!("a key of {len} bytes (the limit is {max})");
        let refused = |what: &str, r: Result<(), ErrorKind>| -> Result<(), Failure> {
            match r {
                Err(ErrorKind::InvalidInput) => Ok(()),
                Err(k) => Err(Failure::new(format!(
                    "{what} with {shown}: expected error invalid_input, got error {k}"
                ))
                .because(causes::LIMITS_WRONG)),
                Ok(()) => Err(Failure::new(format!(
                    "{what} with {shown}: expected error invalid_input, got success"
                ))
                .because(causes::LIMITS_WRONG)),
            }
        };
        let kind = |r: blobjobs_store_api::Error| r.kind();
        refused(
            "set",
            s.raw
                .set(&key, Bytes::from_static(b"x"), SetOptions::new())
                .await
                .map(|_| ())
                .map_err(kind),
        )?;
        refused("get", s.raw.get(&key).await.map(|_| ()).map_err(kind))?;
        refused(
            "get-metadata",
            s.raw.get_metadata(&key).await.map(|_| ()).map_err(kind),
        )?;
        refused("delete", s.raw.delete(&key).await.map_err(kind))?;
    }
    Ok(())
}

/// Metadata of 1 to 2 bytes under the limit and exactly at it is stored and read back
/// whole; 1, 2 and 485 bytes over it is refused as invalid input and leaves the previous
/// version in place. Sizes count bytes of compact JSON, with two-byte characters in the
/// padding.
async fn metadata_size_limit_is_exact(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let max = MAX_METADATA_JSON_BYTES;
    let mut label = 0;
    for len in [max - 2, max - 1, max] {
        label += 1;
        let meta = metadata_of_len(label, len);
        let key = format!("m{len}");
        let written = match s
            .set_with(&key, "v", SetOptions::new().metadata(meta.clone()))
            .await
        {
            Ok(SetOutcome::Written { etag }) => etag,
            Ok(other) => {
                return Err(Failure::new(format!(
                    "a write with {len} bytes of metadata reported {}",
                    other.show()
                )));
            }
            Err(e) => {
                return Err(Failure::new(format!(
                    "{len} bytes of metadata, within the limit of {max}, were refused with error {}",
                    e.kind()
                ))
                .because(causes::LIMITS_WRONG));
            }
        };
        let info = s.get_metadata(&key).await?.ok_or_else(|| {
            Failure::new(format!(
                "a key written with {len} bytes of metadata is not found"
            ))
        })?;
        ensure_eq!(
            info.etag,
            written,
            "ETag of a key with {len} bytes of metadata"
        );
        if info.metadata != meta {
            return Err(Failure::new(format!(
                "{len} bytes of metadata read back as {}",
                info.metadata.show()
            ))
            .because(causes::METADATA_ALTERED));
        }
    }
    let before = match s.set_with("over", "kept", SetOptions::new()).await? {
        SetOutcome::Written { etag } => etag,
        SetOutcome::ConditionFailed => {
            return Err(Failure::new(
                "an unconditional set reported a failed condition",
            ));
        }
    };
    for len in [max + 1, max + 2, 2000] {
        label += 1;
        let meta = metadata_of_len(label, len);
        let refused = s
            .set_with("over", "lost", SetOptions::new().metadata(meta))
            .await;
        match refused {
            Err(e) if e.kind() == ErrorKind::InvalidInput => {}
            Err(e) => {
                return Err(Failure::new(format!(
                    "{len} bytes of metadata (the limit is {max}): expected error invalid_input, got error {}",
                    e.kind()
                ))
                .because(causes::LIMITS_WRONG));
            }
            Ok(out) => {
                return Err(Failure::new(format!(
                    "{len} bytes of metadata (the limit is {max}): expected error invalid_input, got {}",
                    out.show()
                ))
                .because(causes::LIMITS_WRONG));
            }
        }
        let blob = s.get("over").await?.ok_or_else(|| {
            Failure::new("a refused write removed the key").because(causes::WRITES_LOST)
        })?;
        ensure!(
            blob.value.as_ref() == b"kept" && blob.info.etag == before,
            "a refused write with {len} bytes of metadata changed the key to {}",
            blob.show()
        );
    }
    Ok(())
}
