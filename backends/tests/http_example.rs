//! The `serverless_jobs` example as three OS processes: with `memory://` the job is lost
//! between them (404 job not found), with `file://` it goes pending, running, succeeded.
//! The run against the emulator lives with the emulator's tests.
#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use blobjobs_test_support::example;

#[test]
fn memory_store_loses_the_job_between_processes() {
    example::isolated_story("memory://", &[]);
}

#[test]
fn file_store_carries_the_job_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("file://{}", dir.path().display());
    let run = example::shared_story(&spec, &[]);
    example::assert_shared_story(&run);
}
