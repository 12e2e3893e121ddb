//! Listing on one instance: exact prefixes, complete pages that partition the set,
//! directories mode.

use std::collections::BTreeSet;

use blobjobs_store_api::ListOptions;

use crate::case::{Case, case, ensure, ensure_eq};
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
