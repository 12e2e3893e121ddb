//! Listings over real sockets, against each storage engine: prefixes and directories, pages
//! with opaque cursors, the stores of a site, and deleting a store.
#![allow(clippy::unwrap_used)]

mod common;
mod engines;

use common::assert_rejected;
use engines::{keys_of, servers, servers_with};
use serde_json::json;

#[tokio::test]
async fn listing_prefix_directories_and_flat_keys() {
    for (engine, server) in servers().await {
        for key in ["d", "dir/a", "dir/sub/c", "dx", "p", "p/x", "top"] {
            assert_eq!(
                server.put(&format!("/s/site:l/{key}"), "1").await.status,
                200
            );
        }
        let all = server.get("/s/site:l").await;
        assert_eq!(all.status, 200, "{engine}");
        assert_eq!(all.header("content-type"), Some("application/json"));
        let all = all.json();
        assert_eq!(
            keys_of(&all),
            ["d", "dir/a", "dir/sub/c", "dx", "p", "p/x", "top"]
        );
        assert!(all.get("next_cursor").is_none());
        let blob = &all["blobs"][0];
        assert!(blob["etag"].as_str().unwrap().starts_with('"'));
        assert_eq!(blob["size"], 1);
        assert!(blob["last_modified"].as_str().unwrap().ends_with('Z'));

        let prefixed = server.get("/s/site:l?prefix=dir%2F").await.json();
        assert_eq!(keys_of(&prefixed), ["dir/a", "dir/sub/c"]);
        let dirs = server.get("/s/site:l?directories=true").await.json();
        assert_eq!(keys_of(&dirs), ["d", "dx", "p", "top"]);
        assert_eq!(dirs["directories"], json!(["dir", "p"]));
        let nested = server
            .get("/s/site:l?prefix=dir%2F&directories=true")
            .await
            .json();
        assert_eq!(keys_of(&nested), ["dir/a"]);
        assert_eq!(nested["directories"], json!(["dir/sub"]));

        // Deleting `p` leaves `p/x`.
        assert_eq!(server.delete("/s/site:l/p").await.status, 204);
        assert_eq!(server.get("/s/site:l/p/x").await.status, 200);

        let empty = server.get("/s/site:never-written").await;
        assert_eq!(empty.status, 200);
        assert_eq!(empty.json(), json!({"blobs": [], "directories": []}));
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn listing_pages_with_opaque_cursors() {
    for (engine, server) in servers_with(|c| c.list_page_size(3)).await {
        let keys: Vec<String> = (0..10).map(|i| format!("k{i:02}")).collect();
        for key in &keys {
            server.put(&format!("/s/site:pg/{key}"), "v").await;
        }
        let mut seen = Vec::new();
        let mut pages = 0;
        let mut url = "/s/site:pg".to_owned();
        // Bounded, so that a cursor that never ends fails instead of hanging.
        while pages < 100 {
            let page = server.get(&url).await;
            assert_eq!(page.status, 200, "{engine}");
            let page = page.json();
            pages += 1;
            assert!(keys_of(&page).len() <= 3);
            seen.extend(keys_of(&page));
            match page.get("next_cursor").and_then(|c| c.as_str()) {
                Some(cursor) => {
                    url = format!(
                        "/s/site:pg?cursor={}",
                        blobjobs_protocol::path::encode_query_value(cursor)
                    )
                }
                None => break,
            }
        }
        assert_eq!(seen, keys);
        assert_eq!(pages, 4);
        assert_rejected(&server.get("/s/site:pg?cursor=%2A%2A%2A").await, 400);
        assert_rejected(&server.get("/s/site:pg?directories=maybe").await, 400);
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn listing_stores() {
    for (engine, server) in servers_with(|c| c.list_page_size(2)).await {
        let empty = server.get("/empty-site?prefix=site%3A").await;
        assert_eq!(empty.status, 200, "{engine}");
        assert_eq!(empty.json(), json!({"stores": []}));

        for store in ["site:a", "site:b", "site:c", "deploy:d1", "legacy"] {
            server.put(&format!("/s/{store}/k"), "v").await;
        }
        let mut stores = Vec::new();
        let mut url = "/s?prefix=site%3A".to_owned();
        let mut pages = 0;
        while pages < 100 {
            let page = server.get(&url).await.json();
            pages += 1;
            stores.extend(
                page["stores"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_owned()),
            );
            match page.get("next_cursor").and_then(|c| c.as_str()) {
                Some(c) => {
                    url = format!(
                        "/s?prefix=site%3A&cursor={}",
                        blobjobs_protocol::path::encode_query_value(c)
                    )
                }
                None => break,
            }
        }
        assert_eq!(stores, ["site:a", "site:b", "site:c"]);
        assert_eq!(pages, 2);
        let everything = server.get("/api/v1/blobs/s").await.json();
        assert_eq!(everything["stores"], json!(["deploy:d1", "legacy"]));
        assert!(everything.get("next_cursor").is_some());
        assert_rejected(&server.get("/s?cursor=%21").await, 400);
        server.stop().await.unwrap();
    }
}

#[tokio::test]
async fn deleting_a_store_removes_exactly_its_keys() {
    for (engine, server) in servers().await {
        for key in ["a", "b/c", "d"] {
            server.put(&format!("/s/site:gone/{key}"), "v").await;
        }
        server.put("/s/site:kept/a", "v").await;
        server.put("/other/site:gone/a", "v").await;
        let deleted = server.delete("/s/site:gone").await;
        assert_eq!(deleted.status, 200, "{engine}");
        assert_eq!(
            deleted.json(),
            json!({"blobs_deleted": 3, "has_more": false})
        );
        assert_eq!(keys_of(&server.get("/s/site:gone").await.json()).len(), 0);
        assert_eq!(server.get("/s/site:kept/a").await.status, 200);
        assert_eq!(server.get("/other/site:gone/a").await.status, 200);
        let again = server.delete("/s/site:gone").await.json();
        assert_eq!(again["blobs_deleted"], 0);
        server.stop().await.unwrap();
    }
}
