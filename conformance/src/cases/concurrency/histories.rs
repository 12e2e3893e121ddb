//! Random workloads of reads, writes, conditional writes and deletes from several clients at
//! once, each history checked for linearizability.

use std::collections::BTreeMap;
use std::sync::Arc;

use blobjobs_store_api::Etag;
use proptest::prelude::Rng;

use super::clients::{
    clients, final_reads_agree, instances, linearizable, race_clients, settle_keys,
};
use crate::ctx::{Ctx, Failure};
use crate::history::CallCondition;
use crate::seed::rng_from_seed;

/// One planned operation of a random workload.
#[derive(Debug, Clone)]
enum Planned {
    Get,
    Set,
    SetIfNew,
    SetIfMatch,
    Delete,
}

const KEYS: [&str; 2] = ["h0", "h1"];
const OPS_PER_CLIENT: usize = 8;

async fn histories(ctx: Ctx, cross: bool) -> Result<(), Failure> {
    let n = if cross {
        ctx.options().instances.clamp(2, 4)
    } else {
        3
    };
    let rounds = (ctx.options().cases / 4).clamp(2, 16);
    let mut rng = rng_from_seed(ctx.seed());
    let insts = instances(&ctx, n, cross).await?;
    let mut keys = Vec::new();
    for round in 0..rounds {
        let (clients, rec) = clients(&ctx, &insts);
        let prefix = format!("r{round}/");
        let plans: Vec<Vec<(usize, Planned)>> = (0..clients.len())
            .map(|_| {
                let mut plan: Vec<(usize, Planned)> = (0..OPS_PER_CLIENT)
                    .map(|_| {
                        let key = (rng.next_u32() % KEYS.len() as u32) as usize;
                        let op = match rng.next_u32() % 20 {
                            0..=6 => Planned::Get,
                            7..=10 => Planned::Set,
                            11..=12 => Planned::SetIfNew,
                            13..=17 => Planned::SetIfMatch,
                            _ => Planned::Delete,
                        };
                        (key, op)
                    })
                    .collect();
                // Every client ends by writing the first key, so that the final reads below
                // tell apart stores whose instances do not share state.
                plan.push((0, Planned::Set));
                plan
            })
            .collect();
        let plans = Arc::new(plans);
        let prefix2 = prefix.clone();
        race_clients(&ctx, round as usize, &clients, move |c| {
            let plans = plans.clone();
            let prefix = prefix2.clone();
            async move {
                let mut seen: BTreeMap<usize, Etag> = BTreeMap::new();
                for (i, (k, op)) in plans[c.id].iter().enumerate() {
                    let key = format!("{prefix}{}", KEYS[*k]);
                    let label = format!("c{}-{i}", c.id);
                    match op {
                        Planned::Get => {
                            if let Some((_, etag)) = c.get(&key).await? {
                                seen.insert(*k, etag);
                            }
                        }
                        Planned::Set => {
                            if let Some(etag) = c.set(&key, &label, CallCondition::Always).await? {
                                seen.insert(*k, etag);
                            }
                        }
                        Planned::SetIfNew => {
                            if let Some(etag) = c.set(&key, &label, CallCondition::IfNew).await? {
                                seen.insert(*k, etag);
                            }
                        }
                        Planned::SetIfMatch => {
                            let want = seen
                                .get(k)
                                .map(|e| e.as_str().to_owned())
                                .unwrap_or_else(|| "\"never-issued\"".to_owned());
                            if let Some(etag) =
                                c.set(&key, &label, CallCondition::IfMatch(want)).await?
                            {
                                seen.insert(*k, etag);
                            }
                        }
                        Planned::Delete => {
                            c.delete(&key).await?;
                            seen.remove(k);
                        }
                    }
                }
                Ok(())
            }
        })
        .await?;
        // After every write has returned, each client reads every key once more.
        let round_keys: Vec<String> = KEYS.iter().map(|k| format!("{prefix}{k}")).collect();
        final_reads_agree(&clients, &round_keys, &rec).await?;
        if let Err(mut f) = linearizable(&rec, &BTreeMap::new()) {
            f.message = format!("round {round} of {rounds}: {}", f.message);
            return Err(f);
        }
        keys.extend(KEYS.iter().map(|k| format!("{prefix}{k}")));
    }
    settle_keys(&ctx, &insts[0], &keys, cross).await
}

pub(super) async fn concurrent_histories_are_linearizable(ctx: Ctx) -> Result<(), Failure> {
    histories(ctx, false).await
}

pub(super) async fn concurrent_histories_are_linearizable_across_instances(
    ctx: Ctx,
) -> Result<(), Failure> {
    histories(ctx, true).await
}
