//! Setup shared by the interop tests that run the official `@netlify/blobs` package (pinned
//! in `interop/package.json`) under `node`, and by `cargo xtask bench` for the official server
//! and client: finding `node` and `npm`, installing the packages when they are missing, and
//! running a command to success within a time limit.

use std::fmt;
use std::path::{Path, PathBuf};
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
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success())
}

/// Why the npm packages of an interop folder cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unavailable {
    /// This program (`node` or `npm`) is not installed: tests skip, and the benchmarks leave
    /// the official server and client out.
    NotInstalled(&'static str),
    /// `npm ci` failed or ran out of time; the end of its output says why.
    InstallFailed(String),
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NotInstalled(program) => write!(
                f,
                "{program} is not installed (install Node.js and npm; the npm packages then \
                 install themselves)"
            ),
            Unavailable::InstallFailed(why) => write!(f, "npm ci failed: {why}"),
        }
    }
}

/// Makes the packages of the interop folder `dir` usable: checks for `node` and `npm`, and
/// runs `npm ci` there (within [`COMMAND_LIMIT`]) if `@netlify/blobs` is not installed yet.
/// Two installs in one folder at once would break each other: callers run it once per
/// process, as [`prepare`] does.
pub async fn install(dir: &Path) -> Result<(), Unavailable> {
    install_folder(dir, "@netlify/blobs").await
}

/// [`install`] for any folder with a lock file: `npm ci` there unless the package `marker`
/// is installed already.
pub async fn install_folder(dir: &Path, marker: &str) -> Result<(), Unavailable> {
    for program in ["node", "npm"] {
        if !available(program).await {
            return Err(Unavailable::NotInstalled(program));
        }
    }
    if dir.join("node_modules").join(marker).exists() {
        return Ok(());
    }
    let mut ci = Command::new("npm");
    ci.args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(COMMAND_LIMIT, ci.output())
        .await
        .map_err(|_| Unavailable::InstallFailed(format!("no end after {COMMAND_LIMIT:?}")))?
        .map_err(|e| Unavailable::InstallFailed(format!("cannot start npm: {e}")))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(5).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Unavailable::InstallFailed(format!(
            "{} ({})",
            tail.join(" / "),
            output.status
        )));
    }
    Ok(())
}

/// The `interop` folder with its packages installed (by [`install`]), or `None` after
/// printing why `what` is skipped when `node` or `npm` is missing (a failure under
/// `cargo xtask ci`, see [`crate::skip`]); a failed install fails the
/// test. The check and the install run once per test binary, however many tests ask at the
/// same time.
pub async fn prepare(what: &str) -> Option<PathBuf> {
    static PREPARED: OnceCell<Result<(), Unavailable>> = OnceCell::const_new();
    let dir = interop_dir();
    match PREPARED.get_or_init(|| install(&dir)).await {
        Ok(()) => Some(dir),
        Err(Unavailable::NotInstalled(program)) => {
            crate::skip(
                what,
                &format!("{program} is not installed"),
                "install Node.js 18 or later with npm (Debian: apt-get install nodejs npm)",
            );
            None
        }
        Err(failed) => panic!("{failed}"),
    }
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
