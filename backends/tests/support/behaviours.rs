//! Behaviours every `BlobStore` must show, and the job store over it, written once and run on
//! every backend: the memory and file backends (`file_store.rs`) and `HttpStore` against the
//! emulator (the emulator's `tests/http_store.rs`, which includes this file by path).
//!
//! Store behaviours take one `&dyn BlobStore`; instance behaviours take a source of
//! instances, each a separate handle on the same data (a new `FileStore` on one directory, a
//! new HTTP client of one server), as separate serverless instances would hold. A test file
//! stamps them all out with [`store_behaviour_tests!`] and [`instance_behaviour_tests!`], so a
//! behaviour added to their lists runs on every backend. The including test crate must name
//! this module `behaviours`, at its root.

#[path = "helpers.rs"]
pub mod helpers;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use blobjobs_store_api::{
    BlobJobStore, BlobStore, Condition, ErrorKind, JobId, JobStatus, JobStore, ListOptions,
    Metadata, NewJob, SetOptions, SetOutcome, once_stream,
};
use bytes::Bytes;
use helpers::{all_keys, awkward_keys, collect, put, stream_of};
use serde_json::json;

/// A source of instances: each call opens a new handle on the same data.
pub type Instances<'a> = &'a dyn Fn() -> Arc<dyn BlobStore>;

// ---------------------------------------------------------------------------------------------
// Store behaviours

pub async fn round_trip(store: &dyn BlobStore) {
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
        // Listings and reads agree on when the blob was written, to the second: reads over
        // HTTP carry `Last-Modified`, which has no finer unit. Backends that keep the
        // millisecond are held to it in their own tests.
        assert_eq!(
            entry.last_modified.as_millis() / 1000,
            info.last_modified.as_millis() / 1000,
            "{key}"
        );
    }
    assert!(store.get("missing").await.unwrap().is_none());
    assert!(store.get_metadata("missing").await.unwrap().is_none());
}

