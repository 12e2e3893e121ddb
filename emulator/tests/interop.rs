//! The official `@netlify/blobs` client (pinned in `interop/package.json`) against the
//! emulator, in edge mode and in API mode, through every operation.
//!
//! Needs `node` and `npm`; without them the test prints why and passes. It installs the npm
//! packages itself (`npm ci`) when `interop/node_modules` is missing.
#![allow(clippy::unwrap_used)]

mod common;

use blobjobs_emulator::BlobsContext;
use blobjobs_test_support::interop;
use common::TOKEN;
use tokio::process::Command;

/// The page size the emulator uses here, so that pagination is exercised with few keys.
const PAGE_SIZE: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_in_edge_and_api_modes() {
    let Some(dir) = interop::prepare("the official client").await else {
        return;
    };
    let server = common::file_server(|c| c.list_page_size(PAGE_SIZE)).await;
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
        interop::run(node, &format!("official client, {mode}")).await;
    }
    server.stop().await.unwrap();
}
