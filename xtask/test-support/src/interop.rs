//! Setup shared by the interop tests that run the official `@netlify/blobs` package (pinned
//! in `interop/package.json`) under `node`: finding `node` and `npm`, installing the packages
//! once, and running a command to success within a time limit.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;
use tokio::sync::OnceCell;

/// How long `npm ci` or one node run may take before the test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(180);

/// The workspace's `interop` folder, where the npm packages are installed.
pub fn interop_dir() -> PathBuf {
    crate::workspace_root().join("interop")
}

async fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// The `interop` folder with its packages installed (by `npm ci` when
/// `node_modules` lacks them), or `None` after printing why `what` is skipped when `node` or
/// `npm` is missing. The check and the install run once per test binary, however many tests
/// ask at the same time: two `npm ci` in one folder at once would break each other.
pub async fn prepare(what: &str) -> Option<PathBuf> {
    static PREPARED: OnceCell<bool> = OnceCell::const_new();
    let ready = *PREPARED
        .get_or_init(|| async {
            if !available("node").await || !available("npm").await {
                return false;
            }
            let dir = interop_dir();
            if !dir.join("node_modules/@netlify/blobs").exists() {
                let mut ci = Command::new("npm");
                ci.args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir);
                run(ci, "npm ci").await;
            }
            true
        })
        .await;
    if !ready {
        println!("SKIPPED: node and npm are not installed, so {what} cannot run");
        return None;
    }
    Some(interop_dir())
}

/// Runs `cmd` to its end within [`COMMAND_LIMIT`] and asserts that it succeeded, showing its
/// output if not.
pub async fn run(mut cmd: Command, what: &str) {
    cmd.kill_on_drop(true);
    let output = tokio::time::timeout(COMMAND_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{what} timed out"))
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    println!("{what}: passed");
}
