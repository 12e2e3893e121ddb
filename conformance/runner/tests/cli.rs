//! `blobs-conformance` end to end: its exit status, its report on stdout, the files it writes,
//! instances as separate processes, an HTTP endpoint (the emulator) and a token that is never
//! printed, the checks before a run (a dead URL, a silent server, a wrong token), the clean-up
//! after it, and the diagnosis of the official `@netlify/blobs` server.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use blobjobs_backends::{FileOptions, FileStore};
use blobjobs_store_api::{BlobStoreExt as _, ListOptions};
use tokio::io::AsyncBufReadExt as _;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_blobs-conformance");

/// The crash case, which needs instances in processes of their own.
const CRASH_CASE: &str = "instance_killed_mid_write_tears_nothing_and_frees_its_jobs";

/// A generous bound on a run that must stop at its checks before the cases: the checks
/// give up after 3 s, and a slow CI machine gets as much again.
const PROMPT: Duration = Duration::from_secs(8);

/// Few generated sequences: the runs stay fast, and memory fails every cross-instance case
/// with these as well.
const CASES: &str = "4";

async fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("NETLIFY_BLOBS_TOKEN");
    for var in [
        "CONFORMANCE_SEED",
        "CONFORMANCE_CASES",
        "CONFORMANCE_FILTER",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().await.expect("blobs-conformance runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Checks both report files and returns the parsed JSON lines.
fn check_reports(junit: &Path, json: &Path) -> Vec<serde_json::Value> {
    let xml = std::fs::read_to_string(junit).expect("the junit file is written");
    assert!(xml.contains("<testsuite "), "{xml}");
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(json)
        .expect("the json file is written")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is json"))
        .collect();
    assert_eq!(lines.len(), blobjobs_conformance::cases().len());
    for line in &lines {
        assert!(
            line["name"].is_string() && line["verdict"].is_string(),
            "{line}"
        );
    }
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_fails_with_a_counterexample_and_writes_both_reports() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("out/junit.xml");
    let json = dir.path().join("out/report.jsonl");
    let out = run(
        &[
            "--url",
            "memory://",
            "--cases",
            CASES,
            "--seed",
            "11",
            "--junit",
            junit.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAILED job_operations_match_the_model_across_instances"),
        "{stdout}"
    );
    assert!(stdout.contains("timeline:") && stdout.contains("instance 1: "));
    // The replay line is a command to paste.
    assert!(
        stdout.contains(
            "replay: blobs-conformance --url memory:// --cases 4 --seed 11 --filter \
             job_operations_match_the_model_across_instances\n"
        ),
        "{stdout}"
    );
    // The failures are grouped by likely cause, every failed case in one group.
    let diagnosis = stdout
        .split("\ndiagnosis of memory: ")
        .nth(1)
        .expect("a diagnosis");
    let failed = lines_failed(&stdout);
    assert!(
        diagnosis.starts_with(&format!("{failed} failed cases, ")),
        "{diagnosis}"
    );
    // Progress: one line per case on stderr.
    let stderr = text(&out.stderr);
    let progress = stderr.lines().filter(|l| l.starts_with("[memory ")).count();
    assert_eq!(progress, blobjobs_conformance::cases().len(), "{stderr}");

    let lines = check_reports(&junit, &json);
    for line in &lines {
        let expected = if line["name"] == CRASH_CASE {
            // Instances inside this process cannot be killed on their own.
            "skipped"
        } else if line["scope"] == "cross_instance" {
            "failed"
        } else {
            "passed"
        };
        assert_eq!(line["verdict"], expected, "{line}");
        assert_eq!(line["backend"], "memory");
    }
}

/// The number of failed cases in a report's first line.
fn lines_failed(stdout: &str) -> usize {
    let head = stdout.lines().next().unwrap_or("");
    head.split(" failed")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no failure count in {head:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_passes_in_process_and_with_every_instance_a_process() {
    let dir = tempfile::tempdir().unwrap();
    let spec = format!("file://{}", dir.path().join("blobs").display());
    for processes in [false, true] {
        let junit = dir.path().join(format!("junit-{processes}.xml"));
        let json = dir.path().join(format!("report-{processes}.jsonl"));
        let mut args = vec![
            "--url",
            &spec,
            "--cases",
            CASES,
            "--quiet",
            "--junit",
            junit.to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ];
        if processes {
            args.push("--processes");
        }
        let out = run(&args, &[]).await;
        let stdout = text(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
        assert!(out.stderr.is_empty(), "--quiet printed progress");
        let label = if processes { "file-processes" } else { "file" };
        assert!(
            stdout.starts_with(&format!("conformance of {label}: ")),
            "{stdout}"
        );
        for line in check_reports(&junit, &json) {
            let expected = if line["name"] == CRASH_CASE && !processes {
                "skipped"
            } else {
                "passed"
            };
            assert_eq!(line["verdict"], expected, "{line}");
        }
        // The run deleted every key it wrote.
        let store = FileStore::open(
            dir.path().join("blobs"),
            "conformance",
            FileOptions::default(),
        )
        .unwrap();
        let left = store.list_all(ListOptions::new()).await.unwrap();
        assert!(left.is_empty(), "the run left {} keys behind", left.len());
    }

    // With --keep, the keys stay.
    let out = run(
        &[
            "--url",
            &spec,
            "--filter",
            "read_your_write",
            "--quiet",
            "--keep",
        ],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let store = FileStore::open(
        dir.path().join("blobs"),
        "conformance",
        FileOptions::default(),
    )
    .unwrap();
    assert!(!store.list_all(ListOptions::new()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_endpoint_passes_and_the_token_is_never_printed() {
    let token = "tok-never-printed-5b0c1e";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = blobjobs_emulator::Config::new(blobjobs_backends::Catalog::memory(), token);
    let server = tokio::spawn(blobjobs_emulator::serve(listener, config, async move {
        let _ = stopped.await;
    }));

    let env = [("NETLIFY_BLOBS_TOKEN", token)];
    let out = run(
        &[
            "--url",
            &url,
            "--site",
            "grading",
            "--cases",
            CASES,
            "--processes",
            // A few cases at once, as for a store behind a network.
            "--parallel",
            "3",
        ],
        &env,
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    // Named after the server's address, with every instance a process.
    let label = format!(
        "conformance of {}-processes: ",
        url.trim_start_matches("http://")
    );
    assert!(stdout.starts_with(&label), "{stdout}");
    assert!(!stdout.contains(token) && !stderr.contains(token));

    // A wrong token stops the run at its checks, in one line that names neither token.
    let started = Instant::now();
    let out = run(&["--url", &url, "--token", "wrong-secret-77"], &env).await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("refused the credentials"), "{stderr}");
    for secret in [token, "wrong-secret-77"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    let help = run(&["--help"], &env).await;
    assert!(!text(&help.stdout).contains(token));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_url_or_a_silent_server_exits_with_2_in_one_line_at_once() {
    // A port nothing listens on: bind one, then free it.
    let dead = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    // A server that accepts connections (the kernel does) but never answers.
    let silent_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = format!("http://{}", silent_listener.local_addr().unwrap());
    for (url, says) in [(&dead, "cannot reach"), (&silent, "did not answer")] {
        let started = Instant::now();
        let out = run(&["--url", url, "--token", "x"], &[]).await;
        let took = started.elapsed();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(took < PROMPT, "{url}: took {took:?}");
        assert!(out.stdout.is_empty(), "{url} ran cases");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains(url.as_str()),
            "{stderr}"
        );
    }
    drop(silent_listener);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_configuration_exits_with_2_before_running() {
    for (args, envs) in [
        (vec!["--url", "ftp://example"], vec![]),
        // An http store without a token.
        (vec!["--url", "http://127.0.0.1:9"], vec![]),
        // The default spec without NETLIFY_BLOBS_CONTEXT.
        (vec![], vec![("NETLIFY_BLOBS_CONTEXT", "")]),
        (
            vec!["--url", "memory://", "--filter", "no case has this name"],
            vec![],
        ),
        (vec!["--bogus-flag"], vec![]),
    ] {
        let out = run(&args, &envs).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?} ran cases");
    }
}

/// The label of the diagnosis line that explains `case` in a text report.
fn cause_of<'a>(stdout: &'a str, case: &str) -> &'a str {
    let diagnosis = stdout.split("\ndiagnosis of ").nth(1).expect("a diagnosis");
    diagnosis
        .lines()
        .skip(1)
        .find_map(|line| {
            let (label, cases) = line.trim_start().rsplit_once(" (")?;
            let listed = cases.trim_end_matches(')').split(", ").any(|c| c == case);
            listed.then(|| label.rsplit_once(": ").map_or(label, |(l, _)| l))
        })
        .unwrap_or_else(|| panic!("no cause names {case}:\n{diagnosis}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_server_is_diagnosed_with_its_known_faults() {
    let Some(interop) =
        blobjobs_test_support::interop::prepare("the official server's grading").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token = "official-token-3f9a";
    // The server serves until its stdin closes; the pipe stays open as long as `server`.
    let mut server = Command::new("node")
        .arg(interop.join("bench/server.mjs"))
        .arg(dir.path())
        .arg(token)
        .current_dir(&interop)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let stdout = server.stdout.take().unwrap();
    let first = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::io::BufReader::new(stdout).lines().next_line(),
    )
    .await
    .expect("the official server starts within a minute")
    .unwrap()
    .expect("the official server prints its port");
    let port = serde_json::from_str::<serde_json::Value>(&first).unwrap()["port"]
        .as_u64()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");

    let out = run(
        &[
            "--url",
            &url,
            "--site",
            "local-site",
            "--cases",
            "8",
            "--quiet",
        ],
        &[("NETLIFY_BLOBS_TOKEN", token)],
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    println!("{stdout}");
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // Named after the server, not "http".
    assert!(
        stdout.starts_with(&format!("conformance of 127.0.0.1:{port}: ")),
        "{stdout}"
    );
    // Reads send no ETag, so every case that compares one fails with it.
    let no_etag = cause_of(&stdout, "read_your_write_is_byte_exact");
    assert!(no_etag.to_lowercase().contains("etag"), "{no_etag}");
    // Conditional writes are checked and applied in separate steps: concurrent ones all win.
    let racy = cause_of(&stdout, "only_if_new_has_a_single_winner_across_instances");
    let racy_lower = racy.to_lowercase();
    assert!(
        ["only-if-new", "atomic", "condition"]
            .iter()
            .any(|w| racy_lower.contains(w)),
        "{racy}"
    );
    // Causes group the failures: fewer lines than failed cases.
    let causes = stdout
        .split("\ndiagnosis of ")
        .nth(1)
        .unwrap()
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  ") && !l.starts_with("  ("))
        .count();
    assert!(causes < lines_failed(&stdout), "{stdout}");
    // Its 500s (a key below another key) are tried twice, not six times, and counted.
    assert!(
        stdout.contains("answered 500 (gave up after 2 attempts"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .next()
            .unwrap()
            .contains("ended in a server error"),
        "{stdout}"
    );
    assert!(!stdout.contains(token) && !stderr.contains(token));
    drop(server);
}

/// `--list` prints every case with the promises it checks, then the promise map: every
/// promise of the catalogue with the cases that check it, the map of `PROMISES.md`.
#[tokio::test]
async fn list_prints_the_cases_and_the_promise_map() {
    let out = run(&["--list"], &[]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let cases = blobjobs_conformance::cases();
    assert!(
        stdout.starts_with(&format!("{} cases:\n", cases.len())),
        "{stdout}"
    );
    for case in &cases {
        assert!(stdout.contains(case.name), "{} is not listed", case.name);
    }
    let promises = blobjobs_conformance::promises();
    assert!(
        stdout.contains(&format!("\n{} promises,", promises.len())),
        "{stdout}"
    );
    for p in promises {
        let row = format!("  {} ({}): ", p.id, p.source);
        let at = stdout
            .find(&row)
            .unwrap_or_else(|| panic!("{} is not listed", p.id));
        let checked = stdout[at..]
            .lines()
            .nth(1)
            .expect("a promise is followed by its cases");
        for case in p.cases {
            assert!(
                checked.contains(case),
                "{}: {case} missing in {checked}",
                p.id
            );
        }
    }

    // A filter narrows both halves.
    let out = run(&["--list", "--filter", "lease_expiry_is_exact"], &[]).await;
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("1 cases:\n"), "{stdout}");
    assert!(stdout.contains("jobs.claim.lease"), "{stdout}");
    assert!(!stdout.contains("blob.etag"), "{stdout}");
}
