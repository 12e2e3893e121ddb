//! The clients of the concurrent cases: instances whose every operation goes into a shared
//! history, and what the cases do with them (race them, check the history for
//! linearizability, compare final reads, leave the keys to the settle check).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use blobjobs_store_api::{ErrorKind, Etag, SetOptions, SetOutcome};
use bytes::Bytes;

use crate::causes;
use crate::ctx::{Ctx, Failure, Instance, limited};
use crate::history::{Call, CallCondition, Event, Recorder, Ret};
use crate::race::race;
use crate::settle::{Group, Reader};

/// One client of a concurrent case: an instance whose operations go into a shared history.
#[derive(Clone)]
pub(super) struct Client {
    pub(super) id: usize,
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

    pub(super) async fn get(&self, key: &str) -> Result<Option<(String, Etag)>, Failure> {
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
    pub(super) async fn set(
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

    pub(super) async fn delete(&self, key: &str) -> Result<(), Failure> {
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
pub(super) async fn instances(ctx: &Ctx, n: usize, cross: bool) -> Result<Vec<Instance>, Failure> {
    if cross {
        return ctx.instances(n).await;
    }
    let one = ctx.instance().await?;
    Ok(vec![one; n])
}

/// Clients over `instances` that record into a new history.
pub(super) fn clients(ctx: &Ctx, instances: &[Instance]) -> (Vec<Client>, Arc<Recorder>) {
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
pub(super) async fn race_clients<T, F, Fut>(
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

pub(super) fn history_failure(message: String, rec: &Recorder) -> Failure {
    let mut f = Failure::new(message);
    f.timeline = Some(rec.events().iter().map(Event::describe).collect());
    f
}

pub(super) fn linearizable(
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
pub(super) async fn final_reads_agree(
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
pub(super) async fn settle_keys(
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
pub(super) async fn op_time(inst: &Instance) -> Result<Duration, Failure> {
    let started = std::time::Instant::now();
    inst.put("op-time", "x").await?;
    let took = started.elapsed();
    inst.delete("op-time").await?;
    Ok(took)
}
