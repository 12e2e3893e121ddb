//! The suite has teeth: it fails the memory backend on every cross-instance case (and passes
//! it on every single-instance one), passes a correctly shared store, and catches each of a
//! set of deliberately broken stores built on top of a correct one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use blobjobs_backends::MemoryStore;
use blobjobs_conformance::{Capabilities, InstanceFactory, Options, Report, Scope};
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, Condition, Etag, ListOptions, ListPage, Result, SetOptions,
    SetOutcome,
};
use bytes::Bytes;

/// Few generated sequences: the broken stores fail fast, and the correct ones are covered by
/// the default counts in their own tests.
fn options(name: &str) -> Options {
    Options::default().backend(name).cases(24)
}

/// A factory whose instances are separate `MemoryStore`s: like separate serverless instances
/// with process-local state, they share nothing.
fn separate_memory()
-> impl Fn() -> std::future::Ready<Result<Arc<dyn BlobStore>>> + Send + Sync + Copy + 'static {
    || std::future::ready(Ok(Arc::new(MemoryStore::new()) as Arc<dyn BlobStore>))
}

/// A factory whose instances are clones of one `MemoryStore`, so they share data: the
/// simplest correct cross-instance store.
fn shared_memory()
-> impl Fn() -> std::future::Ready<Result<Arc<dyn BlobStore>>> + Send + Sync + 'static {
    let shared = MemoryStore::new();
    move || std::future::ready(Ok(Arc::new(shared.clone()) as Arc<dyn BlobStore>))
}

/// Instances of a broken store, each wrapping its own handle on one shared memory store.
fn broken<W, F>(
    wrap: F,
) -> impl Fn() -> std::future::Ready<Result<Arc<dyn BlobStore>>> + Send + Sync + 'static
where
    W: BlobStore,
    F: Fn(Arc<dyn BlobStore>) -> W + Send + Sync + 'static,
{
    let shared = MemoryStore::new();
    move || {
        let inner: Arc<dyn BlobStore> = Arc::new(shared.clone());
        std::future::ready(Ok(Arc::new(wrap(inner)) as Arc<dyn BlobStore>))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_fails_every_cross_instance_case_and_passes_every_single_instance_case() {
    let report = blobjobs_conformance::run_all(
        separate_memory(),
        Capabilities::default(),
        options("memory"),
    )
    .await;
    let cross = blobjobs_conformance::cases()
        .iter()
        .filter(|c| c.scope == Scope::CrossInstance)
        .count();
    assert!(cross >= 15, "only {cross} cross-instance cases");
    for case in &report.cases {
        match case.scope {
            // Skipped: the crash case, whose instances must be processes.
            Scope::CrossInstance => assert!(
                case.failed() || case.skipped(),
                "memory passed the cross-instance case {}: the suite has no teeth there",
                case.name
            ),
            Scope::SingleInstance => assert!(
                case.passed(),
                "memory failed the single-instance case {}:\n{}",
                case.name,
                report.to_text()
            ),
        }
    }
    assert_eq!(report.cases.len(), blobjobs_conformance::cases().len());
    // The shrunk counterexample of the model names instances and operations.
    let model = report
        .case("job_operations_match_the_model_across_instances")
        .unwrap();
    let blobjobs_conformance::Verdict::Failed {
        timeline, replay, ..
    } = &model.verdict
    else {
        panic!("expected a failure");
    };
    assert!(timeline.len() <= 4, "not shrunk: {timeline:#?}");
    let named: std::collections::BTreeSet<&str> = timeline
        .iter()
        .filter_map(|l| l.split(':').next())
        .filter(|p| p.starts_with("instance "))
        .collect();
    assert!(
        named.len() >= 2,
        "the counterexample names one instance: {timeline:#?}"
    );
    assert!(
        timeline.last().unwrap().contains("(model: "),
        "{timeline:#?}"
    );
    assert!(
        replay
            .as_deref()
            .unwrap()
            .contains(&report.seed.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_store_passes_everything() {
    let report = blobjobs_conformance::run_all(
        shared_memory(),
        Capabilities::default(),
        Options::default().backend("shared-memory"),
    )
    .await;
    report.assert_passed();
    assert!(report.cases.iter().all(|c| c.passed() || c.skipped()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_replays_from_its_seed() {
    let factory = separate_memory();
    let opts = options("memory")
        .seed(42)
        .filter("blob_operations_match_the_model_across");
    let first = blobjobs_conformance::run_all(factory, Capabilities::default(), opts.clone()).await;
    let second = blobjobs_conformance::run_all(factory, Capabilities::default(), opts).await;
    assert_eq!(first.cases.len(), 1);
    assert!(first.cases[0].failed());
    // Same seed, same shrunk counterexample (ETags are random, so compare without them).
    let strip = |r: &Report| match &r.cases[0].verdict {
        blobjobs_conformance::Verdict::Failed { timeline, .. } => timeline
            .iter()
            .map(|l| l.split(" → ").next().unwrap_or("").to_owned())
            .collect::<Vec<_>>(),
        _ => panic!("expected a failure"),
    };
    assert_eq!(strip(&first), strip(&second));
}

/// Ignores the write condition: every conditional write succeeds.
#[derive(Debug)]
struct IgnoresCondition(Arc<dyn BlobStore>);

#[async_trait]
impl BlobStore for IgnoresCondition {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        self.0.get(key).await
    }
    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        self.0.get_metadata(key).await
    }
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        self.0
            .set(key, value, options.condition(Condition::Always))
            .await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }
    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        self.0.list(options).await
    }
}

/// Serves reads from a per-instance cache that only its own writes invalidate.
#[derive(Debug)]
struct StaleCache {
    inner: Arc<dyn BlobStore>,
    cache: Mutex<HashMap<String, Blob>>,
}

impl StaleCache {
    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Blob>> {
        self.cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl BlobStore for StaleCache {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        if let Some(hit) = self.cache().get(key) {
            return Ok(Some(hit.clone()));
        }
        let blob = self.inner.get(key).await?;
        if let Some(b) = &blob {
            self.cache().insert(key.to_owned(), b.clone());
        }
        Ok(blob)
    }
    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        Ok(self.get(key).await?.map(|b| b.info))
    }
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        self.cache().remove(key);
        self.inner.set(key, value, options).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.cache().remove(key);
        self.inner.delete(key).await
    }
    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        self.inner.list(options).await
    }
}

/// Loses the last page of every listing that has more than one.
#[derive(Debug)]
struct DropsLastPage(Arc<dyn BlobStore>);

#[async_trait]
impl BlobStore for DropsLastPage {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        self.0.get(key).await
    }
    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        self.0.get_metadata(key).await
    }
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        self.0.set(key, value, options).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }
    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let later_page = options.cursor.is_some();
        let page = self.0.list(options).await?;
        if later_page && page.next_cursor.is_none() {
            return Ok(ListPage::default());
        }
        Ok(page)
    }
}

