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

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use blobjobs_store_api::{BlobStore, Error, Result, validate_store_name};

use crate::file::{FileOptions, FileStore};
use crate::http::{
    BlobsContext, CA_FILE_ENV, CONTEXT_ENV, ClientOptions, Consistency, HttpStore, RetryPolicy,
    StoreKind, Token,
};
use crate::memory::MemoryStore;

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

/// A parsed store spec (see the [module docs](self)).
#[derive(Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// `memory://`.
    Memory,
    /// `file://PATH`.
    File(PathBuf),
    /// `netlify://` or empty: the environment context.
    Netlify(Params),
    /// `http://…` or `https://…`: a server at this base URL.
    Http {
        /// The URL without its query.
        url: String,
        /// Its query parameters.
        params: Params,
    },
    /// `s3://BUCKET[/PREFIX]?endpoint=…&region=…`.
    S3 {
        /// The bucket.
        bucket: String,
        /// Folders under which the stores live (no leading or trailing `/`).
        prefix: String,
        /// `endpoint`.
        endpoint: Option<String>,
        /// `region`.
        region: Option<String>,
    },
    /// `postgres://…` or `postgresql://…`.
    Postgres(PgUrl),
}

/// A PostgreSQL URL, which may hold a password: its `Debug` output shows neither the
/// password nor the rest of the user part.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl(String);

impl PgUrl {
    /// The URL as given.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL fit for messages: `postgres://HOST/DB`, without the user part (which may hold
    /// a password) and without the query.
    pub fn redacted(&self) -> String {
        let rest = self.0.split_once("://").map_or("", |(_, r)| r);
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let db = path.split('?').next().unwrap_or("");
        format!("postgres://{host}/{db}")
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({})", self.redacted())
    }
}

impl fmt::Debug for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreSpec::Memory => f.write_str("Memory"),
            StoreSpec::File(p) => f.debug_tuple("File").field(p).finish(),
            StoreSpec::Netlify(p) => f.debug_tuple("Netlify").field(p).finish(),
            StoreSpec::Http { url, params } => f
                .debug_struct("Http")
                .field("url", url)
                .field("params", params)
                .finish(),
            StoreSpec::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("prefix", prefix)
                .field("endpoint", endpoint)
                .field("region", region)
                .finish(),
            StoreSpec::Postgres(url) => f.debug_tuple("Postgres").field(url).finish(),
        }
    }
}

/// The query parameters of a Netlify or `http://` spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    /// `consistency`.
    pub consistency: Option<Consistency>,
    /// `region`.
    pub region: Option<String>,
    /// `deploy` (`Some(None)`) or `deploy=ID` (`Some(Some(ID))`).
    pub deploy: Option<Option<String>>,
    /// `site`.
    pub site: Option<String>,
    /// `mode=api`.
    pub api_mode: bool,
}

