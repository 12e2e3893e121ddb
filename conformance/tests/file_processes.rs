//! The file backend with every instance in its own OS process: this test binary re-runs
//! itself as the instance program (`serve_instance_stdio` over a `FileStore`), so nothing
//! shared in memory can hold the instances together.
//!
//! The binary has its own `main` (`harness = false`): an instance speaks JSON lines on
//! stdout, where the test harness would print its own lines.

use std::sync::Arc;

use blobjobs_backends::{FileOptions, FileStore};
use blobjobs_conformance::remote::{ProcessFactory, serve_instance_stdio};
use blobjobs_conformance::{Capabilities, Options};
use blobjobs_store_api::BlobStore;
use blobjobs_test_support::child;

/// The role of the child processes.
const INSTANCE: &str = "instance";
/// The directory of the shared store, for the instances.
const DIR_VAR: &str = "CONFORMANCE_TEST_INSTANCE_DIR";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    if child::role().as_deref() == Some(INSTANCE) {
        // Instance mode: serve one FileStore handle until stdin closes.
        let dir = std::env::var(DIR_VAR)?;
        let store = FileStore::open(&dir, "conformance", FileOptions::default())?;
        runtime.block_on(serve_instance_stdio(Arc::new(store) as Arc<dyn BlobStore>))?;
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let exe = std::env::current_exe()?;
    let factory = ProcessFactory::new(exe)
        .env(child::ROLE_ENV, INSTANCE)
        .env(DIR_VAR, dir.path());
    let options = Options::default().backend("file-processes").cases(16);
    let report = runtime.block_on(blobjobs_conformance::run_all(
        factory,
        Capabilities::default(),
        options,
    ));
    println!("{}", report.to_text());
    report.assert_passed();
    println!("test file_store_passes_every_case_with_instances_in_separate_processes ... ok");
    Ok(())
}
