//! The official `@netlify/blobs` client (pinned in `interop/package.json`) against the
//! emulator, in edge mode and in API mode, through every operation.
//!
//! Needs `node` and `npm`; without them the test prints why and passes. It installs the npm
//! packages itself (`npm ci`) when `interop/node_modules` is missing.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::TOKEN;
use emulator::BlobsContext;
use tokio::process::Command;

/// The page size the emulator uses here, so that pagination is exercised with few keys.
const PAGE_SIZE: usize = 5;

fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

async fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

async fn run(mut cmd: Command, what: &str) {
    cmd.kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    println!("{what}: passed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_in_edge_and_api_modes() {
    if !available("node").await || !available("npm").await {
        println!("SKIPPED: node and npm are not installed, so the official client cannot run");
        return;
    }
    let dir = interop_dir();
    if !dir.join("node_modules/@netlify/blobs").exists() {
        let mut ci = Command::new("npm");
        ci.args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir);
        run(ci, "npm ci").await;
    }

    let server = common::file_or_memory_server(|c| c.list_page_size(PAGE_SIZE)).await;
    let contexts = [
        (
            "edge mode",
            BlobsContext::edge(&server.base, "interop-site", TOKEN),
        ),
        (
            "api mode",
            BlobsContext::api(&server.base, "interop-site", TOKEN),
        ),
    ];
    for (mode, context) in contexts {
        let mut node = Command::new("node");
        node.args(["--test", "test/"])
            .current_dir(&dir)
            .env("NETLIFY_BLOBS_CONTEXT", context.encode())
            .env("BLOBS_INTEROP_PAGE_SIZE", PAGE_SIZE.to_string())
            // Makes the client's retry delay 1 ms instead of 5 s.
            .env("NODE_ENV", "test");
        run(node, &format!("official client, {mode}")).await;
    }
    server.stop().await.unwrap();
}
