//! The file backend is fit for serverless job tracking: every case passes with instances that
//! are separate `FileStore` handles on one directory.

use std::sync::{Arc, Mutex};

use blobjobs_backends::{FileOptions, FileStore};
use blobjobs_conformance::{Capabilities, Options};
use blobjobs_store_api::BlobStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_store_passes_every_case() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let factory = move || {
        let root = root.clone();
        async move {
            let store = FileStore::open(&root, "conformance", FileOptions::default())?;
            Ok(Arc::new(store) as Arc<dyn BlobStore>)
        }
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let progress = seen.clone();
    let options = Options::default().backend("file").on_case(move |p| {
        let mut seen = progress.lock().unwrap();
        seen.push((p.done, p.total, p.case.name.clone()));
    });
    let report = blobjobs_conformance::run_all(factory, Capabilities::default(), options).await;
    println!("{}", report.to_text());
    report.assert_passed();
    // The progress hook heard of every case once, in run order, as it finished.
    let seen = seen.lock().unwrap().clone();
    let total = report.cases.len();
    let expected: Vec<_> = (report.cases.iter().enumerate())
        .map(|(i, c)| (i + 1, total, c.name.clone()))
        .collect();
    assert_eq!(seen, expected);
}
