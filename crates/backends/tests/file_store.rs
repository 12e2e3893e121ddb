//! `BlobStore` behaviour checks, written once against `&dyn BlobStore` and run on the file
//! backend and the memory backend, plus checks that only the file backend can pass (files on
//! disk, damaged files, several handles, named stores).

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backends::{Catalog, FileOptions, FileStore, MemoryStore};
use bytes::Bytes;
use store_api::{
    BlobStore, ByteStream, Condition, ErrorKind, ListOptions, Metadata, SetOptions, SetOutcome,
    once_stream,
};

// ---------------------------------------------------------------------------------------------
// Helpers

fn file_store(dir: &Path) -> FileStore {
    FileStore::open(dir, "test-store", FileOptions::default()).unwrap()
}

async fn put(store: &dyn BlobStore, key: &str, value: &[u8]) -> store_api::Etag {
    match store
        .set(key, Bytes::copy_from_slice(value), SetOptions::new())
        .await
        .unwrap()
    {
        SetOutcome::Written { etag } => etag,
        SetOutcome::ConditionFailed => panic!("unconditional set of {key:?} was refused"),
    }
}

async fn all_keys(store: &dyn BlobStore, options: ListOptions) -> (Vec<String>, Vec<String>) {
    let mut blobs = Vec::new();
    let mut dirs = Vec::new();
    let mut cursor = None;
    for _ in 0..10_000 {
        let page = store.list(options.clone().cursor(cursor)).await.unwrap();
        blobs.extend(page.blobs.into_iter().map(|e| e.key));
        dirs.extend(page.directories);
        cursor = page.next_cursor;
        if cursor.is_none() {
            return (blobs, dirs);
        }
    }
    panic!("listing never ended");
}

fn stream_of(chunks: Vec<Bytes>) -> ByteStream {
    Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)))
}

async fn collect(mut stream: ByteStream) -> store_api::Result<Vec<u8>> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// The awkward keys of the issue: siblings that are prefixes of each other, characters with a
/// meaning in URLs or paths, dot segments, unicode, case and the longest key.
fn awkward_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "a",
        "a/b",
        "a/b/c",
        "a b",
        "a%b",
        "a%2Fb",
        "%41",
        "A",
        "a?b",
        "a#b",
        "..",
        ".",
        "../x",
        "x/../y",
        "./z",
        "z/.",
        "a//b",
        "ü/ß",
        "日本語",
        "emoji-😀",
        "trailing/",
        "-",
        "_",
        "~",
        "a.b",
        "a.b.b",
        "\\",
        "nul\u{0}byte",
        "x\ny",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    keys.push("k".repeat(600));
    keys.push("%".repeat(600));
    keys.push("ü".repeat(300));
    keys.push(format!("{}/{}", "d".repeat(250), "e".repeat(349)));
    keys.push("K".repeat(600));
    keys
}

// ---------------------------------------------------------------------------------------------
// Behaviours of every BlobStore

async fn round_trip(store: &dyn BlobStore) {
    let big: Vec<u8> = (0..3 * 1024 * 1024 + 17).map(|i| (i % 251) as u8).collect();
    for (key, value) in [
        ("small", b"hello".to_vec()),
        ("empty", Vec::new()),
        ("big", big),
    ] {
        let etag = put(store, key, &value).await;
        let blob = store.get(key).await.unwrap().unwrap();
        assert_eq!(blob.value.as_ref(), value.as_slice(), "{key}");
        assert_eq!(blob.info.etag, etag, "{key}");
        assert_eq!(blob.info.size, value.len() as u64, "{key}");
        let info = store.get_metadata(key).await.unwrap().unwrap();
        assert_eq!(info, blob.info, "{key}");
        let page = store.list(ListOptions::new().prefix(key)).await.unwrap();
        let entry = page.blobs.iter().find(|e| e.key == key).unwrap();
        assert_eq!(entry.etag, etag, "{key}");
        assert_eq!(entry.size, value.len() as u64, "{key}");
        assert_eq!(entry.last_modified, info.last_modified, "{key}");
    }
    assert!(store.get("missing").await.unwrap().is_none());
    assert!(store.get_metadata("missing").await.unwrap().is_none());
}

async fn etags_change_on_every_write(store: &dyn BlobStore) {
    let mut seen = BTreeSet::new();
    for _ in 0..5 {
        // The same content again still gets a new ETag.
        let etag = put(store, "same", b"same content").await;
        assert!(
            seen.insert(etag.as_str().to_owned()),
            "etag repeated: {etag}"
        );
    }
}

