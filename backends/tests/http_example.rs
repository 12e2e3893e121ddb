//! The `serverless_jobs` example as three OS processes: with `memory://` the job is lost
//! between them (404 job not found), with `file://` it goes pending, running, succeeded.
//! The run against the emulator lives with the emulator's tests.
#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

#[allow(dead_code)]
#[path = "../examples/serverless_jobs.rs"]
mod serverless_jobs;

#[path = "http_support/processes.rs"]
mod processes;

/// The child processes' entry point; in the test run itself it does nothing.
#[test]
fn child() {
    processes::child_main(|args| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(serverless_jobs::run(args))
    });
}

#[test]
fn memory_store_loses_the_job_between_processes() {
    processes::isolated_story("memory://", &[]);
}

#[test]
fn file_store_carries_the_job_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("file://{}", dir.path().display());
    let run = processes::shared_story(&spec, &[]);
    processes::assert_shared_story(&run);
}