pub async fn etags_change_on_every_write(store: &dyn BlobStore) {
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

pub async fn metadata_is_stored_and_replaced(store: &dyn BlobStore) {
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

pub async fn conditions_hold(store: &dyn BlobStore) {
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

pub async fn delete_works_and_tolerates_missing(store: &dyn BlobStore) {
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

pub async fn listing_pages_prefixes_and_directories(store: &dyn BlobStore) {
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

pub async fn awkward_keys_round_trip_and_never_alias(store: &dyn BlobStore) {
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

pub async fn invalid_keys_are_rejected(store: &dyn BlobStore) {
    for key in [String::new(), "/a".into(), "%2Fa".into(), "k".repeat(601)] {
        let kind = |r: blobjobs_store_api::Error| r.kind();
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

pub async fn streams_round_trip_and_respect_max_size(store: &dyn BlobStore) {
    // Small values (which the HTTP client collects whole) and large ones (really streamed).
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
        assert_eq!(collect(stream).await.unwrap(), whole);
        assert_eq!(
            store.get(key).await.unwrap().unwrap().value.as_ref(),
            whole.as_slice()
        );

        // One byte over the limit writes nothing, neither a new key nor over an old one.
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

        // Conditions apply to streamed writes too; an empty stream is an empty value.
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

// ---------------------------------------------------------------------------------------------
// Instance behaviours: blobs

/// Eight instances increment one counter by compare-and-swap, 40 times each.
pub async fn compare_and_swap_loses_no_update(instance: Instances<'_>) {
    put(instance().as_ref(), "counter", b"0").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = instance();
        tasks.push(tokio::spawn(async move {
            for _ in 0..40 {
                cas_increment(store.as_ref(), "counter").await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let blob = instance().get("counter").await.unwrap().unwrap();
    assert_eq!(std::str::from_utf8(&blob.value).unwrap(), "320");
}

/// Adds one to the number under `key`, retrying on conflicts (a bounded number of times).
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

/// Keys that exist throughout a paginated walk appear exactly once, however two other
/// instances write meanwhile.
pub async fn paginated_walk_is_stable_under_writes(instance: Instances<'_>) {
    let store = instance();
    let stable: Vec<String> = (0..120).map(|i| format!("k{i:03}")).collect();
    for k in &stable {
        put(store.as_ref(), k, b"s").await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..2 {
        let store = instance();
        let stop = stop.clone();
        let stable = stable.clone();
        writers.push(tokio::spawn(async move {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) && i < 5_000 {
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
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Instance behaviours: the job store over the blobs

fn new_job(id: &str) -> NewJob {
    NewJob {
        id: Some(JobId::new(id).unwrap()),
        kind: "render".into(),
        input: json!({"page": 3}),
        ttl: None,
    }
}

pub async fn job_lifecycle(instance: Instances<'_>) {
    let jobs = BlobJobStore::new(instance());
    let created = jobs.create(new_job("job-1")).await.unwrap();
    assert_eq!(created.status, JobStatus::Pending);
    // Creating the same id again returns the existing job.
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
    assert_eq!(read.result, Some(json!({"url": "/out.png"})));

    let page = jobs.list(Default::default()).await.unwrap();
    assert_eq!(page.jobs, vec![done]);
    assert!(jobs.delete(&id).await.unwrap());
    assert!(jobs.get(&id).await.unwrap().is_none());
}

/// Trigger, background and status as three instances that share only the backing data: the
/// job goes pending, running, succeeded across them. (Separate memory stores share nothing
/// and fail this; `file_jobs.rs` shows it.)
pub async fn jobs_cross_instances(instance: Instances<'_>) {
    let trigger = BlobJobStore::new(instance());
    let background = BlobJobStore::new(instance());
    let status = BlobJobStore::new(instance());
    let job = trigger.create(new_job("job-shared")).await.unwrap();
    assert_eq!(
        status.get(&job.id).await.unwrap().unwrap().status,
        JobStatus::Pending
    );
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
pub async fn claim_is_exclusive_across_instances(instance: Instances<'_>) {
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
// Stamping out

/// `store_behaviour_tests!(module, run)` declares `mod module` with one test per store
/// behaviour, each calling `super::run(behaviour)`, where `run` is an
/// `async fn(impl AsyncFnOnce(&dyn BlobStore))` that gives the behaviour a fresh store (and
/// may check it afterwards).
macro_rules! store_behaviour_tests {
    ($module:ident, $run:ident) => {
        $crate::behaviours::store_behaviour_tests!(@stamp $module, $run, [
            round_trip,
            etags_change_on_every_write,
            metadata_is_stored_and_replaced,
            conditions_hold,
            delete_works_and_tolerates_missing,
            listing_pages_prefixes_and_directories,
            awkward_keys_round_trip_and_never_alias,
            invalid_keys_are_rejected,
            streams_round_trip_and_respect_max_size,
        ]);
    };
    (@stamp $module:ident, $run:ident, [$($behaviour:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $behaviour() {
                    super::$run($crate::behaviours::$behaviour).await;
                }
            )*
        }
    };
}
pub(crate) use store_behaviour_tests;

/// `instance_behaviour_tests!(module, run)` declares `mod module` with one test per instance
/// behaviour, each calling `super::run(behaviour)`, where `run` is an
/// `async fn(impl AsyncFnOnce(Instances<'_>))` that gives the behaviour a source of instances
/// over fresh data.
macro_rules! instance_behaviour_tests {
    ($module:ident, $run:ident) => {
        $crate::behaviours::instance_behaviour_tests!(@stamp $module, $run, [
            compare_and_swap_loses_no_update,
            paginated_walk_is_stable_under_writes,
            job_lifecycle,
            jobs_cross_instances,
            claim_is_exclusive_across_instances,
        ]);
    };
    (@stamp $module:ident, $run:ident, [$($behaviour:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $behaviour() {
                    super::$run($crate::behaviours::$behaviour).await;
                }
            )*
        }
    };
}
pub(crate) use instance_behaviour_tests;