async fn metadata_is_stored_and_replaced(store: &dyn BlobStore) {
    let meta = Metadata::from_pairs([("colour", "grün"), ("n", "1")]);
    store
        .set(
            "m",
            Bytes::from_static(b"v1"),
            SetOptions::new().metadata(meta.clone()),
        )
        .await
        .unwrap();
    assert_eq!(store.get("m").await.unwrap().unwrap().info.metadata, meta);
    assert_eq!(
        store.get_metadata("m").await.unwrap().unwrap().metadata,
        meta
    );
    // A later write replaces the metadata along with the value.
    put(store, "m", b"v2").await;
    let blob = store.get("m").await.unwrap().unwrap();
    assert_eq!(blob.value.as_ref(), b"v2");
    assert!(blob.info.metadata.is_empty());
    let too_big = Metadata::from_pairs([("k", "x".repeat(2000))]);
    let err = store
        .set("m", Bytes::new(), SetOptions::new().metadata(too_big))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert_eq!(store.get("m").await.unwrap().unwrap().value.as_ref(), b"v2");
}

async fn conditions_hold(store: &dyn BlobStore) {
    let v = |s: &'static str| Bytes::from_static(s.as_bytes());
    let first = store
        .set("c", v("one"), SetOptions::new().if_new())
        .await
        .unwrap();
    let SetOutcome::Written { etag: e1 } = first else {
        panic!("if_new on a missing key was refused");
    };
    let again = store
        .set("c", v("two"), SetOptions::new().if_new())
        .await
        .unwrap();
    assert_eq!(again, SetOutcome::ConditionFailed);
    assert_eq!(
        store.get("c").await.unwrap().unwrap().value.as_ref(),
        b"one"
    );

    let matched = store
        .set("c", v("three"), SetOptions::new().if_match(e1.clone()))
        .await
        .unwrap();
    let e3 = matched
        .etag()
        .cloned()
        .expect("if_match with the current etag was refused");
    assert_ne!(e3, e1);
    let stale = store
        .set("c", v("four"), SetOptions::new().if_match(e1))
        .await
        .unwrap();
    assert_eq!(stale, SetOutcome::ConditionFailed);
    assert_eq!(
        store.get("c").await.unwrap().unwrap().value.as_ref(),
        b"three"
    );

    let absent = store
        .set("c-missing", v("x"), SetOptions::new().if_match(e3))
        .await
        .unwrap();
    assert_eq!(absent, SetOutcome::ConditionFailed);
    assert!(store.get("c-missing").await.unwrap().is_none());
}

async fn delete_works_and_tolerates_missing(store: &dyn BlobStore) {
    store.delete("never-there").await.unwrap();
    store.delete("deep/never/there").await.unwrap();
    put(store, "d", b"x").await;
    let long = format!("{}/leaf", "p".repeat(450));
    put(store, &long, b"y").await;
    store.delete("d").await.unwrap();
    store.delete(&long).await.unwrap();
    store.delete("d").await.unwrap();
    assert!(store.get("d").await.unwrap().is_none());
    assert!(store.get_metadata(&long).await.unwrap().is_none());
    let (keys, _) = all_keys(store, ListOptions::new()).await;
    assert!(!keys.contains(&"d".to_owned()) && !keys.contains(&long));
    // The key can be written again after its directories were tidied away.
    put(store, &long, b"z").await;
    assert_eq!(
        store.get(&long).await.unwrap().unwrap().value.as_ref(),
        b"z"
    );
}

