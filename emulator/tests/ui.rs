//! The browser view's page and JSON API, driven in-process through `App::handle`: what is
//! public and what needs the token, what each listing shows, paging through 10,000 keys,
//! bounded previews, deletes, job records, and 4xx for bad input. The page itself runs in a
//! real browser in `tests/browser.rs`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use blobjobs_backends::Catalog;
use blobjobs_emulator::ui::UI_PATH;
use blobjobs_emulator::{App, Config};
use blobjobs_store_api::{BlobJobStore, BlobStore, JobStore, Metadata, NewJob, SetOptions};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use serde_json::{Value, json};

const TOKEN: &str = "ui-test-token";

struct Reply {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or_default()
    }
}

struct Fixture {
    app: App,
    catalog: Catalog,
}

impl Fixture {
    fn new() -> Self {
        let catalog = Catalog::memory();
        let app = App::new(Config::new(catalog.clone(), TOKEN)).unwrap();
        Fixture { app, catalog }
    }

    fn store(&self, site: &str, raw: &str) -> Arc<dyn BlobStore> {
        self.catalog.store(&format!("{site}/{raw}")).unwrap()
    }

    async fn send(&self, method: &str, path: &str, auth: Option<&str>) -> Reply {
        let mut builder = Request::builder().method(method).uri(path);
        if let Some(auth) = auth {
            builder = builder.header("authorization", auth);
        }
        let response = self
            .app
            .handle(builder.body(Full::new(Bytes::new())).unwrap())
            .await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// An API call with the token; `query` pairs are encoded as the page encodes them.
    async fn api(&self, method: &str, name: &str, query: &[(&str, &str)]) -> Reply {
        let query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        let path = format!("{UI_PATH}api/{name}?{}", query.join("&"));
        self.send(method, &path, Some(&format!("Bearer {TOKEN}")))
            .await
    }

    async fn get_ok(&self, name: &str, query: &[(&str, &str)]) -> Value {
        let reply = self.api("GET", name, query).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{name} {query:?}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        reply.json()
    }
}

/// `URLSearchParams` encoding: spaces as `+`, everything else outside the unreserved set
/// percent-encoded.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn metadata(value: Value) -> Metadata {
    Metadata::from_map(value.as_object().unwrap().clone())
}

