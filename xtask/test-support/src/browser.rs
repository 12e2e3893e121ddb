//! Debian's Chromium for the browser tests: used where it is installed, and installed with
//! `apt-get` where it is missing (CI runs as root on a fresh machine), once per machine
//! however many test processes ask at the same time. Browsers that test tools download for
//! themselves cannot be fetched here; the driver is `playwright-core` from npm.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::child;

/// Where Debian's `chromium` package puts the browser.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// How long `apt-get update` or `apt-get install` may take: the first install downloads
/// about a hundred megabytes.
const APT_LIMIT: Duration = Duration::from_secs(900);

/// The flags that keep Chromium quiet and quick on a machine with no network beyond the
/// loopback: no sandbox (tests run as root), no GPU, and none of the background connections
/// it would otherwise try and time out on.
pub const FLAGS: &[&str] = &[
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The Chromium binary, installed first if it is missing. Panics with the installer's output
/// when the install fails (for example when not run as root).
pub fn chromium() -> PathBuf {
    let path = Path::new(CHROMIUM);
    if path.exists() {
        return path.to_path_buf();
    }
    // One install at a time on this machine: apt holds its own lock and fails, rather than
    // waits, when a second install runs.
    let lock_path = std::env::temp_dir().join("blobjobs-chromium-install.lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.lock().unwrap();
    if !path.exists() {
        let started = Instant::now();
        eprintln!("installing Debian's chromium for the browser test (once per machine)");
        apt(&["update"]);
        apt(&["install", "-y", "chromium"]);
        eprintln!("installed chromium in {:.0?}", started.elapsed());
    }
    drop(lock);
    assert!(
        path.exists(),
        "apt-get installed chromium but {CHROMIUM} is missing"
    );
    path.to_path_buf()
}

fn apt(args: &[&str]) {
    let child = Command::new("apt-get")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run apt-get to install chromium: {e}"));
    let out = child::wait(child, APT_LIMIT);
    if !out.status.success() {
        let tail = |bytes: &[u8]| {
            let text = String::from_utf8_lossy(bytes).into_owned();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(10)..].join("\n")
        };
        panic!(
            "apt-get {} failed ({}); the browser test needs Debian's chromium at {CHROMIUM} \
             (install it as root with apt-get install -y chromium):\n{}\n{}",
            args.join(" "),
            out.status,
            tail(&out.stdout),
            tail(&out.stderr)
        );
    }
}
