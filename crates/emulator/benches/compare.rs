//! Side-by-side load test: `blobs-emulator` against the official local server (`BlobsServer`
//! from `@netlify/blobs`), both as separate processes on 127.0.0.1.
//!
//! Run with `cargo bench -p emulator --bench compare`. The Node server is skipped, with a
//! message, when `node` or `interop/node_modules` is missing (`npm ci` in `interop/` installs
//! it). Scenarios: PUT and GET of 1 KiB values over 1 and 16 keep-alive connections, then
//! listing a store of 10,000 keys. `BENCH_SECONDS` sets the length of each timed run
//! (default 3).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncBufReadExt as _;
use tokio::process::{Child, Command};

const TOKEN: &str = "bench-token";
const VALUE_SIZE: usize = 1024;
/// Distinct keys that the GET and PUT runs cycle through.
const KEYS: usize = 1000;
const LIST_KEYS: usize = 10_000;
/// An upper bound on the requests of one timed run, whatever its duration.
const MAX_REQUESTS: usize = 2_000_000;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

struct Server {
    name: String,
    addr: SocketAddr,
    child: Child,
}

impl Server {
    fn peak_rss_mib(&self) -> Option<f64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib / 1024.0)
    }
}

/// The first line a child prints.
async fn first_line(child: &mut Child) -> BenchResult<String> {
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await??
        .ok_or("the server exited before printing its address")?;
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(line)
}

async fn start_emulator(dir: &Path, fsync: bool) -> BenchResult<Server> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_blobs-emulator"));
    cmd.args(["serve", "--port", "0", "--token", TOKEN, "--quiet"])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    if !fsync {
        cmd.arg("--no-fsync");
    }
    let mut child = cmd.spawn()?;
    let line = first_line(&mut child).await?;
    let encoded = line
        .strip_prefix("export NETLIFY_BLOBS_CONTEXT=")
        .ok_or("unexpected banner")?;
    use base64::Engine as _;
    let json = base64::engine::general_purpose::STANDARD.decode(encoded.trim())?;
    let context: serde_json::Value = serde_json::from_slice(&json)?;
    let url = context["edgeURL"].as_str().ok_or("no edgeURL")?;
    let addr = url.trim_start_matches("http://").parse()?;
    let name = format!(
        "blobs-emulator (fsync {})",
        if fsync { "on" } else { "off" }
    );
    Ok(Server { name, addr, child })
}

async fn start_node(dir: &Path) -> BenchResult<Option<Server>> {
    let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../interop");
    let node_ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !node_ok || !interop.join("node_modules/@netlify/blobs").exists() {
        println!("skipping BlobsServer: needs node and `npm ci` in interop/");
        return Ok(None);
    }
    let mut child = Command::new("node")
        .arg("bench-server.mjs")
        .arg(dir)
        .arg(TOKEN)
        .current_dir(&interop)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let port: u16 = first_line(&mut child).await?.trim().parse()?;
    Ok(Some(Server {
        name: "BlobsServer 11.1.1 (node)".to_owned(),
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        child,
    }))
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    async fn open(addr: SocketAddr) -> BenchResult<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok(Conn {
            sender,
            host: addr.to_string(),
        })
    }

    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Bytes,
    ) -> BenchResult<(StatusCode, Bytes)> {
        self.sender.ready().await?;
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host)
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Full::new(body))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

struct Stats {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn line(&mut self) -> String {
        self.latencies.sort();
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        };
        format!(
            "{:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
            self.requests as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3
        )
    }
}

/// Runs `connections` loops for `duration`, each sending `make(connection, i)` requests.
async fn load(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    method: &'static str,
    make: fn(usize, usize) -> (String, Bytes),
) -> BenchResult<Stats> {
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for c in 0..connections {
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            let mut latencies = Vec::new();
            let mut i = 0;
            while Instant::now() < deadline && i < MAX_REQUESTS / connections {
                let (path, body) = make(c, i);
                let t = Instant::now();
                let (status, _) = conn.send(method, &path, body).await?;
                latencies.push(t.elapsed());
                if !status.is_success() {
                    return Err(format!("{method} {path}: {status}").into());
                }
                i += 1;
            }
            BenchResult::Ok(latencies)
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    Ok(Stats {
        requests: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    })
}

fn value() -> Bytes {
    Bytes::from(vec![b'x'; VALUE_SIZE])
}

fn put_request(c: usize, i: usize) -> (String, Bytes) {
    (format!("/bench/site:kv/put-{c}-{}", i % KEYS), value())
}

fn get_request(c: usize, i: usize) -> (String, Bytes) {
    (
        format!("/bench/site:kv/k{}", (c * 7919 + i) % KEYS),
        Bytes::new(),
    )
}

/// Lists `store` to the end, following cursors; returns the number of keys.
async fn list_all(conn: &mut Conn, store: &str) -> BenchResult<usize> {
    let mut count = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!(
                "/bench/{store}?cursor={}",
                emulator::route::encode_query_value(c)
            ),
            None => format!("/bench/{store}"),
        };
        let (status, body) = conn.send("GET", &path, Bytes::new()).await?;
        if status != StatusCode::OK {
            return Err(format!("list: {status}").into());
        }
        let page: serde_json::Value = serde_json::from_slice(&body)?;
        count += page["blobs"].as_array().map_or(0, Vec::len);
        cursor = page["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            return Ok(count);
        }
    }
}

async fn bench(server: &Server, duration: Duration) -> BenchResult<()> {
    println!("\n== {} on {}", server.name, server.addr);
    // Seed the keys that GET reads.
    let mut conn = Conn::open(server.addr).await?;
    for i in 0..KEYS {
        conn.send("PUT", &format!("/bench/site:kv/k{i}"), value())
            .await?;
    }
    for connections in [1, 16] {
        let mut put = load(server.addr, connections, duration, "PUT", put_request).await?;
        println!("PUT 1 KiB, {connections:>2} conn: {}", put.line());
        let mut get = load(server.addr, connections, duration, "GET", get_request).await?;
        println!("GET 1 KiB, {connections:>2} conn: {}", get.line());
    }

    // 10,000 keys written over 16 connections, then listed whole.
    let seeded = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..16 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await?;
            for i in (c..LIST_KEYS).step_by(16) {
                conn.send(
                    "PUT",
                    &format!("/bench/site:list/item/{i:05}"),
                    Bytes::from_static(b"v"),
                )
                .await?;
            }
            BenchResult::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    println!("seed {LIST_KEYS} keys, 16 conn: {:.2?}", seeded.elapsed());
    // A fresh connection: the Node server closes connections idle for 5 s.
    let mut conn = Conn::open(server.addr).await?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let n = list_all(&mut conn, "site:list").await?;
        times.push(t.elapsed());
        if n != LIST_KEYS {
            return Err(format!("listed {n} keys, expected {LIST_KEYS}").into());
        }
    }
    times.sort();
    println!(
        "list {LIST_KEYS} keys (all pages): median {:.1?} of 5",
        times[2]
    );
    if let Some(mib) = server.peak_rss_mib() {
        println!("server peak resident memory: {mib:.1} MiB");
    }
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> BenchResult<()> {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let duration = Duration::from_secs(seconds.clamp(1, 60));
    for fsync in [false, true] {
        let dir = tempfile::tempdir()?;
        let server = start_emulator(dir.path(), fsync).await?;
        bench(&server, duration).await?;
    }
    let dir = tempfile::tempdir()?;
    if let Some(server) = start_node(dir.path()).await? {
        bench(&server, duration).await?;
    }
    Ok(())
}
