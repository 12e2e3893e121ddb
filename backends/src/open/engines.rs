//! The engine specs: parsing what follows `s3://`, and opening `s3://` and `postgres://`
//! stores (or refusing them when the crate is built without their feature).

use std::sync::Arc;

use blobjobs_store_api::{BlobStore, Error, Result};

use super::{OpenOptions, PgUrl, StoreSpec};

/// Parses what follows `s3://`.
pub(super) fn parse_s3(rest: &str) -> Result<StoreSpec> {
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
pub(super) fn open_s3(
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
pub(super) fn open_s3(
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
pub(super) fn open_postgres(
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
pub(super) fn open_postgres(_: &PgUrl, _: &str, _: &OpenOptions) -> Result<Arc<dyn BlobStore>> {
    Err(Error::invalid(
        "postgres:// stores need the `postgres` feature of the backends crate",
    ))
}
