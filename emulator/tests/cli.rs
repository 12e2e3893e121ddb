//! The `blobs-emulator` binary: start-up banner, health, the client commands, the `env`
//! command, flags from environment variables, and a clean exit on SIGTERM and SIGINT.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_blobs-emulator");

struct Running {
    child: Child,
    base: String,
    export_line: String,
    banner: Vec<String>,
}

/// Starts the binary and reads its banner up to the export line.
async fn start(args: &[&str], envs: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = Vec::new();
    let export_line = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let line = lines.next_line().await.unwrap();
            let line = line.expect("the export line before stdout ends");
            banner.push(line.clone());
            if line.starts_with("export NETLIFY_BLOBS_CONTEXT=") {
                return line;
            }
        }
    })
    .await
    .expect("banner in time");
    let base = common::edge_url_of_export_line(&export_line);
    Running {
        child,
        base,
        export_line,
        banner,
    }
}

async fn signal(child: &Child, name: &str) {
    let pid = child.id().unwrap().to_string();
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

async fn exit_code(mut child: Child) -> i32 {
    tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exit in time")
        .unwrap()
        .code()
        .expect("an exit code, not a signal")
}

async fn cli(args: &[&str], stdin: Option<&[u8]>) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        tokio::io::AsyncWriteExt::write_all(&mut input, bytes)
            .await
            .unwrap();
    }
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn health(base: &str) -> u16 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<blobjobs_emulator::body::ResponseBody>();
    let uri = format!("{base}/.well-known/blobs-emulator/health");
    let req = http::Request::get(uri)
        .body(blobjobs_emulator::body::empty())
        .unwrap();
    client.request(req).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn serve_prints_its_url_and_context_then_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let running = start(
        &["--port", "0", "--token", "tok-1", "--no-fsync"],
        &[("BLOBS_EMULATOR_DIR", dir.path().to_str().unwrap())],
    )
    .await;
    assert!(running.banner[0].starts_with("blobs-emulator listening on http://127.0.0.1:"));
    assert!(
        running.banner[0].contains("fsync off"),
        "{:?}",
        running.banner
    );
    assert!(running.base.starts_with("http://127.0.0.1:"));
    assert_eq!(health(&running.base).await, 200);

    let port = running.base.rsplit(':').next().unwrap().to_owned();
    let (code, out, _) = cli(&["env", "--port", &port, "--token", "tok-1"], None).await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), running.export_line);

    let common = ["--url", &running.base, "--token", "tok-1", "--store", "cli"];
    let (code, etag, err) = cli(
        &[
            &["set"][..],
            &common,
            &["greeting", "hello", "--metadata", r#"{"a":1}"#],
        ]
        .concat(),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(etag.trim().starts_with('"'));
    let (code, _, err) = cli(
        &[&["set"][..], &common, &["dir/piped", "--input", "-"]].concat(),
        Some(b"from stdin"),
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(
        &[&["get"][..], &common, &["greeting", "--metadata"]].concat(),
        None,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello");
    assert!(err.contains(r#"metadata: {"a":1}"#), "{err}");
    assert!(err.contains(etag.trim()), "{err}");
    let (_, out, _) = cli(&[&["get"][..], &common, &["dir/piped"]].concat(), None).await;
    assert_eq!(out, "from stdin");
    let (code, out, _) = cli(&[&["list"][..], &common].concat(), None).await;
    assert_eq!(code, 0);
    assert_eq!(out, "dir/piped\ngreeting\n");
    let (_, out, _) = cli(&[&["list"][..], &common, &["--directories"]].concat(), None).await;
    assert_eq!(out, "dir/\ngreeting\n");
    let (code, _, _) = cli(&[&["delete"][..], &common, &["greeting"]].concat(), None).await;
    assert_eq!(code, 0);
    let (code, _, err) = cli(&[&["get"][..], &common, &["greeting"]].concat(), None).await;
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = cli(
        &[
            "get",
            "--url",
            &running.base,
            "--token",
            "wrong",
            "--store",
            "cli",
            "x",
        ],
        None,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("403"), "{err}");

    signal(&running.child, "TERM").await;
    assert_eq!(exit_code(running.child).await, 0);

    // The data outlives the process: a new server on the same directory still has it.
    let again = start(
        &[
            "--port",
            "0",
            "--token",
            "tok-2",
            "--dir",
            dir.path().to_str().unwrap(),
        ],
        &[],
    )
    .await;
    let (_, out, _) = cli(
        &[
            "get",
            "--url",
            &again.base,
            "--token",
            "tok-2",
            "--store",
            "cli",
            "dir/piped",
        ],
        None,
    )
    .await;
    assert_eq!(out, "from stdin");
    signal(&again.child, "INT").await;
    assert_eq!(exit_code(again.child).await, 0);
}

#[tokio::test]
async fn flags_come_from_the_environment_and_tokens_are_generated() {
    let running = start(
        &[],
        &[
            ("BLOBS_EMULATOR_PORT", "0"),
            ("BLOBS_EMULATOR_IN_MEMORY", "true"),
            ("BLOBS_EMULATOR_SITE", "env-site"),
        ],
    )
    .await;
    assert!(running.banner.iter().any(|l| l.contains("in memory")));
    let token_line = running
        .banner
        .iter()
        .find(|l| l.starts_with("token: "))
        .expect("a generated token is printed");
    let token = token_line["token: ".len()..].split(' ').next().unwrap();
    assert_eq!(token.len(), 32);
    let context = running.export_line.clone();
    assert!(context.len() > 40);
    let (code, out, _) = cli(
        &[
            "env",
            "--port",
            running.base.rsplit(':').next().unwrap(),
            "--token",
            token,
            "--site",
            "env-site",
        ],
        None,
    )
    .await;
    assert_eq!(code, 0);
    assert_eq!(out.trim(), context);
    signal(&running.child, "TERM").await;
    assert_eq!(exit_code(running.child).await, 0);
}

#[tokio::test]
async fn conflicting_or_bad_flags_fail_fast() {
    let (code, _, err) = cli(&["--in-memory", "--dir", "x", "--port", "0"], None).await;
    assert_ne!(code, 0);
    assert!(err.contains("cannot be used with"), "{err}");
    let (code, _, err) = cli(&["--max-blob-size", "lots", "--port", "0"], None).await;
    assert_ne!(code, 0);
    assert!(err.contains("lots"), "{err}");
    let (code, _, _) = cli(&["--token", "", "--in-memory", "--port", "0"], None).await;
    assert_ne!(code, 0);
    let (code, _, _) = cli(
        &["--list-page-size", "0", "--in-memory", "--port", "0"],
        None,
    )
    .await;
    assert_ne!(code, 0);
}
