//! Generated job operation sequences, compared step by step with the reference model of the
//! lifecycle, on one instance and spread over 2 to 4 instances.

use crate::case::{Case, case};
use crate::ctx::{Ctx, Failure};
use crate::model::Env;
use crate::model::jobs::{execute, strategy};
use crate::model::run_machine;

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!("jobs_model", job_operations_match_the_model, SingleInstance),
        case!(
            "jobs_model",
            job_operations_match_the_model_across_instances,
            CrossInstance
        ),
    ]
}

async fn machine(ctx: Ctx, instances: (usize, usize)) -> Result<(), Failure> {
    let max_ops = ctx.options().max_ops;
    let ctx2 = ctx.clone();
    run_machine(
        &ctx,
        move || strategy(instances, max_ops),
        move |model, steps, seen| execute(Env::fresh(&ctx2), model, steps, seen),
    )
    .await
}

async fn job_operations_match_the_model(ctx: Ctx) -> Result<(), Failure> {
    machine(ctx, (1, 1)).await
}

async fn job_operations_match_the_model_across_instances(ctx: Ctx) -> Result<(), Failure> {
    machine(ctx, (2, 4)).await
}
