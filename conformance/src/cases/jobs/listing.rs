//! Job listings: filters by status and kind, pages that cover every job once, and a
//! listing that is complete across instances.

use std::collections::BTreeSet;
use std::time::Duration;

use blobjobs_store_api::{JobFilter, JobId, JobStatus, NewJob};
use serde_json::json;

use super::{LEASE, id, must_get};
use crate::case::{ensure, ensure_eq};
use crate::ctx::{Ctx, Failure};

pub(super) async fn job_listing_filters_by_status_and_kind(ctx: Ctx) -> Result<(), Failure> {
    let jobs = ctx.job_instance().await?;
    for (name, kind) in [("l1", "extract"), ("l2", "extract"), ("l3", "report")] {
        jobs.create(NewJob::new(kind, json!({})).id(id(name)?))
            .await?;
    }
    jobs.claim(&id("l2")?, "w1", LEASE).await?;
    let names = |page: blobjobs_store_api::JobPage| -> Vec<String> {
        page.jobs.into_iter().map(|j| j.id.to_string()).collect()
    };
    let listed = jobs.list(JobFilter::default()).await?;
    // A listing carries each job whole and current, as `get` reads it.
    for job in &listed.jobs {
        let read = must_get(&jobs, &job.id, &jobs).await?;
        ensure_eq!(job, &read, "job {} as listed versus as read", job.id);
    }
    let all = names(listed);
    ensure_eq!(all, vec!["l1", "l2", "l3"], "all jobs");
    let pending = names(
        jobs.list(JobFilter {
            status: Some(JobStatus::Pending),
            ..JobFilter::default()
        })
        .await?,
    );
    ensure_eq!(pending, vec!["l1", "l3"], "pending jobs");
    let reports = names(
        jobs.list(JobFilter {
            kind: Some("report".into()),
            ..JobFilter::default()
        })
        .await?,
    );
    ensure_eq!(reports, vec!["l3"], "jobs of kind report");
    Ok(())
}

pub(super) async fn job_listing_is_complete_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let n = ctx.options().instances.max(2);
    let mut want = BTreeSet::new();
    for (i, inst) in ctx.job_instances(n).await?.iter().enumerate() {
        let job = inst
            .create(NewJob::new("extract", json!({"i": i})).id(id(&format!("j{i}"))?))
            .await?;
        want.insert(job.id.to_string());
    }
    let reader = ctx.job_instance().await?;
    let got: BTreeSet<String> = reader
        .list(JobFilter::default())
        .await?
        .jobs
        .into_iter()
        .map(|j| j.id.to_string())
        .collect();
    ensure_eq!(got, want, "jobs listed by a fresh instance");
    Ok(())
}

/// Walking a listing page by page with a small page size returns every job once, in id
/// order (which for generated ids is the order they were created in), with and without a
/// status filter.
pub(super) async fn job_listing_pages_cover_every_job_once(ctx: Ctx) -> Result<(), Failure> {
    let jobs = ctx.job_instance().await?;
    let mut created = Vec::new();
    for i in 0..7 {
        let job = jobs.create(NewJob::new("extract", json!({"i": i}))).await?;
        if i % 3 == 0 {
            jobs.claim(&job.id, "w1", LEASE).await?;
        }
        created.push(job.id);
        ctx.advance(Duration::from_millis(1));
    }
    let running: Vec<JobId> = created.iter().step_by(3).cloned().collect();
    for (status, want) in [(None, created.clone()), (Some(JobStatus::Running), running)] {
        let mut seen = Vec::new();
        let mut filter = JobFilter {
            status,
            page_size: Some(3),
            ..JobFilter::default()
        };
        for page_no in 0..20 {
            let page = jobs.list_page(filter.clone()).await?;
            seen.extend(page.jobs.into_iter().map(|j| j.id));
            match page.next_cursor {
                Some(c) => filter.cursor = Some(c),
                None => break,
            }
            ensure!(page_no < 19, "a job listing did not end after 20 pages");
        }
        let what = status
            .map(|s| format!("{s} jobs"))
            .unwrap_or("all jobs".into());
        ensure_eq!(seen, want, "{what} listed in pages of 3, oldest first");
    }
    Ok(())
}
