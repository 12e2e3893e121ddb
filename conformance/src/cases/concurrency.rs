//! Concurrent operations from several tasks or instances: single winners of only-if-new and
//! only-if-match races, no lost compare-and-swap updates, deletes that racing updates cannot
//! undo, and random histories checked for linearizability.
//!
//! Races run many rounds ([`crate::Options::race_rounds`]), each released by one gate with
//! seeded jitter (see [`crate::race`]), and every case writes down the state its keys were
//! left in, to be read again once the store has settled (see [`crate::settle`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use blobjobs_store_api::{ErrorKind, Etag, SetOptions, SetOutcome};
use bytes::Bytes;
use proptest::prelude::Rng;

use crate::case::{Case, case};
use crate::causes;
use crate::ctx::{Ctx, Failure, Instance, limited};
use crate::history::{Call, CallCondition, Event, Recorder, Ret};
use crate::race::{Burst, race, race_burst};
use crate::seed::rng_from_seed;
use crate::settle::{Group, Reader};

pub(crate) fn cases() -> Vec<Case> {
    vec![
        case!(
            "concurrency",
            only_if_new_has_a_single_winner,
            SingleInstance
        ),
        case!(
            "concurrency",
            only_if_new_has_a_single_winner_across_instances,
            CrossInstance
        ),
        case!(
            "concurrency",
            only_if_match_has_a_single_winner,
            SingleInstance
        ),
        case!(
            "concurrency",
            only_if_match_has_a_single_winner_across_instances,
            CrossInstance
        ),
        case!(
            "concurrency",
            compare_and_swap_loses_no_update,
            SingleInstance
        ),
        case!(
            "concurrency",
            compare_and_swap_loses_no_update_across_instances,
            CrossInstance
        ),
        case!(
            "concurrency",
            deletes_racing_updates_leave_no_ghost_across_instances,
            CrossInstance
        ),
        case!(
            "concurrency",
            readers_never_see_a_partial_value_across_instances,
            CrossInstance
        ),
        case!(
            "concurrency",
            concurrent_histories_are_linearizable,
            SingleInstance
        ),
        case!(
            "concurrency",
            concurrent_histories_are_linearizable_across_instances,
            CrossInstance
        ),
    ]
}

/// One client of a concurrent case: an instance whose operations go into a shared history.
#[derive(Clone)]
struct Client {
    id: usize,
    inst: Instance,
    rec: Arc<Recorder>,
    limit: Duration,
}

/// An error whose effect is unknown, versus one that makes the case fail.
fn unknown(e: &blobjobs_store_api::Error) -> bool {
    matches!(e.kind(), ErrorKind::Timeout | ErrorKind::Unavailable)
}

impl Client {
    fn record(&self, key: &str, call: Call, ret: Ret, invoked: u64) {
        let returned = (ret != Ret::Unknown).then(|| self.rec.tick());
        self.rec.push(Event {
            instance: self.id,
            key: key.to_owned(),
            call,
            ret,
            invoked,
            returned,
        });
    }

    async fn get(&self, key: &str) -> Result<Option<(String, Etag)>, Failure> {
        let t = self.rec.tick();
        let r = limited(self.limit, self.inst.store.get(key)).await;
        if let Ok(b) = &r {
            self.inst.found(key, b.is_some());
        }
        match r {
            Ok(Some(b)) => {
                let value = String::from_utf8_lossy(&b.value).into_owned();
                let ret = Ret::Found {
                    value: value.clone(),
                    etag: b.info.etag.as_str().to_owned(),
                };
                self.record(key, Call::Get, ret, t);
                Ok(Some((value, b.info.etag)))
            }
            Ok(None) => {
                self.record(key, Call::Get, Ret::Missing, t);
                Ok(None)
            }
            Err(e) if unknown(&e) => {
                self.record(key, Call::Get, Ret::Unknown, t);
                Ok(None)
            }
            Err(e) => Err(Failure::new(format!(
                "instance {}: get {key:?} failed ({}): {}",
                self.id,
                e.kind(),
                e.message()
            ))),
        }
    }

