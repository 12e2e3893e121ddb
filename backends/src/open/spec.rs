//! A parsed store spec: its grammar, its query parameters, and opening the store it names.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use blobjobs_store_api::{BlobStore, Error, Result, validate_store_name};

use super::engines::{open_postgres, open_s3, parse_s3};
use super::{DEFAULT_SITE_ID, OpenOptions, SITE_ID_ENV, TOKEN_ENV};
use crate::file::FileStore;
use crate::http::{
    BlobsContext, CONTEXT_ENV, ClientOptions, Consistency, HttpStore, StoreKind, Token,
};
use crate::memory::MemoryStore;

/// A parsed store spec (see the [module docs](super)).
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
