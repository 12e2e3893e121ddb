//! Quiescence: what a case expects to read once the store has settled, and the check that
//! reads it.
//!
//! Concurrent cases and generated sequences write down, as they end, the state every key and
//! job must be in (a [`Group`] per sequence or per race). Once the case has passed, the
//! runner waits until none of its calls is in flight, lets [`crate::Options::settle()`] pass,
//! and reads everything again through a fresh instance (through the case's own instance for
//! single-instance cases, so that a store whose instances share nothing can still pass
//! them): no deleted key or job may be back, no acknowledged write may be lost, and listings
//! must agree with the reads.
//!
//! The settle interval is paid once per case, not once per sequence: all of a case's groups
//! are checked together after one wait, eight at a time, and the runner overlaps the check
//! with the cases that follow (see [`crate::runner`]).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use blobjobs_store_api::{
    BlobStore, BlobStoreExt as _, Etag, Job, JobFilter, JobId, JobStore, ListOptions, Timestamp,
};
use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::causes;
use crate::ctx::{Ctx, Failure, limited, open_jobs, show_job};
use crate::probe::Scoped;
use crate::show::Show;

/// Who re-reads a group once the store has settled.
#[derive(Clone)]
pub(crate) enum Reader {
    /// A fresh instance (cross-instance cases).
    Fresh,
    /// The blob-store instance the case used (single-instance cases), seeing the group's
    /// prefix.
    Blobs(Arc<dyn BlobStore>),
    /// The job-store instance the case used (single-instance cases).
    Jobs(Arc<dyn JobStore>),
}

/// The state one sequence or race left behind.
pub(crate) struct Group {
    /// Names the group in a failure, such as `sequence 17` (may be empty).
    pub(crate) label: String,
    /// The key prefix (and job namespace) of the group, in full.
    pub(crate) prefix: String,
    pub(crate) reader: Reader,
    /// Each key below `prefix` and its value and ETag, or `None` if it must not exist.
    pub(crate) blobs: Vec<(String, Option<(Bytes, Etag)>)>,
    /// Whether the keys present in `blobs` are every key below `prefix`.
    pub(crate) blobs_complete: bool,
    /// Each job and its state, or `None` if it must not exist.
    pub(crate) jobs: Vec<(JobId, Option<Job>)>,
    /// Whether the jobs present in `jobs` are every job of the namespace.
    pub(crate) jobs_complete: bool,
    /// The time on the group's clock when it ended (for TTLs and leases).
    pub(crate) now: Timestamp,
    /// How the group got there, for a failure.
    pub(crate) timeline: Vec<String>,
}

impl Group {
    /// An empty group under `prefix`, re-read by `reader`.
    pub(crate) fn new(prefix: String, reader: Reader, now: Timestamp) -> Self {
        Group {
            label: String::new(),
            prefix,
            reader,
            blobs: Vec::new(),
            blobs_complete: false,
            jobs: Vec::new(),
            jobs_complete: false,
            now,
            timeline: Vec::new(),
        }
    }
}

/// The groups of one case.
#[derive(Default)]
pub(crate) struct Ledger(Mutex<Vec<Group>>);

impl Ledger {
    pub(crate) fn push(&self, group: Group) {
        if let Ok(mut groups) = self.0.lock() {
            groups.push(group);
        }
    }

    fn take(&self) -> Vec<Group> {
        self.0
            .lock()
            .map(|mut g| std::mem::take(&mut *g))
            .unwrap_or_default()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.lock().map(|g| g.is_empty()).unwrap_or(true)
    }
}

/// How many groups are re-read at once.
const AT_ONCE: usize = 8;

