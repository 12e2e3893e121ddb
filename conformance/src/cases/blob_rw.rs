//! Reading and writing one key: byte-exact values, metadata, deletes.

use blobjobs_store_api::{ErrorKind, ListOptions, Metadata, SetOptions, SetOutcome};
use serde_json::json;

use crate::case::{Case, case, ensure, ensure_eq, expect_kind};
use crate::ctx::{Ctx, Failure};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!("blob_rw", read_your_write_is_byte_exact, SingleInstance),
        case!("blob_rw", empty_value_round_trips, SingleInstance),
        case!(
            "blob_rw",
            large_value_round_trips,
            SingleInstance,
            LargeValues
        ),
        case!(
            "blob_rw",
            reads_and_listings_agree_on_every_field,
            SingleInstance
        ),
        case!("blob_rw", missing_key_reads_as_not_found, SingleInstance),
        case!("blob_rw", overwrite_replaces_the_value, SingleInstance),
        case!("blob_rw", delete_removes_the_key, SingleInstance),
        case!("blob_rw", deleting_a_missing_key_is_fine, SingleInstance),
        case!(
            "blob_rw",
            deleting_long_and_nested_keys_leaves_no_trace,
            SingleInstance
        ),
        case!("blob_rw", metadata_round_trips, SingleInstance, Metadata),
        case!(
            "blob_rw",
            overwrite_replaces_the_metadata,
            SingleInstance,
            Metadata
        ),
        case!(
            "blob_rw",
            oversized_metadata_is_rejected_and_writes_nothing,
            SingleInstance,
            Metadata
        ),
    ]
}

/// Values that stress byte-exactness: every byte value, invalid UTF-8, NUL, CR LF, a BOM.
fn tricky_values() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("text", b"hello, world".to_vec()),
        ("every byte value", (0..=255u8).collect()),
        ("invalid utf-8", vec![0xff, 0xfe, 0x00, 0xc3, 0x28]),
        ("nul and line ends", b"a\0b\r\nc\n".to_vec()),
        ("byte order mark", "\u{feff}ü€𝄞".as_bytes().to_vec()),
        ("json-looking", br#"{"status":"pending"}"#.to_vec()),
        ("one byte", vec![b'x']),
    ]
}

async fn read_your_write_is_byte_exact(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    for (i, (what, value)) in tricky_values().into_iter().enumerate() {
        let key = format!("rw/{i}");
        let etag = s.put(&key, value.clone()).await?;
        let blob = s.get(&key).await?;
        let Some(blob) = blob else {
            return Err(Failure::new(format!(
                "{what}: {key:?} not found right after set"
            )));
        };
        ensure!(
            blob.value.as_ref() == value.as_slice(),
            "{what}: value differs after a round trip"
        );
        ensure_eq!(blob.info.size, value.len() as u64, "{what}: size");
        ensure_eq!(
            blob.info.etag,
            etag,
            "{what}: get reports a different etag than set"
        );
    }
    Ok(())
}

async fn empty_value_round_trips(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let etag = s.put("empty", Vec::new()).await?;
    let blob = s.get("empty").await?;
    let Some(blob) = blob else {
        return Err(Failure::new("an empty value reads as not found"));
    };
    ensure!(
        blob.value.is_empty(),
        "an empty value reads back as {} bytes",
        blob.value.len()
    );
    ensure_eq!(blob.info.etag, etag, "etag of the empty value");
    let info = s.get_metadata("empty").await?;
    ensure!(
        info.is_some_and(|i| i.size == 0),
        "get-metadata of an empty value is wrong"
    );
    Ok(())
}

async fn large_value_round_trips(ctx: Ctx) -> Result<(), Failure> {
    let len = ctx.caps().max_value_bytes.min(5 * 1024 * 1024 + 7) as usize;
    // A pattern that repeats with an odd period, so that a dropped or repeated chunk shows.
    let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let s = ctx.instance().await?;
    let etag = s.put("large", value.clone()).await?;
    let blob = s.get("large").await?;
    let Some(blob) = blob else {
        return Err(Failure::new("a large value reads as not found"));
    };
    ensure_eq!(blob.value.len(), len, "length of a large value");
    if let Some(at) = blob.value.iter().zip(&value).position(|(a, b)| a != b) {
        return Err(Failure::new(format!(
            "a large value differs from byte {at} on"
        )));
    }
    ensure_eq!(blob.info.etag, etag, "etag of the large value");
    Ok(())
}

