//! `impl BlobStore for PgStore`: one statement per operation, and listings as index range
//! scans.

use async_trait::async_trait;
use blobjobs_store_api::list::{Flow, Paginator};
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, Condition, Error, ErrorKind, Etag, ListEntry, ListOptions, ListPage,
    Metadata, Result, SetOptions, SetOutcome, Timestamp, validate_key, validate_metadata,
};
use bytes::Bytes;
use deadpool_postgres::Object;
use tokio_postgres::{Row, Statement};

use super::error::{error, may_have_applied, pool_error};
use super::{PgStore, schema};

const GET: &str = "SELECT value, metadata, etag, size, modified_ms FROM blobjobs_blobs \
                   WHERE store = $1 AND key = $2";
const GET_INFO: &str = "SELECT metadata, etag, size, modified_ms FROM blobjobs_blobs \
                        WHERE store = $1 AND key = $2";
const GET_ETAG: &str = "SELECT etag FROM blobjobs_blobs WHERE store = $1 AND key = $2";
const SET: &str = "INSERT INTO blobjobs_blobs (store, key, value, metadata, etag, size, modified_ms) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7) \
                   ON CONFLICT (store, key) DO UPDATE SET value = EXCLUDED.value, \
                   metadata = EXCLUDED.metadata, etag = EXCLUDED.etag, size = EXCLUDED.size, \
                   modified_ms = EXCLUDED.modified_ms";
const SET_IF_NEW: &str = "INSERT INTO blobjobs_blobs (store, key, value, metadata, etag, size, modified_ms) \
                          VALUES ($1, $2, $3, $4, $5, $6, $7) \
                          ON CONFLICT (store, key) DO NOTHING";
const SET_IF_MATCH: &str = "UPDATE blobjobs_blobs SET value = $3, metadata = $4, etag = $5, \
                            size = $6, modified_ms = $7 \
                            WHERE store = $1 AND key = $2 AND etag = $8";
const DELETE: &str = "DELETE FROM blobjobs_blobs WHERE store = $1 AND key = $2";
/// One batch of a listing: keys in `[$2, $3)` (no upper bound when `$3` is null).
const LIST: &str = "SELECT key, etag, size, modified_ms FROM blobjobs_blobs \
                    WHERE store = $1 AND key >= $2 AND ($3::bytea IS NULL OR key < $3) \
                    ORDER BY key LIMIT $4";

/// Rows per listing batch at most.
const MAX_BATCH: usize = 1000;

