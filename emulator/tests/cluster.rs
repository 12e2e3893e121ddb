//! Several emulators over one shared storage, as behind a load balancer: three servers, each
//! with its own catalog (its own engine client or pool), over S3 on SeaweedFS, over
//! PostgreSQL and over one directory. Whatever one is sent, the others serve; a URL that one
//! signed is valid on the others (they share the token and nothing else); store listings
//! and store deletes see every server's writes. Then the binary: `serve --store-url` with an
//! engine, two processes sharing it.
#![allow(clippy::unwrap_used)]

mod common;
mod engines;

use blobjobs_backends::http::{HttpConfig, Token};
use blobjobs_backends::open::{Env, OpenOptions};
use blobjobs_backends::{Catalog, HttpStore};
use blobjobs_emulator::Config;
use blobjobs_store_api::{BlobStore as _, Metadata};
use blobjobs_test_support::engines::{random_hex, shared_postgres, shared_seaweedfs};
use bytes::Bytes;
use common::binary::Emulator;
use common::{TOKEN, TestServer};
use serde_json::json;

/// Three servers, each over its own catalog of `spec`.
async fn cluster(spec: &str, env: Vec<(String, String)>) -> Vec<TestServer> {
    let options = OpenOptions {
        env: Env::from_pairs(env),
        ..OpenOptions::default()
    };
    let mut servers = Vec::new();
    for _ in 0..3 {
        let catalog = Catalog::open(spec, &options).unwrap();
        servers.push(TestServer::start(Config::new(catalog, TOKEN)).await);
    }
    servers
}

/// `url` (signed by one server) pointed at `server` instead.
fn moved(url: &str, server: &TestServer) -> String {
    let path = url.trim_start_matches("http://");
    let path = &path[path.find('/').unwrap()..];
    format!("{}{path}", server.base)
}

async fn one_store_through_any_server(s: &[TestServer]) {
    let site = format!("cluster-{}", random_hex(4));
    let key = |k: &str| format!("/{site}/site:shared/{k}");
    let meta = Metadata::from_pairs([("by", "server 0")]).to_header();
    let put = s[0]
        .authed(
            "PUT",
            &key("k"),
            &[("netlify-blobs-metadata", &meta)],
            "first",
        )
        .await;
    assert_eq!(put.status, 200);
    let etag = put.etag();
    let got = s[1].get(&key("k")).await;
    assert_eq!(
        (got.status.as_u16(), got.body.as_ref()),
        (200, &b"first"[..])
    );
    assert_eq!(got.etag(), etag);
    assert_eq!(got.header("netlify-blobs-metadata"), Some(meta.as_str()));

    // A compare-and-swap through another server, and the stale one refused by a third.
    let swapped = s[2]
        .authed("PUT", &key("k"), &[("if-match", &etag)], "second")
        .await;
    assert_eq!(swapped.status, 200);
    let stale = s[0]
        .authed("PUT", &key("k"), &[("if-match", &etag)], "lost")
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(s[1].get(&key("k")).await.body, "second");

    // API mode: a URL signed by server 0 works on servers 1 and 2, for its method only.
    let accept = ("accept", "application/json;type=signed-url");
    let api = format!("/api/v1/blobs/{site}/site:shared/signed");
    let step1 = s[0].authed("PUT", &api, &[accept], Bytes::new()).await;
    assert_eq!(step1.status, 200);
    let put_url = step1.json()["url"].as_str().unwrap().to_owned();
    assert!(put_url.starts_with(&s[0].base), "{put_url}");
    let put = s[1]
        .call("PUT", &moved(&put_url, &s[1]), &[], "via a signed url")
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let step1 = s[2].authed("GET", &api, &[accept], Bytes::new()).await;
    let get_url = step1.json()["url"].as_str().unwrap().to_owned();
    let got = s[0]
        .call("GET", &moved(&get_url, &s[0]), &[], Bytes::new())
        .await;
    assert_eq!(got.body, "via a signed url");
    let wrong_method = s[1].call("PUT", &moved(&get_url, &s[1]), &[], "evil").await;
    assert_eq!(wrong_method.status, 403);

    // Listings, store listings and a store delete see every server's writes.
    let listing = s[2].get(&format!("/{site}/site:shared")).await.json();
    assert_eq!(engines::keys_of(&listing), ["k", "signed"]);
    s[1].put(&format!("/{site}/site:other/x"), "x").await;
    assert_eq!(
        s[0].get(&format!("/{site}?prefix=")).await.json(),
        json!({"stores": ["site:other", "site:shared"]})
    );
    let deleted = s[1].delete(&format!("/{site}/site:shared")).await.json();
    assert_eq!(deleted["blobs_deleted"], 2);
    assert_eq!(s[2].get(&key("k")).await.status, 404);
    assert_eq!(
        s[2].get(&format!("/{site}?prefix=")).await.json(),
        json!({"stores": ["site:other"]})
    );
    for server in s {
        server.begin_shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulators_over_s3_serve_one_store() {
    let weed = shared_seaweedfs().await;
    let spec = weed.spec(&format!("cluster-{}", random_hex(4)));
    one_store_through_any_server(&cluster(&spec, weed.env()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulators_over_postgres_serve_one_store() {
    let pg = shared_postgres().await;
    one_store_through_any_server(&cluster(&pg.spec(), Vec::new()).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emulators_over_one_directory_serve_one_store() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("file://{}", dir.path().display());
    one_store_through_any_server(&cluster(&spec, Vec::new()).await).await;
}

/// Two `blobs-emulator serve --store-url postgres://…` processes (the password from
/// `PGPASSWORD`, as `--help` advises): one's writes are the other's reads, and the banner
/// names the server without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binaries_over_one_engine_share_it() {
    let pg = shared_postgres().await;
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
    let args = ["--store-url", url.as_str()];
    let env = [("PGPASSWORD", pg.password())];
    let one = Emulator::start_with(None, &args, &env).await;
    let two = Emulator::start_with(None, &args, &env).await;
    let site = format!("bin-{}", random_hex(4));
    let client = |e: &Emulator| {
        HttpStore::new(HttpConfig::edge(e.base.as_str(), &site, Token::new(TOKEN), "s").unwrap())
            .unwrap()
    };
    blobjobs_test_support::put(&client(&one), "k", b"from process one").await;
    let got = client(&two).get("k").await.unwrap().unwrap();
    assert_eq!(got.value.as_ref(), b"from process one");
    one.kill().await;
    two.kill().await;
}
