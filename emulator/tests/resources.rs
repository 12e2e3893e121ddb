//! Every resource a client can make the emulator hold is bounded: connections (idle ones give
//! way under a low file limit), time (a client that stops reading its response loses the
//! connection), and memory (listing a large store stays within the listing cache's budget, and
//! a mixed load leaves resident memory flat).
//!
//! The memory tests are bounded for the default run (about 20 s together on two cores): 50,000
//! keys and a 12-second soak. `BLOBS_EMULATOR_FULL=1` runs the full versions: 200,000 keys
//! and a 3-minute soak, printing the figures (run with `--release` for speed):
//!
//! ```text
//! BLOBS_EMULATOR_FULL=1 cargo test --release -p blobjobs-emulator --test resources -- --nocapture
//! ```
//!
//! `BLOBS_EMULATOR_RSS_KEYS` and `BLOBS_EMULATOR_SOAK_SECS` set either size alone.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use blobjobs_backends::{FileOptions, FileStore};
use blobjobs_store_api::{BlobStore as _, SetOptions};
use bytes::Bytes;
use common::TOKEN;
use common::binary::Emulator;
use common::raw::{Ending, Outcome, exchange, request};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const MIB: u64 = 1024 * 1024;

fn full() -> bool {
    std::env::var("BLOBS_EMULATOR_FULL").is_ok_and(|v| v == "1")
}

fn env_number(name: &str, default: u64, full_size: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if full() { full_size } else { default })
}

async fn health(addr: std::net::SocketAddr) -> Outcome {
    let req = request("GET", "/.well-known/blobs-emulator/health", &[], b"");
    exchange(addr, &req, Ending::KeepOpen, Duration::from_secs(60)).await
}

/// 300 connections that never send a byte, against a server that may open only 256 files and
/// waits 120 s for headers: the health route still answers at once, because idle connections
/// give way to new ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_give_way_under_a_low_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Emulator::start_with(
        Some("ulimit -n 256"),
        &["--dir", data, "--no-fsync"],
        &[("BLOBS_EMULATOR_HEADER_TIMEOUT", "120")],
    )
    .await;
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // Let the server take in what it can.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let answer = health(server.addr).await;
    let took = started.elapsed();
    println!("health with 300 idle connections and ulimit -n 256: {answer:?} after {took:?}");
    assert_eq!(answer.status(), Some(200), "{answer:?}");
    assert!(took < Duration::from_secs(10), "health took {took:?}");
    // The server works on, within its limit: a write and a read.
    let key = "/site-1/site:idle/k";
    let bearer = format!("Bearer {TOKEN}");
    let put = request("PUT", key, &[("authorization", &bearer)], b"v");
    let got = exchange(server.addr, &put, Ending::KeepOpen, Duration::from_secs(30)).await;
    assert_eq!(got.status(), Some(200), "{got:?}");
    let files = std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .count();
    assert!(files <= 256, "{files} files open");
    // Idle connections were closed to make room: reading them ends.
    let mut closed = 0;
    for mut socket in idle {
        let mut byte = [0u8; 1];
        if let Ok(Ok(0)) =
            tokio::time::timeout(Duration::from_millis(20), socket.read(&mut byte)).await
        {
            closed += 1;
        }
    }
    assert!(
        closed >= 300 - 128,
        "only {closed} idle connections were closed"
    );
    server.kill().await;
}

/// A client that asks for a large value and never reads it loses the connection after the idle
/// timeout, rather than holding it (and the value's file) forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_loses_its_connection() {
    let server = common::file_server(|c| c.idle_timeout(Duration::from_secs(1))).await;
    let size = 16 * MIB as usize;
    let key = "/site-1/site:stall/big";
    assert_eq!(server.put(key, vec![7u8; size]).await.status, 200);
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let get = request(
        "GET",
        key,
        &[("authorization", &format!("Bearer {TOKEN}"))],
        b"",
    );
    socket.write_all(&get).await.unwrap();
    // Read nothing while the server's writes stall, for longer than its idle timeout.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut received = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let read_all = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
        }
    })
    .await;
    assert!(read_all.is_ok(), "the connection stayed open");
    assert!(
        received < size,
        "the whole value arrived ({received} bytes): nothing was cut"
    );
    server.stop().await.unwrap();
}