/// The size of the multi-MiB value the round-trip cases write, or `None` when the backend
/// claims less than 1 MiB.
fn multi_mib(ctx: &Ctx, wanted: u64) -> Option<usize> {
    let len = ctx.caps().max_value_bytes.min(wanted);
    (len >= 1024 * 1024).then_some(len as usize)
}

/// `get`, `get_metadata` and a listing describe one write the same way: `get_metadata` is
/// `get` without the value, and the listing agrees on the ETag, the size and, to the second,
/// the time of the write (a read over HTTP carries `Last-Modified`, which has no finer unit).
async fn reads_and_listings_agree_on_every_field(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let mut values = vec![("small", b"hello".to_vec()), ("empty", Vec::new())];
    if let Some(len) = multi_mib(&ctx, 3 * 1024 * 1024 + 17) {
        values.push(("big", (0..len).map(|i| (i % 251) as u8).collect()));
    }
    for (key, value) in values {
        let etag = s.put(key, value.clone()).await?;
        let blob = s
            .get(key)
            .await?
            .ok_or_else(|| Failure::new(format!("{key:?} not found right after set")))?;
        ensure!(
            blob.value.as_ref() == value.as_slice(),
            "{key:?}: value differs after a round trip"
        );
        ensure_eq!(blob.info.etag, etag, "{key:?}: etag from get versus set");
        ensure_eq!(blob.info.size, value.len() as u64, "{key:?}: size from get");
        let info = s
            .get_metadata(key)
            .await?
            .ok_or_else(|| Failure::new(format!("{key:?}: get-metadata found nothing")))?;
        ensure_eq!(info, blob.info, "{key:?}: get-metadata versus get");
        let (entries, _) = s.list_all(ListOptions::new().prefix(key)).await?;
        let entry = entries
            .iter()
            .find(|e| e.key == key)
            .ok_or_else(|| Failure::new(format!("{key:?} missing from the listing")))?;
        ensure_eq!(entry.etag, etag, "{key:?}: etag from the listing");
        ensure_eq!(
            entry.size,
            value.len() as u64,
            "{key:?}: size from the listing"
        );
        ensure_eq!(
            entry.last_modified.as_millis() / 1000,
            info.last_modified.as_millis() / 1000,
            "{key:?}: second of the last write, listing versus get-metadata"
        );
    }
    Ok(())
}

async fn missing_key_reads_as_not_found(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    ensure!(
        s.get("never-written").await?.is_none(),
        "get of a missing key found something"
    );
    ensure!(
        s.get_metadata("never-written").await?.is_none(),
        "get-metadata of a missing key found something"
    );
    Ok(())
}

async fn overwrite_replaces_the_value(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    s.put("k", "first, longer value").await?;
    let etag = s.put("k", "second").await?;
    let blob = s
        .get("k")
        .await?
        .ok_or_else(|| Failure::new("overwritten key not found"))?;
    ensure_eq!(
        blob.value.as_ref(),
        b"second".as_slice(),
        "value after overwrite"
    );
    ensure_eq!(blob.info.etag, etag, "etag after overwrite");
    Ok(())
}

async fn delete_removes_the_key(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    s.put("doomed", "x").await?;
    s.put("kept", "y").await?;
    s.delete("doomed").await?;
    ensure!(
        s.get("doomed").await?.is_none(),
        "a deleted key still reads"
    );
    ensure!(
        s.get_metadata("doomed").await?.is_none(),
        "a deleted key still has metadata"
    );
    ensure!(
        s.get("kept").await?.is_some(),
        "deleting one key removed another"
    );
    // A deleted key can be written again.
    s.put("doomed", "again").await?;
    let blob = s
        .get("doomed")
        .await?
        .ok_or_else(|| Failure::new("re-created key not found"))?;
    ensure_eq!(
        blob.value.as_ref(),
        b"again".as_slice(),
        "value of a re-created key"
    );
    Ok(())
}

async fn deleting_a_missing_key_is_fine(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    s.delete("never-written").await?;
    s.put("once", "x").await?;
    s.delete("once").await?;
    s.delete("once").await?;
    ensure!(s.get("once").await?.is_none(), "a twice-deleted key reads");
    Ok(())
}

