//! Listing on one instance: exact prefixes, complete pages that partition the set,
//! directories mode.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use blobjobs_store_api::ListOptions;

use crate::case::{Case, case, ensure, ensure_eq, expect_kind};
use crate::ctx::{Ctx, Failure, Instance};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!("listing", listing_is_exact_under_a_prefix, SingleInstance),
        case!(
            "listing",
            listing_pages_partition_the_set,
            SingleInstance,
            PageSize
        ),
        case!(
            "listing",
            listing_directories_mode_collapses_subtrees,
            SingleInstance,
            Directories
        ),
        case!(
            "listing",
            listing_reflects_writes_and_deletes,
            SingleInstance
        ),
        case!(
            "listing",
            a_full_last_page_has_no_next_cursor,
            SingleInstance,
            PageSize
        ),
        case!(
            "listing",
            malformed_cursors_and_page_sizes_are_invalid_input,
            SingleInstance
        ),
        case!(
            "listing",
            paginated_walk_is_stable_under_concurrent_writes,
            SingleInstance
        ),
        case!(
            "listing",
            paginated_walk_is_stable_under_concurrent_writes_across_instances,
            CrossInstance
        ),
    ]
}

fn keys(entries: &[blobjobs_store_api::ListEntry]) -> Vec<String> {
    entries.iter().map(|e| e.key.clone()).collect()
}

fn sorted(items: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = items.iter().map(|s| (*s).to_owned()).collect();
    v.sort();
    v
}

async fn listing_is_exact_under_a_prefix(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let all = ["p", "p/a", "p/b", "p/c/d", "p0", "pa", "q/x", "o"];
    for k in all {
        s.put(k, k).await?;
    }
    let expect: [(&str, Vec<String>); 5] = [
        ("p/", sorted(&["p/a", "p/b", "p/c/d"])),
        ("p", sorted(&["p", "p/a", "p/b", "p/c/d", "p0", "pa"])),
        ("", sorted(&all)),
        ("p/c/d", sorted(&["p/c/d"])),
        ("zzz", Vec::new()),
    ];
    for (prefix, want) in expect {
        let (entries, dirs) = s.list_all(ListOptions::new().prefix(prefix)).await?;
        ensure_eq!(keys(&entries), want, "listing under prefix {prefix:?}");
        ensure!(
            dirs.is_empty(),
            "a listing without directories mode returned directories {dirs:?}"
        );
    }
    Ok(())
}

/// Walks the pages one by one, checking that each is within size and in order.
async fn walk(s: &Instance, options: ListOptions, size: usize) -> Result<Vec<String>, Failure> {
    let mut out: Vec<String> = Vec::new();
    let mut cursor = None;
    for page_no in 0..1000 {
        let page = s
            .list(options.clone().page_size(size).cursor(cursor))
            .await?;
        let n = page.blobs.len() + page.directories.len();
        ensure!(
            n <= size,
            "page {page_no} has {n} entries, more than the page size {size}"
        );
        for e in page.blobs {
            if let Some(last) = out.last() {
                ensure!(
                    e.key > *last,
                    "page {page_no} returns {:?} after {last:?}: pages overlap or are out of order",
                    e.key
                );
            }
            out.push(e.key);
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            return Ok(out);
        }
    }
    Err(Failure::new("listing did not end after 1000 pages"))
}

async fn listing_pages_partition_the_set(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let all: Vec<String> = (0..23).map(|i| format!("page/{i:02}")).collect();
    for k in &all {
        s.put(k, "x").await?;
    }
    s.put("pagex", "outside").await?;
    for size in [1, 2, 5, 7, 22, 23, 24, 1000] {
        let got = walk(&s, ListOptions::new().prefix("page/"), size).await?;
        ensure_eq!(got, all, "keys over all pages with page size {size}");
    }
    Ok(())
}

