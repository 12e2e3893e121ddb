//! Compare-and-swap writers: a counter that every instance increments with only-if-match
//! writes loses no update, and a delete racing such updates leaves no ghost.

use std::collections::BTreeMap;
use std::time::Duration;

use super::clients::{
    clients, final_reads_agree, history_failure, instances, linearizable, op_time, race_clients,
    settle_keys,
};
use crate::causes;
use crate::ctx::{Ctx, Failure, Instance};
use crate::history::CallCondition;
use crate::race::{Burst, race_burst};

/// How many compare-and-swap steps every instance of [`counter`] takes at least in a round
/// (more on a fast store, see [`Burst::of_round`]).
const STEPS: usize = 10;

async fn counter(ctx: Ctx, cross: bool) -> Result<(), Failure> {
    let n = ctx.options().instances;
    let insts = instances(&ctx, n, cross).await?;
    let op = op_time(&insts[0]).await?;
    let mut keys = Vec::new();
    // Races on threads and interleaved by turns (see `race`), each on a counter of its own.
    // A round is ten steps or more of every instance, so a third of the race rounds (8 by
    // default, and more as `Options::cases` grows) is enough to catch a store that checks
    // and writes without yielding in nearly every run.
    for round in 0..(ctx.options().race_rounds() / 3).max(6) {
        keys.push(count(&ctx, &insts, round, op, cross).await?);
    }
    let reader = if cross {
        ctx.instance().await?
    } else {
        insts[0].clone()
    };
    settle_keys(&ctx, &reader, &keys, cross).await
}

/// One round of [`counter`]: in [`STEPS`] steps, every instance tries to add one to a counter
/// with a compare-and-swap write; returns the counter's key.
async fn count(
    ctx: &Ctx,
    insts: &[Instance],
    round: usize,
    op: Duration,
    cross: bool,
) -> Result<String, Failure> {
    let n = insts.len();
    let (clients, rec) = clients(ctx, insts);
    let key = format!("counter{round}");
    clients[0]
        .set(&key, "0", CallCondition::Always)
        .await?
        .ok_or_else(|| Failure::new("could not write the initial counter"))?;
    // Every step, every instance reads the counter and writes one more with only-if-match,
    // all of them starting the step together.
    let burst = Burst::of_round(round, op);
    let burst = Burst {
        size: burst.size.max(STEPS),
        ..burst
    };
    let (racers, race_key) = (clients.clone(), key.clone());
    let steps = race_burst(ctx.probe(), burst, n, move |i, _| {
        let c = racers[i].clone();
        let key = race_key.clone();
        async move {
            let Some((value, etag)) = c.get(&key).await? else {
                return Err(Failure::new(format!("instance {} finds no counter", c.id))
                    .because(causes::NOT_VISIBLE_ACROSS_INSTANCES));
            };
            let n: u64 = value
                .parse()
                .map_err(|_| Failure::new(format!("the counter holds {value:?}")))?;
            let next = (n + 1).to_string();
            let won = c
                .set(
                    &key,
                    &next,
                    CallCondition::IfMatch(etag.as_str().to_owned()),
                )
                .await?
                .is_some();
            Ok(won.then_some(n + 1))
        }
    })
    .await?;
    let mut all = Vec::new();
    for r in steps.into_iter().flatten() {
        all.extend(r?);
    }
    if all.is_empty() {
        return Err(history_failure(
            format!(
                "{n} instances made {} compare-and-swap attempts on a counter and none succeeded",
                n * STEPS
            ),
            &rec,
        ));
    }
    all.sort_unstable();
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    if all != expected {
        return Err(history_failure(
            format!(
                "{n} instances won {} compare-and-swap increments of a counter between them, but \
                 the values they wrote are {all:?}, not 1 to {}: updates were lost",
                all.len(),
                all.len()
            ),
            &rec,
        )
        .because(causes::CONDITIONS_NOT_ATOMIC));
    }
    // Across instances the final read comes from an instance that took no part.
    let reader = if cross {
        ctx.instance().await?
    } else {
        insts[0].clone()
    };
    let last = reader.get(&key).await?;
    let want = all.len().to_string();
    if last.as_ref().map(|b| b.value.as_ref()) != Some(want.as_bytes()) {
        return Err(history_failure(
            format!(
                "instance {} reads the counter as {}, expected {want}",
                reader.id,
                last.map(|b| format!("{:?}", String::from_utf8_lossy(&b.value)))
                    .unwrap_or_else(|| "not found".to_owned())
            ),
            &rec,
        )
        .because(causes::NOT_VISIBLE_ACROSS_INSTANCES));
    }
    // A long burst makes a history longer than the checker takes; the distinct values above
    // are the property then, and `concurrent_histories_*` check linearizability.
    if rec.events().len() <= crate::history::MAX_EVENTS_PER_KEY {
        linearizable(&rec, &BTreeMap::new())?;
    }
    Ok(key)
}

pub(super) async fn compare_and_swap_loses_no_update(ctx: Ctx) -> Result<(), Failure> {
    counter(ctx, false).await
}

pub(super) async fn compare_and_swap_loses_no_update_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    counter(ctx, true).await
}

/// One instance deletes a key while others update it with compare-and-swap writes: whatever
/// the order, once the delete has returned no conditional write may bring the key back (an
/// only-if-match against a deleted key must fail), and every instance reads the same end.
pub(super) async fn deletes_racing_updates_leave_no_ghost_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    let n = ctx.options().instances.max(3);
    let insts = instances(&ctx, n, true).await?;
    let mut keys = Vec::new();
    for round in 0..ctx.options().race_rounds() {
        let key = format!("ghost{round}");
        let (clients, rec) = clients(&ctx, &insts);
        let etag = clients[0]
            .set(&key, "start", CallCondition::Always)
            .await?
            .ok_or_else(|| {
                Failure::new(format!("could not write {key:?} to start round {round}"))
            })?;
        let mut initial = BTreeMap::new();
        initial.insert(key.clone(), ("start".to_owned(), etag.as_str().to_owned()));
        // In the first round every instance first reads the key, so that instances that do
        // not share state fail for what they are.
        if round == 0 {
            final_reads_agree(&clients, std::slice::from_ref(&key), &rec).await?;
        }
        let key2 = key.clone();
        let start = etag.as_str().to_owned();
        race_clients(&ctx, round, &clients, move |c| {
            let key = key2.clone();
            let start = start.clone();
            async move {
                if c.id == 0 {
                    c.delete(&key).await?;
                    return Ok(());
                }
                // Each updater first writes against the ETag it started with, then against
                // whatever it reads, so that some writes land just after the delete.
                let mut etag = Some(start);
                for step in 0..3 {
                    let Some(want) = etag.take() else { break };
                    let value = format!("c{}-{step}", c.id);
                    c.set(&key, &value, CallCondition::IfMatch(want)).await?;
                    etag = c.get(&key).await?.map(|(_, e)| e.as_str().to_owned());
                }
                Ok(())
            }
        })
        .await?;
        final_reads_agree(&clients, std::slice::from_ref(&key), &rec).await?;
        if let Err(mut f) = linearizable(&rec, &initial) {
            f.message = format!("round {round}: {}", f.message);
            return Err(f);
        }
        keys.push(key);
    }
    settle_keys(&ctx, &insts[0], &keys, true).await
}
