//! The conformance suite: proves which `BlobStore` backends and `JobStore`s survive separate
//! serverless instances, and that the job layer keeps every update.
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
//!
//! # Grading a job store of your own
//!
//! The job cases, the job model and every job race take a [`JobStoreFactory`]: a job store
//! of your own (SQL-native, a queue) is graded exactly as the project's job layer, which is
//! one adapter onto it ([`BlobJobFactory`] over a blob-store factory). Each instance is built
//! from a [`JobEnv`]: the case's namespace (what separates cases: a key prefix, a table) and
//! the clock leases and TTLs must be judged by, which the suite moves by hand.
//!
//! ```no_run
//! # async fn demo() {
//! use std::sync::Arc;
//! use blobjobs_conformance::{JobEnv, Options};
//! use blobjobs_store_api::JobStore;
//! # fn my_job_store(_: &str, _: Arc<dyn blobjobs_store_api::Clock>) -> blobjobs_store_api::Result<Arc<dyn JobStore>> { unimplemented!() }
//!
//! let factory = |env: JobEnv| async move { my_job_store(env.namespace(), env.clock()) };
//! blobjobs_conformance::run_jobs(factory, Options::default().backend("my-jobs"))
//!     .await
//!     .assert_passed();
//! # }
//! ```
//!
//! [`Backend::jobs`] stamps the same cases as tests (the blob cases are skipped there).
//!
//! # What a run checks besides the cases
//!
//! - **Races, every run.** Every race runs [`Options::race_rounds`] rounds: most on OS
//!   threads released together by spinning gates, many times back to back on a fast store,
//!   so that a store that checks and writes without ever yielding is caught where two racers
//!   really run at once; one in four interleaved on one task, so that a store (or a job
//!   layer) that yields between a check and a write hands that window to another racer. Around every instance
//!   call the suite also perturbs the schedule (seeded yields and spins; see
//!   [`Options::perturb()`]).
//! - **Quiescence.** Concurrent cases and generated sequences write down what they left
//!   behind; once a case has passed, the suite waits until none of its calls is in flight,
//!   lets [`Options::settle()`] pass, and reads everything again through a fresh instance: no
//!   deleted key or job may be back, no acknowledged write lost, listings must agree with
//!   reads. The interval is paid once per case and overlaps the cases that follow.
//! - **A likely cause.** Every failure names one of [`causes`] ("GET sends no ETag",
//!   "conditional writes are not atomic", "writes are not visible across instances", …),
//!   from what the case concluded, a symptom seen on the way, or the case's first promise;
//!   messages show values in words, not as Rust `Debug` output.
//! - **Promises.** [`promises()`] maps every behaviour the `BlobStore` and `JobStore` traits
//!   document, and every invariant of the design, to the cases that fail a store breaking
//!   it (the crate's `PROMISES.md` is the same table).

mod case;
mod cases;
pub mod causes;
mod ctx;
mod factory;
pub mod history;
pub mod model;
mod options;
mod probe;
pub mod promises;
mod race;
pub mod remote;
pub mod report;
mod runner;
mod seed;
mod settle;
mod shapes;
mod show;
mod stamp;
pub mod wire;

use std::sync::Arc;

pub use case::CaseInfo;
pub use cases::keys::awkward_keys;
pub use factory::{
    BlobJobFactory, InstanceFactory, JobEnv, JobStoreFactory, SharedFactory, SharedJobFactory,
};
pub use options::{
    CASES_ENV, Capabilities, CaseHook, DEFAULT_SETTLE, FILTER_ENV, Options, SEED_ENV, parse_seed,
};
pub use promises::{Promise, promises};
pub use report::{
    CaseReport, Cause, Progress, Report, Scope, Verdict, junit, markdown_diagnosis, markdown_matrix,
};
pub use stamp::Backend;

use crate::ctx::Target;

/// What the macros of this crate expand to; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::stamp::run_stamped;
}

/// The target of a blob-store run: its instances, and the project's job layer over them.
fn blob_target(factory: impl InstanceFactory) -> Target {
    let blobs: SharedFactory = Arc::new(factory);
    Target {
        jobs: Arc::new(BlobJobFactory::shared(blobs.clone())),
        blobs: Some(blobs),
    }
}

/// Runs every case against instances from `factory`: the blob-store cases, and the job-layer
/// cases against [`BlobJobFactory`] over the same instances.
pub async fn run_all(
    factory: impl InstanceFactory,
    capabilities: Capabilities,
    options: Options,
) -> Report {
    let mut cases = cases::blob();
    cases.extend(cases::jobs());
    runner::run_cases(blob_target(factory), capabilities, options, cases).await
}

/// Runs the blob-store cases only.
pub async fn run_blob(
    factory: impl InstanceFactory,
    capabilities: Capabilities,
    options: Options,
) -> Report {
    runner::run_cases(blob_target(factory), capabilities, options, cases::blob()).await
}

/// Runs the job-store cases (every job-layer case, model and race) against instances from
/// `factory`: a job store of your own, or [`BlobJobFactory`] over a blob-store factory.
pub async fn run_jobs(factory: impl JobStoreFactory, options: Options) -> Report {
    let target = Target {
        blobs: None,
        jobs: Arc::new(factory),
    };
    runner::run_cases(target, Capabilities::default(), options, cases::jobs()).await
}

/// Every case of the suite, in run order, with its area and scope.
pub fn cases() -> Vec<CaseInfo> {
    cases::blob()
        .iter()
        .chain(cases::jobs().iter())
        .map(case::Case::info)
        .collect()
}

/// The cases that grade a job store (what [`run_jobs`] runs), in run order.
pub fn job_cases() -> Vec<CaseInfo> {
    cases::jobs().iter().map(case::Case::info).collect()
}
