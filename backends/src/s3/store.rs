//! `impl BlobStore for S3Store`: the framing of bodies, conditional writes with their
//! read-back, listings and streams.

use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use blobjobs_store_api::list::{Flow, Paginator};
use blobjobs_store_api::stream::{Head, check_size, read_head};
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, ByteStream, Condition, Error, ErrorKind, Etag, ListEntry,
    ListOptions, ListPage, Metadata, Result, SetOptions, SetOutcome, Timestamp, validate_key,
    validate_metadata,
};
use bytes::Bytes;
use futures_core::Stream;
use futures_util::StreamExt as _;
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, GetOptions, GetRange, GetResult, ObjectMeta,
    ObjectStore, ObjectStoreExt as _, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    UpdateVersion, WriteMultipart,
};

use super::error::{error, may_have_applied};
use super::{MAX_OBJECT_KEY_BYTES, S3Store, names};

/// The first bytes of every body this backend writes.
const MAGIC: &[u8; 4] = b"bjb1";
/// The header: [`MAGIC`] and a 16-byte random version nonce.
const HEADER: usize = 20;
/// The user-metadata entry that holds the store's metadata.
const METADATA: &str = "blobjobs-metadata";
/// Parts of a streamed upload in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

/// A fresh header with a random nonce.
fn header() -> Result<Bytes> {
    let mut h = [0u8; HEADER];
    h[..4].copy_from_slice(MAGIC);
    getrandom::fill(&mut h[4..])
        .map_err(|e| Error::new(ErrorKind::Io, format!("no randomness for a version: {e}")))?;
    Ok(Bytes::copy_from_slice(&h))
}

fn attributes(metadata: &Metadata) -> Attributes {
    let mut attrs = Attributes::new();
    attrs.insert(
        Attribute::ContentType,
        AttributeValue::from("application/octet-stream"),
    );
    if !metadata.is_empty() {
        attrs.insert(
            Attribute::Metadata(METADATA.into()),
            AttributeValue::from(metadata.to_header()),
        );
    }
    attrs
}

fn metadata_of(attrs: &Attributes) -> Result<Metadata> {
    match attrs.get(&Attribute::Metadata(METADATA.into())) {
        Some(value) => Metadata::from_header(value.as_ref())
            .map_err(|e| Error::new(ErrorKind::Corrupt, format!("stored metadata: {e}"))),
        None => Ok(Metadata::new()),
    }
}

fn etag_of(meta: &ObjectMeta) -> Result<Etag> {
    meta.e_tag
        .as_deref()
        .map(Etag::new)
        .ok_or_else(|| Error::new(ErrorKind::Protocol, "the engine sent no etag"))
}

fn millis(meta: &ObjectMeta) -> Timestamp {
    Timestamp::from_millis(u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0))
}

fn info(meta: &ObjectMeta, attrs: &Attributes) -> Result<BlobInfo> {
    Ok(BlobInfo {
        etag: etag_of(meta)?,
        metadata: metadata_of(attrs)?,
        size: meta.size.saturating_sub(HEADER as u64),
        last_modified: millis(meta),
    })
}

fn corrupt(key: &str) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        format!("the object of key {key:?} was not written by this backend"),
    )
}

impl S3Store {
    fn path(&self, key: &str) -> Result<Path> {
        validate_key(key)?;
        let raw = format!("{}/{}", self.inner.dir, names::object_name(key));
        if raw.len() > MAX_OBJECT_KEY_BYTES {
            return Err(Error::invalid(format!(
                "the key encodes to an s3 object key of {} bytes, the maximum is {MAX_OBJECT_KEY_BYTES}",
                raw.len()
            )));
        }
        Path::parse(raw).map_err(|_| Error::invalid("the key cannot be an s3 object key"))
    }

    pub(super) fn err(&self, op: &str, e: object_store::Error) -> Error {
        error(op, &self.inner.place, e)
    }

    async fn fetch(&self, key: &str, options: GetOptions) -> Result<Option<GetResult>> {
        let path = self.path(key)?;
        match self.inner.retrying.get_opts(&path, options).await {
            Ok(r) => Ok(Some(r)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("get", e)),
        }
    }

