//! One blob-store instance as a case uses it: every call bounded in time, recorded in the
//! case's timeline and checked for the symptom of the seed's bug.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, BlobStoreExt as _, ByteStream, Etag, ListOptions, ListPage, Result,
    SetOptions, SetOutcome,
};
use bytes::Bytes;
use futures_util::StreamExt as _;

use super::timeline::{Owners, Timeline, show_condition, show_err, show_etag, show_value};
use super::{Failure, limited};
use crate::causes;
use crate::probe::Probe;

/// One instance as a case uses it: every call is recorded in the case's timeline.
#[derive(Clone)]
pub(crate) struct Instance {
    pub(crate) id: usize,
    /// The instance under the case's prefix, without recording (for the job layer).
    pub(crate) store: Arc<dyn BlobStore>,
    /// The instance without the prefix (only for checks that must not be prefixed).
    pub(crate) raw: Arc<dyn BlobStore>,
    pub(super) log: Arc<Timeline>,
    pub(super) op_timeout: Duration,
    pub(crate) owners: Arc<Owners>,
    pub(super) probe: Arc<Probe>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instance {}", self.id)
    }
}

impl Instance {
    fn note(&self, what: String) {
        self.log.push(format!("instance {}: {what}", self.id));
    }

    /// Notes the seed's bug when a read of `key` found nothing that another instance wrote.
    pub(crate) fn found(&self, key: &str, found: bool) {
        if !found && self.owners.other_writer(key, self.id).is_some() {
            self.probe.symptom(causes::NOT_VISIBLE_ACROSS_INSTANCES);
        }
    }

