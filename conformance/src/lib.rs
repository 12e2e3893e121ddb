//! The conformance suite: proves which `BlobStore` backends survive separate serverless
//! instances, and that the job layer on top of them keeps every update.
//!
//! Serverless instances share no memory. A store is fit for job tracking only if what one
//! instance writes, every other instance reads, with no update lost. The suite checks exactly
//! that, through *instances* built by a factory the caller provides (see
//! [`InstanceFactory`]): fixed cases named as behaviours, proptest state machines that spread
//! generated operation sequences over 1 to 4 instances and compare them with a pure model,
//! and concurrent cases whose histories are checked for linearizability.
//!
//! Any crate can run it from its own tests:
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use blobjobs_conformance::{Capabilities, Options};
//! use blobjobs_store_api::BlobStore;
//!
//! # #[derive(Debug)] struct MyStore;
//! # #[async_trait::async_trait]
//! # impl BlobStore for MyStore {
//! #   async fn get(&self, _: &str) -> blobjobs_store_api::Result<Option<blobjobs_store_api::Blob>> { Ok(None) }
//! #   async fn get_metadata(&self, _: &str) -> blobjobs_store_api::Result<Option<blobjobs_store_api::BlobInfo>> { Ok(None) }
//! #   async fn set(&self, _: &str, _: bytes::Bytes, _: blobjobs_store_api::SetOptions) -> blobjobs_store_api::Result<blobjobs_store_api::SetOutcome> { unimplemented!() }
//! #   async fn delete(&self, _: &str) -> blobjobs_store_api::Result<()> { Ok(()) }
//! #   async fn list(&self, _: blobjobs_store_api::ListOptions) -> blobjobs_store_api::Result<blobjobs_store_api::ListPage> { Ok(Default::default()) }
//! # }
//! # impl MyStore { fn connect() -> blobjobs_store_api::Result<Self> { Ok(MyStore) } }
//! // A new instance per call: a fresh handle from the same configuration.
//! let factory = || async { Ok(Arc::new(MyStore::connect()?) as Arc<dyn BlobStore>) };
//! blobjobs_conformance::run_all(factory, Capabilities::default(), Options::default().backend("mine"))
//!     .await
//!     .assert_passed();
//! # }
//! ```
//!
//! A failure prints a shrunk timeline naming each instance and operation, and the seed that
//! replays it (`CONFORMANCE_SEED=… CONFORMANCE_FILTER=…`). Reports render as text, JSON lines,
//! JUnit XML and a Markdown matrix of backends by property.

mod case;
mod cases;
mod ctx;
mod factory;
pub mod history;
pub mod model;
mod options;
pub mod remote;
pub mod report;
mod runner;
mod seed;
pub mod wire;

use std::sync::Arc;

pub use case::CaseInfo;
pub use factory::{InstanceFactory, SharedFactory};
pub use options::{Capabilities, CaseHook, Options, parse_seed};
pub use report::{CaseReport, Progress, Report, Scope, Verdict, junit, markdown_matrix};

/// Runs every case (blob store and job layer) against instances from `factory`.
pub async fn run_all(
    factory: impl InstanceFactory,
    capabilities: Capabilities,
    options: Options,
) -> Report {
    let mut cases = cases::blob();
    cases.extend(cases::jobs());
    runner::run_cases(Arc::new(factory), capabilities, options, cases).await
}

/// Runs the blob-store cases only.
pub async fn run_blob(
    factory: impl InstanceFactory,
    capabilities: Capabilities,
    options: Options,
) -> Report {
    runner::run_cases(Arc::new(factory), capabilities, options, cases::blob()).await
}

/// Runs the job-layer cases only (the generic `BlobJobStore` over instances from `factory`,
/// with one manual clock shared by the instances of each case).
pub async fn run_jobs(
    factory: impl InstanceFactory,
    capabilities: Capabilities,
    options: Options,
) -> Report {
    runner::run_cases(Arc::new(factory), capabilities, options, cases::jobs()).await
}

/// Runs every case against an already shared factory (for runners that keep one).
pub async fn run_shared(
    factory: SharedFactory,
    capabilities: Capabilities,
    options: Options,
) -> Report {
    let mut cases = cases::blob();
    cases.extend(cases::jobs());
    runner::run_cases(factory, capabilities, options, cases).await
}

/// Every case of the suite, in run order, with its area and scope.
pub fn cases() -> Vec<CaseInfo> {
    cases::blob()
        .iter()
        .chain(cases::jobs().iter())
        .map(case::Case::info)
        .collect()
}