    /// The nonce and ETag of the version stored under `path`, read with a ranged `GET`.
    async fn current_version(&self, path: &Path) -> Result<Option<(Bytes, Etag)>> {
        let options = GetOptions {
            range: Some(GetRange::Bounded(0..HEADER as u64)),
            ..GetOptions::default()
        };
        match self.inner.retrying.get_opts(path, options).await {
            Ok(r) => {
                let etag = etag_of(&r.meta)?;
                let head = r.bytes().await.map_err(|e| self.err("get", e))?;
                Ok(Some((head, etag)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err("get", e)),
        }
    }

    /// Writes `payload` (header included) under `path` with `condition`.
    async fn put(
        &self,
        path: &Path,
        header: &Bytes,
        payload: PutPayload,
        metadata: &Metadata,
        condition: &Condition,
    ) -> Result<SetOutcome> {
        let mode = match condition {
            Condition::Always => PutMode::Overwrite,
            Condition::IfNew => PutMode::Create,
            Condition::IfMatch(etag) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.as_str().to_owned()),
                version: None,
            }),
        };
        let conditional = !matches!(mode, PutMode::Overwrite);
        let options = PutOptions {
            mode,
            attributes: attributes(metadata),
            ..PutOptions::default()
        };
        // Unconditional writes may be resent freely: a resent body is the same version.
        let client = if conditional {
            &self.inner.once
        } else {
            &self.inner.retrying
        };
        match client.put_opts(path, payload, options).await {
            Ok(result) => match result.e_tag {
                Some(etag) => Ok(SetOutcome::Written {
                    etag: Etag::new(etag),
                }),
                // An engine that answers a PUT without an ETag: read the version back.
                None => self.resolve(path, header, None).await,
            },
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(SetOutcome::ConditionFailed),
            Err(e) if conditional && may_have_applied(&e) => {
                let err = self.err("set", e);
                self.resolve(path, header, Some(err)).await
            }
            Err(e) => Err(self.err("set", e)),
        }
    }

    /// Whether the write whose header is `header` is the version now stored under `path`:
    /// then it was applied, whatever the failed request said; otherwise `failure` stands.
    async fn resolve(
        &self,
        path: &Path,
        header: &Bytes,
        failure: Option<Error>,
    ) -> Result<SetOutcome> {
        let unknown = |e: Error| {
            Error::new(
                ErrorKind::Timeout,
                format!("the outcome of a conditional write is unknown: {e}"),
            )
        };
        match self.current_version(path).await {
            Ok(Some((head, etag))) if head == *header => Ok(SetOutcome::Written { etag }),
            Ok(_) => Err(failure.unwrap_or_else(|| {
                Error::new(
                    ErrorKind::Protocol,
                    "the engine lost a write it acknowledged",
                )
            })),
            Err(e) => Err(unknown(e)),
        }
    }

    /// An unconditional streamed write of a value longer than one part: a multipart upload
    /// of `head` (the header and the chunks read so far), then `rest`.
    async fn put_multipart(
        &self,
        path: &Path,
        head: Vec<Bytes>,
        mut rest: ByteStream,
        mut size: u64,
        max_size: Option<u64>,
        metadata: &Metadata,
    ) -> Result<SetOutcome> {
        let options = PutMultipartOptions {
            attributes: attributes(metadata),
            ..PutMultipartOptions::default()
        };
        let upload = self
            .inner
            .retrying
            .put_multipart_opts(path, options)
            .await
            .map_err(|e| self.err("set", e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.inner.part_size);
        for chunk in head {
            writer.put(chunk);
        }
        let streamed: Result<()> = async {
            while let Some(chunk) = rest.next().await {
                let chunk = chunk?;
                size += chunk.len() as u64;
                check_size(size, max_size)?;
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.err("set", e))?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            // Nothing becomes visible: the parts go with the aborted upload.
            let _ = writer.abort().await;
            return Err(e);
        }
        let result = writer.finish().await.map_err(|e| self.err("set", e))?;
        match result.e_tag {
            Some(etag) => Ok(SetOutcome::Written {
                etag: Etag::new(etag),
            }),
            None => Err(Error::new(ErrorKind::Protocol, "the engine sent no etag")),
        }
    }
}

#[async_trait]
impl BlobStore for S3Store {
    async fn get(&self, key: &str) -> Result<Option<Blob>> {
        let Some(result) = self.fetch(key, GetOptions::default()).await? else {
            return Ok(None);
        };
        let info = info(&result.meta, &result.attributes)?;
        let body = result.bytes().await.map_err(|e| self.err("get", e))?;
        if body.len() < HEADER || &body[..4] != MAGIC {
            return Err(corrupt(key));
        }
        Ok(Some(Blob {
            value: body.slice(HEADER..),
            info,
        }))
    }

    async fn get_metadata(&self, key: &str) -> Result<Option<BlobInfo>> {
        let options = GetOptions {
            head: true,
            ..GetOptions::default()
        };
        let Some(result) = self.fetch(key, options).await? else {
            return Ok(None);
        };
        Ok(Some(info(&result.meta, &result.attributes)?))
    }

