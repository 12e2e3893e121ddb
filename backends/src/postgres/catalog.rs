//! What a [`Catalog`](crate::Catalog) over PostgreSQL needs besides one store: stores with
//! the catalog's longer names, the names of the stores that hold rows, and deleting a whole
//! store. A catalog store is the same rows as a [`PgStore`] opened with the same name.

use blobjobs_store_api::{Error, Result};

use super::PgStore;
use super::store::prefix_end;
use crate::catalog::MAX_CATALOG_NAME_BYTES;

/// The distinct store names in `[$1, $2)` (no upper bound when `$2` is null), one index
/// probe per store rather than a scan of every row: each step of the recursion looks up the
/// first store after the one before.
const STORE_NAMES: &str = "WITH RECURSIVE stores(store) AS ( \
        (SELECT store FROM blobjobs_blobs WHERE store >= $1 ORDER BY store LIMIT 1) \
        UNION ALL \
        SELECT (SELECT b.store FROM blobjobs_blobs b WHERE b.store > s.store \
                ORDER BY b.store LIMIT 1) \
        FROM stores s WHERE s.store IS NOT NULL AND ($2::bytea IS NULL OR s.store < $2) \
    ) \
    SELECT store FROM stores WHERE store IS NOT NULL AND ($2::bytea IS NULL OR store < $2)";

const DELETE_STORE: &str = "DELETE FROM blobjobs_blobs WHERE store = $1";

impl PgStore {
    /// The catalog store called `name` on this handle's pool. Unlike [`PgStore::sibling`] it
    /// takes any catalog name: 1 to [`MAX_CATALOG_NAME_BYTES`] bytes, `/` allowed.
    pub(crate) fn catalog_sibling(&self, name: &str) -> Result<PgStore> {
        if name.is_empty() || name.len() > MAX_CATALOG_NAME_BYTES {
            return Err(Error::invalid(format!(
                "store name must be 1 to {MAX_CATALOG_NAME_BYTES} bytes"
            )));
        }
        Ok(self.sibling_unchecked(name))
    }

    /// The names of the stores that start with `prefix` and hold at least one row, sorted
    /// (byte order, which is UTF-8 order). A name that is not UTF-8 (written by another
    /// program) is skipped.
    pub(crate) async fn store_names(&self, prefix: &str) -> Result<Vec<String>> {
        let client = self.client("list stores").await?;
        let end = prefix_end(prefix.as_bytes());
        let rows = client
            .query(STORE_NAMES, &[&prefix.as_bytes(), &end])
            .await
            .map_err(|e| self.err("list stores", e))?;
        Ok(rows
            .iter()
            .filter_map(|row| String::from_utf8(row.get::<_, Vec<u8>>(0)).ok())
            .collect())
    }

    /// Deletes every row of the store in one statement; returns how many there were.
    pub(crate) async fn delete_all(&self) -> Result<u64> {
        let client = self.client("delete store").await?;
        client
            .execute(DELETE_STORE, &[&self.inner.store])
            .await
            .map_err(|e| self.err("delete store", e))
    }
}
