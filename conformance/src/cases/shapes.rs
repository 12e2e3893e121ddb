//! Values and metadata in combination: every value shape (empty, one byte, every byte value,
//! text, multi-page) with every metadata shape (absent, `{}`, nested, unicode, at the size
//! limit), written through `set` and `set_stream`, and read back through `get`,
//! `get_metadata`, `get_stream` and a listing, on one instance and across instances.

use blobjobs_store_api::{ListOptions, SetOutcome};
use bytes::Bytes;

use crate::case::{Case, case, ensure, ensure_eq};
use crate::causes;
use crate::ctx::{Ctx, Failure, Instance};
use crate::shapes::{MULTI_PAGE_BYTES, MetaShape, ValueShape};
use crate::show::Show as _;

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            "shapes",
            every_value_and_metadata_shape_round_trips_through_every_path,
            SingleInstance
        ),
        case!(
            "shapes",
            every_value_and_metadata_shape_is_read_alike_across_instances,
            CrossInstance
        ),
    ]
}

/// The shapes a backend with the case's capabilities takes.
fn shapes(ctx: &Ctx) -> (Vec<ValueShape>, Vec<MetaShape>) {
    let values = ValueShape::ALL
        .into_iter()
        .filter(|s| {
            *s != ValueShape::MultiPage || ctx.caps().max_value_bytes >= MULTI_PAGE_BYTES as u64
        })
        .collect();
    let metas = if ctx.caps().metadata {
        MetaShape::ALL.to_vec()
    } else {
        vec![MetaShape::Absent]
    };
    (values, metas)
}

/// Writes every combination through `writer` and reads each back through every read path
/// of `reader`.
async fn combinations(ctx: &Ctx, writer: &Instance, reader: &Instance) -> Result<(), Failure> {
    let (values, metas) = shapes(ctx);
    let mut written = Vec::new();
    let mut label = 0u32;
    for value in &values {
        for meta in &metas {
            for streamed in [false, true] {
                label += 1;
                let key = format!(
                    "sh/{}/{}/{}",
                    value.name().replace(' ', "-"),
                    meta.name().replace([' ', '{', '}'], "-"),
                    if streamed { "stream" } else { "set" }
                );
                let options = meta.options(label);
                let outcome = if streamed {
                    writer
                        .set_stream(&key, value.chunks(label), None, options)
                        .await?
                } else {
                    writer.set_with(&key, value.bytes(label), options).await?
                };
                let SetOutcome::Written { etag } = outcome else {
                    return Err(Failure::new(format!(
                        "an unconditional write of {key:?} reported a failed condition"
                    )));
                };
                written.push((key, *value, *meta, label, etag));
            }
        }
    }
    let (entries, _) = reader.list_all(ListOptions::new().prefix("sh/")).await?;
    ensure_eq!(
        entries.len(),
        written.len(),
        "entries listed under \"sh/\" after {} writes",
        written.len()
    );
    for (key, value, meta, label, etag) in &written {
        let what = format!("{} with {}", value.name(), meta.name());
        let want = Bytes::from(value.bytes(*label));
        let want_meta = meta.metadata(*label);
        let blob = reader
            .get(key)
            .await?
            .ok_or_else(|| Failure::new(format!("get of {key:?} ({what}) found nothing")))?;
        if blob.value != want {
            return Err(Failure::new(format!(
                "get of {key:?} ({what}) reads {} bytes that differ from the {} written",
                blob.value.len(),
                want.len()
            ))
            .because(causes::VALUES_NOT_EXACT));
        }
        ensure_eq!(blob.info.etag, *etag, "ETag of {key:?} ({what}) from get");
        if blob.info.metadata != want_meta {
            return Err(Failure::new(format!(
                "get of {key:?} ({what}) reads {}, not the {} written",
                blob.info.metadata.show(),
                want_meta.show()
            ))
            .because(causes::METADATA_ALTERED));
        }
        let info = reader.get_metadata(key).await?.ok_or_else(|| {
            Failure::new(format!("get-metadata of {key:?} ({what}) found nothing"))
        })?;
        ensure_eq!(
            info,
            blob.info,
            "get-metadata versus get of {key:?} ({what})"
        );
        let (streamed_info, streamed) = reader
            .get_stream(key)
            .await?
            .ok_or_else(|| Failure::new(format!("get-stream of {key:?} ({what}) found nothing")))?;
        if streamed != want.as_ref() {
            return Err(Failure::new(format!(
                "get-stream of {key:?} ({what}) reads {} bytes that differ from the {} written",
                streamed.len(),
                want.len()
            ))
            .because(causes::STREAMS_DIFFER));
        }
        ensure!(
            streamed_info == blob.info,
            "get-stream of {key:?} ({what}) reports {}, get reports {}",
            streamed_info.show(),
            blob.info.show()
        );
        let entry = entries.iter().find(|e| e.key == *key).ok_or_else(|| {
            Failure::new(format!("the listing lacks {key:?} ({what})"))
                .because(causes::LISTINGS_WRONG)
        })?;
        ensure_eq!(entry.etag, *etag, "ETag of {key:?} ({what}) in the listing");
        ensure_eq!(
            entry.size,
            want.len() as u64,
            "size of {key:?} ({what}) in the listing"
        );
    }
    Ok(())
}

async fn every_value_and_metadata_shape_round_trips_through_every_path(
    ctx: Ctx,
) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    combinations(&ctx, &s, &s).await
}

async fn every_value_and_metadata_shape_is_read_alike_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    let writer = ctx.instance().await?;
    let reader = ctx.instance().await?;
    combinations(&ctx, &writer, &reader).await
}
