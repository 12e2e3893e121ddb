//! Racing job operations from several instances, for every pair of job changes that
//! conflict: claim against claim (fresh and after a lease ran out), claim against cancel,
//! progress against succeed and against cancel, succeed against fail and against cancel,
//! updates against a delete, and creates with one id.
//!
//! Each round sets a job up, releases the racers together (see [`crate::race`]), and then
//! asks the reference model of the lifecycle whether some order of the racers' operations
//! explains every result they got and the job a further instance reads afterwards. A store
//! that loses an update, lets two workers claim, or resurrects a deleted job has no such
//! order. Rounds scale with [`crate::Options::cases`], and the job each round left behind is
//! read again once the store has settled.

use std::sync::Arc;
use std::time::Duration;

use blobjobs_store_api::{JobId, JobStore};

use crate::case::{Case, case};
use crate::causes;
use crate::ctx::{Ctx, Failure, JobHandle};
use crate::model::jobs::{Expect, JobAction, JobModel, describe_action, perform, show};
use crate::probe::Pauser;
use crate::race::{Burst, race_burst};
use crate::settle::{Group, Reader};

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
            an_expired_lease_is_reclaimed_by_one_worker_across_instances,
            CrossInstance
        ),
        case!(
            "jobs_concurrency",
            racing_claim_and_cancel_have_one_order_across_instances,
            CrossInstance
        ),
        case!(
            "jobs_concurrency",
            racing_progress_and_succeed_lose_no_update_across_instances,
            CrossInstance
        ),
        case!(
            "jobs_concurrency",
            racing_progress_and_cancel_lose_no_update_across_instances,
            CrossInstance
        ),
        case!(
            "jobs_concurrency",
            racing_succeed_and_fail_have_one_winner_across_instances,
            CrossInstance
        ),
        case!(
            "jobs_concurrency",
            racing_finish_and_cancel_have_one_winner_across_instances,
            CrossInstance
        ),
        case!(
            "jobs_concurrency",
            racing_updates_and_a_delete_leave_the_job_deleted_across_instances,
            CrossInstance
        ),
        case!(
            "jobs_concurrency",
            racing_creates_with_one_id_make_one_job_across_instances,
            CrossInstance
        ),
    ]
}

const WORKER: &str = "w-setup";

fn create(id: &str, label: u32) -> JobAction {
    JobAction::Create {
        id: id.to_owned(),
        kind: "extract".to_owned(),
        ttl_ms: None,
        label,
    }
}

fn claim(id: &str, owner: &str, lease_ms: u64) -> JobAction {
    JobAction::Claim {
        id: id.to_owned(),
        owner: owner.to_owned(),
        lease_ms,
    }
}

fn progress(id: &str, percent: u8) -> JobAction {
    JobAction::Progress {
        id: id.to_owned(),
        owner: WORKER.to_owned(),
        percent,
    }
}

fn succeed(id: &str, label: u32) -> JobAction {
    JobAction::Succeed {
        id: id.to_owned(),
        owner: WORKER.to_owned(),
        label,
    }
}

fn fail(id: &str) -> JobAction {
    JobAction::Fail {
        id: id.to_owned(),
        owner: WORKER.to_owned(),
    }
}

fn cancel(id: &str) -> JobAction {
    JobAction::Cancel { id: id.to_owned() }
}

/// A pending job.
fn pending(id: &str) -> Vec<JobAction> {
    vec![create(id, 0)]
}

/// A job running under [`WORKER`]'s lease.
fn running(id: &str) -> Vec<JobAction> {
    vec![create(id, 0), claim(id, WORKER, 30_000)]
}

/// One kind of race: how each round's job is set up, and what each racer does to it.
struct Race {
    /// Whether every racer uses one shared instance.
    single: bool,
    setup: fn(&str) -> Vec<JobAction>,
    racers: fn(&str, usize) -> Vec<Vec<JobAction>>,
}

/// The instances of a race case: one that sets jobs up, one per racer, one that reads the
/// outcome (all the same one for a single-instance case).
struct Cast {
    setup: JobHandle,
    racers: Vec<JobHandle>,
    observer: JobHandle,
}

async fn cast(ctx: &Ctx, racers: usize, single: bool) -> Result<Cast, Failure> {
    let setup = ctx.job_instance().await?;
    if single {
        return Ok(Cast {
            racers: vec![setup.clone(); racers],
            observer: setup.clone(),
            setup,
        });
    }
    Ok(Cast {
        racers: ctx.job_instances(racers).await?,
        observer: ctx.job_instance().await?,
        setup,
    })
}

