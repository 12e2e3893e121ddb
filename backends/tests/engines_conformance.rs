//! The conformance suite, one test per case, on the two engine backends: `s3` against a
//! SeaweedFS S3 gateway and `postgres` against a private PostgreSQL server, each started once
//! for this test binary by `blobjobs_test_support::engines` (installed and started by the
//! project; nothing is skipped). Every instance is a new client: a new `S3Store` with its
//! own HTTP connections, a new `PgStore` with its own connection pool.
//!
//! SeaweedFS serialises contended writes to one key with a lock it re-polls once a second,
//! so the s3 runs use three instances and eight generated sequences per model case, which
//! keeps the racing cases to seconds. PostgreSQL runs sixteen sequences per model case (a
//! third of the default): each operation is a round trip to a server on the same two cores,
//! and the full count would triple the binary's time in `cargo xtask ci`.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::sync::Arc;

use blobjobs_backends::open::{Env, OpenOptions, open_store_with};
use blobjobs_backends::s3::S3Store;
use blobjobs_conformance::Backend;
use blobjobs_store_api::BlobStore;
use blobjobs_test_support::engines::{shared_postgres, shared_seaweedfs};

async fn s3() -> Backend {
    let config = shared_seaweedfs().await.config();
    let factory = move || {
        let config = config.clone();
        async move { Ok(Arc::new(S3Store::open(&config, "conformance")?) as Arc<dyn BlobStore>) }
    };
    Backend::new("s3", factory).options(|o| o.cases(8).instances(3))
}

async fn postgres() -> Backend {
    let spec = shared_postgres().await.spec();
    let factory = move || {
        let spec = spec.clone();
        async move {
            // The spec carries everything; an empty environment keeps PG* variables of the
            // shell out of the test.
            let options = OpenOptions {
                env: Env::from_pairs(Vec::<(String, String)>::new()),
                ..OpenOptions::default()
            };
            open_store_with(&spec, "conformance", &options)
        }
    };
    Backend::new("postgres", factory).options(|o| o.cases(16))
}

blobjobs_conformance::tests!(s3, s3());
blobjobs_conformance::tests!(postgres, postgres());
