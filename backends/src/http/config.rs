//! Where an `HttpStore` sends its requests: explicit options, the `NETLIFY_BLOBS_CONTEXT`
//! environment ([`BlobsContext`], defined by the protocol crate), the official client's
//! precedence rules between them, and store kinds.

use std::path::PathBuf;
use std::sync::Arc;

use blobjobs_protocol::names::{LEGACY_PREFIX, REGIONS, RawStore};
use blobjobs_protocol::{BlobsContext, CONTEXT_ENV, Token};
use blobjobs_store_api::{Clock, Error, Result, SystemClock, validate_store_name};

use super::retry::RetryPolicy;

/// The environment variable naming a PEM file of extra root certificates to trust for
/// `https://` endpoints, on top of the built-in webpki roots (for a server with a private or
/// self-signed certificate). Read by [`HttpStore::from_env`](super::HttpStore::from_env) and
/// by `open_store`; see [`ClientOptions::extra_root_pem`].
pub const CA_FILE_ENV: &str = "NETLIFY_BLOBS_CA_FILE";

/// The API base URL used when neither an edge URL nor an API URL is configured.
pub const DEFAULT_API_URL: &str = "https://api.netlify.com";

/// Which base URL reads and writes use in edge mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    /// The cached edge URL; a write may take up to a minute to be seen everywhere.
    #[default]
    Eventual,
    /// The uncached edge URL (`uncachedEdgeURL`): every read sees the latest write.
    /// Required for compare-and-swap loops such as the job store's. API mode is always
    /// strong, so there it changes nothing.
    Strong,
}

/// Which kind of store to open; decides the raw store name sent on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// A site-wide store that outlives deploys: `getStore(name)`, raw name `site:<name>`.
    Site(String),
    /// The store of one deploy: `getDeployStore()` / `getDeployStore(name)`, raw name
    /// `deploy:<id>` or `deploy:<id>:<name>`. Without an id, the options' or the context's
    /// `deployID` is used.
    Deploy {
        /// The deploy; `None` for the configured one.
        deploy_id: Option<String>,
        /// The store's name within the deploy, if any.
        name: Option<String>,
    },
    /// A legacy store, whose name is sent verbatim (no `site:` prefix).
    Legacy(String),
}

impl StoreKind {
    /// The kind the official client's `getStore(name)` picks: a name starting with
    /// [`LEGACY_PREFIX`] is a legacy store, anything else a site store.
    pub fn from_name(name: &str) -> StoreKind {
        match name.strip_prefix(LEGACY_PREFIX) {
            Some(legacy) => StoreKind::Legacy(legacy.to_owned()),
            None => StoreKind::Site(name.to_owned()),
        }
    }
}

/// Options of an HTTP store, in the shape of the official client's `getStore` options.
///
/// # Precedence
///
/// These are the official client's rules (protocol reference §2.2):
///
/// 1. For site and legacy stores, if the options give **both** `site_id` and `token`, the
///    environment context is ignored completely, and the URLs come only from the options.
/// 2. Otherwise (and always for deploy stores) every context field overrides the option of
///    the same name: `edge_url`, `uncached_edge_url`, `api_url`, `site_id` and `token`.
///    `deploy_id` is the other way round: the option wins over the context.
/// 3. `consistency`, `region` and `retry` come only from the options; `primaryRegion` only
///    from the context.
/// 4. With an edge URL the store uses edge mode; otherwise API mode against `api_url`, or
///    [`DEFAULT_API_URL`] when there is none.
/// 5. `site_id` and `token` are required; without them opening fails before any request.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// `siteID`.
    pub site_id: Option<String>,
    /// `token`.
    pub token: Option<Token>,
    /// `edgeURL`.
    pub edge_url: Option<String>,
    /// `uncachedEdgeURL`.
    pub uncached_edge_url: Option<String>,
    /// `apiURL`.
    pub api_url: Option<String>,
    /// `deployID`, for deploy stores.
    pub deploy_id: Option<String>,
    /// `region`: one of [`REGIONS`]; puts every request of the store in that region.
    pub region: Option<String>,
    /// `consistency`.
    pub consistency: Consistency,
    /// Retries and timeouts.
    pub retry: RetryPolicy,
    /// A PEM file of extra root certificates trusted for `https://`, besides the built-in
    /// webpki roots (not an option of the official client; see [`CA_FILE_ENV`]). Needs the
    /// `tls` feature; without it the file is not read.
    pub extra_root_pem: Option<PathBuf>,
}

/// The base URL of one mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Edge mode: requests go to `{url}[/region:R]/{site}/{store}/{key}`.
    Edge {
        /// `edgeURL`.
        url: String,
        /// `uncachedEdgeURL`, used for [`Consistency::Strong`].
        uncached_url: Option<String>,
    },
    /// API mode: requests go to `{url}/api/v1/blobs/{site}/{store}/{key}`, reads and
    /// writes of values through a signed URL.
    Api {
        /// `apiURL`.
        url: String,
    },
}