/// Every order of the racers' operations that keeps each racer's own order, as a list of
/// (racer, index) pairs.
fn merges(lengths: &[usize]) -> Vec<Vec<(usize, usize)>> {
    fn go(
        lengths: &[usize],
        taken: &mut Vec<usize>,
        order: &mut Vec<(usize, usize)>,
        out: &mut Vec<Vec<(usize, usize)>>,
    ) {
        if taken.iter().zip(lengths).all(|(t, l)| t == l) {
            out.push(order.clone());
            return;
        }
        for r in 0..lengths.len() {
            if taken[r] < lengths[r] {
                order.push((r, taken[r]));
                taken[r] += 1;
                go(lengths, taken, order, out);
                taken[r] -= 1;
                order.pop();
            }
        }
    }
    let mut out = Vec::new();
    go(
        lengths,
        &mut vec![0; lengths.len()],
        &mut Vec::new(),
        &mut out,
    );
    out
}

/// Whether some order of the racers explains what each got and what the observer read.
fn explained(
    model: &JobModel,
    plans: &[Vec<JobAction>],
    got: &[Vec<Expect>],
    read: &Expect,
    id: &str,
) -> bool {
    let lengths: Vec<usize> = plans.iter().map(Vec::len).collect();
    merges(&lengths).into_iter().any(|order| {
        let mut m = model.clone();
        order
            .iter()
            .all(|(r, i)| m.step(&plans[*r][*i]) == got[*r][*i])
            && m.step(&JobAction::Get { id: id.to_owned() }) == *read
    })
}

/// Why no order explains a round: the seed's bug when a racer did not find the job,
/// two winners when claims raced, a lost update otherwise.
fn unexplained(
    round: usize,
    plans: &[Vec<JobAction>],
    got: &[Vec<Expect>],
    read: (usize, &Expect),
    racer_ids: &[usize],
    creator: usize,
    id: &str,
) -> Failure {
    let lost = got
        .iter()
        .zip(racer_ids)
        .find(|(results, who)| {
            **who != creator
                && results.iter().any(|e| {
                    matches!(
                        e,
                        Expect::Missing | Expect::Error(blobjobs_store_api::ErrorKind::NotFound)
                    )
                })
        })
        .map(|(_, who)| *who);
    let deletes = plans
        .iter()
        .flatten()
        .any(|a| matches!(a, JobAction::Delete { .. }));
    if let (Some(who), false) = (lost, deletes) {
        return Failure::new(format!(
            "round {round}: instance {who} raced on job {id} created by instance {creator}: not found"
        ))
        .because(causes::NOT_VISIBLE_ACROSS_INSTANCES);
    }
    let creates = plans
        .iter()
        .flatten()
        .all(|a| matches!(a, JobAction::Create { .. }));
    if creates && matches!(read.1, Expect::Missing) {
        // Every create returned a job, yet another instance finds none.
        let by = racer_ids.first().copied().unwrap_or(creator);
        return Failure::new(format!(
            "round {round}: instance {} polled job {id} created by instance {by}: not found",
            read.0
        ))
        .because(causes::NOT_VISIBLE_ACROSS_INSTANCES);
    }
    if creates {
        return Failure::new(format!(
            "round {round}: racing creates of job {id} returned different jobs; every one must \
             return the job that won"
        ))
        .because(causes::CREATE_NOT_IDEMPOTENT);
    }
    let claims = plans
        .iter()
        .flatten()
        .all(|a| matches!(a, JobAction::Claim { .. }));
    let winners = got
        .iter()
        .flatten()
        .filter(|e| matches!(e, Expect::Job(_)))
        .count();
    if claims && winners > 1 {
        return Failure::new(format!(
            "round {round}: {winners} racing claims of job {id} succeeded; exactly one may"
        ))
        .because(causes::CLAIMS_NOT_EXCLUSIVE);
    }
    let what: Vec<String> = plans
        .iter()
        .map(|p| {
            p.iter()
                .map(describe_action)
                .collect::<Vec<_>>()
                .join(" then ")
        })
        .collect();
    Failure::new(format!(
        "round {round}: no order of the racing operations ({}) explains what they returned and \
         what a further instance reads after them: an update was lost",
        what.join("; ")
    ))
    .because(causes::JOB_UPDATES_LOST)
}

