//! `backends::HttpStore` against the emulator served in-process on 127.0.0.1:0: every
//! `BlobStore` and `JobStore` behaviour the file backend has, in edge mode over a file
//! catalog and in API mode over a memory catalog with tiny server pages; then faults
//! injected by a TCP proxy between the two.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backends::http::{ClientOptions, Consistency, HttpStore, RetryPolicy, StoreKind, Token};
use backends::{Catalog, FileOptions};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::json;
use store_api::{
    BlobJobStore, BlobStore, ByteStream, Condition, ErrorKind, JobId, JobStatus, JobStore,
    ListOptions, Metadata, NewJob, SetOptions, SetOutcome, once_stream,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

const TOKEN: &str = "http-store-test-token";
const SITE: &str = "http-site";

/// An emulator on 127.0.0.1:0 that stops when dropped.
struct Emulator {
    base: String,
    shutdown: Option<oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Emulator {
    async fn start(file: bool, page_size: usize) -> Emulator {
        let (catalog, dir) = if file {
            let dir = tempfile::tempdir().unwrap();
            let catalog =
                Catalog::file(dir.path().to_path_buf(), FileOptions { fsync: false }).unwrap();
            (catalog, Some(dir))
        } else {
            (Catalog::memory(), None)
        };
        let config = emulator::Config::new(catalog, TOKEN).list_page_size(page_size);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(emulator::serve(listener, config, async move {
            let _ = rx.await;
        }));
        Emulator {
            base,
            shutdown: Some(tx),
            _dir: dir,
        }
    }
}

fn retry() -> RetryPolicy {
    RetryPolicy::default()
        .backoff(Duration::from_millis(10), Duration::from_millis(50))
        .max_elapsed(Duration::from_secs(10))
        .request_timeout(Duration::from_secs(5))
}

/// A new instance (a new client with its own connection pool) of store `name` at `url`.
fn open(url: &str, api: bool, name: &str, retry: RetryPolicy) -> HttpStore {
    let mut options = ClientOptions {
        site_id: Some(SITE.into()),
        token: Some(Token::new(TOKEN)),
        consistency: Consistency::Strong,
        retry,
        ..ClientOptions::default()
    };
    if api {
        options.api_url = Some(url.to_owned());
    } else {
        options.edge_url = Some(url.to_owned());
        options.uncached_edge_url = Some(url.to_owned());
    }
    HttpStore::open(&options, None, &StoreKind::Site(name.into())).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Helpers, as in the file backend's behaviour tests

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

async fn collect(mut stream: ByteStream) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    out
}

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
        "a+b",
        "q\"<>^`{}|",
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
// BlobStore behaviours

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
    }
    assert!(store.get("missing").await.unwrap().is_none());
    assert!(store.get_metadata("missing").await.unwrap().is_none());
}

