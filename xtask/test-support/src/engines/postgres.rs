//! A private PostgreSQL server from the machine's binaries, in a temporary directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use blobjobs_backends::open::{Env, OpenOptions, open_store_with};
use blobjobs_store_api::BlobStore;
use tokio::sync::OnceCell;

use super::supervisor::{StopWith, Supervisor};
use super::{Unavailable, free_ports, random_hex};
use crate::child;

/// Where Debian's `postgresql-15` puts the server binaries.
const DEFAULT_BIN: &str = "/usr/lib/postgresql/15/bin";
/// The variable that names another directory holding `initdb` and `postgres`.
pub const BIN_ENV: &str = "BLOBJOBS_PG_BIN";

const READY_WITHIN: Duration = Duration::from_secs(30);

/// The install step every missing piece names.
const INSTALL_STEP: &str = "apt-get install -y postgresql-15 (or set BLOBJOBS_PG_BIN to a \
                            directory holding initdb and postgres)";

fn bin_dir() -> Result<PathBuf, Unavailable> {
    checked_bin_dir(
        std::env::var_os(BIN_ENV)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_BIN)),
    )
}

/// `dir`, if it holds `initdb` and `postgres`; otherwise why not, naming the install step.
fn checked_bin_dir(dir: PathBuf) -> Result<PathBuf, Unavailable> {
    for tool in ["initdb", "postgres"] {
        if !dir.join(tool).is_file() {
            return Err(Unavailable::new(
                format!(
                    "PostgreSQL's {tool} is missing from {} (the server is not installed)",
                    dir.display()
                ),
                INSTALL_STEP,
            ));
        }
    }
    Ok(dir)
}

/// The user and group IDs of the `postgres` user, when this process runs as root (the
/// server refuses to run as root); `None` otherwise.
fn run_as() -> Result<Option<(u32, u32)>, Unavailable> {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return Ok(None);
    };
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next());
    if uid != Some("0") {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let fields: Option<Vec<&str>> = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .map(|entry| entry.split(':').collect());
    let ids = fields.and_then(|f| Some((f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?)));
    match ids {
        Some(ids) => Ok(Some(ids)),
        None => Err(Unavailable::new(
            "running as root, PostgreSQL must run as the postgres user, which does not exist",
            INSTALL_STEP,
        )),
    }
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
    /// Runs `initdb`, starts the server and waits until a store answers. Panics if it
    /// cannot ([`Postgres::try_start`] returns why).
    pub async fn start() -> Postgres {
        Self::try_start()
            .await
            .unwrap_or_else(|why| panic!("{why}"))
    }

    /// [`Postgres::start`], or why PostgreSQL cannot be found or started.
    pub async fn try_start() -> Result<Postgres, Unavailable> {
        let bin = bin_dir()?;
        let ids = run_as()?;
        let failed = |e: std::io::Error| Unavailable::failed("PostgreSQL", e);
        let started = Instant::now();
        // A short path: the Unix socket's path must stay under 107 bytes.
        let base = tempfile::Builder::new()
            .prefix("blobjobs-pg-")
            .tempdir_in("/tmp")
            .map_err(failed)?
            .keep();
        let password = random_hex(16);
        let pwfile = base.join("pw");
        std::fs::write(&pwfile, format!("{password}\n")).map_err(failed)?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&base, Some(uid), Some(gid)).map_err(failed)?;
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid)).map_err(failed)?;
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
            initdb.spawn().map_err(|e| {
                Unavailable::failed("PostgreSQL", format!("cannot run initdb: {e}"))
            })?,
            Duration::from_secs(60),
        );
        if !out.status.success() {
            let _ = std::fs::remove_dir_all(&base);
            return Err(Unavailable::failed(
                "PostgreSQL",
                format!(
                    "initdb failed ({}):\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr)
                ),
            ));
        }
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
        )?;
        let mut pg = Postgres {
            supervisor,
            port,
            password,
            started_in: Duration::ZERO,
        };
        pg.try_wait_ready().await?;
        pg.started_in = started.elapsed();
        Ok(pg)
    }

    async fn wait_ready(&self) {
        self.try_wait_ready()
            .await
            .unwrap_or_else(|why| panic!("{why}"));
    }

    async fn try_wait_ready(&self) -> Result<(), Unavailable> {
        let deadline = Instant::now() + READY_WITHIN;
        let store = self.store("ready");
        let mut last = String::new();
        while Instant::now() < deadline {
            self.supervisor.check_alive()?;
            match store.get_metadata("sentinel").await {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(Unavailable::failed(
            "PostgreSQL",
            format!(
                "no answer within {READY_WITHIN:?} ({last}); its log ends with:\n{}",
                self.supervisor.log_tail()
            ),
        ))
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
    fn missing_binaries_name_the_install_step() {
        let empty = tempfile::tempdir().unwrap();
        let why = checked_bin_dir(empty.path().to_path_buf()).unwrap_err();
        assert!(why.is_missing());
        assert!(
            why.to_string()
                .contains("the install step is: apt-get install -y postgresql-15"),
            "{why}"
        );
    }
}
