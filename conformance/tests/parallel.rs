//! `Options::parallel`: several cases at once, each on its own key prefix, still reported in
//! run order and with the verdicts of a run one case at a time.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use blobjobs_conformance::{Capabilities, Options};
use blobjobs_store_api::{BlobStore, Result, SetOptions, SetOutcome};
use bytes::Bytes;
use common::{Fault, faulty};

/// Counts, for every write, how many cases (key prefixes `…/cNN/`) have a write in flight,
/// and keeps the most; each write waits a moment, as a write over a network would.
#[derive(Debug, Default)]
struct Watch {
    writing: Mutex<HashMap<String, usize>>,
    most: AtomicUsize,
}

#[derive(Debug)]
struct Watched(Arc<Watch>);

#[async_trait]
impl Fault for Watched {
    async fn set(
        &self,
        inner: &dyn BlobStore,
        key: &str,
        value: Bytes,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let case = key.split('/').nth(1).unwrap_or_default().to_owned();
        {
            let mut writing = self.0.writing.lock().unwrap();
            *writing.entry(case.clone()).or_default() += 1;
            self.0.most.fetch_max(writing.len(), Ordering::SeqCst);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
        let outcome = inner.set(key, value, options).await;
        let mut writing = self.0.writing.lock().unwrap();
        if let Some(n) = writing.get_mut(&case) {
            *n -= 1;
            if *n == 0 {
                writing.remove(&case);
            }
        }
        outcome
    }
}

/// Runs the round-trip cases `parallel` at a time against a correct shared store; returns
/// the case names in report order and the most cases that wrote at once.
async fn run(parallel: usize) -> (Vec<String>, usize) {
    let watch = Arc::new(Watch::default());
    let w = watch.clone();
    let options = Options::default()
        .backend("watched")
        .filter("round_trip")
        .parallel(parallel);
    let report = blobjobs_conformance::run_blob(
        faulty(move |_| Watched(w.clone())),
        Capabilities::default(),
        options,
    )
    .await;
    report.assert_passed();
    let names = report.cases.iter().map(|c| c.name.clone()).collect();
    (names, watch.most.load(Ordering::SeqCst))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_cases_overlap_and_are_reported_in_run_order() {
    let (one_by_one, most) = run(1).await;
    assert!(one_by_one.len() >= 4, "{one_by_one:?}");
    assert_eq!(most, 1, "one case at a time, but {most} wrote at once");
    let (at_once, most) = run(3).await;
    assert_eq!(at_once, one_by_one, "the report keeps the run order");
    assert!(
        most >= 2,
        "three cases at a time, but at most {most} wrote at once"
    );
}
