//! The HTTP load generator of `cargo xtask bench http`: keep-alive HTTP/1.1 connections on
//! hyper, each sending one request after another for a bounded time and count, recording
//! every latency. Loopback only: the target is always a server this task started.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// Errors tolerated in one timed run before it is abandoned; a server that keeps failing is
/// broken, not slow.
const MAX_ERRORS: u64 = 100;

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the load goes: a Netlify Blobs server on loopback.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's address (always 127.0.0.1).
    pub addr: SocketAddr,
    /// The bearer token it was started with.
    pub token: String,
    /// The site ID in every path.
    pub site: String,
}

impl Target {
    /// The path of `key` in `store` (keys here are plain ASCII, no encoding needed).
    pub fn key_path(&self, store: &str, key: &str) -> String {
        format!("/{}/{store}/{key}", self.site)
    }

    /// The path that lists `store`, continuing from `cursor`.
    pub fn list_path(&self, store: &str, cursor: Option<&str>) -> String {
        match cursor {
            Some(cursor) => format!("/{}/{store}?cursor={}", self.site, encode_query(cursor)),
            None => format!("/{}/{store}", self.site),
        }
    }
}

/// Percent-encodes everything but unreserved characters.
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    host: HeaderValue,
    authorization: HeaderValue,
}

impl Conn {
    /// Connects to `target`.
    pub async fn open(target: &Target) -> Result<Conn> {
        let stream = tokio::net::TcpStream::connect(target.addr)
            .await
            .with_context(|| format!("cannot connect to {}", target.addr))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Conn {
            sender,
            host: HeaderValue::from_str(&target.addr.to_string())?,
            authorization: HeaderValue::from_str(&format!("Bearer {}", target.token))?,
        })
    }

    /// Sends one request and reads the whole response, within [`REQUEST_TIMEOUT`].
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, Bytes)> {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.host.clone())
            .header(header::AUTHORIZATION, self.authorization.clone())
            .body(Full::new(body))?;
        let exchange = async {
            self.sender.ready().await?;
            let response = self.sender.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .context("no answer within the request timeout")?
    }
}

/// The outcome of one timed run.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Successful requests.
    pub requests: u64,
    /// Failed requests (transport errors and unexpected statuses).
    pub errors: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of every successful request, in nanoseconds, sorted.
    pub latencies: Vec<u64>,
    /// The first failure, for the log.
    pub first_error: Option<String>,
}

impl Stats {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The latency at quantile `q` (0 to 1), in milliseconds.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        percentile(&self.latencies, q) as f64 / 1e6
    }

    /// Folds the results of connections (or client tasks) that ran side by side into one,
    /// taking `elapsed` as the wall time of them all.
    pub(super) fn merge(parts: Vec<Stats>, elapsed: Duration) -> Stats {
        let mut all = Stats {
            elapsed,
            ..Stats::default()
        };
        for part in parts {
            all.requests += part.requests;
            all.errors += part.errors;
            all.latencies.extend(part.latencies);
            if all.first_error.is_none() {
                all.first_error = part.first_error;
            }
        }
        all.latencies.sort_unstable();
        all
    }
}

/// The value at quantile `q` of sorted `values` (nearest rank), 0 if empty.
pub fn percentile(values: &[u64], q: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    let rank = ((values.len() as f64 - 1.0) * q.clamp(0.0, 1.0)).round() as usize;
    values[rank.min(values.len() - 1)]
}

/// What each request of a run is, given the connection number and the request number.
pub type MakeRequest = fn(&Target, usize, usize) -> (Method, String, Bytes);

/// A timed run: `connections` keep-alive connections, each sending `make(c, i)` one after
/// another until `duration` has passed or it has sent its share of `max_requests`.
pub async fn run(
    target: &Target,
    connections: usize,
    duration: Duration,
    max_requests: usize,
    make: MakeRequest,
) -> Result<Stats> {
    let per_connection = (max_requests / connections.max(1)).max(1);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            connection_loop(&target, c, deadline, per_connection, make).await
        }));
    }
    let mut parts = Vec::with_capacity(connections);
    for task in tasks {
        parts.push(task.await.context("a load connection panicked")??);
    }
    let stats = Stats::merge(parts, started.elapsed());
    if stats.requests == 0 {
        bail!(
            "no request succeeded ({})",
            stats.first_error.as_deref().unwrap_or("no error recorded")
        );
    }
    Ok(stats)
}

