//! The JSON API behind the browser view, read straight from the catalog: sites, a site's
//! stores, one page of a store's keys with their metadata, a value's first bytes, job
//! records, and deleting a key. Every answer is bounded: pages hold at most
//! [`MAX_LIMIT`] entries and a preview at most [`PREVIEW_BYTES`].
//!
//! Job records are recognised by the job layer's own model ([`Job`]) under its prefix
//! ([`JOB_PREFIX`]); the view only reads them, so no job semantics live here. A key under the
//! prefix that does not hold a job is counted, not an error: the page shows the jobs it can.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use blobjobs_protocol::names::{RawStore, check_site_id};
use blobjobs_store_api::jobs::JOB_PREFIX;
use blobjobs_store_api::stream::{Head, read_head};
use blobjobs_store_api::{
    BlobInfo, BlobStore, Error, Job, JobId, JobStatus, ListOptions, Metadata, Timestamp,
    validate_key,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use http::{Method, StatusCode};
use serde::Serialize;

use crate::app::{App, Outcome};
use crate::error::Rejection;
use crate::response::{json, status_only};

/// How many bytes of a value the preview shows.
pub const PREVIEW_BYTES: usize = 64 * 1024;

/// Entries per page unless the page asks for another number.
const DEFAULT_LIMIT: usize = 100;

/// The most entries one page may ask for.
pub const MAX_LIMIT: usize = 1000;

/// How many listing pages one jobs request examines at most while it looks for jobs that
/// match a status filter, so that a rare status costs a bounded amount of work per request.
const MAX_JOB_SCAN_PAGES: usize = 10;

/// The largest value read as a possible job record; job records are small JSON objects.
const MAX_JOB_BYTES: usize = 1024 * 1024;

/// How many keys of one page are read at the same time.
const READ_CONCURRENCY: usize = 8;

/// Answers `method` on the API resource `name` with the query `query`.
pub(super) async fn handle(app: &App, name: &str, method: &Method, query: Option<&str>) -> Outcome {
    let params = Params::parse(query)?;
    match (name, method) {
        ("sites", &Method::GET) => sites(app).await,
        ("stores", &Method::GET) => stores(app, &params).await,
        ("keys", &Method::GET) => keys(app, &params).await,
        ("value", &Method::GET) => value(app, &params).await,
        ("value", &Method::DELETE) => delete(app, &params).await,
        ("jobs", &Method::GET) => jobs(app, &params).await,
        ("sites" | "stores" | "keys" | "jobs", _) => {
            Err(Rejection::MethodNotAllowed { allow: "GET" })
        }
        ("value", _) => Err(Rejection::MethodNotAllowed {
            allow: "GET, DELETE",
        }),
        _ => Err(Rejection::NoRoute),
    }
}

/// The query's parameters, percent-decoded (`+` as a space, as forms and `URLSearchParams`
/// encode it).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: Option<&str>) -> Result<Params, Rejection> {
        let decode = |text: &str| -> Result<String, Rejection> {
            let spaced = text.replace('+', " ");
            percent_encoding::percent_decode_str(&spaced)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| Error::invalid("query parameters must be utf-8").into())
        };
        let mut pairs = Vec::new();
        for pair in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((decode(name)?, decode(value)?));
        }
        Ok(Params(pairs))
    }

    /// The value of `name`, if given and not empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, name: &str) -> Result<&str, Rejection> {
        self.get(name)
            .ok_or_else(|| Error::invalid(format!("the parameter {name} is required")).into())
    }

    /// The site and store a request names, checked as the protocol's paths are.
    fn store(&self, app: &App) -> Result<Arc<dyn BlobStore>, Rejection> {
        let site = self.required("site")?;
        check_site_id(site)?;
        let store = self.required("store")?;
        RawStore::parse(store)?;
        app.store(site, store)
    }

    /// The key a request names.
    fn key(&self) -> Result<&str, Rejection> {
        let key = self.required("key")?;
        validate_key(key)?;
        Ok(key)
    }

    /// The page size asked for: 1 to [`MAX_LIMIT`], `default` if not given.
    fn limit(&self, default: usize) -> Result<usize, Rejection> {
        let Some(text) = self.get("limit") else {
            return Ok(default);
        };
        text.parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                Error::invalid(format!("limit must be a number from 1 to {MAX_LIMIT}")).into()
            })
    }
}

#[derive(Serialize)]
struct Site {
    id: String,
    stores: usize,
}

