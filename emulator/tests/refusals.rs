//! A PUT refused before its body is read reaches the client as a status, not as a reset
//! connection: plain `fetch` (Node's) sends 80 oversized values and gets 80 × 413, and the
//! official `@netlify/blobs` client reports the size error after its first request instead of
//! retrying a dropped connection for 5 to 25 s (`interop/refusals/oversize.mjs`).
//!
//! Needs `node` and `npm`; without them the test prints why and passes, like `interop.rs`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use blobjobs_test_support::interop;
use common::TOKEN;
use tokio::process::Command;

/// Oversized PUTs sent with plain `fetch`.
const PUTS: usize = 80;
/// Their size: far over the server's limit, and far more than the socket buffers hold, so that
/// the client is still sending when the refusal comes.
const BODY_BYTES: usize = 4 * 1024 * 1024;
/// The server's limit.
const MAX: u64 = 1024;
/// The official client waits 5 s before each retry (outside `NODE_ENV=test`), so an answer
/// within this time came from its first request.
const NO_RETRY_FITS: Duration = Duration::from_secs(4);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_puts_are_refused_with_413_that_reaches_fetch_and_the_official_client() {
    let Some(dir) = interop::prepare("the refusal test with fetch").await else {
        return;
    };
    let server = common::TestServer::start(common::memory_config().max_blob_size(MAX)).await;
    let mut node = Command::new("node");
    node.arg("refusals/oversize.mjs")
        .current_dir(&dir)
        .env("BASE", &server.base)
        .env("TOKEN", TOKEN)
        .env("SITE", "site-1")
        .env("PUTS", PUTS.to_string())
        .env("SIZE", BODY_BYTES.to_string())
        .env_remove("NODE_ENV")
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(180), node.output())
        .await
        .expect("node finished in time")
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "node failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(stdout.trim().lines().last().unwrap())
        .unwrap_or_else(|e| panic!("not a report ({e}): {stdout}"));
    println!("{report}");

    assert_eq!(
        report["statuses"],
        serde_json::json!({ "413": PUTS }),
        "every oversized PUT must get its 413"
    );
    // One request, and the size error in its message: the client saw the status, so it had
    // nothing to retry.
    assert_eq!(
        report["attempts"], 1,
        "the official client retried: {report}"
    );
    let message = report["clientError"]
        .as_str()
        .expect("the client reported an error");
    assert!(message.contains("larger than the maximum"), "{message}");
    let took = Duration::from_millis(report["clientMs"].as_u64().unwrap());
    assert!(took < NO_RETRY_FITS, "the official client took {took:?}");
    server.stop().await.unwrap();
}
