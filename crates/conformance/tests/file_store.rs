//! The file backend is fit for serverless job tracking: every case passes with instances that
//! are separate `FileStore` handles on one directory.

use std::sync::Arc;

use backends::{FileOptions, FileStore};
use conformance::{Capabilities, Options};
use store_api::BlobStore;

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
    let report = conformance::run_all(
        factory,
        Capabilities::default(),
        Options::default().backend("file"),
    )
    .await;
    println!("{}", report.to_text());
    report.assert_passed();
}