async fn listing_directories_mode_collapses_subtrees(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    for k in [
        "d/top",
        "d/sub",
        "d/sub/1",
        "d/sub/2",
        "d/sub/deeper/3",
        "d/other/x",
        "dx",
    ] {
        s.put(k, "x").await?;
    }
    let want_blobs = sorted(&["d/sub", "d/top"]);
    let want_dirs = sorted(&["d/other", "d/sub"]);
    let (entries, dirs) = s
        .list_all(ListOptions::new().prefix("d/").directories(true))
        .await?;
    ensure_eq!(
        keys(&entries),
        want_blobs,
        "blobs in directories mode under \"d/\""
    );
    ensure_eq!(dirs, want_dirs, "directories under \"d/\"");
    let (entries, dirs) = s
        .list_all(ListOptions::new().prefix("d/sub/").directories(true))
        .await?;
    ensure_eq!(
        keys(&entries),
        sorted(&["d/sub/1", "d/sub/2"]),
        "blobs under \"d/sub/\""
    );
    ensure_eq!(
        dirs,
        sorted(&["d/sub/deeper"]),
        "directories under \"d/sub/\""
    );
    if ctx.caps().page_size {
        for size in 1..=4 {
            let (entries, dirs) = s
                .list_all(
                    ListOptions::new()
                        .prefix("d/")
                        .directories(true)
                        .page_size(size),
                )
                .await?;
            ensure_eq!(
                keys(&entries),
                want_blobs,
                "blobs in directories mode, page size {size}"
            );
            let unique: BTreeSet<&String> = dirs.iter().collect();
            ensure_eq!(
                unique.len(),
                dirs.len(),
                "a directory repeated across pages of size {size}"
            );
            ensure_eq!(dirs, want_dirs, "directories with page size {size}");
        }
    }
    Ok(())
}

async fn listing_reflects_writes_and_deletes(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    s.put("l/a", "1").await?;
    s.put("l/b", "2").await?;
    let (entries, _) = s.list_all(ListOptions::new().prefix("l/")).await?;
    ensure_eq!(
        keys(&entries),
        sorted(&["l/a", "l/b"]),
        "listing after two writes"
    );
    s.delete("l/a").await?;
    s.put("l/c", "3").await?;
    let (entries, _) = s.list_all(ListOptions::new().prefix("l/")).await?;
    ensure_eq!(
        keys(&entries),
        sorted(&["l/b", "l/c"]),
        "listing after a delete and a write"
    );
    Ok(())
}

/// When the last page is exactly full, it says so: no cursor to an empty trailing page.
async fn a_full_last_page_has_no_next_cursor(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    for i in 0..8 {
        s.put(&format!("full/{i}"), "x").await?;
    }
    for (prefix, pages) in [("full/", 2), ("full/", 1)] {
        let size = 8 / pages;
        let mut cursor = None;
        for page_no in 0..pages {
            let page = s
                .list(
                    ListOptions::new()
                        .prefix(prefix)
                        .page_size(size)
                        .cursor(cursor),
                )
                .await?;
            ensure_eq!(
                page.blobs.len(),
                size,
                "entries on page {page_no} of 8 keys in pages of {size}"
            );
            cursor = page.next_cursor;
            let last = page_no + 1 == pages;
            ensure_eq!(
                cursor.is_none(),
                last,
                "whether page {page_no} of 8 keys in pages of {size} is the last"
            );
        }
    }
    Ok(())
}

async fn malformed_cursors_and_page_sizes_are_invalid_input(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    s.put("k", "x").await?;
    let bad_cursor = s.list(ListOptions::new().cursor(Some("***".into()))).await;
    expect_kind(
        bad_cursor,
        blobjobs_store_api::ErrorKind::InvalidInput,
        "a listing with the cursor \"***\"",
    )?;
    let zero = s.list(ListOptions::new().page_size(0)).await;
    expect_kind(
        zero,
        blobjobs_store_api::ErrorKind::InvalidInput,
        "a listing with page size 0",
    )?;
    Ok(())
}

