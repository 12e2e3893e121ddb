//! The PostgreSQL backend: every store a range of rows in one table, reached through
//! `tokio-postgres` and a `deadpool-postgres` connection pool.
//!
//! Opened by [`PgStore::open`] or by a `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` spec (see
//! [`crate::open`]); what the URL leaves out comes from `PGHOST`, `PGPORT`, `PGUSER`,
//! `PGPASSWORD` and `PGDATABASE`, as with `psql`. The password never appears in `Debug`
//! output, logs or error messages, which name the server as `host:port/db`. Connections are
//! plain TCP or a Unix socket: TLS to the server is not offered yet (`sslmode=require` fails
//! at connect).
//!
//! # Table
//!
//! ```sql
//! CREATE TABLE blobjobs_blobs (
//!     store       bytea  NOT NULL,   -- the store name, UTF-8
//!     key         bytea  NOT NULL,   -- the key, UTF-8 (bytea: keys may hold NUL)
//!     value       bytea  NOT NULL,
//!     metadata    text   NOT NULL,   -- the metadata's compact JSON text, kept verbatim
//!     etag        text   NOT NULL,   -- 128 random bits, new on every write
//!     size        bigint NOT NULL,
//!     modified_ms bigint NOT NULL,
//!     PRIMARY KEY (store, key)
//! );
//! ```
//!
//! `bytea` compares byte by byte, so the primary key's index orders keys exactly as the
//! [`BlobStore`](blobjobs_store_api::BlobStore) contract does (UTF-8 byte order), whatever
//! the database's collation. Metadata is kept as text rather than `jsonb`, which would
//! reorder keys and rewrite numbers.
//!
//! # One statement per write
//!
//! Every write is a single statement, so the server checks the condition and writes under
//! the row's lock; nothing is read first:
//!
//! * always: `INSERT … ON CONFLICT (store, key) DO UPDATE SET …`;
//! * only if new: `INSERT … ON CONFLICT (store, key) DO NOTHING` (one row affected: written);
//! * only if match: `UPDATE … WHERE store = $1 AND key = $2 AND etag = $3` (one row: written).
//!
//! The ETag is a fresh [`Etag::random`](blobjobs_store_api::Etag::random) per write. When a
//! write fails in a way that may have applied it (the connection broke after the statement
//! was sent), the backend reads the row back on a fresh connection: if it carries this
//! write's ETag, the write is reported as done; otherwise the retryable error stands.
//!
//! Each statement is prepared once per pooled connection and then taken from the
//! connection's cache, so an operation costs one round trip (text sent to be parsed costs
//! two, which halved throughput). Every statement names its columns, so a later schema step
//! that adds one does not change a cached statement's result type.
//!
//! # Listing
//!
//! A page is an index range scan of the primary key: `WHERE store = $1 AND key >= $2 AND
//! key < $3 ORDER BY key LIMIT n`, from the cursor's key (or the prefix) to the end of the
//! prefix's range, in batches fed to the shared
//! [`Paginator`](blobjobs_store_api::list::Paginator) until the page is full. The cursor is
//! the last key of the page, so concurrent writes never shift a page.
//!
//! # Schema versions
//!
//! The first operation of each handle makes sure the schema exists and is current, in one
//! transaction under a transaction-level advisory lock, so that processes starting together
//! create it once. `blobjobs_schema` holds one row with the schema's version. A database at
//! version `n` below this build's [`SCHEMA_VERSION`] gets the migration steps `n + 1` up to
//! it, in that one transaction; each future change of the table is a new step appended to
//! the list in `schema.rs`, and never an edit of an old one. A database at a newer version
//! than this build knows is refused with [`ErrorKind::Protocol`](blobjobs_store_api::ErrorKind::Protocol)
//! rather than written with an old layout.
//!
//! # Values
//!
//! Values are single `bytea` cells, read and written whole: the streaming methods use the
//! trait's buffering defaults (bounded by the caller's `max_size`). PostgreSQL caps a
//! `bytea` at 1 GiB; the backend is meant for job records and values of megabytes.

mod catalog;
mod error;
mod schema;
mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use blobjobs_store_api::{Error, Result, validate_store_name};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::OnceCell;

pub use schema::SCHEMA_VERSION;