    /// Returns `Some(etag)` if written, `None` if the condition failed or the outcome is
    /// unknown.
    async fn set(
        &self,
        key: &str,
        value: &str,
        condition: CallCondition,
    ) -> Result<Option<Etag>, Failure> {
        let options = match &condition {
            CallCondition::Always => SetOptions::new(),
            CallCondition::IfNew => SetOptions::new().if_new(),
            CallCondition::IfMatch(e) => SetOptions::new().if_match(Etag::new(e.clone())),
        };
        let call = Call::Set {
            value: value.to_owned(),
            condition,
        };
        let t = self.rec.tick();
        let r = limited(
            self.limit,
            self.inst
                .store
                .set(key, Bytes::from(value.to_owned()), options),
        )
        .await;
        self.inst.written(key, &r);
        match r {
            Ok(SetOutcome::Written { etag }) => {
                let ret = Ret::Written {
                    etag: etag.as_str().to_owned(),
                };
                self.record(key, call, ret, t);
                Ok(Some(etag))
            }
            Ok(SetOutcome::ConditionFailed) => {
                self.record(key, call, Ret::ConditionFailed, t);
                Ok(None)
            }
            Err(e) if unknown(&e) => {
                self.record(key, call, Ret::Unknown, t);
                Ok(None)
            }
            Err(e) => Err(Failure::new(format!(
                "instance {}: set {key:?} failed ({}): {}",
                self.id,
                e.kind(),
                e.message()
            ))),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Failure> {
        let t = self.rec.tick();
        match limited(self.limit, self.inst.store.delete(key)).await {
            Ok(()) => {
                self.inst.owners.deleted(key);
                self.record(key, Call::Delete, Ret::Deleted, t);
                Ok(())
            }
            Err(e) if unknown(&e) => {
                self.record(key, Call::Delete, Ret::Unknown, t);
                Ok(())
            }
            Err(e) => Err(Failure::new(format!(
                "instance {}: delete {key:?} failed ({}): {}",
                self.id,
                e.kind(),
                e.message()
            ))),
        }
    }
}

/// The instances of a concurrent case: `n` of them, or one shared by `n` clients.
async fn instances(ctx: &Ctx, n: usize, cross: bool) -> Result<Vec<Instance>, Failure> {
    if cross {
        return ctx.instances(n).await;
    }
    let one = ctx.instance().await?;
    Ok(vec![one; n])
}

/// Clients over `instances` that record into a new history.
fn clients(ctx: &Ctx, instances: &[Instance]) -> (Vec<Client>, Arc<Recorder>) {
    let rec = Arc::new(Recorder::new());
    let clients = instances
        .iter()
        .enumerate()
        .map(|(id, inst)| Client {
            id,
            inst: inst.clone(),
            rec: rec.clone(),
            limit: ctx.options().op_timeout,
        })
        .collect();
    (clients, rec)
}

/// Runs `body` for every client at the same moment; results come back in client order.
async fn race_clients<T, F, Fut>(
    ctx: &Ctx,
    round: usize,
    clients: &[Client],
    body: F,
) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>> + Send + 'static,
{
    let futures: Vec<Fut> = clients.iter().map(|c| body(c.clone())).collect();
    race(ctx.probe(), round, futures)
        .await?
        .into_iter()
        .collect()
}

fn history_failure(message: String, rec: &Recorder) -> Failure {
    let mut f = Failure::new(message);
    f.timeline = Some(rec.events().iter().map(Event::describe).collect());
    f
}

fn linearizable(
    rec: &Recorder,
    initial: &BTreeMap<String, (String, String)>,
) -> Result<(), Failure> {
    crate::history::check(&rec.events(), initial).map_err(|v| {
        let mut f = Failure::new(v.message.clone()).because(causes::CONDITIONS_NOT_ATOMIC);
        f.timeline = Some(v.history);
        f
    })
}

/// Every client reads every key of `keys`; instances that read different values once every
/// write has returned do not share state, whatever else went wrong.
async fn final_reads_agree(
    clients: &[Client],
    keys: &[String],
    rec: &Recorder,
) -> Result<(), Failure> {
    for key in keys {
        let mut reads: Vec<(usize, Option<String>)> = Vec::new();
        for c in clients {
            reads.push((c.id, c.get(key).await?.map(|(v, _)| v)));
        }
        if let Some((other, read)) = reads.iter().find(|(_, r)| *r != reads[0].1) {
            let show = |r: &Option<String>| {
                r.as_ref()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_else(|| "not found".to_owned())
            };
            return Err(history_failure(
                format!(
                    "once every write returned, instance {} reads {key:?} as {} and instance {other} as {}",
                    reads[0].0,
                    show(&reads[0].1),
                    show(read)
                ),
                rec,
            )
            .because(causes::NOT_VISIBLE_ACROSS_INSTANCES));
        }
    }
    Ok(())
}

/// Writes down what `keys` hold now (read through `reader`) as the state they must keep once
/// the store settles, re-read by a fresh instance (or by `reader` for a single-instance
/// case).
async fn settle_keys(
    ctx: &Ctx,
    reader: &Instance,
    keys: &[String],
    cross: bool,
) -> Result<(), Failure> {
    let mut group = Group::new(
        ctx.prefix().to_owned(),
        if cross {
            Reader::Fresh
        } else {
            Reader::Blobs(reader.store.clone())
        },
        ctx.now(),
    );
    for key in keys {
        let state = reader.get(key).await?.map(|b| (b.value, b.info.etag));
        group.blobs.push((key.clone(), state));
    }
    group.blobs_complete = true;
    ctx.ledger().push(group);
    Ok(())
}

/// About how long one write of `inst` takes: a write and a delete of a key of its own,
/// timed (the delete leaves nothing for the settle check to find).
async fn op_time(inst: &Instance) -> Result<Duration, Failure> {
    let started = std::time::Instant::now();
    inst.put("op-time", "x").await?;
    let took = started.elapsed();
    inst.delete("op-time").await?;
    Ok(took)
}

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

async fn only_if_new_has_a_single_winner(ctx: Ctx) -> Result<(), Failure> {
    single_winner(ctx, false, false).await
}

async fn only_if_new_has_a_single_winner_across_instances(ctx: Ctx) -> Result<(), Failure> {
    single_winner(ctx, true, false).await
}

async fn only_if_match_has_a_single_winner(ctx: Ctx) -> Result<(), Failure> {
    single_winner(ctx, false, true).await
}

async fn only_if_match_has_a_single_winner_across_instances(ctx: Ctx) -> Result<(), Failure> {
    single_winner(ctx, true, true).await
}

/// How many compare-and-swap steps every instance of [`counter`] takes at least in a round
/// (more on a fast store, see [`Burst::of_round`]).
const STEPS: usize = 10;

async fn counter(ctx: Ctx, cross: bool) -> Result<(), Failure> {
    let n = ctx.options().instances;
    let insts = instances(&ctx, n, cross).await?;
    let op = op_time(&insts[0]).await?;
    let mut keys = Vec::new();
    // Races on threads and interleaved by turns (see `race`), each on a counter of its own.
    for round in 0..6 {
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

async fn compare_and_swap_loses_no_update(ctx: Ctx) -> Result<(), Failure> {
    counter(ctx, false).await
}

async fn compare_and_swap_loses_no_update_across_instances(ctx: Ctx) -> Result<(), Failure> {
    counter(ctx, true).await
}

/// One instance deletes a key while others update it with compare-and-swap writes: whatever
/// the order, once the delete has returned no conditional write may bring the key back (an
/// only-if-match against a deleted key must fail), and every instance reads the same end.
async fn deletes_racing_updates_leave_no_ghost_across_instances(ctx: Ctx) -> Result<(), Failure> {
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

async fn concurrent_histories_are_linearizable(ctx: Ctx) -> Result<(), Failure> {
    histories(ctx, false).await
}

async fn concurrent_histories_are_linearizable_across_instances(ctx: Ctx) -> Result<(), Failure> {
    histories(ctx, true).await
}

/// The values [`partial`] alternates between: multi-page when the backend takes it, each a
/// different length and pattern, so that a torn read matches neither.
fn whole_values(ctx: &Ctx) -> [Bytes; 2] {
    let len = if ctx.caps().max_value_bytes >= crate::shapes::MULTI_PAGE_BYTES as u64 {
        crate::shapes::MULTI_PAGE_BYTES
    } else {
        (ctx.caps().max_value_bytes as usize).clamp(2, 4096)
    };
    [
        Bytes::from(vec![0xa5u8; len]),
        Bytes::from((0..len - 1).map(|i| (i % 251) as u8).collect::<Vec<u8>>()),
    ]
}

/// One instance overwrites a key again and again with two whole values while two others
/// read it through `get` and `get_stream`: every read is one whole value or the other,
/// never part of one, and the last read of all is the last value written.
async fn readers_never_see_a_partial_value_across_instances(ctx: Ctx) -> Result<(), Failure> {
    let insts = instances(&ctx, 3, true).await?;
    let values = whole_values(&ctx);
    let mut keys = Vec::new();
    for round in 0..2usize {
        let key = format!("whole{round}");
        insts[0].put(&key, values[1].clone()).await?;
        let writes = 6usize;
        let racers: Vec<_> = insts
            .iter()
            .enumerate()
            .map(|(i, inst)| {
                let inst = inst.clone();
                let key = key.clone();
                let values = values.clone();
                async move {
                    if i == 0 {
                        for w in 0..writes {
                            inst.put(&key, values[w % 2].clone()).await?;
                            tokio::task::yield_now().await;
                        }
                        return Ok::<_, Failure>(());
                    }
                    for r in 0..writes * 2 {
                        let read = if (r + i) % 2 == 0 {
                            inst.get(&key).await?.map(|b| b.value)
                        } else {
                            inst.get_stream(&key).await?.map(|(_, v)| Bytes::from(v))
                        };
                        match read {
                            Some(v) if values.contains(&v) => {}
                            Some(v) => {
                                return Err(Failure::new(format!(
                                    "instance {} read {key:?} as {} bytes while instance 0 wrote it \
                                     with whole values of {} and {} bytes: a partial value",
                                    inst.id,
                                    v.len(),
                                    values[0].len(),
                                    values[1].len()
                                ))
                                .because(causes::PARTIAL_VALUES));
                            }
                            None => {
                                return Err(Failure::new(format!(
                                    "instance {} read {key:?} as not found while instance 0 \
                                     overwrote it",
                                    inst.id
                                ))
                                .because(causes::NOT_VISIBLE_ACROSS_INSTANCES));
                            }
                        }
                        tokio::task::yield_now().await;
                    }
                    Ok(())
                }
            })
            .collect();
        for r in race(ctx.probe(), round, racers).await? {
            r?;
        }
        let last = insts[1].get(&key).await?.map(|b| b.value);
        let want = &values[(writes - 1) % 2];
        ensure_last(last.as_ref(), want, &key)?;
        keys.push(key);
    }
    settle_keys(&ctx, &insts[0], &keys, true).await
}

fn ensure_last(last: Option<&Bytes>, want: &Bytes, key: &str) -> Result<(), Failure> {
    match last {
        Some(v) if v == want => Ok(()),
        Some(v) => Err(Failure::new(format!(
            "once the writes ended, instance 1 reads {key:?} as {} bytes, not the {} of the last write",
            v.len(),
            want.len()
        ))
        .because(causes::NOT_VISIBLE_ACROSS_INSTANCES)),
        None => Err(Failure::new(format!(
            "once the writes ended, instance 1 reads {key:?} as not found"
        ))
        .because(causes::NOT_VISIBLE_ACROSS_INSTANCES)),
    }
}
