//! The Netlify Blobs wire client: `HttpStore`, a `BlobStore` that speaks the protocol of the
//! official `@netlify/blobs` client (11.1.1) to Netlify, to `netlify dev`'s `BlobsServer` or
//! to the project's emulator.
//!
//! * **Modes.** With an edge URL every request goes to `{edgeURL}[/region:R]/{site}/{store}/{key}`
//!   with the bearer token; otherwise (API mode) reads and writes of values first ask
//!   `{apiURL}/api/v1/blobs/…` for a signed URL, then send the data there without the token.
//! * **Configuration.** [`HttpConfig`], built directly or resolved by [`HttpConfig::resolve`]
//!   from [`ClientOptions`] and `NETLIFY_BLOBS_CONTEXT` ([`BlobsContext`]) with the official
//!   client's precedence rules. Store kinds ([`StoreKind`]) give the raw store name.
//! * **Wire facts** (paths, headers, bodies, the status mapping) come from the
//!   [`blobjobs_protocol`] crate, which the emulator shares.
//! * **Failures.** Every request is retried under a [`RetryPolicy`]; a conditional write
//!   whose outcome is unknown is read back instead of being resent blindly.
//! * **HTTPS** through rustls with the `tls` feature (on by default).
//!
//! `docs/protocol.md`, section "Client behaviour", describes all of this in full: the
//! precedence rules, key encoding, retries, the read-back of conditional writes, errors,
//! HTTPS and the limits against servers without ETags.
//!
//! The code is split by concern: `call` sends one logical request with its retries,
//! `signed` does API mode's first step, `conditional` decides what an unanswered
//! conditional write did, and `store` maps the `BlobStore` operations onto calls.

mod call;
mod conditional;
mod config;
mod pager;
mod retry;
mod signed;
mod status;
mod store;
mod tls;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::http::header::HeaderValue;
use ::http::{HeaderMap, Method, Uri};
use blobjobs_protocol::path;
use blobjobs_store_api::{Error, Result};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

pub use blobjobs_protocol::names::{LEGACY_PREFIX, REGIONS, check_deploy_id};
pub use blobjobs_protocol::path::percent_decode;
pub use blobjobs_protocol::{BlobsContext, CONTEXT_ENV, Token};
pub use config::{
    CA_FILE_ENV, ClientOptions, Consistency, DEFAULT_API_URL, Endpoint, HttpConfig, StoreKind,
};
pub use retry::RetryPolicy;
pub use status::{BODY_EXCERPT_CHARS, StatusError, kind_for_status};

use call::{ReqBody, Route};
use retry::Budget;

/// How long an idle pooled connection is kept. Shorter than the 5 s keep-alive of common
/// servers (`BlobsServer` among them), so the pool rarely hands out a connection the
/// server is about to close.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// A `BlobStore` over HTTP, speaking the Netlify Blobs protocol.
///
/// Clones share one connection pool and configuration. See the [module docs](self) and
/// `docs/protocol.md` for the protocol, retries and error mapping.
#[derive(Clone)]
pub struct HttpStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// The pooled keep-alive client shared by every request of this store and its clones.
    client: Client<tls::Connector, ReqBody>,
    /// What this store was opened with.
    config: HttpConfig,
    /// `Bearer <token>`, built and checked once at opening and marked sensitive, so hyper
    /// never logs it.
    authorization: HeaderValue,
    /// The data URL of the store without a trailing `/`: `{edge}[/region:R]/{site}/{store}`
    /// or `{api}/api/v1/blobs/{site}/{store}`.
    store_url: String,
    /// `scheme://authority` of the API, to complete a signed URL given as a path.
    api_origin: Option<String>,
    /// `Some("auto")`, `Some("us-east-1")`…: the API-mode `region` parameter.
    api_region: Option<String>,
}

impl fmt::Debug for HttpStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // HttpConfig's Debug shows the token as <redacted>.
        f.debug_struct("HttpStore")
            .field("config", &self.inner.config)
            .finish()
    }
}

/// A base URL split into `scheme://authority` and a path prefix without trailing `/`.
fn parse_base(url: &str) -> Result<(String, String)> {
    let uri: Uri = url
        .parse()
        .map_err(|_| Error::invalid("the blobs url is not a valid url"))?;
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") if tls::HTTPS => "https",
        Some("https") => return Err(Error::invalid(tls::NO_TLS)),
        _ => {
            return Err(Error::invalid(
                "the blobs url must start with http:// or https://",
            ));
        }
    };
    let Some(authority) = uri.authority() else {
        return Err(Error::invalid("the blobs url has no host"));
    };
    if authority.as_str().contains('@') {
        return Err(Error::invalid(
            "the blobs url must not hold credentials; pass the token separately",
        ));
    }
    if uri.query().is_some() {
        return Err(Error::invalid("the blobs url must not have a query"));
    }
    let path = uri.path().trim_end_matches('/').to_owned();
    Ok((format!("{scheme}://{authority}"), path))
}

