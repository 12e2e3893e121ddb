//! Single winners: of many only-if-new or only-if-match writes of one key released at once,
//! exactly one succeeds, on one instance and across instances.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::clients::{
    clients, final_reads_agree, history_failure, instances, linearizable, op_time, settle_keys,
};
use crate::causes;
use crate::ctx::{Ctx, Failure};
use crate::history::CallCondition;
use crate::race::{Burst, race_burst};

async fn single_winner(ctx: Ctx, cross: bool, if_match: bool) -> Result<(), Failure> {
    let n = ctx.options().instances;
    let insts = instances(&ctx, n, cross).await?;
    let op = op_time(&insts[0]).await?;
    let what = if if_match {
        "only-if-match"
    } else {
        "only-if-new"
    };
    let mut settled = Vec::new();
    for round in 0..ctx.options().race_rounds() {
        let burst = Burst::of_round(round, op);
        let keys: Vec<String> = (0..burst.size)
            .map(|k| format!("once{round}-{k}"))
            .collect();
        let (clients, rec) = clients(&ctx, &insts);
        let mut initial = BTreeMap::new();
        let mut conditions = Vec::new();
        for key in &keys {
            if if_match {
                let etag = clients[0]
                    .set(key, "start", CallCondition::Always)
                    .await?
                    .ok_or_else(|| {
                        Failure::new(format!("could not write {key:?} to start round {round}"))
                    })?;
                initial.insert(key.clone(), ("start".to_owned(), etag.as_str().to_owned()));
                conditions.push(CallCondition::IfMatch(etag.as_str().to_owned()));
            } else {
                conditions.push(CallCondition::IfNew);
            }
        }
        let (racers, race_keys, race_conditions) = (
            clients.clone(),
            Arc::new(keys.clone()),
            Arc::new(conditions),
        );
        let results = race_burst(ctx.probe(), burst, n, move |i, k| {
            let c = racers[i].clone();
            let key = race_keys[k].clone();
            let condition = race_conditions[k].clone();
            async move {
                let value = format!("winner-{}", c.id);
                c.set(&key, &value, condition).await
            }
        })
        .await?;
        final_reads_agree(&clients, &keys, &rec).await?;
        for (k, key) in keys.iter().enumerate() {
            let mut winners = Vec::new();
            for (i, r) in results.iter().enumerate() {
                match &r[k] {
                    Ok(Some(_)) => winners.push(i),
                    Ok(None) => {}
                    Err(e) => return Err(Failure::new(e.message.clone())),
                }
            }
            if winners.len() != 1 {
                let cause = if winners.len() > 1 {
                    causes::CONDITIONS_NOT_ATOMIC
                } else {
                    causes::CONDITIONS_IGNORED
                };
                return Err(history_failure(
                    format!(
                        "round {round}: {} of {n} concurrent {what} writes of {key:?} won; exactly one must",
                        winners.len()
                    ),
                    &rec,
                )
                .because(cause));
            }
            let want = format!("winner-{}", winners[0]);
            if let Some((read, _)) = clients[0].get(key).await?
                && read != want
            {
                return Err(history_failure(
                    format!("round {round}: {key:?} reads {read:?} after {want:?} won"),
                    &rec,
                )
                .because(causes::CONDITIONS_NOT_ATOMIC));
            }
        }
        if let Err(mut f) = linearizable(&rec, &initial) {
            f.message = format!("round {round}: {}", f.message);
            return Err(f);
        }
        settled.extend(keys);
    }
    settle_keys(&ctx, &insts[0], &settled, cross).await
}

pub(super) async fn only_if_new_has_a_single_winner(ctx: Ctx) -> Result<(), Failure> {
    single_winner(ctx, false, false).await
}

pub(super) async fn only_if_new_has_a_single_winner_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    single_winner(ctx, true, false).await
}

pub(super) async fn only_if_match_has_a_single_winner(ctx: Ctx) -> Result<(), Failure> {
    single_winner(ctx, false, true).await
}

pub(super) async fn only_if_match_has_a_single_winner_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    single_winner(ctx, true, true).await
}
