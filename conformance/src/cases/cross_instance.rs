//! What one instance writes, every other instance reads: creates, updates, deletes,
//! metadata, ETags, conditions and listings across separately built instances.

use std::collections::BTreeSet;

use blobjobs_store_api::{ListOptions, Metadata, SetOptions, SetOutcome};

use crate::case::{Case, case, ensure, ensure_eq};
use crate::ctx::{Ctx, Failure};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            "cross_instance",
            writes_are_visible_across_instances,
            CrossInstance
        ),
        case!(
            "cross_instance",
            updates_are_visible_across_instances,
            CrossInstance
        ),
        case!(
            "cross_instance",
            deletes_are_visible_across_instances,
            CrossInstance
        ),
        case!(
            "cross_instance",
            metadata_is_visible_across_instances,
            CrossInstance,
            Metadata
        ),
        case!(
            "cross_instance",
            etags_agree_across_instances,
            CrossInstance
        ),
        case!(
            "cross_instance",
            only_if_new_is_checked_across_instances,
            CrossInstance
        ),
        case!(
            "cross_instance",
            only_if_match_is_checked_across_instances,
            CrossInstance
        ),
        case!(
            "cross_instance",
            listing_is_complete_across_instances,
            CrossInstance
        ),
    ]
}

async fn writes_are_visible_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let writer = ctx.instance().await?;
    writer.put("shared", "from instance 0").await?;
    // A reader opened after the write, and one opened before it, must both see it.
    let reader = ctx.instance().await?;
    let blob = reader.get("shared").await?;
    let Some(blob) = blob else {
        return Err(Failure::new(format!(
            "instance {} wrote \"shared\"; instance {} gets not found",
            writer.id, reader.id
        )));
    };
    ensure_eq!(
        blob.value.as_ref(),
        b"from instance 0".as_slice(),
        "value seen by another instance"
    );
    writer.put("later", "x").await?;
    ensure!(
        reader.get("later").await?.is_some(),
        "an instance opened before a write does not see it"
    );
    Ok(())
}

async fn updates_are_visible_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let a = ctx.instance().await?;
    let b = ctx.instance().await?;
    a.put("status", "pending").await?;
    // The reader reads first, so that a per-instance cache would hold the old value.
    let first = b
        .get("status")
        .await?
        .ok_or_else(|| Failure::new("instance 0 wrote \"status\"; instance 1 gets not found"))?;
    ensure_eq!(
        first.value.as_ref(),
        b"pending".as_slice(),
        "first read on instance 1"
    );
    a.put("status", "running").await?;
    let second = b
        .get("status")
        .await?
        .ok_or_else(|| Failure::new("instance 1 lost \"status\""))?;
    ensure!(
        second.value.as_ref() == b"running",
        "instance 0 updated \"status\" to \"running\"; instance 1 still reads {:?}",
        String::from_utf8_lossy(&second.value)
    );
    b.put("status", "done").await?;
    let third = a
        .get("status")
        .await?
        .ok_or_else(|| Failure::new("instance 0 lost \"status\""))?;
    ensure_eq!(
        third.value.as_ref(),
        b"done".as_slice(),
        "instance 0 reading instance 1's update"
    );
    Ok(())
}

async fn deletes_are_visible_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let a = ctx.instance().await?;
    let b = ctx.instance().await?;
    a.put("doomed", "x").await?;
    ensure!(
        b.get("doomed").await?.is_some(),
        "instance 1 does not see instance 0's write"
    );
    b.delete("doomed").await?;
    ensure!(
        a.get("doomed").await?.is_none(),
        "instance 1 deleted \"doomed\"; instance 0 still reads it"
    );
    ensure!(
        a.get_metadata("doomed").await?.is_none(),
        "instance 0 still has metadata of a deleted key"
    );
    Ok(())
}

async fn metadata_is_visible_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let a = ctx.instance().await?;
    let b = ctx.instance().await?;
    let meta = Metadata::from_pairs([("status", "pending"), ("owner", "ü")]);
    a.set_with("m", "v", SetOptions::new().metadata(meta.clone()))
        .await?;
    let info = b
        .get_metadata("m")
        .await?
        .ok_or_else(|| Failure::new("instance 1 finds no metadata for instance 0's key"))?;
    ensure_eq!(info.metadata, meta, "metadata read by another instance");
    Ok(())
}

async fn etags_agree_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let a = ctx.instance().await?;
    let b = ctx.instance().await?;
    let etag = a.put("e", "v").await?;
    let blob = b
        .get("e")
        .await?
        .ok_or_else(|| Failure::new("instance 1 does not see the key"))?;
    ensure_eq!(
        blob.info.etag,
        etag,
        "etag seen by instance 1 versus the one instance 0 got"
    );
    let (entries, _) = b.list_all(ListOptions::new()).await?;
    let entry = entries
        .iter()
        .find(|e| e.key == "e")
        .ok_or_else(|| Failure::new("instance 1's listing lacks the key"))?;
    ensure_eq!(entry.etag, etag, "etag listed by instance 1");
    Ok(())
}

async fn only_if_new_is_checked_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let a = ctx.instance().await?;
    let b = ctx.instance().await?;
    let first = a.set_with("once", "a", SetOptions::new().if_new()).await?;
    ensure!(
        first.is_written(),
        "only-if-new on a fresh key did not write"
    );
    let second = b.set_with("once", "b", SetOptions::new().if_new()).await?;
    ensure_eq!(
        second,
        SetOutcome::ConditionFailed,
        "only-if-new on instance 1 for a key instance 0 created"
    );
    Ok(())
}

async fn only_if_match_is_checked_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let a = ctx.instance().await?;
    let b = ctx.instance().await?;
    let e1 = a.put("cas", "v1").await?;
    // Instance 1 holds the current ETag (it got it from instance 0): its write must pass.
    let out = b
        .set_with("cas", "v2", SetOptions::new().if_match(e1.clone()))
        .await?;
    ensure!(
        out.is_written(),
        "instance 1's only-if-match with the current etag was rejected"
    );
    // Instance 0's ETag is now stale: its write must fail.
    let stale = a
        .set_with("cas", "v3", SetOptions::new().if_match(e1))
        .await?;
    ensure_eq!(
        stale,
        SetOutcome::ConditionFailed,
        "instance 0's only-if-match with an etag instance 1 replaced"
    );
    let blob = a
        .get("cas")
        .await?
        .ok_or_else(|| Failure::new("key vanished"))?;
    ensure_eq!(
        blob.value.as_ref(),
        b"v2".as_slice(),
        "value after the race"
    );
    Ok(())
}

async fn listing_is_complete_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let n = ctx.options().instances.max(2);
    let writers = ctx.instances(n).await?;
    let mut want = BTreeSet::new();
    for (i, w) in writers.iter().enumerate() {
        for j in 0..3 {
            let key = format!("ls/{i}-{j}");
            w.put(&key, "x").await?;
            want.insert(key);
        }
    }
    let reader = ctx.instance().await?;
    let size = if ctx.caps().page_size { Some(4) } else { None };
    let mut options = ListOptions::new().prefix("ls/");
    options.page_size = size;
    let (entries, _) = reader.list_all(options).await?;
    let got: BTreeSet<String> = entries.into_iter().map(|e| e.key).collect();
    let missing: Vec<&String> = want.difference(&got).collect();
    ensure!(
        missing.is_empty(),
        "a fresh instance's listing misses {missing:?}"
    );
    ensure_eq!(got, want, "keys listed by a fresh instance");
    Ok(())
}