/// Waits for quiet, lets the settle interval pass, and re-reads every group of `ctx`.
pub(crate) async fn check(ctx: Ctx) -> Result<(), Failure> {
    let groups = ctx.ledger().take();
    if groups.is_empty() {
        return Ok(());
    }
    let limit = ctx.options().op_timeout;
    if !ctx.probe().wait_idle(limit).await {
        return Err(Failure::new(format!(
            "calls of the case were still in flight {} s after it ended",
            limit.as_secs()
        ))
        .because(causes::TOO_SLOW));
    }
    tokio::time::sleep(ctx.options().settle).await;
    // One fresh blob instance serves every cross-instance blob group of the case.
    let needs_fresh_blobs = groups
        .iter()
        .any(|g| matches!(g.reader, Reader::Fresh) && !g.blobs.is_empty());
    let fresh: Option<Arc<dyn BlobStore>> = match (needs_fresh_blobs, ctx.blob_factory()) {
        (true, Some(factory)) => Some(limited(limit, factory.instance()).await.map_err(|e| {
            Failure::new(format!(
                "the factory could not open the instance that re-reads the case (error {}): {}",
                e.kind(),
                e.message()
            ))
            .because(causes::NO_INSTANCE)
        })?),
        _ => None,
    };
    let results: Vec<(usize, Result<(), Failure>)> =
        futures_util::stream::iter(groups.into_iter().enumerate())
            .map(|(i, g)| {
                let ctx = ctx.clone();
                let fresh = fresh.clone();
                async move { (i, check_group(&ctx, g, fresh).await) }
            })
            .buffer_unordered(AT_ONCE)
            .collect()
            .await;
    // The first failing group in ledger order, so that a seed replays the same report.
    let mut failures: Vec<(usize, Failure)> = results
        .into_iter()
        .filter_map(|(i, r)| r.err().map(|f| (i, f)))
        .collect();
    failures.sort_by_key(|(i, _)| *i);
    match failures.into_iter().next() {
        Some((_, f)) => Err(f),
        None => Ok(()),
    }
}

