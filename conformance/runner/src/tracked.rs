//! Instances as the runner hands them to the suite: every key a run writes is remembered, so
//! that the run can delete what it wrote, and every operation that ends in a server error
//! (an HTTP 5xx) is counted for the report.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use blobjobs_backends::http::StatusError;
use blobjobs_conformance::remote::KillSwitch;
use blobjobs_conformance::{InstanceFactory, SharedFactory};
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, Error, ListOptions, ListPage, Result, SetOptions,
    SetOutcome,
};
use bytes::Bytes;
use futures_util::StreamExt as _;

/// What a run's instances have done that outlives the run: keys written, server errors.
#[derive(Debug, Default)]
struct Ledger {
    /// Every valid key a write was sent for, whether or not it applied. It grows with the run, and
    /// a run writes a bounded number of keys (a few thousand at most with the defaults).
    written: Mutex<BTreeSet<String>>,
    server_errors: AtomicU64,
}

impl Ledger {
    fn wrote(&self, key: &str) {
        // A key the store must refuse is never written, and could not be deleted either.
        if blobjobs_store_api::validate_key(key).is_err() {
            return;
        }
        if let Ok(mut keys) = self.written.lock() {
            keys.insert(key.to_owned());
        }
    }

    fn saw<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && is_server_error(e)
        {
            self.server_errors.fetch_add(1, Ordering::Relaxed);
        }
        result
    }
}

/// Whether `e` is the end of an operation that a server answered with a 5xx: a
/// [`StatusError`] in its sources, or, for an error that crossed a process boundary as text,
/// a message saying "answered 5NN".
pub fn is_server_error(e: &Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(status) = s.downcast_ref::<StatusError>() {
            return status.status >= 500;
        }
        source = s.source();
    }
    e.message().match_indices("answered 5").any(|(at, _)| {
        let code = &e.message()[at + "answered ".len()..];
        code.len() >= 3 && code.as_bytes()[..3].iter().all(u8::is_ascii_digit)
    })
}

/// A factory whose instances record what they write and count server errors (see the
/// module docs). Clones share one ledger.
#[derive(Clone)]
pub struct Tracked {
    inner: SharedFactory,
    ledger: Arc<Ledger>,
}

impl std::fmt::Debug for Tracked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracked").finish_non_exhaustive()
    }
}

/// What [`Tracked::clean_up`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleanup {
    /// Keys deleted (or already gone).
    pub deleted: usize,
    /// Keys whose delete failed.
    pub failed: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
}

/// Deletes in flight at once during a clean-up.
const CLEANUP_CONCURRENCY: usize = 8;

impl Tracked {
    /// Wraps `inner`.
    pub fn new(inner: SharedFactory) -> Self {
        Tracked {
            inner,
            ledger: Arc::new(Ledger::default()),
        }
    }

    /// Operations so far that ended in a server error.
    pub fn server_errors(&self) -> u64 {
        self.ledger.server_errors.load(Ordering::Relaxed)
    }

    /// Every key a write was sent for so far, in order.
    pub fn written(&self) -> Vec<String> {
        self.ledger
            .written
            .lock()
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Deletes every key written so far through `store` (a handle of the same store), a few
    /// at a time, each within `limit`.
    pub async fn clean_up(&self, store: Arc<dyn BlobStore>, limit: Duration) -> Cleanup {
        let keys = self.written();
        let results: Vec<std::result::Result<(), String>> =
            futures_util::stream::iter(keys.into_iter().map(|key| {
                let store = store.clone();
                async move {
                    match tokio::time::timeout(limit, store.delete(&key)).await {
                        Ok(Ok(())) => Ok(()),
                        Ok(Err(e)) => Err(format!("{key:?}: {}", e.message())),
                        Err(_) => Err(format!("{key:?}: no answer within {limit:?}")),
                    }
                }
            }))
            .buffer_unordered(CLEANUP_CONCURRENCY)
            .collect()
            .await;
        let failed: Vec<String> = results.into_iter().filter_map(|r| r.err()).collect();
        Cleanup {
            deleted: self.written().len() - failed.len(),
            failed: failed.len(),
            first_error: failed.into_iter().next(),
        }
    }

    fn wrap(&self, inner: Arc<dyn BlobStore>) -> Arc<dyn BlobStore> {
        Arc::new(TrackedStore {
            inner,
            ledger: self.ledger.clone(),
        })
    }
}

#[async_trait]
impl InstanceFactory for Tracked {
    async fn instance(&self) -> Result<Arc<dyn BlobStore>> {
        Ok(self.wrap(self.inner.instance().await?))
    }

