//! The file backend beyond the conformance suite (which `conformance.rs` runs on it): files
//! on disk, damaged files, several handles, named stores; and, on the file and the memory
//! backend, what the suite holds every backend only to the second.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use blobjobs_backends::{Catalog, FileOptions, FileStore, MemoryStore};
use blobjobs_store_api::{BlobStore, ErrorKind, ListOptions, SetOptions};
use blobjobs_test_support::{
    all_keys, assert_no_temp_files, awkward_keys, collect, files_under, put, stream_of,
};
use bytes::Bytes;

fn file_store(dir: &Path) -> FileStore {
    FileStore::open(dir, "test-store", FileOptions::default()).unwrap()
}

/// Runs `check` on a fresh file store, then checks it left no temporary file.
async fn on_file(check: impl AsyncFnOnce(&dyn BlobStore)) {
    let dir = tempfile::tempdir().unwrap();
    check(&file_store(dir.path())).await;
    assert_no_temp_files(dir.path());
}

async fn on_memory(check: impl AsyncFnOnce(&dyn BlobStore)) {
    check(&MemoryStore::new()).await;
}

/// Both backends keep the millisecond of the last write, and listings and reads agree on it
/// exactly (the conformance suite holds every backend only to the second).
async fn listings_and_reads_agree_on_last_modified(store: &dyn BlobStore) {
    for key in ["t", "t/deeper", &"t".repeat(450)] {
        put(store, key, b"v").await;
        let info = store.get_metadata(key).await.unwrap().unwrap();
        let page = store.list(ListOptions::new().prefix(key)).await.unwrap();
        let entry = page.blobs.iter().find(|e| e.key == key).unwrap();
        assert_eq!(entry.last_modified, info.last_modified, "{key}");
    }
}

#[tokio::test]
async fn listings_and_reads_agree_on_last_modified_on_file() {
    on_file(listings_and_reads_agree_on_last_modified).await;
}

#[tokio::test]
async fn listings_and_reads_agree_on_last_modified_on_memory() {
    on_memory(listings_and_reads_agree_on_last_modified).await;
}

// ---------------------------------------------------------------------------------------------
// File backend only

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

/// A damaged blob file fails the reads of its own key with `Corrupt` (never a panic) and
/// breaks nothing else: listings skip it, other keys read as before.
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
        // Listings leave the damaged key out (with a warning) and show every other key. (A
        // new handle: this one's cache still knows the header its own write put there.)
        let (listed, _) = all_keys(&file_store(dir.path()), ListOptions::new()).await;
        assert!(!listed.contains(&key.to_string()), "{key} listed");
        assert!(listed.contains(&"good".to_owned()), "{listed:?}");
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
        FileStore::open(dir.path(), "site-1/other", FileOptions::default())
            .unwrap()
            .delete_all()
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        FileStore::open(dir.path(), &long_name, FileOptions::default())
            .unwrap()
            .delete_all()
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        FileStore::open(dir.path(), "never-made", FileOptions::default())
            .unwrap()
            .delete_all()
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

/// The chunks a `get_stream` of `key` yields.
async fn stream_chunks(store: &FileStore, key: &str) -> Vec<Bytes> {
    use futures_util::StreamExt as _;
    let (_, mut stream) = store.get_stream(key).await.unwrap().unwrap();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.next().await {
        chunks.push(chunk.unwrap());
    }
    chunks
}

#[tokio::test]
async fn small_values_travel_whole_and_large_ones_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), "sizes", FileOptions { fsync: false }).unwrap();
    const K: usize = 1024;
    // Around the 64 KiB a body is collected up to, and the ~68 KiB file read whole.
    for size in [
        0,
        1,
        K,
        64 * K - 1,
        64 * K,
        64 * K + 1,
        66 * K,
        70 * K,
        300 * K,
    ] {
        let value: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        // Many small chunks, as a request body arrives.
        let body: Vec<Bytes> = value.chunks(1000).map(Bytes::copy_from_slice).collect();
        let key = format!("v{size}");
        let outcome = store
            .set_stream(&key, stream_of(body), Some(size as u64), SetOptions::new())
            .await
            .unwrap();
        let chunks = stream_chunks(&store, &key).await;
        assert_eq!(chunks.concat(), value, "{size}");
        if size <= 64 * K {
            assert!(
                chunks.len() <= 1,
                "a {size}-byte value came in {}",
                chunks.len()
            );
        } else if size >= 70 * K {
            assert!(chunks.len() > 1, "a {size}-byte value came whole");
            assert!(chunks.iter().all(|c| c.len() <= 64 * K), "{size}");
        }
        let blob = store.get(&key).await.unwrap().unwrap();
        assert_eq!(blob.value.as_ref(), value.as_slice());
        assert_eq!(Some(&blob.info.etag), outcome.etag());
        assert_eq!(blob.info.size, size as u64);
    }
    assert_no_temp_files(dir.path());
}

