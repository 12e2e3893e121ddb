//! What a [`Catalog`](crate::Catalog) over S3 needs besides one store: stores with the
//! catalog's longer names (which may hold `/`), the names of the stores under the
//! configuration's prefix, and deleting a whole store.
//!
//! A catalog store is laid out exactly as [`S3Store::open`] lays out a store of the same name:
//! the directory `PREFIX/enc(name)`, one path segment. A store opened by an `s3://` spec and the
//! catalog's store of that name are therefore the same store. Since the directory is one
//! segment, its encoding must fit one: names whose encoding is longer than
//! [`MAX_DIR_BYTES`] are refused (the emulator's names, `<site>/site:<name>`, need about 100).

use blobjobs_store_api::{Error, ListOptions, Result};
use futures_util::StreamExt as _;
use futures_util::stream::{self, BoxStream};
use object_store::ObjectStore as _;
use object_store::path::Path;

use super::{Inner, S3Store, dir_of, names};
use crate::catalog::MAX_CATALOG_NAME_BYTES;

/// The longest encoded store name, in bytes: one path segment that engines storing objects
/// as files accept (they refuse segments over 255 bytes), the same bound as the segments of
/// object names.
pub const MAX_DIR_BYTES: usize = names::SEGMENT_BYTES;

/// Stores whose emptiness is checked at once while listing store names.
const CHECKS_IN_FLIGHT: usize = 8;

/// Objects per bulk delete request (S3's limit).
const DELETE_BATCH: usize = 1000;

impl S3Store {
    /// The catalog store called `name` in the same bucket and prefix, on this handle's
    /// connections. Unlike [`S3Store::sibling`] it takes any catalog name: 1 to
    /// [`MAX_CATALOG_NAME_BYTES`] bytes, `/` allowed, encoding to at most [`MAX_DIR_BYTES`].
    pub(crate) fn catalog_sibling(&self, name: &str) -> Result<S3Store> {
        if name.is_empty() || name.len() > MAX_CATALOG_NAME_BYTES {
            return Err(Error::invalid(format!(
                "store name must be 1 to {MAX_CATALOG_NAME_BYTES} bytes"
            )));
        }
        let mut encoded = String::new();
        names::encode_into(name, &mut encoded);
        if encoded.len() > MAX_DIR_BYTES {
            return Err(Error::invalid(format!(
                "store name encodes to {} bytes in s3, the maximum is {MAX_DIR_BYTES}",
                encoded.len()
            )));
        }
        let inner = &self.inner;
        Ok(S3Store {
            inner: std::sync::Arc::new(Inner {
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

    /// The names of the stores under this handle's prefix that start with `prefix` and hold
    /// at least one key, sorted.
    ///
    /// The store directories come from one delimiter listing of the prefix; each is then
    /// checked for a key, since an emptied directory can linger in delimiter listings for
    /// minutes (SeaweedFS) and a directory may hold only objects of other programs.
    pub(crate) async fn store_names(&self, prefix: &str) -> Result<Vec<String>> {
        let inner = &self.inner;
        let top = if inner.prefix.is_empty() {
            None
        } else {
            Some(
                Path::parse(&inner.prefix)
                    .map_err(|_| Error::invalid("the s3 prefix is not a valid object path"))?,
            )
        };
        let listing = inner
            .retrying
            .list_with_delimiter(top.as_ref())
            .await
            .map_err(|e| self.err("list stores", e))?;
        let candidates: Vec<S3Store> = listing
            .common_prefixes
            .iter()
            .filter_map(|dir: &Path| names::store_of(dir.filename()?))
            .filter(|name: &String| name.starts_with(prefix))
            .filter_map(|name: String| self.catalog_sibling(&name).ok())
            .collect();
        let checked: Vec<Result<Option<String>>> = stream::iter(candidates)
            .map(|store| async move {
                let empty = store.is_empty().await?;
                Ok((!empty).then(|| store.inner.name.clone()))
            })
            .buffer_unordered(CHECKS_IN_FLIGHT)
            .collect()
            .await;
        let mut out = Vec::new();
        for name in checked {
            out.extend(name?);
        }
        out.sort();
        Ok(out)
    }

    /// Whether the store holds no key: one listing of a single entry.
    async fn is_empty(&self) -> Result<bool> {
        use blobjobs_store_api::BlobStore as _;
        Ok(self
            .list(ListOptions::new().page_size(1))
            .await?
            .blobs
            .is_empty())
    }

    /// Deletes every object of the store's directory, in bulk requests of up to
    /// [`DELETE_BATCH`] objects while the listing goes on; returns how many of them were keys.
    /// Keys written while it runs may survive it, as with any store-wide delete.
    pub(crate) async fn delete_all(&self) -> Result<u64> {
        let inner = &self.inner;
        let dir = Path::parse(&inner.dir)
            .map_err(|_| Error::invalid("the store's directory is not a valid object path"))?;
        let skip = inner.dir.len() + 1;
        let mut objects = inner.retrying.list(Some(&dir));
        let mut keys = 0u64;
        let mut batch = Vec::with_capacity(DELETE_BATCH);
        loop {
            let next = objects.next().await;
            let done = next.is_none();
            if let Some(meta) = next {
                let meta = meta.map_err(|e| self.err("list", e))?;
                let name = meta.location.as_ref().get(skip..).unwrap_or("");
                if names::key_of(name).is_some() {
                    keys += 1;
                }
                batch.push(meta.location);
            }
            if batch.len() == DELETE_BATCH || (done && !batch.is_empty()) {
                let paths: BoxStream<'static, object_store::Result<Path>> =
                    stream::iter(std::mem::take(&mut batch).into_iter().map(Ok)).boxed();
                let mut deleted = inner.retrying.delete_stream(paths);
                while let Some(result) = deleted.next().await {
                    match result {
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(self.err("delete", e)),
                    }
                }
            }
            if done {
                return Ok(keys);
            }
        }
    }
}
