//! Helpers shared by the workspace's tests and benchmarks, kept once instead of included by
//! path into several test binaries: small `BlobStore` helpers, a harness that re-runs the
//! current test binary as a child process, the `serverless_jobs` example run as separate
//! processes, real storage engines (SeaweedFS's S3 gateway, PostgreSQL) started on free
//! loopback ports, the setup of the interop tests with the official npm client, Debian's
//! Chromium for the browser test, the npm packages packed from their tarballs, a recording and
//! fault-injecting stand-in for a Netlify Blobs server and, with the `bench` feature, the
//! benchmark bodies that several benches share.
//!
//! It is project tooling (`publish = false`): a dev-dependency of the crates, and a
//! dependency of `xtask` (for the npm install of `interop/` and the npm packages). Its helpers panic on failure, as
//! tests do, except [`interop::install`] and [`npm::pack`], which `xtask` calls too.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

#[cfg(feature = "bench")]
pub mod bench;
pub mod browser;
pub mod child;
pub mod engines;
pub mod example;
pub mod fake_server;
pub mod interop;
pub mod npm;
mod store;

use std::path::PathBuf;

pub use store::{
    all_keys, assert_no_temp_files, awkward_keys, collect, files_under, put, stream_of,
};

/// The workspace's top folder (this crate sits two levels below it, in `xtask/test-support`).
pub fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    here.canonicalize().unwrap_or(here)
}
