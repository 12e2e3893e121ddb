//! The file backend shared by real OS processes: reads across processes, compare-and-swap,
//! only-if-new writes and job claims racing between processes, and writes that survive a
//! SIGKILL.
//!
//! The child processes are this test binary run again by `blobjobs_test_support::child`,
//! whose entry test `child_process_entry` does nothing in a normal run.

#![allow(clippy::unwrap_used)] // Test helpers panic on failure, as tests do.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use blobjobs_backends::{FileOptions, FileStore};
use blobjobs_store_api::{
    BlobJobStore, BlobStore, ErrorKind, JobId, JobStore, ListOptions, NewJob, SetOptions,
};
use blobjobs_test_support::child::{self, say};
use bytes::Bytes;
use serde_json::json;

const ROOT: &str = "BACKENDS_FILE_TEST_ROOT";
const GO: &str = "BACKENDS_FILE_TEST_GO";
const ID: &str = "BACKENDS_FILE_TEST_ID";

const STORE: &str = "shared";
const CAS_TASKS: usize = 4;
const CAS_INCREMENTS: usize = 250;
const RACE_KEYS: usize = 40;
const RACE_JOBS: usize = 60;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open(root: &Path, fsync: bool) -> FileStore {
    FileStore::open(root, STORE, FileOptions { fsync }).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Parent side

/// Starts this test binary as a child process in `role`.
fn spawn(role: &str, root: &Path, go: &Path, id: &str) -> Child {
    let mut cmd = child::command(role);
    cmd.env(ROOT, root).env(GO, go).env(ID, id);
    cmd.spawn().unwrap()
}

/// Waits for a child to exit successfully within `limit` and returns the lines it printed
/// with [`say`] (the test harness prints its own lines too).
fn finish(child: Child, limit: Duration) -> Vec<String> {
    child::said(&child::finish(child, limit))
}

/// Runs two children in `role` at the same time, released together, and returns their output.
fn race(role: &str, root: &Path) -> Vec<Vec<String>> {
    let signals = tempfile::tempdir().unwrap();
    let go = signals.path().join("go");
    let children = [spawn(role, root, &go, "p0"), spawn(role, root, &go, "p1")];
    std::fs::write(&go, b"go").unwrap();
    children
        .into_iter()
        .map(|c| finish(c, Duration::from_secs(90)))
        .collect()
}

#[test]
fn keys_written_by_one_process_are_read_by_another() {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("unused");
    let out = finish(
        spawn("write", dir.path(), &go, "p0"),
        Duration::from_secs(60),
    );
    assert_eq!(out, ["wrote 50"]);
    let out = finish(
        spawn("read-then-write", dir.path(), &go, "p1"),
        Duration::from_secs(60),
    );
    assert_eq!(out, ["read 50"]);
    runtime().block_on(async {
        let store = open(dir.path(), true);
        for i in 0..50 {
            let blob = store.get(&format!("back/{i}")).await.unwrap().unwrap();
            assert_eq!(blob.value.as_ref(), format!("reply {i}").as_bytes());
        }
    });
}

#[test]
fn compare_and_swap_counts_exactly_across_processes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        open(dir.path(), false)
            .set("counter", Bytes::from_static(b"0"), SetOptions::new())
            .await
            .unwrap();
    });
    let outs = race("cas", dir.path());
    for out in &outs {
        assert_eq!(
            out[0],
            format!("incremented {}", CAS_TASKS * CAS_INCREMENTS)
        );
    }
    rt.block_on(async {
        let blob = open(dir.path(), false)
            .get("counter")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&blob.value).unwrap(),
            (2 * CAS_TASKS * CAS_INCREMENTS).to_string()
        );
    });
}

#[test]
fn only_one_process_writes_each_new_key() {
    let dir = tempfile::tempdir().unwrap();
    let outs = race("if-new", dir.path());
    let mut winners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in outs.iter().flatten() {
        let (key, who) = line.strip_prefix("won ").unwrap().split_once(' ').unwrap();
        winners
            .entry(key.to_owned())
            .or_default()
            .push(who.to_owned());
    }
    assert_eq!(winners.len(), RACE_KEYS, "every key has a winner");
    runtime().block_on(async {
        let store = open(dir.path(), false);
        for (key, who) in &winners {
            assert_eq!(who.len(), 1, "{key} was won by {who:?}");
            let blob = store.get(key).await.unwrap().unwrap();
            assert_eq!(blob.value.as_ref(), who[0].as_bytes(), "{key}");
        }
    });
}

