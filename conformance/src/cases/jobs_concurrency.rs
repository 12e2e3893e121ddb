//! Racing job operations: one claimant per job, one winner of a racing finish and cancel,
//! one job per caller-chosen id.

use std::sync::Arc;

use blobjobs_store_api::{ErrorKind, JobStatus, NewJob};
use serde_json::json;
use tokio::sync::Barrier;

use crate::case::{Case, case, ensure, ensure_eq};
use crate::cases::jobs::{LEASE, id};
use crate::ctx::{Ctx, Failure, JobHandle};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!("jobs_concurrency", claim_is_exclusive, SingleInstance),
        case!(
            "jobs_concurrency",
            claim_is_exclusive_across_instances,
            CrossInstance
        ),
        case!(
            "jobs_concurrency",
            racing_finish_and_cancel_have_one_winner_across_instances,
            CrossInstance
        ),
        case!(
            "jobs_concurrency",
            racing_creates_with_one_id_make_one_job_across_instances,
            CrossInstance
        ),
    ]
}

/// Runs `body` for every handle at the same moment; results come back in handle order.
async fn race<T, F, Fut>(handles: Vec<JobHandle>, body: F) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    F: Fn(usize, JobHandle) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(handles.len()));
    let tasks: Vec<_> = handles
        .into_iter()
        .enumerate()
        .map(|(i, h)| {
            let barrier = barrier.clone();
            let fut = body(i, h);
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(
            t.await
                .map_err(|e| Failure::new(format!("a concurrent task failed: {e}")))?,
        );
    }
    Ok(out)
}

async fn exclusive_claim(ctx: Ctx, cross: bool) -> Result<(), Failure> {
    let n = ctx.options().instances;
    let first = ctx.instance().await?;
    let creator = ctx.jobs(&first);
    let mut handles = Vec::new();
    for _ in 0..n {
        let inst = if cross {
            ctx.instance().await?
        } else {
            first.clone()
        };
        handles.push(ctx.jobs(&inst));
    }
    for round in 0..3 {
        let job = id(&format!("race{round}"))?;
        creator
            .create(NewJob::new("extract", json!({})).id(job.clone()))
            .await?;
        let job2 = job.clone();
        let results = race(handles.clone(), move |i, h| {
            let job = job2.clone();
            async move { h.claim(&job, &format!("worker-{i}"), LEASE).await }
        })
        .await?;
        let mut winners = Vec::new();
        for (i, r) in results.iter().enumerate() {
            match r {
                Ok(_) => winners.push(i),
                Err(e) if e.kind() == ErrorKind::LeaseHeld => {}
                Err(e) => {
                    return Err(Failure::new(format!(
                        "claimant {i} of job {job} got error {} instead of a lease or lease_held",
                        e.kind()
                    )));
                }
            }
        }
        ensure!(
            winners.len() == 1,
            "{} of {n} concurrent claims of job {job} succeeded; exactly one must",
            winners.len()
        );
        let seen = creator
            .get(&job)
            .await?
            .ok_or_else(|| Failure::new(format!("job {job} vanished after the claims")))?;
        ensure_eq!(
            seen.lease.map(|l| l.owner),
            Some(format!("worker-{}", winners[0])),
            "lease owner of job {job} after the race"
        );
        ensure_eq!(
            seen.attempts,
            1,
            "attempts of job {job} after one successful claim"
        );
    }
    Ok(())
}

async fn claim_is_exclusive(ctx: Ctx) -> Result<(), Failure> {
    exclusive_claim(ctx, false).await
}

async fn claim_is_exclusive_across_instances(ctx: Ctx) -> Result<(), Failure> {
    exclusive_claim(ctx, true).await
}

async fn racing_finish_and_cancel_have_one_winner_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    let insts = ctx.instances(3).await?;
    let (a, b, c) = (
        ctx.jobs(&insts[0]),
        ctx.jobs(&insts[1]),
        ctx.jobs(&insts[2]),
    );
    for round in 0..3 {
        let job = id(&format!("fc{round}"))?;
        a.create(NewJob::new("extract", json!({})).id(job.clone()))
            .await?;
        a.claim(&job, "worker", LEASE).await?;
        let j2 = job.clone();
        let results = race(vec![b.clone(), c.clone()], move |i, h| {
            let job = j2.clone();
            async move {
                if i == 0 {
                    h.succeed(&job, "worker", json!({"done": true})).await
                } else {
                    h.cancel(&job).await
                }
            }
        })
        .await?;
        let oks: Vec<JobStatus> = results
            .iter()
            .filter_map(|r| r.as_ref().ok().map(|j| j.status))
            .collect();
        for r in &results {
            if let Err(e) = r {
                ensure!(
                    e.kind() == ErrorKind::IllegalTransition,
                    "the loser of a finish/cancel race got error {} instead of illegal_transition",
                    e.kind()
                );
            }
        }
        ensure!(
            oks.len() == 1,
            "{} of a racing succeed and cancel of job {job} took effect; exactly one must",
            oks.len()
        );
        let seen = a
            .get(&job)
            .await?
            .ok_or_else(|| Failure::new(format!("job {job} vanished")))?;
        ensure_eq!(
            seen.status,
            oks[0],
            "final status of job {job} versus the winner's"
        );
    }
    Ok(())
}

async fn racing_creates_with_one_id_make_one_job_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let n = ctx.options().instances;
    let mut handles = Vec::new();
    for inst in ctx.instances(n).await? {
        handles.push(ctx.jobs(&inst));
    }
    let job = id("trigger-once")?;
    let j2 = job.clone();
    let results = race(handles.clone(), move |i, h| {
        let job = j2.clone();
        async move {
            h.create(NewJob::new("extract", json!({"from": i})).id(job))
                .await
        }
    })
    .await?;
    let mut inputs = Vec::new();
    for r in results {
        inputs.push(r?.input);
    }
    ensure!(
        inputs.iter().all(|i| *i == inputs[0]),
        "racing creates of job {job} returned different jobs (inputs {inputs:?}); all must return the one that won"
    );
    for h in &handles {
        let seen = h
            .get(&job)
            .await?
            .ok_or_else(|| Failure::new(format!("job {job} is not found by every instance")))?;
        ensure_eq!(
            seen.input,
            inputs[0],
            "input of job {job} as each instance reads it"
        );
    }
    Ok(())
}
