//! Runs the `serverless_jobs` example as separate OS processes: this test binary starts
//! copies of itself, and in those the [`CHILD_ARGS_ENV`] variable turns the `child` test
//! into the example's `main`.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Holds the JSON array of example arguments in a child process.
pub const CHILD_ARGS_ENV: &str = "SERVERLESS_JOBS_CHILD_ARGS";

/// The name of the test function that is the children's entry point.
pub const CHILD_TEST: &str = "child";

/// One example process: this test binary running only [`CHILD_TEST`] with `args`.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args([
        CHILD_TEST,
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ])
    .env(CHILD_ARGS_ENV, serde_json::to_string(args).unwrap())
    .env_remove("NETLIFY_BLOBS_CONTEXT")
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs one example process to the end, within `limit`.
pub fn run(args: &[&str], env: &[(&str, &str)], limit: Duration) -> Output {
    let mut child = command(args, env).spawn().unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{args:?} did not finish in {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The example's own stdout lines (the test harness adds a few of its own).
pub fn lines(output: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(output)
        .lines()
        .filter(|l| l.starts_with("job"))
        .map(str::to_owned)
        .collect()
}

/// The entry point of a child: runs the example with the arguments from the environment
/// and exits with its exit code. Returns `false` in the parent (no arguments set).
pub fn child_main(run: impl FnOnce(Vec<String>) -> u8) -> bool {
    let Ok(args) = std::env::var(CHILD_ARGS_ENV) else {
        return false;
    };
    let args: Vec<String> = serde_json::from_str(&args).unwrap();
    let code = run(args);
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    std::process::exit(i32::from(code));
}

/// What the three processes showed with a store that instances share.
pub struct SharedRun {
    pub job_id: String,
    pub status_lines: Vec<String>,
}

/// trigger, then status polling, then background (started once status has seen the job
/// pending): the story with a store that works across instances.
pub fn shared_story(spec: &str, env: &[(&str, &str)]) -> SharedRun {
    let limit = Duration::from_secs(60);
    let trigger = run(&["trigger", "--store", spec], env, limit);
    assert!(
        trigger.status.success(),
        "trigger failed: {}",
        String::from_utf8_lossy(&trigger.stderr)
    );
    let job_id = lines(&trigger.stdout)
        .into_iter()
        .find(|l| l.starts_with("job_"))
        .expect("trigger printed no job id");

    let mut status: Child = command(&["status", "--store", spec, &job_id, "--wait", "45"], env)
        .spawn()
        .unwrap();
    let stdout = status.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut status_lines = Vec::new();
    let mut background: Option<Child> = None;
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
            background = Some(
                command(
                    &["background", "--store", spec, &job_id, "--step-ms", "250"],
                    env,
                )
                .spawn()
                .unwrap(),
            );
        }
        status_lines.push(text);
    }
    let status_out = status.wait_with_output().unwrap();
    assert!(
        status_out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&status_out.stderr)
    );
    let background = background.expect("status never saw the job pending");
    let out = background.wait_with_output().unwrap();
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

/// trigger, then status and background in fresh processes: with a process-local store both
/// answer 404.
pub fn isolated_story(spec: &str, env: &[(&str, &str)]) {
    let limit = Duration::from_secs(60);
    let trigger = run(&["trigger", "--store", spec], env, limit);
    assert!(trigger.status.success());
    let job_id = lines(&trigger.stdout)
        .into_iter()
        .find(|l| l.starts_with("job_"))
        .expect("trigger printed no job id");
    for command in ["status", "background"] {
        let out = run(&[command, "--store", spec, &job_id], env, limit);
        assert!(!out.status.success(), "{command} found a job it cannot see");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("404 job not found: {job_id}")),
            "{command}: {stderr}"
        );
    }
}
