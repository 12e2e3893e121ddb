//! `blobs-conformance` end to end: its exit status, its report on stdout, the files it writes,
//! instances as separate processes, an HTTP endpoint (the emulator) and a token that is never
//! printed.

use std::path::Path;
use std::process::Output;

use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_blobs-conformance");

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
    assert!(stdout.contains("replay: CONFORMANCE_SEED=11 "));
    // Progress: one line per case on stderr.
    let stderr = text(&out.stderr);
    let progress = stderr.lines().filter(|l| l.starts_with("[memory ")).count();
    assert_eq!(progress, blobjobs_conformance::cases().len(), "{stderr}");

    let lines = check_reports(&junit, &json);
    for line in &lines {
        let expected = if line["scope"] == "cross_instance" {
            "failed"
        } else {
            "passed"
        };
        assert_eq!(line["verdict"], expected, "{line}");
        assert_eq!(line["backend"], "memory");
    }
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
            assert_eq!(line["verdict"], "passed", "{line}");
        }
    }
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
        ],
        &env,
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("conformance of http-processes: "));
    assert!(!stdout.contains(token) && !stderr.contains(token));

    // A wrong token fails every case; the error names neither token.
    let out = run(
        &[
            "--url",
            &url,
            "--filter",
            "read_your_write",
            "--token",
            "wrong-secret-77",
        ],
        &env,
    )
    .await;
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    for secret in [token, "wrong-secret-77"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    let help = run(&["--help"], &env).await;
    assert!(!text(&help.stdout).contains(token));

    let _ = stop.send(());
    server.await.unwrap().unwrap();
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
