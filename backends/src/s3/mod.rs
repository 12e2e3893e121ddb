//! The S3 backend: one named store as objects in an S3-compatible bucket, through the
//! [`object_store`] crate (AWS S3, SeaweedFS, MinIO, Cloudflare R2 and the like).
//!
//! Opened by [`S3Store::open`] or by an `s3://BUCKET[/PREFIX]?endpoint=URL&region=R` spec
//! (see [`crate::open`]), with the keys from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
//! and, for temporary keys, `AWS_SESSION_TOKEN`. Keys never appear in `Debug` output,
//! logs or error messages; a spec that holds one is refused.
//!
//! # Layout
//!
//! Store `S` keeps key `K` in the object `PREFIX/enc(S)/enc(K)!`, where `enc` is the
//! order-keeping escape of the [`names`] module: every key is one path segment, so a store is
//! one flat "directory" of objects in the same order as its keys. The object's body is a
//! 20-byte header (`bjb1` and a 16-byte random *version nonce*) followed by the value. The
//! user metadata travels as one S3 user-metadata entry, `x-amz-meta-blobjobs-metadata`,
//! holding `b64;` and the base64 of the metadata's JSON text: one lowercase name and an
//! ASCII value, so engines that lowercase metadata names or refuse non-ASCII values return
//! it byte for byte. The content type is always `application/octet-stream`, so no engine
//! sniffs one.
//!
//! # ETags, and why a compare-and-swap cannot match an older write
//!
//! The store's ETag is the engine's own ETag of the object. Many engines (SeaweedFS, and AWS
//! for single-part uploads) make it the MD5 of the body, so two writes of the same bytes
//! would have the same ETag, and `If-Match` with the ETag of an older write would succeed
//! against a newer write of identical content (the ABA case), or against a write that
//! changed only the metadata. Here every write puts a fresh random nonce in front of the
//! value, so the bodies of two writes always differ, and so does their content hash: the
//! ETag changes on every write, identical value and metadata included, and an ETag read
//! before any later write never matches again. Engines whose ETag is not a content hash
//! change it on every write anyway.
//!
//! # Conditions use the engine's conditional writes
//!
//! [`Condition::IfNew`](blobjobs_store_api::Condition::IfNew) is a `PUT` with
//! `If-None-Match: *` and [`Condition::IfMatch`](blobjobs_store_api::Condition::IfMatch) a
//! `PUT` with `If-Match: <etag>` (`object_store`'s `PutMode::Create` and `PutMode::Update`,
//! with `S3ConditionalPut::ETagMatch`): the engine checks the condition and writes in one
//! step; nothing is read first. A conditional write is sent once, without the client's
//! automatic retries: if it fails in a way that may have applied it (a timeout, a lost
//! connection, a 5xx), the backend reads the object's header back and, if it holds this
//! write's nonce, reports the write as done; otherwise it returns the retryable error.
//! Unconditional writes, reads, listings and deletes use the client's bounded retries.
//!
//! # Listing
//!
//! A listing is one recursive `ListObjectsV2` walk of the store's directory, starting after
//! the encoded start key (the prefix or the cursor), fed to the shared
//! [`Paginator`](blobjobs_store_api::list::Paginator) until the page is full. It never uses
//! the engine's delimiter listing: SeaweedFS keeps reporting an emptied directory as a
//! common prefix for about two minutes, a recursive walk is exact at once.
//!
//! # Streaming
//!
//! `get_stream` hands over the body as the engine sends it, minus the header. `set_stream`
//! reads the head of the body ([`read_head`](blobjobs_store_api::stream::read_head)); a value
//! that fits in one part is one `PUT`. A longer unconditional value is a multipart upload of
//! [`S3Config::part_size`] parts, at most two in flight, so memory stays bounded; the object
//! appears only when the upload completes, and a failed upload is aborted, so no reader sees
//! a partial value. `object_store` sends conditions only with single `PUT`s, so a longer
//! *conditional* streamed value is collected (chunks, not copied) up to
//! [`S3Config::max_conditional_stream`] bytes and sent as one conditional `PUT`; a longer
//! one fails with [`ErrorKind::TooLarge`](blobjobs_store_api::ErrorKind::TooLarge).
//!
//! # Limits and engines
//!
//! * The object key (prefix, store, encoded key) must fit S3's 1024 bytes. Keys are encoded
//!   one for one except `.`, `/`, `~` (two characters) and spaces, `!`, `"` and control
//!   characters (three), so keys of the protocol's 600 bytes fit unless they are mostly
//!   such characters; a key whose object key would be longer is refused as
//!   [`ErrorKind::InvalidInput`](blobjobs_store_api::ErrorKind::InvalidInput).
//! * Metadata up to the project's 1515 bytes of JSON fits S3's 2 KiB of user metadata.
//! * Only S3 is opened. `object_store` also has conditional writes on Google Cloud Storage
//!   (generation preconditions) and Azure Blob Storage (ETag preconditions); a backend on
//!   them would share this layout, but none is offered until an engine in the test suite
//!   grades it.
//! * SeaweedFS serialises contended writes to one key through a lock that it re-polls once
//!   per second, so racing conditional writes there take seconds, not milliseconds; they
//!   stay correct.

