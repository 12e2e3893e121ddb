//! Streamed reads and writes: `get_stream` and `set_stream` carry the same values, metadata
//! and ETags as their whole-value twins, a `max_size` bound refuses longer bodies without
//! writing anything, and write conditions hold for streamed writes too.

use blobjobs_store_api::{ErrorKind, Metadata, SetOptions, SetOutcome};
use bytes::Bytes;

use crate::case::{Case, case, ensure, ensure_eq, expect_kind};
use crate::ctx::{Ctx, Failure, Instance};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!("streams", streamed_values_round_trip, SingleInstance),
        case!(
            "streams",
            streamed_writes_over_max_size_write_nothing,
            SingleInstance
        ),
        case!("streams", streamed_writes_honour_conditions, SingleInstance),
        case!(
            "streams",
            streamed_size_bounds_are_exact_on_both_sides,
            SingleInstance
        ),
    ]
}

/// `count` chunks of about `size` bytes each, every chunk a different length and byte, so
/// that a dropped, repeated or reordered chunk shows.
fn chunks(count: u8, size: usize) -> Vec<Bytes> {
    (0..count)
        .map(|i| Bytes::from(vec![i; size + usize::from(i)]))
        .collect()
}

/// The bodies the stream cases send: small values (which a client may collect whole) and,
/// when the backend takes them, values of a few MiB (which are really streamed).
fn bodies(ctx: &Ctx) -> Vec<(&'static str, Vec<Bytes>)> {
    let mut out = vec![("s", chunks(40, 10_000))];
    let large = chunks(24, 100_000);
    let large_len: usize = large.iter().map(Bytes::len).sum();
    if ctx.caps().max_value_bytes >= large_len as u64 {
        out.push(("s-big", large));
    }
    out
}

fn whole(chunks: &[Bytes]) -> Vec<u8> {
    chunks.iter().flat_map(|c| c.iter().copied()).collect()
}

/// Writes `chunks` under `key` as a stream that must be accepted; returns the new ETag.
async fn stream_in(
    s: &Instance,
    key: &str,
    chunks: Vec<Bytes>,
    max_size: Option<u64>,
    options: SetOptions,
) -> Result<blobjobs_store_api::Etag, Failure> {
    match s.set_stream(key, chunks, max_size, options).await? {
        SetOutcome::Written { etag } => Ok(etag),
        SetOutcome::ConditionFailed => Err(Failure::new(format!(
            "a streamed write of {key:?} reported a failed condition"
        ))),
    }
}

async fn streamed_values_round_trip(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    for (key, body) in bodies(&ctx) {
        let value = whole(&body);
        let meta = if ctx.caps().metadata {
            Metadata::from_pairs([("streamed", true)])
        } else {
            Metadata::new()
        };
        // A bound of exactly the value's length admits it.
        let etag = stream_in(
            &s,
            key,
            body,
            Some(value.len() as u64),
            SetOptions::new().metadata(meta.clone()),
        )
        .await?;
        let (info, read) = s
            .get_stream(key)
            .await?
            .ok_or_else(|| Failure::new(format!("{key:?} not found right after set-stream")))?;
        ensure_eq!(
            info.etag,
            etag,
            "{key:?}: etag from get-stream versus set-stream"
        );
        ensure_eq!(
            info.size,
            value.len() as u64,
            "{key:?}: size from get-stream"
        );
        ensure_eq!(info.metadata, meta, "{key:?}: metadata from get-stream");
        if let Some(at) = read.iter().zip(&value).position(|(a, b)| a != b) {
            return Err(Failure::new(format!(
                "{key:?}: the streamed value differs from byte {at} on"
            )));
        }
        ensure_eq!(
            read.len(),
            value.len(),
            "{key:?}: length read by get-stream"
        );
        let blob = s
            .get(key)
            .await?
            .ok_or_else(|| Failure::new(format!("{key:?}: get finds no streamed value")))?;
        ensure!(
            blob.value.as_ref() == value.as_slice(),
            "{key:?}: get reads a different value than was streamed in"
        );
        ensure_eq!(blob.info, info, "{key:?}: get versus get-stream");
    }
    ensure!(
        s.get_stream("s-missing").await?.is_none(),
        "get-stream of a missing key found something"
    );
    Ok(())
}

