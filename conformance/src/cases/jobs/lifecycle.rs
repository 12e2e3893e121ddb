//! The job lifecycle: legal transitions only, idempotent creation, deletes that stay
//! deleted, ids that are easy to mishandle, and the same seen across instances.

use std::time::Duration;

use blobjobs_store_api::{ErrorKind, JobFilter, JobId, JobStatus, NewJob};
use serde_json::json;

use super::{LEASE, expect_kind, id, jobs_on_three_instances, must_get};
use crate::case::{ensure, ensure_eq};
use crate::causes;
use crate::ctx::{Ctx, Failure};
use crate::show::Show as _;

pub(super) async fn job_lifecycle_allows_only_legal_transitions(ctx: Ctx) -> Result<(), Failure> {
    let jobs = ctx.job_instance().await?;
    let a = jobs
        .create(NewJob::new("extract", json!({"n": 1})).id(id("a")?))
        .await?;
    ensure_eq!(a.status, JobStatus::Pending, "status of a new job");
    ensure_eq!(a.attempts, 0, "attempts of a new job");
    expect_kind(
        jobs.succeed(&a.id, "w1", json!(1)).await,
        ErrorKind::IllegalTransition,
        "succeed a pending job",
    )?;
    expect_kind(
        jobs.progress(&a.id, "w1", 10).await,
        ErrorKind::IllegalTransition,
        "progress on a pending job",
    )?;
    let running = jobs.claim(&a.id, "w1", LEASE).await?;
    ensure_eq!(running.status, JobStatus::Running, "status after claim");
    ensure_eq!(running.attempts, 1, "attempts after claim");
    expect_kind(
        jobs.claim(&a.id, "w2", LEASE).await,
        ErrorKind::LeaseHeld,
        "claim a job leased to another",
    )?;
    expect_kind(
        jobs.progress(&a.id, "w2", 10).await,
        ErrorKind::LeaseHeld,
        "progress by a non-owner",
    )?;
    let p = jobs.progress(&a.id, "w1", 50).await?;
    ensure_eq!(
        p.progress.map(|p| p.percent),
        Some(50),
        "progress after a report"
    );
    expect_kind(
        jobs.succeed(&a.id, "w2", json!(1)).await,
        ErrorKind::LeaseHeld,
        "succeed by a non-owner",
    )?;
    let done = jobs.succeed(&a.id, "w1", json!({"ok": true})).await?;
    ensure_eq!(done.status, JobStatus::Succeeded, "status after succeed");
    ensure_eq!(
        done.result,
        Some(json!({"ok": true})),
        "result after succeed"
    );
    ensure!(done.lease.is_none(), "a finished job keeps its lease");
    for (what, r) in [
        (
            "claim a succeeded job",
            jobs.claim(&a.id, "w1", LEASE).await,
        ),
        ("cancel a succeeded job", jobs.cancel(&a.id).await),
        ("fail a succeeded job", jobs.fail(&a.id, "w1", "late").await),
        (
            "succeed a succeeded job",
            jobs.succeed(&a.id, "w1", json!(2)).await,
        ),
    ] {
        expect_kind(r, ErrorKind::IllegalTransition, what)?;
    }
    ensure_eq!(
        must_get(&jobs, &a.id, &jobs).await?,
        done,
        "job after rejected changes"
    );

    let b = jobs
        .create(NewJob::new("extract", json!({"n": 2})).id(id("b")?))
        .await?;
    let cancelled = jobs.cancel(&b.id).await?;
    ensure_eq!(
        cancelled.status,
        JobStatus::Cancelled,
        "status after cancelling a pending job"
    );
    expect_kind(
        jobs.claim(&b.id, "w1", LEASE).await,
        ErrorKind::IllegalTransition,
        "claim a cancelled job",
    )?;

    let c = jobs
        .create(NewJob::new("extract", json!({"n": 3})).id(id("c")?))
        .await?;
    jobs.claim(&c.id, "w1", LEASE).await?;
    let failed = jobs.fail(&c.id, "w1", "boom").await?;
    ensure_eq!(failed.status, JobStatus::Failed, "status after fail");
    ensure_eq!(failed.error.as_deref(), Some("boom"), "error after fail");
    expect_kind(
        jobs.succeed(&c.id, "w1", json!(1)).await,
        ErrorKind::IllegalTransition,
        "succeed a failed job",
    )?;

    let d = jobs
        .create(NewJob::new("extract", json!({"n": 4})).id(id("d")?))
        .await?;
    jobs.claim(&d.id, "w1", LEASE).await?;
    let cancelled = jobs.cancel(&d.id).await?;
    ensure_eq!(
        cancelled.status,
        JobStatus::Cancelled,
        "status after cancelling a running job"
    );
    expect_kind(
        jobs.succeed(&d.id, "w1", json!(1)).await,
        ErrorKind::IllegalTransition,
        "succeed a cancelled job",
    )?;
    Ok(())
}