/// Sets the job `id` up with `spec`'s setup on the setup instance, checking every result
/// against `model`.
async fn set_up(
    ctx: &Ctx,
    cast: &Cast,
    spec: &Race,
    model: &mut JobModel,
    round: usize,
    id: &str,
) -> Result<(), Failure> {
    for action in (spec.setup)(id) {
        let want = model.step(&action);
        let got = perform(
            cast.setup.jobs.as_ref(),
            &action,
            ctx.clock(),
            ctx.options().op_timeout,
        )
        .await;
        ctx.note(format!(
            "instance {}: {} → {}",
            cast.setup.id,
            describe_action(&action),
            show(&got)
        ));
        if got != want {
            return Err(Failure::new(format!(
                "round {round}: setting job {id} up, instance {} got {} where the model says {}",
                cast.setup.id,
                show(&got),
                show(&want)
            )));
        }
    }
    Ok(())
}

async fn run_race(ctx: Ctx, spec: Race) -> Result<(), Failure> {
    let n = ctx.options().instances;
    let racers = (spec.racers)("x", n).len();
    let cast = cast(&ctx, racers, spec.single).await?;
    let mut settled = Vec::new();
    // How long one setup operation takes decides how many races a round on threads runs
    // back to back (see `Burst`).
    let mut op = Duration::from_millis(1);
    for round in 0..ctx.options().race_rounds() {
        let burst = Burst::of_round(round, op);
        let ids: Vec<String> = (0..burst.size).map(|k| format!("r{round}-{k}")).collect();
        let started = std::time::Instant::now();
        let mut models = Vec::with_capacity(ids.len());
        for id in &ids {
            // Each job's model starts where the case's clock is, as the store does.
            let mut model = JobModel::starting_at(racers + 2, ctx.now().as_millis());
            set_up(&ctx, &cast, &spec, &mut model, round, id).await?;
            models.push(model);
        }
        let setups = ids.len() * (spec.setup)("x").len();
        if round == 0 && setups > 0 {
            op = started.elapsed() / setups as u32;
        }
        // A setup that moves the clock moves it for every job of the round.
        let now = ctx.now().as_millis();
        for model in &mut models {
            let behind = now - model.now();
            if behind > 0 {
                model.step(&JobAction::Advance { ms: behind });
            }
        }
        // In the first round every racer first reads the job it is about to race on, so that
        // instances that do not share jobs fail with the seed's own words.
        if round == 0 && setups > 0 && !spec.single {
            for handle in &cast.racers {
                let id = &ids[0];
                if handle
                    .get(&JobId::new(id.clone()).map_err(Failure::from)?)
                    .await?
                    .is_none()
                {
                    return Err(Failure::new(format!(
                        "instance {} polled job {id} created by instance {}: not found",
                        handle.id, cast.setup.id
                    ))
                    .because(causes::NOT_VISIBLE_ACROSS_INSTANCES));
                }
            }
        }
        let plans: Arc<Vec<Vec<Vec<JobAction>>>> =
            Arc::new(ids.iter().map(|id| (spec.racers)(id, n)).collect());
        let stores: Arc<Vec<Arc<dyn JobStore>>> =
            Arc::new(cast.racers.iter().map(|h| h.jobs.clone()).collect());
        let clock = ctx.clock().clone();
        let limit = ctx.options().op_timeout;
        let probe = ctx.probe().clone();
        let race_plans = plans.clone();
        // got[racer][k]: what racer `racer` got in the race on job `k`.
        let got = race_burst(ctx.probe(), burst, racers, move |i, k| {
            let plan = race_plans[k][i].clone();
            let jobs = stores[i].clone();
            let clock = clock.clone();
            let probe = probe.clone();
            async move {
                let pauser = Pauser::new(&probe);
                let mut results = Vec::with_capacity(plan.len());
                for action in &plan {
                    let _counted = probe.enter();
                    // The first call is placed by the race's start alone.
                    pauser.pause().await;
                    results.push(perform(jobs.as_ref(), action, &clock, limit).await);
                    pauser.pause().await;
                }
                results
            }
        })
        .await?;
        for (k, id) in ids.iter().enumerate() {
            let results: Vec<Vec<Expect>> = got.iter().map(|r| r[k].clone()).collect();
            for ((plan, results), handle) in plans[k].iter().zip(&results).zip(&cast.racers) {
                for (action, result) in plan.iter().zip(results) {
                    ctx.note(format!(
                        "instance {} (racing): {} → {}",
                        handle.id,
                        describe_action(action),
                        show(result)
                    ));
                }
            }
            let get = JobAction::Get { id: id.clone() };
            let read = perform(
                cast.observer.jobs.as_ref(),
                &get,
                ctx.clock(),
                ctx.options().op_timeout,
            )
            .await;
            ctx.note(format!(
                "instance {}: {} → {}",
                cast.observer.id,
                describe_action(&get),
                show(&read)
            ));
            if !explained(&models[k], &plans[k], &results, &read, id) {
                let racer_ids: Vec<usize> = cast.racers.iter().map(|h| h.id).collect();
                return Err(unexplained(
                    round,
                    &plans[k],
                    &results,
                    (cast.observer.id, &read),
                    &racer_ids,
                    cast.setup.id,
                    id,
                ));
            }
            let job = match read {
                Expect::Job(job) => Some(*job),
                _ => None,
            };
            settled.push((JobId::new(id.clone()).map_err(Failure::from)?, job));
        }
    }
    let reader = if spec.single {
        Reader::Jobs(cast.observer.jobs.clone())
    } else {
        Reader::Fresh
    };
    let mut group = Group::new(ctx.prefix().to_owned(), reader, ctx.now());
    group.jobs = settled;
    group.jobs_complete = true;
    ctx.ledger().push(group);
    Ok(())
}

