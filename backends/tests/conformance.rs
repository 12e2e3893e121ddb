//! The conformance suite, one test per case, on the backends of this crate: the file store,
//! durable and without fsync (where an overwrite swaps the old version out instead of
//! renaming over it), with every instance a separate `FileStore` handle on one directory; and
//! the memory store as the suite's negative control, with every instance a separate
//! `MemoryStore`, which must fail every cross-instance case and pass every other.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::sync::Arc;

use blobjobs_backends::{FileOptions, FileStore, MemoryStore};
use blobjobs_conformance::Backend;
use blobjobs_store_api::BlobStore;
use blobjobs_test_support::assert_no_temp_files;

/// Instances are `FileStore` handles on one fresh directory, as separate processes open
/// them; after each case no temporary file may be left behind.
async fn file(name: &'static str, options: FileOptions) -> Backend {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let root = dir.path().to_path_buf();
    let factory = move || {
        let dir = dir.clone();
        async move {
            let store = FileStore::open(dir.path(), "conformance", options)?;
            Ok(Arc::new(store) as Arc<dyn BlobStore>)
        }
    };
    Backend::new(name, factory).after_each_case(move || assert_no_temp_files(&root))
}

async fn file_durable() -> Backend {
    file("file", FileOptions { fsync: true }).await
}

async fn file_nosync() -> Backend {
    file("file-nosync", FileOptions { fsync: false }).await
}

/// Every instance a new `MemoryStore`: process-local state, as separate serverless instances
/// would each hold, so nothing one writes reaches another.
async fn memory() -> Backend {
    let factory = || async { Ok(Arc::new(MemoryStore::new()) as Arc<dyn BlobStore>) };
    Backend::new("memory", factory).negative_control()
}

blobjobs_conformance::tests!(file_durable, file_durable());
blobjobs_conformance::tests!(file_nosync, file_nosync());
blobjobs_conformance::tests!(memory, memory());
