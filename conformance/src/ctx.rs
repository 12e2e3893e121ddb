//! What a case works with: instances under the run's random prefix, a shared manual clock,
//! and a timeline of every operation that a failure report shows.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use blobjobs_store_api::{
    Blob, BlobInfo, BlobStore, BlobStoreExt as _, ByteStream, Condition, Error, ErrorKind, Etag,
    Job, JobFilter, JobId, JobPage, JobStore, ListOptions, ListPage, ManualClock, NewJob, Result,
    SetOptions, SetOutcome, Timestamp,
};
use bytes::Bytes;
use futures_util::StreamExt as _;
use serde_json::Value;

use crate::causes;
use crate::factory::{JobEnv, SharedFactory, SharedJobFactory};
use crate::options::{Capabilities, Options};
use crate::probe::{Probe, Scoped};
use crate::settle::Ledger;

/// The time every case's manual clock starts at (2026-01-01T00:00:00Z).
pub(crate) const CLOCK_START_MS: u64 = 1_767_225_600_000;

/// Why a case failed.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) message: String,
    /// A timeline of its own (model-based cases build one); otherwise the case's log is used.
    pub(crate) timeline: Option<Vec<String>>,
    pub(crate) replay: Option<String>,
    /// The likely cause, one of [`crate::causes`], when the failure itself knows it; else the
    /// runner names it from the case's symptoms or its first promise.
    pub(crate) cause: Option<&'static str>,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure {
            message: message.into(),
            timeline: None,
            replay: None,
            cause: None,
        }
    }

    /// Names the likely cause (one of [`crate::causes`]).
    pub(crate) fn because(mut self, cause: &'static str) -> Self {
        self.cause = Some(cause);
        self
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let f = Failure::new(format!("unexpected error {}: {}", e.kind(), e.message()));
        match e.kind() {
            ErrorKind::Timeout | ErrorKind::Unavailable => f.because(causes::UNAVAILABLE),
            ErrorKind::Unauthorized => f.because(causes::UNAUTHORIZED),
            _ => f,
        }
    }
}

/// The operations of one case, in the order they returned.
#[derive(Debug, Default)]
pub(crate) struct Timeline(Mutex<Vec<String>>);

/// Lines kept per case; a longer timeline keeps its end, where the failure is.
const TIMELINE_KEEP: usize = 60;

impl Timeline {
    pub(crate) fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(line);
        }
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        let lines = self.0.lock().map(|l| l.clone()).unwrap_or_default();
        if lines.len() > TIMELINE_KEEP {
            let mut tail = vec![format!(
                "… {} earlier operations",
                lines.len() - TIMELINE_KEEP
            )];
            tail.extend_from_slice(&lines[lines.len() - TIMELINE_KEEP..]);
            tail
        } else {
            lines
        }
    }
}

/// Which instance of a case last wrote each key or created each job, so that a read by
/// another instance that finds nothing can be named for what it is: the seed's bug.
#[derive(Debug, Default)]
pub(crate) struct Owners(Mutex<std::collections::HashMap<String, Option<usize>>>);

impl Owners {
    /// `instance` wrote `key` (or created the job `key`).
    fn wrote(&self, key: &str, instance: usize) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_owned(), Some(instance));
        }
    }

    /// `key` was deleted (by any instance): finding nothing is right from now on.
    pub(crate) fn deleted(&self, key: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(key.to_owned(), None);
        }
    }

    /// The instance other than `reader` that wrote `key` last, if the key should exist.
    fn other_writer(&self, key: &str, reader: usize) -> Option<usize> {
        let m = self.0.lock().ok()?;
        m.get(key).copied().flatten().filter(|w| *w != reader)
    }
}

/// A short rendering of a value for timelines.
pub(crate) fn show_value(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(s) if s.chars().count() <= 24 => format!("{s:?}"),
        _ => format!("<{} bytes>", value.len()),
    }
}

/// A short rendering of an ETag for timelines.
pub(crate) fn show_etag(etag: &Etag) -> String {
    let s = etag.as_str();
    if s.chars().count() > 14 {
        let head: String = s.chars().take(12).collect();
        format!("{head}…")
    } else {
        s.to_owned()
    }
}

pub(crate) fn show_condition(c: &Condition) -> String {
    match c {
        Condition::Always => String::new(),
        Condition::IfNew => " if-new".to_owned(),
        Condition::IfMatch(e) => format!(" if-match {}", show_etag(e)),
    }
}

