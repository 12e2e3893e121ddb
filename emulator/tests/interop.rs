//! The official `@netlify/blobs` client (pinned in `interop/package.json`) against the
//! emulator, in edge mode and in API mode, through every operation: over files, and over
//! the two engines (S3 on SeaweedFS, PostgreSQL), each started by
//! `blobjobs_test_support::engines`.
//!
//! Needs `node` and `npm`; without them the test prints why and passes. It installs the npm
//! packages itself (`npm ci`) when `interop/node_modules` is missing.
#![allow(clippy::unwrap_used)]

mod common;

use blobjobs_backends::Catalog;
use blobjobs_backends::open::{Env, OpenOptions};
use blobjobs_emulator::{BlobsContext, Config};
use blobjobs_test_support::engines::{random_hex, shared_postgres, shared_seaweedfs};
use blobjobs_test_support::interop;
use common::{TOKEN, TestServer};
use tokio::process::Command;

/// The page size the emulator uses here, so that pagination is exercised with few keys.
const PAGE_SIZE: usize = 5;

/// Runs the official client's test file against `server` in edge mode, then in API mode.
async fn official_client_against(server: TestServer, storage: &str) {
    let Some(dir) = interop::prepare("the official client").await else {
        return;
    };
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
        interop::run(node, &format!("official client, {mode}, over {storage}")).await;
    }
    server.stop().await.unwrap();
}

/// A server over the catalog of `spec`, with the credentials of `env`.
async fn engine_server(spec: &str, env: Vec<(String, String)>) -> TestServer {
    let options = OpenOptions {
        env: Env::from_pairs(env),
        ..OpenOptions::default()
    };
    let catalog = Catalog::open(spec, &options).unwrap();
    catalog.check().await.unwrap();
    TestServer::start(Config::new(catalog, TOKEN).list_page_size(PAGE_SIZE)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_in_edge_and_api_modes() {
    let server = common::file_server(|c| c.list_page_size(PAGE_SIZE)).await;
    official_client_against(server, "files").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_over_s3() {
    if interop::prepare("the official client").await.is_none() {
        return;
    }
    let weed = shared_seaweedfs().await;
    let spec = weed.spec(&format!("interop-{}", random_hex(4)));
    official_client_against(engine_server(&spec, weed.env()).await, "s3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_client_over_postgres() {
    if interop::prepare("the official client").await.is_none() {
        return;
    }
    let pg = shared_postgres().await;
    official_client_against(engine_server(&pg.spec(), Vec::new()).await, "postgres").await;
}
