//! A private PostgreSQL server from the machine's binaries, in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blobjobs_backends::open::{Env, OpenOptions, open_store_with};
use blobjobs_store_api::BlobStore;
use tokio::sync::OnceCell;

use super::supervisor::{StopWith, Supervisor};
use super::{free_ports, random_hex};
use crate::child;

/// Where Debian's `postgresql-15` puts the server binaries.
const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The variable that names another directory holding `initdb` and `postgres`.
pub const BIN_ENV: &str = "BLOBJOBS_PG_BIN";

const READY_WITHIN: Duration = Duration::from_secs(30);

fn bin_dir() -> PathBuf {
    checked_bin_dir(
        std::env::var_os(BIN_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN)),
    )
}

/// `dir`, if it holds `initdb` and `postgres`; otherwise a panic naming the install step.
fn checked_bin_dir(dir: PathBuf) -> PathBuf {
    for tool in ["initdb", "postgres"] {
        assert!(
            dir.join(tool).is_file(),
            "PostgreSQL's {tool} is missing from {}: install the server with \
             `apt-get install -y postgresql-15` (or set {BIN_ENV} to a directory holding \
             initdb and postgres)",
            dir.display()
        );
    }
    dir
}

/// The user and group IDs of the `postgres` user, when this process runs as root (the
/// server refuses to run as root); `None` otherwise.
fn run_as() -> Option<(u32, u32)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?;
    if uid != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let entry = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .unwrap_or_else(|| {
            panic!(
                "the tests run as root, and PostgreSQL must run as the postgres user, which \
                 does not exist: install the server with `apt-get install -y postgresql-15`"
            )
        });
    let fields: Vec<&str> = entry.split(':').collect();
    Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
}

/// `program` run as `ids` (with `setpriv`, which execs it, so stopping the PID stops it).
fn command_as(ids: Option<(u32, u32)>, program: &Path) -> Command {
    match ids {
        Some((uid, gid)) => {
            let mut cmd = Command::new("setpriv");
            cmd.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={gid}"))
                .arg("--clear-groups")
                .arg("--")
                .arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// One PostgreSQL server on a free loopback port, with password authentication over TCP
/// for the superuser `postgres`. Dropping it stops the server and removes its files.
pub struct Postgres {
    supervisor: Supervisor,
    port: u16,
    password: String,
    started_in: Duration,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Runs `initdb`, starts the server and waits until a store answers.
    pub async fn start() -> Postgres {
        let bin = bin_dir();
        let ids = run_as();
        let started = Instant::now();
        // A short path: the Unix socket's path must stay under 107 bytes.
        let base = tempfile::Builder::new()
            .prefix("blobjobs-pg-")
            .tempdir_in("/tmp")
            .unwrap()
            .keep();
        let password = random_hex(16);
        let pwfile = base.join("pw");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&base, Some(uid), Some(gid)).unwrap();
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).unwrap();
        }
        let data = base.join("data");
        let mut initdb = command_as(ids, &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .current_dir(&base)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let out = child::wait(
            initdb
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run initdb: {e}")),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "initdb failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_ports(1)[0];
        let mut server = command_as(ids, &bin.join("postgres"));
        server
            .arg("-D")
            .arg(&data)
            .args(["-c", &format!("port={port}")])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", &format!("unix_socket_directories={}", base.display())])
            // Throwaway data: no fsync. Commits stay synchronous, so a killed server keeps
            // every write it acknowledged (the WAL is in the OS's cache).
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300"])
            .current_dir(&base);
        // SIGINT is PostgreSQL's fast shutdown: it ends sessions and stops in well under a
        // second.
        let stop = StopWith {
            signal: "INT",
            grace_secs: 10,
        };
        let supervisor = Supervisor::start(
            "PostgreSQL",
            &server,
            stop,
            &base.join("server.log"),
            std::slice::from_ref(&base),
        );
        let mut pg = Postgres {
            supervisor,
            port,
            password,
            started_in: Duration::ZERO,
        };
        pg.wait_ready().await;
        pg.started_in = started.elapsed();
        pg
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + READY_WITHIN;
        let store = self.store("ready");
        let mut last = String::new();
        while Instant::now() < deadline {
            self.supervisor.assert_alive();
            match store.get_metadata("sentinel").await {
                Ok(_) => return,
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "PostgreSQL did not answer within {READY_WITHIN:?} ({last}); its log ends with:\n{}",
            self.supervisor.log_tail()
        );
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// A `postgres://` spec with the password in the URL, plus `params` (`a=1&b=2`).
    pub fn spec_with(&self, params: &str) -> String {
        let mut spec = format!(
            "postgres://postgres:{}@127.0.0.1:{}/postgres",
            self.password, self.port
        );
        if !params.is_empty() {
            spec.push('?');
            spec.push_str(params);
        }
        spec
    }

    /// A `postgres://` spec with the password in the URL.
    pub fn spec(&self) -> String {
        self.spec_with("pool_size=4&connect_timeout=5")
    }

    /// A new handle (with its own pool) on store `name`.
    pub fn store(&self, name: &str) -> Arc<dyn BlobStore> {
        let options = OpenOptions {
            env: Env::from_pairs(Vec::<(String, String)>::new()),
            ..OpenOptions::default()
        };
        open_store_with(&self.spec(), name, &options).unwrap()
    }

    /// How long `initdb` and the start took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Stops the server (fast shutdown; its data stays) and waits until it is gone.
    pub fn stop(&mut self) {
        self.supervisor.stop_engine();
    }

    /// Starts the server again on the same data and port, and waits until it answers.
    pub async fn restart(&mut self) {
        self.supervisor.start_engine();
        self.wait_ready().await;
    }
}

/// One PostgreSQL per test binary, started by the first test that asks and stopped when the
/// test process ends.
pub async fn shared_postgres() -> &'static Postgres {
    static SHARED: OnceCell<Postgres> = OnceCell::const_new();
    SHARED
        .get_or_init(|| async {
            let pg = Postgres::start().await;
            eprintln!("PostgreSQL started in {:?}", pg.started_in());
            pg
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[should_panic(expected = "install the server with `apt-get install -y postgresql-15`")]
    fn missing_binaries_name_the_install_step() {
        let empty = tempfile::tempdir().unwrap();
        checked_bin_dir(empty.path().to_path_buf());
    }
}
