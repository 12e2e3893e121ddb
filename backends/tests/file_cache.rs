//! The file backend's listing cache: a cached listing is reused while the store does not
//! change, follows the changes made through its own handle exactly, and never hides a change
//! made through another handle, another catalog handle or another OS process.
//!
//! The child process is this test binary run again by `blobjobs_test_support::child`, whose
//! entry test `child_process_entry` does nothing in a normal run.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use blobjobs_backends::{Catalog, FileOptions, FileStore};
use blobjobs_store_api::{BlobStore, BlobStoreExt as _, Etag, ListEntry, ListOptions, SetOptions};
use blobjobs_test_support::{all_keys, child, put, stream_of};
use bytes::Bytes;

const ROOT: &str = "BACKENDS_FILE_CACHE_TEST_ROOT";
const STORE: &str = "cached";
const KEYS: usize = 30;

fn open(root: &Path) -> FileStore {
    FileStore::open(root, STORE, FileOptions { fsync: false }).unwrap()
}

fn key(i: usize) -> String {
    format!("k{i:02}")
}

/// A store of [`KEYS`] keys, each holding its own name.
async fn filled(root: &Path) -> FileStore {
    let store = open(root);
    for i in 0..KEYS {
        put(&store, &key(i), key(i).as_bytes()).await;
    }
    store
}

/// Every entry of the store, page by page (small pages, so that the cache serves several).
async fn entries(store: &dyn BlobStore) -> Vec<ListEntry> {
    store
        .list_all(ListOptions::new().page_size(7))
        .await
        .unwrap()
}

async fn keys(store: &dyn BlobStore) -> Vec<String> {
    entries(store).await.into_iter().map(|e| e.key).collect()
}

fn etag_of(entries: &[ListEntry], key: &str) -> Etag {
    entries
        .iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("{key} is not listed"))
        .etag
        .clone()
}

/// Copies the blob file of `from` to the file of a new key `to` behind the store's back: a
/// change no writer announced, which only a walk of the directory can see.
fn sneak_in(store: &FileStore, from: &str, to: &str) {
    std::fs::copy(store.key_path(from).unwrap(), store.key_path(to).unwrap()).unwrap();
}

#[tokio::test]
async fn listings_are_served_from_the_cache_while_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = filled(dir.path()).await;
    let first = entries(&store).await;
    assert_eq!(first.len(), KEYS);
    // A file that appears without a write through the store is not seen by this handle's
    // listing: it comes from the cache, headers included.
    sneak_in(&store, "k00", "unannounced");
    assert_eq!(entries(&store).await, first);
    assert_eq!(
        entries(&store.clone()).await,
        first,
        "clones share the cache"
    );
    // A new handle has no cache and walks the directory.
    let other = open(dir.path());
    let fresh = keys(&other).await;
    assert_eq!(fresh.len(), KEYS + 1);
    assert!(fresh.contains(&"unannounced".to_owned()));
    // A write through this handle keeps its cache (updated with the write); one through
    // another handle makes the next listing walk again.
    put(&store, "k00", b"again").await;
    assert_eq!(keys(&store).await.len(), KEYS);
    put(&other, "k01", b"again").await;
    assert_eq!(keys(&store).await, fresh);
}

/// Lists `store` and a new handle on the same store (which has no cache and so walks the
/// directory) and checks that they agree on every key and header, with and without a prefix.
async fn assert_lists_like_a_walk(store: &FileStore, root: &Path) {
    let walked = open(root);
    assert_eq!(entries(store).await, entries(&walked).await);
    for prefix in ["k1", "new/"] {
        let (cached, _) = all_keys(store, ListOptions::new().prefix(prefix)).await;
        let (fresh, _) = all_keys(&walked, ListOptions::new().prefix(prefix)).await;
        assert_eq!(cached, fresh, "prefix {prefix}");
    }
}

#[tokio::test]
async fn a_handles_own_changes_keep_its_cached_listing_exact() {
    let dir = tempfile::tempdir().unwrap();
    filled(dir.path()).await;
    // A cache of a prefix listing, then changes inside and outside that prefix.
    let store = open(dir.path());
    let (listed, _) = all_keys(&store, ListOptions::new().prefix("k1")).await;
    assert_eq!(listed.len(), 10);
    put(&store, "k1-new", b"inside").await;
    put(&store, "new/outside", b"outside").await;
    let (cached, _) = all_keys(&store, ListOptions::new().prefix("k1")).await;
    let (walked, _) = all_keys(&open(dir.path()), ListOptions::new().prefix("k1")).await;
    assert_eq!(cached, walked);
    assert_eq!(cached.len(), 11);
    // Then a cache of the whole store.
    assert_lists_like_a_walk(&store, dir.path()).await;

    put(&store, "new/key", b"new").await;
    put(&store, "k03", b"overwritten").await;
    store.delete("k04").await.unwrap();
    store.delete("never-there").await.unwrap();
    let refused = store
        .set("k05", Bytes::new(), SetOptions::new().if_new())
        .await
        .unwrap();
    assert!(!refused.is_written());
    let current = store.get_metadata("k06").await.unwrap().unwrap().etag;
    let swapped = store
        .set(
            "k06",
            Bytes::from_static(b"cas"),
            SetOptions::new().if_match(current),
        )
        .await
        .unwrap();
    assert!(swapped.is_written());
    // A body long enough to take the streaming path.
    let long = vec![Bytes::from(vec![1u8; 50_000]); 3];
    store
        .set_stream("k07", stream_of(long), None, SetOptions::new())
        .await
        .unwrap();
    assert_lists_like_a_walk(&store, dir.path()).await;

    // The cache is still in use: a file slipped in behind the store's back is not seen.
    sneak_in(&store, "k00", "unannounced");
    assert!(!keys(&store).await.contains(&"unannounced".to_owned()));
    open(dir.path()).delete_all().await.unwrap();
    assert!(
        keys(&store).await.is_empty(),
        "a store deleted through another handle"
    );
}