mod catalog;
mod error;
pub(crate) mod names;
mod store;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use blobjobs_store_api::{Error, Result, validate_store_name};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::client::{HttpClient, HttpConnector};
use object_store::path::Path;
use object_store::{ClientOptions, RetryConfig};

/// The longest object key S3 accepts, in bytes.
pub const MAX_OBJECT_KEY_BYTES: usize = 1024;

pub use catalog::MAX_DIR_BYTES;

/// A secret string whose `Debug` output is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// The keys of an S3 identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: Secret,
    /// `AWS_SESSION_TOKEN`, for temporary keys.
    pub session_token: Option<Secret>,
}

/// Where and how an [`S3Store`] reaches its bucket.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// Folders under which every store of this configuration lives (`a/b`, no leading or
    /// trailing `/`); empty for the bucket's top.
    pub prefix: String,
    /// The endpoint URL (`http://127.0.0.1:8333` for a local engine); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The region (`us-east-1` by default; local engines accept any).
    pub region: String,
    /// The identity.
    pub credentials: S3Credentials,
    /// How long one request may take.
    pub request_timeout: Duration,
    /// How long connecting may take.
    pub connect_timeout: Duration,
    /// Attempts of a read, listing, delete or unconditional write (the first included).
    pub max_attempts: usize,
    /// The size of the parts of a streamed multipart upload (at least 5 MiB, S3's minimum).
    pub part_size: usize,
    /// The largest streamed value sent with a condition (collected in memory, see the
    /// [module docs](self)).
    pub max_conditional_stream: u64,
}

impl S3Config {
    /// A configuration for `bucket` with the defaults: AWS, region `us-east-1`, 30 s per
    /// request, 5 s to connect, 4 attempts, 8 MiB parts, 64 MiB conditional streams.
    pub fn new(bucket: impl Into<String>, credentials: S3Credentials) -> Self {
        S3Config {
            bucket: bucket.into(),
            prefix: String::new(),
            endpoint: None,
            region: "us-east-1".to_owned(),
            credentials,
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            max_attempts: 4,
            part_size: 8 * 1024 * 1024,
            max_conditional_stream: 64 * 1024 * 1024,
        }
    }

    /// `host:port/bucket`, for messages.
    fn place(&self) -> String {
        let host = match &self.endpoint {
            Some(url) => {
                let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
                rest.split('/').next().unwrap_or(rest).to_owned()
            }
            None => format!("s3.{}.amazonaws.com", self.region),
        };
        format!("{host}/{}", self.bucket)
    }
}

/// One named store in an S3 bucket (see the [module docs](self)). Every handle opened on the
/// same bucket, prefix and name sees the same keys, from any process or machine.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