async fn etags_change_on_every_write(store: &dyn BlobStore) {
    let mut seen = BTreeSet::new();
    for _ in 0..5 {
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
    let SetOutcome::Written { etag: e1 } = store
        .set("c", v("one"), SetOptions::new().if_new())
        .await
        .unwrap()
    else {
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
        let options = ListOptions::new()
            .prefix("cart/")
            .directories(true)
            .page_size(size);
        let (blobs, dirs) = all_keys(store, options).await;
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
    for prefix in ["a", "a/", "%", "ü", ".", "..", "K", "a?", "a#"] {
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
        let set = store.set(&key, Bytes::new(), SetOptions::new()).await;
        assert_eq!(kind(set.unwrap_err()), ErrorKind::InvalidInput);
        assert_eq!(
            kind(store.delete(&key).await.unwrap_err()),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            kind(store.get_stream(&key).await.err().unwrap()),
            ErrorKind::InvalidInput
        );
        let set = store
            .set_stream(&key, once_stream(Bytes::new()), None, SetOptions::new())
            .await;
        assert_eq!(kind(set.unwrap_err()), ErrorKind::InvalidInput);
    }
}

async fn streams_round_trip_and_respect_max_size(store: &dyn BlobStore) {
    // Small values (collected whole by the client) and large ones (really streamed).
    for (key, n, size) in [("s", 40u8, 10_000usize), ("s-big", 24, 100_000)] {
        let chunks: Vec<Bytes> = (0..n)
            .map(|i| Bytes::from(vec![i; size + usize::from(i)]))
            .collect();
        let whole: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let meta = Metadata::from_pairs([("streamed", true)]);
        let outcome = store
            .set_stream(
                key,
                stream_of(chunks.clone()),
                Some(whole.len() as u64),
                SetOptions::new().metadata(meta.clone()),
            )
            .await
            .unwrap();
        let etag = outcome.etag().cloned().unwrap();
        let (info, stream) = store.get_stream(key).await.unwrap().unwrap();
        assert_eq!(info.etag, etag);
        assert_eq!(info.size, whole.len() as u64);
        assert_eq!(info.metadata, meta);
        assert_eq!(collect(stream).await, whole);
        assert_eq!(
            store.get(key).await.unwrap().unwrap().value.as_ref(),
            whole.as_slice()
        );
        let over = format!("{key}-over");
        let err = store
            .set_stream(
                &over,
                stream_of(chunks.clone()),
                Some(whole.len() as u64 - 1),
                SetOptions::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert!(store.get(&over).await.unwrap().is_none());
        let err = store
            .set_stream(key, stream_of(chunks), Some(100), SetOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert_eq!(store.get_metadata(key).await.unwrap().unwrap().etag, etag);
        let refused = store
            .set_stream(key, stream_of(vec![]), None, SetOptions::new().if_new())
            .await
            .unwrap();
        assert_eq!(refused, SetOutcome::ConditionFailed);
        store
            .set_stream(
                key,
                stream_of(vec![]),
                None,
                SetOptions::new().if_match(etag),
            )
            .await
            .unwrap()
            .etag()
            .unwrap();
        assert!(store.get(key).await.unwrap().unwrap().value.is_empty());
    }
    assert!(store.get_stream("s-missing").await.unwrap().is_none());
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

/// Eight instances (eight clients) increment one counter by compare-and-swap.
async fn compare_and_swap_loses_no_update(instance: impl Fn() -> Arc<dyn BlobStore>) {
    put(instance().as_ref(), "counter", b"0").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = instance();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                cas_increment(store.as_ref(), "counter").await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let blob = instance().get("counter").await.unwrap().unwrap();
    assert_eq!(std::str::from_utf8(&blob.value).unwrap(), "200");
}

async fn paginated_walk_is_stable_under_writes(store: Arc<dyn BlobStore>) {
    let stable: Vec<String> = (0..60).map(|i| format!("k{i:03}")).collect();
    for k in &stable {
        put(store.as_ref(), k, b"s").await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let store = store.clone();
        let stop = stop.clone();
        let stable = stable.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) && i < 2_000 {
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
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// JobStore behaviours

fn new_job(id: &str) -> NewJob {
    NewJob {
        id: Some(JobId::new(id).unwrap()),
        kind: "render".into(),
        input: json!({"page": 3}),
        ttl: None,
    }
}

async fn job_lifecycle(instance: impl Fn() -> Arc<dyn BlobStore>) {
    let jobs = BlobJobStore::new(instance());
    let created = jobs.create(new_job("job-1")).await.unwrap();
    assert_eq!(created.status, JobStatus::Pending);
    assert_eq!(jobs.create(new_job("job-1")).await.unwrap(), created);
    let id = created.id.clone();
    let claimed = jobs
        .claim(&id, "worker-a", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!((claimed.status, claimed.attempts), (JobStatus::Running, 1));
    let err = jobs
        .claim(&id, "worker-b", Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeaseHeld);
    let progressed = jobs
        .progress(&id, "worker-a", 40, Some("halfway".into()))
        .await
        .unwrap();
    assert_eq!(progressed.progress.as_ref().unwrap().percent, 40);
    let err = jobs.progress(&id, "worker-b", 50, None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeaseHeld);
    let done = jobs
        .succeed(&id, "worker-a", json!({"url": "/out.png"}))
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::Succeeded);
    let read = jobs.get(&id).await.unwrap().unwrap();
    assert_eq!(read, done);
    let page = jobs.list(Default::default()).await.unwrap();
    assert_eq!(page.jobs, vec![done]);
    assert!(jobs.delete(&id).await.unwrap());
    assert!(jobs.get(&id).await.unwrap().is_none());
}

/// Trigger, background and status as three instances that share only the server.
async fn jobs_cross_instances(instance: impl Fn() -> Arc<dyn BlobStore>) {
    let trigger = BlobJobStore::new(instance());
    let background = BlobJobStore::new(instance());
    let status = BlobJobStore::new(instance());
    let job = trigger.create(new_job("job-http")).await.unwrap();
    background
        .claim(&job.id, "background", Duration::from_secs(5))
        .await
        .unwrap();
    background
        .succeed(&job.id, "background", json!("ok"))
        .await
        .unwrap();
    let seen = status.get(&job.id).await.unwrap().unwrap();
    assert_eq!(seen.status, JobStatus::Succeeded);
    assert_eq!(seen.result, Some(json!("ok")));
}

/// Exactly one of many instances racing to claim a job wins.
async fn claim_is_exclusive_across_instances(instance: impl Fn() -> Arc<dyn BlobStore>) {
    let jobs = BlobJobStore::new(instance());
    let job = jobs.create(new_job("job-race")).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..6 {
        let jobs = BlobJobStore::new(instance());
        let id = job.id.clone();
        tasks.push(tokio::spawn(async move {
            jobs.claim(&id, &format!("w{w}"), Duration::from_secs(60))
                .await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => winners += 1,
            Err(e) => assert_eq!(e.kind(), ErrorKind::LeaseHeld),
        }
    }
    assert_eq!(winners, 1);
    assert_eq!(jobs.get(&job.id).await.unwrap().unwrap().attempts, 1);
}

// ---------------------------------------------------------------------------------------------
// Stamping out: edge mode over a file catalog, API mode over memory with 3-entry pages

macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {
        mod edge_over_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let emu = super::Emulator::start(true, 1000).await;
                    let store = super::open(&emu.base, false, "behaviours", super::retry());
                    super::$name(&store).await;
                }
            )*
        }
        mod api_over_memory_small_pages {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let emu = super::Emulator::start(false, 3).await;
                    let store = super::open(&emu.base, true, "behaviours", super::retry());
                    super::$name(&store).await;
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

macro_rules! instance_behaviours {
    ($($name:ident),* $(,)?) => {
        mod instances_edge {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let emu = super::Emulator::start(true, 1000).await;
                    let base = emu.base.clone();
                    super::$name(move || -> std::sync::Arc<dyn store_api::BlobStore> {
                        std::sync::Arc::new(super::open(&base, false, "instances", super::retry()))
                    })
                    .await;
                }
            )*
        }
        mod instances_api {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let emu = super::Emulator::start(false, 3).await;
                    let base = emu.base.clone();
                    super::$name(move || -> std::sync::Arc<dyn store_api::BlobStore> {
                        std::sync::Arc::new(super::open(&base, true, "instances", super::retry()))
                    })
                    .await;
                }
            )*
        }
    };
}

instance_behaviours!(
    compare_and_swap_loses_no_update,
    job_lifecycle,
    jobs_cross_instances,
    claim_is_exclusive_across_instances,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paginated_walk_is_stable_under_writes_edge() {
    let emu = Emulator::start(true, 1000).await;
    paginated_walk_is_stable_under_writes(Arc::new(open(&emu.base, false, "walk", retry()))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paginated_walk_is_stable_under_writes_api_small_pages() {
    let emu = Emulator::start(false, 3).await;
    paginated_walk_is_stable_under_writes(Arc::new(open(&emu.base, true, "walk", retry()))).await;
}

#[tokio::test]
async fn wrong_tokens_are_unauthorized() {
    let emu = Emulator::start(false, 1000).await;
    for api in [false, true] {
        let mut options = ClientOptions {
            site_id: Some(SITE.into()),
            token: Some(Token::new("not-the-token")),
            retry: RetryPolicy::none(),
            ..ClientOptions::default()
        };
        if api {
            options.api_url = Some(emu.base.clone());
        } else {
            options.edge_url = Some(emu.base.clone());
        }
        let store = HttpStore::open(&options, None, &StoreKind::Site("s".into())).unwrap();
        let err = store.get("k").await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "api: {api}");
        assert!(!format!("{err} {err:?} {store:?}").contains("not-the-token"));
    }
}

#[tokio::test]
async fn values_over_the_server_limit_are_too_large() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = emulator::Config::new(Catalog::memory(), TOKEN).max_blob_size(1000);
    let (_tx, rx) = oneshot::channel::<()>();
    tokio::spawn(emulator::serve(listener, config, async move {
        let _ = rx.await;
    }));
    let store = open(&base, false, "limits", retry());
    let err = store
        .set("k", Bytes::from(vec![0u8; 1001]), SetOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert!(store.get("k").await.unwrap().is_none());
    // A streamed upload over the limit is refused too, and leaves nothing behind.
    let chunks = vec![Bytes::from(vec![1u8; 256 * 1024]); 6];
    let err = store
        .set_stream("s", stream_of(chunks), None, SetOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::TooLarge | ErrorKind::Unavailable),
        "{err:?}"
    );
    assert!(store.get("s").await.unwrap().is_none());
}

// ---------------------------------------------------------------------------------------------
// Faults, injected by a TCP proxy between the client and the emulator

/// What the proxy does to the next exchanges. Each fault is used up once it has acted.
#[derive(Default)]
struct ProxyFaults {
    /// Forward the next request, then close the client's connection instead of forwarding
    /// the answer.
    drop_next_response: AtomicBool,
    /// Answer this many requests with `status` and close, without forwarding them.
    status_times: AtomicU64,
    /// The status for `status_times`.
    status: AtomicU64,
    /// `X-RateLimit-Reset` to send with `status`, 0 for none.
    rate_limit_reset: AtomicU64,
    /// Hold the next answer back this many milliseconds.
    delay_next_ms: AtomicU64,
    /// Requests forwarded to the emulator.
    forwarded: AtomicU64,
}

/// A loopback proxy on 127.0.0.1:0 in front of `upstream`; returns its base URL.
async fn proxy(upstream: &str, faults: Arc<ProxyFaults>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let upstream_addr = upstream.trim_start_matches("http://").to_owned();
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                continue;
            };
            let faults = faults.clone();
            let upstream_addr = upstream_addr.clone();
            tokio::spawn(async move {
                let _ = relay(client, &upstream_addr, &faults).await;
            });
        }
    });
    base
}

/// Takes one use of a counted fault.
fn take(counter: &AtomicU64) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Relays one connection in both directions, applying the faults. HTTP/1.1 clients send
/// one request at a time per connection, so the next answer bytes belong to the last
/// request.
async fn relay(mut client: TcpStream, upstream: &str, faults: &ProxyFaults) -> std::io::Result<()> {
    let mut server = TcpStream::connect(upstream).await?;
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            n = client.read(&mut up) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                let starts_request = up[..n].windows(10).any(|w| w == b"HTTP/1.1\r\n");
                if starts_request && take(&faults.status_times) {
                    let status = faults.status.load(Ordering::SeqCst);
                    let reset = faults.rate_limit_reset.load(Ordering::SeqCst);
                    let extra = if reset > 0 {
                        format!("x-ratelimit-reset: {reset}\r\n")
                    } else {
                        String::new()
                    };
                    let answer = format!(
                        "HTTP/1.1 {status} Injected\r\ncontent-length: 8\r\nconnection: close\r\n{extra}\r\ninjected"
                    );
                    client.write_all(answer.as_bytes()).await?;
                    return Ok(());
                }
                if starts_request {
                    faults.forwarded.fetch_add(1, Ordering::SeqCst);
                }
                server.write_all(&up[..n]).await?;
            }
            n = server.read(&mut down) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                let delay = faults.delay_next_ms.swap(0, Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                if faults.drop_next_response.swap(false, Ordering::SeqCst) {
                    return Ok(());
                }
                client.write_all(&down[..n]).await?;
            }
        }
    }
}

