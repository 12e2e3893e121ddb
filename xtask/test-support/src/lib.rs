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

/// The variable `cargo xtask ci` sets for its tests: a test that would skip because this
/// machine lacks a tool or a kernel feature fails instead, so that CI cannot pass without
/// running it. Plain `cargo test` leaves it unset, and such tests skip with a note.
pub const REQUIRE_ALL_ENV: &str = "BLOBJOBS_REQUIRE_ALL";

/// For a test that cannot run here because `why`: prints a note naming `what` is skipped
/// and `fix` (how to get what is missing) and returns, so that the caller returns too;
/// panics with the same words instead when [`REQUIRE_ALL_ENV`] is set.
pub fn skip(what: &str, why: &str, fix: &str) {
    let required = std::env::var_os(REQUIRE_ALL_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    skip_or_fail(required, what, why, fix);
}

fn skip_or_fail(required: bool, what: &str, why: &str, fix: &str) {
    if required {
        panic!("{what} cannot run: {why}; {fix} ({REQUIRE_ALL_ENV} is set, so nothing is skipped)");
    }
    println!("SKIPPED: {what}: {why}; {fix}");
}

#[cfg(test)]
mod tests {
    use super::skip_or_fail;

    #[test]
    fn a_missing_tool_skips_a_test_only_when_not_everything_is_required() {
        skip_or_fail(
            false,
            "the interop test",
            "node is not installed",
            "install it",
        );
        let required = std::panic::catch_unwind(|| {
            skip_or_fail(
                true,
                "the interop test",
                "node is not installed",
                "install it",
            )
        });
        let message = required.unwrap_err();
        let message = message.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("node is not installed; install it"),
            "{message}"
        );
    }
}