pub(crate) fn show_err(e: &Error) -> String {
    format!("error {}", e.kind())
}

pub(crate) fn show_job(job: &Job) -> String {
    let mut s = format!("{} {}", job.id, job.status);
    if let Some(lease) = &job.lease {
        s.push_str(&format!(" by {}", lease.owner));
    }
    s.push_str(&format!(", attempts {}", job.attempts));
    s
}

/// One instance as a case uses it: every call is recorded in the case's timeline.
#[derive(Clone)]
pub(crate) struct Instance {
    pub(crate) id: usize,
    /// The instance under the case's prefix, without recording (for the job layer).
    pub(crate) store: Arc<dyn BlobStore>,
    /// The instance without the prefix (only for checks that must not be prefixed).
    pub(crate) raw: Arc<dyn BlobStore>,
    log: Arc<Timeline>,
    op_timeout: Duration,
    pub(crate) owners: Arc<Owners>,
    probe: Arc<Probe>,
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instance {}", self.id)
    }
}

/// Runs `fut` with a time limit; an expired limit is a `Timeout` error.
pub(crate) async fn limited<T>(limit: Duration, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(limit, fut).await {
        Ok(r) => r,
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("operation took longer than {} ms", limit.as_millis()),
        )),
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

/// The job layer over one instance, recorded in the timeline at the job level.
#[derive(Clone)]
pub(crate) struct JobHandle {
    pub(crate) id: usize,
    pub(crate) jobs: Arc<dyn JobStore>,
    log: Arc<Timeline>,
    op_timeout: Duration,
    owners: Arc<Owners>,
    probe: Arc<Probe>,
}

fn show_job_result(r: &Result<Job>) -> String {
    match r {
        Ok(job) => show_job(job),
        Err(e) => show_err(e),
    }
}

impl JobHandle {
    fn note(&self, what: String) {
        self.log.push(format!("instance {}: {what}", self.id));
    }

    fn job_key(id: &JobId) -> String {
        format!("job {id}")
    }

    /// Names a job another instance created and this one does not find: the seed's bug,
    /// told as its log told it ("instance 2 claimed job j1 created by instance 0: not
    /// found").
    fn lost(&self, id: &JobId, verb: &str, r: Result<Job>) -> Result<Job> {
        match r {
            Err(e) if e.kind() == ErrorKind::NotFound => {
                match self.owners.other_writer(&Self::job_key(id), self.id) {
                    Some(creator) => {
                        self.probe.symptom(causes::NOT_VISIBLE_ACROSS_INSTANCES);
                        Err(Error::new(
                            ErrorKind::NotFound,
                            format!(
                                "instance {} {verb} job {id} created by instance {creator}: not found",
                                self.id
                            ),
                        ))
                    }
                    None => Err(e),
                }
            }
            other => other,
        }
    }

    pub(crate) async fn create(&self, new: NewJob) -> Result<Job> {
        let what = match &new.id {
            Some(id) => format!("create job {id} ({})", new.kind),
            None => format!("create job ({})", new.kind),
        };
        let r = limited(self.op_timeout, self.jobs.create(new)).await;
        if let Ok(job) = &r
            && self
                .owners
                .other_writer(&Self::job_key(&job.id), usize::MAX)
                .is_none()
        {
            self.owners.wrote(&Self::job_key(&job.id), self.id);
        }
        self.note(format!("{what} → {}", show_job_result(&r)));
        r
    }

    pub(crate) async fn get(&self, id: &JobId) -> Result<Option<Job>> {
        let r = limited(self.op_timeout, self.jobs.get(id)).await;
        if let Ok(None) = &r
            && self
                .owners
                .other_writer(&Self::job_key(id), self.id)
                .is_some()
        {
            self.probe.symptom(causes::NOT_VISIBLE_ACROSS_INSTANCES);
        }
        let shown = match &r {
            Ok(Some(job)) => show_job(job),
            Ok(None) => "not found".to_owned(),
            Err(e) => show_err(e),
        };
        self.note(format!("get job {id} → {shown}"));
        r
    }

