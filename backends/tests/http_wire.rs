//! What `HttpStore` puts on the wire, checked against a recording fake server: paths,
//! headers, the two API-mode steps, regions, key encoding, listings, streams, typed errors
//! and the token's redaction.
#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::time::Duration;

use blobjobs_backends::http::{
    BlobsContext, ClientOptions, Consistency, HttpStore, RetryPolicy, StatusError, StoreKind, Token,
};
use blobjobs_store_api::{
    BlobJobStore, BlobStore, ErrorKind, JobStore, ListOptions, Metadata, NewJob, SetOptions,
    SetOutcome,
};
use blobjobs_test_support::fake_server::{
    self as http_support, FakeServer, Fault, SITE, TOKEN, quick_retry,
};
use blobjobs_test_support::{awkward_keys, collect, stream_of};
use bytes::Bytes;
use http::Method;

#[tokio::test]
async fn edge_requests_look_like_the_official_clients() {
    let server = FakeServer::start().await;
    let store = server.edge_store("shop", quick_retry());
    let user = Metadata::from_pairs([("user", "ü")]);
    let etag = store
        .set(
            "cart/42",
            Bytes::from("hello"),
            SetOptions::new().metadata(user.clone()),
        )
        .await
        .unwrap()
        .etag()
        .cloned()
        .unwrap();
    let blob = store.get("cart/42").await.unwrap().unwrap();
    assert_eq!(blob.value, "hello");
    assert_eq!(blob.info.metadata, user);
    assert_eq!(blob.info.etag, etag);
    let info = store.get_metadata("cart/42").await.unwrap().unwrap();
    assert_eq!((info.etag, info.size), (etag.clone(), 5));
    assert!(store.get("cart/404").await.unwrap().is_none());
    let failed = store
        .set("cart/42", Bytes::from("x"), SetOptions::new().if_new())
        .await
        .unwrap();
    assert_eq!(failed, SetOutcome::ConditionFailed);
    store
        .set(
            "cart/42",
            Bytes::from("hi"),
            SetOptions::new().if_match(etag.clone()),
        )
        .await
        .unwrap();
    store
        .list(ListOptions::new().prefix("cart/").directories(true))
        .await
        .unwrap();
    store.delete("cart/42").await.unwrap();

    let seen = server.take_seen();
    let lines: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    assert_eq!(
        lines,
        [
            "PUT /site-1/site:shop/cart/42",
            "GET /site-1/site:shop/cart/42",
            "HEAD /site-1/site:shop/cart/42",
            "GET /site-1/site:shop/cart/404",
            "PUT /site-1/site:shop/cart/42",
            "PUT /site-1/site:shop/cart/42",
            "GET /site-1/site:shop?prefix=cart%2F&directories=true",
            "DELETE /site-1/site:shop/cart/42",
        ]
    );
    for s in &seen {
        assert_eq!(
            s.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    let put = &seen[0];
    assert_eq!(
        put.header("x-amz-meta-user"),
        Some("b64;eyJ1c2VyIjoiw7wifQ==")
    );
    assert_eq!(
        put.header("cache-control"),
        Some("max-age=0, stale-while-revalidate=60")
    );
    assert_eq!(put.header("if-none-match"), None);
    assert_eq!(put.header("if-match"), None);
    assert_eq!(put.body, "hello");
    assert_eq!(seen[4].header("if-none-match"), Some("*"));
    assert_eq!(seen[4].header("x-amz-meta-user"), None);
    assert_eq!(seen[5].header("if-match"), Some(etag.as_str()));
}

#[tokio::test]
async fn api_mode_reads_and_writes_values_through_signed_urls() {
    let server = FakeServer::start().await;
    let store = server.api_store("shop", quick_retry());
    let meta = Metadata::from_pairs([("w", 10)]);
    store
        .set(
            "img",
            Bytes::from("abc"),
            SetOptions::new().metadata(meta.clone()),
        )
        .await
        .unwrap();
    let blob = store.get("img").await.unwrap().unwrap();
    assert_eq!(
        (blob.value, blob.info.metadata),
        (Bytes::from("abc"), meta.clone())
    );
    assert!(store.get("nope").await.unwrap().is_none());
    assert!(store.get_metadata("img").await.unwrap().is_some());
    store.delete("img").await.unwrap();
    store.list(ListOptions::new().prefix("dir/")).await.unwrap();

    let seen = server.take_seen();
    let lines: Vec<String> = seen
        .iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    let signed = format!("?signature={}", http_support::SIGNATURE);
    assert_eq!(
        lines,
        [
            "PUT /api/v1/blobs/site-1/site:shop/img".to_owned(),
            format!("PUT /site-1/site:shop/img{signed}"),
            "GET /api/v1/blobs/site-1/site:shop/img".to_owned(),
            format!("GET /site-1/site:shop/img{signed}"),
            "GET /api/v1/blobs/site-1/site:shop/nope".to_owned(),
            format!("GET /site-1/site:shop/nope{signed}"),
            "HEAD /api/v1/blobs/site-1/site:shop/img".to_owned(),
            "DELETE /api/v1/blobs/site-1/site:shop/img".to_owned(),
            "GET /api/v1/blobs/site-1/site:shop?prefix=dir%2F".to_owned(),
        ]
    );
    let (step1, step2) = (&seen[0], &seen[1]);
    assert_eq!(
        step1.header("accept"),
        Some("application/json;type=signed-url")
    );
    assert!(step1.header("authorization").is_some());
    assert_eq!(
        step1.header("netlify-blobs-metadata"),
        Some(meta.to_header().as_str())
    );
    assert!(step1.body.is_empty());
    assert_eq!(step2.header("authorization"), None);
    assert_eq!(
        step2.header("x-amz-meta-user"),
        Some(meta.to_header().as_str())
    );
    assert_eq!(
        step2.header("cache-control"),
        Some("max-age=0, stale-while-revalidate=60")
    );
    assert_eq!(step2.body, "abc");
    for one_step in &seen[6..] {
        assert!(one_step.header("authorization").is_some());
        assert_eq!(one_step.header("accept"), None);
    }
}

#[tokio::test]
async fn deploy_stores_carry_their_region() {
    let server = FakeServer::start().await;
    let ctx = BlobsContext {
        site_id: Some(SITE.into()),
        token: Some(Token::new(TOKEN)),
        edge_url: Some(server.url()),
        uncached_edge_url: Some(server.url()),
        deploy_id: Some("abc123".into()),
        primary_region: Some("dev".into()),
        ..BlobsContext::default()
    };
    let deploy = StoreKind::Deploy {
        deploy_id: None,
        name: Some("named".into()),
    };
    let options = ClientOptions {
        retry: quick_retry(),
        ..ClientOptions::default()
    };
    let edge = HttpStore::open(&options, Some(&ctx), &deploy).unwrap();
    edge.set("k", Bytes::from("1"), SetOptions::new())
        .await
        .unwrap();
    let api_ctx = BlobsContext {
        edge_url: None,
        uncached_edge_url: None,
        api_url: Some(server.url()),
        ..ctx.clone()
    };
    let api = HttpStore::open(&options, Some(&api_ctx), &deploy).unwrap();
    assert_eq!(api.get("k").await.unwrap().unwrap().value, "1");
    let explicit = ClientOptions {
        region: Some("eu-central-1".into()),
        ..options.clone()
    };
    let site = HttpStore::open(&explicit, Some(&ctx), &StoreKind::Site("s".into())).unwrap();
    site.get("k").await.unwrap();

    let targets: Vec<String> = server.take_seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets[0], "/region:dev/site-1/deploy:abc123:named/k");
    assert_eq!(
        targets[1],
        "/api/v1/blobs/site-1/deploy:abc123:named/k?region=auto"
    );
    assert_eq!(targets[3], "/region:eu-central-1/site-1/site:s/k");
}

#[tokio::test]
async fn strong_consistency_uses_the_uncached_edge_url() {
    let server = FakeServer::start().await;
    let dead = "http://127.0.0.1:1".to_owned();
    let mut options = server.edge_options(RetryPolicy::none());
    options.edge_url = Some(dead);
    options.consistency = Consistency::Strong;
    let strong = HttpStore::open(&options, None, &StoreKind::Site("s".into())).unwrap();
    strong
        .set("k", Bytes::from("v"), SetOptions::new())
        .await
        .unwrap();
    options.consistency = Consistency::Eventual;
    let eventual = HttpStore::open(&options, None, &StoreKind::Site("s".into())).unwrap();
    let err = eventual.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    options.uncached_edge_url = None;
    options.consistency = Consistency::Strong;
    let err = HttpStore::open(&options, None, &StoreKind::Site("s".into())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// The awkward keys, many of which the official client would mangle on the wire, reach the
/// server exactly.
#[tokio::test]
async fn every_valid_key_round_trips_exactly() {
    for api in [false, true] {
        let server = FakeServer::start().await;
        let store = server.mode_store(api, "keys", quick_retry());
        for (i, key) in awkward_keys().iter().enumerate() {
            store
                .set(key, Bytes::from(i.to_string()), SetOptions::new())
                .await
                .unwrap_or_else(|e| panic!("{key:?}: {e}"));
        }
        for (i, key) in awkward_keys().iter().enumerate() {
            let blob = store
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{key:?}"));
            assert_eq!(blob.value, i.to_string(), "{key:?} aliased another key");
            assert!(store.get_metadata(key).await.unwrap().is_some(), "{key:?}");
        }
        let mut expected = awkward_keys();
        expected.sort();
        let listed: Vec<String> = server
            .store("site:keys")
            .list(ListOptions::new())
            .await
            .unwrap()
            .blobs
            .into_iter()
            .map(|e| e.key)
            .collect();
        assert_eq!(listed, expected, "server-side keys (api mode: {api})");
        let page = store.list(ListOptions::new()).await.unwrap();
        let keys: Vec<String> = page.blobs.into_iter().map(|e| e.key).collect();
        assert_eq!(keys, expected);
        for key in awkward_keys() {
            store.delete(&key).await.unwrap();
        }
        assert!(
            store
                .list(ListOptions::new())
                .await
                .unwrap()
                .blobs
                .is_empty()
        );
    }
}

#[tokio::test]
async fn invalid_input_is_refused_before_any_request() {
    let server = FakeServer::start().await;
    let store = server.edge_store("s", quick_retry());
    for key in ["", "/a", "%2Fa", &"k".repeat(601)] {
        assert_eq!(
            store.get(key).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
        let err = store
            .set(key, Bytes::new(), SetOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert_eq!(
            store.delete(key).await.unwrap_err().kind(),
            ErrorKind::InvalidInput
        );
    }
    let big = Metadata::from_pairs([("k", "x".repeat(2000))]);
    let err = store
        .set("k", Bytes::new(), SetOptions::new().metadata(big))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    for size in [0, 10_001] {
        let err = store
            .list(ListOptions::new().page_size(size))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }
    let err = store
        .list(ListOptions::new().cursor(Some("not a cursor".into())))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(server.take_seen().is_empty());
}

#[tokio::test]
async fn client_pages_of_any_size_over_server_pages() {
    let server = FakeServer::with_page_size(3).await;
    let store = server.edge_store("list", quick_retry());
    let mut keys = vec!["top".to_owned(), "cart0".to_owned()];
    for i in 0..7 {
        keys.push(format!("cart/{i}"));
        keys.push(format!("cart/x/{i}"));
    }
    for key in &keys {
        store
            .set(key, Bytes::from("v"), SetOptions::new())
            .await
            .unwrap();
    }
    keys.sort();
    for page_size in [None, Some(1), Some(2), Some(3), Some(5), Some(100)] {
        for (prefix, dirs) in [("", false), ("cart/", false), ("", true), ("cart/", true)] {
            let mut options = ListOptions::new().prefix(prefix).directories(dirs);
            options.page_size = page_size;
            let (mut blobs, mut directories, mut cursor) = (Vec::new(), Vec::new(), None);
            for _ in 0..100 {
                let page = store.list(options.clone().cursor(cursor)).await.unwrap();
                if let Some(n) = page_size {
                    assert!(page.blobs.len() + page.directories.len() <= n);
                }
                blobs.extend(page.blobs.into_iter().map(|e| e.key));
                directories.extend(page.directories);
                cursor = page.next_cursor;
                if cursor.is_none() {
                    break;
                }
            }
            assert!(cursor.is_none(), "listing never ended");
            let reference = blobjobs_store_api::list::paginate(
                keys.iter().map(|k| blobjobs_store_api::ListEntry {
                    key: k.clone(),
                    etag: blobjobs_store_api::Etag::new(""),
                    size: 1,
                    last_modified: blobjobs_store_api::Timestamp::from_millis(0),
                }),
                &ListOptions::new()
                    .prefix(prefix)
                    .directories(dirs)
                    .page_size(10_000),
            )
            .unwrap();
            let want: Vec<String> = reference.blobs.into_iter().map(|e| e.key).collect();
            assert_eq!(blobs, want, "{page_size:?} {prefix:?} {dirs}");
            assert_eq!(
                directories, reference.directories,
                "{page_size:?} {prefix:?} {dirs}"
            );
        }
    }
}

#[tokio::test]
async fn streams_round_trip_in_both_directions() {
    let server = FakeServer::start().await;
    let store = server.edge_store("streams", quick_retry());
    // Larger than the client's whole-value threshold, so it is really streamed.
    let chunk = Bytes::from(vec![7u8; 256 * 1024]);
    let chunks = vec![chunk.clone(); 6];
    let outcome = store
        .set_stream("big", stream_of(chunks), Some(2 << 20), SetOptions::new())
        .await
        .unwrap();
    assert!(outcome.is_written());
    let (info, stream) = store.get_stream("big").await.unwrap().unwrap();
    assert_eq!(info.size, 6 * 256 * 1024);
    assert_eq!(collect(stream).await.unwrap(), vec![7u8; 6 * 256 * 1024]);
    assert!(store.get_stream("missing").await.unwrap().is_none());

    let small = store
        .set_stream(
            "small",
            stream_of(vec![Bytes::from("ab"), Bytes::from("c")]),
            Some(3),
            SetOptions::new(),
        )
        .await
        .unwrap();
    assert!(small.is_written());
    assert_eq!(store.get("small").await.unwrap().unwrap().value, "abc");

    for (key, n, max) in [
        ("over-small", 2, 300 * 1024),
        ("over-big", 12, 5 * 256 * 1024),
    ] {
        let err = store
            .set_stream(
                key,
                stream_of(vec![chunk.clone(); n]),
                Some(max),
                SetOptions::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge, "{key}");
        // Nothing was written, not even part of the value.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            server
                .store("site:streams")
                .get(key)
                .await
                .unwrap()
                .is_none(),
            "{key}"
        );
    }
}

#[tokio::test]
async fn statuses_become_typed_errors() {
    let server = FakeServer::start().await;
    let store = server.edge_store("s", RetryPolicy::none());
    for (status, kind) in [
        (400, ErrorKind::InvalidInput),
        (401, ErrorKind::Unauthorized),
        (403, ErrorKind::Unauthorized),
        (413, ErrorKind::TooLarge),
        (418, ErrorKind::Protocol),
        (500, ErrorKind::Unavailable),
    ] {
        server.fault(Method::PUT, Fault::Status(status, vec![]));
        let err = store
            .set("k", Bytes::from("v"), SetOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), kind, "{status}");
        let mut source = std::error::Error::source(&err);
        let mut found = None;
        while let Some(s) = source {
            if let Some(status_error) = s.downcast_ref::<StatusError>() {
                found = Some(status_error.clone());
            }
            source = s.source();
        }
        let found = found.unwrap_or_else(|| panic!("{status}: no StatusError in {err:?}"));
        assert_eq!(found.status, status);
        assert_eq!(found.body_start, "injected failure");
    }
    server.fault(Method::GET, Fault::Status(404, vec![]));
    assert!(store.get("k").await.unwrap().is_none());
    server.fault(Method::DELETE, Fault::Status(404, vec![]));
    store.delete("k").await.unwrap();
    server.fault(Method::GET, Fault::Status(404, vec![]));
    assert!(
        store
            .list(ListOptions::new())
            .await
            .unwrap()
            .blobs
            .is_empty()
    );
}

#[tokio::test]
async fn the_token_never_leaks() {
    let server = FakeServer::start().await;
    let mut options = server.edge_options(RetryPolicy::none());
    options.token = Some(Token::new("wrong-token-xyz"));
    let store = HttpStore::open(&options, None, &StoreKind::Site("s".into())).unwrap();
    let err = store.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let good = server.edge_store("s", quick_retry());
    good.set("k", Bytes::from("v"), SetOptions::new())
        .await
        .unwrap();
    let api = server.api_store("s", quick_retry());
    api.get("k").await.unwrap();
    let texts = [
        format!("{err}"),
        format!("{err:?}"),
        format!("{store:?}"),
        format!("{good:?}"),
        format!("{api:?}"),
        format!("{:?}", good.config()),
    ];
    for text in texts {
        assert!(
            !text.contains("wrong-token-xyz") && !text.contains(TOKEN),
            "{text}"
        );
    }
    for seen in server.take_seen() {
        assert!(!seen.target.contains(TOKEN), "{}", seen.target);
    }
    // A URL with credentials in it is refused.
    let mut options = server.edge_options(RetryPolicy::none());
    options.edge_url = Some(format!("http://user:{TOKEN}@{}", &server.url()[7..]));
    options.uncached_edge_url = options.edge_url.clone();
    let err = HttpStore::open(&options, None, &StoreKind::Site("s".into())).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(!err.to_string().contains(TOKEN));
}

#[tokio::test]
async fn jobs_work_over_http() {
    let server = FakeServer::start().await;
    let jobs = BlobJobStore::new(std::sync::Arc::new(
        server.edge_store("jobs", quick_retry()),
    ));
    let job = jobs
        .create(NewJob::new("extract", serde_json::json!({"pdf": "a.pdf"})))
        .await
        .unwrap();
    // A second instance (a new client) sees the job and drives it.
    let other = BlobJobStore::new(std::sync::Arc::new(
        server.edge_store("jobs", quick_retry()),
    ));
    other
        .claim(&job.id, "worker", Duration::from_secs(60))
        .await
        .unwrap();
    other.progress(&job.id, "worker", 50, None).await.unwrap();
    other
        .succeed(&job.id, "worker", serde_json::json!({"ok": true}))
        .await
        .unwrap();
    let done = jobs.get(&job.id).await.unwrap().unwrap();
    assert_eq!(done.status, blobjobs_store_api::JobStatus::Succeeded);
    assert_eq!(done.result, Some(serde_json::json!({"ok": true})));
}