async fn check_group(
    ctx: &Ctx,
    group: Group,
    fresh: Option<Arc<dyn BlobStore>>,
) -> Result<(), Failure> {
    let settle = ctx.options().settle.as_millis();
    let who = match group.reader {
        Reader::Fresh => "a fresh instance",
        Reader::Blobs(_) | Reader::Jobs(_) => "the case's instance",
    };
    let of = if group.label.is_empty() {
        String::new()
    } else {
        format!(" of {}", group.label)
    };
    let fail = |message: String, cause: &'static str| {
        let mut f = Failure::new(format!(
            "after the store settled for {settle} ms, {who} {message}{of}"
        ))
        .because(cause);
        if !group.timeline.is_empty() {
            f.timeline = Some(group.timeline.clone());
        }
        f
    };
    let limit = ctx.options().op_timeout;
    if !group.blobs.is_empty() {
        let store: Arc<dyn BlobStore> = match (&group.reader, &fresh) {
            (Reader::Blobs(s), _) => s.clone(),
            (_, Some(raw)) => Arc::new(Scoped::new(
                raw.clone(),
                group.prefix.clone(),
                ctx.probe().clone(),
            )),
            _ => return Err(Failure::new("no instance to re-read the case with")),
        };
        for (key, want) in &group.blobs {
            let got = limited(limit, store.get(key)).await?;
            match (got, want) {
                (None, None) => {}
                (Some(b), None) => {
                    return Err(fail(
                        format!("reads {key:?} as {}, but it was deleted", b.value.show()),
                        causes::DELETES_UNDONE,
                    ));
                }
                (None, Some((value, _))) => {
                    return Err(fail(
                        format!(
                            "reads {key:?} as not found, but the last acknowledged write left {}",
                            value.show()
                        ),
                        causes::WRITES_LOST,
                    ));
                }
                (Some(b), Some((value, etag))) => {
                    if b.value != *value || b.info.etag != *etag {
                        return Err(fail(
                            format!(
                                "reads {key:?} as {} ({}), but the last acknowledged write left {} ({})",
                                b.value.show(),
                                b.info.etag.show(),
                                value.show(),
                                etag.show()
                            ),
                            causes::WRITES_LOST,
                        ));
                    }
                }
            }
        }
        if group.blobs_complete {
            let (entries, _) =
                limited(limit, store.list_all_with_directories(ListOptions::new())).await?;
            let listed: Vec<String> = entries.iter().map(|e| e.key.clone()).collect();
            let want: BTreeSet<&String> = group
                .blobs
                .iter()
                .filter(|(_, v)| v.is_some())
                .map(|(k, _)| k)
                .collect();
            let deleted: Vec<&String> = listed
                .iter()
                .filter(|k| group.blobs.iter().any(|(d, v)| d == *k && v.is_none()))
                .collect();
            if !deleted.is_empty() {
                return Err(fail(
                    format!("lists the deleted keys {}", deleted.show()),
                    causes::DELETES_UNDONE,
                ));
            }
            let got: BTreeSet<&String> = listed.iter().collect();
            if got != want || listed.len() != got.len() {
                return Err(fail(
                    format!(
                        "lists {}, but reads find exactly {}",
                        listed.show(),
                        want.show()
                    ),
                    causes::LISTINGS_WRONG,
                ));
            }
            for e in &entries {
                if let Some((_, Some((_, etag)))) = group.blobs.iter().find(|(k, _)| *k == e.key)
                    && e.etag != *etag
                {
                    return Err(fail(
                        format!(
                            "lists {:?} with {}, but reads it with {}",
                            e.key,
                            e.etag.show(),
                            etag.show()
                        ),
                        causes::ETAGS_DISAGREE,
                    ));
                }
            }
        }
    }
    if !group.jobs.is_empty() {
        let jobs: Arc<dyn JobStore> = match &group.reader {
            Reader::Jobs(j) => j.clone(),
            _ => {
                let env = ctx.job_env_for(group.prefix.clone()).at(group.now);
                open_jobs(ctx.job_factory(), &env, limit)
                    .await
                    .map_err(|e| {
                        Failure::new(format!(
                            "the factory could not open the job-store instance that re-reads the case (error {}): {}",
                            e.kind(),
                            e.message()
                        ))
                        .because(causes::NO_INSTANCE)
                    })?
            }
        };
        for (id, want) in &group.jobs {
            let got = limited(limit, jobs.get(id)).await?;
            match (got, want) {
                (None, None) => {}
                (Some(j), None) => {
                    return Err(fail(
                        format!("reads job {id} as {}, but it was deleted", show_job(&j)),
                        causes::DELETES_UNDONE,
                    ));
                }
                (None, Some(w)) => {
                    return Err(fail(
                        format!(
                            "reads job {id} as not found, but the last acknowledged change left it {}",
                            show_job(w)
                        ),
                        causes::WRITES_LOST,
                    ));
                }
                (Some(j), Some(w)) => {
                    if j != *w {
                        return Err(fail(
                            format!(
                                "reads job {id} as {}, but the last acknowledged change left it {}",
                                show_job(&j),
                                show_job(w)
                            ),
                            causes::WRITES_LOST,
                        ));
                    }
                }
            }
        }
        if group.jobs_complete {
            let mut listed: Vec<JobId> = Vec::new();
            let mut filter = JobFilter::default();
            for _ in 0..1000 {
                let page = limited(limit, jobs.list(filter.clone())).await?;
                listed.extend(page.jobs.into_iter().map(|j| j.id));
                match page.next_cursor {
                    Some(c) => filter.cursor = Some(c),
                    None => break,
                }
            }
            let want: Vec<JobId> = group
                .jobs
                .iter()
                .filter(|(_, j)| j.is_some())
                .map(|(id, _)| id.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut sorted = listed.clone();
            sorted.sort();
            if sorted != want {
                let deleted = listed
                    .iter()
                    .any(|id| group.jobs.iter().any(|(d, j)| d == id && j.is_none()));
                return Err(fail(
                    format!(
                        "lists jobs {}, but reads find exactly {}",
                        listed.show(),
                        want.show()
                    ),
                    if deleted {
                        causes::DELETES_UNDONE
                    } else {
                        causes::JOB_LISTINGS_WRONG
                    },
                ));
            }
        }
    }
    Ok(())
}
