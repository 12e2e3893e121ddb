//! The job lifecycle through the one generic job layer: legal transitions only, idempotent
//! creation, leases, deletes that stay deleted, TTLs, and all of it across instances.

use std::collections::BTreeSet;
use std::time::Duration;

use blobjobs_store_api::{ErrorKind, Job, JobFilter, JobId, JobStatus, NewJob};
use serde_json::json;

use crate::case::{Case, case, ensure, ensure_eq};
use crate::ctx::{Ctx, Failure, JobHandle};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            "jobs",
            job_lifecycle_allows_only_legal_transitions,
            SingleInstance
        ),
        case!(
            "jobs",
            job_create_with_caller_id_is_idempotent,
            SingleInstance
        ),
        case!("jobs", expired_lease_can_be_reclaimed, SingleInstance),
        case!("jobs", deleted_job_stays_deleted, SingleInstance),
        case!(
            "jobs",
            ttl_expired_jobs_are_hidden_and_purged,
            SingleInstance
        ),
        case!(
            "jobs",
            job_listing_filters_by_status_and_kind,
            SingleInstance
        ),
        case!(
            "jobs",
            job_created_on_one_instance_is_found_on_another,
            CrossInstance
        ),
        case!(
            "jobs",
            job_progress_is_visible_across_instances,
            CrossInstance
        ),
        case!(
            "jobs",
            expired_lease_can_be_reclaimed_across_instances,
            CrossInstance
        ),
        case!(
            "jobs",
            deleted_job_stays_deleted_across_instances,
            CrossInstance
        ),
        case!("jobs", ttl_purge_works_across_instances, CrossInstance),
        case!(
            "jobs",
            job_create_with_caller_id_is_idempotent_across_instances,
            CrossInstance
        ),
        case!(
            "jobs",
            job_listing_is_complete_across_instances,
            CrossInstance
        ),
    ]
}

pub(crate) fn id(s: &str) -> Result<JobId, Failure> {
    JobId::new(s).map_err(Failure::from)
}

pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// Expects `r` to be an error of `kind`.
pub(crate) fn expect_kind<T: std::fmt::Debug>(
    r: blobjobs_store_api::Result<T>,
    kind: ErrorKind,
    what: &str,
) -> Result<(), Failure> {
    match r {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(Failure::new(format!(
            "{what}: expected error {kind}, got error {} ({})",
            e.kind(),
            e.message()
        ))),
        Ok(v) => Err(Failure::new(format!(
            "{what}: expected error {kind}, got {v:?}"
        ))),
    }
}

async fn must_get(jobs: &JobHandle, job: &JobId, who: &str) -> Result<Job, Failure> {
    jobs.get(job).await?.ok_or_else(|| {
        Failure::new(format!(
            "{who}: get job {job} → not found, but the job exists"
        ))
    })
}