/// Every site that has a store holding a blob, with how many such stores it has.
async fn sites(app: &App) -> Outcome {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for name in app.inner.catalog.list_stores("").await? {
        // Catalog names are `<site>/<raw store>`, and site IDs hold no `/`.
        if let Some((site, _)) = name.split_once('/') {
            *counts.entry(site.to_owned()).or_default() += 1;
        }
    }
    let sites: Vec<Site> = counts
        .into_iter()
        .map(|(id, stores)| Site { id, stores })
        .collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "sites": sites })))
}

#[derive(Serialize)]
struct StoreEntry {
    /// The raw name, as the protocol's paths carry it.
    name: String,
    /// `site`, `deploy` or `legacy`.
    kind: &'static str,
    /// The name a user gave `getStore` (empty for a deploy's default store).
    label: String,
    /// The deploy, for deploy stores.
    #[serde(skip_serializing_if = "Option::is_none")]
    deploy: Option<String>,
}

/// The stores of a site that hold a blob.
async fn stores(app: &App, params: &Params) -> Outcome {
    let site = params.required("site")?;
    check_site_id(site)?;
    let prefix = format!("{site}/");
    let mut stores = Vec::new();
    for name in app.inner.catalog.list_stores(&prefix).await? {
        let Some(raw) = name.strip_prefix(&prefix) else {
            continue;
        };
        let entry = match RawStore::parse(raw) {
            Ok(RawStore::Site(label)) => StoreEntry {
                name: raw.to_owned(),
                kind: "site",
                label,
                deploy: None,
            },
            Ok(RawStore::Deploy { deploy_id, name }) => StoreEntry {
                name: raw.to_owned(),
                kind: "deploy",
                label: name.unwrap_or_default(),
                deploy: Some(deploy_id),
            },
            Ok(RawStore::Legacy(label)) => StoreEntry {
                name: raw.to_owned(),
                kind: "legacy",
                label,
                deploy: None,
            },
            // Only names the protocol accepted were ever written; anything else is not shown.
            Err(_) => continue,
        };
        stores.push(entry);
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "stores": stores }),
    ))
}

/// What the page shows of one key.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyEntry {
    key: String,
    size: u64,
    etag: String,
    /// Milliseconds since the Unix epoch.
    last_modified: u64,
    metadata: Metadata,
}

impl KeyEntry {
    fn new(key: String, info: BlobInfo) -> Self {
        KeyEntry {
            key,
            size: info.size,
            etag: info.etag.as_str().to_owned(),
            last_modified: info.last_modified.as_millis(),
            metadata: info.metadata,
        }
    }
}

/// One page of a store's keys (optionally under a prefix), each with its metadata.
async fn keys(app: &App, params: &Params) -> Outcome {
    let store = params.store(app)?;
    let limit = params.limit(DEFAULT_LIMIT)?;
    let options = ListOptions::new()
        .prefix(params.get("prefix").unwrap_or_default())
        .cursor(params.get("cursor").map(str::to_owned))
        .page_size(limit);
    let page = store.list(options).await?;
    // Listings carry no metadata; one read of the head per key, a few at a time.
    let heads: Vec<_> = futures_util::stream::iter(page.blobs)
        .map(|entry| {
            let store = store.clone();
            async move { (store.get_metadata(&entry.key).await, entry.key) }
        })
        .buffered(READ_CONCURRENCY)
        .collect()
        .await;
    let mut keys = Vec::with_capacity(heads.len());
    for (head, key) in heads {
        // A key deleted since the listing is simply left out.
        if let Some(info) = head? {
            keys.push(KeyEntry::new(key, info));
        }
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "keys": keys, "nextCursor": page.next_cursor }),
    ))
}

/// A value's head, its first [`PREVIEW_BYTES`] in base64, with its metadata.
async fn value(app: &App, params: &Params) -> Outcome {
    let store = params.store(app)?;
    let key = params.key()?;
    let Some((info, body)) = store.get_stream(key).await? else {
        return Err(Error::new(blobjobs_store_api::ErrorKind::NotFound, "no such key").into());
    };
    let preview = match read_head(body, PREVIEW_BYTES, None).await? {
        Head::Complete(bytes) => bytes,
        // The rest of the value is never read: dropping the stream closes it.
        Head::Partial { chunks, .. } => first_bytes(chunks, PREVIEW_BYTES),
    };
    let truncated = (preview.len() as u64) < info.size;
    let preview = base64::engine::general_purpose::STANDARD.encode(&preview);
    let entry = KeyEntry::new(key.to_owned(), info);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "blob": entry, "preview": preview, "truncated": truncated }),
    ))
}

