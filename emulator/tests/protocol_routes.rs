//! The key routes of the wire protocol over real sockets, against each storage engine the
//! emulator can serve from: health, reads, writes and deletes, ETags and 304s, conditional
//! writes, regions and store kinds, site isolation, key decoding, bad input and
//! `last-modified`.
#![allow(clippy::unwrap_used)]

mod common;
mod engines;

use blobjobs_store_api::Metadata;
use bytes::Bytes;
use common::{TOKEN, TestServer, assert_rejected};
use engines::{keys_of, servers, servers_with};
use serde_json::json;

#[tokio::test]
async fn health_needs_no_credentials_and_cannot_be_shadowed() {
    let server = TestServer::memory().await;
    let reply = server
        .call(
            "GET",
            "/.well-known/blobs-emulator/health",
            &[],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "ok\n");
    assert_rejected(
        &server
            .call("PUT", "/.well-known/blobs-emulator/health", &[], "x")
            .await,
        405,
    );
    assert_rejected(
        &server
            .call(
                "GET",
                "/.well-known/blobs-emulator/other",
                &[],
                Bytes::new(),
            )
            .await,
        404,
    );
    // A site path can never reach the reserved prefix: site IDs cannot start with '.'.
    assert_rejected(&server.put("/.well-known/site:x/k", "x").await, 400);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn set_get_head_delete_round_trip() {
    for (engine, server) in servers().await {
        let path = "/site-a/site:shop/cart/42";
        let meta = Metadata::from_pairs([("user", "ü")]).to_header();
        let put = server
            .authed("PUT", path, &[("x-amz-meta-user", &meta)], "hello")
            .await;
        assert_eq!(put.status, 200, "{engine}");
        assert!(put.body.is_empty());
        let etag = put.etag();
        assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

        let get = server.get(path).await;
        assert_eq!(get.status, 200, "{engine}");
        assert_eq!(get.body, "hello");
        assert_eq!(get.etag(), etag);
        assert_eq!(get.header("x-amz-meta-user"), Some(meta.as_str()));
        assert_eq!(get.header("netlify-blobs-metadata"), Some(meta.as_str()));
        assert_eq!(get.header("content-length"), Some("5"));

        let head = server.authed("HEAD", path, &[], Bytes::new()).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.etag(), etag);
        assert_eq!(head.header("x-amz-meta-user"), Some(meta.as_str()));
        assert_eq!(head.header("content-length"), Some("5"));

        // Without metadata the stored metadata is empty and reads say so.
        assert_eq!(server.put(path, "").await.status, 200);
        let get = server.get(path).await;
        assert_eq!(get.body, "");
        assert_eq!(get.header("x-amz-meta-user"), Some("b64;e30="));

        // The API step's header is accepted on a direct PUT too.
        let api_meta = Metadata::from_pairs([("w", 10)]).to_header();
        let put = server
            .authed("PUT", path, &[("netlify-blobs-metadata", &api_meta)], "x")
            .await;
        assert_eq!(put.status, 200);
        assert_eq!(
            server.get(path).await.header("x-amz-meta-user"),
            Some(api_meta.as_str())
        );

        assert_eq!(server.delete(path).await.status, 204);
        assert_eq!(server.get(path).await.status, 404);
        assert_eq!(
            server.authed("HEAD", path, &[], Bytes::new()).await.status,
            404
        );
        // Deleting a missing key is fine.
        assert_eq!(server.delete(path).await.status, 204);
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn etags_change_on_every_write_and_revalidate_with_304() {
    for (engine, server) in servers().await {
        let path = "/s/site:e/k";
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let etag = server.put(path, "same bytes").await.etag();
            assert!(seen.insert(etag), "{engine}: an etag repeated");
        }
        let etag = server.get(path).await.etag();
        let not_modified = server
            .authed("GET", path, &[("if-none-match", &etag)], Bytes::new())
            .await;
        assert_eq!(not_modified.status, 304, "{engine}");
        assert!(not_modified.body.is_empty());
        assert_eq!(not_modified.etag(), etag);
        assert!(not_modified.header("x-amz-meta-user").is_some());
        let listed = format!("\"other\", {etag}");
        let in_list = server
            .authed("GET", path, &[("if-none-match", &listed)], Bytes::new())
            .await;
        assert_eq!(in_list.status, 304);
        let head = server
            .authed("HEAD", path, &[("if-none-match", &etag)], Bytes::new())
            .await;
        assert_eq!(head.status, 304);
        let modified = server
            .authed("GET", path, &[("if-none-match", "\"stale\"")], Bytes::new())
            .await;
        assert_eq!(modified.status, 200);
        assert_eq!(modified.body, "same bytes");
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn conditional_writes() {
    for (engine, server) in servers().await {
        let path = "/s/site:c/k";
        let first = server
            .authed("PUT", path, &[("if-none-match", "*")], "one")
            .await;
        assert_eq!(first.status, 200, "{engine}");
        let etag = first.etag();
        let again = server
            .authed("PUT", path, &[("if-none-match", "*")], "two")
            .await;
        assert_rejected(&again, 412);
        assert_eq!(server.get(path).await.body, "one");

        let matched = server
            .authed("PUT", path, &[("if-match", &etag)], "three")
            .await;
        assert_eq!(matched.status, 200);
        assert_ne!(matched.etag(), etag);
        let stale = server
            .authed("PUT", path, &[("if-match", &etag)], "four")
            .await;
        assert_rejected(&stale, 412);
        assert_eq!(server.get(path).await.body, "three");
        let absent = server
            .authed("PUT", "/s/site:c/absent", &[("if-match", &etag)], "x")
            .await;
        assert_rejected(&absent, 412);
        assert_eq!(server.get("/s/site:c/absent").await.status, 404);

        let both = server
            .authed(
                "PUT",
                path,
                &[("if-match", &etag), ("if-none-match", "*")],
                "x",
            )
            .await;
        assert_rejected(&both, 400);
        let not_star = server
            .authed("PUT", path, &[("if-none-match", "\"abc\"")], "x")
            .await;
        assert_rejected(&not_star, 400);
        assert_eq!(server.get(path).await.body, "three");
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn concurrent_only_if_new_writes_have_exactly_one_winner() {
    for (engine, server) in servers().await {
        let server = std::sync::Arc::new(server);
        for round in 0..10 {
            let path = format!("/s/site:race/key-{round}");
            let mut tasks = Vec::new();
            for contender in 0..8 {
                let server = server.clone();
                let path = path.clone();
                tasks.push(tokio::spawn(async move {
                    let body = format!("contender {contender}");
                    let reply = server
                        .authed("PUT", &path, &[("if-none-match", "*")], body.clone())
                        .await;
                    (reply.status.as_u16(), body)
                }));
            }
            let mut winners = Vec::new();
            for task in tasks {
                let (status, body) = task.await.unwrap();
                match status {
                    200 => winners.push(body),
                    412 => {}
                    other => panic!("{engine}: unexpected status {other}"),
                }
            }
            assert_eq!(winners.len(), 1, "{engine} round {round}: {winners:?}");
            assert_eq!(server.get(&path).await.body, winners[0]);
        }
        std::sync::Arc::try_unwrap(server)
            .ok()
            .unwrap()
            .stop()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn region_prefix_and_store_kinds() {
    for (engine, server) in servers().await {
        let put = server.put("/region:us-east-2/s/deploy:abc123/k", "d").await;
        assert_eq!(put.status, 200, "{engine}");
        assert_eq!(server.get("/s/deploy:abc123/k").await.body, "d");
        assert_eq!(server.get("/region:dev/s/deploy:abc123/k").await.body, "d");
        for store in ["deploy:abc123:named", "site:a:b", "legacy-name", "site:%2a"] {
            let path = format!("/s/{store}/k");
            assert_eq!(server.put(&path, store).await.status, 200, "{store}");
            assert_eq!(server.get(&path).await.body, store);
        }
        // `%2f` passes the official client's store-name check but decodes to '/'.
        assert_rejected(&server.put("/s/site:%2f/k", "x").await, 400);
        // The same key in different stores is different data.
        assert_eq!(
            server.get("/s/deploy:abc123:named/k").await.body,
            "deploy:abc123:named"
        );
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn sites_are_isolated() {
    for (engine, server) in servers().await {
        server.put("/site-a/site:shared/k", "a's").await;
        assert_eq!(
            server.get("/site-b/site:shared/k").await.status,
            404,
            "{engine}"
        );
        assert_eq!(
            server.get("/site-b/site:shared").await.json(),
            json!({"blobs": [], "directories": []})
        );
        assert_eq!(
            server.get("/site-b?prefix=site%3A").await.json(),
            json!({"stores": []})
        );
        assert_eq!(
            server.delete("/site-b/site:shared").await.json()["blobs_deleted"],
            0
        );
        assert_eq!(server.delete("/site-b/site:shared/k").await.status, 204);
        assert_eq!(server.get("/site-a/site:shared/k").await.body, "a's");
        // A site ID that is a prefix of another sees nothing of it.
        assert_eq!(
            server.get("/site?prefix=").await.json(),
            json!({"stores": []})
        );
        assert_eq!(server.get("/site-/site:shared/k").await.status, 404);
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn keys_are_percent_decoded_once() {
    for (engine, server) in servers().await {
        assert_eq!(server.put("/s/site:k/a%20b/%C3%BC", "1").await.status, 200);
        assert_eq!(server.put("/s/site:k/literal%2541", "2").await.status, 200);
        assert_eq!(server.put("/s/site:k/100%", "3").await.status, 200);
        assert_eq!(server.put("/s/site:k/a%2Fb", "4").await.status, 200);
        let listing = server.get("/s/site:k").await.json();
        assert_eq!(
            keys_of(&listing),
            ["100%", "a b/ü", "a/b", "literal%41"],
            "{engine}"
        );
        assert_eq!(server.get("/s/site:k/a%20b/%C3%BC").await.body, "1");
        assert_eq!(server.get("/s/site:k/literal%2541").await.body, "2");
        assert_eq!(server.get("/s/site:k/a/b").await.body, "4");
        // A 600-byte key with one long segment works; 601 bytes does not.
        let long = "k".repeat(600);
        assert_eq!(
            server.put(&format!("/s/site:k/{long}"), "l").await.status,
            200
        );
        assert_eq!(server.get(&format!("/s/site:k/{long}")).await.body, "l");
        assert_rejected(&server.put(&format!("/s/site:k/{long}k"), "l").await, 400);
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx_and_writes_nothing() {
    for (engine, server) in servers_with(|c| c.max_blob_size(1024)).await {
        let bad_paths = [
            "/s/site:x/%2Fleading",
            "/s/site:x/%FF",
            "/s/site:x/",
            "/s/site:/k",
            "/s/deploy:bad-id/k",
            "/s/deploy:abcdefghijklmnopqrstuvwxy/k",
            "/s/deploy:ok:/k",
            "/s/site:a%2Fb/k",
            "/bad%20site/site:x/k",
            "/api/site:x/k",
            "/.hidden/site:x/k",
        ];
        let long_store = format!("/s/site:{}/k", "s".repeat(65));
        for path in bad_paths.iter().copied().chain([long_store.as_str()]) {
            assert_rejected(&server.put(path, "x").await, 400);
            assert_rejected(&server.get(path).await, 400);
        }

        let target = "/s/site:x/k";
        let oversized = Metadata::from_pairs([("k", "x".repeat(1600))]).to_header();
        let bad_metadata = [
            "plain",
            "b64;!!!",
            "b64;WzFd", // an array
            "b64;bm90IGpzb24=",
            oversized.as_str(),
        ];
        for meta in bad_metadata {
            let reply = server
                .authed("PUT", target, &[("x-amz-meta-user", meta)], "x")
                .await;
            assert_rejected(&reply, 400);
        }

        // Over the maximum, announced up front or discovered while streaming: 413.
        let big = vec![7u8; 2048];
        assert_rejected(&server.put(target, big.clone()).await, 413);
        let chunks = futures_util::stream::iter(
            big.chunks(256)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let streamed = server
            .send_body(
                "PUT",
                target,
                &[("authorization", "Bearer test-token")],
                blobjobs_emulator::body::streaming(Box::pin(chunks)),
            )
            .await;
        assert_rejected(&streamed, 413);
        assert_eq!(server.get(target).await.status, 404, "{engine}");
        assert_eq!(server.put(target, vec![1u8; 1024]).await.status, 200);

        assert_rejected(&server.authed("POST", target, &[], "x").await, 405);
        assert_rejected(&server.authed("PATCH", target, &[], "x").await, 405);
        let options = server.authed("OPTIONS", target, &[], Bytes::new()).await;
        assert_rejected(&options, 405);
        assert_eq!(options.header("allow"), Some("GET, HEAD, PUT, DELETE"));
        assert_rejected(&server.put("/s/site:x", "x").await, 405);
        let head = server.authed("HEAD", "/s/site:x", &[], Bytes::new()).await;
        assert_eq!(head.status, 405);
        assert_rejected(&server.put("/s", "x").await, 405);
        assert_rejected(&server.delete("/s").await, 405);
        assert_rejected(&server.get("/").await, 404);
        assert_rejected(&server.get("/api/v1/blobs").await, 404);
        assert_rejected(&server.get("/s/site:x?prefix=%FF").await, 400);
        for host in ["bad host", "user@evil.example"] {
            let reply = server
                .authed(
                    "GET",
                    "/api/v1/blobs/s/site:x/k",
                    &[
                        ("accept", "application/json;type=signed-url"),
                        ("host", host),
                    ],
                    Bytes::new(),
                )
                .await;
            assert_rejected(&reply, 400);
        }

        // Nothing above wrote anything but the one valid PUT.
        let listing = server.get("/s/site:x").await.json();
        assert_eq!(keys_of(&listing), ["k"]);
        assert_eq!(
            server.get("/s?prefix=").await.json()["stores"],
            json!(["site:x"])
        );
        server.stop().await.unwrap();
    }
}

/// `HttpStore`, the client the `get`/`set`/`list`/`delete` commands use, against the server.
#[tokio::test]
async fn the_wire_client_talks_to_the_server() {
    use blobjobs_backends::http::{HttpConfig, HttpStore, Token};
    use blobjobs_store_api::{BlobStore as _, ErrorKind, ListOptions, SetOptions};

    let server = TestServer::memory().await;
    let open = |token: &str| {
        let config = HttpConfig::edge(server.base.clone(), "site-1", Token::new(token), "cli");
        HttpStore::new(config.unwrap()).unwrap()
    };
    let client = open(TOKEN);
    let meta = Metadata::from_pairs([("a", 1)]);
    let etag = client
        .set_stream(
            "dir/a b",
            blobjobs_store_api::once_stream(Bytes::from_static(b"v")),
            None,
            SetOptions::new().metadata(meta.clone()),
        )
        .await
        .unwrap()
        .etag()
        .cloned()
        .unwrap();
    let (info, _) = client.get_stream("dir/a b").await.unwrap().unwrap();
    assert_eq!(info.etag, etag);
    assert_eq!(info.metadata, meta);
    let listing = client
        .list(ListOptions::new().prefix("dir/"))
        .await
        .unwrap();
    assert_eq!(listing.blobs.len(), 1);
    assert_eq!(listing.blobs[0].key, "dir/a b");
    client.delete("dir/a b").await.unwrap();
    assert!(client.get_stream("dir/a b").await.unwrap().is_none());
    let err = open("nope").get("x").await.err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    server.stop().await.unwrap();
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), parsed strictly.
fn parse_imf_fixdate(text: &str) -> Option<blobjobs_store_api::Timestamp> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    if text.len() != 29 {
        return None;
    }
    let parts: Vec<&str> = text.split(' ').collect();
    let [weekday, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let weekday = weekday.strip_suffix(',')?;
    if !DAYS.contains(&weekday) || day.len() != 2 || year.len() != 4 || time.len() != 8 {
        return None;
    }
    let month = MONTHS.iter().position(|m| m == month)? + 1;
    blobjobs_store_api::Timestamp::parse_rfc3339(&format!("{year}-{month:02}-{day}T{time}Z")).ok()
}

#[tokio::test]
async fn reads_carry_last_modified_as_an_http_date() {
    for (engine, server) in servers().await {
        let path = "/site-lm/site:dates/k";
        assert_eq!(server.put(path, "v").await.status, 200, "{engine}");
        let listing = server.get("/site-lm/site:dates").await.json();
        let listed = blobjobs_store_api::Timestamp::parse_rfc3339(
            listing["blobs"][0]["last_modified"].as_str().unwrap(),
        )
        .unwrap();
        let get = server.get(path).await;
        let head = server.authed("HEAD", path, &[], Bytes::new()).await;
        let etag = get.etag();
        let not_modified = server
            .authed("GET", path, &[("if-none-match", &etag)], Bytes::new())
            .await;
        assert_eq!(not_modified.status, 304);
        for (what, reply) in [("GET", &get), ("HEAD", &head), ("304", &not_modified)] {
            let value = reply
                .header("last-modified")
                .unwrap_or_else(|| panic!("{engine} {what}: no last-modified"));
            let parsed = parse_imf_fixdate(value)
                .unwrap_or_else(|| panic!("{engine} {what}: {value:?} is not an IMF-fixdate"));
            // The header has whole seconds; the listing has milliseconds.
            let (header_ms, listed_ms) = (parsed.as_millis(), listed.as_millis());
            assert!(
                header_ms <= listed_ms && listed_ms - header_ms < 1000,
                "{engine} {what}: {value} vs {listed:?}"
            );
        }
        // The wire client reads the same time back (to the second) on get and get-metadata.
        let config = blobjobs_backends::http::HttpConfig::edge(
            server.base.clone(),
            "site-lm",
            blobjobs_backends::http::Token::new(TOKEN),
            "dates",
        )
        .unwrap();
        let store = blobjobs_backends::http::HttpStore::new(config).unwrap();
        use blobjobs_store_api::BlobStore as _;
        let blob = store.get("k").await.unwrap().unwrap();
        let info = store.get_metadata("k").await.unwrap().unwrap();
        for read in [blob.info.last_modified, info.last_modified] {
            assert!(
                read.as_millis() <= listed.as_millis()
                    && listed.as_millis() - read.as_millis() < 1000,
                "{engine}: {read:?} vs {listed:?}"
            );
        }
        server.stop().await.unwrap();
    }
}