#[test]
fn only_one_process_claims_each_job() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    rt.block_on(async {
        let jobs = BlobJobStore::new(Arc::new(open(dir.path(), false)));
        for j in 0..RACE_JOBS {
            let mut new = NewJob::new("race", json!(j));
            new.id = Some(JobId::new(format!("job-{j}")).unwrap());
            jobs.create(new).await.unwrap();
        }
    });
    let outs = race("claim", dir.path());
    let mut owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in outs.iter().flatten() {
        let (job, owner) = line
            .strip_prefix("claimed ")
            .unwrap()
            .split_once(' ')
            .unwrap();
        owners
            .entry(job.to_owned())
            .or_default()
            .push(owner.to_owned());
    }
    assert_eq!(owners.len(), RACE_JOBS, "every job was claimed");
    rt.block_on(async {
        let jobs = BlobJobStore::new(Arc::new(open(dir.path(), false)));
        for (id, who) in &owners {
            assert_eq!(who.len(), 1, "{id} was claimed by {who:?}");
            let job = jobs
                .get(&JobId::new(id.clone()).unwrap())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(job.lease.unwrap().owner, who[0]);
            assert_eq!(job.attempts, 1);
        }
    });
}

/// The value written under crash key `i`: its length and bytes both depend on `i`, so a
/// partial or mixed-up value cannot pass for a whole one.
fn crash_value(i: usize) -> Vec<u8> {
    // Cheap to build, so that the writer spends its time writing, where a kill should land.
    let len = 64 * 1024 + (i * 7919) % (192 * 1024);
    let mut value = vec![(i % 251) as u8; len];
    value[..8].copy_from_slice(&(i as u64).to_le_bytes());
    value[len - 8..].copy_from_slice(&(i as u64).to_be_bytes());
    value
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    // The kill lands while a temporary file exists, but on a loaded machine the write can
    // still finish before the signal arrives; then the run cannot show the sweep (nothing is
    // left to sweep), so it is repeated, a bounded number of times, on a fresh directory.
    // Every run's acknowledged writes are checked.
    for _ in 0..5 {
        let (dir, acked) = kill_a_writer_mid_write();
        assert_acknowledged_writes_intact(dir.path(), &acked);
        let left_a_temp = blobjobs_test_support::files_under(dir.path())
            .iter()
            .any(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"));
        if left_a_temp {
            // The killed writer's temporary file is still there; a catalog opened on the
            // directory, as a restarted server opens it, removes it at once.
            blobjobs_backends::Catalog::file(dir.path().to_path_buf(), FileOptions::default())
                .unwrap();
            blobjobs_test_support::assert_no_temp_files(dir.path());
            return;
        }
    }
    panic!("in five runs, no kill left a write in flight");
}

/// Every write the killed writer acknowledged reads back whole, and nothing else but the
/// write in flight is there.
fn assert_acknowledged_writes_intact(dir: &Path, acked: &[usize]) {
    runtime().block_on(async {
        let store = open(dir, true);
        for &i in acked {
            let blob = store.get(&format!("crash/{i:05}")).await.unwrap();
            let blob = blob.unwrap_or_else(|| panic!("acknowledged key {i} is gone"));
            assert!(
                blob.value.as_ref() == crash_value(i).as_slice(),
                "key {i} differs"
            );
        }
        let page = store.list(ListOptions::new()).await.unwrap();
        let last = *acked.last().unwrap();
        for entry in &page.blobs {
            let i: usize = entry
                .key
                .strip_prefix("crash/")
                .unwrap_or_else(|| panic!("unexpected key {:?} listed", entry.key))
                .parse()
                .unwrap();
            // At most the write in flight when the process died is there beyond the acks.
            assert!(i <= last + 1, "key {i} was never written");
            let blob = store.get(&entry.key).await.unwrap().unwrap();
            assert!(
                blob.value.as_ref() == crash_value(i).as_slice(),
                "partial value at {i}"
            );
            assert_eq!(entry.size, blob.value.len() as u64);
        }
        assert!(page.blobs.len() >= acked.len());
    });
}

/// Starts a writer process, lets it acknowledge some writes, and SIGKILLs it the moment a
/// write is in flight (its temporary file exists); returns the directory and the keys it
/// acknowledged.
fn kill_a_writer_mid_write() -> (tempfile::TempDir, Vec<usize>) {
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("unused");
    let mut child = spawn("crash-writer", dir.path(), &go, "p0");
    let stdout = child.stdout.take().unwrap();
    // Read the child's output on a thread for its whole life: closing the pipe early would
    // make the child's next write fail and end it before the kill.
    let acks = Arc::new(std::sync::Mutex::new(Vec::new()));
    let reader = {
        let acks = Arc::clone(&acks);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = child::said_line(&line).and_then(|l| l.strip_prefix("ack ")) {
                    acks.lock().unwrap().push(i.parse::<usize>().unwrap());
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while acks.lock().unwrap().len() < 25 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Kill the writer the moment a write is in flight (its temporary file exists), so that
    // the kill lands in the middle of a write rather than between two.
    let store_dir = open(dir.path(), true).dir().to_path_buf();
    let mut in_flight = false;
    while !in_flight && Instant::now() < deadline {
        in_flight = std::fs::read_dir(&store_dir)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with(".tmp"));
    }
    // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no cleanup runs.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    // Every ack the child printed before it died counts: it printed each only after `set`
    // returned.
    let acked = acks.lock().unwrap().clone();
    assert!(in_flight, "never saw a write in flight");
    assert!(
        !status.success(),
        "the writer finished before it was killed"
    );
    assert!(acked.len() >= 25, "the writer acknowledged only {acked:?}");

    (dir, acked)
}

// ---------------------------------------------------------------------------------------------
// Child side

/// The entry point of every child process; a no-op in a normal test run.
#[test]
fn child_process_entry() {
    let Some(role) = child::role() else {
        return;
    };
    let root = PathBuf::from(std::env::var(ROOT).unwrap());
    let go = PathBuf::from(std::env::var(GO).unwrap());
    let id = std::env::var(ID).unwrap();
    let rt = runtime();
    match role.as_str() {
        "write" => rt.block_on(child_write(&root)),
        "read-then-write" => rt.block_on(child_read_then_write(&root)),
        "cas" => rt.block_on(child_cas(&root, &go)),
        "if-new" => rt.block_on(child_if_new(&root, &go, &id)),
        "claim" => rt.block_on(child_claim(&root, &go, &id)),
        "crash-writer" => rt.block_on(child_crash_writer(&root)),
        other => panic!("unknown role {other}"),
    }
}

fn wait_for(go: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !go.exists() {
        assert!(Instant::now() < deadline, "never released");
        std::thread::sleep(Duration::from_millis(1));
    }
}

async fn child_write(root: &Path) {
    let store = open(root, true);
    for i in 0..50 {
        store
            .set(
                &format!("there/{i}"),
                Bytes::from(format!("value {i}")),
                SetOptions::new(),
            )
            .await
            .unwrap();
    }
    say("wrote 50");
}

async fn child_read_then_write(root: &Path) {
    let store = open(root, true);
    for i in 0..50 {
        let blob = store.get(&format!("there/{i}")).await.unwrap().unwrap();
        assert_eq!(blob.value.as_ref(), format!("value {i}").as_bytes());
        store
            .set(
                &format!("back/{i}"),
                Bytes::from(format!("reply {i}")),
                SetOptions::new(),
            )
            .await
            .unwrap();
    }
    say("read 50");
}

async fn child_cas(root: &Path, go: &Path) {
    wait_for(go);
    let mut tasks = Vec::new();
    for _ in 0..CAS_TASKS {
        // One handle per task, as separate instances would have.
        let store = open(root, false);
        tasks.push(tokio::spawn(async move {
            for _ in 0..CAS_INCREMENTS {
                let mut done = false;
                for _ in 0..100_000 {
                    let blob = store.get("counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&blob.value).unwrap().parse().unwrap();
                    let outcome = store
                        .set(
                            "counter",
                            Bytes::from((n + 1).to_string()),
                            SetOptions::new().if_match(blob.info.etag),
                        )
                        .await
                        .unwrap();
                    if outcome.is_written() {
                        done = true;
                        break;
                    }
                }
                assert!(done, "compare-and-swap never succeeded");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    say(&format!("incremented {}", CAS_TASKS * CAS_INCREMENTS));
}

async fn child_if_new(root: &Path, go: &Path, id: &str) {
    wait_for(go);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let store = open(root, false);
        let me = format!("{id}-t{t}");
        tasks.push(tokio::spawn(async move {
            for k in 0..RACE_KEYS {
                let key = format!("new/{k}");
                let outcome = store
                    .set(&key, Bytes::from(me.clone()), SetOptions::new().if_new())
                    .await
                    .unwrap();
                if outcome.is_written() {
                    say(&format!("won {key} {me}"));
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn child_claim(root: &Path, go: &Path, id: &str) {
    wait_for(go);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let jobs = BlobJobStore::new(Arc::new(open(root, false)));
        let me = format!("{id}-t{t}");
        tasks.push(tokio::spawn(async move {
            for j in 0..RACE_JOBS {
                let job = JobId::new(format!("job-{j}")).unwrap();
                match jobs.claim(&job, &me, Duration::from_secs(600)).await {
                    Ok(_) => say(&format!("claimed {job} {me}")),
                    Err(e) if e.kind() == ErrorKind::LeaseHeld => {}
                    Err(e) => panic!("claim of {job} failed: {e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

async fn child_crash_writer(root: &Path) {
    let store = open(root, true);
    for i in 0..100_000 {
        store
            .set(
                &format!("crash/{i:05}"),
                Bytes::from(crash_value(i)),
                SetOptions::new(),
            )
            .await
            .unwrap();
        say(&format!("ack {i}"));
    }
}