#[tokio::test]
async fn failed_streamed_writes_leave_nothing_behind_at_any_size() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), "failing", FileOptions { fsync: false }).unwrap();
    let etag = put(&store, "k", b"old").await;
    // A body that ends within the collected start, and one that goes on past it.
    for chunks in [3, 300] {
        let body = vec![Bytes::from(vec![7u8; 1000]); chunks];
        let total = (chunks * 1000) as u64;
        let err = store
            .set_stream(
                "k",
                stream_of(body.clone()),
                Some(total - 1),
                SetOptions::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        let failing: blobjobs_store_api::ByteStream =
            Box::pin(futures_util::stream::iter(body.into_iter().map(Ok).chain(
                [Err(blobjobs_store_api::Error::new(
                    ErrorKind::Io,
                    "body cut",
                ))],
            )));
        let err = store
            .set_stream("k", failing, None, SetOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        let blob = store.get("k").await.unwrap().unwrap();
        assert_eq!(
            (blob.value.as_ref(), blob.info.etag.clone()),
            (&b"old"[..], etag.clone())
        );
        assert_no_temp_files(dir.path());
    }
}

#[tokio::test]
async fn temporary_files_of_dead_writers_are_swept_by_the_next_handle() {
    let dir = tempfile::tempdir().unwrap();
    let options = FileOptions { fsync: false };
    let store = FileStore::open(dir.path(), "sweep", options).unwrap();
    let long_key = "x".repeat(300);
    put(&store, "a", b"1").await;
    put(&store, &long_key, b"2").await;
    let chunk_dir = store
        .key_path(&long_key)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert_ne!(chunk_dir, store.dir());
    // What writers killed two hours ago left, and a write in progress now.
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 60 * 60);
    let stale = [store.dir().join(".tmp-dead1"), chunk_dir.join(".tmp-dead2")];
    for path in &stale {
        let file = std::fs::File::create(path).unwrap();
        file.set_modified(two_hours_ago).unwrap();
    }
    let live = store.dir().join(".tmp-live");
    std::fs::write(&live, b"partial").unwrap();

    // A new handle (as after a restart) sweeps before its first change; reads leave files be.
    let next = FileStore::open(dir.path(), "sweep", options).unwrap();
    assert_eq!(&next.get("a").await.unwrap().unwrap().value[..], b"1");
    assert!(stale.iter().all(|p| p.exists()));
    put(&next, "b", b"3").await;
    assert!(
        stale.iter().all(|p| !p.exists()),
        "stale temporary files stay"
    );
    assert!(live.exists(), "a recent temporary file was removed");
    let (mut keys, _) = all_keys(&next, ListOptions::default()).await;
    keys.sort();
    assert_eq!(keys, vec!["a".to_owned(), "b".to_owned(), long_key]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_at_a_key_path_is_damage_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    put(&store, "good", b"fine").await;
    let fifo = store.key_path("pipe").unwrap();
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success(), "mkfifo failed");
    let bound = Duration::from_secs(10);
    let got = tokio::time::timeout(bound, store.get("pipe")).await;
    assert_eq!(
        got.expect("get hung").unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    let head = tokio::time::timeout(bound, store.get_metadata("pipe")).await;
    assert_eq!(
        head.expect("get_metadata hung").unwrap_err().kind(),
        ErrorKind::Corrupt
    );
    let streamed = tokio::time::timeout(bound, store.get_stream("pipe")).await;
    assert!(streamed.expect("get_stream hung").is_err());
    assert_eq!(
        store.get("good").await.unwrap().unwrap().value.as_ref(),
        b"fine"
    );
}

/// Cached reads complete without waiting, so they must still let a single-threaded runtime
/// run its timers: a timeout around an endless loop of reads fires.
#[test]
fn a_loop_of_cached_reads_yields_to_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let store = file_store(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        put(&store, "k", b"v").await;
        let started = Instant::now();
        let reads = async {
            // Bounded in count and time, in case the timeout never fires.
            for _ in 0..2_000_000 {
                if started.elapsed() > Duration::from_secs(20) {
                    break;
                }
                store.get("k").await.unwrap();
            }
        };
        let fired = tokio::time::timeout(Duration::from_millis(100), reads).await;
        assert!(
            fired.is_err(),
            "the reads ran to their bound: the timer never ran"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
    });
}