/// Keys that exist throughout a paginated walk appear exactly once and in order, however
/// two writers overwrite them and create and delete keys around them meanwhile. With
/// `cross`, the writers are instances of their own, and once they stop the walker must read
/// the last value each of them wrote.
async fn walk_under_writes(ctx: Ctx, cross: bool) -> Result<(), Failure> {
    let walker = ctx.instance().await?;
    let stable: Vec<String> = (0..120).map(|i| format!("k{i:03}")).collect();
    for k in &stable {
        walker.put(k, "s").await?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut started = Vec::new();
    for w in 0..2usize {
        let (wrote, first_write) = tokio::sync::oneshot::channel::<()>();
        started.push(first_write);
        let mut wrote = Some(wrote);
        let store = if cross {
            ctx.instance().await?
        } else {
            walker.clone()
        };
        let stop = stop.clone();
        let stable = stable.clone();
        writers.push(tokio::spawn(async move {
            let mut last = None;
            let mut i = 0usize;
            // Every writer writes at least once, whenever the walks end; the bound keeps it
            // finite even if they never do.
            while i == 0 || (!stop.load(Ordering::Relaxed) && i < 5_000) {
                // Overwrite a stable key, then create and delete a key right after it.
                // Each writer has its own half of the keys, so its last write stays last.
                let key = &stable[(i * 7) % (stable.len() / 2) * 2 + w];
                let value = format!("w{w}-{i}");
                store.put(key, value.clone()).await?;
                last = Some((key.clone(), value));
                let churn = format!("{key}-{w}");
                store.put(&churn, "c").await?;
                store.delete(&churn).await?;
                if let Some(wrote) = wrote.take() {
                    let _ = wrote.send(());
                }
                i += 1;
            }
            Ok::<_, Failure>(last)
        }));
    }
    // The walks start once both writers are under way (or have failed, which ends the case
    // below).
    for first_write in started {
        let _ = first_write.await;
    }
    let mut options = ListOptions::new();
    if ctx.caps().page_size {
        options = options.page_size(7);
    }
    let mut walked = Ok(());
    for walk in 0..3 {
        let (entries, _) = match walker.list_all(options.clone()).await {
            Ok(listed) => listed,
            Err(e) => {
                walked = Err(e);
                break;
            }
        };
        let seen: Vec<&str> = entries
            .iter()
            .map(|e| e.key.as_str())
            .filter(|k| !k.contains('-'))
            .collect();
        if seen != stable {
            walked = Err(Failure::new(format!(
                "walk {walk} saw {} of the {} keys that existed throughout (missed, repeated or out of order); it saw {seen:?}",
                seen.len(),
                stable.len()
            )));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut last_writes = Vec::new();
    for writer in writers {
        let last = writer
            .await
            .map_err(|e| Failure::new(format!("a writer task failed: {e}")))??;
        last_writes.extend(last);
    }
    walked?;
    if cross {
        for (key, value) in last_writes {
            let blob = walker.get(&key).await?;
            let read = blob.map(|b| String::from_utf8_lossy(&b.value).into_owned());
            if read.as_deref() != Some(value.as_str()) {
                return Err(Failure::new(format!(
                    "a writer instance last wrote {value:?} to {key:?}; the walking instance reads {}",
                    read.map(|r| format!("{r:?}"))
                        .unwrap_or_else(|| "not found".to_owned())
                ))
                .because(crate::causes::NOT_VISIBLE_ACROSS_INSTANCES));
            }
        }
    }
    Ok(())
}

async fn paginated_walk_is_stable_under_concurrent_writes(ctx: Ctx) -> Result<(), Failure> {
    walk_under_writes(ctx, false).await
}

async fn paginated_walk_is_stable_under_concurrent_writes_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    walk_under_writes(ctx, true).await
}
