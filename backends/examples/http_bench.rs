//! Throughput of `HttpStore` against a running Netlify Blobs server (normally the emulator),
//! side by side with the official JavaScript client doing the same operations.
//!
//! ```text
//! cargo run --release -p blobjobs-emulator -- serve --in-memory --token devtoken --port 4733 &
//! NETLIFY_BLOBS_TOKEN=devtoken \
//!   cargo run --release -p blobjobs-backends --example http_bench -- --url http://127.0.0.1:4733 --node
//! ```
//!
//! Each run does 1 KiB `set`s, then `get`s of the keys written, for `--seconds` at 1 and at
//! 16 concurrent workers, and prints operations per second. `--node` also runs the official
//! `@netlify/blobs` client from the repository's `interop/` folder (installed with `npm ci`)
//! with the same workload, through `NETLIFY_BLOBS_CONTEXT`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blobjobs_backends::http::{BlobsContext, Token};
use blobjobs_store_api::{BlobStore, SetOptions};
use bytes::Bytes;

/// Distinct keys per worker; operations cycle through them.
const KEYS_PER_WORKER: usize = 100;

/// The official client's side of the benchmark, run by `node` in `interop/`.
const NODE_SCRIPT: &str = r"
import { getStore } from '@netlify/blobs';
const [seconds, ...levels] = process.argv.slice(1).map(Number);
const store = getStore({ name: 'bench', consistency: 'strong' });
const value = new Uint8Array(1024).fill(7);
async function phase(op, workers) {
  const end = Date.now() + seconds * 1000;
  let done = 0;
  await Promise.all(Array.from({ length: workers }, async (_, w) => {
    for (let i = 0; Date.now() < end; i++) {
      const key = `js/${w}/${i % 100}`;
      if (op === 'set') await store.set(key, value); else await store.get(key, { type: 'arrayBuffer' });
      done++;
    }
  }));
  console.log(`js   ${op} x${workers}: ${(done / seconds).toFixed(0)} ops/s`);
}
for (const workers of levels) { await phase('set', workers); await phase('get', workers); }
";

struct Args {
    url: String,
    seconds: f64,
    node: bool,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        url: String::new(),
        seconds: 3.0,
        node: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--url" => args.url = it.next().ok_or("--url needs a value")?,
            "--seconds" => {
                let s = it.next().ok_or("--seconds needs a value")?;
                args.seconds = s.parse().map_err(|_| "--seconds takes a number")?;
            }
            "--node" => args.node = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.url.is_empty() {
        return Err("usage: http_bench --url http://HOST:PORT [--seconds S] [--node]".into());
    }
    Ok(args)
}

/// Runs `set`s or `get`s on `workers` tasks for `duration`; returns successful operations
/// per second and the number of failed ones.
async fn phase(
    store: &Arc<dyn BlobStore>,
    set: bool,
    workers: usize,
    duration: Duration,
) -> (f64, u64) {
    let value = Bytes::from(vec![7u8; 1024]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let store = store.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            let (mut done, mut failed) = (0u64, 0u64);
            let mut i = 0usize;
            while started.elapsed() < duration {
                let key = format!("rust/{w}/{}", i % KEYS_PER_WORKER);
                let ok = if set {
                    store
                        .set(&key, value.clone(), SetOptions::new())
                        .await
                        .is_ok()
                } else {
                    store.get(&key).await.is_ok()
                };
                if ok {
                    done += 1;
                } else {
                    failed += 1;
                }
                i += 1;
            }
            (done, failed)
        }));
    }
    let (mut total, mut failed) = (0, 0);
    for task in tasks {
        let (d, f) = task.await.unwrap_or((0, 1));
        total += d;
        failed += f;
    }
    (total as f64 / started.elapsed().as_secs_f64(), failed)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse()?;
    let store = blobjobs_backends::open_store(&args.url, "bench")?;
    let duration = Duration::from_secs_f64(args.seconds);
    for workers in [1, 16] {
        for set in [true, false] {
            let (rate, failed) = phase(&store, set, workers, duration).await;
            let op = if set { "set" } else { "get" };
            println!("rust {op} x{workers}: {rate:.0} ops/s");
            if failed > 0 {
                return Err(format!("{failed} {op}s failed; is the url and token right?").into());
            }
        }
    }
    if args.node {
        let token = std::env::var(blobjobs_backends::open::TOKEN_ENV)?;
        let site = std::env::var(blobjobs_backends::open::SITE_ID_ENV)
            .unwrap_or_else(|_| blobjobs_backends::open::DEFAULT_SITE_ID.to_owned());
        let context = BlobsContext {
            site_id: Some(site),
            token: Some(Token::new(token)),
            edge_url: Some(args.url.clone()),
            uncached_edge_url: Some(args.url.clone()),
            ..BlobsContext::default()
        };
        let interop = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../interop");
        let status = Command::new("node")
            .args(["--input-type=module", "-e", NODE_SCRIPT])
            .arg(args.seconds.to_string())
            .args(["1", "16"])
            .env("NETLIFY_BLOBS_CONTEXT", context.encode())
            .current_dir(interop)
            .status()?;
        if !status.success() {
            return Err("the node benchmark failed".into());
        }
    }
    Ok(())
}
