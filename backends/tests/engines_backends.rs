//! What the conformance suite cannot see of the two engine backends: how the S3 backend
//! keeps ETags unique on an engine whose ETag is a content hash, streams large values, and
//! how both behave when the engine is down at start, restarts mid-run, or refuses the
//! credentials. Each engine is started by `blobjobs_test_support::engines`.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use blobjobs_backends::open::{Env, OpenOptions, open_store_checked, open_store_with};
use blobjobs_store_api::{
    BlobStore, ErrorKind, Metadata, Result, SetOptions, SetOutcome, once_stream,
};
use blobjobs_test_support::engines::{
    Postgres, SeaweedFs, free_ports, shared_postgres, shared_seaweedfs,
};
use blobjobs_test_support::{collect, example, put, stream_of};
use bytes::Bytes;

fn options(pairs: Vec<(String, String)>) -> OpenOptions {
    OpenOptions {
        env: Env::from_pairs(pairs),
        ..OpenOptions::default()
    }
}

fn written(outcome: SetOutcome) -> blobjobs_store_api::Etag {
    match outcome {
        SetOutcome::Written { etag } => etag,
        SetOutcome::ConditionFailed => panic!("the write was refused"),
    }
}

/// A random store name, so tests sharing an engine never see each other's keys.
fn fresh(name: &str) -> String {
    format!("{name}-{}", blobjobs_test_support::engines::random_hex(6))
}

mod s3 {
    use super::*;
    use object_store::aws::AmazonS3Builder;
    use object_store::path::Path;
    use object_store::{ObjectStoreExt as _, PutPayload};

    /// The engine's own ETag is the MD5 of the bytes (the same bytes written twice keep it),
    /// yet the store's ETag changes on every write, and an If-Match with the ETag of an
    /// older write of identical value and metadata is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn etags_change_on_identical_rewrites_although_the_engine_hashes_content() {
        let weed = shared_seaweedfs().await;
        // The engine by itself: same bytes, same ETag. (object_store's own HTTP client wants
        // a process-wide rustls provider; the store brings its own.)
        let _ = rustls::crypto::ring::default_provider().install_default();
        let raw = AmazonS3Builder::new()
            .with_bucket_name("blobjobs-test")
            .with_endpoint(weed.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(&weed.env()[0].1)
            .with_secret_access_key(weed.secret_key())
            .build()
            .unwrap();
        let path = Path::from("raw/abc");
        let first = raw
            .put(&path, PutPayload::from_static(b"same"))
            .await
            .unwrap();
        let second = raw
            .put(&path, PutPayload::from_static(b"same"))
            .await
            .unwrap();
        assert_eq!(
            first.e_tag, second.e_tag,
            "SeaweedFS's etag is a content hash"
        );

        // The store: every write a new ETag, and the old one never matches again.
        let store = weed.store("etags", &fresh("s"));
        let meta = Metadata::from_pairs([("k", "v")]);
        let opts = || SetOptions::new().metadata(meta.clone());
        let e1 = written(store.set("job", "same".into(), opts()).await.unwrap());
        let e2 = written(store.set("job", "same".into(), opts()).await.unwrap());
        assert_ne!(e1, e2);
        let stale = store
            .set("job", "other".into(), opts().if_match(e1.clone()))
            .await
            .unwrap();
        assert_eq!(stale, SetOutcome::ConditionFailed);
        // A change of metadata alone is a new version too.
        let e3 = written(
            store
                .set("job", "same".into(), SetOptions::new())
                .await
                .unwrap(),
        );
        assert_ne!(e3, e2);
        let stale = store
            .set("job", "x".into(), SetOptions::new().if_match(e2))
            .await
            .unwrap();
        assert_eq!(stale, SetOutcome::ConditionFailed);
        let blob = store.get("job").await.unwrap().unwrap();
        assert_eq!((blob.value.as_ref(), &blob.info.etag), (&b"same"[..], &e3));
    }

