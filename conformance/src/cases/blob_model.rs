//! Generated operation sequences on blobs, compared step by step with the reference model,
//! on one instance and spread over 2 to 4 instances.

use crate::case::{Case, case};
use crate::ctx::{Ctx, Failure};
use crate::model::Env;
use crate::model::blob::{execute, strategy};
use crate::model::run_machine;

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            "blob_model",
            blob_operations_match_the_model,
            SingleInstance
        ),
        case!(
            "blob_model",
            blob_operations_match_the_model_across_instances,
            CrossInstance
        ),
    ]
}

async fn machine(ctx: Ctx, instances: (usize, usize)) -> Result<(), Failure> {
    let caps = ctx.caps().clone();
    let max_ops = ctx.options().max_ops;
    let ctx2 = ctx.clone();
    run_machine(
        &ctx,
        move || strategy(instances, caps.clone(), max_ops),
        move |model, steps, seen| execute(Env::fresh(&ctx2), model, steps, seen),
    )
    .await
}

async fn blob_operations_match_the_model(ctx: Ctx) -> Result<(), Failure> {
    machine(ctx, (1, 1)).await
}

async fn blob_operations_match_the_model_across_instances(ctx: Ctx) -> Result<(), Failure> {
    machine(ctx, (2, 4)).await
}