impl StoreSpec {
    /// Parses a spec. Errors never include the spec's query, which could hold a secret
    /// pasted by mistake.
    pub fn parse(spec: &str) -> Result<StoreSpec> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Ok(StoreSpec::Netlify(Params::default()));
        }
        let Some((scheme, rest)) = spec.split_once("://") else {
            return Err(Error::invalid(
                "a store spec looks like memory://, file://PATH, netlify://, http://HOST:PORT, s3://BUCKET or postgres://HOST/DB",
            ));
        };
        match scheme {
            "memory" => {
                if rest.is_empty() {
                    Ok(StoreSpec::Memory)
                } else {
                    Err(Error::invalid("memory:// takes nothing after the scheme"))
                }
            }
            "file" => {
                if rest.is_empty() {
                    return Err(Error::invalid("file:// needs a directory: file://PATH"));
                }
                Ok(StoreSpec::File(PathBuf::from(rest)))
            }
            "netlify" => {
                let (host, query) = rest.split_once('?').unwrap_or((rest, ""));
                if !host.is_empty() && host != "/" {
                    return Err(Error::invalid(
                        "netlify:// takes no host; the context comes from NETLIFY_BLOBS_CONTEXT",
                    ));
                }
                let params = parse_params(query)?;
                if params.site.is_some() || params.api_mode {
                    return Err(Error::invalid(
                        "site and mode come from NETLIFY_BLOBS_CONTEXT for netlify://",
                    ));
                }
                Ok(StoreSpec::Netlify(params))
            }
            "http" | "https" => {
                let (base, query) = rest.split_once('?').unwrap_or((rest, ""));
                let authority = base.split('/').next().unwrap_or("");
                if authority.contains('@') {
                    return Err(Error::invalid(
                        "a store url must not hold credentials; set NETLIFY_BLOBS_TOKEN instead",
                    ));
                }
                if authority.is_empty() {
                    return Err(Error::invalid("the store url has no host"));
                }
                Ok(StoreSpec::Http {
                    url: format!("{scheme}://{base}"),
                    params: parse_params(query)?,
                })
            }
            "s3" => parse_s3(rest),
            "postgres" | "postgresql" => Ok(StoreSpec::Postgres(PgUrl(spec.to_owned()))),
            _ => Err(Error::invalid(format!(
                "unknown store scheme {scheme:?}; use memory://, file://, netlify://, http://, s3:// or postgres://"
            ))),
        }
    }

    /// Opens the store called `store_name` that this spec names.
    pub fn open(&self, store_name: &str, options: &OpenOptions) -> Result<Arc<dyn BlobStore>> {
        match self {
            StoreSpec::Memory => {
                validate_store_name(store_name)?;
                Ok(Arc::new(MemoryStore::new()))
            }
            StoreSpec::File(root) => Ok(Arc::new(FileStore::open(root, store_name, options.file)?)),
            StoreSpec::Netlify(params) => {
                let context = BlobsContext::from_lookup(&|name| options.env.var(name));
                if context.is_none() {
                    return Err(Error::invalid(format!(
                        "netlify:// needs {CONTEXT_ENV}; set it or use an http:// spec"
                    )));
                }
                let client = ClientOptions {
                    region: params.region.clone(),
                    consistency: params.consistency.unwrap_or(Consistency::Strong),
                    retry: options.retry.clone(),
                    extra_root_pem: options.ca_file(),
                    ..ClientOptions::default()
                };
                let kind = kind_of(store_name, params);
                Ok(Arc::new(HttpStore::open(&client, context.as_ref(), &kind)?))
            }
            StoreSpec::Http { url, params } => {
                let token = match &options.token {
                    Some(token) => token.clone(),
                    None => options.env.var(TOKEN_ENV).map(Token::new).ok_or_else(|| {
                        Error::invalid(format!("an http:// store needs a token: set {TOKEN_ENV}"))
                    })?,
                };
                let site_id = options
                    .site_id
                    .clone()
                    .or_else(|| params.site.clone())
                    .or_else(|| options.env.var(SITE_ID_ENV))
                    .unwrap_or_else(|| DEFAULT_SITE_ID.to_owned());
                let mut client = ClientOptions {
                    site_id: Some(site_id),
                    token: Some(token),
                    region: params.region.clone(),
                    consistency: params.consistency.unwrap_or(Consistency::Strong),
                    retry: options.retry.clone(),
                    extra_root_pem: options.ca_file(),
                    ..ClientOptions::default()
                };
                if params.api_mode {
                    client.api_url = Some(url.clone());
                } else {
                    client.edge_url = Some(url.clone());
                    client.uncached_edge_url = Some(url.clone());
                }
                // A deploy store needs a region in edge mode; a single server has one.
                let context = params.deploy.as_ref().map(|_| BlobsContext {
                    primary_region: Some("dev".to_owned()),
                    ..BlobsContext::default()
                });
                let kind = kind_of(store_name, params);
                Ok(Arc::new(HttpStore::open(&client, context.as_ref(), &kind)?))
            }
            StoreSpec::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => open_s3(bucket, prefix, endpoint, region, store_name, options),
            StoreSpec::Postgres(url) => open_postgres(url, store_name, options),
        }
    }
}

/// Parses what follows `s3://`.
fn parse_s3(rest: &str) -> Result<StoreSpec> {
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
    if bucket.contains('@') || bucket.contains(':') {
        return Err(Error::invalid(
            "an s3 url must not hold credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead",
        ));
    }
    if bucket.is_empty() {
        return Err(Error::invalid(
            "an s3 url needs a bucket: s3://BUCKET[/PREFIX]",
        ));
    }
    let mut endpoint = None;
    let mut region = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = String::from_utf8(blobjobs_protocol::path::percent_decode(value))
            .map_err(|_| Error::invalid(format!("s3 url parameter {name} is not utf-8")))?;
        match name {
            "endpoint" if !value.is_empty() => endpoint = Some(value),
            "region" if !value.is_empty() => region = Some(value),
            "endpoint" | "region" => {
                return Err(Error::invalid(format!(
                    "s3 url parameter {name} needs a value"
                )));
            }
            _ if name.contains("key") || name.contains("secret") || name.contains("token") => {
                return Err(Error::invalid(
                    "an s3 url must not hold credentials; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead",
                ));
            }
            _ => {
                return Err(Error::invalid(format!("unknown s3 url parameter {name:?}")));
            }
        }
    }
    Ok(StoreSpec::S3 {
        bucket: bucket.to_owned(),
        prefix: prefix.trim_matches('/').to_owned(),
        endpoint,
        region,
    })
}

