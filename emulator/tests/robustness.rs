//! No input makes the handler panic or fail with a server error: arbitrary methods, paths,
//! queries, headers and bodies, driven through `App::handle` in-process (no socket).
#![allow(clippy::unwrap_used)]

use blobjobs_backends::Catalog;
use blobjobs_emulator::{App, Config};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt as _, Full};
use proptest::prelude::*;

const TOKEN: &str = "tok";

fn method() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "GET", "HEAD", "PUT", "DELETE", "POST", "PATCH", "OPTIONS",
    ])
}

/// Path pieces that hit the interesting branches, glued together at random.
fn path() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "",
        "/",
        "site-1",
        "api",
        "v1",
        "blobs",
        "region:dev",
        "site:",
        "site:x",
        "deploy:",
        "deploy:abc",
        "deploy:a-b",
        "deploy:abc:n",
        ".well-known",
        "blobs-emulator",
        "health",
        "%",
        "%2F",
        "%2f",
        "%FF",
        "%C3%BC",
        "%00",
        "..",
        ".",
        "k",
        "a%20b",
        "~",
        ":",
        "+",
    ]);
    prop::collection::vec(piece, 0..7).prop_map(|parts| format!("/{}", parts.join("/")))
}

fn query() -> impl Strategy<Value = String> {
    let pair = prop::sample::select(vec![
        "prefix=",
        "prefix=a%2F",
        "prefix=%FF",
        "directories=true",
        "directories=x",
        "cursor=",
        "cursor=%2A",
        "cursor=a2V5",
        "cursor=c3NpdGU6YQ",
        "region=auto",
        "expires=1",
        "expires=x",
        "signature=zz",
        "signature=",
        "&",
        "=",
        "a=b",
    ]);
    prop::collection::vec(pair, 0..4).prop_map(|p| p.join("&"))
}

fn headers() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let name = prop::sample::select(vec![
        "authorization",
        "accept",
        "if-match",
        "if-none-match",
        "x-amz-meta-user",
        "netlify-blobs-metadata",
        "content-length",
        "host",
    ]);
    let value = prop::sample::select(vec![
        "Bearer tok".to_owned(),
        "Bearer nope".to_owned(),
        "application/json;type=signed-url".to_owned(),
        "*".to_owned(),
        "\"etag\"".to_owned(),
        "b64;e30=".to_owned(),
        "b64;!!".to_owned(),
        "b64;WzFd".to_owned(),
        "99999999999999999999".to_owned(),
        "5".to_owned(),
        "localhost:1".to_owned(),
        String::new(),
    ]);
    prop::collection::vec((name, value), 0..5)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_request_gets_a_response_below_500(
        method in method(),
        path in path(),
        query in query(),
        headers in headers(),
        body in prop::collection::vec(any::<u8>(), 0..16),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let app = App::new(Config::new(Catalog::memory(), TOKEN).max_blob_size(8)).unwrap();
            let uri = if query.is_empty() { path.clone() } else { format!("{path}?{query}") };
            let mut builder = Request::builder().method(method).uri(uri.as_str());
            for (name, value) in &headers {
                builder = builder.header(*name, value.as_str());
            }
            // Some generated targets are not valid URIs at all; hyper would refuse them.
            let Ok(request) = builder.body(Full::new(Bytes::from(body.clone()))) else {
                return Ok(());
            };
            let response = app.handle(request).await;
            let status = response.status();
            // Bodies must be readable to the end without an error.
            response.into_body().collect().await.unwrap();
            prop_assert!(status.as_u16() < 500, "{method} {uri} {headers:?} -> {status}");
            Ok(())
        })?;
    }
}