fn claims(id: &str, n: usize) -> Vec<Vec<JobAction>> {
    (0..n)
        .map(|i| vec![claim(id, &format!("worker-{i}"), 30_000)])
        .collect()
}

async fn claim_is_exclusive(ctx: Ctx) -> Result<(), Failure> {
    run_race(
        ctx,
        Race {
            single: true,
            setup: pending,
            racers: claims,
        },
    )
    .await
}

async fn claim_is_exclusive_across_instances(ctx: Ctx) -> Result<(), Failure> {
    run_race(
        ctx,
        Race {
            single: false,
            setup: pending,
            racers: claims,
        },
    )
    .await
}

async fn an_expired_lease_is_reclaimed_by_one_worker_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    run_race(
        ctx,
        Race {
            single: false,
            setup: |id| {
                vec![
                    create(id, 0),
                    claim(id, WORKER, 1_000),
                    JobAction::Advance { ms: 1_000 },
                ]
            },
            racers: claims,
        },
    )
    .await
}

async fn racing_claim_and_cancel_have_one_order_across_instances(ctx: Ctx) -> Result<(), Failure> {
    run_race(
        ctx,
        Race {
            single: false,
            setup: pending,
            racers: |id, _| vec![vec![claim(id, "worker-0", 30_000)], vec![cancel(id)]],
        },
    )
    .await
}

async fn racing_progress_and_succeed_lose_no_update_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    run_race(
        ctx,
        Race {
            single: false,
            setup: running,
            racers: |id, _| vec![vec![progress(id, 50)], vec![succeed(id, 1)]],
        },
    )
    .await
}

async fn racing_progress_and_cancel_lose_no_update_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    run_race(
        ctx,
        Race {
            single: false,
            setup: running,
            racers: |id, _| vec![vec![progress(id, 50)], vec![cancel(id)]],
        },
    )
    .await
}

async fn racing_succeed_and_fail_have_one_winner_across_instances(ctx: Ctx) -> Result<(), Failure> {
    run_race(
        ctx,
        Race {
            single: false,
            setup: running,
            racers: |id, _| vec![vec![succeed(id, 1)], vec![fail(id)]],
        },
    )
    .await
}

async fn racing_finish_and_cancel_have_one_winner_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    run_race(
        ctx,
        Race {
            single: false,
            setup: running,
            racers: |id, _| vec![vec![succeed(id, 1)], vec![cancel(id)]],
        },
    )
    .await
}

/// A delete races a worker's stream of updates from another instance: whatever the order,
/// the job stays deleted, and no update lands on it after the delete.
async fn racing_updates_and_a_delete_leave_the_job_deleted_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    run_race(
        ctx,
        Race {
            single: false,
            setup: running,
            racers: |id, _| {
                vec![
                    vec![progress(id, 10), progress(id, 20), progress(id, 30)],
                    vec![JobAction::Delete { id: id.to_owned() }],
                ]
            },
        },
    )
    .await
}

async fn racing_creates_with_one_id_make_one_job_across_instances(ctx: Ctx) -> Result<(), Failure> {
    run_race(
        ctx,
        Race {
            single: false,
            setup: |_| Vec::new(),
            racers: |id, n| (0..n).map(|i| vec![create(id, i as u32 + 1)]).collect(),
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::merges;

    #[test]
    fn merges_keep_each_racers_order() {
        assert_eq!(merges(&[1, 1]).len(), 2);
        assert_eq!(merges(&[3, 1]).len(), 4);
        assert_eq!(merges(&[1, 1, 1, 1]).len(), 24);
        for order in merges(&[2, 2]) {
            let firsts: Vec<usize> = order
                .iter()
                .filter(|(r, _)| *r == 0)
                .map(|(_, i)| *i)
                .collect();
            assert_eq!(firsts, vec![0, 1]);
        }
    }
}