/// Makes ETags from the value's size, so different content of equal length shares one.
#[derive(Debug)]
struct ReusesEtags(Arc<dyn BlobStore>);

fn weak_etag(size: u64) -> Etag {
    Etag::new(format!("\"size-{size}\""))
}

#[async_trait]
impl BlobStore for ReusesEtags {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        Ok(self.0.get(key).await?.map(|mut b| {
            b.info.etag = weak_etag(b.info.size);
            b
        }))
    }
    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        Ok(self.0.get_metadata(key).await?.map(|mut i| {
            i.etag = weak_etag(i.size);
            i
        }))
    }
    async fn set(&self, key: &str, value: Bytes, mut options: SetOptions) -> Result<SetOutcome> {
        let size = value.len() as u64;
        if let Condition::IfMatch(want) = &options.condition {
            match self.0.get_metadata(key).await? {
                Some(info) if weak_etag(info.size) == *want => {
                    options.condition = Condition::IfMatch(info.etag);
                }
                _ => return Ok(SetOutcome::ConditionFailed),
            }
        }
        Ok(match self.0.set(key, value, options).await? {
            SetOutcome::Written { .. } => SetOutcome::Written {
                etag: weak_etag(size),
            },
            SetOutcome::ConditionFailed => SetOutcome::ConditionFailed,
        })
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }
    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let mut page = self.0.list(options).await?;
        for e in &mut page.blobs {
            e.etag = weak_etag(e.size);
        }
        Ok(page)
    }
}

/// Checks conditions with a separate read before an unconditional write, yielding in
/// between: a racing writer's update is lost.
#[derive(Debug)]
struct RacyConditions(Arc<dyn BlobStore>);

#[async_trait]
impl BlobStore for RacyConditions {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        self.0.get(key).await
    }
    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        self.0.get_metadata(key).await
    }
    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        let current = self.0.get_metadata(key).await?.map(|i| i.etag);
        let holds = match (&options.condition, &current) {
            (Condition::Always, _) => true,
            (Condition::IfNew, current) => current.is_none(),
            (Condition::IfMatch(want), Some(have)) => want == have,
            (Condition::IfMatch(_), None) => false,
        };
        if !holds {
            return Ok(SetOutcome::ConditionFailed);
        }
        tokio::task::yield_now().await;
        self.0
            .set(key, value, options.condition(Condition::Always))
            .await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }
    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        self.0.list(options).await
    }
}

/// Runs the suite on a broken store and checks that `expected` is among the cases that fail.
async fn assert_caught(name: &str, factory: impl InstanceFactory, expected: &str) {
    let report =
        blobjobs_conformance::run_all(factory, Capabilities::default(), options(name)).await;
    let failed: Vec<&str> = report.failures().map(|c| c.name.as_str()).collect();
    assert!(
        failed.contains(&expected),
        "{name}: expected {expected} to fail; failed: {failed:?}\n{}",
        report.to_text()
    );
    println!(
        "{name}: caught by {} of {} cases in {} ms ({})",
        failed.len(),
        report.cases.len(),
        report.millis,
        failed.join(", ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_store_is_caught() {
    let started = Instant::now();
    assert_caught(
        "ignores-condition",
        broken(IgnoresCondition),
        "only_if_new_writes_once",
    )
    .await;
    assert_caught(
        "stale-cache",
        broken(|inner| StaleCache {
            inner,
            cache: Mutex::new(HashMap::new()),
        }),
        "updates_are_visible_across_instances",
    )
    .await;
    assert_caught(
        "drops-last-page",
        broken(DropsLastPage),
        "listing_pages_partition_the_set",
    )
    .await;
    assert_caught(
        "reuses-etags",
        broken(ReusesEtags),
        "etag_changes_on_every_write",
    )
    .await;
    assert_caught(
        "racy-conditions",
        broken(RacyConditions),
        "compare_and_swap_loses_no_update_across_instances",
    )
    .await;
    println!(
        "caught every broken store in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