pub(super) async fn job_create_with_caller_id_is_idempotent(ctx: Ctx) -> Result<(), Failure> {
    let jobs = ctx.job_instance().await?;
    let first = jobs
        .create(NewJob::new("extract", json!({"try": 1})).id(id("order-42")?))
        .await?;
    ctx.advance(Duration::from_secs(1));
    let again = jobs
        .create(NewJob::new("extract", json!({"try": 2})).id(id("order-42")?))
        .await?;
    ensure_eq!(
        again,
        first,
        "a repeated create with the same id (must return the first job)"
    );
    expect_kind(
        jobs.create(NewJob::new("report", json!({})).id(id("order-42")?))
            .await,
        ErrorKind::InvalidInput,
        "create with a taken id and another kind",
    )?;
    let page = jobs.list(JobFilter::default()).await?;
    ensure_eq!(page.jobs.len(), 1, "jobs after three creates with one id");
    let x = jobs.create(NewJob::new("extract", json!({}))).await?;
    let y = jobs.create(NewJob::new("extract", json!({}))).await?;
    ensure!(
        x.id != y.id,
        "two creates without an id got the same id {}",
        x.id
    );
    Ok(())
}

pub(super) async fn deleted_job_stays_deleted(ctx: Ctx) -> Result<(), Failure> {
    let jobs = ctx.job_instance().await?;
    let j = jobs
        .create(NewJob::new("extract", json!({})).id(id("gone")?))
        .await?;
    jobs.claim(&j.id, "w1", LEASE).await?;
    ensure!(
        jobs.delete(&j.id).await?,
        "delete of an existing job reported it missing"
    );
    ensure!(jobs.get(&j.id).await?.is_none(), "a deleted job reads");
    expect_kind(
        jobs.progress(&j.id, "w1", 90).await,
        ErrorKind::NotFound,
        "progress on a deleted job",
    )?;
    expect_kind(
        jobs.succeed(&j.id, "w1", json!(1)).await,
        ErrorKind::NotFound,
        "succeed a deleted job",
    )?;
    expect_kind(
        jobs.claim(&j.id, "w2", LEASE).await,
        ErrorKind::NotFound,
        "claim a deleted job",
    )?;
    expect_kind(
        jobs.cancel(&j.id).await,
        ErrorKind::NotFound,
        "cancel a deleted job",
    )?;
    ensure!(
        !jobs.delete(&j.id).await?,
        "a second delete reported the job existing"
    );
    ensure!(jobs.get(&j.id).await?.is_none(), "a deleted job came back");
    let page = jobs.list(JobFilter::default()).await?;
    ensure!(page.jobs.is_empty(), "a deleted job is still listed");
    Ok(())
}

pub(super) async fn job_created_on_one_instance_is_found_on_another(
    ctx: Ctx,
) -> Result<(), Failure> {
    let trigger = ctx.job_instance().await?;
    let status = ctx.job_instance().await?;
    let created = trigger
        .create(NewJob::new("extract", json!({"doc": 7})).id(id("J")?))
        .await?;
    let seen = must_get(&status, &created.id, &trigger).await?;
    ensure_eq!(seen, created, "the job as another instance reads it");
    // A job with a generated id, too: the id is all the polling front end has.
    let generated = trigger.create(NewJob::new("extract", json!({}))).await?;
    must_get(&status, &generated.id, &trigger).await?;
    Ok(())
}