/// Makes `count` keys in the catalog store `site-1/site:big` under `root`, as the emulator's
/// catalog names it: a blob written through the file backend, then hard links to its file
/// under the next keys' paths (a valid blob file each, made in microseconds), a new blob every
/// 50,000 keys (ext4 allows 65,000 links to a file).
async fn fill_store(root: &std::path::Path, count: u64) {
    let store = FileStore::open(root, "site-1/site:big", FileOptions { fsync: false }).unwrap();
    let key = |i: u64| format!("dir{:02}/key-{i:07}", i % 20);
    let mut first = std::path::PathBuf::new();
    for i in 0..count {
        if i % 50_000 == 0 {
            store
                .set(&key(i), Bytes::from_static(b"v"), SetOptions::new())
                .await
                .unwrap();
            first = store.key_path(&key(i)).unwrap();
        } else {
            std::fs::hard_link(&first, store.key_path(&key(i)).unwrap()).unwrap();
        }
    }
}

/// Lists the whole store page by page through the emulator; returns how many keys it saw.
async fn list_all(server: &Emulator, directories: bool) -> u64 {
    let bearer = format!("Bearer {TOKEN}");
    let mut cursor: Option<String> = None;
    let mut seen = 0u64;
    loop {
        let mut path = format!("/site-1/site:big?directories={directories}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let req = request("GET", &path, &[("authorization", &bearer)], b"");
        let Outcome::Response(answer) = exchange(
            server.addr,
            &req,
            Ending::KeepOpen,
            Duration::from_secs(120),
        )
        .await
        else {
            panic!("no listing page");
        };
        assert_eq!(answer.status, 200);
        let page: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
        seen += page["blobs"].as_array().unwrap().len() as u64;
        seen += page["directories"].as_array().unwrap().len() as u64;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return seen,
        }
    }
}

/// Listing a store far larger than the listing cache's budget, to its end, leaves the server's
/// resident memory within the budget plus a small constant: the cache stays in budget, and the
/// walks that do not fit keep only a page in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_a_large_store_stays_within_the_cache_budget() {
    let keys = env_number("BLOBS_EMULATOR_RSS_KEYS", 50_000, 200_000);
    // The full run lists 200,000 keys with the default budget, which holds them (the listing
    // is served from the cache); the default run lists 50,000 with a budget of 1 MiB, which
    // does not (every page is a walk that keeps only that page).
    let budget = if full() {
        blobjobs_emulator::config::DEFAULT_LIST_CACHE_BYTES as u64
    } else {
        MIB
    };
    let page_size = if full() { "1000" } else { "5000" };
    // Allocator and runtime slack: memory the allocator keeps after a page is sent, thread
    // stacks touched.
    let slack = 8 * MIB;
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    fill_store(dir.path(), keys).await;
    let filled = started.elapsed();
    let budget_flag = budget.to_string();
    let data = dir.path().to_str().unwrap();
    let server = Emulator::start_with(
        None,
        &["--dir", data, "--no-fsync"],
        // Large pages in the default run: fewer walks of the whole store, each a few hundred
        // milliseconds in a debug build.
        &[
            ("BLOBS_EMULATOR_LIST_CACHE_BYTES", &budget_flag),
            ("BLOBS_EMULATOR_LIST_PAGE_SIZE", page_size),
        ],
    )
    .await;
    assert_eq!(health(server.addr).await.status(), Some(200));
    let before = server.rss();
    let listed = list_all(&server, false).await;
    assert_eq!(listed, keys);
    // Directories mode groups the keys under 20 directories.
    assert_eq!(list_all(&server, true).await, 20);
    let after = server.rss();
    println!(
        "listing {keys} keys (written in {filled:?}) with a {} MiB cache budget: RSS {:.1} MiB before, {:.1} MiB after, {:.1} MiB more",
        budget / MIB,
        before as f64 / MIB as f64,
        after as f64 / MIB as f64,
        after.saturating_sub(before) as f64 / MIB as f64
    );
    assert!(
        after <= before + budget + slack,
        "RSS grew by {} bytes, over the {budget}-byte budget and {slack} bytes of slack",
        after.saturating_sub(before)
    );
    server.kill().await;
}