    pub(crate) fn written(&self, key: &str, r: &Result<SetOutcome>) {
        if let Ok(SetOutcome::Written { .. }) = r {
            self.owners.wrote(key, self.id);
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Blob>> {
        let r = limited(self.op_timeout, self.store.get(key)).await;
        if let Ok(b) = &r {
            self.found(key, b.is_some());
        }
        let shown = match &r {
            Ok(Some(b)) => format!("{} {}", show_value(&b.value), show_etag(&b.info.etag)),
            Ok(None) => "not found".to_owned(),
            Err(e) => show_err(e),
        };
        self.note(format!("get {key:?} → {shown}"));
        r
    }

    pub(crate) async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        let r = limited(self.op_timeout, self.store.get_metadata(key)).await;
        if let Ok(i) = &r {
            self.found(key, i.is_some());
        }
        let shown = match &r {
            Ok(Some(i)) => format!("{} bytes {}", i.size, show_etag(&i.etag)),
            Ok(None) => "not found".to_owned(),
            Err(e) => show_err(e),
        };
        self.note(format!("get-metadata {key:?} → {shown}"));
        r
    }

    pub(crate) async fn set_with(
        &self,
        key: &str,
        value: impl Into<Bytes>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let value = value.into();
        let what = format!(
            "set {key:?}{} = {}",
            show_condition(&options.condition),
            show_value(&value)
        );
        let r = limited(self.op_timeout, self.store.set(key, value, options)).await;
        self.written(key, &r);
        let shown = match &r {
            Ok(SetOutcome::Written { etag }) => format!("written {}", show_etag(etag)),
            Ok(SetOutcome::ConditionFailed) => "condition failed".to_owned(),
            Err(e) => show_err(e),
        };
        self.note(format!("{what} → {shown}"));
        r
    }

    /// An unconditional write that must succeed; returns the new ETag.
    pub(crate) async fn put(&self, key: &str, value: impl Into<Bytes>) -> Result<Etag, Failure> {
        match self.set_with(key, value, SetOptions::new()).await? {
            SetOutcome::Written { etag } => Ok(etag),
            SetOutcome::ConditionFailed => Err(Failure::new(format!(
                "an unconditional set of {key:?} reported a failed condition"
            ))),
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        let r = limited(self.op_timeout, self.store.delete(key)).await;
        if r.is_ok() {
            self.owners.deleted(key);
        }
        let shown = match &r {
            Ok(()) => "ok".to_owned(),
            Err(e) => show_err(e),
        };
        self.note(format!("delete {key:?} → {shown}"));
        r
    }

    pub(crate) async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let what = format!(
            "list prefix {:?}{}{}{}",
            options.prefix,
            if options.directories {
                " directories"
            } else {
                ""
            },
            options
                .page_size
                .map(|n| format!(" page-size {n}"))
                .unwrap_or_default(),
            if options.cursor.is_some() {
                " (next page)"
            } else {
                ""
            },
        );
        let r = limited(self.op_timeout, self.store.list(options)).await;
        let shown = match &r {
            Ok(p) => {
                let mut items: Vec<String> =
                    p.blobs.iter().map(|e| format!("{:?}", e.key)).collect();
                items.extend(p.directories.iter().map(|d| format!("{d:?}/")));
                format!(
                    "[{}]{}",
                    items.join(", "),
                    if p.next_cursor.is_some() { " more" } else { "" }
                )
            }
            Err(e) => show_err(e),
        };
        self.note(format!("{what} → {shown}"));
        r
    }

    /// Walks every page of a listing and returns the blobs' entries and the directories;
    /// every page shows in the timeline.
    pub(crate) async fn list_all(
        &self,
        options: ListOptions,
    ) -> Result<(Vec<blobjobs_store_api::ListEntry>, Vec<String>), Failure> {
        Ok(Recorded(self.clone())
            .list_all_with_directories(options)
            .await?)
    }

    /// Reads `key` as a stream and collects it; the timeline shows the whole read.
    pub(crate) async fn get_stream(&self, key: &str) -> Result<Option<(BlobInfo, Vec<u8>)>> {
        let read = async {
            let Some((info, mut stream)) = self.store.get_stream(key).await? else {
                return Ok(None);
            };
            let mut value = Vec::new();
            while let Some(chunk) = stream.next().await {
                value.extend_from_slice(&chunk?);
            }
            Ok(Some((info, value)))
        };
        let r = limited(self.op_timeout, read).await;
        if let Ok(v) = &r {
            self.found(key, v.is_some());
        }
        let shown = match &r {
            Ok(Some((info, value))) => format!("{} {}", show_value(value), show_etag(&info.etag)),
            Ok(None) => "not found".to_owned(),
            Err(e) => show_err(e),
        };
        self.note(format!("get-stream {key:?} → {shown}"));
        r
    }

    /// Writes `chunks` under `key` as a stream of that many chunks, bounded by `max_size`.
    pub(crate) async fn set_stream(
        &self,
        key: &str,
        chunks: Vec<Bytes>,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let total: usize = chunks.iter().map(Bytes::len).sum();
        let what = format!(
            "set-stream {key:?}{} = <{total} bytes in {} chunks>{}",
            show_condition(&options.condition),
            chunks.len(),
            max_size.map(|m| format!(" max {m}")).unwrap_or_default()
        );
        let body: ByteStream = Box::pin(futures_util::stream::iter(chunks.into_iter().map(Ok)));
        let r = limited(
            self.op_timeout,
            self.store.set_stream(key, body, max_size, options),
        )
        .await;
        self.written(key, &r);
        let shown = match &r {
            Ok(SetOutcome::Written { etag }) => format!("written {}", show_etag(etag)),
            Ok(SetOutcome::ConditionFailed) => "condition failed".to_owned(),
            Err(e) => show_err(e),
        };
        self.note(format!("{what} → {shown}"));
        r
    }
}

/// An instance seen as a `BlobStore` whose listings are recorded page by page, so that the
/// store's own [`BlobStoreExt`] walk can serve the cases.
struct Recorded(Instance);

impl fmt::Debug for Recorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[async_trait]
impl BlobStore for Recorded {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        self.0.get(key).await
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        self.0.get_metadata(key).await
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        self.0.set_with(key, value, options).await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.0.delete(key).await
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        self.0.list(options).await
    }
}