    pub(crate) async fn claim(&self, id: &JobId, owner: &str, lease: Duration) -> Result<Job> {
        let r = limited(self.op_timeout, self.jobs.claim(id, owner, lease)).await;
        let r = self.lost(id, "claimed", r);
        self.note(format!(
            "claim job {id} as {owner} for {} ms → {}",
            lease.as_millis(),
            show_job_result(&r)
        ));
        r
    }

    pub(crate) async fn progress(&self, id: &JobId, owner: &str, percent: u8) -> Result<Job> {
        let r = limited(
            self.op_timeout,
            self.jobs.progress(id, owner, percent, None),
        )
        .await;
        let r = self.lost(id, "reported progress on", r);
        self.note(format!(
            "progress job {id} as {owner} {percent}% → {}",
            show_job_result(&r)
        ));
        r
    }

    pub(crate) async fn succeed(&self, id: &JobId, owner: &str, result: Value) -> Result<Job> {
        let r = limited(self.op_timeout, self.jobs.succeed(id, owner, result)).await;
        let r = self.lost(id, "finished", r);
        self.note(format!(
            "succeed job {id} as {owner} → {}",
            show_job_result(&r)
        ));
        r
    }

    pub(crate) async fn fail(&self, id: &JobId, owner: &str, error: &str) -> Result<Job> {
        let r = limited(self.op_timeout, self.jobs.fail(id, owner, error.to_owned())).await;
        let r = self.lost(id, "failed", r);
        self.note(format!(
            "fail job {id} as {owner} → {}",
            show_job_result(&r)
        ));
        r
    }

    pub(crate) async fn cancel(&self, id: &JobId) -> Result<Job> {
        let r = limited(self.op_timeout, self.jobs.cancel(id)).await;
        let r = self.lost(id, "cancelled", r);
        self.note(format!("cancel job {id} → {}", show_job_result(&r)));
        r
    }

    pub(crate) async fn delete(&self, id: &JobId) -> Result<bool> {
        let r = limited(self.op_timeout, self.jobs.delete(id)).await;
        match &r {
            Ok(false)
                if self
                    .owners
                    .other_writer(&Self::job_key(id), self.id)
                    .is_some() =>
            {
                self.probe.symptom(causes::NOT_VISIBLE_ACROSS_INSTANCES);
            }
            Ok(_) => self.owners.deleted(&Self::job_key(id)),
            Err(_) => {}
        }
        let shown = match &r {
            Ok(existed) => format!("ok (existed: {existed})"),
            Err(e) => show_err(e),
        };
        self.note(format!("delete job {id} → {shown}"));
        r
    }

