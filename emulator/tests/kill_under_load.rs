//! Every write the emulator acknowledged survives SIGKILL under concurrent write load, cycle
//! after cycle, with fsync and without; and each restart starts clean, with the temporary files
//! of the writes the kill cut short swept away.
//!
//! 20 cycles by default (about 15 s on two cores); `BLOBS_EMULATOR_KILL_CYCLES` sets another
//! number, and `BLOBS_EMULATOR_FULL=1` runs 100:
//!
//! ```text
//! BLOBS_EMULATOR_KILL_CYCLES=100 cargo test -p blobjobs-emulator --test kill_under_load -- --nocapture
//! ```
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::TOKEN;
use common::binary::Emulator;
use common::raw::{Ending, Outcome, exchange, request};

/// Concurrent writers per cycle.
const WRITERS: usize = 4;

fn cycles() -> usize {
    let full = std::env::var("BLOBS_EMULATOR_FULL").is_ok_and(|v| v == "1");
    std::env::var("BLOBS_EMULATOR_KILL_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if full { 100 } else { 20 })
}

/// The value written under `key`: its length and bytes depend on the key, and about one in
/// four is over 64 KiB, so that both the whole and the streamed write paths are killed.
fn value_for(key: &str) -> Vec<u8> {
    let seed = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let len = if seed % 4 == 0 {
        64 * 1024 + (seed % (192 * 1024)) as usize
    } else {
        (seed % 4000) as usize
    };
    (0..len)
        .map(|i| (seed >> (i % 56)) as u8 ^ i as u8)
        .collect()
}

fn temp_files(dir: &Path) -> Vec<String> {
    blobjobs_test_support::files_under(dir)
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_string_lossy().into_owned();
            name.starts_with(".tmp").then_some(name)
        })
        .collect()
}

async fn send(server: &Emulator, method: &str, path: &str, body: &[u8]) -> Outcome {
    let bearer = format!("Bearer {TOKEN}");
    let req = request(method, path, &[("authorization", &bearer)], body);
    exchange(server.addr, &req, Ending::KeepOpen, Duration::from_secs(60)).await
}

/// Reads back every acknowledged key and checks its bytes.
async fn check_acked(server: &Emulator, acked: &[String]) {
    for key in acked {
        match send(server, "GET", &format!("/site-1/site:kill/{key}"), b"").await {
            Outcome::Response(answer) => {
                assert_eq!(answer.status, 200, "acknowledged key {key} is gone");
                assert!(
                    answer.body == value_for(key),
                    "acknowledged key {key} differs"
                );
            }
            other => panic!("reading {key}: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_under_load() {
    let cycles = cycles();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let started = Instant::now();
    let mut acked_total: Vec<String> = Vec::new();
    let mut cut_short = 0usize;
    let mut last_acked: Vec<String> = Vec::new();
    for cycle in 0..=cycles {
        let fsync = cycle % 2 == 0;
        let mut args = vec!["--dir", data.as_str()];
        if !fsync {
            args.push("--no-fsync");
        }
        let server = Emulator::start(&args).await;
        // The previous emulator died mid-write; this one swept what those writes left.
        let temps = temp_files(dir.path());
        assert!(
            temps.is_empty(),
            "cycle {cycle}: temporary files left after the restart: {temps:?}"
        );
        check_acked(&server, &last_acked).await;
        if cycle == cycles {
            // The last start only checks: every key acknowledged in any cycle is there, whole.
            check_acked(&server, &acked_total).await;
            server.kill().await;
            break;
        }

        let acked = Arc::new(Mutex::new(Vec::new()));
        let server = Arc::new(server);
        let mut writers = Vec::new();
        for w in 0..WRITERS {
            let (server, acked) = (Arc::clone(&server), Arc::clone(&acked));
            writers.push(tokio::spawn(async move {
                for i in 0.. {
                    let key = format!("c{cycle:03}/w{w}/{i:05}");
                    let path = format!("/site-1/site:kill/{key}");
                    match send(&server, "PUT", &path, &value_for(&key)).await {
                        Outcome::Response(answer) if answer.status == 200 => {
                            acked.lock().unwrap().push(key);
                        }
                        // The server is gone: this write was in flight.
                        Outcome::Closed | Outcome::Reset | Outcome::Hang | Outcome::Refused => {
                            return true;
                        }
                        Outcome::Response(answer) => panic!("{path}: {answer:?}"),
                    }
                }
                false
            }));
        }
        // Let the writers get going, then kill the server in the middle of their writes.
        let run = Duration::from_millis(150 + (cycle as u64 * 37) % 250);
        tokio::time::sleep(run).await;
        // SIGKILL: no destructor, no flush, no cleanup runs.
        let pid = rustix::process::Pid::from_raw(server.pid() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
        for writer in writers {
            if writer.await.unwrap() {
                cut_short += 1;
            }
        }
        drop(server);
        last_acked = std::mem::take(&mut *acked.lock().unwrap());
        assert!(
            !last_acked.is_empty(),
            "cycle {cycle}: nothing was acknowledged"
        );
        acked_total.extend(last_acked.iter().cloned());
    }
    println!(
        "{cycles} SIGKILL cycles in {:?}: {} acknowledged writes all kept, {cut_short} writes cut short",
        started.elapsed(),
        acked_total.len()
    );
}