/// Every file and directory the backend creates is its owner's alone (0600 and 0700): blobs
/// may hold anything, and the data directory may sit in a shared place.
#[tokio::test]
async fn files_and_directories_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data/root");
    let catalog = Catalog::file(root.clone(), FileOptions::default()).unwrap();
    let long_key = "k".repeat(450);
    let store = catalog.store("site-1/site:plain").unwrap();
    put(&*store, "a", b"1").await;
    put(&*store, &long_key, b"2").await;
    let hashed = catalog
        .store(&format!("site-1/site:{}", "n".repeat(300)))
        .unwrap();
    put(&*hashed, "b", b"3").await;
    let big = Bytes::from(vec![7u8; 300 * 1024]);
    let streamed = stream_of(vec![big.slice(..100 * 1024), big.slice(100 * 1024..)]);
    store
        .set_stream("streamed", streamed, None, SetOptions::new())
        .await
        .unwrap();

    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let mut dirs = vec![root.clone(), dir.path().join("data")];
    let mut files = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path.clone());
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    // The root, both stores and a chunk directory; blobs, lock files and a `.name` file.
    assert!(dirs.len() >= 5, "{dirs:?}");
    assert!(files.len() >= 7, "{files:?}");
    for d in &dirs {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for f in &files {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}

/// Opening a catalog removes the temporary files of writers that died (which held no lock any
/// more) at once, whatever their age, and leaves a live writer's file alone.
#[tokio::test]
async fn a_catalog_sweeps_dead_writers_temporary_files_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let catalog = Catalog::file(root.clone(), FileOptions { fsync: false }).unwrap();
    let store = catalog.store("s").unwrap();
    let long_key = "x".repeat(300);
    put(&*store, "a", b"1").await;
    put(&*store, &long_key, b"2").await;
    let file_store = FileStore::open(&root, "s", FileOptions { fsync: false }).unwrap();
    let store_dir = file_store.dir().to_path_buf();
    let chunk_dir = file_store
        .key_path(&long_key)
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    assert_ne!(chunk_dir, store_dir);
    // Left by writers killed a moment ago: their locks died with them.
    let dead = [
        store_dir.join(".tmp-l0123456789abcdef"),
        chunk_dir.join(".tmp-lfedcba9876543210"),
    ];
    for path in &dead {
        std::fs::write(path, b"partial").unwrap();
    }
    // A writer at work in another process holds the lock on its file.
    let live = store_dir.join(".tmp-l00000000000000aa");
    let live_file = std::fs::File::create(&live).unwrap();
    live_file.lock().unwrap();
    // An older version's recent temporary file, which carries no lock: swept only by age.
    let unlocked_kind = store_dir.join(".tmp-00000000000000bb");
    std::fs::write(&unlocked_kind, b"partial").unwrap();

    let reopened = Catalog::file(root.clone(), FileOptions { fsync: false }).unwrap();
    for path in &dead {
        assert!(!path.exists(), "{} stays", path.display());
    }
    assert!(live.exists(), "a live writer's file was removed");
    assert!(unlocked_kind.exists(), "a recent unlocked file was removed");
    let (keys, _) = all_keys(&*reopened.store("s").unwrap(), ListOptions::new()).await;
    assert_eq!(keys, vec!["a".to_owned(), long_key]);
    drop(live_file);
    // A process that another test of this binary starts at this moment inherits the
    // descriptor, and with it the lock, until it execs; a restart then sweeps it. A few
    // opens, milliseconds apart, stand for those restarts.
    for _ in 0..50 {
        Catalog::file(root.clone(), FileOptions { fsync: false }).unwrap();
        if !live.exists() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(!live.exists(), "the writer died, its file stays");
}
