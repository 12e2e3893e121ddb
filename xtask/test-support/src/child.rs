//! Child processes for tests that need more than one OS process: the current test binary
//! re-run as a child that plays a role, and a wait with a deadline for any child.
//!
//! A test binary that uses [`command`] defines the children's entry point as a test named
//! [`ENTRY_TEST`], which does nothing in a normal run:
//!
//! ```no_run
//! use blobjobs_test_support::child;
//!
//! #[test]
//! fn child_process_entry() {
//!     let Some(role) = child::role() else { return };
//!     match role.as_str() {
//!         "writer" => child::say("wrote"),
//!         other => panic!("unknown role {other}"),
//!     }
//! }
//!
//! #[test]
//! fn a_child_writes() {
//!     let out = child::finish(child::command("writer").spawn().unwrap(), std::time::Duration::from_secs(60));
//!     assert_eq!(child::said(&out), ["wrote"]);
//! }
//! # fn main() {}
//! ```

use std::io::{Read, Write as _};
use std::process::{Child, Command, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The environment variable that names the role of a child; unset in the parent.
pub const ROLE_ENV: &str = "BLOBJOBS_TEST_CHILD_ROLE";

/// The name of the test that is the children's entry point in every binary using [`command`].
pub const ENTRY_TEST: &str = "child_process_entry";

/// The marker that starts each line a child prints with [`say`]; the test harness prints
/// lines of its own around them.
const MARK: &str = "OUT ";

/// The role this process plays, when it is a child started by [`command`].
pub fn role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// This test binary, set up to run only its [`ENTRY_TEST`] in `role`: stdout piped (for
/// [`wait`] or the caller to read), stderr inherited, stdin closed. Add the child's own
/// environment variables before spawning it.
pub fn command(role: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", ENTRY_TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd
}

/// Reads a pipe to its end on a thread of its own, so that a chatty child never blocks on a
/// full pipe while the parent waits for it.
fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut out = Vec::new();
            let _ = pipe.read_to_end(&mut out);
            out
        })
    })
}

fn joined(reader: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    reader.and_then(|r| r.join().ok()).unwrap_or_default()
}

/// Waits for `child` to exit within `limit`, collecting whatever it writes to piped stdout
/// and stderr. Past the limit it kills the child and panics with its output.
pub fn wait(mut child: Child, limit: Duration) -> Output {
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let (stdout, stderr) = (joined(stdout), joined(stderr));
    match status {
        Some(status) => Output {
            status,
            stdout,
            stderr,
        },
        None => panic!(
            "a child process did not finish within {limit:?}\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        ),
    }
}

/// [`wait`], then asserts that the child succeeded (showing its output if not); returns its
/// stdout as text.
pub fn finish(child: Child, limit: Duration) -> String {
    let out = wait(child, limit);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "a child process failed ({}); its output:\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Prints `line` for the parent to find with [`said`] or [`said_line`], and flushes it at
/// once (the parent may be reading while this process keeps running, or kill it next).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{MARK}{line}").unwrap();
    out.flush().unwrap();
}

/// The text of a line printed by [`say`], which may follow the harness's `test … ` on the
/// same line; `None` for the harness's own lines.
pub fn said_line(line: &str) -> Option<&str> {
    line.find(MARK).map(|i| &line[i + MARK.len()..])
}

/// Every line a child printed with [`say`], in order.
pub fn said(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(said_line)
        .map(String::from)
        .collect()
}