/// The first `n` bytes of `chunks`.
fn first_bytes(chunks: Vec<Bytes>, n: usize) -> Bytes {
    let mut out = BytesMut::with_capacity(n);
    for chunk in chunks {
        let room = n - out.len();
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() == n {
            break;
        }
    }
    out.freeze()
}

/// Deletes a key; deleting a missing key is not an error, as in the protocol.
async fn delete(app: &App, params: &Params) -> Outcome {
    let store = params.store(app)?;
    store.delete(params.key()?).await?;
    Ok(status_only(StatusCode::NO_CONTENT))
}

/// One job record as the page shows it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JobEntry {
    key: String,
    etag: String,
    /// Whether its TTL has run out (the job layer no longer returns it).
    expired: bool,
    job: Job,
}

/// What a key under the job prefix turned out to hold.
enum Record {
    Job(Box<JobEntry>),
    /// Not a job record: something else written under the prefix.
    Other,
    /// Deleted since the listing.
    Gone,
}

/// Jobs under [`JOB_PREFIX`], oldest first (job IDs sort by creation time), optionally only
/// those in one status. A page examines `limit` keys at a time, and more listing pages while
/// none matched, up to [`MAX_JOB_SCAN_PAGES`]; `nextCursor` continues after the last one
/// examined.
async fn jobs(app: &App, params: &Params) -> Outcome {
    let store = params.store(app)?;
    let limit = params.limit(50)?;
    let status = params
        .get("status")
        .map(str::parse::<JobStatus>)
        .transpose()?;
    let now = Timestamp::now();
    let mut cursor = params.get("cursor").map(str::to_owned);
    let mut jobs = Vec::new();
    let mut other = 0usize;
    for _ in 0..MAX_JOB_SCAN_PAGES {
        let options = ListOptions::new()
            .prefix(JOB_PREFIX)
            .cursor(cursor.take())
            .page_size(limit);
        let page = store.list(options).await?;
        let records: Vec<_> = futures_util::stream::iter(page.blobs)
            .map(|entry| read_job(store.clone(), entry.key, now))
            .buffered(READ_CONCURRENCY)
            .collect()
            .await;
        for record in records {
            match record? {
                Record::Job(entry) if status.is_none_or(|s| s == entry.job.status) => {
                    jobs.push(entry);
                }
                Record::Job(_) | Record::Gone => {}
                Record::Other => other += 1,
            }
        }
        cursor = page.next_cursor;
        if !jobs.is_empty() || cursor.is_none() {
            break;
        }
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "now": now.as_millis(),
            "jobs": jobs,
            "other": other,
            "nextCursor": cursor,
        }),
    ))
}

/// Reads `key` and recognises a job record: a JSON [`Job`] whose id is the key's.
async fn read_job(
    store: Arc<dyn BlobStore>,
    key: String,
    now: Timestamp,
) -> Result<Record, Rejection> {
    let Some((info, body)) = store.get_stream(&key).await? else {
        return Ok(Record::Gone);
    };
    let Head::Complete(bytes) = read_head(body, MAX_JOB_BYTES, None).await? else {
        return Ok(Record::Other);
    };
    let Ok(job) = serde_json::from_slice::<Job>(&bytes) else {
        return Ok(Record::Other);
    };
    let id_matches = key
        .strip_prefix(JOB_PREFIX)
        .and_then(|id| JobId::new(id).ok())
        .is_some_and(|id| id == job.id);
    if !id_matches {
        return Ok(Record::Other);
    }
    Ok(Record::Job(Box::new(JobEntry {
        expired: job.is_expired(now),
        key,
        etag: info.etag.as_str().to_owned(),
        job,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_decoded_once() {
        let p = Params::parse(Some("key=a%2Bb+c&store=site%3Ajobs&empty=&flag")).unwrap();
        assert_eq!(p.get("key"), Some("a+b c"));
        assert_eq!(p.get("store"), Some("site:jobs"));
        assert_eq!(p.get("empty"), None);
        assert_eq!(p.get("flag"), None);
        assert!(Params::parse(Some("key=%FF")).is_err());
        assert_eq!(p.limit(7).unwrap(), 7);
        let bad = Params::parse(Some("limit=0")).unwrap();
        assert!(bad.limit(7).is_err());
        let bad = Params::parse(Some("limit=1001")).unwrap();
        assert!(bad.limit(7).is_err());
    }

    #[test]
    fn first_bytes_cut_across_chunks() {
        let chunks = vec![Bytes::from_static(b"abc"), Bytes::from_static(b"defg")];
        assert_eq!(first_bytes(chunks.clone(), 5), Bytes::from_static(b"abcde"));
        assert_eq!(first_bytes(chunks, 3), Bytes::from_static(b"abc"));
    }
}