#[tokio::test]
async fn a_cached_listing_sees_every_change_made_through_another_handle() {
    let dir = tempfile::tempdir().unwrap();
    let a = filled(dir.path()).await;
    let b = open(dir.path());
    let before = entries(&a).await;

    put(&b, "new", b"from b").await;
    let listed = keys(&a).await;
    assert!(listed.contains(&"new".to_owned()), "a new key");
    assert_eq!(listed.len(), KEYS + 1);

    let etag = put(&b, "k05", b"changed by b").await;
    let after = entries(&a).await;
    assert_ne!(etag_of(&before, "k05"), etag);
    assert_eq!(
        etag_of(&after, "k05"),
        etag,
        "an overwritten key's new header"
    );
    let entry = after.iter().find(|e| e.key == "k05").unwrap();
    assert_eq!(entry.size, b"changed by b".len() as u64);

    b.delete("k06").await.unwrap();
    assert!(!keys(&a).await.contains(&"k06".to_owned()), "a deleted key");

    // A conditional write that fails changes nothing, and the listing stays right.
    let refused = b
        .set("k07", Bytes::from_static(b"x"), SetOptions::new().if_new())
        .await
        .unwrap();
    assert!(!refused.is_written());
    assert_eq!(keys(&a).await.len(), KEYS);

    open(dir.path()).delete_all().await.unwrap();
    assert!(keys(&a).await.is_empty(), "a deleted store");
}

#[tokio::test]
async fn a_cached_listing_sees_headers_read_before_a_change_made_elsewhere() {
    // The first page is listed (its headers cached), then another handle rewrites a key on
    // that page and one on a later page; both show their new ETags.
    let dir = tempfile::tempdir().unwrap();
    let a = filled(dir.path()).await;
    let b = open(dir.path());
    let page = a.list(ListOptions::new().page_size(7)).await.unwrap();
    assert_eq!(page.blobs.len(), 7);
    let near = put(&b, "k01", b"near").await;
    let far = put(&b, "k20", b"far").await;
    let listed = entries(&a).await;
    assert_eq!(etag_of(&listed, "k01"), near);
    assert_eq!(etag_of(&listed, "k20"), far);
}

#[tokio::test]
async fn catalog_handles_of_one_store_share_a_cache_and_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::file(dir.path().to_path_buf(), FileOptions { fsync: false }).unwrap();
    let one = catalog.store("site/cached").unwrap();
    for i in 0..KEYS {
        put(one.as_ref(), &key(i), b"v").await;
    }
    let listed = entries(one.as_ref()).await;
    // The catalog hands out handles that share the cache: a file slipped in behind the
    // store's back stays unseen by a second handle of the same store.
    let direct = FileStore::open(dir.path(), "site/cached", FileOptions::default()).unwrap();
    sneak_in(&direct, "k00", "unannounced");
    let two = catalog.store("site/cached").unwrap();
    assert_eq!(entries(two.as_ref()).await, listed);
    // A write through one handle is seen through the other, from the shared cache.
    put(two.as_ref(), "written", b"v").await;
    let (keys, _) = all_keys(one.as_ref(), ListOptions::new()).await;
    assert!(keys.contains(&"written".to_owned()));
    assert!(!keys.contains(&"unannounced".to_owned()));
    // A write through a handle from outside the catalog makes the next listing walk again.
    put(&direct, "direct", b"v").await;
    let (keys, _) = all_keys(one.as_ref(), ListOptions::new()).await;
    assert!(keys.contains(&"direct".to_owned()));
    assert!(keys.contains(&"unannounced".to_owned()));
}

#[test]
fn a_cached_listing_sees_changes_made_by_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(filled(dir.path()));
    let before = rt.block_on(entries(&store));
    assert_eq!(before.len(), KEYS);

    run_child("change", dir.path());

    let after = rt.block_on(entries(&store));
    let listed: Vec<&str> = after.iter().map(|e| e.key.as_str()).collect();
    assert!(listed.contains(&"from-child"), "the child's new key");
    assert!(!listed.contains(&"k01"), "the key the child deleted");
    assert_eq!(listed.len(), KEYS);
    let blob = rt.block_on(store.get("k00")).unwrap().unwrap();
    assert_eq!(blob.value.as_ref(), b"child");
    assert_eq!(etag_of(&after, "k00"), blob.info.etag);
    assert_ne!(etag_of(&before, "k00"), blob.info.etag);
}

/// Runs this test binary as a child process in `role` and waits for it to succeed.
fn run_child(role: &str, root: &Path) {
    let mut cmd = child::command(role);
    cmd.env(ROOT, root);
    child::finish(cmd.spawn().unwrap(), Duration::from_secs(60));
}

/// The entry point of the child process; a no-op in a normal test run.
#[test]
fn child_process_entry() {
    let Some(role) = child::role() else {
        return;
    };
    let root = PathBuf::from(std::env::var(ROOT).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    match role.as_str() {
        "change" => rt.block_on(async {
            let store = open(&root);
            put(&store, "from-child", b"child").await;
            put(&store, "k00", b"child").await;
            store.delete("k01").await.unwrap();
        }),
        other => panic!("unknown role {other}"),
    }
}
