//! ETags and conditional writes on one instance: only-if-new, only-if-match.

use std::collections::HashSet;

use blobjobs_store_api::{Etag, ListOptions, SetOptions, SetOutcome};

use crate::case::{Case, case, ensure, ensure_eq};
use crate::ctx::{Ctx, Failure};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!("conditions", etag_changes_on_every_write, SingleInstance),
        case!(
            "conditions",
            etag_changes_when_the_same_content_is_written_again,
            SingleInstance
        ),
        case!(
            "conditions",
            etag_agrees_between_set_get_metadata_and_list,
            SingleInstance
        ),
        case!("conditions", only_if_new_writes_once, SingleInstance),
        case!(
            "conditions",
            only_if_match_accepts_the_current_etag,
            SingleInstance
        ),
        case!(
            "conditions",
            only_if_match_rejects_a_stale_etag,
            SingleInstance
        ),
        case!(
            "conditions",
            only_if_match_rejects_a_missing_key,
            SingleInstance
        ),
        case!(
            "conditions",
            only_if_new_succeeds_after_delete,
            SingleInstance
        ),
    ]
}

async fn etag_changes_on_every_write(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let mut seen: HashSet<Etag> = HashSet::new();
    // Values of equal length, so that an ETag made from the size or a coarse clock repeats.
    for i in 0..8 {
        let etag = s.put("e", format!("value-{i}")).await?;
        ensure!(
            seen.insert(etag.clone()),
            "write {i} returned etag {etag}, which an earlier write with different content had"
        );
    }
    // A write after a delete must not bring back an old ETag either.
    s.delete("e").await?;
    let etag = s.put("e", "value-x").await?;
    ensure!(
        !seen.contains(&etag),
        "a write after delete reused etag {etag}"
    );
    Ok(())
}

/// An ETag names a write, not a content: rewriting identical bytes must still give a new
/// one, or a compare-and-swap that read the first write could succeed against the second.
async fn etag_changes_when_the_same_content_is_written_again(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let mut seen: HashSet<Etag> = HashSet::new();
    for i in 0..5 {
        let etag = s.put("same", "same content").await?;
        ensure!(
            seen.insert(etag.clone()),
            "rewrite {i} of identical content returned etag {etag} again"
        );
        let read = s
            .get_metadata("same")
            .await?
            .ok_or_else(|| Failure::new("a rewritten key reads as not found"))?;
        ensure_eq!(read.etag, etag, "etag read back after rewrite {i}");
    }
    Ok(())
}

async fn etag_agrees_between_set_get_metadata_and_list(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let mut written = Vec::new();
    for (key, value) in [("t/a", "1"), ("t/b", "22"), ("t/c", "")] {
        written.push((key, s.put(key, value).await?, value.len() as u64));
    }
    let (entries, _) = s.list_all(ListOptions::new().prefix("t/")).await?;
    for (key, etag, size) in &written {
        let blob = s
            .get(key)
            .await?
            .ok_or_else(|| Failure::new(format!("{key:?} not found")))?;
        ensure_eq!(&blob.info.etag, etag, "etag of {key:?} from get versus set");
        let info = s
            .get_metadata(key)
            .await?
            .ok_or_else(|| Failure::new(format!("{key:?} has no metadata")))?;
        ensure_eq!(
            &info.etag,
            etag,
            "etag of {key:?} from get-metadata versus set"
        );
        let entry = entries
            .iter()
            .find(|e| e.key == *key)
            .ok_or_else(|| Failure::new(format!("{key:?} missing from the listing")))?;
        ensure_eq!(&entry.etag, etag, "etag of {key:?} from list versus set");
        ensure_eq!(entry.size, *size, "size of {key:?} in the listing");
    }
    Ok(())
}

async fn only_if_new_writes_once(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let first = s.set_with("n", "first", SetOptions::new().if_new()).await?;
    let SetOutcome::Written { etag } = first else {
        return Err(Failure::new("only-if-new on a fresh key did not write"));
    };
    let second = s
        .set_with("n", "second", SetOptions::new().if_new())
        .await?;
    ensure_eq!(
        second,
        SetOutcome::ConditionFailed,
        "only-if-new on an existing key"
    );
    let blob = s
        .get("n")
        .await?
        .ok_or_else(|| Failure::new("key not found"))?;
    ensure_eq!(
        blob.value.as_ref(),
        b"first".as_slice(),
        "value after a rejected only-if-new"
    );
    ensure_eq!(blob.info.etag, etag, "etag after a rejected only-if-new");
    Ok(())
}

async fn only_if_match_accepts_the_current_etag(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let mut etag = s.put("m", "v0").await?;
    for i in 1..4 {
        let out = s
            .set_with(
                "m",
                format!("v{i}"),
                SetOptions::new().if_match(etag.clone()),
            )
            .await?;
        let SetOutcome::Written { etag: next } = out else {
            return Err(Failure::new(format!(
                "only-if-match with the current etag failed at step {i}"
            )));
        };
        ensure!(next != etag, "a conditional write kept the old etag");
        etag = next;
    }
    let blob = s
        .get("m")
        .await?
        .ok_or_else(|| Failure::new("key not found"))?;
    ensure_eq!(
        blob.value.as_ref(),
        b"v3".as_slice(),
        "value after the chain of writes"
    );
    Ok(())
}

async fn only_if_match_rejects_a_stale_etag(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let stale = s.put("m", "old").await?;
    let current = s.put("m", "new").await?;
    let out = s
        .set_with("m", "lost", SetOptions::new().if_match(stale))
        .await?;
    ensure_eq!(
        out,
        SetOutcome::ConditionFailed,
        "only-if-match with a stale etag"
    );
    let bogus = s
        .set_with(
            "m",
            "lost",
            SetOptions::new().if_match(Etag::new("\"not-an-etag\"")),
        )
        .await?;
    ensure_eq!(
        bogus,
        SetOutcome::ConditionFailed,
        "only-if-match with an invented etag"
    );
    let blob = s
        .get("m")
        .await?
        .ok_or_else(|| Failure::new("key not found"))?;
    ensure_eq!(
        blob.value.as_ref(),
        b"new".as_slice(),
        "value after rejected writes"
    );
    ensure_eq!(blob.info.etag, current, "etag after rejected writes");
    Ok(())
}

async fn only_if_match_rejects_a_missing_key(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let etag = s.put("gone", "x").await?;
    s.delete("gone").await?;
    let out = s
        .set_with("gone", "back", SetOptions::new().if_match(etag))
        .await?;
    ensure_eq!(
        out,
        SetOutcome::ConditionFailed,
        "only-if-match on a deleted key"
    );
    ensure!(
        s.get("gone").await?.is_none(),
        "a rejected write created the key"
    );
    let never = s
        .set_with(
            "never",
            "x",
            SetOptions::new().if_match(Etag::new("\"abc\"")),
        )
        .await?;
    ensure_eq!(
        never,
        SetOutcome::ConditionFailed,
        "only-if-match on a key never written"
    );
    ensure!(
        s.get("never").await?.is_none(),
        "a rejected write created the key"
    );
    Ok(())
}

async fn only_if_new_succeeds_after_delete(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    s.put("r", "x").await?;
    s.delete("r").await?;
    let out = s.set_with("r", "y", SetOptions::new().if_new()).await?;
    ensure!(out.is_written(), "only-if-new after a delete did not write");
    Ok(())
}