pub(super) async fn job_progress_is_visible_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let [t, w, st] = jobs_on_three_instances(&ctx).await?;
    let j = t
        .create(NewJob::new("extract", json!({})).id(id("J")?))
        .await?;
    w.claim(&j.id, "worker", LEASE).await?;
    let seen = must_get(&st, &j.id, &t).await?;
    ensure_eq!(
        seen.status,
        JobStatus::Running,
        "status seen by the status instance after a claim elsewhere"
    );
    w.progress(&j.id, "worker", 40).await?;
    let seen = must_get(&st, &j.id, &t).await?;
    ensure_eq!(
        seen.progress.map(|p| p.percent),
        Some(40),
        "progress seen by the status instance"
    );
    w.succeed(&j.id, "worker", json!({"pages": 3})).await?;
    let seen = must_get(&st, &j.id, &t).await?;
    ensure_eq!(
        seen.status,
        JobStatus::Succeeded,
        "status seen after the worker finished"
    );
    ensure_eq!(
        seen.result,
        Some(json!({"pages": 3})),
        "result seen by the status instance"
    );
    Ok(())
}

pub(super) async fn deleted_job_stays_deleted_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let [ja, jb, jc] = jobs_on_three_instances(&ctx).await?;
    let j = ja
        .create(NewJob::new("extract", json!({})).id(id("J")?))
        .await?;
    jb.claim(&j.id, "worker", LEASE).await?;
    ensure!(
        jc.delete(&j.id).await?,
        "instance 2 could not see the job it deletes"
    );
    expect_kind(
        jb.succeed(&j.id, "worker", json!(1)).await,
        ErrorKind::NotFound,
        "the worker finishing a job deleted elsewhere",
    )?;
    expect_kind(
        jb.progress(&j.id, "worker", 99).await,
        ErrorKind::NotFound,
        "the worker reporting on a job deleted elsewhere",
    )?;
    ensure!(
        ja.get(&j.id).await?.is_none(),
        "instance 0 still reads a job instance 2 deleted"
    );
    Ok(())
}

pub(super) async fn job_create_with_caller_id_is_idempotent_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    let a = ctx.job_instance().await?;
    let b = ctx.job_instance().await?;
    let first = a
        .create(NewJob::new("extract", json!({"from": 0})).id(id("J")?))
        .await?;
    let retried = b
        .create(NewJob::new("extract", json!({"from": 1})).id(id("J")?))
        .await?;
    ensure_eq!(
        retried,
        first,
        "a retried create on another instance (must return the first job)"
    );
    Ok(())
}

/// Ids that are easy to mishandle (case, dots, dashes, the longest one) work through every
/// job operation, and never alias one another.
pub(super) async fn awkward_job_ids_work_through_every_operation(ctx: Ctx) -> Result<(), Failure> {
    let jobs = ctx.job_instance().await?;
    let long = "x".repeat(128);
    let raw = [
        "a", "A", "0", "a.b", "a-b", "a_b", "...a", "-", "_", "a..b", "Job", "job", &long,
    ];
    let ids: Vec<JobId> = raw.iter().map(|s| id(s)).collect::<Result<_, _>>()?;
    for (i, job) in ids.iter().enumerate() {
        let created = jobs
            .create(NewJob::new("extract", json!({"i": i})).id(job.clone()))
            .await?;
        ensure_eq!(created.input, json!({"i": i}), "input of job {job}");
    }
    for (i, job) in ids.iter().enumerate() {
        let read = must_get(&jobs, job, &jobs).await?;
        if read.input != json!({"i": i}) {
            return Err(Failure::new(format!(
                "job {job} reads the input of another job ({}): the ids alias",
                read.input.show()
            ))
            .because(causes::KEYS_MANGLED));
        }
        jobs.claim(job, "w1", LEASE).await?;
        jobs.progress(job, "w1", 50).await?;
        if i % 2 == 0 {
            jobs.succeed(job, "w1", json!({"i": i})).await?;
        } else {
            jobs.cancel(job).await?;
        }
    }
    let mut listed: Vec<JobId> = jobs
        .list(JobFilter::default())
        .await?
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    listed.sort();
    let mut want = ids.clone();
    want.sort();
    ensure_eq!(listed, want, "jobs listed after creating every awkward id");
    for job in &ids {
        ensure!(jobs.delete(job).await?, "job {job} was not there to delete");
    }
    let left = jobs.list(JobFilter::default()).await?.jobs;
    ensure!(
        left.is_empty(),
        "jobs left after deleting them all: {}",
        left.show()
    );
    Ok(())
}