async fn streamed_writes_over_max_size_write_nothing(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    for (key, body) in bodies(&ctx) {
        let len = whole(&body).len() as u64;
        let etag = stream_in(&s, key, body.clone(), None, SetOptions::new()).await?;
        // One byte over the bound writes nothing, neither a new key nor over an old one.
        let fresh = format!("{key}-over");
        let refused = s
            .set_stream(&fresh, body.clone(), Some(len - 1), SetOptions::new())
            .await;
        expect_kind(
            refused,
            ErrorKind::TooLarge,
            &format!("{fresh:?}: a stream one byte over its bound"),
        )?;
        ensure!(
            s.get(&fresh).await?.is_none(),
            "{fresh:?}: a refused streamed write created the key"
        );
        let refused = s.set_stream(key, body, Some(100), SetOptions::new()).await;
        expect_kind(
            refused,
            ErrorKind::TooLarge,
            &format!("{key:?}: a stream over a bound of 100 bytes"),
        )?;
        let info = s
            .get_metadata(key)
            .await?
            .ok_or_else(|| Failure::new(format!("{key:?}: a refused streamed write removed it")))?;
        ensure_eq!(
            info.etag,
            etag,
            "{key:?}: etag after a refused streamed write"
        );
        ensure_eq!(
            info.size,
            len,
            "{key:?}: size after a refused streamed write"
        );
    }
    Ok(())
}

async fn streamed_writes_honour_conditions(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    for (key, body) in bodies(&ctx) {
        let etag = stream_in(&s, key, body.clone(), None, SetOptions::new().if_new()).await?;
        let again = s
            .set_stream(key, Vec::new(), None, SetOptions::new().if_new())
            .await?;
        ensure_eq!(
            again,
            SetOutcome::ConditionFailed,
            "{key:?}: a streamed only-if-new write over an existing key"
        );
        let stale = blobjobs_store_api::Etag::new("\"not-the-etag\"");
        let refused = s
            .set_stream(key, body, None, SetOptions::new().if_match(stale))
            .await?;
        ensure_eq!(
            refused,
            SetOutcome::ConditionFailed,
            "{key:?}: a streamed only-if-match write with a wrong etag"
        );
        ensure_eq!(
            s.get_metadata(key).await?.map(|i| i.etag),
            Some(etag.clone()),
            "{key:?}: etag after refused streamed writes"
        );
        // An empty stream is an empty value.
        let emptied = stream_in(
            &s,
            key,
            Vec::new(),
            None,
            SetOptions::new().if_match(etag.clone()),
        )
        .await?;
        ensure!(
            emptied != etag,
            "{key:?}: a streamed write kept the old etag"
        );
        let blob = s.get(key).await?.ok_or_else(|| {
            Failure::new(format!(
                "{key:?}: an empty streamed value reads as not found"
            ))
        })?;
        ensure!(
            blob.value.is_empty(),
            "{key:?}: an empty stream wrote {} bytes",
            blob.value.len()
        );
    }
    Ok(())
}

/// A `max_size` bound is probed on both sides of a body's length: two bytes and one byte
/// under it refuse the body as too large and write nothing; exactly the length and one byte
/// more accept it. A bound of zero takes an empty body and refuses a one-byte one.
async fn streamed_size_bounds_are_exact_on_both_sides(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    for (name, body) in bodies(&ctx) {
        let len = whole(&body).len() as u64;
        for bound in [len - 2, len - 1] {
            let key = format!("{name}-{bound}");
            let refused = s
                .set_stream(&key, body.clone(), Some(bound), SetOptions::new())
                .await;
            expect_kind(
                refused,
                ErrorKind::TooLarge,
                &format!("a {len}-byte stream with a bound of {bound}"),
            )?;
            ensure!(
                s.get_metadata(&key).await?.is_none(),
                "a {len}-byte stream refused by a bound of {bound} wrote {key:?}"
            );
        }
        for bound in [len, len + 1] {
            let key = format!("{name}-{bound}");
            stream_in(&s, &key, body.clone(), Some(bound), SetOptions::new()).await?;
            let info = s.get_metadata(&key).await?.ok_or_else(|| {
                Failure::new(format!(
                    "a {len}-byte stream within a bound of {bound} is not found"
                ))
            })?;
            ensure_eq!(info.size, len, "size written under a bound of {bound}");
        }
    }
    stream_in(&s, "zero", Vec::new(), Some(0), SetOptions::new()).await?;
    let refused = s
        .set_stream(
            "zero-over",
            vec![Bytes::from_static(b"x")],
            Some(0),
            SetOptions::new(),
        )
        .await;
    expect_kind(
        refused,
        ErrorKind::TooLarge,
        "a one-byte stream with a bound of zero",
    )?;
    Ok(())
}
