//! The servers the HTTP benchmarks talk to, each a child process on 127.0.0.1 with a free
//! port: the release `blobs-emulator` and the official `BlobsServer` of `@netlify/blobs`
//! (through `interop/bench/server.mjs`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use blobjobs_backends::http::BlobsContext;
use blobjobs_test_support::interop::Unavailable;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};

use super::load::Target;

/// How long a server may take to print its address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The site ID every benchmark request uses.
pub const SITE: &str = "bench-site";

/// How the emulator stores what it is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// Files, every write fsynced (the default of `blobs-emulator serve`).
    Durable,
    /// Files, `--no-fsync`.
    NoFsync,
    /// `--in-memory`.
    Memory,
}

/// A running server; dropping it kills the process.
pub struct Server {
    /// The server's address.
    pub target: Target,
    child: Child,
    /// Closing it asks the Node script to stop.
    stdin: Option<ChildStdin>,
    /// Keeps the data directory alive as long as the server.
    dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts `blobs-emulator serve` from `exe` with `storage`, on 127.0.0.1 and a free port.
    pub async fn emulator(exe: &Path, storage: Storage, token: &str) -> Result<Server> {
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--quiet"])
            .args(["--token", token, "--site", SITE]);
        let dir = match storage {
            Storage::Memory => {
                cmd.arg("--in-memory");
                None
            }
            Storage::Durable | Storage::NoFsync => {
                let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
                cmd.arg("--dir").arg(dir.path());
                if storage == Storage::NoFsync {
                    cmd.arg("--no-fsync");
                }
                Some(dir)
            }
        };
        Self::start_emulator(cmd, exe, token, dir).await
    }

    /// Starts `blobs-emulator serve --store-url URL` from `exe`, with `env` (the engine's
    /// credentials), on 127.0.0.1 and a free port.
    pub async fn emulator_over(
        exe: &Path,
        url: &str,
        env: &[(String, String)],
        token: &str,
    ) -> Result<Server> {
        let mut cmd = Command::new(exe);
        cmd.args(["serve", "--host", "127.0.0.1", "--port", "0", "--quiet"])
            .args(["--site", SITE, "--store-url", url])
            .env("BLOBS_EMULATOR_TOKEN", token)
            .envs(env.iter().map(|(k, v)| (k, v)));
        Self::start_emulator(cmd, exe, token, None).await
    }

