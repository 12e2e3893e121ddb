//! Opening any backend from one string, so that a binary, a test or a serverless function
//! can be pointed at a store by configuration alone.
//!
//! | spec | store |
//! |---|---|
//! | `memory://` | a new, empty [`MemoryStore`]: this process only |
//! | `file://PATH` | the [`FileStore`] named `store_name` under directory `PATH` |
//! | `netlify://` or an empty spec | an [`HttpStore`] configured by `NETLIFY_BLOBS_CONTEXT` |
//! | `http://HOST:PORT[/PATH]` | an [`HttpStore`] for a server such as the emulator |
//! | `https://HOST[:PORT][/PATH]` | the same over TLS (the `tls` feature, on by default) |
//! | `s3://BUCKET[/PREFIX]` | an [`S3Store`](crate::s3::S3Store) (the `s3` feature, on by default) |
//! | `postgres://…` or `postgresql://…` | a [`PgStore`](crate::postgres::PgStore) (the `postgres` feature, on by default) |
//!
//! Netlify and `http(s)://` specs take query parameters:
//!
//! * `consistency=strong|eventual` (default `strong`: every read sees the latest write,
//!   which compare-and-swap loops such as the job store need);
//! * `region=R` (one of [`REGIONS`](crate::http::REGIONS));
//! * `deploy` or `deploy=ID`: open a deploy store (named `store_name` unless it is empty)
//!   instead of a site store, for the configured or the given deploy;
//! * for `http(s)://` only: `site=ID` (the site ID; default `NETLIFY_BLOBS_SITE_ID`, then
//!   [`DEFAULT_SITE_ID`]) and `mode=edge|api` (default `edge`).
//!
//! The token of an `http://` spec comes from [`OpenOptions::token`] or the
//! `NETLIFY_BLOBS_TOKEN` environment variable, **never from the spec**: a spec holding a
//! `token` parameter or a password is refused, and error messages never repeat the spec's
//! query.
//!
//! An `s3://` spec takes `endpoint=URL` (an S3-compatible engine such as
//! `http://127.0.0.1:8333`; default `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, then AWS
//! itself) and `region=R` (default `AWS_REGION`, then `AWS_DEFAULT_REGION`, then
//! `us-east-1`). Its keys come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN` only: a spec holding a key is refused.
//!
//! A `postgres://USER[:PASSWORD]@HOST[:PORT]/DB` spec is a libpq-style URL: what it leaves
//! out comes from `PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD` and `PGDATABASE`; it also takes
//! `pool_size=N` (connections per handle, default 8) and `tokio-postgres`'s parameters such as
//! `connect_timeout=SECONDS`. Its `Debug` output and every error name the server as
//! `host:port/db`, never the password.
//!
//! Opening never contacts a server; [`open_store_checked`] also makes one cheap read, so that
//! a server that is down or refuses the credentials shows at once.
//!
//! `https://` endpoints (a `https://` spec, or the URLs of `NETLIFY_BLOBS_CONTEXT`, as on
//! Netlify itself) are checked against the built-in webpki root certificates and, if
//! [`OpenOptions::extra_root_pem`] or the `NETLIFY_BLOBS_CA_FILE` environment variable
//! ([`CA_FILE_ENV`]) names a PEM file, its certificates too. Without the `tls` feature they
//! fail with [`ErrorKind::InvalidInput`](blobjobs_store_api::ErrorKind::InvalidInput).
//!
//! This file holds the entry points and what they take besides the spec; `spec.rs` parses a
//! spec and opens what it names, `engines.rs` does so for `s3://` and `postgres://`.
//!
//! [`MemoryStore`]: crate::memory::MemoryStore
//! [`FileStore`]: crate::file::FileStore
//! [`HttpStore`]: crate::http::HttpStore

mod engines;
mod spec;

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use blobjobs_store_api::{BlobStore, Result};

use crate::file::FileOptions;
use crate::http::{CA_FILE_ENV, RetryPolicy, Token};

#[cfg(feature = "s3")]
pub(crate) use engines::s3_config;
pub use spec::{Params, PgUrl, StoreSpec};