async fn listing_pages_prefixes_and_directories(store: &dyn BlobStore) {
    let keys = [
        "top", "cart/42", "cart/43", "cart/x/1", "cart/x/2", "cart0", "z/1", "a", "a/b",
    ];
    for k in keys {
        put(store, k, k.as_bytes()).await;
    }
    let mut sorted: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    sorted.sort();
    for size in [1, 2, 3, 4, 100] {
        let (blobs, dirs) = all_keys(store, ListOptions::new().page_size(size)).await;
        assert_eq!(blobs, sorted, "page size {size}");
        assert!(dirs.is_empty());
        let (blobs, dirs) =
            all_keys(store, ListOptions::new().directories(true).page_size(size)).await;
        assert_eq!(blobs, ["a", "cart0", "top"], "page size {size}");
        assert_eq!(dirs, ["a", "cart", "z"], "page size {size}");
        let (blobs, dirs) = all_keys(
            store,
            ListOptions::new()
                .prefix("cart/")
                .directories(true)
                .page_size(size),
        )
        .await;
        assert_eq!(blobs, ["cart/42", "cart/43"], "page size {size}");
        assert_eq!(dirs, ["cart/x"], "page size {size}");
    }
    let (blobs, _) = all_keys(store, ListOptions::new().prefix("cart")).await;
    assert_eq!(
        blobs,
        ["cart/42", "cart/43", "cart/x/1", "cart/x/2", "cart0"]
    );
    let (blobs, _) = all_keys(store, ListOptions::new().prefix("nothing")).await;
    assert!(blobs.is_empty());
    // Exactly a page's worth leaves no empty trailing page.
    let page = store
        .list(ListOptions::new().prefix("cart/").page_size(4))
        .await
        .unwrap();
    assert_eq!(page.blobs.len(), 4);
    assert_eq!(page.next_cursor, None);

    let err = store
        .list(ListOptions::new().cursor(Some("***".into())))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let err = store
        .list(ListOptions::new().page_size(0))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

async fn awkward_keys_round_trip_and_never_alias(store: &dyn BlobStore) {
    let keys = awkward_keys();
    for (i, key) in keys.iter().enumerate() {
        put(store, key, format!("value {i}").as_bytes()).await;
    }
    for (i, key) in keys.iter().enumerate() {
        let blob = store.get(key).await.unwrap();
        let blob = blob.unwrap_or_else(|| panic!("{key:?} was not found"));
        assert_eq!(
            blob.value.as_ref(),
            format!("value {i}").as_bytes(),
            "{key:?}"
        );
    }
    let mut expected = keys.clone();
    expected.sort();
    let (listed, _) = all_keys(store, ListOptions::new().page_size(5)).await;
    assert_eq!(listed, expected);
    // Prefixes that are themselves awkward select exactly their keys.
    for prefix in ["a", "a/", "%", "ü", ".", "..", "K"] {
        let (listed, _) = all_keys(store, ListOptions::new().prefix(prefix)).await;
        let want: Vec<String> = expected
            .iter()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect();
        assert_eq!(listed, want, "prefix {prefix:?}");
    }
    for key in &keys {
        store.delete(key).await.unwrap();
    }
    let (listed, _) = all_keys(store, ListOptions::new()).await;
    assert!(listed.is_empty(), "{listed:?}");
}

async fn invalid_keys_are_rejected(store: &dyn BlobStore) {
    for key in [String::new(), "/a".into(), "%2Fa".into(), "k".repeat(601)] {
        let kind = |r: store_api::Error| r.kind();
        assert_eq!(
            kind(store.get(&key).await.unwrap_err()),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(store.get_metadata(&key).await.unwrap_err()),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(
                store
                    .set(&key, Bytes::new(), SetOptions::new())
                    .await
                    .unwrap_err()
            ),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(store.delete(&key).await.unwrap_err()),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(store.get_stream(&key).await.err().unwrap()),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(
                store
                    .set_stream(&key, once_stream(Bytes::new()), None, SetOptions::new())
                    .await
                    .unwrap_err()
            ),
            ErrorKind::InvalidInput
        );
    }
}

async fn streams_round_trip_and_respect_max_size(store: &dyn BlobStore) {
    let chunks: Vec<Bytes> = (0..40u8)
        .map(|i| Bytes::from(vec![i; 10_000 + usize::from(i)]))
        .collect();
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let meta = Metadata::from_pairs([("streamed", true)]);
    let outcome = store
        .set_stream(
            "s",
            stream_of(chunks.clone()),
            Some(whole.len() as u64),
            SetOptions::new().metadata(meta.clone()),
        )
        .await
        .unwrap();
    let etag = outcome.etag().cloned().unwrap();
    let (info, stream) = store.get_stream("s").await.unwrap().unwrap();
    assert_eq!(info.etag, etag);
    assert_eq!(info.size, whole.len() as u64);
    assert_eq!(info.metadata, meta);
    assert_eq!(collect(stream).await.unwrap(), whole);
    assert_eq!(
        store.get("s").await.unwrap().unwrap().value.as_ref(),
        whole.as_slice()
    );
    assert!(store.get_stream("s-missing").await.unwrap().is_none());

    // One byte over the limit writes nothing, neither a new key nor over an old one.
    let err = store
        .set_stream(
            "s2",
            stream_of(chunks.clone()),
            Some(whole.len() as u64 - 1),
            SetOptions::new(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(store.get("s2").await.unwrap().is_none());
    let err = store
        .set_stream("s", stream_of(chunks), Some(100), SetOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(store.get_metadata("s").await.unwrap().unwrap().etag, etag);

    // Conditions apply to streamed writes too; an empty stream is an empty value.
    let refused = store
        .set_stream("s", stream_of(vec![]), None, SetOptions::new().if_new())
        .await
        .unwrap();
    assert_eq!(refused, SetOutcome::ConditionFailed);
    store
        .set_stream(
            "s",
            stream_of(vec![]),
            None,
            SetOptions::new().if_match(etag),
        )
        .await
        .unwrap()
        .etag()
        .unwrap();
    assert!(store.get("s").await.unwrap().unwrap().value.is_empty());
}

async fn compare_and_swap_loses_no_update(store: Arc<dyn BlobStore>) {
    put(store.as_ref(), "counter", b"0").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                cas_increment(store.as_ref(), "counter").await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let blob = store.get("counter").await.unwrap().unwrap();
    assert_eq!(std::str::from_utf8(&blob.value).unwrap(), "320");
}

async fn cas_increment(store: &dyn BlobStore, key: &str) {
    for _ in 0..100_000 {
        let blob = store.get(key).await.unwrap().unwrap();
        let n: u64 = std::str::from_utf8(&blob.value).unwrap().parse().unwrap();
        let next = Bytes::from((n + 1).to_string());
        let condition = Condition::IfMatch(blob.info.etag);
        let outcome = store
            .set(key, next, SetOptions::new().condition(condition))
            .await
            .unwrap();
        if outcome.is_written() {
            return;
        }
    }
    panic!("compare-and-swap never succeeded");
}

/// Keys that exist throughout a paginated walk appear exactly once, however others write.
async fn paginated_walk_is_stable_under_writes(store: Arc<dyn BlobStore>) {
    let stable: Vec<String> = (0..120).map(|i| format!("k{i:03}")).collect();
    for k in &stable {
        put(store.as_ref(), k, b"s").await;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let store = store.clone();
        let stop = stop.clone();
        let stable = stable.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 5_000 {
                // Overwrite a stable key, create and delete keys around it.
                let k = &stable[(i * 7 + w) % stable.len()];
                put(store.as_ref(), k, format!("{i}").as_bytes()).await;
                let churn = format!("{k}-{w}");
                put(store.as_ref(), &churn, b"c").await;
                store.delete(&churn).await.unwrap();
                i += 1;
            }
        }));
    }
    for _ in 0..3 {
        let (keys, _) = all_keys(store.as_ref(), ListOptions::new().page_size(7)).await;
        let stable_seen: Vec<&String> = keys.iter().filter(|k| !k.contains('-')).collect();
        assert_eq!(
            stable_seen.len(),
            stable.len(),
            "a stable key was missed or repeated"
        );
        assert!(stable_seen.iter().zip(&stable).all(|(a, b)| *a == b));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Stamping the behaviours out for both backends

macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {
        mod on_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let store = super::file_store(dir.path());
                    super::$name(&store).await;
                    super::assert_no_temp_files(dir.path());
                }
            )*
        }
        mod on_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&backends::MemoryStore::new()).await;
                }
            )*
        }
    };
}

