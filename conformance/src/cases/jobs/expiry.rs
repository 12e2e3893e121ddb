//! Leases and TTLs on the case's manual clock: an expired lease can be reclaimed, an expired
//! job is hidden and purged, both to the millisecond, and across instances.

use std::time::Duration;

use blobjobs_store_api::{ErrorKind, JobFilter, JobId, JobStatus, NewJob};
use serde_json::json;

use super::{LEASE, expect_kind, id, jobs_on_three_instances, must_get};
use crate::case::{ensure, ensure_eq};
use crate::causes;
use crate::ctx::{Ctx, Failure};

pub(super) async fn expired_lease_can_be_reclaimed(ctx: Ctx) -> Result<(), Failure> {
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

pub(super) async fn ttl_expired_jobs_are_hidden_and_purged(ctx: Ctx) -> Result<(), Failure> {
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

pub(super) async fn expired_lease_can_be_reclaimed_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
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

pub(super) async fn ttl_purge_works_across_instances(ctx: Ctx) -> Result<(), Failure> {
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

/// A lease of 10 s taken at t is held at t + 9 s and at t + 10 s − 1 ms, and may be taken
/// over from t + 10 s on (checked on separate jobs at t + 10 s and t + 10 s + 1 ms).
pub(super) async fn lease_expiry_is_exact(ctx: Ctx) -> Result<(), Failure> {
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
pub(super) async fn ttl_expiry_is_exact(ctx: Ctx) -> Result<(), Failure> {
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
