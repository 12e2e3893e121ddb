//! `BlobStoreExt`: conveniences every `BlobStore` gets for free, built only from the trait's
//! own methods, so that callers stop writing them by hand.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::blob::{BlobStore, ListEntry, ListOptions};
use crate::error::{Error, ErrorKind, Result};

/// Methods on top of [`BlobStore`], implemented for every store (including
/// `dyn BlobStore`). Bring the trait into scope to use them:
///
/// ```
/// use blobjobs_store_api::{BlobStore, BlobStoreExt, ListOptions};
///
/// async fn count_carts(store: &dyn BlobStore) -> blobjobs_store_api::Result<usize> {
///     Ok(store.list_all(ListOptions::new().prefix("cart/")).await?.len())
/// }
/// ```
///
/// Implementors of `BlobStore` never implement this trait themselves: the blanket
/// implementation covers them, the way object_store's `ObjectStoreExt` covers object stores.
#[async_trait]
pub trait BlobStoreExt: BlobStore {
    /// Every blob a listing with `options` selects, walking all its pages from
    /// `options.cursor` (usually `None`, the first page) to the last.
    ///
    /// In directories mode the collapsed directory names are left out; use
    /// [`BlobStoreExt::list_all_with_directories`] to get them too. The page size stays what
    /// `options` asks for, so a small one costs more round trips, not a different result.
    ///
    /// A store that hands back a cursor it already returned would make the walk endless; that
    /// is reported as an [`ErrorKind::Protocol`] error instead.
    async fn list_all(&self, options: ListOptions) -> Result<Vec<ListEntry>> {
        Ok(self.list_all_with_directories(options).await?.0)
    }

    /// Like [`BlobStoreExt::list_all`], and also every directory name of a listing in
    /// directories mode, in the order the pages gave them (empty when
    /// [`ListOptions::directories`] is off).
    async fn list_all_with_directories(
        &self,
        options: ListOptions,
    ) -> Result<(Vec<ListEntry>, Vec<String>)> {
        let mut blobs = Vec::new();
        let mut directories = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor = options.cursor.clone();
        loop {
            let page = self.list(options.clone().cursor(cursor)).await?;
            blobs.extend(page.blobs);
            directories.extend(page.directories);
            match page.next_cursor {
                None => return Ok((blobs, directories)),
                Some(next) => {
                    if !seen.insert(next.clone()) {
                        return Err(Error::new(
                            ErrorKind::Protocol,
                            "the listing returned a cursor it had already returned, so it would never end",
                        ));
                    }
                    cursor = Some(next);
                }
            }
        }
    }
}

impl<S: BlobStore + ?Sized> BlobStoreExt for S {}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use bytes::Bytes;

    use super::*;
    use crate::blob::{Blob, BlobInfo, Etag, ListPage, SetOptions, SetOutcome, Timestamp};
    use crate::list::paginate;

    /// A read-only store over fixed keys that pages with the shared paginator, and can be
    /// told to answer every page with the same cursor.
    #[derive(Debug)]
    struct Fixed {
        keys: Vec<&'static str>,
        stuck_cursor: bool,
        pages: Mutex<usize>,
    }

    impl Fixed {
        fn new(keys: &[&'static str]) -> Self {
            Fixed {
                keys: keys.to_vec(),
                stuck_cursor: false,
                pages: Mutex::new(0),
            }
        }
    }

    #[async_trait]
    impl BlobStore for Fixed {
        async fn get(&self, _: &str) -> Result<Option<Blob>> {
            Ok(None)
        }
        async fn get_metadata(&self, _: &str) -> Result<Option<BlobInfo>> {
            Ok(None)
        }
        async fn set(&self, _: &str, _: Bytes, _: SetOptions) -> Result<SetOutcome> {
            Err(Error::invalid("read-only"))
        }
        async fn delete(&self, _: &str) -> Result<()> {
            Ok(())
        }
        async fn list(&self, options: ListOptions) -> Result<ListPage> {
            if let Ok(mut pages) = self.pages.lock() {
                *pages += 1;
            }
            let entries = self.keys.iter().map(|k| ListEntry {
                key: (*k).to_owned(),
                etag: Etag::new("\"e\""),
                size: 1,
                last_modified: Timestamp::from_millis(0),
            });
            let mut page = paginate(entries, &options)?;
            if self.stuck_cursor && page.next_cursor.is_some() {
                page.next_cursor = options.cursor.clone().or(page.next_cursor);
            }
            Ok(page)
        }
    }

    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .map(|rt| rt.block_on(fut))
            .unwrap_or_else(|e| panic!("no runtime: {e}"))
    }

    fn keys(entries: &[ListEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.key.as_str()).collect()
    }

    #[test]
    fn list_all_walks_every_page() {
        let store = Fixed::new(&["a", "b/1", "b/2", "c", "d/x/y", "e"]);
        let all = block_on(store.list_all(ListOptions::new().page_size(2)));
        let all = all.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&all), ["a", "b/1", "b/2", "c", "d/x/y", "e"]);
        assert_eq!(store.pages.lock().map(|p| *p).unwrap_or(0), 3);
        let under = block_on(store.list_all(ListOptions::new().prefix("b/").page_size(1)));
        assert_eq!(keys(&under.unwrap_or_default()), ["b/1", "b/2"]);
    }

    #[test]
    fn directories_come_back_on_request() {
        let store = Fixed::new(&["a", "b/1", "b/2", "c", "d/x/y", "e"]);
        let options = ListOptions::new().directories(true).page_size(1);
        let (blobs, dirs) = block_on(store.list_all_with_directories(options.clone()))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(keys(&blobs), ["a", "c", "e"]);
        assert_eq!(dirs, ["b", "d"]);
        let blobs = block_on(store.list_all(options)).unwrap_or_default();
        assert_eq!(keys(&blobs), ["a", "c", "e"]);
    }

    #[test]
    fn a_repeated_cursor_is_a_protocol_error_not_a_hang() {
        let mut store = Fixed::new(&["a", "b", "c", "d"]);
        store.stuck_cursor = true;
        let err = block_on(store.list_all(ListOptions::new().page_size(1)))
            .err()
            .map(|e| e.kind());
        assert_eq!(err, Some(ErrorKind::Protocol));
    }

    #[test]
    fn works_through_a_trait_object() {
        let store: std::sync::Arc<dyn BlobStore> = std::sync::Arc::new(Fixed::new(&["k"]));
        let all = block_on(store.list_all(ListOptions::new())).unwrap_or_default();
        assert_eq!(keys(&all), ["k"]);
    }
}