async fn connection_loop(
    target: &Target,
    c: usize,
    deadline: Instant,
    max: usize,
    make: MakeRequest,
) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut conn = Conn::open(target).await?;
    let mut i = 0;
    while i < max && Instant::now() < deadline {
        let (method, path, body) = make(target, c, i);
        i += 1;
        let start = Instant::now();
        let failure = match conn.send(method.clone(), &path, body).await {
            Ok((status, _)) if status.is_success() => {
                stats.requests += 1;
                stats.latencies.push(start.elapsed().as_nanos() as u64);
                continue;
            }
            Ok((status, _)) => format!("{method} {path}: {status}"),
            Err(e) => {
                // The connection may be gone (a server closes idle ones): start a new one.
                conn = Conn::open(target).await?;
                format!("{method} {path}: {e:#}")
            }
        };
        stats.errors += 1;
        stats.first_error.get_or_insert(failure);
        if stats.errors >= MAX_ERRORS {
            break;
        }
    }
    Ok(stats)
}

/// Writes `count` keys `item/00000`… with a small value into `store` over 16 connections.
pub async fn fill(target: &Target, store: &str, count: usize) -> Result<()> {
    const CONNECTIONS: usize = 16;
    let mut tasks = Vec::new();
    for c in 0..CONNECTIONS {
        let target = target.clone();
        let store = store.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(&target).await?;
            for i in (c..count).step_by(CONNECTIONS) {
                let path = target.key_path(&store, &format!("item/{i:05}"));
                let (status, _) = conn
                    .send(Method::PUT, &path, Bytes::from_static(b"listed value"))
                    .await?;
                if !status.is_success() {
                    bail!("PUT {path}: {status}");
                }
            }
            Ok(())
        }));
    }
    for task in tasks {
        task.await.context("a fill connection panicked")??;
    }
    Ok(())
}

/// Lists `store` to the end on one fresh connection, following cursors; returns the keys.
pub async fn list_all(target: &Target, store: &str) -> Result<usize> {
    let mut conn = Conn::open(target).await?;
    let mut count = 0;
    let mut cursor: Option<String> = None;
    // A bound on pages, whatever the server answers.
    for _ in 0..100_000 {
        let path = target.list_path(store, cursor.as_deref());
        let (status, body) = conn.send(Method::GET, &path, Bytes::new()).await?;
        if status != StatusCode::OK {
            bail!("list {path}: {status}");
        }
        let page: serde_json::Value =
            serde_json::from_slice(&body).context("the listing is not JSON")?;
        count += page["blobs"].as_array().map_or(0, Vec::len);
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return Ok(count);
        }
    }
    bail!("the listing of {store} did not end")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), 51);
        assert_eq!(percentile(&values, 0.99), 99);
        assert_eq!(percentile(&values, 1.0), 100);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(percentile(&[7], 0.99), 7);
    }

    #[test]
    fn cursors_are_percent_encoded() {
        let target = Target {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            token: "t".into(),
            site: "s".into(),
        };
        assert_eq!(target.list_path("site:x", None), "/s/site:x");
        assert_eq!(
            target.list_path("site:x", Some("a/b+c=")),
            "/s/site:x?cursor=a%2Fb%2Bc%3D"
        );
        assert_eq!(target.key_path("site:x", "k1"), "/s/site:x/k1");
    }

    #[test]
    fn merged_stats_sort_latencies_and_count_everything() {
        let a = Stats {
            requests: 2,
            errors: 1,
            latencies: vec![5_000_000, 1_000_000],
            first_error: Some("boom".into()),
            ..Stats::default()
        };
        let b = Stats {
            requests: 1,
            latencies: vec![3_000_000],
            ..Stats::default()
        };
        let all = Stats::merge(vec![a, b], Duration::from_secs(1));
        assert_eq!(all.requests, 3);
        assert_eq!(all.errors, 1);
        assert_eq!(all.latencies, vec![1_000_000, 3_000_000, 5_000_000]);
        assert!((all.rate() - 3.0).abs() < 1e-9);
        assert!((all.percentile_ms(0.5) - 3.0).abs() < 1e-9);
        assert_eq!(all.first_error.as_deref(), Some("boom"));
    }
}