/// Deleting keys that never existed, however deep, is fine; deleting a long key under a
/// directory removes it from reads and listings, and the key can be written again after
/// (a backend that tidies empty directories away must not break it).
async fn deleting_long_and_nested_keys_leaves_no_trace(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    s.delete("deep/never/there").await?;
    let long = format!("{}/leaf", "p".repeat(ctx.max_key_bytes().min(455) - 5));
    s.put("d", "x").await?;
    s.put(&long, "y").await?;
    s.delete("d").await?;
    s.delete(&long).await?;
    s.delete("d").await?;
    ensure!(s.get("d").await?.is_none(), "a deleted key still reads");
    ensure!(
        s.get_metadata(&long).await?.is_none(),
        "a deleted long key still has metadata"
    );
    let (entries, _) = s.list_all(ListOptions::new()).await?;
    let listed: Vec<&str> = entries.iter().map(|e| e.key.as_str()).collect();
    ensure!(
        listed.is_empty(),
        "deleted keys are still listed: {listed:?}"
    );
    s.put(&long, "z").await?;
    let blob = s.get(&long).await?.ok_or_else(|| {
        Failure::new("a long key written again after its delete reads as not found")
    })?;
    ensure_eq!(
        blob.value.as_ref(),
        b"z".as_slice(),
        "value of a long key written again"
    );
    Ok(())
}

fn sample_metadata() -> Metadata {
    Metadata::from_map(
        json!({
            "kind": "extract",
            "unicode": "ü€𝄞 \"quoted\" \\ back",
            "nested": {"list": [1, 2.5, null, true], "empty": {}},
            "n": -42
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    )
}

async fn metadata_round_trips(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let meta = sample_metadata();
    s.set_with("m", "v", SetOptions::new().metadata(meta.clone()))
        .await?;
    let blob = s
        .get("m")
        .await?
        .ok_or_else(|| Failure::new("key with metadata not found"))?;
    ensure_eq!(blob.info.metadata, meta, "metadata from get");
    let info = s
        .get_metadata("m")
        .await?
        .ok_or_else(|| Failure::new("get-metadata found nothing"))?;
    ensure_eq!(info.metadata, meta, "metadata from get-metadata");
    ensure_eq!(info.size, 1, "size from get-metadata");
    s.put("plain", "v").await?;
    let plain = s
        .get("plain")
        .await?
        .ok_or_else(|| Failure::new("plain key not found"))?;
    ensure!(
        plain.info.metadata.is_empty(),
        "a value written without metadata has some"
    );
    Ok(())
}

async fn overwrite_replaces_the_metadata(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    s.set_with("m", "v1", SetOptions::new().metadata(sample_metadata()))
        .await?;
    let second = Metadata::from_pairs([("only", "this")]);
    s.set_with("m", "v2", SetOptions::new().metadata(second.clone()))
        .await?;
    let blob = s
        .get("m")
        .await?
        .ok_or_else(|| Failure::new("key not found"))?;
    ensure_eq!(
        blob.info.metadata,
        second,
        "metadata after overwrite (must replace, not merge)"
    );
    s.put("m", "v3").await?;
    let info = s
        .get_metadata("m")
        .await?
        .ok_or_else(|| Failure::new("key not found"))?;
    ensure!(
        info.metadata.is_empty(),
        "metadata survived an overwrite without metadata"
    );
    Ok(())
}

/// Metadata over the protocol's limit is refused as invalid input, and the refused write
/// leaves the previous value and metadata in place.
async fn oversized_metadata_is_rejected_and_writes_nothing(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let meta = Metadata::from_pairs([("colour", "grün"), ("n", "1")]);
    let etag = match s
        .set_with("m", "v1", SetOptions::new().metadata(meta.clone()))
        .await?
    {
        SetOutcome::Written { etag } => etag,
        SetOutcome::ConditionFailed => {
            return Err(Failure::new(
                "an unconditional set reported a failed condition",
            ));
        }
    };
    let too_big = Metadata::from_pairs([("k", "x".repeat(2000))]);
    let refused = s
        .set_with("m", "v2", SetOptions::new().metadata(too_big))
        .await;
    expect_kind(
        refused,
        ErrorKind::InvalidInput,
        "a set with 2000 bytes of metadata",
    )?;
    let blob = s
        .get("m")
        .await?
        .ok_or_else(|| Failure::new("a refused write removed the key"))?;
    ensure_eq!(
        blob.value.as_ref(),
        b"v1".as_slice(),
        "value after a refused write"
    );
    ensure_eq!(blob.info.metadata, meta, "metadata after a refused write");
    ensure_eq!(blob.info.etag, etag, "etag after a refused write");
    Ok(())
}
