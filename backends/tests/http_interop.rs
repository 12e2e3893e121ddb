//! `HttpStore` against the official local server, `BlobsServer` from `@netlify/blobs`
//! 11.1.1 (pinned in `interop/package.json`), in edge mode and in API mode.
//!
//! Only what that server supports is checked. It does not do, and so this test does not
//! expect: an `etag` on GET and HEAD (reads report an empty ETag, so compare-and-swap
//! loops such as the job store's cannot work against it), conditional GETs, list
//! pagination, listing in API mode (it corrupts `prefix` and `directories`), percent-decoding
//! of keys (an encoded key is stored and listed in its encoded form), a flat keyspace (`p`
//! and `p/x` cannot coexist, deleting `p` deletes `p/*`) and key segments over 255 bytes.
//!
//! Needs `node` and `npm`; without them the test prints why and passes, like the emulator's
//! interop test. It installs the npm packages (`npm ci`) when `interop/node_modules` is
//! missing.
#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::process::Stdio;
use std::time::Duration;

use blobjobs_backends::http::{ClientOptions, HttpStore, RetryPolicy, StoreKind, Token};
use blobjobs_store_api::{
    BlobStore, ByteStream, ErrorKind, ListOptions, Metadata, SetOptions, SetOutcome,
};
use blobjobs_test_support::interop;
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const TOKEN: &str = "interop-token";
const SITE: &str = "interop-site";

/// Starts `BlobsServer` on a random loopback port and prints it; stops when stdin closes.
/// `BlobsServer` has no host option and listens on every interface, so the script makes
/// every server it starts listen on 127.0.0.1 only.
const SERVER_SCRIPT: &str = r"
import http from 'node:http';
import { BlobsServer } from '@netlify/blobs/server';
const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (port, ...rest) {
  return listen.call(this, port, '127.0.0.1', ...rest);
};
const server = new BlobsServer({ directory: process.argv[1], token: process.argv[2], port: 0 });
const { port } = await server.start();
console.log('PORT ' + port);
process.stdin.on('end', async () => { await server.stop(); process.exit(0); });
process.stdin.resume();
";

/// A running `BlobsServer`, killed on drop.
struct Official {
    _child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

async fn start_official() -> Option<Official> {
    let interop = interop::prepare("BlobsServer").await?;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new("node")
        .args(["--input-type=module", "-e", SERVER_SCRIPT])
        .arg(dir.path())
        .arg(TOKEN)
        .current_dir(&interop)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let port = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(port) = line.strip_prefix("PORT ") {
                return port.trim().to_owned();
            }
        }
        panic!("BlobsServer exited without printing its port");
    })
    .await
    .expect("BlobsServer did not start in time");
    Some(Official {
        _child: child,
        base: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    })
}

fn store(base: &str, api: bool, name: &str) -> HttpStore {
    let retry = RetryPolicy::default()
        .max_attempts(2)
        .backoff(Duration::from_millis(20), Duration::from_millis(20));
    let mut options = ClientOptions {
        site_id: Some(SITE.into()),
        token: Some(Token::new(TOKEN)),
        retry,
        ..ClientOptions::default()
    };
    if api {
        options.api_url = Some(base.to_owned());
    } else {
        options.edge_url = Some(base.to_owned());
        options.uncached_edge_url = Some(base.to_owned());
        options.consistency = blobjobs_backends::http::Consistency::Strong;
    }
    HttpStore::open(&options, None, &StoreKind::Site(name.into())).unwrap()
}

async fn values_metadata_and_deletes(store: &HttpStore) {
    let meta = Metadata::from_pairs([("user", "ü")]);
    let outcome = store
        .set(
            "cart/42",
            Bytes::from("hello"),
            SetOptions::new().metadata(meta.clone()),
        )
        .await
        .unwrap();
    let etag = outcome.etag().cloned().unwrap();
    assert!(!etag.as_str().is_empty(), "a PUT answers with an etag");
    let blob = store.get("cart/42").await.unwrap().unwrap();
    assert_eq!(blob.value, "hello");
    assert_eq!(blob.info.metadata, meta);
    assert_eq!(
        blob.info.etag.as_str(),
        "",
        "BlobsServer sends no etag on GET"
    );
    let info = store.get_metadata("cart/42").await.unwrap().unwrap();
    assert_eq!(info.metadata, meta);
    assert!(store.get("cart/404").await.unwrap().is_none());
    assert!(store.get_metadata("cart/404").await.unwrap().is_none());
    // Empty metadata and an empty value round-trip too.
    store
        .set("empty", Bytes::new(), SetOptions::new())
        .await
        .unwrap();
    let empty = store.get("empty").await.unwrap().unwrap();
    assert!(empty.value.is_empty() && empty.info.metadata.is_empty());
    // Keys with spaces and non-ASCII characters reach the same file both ways.
    for key in ["a b", "ü/é", "emoji-😀"] {
        store
            .set(key, Bytes::from(key.to_owned()), SetOptions::new())
            .await
            .unwrap();
        assert_eq!(store.get(key).await.unwrap().unwrap().value, key);
    }
    store.delete("cart/42").await.unwrap();
    store.delete("cart/42").await.unwrap();
    assert!(store.get("cart/42").await.unwrap().is_none());
}