    /// Metadata whose names and values engines like to change (upper case, non-ASCII,
    /// nested JSON) comes back exactly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metadata_round_trips_exactly() {
        let weed = shared_seaweedfs().await;
        let store = weed.store("meta", &fresh("s"));
        let meta = Metadata::from_json(
            r#"{"CamelCase":"Ünïcode ✓","n":1.5,"nested":{"A":[1,null,true]},"e":""}"#,
        )
        .unwrap();
        store
            .set("k", "v".into(), SetOptions::new().metadata(meta.clone()))
            .await
            .unwrap();
        assert_eq!(store.get("k").await.unwrap().unwrap().info.metadata, meta);
        assert_eq!(
            store.get_metadata("k").await.unwrap().unwrap().metadata,
            meta
        );
    }

    /// A value longer than one part streams in as a multipart upload and out again; a
    /// conditional one goes as one conditional PUT; a body that fails midway leaves nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn large_values_stream_in_parts_and_failed_streams_leave_nothing() {
        let weed = shared_seaweedfs().await;
        let store = weed.store("stream", &fresh("s"));
        let chunk = Bytes::from(vec![7u8; 1024 * 1024]);
        let value: Vec<Bytes> = (0..12u8)
            .map(|i| {
                let mut c = chunk.to_vec();
                c[0] = i;
                Bytes::from(c)
            })
            .collect();
        let whole: Vec<u8> = value.iter().flat_map(|c| c.to_vec()).collect();

        let etag = written(
            store
                .set_stream("big", stream_of(value.clone()), None, SetOptions::new())
                .await
                .unwrap(),
        );
        let (info, body) = store.get_stream("big").await.unwrap().unwrap();
        assert_eq!((info.size, &info.etag), (whole.len() as u64, &etag));
        assert!(collect(body).await.unwrap() == whole);
        let listed = store.list(Default::default()).await.unwrap();
        assert_eq!(listed.blobs[0].size, whole.len() as u64);

        let cond = store
            .set_stream(
                "big",
                stream_of(value.clone()),
                None,
                SetOptions::new().if_new(),
            )
            .await
            .unwrap();
        assert_eq!(cond, SetOutcome::ConditionFailed);
        let cas = store
            .set_stream(
                "big",
                stream_of(value.clone()),
                None,
                SetOptions::new().if_match(etag.clone()),
            )
            .await
            .unwrap();
        assert!(cas.is_written() && cas.etag() != Some(&etag));

        // A body that breaks after 9 MiB (past the first part) writes nothing.
        let mut broken: Vec<Result<Bytes>> = value[..9].iter().cloned().map(Ok).collect();
        broken.push(Err(blobjobs_store_api::Error::new(
            ErrorKind::Io,
            "client went away",
        )));
        let body: blobjobs_store_api::ByteStream = Box::pin(futures_util::stream::iter(broken));
        let err = store
            .set_stream("broken", body, None, SetOptions::new())
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(store.get_metadata("broken").await.unwrap().is_none());
        // Over the caller's limit: refused, nothing written.
        let err = store
            .set_stream(
                "limited",
                stream_of(value),
                Some(10 << 20),
                SetOptions::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TooLarge);
        assert!(store.get_metadata("limited").await.unwrap().is_none());
        let small = store
            .set_stream(
                "small",
                once_stream("s".into()),
                None,
                SetOptions::new().if_new(),
            )
            .await
            .unwrap();
        assert!(small.is_written());
    }

    /// A sibling store shares the connections and is the same store as one opened anew.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn siblings_are_the_stores_of_their_names() {
        let weed = shared_seaweedfs().await;
        let (a, b) = (fresh("a"), fresh("b"));
        let mut config = weed.config();
        config.prefix = "siblings".to_owned();
        let first = blobjobs_backends::S3Store::open(&config, &a).unwrap();
        let sibling = first.sibling(&b).unwrap();
        put(&sibling, "k", b"from the sibling").await;
        assert!(first.get("k").await.unwrap().is_none());
        let opened = weed.store("siblings", &b);
        let blob = opened.get("k").await.unwrap().unwrap();
        assert_eq!(blob.value.as_ref(), b"from the sibling");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wrong_keys_are_unauthorized_and_never_shown() {
        let weed = shared_seaweedfs().await;
        let mut env = weed.env();
        env[1].1 = "wrong-secret-hunter2".to_owned();
        let err = open_store_checked(&weed.spec("creds"), "s", &options(env))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        let text = format!("{err} {err:?}");
        assert!(
            !text.contains("hunter2") && !text.contains(weed.secret_key()),
            "{text}"
        );
        assert!(
            text.contains(&format!("127.0.0.1:{}", weed.port())),
            "{text}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_engine_that_is_down_at_start_is_one_clear_error() {
        let port = free_ports(1)[0];
        let spec = format!("s3://bucket/p?endpoint=http://127.0.0.1:{port}");
        let env = vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), "AKIADOWN".to_owned()),
            (
                "AWS_SECRET_ACCESS_KEY".to_owned(),
                "hunter2secret".to_owned(),
            ),
        ];
        let err = open_store_checked(&spec, "s", &options(env.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.is_retryable());
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        super::example_fails_cleanly(&spec, &env, port);
    }

    /// SIGKILL mid-run, including during a multi-megabyte write, then a start on the same
    /// data: operations fail with retryable errors meanwhile and work again afterwards with
    /// the same handle; every acknowledged write is there, whole.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_mid_run_loses_no_acknowledged_write() {
        let mut weed = SeaweedFs::start().await;
        let store = weed.store("restart", "s");
        let started = Instant::now();
        let engine = super::restart_story(store, &mut weed).await;
        println!("restart story took {:?} ({engine})", started.elapsed());
    }
}

