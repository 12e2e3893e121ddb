//! Credentials over real sockets: the bearer token (401 against 403), and API mode's signed
//! URLs, which are bound to a method, a path and an expiry and point back at the host the
//! client used.
#![allow(clippy::unwrap_used)]

mod common;
mod engines;

use std::sync::Arc;
use std::time::Duration;

use blobjobs_store_api::{ManualClock, Metadata, Timestamp};
use bytes::Bytes;
use common::{TOKEN, TestServer, assert_rejected};
use engines::{keys_of, servers};
use serde_json::json;

#[tokio::test]
async fn credentials_missing_wrong_and_right() {
    let server = TestServer::memory().await;
    let path = "/site-1/site:s/k";
    assert_rejected(&server.call("GET", path, &[], Bytes::new()).await, 401);
    assert_rejected(&server.call("PUT", path, &[], "x").await, 401);
    for bad in [
        "Bearer wrong",
        "Bearer",
        TOKEN,
        "Basic dGVzdA==",
        "Bearer test-token2",
    ] {
        let reply = server
            .call("GET", path, &[("authorization", bad)], Bytes::new())
            .await;
        assert_rejected(&reply, 403);
    }
    let put = server
        .call("PUT", path, &[("authorization", "bearer test-token")], "v")
        .await;
    assert_eq!(put.status, 200);
    // One token covers every site.
    assert_eq!(server.put("/other-site/site:s/k", "w").await.status, 200);
    assert_eq!(server.get(path).await.body, "v");
    // A rejected write wrote nothing.
    assert_eq!(
        server
            .call(
                "PUT",
                "/site-1/site:s/new",
                &[("authorization", "Bearer no")],
                "x"
            )
            .await
            .status,
        403
    );
    assert_eq!(server.get("/site-1/site:s/new").await.status, 404);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn api_mode_signed_urls_for_get_and_put() {
    for (engine, server) in servers().await {
        let accept = ("accept", "application/json;type=signed-url");
        let meta = Metadata::from_pairs([("w", 10)]).to_header();
        let step1 = server
            .authed(
                "PUT",
                "/api/v1/blobs/site-a/site:shop/img%20one?region=auto",
                &[accept, ("netlify-blobs-metadata", &meta)],
                Bytes::new(),
            )
            .await;
        assert_eq!(step1.status, 200, "{engine}");
        let url = step1.json()["url"].as_str().unwrap().to_owned();
        let expected = format!("{}/site-a/site:shop/img%20one?expires=", server.base);
        assert!(url.starts_with(&expected), "{url}");
        // Step 1 wrote nothing.
        assert_eq!(server.get("/site-a/site:shop/img%20one").await.status, 404);

        let put = server
            .call("PUT", &url, &[("x-amz-meta-user", &meta)], "png")
            .await;
        assert_eq!(put.status, 200);
        let etag = put.etag();

        let step1 = server
            .authed(
                "GET",
                "/api/v1/blobs/site-a/site:shop/img%20one",
                &[accept],
                Bytes::new(),
            )
            .await;
        let get_url = step1.json()["url"].as_str().unwrap().to_owned();
        let get = server.call("GET", &get_url, &[], Bytes::new()).await;
        assert_eq!(get.status, 200);
        assert_eq!(get.body, "png");
        assert_eq!(get.etag(), etag);
        assert_eq!(get.header("x-amz-meta-user"), Some(meta.as_str()));
        let revalidate = server
            .call("GET", &get_url, &[("if-none-match", &etag)], Bytes::new())
            .await;
        assert_eq!(revalidate.status, 304);

        // A signed URL is bound to its method and its path.
        assert_rejected(&server.call("PUT", &get_url, &[], "evil").await, 403);
        assert_rejected(
            &server.call("DELETE", &get_url, &[], Bytes::new()).await,
            403,
        );
        let other_path = get_url.replace("img%20one", "img%20two");
        assert_rejected(
            &server.call("GET", &other_path, &[], Bytes::new()).await,
            403,
        );
        let other_site = get_url.replace("/site-a/", "/site-b/");
        assert_rejected(
            &server.call("GET", &other_site, &[], Bytes::new()).await,
            403,
        );
        // Changing the expiry breaks the signature.
        let (base, query) = get_url.split_once("?expires=").unwrap();
        let (expires, sig) = query.split_once('&').unwrap();
        let later: u64 = expires.parse::<u64>().unwrap() + 1000;
        let extended = format!("{base}?expires={later}&{sig}");
        assert_rejected(&server.call("GET", &extended, &[], Bytes::new()).await, 403);
        assert_eq!(server.get("/site-a/site:shop/img%20one").await.body, "png");

        // Without the accept header, an API GET serves the blob; HEAD and DELETE are direct.
        let direct = server.get("/api/v1/blobs/site-a/site:shop/img%20one").await;
        assert_eq!(direct.body, "png");
        let head = server
            .authed(
                "HEAD",
                "/api/v1/blobs/site-a/site:shop/img%20one",
                &[],
                Bytes::new(),
            )
            .await;
        assert_eq!(head.etag(), etag);
        let list = server
            .get("/api/v1/blobs/site-a/site:shop?prefix=img&directories=true&region=auto")
            .await
            .json();
        assert_eq!(keys_of(&list), ["img one"]);
        let stores = server
            .get("/api/v1/blobs/site-a?prefix=site%3A")
            .await
            .json();
        assert_eq!(stores["stores"], json!(["site:shop"]));
        let del = server
            .delete("/api/v1/blobs/site-a/site:shop/img%20one")
            .await;
        assert_eq!(del.status, 204);
        assert_eq!(server.get("/site-a/site:shop/img%20one").await.status, 404);

        // Step 1 checks credentials and metadata like any other request.
        let anon = server
            .call(
                "GET",
                "/api/v1/blobs/site-a/site:shop/x",
                &[accept],
                Bytes::new(),
            )
            .await;
        assert_rejected(&anon, 401);
        let bad_meta = server
            .authed(
                "PUT",
                "/api/v1/blobs/site-a/site:shop/x",
                &[accept, ("netlify-blobs-metadata", "b64;!!")],
                Bytes::new(),
            )
            .await;
        assert_rejected(&bad_meta, 400);
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn signed_urls_use_the_host_header_and_expire() {
    // The server's wall clock is a manual one, so expiry is tested without waiting.
    let clock = ManualClock::new(Timestamp::from_millis(1_700_000_000_250));
    let config = common::memory_config()
        .signed_url_ttl(Duration::from_secs(2))
        .clock(Arc::new(clock.clone()));
    let server = TestServer::start(config).await;
    let step1 = server
        .authed(
            "GET",
            "/api/v1/blobs/s/site:x/k",
            &[
                ("accept", "application/json;type=signed-url"),
                ("host", "localhost:9"),
            ],
            Bytes::new(),
        )
        .await;
    let url = step1.json()["url"].as_str().unwrap().to_owned();
    assert_eq!(
        url.split_once('&').unwrap().0,
        "http://localhost:9/s/site:x/k?expires=1700000002"
    );
    let url = url.replace("http://localhost:9", &server.base);
    server.put("/s/site:x/k", "v").await;
    assert_eq!(
        server.call("GET", &url, &[], Bytes::new()).await.status,
        200
    );
    // Expiry counts whole seconds: with a TTL of two, the URL works for the two seconds
    // after signing (through the second it names) and is refused from the third on.
    clock.advance(Duration::from_millis(2749));
    assert_eq!(
        server.call("GET", &url, &[], Bytes::new()).await.status,
        200
    );
    clock.advance(Duration::from_millis(1));
    assert_rejected(&server.call("GET", &url, &[], Bytes::new()).await, 403);
    server.stop().await.unwrap();
}
