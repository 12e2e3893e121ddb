//! The progress hook of a run hears of every case once, in run order, as it finishes. (Every
//! backend's own tests check that it passes the cases, one test per case.)

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::sync::{Arc, Mutex};

use blobjobs_backends::MemoryStore;
use blobjobs_conformance::{Capabilities, Options};
use blobjobs_store_api::BlobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_progress_hook_hears_of_every_case_in_run_order() {
    // Clones of one memory store share their data: a correct cross-instance store.
    let shared = MemoryStore::new();
    let factory = move || std::future::ready(Ok(Arc::new(shared.clone()) as Arc<dyn BlobStore>));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = seen.clone();
    let options = Options::default()
        .backend("shared-memory")
        .on_case(move |p| {
            let mut seen = progress.lock().unwrap();
            seen.push((p.done, p.total, p.case.name.clone()));
        });
    let report = blobjobs_conformance::run_all(factory, Capabilities::default(), options).await;
    report.assert_passed();
    let seen = seen.lock().unwrap().clone();
    let total = report.cases.len();
    assert_eq!(total, blobjobs_conformance::cases().len());
    let expected: Vec<_> = (report.cases.iter().enumerate())
        .map(|(i, c)| (i + 1, total, c.name.clone()))
        .collect();
    assert_eq!(seen, expected);
}
