//! `cargo xtask bench client`: the project's Rust client (`HttpStore`) against the official JS
//! client (`@netlify/blobs`, through `interop/bench/client.mjs`), both doing the same work
//! against one `blobs-emulator`: 1 KiB sets, then gets of keys written beforehand, with 1 and
//! 16 requests in flight.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use blobjobs_backends::HttpStore;
use blobjobs_backends::http::{BlobsContext, HttpConfig, Token};
use blobjobs_store_api::{BlobStore, SetOptions};
use bytes::Bytes;

use super::Ctx;
use super::load::Stats;
use super::markdown::sig;
use super::results::Unit;
use super::servers::{Node, SITE, Server};
use super::targets::CLIENT_WORKERS;

/// Distinct keys per worker; operations cycle through them (as in the JS script).
const KEYS_PER_WORKER: usize = 100;
/// The store both clients use (`site:client-bench` on the wire).
const STORE: &str = "client-bench";

/// Runs `set`s or `get`s on `workers` tasks sharing one client until `duration` has passed or
/// `max_ops` were done.
async fn phase(
    store: &Arc<dyn BlobStore>,
    set: bool,
    workers: usize,
    duration: Duration,
    max_ops: usize,
) -> Result<Stats> {
    let value = Bytes::from(vec![7u8; 1024]);
    let per_worker = (max_ops / workers).max(1);
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            for i in 0..per_worker {
                if Instant::now() >= deadline {
                    break;
                }
                let key = format!("rust/{w}/{}", i % KEYS_PER_WORKER);
                let start = Instant::now();
                let outcome = if set {
                    match store.set(&key, value.clone(), SetOptions::new()).await {
                        Ok(_) => Ok(()),
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    match store.get(&key).await {
                        Ok(Some(_)) => Ok(()),
                        Ok(None) => Err(format!("{key} is missing")),
                        Err(e) => Err(e.to_string()),
                    }
                };
                match outcome {
                    Ok(()) => {
                        stats.requests += 1;
                        stats.latencies.push(start.elapsed().as_nanos() as u64);
                    }
                    Err(e) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert(e);
                        if stats.errors >= 100 {
                            break;
                        }
                    }
                }
            }
            stats
        }));
    }
    let mut parts = Vec::new();
    for task in tasks {
        parts.push(task.await.context("a client task panicked")?);
    }
    Ok(Stats::merge(parts, started.elapsed()))
}

/// Writes every key the get phase reads, untimed, however far the set phase got.
async fn prefill(store: &Arc<dyn BlobStore>, workers: usize) -> Result<()> {
    let value = Bytes::from(vec![7u8; 1024]);
    for w in 0..workers {
        for i in 0..KEYS_PER_WORKER {
            store
                .set(&format!("rust/{w}/{i}"), value.clone(), SetOptions::new())
                .await
                .context("writing the keys of the get phase")?;
        }
    }
    Ok(())
}

fn record(ctx: &mut Ctx, client: &str, op: &str, workers: usize, rate: f64, p50: f64, p99: f64) {
    let prefix = format!("client/{client}/{op}/{workers}");
    ctx.results
        .set(format!("{prefix}/rate"), rate, Unit::PerSec);
    ctx.results.set(format!("{prefix}/p50"), p50, Unit::Ms);
    ctx.results.set(format!("{prefix}/p99"), p99, Unit::Ms);
    ctx.progress.step(&format!(
        "client: {client} {op} x{workers}: {}/s  p50 {} ms  p99 {} ms",
        sig(rate),
        sig(p50),
        sig(p99)
    ));
}

/// The progress steps of the comparison: get and set at each concurrency level, for the Rust
/// client and, with `node`, the JS client.
pub fn steps(node: bool) -> usize {
    let clients = if node { 2 } else { 1 };
    clients * 2 * CLIENT_WORKERS.len()
}

/// Runs the comparison against an in-memory emulator started from `emulator`.
pub async fn run(ctx: &mut Ctx, emulator: &std::path::Path, node: Option<&Node>) -> Result<()> {
    let token = crate::random_token()?;
    let server = Server::emulator(emulator, super::servers::Storage::Memory, &token).await?;
    let url = server.url();
    let duration = ctx.point_duration();
    let max_ops = super::MAX_REQUESTS_PER_POINT;

    let config = HttpConfig::edge(url.as_str(), SITE, Token::new(token.as_str()), STORE)?;
    let store: Arc<dyn BlobStore> = Arc::new(HttpStore::new(config)?);
    for workers in CLIENT_WORKERS {
        for (set, op) in [(true, "set"), (false, "get")] {
            if !set {
                prefill(&store, workers).await?;
            }
            let stats = phase(&store, set, workers, duration, max_ops).await?;
            if stats.errors > 0 {
                bail!(
                    "the Rust client had {} failed {op}s: {}",
                    stats.errors,
                    stats.first_error.unwrap_or_default()
                );
            }
            let (rate, p50, p99) = (
                stats.rate(),
                stats.percentile_ms(0.5),
                stats.percentile_ms(0.99),
            );
            record(ctx, "rust", op, workers, rate, p50, p99);
        }
    }

    if let Some(node) = node {
        let context = BlobsContext {
            site_id: Some(SITE.to_owned()),
            token: Some(Token::new(token.as_str())),
            edge_url: Some(url.clone()),
            uncached_edge_url: Some(url.clone()),
            ..BlobsContext::default()
        };
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(std::path::Path::new("bench").join("client.mjs"))
            .arg(duration.as_secs_f64().to_string())
            .arg(max_ops.to_string())
            .args(CLIENT_WORKERS.map(|w| w.to_string()))
            .env("NETLIFY_BLOBS_CONTEXT", context.encode())
            .current_dir(&node.interop)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let phases = 2 * CLIENT_WORKERS.len() as u32;
        let limit = duration * phases + Duration::from_secs(60);
        let output = tokio::time::timeout(limit, cmd.output())
            .await
            .context("the JS client benchmark did not finish in time")?
            .context("cannot start node")?;
        if !output.status.success() {
            bail!("the JS client benchmark failed ({})", output.status);
        }
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let (Some(op), Some(workers), Some(ops), Some(seconds)) = (
                v["op"].as_str(),
                v["workers"].as_u64(),
                v["ops"].as_f64(),
                v["seconds"].as_f64(),
            ) else {
                continue;
            };
            if v["errors"].as_u64().unwrap_or(0) > 0 {
                bail!("the JS client had {} failed {op}s", v["errors"]);
            }
            let p50 = v["p50_ms"].as_f64().unwrap_or(f64::NAN);
            let p99 = v["p99_ms"].as_f64().unwrap_or(f64::NAN);
            record(
                ctx,
                "js",
                op,
                workers as usize,
                ops / seconds.max(1e-9),
                p50,
                p99,
            );
        }
    }
    ctx.leftovers.extend(server.stop().await);
    Ok(())
}