/// The environment variable that holds the token of an `http://` spec.
pub const TOKEN_ENV: &str = "NETLIFY_BLOBS_TOKEN";
/// The environment variable that holds the site ID of an `http://` spec.
pub const SITE_ID_ENV: &str = "NETLIFY_BLOBS_SITE_ID";
/// The site ID of an `http://` spec when none is given (the emulator's default site).
pub use blobjobs_protocol::names::DEFAULT_SITE_ID;

/// Where environment variables are read from: the process environment by default, or a
/// fixed map (tests, or a host that passes configuration explicitly).
#[derive(Clone, Default)]
pub enum Env {
    /// `std::env::var`.
    #[default]
    Process,
    /// These variables and no others.
    Map(Arc<HashMap<String, String>>),
}

impl Env {
    /// An environment made of `pairs` only.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Env {
        Env::Map(Arc::new(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        ))
    }

    /// The value of `name`, if set.
    pub fn var(&self, name: &str) -> Option<String> {
        match self {
            Env::Process => std::env::var(name).ok(),
            Env::Map(map) => map.get(name).cloned(),
        }
    }
}

impl fmt::Debug for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets (the token, the context); show names only.
        match self {
            Env::Process => f.write_str("Env::Process"),
            Env::Map(map) => {
                let mut names: Vec<&String> = map.keys().collect();
                names.sort();
                f.debug_tuple("Env::Map").field(&names).finish()
            }
        }
    }
}

/// What [`open_store_with`] uses besides the spec.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// The token of an `http://` spec; `NETLIFY_BLOBS_TOKEN` when `None`.
    pub token: Option<Token>,
    /// The site ID of an `http://` spec; the spec's `site=`, `NETLIFY_BLOBS_SITE_ID` or
    /// [`DEFAULT_SITE_ID`] when `None`.
    pub site_id: Option<String>,
    /// Retries and timeouts of HTTP stores.
    pub retry: RetryPolicy,
    /// Where environment variables come from.
    pub env: Env,
    /// Settings of file stores.
    pub file: FileOptions,
    /// A PEM file of extra root certificates trusted by HTTP stores for `https://`;
    /// `NETLIFY_BLOBS_CA_FILE` ([`CA_FILE_ENV`]) when `None`.
    pub extra_root_pem: Option<PathBuf>,
}

impl OpenOptions {
    /// The extra root certificate file: the option, else a non-empty [`CA_FILE_ENV`].
    fn ca_file(&self) -> Option<PathBuf> {
        self.extra_root_pem.clone().or_else(|| {
            self.env
                .var(CA_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }
}

/// Opens the store called `store_name` from `spec` (see the [module docs](self)), reading
/// the environment of this process.
///
/// ```no_run
/// # async fn run() -> blobjobs_store_api::Result<()> {
/// let jobs = blobjobs_backends::open::open_store("file://./blobs", "rubric-jobs")?;
/// jobs.set("hello", "world".into(), Default::default()).await?;
/// # Ok(()) }
/// ```
pub fn open_store(spec: &str, store_name: &str) -> Result<Arc<dyn BlobStore>> {
    open_store_with(spec, store_name, &OpenOptions::default())
}

/// Like [`open_store_with`], then one cheap read (the metadata of a key that need not
/// exist), so that a server that is down, refuses the credentials or lacks the bucket fails
/// here, with a message that names it (host and port, never a credential). For PostgreSQL
/// the read also creates or checks the schema.
pub async fn open_store_checked(
    spec: &str,
    store_name: &str,
    options: &OpenOptions,
) -> Result<Arc<dyn BlobStore>> {
    let store = open_store_with(spec, store_name, options)?;
    store.get_metadata(PROBE_KEY).await?;
    Ok(store)
}

/// The key [`open_store_checked`] reads.
pub(crate) const PROBE_KEY: &str = "blobjobs-open-probe";

/// Like [`open_store`], with explicit options.
pub fn open_store_with(
    spec: &str,
    store_name: &str,
    options: &OpenOptions,
) -> Result<Arc<dyn BlobStore>> {
    StoreSpec::parse(spec)?.open(store_name, options)
}

#[cfg(test)]
mod tests;
