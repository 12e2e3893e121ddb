//! The job lifecycle through the one generic job layer: legal transitions only, idempotent
//! creation, leases, deletes that stay deleted, TTLs, and all of it across instances.

use std::collections::BTreeSet;
use std::time::Duration;

use blobjobs_store_api::{ErrorKind, Job, JobFilter, JobId, JobStatus, NewJob};
use serde_json::json;

pub(crate) use crate::case::expect_kind;
use crate::case::{Case, case, ensure, ensure_eq};
use crate::causes;
use crate::ctx::{Ctx, Failure, JobHandle};
use crate::show::Show as _;

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
        case!("jobs", lease_expiry_is_exact, SingleInstance),
        case!("jobs", ttl_expiry_is_exact, SingleInstance),
        case!(
            "jobs",
            job_listing_pages_cover_every_job_once,
            SingleInstance
        ),
        case!(
            "jobs",
            awkward_job_ids_work_through_every_operation,
            SingleInstance
        ),
        case!(
            "jobs",
            job_updates_apply_one_change_at_a_time,
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
        case!(
            "jobs",
            job_updates_apply_one_change_at_a_time_across_instances,
            CrossInstance
        ),
    ]
}

pub(crate) fn id(s: &str) -> Result<JobId, Failure> {
    JobId::new(s).map_err(Failure::from)
}

pub(crate) const LEASE: Duration = Duration::from_secs(30);

/// Reads a job that must exist: `reader` polls the job `creator` created. Not finding it is
/// the seed's bug when the two are different instances.
pub(crate) async fn must_get(
    reader: &JobHandle,
    job: &JobId,
    creator: &JobHandle,
) -> Result<Job, Failure> {
    match reader.get(job).await? {
        Some(found) => Ok(found),
        None if reader.id == creator.id => Err(Failure::new(format!(
            "instance {} polled job {job}, which it created itself: not found",
            reader.id
        ))),
        None => Err(Failure::new(format!(
            "instance {} polled job {job} created by instance {}: not found",
            reader.id, creator.id
        ))
        .because(causes::NOT_VISIBLE_ACROSS_INSTANCES)),
    }
}