async fn conditional_writes(store: &HttpStore) {
    let first = store
        .set("c", Bytes::from("one"), SetOptions::new().if_new())
        .await
        .unwrap();
    let SetOutcome::Written { etag } = first else {
        panic!("if_new on a missing key was refused");
    };
    let again = store
        .set("c", Bytes::from("two"), SetOptions::new().if_new())
        .await
        .unwrap();
    assert_eq!(again, SetOutcome::ConditionFailed);
    let next = store
        .set(
            "c",
            Bytes::from("three"),
            SetOptions::new().if_match(etag.clone()),
        )
        .await
        .unwrap();
    assert!(next.is_written());
    // The server's ETags come from the file's mtime; make sure the clock moved.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let stale = store
        .set("c", Bytes::from("four"), SetOptions::new().if_match(etag))
        .await
        .unwrap();
    assert_eq!(stale, SetOutcome::ConditionFailed);
    assert_eq!(store.get("c").await.unwrap().unwrap().value, "three");
}

async fn streams(store: &HttpStore) {
    let chunks = vec![Bytes::from(vec![5u8; 512 * 1024]); 5];
    let body: ByteStream = Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
    store
        .set_stream("big", body, None, SetOptions::new())
        .await
        .unwrap();
    let (_, mut stream) = store.get_stream("big").await.unwrap().unwrap();
    let mut total = 0;
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk.unwrap();
        assert!(chunk.iter().all(|b| *b == 5));
        total += chunk.len();
    }
    assert_eq!(total, 5 * 512 * 1024);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_mode_against_blobs_server() {
    let Some(server) = start_official().await else {
        return;
    };
    let store = store(&server.base, false, "edge");
    values_metadata_and_deletes(&store).await;
    conditional_writes(&store).await;
    streams(&store).await;

    // Listing (edge mode only), with the client dropping the server's prefix quirk.
    for key in ["dir/a", "dir/sub/c", "d", "top"] {
        store
            .set(key, Bytes::from("x"), SetOptions::new())
            .await
            .unwrap();
    }
    let page = store.list(ListOptions::new().prefix("dir/")).await.unwrap();
    let keys: Vec<String> = page.blobs.iter().map(|e| e.key.clone()).collect();
    assert_eq!(keys, ["dir/a", "dir/sub/c"]);
    assert!(page.blobs.iter().all(|e| !e.etag.as_str().is_empty()));
    let page = store
        .list(ListOptions::new().prefix("dir/").directories(true))
        .await
        .unwrap();
    let keys: Vec<String> = page.blobs.iter().map(|e| e.key.clone()).collect();
    assert_eq!(keys, ["dir/a"]);
    assert_eq!(page.directories, ["dir/sub"]);
    let page = store.list(ListOptions::new().page_size(2)).await.unwrap();
    assert_eq!(page.blobs.len(), 2);
    assert!(page.next_cursor.is_some());

    // A deploy store in edge mode carries a region segment, which the server strips.
    let ctx = blobjobs_backends::http::BlobsContext {
        site_id: Some(SITE.into()),
        token: Some(Token::new(TOKEN)),
        edge_url: Some(server.base.clone()),
        deploy_id: Some("dep1".into()),
        primary_region: Some("us-east-2".into()),
        ..Default::default()
    };
    let deploy = HttpStore::open(
        &ClientOptions::default(),
        Some(&ctx),
        &StoreKind::Deploy {
            deploy_id: None,
            name: None,
        },
    )
    .unwrap();
    deploy
        .set("k", Bytes::from("d"), SetOptions::new())
        .await
        .unwrap();
    assert_eq!(deploy.get("k").await.unwrap().unwrap().value, "d");

    let mut wrong = ClientOptions {
        site_id: Some(SITE.into()),
        token: Some(Token::new("wrong")),
        edge_url: Some(server.base.clone()),
        retry: RetryPolicy::none(),
        ..ClientOptions::default()
    };
    let bad = HttpStore::open(&wrong, None, &StoreKind::Site("edge".into())).unwrap();
    assert_eq!(
        bad.get("top").await.unwrap_err().kind(),
        ErrorKind::Unauthorized
    );
    wrong.edge_url = None;
    wrong.api_url = Some(server.base.clone());
    let bad = HttpStore::open(&wrong, None, &StoreKind::Site("edge".into())).unwrap();
    assert_eq!(
        bad.get("top").await.unwrap_err().kind(),
        ErrorKind::Unauthorized
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_mode_against_blobs_server() {
    let Some(server) = start_official().await else {
        return;
    };
    let api = store(&server.base, true, "api");
    values_metadata_and_deletes(&api).await;
    conditional_writes(&api).await;
    streams(&api).await;
    // What API mode wrote, edge mode reads: one store, two ways in.
    let edge = store(&server.base, false, "api");
    assert_eq!(edge.get("c").await.unwrap().unwrap().value, "three");
}
