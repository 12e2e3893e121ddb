//! Concurrent operations from several tasks or instances: single winners, no lost updates,
//! and histories checked for linearizability.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use blobjobs_store_api::{ErrorKind, Etag, SetOptions, SetOutcome};
use bytes::Bytes;
use proptest::prelude::Rng;
use tokio::sync::Barrier;

use crate::case::{Case, case};
use crate::ctx::{Ctx, Failure, Instance, limited};
use crate::history::{Call, CallCondition, Event, Recorder, Ret};
use crate::seed::rng_from_seed;

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
        match limited(self.limit, self.inst.store.get(key)).await {
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

/// Opens the clients of a concurrent case: `n` of them, on separate instances or all on one.
async fn clients(
    ctx: &Ctx,
    n: usize,
    cross: bool,
) -> Result<(Vec<Client>, Arc<Recorder>), Failure> {
    let rec = Arc::new(Recorder::new());
    let mut out = Vec::with_capacity(n);
    let shared = if cross {
        None
    } else {
        Some(ctx.instance().await?)
    };
    for id in 0..n {
        let inst = match &shared {
            Some(one) => one.clone(),
            None => ctx.instance().await?,
        };
        out.push(Client {
            id,
            inst,
            rec: rec.clone(),
            limit: ctx.options().op_timeout,
        });
    }
    Ok((out, rec))
}

/// Runs one task per client at the same moment and collects their results in client order.
async fn race<T, F, Fut>(clients: &[Client], body: F) -> Result<Vec<T>, Failure>
where
    T: Send + 'static,
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(clients.len()));
    let mut tasks = Vec::with_capacity(clients.len());
    for c in clients {
        let barrier = barrier.clone();
        let fut = body(c.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            fut.await
        }));
    }
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await {
            Ok(r) => out.push(r?),
            Err(e) => return Err(Failure::new(format!("a concurrent task failed: {e}"))),
        }
    }
    Ok(out)
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
        let mut f = Failure::new(v.message.clone());
        f.timeline = Some(v.history);
        f
    })
}

async fn single_winner(ctx: Ctx, cross: bool) -> Result<(), Failure> {
    let n = ctx.options().instances;
    let (clients, rec) = clients(&ctx, n, cross).await?;
    let results = race(&clients, |c| async move {
        let value = format!("winner-{}", c.id);
        c.set("once", &value, CallCondition::IfNew).await
    })
    .await?;
    let winners: Vec<usize> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().map(|_| i))
        .collect();
    if winners.len() != 1 {
        return Err(history_failure(
            format!(
                "{} of {n} concurrent only-if-new writes won; exactly one must",
                winners.len()
            ),
            &rec,
        ));
    }
    // Every instance must now read the winner's value.
    for c in &clients {
        let got = c.get("once").await?;
        let want = format!("winner-{}", winners[0]);
        if got.as_ref().map(|(v, _)| v.as_str()) != Some(want.as_str()) {
            return Err(history_failure(
                format!(
                    "instance {} reads {:?} after {want:?} won",
                    c.id,
                    got.map(|g| g.0)
                ),
                &rec,
            ));
        }
    }
    linearizable(&rec, &BTreeMap::new())
}

async fn only_if_new_has_a_single_winner(ctx: Ctx) -> Result<(), Failure> {
    single_winner(ctx, false).await
}

async fn only_if_new_has_a_single_winner_across_instances(ctx: Ctx) -> Result<(), Failure> {
    single_winner(ctx, true).await
}

const INCREMENTS: usize = 4;

async fn counter(ctx: Ctx, cross: bool) -> Result<(), Failure> {
    let n = ctx.options().instances;
    let (clients, rec) = clients(&ctx, n, cross).await?;
    let start = clients[0]
        .set("counter", "0", CallCondition::Always)
        .await?
        .ok_or_else(|| Failure::new("could not write the initial counter"))?;
    let _ = start;
    let retries = 64 * n;
    let wins = race(&clients, move |c| async move {
        let mut written = Vec::new();
        let mut attempts = 0;
        while written.len() < INCREMENTS {
            attempts += 1;
            if attempts > retries * INCREMENTS {
                return Err(Failure::new(format!(
                    "instance {} made no progress in {attempts} compare-and-swap attempts",
                    c.id
                )));
            }
            let Some((value, etag)) = c.get("counter").await? else {
                return Err(Failure::new(format!("instance {} finds no counter", c.id)));
            };
            let n: u64 = value
                .parse()
                .map_err(|_| Failure::new(format!("the counter holds {value:?}")))?;
            let next = (n + 1).to_string();
            if c.set(
                "counter",
                &next,
                CallCondition::IfMatch(etag.as_str().to_owned()),
            )
            .await?
            .is_some()
            {
                written.push(n + 1);
            }
            tokio::task::yield_now().await;
        }
        Ok(written)
    })
    .await?;
    let mut all: Vec<u64> = wins.into_iter().flatten().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (1..=(n * INCREMENTS) as u64).collect();
    if all != expected {
        return Err(history_failure(
            format!(
                "{n} instances each won {INCREMENTS} compare-and-swap increments, but the values they wrote are {all:?}, not 1..={}: updates were lost",
                n * INCREMENTS
            ),
            &rec,
        ));
    }
    // Across instances the final read comes from an instance that took no part.
    let reader = if cross {
        ctx.instance().await?
    } else {
        clients[0].inst.clone()
    };
    let last = reader.get("counter").await?;
    let want = (n * INCREMENTS).to_string();
    if last.as_ref().map(|b| b.value.as_ref()) != Some(want.as_bytes()) {
        return Err(history_failure(
            format!(
                "instance {} reads the counter as {:?}, expected {want}",
                reader.id,
                last.map(|b| String::from_utf8_lossy(&b.value).into_owned())
            ),
            &rec,
        ));
    }
    linearizable(&rec, &BTreeMap::new())
}

async fn compare_and_swap_loses_no_update(ctx: Ctx) -> Result<(), Failure> {
    counter(ctx, false).await
}

async fn compare_and_swap_loses_no_update_across_instances(ctx: Ctx) -> Result<(), Failure> {
    counter(ctx, true).await
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
    let n = ctx.options().instances.clamp(2, 4);
    let rounds = (ctx.options().cases / 4).clamp(2, 16);
    let mut rng = rng_from_seed(ctx.seed());
    for round in 0..rounds {
        let (clients, rec) = clients(&ctx, if cross { n } else { 3 }, cross).await?;
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
        race(&clients, move |c| {
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
                    tokio::task::yield_now().await;
                }
                Ok(())
            }
        })
        .await?;
        // After every write has returned, each client reads every key once more.
        for c in &clients {
            for k in KEYS {
                c.get(&format!("{prefix}{k}")).await?;
            }
        }
        if let Err(mut f) = linearizable(&rec, &BTreeMap::new()) {
            f.message = format!("round {round} of {rounds}: {}", f.message);
            return Err(f);
        }
    }
    Ok(())
}

async fn concurrent_histories_are_linearizable(ctx: Ctx) -> Result<(), Failure> {
    histories(ctx, false).await
}

async fn concurrent_histories_are_linearizable_across_instances(ctx: Ctx) -> Result<(), Failure> {
    histories(ctx, true).await
}