#[cfg(feature = "s3")]
fn open_s3(
    bucket: &str,
    prefix: &str,
    endpoint: &Option<String>,
    region: &Option<String>,
    store_name: &str,
    options: &OpenOptions,
) -> Result<Arc<dyn BlobStore>> {
    let config = s3_config(bucket, prefix, endpoint, region, options)?;
    Ok(Arc::new(crate::s3::S3Store::open(&config, store_name)?))
}

/// The configuration of an `s3://` spec's parts, with the keys, endpoint and region the
/// environment adds.
#[cfg(feature = "s3")]
pub(crate) fn s3_config(
    bucket: &str,
    prefix: &str,
    endpoint: &Option<String>,
    region: &Option<String>,
    options: &OpenOptions,
) -> Result<crate::s3::S3Config> {
    use crate::s3::{S3Config, S3Credentials, Secret};

    let var = |name: &str| options.env.var(name).filter(|v| !v.is_empty());
    let (Some(access_key_id), Some(secret)) =
        (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
    else {
        return Err(Error::invalid(
            "an s3:// store needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ));
    };
    let credentials = S3Credentials {
        access_key_id,
        secret_access_key: Secret::new(secret),
        session_token: var("AWS_SESSION_TOKEN").map(Secret::new),
    };
    let mut config = S3Config::new(bucket, credentials);
    config.prefix = prefix.to_owned();
    config.endpoint = endpoint
        .clone()
        .or_else(|| var("AWS_ENDPOINT_URL_S3"))
        .or_else(|| var("AWS_ENDPOINT_URL"));
    if let Some(region) = region
        .clone()
        .or_else(|| var("AWS_REGION"))
        .or_else(|| var("AWS_DEFAULT_REGION"))
    {
        config.region = region;
    }
    Ok(config)
}

#[cfg(not(feature = "s3"))]
fn open_s3(
    _: &str,
    _: &str,
    _: &Option<String>,
    _: &Option<String>,
    _: &str,
    _: &OpenOptions,
) -> Result<Arc<dyn BlobStore>> {
    Err(Error::invalid(
        "s3:// stores need the `s3` feature of the backends crate",
    ))
}

#[cfg(feature = "postgres")]
fn open_postgres(
    url: &PgUrl,
    store_name: &str,
    options: &OpenOptions,
) -> Result<Arc<dyn BlobStore>> {
    let config = crate::postgres::PgConfig::parse(url.expose(), &|name| options.env.var(name))?;
    Ok(Arc::new(crate::postgres::PgStore::open(
        &config, store_name,
    )?))
}

#[cfg(not(feature = "postgres"))]
fn open_postgres(_: &PgUrl, _: &str, _: &OpenOptions) -> Result<Arc<dyn BlobStore>> {
    Err(Error::invalid(
        "postgres:// stores need the `postgres` feature of the backends crate",
    ))
}

fn kind_of(store_name: &str, params: &Params) -> StoreKind {
    match &params.deploy {
        Some(deploy_id) => StoreKind::Deploy {
            deploy_id: deploy_id.clone(),
            name: (!store_name.is_empty()).then(|| store_name.to_owned()),
        },
        None => StoreKind::from_name(store_name),
    }
}

fn parse_params(query: &str) -> Result<Params> {
    let mut params = Params::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (pair, None),
        };
        let value_of = |v: Option<&str>| -> Result<String> {
            let text = String::from_utf8(blobjobs_protocol::path::percent_decode(v.unwrap_or("")))
                .map_err(|_| Error::invalid(format!("store spec parameter {name} is not utf-8")))?;
            if text.is_empty() {
                return Err(Error::invalid(format!(
                    "store spec parameter {name} needs a value"
                )));
            }
            Ok(text)
        };
        match name {
            "token" | "access_token" | "password" => {
                return Err(Error::invalid(format!(
                    "the token must not be in the store spec; set {TOKEN_ENV} instead"
                )));
            }
            "consistency" => {
                params.consistency = Some(match value_of(value)?.as_str() {
                    "strong" => Consistency::Strong,
                    "eventual" => Consistency::Eventual,
                    _ => return Err(Error::invalid("consistency must be strong or eventual")),
                });
            }
            "region" => params.region = Some(value_of(value)?),
            "deploy" => {
                params.deploy = Some(match value {
                    None | Some("") => None,
                    Some(_) => Some(value_of(value)?),
                });
            }
            "site" => params.site = Some(value_of(value)?),
            "mode" => {
                params.api_mode = match value_of(value)?.as_str() {
                    "api" => true,
                    "edge" => false,
                    _ => return Err(Error::invalid("mode must be edge or api")),
                };
            }
            _ => {
                return Err(Error::invalid(format!(
                    "unknown store spec parameter {name:?}"
                )));
            }
        }
    }
    Ok(params)
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
mod tests {
    use super::*;
    use blobjobs_store_api::ErrorKind;

    fn env(pairs: &[(&str, &str)]) -> OpenOptions {
        OpenOptions {
            env: Env::from_pairs(pairs.iter().copied()),
            ..OpenOptions::default()
        }
    }

    #[test]
    fn specs_parse() {
        assert_eq!(StoreSpec::parse("memory://").unwrap(), StoreSpec::Memory);
        assert_eq!(
            StoreSpec::parse("file:///tmp/x").unwrap(),
            StoreSpec::File(PathBuf::from("/tmp/x"))
        );
        assert_eq!(
            StoreSpec::parse("").unwrap(),
            StoreSpec::Netlify(Params::default())
        );
        let StoreSpec::Http { url, params } =
            StoreSpec::parse("http://127.0.0.1:4733?site=s1&mode=api&consistency=eventual")
                .unwrap()
        else {
            panic!("not http");
        };
        assert_eq!(url, "http://127.0.0.1:4733");
        assert_eq!(params.site.as_deref(), Some("s1"));
        assert!(params.api_mode);
        assert_eq!(params.consistency, Some(Consistency::Eventual));
        for bad in [
            "ftp://x",
            "nothing",
            "memory://x",
            "file://",
            "http://?site=a",
            "netlify://host",
        ] {
            assert_eq!(
                StoreSpec::parse(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn tokens_in_specs_are_refused_without_being_repeated() {
        for spec in [
            "http://127.0.0.1:1?token=hunter2secret",
            "http://user:hunter2secret@127.0.0.1:1",
            "netlify://?token=hunter2secret",
        ] {
            let err = StoreSpec::parse(spec).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(!err.to_string().contains("hunter2secret"), "{err}");
        }
    }

    #[test]
    fn http_specs_need_a_token_from_options_or_env() {
        let err = open_store_with("http://127.0.0.1:1", "s", &env(&[])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let store =
            open_store_with("http://127.0.0.1:1", "s", &env(&[(TOKEN_ENV, "tok-9")])).unwrap();
        let text = format!("{store:?}");
        assert!(
            text.contains("local-site") && !text.contains("tok-9"),
            "{text}"
        );
        let store = open_store_with(
            "http://127.0.0.1:1?site=mine",
            "s",
            &env(&[(TOKEN_ENV, "t"), (SITE_ID_ENV, "theirs")]),
        )
        .unwrap();
        assert!(format!("{store:?}").contains("\"mine\""));
    }

    #[test]
    fn netlify_specs_read_the_context() {
        let err = open_store_with("netlify://", "s", &env(&[])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let ctx = BlobsContext {
            site_id: Some("ctx-site".into()),
            token: Some(Token::new("ctx-secret")),
            edge_url: Some("http://127.0.0.1:9".into()),
            uncached_edge_url: Some("http://127.0.0.1:10".into()),
            deploy_id: Some("d1".into()),
            primary_region: Some("dev".into()),
            ..BlobsContext::default()
        };
        let options = env(&[(CONTEXT_ENV, &ctx.encode())]);
        let store = open_store_with("", "jobs", &options).unwrap();
        let text = format!("{store:?}");
        assert!(
            text.contains("ctx-site") && text.contains("site:jobs"),
            "{text}"
        );
        assert!(!text.contains("ctx-secret"));
        let deploy = open_store_with("netlify://?deploy", "x", &options).unwrap();
        assert!(format!("{deploy:?}").contains("deploy:d1:x"));
    }

    #[test]
    fn https_specs_open_only_with_tls() {
        let result = open_store_with("https://127.0.0.1:1", "s", &env(&[(TOKEN_ENV, "t")]));
        if cfg!(feature = "tls") {
            assert!(result.is_ok());
        } else {
            assert_eq!(
                result.err().map(|e| e.kind()),
                Some(ErrorKind::InvalidInput)
            );
        }
    }

    #[cfg(feature = "tls")]
    #[test]
    fn the_ca_file_comes_from_options_or_env_and_must_be_readable() {
        let missing = std::env::temp_dir().join("no-such-dir-for-ca/ca.pem");
        let missing = missing.to_str().unwrap();
        let err = open_store_with(
            "https://127.0.0.1:1",
            "s",
            &env(&[(TOKEN_ENV, "t"), (CA_FILE_ENV, missing)]),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        // The option wins over the environment.
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let options = OpenOptions {
            extra_root_pem: Some(empty),
            ..env(&[(TOKEN_ENV, "t"), (CA_FILE_ENV, missing)])
        };
        let err = open_store_with("https://127.0.0.1:1", "s", &options).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        // An empty variable is no file.
        assert!(
            open_store_with(
                "https://127.0.0.1:1",
                "s",
                &env(&[(TOKEN_ENV, "t"), (CA_FILE_ENV, "")])
            )
            .is_ok()
        );
    }

    #[test]
    fn s3_specs_parse_and_refuse_keys_without_repeating_them() {
        let spec = StoreSpec::parse(
            "s3://bucket/a/b/?endpoint=http%3A%2F%2F127.0.0.1%3A8333&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(
            spec,
            StoreSpec::S3 {
                bucket: "bucket".into(),
                prefix: "a/b".into(),
                endpoint: Some("http://127.0.0.1:8333".into()),
                region: Some("eu-west-1".into()),
            }
        );
        for bad in [
            "s3://AKIAHUNTER2:hunter2secret@bucket",
            "s3://bucket?secret_access_key=hunter2secret",
            "s3://bucket?aws_session_token=hunter2secret",
            "s3://?endpoint=http://x",
            "s3://bucket?endpoint=",
            "s3://bucket?colour=blue",
        ] {
            let err = StoreSpec::parse(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad:?}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_keys_come_from_the_environment_and_never_show() {
        let spec = "s3://bucket/p?endpoint=http://127.0.0.1:1";
        let err = open_store_with(spec, "s", &env(&[])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("AWS_ACCESS_KEY_ID"), "{err}");
        let keys = [
            ("AWS_ACCESS_KEY_ID", "AKIATESTKEY"),
            ("AWS_SECRET_ACCESS_KEY", "hunter2secret"),
            ("AWS_SESSION_TOKEN", "hunter2token"),
        ];
        let store = open_store_with(spec, "s", &env(&keys)).unwrap();
        let text = format!("{store:?}");
        assert!(text.contains("127.0.0.1:1/bucket"), "{text}");
        assert!(
            !text.contains("hunter2") && !text.contains("AKIATESTKEY"),
            "{text}"
        );
    }

    #[test]
    fn postgres_specs_hide_the_password() {
        let spec =
            StoreSpec::parse("postgres://me:hunter2secret@db.internal:6543/jobs?sslmode=disable")
                .unwrap();
        let text = format!("{spec:?}");
        assert_eq!(text, "Postgres(PgUrl(postgres://db.internal:6543/jobs))");
        assert!(StoreSpec::parse("postgresql://h/db").is_ok());
    }

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_specs_fill_gaps_from_pg_variables_and_never_show_the_password() {
        let options = env(&[
            ("PGHOST", "127.0.0.1"),
            ("PGPORT", "6543"),
            ("PGUSER", "jobs"),
            ("PGPASSWORD", "hunter2secret"),
            ("PGDATABASE", "blobs"),
        ]);
        let store = open_store_with("postgres://", "s", &options).unwrap();
        let text = format!("{store:?}");
        assert!(text.contains("127.0.0.1:6543/blobs"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let store = open_store_with(
            "postgres://u:hunter2secret@127.0.0.1:7000/x?pool_size=2",
            "s",
            &env(&[]),
        )
        .unwrap();
        let text = format!("{store:?}");
        assert!(
            text.contains("127.0.0.1:7000/x") && !text.contains("hunter2"),
            "{text}"
        );
        for bad in [
            "postgres://u:hunter2secret@h/db?pool_size=0",
            "postgres://u@h/db?password=hunter2secret",
            "postgres://u:hunter2secret@h:notaport/db",
        ] {
            let err = open_store_with(bad, "s", &env(&[])).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn memory_and_file_specs_open() {
        assert!(open_store("memory://", "s").is_ok());
        assert!(open_store("memory://", "").is_err());
        let dir = std::env::temp_dir();
        assert!(open_store(&format!("file://{}", dir.display()), "s").is_ok());
    }
}