    async fn start_emulator(
        mut cmd: Command,
        exe: &Path,
        token: &str,
        dir: Option<tempfile::TempDir>,
    ) -> Result<Server> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let line = first_line(&mut child).await?;
        let encoded = line
            .trim()
            .strip_prefix("export NETLIFY_BLOBS_CONTEXT=")
            .with_context(|| format!("unexpected first line from the emulator: {line:?}"))?;
        let url = BlobsContext::decode(encoded)
            .edge_url
            .context("the emulator's context has no edge url")?;
        let addr: SocketAddr = url
            .trim_start_matches("http://")
            .parse()
            .with_context(|| format!("the emulator's url {url:?} is not an address"))?;
        Ok(Server {
            target: target(addr, token),
            child,
            stdin: None,
            dir,
        })
    }

    /// Starts the official `BlobsServer` through `interop/bench/server.mjs`.
    pub async fn node(interop: &Path, token: &str) -> Result<Server> {
        let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
        let mut child = Command::new("node")
            .arg(Path::new("bench").join("server.mjs"))
            .arg(dir.path())
            .arg(token)
            .current_dir(interop)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start node")?;
        let stdin = child.stdin.take();
        let line = first_line(&mut child).await?;
        let port = serde_json::from_str::<serde_json::Value>(line.trim())
            .ok()
            .and_then(|v| v["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .with_context(|| format!("unexpected first line from the node server: {line:?}"))?;
        Ok(Server {
            target: target(SocketAddr::from(([127, 0, 0, 1], port)), token),
            child,
            stdin,
            dir: Some(dir),
        })
    }

    /// The base URL of the server.
    pub fn url(&self) -> String {
        format!("http://{}", self.target.addr)
    }

    /// Stops the server: the Node script on end of input, the emulator by a kill (its data
    /// directory is thrown away anyway). Returns the data directory, which is removed when
    /// dropped: removing tens of thousands of files can take a while on a busy disk, so the
    /// caller chooses when.
    pub async fn stop(mut self) -> Option<tempfile::TempDir> {
        let mut stopped = false;
        if let Some(stdin) = self.stdin.take() {
            drop(stdin);
            stopped = tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_ok();
        }
        if !stopped {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
        self.dir.take()
    }
}

fn target(addr: SocketAddr, token: &str) -> Target {
    Target {
        addr,
        token: token.to_owned(),
        site: SITE.to_owned(),
    }
}

/// The first line a child prints on stdout; the rest is drained so it never blocks.
async fn first_line(child: &mut Child) -> Result<String> {
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(START_TIMEOUT, lines.next_line())
        .await
        .context("the server did not print its address in time")??;
    let Some(line) = line else {
        bail!("the server exited before printing its address");
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(line)
}

/// What the Node side of the benchmarks needs, if it is there.
#[derive(Debug, Clone)]
pub struct Node {
    /// The `interop/` folder, where `node_modules` is.
    pub interop: PathBuf,
    /// `node --version`.
    pub node_version: String,
    /// The installed `@netlify/blobs` version.
    pub blobs_version: String,
}

/// Gets the Node side ready in `root`'s `interop/` folder: `node` and `npm` found, the npm
/// packages installed if they are missing (by the same code as the interop tests). `Ok(Err)`
/// says why it cannot run because Node.js is not installed, which leaves the official server
/// and client out of the run; a failed install is an error.
pub async fn prepare_node(root: &Path) -> Result<std::result::Result<Node, String>> {
    let interop = root.join("interop");
    if !interop.join("node_modules/@netlify/blobs").exists() {
        eprintln!("==> installing the npm packages of interop/ for the official server and client");
    }
    match blobjobs_test_support::interop::install(&interop).await {
        Ok(()) => {}
        Err(why @ Unavailable::NotInstalled(_)) => return Ok(Err(why.to_string())),
        Err(why) => bail!("the official server and client cannot run: {why}"),
    }
    let output = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot start node")?;
    let node_version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let manifest = interop.join("node_modules/@netlify/blobs/package.json");
    let blobs_version = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["version"].as_str().map(str::to_owned))
        .with_context(|| format!("npm ci left no readable {}", manifest.display()))?;
    Ok(Ok(Node {
        interop,
        node_version,
        blobs_version,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version of `@netlify/blobs` that the lock file of `interop/` pins.
    fn pinned(interop: &Path) -> String {
        let lock = std::fs::read_to_string(interop.join("package-lock.json")).unwrap();
        let lock: serde_json::Value = serde_json::from_str(&lock).unwrap();
        lock["packages"]["node_modules/@netlify/blobs"]["version"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A copy of `interop/` without its packages, as a fresh clone has it: the benchmarks
    /// install them rather than leave the official side out.
    #[tokio::test]
    async fn missing_npm_packages_are_installed() {
        let root = crate::root();
        let fresh = tempfile::tempdir().unwrap();
        let interop = fresh.path().join("interop");
        std::fs::create_dir(&interop).unwrap();
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(root.join("interop").join(file), interop.join(file)).unwrap();
        }
        match prepare_node(fresh.path()).await.unwrap() {
            Ok(node) => {
                assert_eq!(node.blobs_version, pinned(&root.join("interop")));
                assert!(node.node_version.starts_with('v'), "{}", node.node_version);
                assert!(interop.join("node_modules/@netlify/blobs").is_dir());
            }
            // Only a machine without Node.js runs without the official side, and says why.
            Err(why) => {
                let node = Command::new("node").arg("--version").output().await;
                assert!(
                    node.is_err(),
                    "node is installed, yet the official side cannot run: {why}"
                );
                assert!(why.contains("node is not installed"), "{why}");
            }
        }
    }
}
