//! The access log: one `info` event per request on the target [`TARGET`], with the method, the
//! path (query values that may be secrets left out), the status, the bytes received and sent,
//! and the time until the response body was sent or dropped.
//!
//! The event is emitted when hyper drops the response body, so a streamed value is counted
//! whole and a client that went away mid-body still gets its line. Nothing is measured when
//! no subscriber listens at `info` on the target, so a quiet server pays nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame};

use crate::app::App;
use crate::body::ResponseBody;

/// The `tracing` target of the access log: `RUST_LOG=blobjobs_emulator::access=off` turns it
/// off alone.
pub const TARGET: &str = "blobjobs_emulator::access";

/// Query parameters whose values are logged; every other value is replaced by `…`, so a
/// signed URL's `signature` never reaches a log.
const LOGGED_PARAMETERS: &[&str] = &["prefix", "directories", "cursor", "region", "context"];

/// Answers `req` with `app` and logs the exchange once the response body is done.
pub async fn handle<B>(app: &App, req: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: std::fmt::Display,
{
    if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        return app.handle(req).await;
    }
    let started = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let method = req.method().clone();
    let path = loggable_path(req.uri());
    let req = req.map(move |body| {
        body.map_frame(move |frame: Frame<Bytes>| {
            if let Some(data) = frame.data_ref() {
                counter.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            frame
        })
    });
    let response = app.handle(req).await;
    let entry = Entry {
        method,
        path,
        status: response.status().as_u16(),
        started,
        received,
        sent: 0,
    };
    response.map(move |body| {
        let mut entry = entry;
        body.map_frame(move |frame| {
            // Naming the whole entry moves it into the closure, so that it lives (and logs)
            // as long as the body; a closure naming only `entry.sent` would copy the count.
            let entry = &mut entry;
            if let Some(data) = frame.data_ref() {
                entry.sent += data.len() as u64;
            }
            frame
        })
        .boxed_unsync()
    })
}

/// One request's line, written when the response body (which owns it) is dropped.
struct Entry {
    method: Method,
    path: String,
    status: u16,
    started: Instant,
    received: Arc<AtomicU64>,
    sent: u64,
}

impl Drop for Entry {
    fn drop(&mut self) {
        // Two decimals are all a log reader needs.
        let duration_ms = (self.started.elapsed().as_secs_f64() * 100_000.0).round() / 100.0;
        tracing::info!(
            target: TARGET,
            method = %self.method,
            path = %self.path,
            status = self.status,
            bytes_in = self.received.load(Ordering::Relaxed),
            bytes_out = self.sent,
            duration_ms,
            "request"
        );
    }
}

/// The path and query of `uri`, with the values of parameters not in [`LOGGED_PARAMETERS`]
/// replaced by `…`.
fn loggable_path(uri: &Uri) -> String {
    let mut out = uri.path().to_owned();
    let Some(query) = uri.query() else {
        return out;
    };
    for (i, pair) in query.split('&').enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        match pair.split_once('=') {
            Some((name, value)) if LOGGED_PARAMETERS.contains(&name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(value);
            }
            Some((name, _)) => {
                out.push_str(name);
                out.push_str("=…");
            }
            None => out.push_str(pair),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_the_query_are_not_logged() {
        let path = |text: &str| loggable_path(&text.parse::<Uri>().unwrap_or_default());
        assert_eq!(path("/s/site:a/k"), "/s/site:a/k");
        assert_eq!(
            path("/s/site:a?prefix=p%2F&directories=true&cursor=Yg"),
            "/s/site:a?prefix=p%2F&directories=true&cursor=Yg"
        );
        let signed = path("/api/v1/blobs/s/site:a/k?expires=9&signature=deadbeef&flag");
        assert_eq!(
            signed,
            "/api/v1/blobs/s/site:a/k?expires=…&signature=…&flag"
        );
        assert!(!path("/x?token=hunter2&Signature=abc").contains("hunter2"));
    }
}