    async fn set(&self, key: &str, value: Bytes, options: SetOptions) -> Result<SetOutcome> {
        let path = self.path(key)?;
        validate_metadata(&options.metadata)?;
        let header = header()?;
        let payload = PutPayload::from_iter([header.clone(), value]);
        self.put(
            &path,
            &header,
            payload,
            &options.metadata,
            &options.condition,
        )
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.inner.retrying.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err("delete", e)),
        }
    }

    async fn list(&self, options: ListOptions) -> Result<ListPage> {
        let mut pager = Paginator::new(&options)?;
        let dir = Path::parse(&self.inner.dir)
            .map_err(|_| Error::invalid("the store's directory is not a valid object path"))?;
        // Every key at or after the start key has an object name after its encoding (the
        // names module's order argument), so the walk starts right there.
        let offset = Path::parse(format!(
            "{}/{}",
            self.inner.dir,
            names::encode(pager.start_key())
        ));
        let mut objects = match &offset {
            Ok(offset) if !pager.start_key().is_empty() => {
                self.inner.retrying.list_with_offset(Some(&dir), offset)
            }
            _ => self.inner.retrying.list(Some(&dir)),
        };
        let skip = self.inner.dir.len() + 1;
        while let Some(meta) = objects.next().await {
            let meta = meta.map_err(|e| self.err("list", e))?;
            let name = meta.location.as_ref().get(skip..).unwrap_or("");
            // Objects that this backend did not write (another tool's files under the
            // store's directory) are not keys of the store.
            let Some(key) = names::key_of(name) else {
                continue;
            };
            if meta.size < HEADER as u64 {
                continue;
            }
            let entry = ListEntry {
                key,
                etag: etag_of(&meta)?,
                size: meta.size - HEADER as u64,
                last_modified: millis(&meta),
            };
            if pager.push(entry) == Flow::Stop {
                break;
            }
        }
        Ok(pager.finish())
    }

    async fn get_stream(&self, key: &str) -> Result<Option<(BlobInfo, ByteStream)>> {
        let Some(result) = self.fetch(key, GetOptions::default()).await? else {
            return Ok(None);
        };
        let info = info(&result.meta, &result.attributes)?;
        let place = self.inner.place.clone();
        let body = result
            .into_stream()
            .map(move |chunk| chunk.map_err(|e| error("get", &place, e)));
        let stream: ByteStream = Box::pin(SkipHeader {
            inner: Box::pin(body),
            header: Vec::with_capacity(HEADER),
            key: key.to_owned(),
        });
        Ok(Some((info, stream)))
    }

    async fn set_stream(
        &self,
        key: &str,
        body: ByteStream,
        max_size: Option<u64>,
        options: SetOptions,
    ) -> Result<SetOutcome> {
        let path = self.path(key)?;
        validate_metadata(&options.metadata)?;
        let header = header()?;
        match read_head(body, self.inner.part_size, max_size).await? {
            Head::Complete(value) => {
                let payload = PutPayload::from_iter([header.clone(), value]);
                self.put(
                    &path,
                    &header,
                    payload,
                    &options.metadata,
                    &options.condition,
                )
                .await
            }
            Head::Partial { chunks, size, rest } if options.condition == Condition::Always => {
                let head = std::iter::once(header).chain(chunks).collect();
                self.put_multipart(&path, head, rest, size, max_size, &options.metadata)
                    .await
            }
            Head::Partial {
                mut chunks,
                mut size,
                mut rest,
            } => {
                // Conditions go with single PUTs only: collect the value within the bound.
                let limit = max_size.map_or(self.inner.max_conditional_stream, |m| {
                    m.min(self.inner.max_conditional_stream)
                });
                check_size(size, Some(limit))?;
                while let Some(chunk) = rest.next().await {
                    let chunk = chunk?;
                    size += chunk.len() as u64;
                    check_size(size, Some(limit))?;
                    chunks.push(chunk);
                }
                let payload = PutPayload::from_iter(std::iter::once(header.clone()).chain(chunks));
                self.put(
                    &path,
                    &header,
                    payload,
                    &options.metadata,
                    &options.condition,
                )
                .await
            }
        }
    }
}

/// A body without its first [`HEADER`] bytes, which it checks.
struct SkipHeader {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
    /// The header bytes seen so far; once it holds [`HEADER`] bytes, chunks pass through.
    header: Vec<u8>,
    key: String,
}

impl Stream for SkipHeader {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            let chunk = match self.inner.as_mut().poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => chunk,
                Poll::Ready(None) if self.header.len() < HEADER => {
                    self.header = vec![0; HEADER];
                    return Poll::Ready(Some(Err(corrupt(&self.key))));
                }
                other => return other,
            };
            if self.header.len() == HEADER {
                return Poll::Ready(Some(Ok(chunk)));
            }
            let need = HEADER - self.header.len();
            let take = need.min(chunk.len());
            self.header.extend_from_slice(&chunk[..take]);
            if self.header.len() == HEADER && &self.header[..4] != MAGIC {
                return Poll::Ready(Some(Err(corrupt(&self.key))));
            }
            if take < chunk.len() {
                return Poll::Ready(Some(Ok(chunk.slice(take..))));
            }
        }
    }
}
