//! The `blobs-emulator` binary as a child process: started with any flags (optionally through a
//! shell line that sets limits first), found by the URL in its banner, killed when dropped.
//!
//! `BLOBS_EMULATOR_TEST_BIN` runs another build instead (say, one from before a change, to
//! compare): settings newer builds have are passed as environment variables, which an older
//! build ignores.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_blobs-emulator");

/// The binary to run: [`BIN`], unless `BLOBS_EMULATOR_TEST_BIN` names another.
pub fn bin() -> String {
    std::env::var("BLOBS_EMULATOR_TEST_BIN")
        .ok()
        .filter(|bin| !bin.is_empty())
        .unwrap_or_else(|| BIN.to_owned())
}

/// A running emulator; killed (SIGKILL) when dropped.
pub struct Emulator {
    pub child: Child,
    pub addr: SocketAddr,
    pub base: String,
}

impl Emulator {
    /// Starts the binary with `args` (plus `--port 0 --quiet`) and waits for its export line.
    pub async fn start(args: &[&str]) -> Emulator {
        Self::start_with(None, args, &[]).await
    }

    /// Like [`Emulator::start`], with environment variables `envs`, and run by
    /// `sh -c "<shell> && exec <binary> <args>"` if `shell` is given, so that the shell can set
    /// limits (`ulimit -n 256`) that the emulator inherits.
    pub async fn start_with(shell: Option<&str>, args: &[&str], envs: &[(&str, &str)]) -> Emulator {
        Self::start_in(&[], shell, args, envs).await
    }

    /// Like [`Emulator::start_with`], run by the command `prefix` (such as `unshare …`), which
    /// must end by running the command it is given in the same process.
    pub async fn start_in(
        prefix: &[&str],
        shell: Option<&str>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> Emulator {
        let bin = bin();
        let mut all = vec!["--port", "0", "--quiet"];
        all.extend_from_slice(args);
        let mut line: Vec<String> = prefix.iter().map(|s| s.to_string()).collect();
        if let Some(shell) = shell {
            line.extend([
                "sh".into(),
                "-c".into(),
                format!("{shell} && exec \"$0\" \"$@\""),
            ]);
        }
        line.push(bin);
        line.extend(all.iter().map(|s| s.to_string()));
        let mut cmd = Command::new(&line[0]);
        cmd.args(&line[1..]);
        cmd.env_remove("RUST_LOG")
            .env("BLOBS_EMULATOR_TOKEN", super::TOKEN)
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("start blobs-emulator");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                let line = lines.next_line().await.unwrap();
                let line = line.expect("the export line before stdout ends");
                if line.starts_with("export NETLIFY_BLOBS_CONTEXT=") {
                    return line;
                }
            }
        })
        .await
        .expect("the emulator started in time");
        // Keep reading stdout, so that the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base = super::edge_url_of_export_line(&line);
        let addr = base.trim_start_matches("http://").parse().unwrap();
        Emulator { child, addr, base }
    }

    /// The child's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("a running child")
    }

    /// The child's resident memory in bytes (`VmRSS`).
    pub fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .expect("a VmRSS line");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Kills the child at once (SIGKILL) and waits for it.
    pub async fn kill(mut self) {
        self.child.kill().await.unwrap();
    }
}