async fn job_lifecycle_allows_only_legal_transitions(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let jobs = ctx.jobs(&s);
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
        must_get(&jobs, &a.id, "instance 0").await?,
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

async fn job_create_with_caller_id_is_idempotent(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let jobs = ctx.jobs(&s);
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

async fn expired_lease_can_be_reclaimed(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let jobs = ctx.jobs(&s);
    let j = jobs
        .create(NewJob::new("extract", json!({})).id(id("lease")?))
        .await?;
    jobs.claim(&j.id, "w1", Duration::from_secs(10)).await?;
    ctx.advance(Duration::from_secs(9));
    expect_kind(
        jobs.claim(&j.id, "w2", LEASE).await,
        ErrorKind::LeaseHeld,
        "claim before the lease ran out",
    )?;
    ctx.advance(Duration::from_secs(2));
    let again = jobs.claim(&j.id, "w2", LEASE).await?;
    ensure_eq!(again.attempts, 2, "attempts after a reclaim");
    ensure_eq!(
        again.lease.as_ref().map(|l| l.owner.as_str()),
        Some("w2"),
        "lease owner after a reclaim"
    );
    expect_kind(
        jobs.succeed(&j.id, "w1", json!(1)).await,
        ErrorKind::LeaseHeld,
        "succeed by the worker that lost the lease",
    )?;
    let done = jobs.succeed(&j.id, "w2", json!(2)).await?;
    ensure_eq!(
        done.status,
        JobStatus::Succeeded,
        "status after the new owner finished"
    );
    Ok(())
}

async fn deleted_job_stays_deleted(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let jobs = ctx.jobs(&s);
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

async fn ttl_expired_jobs_are_hidden_and_purged(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let jobs = ctx.jobs(&s);
    let short = jobs
        .create(
            NewJob::new("extract", json!({}))
                .id(id("short")?)
                .ttl(Duration::from_secs(60)),
        )
        .await?;
    let forever = jobs
        .create(NewJob::new("extract", json!({})).id(id("forever")?))
        .await?;
    ctx.advance(Duration::from_secs(59));
    ensure!(
        jobs.get(&short.id).await?.is_some(),
        "a job vanished before its TTL ran out"
    );
    ctx.advance(Duration::from_secs(2));
    ensure!(
        jobs.get(&short.id).await?.is_none(),
        "a job is visible after its TTL ran out"
    );
    expect_kind(
        jobs.claim(&short.id, "w1", LEASE).await,
        ErrorKind::NotFound,
        "claim an expired job",
    )?;
    let listed: Vec<JobId> = jobs
        .list(JobFilter::default())
        .await?
        .jobs
        .into_iter()
        .map(|j| j.id)
        .collect();
    ensure_eq!(
        listed,
        vec![forever.id.clone()],
        "jobs listed after one expired"
    );
    ensure_eq!(jobs.purge_expired().await?, 1, "jobs purged");
    ensure_eq!(
        jobs.purge_expired().await?,
        0,
        "jobs purged by a second purge"
    );
    ensure!(
        jobs.get(&forever.id).await?.is_some(),
        "purge removed a job without a TTL"
    );
    let fresh = jobs
        .create(NewJob::new("extract", json!({"new": true})).id(id("short")?))
        .await?;
    ensure_eq!(
        fresh.status,
        JobStatus::Pending,
        "a new job under an expired job's id"
    );
    ensure_eq!(
        fresh.input,
        json!({"new": true}),
        "input of the new job under an expired id"
    );
    Ok(())
}

async fn job_listing_filters_by_status_and_kind(ctx: Ctx) -> Result<(), Failure> {
    let s = ctx.instance().await?;
    let jobs = ctx.jobs(&s);
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
        let read = must_get(&jobs, &job.id, "instance 0").await?;
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

async fn job_created_on_one_instance_is_found_on_another(ctx: Ctx) -> Result<(), Failure> {
    let trigger = ctx.instance().await?;
    let status = ctx.instance().await?;
    let created = ctx
        .jobs(&trigger)
        .create(NewJob::new("extract", json!({"doc": 7})).id(id("J")?))
        .await?;
    let seen = must_get(&ctx.jobs(&status), &created.id, "the status instance").await?;
    ensure_eq!(seen, created, "the job as another instance reads it");
    // A job with a generated id, too: the id is all the polling front end has.
    let generated = ctx
        .jobs(&trigger)
        .create(NewJob::new("extract", json!({})))
        .await?;
    must_get(&ctx.jobs(&status), &generated.id, "the status instance").await?;
    Ok(())
}

/// The job layers of three new instances.
async fn jobs_on_three_instances(ctx: &Ctx) -> Result<[JobHandle; 3], Failure> {
    let jobs: Vec<JobHandle> = ctx
        .instances(3)
        .await?
        .iter()
        .map(|i| ctx.jobs(i))
        .collect();
    <[_; 3]>::try_from(jobs).map_err(|_| Failure::new("could not open three instances"))
}

async fn job_progress_is_visible_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let [t, w, st] = jobs_on_three_instances(&ctx).await?;
    let j = t
        .create(NewJob::new("extract", json!({})).id(id("J")?))
        .await?;
    w.claim(&j.id, "worker", LEASE).await?;
    let seen = must_get(&st, &j.id, "the status instance").await?;
    ensure_eq!(
        seen.status,
        JobStatus::Running,
        "status seen by the status instance after a claim elsewhere"
    );
    w.progress(&j.id, "worker", 40).await?;
    let seen = must_get(&st, &j.id, "the status instance").await?;
    ensure_eq!(
        seen.progress.map(|p| p.percent),
        Some(40),
        "progress seen by the status instance"
    );
    w.succeed(&j.id, "worker", json!({"pages": 3})).await?;
    let seen = must_get(&st, &j.id, "the status instance").await?;
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

async fn expired_lease_can_be_reclaimed_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let [ja, jb, jc] = jobs_on_three_instances(&ctx).await?;
    let j = ja
        .create(NewJob::new("extract", json!({})).id(id("J")?))
        .await?;
    jb.claim(&j.id, "worker-b", Duration::from_secs(10)).await?;
    expect_kind(
        jc.claim(&j.id, "worker-c", LEASE).await,
        ErrorKind::LeaseHeld,
        "claim on instance 2 of a job instance 1 holds",
    )?;
    ctx.advance(Duration::from_secs(11));
    let again = jc.claim(&j.id, "worker-c", LEASE).await?;
    ensure_eq!(
        again.attempts,
        2,
        "attempts after a reclaim on another instance"
    );
    expect_kind(
        jb.succeed(&j.id, "worker-b", json!(1)).await,
        ErrorKind::LeaseHeld,
        "the old owner finishing after a reclaim",
    )?;
    let seen = must_get(&ja, &j.id, "instance 0").await?;
    ensure_eq!(
        seen.lease.map(|l| l.owner),
        Some("worker-c".to_owned()),
        "lease owner seen by instance 0"
    );
    Ok(())
}

async fn deleted_job_stays_deleted_across_instances(ctx: Ctx) -> Result<(), Failure> {
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

async fn ttl_purge_works_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let [ja, jb, jc] = jobs_on_three_instances(&ctx).await?;
    ja.create(
        NewJob::new("extract", json!({}))
            .id(id("short")?)
            .ttl(Duration::from_secs(5)),
    )
    .await?;
    ja.create(NewJob::new("extract", json!({})).id(id("kept")?))
        .await?;
    ctx.advance(Duration::from_secs(6));
    ensure_eq!(jb.purge_expired().await?, 1, "jobs purged by instance 1");
    ensure!(
        jc.get(&id("kept")?).await?.is_some(),
        "instance 2 does not see the job without a TTL"
    );
    ensure!(
        jc.get(&id("short")?).await?.is_none(),
        "instance 2 sees an expired job"
    );
    Ok(())
}

async fn job_create_with_caller_id_is_idempotent_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let a = ctx.instance().await?;
    let b = ctx.instance().await?;
    let first = ctx
        .jobs(&a)
        .create(NewJob::new("extract", json!({"from": 0})).id(id("J")?))
        .await?;
    let retried = ctx
        .jobs(&b)
        .create(NewJob::new("extract", json!({"from": 1})).id(id("J")?))
        .await?;
    ensure_eq!(
        retried,
        first,
        "a retried create on another instance (must return the first job)"
    );
    Ok(())
}

async fn job_listing_is_complete_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let n = ctx.options().instances.max(2);
    let mut want = BTreeSet::new();
    for (i, inst) in ctx.instances(n).await?.iter().enumerate() {
        let job = ctx
            .jobs(inst)
            .create(NewJob::new("extract", json!({"i": i})).id(id(&format!("j{i}"))?))
            .await?;
        want.insert(job.id.to_string());
    }
    let reader = ctx.instance().await?;
    let got: BTreeSet<String> = ctx
        .jobs(&reader)
        .list(JobFilter::default())
        .await?
        .jobs
        .into_iter()
        .map(|j| j.id.to_string())
        .collect();
    ensure_eq!(got, want, "jobs listed by a fresh instance");
    Ok(())
}