impl HttpStore {
    /// A store with a fully resolved configuration.
    pub fn new(config: HttpConfig) -> Result<HttpStore> {
        let (base, api_origin, api_region) = match &config.endpoint {
            Endpoint::Edge { url, uncached_url } => {
                let chosen = match config.consistency {
                    Consistency::Eventual => url,
                    Consistency::Strong => uncached_url.as_ref().ok_or_else(|| {
                        Error::invalid("strong consistency needs an uncached edge url")
                    })?,
                };
                let (origin, path) = parse_base(chosen)?;
                // Check the other URL too, so a bad configuration fails at once.
                parse_base(url)?;
                let mut base = format!("{origin}{path}");
                if let Some(region) = &config.region {
                    path::push_region(&mut base, region);
                }
                (base, None, None)
            }
            Endpoint::Api { url } => {
                let (origin, path) = parse_base(url)?;
                (
                    format!("{origin}{path}{}", path::API_PREFIX),
                    Some(origin),
                    config.region.clone(),
                )
            }
        };
        if config.site_id.is_empty() {
            return Err(Error::invalid("the site id must not be empty"));
        }
        let mut store_url = base;
        path::push_segment(&mut store_url, &config.site_id);
        path::push_segment(&mut store_url, &config.store);
        if store_url.parse::<Uri>().is_err() {
            return Err(Error::invalid(
                "the site id or store name does not fit in a url",
            ));
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", config.token.reveal()))
            .map_err(|_| Error::invalid("the token is not a valid header value"))?;
        authorization.set_sensitive(true);

        let connector = tls::connector(&config)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(HttpStore {
            inner: Arc::new(Inner {
                client,
                config,
                authorization,
                store_url,
                api_origin,
                api_region,
            }),
        })
    }

    /// Resolves `options` against `context` for a store of `kind` (see [`ClientOptions`]
    /// for the precedence rules) and opens it.
    pub fn open(
        options: &ClientOptions,
        context: Option<&BlobsContext>,
        kind: &StoreKind,
    ) -> Result<HttpStore> {
        HttpStore::new(HttpConfig::resolve(options, context, kind)?)
    }

    /// Opens the store `name` (a site store, or a legacy store for names starting with
    /// [`LEGACY_PREFIX`]) from `NETLIFY_BLOBS_CONTEXT`, with strong consistency, trusting
    /// the extra root certificates of the file named by [`CA_FILE_ENV`] if it is set.
    pub fn from_env(name: &str) -> Result<HttpStore> {
        let options = ClientOptions {
            consistency: Consistency::Strong,
            extra_root_pem: std::env::var_os(CA_FILE_ENV)
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from),
            ..ClientOptions::default()
        };
        HttpStore::open(
            &options,
            BlobsContext::from_env().as_ref(),
            &StoreKind::from_name(name),
        )
    }

    /// The configuration (its `Debug` output redacts the token).
    pub fn config(&self) -> &HttpConfig {
        &self.inner.config
    }

    fn is_api(&self) -> bool {
        matches!(self.inner.config.endpoint, Endpoint::Api { .. })
    }

    /// The retry budget of a new operation.
    fn budget(&self) -> Budget {
        Budget::start(&self.inner.config.retry, &self.inner.config.clock)
    }

    /// The URL of `key`, with the API region parameter if any; `query` holds the other
    /// parameters, which the protocol places before the region.
    fn url(&self, key: Option<&str>, mut query: path::Query) -> String {
        let mut url = self.inner.store_url.clone();
        if let Some(key) = key {
            path::push_key(&mut url, key);
        }
        query.region = self.inner.api_region.clone();
        url.push_str(&query.encode());
        url
    }

    /// `METHOD store[/key]`, for messages and logs; never a URL (a signed URL's query is a
    /// credential).
    fn what(&self, method: &Method, key: Option<&str>) -> String {
        match key {
            Some(key) => format!("{method} {}/{key}", self.inner.config.store),
            None => format!("{method} {}", self.inner.config.store),
        }
    }

    /// A read or write of a value: signed in API mode, direct in edge mode.
    fn value_route(&self, key: &str, step1_headers: HeaderMap) -> Route {
        let url = self.url(Some(key), path::Query::default());
        if self.is_api() {
            Route::Signed {
                api_url: url,
                step1_headers,
            }
        } else {
            Route::Direct(url)
        }
    }
}