/// A mixed load (writes of many sizes, reads, listings, deletes, refused requests, aborted
/// uploads, idle connections) for a while: resident memory stops growing once warm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_flat_under_a_mixed_load() {
    let seconds = env_number("BLOBS_EMULATOR_SOAK_SECS", 12, 180);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let server = Emulator::start(&["--dir", data, "--no-fsync", "--max-blob-size", "1MiB"]).await;
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for worker in 0..4u64 {
        let (stop, requests) = (Arc::clone(&stop), Arc::clone(&requests));
        load.push(tokio::spawn(async move {
            let bearer = format!("Bearer {TOKEN}");
            let auth = [("authorization", bearer.as_str())];
            let mut n = worker;
            while !stop.load(Ordering::Relaxed) {
                n += 4;
                // A bounded key space: the store's size stays bounded too.
                let key = format!("/site-1/site:soak{}/d{}/k{}", n % 3, n % 7, n % 500);
                let req = match n % 10 {
                    0..=2 => {
                        let size = [10usize, 1000, 70_000, 300_000][(n / 10 % 4) as usize];
                        request("PUT", &key, &auth, &vec![b's'; size])
                    }
                    3..=5 => request("GET", &key, &auth, b""),
                    6 => request(
                        "GET",
                        &format!("/site-1/site:soak{}?directories={}", n % 3, n % 2 == 0),
                        &auth,
                        b"",
                    ),
                    7 => request("DELETE", &key, &auth, b""),
                    8 => request("PUT", &key, &auth, &vec![b'x'; 2 << 20]),
                    _ => format!(
                        "PUT {key} HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n"
                    )
                    .into_bytes(),
                };
                let outcome = exchange(addr, &req, Ending::KeepOpen, Duration::from_secs(30)).await;
                assert!(outcome.status().is_some_and(|s| s < 500), "{outcome:?}");
                requests.fetch_add(1, Ordering::Relaxed);
                if n % 50 == 0 {
                    // An idle connection, and an upload cut off in the middle.
                    let idle = TcpStream::connect(addr).await.unwrap();
                    let mut cut = TcpStream::connect(addr).await.unwrap();
                    let head = format!(
                        "PUT {key} HTTP/1.1\r\nhost: x\r\n{}: {}\r\ncontent-length: 500000\r\n\r\n",
                        auth[0].0, auth[0].1
                    );
                    let _ = cut.write_all(head.as_bytes()).await;
                    let _ = cut.write_all(&[b'c'; 100_000]).await;
                    drop((idle, cut));
                }
            }
        }));
    }
    let mut samples = Vec::new();
    let started = Instant::now();
    let every = Duration::from_secs(1);
    while started.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(every).await;
        samples.push((started.elapsed().as_secs(), server.rss()));
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let curve: Vec<String> = samples
        .iter()
        .step_by(if seconds > 60 { 10 } else { 1 })
        .map(|(t, rss)| format!("{t}s {:.1}", *rss as f64 / MIB as f64))
        .collect();
    println!(
        "soak of {seconds} s, {} requests: RSS in MiB {}",
        requests.load(Ordering::Relaxed),
        curve.join(", ")
    );
    // Warm-up is the first third; the last third may not grow past the middle third's peak by
    // more than a little.
    let third = samples.len() / 3;
    let middle = samples[third..2 * third].iter().map(|s| s.1).max().unwrap();
    let last = samples[2 * third..].iter().map(|s| s.1).max().unwrap();
    assert!(
        last <= middle + middle / 20 + 2 * MIB,
        "RSS still grows: {} MiB at most in the middle third, {} MiB in the last",
        middle / MIB,
        last / MIB
    );
    server.kill().await;
}