/// A fully resolved HTTP store configuration.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Where requests go.
    pub endpoint: Endpoint,
    /// The site ID, the first path segment.
    pub site_id: String,
    /// The bearer token.
    pub token: Token,
    /// The raw store name (`site:x`, `deploy:D`, `deploy:D:x` or a legacy name).
    pub store: String,
    /// The region segment (edge) or parameter (API), if any.
    pub region: Option<String>,
    /// Cached or uncached edge URL.
    pub consistency: Consistency,
    /// Retries and timeouts.
    pub retry: RetryPolicy,
    /// A PEM file of extra root certificates trusted for `https://` (see
    /// [`ClientOptions::extra_root_pem`]).
    pub extra_root_pem: Option<PathBuf>,
    /// The wall clock a 429's `X-RateLimit-Reset` (a Unix time) is measured against: the
    /// system clock, or a [`ManualClock`](blobjobs_store_api::ManualClock) in tests.
    pub clock: Arc<dyn Clock>,
}

impl HttpConfig {
    /// Edge mode against one server (such as the emulator), with strong consistency, for a
    /// site store called `store_name`.
    pub fn edge(
        url: impl Into<String>,
        site_id: impl Into<String>,
        token: Token,
        store_name: &str,
    ) -> Result<HttpConfig> {
        validate_store_name(store_name)?;
        let url = url.into();
        Ok(HttpConfig {
            endpoint: Endpoint::Edge {
                url: url.clone(),
                uncached_url: Some(url),
            },
            site_id: site_id.into(),
            token,
            store: RawStore::Site(store_name.to_owned()).to_string(),
            region: None,
            consistency: Consistency::Strong,
            retry: RetryPolicy::default(),
            extra_root_pem: None,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same configuration, measuring rate-limit waits against `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> HttpConfig {
        self.clock = clock;
        self
    }

    /// Resolves `options` and the environment `context` (if any) for a store of `kind`,
    /// following the official client's rules (see [`ClientOptions`]).
    pub fn resolve(
        options: &ClientOptions,
        context: Option<&BlobsContext>,
        kind: &StoreKind,
    ) -> Result<HttpConfig> {
        let empty = BlobsContext::default();
        let ctx = context.unwrap_or(&empty);
        let is_deploy = matches!(kind, StoreKind::Deploy { .. });
        let explicit = options.site_id.is_some() && options.token.is_some();
        let ctx = if explicit && !is_deploy { &empty } else { ctx };
        let pick = |c: &Option<String>, o: &Option<String>| c.clone().or_else(|| o.clone());
        let site_id = pick(&ctx.site_id, &options.site_id);
        let token = ctx.token.clone().or_else(|| options.token.clone());
        let (Some(site_id), Some(token)) = (site_id, token) else {
            let hint = if ctx.is_empty() {
                format!("; {CONTEXT_ENV} is not set or empty")
            } else {
                String::new()
            };
            return Err(Error::invalid(format!(
                "a netlify blobs store needs a site id and a token{hint}"
            )));
        };
        if site_id.is_empty() || token.reveal().is_empty() {
            return Err(Error::invalid(
                "the site id and the token must not be empty",
            ));
        }
        let edge_url = pick(&ctx.edge_url, &options.edge_url);
        let uncached = pick(&ctx.uncached_edge_url, &options.uncached_edge_url);
        let api_url = pick(&ctx.api_url, &options.api_url);
        let endpoint = match edge_url {
            Some(url) => Endpoint::Edge {
                url,
                uncached_url: uncached,
            },
            None => Endpoint::Api {
                url: api_url.unwrap_or_else(|| DEFAULT_API_URL.to_owned()),
            },
        };
        if let Some(region) = &options.region
            && !REGIONS.contains(&region.as_str())
        {
            return Err(Error::invalid(format!(
                "unknown region {region:?}; use one of {}",
                REGIONS.join(", ")
            )));
        }
        let store = match kind {
            StoreKind::Site(name) => RawStore::Site(name.clone()),
            StoreKind::Legacy(name) => RawStore::Legacy(name.clone()),
            StoreKind::Deploy { deploy_id, name } => RawStore::Deploy {
                deploy_id: deploy_id
                    .clone()
                    .or_else(|| options.deploy_id.clone())
                    .or_else(|| ctx.deploy_id.clone())
                    .ok_or_else(|| Error::invalid("a deploy store needs a deploy id"))?,
                name: name.clone(),
            },
        };
        store.check()?;
        let store = store.to_string();
        let region = match (&options.region, is_deploy, &endpoint) {
            (Some(r), _, _) => Some(r.clone()),
            (None, true, Endpoint::Edge { .. }) => {
                Some(ctx.primary_region.clone().ok_or_else(|| {
                    Error::invalid("a deploy store in edge mode needs a region or a primaryRegion")
                })?)
            }
            (None, true, Endpoint::Api { .. }) => Some("auto".to_owned()),
            (None, false, _) => None,
        };
        Ok(HttpConfig {
            endpoint,
            site_id,
            token,
            store,
            region,
            consistency: options.consistency,
            retry: options.retry.clone(),
            extra_root_pem: options.extra_root_pem.clone(),
            clock: Arc::new(SystemClock),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blobjobs_store_api::ErrorKind;

    fn ctx() -> BlobsContext {
        BlobsContext {
            site_id: Some("ctx-site".into()),
            token: Some(Token::new("ctx-token")),
            edge_url: Some("http://ctx-edge".into()),
            uncached_edge_url: Some("http://ctx-uncached".into()),
            api_url: None,
            deploy_id: Some("ctxdeploy".into()),
            primary_region: Some("dev".into()),
        }
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let c = ctx();
        let options = ClientOptions {
            token: Some(Token::new("opt-token")),
            ..ClientOptions::default()
        };
        let config = HttpConfig::resolve(&options, Some(&c), &StoreKind::Site("s".into())).unwrap();
        for text in [
            format!("{c:?}"),
            format!("{options:?}"),
            format!("{config:?}"),
        ] {
            assert!(
                !text.contains("ctx-token") && !text.contains("opt-token"),
                "{text}"
            );
            assert!(text.contains("<redacted>"));
        }
    }

    #[test]
    fn explicit_site_and_token_ignore_the_context() {
        let options = ClientOptions {
            site_id: Some("opt-site".into()),
            token: Some(Token::new("opt-token")),
            ..ClientOptions::default()
        };
        let config =
            HttpConfig::resolve(&options, Some(&ctx()), &StoreKind::Site("s".into())).unwrap();
        assert_eq!(config.site_id, "opt-site");
        assert_eq!(config.token.reveal(), "opt-token");
        // The context's local edge URL is dropped too, as in the official client.
        assert_eq!(
            config.endpoint,
            Endpoint::Api {
                url: DEFAULT_API_URL.into()
            }
        );
    }

    #[test]
    fn otherwise_the_context_overrides_options() {
        let options = ClientOptions {
            site_id: Some("opt-site".into()),
            edge_url: Some("http://opt-edge".into()),
            ..ClientOptions::default()
        };
        let config =
            HttpConfig::resolve(&options, Some(&ctx()), &StoreKind::Site("s".into())).unwrap();
        assert_eq!(config.site_id, "ctx-site");
        assert_eq!(config.token.reveal(), "ctx-token");
        assert_eq!(
            config.endpoint,
            Endpoint::Edge {
                url: "http://ctx-edge".into(),
                uncached_url: Some("http://ctx-uncached".into())
            }
        );
        assert_eq!(config.store, "site:s");
        assert_eq!(config.region, None);
    }

    #[test]
    fn deploy_stores_take_ids_and_regions() {
        let kind = StoreKind::Deploy {
            deploy_id: None,
            name: Some("x".into()),
        };
        let config = HttpConfig::resolve(&ClientOptions::default(), Some(&ctx()), &kind).unwrap();
        assert_eq!(config.store, "deploy:ctxdeploy:x");
        assert_eq!(config.region.as_deref(), Some("dev"));

        let api = BlobsContext {
            edge_url: None,
            api_url: Some("http://api".into()),
            ..ctx()
        };
        let options = ClientOptions {
            deploy_id: Some("optdeploy".into()),
            ..ClientOptions::default()
        };
        let unnamed = StoreKind::Deploy {
            deploy_id: None,
            name: None,
        };
        let config = HttpConfig::resolve(&options, Some(&api), &unnamed).unwrap();
        assert_eq!(config.store, "deploy:optdeploy");
        assert_eq!(config.region.as_deref(), Some("auto"));

        let no_region = BlobsContext {
            primary_region: None,
            ..ctx()
        };
        let err =
            HttpConfig::resolve(&ClientOptions::default(), Some(&no_region), &kind).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let bad_id = StoreKind::Deploy {
            deploy_id: Some("bad-id".into()),
            name: None,
        };
        assert!(HttpConfig::resolve(&ClientOptions::default(), Some(&ctx()), &bad_id).is_err());
    }

    #[test]
    fn missing_credentials_and_bad_regions_are_rejected() {
        let err = HttpConfig::resolve(
            &ClientOptions::default(),
            None,
            &StoreKind::Site("s".into()),
        )
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let options = ClientOptions {
            region: Some("mars-1".into()),
            ..ClientOptions::default()
        };
        assert!(HttpConfig::resolve(&options, Some(&ctx()), &StoreKind::Site("s".into())).is_err());
        let options = ClientOptions {
            region: Some("eu-central-1".into()),
            ..ClientOptions::default()
        };
        let config =
            HttpConfig::resolve(&options, Some(&ctx()), &StoreKind::Site("s".into())).unwrap();
        assert_eq!(config.region.as_deref(), Some("eu-central-1"));
    }

    #[test]
    fn legacy_names_lose_their_prefix() {
        let kind = StoreKind::from_name("netlify-internal/legacy-namespace/oldie");
        assert_eq!(kind, StoreKind::Legacy("oldie".into()));
        let config = HttpConfig::resolve(&ClientOptions::default(), Some(&ctx()), &kind).unwrap();
        assert_eq!(config.store, "oldie");
    }
}
