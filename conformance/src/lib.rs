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
//! Any crate can run it from its own tests. [`tests!`] stamps one `#[test]` per case, so a
//! failing case shows under its own name:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use blobjobs_store_api::BlobStore;
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
//! async fn mine() -> blobjobs_conformance::Backend {
//!     // A new instance per call: a fresh handle from the same configuration.
//!     blobjobs_conformance::Backend::new("mine", || async {
//!         Ok(Arc::new(MyStore::connect()?) as Arc<dyn BlobStore>)
//!     })
//! }
//!
//! // Tests `mine::read_your_write_is_byte_exact`, `mine::claim_is_exclusive_across_instances`, …
//! blobjobs_conformance::tests!(mine, mine());
//! # fn main() {}
//! ```
//!
//! A store whose instances share nothing (the memory backend) is the suite's negative
//! control: `Backend::negative_control()` turns every cross-instance case into a test that
//! passes only if the case fails. [`run_all`] runs every case in one call and returns a
//! [`Report`]:
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
//! let factory = || async { Ok(Arc::new(MyStore::connect()?) as Arc<dyn BlobStore>) };
//! blobjobs_conformance::run_all(factory, Capabilities::default(), Options::default().backend("mine"))
//!     .await
//!     .assert_passed();
//! # }
//! ```
//!
//! A failure prints a shrunk timeline naming each instance and operation, and the seed that
//! replays it (`CONFORMANCE_SEED=… CONFORMANCE_FILTER=…`, which [`Options::from_env`] reads;
//! `Options::default()` reads no environment). Reports render as text, JSON lines, JUnit XML
//! and a Markdown matrix of backends by property.

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
mod stamp;
pub mod wire;

use std::sync::Arc;

pub use case::CaseInfo;
pub use cases::keys::awkward_keys;
pub use factory::{InstanceFactory, SharedFactory};
pub use options::{CASES_ENV, Capabilities, CaseHook, FILTER_ENV, Options, SEED_ENV, parse_seed};
pub use report::{
    CaseReport, Cause, Progress, Report, Scope, Verdict, junit, markdown_diagnosis, markdown_matrix,
};
pub use stamp::Backend;

/// What the macros of this crate expand to; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::stamp::run_stamped;
}

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

/// Every case of the suite, in run order, with its area and scope.
pub fn cases() -> Vec<CaseInfo> {
    cases::blob()
        .iter()
        .chain(cases::jobs().iter())
        .map(case::Case::info)
        .collect()
}