mod postgres {
    use super::*;

    async fn sql(pg: &Postgres) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres password={} dbname=postgres",
                pg.port(),
                pg.password()
            ),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        client
    }

    /// Many handles opening one fresh database at once create the schema once; the
    /// version row says 1; a database at a newer version is refused, not written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_schema_is_created_once_and_versioned() {
        let pg = shared_postgres().await;
        let admin = sql(pg).await;
        let db = format!("schema_{}", blobjobs_test_support::engines::random_hex(4));
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let spec = pg.spec().replace("/postgres?", &format!("/{db}?"));
        let opened: Vec<_> = (0..6)
            .map(|i| {
                let spec = spec.clone();
                tokio::spawn(async move {
                    let store = open_store_with(&spec, &format!("s{i}"), &options(vec![]))?;
                    store.set("k", "v".into(), SetOptions::new()).await
                })
            })
            .collect();
        for task in opened {
            assert!(task.await.unwrap().unwrap().is_written());
        }
        let (client, connection) = tokio_postgres::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres password={} dbname={db}",
                pg.port(),
                pg.password()
            ),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(connection);
        let version: i32 = client
            .query_one("SELECT version FROM blobjobs_schema", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(version, blobjobs_backends::postgres::SCHEMA_VERSION);
        let rows: i64 = client
            .query_one("SELECT count(*) FROM blobjobs_blobs", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(rows, 6);
        // A listing walks the primary key's index.
        let plan: Vec<String> = client
            .query(
                "EXPLAIN SELECT key FROM blobjobs_blobs WHERE store = '\\x7330'::bytea \
                 AND key >= '\\x6b'::bytea AND key < '\\x6c'::bytea ORDER BY key LIMIT 10",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert!(plan.join("\n").contains("Index"), "{plan:?}");
        // A newer schema than this build knows is refused.
        client
            .batch_execute("UPDATE blobjobs_schema SET version = 99")
            .await
            .unwrap();
        let err = open_store_checked(&spec, "s0", &options(vec![]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Protocol, "{err}");
    }

    /// A sibling store shares the pool and is the same store as one opened anew.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn siblings_are_the_stores_of_their_names() {
        let pg = shared_postgres().await;
        let (a, b) = (fresh("a"), fresh("b"));
        let config = blobjobs_backends::postgres::PgConfig::parse(&pg.spec(), &|_| None).unwrap();
        let first = blobjobs_backends::PgStore::open(&config, &a).unwrap();
        let sibling = first.sibling(&b).unwrap();
        put(&sibling, "k", b"from the sibling").await;
        assert!(first.get("k").await.unwrap().is_none());
        let blob = pg.store(&b).get("k").await.unwrap().unwrap();
        assert_eq!(blob.value.as_ref(), b"from the sibling");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_password_comes_from_the_url_or_pgpassword_and_a_wrong_one_is_unauthorized() {
        let pg = shared_postgres().await;
        let without = format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port());
        let env = vec![("PGPASSWORD".to_owned(), pg.password().to_owned())];
        let store = open_store_checked(&without, "s", &options(env))
            .await
            .unwrap();
        put(store.as_ref(), "k", b"v").await;
        let wrong = format!(
            "postgres://postgres:wrong-hunter2@127.0.0.1:{}/postgres",
            pg.port()
        );
        let err = open_store_checked(&wrong, "s", &options(vec![]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
        let text = format!("{err} {err:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(&format!("127.0.0.1:{}", pg.port())), "{text}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_engine_that_is_down_at_start_is_one_clear_error() {
        let port = free_ports(1)[0];
        let spec = format!("postgres://postgres:hunter2secret@127.0.0.1:{port}/postgres");
        let err = open_store_checked(&spec, "s", &options(vec![]))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(
            err.to_string().contains(&format!("127.0.0.1:{port}")),
            "{err}"
        );
        assert!(!format!("{err} {err:?}").contains("hunter2"));
        super::example_fails_cleanly(&spec, &[], port);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_restart_mid_run_loses_no_acknowledged_write() {
        let mut pg = Postgres::start().await;
        let store = pg.store("restart");
        let started = Instant::now();
        let engine = super::restart_story(store, &mut pg).await;
        println!("restart story took {:?} ({engine})", started.elapsed());
    }
}

/// The `serverless_jobs` example pointed at an engine that is down: it exits non-zero
/// without a panic, and says which host and port it could not reach, without the secret.
fn example_fails_cleanly(spec: &str, env: &[(String, String)], port: u16) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = example::run(&["trigger", "--store", spec], &env, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.status.code().is_some(), "killed by a signal: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

/// An engine that a test stops and starts again.
trait Restart {
    fn stop(&mut self);
    async fn restart(&mut self);
}

impl Restart for SeaweedFs {
    fn stop(&mut self) {
        SeaweedFs::stop(self)
    }
    async fn restart(&mut self) {
        SeaweedFs::restart(self).await
    }
}

impl Restart for Postgres {
    fn stop(&mut self) {
        Postgres::stop(self)
    }
    async fn restart(&mut self) {
        Postgres::restart(self).await
    }
}

/// Writes before, during and after a stop and a start of the engine through one handle.
async fn restart_story(store: Arc<dyn BlobStore>, engine: &mut impl Restart) -> String {
    let mut acknowledged: Vec<(String, Bytes)> = Vec::new();
    for i in 0..10 {
        let key = format!("before/{i}");
        let value = Bytes::from(format!("value {i}"));
        written(
            store
                .set(&key, value.clone(), SetOptions::new().if_new())
                .await
                .unwrap(),
        );
        acknowledged.push((key, value));
    }
    // A large write in flight while the engine goes down: acknowledged or not, never torn.
    let big = Bytes::from(vec![b'x'; 4 << 20]);
    let in_flight = {
        let store = store.clone();
        let big = big.clone();
        tokio::spawn(async move { store.set("big", big, SetOptions::new()).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    engine.stop();
    let big_outcome = in_flight.await.unwrap();

    // While it is down every operation fails, with a retryable error.
    let mut kinds = Vec::new();
    for i in 0..3 {
        let write = store
            .set(&format!("down/{i}"), "x".into(), SetOptions::new())
            .await;
        let read = store.get("before/0").await;
        for err in [write.err(), read.err()] {
            let err = err.expect("an operation succeeded while the engine was down");
            assert!(err.is_retryable(), "{err}");
            kinds.push(err.kind());
        }
    }

    engine.restart().await;
    // The same handle recovers: each operation is retried until it works, within a bound.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut failures_after = 0;
    for i in 0..10 {
        let key = format!("after/{i}");
        let value = Bytes::from(format!("after {i}"));
        loop {
            match store.set(&key, value.clone(), SetOptions::new()).await {
                Ok(outcome) => {
                    written(outcome);
                    break;
                }
                Err(e) => {
                    assert!(e.is_retryable(), "{e}");
                    assert!(Instant::now() < deadline, "no recovery: {e}");
                    failures_after += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        acknowledged.push((key, value));
    }
    for (key, value) in &acknowledged {
        let blob = store.get(key).await.unwrap();
        assert_eq!(blob.map(|b| b.value), Some(value.clone()), "{key}");
    }
    let stored = store.get("big").await.unwrap().map(|b| b.value);
    match &big_outcome {
        Ok(_) => assert_eq!(
            stored.as_ref(),
            Some(&big),
            "an acknowledged write was lost"
        ),
        Err(e) => {
            assert!(e.is_retryable(), "{e}");
            assert!(
                stored.is_none() || stored.as_ref() == Some(&big),
                "a torn value"
            );
        }
    }
    format!(
        "while down: {kinds:?}; retried after the start: {failures_after}; the write in flight: {}",
        match big_outcome {
            Ok(_) => "acknowledged".to_owned(),
            Err(e) => format!("{} ({})", e.kind(), e),
        }
    )
}

/// Catalogs over an engine, as the emulator serves them: stores named `<site>/<store>`, two
/// catalogs (two servers) on one engine seeing the same stores, listing and deleting whole
/// stores, and the catalog's store of a name being the store an `open_store` of that name
/// opens.
mod catalog {
    use super::*;
    use blobjobs_backends::Catalog;
    use futures_util::StreamExt as _;

    /// What both engines must do. `a` and `b` are separate catalogs on one engine (separate
    /// clients or pools); `plain` is the store `open_store` opens as `plain_name` there.
    async fn catalogs_share_stores(
        a: &Catalog,
        b: &Catalog,
        plain: Arc<dyn BlobStore>,
        plain_name: &str,
    ) {
        let site = fresh("site");
        let (one, two) = (format!("{site}/site:one"), format!("{site}/deploy:0:two"));
        put(a.store(&one).unwrap().as_ref(), "k", b"from a").await;
        put(a.store(&one).unwrap().as_ref(), "dir/k", b"nested").await;
        put(b.store(&two).unwrap().as_ref(), "k", b"from b").await;
        // A store that held a key once and is empty now is not listed.
        let emptied = format!("{site}/site:emptied");
        put(a.store(&emptied).unwrap().as_ref(), "gone", b"x").await;
        a.store(&emptied).unwrap().delete("gone").await.unwrap();

        let blob = b.store(&one).unwrap().get("k").await.unwrap().unwrap();
        assert_eq!(blob.value.as_ref(), b"from a");
        let prefix = format!("{site}/");
        assert_eq!(
            b.list_stores(&prefix).await.unwrap(),
            vec![two.clone(), one.clone()]
        );
        assert_eq!(
            a.list_stores(&format!("{site}/site:")).await.unwrap(),
            vec![one.clone()]
        );

        assert_eq!(b.delete_store(&one).await.unwrap(), 2);
        assert!(a.store(&one).unwrap().get("k").await.unwrap().is_none());
        assert_eq!(a.list_stores(&prefix).await.unwrap(), vec![two.clone()]);
        assert_eq!(a.delete_store(&one).await.unwrap(), 0);

        // The catalog's store of a plain name is the store open_store opens.
        put(plain.as_ref(), "shared", b"through open_store").await;
        let blob = a.store(plain_name).unwrap().get("shared").await.unwrap();
        assert_eq!(blob.unwrap().value.as_ref(), b"through open_store");
        assert!(
            a.list_stores("")
                .await
                .unwrap()
                .contains(&plain_name.to_owned())
        );

        let err = a.store("").map(drop).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let err = a.store(&"n".repeat(1025)).map(drop).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    /// Writes `n` keys to `store`, 16 at a time.
    async fn fill(store: Arc<dyn BlobStore>, n: usize) {
        futures_util::stream::iter(0..n)
            .map(|i| {
                let store = store.clone();
                async move { put(store.as_ref(), &format!("k{i:05}"), b"v").await }
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn s3_catalogs_share_list_and_delete_stores() {
        let weed = shared_seaweedfs().await;
        let prefix = fresh("catalog");
        let spec = weed.spec(&prefix);
        let open = || Catalog::open(&spec, &options(weed.env())).unwrap();
        let (a, b) = (open(), open());
        a.check().await.unwrap();
        assert!(a.is_engine());
        let described = a.describe();
        assert!(
            described.contains(&format!("127.0.0.1:{}", weed.port()))
                && described.contains(&prefix),
            "{described}"
        );
        assert!(!described.contains(weed.secret_key()), "{described}");
        let plain = open_store_with(&spec, "plain", &options(weed.env())).unwrap();
        catalogs_share_stores(&a, &b, plain, "plain").await;

        // A store directory is one path segment, which engines keep to 255 bytes: longer
        // names are refused rather than split.
        let err = a.store(&"é".repeat(101)).map(drop).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        a.store(&"é".repeat(100)).unwrap();

        // A store of more objects than one bulk delete takes.
        let big = "site/site:big";
        fill(a.store(big).unwrap(), 1005).await;
        assert_eq!(b.delete_store(big).await.unwrap(), 1005);
        assert!(
            a.store(big)
                .unwrap()
                .list(Default::default())
                .await
                .unwrap()
                .blobs
                .is_empty()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres_catalogs_share_list_and_delete_stores() {
        let pg = shared_postgres().await;
        let open = || Catalog::open(&pg.spec(), &options(vec![])).unwrap();
        let (a, b) = (open(), open());
        a.check().await.unwrap();
        let described = a.describe();
        assert!(
            described.contains(&format!("127.0.0.1:{}", pg.port())),
            "{described}"
        );
        assert!(!described.contains(pg.password()), "{described}");
        let plain_name = fresh("plain");
        catalogs_share_stores(&a, &b, pg.store(&plain_name), &plain_name).await;
        // No segment limit here: the longest catalog name works.
        let long = "n".repeat(1024);
        put(a.store(&long).unwrap().as_ref(), "k", b"v").await;
        assert_eq!(b.delete_store(&long).await.unwrap(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn servers_and_engines_that_are_down_are_refused_or_named() {
        for spec in ["http://127.0.0.1:1", "netlify://"] {
            let err = Catalog::open(spec, &options(vec![])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{spec}: {err}");
        }
        let port = free_ports(1)[0];
        let spec = format!("postgres://postgres:hunter2secret@127.0.0.1:{port}/postgres");
        let catalog = Catalog::open(&spec, &options(vec![])).unwrap();
        let err = catalog.check().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        let text = format!("{err} {err:?} {catalog:?} {}", catalog.describe());
        assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
