//! Racing updates of one job through `JobStore::update`: no change is lost, a change that
//! fails leaves the job as it was, and a change of the id is refused.

use blobjobs_store_api::{ErrorKind, Job, JobId, NewJob};
use serde_json::json;

use super::{expect_kind, id, must_get};
use crate::case::{ensure, ensure_eq};
use crate::causes;
use crate::ctx::{Ctx, Failure};
use crate::show::Show as _;

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

pub(super) async fn job_updates_apply_one_change_at_a_time(ctx: Ctx) -> Result<(), Failure> {
    updates(ctx, false).await
}

pub(super) async fn job_updates_apply_one_change_at_a_time_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    updates(ctx, true).await
}