#[tokio::test]
async fn the_page_is_public_embedded_and_locked_down() {
    let f = Fixture::new();
    let bare = f.send("GET", UI_PATH.trim_end_matches('/'), None).await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare.header("location"), UI_PATH);

    for (asset, content_type) in [
        ("", "text/html"),
        ("index.html", "text/html"),
        ("app.js", "text/javascript"),
        ("app.css", "text/css"),
    ] {
        let reply = f.send("GET", &format!("{UI_PATH}{asset}"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{asset}");
        assert!(reply.header("content-type").starts_with(content_type));
        let csp = reply.header("content-security-policy");
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
        assert_eq!(reply.header("x-content-type-options"), "nosniff");
        assert!(!reply.body.is_empty());
        let text = String::from_utf8_lossy(&reply.body);
        assert!(!text.contains(TOKEN), "the page must not carry the token");
    }
    let head = f.send("HEAD", UI_PATH, None).await;
    assert_eq!(head.status, StatusCode::OK);

    assert_eq!(
        f.send("GET", &format!("{UI_PATH}nope.js"), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.send("POST", UI_PATH, None).await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // A neighbour of the page's path is not the page.
    assert_eq!(
        f.send("GET", "/.well-known/blobs-emulator/uix", None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_api_needs_the_token() {
    let f = Fixture::new();
    for name in ["sites", "stores?site=s", "keys?site=s&store=site:x"] {
        let path = format!("{UI_PATH}api/{name}");
        assert_eq!(
            f.send("GET", &path, None).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            f.send("GET", &path, Some("Bearer wrong")).await.status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            f.send("GET", &path, Some(&format!("Bearer {TOKEN}")))
                .await
                .status,
            StatusCode::OK
        );
    }
    // Deleting is behind the token too, and a refused delete deletes nothing.
    let store = f.store("s", "site:x");
    store
        .set("k", Bytes::from_static(b"v"), SetOptions::new())
        .await
        .unwrap();
    let path = format!("{UI_PATH}api/value?site=s&store=site%3Ax&key=k");
    assert_eq!(
        f.send("DELETE", &path, Some("Bearer wrong")).await.status,
        StatusCode::FORBIDDEN
    );
    assert!(store.get("k").await.unwrap().is_some());
}

#[tokio::test]
async fn sites_stores_and_keys_with_their_metadata() {
    let f = Fixture::new();
    let jobs = f.store("local-site", "site:jobs");
    let written = jobs
        .set(
            "report/1",
            Bytes::from_static(b"{\"ok\":true}"),
            SetOptions::new().metadata(metadata(json!({"owner": "alice", "n": 3}))),
        )
        .await
        .unwrap();
    jobs.set("report/2", Bytes::from_static(b"two"), SetOptions::new())
        .await
        .unwrap();
    f.store("local-site", "deploy:0")
        .set("asset", Bytes::from_static(b"a"), SetOptions::new())
        .await
        .unwrap();
    f.store("local-site", "deploy:abc:named")
        .set("k", Bytes::from_static(b"a"), SetOptions::new())
        .await
        .unwrap();
    f.store("other-site", "site:jobs")
        .set("k", Bytes::from_static(b"a"), SetOptions::new())
        .await
        .unwrap();
    // A store whose only key was deleted holds nothing and is not shown.
    let empty = f.store("local-site", "site:empty");
    empty
        .set("gone", Bytes::from_static(b"a"), SetOptions::new())
        .await
        .unwrap();
    empty.delete("gone").await.unwrap();

    let sites = f.get_ok("sites", &[]).await;
    assert_eq!(
        sites,
        json!({"sites": [{"id": "local-site", "stores": 3}, {"id": "other-site", "stores": 1}]})
    );

    let stores = f.get_ok("stores", &[("site", "local-site")]).await;
    assert_eq!(
        stores,
        json!({"stores": [
            {"name": "deploy:0", "kind": "deploy", "label": "", "deploy": "0"},
            {"name": "deploy:abc:named", "kind": "deploy", "label": "named", "deploy": "abc"},
            {"name": "site:jobs", "kind": "site", "label": "jobs"},
        ]})
    );

    let keys = f
        .get_ok("keys", &[("site", "local-site"), ("store", "site:jobs")])
        .await;
    let info = jobs.get_metadata("report/1").await.unwrap().unwrap();
    assert_eq!(Some(&info.etag), written.etag());
    assert_eq!(
        keys["keys"][0],
        json!({
            "key": "report/1",
            "size": 11,
            "etag": info.etag.as_str(),
            "lastModified": info.last_modified.as_millis(),
            "metadata": {"owner": "alice", "n": 3},
        })
    );
    assert_eq!(keys["keys"][1]["key"], "report/2");
    assert_eq!(keys["keys"][1]["metadata"], json!({}));
    assert_eq!(keys["nextCursor"], Value::Null);

    let prefixed = f
        .get_ok(
            "keys",
            &[
                ("site", "local-site"),
                ("store", "site:jobs"),
                ("prefix", "report/2"),
            ],
        )
        .await;
    assert_eq!(prefixed["keys"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn ten_thousand_keys_page_through_each_exactly_once() {
    let f = Fixture::new();
    let store = f.store("local-site", "site:many");
    let keys: Vec<String> = (0..10_000).map(|i| format!("item/{i:05}")).collect();
    for key in &keys {
        store
            .set(key, Bytes::from_static(b"x"), SetOptions::new())
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let page = f
            .get_ok(
                "keys",
                &[
                    ("site", "local-site"),
                    ("store", "site:many"),
                    ("limit", "100"),
                    ("cursor", &cursor),
                ],
            )
            .await;
        pages += 1;
        let entries = page["keys"].as_array().unwrap();
        assert!(entries.len() <= 100);
        seen.extend(
            entries
                .iter()
                .map(|e| e["key"].as_str().unwrap().to_owned()),
        );
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
        assert!(pages <= 101, "paging does not end");
    }
    assert_eq!(pages, 100);
    assert_eq!(seen, keys);

    // The default page is bounded too, and the largest page is the documented maximum.
    let first = f
        .get_ok("keys", &[("site", "local-site"), ("store", "site:many")])
        .await;
    assert_eq!(first["keys"].as_array().unwrap().len(), 100);
    let big = f
        .api(
            "GET",
            "keys",
            &[
                ("site", "local-site"),
                ("store", "site:many"),
                ("limit", "1001"),
            ],
        )
        .await;
    assert_eq!(big.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn previews_are_bounded_and_exact() {
    let f = Fixture::new();
    let store = f.store("local-site", "site:values");
    let large: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    let hostile_key = "<script>alert('key')</script>";
    let hostile_value = b"<img src=x onerror=alert(1)><script>alert('value')</script>";
    for (key, value) in [
        ("text", b"hello".to_vec()),
        ("binary", vec![0u8, 159, 146, 150, 255]),
        ("large", large.clone()),
        ("empty", Vec::new()),
        (hostile_key, hostile_value.to_vec()),
    ] {
        store
            .set(key, Bytes::from(value), SetOptions::new())
            .await
            .unwrap();
    }
    let preview = |reply: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(reply["preview"].as_str().unwrap())
            .unwrap()
    };
    let get = |key: &'static str| {
        let f = &f;
        async move {
            f.get_ok(
                "value",
                &[
                    ("site", "local-site"),
                    ("store", "site:values"),
                    ("key", key),
                ],
            )
            .await
        }
    };

    let text = get("text").await;
    assert_eq!(preview(&text), b"hello");
    assert_eq!(text["truncated"], false);
    assert_eq!(text["blob"]["size"], 5);

    let binary = get("binary").await;
    assert_eq!(preview(&binary), [0u8, 159, 146, 150, 255]);

    let large_reply = get("large").await;
    let head = preview(&large_reply);
    assert_eq!(head.len(), 64 * 1024);
    assert_eq!(head, large[..64 * 1024]);
    assert_eq!(large_reply["truncated"], true);
    assert_eq!(large_reply["blob"]["size"], 200 * 1024);

    let empty = get("empty").await;
    assert_eq!(preview(&empty), b"");
    assert_eq!(empty["truncated"], false);

    // Markup in keys and values is data: it comes back intact inside JSON, never as a page.
    let reply = f
        .api(
            "GET",
            "value",
            &[
                ("site", "local-site"),
                ("store", "site:values"),
                ("key", hostile_key),
            ],
        )
        .await;
    assert_eq!(reply.header("content-type"), "application/json");
    assert_eq!(reply.header("x-content-type-options"), "nosniff");
    assert_eq!(reply.json()["blob"]["key"], hostile_key);
    assert_eq!(preview(&reply.json()), hostile_value);

    let missing = f
        .api(
            "GET",
            "value",
            &[
                ("site", "local-site"),
                ("store", "site:values"),
                ("key", "nope"),
            ],
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn delete_removes_exactly_that_key() {
    let f = Fixture::new();
    let store = f.store("local-site", "site:del");
    for key in ["a", "a b+c", "b"] {
        store
            .set(key, Bytes::from_static(b"v"), SetOptions::new())
            .await
            .unwrap();
    }
    let query = [
        ("site", "local-site"),
        ("store", "site:del"),
        ("key", "a b+c"),
    ];
    let reply = f.api("DELETE", "value", &query).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert!(store.get("a b+c").await.unwrap().is_none());
    assert!(store.get("a").await.unwrap().is_some());
    assert!(store.get("b").await.unwrap().is_some());
    // Deleting again is not an error, as in the protocol.
    assert_eq!(
        f.api("DELETE", "value", &query).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn job_records_are_recognised_and_filtered_by_status() {
    let f = Fixture::new();
    let blobs = f.store("local-site", "site:rubric-jobs");
    let jobs = BlobJobStore::new(blobs.clone());
    let pending = jobs
        .create(NewJob::new("extract", json!({"pdf": "a.pdf"})))
        .await
        .unwrap();
    let running = jobs
        .create(NewJob::new("extract", json!({"pdf": "b.pdf"})))
        .await
        .unwrap();
    let done = jobs.create(NewJob::new("score", json!({}))).await.unwrap();
    jobs.claim(&running.id, "worker-1", Duration::from_secs(60))
        .await
        .unwrap();
    jobs.progress(&running.id, "worker-1", 50, Some("half way".into()))
        .await
        .unwrap();
    jobs.claim(&done.id, "worker-2", Duration::from_secs(60))
        .await
        .unwrap();
    jobs.succeed(&done.id, "worker-2", json!({"points": 30}))
        .await
        .unwrap();
    // Keys under the prefix that are not job records: counted, never an error.
    for (key, value) in [
        ("jobs/not-json", b"plain".to_vec()),
        (
            "jobs/wrong-id",
            serde_json::to_vec(&jobs.get(&pending.id).await.unwrap().unwrap()).unwrap(),
        ),
    ] {
        blobs
            .set(key, Bytes::from(value), SetOptions::new())
            .await
            .unwrap();
    }
    // Keys outside the prefix are not looked at.
    blobs
        .set("other", Bytes::from_static(b"{}"), SetOptions::new())
        .await
        .unwrap();

    let site = [("site", "local-site"), ("store", "site:rubric-jobs")];
    let all = f.get_ok("jobs", &site).await;
    let listed: Vec<&str> = all["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["job"]["id"].as_str().unwrap())
        .collect();
    let mut expected = vec![pending.id.as_str(), running.id.as_str(), done.id.as_str()];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(all["other"], 2);
    assert!(all["now"].as_u64().unwrap() > 0);

    let mut query = site.to_vec();
    query.push(("status", "running"));
    let only_running = f.get_ok("jobs", &query).await;
    let entries = only_running["jobs"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let entry = &entries[0];
    assert_eq!(entry["key"], format!("jobs/{}", running.id));
    assert_eq!(entry["expired"], false);
    let job = &entry["job"];
    assert_eq!(job["status"], "running");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["lease"]["owner"], "worker-1");
    assert!(job["lease"]["expires_at"].as_u64().unwrap() > job["updated_at"].as_u64().unwrap());
    assert_eq!(
        job["progress"],
        json!({"percent": 50, "message": "half way"})
    );
    let etag = blobs
        .get_metadata(&format!("jobs/{}", running.id))
        .await
        .unwrap()
        .unwrap()
        .etag;
    assert_eq!(entry["etag"], etag.as_str());

    query.pop();
    query.push(("status", "succeeded"));
    let succeeded = f.get_ok("jobs", &query).await;
    assert_eq!(succeeded["jobs"][0]["job"]["result"], json!({"points": 30}));

    // One key per page: every job once, across pages.
    let mut cursor = String::new();
    let mut ids = Vec::new();
    for _ in 0..10 {
        let mut q = site.to_vec();
        q.push(("limit", "1"));
        q.push(("cursor", &cursor));
        let page = f.get_ok("jobs", &q).await;
        for e in page["jobs"].as_array().unwrap() {
            ids.push(e["job"]["id"].as_str().unwrap().to_owned());
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(ids, expected);

    query.pop();
    query.push(("status", "sleeping"));
    assert_eq!(
        f.api("GET", "jobs", &query).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_reason() {
    let f = Fixture::new();
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], StatusCode);
    let cases: &[Case<'_>] = &[
        ("GET", "stores", &[], StatusCode::BAD_REQUEST),
        (
            "GET",
            "stores",
            &[("site", ".bad")],
            StatusCode::BAD_REQUEST,
        ),
        ("GET", "keys", &[("site", "s")], StatusCode::BAD_REQUEST),
        (
            "GET",
            "keys",
            &[("site", "s"), ("store", "deploy:not a deploy")],
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "keys",
            &[("site", "s"), ("store", "site:x"), ("limit", "ten")],
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "keys",
            &[("site", "s"), ("store", "site:x"), ("cursor", "%%%")],
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "value",
            &[("site", "s"), ("store", "site:x")],
            StatusCode::BAD_REQUEST,
        ),
        (
            "GET",
            "value",
            &[
                ("site", "s"),
                ("store", "site:x"),
                ("key", "/leading-slash"),
            ],
            StatusCode::BAD_REQUEST,
        ),
        ("POST", "sites", &[], StatusCode::METHOD_NOT_ALLOWED),
        ("DELETE", "keys", &[], StatusCode::METHOD_NOT_ALLOWED),
        ("PUT", "value", &[], StatusCode::METHOD_NOT_ALLOWED),
        ("GET", "nothing", &[], StatusCode::NOT_FOUND),
    ];
    for (method, name, query, status) in cases {
        let reply = f.api(method, name, query).await;
        assert_eq!(reply.status, *status, "{method} {name} {query:?}");
        assert!(!reply.body.is_empty(), "{method} {name}: no reason given");
    }
    let bad_utf8 = f
        .send(
            "GET",
            &format!("{UI_PATH}api/stores?site=%FF"),
            Some(&format!("Bearer {TOKEN}")),
        )
        .await;
    assert_eq!(bad_utf8.status, StatusCode::BAD_REQUEST);
}