    fn spawns_processes(&self) -> bool {
        self.inner.spawns_processes()
    }

    async fn killable_instance(&self) -> Result<(Arc<dyn BlobStore>, KillSwitch)> {
        let (store, switch) = self.inner.killable_instance().await?;
        Ok((self.wrap(store), switch))
    }
}

/// One instance of a [`Tracked`] factory.
#[derive(Debug)]
struct TrackedStore {
    inner: Arc<dyn BlobStore>,
    ledger: Arc<Ledger>,
}

#[async_trait]
impl BlobStore for TrackedStore {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        self.ledger.saw(self.inner.get(key).await)
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        self.ledger.saw(self.inner.get_metadata(key).await)
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        self.ledger.wrote(key);
        self.ledger.saw(self.inner.set(key, value, options).await)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.ledger.saw(self.inner.delete(key).await)
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        self.ledger.saw(self.inner.list(options).await)
    }

    async fn get_stream(&self, key: &str) -> Result<Option<(BlobInfo, ByteStream)>> {
        self.ledger.saw(self.inner.get_stream(key).await)
    }

    async fn set_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        self.ledger.wrote(key);
        self.ledger
            .saw(self.inner.set_stream(key, body, max_size, options).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blobjobs_backends::MemoryStore;
    use blobjobs_store_api::ErrorKind;

    #[test]
    fn server_errors_are_recognised_in_sources_and_in_text() {
        let status = StatusError {
            status: 500,
            request: "PUT site:s/k".into(),
            body_start: String::new(),
        };
        let direct = Error::new(ErrorKind::Unavailable, status.to_string()).with_source(status);
        let wrapped = Error::new(ErrorKind::Unavailable, "gave up").with_source(direct);
        assert!(is_server_error(&wrapped));
        let text = Error::new(
            ErrorKind::Unavailable,
            "PUT site:s/k answered 503 (gave up after 2 attempts in 120 ms)",
        );
        assert!(is_server_error(&text));
        for not in [
            "PUT site:s/k answered 429",
            "answered 5",
            "cannot connect: connection refused",
        ] {
            assert!(!is_server_error(&Error::new(ErrorKind::Unavailable, not)));
        }
        let forbidden = StatusError {
            status: 403,
            request: "GET site:s/k".into(),
            body_start: String::new(),
        };
        assert!(!is_server_error(
            &Error::new(ErrorKind::Unauthorized, "no").with_source(forbidden)
        ));
    }

    #[tokio::test]
    async fn written_keys_are_remembered_and_cleaned_up() {
        let shared = MemoryStore::new();
        let inner: SharedFactory = Arc::new(move || {
            let store = shared.clone();
            async move { Ok(Arc::new(store) as Arc<dyn BlobStore>) }
        });
        let tracked = Tracked::new(inner.clone());
        let a = tracked.instance().await.unwrap();
        a.set("x/1", Bytes::from_static(b"1"), SetOptions::new())
            .await
            .unwrap();
        let body: ByteStream = blobjobs_store_api::once_stream(Bytes::from_static(b"2"));
        a.set_stream("x/2", body, None, SetOptions::new())
            .await
            .unwrap();
        // A key no store accepts is not remembered.
        assert!(a.set("", Bytes::new(), SetOptions::new()).await.is_err());
        assert_eq!(tracked.written(), ["x/1", "x/2"]);
        let plain = inner.instance().await.unwrap();
        let cleanup = tracked
            .clean_up(plain.clone(), Duration::from_secs(5))
            .await;
        assert_eq!(
            cleanup,
            Cleanup {
                deleted: 2,
                failed: 0,
                first_error: None
            }
        );
        assert!(plain.get("x/1").await.unwrap().is_none());
        assert!(plain.get("x/2").await.unwrap().is_none());
        assert_eq!(tracked.server_errors(), 0);
        assert!(!tracked.spawns_processes());
    }
}