async fn job_lifecycle_allows_only_legal_transitions(ctx: Ctx) -> Result<(), Failure> {
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

async fn job_create_with_caller_id_is_idempotent(ctx: Ctx) -> Result<(), Failure> {
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

async fn expired_lease_can_be_reclaimed(ctx: Ctx) -> Result<(), Failure> {
    let jobs = ctx.job_instance().await?;
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

async fn ttl_expired_jobs_are_hidden_and_purged(ctx: Ctx) -> Result<(), Failure> {
    let jobs = ctx.job_instance().await?;
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

async fn job_created_on_one_instance_is_found_on_another(ctx: Ctx) -> Result<(), Failure> {
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

/// The job layers of three new instances.
async fn jobs_on_three_instances(ctx: &Ctx) -> Result<[JobHandle; 3], Failure> {
    let jobs: Vec<JobHandle> = ctx.job_instances(3).await?;
    <[_; 3]>::try_from(jobs).map_err(|_| Failure::new("could not open three instances"))
}

async fn job_progress_is_visible_across_instances(ctx: Ctx) -> Result<(), Failure> {
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
    let seen = must_get(&ja, &j.id, &ja).await?;
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

async fn job_listing_is_complete_across_instances(ctx: Ctx) -> Result<(), Failure> {
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

/// A lease of 10 s taken at t is held at t + 9 s and at t + 10 s − 1 ms, and may be taken
/// over from t + 10 s on (checked on separate jobs at t + 10 s and t + 10 s + 1 ms).
async fn lease_expiry_is_exact(ctx: Ctx) -> Result<(), Failure> {
    let jobs = ctx.job_instance().await?;
    let lease = Duration::from_secs(10);
    let ids = [id("lease-end")?, id("lease-end-plus-1")?];
    for job in &ids {
        jobs.create(NewJob::new("extract", json!({})).id(job.clone()))
            .await?;
        jobs.claim(job, "w1", lease).await?;
    }
    for (step, ms) in [(9_000u64, "9 s"), (999, "10 s - 1 ms")] {
        ctx.advance(Duration::from_millis(step));
        for job in &ids {
            expect_kind(
                jobs.claim(job, "w2", LEASE).await,
                ErrorKind::LeaseHeld,
                &format!("a claim of job {job} at {ms} into a lease of 10 s"),
            )
            .map_err(|f| f.because(causes::LEASES_WRONG))?;
        }
    }
    ctx.advance(Duration::from_millis(1));
    let at = jobs.claim(&ids[0], "w2", LEASE).await.map_err(|e| {
        Failure::new(format!(
            "a claim of job {} the moment its lease of 10 s ran out failed with error {}",
            ids[0],
            e.kind()
        ))
        .because(causes::LEASES_WRONG)
    })?;
    ensure_eq!(at.attempts, 2, "attempts after a claim at the lease's end");
    ctx.advance(Duration::from_millis(1));
    let after = jobs.claim(&ids[1], "w2", LEASE).await.map_err(|e| {
        Failure::new(format!(
            "a claim of job {} 1 ms after its lease ran out failed with error {}",
            ids[1],
            e.kind()
        ))
        .because(causes::LEASES_WRONG)
    })?;
    ensure_eq!(
        after.lease.map(|l| l.owner),
        Some("w2".to_owned()),
        "lease owner after a claim past the lease's end"
    );
    Ok(())
}

/// A TTL of 60 s keeps a job visible at 59 s and at 60 s − 1 ms and hides it from 60 s on
/// (checked again 1 ms later); a purge at that moment removes it, and a job created later
/// with its own TTL is judged by its own clock.
async fn ttl_expiry_is_exact(ctx: Ctx) -> Result<(), Failure> {
    let jobs = ctx.job_instance().await?;
    let short = jobs
        .create(
            NewJob::new("extract", json!({}))
                .id(id("ttl")?)
                .ttl(Duration::from_secs(60)),
        )
        .await?;
    ctx.advance(Duration::from_secs(1));
    let later = jobs
        .create(
            NewJob::new("extract", json!({}))
                .id(id("later")?)
                .ttl(Duration::from_secs(60)),
        )
        .await?;
    for (to, what) in [(58_000u64, "59 s"), (999, "60 s - 1 ms")] {
        ctx.advance(Duration::from_millis(to));
        ensure!(
            jobs.get(&short.id).await?.is_some(),
            "a job with a TTL of 60 s is gone at {what}"
        );
    }
    ctx.advance(Duration::from_millis(1));
    ensure!(
        jobs.get(&short.id).await?.is_none(),
        "a job with a TTL of 60 s is still visible the moment it ran out"
    );
    ensure_eq!(
        jobs.purge_expired().await?,
        1,
        "jobs purged the moment one TTL ran out"
    );
    ensure!(
        jobs.get(&later.id).await?.is_some(),
        "a job created 1 s later is gone with the first"
    );
    ctx.advance(Duration::from_millis(1));
    ensure!(
        jobs.get(&short.id).await?.is_none(),
        "a job with a TTL of 60 s is visible 1 ms after it ran out"
    );
    ctx.advance(Duration::from_millis(999));
    ensure!(
        jobs.get(&later.id).await?.is_none(),
        "a job is visible after its own TTL ran out"
    );
    Ok(())
}

/// Walking a listing page by page with a small page size returns every job once, in id
/// order (which for generated ids is the order they were created in), with and without a
/// status filter.
async fn job_listing_pages_cover_every_job_once(ctx: Ctx) -> Result<(), Failure> {
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

/// Ids that are easy to mishandle (case, dots, dashes, the longest one) work through every
/// job operation, and never alias one another.
async fn awkward_job_ids_work_through_every_operation(ctx: Ctx) -> Result<(), Failure> {
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

/// How many changes each instance makes in [`updates`].
const CHANGES: u64 = 4;

/// Every instance adds one to a counter in the job's input through `update`, [`CHANGES`]
/// times, all at once: no change may be lost. A change that fails aborts the update and
/// leaves the job as it was; a change that moves the job to another id is refused.
async fn updates(ctx: Ctx, cross: bool) -> Result<(), Failure> {
    let n = ctx.options().instances;
    let creator = ctx.job_instance().await?;
    let handles = if cross {
        ctx.job_instances(n).await?
    } else {
        vec![creator.clone(); n]
    };
    let mut settled = Vec::new();
    // One race on threads and one interleaved (see the crate's `race` module).
    for round in 0..2usize {
        let job = id(&format!("count{round}"))?;
        creator
            .create(NewJob::new("extract", json!({"count": 0})).id(job.clone()))
            .await?;
        let racers: Vec<_> = handles
            .iter()
            .map(|h| {
                let h = h.clone();
                let job = job.clone();
                async move {
                    for _ in 0..CHANGES {
                        h.update(&job, "count + 1", &|j: &mut Job, _| {
                            let count = j.input["count"].as_u64().unwrap_or(0);
                            j.input = json!({ "count": count + 1 });
                            Ok(())
                        })
                        .await?;
                    }
                    Ok::<_, Failure>(())
                }
            })
            .collect();
        for r in crate::race::race(ctx.probe(), round, racers).await? {
            r?;
        }
        let read = must_get(&creator, &job, &creator).await?;
        let want = json!({ "count": n as u64 * CHANGES });
        if read.input != want {
            return Err(Failure::new(format!(
                "{n} instances each added 1 to a job's counter {CHANGES} times through update; \
                 the job reads {}, not {}: changes were lost",
                read.input.show(),
                want.show()
            ))
            .because(causes::JOB_UPDATES_LOST));
        }
        settled.push((job, Some(read)));
    }
    let job = &settled[0].0;
    let before = must_get(&creator, job, &creator).await?;
    let refused = handles[0]
        .update(job, "a change that fails", &|j: &mut Job, _| {
            j.input = json!({ "count": -1 });
            Err(blobjobs_store_api::Error::new(
                ErrorKind::IllegalTransition,
                "refused by the change",
            ))
        })
        .await;
    expect_kind(
        refused,
        ErrorKind::IllegalTransition,
        "an update whose change fails",
    )?;
    ensure_eq!(
        must_get(&creator, job, &creator).await?,
        before,
        "the job after an update whose change failed"
    );
    let moved = handles[0]
        .update(job, "a change of the id", &|j: &mut Job, _| {
            j.id = JobId::new("elsewhere")?;
            Ok(())
        })
        .await;
    expect_kind(
        moved,
        ErrorKind::InvalidInput,
        "an update that changes the id",
    )?;
    ensure!(
        creator.get(&id("elsewhere")?).await?.is_none(),
        "an update that changed the id created a job under the new id"
    );
    let mut group = crate::settle::Group::new(
        ctx.prefix().to_owned(),
        if cross {
            crate::settle::Reader::Fresh
        } else {
            crate::settle::Reader::Jobs(creator.jobs.clone())
        },
        ctx.now(),
    );
    group.jobs = settled;
    group.jobs_complete = true;
    ctx.ledger().push(group);
    Ok(())
}

async fn job_updates_apply_one_change_at_a_time(ctx: Ctx) -> Result<(), Failure> {
    updates(ctx, false).await
}

async fn job_updates_apply_one_change_at_a_time_across_instances(ctx: Ctx) -> Result<(), Failure> {
    updates(ctx, true).await
}