behaviours!(
    round_trip,
    etags_change_on_every_write,
    metadata_is_stored_and_replaced,
    conditions_hold,
    delete_works_and_tolerates_missing,
    listing_pages_prefixes_and_directories,
    awkward_keys_round_trip_and_never_alias,
    invalid_keys_are_rejected,
    streams_round_trip_and_respect_max_size,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_swap_loses_no_update_on_file() {
    let dir = tempfile::tempdir().unwrap();
    let options = FileOptions { fsync: false };
    let store: Arc<dyn BlobStore> = Arc::new(FileStore::open(dir.path(), "cas", options).unwrap());
    compare_and_swap_loses_no_update(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compare_and_swap_loses_no_update_on_memory() {
    compare_and_swap_loses_no_update(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paginated_walk_is_stable_under_writes_on_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), "walk", FileOptions { fsync: false }).unwrap();
    paginated_walk_is_stable_under_writes(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paginated_walk_is_stable_under_writes_on_memory() {
    paginated_walk_is_stable_under_writes(Arc::new(MemoryStore::new())).await;
}

// ---------------------------------------------------------------------------------------------
// File backend only

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

fn assert_no_temp_files(dir: &Path) {
    let temps: Vec<PathBuf> = files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(temps.is_empty(), "temporary files left behind: {temps:?}");
}

#[tokio::test]
async fn file_names_are_encoded_and_stay_inside_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    for key in awkward_keys() {
        put(&store, &key, b"x").await;
        let path = store.key_path(&key).unwrap();
        assert!(
            path.starts_with(store.dir()),
            "{key:?} maps outside: {path:?}"
        );
        for part in path.strip_prefix(store.dir()).unwrap().components() {
            let part = part.as_os_str().to_str().unwrap();
            assert!(part.len() <= 255, "{part}");
            assert!(!part.starts_with('.'), "{part}");
            assert!(part.bytes().all(|b| b.is_ascii_graphic()), "{part}");
        }
    }
    // Nothing but the store's own directory appears under the root.
    let top: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(top.len(), 1);
    for file in files_under(dir.path()) {
        assert!(file.starts_with(store.dir()));
    }
}

#[tokio::test]
async fn temp_and_foreign_files_are_never_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let long = "q".repeat(450);
    put(&store, "real", b"1").await;
    put(&store, &long, b"2").await;
    let chunk_dir = store
        .key_path(&long)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    for stray in [
        store.dir().join(".tmp-0123456789abcdef"),
        store.dir().join(".tmp-x.b"),
        chunk_dir.join(".tmp-feedfacefeedface"),
        store.dir().join("Upper.b"),
        store.dir().join("%61.b"),
        store.dir().join("junk"),
        store.dir().join("bad%ZZ.b"),
    ] {
        std::fs::write(&stray, b"not a blob").unwrap();
    }
    let (keys, _) = all_keys(&store, ListOptions::new()).await;
    assert_eq!(keys, [long.clone(), "real".to_owned()]);
}

#[tokio::test]
async fn damaged_files_are_corrupt_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    put(&store, "good", b"fine").await;
    let good = std::fs::read(store.key_path("good").unwrap()).unwrap();
    let mut short = good.clone();
    short.pop();
    let mut long = good.clone();
    long.push(b'!');
    let mut bad_json = good.clone();
    bad_json[13] = b'#';
    let mut huge_len = good.clone();
    huge_len[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("garbage", b"this is not a blob file at all".to_vec()),
        ("short", short),
        ("long", long),
        ("bad-json", bad_json),
        ("huge-len", huge_len),
        ("magic-only", good[..8].to_vec()),
    ];
    for (key, bytes) in &cases {
        put(&store, key, b"placeholder").await;
        std::fs::write(store.key_path(key).unwrap(), bytes).unwrap();
        assert_eq!(
            store.get(key).await.unwrap_err().kind(),
            ErrorKind::Corrupt,
            "{key}"
        );
        assert_eq!(
            store.get_metadata(key).await.unwrap_err().kind(),
            ErrorKind::Corrupt,
            "{key}"
        );
        let streamed = match store.get_stream(key).await {
            Err(e) => Err(e),
            Ok(Some((_, stream))) => collect(stream).await.map(|_| ()),
            Ok(None) => panic!("{key} vanished"),
        };
        assert_eq!(streamed.unwrap_err().kind(), ErrorKind::Corrupt, "{key}");
        let err = store
            .list(ListOptions::new().prefix(*key))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{key}");
        // An unconditional write or a delete repairs the key.
        put(&store, key, b"repaired").await;
        assert_eq!(
            store.get(key).await.unwrap().unwrap().value.as_ref(),
            b"repaired"
        );
    }
    assert_eq!(
        store.get("good").await.unwrap().unwrap().value.as_ref(),
        b"fine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_a_partial_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), "partial", FileOptions { fsync: false }).unwrap();
    put(&store, "v", &[0u8; 1000]).await;
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 1..=60u32 {
                // Every version is one repeated byte, of a length that differs per version.
                let len = 200_000 + (i as usize % 7) * 150_000;
                put(&store, "v", &vec![i as u8; len]).await;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut reads = 0;
    while !writer.is_finished() && Instant::now() < deadline {
        let blob = store.get("v").await.unwrap().unwrap();
        assert_eq!(blob.value.len() as u64, blob.info.size);
        let first = blob.value[0];
        assert!(
            blob.value.iter().all(|b| *b == first),
            "mixed versions in one read"
        );
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
}

#[tokio::test]
async fn two_handles_share_one_directory_and_stores_stay_apart() {
    let dir = tempfile::tempdir().unwrap();
    let a = FileStore::open(dir.path(), "site-1/deploy:abc:x", FileOptions::default()).unwrap();
    let b = FileStore::open(
        dir.path(),
        "site-1/deploy:abc:x",
        FileOptions { fsync: false },
    )
    .unwrap();
    let other = FileStore::open(dir.path(), "site-1/deploy:abc:y", FileOptions::default()).unwrap();
    let etag = put(&a, "k", b"from a").await;
    let seen = b.get("k").await.unwrap().unwrap();
    assert_eq!(seen.value.as_ref(), b"from a");
    assert_eq!(seen.info.etag, etag);
    assert!(other.get("k").await.unwrap().is_none());
    let outcome = b
        .set(
            "k",
            Bytes::from_static(b"from b"),
            SetOptions::new().if_match(etag),
        )
        .await
        .unwrap();
    assert!(outcome.is_written());
    assert_eq!(a.get("k").await.unwrap().unwrap().value.as_ref(), b"from b");
}

#[tokio::test]
async fn named_stores_are_listed_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let long_name = format!("site/{}", "ü".repeat(509));
    assert_eq!(long_name.len(), 1023);
    let names = [
        "site-1/deploy:abc:x",
        "site-1/other",
        "Site-2",
        "ü",
        "site-1/empty",
    ];
    for name in names.iter().copied().chain([long_name.as_str()]) {
        let store = FileStore::open(dir.path(), name, FileOptions { fsync: false }).unwrap();
        if name == "site-1/empty" {
            put(&store, "gone", b"x").await;
            store.delete("gone").await.unwrap();
        } else {
            put(&store, "a", b"1").await;
            put(&store, &"z/".repeat(150), b"2").await;
        }
    }
    let mut expected: Vec<String> = ["site-1/deploy:abc:x", "site-1/other", "Site-2", "ü"]
        .into_iter()
        .map(String::from)
        .chain([long_name.clone()])
        .collect();
    expected.sort();
    assert_eq!(
        FileStore::list_stores(dir.path(), "").await.unwrap(),
        expected
    );
    assert_eq!(
        FileStore::list_stores(dir.path(), "site-1/").await.unwrap(),
        ["site-1/deploy:abc:x", "site-1/other"]
    );
    assert_eq!(
        FileStore::list_stores(dir.path(), "site/").await.unwrap(),
        std::slice::from_ref(&long_name)
    );
    let long = FileStore::open(dir.path(), &long_name, FileOptions::default()).unwrap();
    assert_eq!(long.get("a").await.unwrap().unwrap().value.as_ref(), b"1");

    assert_eq!(
        FileStore::delete_store(dir.path(), "site-1/other")
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        FileStore::delete_store(dir.path(), &long_name)
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        FileStore::delete_store(dir.path(), "never-made")
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        FileStore::list_stores(dir.path(), "").await.unwrap(),
        ["Site-2", "site-1/deploy:abc:x", "ü"]
    );
    assert!(long.get("a").await.unwrap().is_none());
    // A deleted store can be written again.
    put(&long, "again", b"3").await;
    assert_eq!(
        long.get("again").await.unwrap().unwrap().value.as_ref(),
        b"3"
    );

    for bad in [String::new(), "n".repeat(1025)] {
        let err = FileStore::open(dir.path(), &bad, FileOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    assert!(
        FileStore::list_stores(dir.path().join("absent"), "")
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn file_catalog_serves_named_stores() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("new-root");
    let catalog = Catalog::file(root.clone(), FileOptions { fsync: false }).unwrap();
    assert!(root.is_dir());
    let store = catalog.store("site:a").unwrap();
    put(store.as_ref(), "k", b"v").await;
    // A second handle on the same name, even from a second catalog, sees the key.
    let again = Catalog::file(root.clone(), FileOptions::default()).unwrap();
    let seen = again
        .store("site:a")
        .unwrap()
        .get("k")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen.value.as_ref(), b"v");
    assert_eq!(catalog.list_stores("site").await.unwrap(), ["site:a"]);
    assert_eq!(catalog.delete_store("site:a").await.unwrap(), 1);
    assert!(again.list_stores("").await.unwrap().is_empty());
    assert_eq!(
        catalog.store("").unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}