struct Inner {
    /// Reads, listings, deletes and unconditional writes: with the client's retries.
    retrying: AmazonS3,
    /// Conditional writes: sent once, their failures resolved by reading back.
    once: AmazonS3,
    /// The configuration's prefix, without a trailing `/`.
    prefix: String,
    /// The store's directory, `PREFIX/enc(name)`.
    dir: String,
    /// `host:port/bucket`, for messages.
    place: String,
    name: String,
    part_size: usize,
    max_conditional_stream: u64,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("at", &self.inner.place)
            .field("dir", &self.inner.dir)
            .field("name", &self.inner.name)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Opens the store called `name` with `config`. Nothing is sent yet: a wrong endpoint or
    /// key shows at the first operation (or use
    /// [`open_store_checked`](crate::open::open_store_checked)).
    pub fn open(config: &S3Config, name: &str) -> Result<S3Store> {
        validate_store_name(name)?;
        if config.bucket.is_empty() {
            return Err(Error::invalid("an s3 store needs a bucket"));
        }
        let prefix = config.prefix.trim_matches('/');
        if !prefix.is_empty() {
            Path::parse(prefix)
                .map_err(|_| Error::invalid("the s3 prefix is not a valid object path"))?;
        }
        if config.part_size < 5 * 1024 * 1024 {
            return Err(Error::invalid("s3 multipart parts must be at least 5 MiB"));
        }
        let retrying = build(config, config.max_attempts.saturating_sub(1))?;
        let once = build(config, 0)?;
        Ok(S3Store {
            inner: Arc::new(Inner {
                retrying,
                once,
                prefix: prefix.to_owned(),
                dir: dir_of(prefix, name),
                place: config.place(),
                name: name.to_owned(),
                part_size: config.part_size,
                max_conditional_stream: config.max_conditional_stream,
            }),
        })
    }

    /// The store called `name` in the same bucket and prefix, on this handle's connections:
    /// a server holding many stores (a catalog) opens one client, not one per store.
    pub fn sibling(&self, name: &str) -> Result<S3Store> {
        validate_store_name(name)?;
        let inner = &self.inner;
        Ok(S3Store {
            inner: Arc::new(Inner {
                retrying: inner.retrying.clone(),
                once: inner.once.clone(),
                prefix: inner.prefix.clone(),
                dir: dir_of(&inner.prefix, name),
                place: inner.place.clone(),
                name: name.to_owned(),
                part_size: inner.part_size,
                max_conditional_stream: inner.max_conditional_stream,
            }),
        })
    }
}

impl S3Store {
    /// Where the store's bucket is, for messages: `host:port/bucket`, then `/prefix` if
    /// there is one; never a credential.
    pub fn place(&self) -> String {
        match self.inner.prefix.as_str() {
            "" => self.inner.place.clone(),
            prefix => format!("{}/{prefix}", self.inner.place),
        }
    }
}

/// The directory of store `name`: `PREFIX/enc(name)`.
fn dir_of(prefix: &str, name: &str) -> String {
    let mut dir = String::new();
    if !prefix.is_empty() {
        dir.push_str(prefix);
        dir.push('/');
    }
    names::encode_into(name, &mut dir);
    dir
}

fn build(config: &S3Config, max_retries: usize) -> Result<AmazonS3> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        .with_access_key_id(&config.credentials.access_key_id)
        .with_secret_access_key(config.credentials.secret_access_key.expose())
        .with_conditional_put(S3ConditionalPut::ETagMatch)
        .with_retry(RetryConfig {
            max_retries,
            retry_timeout: config.request_timeout * (max_retries as u32 + 1),
            ..RetryConfig::default()
        })
        .with_client_options(ClientOptions::new().with_allow_http(true))
        .with_http_connector(Connector {
            request_timeout: config.request_timeout,
            connect_timeout: config.connect_timeout,
        });
    if let Some(token) = &config.credentials.session_token {
        builder = builder.with_token(token.expose());
    }
    if let Some(endpoint) = &config.endpoint {
        if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
            return Err(Error::invalid(
                "the s3 endpoint must be an http:// or https:// url",
            ));
        }
        builder = builder.with_endpoint(endpoint);
    }
    // The builder's errors name the setting, never its value.
    builder
        .build()
        .map_err(|e| Error::invalid(format!("bad s3 configuration: {e}")))
}

/// Builds `object_store`'s HTTP client: reqwest with the timeouts of the configuration and
/// rustls on ring with the webpki roots, as the rest of the crate, instead of the aws-lc
/// provider that `object_store`'s `aws` feature would compile in.
#[derive(Debug)]
struct Connector {
    request_timeout: Duration,
    connect_timeout: Duration,
}

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let builder = reqwest::Client::builder()
            .timeout(self.request_timeout)
            .connect_timeout(self.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30));
        let generic = |e: Box<dyn std::error::Error + Send + Sync>| object_store::Error::Generic {
            store: "S3",
            source: e,
        };
        let builder =
            builder.tls_backend_preconfigured(tls_config().map_err(|e| generic(Box::new(e)))?);
        let client = builder.build().map_err(|e| generic(Box::new(e)))?;
        Ok(HttpClient::new(client))
    }
}

fn tls_config() -> std::result::Result<rustls::ClientConfig, rustls::Error> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