/// Where and how a [`PgStore`] reaches its database.
#[derive(Clone)]
pub struct PgConfig {
    config: tokio_postgres::Config,
    /// The most connections one handle keeps open.
    pub pool_size: usize,
    /// How long an operation waits for a free connection.
    pub wait_timeout: Duration,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("server", &self.server())
            .field("user", &self.config.get_user())
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

/// The parameters of a `postgres://` URL that the backend reads itself; the others go to
/// `tokio-postgres`.
const OWN_PARAMS: &[&str] = &["pool_size"];

impl PgConfig {
    /// Parses a `postgres://` or `postgresql://` URL, or a `key=value` connection string,
    /// filling what it leaves out from `var` (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
    /// `PGDATABASE`). Errors never repeat the URL, which may hold a password.
    pub fn parse(url: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<PgConfig> {
        let (base, own) = split_own_params(url)?;
        let mut config: tokio_postgres::Config = base.parse().map_err(|_| {
            Error::invalid(
                "not a valid postgres url: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE",
            )
        })?;
        let var = |name: &str| var(name).filter(|v| !v.is_empty());
        if config.get_hosts().is_empty() {
            config.host(var("PGHOST").unwrap_or_else(|| "localhost".to_owned()));
        }
        if config.get_ports().is_empty()
            && let Some(port) = var("PGPORT")
        {
            let port = port
                .parse()
                .map_err(|_| Error::invalid("PGPORT is not a port number"))?;
            config.port(port);
        }
        if config.get_user().is_none() {
            config.user(var("PGUSER").unwrap_or_else(|| "postgres".to_owned()));
        }
        if config.get_password().is_none()
            && let Some(password) = var("PGPASSWORD")
        {
            config.password(password);
        }
        if config.get_dbname().is_none()
            && let Some(db) = var("PGDATABASE")
        {
            config.dbname(db);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("blobjobs");
        let mut pg = PgConfig {
            config,
            pool_size: 8,
            wait_timeout: Duration::from_secs(30),
        };
        for (name, value) in own {
            if name == "pool_size" {
                pg.pool_size = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| Error::invalid("pool_size must be between 1 and 1000"))?;
            }
        }
        Ok(pg)
    }

    /// `host:port/database`, for messages (never the password).
    pub fn server(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_owned(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self
            .config
            .get_dbname()
            .or(self.config.get_user())
            .unwrap_or("postgres");
        format!("{host}:{port}/{db}")
    }
}

/// Splits the backend's own query parameters off a URL.
fn split_own_params(url: &str) -> Result<(String, Vec<(String, String)>)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut own = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name == "password" {
            return Err(Error::invalid(
                "put the postgres password in the url's user part or in PGPASSWORD",
            ));
        }
        if OWN_PARAMS.contains(&name) {
            own.push((name.to_owned(), value.to_owned()));
        } else {
            kept.push(pair);
        }
    }
    let base = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((base, own))
}

/// One named store in a PostgreSQL database (see the [module docs](self)). Every handle on
/// the same database and name sees the same keys, from any process or machine. Clones share
/// one connection pool; [`PgStore::open`] makes a new pool.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    /// Set once this handle's pool has checked (and if need be created) the schema; shared
    /// by its siblings.
    schema: Arc<OnceCell<()>>,
    store: Vec<u8>,
    name: String,
    /// `host:port/database`, for messages.
    server: String,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("server", &self.inner.server)
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Opens the store called `name`. Nothing is sent yet: connections open on demand, and
    /// the first operation creates or checks the schema (or use
    /// [`open_store_checked`](crate::open::open_store_checked)).
    pub fn open(config: &PgConfig, name: &str) -> Result<PgStore> {
        validate_store_name(name)?;
        let manager = Manager::from_config(
            config.config.clone(),
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(config.wait_timeout))
            .build()
            .map_err(|e| Error::invalid(format!("cannot set up the connection pool: {e}")))?;
        Ok(PgStore {
            inner: Arc::new(Inner {
                pool,
                schema: Arc::new(OnceCell::new()),
                store: name.as_bytes().to_vec(),
                name: name.to_owned(),
                server: config.server(),
            }),
        })
    }

    /// The store called `name` in the same database, on this handle's connection pool: a
    /// server holding many stores (a catalog) keeps one pool, not one per store.
    pub fn sibling(&self, name: &str) -> Result<PgStore> {
        validate_store_name(name)?;
        Ok(self.sibling_unchecked(name))
    }

    /// The server, for messages: `host:port/database`, never the password.
    pub fn server(&self) -> &str {
        &self.inner.server
    }

    /// The store called `name` on this handle's pool, whatever the name.
    fn sibling_unchecked(&self, name: &str) -> PgStore {
        PgStore {
            inner: Arc::new(Inner {
                pool: self.inner.pool.clone(),
                schema: self.inner.schema.clone(),
                store: name.as_bytes().to_vec(),
                name: name.to_owned(),
                server: self.inner.server.clone(),
            }),
        }
    }
}
