//! The backends crate's `serverless_jobs` example as separate OS processes: *trigger*,
//! *background* and *status*, each a fresh run of the example binary that shares nothing
//! with the others but the store its spec names.
//!
//! The binary is built by cargo, the way `cargo run --example` would build it, once per test
//! process; the tests run the real example, not a copy of its source.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use crate::child;

/// The package and the example target that cargo builds.
const PACKAGE: &str = "blobjobs-backends";
const EXAMPLE: &str = "serverless_jobs";

/// The variables cargo sets for the test it runs (not the ones that configure cargo).
const RUN_VARS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_CRATE_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_TARGET_TMPDIR",
    "CARGO_RUSTC_CURRENT_DIR",
    "OUT_DIR",
];
const RUN_VAR_PREFIXES: &[&str] = &["CARGO_PKG_", "CARGO_BIN_"];

/// How long one example process may run before the test fails.
const LIMIT: Duration = Duration::from_secs(60);

/// The example binary, built on first use (`cargo build -p blobjobs-backends --example
/// serverless_jobs` in the workspace, with the cargo that runs the tests).
pub fn binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build)
}

fn build() -> PathBuf {
    // Cargo tells the programs it runs where it is; a plain `cargo` is the fallback.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = crate::workspace_root();
    let mut cmd = Command::new(cargo);
    // Cargo describes the test it runs in variables that a build script may watch (ring
    // reruns when `CARGO_MANIFEST_DIR` changes); passed on, they would make this build and
    // the next `cargo test` rebuild each other's dependencies every time.
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if RUN_VARS.iter().any(|v| name_text == *v)
            || RUN_VAR_PREFIXES.iter().any(|p| name_text.starts_with(p))
        {
            cmd.env_remove(&name);
        }
    }
    cmd.current_dir(&root)
        .arg("build")
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .args(["-p", PACKAGE, "--example", EXAMPLE])
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let out = child::wait(cmd.spawn().unwrap(), Duration::from_secs(600));
    assert!(
        out.status.success(),
        "building the {EXAMPLE} example failed ({})",
        out.status
    );
    // One JSON message per line; the example's artifact names its executable.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let found = stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == EXAMPLE)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from));
    found.unwrap_or_else(|| panic!("cargo built no executable for the {EXAMPLE} example"))
}

/// One example process with `args` and extra environment `env`, outside any Netlify
/// context; stdout and stderr piped.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(binary());
    cmd.args(args)
        .env_remove("NETLIFY_BLOBS_CONTEXT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs one example process to its end, within `limit`.
pub fn run(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    child::wait(command(args, env).spawn().unwrap(), limit)
}

/// The job lines the example printed (`job …`).
pub fn lines(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .filter(|l| l.starts_with("job"))
        .map(str::to_owned)
        .collect()
}

/// What the three processes showed with a store that instances share.
#[derive(Debug)]
pub struct SharedRun {
    /// The id the trigger printed.
    pub job_id: String,
    /// Every job line the status process printed while polling.
    pub status_lines: Vec<String>,
}

/// Runs trigger, then status polling, then background (started once status has seen the job
/// pending) with the store `spec`: the story with a store that works across instances.
pub fn shared_story(spec: &str, env: &[(&str, &str)]) -> SharedRun {
    let trigger = run(&["trigger", "--store", spec], env, LIMIT);
    assert!(
        trigger.status.success(),
        "trigger failed: {}",
        String::from_utf8_lossy(&trigger.stderr)
    );
    let job_id = lines(&trigger.stdout)
        .into_iter()
        .find(|l| l.starts_with("job_"))
        .expect("trigger printed no job id");

    let mut status = command(&["status", "--store", spec, &job_id, "--wait", "45"], env)
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(status.stdout.take().unwrap());
    let mut status_lines = Vec::new();
    let mut background = None;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let text = line.trim_end().to_owned();
        if !text.starts_with("job") {
            continue;
        }
        if background.is_none() && text.ends_with("is pending") {
            let args = ["background", "--store", spec, &job_id, "--step-ms", "250"];
            background = Some(command(&args, env).spawn().unwrap());
        }
        status_lines.push(text);
    }
    let status_out = child::wait(status, LIMIT);
    assert!(
        status_out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&status_out.stderr)
    );
    let background = background.expect("status never saw the job pending");
    let out = child::wait(background, LIMIT);
    assert!(
        out.status.success(),
        "background failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    SharedRun {
        job_id,
        status_lines,
    }
}

/// Asserts what the shared story must show: pending, running with progress, succeeded with
/// the result.
pub fn assert_shared_story(run: &SharedRun) {
    let id = &run.job_id;
    let lines = &run.status_lines;
    assert_eq!(
        lines.first(),
        Some(&format!("job {id} is pending")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("job {id} is running ("))),
        "{lines:?}"
    );
    let last = lines.last().unwrap();
    assert!(
        last.starts_with(&format!("job {id} succeeded: ")),
        "{lines:?}"
    );
    assert!(last.contains("\"points\":30"), "{last}");
}

/// Runs trigger, then status and background in fresh processes, with the store `spec`,
/// and asserts that both answer 404, as they must with a process-local store.
pub fn isolated_story(spec: &str, env: &[(&str, &str)]) {
    let trigger = run(&["trigger", "--store", spec], env, LIMIT);
    assert!(trigger.status.success());
    let job_id = lines(&trigger.stdout)
        .into_iter()
        .find(|l| l.starts_with("job_"))
        .expect("trigger printed no job id");
    for command in ["status", "background"] {
        let out = run(&[command, "--store", spec, &job_id], env, LIMIT);
        assert!(!out.status.success(), "{command} found a job it cannot see");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("404 job not found: {job_id}")),
            "{command}: {stderr}"
        );
    }
}