struct Proxied {
    emu: Emulator,
    faults: Arc<ProxyFaults>,
    base: String,
}

impl Proxied {
    async fn start() -> Proxied {
        let emu = Emulator::start(true, 1000).await;
        let faults = Arc::new(ProxyFaults::default());
        let base = proxy(&emu.base, faults.clone()).await;
        Proxied { emu, faults, base }
    }

    /// A client that goes through the proxy.
    fn client(&self, retry: RetryPolicy) -> HttpStore {
        open(&self.base, false, "faults", retry)
    }

    /// A client that talks to the emulator directly, to see what really happened.
    fn direct(&self) -> HttpStore {
        open(&self.emu.base, false, "faults", retry())
    }

    fn forwarded(&self) -> u64 {
        self.faults.forwarded.load(Ordering::SeqCst)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_write_whose_answer_is_lost_is_applied_exactly_once() {
    let p = Proxied::start().await;
    let store = p.client(retry());
    // IfNew: the emulator creates the key, the answer never arrives.
    p.faults.drop_next_response.store(true, Ordering::SeqCst);
    let before = p.forwarded();
    let outcome = store
        .set("job", Bytes::from("v1"), SetOptions::new().if_new())
        .await
        .unwrap();
    let stored = p.direct().get("job").await.unwrap().unwrap();
    assert_eq!(stored.value, "v1");
    assert_eq!(
        outcome,
        SetOutcome::Written {
            etag: stored.info.etag.clone()
        }
    );
    // The PUT and the read-back, no second PUT.
    assert_eq!(p.forwarded() - before, 2);

    // IfMatch: a resend would fail its own condition; the read-back reports it applied.
    p.faults.drop_next_response.store(true, Ordering::SeqCst);
    let before = p.forwarded();
    let outcome = store
        .set(
            "job",
            Bytes::from("v2"),
            SetOptions::new().if_match(stored.info.etag),
        )
        .await
        .unwrap();
    let stored = p.direct().get("job").await.unwrap().unwrap();
    assert_eq!(stored.value, "v2");
    assert_eq!(outcome.etag(), Some(&stored.info.etag));
    assert_eq!(p.forwarded() - before, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_conditional_write_is_checked_not_resent() {
    let p = Proxied::start().await;
    let store = p.client(retry().request_timeout(Duration::from_millis(300)));
    p.faults.delay_next_ms.store(1500, Ordering::SeqCst);
    let started = Instant::now();
    let outcome = store
        .set("slow", Bytes::from("v"), SetOptions::new().if_new())
        .await
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    let stored = p.direct().get("slow").await.unwrap().unwrap();
    assert_eq!(outcome.etag(), Some(&stored.info.etag));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_and_rate_limited_answers_are_retried() {
    let p = Proxied::start().await;
    p.direct()
        .set("k", Bytes::from("v"), SetOptions::new())
        .await
        .unwrap();
    let store = p.client(retry().jitter(false));
    p.faults.status.store(503, Ordering::SeqCst);
    p.faults.status_times.store(2, Ordering::SeqCst);
    assert_eq!(store.get("k").await.unwrap().unwrap().value, "v");
    assert_eq!(p.faults.status_times.load(Ordering::SeqCst), 0);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    p.faults.status.store(429, Ordering::SeqCst);
    p.faults.rate_limit_reset.store(now + 2, Ordering::SeqCst);
    p.faults.status_times.store(1, Ordering::SeqCst);
    let started = Instant::now();
    assert_eq!(store.get("k").await.unwrap().unwrap().value, "v");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed <= Duration::from_millis(2500), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_give_up_within_their_bounds() {
    let p = Proxied::start().await;
    let policy = retry()
        .jitter(false)
        .max_attempts(5)
        .backoff(Duration::from_millis(50), Duration::from_millis(100));
    let store = p.client(policy);
    p.faults.status.store(500, Ordering::SeqCst);
    p.faults.status_times.store(100, Ordering::SeqCst);
    let started = Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    // Four waits of 50, 100, 100, 100 ms and five quick attempts.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(350), "{elapsed:?}");
    assert!(elapsed <= Duration::from_millis(1500), "{elapsed:?}");
    assert_eq!(p.faults.status_times.load(Ordering::SeqCst), 95);

    let policy = retry()
        .max_attempts(1000)
        .backoff(Duration::from_millis(20), Duration::from_millis(20))
        .max_elapsed(Duration::from_millis(600));
    let store = p.client(policy);
    let started = Instant::now();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(
        started.elapsed() <= Duration::from_millis(600 + 400),
        "{:?}",
        started.elapsed()
    );
}