    pub(crate) async fn list(&self, filter: JobFilter) -> Result<JobPage> {
        let r = limited(self.op_timeout, self.jobs.list(filter)).await;
        let shown = match &r {
            Ok(page) => format!(
                "[{}]",
                page.jobs
                    .iter()
                    .map(show_job)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Err(e) => show_err(e),
        };
        self.note(format!("list jobs → {shown}"));
        r
    }

    /// [`JobStore::update`] with `change`, shown in the timeline as `what`.
    pub(crate) async fn update(
        &self,
        id: &JobId,
        what: &str,
        change: blobjobs_store_api::jobs::UpdateFn<'_>,
    ) -> Result<Job> {
        let r = limited(self.op_timeout, self.jobs.update(id, change)).await;
        let r = self.lost(id, "updated", r);
        self.note(format!(
            "update job {id} ({what}) → {}",
            show_job_result(&r)
        ));
        r
    }

    /// A listing with `filter`, page by page, shown in the timeline page by page.
    pub(crate) async fn list_page(&self, filter: JobFilter) -> Result<JobPage> {
        let what = format!(
            "list jobs{}{}{}",
            filter
                .page_size
                .map(|n| format!(" page-size {n}"))
                .unwrap_or_default(),
            filter.status.map(|s| format!(" {s}")).unwrap_or_default(),
            if filter.cursor.is_some() {
                " (next page)"
            } else {
                ""
            }
        );
        let r = limited(self.op_timeout, self.jobs.list(filter)).await;
        let shown = match &r {
            Ok(page) => format!(
                "[{}]{}",
                page.jobs
                    .iter()
                    .map(|j| j.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                if page.next_cursor.is_some() {
                    " more"
                } else {
                    ""
                }
            ),
            Err(e) => show_err(e),
        };
        self.note(format!("{what} → {shown}"));
        r
    }

    pub(crate) async fn purge_expired(&self) -> Result<usize> {
        let r = limited(self.op_timeout, self.jobs.purge_expired()).await;
        let shown = match &r {
            Ok(n) => format!("{n} purged"),
            Err(e) => show_err(e),
        };
        self.note(format!("purge expired jobs → {shown}"));
        r
    }
}

struct CtxInner {
    blobs: Option<SharedFactory>,
    jobs: SharedJobFactory,
    prefix: String,
    caps: Capabilities,
    options: Options,
    seed: u64,
    clock: ManualClock,
    log: Arc<Timeline>,
    instances: AtomicUsize,
    fresh: AtomicUsize,
    probe: Arc<Probe>,
    ledger: Ledger,
    owners: Arc<Owners>,
}

/// What a run grades: a blob-store factory (and the job layer over it), or a job store alone.
#[derive(Clone)]
pub(crate) struct Target {
    /// Instances of the blob store; `None` when the run grades a job store alone.
    pub(crate) blobs: Option<SharedFactory>,
    /// Instances of the job store.
    pub(crate) jobs: SharedJobFactory,
}

/// Everything one case needs. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Ctx(Arc<CtxInner>);

impl Ctx {
    pub(crate) fn new(
        target: Target,
        prefix: String,
        caps: Capabilities,
        options: Options,
        seed: u64,
    ) -> Self {
        let probe = Arc::new(Probe::new(seed, options.perturb));
        Ctx(Arc::new(CtxInner {
            blobs: target.blobs,
            jobs: target.jobs,
            prefix,
            caps,
            options,
            seed,
            clock: ManualClock::new(Timestamp::from_millis(CLOCK_START_MS)),
            log: Arc::new(Timeline::default()),
            instances: AtomicUsize::new(0),
            fresh: AtomicUsize::new(0),
            probe,
            ledger: Ledger::default(),
            owners: Arc::new(Owners::default()),
        }))
    }

    pub(crate) fn caps(&self) -> &Capabilities {
        &self.0.caps
    }

    pub(crate) fn options(&self) -> &Options {
        &self.0.options
    }

    /// The seed of this case (derived from the run's seed and the case's name).
    pub(crate) fn seed(&self) -> u64 {
        self.0.seed
    }

    /// The blob-store factory; `None` when the run grades a job store alone.
    pub(crate) fn blob_factory(&self) -> Option<&SharedFactory> {
        self.0.blobs.as_ref()
    }

    /// The job-store factory.
    pub(crate) fn job_factory(&self) -> &SharedJobFactory {
        &self.0.jobs
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.0.prefix
    }

    pub(crate) fn probe(&self) -> &Arc<Probe> {
        &self.0.probe
    }

    /// What the case expects to read once the store has settled (see [`crate::settle`]).
    pub(crate) fn ledger(&self) -> &Ledger {
        &self.0.ledger
    }

    pub(crate) fn timeline(&self) -> Vec<String> {
        self.0.log.lines()
    }

    /// The longest key a case may use below its prefix.
    pub(crate) fn max_key_bytes(&self) -> usize {
        self.0
            .caps
            .max_key_bytes
            .saturating_sub(self.0.prefix.len())
    }

    /// A prefix below the case's own that no other part of the case uses.
    pub(crate) fn fresh_prefix(&self) -> String {
        let n = self.0.fresh.fetch_add(1, Ordering::SeqCst);
        format!("{}f{n}/", self.0.prefix)
    }

    pub(crate) fn note(&self, line: impl Into<String>) {
        self.0.log.push(line.into());
    }

    fn next_id(&self) -> usize {
        self.0.instances.fetch_add(1, Ordering::SeqCst)
    }

    /// Opens a new blob-store instance through the factory.
    pub(crate) async fn instance(&self) -> Result<Instance, Failure> {
        self.instance_under(self.0.prefix.clone()).await
    }

    /// Opens a new blob-store instance that sees the keys under `prefix` (a prefix of the
    /// case's own, such as one from [`Ctx::fresh_prefix`]).
    pub(crate) async fn instance_under(&self, prefix: String) -> Result<Instance, Failure> {
        let id = self.next_id();
        let Some(factory) = &self.0.blobs else {
            return Err(Failure::new(
                "the run grades a job store, which has no blob-store instances",
            ));
        };
        let raw = limited(self.0.options.op_timeout, factory.instance())
            .await
            .map_err(|e| {
                Failure::new(format!(
                    "the factory could not open instance {id} (error {}): {}",
                    e.kind(),
                    e.message()
                ))
                .because(causes::NO_INSTANCE)
            })?;
        let store: Arc<dyn BlobStore> =
            Arc::new(Scoped::new(raw.clone(), prefix, self.0.probe.clone()));
        Ok(Instance {
            id,
            store,
            raw,
            log: self.0.log.clone(),
            op_timeout: self.0.options.op_timeout,
            owners: self.0.owners.clone(),
            probe: self.0.probe.clone(),
        })
    }

    /// Opens a new blob-store instance seen through `prefix`, without recording its calls in
    /// the case's timeline (the model-based cases keep timelines of their own).
    pub(crate) async fn scoped_blobs(&self, prefix: String) -> Result<Arc<dyn BlobStore>, Failure> {
        Ok(self.instance_under(prefix).await?.store)
    }

    /// Opens `n` new instances.
    pub(crate) async fn instances(&self, n: usize) -> Result<Vec<Instance>, Failure> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.instance().await?);
        }
        Ok(out)
    }

    /// The environment of the case's job-store instances: its prefix as the namespace and
    /// its shared manual clock.
    pub(crate) fn job_env(&self) -> JobEnv {
        JobEnv::for_case(
            self.0.prefix.clone(),
            self.0.clock.clone(),
            self.0.probe.clone(),
        )
    }

    /// The environment of job-store instances on the namespace `prefix` (one of the case's
    /// own, such as one from [`Ctx::fresh_prefix`]), on the case's clock.
    pub(crate) fn job_env_for(&self, prefix: String) -> JobEnv {
        JobEnv::for_case(prefix, self.0.clock.clone(), self.0.probe.clone())
    }

    /// Opens a new job-store instance through the job factory, on the case's clock.
    pub(crate) async fn job_instance(&self) -> Result<JobHandle, Failure> {
        let id = self.next_id();
        let jobs = open_jobs(&self.0.jobs, &self.job_env(), self.0.options.op_timeout)
            .await
            .map_err(|e| {
                Failure::new(format!(
                    "the factory could not open job-store instance {id} (error {}): {}",
                    e.kind(),
                    e.message()
                ))
                .because(causes::NO_INSTANCE)
            })?;
        Ok(JobHandle {
            id,
            jobs,
            log: self.0.log.clone(),
            op_timeout: self.0.options.op_timeout,
            owners: self.0.owners.clone(),
            probe: self.0.probe.clone(),
        })
    }

    /// The project's job layer over the blob instance `instance`, on the case's clock (for
    /// the cases that grade both layers of one store at once, such as the crash case).
    pub(crate) fn blob_jobs(&self, instance: &Instance) -> JobHandle {
        let config = blobjobs_store_api::JobStoreConfig {
            clock: Arc::new(self.0.clock.clone()),
            ..blobjobs_store_api::JobStoreConfig::default()
        };
        JobHandle {
            id: instance.id,
            jobs: Arc::new(blobjobs_store_api::BlobJobStore::with_config(
                instance.store.clone(),
                config,
            )),
            log: self.0.log.clone(),
            op_timeout: self.0.options.op_timeout,
            owners: self.0.owners.clone(),
            probe: self.0.probe.clone(),
        }
    }

    /// Opens `n` new job-store instances.
    pub(crate) async fn job_instances(&self, n: usize) -> Result<Vec<JobHandle>, Failure> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.job_instance().await?);
        }
        Ok(out)
    }

    /// The case's shared manual clock.
    pub(crate) fn clock(&self) -> &ManualClock {
        &self.0.clock
    }

    /// The time on the case's shared clock.
    pub(crate) fn now(&self) -> Timestamp {
        use blobjobs_store_api::Clock as _;
        self.0.clock.now()
    }

    /// Moves the shared clock forward.
    pub(crate) fn advance(&self, by: Duration) {
        self.0.clock.advance(by);
        self.note(format!("clock: advance {} ms", by.as_millis()));
    }
}

/// Opens one job-store instance from `factory` within `limit`.
pub(crate) async fn open_jobs(
    factory: &SharedJobFactory,
    env: &JobEnv,
    limit: Duration,
) -> Result<Arc<dyn JobStore>> {
    limited(limit, factory.instance(env)).await
}