/// The smallest byte string greater than every string that starts with `prefix`, or `None`
/// if there is none (the prefix is empty or all `0xff`).
pub(super) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn size(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn metadata(text: &str) -> Result<Metadata> {
    Metadata::from_json(text)
        .map_err(|e| Error::new(ErrorKind::Corrupt, format!("stored metadata: {e}")))
}

fn info(row: &Row, first: usize) -> Result<BlobInfo> {
    Ok(BlobInfo {
        metadata: metadata(row.get::<_, &str>(first))?,
        etag: Etag::new(row.get::<_, String>(first + 1)),
        size: size(row.get(first + 2)),
        last_modified: timestamp(row.get(first + 3)),
    })
}

impl PgStore {
    /// A connection with the schema in place.
    pub(super) async fn client(&self, op: &str) -> Result<Object> {
        let server = &self.inner.server;
        let mut client = self
            .inner
            .pool
            .get()
            .await
            .map_err(|e| pool_error(op, server, e))?;
        self.inner
            .schema
            .get_or_try_init(|| async {
                match schema::ensure(&mut client).await {
                    Ok(done) => done,
                    Err(e) => Err(error("schema setup", server, e)),
                }
            })
            .await?;
        Ok(client)
    }

    pub(super) fn err(&self, op: &str, e: tokio_postgres::Error) -> Error {
        error(op, &self.inner.server, e)
    }

    /// `sql` prepared on `client`: from the connection's statement cache after its first use,
    /// so that an operation is one round trip (a statement sent as text is two: parse, then
    /// execute).
    pub(super) async fn statement(
        &self,
        client: &Object,
        op: &str,
        sql: &str,
    ) -> Result<Statement> {
        client
            .prepare_cached(sql)
            .await
            .map_err(|e| self.err(op, e))
    }

    /// After a write failed in a way that may have applied it: whether the row now carries
    /// `etag`, read on a fresh connection.
    async fn resolve(&self, key: &[u8], etag: &Etag, failure: Error) -> Result<SetOutcome> {
        let read = async {
            let client = self.client("get").await?;
            let statement = self.statement(&client, "get", GET_ETAG).await?;
            client
                .query_opt(&statement, &[&self.inner.store, &key])
                .await
                .map_err(|e| self.err("get", e))
        };
        match read.await {
            Ok(Some(row)) if row.get::<_, &str>(0) == etag.as_str() => {
                Ok(SetOutcome::Written { etag: etag.clone() })
            }
            Ok(_) => Err(failure),
            Err(e) => Err(Error::new(
                ErrorKind::Timeout,
                format!("the outcome of a write is unknown: {failure}; reading it back: {e}"),
            )),
        }
    }
}

#[async_trait]
impl BlobStore for PgStore {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        validate_key(key)?;
        let client = self.client("get").await?;
        let statement = self.statement(&client, "get", GET).await?;
        let row = client
            .query_opt(&statement, &[&self.inner.store, &key.as_bytes()])
            .await
            .map_err(|e| self.err("get", e))?;
        let Some(row) = row else { return Ok(None) };
        let value: Vec<u8> = row.get(0);
        Ok(Some(Blob {
            value: Bytes::from(value),
            info: info(&row, 1)?,
        }))
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        validate_key(key)?;
        let client = self.client("get").await?;
        let statement = self.statement(&client, "get", GET_INFO).await?;
        let row = client
            .query_opt(&statement, &[&self.inner.store, &key.as_bytes()])
            .await
            .map_err(|e| self.err("get", e))?;
        row.map(|r| info(&r, 0)).transpose()
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        validate_key(key)?;
        validate_metadata(&options.metadata)?;
        let etag = Etag::random()?;
        let client = self.client("set").await?;
        let store = &self.inner.store;
        let key = key.as_bytes();
        let value: &[u8] = &value;
        let meta = options.metadata.to_json();
        let new_etag = etag.as_str();
        let size = i64::try_from(value.len()).unwrap_or(i64::MAX);
        let now = i64::try_from(Timestamp::now().as_millis()).unwrap_or(i64::MAX);
        let sql = match &options.condition {
            Condition::Always => SET,
            Condition::IfNew => SET_IF_NEW,
            Condition::IfMatch(_) => SET_IF_MATCH,
        };
        let statement = self.statement(&client, "set", sql).await?;
        let result = match &options.condition {
            Condition::Always | Condition::IfNew => {
                client
                    .execute(
                        &statement,
                        &[store, &key, &value, &meta, &new_etag, &size, &now],
                    )
                    .await
            }
            Condition::IfMatch(want) => {
                let want = want.as_str();
                client
                    .execute(
                        &statement,
                        &[store, &key, &value, &meta, &new_etag, &size, &now, &want],
                    )
                    .await
            }
        };
        match result {
            Ok(1) => Ok(SetOutcome::Written { etag }),
            Ok(_) => Ok(SetOutcome::ConditionFailed),
            Err(e) if may_have_applied(&e) => {
                drop(client);
                let failure = self.err("set", e);
                self.resolve(key, &etag, failure).await
            }
            Err(e) => Err(self.err("set", e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        validate_key(key)?;
        let client = self.client("delete").await?;
        let statement = self.statement(&client, "delete", DELETE).await?;
        client
            .execute(&statement, &[&self.inner.store, &key.as_bytes()])
            .await
            .map_err(|e| self.err("delete", e))?;
        Ok(())
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let mut pager = Paginator::new(&options)?;
        let page_size = options
            .page_size
            .unwrap_or(blobjobs_store_api::list::DEFAULT_PAGE_SIZE);
        let batch = (page_size + 1).min(MAX_BATCH);
        let limit = i64::try_from(batch).unwrap_or(1000);
        let end = prefix_end(pager.prefix().as_bytes());
        let mut from = pager.start_key().as_bytes().to_vec();
        let mut skip_from = false;
        let client = self.client("list").await?;
        let statement = self.statement(&client, "list", LIST).await?;
        loop {
            let rows = client
                .query(&statement, &[&self.inner.store, &from, &end, &limit])
                .await
                .map_err(|e| self.err("list", e))?;
            let full = rows.len() == batch;
            for row in &rows {
                let key: Vec<u8> = row.get(0);
                // The next batch starts at this batch's last key, which it must not repeat.
                if skip_from && key == from {
                    continue;
                }
                let text = String::from_utf8(key.clone())
                    .map_err(|_| Error::new(ErrorKind::Corrupt, "a stored key is not utf-8"))?;
                let entry = ListEntry {
                    key: text,
                    etag: Etag::new(row.get::<_, String>(1)),
                    size: size(row.get(2)),
                    last_modified: timestamp(row.get(3)),
                };
                if pager.push(entry) == Flow::Stop {
                    return Ok(pager.finish());
                }
            }
            match rows.last() {
                Some(last) if full => {
                    from = last.get(0);
                    skip_from = true;
                }
                _ => return Ok(pager.finish()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends_bound_exactly_the_keys_with_the_prefix() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
        assert_eq!(prefix_end(b""), None);
    }
}
